//! The projector: the task that folds the log into the read model behind lists, the board and
//! the calendar, under a supervisor.
//!
//! The projector follows the log from the read model's checkpoint. When it fails — the log
//! cannot be read, an event cannot be folded, the task panics — the supervisor marks it down,
//! waits (doubling from 50 ms up to 5 s), and starts it again from the checkpoint, where the
//! last fold left off: a fold is all or nothing, so nothing is folded twice or skipped. Its
//! health (up or down, restarts, the last failure) is what `/readyz` and `/metrics` report,
//! with its lag (positions behind the log's head), so a stale read model is never served
//! silently as ready.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

use super::{save_read_model, Engine, EngineError, Inner};
use crate::store::Subscription;

/// The first wait before a restart; it doubles up to [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(50);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(5);

/// What the supervisor knows of its projector.
#[derive(Debug, Default)]
pub(super) struct ProjectorHealth {
    up: AtomicBool,
    restarts: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

/// The projector's health as reported: `/readyz` and `/metrics` read it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectorStatus {
    /// Following the log now.
    pub up: bool,
    /// Times the supervisor restarted it since the engine started.
    pub restarts: u64,
    /// The read model's checkpoint: the last position folded.
    pub checkpoint: u64,
    /// Positions between the checkpoint and the log's head.
    pub lag: u64,
    /// The last failure, in golive's words and the storage's (never an event's content).
    pub last_failure: Option<String>,
}

impl Engine {
    /// Starts the supervised projector from the read model's checkpoint.
    pub(super) fn spawn_projector(&self) {
        let inner = self.inner.clone();
        let handle: JoinHandle<()> = tokio::spawn(supervise(inner));
        *self.inner.projector.lock().expect("projector lock") = Some(handle);
    }

    /// Whether the projector follows the log now (reads do not wait for one that is down).
    pub(super) fn projector_up(&self) -> bool {
        self.inner.projector_health.up.load(Ordering::SeqCst)
    }

    /// The projector's health and lag behind the log's head.
    pub async fn projector_status(&self) -> Result<ProjectorStatus, EngineError> {
        let head = self.inner.store.head().await?.position;
        let checkpoint = *self.inner.checkpoint.borrow();
        let health = &self.inner.projector_health;
        Ok(ProjectorStatus {
            up: health.up.load(Ordering::SeqCst),
            restarts: health.restarts.load(Ordering::SeqCst),
            checkpoint,
            lag: head.saturating_sub(checkpoint),
            last_failure: health.last_failure.lock().expect("projector health").clone(),
        })
    }
}

async fn supervise(inner: Arc<Inner>) {
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        let started = std::time::Instant::now();
        // A panic inside a fold must not end the supervision: it counts as a failure.
        let outcome = std::panic::AssertUnwindSafe(follow(&inner)).catch_unwind().await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "the projector panicked".to_owned(),
        };
        inner.projector_health.up.store(false, Ordering::SeqCst);
        // A projector that ran a good while before failing starts over with the shortest wait.
        if started.elapsed() > MAX_RESTART_DELAY * 2 {
            delay = FIRST_RESTART_DELAY;
        }
        inner.projector_health.restarts.fetch_add(1, Ordering::SeqCst);
        tracing::error!(%failure, retry_in_ms = delay.as_millis() as u64, "the read model stopped following the log");
        *inner.projector_health.last_failure.lock().expect("projector health") = Some(failure);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

/// Follows the log from the checkpoint until something fails. Saves the read model every
/// `read_model_save_every` events, so a restart of the process catches up from near the head.
async fn follow(inner: &Arc<Inner>) -> Result<(), EngineError> {
    let after = *inner.checkpoint.borrow();
    let mut subscription = Subscription::new(inner.store.clone(), after);
    // Up only once the log answers: a restart that fails at once never shows as ready.
    inner.store.read_all(after, 1).await?;
    inner.projector_health.up.store(true, Ordering::SeqCst);
    let mut since_save = 0u64;
    loop {
        let event = subscription.next().await?;
        {
            let mut model = inner.read_model.write().expect("read model lock");
            // A fold that fails leaves the model and its checkpoint as they were: the restart
            // tries this event again rather than skipping it. A fold that panics is caught
            // here, inside the lock, so the lock is not poisoned for every reader; the model
            // may be half-changed, so it is dropped and refolded from the start.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.apply(&event))) {
                Ok(applied) => applied?,
                Err(_) => {
                    *model = super::ReadModel::default();
                    let _ = inner.checkpoint.send_replace(0);
                    return Err(EngineError::Store(crate::store::StoreError::Storage(format!(
                        "folding the event at position {} panicked; the read model is refolded from the start",
                        event.position
                    ))));
                }
            }
            let _ = inner.checkpoint.send_replace(model.checkpoint);
        }
        since_save += 1;
        if since_save >= inner.config.read_model_save_every {
            since_save = 0;
            if let Err(error) = save_read_model(inner).await {
                tracing::warn!(%error, "saving the read model failed; a restart will catch up further");
            }
        }
    }
}
