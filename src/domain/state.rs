//! The state of one integration, folded from its events by an infallible `apply`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::binding::CredentialBinding;
use super::checks::{
    trigger_of, ApplicationChecked, ApplicationFinding, CheckFailure, CheckKind, CheckRun, Evidence,
    ScenarioStepPerformed, TestDeliveryProgress, WebhookChecked, WebhookFinding, CHECK_RUNS_KEPT,
    CHECK_RUN_ABANDONED_AFTER_MINUTES,
};
use super::event::{
    ApplicationRegistered, Cause, CredentialRotated, Event, FirewallConfigured, InstanceUrlSet, NetworkPolicyEvaluated,
    PrerequisitesConfirmed, VpcPeeringEstablished, VpnEstablished, WebhookCreated,
};
use super::playbook::Trigger;
use super::playbook::{Playbook, Scenario};
use super::secret::{IssuedWebhookCredentials, SealedSecret, TokenDigest};
use super::signals::{BlockCategory, ProbeResult};
use super::stage::Stage;
use super::values::{Date, HttpUrl, IntegrationId, LongText, Scope, ShortText};

/// One issued link, as folded into the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeLink {
    pub link_id: Uuid,
    pub token_digest: TokenDigest,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub redeemed_at: Option<DateTime<Utc>>,
}

/// Whether a link can still be used at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeLinkStatus {
    Open,
    Redeemed,
    Expired,
}

impl IntakeLink {
    pub fn status(&self, now: DateTime<Utc>) -> IntakeLinkStatus {
        if self.redeemed_at.is_some() {
            IntakeLinkStatus::Redeemed
        } else if now >= self.expires_at {
            IntakeLinkStatus::Expired
        } else {
            IntakeLinkStatus::Open
        }
    }
}

/// The block flag: set by a person (`block`) or by golive when something breaks once live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub category: BlockCategory,
    pub detail: LongText,
    pub since: DateTime<Utc>,
    pub cause: Option<Cause>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub reason: LongText,
    pub at: DateTime<Utc>,
    /// The stage the integration had reached when it was cancelled.
    pub from_stage: Stage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitoring {
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackItem {
    pub id: Uuid,
    pub summary: LongText,
    pub scenario: Option<Scenario>,
    pub reported_at: DateTime<Utc>,
    pub resolution: Option<LongText>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl FeedbackItem {
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }
}

/// The connectivity method recorded last: the one that counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Connectivity {
    VpcPeering(VpcPeeringEstablished),
    Vpn(VpnEstablished),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    pub token: SealedSecret,
    pub admin: bool,
    /// The instance the token was given for; usable only while it is the instance of record.
    pub bound_to: CredentialBinding,
    /// Set for good once the instance of record moved away from `bound_to`: moving back does
    /// not make the token usable again; only providing it again does.
    #[serde(default)]
    pub voided: bool,
}

/// The application secret on record and the instance it was given for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationSecret {
    pub secret: SealedSecret,
    pub bound_to: CredentialBinding,
    /// As for [`AccessToken::voided`].
    #[serde(default)]
    pub voided: bool,
}

/// The latest evidence about API connectivity, from a probe or a recorded check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiEvidence {
    pub ok: bool,
    pub at: DateTime<Utc>,
    pub source: EvidenceSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    Probe,
    ApiCheck,
    /// A check through GitLab's API that GitLab answered.
    GitlabCheck,
}

/// What the latest probe that reached the API said about the current access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFinding {
    pub active: Option<bool>,
    /// The probe was refused as not permitted (401/403, missing scopes, not admin).
    #[serde(default)]
    pub denied: bool,
    pub admin: Option<bool>,
    pub missing_scopes: BTreeSet<Scope>,
    pub at: DateTime<Utc>,
}

