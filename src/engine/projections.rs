//! The projection: the read model behind lists, the board, the calendar and the insights, kept
//! folded up to a checkpoint by the projector, and the engine's reads of it.
//!
//! [`Projection`] owns the read model (`read_model.rs`, a pure fold), the checkpoint readers
//! wait on, the projector task that follows the log (`projector.rs`, which supervises it) and that task's health. At start it loads the saved model and catches it up
//! with the log; it saves the model beside the log now and then and on close, and can rebuild
//! it from position 0. A read waits (bounded) until the model has folded everything appended
//! before it, unless the projector is down, so a caller sees its own writes.

use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::projector::{self, ProjectorHealth, ProjectorStatus};
use super::read_model::{
    board, calendar, BoardColumn, CalendarEntry, IntegrationSummary, ListFilter, ReadModel, SavedReadModel,
    READ_MODEL_FORMAT,
};
use super::{Engine, EngineError};
use crate::domain::{self, IntegrationId, Rejection};
use crate::store::{EventStore, StoredEvent};

/// The read model, its checkpoint and the projector that keeps it current.
pub(super) struct Projection {
    store: Arc<dyn EventStore>,
    model: RwLock<ReadModel>,
    checkpoint: watch::Sender<u64>,
    task: Mutex<Option<JoinHandle<()>>>,
    health: ProjectorHealth,
    /// Save the model each time it has folded this many more events.
    save_every: u64,
}

impl Projection {
    /// Loads the saved read model (a missing or older one starts empty) and folds the log past
    /// its checkpoint. The projector is not started yet.
    pub(super) async fn open(store: Arc<dyn EventStore>, save_every: u64) -> Result<Projection, EngineError> {
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
        let (checkpoint, _) = watch::channel(model.checkpoint);
        Ok(Projection {
            store,
            model: RwLock::new(model),
            checkpoint,
            task: Mutex::new(None),
            health: ProjectorHealth::default(),
            save_every,
        })
    }

    /// Starts the supervised projector from the checkpoint.
    pub(super) fn start(self: &Arc<Self>) {
        let handle = projector::spawn(self.clone());
        *self.task.lock().expect("projector lock") = Some(handle);
    }

    /// Stops the projector (waiting for it to end, so its handle on the store is released)
    /// and saves the model.
    pub(super) async fn stop(&self) -> Result<(), EngineError> {
        let task = self.task.lock().expect("projector lock").take();
        if let Some(handle) = task {
            handle.abort();
            let _ = handle.await;
        }
        self.save().await
    }

    pub(super) fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub(super) fn health(&self) -> &ProjectorHealth {
        &self.health
    }

    pub(super) fn save_every(&self) -> u64 {
        self.save_every
    }

    /// The last position folded.
    pub(super) fn checkpoint(&self) -> u64 {
        *self.checkpoint.borrow()
    }

    /// Saves the model beside the log.
    pub(super) async fn save(&self) -> Result<(), EngineError> {
        let bytes = {
            let model = self.model.read().expect("read model lock");
            serde_json::to_vec(&SavedReadModel { format: READ_MODEL_FORMAT, model: model.clone() }).expect("serializes")
        };
        self.store.put_aux("read_model", bytes).await?;
        Ok(())
    }

    /// Folds the next event. A fold that fails leaves the model and its checkpoint as they
    /// were: the restart tries this event again rather than skipping it. A fold that panics is
    /// caught here, inside the lock, so the lock is not poisoned for every reader; the model
    /// may be half-changed, so it is dropped and refolded from the start.
    pub(super) fn fold(&self, event: &StoredEvent) -> Result<(), EngineError> {
        let mut model = self.model.write().expect("read model lock");
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.apply(event))) {
            Ok(applied) => applied?,
            Err(_) => {
                *model = ReadModel::default();
                let _ = self.checkpoint.send_replace(0);
                return Err(EngineError::Store(crate::store::StoreError::Storage(format!(
                    "folding the event at position {} panicked; the read model is refolded from the start",
                    event.position
                ))));
            }
        }
        let _ = self.checkpoint.send_replace(model.checkpoint);
        Ok(())
    }

    /// Waits until the model has folded everything appended before this call.
    pub(super) async fn current(&self) -> Result<(), EngineError> {
        let head = self.store.head().await?.position;
        // A projector that is down will not catch up within the wait: answer what the read
        // model holds at once (`/readyz` says it is stale).
        if !self.health.is_up() {
            return Ok(());
        }
        let mut checkpoint = self.checkpoint.subscribe();
        let wait = checkpoint.wait_for(|c| *c >= head);
        // The projector follows the log continuously; a bound keeps a stuck one from hanging reads.
        if tokio::time::timeout(std::time::Duration::from_secs(5), wait).await.is_err() {
            tracing::warn!(head, checkpoint = *self.checkpoint.borrow(), "the read model lags the log");
        }
        Ok(())
    }

    /// Reads the model as it is now.
    pub(super) fn read<R>(&self, f: impl FnOnce(&ReadModel) -> R) -> R {
        f(&self.model.read().expect("read model lock"))
    }

    /// Rebuilds the model from position 0 and swaps it in.
    pub(super) async fn rebuild(&self) -> Result<u64, EngineError> {
        let mut fresh = ReadModel::default();
        loop {
            loop {
                let batch = self.store.read_all(fresh.checkpoint, 4096).await?;
                if batch.is_empty() {
                    break;
                }
                for event in &batch {
                    fresh.apply(event)?;
                }
            }
            // Swap only if the projector has not folded past the rebuild meanwhile; otherwise
            // read the difference and try again.
            let swapped = {
                let mut model = self.model.write().expect("read model lock");
                if model.checkpoint <= fresh.checkpoint {
                    *model = std::mem::take(&mut fresh);
                    let _ = self.checkpoint.send_replace(model.checkpoint);
                    Some(model.checkpoint)
                } else {
                    None
                }
            };
            if let Some(checkpoint) = swapped {
                self.save().await?;
                return Ok(checkpoint);
            }
        }
    }

    /// The projector's health and lag behind the log's head.
    pub(super) async fn status(&self) -> Result<ProjectorStatus, EngineError> {
        let head = self.store.head().await?.position;
        Ok(self.health.status(self.checkpoint(), head))
    }
}

