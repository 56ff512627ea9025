//! `decide`: from a state and a command to the events that record it, or a refusal.
//!
//! A command first yields its primary events (what was said or observed). The stage semantics of
//! the contract then follow from the requirements alone: a fall-back with one `stage_regressed`
//! when something the current stage rested on stops holding (a block instead, once live), and
//! entry into each next stage whose requirements hold, one `stage_entered` per stage, in order.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::binding::CredentialBinding;
use super::command::{Command, OpenIntegration, Rotation};
use super::diagnose::describe_remaining;
use super::event::{Cause, CredentialRotated, Event};
use super::playbook::Playbook;
use super::rejection::{Rejection, Unmet};
use super::requirements::{guard_broken, Requirement};
use super::signals::BlockCategory;
use super::stage::Stage;
use super::state::Integration;
use super::values::{Actor, HttpUrl, IntegrationId, LongText};

/// A source of fresh ids, injected so `decide` stays deterministic under test.
pub trait IdSource: Send + Sync {
    fn next_id(&self) -> Uuid;
}

/// What `decide` may know of the world: the time, who acts, and where new ids come from.
pub struct Context<'a> {
    pub now: DateTime<Utc>,
    pub actor: Actor,
    pub ids: &'a dyn IdSource,
}

fn check_scheme(field: &str, url: &HttpUrl, playbook: &Playbook) -> Result<(), Rejection> {
    if !url.is_https() && !playbook.allow_http {
        return Err(Rejection::invalid(
            field,
            "must use https: this integration's playbook does not allow http instance URLs",
        ));
    }
    Ok(())
}

fn unmet(id: &str, label: impl Into<String>) -> Unmet {
    Unmet { id: id.to_owned(), label: label.into() }
}

fn text(value: &str) -> LongText {
    LongText::parse(value).expect("built-in texts are valid")
}

/// Opens a new integration with `playbook` (the caller's, or the server's default), recording
/// `public_url`, where golive is reached from outside, for the URLs it will give the customer.
pub fn open(
    request: OpenIntegration,
    default_playbook: Playbook,
    public_url: HttpUrl,
    ctx: &Context<'_>,
) -> Result<Vec<Event>, Rejection> {
    let playbook = request.playbook.unwrap_or(default_playbook);
    playbook.check().map_err(|(field, error)| Rejection::invalid(field, error.0))?;
    check_scheme("gitlab_url", &request.gitlab_url, &playbook)?;
    Ok(vec![Event::IntegrationOpened {
        integration_id: IntegrationId::from_uuid(ctx.ids.next_id()),
        customer: request.customer,
        gitlab_url: request.gitlab_url,
        owner: request.owner,
        playbook,
        ca_certificate_pem: request.ca_certificate_pem,
        public_url: Some(public_url),
    }])
}

impl Integration {
    /// Decides what `command` records, or why it is refused. Refusals write nothing.
    pub fn decide(&self, command: &Command, ctx: &Context<'_>) -> Result<Vec<Event>, Rejection> {
        // Audit records about secrets are written whatever the stage: shredding a cancelled
        // customer's secrets is the common case.
        let secret_audit = matches!(command, Command::RecordSecretReveal { .. } | Command::RecordSecretsShredded);
        if self.is_cancelled() && !secret_audit && !guard_broken("cancelled") {
            return Err(Rejection::Cancelled);
        }
        let primary = self.primary_events(command, ctx)?;
        let mut after = self.clone();
        for event in &primary {
            after.apply(event, ctx.now);
        }
        let consequences = after.stage_consequences(self, command.type_name());
        let mut events = primary;
        events.extend(consequences);
        Ok(events)
    }

