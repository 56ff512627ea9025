//! Outbound event subscriptions: an admin names an endpoint and a filter; golive POSTs each
//! matching event of the log to it, in log order, at least once, signed per Standard Webhooks.
//!
//! The idea is KurrentDB's persistent subscription: the subscription's place in the log (its
//! checkpoint) is kept by golive, beside the log, so a restart resumes where delivery stopped
//! and replicas sharing a PostgreSQL store share it. Everything that changes is one aux record
//! per subscription ([`Progress`]), changed only by compare-and-swap: the checkpoint, the lease
//! (which replica delivers: one at a time, for a bounded time it renews), the retry state,
//! counters, and the pause flag and replay generation an admin sets. A worker that finds the
//! lease or generation changed under it stops; nothing is ever read, modified and written back.
//!
//! Delivery discipline (Standard Webhooks): `webhook-id` is the event's id, so a duplicate after
//! a crash between the endpoint's 2xx and the checkpoint is detectable; `webhook-timestamp` is
//! the attempt's time; `webhook-signature` is `v1,<HMAC-SHA256>` over `id.timestamp.body` with the
//! subscription's secret (shown once, at creation). A failed attempt is retried on an
//! exponential schedule with jitter; after the retry budget the event goes to the dead-letter
//! list and delivery moves on. Events are delivered one at a time: a later event never
//! overtakes an earlier one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::{Engine, EngineError};
use crate::domain::{Actor, HttpUrl, IntegrationId, Rejection, SecretKind};
use crate::outbound::{OutboundLimits, PostFailure, Poster};
use crate::store::{update_aux, AuxChange, EventStore, StoredEvent};

/// How subscriptions deliver (the engine's configuration; tests shorten the times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionSettings {
    /// The first retry's delay; each further retry doubles it, up to `retry_cap_ms`.
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    /// Attempts per event (the first included) before it goes to the dead-letter list.
    pub attempts_max: u32,
    /// How long a replica holds a subscription without renewing.
    pub lease_ms: u64,
    /// How often the supervisor looks for subscriptions to take, and how long an idle worker
    /// waits for a new event when it hears none.
    pub poll_ms: u64,
    /// Events read from the log at a time.
    pub batch: usize,
    pub limits: OutboundLimits,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        SubscriptionSettings {
            retry_base_ms: 5_000,
            retry_cap_ms: 3_600_000,
            attempts_max: 12,
            lease_ms: 30_000,
            poll_ms: 1_000,
            batch: 256,
            limits: OutboundLimits::default(),
        }
    }
}

impl SubscriptionSettings {
    /// The delay before retry `attempt` (1 for the first retry): `base · 2^(attempt-1)`, capped,
    /// with "equal jitter" (a uniformly random point in its upper half), so endpoints coming
    /// back are not hit by every subscription at once and the schedule still grows.
    pub fn retry_delay_ms(&self, attempt: u32, random_unit: f64) -> u64 {
        let exponent = attempt.saturating_sub(1).min(40);
        let full = self.retry_base_ms.saturating_mul(1u64 << exponent).min(self.retry_cap_ms);
        let half = full / 2;
        half + (random_unit.clamp(0.0, 1.0) * (full - half) as f64) as u64
    }
}

/// Which events a subscription wants; an empty set means every one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventFilter {
    #[serde(default)]
    pub event_types: BTreeSet<String>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub integrations: BTreeSet<IntegrationId>,
}

impl EventFilter {
    pub fn matches(&self, event: &StoredEvent) -> bool {
        (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && (self.integrations.is_empty()
                || self.integrations.contains(&IntegrationId::from_uuid(event.integration_id)))
    }
}

/// What an admin gives to add a subscription.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// A name for people (1–100 characters).
    pub name: String,
    /// Where golive POSTs (http or https; the egress policy applies).
    #[schema(value_type = String)]
    pub url: HttpUrl,
    #[serde(default)]
    pub event_types: BTreeSet<String>,
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub integrations: BTreeSet<IntegrationId>,
    /// The first position to deliver; by default the next event appended (the log's head + 1).
    /// 1 delivers the whole log.
    #[serde(default)]
    pub from_position: Option<u64>,
}

/// A subscription as registered (never changes after it is added).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Definition {
    id: Uuid,
    name: String,
    url: HttpUrl,
    filter: EventFilter,
    /// The signing secret, sealed with the subscription's own data key.
    secret: crate::domain::SealedSecret,
    created_at: DateTime<Utc>,
    created_by: Actor,
}

