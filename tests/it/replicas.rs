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
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
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
    let id = opened["id"].as_str().unwrap().to_owned();
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

/// Creates an admin token through the CLI on the shared store.
fn admin_token(url: &str, dir: &std::path::Path, name: &str) -> String {
    let created = golive(url, dir).args(["token", "create", "--role", "admin", "--name", name]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    String::from_utf8(created.stdout).unwrap().trim().to_owned()
}

async fn create_token(http: &reqwest::Client, address: &str, admin: &str, name: &str) -> String {
    let response = http
        .post(format!("{address}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": name, "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "creating {name} through {address}");
    response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn status_with(http: &reqwest::Client, address: &str, token: &str) -> StatusCode {
    http.get(format!("{address}/api/v1/board")).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_revocations_on_one_replica_survive_creations_on_the_other() {
    let Some(base) = crate::pg::available("token_revocations_survive_creations").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared-master.key"), "ef".repeat(32)).unwrap();
    let admin = admin_token(&url, dir.path(), "racing-admin");
    let a = start_replica(&url, dir.path()).await;
    let b = start_replica(&url, dir.path()).await;
    let http = reqwest::Client::new();

    // Each round: a token to revoke (made through A), then B revokes it while A creates another.
    const ROUNDS: usize = 12;
    let mut revoked = Vec::new();
    let mut created = Vec::new();
    for round in 0..ROUNDS {
        let victim = create_token(&http, &a.address, &admin, &format!("victim-{round}")).await;
        let revoke = http.delete(format!("{}/api/v1/tokens/victim-{round}", b.address)).bearer_auth(&admin).send();
        let other = format!("created-{round}");
        let create = create_token(&http, &a.address, &admin, &other);
        let (revoked_answer, new_token) = tokio::join!(revoke, create);
        assert_eq!(revoked_answer.unwrap().status(), StatusCode::NO_CONTENT, "round {round}: B revoked");
        revoked.push(victim);
        created.push(new_token);
    }
    // Within the token cache's TTL (2 s) every replica has read the list again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (replica, address) in [("A", &a.address), ("B", &b.address)] {
        for (round, token) in revoked.iter().enumerate() {
            assert_eq!(
                status_with(&http, address, token).await,
                StatusCode::UNAUTHORIZED,
                "round {round}: the revoked token stays revoked on replica {replica}"
            );
        }
        for (round, token) in created.iter().enumerate() {
            assert_eq!(
                status_with(&http, address, token).await,
                StatusCode::OK,
                "round {round}: the token created meanwhile works on replica {replica}"
            );
        }
    }
    let listed: Vec<Value> = http
        .get(format!("{}/api/v1/tokens", b.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revoked_names = listed.iter().filter(|t| !t["revoked_at"].is_null()).count();
    assert_eq!(revoked_names, ROUNDS, "the list shows every revocation: {listed:?}");
    assert_eq!(listed.len(), 2 * ROUNDS + 1);
    eprintln!("{ROUNDS} rounds: {ROUNDS} revocations held on both replicas, {ROUNDS} creations kept");
    drop((a, b));
    crate::pg::drop_schema(&base, &schema).await;
}

/// Signs in on `address` with `token`; returns the session cookie's value.
async fn sign_in(http: &reqwest::Client, address: &str, token: &str) -> String {
    let response =
        http.post(format!("{address}/signin")).form(&[("token", token), ("next", "/")]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().trim_start_matches("golive_session=").to_owned()
}

async fn with_cookie(http: &reqwest::Client, address: &str, cookie: &str) -> (StatusCode, String) {
    let response = http
        .get(format!("{address}/api/v1/board"))
        .header("cookie", format!("golive_session={cookie}"))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_and_refused_delivery_counts_are_shared_by_replicas_without_lost_updates() {
    let Some(base) = crate::pg::available("sessions_and_refused_delivery_counts").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared-master.key"), "01".repeat(32)).unwrap();
    let admin = admin_token(&url, dir.path(), "session-admin");
    let a = start_replica(&url, dir.path()).await;
    let b = start_replica(&url, dir.path()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Sessions signed in on both replicas at once all work on both; one signed out on B is
    // refused on A at once (sessions are not cached).
    let signing: Vec<_> = (0..8)
        .map(|i| {
            let (http, admin) = (http.clone(), admin.clone());
            let address = if i % 2 == 0 { a.address.clone() } else { b.address.clone() };
            tokio::spawn(async move { sign_in(&http, &address, &admin).await })
        })
        .collect();
    let mut cookies = Vec::new();
    for task in signing {
        cookies.push(task.await.unwrap());
    }
    for cookie in &cookies {
        for address in [&a.address, &b.address] {
            assert_eq!(with_cookie(&http, address, cookie).await.0, StatusCode::OK);
        }
    }
    let page = http
        .get(format!("{}/", b.address))
        .header("cookie", format!("golive_session={}", cookies[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("the page has a CSRF field") + marker.len();
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    let signed_out = http
        .post(format!("{}/signout", b.address))
        .header("cookie", format!("golive_session={}", cookies[0]))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(with_cookie(&http, &a.address, &cookies[0]).await.0, StatusCode::UNAUTHORIZED, "ended everywhere");
    for cookie in &cookies[1..] {
        assert_eq!(with_cookie(&http, &a.address, cookie).await.0, StatusCode::OK, "the others live on");
    }

    // 60 deliveries with a wrong token, through both replicas at once: all 60 are counted.
    let (id, _) = open_with_hook(&http, &a.address, &admin, "Refused Deliveries").await;
    let push = payload("push");
    let sends: Vec<_> = (0..60)
        .map(|i| {
            let address = if i % 2 == 0 { a.address.clone() } else { b.address.clone() };
            let (http, id, push) = (http.clone(), id.clone(), push.clone());
            tokio::spawn(async move {
                http.post(format!("{address}/hooks/gitlab/{id}"))
                    .header("content-type", "application/json")
                    .header("x-gitlab-event", "Push Hook")
                    .header("x-gitlab-token", "not-the-token")
                    .body(push)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    for address in [&a.address, &b.address] {
        let diagnosis: Value = http
            .get(format!("{address}/api/v1/integrations/{id}/diagnose"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            diagnosis.to_string().contains("60 deliveries were refused"),
            "both replicas count every refusal: {diagnosis}"
        );
    }
    drop((a, b));
    crate::pg::drop_schema(&base, &schema).await;
}