    fn primary_events(&self, command: &Command, ctx: &Context<'_>) -> Result<Vec<Event>, Rejection> {
        let event = match command {
            Command::ConfirmPrerequisites(p) => Event::PrerequisitesConfirmed(p.clone().into()),
            Command::RegisterApplication(a) => Event::ApplicationRegistered(a.clone().into()),
            Command::ProvideApplicationSecret { secret } => Event::ApplicationSecretProvided {
                secret: secret.clone(),
                bound_to: Some(CredentialBinding::of(&self.facts.instance)),
            },
            Command::SetInstanceUrl(settings) => {
                check_scheme("gitlab_url", &settings.gitlab_url, &self.playbook)?;
                Event::InstanceUrlSet(settings.clone().into())
            }
            Command::ProvideAccessToken { token, admin } => Event::AccessTokenProvided {
                token: token.clone(),
                admin: *admin,
                bound_to: Some(CredentialBinding::of(&self.facts.instance)),
            },
            Command::SubmitInformation => Event::InformationSubmitted {},
            Command::EvaluateNetworkPolicy(p) => Event::NetworkPolicyEvaluated(p.clone().into()),
            Command::EstablishVpcPeering(p) => {
                if p.customer_vpc_id == p.factory_vpc_id {
                    return Err(Rejection::invalid(
                        "factory_vpc_id",
                        "must differ from customer_vpc_id: a peering joins two VPCs",
                    ));
                }
                Event::VpcPeeringEstablished(p.clone().into())
            }
            Command::EstablishVpn(v) => Event::VpnEstablished(v.clone().into()),
            Command::ConfigureFirewall(f) => Event::FirewallConfigured(f.clone().into()),
            Command::IssueWebhookCredentials(issued) => Event::WebhookCredentialsIssued(issued.clone()),
            Command::CreateWebhook(w) => Event::WebhookCreated(w.clone().into()),
            Command::RecordWebhookDelivery(delivery) => {
                if self.facts.webhook_credentials.is_none() {
                    return Err(self.guard("record_webhook_delivery", [Requirement::WebhookCredentialsIssued]));
                }
                Event::WebhookDeliveryRecorded(delivery.clone())
            }
            Command::RecordApiCheck(check) => Event::ApiCheckRecorded(check.clone().into()),
            Command::RecordProbeResult(result) => Event::ProbeResultRecorded(result.clone()),
            Command::RecordManualTest(test) => {
                self.check_scenario(test.scenario)?;
                Event::ManualTestRecorded(test.clone().into())
            }
            Command::ValidateResponse(validation) => {
                self.check_scenario(validation.scenario)?;
                let mut events = vec![Event::ResponseValidated(validation.clone().into())];
                if !validation.correct {
                    let why =
                        validation.note.as_ref().or(validation.evidence.as_ref()).map(|t| t.as_str()).unwrap_or("");
                    let summary = format!("Droid response to {} was incorrect: {why}", validation.scenario);
                    let summary: String = summary.chars().take(super::values::LONG_TEXT_MAX_CHARS).collect();
                    events.push(Event::FeedbackReported {
                        feedback_id: ctx.ids.next_id(),
                        summary: text(&summary),
                        scenario: Some(validation.scenario),
                    });
                }
                return Ok(events);
            }
            Command::ReportFeedback { summary } => {
                Event::FeedbackReported { feedback_id: ctx.ids.next_id(), summary: summary.clone(), scenario: None }
            }
            Command::ResolveFeedback { feedback_id, resolution } => {
                let item = self
                    .feedback
                    .iter()
                    .find(|f| f.id == *feedback_id)
                    .ok_or_else(|| Rejection::invalid("feedback_id", "no feedback item with this id"))?;
                if !item.is_open() {
                    return Err(Rejection::GuardRejected {
                        command: "resolve_feedback",
                        unmet: vec![unmet("feedback.open", "The feedback item is still open")],
                    });
                }
                Event::FeedbackResolved { feedback_id: *feedback_id, resolution: resolution.clone() }
            }
            Command::ScheduleGoLive { date } => {
                if date.naive() < ctx.now.date_naive() {
                    return Err(Rejection::invalid(
                        "date",
                        format!("{date} is in the past (today is {} UTC)", ctx.now.date_naive()),
                    ));
                }
                if self.stage == Stage::Live {
                    return Err(Rejection::GuardRejected {
                        command: "schedule_go_live",
                        unmet: vec![unmet("go_live.not_live", "The integration is not live yet")],
                    });
                }
                Event::GoLiveScheduled { date: *date }
            }
            Command::GoLive => return self.go_live(ctx),
            Command::CompleteMonitoring => {
                let unmet = self.complete_monitoring_unmet(ctx.now);
                if !unmet.is_empty() && !guard_broken("monitoring") {
                    return Err(Rejection::GuardRejected { command: "complete_monitoring", unmet });
                }
                Event::MonitoringCompleted { completed_at: ctx.now }
            }
            Command::AssignOwner { owner } => Event::OwnerAssigned { owner: owner.clone() },
            Command::AddNote { text } => Event::NoteAdded { text: text.clone() },
            Command::Block { category, detail } => {
                if self.block.is_some() {
                    return Err(Rejection::GuardRejected {
                        command: "block",
                        unmet: vec![unmet(
                            "block.not_blocked",
                            "The integration is not already blocked (unblock first)",
                        )],
                    });
                }
                Event::IntegrationBlocked { category: *category, detail: detail.clone(), cause: None }
            }
            Command::Unblock { resolution } => {
                if self.block.is_none() {
                    return Err(Rejection::GuardRejected {
                        command: "unblock",
                        unmet: vec![unmet("block.blocked", "The integration is blocked")],
                    });
                }
                Event::IntegrationUnblocked { resolution: resolution.clone() }
            }
            Command::RotateCredential(rotation) => match rotation {
                Rotation::ApplicationSecret { replacement } => {
                    Event::CredentialRotated(CredentialRotated::ApplicationSecret {
                        replacement: replacement.clone(),
                        bound_to: replacement.as_ref().map(|_| CredentialBinding::of(&self.facts.instance)),
                    })
                }
                Rotation::AccessToken { replacement, admin } => {
                    Event::CredentialRotated(CredentialRotated::AccessToken {
                        replacement: replacement.clone(),
                        admin: *admin,
                        bound_to: replacement.as_ref().map(|_| CredentialBinding::of(&self.facts.instance)),
                    })
                }
                Rotation::WebhookToken { issued } => {
                    Event::CredentialRotated(CredentialRotated::WebhookToken { issued: issued.clone() })
                }
            },
            Command::Cancel { reason } => Event::IntegrationCancelled { reason: reason.clone() },
            Command::ChangePublicUrl { public_url } => {
                // Customers' GitLab sends secret tokens and the customer types secrets to URLs
                // under it: never in the clear.
                if !public_url.is_https() {
                    return Err(Rejection::invalid("public_url", "must be an https URL"));
                }
                if self.public_url.as_ref() == Some(public_url) {
                    return Err(Rejection::invalid("public_url", "is already this integration's public URL"));
                }
                // A redirect URI golive derived from the old public URL follows the new one (and
                // the application registered with the old one no longer matches: the checklist
                // says so); a redirect URI the playbook set on its own stays.
                let derived = self.public_url.as_ref().map(Playbook::derived_redirect_uri);
                let follows = derived.as_ref() == Some(&self.playbook.redirect_uri);
                Event::PublicUrlChanged {
                    public_url: public_url.clone(),
                    redirect_uri: follows.then(|| Playbook::derived_redirect_uri(public_url)),
                }
            }
            Command::RecordSecretReveal { kind, fingerprint } => {
                Event::SecretRevealed { kind: *kind, fingerprint: fingerprint.clone() }
            }
            Command::RecordSecretsShredded => Event::SecretsShredded {},
            Command::IssueIntakeLink { link_id, token_digest, expires_at } => {
                return self.issue_intake_link(*link_id, token_digest, *expires_at, ctx.now);
            }
            Command::RedeemIntake(submission) => return self.redeem_intake(submission, ctx.now),
            Command::RecordCheck(record) => self.check_event(record, ctx.now)?,
        };
        Ok(vec![event])
    }

