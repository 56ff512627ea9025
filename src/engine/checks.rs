//! Runs of checks through GitLab's API: the application, the webhook, and test deliveries
//! golive asks GitLab to send and then waits for at its own receiver.
//!
//! A run is recorded as it goes: `gitlab_check_started` first (announcing the writes it will
//! make to the customer's GitLab), each finding as it comes, `gitlab_check_finished` last.
//! [`Engine::start_check`] records the start and leaves the rest to a task (the HTTP API's 202);
//! [`Engine::run_check`] does the whole run (the CLI on a local store, the monitoring timer).
//! Pacing between test requests and the wait for deliveries are measured with the engine's
//! clock, so a manual clock drives them in tests.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{Engine, EngineError};
use serde_json::json;

use crate::domain::{
    self, Actor, ApplicationChecked, CheckKind, CheckRecord, Command, GitlabCheckFinished, GitlabCheckStarted,
    HookLocation, IntegrationId, LongText, Rejection, Requirement, Scenario, ScenarioStep, ScenarioStepPerformed,
    ShortText, StepOutcome, TestDeliveryAnswered, TestDeliveryRequested, TestRequestOutcome, WebhookChecked,
    WebhookFinding,
};
use crate::gitlab::checks::{self as api_checks, GitlabApi, HookPlace, SearchLimits};
use crate::gitlab::probe::{ProbeConfig, ProbeTarget};
use crate::secrets::SecretsError;

/// How runs of checks behave: one call's limits, the searches' limits, the pause between test
/// requests and the wait for their deliveries.
#[derive(Debug, Clone)]
pub struct CheckSettings {
    pub http: ProbeConfig,
    pub limits: SearchLimits,
    /// Between two test requests (GitLab limits hook tests to a few per minute).
    pub test_pacing: Duration,
    /// How long to wait for requested test deliveries after the last request.
    pub delivery_wait: Duration,
    /// How often the wait looks at what arrived.
    pub poll_interval: Duration,
    /// How long a scenario run watches for the Droid's comment.
    pub droid_wait: Duration,
    /// The ceiling of one test request: GitLab runs the delivery while golive's request waits,
    /// for up to its own `webhook_timeout` (10 s by default, set per instance and not readable
    /// through the API), so this stays well above it.
    pub test_request_timeout: Duration,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            http: ProbeConfig::default(),
            limits: SearchLimits::default(),
            test_pacing: api_checks::DEFAULT_TEST_PACING,
            delivery_wait: Duration::from_secs(120),
            poll_interval: Duration::from_millis(250),
            droid_wait: Duration::from_secs(600),
            test_request_timeout: DEFAULT_TEST_REQUEST_TIMEOUT,
        }
    }
}

/// The default ceiling of a test request: three times GitLab's default webhook timeout.
pub const DEFAULT_TEST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a caller asks a run to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRequest {
    pub checks: BTreeSet<CheckKind>,
    /// Where the customer said the webhook lives (else golive searches).
    pub hook_place: Option<HookPlace>,
    /// A scenario run: the project to perform in (else a scratch project in the hook's group).
    pub scenario_project: Option<u64>,
    /// A scenario run: keep the scratch project afterwards.
    pub keep_scratch_project: bool,
    /// A scenario run: the GitLab username of the Droid, whose comment golive watches for.
    pub droid_username: Option<String>,
    /// Whether the caller named the checks; a run that named none leaves out the checks that
    /// cannot run yet (and says so) rather than refusing the whole run.
    pub named: bool,
}

/// The JSON a caller sends: `{"checks"?: [...], "group_id"?: n, "project_id"?: n}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    #[serde(default)]
    checks: Option<BTreeSet<String>>,
    #[serde(default)]
    group_id: Option<u64>,
    #[serde(default)]
    project_id: Option<u64>,
    #[serde(default)]
    scenario_project_id: Option<u64>,
    #[serde(default)]
    keep_scratch_project: Option<bool>,
    #[serde(default)]
    droid_username: Option<String>,
}

