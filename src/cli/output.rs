//! Terminal output: JSON with `--json`, readable tables otherwise.

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::Value;

pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values print"));
}

pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table
}

/// The `next:` lines of a state: each a command the rep can run as it stands (the reference as
/// they typed it), its label below. At most `limit` of them, then how many more.
fn next_lines(state: &Value, reference: &str, limit: usize) {
    let full_id = state["id"].as_str().unwrap_or_default();
    let actions: Vec<&Value> = state["next_actions"].as_array().into_iter().flatten().collect();
    for action in actions.iter().take(limit) {
        let cli = action["cli"].as_str().unwrap_or_default();
        let line = crate::views::actions::with_reference(cli, full_id, reference);
        let line: String = line.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
        println!("next: {line}");
        // A label may quote what someone typed: one line of it, without control characters, so
        // that no typed text poses as a suggested command (the server's labels are one line
        // already; a client cannot trust that of every server).
        let label = text(&action["label"]);
        let label: String = label.lines().next().unwrap_or_default().chars().filter(|c| !c.is_control()).collect();
        println!("      {label}");
    }
    if actions.len() > limit {
        println!("({} more: golive status {})", actions.len() - limit, shell_quote(reference));
    }
}

/// The unmet checklist items whose record differs from what the guide expects, with the reason.
fn differences(state: &Value) {
    for item in state["checklist"].as_array().into_iter().flatten() {
        if item["met"] == Value::Bool(false) && item["differs"] == Value::Bool(true) {
            println!("unmet: {} — {}", text(&item["label"]), text(&item["reason"]));
        }
    }
}

/// After a command: what was recorded, the new stage, any credentials shown once, what the
/// record leaves unmet and why, and the next commands (the reference as the rep typed it).
pub fn command_result(result: &Value, reference: &str, json: bool) {
    if json {
        print_json(result);
        return;
    }
    let state = &result["state"];
    let types: Vec<&str> =
        result["events"].as_array().into_iter().flatten().filter_map(|e| e["type"].as_str()).collect();
    println!("recorded: {}", if types.is_empty() { "nothing new (a repeat)".to_owned() } else { types.join(", ") });
    println!("stage: {} (version {})", text(&state["stage"]), text(&state["version"]));
    if let Some(url) = result["webhook_url"].as_str() {
        println!("webhook URL: {url}");
        match result["secret_token"].as_str() {
            Some(token) => println!("secret token (shown once, paste it into GitLab now): {token}"),
            None => println!("secret token: already shown"),
        }
        if let Some(key) = result["signing_key"].as_str() {
            println!("signing key (shown once): {key}");
        }
    }
    differences(state);
    next_lines(state, reference, 3);
}

pub fn list(list: &Value, json: bool) {
    if json {
        return print_json(list);
    }
    let mut t = table(&["ID", "CUSTOMER", "STAGE", "OWNER", "DAYS", "BLOCKED", "NEXT STEP"]);
    for s in list.as_array().into_iter().flatten() {
        let stalled = if s["stalled"] == Value::Bool(true) { " (stalled)" } else { "" };
        t.add_row(vec![
            text(&s["id"]),
            text(&s["customer"]),
            text(&s["stage"]),
            text(&s["owner"]),
            format!("{}{stalled}", text(&s["days_in_stage"])),
            text(&s["blocked"]),
            text(&s["next_step"]),
        ]);
    }
    println!("{t}");
}

