//! Store and engine benchmark: golive beside raw sled writing the same keys and bytes.
//!
//! `cargo bench --bench store` prints one table of figures. Sizes scale with
//! `GOLIVE_BENCH_SCALE` (default 1.0). Some figures come from a freshly started process: the
//! bench re-runs its own executable with `--child <task> <dir> <id>` for those.
//! `GOLIVE_BENCH_ONLY=durable` stops after the durable-commands rows, which measure the store
//! durable against power loss (the default) beside sled's flush alone (`SyncMode::FlushOnly`,
//! the behaviour before) in the same run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use golive::domain::{Actor, IntegrationId};
use golive::engine::{encode, Engine, EngineConfig, ExecuteRequest, OpenOptions};
use golive::store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, SledStore, SledStoreOptions, SyncMode};
use serde_json::json;
use uuid::Uuid;

fn scale() -> f64 {
    std::env::var("GOLIVE_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64) * scale()).max(1.0) as usize
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let p = entry.path();
            total += if p.is_dir() { dir_size(&p) } else { entry.metadata().map(|m| m.len()).unwrap_or(0) };
        }
    }
    total
}

fn public_url() -> golive::domain::HttpUrl {
    golive::domain::HttpUrl::parse("https://golive.bench.example").unwrap()
}

async fn engine(dir: &Path) -> Engine {
    engine_syncing(dir, SyncMode::Durable).await
}

async fn engine_syncing(dir: &Path, sync: SyncMode) -> Engine {
    let options = OpenOptions {
        store: SledStoreOptions { sync, wait_for_lock: Duration::from_secs(10), ..Default::default() },
        ..Default::default()
    };
    Engine::open_dir(dir, EngineConfig::new(public_url(), None), options).await.unwrap().0
}

fn actor() -> Actor {
    Actor::parse("bench").unwrap()
}

/// A note event as the engine would write it (~300 bytes stored).
fn note(i: usize) -> NewEvent {
    let event = golive::domain::Event::NoteAdded {
        text: golive::domain::LongText::parse(format!(
            "Called the customer about the firewall change request #{i}; waiting for their network team."
        ))
        .unwrap(),
    };
    encode(&event, Uuid::new_v4(), Utc::now(), "dana.reyes")
}

fn opened_event(id: Uuid) -> NewEvent {
    let event = golive::domain::Event::IntegrationOpened {
        integration_id: IntegrationId::from_uuid(id),
        customer: golive::domain::ShortText::parse("Bench Corp").unwrap(),
        gitlab_url: golive::domain::HttpUrl::parse("https://gitlab.bench.example").unwrap(),
        owner: None,
        playbook: golive::domain::Playbook::guide_default(
            golive::domain::HttpUrl::parse("https://golive.bench.example/oauth/gitlab/callback").unwrap(),
        ),
        ca_certificate_pem: None,
        public_url: Some(golive::domain::HttpUrl::parse("https://golive.bench.example").unwrap()),
    };
    encode(&event, Uuid::new_v4(), Utc::now(), "bench")
}

struct Row {
    what: String,
    golive: String,
    baseline: String,
    ratio: String,
}

fn row(what: &str, golive: f64, baseline: Option<f64>, unit: &str) -> Row {
    Row {
        what: what.into(),
        golive: format!("{golive:.0} {unit}"),
        baseline: baseline.map(|b| format!("{b:.0} {unit}")).unwrap_or_else(|| "-".into()),
        ratio: baseline.map(|b| format!("{:.2}", golive / b)).unwrap_or_else(|| "-".into()),
    }
}

/// The same load with sled's flush alone (before power-loss durability); the ratio column is
/// durable / flush only, the price of surviving a power cut.
fn before_row(writers: usize, durable: f64, flush_only: f64) -> Row {
    Row {
        what: format!(
            "  sled's flush only, not power-loss durable (before), {writers} writer{}",
            if writers == 1 { "" } else { "s" }
        ),
        golive: format!("{flush_only:.0} /s"),
        baseline: "-".into(),
        ratio: format!("durable / before = {:.2}", durable / flush_only),
    }
}

