//! The JSON API handlers under `/api/v1`.

use crate::error_kind::ErrorKind;
use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::stream::Stream;
use serde_json::{json, Value};

use super::{json_body, AppState, Principal, Problem};
use crate::auth::{AuthError, Role, Tokens};
use crate::domain::{IntegrationId, SecretKind};
use crate::engine::{ExecuteRequest, Executed};
use crate::views;

type Params = Query<HashMap<String, String>>;

use super::queries::{number, only};

fn integration_id(text: &str) -> Result<IntegrationId, Problem> {
    IntegrationId::parse(text).map_err(|_| Problem::not_found(format!("no integration {text:?}")))
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits are a valid header")
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let key = value
                .to_str()
                .map_err(|_| Problem::new(ErrorKind::InvalidHeader, "Idempotency-Key must be visible ASCII"))?;
            if key.is_empty() || key.len() > 200 {
                return Err(Problem::new(ErrorKind::InvalidHeader, "Idempotency-Key must be 1 to 200 characters"));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim();
            if text == "*" {
                return Ok(None);
            }
            let digits = text.trim_start_matches("W/").trim_matches('"');
            digits.parse().map(Some).map_err(|_| {
                Problem::new(ErrorKind::InvalidHeader, format!("If-Match {text:?}: expected an ETag such as \"7\""))
            })
        }
    }
}

fn executed_response(state: &AppState, executed: Executed, status: StatusCode) -> Response {
    let view = views::state(&executed.state, state.engine.now());
    let body = views::executed(view, &executed.events, &executed.shown, executed.replayed);
    let shows_a_secret = body.get("secret_token").is_some_and(|t| !t.is_null());
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag(executed.state.version));
    if shows_a_secret {
        // A token shown once must not be kept by a cache on the way.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if status == StatusCode::CREATED {
        let location = format!("/api/v1/integrations/{}", executed.state.id);
        response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a path"));
    }
    response
}

pub async fn open(State(state): State<AppState>, principal: Principal, request: Request) -> Result<Response, Problem> {
    principal.require(Role::Rep)?;
    let key = idempotency_key(request.headers())?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    // A rep opens from the admin's playbooks only: a playbook of the rep's own would let the
    // rep choose the redirect URI the customer's intake page asks the customer to register.
    // An admin may still send one inline: the admin could register it anyway, and the whole
    // playbook is recorded in `integration_opened` under the admin's name.
    if principal.role < Role::Admin {
        if let Some(field) = crate::domain::playbook_fields_in(&body) {
            return Err(Problem::new(
                ErrorKind::PlaybookFieldsForbidden,
                format!(
                    "{field}: a rep opens an integration with a registered playbook (playbook_id, optionally \
                     playbook_version) or the default; only an admin may send a playbook's fields"
                ),
            )
            .with(json!({"field": field})));
        }
    }
    let executed = state.engine.open_integration(body, &principal.actor, key.as_deref()).await?;
    // The contract answers the state itself (`id` at the top), unlike a command's
    // `{state, events}`: the events are in the integration's history.
    let mut response = (StatusCode::CREATED, Json(views::state(&executed.state, state.engine.now()))).into_response();
    response.headers_mut().insert(header::ETAG, etag(executed.state.version));
    let location = format!("/api/v1/integrations/{}", executed.state.id);
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a path"));
    Ok(response)
}

pub async fn list(State(state): State<AppState>, _who: Principal, Query(params): Params) -> Result<Response, Problem> {
    let filter = super::queries::list_filter(&params)?;
    let Some((limit, after)) = super::queries::list_paging(&params)? else {
        return Ok(Json(json!(state.engine.list(&filter).await?)).into_response());
    };
    // A cursor the engine cannot read is a bad query parameter, like every other one here.
    let page = state.engine.list_page(&filter, after.as_deref(), limit).await.map_err(|error| match error {
        crate::engine::EngineError::Rejected(crate::domain::Rejection::InvalidField { field, message })
            if field == "after" =>
        {
            Problem::new(ErrorKind::InvalidQuery, format!("after: {message}")).with(json!({"field": "after"}))
        }
        other => Problem::from(other),
    })?;
    let mut response = Json(json!(page.items)).into_response();
    if let Some(next) = page.next_after {
        // The next page keeps this one's filters and limit.
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let mut filters: Vec<(&String, &String)> =
            params.iter().filter(|(k, _)| !matches!(k.as_str(), "after" | "limit")).collect();
        filters.sort();
        for (key, value) in filters {
            query.append_pair(key, value);
        }
        query.append_pair("limit", &limit.to_string());
        query.append_pair("after", &next);
        let link = format!("</api/v1/integrations?{}>; rel=\"next\"", query.finish());
        response.headers_mut().insert(header::LINK, HeaderValue::from_str(&link).expect("an encoded query"));
    }
    Ok(response)
}

