//! golive's own checks of the guide through GitLab's API: what each check found, as golive
//! words it, and where each checklist item's evidence came from.
//!
//! A check run (`golive check`, `POST /api/v1/integrations/{id}/checks`, the monitoring timer)
//! records its progress as events of their own: `gitlab_check_started`, then
//! `application_checked`, `webhook_checked`, one `test_delivery_requested` per trigger, and
//! `gitlab_check_finished`. What they hold is golive's classification only — booleans, GitLab's
//! numeric ids, triggers from golive's own list, fixed sentences — never a string GitLab chose:
//! the application's name and callback URL are compared, not copied.
//!
//! "The latest fact counts": a check that found the application or the webhook is the newest
//! fact about it, so it decides the item until a person records it again; a failed check (GitLab
//! unreachable, the token refused) is no fact about the application or the webhook and changes
//! no item.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::playbook::{Scenario, Trigger};
use super::signals::{FindingCategory, GitlabEvent};
use super::values::{HttpUrl, LongText, ShortText};

/// The checks a run may perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Application,
    Webhook,
    TestDeliveries,
    /// The playbook's scenarios performed through the API (opt-in, admin only: it writes to
    /// the customer's GitLab beyond test deliveries).
    Scenarios,
}

impl CheckKind {
    /// The checks a run performs when none is named (never the scenarios).
    pub const ALL: [CheckKind; 3] = [CheckKind::Application, CheckKind::Webhook, CheckKind::TestDeliveries];

    /// Every check, the opt-in scenario run included.
    pub const EVERY: [CheckKind; 4] =
        [CheckKind::Application, CheckKind::Webhook, CheckKind::TestDeliveries, CheckKind::Scenarios];

    /// The checks that only read the customer's GitLab (the monitoring timer re-runs these).
    pub const READ_ONLY: [CheckKind; 2] = [CheckKind::Application, CheckKind::Webhook];

    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Application => "application",
            CheckKind::Webhook => "webhook",
            CheckKind::TestDeliveries => "test_deliveries",
            CheckKind::Scenarios => "scenarios",
        }
    }
}

/// A check that could not look: GitLab unreachable, the token refused, an answer golive cannot
/// read. Its detail is golive's sentence, never GitLab's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckFailure {
    pub category: FindingCategory,
    pub detail: LongText,
}

/// A run of checks began; `writes` announces what it will ask GitLab to do (sending test
/// deliveries) before it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitlabCheckStarted {
    pub check_id: Uuid,
    pub checks: BTreeSet<CheckKind>,
    /// The writes to the customer's GitLab this run will make, in golive's words.
    #[serde(default)]
    pub writes: Vec<ShortText>,
}

/// What `GET /api/v4/applications` said about the application with the recorded Application ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplicationFinding {
    /// Found by its Application ID; each comparison with the playbook as a boolean.
    Found {
        name_matches: bool,
        /// Whether the callback URL registered in GitLab is the playbook's redirect URI.
        callback_url_matches: bool,
        confidential: bool,
    },
    /// No application in GitLab has the Application ID recorded.
    NotFound,
    /// The check could not look.
    Failed(CheckFailure),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplicationChecked {
    pub check_id: Uuid,
    /// The Application ID looked for (golive's own record, not GitLab's answer).
    pub application_id: ShortText,
    pub finding: ApplicationFinding,
}

/// Where a GitLab webhook lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HookLocation {
    /// An instance-wide system hook (`GET /api/v4/hooks`).
    System,
    Group {
        group_id: u64,
    },
    Project {
        project_id: u64,
    },
}

impl HookLocation {
    pub fn describe(&self) -> String {
        match self {
            HookLocation::System => "a system hook".to_owned(),
            HookLocation::Group { group_id } => format!("a hook of group {group_id}"),
            HookLocation::Project { project_id } => format!("a hook of project {project_id}"),
        }
    }

    /// The triggers a hook of this kind can send at all: system hooks send push, tag push and
    /// merge request events only (never issues, comments or pipelines).
    pub fn can_send(&self, trigger: Trigger) -> bool {
        match self {
            HookLocation::System => matches!(trigger, Trigger::Push | Trigger::TagPush | Trigger::MergeRequests),
            _ => true,
        }
    }
}

