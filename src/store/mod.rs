//! The event store: an async trait any backend implements, and the sled backend.
//!
//! The store keeps envelopes and knows no domain type: streams are UUIDs, payloads are JSON.
//! Its promises, which the conformance suite (`tests/it/store_conformance.rs`) checks for
//! every backend: gapless, strictly increasing global positions; contiguous per-stream
//! versions; optimistic concurrency on an expected version (a conflict writes nothing);
//! idempotency keys (a repeat returns the first result and writes nothing; the same key with
//! another request is an error); atomic group appends acknowledged only after they are
//! flushed; one hash chain over the whole log; catch-up subscriptions with no gap and no
//! duplicate.

mod append_plan;
mod envelope;
pub mod owner_only;
mod postgres;
mod sled_store;
mod subscription;
mod verify;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

pub use envelope::{canonical_json, NewEvent, StoredEvent, GENESIS_HASH};
pub use postgres::{split_tls_parameters, PgStore, PgStoreOptions, RootCertificates, SslMode};
pub use sled_store::{FlushHook, FlushInfo, SledStore, SledStoreOptions, StoreStats, SyncMode};
pub use subscription::Subscription;
pub use verify::{verify_chain, VerifyReport};

/// What the appender expects the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// The stream must be at exactly this version (0: it must not exist yet).
    Exact(u64),
    /// No expectation: append at the end, whatever it is.
    Any,
}

/// Written atomically with the events: lets a retry find the first result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyWrite {
    pub key: String,
    /// A digest of the request; the same key with another digest is refused.
    pub request_digest: String,
    /// What to answer a retry with (the caller's choice; stored as is).
    pub response: Value,
}

/// A stored idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    pub request_digest: String,
    pub stream: Uuid,
    pub positions: Vec<u64>,
    pub response: Value,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    pub stream: Uuid,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyWrite>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events were written and flushed.
    Committed(Vec<StoredEvent>),
    /// The idempotency key was used before with the same request: nothing was written.
    Duplicate(IdempotencyRecord),
}

/// The end of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last position (0 for an empty log).
    pub position: u64,
    /// The last event's hash ([`GENESIS_HASH`] for an empty log).
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} is at version {actual}, not the expected {expected}")]
    WrongExpectedVersion { stream: Uuid, expected: u64, actual: u64 },
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyKeyReused { key: String },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("the data directory {path} is locked by another golive process (a running server?)")]
    Locked { path: String },
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("stored data is corrupt at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
    #[error(
        "the store has stopped accepting writes after a storage failure: {0}; restart golive once the cause is fixed"
    )]
    Poisoned(String),
    #[error("the store is closed")]
    Closed,
}

/// An event store backend.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one stream atomically, after checking the expected version and the
    /// idempotency key. Returns only once the events are flushed.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Events of one stream with `version >= from_version`, oldest first, at most `limit`.
    async fn read_stream(&self, stream: Uuid, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// Events of the whole log with `position > after`, oldest first, at most `limit`.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;

    /// The stream's version (0 when it does not exist).
    async fn stream_version(&self, stream: Uuid) -> Result<u64, StoreError>;

    /// Every stream with its version.
    async fn streams(&self) -> Result<Vec<(Uuid, u64)>, StoreError>;

    async fn head(&self) -> Result<Head, StoreError>;

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Auxiliary values outside the log (snapshots, projection checkpoints, tokens, sessions).
    /// Not chained. Several replicas may share them, so state that more than one process
    /// changes is one key per item, changed only with the atomic operations below (never read,
    /// modified and written back with `put_aux`).
    async fn get_aux(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put_aux(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError>;

    /// Writes `value` at `key` only when the key holds nothing, atomically: of several callers
    /// racing for one key exactly one gets `true`. Durable when it returns.
    async fn put_aux_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError>;

    /// Replaces the value at `key` with `new` (`None`: removes it) only when the stored value
    /// is exactly `expected` (`None`: the key is absent), atomically. Returns whether it did;
    /// `false` means someone else changed the key first (read it again and decide again).
    /// Durable when it returns.
    async fn compare_and_swap_aux(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError>;

    /// Every aux key that starts with `prefix`, with its value, in byte order of the keys.
    async fn scan_aux(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Adds `delta` to the counter `key` (0 when it does not exist yet) atomically, saturating
    /// at `u64::MAX`, and returns the new value. Counters are a namespace of their own, apart
    /// from the aux values.
    async fn add_to_counter(&self, key: &str, delta: u64) -> Result<u64, StoreError>;

    /// The counter's value (0 when it does not exist).
    async fn read_counter(&self, key: &str) -> Result<u64, StoreError>;

    /// Committed events as they are flushed (live tail for [`Subscription`]).
    fn committed(&self) -> broadcast::Receiver<Arc<StoredEvent>>;

    /// Whether other processes may write this store at the same time (a shared database), as
    /// opposed to a store its process holds alone (sled locks its directory). Leases found in
    /// a store held alone were left by a process that is gone.
    fn shared_between_processes(&self) -> bool {
        false
    }

    /// Flushes and stops the writer; later appends fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<(), StoreError>;

    /// Write-path counters since the store was opened (for `/metrics` and benchmarks).
    fn counters(&self) -> StoreCounters;

    /// Whether the store still takes writes: a backend that stopped accepting them after a
    /// storage failure says why (readiness reports it, so a load balancer routes elsewhere).
    fn write_health(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Stores `value` under the aux `key` unless the key holds a value already, atomically
    /// (across replicas too): returns `None` when it stored `value`, else the value found,
    /// which is left as it was. Immutable records (registered playbooks) are written this way;
    /// they are never removed, so the value read after a lost race is the winner's.
    async fn insert_aux_if_absent(&self, key: &str, value: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        if self.put_aux_if_absent(key, value).await? {
            return Ok(None);
        }
        self.get_aux(key).await
    }
}

/// What [`update_aux`] does with the value it was shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuxChange {
    /// Leave the key as it is.
    Keep,
    /// Store this value.
    Put(Vec<u8>),
    /// Remove the key.
    Remove,
}

/// How many times [`update_aux`] re-reads a key that others keep changing before it gives up.
pub const MAX_AUX_UPDATE_ATTEMPTS: usize = 1000;

/// Changes one aux key atomically: reads it, asks `decide` what to do with what it read, and
/// compares-and-swaps; when another writer got there first, reads again and asks again. So
/// `decide` may run more than once and must only compute. Returns the change that was applied
/// (`Keep` when `decide` chose to leave the key alone).
pub async fn update_aux(
    store: &dyn EventStore,
    key: &str,
    mut decide: impl FnMut(Option<&[u8]>) -> AuxChange + Send,
) -> Result<AuxChange, StoreError> {
    for _ in 0..MAX_AUX_UPDATE_ATTEMPTS {
        let current = store.get_aux(key).await?;
        let change = decide(current.as_deref());
        let new = match &change {
            AuxChange::Keep => return Ok(change),
            AuxChange::Put(value) => Some(value.clone()),
            AuxChange::Remove => None,
        };
        if store.compare_and_swap_aux(key, current.as_deref(), new).await? {
            return Ok(change);
        }
    }
    Err(StoreError::Storage(format!(
        "aux key {key:?} changed under every one of {MAX_AUX_UPDATE_ATTEMPTS} attempts to update it"
    )))
}

/// Write-path counters: groups flushed, appends and events committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounters {
    pub flushes: u64,
    pub appends_committed: u64,
    pub events_committed: u64,
}