/// A GitLab username as golive accepts one to watch for: letters, digits, `_`, `.`, `-`.
fn gitlab_username(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl CheckRequest {
    /// Every check (none named means all of them).
    pub fn all() -> Self {
        CheckRequest {
            checks: CheckKind::ALL.into_iter().collect(),
            hook_place: None,
            scenario_project: None,
            keep_scratch_project: false,
            droid_username: None,
            named: false,
        }
    }

    /// Parses a caller's request body; no field, or no `checks`, means every check.
    pub fn from_json(body: serde_json::Value) -> Result<CheckRequest, Rejection> {
        if !body.is_object() {
            return Err(Rejection::Malformed(
                "the body must be a JSON object, e.g. {\"checks\": [\"webhook\"]}".into(),
            ));
        }
        let body: CheckBody = domain::parse_fields(body)?;
        let named = body.checks.is_some();
        let checks = match body.checks {
            None => CheckKind::ALL.into_iter().collect(),
            Some(names) if names.is_empty() => return Err(Rejection::invalid("checks", "name at least one check")),
            Some(names) => {
                let mut checks = BTreeSet::new();
                for name in names {
                    let check = CheckKind::EVERY.into_iter().find(|c| c.as_str() == name).ok_or_else(|| {
                        Rejection::invalid(
                            "checks",
                            format!("{name:?} is not a check; one of application, webhook, test_deliveries, scenarios"),
                        )
                    })?;
                    checks.insert(check);
                }
                checks
            }
        };
        let hook_place = match (body.group_id, body.project_id) {
            (Some(_), Some(_)) => {
                return Err(Rejection::invalid(
                    "project_id",
                    "name the group or the project the webhook lives in, not both",
                ))
            }
            (Some(0), _) | (_, Some(0)) => return Err(Rejection::invalid("group_id", "GitLab ids start at 1")),
            (Some(group), None) => Some(HookPlace::Group(group)),
            (None, Some(project)) => Some(HookPlace::Project(project)),
            (None, None) => None,
        };
        let scenarios = checks.contains(&CheckKind::Scenarios);
        if !scenarios
            && (body.scenario_project_id.is_some()
                || body.keep_scratch_project.is_some()
                || body.droid_username.is_some())
        {
            return Err(Rejection::invalid(
                "checks",
                "scenario_project_id, keep_scratch_project and droid_username go with the scenarios check",
            ));
        }
        if body.scenario_project_id == Some(0) {
            return Err(Rejection::invalid("scenario_project_id", "GitLab ids start at 1"));
        }
        if let Some(name) = body.droid_username.as_deref().filter(|name| !gitlab_username(name)) {
            return Err(Rejection::invalid(
                "droid_username",
                format!(
                    "{:?} is not a GitLab username (letters, digits, _ . -)",
                    name.chars().take(40).collect::<String>()
                ),
            ));
        }
        Ok(CheckRequest {
            checks,
            hook_place,
            scenario_project: body.scenario_project_id,
            keep_scratch_project: body.keep_scratch_project.unwrap_or(false),
            droid_username: body.droid_username,
            named,
        })
    }
}

/// Progress of a run, as it happens (for a spinner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckProgress {
    Recorded(&'static str),
    Waiting { triggers: Vec<domain::Trigger>, seconds_left: u64 },
}

/// A run just started: its id, the checks it performs, and those a run that named none left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStarted {
    pub check_id: Uuid,
    pub checks: BTreeSet<CheckKind>,
    pub skipped: BTreeSet<CheckKind>,
}

/// How a finished run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    pub check_id: Uuid,
    pub finished: GitlabCheckFinished,
    pub state: Arc<domain::Integration>,
}

impl CheckOutcome {
    /// Whether the run found every item it looked at met and every delivery it asked for.
    pub fn all_met(&self) -> bool {
        self.finished.unmet.is_empty()
            && self.finished.deliveries_missing.is_empty()
            && self.finished.could_not_look.is_empty()
    }
}

/// The items each check looks at.
fn items_of(check: CheckKind) -> &'static [Requirement] {
    match check {
        CheckKind::Application => &[Requirement::ApplicationRegistered],
        CheckKind::Webhook => &[Requirement::WebhookCreatedWithIssuedUrl, Requirement::WebhookTriggers],
        CheckKind::TestDeliveries => &[Requirement::WebhookDeliveryVerified],
        // The playbook's scenarios: added by the run, which knows the playbook.
        CheckKind::Scenarios => &[],
    }
}

fn guard(label: &str, id: &str) -> EngineError {
    EngineError::Rejected(Rejection::GuardRejected {
        command: "check",
        unmet: vec![domain::Unmet { id: id.to_owned(), label: label.to_owned() }],
    })
}

impl Engine {
    /// The instance of record and the usable access token, unsealed: what a probe or a check
    /// sends to GitLab. Refused (nothing recorded) without a token given for this instance.
    pub(super) async fn gitlab_target(
        &self,
        state: &domain::Integration,
        uses: &str,
    ) -> Result<ProbeTarget, EngineError> {
        // Only a token given for the instance of record may be sent there: a token given for
        // another origin or CA stays where its owner sent it.
        let Some(token) = state.usable_access_token() else {
            let label = match &state.facts.access_token {
                Some(token) => format!(
                    "Access token provided for this instance (the {uses} uses it; the one on record was given for {})",
                    token.bound_to.describe()
                ),
                None => format!("Access token provided (the {uses} uses it)"),
            };
            return Err(EngineError::Rejected(Rejection::GuardRejected {
                command: if uses == "probe" { "probe" } else { "check" },
                unmet: vec![domain::Unmet { id: "info.access_token_provided".into(), label }],
            }));
        };
        let key = self.keystore().existing_data_key(state.id).await?.ok_or(SecretsError::Shredded(state.id))?;
        let plaintext = super::secret_ops::unseal_secret(&key, state, &token.token)?;
        Ok(ProbeTarget {
            gitlab_url: state.facts.instance.gitlab_url.as_str().to_owned(),
            token: String::from_utf8(plaintext).map_err(|_| SecretsError::Unseal)?,
            ca_certificate_pem: state.facts.instance.ca_certificate_pem.as_ref().map(|p| p.as_str().to_owned()),
            ssh_port: state.facts.instance.ssh_port.map(|p| p.get()).unwrap_or(22),
        })
    }

