//! `diagnose`: why an integration is stuck and what to check, from its history and signals.
//!
//! The advice follows the guide's troubleshooting section: API calls fail → network and
//! firewall; permission errors → application settings and scopes; webhooks not received →
//! webhook URL and secret token.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::checks::{DeliveryFailureCause, HookAlert, TestRequestOutcome};
use super::rejection::Unmet;
use super::signals::FindingCategory;
use super::stage::Stage;
use super::state::{EvidenceSource, Integration};

/// After this long without progress an onboarding counts as stalled.
pub const STALLED_AFTER_DAYS: i64 = 7;
/// While live, a webhook silent this long deserves a look.
pub const LIVE_DELIVERY_SILENCE_DAYS: i64 = 3;

/// Signals kept outside the event log: refused deliveries are counted, never stored as events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeliverySignals {
    pub refused_deliveries: u64,
    pub first_refused_at: Option<DateTime<Utc>>,
    pub last_refused_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub category: FindingCategory,
    pub message: String,
    pub advice: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockSummary {
    pub category: super::signals::BlockCategory,
    pub detail: String,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub stage: Stage,
    pub blocked: Option<BlockSummary>,
    pub missing: Vec<Unmet>,
    pub findings: Vec<Finding>,
}

/// The guide's advice for a category.
pub fn advice(category: FindingCategory) -> &'static str {
    match category {
        FindingCategory::ApiFailure => {
            "check the network configuration and firewall rules (peering or VPN routes, outbound HTTPS and SSH)"
        }
        FindingCategory::PermissionDenied => {
            "review the application settings and scopes, and that the token belongs to a GitLab admin"
        }
        FindingCategory::WebhookNotReceived => {
            "verify the webhook URL and secret token in GitLab, and whether GitLab disabled the hook after repeated failures"
        }
        FindingCategory::RateLimited => "GitLab is rate limiting the probe: retry later (not a block)",
        FindingCategory::Stalled => "talk to the owner and the customer about the next step",
        FindingCategory::Other => "read the integration's notes and history",
    }
}

fn finding(category: FindingCategory, message: String) -> Finding {
    Finding { category, message, advice: advice(category).to_owned() }
}

impl Integration {
    /// What golive's own checks through GitLab's API could not do or did not see arrive.
    fn check_findings(&self, findings: &mut Vec<Finding>) {
        for (kind, (failure, at)) in &self.facts.check_failures {
            findings.push(finding(
                failure.category,
                format!(
                    "The {} check of {} could not look: {}",
                    kind.as_str().replace('_', " "),
                    day(*at),
                    failure.detail
                ),
            ));
        }
        self.test_delivery_findings(findings);
        if let Some((checked, at)) = &self.facts.webhook_check {
            if let super::checks::WebhookFinding::Found { alert: Some(alert), location, .. } = &checked.finding {
                let disabled = match alert {
                    HookAlert::Executable => None,
                    HookAlert::TemporarilyDisabled { until: Some(until) } => {
                        Some(format!("until {}, when GitLab enables it again", until.format("%Y-%m-%d %H:%M UTC")))
                    }
                    HookAlert::TemporarilyDisabled { until: None } => Some("for a while".to_owned()),
                    HookAlert::Disabled => Some("for good, until someone enables it again".to_owned()),
                };
                if let Some(how_long) = disabled {
                    findings.push(Finding {
                        category: FindingCategory::WebhookNotReceived,
                        message: format!(
                            "GitLab's API showed on {} that GitLab disabled {} after repeated failed deliveries, {how_long}: it delivers nothing",
                            day(*at),
                            location.describe()
                        ),
                        advice: "fix why deliveries failed (see the hook's Recent events in GitLab), then run \
                                 golive's test deliveries: a successful one enables the hook again"
                            .to_owned(),
                    });
                }
            }
        }
        let Some(run) = self.check_runs.iter().rev().find(|r| r.finished_at.is_some()) else { return };
        let finished_at = run.finished_at.expect("filtered on finished runs");
        let arrived_since = self.facts.verified_delivery_at.is_some_and(|at| at > finished_at);
        if !run.deliveries_missing.is_empty() && !arrived_since {
            let triggers: Vec<&str> = run.deliveries_missing.iter().map(|t| t.as_str()).collect();
            findings.push(Finding {
                category: FindingCategory::WebhookNotReceived,
                message: format!(
                    "GitLab accepted golive's test deliveries of {} ({}) but they never arrived at golive",
                    day(finished_at),
                    triggers.join(", ")
                ),
                advice:
                    "GitLab cannot reach golive: check that the customer's firewall and proxy let GitLab's outbound \
                         HTTPS reach golive's public URL, then the hook's recent events in GitLab for the error"
                        .to_owned(),
            });
        }
    }
}