/// An integration's feedback items: open ones first (oldest first), then, with `all`, the
/// resolved ones.
pub fn feedback(items: &Value, all: bool, json: bool) {
    let items: Vec<&Value> = items.as_array().into_iter().flatten().collect();
    let is_open = |item: &&Value| item["resolved_at"].is_null();
    let mut shown: Vec<&Value> = items.iter().copied().filter(is_open).collect();
    if all {
        shown.extend(items.iter().copied().filter(|item| !is_open(item)));
    }
    if json {
        return print_json(&Value::Array(shown.into_iter().cloned().collect()));
    }
    if shown.is_empty() {
        println!("{}", if all { "no feedback items" } else { "no open feedback items (--all for the resolved ones)" });
        return;
    }
    let mut t = table(&["FEEDBACK ID", "STATE", "REPORTED", "SCENARIO", "SUMMARY", "RESOLUTION"]);
    for item in shown {
        t.add_row(vec![
            text(&item["id"]),
            if is_open(&item) { "open".to_owned() } else { "resolved".to_owned() },
            text(&item["reported_at"]),
            text(&item["scenario"]),
            text(&item["summary"]),
            text(&item["resolution"]),
        ]);
    }
    println!("{t}");
}

pub fn status(state: &Value, diagnosis: &Value, reference: &str, json: bool) {
    if json {
        let mut out = state.clone();
        out["diagnosis"] = diagnosis.clone();
        return print_json(&out);
    }
    println!("{} — {}", text(&state["customer"]), text(&state["id"]));
    println!(
        "stage: {} for {} days · owner {} · version {}",
        text(&state["stage"]),
        text(&state["days_in_stage"]),
        text(&state["owner"]),
        text(&state["version"])
    );
    if let Some(block) = state["blocked"].as_object() {
        println!("BLOCKED ({}): {}", text(&block["category"]), text(&block["detail"]));
    }
    let recorded: Vec<&Value> = state["recorded"].as_array().into_iter().flatten().collect();
    if !recorded.is_empty() {
        let mut t = table(&["RECORDED", "VALUE"]);
        for row in recorded {
            t.add_row(vec![text(&row["item"]), text(&row["value"])]);
        }
        println!("{t}");
    }
    let mut t = table(&["", "REQUIREMENT", "RESTS ON", "WHY UNMET", "ID"]);
    for item in state["checklist"].as_array().into_iter().flatten() {
        let met = item["met"] == Value::Bool(true);
        let why = if met { String::new() } else { text(&item["reason"]) };
        let rests_on = if item["evidence"].is_null() { String::new() } else { rests_on(&item["evidence"]).to_owned() };
        t.add_row(vec![if met { "✓" } else { "✗" }.to_owned(), text(&item["label"]), rests_on, why, text(&item["id"])]);
    }
    println!("{t}");
    next_lines(state, reference, usize::MAX);
    for finding in diagnosis["findings"].as_array().into_iter().flatten() {
        println!("{}: {} — {}", text(&finding["category"]), text(&finding["message"]), text(&finding["advice"]));
    }
}

pub fn board(board: &Value, json: bool) {
    if json {
        return print_json(board);
    }
    for column in board.as_array().into_iter().flatten() {
        println!("{} ({})", text(&column["stage"]), text(&column["count"]));
        for s in column["integrations"].as_array().into_iter().flatten() {
            let mut marks = Vec::new();
            if !s["blocked"].is_null() {
                marks.push(format!("BLOCKED {}", text(&s["blocked"])));
            }
            if s["stalled"] == Value::Bool(true) {
                marks.push("STALLED".to_owned());
            }
            println!(
                "  {:<28} {:<14} {:>3}d  {}",
                text(&s["customer"]),
                text(&s["owner"]),
                text(&s["days_in_stage"]),
                marks.join(" ")
            );
        }
    }
}

pub fn calendar(calendar: &Value, json: bool) {
    if json {
        return print_json(calendar);
    }
    let mut t = table(&["DATE", "WHAT", "CUSTOMER", "OWNER", "STAGE"]);
    for e in calendar.as_array().into_iter().flatten() {
        t.add_row(vec![text(&e["date"]), text(&e["kind"]), text(&e["customer"]), text(&e["owner"]), text(&e["stage"])]);
    }
    println!("{t}");
}

fn hours(value: &Value) -> String {
    value.as_f64().map(|h| format!("{h:.1} h")).unwrap_or_else(|| "-".to_owned())
}

