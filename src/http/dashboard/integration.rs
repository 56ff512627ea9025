//! The integration page: the customer intake link, facts, checklist, next steps (each a button
//! to the form that records it), diagnosis and advice, the rep's command forms (see
//! [`super::commands`]), delivery and probe health, the timeline with actor and time, and the
//! state as of a chosen UTC time.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::commands;
use super::render::{self, block_badge, stage_label, time};
use super::{error_page, layout, require_session, Live, Page};
use crate::auth::Role;
use crate::domain::{Diagnosis, IntakeLinkStatus, Integration, IntegrationId, Stage};
use crate::engine::{At, EngineError};
use crate::http::session::Session;
use crate::http::AppState;
use crate::store::StoredEvent;

/// Events shown in the timeline at most (the newest); the audit page pages through the rest.
const TIMELINE_MAX: usize = 500;

pub async fn integration_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Page {
    let (parts, _) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let Ok(id) = IntegrationId::parse(&id) else {
        return error_page(Some(&session), StatusCode::NOT_FOUND, &format!("There is no integration {id:?}."));
    };
    let at_text = params.get("at").map(|t| t.trim()).filter(|t| !t.is_empty());
    let at = match at_text.map(|text| render::parse_utc(text, true)) {
        Some(None) => {
            return error_page(
                Some(&session),
                StatusCode::BAD_REQUEST,
                &format!("{:?} is not a UTC time; use {}.", at_text.unwrap_or(""), render::UTC_FORMAT_HINT),
            )
        }
        Some(Some(at)) => Some(at),
        None => None,
    };
    let notice = match params.get("recorded").and_then(|r| commands::recorded_range(r)) {
        Some((from, to)) if at.is_none() => Notice::Recorded { from, to },
        _ => Notice::None,
    };
    render(&state, &session, id, at, notice, StatusCode::OK).await
}

/// What the page says above everything else: what a form just recorded, or why it was refused.
pub enum Notice<'a> {
    None,
    /// The events from version `from` (exclusive) to `to` (inclusive) were just recorded.
    Recorded {
        from: u64,
        to: u64,
    },
    /// A form of kind `kind` was refused: nothing was recorded.
    Refused {
        kind: &'a str,
        message: &'a str,
    },
}

