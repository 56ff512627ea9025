//! The web dashboard and the customer intake: server-rendered HTML (maud) with one small
//! vanilla script for live updates, both embedded in the binary — no front-end build. Reps do
//! their day here: every v1 command is a form on the integration page ([`commands`]), run
//! through the engine exactly as the JSON API runs it.
//!
//! Security: every page carries a strict Content-Security-Policy (no inline script or style,
//! nothing from other origins), `frame-ancestors 'none'`, `Referrer-Policy: same-origin` (an
//! intake link must not leak to another site through a Referer; `no-referrer` would also make
//! browsers send `Origin: null` on our own forms, defeating the origin check) and
//! `Cache-Control: no-store`. Forms that change
//! something carry the session's CSRF token and must come from this origin. No page ever
//! renders a secret: sealed values appear only as "received" with their fingerprint.

mod board;
mod commands;
mod insights;
pub(crate) mod intake;
mod integration;
mod outbound;
mod render;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use super::metrics::{SignInMethod, SignInOutcome};
use super::session::{self, Session};
use super::{AppState, Problem};
use crate::auth::Role;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Largest form body the dashboard accepts.
const FORM_MAX_BYTES: usize = 64 * 1024;

/// The dashboard's and the intake's routes, merged into the service's router.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(board::board_page))
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signout", post(sign_out))
        .route(super::sso::START_PATH, get(super::sso::start))
        .route(super::sso::CALLBACK_PATH, get(super::sso::callback))
        .route("/integrations/{id}", get(integration::integration_page))
        .route("/integrations/{id}/intake-links", post(intake::create_link))
        .route("/integrations/{id}/commands", post(commands::submit))
        .route("/audit", get(board::audit_page))
        .route("/insights", get(insights::insights_page))
        .route("/subscriptions", get(outbound::subscriptions_page))
        .route("/intake/{id}/{secret}", get(intake::intake_page).post(intake::intake_submit))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(stylesheet))
        // The same bounded pool and timeout as the API: pages are no way around the limits.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), super::guard_api))
        .layer(axum::middleware::from_fn_with_state(state, secure_headers))
}

async fn secure_headers(State(_state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("assets/app.js"))
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// A page's answer: HTML, or a redirect to the sign-in page.
pub(crate) enum Page {
    Html(StatusCode, Markup),
    Redirect(String),
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self {
            Page::Html(status, markup) => (status, Html(markup.into_string())).into_response(),
            Page::Redirect(to) => Redirect::to(&to).into_response(),
        }
    }
}

/// The signed-in session, or a redirect to the sign-in page that comes back to `parts`' URI.
pub(crate) async fn require_session(parts: &Parts, state: &AppState) -> Result<Session, Page> {
    match session::current(parts, state).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => {
            let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", back).finish();
            Err(Page::Redirect(format!("/signin?{query}")))
        }
        Err(problem) => Err(error_page(None, problem.status, &problem.detail)),
    }
}

/// Whether a state-changing request comes from this origin. Browsers send `Origin` on POST;
/// a request without one (not a browser) must still carry the CSRF token.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
}

/// Reads an `application/x-www-form-urlencoded` body (bounded) into its fields.
pub(crate) async fn form_fields(body: Body) -> Result<HashMap<String, Vec<String>>, Problem> {
    let bytes = super::read_bounded(body, FORM_MAX_BYTES).await?;
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(&bytes) {
        fields.entry(key.into_owned()).or_default().push(value.into_owned());
    }
    Ok(fields)
}

pub(crate) fn field<'a>(fields: &'a HashMap<String, Vec<String>>, name: &str) -> &'a str {
    fields.get(name).and_then(|v| v.first()).map(String::as_str).unwrap_or("")
}

/// Checks origin and CSRF token of a dashboard form; the error page otherwise.
pub(crate) fn check_form(
    headers: &HeaderMap,
    session: &Session,
    fields: &HashMap<String, Vec<String>>,
) -> Result<(), Page> {
    if !same_origin(headers) || !session.csrf_matches(field(fields, "csrf")) {
        return Err(error_page(
            Some(session),
            StatusCode::FORBIDDEN,
            "This form was not sent from a golive page of this session. Reload the page and try again.",
        ));
    }
    Ok(())
}

pub(crate) fn require_role(session: &Session, role: Role) -> Result<(), Page> {
    session.principal.require(role).map_err(|p| error_page(Some(session), StatusCode::FORBIDDEN, &p.detail))
}

/// What a page tells the live script: follow the event stream from `after`, and for which
/// integration (all when `None`).
pub(crate) struct Live {
    pub after: u64,
    pub integration: Option<String>,
}

/// The frame of every dashboard page.
pub(crate) fn layout(title: &str, session: Option<&Session>, live: Option<Live>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · golive" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body data-live-after=[live.as_ref().map(|l| l.after)]
                data-live-integration=[live.as_ref().and_then(|l| l.integration.clone())]
                data-event-types=(crate::domain::event_type_names().join(" ")) {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    p class="brand" { a href="/" { "golive" } }
                    @if let Some(session) = session {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/" { "Board" } }
                                li { a href="/audit" { "Audit" } }
                                li { a href="/insights" { "Insights" } }
                                @if session.principal.role >= crate::auth::Role::Admin {
                                    li { a href="/subscriptions" { "Subscriptions" } }
                                }
                            }
                        }
                        div class="who" {
                            span { "Signed in as " strong { (session.principal.actor) } " (" (session.principal.role.as_str()) ")" }
                            form method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                @if live.is_some() {
                    p id="live-status" class="live-status" role="status" aria-live="polite" { "Connecting to live updates…" }
                }
                main id="main" tabindex="-1" { (content) }
            }
        }
    }
}