impl Integration {
    /// What GitLab said of the test deliveries golive asked for last, one finding per distinct
    /// answer (the triggers it concerns named together).
    fn test_delivery_findings(&self, findings: &mut Vec<Finding>) {
        let mut answers: Vec<(&TestRequestOutcome, Vec<&str>, DateTime<Utc>)> = Vec::new();
        for (trigger, progress) in &self.facts.test_deliveries {
            let Some(outcome) = &progress.outcome else { continue };
            if !matches!(outcome, TestRequestOutcome::DeliveryFailed { .. } | TestRequestOutcome::NoSampleData { .. }) {
                continue;
            }
            match answers.iter_mut().find(|(o, _, _)| *o == outcome) {
                Some((_, triggers, _)) => triggers.push(trigger.as_str()),
                None => answers.push((outcome, vec![trigger.as_str()], progress.requested_at)),
            }
        }
        for (outcome, triggers, at) in answers {
            let (category, advice) = match outcome {
                TestRequestOutcome::DeliveryFailed { cause, .. } => (
                    FindingCategory::WebhookNotReceived,
                    match cause {
                        DeliveryFailureCause::Timeout => {
                            "check that the customer's firewall and proxy let GitLab's outbound HTTPS reach golive's public URL"
                        }
                        DeliveryFailureCause::Connection => {
                            "check the network path from GitLab to golive's public URL: DNS, firewall, GitLab's outbound request settings"
                        }
                        DeliveryFailureCause::Tls => {
                            "check golive's certificate: GitLab must trust it (its CA in GitLab's trusted certificates)"
                        }
                        DeliveryFailureCause::RefusedByGolive => {
                            "verify the webhook URL and secret token in GitLab (and signing, when golive issued a signing key)"
                        }
                    },
                ),
                _ => (
                    FindingCategory::Other,
                    "create what GitLab needs for a sample in the project (or run golive's scenarios), then ask for the test deliveries again",
                ),
            };
            findings.push(Finding {
                category,
                message: format!("Test deliveries of {} ({}): {}", triggers.join(", "), day(at), outcome.describe()),
                advice: advice.to_owned(),
            });
        }
    }
}

/// A day as people say it: `Tuesday 2026-11-24`.
fn day(at: DateTime<Utc>) -> String {
    at.format("%A %Y-%m-%d").to_string()
}

impl Integration {
    /// What is missing for the next step, and what the signals say is wrong.
    pub fn diagnose(&self, now: DateTime<Utc>, signals: &DeliverySignals) -> Diagnosis {
        let missing = match self.stage {
            Stage::Cancelled => Vec::new(),
            Stage::Validated => self.go_live_unmet(now),
            Stage::Live => self
                .unmet_through(Stage::Validated)
                .into_iter()
                .map(|r| Unmet { id: r.id(), label: self.label(r) })
                .collect(),
            stage => {
                let target = stage.next().unwrap_or(Stage::Validated);
                self.unmet_through(target).into_iter().map(|r| Unmet { id: r.id(), label: self.label(r) }).collect()
            }
        };
        let mut findings = Vec::new();
        if self.is_cancelled() {
            return Diagnosis { stage: self.stage, blocked: None, missing, findings };
        }
        if let Some(block) = &self.block {
            findings.push(finding(
                block.category.into(),
                format!(
                    "Blocked ({}) since {}, {}: {}",
                    block.category.as_str(),
                    day(block.since),
                    describe_duration(now - block.since),
                    block.detail
                ),
            ));
        }
        // One finding per cause. The latest probe is one cause, and what it found about the
        // token belongs to it; a probe failure that later evidence superseded (a successful API
        // check since) is history, not a finding, so the checklist and the findings agree.
        let token_problems = self.token_problems();
        let mut token_reported = false;
        if let Some(probe) = &self.facts.latest_probe {
            let superseded = self.facts.api_connectivity.as_ref().is_some_and(|e| e.ok && e.at > probe.at);
            if let (Some(category), false) = (probe.result.category, superseded) {
                let streak = self.facts.consecutive_probe_failures;
                let streak = if streak > 1 { format!(" ({streak} failed probes in a row)") } else { String::new() };
                let same_probe = self.facts.token_finding.as_ref().is_some_and(|t| t.at == probe.at);
                if probe.result.api_reachable && same_probe && !token_problems.is_empty() {
                    token_reported = true;
                    findings.push(Finding {
                        category,
                        message: format!(
                            "The last probe, {}, reached GitLab's API and found that {}{streak}",
                            day(probe.at),
                            token_problems.join("; ")
                        ),
                        advice: self.token_advice(),
                    });
                } else {
                    let detail = probe.result.detail.as_ref().map(|d| d.as_str()).unwrap_or("no detail");
                    let what = if probe.result.api_reachable { "reached GitLab's API but failed" } else { "failed" };
                    findings.push(finding(
                        category,
                        format!("The last probe, {}, {what}{streak}: {detail}", day(probe.at)),
                    ));
                }
            }
        }
        if let (Some(token), false) = (&self.facts.token_finding, token_reported) {
            if !token_problems.is_empty() {
                findings.push(Finding {
                    category: FindingCategory::PermissionDenied,
                    message: format!("The probe of {} found that {}", day(token.at), token_problems.join("; ")),
                    advice: self.token_advice(),
                });
            }
        }
        if let Some(app) = &self.facts.application {
            let lacking: Vec<&str> =
                self.playbook.required_scopes.difference(&app.scopes).map(|s| s.as_str()).collect();
            if !lacking.is_empty() {
                findings.push(Finding {
                    category: FindingCategory::PermissionDenied,
                    message: format!("The GitLab application was recorded without the scopes {}", lacking.join(", ")),
                    advice: "add the scopes to the application in GitLab (Admin Area > Applications) and record the application again".to_owned(),
                });
            }
        }
        if let Some(evidence) = &self.facts.api_connectivity {
            if !evidence.ok && evidence.source == EvidenceSource::ApiCheck {
                findings.push(finding(
                    FindingCategory::ApiFailure,
                    format!("The API check recorded {} failed", day(evidence.at)),
                ));
            }
        }
        if signals.refused_deliveries > 0 {
            let since = signals.first_refused_at.map(|at| format!(" since {}", day(at))).unwrap_or_default();
            let n = signals.refused_deliveries;
            findings.push(finding(
                FindingCategory::WebhookNotReceived,
                format!(
                    "{n} deliver{} refused for a bad or missing secret token{since}",
                    if n == 1 { "y was" } else { "ies were" }
                ),
            ));
        }
        self.check_findings(&mut findings);
        self.delivery_silence_findings(now, &mut findings);
        let since_progress = now - self.last_progress_at;
        let stalls = self.stage != Stage::Live && since_progress >= Duration::days(STALLED_AFTER_DAYS);
        if stalls {
            findings.push(finding(
                FindingCategory::Stalled,
                format!(
                    "No progress for {} (in {} since {})",
                    describe_duration(since_progress),
                    self.stage,
                    day(self.stage_entered_at)
                ),
            ));
        }
        let blocked = self.block.as_ref().map(|b| BlockSummary {
            category: b.category,
            detail: b.detail.to_string(),
            since: b.since,
        });
        Diagnosis { stage: self.stage, blocked, missing, findings }
    }

