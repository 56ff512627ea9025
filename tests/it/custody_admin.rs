//! Custody, the admin's side, over real HTTP on loopback: playbooks are the admin's (a rep
//! opens from the registry and is refused a playbook of their own), the sign-in `next` only
//! ever leads to golive's own pages.

use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{spawn_app, TestApp};

/// A cookie-less HTTP client that does not follow redirects, so each answer can be checked.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Whether `location` is one of golive's own dashboard paths.
fn own_page(location: &str) -> bool {
    let path = location.split('?').next().unwrap();
    let known = matches!(path, "/" | "/audit" | "/insights")
        || path.strip_prefix("/integrations/").is_some_and(|id| uuid::Uuid::try_parse(id).is_ok());
    known && location.chars().all(|c| c.is_ascii_graphic() && c != '\\')
}

/// Signs in with a raw form body (so control characters reach the server as they are) and
/// returns the `Location` answered.
async fn sign_in_location(app: &TestApp, body: String) -> String {
    let response = client()
        .post(app.url("/signin"))
        .header("origin", &app.address)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_next_leads_only_to_golives_own_pages() {
    let app = spawn_app().await;
    let long = format!("/audit?actor={}", "a".repeat(5000));
    let nasty: Vec<String> = [
        "//evil.example",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "https://evil.example",
        "http:evil.example",
        "/%2F%2Fevil.example",
        "/%2f%2fevil.example",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
        "/audit\r\nLocation: https://evil.example",
        "/audit\nSet-Cookie: x=1",
        "/\u{3000}/evil.example",
        "/integrations/../../evil",
        "/integrations/not-a-uuid",
        "/integrations/00000000-0000-0000-0000-000000000000/../../evil",
        "/audit/../..//evil.example",
        "/.//evil.example",
        "/audit#//evil.example",
        "/audit?x=\\\\evil",
        "/audit?next=//evil.example",
        "/ /evil.example",
        "",
        "evil.example",
        long.as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for next in &nasty {
        // Once form-encoded as a browser would, once with the value's bytes raw in the body.
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &app.viewer)
            .append_pair("next", next)
            .finish();
        let location = sign_in_location(&app, encoded).await;
        assert!(own_page(&location), "{next:?} led to {location:?}");
        assert!(!location.contains("evil"), "{next:?} led to {location:?}");
        let raw = format!("token={}&next={}", app.viewer, next.replace('&', "%26"));
        let location = sign_in_location(&app, raw).await;
        assert!(own_page(&location), "raw {next:?} led to {location:?}");
        assert!(!location.contains("evil"), "raw {next:?} led to {location:?}");
        // The sign-in page carries the same choice in its hidden field.
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
        let html = client().get(app.url(&format!("/signin?{query}"))).send().await.unwrap().text().await.unwrap();
        assert!(!html.contains("evil"), "the sign-in page keeps {next:?}");
    }
    // golive's own pages, with their queries, are still followed.
    let id = uuid::Uuid::new_v4().to_string();
    let integration = format!("/integrations/{id}");
    for good in ["/", "/audit", "/audit?actor=rep-1&after=3", "/insights", integration.as_str()] {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &app.viewer)
            .append_pair("next", good)
            .finish();
        assert_eq!(sign_in_location(&app, encoded).await, good);
    }
}

/// A playbook the admin registers: the guide's, with another id, version and redirect URI.
fn admin_playbook(app: &TestApp, id: &str, version: u32, redirect_uri: &str) -> Value {
    let mut playbook = serde_json::to_value(&app.engine.config().default_playbook).unwrap();
    playbook["id"] = json!(id);
    playbook["version"] = json!(version);
    playbook["redirect_uri"] = json!(redirect_uri);
    playbook
}

async fn head(app: &TestApp) -> u64 {
    app.engine.store().head().await.unwrap().position
}

/// The playbook recorded whole in an integration's first event.
async fn recorded_playbook(app: &TestApp, id: &str) -> Value {
    let (status, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["events"][0]["type"], "integration_opened");
    history["events"][0]["data"]["playbook"].clone()
}

