//! The JSON shapes clients see (HTTP responses, `--json` output), built from domain states, and
//! the words people read for them (stage labels, one line per event).
//!
//! One place for them, so the CLI in local mode, the HTTP API and the dashboard say alike. No
//! secret reaches a view: sealed values appear only as their fingerprints, and an event's line
//! says a secret was "received", never what it was.

pub mod actions;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::{Integration, Stage};
use crate::secrets::ShownOnce;
use crate::store::StoredEvent;

/// The contract's state: `id, customer, owner, stage, version, redirect_uri, blocked,
/// checklist, next_steps, feedback[], monitoring`, plus a few conveniences.
pub fn state(state: &Integration, now: DateTime<Utc>) -> Value {
    let facts = &state.facts;
    json!({
        "id": state.id,
        "customer": state.customer,
        "owner": state.owner,
        "stage": state.stage,
        "version": state.version,
        "redirect_uri": state.playbook.redirect_uri,
        "gitlab_url": facts.instance.gitlab_url,
        "blocked": state.block.as_ref().map(|b| json!({
            "category": b.category,
            "detail": b.detail,
            "since": b.since,
            "cause": b.cause,
        })),
        "checklist": state.checklist(),
        "next_steps": state.next_steps(now),
        "next_actions": state.next_actions(now).iter().map(|a| actions::action(state, a)).collect::<Vec<_>>(),
        "recorded": recorded(state),
        "feedback": state.feedback,
        "monitoring": state.monitoring.as_ref().map(|m| json!({
            "started_at": m.started_at,
            "ends_at": m.ends_at,
            "completed_at": m.completed_at,
        })),
        "opened_at": state.opened_at,
        "stage_entered_at": state.stage_entered_at,
        "days_in_stage": state.days_in_stage(now),
        "last_progress_at": state.last_progress_at,
        "go_live_date": state.go_live_date,
        "cancelled": state.cancellation.as_ref().map(|c| json!({"reason": c.reason, "at": c.at, "from_stage": c.from_stage})),
        "playbook": {"id": state.playbook.id, "version": state.playbook.version},
        "secrets": {
            "application_secret": facts.application_secret.as_ref().map(|s| &s.secret.fingerprint),
            "access_token": facts.access_token.as_ref().map(|t| &t.token.fingerprint),
            // Where each credential may be used, and whether that is still the instance of record.
            "application_secret_bound_to": facts.application_secret.as_ref().map(|s| json!({
                "origin": s.bound_to.origin,
                "ca_fingerprint": s.bound_to.ca_fingerprint,
                "usable": state.usable_application_secret().is_some(),
            })),
            "access_token_bound_to": facts.access_token.as_ref().map(|t| json!({
                "origin": t.bound_to.origin,
                "ca_fingerprint": t.bound_to.ca_fingerprint,
                "usable": state.usable_access_token().is_some(),
            })),
            "webhook_signing_key": facts.webhook_credentials.as_ref().and_then(|c| c.signing_key.as_ref()).map(|s| &s.fingerprint),
            "shredded_at": facts.secrets_shredded_at,
        },
        "webhook": {
            "url": facts.webhook_credentials.as_ref().map(|c| &c.webhook_url),
            "deliveries_recorded": facts.deliveries.recorded,
            "last_delivery_at": facts.deliveries.last_at,
            "verified_delivery_at": facts.verified_delivery_at,
        },
        "latest_probe": facts.latest_probe,
        "check_runs": state.check_runs.iter().rev().map(|run| json!({
            "check_id": run.check_id,
            "checks": run.checks,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "under_way": state.check_under_way(now).is_some_and(|r| r.check_id == run.check_id),
            "unmet": run.unmet,
            "deliveries_missing": run.deliveries_missing,
            "could_not_look": run.could_not_look,
            "skipped": run.skipped,
        })).collect::<Vec<_>>(),
        "check_failures": facts.check_failures.iter().map(|(kind, (failure, at))| (kind.as_str().to_owned(), json!({
            "category": failure.category,
            "detail": failure.detail,
            "at": at,
        }))).collect::<serde_json::Map<String, Value>>(),
        "scenario_steps": facts.scenario_steps.iter().map(|(performed, at)| json!({
            "check_id": performed.check_id,
            "step": performed.step,
            "scenario": performed.scenario,
            "outcome": performed.outcome,
            "at": at,
        })).collect::<Vec<_>>(),
        "droid_comments_seen": facts.droid_comments_seen,
        "test_deliveries": facts.test_deliveries.iter().map(|(trigger, progress)| (trigger.as_str().to_owned(), json!({
            "check_id": progress.check_id,
            "hook": progress.location,
            "outcome": progress.outcome,
            "requested_at": progress.requested_at,
            "received_at": progress.received_at,
            "round_trip_seconds": progress.round_trip_seconds(),
        }))).collect::<serde_json::Map<String, Value>>(),
        "public_url": state.public_url,
        "intake_links": state.intake_links.iter().map(|link| json!({
            "link_id": link.link_id,
            "issued_at": link.issued_at,
            "expires_at": link.expires_at,
            "status": link.status(now),
        })).collect::<Vec<_>>(),
    })
}

