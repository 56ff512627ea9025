//! The production probe against a fake GitLab served here (axum on port 0, plain HTTP with a
//! playbook that allows http) and a fake SSH port; the monitoring timer with injected time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::TimeZone;
use golive::domain::{Actor, IntegrationId, Stage};
use golive::engine::{Engine, EngineConfig, ExecuteRequest, ManualClock, OpenOptions};
use golive::gitlab::egress::EgressPolicy;
use golive::gitlab::probe::ProbeConfig;
use serde_json::{json, Value};

/// The fake instance decides by the token it is shown.
async fn fake_gitlab(headers: HeaderMap, request: Request) -> Response {
    let token = headers.get("private-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let path = request.uri().path().to_owned();
    let unauthorized = |description: &str| {
        (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token", "error_description": description})))
            .into_response()
    };
    match token.as_str() {
        "glpat-expired" => return unauthorized("Token is expired. You can either do re-authorization or token refresh."),
        "glpat-revoked" => return unauthorized("Token was revoked. You have to re-authorize from the user."),
        "glpat-unknown" => return (StatusCode::UNAUTHORIZED, Json(json!({"message": "401 Unauthorized"}))).into_response(),
        "glpat-forbidden" => return (StatusCode::FORBIDDEN, Json(json!({"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"}))).into_response(),
        "glpat-throttled" => return (StatusCode::TOO_MANY_REQUESTS, "Retry later").into_response(),
        "glpat-slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        "glpat-huge" => return "x".repeat(3 * 1024 * 1024).into_response(),
        "glpat-redirect" => return Redirect::temporary("http://elsewhere.invalid/api/v4/version").into_response(),
        _ => {}
    }
    if token == "glpat-hostile" {
        // Every answer carries text a hostile server chose; none of it may reach the log.
        return match path.as_str() {
            "/api/v4/version" => Json(json!({"version": "17.5.1-ee; see evil.example/renew"})).into_response(),
            "/api/v4/personal_access_tokens/self" => Json(json!({"active": true, "revoked": false, "scopes": ["api", "sudo", "read_user", "evil_scope"], "expires_at": "evil.example"})).into_response(),
            _ => (StatusCode::FORBIDDEN, Json(json!({"error": "evil_code", "error_description": "evil.example", "message": "403 Forbidden - evil.example wants your token"}))).into_response(),
        };
    }
    match path.as_str() {
        "/api/v4/version" => Json(json!({"version": "17.5.1-ee", "revision": "5a2f9b1c"})).into_response(),
        "/api/v4/personal_access_tokens/self" => {
            let scopes =
                if token == "glpat-noscopes" { json!(["read_user"]) } else { json!(["api", "read_user", "sudo"]) };
            Json(json!({"id": 42, "name": "factory", "revoked": false, "created_at": "2026-10-01T09:00:00.000Z", "scopes": scopes, "user_id": 1, "last_used_at": null, "active": true, "expires_at": "2027-10-01"})).into_response()
        }
        "/api/v4/user" => {
            let mut user = json!({"id": 1, "username": "root", "name": "Administrator", "state": "active", "email": "admin@example.com"});
            if token != "glpat-nonadmin" {
                user["is_admin"] = json!(true);
            }
            Json(user).into_response()
        }
        // Admin-only (`authenticated_as_admin!`): with Admin Mode on, an admin's token without
        // the admin_mode scope is refused as a non-admin's is.
        "/api/v4/applications" if token == "glpat-adminmode" || token == "glpat-nonadmin" => {
            (StatusCode::FORBIDDEN, Json(json!({"message": "403 Forbidden"}))).into_response()
        }
        "/api/v4/applications" => Json(json!([{"id": 1, "application_id": "a", "application_name": "Factory Integration",
            "callback_url": format!("{}/oauth/gitlab/callback", crate::support::public_url().as_str().trim_end_matches('/')), "confidential": true, "scopes": ["api"]}])).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_fake_gitlab() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(get(fake_gitlab));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A port that answers like an SSH server.
async fn start_fake_ssh() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { break };
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n").await;
            });
        }
    });
    port
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An engine whose probe may reach loopback, where the fake GitLab listens (`--probe-allow
/// 127.0.0.0/8` in the engine's configuration).
pub async fn engine_allowing_loopback(dir: &std::path::Path, clock: Arc<ManualClock>) -> Engine {
    let mut config = EngineConfig::new(crate::support::public_url(), None);
    config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    let options =
        OpenOptions { clock: Some(clock), store: crate::store_conformance::reopen_options(), ..Default::default() };
    Engine::open_dir(dir, config, options).await.expect("engine opens").0
}

struct Probed {
    found: Value,
    state: Arc<golive::domain::Integration>,
    diagnosis: golive::domain::Diagnosis,
}

fn quick() -> ProbeConfig {
    ProbeConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        max_body_bytes: 1024 * 1024,
    }
}