#[tokio::test]
async fn playbooks_are_the_admins_and_reps_open_only_from_them() {
    playbook_battery(&spawn_app().await).await;
}

#[tokio::test]
async fn playbooks_on_postgresql_and_two_replicas_racing_for_one_version() {
    let Some(base) = crate::pg::available("playbooks_on_postgresql").await else { return };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    let first = crate::http::spawn_app_on_postgres(&url).await;
    playbook_battery(&first).await;
    // A second replica (another engine on the same database and master key) and the first
    // register one new version with different bodies at once: one wins, the other is told the
    // version is taken, and both then read the winner.
    let config =
        golive::engine::EngineConfig::new(golive::domain::HttpUrl::parse(first.address.as_str()).unwrap(), None);
    let (second, _) =
        golive::engine::Engine::open_postgres(&url, first.dir.path(), config, Default::default()).await.unwrap();
    let admin = golive::domain::Actor::parse("second-replica-admin").unwrap();
    for round in 0..8u32 {
        let version = 10 + round;
        let a = admin_playbook(&first, "raced", version, "https://factory.example/oauth/a");
        let b = admin_playbook(&first, "raced", version, "https://factory.example/oauth/b");
        let (one, two) = tokio::join!(
            first.post(&first.admin, "/api/v1/playbooks", &a),
            second.register_playbook(b.clone(), &admin)
        );
        let winner = match (one.0, two) {
            (StatusCode::CREATED, Err(golive::engine::PlaybookError::VersionTaken { .. })) => &a,
            (StatusCode::CONFLICT, Ok(golive::engine::Registration::Created(_))) => &b,
            (status, other) => panic!("round {round}: {status} and {other:?}"),
        };
        let reference = golive::domain::PlaybookRef {
            id: golive::domain::PlaybookId::parse("raced").unwrap(),
            version: Some(version),
        };
        let path = format!("/api/v1/playbooks/raced?version={version}");
        assert_eq!(&first.get(&first.viewer, &path).await.1["playbook"], winner);
        let read = second.registered_playbook(&reference).await.unwrap();
        assert_eq!(&serde_json::to_value(&read.playbook).unwrap(), winner);
    }
    second.close().await.unwrap();
    crate::pg::drop_schema(&base, &schema).await;
}

