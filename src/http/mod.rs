//! The HTTP service: the JSON API under `/api/v1`, the GitLab webhook receiver, the live event
//! stream, health, metrics, the OpenAPI document, the dashboard and its single sign-on.
//! [`router`] gives embedders an axum `Router`; [`serve`] runs it on a listener with graceful
//! shutdown.

mod api;
mod auth;
mod body_budget;
mod dashboard;
mod hooks;
mod metrics;
pub mod openapi;
mod outbound;
pub(crate) mod problem;
pub mod queries;
mod session;
mod sso;
mod unique_keys;

use crate::error_kind::ErrorKind;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use auth::Principal;
pub use dashboard::intake::intake_form_from_body;
pub use metrics::Metrics;
pub use problem::Problem;
pub use sso::{OidcIssuer, RoleClaim, RoleMapping, SsoConfig, SsoError};

use crate::engine::Engine;

/// Limits and knobs of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest API request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest webhook delivery, in bytes (GitLab's own limit).
    pub max_webhook_bytes: usize,
    /// A request taking longer is answered 503.
    pub request_timeout: Duration,
    /// API requests served at once before shedding (503 + Retry-After).
    pub api_concurrency: usize,
    /// Webhook deliveries served at once: a larger pool, so deliveries are refused last
    /// (GitLab disables a hook after 4 consecutive failures).
    pub webhook_concurrency: usize,
    /// A request body that takes longer than this to arrive is answered 408 (slow-body
    /// clients would otherwise hold a permit and a connection).
    pub body_read_timeout: Duration,
    /// Request bodies held in memory at once, across every connection, in bytes. A request
    /// that cannot get its bytes is answered 503 with `Retry-After`; API bodies may hold at
    /// most half, so deliveries are refused last.
    pub body_budget_bytes: usize,
    /// Single sign-on with the operator's OpenID provider for the dashboard (off when `None`).
    pub sso: Option<SsoConfig>,
    /// Whether people may sign in to the dashboard with an API token. Off, the sign-in page
    /// offers single sign-on only; bearer tokens keep working for the API and the CLI.
    pub token_sign_in: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1024 * 1024,
            max_webhook_bytes: crate::gitlab::webhook::MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(30),
            api_concurrency: 512,
            webhook_concurrency: 2048,
            body_read_timeout: Duration::from_secs(10),
            body_budget_bytes: 64 * 1024 * 1024,
            sso: None,
            token_sign_in: true,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub config: Arc<HttpConfig>,
    pub metrics: Arc<Metrics>,
    tokens: Arc<auth::TokenCache>,
    api_permits: Arc<Semaphore>,
    webhook_permits: Arc<Semaphore>,
    body_budget: Arc<body_budget::BodyBudget>,
    sso: Option<Arc<sso::SsoService>>,
}

