//! Overload on both backends: far more clients than the server's permits. It sheds with 503 and
//! `Retry-After`, refuses webhook deliveries last (their pool is larger), keeps every write it
//! acknowledged, keeps memory bounded, and SSE clients that never read cannot stall writers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use golive::http::HttpConfig;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::http::{payload, spawn_app_with, TestApp};

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn tight() -> HttpConfig {
    HttpConfig { api_concurrency: 4, webhook_concurrency: 16, ..HttpConfig::default() }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    shed: AtomicU64,
    shed_without_retry_after: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    fn count(&self, response: &reqwest::Response) {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else if status == 503 {
            self.shed.fetch_add(1, Ordering::Relaxed);
            if response.headers().get("retry-after").is_none() {
                self.shed_without_retry_after.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn shed_fraction(&self) -> f64 {
        let (ok, shed) = (self.ok.load(Ordering::Relaxed), self.shed.load(Ordering::Relaxed));
        shed as f64 / (ok + shed).max(1) as f64
    }
}

/// Opens an SSE stream on a raw socket and never reads from it.
async fn stalled_sse_client(app: &TestApp) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://")).await.unwrap();
    let request = format!(
        "GET /api/v1/events/stream?after=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        app.viewer
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

async fn overload(app: TestApp, label: &str) {
    let (id, hook_token) = crate::http::to_webhook_live(&app).await;
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(app.open().await);
    }
    // Four SSE clients that never read: the writers must not wait for them.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_sse_client(&app).await);
    }
    let memory_before = resident_mib();
    let api = Arc::new(Tally::default());
    let hooks = Arc::new(Tally::default());
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for client in 0..128 {
        let (http, app_url, rep) = (app.http.clone(), app.address.clone(), app.rep.clone());
        let (api, acked, target) = (api.clone(), acked.clone(), ids[client % ids.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let text = format!("overload {client}-{n}");
                let sent = http
                    .post(format!("{app_url}/api/v1/integrations/{target}/commands"))
                    .bearer_auth(&rep)
                    .json(&json!({"type": "add_note", "text": text}))
                    .send()
                    .await;
                if let Ok(response) = sent {
                    api.count(&response);
                    if response.status().is_success() {
                        acked.lock().unwrap().push(text);
                    }
                }
                n += 1;
            }
        }));
    }
    for client in 0..32 {
        let (http, hook_url, token, hooks) =
            (app.http.clone(), app.url(&format!("/hooks/gitlab/{id}")), hook_token.clone(), hooks.clone());
        let body = payload("push");
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let sent = http
                    .post(&hook_url)
                    .header("content-type", "application/json")
                    .header("x-gitlab-event", "Push Hook")
                    .header("x-gitlab-token", &token)
                    .header("idempotency-key", format!("overload-{client}-{n}"))
                    .body(body.clone())
                    .send()
                    .await;
                if let Ok(response) = sent {
                    hooks.count(&response);
                }
                n += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let memory_after = resident_mib();
    let load =
        |t: &Tally| (t.ok.load(Ordering::Relaxed), t.shed.load(Ordering::Relaxed), t.other.load(Ordering::Relaxed));
    let (api_ok, api_shed, api_other) = load(&api);
    let (hook_ok, hook_shed, hook_other) = load(&hooks);
    eprintln!(
        "overload on {label}: API {api_ok} ok / {api_shed} shed ({:.0} %), webhooks {hook_ok} ok / {hook_shed} shed ({:.0} %), \
         {:.0} acknowledged writes/s; resident memory {memory_before:.0} → {memory_after:.0} MiB; 4 SSE clients never read",
        api.shed_fraction() * 100.0,
        hooks.shed_fraction() * 100.0,
        (api_ok + hook_ok) as f64 / 3.0
    );
    assert!(api_shed > 0, "128 clients on 4 permits must be shed");
    assert_eq!(api.shed_without_retry_after.load(Ordering::Relaxed), 0, "every 503 says Retry-After");
    assert_eq!(hooks.shed_without_retry_after.load(Ordering::Relaxed), 0);
    assert_eq!((api_other, hook_other), (0, 0), "only successes and 503s");
    assert!(api_ok > 100, "the server kept serving: {api_ok}");
    assert!(hooks.shed_fraction() < api.shed_fraction(), "webhook deliveries are refused last");
    assert!(memory_after - memory_before < 512.0, "memory stays bounded");

    // Nothing acknowledged is lost.
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let mut after = 0;
    loop {
        let (_, page) = app.get(&app.viewer, &format!("/api/v1/events?type=note_added&after={after}&limit=1000")).await;
        for event in page["events"].as_array().unwrap() {
            *notes.entry(event["data"]["text"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    for text in acked.lock().unwrap().iter() {
        assert_eq!(notes.get(text), Some(&1), "acknowledged {text:?} is in the log once");
    }
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_on_sled_sheds_cleanly_and_loses_nothing() {
    overload(spawn_app_with(tight()).await, "sled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_on_postgres_sheds_cleanly_and_loses_nothing() {
    let Some(base) = crate::pg::available("overload_on_postgres").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    overload(crate::http::spawn_app_on_postgres_with(&url, tight()).await, "PostgreSQL").await;
    crate::pg::drop_schema(&base, &schema).await;
}
