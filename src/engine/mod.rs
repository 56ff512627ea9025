//! The engine: load → decide → append, and everything read from the log.
//!
//! [`Engine`] is golive's embedding API. It owns the one write path (every append goes through
//! [`Engine::execute`], [`Engine::open_integration`] or the secret audits), retries a lost race
//! when the caller pinned no version, caches states and snapshots long streams, keeps the read
//! model behind lists, the board and the calendar, and answers history, as-of and audit
//! queries. It knows neither HTTP nor the terminal.
//!
//! This file holds the public types and what an engine is made of; the work is in modules
//! split by meaning, each given a narrow view of those parts: the write path
//! (`write_path.rs`), the state cache (`state_cache.rs`), the read model and its projector
//! (`projections.rs`, `projector.rs`, `read_model.rs`, `insights.rs`), monitoring
//! (`monitoring.rs`), reads of the log (`queries.rs`), secret operations, intake, webhooks,
//! playbooks, transfer and the choice of backend.

mod backends;
mod checks;
mod clock;
pub mod codec;
mod insights;
mod intake;
mod monitoring;
mod notifications;
mod playbooks;
mod projections;
mod projector;
mod queries;
mod read_model;
mod secret_ops;
mod state_cache;
mod subscriptions;
mod transfer;
mod webhook;
mod write_path;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use backends::{redact_url, StoreLocation};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{decode, encode, CodecError, Upcaster, UPCASTERS};
pub use insights::{quantile_hours, FlowDay, Insights, InsightsBuilder, StageTime, StallCount, WeekCount};
pub use intake::{parse_intake, IntakeForm, IntakeInvitation, IssuedIntakeLink};
pub use monitoring::TickReport;
pub use playbooks::{parse_playbook, PlaybookError, RegisteredPlaybook, Registration};
pub use projections::ListPage;
pub use projector::ProjectorStatus;
pub use read_model::{
    board, calendar, BoardColumn, CalendarEntry, IntegrationSummary, ListFilter, ReadModel, READ_MODEL_FORMAT,
};
pub use transfer::{ImportError, ImportReport, MigrationReport};
pub use webhook::{AuthenticatedDelivery, DeliveryError, Received};

use crate::domain::{self, Actor, HttpUrl, IdSource, IntegrationId, Origin, Playbook, Rejection};
use crate::error_kind::ErrorKind;
use crate::secrets::{self, FileKeystore, Keystore, MasterKey, MasterKeySource, SecretsError, ShownOnce};
use crate::sources::RandomIds;
use crate::store::{EventStore, SledStore, SledStoreOptions, StoreError, StoredEvent};
pub use checks::{CheckOutcome, CheckProgress, CheckRequest, CheckSettings, CheckStarted};
pub use notifications::{
    JournalEntry, NewRule, NewSink, NotificationReport, NotificationSettings, NotificationSinks, RuleView,
    Trigger as NotificationTrigger,
};
use projections::Projection;
use state_cache::StateCache;
pub use subscriptions::{
    AddedSubscription, DeadLetter, EventFilter, NewSubscription, OutboundCounters, SubscriptionDeliverers,
    SubscriptionSettings, SubscriptionView,
};
use write_path::{Turns, WritePath};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where golive is reached from outside: webhook URLs derive from it.
    pub public_url: HttpUrl,
    /// The playbook of integrations opened without one.
    pub default_playbook: Playbook,
    /// Write a snapshot each time a stream crosses a multiple of this many events.
    pub snapshot_every: u64,
    /// Retries of a lost race when the caller pinned no version.
    pub max_retries: usize,
    /// States kept in memory.
    pub cache_capacity: usize,
    /// Save the read model each time it has folded this many more events.
    pub read_model_save_every: u64,
    /// Where the probe may connect (`--probe-allow`) and how it resolves names.
    pub probe_egress: crate::gitlab::egress::EgressPolicy,
    /// `/readyz` answers 503 when the read model is further behind the log than this many
    /// positions (or its projector is down).
    pub projector_max_lag: u64,
    /// Whether `public_url` is only a fallback: when true, a public URL stored with the store
    /// (`golive init --public-url`, [`Engine::store_public_url`]) replaces it at start. The CLI
    /// sets it when neither `--public-url` nor `GOLIVE_PUBLIC_URL` gave one.
    pub public_url_is_fallback: bool,
    /// How runs of checks through GitLab's API pace, wait and bound their searches.
    pub checks: CheckSettings,
}

