//! `POST /hooks/gitlab/{id}`: GitLab's deliveries, authenticated by their own token.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{AppState, Problem};
use crate::domain::IntegrationId;
use crate::engine::DeliveryError;
use crate::gitlab::webhook::DeliveryHeaders;

pub async fn receive(State(state): State<AppState>, Path(id): Path<String>, request: Request<Body>) -> Response {
    let kind = request.headers().get("x-gitlab-event").and_then(|v| v.to_str().ok()).unwrap_or("unknown").to_owned();
    let response = handle(&state, &id, request).await;
    let outcome = match response.status().as_u16() {
        200 => "recorded",
        401 => "refused",
        413 => "too_large",
        400 => "malformed",
        404 => "unknown_integration",
        _ => "failed",
    };
    state.metrics.delivery(&kind, outcome);
    response
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
    let limit = state.config.max_webhook_bytes;
    let body = match super::read_bounded(body, limit).await {
        Ok(bytes) => bytes,
        Err(problem) => return problem.into_response(),
    };
    match state.engine.receive_webhook(id, &headers, &body).await {
        Ok(executed) => {
            let status = if executed.replayed { "duplicate" } else { "recorded" };
            (StatusCode::OK, Json(json!({"status": status, "version": executed.state.version}))).into_response()
        }
        Err(DeliveryError::Refused(refusal)) => {
            Problem::new(StatusCode::UNAUTHORIZED, "webhook-refused", "Delivery refused", refusal.to_string())
                .into_response()
        }
        Err(DeliveryError::Malformed(malformed)) => {
            Problem::bad_request("malformed-delivery", malformed.to_string()).into_response()
        }
        Err(DeliveryError::Engine(error)) => Problem::from(error).into_response(),
    }
}