pub async fn get_state(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let current = state.engine.state(integration_id(&id)?).await?;
    let mut response = Json(views::state(&current, state.engine.now())).into_response();
    response.headers_mut().insert(header::ETAG, etag(current.version));
    Ok(response)
}

pub async fn command(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Rep)?;
    let id = integration_id(&id)?;
    let key = idempotency_key(request.headers())?;
    let expected = if_match(request.headers())?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    // Moving where customers' GitLab sends webhooks and secrets is the operator's decision, not
    // a rep's: a rep with a valid token could otherwise point an integration at a host of theirs.
    if body.get("type").and_then(Value::as_str) == Some("change_public_url") {
        principal.require(Role::Admin)?;
    }
    let mut execute = ExecuteRequest::new(id, body, principal.actor.clone());
    execute.idempotency_key = key;
    execute.expected_version = expected;
    let executed = state.engine.execute(execute).await?;
    Ok(executed_response(&state, executed, StatusCode::OK))
}

pub async fn history(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let (after, limit) = super::queries::page(&params)?;
    let id = integration_id(&id)?;
    let events = state.engine.history(id, after, limit + 1).await?;
    let more = events.len() > limit;
    let events: Vec<_> = events.into_iter().take(limit).collect();
    let next_after = if more { events.last().map(|e| e.version) } else { None };
    Ok(Json(json!({"events": events, "next_after": next_after})).into_response())
}

pub async fn state_at(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    let at = super::queries::as_of(&params)?;
    let past = state.engine.state_at(integration_id(&id)?, at).await?;
    let mut response = Json(views::state(&past, state.engine.now())).into_response();
    response.headers_mut().insert(header::ETAG, etag(past.version));
    Ok(response)
}

pub async fn diagnose(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    Ok(Json(json!(state.engine.diagnose(integration_id(&id)?).await?)).into_response())
}

pub async fn shred(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let executed = state.engine.shred(integration_id(&id)?, &principal.actor).await?;
    Ok(executed_response(&state, executed, StatusCode::OK))
}

pub async fn probe(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Rep)?;
    let (executed, mut found) = state
        .engine
        .probe(integration_id(&id)?, &crate::gitlab::probe::ProbeConfig::default(), &principal.actor)
        .await?;
    if let Some(map) = found.as_object_mut() {
        map.remove("type");
        map.insert("version".into(), json!(executed.state.version));
    }
    let mut response = Json(found).into_response();
    response.headers_mut().insert(header::ETAG, etag(executed.state.version));
    Ok(response)
}

/// `POST /api/v1/integrations/{id}/checks`: starts a run of checks through GitLab's API and
/// answers 202 with its id; progress and results arrive as events on the integration's stream.
pub async fn start_check(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Rep)?;
    let id = integration_id(&id)?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    let check = crate::engine::CheckRequest::from_json(body).map_err(crate::engine::EngineError::Rejected)?;
    // A scenario run writes to the customer's GitLab beyond test deliveries: admins only.
    if check.checks.contains(&crate::domain::CheckKind::Scenarios) {
        principal.require(Role::Admin)?;
    }
    let started = state.engine.start_check(id, check, &principal.actor).await?;
    let names = |checks: &std::collections::BTreeSet<crate::domain::CheckKind>| {
        checks.iter().map(|c| c.as_str()).collect::<Vec<_>>()
    };
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({
            "check_id": started.check_id,
            "integration_id": id,
            "checks": names(&started.checks),
            "skipped": names(&started.skipped),
            "state": format!("/api/v1/integrations/{id}"),
            "events": format!("/api/v1/integrations/{id}/history"),
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/api/v1/integrations/{id}")).expect("an id is a valid header value"),
    );
    Ok(response)
}