impl EngineConfig {
    /// The defaults for `public_url`, with the redirect URI `{public_url}/oauth/gitlab/callback`
    /// unless one is given.
    pub fn new(public_url: HttpUrl, redirect_uri: Option<HttpUrl>) -> Self {
        let redirect = redirect_uri.unwrap_or_else(|| Self::derived_redirect_uri(&public_url));
        EngineConfig {
            public_url,
            default_playbook: Playbook::guide_default(redirect),
            snapshot_every: 1_000,
            max_retries: 16,
            cache_capacity: 10_000,
            read_model_save_every: 10_000,
            probe_egress: Default::default(),
            projector_max_lag: 10_000,
            public_url_is_fallback: false,
            checks: CheckSettings::default(),
        }
    }

    /// The redirect URI golive derives from a public URL when none is configured.
    pub fn derived_redirect_uri(public_url: &HttpUrl) -> HttpUrl {
        Playbook::derived_redirect_uri(public_url)
    }

    /// Replaces the public URL, and the default playbook's redirect URI with it when that was
    /// derived from the old one (a redirect URI configured on its own stays).
    pub fn replace_public_url(&mut self, public_url: HttpUrl) {
        if self.default_playbook.redirect_uri == Self::derived_redirect_uri(&self.public_url) {
            self.default_playbook.redirect_uri = Self::derived_redirect_uri(&public_url);
        }
        self.public_url = public_url;
    }
}

/// The aux key of the public URL stored with the store (`golive init --public-url`): in the
/// data directory for sled, in the database for PostgreSQL replicas, so every process on one
/// store gives customers the same URLs.
pub const STORED_PUBLIC_URL_KEY: &str = "settings/public_url";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no integration {0}")]
    NotFound(IntegrationId),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("integration {integration} is at version {actual}, not {expected}")]
    VersionMismatch { integration: IntegrationId, expected: u64, actual: u64 },
    #[error("integration {integration} kept changing underneath; gave up after {attempts} attempts")]
    Conflict { integration: IntegrationId, attempts: usize },
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("integration {0} has no such secret")]
    NoSuchSecret(IntegrationId),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no subscription {0}")]
    NoSuchSubscription(Uuid),
    #[error("no notification rule {0}")]
    NoSuchRule(Uuid),
}

impl EngineError {
    /// This error's one kind: the HTTP status, problem type and exit code follow from it
    /// ([`crate::error_kind::ERROR_TABLE`]).
    pub fn kind(&self) -> ErrorKind {
        use crate::domain::IntakeRefusal;
        match self {
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Rejected(rejection) => match rejection {
                Rejection::InvalidField { .. } => ErrorKind::InvalidField,
                Rejection::UnknownType(_) => ErrorKind::UnknownCommandType,
                Rejection::Malformed(_) => ErrorKind::MalformedCommand,
                Rejection::GuardRejected { .. } => ErrorKind::GuardRejected,
                Rejection::Cancelled => ErrorKind::IntegrationCancelled,
                Rejection::Intake(IntakeRefusal::Unknown) => ErrorKind::IntakeLinkUnknown,
                Rejection::Intake(IntakeRefusal::Expired) => ErrorKind::IntakeLinkExpired,
                Rejection::Intake(IntakeRefusal::AlreadyUsed) => ErrorKind::IntakeLinkUsed,
                Rejection::Intake(IntakeRefusal::InstanceChanged) => ErrorKind::IntakeInstanceChanged,
            },
            EngineError::VersionMismatch { .. } => ErrorKind::PreconditionFailed,
            EngineError::Conflict { .. } => ErrorKind::Conflict,
            EngineError::IdempotencyKeyReused => ErrorKind::IdempotencyKeyReused,
            EngineError::NoSuchSecret(_) | EngineError::NoSuchSubscription(_) | EngineError::NoSuchRule(_) => {
                ErrorKind::NotFound
            }
            EngineError::Secrets(SecretsError::Shredded(_)) => ErrorKind::Shredded,
            EngineError::Secrets(_) | EngineError::Codec(_) => ErrorKind::Internal,
            EngineError::Store(error) => match error {
                StoreError::WrongExpectedVersion { .. } => ErrorKind::Conflict,
                StoreError::IdempotencyKeyReused { .. } => ErrorKind::IdempotencyKeyReused,
                StoreError::Locked { .. } => ErrorKind::StoreLocked,
                StoreError::Storage(_) | StoreError::Poisoned(_) | StoreError::Closed => ErrorKind::StorageUnavailable,
                StoreError::EmptyAppend | StoreError::Corrupt { .. } => ErrorKind::Internal,
            },
        }
    }
}