/// Durable commands through the engine: `writers` tasks on distinct integrations. `sync` is
/// the store's mode: durable against power loss (the default), or sled's flush alone (before).
async fn durable_commands(
    writers: usize,
    per_writer: usize,
    sync: SyncMode,
) -> (f64, f64, f64, Vec<(Vec<u8>, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_syncing(dir.path(), sync).await;
    let mut ids = Vec::new();
    for w in 0..writers {
        let body = json!({"customer": format!("Customer {w}"), "gitlab_url": "https://gitlab.example.com"});
        ids.push(engine.open_integration(body, &actor(), None).await.unwrap().state.id);
    }
    let store = engine.store().clone();
    let before = store.counters().flushes;
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let engine = engine.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    let body = json!({"type": "add_note", "text": format!("Called the customer about the firewall change request #{i}; waiting for their network team.")});
                    engine.execute(ExecuteRequest::new(id, body, actor())).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let flushes = store.counters().flushes - before;
    let commands = (writers * per_writer) as f64;
    // The exact keys and bytes golive wrote, for the raw sled baseline.
    let written = collect_writes(&store).await;
    engine.close().await.unwrap();
    (commands / elapsed, flushes as f64 / elapsed, commands / flushes.max(1) as f64, written)
}

async fn collect_writes(store: &Arc<dyn EventStore>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let events = store.read_all(0, usize::MAX).await.unwrap();
    for e in events {
        let mut key = vec![b'e'];
        key.extend_from_slice(&e.position.to_be_bytes());
        out.push((key, serde_json::to_vec(&e).unwrap()));
    }
    out
}

/// Opens a sled directory, waiting for a just-closed store to release its lock.
fn open_raw(path: &Path) -> sled::Db {
    let started = Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(_) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(10)),
            Err(error) => panic!("{error}"),
        }
    }
}

/// Raw sled: the same event keys and bytes, `threads` writers, a flush after every insert.
fn raw_sled_durable(writes: &[(Vec<u8>, Vec<u8>)], threads: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).mode(sled::Mode::HighThroughput).open().unwrap();
    let chunk = writes.len().div_ceil(threads);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for part in writes.chunks(chunk) {
            let db = db.clone();
            scope.spawn(move || {
                for (k, v) in part {
                    db.insert(k, v.as_slice()).unwrap();
                    db.flush().unwrap();
                }
            });
        }
    });
    writes.len() as f64 / started.elapsed().as_secs_f64()
}

/// Bulk: golive appends `total` events in appends of `batch`, vs raw sled writing the same
/// keys and bytes in batches of the same size with one flush each.
async fn bulk(total: usize, batch: usize) -> (f64, f64, f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), SledStoreOptions::default()).unwrap();
    let streams: Vec<Uuid> = (0..64).map(|_| Uuid::new_v4()).collect();
    let started = Instant::now();
    let mut n = 0;
    while n < total {
        let stream = streams[(n / batch) % streams.len()];
        let events = (0..batch).map(|i| note(n + i)).collect();
        store
            .append(AppendRequest { stream, expected: ExpectedVersion::Any, events, idempotency: None })
            .await
            .unwrap();
        n += batch;
    }
    let golive_rate = n as f64 / started.elapsed().as_secs_f64();
    // The same, reading envelopes only (no domain decode).
    let started = Instant::now();
    let mut after = 0;
    let mut read = 0usize;
    loop {
        let events = store.read_all(after, 8192).await.unwrap();
        if events.is_empty() {
            break;
        }
        read += events.len();
        after = events.last().unwrap().position;
    }
    let read_rate = read as f64 / started.elapsed().as_secs_f64();
    // Replay: read and decode every envelope and its domain event.
    let started = Instant::now();
    let mut after = 0;
    let mut replayed = 0usize;
    loop {
        let events = store.read_all(after, 8192).await.unwrap();
        if events.is_empty() {
            break;
        }
        replayed += events.len();
        after = events.last().unwrap().position;
        for e in events {
            let _ = golive::engine::codec::decode_owned(e).unwrap();
        }
    }
    let replay_rate = replayed as f64 / started.elapsed().as_secs_f64();
    store.close().await.unwrap();
    drop(store);
    let bytes_per_event = dir_size(dir.path()) as f64 / n as f64;
    // Raw sled, same keys and bytes (event records plus stream index), same batches.
    let raw_dir = tempfile::tempdir().unwrap();
    let golive_db = open_raw(&dir.path().join("events.sled"));
    let pairs: Vec<(Vec<u8>, Vec<u8>)> =
        golive_db.iter().map(|r| r.unwrap()).map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    drop(golive_db);
    let raw = sled::Config::new().path(raw_dir.path()).mode(sled::Mode::HighThroughput).open().unwrap();
    let per_batch = pairs.len().div_ceil(n / batch);
    let started = Instant::now();
    for chunk in pairs.chunks(per_batch) {
        let mut b = sled::Batch::default();
        for (k, v) in chunk {
            b.insert(k.as_slice(), v.as_slice());
        }
        raw.apply_batch(b).unwrap();
        raw.flush().unwrap();
    }
    let raw_rate = n as f64 / started.elapsed().as_secs_f64();
    (golive_rate, raw_rate, replay_rate, read_rate, bytes_per_event)
}

