//! The engine: load → decide → append, and everything read from the log.
//!
//! [`Engine`] is golive's embedding API. It owns the one write path (every append goes through
//! [`Engine::execute`], [`Engine::open_integration`] or the secret audits), retries a lost race
//! when the caller pinned no version, caches states and snapshots long streams, keeps the read
//! model behind lists, the board and the calendar, and answers history, as-of and audit
//! queries. It knows neither HTTP nor the terminal.

mod backends;
mod clock;
pub mod codec;
mod insights;
mod intake;
mod playbooks;
mod projector;
mod queries;
mod read_model;
mod secret_ops;
mod transfer;
mod webhook;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use backends::{redact_url, StoreLocation};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{decode, encode, CodecError, Upcaster, UPCASTERS};
pub use insights::{quantile_hours, FlowDay, Insights, InsightsBuilder, StageTime, StallCount, WeekCount};
pub use intake::{parse_intake, IntakeForm, IntakeInvitation, IssuedIntakeLink};
pub use playbooks::{parse_playbook, PlaybookError, RegisteredPlaybook, Registration};
pub use projector::ProjectorStatus;
pub use queries::ListPage;
pub use read_model::{
    board, calendar, BoardColumn, CalendarEntry, IntegrationSummary, ListFilter, ReadModel, READ_MODEL_FORMAT,
};
pub use secret_ops::TickReport;
pub use transfer::{ImportError, ImportReport, MigrationReport};
pub use webhook::{AuthenticatedDelivery, DeliveryError};

use crate::domain::{
    self, Actor, Command, CommandRequest, Context, DeliverySignals, Diagnosis, Event, HttpUrl, IdSource, IntegrationId,
    IssuedWebhookCredentials, Origin, PlaintextSecret, Playbook, Rejection, SealedSecret, Sealer, SecretKind,
};
use crate::error_kind::ErrorKind;
use crate::secrets::{
    self, FileKeystore, IntegrationSealer, Keystore, MasterKey, MasterKeySource, SecretsError, ShownOnce,
};
use crate::sources::RandomIds;
use crate::store::{
    AppendOutcome, AppendRequest, EventStore, ExpectedVersion, IdempotencyRecord, IdempotencyWrite, SledStore,
    SledStoreOptions, StoreError, StoredEvent, Subscription, VerifyReport,
};
use read_model::SavedReadModel;

/// Bumped when the snapshot form changes; older snapshots are ignored.
const SNAPSHOT_FORMAT: u32 = 2;

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
}

impl EngineConfig {
    /// The defaults for `public_url`, with the redirect URI `{public_url}/oauth/gitlab/callback`
    /// unless one is given.
    pub fn new(public_url: HttpUrl, redirect_uri: Option<HttpUrl>) -> Self {
        let redirect = redirect_uri.unwrap_or_else(|| {
            HttpUrl::parse(format!("{}/oauth/gitlab/callback", public_url.as_str())).expect("a path on a valid URL")
        });
        EngineConfig {
            public_url,
            default_playbook: Playbook::guide_default(redirect),
            snapshot_every: 1_000,
            max_retries: 16,
            cache_capacity: 10_000,
            read_model_save_every: 10_000,
            probe_egress: Default::default(),
            projector_max_lag: 10_000,
        }
    }
}

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
            EngineError::NoSuchSecret(_) => ErrorKind::NotFound,
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

