//! Why the domain refused an input. Every refusal writes nothing.

use serde::Serialize;

/// One unmet requirement or guard, as shown to a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unmet {
    pub id: String,
    pub label: String,
}

/// The domain's refusal of a command. The HTTP layer maps each to its status code:
/// `InvalidField`, `UnknownType`, `Malformed` → 400; `GuardRejected` → 422; `Cancelled` → 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("invalid field `{field}`: {message}")]
    InvalidField { field: String, message: String },
    #[error("{0}")]
    UnknownType(String),
    #[error("malformed command: {0}")]
    Malformed(String),
    #[error("{command} refused: {}", list_unmet(unmet))]
    GuardRejected { command: &'static str, unmet: Vec<Unmet> },
    #[error("the integration is cancelled; no command is accepted any more")]
    Cancelled,
    #[error("{0}")]
    Intake(IntakeRefusal),
}

fn list_unmet(unmet: &[Unmet]) -> String {
    unmet.iter().map(|u| format!("{} ({})", u.label, u.id)).collect::<Vec<_>>().join("; ")
}

impl Rejection {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Rejection::InvalidField { field: field.into(), message: message.into() }
    }

    /// The ids of the unmet requirements, for a guard rejection (empty otherwise).
    pub fn unmet_ids(&self) -> Vec<&str> {
        match self {
            Rejection::GuardRejected { unmet, .. } => unmet.iter().map(|u| u.id.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Why a presented link cannot be used. Deliberately coarse towards the customer: an unknown
/// link and a wrong secret look the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntakeRefusal {
    #[error("this intake link is not valid")]
    Unknown,
    #[error("this intake link has expired; ask your Factory representative for a new one")]
    Expired,
    #[error("this intake link has already been used; ask your Factory representative for a new one")]
    AlreadyUsed,
    /// The instance URL or its CA changed after the customer loaded the page: what they saw is
    /// not where the secrets would be bound, so nothing is recorded.
    #[error("the GitLab instance of this onboarding changed while the page was open; reload the page, check the instance it names, and send again")]
    InstanceChanged,
}
