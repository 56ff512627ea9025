//! The guide's checklist: each requirement with a stable id, a plain-English label, the stage it
//! gates, and whether it holds. Stage entry and regression are computed from here alone.

use serde::Serialize;

use super::checks::{ApplicationFinding, Evidence, EvidenceOrigin, HookAlert, WebhookFinding};
use super::event::{CredentialRotated, Event};
use super::playbook::{ApiEvidenceItem, Scenario, Trigger};
use super::stage::Stage;
use super::state::{Connectivity, Integration};

/// A requirement of the guide. Scenario requirements exist once per playbook scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requirement {
    PrerequisitesConfirmed,
    ApplicationRegistered,
    ApplicationScopes,
    ApplicationSecretProvided,
    InstanceUrl,
    AccessTokenProvided,
    AccessTokenAdmin,
    InformationSubmitted,
    NetworkPolicyEvaluated,
    Connectivity,
    FirewallOutboundHttps,
    FirewallOutboundSsh,
    WebhookEndpointReachable,
    WebhookCredentialsIssued,
    WebhookCreatedWithIssuedUrl,
    WebhookTriggers,
    WebhookDeliveryVerified,
    ApiConnectivity,
    WebhookFunctional,
    ScenarioObserved(Scenario),
    ResponseValidated(Scenario),
}

/// The requirements that do not depend on the playbook's scenarios, in checklist order.
const FIXED: [Requirement; 19] = [
    Requirement::PrerequisitesConfirmed,
    Requirement::ApplicationRegistered,
    Requirement::ApplicationScopes,
    Requirement::ApplicationSecretProvided,
    Requirement::InstanceUrl,
    Requirement::AccessTokenProvided,
    Requirement::AccessTokenAdmin,
    Requirement::InformationSubmitted,
    Requirement::NetworkPolicyEvaluated,
    Requirement::Connectivity,
    Requirement::FirewallOutboundHttps,
    Requirement::FirewallOutboundSsh,
    Requirement::WebhookEndpointReachable,
    Requirement::WebhookCredentialsIssued,
    Requirement::WebhookCreatedWithIssuedUrl,
    Requirement::WebhookTriggers,
    Requirement::WebhookDeliveryVerified,
    Requirement::ApiConnectivity,
    Requirement::WebhookFunctional,
];

impl Requirement {
    /// The stable id, e.g. `info.application_scopes` or `testing.scenario_observed.code_pushed`.
    pub fn id(&self) -> String {
        let fixed = match self {
            Requirement::PrerequisitesConfirmed => "info.prerequisites_confirmed",
            Requirement::ApplicationRegistered => "info.application_registered",
            Requirement::ApplicationScopes => "info.application_scopes",
            Requirement::ApplicationSecretProvided => "info.application_secret_provided",
            Requirement::InstanceUrl => "info.instance_url",
            Requirement::AccessTokenProvided => "info.access_token_provided",
            Requirement::AccessTokenAdmin => "info.access_token_admin",
            Requirement::InformationSubmitted => "info.information_submitted",
            Requirement::NetworkPolicyEvaluated => "network.policy_evaluated",
            Requirement::Connectivity => "network.connectivity",
            Requirement::FirewallOutboundHttps => "network.firewall_outbound_https",
            Requirement::FirewallOutboundSsh => "network.firewall_outbound_ssh",
            Requirement::WebhookEndpointReachable => "network.webhook_endpoint_reachable",
            Requirement::WebhookCredentialsIssued => "webhook.credentials_issued",
            Requirement::WebhookCreatedWithIssuedUrl => "webhook.created_with_issued_url",
            Requirement::WebhookTriggers => "webhook.triggers",
            Requirement::WebhookDeliveryVerified => "webhook.delivery_verified",
            Requirement::ApiConnectivity => "testing.api_connectivity",
            Requirement::WebhookFunctional => "testing.webhook_functional",
            Requirement::ScenarioObserved(s) => return format!("testing.scenario_observed.{s}"),
            Requirement::ResponseValidated(s) => return format!("validation.response_correct.{s}"),
        };
        fixed.to_owned()
    }

    /// The stage this requirement gates.
    pub fn stage(&self) -> Stage {
        use Requirement::*;
        match self {
            PrerequisitesConfirmed
            | ApplicationRegistered
            | ApplicationScopes
            | ApplicationSecretProvided
            | InstanceUrl
            | AccessTokenProvided
            | AccessTokenAdmin
            | InformationSubmitted => Stage::InfoGathered,
            NetworkPolicyEvaluated
            | Connectivity
            | FirewallOutboundHttps
            | FirewallOutboundSsh
            | WebhookEndpointReachable => Stage::NetworkEstablished,
            WebhookCredentialsIssued | WebhookCreatedWithIssuedUrl | WebhookTriggers | WebhookDeliveryVerified => {
                Stage::WebhookLive
            }
            ApiConnectivity | WebhookFunctional | ScenarioObserved(_) => Stage::Tested,
            ResponseValidated(_) => Stage::Validated,
        }
    }