    async fn record_check(&self, id: IntegrationId, record: CheckRecord, actor: &Actor) -> Result<(), EngineError> {
        self.writes().execute_internal(id, Command::RecordCheck(record), actor).await.map(|_| ())
    }

    /// Records the start of a run (refused, with nothing written, when the run cannot begin:
    /// no usable token, nothing to look for, another run under way) and returns its id.
    async fn begin_check(
        &self,
        id: IntegrationId,
        request: &mut CheckRequest,
        actor: &Actor,
    ) -> Result<(Uuid, BTreeSet<CheckKind>), EngineError> {
        let state = self.state(id).await?;
        if request.checks.is_empty() {
            return Err(EngineError::Rejected(Rejection::invalid("checks", "name at least one check")));
        }
        self.gitlab_target(&state, "check").await?;
        let mut skipped = BTreeSet::new();
        if !request.named {
            let ready = |check: &CheckKind| match check {
                CheckKind::Application => state.facts.application.is_some(),
                _ => state.facts.webhook_credentials.is_some(),
            };
            skipped = request.checks.iter().copied().filter(|c| !ready(c)).collect();
            request.checks.retain(ready);
            if request.checks.is_empty() {
                return Err(guard(
                    "An Application ID is recorded or webhook credentials are issued (the checks look for them): record the application or issue the webhook credentials first",
                    "info.application_registered",
                ));
            }
        }
        if request.checks.contains(&CheckKind::Application) && state.facts.application.is_none() {
            return Err(guard(
                "An Application ID is recorded (the application check looks for it): record the application first",
                "info.application_registered",
            ));
        }
        if request
            .checks
            .iter()
            .any(|c| matches!(c, CheckKind::Webhook | CheckKind::TestDeliveries | CheckKind::Scenarios))
            && state.facts.webhook_credentials.is_none()
        {
            return Err(guard(
                "Webhook credentials are issued (the webhook check looks for the issued URL): issue the webhook credentials first",
                "webhook.credentials_issued",
            ));
        }
        let mut writes = Vec::new();
        if request.checks.contains(&CheckKind::TestDeliveries) {
            let triggers: Vec<&str> = state.playbook.required_triggers.iter().map(|t| t.as_str()).collect();
            writes.push(
                ShortText::parse(format!("ask GitLab to send test deliveries: {}", triggers.join(", ")))
                    .expect("golive's own words are valid"),
            );
        }
        if request.checks.contains(&CheckKind::Scenarios) {
            let place = match request.scenario_project {
                Some(project) => format!("in project {project}"),
                None => "in a new private scratch project golive-scratch-* in the webhook's group".to_owned(),
            };
            let scenarios: Vec<&str> = state.playbook.scenarios.iter().map(|s| s.as_str()).collect();
            for write in [
                format!("perform the scenarios {} {place}", scenarios.join(", ")),
                "push a commit on a new branch golive-check-*, open a merge request and an issue, create a pipeline"
                    .to_owned(),
                match (request.scenario_project, request.keep_scratch_project) {
                    (Some(_), _) => "then close the merge request and the issue and delete the branch".to_owned(),
                    (None, false) => "then delete the scratch project".to_owned(),
                    (None, true) => "keep the scratch project afterwards, as asked".to_owned(),
                },
            ] {
                writes.push(ShortText::parse(write).expect("golive's own words are valid"));
            }
        }
        let check_id = self.ids().next_id();
        let started = GitlabCheckStarted { check_id, checks: request.checks.clone(), writes };
        self.record_check(id, CheckRecord::Started(started), actor).await?;
        Ok((check_id, skipped))
    }

    /// Starts a run and leaves it to a task: answers once `gitlab_check_started` is recorded,
    /// with the run's id, the checks it performs and those it left out. Progress and results
    /// arrive as events on the integration's stream.
    pub async fn start_check(
        &self,
        id: IntegrationId,
        mut request: CheckRequest,
        actor: &Actor,
    ) -> Result<CheckStarted, EngineError> {
        let (check_id, skipped) = self.begin_check(id, &mut request, actor).await?;
        let started = CheckStarted { check_id, checks: request.checks.clone(), skipped: skipped.clone() };
        let engine = self.clone();
        let actor = actor.clone();
        tokio::spawn(async move {
            if let Err(error) = engine.continue_check(id, check_id, &request, skipped, &actor, &|_| {}).await {
                tracing::warn!(integration = %id, %check_id, %error, "a run of checks stopped early");
            }
        });
        Ok(started)
    }

