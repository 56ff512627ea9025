//! Notifications decided from the log and sent to real sinks on loopback: a Slack-compatible
//! incoming webhook (an HTTP endpoint that fails once and comes back) and e-mail through a real
//! SMTP server (Python's aiosmtpd, STARTTLS required, certificate from a test CA). A cause
//! notifies once per rule however many passes and replicas see it, a retry is the same
//! notification, the journal records every attempt outside the integration's stream (its
//! version does not move), and no message carries a secret.
//!
//! Without aiosmtpd (`pip install aiosmtpd==1.4.6`; `.ci/run` installs it) the e-mail test says
//! SKIPPED; with CI=true it fails instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode as AxumStatus;
use golive::engine::{Engine, NotificationSettings, NotificationSinks};
use golive::gitlab::egress::EgressPolicy;
use golive::outbound::mail::{SmtpRelay, SmtpSettings};
use golive::outbound::OutboundLimits;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{spawn_app_with_engine, TestApp};

/// A Slack-compatible incoming webhook on loopback that records the JSON it is sent.
#[derive(Clone)]
struct SlackHook {
    messages: Arc<Mutex<Vec<Value>>>,
    fail_next: Arc<Mutex<u32>>,
    url: String,
}

impl SlackHook {
    async fn start() -> SlackHook {
        let messages = Arc::new(Mutex::new(Vec::new()));
        let fail_next = Arc::new(Mutex::new(0u32));
        let (m, f) = (messages.clone(), fail_next.clone());
        let app = axum::Router::new().route(
            "/services/T000/B000/XXXX",
            axum::routing::post(move |body: Bytes| {
                let (m, f) = (m.clone(), f.clone());
                async move {
                    let mut failing = f.lock().unwrap();
                    if *failing > 0 {
                        *failing -= 1;
                        return AxumStatus::INTERNAL_SERVER_ERROR;
                    }
                    m.lock().unwrap().push(serde_json::from_slice::<Value>(&body).unwrap());
                    AxumStatus::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/services/T000/B000/XXXX", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        SlackHook { messages, fail_next, url }
    }

    fn texts(&self) -> Vec<String> {
        self.messages.lock().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_owned()).collect()
    }
}

fn fast() -> NotificationSettings {
    NotificationSettings {
        attempts_max: 3,
        retry_base_ms: 30,
        claim_ms: 5_000,
        limits: OutboundLimits { connect_timeout_ms: 1_000, request_timeout_ms: 1_000 },
    }
}

async fn app() -> TestApp {
    spawn_app_with_engine(|config| {
        config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    })
    .await
}

async fn add_rule(app: &TestApp, body: Value) -> Value {
    let (status, rule) = app.post(&app.admin, "/api/v1/notification-rules", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{body} -> {rule}");
    rule
}

/// Every integration's version, to show notifications never move one.
async fn versions(engine: &Engine) -> BTreeMap<String, u64> {
    let list = engine.list(&Default::default()).await.unwrap();
    list.into_iter().map(|s| (s.id.to_string(), s.version)).collect()
}

/// Passes until nothing is due (retries included), at most `within`.
async fn settle(engine: &Engine, sinks: &NotificationSinks, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let report = engine.notification_pass(sinks).await.unwrap();
        if report.decided == 0 && report.sent == 0 && report.failed == 0 && report.gave_up == 0 {
            // Nothing new and nothing due: done unless a retry is scheduled a little later.
            tokio::time::sleep(Duration::from_millis(80)).await;
            let again = engine.notification_pass(sinks).await.unwrap();
            if again == Default::default() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "notifications did not settle");
    }
}

#[tokio::test]
async fn a_cause_notifies_once_per_rule_a_retry_is_the_same_notification_and_versions_do_not_move() {
    let app = app().await;
    // The demo's journeys, as if loaded four days ago: Globex's go-live date (five days after
    // the load) is tomorrow.
    let loaded_at = app.engine.now() - chrono::Duration::days(4);
    for fixture in golive::fixtures::Fixture::embedded().unwrap() {
        golive::fixtures::load_into_engine(&app.engine, &fixture, loaded_at).await.unwrap();
    }
    let slack = SlackHook::start().await;
    let rule = add_rule(
        &app,
        json!({"name": "team west", "on": [{"kind": "blocked"}, {"kind": "go_live_tomorrow"}, {"kind": "stalled", "days": 3},
                                           {"kind": "probe_failing"}, {"kind": "webhook_silent", "hours": 24}],
               "sink": {"kind": "slack", "url": slack.url}}),
    )
    .await;
    assert_eq!(rule["destination"], "slack webhook at 127.0.0.1");
    assert!(!rule.to_string().contains("XXXX"), "the webhook URL is a secret: {rule}");
    let (_, listed) = app.get(&app.rep, "/api/v1/notification-rules").await;
    assert!(!listed.to_string().contains("XXXX"), "{listed}");

    let before = versions(&app.engine).await;
    // The first attempt fails: the retry is the same notification, not a new one.
    *slack.fail_next.lock().unwrap() = 1;
    let sinks = NotificationSinks::new(&app.engine, None, fast());
    let other_replica = NotificationSinks::new(&app.engine, None, fast());
    // Two replicas' passes at once, then more passes: each cause still notifies once.
    let (a, b) = tokio::join!(app.engine.notification_pass(&sinks), app.engine.notification_pass(&other_replica));
    assert!(a.is_ok() && b.is_ok());
    settle(&app.engine, &sinks, Duration::from_secs(10)).await;
    settle(&app.engine, &other_replica, Duration::from_secs(10)).await;

    let texts = slack.texts();
    println!("{texts:#?}");
    let count = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
    assert_eq!(count("Initech is blocked (permission_denied)"), 1, "{texts:?}");
    assert_eq!(count("Globex Corporation goes live tomorrow"), 1, "{texts:?}");
    assert_eq!(count("Initech has stalled"), 1, "{texts:?}");
    // Initech's recorded probe failed (missing scopes); Acme Robotics is live and its last
    // delivery is four days old.
    assert_eq!(count("Initech: the monitoring probe is failing (permission_denied)"), 1, "{texts:?}");
    assert_eq!(count("Acme Robotics: no webhook delivery for"), 1, "{texts:?}");
    let unique: std::collections::BTreeSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "no message twice: {texts:?}");
    // Each message links to the integration's page.
    let initech =
        app.engine.list(&Default::default()).await.unwrap().into_iter().find(|s| s.customer == "Initech").unwrap();
    let link = format!("{}/integrations/{}", app.address, initech.id);
    assert!(texts.iter().any(|t| t.contains(&link)), "{texts:?}");
    assert_eq!(versions(&app.engine).await, before, "notifications never move an integration's version");

    // The journal, beside the integration's history: one failed attempt, then the retry sent.
    let (status, journal) = app.get(&app.viewer, &format!("/api/v1/integrations/{}/notifications", initech.id)).await;
    assert_eq!(status, StatusCode::OK);
    let journal = journal.as_array().unwrap().clone();
    let outcomes: Vec<(String, u64)> =
        journal.iter().map(|e| (e["outcome"].as_str().unwrap().to_owned(), e["attempt"].as_u64().unwrap())).collect();
    assert!(outcomes.iter().filter(|(o, _)| o == "sent").count() >= 2, "{journal:?}");
    let failed: Vec<&Value> = journal.iter().filter(|e| e["outcome"] == "failed").collect();
    if let Some(failed) = failed.first() {
        let key = failed["key"].as_str().unwrap();
        let retry = journal.iter().find(|e| e["key"] == key && e["outcome"] == "sent").unwrap();
        assert_eq!(retry["attempt"], 2, "the retry is attempt 2 of the same notification: {journal:?}");
        assert_eq!(failed["failure"], "the endpoint answered HTTP 500");
    }

    // Unblocked and blocked again: a new cause, one new message.
    let id = initech.id.to_string();
    app.ok(&id, json!({"type": "unblock", "resolution": "token replaced"})).await;
    app.ok(&id, json!({"type": "block", "category": "other", "detail": "waiting on the customer's network team"}))
        .await;
    settle(&app.engine, &sinks, Duration::from_secs(10)).await;
    let texts = slack.texts();
    assert_eq!(texts.iter().filter(|t| t.contains("Initech is blocked (other)")).count(), 1, "{texts:?}");
    assert_eq!(texts.iter().filter(|t| t.contains("Initech is blocked (permission_denied)")).count(), 1);
}

#[tokio::test]
async fn the_customers_intake_reaches_the_owners_inbox_over_starttls_without_a_secret() {
    let Some(smtp) = SmtpServer::start("the_customers_intake_reaches_the_owners_inbox_over_starttls").await else {
        return;
    };
    let app = app().await;
    let rep = golive::domain::Actor::parse("dana").unwrap();
    let open = |body: Value| {
        let (engine, rep) = (app.engine.clone(), rep.clone());
        async move { engine.open_integration(body, &rep, None).await.unwrap().state.id }
    };
    let other = open(json!({"customer": "Hooli", "gitlab_url": "https://gitlab.hooli.example", "owner": "sam"})).await;
    let id =
        open(json!({"customer": "Acme <Robotics> & Co", "gitlab_url": "https://gitlab.acme.example", "owner": "dana"}))
            .await;
    // Rules for dana's team by e-mail; sam's integrations are not theirs.
    add_rule(
        &app,
        json!({"name": "dana's team", "owners": ["dana", "lee"], "on": [{"kind": "intake_submitted"}],
               "sink": {"kind": "email", "to": ["dana@factory.example"]}}),
    )
    .await;
    let mut settings =
        SmtpSettings::parse(&format!("smtp://localhost:{}", smtp.port), "golive@factory.example").unwrap();
    settings.ca_pem = Some(smtp.ca_pem.clone());
    let relay = SmtpRelay::new(&settings).unwrap();
    let sinks = NotificationSinks::new(&app.engine, Some(relay), fast());

    for integration in [id, other] {
        let issued = app.engine.issue_intake_link(integration, 24, &rep).await.unwrap();
        let secret = issued.path.rsplit('/').next().unwrap().to_owned();
        let form = golive::engine::IntakeForm {
            application_id: "4f1c2b".into(),
            application_secret: "gloas-APPLICATION-SECRET-77".into(),
            access_token: "glpat-ACCESS-TOKEN-SECRET-99".into(),
            admin: true,
            scopes: vec!["api".into(), "read_user".into()],
            ..Default::default()
        };
        app.engine.redeem_intake(integration, &secret, &form).await.unwrap();
    }
    settle(&app.engine, &sinks, Duration::from_secs(20)).await;
    let mails = smtp.wait_for(1, Duration::from_secs(10));
    settle(&app.engine, &sinks, Duration::from_secs(5)).await;
    assert_eq!(smtp.messages().len(), 1, "one cause, one message; sam's integration is not the team's");
    let mail = quoted_printable_decoded(&mails[0]);
    let mail = &mail;
    println!("{mail}");
    assert!(mail.contains("To: dana@factory.example"), "{mail}");
    assert!(mail.contains("submitted the intake form"), "{mail}");
    assert!(mail.contains(&format!("/integrations/{id}")), "{mail}");
    for secret in ["gloas-APPLICATION-SECRET-77", "glpat-ACCESS-TOKEN-SECRET-99"] {
        assert!(!mail.contains(secret), "a secret in a message: {mail}");
    }
    let journal = app.engine.notification_journal(id).await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!((journal[0].outcome.as_str(), journal[0].sink.as_str()), ("sent", "e-mail to dana@factory.example"));
    assert!(app.engine.notification_journal(other).await.unwrap().is_empty());
}

#[tokio::test]
async fn rules_are_admins_and_refused_bodies_add_nothing() {
    let app = app().await;
    let slack = "http://127.0.0.1:9/services/x";
    let (status, _) = app
        .post(
            &app.rep,
            "/api/v1/notification-rules",
            &json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "slack", "url": slack}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for body in [
        json!({"name": "x", "on": [], "sink": {"kind": "slack", "url": slack}}),
        json!({"name": "x", "on": [{"kind": "stalled"}], "sink": {"kind": "slack", "url": slack}}),
        json!({"name": "x", "on": [{"kind": "stalled", "days": 0}], "sink": {"kind": "slack", "url": slack}}),
        json!({"name": "x", "on": [{"kind": "everything"}], "sink": {"kind": "slack", "url": slack}}),
        json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "slack", "url": "file:///etc/passwd"}}),
        json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": ["not an address"]}}),
        json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": []}}),
        json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "pager"}}),
        json!({"name": "", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": ["a@b.example"]}}),
        json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": ["a@b.example"]}, "extra": 1}),
        json!({"name": "x", "on": [{"kind": "blocked", "x": 1}], "sink": {"kind": "email", "to": ["a@b.example"]}}),
        json!({"name": "team\u{202e}west", "on": [{"kind": "blocked"}], "sink": {"kind": "email", "to": ["a@b.example"]}}),
    ] {
        let (status, problem) = app.post(&app.admin, "/api/v1/notification-rules", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {problem}");
    }
    assert!(app.engine.notification_rules().await.unwrap().is_empty());
    let (status, _) =
        app.get(&app.viewer, &format!("/api/v1/integrations/{}/notifications", uuid::Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let rule =
        add_rule(&app, json!({"name": "x", "on": [{"kind": "blocked"}], "sink": {"kind": "slack", "url": slack}}))
            .await;
    let path = format!("/api/v1/notification-rules/{}", rule["id"].as_str().unwrap());
    let response = app.http.delete(app.url(&path)).bearer_auth(&app.rep).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.http.delete(app.url(&path)).bearer_auth(&app.admin).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(app.engine.notification_rules().await.unwrap().is_empty());
}

/// aiosmtpd with STARTTLS required, delivering into a maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    async fn start(test: &str) -> Option<SmtpServer> {
        let present = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            let message = format!(
                "SMTP test {test} SKIPPED: Python's aiosmtpd is missing (pip install aiosmtpd==1.4.6; .ci/run installs it)"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{message}; CI=true requires the SMTP tests to run");
            }
            eprintln!("\n{}\n!!! {message}\n{}\n", "!".repeat(100), "!".repeat(100));
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::probe::test_ca();
        let (cert, key) = crate::probe::leaf(&ca, true);
        std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), key).unwrap();
        let maildir = dir.path().join("mail");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .arg("--tlscert")
            .arg(dir.path().join("cert.pem"))
            .arg("--tlskey")
            .arg(dir.path().join("key.pem"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(SmtpServer { child, port, maildir, ca_pem: ca.ca_pem.clone(), _dir: dir })
    }

    fn messages(&self) -> Vec<String> {
        let new = self.maildir.join("new");
        let Ok(entries) = std::fs::read_dir(&new) else { return Vec::new() };
        entries.filter_map(|e| e.ok()).map(|e| read(&e.path())).collect()
    }

    fn wait_for(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(Instant::now() < deadline, "{count} message(s) did not arrive");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

/// The message with quoted-printable soft breaks and escapes undone (lettre wraps long lines).
fn quoted_printable_decoded(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_dashboard_shows_subscription_health_to_admins_and_the_journal_beside_the_timeline() {
    use crate::dashboard::{page, sign_in};
    let app = app().await;
    let actor = golive::domain::Actor::parse("admin").unwrap();
    let request =
        serde_json::from_value(json!({"name": "warehouse", "url": "https://events.example.com/golive"})).unwrap();
    app.engine.add_subscription(request, &actor).await.unwrap();
    let admin = sign_in(&app, &app.admin).await;
    let (status, _, html) = page(&app, &admin, "/subscriptions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("warehouse") && html.contains("https://events.example.com/golive"), "{html}");
    assert!(html.contains("data-status=\"idle\""), "{html}");
    assert!(!html.contains("whsec_"), "the secret is never shown");
    let (_, _, board) = page(&app, &admin, "/").await;
    assert!(board.contains("href=\"/subscriptions\""), "admins find the page from the menu");
    let rep = sign_in(&app, &app.rep).await;
    let (status, _, _) = page(&app, &rep, "/subscriptions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, board) = page(&app, &rep, "/").await;
    assert!(!board.contains("href=\"/subscriptions\""));

    let id = app.open().await;
    let (status, _, html) = page(&app, &rep, &format!("/integrations/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("notifications-heading") && html.contains("No notification about this integration yet."));
}
