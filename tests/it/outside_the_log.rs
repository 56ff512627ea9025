//! State outside the log: API tokens one key each (and the old single value split on first use),
//! refused-delivery signals carried over from the old single value, and the names golive acts
//! under itself, which no token and no CLI user may take.

use std::sync::Arc;

use chrono::Utc;
use golive::auth::{AuthError, Role, TokenRecord, Tokens};
use golive::engine::{Engine, EngineConfig, SystemClock};
use golive::http::{router, serve, HttpConfig};
use golive::secrets::{FileKeystore, MasterKey};
use golive::store::{EventStore, SledStore, SledStoreOptions};
use serde_json::{json, Value};
use sha2::Digest;

/// Every reserved name, with the case and spacing variants a person might try.
const RESERVED_TRIES: [&str; 17] = [
    "gitlab",
    "probe",
    "customer",
    "monitoring-timer",
    "golive",
    "system",
    "sso:alice",
    "sso:",
    "GitLab",
    "PROBE",
    "Customer",
    "Monitoring-Timer",
    "GoLive",
    " system",
    "probe ",
    "SSO:Bob",
    "Sso:carol",
];

fn temporary_store() -> Arc<SledStore> {
    SledStore::temporary(SledStoreOptions::default()).unwrap()
}

#[tokio::test]
async fn tokens_cannot_take_a_name_golive_acts_under_and_a_refusal_writes_nothing() {
    let store = temporary_store();
    let tokens = Tokens::new(store.as_ref());
    for name in RESERVED_TRIES {
        match tokens.create(name, Role::Admin, "test").await {
            Err(AuthError::InvalidName(reason)) => {
                assert!(reason.contains("reserved"), "{name:?}: {reason}");
            }
            other => panic!("{name:?} was not refused: {other:?}"),
        }
    }
    assert!(store.scan_aux("").await.unwrap().is_empty(), "a refused creation writes nothing");
    assert!(tokens.list().await.unwrap().is_empty());
    // Names that merely contain a reserved word are fine.
    for name in ["gitlab-admin", "probe.ops", "dana.reyes", "customer-success"] {
        tokens.create(name, Role::Rep, "test").await.unwrap();
    }
    assert_eq!(tokens.list().await.unwrap().len(), 4);
}

#[tokio::test]
async fn the_api_refuses_reserved_token_names_with_a_clear_error() {
    let store = temporary_store();
    let dir = tempfile::tempdir().unwrap();
    let keystore = Arc::new(FileKeystore::open(dir.path(), MasterKey::from_bytes([5; 32])).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let config = EngineConfig::new(golive::domain::HttpUrl::parse(address.as_str()).unwrap(), None);
    let engine = Engine::start(store.clone(), keystore, config, Arc::new(SystemClock)).await.unwrap();
    let admin = Tokens::new(store.as_ref()).create("names-admin", Role::Admin, "test").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router(engine, HttpConfig::default()), async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let before = store.scan_aux("").await.unwrap();
    for name in RESERVED_TRIES {
        let response = http
            .post(format!("{address}/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "role": "admin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST, "{name:?}");
        let problem: Value = response.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("reserved"), "{name:?}: {problem}");
    }
    assert_eq!(store.scan_aux("").await.unwrap(), before, "nothing was written");
    let listed: Vec<Value> =
        http.get(format!("{address}/api/v1/tokens")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let _ = stop.send(());
    let _ = server.await;
}

/// The binary on a fresh data directory, with no actor from the environment.
fn golive(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_golive"));
    command
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .env_remove("GOLIVE_SERVER")
        .env_remove("GOLIVE_MASTER_KEY")
        .env_remove("GOLIVE_ACTOR")
        .env_remove("GOLIVE_STORE")
        .arg("--data-dir")
        .arg(dir);
    command
}

#[test]
fn the_cli_refuses_reserved_names_for_tokens_and_actors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let refused = |command: &mut std::process::Command| {
        let output = command.output().unwrap();
        assert!(!output.status.success(), "{command:?} should fail");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("reserved"), "{command:?}: {stderr}");
        stderr
    };
    for name in RESERVED_TRIES {
        refused(golive(&data).args(["--as", "dana.reyes", "token", "create", "--role", "admin", "--name", name]));
        refused(golive(&data).args(["--as", name, "token", "list"]));
        refused(golive(&data).env("GOLIVE_ACTOR", name).args(["token", "list"]));
    }
    // An OS user with a reserved name must say who they are.
    let stderr = refused(golive(&data).env("USER", "system").args(["token", "list"]));
    assert!(stderr.contains("--as"), "{stderr}");
    let listed = golive(&data).args(["--as", "dana.reyes", "--json", "token", "list"]).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&listed.stdout).unwrap(), json!([]), "no token was written");
}

