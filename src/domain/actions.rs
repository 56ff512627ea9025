//! What to do next, as actions: a plain-English label, the requirements the action would meet,
//! and the step of the guide it is (which v1 command records it, or that it is not a command,
//! such as running the probe).
//!
//! The domain says *what* to do; the words a client types for it (the CLI line, the command
//! body with the fields golive can fill) are the views' (`views::actions`), so that the labels
//! here never name an internal command type.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::checks::CheckKind;
use super::playbook::Scenario;
use super::requirements::Requirement;
use super::stage::Stage;
use super::state::{Connectivity, Integration};

/// A step of the guide a rep can take next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    ConfirmPrerequisites,
    RegisterApplication,
    ProvideApplicationSecret,
    SetInstanceUrl,
    ProvideAccessToken,
    SubmitInformation,
    EvaluateNetworkPolicy,
    EstablishVpcPeering,
    EstablishVpn,
    ConfigureFirewall,
    IssueWebhookCredentials,
    /// Credentials exist but their URL is no longer golive's: a rotation issues new ones.
    RotateWebhookToken,
    CreateWebhook,
    /// A delivery arrives by itself when someone presses Test in GitLab; a rep can also record
    /// one copied from GitLab's "Recent events" (not a v1 command: it goes through the receiver).
    RecordDelivery,
    /// The probe (not a v1 command: golive asks GitLab itself).
    Probe,
    /// A check through GitLab's API (not a v1 command: golive reads, or asks, GitLab itself).
    Check(CheckKind),
    RecordApiCheck,
    RecordManualTest(Scenario),
    ValidateResponse(Scenario),
    ResolveFeedback(Uuid),
    Unblock,
    ScheduleGoLive,
    GoLive,
    CompleteMonitoring,
}

/// One thing to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextAction {
    /// What to do, in plain words.
    pub label: String,
    /// The requirements this action would meet (none for go-live steps and feedback).
    pub requirements: Vec<Requirement>,
    pub step: Step,
}

/// A text a person typed, as one line of a label: its first line, control characters dropped,
/// so that a typed text cannot pose as another suggested command below it.
fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    let cleaned: String = first.chars().filter(|c| !c.is_control()).collect();
    if text.lines().nth(1).is_some() {
        format!("{cleaned} …")
    } else {
        cleaned
    }
}