/// What golive found of the hook whose URL is the issued webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WebhookFinding {
    Found {
        location: HookLocation,
        hook_id: u64,
        /// The hook's enabled events mapped to the playbook's trigger names.
        triggers: BTreeSet<Trigger>,
        ssl_verification: bool,
        /// GitLab's `alert_status` and `disabled_until` (absent: a GitLab that does not list
        /// them, or a check recorded before golive read them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alert: Option<HookAlert>,
        /// The hook's push filter, when it has one (`push_events_branch_filter` not blank).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        push_filter: Option<PushFilter>,
        /// Whether the hook sends a custom webhook template instead of GitLab's payload.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        custom_template: bool,
    },
    /// No hook with the issued URL where golive looked.
    NotFound {
        searched: Vec<HookLocation>,
        /// False when the search stopped at its page limit before seeing every hook.
        complete: bool,
    },
    Failed(CheckFailure),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookChecked {
    pub check_id: Uuid,
    /// The issued webhook URL looked for (golive's own).
    pub url: HttpUrl,
    pub finding: WebhookFinding,
}

/// Whether GitLab lets the hook deliver: GitLab's `alert_status`, read as GitLab's
/// `WebHooks::AutoDisabling` sets it after failed deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum HookAlert {
    Executable,
    /// Disabled after repeated failures until `until`; GitLab enables it again by itself then.
    TemporarilyDisabled {
        #[serde(default)]
        until: Option<DateTime<Utc>>,
    },
    /// Disabled for good after 40 failures, until someone enables it again.
    Disabled,
}

/// How a hook's push filter matches branch names (GitLab's `branch_filter_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BranchFilterStrategy {
    Wildcard,
    Regex,
    AllBranches,
}

/// What golive concluded of a hook's push filter (the pattern itself is the customer's text
/// and is not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PushFilter {
    pub strategy: BranchFilterStrategy,
    /// Whether every branch name passes (e.g. `*`, `.*`, or the strategy `all_branches`).
    pub every_branch: bool,
    /// Whether the branches golive's scenario run pushes to (`golive-check-…`) pass.
    pub scenario_branch: bool,
}

impl PushFilter {
    /// Push events are really on only when the branches Factory's agents push to pass; the
    /// agents name their own branches, so only a filter that lets every branch through does.
    pub fn lets_agents_through(&self) -> bool {
        self.every_branch
    }
}

/// Why a test delivery GitLab ran did not reach golive, or was refused by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryFailureCause {
    /// GitLab gave up waiting (its `webhook_timeout`, 10 s by default).
    Timeout,
    /// GitLab could not connect to golive (refused, name not resolved, blocked by GitLab's own
    /// outbound rules, or something else answered in golive's place).
    Connection,
    /// GitLab could not verify golive's certificate, or the TLS handshake failed.
    Tls,
    /// golive's receiver answered and refused the delivery.
    RefusedByGolive,
}

impl DeliveryFailureCause {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryFailureCause::Timeout => "timeout",
            DeliveryFailureCause::Connection => "connection",
            DeliveryFailureCause::Tls => "tls",
            DeliveryFailureCause::RefusedByGolive => "refused_by_golive",
        }
    }
}

/// What GitLab answered when golive asked it to send a test delivery. GitLab runs the test
/// delivery while the request waits (`lib/api/hooks/trigger_test.rb`): `201` means golive's
/// receiver answered 2xx, `422` carries why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TestRequestOutcome {
    /// GitLab delivered it and golive's receiver answered 2xx (GitLab's 201). Runs recorded
    /// before golive read GitLab's answer this way say `sent`.
    #[serde(alias = "sent")]
    Delivered,
    /// GitLab ran the delivery and it failed: GitLab's HTTP client gave up, or golive refused.
    /// `reason` is golive's sentence, never GitLab's message.
    DeliveryFailed { cause: DeliveryFailureCause, reason: LongText },
    /// GitLab has nothing to build a sample payload from ("Ensure the project has …").
    NoSampleData { reason: LongText },
    /// GitLab cannot test this trigger on this hook ("Testing not available for this hook"),
    /// or the hook's kind cannot send it at all (a system hook and issues). Runs recorded
    /// before this name say `unsupported`.
    #[serde(alias = "unsupported")]
    NotTestable,
    /// This GitLab has no test route for this hook (project hooks before 16.11, group hooks
    /// before 17.1, or GitLab's silent mode): the manual Test button is the fallback.
    NotAvailable {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<LongText>,
    },
    /// GitLab's hook-test rate limit: not a failure; retry at the time given.
    RateLimited { retry_at: DateTime<Utc> },
    /// golive could not ask: GitLab unreachable, the token refused, an answer golive cannot read.
    Failed(CheckFailure),
}

