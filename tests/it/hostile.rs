//! A scripted battery of attacks over real HTTP: each must get a clean 4xx (problem+json on the
//! API, an HTML page on the dashboard), and none may change anything: the log's head, the
//! integration's state and the refused-delivery counts are compared before and after.

use std::time::Duration;

use golive::http::HttpConfig;
use reqwest::redirect::Policy;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{payload, spawn_app_with, TestApp};

struct Battery<'a> {
    app: &'a TestApp,
    id: String,
    tried: Vec<(&'static str, u16)>,
}

impl Battery<'_> {
    async fn head(&self) -> u64 {
        self.app.engine.store().head().await.unwrap().position
    }

    /// Runs one attack; it must answer `expected` (or any 4xx when `None`) and write nothing.
    async fn attack(
        &mut self,
        name: &'static str,
        expected: Option<u16>,
        attempt: impl std::future::Future<Output = u16>,
    ) {
        let before = self.head().await;
        let status = attempt.await;
        match expected {
            Some(code) => assert_eq!(status, code, "attack {name:?}"),
            None => assert!((400..500).contains(&status), "attack {name:?} answered {status}"),
        }
        assert_eq!(self.head().await, before, "attack {name:?} changed the log");
        self.tried.push((name, status));
    }
}

fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn status(response: reqwest::Result<reqwest::Response>) -> u16 {
    let response = response.unwrap();
    let code = response.status().as_u16();
    if response.url().path().starts_with("/api/") && code >= 400 {
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "API errors are problem+json");
    }
    code
}

