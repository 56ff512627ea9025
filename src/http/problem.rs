//! Every error as `application/problem+json` (RFC 9457) with a stable `type`. Only this layer
//! knows status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::domain::Rejection;
use crate::engine::EngineError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub extra: Option<Value>,
    pub retry_after_seconds: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, kind, title, detail: detail.into(), extra: None, retry_after_seconds: None }
    }
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, kind, "Bad request", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Not authenticated", detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", "Role too low", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }
    pub fn too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("the body may be at most {limit} bytes"),
        )
    }
    pub fn overloaded() -> Self {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Overloaded",
            "golive is at capacity; retry shortly",
        );
        p.retry_after_seconds = Some(1);
        p
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": self.kind,
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(Value::Object(extra)) = self.extra {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::InvalidField { field, message } => {
                Problem::bad_request("invalid-field", format!("{field}: {message}")).with(json!({"field": field}))
            }
            Rejection::UnknownType(message) => Problem::bad_request("unknown-command-type", message),
            Rejection::Malformed(message) => Problem::bad_request("malformed-command", message),
            Rejection::GuardRejected { command, unmet } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "guard-rejected",
                "Requirements not met",
                format!("{command} refused: requirements not met"),
            )
            .with(json!({ "unmet": unmet })),
            Rejection::Cancelled => Problem::new(
                StatusCode::CONFLICT,
                "integration-cancelled",
                "Integration cancelled",
                "the integration is cancelled; no command is accepted any more",
            ),
            Rejection::Intake(refusal) => {
                let (status, slug) = match refusal {
                    crate::domain::IntakeRefusal::Unknown => (StatusCode::NOT_FOUND, "intake-link-unknown"),
                    crate::domain::IntakeRefusal::Expired => (StatusCode::GONE, "intake-link-expired"),
                    crate::domain::IntakeRefusal::AlreadyUsed => (StatusCode::GONE, "intake-link-used"),
                    crate::domain::IntakeRefusal::InstanceChanged => (StatusCode::CONFLICT, "intake-instance-changed"),
                };
                Problem::new(status, slug, "Intake link refused", refusal.to_string())
            }
        }
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound(id) => Problem::not_found(format!("no integration {id}")),
            EngineError::Rejected(rejection) => rejection.into(),
            EngineError::VersionMismatch { expected, actual, .. } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Version mismatch",
                format!("If-Match named version {expected}, the integration is at {actual}"),
            )
            .with(json!({"current_version": actual})),
            EngineError::Conflict { .. } => {
                Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", error.to_string())
            }
            EngineError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was already used with a different request",
            ),
            EngineError::NoSuchSecret(id) => Problem::not_found(format!("integration {id} has no such secret")),
            EngineError::Secrets(crate::secrets::SecretsError::Shredded(id)) => {
                Problem::new(StatusCode::GONE, "shredded", "Shredded", format!("the secrets of {id} were shredded"))
            }
            EngineError::Store(
                ref cause @ (crate::store::StoreError::Poisoned(_) | crate::store::StoreError::Storage(_)),
            ) => {
                // The cause is the storage's own message (an OS error, a database error): it
                // names what failed, never a request's content.
                tracing::error!(error = %cause, "storage failure");
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage-unavailable",
                    "Storage unavailable",
                    format!(
                        "the command was not acknowledged ({cause}); retry it with the same Idempotency-Key, \
                         which records it at most once; reads still work"
                    ),
                );
                p.retry_after_seconds = Some(5);
                p
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Problem::internal("an internal error occurred; it was logged")
            }
        }
    }
}