impl TestRequestOutcome {
    /// The outcome's word on the wire.
    pub fn word(&self) -> &'static str {
        match self {
            TestRequestOutcome::Delivered => "delivered",
            TestRequestOutcome::DeliveryFailed { .. } => "delivery_failed",
            TestRequestOutcome::NoSampleData { .. } => "no_sample_data",
            TestRequestOutcome::NotTestable => "not_testable",
            TestRequestOutcome::NotAvailable { .. } => "not_available",
            TestRequestOutcome::RateLimited { .. } => "rate_limited",
            TestRequestOutcome::Failed(_) => "failed",
        }
    }

    /// The outcome in golive's words, for `check`, `status`, the history and the dashboard.
    pub fn describe(&self) -> String {
        match self {
            TestRequestOutcome::Delivered => "delivered: GitLab sent it and golive accepted it".to_owned(),
            TestRequestOutcome::DeliveryFailed { cause, reason } => {
                let what = match cause {
                    DeliveryFailureCause::Timeout => "timed out before golive answered",
                    DeliveryFailureCause::Connection => "GitLab could not connect to golive",
                    DeliveryFailureCause::Tls => "TLS failed between GitLab and golive",
                    DeliveryFailureCause::RefusedByGolive => "golive refused it",
                };
                format!("delivery failed ({what}): {reason}")
            }
            TestRequestOutcome::NoSampleData { reason } => format!("no sample data: {reason}"),
            TestRequestOutcome::NotTestable => "not testable: GitLab cannot test this event on this hook".to_owned(),
            TestRequestOutcome::NotAvailable { reason: Some(reason) } => format!("not available: {reason}"),
            TestRequestOutcome::NotAvailable { reason: None } => {
                "not available on this GitLab: press Test on the hook in GitLab".to_owned()
            }
            TestRequestOutcome::RateLimited { retry_at } => {
                format!("rate limited by GitLab, retry at {}", retry_at.format("%Y-%m-%d %H:%M:%S UTC"))
            }
            TestRequestOutcome::Failed(failure) => format!("golive could not ask GitLab: {}", failure.detail),
        }
    }
}

/// golive is about to ask GitLab for a test delivery (recorded before the request: GitLab may
/// deliver before it answers, and the delivery must be known as provoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TestDeliveryRequested {
    pub check_id: Uuid,
    pub trigger: Trigger,
    pub location: HookLocation,
    pub hook_id: u64,
}

/// What GitLab answered to a test request (or that the hook cannot send the trigger at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TestDeliveryAnswered {
    pub check_id: Uuid,
    pub trigger: Trigger,
    pub location: HookLocation,
    pub outcome: TestRequestOutcome,
}

/// A run of checks ended: which of the guide's items it left unmet, and which requested test
/// deliveries never arrived within the wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GitlabCheckFinished {
    pub check_id: Uuid,
    #[serde(default)]
    pub unmet: Vec<String>,
    #[serde(default)]
    pub deliveries_missing: BTreeSet<Trigger>,
    /// The checks that could not look (GitLab unreachable, the token refused): their items
    /// rest on what was recorded before, not on GitLab.
    #[serde(default)]
    pub could_not_look: BTreeSet<CheckKind>,
    /// The checks left out of a run that named none because they could not run yet (no
    /// Application ID recorded, no webhook credentials issued).
    #[serde(default)]
    pub skipped: BTreeSet<CheckKind>,
}

/// The trigger a delivery of this project event answers. Pass
/// [`super::signals::WebhookDelivery::project_event`]: a `System Hook` carrying a push, tag push or
/// merge request answers `push`, `tag_push` or `merge_requests` as that event; a system hook's own
/// events (`System`, no `object_kind`) and wiki pages answer none.
pub fn trigger_of(event: GitlabEvent) -> Option<Trigger> {
    Some(match event {
        GitlabEvent::Push => Trigger::Push,
        GitlabEvent::TagPush => Trigger::TagPush,
        GitlabEvent::Note | GitlabEvent::ConfidentialNote => Trigger::Comments,
        GitlabEvent::Issue | GitlabEvent::ConfidentialIssue => Trigger::Issues,
        GitlabEvent::MergeRequest => Trigger::MergeRequests,
        GitlabEvent::Pipeline => Trigger::CiCd,
        GitlabEvent::Job => Trigger::Jobs,
        GitlabEvent::Deployment => Trigger::Deployments,
        GitlabEvent::Release => Trigger::Releases,
        GitlabEvent::WikiPage | GitlabEvent::System => return None,
    })
}

/// Where the fact an item rests on came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceOrigin {
    /// A person recorded it (a rep, an admin, the CLI's user).
    Rep,
    /// The customer submitted it through an intake link.
    CustomerIntake,
    /// golive read it from GitLab's API (a check or the probe).
    GitlabApi,
    /// A verified webhook delivery from GitLab.
    GitlabDelivery,
    /// golive did it itself (issued the webhook credentials).
    Golive,
}

