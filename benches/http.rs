//! HTTP load benchmark: a load generator in this process against the real server on a
//! loopback socket. Prints requests/s and p50/p99 latency for state reads, command POSTs and
//! webhook deliveries, beside `/healthz` (the bare HTTP stack) measured in the same run.
//!
//! `cargo bench --bench http`; duration per phase `GOLIVE_BENCH_SECONDS` (default 5),
//! concurrency `GOLIVE_BENCH_CLIENTS` (default 64).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use golive::auth::{Role, Tokens};
use golive::engine::{Engine, EngineConfig, OpenOptions};
use golive::http::{router, serve, HttpConfig};
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct Phase {
    name: &'static str,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

async fn run_phase<F, Fut>(name: &'static str, clients: u64, seconds: u64, make: F) -> Phase
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let make = Arc::new(make);
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let make = make.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if !make(client, n).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick =
        |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0);
    Phase {
        name,
        rate: all.len() as f64 / elapsed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        errors: errors.load(Ordering::Relaxed),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = env_or("GOLIVE_BENCH_SECONDS", 5);
    let clients = env_or("GOLIVE_BENCH_CLIENTS", 64);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = EngineConfig::new(golive::domain::HttpUrl::parse(base.as_str()).unwrap(), None);
        let (engine, _) = Engine::open_dir(dir.path(), config, OpenOptions::default()).await.unwrap();
        let token = Tokens::new(engine.store().as_ref()).create("bench", Role::Admin, "bench").await.unwrap();
        let app = router(
            engine.clone(),
            HttpConfig { api_concurrency: 4096, webhook_concurrency: 8192, ..Default::default() },
        );
        tokio::spawn(async move { serve(listener, app, std::future::pending()).await.unwrap() });
        let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build().unwrap();
        // 100 integrations with webhook credentials.
        let mut targets = Vec::new();
        for i in 0..100 {
            let opened: serde_json::Value = http
                .post(format!("{base}/api/v1/integrations"))
                .bearer_auth(&token)
                .json(&json!({"customer": format!("Customer {i}"), "gitlab_url": "https://gitlab.example.com"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = opened["id"].as_str().unwrap().to_owned();
            let issued: serde_json::Value = http
                .post(format!("{base}/api/v1/integrations/{id}/commands"))
                .bearer_auth(&token)
                .json(&json!({"type": "issue_webhook_credentials"}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            targets.push((id, issued["secret_token"].as_str().unwrap().to_owned()));
        }
        let targets = Arc::new(targets);
        let payload =
            Arc::new(std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/gitlab/note.json")).unwrap());
        let mut phases = Vec::new();
        {
            let (http, base) = (http.clone(), base.clone());
            phases.push(
                run_phase("GET /healthz (HTTP stack baseline)", clients, seconds, move |_, _| {
                    let (http, base) = (http.clone(), base.clone());
                    async move {
                        http.get(format!("{base}/healthz"))
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false)
                    }
                })
                .await,
            );
        }
        {
            let (http, base, token, targets) = (http.clone(), base.clone(), token.clone(), targets.clone());
            phases.push(
                run_phase("GET /api/v1/integrations/{id}", clients, seconds, move |c, n| {
                    let (http, base, token) = (http.clone(), base.clone(), token.clone());
                    let id = targets[((c * 7919 + n) % 100) as usize].0.clone();
                    async move {
                        http.get(format!("{base}/api/v1/integrations/{id}"))
                            .bearer_auth(token)
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false)
                    }
                })
                .await,
            );
        }
        {
            let (http, base, token, targets) = (http.clone(), base.clone(), token.clone(), targets.clone());
            phases.push(
                run_phase("POST .../commands (durable)", clients, seconds, move |c, n| {
                    let (http, base, token) = (http.clone(), base.clone(), token.clone());
                    let id = targets[((c * 31 + n) % 100) as usize].0.clone();
                    async move {
                        http.post(format!("{base}/api/v1/integrations/{id}/commands"))
                            .bearer_auth(token)
                            .header("idempotency-key", format!("bench-{c}-{n}"))
                            .json(&json!({"type": "add_note", "text": format!("bench note {c} {n}")}))
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false)
                    }
                })
                .await,
            );
        }
        {
            let (http, base, targets, payload) = (http.clone(), base.clone(), targets.clone(), payload.clone());
            phases.push(
                run_phase("POST /hooks/gitlab/{id} (durable)", clients, seconds, move |c, n| {
                    let (http, base, payload) = (http.clone(), base.clone(), payload.clone());
                    let (id, secret) = targets[((c * 13 + n) % 100) as usize].clone();
                    async move {
                        http.post(format!("{base}/hooks/gitlab/{id}"))
                            .header("content-type", "application/json")
                            .header("x-gitlab-event", "Note Hook")
                            .header("x-gitlab-token", secret)
                            .header("idempotency-key", format!("delivery-{c}-{n}"))
                            .body(payload.to_vec())
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false)
                    }
                })
                .await,
            );
        }
        let counters = engine.store().counters();
        println!(
            "\n{clients} concurrent clients, {seconds} s per phase, client and server in one process on this machine\n"
        );
        println!("| phase | requests/s | p50 | p99 | errors | / healthz |\n|---|---|---|---|---|---|");
        let baseline = phases[0].rate;
        for p in &phases {
            println!(
                "| {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.2} |",
                p.name,
                p.rate,
                p.p50_ms,
                p.p99_ms,
                p.errors,
                p.rate / baseline
            );
        }
        println!(
            "| write groups | {} flushes for {} appends (mean group {:.1}) | | | | |",
            counters.flushes,
            counters.appends_committed,
            counters.appends_committed as f64 / counters.flushes.max(1) as f64
        );
        println!("| peak resident memory (client + server) | {:.0} MiB | | | | |", peak_rss_mib());
    });
}