impl Engine {
    /// Integrations matching `filter`, as summaries, by customer.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<IntegrationSummary>, EngineError> {
        self.projection().current().await?;
        let now = self.now();
        let mut out: Vec<IntegrationSummary> = self.projection().read(|model| {
            model.integrations.values().map(|s| IntegrationSummary::of(s, now)).filter(|s| filter.matches(s)).collect()
        });
        out.sort_by(|a, b| (&a.customer, a.id).cmp(&(&b.customer, b.id)));
        Ok(out)
    }

    /// One page of [`Engine::list`]: at most `limit` summaries after the cursor `after` (from a
    /// previous page's `next_after`), in the list's order (customer, then id). The cursor names
    /// the last item's place in that order, not an index, so integrations opened or changed
    /// between pages neither repeat nor shift the pages that follow.
    pub async fn list_page(
        &self,
        filter: &ListFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, EngineError> {
        let after = after.map(ListCursor::parse).transpose()?;
        let all = self.list(filter).await?;
        let start = match &after {
            Some(cursor) => {
                all.partition_point(|s| (s.customer.as_str(), s.id) <= (cursor.customer.as_str(), cursor.id))
            }
            None => 0,
        };
        let end = start.saturating_add(limit).min(all.len());
        let items = all[start..end].to_vec();
        let next_after = match items.last() {
            Some(last) if end < all.len() => Some(ListCursor { customer: last.customer.clone(), id: last.id }.encode()),
            _ => None,
        };
        Ok(ListPage { items, next_after })
    }

    /// The board: a column per stage, blocked and stalled first.
    pub async fn board(&self) -> Result<Vec<BoardColumn>, EngineError> {
        Ok(board(self.list(&ListFilter::default()).await?))
    }

    /// Go-live dates and monitoring ends, soonest first.
    pub async fn calendar(&self) -> Result<Vec<CalendarEntry>, EngineError> {
        self.projection().current().await?;
        Ok(self.projection().read(|model| {
            let states: Vec<&domain::Integration> = model.integrations.values().collect();
            calendar(&states)
        }))
    }

    /// The read model's checkpoint (the last position it has folded).
    pub fn read_model_checkpoint(&self) -> u64 {
        self.projection().checkpoint()
    }

    /// Rebuilds the read model from position 0 and swaps it in.
    pub async fn rebuild_read_model(&self) -> Result<u64, EngineError> {
        self.projection().rebuild().await
    }

    /// The read model's states, for checks against a rebuild.
    pub async fn read_model_snapshot(&self) -> Result<ReadModel, EngineError> {
        self.projection().current().await?;
        Ok(self.projection().read(ReadModel::clone))
    }
}

/// A page of the integration list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListPage {
    pub items: Vec<IntegrationSummary>,
    /// The cursor of the next page; `None` on the last one.
    pub next_after: Option<String>,
}

/// Where a page ends in the list's order: base64url of `customer`, a NUL, and the id.
struct ListCursor {
    customer: String,
    id: IntegrationId,
}

impl ListCursor {
    fn encode(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}\0{}", self.customer, self.id))
    }

    fn parse(text: &str) -> Result<ListCursor, EngineError> {
        use base64::Engine as _;
        let invalid = || Rejection::invalid("after", "not a cursor from a previous page's Link header");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (customer, id) = text.rsplit_once('\0').ok_or_else(invalid)?;
        let id = IntegrationId::parse(id).map_err(|_| invalid())?;
        Ok(ListCursor { customer: customer.to_owned(), id })
    }
}