/// Who delivers a subscription, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: DateTime<Utc>,
}

/// Everything about a subscription that changes; one aux record, changed by compare-and-swap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// The last position handled (delivered, dead-lettered or not matching).
    checkpoint: u64,
    paused: bool,
    /// Bumped by a replay: a worker delivering from an older generation stops.
    generation: u64,
    lease: Option<Lease>,
    /// Failed attempts at the event after the checkpoint.
    failed_attempts: u32,
    retry_at: Option<DateTime<Utc>>,
    last_failure: Option<String>,
    delivered: u64,
    retries: u64,
    dead_lettered: u64,
    last_delivered_at: Option<DateTime<Utc>>,
    last_round_trip_ms: Option<u64>,
}

/// An event that used up its retry budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub position: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempts: u32,
    /// The last failure, in golive's words.
    pub failure: String,
    pub at: DateTime<Utc>,
}

/// A subscription as admins see it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = String)]
    pub url: HttpUrl,
    pub filter: EventFilter,
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub created_by: Actor,
    /// `delivering`, `retrying`, `paused` or `idle` (caught up).
    pub status: String,
    pub paused: bool,
    pub checkpoint: u64,
    /// Positions in the log after the checkpoint (matching or not).
    pub lag: u64,
    pub delivered: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub failed_attempts: u32,
    pub retry_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    pub last_delivered_at: Option<DateTime<Utc>>,
    pub last_round_trip_ms: Option<u64>,
    /// The replica delivering it now, if any.
    pub delivered_by: Option<String>,
    /// The most recent dead letters, newest last (at most 100).
    pub dead_letters: Vec<DeadLetter>,
}

/// A new subscription and its signing secret (`whsec_…`), shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AddedSubscription {
    pub subscription: SubscriptionView,
    pub secret: String,
}

const DEFINITION_PREFIX: &str = "outbound/subscription/";
const DEAD_LETTERS_SHOWN: usize = 100;

fn definition_key(id: Uuid) -> String {
    format!("{DEFINITION_PREFIX}{id}")
}
fn progress_key(id: Uuid) -> String {
    format!("outbound/subscription-progress/{id}")
}
fn dead_letter_prefix(id: Uuid) -> String {
    format!("outbound/dead-letter/{id}/")
}

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::Rejected(Rejection::invalid(field, message))
}

fn read_progress(bytes: Option<&[u8]>) -> Progress {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("outbound records serialize")
}

/// The data key of a subscription lives in the keystore under the subscription's id, like an
/// integration's: shredding it makes the secret unreadable.
fn key_owner(id: Uuid) -> IntegrationId {
    IntegrationId::from_uuid(id)
}

