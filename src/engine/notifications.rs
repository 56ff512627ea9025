//! Notifications: what a rep must not miss, sent to the team's chat (a Slack-compatible
//! incoming webhook) or by e-mail, decided from the log.
//!
//! Rules (per owner, or per team as a list of owners) name causes — an integration blocked,
//! stalled for N days, its monitoring probe failing, the customer's intake submitted, its
//! go-live date tomorrow, its webhook silent for N hours while live — and a sink. Each pass
//! ([`Engine::notification_pass`]) reads every integration's state (folded from the log) and
//! derives its current causes, each with a key that names the cause itself (the block's start,
//! the last progress, the link redeemed, the date, the last delivery): a cause notifies once per
//! rule, however many passes, retries or replicas see it.
//!
//! A notification is claimed before it is sent: an insert-if-absent of its record, then a
//! compare-and-swap that marks an attempt under way for a bounded time. It is sent at least
//! once (a crash between sending and recording sends it again after the claim lapses) and
//! every attempt — sent, failed, given up — is written to the integration's notification
//! journal, a sequence of its own beside the log: outside the integration's stream, so its
//! version and ETag do not move, and outside the hash-chained log, which holds what happened to
//! the onboarding rather than golive's bookkeeping of messages. No message carries a secret:
//! they are built from the customer's name, the stage, a category and a link, nothing else.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Engine, EngineError, ListFilter, OutboundCounters};
use crate::domain::{Actor, HttpUrl, Integration, IntegrationId, Rejection, SealedSecret, SecretKind, Stage};
use crate::outbound::mail::{parse_recipients, SmtpRelay};
use crate::outbound::{OutboundLimits, Poster};
use crate::store::{update_aux, AuxChange};

/// A cause a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
// Named apart from the webhook triggers of a playbook in the OpenAPI document.
#[schema(as = NotificationCause)]
pub enum Trigger {
    /// The integration is blocked.
    // Every variant has braces: serde refuses unknown fields only in struct variants.
    Blocked {},
    /// No progress for `days` days (not live, not cancelled).
    Stalled { days: u32 },
    /// The monitoring probe's latest result is a failure.
    ProbeFailing {},
    /// The customer submitted the intake form.
    IntakeSubmitted {},
    /// The go-live date is tomorrow (UTC) and the integration is not live yet.
    GoLiveTomorrow {},
    /// Live (or monitored), and no webhook delivery for `hours` hours.
    WebhookSilent { hours: u32 },
}

impl Trigger {
    fn name(&self) -> &'static str {
        match self {
            Trigger::Blocked {} => "blocked",
            Trigger::Stalled { .. } => "stalled",
            Trigger::ProbeFailing {} => "probe_failing",
            Trigger::IntakeSubmitted {} => "intake_submitted",
            Trigger::GoLiveTomorrow {} => "go_live_tomorrow",
            Trigger::WebhookSilent { .. } => "webhook_silent",
        }
    }

    /// Parses the CLI's words: `blocked`, `stalled=3`, `probe_failing`, `intake_submitted`,
    /// `go_live_tomorrow`, `webhook_silent=24`.
    pub fn parse(text: &str) -> Result<Trigger, String> {
        let (name, number) = match text.split_once('=') {
            Some((name, number)) => {
                let number: u32 = number
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=365 * 24).contains(n))
                    .ok_or_else(|| format!("{text:?}: the number must be a whole number from 1"))?;
                (name.trim(), Some(number))
            }
            None => (text.trim(), None),
        };
        match (name, number) {
            ("blocked", None) => Ok(Trigger::Blocked {}),
            ("stalled", Some(days)) => Ok(Trigger::Stalled { days }),
            ("probe_failing", None) => Ok(Trigger::ProbeFailing {}),
            ("intake_submitted", None) => Ok(Trigger::IntakeSubmitted {}),
            ("go_live_tomorrow", None) => Ok(Trigger::GoLiveTomorrow {}),
            ("webhook_silent", Some(hours)) => Ok(Trigger::WebhookSilent { hours }),
            ("stalled", None) => Err("stalled needs a number of days: stalled=3".into()),
            ("webhook_silent", None) => Err("webhook_silent needs a number of hours: webhook_silent=24".into()),
            _ => Err(format!(
                "{text:?} is not a cause: blocked, stalled=DAYS, probe_failing, intake_submitted, go_live_tomorrow, webhook_silent=HOURS"
            )),
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Trigger::Stalled { days } if !(1..=365).contains(days) => Err("stalled days must be 1 to 365".into()),
            Trigger::WebhookSilent { hours } if !(1..=24 * 30).contains(hours) => {
                Err("webhook_silent hours must be 1 to 720".into())
            }
            _ => Ok(()),
        }
    }
}