async fn probe_with(engine: &Engine, gitlab: &str, token: &str, ssh_port: u16) -> Probed {
    let actor = Actor::parse("rep").unwrap();
    let mut playbook = serde_json::to_value(engine.config().default_playbook.clone()).unwrap();
    playbook["allow_http"] = json!(true);
    let opened = engine
        .open_integration(json!({"customer": "Fake", "gitlab_url": gitlab, "playbook": playbook}), &actor, None)
        .await
        .unwrap();
    let id = opened.state.id;
    for body in [
        json!({"type": "set_instance_url", "gitlab_url": gitlab, "ssh_port": ssh_port}),
        json!({"type": "provide_access_token", "token": token, "admin": true}),
    ] {
        engine.execute(ExecuteRequest::new(id, body, actor.clone())).await.unwrap();
    }
    let (executed, found) = engine.probe(id, &quick(), &actor).await.unwrap();
    let last = executed.events.first().unwrap();
    // The probe is an action of whoever asked.
    assert_eq!((last.event_type.as_str(), last.actor.as_str()), ("probe_result_recorded", "rep"));
    assert!(!last.data.to_string().contains(token), "the token never reaches the record");
    let diagnosis = engine.diagnose(id).await.unwrap();
    Probed { found, state: executed.state, diagnosis }
}