impl Engine {
    /// Registers a subscription; answers it with its signing secret, shown this once.
    pub async fn add_subscription(
        &self,
        request: NewSubscription,
        actor: &Actor,
    ) -> Result<AddedSubscription, EngineError> {
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(crate::auth::is_deceptive_char) {
            return Err(invalid("name", "give 1 to 100 printable characters"));
        }
        if request.event_types.len() > 100 {
            return Err(invalid("event_types", "at most 100 event types"));
        }
        if request.integrations.len() > 1000 {
            return Err(invalid("integrations", "at most 1000 integrations"));
        }
        for event_type in &request.event_types {
            if !crate::domain::event_type_names().iter().any(|known| known == event_type) {
                return Err(invalid("event_types", format!("{event_type:?} is not an event type of golive")));
            }
        }
        let head = self.store().head().await?.position;
        let checkpoint = match request.from_position {
            None => head,
            Some(0) => return Err(invalid("from_position", "positions start at 1")),
            Some(first) if first > head + 1 => {
                return Err(invalid("from_position", format!("the log ends at position {head}")))
            }
            Some(first) => first - 1,
        };
        let id = self.ids().next_id();
        let mut secret_bytes = [0u8; 32];
        crate::sources::fill_random(&mut secret_bytes);
        let secret =
            format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret_bytes));
        let key = self.keystore().data_key(key_owner(id)).await?;
        let sealed = crate::secrets::seal(&key, key_owner(id), SecretKind::WebhookSigningKey, secret.as_bytes());
        let definition = Definition {
            id,
            name,
            url: request.url,
            filter: EventFilter { event_types: request.event_types, integrations: request.integrations },
            secret: sealed,
            created_at: self.now(),
            created_by: actor.clone(),
        };
        let progress = Progress { checkpoint, ..Default::default() };
        // The progress first: a definition is only ever seen with its progress beside it.
        self.store().put_aux(&progress_key(id), encode(&progress)).await?;
        if !self.store().put_aux_if_absent(&definition_key(id), encode(&definition)).await? {
            return Err(EngineError::Store(crate::store::StoreError::Storage("subscription id collided".into())));
        }
        Ok(AddedSubscription { subscription: self.subscription(id).await?, secret })
    }

    /// Every subscription, oldest first.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionView>, EngineError> {
        let mut definitions = self.definitions().await?;
        definitions.sort_by_key(|d| (d.created_at, d.id));
        let head = self.store().head().await?.position;
        let mut views = Vec::with_capacity(definitions.len());
        for definition in definitions {
            views.push(self.view(definition, head, false).await?);
        }
        Ok(views)
    }

    /// One subscription with its dead letters.
    pub async fn subscription(&self, id: Uuid) -> Result<SubscriptionView, EngineError> {
        let definition = self.definition(id).await?;
        let head = self.store().head().await?.position;
        self.view(definition, head, true).await
    }

    /// Stops delivery (the checkpoint stays) until resumed.
    pub async fn pause_subscription(&self, id: Uuid) -> Result<SubscriptionView, EngineError> {
        self.change_progress(id, |p| p.paused = true).await
    }

    /// Delivers again from the checkpoint, at once: a retry that was waiting is tried now (its
    /// count of failed attempts stays).
    pub async fn resume_subscription(&self, id: Uuid) -> Result<SubscriptionView, EngineError> {
        self.change_progress(id, |p| {
            p.paused = false;
            p.retry_at = None;
        })
        .await
    }

    /// Delivers again from `from_position` (the first position sent next): its checkpoint
    /// moves there, whichever replica delivers drops what it was doing, and the retry state
    /// starts over. Receivers see repeats with their original `webhook-id`s.
    pub async fn replay_subscription(&self, id: Uuid, from_position: u64) -> Result<SubscriptionView, EngineError> {
        let head = self.store().head().await?.position;
        if from_position == 0 || from_position > head + 1 {
            return Err(invalid("from_position", format!("give a position from 1 to {}", head + 1)));
        }
        self.change_progress(id, |p| {
            p.checkpoint = from_position - 1;
            p.generation += 1;
            p.failed_attempts = 0;
            p.retry_at = None;
        })
        .await
    }

    /// Removes a subscription: its definition, progress and dead letters, and its data key (the
    /// secret becomes unreadable). Whoever delivers it stops at its next look.
    pub async fn remove_subscription(&self, id: Uuid) -> Result<(), EngineError> {
        self.definition(id).await?;
        update_aux(self.store().as_ref(), &definition_key(id), |_| AuxChange::Remove).await?;
        update_aux(self.store().as_ref(), &progress_key(id), |_| AuxChange::Remove).await?;
        for (key, _) in self.store().scan_aux(&dead_letter_prefix(id)).await? {
            update_aux(self.store().as_ref(), &key, |_| AuxChange::Remove).await?;
        }
        self.keystore().shred(key_owner(id)).await?;
        Ok(())
    }

    async fn change_progress(
        &self,
        id: Uuid,
        change: impl Fn(&mut Progress) + Send + Sync,
    ) -> Result<SubscriptionView, EngineError> {
        self.definition(id).await?;
        update_aux(self.store().as_ref(), &progress_key(id), |current| {
            let mut progress = read_progress(current);
            change(&mut progress);
            AuxChange::Put(encode(&progress))
        })
        .await?;
        self.subscription(id).await
    }

    async fn definitions(&self) -> Result<Vec<Definition>, EngineError> {
        let entries = self.store().scan_aux(DEFINITION_PREFIX).await?;
        Ok(entries.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect())
    }

    async fn definition(&self, id: Uuid) -> Result<Definition, EngineError> {
        let bytes = self.store().get_aux(&definition_key(id)).await?.ok_or(EngineError::NoSuchSubscription(id))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Store(crate::store::StoreError::Storage(format!("subscription {id}: {e}"))))
    }

    async fn view(
        &self,
        definition: Definition,
        head: u64,
        with_dead_letters: bool,
    ) -> Result<SubscriptionView, EngineError> {
        let progress = read_progress(self.store().get_aux(&progress_key(definition.id)).await?.as_deref());
        let now = self.now();
        let dead_letters = if with_dead_letters {
            let mut entries = self.store().scan_aux(&dead_letter_prefix(definition.id)).await?;
            let skip = entries.len().saturating_sub(DEAD_LETTERS_SHOWN);
            entries.drain(..skip);
            entries.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect()
        } else {
            Vec::new()
        };
        let lag = head.saturating_sub(progress.checkpoint);
        let status = if progress.paused {
            "paused"
        } else if progress.failed_attempts > 0 {
            "retrying"
        } else if lag > 0 {
            "delivering"
        } else {
            "idle"
        };
        Ok(SubscriptionView {
            id: definition.id,
            name: definition.name,
            url: definition.url,
            filter: definition.filter,
            created_at: definition.created_at,
            created_by: definition.created_by,
            status: status.to_owned(),
            paused: progress.paused,
            checkpoint: progress.checkpoint,
            lag,
            delivered: progress.delivered,
            retries: progress.retries,
            dead_lettered: progress.dead_lettered,
            failed_attempts: progress.failed_attempts,
            retry_at: progress.retry_at,
            last_failure: progress.last_failure,
            last_delivered_at: progress.last_delivered_at,
            last_round_trip_ms: progress.last_round_trip_ms,
            delivered_by: progress.lease.filter(|lease| lease.until > now).map(|lease| lease.holder),
            dead_letters,
        })
    }
}

