//! Small pieces shared by the pages: labels, times, badges and one-line event descriptions.
//! Descriptions name what happened, never a secret: sealed values are "received".

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use maud::{html, Markup};

use crate::domain::BlockCategory;
use crate::store::StoredEvent;
use crate::views;
pub use crate::views::{humanize, stage_label};

pub fn category_label(category: BlockCategory) -> &'static str {
    match category {
        BlockCategory::ApiFailure => "API failure",
        BlockCategory::PermissionDenied => "Permission denied",
        BlockCategory::WebhookNotReceived => "Webhook not received",
        BlockCategory::Other => "Other",
    }
}

pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) } }
}

pub fn days(n: i64) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

/// How every time field of the dashboard is written, and what it shows: one UTC format.
pub const UTC_PLACEHOLDER: &str = "YYYY-MM-DDTHH:MM:SSZ";
pub const UTC_FORMAT_HINT: &str = "UTC, as 2026-03-01T14:30:00Z; a date alone also works";

/// The value a time field shows for `at`: what [`parse_utc`] reads back.
pub fn utc_form_value(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses a time typed into a form, always as UTC: RFC 3339 (`2026-03-01T14:30:00Z`, or with
/// an offset), the same without `Z` or seconds, a space for the `T`, or a date alone. A date
/// alone means the start of that day, or its last second when `date_means_end_of_day` (an
/// "until" or "as of" date includes the whole day, as the CLI reads `--until` and `--at`).
pub fn parse_utc(text: &str, date_means_end_of_day: bool) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let bare = text.strip_suffix('Z').or_else(|| text.strip_suffix(" UTC")).unwrap_or(text).replace(' ', "T");
    if let Some(t) =
        ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"].iter().find_map(|f| NaiveDateTime::parse_from_str(&bare, f).ok())
    {
        return Some(t.and_utc());
    }
    let date = NaiveDate::parse_from_str(&bare, "%Y-%m-%d").ok()?;
    let time = if date_means_end_of_day { NaiveTime::from_hms_opt(23, 59, 59)? } else { NaiveTime::MIN };
    Some(date.and_time(time).and_utc())
}

/// One line saying what an event recorded, without secrets (see [`views::describe_event`]).
pub fn describe(event: &StoredEvent) -> String {
    views::describe_event(&event.event_type, &event.data)
}

pub fn block_badge(category: BlockCategory) -> Markup {
    html! { span class="badge badge-blocked" { "Blocked: " (category_label(category)) } }
}
