//! The write path: every command becomes events here, and every event of the engine is
//! appended here.
//!
//! [`WritePath`] is a view of what writing needs (the store, the keystore for sealing, the
//! clock and ids, the state cache, the per-integration turns and the configuration). It parses
//! nothing itself beyond the request's JSON: it digests the request for idempotency and
//! answers a used key with the recorded result, takes the integration's turn (commands on one
//! integration run one at a time within this process), loads the state (the cached one is
//! trusted; the append's expected version catches a stale one), seals a command's secrets,
//! lets the domain decide, and appends with the version it decided on. A lost race is retried,
//! bounded by `max_retries`, unless the caller pinned a version (`If-Match`). The committed
//! state goes back to the state cache.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::codec::encode;
use super::state_cache::StateCache;
use super::{playbooks, At, Clock, Engine, EngineConfig, EngineError, ExecuteRequest, Executed};
use crate::domain::{
    self, Actor, Command, CommandRequest, Context, Event, IdSource, IntegrationId, IssuedWebhookCredentials,
    PlaintextSecret, Rejection, SealedSecret, Sealer, SecretKind,
};
use crate::secrets::{IntegrationSealer, Keystore, ShownOnce};
use crate::store::{
    AppendOutcome, AppendRequest, EventStore, ExpectedVersion, IdempotencyRecord, IdempotencyWrite, StoreError,
};

/// Lock stripes for per-integration serialisation.
const STRIPES: usize = 1024;

/// Commands on one integration run one at a time within this process (striped by id), so
/// concurrent callers queue instead of racing; the expected-version check still guards
/// against other processes sharing the store.
pub(super) struct Turns(Vec<tokio::sync::Mutex<()>>);

impl Turns {
    pub(super) fn new() -> Turns {
        Turns((0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    fn of(&self, id: IntegrationId) -> &tokio::sync::Mutex<()> {
        let bytes = id.as_uuid().as_u128();
        &self.0[(bytes as usize ^ (bytes >> 64) as usize) % STRIPES]
    }
}

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

/// What the write path needs of the engine, borrowed for one call.
pub(super) struct WritePath<'a> {
    pub(super) store: &'a dyn EventStore,
    pub(super) keystore: &'a dyn Keystore,
    pub(super) clock: &'a dyn Clock,
    pub(super) ids: &'a dyn IdSource,
    pub(super) states: &'a StateCache,
    pub(super) turns: &'a Turns,
    pub(super) config: &'a EngineConfig,
}

impl WritePath<'_> {
    /// Opens a new integration: `integration_opened` and what the request's playbook adds.
    pub(super) async fn open(
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
            if let Some(record) = self.store.idempotency_record(key).await? {
                return self.replay(record, &request_digest).await;
            }
        }
        self.open_parsed(request, playbook_reference, actor, key, request_digest, recorded_at).await
    }

    /// Opens a parsed request: resolves the playbook, decides, appends.
    pub(super) async fn open_parsed(
        &self,
        request: domain::OpenIntegration,
        playbook_reference: Option<domain::PlaybookRef>,
        actor: &Actor,
        key: Option<String>,
        request_digest: String,
        recorded_at: Option<DateTime<Utc>>,
    ) -> Result<Executed, EngineError> {
        let now = recorded_at.unwrap_or_else(|| self.clock.now());
        let ctx = Context { now, actor: actor.clone(), ids: self.ids };
        // A referenced playbook is resolved here, once, and recorded whole by `open`.
        let playbook = match &playbook_reference {
            Some(reference) => playbooks::resolve(self.store, &self.config.default_playbook, reference).await?,
            None => self.config.default_playbook.clone(),
        };
        let events = domain::open(request, playbook, self.config.public_url.clone(), &ctx)?;
        let Event::IntegrationOpened { integration_id, .. } = &events[0] else {
            unreachable!("open yields integration_opened first")
        };
        let id = *integration_id;
        let idempotency =
            key.map(|key| IdempotencyWrite { key, request_digest: request_digest.clone(), response: json!({}) });
        self.append(id, None, events, &ctx, idempotency, ShownOnce::default(), &request_digest).await
    }

    /// Executes one JSON command (see [`Engine::execute`]).
    pub(super) async fn execute(&self, request: ExecuteRequest) -> Result<Executed, EngineError> {
        let parsed = domain::parse_request(request.body.clone(), request.origin)?;
        let id = request.integration;
        let key = request.idempotency_key.as_ref().map(|k| format!("cmd/{id}/{k}"));
        let pinned = request.expected_version.map(|v| v.to_string()).unwrap_or_default();
        let request_digest = match &request.request_digest {
            Some(given) => given.clone(),
            None => digest(&["command", &id.to_string(), request.actor.as_str(), &pinned, &canonical(&request.body)]),
        };
        if let Some(key) = &key {
            if let Some(record) = self.store.idempotency_record(key).await? {
                return self.replay(record, &request_digest).await;
            }
        }
        self.execute_parsed(id, parsed, &request, key, request_digest).await
    }