/// One command to execute.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    pub integration: IntegrationId,
    pub body: Value,
    pub actor: Actor,
    pub origin: Origin,
    /// `If-Match`: refuse unless the integration is at exactly this version.
    pub expected_version: Option<u64>,
    pub idempotency_key: Option<String>,
    /// Record the events at this time instead of now. For loading fixtures and replaying
    /// journeys only: no client-facing surface sets it.
    pub recorded_at: Option<DateTime<Utc>>,
    /// What identifies the request for idempotency, when not the body itself (the webhook
    /// receiver digests a delivery's event and body, not its received-at).
    pub request_digest: Option<String>,
}

impl ExecuteRequest {
    pub fn new(integration: IntegrationId, body: Value, actor: Actor) -> Self {
        Self {
            integration,
            body,
            actor,
            origin: Origin::Public,
            expected_version: None,
            idempotency_key: None,
            recorded_at: None,
            request_digest: None,
        }
    }
    pub fn internal(mut self) -> Self {
        self.origin = Origin::Internal;
        self
    }
}

/// What an accepted command produced.
#[derive(Debug, Clone)]
pub struct Executed {
    pub state: Arc<domain::Integration>,
    pub events: Vec<StoredEvent>,
    /// Credentials generated by this command, to show once (empty on a replay).
    pub shown: ShownOnce,
    /// True when this answers a repeated Idempotency-Key: nothing was written.
    pub replayed: bool,
}

impl Executed {
    /// The domain events this call wrote (or, on a replay, first wrote), decoded from their
    /// envelopes: what an embedder matches on instead of JSON.
    pub fn domain_events(&self) -> Result<Vec<domain::Event>, codec::CodecError> {
        self.events.iter().map(codec::decode).collect()
    }
}

/// A moment of an integration's past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Version(u64),
    Time(DateTime<Utc>),
}

/// Filters of the cross-integration audit query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub integration: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events after this position (the cursor).
    pub after: u64,
    pub limit: usize,
}

/// A page of audit results with the cursor for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `after` to continue; `None` when the log has been read to the end.
    pub next_after: Option<u64>,
}

/// Options of [`Engine::open_dir`].
#[derive(Clone, Default)]
pub struct OpenOptions {
    pub master_key_file: Option<std::path::PathBuf>,
    pub store: SledStoreOptions,
    /// The clock (default: the system clock).
    pub clock: Option<Arc<dyn Clock>>,
    /// Where event and link ids come from (default: random v4 UUIDs).
    pub ids: Option<Arc<dyn IdSource>>,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What an engine is made of. Only this file reads it: the modules get narrow views.
struct Inner {
    store: Arc<dyn EventStore>,
    keystore: Arc<dyn Keystore>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    states: StateCache,
    projection: Arc<Projection>,
    turns: Turns,
    /// What this process's subscription deliverers and notification passes did.
    outbound: Arc<OutboundCounters>,
}

impl Engine {
    /// Opens the sled store and the file keystore in `data_dir`. Returns warnings to show
    /// (a generated default master key).
    pub async fn open_dir(
        data_dir: &Path,
        config: EngineConfig,
        options: OpenOptions,
    ) -> Result<(Engine, Vec<String>), EngineError> {
        let store = SledStore::open(data_dir, options.store)?;
        let (master, source) = MasterKey::load(data_dir, options.master_key_file.as_deref())?;
        let mut warnings = Vec::new();
        if let MasterKeySource::GeneratedDefault(path) | MasterKeySource::ExistingDefault(path) = &source {
            warnings.push(format!(
                "the master key is a file in the data directory ({}): fine for a trial, but anyone with a copy of the directory can unseal its secrets; set {} or --master-key-file in production",
                path.display(),
                secrets::MASTER_KEY_ENV
            ));
        }
        let keystore = Arc::new(FileKeystore::open(data_dir, master)?);
        // Everything in the data directory is its owner's only, whatever was there before.
        crate::store::owner_only::restrict_tree(data_dir)
            .map_err(|e| StoreError::Storage(format!("making {} owner-only: {e}", data_dir.display())))?;
        let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let ids = options.ids.unwrap_or_else(|| Arc::new(RandomIds));
        let engine = Engine::start_with_ids(store, keystore, config, clock, ids).await?;
        Ok((engine, warnings))
    }