/// Where a rule's notifications go, as an admin gives it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewSink {
    /// A Slack-compatible incoming webhook. Its URL is a secret: stored sealed, never shown.
    Slack {
        #[schema(value_type = String)]
        url: HttpUrl,
    },
    /// E-mail through the server's SMTP relay.
    Email { to: Vec<String> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Sink {
    Slack { url: SealedSecret, host: String },
    Email { to: Vec<String> },
}

impl Sink {
    fn describe(&self) -> String {
        match self {
            Sink::Slack { host, .. } => format!("slack webhook at {host}"),
            Sink::Email { to } => format!("e-mail to {}", to.join(", ")),
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Sink::Slack { .. } => "slack",
            Sink::Email { .. } => "email",
        }
    }
}

/// A rule as an admin gives it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    /// The owners whose integrations it watches (a team is its owners); empty: every owner.
    #[serde(default)]
    pub owners: BTreeSet<String>,
    pub on: Vec<Trigger>,
    pub sink: NewSink,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rule {
    id: Uuid,
    name: String,
    owners: BTreeSet<String>,
    on: Vec<Trigger>,
    sink: Sink,
    created_at: DateTime<Utc>,
    created_by: Actor,
}

/// A rule as people see it (a Slack URL only by its host).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: Uuid,
    pub name: String,
    pub owners: BTreeSet<String>,
    pub on: Vec<Trigger>,
    /// `slack` or `email`.
    pub sink: String,
    /// Where, without secrets: the webhook's host, or the addresses.
    pub destination: String,
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub created_by: Actor,
}

impl From<&Rule> for RuleView {
    fn from(rule: &Rule) -> Self {
        RuleView {
            id: rule.id,
            name: rule.name.clone(),
            owners: rule.owners.clone(),
            on: rule.on.clone(),
            sink: rule.sink.kind().to_owned(),
            destination: rule.sink.describe(),
            created_at: rule.created_at,
            created_by: rule.created_by.clone(),
        }
    }
}

/// How notifications are sent (the engine's configuration; tests shorten the times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationSettings {
    /// Attempts per notification before golive gives up on it.
    pub attempts_max: u32,
    /// The first retry's delay; each further one doubles it.
    pub retry_base_ms: u64,
    /// How long one attempt holds its notification (no other replica sends it meanwhile).
    pub claim_ms: u64,
    pub limits: OutboundLimits,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            attempts_max: 6,
            retry_base_ms: 30_000,
            claim_ms: 60_000,
            limits: OutboundLimits::default(),
        }
    }
}

/// One notification's delivery record (`notification/<rule>/<cause key>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Delivery {
    integration: IntegrationId,
    cause: String,
    /// What the message says (kept so a retry sends the same message).
    subject: String,
    text: String,
    attempts: u32,
    /// `pending`, `sending`, `sent` or `gave_up`.
    status: String,
    next_attempt_at: DateTime<Utc>,
    claimed_until: Option<DateTime<Utc>>,
}

