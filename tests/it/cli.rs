//! The real `golive` binary on temporary directories: a whole onboarding through the CLI alone,
//! JSON outputs, every error path with its exit code, export/import, `--help` everywhere, the
//! README's transcript, and one scripted session giving the same JSON on sled and PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

pub struct Cli {
    pub dir: tempfile::TempDir,
}

impl Cli {
    pub fn new() -> Cli {
        Cli { dir: tempfile::tempdir().unwrap() }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::cargo_bin("golive").unwrap();
        command.arg("--data-dir").arg(self.dir.path().join("data")).args(["--as", "dana.reyes"]);
        command.env_remove("GOLIVE_SERVER").env_remove("GOLIVE_MASTER_KEY");
        // Tests run on loopback: the URLs golive gives there are local by nature.
        command.env("GOLIVE_ALLOW_LOCAL_URLS", "true");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "golive {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Exit code and stderr of a failing command.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "golive {args:?} should have failed");
        (out.status.code().unwrap(), String::from_utf8(out.stderr).unwrap())
    }
}

fn gitlab_payload(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gitlab").join(format!("{name}.json"))
}

pub fn headers(cli: &Cli, name: &str, event: &str, token: &str, key: &str) -> PathBuf {
    cli.file(
        &format!("{name}-{key}.headers"),
        &format!(
            "Content-Type: application/json\nUser-Agent: GitLab/17.5.1\nX-Gitlab-Event: {event}\nX-Gitlab-Token: {token}\nX-Gitlab-Instance: https://gitlab.acme-robotics.example\nX-Gitlab-Webhook-UUID: 2c5f6a0e-8a3b-4b0c-9d1e-{key:0>12}\nX-Gitlab-Event-UUID: 7d1e2f3a-4b5c-4d6e-8f70-{key:0>12}\nIdempotency-Key: 5a6b7c8d-9e0f-4a1b-8c2d-{key:0>12}\n"
        ),
    )
}

#[test]
fn a_whole_onboarding_through_the_cli_alone() {
    let cli = Cli::new();
    cli.ok(&["init"]);
    let id = cli
        .ok(&[
            "integration",
            "create",
            "--customer",
            "Acme Robotics",
            "--gitlab-url",
            "https://gitlab.acme-robotics.example",
            "--owner",
            "dana.reyes",
        ])
        .trim()
        .to_owned();
    let step = |args: &[&str]| -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.insert(2, &id);
        cli.json(&all)
    };
    step(&[
        "prerequisites",
        "confirm",
        "--gitlab-admin-access",
        "true",
        "--network-access",
        "true",
        "--factory-admin-account",
        "true",
    ]);
    step(&[
        "app",
        "register",
        "--name",
        "Factory Integration",
        "--redirect-uri",
        "http://127.0.0.1:8080/oauth/gitlab/callback",
        "--application-id",
        "8d2f6c1e4b7a",
        "--scopes",
        "api,read_user,read_repository,write_repository,read_registry,sudo",
    ]);
    let secret = cli.file("app.secret", "gloas-cli-test-application-secret\n");
    step(&["app", "secret", "--secret-file", secret.to_str().unwrap()]);
    let token = cli.file("token.secret", "glpat-cli-test-admin-token\n");
    step(&["access-token", "provide", "--admin", "true", "--secret-file", token.to_str().unwrap()]);
    let submitted = step(&["info", "submit"]);
    assert_eq!(submitted["state"]["stage"], "info_gathered");
    step(&["network", "policy", "--barrier", "egress allow-list"]);
    step(&[
        "network",
        "peering",
        "--peering-id",
        "pcx-0a1b2c3d4e5f60718",
        "--customer-vpc-id",
        "vpc-0123abcd",
        "--factory-vpc-id",
        "vpc-0fedcba987654321a",
        "--route-tables-configured",
        "true",
    ]);
    let firewall = step(&[
        "network",
        "firewall",
        "--outbound-https",
        "true",
        "--outbound-ssh",
        "true",
        "--webhook-endpoint-reachable",
        "true",
    ]);
    assert_eq!(firewall["state"]["stage"], "network_established");
    let issued = step(&["webhook", "issue"]);
    let webhook_url = issued["webhook_url"].as_str().unwrap().to_owned();
    let secret_token = issued["secret_token"].as_str().unwrap().to_owned();
    step(&["webhook", "create", "--url", &webhook_url, "--triggers", "push,comments,merge_requests,issues,ci_cd"]);
    // Deliveries copied from GitLab's "Recent events", replayed through the receiver's checks.
    let replay = |name: &str, event: &str, key: &str| -> Value {
        let h = headers(&cli, name, event, &secret_token, key);
        cli.json(&[
            "webhook",
            "replay",
            &id,
            "--headers",
            h.to_str().unwrap(),
            "--body",
            gitlab_payload(name).to_str().unwrap(),
        ])
    };
    let first = replay("note", "Note Hook", "1");
    assert_eq!(first["state"]["stage"], "webhook_live");
    let again = replay("note", "Note Hook", "1");
    assert_eq!(again["events"], first["events"], "a resend answers the first result");
    assert_eq!(again["state"]["version"], first["state"]["version"], "a resend changes nothing");
    step(&["test", "api", "--ok", "true"]);
    replay("push", "Push Hook", "2");
    replay("merge_request_open", "Merge Request Hook", "3");
    replay("issue_open", "Issue Hook", "4");
    let tested = replay("pipeline_failed", "Pipeline Hook", "5");
    assert_eq!(tested["state"]["stage"], "tested");
    for scenario in ["merge_request_created", "code_pushed", "issue_opened", "pipeline_ran"] {
        cli.json(&["validate", &id, "--scenario", scenario, "--correct", "true", "--evidence", "checked by hand"]);
    }
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    step(&["launch", "schedule", "--date", &today]);
    let live = step(&["launch", "go"]);
    assert_eq!(live["state"]["stage"], "live");
    assert!(live["state"]["monitoring"]["ends_at"].is_string());
    let status = cli.json(&["status", &id]);
    assert!(status["checklist"].as_array().unwrap().iter().all(|i| i["met"] == true));
    let history = cli.json(&["history", &id]);
    let history = history.as_array().unwrap();
    assert!(history.len() >= 25, "{}", history.len());
    assert_eq!(history.last().unwrap()["type"], "monitoring_started");
    let board = cli.json(&["board"]);
    assert_eq!(board.as_array().unwrap().iter().find(|c| c["stage"] == "live").unwrap()["count"], 1);
    let verify = cli.json(&["verify"]);
    assert_eq!(verify["valid"], true);
    // The secrets never appear in any output or on disk in the clear.
    let all = cli.ok(&["export"]);
    assert!(!all.contains("gloas-cli-test") && !all.contains("glpat-cli-test") && !all.contains(&secret_token));
}