    /// The event a check run's record becomes. A run starts when none is under way (its
    /// requested test deliveries are told apart from the next run's); its findings and its end
    /// belong to the run under way.
    fn check_event(&self, record: &super::checks::CheckRecord, now: DateTime<Utc>) -> Result<Event, Rejection> {
        use super::checks::CheckRecord;
        let running = self.check_under_way(now);
        let belongs = |check_id: &uuid::Uuid| {
            if running.is_some_and(|run| run.check_id == *check_id) {
                Ok(())
            } else {
                Err(Rejection::invalid("check_id", "no run of checks with this id is under way"))
            }
        };
        Ok(match record {
            CheckRecord::Started(started) => {
                if started.checks.is_empty() {
                    return Err(Rejection::invalid("checks", "name at least one check"));
                }
                if running.is_some() {
                    return Err(Rejection::GuardRejected {
                        command: "check",
                        unmet: vec![super::rejection::Unmet {
                            id: "check.none_under_way".into(),
                            label: "No other run of checks is under way for this integration".into(),
                        }],
                    });
                }
                Event::GitlabCheckStarted(started.clone())
            }
            CheckRecord::Application(checked) => {
                belongs(&checked.check_id)?;
                Event::ApplicationChecked(checked.clone())
            }
            CheckRecord::Webhook(checked) => {
                belongs(&checked.check_id)?;
                Event::WebhookChecked(checked.clone())
            }
            CheckRecord::TestAnswer(answered) => {
                belongs(&answered.check_id)?;
                Event::TestDeliveryAnswered(answered.clone())
            }
            CheckRecord::TestDelivery(requested) => {
                belongs(&requested.check_id)?;
                Event::TestDeliveryRequested(requested.clone())
            }
            CheckRecord::ScenarioStep(performed) => {
                belongs(&performed.check_id)?;
                Event::ScenarioStepPerformed(performed.clone())
            }
            CheckRecord::Finished(finished) => {
                belongs(&finished.check_id)?;
                Event::GitlabCheckFinished(finished.clone())
            }
        })
    }

    fn check_scenario(&self, scenario: super::playbook::Scenario) -> Result<(), Rejection> {
        if !self.playbook.scenarios.contains(&scenario) {
            return Err(Rejection::invalid(
                "scenario",
                format!("{scenario} is not a scenario of this integration's playbook"),
            ));
        }
        Ok(())
    }