/// The values recorded for the checklist, as a rep reads them: `[{item, value}]` in guide
/// order, only what has been recorded. Secrets appear as "provided" only.
pub fn recorded(state: &Integration) -> Value {
    let facts = &state.facts;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let list = |items: Vec<String>| if items.is_empty() { "none".to_owned() } else { items.join(", ") };
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &facts.prerequisites {
        rows.push((
            "Prerequisites",
            format!(
                "GitLab admin access: {}, network access: {}, Factory admin account: {}",
                yes_no(p.gitlab_admin_access),
                yes_no(p.network_access),
                yes_no(p.factory_admin_account)
            ),
        ));
    }
    if let Some(a) = &facts.application {
        rows.push(("Application name", a.name.to_string()));
        rows.push(("Application redirect URI", a.redirect_uri.to_string()));
        rows.push(("Application ID", a.application_id.to_string()));
        rows.push(("Application scopes", list(a.scopes.iter().map(|s| s.to_string()).collect())));
    }
    if facts.application_secret.is_some() {
        let usable = if state.usable_application_secret().is_some() { "" } else { " (for another instance)" };
        rows.push(("Application Secret", format!("provided{usable}")));
    }
    rows.push(("Instance URL", facts.instance.gitlab_url.to_string()));
    if let Some(t) = &facts.access_token {
        let usable = if state.usable_access_token().is_some() { "" } else { " (for another instance)" };
        rows.push(("Access token", format!("provided{usable}, admin: {}", yes_no(t.admin))));
    }
    if facts.information_submitted {
        rows.push(("Information", "submitted".to_owned()));
    }
    if let Some(p) = &facts.network_policy {
        rows.push(("Network barriers", list(p.barriers.iter().map(|b| b.to_string()).collect())));
    }
    match &facts.connectivity {
        Some(crate::domain::Connectivity::VpcPeering(p)) => rows.push((
            "VPC peering",
            format!(
                "{} between {} and {}, route tables configured: {}",
                p.peering_id.as_str(),
                p.customer_vpc_id.as_str(),
                p.factory_vpc_id.as_str(),
                yes_no(p.route_tables_configured)
            ),
        )),
        Some(crate::domain::Connectivity::Vpn(v)) => rows.push((
            "VPN",
            format!(
                "tunnel established: {}, IPsec compatible: {}",
                yes_no(v.tunnel_established),
                yes_no(v.ipsec_compatible)
            ),
        )),
        None => {}
    }
    if let Some(f) = &facts.firewall {
        rows.push((
            "Firewall",
            format!(
                "outbound HTTPS: {}, outbound SSH: {}, webhook endpoint reachable: {}",
                yes_no(f.outbound_https),
                yes_no(f.outbound_ssh),
                yes_no(f.webhook_endpoint_reachable)
            ),
        ));
    }
    if let Some(c) = &facts.webhook_credentials {
        rows.push(("Webhook URL issued", c.webhook_url.to_string()));
    }
    if let Some(w) = &facts.webhook {
        rows.push(("Webhook URL in GitLab", w.url.to_string()));
        rows.push(("Webhook triggers", list(w.triggers.iter().map(|t| t.as_str().to_owned()).collect())));
    }
    if let Some(e) = &facts.api_connectivity {
        let source = match e.source {
            crate::domain::EvidenceSource::Probe => "probe",
            crate::domain::EvidenceSource::ApiCheck => "API check",
            crate::domain::EvidenceSource::GitlabCheck => "check through GitLab's API",
        };
        rows.push((
            "API connectivity",
            format!(
                "{} by {source} at {}",
                if e.ok { "verified" } else { "failed" },
                e.at.format("%Y-%m-%d %H:%M UTC")
            ),
        ));
    }
    for (scenario, at) in &facts.scenarios_observed {
        rows.push(("Scenario observed", format!("{scenario} at {}", at.format("%Y-%m-%d %H:%M UTC"))));
    }
    for (scenario, correct) in &facts.validations {
        rows.push(("Response validated", format!("{scenario}: {}", if *correct { "correct" } else { "incorrect" })));
    }
    Value::Array(rows.into_iter().map(|(item, value)| json!({"item": item, "value": value})).collect())
}

/// A freshly issued intake link, shown once: `{url, link_id, expires_at, version}`.
pub fn intake_link_issued(issued: &crate::engine::IssuedIntakeLink) -> Value {
    json!({
        "url": issued.url,
        "link_id": issued.link_id,
        "expires_at": issued.expires_at,
        "version": issued.executed.state.version,
    })
}