fn advice_of(diagnosis: &golive::domain::Diagnosis) -> String {
    diagnosis
        .findings
        .iter()
        .map(|f| format!("{} {} {}", serde_json::to_value(f.category).unwrap(), f.message, f.advice))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_classifies_what_it_finds() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_allowing_loopback(dir.path(), Arc::new(ManualClock::new(chrono::Utc::now()))).await;
    let gitlab = start_fake_gitlab().await;
    let ssh = start_fake_ssh().await;

    let ok = probe_with(&engine, &gitlab, "glpat-good", ssh).await;
    assert_eq!(ok.found["api_reachable"], true);
    assert_eq!(ok.found["ssh_reachable"], true);
    assert_eq!(ok.found["gitlab_version"], "17.5.1-ee");
    assert_eq!(ok.found["admin"], true);
    assert_eq!(ok.found["token_expires_at"], "2027-10-01");
    assert!(ok.found.get("category").is_none(), "{}", ok.found);
    assert!(ok.state.facts.api_connectivity.as_ref().unwrap().ok);

    let cases: [(&str, &str, &str); 8] = [
        ("glpat-adminmode", "permission_denied", "Admin Mode is on and the token lacks the admin_mode scope"),
        ("glpat-expired", "permission_denied", "expired"),
        ("glpat-revoked", "permission_denied", "revoked"),
        ("glpat-unknown", "permission_denied", "invalid or unknown"),
        ("glpat-forbidden", "permission_denied", "insufficient_scope"),
        ("glpat-nonadmin", "permission_denied", "not a GitLab admin"),
        ("glpat-noscopes", "permission_denied", "lacks the scopes api"),
        ("glpat-throttled", "rate_limited", "rate limited"),
    ];
    for (token, category, words) in cases {
        let probed = probe_with(&engine, &gitlab, token, ssh).await;
        assert_eq!(probed.found["category"], category, "{token}: {}", probed.found);
        assert!(probed.found["detail"].as_str().unwrap().contains(words), "{token}: {}", probed.found["detail"]);
        let advice = advice_of(&probed.diagnosis);
        if category == "permission_denied" {
            // The guide's advice, or, where the probe found what is wrong with the token, what to
            // do about that token.
            let about_token = advice.contains("create an access token with the scopes api");
            assert!(advice.contains("review the application settings and scopes") || about_token, "{token}: {advice}");
            assert!(
                !probed.state.checklist().iter().find(|c| c.id == "info.access_token_admin").unwrap().met,
                "{token}"
            );
        } else {
            assert!(advice.contains("retry later"), "{token}: {advice}");
        }
    }

    for (token, words) in
        [("glpat-slow", "timed out"), ("glpat-huge", "larger than"), ("glpat-redirect", "answered with a redirect")]
    {
        let probed = probe_with(&engine, &gitlab, token, ssh).await;
        assert_eq!(probed.found["category"], "api_failure", "{token}: {}", probed.found);
        assert!(probed.found["detail"].as_str().unwrap().contains(words), "{token}: {}", probed.found["detail"]);
        assert!(advice_of(&probed.diagnosis).contains("firewall rules"), "{token}");
    }

    // Only golive's words: no text the server chose reaches the result or the log.
    let hostile = probe_with(&engine, &gitlab, "glpat-hostile", ssh).await;
    assert!(!hostile.found.to_string().contains("evil"), "{}", hostile.found);
    assert!(!serde_json::to_string(&hostile.state.facts.latest_probe).unwrap().contains("evil"));
    assert!(hostile.found.get("gitlab_version").is_none(), "{}", hostile.found);
    assert_eq!(hostile.found["token_scopes"], json!(["api", "read_user", "sudo"]));
    assert_eq!(hostile.found["missing_token_scopes"], json!([]));
    assert!(hostile.found["detail"].as_str().unwrap().contains("403 other"), "{}", hostile.found["detail"]);
    let lacking = probe_with(&engine, &gitlab, "glpat-noscopes", ssh).await;
    assert!(lacking.found["missing_token_scopes"].as_array().unwrap().contains(&json!("api")), "{}", lacking.found);
    assert_eq!(ok.found["missing_token_scopes"], json!([]));

    // Nothing listening: refused; and an SSH port without a banner.
    let refused =
        probe_with(&engine, &format!("http://127.0.0.1:{}", closed_port()), "glpat-good", closed_port()).await;
    assert_eq!(refused.found["category"], "api_failure");
    assert_eq!(refused.found["ssh_reachable"], false);
    assert!(refused.found["detail"].as_str().unwrap().contains("connection refused"), "{}", refused.found["detail"]);
    let http_port: u16 = gitlab.rsplit(':').next().unwrap().parse().unwrap();
    let no_banner = probe_with(&engine, &gitlab, "glpat-good", http_port).await;
    assert_eq!(no_banner.found["ssh_reachable"], false);
    assert_eq!(no_banner.found["api_reachable"], true);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitoring_timer_probes_when_due_and_completes_clean_windows() {
    let dir = tempfile::tempdir().unwrap();
    let start = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let engine = engine_allowing_loopback(dir.path(), clock.clone()).await;
    let gitlab = start_fake_gitlab().await;
    let ssh = start_fake_ssh().await;
    let actor = Actor::parse("rep").unwrap();
    let mut playbook = serde_json::to_value(engine.config().default_playbook.clone()).unwrap();
    playbook["allow_http"] = json!(true);
    playbook["scenarios"] = json!([]);
    let id: IntegrationId = engine
        .open_integration(json!({"customer": "Timer", "gitlab_url": gitlab, "playbook": playbook}), &actor, None)
        .await
        .unwrap()
        .state
        .id;
    let redirect = engine.config().default_playbook.redirect_uri.to_string();
    let webhook = format!("{}/hooks/gitlab/{id}", engine.config().public_url);
    let steps = vec![
        json!({"type": "confirm_prerequisites", "gitlab_admin_access": true, "network_access": true, "factory_admin_account": true}),
        json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect, "application_id": "a", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]}),
        json!({"type": "provide_application_secret", "secret": "s"}),
        json!({"type": "set_instance_url", "gitlab_url": gitlab, "ssh_port": ssh}),
        json!({"type": "provide_access_token", "token": "glpat-good", "admin": true}),
        json!({"type": "submit_information"}),
        json!({"type": "evaluate_network_policy", "barriers": []}),
        json!({"type": "establish_vpn", "tunnel_established": true, "ipsec_compatible": true}),
        json!({"type": "configure_firewall", "outbound_https": true, "outbound_ssh": true, "webhook_endpoint_reachable": true}),
        json!({"type": "issue_webhook_credentials"}),
        json!({"type": "create_webhook", "url": webhook, "triggers": ["push", "comments", "merge_requests", "issues", "ci_cd"]}),
    ];
    for body in steps {
        engine.execute(ExecuteRequest::new(id, body, actor.clone())).await.unwrap();
    }
    let state = engine.state(id).await.unwrap();
    let token = {
        let _ = &state;
        // Deliver one test event through the receiver with a freshly rotated token we know.
        let rotated = engine
            .execute(ExecuteRequest::new(
                id,
                json!({"type": "rotate_credential", "credential": "webhook_token"}),
                actor.clone(),
            ))
            .await
            .unwrap();
        rotated.shown.secret_token.unwrap()
    };
    let headers = golive::gitlab::webhook::DeliveryHeaders::parse_text(&format!(
        "X-Gitlab-Event: Note Hook\nX-Gitlab-Token: {token}\nIdempotency-Key: t1\n"
    ))
    .unwrap();
    let note = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/gitlab/note.json")).unwrap();
    engine.receive_webhook(id, &headers, &note).await.unwrap();
    engine.probe(id, &quick(), &actor).await.unwrap();
    let today = start.format("%Y-%m-%d").to_string();
    engine
        .execute(ExecuteRequest::new(id, json!({"type": "schedule_go_live", "date": today}), actor.clone()))
        .await
        .unwrap();
    let live = engine.execute(ExecuteRequest::new(id, json!({"type": "go_live"}), actor.clone())).await.unwrap();
    assert_eq!(live.state.stage, Stage::Live);
    // Not due yet: the probe ran a moment ago.
    let report = engine.monitoring_tick(&quick()).await.unwrap();
    assert!(report.probed.is_empty() && report.completed.is_empty(), "{report:?}");
    // An hour on: due.
    clock.advance(chrono::Duration::minutes(61));
    let report = engine.monitoring_tick(&quick()).await.unwrap();
    assert_eq!((report.probed.clone(), report.checked.clone()), (vec![id], vec![id]), "{report:?}");
    // The probe, then the read-only checks through GitLab's API (run beside the timer), all the
    // timer's.
    let mut history = engine.history(id, 0, 1000).await.unwrap();
    for _ in 0..200 {
        if history.last().is_some_and(|e| e.event_type == "gitlab_check_finished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        history = engine.history(id, 0, 1000).await.unwrap();
    }
    let timer: Vec<&str> =
        history.iter().filter(|e| e.actor.as_str() == "monitoring-timer").map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        timer,
        [
            "probe_result_recorded",
            "gitlab_check_started",
            "application_checked",
            "webhook_checked",
            "gitlab_check_finished"
        ]
    );
    // Past the window: completed by the timer.
    clock.advance(chrono::Duration::days(14));
    assert_eq!(engine.monitoring_tick(&quick()).await.unwrap().completed, vec![id]);
    let done = engine.state(id).await.unwrap();
    assert!(done.monitoring.as_ref().unwrap().completed_at.is_some());
    let last = engine.history(id, 0, 1000).await.unwrap().pop().unwrap();
    assert_eq!((last.event_type.as_str(), last.actor.as_str()), ("monitoring_completed", "monitoring-timer"));
    engine.close().await.unwrap();
}

