//! Single sign-on against a real OpenID provider: panva's certified `oidc-provider`
//! (tests/oidc/provider.mjs, on 127.0.0.1), with golive on a real socket.
//!
//! Covered: a rep signing in through the provider's login and consent pages in Chromium, landing
//! on the board and recording a command as `sso:alice`, with a new HttpOnly, SameSite=Strict
//! session cookie; and, over plain HTTP through the same pages, every refusal: an ID token for
//! another audience, an expired one (by the provider's clock and by golive's own), a replayed
//! callback, a tampered `state`, an account with no mapped role (403, no session cookie), a
//! sign-in left unfinished past its ten minutes (refused, its record swept), the
//! provider rotating its signing key (golive fetches the keys again, at most once per interval),
//! token sign-in turned off (no form, POST /signin refused, bearer tokens still work), the
//! sign-in counters, no token named `sso:…`, a `Secure` login cookie and an https callback
//! behind an https public URL, and axe-core on the sign-in and refusal pages. The
//! real binary: `golive serve` takes its settings from flags, the environment and a secret
//! file, refuses incomplete ones, and its debug log holds no client secret, code, ID token or
//! session id.
//!
//! Without `node` or tests/oidc/node_modules these tests print SKIPPED loudly; with CI=true they
//! fail instead, so CI cannot skip them silently.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use golive::engine::ManualClock;
use golive::http::{HttpConfig, OidcIssuer, RoleClaim, RoleMapping, SsoConfig};
use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::{assert_accessible, browser, sign_in, submit_form, wait_for};
use crate::http::{spawn_app_on_listener, TestApp};

const CLIENT_ID: &str = "golive-dashboard";
/// A test secret for a provider that lives as long as one test.
const CLIENT_SECRET: &str = "a-client-secret-known-only-to-this-test-0123456789";

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The provider's process; killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
    http: reqwest::Client,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Asks the provider to rewrite its next ID tokens (`wrong-audience`, `expired`, `as-issued`).
    async fn id_tokens(&self, mode: &str) {
        let answer = self.http.post(format!("{}/__test/id-token/{mode}", self.issuer)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "mode {mode}");
    }

    /// A new signing key replaces the provider's old one.
    async fn rotate_keys(&self) {
        let answer = self.http.post(format!("{}/__test/rotate-keys", self.issuer)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
    }
}

/// Whether node and the provider's packages are here; SKIPPED (or, under CI=true, a failure)
/// otherwise.
fn provider_available(test: &str) -> bool {
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    let mut missing = Vec::new();
    if !node.is_ok_and(|status| status.success()) {
        missing.push("node".to_owned());
    }
    let packages = provider_dir().join("node_modules/oidc-provider");
    if !packages.exists() {
        missing.push(packages.display().to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "single sign-on test {test} SKIPPED: missing {} (install Node.js and run `npm ci --prefix tests/oidc`; \
         .ci/run does both)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message}; CI=true requires the single sign-on tests to run");
    }
    eprintln!("\n{}\n!!! {message}\n{}\n", "!".repeat(100), "!".repeat(100));
    false
}

