//! The same command workload on each backend: sled (embedded), PostgreSQL with one golive
//! replica, and PostgreSQL with two replicas (two engines on one database, clients split
//! between them). Each client opens its own integration, then executes durable `add_note`
//! commands through the engine (load, decide, append, commit) for the phase's duration.
//! Prints commands/s and p50/p99 latency for 1 and 64 clients.
//!
//! `cargo bench --bench backends`; `GOLIVE_BENCH_SECONDS` (default 5) per phase,
//! `GOLIVE_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/test). Without a
//! PostgreSQL server the PostgreSQL rows say SKIPPED.

use std::str::FromStr;
use std::time::{Duration, Instant};

use golive::domain::{Actor, HttpUrl};
use golive::engine::{Engine, EngineConfig, ExecuteRequest, OpenOptions};
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

async fn run(engines: &[Engine], clients: usize, seconds: u64) -> Figures {
    let actor = Actor::parse("bench").unwrap();
    let mut ids = Vec::new();
    for c in 0..clients {
        let engine = &engines[c % engines.len()];
        let opened = engine
            .open_integration(
                json!({"customer": format!("Bench {c}"), "gitlab_url": "https://gitlab.bench.example"}),
                &actor,
                None,
            )
            .await
            .unwrap();
        ids.push(opened.state.id);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .enumerate()
        .map(|(c, id)| {
            let engine = engines[c % engines.len()].clone();
            let actor = actor.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let body = json!({"type": "add_note", "text": format!("bench note {n}")});
                    if engine.execute(ExecuteRequest::new(id, body, actor.clone())).await.is_err() {
                        errors += 1;
                    }
                    latencies.push(t.elapsed());
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Figures { rate: all.len() as f64 / elapsed, p50_ms: pick(0.5), p99_ms: pick(0.99), errors }
}

fn config() -> EngineConfig {
    EngineConfig::new(HttpUrl::parse("http://127.0.0.1:8080").unwrap(), None)
}

async fn postgres_schema(base: &str) -> Option<(tokio_postgres::Client, String, String)> {
    let config = tokio_postgres::Config::from_str(base).ok()?;
    let (client, connection) =
        tokio::time::timeout(Duration::from_secs(5), config.connect(tokio_postgres::NoTls)).await.ok()?.ok()?;
    tokio::spawn(connection);
    let schema = format!("golive_bench_{}", uuid::Uuid::new_v4().simple());
    client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.ok()?;
    let url = format!("{base}{}options=-csearch_path%3D{schema}", if base.contains('?') { '&' } else { '?' });
    Some((client, schema, url))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let seconds = env_or("GOLIVE_BENCH_SECONDS", 5);
        let base = std::env::var("GOLIVE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut rows: Vec<(String, usize, Option<Figures>)> = Vec::new();
        for clients in [1usize, 64] {
            // sled
            let dir = tempfile::tempdir().unwrap();
            let (engine, _) = Engine::open_dir(dir.path(), config(), OpenOptions::default()).await.unwrap();
            let figures = run(std::slice::from_ref(&engine), clients, seconds).await;
            engine.close().await.unwrap();
            rows.push(("sled (embedded)".into(), clients, Some(figures)));
            // PostgreSQL, one and two replicas
            for replicas in [1usize, 2] {
                let name = format!("PostgreSQL, {replicas} replica{}", if replicas == 1 { "" } else { "s" });
                let Some((admin, schema, url)) = postgres_schema(&base).await else {
                    eprintln!("SKIPPED {name}: no PostgreSQL at {base}");
                    rows.push((name, clients, None));
                    continue;
                };
                let key_dir = tempfile::tempdir().unwrap();
                let mut engines = Vec::new();
                for _ in 0..replicas {
                    let (engine, _) = Engine::open_postgres(&url, key_dir.path(), config(), OpenOptions::default()).await.unwrap();
                    engines.push(engine);
                }
                let figures = run(&engines, clients, seconds).await;
                for engine in &engines {
                    engine.close().await.unwrap();
                }
                drop(engines);
                let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await;
                rows.push((name, clients, Some(figures)));
            }
        }
        println!("\n| backend | clients | commands/s | p50 | p99 | errors |\n|---|---|---|---|---|---|");
        for (name, clients, figures) in &rows {
            match figures {
                Some(f) => println!(
                    "| {name} | {clients} | {:.0} | {:.2} ms | {:.2} ms | {} |",
                    f.rate, f.p50_ms, f.p99_ms, f.errors
                ),
                None => println!("| {name} | {clients} | SKIPPED | | | |"),
            }
        }
        let sled_rate = |clients: usize| rows.iter().find(|(n, c, _)| n.starts_with("sled") && *c == clients).and_then(|r| r.2.as_ref()).map(|f| f.rate);
        println!("\nRatios to sled in the same run, and to cqrs-es + postgres-es (1,060/s with 1 client, 5,400/s with 64, measured on this machine kind):");
        for (name, clients, figures) in &rows {
            if let (Some(f), Some(sled)) = (figures, sled_rate(*clients)) {
                let peer = if *clients == 1 { 1060.0 } else { 5400.0 };
                println!("- {name}, {clients} client(s): {:.2} × sled, {:.2} × cqrs-es", f.rate / sled, f.rate / peer);
            }
        }
    });
}