impl TokenFinding {
    /// Whether the probe contradicts the token being a usable admin token.
    pub fn contradicts_admin(&self) -> bool {
        self.denied || self.active == Some(false) || self.admin == Some(false) || !self.missing_scopes.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProbe {
    pub result: ProbeResult,
    pub at: DateTime<Utc>,
}

/// Counts of recorded (verified) deliveries. Refused deliveries are never events; the engine
/// counts those separately and hands them to `diagnose`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStats {
    pub recorded: u64,
    pub last_at: Option<DateTime<Utc>>,
}

/// Everything recorded about the guide's requirements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub prerequisites: Option<PrerequisitesConfirmed>,
    pub application: Option<ApplicationRegistered>,
    pub application_secret: Option<ApplicationSecret>,
    pub instance: InstanceUrlSet,
    pub access_token: Option<AccessToken>,
    pub information_submitted: bool,
    pub network_policy: Option<NetworkPolicyEvaluated>,
    pub connectivity: Option<Connectivity>,
    pub firewall: Option<FirewallConfigured>,
    pub webhook_credentials: Option<IssuedWebhookCredentials>,
    pub webhook: Option<WebhookCreated>,
    /// When a delivery was last verified with the current token; voided by a new token.
    pub verified_delivery_at: Option<DateTime<Utc>>,
    pub deliveries: DeliveryStats,
    pub api_connectivity: Option<ApiEvidence>,
    pub latest_probe: Option<RecordedProbe>,
    pub consecutive_probe_failures: u32,
    pub token_finding: Option<TokenFinding>,
    pub scenarios_observed: BTreeMap<Scenario, DateTime<Utc>>,
    pub validations: BTreeMap<Scenario, bool>,
    pub notes: u64,
    pub secrets_revealed: u64,
    pub secrets_shredded_at: Option<DateTime<Utc>>,
    /// The latest check of the application that found it or found it missing, and when.
    #[serde(default)]
    pub application_check: Option<(ApplicationChecked, DateTime<Utc>)>,
    /// The latest check of the webhook that found it or found it missing, and when.
    #[serde(default)]
    pub webhook_check: Option<(WebhookChecked, DateTime<Utc>)>,
    /// The test deliveries of the latest run that requested them, per trigger.
    #[serde(default)]
    pub test_deliveries: BTreeMap<Trigger, TestDeliveryProgress>,
    /// Scenarios for which only deliveries golive provoked (GitLab's sample data) arrived.
    #[serde(default)]
    pub provoked_only: BTreeSet<Scenario>,
    /// Per requirement id: the event that supplied the fact the item rests on.
    #[serde(default)]
    pub evidence: BTreeMap<String, Evidence>,
    /// The steps of the latest scenario run, in order, and when each was recorded.
    #[serde(default)]
    pub scenario_steps: Vec<(ScenarioStepPerformed, DateTime<Utc>)>,
    /// Scenarios whose Droid comment golive saw in a scenario run, and when (evidence for the
    /// validation step; the rep still records the verdict).
    #[serde(default)]
    pub droid_comments_seen: BTreeMap<Scenario, DateTime<Utc>>,
    /// The latest check of each kind that could not look (cleared when one looks).
    #[serde(default)]
    pub check_failures: BTreeMap<CheckKind, (CheckFailure, DateTime<Utc>)>,
}

/// One integration's state: a pure fold of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub id: IntegrationId,
    pub customer: ShortText,
    pub owner: Option<ShortText>,
    pub playbook: Playbook,
    /// Where golive is reached from outside for this integration, as recorded when it opened
    /// (`None` for integrations opened before golive recorded it).
    #[serde(default)]
    pub public_url: Option<HttpUrl>,
    pub stage: Stage,
    /// The number of events folded (1 after `integration_opened`).
    pub version: u64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub stage_entered_at: DateTime<Utc>,
    /// The last time a stage was entered or a requirement became met.
    pub last_progress_at: DateTime<Utc>,
    pub block: Option<Block>,
    pub cancellation: Option<Cancellation>,
    pub go_live_date: Option<Date>,
    pub monitoring: Option<Monitoring>,
    pub feedback: Vec<FeedbackItem>,
    pub facts: Facts,
    /// Customer intake links issued for this integration, oldest first.
    #[serde(default)]
    pub intake_links: Vec<IntakeLink>,
    /// The latest runs of checks through GitLab's API, oldest first (at most
    /// [`CHECK_RUNS_KEPT`]).
    #[serde(default)]
    pub check_runs: Vec<CheckRun>,
}

