//! The webhook receiver under attack, on real sockets: it authenticates before it reads (404 and
//! 401 from the headers alone), a flood of large unauthenticated bodies barely grows the real
//! `golive serve` (its VmHWM), a flood with a valid token stays within the byte budget (the
//! rest 503 with `Retry-After`), a signed delivery replayed with its `webhook-id` records
//! nothing new (on sled and across two PostgreSQL replicas), and made-up event names and HTTP
//! methods add no `/metrics` series.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use golive::domain::IntegrationId;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{payload, spawn_app, TestApp};
use crate::replicas::{golive, start_replica, Replica};

const MIB: u64 = 1024 * 1024;

/// Sends a delivery's headers declaring a `length`-byte body, then `body_bytes` of it, and
/// returns (status, seconds until the answer); status 0 when the connection closed first.
async fn headers_then(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    length: usize,
    body: Arc<Vec<u8>>,
    wait: Duration,
) -> (u16, f64) {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // The body goes out concurrently with reading the answer; the server may close first.
    let sender = tokio::spawn(async move {
        for chunk in body.chunks(256 * 1024) {
            if writer.write_all(chunk).await.is_err() {
                break;
            }
        }
        writer
    });
    let mut answer = vec![0u8; 4096];
    let n = match tokio::time::timeout(wait, reader.read(&mut answer)).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    let elapsed = started.elapsed().as_secs_f64();
    sender.abort();
    let text = String::from_utf8_lossy(&answer[..n]);
    (text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), elapsed)
}

/// An attack on the receiver: its name, path, headers and the status it must get.
type Attack<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16);

async fn version(app: &TestApp, id: &str) -> u64 {
    app.engine.state(IntegrationId::parse(id).unwrap()).await.unwrap().version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_integrations_and_bad_tokens_are_answered_from_the_headers_without_reading_the_body() {
    let mut app = spawn_app().await;
    let (id, token) = crate::http::to_webhook_live(&app).await;
    let signed = app.open().await;
    let issued = app.ok(&signed, json!({"type": "issue_webhook_credentials", "signing": true})).await;
    let signed_token = issued["secret_token"].as_str().unwrap().to_owned();
    let before = (version(&app, &id).await, version(&app, &signed).await);
    let nothing = Arc::new(Vec::new());
    let declared = 24 * 1024 * 1024;
    let wait = Duration::from_secs(5);
    let unknown = format!("/hooks/gitlab/{}", uuid::Uuid::new_v4());
    let hook = format!("/hooks/gitlab/{id}");
    let signed_hook = format!("/hooks/gitlab/{signed}");
    let stale = (chrono::Utc::now().timestamp() - 600).to_string();
    // Each declares 24 MB and sends none of it: an answer can only come from the headers.
    let attacks: Vec<Attack> = vec![
        (
            "an integration that does not exist",
            &unknown,
            vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", &token)],
            404,
        ),
        ("a path that is no integration id", "/hooks/gitlab/not-a-uuid", vec![("X-Gitlab-Token", &token)], 404),
        ("no X-Gitlab-Token", &hook, vec![("X-Gitlab-Event", "Push Hook")], 401),
        ("a wrong X-Gitlab-Token", &hook, vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "glw-guess")], 401),
        (
            "another integration's token",
            &hook,
            vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", &signed_token)],
            401,
        ),
        (
            "a signed hook without a signature",
            &signed_hook,
            vec![("X-Gitlab-Token", &signed_token), ("webhook-id", "m1"), ("webhook-timestamp", &stale)],
            401,
        ),
        (
            "a signed hook with a stale timestamp",
            &signed_hook,
            vec![
                ("X-Gitlab-Token", &signed_token),
                ("webhook-id", "m1"),
                ("webhook-timestamp", &stale),
                ("webhook-signature", "v1,AAAA"),
            ],
            401,
        ),
    ];
    for (name, path, headers, expected) in &attacks {
        let (status, seconds) = headers_then(&app.address, path, headers, declared, nothing.clone(), wait).await;
        eprintln!("  {status} in {seconds:.3} s  {name} (24 MB declared, none sent)");
        assert_eq!(status, *expected, "{name}");
        assert!(seconds < 2.0, "{name}: answered at once, not after waiting for the body");
    }
    // The one with the right token is different: the server waits for its body.
    let (status, _) = headers_then(
        &app.address,
        &hook,
        &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", &token)],
        declared,
        nothing.clone(),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(status, 0, "an authenticated delivery's body is awaited");
    // Nothing changed; the refusals were counted as before.
    assert_eq!((version(&app, &id).await, version(&app, &signed).await), before, "no event written");
    let (_, diagnosis) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/diagnose")).await;
    assert!(diagnosis["findings"].to_string().contains("3 deliveries were refused"), "{diagnosis}");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("outcome=\"unknown_integration\"") && metrics.contains("outcome=\"refused\""));
    assert!(!metrics.contains("glw-guess") && !metrics.contains(&token), "no token in /metrics");
    app.stop().await;
}