    /// Runs the checks to the end, telling `progress` as it goes.
    pub async fn run_check(
        &self,
        id: IntegrationId,
        mut request: CheckRequest,
        actor: &Actor,
        progress: &(dyn Fn(CheckProgress) + Send + Sync),
    ) -> Result<CheckOutcome, EngineError> {
        let (check_id, skipped) = self.begin_check(id, &mut request, actor).await?;
        self.continue_check(id, check_id, &request, skipped, actor, progress).await
    }

    async fn continue_check(
        &self,
        id: IntegrationId,
        check_id: Uuid,
        request: &CheckRequest,
        skipped: BTreeSet<CheckKind>,
        actor: &Actor,
        progress: &(dyn Fn(CheckProgress) + Send + Sync),
    ) -> Result<CheckOutcome, EngineError> {
        let mut could_not_look = BTreeSet::new();
        let settings = self.config().checks.clone();
        let state = self.state(id).await?;
        let target = self.gitlab_target(&state, "check").await?;
        let connected = GitlabApi::connect(&target, &settings.http, &self.config().probe_egress).await;
        drop(target);
        let mut hook: Option<(HookLocation, u64)> = None;
        let mut push_filter: Option<crate::gitlab::branch_filter::BranchFilter> = None;
        if request.checks.contains(&CheckKind::Application) {
            let application = state.facts.application.as_ref().expect("begin_check saw an application");
            let finding = match &connected {
                Ok(api) => {
                    api_checks::check_application(
                        api,
                        application.application_id.as_str(),
                        state.playbook.application_name.as_str(),
                        state.playbook.redirect_uri.as_str(),
                        &settings.limits,
                    )
                    .await
                }
                Err(failed) => domain::ApplicationFinding::Failed(failed.clone()),
            };
            if matches!(finding, domain::ApplicationFinding::Failed(_)) {
                could_not_look.insert(CheckKind::Application);
            }
            let checked = ApplicationChecked { check_id, application_id: application.application_id.clone(), finding };
            self.record_check(id, CheckRecord::Application(checked), actor).await?;
            progress(CheckProgress::Recorded("application_checked"));
        }
        if request
            .checks
            .iter()
            .any(|c| matches!(c, CheckKind::Webhook | CheckKind::TestDeliveries | CheckKind::Scenarios))
        {
            let url =
                state.facts.webhook_credentials.as_ref().expect("begin_check saw credentials").webhook_url.clone();
            let finding = match &connected {
                Ok(api) => {
                    let (finding, listing) =
                        api_checks::find_webhook_listing(api, url.as_str(), request.hook_place, &settings.limits).await;
                    // The filter's pattern stays in memory for this run's scenario branch.
                    push_filter = listing.as_ref().and_then(api_checks::push_filter_of);
                    finding
                }
                Err(failed) => WebhookFinding::Failed(failed.clone()),
            };
            if let WebhookFinding::Found { location, hook_id, .. } = &finding {
                hook = Some((*location, *hook_id));
            }
            if matches!(&finding, WebhookFinding::Failed(_) | WebhookFinding::NotFound { complete: false, .. }) {
                // Nothing past the webhook could look either.
                could_not_look.extend(request.checks.iter().copied().filter(|c| *c != CheckKind::Application));
            }
            if request.checks.contains(&CheckKind::Webhook) || !matches!(finding, WebhookFinding::Found { .. }) {
                self.record_check(id, CheckRecord::Webhook(WebhookChecked { check_id, url, finding }), actor).await?;
                progress(CheckProgress::Recorded("webhook_checked"));
            }
        }
        let mut sent = BTreeSet::new();
        if let (true, Some((location, hook_id)), Ok(api)) =
            (request.checks.contains(&CheckKind::TestDeliveries), hook, &connected)
        {
            let mut last_request: Option<chrono::DateTime<chrono::Utc>> = None;
            let mut limited: Option<chrono::DateTime<chrono::Utc>> = None;
            let mut failed_on_the_way = false;
            for trigger in state.playbook.required_triggers.iter().copied() {
                // A delivery that failed on its way (or that golive refused) fails the same way
                // for every trigger, and each failure counts towards GitLab disabling the
                // customer's hook (`WebHooks::AutoDisabling`, 4 in a row): ask no more.
                if failed_on_the_way {
                    break;
                }
                // GitLab said to wait: the rest of this run's tests are not sent, only recorded
                // as rate limited until the same time.
                if let (Some(retry_at), true) = (limited, location.can_send(trigger)) {
                    let outcome = TestRequestOutcome::RateLimited { retry_at };
                    let answered = TestDeliveryAnswered { check_id, trigger, location, outcome };
                    self.record_check(id, CheckRecord::TestAnswer(answered), actor).await?;
                    continue;
                }
                if location.can_send(trigger) {
                    if let Some(last) = last_request {
                        let pace = chrono::Duration::from_std(settings.test_pacing).unwrap_or_default();
                        while self.now() < last + pace {
                            tokio::time::sleep(settings.poll_interval.min(settings.test_pacing)).await;
                        }
                    }
                    last_request = Some(self.now());
                }
                if location.can_send(trigger) {
                    // Recorded before asking: GitLab may deliver before it answers.
                    let requested = TestDeliveryRequested { check_id, trigger, location, hook_id };
                    self.record_check(id, CheckRecord::TestDelivery(requested), actor).await?;
                    progress(CheckProgress::Recorded("test_delivery_requested"));
                }
                let refused_before = self.delivery_signals(id).await?.refused_deliveries;
                let outcome = api_checks::request_test_delivery(
                    api,
                    location,
                    hook_id,
                    trigger,
                    self.now(),
                    settings.test_request_timeout,
                )
                .await;
                // golive's own refusal is believed only when golive's receiver counted one
                // while GitLab was delivering: a look-alike answer came from elsewhere.
                let outcome = if crate::gitlab::test_route::is_credential_refusal(&outcome)
                    && self.delivery_signals(id).await?.refused_deliveries <= refused_before
                {
                    crate::gitlab::test_route::refusal_from_elsewhere()
                } else {
                    outcome
                };
                match &outcome {
                    TestRequestOutcome::Delivered => {
                        sent.insert(trigger);
                    }
                    TestRequestOutcome::RateLimited { retry_at } => limited = Some(*retry_at),
                    TestRequestOutcome::DeliveryFailed { .. } => failed_on_the_way = true,
                    _ => {}
                }
                let answered = TestDeliveryAnswered { check_id, trigger, location, outcome };
                self.record_check(id, CheckRecord::TestAnswer(answered), actor).await?;
                progress(CheckProgress::Recorded("test_delivery_answered"));
            }
        }
        let deliveries_missing = self.wait_for_deliveries(id, check_id, &sent, &settings, progress).await?;
        if request.checks.contains(&CheckKind::Scenarios) {
            let run = ScenarioRun { engine: self, id, check_id, actor, settings: &settings, progress };
            run.perform(&state, request, hook, connected.as_ref().ok(), push_filter.as_ref()).await?;
        }
        let after = self.state(id).await?;
        let scenario_items: Vec<Requirement> = if request.checks.contains(&CheckKind::Scenarios) {
            after.playbook.scenarios.iter().map(|s| Requirement::ScenarioObserved(*s)).collect()
        } else {
            Vec::new()
        };
        let unmet: Vec<String> = request
            .checks
            .iter()
            .flat_map(|c| items_of(*c).iter())
            .chain(scenario_items.iter())
            .filter(|r| !after.is_met(**r))
            .map(Requirement::id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let finished = GitlabCheckFinished { check_id, unmet, deliveries_missing, could_not_look, skipped };
        self.record_check(id, CheckRecord::Finished(finished.clone()), actor).await?;
        progress(CheckProgress::Recorded("gitlab_check_finished"));
        Ok(CheckOutcome { check_id, finished, state: self.state(id).await? })
    }

    /// Waits (by the engine's clock) until every requested delivery arrived or the wait is
    /// over; returns the triggers whose delivery never came.
    async fn wait_for_deliveries(
        &self,
        id: IntegrationId,
        check_id: Uuid,
        sent: &BTreeSet<domain::Trigger>,
        settings: &CheckSettings,
        progress: &(dyn Fn(CheckProgress) + Send + Sync),
    ) -> Result<BTreeSet<domain::Trigger>, EngineError> {
        if sent.is_empty() {
            return Ok(BTreeSet::new());
        }
        let deadline = self.now() + chrono::Duration::from_std(settings.delivery_wait).unwrap_or_default();
        loop {
            let state = self.state(id).await?;
            let missing: BTreeSet<domain::Trigger> = sent
                .iter()
                .copied()
                .filter(|t| {
                    state.facts.test_deliveries.get(t).is_none_or(|p| p.check_id != check_id || p.received_at.is_none())
                })
                .collect();
            let now = self.now();
            if missing.is_empty() || now >= deadline {
                return Ok(missing);
            }
            progress(CheckProgress::Waiting {
                triggers: missing.iter().copied().collect(),
                seconds_left: (deadline - now).num_seconds().max(0) as u64,
            });
            tokio::time::sleep(settings.poll_interval).await;
        }
    }
}

/// One scenario run inside a run of checks: performs the playbook's scenarios in the customer's
/// GitLab, waits for their deliveries, watches for the Droid's comment, and cleans up. Each
/// write is recorded after it happened (all were announced when the run started).
struct ScenarioRun<'a> {
    engine: &'a Engine,
    id: IntegrationId,
    check_id: Uuid,
    actor: &'a Actor,
    settings: &'a CheckSettings,
    progress: &'a (dyn Fn(CheckProgress) + Send + Sync),
}

