//! The playbook: the guide's requirements as data.
//!
//! Factory's requirements change (newer guides ask for other scopes), so the playbook is recorded
//! whole in each integration's first event and replay never depends on today's defaults.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::values::{HttpUrl, Scope, ShortText, ValueError};

/// A GitLab webhook trigger as named in golive's command vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Push,
    TagPush,
    Comments,
    MergeRequests,
    Issues,
    /// GitLab's "Pipeline events".
    CiCd,
    Jobs,
    Deployments,
    Releases,
}

impl Trigger {
    pub const ALL: [Trigger; 9] = [
        Trigger::Push,
        Trigger::TagPush,
        Trigger::Comments,
        Trigger::MergeRequests,
        Trigger::Issues,
        Trigger::CiCd,
        Trigger::Jobs,
        Trigger::Deployments,
        Trigger::Releases,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Push => "push",
            Trigger::TagPush => "tag_push",
            Trigger::Comments => "comments",
            Trigger::MergeRequests => "merge_requests",
            Trigger::Issues => "issues",
            Trigger::CiCd => "ci_cd",
            Trigger::Jobs => "jobs",
            Trigger::Deployments => "deployments",
            Trigger::Releases => "releases",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A test scenario the guide asks to observe before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    MergeRequestCreated,
    CodePushed,
    IssueOpened,
    PipelineRan,
}

impl Scenario {
    pub const ALL: [Scenario; 4] =
        [Scenario::MergeRequestCreated, Scenario::CodePushed, Scenario::IssueOpened, Scenario::PipelineRan];
    pub fn as_str(&self) -> &'static str {
        match self {
            Scenario::MergeRequestCreated => "merge_request_created",
            Scenario::CodePushed => "code_pushed",
            Scenario::IssueOpened => "issue_opened",
            Scenario::PipelineRan => "pipeline_ran",
        }
    }
    /// A plain-English description used in checklist labels.
    pub fn description(&self) -> &'static str {
        match self {
            Scenario::MergeRequestCreated => "a merge request was opened",
            Scenario::CodePushed => "code was pushed",
            Scenario::IssueOpened => "an issue was opened",
            Scenario::PipelineRan => "a pipeline ran",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guide's requirements for one integration, recorded whole in `integration_opened`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub id: ShortText,
    pub version: u32,
    pub application_name: ShortText,
    pub redirect_uri: HttpUrl,
    /// Scopes the GitLab OAuth application must be registered with.
    pub required_scopes: BTreeSet<Scope>,
    /// Scopes the customer's access token must carry (checked by the probe).
    pub required_token_scopes: BTreeSet<Scope>,
    pub required_triggers: BTreeSet<Trigger>,
    pub scenarios: BTreeSet<Scenario>,
    pub monitoring_days: u32,
    pub probe_interval_minutes: u32,
    pub allow_http: bool,
    /// Whether the GitLab application must be confidential (compared by the application check;
    /// absent: not compared, as in playbooks recorded before golive checked it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_confidential: Option<bool>,
    /// Items only GitLab's API may meet: a person's word is not enough for them (absent in
    /// playbooks recorded before golive could check).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub api_evidence_required: BTreeSet<ApiEvidenceItem>,
}

/// A checklist item a playbook may require GitLab's API to have checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ApiEvidenceItem {
    #[serde(rename = "info.application_registered")]
    ApplicationRegistered,
    #[serde(rename = "webhook.created_with_issued_url")]
    WebhookCreatedWithIssuedUrl,
    #[serde(rename = "webhook.triggers")]
    WebhookTriggers,
}

/// The largest monitoring window a playbook may ask for.
pub const MONITORING_DAYS_MAX: u32 = 366;

fn scopes(names: &[&str]) -> BTreeSet<Scope> {
    names.iter().map(|name| Scope::parse(*name).expect("built-in scope names are valid")).collect()
}

impl Playbook {
    /// The redirect URI golive derives from its public URL when none is configured:
    /// `{public_url}/oauth/gitlab/callback`.
    pub fn derived_redirect_uri(public_url: &HttpUrl) -> HttpUrl {
        HttpUrl::parse(format!("{}/oauth/gitlab/callback", public_url.as_str().trim_end_matches('/')))
            .expect("a path on a valid URL is a valid URL")
    }

    /// The guide as Factory wrote it, with the redirect URI the server was configured with.
    pub fn guide_default(redirect_uri: HttpUrl) -> Self {
        Self {
            id: ShortText::parse("factory-gitlab-self-hosted").expect("valid"),
            version: 1,
            application_name: ShortText::parse("Factory Integration").expect("valid"),
            redirect_uri,
            required_scopes: scopes(&[
                "api",
                "read_user",
                "read_repository",
                "write_repository",
                "read_registry",
                "sudo",
            ]),
            required_token_scopes: scopes(&["api"]),
            required_triggers: [
                Trigger::Push,
                Trigger::Comments,
                Trigger::MergeRequests,
                Trigger::Issues,
                Trigger::CiCd,
            ]
            .into_iter()
            .collect(),
            scenarios: Scenario::ALL.into_iter().collect(),
            monitoring_days: 14,
            probe_interval_minutes: 60,
            allow_http: false,
            application_confidential: Some(true),
            api_evidence_required: BTreeSet::new(),
        }
    }

    /// Checks the rules a playbook supplied by a caller must follow.
    pub fn check(&self) -> Result<(), (&'static str, ValueError)> {
        if self.version == 0 {
            return Err(("playbook.version", ValueError("must be at least 1".into())));
        }
        if self.monitoring_days == 0 || self.monitoring_days > MONITORING_DAYS_MAX {
            return Err(("playbook.monitoring_days", ValueError(format!("must be in 1..={MONITORING_DAYS_MAX}"))));
        }
        if !(1..=7 * 24 * 60).contains(&self.probe_interval_minutes) {
            return Err(("playbook.probe_interval_minutes", ValueError("must be between 1 minute and 7 days".into())));
        }
        Ok(())
    }
}

/// The name of a registered playbook: `[a-z0-9][a-z0-9._-]{0,63}`.
///
/// Registered playbooks are addressed by id in URLs and storage keys, so the id is a slug; a
/// playbook recorded in an older log may carry any short text as its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlaybookId(String);

/// The longest playbook id.
pub const PLAYBOOK_ID_MAX_CHARS: usize = 64;

impl PlaybookId {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        let bytes = text.as_bytes();
        let well_formed = (1..=PLAYBOOK_ID_MAX_CHARS).contains(&bytes.len())
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
        if !well_formed {
            return Err(ValueError(
                "a playbook id must match [a-z0-9][a-z0-9._-]{0,63}, e.g. factory-gitlab-self-hosted".to_owned(),
            ));
        }
        Ok(Self(text))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlaybookId {
    type Error = ValueError;
    fn try_from(text: String) -> Result<Self, ValueError> {
        Self::parse(text)
    }
}

impl From<PlaybookId> for String {
    fn from(id: PlaybookId) -> String {
        id.0
    }
}

impl fmt::Display for PlaybookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to a registered playbook: an id and a version, or the latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybookRef {
    pub id: PlaybookId,
    /// `None`: the latest registered version.
    pub version: Option<u32>,
}

impl Playbook {
    /// Checks what a playbook must also be to enter the registry: its id a [`PlaybookId`].
    pub fn check_registrable(&self) -> Result<PlaybookId, (&'static str, ValueError)> {
        self.check()?;
        PlaybookId::parse(self.id.as_str()).map_err(|error| ("id", error))
    }
}