    /// The troubleshooting category that fits when this requirement breaks.
    pub fn trouble_category(&self) -> super::signals::BlockCategory {
        use super::signals::BlockCategory;
        use Requirement::*;
        match self {
            ApplicationRegistered
            | ApplicationScopes
            | ApplicationSecretProvided
            | AccessTokenProvided
            | AccessTokenAdmin => BlockCategory::PermissionDenied,
            Connectivity | FirewallOutboundHttps | FirewallOutboundSsh | ApiConnectivity | InstanceUrl => {
                BlockCategory::ApiFailure
            }
            WebhookEndpointReachable
            | WebhookCredentialsIssued
            | WebhookCreatedWithIssuedUrl
            | WebhookTriggers
            | WebhookDeliveryVerified
            | WebhookFunctional => BlockCategory::WebhookNotReceived,
            _ => BlockCategory::Other,
        }
    }
}

/// Why an item a playbook reserves for GitLab's API is unmet while a person's record matches.
const API_EVIDENCE_REQUIRED: &str =
    "this playbook requires GitLab's API to confirm it (a person's record is not enough): run golive check";

/// Why a requirement is unmet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnmetReason {
    /// Nothing has been recorded for it yet.
    NothingRecorded,
    /// Something was recorded, and this says what differs from what the guide expects.
    Differs(String),
}