async fn playbook_battery(app: &TestApp) {
    let open = json!({"customer": "Acme", "gitlab_url": "https://gitlab.acme.example"});

    // A rep's own playbook is refused, inline or as loose fields, and writes nothing.
    let mut evil = open.clone();
    evil["playbook"] = admin_playbook(app, "evil", 1, "https://evil.example/steal");
    let mut loose = open.clone();
    loose["redirect_uri"] = json!("https://evil.example/steal");
    for body in [&evil, &loose] {
        let response =
            app.http.post(app.url("/api/v1/integrations")).bearer_auth(&app.rep).json(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["type"].as_str().unwrap().rsplit('/').next().unwrap(), "playbook-fields-forbidden");
        assert!(problem["detail"].as_str().unwrap().contains("playbook_id"), "{problem}");
    }
    // Nor may a rep register one.
    let (status, _) =
        app.post(&app.rep, "/api/v1/playbooks", &admin_playbook(app, "mine", 1, "https://evil.example/x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(head(app).await, 0, "nothing was written");
    let (_, listed) = app.get(&app.viewer, "/api/v1/playbooks").await;
    assert_eq!(listed["playbooks"], json!([]));

    // The admin registers two versions; a registered version never changes.
    let v1 = admin_playbook(app, "acme-oauth", 1, "https://factory.example/oauth/v1");
    let v2 = admin_playbook(app, "acme-oauth", 2, "https://factory.example/oauth/v2");
    let (status, created) = app.post(&app.admin, "/api/v1/playbooks", &v1).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["playbook"], v1);
    assert!(created["registered_by"].as_str().unwrap().starts_with("admin-"));
    let (status, again) = app.post(&app.admin, "/api/v1/playbooks", &v1).await;
    assert_eq!(status, StatusCode::OK, "the same body again is a no-op");
    assert_eq!(again, created);
    let mut changed = v1.clone();
    changed["redirect_uri"] = json!("https://factory.example/oauth/changed");
    let (status, problem) = app.post(&app.admin, "/api/v1/playbooks", &changed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(app.post(&app.admin, "/api/v1/playbooks", &v2).await.0, StatusCode::CREATED);
    // Invalid playbooks are refused with the field named.
    for (field, value) in [("id", json!("Not A Slug")), ("version", json!(0)), ("monitoring_days", json!(100000))] {
        let mut bad = v1.clone();
        bad[field] = value;
        let (status, problem) = app.post(&app.admin, "/api/v1/playbooks", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
    }

    // Readers see the registry.
    let (status, listed) = app.get(&app.viewer, "/api/v1/playbooks").await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<&Value> = listed["playbooks"].as_array().unwrap().iter().map(|r| &r["playbook"]).collect();
    assert_eq!(versions, vec![&v1, &v2]);
    assert_eq!(listed["default"]["id"], "factory-gitlab-self-hosted");
    assert_eq!(app.get(&app.viewer, "/api/v1/playbooks/acme-oauth").await.1["playbook"], v2);
    assert_eq!(app.get(&app.viewer, "/api/v1/playbooks/acme-oauth?version=1").await.1["playbook"], v1);
    assert_eq!(app.get(&app.viewer, "/api/v1/playbooks/nothing-here").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&app.viewer, "/api/v1/playbooks/acme-oauth?version=3").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&app.viewer, "/api/v1/playbooks/acme-oauth?version=0").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get(&app.viewer, "/api/v1/playbooks/acme-oauth?version=4294967296").await.0,
        StatusCode::BAD_REQUEST
    );

    // A rep opens from the registry: the latest version, or the one named; recorded whole.
    let mut by_id = open.clone();
    by_id["playbook_id"] = json!("acme-oauth");
    let (status, opened) = app.post(&app.rep, "/api/v1/integrations", &by_id).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    assert_eq!(opened["redirect_uri"], "https://factory.example/oauth/v2");
    assert_eq!(recorded_playbook(app, opened["id"].as_str().unwrap()).await, v2);
    by_id["playbook_version"] = json!(1);
    let (status, opened) = app.post(&app.rep, "/api/v1/integrations", &by_id).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let first_id = opened["id"].as_str().unwrap().to_owned();
    assert_eq!(recorded_playbook(app, &first_id).await, v1);
    // Without a reference: the default.
    let (status, opened) = app.post(&app.rep, "/api/v1/integrations", &open).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(recorded_playbook(app, opened["id"].as_str().unwrap()).await["id"], "factory-gitlab-self-hosted");

    // Unknown references and malformed ones are a 400 naming the field, and write nothing.
    let before = head(app).await;
    for (extra, field) in [
        (json!({"playbook_id": "nothing-here"}), "playbook_id"),
        (json!({"playbook_id": "acme-oauth", "playbook_version": 9}), "playbook_version"),
        (json!({"playbook_id": "acme-oauth", "playbook_version": 0}), "playbook_version"),
        (json!({"playbook_id": "acme-oauth", "playbook_version": 4294967296u64}), "playbook_version"),
        (json!({"playbook_id": "acme-oauth", "playbook_version": -1}), "playbook_version"),
        (json!({"playbook_version": 1}), "playbook_version"),
        (json!({"playbook_id": "../../etc"}), "playbook_id"),
        (json!({"playbook_id": 7}), "playbook_id"),
    ] {
        let mut body = open.clone();
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (status, problem) = app.post(&app.rep, "/api/v1/integrations", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    assert_eq!(head(app).await, before, "refused opens write nothing");

    // An admin may still send a whole playbook inline: it is the admin's own.
    let mut inline = open.clone();
    inline["playbook"] = admin_playbook(app, "one-off", 1, "https://factory.example/oauth/one-off");
    let (status, opened) = app.post(&app.admin, "/api/v1/integrations", &inline).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    assert_eq!(opened["redirect_uri"], "https://factory.example/oauth/one-off");

    // The customer's intake page shows the admin's redirect URI and nothing of a rep's.
    let id = golive::domain::IntegrationId::parse(&first_id).unwrap();
    let rep = golive::domain::Actor::parse("rep").unwrap();
    let issued = app.engine.issue_intake_link(id, 2, &rep).await.unwrap();
    let html = client().get(app.url(&issued.path)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("https://factory.example/oauth/v1"), "the intake page shows the registered URI");
    assert!(!html.contains("evil.example"));

    // The embedding API sees the same registry.
    let registered = app.engine.playbooks().await.unwrap();
    assert_eq!(registered.len(), 2);
}

#[test]
fn the_cli_registers_lists_shows_and_opens_from_playbooks() {
    let cli = crate::cli::Cli::new();
    cli.ok(&["init"]);
    let defaults = cli.json(&["playbook", "list"]);
    let mut playbook = defaults["default"].clone();
    playbook["id"] = json!("acme-oauth");
    playbook["version"] = json!(3);
    playbook["redirect_uri"] = json!("https://factory.example/oauth/cli");
    let file = cli.file("acme.json", &playbook.to_string());
    let file = file.to_str().unwrap();
    assert!(cli.ok(&["playbook", "add", file]).contains("acme-oauth version 3 registered"));
    cli.ok(&["playbook", "add", file]);
    let mut changed = playbook.clone();
    changed["monitoring_days"] = json!(30);
    let changed_file = cli.file("changed.json", &changed.to_string());
    let (code, stderr) = cli.fails(&["playbook", "add", changed_file.to_str().unwrap()]);
    assert_eq!(code, 5, "a registered version is immutable: {stderr}");
    assert_eq!(cli.json(&["playbook", "list"])["playbooks"][0]["playbook"], playbook);
    assert_eq!(cli.json(&["playbook", "show", "acme-oauth"])["playbook"], playbook);
    assert_eq!(cli.fails(&["playbook", "show", "acme-oauth", "--version", "4"]).0, 3);
    let opened = cli.json(&[
        "integration",
        "create",
        "--customer",
        "Acme",
        "--gitlab-url",
        "https://gitlab.acme.example",
        "--playbook",
        "acme-oauth",
    ]);
    assert_eq!(opened["redirect_uri"], "https://factory.example/oauth/cli");
    let (code, _) = cli.fails(&[
        "integration",
        "create",
        "--customer",
        "Acme",
        "--gitlab-url",
        "https://gitlab.acme-two.example",
        "--playbook",
        "no-such-playbook",
    ]);
    assert_eq!(code, 4, "an unknown playbook is refused");
}

/// What an answer to a hostile number must be: a 400 problem, or a 200 with a known shape.
#[derive(Debug, Clone, Copy)]
enum Expect {
    BadRequest,
    /// 200 with no events (`events` empty or the array itself empty).
    EmptyPage,
    /// 200 with a full page (every event of the integration).
    FullPage,
    /// 200, the current state.
    Current,
    PreconditionFailed,
}

#[tokio::test]
async fn client_numbers_never_wrap_they_are_refused_or_answered_correctly() {
    let app = spawn_app().await;
    let id = app.open().await;
    for text in ["one", "two"] {
        let (status, _) = app
            .post(&app.rep, &format!("/api/v1/integrations/{id}/commands"), &json!({"type": "add_note", "text": text}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
    let version = state["version"].as_u64().unwrap();
    let log_head = head(&app).await;

    let u64_max = u64::MAX.to_string();
    let u64_max_less_one = (u64::MAX - 1).to_string();
    let i64_max = i64::MAX.to_string();
    let i64_max_plus_one = (i64::MAX as u64 + 1).to_string();
    let u64_max_plus_one = "18446744073709551616".to_owned();
    let huge = "9".repeat(400);
    let history = |q: &str| format!("/api/v1/integrations/{id}/history?{q}");
    let state_at = |q: &str| format!("/api/v1/integrations/{id}/state?{q}");
    use Expect::*;
    let mut table: Vec<(String, Expect)> = Vec::new();
    for (value, expect) in [
        (&u64_max, EmptyPage),
        (&u64_max_less_one, EmptyPage),
        (&i64_max, EmptyPage),
        (&i64_max_plus_one, EmptyPage),
        (&u64_max_plus_one, BadRequest),
        (&huge, BadRequest),
        (&"-1".to_owned(), BadRequest),
        (&"1e3".to_owned(), BadRequest),
        (&"0".to_owned(), FullPage),
    ] {
        table.push((history(&format!("after={value}")), expect));
        table.push((
            format!("/api/v1/events?after={value}"),
            if matches!(expect, FullPage) { FullPage } else { expect },
        ));
    }
    for (value, expect) in [
        (&u64_max, FullPage),
        (&i64_max_plus_one, FullPage),
        (&u64_max_plus_one, BadRequest),
        (&huge, BadRequest),
        (&"-1".to_owned(), BadRequest),
    ] {
        table.push((history(&format!("limit={value}")), expect));
        table.push((format!("/api/v1/events?limit={value}"), expect));
    }
    for (value, expect) in [
        (&u64_max, Current),
        (&i64_max_plus_one, Current),
        (&u64_max_plus_one, BadRequest),
        (&"-1".to_owned(), BadRequest),
    ] {
        table.push((state_at(&format!("version={value}")), expect));
    }
    for (value, expect) in [
        (u64_max.as_str(), BadRequest),
        ("4294967296", BadRequest),
        ("-1", BadRequest),
        (huge.as_str(), BadRequest),
        ("4294967295", EmptyPage),
    ] {
        table.push((format!("/api/v1/integrations?stalled_days={value}"), expect));
    }
    for value in [&u64_max, &u64_max_less_one, &i64_max_plus_one, &u64_max_plus_one, &huge] {
        table.push((format!("/api/v1/events/stream?after={value}"), BadRequest));
        table.push((format!("/api/v1/playbooks/some-id?version={value}"), BadRequest));
    }

    for (path, expect) in &table {
        let response = app.http.get(app.url(path)).bearer_auth(&app.viewer).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let events = |body: &Value| -> usize {
            body.get("events").or(Some(body)).and_then(Value::as_array).map(Vec::len).unwrap_or(usize::MAX)
        };
        match expect {
            BadRequest => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
                assert!(body["detail"].is_string(), "{path}: {body}");
            }
            EmptyPage => {
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
                assert_eq!(events(&body), 0, "{path}: {body}");
            }
            FullPage => {
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
                let expected = if path.contains("/history") { version } else { log_head };
                assert_eq!(events(&body) as u64, expected, "{path}: {body}");
            }
            Current => {
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
                assert_eq!(body["version"], version, "{path}: {body}");
            }
            PreconditionFailed => unreachable!(),
        }
    }

    // SSE resumption through Last-Event-ID, and If-Match on a command.
    for (value, expect) in [
        (u64_max.as_str(), BadRequest),
        (i64_max_plus_one.as_str(), BadRequest),
        ("-1", BadRequest),
        (huge.as_str(), BadRequest),
    ] {
        let response = app
            .http
            .get(app.url("/api/v1/events/stream"))
            .bearer_auth(&app.viewer)
            .header("last-event-id", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "Last-Event-ID {value}: {expect:?}");
    }
    for (value, expect) in [
        (u64_max.as_str(), PreconditionFailed),
        (i64_max_plus_one.as_str(), PreconditionFailed),
        (u64_max_plus_one.as_str(), BadRequest),
        ("-1", BadRequest),
    ] {
        let response = app
            .http
            .post(app.url(&format!("/api/v1/integrations/{id}/commands")))
            .bearer_auth(&app.rep)
            .header("if-match", format!("\"{value}\""))
            .json(&json!({"type": "add_note", "text": "pinned"}))
            .send()
            .await
            .unwrap();
        let wanted =
            if matches!(expect, BadRequest) { StatusCode::BAD_REQUEST } else { StatusCode::PRECONDITION_FAILED };
        assert_eq!(response.status(), wanted, "If-Match {value}");
    }
    // Playbook numbers from an admin: bounded, never wrapped.
    for (field, value) in [
        ("monitoring_days", json!(u64::MAX)),
        ("monitoring_days", json!(-1)),
        ("probe_interval_minutes", json!(u64::MAX)),
        ("probe_interval_minutes", json!(u32::MAX)),
        ("version", json!(u64::MAX)),
        ("version", json!(i64::MAX as u64 + 1)),
    ] {
        let mut playbook = admin_playbook(&app, "numbers", 1, "https://factory.example/oauth");
        playbook[field] = value.clone();
        let (status, problem) = app.post(&app.admin, "/api/v1/playbooks", &playbook).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {problem}");
        let body = json!({"customer": "N", "gitlab_url": "https://gitlab.n.example", "playbook": playbook});
        let (status, problem) = app.post(&app.admin, "/api/v1/integrations", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "inline {field}={value}: {problem}");
    }
    assert_eq!(head(&app).await, log_head, "nothing hostile was written");
    // An intake link's lifetime from an embedder: refused, not a panic.
    let rep = golive::domain::Actor::parse("rep").unwrap();
    let refused =
        app.engine.issue_intake_link(golive::domain::IntegrationId::parse(&id).unwrap(), u32::MAX, &rep).await;
    assert!(refused.is_err());
}

/// Every directory under `dir` (itself included) and every file: `(path, mode)` where the mode
/// is not 0700 for a directory or 0600 for a file.
fn loose_modes(dir: &std::path::Path) -> (Vec<(std::path::PathBuf, u32)>, usize) {
    use std::os::unix::fs::PermissionsExt;
    let mut loose = Vec::new();
    let mut files = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            if mode != 0o700 {
                loose.push((path.clone(), mode));
            }
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            if mode != 0o600 {
                loose.push((path, mode));
            }
        }
    }
    (loose, files)
}

#[test]
fn the_binary_keeps_every_file_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    for umask in [0o022, 0o000] {
        let cli = crate::cli::Cli::new();
        let data = cli.dir.path().join("data");
        // An older build left a lax directory and file behind.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(data.join("left-over"), "x").unwrap();
        std::fs::set_permissions(data.join("left-over"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let run = |args: &[&str]| {
            let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("golive"));
            command
                .arg("--data-dir")
                .arg(&data)
                .args(["--as", "dana.reyes"])
                .args(args)
                .env("GOLIVE_ALLOW_LOCAL_URLS", "true");
            command.env_remove("GOLIVE_SERVER").env_remove("GOLIVE_MASTER_KEY");
            // SAFETY: umask is async-signal-safe and touches nothing but the child's mask.
            unsafe {
                command.pre_exec(move || {
                    libc::umask(umask);
                    Ok(())
                });
            }
            let out = command.output().unwrap();
            assert!(out.status.success(), "golive {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        run(&["init"]);
        let id = run(&["integration", "create", "--customer", "Acme", "--gitlab-url", "https://gitlab.acme.example"])
            .trim()
            .to_owned();
        let secret = cli.file("app.secret", "gloas-permissions-test-secret\n");
        run(&["app", "secret", &id, "--secret-file", secret.to_str().unwrap()]);
        let token = cli.file("token.secret", "glpat-permissions-test-token\n");
        run(&["access-token", "provide", &id, "--admin", "true", "--secret-file", token.to_str().unwrap()]);
        run(&["webhook", "issue", &id]);
        for n in 0..10 {
            run(&["note", &id, "--text", &format!("note {n} {}", "x".repeat(3000))]);
        }
        // Reopen, so sled writes its snapshot, then look.
        run(&["verify"]);
        let (loose, files) = loose_modes(&data);
        assert!(files >= 5, "the data directory holds the log, keys and the master key ({files} files)");
        assert!(loose.is_empty(), "umask {umask:o}: not owner-only: {loose:?}");
    }
}

#[tokio::test]
async fn the_engine_makes_its_directory_owner_only_on_open_including_sleds_later_files() {
    use golive::engine::{Engine, EngineConfig, OpenOptions};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = || EngineConfig::new(golive::domain::HttpUrl::parse("https://golive.example").unwrap(), None);
    let rep = golive::domain::Actor::parse("rep").unwrap();
    {
        let (engine, _) = Engine::open_dir(&data, config(), OpenOptions::default()).await.unwrap();
        let open = json!({"customer": "Perms", "gitlab_url": "https://gitlab.perms.example"});
        let id = engine.open_integration(open, &rep, None).await.unwrap().state.id;
        let secret = json!({"type": "provide_application_secret", "secret": "gloas-engine-permissions"});
        engine.execute(golive::engine::ExecuteRequest::new(id, secret, rep.clone())).await.unwrap();
        // A value past sled's blob threshold, so sled writes a blob file.
        engine.store().put_aux("large", vec![7u8; 600_000]).await.unwrap();
        engine.close().await.unwrap();
    }
    // In a process with a laxer umask (this one), files sled made after opening (the blobs)
    // follow that umask until the next open; the directories around them are 0700 already, so
    // no other user can reach them meanwhile.
    let (loose, _) = loose_modes(&data);
    let lax_dirs: Vec<_> = loose.iter().filter(|(path, _)| path.is_dir()).collect();
    assert!(lax_dirs.is_empty(), "after the first open: {lax_dirs:?}");
    for (path, _) in &loose {
        assert!(path.starts_with(data.join("events.sled")), "only sled's later files may wait: {path:?}");
    }
    // Whatever a laxer umask or an older build did in between is undone by the next open.
    for path in [data.join("events.sled"), data.join("keys")] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut all = vec![data.clone()];
    while let Some(path) = all.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                all.push(entry.path());
            } else {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
    }
    // sled releases its lock from background threads after the last handle drops: a reopen
    // within one process may wait a moment for it.
    let reopen = OpenOptions {
        store: golive::store::SledStoreOptions {
            wait_for_lock: std::time::Duration::from_secs(10),
            ..Default::default()
        },
        ..Default::default()
    };
    let (engine, _) = Engine::open_dir(&data, config(), reopen).await.unwrap();
    engine.close().await.unwrap();
    let (loose, files) = loose_modes(&data);
    assert!(loose.is_empty(), "after reopening: {loose:?}");
    let blobs = data.join("events.sled").join("blobs");
    assert!(blobs.is_dir() && std::fs::read_dir(&blobs).unwrap().count() > 0, "sled wrote a blob");
    assert!(files >= 4);
}

/// Found by schemathesis: a secret sealed before a shred, on an integration that got a new key
/// afterwards (a secret provided since), answered 500 on reveal and probe. It is shredded: 410.
#[tokio::test]
async fn a_secret_sealed_before_a_shred_stays_shredded_when_a_newer_key_exists() {
    let app = crate::http::spawn_app().await;
    let id = app.open().await;
    app.ok(&id, json!({"type": "provide_access_token", "token": "glpat-before-the-shred", "admin": true})).await;
    let (status, _) = app.post(&app.admin, &format!("/api/v1/integrations/{id}/shred"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    // A new secret after the shred makes a new data key.
    app.ok(&id, json!({"type": "register_application", "name": "Factory", "redirect_uri": format!("{}/oauth/gitlab/callback", app.address), "application_id": "app-1", "scopes": ["api"]})).await;
    let (status, _) =
        app.command(&id, json!({"type": "provide_application_secret", "secret": "gloas-after-the-shred"})).await;
    assert_eq!(status, StatusCode::OK, "a new secret after the shred is taken (a new key)");
    let (status, problem) =
        app.post(&app.admin, &format!("/api/v1/integrations/{id}/reveal"), &json!({"secret": "access_token"})).await;
    assert_eq!(status, StatusCode::GONE, "{problem}");
    let (status, problem) = app.post(&app.rep, &format!("/api/v1/integrations/{id}/probe"), &json!({})).await;
    assert_eq!(status, StatusCode::GONE, "{problem}");
}
