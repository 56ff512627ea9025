//! The one table from error kinds to what each surface says: the HTTP status, the problem
//! `type` and title (RFC 9457), and the CLI's exit code.
//!
//! Every failure golive reports has exactly one [`ErrorKind`]: the engine classifies its errors
//! ([`crate::engine::EngineError::kind`]), the HTTP layer answers the kind's row, the local CLI
//! exits with the row's code, and the remote CLI reads the problem `type` back into the same
//! kind. So a command that fails the same way exits the same way, local or remote; a table test
//! proves it for every kind. The problem types are a stable contract: a row may be added, never
//! renamed.

/// What went wrong, as every surface classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidField,
    InvalidQuery,
    InvalidHeader,
    MalformedJson,
    MalformedCommand,
    MalformedDelivery,
    UnreadableBody,
    UnknownCommandType,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestTimeout,
    Unauthorized,
    WebhookRefused,
    Forbidden,
    PlaybookFieldsForbidden,
    NotFound,
    IntakeLinkUnknown,
    IntegrationCancelled,
    Conflict,
    TokenNameTaken,
    PlaybookVersionTaken,
    IntakeInstanceChanged,
    PreconditionFailed,
    IntakeLinkExpired,
    IntakeLinkUsed,
    Shredded,
    GuardRejected,
    IdempotencyKeyReused,
    StoreLocked,
    StorageUnavailable,
    Overloaded,
    NotReady,
    Timeout,
    Internal,
}

/// One row of [`ERROR_TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRow {
    pub kind: ErrorKind,
    /// The HTTP status code.
    pub status: u16,
    /// The problem `type` (stable).
    pub problem_type: &'static str,
    /// The problem `title`.
    pub title: &'static str,
    /// The CLI's exit code (documented in `golive --help`).
    pub exit_code: u8,
}

/// Exit codes, named: the values are documented in `golive --help`; a code keeps its meaning
/// (which failures map to it is the table's business, and the notes say when that moves).
pub mod exit {
    pub const UNEXPECTED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const REFUSED: u8 = 4;
    pub const CONFLICT: u8 = 5;
    pub const LOCKED: u8 = 6;
    pub const AUTH: u8 = 7;
    pub const VERIFY_FAILED: u8 = 8;
    /// Temporarily unavailable (storage, overload, a timeout): retrying later may succeed.
    pub const RETRY_LATER: u8 = 9;
}

use ErrorKind as K;

const fn row(kind: ErrorKind, status: u16, problem_type: &'static str, title: &'static str, exit_code: u8) -> ErrorRow {
    ErrorRow { kind, status, problem_type, title, exit_code }
}

/// The table. Its order is the order of [`ErrorKind`]; a test checks each kind has one row.
pub const ERROR_TABLE: &[ErrorRow] = &[
    row(K::InvalidField, 400, "invalid-field", "Bad request", exit::REFUSED),
    row(K::InvalidQuery, 400, "invalid-query", "Bad request", exit::REFUSED),
    row(K::InvalidHeader, 400, "invalid-header", "Bad request", exit::REFUSED),
    row(K::MalformedJson, 400, "malformed-json", "Bad request", exit::REFUSED),
    row(K::MalformedCommand, 400, "malformed-command", "Bad request", exit::REFUSED),
    row(K::MalformedDelivery, 400, "malformed-delivery", "Bad request", exit::REFUSED),
    row(K::UnreadableBody, 400, "unreadable-body", "Bad request", exit::REFUSED),
    row(K::UnknownCommandType, 400, "unknown-command-type", "Bad request", exit::REFUSED),
    row(K::MethodNotAllowed, 405, "method-not-allowed", "Method not allowed", exit::REFUSED),
    row(K::PayloadTooLarge, 413, "payload-too-large", "Payload too large", exit::REFUSED),
    row(K::UnsupportedMediaType, 415, "unsupported-media-type", "Unsupported media type", exit::REFUSED),
    row(K::RequestTimeout, 408, "request-timeout", "Request timeout", exit::RETRY_LATER),
    row(K::Unauthorized, 401, "unauthorized", "Not authenticated", exit::AUTH),
    row(K::WebhookRefused, 401, "webhook-refused", "Delivery refused", exit::AUTH),
    row(K::Forbidden, 403, "forbidden", "Role too low", exit::AUTH),
    row(K::PlaybookFieldsForbidden, 403, "playbook-fields-forbidden", "Role too low", exit::AUTH),
    row(K::NotFound, 404, "not-found", "Not found", exit::NOT_FOUND),
    row(K::IntakeLinkUnknown, 404, "intake-link-unknown", "Intake link refused", exit::NOT_FOUND),
    row(K::IntegrationCancelled, 409, "integration-cancelled", "Integration cancelled", exit::CONFLICT),
    row(K::Conflict, 409, "conflict", "Conflict", exit::CONFLICT),
    row(K::TokenNameTaken, 409, "token-name-taken", "Name taken", exit::CONFLICT),
    row(K::PlaybookVersionTaken, 409, "playbook-version-taken", "Playbook version taken", exit::CONFLICT),
    row(K::IntakeInstanceChanged, 409, "intake-instance-changed", "Intake link refused", exit::CONFLICT),
    row(K::PreconditionFailed, 412, "precondition-failed", "Version mismatch", exit::CONFLICT),
    row(K::IntakeLinkExpired, 410, "intake-link-expired", "Intake link refused", exit::REFUSED),
    row(K::IntakeLinkUsed, 410, "intake-link-used", "Intake link refused", exit::REFUSED),
    row(K::Shredded, 410, "shredded", "Shredded", exit::REFUSED),
    row(K::GuardRejected, 422, "guard-rejected", "Requirements not met", exit::REFUSED),
    row(K::IdempotencyKeyReused, 422, "idempotency-key-reused", "Idempotency-Key reused", exit::REFUSED),
    row(K::StoreLocked, 503, "store-locked", "Store locked", exit::LOCKED),
    row(K::StorageUnavailable, 503, "storage-unavailable", "Storage unavailable", exit::RETRY_LATER),
    row(K::Overloaded, 503, "overloaded", "Overloaded", exit::RETRY_LATER),
    row(K::NotReady, 503, "not-ready", "Not ready", exit::RETRY_LATER),
    row(K::Timeout, 503, "timeout", "Timed out", exit::RETRY_LATER),
    row(K::Internal, 500, "internal", "Internal error", exit::UNEXPECTED),
];