/// One line of an integration's notification journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JournalEntry {
    /// Its place in the journal (increasing across all integrations).
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub rule_id: Uuid,
    pub rule_name: String,
    /// The cause, e.g. `blocked`, `stalled`.
    pub cause: String,
    /// The deduplication key: one cause of one rule.
    pub key: String,
    /// `slack webhook at HOST` or `e-mail to ADDRESSES`.
    pub sink: String,
    /// `sent`, `failed` (will be retried) or `gave_up`.
    pub outcome: String,
    /// 1 for the first attempt; more is a retry of the same notification.
    pub attempt: u32,
    /// Why it failed, in golive's words.
    pub failure: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotificationReport {
    /// New causes found (one per rule and cause).
    pub decided: usize,
    pub sent: usize,
    pub failed: usize,
    pub gave_up: usize,
}

const RULE_PREFIX: &str = "notify/rule/";
const DELIVERY_PREFIX: &str = "notify/delivery/";

fn rule_key(id: Uuid) -> String {
    format!("{RULE_PREFIX}{id}")
}
fn journal_prefix(integration: IntegrationId) -> String {
    format!("notify/journal/{integration}/")
}
const JOURNAL_SEQUENCE: &str = "notify/journal-sequence";

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::Rejected(Rejection::invalid(field, message))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("notification records serialize")
}

/// Slack's mrkdwn gives `&`, `<` and `>` meaning (links, mentions such as `<!channel>`): a
/// customer's name must not.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A cause found in one integration's state, with the key that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cause {
    trigger: Trigger,
    key: String,
    /// When the cause came about, where that is a moment (intake submitted).
    at: Option<DateTime<Utc>>,
    summary: String,
}

/// The causes `trigger` finds in `state` at `now`.
/// `probe_streak` names the current run of failing probes (see [`Engine::probe_streak`]).
fn causes_of(trigger: Trigger, state: &Integration, now: DateTime<Utc>, probe_streak: Option<&str>) -> Vec<Cause> {
    let id = state.id;
    let active = !matches!(state.stage, Stage::Live | Stage::Cancelled);
    let customer = state.customer.to_string();
    match trigger {
        Trigger::Blocked {} => state
            .block
            .iter()
            .map(|block| Cause {
                trigger,
                key: format!("blocked/{id}/{}", block.since.timestamp_millis()),
                at: Some(block.since),
                summary: format!("{customer} is blocked ({})", block.category.as_str()),
            })
            .collect(),
        Trigger::Stalled { days } => {
            let idle = now - state.last_progress_at;
            if active && idle >= Duration::days(i64::from(days)) {
                vec![Cause {
                    trigger,
                    key: format!("stalled/{id}/{}/{days}", state.last_progress_at.timestamp_millis()),
                    at: None,
                    summary: format!(
                        "{customer} has stalled: no progress for {} days (stage {})",
                        idle.num_days(),
                        state.stage.as_str()
                    ),
                }]
            } else {
                Vec::new()
            }
        }
        Trigger::ProbeFailing {} => match (&state.facts.latest_probe, probe_streak) {
            (Some(probe), Some(streak)) => {
                let category = probe.result.category.map(|c| c.as_str()).unwrap_or("other");
                vec![Cause {
                    trigger,
                    key: format!("probe_failing/{id}/{streak}"),
                    at: Some(probe.at),
                    summary: format!("{customer}: the monitoring probe is failing ({category})"),
                }]
            }
            _ => Vec::new(),
        },
        Trigger::IntakeSubmitted {} => state
            .intake_links
            .iter()
            .filter_map(|link| link.redeemed_at.map(|at| (link.link_id, at)))
            .map(|(link, at)| Cause {
                trigger,
                key: format!("intake_submitted/{id}/{link}"),
                at: Some(at),
                summary: format!("{customer}: the customer submitted the intake form"),
            })
            .collect(),
        Trigger::GoLiveTomorrow {} => match state.go_live_date {
            Some(date) if active && date.naive() == now.date_naive() + Duration::days(1) => vec![Cause {
                trigger,
                key: format!("go_live_tomorrow/{id}/{date}"),
                at: None,
                summary: format!("{customer} goes live tomorrow ({date}); stage {}", state.stage.as_str()),
            }],
            _ => Vec::new(),
        },
        Trigger::WebhookSilent { hours } => {
            let watched =
                state.stage == Stage::Live || state.monitoring.as_ref().is_some_and(|m| m.completed_at.is_none());
            match state.facts.deliveries.last_at {
                Some(last) if watched && now - last >= Duration::hours(i64::from(hours)) => vec![Cause {
                    trigger,
                    key: format!("webhook_silent/{id}/{}/{hours}", last.timestamp_millis()),
                    at: None,
                    summary: format!(
                        "{customer}: no webhook delivery for {} hours (the last at {})",
                        (now - last).num_hours(),
                        last.format("%Y-%m-%d %H:%M UTC")
                    ),
                }],
                _ => Vec::new(),
            }
        }
    }
}

