//! Disk faults. Through a fault-injecting store (both backends): while appends fail, commands
//! answer 503 `storage-unavailable` with `Retry-After`, reads keep working, nothing is half
//! written, and once the fault clears commands succeed again. Through `prlimit --fsize` on the
//! real binary (sled): a full disk stops writes with a clear error, reads go on, and a restart
//! without the limit recovers with the chain intact and every acknowledged write present.
//! Through failing reads and a broken live feed: the read model's projector is restarted from
//! its checkpoint, `/readyz` and `/metrics` say it is down meanwhile, and nothing is missed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use golive::engine::{Engine, EngineConfig, SystemClock};
use golive::http::{router, serve, HttpConfig};
use golive::secrets::{FileKeystore, Keystore, MasterKey, PgKeystore};
use golive::store::{
    AppendOutcome, AppendRequest, EventStore, Head, IdempotencyRecord, PgStore, PgStoreOptions, SledStore,
    StoreCounters, StoreError, StoredEvent,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Delegates to a real store; appends and aux writes fail while `failing` is set, reads of the
/// log while `reads_failing` is set, and `break_live` ends every live feed handed out so far.
struct FaultyStore {
    inner: Arc<dyn EventStore>,
    failing: Arc<AtomicBool>,
    reads_failing: AtomicBool,
    live_epoch: Arc<AtomicU64>,
}

impl FaultyStore {
    fn new(inner: Arc<dyn EventStore>, failing: Arc<AtomicBool>) -> Self {
        Self { inner, failing, reads_failing: AtomicBool::new(false), live_epoch: Arc::new(AtomicU64::new(0)) }
    }

    /// Closes every live feed handed out so far, as a store whose notification channel broke.
    fn break_live(&self) {
        self.live_epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Storage("injected fault: No space left on device (os error 28)".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl EventStore for FaultyStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.check()?;
        self.inner.append(request).await
    }
    async fn read_stream(&self, stream: Uuid, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_stream(stream, from, limit).await
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        if self.reads_failing.load(Ordering::SeqCst) {
            return Err(StoreError::Storage("injected fault: Input/output error (os error 5)".into()));
        }
        self.inner.read_all(after, limit).await
    }
    async fn stream_version(&self, stream: Uuid) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }
    async fn streams(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        self.inner.streams().await
    }
    async fn head(&self) -> Result<Head, StoreError> {
        self.inner.head().await
    }
    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(key).await
    }
    async fn get_aux(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_aux(key).await
    }
    async fn put_aux(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_aux(key, value).await
    }
    async fn put_aux_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.put_aux_if_absent(key, value).await
    }
    async fn compare_and_swap_aux(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.compare_and_swap_aux(key, expected, new).await
    }
    async fn scan_aux(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan_aux(prefix).await
    }
    async fn add_to_counter(&self, key: &str, delta: u64) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.add_to_counter(key, delta).await
    }
    async fn read_counter(&self, key: &str) -> Result<u64, StoreError> {
        self.inner.read_counter(key).await
    }
    fn committed(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        // A feed of its own, forwarded from the real one until `break_live` is called.
        let (sender, receiver) = broadcast::channel(8192);
        let mut source = self.inner.committed();
        let epoch = self.live_epoch.clone();
        let born = epoch.load(Ordering::SeqCst);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = source.recv() => match event {
                        Ok(event) => { let _ = sender.send(event); }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = tokio::time::sleep(std::time::Duration::from_millis(10)) => {
                        if epoch.load(Ordering::SeqCst) != born {
                            return;
                        }
                    }
                }
            }
        });
        receiver
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
    fn counters(&self) -> StoreCounters {
        self.inner.counters()
    }
}