/// What a scenario run made in the customer's GitLab, for its clean-up.
#[derive(Default)]
struct Made {
    pushed: bool,
    merge_request: Option<u64>,
    issue: Option<u64>,
}

/// Where a scenario run performs, once decided.
struct Workspace {
    project_id: u64,
    /// golive created it (and deletes it unless asked to keep it).
    scratch: bool,
}

impl ScenarioRun<'_> {
    async fn record(
        &self,
        step: ScenarioStep,
        scenario: Option<Scenario>,
        outcome: StepOutcome,
    ) -> Result<(), EngineError> {
        let performed = ScenarioStepPerformed { check_id: self.check_id, step, scenario, outcome };
        self.engine.record_check(self.id, CheckRecord::ScenarioStep(performed), self.actor).await?;
        (self.progress)(CheckProgress::Recorded("scenario_step_performed"));
        Ok(())
    }

    async fn not_possible(&self, reason: String) -> Result<(), EngineError> {
        let reason = LongText::parse(reason).expect("golive's own words are valid");
        self.record(ScenarioStep::CreateScratchProject, None, StepOutcome::NotPossible { reason }).await
    }

    fn outcome(result: Result<Option<u64>, domain::CheckFailure>) -> StepOutcome {
        match result {
            Ok(gitlab_id) => StepOutcome::Done { gitlab_id },
            Err(failure) => StepOutcome::Failed(failure),
        }
    }

    /// Decides where to perform: a project the customer named (it must be where the hook
    /// listens), or a scratch project in the hook's group. Project hooks never see a new
    /// project, and system hooks send no scenario evidence.
    async fn workspace(
        &self,
        request: &CheckRequest,
        hook: Option<(HookLocation, u64)>,
        api: &GitlabApi,
    ) -> Result<Option<Workspace>, EngineError> {
        let reason = match (request.scenario_project, hook) {
            (_, None) => "no webhook with the issued URL was found in GitLab: nothing would carry the scenarios' deliveries; perform them by hand and record manual tests".to_owned(),
            (Some(named), Some((HookLocation::Project { project_id }, _))) if project_id != named => format!(
                "the webhook is a hook of project {project_id}: events of project {named} never reach it; name project {project_id}"
            ),
            (Some(project_id), Some((HookLocation::Project { .. } | HookLocation::Group { .. }, _))) => {
                return Ok(Some(Workspace { project_id, scratch: false }))
            }
            (None, Some((HookLocation::Group { group_id }, _))) => {
                let short = &self.check_id.simple().to_string()[..8];
                let name = format!("golive-scratch-{short}");
                let body = json!({
                    "name": name,
                    "path": name,
                    "namespace_id": group_id,
                    "visibility": "private",
                    "initialize_with_readme": true,
                    "description": format!("Created by golive to check Factory's GitLab integration (check {}); golive deletes it when the check ends.", self.check_id),
                });
                let created = api_checks::write_answer(api, api_checks::Method::POST, "/api/v4/projects", Some(&body)).await;
                // Only the project golive asked for is written to and deleted: GitLab's answer
                // must name it (its path, in the hook's group).
                let created = created.and_then(|answer| {
                    let ours = answer.get("path").and_then(|p| p.as_str()) == Some(name.as_str())
                        && answer.pointer("/namespace/id").and_then(|g| g.as_u64()) == Some(group_id);
                    match answer.get("id").and_then(|i| i.as_u64()) {
                        Some(project_id) if ours => Ok(Some(project_id)),
                        _ => Err(domain::CheckFailure {
                            category: domain::FindingCategory::Other,
                            detail: LongText::parse(
                                "GitLab's answer to creating the scratch project names another project: golive writes nothing there and deletes nothing",
                            )
                            .expect("golive's own words are valid"),
                        }),
                    }
                });
                let project_id = created.as_ref().ok().copied().flatten();
                self.record(ScenarioStep::CreateScratchProject, None, Self::outcome(created)).await?;
                return Ok(project_id.map(|project_id| Workspace { project_id, scratch: true }));
            }
            (None, Some((HookLocation::Project { project_id }, _))) => format!(
                "the webhook is a hook of project {project_id}: a new project never reaches it; run the scenarios there with scenario_project_id {project_id} (--scenario-project {project_id})"
            ),
            (_, Some((HookLocation::System, _))) => "the webhook is a system hook, whose deliveries are no scenario evidence: create a group or project hook, or perform the scenarios by hand and record manual tests".to_owned(),
        };
        self.not_possible(reason).await?;
        Ok(None)
    }

    async fn perform(
        &self,
        state: &domain::Integration,
        request: &CheckRequest,
        hook: Option<(HookLocation, u64)>,
        api: Option<&GitlabApi>,
        push_filter: Option<&crate::gitlab::branch_filter::BranchFilter>,
    ) -> Result<(), EngineError> {
        let Some(api) = api else {
            return self.not_possible("golive could not reach GitLab's API (see the checks above)".to_owned()).await;
        };
        let short = &self.check_id.simple().to_string()[..8];
        // GitLab sends a push only when the hook's push filter lets its branch through
        // (`ActiveHookFilter`): the run pushes to a branch that passes, or says why it cannot.
        let branch =
            match push_filter {
                None => format!("{}{short}", crate::gitlab::branch_filter::SCENARIO_BRANCH_PREFIX),
                Some(filter) => match filter.scenario_branch(short) {
                    // A branch named after the customer's own filter (`release/…`) may set off
                    // their release rules: only in a scratch project, never in a project of theirs.
                    Some(branch)
                        if request.scenario_project.is_some()
                            && !branch.starts_with(crate::gitlab::branch_filter::SCENARIO_BRANCH_PREFIX) =>
                    {
                        return self
                            .not_possible(
                                "the hook's push filter lets golive's own branch names through only under a \
                                 pattern of the customer's, and golive does not push such a branch into the \
                                 customer's project: run the scenarios in a scratch project, or set the hook's \
                                 push events to all branches"
                                    .to_owned(),
                            )
                            .await
                    }
                    Some(branch) => branch,
                    None => return self
                        .not_possible(
                            "the hook's push filter lets through no branch golive can choose for its scenario run: \
                             set the hook's push events to all branches, or perform the scenarios by hand and record \
                             manual tests"
                                .to_owned(),
                        )
                        .await,
                },
            };
        let Some(Workspace { project_id, scratch }) = self.workspace(request, hook, api).await? else { return Ok(()) };
        let project = format!("/api/v4/projects/{project_id}");
        let mut made = Made::default();
        // Whatever stops the steps, what golive made is cleaned up as announced.
        let performed = self.perform_steps(state, request, api, project_id, &branch, &mut made).await;
        let cleaned = self.clean_up(request, api, &project, &branch, scratch, &made).await;
        performed.and(cleaned)
    }

    /// Removes what the run made: the scratch project (unless kept), or in a named project the
    /// merge request and issue (closed) and the branch (deleted).
    async fn clean_up(
        &self,
        request: &CheckRequest,
        api: &GitlabApi,
        project: &str,
        branch: &str,
        scratch: bool,
        made: &Made,
    ) -> Result<(), EngineError> {
        let cleaned = if scratch {
            if request.keep_scratch_project {
                return Ok(());
            }
            api_checks::write(api, api_checks::Method::DELETE, project, None, None).await
        } else {
            let mut result = Ok(None);
            let close = json!({"state_event": "close"});
            if let Some(iid) = made.merge_request {
                let path = format!("{project}/merge_requests/{iid}");
                result = result.and(api_checks::write(api, api_checks::Method::PUT, &path, Some(&close), None).await);
            }
            if let Some(iid) = made.issue {
                let path = format!("{project}/issues/{iid}");
                result = result.and(api_checks::write(api, api_checks::Method::PUT, &path, Some(&close), None).await);
            }
            if made.pushed {
                // A branch made from a wildcard filter can hold `/`: GitLab takes it encoded.
                let encoded: String = url::form_urlencoded::byte_serialize(branch.as_bytes()).collect();
                let path = format!("{project}/repository/branches/{encoded}");
                result = result.and(api_checks::write(api, api_checks::Method::DELETE, &path, None, None).await);
            }
            result
        };
        self.record(ScenarioStep::CleanUp, None, Self::outcome(cleaned.map(|_| None))).await
    }

    async fn perform_steps(
        &self,
        state: &domain::Integration,
        request: &CheckRequest,
        api: &GitlabApi,
        project_id: u64,
        branch: &str,
        made: &mut Made,
    ) -> Result<(), EngineError> {
        let scenarios = &state.playbook.scenarios;
        let project = format!("/api/v4/projects/{project_id}");
        let short = &self.check_id.simple().to_string()[..8];
        let default = match api_checks::default_branch(api, project_id).await {
            Ok(branch) => branch,
            Err(failure) => {
                return self
                    .record(ScenarioStep::PushCommit, Some(Scenario::CodePushed), StepOutcome::Failed(failure))
                    .await
            }
        };
        let title = format!("golive check {short}: Factory integration test (safe to close)");
        let mut actions = vec![json!({"action": "create", "file_path": format!("golive-check-{short}.md"),
            "content": "Written by golive to check Factory's GitLab integration.\n"})];
        if scenarios.contains(&Scenario::PipelineRan) {
            actions.push(json!({"action": "create", "file_path": ".gitlab-ci.yml",
                "content": "golive-check:\n  script:\n    - echo \"golive checks Factory's integration\"\n"}));
        }
        let commit = json!({"branch": branch, "start_branch": default, "commit_message": title, "actions": actions});
        let pushed = api_checks::write(
            api,
            api_checks::Method::POST,
            &format!("{project}/repository/commits"),
            Some(&commit),
            None,
        )
        .await;
        let pushed_ok = pushed.is_ok();
        made.pushed = pushed_ok;
        self.record(ScenarioStep::PushCommit, Some(Scenario::CodePushed), Self::outcome(pushed)).await?;
        let mut performed = BTreeSet::from([Scenario::CodePushed]);
        if pushed_ok && scenarios.contains(&Scenario::MergeRequestCreated) {
            let body = json!({"source_branch": branch, "target_branch": default, "title": title, "remove_source_branch": true});
            let opened = api_checks::write(
                api,
                api_checks::Method::POST,
                &format!("{project}/merge_requests"),
                Some(&body),
                Some("iid"),
            )
            .await;
            made.merge_request = opened.as_ref().ok().copied().flatten();
            performed.insert(Scenario::MergeRequestCreated);
            self.record(ScenarioStep::OpenMergeRequest, Some(Scenario::MergeRequestCreated), Self::outcome(opened))
                .await?;
        }
        if scenarios.contains(&Scenario::IssueOpened) {
            let body =
                json!({"title": title, "description": "Opened by golive to check Factory's GitLab integration."});
            let opened = api_checks::write(
                api,
                api_checks::Method::POST,
                &format!("{project}/issues"),
                Some(&body),
                Some("iid"),
            )
            .await;
            made.issue = opened.as_ref().ok().copied().flatten();
            performed.insert(Scenario::IssueOpened);
            self.record(ScenarioStep::OpenIssue, Some(Scenario::IssueOpened), Self::outcome(opened)).await?;
        }
        if pushed_ok && scenarios.contains(&Scenario::PipelineRan) {
            let body = json!({"ref": branch});
            let created = api_checks::write(
                api,
                api_checks::Method::POST,
                &format!("{project}/pipeline"),
                Some(&body),
                Some("id"),
            )
            .await;
            performed.insert(Scenario::PipelineRan);
            self.record(ScenarioStep::CreatePipeline, Some(Scenario::PipelineRan), Self::outcome(created)).await?;
        }
        self.wait_for_scenarios(&performed).await?;
        if let Some(username) = &request.droid_username {
            self.watch_droid(api, &project, made.merge_request, made.issue, username).await?;
        }
        Ok(())
    }

    /// Waits (by the engine's clock) until every performed scenario was observed, or the wait
    /// is over.
    async fn wait_for_scenarios(&self, performed: &BTreeSet<Scenario>) -> Result<(), EngineError> {
        let deadline = self.engine.now() + chrono::Duration::from_std(self.settings.delivery_wait).unwrap_or_default();
        loop {
            let state = self.engine.state(self.id).await?;
            let missing: Vec<&Scenario> =
                performed.iter().filter(|s| !state.facts.scenarios_observed.contains_key(*s)).collect();
            if missing.is_empty() || self.engine.now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// Watches the merge request's and the issue's notes for a comment by the Droid's user.
    async fn watch_droid(
        &self,
        api: &GitlabApi,
        project: &str,
        merge_request: Option<u64>,
        issue: Option<u64>,
        username: &str,
    ) -> Result<(), EngineError> {
        let mut watched: Vec<(Scenario, String)> = Vec::new();
        if let Some(iid) = merge_request {
            watched.push((Scenario::MergeRequestCreated, format!("{project}/merge_requests/{iid}/notes")));
        }
        if let Some(iid) = issue {
            watched.push((Scenario::IssueOpened, format!("{project}/issues/{iid}/notes")));
        }
        let started = self.engine.now();
        let deadline = started + chrono::Duration::from_std(self.settings.droid_wait).unwrap_or_default();
        // Notes are read at most every second, however short the poll interval.
        let pause = self.settings.poll_interval.max(Duration::from_secs(1)).min(self.settings.droid_wait);
        while !watched.is_empty() {
            let mut still = Vec::new();
            for (scenario, notes) in watched {
                match api_checks::commented_by(api, &notes, username).await {
                    Ok(true) => {
                        let seconds = (self.engine.now() - started).num_seconds().max(0) as u64;
                        self.record(ScenarioStep::WatchDroidComment, Some(scenario), StepOutcome::Seen { seconds })
                            .await?
                    }
                    Ok(false) => still.push((scenario, notes)),
                    Err(failure) => {
                        self.record(ScenarioStep::WatchDroidComment, Some(scenario), StepOutcome::Failed(failure))
                            .await?
                    }
                }
            }
            watched = still;
            if watched.is_empty() {
                break;
            }
            if self.engine.now() >= deadline {
                for (scenario, _) in &watched {
                    self.record(ScenarioStep::WatchDroidComment, Some(*scenario), StepOutcome::NotSeen).await?;
                }
                break;
            }
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }
}