/// A fake GitLab on loopback that answers every call with a redirect to another port of the same
/// host, over plain HTTP; the other port counts the connections it gets: none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_finding_and_the_token_goes_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_allowing_loopback(dir.path(), Arc::new(ManualClock::new(chrono::Utc::now()))).await;
    let elsewhere = crate::egress::counting_listener();
    let target = format!("http://127.0.0.1:{}/api/v4/version", elsewhere.port);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gitlab = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().fallback(get(move || {
        let target = target.clone();
        async move { Redirect::temporary(&target).into_response() }
    }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let ssh = start_fake_ssh().await;
    let probed = probe_with(&engine, &gitlab, "glpat-must-not-travel", ssh).await;
    assert_eq!(probed.found["category"], "api_failure", "{}", probed.found);
    let detail = probed.found["detail"].as_str().unwrap();
    assert!(detail.contains("the instance answered with a redirect (307)"), "{detail}");
    assert!(!detail.contains(&elsewhere.port.to_string()), "the redirect's target is not copied: {detail}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(elsewhere.accepted(), 0, "the redirect was not followed");
    engine.close().await.unwrap();
}

/// Serves the fake GitLab over TLS with `cert_pem`/`key_pem`; returns `https://localhost:port`.
async fn start_tls_gitlab(cert_pem: String, key_pem: String) -> String {
    serve_tls(Router::new().fallback(get(fake_gitlab)), cert_pem, key_pem).await
}

/// Serves `app` over TLS with `cert_pem`/`key_pem` on a loopback port; returns
/// `https://localhost:port`.
pub async fn serve_tls(app: Router, cert_pem: String, key_pem: String) -> String {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { break };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://localhost:{port}")
}

pub struct TestCa {
    pub ca_pem: String,
    ca: rcgen::Certificate,
    key: rcgen::KeyPair,
}

pub fn test_ca() -> TestCa {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "Customer Internal CA");
    let ca = params.self_signed(&key).unwrap();
    TestCa { ca_pem: ca.pem(), ca, key }
}

/// A server certificate for localhost signed by the CA: with a subjectAltName, or CN-only.
pub fn leaf(ca: &TestCa, with_san: bool) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = if with_san { vec!["localhost".to_owned()] } else { Vec::new() };
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca.ca, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

async fn probe_tls(engine: &Engine, gitlab: &str, ca_pem: Option<&str>, ssh: u16) -> Probed {
    let actor = Actor::parse("rep").unwrap();
    let mut open = json!({"customer": "Internal CA Corp", "gitlab_url": gitlab});
    let mut instance = json!({"type": "set_instance_url", "gitlab_url": gitlab, "ssh_port": ssh});
    if let Some(pem) = ca_pem {
        open["ca_certificate_pem"] = json!(pem);
        instance["ca_certificate_pem"] = json!(pem);
    }
    let id = engine.open_integration(open, &actor, None).await.unwrap().state.id;
    for body in [instance, json!({"type": "provide_access_token", "token": "glpat-good", "admin": true})] {
        engine.execute(ExecuteRequest::new(id, body, actor.clone())).await.unwrap();
    }
    let (executed, found) = engine.probe(id, &quick(), &actor).await.unwrap();
    Probed { found, state: executed.state, diagnosis: engine.diagnose(id).await.unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_cas_are_used_never_bypassed_and_cn_only_certificates_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_allowing_loopback(dir.path(), Arc::new(ManualClock::new(chrono::Utc::now()))).await;
    let ssh = start_fake_ssh().await;
    let ca = test_ca();
    let (cert, key) = leaf(&ca, true);
    let gitlab = start_tls_gitlab(cert, key).await;
    // Without the CA: not trusted, and the advice says how to fix it.
    let unknown = probe_tls(&engine, &gitlab, None, ssh).await;
    assert_eq!(unknown.found["category"], "api_failure", "{}", unknown.found);
    assert!(unknown.found["detail"].as_str().unwrap().contains("ca_certificate_pem"), "{}", unknown.found["detail"]);
    assert!(advice_of(&unknown.diagnosis).contains("TLS"));
    // With the customer's CA configured: verified and trusted.
    let trusted = probe_tls(&engine, &gitlab, Some(&ca.ca_pem), ssh).await;
    assert_eq!(trusted.found["api_reachable"], true, "{}", trusted.found);
    assert!(trusted.found.get("category").is_none(), "{}", trusted.found);
    assert!(trusted.state.facts.api_connectivity.as_ref().unwrap().ok);
    // A certificate naming the host only in its CN: rustls refuses it; the advice names why.
    let (cn_only, cn_key) = leaf(&ca, false);
    let cn_gitlab = start_tls_gitlab(cn_only, cn_key).await;
    let named = probe_tls(&engine, &cn_gitlab, Some(&ca.ca_pem), ssh).await;
    assert_eq!(named.found["category"], "api_failure", "{}", named.found);
    assert!(named.found["detail"].as_str().unwrap().contains("subjectAltName"), "{}", named.found["detail"]);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_route_answers_with_the_recorded_result() {
    let mut app = crate::http::spawn_app().await;
    let id = app.open().await;
    let url = app.url(&format!("/api/v1/integrations/{id}/probe"));
    let viewer = app.http.post(&url).bearer_auth(&app.viewer).send().await.unwrap();
    assert_eq!(viewer.status(), reqwest::StatusCode::FORBIDDEN);
    let without_token = app.http.post(&url).bearer_auth(&app.rep).send().await.unwrap();
    assert_eq!(without_token.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    app.ok(&id, json!({"type": "provide_access_token", "token": "glpat-good", "admin": true})).await;
    // The instance's name does not resolve here: a failed probe is a recorded finding.
    let failed = app.http.post(&url).bearer_auth(&app.rep).send().await.unwrap();
    assert_eq!(failed.status(), reqwest::StatusCode::OK);
    assert!(failed.headers().contains_key("etag"));
    let failed: Value = failed.json().await.unwrap();
    assert_eq!(failed["category"], "api_failure", "{failed}");
    assert_eq!(failed["api_reachable"], false);
    let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
    let last = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "probe_result_recorded");
    // The rep asked: the rep's token name is the actor, and an audit by that actor finds it.
    let rep_name = last["actor"].as_str().unwrap().to_owned();
    assert!(rep_name.starts_with("rep-"), "{last}");
    let (_, audit) = app.get(&app.viewer, &format!("/api/v1/events?actor={rep_name}&type=probe_result_recorded")).await;
    assert_eq!(audit["events"].as_array().map(Vec::len), Some(1), "{audit}");
    app.stop().await;
}
