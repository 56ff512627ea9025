//! Reads: history, audit, subscriptions, verification, and the read model's lists.

use super::*;

impl Engine {
    /// An integration's events with `version > after`, oldest first.
    pub async fn history(&self, id: IntegrationId, after: u64, limit: usize) -> Result<Vec<StoredEvent>, EngineError> {
        if self.inner.store.stream_version(id.as_uuid()).await? == 0 {
            return Err(EngineError::NotFound(id));
        }
        // `after` comes from a client: past the last possible version there is nothing to read.
        let Some(from) = after.checked_add(1) else { return Ok(Vec::new()) };
        Ok(self.inner.store.read_stream(id.as_uuid(), from, limit).await?)
    }

    /// The audit query across integrations, paged by position.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, EngineError> {
        let limit = query.limit.clamp(1, 10_000);
        let mut found = Vec::new();
        let mut after = query.after;
        loop {
            let batch = self.inner.store.read_all(after, 4096).await?;
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
                        let head = self.inner.store.head().await?.position;
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
        Subscription::new(self.inner.store.clone(), after)
    }

    /// Verifies the hash chain (and, with `expect`, that the log still contains that hash).
    pub async fn verify(&self, expect: Option<&str>) -> Result<VerifyReport, EngineError> {
        Ok(crate::store::verify_chain(self.inner.store.as_ref(), expect).await?)
    }

    /// Waits until the read model has folded everything appended before this call.
    async fn read_model_current(&self) -> Result<(), EngineError> {
        let head = self.inner.store.head().await?.position;
        // A projector that is down will not catch up within the wait: answer what the read
        // model holds at once (`/readyz` says it is stale).
        if !self.projector_up() {
            return Ok(());
        }
        let mut checkpoint = self.inner.checkpoint.subscribe();
        let wait = checkpoint.wait_for(|c| *c >= head);
        // The projector follows the log continuously; a bound keeps a stuck one from hanging reads.
        if tokio::time::timeout(std::time::Duration::from_secs(5), wait).await.is_err() {
            tracing::warn!(head, checkpoint = *self.inner.checkpoint.borrow(), "the read model lags the log");
        }
        Ok(())
    }

    /// Integrations matching `filter`, as summaries, by customer.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<IntegrationSummary>, EngineError> {
        self.read_model_current().await?;
        let now = self.now();
        let model = self.inner.read_model.read().expect("read model lock");
        let mut out: Vec<IntegrationSummary> =
            model.integrations.values().map(|s| IntegrationSummary::of(s, now)).filter(|s| filter.matches(s)).collect();
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
        self.read_model_current().await?;
        let model = self.inner.read_model.read().expect("read model lock");
        let states: Vec<&domain::Integration> = model.integrations.values().collect();
        Ok(calendar(&states))
    }

    /// The read model's checkpoint (the last position it has folded).
    pub fn read_model_checkpoint(&self) -> u64 {
        *self.inner.checkpoint.borrow()
    }

    /// Rebuilds the read model from position 0 and swaps it in.
    pub async fn rebuild_read_model(&self) -> Result<u64, EngineError> {
        let mut fresh = ReadModel::default();
        loop {
            loop {
                let batch = self.inner.store.read_all(fresh.checkpoint, 4096).await?;
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
                let mut model = self.inner.read_model.write().expect("read model lock");
                if model.checkpoint <= fresh.checkpoint {
                    *model = std::mem::take(&mut fresh);
                    let _ = self.inner.checkpoint.send_replace(model.checkpoint);
                    Some(model.checkpoint)
                } else {
                    None
                }
            };
            if let Some(checkpoint) = swapped {
                save_read_model(&self.inner).await?;
                return Ok(checkpoint);
            }
        }
    }

    /// The read model's states, for checks against a rebuild.
    pub async fn read_model_snapshot(&self) -> Result<ReadModel, EngineError> {
        self.read_model_current().await?;
        Ok(self.inner.read_model.read().expect("read model lock").clone())
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