/// The sinks a pass can reach: the poster for webhooks, the relay for mail (if configured).
pub struct NotificationSinks {
    pub poster: Poster,
    pub smtp: Option<SmtpRelay>,
    pub counters: Arc<OutboundCounters>,
    pub settings: NotificationSettings,
}

impl NotificationSinks {
    pub fn new(engine: &Engine, smtp: Option<SmtpRelay>, settings: NotificationSettings) -> Self {
        let counters = engine.outbound_counters().clone();
        NotificationSinks {
            poster: Poster::new(
                engine.config().probe_egress.clone(),
                settings.limits,
                concat!("golive-notifications/", env!("CARGO_PKG_VERSION")),
            ),
            smtp,
            counters,
            settings,
        }
    }
}

impl Engine {
    /// Adds a notification rule (admins).
    pub async fn add_notification_rule(&self, request: NewRule, actor: &Actor) -> Result<RuleView, EngineError> {
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(crate::auth::is_deceptive_char) {
            return Err(invalid("name", "give 1 to 100 printable characters"));
        }
        if request.on.is_empty() || request.on.len() > 12 {
            return Err(invalid("on", "give 1 to 12 causes"));
        }
        for trigger in &request.on {
            trigger.validate().map_err(|m| invalid("on", m))?;
        }
        if request.owners.len() > 200 || request.owners.iter().any(|o| o.trim().is_empty() || o.len() > 200) {
            return Err(invalid("owners", "at most 200 owner names, none empty"));
        }
        let id = self.ids().next_id();
        let sink = match request.sink {
            NewSink::Slack { url } => {
                let host = url::Url::parse(url.as_str())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .ok_or_else(|| invalid("sink.url", "must name a host"))?;
                let owner = IntegrationId::from_uuid(id);
                let key = self.keystore().data_key(owner).await?;
                // Sealed as a webhook credential under the rule's own data key: the URL's path is
                // what lets anyone post to the channel.
                Sink::Slack {
                    url: crate::secrets::seal(&key, owner, SecretKind::WebhookSigningKey, url.as_str().as_bytes()),
                    host,
                }
            }
            NewSink::Email { to } => {
                Sink::Email { to: parse_recipients(&to).map_err(|e| invalid("sink.to", e.to_string()))? }
            }
        };
        let mut on = request.on;
        on.sort();
        on.dedup();
        let rule =
            Rule { id, name, owners: request.owners, on, sink, created_at: self.now(), created_by: actor.clone() };
        self.store().put_aux(&rule_key(id), encode(&rule)).await?;
        Ok(RuleView::from(&rule))
    }

    pub async fn notification_rules(&self) -> Result<Vec<RuleView>, EngineError> {
        let mut rules = self.rules().await?;
        rules.sort_by_key(|r| (r.created_at, r.id));
        Ok(rules.iter().map(RuleView::from).collect())
    }