/// The integration page, now or as of `at`, with `notice` on top.
pub async fn render(
    state: &AppState,
    session: &Session,
    id: IntegrationId,
    at: Option<DateTime<Utc>>,
    notice: Notice<'_>,
    status: StatusCode,
) -> Page {
    let not_found = || error_page(Some(session), StatusCode::NOT_FOUND, &format!("There is no integration {id}."));
    let now = state.engine.now();
    let current = match state.engine.state(id).await {
        Ok(current) => current,
        Err(EngineError::NotFound(_)) => return not_found(),
        Err(error) => return error_page(Some(session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let (shown, as_of) = match at {
        Some(at) if at < current.opened_at => {
            return error_page(
                Some(session),
                StatusCode::BAD_REQUEST,
                &format!(
                    "The integration was opened at {}; choose a later time.",
                    render::utc_form_value(current.opened_at)
                ),
            )
        }
        Some(at) if at < now => match state.engine.state_at(id, At::Time(at)).await {
            Ok(past) => (past, Some(at)),
            Err(error) => return error_page(Some(session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        },
        _ => ((*current).clone(), None),
    };
    let history = match state.engine.history(id, shown.version.saturating_sub(TIMELINE_MAX as u64), TIMELINE_MAX).await
    {
        Ok(history) => history,
        Err(error) => return error_page(Some(session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let head = match state.engine.store().head().await {
        Ok(head) => head.position,
        Err(error) => return error_page(Some(session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let moment = as_of.unwrap_or(now);
    let signals = match state.engine.delivery_signals(id).await {
        Ok(signals) => signals,
        Err(error) => return error_page(Some(session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    // Golive's messages about the integration live in a journal of their own (not in its
    // history); they are shown beside it, the latest first.
    let notifications = match state.engine.notification_journal(id).await {
        Ok(journal) => journal,
        Err(error) => return error_page(Some(session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let diagnosis = shown.diagnose(moment, &signals);
    let refused = signals.refused_deliveries;
    // Forms act on the present only, for those who may act, while commands are still taken.
    let can_act = as_of.is_none() && session.principal.role >= Role::Rep && !shown.is_cancelled();
    let refused_kind = match &notice {
        Notice::Refused { kind, .. } => Some(*kind),
        _ => None,
    };
    let content = html! {
        h1 { (shown.customer) }
        (notice_line(&notice, &history))
        @if let Some(at) = as_of {
            p class="notice" role="note" { "As it was at " (time(at)) " (version " (shown.version) "). " a href={ "/integrations/" (shown.id) } { "Back to now" } }
        }
        (intake_section(session, &shown, moment, as_of.is_none()))
        (facts(&shown))
        (as_of_form(&shown, as_of))
        div class="grid" {
            (checklist(&shown))
            div {
                (next_actions(&shown, moment, can_act))
                (diagnosis_section(&diagnosis))
            }
        }
        @if can_act {
            (commands::Forms { session, state: &shown, refused_kind }.render())
        } @else if as_of.is_none() && !shown.is_cancelled() {
            p class="notice" id="read-only" { "You can read this integration; a rep or an admin records its steps here." }
        }
        (checks_section(&shown, moment))
        (health(&shown, refused))
        div class="grid" {
            (timeline(&history))
            (notifications_section(&notifications))
        }
    };
    // The past does not change: only the present view follows the event stream. Neither does
    // the answer to a refused form: its address is the form's, which a refresh cannot fetch.
    let refused_form = matches!(notice, Notice::Refused { .. });
    let live = (as_of.is_none() && !refused_form).then(|| Live { after: head, integration: Some(id.to_string()) });
    Page::Html(status, layout(shown.customer.as_str(), Some(session), live, content))
}

/// The flash line after a form: what was recorded (in the timeline's words, never a secret),
/// or why nothing was.
fn notice_line(notice: &Notice<'_>, history: &[StoredEvent]) -> Markup {
    match notice {
        Notice::None => html! {},
        Notice::Recorded { from, to } => {
            let lines: Vec<String> =
                history.iter().filter(|e| e.version > *from && e.version <= *to).map(render::describe).collect();
            html! {
                @if !lines.is_empty() {
                    div class="flash" id="flash" role="status" {
                        p { strong { "Recorded:" } }
                        ul { @for line in &lines { li { (line) } } }
                    }
                }
            }
        }
        Notice::Refused { kind, message } => html! {
            div class="error" id="command-error" role="alert" {
                p { (message) }
                p { "Nothing was recorded. "
                    @if commands::is_form_kind(kind) { a href={ "#" (commands::form_anchor(kind)) } { "Back to the form" } } }
            }
        },
    }
}

fn facts(state: &Integration) -> Markup {
    html! {
        dl class="facts" {
            dt { "Stage" } dd id="stage" data-stage=(state.stage) { (stage_label(state.stage)) }
            dt { "Owner" } dd { (state.owner.as_ref().map(|o| o.as_str()).unwrap_or("unassigned")) }
            dt { "Instance" } dd { (state.facts.instance.gitlab_url) }
            dt { "Opened" } dd { (time(state.opened_at)) }
            dt { "In stage since" } dd { (time(state.stage_entered_at)) }
            dt { "Version" } dd id="version" { (state.version) }
            @if let Some(date) = &state.go_live_date { dt { "Go-live date" } dd { (date) } }
            @if let Some(m) = &state.monitoring {
                dt { "Monitoring" } dd { "until " (time(m.ends_at)) @if let Some(done) = m.completed_at { ", completed " (time(done)) } }
            }
            @if let Some(c) = &state.cancellation { dt { "Cancelled" } dd { (time(c.at)) ": " (c.reason) } }
            dt { "Id" } dd { code { (state.id) } }
        }
        @if let Some(block) = &state.block {
            p class="blocked-banner" { (block_badge(block.category)) " since " (time(block.since)) ": " (block.detail) }
        }
    }
}

fn as_of_form(state: &Integration, as_of: Option<DateTime<Utc>>) -> Markup {
    html! {
        form method="get" action={ "/integrations/" (state.id) } class="filters" aria-label="Show the state as of a time" {
            label for="as-of" { "State as of (UTC)" }
            input id="as-of" name="at" type="text" inputmode="numeric" autocomplete="off" size="22"
                placeholder=(render::UTC_PLACEHOLDER) aria-describedby="as-of-hint"
                value=[as_of.map(render::utc_form_value)];
            span id="as-of-hint" class="hint" { (render::UTC_FORMAT_HINT) }
            button type="submit" { "Show" }
        }
    }
}

fn checklist(state: &Integration) -> Markup {
    let items = state.checklist();
    let order: Vec<Stage> = Stage::ORDERED.into_iter().filter(|s| items.iter().any(|i| i.stage == *s)).collect();
    html! {
        section aria-labelledby="checklist-heading" {
            h2 id="checklist-heading" { "Checklist" }
            @for stage in order {
                h3 { "To reach " (stage_label(stage)) }
                ul class="checklist" {
                    @for item in items.iter().filter(|i| i.stage == stage) {
                        li class=(if item.met { "met" } else { "missing" }) data-requirement=(item.id) {
                            span class="mark" aria-hidden="true" { (if item.met { "✓" } else { "○" }) }
                            span class="visually-hidden" { (if item.met { "Met: " } else { "Missing: " }) }
                            (item.label)
                            @if let Some(reason) = &item.reason {
                                @if item.differs { " — " span class="reason" { (reason) } }
                            }
                            @if let Some(evidence) = &item.evidence {
                                " " span class="evidence"
                                    data-source=(serde_json::to_value(evidence.source).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                                    title={ (render::humanize(&evidence.event)) ", version " (evidence.version) } {
                                    "rests on " (evidence.source.describe()) ", " (time(evidence.at))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The next steps as buttons that jump to (and open) the form that records each.
///
/// Uses the state's `next_actions` (`{label, requirement_ids, cli, command}`, the contract's
/// shape, from [`crate::views::state`]) when the views provide them: an action with a command
/// becomes a button that opens its form and fills in what golive already knows (the command's
/// fields, carried in `data-prefill`). Otherwise it reads the domain's `next_steps` lines, each
/// naming its command in brackets.
fn next_actions(state: &Integration, now: DateTime<Utc>, can_act: bool) -> Markup {
    let view = crate::views::state(state, now);
    if let Some(actions) = view.get("next_actions").and_then(|a| a.as_array()) {
        return html! {
            section aria-labelledby="next-heading" {
                h2 id="next-heading" { "Next steps" }
                @if actions.is_empty() { p { "Nothing to do." } }
                @else {
                    ol id="next-steps" {
                        @for action in actions {
                            li {
                                (action.get("label").and_then(|l| l.as_str()).unwrap_or(""))
                                @if let (true, Some(command)) = (can_act, action.get("command").filter(|c| c.is_object())) {
                                    @let kind = command.get("type").and_then(|t| t.as_str()).unwrap_or("");
                                    @if commands::is_form_kind(kind) {
                                        " " span class="actions" { (commands::prefilled_button(kind, command)) }
                                    }
                                } @else if can_act && action.get("cli").and_then(|c| c.as_str()).is_some_and(|c| c.starts_with("golive probe ")) {
                                    // The probe is no v1 command (its action has none), but it has a form here.
                                    " " span class="actions" { (commands::jump_to_form(commands::PROBE)) }
                                } @else if can_act && action.get("cli").and_then(|c| c.as_str()).is_some_and(|c| c.starts_with("golive check ")) {
                                    // Neither are the checks through GitLab's API.
                                    " " span class="actions" { (commands::jump_to_form(commands::CHECK)) }
                                }
                                @if let Some(cli) = action.get("cli").and_then(|c| c.as_str()) {
                                    br; code class="cli" { (cli) }
                                }
                            }
                        }
                    }
                }
            }
        };
    }
    let steps = state.next_steps(now);
    html! {
        section aria-labelledby="next-heading" {
            h2 id="next-heading" { "Next steps" }
            @if steps.is_empty() { p { "Nothing to do." } }
            @else {
                ol id="next-steps" {
                    @for step in &steps {
                        li {
                            (step)
                            @if can_act {
                                @let kinds = commands::commands_named_in(step);
                                @if !kinds.is_empty() {
                                    " " span class="actions" { @for kind in kinds { (commands::jump_to_form(kind)) " " } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The runs of checks through GitLab's API: what each looked at and left unmet, and the test
/// deliveries of the latest with their round trips (live while a run is under way: the page
/// refreshes as its events arrive).
fn checks_section(state: &Integration, now: DateTime<Utc>) -> Markup {
    let under_way = state.check_under_way(now).map(|r| r.check_id);
    html! {
        section aria-labelledby="checks-heading" {
            h2 id="checks-heading" { "Checks through GitLab's API" }
            @if state.check_runs.is_empty() {
                p { "No check has run yet. " (commands::jump_to_form(commands::CHECK)) }
            } @else {
                @if under_way.is_some() {
                    p role="status" class="notice" id="check-under-way" {
                        "A run of checks is under way"
                        @let waiting: Vec<&str> = state.facts.test_deliveries.iter()
                            .filter(|(_, p)| Some(p.check_id) == under_way && p.received_at.is_none() && matches!(p.outcome, None | Some(crate::domain::TestRequestOutcome::Delivered)))
                            .map(|(t, _)| t.as_str()).collect();
                        @if !waiting.is_empty() { ": waiting for the test deliveries of " (waiting.join(", ")) }
                        "."
                    }
                }
                table {
                    thead { tr { th scope="col" { "Started" } th scope="col" { "Checks" } th scope="col" { "Finished" } th scope="col" { "Left unmet" } } }
                    tbody {
                        @for run in state.check_runs.iter().rev() {
                            tr {
                                td { (time(run.started_at)) }
                                td { (run.checks.iter().map(|c| c.as_str().replace('_', " ")).collect::<Vec<_>>().join(", ")) }
                                td { @if let Some(at) = run.finished_at { (time(at)) } @else if Some(run.check_id) == under_way { "under way" } @else { "stopped" } }
                                td {
                                    @if run.finished_at.is_some() && run.unmet.is_empty() && run.deliveries_missing.is_empty() && run.could_not_look.is_empty() { "nothing" }
                                    @if !run.could_not_look.is_empty() {
                                        "could not look: " (run.could_not_look.iter().map(|c| c.as_str().replace('_', " ")).collect::<Vec<_>>().join(", ")) " (see the diagnosis) "
                                    }
                                    (run.unmet.join(", "))
                                    @if !run.deliveries_missing.is_empty() {
                                        " deliveries never arrived: " (run.deliveries_missing.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
                                    }
                                }
                            }
                        }
                    }
                }
                @if !state.facts.test_deliveries.is_empty() {
                    h3 { "Test deliveries of the latest run that asked for them" }
                    ul {
                        @for (trigger, progress) in &state.facts.test_deliveries {
                            li data-trigger=(trigger.as_str()) {
                                (trigger.as_str()) ": "
                                @match &progress.outcome {
                                    None => "GitLab is being asked",
                                    Some(crate::domain::TestRequestOutcome::Delivered) => {
                                        @if let Some(seconds) = progress.round_trip_seconds() { "arrived " (format!("{seconds:.1}")) " s after GitLab was asked" }
                                        @else { "asked at " (time(progress.requested_at)) ", not arrived" }
                                    }
                                    Some(other) => span data-outcome=(other.word()) { (other.describe()) },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn diagnosis_section(diagnosis: &Diagnosis) -> Markup {
    html! {
        section aria-labelledby="diagnosis-heading" {
            h2 id="diagnosis-heading" { "Diagnosis" }
            @if diagnosis.findings.is_empty() { p { "No problem found." } }
            @else {
                ul class="findings" {
                    @for f in &diagnosis.findings {
                        li { strong { (render::humanize(f.category.as_str())) } ": " (f.message) br; span class="advice" { "Advice: " (f.advice) } }
                    }
                }
            }
        }
    }
}

fn health(state: &Integration, refused: u64) -> Markup {
    let facts = &state.facts;
    html! {
        section aria-labelledby="health-heading" {
            h2 id="health-heading" { "Delivery and probe health" }
            dl class="facts" {
                dt { "Webhook URL" } dd { (facts.webhook_credentials.as_ref().map(|c| c.webhook_url.as_str()).unwrap_or("not issued")) }
                dt { "Deliveries recorded" } dd id="deliveries" { (facts.deliveries.recorded) }
                dt { "Last delivery" } dd { @if let Some(at) = facts.deliveries.last_at { (time(at)) } @else { "never" } }
                dt { "Refused deliveries (bad token)" } dd { (refused) }
                dt { "Latest probe" }
                dd {
                    @if let Some(probe) = &facts.latest_probe {
                        (time(probe.at)) ": API " (if probe.result.api_reachable { "reachable" } else { "unreachable" })
                        @if let Some(c) = probe.result.category { ", " (render::humanize(c.as_str())) }
                        @if let Some(v) = &probe.result.gitlab_version { ", GitLab " (v) }
                        @if let Some(admin) = probe.result.admin { ", admin: " (if admin { "yes" } else { "no" }) }
                        @if let Some(d) = &probe.result.detail { " — " (d) }
                    } @else { "never probed" }
                }
                dt { "Consecutive probe failures" } dd { (facts.consecutive_probe_failures) }
                dt { "Application secret" } dd {
                    (received(facts.application_secret.as_ref().map(|s| s.secret.fingerprint.as_str())))
                    @if let Some(s) = &facts.application_secret { (bound_note(&s.bound_to, state.usable_application_secret().is_some())) }
                }
                dt { "Access token" } dd {
                    (received(facts.access_token.as_ref().map(|t| t.token.fingerprint.as_str())))
                    @if let Some(t) = &facts.access_token { (bound_note(&t.bound_to, state.usable_access_token().is_some())) }
                }
                @if let Some(at) = facts.secrets_shredded_at { dt { "Secrets shredded" } dd { (time(at)) } }
            }
        }
    }
}

fn received(fingerprint: Option<&str>) -> Markup {
    match fingerprint {
        Some(fp) => html! { "received (sealed; fingerprint " code { (fp) } ")" },
        None => html! { "not received" },
    }
}

fn intake_section(session: &Session, state: &Integration, now: DateTime<Utc>, present: bool) -> Markup {
    html! {
        section aria-labelledby="intake-heading" {
            h2 id="intake-heading" { "Customer intake" }
            p { "A one-time link where the customer enters the application ID and secret, the access token and its scopes. Secrets are sealed on arrival; nobody sees them here." }
            @if state.intake_links.is_empty() { p { "No link issued yet." } }
            @else {
                ul class="intake-links" {
                    @for link in &state.intake_links {
                        li {
                            "Issued " (time(link.issued_at)) ": "
                            @match link.status(now) {
                                IntakeLinkStatus::Open => { "open until " (time(link.expires_at)) }
                                IntakeLinkStatus::Redeemed => { strong { "used" } " " (time(link.redeemed_at.unwrap_or(link.issued_at))) }
                                IntakeLinkStatus::Expired => { "expired " (time(link.expires_at)) }
                            }
                        }
                    }
                }
            }
            @if present && session.principal.role >= Role::Rep && !state.is_cancelled() {
                form method="post" action={ "/integrations/" (state.id) "/intake-links" } class="filters" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="intake-hours" { "Link open for (hours)" }
                    input id="intake-hours" name="expires_in_hours" type="number" min="1" max=(crate::domain::INTAKE_LINK_MAX_HOURS) value="72";
                    button type="submit" { "Create intake link" }
                }
            }
        }
    }
}

fn timeline(history: &[StoredEvent]) -> Markup {
    html! {
        section aria-labelledby="timeline-heading" {
            h2 id="timeline-heading" { "Timeline" }
            ol class="timeline" id="timeline" reversed {
                @for e in history.iter().rev() {
                    li data-version=(e.version) data-type=(e.event_type) {
                        (time(e.recorded_at)) " · " span class="actor" { (e.actor) } " · " (render::describe(e))
                    }
                }
            }
            @if history.len() >= TIMELINE_MAX { p { "Older events: see the audit page." } }
        }
    }
}

/// The messages golive sent (or tried to send) about this integration, newest first.
fn notifications_section(journal: &[crate::engine::JournalEntry]) -> Markup {
    html! {
        section aria-labelledby="notifications-heading" {
            h2 id="notifications-heading" { "Notifications" }
            @if journal.is_empty() {
                p { "No notification about this integration yet." }
            } @else {
                ol class="timeline" id="notifications" reversed {
                    @for entry in journal.iter().rev().take(TIMELINE_MAX) {
                        li data-outcome=(entry.outcome) {
                            (time(entry.at)) " · " (entry.cause) " · " (entry.sink) " · "
                            strong { (entry.outcome) }
                            @if entry.attempt > 1 { " (attempt " (entry.attempt) ")" }
                            @if let Some(failure) = &entry.failure { ": " (failure) }
                            " — rule " (entry.rule_name)
                        }
                    }
                }
            }
        }
    }
}

/// Where a credential may be used, and a warning when that is no longer the instance of record.
fn bound_note(bound_to: &crate::domain::CredentialBinding, usable: bool) -> Markup {
    html! {
        @if usable {
            " — for " (bound_to.describe())
        } @else {
            " — " strong { "not usable" } ": it was given for " (bound_to.describe())
                ", not the current instance; ask the customer to provide it again"
        }
    }
}
