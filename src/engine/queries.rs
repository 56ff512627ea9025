//! Reads of the log itself: an integration's history, the audit query across integrations,
//! catch-up subscriptions and the hash chain's verification. Each reads the store directly, so
//! it is never behind; the read model's lists are in `projections.rs`.

use super::{AuditPage, AuditQuery, Engine, EngineError};
use crate::domain::IntegrationId;
use crate::store::{StoredEvent, Subscription, VerifyReport};

impl Engine {
    /// An integration's events with `version > after`, oldest first.
    pub async fn history(&self, id: IntegrationId, after: u64, limit: usize) -> Result<Vec<StoredEvent>, EngineError> {
        if self.store().stream_version(id.as_uuid()).await? == 0 {
            return Err(EngineError::NotFound(id));
        }
        // `after` comes from a client: past the last possible version there is nothing to read.
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        Ok(self.store().read_stream(id.as_uuid(), from, limit).await?)
    }

    /// The audit query across integrations, paged by position.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, EngineError> {
        let limit = query.limit.clamp(1, 10_000);
        let mut found = Vec::new();
        let mut after = query.after;
        loop {
            let batch = self.store().read_all(after, 4096).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                return Ok(AuditPage { events: found, next_after: None });
            };
            for event in batch {
                after = event.position;
                let keep = query.actor.as_ref().is_none_or(|a| *a == event.actor)
                    && query.event_type.as_ref().is_none_or(|t| *t == event.event_type)
                    && query.integration.is_none_or(|i| i == event.integration_id)
                    && query.since.is_none_or(|s| event.recorded_at >= s)
                    && query.until.is_none_or(|u| event.recorded_at <= u);
                if keep {
                    found.push(event);
                    if found.len() == limit {
                        let head = self.store().head().await?.position;
                        let next_after = (after < head).then_some(after);
                        return Ok(AuditPage { events: found, next_after });
                    }
                }
            }
            after = last;
        }
    }

    /// Every event after `after`, then every new one, in order, without gap or duplicate.
    pub fn subscribe(&self, after: u64) -> Subscription {
        Subscription::new(self.store().clone(), after)
    }

    /// Verifies the hash chain (and, with `expect`, that the log still contains that hash).
    pub async fn verify(&self, expect: Option<&str>) -> Result<VerifyReport, EngineError> {
        Ok(crate::store::verify_chain(self.store().as_ref(), expect).await?)
    }
}
