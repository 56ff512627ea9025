//! Outbound event subscriptions: how fast golive delivers a backlog (catch-up throughput) and
//! how soon a new event reaches a subscriber (delivery latency, p50 and p99), to a receiver on
//! loopback. The baseline, measured in the same run against the same receiver: plain POSTs of
//! the same bodies from one keep-alive client, one at a time (what the network and the
//! receiver cost without golive's signing, ordering and durable checkpoint).
//!
//! `cargo bench --bench subscriptions` (about a minute). `GOLIVE_BENCH_EVENTS` sets the backlog
//! (default 2,000); `GOLIVE_BENCH_LIVE` the live events timed (default 300).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use golive::domain::{Actor, HttpUrl};
use golive::engine::{Engine, EngineConfig, NewSubscription, SubscriptionSettings, SystemClock};
use golive::gitlab::egress::EgressPolicy;
use golive::secrets::{FileKeystore, MasterKey};
use golive::store::{SledStore, SledStoreOptions};
use serde_json::json;

/// Receipt times by log position (the baseline's bodies carry a position too).
type Receipts = Arc<Mutex<HashMap<u64, Instant>>>;

async fn receiver() -> (String, Receipts) {
    let receipts: Receipts = Arc::default();
    let shared = receipts.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let receipts = shared.clone();
            async move {
                let at = Instant::now();
                let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
                receipts.lock().unwrap().entry(value["position"].as_u64().unwrap()).or_insert(at);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receipts)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn wait_for(receipts: &Receipts, positions: impl Iterator<Item = u64> + Clone) {
    loop {
        let done = {
            let r = receipts.lock().unwrap();
            positions.clone().all(|p| r.contains_key(&p))
        };
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let events: usize = std::env::var("GOLIVE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let live: usize = std::env::var("GOLIVE_BENCH_LIVE").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("data"), SledStoreOptions::default()).unwrap();
    let keystore = Arc::new(FileKeystore::open(dir.path(), MasterKey::from_bytes([9; 32])).unwrap());
    let mut config = EngineConfig::new(HttpUrl::parse("https://golive.example.com").unwrap(), None);
    config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let engine = Engine::start(store, keystore, config, Arc::new(SystemClock)).await.unwrap();
    let actor = Actor::parse("bench").unwrap();
    let id = engine
        .open_integration(json!({"customer": "Bench", "gitlab_url": "https://gitlab.example.com"}), &actor, None)
        .await
        .unwrap()
        .state
        .id;
    for i in 0..events {
        let note = json!({"type": "add_note", "text": format!("note {i}")});
        engine.execute(golive::engine::ExecuteRequest::new(id, note, actor.clone())).await.unwrap();
    }
    let head = engine.store().head().await.unwrap().position;
    let sample = engine.store().read_all(head - 1, 1).await.unwrap().remove(0);
    let body = serde_json::to_vec(&sample).unwrap();

    // Baseline: the same bodies POSTed one at a time from one keep-alive client.
    let (url, receipts) = receiver().await;
    let http = reqwest::Client::new();
    let mut round_trips = Vec::with_capacity(events);
    let started = Instant::now();
    for position in 1..=events as u64 {
        let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        value["position"] = json!(position);
        let one = Instant::now();
        let response = http.post(&url).header("content-type", "application/json").json(&value).send().await.unwrap();
        assert!(response.status().is_success());
        round_trips.push(one.elapsed());
    }
    let baseline_seconds = started.elapsed().as_secs_f64();
    let baseline_rate = events as f64 / baseline_seconds;
    round_trips.sort();
    drop(receipts);

    // Catch-up: the whole backlog to a new subscription from position 1.
    let (url, receipts) = receiver().await;
    let request: NewSubscription =
        serde_json::from_value(json!({"name": "bench", "url": url, "from_position": 1})).unwrap();
    let added = engine.add_subscription(request, &actor).await.unwrap();
    let settings = SubscriptionSettings { poll_ms: 50, ..Default::default() };
    let started = Instant::now();
    let deliverers = engine.start_subscription_deliverers("bench".into(), settings);
    wait_for(&receipts, 1..=head).await;
    let catch_up_seconds = started.elapsed().as_secs_f64();
    let catch_up_rate = head as f64 / catch_up_seconds;

    // Live: one event at a time, from its acknowledgement to its receipt.
    let mut latencies = Vec::with_capacity(live);
    for i in 0..live {
        let note = json!({"type": "add_note", "text": format!("live {i}")});
        let executed = engine.execute(golive::engine::ExecuteRequest::new(id, note, actor.clone())).await.unwrap();
        let acknowledged = Instant::now();
        let position = executed.events.last().unwrap().position;
        wait_for(&receipts, position..=position).await;
        let received = receipts.lock().unwrap()[&position];
        latencies.push(received.saturating_duration_since(acknowledged));
    }
    latencies.sort();
    let shown = engine.subscription(added.subscription.id).await.unwrap();
    deliverers.stop().await;
    engine.close().await.unwrap();

    println!("subscriptions on sled (durable checkpoint), receiver on loopback, {head} events backlog, {live} live");
    println!(
        "baseline  plain POSTs, one at a time:      {baseline_rate:>8.0} requests/s   round trip p50 {:.2} ms  p99 {:.2} ms",
        ms(quantile(&round_trips, 0.5)),
        ms(quantile(&round_trips, 0.99))
    );
    println!(
        "golive    catch-up delivery:               {catch_up_rate:>8.0} events/s     ({:.2} of the baseline's rate)",
        catch_up_rate / baseline_rate
    );
    println!(
        "golive    live delivery, ack -> receipt:   p50 {:.2} ms  p99 {:.2} ms  ({:.1}x and {:.1}x the baseline's round trip)",
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        ms(quantile(&latencies, 0.5)) / ms(quantile(&round_trips, 0.5)),
        ms(quantile(&latencies, 0.99)) / ms(quantile(&round_trips, 0.99))
    );
    println!("delivered {} events, {} retries, {} dead letters", shown.delivered, shown.retries, shown.dead_lettered);
}