    /// What the probe found wrong with the current access token, in golive's words.
    fn token_problems(&self) -> Vec<String> {
        let Some(token) = &self.facts.token_finding else { return Vec::new() };
        let mut problems = Vec::new();
        if token.active == Some(false) {
            problems.push("the access token is inactive, expired or revoked".to_owned());
        }
        if token.admin == Some(false) {
            problems.push("the access token's user is not a GitLab admin".to_owned());
        }
        if !token.missing_scopes.is_empty() {
            let names: Vec<&str> = token.missing_scopes.iter().map(|s| s.as_str()).collect();
            problems.push(format!("the access token lacks the scopes {}", names.join(", ")));
        }
        problems
    }

    fn token_advice(&self) -> String {
        let scopes: Vec<&str> = self.playbook.required_token_scopes.iter().map(|s| s.as_str()).collect();
        format!("have a GitLab admin create an access token with the scopes {} and provide it again", scopes.join(", "))
    }

    fn delivery_silence_findings(&self, now: DateTime<Utc>, findings: &mut Vec<Finding>) {
        let facts = &self.facts;
        if self.stage == Stage::Live {
            let live_since = self.monitoring.as_ref().map(|m| m.started_at).unwrap_or(self.stage_entered_at);
            let last = facts.deliveries.last_at.map_or(live_since, |at| at.max(live_since));
            let silence = now - last;
            if silence >= Duration::days(LIVE_DELIVERY_SILENCE_DAYS) {
                findings.push(finding(
                    FindingCategory::WebhookNotReceived,
                    format!("No delivery for {} while live", describe_duration(silence)),
                ));
            }
            return;
        }
        if facts.webhook.is_some() && facts.verified_delivery_at.is_none() {
            findings.push(finding(
                FindingCategory::WebhookNotReceived,
                "The webhook is created but no delivery has been verified with the current token: press Test in GitLab"
                    .into(),
            ));
        }
    }
}

/// Formats a duration as days or hours, for people.
/// A time still to run, for people: a part of a day or an hour rounds up, so a 14-day window that
/// began a minute ago still reads "14 days" (elapsed times, [`describe_duration`], round down).
pub fn describe_remaining(duration: Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    let (day, hour) = (86_400, 3_600);
    if seconds >= day {
        let days = (seconds + day - 1) / day;
        format!("{days} day{}", if days == 1 { "" } else { "s" })
    } else {
        let hours = (seconds + hour - 1) / hour;
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    }
}

pub fn describe_duration(duration: Duration) -> String {
    let days = duration.num_days();
    if days >= 1 {
        format!("{days} day{}", if days == 1 { "" } else { "s" })
    } else {
        let hours = duration.num_hours().max(0);
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    }
}
