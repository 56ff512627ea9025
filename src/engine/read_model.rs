//! The read model behind lists, the board, stalled onboardings and the calendar.
//!
//! It folds the whole log into the state of every integration, keeps the position it has
//! folded up to (its checkpoint), and is saved beside the log now and then so a restart
//! catches up from the checkpoint instead of replaying everything. It can always be rebuilt
//! from position 0.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{decode, CodecError};
use crate::domain::{BlockCategory, Integration, IntegrationId, Stage, STALLED_AFTER_DAYS};
use crate::store::StoredEvent;

/// Bumped when the saved form changes; an old saved form is ignored and rebuilt.
pub const READ_MODEL_FORMAT: u32 = 5;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadModel {
    pub checkpoint: u64,
    pub integrations: BTreeMap<IntegrationId, Integration>,
    /// The process insights, folded up to the same checkpoint.
    pub insights: super::InsightsBuilder,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct SavedReadModel {
    pub format: u32,
    pub model: ReadModel,
}

impl ReadModel {
    /// Folds one event; events at or below the checkpoint are skipped (idempotent).
    pub fn apply(&mut self, stored: &StoredEvent) -> Result<(), CodecError> {
        if stored.position <= self.checkpoint {
            return Ok(());
        }
        let event = decode(stored)?;
        self.insights.fold(stored.integration_id, &event, stored.recorded_at, stored.position);
        let id = IntegrationId::from_uuid(stored.integration_id);
        match self.integrations.get_mut(&id) {
            Some(state) => state.apply(&event, stored.recorded_at),
            None => {
                if let Some(state) = Integration::from_opened(&event, stored.recorded_at) {
                    self.integrations.insert(id, state);
                }
            }
        }
        self.checkpoint = stored.position;
        Ok(())
    }
}

/// One integration as lists and the board show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSummary {
    pub id: IntegrationId,
    pub customer: String,
    /// The instance of record, so a second onboarding of one instance can be noticed.
    pub gitlab_url: String,
    pub owner: Option<String>,
    pub stage: Stage,
    pub version: u64,
    pub blocked: Option<BlockCategory>,
    pub days_in_stage: i64,
    pub days_since_progress: i64,
    pub stalled: bool,
    pub go_live_date: Option<String>,
    pub monitoring_ends_at: Option<DateTime<Utc>>,
    pub next_step: Option<String>,
}

impl IntegrationSummary {
    pub fn of(state: &Integration, now: DateTime<Utc>) -> Self {
        let days_since_progress = (now - state.last_progress_at).num_days().max(0);
        let active = !matches!(state.stage, Stage::Live | Stage::Cancelled);
        IntegrationSummary {
            id: state.id,
            customer: state.customer.to_string(),
            gitlab_url: state.facts.instance.gitlab_url.to_string(),
            owner: state.owner.as_ref().map(|o| o.to_string()),
            stage: state.stage,
            version: state.version,
            blocked: state.block.as_ref().map(|b| b.category),
            days_in_stage: state.days_in_stage(now),
            days_since_progress,
            stalled: active && days_since_progress >= STALLED_AFTER_DAYS,
            go_live_date: state.go_live_date.map(|d| d.to_string()),
            monitoring_ends_at: state.monitoring.as_ref().map(|m| m.ends_at),
            next_step: state.next_steps(now).into_iter().next(),
        }
    }
}

/// Filters of `GET /api/v1/integrations` and `golive integration list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    pub stage: Option<Stage>,
    pub owner: Option<String>,
    pub blocked: Option<bool>,
    /// Only integrations without progress for at least this many days (live and cancelled
    /// ones excepted).
    pub stalled_days: Option<u32>,
}

impl ListFilter {
    pub fn matches(&self, summary: &IntegrationSummary) -> bool {
        self.stage.is_none_or(|s| s == summary.stage)
            && self.owner.as_ref().is_none_or(|o| summary.owner.as_deref() == Some(o.as_str()))
            && self.blocked.is_none_or(|b| b == summary.blocked.is_some())
            && self.stalled_days.is_none_or(|days| {
                !matches!(summary.stage, Stage::Live | Stage::Cancelled)
                    && summary.days_since_progress >= i64::from(days)
            })
    }
}

/// A stage's column on the board: blocked first, then stalled, then longest in stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardColumn {
    pub stage: Stage,
    pub count: usize,
    pub integrations: Vec<IntegrationSummary>,
}

pub fn board(summaries: Vec<IntegrationSummary>) -> Vec<BoardColumn> {
    let mut columns: Vec<BoardColumn> = Stage::ORDERED
        .into_iter()
        .chain([Stage::Cancelled])
        .map(|stage| BoardColumn { stage, count: 0, integrations: Vec::new() })
        .collect();
    for summary in summaries {
        let column = columns.iter_mut().find(|c| c.stage == summary.stage).expect("every stage has a column");
        column.integrations.push(summary);
    }
    for column in &mut columns {
        column.integrations.sort_by_key(|s| (s.blocked.is_none(), !s.stalled, -s.days_in_stage, s.customer.clone()));
        column.count = column.integrations.len();
    }
    columns
}

/// A dated entry of the go-live calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarEntry {
    pub date: NaiveDate,
    /// `go_live` (scheduled) or `monitoring_ends`.
    pub kind: String,
    pub id: IntegrationId,
    pub customer: String,
    pub owner: Option<String>,
    pub stage: Stage,
}

pub fn calendar(states: &[&Integration]) -> Vec<CalendarEntry> {
    let mut entries = Vec::new();
    for state in states {
        let entry = |date: NaiveDate, kind: &str| CalendarEntry {
            date,
            kind: kind.to_owned(),
            id: state.id,
            customer: state.customer.to_string(),
            owner: state.owner.as_ref().map(|o| o.to_string()),
            stage: state.stage,
        };
        match state.stage {
            Stage::Cancelled => {}
            Stage::Live => {
                if let Some(m) = state.monitoring.as_ref().filter(|m| m.completed_at.is_none()) {
                    entries.push(entry(m.ends_at.date_naive(), "monitoring_ends"));
                }
            }
            _ => {
                if let Some(date) = state.go_live_date {
                    entries.push(entry(date.naive(), "go_live"));
                }
            }
        }
    }
    entries.sort_by(|a, b| (a.date, &a.customer).cmp(&(b.date, &b.customer)));
    entries
}