pub fn insights(insights: &Value, json: bool) {
    if json {
        return print_json(insights);
    }
    let count = insights["integrations"].as_u64().unwrap_or(0);
    let noun = if count == 1 { "onboarding" } else { "onboardings" };
    println!("{count} {noun} (log position {})", text(&insights["position"]));
    println!("\nTime in each stage (finished stages only):");
    let mut t = table(&["STAGE", "FINISHED", "MEDIAN", "P90"]);
    for row in insights["time_in_stage"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&row["stage"]),
            text(&row["finished"]),
            hours(&row["median_hours"]),
            hours(&row["p90_hours"]),
        ]);
    }
    println!("{t}");
    println!("\nPer week:");
    let mut t = table(&["WEEK OF", "OPENED", "GONE LIVE"]);
    for row in insights["weekly"].as_array().into_iter().flatten() {
        t.add_row(vec![text(&row["week_start"]), text(&row["opened"]), text(&row["went_live"])]);
    }
    println!("{t}");
    println!("\nWhere onboardings stand now:");
    let mut t = table(&["STAGE", "IN STAGE", "STALLED", "BLOCKED"]);
    for row in insights["stalls"].as_array().into_iter().flatten() {
        t.add_row(vec![text(&row["stage"]), text(&row["active"]), text(&row["stalled"]), text(&row["blocked"])]);
    }
    println!("{t}");
}

/// A page of events: when (to the second, UTC), who, and what each recorded in words; the
/// integration too where the page spans several (audit).
pub fn events(events: &Value, json: bool, with_integration: bool) {
    if json {
        return print_json(events);
    }
    let mut header = vec!["POS", "VERSION", "RECORDED (UTC)", "ACTOR", "EVENT"];
    if with_integration {
        header.push("INTEGRATION");
    }
    let mut t = table(&header);
    for e in events.as_array().into_iter().flatten() {
        let recorded = utc_time(&e["recorded_at"]).trim_end_matches(" UTC").to_owned();
        let mut row = vec![
            text(&e["position"]),
            text(&e["version"]),
            recorded,
            text(&e["actor"]),
            crate::views::describe_event(e["type"].as_str().unwrap_or_default(), &e["data"]),
        ];
        if with_integration {
            row.push(text(&e["integration_id"]));
        }
        t.add_row(row);
    }
    println!("{t}");
}

pub fn diagnosis(diagnosis: &Value, json: bool) {
    if json {
        return print_json(diagnosis);
    }
    println!("stage: {}", text(&diagnosis["stage"]));
    for m in diagnosis["missing"].as_array().into_iter().flatten() {
        println!("missing: {} ({})", text(&m["label"]), text(&m["id"]));
    }
    for f in diagnosis["findings"].as_array().into_iter().flatten() {
        println!("{}: {}\n  → {}", text(&f["category"]), text(&f["message"]), text(&f["advice"]));
    }
}

pub fn tokens(tokens: &Value, json: bool) {
    if json {
        return print_json(tokens);
    }
    let mut t = table(&["NAME", "ROLE", "CREATED", "BY", "REVOKED"]);
    for k in tokens.as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&k["name"]),
            text(&k["role"]),
            text(&k["created_at"]),
            text(&k["created_by"]),
            text(&k["revoked_at"]),
        ]);
    }
    println!("{t}");
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events ({per_sec}, {eta} left)")
            .expect("a valid template"),
    );
    bar
}

/// A spinner on stderr with a message (hidden when stderr is not a terminal).
pub fn spinner() -> indicatif::ProgressBar {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}

/// What a checklist item's evidence rests on, in words.
fn rests_on(evidence: &Value) -> &'static str {
    match evidence["source"].as_str() {
        Some("rep") => "the rep's word",
        Some("customer_intake") => "the customer's intake",
        Some("gitlab_api") => "GitLab's API",
        Some("gitlab_delivery") => "a GitLab delivery",
        Some("golive") => "golive",
        _ => "nothing recorded",
    }
}

