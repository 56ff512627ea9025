//! The dashboard and the customer intake over real HTTP, without a browser: sessions and their
//! cookie, CSRF and origin checks, the security headers, one-time intake links (reuse, expiry,
//! races, bad input), the insights figures against a hand computation, and that no page or
//! answer ever carries a secret. The browser tests (browser.rs) drive the same pages in Chromium.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use golive::fixtures::{load_into_engine, Fixture};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{spawn_app, TestApp};

/// A cookie-less HTTP client that does not follow redirects, so each answer can be checked.
fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

pub async fn load_demo(app: &TestApp) -> DateTime<Utc> {
    let now = app.engine.now();
    for fixture in Fixture::embedded().unwrap() {
        load_into_engine(&app.engine, &fixture, now).await.unwrap();
    }
    now
}

/// Signs in with `token` and returns the session cookie's value.
pub async fn sign_in(app: &TestApp, token: &str) -> String {
    let response = client()
        .post(app.url("/signin"))
        .header("origin", &app.address)
        .form(&[("token", token), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    cookie.split(';').next().unwrap().trim_start_matches("golive_session=").to_owned()
}

pub async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response =
        client().get(app.url(path)).header("cookie", format!("golive_session={cookie}")).send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The hidden CSRF field of a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn pages_need_a_session_and_sign_in_sets_a_strict_cookie() {
    let app = spawn_app().await;
    load_demo(&app).await;
    for path in ["/", "/audit", "/insights", "/integrations/00000000-0000-0000-0000-000000000000"] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(response.headers()["location"].to_str().unwrap().starts_with("/signin?next="), "{path}");
    }
    // A wrong token: the sign-in page again, no cookie.
    let response =
        client().post(app.url("/signin")).form(&[("token", "glv_wrong"), ("next", "/")]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.text().await.unwrap().contains("unknown or revoked"));
    // A cross-site sign-in (login CSRF) is refused.
    let response = client()
        .post(app.url("/signin"))
        .header("origin", "https://evil.example")
        .form(&[("token", app.viewer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());

    let cookie = sign_in(&app, &app.viewer).await;
    let (status, headers, html) = page(&app, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    for customer in ["Acme Robotics", "Globex Corporation", "Initech", "Umbrella Labs"] {
        assert!(html.contains(customer), "the board shows {customer}");
    }
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");
    // An open redirect through `next` is not followed.
    let response = client()
        .post(app.url("/signin"))
        .form(&[("token", app.viewer.as_str()), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/");
}

#[tokio::test]
async fn the_session_cookie_reads_the_api_but_never_writes_through_it() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, &app.admin).await;
    let with_cookie = |request: reqwest::RequestBuilder| request.header("cookie", format!("golive_session={cookie}"));
    let response = with_cookie(client().get(app.url("/api/v1/board"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = with_cookie(client().post(app.url("/api/v1/integrations")))
        .json(&json!({"customer": "X", "gitlab_url": "https://gitlab.x.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a cookie is no bearer token");
    assert_eq!(app.engine.store().head().await.unwrap().position, 0);
    // A raw API token in the cookie is not a session.
    let response = client()
        .get(app.url("/api/v1/board"))
        .header("cookie", format!("golive_session={}", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn signing_out_needs_the_csrf_token_and_ends_the_session_on_the_server() {
    let app = spawn_app().await;
    let cookie = sign_in(&app, &app.viewer).await;
    let (_, _, html) = page(&app, &cookie, "/").await;
    let csrf = csrf_of(&html);
    let sign_out = |token: String| {
        client()
            .post(app.url("/signout"))
            .header("cookie", format!("golive_session={cookie}"))
            .header("origin", &app.address)
            .form(&[("csrf", token)])
            .send()
    };
    assert_eq!(sign_out("forged".into()).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(page(&app, &cookie, "/").await.0, StatusCode::OK, "a forged sign-out changes nothing");
    let response = sign_out(csrf).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(page(&app, &cookie, "/").await.0, StatusCode::SEE_OTHER, "the old cookie no longer works");
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let app = spawn_app().await;
    let name = "viewer-to-revoke";
    let token = golive::auth::Tokens::new(app.engine.store().as_ref())
        .create(name, golive::auth::Role::Viewer, "test")
        .await
        .unwrap();
    let cookie = sign_in(&app, &token).await;
    assert_eq!(page(&app, &cookie, "/").await.0, StatusCode::OK);
    let response =
        app.http.delete(app.url(&format!("/api/v1/tokens/{name}"))).bearer_auth(&app.admin).send().await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(page(&app, &cookie, "/").await.0, StatusCode::SEE_OTHER);
}

/// Creates an intake link through the dashboard form as `token`'s session.
async fn create_link(app: &TestApp, token: &str, id: &str, hours: &str) -> (StatusCode, String) {
    let cookie = sign_in(app, token).await;
    let (_, _, html) = page(app, &cookie, &format!("/integrations/{id}")).await;
    let csrf = if html.contains("name=\"csrf\"") { csrf_of(&html) } else { String::new() };
    let response = client()
        .post(app.url(&format!("/integrations/{id}/intake-links")))
        .header("cookie", format!("golive_session={cookie}"))
        .header("origin", &app.address)
        .form(&[("csrf", csrf.as_str()), ("expires_in_hours", hours)])
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

fn link_of(html: &str) -> String {
    let marker = "id=\"intake-url\" class=\"wide\" readonly value=\"";
    let start = html.find(marker).expect("the link is shown") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn intake_form(application_id: &str) -> Vec<(&'static str, String)> {
    let mut form = vec![
        ("application_id", application_id.to_owned()),
        ("application_secret", "gloas-customer-typed-secret-123".to_owned()),
        ("access_token", "glpat-customer-typed-token-456".to_owned()),
        ("admin", "true".to_owned()),
    ];
    for scope in ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"] {
        form.push(("scopes", scope.to_owned()));
    }
    form
}

async fn submit(app: &TestApp, link: &str, form: &[(&str, String)]) -> (StatusCode, String) {
    let response = client().post(link).header("origin", &app.address).form(form).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_customer_intake_is_recorded_sealed_once_and_the_link_then_refused() {
    let app = spawn_app().await;
    let id = app.open().await;
    // A viewer may not create links; a rep may.
    let (status, _) = create_link(&app, &app.viewer, &id, "72").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = create_link(&app, &app.rep, &id, "0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a lifetime of 0 hours is refused");
    let (status, html) = create_link(&app, &app.rep, &id, "72").await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    let link = link_of(&html);
    assert!(link.starts_with(&format!("{}/intake/{id}/", app.address)), "{link}");
    let version_after_issue =
        app.engine.state(golive::domain::IntegrationId::parse(&id).unwrap()).await.unwrap().version;

    // The customer opens it without an account.
    let response = client().get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["referrer-policy"], "same-origin");
    let html = response.text().await.unwrap();
    assert!(html.contains("Factory Integration") && html.contains("/oauth/gitlab/callback"));

    // Bad input: a clear error, nothing written, the link still open.
    let (status, html) = submit(&app, &link, &intake_form("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("application id"), "{html}");
    assert!(!html.contains("gloas-customer-typed-secret-123"), "a typed secret is not echoed back");
    let mut no_scopes = intake_form("app-1");
    no_scopes.retain(|(k, _)| *k != "scopes");
    assert_eq!(submit(&app, &link, &no_scopes).await.0, StatusCode::BAD_REQUEST);
    let mut bad_scope = intake_form("app-1");
    bad_scope.push(("scopes", "Not A Scope".into()));
    assert_eq!(submit(&app, &link, &bad_scope).await.0, StatusCode::BAD_REQUEST);
    let cross_site =
        client().post(&link).header("origin", "https://evil.example").form(&intake_form("app-1")).send().await.unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.engine.state(golive::domain::IntegrationId::parse(&id).unwrap()).await.unwrap().version,
        version_after_issue
    );

    let (status, html) = submit(&app, &link, &intake_form("8d2f6c1e4b7a9035")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Thank you"));

    // Recorded with actor `customer`, in one append, secrets sealed.
    let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
    let events = history["events"].as_array().or(history.as_array()).unwrap().clone();
    let customer: Vec<&Value> = events.iter().filter(|e| e["actor"] == "customer").collect();
    let types: Vec<&str> = customer.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        &types[..4],
        ["application_registered", "application_secret_provided", "access_token_provided", "intake_redeemed"]
    );
    let positions: Vec<u64> = customer.iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[1] == w[0] + 1), "one append: consecutive positions {positions:?}");
    let issued = events.iter().find(|e| e["type"] == "intake_link_issued").unwrap();
    assert!(issued["actor"].as_str().unwrap().starts_with("rep-"));

    // The link is used up: refused on open and on submit.
    assert_eq!(client().get(&link).send().await.unwrap().status(), StatusCode::GONE);
    assert_eq!(submit(&app, &link, &intake_form("again")).await.0, StatusCode::GONE);
    // A made-up secret is simply unknown.
    let forged = format!("{}/intake/{id}/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", app.address);
    assert_eq!(client().get(&forged).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    // The rep sees what arrived, never the secrets; neither does any answer or the log.
    let cookie = sign_in(&app, &app.rep).await;
    let (_, _, html) = page(&app, &cookie, &format!("/integrations/{id}")).await;
    assert!(html.contains("received (sealed; fingerprint"));
    assert!(html.contains("used"));
    let secret_part = link.rsplit('/').next().unwrap().to_owned();
    let (_, _, audit) = page(&app, &cookie, "/audit").await;
    let (_, state) = app.get(&app.admin, &format!("/api/v1/integrations/{id}")).await;
    let export =
        app.http.get(app.url("/api/v1/export")).bearer_auth(&app.admin).send().await.unwrap().text().await.unwrap();
    for (name, text) in [
        ("page", html),
        ("audit", audit),
        ("state", state.to_string()),
        ("history", history.to_string()),
        ("export", export),
    ] {
        for secret in ["gloas-customer-typed-secret-123", "glpat-customer-typed-token-456", secret_part.as_str()] {
            assert!(!text.contains(secret), "{name} carries a secret");
        }
    }
}

#[tokio::test]
async fn two_submissions_through_one_link_at_once_record_one() {
    let app = spawn_app().await;
    let id = app.open().await;
    let (_, html) = create_link(&app, &app.rep, &id, "1").await;
    let link = link_of(&html);
    let form = intake_form("app-race");
    let (a, b) = tokio::join!(submit(&app, &link, &form), submit(&app, &link, &form));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::GONE]);
    let state = app.engine.state(golive::domain::IntegrationId::parse(&id).unwrap()).await.unwrap();
    assert_eq!(state.intake_links.iter().filter(|l| l.redeemed_at.is_some()).count(), 1);
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    use golive::engine::{Engine, EngineConfig, ManualClock, OpenOptions};
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::new(Utc::now()));
    let config = EngineConfig::new(golive::domain::HttpUrl::parse("https://golive.example").unwrap(), None);
    let options = OpenOptions { clock: Some(clock.clone()), ..Default::default() };
    let (engine, _) = Engine::open_dir(dir.path(), config, options).await.unwrap();
    let rep = golive::domain::Actor::parse("rep").unwrap();
    let open = json!({"customer": "Expiring", "gitlab_url": "https://gitlab.expiring.example"});
    let id = engine.open_integration(open, &rep, None).await.unwrap().state.id;
    let issued = engine.issue_intake_link(id, 2, &rep).await.unwrap();
    let secret = issued.path.rsplit('/').next().unwrap().to_owned();
    assert!(engine.intake_invitation(id, &secret).await.is_ok());
    clock.advance(Duration::hours(2));
    let refusal = engine.intake_invitation(id, &secret).await.unwrap_err();
    assert!(refusal.to_string().contains("expired"), "{refusal}");
    let form = golive::engine::IntakeForm {
        application_id: "app".into(),
        application_secret: "s".into(),
        access_token: "t".into(),
        admin: true,
        scopes: vec!["api".into()],
        ..Default::default()
    };
    let before = engine.state(id).await.unwrap().version;
    assert!(engine.redeem_intake(id, &secret, &form).await.is_err());
    assert_eq!(engine.state(id).await.unwrap().version, before, "a refused intake writes nothing");
    engine.close().await.unwrap();
}

/// Posts one command form of the integration page as `cookie`'s session, from `origin`.
pub async fn post_command(
    app: &TestApp,
    cookie: &str,
    id: &str,
    origin: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let response = client()
        .post(app.url(&format!("/integrations/{id}/commands")))
        .header("cookie", format!("golive_session={cookie}"))
        .header("origin", origin)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn version_of(app: &TestApp, id: &str) -> u64 {
    app.engine.state(golive::domain::IntegrationId::parse(id).unwrap()).await.unwrap().version
}

#[tokio::test]
async fn command_forms_record_through_the_engine_and_refuse_forgeries_viewers_and_stale_pages() {
    let app = spawn_app().await;
    let id = app.open().await;
    let rep = sign_in(&app, &app.rep).await;
    let (status, _, html) = page(&app, &rep, &format!("/integrations/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // Every command of the v1 vocabulary a rep runs has its form, and the probe too: read from
    // the vocabulary itself, so a new command without a form fails here. Not here: moving the
    // public URL (the admin's, over the API) and resolving feedback (its form lists the open
    // items, and this integration has none).
    let without_a_form_here = ["change_public_url", "resolve_feedback"];
    let kinds = golive::domain::PUBLIC_COMMAND_TYPES.iter().copied().filter(|k| !without_a_form_here.contains(k));
    for kind in kinds.chain(["probe"]) {
        assert!(html.contains(&format!("id=\"form-{kind}\"")), "the rep's page has a form for {kind}");
    }
    // The intake link comes before the facts and the forms.
    assert!(html.find("intake-heading").unwrap() < html.find("id=\"stage\"").unwrap());
    let csrf = csrf_of(&html);
    let origin = app.address.clone();

    // Recorded: 303 back to the page, which says what was recorded.
    let note =
        [("csrf", csrf.as_str()), ("type", "add_note"), ("expected_version", "1"), ("text", "Kick-off call held")];
    let (status, headers, _) = post_command(&app, &rep, &id, &origin, &note).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/integrations/{id}?recorded=1-2"));
    let (_, _, html) = page(&app, &rep, &location).await;
    assert!(
        html.contains("id=\"flash\"") && html.contains("Note: Kick-off call held"),
        "the flash says what was recorded"
    );
    let events = app.engine.history(golive::domain::IntegrationId::parse(&id).unwrap(), 0, 10).await.unwrap();
    assert!(events[1].actor.starts_with("rep-"), "the session's actor: {}", events[1].actor);

    // A cross-origin post, or one without the session's CSRF token: refused, nothing written.
    let forged = [("csrf", csrf.as_str()), ("type", "add_note"), ("expected_version", "2"), ("text", "forged")];
    let (status, _, _) = post_command(&app, &rep, &id, "https://evil.example", &forged).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let no_token = [("csrf", "not-the-token"), ("type", "add_note"), ("expected_version", "2"), ("text", "forged")];
    let (status, _, _) = post_command(&app, &rep, &id, &origin, &no_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(version_of(&app, &id).await, 2, "refused posts write nothing");

    // A viewer sees no form and is refused with its own valid CSRF token.
    let viewer = sign_in(&app, &app.viewer).await;
    let (_, _, html) = page(&app, &viewer, &format!("/integrations/{id}")).await;
    assert!(!html.contains("form-add_note") && !html.contains("/commands\""), "no command form for a viewer");
    let viewer_csrf = csrf_of(&html);
    let as_viewer =
        [("csrf", viewer_csrf.as_str()), ("type", "add_note"), ("expected_version", "2"), ("text", "viewer")];
    let (status, _, _) = post_command(&app, &viewer, &id, &origin, &as_viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(version_of(&app, &id).await, 2);

    // A form filled in on a stale page (version 1) is refused, with a clear message.
    let stale = [("csrf", csrf.as_str()), ("type", "add_note"), ("expected_version", "1"), ("text", "stale")];
    let (status, _, html) = post_command(&app, &rep, &id, &origin, &stale).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("id=\"command-error\"") && html.contains("now at version 2"), "{html}");
    assert_eq!(version_of(&app, &id).await, 2, "a stale form writes nothing");

    // The domain's rejection, re-rendered on the page; nothing written.
    let go_live = [("csrf", csrf.as_str()), ("type", "go_live"), ("expected_version", "2")];
    let (status, _, html) = post_command(&app, &rep, &id, &origin, &go_live).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("Go live: refused") && html.contains("Nothing was recorded"), "{html}");
    let bad_date = [("csrf", csrf.as_str()), ("type", "schedule_go_live"), ("expected_version", "2"), ("date", "soon")];
    let (status, _, html) = post_command(&app, &rep, &id, &origin, &bad_date).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Schedule the go-live date: refused"), "{html}");
    assert_eq!(version_of(&app, &id).await, 2);

    // A secret goes in, and never comes back out: not in the redirect, not on the page.
    let secret = "gloas-dashboard-typed-secret-789";
    let fields = [
        ("csrf", csrf.as_str()),
        ("type", "provide_application_secret"),
        ("expected_version", "2"),
        ("secret", secret),
    ];
    let (status, headers, body) = post_command(&app, &rep, &id, &origin, &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(!location.contains(secret));
    let (_, _, html) = page(&app, &rep, &location).await;
    assert!(!html.contains(secret) && html.contains("Application secret received (sealed)"));

    // Webhook credentials: the token shown once; a second issue is refused, pointing to rotation.
    let issue = [("csrf", csrf.as_str()), ("type", "issue_webhook_credentials"), ("expected_version", "3")];
    let (status, headers, html) = post_command(&app, &rep, &id, &origin, &issue).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(html.contains("id=\"secret-token\"") && html.contains(&format!("/hooks/gitlab/{id}")));
    let marker = "id=\"secret-token\" class=\"wide\" readonly value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let token = html[start..].split('"').next().unwrap().to_owned();
    assert!(token.len() >= 32, "a real token: {token}");
    let (_, _, html) = page(&app, &rep, &format!("/integrations/{id}")).await;
    assert!(!html.contains(&token), "the token is shown once only");
    assert!(html.contains("rotate the webhook token"));
    let again = [("csrf", csrf.as_str()), ("type", "issue_webhook_credentials"), ("expected_version", "4")];
    let (status, _, html) = post_command(&app, &rep, &id, &origin, &again).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("Rotate a credential"), "{html}");
    assert_eq!(version_of(&app, &id).await, 4);

    // Cancelling needs the customer's name typed.
    let cancel = [
        ("csrf", csrf.as_str()),
        ("type", "cancel"),
        ("expected_version", "4"),
        ("reason", "Went elsewhere"),
        ("confirm_customer", "Acme"),
    ];
    let (status, _, html) = post_command(&app, &rep, &id, &origin, &cancel).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Type the customer&#39;s name") || html.contains("Type the customer's name"), "{html}");
    assert_eq!(version_of(&app, &id).await, 4);
    let cancel = [
        ("csrf", csrf.as_str()),
        ("type", "cancel"),
        ("expected_version", "4"),
        ("reason", "Went elsewhere"),
        ("confirm_customer", "acme robotics"),
    ];
    let (status, _, _) = post_command(&app, &rep, &id, &origin, &cancel).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, html) = page(&app, &rep, &format!("/integrations/{id}")).await;
    assert!(!html.contains("id=\"form-add_note\""), "a cancelled integration takes no more commands");
}

#[tokio::test]
async fn the_audit_page_is_newest_first_names_customers_and_reads_utc_times() {
    let app = spawn_app().await;
    let now = load_demo(&app).await;
    let cookie = sign_in(&app, &app.viewer).await;
    let (status, _, html) = page(&app, &cookie, "/audit").await;
    assert_eq!(status, StatusCode::OK);
    let positions: Vec<u64> =
        html.split("data-position=\"").skip(1).map(|rest| rest.split('"').next().unwrap().parse().unwrap()).collect();
    assert_eq!(positions.len(), 50, "a full page");
    assert!(positions.windows(2).all(|pair| pair[0] > pair[1]), "newest first: {positions:?}");
    let head = app.engine.store().head().await.unwrap().position;
    assert_eq!(positions[0], head);
    assert!(html.contains(">Acme Robotics</a>") || html.contains(">Globex Corporation</a>"), "customers by name");
    assert!(html.contains("title=\"Integration "), "the full id on hover");
    assert!(html.contains(">Stage entered<"), "event types in words");
    // The next page continues below the last position shown, with no gap and no repeat.
    let (_, _, older) = page(&app, &cookie, &format!("/audit?before={}", positions[49])).await;
    let first_older: u64 = older.split("data-position=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert_eq!(first_older, positions[49] - 1);
    // The time fields take the format they show (UTC, with Z), and a date alone.
    let until = (now - Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (status, _, html) = page(&app, &cookie, &format!("/audit?until={until}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, _, _) = page(&app, &cookie, &format!("/audit?since={}", now.format("%Y-%m-%d"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, html) = page(&app, &cookie, "/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("is not a UTC time"));
}

fn monday_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

#[tokio::test]
async fn insights_match_a_hand_computation_over_the_demo_fixtures() {
    let app = spawn_app().await;
    let now = load_demo(&app).await;
    let (status, insights) = app.get(&app.viewer, "/api/v1/insights").await;
    assert_eq!(status, StatusCode::OK, "{insights}");
    let expected = expected_insights(now);
    for (stage, finished, median, p90) in &expected.stage_times {
        let row = insights["time_in_stage"].as_array().unwrap().iter().find(|r| r["stage"] == *stage).unwrap();
        assert_eq!(row["finished"], json!(finished), "{stage}");
        assert!((row["median_hours"].as_f64().unwrap() - median).abs() < 0.01, "{stage} median {row}");
        assert!((row["p90_hours"].as_f64().unwrap() - p90).abs() < 0.01, "{stage} p90 {row}");
    }
    let weekly = insights["weekly"].as_array().unwrap();
    for (week, opened, live) in &expected.weeks {
        let row = weekly.iter().find(|w| w["week_start"] == week.to_string()).unwrap_or_else(|| panic!("week {week}"));
        assert_eq!((row["opened"].as_u64().unwrap(), row["went_live"].as_u64().unwrap()), (*opened, *live), "{week}");
    }
    let opened: u64 = weekly.iter().map(|w| w["opened"].as_u64().unwrap()).sum();
    assert_eq!(opened, 4);
    // The series is even (one row a week, none missing) and runs up to the current week.
    let starts: Vec<NaiveDate> = weekly.iter().map(|w| w["week_start"].as_str().unwrap().parse().unwrap()).collect();
    assert!(starts.windows(2).all(|pair| pair[1] - pair[0] == Duration::days(7)), "{starts:?}");
    assert_eq!(starts.last().copied(), Some(monday_of(now.date_naive())), "the current week is shown");
    let stalls = insights["stalls"].as_array().unwrap();
    let created = stalls.iter().find(|r| r["stage"] == "created").unwrap();
    assert_eq!(
        (created["active"].as_u64(), created["stalled"].as_u64(), created["blocked"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(insights["blocked_by_category"], json!({"permission_denied": 1}));
    let today = insights["cumulative_flow"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        today["counts"],
        json!([
            ["created", 1],
            ["info_gathered", 0],
            ["network_established", 0],
            ["webhook_live", 0],
            ["tested", 0],
            ["validated", 1],
            ["live", 1],
            ["cancelled", 1]
        ])
    );
}

pub struct ExpectedInsights {
    /// (stage, finished stints, median hours, p90 hours)
    pub stage_times: Vec<(&'static str, u64, f64, f64)>,
    /// (Monday, opened, gone live)
    pub weeks: Vec<(NaiveDate, u64, u64)>,
}

/// The figures worked out by hand from the fixture files' step times (relative days at fixed
/// clock times, so durations do not depend on today).
///
/// Acme (fixtures/onboardings/acme-vpc-peering-live.json): opened -40d 09:00; info gathered
/// -38d 14:05 (53.08 h in created); network -32d 10:00 (139.92 h); webhook live -31d 09:32
/// (23.53 h); tested -29d 11:05 (49.55 h); validated -24d 09:30 (118.42 h); live -10d 09:00
/// (335.50 h in validated).
/// Globex (globex-vpn-token-rotation.json): opened -26d 13:00; info -22d 16:00 (99 h);
/// network -17d 10:00 (114 h); webhook live -16d 09:21 (23.35 h); tested -14d 12:00
/// (50.65 h); the access-token rotation at -12d 15:00 falls back to created (51 h in tested);
/// the new token at -11d 10:00 passes info, network and webhook live at once (19 h in created;
/// the zero-length pass-throughs are not stints); tested -11d 10:30 (0.5 h in webhook live);
/// validated -7d 14:30 (100 h in tested).
/// Initech opened -18d, Umbrella -9d (cancelled -2d: a cancelled stint is not finished).
///
/// So: created [19, 53.08, 99] → median 53.08, p90 (rank ⌈2.7⌉ = 3) 99; info gathered
/// [114, 139.92] → median 126.96, p90 139.92; network [23.35, 23.53] → 23.44, 23.53;
/// webhook live [0.5, 49.55, 50.65] → 49.55, 50.65; tested [51, 100, 118.42] → 100, 118.42;
/// validated [335.5] → 335.5, 335.5.
pub fn expected_insights(now: DateTime<Utc>) -> ExpectedInsights {
    let day = |offset: i64| monday_of((now - Duration::days(offset)).date_naive());
    let mut weeks: Vec<(NaiveDate, u64, u64)> = Vec::new();
    for (offset, opened, live) in [(40, 1, 0), (26, 1, 0), (18, 1, 0), (9, 1, 0), (10, 0, 1)] {
        match weeks.iter_mut().find(|(w, _, _)| *w == day(offset)) {
            Some(row) => {
                row.1 += opened;
                row.2 += live;
            }
            None => weeks.push((day(offset), opened, live)),
        }
    }
    ExpectedInsights {
        stage_times: vec![
            ("created", 3, 53.0833, 99.0),
            ("info_gathered", 2, 126.9583, 139.9167),
            ("network_established", 2, 23.4417, 23.5333),
            ("webhook_live", 3, 49.55, 50.65),
            ("tested", 3, 100.0, 118.4167),
            ("validated", 1, 335.5, 335.5),
        ],
        weeks,
    }
}
