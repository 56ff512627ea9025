//! Small pieces shared by the pages: labels, times, badges and one-line event descriptions.
//! Descriptions name what happened, never a secret: sealed values are "received".

use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde_json::Value;

use crate::domain::{BlockCategory, Stage};
use crate::store::StoredEvent;

/// Every event type, so the live script can listen for each named SSE event.
pub const EVENT_TYPES: [&str; 35] = [
    "integration_opened",
    "prerequisites_confirmed",
    "application_registered",
    "application_secret_provided",
    "instance_url_set",
    "access_token_provided",
    "information_submitted",
    "network_policy_evaluated",
    "vpc_peering_established",
    "vpn_established",
    "firewall_configured",
    "webhook_credentials_issued",
    "webhook_created",
    "webhook_delivery_recorded",
    "api_check_recorded",
    "probe_result_recorded",
    "manual_test_recorded",
    "response_validated",
    "feedback_reported",
    "feedback_resolved",
    "go_live_scheduled",
    "stage_entered",
    "stage_regressed",
    "monitoring_started",
    "monitoring_completed",
    "owner_assigned",
    "note_added",
    "integration_blocked",
    "integration_unblocked",
    "credential_rotated",
    "integration_cancelled",
    "secret_revealed",
    "secrets_shredded",
    "intake_link_issued",
    "intake_redeemed",
];

pub fn stage_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Created => "Created",
        Stage::InfoGathered => "Info gathered",
        Stage::NetworkEstablished => "Network established",
        Stage::WebhookLive => "Webhook live",
        Stage::Tested => "Tested",
        Stage::Validated => "Validated",
        Stage::Live => "Live",
        Stage::Cancelled => "Cancelled",
    }
}

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

fn text(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One line saying what an event recorded, without secrets.
pub fn describe(event: &StoredEvent) -> String {
    let d = &event.data;
    match event.event_type.as_str() {
        "integration_opened" => format!("Opened for {} ({})", text(d, "customer"), text(d, "gitlab_url")),
        "application_registered" => format!("Application registered (ID {})", text(d, "application_id")),
        "application_secret_provided" => "Application secret received (sealed)".to_owned(),
        "access_token_provided" => {
            format!("Access token received (sealed), admin: {}", if d["admin"] == true { "yes" } else { "no" })
        }
        "instance_url_set" => format!("Instance URL set to {}", text(d, "gitlab_url")),
        "stage_entered" => format!("Entered {}", stage_name(&text(d, "stage"))),
        "stage_regressed" => {
            format!("Fell back from {} to {}", stage_name(&text(d, "from")), stage_name(&text(d, "to")))
        }
        "integration_blocked" => format!("Blocked ({}): {}", text(d, "category"), text(d, "detail")),
        "integration_unblocked" => format!("Unblocked: {}", text(d, "resolution")),
        "note_added" => format!("Note: {}", text(d, "text")),
        "owner_assigned" => format!("Owner set to {}", text(d, "owner")),
        "integration_cancelled" => format!("Cancelled: {}", text(d, "reason")),
        "go_live_scheduled" => format!("Go-live scheduled for {}", text(d, "date")),
        "feedback_reported" => format!("Feedback: {}", text(d, "summary")),
        "feedback_resolved" => format!("Feedback resolved: {}", text(d, "resolution")),
        "webhook_delivery_recorded" => {
            format!("Webhook delivery: {} {}", text(d, "event"), text(d, "action")).trim_end().to_owned()
        }
        "probe_result_recorded" => {
            if d["api_reachable"] == true {
                "Probe: API reachable".to_owned()
            } else {
                format!("Probe failed: {}", text(d, "category"))
            }
        }
        "manual_test_recorded" => {
            format!("Manual test {}: {}", text(d, "scenario"), if d["passed"] == true { "passed" } else { "failed" })
        }
        "response_validated" => format!(
            "Response to {} {}",
            text(d, "scenario"),
            if d["correct"] == true { "correct" } else { "incorrect" }
        ),
        "credential_rotated" => format!("Credential rotated: {}", text(d, "credential")),
        "secret_revealed" => format!("Secret revealed: {}", text(d, "kind")),
        "intake_link_issued" => format!("Customer intake link issued, expires {}", text(d, "expires_at")),
        "intake_redeemed" => "Customer submitted the intake form".to_owned(),
        other => humanize(other),
    }
}

fn stage_name(name: &str) -> &'static str {
    Stage::ORDERED
        .into_iter()
        .chain([Stage::Cancelled])
        .find(|s| s.as_str() == name)
        .map(stage_label)
        .unwrap_or("an unknown stage")
}

/// `webhook_created` → "Webhook created".
pub fn humanize(snake: &str) -> String {
    let spaced = snake.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub fn block_badge(category: BlockCategory) -> Markup {
    html! { span class="badge badge-blocked" { "Blocked: " (category_label(category)) } }
}