fn list(items: impl IntoIterator<Item = impl ToString>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

impl Integration {
    /// What to do next, most urgent first: a block, then the unmet requirements up to the next
    /// stage (one action per step, carrying every requirement it meets), then open feedback.
    pub fn next_actions(&self, now: DateTime<Utc>) -> Vec<NextAction> {
        let mut actions: Vec<NextAction> = Vec::new();
        if self.is_cancelled() {
            return actions;
        }
        if let Some(block) = &self.block {
            actions.push(NextAction {
                label: format!(
                    "Resolve the {} block ({}), then record how",
                    block.category.as_str(),
                    block.category_advice()
                ),
                requirements: Vec::new(),
                step: Step::Unblock,
            });
        }
        match self.stage {
            Stage::Live => {
                // A live integration whose requirements were voided (a changed URL, a rotated
                // token) is told how to meet them again, as before going live.
                self.push_steps_for_unmet(Stage::Validated, &mut actions);
                if let Some(monitoring) = self.monitoring.as_ref().filter(|m| m.completed_at.is_none()) {
                    let (label, step) = if now >= monitoring.ends_at {
                        ("The monitoring window has passed: complete it".to_owned(), Step::CompleteMonitoring)
                    } else {
                        (
                            format!(
                                "Monitor until {} (webhook deliveries and probes)",
                                monitoring.ends_at.format("%Y-%m-%d")
                            ),
                            Step::Probe,
                        )
                    };
                    actions.push(NextAction { label, requirements: Vec::new(), step });
                }
            }
            Stage::Validated => {
                self.push_feedback(&mut actions);
                let (label, step) = match self.go_live_date {
                    None => ("Schedule the go-live date".to_owned(), Step::ScheduleGoLive),
                    Some(date) if date.naive() > now.date_naive() => (format!("Go live on {date}"), Step::GoLive),
                    Some(_) => ("Go live now".to_owned(), Step::GoLive),
                };
                actions.push(NextAction { label, requirements: Vec::new(), step });
            }
            _ => {
                let target = self.stage.next().unwrap_or(Stage::Validated);
                self.push_steps_for_unmet(target, &mut actions);
                self.push_feedback(&mut actions);
            }
        }
        actions
    }

    /// The plain-English next steps: the labels of [`Integration::next_actions`].
    pub fn next_steps(&self, now: DateTime<Utc>) -> Vec<String> {
        self.next_actions(now).into_iter().map(|action| action.label).collect()
    }

    /// One action per step that meets an unmet requirement of `through` or an earlier stage,
    /// carrying every requirement it meets.
    fn push_steps_for_unmet(&self, through: Stage, actions: &mut Vec<NextAction>) {
        for requirement in self.unmet_through(through) {
            for (label, step) in self.steps_meeting(requirement) {
                match actions.iter_mut().find(|a| a.step == step) {
                    Some(existing) => existing.requirements.push(requirement),
                    None => actions.push(NextAction { label, requirements: vec![requirement], step }),
                }
            }
        }
    }

    fn push_feedback(&self, actions: &mut Vec<NextAction>) {
        for item in self.open_feedback() {
            actions.push(NextAction {
                label: format!("Resolve feedback: {}", one_line(item.summary.as_str())),
                requirements: Vec::new(),
                step: Step::ResolveFeedback(item.id),
            });
        }
    }

    /// The steps that would meet `requirement`, with their labels; more than one when the guide
    /// offers a choice (peering or VPN; the probe or a recorded API check).
    fn steps_meeting(&self, requirement: Requirement) -> Vec<(String, Step)> {
        let mut steps = self.recorded_steps_meeting(requirement);
        // With a usable token golive can check for itself what a person would otherwise record.
        let can_check = self.usable_access_token().is_some();
        let issued = self.facts.webhook_credentials.is_some();
        let check = match requirement {
            Requirement::ApplicationRegistered if can_check && self.facts.application.is_some() => Some((
                "Or let golive check the application in GitLab (name, callback URL, confidential)".to_owned(),
                CheckKind::Application,
            )),
            Requirement::WebhookCreatedWithIssuedUrl | Requirement::WebhookTriggers if can_check && issued => Some((
                "Or, once it exists, let golive find the webhook in GitLab and check its URL, triggers and SSL verification"
                    .to_owned(),
                CheckKind::Webhook,
            )),
            Requirement::WebhookDeliveryVerified | Requirement::WebhookFunctional if can_check && issued => Some((
                "Or let golive ask GitLab for a test delivery per trigger and wait for each".to_owned(),
                CheckKind::TestDeliveries,
            )),
            Requirement::ScenarioObserved(_) if can_check && issued => Some((
                "Or an admin lets golive perform the scenarios in a scratch project in GitLab".to_owned(),
                CheckKind::Scenarios,
            )),
            _ => None,
        };
        if let Some((label, kind)) = check {
            steps.push((label, Step::Check(kind)));
        }
        steps
    }

    /// The steps a person takes (or records) that would meet `requirement`.
    fn recorded_steps_meeting(&self, requirement: Requirement) -> Vec<(String, Step)> {
        let playbook = &self.playbook;
        let one = |label: String, step: Step| vec![(label, step)];
        match requirement {
            Requirement::PrerequisitesConfirmed => {
                one("Confirm the three prerequisites with the customer".into(), Step::ConfirmPrerequisites)
            }
            Requirement::ApplicationRegistered | Requirement::ApplicationScopes => one(
                format!(
                    "Have the customer register the GitLab application \"{}\" with redirect URI {} and the scopes {}, then record it",
                    playbook.application_name,
                    playbook.redirect_uri,
                    list(&playbook.required_scopes)
                ),
                Step::RegisterApplication,
            ),
            Requirement::ApplicationSecretProvided => {
                one("Collect the Application Secret from the customer".into(), Step::ProvideApplicationSecret)
            }
            Requirement::InstanceUrl => one(
                if playbook.allow_http {
                    "Set the instance URL".into()
                } else {
                    "Set an https instance URL (this playbook does not allow http)".into()
                },
                Step::SetInstanceUrl,
            ),
            Requirement::AccessTokenProvided | Requirement::AccessTokenAdmin => one(
                format!(
                    "Collect an access token of a GitLab admin with the scopes {}",
                    list(&playbook.required_token_scopes)
                ),
                Step::ProvideAccessToken,
            ),
            Requirement::InformationSubmitted => {
                one("Submit the collected information".into(), Step::SubmitInformation)
            }
            Requirement::NetworkPolicyEvaluated => one(
                "Evaluate the customer's network policy and record any barriers (none is fine)".into(),
                Step::EvaluateNetworkPolicy,
            ),
            Requirement::Connectivity => {
                // A connection already chosen is completed, not offered again beside the other.
                let peering = ("Record the VPC peering with its route tables configured".to_owned(), Step::EstablishVpcPeering);
                let vpn = (
                    "Record the VPN: tunnel established with compatible IPsec settings".to_owned(),
                    Step::EstablishVpn,
                );
                match &self.facts.connectivity {
                    Some(Connectivity::VpcPeering(_)) => vec![peering],
                    Some(Connectivity::Vpn(_)) => vec![vpn],
                    None => vec![peering, vpn],
                }
            }
            Requirement::FirewallOutboundHttps
            | Requirement::FirewallOutboundSsh
            | Requirement::WebhookEndpointReachable => one(
                "Open the firewall: outbound HTTPS and SSH, and golive's webhook endpoint reachable from GitLab".into(),
                Step::ConfigureFirewall,
            ),
            Requirement::WebhookCredentialsIssued => match &self.facts.webhook_credentials {
                Some(_) => one(
                    "Rotate the webhook token: golive issues a URL under its new public URL and a new token".into(),
                    Step::RotateWebhookToken,
                ),
                None => one("Issue the webhook URL and secret token".into(), Step::IssueWebhookCredentials),
            },
            Requirement::WebhookCreatedWithIssuedUrl | Requirement::WebhookTriggers => one(
                format!(
                    "Have the customer create the webhook in GitLab with the issued URL and the triggers {}, then record it",
                    list(&playbook.required_triggers)
                ),
                Step::CreateWebhook,
            ),
            Requirement::WebhookDeliveryVerified | Requirement::WebhookFunctional => one(
                "Press Test on the webhook in GitLab so a delivery arrives with the current secret token, or record one copied from GitLab's Recent events".into(),
                Step::RecordDelivery,
            ),
            Requirement::ApiConnectivity => vec![
                ("Run the probe against the instance's API".to_owned(), Step::Probe),
                ("Or record an API check you ran yourself".to_owned(), Step::RecordApiCheck),
            ],
            Requirement::ScenarioObserved(scenario) => one(
                format!(
                    "Make GitLab show that {} (a webhook delivery), or record a manual test of {scenario}",
                    scenario.description()
                ),
                Step::RecordManualTest(scenario),
            ),
            Requirement::ResponseValidated(scenario) => one(
                format!("Check the Droid's response to {scenario} and record whether it was correct"),
                Step::ValidateResponse(scenario),
            ),
        }
    }
}
