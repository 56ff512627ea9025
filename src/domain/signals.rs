//! Facts golive observes rather than is told: GitLab webhook deliveries and probe results.
//!
//! These arrive as internal inputs (`record_webhook_delivery` from the receiver, actor `gitlab`;
//! `record_probe_result` from the probe, actor: whoever asked for it). They hold what the evidence rules need
//! and nothing more: never a delivery's body, which carries personal data.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::playbook::Scenario;
use super::values::{HttpUrl, LongText, Scope, ShortText, ValueError};

/// The `X-Gitlab-Event` header values golive knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum GitlabEvent {
    #[serde(rename = "Push Hook")]
    Push,
    #[serde(rename = "Tag Push Hook")]
    TagPush,
    #[serde(rename = "Note Hook")]
    Note,
    #[serde(rename = "Confidential Note Hook")]
    ConfidentialNote,
    #[serde(rename = "Issue Hook")]
    Issue,
    #[serde(rename = "Confidential Issue Hook")]
    ConfidentialIssue,
    #[serde(rename = "Merge Request Hook")]
    MergeRequest,
    #[serde(rename = "Pipeline Hook")]
    Pipeline,
    #[serde(rename = "Job Hook")]
    Job,
    #[serde(rename = "Deployment Hook")]
    Deployment,
    #[serde(rename = "Release Hook")]
    Release,
    #[serde(rename = "Wiki Page Hook")]
    WikiPage,
    #[serde(rename = "System Hook")]
    System,
}

impl GitlabEvent {
    pub const ALL: [GitlabEvent; 13] = [
        GitlabEvent::Push,
        GitlabEvent::TagPush,
        GitlabEvent::Note,
        GitlabEvent::ConfidentialNote,
        GitlabEvent::Issue,
        GitlabEvent::ConfidentialIssue,
        GitlabEvent::MergeRequest,
        GitlabEvent::Pipeline,
        GitlabEvent::Job,
        GitlabEvent::Deployment,
        GitlabEvent::Release,
        GitlabEvent::WikiPage,
        GitlabEvent::System,
    ];

    /// The header value, as GitLab sends it.
    pub fn header_value(&self) -> &'static str {
        match self {
            GitlabEvent::Push => "Push Hook",
            GitlabEvent::TagPush => "Tag Push Hook",
            GitlabEvent::Note => "Note Hook",
            GitlabEvent::ConfidentialNote => "Confidential Note Hook",
            GitlabEvent::Issue => "Issue Hook",
            GitlabEvent::ConfidentialIssue => "Confidential Issue Hook",
            GitlabEvent::MergeRequest => "Merge Request Hook",
            GitlabEvent::Pipeline => "Pipeline Hook",
            GitlabEvent::Job => "Job Hook",
            GitlabEvent::Deployment => "Deployment Hook",
            GitlabEvent::Release => "Release Hook",
            GitlabEvent::WikiPage => "Wiki Page Hook",
            GitlabEvent::System => "System Hook",
        }
    }

    pub fn from_header(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.header_value() == value)
    }

    /// The payload `object_kind` values golive records with this event (empty: none expected).
    ///
    /// A `System Hook` carries the project hook's payload for the pushes, tag pushes and merge
    /// requests it is triggered by (`Project#execute_hooks` hands the same data to
    /// `SystemHooksService`), and no `object_kind` at all for system events (`project_create`,
    /// `repository_update`, the test delivery GitLab's system hook API sends, ...).
    pub fn object_kinds(&self) -> &'static [&'static str] {
        match self {
            GitlabEvent::Push => &["push"],
            GitlabEvent::TagPush => &["tag_push"],
            GitlabEvent::Note | GitlabEvent::ConfidentialNote => &["note"],
            GitlabEvent::Issue | GitlabEvent::ConfidentialIssue => &["issue", "work_item"],
            GitlabEvent::MergeRequest => &["merge_request"],
            GitlabEvent::Pipeline => &["pipeline"],
            GitlabEvent::Job => &["build"],
            GitlabEvent::Deployment => &["deployment"],
            GitlabEvent::Release => &["release"],
            GitlabEvent::WikiPage => &["wiki_page"],
            GitlabEvent::System => &["push", "tag_push", "merge_request"],
        }
    }

    /// Whether a delivery of this event may carry no `object_kind` (a system hook's own events).
    pub fn object_kind_optional(&self) -> bool {
        matches!(self, GitlabEvent::System)
    }
}

/// What golive records of one verified webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookDelivery {
    pub event: GitlabEvent,
    #[serde(default)]
    pub object_kind: Option<ShortText>,
    /// `object_attributes.action` for merge requests and issues.
    #[serde(default)]
    pub action: Option<ShortText>,
    /// `object_attributes.status` for pipelines and jobs.
    #[serde(default)]
    pub status: Option<ShortText>,
    /// A push's `after` commit SHA (all zeros when a branch was deleted).
    #[serde(default)]
    pub after: Option<ShortText>,
    /// `project.path_with_namespace`.
    #[serde(default)]
    pub project: Option<ShortText>,
    /// `X-Gitlab-Instance`.
    #[serde(default)]
    pub instance: Option<HttpUrl>,
    /// GitLab's own id of the object (`object_attributes.id`, a pipeline id, a push's `after`).
    #[serde(default)]
    pub object_id: Option<ShortText>,
    /// `Idempotency-Key`: one per event, kept when a delivery is resent.
    #[serde(default)]
    pub idempotency_key: Option<ShortText>,
    /// `X-Gitlab-Webhook-UUID`: one per delivery attempt.
    #[serde(default)]
    pub webhook_uuid: Option<ShortText>,
    /// `User-Agent`, e.g. `GitLab/17.5.0`.
    #[serde(default)]
    pub user_agent: Option<ShortText>,
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the body, hex: proves what arrived without keeping it.
    pub body_sha256: ShortText,
    /// Whether a Standard Webhooks signature was verified too.
    #[serde(default)]
    pub signed: bool,
}