impl ErrorKind {
    /// Every kind, in table order.
    pub fn all() -> impl Iterator<Item = ErrorKind> {
        ERROR_TABLE.iter().map(|row| row.kind)
    }

    /// This kind's row.
    pub fn row(self) -> &'static ErrorRow {
        ERROR_TABLE.iter().find(|row| row.kind == self).expect("every kind has a row (checked by a test)")
    }

    pub fn status(self) -> u16 {
        self.row().status
    }

    pub fn problem_type(self) -> &'static str {
        self.row().problem_type
    }

    pub fn title(self) -> &'static str {
        self.row().title
    }

    pub fn exit_code(self) -> u8 {
        self.row().exit_code
    }

    /// The kind a problem `type` names; `None` for a type this build does not know (a newer
    /// server's), which [`ErrorKind::from_status`] then classifies.
    pub fn from_problem_type(problem_type: &str) -> Option<ErrorKind> {
        ERROR_TABLE.iter().find(|row| row.problem_type == problem_type).map(|row| row.kind)
    }

    /// The broadest kind of a status, for answers without a known problem `type` (a proxy's
    /// page, a newer server's type).
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => K::Unauthorized,
            403 => K::Forbidden,
            404 => K::NotFound,
            408 => K::RequestTimeout,
            409 => K::Conflict,
            412 => K::PreconditionFailed,
            413 => K::PayloadTooLarge,
            415 => K::UnsupportedMediaType,
            422 => K::GuardRejected,
            // Too many requests (a proxy's rate limit): retry later.
            429 => K::Overloaded,
            400..=499 => K::InvalidField,
            502..=504 => K::StorageUnavailable,
            _ => K::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_kind_has_exactly_one_row_and_every_type_is_distinct() {
        let kinds: HashSet<ErrorKind> = ERROR_TABLE.iter().map(|row| row.kind).collect();
        assert_eq!(kinds.len(), ERROR_TABLE.len(), "a kind appears twice");
        let types: HashSet<&str> = ERROR_TABLE.iter().map(|row| row.problem_type).collect();
        assert_eq!(types.len(), ERROR_TABLE.len(), "a problem type appears twice");
        for row in ERROR_TABLE {
            assert_eq!(ErrorKind::from_problem_type(row.problem_type), Some(row.kind));
            assert!((400..600).contains(&row.status), "{row:?}");
            assert!(row.exit_code != 0 && row.exit_code != exit::USAGE && row.exit_code != exit::VERIFY_FAILED);
        }
    }

    #[test]
    fn a_status_alone_classifies_into_a_kind_of_that_status() {
        // A locked data directory is the local CLI's alone: no server answers it.
        for row in ERROR_TABLE.iter().filter(|row| row.kind != ErrorKind::StoreLocked) {
            let broad = ErrorKind::from_status(row.status);
            assert_eq!(broad.status() / 100, row.status / 100, "{row:?} → {broad:?}");
            assert_eq!(broad.exit_code(), row.exit_code, "{row:?} → {broad:?}");
        }
    }
}