/// Builds one integration with `events` events through the store, then loads it once (which
/// saves a snapshot) and closes.
async fn build_long_stream(dir: &Path, events: usize) -> Uuid {
    let id = Uuid::new_v4();
    {
        let store = SledStore::open(dir, SledStoreOptions::default()).unwrap();
        store
            .append(AppendRequest {
                stream: id,
                expected: ExpectedVersion::Exact(0),
                events: vec![opened_event(id)],
                idempotency: None,
            })
            .await
            .unwrap();
        let mut n = 1;
        while n < events {
            let batch: Vec<NewEvent> = (0..1000.min(events - n)).map(|i| note(n + i)).collect();
            n += batch.len();
            store
                .append(AppendRequest { stream: id, expected: ExpectedVersion::Any, events: batch, idempotency: None })
                .await
                .unwrap();
        }
        store.close().await.unwrap();
    }
    let engine = engine(dir).await;
    engine.load(IntegrationId::from_uuid(id)).await.unwrap().unwrap();
    // Work goes on after the snapshot: a cold load reads the snapshot plus this tail.
    for i in 0..537 {
        let body = json!({"type": "add_note", "text": format!("after the snapshot {i}")});
        engine.execute(ExecuteRequest::new(IntegrationId::from_uuid(id), body, actor())).await.unwrap();
    }
    engine.close().await.unwrap();
    id
}

fn child(task: &str, dir: &Path, id: &str) -> String {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--child", task])
        .arg(dir)
        .arg(id)
        .output()
        .unwrap();
    assert!(output.status.success(), "child failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Runs in a freshly started process: the timing of a cold open or load.
fn run_child(task: &str, dir: PathBuf, id: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        match task {
            "load" => {
                let engine = engine(&dir).await;
                let started = Instant::now();
                let (state, read) = engine.load_counting(IntegrationId::parse(id).unwrap()).await.unwrap();
                let elapsed = started.elapsed();
                println!("{} {} {}", elapsed.as_secs_f64() * 1000.0, read, state.unwrap().version);
            }
            "open" => {
                let started = Instant::now();
                let engine = engine(&dir).await;
                let ready = started.elapsed();
                // Serve reads: a page of history of some integration and the list.
                let read_started = Instant::now();
                let first = engine.store().read_all(0, 1).await.unwrap();
                let id = IntegrationId::from_uuid(first[0].integration_id);
                let _ = engine.history(id, 0, 100).await.unwrap();
                let _ = engine.state(id).await.unwrap();
                let _ = engine.list(&Default::default()).await.unwrap();
                let served = read_started.elapsed();
                println!("{} {} {}", ready.as_secs_f64() * 1000.0, served.as_secs_f64() * 1000.0, peak_rss_mib());
            }
            other => panic!("unknown child task {other}"),
        }
    });
}

