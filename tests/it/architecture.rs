//! The invariants of docs/ARCHITECTURE.md that a text search can check.

use std::path::Path;

fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}

#[test]
fn the_domain_does_no_io_reads_no_clock_and_draws_no_randomness() {
    let forbidden = [
        "Utc::now",
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "tokio",
        "sled",
        "axum",
        "reqwest",
        "rand::",
        "new_v4",
        "println!",
        "eprintln!",
    ];
    for (path, text) in sources("src/domain") {
        for word in forbidden {
            assert!(!text.contains(word), "{path} mentions {word}");
        }
    }
}

#[test]
fn every_module_opens_with_a_header() {
    for (path, text) in sources("src") {
        assert!(text.starts_with("//!"), "{path} has no //! header");
    }
}

/// A source file without its unit tests (by convention the `#[cfg(test)]` module comes last).
fn without_unit_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

#[test]
fn no_module_imports_its_parent_wholesale() {
    // A module names what it takes from its parent; a glob is for unit tests only.
    for (path, text) in sources("src") {
        assert!(
            !without_unit_tests(&text).contains("use super::*"),
            "{path} imports its parent with a glob outside its unit tests: name what it uses"
        );
    }
}

#[test]
fn time_ids_and_randomness_come_from_the_one_module_that_provides_them() {
    let forbidden = ["Utc::now", "SystemTime::now", "new_v4", "OsRng", "thread_rng", "rand::random"];
    for (path, text) in sources("src") {
        if path.ends_with("src/sources.rs") {
            continue;
        }
        for word in forbidden {
            assert!(!without_unit_tests(&text).contains(word), "{path} uses {word}: take it from crate::sources");
        }
    }
}

#[test]
fn the_wire_and_the_terminal_classify_errors_by_kind_without_looking_inside_the_store() {
    for (path, text) in sources("src/http").into_iter().chain(sources("src/cli")) {
        for word in ["StoreError", "SecretsError"] {
            assert!(
                !without_unit_tests(&text).contains(word),
                "{path} mentions {word}: the engine classifies errors (EngineError::kind)"
            );
        }
    }
}

#[test]
fn no_test_only_command_ships_in_the_binary() {
    for (path, text) in sources("src/cli") {
        for word in ["hide = true", "crash-writer", "CrashWriter", "SledStore::open"] {
            assert!(!without_unit_tests(&text).contains(word), "{path} mentions {word}");
        }
    }
}

/// The domain's modules that `module` names (`super::<name>`), outside its unit tests.
fn domain_imports(text: &str, modules: &std::collections::BTreeSet<String>) -> std::collections::BTreeSet<String> {
    let text = without_unit_tests(text);
    let mut out = std::collections::BTreeSet::new();
    for (at, _) in text.match_indices("super::") {
        let name: String =
            text[at + "super::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if modules.contains(&name) {
            out.insert(name);
        }
    }
    out
}

/// Events are their own types: `event` imports nothing from `command`, and no two domain modules
/// import each other, directly or round a longer circle (commands, events, state, intake and
/// refusals once formed one). A circle found is printed.
#[test]
fn the_domain_modules_import_each_other_without_a_circle() {
    let files = sources("src/domain");
    let name_of = |path: &str| Path::new(path).file_stem().unwrap().to_string_lossy().into_owned();
    let modules: std::collections::BTreeSet<String> =
        files.iter().map(|(path, _)| name_of(path)).filter(|name| name != "mod").collect();
    let graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = files
        .iter()
        .filter(|(path, _)| name_of(path) != "mod")
        .map(|(path, text)| {
            let mut imports = domain_imports(text, &modules);
            imports.remove(&name_of(path));
            (name_of(path), imports)
        })
        .collect();
    assert!(!graph["event"].contains("command"), "event imports command: {:?}", graph["event"]);
    // Depth-first search; `path` is the chain from the root to the module being visited.
    fn visit(
        module: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) {
        if let Some(at) = path.iter().position(|m| m == module) {
            panic!("the domain modules import round a circle: {} -> {module}", path[at..].join(" -> "));
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for next in &graph[module] {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = std::collections::BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}