/// Sends raw bytes and returns the status code of the answer.
async fn raw(address: &str, request: Vec<u8>, pause_after: Option<(usize, Duration)>) -> u16 {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    match pause_after {
        Some((at, pause)) => {
            stream.write_all(&request[..at]).await.unwrap();
            tokio::time::sleep(pause).await;
            let _ = stream.write_all(&request[at..]).await;
        }
        None => stream.write_all(&request).await.unwrap(),
    }
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await.unwrap().unwrap_or(0);
    let text = String::from_utf8_lossy(&answer[..n]);
    text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn config() -> HttpConfig {
    HttpConfig { body_read_timeout: Duration::from_secs(1), ..HttpConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_and_more_attacks_each_get_a_clean_4xx_and_change_nothing() {
    battery(spawn_app_with(config()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attacks_change_nothing_on_postgres_either() {
    let Some(base) = crate::pg::available("the_attacks_change_nothing_on_postgres_either").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    battery(crate::http::spawn_app_on_postgres_with(&url, config()).await).await;
    crate::pg::drop_schema(&base, &schema).await;
}

async fn battery(app: TestApp) {
    let (id, token) = crate::http::to_webhook_live(&app).await;
    let other = app.open().await;
    let issued = app.ok(&other, json!({"type": "issue_webhook_credentials", "signing": true})).await;
    let other_token = issued["secret_token"].as_str().unwrap().to_owned();
    let other_key =
        golive::gitlab::webhook::signing_key_bytes(issued["signing_key"].as_str().unwrap()).expect("a whsec_ key");
    let signed = app.ok(&id, json!({"type": "rotate_credential", "credential": "webhook_token"})).await;
    let token = signed["secret_token"].as_str().map(str::to_owned).unwrap_or(token);
    let state_before = app.engine.state(golive::domain::IntegrationId::parse(&id).unwrap()).await.unwrap();
    let mut b = Battery { app: &app, id: id.clone(), tried: Vec::new() };
    let http = raw_client();
    let url = |path: &str| app.url(path);
    let commands = url(&format!("/api/v1/integrations/{id}/commands"));
    let hook = url(&format!("/hooks/gitlab/{id}"));
    let deliver = |event: &str, body: Vec<u8>, token: Option<&str>, key: &str| {
        let mut request = http
            .post(&hook)
            .header("content-type", "application/json")
            .header("x-gitlab-event", event)
            .header("idempotency-key", key)
            .body(body);
        if let Some(token) = token {
            request = request.header("x-gitlab-token", token);
        }
        request.send()
    };

    // Sizes and encodings.
    b.attack("JSON body over the 1 MiB limit", Some(413), async {
        let big = format!("{{\"type\":\"add_note\",\"text\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("content-type", "application/json")
                .body(big)
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("webhook body over GitLab's 25 MiB", Some(413), async {
        status(deliver("Push Hook", vec![b' '; 26 * 1024 * 1024], Some(&token), "big").await).await
    })
    .await;
    b.attack("a 1 MiB header", None, async {
        let request = format!("GET /api/v1/board HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "h".repeat(1024 * 1024));
        raw(&app.address, request.into_bytes(), None).await
    })
    .await;
    b.attack("a body that trickles in slower than the read timeout", Some(408), async {
        let body = r#"{"type":"add_note","text":"slow"}"#;
        let request = format!(
            "POST /api/v1/integrations/{id}/commands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            app.rep,
            body.len()
        );
        let at = request.len() - 10;
        raw(&app.address, request.into_bytes(), Some((at, Duration::from_secs(3)))).await
    }).await;
    b.attack("invalid UTF-8 in a JSON body", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("content-type", "application/json")
                .body(b"{\"type\":\"add_note\",\"text\":\"\xff\xfe\"}".to_vec())
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("JSON nested 100,000 deep", Some(400), async {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("content-type", "application/json")
                .body(deep)
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("duplicate keys in a command", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("content-type", "application/json")
                .body(r#"{"type":"add_note","text":"a","text":"b"}"#)
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("10,000 scopes", Some(400), async {
        let scopes: Vec<&str> = vec!["api"; 10_000];
        status(http.post(&commands).bearer_auth(&app.rep).json(&json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": "https://x.example/cb", "application_id": "a", "scopes": scopes})).send().await).await
    }).await;
    b.attack("a form, not JSON", Some(415), async {
        status(http.post(&commands).bearer_auth(&app.rep).form(&[("type", "add_note")]).send().await).await
    })
    .await;

    // Vocabulary.
    b.attack("an unknown command type", Some(400), async {
        status(http.post(&commands).bearer_auth(&app.rep).json(&json!({"type": "drop_table"})).send().await).await
    })
    .await;
    b.attack("an internal input through the public endpoint", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .json(&json!({"type": "record_probe_result", "api_reachable": true}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("an actor field in the body", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .json(&json!({"type": "add_note", "text": "x", "actor": "admin"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a non-ASCII Idempotency-Key", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("idempotency-key", reqwest::header::HeaderValue::from_bytes(b"k\xe9y").unwrap())
                .json(&json!({"type": "add_note", "text": "x"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a 1,000-character Idempotency-Key", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("idempotency-key", "k".repeat(1000))
                .json(&json!({"type": "add_note", "text": "x"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("If-Match that is not a version", Some(400), async {
        status(
            http.post(&commands)
                .bearer_auth(&app.rep)
                .header("if-match", "\"abc\"")
                .json(&json!({"type": "add_note", "text": "x"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("an http instance URL the playbook forbids", Some(400), async {
        status(
            http.post(url("/api/v1/integrations"))
                .bearer_auth(&app.rep)
                .json(&json!({"customer": "X", "gitlab_url": "http://gitlab.x.example"}))
                .send()
                .await,
        )
        .await
    })
    .await;

    // Paths and queries.
    b.attack("dot segments in an id", Some(404), async {
        status(http.get(url("/api/v1/integrations/..%2F..%2Fetc%2Fpasswd")).bearer_auth(&app.viewer).send().await).await
    })
    .await;
    b.attack("a NUL in an id", Some(404), async {
        status(http.get(url("/api/v1/integrations/%00")).bearer_auth(&app.viewer).send().await).await
    })
    .await;
    b.attack("SQL in an id", Some(404), async {
        status(http.get(url("/api/v1/integrations/1%27%20OR%20%271%27%3D%271")).bearer_auth(&app.viewer).send().await)
            .await
    })
    .await;
    b.attack("dot segments in an asset path", Some(404), async {
        raw(&app.address, b"GET /assets/../../Cargo.toml HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), None).await
    })
    .await;
    b.attack("a limit beyond u64", Some(400), async {
        status(http.get(url("/api/v1/events?limit=99999999999999999999999")).bearer_auth(&app.viewer).send().await)
            .await
    })
    .await;
    b.attack("an as-of time that is not a time", Some(400), async {
        status(
            http.get(url(&format!("/api/v1/integrations/{id}/state?at=yesterday")))
                .bearer_auth(&app.viewer)
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("an unknown query parameter", Some(400), async {
        status(http.get(url("/api/v1/integrations?where=1")).bearer_auth(&app.viewer).send().await).await
    })
    .await;
    b.attack("a method the route does not take", Some(405), async {
        status(http.delete(url("/api/v1/integrations")).bearer_auth(&app.admin).send().await).await
    })
    .await;

    // Authentication and roles.
    b.attack("no token", Some(401), async {
        status(http.post(&commands).json(&json!({"type": "add_note", "text": "x"})).send().await).await
    })
    .await;
    b.attack("an empty bearer token", Some(401), async {
        status(
            http.post(&commands)
                .header("authorization", "Bearer ")
                .json(&json!({"type": "add_note", "text": "x"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a Basic credential", Some(401), async {
        status(
            http.post(&commands)
                .header("authorization", format!("Basic {}", app.rep))
                .json(&json!({"type": "add_note", "text": "x"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a viewer sending a command", Some(403), async {
        status(
            http.post(&commands).bearer_auth(&app.viewer).json(&json!({"type": "add_note", "text": "x"})).send().await,
        )
        .await
    })
    .await;
    b.attack("a rep minting an admin token", Some(403), async {
        status(
            http.post(url("/api/v1/tokens"))
                .bearer_auth(&app.rep)
                .json(&json!({"name": "sneaky", "role": "admin"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a rep shredding", Some(403), async {
        status(http.post(url(&format!("/api/v1/integrations/{id}/shred"))).bearer_auth(&app.rep).send().await).await
    })
    .await;
    b.attack("a rep revealing a secret", Some(403), async {
        status(
            http.post(url(&format!("/api/v1/integrations/{id}/reveal")))
                .bearer_auth(&app.rep)
                .json(&json!({"secret": "access_token"}))
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a rep exporting the log", Some(403), async {
        status(http.get(url("/api/v1/export")).bearer_auth(&app.rep).send().await).await
    })
    .await;
    b.attack("a forged session cookie on the API", Some(401), async {
        status(
            http.get(url("/api/v1/board"))
                .header("cookie", "golive_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("an admin API token as the session cookie, writing", Some(401), async {
        status(
            http.post(url("/api/v1/integrations"))
                .header("cookie", format!("golive_session={}", app.admin))
                .json(&json!({"customer": "X", "gitlab_url": "https://x.example"}))
                .send()
                .await,
        )
        .await
    })
    .await;

    // The dashboard.
    b.attack("a forged session cookie on a page", Some(303), async {
        // Not 4xx by design: pages send the browser to sign in.
        http.get(url("/")).header("cookie", "golive_session=forged").send().await.unwrap().status().as_u16()
    })
    .await;
    b.attack("a cross-site sign-in", Some(403), async {
        status(
            http.post(url("/signin"))
                .header("origin", "https://evil.example")
                .form(&[("token", app.admin.as_str())])
                .send()
                .await,
        )
        .await
    })
    .await;
    b.attack("a sign-in form over the size limit", Some(413), async {
        status(http.post(url("/signin")).form(&[("token", "t".repeat(200 * 1024))]).send().await).await
    })
    .await;
    b.attack("creating an intake link without a session", Some(303), async {
        http.post(url(&format!("/integrations/{id}/intake-links")))
            .form(&[("expires_in_hours", "24")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await;
    b.attack("an intake link that was never issued", Some(404), async {
        status(http.get(url(&format!("/intake/{id}/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))).send().await).await
    })
    .await;
    b.attack("posting an intake for a link never issued", Some(404), async {
        status(http.post(url(&format!("/intake/{id}/forged"))).form(&[("application_id", "x")]).send().await).await
    })
    .await;

    // The webhook receiver.
    b.attack("another integration's webhook token", Some(401), async {
        status(deliver("Push Hook", payload("push"), Some(&other_token), "k-other").await).await
    })
    .await;
    b.attack("no webhook token", Some(401), async {
        status(deliver("Push Hook", payload("push"), None, "k-none").await).await
    })
    .await;
    b.attack("X-Gitlab-Event that contradicts object_kind", Some(400), async {
        status(deliver("Issue Hook", payload("push"), Some(&token), "k-mismatch").await).await
    })
    .await;
    b.attack("a delivery that is not JSON", Some(400), async {
        status(deliver("Push Hook", b"<xml/>".to_vec(), Some(&token), "k-xml").await).await
    })
    .await;
    b.attack("a delivery to an integration that does not exist", None, async {
        let response = http
            .post(url("/hooks/gitlab/00000000-0000-4000-8000-000000000000"))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", &token)
            .body(payload("push"))
            .send()
            .await;
        status(response).await
    })
    .await;

    // Replays: a resend is acknowledged and changes nothing (the contract); an old signature is refused.
    let first = deliver("Push Hook", payload("push"), Some(&token), "k-replay").await.unwrap();
    assert!(first.status().is_success());
    b.attack("a replayed delivery (same Idempotency-Key)", Some(200), async {
        deliver("Push Hook", payload("push"), Some(&token), "k-replay").await.unwrap().status().as_u16()
    })
    .await;
    b.attack("a signature replayed ten minutes later", Some(401), async {
        let stale = chrono::Utc::now().timestamp() - 600;
        let body = payload("push");
        let signature = golive::gitlab::webhook::sign(&other_key, "msg_replay", stale, &body);
        status(
            http.post(url(&format!("/hooks/gitlab/{other}")))
                .header("content-type", "application/json")
                .header("x-gitlab-event", "Push Hook")
                .header("x-gitlab-token", &other_token)
                .header("webhook-id", "msg_replay")
                .header("webhook-timestamp", stale.to_string())
                .header("webhook-signature", signature)
                .body(body)
                .send()
                .await,
        )
        .await
    })
    .await;

    let state_after = app.engine.state(golive::domain::IntegrationId::parse(&b.id).unwrap()).await.unwrap();
    assert_eq!(
        state_after.facts.deliveries.recorded,
        state_before.facts.deliveries.recorded + 1,
        "only the one real delivery"
    );
    eprintln!("{} attacks, each refused cleanly with nothing changed:", b.tried.len());
    for (name, code) in &b.tried {
        eprintln!("  {code}  {name}");
    }
    assert!(b.tried.len() >= 30, "at least 30 attacks");
}
