//! Small pieces shared by the pages: labels, times, badges and one-line event descriptions.
//! Descriptions name what happened, never a secret: sealed values are "received".

use chrono::{DateTime, NaiveDateTime, Utc};
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

/// Parses a time typed into a form: RFC 3339, or a `datetime-local` value read as UTC.
pub fn parse_form_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc())
}

/// The value for a `datetime-local` input showing `at` (UTC).
pub fn form_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// One line saying what an event recorded, without secrets (see [`views::describe_event`]).
pub fn describe(event: &StoredEvent) -> String {
    views::describe_event(&event.event_type, &event.data)
}

pub fn block_badge(category: BlockCategory) -> Markup {
    html! { span class="badge badge-blocked" { "Blocked: " (category_label(category)) } }
}
