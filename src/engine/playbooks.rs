//! The playbook registry: the admin's named, versioned playbooks, from which reps open
//! integrations.
//!
//! Each registered version is one aux record, `playbook/<id>/<version, 10 digits>`, written
//! with an atomic insert-if-absent: a version once registered never changes (the same body
//! again is a no-op, another body is refused), on every replica sharing the store, with no
//! read-modify-write. The registry is a catalogue, not history: an integration records its
//! whole playbook in `integration_opened`, so replay never reads the registry, and a registry
//! lost or edited by hand changes no integration already opened.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Engine, EngineError};
use crate::domain::{self, Actor, Playbook, PlaybookId, PlaybookRef, Rejection};
use crate::store::EventStore;

const KEY_PREFIX: &str = "playbook/";

/// One registered version of a playbook, as stored and as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredPlaybook {
    pub playbook: Playbook,
    /// The admin's token name (or the operator, locally).
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
}

/// What registering a playbook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// A new version was stored.
    Created(RegisteredPlaybook),
    /// The same id, version and body were registered before: nothing changed.
    AlreadyRegistered(RegisteredPlaybook),
}

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    /// The id and version are registered with another body; a registered version is immutable.
    #[error("playbook {id} version {version} is already registered with another body; register a new version instead")]
    VersionTaken { id: String, version: u32 },
    #[error("no playbook {0}")]
    NotFound(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn key(id: &PlaybookId, version: u32) -> String {
    // Zero-padded so the store's key order is the version order.
    format!("{KEY_PREFIX}{id}/{version:010}")
}

fn decode(bytes: &[u8]) -> Result<RegisteredPlaybook, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| {
        EngineError::Store(crate::store::StoreError::Storage(format!("a registered playbook is unreadable: {e}")))
    })
}

/// Parses a playbook to register: the playbook's own fields, checked like an inline playbook,
/// with an id fit for the registry.
pub fn parse_playbook(body: Value) -> Result<Playbook, Rejection> {
    if !body.is_object() {
        return Err(Rejection::Malformed("the playbook must be a JSON object".into()));
    }
    let playbook: Playbook = domain::parse_fields(body)?;
    playbook
        .check_registrable()
        .map_err(|(field, error)| Rejection::invalid(field.trim_start_matches("playbook."), error.0))?;
    Ok(playbook)
}

impl Engine {
    /// Registers a playbook version (`golive playbook add`, `POST /api/v1/playbooks`).
    pub async fn register_playbook(&self, body: Value, actor: &Actor) -> Result<Registration, PlaybookError> {
        let playbook = parse_playbook(body).map_err(EngineError::from)?;
        let id = PlaybookId::parse(playbook.id.as_str()).expect("check_registrable checked the id");
        let record = RegisteredPlaybook { playbook, registered_by: actor.to_string(), registered_at: self.now() };
        let bytes = serde_json::to_vec(&record).expect("playbooks serialize");
        let stored = self.store().insert_aux_if_absent(&key(&id, record.playbook.version), bytes).await;
        match stored.map_err(EngineError::from)? {
            None => Ok(Registration::Created(record)),
            Some(existing) => {
                let existing = decode(&existing)?;
                if existing.playbook == record.playbook {
                    Ok(Registration::AlreadyRegistered(existing))
                } else {
                    Err(PlaybookError::VersionTaken { id: id.to_string(), version: record.playbook.version })
                }
            }
        }
    }

    /// Every registered version of every playbook, by id then version.
    pub async fn playbooks(&self) -> Result<Vec<RegisteredPlaybook>, EngineError> {
        let entries = self.store().scan_aux(KEY_PREFIX).await?;
        entries.iter().map(|(_, bytes)| decode(bytes)).collect()
    }

    /// One registered playbook: the given version, or the latest.
    pub async fn registered_playbook(&self, reference: &PlaybookRef) -> Result<RegisteredPlaybook, PlaybookError> {
        registered(self.store().as_ref(), reference).await
    }
}

/// One registered playbook: the given version, or the latest.
async fn registered(store: &dyn EventStore, reference: &PlaybookRef) -> Result<RegisteredPlaybook, PlaybookError> {
    let found = match reference.version {
        Some(version) => store.get_aux(&key(&reference.id, version)).await.map_err(EngineError::from)?,
        None => {
            let prefix = format!("{KEY_PREFIX}{}/", reference.id);
            store.scan_aux(&prefix).await.map_err(EngineError::from)?.pop().map(|(_, bytes)| bytes)
        }
    };
    match found {
        Some(bytes) => Ok(decode(&bytes)?),
        None => Err(PlaybookError::NotFound(match reference.version {
            Some(version) => format!("{} version {version}", reference.id),
            None => reference.id.to_string(),
        })),
    }
}

/// The playbook an open request refers to: a registered one, or the server's default when
/// the reference names the default's id and nothing is registered under it.
pub(super) async fn resolve(
    store: &dyn EventStore,
    default: &Playbook,
    reference: &PlaybookRef,
) -> Result<Playbook, EngineError> {
    match registered(store, reference).await {
        Ok(found) => Ok(found.playbook),
        Err(PlaybookError::Engine(error)) => Err(error),
        Err(PlaybookError::NotFound(what)) => {
            let names_default =
                default.id.as_str() == reference.id.as_str() && reference.version.is_none_or(|v| v == default.version);
            if names_default {
                Ok(default.clone())
            } else {
                let field = if reference.version.is_some() { "playbook_version" } else { "playbook_id" };
                Err(Rejection::invalid(field, format!("no playbook {what} is registered")).into())
            }
        }
        Err(PlaybookError::VersionTaken { .. }) => unreachable!("lookups never register"),
    }
}
