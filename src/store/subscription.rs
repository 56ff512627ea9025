//! Catch-up subscriptions: from any position, through history, into the live tail, with no gap
//! and no duplicate.
//!
//! The live receiver is created before the first read, so nothing committed in between can be
//! missed; anything the live tail delivers at or below the last position handed out is skipped,
//! and any gap (a lagging receiver) is filled by reading the log again.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::{EventStore, StoreError, StoredEvent};

/// How many events one catch-up read fetches.
const CATCH_UP_BATCH: usize = 512;

pub struct Subscription {
    store: Arc<dyn EventStore>,
    live: broadcast::Receiver<Arc<StoredEvent>>,
    last_position: u64,
    buffered: VecDeque<StoredEvent>,
    caught_up: bool,
}

impl Subscription {
    /// Events after `after` (0: from the beginning), then every new one.
    pub fn new(store: Arc<dyn EventStore>, after: u64) -> Self {
        let live = store.committed();
        Self { store, live, last_position: after, buffered: VecDeque::new(), caught_up: false }
    }

    /// The position of the last event handed out.
    pub fn position(&self) -> u64 {
        self.last_position
    }

    /// The next event in position order. Waits for one when caught up.
    pub async fn next(&mut self) -> Result<StoredEvent, StoreError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.last_position = event.position;
                return Ok(event);
            }
            if !self.caught_up {
                let batch = self.store.read_all(self.last_position, CATCH_UP_BATCH).await?;
                if batch.is_empty() {
                    self.caught_up = true;
                } else {
                    self.buffered.extend(batch);
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.position <= self.last_position => continue,
                Ok(event) if self.last_position.checked_add(1) == Some(event.position) => {
                    self.last_position = event.position;
                    return Ok((*event).clone());
                }
                // A gap or a lagging receiver: the log is the truth, read it again.
                Ok(_) | Err(RecvError::Lagged(_)) => self.caught_up = false,
                Err(RecvError::Closed) => return Err(StoreError::Closed),
            }
        }
    }

    /// Like [`Subscription::next`], but returns `None` when nothing arrives before `timeout`.
    pub async fn next_within(&mut self, timeout: std::time::Duration) -> Result<Option<StoredEvent>, StoreError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }
}
