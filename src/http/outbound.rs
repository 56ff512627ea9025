//! The API of golive's outbound side: event subscriptions (admins), notification rules
//! (admins add and remove, reps read) and an integration's notification journal (any reader).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use super::problem::Problem;
use super::{json_body, AppState, Principal};
use crate::auth::Role;
use crate::domain::IntegrationId;
use crate::engine::{NewRule, NewSubscription};
use crate::error_kind::ErrorKind;

/// Reads a JSON body into `T`, naming the field at fault.
async fn typed_body<T: DeserializeOwned>(state: &AppState, request: Request<Body>) -> Result<T, Problem> {
    let body = json_body(request, state.config.max_body_bytes).await?;
    if !body.is_object() {
        return Err(Problem::new(ErrorKind::InvalidField, "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(|error| {
        let field = error.path().to_string();
        let message = error.inner().to_string();
        Problem::new(ErrorKind::InvalidField, format!("{field}: {message}")).with(json!({"field": field}))
    })
}

fn uuid_of(text: &str, what: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(text).map_err(|_| Problem::not_found(format!("no {what} {text:?}")))
}

/// `POST /api/v1/subscriptions` → 201 with the subscription and its secret (shown once).
pub async fn add_subscription(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let new: NewSubscription = typed_body(&state, request).await?;
    let added = state.engine.add_subscription(new, &principal.actor).await?;
    let location = format!("/api/v1/subscriptions/{}", added.subscription.id);
    let mut response = (StatusCode::CREATED, Json(json!(added))).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a UUID path"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub async fn list_subscriptions(State(state): State<AppState>, principal: Principal) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    Ok(Json(json!(state.engine.subscriptions().await?)).into_response())
}

pub async fn get_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    Ok(Json(json!(state.engine.subscription(uuid_of(&id, "subscription")?).await?)).into_response())
}

pub async fn remove_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    state.engine.remove_subscription(uuid_of(&id, "subscription")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn pause_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    Ok(Json(json!(state.engine.pause_subscription(uuid_of(&id, "subscription")?).await?)).into_response())
}

pub async fn resume_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    Ok(Json(json!(state.engine.resume_subscription(uuid_of(&id, "subscription")?).await?)).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Replay {
    from_position: u64,
}

pub async fn replay_subscription(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let id = uuid_of(&id, "subscription")?;
    let replay: Replay = typed_body(&state, request).await?;
    Ok(Json(json!(state.engine.replay_subscription(id, replay.from_position).await?)).into_response())
}

/// `POST /api/v1/notification-rules` → 201 with the rule (a Slack URL shown only by its host).
pub async fn add_rule(
    State(state): State<AppState>,
    principal: Principal,
    request: Request,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    let new: NewRule = typed_body(&state, request).await?;
    let rule = state.engine.add_notification_rule(new, &principal.actor).await?;
    let location = format!("/api/v1/notification-rules/{}", rule.id);
    let mut response = (StatusCode::CREATED, Json(json!(rule))).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("a UUID path"));
    Ok(response)
}

pub async fn list_rules(State(state): State<AppState>, principal: Principal) -> Result<Response, Problem> {
    principal.require(Role::Rep)?;
    Ok(Json(json!(state.engine.notification_rules().await?)).into_response())
}

pub async fn remove_rule(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    principal.require(Role::Admin)?;
    state.engine.remove_notification_rule(uuid_of(&id, "notification rule")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/integrations/{id}/notifications`: the integration's notification journal.
pub async fn journal(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = IntegrationId::parse(&id).map_err(|_| Problem::not_found(format!("no integration {id:?}")))?;
    let entries: Value = json!(state.engine.notification_journal(id).await?);
    Ok(Json(entries).into_response())
}
