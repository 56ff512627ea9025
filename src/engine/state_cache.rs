//! The state cache: integrations' current states, folded from the log and kept in memory, and
//! the snapshots that keep a cold load of a long stream short.
//!
//! [`StateCache`] owns the cached states and the snapshot records beside the log. A load asks
//! the store for the stream's version, answers from the cache when it is current, else folds
//! the events past the cached state (or past the stream's snapshot, or from the start); a load
//! that read at least `snapshot_every` events saves a snapshot. The write path decides on the
//! cached state without asking the store (the append's expected version catches a stale one)
//! and hands every committed state back here. Past states (`state_at`) are always folded from
//! the log. The cache is bounded crudely: at capacity it is emptied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;

use super::codec::{self, decode};
use super::{At, Engine, EngineError};
use crate::domain::{self, IntegrationId};
use crate::store::EventStore;

/// Bumped when the snapshot form changes; older snapshots are ignored.
const SNAPSHOT_FORMAT: u32 = 3;

/// Cached states and snapshots of one store.
pub(super) struct StateCache {
    store: Arc<dyn EventStore>,
    states: Mutex<HashMap<IntegrationId, Arc<domain::Integration>>>,
    /// States kept in memory.
    capacity: usize,
    /// Write a snapshot each time a stream crosses a multiple of this many events.
    snapshot_every: u64,
}

impl StateCache {
    pub(super) fn new(store: Arc<dyn EventStore>, capacity: usize, snapshot_every: u64) -> StateCache {
        StateCache { store, states: Mutex::new(HashMap::new()), capacity, snapshot_every }
    }

    /// The state to decide a command on: the cached one without asking the store, else a load.
    pub(super) async fn load_for_write(
        &self,
        id: IntegrationId,
    ) -> Result<Option<Arc<domain::Integration>>, EngineError> {
        if let Some(state) = self.states.lock().expect("cache lock").get(&id).cloned() {
            return Ok(Some(state));
        }
        Ok(self.load(id).await?.0)
    }

    /// The current state, and how many events were read from the log to get it (0 from the
    /// cache). Saves a snapshot when that was at least `snapshot_every`.
    pub(super) async fn load(&self, id: IntegrationId) -> Result<(Option<Arc<domain::Integration>>, u64), EngineError> {
        let head = self.store.stream_version(id.as_uuid()).await?;
        let cached = self.states.lock().expect("cache lock").get(&id).cloned();
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
            let batch = self.store.read_stream(id.as_uuid(), from, 4096).await?;
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
        if read >= self.snapshot_every {
            self.save_snapshot(&state).await?;
        }
        let state = Arc::new(state);
        self.remember(state.clone());
        Ok((Some(state), read))
    }

    /// Takes the state an append produced from `version_before`: caches it, and saves a
    /// snapshot when the append crossed a multiple of `snapshot_every`.
    pub(super) async fn committed(
        &self,
        version_before: u64,
        state: Arc<domain::Integration>,
    ) -> Result<(), EngineError> {
        self.remember(state.clone());
        if version_before / self.snapshot_every != state.version / self.snapshot_every {
            self.save_snapshot(&state).await?;
        }
        Ok(())
    }

    /// Drops one integration's cached state (it lost a race: the next load reads the log).
    pub(super) fn forget(&self, id: IntegrationId) {
        self.states.lock().expect("cache lock").remove(&id);
    }

    /// Drops every cached state (the log was replaced underneath, by an import).
    pub(super) fn clear(&self) {
        self.states.lock().expect("cache lock").clear();
    }

    /// The state as it was at a version or a moment, folded from the log. `NotFound` when it
    /// did not exist yet.
    pub(super) async fn state_at(&self, id: IntegrationId, at: At) -> Result<domain::Integration, EngineError> {
        let mut state: Option<domain::Integration> = None;
        let mut from = 1;
        'read: loop {
            let batch = self.store.read_stream(id.as_uuid(), from, 4096).await?;
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

    fn remember(&self, state: Arc<domain::Integration>) {
        let mut cache = self.states.lock().expect("cache lock");
        if cache.len() >= self.capacity && !cache.contains_key(&state.id) {
            // Crude but bounded: drop everything; states reload from snapshots and tails.
            cache.clear();
        }
        cache.insert(state.id, state);
    }

    async fn save_snapshot(&self, state: &domain::Integration) -> Result<(), EngineError> {
        let bytes = serde_json::to_vec(&json!({"format": SNAPSHOT_FORMAT, "state": state})).expect("states serialize");
        self.store.put_aux(&format!("snapshot/{}", state.id), bytes).await?;
        Ok(())
    }

    async fn load_snapshot(&self, id: IntegrationId) -> Result<Option<domain::Integration>, EngineError> {
        let Some(bytes) = self.store.get_aux(&format!("snapshot/{id}")).await? else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Saved {
            format: u32,
            state: domain::Integration,
        }
        Ok(serde_json::from_slice::<Saved>(&bytes).ok().filter(|s| s.format == SNAPSHOT_FORMAT).map(|s| s.state))
    }
}

impl Engine {
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
        self.states().load(id).await
    }

    /// The current state, or `NotFound`.
    pub async fn state(&self, id: IntegrationId) -> Result<Arc<domain::Integration>, EngineError> {
        self.load(id).await?.ok_or(EngineError::NotFound(id))
    }

    /// The state as it was at a version or a moment. `NotFound` when it did not exist yet.
    pub async fn state_at(&self, id: IntegrationId, at: At) -> Result<domain::Integration, EngineError> {
        self.states().state_at(id, at).await
    }
}