impl Integration {
    /// Folds a history from scratch. `None` when it does not start with `integration_opened`.
    pub fn replay<'a>(events: impl IntoIterator<Item = (&'a Event, DateTime<Utc>)>) -> Option<Integration> {
        let mut events = events.into_iter();
        let (first, at) = events.next()?;
        let mut state = Integration::from_opened(first, at)?;
        for (event, at) in events {
            state.apply(event, at);
        }
        Some(state)
    }

    /// The state right after `integration_opened`; `None` for any other event.
    pub fn from_opened(event: &Event, at: DateTime<Utc>) -> Option<Integration> {
        let Event::IntegrationOpened {
            integration_id,
            customer,
            gitlab_url,
            owner,
            playbook,
            ca_certificate_pem,
            public_url,
        } = event
        else {
            return None;
        };
        Some(Integration {
            id: *integration_id,
            customer: customer.clone(),
            owner: owner.clone(),
            playbook: playbook.clone(),
            public_url: public_url.clone(),
            stage: Stage::Created,
            version: 1,
            opened_at: at,
            updated_at: at,
            stage_entered_at: at,
            last_progress_at: at,
            block: None,
            cancellation: None,
            go_live_date: None,
            monitoring: None,
            feedback: Vec::new(),
            intake_links: Vec::new(),
            check_runs: Vec::new(),
            facts: Facts {
                prerequisites: None,
                application: None,
                application_secret: None,
                instance: InstanceUrlSet {
                    gitlab_url: gitlab_url.clone(),
                    ca_certificate_pem: ca_certificate_pem.clone(),
                    ssh_port: None,
                },
                access_token: None,
                information_submitted: false,
                network_policy: None,
                connectivity: None,
                firewall: None,
                webhook_credentials: None,
                webhook: None,
                verified_delivery_at: None,
                deliveries: DeliveryStats::default(),
                api_connectivity: None,
                latest_probe: None,
                consecutive_probe_failures: 0,
                token_finding: None,
                scenarios_observed: BTreeMap::new(),
                validations: BTreeMap::new(),
                notes: 0,
                secrets_revealed: 0,
                secrets_shredded_at: None,
                application_check: None,
                webhook_check: None,
                test_deliveries: BTreeMap::new(),
                provoked_only: BTreeSet::new(),
                evidence: BTreeMap::new(),
                check_failures: BTreeMap::new(),
                scenario_steps: Vec::new(),
                droid_comments_seen: BTreeMap::new(),
            },
        })
    }

    /// Folds one event recorded at `at`. Infallible: every event of a valid history applies.
    pub fn apply(&mut self, event: &Event, at: DateTime<Utc>) {
        let met_before = self.met_requirement_count();
        self.version += 1;
        self.updated_at = at;
        let facts = &mut self.facts;
        match event {
            Event::IntegrationOpened { .. } => {
                // Only ever the first event; `from_opened` folds it. A second one cannot be
                // produced by `decide`, so it is ignored rather than allowed to reset history.
            }
            Event::PrerequisitesConfirmed(p) => facts.prerequisites = Some(p.clone()),
            Event::ApplicationRegistered(a) => facts.application = Some(a.clone()),
            Event::ApplicationSecretProvided { secret, bound_to } => {
                facts.application_secret = Some(ApplicationSecret {
                    secret: secret.clone(),
                    bound_to: bound_to.clone().unwrap_or_else(|| CredentialBinding::of(&facts.instance)),
                    voided: false,
                })
            }
            Event::InstanceUrlSet(settings) => {
                if settings.gitlab_url != facts.instance.gitlab_url {
                    // Evidence about another instance says nothing about this one.
                    facts.api_connectivity = None;
                    facts.token_finding = None;
                }
                facts.instance = settings.clone();
                // A credential stays bound to where its owner sent it: once the instance moves
                // away, it is void for good, even if the instance later moves back.
                let now_bound = CredentialBinding::of(&facts.instance);
                if let Some(token) = facts.access_token.as_mut().filter(|t| t.bound_to != now_bound) {
                    token.voided = true;
                }
                if let Some(secret) = facts.application_secret.as_mut().filter(|s| s.bound_to != now_bound) {
                    secret.voided = true;
                }
            }
            Event::AccessTokenProvided { token, admin, bound_to } => {
                let replaced =
                    facts.access_token.as_ref().is_some_and(|old| old.token.fingerprint != token.fingerprint);
                if replaced {
                    facts.api_connectivity = None;
                }
                facts.token_finding = None;
                let bound_to = bound_to.clone().unwrap_or_else(|| CredentialBinding::of(&facts.instance));
                facts.access_token = Some(AccessToken { token: token.clone(), admin: *admin, bound_to, voided: false });
            }
            Event::InformationSubmitted {} => facts.information_submitted = true,
            Event::NetworkPolicyEvaluated(p) => facts.network_policy = Some(p.clone()),
            Event::VpcPeeringEstablished(p) => facts.connectivity = Some(Connectivity::VpcPeering(p.clone())),
            Event::VpnEstablished(v) => facts.connectivity = Some(Connectivity::Vpn(v.clone())),
            Event::FirewallConfigured(f) => facts.firewall = Some(f.clone()),
            Event::WebhookCredentialsIssued(credentials) => {
                // A delivery verified with the previous token proves nothing about the new one.
                facts.verified_delivery_at = None;
                facts.webhook_credentials = Some(credentials.clone());
            }
            Event::WebhookCreated(w) => facts.webhook = Some(w.clone()),
            Event::WebhookDeliveryRecorded(delivery) => {
                facts.deliveries.recorded += 1;
                facts.deliveries.last_at = Some(at);
                facts.verified_delivery_at = Some(at);
                // A delivery answering a test golive asked for, while its run is under way,
                // proves the delivery path; it carries GitLab's sample data, so it is no
                // scenario evidence.
                let running = self
                    .check_runs
                    .last()
                    .filter(|r| {
                        r.finished_at.is_none()
                            && at - r.started_at < Duration::minutes(CHECK_RUN_ABANDONED_AFTER_MINUTES)
                    })
                    .map(|r| r.check_id);
                let provoked = running.and_then(|check_id| {
                    let answered = |p: &&mut TestDeliveryProgress| {
                        p.check_id == check_id
                            && p.received_at.is_none()
                            && !p.closed
                            && matches!(p.outcome, None | Some(super::checks::TestRequestOutcome::Delivered))
                    };
                    match trigger_of(delivery.project_event()) {
                        Some(trigger) => facts.test_deliveries.get_mut(&trigger).filter(answered),
                        // A system hook's test arrives as a System Hook, whatever was asked.
                        None => facts
                            .test_deliveries
                            .values_mut()
                            .find(|p| matches!(p.location, super::checks::HookLocation::System) && answered(p)),
                    }
                });
                match provoked {
                    Some(progress) => {
                        progress.received_at = Some(at);
                        if let Some(scenario) = delivery.scenario_evidence() {
                            if !facts.scenarios_observed.contains_key(&scenario) {
                                facts.provoked_only.insert(scenario);
                            }
                        }
                    }
                    None => {
                        if let Some(scenario) = delivery.scenario_evidence() {
                            facts.scenarios_observed.entry(scenario).or_insert(at);
                        }
                    }
                }
            }
            Event::ApiCheckRecorded(check) => {
                facts.api_connectivity = Some(ApiEvidence { ok: check.ok, at, source: EvidenceSource::ApiCheck });
            }
            Event::ProbeResultRecorded(result) => {
                if result.is_evidence() {
                    facts.api_connectivity =
                        Some(ApiEvidence { ok: result.api_reachable, at, source: EvidenceSource::Probe });
                    if result.api_reachable && result.category.is_none() {
                        facts.consecutive_probe_failures = 0;
                    } else {
                        facts.consecutive_probe_failures += 1;
                    }
                    if result.api_reachable {
                        facts.token_finding = Some(TokenFinding {
                            active: result.token_active,
                            denied: result.category == Some(super::signals::FindingCategory::PermissionDenied),
                            admin: result.admin,
                            missing_scopes: match &result.token_scopes {
                                Some(scopes) => {
                                    self.playbook.required_token_scopes.difference(scopes).cloned().collect()
                                }
                                None => BTreeSet::new(),
                            },
                            at,
                        });
                    }
                }
                facts.latest_probe = Some(RecordedProbe { result: result.clone(), at });
            }
            Event::ManualTestRecorded(test) => {
                if test.passed {
                    facts.scenarios_observed.entry(test.scenario).or_insert(at);
                }
            }
            Event::ResponseValidated(v) => {
                facts.validations.insert(v.scenario, v.correct);
            }
            Event::FeedbackReported { feedback_id, summary, scenario } => self.feedback.push(FeedbackItem {
                id: *feedback_id,
                summary: summary.clone(),
                scenario: *scenario,
                reported_at: at,
                resolution: None,
                resolved_at: None,
            }),
            Event::FeedbackResolved { feedback_id, resolution } => {
                if let Some(item) = self.feedback.iter_mut().find(|f| f.id == *feedback_id) {
                    item.resolution = Some(resolution.clone());
                    item.resolved_at = Some(at);
                }
            }
            Event::GoLiveScheduled { date } => self.go_live_date = Some(*date),
            Event::StageEntered { stage } => {
                self.stage = *stage;
                self.stage_entered_at = at;
                self.last_progress_at = at;
            }
            Event::StageRegressed { to, .. } => {
                self.stage = *to;
                self.stage_entered_at = at;
            }
            Event::MonitoringStarted { started_at, ends_at } => {
                self.monitoring = Some(Monitoring { started_at: *started_at, ends_at: *ends_at, completed_at: None })
            }
            Event::MonitoringCompleted { completed_at } => {
                if let Some(monitoring) = &mut self.monitoring {
                    monitoring.completed_at = Some(*completed_at);
                }
                self.last_progress_at = at;
            }
            Event::OwnerAssigned { owner } => self.owner = Some(owner.clone()),
            Event::NoteAdded { .. } => facts.notes += 1,
            Event::IntegrationBlocked { category, detail, cause } => {
                self.block =
                    Some(Block { category: *category, detail: detail.clone(), since: at, cause: cause.clone() })
            }
            Event::IntegrationUnblocked { .. } => self.block = None,
            Event::CredentialRotated(rotated) => match rotated {
                CredentialRotated::ApplicationSecret { replacement, bound_to } => {
                    let bound_to = bound_to.clone().unwrap_or_else(|| CredentialBinding::of(&facts.instance));
                    facts.application_secret =
                        replacement.clone().map(|secret| ApplicationSecret { secret, bound_to, voided: false });
                }
                CredentialRotated::AccessToken { replacement, admin, bound_to } => {
                    let admin = admin.or(facts.access_token.as_ref().map(|t| t.admin)).unwrap_or(false);
                    let bound_to = bound_to.clone().unwrap_or_else(|| CredentialBinding::of(&facts.instance));
                    facts.access_token =
                        replacement.clone().map(|token| AccessToken { token, admin, bound_to, voided: false });
                    facts.api_connectivity = None;
                    facts.token_finding = None;
                }
                CredentialRotated::WebhookToken { issued } => {
                    facts.verified_delivery_at = None;
                    facts.webhook_credentials = Some(issued.clone());
                }
            },
            Event::PublicUrlChanged { public_url, redirect_uri } => {
                self.public_url = Some(public_url.clone());
                if let Some(redirect_uri) = redirect_uri {
                    self.playbook.redirect_uri = redirect_uri.clone();
                }
            }
            Event::IntegrationCancelled { reason } => {
                self.cancellation = Some(Cancellation { reason: reason.clone(), at, from_stage: self.stage });
                self.stage = Stage::Cancelled;
                self.stage_entered_at = at;
            }
            Event::SecretRevealed { .. } => facts.secrets_revealed += 1,
            Event::SecretsShredded {} => facts.secrets_shredded_at = Some(at),
            Event::IntakeLinkIssued { link_id, token_digest, expires_at } => self.intake_links.push(IntakeLink {
                link_id: *link_id,
                token_digest: token_digest.clone(),
                issued_at: at,
                expires_at: *expires_at,
                redeemed_at: None,
            }),
            Event::IntakeRedeemed { link_id } => {
                if let Some(link) = self.intake_links.iter_mut().find(|l| l.link_id == *link_id) {
                    link.redeemed_at = Some(at);
                }
            }
            Event::GitlabCheckStarted(started) => {
                self.check_runs.push(CheckRun {
                    check_id: started.check_id,
                    checks: started.checks.clone(),
                    started_at: at,
                    finished_at: None,
                    unmet: Vec::new(),
                    deliveries_missing: BTreeSet::new(),
                    could_not_look: BTreeSet::new(),
                    skipped: BTreeSet::new(),
                });
                let excess = self.check_runs.len().saturating_sub(CHECK_RUNS_KEPT);
                self.check_runs.drain(..excess);
                if started.checks.contains(&super::checks::CheckKind::TestDeliveries) {
                    facts.test_deliveries.clear();
                }
                if started.checks.contains(&CheckKind::Scenarios) {
                    facts.scenario_steps.clear();
                }
            }
            Event::ApplicationChecked(checked) => match &checked.finding {
                ApplicationFinding::Failed(failure) => {
                    facts.check_failures.insert(CheckKind::Application, (failure.clone(), at));
                }
                _ => {
                    facts.check_failures.remove(&CheckKind::Application);
                    facts.application_check = Some((checked.clone(), at));
                    // GitLab's API answered with the customer's token: connectivity shown.
                    facts.api_connectivity = Some(ApiEvidence { ok: true, at, source: EvidenceSource::GitlabCheck });
                }
            },
            Event::WebhookChecked(checked) => match &checked.finding {
                WebhookFinding::Failed(failure) => {
                    facts.check_failures.insert(CheckKind::Webhook, (failure.clone(), at));
                }
                // A search that stopped at its limits saw only part of GitLab: no fact about
                // the webhook, whatever it did not see.
                WebhookFinding::NotFound { complete: false, .. } => {
                    let failure = super::checks::CheckFailure {
                        category: super::signals::FindingCategory::Other,
                        detail: LongText::parse(
                            "the search for the webhook stopped at its limits before it saw every hook: name the group or project it lives in",
                        )
                        .expect("golive's own sentence is valid"),
                    };
                    facts.check_failures.insert(CheckKind::Webhook, (failure, at));
                }
                _ => {
                    facts.check_failures.remove(&CheckKind::Webhook);
                    facts.webhook_check = Some((checked.clone(), at));
                    facts.api_connectivity = Some(ApiEvidence { ok: true, at, source: EvidenceSource::GitlabCheck });
                }
            },
            Event::TestDeliveryRequested(requested) => {
                facts.test_deliveries.insert(
                    requested.trigger,
                    TestDeliveryProgress {
                        check_id: requested.check_id,
                        location: requested.location,
                        outcome: None,
                        requested_at: at,
                        received_at: None,
                        closed: false,
                    },
                );
            }
            Event::TestDeliveryAnswered(answered) => {
                let progress = facts.test_deliveries.entry(answered.trigger).or_insert(TestDeliveryProgress {
                    check_id: answered.check_id,
                    location: answered.location,
                    outcome: None,
                    requested_at: at,
                    received_at: None,
                    closed: false,
                });
                progress.outcome = Some(answered.outcome.clone());
            }
            Event::ScenarioStepPerformed(performed) => {
                // From here the run performs real scenarios: a test delivery still awaited is
                // no longer, so a real delivery is not taken for it.
                for progress in facts.test_deliveries.values_mut().filter(|p| p.check_id == performed.check_id) {
                    progress.closed = true;
                }
                if let (Some(scenario), super::checks::StepOutcome::Seen { .. }) =
                    (performed.scenario, &performed.outcome)
                {
                    facts.droid_comments_seen.insert(scenario, at);
                }
                facts.scenario_steps.push((performed.clone(), at));
            }
            Event::GitlabCheckFinished(finished) => {
                if let Some(run) = self.check_runs.iter_mut().find(|r| r.check_id == finished.check_id) {
                    run.finished_at = Some(at);
                    run.unmet = finished.unmet.clone();
                    run.deliveries_missing = finished.deliveries_missing.clone();
                    run.could_not_look = finished.could_not_look.clone();
                    run.skipped = finished.skipped.clone();
                }
            }
        }
        self.note_evidence(event, at);
        if self.met_requirement_count() > met_before {
            self.last_progress_at = at;
        }
    }

    /// The run of checks under way at `now`, if one is: started, not finished, and not
    /// abandoned (a run whose process stopped never finishes; after
    /// [`CHECK_RUN_ABANDONED_AFTER_MINUTES`] another may start).
    pub fn check_under_way(&self, now: DateTime<Utc>) -> Option<&CheckRun> {
        self.check_runs.last().filter(|r| {
            r.finished_at.is_none() && now - r.started_at < Duration::minutes(CHECK_RUN_ABANDONED_AFTER_MINUTES)
        })
    }

    /// The access token on record, if it was given for the instance of record (origin and CA).
    pub fn usable_access_token(&self) -> Option<&AccessToken> {
        let current = CredentialBinding::of(&self.facts.instance);
        self.facts.access_token.as_ref().filter(|t| !t.voided && t.bound_to == current)
    }

    /// The application secret on record, if it was given for the instance of record.
    pub fn usable_application_secret(&self) -> Option<&ApplicationSecret> {
        let current = CredentialBinding::of(&self.facts.instance);
        self.facts.application_secret.as_ref().filter(|s| !s.voided && s.bound_to == current)
    }

    pub fn is_cancelled(&self) -> bool {
        self.stage == Stage::Cancelled
    }

    pub fn open_feedback(&self) -> impl Iterator<Item = &FeedbackItem> {
        self.feedback.iter().filter(|f| f.is_open())
    }

    /// Whole days spent in the current stage at `now`.
    pub fn days_in_stage(&self, now: DateTime<Utc>) -> i64 {
        (now - self.stage_entered_at).num_days().max(0)
    }

    /// Whether monitoring is under way: live, window started, not completed.
    pub fn is_monitoring(&self) -> bool {
        self.stage == Stage::Live && self.monitoring.as_ref().is_some_and(|m| m.completed_at.is_none())
    }

    /// The monitoring window's length.
    pub fn monitoring_window(&self) -> Duration {
        Duration::days(i64::from(self.playbook.monitoring_days))
    }
}