/// Builds a store of `total` events over 1,000 integrations, saving the read model at the end.
async fn build_big_store(dir: &Path, total: usize) {
    let store = SledStore::open(dir, SledStoreOptions::default()).unwrap();
    let streams: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    for id in &streams {
        store
            .append(AppendRequest {
                stream: *id,
                expected: ExpectedVersion::Exact(0),
                events: vec![opened_event(*id)],
                idempotency: None,
            })
            .await
            .unwrap();
    }
    let mut n = streams.len();
    while n < total {
        let stream = streams[(n / 500) % streams.len()];
        let batch: Vec<NewEvent> = (0..500.min(total - n)).map(|i| note(n + i)).collect();
        n += batch.len();
        store
            .append(AppendRequest { stream, expected: ExpectedVersion::Any, events: batch, idempotency: None })
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    drop(store);
    // The first open folds everything and saves the read model, as a running server does.
    let engine = engine(dir).await;
    engine.close().await.unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        run_child(&args[2], PathBuf::from(&args[3]), &args[4]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rows = Vec::new();
    runtime.block_on(async {
        let (one, one_flushes, one_group, writes) = durable_commands(1, scaled(2_000), SyncMode::Durable).await;
        let raw_one = raw_sled_durable(&writes, 1);
        rows.push(row("durable commands/s, 1 writer", one, Some(raw_one), "/s"));
        let (one_before, ..) = durable_commands(1, scaled(2_000), SyncMode::FlushOnly).await;
        rows.push(before_row(1, one, one_before));
        rows.push(row("  flushes/s (1 writer)", one_flushes, None, "/s"));
        rows.push(Row {
            what: "  mean group (1 writer)".into(),
            golive: format!("{one_group:.1}"),
            baseline: "-".into(),
            ratio: "-".into(),
        });
        let (many, many_flushes, many_group, writes) = durable_commands(64, scaled(300), SyncMode::Durable).await;
        let raw_many = raw_sled_durable(&writes, 64);
        rows.push(row("durable commands/s, 64 writers", many, Some(raw_many), "/s"));
        let (many_before, ..) = durable_commands(64, scaled(300), SyncMode::FlushOnly).await;
        rows.push(before_row(64, many, many_before));
        rows.push(row("  flushes/s (64 writers)", many_flushes, None, "/s"));
        rows.push(Row {
            what: "  mean group (64 writers)".into(),
            golive: format!("{many_group:.1}"),
            baseline: "-".into(),
            ratio: "-".into(),
        });
        if std::env::var("GOLIVE_BENCH_ONLY").as_deref() == Ok("durable") {
            return;
        }
        let (bulk_rate, raw_bulk, replay, read, bytes) = bulk(scaled(200_000), 100).await;
        rows.push(row("bulk append events/s (batches of 100)", bulk_rate, Some(raw_bulk), "/s"));
        rows.push(row("replay events/s (read envelopes + decode domain events)", replay, None, "/s"));
        rows.push(row("  read envelopes only", read, None, "/s"));
        rows.push(row("bytes on disk per event", bytes, None, "B"));
        let long = tempfile::tempdir().unwrap();
        let long_events = scaled(100_000);
        let id = build_long_stream(long.path(), long_events).await;
        let out = child("load", long.path(), &id.to_string());
        let parts: Vec<&str> = out.split(' ').collect();
        rows.push(Row {
            what: format!("load a {long_events}-event integration, fresh process"),
            golive: format!("{} ms", parts[0]),
            baseline: format!("{} events read", parts[1]),
            ratio: "-".into(),
        });
        let big = tempfile::tempdir().unwrap();
        let big_events = scaled(1_000_000);
        build_big_store(big.path(), big_events).await;
        let out = child("open", big.path(), "-");
        let parts: Vec<&str> = out.split(' ').collect();
        rows.push(Row {
            what: format!("open a {big_events}-event store, ready"),
            golive: format!("{} ms", parts[0]),
            baseline: "-".into(),
            ratio: "-".into(),
        });
        rows.push(Row {
            what: "  then first reads (history, state, list)".into(),
            golive: format!("{} ms", parts[1]),
            baseline: "-".into(),
            ratio: "-".into(),
        });
        rows.push(Row {
            what: "  peak resident memory of that process".into(),
            golive: format!("{} MiB", parts[2]),
            baseline: "-".into(),
            ratio: "-".into(),
        });
        rows.push(Row {
            what: "  bytes on disk per event (1M store)".into(),
            golive: format!("{:.0} B", dir_size(big.path()) as f64 / big_events as f64),
            baseline: "-".into(),
            ratio: "-".into(),
        });
    });
    rows.push(Row {
        what: "peak resident memory, this process".into(),
        golive: format!("{:.0} MiB", peak_rss_mib()),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    println!("\n| measure | golive | raw sled (same keys and bytes) | golive / raw |\n|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} | {} |", r.what, r.golive, r.baseline, r.ratio);
    }
}
