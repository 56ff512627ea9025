//! Several `golive serve` processes (the real binary) on one PostgreSQL database: concurrent
//! commands and webhook deliveries through both replicas, SSE clients on both, a SIGKILL of one
//! replica mid-load, and `golive migrate` between sled and PostgreSQL.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::payload;

const BIN: &str = env!("CARGO_BIN_EXE_golive");

pub struct Replica {
    pub child: Child,
    pub address: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on `url` (a postgres:// URL, or `sled` for the data directory's store).
pub fn golive(url: &str, dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_remove("GOLIVE_MASTER_KEY")
        .env_remove("GOLIVE_SERVER")
        .env_remove("GOLIVE_STORE")
        .arg("--store")
        .arg(url)
        .arg("--data-dir")
        .arg(dir)
        .arg("--master-key-file")
        .arg(dir.join("shared-master.key"));
    command
}

/// Starts `golive serve` on port 0 and waits for its `listening on` line.
pub async fn start_replica(url: &str, dir: &std::path::Path) -> Replica {
    let mut child = golive(url, dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GOLIVE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let address =
        line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_owned();
    Replica { child, address }
}

/// Opens an integration through `address` and issues its webhook credentials: (id, token).
pub async fn open_with_hook(http: &reqwest::Client, address: &str, token: &str, customer: &str) -> (String, String) {
    let opened: Value = http
        .post(format!("{address}/api/v1/integrations"))
        .bearer_auth(token)
        .json(&json!({"customer": customer, "gitlab_url": "https://gitlab.acme-robotics.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = opened["state"]["id"].as_str().unwrap().to_owned();
    let issued: Value = http
        .post(format!("{address}/api/v1/integrations/{id}/commands"))
        .bearer_auth(token)
        .json(&json!({"type": "issue_webhook_credentials"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (id, issued["secret_token"].as_str().unwrap().to_owned())
}

/// Follows `/api/v1/events/stream` and records the positions it receives.
fn follow(address: &str, token: &str) -> (Arc<Mutex<Vec<u64>>>, tokio::task::JoinHandle<()>) {
    follow_from(address, token, 0, Arc::new(Mutex::new(Vec::new())))
}

/// Follows the stream resuming after `last` (with `Last-Event-ID`), appending to `seen`.
pub fn follow_from(
    address: &str,
    token: &str,
    last: u64,
    seen: Arc<Mutex<Vec<u64>>>,
) -> (Arc<Mutex<Vec<u64>>>, tokio::task::JoinHandle<()>) {
    let (url, token, sink) = (format!("{address}/api/v1/events/stream"), token.to_owned(), seen.clone());
    let task = tokio::spawn(async move {
        let Ok(response) =
            reqwest::Client::new().get(url).bearer_auth(token).header("last-event-id", last.to_string()).send().await
        else {
            return;
        };
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id:")) {
                    sink.lock().unwrap().push(id.trim().parse().unwrap());
                }
            }
        }
    });
    (seen, task)
}

pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "waited {timeout:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn exactly_once_in_order(seen: &[u64], head: u64, who: &str) {
    let expected: Vec<u64> = (1..=head).collect();
    assert_eq!(seen, expected.as_slice(), "{who} saw every event exactly once, in position order");
}

pub async fn all_events(http: &reqwest::Client, address: &str, token: &str) -> Vec<Value> {
    let text =
        http.get(format!("{address}/api/v1/export")).bearer_auth(token).send().await.unwrap().text().await.unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Asks the server to verify the whole hash chain and asserts that it holds; returns the answer.
pub async fn verify_chain(http: &reqwest::Client, address: &str, token: &str) -> Value {
    let verify: Value = http
        .get(format!("{address}/api/v1/audit/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["valid"], true, "{verify}");
    verify
}

/// An acknowledged write: a note's text, or a delivery's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acked {
    Note(String),
    Delivery(String),
}

pub async fn load(
    http: reqwest::Client,
    addresses: Vec<String>,
    token: String,
    hooks: Vec<(String, String)>,
    client: usize,
    operations: usize,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let push = payload("push");
    for n in 0..operations {
        let address = &addresses[(client + n) % addresses.len()];
        let (id, hook_token) = &hooks[(client * 7 + n) % hooks.len()];
        if n % 3 == 2 {
            let key = format!("delivery-{client}-{n}");
            let sent = http
                .post(format!("{address}/hooks/gitlab/{id}"))
                .header("content-type", "application/json")
                .header("x-gitlab-event", "Push Hook")
                .header("x-gitlab-token", hook_token)
                .header("x-gitlab-instance", "https://gitlab.acme-robotics.example")
                .header("x-gitlab-event-uuid", uuid::Uuid::new_v4().to_string())
                .header("idempotency-key", &key)
                .body(push.clone())
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                acked.lock().unwrap().push(Acked::Delivery(key));
            }
        } else {
            let text = format!("note {client}-{n}");
            let sent = http
                .post(format!("{address}/api/v1/integrations/{id}/commands"))
                .bearer_auth(&token)
                .json(&json!({"type": "add_note", "text": text}))
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == StatusCode::OK) {
                acked.lock().unwrap().push(Acked::Note(text));
            }
        }
    }
}

pub fn check_log(events: &[Value], acked: &[Acked]) {
    let positions: Vec<u64> = events.iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>(), "no skipped or duplicate position");
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let mut deliveries = 0usize;
    for e in events {
        if e["type"] == "note_added" {
            *notes.entry(e["data"]["text"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        if e["type"] == "webhook_delivery_recorded" {
            deliveries += 1;
        }
    }
    let mut acked_deliveries = 0usize;
    for a in acked {
        match a {
            Acked::Note(text) => assert_eq!(notes.get(text), Some(&1), "acknowledged note {text:?} is in the log once"),
            Acked::Delivery(_) => acked_deliveries += 1,
        }
    }
    assert!(
        deliveries >= acked_deliveries,
        "every acknowledged delivery is recorded ({deliveries} < {acked_deliveries})"
    );
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for e in events {
        versions.entry(e["integration_id"].as_str().unwrap()).or_default().push(e["version"].as_u64().unwrap());
    }
    for (stream, v) in versions {
        assert_eq!(v, (1..=v.len() as u64).collect::<Vec<_>>(), "{stream}: contiguous versions, no lost update");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_database_lose_nothing_and_stream_everything_in_order() {
    let Some(base) = crate::pg::available("two_replicas_on_one_database").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared-master.key"), "ab".repeat(32)).unwrap();
    let created =
        golive(&url, dir.path()).args(["token", "create", "--role", "admin", "--name", "load"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();

    let a = start_replica(&url, dir.path()).await;
    let mut b = start_replica(&url, dir.path()).await;
    let http = reqwest::Client::new();
    let (seen_a, _follow_a) = follow(&a.address, &token);
    let (seen_b, follow_b) = follow(&b.address, &token);

    // Integrations opened through both replicas, each with webhook credentials.
    let mut hooks = Vec::new();
    for i in 0..6 {
        let address = if i % 2 == 0 { &a.address } else { &b.address };
        hooks.push(open_with_hook(&http, address, &token, &format!("Replica Customer {i}")).await);
    }

    // Phase 1: 16 clients through both replicas.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let addresses = vec![a.address.clone(), b.address.clone()];
    let clients: Vec<_> = (0..16)
        .map(|c| {
            tokio::spawn(load(http.clone(), addresses.clone(), token.clone(), hooks.clone(), c, 30, acked.clone()))
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let events = all_events(&http, &a.address, &token).await;
    check_log(&events, &acked.lock().unwrap());
    let head = events.len() as u64;
    eprintln!("phase 1: {head} events, {} acknowledged writes", acked.lock().unwrap().len());
    wait_until("both SSE clients to reach the head", Duration::from_secs(20), || {
        seen_a.lock().unwrap().len() as u64 >= head && seen_b.lock().unwrap().len() as u64 >= head
    })
    .await;
    exactly_once_in_order(&seen_a.lock().unwrap(), head, "replica A's SSE client");
    exactly_once_in_order(&seen_b.lock().unwrap(), head, "replica B's SSE client");

    // Phase 2: SIGKILL replica B mid-load; A keeps serving.
    let clients: Vec<_> = (0..16)
        .map(|c| {
            tokio::spawn(load(
                http.clone(),
                addresses.clone(),
                token.clone(),
                hooks.clone(),
                100 + c,
                40,
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    follow_b.abort();
    eprintln!("replica B killed (SIGKILL) mid-load");
    for c in clients {
        c.await.unwrap();
    }
    let (status, _) = (http.get(format!("{}/readyz", a.address)).send().await.unwrap().status(), ());
    assert_eq!(status, StatusCode::OK, "replica A keeps serving");
    let events = all_events(&http, &a.address, &token).await;
    check_log(&events, &acked.lock().unwrap());
    let head = events.len() as u64;
    wait_until("A's SSE client to reach the head", Duration::from_secs(20), || {
        seen_a.lock().unwrap().len() as u64 >= head
    })
    .await;
    exactly_once_in_order(&seen_a.lock().unwrap(), head, "replica A's SSE client");
    let verify = verify_chain(&http, &a.address, &token).await;
    assert_eq!(verify["events_checked"], json!(head));

    // A restarted B catches up from the shared log.
    let b2 = start_replica(&url, dir.path()).await;
    let (seen_b2, _follow_b2) = follow(&b2.address, &token);
    wait_until("the restarted replica's SSE client to catch up", Duration::from_secs(20), || {
        seen_b2.lock().unwrap().len() as u64 >= head
    })
    .await;
    exactly_once_in_order(&seen_b2.lock().unwrap(), head, "the restarted replica's SSE client");
    let acked_notes: HashSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter_map(|a| match a {
            Acked::Note(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    eprintln!("after the kill: {head} events, {} acknowledged notes, all present once", acked_notes.len());
    drop((a, b2));
    crate::pg::drop_schema(&base, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_sled_to_postgres_and_back_with_identical_states() {
    let Some(base) = crate::pg::available("migrate_copies_sled_to_postgres_and_back").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared-master.key"), "cd".repeat(32)).unwrap();
    let sled_dir = dir.path().join("sled");
    // A sled store with the demo journeys and a secret.
    let mut serve = Command::new(BIN)
        .args(["--data-dir"])
        .arg(&sled_dir)
        .arg("--master-key-file")
        .arg(dir.path().join("shared-master.key"))
        .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = serve.stdout.take().unwrap();
    // Two lines: where it listens, then the demo token once the journeys are loaded.
    tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("demo viewer token"), "{line}");
    })
    .await
    .unwrap();
    // SIGTERM for a clean shutdown (the store is flushed and its lock released).
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    serve.wait().unwrap();

    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .arg("--master-key-file")
            .arg(dir.path().join("shared-master.key"))
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let there = run(&["migrate", "--from", sled_dir.to_str().unwrap(), "--to", &url]);
    assert_eq!(there["chain_valid"], true);
    assert_eq!(there["integrations_compared"], 4);
    assert!(there["data_keys"].as_u64().unwrap() >= 3, "{there}");
    let back_dir = dir.path().join("back");
    let back = run(&["migrate", "--from", &url, "--to", back_dir.to_str().unwrap()]);
    assert_eq!(back["head"], there["head"], "the same chain, hash for hash");
    assert_eq!(back["events"], there["events"]);
    // A non-empty target is refused and left as it was.
    let output = Command::new(BIN)
        .arg("--master-key-file")
        .arg(dir.path().join("shared-master.key"))
        .args(["migrate", "--from", sled_dir.to_str().unwrap(), "--to", &url])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("empty"), "{}", String::from_utf8_lossy(&output.stderr));
    crate::pg::drop_schema(&base, &schema).await;
}
