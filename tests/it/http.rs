//! The HTTP service on a real socket (port 0): the whole onboarding with realistic GitLab
//! deliveries, the auth matrix, every contract status code, the webhook receiver's checks, SSE
//! resume, metrics and graceful shutdown.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use golive::auth::{Role, Tokens};
use golive::engine::{Engine, EngineConfig, OpenOptions};
use golive::http::{router, serve, HttpConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub struct TestApp {
    pub address: String,
    pub admin: String,
    pub rep: String,
    pub viewer: String,
    pub engine: Engine,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(HttpConfig::default()).await
}

pub async fn spawn_app_with(config: HttpConfig) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_on(dir, config).await
}

async fn spawn_on(dir: tempfile::TempDir, config: HttpConfig) -> TestApp {
    spawn_with_store(dir, config, None).await
}

/// The app on PostgreSQL at `url` (the data directory holds only the master key).
pub async fn spawn_app_on_postgres(url: &str) -> TestApp {
    spawn_with_store(tempfile::tempdir().unwrap(), HttpConfig::default(), Some(url)).await
}

/// [`spawn_app_on_postgres`] with HTTP limits of the test's choosing.
pub async fn spawn_app_on_postgres_with(url: &str, config: HttpConfig) -> TestApp {
    spawn_with_store(tempfile::tempdir().unwrap(), config, Some(url)).await
}

async fn spawn_with_store(dir: tempfile::TempDir, config: HttpConfig, postgres: Option<&str>) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_configured(listener, dir, config, postgres, None, |_| {}).await
}

/// The app on a listener the test bound first (so it knows the app's address before making its
/// configuration, e.g. for an OpenID provider's redirect URI), on the given clock or the system's,
/// with an engine configuration of the test's making.
pub async fn spawn_app_on_listener(
    listener: tokio::net::TcpListener,
    config: HttpConfig,
    clock: Option<std::sync::Arc<dyn golive::engine::Clock>>,
    configure: impl FnOnce(&mut EngineConfig),
) -> TestApp {
    spawn_configured(listener, tempfile::tempdir().unwrap(), config, None, clock, configure).await
}

/// The app with an engine configuration of the test's making (`configure` sees the defaults,
/// with the public URL on the app's own address).
pub async fn spawn_app_with_engine(configure: impl FnOnce(&mut EngineConfig)) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_configured(listener, tempfile::tempdir().unwrap(), HttpConfig::default(), None, None, configure).await
}