async fn faults_through_http(inner: Arc<dyn EventStore>, keystore: Arc<dyn Keystore>, label: &str) {
    let failing = Arc::new(AtomicBool::new(false));
    let store = Arc::new(FaultyStore::new(inner, failing.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let config = EngineConfig::new(golive::domain::HttpUrl::parse(address.as_str()).unwrap(), None);
    let engine = Engine::start(store.clone(), keystore, config, Arc::new(SystemClock)).await.unwrap();
    let rep =
        golive::auth::Tokens::new(store.as_ref()).create("rep-faults", golive::auth::Role::Rep, "test").await.unwrap();
    let app = router(engine.clone(), HttpConfig::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let opened: Value = http
        .post(format!("{address}/api/v1/integrations"))
        .bearer_auth(&rep)
        .json(&json!({"customer": "Faulty Disk", "gitlab_url": "https://gitlab.faulty.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    let note = |text: &str| {
        http.post(format!("{address}/api/v1/integrations/{id}/commands"))
            .bearer_auth(&rep)
            .json(&json!({"type": "add_note", "text": text}))
            .send()
    };
    assert!(note("before the fault").await.unwrap().status().is_success());
    let head_before = store.head().await.unwrap();

    failing.store(true, Ordering::SeqCst);
    for i in 0..20 {
        let response = note(&format!("during the fault {i}")).await.unwrap();
        assert_eq!(response.status().as_u16(), 503, "a failing disk is a 503");
        assert!(response.headers().get("retry-after").is_some());
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"].as_str().unwrap().rsplit('/').next(), Some("storage-unavailable"), "{problem}");
    }
    let read = http.get(format!("{address}/api/v1/integrations/{id}")).bearer_auth(&rep).send().await.unwrap();
    assert_eq!(read.status().as_u16(), 200, "reads keep working");
    let state: Value = read.json().await.unwrap();
    assert_eq!(state["version"], json!(head_before.position), "nothing half-written");
    assert_eq!(store.head().await.unwrap(), head_before);

    failing.store(false, Ordering::SeqCst);
    assert!(note("after the fault").await.unwrap().status().is_success(), "writes resume once the fault clears");
    let report = engine.verify(None).await.unwrap();
    assert!(report.valid);
    assert_eq!(report.events_checked, head_before.position + 1);
    eprintln!("disk faults on {label}: 20 commands refused with 503 during the fault, reads served, 0 events written, writes resumed");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_under_sled_refuses_writes_clearly_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), crate::store_conformance::reopen_options()).unwrap();
    let keystore = Arc::new(FileKeystore::open(dir.path(), MasterKey::from_bytes([3; 32])).unwrap());
    faults_through_http(store, keystore, "sled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_under_postgres_refuses_writes_clearly_and_recovers() {
    let Some(base) = crate::pg::available("a_failing_disk_under_postgres").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let store = PgStore::connect(&url, PgStoreOptions { pool_size: 4, ..Default::default() }).await.unwrap();
    let keystore = Arc::new(PgKeystore::new(store.pool(), MasterKey::from_bytes([3; 32])));
    faults_through_http(store, keystore, "PostgreSQL").await;
    crate::pg::drop_schema(&base, &schema).await;
}

/// The database ends every connection of two replicas (as a restart of PostgreSQL, an
/// administrator or a network drop would): at most the append in flight fails, the writer
/// connects again by itself, positions stay gapless, the chain verifies, and the other replica's
/// subscriber sees every committed event once, in order, across the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_postgres_connection_is_reopened_and_nothing_acknowledged_is_lost() {
    use crate::store_conformance::{append, committed};
    use golive::store::{ExpectedVersion, Subscription};
    use std::time::Duration;

    let Some(base) = crate::pg::available("a_lost_postgres_connection_is_reopened").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    // The application name marks this test's connections, so only they are ended.
    let url = format!("{url}&application_name={schema}");
    let options = PgStoreOptions { pool_size: 2, ..Default::default() };
    let writer = PgStore::connect(&url, options.clone()).await.unwrap() as Arc<dyn EventStore>;
    let reader = PgStore::connect(&url, options).await.unwrap() as Arc<dyn EventStore>;
    let mut subscription = Subscription::new(reader.clone(), 0);
    let stream = Uuid::new_v4();
    let mut version = 0;
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let events = committed(
            writer.append(append(stream, ExpectedVersion::Exact(version), &[&format!("before {i}")])).await.unwrap(),
        );
        version += 1;
        acknowledged.push(events[0].id);
    }

    // When the server ends every connection of both replicas.
    let admin = crate::pg::connect(&base).await;
    let ended: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) AS ended",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ended >= 4, "each replica's writer and listener were connected ({ended} ended)");

    // Then writes recover without a restart: at most the first one after the loss fails.
    let mut failures = Vec::new();
    for i in 0..20 {
        match writer.append(append(stream, ExpectedVersion::Exact(version), &[&format!("after {i}")])).await {
            Ok(outcome) => {
                acknowledged.push(committed(outcome)[0].id);
                version += 1;
            }
            Err(StoreError::Storage(reason)) => failures.push(reason),
            Err(other) => panic!("append {i} after the loss: {other}"),
        }
    }
    eprintln!("after the loss: {} of 20 appends failed ({failures:?}), {ended} connections ended", failures.len());
    assert!(failures.len() <= 1, "the writer reconnected at once: {failures:?}");
    assert!(acknowledged.len() >= 24);
    let events = writer.read_all(0, 1000).await.unwrap();
    let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>(), "gapless positions");
    for id in &acknowledged {
        assert_eq!(events.iter().filter(|e| e.id == *id).count(), 1, "acknowledged event {id} is there once");
    }
    let report = golive::store::verify_chain(writer.as_ref(), None).await.unwrap();
    assert!(report.valid, "{report:?}");

    // The other replica's subscriber (its listener connected again too) sees everything.
    let mut seen = Vec::new();
    while seen.len() < events.len() {
        let event = subscription
            .next_within(Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the reader's subscriber stopped at {seen:?}"));
        seen.push(event.position);
    }
    assert_eq!(seen, positions, "every event once, in order, on the other replica");
    writer.close().await.unwrap();
    reader.close().await.unwrap();
    crate::pg::drop_schema(&base, &schema).await;
}

/// The real binary with a file-size limit: the disk "fills" while it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_writes_clearly_and_a_restart_recovers() {
    if std::process::Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("SKIPPED a_full_disk_stops_writes_clearly: prlimit (util-linux) is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_golive");
    let golive = |args: &[&str]| {
        let mut command = std::process::Command::new(bin);
        command
            .env_remove("GOLIVE_MASTER_KEY")
            .env_remove("GOLIVE_STORE")
            .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args);
        command
    };
    let token = golive(&["token", "create", "--role", "rep", "--name", "disk"]).output().unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let largest = walk(dir.path()).into_iter().max().unwrap_or(0);
    // sled starts with a 512 KiB segment; 1.5 MiB more fills within a few hundred commands.
    let limit = largest.max(512 * 1024) + 1536 * 1024;
    let mut limited = std::process::Command::new("prlimit");
    limited
        .arg(format!("--fsize={limit}"))
        .arg(bin)
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .env_remove("GOLIVE_MASTER_KEY")
        .env_remove("GOLIVE_STORE")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GOLIVE_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut server = limited.spawn().unwrap();
    let address = first_line(&mut server).await;
    let http = reqwest::Client::new();
    let opened: Value = http
        .post(format!("{address}/api/v1/integrations"))
        .bearer_auth(&token)
        .json(&json!({"customer": "Full Disk", "gitlab_url": "https://gitlab.full.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    let mut acknowledged = Vec::new();
    let mut refused = None;
    let filler = "x".repeat(3000);
    for i in 0..5000 {
        let text = format!("{i} {filler}");
        let response = http
            .post(format!("{address}/api/v1/integrations/{id}/commands"))
            .bearer_auth(&token)
            .json(&json!({"type": "add_note", "text": &text[..text.len().min(4000)]}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => acknowledged.push(i),
            503 => {
                let problem: Value = response.json().await.unwrap();
                refused = Some(problem);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let problem = refused.expect("the file-size limit was reached");
    assert!(problem["type"].as_str().unwrap().ends_with("storage-unavailable"), "{problem}");
    eprintln!("full disk after {} acknowledged commands: {}", acknowledged.len(), problem["detail"]);
    // Reads still work while writes are refused.
    let read = http.get(format!("{address}/api/v1/integrations/{id}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status().as_u16(), 200);
    let response = http
        .post(format!("{address}/api/v1/integrations/{id}/commands"))
        .bearer_auth(&token)
        .json(&json!({"type": "add_note", "text": "still full"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503, "writes stay refused until restart");
    let ready = http.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503, "a store that refuses writes is not ready");
    let problem: Value = ready.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("stopped accepting writes"), "{problem}");
    unsafe { libc::kill(server.id() as i32, libc::SIGKILL) };
    server.wait().unwrap();

    // Restart without the limit: everything acknowledged is there, the chain holds, writes work.
    let mut server = golive(&["serve", "--listen", "127.0.0.1:0"])
        .env("GOLIVE_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let address = first_line(&mut server).await;
    let history: Value = http
        .get(format!("{address}/api/v1/integrations/{id}/history?limit=1000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let notes = history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "note_added").count();
    assert!(notes >= acknowledged.len(), "every acknowledged note survived ({notes} < {})", acknowledged.len());
    crate::replicas::verify_chain(&http, &address, &token).await;
    let response = http
        .post(format!("{address}/api/v1/integrations/{id}/commands"))
        .bearer_auth(&token)
        .json(&json!({"type": "add_note", "text": "after the restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "writes work again");
    assert_eq!(http.get(format!("{address}/readyz")).send().await.unwrap().status().as_u16(), 200, "ready again");
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            sizes.extend(walk(&entry.path()));
        } else {
            sizes.push(meta.len());
        }
    }
    sizes
}

async fn first_line(child: &mut std::process::Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).to_owned()
}

/// Polls `check` every 20 ms for up to `within`; true once it holds.
async fn eventually(within: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_failed_projector_is_restarted_from_its_checkpoint_and_readiness_says_so_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn EventStore> = SledStore::temporary(Default::default()).unwrap();
    let store = Arc::new(FaultyStore::new(inner, Arc::new(AtomicBool::new(false))));
    let keystore = Arc::new(FileKeystore::open(dir.path(), MasterKey::from_bytes([4; 32])).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let config = EngineConfig::new(golive::domain::HttpUrl::parse(address.as_str()).unwrap(), None);
    let engine = Engine::start(store.clone(), keystore, config, Arc::new(SystemClock)).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router(engine.clone(), HttpConfig::default()), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let actor = golive::domain::Actor::parse("dana").unwrap();
    let open = |customer: &str| json!({"customer": customer, "gitlab_url": "https://gitlab.example.com"});
    engine.open_integration(open("Before the fault"), &actor, None).await.unwrap();
    assert_eq!(engine.list(&Default::default()).await.unwrap().len(), 1);
    assert_eq!(http.get(format!("{address}/readyz")).send().await.unwrap().status(), 200);

    // Given the log cannot be read and the live feed breaks,
    store.reads_failing.store(true, Ordering::SeqCst);
    store.break_live();
    // then the projector is down, restarted again and again, and not ready.
    let down = eventually(std::time::Duration::from_secs(5), async || {
        let status = engine.projector_status().await.unwrap();
        !status.up && status.restarts >= 2
    })
    .await;
    assert!(down, "the projector never went down: {:?}", engine.projector_status().await.unwrap());
    engine.open_integration(open("During the fault"), &actor, None).await.unwrap();
    let status = engine.projector_status().await.unwrap();
    assert!(status.lag >= 1, "{status:?}");
    assert!(status.last_failure.as_deref().unwrap_or("").contains("injected fault"), "{status:?}");
    let not_ready = http.get(format!("{address}/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let problem: Value = not_ready.json().await.unwrap();
    assert_eq!(problem["type"], "not-ready", "{problem}");
    assert_eq!(problem["projector"]["up"], false, "{problem}");
    let metrics = http.get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("golive_projector_up 0"), "{metrics}");
    assert!(!metrics.contains("golive_projector_lag_positions 0\n"), "{metrics}");
    assert!(!metrics.contains("golive_projector_restarts_total 0\n"), "{metrics}");

    // When the fault clears, the projector catches up from its checkpoint: nothing is missed.
    store.reads_failing.store(false, Ordering::SeqCst);
    let caught_up = eventually(std::time::Duration::from_secs(15), async || {
        let status = engine.projector_status().await.unwrap();
        status.up && status.lag == 0
    })
    .await;
    assert!(caught_up, "the projector never caught up: {:?}", engine.projector_status().await.unwrap());
    let customers: Vec<String> =
        engine.list(&Default::default()).await.unwrap().into_iter().map(|s| s.customer).collect();
    assert_eq!(customers, vec!["Before the fault", "During the fault"]);
    assert_eq!(http.get(format!("{address}/readyz")).send().await.unwrap().status(), 200);
    let metrics = http.get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("golive_projector_up 1") && metrics.contains("golive_projector_lag_positions 0"));
    let _ = stop.send(());
    let _ = server.await;
}