    /// Starts an engine on any store and keystore: loads the saved read model, catches it up,
    /// and starts following the log.
    pub async fn start(
        store: Arc<dyn EventStore>,
        keystore: Arc<dyn Keystore>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        Engine::start_with_ids(store, keystore, config, clock, Arc::new(RandomIds)).await
    }

    /// [`Engine::start`] with the ids of events and links drawn from `ids`.
    pub async fn start_with_ids(
        store: Arc<dyn EventStore>,
        keystore: Arc<dyn Keystore>,
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Result<Engine, EngineError> {
        let mut config = config;
        if config.public_url_is_fallback {
            if let Some(stored) = stored_public_url(store.as_ref()).await? {
                config.replace_public_url(stored);
            }
        }
        let projection = Projection::open(store.clone(), config.read_model_save_every).await?;
        monitoring::split_legacy_signals(store.as_ref()).await?;
        let states = StateCache::new(store.clone(), config.cache_capacity, config.snapshot_every);
        let inner = Arc::new(Inner {
            store,
            keystore,
            config,
            clock,
            ids,
            states,
            projection: Arc::new(projection),
            turns: Turns::new(),
            outbound: Arc::default(),
        });
        inner.projection.start();
        Ok(Engine { inner })
    }

    /// Stores the public URL with the store, for every process on it that is given none
    /// (see [`EngineConfig::public_url_is_fallback`]). Integrations already open keep theirs.
    pub async fn store_public_url(&self, public_url: &HttpUrl) -> Result<(), EngineError> {
        self.inner.store.put_aux(STORED_PUBLIC_URL_KEY, public_url.as_str().as_bytes().to_vec()).await?;
        Ok(())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The engine's clock, for what the edges stamp (tokens, sessions).
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Saves the read model, stops following the log and closes the store (flushing it).
    pub async fn close(&self) -> Result<(), EngineError> {
        self.inner.projection.stop().await?;
        self.inner.store.close().await?;
        Ok(())
    }

    /// The keystore, for the modules that unseal or shred.
    /// What this process's subscription deliverers and notification passes did (for
    /// `/metrics`).
    pub fn outbound_counters(&self) -> &Arc<OutboundCounters> {
        &self.inner.outbound
    }

    fn keystore(&self) -> &dyn Keystore {
        self.inner.keystore.as_ref()
    }

    /// Where event and link ids come from.
    fn ids(&self) -> &dyn IdSource {
        self.inner.ids.as_ref()
    }

    /// The cached states and snapshots.
    fn states(&self) -> &StateCache {
        &self.inner.states
    }

    /// The read model and its projector.
    fn projection(&self) -> &Projection {
        &self.inner.projection
    }

    /// The write path, borrowing what it needs.
    fn writes(&self) -> WritePath<'_> {
        WritePath {
            store: self.inner.store.as_ref(),
            keystore: self.inner.keystore.as_ref(),
            clock: self.inner.clock.as_ref(),
            ids: self.inner.ids.as_ref(),
            states: &self.inner.states,
            turns: &self.inner.turns,
            config: &self.inner.config,
        }
    }
}

/// The public URL stored with the store, if any. A stored value that no longer parses is an
/// error rather than silently ignored: customers would be given other URLs.
pub async fn stored_public_url(store: &dyn EventStore) -> Result<Option<HttpUrl>, EngineError> {
    let Some(bytes) = store.get_aux(STORED_PUBLIC_URL_KEY).await? else { return Ok(None) };
    let text =
        String::from_utf8(bytes).map_err(|_| StoreError::Storage(format!("{STORED_PUBLIC_URL_KEY} is not UTF-8")))?;
    HttpUrl::parse(text)
        .map(Some)
        .map_err(|e| EngineError::Store(StoreError::Storage(format!("{STORED_PUBLIC_URL_KEY}: {e}"))))
}
