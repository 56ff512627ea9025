//! The projector: the task that folds the log into the read model behind lists, the board and
//! the calendar (kept in `projections.rs`), under a supervisor.
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

use super::projections::Projection;
use super::EngineError;
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

impl ProjectorHealth {
    /// Whether the projector follows the log now (reads do not wait for one that is down).
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// The health as reported, with the read model at `checkpoint` and the log's head at `head`.
    pub(super) fn status(&self, checkpoint: u64, head: u64) -> ProjectorStatus {
        ProjectorStatus {
            up: self.up.load(Ordering::SeqCst),
            restarts: self.restarts.load(Ordering::SeqCst),
            checkpoint,
            lag: head.saturating_sub(checkpoint),
            last_failure: self.last_failure.lock().expect("projector health").clone(),
        }
    }
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

/// Starts the supervised projector from the projection's checkpoint.
pub(super) fn spawn(projection: Arc<Projection>) -> JoinHandle<()> {
    tokio::spawn(supervise(projection))
}

async fn supervise(projection: Arc<Projection>) {
    let health = projection.health();
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        let started = std::time::Instant::now();
        // A panic inside a fold must not end the supervision: it counts as a failure.
        let outcome = std::panic::AssertUnwindSafe(follow(&projection)).catch_unwind().await;
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "the projector panicked".to_owned(),
        };
        health.up.store(false, Ordering::SeqCst);
        // A projector that ran a good while before failing starts over with the shortest wait.
        if started.elapsed() > MAX_RESTART_DELAY * 2 {
            delay = FIRST_RESTART_DELAY;
        }
        health.restarts.fetch_add(1, Ordering::SeqCst);
        tracing::error!(%failure, retry_in_ms = delay.as_millis() as u64, "the read model stopped following the log");
        *health.last_failure.lock().expect("projector health") = Some(failure);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

/// Follows the log from the checkpoint until something fails. Saves the read model every
/// `read_model_save_every` events, so a restart of the process catches up from near the head.
async fn follow(projection: &Projection) -> Result<(), EngineError> {
    let after = projection.checkpoint();
    let mut subscription = Subscription::new(projection.store().clone(), after);
    // Up only once the log answers: a restart that fails at once never shows as ready.
    projection.store().read_all(after, 1).await?;
    projection.health().up.store(true, Ordering::SeqCst);
    let mut since_save = 0u64;
    loop {
        let event = subscription.next().await?;
        projection.fold(&event)?;
        since_save += 1;
        if since_save >= projection.save_every() {
            since_save = 0;
            if let Err(error) = projection.save().await {
                tracing::warn!(%error, "saving the read model failed; a restart will catch up further");
            }
        }
    }
}