struct Inner {
    store: Arc<dyn EventStore>,
    keystore: Arc<dyn Keystore>,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    cache: Mutex<HashMap<IntegrationId, Arc<domain::Integration>>>,
    read_model: RwLock<ReadModel>,
    checkpoint: watch::Sender<u64>,
    projector: Mutex<Option<JoinHandle<()>>>,
    projector_health: projector::ProjectorHealth,
    /// Commands on one integration run one at a time within this process (striped by id), so
    /// concurrent callers queue instead of racing; the expected-version check still guards
    /// against other processes sharing the store.
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// Lock stripes for per-integration serialisation.
const STRIPES: usize = 1024;

/// A sealer for commands that carry no secret: preparing them never calls it.
struct NoSecrets;

impl Sealer for NoSecrets {
    fn seal(&mut self, _: SecretKind, _: &PlaintextSecret) -> SealedSecret {
        unreachable!("needs_sealer() said this command carries no secret")
    }
    fn issue_webhook_credentials(&mut self, _: bool) -> IssuedWebhookCredentials {
        unreachable!("needs_sealer() said this command issues no credentials")
    }
}

fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn canonical(value: &Value) -> String {
    let mut out = String::new();
    crate::store::canonical_json(value, &mut out);
    out
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
        let mut model = match store.get_aux("read_model").await? {
            Some(bytes) => match serde_json::from_slice::<SavedReadModel>(&bytes) {
                Ok(saved) if saved.format == READ_MODEL_FORMAT => saved.model,
                _ => ReadModel::default(),
            },
            None => ReadModel::default(),
        };
        loop {
            let batch = store.read_all(model.checkpoint, 4096).await?;
            if batch.is_empty() {
                break;
            }
            for event in &batch {
                model.apply(event)?;
            }
        }
        secret_ops::split_legacy_signals(store.as_ref()).await?;
        let (checkpoint, _) = watch::channel(model.checkpoint);
        let inner = Arc::new(Inner {
            store,
            keystore,
            config,
            clock,
            ids,
            cache: Mutex::new(HashMap::new()),
            read_model: RwLock::new(model),
            checkpoint,
            projector: Mutex::new(None),
            projector_health: Default::default(),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        });
        let engine = Engine { inner };
        engine.spawn_projector();
        Ok(engine)
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

    /// Opens a new integration (`POST /api/v1/integrations`).
    pub async fn open_integration(
        &self,
        body: Value,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Executed, EngineError> {
        self.open_integration_at(body, actor, idempotency_key, None).await
    }

    /// [`Engine::open_integration`] recorded at `recorded_at` (fixtures only).
    pub async fn open_integration_at(
        &self,
        body: Value,
        actor: &Actor,
        idempotency_key: Option<&str>,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<Executed, EngineError> {
        let (request, playbook_reference) = domain::parse_open_request_with_reference(body.clone())?;
        let key = idempotency_key.map(|k| format!("open/{actor}/{k}"));
        let request_digest = digest(&["open", actor.as_str(), &canonical(&body)]);
        if let Some(key) = &key {
            if let Some(record) = self.inner.store.idempotency_record(key).await? {
                return self.replay(record, &request_digest).await;
            }
        }
        let now = recorded_at.unwrap_or_else(|| self.now());
        let ctx = Context { now, actor: actor.clone(), ids: self.inner.ids.as_ref() };
        // A referenced playbook is resolved here, once, and recorded whole by `open`.
        let playbook = match &playbook_reference {
            Some(reference) => self.resolve_playbook(reference).await?,
            None => self.inner.config.default_playbook.clone(),
        };
        let events = domain::open(request, playbook, &ctx)?;
        let Event::IntegrationOpened { integration_id, .. } = &events[0] else {
            unreachable!("open yields integration_opened first")
        };
        let id = *integration_id;
        let idempotency =
            key.map(|key| IdempotencyWrite { key, request_digest: request_digest.clone(), response: json!({}) });
        self.append(id, None, events, &ctx, idempotency, ShownOnce::default(), &request_digest).await
    }

    /// Executes one command: load, decide, append with the expected version; a lost race is
    /// retried (bounded) unless the caller pinned a version.
    pub async fn execute(&self, request: ExecuteRequest) -> Result<Executed, EngineError> {
        let parsed = domain::parse_request(request.body.clone(), request.origin)?;
        let id = request.integration;
        let key = request.idempotency_key.as_ref().map(|k| format!("cmd/{id}/{k}"));
        let pinned = request.expected_version.map(|v| v.to_string()).unwrap_or_default();
        let request_digest = match &request.request_digest {
            Some(given) => given.clone(),
            None => digest(&["command", &id.to_string(), request.actor.as_str(), &pinned, &canonical(&request.body)]),
        };
        if let Some(key) = &key {
            if let Some(record) = self.inner.store.idempotency_record(key).await? {
                return self.replay(record, &request_digest).await;
            }
        }
        self.execute_parsed(id, parsed, &request, key, request_digest).await
    }

    /// Executes a typed command: the same write path as [`Engine::execute`] without JSON, so an
    /// embedder's command is checked when it compiles (its fields are the domain's parsed
    /// newtypes). It records under `actor`, retries a lost race, and takes no Idempotency-Key
    /// (a key's digest is of the request's JSON; an embedder retries with its own knowledge).
    ///
    /// ```
    /// # use golive::domain::{Actor, CommandRequest, HttpUrl, LongText};
    /// # use golive::engine::{Engine, EngineConfig, OpenOptions};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let config = EngineConfig::new(HttpUrl::parse("https://golive.example.com").unwrap(), None);
    /// # let (engine, _) = Engine::open_dir(dir.path(), config, OpenOptions::default()).await.unwrap();
    /// let rep = Actor::parse("dana.reyes").unwrap();
    /// # let body = serde_json::json!({"customer": "Hooli", "gitlab_url": "https://gitlab.hooli.example"});
    /// # let id = engine.open_integration(body, &rep, None).await.unwrap().state.id;
    /// let note = CommandRequest::AddNote { text: LongText::parse("kick-off call booked").unwrap() };
    /// let executed = engine.execute_typed(id, note, &rep).await.unwrap();
    /// assert_eq!(executed.events.last().unwrap().event_type, "note_added");
    /// # engine.close().await.unwrap();
    /// # });
    /// ```
    pub async fn execute_typed(
        &self,
        id: IntegrationId,
        command: CommandRequest,
        actor: &Actor,
    ) -> Result<Executed, EngineError> {
        // The engine's own inputs (deliveries, probe results) come from GitLab and the probe,
        // never from a caller's hand, typed or not.
        if matches!(command, CommandRequest::RecordWebhookDelivery(_) | CommandRequest::RecordProbeResult(_)) {
            return Err(Rejection::UnknownType(
                "deliveries and probe results are recorded by golive itself, not sent by a caller".into(),
            )
            .into());
        }
        let request = ExecuteRequest::new(id, Value::Null, actor.clone());
        self.execute_parsed(id, command, &request, None, String::new()).await
    }

    /// The write path after parsing: load, decide, append, retrying a lost race.
    async fn execute_parsed(
        &self,
        id: IntegrationId,
        parsed: CommandRequest,
        request: &ExecuteRequest,
        key: Option<String>,
        request_digest: String,
    ) -> Result<Executed, EngineError> {
        let _turn = self.stripe(id).lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            // The cached state is trusted here: the append's expected version catches a stale
            // one (another replica wrote), and the retry below reloads from the log.
            let mut state = self.load_for_write(id).await?.ok_or(EngineError::NotFound(id))?;
            if let Some(expected) = request.expected_version {
                if expected != state.version {
                    // The cache may be behind another replica: ask the log before refusing.
                    state = self.load(id).await?.ok_or(EngineError::NotFound(id))?;
                }
                if expected != state.version {
                    return Err(EngineError::VersionMismatch { integration: id, expected, actual: state.version });
                }
            }
            let (command, shown) = self.prepare(id, parsed.clone()).await?;
            let now = request.recorded_at.unwrap_or_else(|| self.now());
            let ctx = Context { now, actor: request.actor.clone(), ids: self.inner.ids.as_ref() };
            let events = state.decide(&command, &ctx)?;
            let idempotency = key.clone().map(|key| IdempotencyWrite {
                key,
                request_digest: request_digest.clone(),
                response: json!({ "webhook_url": shown.webhook_url }),
            });
            match self.append(id, Some(&state), events, &ctx, idempotency, shown, &request_digest).await {
                Err(EngineError::Store(StoreError::WrongExpectedVersion { actual, .. })) => {
                    if let Some(expected) = request.expected_version {
                        return Err(EngineError::VersionMismatch { integration: id, expected, actual });
                    }
                    if attempts > self.inner.config.max_retries {
                        return Err(EngineError::Conflict { integration: id, attempts });
                    }
                    self.inner.cache.lock().expect("cache lock").remove(&id);
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }

    fn stripe(&self, id: IntegrationId) -> &tokio::sync::Mutex<()> {
        let bytes = id.as_uuid().as_u128();
        &self.inner.stripes[(bytes as usize ^ (bytes >> 64) as usize) % STRIPES]
    }

    async fn prepare(&self, id: IntegrationId, parsed: CommandRequest) -> Result<(Command, ShownOnce), EngineError> {
        if !parsed.needs_sealer() {
            return Ok((parsed.prepare(&mut NoSecrets), ShownOnce::default()));
        }
        let key = self.inner.keystore.data_key(id).await?;
        let mut sealer = IntegrationSealer::new(&key, id, &self.inner.config.public_url);
        let command = parsed.prepare(&mut sealer);
        Ok((command, sealer.into_shown()))
    }

    /// Appends decided events and folds them into the cached state.
    #[allow(clippy::too_many_arguments)]
    async fn append(
        &self,
        id: IntegrationId,
        state: Option<&Arc<domain::Integration>>,
        events: Vec<Event>,
        ctx: &Context<'_>,
        idempotency: Option<IdempotencyWrite>,
        shown: ShownOnce,
        request_digest: &str,
    ) -> Result<Executed, EngineError> {
        let version = state.map(|s| s.version).unwrap_or(0);
        let new_events = events.iter().map(|e| encode(e, ctx.ids.next_id(), ctx.now, ctx.actor.as_str())).collect();
        let request = AppendRequest {
            stream: id.as_uuid(),
            expected: ExpectedVersion::Exact(version),
            events: new_events,
            idempotency,
        };
        match self.inner.store.append(request).await? {
            AppendOutcome::Committed(stored) => {
                let mut next = match state {
                    Some(state) => (**state).clone(),
                    None => domain::Integration::from_opened(&events[0], ctx.now).expect("a new stream starts opened"),
                };
                let skip = usize::from(state.is_none());
                for event in &events[skip..] {
                    next.apply(event, ctx.now);
                }
                let next = Arc::new(next);
                self.remember(next.clone());
                if version / self.inner.config.snapshot_every != next.version / self.inner.config.snapshot_every {
                    self.save_snapshot(&next).await?;
                }
                Ok(Executed { state: next, events: stored, shown, replayed: false })
            }
            AppendOutcome::Duplicate(record) => self.replay(record, request_digest).await,
        }
    }

    /// Answers a repeated Idempotency-Key with what the first request produced.
    async fn replay(&self, record: IdempotencyRecord, request_digest: &str) -> Result<Executed, EngineError> {
        if record.request_digest != request_digest {
            return Err(EngineError::IdempotencyKeyReused);
        }
        let id = IntegrationId::from_uuid(record.stream);
        let first = record.positions.first().copied().unwrap_or(1);
        let events = self.inner.store.read_all(first - 1, record.positions.len()).await?;
        let version = events.last().map(|e| e.version).unwrap_or(0);
        let state = self.state_at(id, At::Version(version)).await?;
        let webhook_url = record.response.get("webhook_url").and_then(Value::as_str).map(str::to_owned);
        Ok(Executed {
            state: Arc::new(state),
            events,
            shown: ShownOnce { webhook_url, secret_token: None, signing_key: None },
            replayed: true,
        })
    }

    fn remember(&self, state: Arc<domain::Integration>) {
        let mut cache = self.inner.cache.lock().expect("cache lock");
        if cache.len() >= self.inner.config.cache_capacity && !cache.contains_key(&state.id) {
            // Crude but bounded: drop everything; states reload from snapshots and tails.
            cache.clear();
        }
        cache.insert(state.id, state);
    }

    async fn save_snapshot(&self, state: &domain::Integration) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(&json!({"format": SNAPSHOT_FORMAT, "state": state})).expect("states serialize");
        self.inner.store.put_aux(&format!("snapshot/{}", state.id), bytes).await?;
        Ok(())
    }

    async fn load_snapshot(&self, id: IntegrationId) -> Result<Option<domain::Integration>, EngineError> {
        let Some(bytes) = self.inner.store.get_aux(&format!("snapshot/{id}")).await? else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Saved {
            format: u32,
            state: domain::Integration,
        }
        Ok(serde_json::from_slice::<Saved>(&bytes).ok().filter(|s| s.format == SNAPSHOT_FORMAT).map(|s| s.state))
    }

    /// The state to decide a command on: the cached one without asking the store, else a load.
    async fn load_for_write(&self, id: IntegrationId) -> Result<Option<Arc<domain::Integration>>, EngineError> {
        if let Some(state) = self.inner.cache.lock().expect("cache lock").get(&id).cloned() {
            return Ok(Some(state));
        }
        self.load(id).await
    }

    /// The current state: the cache (or a snapshot) plus whatever the log holds beyond it.
    pub async fn load(&self, id: IntegrationId) -> Result<Option<Arc<domain::Integration>>, EngineError> {
        Ok(self.load_counting(id).await?.0)
    }

    /// [`Engine::load`], also saying how many events it read from the log (0 from the cache).
    /// A load that had to read at least `snapshot_every` events saves a snapshot, so the next
    /// cold load is short.
    pub async fn load_counting(
        &self,
        id: IntegrationId,
    ) -> Result<(Option<Arc<domain::Integration>>, u64), EngineError> {
        let head = self.inner.store.stream_version(id.as_uuid()).await?;
        let cached = self.inner.cache.lock().expect("cache lock").get(&id).cloned();
        if let Some(state) = &cached {
            if state.version == head {
                return Ok((cached, 0));
            }
        }
        let mut read = 0u64;
        let mut state = match cached {
            Some(state) if state.version < head => Some((*state).clone()),
            _ => self.load_snapshot(id).await?.filter(|s| s.version <= head),
        };
        loop {
            let from = state.as_ref().map(|s| s.version + 1).unwrap_or(1);
            let batch = self.inner.store.read_stream(id.as_uuid(), from, 4096).await?;
            if batch.is_empty() {
                break;
            }
            read += batch.len() as u64;
            for stored in batch {
                let at = stored.recorded_at;
                let event = codec::decode_owned(stored)?;
                match &mut state {
                    Some(s) => s.apply(&event, at),
                    None => state = domain::Integration::from_opened(&event, at),
                }
            }
        }
        let Some(state) = state else { return Ok((None, read)) };
        if read >= self.inner.config.snapshot_every {
            self.save_snapshot(&state).await?;
        }
        let state = Arc::new(state);
        self.remember(state.clone());
        Ok((Some(state), read))
    }

    /// The current state, or `NotFound`.
    pub async fn state(&self, id: IntegrationId) -> Result<Arc<domain::Integration>, EngineError> {
        self.load(id).await?.ok_or(EngineError::NotFound(id))
    }

    /// The state as it was at a version or a moment. `NotFound` when it did not exist yet.
    pub async fn state_at(&self, id: IntegrationId, at: At) -> Result<domain::Integration, EngineError> {
        let mut state: Option<domain::Integration> = None;
        let mut from = 1;
        'read: loop {
            let batch = self.inner.store.read_stream(id.as_uuid(), from, 4096).await?;
            if batch.is_empty() {
                break;
            }
            for stored in &batch {
                let within = match at {
                    At::Version(v) => stored.version <= v,
                    At::Time(t) => stored.recorded_at <= t,
                };
                if !within {
                    break 'read;
                }
                let event = decode(stored)?;
                match &mut state {
                    Some(s) => s.apply(&event, stored.recorded_at),
                    None => state = domain::Integration::from_opened(&event, stored.recorded_at),
                }
                from = stored.version + 1;
            }
        }
        state.ok_or(EngineError::NotFound(id))
    }

    /// Executes an engine-made command (not parsed from JSON), retrying lost races.
    async fn execute_internal(
        &self,
        id: IntegrationId,
        command: Command,
        actor: &Actor,
    ) -> Result<Executed, EngineError> {
        let _turn = self.stripe(id).lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let state = self.state(id).await?;
            let ctx = Context { now: self.now(), actor: actor.clone(), ids: self.inner.ids.as_ref() };
            let events = state.decide(&command, &ctx)?;
            match self.append(id, Some(&state), events, &ctx, None, ShownOnce::default(), "").await {
                Err(EngineError::Store(StoreError::WrongExpectedVersion { .. })) => {
                    // Out of retries is a lost race (409), as for a caller's command, never a
                    // storage failure.
                    if attempts > self.inner.config.max_retries {
                        return Err(EngineError::Conflict { integration: id, attempts });
                    }
                }
                other => return other,
            }
        }
    }

    /// Saves the read model, stops following the log and closes the store (flushing it).
    pub async fn close(&self) -> Result<(), EngineError> {
        let projector = self.inner.projector.lock().expect("projector lock").take();
        if let Some(handle) = projector {
            handle.abort();
            // Wait for it to end so its handle on the store is released.
            let _ = handle.await;
        }
        save_read_model(&self.inner).await?;
        self.inner.store.close().await?;
        Ok(())
    }
}

async fn save_read_model(inner: &Inner) -> Result<(), EngineError> {
    let bytes = {
        let model = inner.read_model.read().expect("read model lock");
        serde_json::to_vec(&SavedReadModel { format: READ_MODEL_FORMAT, model: model.clone() }).expect("serializes")
    };
    inner.store.put_aux("read_model", bytes).await?;
    Ok(())
}