    fn guard<const N: usize>(&self, command: &'static str, requirements: [Requirement; N]) -> Rejection {
        Rejection::GuardRejected {
            command,
            unmet: requirements.iter().map(|r| unmet(&r.id(), self.label(*r))).collect(),
        }
    }

    /// The guards of `go_live` that do not hold at `now`.
    pub fn go_live_unmet(&self, now: DateTime<Utc>) -> Vec<Unmet> {
        let mut missing = Vec::new();
        if self.stage != Stage::Validated {
            missing.push(unmet("go_live.stage_validated", format!("Stage is validated (it is {})", self.stage)));
        }
        match self.go_live_date {
            None => missing.push(unmet("go_live.date_scheduled", "A go-live date is scheduled")),
            Some(date) if date.naive() > now.date_naive() => {
                missing.push(unmet("go_live.date_reached", format!("The go-live date {date} has been reached (UTC)")))
            }
            Some(_) => {}
        }
        let open = self.open_feedback().count();
        if open > 0 {
            missing.push(unmet("go_live.feedback_resolved", format!("No open feedback item ({open} open)")));
        }
        if let Some(block) = &self.block {
            missing.push(unmet("go_live.not_blocked", format!("Not blocked (blocked: {})", block.category.as_str())));
        }
        missing
    }

    fn go_live(&self, ctx: &Context<'_>) -> Result<Vec<Event>, Rejection> {
        let missing = self.go_live_unmet(ctx.now);
        if !missing.is_empty() && !guard_broken("live") {
            return Err(Rejection::GuardRejected { command: "go_live", unmet: missing });
        }
        Ok(vec![
            Event::StageEntered { stage: Stage::Live },
            Event::MonitoringStarted { started_at: ctx.now, ends_at: ctx.now + self.monitoring_window() },
        ])
    }

    /// The guards of `complete_monitoring` that do not hold at `now`.
    pub fn complete_monitoring_unmet(&self, now: DateTime<Utc>) -> Vec<Unmet> {
        let mut missing = Vec::new();
        match (&self.monitoring, self.stage) {
            (Some(monitoring), Stage::Live) => {
                if monitoring.completed_at.is_some() {
                    missing.push(unmet("monitoring.not_completed", "Monitoring is not already completed"));
                }
                if now < monitoring.ends_at {
                    let left = monitoring.ends_at - now;
                    missing.push(unmet(
                        "monitoring.window_passed",
                        format!(
                            "The monitoring window has passed (it ends {}, in {})",
                            monitoring.ends_at.format("%Y-%m-%d %H:%M UTC"),
                            describe_remaining(left)
                        ),
                    ));
                }
            }
            _ => missing.push(unmet("monitoring.live", "The integration is live and monitoring")),
        }
        missing
    }

    /// The automatic consequences of a command, computed on the state `after` its primary
    /// events from the state `before` it.
    fn stage_consequences(&mut self, before: &Integration, command: &str) -> Vec<Event> {
        let mut events = Vec::new();
        if self.is_cancelled() {
            return events;
        }
        let voided: Vec<Requirement> = self.requirements().filter(|r| before.is_met(*r) && !self.is_met(*r)).collect();
        if self.stage == Stage::Live {
            if !voided.is_empty() && self.block.is_none() {
                let cause =
                    Cause { command: command.to_owned(), requirements: voided.iter().map(Requirement::id).collect() };
                let category = voided
                    .iter()
                    .map(Requirement::trouble_category)
                    .find(|c| *c != BlockCategory::Other)
                    .unwrap_or(BlockCategory::Other);
                let labels: Vec<String> = voided.iter().map(|r| self.label(*r)).collect();
                let detail = format!("{command} voided, while live: {}", labels.join("; "));
                let detail: String = detail.chars().take(super::values::LONG_TEXT_MAX_CHARS).collect();
                events.push(Event::IntegrationBlocked { category, detail: text(&detail), cause: Some(cause) });
            }
            return events;
        }
        let holding = self.highest_holding_stage();
        if holding < self.stage {
            let requirements = if voided.is_empty() { self.unmet_through(self.stage) } else { voided };
            let regressed = Event::StageRegressed {
                from: self.stage,
                to: holding,
                cause: Cause {
                    command: command.to_owned(),
                    requirements: requirements.iter().map(Requirement::id).collect(),
                },
            };
            self.apply(&regressed, self.updated_at);
            events.push(regressed);
        }
        while let Some(next) = self.stage.next() {
            if next == Stage::Live || !self.requirements_hold_through(next) {
                break;
            }
            let entered = Event::StageEntered { stage: next };
            self.apply(&entered, self.updated_at);
            events.push(entered);
        }
        events
    }
}

impl super::state::Block {
    /// The guide's troubleshooting advice for this block's category.
    pub fn category_advice(&self) -> &'static str {
        super::diagnose::advice(self.category.into())
    }
}