fn record(name: &str, token: &str, revoked: bool) -> TokenRecord {
    TokenRecord {
        name: name.to_owned(),
        role: Role::Admin,
        sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
        created_at: Utc::now(),
        created_by: "an older golive".to_owned(),
        revoked_at: revoked.then(Utc::now),
    }
}

#[tokio::test]
async fn the_old_single_token_value_is_split_into_one_key_per_token_once() {
    let store = temporary_store();
    let legacy = json!({
        "ops": record("ops", "glv_ops", false),
        "gone": record("gone", "glv_gone", true),
        "monitoring-timer": record("monitoring-timer", "glv_timer", false),
    });
    store.put_aux("tokens", serde_json::to_vec(&legacy).unwrap()).await.unwrap();
    let tokens = Tokens::new(store.as_ref());
    assert_eq!(tokens.authenticate("glv_ops").await.unwrap(), Some(("ops".to_owned(), Role::Admin)));
    assert_eq!(tokens.authenticate("glv_gone").await.unwrap(), None, "revoked stays revoked");
    assert_eq!(tokens.authenticate("glv_timer").await.unwrap(), None, "a now reserved name is revoked");
    assert_eq!(store.get_aux("tokens").await.unwrap(), None, "the old value is gone");
    let keys: Vec<String> = store.scan_aux("token/").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["token/gone", "token/monitoring-timer", "token/ops"]);
    // A revocation after the split holds even if an old value reappears (an old replica).
    tokens.revoke("ops").await.unwrap();
    store.put_aux("tokens", serde_json::to_vec(&legacy).unwrap()).await.unwrap();
    assert_eq!(tokens.authenticate("glv_ops").await.unwrap(), None);
    // A revoked name may be used again; an active one may not.
    tokens.create("gone", Role::Viewer, "test").await.unwrap();
    assert!(matches!(tokens.create("gone", Role::Viewer, "test").await, Err(AuthError::NameTaken(_))));
    assert!(matches!(tokens.revoke("nobody").await, Err(AuthError::NoSuchToken(_))));
}

#[tokio::test]
async fn refused_delivery_signals_of_the_old_single_value_carry_over_and_keep_counting() {
    let store = temporary_store();
    let dir = tempfile::tempdir().unwrap();
    let id = uuid::Uuid::from_u128(7);
    let first = "2026-11-01T09:00:00Z";
    let legacy =
        json!({ id.to_string(): {"refused_deliveries": 5, "first_refused_at": first, "last_refused_at": first} });
    store.put_aux("signals", serde_json::to_vec(&legacy).unwrap()).await.unwrap();
    let keystore = Arc::new(FileKeystore::open(dir.path(), MasterKey::from_bytes([6; 32])).unwrap());
    let config = EngineConfig::new(golive::domain::HttpUrl::parse("http://127.0.0.1:9").unwrap(), None);
    let engine = Engine::start(store.clone(), keystore, config, Arc::new(SystemClock)).await.unwrap();
    let id = golive::domain::IntegrationId::from_uuid(id);
    let signals = engine.delivery_signals(id).await.unwrap();
    assert_eq!(signals.refused_deliveries, 5);
    assert_eq!(signals.first_refused_at.unwrap().to_rfc3339(), "2026-11-01T09:00:00+00:00");
    assert_eq!(store.get_aux("signals").await.unwrap(), None, "the old value is gone");
    let refusals: Vec<_> = (0..20)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.record_refused_delivery(id).await.unwrap() })
        })
        .collect();
    for refusal in refusals {
        refusal.await.unwrap();
    }
    let signals = engine.delivery_signals(id).await.unwrap();
    assert_eq!(signals.refused_deliveries, 25, "every concurrent refusal is counted");
    assert_eq!(signals.first_refused_at.unwrap().to_rfc3339(), "2026-11-01T09:00:00+00:00", "first stays first");
    assert!(signals.last_refused_at.unwrap() > signals.first_refused_at.unwrap());
}
