//! Reads that must not grow with the log: `insights` and a page of the integration list, at
//! 10⁴, 10⁵ and 10⁶ events (1,000 integrations; the rest are notes, spread over them, as a
//! year's log is mostly small events on a bounded set of onboardings). Each size prints the
//! median of repeated calls, and, as the baseline measured in the same run, the insights folded
//! from the whole log (what every request cost before the projection).
//!
//! `cargo bench --bench reads` (about three minutes); `GOLIVE_BENCH_READS_MAX=100000` stops
//! earlier.

use std::sync::Arc;
use std::time::{Duration, Instant};

use golive::domain::{Actor, IntegrationId};
use golive::engine::{encode, Engine, EngineConfig, ListFilter, SystemClock};
use golive::secrets::{FileKeystore, MasterKey};
use golive::store::{AppendRequest, ExpectedVersion, SledStore, SledStoreOptions};
use serde_json::json;

const INTEGRATIONS: usize = 1_000;
const APPEND_BATCH: usize = 100;
const APPENDERS: usize = 16;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time_calls<F, Fut>(calls: usize, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    median(samples)
}

/// Grows the log to `events` events: the integrations first, then notes in batches, from
/// several appenders at once so the writer groups them.
async fn grow(engine: &Engine, ids: &mut Vec<IntegrationId>, events: u64) {
    let actor = Actor::parse("bench").unwrap();
    while ids.len() < INTEGRATIONS {
        let body =
            json!({"customer": format!("Customer {:04}", ids.len()), "gitlab_url": "https://gitlab.example.com"});
        ids.push(engine.open_integration(body, &actor, None).await.unwrap().state.id);
    }
    let store = engine.store().clone();
    let head = store.head().await.unwrap().position;
    let missing = events.saturating_sub(head) as usize;
    let batches = missing / APPEND_BATCH;
    let ids = Arc::new(ids.clone());
    let mut tasks = Vec::new();
    for appender in 0..APPENDERS {
        let store = store.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let note = golive::domain::Event::NoteAdded { text: golive::domain::LongText::parse("a note").unwrap() };
            let mut batch = appender;
            while batch < batches {
                let stream = ids[batch % ids.len()].as_uuid();
                let now = golive::sources::Clock::now(&SystemClock);
                let events = (0..APPEND_BATCH)
                    .map(|i| encode(&note, uuid::Uuid::from_u128((batch * APPEND_BATCH + i) as u128 + 1), now, "bench"))
                    .collect();
                let request = AppendRequest { stream, expected: ExpectedVersion::Any, events, idempotency: None };
                store.append(request).await.unwrap();
                batch += APPENDERS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The projector follows; wait until it has folded everything.
    let head = store.head().await.unwrap().position;
    while engine.projector_status().await.unwrap().checkpoint < head {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let max: u64 = std::env::var("GOLIVE_BENCH_READS_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("data"), SledStoreOptions::default()).unwrap();
        let keystore = Arc::new(FileKeystore::open(dir.path(), MasterKey::from_bytes([9; 32])).unwrap());
        let config = EngineConfig::new(golive::domain::HttpUrl::parse("http://127.0.0.1:8080").unwrap(), None);
        let engine = Engine::start(store, keystore, config, Arc::new(SystemClock)).await.unwrap();
        let mut ids = Vec::new();
        let mut rows: Vec<(u64, Duration, Duration, Duration)> = Vec::new();
        for events in [10_000u64, 100_000, 1_000_000].into_iter().filter(|n| *n <= max) {
            let started = Instant::now();
            grow(&engine, &mut ids, events).await;
            let head = engine.store().head().await.unwrap().position;
            eprintln!("grew the log to {head} events in {:.1} s", started.elapsed().as_secs_f64());
            let insights = time_calls(31, || async {
                engine.insights().await.unwrap();
            })
            .await;
            let page = time_calls(31, || async {
                engine.list_page(&ListFilter::default(), None, 50).await.unwrap();
            })
            .await;
            let whole_log = time_calls(3, || async {
                engine.insights_from_the_whole_log().await.unwrap();
            })
            .await;
            rows.push((head, insights, page, whole_log));
        }
        println!(
            "\n{:>10} | {:>20} | {:>22} | {:>26}",
            "events", "insights (median)", "list page of 50 (median)", "whole-log insights (baseline)"
        );
        for (events, insights, page, whole_log) in &rows {
            println!(
                "{events:>10} | {:>17.3} ms | {:>19.3} ms | {:>14.1} ms ({:>5.0} ×)",
                insights.as_secs_f64() * 1e3,
                page.as_secs_f64() * 1e3,
                whole_log.as_secs_f64() * 1e3,
                whole_log.as_secs_f64() / insights.as_secs_f64()
            );
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            println!(
                "\nmedian at {} events / median at {} events: insights {:.2}, list page {:.2} (target ≤ 2)",
                last.0,
                first.0,
                last.1.as_secs_f64() / first.1.as_secs_f64(),
                last.2.as_secs_f64() / first.2.as_secs_f64()
            );
        }
        engine.close().await.unwrap();
    });
}