/// The answer to a command: `{state, events}` and, once, the credentials it generated.
pub fn executed(state_view: Value, events: &[StoredEvent], shown: &ShownOnce, replayed: bool) -> Value {
    let mut out = json!({ "state": state_view, "events": events });
    if shown.webhook_url.is_some() {
        out["webhook_url"] = json!(shown.webhook_url);
        out["secret_token"] = json!(shown.secret_token);
        if replayed || shown.secret_token.is_none() {
            out["already_shown"] = json!(true);
        } else if shown.signing_key.is_some() {
            out["signing_key"] = json!(shown.signing_key);
        }
    }
    out
}

/// Stage names in board order, for tables.
pub fn stage_order() -> Vec<Stage> {
    Stage::ORDERED.into_iter().chain([Stage::Cancelled]).collect()
}

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

fn text(data: &Value, key: &str) -> String {
    match data.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// One line saying what an event recorded, without secrets: sealed values are "received".
/// From the payload as stored (any schema version), for the dashboard and the CLI's history.
pub fn describe_event(event_type: &str, d: &Value) -> String {
    match event_type {
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
        "public_url_changed" => format!("Public URL changed to {}", text(d, "public_url")),
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
        "gitlab_check_started" => {
            let checks: Vec<String> = d["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str())
                .map(|c| c.replace('_', " "))
                .collect();
            let writes: Vec<&str> = d["writes"].as_array().into_iter().flatten().filter_map(|w| w.as_str()).collect();
            let mut line = format!("Checks through GitLab's API started: {}", checks.join(", "));
            if !writes.is_empty() {
                line.push_str(&format!("; will {}", writes.join("; ")));
            }
            line
        }
        "application_checked" => {
            let finding = &d["finding"];
            match finding["outcome"].as_str() {
                Some("found") => {
                    let mark = |key: &str| if finding[key] == true { "matches" } else { "differs" };
                    format!(
                        "Application checked in GitLab: name {}, callback URL {}, confidential: {}",
                        mark("name_matches"),
                        mark("callback_url_matches"),
                        if finding["confidential"] == true { "yes" } else { "no" }
                    )
                }
                Some("not_found") => {
                    format!("Application checked: GitLab lists no application with ID {}", text(d, "application_id"))
                }
                _ => format!("Application check could not look ({})", text(finding, "category")),
            }
        }
        "webhook_checked" => {
            let finding = &d["finding"];
            match finding["outcome"].as_str() {
                Some("found") => {
                    let location = &finding["location"];
                    let place = match location["kind"].as_str() {
                        Some("group") => format!("group {} hook", text(location, "group_id")),
                        Some("project") => format!("project {} hook", text(location, "project_id")),
                        _ => "system hook".to_owned(),
                    };
                    let triggers: Vec<&str> =
                        finding["triggers"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
                    format!(
                        "Webhook found in GitLab ({place}): triggers {}; SSL verification {}",
                        if triggers.is_empty() { "none".to_owned() } else { triggers.join(", ") },
                        if finding["ssl_verification"] == true { "on" } else { "off" }
                    )
                }
                Some("not_found") => "Webhook checked: no hook in GitLab has the issued URL".to_owned(),
                _ => format!("Webhook check could not look ({})", text(finding, "category")),
            }
        }
        "test_delivery_requested" => format!("Asking GitLab for a test delivery of {}", text(d, "trigger")),
        "test_delivery_answered" => {
            let what = match serde_json::from_value::<crate::domain::TestRequestOutcome>(d["outcome"].clone()) {
                Ok(outcome) => outcome.describe(),
                Err(_) => "an answer golive cannot read".to_owned(),
            };
            format!("Test delivery of {}: {what}", text(d, "trigger"))
        }
        "scenario_step_performed" => {
            let outcome = &d["outcome"];
            let what = match outcome["outcome"].as_str() {
                Some("done") => match outcome["gitlab_id"].as_u64() {
                    Some(gitlab_id) => format!("done (GitLab id {gitlab_id})"),
                    None => "done".to_owned(),
                },
                Some("not_possible") => format!("not possible: {}", text(outcome, "reason")),
                Some("seen") => format!("the Droid commented after {} s", text(outcome, "seconds")),
                Some("not_seen") => "no comment by the Droid within the wait".to_owned(),
                _ => format!("failed ({})", text(outcome, "category")),
            };
            format!("Scenario run, {}: {what}", humanize(&text(d, "step")).to_lowercase())
        }
        "gitlab_check_finished" => {
            let unmet = d["unmet"].as_array().map_or(0, Vec::len);
            let missing: Vec<&str> =
                d["deliveries_missing"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
            let blind: Vec<&str> =
                d["could_not_look"].as_array().into_iter().flatten().filter_map(|c| c.as_str()).collect();
            let mut line = if !blind.is_empty() {
                format!(
                    "Checks finished: could not look ({}); {unmet} item(s) unmet",
                    blind.join(", ").replace('_', " ")
                )
            } else if unmet == 0 {
                "Checks finished: every item checked is met".to_owned()
            } else {
                format!("Checks finished: {unmet} item(s) unmet")
            };
            if !missing.is_empty() {
                line.push_str(&format!("; test deliveries never arrived: {}", missing.join(", ")));
            }
            line
        }
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