/// What a run of checks found, item by item, in golive's words; the items it left unmet with
/// why; the test deliveries and their round trips.
pub fn check_result(result: &Value) {
    let run = &result["run"];
    let state = &result["state"];
    let checks: Vec<&str> = run["checks"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!("check {} ({})", text(&result["check_id"]), checks.join(", ").replace('_', " "));
    // The items each check looks at.
    let looked_at = |id: &str| {
        let check = match id {
            "info.application_registered" => "application",
            "webhook.created_with_issued_url" | "webhook.triggers" => "webhook",
            "webhook.delivery_verified" => "test_deliveries",
            id if id.starts_with("testing.scenario_observed.") => "scenarios",
            _ => return false,
        };
        checks.contains(&check)
    };
    for item in state["checklist"].as_array().into_iter().flatten() {
        if !looked_at(item["id"].as_str().unwrap_or("")) {
            continue;
        }
        let source = rests_on(&item["evidence"]);
        if item["met"] == true {
            println!("  met    {} (rests on {source})", text(&item["label"]));
        } else {
            println!("  unmet  {} — {}", text(&item["label"]), text(&item["reason"]));
        }
    }
    for kind in run["could_not_look"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let failure = &state["check_failures"][kind];
        let why = if failure.is_null() { "see golive diagnose".to_owned() } else { text(&failure["detail"]) };
        println!("  could not look  {}: {why}", kind.replace('_', " "));
    }
    for kind in run["skipped"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let why =
            if kind == "application" { "no Application ID recorded yet" } else { "no webhook credentials issued yet" };
        println!("  skipped  {}: {why}", kind.replace('_', " "));
    }
    for step in state["scenario_steps"].as_array().into_iter().flatten() {
        if step["check_id"] != result["check_id"] {
            continue;
        }
        let outcome = &step["outcome"];
        let line = match outcome["outcome"].as_str() {
            Some("done") => "done".to_owned(),
            Some("not_possible") => format!("not possible: {}", text(&outcome["reason"])),
            Some("seen") => format!("the Droid commented after {} s", text(&outcome["seconds"])),
            Some("not_seen") => "no comment by the Droid within the wait".to_owned(),
            _ => format!("failed: {}", text(&outcome["detail"])),
        };
        let scenario = step["scenario"].as_str().map(|s| format!(" ({s})")).unwrap_or_default();
        println!("  scenario run {}{scenario}: {line}", text(&step["step"]).replace('_', " "));
    }
    let deliveries = state["test_deliveries"].as_object();
    for (trigger, progress) in deliveries.into_iter().flatten() {
        if progress["check_id"] != result["check_id"] {
            continue;
        }
        let outcome = serde_json::from_value::<crate::domain::TestRequestOutcome>(progress["outcome"].clone()).ok();
        let line = match outcome {
            None => "GitLab did not answer the request".to_owned(),
            Some(crate::domain::TestRequestOutcome::Delivered) => match progress["round_trip_seconds"].as_f64() {
                Some(seconds) => format!("delivered, arrived after {seconds:.1} s"),
                None => "GitLab says it was sent; it never arrived at golive".to_owned(),
            },
            Some(other) => other.describe(),
        };
        println!("  test delivery {trigger}: {line}");
    }
}

pub use crate::views::actions::shell_quote;

/// An RFC 3339 time as people read it: `2026-11-30 14:05:09 UTC`, to the second.
pub fn utc_time(value: &Value) -> String {
    value
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| text(value))
}

/// An integration's intake links, newest first; never the link itself (golive keeps only its
/// digest).
pub fn intake_links(links: &Value, json: bool) {
    if json {
        return print_json(links);
    }
    let mut links: Vec<&Value> = links.as_array().into_iter().flatten().collect();
    if links.is_empty() {
        println!("no intake links (golive intake create REF issues one)");
        return;
    }
    links.reverse();
    let mut t = table(&["LINK ID", "ISSUED", "EXPIRES", "STATUS"]);
    for link in links {
        t.add_row(vec![
            text(&link["link_id"]),
            utc_time(&link["issued_at"]),
            utc_time(&link["expires_at"]),
            text(&link["status"]),
        ]);
    }
    println!("{t}");
}