    /// Removes a rule; its sealed webhook URL becomes unreadable (its data key is shredded).
    pub async fn remove_notification_rule(&self, id: Uuid) -> Result<(), EngineError> {
        if self.store().get_aux(&rule_key(id)).await?.is_none() {
            return Err(EngineError::NoSuchRule(id));
        }
        update_aux(self.store().as_ref(), &rule_key(id), |_| AuxChange::Remove).await?;
        self.keystore().shred(IntegrationId::from_uuid(id)).await?;
        Ok(())
    }

    /// The integration's notification journal, oldest first.
    pub async fn notification_journal(&self, id: IntegrationId) -> Result<Vec<JournalEntry>, EngineError> {
        self.state(id).await?;
        let entries = self.store().scan_aux(&journal_prefix(id)).await?;
        Ok(entries.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect())
    }

    async fn rules(&self) -> Result<Vec<Rule>, EngineError> {
        let entries = self.store().scan_aux(RULE_PREFIX).await?;
        Ok(entries.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect())
    }

    /// One pass: finds new causes, sends what is due (new ones and retries), records every
    /// attempt. Safe to run on every replica at once.
    pub async fn notification_pass(&self, sinks: &NotificationSinks) -> Result<NotificationReport, EngineError> {
        let mut report = NotificationReport::default();
        let rules = self.rules().await?;
        let now = self.now();
        if !rules.is_empty() {
            for summary in self.list(&ListFilter::default()).await? {
                let Some(state) = self.states().load(summary.id).await?.0 else { continue };
                let streak = self.probe_streak(&state, now).await?;
                for rule in &rules {
                    let owner = state.owner.as_ref().map(|o| o.to_string());
                    if !rule.owners.is_empty() && !owner.as_ref().is_some_and(|o| rule.owners.contains(o)) {
                        continue;
                    }
                    for trigger in &rule.on {
                        for cause in causes_of(*trigger, &state, now, streak.as_deref()) {
                            // A moment before the rule existed is history, not news.
                            if cause.at.is_some_and(|at| at < rule.created_at)
                                && matches!(cause.trigger, Trigger::IntakeSubmitted {})
                            {
                                continue;
                            }
                            if self.decide_notification(rule, &state, &cause, now).await? {
                                report.decided += 1;
                            }
                        }
                    }
                }
            }
        }
        // Everything due: new ones and retries, this pass's or earlier ones'.
        for (key, bytes) in self.store().scan_aux(DELIVERY_PREFIX).await? {
            let Ok(delivery) = serde_json::from_slice::<Delivery>(&bytes) else { continue };
            let due = match delivery.status.as_str() {
                "pending" => delivery.next_attempt_at <= now,
                "sending" => delivery.claimed_until.is_some_and(|until| until <= now),
                _ => false,
            };
            if !due {
                continue;
            }
            let Some(rule_id) = key.strip_prefix(DELIVERY_PREFIX).and_then(|rest| rest.split('/').next()) else {
                continue;
            };
            let Ok(rule_id) = Uuid::parse_str(rule_id) else { continue };
            let Some(rule) = rules.iter().find(|r| r.id == rule_id) else { continue };
            match self.attempt(sinks, rule, &key).await? {
                Some(Outcome::Sent) => report.sent += 1,
                Some(Outcome::Failed) => report.failed += 1,
                Some(Outcome::GaveUp) => report.gave_up += 1,
                None => {}
            }
        }
        Ok(report)
    }