/// Starts the provider for golive's callback `redirect_uri`; waits for its ready line.
fn start_provider(redirect_uri: &str) -> Provider {
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .current_dir(provider_dir())
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URI", redirect_uri)
        .env("PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        // Read on to the end: the provider prints notices later, and a closed pipe would end it.
        for _ in lines {}
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("the provider's ready line within 20 s");
    let issuer = line.trim().strip_prefix("oidc provider ready at ").unwrap_or_else(|| panic!("ready line: {line:?}"));
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    Provider { child, issuer: issuer.to_owned(), http: reqwest::Client::new() }
}

fn sso_config(issuer: &str) -> SsoConfig {
    SsoConfig::new(
        OidcIssuer::parse(issuer).unwrap(),
        CLIENT_ID,
        CLIENT_SECRET,
        RoleClaim::parse("groups").unwrap(),
        RoleMapping::parse("golive-admins=admin,golive-reps=rep,golive-viewers=viewer").unwrap(),
        &["profile".to_owned()],
        None,
    )
    .unwrap()
}

/// golive with single sign-on against a fresh provider; `None` when the provider is missing.
async fn sso_app(test: &str, token_sign_in: bool) -> Option<(TestApp, Provider)> {
    sso_app_with_clock(test, token_sign_in, None).await
}

async fn sso_app_with_clock(
    test: &str,
    token_sign_in: bool,
    clock: Option<Arc<dyn golive::engine::Clock>>,
) -> Option<(TestApp, Provider)> {
    if !provider_available(test) {
        return None;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let provider = start_provider(&format!("{address}/auth/sso/callback"));
    let config = HttpConfig { sso: Some(sso_config(&provider.issuer)), token_sign_in, ..HttpConfig::default() };
    Some((spawn_app_on_listener(listener, config, clock, |_| {}).await, provider))
}

/// A browser's cookie handling over plain HTTP, enough for golive and the provider on one
/// host: cookies by name, redirects one at a time so each answer can be looked at.
struct Agent {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Agent {
    fn new() -> Agent {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Agent { http, jar: BTreeMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let gone = attributes.to_ascii_lowercase().contains("max-age=0")
                || attributes.to_ascii_lowercase().contains("expires=thu, 01 jan 1970");
            if gone || value.is_empty() {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.keep_cookies(&response);
        response
    }

    async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let response = self.http.post(url).header("cookie", self.cookie_header()).form(fields).send().await.unwrap();
        self.keep_cookies(&response);
        response
    }
}

fn location(response: &reqwest::Response, base: &str) -> String {
    let to = response.headers().get(LOCATION).unwrap_or_else(|| panic!("a redirect: {}", response.status()));
    let to = to.to_str().unwrap();
    if to.starts_with('/') {
        format!("{base}{to}")
    } else {
        to.to_owned()
    }
}

/// The `action` of the page's first form.
fn form_action(html: &str) -> String {
    let start = html.find("action=\"").expect("a form on the provider's page") + "action=\"".len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

/// Starts a sign-in at golive and goes through the provider's login (as `user`) and consent
/// pages; returns golive's callback URL as the provider redirected to it, not yet followed.
async fn through_the_provider(agent: &mut Agent, golive: &str, provider: &Provider, user: &str) -> String {
    let start = agent.get(&format!("{golive}/auth/sso/start?next=%2Faudit")).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let mut next = location(&start, golive);
    assert!(next.starts_with(&format!("{}/auth?", provider.issuer)), "{next}");
    for _ in 0..12 {
        if next.starts_with(&format!("{golive}/auth/sso/callback")) {
            return next;
        }
        let response = agent.get(&next).await;
        if response.status().is_redirection() {
            next = location(&response, &provider.issuer);
            continue;
        }
        assert_eq!(response.status(), StatusCode::OK, "{next}");
        let page = response.text().await.unwrap();
        let action = form_action(&page);
        let action = if action.starts_with('/') { format!("{}{action}", provider.issuer) } else { action };
        let submitted = if page.contains("name=\"login\"") {
            agent.post_form(&action, &[("prompt", "login"), ("login", user), ("password", "any")]).await
        } else {
            agent.post_form(&action, &[("prompt", "consent")]).await
        };
        assert!(submitted.status().is_redirection(), "{action}: {}", submitted.status());
        next = location(&submitted, &provider.issuer);
    }
    panic!("the provider never sent the browser back to golive");
}

/// The session cookie a response sets, with its attributes.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("golive_session=") && !c.starts_with("golive_session=;"))
}

async fn page_text(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

async fn metrics(app: &TestApp) -> String {
    app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

/// The callback's answer must be a refusal page with `status` and `explanation`, and no session.
async fn assert_refused(response: reqwest::Response, status: StatusCode, explanation: &str) {
    assert_eq!(response.status(), status);
    assert!(session_cookie(&response).is_none(), "a refused sign-in sets no session cookie");
    let page = page_text(response).await;
    assert!(page.contains(explanation), "{explanation:?} in {page}");
    assert!(!page.contains(CLIENT_SECRET), "no secret on a page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rep_signs_in_with_single_sign_on_in_chromium() {
    let test = "a_rep_signs_in_with_single_sign_on_in_chromium";
    let Some(browser) = browser(test).await else { return };
    let Some((app, _provider)) = sso_app(test, true).await else { return };
    let client = &browser.client;
    let id = app.open().await;

    // An earlier session (a token's) in the same browser, to tell the new one from.
    sign_in(client, &app, &app.viewer).await;
    let earlier = client.get_named_cookie("golive_session").await.unwrap().value().to_owned();

    client.goto(&app.url(&format!("/signin?next=%2Fintegrations%2F{id}"))).await.unwrap();
    assert_accessible(client, "the sign-in page with single sign-on").await;
    client.find(Locator::Id("sso-sign-in")).await.unwrap().click().await.unwrap();
    // The provider's own login page.
    wait_for(
        client,
        "the provider's login page",
        "return !!document.querySelector('input[name=login]');",
        Duration::from_secs(10),
    )
    .await;
    client.find(Locator::Css("input[name=login]")).await.unwrap().send_keys("alice").await.unwrap();
    client.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("any password").await.unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    // Its consent page.
    wait_for(
        client,
        "the provider's consent page",
        "return !!document.querySelector('input[name=prompt][value=consent]');",
        Duration::from_secs(10),
    )
    .await;
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let integration_page = format!("return location.pathname === '/integrations/{id}';");
    wait_for(client, "the integration page after single sign-on", &integration_page, Duration::from_secs(10)).await;
    let who = client.find(Locator::Css(".who")).await.unwrap().text().await.unwrap();
    assert!(who.contains("sso:alice") && who.contains("(rep)"), "{who}");

    let session = client.get_named_cookie("golive_session").await.unwrap();
    assert_ne!(session.value(), earlier, "signing in gives a new session id");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    // The sign-in's own cookie is gone once used.
    assert!(client.get_named_cookie("golive_sso").await.is_err(), "the login cookie is cleared");

    // The board shows.
    client.goto(&app.url("/")).await.unwrap();
    assert!(client.find(Locator::Css("main h1")).await.is_ok());

    // A command done through the dashboard is recorded as sso:alice.
    client.goto(&app.url(&format!("/integrations/{id}"))).await.unwrap();
    submit_form(
        client,
        "confirm_prerequisites",
        &[],
        &["gitlab_admin_access", "network_access", "factory_admin_account"],
        &[],
    )
    .await;
    let (status, history) = app.get(&app.admin, &format!("/api/v1/integrations/{id}/history")).await;
    assert_eq!(status, StatusCode::OK);
    let actors: Vec<&str> = history["events"].as_array().unwrap().iter().filter_map(|e| e["actor"].as_str()).collect();
    assert!(actors.contains(&"sso:alice"), "{history}");

    // A refusal explains itself on an accessible page.
    client.goto(&app.url("/auth/sso/callback?code=made-up&state=made-up")).await.unwrap();
    let refusal = client.find(Locator::Id("sso-error")).await.unwrap().text().await.unwrap();
    assert!(refusal.contains("already used or has expired"), "{refusal}");
    assert_accessible(client, "a single sign-on refusal").await;

    let counted = metrics(&app).await;
    assert!(counted.contains("golive_sign_ins_total{method=\"sso\",outcome=\"signed_in\"} 1"), "{counted}");
    assert!(counted.contains("golive_sign_ins_total{method=\"token\",outcome=\"signed_in\"} 1"), "{counted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_gets_a_new_strict_session_and_the_callback_works_once() {
    let test = "a_signed_in_user_gets_a_new_strict_session_and_the_callback_works_once";
    let Some((app, provider)) = sso_app(test, true).await else { return };
    let mut agent = Agent::new();
    let start = agent.get(&app.url("/auth/sso/start")).await;
    let login_cookie = start.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(login_cookie.starts_with("golive_sso="), "{login_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Max-Age=600", "Path=/auth/sso"] {
        assert!(login_cookie.contains(attribute), "{attribute} in {login_cookie}");
    }
    assert!(!login_cookie.contains("Secure"), "an http public URL gets no Secure cookie");
    let authorize = location(&start, &app.address);
    for parameter in ["code_challenge_method=S256", "code_challenge=", "state=", "nonce=", "scope=openid+profile"] {
        assert!(authorize.contains(parameter), "{parameter} in {authorize}");
    }

    let callback = through_the_provider(&mut agent, &app.address, &provider, "root").await;
    let answer = agent.get(&callback).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&answer, &app.address), app.url("/audit"), "back where the sign-in started");
    let cookie = session_cookie(&answer).expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let first = agent.jar["golive_session"].clone();
    // Two sign-ins were started (the one above whose cookie the second replaced, never
    // finished); the used one's record is gone.
    let left = app.engine.store().scan_aux("sso-login/").await.unwrap();
    assert_eq!(left.len(), 1, "only the unfinished sign-in's record is left");
    let audit = agent.get(&app.url("/audit")).await;
    assert_eq!(audit.status(), StatusCode::OK);
    assert!(page_text(audit).await.contains("sso:root"));

    // The same callback again, in the same browser: the sign-in was used; no new session.
    let replayed = agent.get(&callback).await;
    assert_refused(replayed, StatusCode::BAD_REQUEST, "This sign-in link was already used or has expired").await;
    assert_eq!(agent.jar["golive_session"], first, "the replay changed no session");

    // Signing in again gives another session id, never the one before.
    let again = through_the_provider(&mut agent, &app.address, &provider, "root").await;
    let answer = agent.get(&again).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_ne!(agent.jar["golive_session"], first);

    // Signing out ends the session on the server.
    let board = page_text(agent.get(&app.url("/")).await).await;
    let csrf_at = board.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = board[csrf_at..csrf_at + board[csrf_at..].find('"').unwrap()].to_owned();
    let kept = agent.jar["golive_session"].clone();
    let out = agent.post_form(&app.url("/signout"), &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let mut old_cookie = Agent::new();
    old_cookie.jar.insert("golive_session".into(), kept);
    let after = old_cookie.get(&app.url("/audit")).await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "the ended session no longer opens a page");
    assert!(location(&after, &app.address).starts_with(&app.url("/signin")));

    let counted = metrics(&app).await;
    assert!(counted.contains("golive_sign_ins_total{method=\"sso\",outcome=\"signed_in\"} 2"), "{counted}");
    assert!(counted.contains("golive_sign_ins_total{method=\"sso\",outcome=\"expired_link\"} 1"), "{counted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_state_and_a_missing_login_cookie_sign_nobody_in() {
    let test = "a_tampered_state_and_a_missing_login_cookie_sign_nobody_in";
    let Some((app, provider)) = sso_app(test, true).await else { return };
    let mut agent = Agent::new();
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    let parsed = url::Url::parse(&callback).unwrap();
    let (_, state) = parsed.query_pairs().find(|(k, _)| k == "state").unwrap();
    let tampered = callback.replace(&format!("state={state}"), "state=someone-elses-state");
    assert_ne!(tampered, callback);
    let answer = agent.get(&tampered).await;
    assert_refused(answer, StatusCode::BAD_REQUEST, "does not belong to the sign-in this browser started").await;
    // The tampered attempt used up the sign-in: the genuine callback no longer works either.
    let genuine = agent.get(&callback).await;
    assert_refused(genuine, StatusCode::BAD_REQUEST, "already used or has expired").await;

    // A callback from another browser (without the login cookie) signs nobody in.
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    let mut stranger = Agent::new();
    assert_refused(stranger.get(&callback).await, StatusCode::BAD_REQUEST, "already used or has expired").await;
    assert!(!agent.jar.contains_key("golive_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_a_mapped_role_gets_403_and_no_session() {
    let test = "an_account_without_a_mapped_role_gets_403_and_no_session";
    let Some((app, provider)) = sso_app(test, true).await else { return };
    let mut agent = Agent::new();
    let callback = through_the_provider(&mut agent, &app.address, &provider, "nobody").await;
    let answer = agent.get(&callback).await;
    assert_refused(
        answer,
        StatusCode::FORBIDDEN,
        "Your account has no golive role: ask an admin to add you to a group mapped to a role.",
    )
    .await;
    assert!(!agent.jar.contains_key("golive_session"));
    assert!(!agent.jar.contains_key("golive_sso"), "the login cookie is cleared");
    let board = agent.get(&app.url("/")).await;
    assert_eq!(board.status(), StatusCode::SEE_OTHER, "no session: the board sends to the sign-in page");
    let sessions = app.engine.store().scan_aux("session/").await.unwrap();
    assert!(sessions.is_empty(), "no session record was written");
    let counted = metrics(&app).await;
    assert!(counted.contains("golive_sign_ins_total{method=\"sso\",outcome=\"no_role\"} 1"), "{counted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_sign_on_viewer_reads_but_cannot_run_a_command() {
    let test = "a_single_sign_on_viewer_reads_but_cannot_run_a_command";
    let Some((app, provider)) = sso_app(test, true).await else { return };
    let id = app.open().await;
    let mut agent = Agent::new();
    // vera's groups claim is one string, not a list.
    let callback = through_the_provider(&mut agent, &app.address, &provider, "vera").await;
    assert_eq!(agent.get(&callback).await.status(), StatusCode::SEE_OTHER);
    let page = page_text(agent.get(&app.url(&format!("/integrations/{id}"))).await).await;
    assert!(page.contains("sso:vera") && page.contains("(viewer)"), "{page}");
    let csrf_at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = page[csrf_at..csrf_at + page[csrf_at..].find('"').unwrap()].to_owned();
    let fields = [("csrf", csrf.as_str()), ("type", "add_note"), ("expected_version", "1"), ("text", "hello")];
    let refused = agent.post_form(&app.url(&format!("/integrations/{id}/commands")), &fields).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let page = page_text(refused).await;
    assert!(page.contains("this needs the rep role; single sign-on user sso:vera is viewer"), "{page}");
    // The session reads the API too (GET only, as every dashboard session).
    let board = agent.get(&app.url("/api/v1/board")).await;
    assert_eq!(board.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_tokens_for_another_audience_or_expired_are_refused() {
    let test = "id_tokens_for_another_audience_or_expired_are_refused";
    let Some((app, provider)) = sso_app(test, true).await else { return };
    let mut agent = Agent::new();

    provider.id_tokens("wrong-audience").await;
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_refused(agent.get(&callback).await, StatusCode::UNAUTHORIZED, "could not be verified").await;

    provider.id_tokens("expired").await;
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_refused(agent.get(&callback).await, StatusCode::UNAUTHORIZED, "could not be verified").await;

    // The same provider's tokens as issued are taken: the refusals were for the audience and
    // the expiry.
    provider.id_tokens("as-issued").await;
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    let answer = agent.get(&callback).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&answer).is_some());
    let counted = metrics(&app).await;
    assert!(counted.contains("golive_sign_ins_total{method=\"sso\",outcome=\"refused\"} 2"), "{counted}");
    assert!(!counted.contains(CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_judged_by_the_engines_clock() {
    let test = "expiry_is_judged_by_the_engines_clock";
    // The provider's tokens live an hour; golive's clock says it is two hours later.
    let clock = Arc::new(ManualClock::new(chrono::Utc::now() + chrono::Duration::hours(2)));
    let Some((app, provider)) = sso_app_with_clock(test, true, Some(clock.clone())).await else { return };
    let mut agent = Agent::new();
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_refused(agent.get(&callback).await, StatusCode::UNAUTHORIZED, "could not be verified").await;
    // Back to the provider's time, the same provider's token is taken.
    clock.set(chrono::Utc::now());
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_eq!(agent.get(&callback).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_sign_in_expires_after_ten_minutes_and_is_swept() {
    let test = "an_unfinished_sign_in_expires_after_ten_minutes_and_is_swept";
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let Some((app, provider)) = sso_app_with_clock(test, true, Some(clock.clone())).await else { return };
    let mut agent = Agent::new();
    let late = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    let late_cookie = agent.jar["golive_sso"].clone();
    clock.advance(chrono::Duration::minutes(11));
    // Another sign-in starts: the first one's record, expired, is swept.
    let mut other = Agent::new();
    let _ = through_the_provider(&mut other, &app.address, &provider, "alice").await;
    let records = app.engine.store().scan_aux("sso-login/").await.unwrap();
    assert_eq!(records.len(), 1, "only the second sign-in's record is left");
    agent.jar.insert("golive_sso".into(), late_cookie);
    assert_refused(agent.get(&late).await, StatusCode::BAD_REQUEST, "already used or has expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_is_fetched_again_at_most_once_per_interval() {
    let test = "a_rotated_signing_key_is_fetched_again_at_most_once_per_interval";
    let Some((app, provider)) = sso_app(test, true).await else { return };
    let mut agent = Agent::new();
    // The first sign-in discovers the provider and caches its keys.
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_eq!(agent.get(&callback).await.status(), StatusCode::SEE_OTHER);

    // The provider signs with a key golive has not seen: golive fetches the keys again.
    provider.rotate_keys().await;
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    let answer = agent.get(&callback).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{}", page_text(answer).await);

    // Another new key right away: the keys were fetched moments ago, so not again yet.
    provider.rotate_keys().await;
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_refused(agent.get(&callback).await, StatusCode::UNAUTHORIZED, "could not be verified").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sign_in_turned_off_leaves_single_sign_on_and_bearer_tokens() {
    let test = "token_sign_in_turned_off_leaves_single_sign_on_and_bearer_tokens";
    let Some((app, provider)) = sso_app(test, false).await else { return };
    let page = page_text(app.http.get(app.url("/signin")).send().await.unwrap()).await;
    assert!(page.contains("Sign in with single sign-on"), "{page}");
    assert!(!page.contains("name=\"token\""), "no token form: {page}");

    let refused =
        app.http.post(app.url("/signin")).form(&[("token", app.rep.as_str()), ("next", "/")]).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&refused).is_none());
    assert!(page_text(refused).await.contains("Signing in with an API token is turned off on this server"));

    // Bearer tokens still work for the API.
    let (status, _) = app.get(&app.viewer, "/api/v1/board").await;
    assert_eq!(status, StatusCode::OK);
    // Single sign-on works.
    let mut agent = Agent::new();
    let callback = through_the_provider(&mut agent, &app.address, &provider, "alice").await;
    assert_eq!(agent.get(&callback).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(agent.get(&app.url("/")).await.status(), StatusCode::OK);

    // And no token may take a single sign-on user's name.
    let (status, problem) = app.post(&app.admin, "/api/v1/tokens", &json!({"name": "sso:x", "role": "rep"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("single sign-on"), "{problem}");
    let counted = metrics(&app).await;
    assert!(counted.contains("golive_sign_ins_total{method=\"token\",outcome=\"disabled\"} 1"), "{counted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_https_public_url_the_login_cookie_is_secure_and_the_callback_is_https() {
    let test = "behind_an_https_public_url_the_login_cookie_is_secure_and_the_callback_is_https";
    if !provider_available(test) {
        return;
    }
    let public = "https://golive.example.com";
    let provider = start_provider(&format!("{public}/auth/sso/callback"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = HttpConfig { sso: Some(sso_config(&provider.issuer)), ..HttpConfig::default() };
    let app = spawn_app_on_listener(listener, config, None, |engine| {
        engine.public_url = golive::domain::HttpUrl::parse(public).unwrap();
    })
    .await;
    let start = Agent::new().get(&app.url("/auth/sso/start")).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let cookie = start.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cookie.starts_with("golive_sso=") && cookie.contains("; Secure"), "{cookie}");
    let authorize = url::Url::parse(&location(&start, &app.address)).unwrap();
    let (_, redirect) = authorize.query_pairs().find(|(k, _)| k == "redirect_uri").unwrap();
    assert_eq!(redirect, format!("{public}/auth/sso/callback"));
}

#[test]
fn serve_refuses_incomplete_single_sign_on_settings_and_never_echoes_the_secret() {
    let cli = crate::cli::Cli::new();
    let secret = cli.file("oidc-secret", "s3cret-never-shown\n");
    let secret = secret.to_str().unwrap();
    let serve = ["serve", "--listen", "127.0.0.1:0"];
    let sso =
        ["--oidc-issuer", "https://id.example.com", "--oidc-client-id", "golive", "--oidc-client-secret-file", secret];
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["--no-token-sign-in"], "--no-token-sign-in needs single sign-on"),
        (sso[..4].to_vec(), "--oidc-issuer needs --oidc-client-secret-file"),
        (sso.to_vec(), "--oidc-issuer needs --oidc-roles"),
        ([&sso[..], &["--oidc-roles", "golive-reps=owner"]].concat(), "the role must be admin, rep or viewer"),
        (
            [&sso[..], &["--oidc-roles", "golive-reps=rep", "--oidc-ca-file", secret]].concat(),
            "holds no PEM certificate",
        ),
    ];
    for (flags, expected) in cases {
        let args = [&serve[..], &flags[..]].concat();
        let (code, stderr) = cli.fails(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("s3cret"), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golive_serve_takes_its_settings_from_flags_and_a_secret_file_and_logs_no_secret() {
    let test = "golive_serve_takes_its_settings_from_flags_and_a_secret_file_and_logs_no_secret";
    if !provider_available(test) {
        return;
    }
    // The provider must know golive's callback before golive starts: a free port, picked here.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let golive = format!("http://127.0.0.1:{port}");
    let provider = start_provider(&format!("{golive}/auth/sso/callback"));
    let cli = crate::cli::Cli::new();
    let secret = cli.file("oidc-secret", &format!("{CLIENT_SECRET}\n"));
    let log = cli.dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_golive"))
        .arg("--data-dir")
        .arg(cli.dir.path().join("data"))
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .env("GOLIVE_LOG", "debug")
        .env("GOLIVE_OIDC_ROLES", "golive-reps=rep")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--oidc-issuer", &provider.issuer])
        .args(["--oidc-client-id", CLIENT_ID, "--oidc-client-secret-file"])
        .arg(&secret)
        .arg("--no-token-sign-in")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first.trim(), format!("listening on {golive}"));

    let mut agent = Agent::new();
    let page = page_text(agent.get(&format!("{golive}/signin")).await).await;
    assert!(page.contains("Sign in with single sign-on") && !page.contains("name=\"token\""), "{page}");
    let signed_in = through_the_provider(&mut agent, &golive, &provider, "alice").await;
    let answer = agent.get(&signed_in).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&answer).is_some());
    provider.id_tokens("wrong-audience").await;
    let refused = through_the_provider(&mut agent, &golive, &provider, "alice").await;
    assert_eq!(agent.get(&refused).await.status(), StatusCode::UNAUTHORIZED);
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("signed in with single sign-on") && log.contains("single sign-on refused"), "{log}");
    let codes = [&signed_in, &refused].map(|callback| {
        let parsed = url::Url::parse(callback).unwrap();
        parsed.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
    });
    for secret in [CLIENT_SECRET, &codes[0], &codes[1], &agent.jar["golive_session"], "eyJ"] {
        assert!(!log.contains(secret), "{secret:?} in the server's log:\n{log}");
    }
}
