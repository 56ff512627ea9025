//! The probe's egress policy end to end, on loopback only: without `--probe-allow` a loopback
//! instance (in any spelling) is refused and no connection is made (the listeners count their
//! accepts); with it, the probe connects. The engine's configuration, the local `golive probe`
//! and `golive serve` each apply the policy. The table of address spellings (metadata
//! addresses, names resolving there) is tested with an injected resolver in
//! `src/gitlab/egress.rs`, so that no traffic leaves loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use golive::domain::Actor;
use golive::engine::{ExecuteRequest, ManualClock};
use golive::gitlab::probe::ProbeConfig;
use serde_json::{json, Value};

/// A loopback port that counts the connections it accepts, and closes them.
pub struct CountingListener {
    pub port: u16,
    pub accepts: Arc<AtomicUsize>,
}

impl CountingListener {
    pub fn accepted(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

/// Binds with std so that it also works outside a runtime (the CLI tests), and accepts on a
/// thread of its own.
pub fn counting_listener() -> CountingListener {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = accepts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    CountingListener { port, accepts }
}

fn quick() -> ProbeConfig {
    ProbeConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        max_body_bytes: 1024 * 1024,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_probe_allow_a_loopback_instance_is_refused_and_never_contacted() {
    let dir = tempfile::tempdir().unwrap();
    // The engine's default configuration: no allowance.
    let engine = crate::engine::engine_at(dir.path(), Arc::new(ManualClock::new(chrono::Utc::now()))).await;
    let https = counting_listener();
    let ssh = counting_listener();
    let actor = Actor::parse("rep").unwrap();
    let port = https.port;
    for spelling in [
        format!("https://127.0.0.1:{port}"),
        format!("https://localhost:{port}"),
        format!("https://2130706433:{port}"),
        format!("https://0x7f.1:{port}"),
        format!("https://0177.0.0.1:{port}"),
        format!("https://[::ffff:127.0.0.1]:{port}"),
        format!("https://[::1]:{port}"),
    ] {
        let opened = engine
            .open_integration(json!({"customer": "Loopback", "gitlab_url": spelling}), &actor, None)
            .await
            .unwrap();
        let id = opened.state.id;
        for body in [
            json!({"type": "set_instance_url", "gitlab_url": spelling, "ssh_port": ssh.port}),
            json!({"type": "provide_access_token", "token": "glpat-must-stay-home", "admin": true}),
        ] {
            engine.execute(ExecuteRequest::new(id, body, actor.clone())).await.unwrap();
        }
        let (executed, found) = engine.probe(id, &quick(), &actor).await.unwrap();
        assert_eq!(found["category"], "api_failure", "{spelling}: {found}");
        assert_eq!(found["api_reachable"], false, "{spelling}");
        let detail = found["detail"].as_str().unwrap();
        assert!(detail.starts_with("the destination is not allowed"), "{spelling}: {detail}");
        let recorded = executed.events.first().unwrap();
        assert_eq!((recorded.event_type.as_str(), recorded.actor.as_str()), ("probe_result_recorded", "rep"));
        assert_eq!(recorded.data["detail"], found["detail"]);
        let diagnosis = engine.diagnose(id).await.unwrap();
        assert!(
            diagnosis.findings.iter().any(|f| f.message.contains("the destination is not allowed")),
            "{spelling}: {diagnosis:?}"
        );
    }
    // Give a connection that was opened anyway time to be counted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(https.accepted(), 0, "no HTTPS connection was opened");
    assert_eq!(ssh.accepted(), 0, "no SSH connection was opened");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_probe_allow_in_the_engine_s_configuration_the_probe_connects() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        crate::probe::engine_allowing_loopback(dir.path(), Arc::new(ManualClock::new(chrono::Utc::now()))).await;
    let https = counting_listener();
    let ssh = counting_listener();
    let actor = Actor::parse("rep").unwrap();
    let url = format!("https://localhost:{}", https.port);
    let id = engine.open_integration(json!({"customer": "Allowed", "gitlab_url": url}), &actor, None).await.unwrap();
    let id = id.state.id;
    for body in [
        json!({"type": "set_instance_url", "gitlab_url": url, "ssh_port": ssh.port}),
        json!({"type": "provide_access_token", "token": "glpat-allowed", "admin": true}),
    ] {
        engine.execute(ExecuteRequest::new(id, body, actor.clone())).await.unwrap();
    }
    let (_, found) = engine.probe(id, &quick(), &actor).await.unwrap();
    // The listener is no TLS server: the probe connected, then failed the handshake.
    assert_eq!(found["category"], "api_failure", "{found}");
    assert!(!found["detail"].as_str().unwrap().contains("not allowed"), "{found}");
    assert!(https.accepted() >= 1, "the HTTPS check connected");
    assert!(ssh.accepted() >= 1, "the SSH check connected");
    engine.close().await.unwrap();
}

fn golive(data: &std::path::Path) -> Command {
    let mut command = Command::cargo_bin("golive").unwrap();
    command.arg("--data-dir").arg(data).args(["--as", "dana.reyes"]);
    command.env_remove("GOLIVE_SERVER").env_remove("GOLIVE_MASTER_KEY").env_remove("GOLIVE_PROBE_ALLOW");
    command.env("GOLIVE_ALLOW_LOCAL_URLS", "true");
    command
}

#[track_caller]
fn json_of(output: std::process::Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Opens an integration on `https://127.0.0.1:port` with an access token, through `run`.
fn prepared(run: &dyn Fn(&[&str]) -> Value, port: u16, token_file: &std::path::Path) -> String {
    let url = format!("https://127.0.0.1:{port}");
    let opened = run(&["integration", "create", "--customer", "Loopback Inc", "--gitlab-url", &url]);
    let id = opened["id"].as_str().or_else(|| opened["id"].as_str()).expect("an id").to_owned();
    run(&["access-token", "provide", &id, "--admin", "true", "--secret-file", token_file.to_str().unwrap()]);
    id
}

#[test]
fn the_local_cli_refuses_loopback_unless_probe_allow_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = dir.path().join("token");
    std::fs::write(&token, "glpat-cli-egress\n").unwrap();
    let https = counting_listener();
    let run = |args: &[&str]| json_of(golive(&data).args(args).arg("--json").output().unwrap());
    let id = prepared(&run, https.port, &token);

    let refused = run(&["probe", &id]);
    assert_eq!(refused["category"], "api_failure", "{refused}");
    assert!(refused["detail"].as_str().unwrap().starts_with("the destination is not allowed"), "{refused}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(https.accepted(), 0);
    // The probe is an action of whoever asked: the CLI's actor.
    let audit = run(&["audit", "--actor", "dana.reyes", "--type", "probe_result_recorded"]);
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");

    // The flag, then the environment variable (comma-separated).
    let allowed =
        json_of(golive(&data).args(["probe", &id, "--json", "--probe-allow", "127.0.0.0/8"]).output().unwrap());
    assert!(!allowed["detail"].as_str().unwrap_or("").contains("not allowed"), "{allowed}");
    assert!(https.accepted() >= 1);
    let before = https.accepted();
    let from_env = json_of(
        golive(&data)
            .args(["probe", &id, "--json"])
            .env("GOLIVE_PROBE_ALLOW", "10.0.0.0/8,127.0.0.1")
            .output()
            .unwrap(),
    );
    assert!(!from_env["detail"].as_str().unwrap_or("").contains("not allowed"), "{from_env}");
    assert!(https.accepted() > before);

    // A value that is not a CIDR is a usage error.
    let bad = golive(&data).args(["probe", &id, "--probe-allow", "localhost"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}

#[test]
fn serve_applies_probe_allow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "glpat-serve-egress\n").unwrap();
    let api_token = String::from_utf8(
        golive(&data).args(["token", "create", "--role", "rep", "--name", "erlich"]).output().unwrap().stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let https = counting_listener();
    let serve = |allow: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_golive"));
        command.arg("--data-dir").arg(&data).args(["serve", "--listen", "127.0.0.1:0"]);
        command
            .env("GOLIVE_LOG", "warn")
            .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
            .env_remove("GOLIVE_PROBE_ALLOW")
            .env_remove("GOLIVE_MASTER_KEY");
        if let Some(allow) = allow {
            command.args(["--probe-allow", allow]);
        }
        let mut child =
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let mut first_line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first_line)
            .unwrap();
        let address =
            first_line.trim().strip_prefix("listening on ").expect("the first line names the address").to_owned();
        (child, address)
    };
    let remote = |address: &str, args: &[&str]| -> Value {
        json_of(
            Command::cargo_bin("golive")
                .unwrap()
                .args(["--server", address])
                .args(args)
                .arg("--json")
                .env("GOLIVE_TOKEN", &api_token)
                .env_remove("GOLIVE_PROBE_ALLOW")
                .output()
                .unwrap(),
        )
    };
    let stop = |mut child: std::process::Child| {
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());
    };

    let (child, address) = serve(None);
    let id = prepared(&|args: &[&str]| remote(&address, args), https.port, &token_file);
    let refused = remote(&address, &["probe", &id]);
    assert!(refused["detail"].as_str().unwrap().starts_with("the destination is not allowed"), "{refused}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(https.accepted(), 0);
    stop(child);

    let (child, address) = serve(Some("127.0.0.0/8"));
    let allowed = remote(&address, &["probe", &id]);
    assert!(!allowed["detail"].as_str().unwrap_or("").contains("not allowed"), "{allowed}");
    assert!(https.accepted() >= 1, "the server's probe connected");
    // Both probes are the rep's actions, found by an audit of the rep's token name.
    let audit = remote(&address, &["audit", "--actor", "erlich", "--type", "probe_result_recorded"]);
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(2), "{audit}");
    stop(child);
}