    /// The name of the integration's current run of failing probes, or `None` when its latest
    /// probe passed. The log keeps no time for a run's first failure, so the first pass that
    /// sees the run writes one (insert-if-absent: every replica reads the same name) and the
    /// first pass that sees a passing probe removes it; the next failure starts a new run.
    async fn probe_streak(&self, state: &Integration, now: DateTime<Utc>) -> Result<Option<String>, EngineError> {
        let key = format!("notify/probe-streak/{}", state.id);
        let failing = state.facts.latest_probe.is_some()
            && state.facts.consecutive_probe_failures > 0
            && state.stage != Stage::Cancelled;
        if failing {
            let fresh = now.timestamp_millis().to_string().into_bytes();
            let stored = self.store().insert_aux_if_absent(&key, fresh.clone()).await?.unwrap_or(fresh);
            Ok(Some(String::from_utf8_lossy(&stored).into_owned()))
        } else {
            if let Some(current) = self.store().get_aux(&key).await? {
                self.store().compare_and_swap_aux(&key, Some(&current), None).await?;
            }
            Ok(None)
        }
    }

    /// Records a new cause for `rule` (once: an insert-if-absent); whether it was new.
    async fn decide_notification(
        &self,
        rule: &Rule,
        state: &Integration,
        cause: &Cause,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let link = format!("{}/integrations/{}", self.config().public_url, state.id);
        let subject = format!("golive: {}", cause.summary);
        let text = format!(
            "{}\nOwner: {}. Stage: {}.\nOpen it in golive: {link}\n(rule \"{}\")",
            cause.summary,
            state.owner.as_ref().map(|o| o.to_string()).unwrap_or_else(|| "nobody".into()),
            state.stage.as_str(),
            rule.name
        );
        let delivery = Delivery {
            integration: state.id,
            cause: cause.trigger.name().to_owned(),
            subject,
            text,
            attempts: 0,
            status: "pending".into(),
            next_attempt_at: now,
            claimed_until: None,
        };
        let key = format!("{DELIVERY_PREFIX}{}/{}", rule.id, cause.key);
        Ok(self.store().put_aux_if_absent(&key, encode(&delivery)).await?)
    }