/// Counters every replica's deliverers add to, for `/metrics`.
#[derive(Debug, Default)]
pub struct OutboundCounters {
    pub deliveries: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
    pub dead_letters: std::sync::atomic::AtomicU64,
    pub notifications_sent: std::sync::atomic::AtomicU64,
    pub notifications_failed: std::sync::atomic::AtomicU64,
}

/// The subscription deliverers of one process: a supervisor that takes free subscriptions and
/// a worker per subscription it holds. Dropping the handle does not stop them; [`stop`] does,
/// releasing the leases so another replica (or the next start) takes over at once.
///
/// [`stop`]: SubscriptionDeliverers::stop
pub struct SubscriptionDeliverers {
    shutdown: watch::Sender<bool>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl SubscriptionDeliverers {
    /// Stops as a crash would: every worker aborted mid-way, leases left to run out. For tests
    /// of what another replica, or the next start, does after a crash.
    pub fn abandon(self) {
        self.supervisor.abort();
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.supervisor.await;
    }
}

/// What a worker needs, shared.
struct Worker {
    engine: Engine,
    holder: String,
    settings: SubscriptionSettings,
    counters: Arc<OutboundCounters>,
    shutdown: watch::Receiver<bool>,
}

/// Why a worker stopped delivering.
enum Stop {
    /// Shut down, paused, replayed or its lease lost: whoever holds it carries on.
    Handover,
}

impl Engine {
    /// Starts delivering subscriptions in this process. `holder` names this replica in leases
    /// (unique per process). On a store only this process can open (sled), leases other
    /// holders left are stale (their process is gone) and are taken at once.
    pub fn start_subscription_deliverers(
        &self,
        holder: String,
        settings: SubscriptionSettings,
    ) -> SubscriptionDeliverers {
        let counters = self.outbound_counters().clone();
        let (shutdown, receiver) = watch::channel(false);
        let engine = self.clone();
        let supervisor = tokio::spawn(async move {
            let worker = Arc::new(Worker { engine, holder, settings, counters, shutdown: receiver });
            worker.supervise().await;
        });
        SubscriptionDeliverers { shutdown, supervisor }
    }
}

impl Worker {
    fn store(&self) -> &Arc<dyn EventStore> {
        self.engine.store()
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    async fn supervise(self: Arc<Self>) {
        // The workers live in a set the supervisor owns: if the supervisor is aborted (a crash
        // in miniature, `abandon`), dropping the set aborts them too, leases left behind.
        let mut workers = tokio::task::JoinSet::new();
        let mut running: HashMap<Uuid, tokio::task::AbortHandle> = HashMap::new();
        let mut shutdown = self.shutdown.clone();
        loop {
            while workers.try_join_next().is_some() {}
            running.retain(|_, task| !task.is_finished());
            match self.engine.definitions().await {
                Ok(definitions) => {
                    for definition in definitions {
                        if running.contains_key(&definition.id) {
                            continue;
                        }
                        match self.try_take(definition.id).await {
                            Ok(Some(generation)) => {
                                let worker = self.clone();
                                let id = definition.id;
                                let handle = workers.spawn(async move { worker.deliver(definition, generation).await });
                                running.insert(id, handle);
                            }
                            Ok(None) => {}
                            Err(error) => {
                                tracing::warn!(%error, subscription = %definition.id, "could not take a subscription")
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not list subscriptions"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(self.settings.poll_ms)) => {}
                _ = shutdown.changed() => {}
            }
            if self.stopping() {
                break;
            }
        }
        while workers.join_next().await.is_some() {}
    }

    /// Takes the lease when the subscription is not paused and nobody else holds it; returns
    /// the generation it delivers.
    async fn try_take(&self, id: Uuid) -> Result<Option<u64>, EngineError> {
        let now = self.engine.now();
        let until = now + chrono::Duration::milliseconds(self.settings.lease_ms as i64);
        let exclusive = !self.store().shared_between_processes();
        let mut generation = None;
        let change = update_aux(self.store().as_ref(), &progress_key(id), |current| {
            let mut progress = read_progress(current);
            let free = match &progress.lease {
                None => true,
                Some(lease) => lease.holder == self.holder || lease.until <= now || exclusive,
            };
            if progress.paused || !free {
                return AuxChange::Keep;
            }
            generation = Some(progress.generation);
            progress.lease = Some(Lease { holder: self.holder.clone(), until });
            AuxChange::Put(encode(&progress))
        })
        .await?;
        Ok(if change == AuxChange::Keep { None } else { generation })
    }

    /// Changes the progress only while this worker holds the lease for `generation` and the
    /// subscription is not paused; renews the lease with every change. Returns the progress
    /// written, or `Stop` when the worker must hand over.
    async fn update(
        &self,
        id: Uuid,
        generation: u64,
        change: impl Fn(&mut Progress) + Send + Sync,
    ) -> Result<Progress, Stop> {
        let now = self.engine.now();
        let until = now + chrono::Duration::milliseconds(self.settings.lease_ms as i64);
        let mut written = None;
        let result = update_aux(self.store().as_ref(), &progress_key(id), |current| {
            let mut progress = read_progress(current);
            let mine = progress.lease.as_ref().is_some_and(|l| l.holder == self.holder && l.until > now);
            if !mine || progress.generation != generation || progress.paused {
                return AuxChange::Keep;
            }
            change(&mut progress);
            progress.lease = Some(Lease { holder: self.holder.clone(), until });
            written = Some(progress.clone());
            AuxChange::Put(encode(&progress))
        })
        .await;
        match (result, written) {
            (Ok(AuxChange::Put(_)), Some(progress)) => Ok(progress),
            (Err(error), _) => {
                tracing::warn!(%error, subscription = %id, "could not record a subscription's progress; handing it over");
                Err(Stop::Handover)
            }
            _ => Err(Stop::Handover),
        }
    }

    /// Whether an admin paused, replayed or removed the subscription since this worker took it
    /// (a read only: an idle worker looks each poll and hands over at once).
    async fn handed_over(&self, id: Uuid, generation: u64) -> bool {
        match self.store().get_aux(&progress_key(id)).await {
            Ok(Some(bytes)) => {
                let progress = read_progress(Some(&bytes));
                progress.paused || progress.generation != generation
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Releases the lease if this worker still holds it.
    async fn release(&self, id: Uuid) {
        let _ = update_aux(self.store().as_ref(), &progress_key(id), |current| {
            let mut progress = read_progress(current);
            if progress.lease.as_ref().is_some_and(|l| l.holder == self.holder) {
                progress.lease = None;
                AuxChange::Put(encode(&progress))
            } else {
                AuxChange::Keep
            }
        })
        .await;
    }

    async fn deliver(self: Arc<Self>, definition: Definition, generation: u64) {
        let id = definition.id;
        let secret = match self.unseal_secret(&definition).await {
            Ok(secret) => secret,
            Err(error) => {
                tracing::warn!(%error, subscription = %id, "the subscription's secret cannot be read; not delivering");
                self.release(id).await;
                return;
            }
        };
        let poster = Poster::new(
            self.engine.config().probe_egress.clone(),
            self.settings.limits,
            concat!("golive-subscriptions/", env!("CARGO_PKG_VERSION")),
        );
        let _ = self.run(&definition, generation, &secret, &poster).await;
        self.release(id).await;
    }

    async fn unseal_secret(&self, definition: &Definition) -> Result<standardwebhooks::Webhook, EngineError> {
        let key = self
            .engine
            .keystore()
            .existing_data_key(key_owner(definition.id))
            .await?
            .ok_or(EngineError::NoSuchSubscription(definition.id))?;
        let plain = crate::secrets::unseal(&key, key_owner(definition.id), &definition.secret)?;
        let text = String::from_utf8(plain).map_err(|_| EngineError::NoSuchSubscription(definition.id))?;
        standardwebhooks::Webhook::new(&text).map_err(|_| EngineError::NoSuchSubscription(definition.id))
    }

    async fn run(
        &self,
        definition: &Definition,
        generation: u64,
        secret: &standardwebhooks::Webhook,
        poster: &Poster,
    ) -> Result<(), Stop> {
        let id = definition.id;
        let mut committed = self.store().committed();
        let mut shutdown = self.shutdown.clone();
        // Renewing the lease with nothing to deliver: at most every third of its length.
        let renew_every = Duration::from_millis((self.settings.lease_ms / 3).max(1));
        let mut progress = self.update(id, generation, |_| {}).await?;
        let mut renewed_at = std::time::Instant::now();
        loop {
            if self.stopping() {
                return Err(Stop::Handover);
            }
            let batch = match self.store().read_all(progress.checkpoint, self.settings.batch).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, subscription = %id, "could not read the log");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = committed.recv() => {}
                    _ = tokio::time::sleep(Duration::from_millis(self.settings.poll_ms)) => {}
                    _ = shutdown.changed() => {}
                }
                if renewed_at.elapsed() >= renew_every {
                    progress = self.update(id, generation, |_| {}).await?;
                    renewed_at = std::time::Instant::now();
                } else if self.handed_over(id, generation).await {
                    return Err(Stop::Handover);
                }
                continue;
            }
            // Before sending anything read after a wait: a pause or a replay may have come
            // meanwhile (one write per batch, not per event).
            progress = self.update(id, generation, |_| {}).await?;
            renewed_at = std::time::Instant::now();
            // Events the filter passes over move the checkpoint in one write per run of them.
            let mut skipped_to: Option<u64> = None;
            for event in batch {
                if !definition.filter.matches(&event) {
                    skipped_to = Some(event.position);
                    continue;
                }
                if let Some(position) = skipped_to.take() {
                    progress = self.update(id, generation, |p| p.checkpoint = p.checkpoint.max(position)).await?;
                }
                progress = self.deliver_one(definition, generation, secret, poster, &event, progress).await?;
                renewed_at = std::time::Instant::now();
            }
            if let Some(position) = skipped_to {
                progress = self.update(id, generation, |p| p.checkpoint = p.checkpoint.max(position)).await?;
                renewed_at = std::time::Instant::now();
            }
        }
    }

    /// Delivers one event, retrying until it is taken or its budget is spent; returns the
    /// progress with the checkpoint on it.
    async fn deliver_one(
        &self,
        definition: &Definition,
        generation: u64,
        secret: &standardwebhooks::Webhook,
        poster: &Poster,
        event: &StoredEvent,
        mut progress: Progress,
    ) -> Result<Progress, Stop> {
        use std::sync::atomic::Ordering::Relaxed;
        let id = definition.id;
        let body = serde_json::to_vec(event).expect("envelopes serialize");
        let webhook_id = event.id.to_string();
        loop {
            // A retry waits for its time; pausing, a replay or a shutdown cut the wait short.
            if let Some(retry_at) = progress.retry_at {
                let wait = (retry_at - self.engine.now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    self.wait_renewing(id, generation, wait).await?;
                }
            }
            // Never send on a lease that could run out before the answer: another replica may
            // take it meanwhile. Renewed only then, so a steady stream costs one durable write
            // per event (the checkpoint's), not two.
            let now = self.engine.now();
            let margin = chrono::Duration::milliseconds((2 * self.settings.limits.request_timeout_ms) as i64);
            if progress.lease.as_ref().is_none_or(|lease| lease.until - now <= margin) {
                progress = self.update(id, generation, |_| {}).await?;
            }
            let timestamp = now.timestamp();
            let signature = secret.sign(&webhook_id, timestamp, &body).map_err(|_| Stop::Handover)?;
            let headers = [
                ("webhook-id", webhook_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ];
            let outcome = poster.post_json(&definition.url, &headers, body.clone()).await;
            match outcome {
                Ok(posted) => {
                    self.counters.deliveries.fetch_add(1, Relaxed);
                    let position = event.position;
                    let delivered_at = self.engine.now();
                    return self
                        .update(id, generation, |p| {
                            p.checkpoint = p.checkpoint.max(position);
                            p.failed_attempts = 0;
                            p.retry_at = None;
                            p.last_failure = None;
                            p.delivered += 1;
                            p.last_delivered_at = Some(delivered_at);
                            p.last_round_trip_ms = Some(posted.round_trip_ms);
                        })
                        .await;
                }
                Err(failure) => {
                    let attempts = progress.failed_attempts + 1;
                    let reason = describe(&failure);
                    if attempts >= self.settings.attempts_max {
                        self.counters.dead_letters.fetch_add(1, Relaxed);
                        let letter = DeadLetter {
                            position: event.position,
                            event_id: event.id,
                            event_type: event.event_type.clone(),
                            attempts,
                            failure: reason.clone(),
                            at: now,
                        };
                        let key = format!("{}{:020}", dead_letter_prefix(id), event.position);
                        if let Err(error) = self.store().put_aux(&key, encode(&letter)).await {
                            tracing::warn!(%error, subscription = %id, "could not record a dead letter");
                            return Err(Stop::Handover);
                        }
                        tracing::warn!(subscription = %id, position = event.position, attempts, failure = %reason, "dead-lettered");
                        let position = event.position;
                        return self
                            .update(id, generation, |p| {
                                p.checkpoint = p.checkpoint.max(position);
                                p.failed_attempts = 0;
                                p.retry_at = None;
                                p.last_failure = Some(reason.clone());
                                p.dead_lettered += 1;
                            })
                            .await;
                    }
                    self.counters.retries.fetch_add(1, Relaxed);
                    let mut unit = [0u8; 8];
                    crate::sources::fill_random(&mut unit);
                    let random_unit = (u64::from_le_bytes(unit) >> 11) as f64 / (1u64 << 53) as f64;
                    let delay_ms = self.settings.retry_delay_ms(attempts, random_unit);
                    let retry_at = now + chrono::Duration::milliseconds(delay_ms as i64);
                    progress = self
                        .update(id, generation, |p| {
                            p.failed_attempts = attempts;
                            p.retry_at = Some(retry_at);
                            p.last_failure = Some(reason.clone());
                            p.retries += 1;
                        })
                        .await?;
                }
            }
        }
    }

    /// Sleeps `wait`, renewing the lease meanwhile and stopping early when told to.
    async fn wait_renewing(&self, id: Uuid, generation: u64, wait: Duration) -> Result<(), Stop> {
        let mut shutdown = self.shutdown.clone();
        let deadline = tokio::time::Instant::now() + wait;
        let step = Duration::from_millis((self.settings.lease_ms / 3).clamp(1, 1_000));
        while tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + step)) => {}
                _ = shutdown.changed() => {}
            }
            if self.stopping() {
                return Err(Stop::Handover);
            }
            self.update(id, generation, |_| {}).await?;
        }
        Ok(())
    }
}

fn describe(failure: &PostFailure) -> String {
    failure.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_schedule_doubles_with_jitter_in_its_upper_half_and_stops_at_the_cap() {
        let settings = SubscriptionSettings { retry_base_ms: 1_000, retry_cap_ms: 10_000, ..Default::default() };
        assert_eq!(settings.retry_delay_ms(1, 1.0), 1_000);
        assert_eq!(settings.retry_delay_ms(1, 0.0), 500);
        assert_eq!(settings.retry_delay_ms(2, 1.0), 2_000);
        assert_eq!(settings.retry_delay_ms(3, 0.0), 2_000);
        assert_eq!(settings.retry_delay_ms(4, 1.0), 8_000);
        assert_eq!(settings.retry_delay_ms(5, 1.0), 10_000);
        assert_eq!(settings.retry_delay_ms(60, 0.5), 7_500);
        for attempt in 1..20 {
            let low = settings.retry_delay_ms(attempt, 0.0);
            let high = settings.retry_delay_ms(attempt, 1.0);
            assert!(low <= high && high <= 10_000 && low * 2 >= high - 1, "attempt {attempt}: {low}..{high}");
        }
    }
}