impl UnmetReason {
    pub fn into_text(self) -> String {
        match self {
            UnmetReason::NothingRecorded => "nothing recorded yet".to_owned(),
            UnmetReason::Differs(text) => text,
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    pub id: String,
    pub label: String,
    pub stage: Stage,
    pub met: bool,
    /// Why an unmet item is unmet, naming what differs (expected vs recorded); `None` when met.
    pub reason: Option<String>,
    /// Whether something was recorded for this item that differs from what the guide expects
    /// (rather than nothing recorded yet): what a rep who just recorded it must hear about.
    pub differs: bool,
    /// What the item rests on (the rep's word, the customer's intake, GitLab's API or a
    /// delivery), with the event and time that supplied it; `None` while nothing is recorded.
    pub evidence: Option<Evidence>,
}

fn list(items: impl IntoIterator<Item = impl ToString>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Whether the test-only switch disables this stage's guard, so the test suite can prove it
/// notices (`GOLIVE_BREAK_GUARD=<stage> cargo test --features break-guards`). Always false in
/// ordinary builds: the switch exists only with the feature.
pub(crate) fn guard_broken(name: &str) -> bool {
    #[cfg(feature = "break-guards")]
    {
        crate::sources::broken_guard() == Some(name)
    }
    #[cfg(not(feature = "break-guards"))]
    {
        let _ = name;
        false
    }
}

impl Integration {
    /// Every requirement of this integration's playbook, in checklist order.
    pub fn requirements(&self) -> impl Iterator<Item = Requirement> + '_ {
        let scenarios = &self.playbook.scenarios;
        let observed = scenarios.iter().map(|s| Requirement::ScenarioObserved(*s));
        let validated = scenarios.iter().map(|s| Requirement::ResponseValidated(*s));
        FIXED.into_iter().chain(observed).chain(validated)
    }

    /// Whether a requirement holds now.
    pub fn is_met(&self, requirement: Requirement) -> bool {
        let facts = &self.facts;
        let playbook = &self.playbook;
        match requirement {
            Requirement::PrerequisitesConfirmed => facts
                .prerequisites
                .as_ref()
                .is_some_and(|p| p.gitlab_admin_access && p.network_access && p.factory_admin_account),
            Requirement::ApplicationRegistered if self.rests_on_api(requirement) => {
                self.api_application_problems().is_some_and(|problems| problems.is_empty())
            }
            Requirement::ApplicationRegistered => {
                !self.api_evidence_required(requirement)
                    && facts
                        .application
                        .as_ref()
                        .is_some_and(|a| a.name == playbook.application_name && a.redirect_uri == playbook.redirect_uri)
            }
            Requirement::ApplicationScopes => {
                facts.application.as_ref().is_some_and(|a| a.scopes.is_superset(&playbook.required_scopes))
            }
            Requirement::ApplicationSecretProvided => self.usable_application_secret().is_some(),
            Requirement::InstanceUrl => facts.instance.gitlab_url.is_https() || playbook.allow_http,
            Requirement::AccessTokenProvided => self.usable_access_token().is_some(),
            Requirement::AccessTokenAdmin => {
                self.usable_access_token().is_some_and(|t| t.admin)
                    && !facts.token_finding.as_ref().is_some_and(|f| f.contradicts_admin())
            }
            Requirement::InformationSubmitted => facts.information_submitted,
            Requirement::NetworkPolicyEvaluated => facts.network_policy.is_some(),
            Requirement::Connectivity => match &facts.connectivity {
                Some(Connectivity::VpcPeering(p)) => p.route_tables_configured,
                Some(Connectivity::Vpn(v)) => v.tunnel_established && v.ipsec_compatible,
                None => false,
            },
            Requirement::FirewallOutboundHttps => facts.firewall.as_ref().is_some_and(|f| f.outbound_https),
            Requirement::FirewallOutboundSsh => facts.firewall.as_ref().is_some_and(|f| f.outbound_ssh),
            Requirement::WebhookEndpointReachable => {
                facts.firewall.as_ref().is_some_and(|f| f.webhook_endpoint_reachable)
            }
            Requirement::WebhookCredentialsIssued => facts
                .webhook_credentials
                .as_ref()
                .is_some_and(|issued| self.issued_under_public_url(&issued.webhook_url)),
            Requirement::WebhookCreatedWithIssuedUrl if self.rests_on_api(requirement) => {
                self.api_webhook_url_problems().is_some_and(|problems| problems.is_empty())
            }
            Requirement::WebhookCreatedWithIssuedUrl => {
                !self.api_evidence_required(requirement)
                    && match (&facts.webhook, &facts.webhook_credentials) {
                        (Some(hook), Some(issued)) => hook.url == issued.webhook_url,
                        _ => false,
                    }
            }
            Requirement::WebhookTriggers if self.rests_on_api(requirement) => {
                self.api_webhook_triggers_missing().is_some_and(|missing| missing.is_empty())
            }
            Requirement::WebhookTriggers => {
                !self.api_evidence_required(requirement)
                    && facts.webhook.as_ref().is_some_and(|w| w.triggers.is_superset(&playbook.required_triggers))
            }
            Requirement::WebhookDeliveryVerified | Requirement::WebhookFunctional => {
                facts.verified_delivery_at.is_some()
            }
            Requirement::ApiConnectivity => facts.api_connectivity.as_ref().is_some_and(|e| e.ok),
            Requirement::ScenarioObserved(s) => facts.scenarios_observed.contains_key(&s),
            Requirement::ResponseValidated(s) => facts.validations.get(&s) == Some(&true),
        }
    }

    /// How many requirements hold: rises exactly when something became met.
    pub(crate) fn met_requirement_count(&self) -> usize {
        self.requirements().filter(|r| self.is_met(*r)).count()
    }

    /// Whether every requirement of `stage` and of all earlier stages holds.
    pub fn requirements_hold_through(&self, stage: Stage) -> bool {
        self.requirements().filter(|r| r.stage() <= stage && !guard_broken(r.stage().as_str())).all(|r| self.is_met(r))
    }

    /// The unmet requirements of `stage` and of all earlier stages.
    pub fn unmet_through(&self, stage: Stage) -> Vec<Requirement> {
        self.requirements().filter(|r| r.stage() <= stage && !self.is_met(*r)).collect()
    }

    /// The highest automatic stage (or `created`) whose requirements, and all earlier ones, hold.
    pub fn highest_holding_stage(&self) -> Stage {
        let mut holding = Stage::Created;
        for stage in Stage::AUTOMATIC {
            if !self.requirements_hold_through(stage) {
                break;
            }
            holding = stage;
        }
        holding
    }

    /// A plain-English label for a requirement, naming what the playbook expects.
    pub fn label(&self, requirement: Requirement) -> String {
        let playbook = &self.playbook;
        match requirement {
            Requirement::PrerequisitesConfirmed => "Prerequisites confirmed: customer has GitLab admin access, network access between GitLab and Factory's AWS VPC is possible, Factory account with admin privileges".into(),
            Requirement::ApplicationRegistered => format!(
                "GitLab application registered as \"{}\" with redirect URI {} and an Application ID",
                playbook.application_name, playbook.redirect_uri
            ),
            Requirement::ApplicationScopes => {
                format!("Application scopes include {}", list(&playbook.required_scopes))
            }
            Requirement::ApplicationSecretProvided => match &self.facts.application_secret {
                Some(s) if self.usable_application_secret().is_none() => format!(
                    "Application Secret provided for this instance (the one on record was given for {})",
                    s.bound_to.describe()
                ),
                _ => "Application Secret provided".into(),
            },
            Requirement::InstanceUrl => if playbook.allow_http {
                "GitLab instance URL set (http or https)".into()
            } else {
                "GitLab instance URL set (https)".into()
            },
            Requirement::AccessTokenProvided => match &self.facts.access_token {
                Some(t) if self.usable_access_token().is_none() => format!(
                    "Access token provided for this instance (the one on record was given for {})",
                    t.bound_to.describe()
                ),
                _ => "Access token provided".into(),
            },
            Requirement::AccessTokenAdmin => format!(
                "Access token has admin rights and the token scopes {} (no probe says otherwise)",
                list(&playbook.required_token_scopes)
            ),
            Requirement::InformationSubmitted => "Information submitted".into(),
            Requirement::NetworkPolicyEvaluated => {
                "Network policy evaluated (barriers recorded, possibly none)".into()
            }
            Requirement::Connectivity => "Connectivity: VPC peering with route tables configured, or a VPN tunnel with compatible IPsec settings".into(),
            Requirement::FirewallOutboundHttps => "Firewall allows outbound HTTPS".into(),
            Requirement::FirewallOutboundSsh => "Firewall allows outbound SSH".into(),
            Requirement::WebhookEndpointReachable => "Webhook endpoint reachable from GitLab".into(),
            Requirement::WebhookCredentialsIssued => "Webhook credentials issued by golive".into(),
            Requirement::WebhookCreatedWithIssuedUrl => match &self.facts.webhook_credentials {
                Some(issued) => format!("Webhook created in GitLab with URL {}", issued.webhook_url),
                None => "Webhook created in GitLab with the issued URL".into(),
            },
            Requirement::WebhookTriggers => {
                format!("Webhook triggers include {}", list(&playbook.required_triggers))
            }
            Requirement::WebhookDeliveryVerified => {
                "A delivery verified with the current secret token (GitLab's Test button sends one)".into()
            }
            Requirement::ApiConnectivity => {
                "API connectivity verified (a successful probe or API check)".into()
            }
            Requirement::WebhookFunctional => "Webhook functional (a verified delivery)".into(),
            Requirement::ScenarioObserved(s) => {
                format!("Scenario {s} observed: {}", s.description())
            }
            Requirement::ResponseValidated(s) => {
                format!("Droid response to {s} validated as correct")
            }
        }
    }

    /// Why a requirement is unmet, in golive's words (recorded values golive itself validated,
    /// never a probed server's words); `None` when it is met.
    pub fn unmet_reason(&self, requirement: Requirement) -> Option<UnmetReason> {
        if self.is_met(requirement) {
            return None;
        }
        let facts = &self.facts;
        let playbook = &self.playbook;
        let nothing = || Some(UnmetReason::NothingRecorded);
        let differs = |text: String| Some(UnmetReason::Differs(text));
        match requirement {
            Requirement::PrerequisitesConfirmed => match &facts.prerequisites {
                None => nothing(),
                Some(p) => {
                    let mut missing = Vec::new();
                    if !p.gitlab_admin_access {
                        missing.push("GitLab admin access");
                    }
                    if !p.network_access {
                        missing.push("network access");
                    }
                    if !p.factory_admin_account {
                        missing.push("a Factory admin account");
                    }
                    differs(format!("recorded as not confirmed: {}", missing.join(", ")))
                }
            },
            Requirement::ApplicationRegistered if self.rests_on_api(requirement) => {
                differs(self.api_application_problems().unwrap_or_default().join("; "))
            }
            Requirement::ApplicationRegistered if self.api_evidence_required(requirement) && self.rep_application_matches() => {
                differs(API_EVIDENCE_REQUIRED.to_owned())
            }
            Requirement::ApplicationRegistered => match &facts.application {
                None => nothing(),
                Some(a) => {
                    let mut what = Vec::new();
                    if a.name != playbook.application_name {
                        let case = if a.name.as_str().eq_ignore_ascii_case(playbook.application_name.as_str()) {
                            " (names are compared exactly, case included)"
                        } else {
                            ""
                        };
                        what.push(format!(
                            "the name recorded is \"{}\", the guide expects \"{}\"{case}",
                            a.name, playbook.application_name
                        ));
                    }
                    if a.redirect_uri != playbook.redirect_uri {
                        what.push(format!(
                            "the redirect URI recorded is {}, the guide expects {}",
                            a.redirect_uri, playbook.redirect_uri
                        ));
                    }
                    differs(what.join("; "))
                }
            },
            Requirement::ApplicationScopes => match &facts.application {
                None => nothing(),
                Some(a) => differs(format!(
                    "the application was recorded without the scopes {}",
                    list(playbook.required_scopes.difference(&a.scopes))
                )),
            },
            Requirement::ApplicationSecretProvided => match &facts.application_secret {
                None => nothing(),
                Some(s) => differs(format!(
                    "the secret on record was given for {}, not for the instance of record",
                    s.bound_to.describe()
                )),
            },
            Requirement::InstanceUrl => differs(format!(
                "the instance URL recorded is {}, and this playbook requires https",
                facts.instance.gitlab_url
            )),
            Requirement::AccessTokenProvided => match &facts.access_token {
                None => nothing(),
                Some(t) => differs(format!(
                    "the token on record was given for {}, not for the instance of record",
                    t.bound_to.describe()
                )),
            },
            Requirement::AccessTokenAdmin => {
                let Some(token) = self.usable_access_token() else { return nothing() };
                let mut why = Vec::new();
                if !token.admin {
                    why.push("the token was recorded as not an admin's".to_owned());
                }
                if let Some(f) = &facts.token_finding {
                    if f.active == Some(false) {
                        why.push("the probe found the token inactive, expired or revoked".to_owned());
                    }
                    if f.admin == Some(false) {
                        why.push("the probe found the token's user is not an admin".to_owned());
                    }
                    if !f.missing_scopes.is_empty() {
                        why.push(format!("the probe found the token lacks the scopes {}", list(&f.missing_scopes)));
                    }
                    if f.denied && why.is_empty() {
                        why.push("the probe was refused permission with this token".to_owned());
                    }
                }
                differs(why.join("; "))
            }
            Requirement::InformationSubmitted => nothing(),
            Requirement::NetworkPolicyEvaluated => nothing(),
            Requirement::Connectivity => match &facts.connectivity {
                None => nothing(),
                Some(Connectivity::VpcPeering(_)) => {
                    differs("the VPC peering was recorded without its route tables configured".into())
                }
                Some(Connectivity::Vpn(v)) => {
                    let mut what = Vec::new();
                    if !v.tunnel_established {
                        what.push("its tunnel not established");
                    }
                    if !v.ipsec_compatible {
                        what.push("IPsec settings that are not compatible");
                    }
                    differs(format!("the VPN was recorded with {}", what.join(" and ")))
                }
            },
            Requirement::FirewallOutboundHttps => facts
                .firewall
                .as_ref()
                .map_or_else(nothing, |_| differs("the firewall was recorded as blocking outbound HTTPS".into())),
            Requirement::FirewallOutboundSsh => facts
                .firewall
                .as_ref()
                .map_or_else(nothing, |_| differs("the firewall was recorded as blocking outbound SSH".into())),
            Requirement::WebhookEndpointReachable => facts.firewall.as_ref().map_or_else(nothing, |_| {
                differs("the webhook endpoint was recorded as not reachable from GitLab".into())
            }),
            Requirement::WebhookCredentialsIssued => match (&facts.webhook_credentials, &self.public_url) {
                (Some(issued), Some(public_url)) => differs(format!(
                    "the webhook URL {} was issued before golive's public URL became {public_url}",
                    issued.webhook_url
                )),
                _ => nothing(),
            },
            Requirement::WebhookCreatedWithIssuedUrl if self.rests_on_api(requirement) => {
                differs(self.api_webhook_url_problems().unwrap_or_default().join("; "))
            }
            Requirement::WebhookCreatedWithIssuedUrl
                if self.api_evidence_required(requirement)
                    && matches!((&facts.webhook, &facts.webhook_credentials), (Some(h), Some(i)) if h.url == i.webhook_url) =>
            {
                differs(API_EVIDENCE_REQUIRED.to_owned())
            }
            Requirement::WebhookCreatedWithIssuedUrl => match (&facts.webhook, &facts.webhook_credentials) {
                (Some(hook), Some(issued)) => differs(format!(
                    "the webhook URL recorded is {}, the issued URL is {}",
                    hook.url, issued.webhook_url
                )),
                (Some(_), None) => differs("a webhook was recorded but no webhook credentials are issued".into()),
                _ => nothing(),
            },
            Requirement::WebhookTriggers if self.rests_on_api(requirement) => {
                let location = match facts.webhook_check.as_ref().map(|(c, _)| &c.finding) {
                    Some(WebhookFinding::Found { location, .. }) => Some(*location),
                    _ => None,
                };
                match self.api_webhook_triggers_missing() {
                    None => differs("GitLab's API found no hook with the issued URL, so no triggers".into()),
                    Some(missing) => {
                        let unsendable: Vec<&Trigger> =
                            missing.iter().filter(|t| location.is_some_and(|l| !l.can_send(**t))).collect();
                        let filtered = match facts.webhook_check.as_ref().map(|(c, _)| &c.finding) {
                            Some(WebhookFinding::Found { push_filter: Some(filter), triggers, .. })
                                if triggers.contains(&Trigger::Push) && !filter.lets_agents_through() =>
                            {
                                Some(*filter)
                            }
                            _ => None,
                        };
                        let unfiltered: Vec<&Trigger> =
                            missing.iter().filter(|t| !(filtered.is_some() && **t == Trigger::Push)).collect();
                        let mut parts = Vec::new();
                        if !unfiltered.is_empty() {
                            parts.push(format!(
                                "the hook GitLab's API found does not send the triggers {}",
                                list(unfiltered)
                            ));
                        }
                        if filtered.is_some() {
                            parts.push(
                                "the hook's push events are filtered to some branches only: Factory's agents push \
                                 to branches of their own, so push events are not really on (set the hook's push \
                                 events to all branches)"
                                    .to_owned(),
                            );
                        }
                        let mut text = parts.join("; ");
                        if !unsendable.is_empty() {
                            text.push_str(&format!(
                                "; a system hook cannot send {} events at all: create a group or project hook instead",
                                list(unsendable)
                            ));
                        }
                        differs(text)
                    }
                }
            }
            Requirement::WebhookTriggers
                if self.api_evidence_required(requirement)
                    && facts.webhook.as_ref().is_some_and(|w| w.triggers.is_superset(&playbook.required_triggers)) =>
            {
                differs(API_EVIDENCE_REQUIRED.to_owned())
            }
            Requirement::WebhookTriggers => match &facts.webhook {
                None => nothing(),
                Some(w) => differs(format!(
                    "the webhook was recorded without the triggers {}",
                    list(playbook.required_triggers.difference(&w.triggers))
                )),
            },
            Requirement::WebhookDeliveryVerified | Requirement::WebhookFunctional => {
                // What GitLab said when golive last asked it for test deliveries names why none
                // arrived: a firewall, a wrong token, TLS, or nothing to build a sample from.
                let answers: Vec<String> = facts
                    .test_deliveries
                    .iter()
                    .filter_map(|(trigger, p)| match &p.outcome {
                        Some(
                            outcome @ (super::checks::TestRequestOutcome::DeliveryFailed { .. }
                            | super::checks::TestRequestOutcome::NoSampleData { .. }),
                        ) => Some(format!("test delivery of {trigger}: {}", outcome.describe())),
                        _ => None,
                    })
                    .collect();
                if !answers.is_empty() {
                    differs(answers.join("; "))
                } else if facts.deliveries.recorded > 0 {
                    differs("no delivery has been verified with the current secret token since it was issued".into())
                } else {
                    nothing()
                }
            }
            Requirement::ApiConnectivity => match &facts.api_connectivity {
                None => nothing(),
                Some(e) => differs(format!(
                    "the latest {} failed",
                    match e.source {
                        super::state::EvidenceSource::Probe => "probe",
                        super::state::EvidenceSource::ApiCheck => "API check",
                        super::state::EvidenceSource::GitlabCheck => "check through GitLab's API",
                    }
                )),
            },
            Requirement::ScenarioObserved(s) if facts.provoked_only.contains(&s) => differs(
                "only a test delivery golive asked GitLab for arrived (GitLab's sample data proves the delivery path, not the scenario): perform the scenario, or record a manual test".into(),
            ),
            Requirement::ScenarioObserved(_) => nothing(),
            Requirement::ResponseValidated(s) => match (facts.validations.get(&s), facts.droid_comments_seen.get(&s)) {
                (Some(false), _) => differs("the response was recorded as incorrect".into()),
                (_, Some(at)) => differs(format!(
                    "golive saw the Droid comment on the scratch {} at {}: read it and record whether it was correct",
                    if s == Scenario::IssueOpened { "issue" } else { "merge request" },
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                )),
                _ => nothing(),
            },
        }
    }

    /// The event that supplied the fact `requirement` rests on now.
    pub fn evidence_of(&self, requirement: Requirement) -> Option<&Evidence> {
        self.facts.evidence.get(&requirement.id())
    }

    /// Whether the latest fact `requirement` rests on came from GitLab's API.
    pub fn rests_on_api(&self, requirement: Requirement) -> bool {
        self.evidence_of(requirement).is_some_and(|e| e.source == EvidenceOrigin::GitlabApi)
    }

    /// Records, per requirement, the event that supplied the fact it rests on now.
    pub(super) fn note_evidence(&mut self, event: &Event, at: chrono::DateTime<chrono::Utc>) {
        use Requirement as R;
        let person = EvidenceOrigin::Rep;
        let (source, supplied): (EvidenceOrigin, Vec<Requirement>) = match event {
            Event::PrerequisitesConfirmed(_) => (person, vec![R::PrerequisitesConfirmed]),
            Event::ApplicationRegistered(_) => (person, vec![R::ApplicationRegistered, R::ApplicationScopes]),
            Event::ApplicationSecretProvided { .. } => (person, vec![R::ApplicationSecretProvided]),
            Event::InstanceUrlSet(_) => (person, vec![R::InstanceUrl]),
            Event::AccessTokenProvided { .. } => (person, vec![R::AccessTokenProvided, R::AccessTokenAdmin]),
            Event::InformationSubmitted {} => (person, vec![R::InformationSubmitted]),
            Event::NetworkPolicyEvaluated(_) => (person, vec![R::NetworkPolicyEvaluated]),
            Event::VpcPeeringEstablished(_) | Event::VpnEstablished(_) => (person, vec![R::Connectivity]),
            Event::FirewallConfigured(_) => {
                (person, vec![R::FirewallOutboundHttps, R::FirewallOutboundSsh, R::WebhookEndpointReachable])
            }
            Event::WebhookCredentialsIssued(_) => (EvidenceOrigin::Golive, vec![R::WebhookCredentialsIssued]),
            Event::WebhookCreated(_) => (person, vec![R::WebhookCreatedWithIssuedUrl, R::WebhookTriggers]),
            Event::WebhookDeliveryRecorded(delivery) => {
                let mut supplied = vec![R::WebhookDeliveryVerified, R::WebhookFunctional];
                if let Some(scenario) = delivery.scenario_evidence() {
                    // Only the first observation is the evidence (later ones change nothing).
                    if self.facts.scenarios_observed.get(&scenario) == Some(&at)
                        && !self.facts.evidence.contains_key(&R::ScenarioObserved(scenario).id())
                    {
                        supplied.push(R::ScenarioObserved(scenario));
                    }
                }
                (EvidenceOrigin::GitlabDelivery, supplied)
            }
            Event::ApiCheckRecorded(_) => (person, vec![R::ApiConnectivity]),
            Event::ProbeResultRecorded(result) if result.is_evidence() => {
                let mut supplied = vec![R::ApiConnectivity];
                if result.api_reachable {
                    supplied.push(R::AccessTokenAdmin);
                }
                (EvidenceOrigin::GitlabApi, supplied)
            }
            Event::ManualTestRecorded(test) if test.passed => {
                if self.facts.evidence.contains_key(&R::ScenarioObserved(test.scenario).id()) {
                    (person, vec![])
                } else {
                    (person, vec![R::ScenarioObserved(test.scenario)])
                }
            }
            Event::ResponseValidated(v) => (person, vec![R::ResponseValidated(v.scenario)]),
            Event::CredentialRotated(rotated) => match rotated {
                CredentialRotated::ApplicationSecret { .. } => (person, vec![R::ApplicationSecretProvided]),
                CredentialRotated::AccessToken { .. } => (person, vec![R::AccessTokenProvided, R::AccessTokenAdmin]),
                CredentialRotated::WebhookToken { .. } => (EvidenceOrigin::Golive, vec![R::WebhookCredentialsIssued]),
            },
            Event::ApplicationChecked(checked) if !matches!(checked.finding, ApplicationFinding::Failed(_)) => {
                (EvidenceOrigin::GitlabApi, vec![R::ApplicationRegistered, R::ApiConnectivity])
            }
            Event::WebhookChecked(checked)
                if !matches!(
                    checked.finding,
                    WebhookFinding::Failed(_) | WebhookFinding::NotFound { complete: false, .. }
                ) =>
            {
                (
                    EvidenceOrigin::GitlabApi,
                    vec![R::WebhookCreatedWithIssuedUrl, R::WebhookTriggers, R::ApiConnectivity],
                )
            }
            Event::IntakeRedeemed { .. } => {
                // The customer's submission is recorded in the same append, just before this
                // event: what those events supplied came from the customer's intake.
                for evidence in self.facts.evidence.values_mut() {
                    if evidence.at == at && evidence.source == EvidenceOrigin::Rep {
                        evidence.source = EvidenceOrigin::CustomerIntake;
                    }
                }
                return;
            }
            _ => return,
        };
        for requirement in supplied {
            self.facts.evidence.insert(
                requirement.id(),
                Evidence { source, event: event.type_name().to_owned(), version: self.version, at },
            );
        }
    }

    /// Whether the playbook says only GitLab's API may meet `requirement`.
    fn api_evidence_required(&self, requirement: Requirement) -> bool {
        let item = match requirement {
            Requirement::ApplicationRegistered => ApiEvidenceItem::ApplicationRegistered,
            Requirement::WebhookCreatedWithIssuedUrl => ApiEvidenceItem::WebhookCreatedWithIssuedUrl,
            Requirement::WebhookTriggers => ApiEvidenceItem::WebhookTriggers,
            _ => return false,
        };
        self.playbook.api_evidence_required.contains(&item)
    }

    fn rep_application_matches(&self) -> bool {
        self.facts
            .application
            .as_ref()
            .is_some_and(|a| a.name == self.playbook.application_name && a.redirect_uri == self.playbook.redirect_uri)
    }

    /// What the latest application check found wrong, in golive's words (empty: nothing);
    /// `None` without a check that looked.
    fn api_application_problems(&self) -> Option<Vec<String>> {
        let (checked, _) = self.facts.application_check.as_ref()?;
        let recorded = self.facts.application.as_ref().map(|a| &a.application_id);
        if recorded != Some(&checked.application_id) {
            return Some(vec![
                "GitLab's API was checked for another Application ID than the one recorded now: run the application check again".into(),
            ]);
        }
        Some(match &checked.finding {
            ApplicationFinding::Found { name_matches, callback_url_matches, confidential } => {
                let mut problems = Vec::new();
                if !name_matches {
                    problems.push(format!(
                        "the application's name in GitLab is not \"{}\" (names are compared exactly, case included)",
                        self.playbook.application_name
                    ));
                }
                if !callback_url_matches {
                    problems.push(format!(
                        "the callback URL registered in GitLab is not the redirect URI {}",
                        self.playbook.redirect_uri
                    ));
                }
                if let Some(expected) = self.playbook.application_confidential.filter(|e| e != confidential) {
                    problems.push(if expected {
                        "the application is not confidential in GitLab; the guide registers a confidential one".into()
                    } else {
                        "the application is confidential in GitLab; the guide registers a public one".into()
                    });
                }
                problems
            }
            ApplicationFinding::NotFound => vec![format!(
                "GitLab lists no instance-wide application with the Application ID {} recorded. GitLab's \
                 applications API lists only instance-wide applications, never one a user or group owns: \
                 register it as an instance-wide application (Admin area > Applications) and record its new \
                 Application ID",
                checked.application_id
            )],
            ApplicationFinding::Failed(_) => return None,
        })
    }

    /// What the latest webhook check found wrong about the hook's URL and SSL verification.
    fn api_webhook_url_problems(&self) -> Option<Vec<String>> {
        let (checked, _) = self.facts.webhook_check.as_ref()?;
        let issued = self.facts.webhook_credentials.as_ref().map(|c| &c.webhook_url);
        if issued != Some(&checked.url) {
            return Some(vec![
                "GitLab's API was checked for another webhook URL than the one issued now: run the webhook check again"
                    .into(),
            ]);
        }
        Some(match &checked.finding {
            WebhookFinding::Found { ssl_verification, location, alert, custom_template, .. } => {
                let mut problems = Vec::new();
                if !ssl_verification && checked.url.is_https() {
                    problems.push(format!(
                        "SSL verification is off on {} in GitLab: turn it on so the secret token only goes to golive",
                        location.describe()
                    ));
                }
                match alert {
                    Some(HookAlert::TemporarilyDisabled { until }) => problems.push(format!(
                        "GitLab disabled {} after repeated failed deliveries: it delivers nothing until {}, when \
                         GitLab enables it again (a successful test delivery enables it at once)",
                        location.describe(),
                        until
                            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                            .unwrap_or_else(|| "GitLab's backoff ends".into())
                    )),
                    Some(HookAlert::Disabled) => problems.push(format!(
                        "GitLab disabled {} for good after 40 failed deliveries: it delivers nothing until someone \
                         enables it again (a successful test delivery, or editing the hook in GitLab)",
                        location.describe()
                    )),
                    Some(HookAlert::Executable) | None => {}
                }
                if *custom_template {
                    problems.push(format!(
                        "{} sends a custom webhook template instead of GitLab's payload: golive reads GitLab's own \
                         payload, so clear the hook's custom template",
                        capitalized(&location.describe())
                    ));
                }
                problems
            }
            WebhookFinding::NotFound { searched, complete } => {
                let places = searched.iter().map(|l| l.describe()).collect::<Vec<_>>().join(", ");
                let mut text =
                    format!("GitLab's API shows no hook with the issued URL {} (searched: {places})", checked.url);
                if !complete {
                    text.push_str(
                        "; the search was incomplete (its page limit, or lists GitLab did not answer): name the \
                         group or project",
                    );
                }
                vec![text]
            }
            WebhookFinding::Failed(_) => return None,
        })
    }

    /// The playbook's triggers the hook GitLab's API found lacks; `None` when no hook was found.
    fn api_webhook_triggers_missing(&self) -> Option<Vec<Trigger>> {
        let (checked, _) = self.facts.webhook_check.as_ref()?;
        match &checked.finding {
            WebhookFinding::Found { triggers, push_filter, .. } => {
                // A push filter that keeps out the branches Factory's agents push to means push
                // events are not really on.
                let filtered = push_filter.is_some_and(|f| !f.lets_agents_through());
                Some(
                    self.playbook
                        .required_triggers
                        .iter()
                        .copied()
                        .filter(|t| !triggers.contains(t) || (*t == Trigger::Push && filtered))
                        .collect(),
                )
            }
            _ => None,
        }
    }

    /// Whether an issued webhook URL is under this integration's public URL (always, for
    /// integrations opened before golive recorded one).
    fn issued_under_public_url(&self, webhook_url: &super::values::HttpUrl) -> bool {
        self.public_url.as_ref().is_none_or(|public_url| {
            let base = public_url.as_str().trim_end_matches('/');
            webhook_url.as_str().strip_prefix(base).is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// The checklist: every requirement, its label, its stage and whether it holds.
    pub fn checklist(&self) -> Vec<ChecklistItem> {
        self.requirements()
            .map(|r| {
                let unmet = self.unmet_reason(r);
                ChecklistItem {
                    id: r.id(),
                    label: self.label(r),
                    stage: r.stage(),
                    met: unmet.is_none(),
                    differs: matches!(unmet, Some(UnmetReason::Differs(_))),
                    evidence: match unmet {
                        Some(UnmetReason::NothingRecorded) => None,
                        _ => self.evidence_of(r).cloned(),
                    },
                    reason: unmet.map(UnmetReason::into_text),
                }
            })
            .collect()
    }
}

/// `text` with its first letter upper case.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
