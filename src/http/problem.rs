//! Every error as `application/problem+json` (RFC 9457) with a stable `type`. Only this layer
//! knows status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::domain::Rejection;
use crate::engine::EngineError;
use crate::error_kind::ErrorKind;

#[derive(Debug)]
pub struct Problem {
    pub kind: ErrorKind,
    pub status: StatusCode,
    pub detail: String,
    pub extra: Option<Value>,
    pub retry_after_seconds: Option<u32>,
}

impl Problem {
    /// A problem of `kind`: its status, `type` and title come from the one table.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(kind.status()).expect("the table holds valid status codes");
        Problem { kind, status, detail: detail.into(), extra: None, retry_after_seconds: None }
    }
    pub fn with(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(ErrorKind::Unauthorized, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(ErrorKind::Forbidden, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(ErrorKind::NotFound, detail)
    }
    pub fn too_large(limit: usize) -> Self {
        Problem::new(ErrorKind::PayloadTooLarge, format!("the body may be at most {limit} bytes"))
    }
    pub fn overloaded() -> Self {
        Problem::new(ErrorKind::Overloaded, "golive is at capacity; retry shortly").retry_after(1)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(ErrorKind::Internal, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": self.kind.problem_type(),
            "title": self.kind.title(),
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
        Problem::from(EngineError::Rejected(rejection))
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        let kind = error.kind();
        match error {
            EngineError::NotFound(id) => Problem::not_found(format!("no integration {id}")),
            EngineError::Rejected(Rejection::InvalidField { field, message }) => {
                Problem::new(kind, format!("{field}: {message}")).with(json!({"field": field}))
            }
            EngineError::Rejected(Rejection::GuardRejected { command, unmet }) => {
                Problem::new(kind, format!("{command} refused: requirements not met")).with(json!({ "unmet": unmet }))
            }
            EngineError::Rejected(Rejection::UnknownType(message) | Rejection::Malformed(message)) => {
                Problem::new(kind, message)
            }
            EngineError::Rejected(rejection @ (Rejection::Cancelled | Rejection::Intake(_))) => {
                Problem::new(kind, rejection.to_string())
            }
            EngineError::VersionMismatch { expected, actual, .. } => {
                Problem::new(kind, format!("If-Match named version {expected}, the integration is at {actual}"))
                    .with(json!({"current_version": actual}))
            }
            EngineError::NoSuchSecret(id) => Problem::new(kind, format!("integration {id} has no such secret")),
            EngineError::NoSuchSubscription(id) => Problem::not_found(format!("no subscription {id}")),
            EngineError::NoSuchRule(id) => Problem::not_found(format!("no notification rule {id}")),
            // The rest is told by its kind alone: the wire never looks inside the store's or
            // the keystore's errors.
            _ if kind == ErrorKind::Conflict => Problem::new(kind, error.to_string()),
            _ if kind == ErrorKind::IdempotencyKeyReused => {
                Problem::new(kind, "this Idempotency-Key was already used with a different request")
            }
            _ if kind == ErrorKind::Shredded => Problem::new(kind, error.to_string()),
            cause if kind == ErrorKind::StorageUnavailable => {
                // The cause is the storage's own message (an OS error, a database error): it
                // names what failed, never a request's content.
                tracing::error!(error = %cause, "storage failure");
                Problem::new(
                    kind,
                    format!(
                        "the command was not acknowledged ({cause}); retry it with the same Idempotency-Key, \
                         which records it at most once; reads still work"
                    ),
                )
                .retry_after(5)
            }
            _ if kind == ErrorKind::StoreLocked => {
                Problem::new(kind, "the data directory is in use by another golive process")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Problem::internal("an internal error occurred; it was logged")
            }
        }
    }
}
