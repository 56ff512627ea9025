//! The custody attack of issue 14, end to end on real sockets: a rep with a valid token tries to
//! walk away with the customer's admin token by pointing the integration at a server of their
//! own and asking for a probe. Every address is on loopback; the server runs with
//! `--probe-allow 127.0.0.0/8` (in its engine configuration) so that the fake GitLab can be probed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use golive::auth::{Role, Tokens};
use golive::engine::{Engine, EngineConfig, OpenOptions};
use golive::gitlab::egress::EgressPolicy;
use golive::http::{router, serve, HttpConfig};
use serde_json::{json, Value};

const CUSTOMER_TOKEN: &str = "glpat-customer-admin-token-7Hq2vX";
const CUSTOMER_SECRET: &str = "gloas-customer-application-secret-9Kd3";
const ROGUE_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBroguecafromtherep\n-----END CERTIFICATE-----\n";

/// A fake GitLab that remembers every `PRIVATE-TOKEN` it was shown.
async fn fake_gitlab(seen: Arc<Mutex<Vec<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(move |request: Request| {
        let seen = seen.clone();
        async move {
            if let Some(token) = request.headers().get("private-token").and_then(|v| v.to_str().ok()) {
                seen.lock().unwrap().push(token.to_owned());
            }
            match request.uri().path() {
                "/api/v4/version" => Json(json!({"version": "17.5.1-ee", "revision": "5a2f9b1c"})).into_response(),
                "/api/v4/personal_access_tokens/self" => Json(json!({
                    "id": 1, "name": "factory", "revoked": false, "active": true,
                    "scopes": ["api", "read_user", "sudo"], "user_id": 1, "expires_at": "2027-10-01"
                }))
                .into_response(),
                "/api/v4/user" => Json(json!({"id": 1, "username": "root", "is_admin": true})).into_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// The rep's own server: counts connections and keeps whatever bytes arrive.
fn rogue_server() -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<u8>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let accepts = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let (count, keep) = (accepts.clone(), received.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            count.fetch_add(1, Ordering::SeqCst);
            stream.set_read_timeout(Some(std::time::Duration::from_millis(200))).ok();
            let mut buffer = [0u8; 4096];
            if let Ok(n) = std::io::Read::read(&mut stream, &mut buffer) {
                keep.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        }
    });
    (address, accepts, received)
}

struct App {
    address: String,
    rep: String,
    rep_name: String,
    admin: String,
    http: reqwest::Client,
    engine: Engine,
    dir: tempfile::TempDir,
}

impl App {
    async fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.address)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn command(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.call(&self.rep, reqwest::Method::POST, &format!("/api/v1/integrations/{id}/commands"), Some(body)).await
    }

    async fn probe(&self, id: &str) -> (StatusCode, Value) {
        self.call(&self.rep, reqwest::Method::POST, &format!("/api/v1/integrations/{id}/probe"), None).await
    }
}

async fn spawn_custody_app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let mut config = EngineConfig::new(golive::domain::HttpUrl::parse(address.as_str()).unwrap(), None);
    config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let options = OpenOptions { store: crate::store_conformance::reopen_options(), ..Default::default() };
    let (engine, _) = Engine::open_dir(dir.path(), config, options).await.unwrap();
    let tokens = Tokens::new(engine.store().as_ref());
    let admin = tokens.create("security-admin", Role::Admin, "test").await.unwrap();
    let rep = tokens.create("mallory", Role::Rep, "test").await.unwrap();
    let app = router(engine.clone(), HttpConfig::default());
    tokio::spawn(async move { serve(listener, app, std::future::pending::<()>()).await.unwrap() });
    App { address, rep, rep_name: "mallory".into(), admin, http: reqwest::Client::new(), engine, dir }
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path).unwrap().windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_cannot_send_the_customer_s_token_to_a_server_of_their_own() {
    let app = spawn_custody_app().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let customer_gitlab = fake_gitlab(seen.clone()).await;
    let (rogue, rogue_accepts, rogue_received) = rogue_server();

    // The admin's playbook allows http (the fake GitLab speaks plain HTTP on loopback).
    let mut playbook = serde_json::to_value(&app.engine.config().default_playbook).unwrap();
    playbook["id"] = json!("loopback-trial");
    playbook["version"] = json!(1);
    playbook["allow_http"] = json!(true);
    let (status, _) = app.call(&app.admin, reqwest::Method::POST, "/api/v1/playbooks", Some(playbook)).await;
    assert!(status.is_success(), "{status}");
    let open = json!({"customer": "Hooli", "gitlab_url": customer_gitlab, "playbook_id": "loopback-trial"});
    let (status, opened) = app.call(&app.rep, reqwest::Method::POST, "/api/v1/integrations", Some(open)).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let id = opened["id"].as_str().unwrap().to_owned();

    // The customer's credentials, for the customer's instance: the probe uses them there.
    for body in [
        json!({"type": "provide_access_token", "token": CUSTOMER_TOKEN, "admin": true}),
        json!({"type": "provide_application_secret", "secret": CUSTOMER_SECRET}),
    ] {
        assert_eq!(app.command(&id, body).await.0, StatusCode::OK);
    }
    let (status, probed) = app.probe(&id).await;
    assert_eq!(status, StatusCode::OK, "{probed}");
    assert_eq!(probed["api_reachable"], json!(true), "{probed}");
    assert!(seen.lock().unwrap().iter().all(|t| t == CUSTOMER_TOKEN) && !seen.lock().unwrap().is_empty());

    // The attack: the rep points the integration at their own server, then at the customer's
    // origin through a CA of their own (a man in the middle), and asks for a probe each time.
    let attacks = [
        json!({"type": "set_instance_url", "gitlab_url": rogue}),
        json!({"type": "set_instance_url", "gitlab_url": customer_gitlab, "ca_certificate_pem": ROGUE_CA}),
    ];
    for attack in attacks {
        let (status, answer) = app.command(&id, attack.clone()).await;
        assert_eq!(status, StatusCode::OK, "the change itself is a valid fact: {answer}");
        let state = &answer["state"];
        let unmet: Vec<&str> = state["checklist"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["met"] == json!(false))
            .filter_map(|item| item["id"].as_str())
            .collect();
        assert!(unmet.contains(&"info.access_token_provided"), "{attack}: {unmet:?}");
        assert!(unmet.contains(&"info.application_secret_provided"), "{attack}: {unmet:?}");
        assert_eq!(state["secrets"]["access_token_bound_to"]["usable"], json!(false), "{state}");

        let before = app.engine.store().head().await.unwrap().position;
        let (status, refused) = app.probe(&id).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{attack}: {refused}");
        assert_eq!(refused["unmet"][0]["id"], json!("info.access_token_provided"), "{refused}");
        assert_eq!(app.engine.store().head().await.unwrap().position, before, "a refused probe writes nothing");
    }
    assert_eq!(rogue_accepts.load(Ordering::SeqCst), 0, "the rep's server was never contacted");
    assert!(rogue_received.lock().unwrap().is_empty());
    let probes_with_rogue_ca = seen.lock().unwrap().len();
    // version, personal_access_tokens/self, user, and the admin-only read that confirms admin.
    assert_eq!(probes_with_rogue_ca, 4, "only the first probe's four calls reached the customer's GitLab");

    // The log shows who did what: the rep's changes, the regression naming the voided
    // credentials, and the one probe — under the rep's name, not golive's.
    let (_, history) =
        app.call(&app.admin, reqwest::Method::GET, &format!("/api/v1/integrations/{id}/history?limit=100"), None).await;
    let events = history["events"].as_array().or(history.as_array()).cloned().unwrap_or_default();
    let probe_actors: Vec<&str> =
        events.iter().filter(|e| e["type"] == "probe_result_recorded").filter_map(|e| e["actor"].as_str()).collect();
    assert_eq!(probe_actors, [app.rep_name.as_str()]);
    let regression = events.iter().find(|e| e["type"] == "stage_regressed" || e["type"] == "integration_blocked");
    let url_changes = events.iter().filter(|e| e["type"] == "instance_url_set").count();
    assert_eq!(url_changes, 2);
    if let Some(regression) = regression {
        assert!(regression.to_string().contains("info.access_token_provided"), "{regression}");
    }
    let (_, audit) = app
        .call(
            &app.admin,
            reqwest::Method::GET,
            &format!("/api/v1/events?actor={}&type=probe_result_recorded", app.rep_name),
            None,
        )
        .await;
    assert!(audit.to_string().contains(&id), "audit --actor finds the rep's probe: {audit}");

    // Nothing leaked: not in any answer above, the export, or the data directory's files.
    let (_, export_text) = {
        let response =
            app.http.get(format!("{}/api/v1/export", app.address)).bearer_auth(&app.admin).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    };
    for secret in [CUSTOMER_TOKEN, CUSTOMER_SECRET] {
        assert!(!export_text.contains(secret), "the export holds a secret");
        assert!(!history.to_string().contains(secret), "the history holds a secret");
        assert!(files_contain(app.dir.path(), secret.as_bytes()).is_empty(), "a file holds {secret}");
    }

    // The customer provides the token again for the new instance: only then can it be used there.
    let (status, _) = app
        .command(&id, json!({"type": "provide_access_token", "token": "glpat-customer-second-token", "admin": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, probed) = app.probe(&id).await;
    assert_eq!(status, StatusCode::OK, "a token given for the instance of record is used: {probed}");
    assert_eq!(rogue_accepts.load(Ordering::SeqCst), 0);
}
