//! Export and import: the log as JSON Lines of envelopes, hashes included.
//!
//! Import goes into an empty store only, and checks the whole log before it writes any of it: a
//! refused import leaves the store empty. Each line must continue the chain (its `prev_hash` is
//! the previous line's `hash`, its `hash` matches its contents), decode as an event this golive
//! knows (upcast if older, refused if newer), and continue its integration's stream (versions
//! 1, 2, 3, ..., the first an `integration_opened` of that integration, no event id twice).
//! The checked lines wait in an anonymous spool file (never named, gone when closed), then go
//! through the store's one writer, and each stored hash must come out identical: the imported
//! log is the same log, so every state replays identically.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Seek, Write};

use uuid::Uuid;

use super::{codec, Engine, EngineError};
use crate::domain::Event;
use crate::store::{AppendRequest, ExpectedVersion, NewEvent, StoredEvent, GENESIS_HASH};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("import needs an empty store; this one holds {0} events")]
    NotEmpty(u64),
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ImportError {
    /// This error's one kind ([`crate::error_kind::ERROR_TABLE`]): a store that is not empty
    /// conflicts with an import; a bad line is invalid input.
    pub fn kind(&self) -> crate::error_kind::ErrorKind {
        match self {
            ImportError::NotEmpty(_) => crate::error_kind::ErrorKind::Conflict,
            ImportError::Line { .. } => crate::error_kind::ErrorKind::InvalidField,
            ImportError::Engine(error) => error.kind(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub events: u64,
    pub head: String,
}

impl Engine {
    /// Every envelope after `after`, in position order, a page at a time.
    pub async fn export_page(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, EngineError> {
        Ok(self.store().read_all(after, limit).await?)
    }

    /// Imports JSON Lines envelopes into an empty store, verifying the chain as it goes.
    /// `progress` is called with the number of events imported so far.
    pub async fn import_lines(
        &self,
        lines: impl Iterator<Item = std::io::Result<String>>,
        mut progress: impl FnMut(u64),
    ) -> Result<ImportReport, ImportError> {
        let head = self.store().head().await.map_err(EngineError::from)?;
        if head.position != 0 {
            return Err(ImportError::NotEmpty(head.position));
        }
        let spooled = check_and_spool(lines)?;
        // Nothing was written so far; now the checked log goes in.
        let mut count = 0u64;
        let mut pending: Vec<StoredEvent> = Vec::new();
        for line in std::io::BufReader::new(spooled).lines() {
            let line =
                line.map_err(|e| ImportError::Line { line: 0, message: format!("the import's spool file: {e}") })?;
            let event: StoredEvent = serde_json::from_str(&line).expect("spooled lines were parsed once already");
            // Consecutive events of one stream go in one append.
            if pending.last().is_some_and(|p| p.integration_id != event.integration_id) || pending.len() >= 1000 {
                count += self.import_run(std::mem::take(&mut pending)).await?;
                progress(count);
            }
            pending.push(event);
        }
        if !pending.is_empty() {
            count += self.import_run(pending).await?;
            progress(count);
        }
        let head = self.store().head().await.map_err(EngineError::from)?;
        // States are folded afresh from the imported log.
        self.states().clear();
        self.rebuild_read_model().await?;
        Ok(ImportReport { events: count, head: head.hash })
    }

    async fn import_run(&self, run: Vec<StoredEvent>) -> Result<u64, ImportError> {
        let stream = run[0].integration_id;
        let first_version = run[0].version;
        let originals: Vec<(u64, String)> = run.iter().map(|e| (e.position, e.hash.clone())).collect();
        let events = run
            .into_iter()
            .map(|e| NewEvent {
                id: e.id,
                recorded_at: e.recorded_at,
                actor: e.actor,
                event_type: e.event_type,
                schema_version: e.schema_version,
                data: e.data,
            })
            .collect();
        let request =
            AppendRequest { stream, expected: ExpectedVersion::Exact(first_version - 1), events, idempotency: None };
        let outcome = self.store().append(request).await.map_err(|e| ImportError::Engine(e.into()))?;
        let crate::store::AppendOutcome::Committed(stored) = outcome else {
            unreachable!("imports carry no idempotency key")
        };
        for (event, (position, hash)) in stored.iter().zip(&originals) {
            if event.hash != *hash {
                return Err(ImportError::Line {
                    line: *position as usize,
                    message: "the stored hash differs from the exported one".into(),
                });
            }
        }
        Ok(stored.len() as u64)
    }
}

/// Checks every line of a log to import (see the module header) and spools the checked lines to
/// an anonymous file, rewound for reading. Nothing is written to the store here.
fn check_and_spool(lines: impl Iterator<Item = std::io::Result<String>>) -> Result<std::fs::File, ImportError> {
    let spool_error =
        |e: std::io::Error| ImportError::Line { line: 0, message: format!("the import's spool file: {e}") };
    let mut spool = std::io::BufWriter::new(tempfile::tempfile().map_err(spool_error)?);
    let mut previous_hash = GENESIS_HASH.to_owned();
    let mut position = 0u64;
    let mut stream_versions: HashMap<Uuid, u64> = HashMap::new();
    let mut event_ids: HashSet<Uuid> = HashSet::new();
    for (index, line) in lines.enumerate() {
        let number = index + 1;
        let bad = |message: String| ImportError::Line { line: number, message };
        let line = line.map_err(|e| bad(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: StoredEvent = serde_json::from_str(&line).map_err(|e| bad(format!("not an envelope: {e}")))?;
        position += 1;
        if event.position != position {
            return Err(bad(format!("position {} where {position} was due", event.position)));
        }
        if event.prev_hash != previous_hash {
            return Err(bad("prev_hash does not continue the chain".into()));
        }
        if event.compute_hash() != event.hash {
            return Err(bad("hash does not match the event's contents".into()));
        }
        let decoded = codec::decode(&event).map_err(|e| bad(e.to_string()))?;
        let due_version = stream_versions.get(&event.integration_id).map_or(1, |v| v + 1);
        if event.version != due_version {
            return Err(bad(format!(
                "version {} of integration {} where {due_version} was due",
                event.version, event.integration_id
            )));
        }
        let opens_this_stream = matches!(&decoded, Event::IntegrationOpened { integration_id, .. }
            if integration_id.to_string() == event.integration_id.to_string());
        if (due_version == 1) != opens_this_stream {
            return Err(bad(if due_version == 1 {
                format!("integration {} does not begin with its own integration_opened", event.integration_id)
            } else {
                format!(
                    "integration {} is opened a second time, or another's opening is in its stream",
                    event.integration_id
                )
            }));
        }
        if !event_ids.insert(event.id) {
            return Err(bad(format!("event id {} appears twice", event.id)));
        }
        stream_versions.insert(event.integration_id, event.version);
        previous_hash = event.hash.clone();
        writeln!(spool, "{line}").map_err(spool_error)?;
    }
    let mut file = spool.into_inner().map_err(|e| spool_error(e.into_error()))?;
    file.rewind().map_err(spool_error)?;
    Ok(file)
}

/// What `golive migrate` did and checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    pub events: u64,
    pub head: String,
    pub data_keys: usize,
    pub integrations_compared: usize,
    pub chain_valid: bool,
}

/// Auxiliary records worth carrying over (keys with these prefixes: API tokens, one key each,
/// and the single token value older stores kept); refused-delivery signals are copied per
/// integration; snapshots and the read model rebuild themselves and sessions are signed into
/// again.
const MIGRATED_AUX_PREFIXES: [&str; 2] = [crate::auth::TOKEN_KEY_PREFIX, "tokens"];

impl Engine {
    /// Copies this engine's whole store into `target` (which must be empty): the log, hash for
    /// hash; the wrapped data keys; API tokens. Then verifies the target's chain and compares
    /// every integration's state on both sides. Both engines must use the same master key.
    pub async fn migrate_into(
        &self,
        target: &Engine,
        mut progress: impl FnMut(u64),
    ) -> Result<MigrationReport, ImportError> {
        let head = target.store().head().await.map_err(EngineError::from)?;
        if head.position != 0 {
            return Err(ImportError::NotEmpty(head.position));
        }
        let keys = self.keystore().export_wrapped().await.map_err(EngineError::from)?;
        for (integration, wrapped) in &keys {
            target.keystore().import_wrapped(*integration, wrapped).await.map_err(EngineError::from)?;
        }
        for prefix in MIGRATED_AUX_PREFIXES {
            for (key, value) in self.store().scan_aux(prefix).await.map_err(EngineError::from)? {
                target.store().put_aux(&key, value).await.map_err(EngineError::from)?;
            }
        }
        for (stream, _) in self.store().streams().await.map_err(EngineError::from)? {
            self.copy_delivery_signals_into(target, crate::domain::IntegrationId::from_uuid(stream)).await?;
        }
        let mut count = 0u64;
        let mut after = 0u64;
        loop {
            let page = self.store().read_all(after, 1000).await.map_err(EngineError::from)?;
            let Some(last) = page.last() else { break };
            after = last.position;
            let mut run: Vec<StoredEvent> = Vec::new();
            for event in page {
                if run.last().is_some_and(|p| p.integration_id != event.integration_id) {
                    count += target.import_run(std::mem::take(&mut run)).await?;
                }
                run.push(event);
            }
            if !run.is_empty() {
                count += target.import_run(run).await?;
            }
            progress(count);
        }
        target.states().clear();
        target.rebuild_read_model().await?;
        let report = target.verify(None).await?;
        let streams = self.store().streams().await.map_err(EngineError::from)?;
        for (stream, _) in &streams {
            let id = crate::domain::IntegrationId::from_uuid(*stream);
            let (ours, theirs) = (self.state(id).await?, target.state(id).await?);
            if ours != theirs {
                return Err(ImportError::Line {
                    line: 0,
                    message: format!("integration {id} folds to a different state after the copy"),
                });
            }
        }
        Ok(MigrationReport {
            events: count,
            head: report.head.clone(),
            data_keys: keys.len(),
            integrations_compared: streams.len(),
            chain_valid: report.valid,
        })
    }
}