impl EvidenceOrigin {
    pub fn describe(&self) -> &'static str {
        match self {
            EvidenceOrigin::Rep => "the rep's word",
            EvidenceOrigin::CustomerIntake => "the customer's intake",
            EvidenceOrigin::GitlabApi => "GitLab's API",
            EvidenceOrigin::GitlabDelivery => "a GitLab delivery",
            EvidenceOrigin::Golive => "golive",
        }
    }
}

/// The event that supplied the fact an item rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    pub source: EvidenceOrigin,
    /// The supplying event's type.
    pub event: String,
    /// Its version in the integration's stream.
    pub version: u64,
    pub at: DateTime<Utc>,
}

/// A requested test delivery, until its run finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestDeliveryProgress {
    pub check_id: Uuid,
    pub location: HookLocation,
    /// GitLab's answer; `None` while golive is asking (a delivery may arrive before it).
    pub outcome: Option<TestRequestOutcome>,
    pub requested_at: DateTime<Utc>,
    pub received_at: Option<DateTime<Utc>>,
    /// No longer awaited: the run moved on to performing scenarios, whose real deliveries must
    /// not be taken for a late test delivery.
    #[serde(default)]
    pub closed: bool,
}

impl TestDeliveryProgress {
    /// Seconds from the request to the delivery's arrival, once it arrived.
    pub fn round_trip_seconds(&self) -> Option<f64> {
        self.received_at.map(|received| (received - self.requested_at).num_milliseconds().max(0) as f64 / 1000.0)
    }
}

/// One run of checks as folded into the state (the latest few are kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    pub check_id: Uuid,
    pub checks: BTreeSet<CheckKind>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub unmet: Vec<String>,
    pub deliveries_missing: BTreeSet<Trigger>,
    pub could_not_look: BTreeSet<CheckKind>,
    pub skipped: BTreeSet<CheckKind>,
}

/// A run not finished this long after it started was abandoned (its process stopped): another
/// may start, and its late records are refused.
pub const CHECK_RUN_ABANDONED_AFTER_MINUTES: i64 = 30;

/// How many check runs the state keeps (the log keeps them all).
pub const CHECK_RUNS_KEPT: usize = 10;

/// One step of a scenario run in the customer's GitLab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioStep {
    /// A private scratch project inside the webhook's group, named so nobody mistakes it.
    CreateScratchProject,
    /// A commit on a new branch (`code_pushed`).
    PushCommit,
    /// A merge request from that branch (`merge_request_created`).
    OpenMergeRequest,
    /// An issue (`issue_opened`).
    OpenIssue,
    /// A pipeline on the branch (`pipeline_ran`).
    CreatePipeline,
    /// Watching the merge request and the issue for a comment by the Droid's user.
    WatchDroidComment,
    /// The scratch project deleted (or, in a project the customer named, the merge request
    /// and issue closed and the branch deleted).
    CleanUp,
}

impl ScenarioStep {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScenarioStep::CreateScratchProject => "create_scratch_project",
            ScenarioStep::PushCommit => "push_commit",
            ScenarioStep::OpenMergeRequest => "open_merge_request",
            ScenarioStep::OpenIssue => "open_issue",
            ScenarioStep::CreatePipeline => "create_pipeline",
            ScenarioStep::WatchDroidComment => "watch_droid_comment",
            ScenarioStep::CleanUp => "clean_up",
        }
    }
}

/// How a scenario step went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StepOutcome {
    /// Done; GitLab's numeric id of what it made (a project id, a merge request's iid), if any.
    Done {
        #[serde(default)]
        gitlab_id: Option<u64>,
    },
    /// This run cannot perform scenarios (why, in golive's words): the manual tests remain.
    NotPossible {
        reason: LongText,
    },
    /// The Droid's user commented this long after the object was opened.
    Seen {
        seconds: u64,
    },
    /// No comment by the Droid's user within the wait.
    NotSeen,
    Failed(CheckFailure),
}

/// A step of a scenario run, recorded after it happened (announced in `gitlab_check_started`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScenarioStepPerformed {
    pub check_id: Uuid,
    pub step: ScenarioStep,
    /// The scenario the step performs or watches, if one.
    #[serde(default)]
    pub scenario: Option<Scenario>,
    pub outcome: StepOutcome,
}

/// What a check run records, one event each (an engine-made command: never accepted from a
/// caller's JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckRecord {
    Started(GitlabCheckStarted),
    Application(ApplicationChecked),
    Webhook(WebhookChecked),
    TestDelivery(TestDeliveryRequested),
    TestAnswer(TestDeliveryAnswered),
    ScenarioStep(ScenarioStepPerformed),
    Finished(GitlabCheckFinished),
}