/// The whole HTTP API as an axum router, for embedding.
///
/// Panics when single sign-on is configured and the engine's public URL cannot carry its
/// callback path (the public URL is checked long before, so this is a programming error).
pub fn router(engine: Engine, config: HttpConfig) -> Router {
    let body_read_timeout = config.body_read_timeout;
    let sso = config.sso.clone().map(|sso| {
        let public_url = engine.config().public_url.as_str().to_owned();
        Arc::new(sso::SsoService::new(sso, &public_url).expect("the public URL takes the single sign-on callback path"))
    });
    let state = AppState {
        sso,
        engine,
        api_permits: Arc::new(Semaphore::new(config.api_concurrency)),
        webhook_permits: Arc::new(Semaphore::new(config.webhook_concurrency)),
        body_budget: Arc::new(body_budget::BodyBudget::new(config.body_budget_bytes)),
        config: Arc::new(config),
        metrics: Arc::new(Metrics::default()),
        tokens: Arc::new(auth::TokenCache::default()),
    };
    let api = Router::new()
        .route("/api/v1/integrations", post(api::open).get(api::list))
        .route("/api/v1/integrations/{id}", get(api::get_state))
        .route("/api/v1/integrations/{id}/commands", post(api::command))
        .route("/api/v1/integrations/{id}/history", get(api::history))
        .route("/api/v1/integrations/{id}/state", get(api::state_at))
        .route("/api/v1/integrations/{id}/diagnose", get(api::diagnose))
        .route("/api/v1/integrations/{id}/shred", post(api::shred))
        .route("/api/v1/integrations/{id}/probe", post(api::probe))
        .route("/api/v1/integrations/{id}/checks", post(api::start_check))
        .route("/api/v1/integrations/{id}/intake-links", post(api::create_intake_link))
        .route("/api/v1/integrations/{id}/reveal", post(api::reveal))
        .route("/api/v1/board", get(api::board))
        .route("/api/v1/insights", get(api::insights))
        .route("/api/v1/calendar", get(api::calendar))
        .route("/api/v1/events", get(api::audit))
        .route("/api/v1/events/stream", get(api::stream))
        .route("/api/v1/audit/verify", get(api::verify))
        .route("/api/v1/export", get(api::export))
        .route("/api/v1/playbooks", post(api::register_playbook).get(api::list_playbooks))
        .route("/api/v1/playbooks/{id}", get(api::get_playbook))
        .route("/api/v1/tokens", post(api::create_token).get(api::list_tokens).delete(api::revoke_token_query))
        .route("/api/v1/tokens/{name}", axum::routing::delete(api::revoke_token))
        .route("/api/v1/integrations/{id}/notifications", get(outbound::journal))
        .route("/api/v1/subscriptions", post(outbound::add_subscription).get(outbound::list_subscriptions))
        .route("/api/v1/subscriptions/{id}", get(outbound::get_subscription).delete(outbound::remove_subscription))
        .route("/api/v1/subscriptions/{id}/pause", post(outbound::pause_subscription))
        .route("/api/v1/subscriptions/{id}/resume", post(outbound::resume_subscription))
        .route("/api/v1/subscriptions/{id}/replay", post(outbound::replay_subscription))
        .route("/api/v1/notification-rules", post(outbound::add_rule).get(outbound::list_rules))
        .route("/api/v1/notification-rules/{id}", axum::routing::delete(outbound::remove_rule))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/schemas/events.json", get(openapi::events_document))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard_api));
    let hooks = Router::new()
        .route("/hooks/gitlab/{id}", post(hooks::receive))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard_webhooks));
    Router::new()
        .merge(api)
        .merge(hooks)
        .merge(dashboard::routes(state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(ErrorKind::MethodNotAllowed, "this route does not take that method")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_read_timeout))
        .with_state(state)
}

/// Ready when the store answers reads and still takes writes (a store that stopped writing
/// after a storage failure is not ready, so a load balancer routes elsewhere).
/// Ready when the store takes writes and the read model follows the log closely: a projector
/// that is down or too far behind would serve stale lists.
async fn ready(State(state): State<AppState>) -> Response {
    let store = state.engine.store();
    let outcome = match store.write_health() {
        Ok(()) => store.head().await,
        Err(error) => Err(error),
    };
    let head = match outcome {
        Ok(head) => head,
        Err(error) => return Problem::new(ErrorKind::NotReady, error.to_string()).into_response(),
    };
    let projector = match state.engine.projector_status().await {
        Ok(projector) => projector,
        Err(error) => {
            tracing::error!(%error, "reading the projector's status failed");
            return Problem::new(ErrorKind::NotReady, "the log's head cannot be read").into_response();
        }
    };
    let max_lag = state.engine.config().projector_max_lag;
    // `/readyz` is public: the projector's figures, never its failure's text (which may quote
    // storage paths or an event); that is in the server's log.
    let public = serde_json::json!({
        "up": projector.up,
        "restarts": projector.restarts,
        "checkpoint": projector.checkpoint,
        "lag": projector.lag,
    });
    if !projector.up {
        return Problem::new(
            ErrorKind::NotReady,
            "the read model's projector is down and restarting; the cause is in the server's log",
        )
        .with(serde_json::json!({"projector": public}))
        .into_response();
    }
    if projector.lag > max_lag {
        return Problem::new(
            ErrorKind::NotReady,
            format!("the read model is {} positions behind the log (at most {max_lag} is ready)", projector.lag),
        )
        .with(serde_json::json!({"projector": public}))
        .into_response();
    }
    axum::Json(serde_json::json!({"ready": true, "head": head.position, "projector": public})).into_response()
}