async fn spawn_configured(
    listener: tokio::net::TcpListener,
    dir: tempfile::TempDir,
    config: HttpConfig,
    postgres: Option<&str>,
    clock: Option<std::sync::Arc<dyn golive::engine::Clock>>,
    configure: impl FnOnce(&mut EngineConfig),
) -> TestApp {
    let address = format!("http://{}", listener.local_addr().unwrap());
    let mut engine_config = EngineConfig::new(golive::domain::HttpUrl::parse(address.as_str()).unwrap(), None);
    configure(&mut engine_config);
    let options = OpenOptions { store: crate::store_conformance::reopen_options(), clock, ..Default::default() };
    let (engine, _) = match postgres {
        Some(url) => Engine::open_postgres(url, dir.path(), engine_config, options).await.unwrap(),
        None => Engine::open_dir(dir.path(), engine_config, options).await.unwrap(),
    };
    let tokens = Tokens::new(engine.store().as_ref());
    let stamp = uuid::Uuid::new_v4().simple().to_string();
    let admin = tokens.create(&format!("admin-{stamp}"), Role::Admin, "test").await.unwrap();
    let rep = tokens.create(&format!("rep-{stamp}"), Role::Rep, "test").await.unwrap();
    let viewer = tokens.create(&format!("viewer-{stamp}"), Role::Viewer, "test").await.unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(engine.clone(), config);
    let server = tokio::spawn(async move {
        serve(listener, app, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        address,
        admin,
        rep,
        viewer,
        engine,
        http: reqwest::Client::new(),
        shutdown: Some(tx),
        server: Some(server),
        dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn open(&self) -> String {
        let (status, body) = self.post(&self.rep, "/api/v1/integrations", &json!({"customer": "Acme Robotics", "gitlab_url": "https://gitlab.acme-robotics.example", "owner": "dana"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn command(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.post(&self.rep, &format!("/api/v1/integrations/{id}/commands"), &body).await
    }

    pub async fn ok(&self, id: &str, body: Value) -> Value {
        let (status, answer) = self.command(id, body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} -> {answer}");
        answer
    }

    /// Sends a delivery as GitLab would.
    pub async fn deliver(
        &self,
        id: &str,
        event: &str,
        body: &[u8],
        token: Option<&str>,
        key: &str,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(&format!("/hooks/gitlab/{id}")))
            .header("content-type", "application/json")
            .header("user-agent", "GitLab/17.5.1")
            .header("x-gitlab-event", event)
            .header("x-gitlab-instance", "https://gitlab.acme-robotics.example")
            .header("x-gitlab-webhook-uuid", uuid::Uuid::new_v4().to_string())
            .header("x-gitlab-event-uuid", uuid::Uuid::new_v4().to_string())
            .header("idempotency-key", key)
            .body(body.to_vec());
        if let Some(token) = token {
            request = request.header("x-gitlab-token", token);
        }
        request.send().await.unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        self.engine.close().await.unwrap();
    }
}

pub fn payload(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gitlab").join(format!("{name}.json"))).unwrap()
}

/// Brings an integration to `webhook_live`; returns (id, secret token).
pub async fn to_webhook_live(app: &TestApp) -> (String, String) {
    let id = app.open().await;
    app.ok(&id, json!({"type": "confirm_prerequisites", "gitlab_admin_access": true, "network_access": true, "factory_admin_account": true})).await;
    let redirect = format!("{}/oauth/gitlab/callback", app.address);
    app.ok(&id, json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect, "application_id": "8d2f6c1e", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]})).await;
    app.ok(&id, json!({"type": "provide_application_secret", "secret": "gloas-http-test-secret"})).await;
    app.ok(&id, json!({"type": "provide_access_token", "token": "glpat-http-test-token", "admin": true})).await;
    app.ok(&id, json!({"type": "submit_information"})).await;
    app.ok(&id, json!({"type": "evaluate_network_policy", "barriers": []})).await;
    app.ok(&id, json!({"type": "establish_vpn", "tunnel_established": true, "ipsec_compatible": true})).await;
    app.ok(&id, json!({"type": "configure_firewall", "outbound_https": true, "outbound_ssh": true, "webhook_endpoint_reachable": true})).await;
    let issued = app.ok(&id, json!({"type": "issue_webhook_credentials"})).await;
    let token = issued["secret_token"].as_str().unwrap().to_owned();
    let url = issued["webhook_url"].as_str().unwrap().to_owned();
    assert_eq!(url, app.url(&format!("/hooks/gitlab/{id}")));
    app.ok(&id, json!({"type": "create_webhook", "url": url, "triggers": ["push", "tag_push", "comments", "merge_requests", "issues", "ci_cd", "jobs"]})).await;
    let response = app.deliver(&id, "Note Hook", &payload("note"), Some(&token), "k-note").await;
    assert_eq!(response.status(), StatusCode::OK);
    (id, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_onboarding_over_http_with_real_gitlab_payloads() {
    whole_onboarding(spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_onboarding_over_http_on_postgres() {
    let Some(base) = crate::pg::available("the_whole_onboarding_over_http_on_postgres").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let app = spawn_app_on_postgres(&url).await;
    let id = whole_onboarding_returning_id(app).await;
    // The data key lived in PostgreSQL (the reveal used it); the shred deleted its row.
    let client = crate::pg::connect(&url).await;
    let keys: i64 = client.query_one("SELECT count(*) FROM golive_data_keys", &[]).await.unwrap().get(0);
    assert_eq!(keys, 0, "the shred deleted the data key row of {id}");
    let shredded: i64 = client
        .query_one("SELECT count(*) FROM golive_events WHERE event_type = 'secrets_shredded'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shredded, 1);
    crate::pg::drop_schema(&base, &schema).await;
}

async fn whole_onboarding(app: TestApp) {
    whole_onboarding_returning_id(app).await;
}

/// The guide end to end over HTTP; also reveals and shreds the access token at the end.
async fn whole_onboarding_returning_id(mut app: TestApp) -> String {
    let (id, token) = to_webhook_live(&app).await;
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
    assert_eq!(state["stage"], "webhook_live");
    app.ok(&id, json!({"type": "record_api_check", "ok": true})).await;
    for (i, (name, event)) in [
        ("push", "Push Hook"),
        ("tag_push", "Tag Push Hook"),
        ("merge_request_open", "Merge Request Hook"),
        ("issue_open", "Issue Hook"),
        ("job", "Job Hook"),
        ("pipeline_failed", "Pipeline Hook"),
    ]
    .iter()
    .enumerate()
    {
        let response = app.deliver(&id, event, &payload(name), Some(&token), &format!("k-{i}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
    }
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
    assert_eq!(state["stage"], "tested");
    for scenario in ["merge_request_created", "code_pushed", "issue_opened", "pipeline_ran"] {
        app.ok(&id, json!({"type": "validate_response", "scenario": scenario, "correct": true, "evidence": "ok"}))
            .await;
    }
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    app.ok(&id, json!({"type": "schedule_go_live", "date": today})).await;
    let response = app
        .http
        .post(app.url(&format!("/api/v1/integrations/{id}/commands")))
        .bearer_auth(&app.rep)
        .json(&json!({"type": "go_live"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let live: Value = response.json().await.unwrap();
    assert_eq!(live["state"]["stage"], "live");
    assert_eq!(etag, format!("\"{}\"", live["state"]["version"]));
    let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history?limit=1000")).await;
    let types: Vec<&str> = history["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "webhook_delivery_recorded").count(), 7);
    let envelope = &history["events"][0];
    for field in [
        "position",
        "integration_id",
        "version",
        "id",
        "recorded_at",
        "actor",
        "type",
        "schema_version",
        "data",
        "prev_hash",
        "hash",
    ] {
        assert!(envelope.get(field).is_some(), "envelope field {field}");
    }
    let delivery =
        history["events"].as_array().unwrap().iter().find(|e| e["type"] == "webhook_delivery_recorded").unwrap();
    assert_eq!(delivery["actor"], "gitlab");
    assert!(!delivery.to_string().contains("dana.reyes@acme-robotics.example"), "no personal data from the body");
    let (_, verify) = app.get(&app.viewer, "/api/v1/audit/verify").await;
    assert_eq!(verify["valid"], true);
    let (status, revealed) =
        app.post(&app.admin, &format!("/api/v1/integrations/{id}/reveal"), &json!({"secret": "access_token"})).await;
    assert_eq!(status, StatusCode::OK, "{revealed}");
    assert_eq!(
        revealed["plaintext"].as_str().or(revealed["secret"].as_str()),
        Some("glpat-http-test-token"),
        "{revealed}"
    );
    let (status, _) = app.post(&app.admin, &format!("/api/v1/integrations/{id}/shred"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        app.post(&app.admin, &format!("/api/v1/integrations/{id}/reveal"), &json!({"secret": "access_token"})).await;
    assert_ne!(status, StatusCode::OK, "nothing to reveal after a shred");
    app.stop().await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_authenticated_and_authorised_by_role() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    // (method, path, body, lowest role allowed)
    let routes: Vec<(&str, String, Option<Value>, Role)> = vec![
        (
            "POST",
            "/api/v1/integrations".into(),
            Some(json!({"customer": "X", "gitlab_url": "https://x.example"})),
            Role::Rep,
        ),
        ("GET", "/api/v1/integrations".into(), None, Role::Viewer),
        ("GET", format!("/api/v1/integrations/{id}"), None, Role::Viewer),
        (
            "POST",
            format!("/api/v1/integrations/{id}/commands"),
            Some(json!({"type": "add_note", "text": "hi"})),
            Role::Rep,
        ),
        ("GET", format!("/api/v1/integrations/{id}/history"), None, Role::Viewer),
        ("GET", format!("/api/v1/integrations/{id}/state?version=1"), None, Role::Viewer),
        ("GET", format!("/api/v1/integrations/{id}/diagnose"), None, Role::Viewer),
        ("GET", "/api/v1/board".into(), None, Role::Viewer),
        ("GET", "/api/v1/calendar".into(), None, Role::Viewer),
        ("GET", "/api/v1/insights".into(), None, Role::Viewer),
        ("GET", "/api/v1/events".into(), None, Role::Viewer),
        ("GET", "/api/v1/audit/verify".into(), None, Role::Viewer),
        ("GET", "/api/v1/export".into(), None, Role::Admin),
        ("GET", "/api/v1/tokens".into(), None, Role::Admin),
        ("POST", "/api/v1/tokens".into(), Some(json!({"name": "made-by-matrix", "role": "viewer"})), Role::Admin),
        ("GET", "/api/v1/openapi.json".into(), None, Role::Viewer),
        ("GET", "/api/v1/schemas/events.json".into(), None, Role::Viewer),
        ("POST", format!("/api/v1/integrations/{id}/reveal"), Some(json!({"secret": "access_token"})), Role::Admin),
    ];
    for (method, path, body, lowest) in routes {
        let send = |token: Option<&str>| {
            let mut request = app.http.request(method.parse().unwrap(), app.url(&path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            request.send()
        };
        let none = send(None).await.unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{method} {path} without a token");
        assert_eq!(none.headers()["content-type"], "application/problem+json");
        assert_eq!(
            send(Some("glv_not-a-real-token")).await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} bad token"
        );
        for (role, token) in [(Role::Viewer, &app.viewer), (Role::Rep, &app.rep), (Role::Admin, &app.admin)] {
            let status = send(Some(token)).await.unwrap().status();
            if role >= lowest {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} as {role:?}: {status}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path} as {role:?}");
            }
        }
    }
    // A raw API token is no session cookie (sessions: dashboard.rs).
    let read = app
        .http
        .get(app.url("/api/v1/board"))
        .header("cookie", format!("golive_session={}", app.viewer))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::UNAUTHORIZED);
    // The actor is always the token's name, never a field of the request.
    let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
    let actors: std::collections::BTreeSet<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap().split('-').next().unwrap())
        .collect();
    assert_eq!(actors, ["admin", "rep"].into_iter().collect(), "actors are token names");
    app.stop().await;
}

async fn problem(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/problem+json", "{status}");
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contract_status_code() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    let commands = app.url(&format!("/api/v1/integrations/{id}/commands"));
    let post = |body: reqwest::Body, content_type: &'static str| {
        app.http.post(&commands).bearer_auth(&app.rep).header("content-type", content_type).body(body).send()
    };
    let (status, p) = problem(post("{not json".into(), "application/json").await.unwrap()).await;
    assert_eq!((status, p["type"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "malformed-json"));
    let (status, p) = problem(post(r#"{"type": "launch_rockets"}"#.into(), "application/json").await.unwrap()).await;
    assert_eq!((status, p["type"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "unknown-command-type"));
    let (status, p) = problem(
        post(r#"{"type": "schedule_go_live", "date": "2026-02-30"}"#.into(), "application/json").await.unwrap(),
    )
    .await;
    assert_eq!(
        (status, p["type"].as_str().unwrap(), p["field"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "invalid-field", "date")
    );
    let (status, p) = problem(
        post(r#"{"type": "set_instance_url", "gitlab_url": "not a url"}"#.into(), "application/json").await.unwrap(),
    )
    .await;
    assert_eq!((status, p["field"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "gitlab_url"));
    let (status, _) = problem(post(r#"{"type": "add_note", "text": "x"}"#.into(), "text/plain").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = format!(r#"{{"type": "add_note", "text": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (status, _) = problem(post(big.into(), "application/json").await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, p) = problem(post(r#"{"type": "go_live"}"#.into(), "application/json").await.unwrap()).await;
    assert_eq!((status, p["type"].as_str().unwrap()), (StatusCode::UNPROCESSABLE_ENTITY, "guard-rejected"));
    assert!(p["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == "go_live.stage_validated" && u["label"].is_string()));
    let unknown = app
        .http
        .get(app.url("/api/v1/integrations/0b7c5a2e-1f2d-4c3b-9a8e-5d6f7a8b9c0d"))
        .bearer_auth(&app.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(problem(unknown).await.0, StatusCode::NOT_FOUND);
    // If-Match: 412 on a stale version, 200 on the current one.
    let stale = app
        .http
        .post(&commands)
        .bearer_auth(&app.rep)
        .header("if-match", "\"7\"")
        .json(&json!({"type": "add_note", "text": "x"}))
        .send()
        .await
        .unwrap();
    let (status, p) = problem(stale).await;
    assert_eq!((status, p["current_version"].as_u64()), (StatusCode::PRECONDITION_FAILED, Some(1)));
    let fresh = app
        .http
        .post(&commands)
        .bearer_auth(&app.rep)
        .header("if-match", "\"1\"")
        .json(&json!({"type": "add_note", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::OK);
    assert_eq!(fresh.headers()["etag"], "\"2\"");
    // Idempotency-Key: same status and body, one write, also at once; another body is 422.
    let keyed = |body: Value| {
        app.http.post(&commands).bearer_auth(&app.rep).header("idempotency-key", "k-42").json(&body).send()
    };
    let first = keyed(json!({"type": "add_note", "text": "once"})).await.unwrap();
    let (s1, b1) = (first.status(), first.text().await.unwrap());
    let second = keyed(json!({"type": "add_note", "text": "once"})).await.unwrap();
    assert_eq!((second.status(), second.text().await.unwrap()), (s1, b1));
    let (status, p) = problem(keyed(json!({"type": "add_note", "text": "other"})).await.unwrap()).await;
    assert_eq!((status, p["type"].as_str().unwrap()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused"));
    let racing: Vec<_> = (0..8)
        .map(|_| {
            let http = app.http.clone();
            let url = commands.clone();
            let token = app.rep.clone();
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(token)
                    .header("idempotency-key", "k-race")
                    .json(&json!({"type": "add_note", "text": "race"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for task in racing {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
    assert_eq!(state["version"], 4, "one write per key, even when eight arrive at once");
    // 409 once cancelled.
    app.ok(&id, json!({"type": "cancel", "reason": "moved"})).await;
    let (status, p) =
        problem(post(r#"{"type": "add_note", "text": "late"}"#.into(), "application/json").await.unwrap()).await;
    assert_eq!((status, p["type"].as_str().unwrap()), (StatusCode::CONFLICT, "integration-cancelled"));
    // Framework-level errors are problem+json too.
    let (status, _) = problem(app.http.get(app.url("/no/such/route")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        problem(app.http.put(app.url("/api/v1/board")).bearer_auth(&app.viewer).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = problem(
        app.http.get(app.url("/api/v1/integrations?stalled_days=soon")).bearer_auth(&app.viewer).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = problem(
        app.http
            .get(app.url(&format!("/api/v1/integrations/{id}/state?at=yesterday")))
            .bearer_auth(&app.viewer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_receiver_verifies_dedups_and_bounds() {
    let mut app = spawn_app().await;
    let (id, token) = to_webhook_live(&app).await;
    let version = |app: &TestApp| {
        let engine = app.engine.clone();
        let id = golive::domain::IntegrationId::parse(&id).unwrap();
        async move { engine.state(id).await.unwrap().version }
    };
    let before = version(&app).await;
    for bad in [None, Some("glw_wrong-token"), Some("")] {
        let response = app.deliver(&id, "Push Hook", &payload("push"), bad, "k-bad").await;
        assert_eq!(problem(response).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(version(&app).await, before, "a bad token stores nothing");
    let (_, diagnosis) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/diagnose")).await;
    assert!(diagnosis["findings"].to_string().contains("3 deliveries were refused"), "{diagnosis}");
    // A resend with the same Idempotency-Key answers 2xx and changes nothing.
    let first = app.deliver(&id, "Push Hook", &payload("push"), Some(&token), "k-push").await;
    assert_eq!(first.status(), StatusCode::OK);
    let after_first = version(&app).await;
    let resend = app.deliver(&id, "Push Hook", &payload("push"), Some(&token), "k-push").await;
    assert_eq!(resend.status(), StatusCode::OK);
    assert_eq!(resend.json::<Value>().await.unwrap()["status"], "duplicate");
    assert_eq!(version(&app).await, after_first);
    // Header and object_kind must agree; the body must be JSON.
    let mismatch = app.deliver(&id, "Merge Request Hook", &payload("push"), Some(&token), "k-mm").await;
    assert_eq!(problem(mismatch).await.0, StatusCode::BAD_REQUEST);
    let garbage = app.deliver(&id, "Push Hook", b"{not json", Some(&token), "k-garbage").await;
    assert_eq!(problem(garbage).await.0, StatusCode::BAD_REQUEST);
    // 25 MiB is accepted; one byte more is refused.
    let mut large: Value = serde_json::from_slice(&payload("push")).unwrap();
    let filler = 25 * 1024 * 1024 - serde_json::to_vec(&large).unwrap().len() - 20;
    large["padding"] = json!("x".repeat(filler));
    let mut body = serde_json::to_vec(&large).unwrap();
    while body.len() < 25 * 1024 * 1024 {
        body.insert(body.len() - 1, b' ');
    }
    assert_eq!(body.len(), 25 * 1024 * 1024);
    let accepted = app.deliver(&id, "Push Hook", &body, Some(&token), "k-large").await;
    assert_eq!(accepted.status(), StatusCode::OK);
    body.insert(body.len() - 1, b' ');
    let refused = app.deliver(&id, "Push Hook", &body, Some(&token), "k-larger").await;
    assert_eq!(problem(refused).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_need_a_matching_fresh_signature() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    let issued = app.ok(&id, json!({"type": "issue_webhook_credentials", "signing": true})).await;
    let token = issued["secret_token"].as_str().unwrap().to_owned();
    let key = golive::gitlab::webhook::signing_key_bytes(issued["signing_key"].as_str().unwrap()).unwrap();
    let body = payload("push");
    let send = |signature: Option<String>, timestamp: i64| {
        let mut request = app
            .http
            .post(app.url(&format!("/hooks/gitlab/{id}")))
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Push Hook")
            .header("x-gitlab-token", &token)
            .header("idempotency-key", "msg_2")
            .header("webhook-id", "msg_2")
            .header("webhook-timestamp", timestamp.to_string())
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("webhook-signature", signature);
        }
        request.send()
    };
    let now = chrono::Utc::now().timestamp();
    assert_eq!(send(None, now).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let wrong = golive::gitlab::webhook::sign(b"another key", "msg_2", now, &body);
    assert_eq!(send(Some(wrong), now).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let old = golive::gitlab::webhook::sign(&key, "msg_2", now - 600, &body);
    assert_eq!(send(Some(old), now - 600).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let good = golive::gitlab::webhook::sign(&key, "msg_2", now, &body);
    assert_eq!(send(Some(format!("v1,bm9wZQ== {good}")), now).await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

/// Reads SSE events (id, type) until `count` arrived.
async fn read_sse(app: &TestApp, last_event_id: Option<u64>, count: usize) -> Vec<(u64, String)> {
    let mut request = app.http.get(app.url("/api/v1/events/stream")).bearer_auth(&app.viewer);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event in time")
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id:")).map(|v| v.trim().parse::<u64>().unwrap());
            let kind = block.lines().find_map(|l| l.strip_prefix("event:")).map(|v| v.trim().to_owned());
            if let (Some(id), Some(kind)) = (id, kind) {
                events.push((id, kind));
            }
        }
    }
    events.truncate(count);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_across_a_dropped_connection_without_gap_or_duplicate() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    for i in 0..5 {
        app.ok(&id, json!({"type": "add_note", "text": format!("n{i}")})).await;
    }
    let first = read_sse(&app, None, 4).await;
    assert_eq!(first.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    // The connection dropped; more happens meanwhile.
    for i in 5..10 {
        app.ok(&id, json!({"type": "add_note", "text": format!("n{i}")})).await;
    }
    let writer = {
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/integrations/{id}/commands"));
        let token = app.rep.clone();
        tokio::spawn(async move {
            for i in 10..20 {
                http.post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"type": "add_note", "text": format!("n{i}")}))
                    .send()
                    .await
                    .unwrap();
            }
        })
    };
    let resumed = read_sse(&app, Some(4), 16).await;
    assert_eq!(resumed.iter().map(|e| e.0).collect::<Vec<_>>(), (5..=20).collect::<Vec<_>>());
    assert!(resumed.iter().all(|e| e.1 == "note_added"));
    writer.await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_rise_and_openapi_lists_every_route() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    app.ok(&id, json!({"type": "add_note", "text": "n"})).await;
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(
            "golive_http_requests_total{method=\"POST\",route=\"/api/v1/integrations/{id}/commands\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("golive_events_appended_total 2"));
    assert!(metrics.contains("golive_http_request_duration_seconds_bucket"));
    let (_, openapi) = app.get(&app.viewer, "/api/v1/openapi.json").await;
    for path in [
        "/api/v1/integrations",
        "/api/v1/integrations/{id}/commands",
        "/api/v1/events/stream",
        "/api/v1/audit/verify",
        "/api/v1/export",
        "/api/v1/tokens",
        "/hooks/gitlab/{id}",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/schemas/events.json",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path}");
    }
    // The events' schema names every type the log holds: each recorded event's `type` is one
    // of its variants, and each envelope has exactly the schema's fields.
    let (_, schema) = app.get(&app.viewer, "/api/v1/schemas/events.json").await;
    let types: Vec<&str> = schema["$defs"]["Event"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| variant["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    let mut fields: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
    for envelope in history["events"].as_array().unwrap() {
        assert!(types.contains(&envelope["type"].as_str().unwrap()), "{envelope}");
        let mut keys: Vec<&str> = envelope.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, fields);
    }
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_under_load_loses_nothing_acknowledged() {
    let mut app = spawn_app().await;
    let id = app.open().await;
    let bounded = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let http = bounded.clone();
            let url = app.url(&format!("/api/v1/integrations/{id}/commands"));
            let token = app.rep.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0..200 {
                    let text = format!("w{w} n{i}");
                    match http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"type": "add_note", "text": text}))
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == StatusCode::OK => acknowledged.push(text),
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(60), app.stop()).await.expect("graceful shutdown finishes");
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    // Reopen the directory at the store level: everything acknowledged is there, chained.
    let TestApp { dir, engine, http, .. } = app;
    drop((engine, http));
    let store = golive::store::SledStore::open(dir.path(), crate::store_conformance::reopen_options()).unwrap();
    let stream = golive::domain::IntegrationId::parse(&id).unwrap().as_uuid();
    let history = golive::store::EventStore::read_stream(store.as_ref(), stream, 1, 100_000).await.unwrap();
    let stored: std::collections::HashSet<String> =
        history.iter().filter_map(|e| e.data["text"].as_str().map(str::to_owned)).collect();
    for text in &acknowledged {
        assert!(stored.contains(text), "acknowledged {text} is missing");
    }
    assert!(golive::store::verify_chain(store.as_ref(), None).await.unwrap().valid);
    golive::store::EventStore::close(store.as_ref()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_api_is_saturated_it_sheds_with_retry_after_and_still_takes_deliveries() {
    // No API permits at all: every API request is shed; the webhook pool is separate.
    let mut app = spawn_app_with(HttpConfig { api_concurrency: 0, ..Default::default() }).await;
    let response = app.http.get(app.url("/api/v1/board")).bearer_auth(&app.viewer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    // Set an integration up behind the server's back, then deliver to it.
    let actor = golive::domain::Actor::parse("rep").unwrap();
    let opened = app
        .engine
        .open_integration(json!({"customer": "A", "gitlab_url": "https://g.example"}), &actor, None)
        .await
        .unwrap();
    let id = opened.state.id;
    let issued = app
        .engine
        .execute(golive::engine::ExecuteRequest::new(id, json!({"type": "issue_webhook_credentials"}), actor))
        .await
        .unwrap();
    let token = issued.shown.secret_token.unwrap();
    let delivered = app.deliver(&id.to_string(), "Note Hook", &payload("note"), Some(&token), "k-shed").await;
    assert_eq!(delivered.status(), StatusCode::OK, "deliveries are refused last");
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_list_pages_with_a_cursor_and_a_link_header() {
    let app = spawn_app().await;
    for n in 1..=5 {
        let body =
            json!({"customer": format!("Customer {n}"), "gitlab_url": "https://gitlab.example.com", "owner": "dana"});
        assert_eq!(app.post(&app.rep, "/api/v1/integrations", &body).await.0, StatusCode::CREATED);
    }
    let (_, everything) = app.get(&app.viewer, "/api/v1/integrations").await;
    assert_eq!(everything.as_array().unwrap().len(), 5, "without limit: the whole list, as before paging");
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/integrations?owner=dana&limit=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let response = app.http.get(app.url(&path)).bearer_auth(&app.viewer).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with(">; rel=\"next\""), "{link}");
            assert!(link.contains("owner=dana") && link.contains("limit=2"), "the filters carry over: {link}");
            link.trim_start_matches('<').split('>').next().unwrap().to_owned()
        });
        let page: Value = response.json().await.unwrap();
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(page.as_array().unwrap().iter().map(|s| s["customer"].as_str().unwrap().to_owned()));
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=5).map(|n| format!("Customer {n}")).collect::<Vec<_>>());
    for bad in ["limit=0", "limit=1001", "limit=two", "after=not-a-cursor", "limit=2&after=%00"] {
        let (status, problem) = app.get(&app.viewer, &format!("/api/v1/integrations?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(problem["type"], "invalid-query", "{bad}: {problem}");
    }
}

#[tokio::test]
async fn only_an_admin_moves_an_integration_s_public_url_and_only_to_https() {
    let app = spawn_app().await;
    let id = app.open().await;
    let path = format!("/api/v1/integrations/{id}/commands");
    // A rep with a valid token cannot point the customer's URLs elsewhere.
    let body = json!({"type": "change_public_url", "public_url": "https://golive-eu.example.com"});
    let (status, _) = app.post(&app.rep, &path, &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An admin cannot move them to a plain-http URL.
    let (status, problem) = app
        .post(&app.admin, &path, &json!({"type": "change_public_url", "public_url": "http://golive.example.com"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
    assert_eq!(state["version"], 1, "refusals write nothing");
    // An admin moves them, in the log under the admin's name.
    let (status, answer) = app.post(&app.admin, &path, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["state"]["public_url"], "https://golive-eu.example.com");
    // A shown-once token is not cached on the way.
    let response = app
        .http
        .post(app.url(&path))
        .bearer_auth(&app.rep)
        .json(&json!({"type": "issue_webhook_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn an_intake_link_request_with_an_unknown_field_is_refused_and_the_link_shown_once() {
    let app = spawn_app().await;
    let id = app.open().await;
    let path = format!("/api/v1/integrations/{id}/intake-links");
    let (status, problem) = app.post(&app.rep, &path, &json!({"expires_in_hours": 24, "expires_in_days": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "expires_in_days");
    let (status, _) = app.post(&app.viewer, &path, &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, issued) = app.post(&app.rep, &path, &json!({"expires_in_hours": 24})).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let url = issued["url"].as_str().unwrap();
    assert!(url.contains(&format!("/intake/{id}/")), "{url}");
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
    assert_eq!(state["intake_links"][0]["status"], "open");
    assert!(!state.to_string().contains(url.rsplit('/').next().unwrap()), "the link's secret is shown once");
}