#[test]
fn every_error_path_has_its_exit_code_and_one_line() {
    let cli = Cli::new();
    let id = cli
        .ok(&["integration", "create", "--customer", "Initech", "--gitlab-url", "https://gitlab.initech.example"])
        .trim()
        .to_owned();
    let unknown = "0b7c5a2e-1f2d-4c3b-9a8e-5d6f7a8b9c0d";
    let (code, err) = cli.fails(&["status", unknown]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no integration"));
    let (code, err) = cli.fails(&["status", "not-an-id"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no integration matches \"not-an-id\""), "{err}");
    let (code, err) = cli.fails(&[
        "network",
        "peering",
        &id,
        "--peering-id",
        "pcx-nope",
        "--customer-vpc-id",
        "vpc-0123abcd",
        "--factory-vpc-id",
        "vpc-0fedcba9",
        "--route-tables-configured",
        "true",
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("peering_id"), "{err}");
    let (code, err) = cli.fails(&["launch", "go", &id]);
    assert_eq!(code, 4);
    assert!(err.contains("missing: ") && err.contains("go_live.stage_validated"), "{err}");
    let empty = cli.file("empty.secret", "\n");
    let (code, err) = cli.fails(&["app", "secret", &id, "--secret-file", empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    let issued = cli.json(&["webhook", "issue", &id]);
    assert!(issued["secret_token"].is_string());
    // Issuing again would void GitLab's token: refused, naming the rotation, nothing written.
    let version = cli.json(&["status", &id])["version"].clone();
    let (code, err) = cli.fails(&["webhook", "issue", &id]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("golive rotate {id} --credential webhook_token")), "{err}");
    assert_eq!(cli.json(&["status", &id])["version"], version);
    let h = headers(&cli, "push", "Push Hook", "glw_wrong", "9");
    let push = gitlab_payload("push");
    let (code, err) =
        cli.fails(&["webhook", "replay", &id, "--headers", h.to_str().unwrap(), "--body", push.to_str().unwrap()]);
    assert_eq!(code, 7, "{err}");
    let diagnosis = cli.json(&["diagnose", &id]);
    assert!(diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["message"].as_str().unwrap().contains("1 delivery was refused")));
    // Cancelling is for good: without a terminal to ask on, it needs --yes.
    let (code, err) = cli.fails(&["cancel", &id, "--reason", "customer moved to GitLab.com"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(cli.json(&["status", &id])["version"], version);
    cli.ok(&["cancel", &id, "--reason", "customer moved to GitLab.com", "--yes"]);
    let (code, err) = cli.fails(&["note", &id, "--text", "too late"]);
    assert_eq!(code, 5, "{err}");
    let (code, err) = cli.fails(&["--server", "http://127.0.0.1:9", "board"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--as"), "{err}");
    let (code, _) = cli.fails(&["token", "create", "--role", "god", "--name", "x"]);
    assert_eq!(code, 2);
    let (code, _) = cli.fails(&["history", &id, "--at", "yesterday"]);
    assert_eq!(code, 2);
    // A data directory held by another process (a running server): its own code and a pointer.
    let held = golive::store::SledStore::open(&cli.dir.path().join("data"), Default::default()).unwrap();
    let (code, err) = cli.fails(&["board"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("--server"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    drop(held);
}

#[test]
fn verification_failures_exit_8() {
    let cli = Cli::new();
    cli.ok(&["integration", "create", "--customer", "A", "--gitlab-url", "https://g.example"]);
    let head = cli.json(&["verify"])["head"].as_str().unwrap().to_owned();
    cli.ok(&["verify", "--expect", &head]);
    let (code, err) = cli.fails(&["verify", "--expect", &"ab".repeat(32)]);
    assert_eq!(code, 8, "{err}");
}

#[test]
fn tokens_are_shown_once_and_listed_without_secrets() {
    let cli = Cli::new();
    let token = cli.ok(&["token", "create", "--role", "viewer", "--name", "board-screen"]);
    let token = token.trim();
    assert!(token.starts_with("glv_") && token.len() >= 43, "{token}");
    assert_eq!(token.lines().count(), 1, "only the token on stdout");
    let list = cli.json(&["token", "list"]);
    assert_eq!(list[0]["name"], "board-screen");
    assert!(!list.to_string().contains(token));
    let (code, _) = cli.fails(&["token", "create", "--role", "viewer", "--name", "board-screen"]);
    assert_eq!(code, 5, "a taken name is a conflict, as the API's 409 token-name-taken");
    cli.ok(&["token", "revoke", "board-screen"]);
    let (code, _) = cli.fails(&["token", "revoke", "board-screen"]);
    assert_eq!(code, 3);
}

#[test]
fn export_and_import_round_trip_ten_thousand_events() {
    let source = Cli::new();
    // Build a store of > 10,000 events through the library (fast), then use the binary.
    {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let config = golive::engine::EngineConfig::new(crate::support::public_url(), None);
            let (engine, _) = golive::engine::Engine::open_dir(&source.dir.path().join("data"), config, Default::default()).await.unwrap();
            let actor = golive::domain::Actor::parse("dana.reyes").unwrap();
            let mut tasks = Vec::new();
            for w in 0..20 {
                let engine = engine.clone();
                let actor = actor.clone();
                tasks.push(tokio::spawn(async move {
                    let body = serde_json::json!({"customer": format!("Customer {w}"), "gitlab_url": "https://gitlab.example.com"});
                    let id = engine.open_integration(body, &actor, None).await.unwrap().state.id;
                    for i in 0..500 {
                        let body = serde_json::json!({"type": "add_note", "text": format!("note {i}")});
                        engine.execute(golive::engine::ExecuteRequest::new(id, body, actor.clone())).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            engine.close().await.unwrap();
        });
    }
    let exported = source.dir.path().join("log.jsonl");
    source.ok(&["export", "--output", exported.to_str().unwrap()]);
    let lines = std::fs::read_to_string(&exported).unwrap().lines().count();
    assert_eq!(lines, 10_020);
    let target = Cli::new();
    let report = target.json(&["import", exported.to_str().unwrap()]);
    assert_eq!(report["events"], 10_020);
    assert_eq!(target.json(&["verify"])["head"], source.json(&["verify"])["head"]);
    let ids: Vec<String> = source
        .json(&["integration", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 20);
    for id in ids {
        let mut a = source.json(&["integration", "show", &id]);
        let mut b = target.json(&["integration", "show", &id]);
        // Time-relative conveniences aside, the states are identical.
        for v in [&mut a, &mut b] {
            v["days_in_stage"] = Value::Null;
        }
        assert_eq!(a, b);
    }
    // Import refuses a store that is not empty, and a broken chain.
    let (code, err) = target.fails(&["import", exported.to_str().unwrap()]);
    assert_eq!(code, 5, "a store that is not empty conflicts with an import: {err}");
    let broken = Cli::new();
    let text = std::fs::read_to_string(&exported).unwrap().replacen("note 7", "note 8", 1);
    let tampered = broken.file("tampered.jsonl", &text);
    let (code, err) = broken.fails(&["import", tampered.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("hash"), "{err}");
}

#[test]
fn every_command_has_help() {
    let cli = Cli::new();
    let top = cli.ok(&["--help"]);
    assert!(top.contains("Exit codes"));
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 25, "{commands:?}");
    for command in &commands {
        let help = cli.ok(&[command, "--help"]);
        assert!(help.contains("Usage:"), "{command}");
        for sub in help.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1).take_while(|l| l.starts_with("  "))
        {
            let sub = sub.split_whitespace().next().unwrap();
            if sub != "help" {
                assert!(cli.ok(&[command, sub, "--help"]).contains("Usage:"), "{command} {sub}");
            }
        }
    }
}

#[test]
fn the_readme_transcript_is_true() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block =
        readme.split("<!-- transcript -->").nth(1).expect("README has a transcript").split("```").nth(1).unwrap();
    let cli = Cli::new();
    let mut id = String::new();
    let mut expected = Vec::new();
    let mut command: Option<String> = None;
    let check = |command: &str, expected: &[String], id: &mut String| {
        let args: Vec<String> =
            shell_words(command.trim_start_matches("$ golive ")).into_iter().map(|a| a.replace("<id>", id)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli.ok(&args);
        if args[0] == "integration" && args[1] == "create" {
            *id = out.trim().to_owned();
            return;
        }
        let data_dir = cli.dir.path().join("data").display().to_string();
        let actual: Vec<String> = out
            .lines()
            .map(|l| if id.is_empty() { l.to_owned() } else { l.replace(id.as_str(), "<id>") })
            .map(|l| l.replace(&data_dir, "./golive-data"))
            .collect();
        assert_eq!(actual, expected, "README transcript: {command}");
    };
    for line in block.lines().skip(1) {
        if let Some(rest) = line.strip_prefix("$ ") {
            if let Some(previous) = command.take() {
                check(&previous, &expected, &mut id);
            }
            command = Some(format!("$ {rest}"));
            expected.clear();
        } else if command.is_some() {
            expected.push(line.to_owned());
        }
    }
    if let Some(previous) = command {
        check(&previous, &expected, &mut id);
    }
}

/// Splits a command line on spaces, honouring double quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Replaces what legitimately differs between two runs (ids, times, hashes, tokens,
/// fingerprints) so the rest can be compared.
fn normalise(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let is_uuid = uuid::Uuid::parse_str(s).is_ok();
            let is_time = chrono::DateTime::parse_from_rfc3339(s).is_ok();
            let is_hash = s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
            if is_uuid {
                Value::String("<uuid>".into())
            } else if is_time {
                Value::String("<time>".into())
            } else if is_hash {
                Value::String("<hash>".into())
            } else if s.starts_with("glw_") {
                Value::String("<token>".into())
            } else if s.starts_with("hmac:") {
                Value::String("<fingerprint>".into())
            } else {
                let mut s = s.clone();
                for word in s.clone().split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
                    if uuid::Uuid::parse_str(word).is_ok() {
                        s = s.replace(word, "<uuid>");
                    }
                }
                Value::String(s)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    // Ciphertext differs with every seal.
                    let v = if k == "sealed" { Value::String("<sealed>".into()) } else { normalise(v) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// One scripted session; returns every JSON output.
fn scripted_session(run: &dyn Fn(&[&str]) -> Value, files: &Cli) -> Vec<Value> {
    let mut outputs = Vec::new();
    let created = run(&[
        "integration",
        "create",
        "--customer",
        "Pied Piper",
        "--gitlab-url",
        "https://gitlab.piedpiper.example",
        "--owner",
        "richard",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    outputs.push(created);
    let secret = files.file("s.secret", "gloas-script-secret\n");
    let token = files.file("t.secret", "glpat-script-token\n");
    let public = run(&["status", &id])["redirect_uri"].as_str().unwrap().to_owned();
    for args in [
        vec![
            "prerequisites",
            "confirm",
            &id,
            "--gitlab-admin-access",
            "true",
            "--network-access",
            "true",
            "--factory-admin-account",
            "true",
        ],
        vec![
            "app",
            "register",
            &id,
            "--name",
            "Factory Integration",
            "--redirect-uri",
            &public,
            "--application-id",
            "pp-1",
            "--scopes",
            "api,read_user,read_repository,write_repository,read_registry,sudo",
        ],
        vec!["app", "secret", &id, "--secret-file", secret.to_str().unwrap()],
        vec!["access-token", "provide", &id, "--admin", "true", "--secret-file", token.to_str().unwrap()],
        vec!["info", "submit", &id],
        vec!["network", "policy", &id],
        vec!["network", "vpn", &id, "--tunnel-established", "true", "--ipsec-compatible", "true"],
        vec![
            "network",
            "firewall",
            &id,
            "--outbound-https",
            "true",
            "--outbound-ssh",
            "true",
            "--webhook-endpoint-reachable",
            "true",
        ],
    ] {
        outputs.push(run(&args));
    }
    let issued = run(&["webhook", "issue", &id]);
    let url = issued["webhook_url"].as_str().unwrap().to_owned();
    let secret_token = issued["secret_token"].as_str().unwrap().to_owned();
    outputs.push(issued);
    outputs.push(run(&[
        "webhook",
        "create",
        &id,
        "--url",
        &url,
        "--triggers",
        "push,comments,merge_requests,issues,ci_cd",
    ]));
    let h = headers(files, "note", "Note Hook", &secret_token, "77");
    outputs.push(run(&[
        "webhook",
        "replay",
        &id,
        "--headers",
        h.to_str().unwrap(),
        "--body",
        gitlab_payload("note").to_str().unwrap(),
    ]));
    outputs.push(run(&["block", &id, "--category", "api_failure", "--detail", "probe times out"]));
    outputs.push(run(&["status", &id]));
    outputs.push(run(&["history", &id]));
    outputs.push(run(&["history", &id, "--version", "3"]));
    outputs.push(run(&["diagnose", &id]));
    outputs.push(run(&["board"]));
    outputs.push(run(&["integration", "list", "--blocked", "true"]));
    outputs.push(run(&["audit", "--type", "stage_entered"]));
    outputs.push(run(&["calendar"]));
    outputs
}

#[test]
fn the_same_script_gives_the_same_json_locally_and_against_a_server() {
    // The server, on its own directory, with a rep token named like the local actor.
    let server_side = Cli::new();
    let token = server_side.ok(&["token", "create", "--role", "rep", "--name", "richard"]).trim().to_owned();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .arg("--data-dir")
        .arg(server_side.dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GOLIVE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first_line).unwrap();
    let address = first_line.trim().strip_prefix("listening on ").expect("the first line names the address").to_owned();
    let remote = |args: &[&str]| -> Value {
        let out = Command::cargo_bin("golive")
            .unwrap()
            .args(["--server", &address])
            .args(args)
            .arg("--json")
            .env("GOLIVE_TOKEN", &token)
            .output()
            .unwrap();
        assert!(out.status.success(), "remote {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let local_side = Cli::new();
    let local = |args: &[&str]| -> Value {
        let out = Command::cargo_bin("golive")
            .unwrap()
            .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
            .arg("--data-dir")
            .arg(local_side.dir.path().join("data"))
            .args(["--as", "richard", "--public-url", &address])
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "local {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let remote_outputs = scripted_session(&remote, &server_side);
    let local_outputs = scripted_session(&local, &local_side);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "the server shuts down cleanly on SIGTERM");
    assert_eq!(remote_outputs.len(), local_outputs.len());
    for (i, (r, l)) in remote_outputs.iter().zip(&local_outputs).enumerate() {
        pretty_assertions::assert_eq!(normalise(r), normalise(l), "output {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_script_gives_the_same_json_on_sled_and_on_postgres() {
    let Some(base) = crate::pg::available("the_same_script_gives_the_same_json_on_sled_and_on_postgres").await else {
        return;
    };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let session = |store: Option<String>| {
        let side = Cli::new();
        let run = move |args: &[&str]| -> Value {
            let mut command = side.command();
            if let Some(store) = &store {
                command.args(["--store", store]);
            }
            let out = command.args(args).arg("--json").output().unwrap();
            assert!(out.status.success(), "{store:?} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let files = Cli::new();
        scripted_session(&run, &files)
    };
    // The binary blocks on its own runtime; keep it off this test's workers.
    let on_postgres = tokio::task::spawn_blocking({
        let url = url.clone();
        move || session(Some(url))
    })
    .await
    .unwrap();
    let on_sled = tokio::task::spawn_blocking(move || session(None)).await.unwrap();
    let in_postgres: i64 =
        crate::pg::connect(&url).await.query_one("SELECT count(*) FROM golive_events", &[]).await.unwrap().get(0);
    eprintln!("{} outputs compared; {in_postgres} events in PostgreSQL", on_sled.len());
    assert!(in_postgres > 10, "the PostgreSQL session wrote to PostgreSQL");
    assert_eq!(on_sled.len(), on_postgres.len());
    for (i, (s, p)) in on_sled.iter().zip(&on_postgres).enumerate() {
        pretty_assertions::assert_eq!(normalise(s), normalise(p), "output {i}");
    }
    crate::pg::drop_schema(&base, &schema).await;
}

/// References (contract): a customer name in any case, or a unique id prefix of 6+ characters,
/// wherever an integration id goes; ambiguity exits 2 listing the candidates, no match exits 3;
/// a cancelled integration counts only when nothing else matches.
#[test]
fn integrations_are_named_by_customer_or_id_prefix() {
    let cli = Cli::new();
    let create = |customer: &str, url: &str, extra: &[&str]| {
        let mut args = vec!["integration", "create", "--customer", customer, "--gitlab-url", url];
        args.extend_from_slice(extra);
        cli.ok(&args).trim().to_owned()
    };
    let hooli = create("Hooli", "https://gitlab.hooli.example", &[]);
    let initech = create("Initech", "https://gitlab.initech.example", &[]);
    // By name, in another case, for a read and for a write.
    assert_eq!(cli.json(&["status", "hooli"])["id"], hooli.as_str());
    cli.ok(&["note", "HOOLI", "--text", "kick-off booked"]);
    assert_eq!(cli.json(&["status", &hooli])["version"], 2);
    // By the shortest prefix taken, with or without hyphens.
    let prefix: String = initech.replace('-', "")[..6].to_owned();
    assert_eq!(cli.json(&["status", &prefix])["id"], initech.as_str());
    let (code, err) = cli.fails(&["status", &initech[..5]]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("at least 6 characters"), "{err}");
    // A second onboarding of one instance is refused unless forced (exit 5, naming the first).
    let (code, err) =
        cli.fails(&["integration", "create", "--customer", "hooli", "--gitlab-url", "https://gitlab.hooli.example/"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains(&hooli) && err.contains("--force"), "{err}");
    // Two integrations of one name: exit 2 with both listed.
    let second = create("hooli", "https://gitlab.hooli.example", &["--force"]);
    let (code, err) = cli.fails(&["status", "Hooli"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&hooli) && err.contains(&second) && err.contains("created"), "{err}");
    // The cancelled one no longer counts beside the other.
    cli.ok(&["cancel", &second, "--reason", "opened twice by mistake", "--yes"]);
    assert_eq!(cli.json(&["status", "hooli"])["id"], hooli.as_str());
    let (code, err) = cli.fails(&["status", "Umbrella"]);
    assert_eq!(code, 3, "{err}");
}

/// A local write with no known actor is refused with a one-line fix; reads still work.
#[test]
fn a_local_write_without_a_known_actor_is_refused() {
    let cli = Cli::new();
    let id = cli
        .ok(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"])
        .trim()
        .to_owned();
    let anonymous = |args: &[&str]| {
        let mut command = Command::cargo_bin("golive").unwrap();
        command.arg("--data-dir").arg(cli.dir.path().join("data")).args(args).env("GOLIVE_ALLOW_LOCAL_URLS", "true");
        for name in ["USER", "LOGNAME", "USERNAME", "GOLIVE_ACTOR", "GOLIVE_SERVER"] {
            command.env_remove(name);
        }
        command.output().unwrap()
    };
    let refused = anonymous(&["note", &id, "--text", "who wrote this?"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--as NAME") && err.lines().count() == 1, "{err}");
    assert_eq!(cli.json(&["status", &id])["version"], 1, "nothing was written");
    assert!(anonymous(&["status", &id]).status.success(), "a read needs no actor");
}

/// The smaller items of the rep's day: a date where a time goes, valid values listed when one
/// is unknown, "1 onboarding", and `golive demo` from any directory (the journeys are built in).
#[test]
fn dates_known_values_plurals_and_the_demo_from_anywhere() {
    let cli = Cli::new();
    let id = cli
        .ok(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"])
        .trim()
        .to_owned();
    let today = chrono::Utc::now().date_naive().to_string();
    let page = cli.json(&["audit", "--since", &today, "--until", &today]);
    assert_eq!(page["events"][0]["integration_id"], id.as_str(), "today's events, by date alone: {page}");
    let (code, err) = cli.fails(&["audit", "--type", "probe"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("probe_result_recorded") && err.contains("stage_entered"), "{err}");
    let (code, err) = cli.fails(&["audit", "--since", "29/11/2026"]);
    assert_eq!(code, 2, "{err}");
    assert!(cli.ok(&["insights"]).contains("1 onboarding (log position"));
    // A hint names the flag the command has.
    let empty = cli.file("empty.token", "\n");
    let h = headers(&cli, "push", "Push Hook", "[REDACTED]", "1");
    let push = gitlab_payload("push");
    let (code, err) = cli.fails(&[
        "webhook",
        "replay",
        &id,
        "--headers",
        h.to_str().unwrap(),
        "--body",
        push.to_str().unwrap(),
        "--token-file",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--token-file FILE") && !err.contains("--secret-file"), "{err}");
    let elsewhere = tempfile::tempdir().unwrap();
    let demo =
        Command::cargo_bin("golive").unwrap().current_dir(elsewhere.path()).args(["demo", "--json"]).output().unwrap();
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let rows: Value = serde_json::from_slice(&demo.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4, "{rows}");
}

/// `feedback list`: the open items first, the resolved ones with --all.
#[test]
fn feedback_items_are_listed_open_first() {
    let cli = Cli::new();
    cli.ok(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"]);
    assert!(cli.ok(&["feedback", "list", "hooli"]).contains("no open feedback items"));
    cli.ok(&["feedback", "report", "hooli", "--summary", "The Droid answered in the wrong thread"]);
    cli.ok(&["feedback", "report", "hooli", "--summary", "Pipeline comment arrived twice"]);
    let open = cli.json(&["feedback", "list", "hooli"]);
    assert_eq!(open.as_array().unwrap().len(), 2, "{open}");
    let first = open[0]["id"].as_str().unwrap().to_owned();
    cli.ok(&["feedback", "resolve", "hooli", "--feedback-id", &first, "--resolution", "Fixed in the Droid's prompt"]);
    let open = cli.json(&["feedback", "list", "hooli"]);
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["summary"], "Pipeline comment arrived twice");
    let all = cli.json(&["feedback", "list", "hooli", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[1]["id"], first.as_str(), "resolved items come after the open ones");
    let table = cli.ok(&["feedback", "list", "hooli", "--all"]);
    assert!(table.contains("resolved") && table.contains("open"), "{table}");
}

/// `history` reads like a log a person keeps: times to the second, who, and what in words.
#[test]
fn history_is_readable() {
    let cli = Cli::new();
    cli.ok(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"]);
    cli.ok(&["note", "hooli", "--text", "kick-off booked for Tuesday"]);
    let table = cli.ok(&["history", "hooli"]);
    assert!(table.contains("Opened for Hooli (https://gitlab.hooli.example)"), "{table}");
    assert!(table.contains("Note: kick-off booked for Tuesday"), "{table}");
    assert!(table.contains("dana.reyes"), "{table}");
    // Seconds, no fractions, no integration column for one integration's history.
    let time = regex_free_time(&table);
    assert_eq!(time.len(), "2026-11-29 09:30:00".len(), "{table}");
    assert!(!table.contains("INTEGRATION"), "{table}");
    assert!(cli.ok(&["audit"]).contains("INTEGRATION"));
}

/// The first `YYYY-MM-DD HH:MM:SS...` run in `text`, up to the next column separator.
fn regex_free_time(text: &str) -> String {
    let start = text.find("20").expect("a year");
    text[start..].split(['│', '┆', '|']).next().unwrap().trim().to_owned()
}

/// Splits a line as a POSIX shell would for the words golive quotes: single quotes keep what
/// they hold, a backslash outside them keeps the next character.
fn posix_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let word = current.get_or_insert_with(String::new);
                for inner in chars.by_ref() {
                    if inner == '\'' {
                        break;
                    }
                    word.push(inner);
                }
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    current.get_or_insert_with(String::new).push(next);
                }
            }
            ' ' => {
                if let Some(word) = current.take() {
                    words.push(word);
                }
            }
            c => current.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(current);
    words
}

#[test]
fn posix_words_read_what_golive_quotes() {
    assert_eq!(
        posix_words("golive note 'acme robotics' --text 'it'\\''s done'"),
        ["golive", "note", "acme robotics", "--text", "it's done"]
    );
}

#[test]
fn following_the_next_lines_alone_takes_an_onboarding_live() {
    // Given a new onboarding referred to by its customer's name, in another case.
    let cli = Cli::new();
    cli.ok(&["init"]);
    let instance = "https://gitlab.acme-robotics.example";
    cli.ok(&["integration", "create", "--customer", "Acme Robotics", "--gitlab-url", instance]);
    let reference = "acme robotics";
    let secret = cli.file("secret.txt", "gloas-next-lines-secret-1\n");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let deliveries = [("note", "Note Hook"), ("push", "Push Hook"), ("merge_request_open", "Merge Request Hook")];
    let mut delivered = 0;
    let mut secret_token = String::new();
    let mut ran = std::collections::BTreeSet::new();
    // When the rep runs, each time, the first suggested line that does not reach the network
    // (the probe and the checks would ask the customer's GitLab), with the placeholders filled.
    for round in 0..60 {
        let status = cli.ok(&["status", reference]);
        let lines: Vec<&str> = status.lines().filter_map(|l| l.strip_prefix("next: ")).collect();
        if status.contains("stage: live") {
            assert!(round > 15, "live after {round} rounds");
            assert!(
                lines
                    .iter()
                    .all(|l| l.starts_with("golive probe 'acme robotics'")
                        || l.starts_with("golive check 'acme robotics'")),
                "{lines:?}"
            );
            // Then every kind of step was run from a suggested line.
            for verb in
                ["prerequisites", "app", "access-token", "info", "network", "webhook", "test", "validate", "launch"]
            {
                assert!(ran.contains(verb), "no suggested {verb} line was run: {ran:?}");
            }
            return;
        }
        let line = lines
            .iter()
            .find(|l| !l.starts_with("golive probe ") && !l.starts_with("golive check "))
            .unwrap_or_else(|| panic!("no runnable next line in:\n{status}"));
        assert!(line.starts_with("golive ") && line.contains("'acme robotics'"), "{line}");
        let mut words = posix_words(line);
        assert_eq!(words.remove(0), "golive");
        ran.insert(words[0].clone());
        let mut fill = |placeholder: &str| -> String {
            match placeholder {
                "FILE" => secret.to_str().unwrap().to_owned(),
                "APPLICATION_ID" => "app-42".into(),
                "URL" => instance.into(),
                "PEERING_ID" => "pcx-0a1b2c3d".into(),
                "CUSTOMER_VPC_ID" => "vpc-0123abcd".into(),
                "FACTORY_VPC_ID" => "vpc-0fedcba987654321a".into(),
                "TEXT" => "done on the call".into(),
                "YYYY-MM-DD" => today.clone(),
                "HEADERS_FILE" => {
                    let (name, event) = deliveries[delivered];
                    headers(&cli, name, event, &secret_token, &(delivered + 1).to_string()).to_str().unwrap().to_owned()
                }
                "BODY_FILE" => {
                    let path = gitlab_payload(deliveries[delivered].0);
                    delivered += 1;
                    path.to_str().unwrap().to_owned()
                }
                other => other.to_owned(),
            }
        };
        let args: Vec<String> = words.iter().map(|w| fill(w)).collect();
        for word in &args {
            let known = golive::views::actions::PLACEHOLDERS.iter().any(|(p, _)| p == word);
            assert!(!known, "placeholder {word} left in {line}");
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli.ok(&args);
        if let Some(token) = out.lines().find_map(|l| l.split_once("(shown once, paste it into GitLab now): ")) {
            secret_token = token.1.to_owned();
        }
        // A command's answer suggests runnable lines too.
        assert!(out.lines().filter_map(|l| l.strip_prefix("next: ")).all(|l| l.starts_with("golive ")), "{out}");
    }
    panic!("not live after 60 rounds:\n{}", cli.ok(&["status", reference]));
}

#[test]
fn a_step_recorded_wrong_says_what_differs_and_status_shows_what_was_recorded() {
    let cli = Cli::new();
    cli.ok(&["init"]);
    cli.ok(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"]);
    // When the application is recorded with its name in another case.
    let out = cli.ok(&[
        "app",
        "register",
        "hooli",
        "--name",
        "factory integration",
        "--redirect-uri",
        "http://127.0.0.1:8080/oauth/gitlab/callback",
        "--application-id",
        "app-7",
        "--scopes",
        "api",
    ]);
    // Then the answer names the difference, and the next line corrects it, keeping the id.
    assert!(out.contains("unmet: GitLab application registered"), "{out}");
    assert!(out.contains("the name recorded is \"factory integration\", the guide expects \"Factory Integration\" (names are compared exactly, case included)"), "{out}");
    assert!(out.contains("the application was recorded without the scopes read_registry"), "{out}");
    assert!(out.contains("next: golive app register hooli --name 'Factory Integration'"), "{out}");
    assert!(out.contains("--application-id app-7"), "{out}");
    // And status shows the values recorded, the secret as "provided" only.
    let secret = cli.file("s.txt", "gloas-very-secret-value-1");
    cli.ok(&["app", "secret", "hooli", "--secret-file", secret.to_str().unwrap()]);
    let status = cli.ok(&["status", "hooli"]);
    assert!(status.contains("Application name") && status.contains("factory integration"), "{status}");
    assert!(status.contains("Application Secret") && status.contains("provided"), "{status}");
    assert!(!status.contains("gloas-very-secret-value-1"));
    assert!(status.contains("WHY UNMET") && status.contains("nothing recorded yet"), "{status}");
}

#[test]
fn one_public_url_set_once_and_recorded_by_each_integration() {
    let cli = Cli::new();
    let strict = |args: &[&str]| {
        let out = cli.command().env_remove("GOLIVE_ALLOW_LOCAL_URLS").args(args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Given no public URL: opening an integration would give customers a loopback URL.
    let (code, _, stderr) =
        strict(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("golive init --public-url") && stderr.contains("--allow-local-urls"), "{stderr}");
    assert!(cli.json(&["integration", "list"]).as_array().unwrap().is_empty(), "a refused open writes nothing");
    // A plain-http URL is refused as the stored one too.
    let (code, _, stderr) = strict(&["init", "--public-url", "http://golive.example.com"]);
    assert_eq!(code, 2, "{stderr}");
    // When it is set once with init.
    let (code, stdout, stderr) = strict(&["init", "--public-url", "https://golive.example.com"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("public URL stored: https://golive.example.com"), "{stdout}");
    // Then an integration opened later records it, and every URL it gives derives from it.
    let (code, stdout, stderr) =
        strict(&["integration", "create", "--customer", "Hooli", "--gitlab-url", "https://gitlab.hooli.example"]);
    assert_eq!(code, 0, "{stderr}");
    let id = stdout.trim().to_owned();
    let state = cli.json(&["status", "hooli"]);
    assert_eq!(state["public_url"], "https://golive.example.com");
    assert_eq!(state["redirect_uri"], "https://golive.example.com/oauth/gitlab/callback");
    // Even when the process at hand is given another public URL, flag or environment.
    let (code, stdout, stderr) = strict(&["--public-url", "https://elsewhere.example", "webhook", "issue", "hooli"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("webhook URL: https://golive.example.com/hooks/gitlab/{id}")), "{stdout}");
    let out = cli
        .command()
        .env_remove("GOLIVE_ALLOW_LOCAL_URLS")
        .env("GOLIVE_PUBLIC_URL", "https://elsewhere.example")
        .args(["intake", "create", "hooli"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("https://golive.example.com/intake/{id}/")), "{stdout}");
    // The environment wins over the stored URL for integrations opened under it.
    let out = cli
        .command()
        .env_remove("GOLIVE_ALLOW_LOCAL_URLS")
        .env("GOLIVE_PUBLIC_URL", "https://golive-eu.example.com")
        .args(["integration", "create", "--customer", "Pied Piper", "--gitlab-url", "https://gitlab.piedpiper.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cli.json(&["status", "pied piper"])["public_url"], "https://golive-eu.example.com");
    // The intake links are listed without their secret.
    let list = cli.ok(&["intake", "list", "hooli"]);
    assert!(list.contains("open") && !list.contains("/intake/"), "{list}");
    // Changing one integration's public URL is an explicit, audited command; the next steps
    // say what to redo (the application's callback, a webhook URL under the new address).
    let (code, stdout, stderr) = strict(&["integration", "public-url", "hooli", "https://golive-new.example.com"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("recorded: public_url_changed"), "{stdout}");
    assert!(stdout.contains("next: golive app register hooli"), "{stdout}");
    let state = cli.json(&["status", "hooli"]);
    assert_eq!(state["public_url"], "https://golive-new.example.com");
    assert_eq!(state["redirect_uri"], "https://golive-new.example.com/oauth/gitlab/callback");
    let issued = state["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "webhook.credentials_issued")
        .unwrap()
        .clone();
    assert_eq!(issued["met"], false);
    assert!(issued["reason"].as_str().unwrap().contains("https://golive-new.example.com"), "{issued}");
    assert!(cli.ok(&["history", "hooli"]).contains("Public URL changed to https://golive-new.example.com"));
    let (code, _, _) = strict(&["integration", "public-url", "hooli", "http://127.0.0.1:9"]);
    assert_eq!(code, 2, "a loopback public URL needs --allow-local-urls");
    // With --allow-local-urls, a loopback URL is given, with a warning.
    let out = cli
        .command()
        .args([
            "--public-url",
            "http://127.0.0.1:8080",
            "integration",
            "create",
            "--customer",
            "Initech",
            "--gitlab-url",
            "https://gitlab.initech.example",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"), "{}", String::from_utf8_lossy(&out.stderr));
}
