//! Insights: what the event log knows about the onboarding process itself. Time spent in each
//! stage, onboardings opened and gone live per week, where they stall now, and the cumulative
//! flow (how many integrations sat in each stage at the end of each day).
//!
//! [`InsightsBuilder`] is a pure fold over the log, so the figures are reproducible from any
//! export. The read model keeps one folded up to its checkpoint (projected with the states,
//! saved and rebuilt with them), so [`Engine::insights`] costs the same at ten million events as
//! at a thousand: it waits for the checkpoint, copies the builder and computes the figures,
//! whose size grows with the integrations and their stage changes, not with the log.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use uuid::Uuid;

use super::codec::decode;
use super::read_model::{IntegrationSummary, ListFilter};
use super::{Engine, EngineError};
use crate::domain::{BlockCategory, Event, Stage};

/// How many empty weeks before the last one the weekly series fills in (ten years).
const EMPTY_WEEKS_FILLED_MAX: i64 = 10 * 53;

/// How many days of cumulative flow are drawn at most (older days are summed into the first).
pub const FLOW_DAYS_MAX: i64 = 180;

/// Durations of finished stints in one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTime {
    pub stage: Stage,
    /// Stints that ended by the integration entering another stage (forward or back). Stints
    /// still running, ended by cancellation, or passed through within one command (zero
    /// length) are not counted.
    pub finished: usize,
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekCount {
    /// The Monday (UTC) that starts the ISO week.
    pub week_start: NaiveDate,
    pub opened: u32,
    pub went_live: u32,
}