    /// Executes a typed command (see [`Engine::execute_typed`]).
    pub(super) async fn execute_typed(
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
        // The rules JSON parsing applies beyond the types (list limits, fields that go
        // together) hold for a typed command too.
        command.check()?;
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
        let _turn = self.turns.of(id).lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            // The cached state is trusted here: the append's expected version catches a stale
            // one (another replica wrote), and the retry below reloads from the log.
            let mut state = self.states.load_for_write(id).await?.ok_or(EngineError::NotFound(id))?;
            if let Some(expected) = request.expected_version {
                if expected != state.version {
                    // The cache may be behind another replica: ask the log before refusing.
                    state = self.states.load(id).await?.0.ok_or(EngineError::NotFound(id))?;
                }
                if expected != state.version {
                    return Err(EngineError::VersionMismatch { integration: id, expected, actual: state.version });
                }
            }
            let (command, shown) = self.prepare(&state, parsed.clone()).await?;
            let now = request.recorded_at.unwrap_or_else(|| self.clock.now());
            let ctx = Context { now, actor: request.actor.clone(), ids: self.ids };
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
                    if attempts > self.config.max_retries {
                        return Err(EngineError::Conflict { integration: id, attempts });
                    }
                    self.states.forget(id);
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    }

    /// Executes an engine-made command (not parsed from JSON), retrying lost races.
    pub(super) async fn execute_internal(
        &self,
        id: IntegrationId,
        command: Command,
        actor: &Actor,
    ) -> Result<Executed, EngineError> {
        let _turn = self.turns.of(id).lock().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let state = self.states.load(id).await?.0.ok_or(EngineError::NotFound(id))?;
            let ctx = Context { now: self.clock.now(), actor: actor.clone(), ids: self.ids };
            let events = state.decide(&command, &ctx)?;
            match self.append(id, Some(&state), events, &ctx, None, ShownOnce::default(), "").await {
                Err(EngineError::Store(StoreError::WrongExpectedVersion { .. })) => {
                    // Out of retries is a lost race (409), as for a caller's command, never a
                    // storage failure.
                    if attempts > self.config.max_retries {
                        return Err(EngineError::Conflict { integration: id, attempts });
                    }
                }
                other => return other,
            }
        }
    }

    /// Seals the command's secrets; webhook URLs derive from the integration's recorded public
    /// URL (the configured one only for integrations opened before golive recorded it).
    async fn prepare(
        &self,
        state: &domain::Integration,
        parsed: CommandRequest,
    ) -> Result<(Command, ShownOnce), EngineError> {
        if !parsed.needs_sealer() {
            return Ok((parsed.prepare(&mut NoSecrets), ShownOnce::default()));
        }
        let id = state.id;
        let key = self.keystore.data_key(id).await?;
        let public_url = state.public_url.as_ref().unwrap_or(&self.config.public_url);
        let mut sealer = IntegrationSealer::new(&key, id, public_url);
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
        match self.store.append(request).await? {
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
                self.states.committed(version, next.clone()).await?;
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
        let events = self.store.read_all(first - 1, record.positions.len()).await?;
        let version = events.last().map(|e| e.version).unwrap_or(0);
        let state = self.states.state_at(id, At::Version(version)).await?;
        let webhook_url = record.response.get("webhook_url").and_then(Value::as_str).map(str::to_owned);
        Ok(Executed {
            state: Arc::new(state),
            events,
            shown: ShownOnce { webhook_url, secret_token: None, signing_key: None },
            replayed: true,
        })
    }
}

impl Engine {
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
        self.writes().open(body, actor, idempotency_key, recorded_at).await
    }

    /// Opens an integration from a typed request: the same write path as
    /// [`Engine::open_integration`] without JSON; `playbook` names a registered playbook (the
    /// request's own `playbook`, if any, must then be `None`). No Idempotency-Key, as for
    /// [`Engine::execute_typed`].
    pub async fn open_typed(
        &self,
        request: domain::OpenIntegration,
        playbook: Option<domain::PlaybookRef>,
        actor: &Actor,
    ) -> Result<Executed, EngineError> {
        if playbook.is_some() && request.playbook.is_some() {
            return Err(Rejection::invalid("playbook", "give either playbook_id or playbook, not both").into());
        }
        self.writes().open_parsed(request, playbook, actor, None, String::new(), None).await
    }

    /// Executes one command: load, decide, append with the expected version; a lost race is
    /// retried (bounded) unless the caller pinned a version.
    pub async fn execute(&self, request: ExecuteRequest) -> Result<Executed, EngineError> {
        self.writes().execute(request).await
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
        self.writes().execute_typed(id, command, actor).await
    }
}