/// The peak resident memory (VmHWM) of process `pid`, in bytes.
fn peak_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// A realistic push delivery padded to `size` bytes.
fn padded_push(size: usize) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&payload("push")).unwrap();
    let base = serde_json::to_vec(&body).unwrap().len();
    body["padding"] = json!("x".repeat(size - base - 14));
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(bytes.len() <= size);
    bytes
}

async fn serve_sled(dir: &std::path::Path) -> (Replica, String) {
    let created = golive("sled", dir).args(["token", "create", "--role", "admin", "--name", "flood"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    (start_replica("sled", dir).await, token)
}

async fn recorded_deliveries(http: &reqwest::Client, address: &str, token: &str, id: &str) -> usize {
    let history: Value = http
        .get(format!("{address}/api/v1/integrations/{id}/history?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    history["events"].as_array().unwrap().iter().filter(|e| e["type"] == "webhook_delivery_recorded").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn floods_of_large_bodies_grow_the_real_server_by_at_most_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared-master.key"), "cd".repeat(32)).unwrap();
    let (server, admin) = serve_sled(dir.path()).await;
    let pid = server.child.id();
    let http = reqwest::Client::new();
    let (id, token) = crate::replicas::open_with_hook(&http, &server.address, &admin, "Flood Robotics").await;
    // Warm up every path once (a small delivery of each kind) so the baseline is the server
    // after start-up, not before its first request.
    let small = payload("push");
    for (path, hook_token) in
        [(format!("/hooks/gitlab/{id}"), token.as_str()), (format!("/hooks/gitlab/{id}"), "wrong")]
    {
        http.post(format!("{}{path}", server.address))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", hook_token)
            .header("idempotency-key", "warm-up")
            .body(small.clone())
            .send()
            .await
            .unwrap();
    }
    let version_before = recorded_deliveries(&http, &server.address, &admin, &id).await;
    let baseline = peak_bytes(pid);

    // 1. 64 unauthenticated 24 MB bodies to random integrations and 64 with a wrong token.
    let body = Arc::new(vec![b' '; 24_000_000]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..128 {
        let (address, body) = (server.address.clone(), body.clone());
        let path =
            if n % 2 == 0 { format!("/hooks/gitlab/{}", uuid::Uuid::new_v4()) } else { format!("/hooks/gitlab/{id}") };
        tasks.push(tokio::spawn(async move {
            let headers = [("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "glw-not-the-token")];
            headers_then(&address, &path, &headers, body.len(), body, Duration::from_secs(20)).await.0
        }));
    }
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        *statuses.entry(task.await.unwrap()).or_insert(0) += 1;
    }
    let unauthenticated_peak = peak_bytes(pid);
    let growth = unauthenticated_peak.saturating_sub(baseline);
    eprintln!(
        "unauthenticated flood: 128 × 24 MB (64 unknown ids, 64 wrong tokens) in {:.1} s, answers {statuses:?} \
         (0 = closed before an answer); VmHWM {} → {} MiB, growth {:.1} MiB",
        started.elapsed().as_secs_f64(),
        baseline / MIB,
        unauthenticated_peak / MIB,
        growth as f64 / MIB as f64
    );
    assert!(statuses.keys().all(|s| [0, 401, 404].contains(s)), "{statuses:?}");
    assert!(growth <= 128 * MIB, "peak growth {growth} bytes > 128 MiB");

    // 2. 24 deliveries of 24 MB with the valid token at once: the 64 MiB budget holds two.
    let valid = axum::body::Bytes::from(padded_push(24_000_000));
    let (ok, shed, other) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..24 {
        let (http, url, token, valid) =
            (http.clone(), format!("{}/hooks/gitlab/{id}", server.address), token.clone(), valid.clone());
        let (ok, shed, other) = (ok.clone(), shed.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            let sent = http
                .post(url)
                .header("content-type", "application/json")
                .header("x-gitlab-event", "Push Hook")
                .header("x-gitlab-token", token)
                .header("idempotency-key", format!("flood-{n}"))
                .body(valid)
                .send()
                .await;
            match sent {
                Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(r.headers()["retry-after"], "1", "a shed delivery says when to retry");
                    assert_eq!(r.headers()["content-type"], "application/problem+json");
                    shed.fetch_add(1, Ordering::Relaxed)
                }
                _ => other.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (ok, shed, other) = (ok.load(Ordering::Relaxed), shed.load(Ordering::Relaxed), other.load(Ordering::Relaxed));
    let valid_peak = peak_bytes(pid);
    let growth = valid_peak.saturating_sub(baseline);
    eprintln!(
        "valid-token flood: 24 × 24 MB in {:.1} s: {ok} recorded, {shed} shed (503 + Retry-After), {other} other; \
         VmHWM {} → {} MiB, growth {:.1} MiB (budget 64 MiB)",
        started.elapsed().as_secs_f64(),
        baseline / MIB,
        valid_peak / MIB,
        growth as f64 / MIB as f64
    );
    assert_eq!(other, 0, "every delivery is recorded or shed cleanly");
    assert!(ok >= 1 && shed >= 1, "some recorded, the rest shed: {ok} / {shed}");
    assert!(growth <= (64 + 64) * MIB, "peak growth {growth} bytes > the 64 MiB budget + 64 MiB overhead");
    let recorded = recorded_deliveries(&http, &server.address, &admin, &id).await;
    assert_eq!(recorded - version_before, ok as usize, "exactly the acknowledged deliveries were recorded");
    drop(server);
}

/// Sends a delivery signed with `key` as message `webhook_id`.
async fn signed_delivery(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    key: &[u8],
    webhook_id: &str,
    idempotency_key: Option<&str>,
    body: &[u8],
) -> reqwest::Response {
    let now = chrono::Utc::now().timestamp();
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", token)
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", golive::gitlab::webhook::sign(key, webhook_id, now, body))
        .body(body.to_vec());
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_replayed_with_its_webhook_id_records_nothing_new() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    let issued = app.ok(&id, json!({"type": "issue_webhook_credentials", "signing": true})).await;
    let token = issued["secret_token"].as_str().unwrap().to_owned();
    let key = golive::gitlab::webhook::signing_key_bytes(issued["signing_key"].as_str().unwrap()).unwrap();
    let url = app.url(&format!("/hooks/gitlab/{id}"));
    let body = payload("push");
    let first = signed_delivery(&app.http, &url, &token, &key, "msg_replayed", Some("msg_replayed"), &body).await;
    assert_eq!(first.status(), StatusCode::OK);
    let after_first = version(&app, &id).await;
    // Replays within the window, re-signed with a new timestamp: without, with another and
    // with the same Idempotency-Key.
    for idempotency_key in [None, Some("another-key"), Some("msg_replayed")] {
        let replay = signed_delivery(&app.http, &url, &token, &key, "msg_replayed", idempotency_key, &body).await;
        assert_eq!(replay.status(), StatusCode::OK, "{idempotency_key:?}");
        assert_eq!(replay.json::<Value>().await.unwrap()["status"], "duplicate", "{idempotency_key:?}");
        assert_eq!(version(&app, &id).await, after_first, "nothing new recorded ({idempotency_key:?})");
    }
    // Another message is recorded.
    let other = signed_delivery(&app.http, &url, &token, &key, "msg_other", None, &body).await;
    assert_eq!(other.json::<Value>().await.unwrap()["status"], "recorded");
    assert!(version(&app, &id).await > after_first);
    // `/metrics` counts the three replays as duplicates, not as recorded deliveries.
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |outcome: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("golive_webhook_deliveries_total") && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(count("duplicate"), 3.0, "{metrics}");
    assert_eq!(count("recorded"), 2.0, "{metrics}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_id_replayed_to_another_replica_on_postgres_records_nothing_new() {
    let Some(base) = crate::pg::available("a_webhook_id_replayed_to_another_replica_on_postgres").await else {
        return;
    };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shared-master.key"), "ef".repeat(32)).unwrap();
    let created =
        golive(&url, dir.path()).args(["token", "create", "--role", "admin", "--name", "dedup"]).output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let admin = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let a = start_replica(&url, dir.path()).await;
    let b = start_replica(&url, dir.path()).await;
    let http = reqwest::Client::new();
    let opened: Value = http
        .post(format!("{}/api/v1/integrations", a.address))
        .bearer_auth(&admin)
        .json(&json!({"customer": "Replayed Robotics", "gitlab_url": "https://gitlab.acme-robotics.example"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = opened["id"].as_str().unwrap().to_owned();
    let issued: Value = http
        .post(format!("{}/api/v1/integrations/{id}/commands", a.address))
        .bearer_auth(&admin)
        .json(&json!({"type": "issue_webhook_credentials", "signing": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["secret_token"].as_str().unwrap().to_owned();
    let key = golive::gitlab::webhook::signing_key_bytes(issued["signing_key"].as_str().unwrap()).unwrap();
    let body = payload("push");
    let to_a = format!("{}/hooks/gitlab/{id}", a.address);
    let to_b = format!("{}/hooks/gitlab/{id}", b.address);
    let first = signed_delivery(&http, &to_a, &token, &key, "msg_pg", Some("msg_pg"), &body).await;
    assert_eq!(first.status(), StatusCode::OK);
    for idempotency_key in [None, Some("another-key")] {
        let replay = signed_delivery(&http, &to_b, &token, &key, "msg_pg", idempotency_key, &body).await;
        assert_eq!(replay.status(), StatusCode::OK);
        assert_eq!(replay.json::<Value>().await.unwrap()["status"], "duplicate");
    }
    assert_eq!(recorded_deliveries(&http, &b.address, &admin, &id).await, 1, "one delivery in the shared log");
    drop((a, b));
    crate::pg::drop_schema(&base, &schema).await;
}

/// The `/metrics` series (lines that are not comments).
async fn series(app: &TestApp) -> Vec<String> {
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
        .collect()
}

/// Sends `method` to `path` on a raw socket; returns the status.
async fn raw_method(address: &str, method: &str, path: &str) -> u16 {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_event_names_and_methods_add_no_metrics_series() {
    let mut app = spawn_app().await;
    let (id, token) = crate::http::to_webhook_live(&app).await;
    let unknown = uuid::Uuid::new_v4();
    let routes = ["/healthz", "/api/v1/board", &format!("/hooks/gitlab/{id}"), "/no/such/route"];
    // One round of every kind on every route first, so the `other` series exist.
    let round = |n: usize| {
        let (app, token, id, routes) = (&app, &token, &id, &routes);
        async move {
            let event = format!("Made Up {n} Hook");
            for (target, hook_token, known) in
                [(id.to_string(), token.as_str(), true), (unknown.to_string(), "glw-guess", false)]
            {
                let status = app
                    .http
                    .post(app.url(&format!("/hooks/gitlab/{target}")))
                    .header("content-type", "application/json")
                    .header("x-gitlab-event", &event)
                    .header("x-gitlab-token", hook_token)
                    .header("idempotency-key", format!("made-up-{n}"))
                    .body(payload("push"))
                    .send()
                    .await
                    .unwrap()
                    .status();
                // An authenticated sender's unknown event is acknowledged (contract: 4xx only for
                // a wrong token, a bad signature or a malformed body) and still adds no series.
                if known {
                    assert!(status.is_success(), "{event}: {status}");
                } else {
                    assert!(status.is_client_error(), "{event}: {status}");
                }
            }
            let method = format!("BREW{n}");
            let status = raw_method(&app.address, &method, routes[n % routes.len()]).await;
            assert!(status >= 400, "{method}: {status}");
        }
    };
    for n in 0..routes.len() {
        round(n).await;
    }
    series(&app).await;
    let before = series(&app).await;
    let version_before = version(&app, &id).await;
    for n in routes.len()..routes.len() + 200 {
        round(n).await;
    }
    let after = series(&app).await;
    let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    eprintln!("/metrics: {} series before 200 made-up events and methods, {} after", before.len(), after.len());
    assert!(new.is_empty(), "new series: {new:?}");
    let text = after.join("\n");
    assert!(!text.contains("Made Up") && !text.contains("BREW"), "no made-up label value");
    assert!(text.contains("kind=\"other\"") && text.contains("method=\"other\""), "{text}");
    assert_eq!(version(&app, &id).await, version_before, "no event written");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_byte_budget_api_bodies_are_shed_first_and_deliveries_still_fit() {
    // A 256 KiB budget: API bodies may hold 128 KiB of it, deliveries all of it.
    let config = golive::http::HttpConfig { body_budget_bytes: 256 * 1024, ..Default::default() };
    let mut app = crate::http::spawn_app_with(config).await;
    let (id, token) = crate::http::to_webhook_live(&app).await;
    let before = version(&app, &id).await;
    // An API body of 900 KiB (under the 1 MiB API limit, over the API's half): 503, read to
    // its end (keeping nothing) so the client gets the answer rather than a reset.
    let note = json!({"type": "add_note", "text": "n".repeat(900 * 1024)});
    let response = app
        .http
        .post(app.url(&format!("/api/v1/integrations/{id}/commands")))
        .bearer_auth(&app.rep)
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(version(&app, &id).await, before, "a shed command writes nothing");
    // A 200 KiB delivery fits (deliveries may use the whole budget)...
    let delivery = padded_push(200 * 1024);
    let response = app.deliver(&id, "Push Hook", &delivery, Some(&token), "k-fits").await;
    assert_eq!(response.status(), StatusCode::OK);
    let after_one = version(&app, &id).await;
    assert!(after_one > before);
    // ...a 300 KiB one does not, declared or chunked: 503, nothing recorded.
    let too_big = padded_push(300 * 1024);
    let response = app.deliver(&id, "Push Hook", &too_big, Some(&token), "k-declared").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = too_big.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .http
        .post(app.url(&format!("/hooks/gitlab/{id}")))
        .header("content-type", "application/json")
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", &token)
        .header("idempotency-key", "k-chunked")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "a chunked body is charged as it grows");
    assert_eq!(version(&app, &id).await, after_one, "nothing recorded");
    // The budget was given back: the small delivery fits again.
    let response = app.deliver(&id, "Push Hook", &payload("push"), Some(&token), "k-after").await;
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}