impl WebhookDelivery {
    /// Checks what the contract asks of a delivery's facts before they become evidence.
    pub fn check(&self) -> Result<(), (&'static str, ValueError)> {
        let expected = self.event.object_kinds();
        match &self.object_kind {
            Some(kind) if !expected.contains(&kind.as_str()) => {
                return Err((
                    "object_kind",
                    ValueError(format!(
                        "{:?} does not match X-Gitlab-Event {:?} (expected one of {:?})",
                        kind.as_str(),
                        self.event.header_value(),
                        expected
                    )),
                ));
            }
            None if !self.event.object_kind_optional() => {
                return Err((
                    "object_kind",
                    ValueError(format!(
                        "missing; X-Gitlab-Event {:?} carries one of {:?}",
                        self.event.header_value(),
                        expected
                    )),
                ));
            }
            _ => {}
        }
        let digest = self.body_sha256.as_str();
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(("body_sha256", ValueError("must be 64 hex digits (SHA-256 of the body)".into())));
        }
        Ok(())
    }

    /// The project event this delivery carries: its own `X-Gitlab-Event`, or for a `System Hook`
    /// the project hook event its `object_kind` names (`push`, `tag_push`, `merge_request`). A
    /// system hook's own events (no `object_kind`) stay `System`.
    pub fn project_event(&self) -> GitlabEvent {
        match (self.event, self.object_kind.as_ref().map(ShortText::as_str)) {
            (GitlabEvent::System, Some("push")) => GitlabEvent::Push,
            (GitlabEvent::System, Some("tag_push")) => GitlabEvent::TagPush,
            (GitlabEvent::System, Some("merge_request")) => GitlabEvent::MergeRequest,
            (event, _) => event,
        }
    }

    /// The playbook scenario this delivery is evidence of, per the contract (a system hook's
    /// push or merge request counts as what it is).
    pub fn scenario_evidence(&self) -> Option<Scenario> {
        let action = self.action.as_ref().map(ShortText::as_str);
        match self.project_event() {
            GitlabEvent::MergeRequest if action == Some("open") => Some(Scenario::MergeRequestCreated),
            GitlabEvent::Push => {
                let after = self.after.as_ref().map(ShortText::as_str)?;
                let deleted = after.bytes().all(|b| b == b'0');
                (!deleted).then_some(Scenario::CodePushed)
            }
            GitlabEvent::Issue | GitlabEvent::ConfidentialIssue if action == Some("open") => {
                Some(Scenario::IssueOpened)
            }
            GitlabEvent::Pipeline => Some(Scenario::PipelineRan),
            _ => None,
        }
    }
}

/// Troubleshooting categories a block carries (the guide's three, plus `other`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockCategory {
    ApiFailure,
    PermissionDenied,
    WebhookNotReceived,
    Other,
}

impl BlockCategory {
    pub fn as_str(&self) -> &'static str {
        match self {
            BlockCategory::ApiFailure => "api_failure",
            BlockCategory::PermissionDenied => "permission_denied",
            BlockCategory::WebhookNotReceived => "webhook_not_received",
            BlockCategory::Other => "other",
        }
    }
}

/// Categories of a diagnosis finding or a probe failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingCategory {
    ApiFailure,
    PermissionDenied,
    WebhookNotReceived,
    RateLimited,
    Stalled,
    Other,
}

impl FindingCategory {
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingCategory::ApiFailure => "api_failure",
            FindingCategory::PermissionDenied => "permission_denied",
            FindingCategory::WebhookNotReceived => "webhook_not_received",
            FindingCategory::RateLimited => "rate_limited",
            FindingCategory::Stalled => "stalled",
            FindingCategory::Other => "other",
        }
    }
}

impl From<BlockCategory> for FindingCategory {
    fn from(category: BlockCategory) -> Self {
        match category {
            BlockCategory::ApiFailure => FindingCategory::ApiFailure,
            BlockCategory::PermissionDenied => FindingCategory::PermissionDenied,
            BlockCategory::WebhookNotReceived => FindingCategory::WebhookNotReceived,
            BlockCategory::Other => FindingCategory::Other,
        }
    }
}

/// What one run of the GitLab probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeResult {
    pub api_reachable: bool,
    #[serde(default)]
    pub ssh_reachable: Option<bool>,
    /// Set when something failed: what kind of failure it was.
    #[serde(default)]
    pub category: Option<FindingCategory>,
    #[serde(default)]
    pub gitlab_version: Option<ShortText>,
    #[serde(default)]
    pub token_active: Option<bool>,
    #[serde(default)]
    pub token_expires_at: Option<super::values::Date>,
    #[serde(default)]
    pub token_scopes: Option<BTreeSet<Scope>>,
    /// The playbook's required token scopes the token lacks, as the probe saw them (absent
    /// from results recorded before golive recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_token_scopes: Option<BTreeSet<Scope>>,
    /// `is_admin` from `GET /api/v4/user`; `Some(false)` when the key was absent.
    #[serde(default)]
    pub admin: Option<bool>,
    #[serde(default)]
    pub detail: Option<LongText>,
    #[serde(default)]
    pub api_round_trip_ms: Option<u64>,
    #[serde(default)]
    pub ssh_round_trip_ms: Option<u64>,
}

impl ProbeResult {
    /// A rate-limited probe says nothing about the instance: it is recorded but is not evidence.
    pub fn is_evidence(&self) -> bool {
        self.category != Some(FindingCategory::RateLimited)
    }
}