pub async fn reveal(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let id = integration_id(&id)?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    let kind: SecretKind =
        serde_json::from_value(body.get("secret").cloned().unwrap_or(Value::Null)).map_err(|_| {
            Problem::new(
                ErrorKind::InvalidField,
                "secret: one of application_secret, access_token, webhook_signing_key",
            )
            .with(json!({"field": "secret"}))
        })?;
    let plaintext = state.engine.reveal(id, kind, &principal.actor).await?;
    let mut response = Json(json!({"secret": plaintext})).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /api/v1/integrations/{id}/intake-links` (rep): a one-time link for the customer's
/// intake form, `{url, link_id, expires_at, version}`; the URL is shown only in this answer.
pub async fn create_intake_link(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Rep)?;
    let id = integration_id(&id)?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    let Some(fields) = body.as_object() else {
        return Err(Problem::new(
            ErrorKind::MalformedJson,
            "the body must be a JSON object, e.g. {\"expires_in_hours\": 72}",
        ));
    };
    // As for commands: a field golive does not know is refused, never silently ignored.
    if let Some(unknown) = fields.keys().find(|k| *k != "expires_in_hours") {
        return Err(
            Problem::new(ErrorKind::InvalidField, format!("{unknown}: unknown field")).with(json!({"field": unknown}))
        );
    }
    let hours = match body.get("expires_in_hours") {
        None | Some(Value::Null) => DEFAULT_INTAKE_LINK_HOURS,
        Some(value) => value
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .filter(|h| (1..=crate::domain::INTAKE_LINK_MAX_HOURS).contains(h))
            .ok_or_else(|| {
                Problem::new(
                    ErrorKind::InvalidField,
                    format!(
                        "expires_in_hours: a whole number of hours from 1 to {}",
                        crate::domain::INTAKE_LINK_MAX_HOURS
                    ),
                )
                .with(json!({"field": "expires_in_hours"}))
            })?,
    };
    let issued = state.engine.issue_intake_link(id, hours, &principal.actor).await?;
    let mut response = (StatusCode::CREATED, Json(crate::views::intake_link_issued(&issued))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::ETAG, etag(issued.executed.state.version));
    Ok(response)
}

/// The lifetime of an intake link when the caller names none: three days, a customer's
/// working week end to end without leaving a link open for long.
pub const DEFAULT_INTAKE_LINK_HOURS: u32 = 72;

pub async fn board(State(state): State<AppState>, _who: Principal) -> Result<Response, Problem> {
    Ok(Json(json!(state.engine.board().await?)).into_response())
}

pub async fn insights(State(state): State<AppState>, _who: Principal) -> Result<Response, Problem> {
    Ok(Json(json!(state.engine.insights().await?)).into_response())
}

pub async fn calendar(State(state): State<AppState>, _who: Principal) -> Result<Response, Problem> {
    Ok(Json(json!(state.engine.calendar().await?)).into_response())
}

pub async fn audit(State(state): State<AppState>, _who: Principal, Query(params): Params) -> Result<Response, Problem> {
    let query = super::queries::audit_query(&params)?;
    Ok(Json(json!(state.engine.audit(&query).await?)).into_response())
}

pub async fn stream(
    State(state): State<AppState>,
    _who: Principal,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    only(&params, &["after"])?;
    let resume: Option<u64> = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Problem::new(ErrorKind::InvalidHeader, "Last-Event-ID must be a position"))?,
        ),
        None => None,
    };
    let after = resume.or(number(&params, "after")?).unwrap_or(0);
    // A position past the head was never handed out (positions become visible only once
    // committed, on every replica): resuming there would wait for events that may never come.
    let head = state.engine.store().head().await.map_err(crate::engine::EngineError::from)?.position;
    if after > head {
        return Err(Problem::new(
            ErrorKind::InvalidQuery,
            format!("position {after} is beyond the log's last position {head}; resume from a position you received"),
        )
        .with(json!({"field": "after", "head": head})));
    }
    let subscription = state.engine.subscribe(after);
    let open = state.metrics.stream_opened();
    let stream = futures::stream::unfold((subscription, open), |(mut subscription, open)| async move {
        match subscription.next().await {
            Ok(event) => {
                let data = serde_json::to_string(&event).expect("envelopes serialize");
                let sse = SseEvent::default().id(event.position.to_string()).event(event.event_type.clone()).data(data);
                Some((Ok(sse), (subscription, open)))
            }
            Err(_) => None,
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn verify(
    State(state): State<AppState>,
    _who: Principal,
    Query(params): Params,
) -> Result<Response, Problem> {
    only(&params, &["expect"])?;
    Ok(Json(json!(state.engine.verify(params.get("expect").map(String::as_str)).await?)).into_response())
}

pub async fn export(State(state): State<AppState>, principal: Principal) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let engine = state.engine.clone();
    let stream = futures::stream::unfold(Some(0u64), move |after| {
        let engine = engine.clone();
        async move {
            let after = after?;
            match engine.export_page(after, 2000).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let last = page.last().map(|e| e.position);
                    let mut chunk = String::new();
                    for event in &page {
                        chunk.push_str(&serde_json::to_string(event).expect("envelopes serialize"));
                        chunk.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), last))
                }
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
            }
        }
    });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(response)
}

fn auth_problem(error: AuthError) -> Problem {
    match error {
        AuthError::NameTaken(_) => Problem::new(ErrorKind::TokenNameTaken, error.to_string()),
        AuthError::NoSuchToken(_) => Problem::not_found(error.to_string()),
        AuthError::InvalidName(_) => {
            Problem::new(ErrorKind::InvalidField, error.to_string()).with(json!({"field": "name"}))
        }
        AuthError::Store(e) => Problem::from(crate::engine::EngineError::Store(e)),
    }
}

pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::new(ErrorKind::InvalidField, "name: required").with(json!({"field": "name"})))?;
    let role = body.get("role").and_then(Value::as_str).and_then(Role::parse).ok_or_else(|| {
        Problem::new(ErrorKind::InvalidField, "role: one of admin, rep, viewer").with(json!({"field": "role"}))
    })?;
    if let Some(unknown) = body.as_object().and_then(|m| m.keys().find(|k| !matches!(k.as_str(), "name" | "role"))) {
        return Err(
            Problem::new(ErrorKind::InvalidField, format!("{unknown}: not a field")).with(json!({"field": unknown}))
        );
    }
    let token = Tokens::with_clock(state.engine.store().as_ref(), state.engine.clock())
        .create(name, role, principal.actor.as_str())
        .await
        .map_err(auth_problem)?;
    state.tokens.invalidate().await;
    let mut response = (StatusCode::CREATED, Json(json!({"name": name, "role": role, "token": token}))).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn list_tokens(State(state): State<AppState>, principal: Principal) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    Ok(Json(json!(Tokens::with_clock(state.engine.store().as_ref(), state.engine.clock())
        .list()
        .await
        .map_err(auth_problem)?))
    .into_response())
}

pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    Tokens::with_clock(state.engine.store().as_ref(), state.engine.clock())
        .revoke(&name)
        .await
        .map_err(auth_problem)?;
    state.tokens.invalidate().await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn revoke_token_query(
    state: State<AppState>,
    principal: Principal,
    Query(params): Params,
) -> Result<Response, Problem> {
    let name = params
        .get("name")
        .cloned()
        .ok_or_else(|| Problem::new(ErrorKind::InvalidQuery, "name=<token name> is required"))?;
    revoke_token(state, principal, Path(name)).await
}

fn playbook_problem(error: crate::engine::PlaybookError) -> Problem {
    use crate::engine::PlaybookError;
    match error {
        PlaybookError::VersionTaken { .. } => Problem::new(ErrorKind::PlaybookVersionTaken, error.to_string()),
        PlaybookError::NotFound(_) => Problem::not_found(error.to_string()),
        PlaybookError::Engine(error) => Problem::from(error),
    }
}

fn playbook_id(text: &str) -> Result<crate::domain::PlaybookId, Problem> {
    crate::domain::PlaybookId::parse(text).map_err(|_| Problem::not_found(format!("no playbook {text:?}")))
}

/// `POST /api/v1/playbooks` (admin): registers a playbook version; 201 when new, 200 when the
/// same version with the same body was registered before, 409 when it was with another body.
pub async fn register_playbook(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let body = json_body(request, state.config.max_body_bytes).await?;
    let registration = state.engine.register_playbook(body, &principal.actor).await.map_err(playbook_problem)?;
    let (status, record) = match registration {
        crate::engine::Registration::Created(record) => (StatusCode::CREATED, record),
        crate::engine::Registration::AlreadyRegistered(record) => (StatusCode::OK, record),
    };
    let location = format!("/api/v1/playbooks/{}?version={}", record.playbook.id, record.playbook.version);
    let mut response = (status, Json(json!(record))).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a slug and digits"));
    Ok(response)
}

/// `GET /api/v1/playbooks`: the server's default and every registered version.
pub async fn list_playbooks(State(state): State<AppState>, _who: Principal) -> Result<Response, Problem> {
    let registered = state.engine.playbooks().await?;
    Ok(Json(json!({"default": state.engine.config().default_playbook, "playbooks": registered})).into_response())
}

/// `GET /api/v1/playbooks/{id}[?version=N]`: one registered version, the latest by default.
pub async fn get_playbook(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<String>,
    Query(params): Params,
) -> Result<Response, Problem> {
    only(&params, &["version"])?;
    let id = playbook_id(&id)?;
    let version = match number::<u64>(&params, "version")? {
        None => None,
        Some(version) => Some(u32::try_from(version).ok().filter(|v| *v >= 1).ok_or_else(|| {
            Problem::new(ErrorKind::InvalidQuery, "version: a whole number from 1 to 4294967295")
                .with(json!({"field": "version"}))
        })?),
    };
    let reference = crate::domain::PlaybookRef { id, version };
    let found = state.engine.registered_playbook(&reference).await.map_err(playbook_problem)?;
    Ok(Json(json!(found)).into_response())
}