pub(crate) fn error_page(session: Option<&Session>, status: StatusCode, message: &str) -> Page {
    let title = status.canonical_reason().unwrap_or("Error");
    Page::Html(
        status,
        layout(
            title,
            session,
            None,
            html! {
                h1 { (title) }
                p class="error" role="alert" { (message) }
                p { a href="/" { "Back to the board" } }
            },
        ),
    )
}

/// The sign-in page: single sign-on when configured, the token form unless turned off.
fn sign_in_form(state: &AppState, next: &str, error: Option<&str>) -> Markup {
    let sso_link = state.sso.is_some().then(|| {
        let query: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
        format!("{}?{query}", super::sso::START_PATH)
    });
    layout(
        "Sign in",
        None,
        None,
        html! {
            h1 { "Sign in to golive" }
            @if let Some(error) = error {
                p class="error" role="alert" id="signin-error" { (error) }
            }
            @if let Some(link) = sso_link {
                p { a class="button" id="sso-sign-in" href=(link) { "Sign in with single sign-on" } }
            }
            @if state.config.token_sign_in {
                p { "Paste an API token (a viewer token is enough to look). Ask an admin for one: "
                    code { "golive token create --role viewer --name you" } }
                form method="post" action="/signin" class="stack" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "API token" }
                    input id="token" name="token" type="password" autocomplete="off" required
                        aria-describedby=[error.map(|_| "signin-error")];
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// The longest `next` followed after signing in; longer ones go to the board.
const NEXT_MAX_CHARS: usize = 1024;

/// Where to go after signing in: one of golive's own pages, or the board.
///
/// `next` comes from the address bar, so it is parsed against the dashboard's routes rather
/// than checked for bad prefixes: browsers read `/\t/host`, `/\\host` and their encodings as
/// another site, and no list of bad spellings is ever complete. The path must be exactly `/`,
/// `/audit`, `/insights` or `/integrations/<uuid>`; a query string may follow when it holds
/// only characters that need no interpretation (letters, digits and `-._~=&%+:,`). Anything
/// else answers `/`.
pub(crate) fn safe_next(next: &str) -> String {
    let fallback = || "/".to_owned();
    if next.len() > NEXT_MAX_CHARS {
        return fallback();
    }
    let (path, query) = match next.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (next, None),
    };
    let own_page = match path {
        "/" | "/audit" | "/insights" | "/subscriptions" => true,
        _ => path
            .strip_prefix("/integrations/")
            .is_some_and(|id| uuid::Uuid::try_parse(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)),
    };
    let query_safe =
        query.is_none_or(|query| query.chars().all(|c| c.is_ascii_alphanumeric() || "-._~=&%+:,".contains(c)));
    if own_page && query_safe {
        next.to_owned()
    } else {
        fallback()
    }
}

async fn sign_in_page(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Page {
    let next = safe_next(query.get("next").map(String::as_str).unwrap_or("/"));
    Page::Html(StatusCode::OK, sign_in_form(&state, &next, None))
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if !state.config.token_sign_in {
        state.metrics.sign_in(SignInMethod::Token, SignInOutcome::Disabled);
        let message = "Signing in with an API token is turned off on this server: sign in with single sign-on. \
                       API tokens still work for the API and the CLI.";
        return Page::Html(StatusCode::FORBIDDEN, sign_in_form(&state, "/", Some(message))).into_response();
    }
    if !same_origin(&headers) {
        return Page::Html(StatusCode::FORBIDDEN, sign_in_form(&state, "/", Some("Sign in from golive's own page.")))
            .into_response();
    }
    let fields = match form_fields(body).await {
        Ok(fields) => fields,
        Err(problem) => return error_page(None, problem.status, &problem.detail).into_response(),
    };
    let next = safe_next(field(&fields, "next"));
    let token = field(&fields, "token").trim();
    match session::sign_in(&state, token).await {
        Ok(Some(id)) => {
            state.metrics.sign_in(SignInMethod::Token, SignInOutcome::SignedIn);
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&state, &id));
            response
        }
        Ok(None) => {
            state.metrics.sign_in(SignInMethod::Token, SignInOutcome::Refused);
            Page::Html(
                StatusCode::UNAUTHORIZED,
                sign_in_form(&state, &next, Some("That token is unknown or revoked. Check it and try again.")),
            )
            .into_response()
        }
        Err(problem) => error_page(None, problem.status, &problem.detail).into_response(),
    }
}

async fn sign_out(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page.into_response(),
    };
    let fields = match form_fields(body).await {
        Ok(fields) => fields,
        Err(problem) => return error_page(Some(&session), problem.status, &problem.detail).into_response(),
    };
    if let Err(page) = check_form(&parts.headers, &session, &fields) {
        return page.into_response();
    }
    if let Err(problem) = session.end(&state).await {
        return error_page(Some(&session), problem.status, &problem.detail).into_response();
    }
    let mut response = Redirect::to("/signin").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie());
    response
}