/// Counts requests by route and status, and their latency.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

async fn bounded(permits: &Semaphore, timeout: Duration, request: Request, next: Next) -> Response {
    let Ok(_permit) = permits.try_acquire() else {
        return Problem::overloaded().into_response();
    };
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut p = Problem::new(ErrorKind::Timeout, "the request took too long");
            p.retry_after_seconds = Some(1);
            p.into_response()
        }
    }
}

/// API requests: a permit from the API pool, and their bodies charged to the byte budget as
/// they arrive (the charge is held until the request is answered).
pub(crate) async fn guard_api(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let held = Arc::new(std::sync::Mutex::new(body_budget::Reservation::default()));
    let (parts, body) = request.into_parts();
    let body = body_budget::MeteredBody::wrap(body, state.body_budget.clone(), held.clone());
    let response =
        bounded(&state.api_permits, state.config.request_timeout, Request::from_parts(parts, body), next).await;
    drop(held);
    response
}

async fn guard_webhooks(State(state): State<AppState>, request: Request, next: Next) -> Response {
    bounded(&state.webhook_permits, state.config.request_timeout, request, next).await
}

/// Reads a JSON object body: 415 unless `application/json`, 413 past `limit`, 400 if malformed.
pub(crate) async fn json_body(request: Request<Body>, limit: usize) -> Result<serde_json::Value, Problem> {
    let (parts, body) = request.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(Problem::new(ErrorKind::UnsupportedMediaType, "send Content-Type: application/json"));
    }
    let bytes = read_bounded(body, limit).await?;
    serde_json::from_slice::<unique_keys::UniqueKeys>(&bytes)
        .map_err(|e| Problem::new(ErrorKind::MalformedJson, format!("the body is not valid JSON: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::new(ErrorKind::MalformedJson, format!("the body is not valid JSON: {e}")))
}

/// How much of an oversized body is read and thrown away before answering 413, so a client
/// still sending gets the answer instead of a reset connection.
const DRAIN_MAX_BYTES: usize = 8 * 1024 * 1024;

/// The smallest buffer a body of unknown length starts with.
const FIRST_BUFFER_BYTES: usize = 16 * 1024;

/// Reads a body of at most `limit` bytes; past it, drains a bounded amount and answers 413.
/// Behind [`guard_api`] its bytes are charged to the byte budget as they arrive.
pub(crate) async fn read_bounded(body: Body, limit: usize) -> Result<axum::body::Bytes, Problem> {
    use axum::body::HttpBody;
    let declared = body.size_hint().exact().map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    read_charged(body, declared, limit, |_| true).await
}

/// The body length a request declares with `Content-Length` (Hyper has checked it and yields
/// exactly that many bytes), unless it is sent chunked.
pub(crate) fn declared_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads a webhook delivery's body of at most `limit` bytes, its buffer charged to the byte
/// budget before it is allocated: a declared `Content-Length` all at once (so a delivery is
/// refused before anything is kept, not halfway), a chunked body as its buffer grows (Hyper
/// never yields more than a declared length, so a client that lies about it only truncates its
/// own body). The reservation is given back when the caller drops it, after recording.
pub(crate) async fn read_delivery_body(
    state: &AppState,
    declared: Option<usize>,
    body: Body,
    limit: usize,
) -> Result<(axum::body::Bytes, body_budget::Reservation), Problem> {
    let mut reservation = body_budget::Reservation::default();
    let budget = &state.body_budget;
    let bytes = read_charged(body, declared, limit, |more| {
        budget.try_grow(&mut reservation, body_budget::Claimant::Delivery, more)
    })
    .await?;
    Ok((bytes, reservation))
}

/// The answer to a request whose body found no room in the byte budget.
fn over_budget() -> Problem {
    let mut p = Problem::new(
        ErrorKind::Overloaded,
        "golive holds as many request bodies in memory as its byte budget allows; retry shortly",
    );
    p.retry_after_seconds = Some(1);
    p
}

fn unreadable(error: axum::Error) -> Problem {
    let inner = error.into_inner();
    if inner.downcast_ref::<tower_http::timeout::TimeoutError>().is_some() {
        Problem::new(ErrorKind::RequestTimeout, "the request body did not arrive in time")
    } else if inner.downcast_ref::<body_budget::OverBudget>().is_some() {
        over_budget()
    } else {
        Problem::new(ErrorKind::UnreadableBody, "the body could not be read")
    }
}

/// The size of the frame the byte budget refused, when that is what a body error is (the
/// frame was dropped unkept).
fn refused_frame_bytes(error: &axum::Error) -> Option<usize> {
    std::error::Error::source(error)?.downcast_ref::<body_budget::OverBudget>().map(|refused| refused.0)
}

/// Reads and throws away what is left of a body, up to `total_max` bytes in all, so that the
/// client reads the answer rather than a reset connection. Keeps nothing; frames the budget
/// refused (already thrown away) count as drained.
async fn drain(stream: &mut axum::body::BodyDataStream, mut seen: usize, total_max: usize) {
    use futures::StreamExt;
    while seen <= total_max {
        match stream.next().await {
            Some(Ok(chunk)) => seen += chunk.len(),
            Some(Err(error)) => match refused_frame_bytes(&error) {
                Some(bytes) => seen = seen.saturating_add(bytes.max(1)),
                None => break,
            },
            _ => break,
        }
    }
}

/// Reads a body of at most `limit` bytes into one buffer whose every growth is first granted
/// by `charge` (with the bytes added); refused, the rest is drained and the answer is 503.
async fn read_charged(
    body: Body,
    declared: Option<usize>,
    limit: usize,
    mut charge: impl FnMut(usize) -> bool,
) -> Result<axum::body::Bytes, Problem> {
    use futures::StreamExt;
    let drain_max = limit.saturating_add(DRAIN_MAX_BYTES);
    let mut stream = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    match declared {
        Some(declared) if declared > limit => {
            drain(&mut stream, 0, drain_max).await;
            return Err(Problem::too_large(limit));
        }
        Some(declared) => {
            if !charge(declared) {
                drain(&mut stream, 0, drain_max).await;
                return Err(over_budget());
            }
            kept.reserve_exact(declared);
        }
        None => {}
    }
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) if refused_frame_bytes(&error).is_some() => {
                drop(kept);
                drain(&mut stream, seen, drain_max).await;
                return Err(over_budget());
            }
            Err(error) => return Err(unreadable(error)),
        };
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            drop(kept);
            drain(&mut stream, seen, drain_max).await;
            return Err(Problem::too_large(limit));
        }
        let needed = kept.len() + chunk.len();
        if needed > kept.capacity() {
            // Double (within the limit) so a chunked body costs few copies; the growth is
            // charged before it is allocated.
            let grown = needed.max(kept.capacity().saturating_mul(2)).max(FIRST_BUFFER_BYTES).min(limit);
            if !charge(grown - kept.capacity()) {
                drop(kept);
                drain(&mut stream, seen, drain_max).await;
                return Err(over_budget());
            }
            kept.reserve_exact(grown - kept.len());
        }
        kept.extend_from_slice(&chunk);
    }
    Ok(kept.into())
}

/// Serves `router` on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