    /// Claims the notification at `key`, sends it, and records the attempt.
    async fn attempt(&self, sinks: &NotificationSinks, rule: &Rule, key: &str) -> Result<Option<Outcome>, EngineError> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now();
        let claim_until = now + Duration::milliseconds(sinks.settings.claim_ms as i64);
        let mut claimed: Option<Delivery> = None;
        update_aux(self.store().as_ref(), key, |current| {
            claimed = None;
            let Some(mut delivery) = current.and_then(|b| serde_json::from_slice::<Delivery>(b).ok()) else {
                return AuxChange::Keep;
            };
            let due = match delivery.status.as_str() {
                "pending" => delivery.next_attempt_at <= now,
                "sending" => delivery.claimed_until.is_some_and(|until| until <= now),
                _ => false,
            };
            if !due {
                return AuxChange::Keep;
            }
            delivery.status = "sending".into();
            delivery.attempts += 1;
            delivery.claimed_until = Some(claim_until);
            claimed = Some(delivery.clone());
            AuxChange::Put(encode(&delivery))
        })
        .await?;
        let Some(delivery) = claimed else { return Ok(None) };
        let result = self.send(sinks, rule, &delivery).await;
        let attempt = delivery.attempts;
        let (outcome, failure, retry_at) = match result {
            Ok(()) => {
                sinks.counters.notifications_sent.fetch_add(1, Relaxed);
                (Outcome::Sent, None, None)
            }
            Err(reason) => {
                sinks.counters.notifications_failed.fetch_add(1, Relaxed);
                if attempt >= sinks.settings.attempts_max {
                    (Outcome::GaveUp, Some(reason), None)
                } else {
                    let delay = sinks.settings.retry_base_ms.saturating_mul(1 << (attempt - 1).min(20));
                    (Outcome::Failed, Some(reason), Some(self.now() + Duration::milliseconds(delay as i64)))
                }
            }
        };
        update_aux(self.store().as_ref(), key, |current| {
            let Some(mut delivery) = current.and_then(|b| serde_json::from_slice::<Delivery>(b).ok()) else {
                return AuxChange::Keep;
            };
            if delivery.attempts != attempt || delivery.status != "sending" {
                return AuxChange::Keep;
            }
            delivery.claimed_until = None;
            match outcome {
                Outcome::Sent => delivery.status = "sent".into(),
                Outcome::GaveUp => delivery.status = "gave_up".into(),
                Outcome::Failed => {
                    delivery.status = "pending".into();
                    delivery.next_attempt_at = retry_at.unwrap_or(now);
                }
            }
            AuxChange::Put(encode(&delivery))
        })
        .await?;
        let sequence = self.store().add_to_counter(JOURNAL_SEQUENCE, 1).await?;
        let entry = JournalEntry {
            sequence,
            at: self.now(),
            rule_id: rule.id,
            rule_name: rule.name.clone(),
            cause: delivery.cause.clone(),
            key: key.trim_start_matches(DELIVERY_PREFIX).to_owned(),
            sink: rule.sink.describe(),
            outcome: outcome.as_str().to_owned(),
            attempt,
            failure,
            retry_at,
        };
        self.store()
            .put_aux(&format!("{}{sequence:020}", journal_prefix(delivery.integration)), encode(&entry))
            .await?;
        Ok(Some(outcome))
    }

    async fn send(&self, sinks: &NotificationSinks, rule: &Rule, delivery: &Delivery) -> Result<(), String> {
        match &rule.sink {
            Sink::Slack { url, .. } => {
                let owner = IntegrationId::from_uuid(rule.id);
                let key = self
                    .keystore()
                    .existing_data_key(owner)
                    .await
                    .map_err(|_| "the webhook URL cannot be unsealed".to_owned())?
                    .ok_or_else(|| "the webhook URL was shredded".to_owned())?;
                let plain = crate::secrets::unseal(&key, owner, url)
                    .map_err(|_| "the webhook URL cannot be unsealed".to_owned())?;
                let url = HttpUrl::parse(String::from_utf8_lossy(&plain).into_owned())
                    .map_err(|_| "the stored webhook URL is not valid".to_owned())?;
                let link = format!("{}/integrations/{}", self.config().public_url, delivery.integration);
                let first_line = delivery.text.lines().next().unwrap_or_default();
                let body = serde_json::json!({
                    "text": format!("{} <{link}|Open in golive>", slack_escape(first_line)),
                    "blocks": [{
                        "type": "section",
                        "text": {"type": "mrkdwn", "text": format!(
                            "*{}*\n{}\n<{link}|Open the integration in golive>",
                            slack_escape(first_line),
                            slack_escape(delivery.text.lines().nth(1).unwrap_or_default())
                        )}
                    }]
                });
                sinks.poster.post_json(&url, &[], encode(&body)).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Sink::Email { to } => {
                let Some(relay) = &sinks.smtp else {
                    return Err("no SMTP relay is configured on this server (--smtp-url)".into());
                };
                relay.send(to, &delivery.subject, &delivery.text).await.map_err(|e| e.to_string())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Failed,
    GaveUp,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::GaveUp => "gave_up",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_parse_from_the_cli_words_and_refuse_the_rest() {
        assert_eq!(Trigger::parse("blocked"), Ok(Trigger::Blocked {}));
        assert_eq!(Trigger::parse("stalled=3"), Ok(Trigger::Stalled { days: 3 }));
        assert_eq!(Trigger::parse("webhook_silent=24"), Ok(Trigger::WebhookSilent { hours: 24 }));
        assert!(Trigger::parse("stalled").is_err());
        assert!(Trigger::parse("stalled=0").is_err());
        assert!(Trigger::parse("blocked=2").is_err());
        assert!(Trigger::parse("everything").is_err());
    }

    #[test]
    fn a_customer_name_cannot_mention_a_channel_or_forge_a_link_in_slack() {
        assert_eq!(slack_escape("<!channel> & <https://evil|x>"), "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;");
    }
}