/// Where onboardings are stuck now: per stage, how many are stalled and how many blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StallCount {
    pub stage: Stage,
    pub active: u32,
    pub stalled: u32,
    pub blocked: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowDay {
    pub date: NaiveDate,
    /// Integrations in each stage at the end of `date` (UTC), in stage order, cancelled last.
    pub counts: Vec<(Stage, u32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Insights {
    pub generated_at: DateTime<Utc>,
    /// The log position the figures include.
    pub position: u64,
    pub integrations: u32,
    pub time_in_stage: Vec<StageTime>,
    pub weekly: Vec<WeekCount>,
    pub stalls: Vec<StallCount>,
    pub blocked_by_category: BTreeMap<BlockCategory, u32>,
    pub cumulative_flow: Vec<FlowDay>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Track {
    stage: Stage,
    since: DateTime<Utc>,
    /// (when, the stage entered from then on)
    changes: Vec<(DateTime<Utc>, Stage)>,
}

/// Folds events one by one; [`InsightsBuilder::finish`] computes the figures. It is part of
/// the read model, so it is saved and reloaded with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsightsBuilder {
    position: u64,
    tracks: BTreeMap<Uuid, Track>,
    /// Finished stints per stage, in whole seconds (chrono's durations have no serde form).
    stint_seconds: BTreeMap<Stage, Vec<i64>>,
    opened: BTreeMap<NaiveDate, u32>,
    went_live: BTreeMap<NaiveDate, u32>,
}

fn week_start(at: DateTime<Utc>) -> NaiveDate {
    let date = at.date_naive();
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

/// The value below which `q` of the sorted `values` lie, by the nearest-rank method
/// (rank ⌈q·n⌉), except the median of an even count, which is the mean of the middle two.
pub fn quantile_hours(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let hours = |d: &Duration| d.num_seconds() as f64 / 3600.0;
    let n = sorted.len();
    if q == 0.5 && n % 2 == 0 {
        return Some((hours(&sorted[n / 2 - 1]) + hours(&sorted[n / 2])) / 2.0);
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(hours(&sorted[rank - 1]))
}

impl InsightsBuilder {
    pub fn fold(&mut self, stream: Uuid, event: &Event, at: DateTime<Utc>, position: u64) {
        self.position = self.position.max(position);
        if let Event::IntegrationOpened { .. } = event {
            *self.opened.entry(week_start(at)).or_default() += 1;
            self.tracks.insert(stream, Track { stage: Stage::Created, since: at, changes: vec![(at, Stage::Created)] });
            return;
        }
        let Some(track) = self.tracks.get_mut(&stream) else { return };
        let entered = match event {
            Event::StageEntered { stage } => Some(*stage),
            Event::StageRegressed { to, .. } => Some(*to),
            Event::IntegrationCancelled { .. } => Some(Stage::Cancelled),
            _ => None,
        };
        if let Some(next) = entered {
            // A stage passed through within one command (entered and left at the same instant)
            // is not time spent in it; cancellation abandons a stint rather than finishing it.
            if next != Stage::Cancelled && at > track.since {
                self.stint_seconds.entry(track.stage).or_default().push((at - track.since).num_seconds());
            }
            if next == Stage::Live {
                *self.went_live.entry(week_start(at)).or_default() += 1;
            }
            track.stage = next;
            track.since = at;
            track.changes.push((at, next));
        }
    }

    /// The figures as of `now`; `current` (the read model's summaries) says where
    /// onboardings stand, with the same stalled rule as the board.
    pub fn finish(mut self, now: DateTime<Utc>, current: &[IntegrationSummary]) -> Insights {
        let time_in_stage = Stage::ORDERED
            .into_iter()
            .filter(|s| *s != Stage::Live)
            .map(|stage| {
                let mut stints: Vec<Duration> =
                    self.stint_seconds.remove(&stage).unwrap_or_default().into_iter().map(Duration::seconds).collect();
                stints.sort();
                StageTime {
                    stage,
                    finished: stints.len(),
                    median_hours: quantile_hours(&stints, 0.5),
                    p90_hours: quantile_hours(&stints, 0.9),
                }
            })
            .collect();

        let mut weeks: BTreeMap<NaiveDate, WeekCount> = BTreeMap::new();
        for (week, n) in &self.opened {
            weeks.entry(*week).or_insert(WeekCount { week_start: *week, opened: 0, went_live: 0 }).opened = *n;
        }
        for (week, n) in &self.went_live {
            weeks.entry(*week).or_insert(WeekCount { week_start: *week, opened: 0, went_live: 0 }).went_live = *n;
        }
        // Fill empty weeks up to the current one, so a chart's x axis is even and a quiet week
        // reads as zero instead of being absent.
        // The filling is bounded (ten years of weeks before the last one) and stops at the
        // calendar's end: an imported log with absurd times must not make a request run for
        // minutes or overflow the date type.
        if let (Some(first), Some(last)) = (weeks.keys().next().copied(), weeks.keys().last().copied()) {
            let last = last.max(week_start(now));
            let earliest_filled = last.checked_sub_signed(Duration::weeks(EMPTY_WEEKS_FILLED_MAX)).unwrap_or(first);
            let mut week = first.max(earliest_filled);
            while week <= last {
                weeks.entry(week).or_insert(WeekCount { week_start: week, opened: 0, went_live: 0 });
                match week.checked_add_signed(Duration::days(7)) {
                    Some(next) => week = next,
                    None => break,
                }
            }
        }

        let mut stalls: Vec<StallCount> = Stage::ORDERED
            .into_iter()
            .filter(|s| *s != Stage::Live)
            .map(|stage| StallCount { stage, active: 0, stalled: 0, blocked: 0 })
            .collect();
        let mut blocked_by_category = BTreeMap::new();
        for summary in current {
            if let Some(category) = summary.blocked {
                *blocked_by_category.entry(category).or_default() += 1;
            }
            if let Some(row) = stalls.iter_mut().find(|r| r.stage == summary.stage) {
                row.active += 1;
                row.stalled += u32::from(summary.stalled);
                row.blocked += u32::from(summary.blocked.is_some());
            }
        }

        Insights {
            generated_at: now,
            position: self.position,
            integrations: self.tracks.len() as u32,
            time_in_stage,
            weekly: weeks.into_values().collect(),
            stalls,
            blocked_by_category,
            cumulative_flow: self.flow(now),
        }
    }

    fn flow(&self, now: DateTime<Utc>) -> Vec<FlowDay> {
        let Some(first) = self.tracks.values().filter_map(|t| t.changes.first()).map(|(at, _)| at.date_naive()).min()
        else {
            return Vec::new();
        };
        let today = now.date_naive();
        let first = first.max(today - Duration::days(FLOW_DAYS_MAX - 1));
        let order: Vec<Stage> = Stage::ORDERED.into_iter().chain([Stage::Cancelled]).collect();
        let mut days = Vec::new();
        let mut date = first;
        while date <= today {
            let end_of_day = date.and_hms_opt(23, 59, 59).expect("valid time").and_utc();
            let mut counts: Vec<(Stage, u32)> = order.iter().map(|s| (*s, 0)).collect();
            for track in self.tracks.values() {
                let stage = track.changes.iter().take_while(|(at, _)| *at <= end_of_day).last().map(|(_, s)| *s);
                if let Some(stage) = stage {
                    if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == stage) {
                        slot.1 += 1;
                    }
                }
            }
            days.push(FlowDay { date, counts });
            date += Duration::days(1);
        }
        days
    }
}

impl Engine {
    /// The insights as of now, from the read model's projection (see the module's header).
    pub async fn insights(&self) -> Result<Insights, EngineError> {
        let current = self.list(&ListFilter::default()).await?;
        let builder = self.projection().read(|model| model.insights.clone());
        Ok(builder.finish(self.now(), &current))
    }

    /// The insights folded from the whole log, as before the projection: the baseline of the
    /// benchmark and the check of the projection in the tests.
    pub async fn insights_from_the_whole_log(&self) -> Result<Insights, EngineError> {
        let head = self.store().head().await?.position;
        let mut builder = InsightsBuilder::default();
        let mut after = 0;
        loop {
            let page = self.store().read_all(after, 2048).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for stored in &page {
                if stored.position > head {
                    break;
                }
                let event = decode(stored)?;
                builder.fold(stored.integration_id, &event, stored.recorded_at, stored.position);
            }
            if after >= head {
                break;
            }
        }
        let current = self.list(&ListFilter::default()).await?;
        Ok(builder.finish(self.now(), &current))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{HttpUrl, IntegrationId, Playbook, ShortText};

    fn opened(id: Uuid) -> Event {
        let url = HttpUrl::parse("https://gitlab.example").unwrap();
        Event::IntegrationOpened {
            integration_id: IntegrationId::from_uuid(id),
            customer: ShortText::parse("Hooli").unwrap(),
            gitlab_url: url.clone(),
            owner: None,
            playbook: Playbook::guide_default(url),
            ca_certificate_pem: None,
            public_url: None,
        }
    }

    /// An imported log may carry absurd times (the chain proves who wrote them, not that they
    /// are sane): the weekly series stays bounded and the calendar's ends do not overflow.
    #[test]
    fn absurd_times_give_a_bounded_weekly_series() {
        let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let far_past = Utc.with_ymd_and_hms(-200_000, 1, 1, 0, 0, 0).unwrap();
        let far_future = Utc.with_ymd_and_hms(262_142, 12, 31, 23, 59, 59).unwrap();
        let mut builder = InsightsBuilder::default();
        for (position, at) in [far_past, now, far_future].into_iter().enumerate() {
            let id = Uuid::from_u128(position as u128 + 1);
            builder.fold(id, &opened(id), at, position as u64 + 1);
        }
        let insights = builder.finish(now, &[]);
        assert!(insights.weekly.len() <= EMPTY_WEEKS_FILLED_MAX as usize + 3, "{} weeks", insights.weekly.len());
        assert_eq!(insights.weekly.iter().map(|w| w.opened).sum::<u32>(), 3, "every opening still counted");
        assert!(insights.cumulative_flow.len() <= FLOW_DAYS_MAX as usize);
    }
}
