//! `POST /hooks/gitlab/{id}`: GitLab's deliveries, authenticated by their own token.
//!
//! Nothing is read before it is authenticated: an unknown integration (404) and a missing or
//! wrong token (401) are answered from the headers alone, and the body is never read (a client
//! still sending may see the connection closed). Only then is the body read, within the byte
//! budget (503 with `Retry-After` when it has no room), and its signature checked. An
//! authenticated, well-formed delivery of an event golive does not use is answered 200
//! `{"status": "ignored"}`: counted, stored nowhere (contract: 4xx only for a wrong token, a bad
//! signature or a malformed body).

use crate::error_kind::ErrorKind;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{AppState, Problem};
use crate::domain::IntegrationId;
use crate::engine::{DeliveryError, Received};
use crate::gitlab::webhook::DeliveryHeaders;

/// Marks a delivery answered as a duplicate of one already recorded (for `/metrics`).
#[derive(Clone, Copy)]
struct Duplicate;

/// Marks a delivery of an event golive does not use, answered 2xx and stored nowhere (for
/// `/metrics`).
#[derive(Clone, Copy)]
struct Ignored;

pub async fn receive(State(state): State<AppState>, Path(id): Path<String>, request: Request<Body>) -> Response {
    let kind = request.headers().get("x-gitlab-event").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let response = handle(&state, &id, request).await;
    let duplicate = response.extensions().get::<Duplicate>().is_some();
    let ignored = response.extensions().get::<Ignored>().is_some();
    let outcome = match response.status().as_u16() {
        200 if duplicate => "duplicate",
        200 if ignored => "ignored",
        200 => "recorded",
        401 => "refused",
        413 => "too_large",
        400 => "malformed",
        404 => "unknown_integration",
        503 => "shed",
        _ => "failed",
    };
    state.metrics.delivery(kind.as_deref(), outcome);
    response
}

fn refused(error: DeliveryError) -> Response {
    match error {
        DeliveryError::Refused(refusal) => Problem::new(ErrorKind::WebhookRefused, refusal.to_string()).into_response(),
        DeliveryError::Malformed(malformed) => {
            Problem::new(ErrorKind::MalformedDelivery, malformed.to_string()).into_response()
        }
        DeliveryError::Engine(error) => Problem::from(error).into_response(),
    }
}

async fn handle(state: &AppState, id: &str, request: Request<Body>) -> Response {
    let Ok(id) = IntegrationId::parse(id) else {
        return Problem::not_found(format!("no integration {id:?}")).into_response();
    };
    let (parts, body) = request.into_parts();
    let pairs: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let headers = DeliveryHeaders::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // Step one, headers only: the body is dropped unread if this fails.
    let delivery = match state.engine.authenticate_delivery(id, headers).await {
        Ok(delivery) => delivery,
        Err(error) => return refused(error),
    };
    // Step two: the body, within the byte budget; its reservation is held until answered.
    let declared = super::declared_length(&parts.headers);
    let (body, _reservation) =
        match super::read_delivery_body(state, declared, body, state.config.max_webhook_bytes).await {
            Ok(read) => read,
            Err(problem) => return problem.into_response(),
        };
    match state.engine.record_delivery(delivery, &body).await {
        Ok(Received::Ignored { version }) => {
            // GitLab counts any 4xx as a failure towards disabling the hook: an event golive
            // does not use is acknowledged, counted, and stored nowhere.
            let mut response = (StatusCode::OK, Json(json!({"status": "ignored", "version": version}))).into_response();
            response.extensions_mut().insert(Ignored);
            response
        }
        Ok(Received::Recorded(executed)) => {
            let status = if executed.replayed { "duplicate" } else { "recorded" };
            let mut response =
                (StatusCode::OK, Json(json!({"status": status, "version": executed.state.version}))).into_response();
            if executed.replayed {
                // A resend is counted as what it is, not as another recorded delivery.
                response.extensions_mut().insert(Duplicate);
            }
            response
        }
        Err(error) => refused(error),
    }
}
