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
