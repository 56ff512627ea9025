//! The board (`/`): a column per stage with a card per integration, filters, counts and the
//! go-live calendar; and the audit page (`/audit`): the cross-integration query, newest first,
//! paged backwards through the log, naming each integration by its customer.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use maud::{html, Markup};

use super::render::{self, block_badge, days, stage_label, time};
use super::{error_page, layout, require_session, Live, Page};
use crate::engine::{board, IntegrationSummary, ListFilter};
use crate::http::AppState;
use crate::store::StoredEvent;

type Params = Query<HashMap<String, String>>;

fn card(summary: &IntegrationSummary) -> Markup {
    let mut class = String::from("card");
    if summary.stalled {
        class.push_str(" card-stalled");
    }
    if summary.blocked.is_some() {
        class.push_str(" card-blocked");
    }
    html! {
        li class=(class) data-integration=(summary.id) {
            h3 { a href={ "/integrations/" (summary.id) } { (summary.customer) } }
            p class="meta" { "Owner: " (summary.owner.as_deref().unwrap_or("unassigned")) }
            p class="meta" { (days(summary.days_in_stage)) " in stage" }
            @if let Some(category) = summary.blocked { p { (block_badge(category)) } }
            @if summary.stalled {
                p { span class="badge badge-stalled" { "Stalled: no progress for " (days(summary.days_since_progress)) } }
            }
            @if let Some(next) = &summary.next_step { p class="next" { "Next: " (next) } }
        }
    }
}

pub async fn board_page(State(state): State<AppState>, Query(params): Params, request: Request) -> Page {
    let (parts, _) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let owner = params.get("owner").map(|o| o.trim()).filter(|o| !o.is_empty()).map(str::to_owned);
    let search = params.get("q").map(|q| q.trim().to_lowercase()).unwrap_or_default();
    let head = match state.engine.store().head().await {
        Ok(head) => head.position,
        Err(error) => return error_page(Some(&session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let everyone = ListFilter::default();
    let (all, calendar) = match tokio::try_join!(state.engine.list(&everyone), state.engine.calendar()) {
        Ok(both) => both,
        Err(error) => return error_page(Some(&session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let owners: BTreeSet<String> = all.iter().filter_map(|s| s.owner.clone()).collect();
    let shown: Vec<IntegrationSummary> = all
        .into_iter()
        .filter(|s| owner.as_ref().is_none_or(|o| s.owner.as_deref() == Some(o.as_str())))
        .filter(|s| {
            search.is_empty()
                || s.customer.to_lowercase().contains(&search)
                || s.owner.as_deref().is_some_and(|o| o.to_lowercase().contains(&search))
                || s.id.to_string().contains(&search)
        })
        .collect();
    let total = shown.len();
    let stalled = shown.iter().filter(|s| s.stalled).count();
    let blocked = shown.iter().filter(|s| s.blocked.is_some()).count();
    let columns = board(shown);
    let content = html! {
        h1 { "Onboardings" }
        form method="get" action="/" class="filters" role="search" aria-label="Filter the board" {
            label for="filter-owner" { "Owner" }
            select id="filter-owner" name="owner" {
                option value="" selected[owner.is_none()] { "Everyone" }
                @for o in &owners { option value=(o) selected[owner.as_deref() == Some(o.as_str())] { (o) } }
            }
            label for="filter-q" { "Search" }
            input id="filter-q" type="search" name="q" value=(params.get("q").map(String::as_str).unwrap_or(""))
                placeholder="customer, owner or id";
            button type="submit" { "Filter" }
            @if owner.is_some() || !search.is_empty() { a href="/" { "Clear" } }
        }
        p class="summary" id="board-summary" {
            (total) " shown · " (stalled) " stalled · " (blocked) " blocked"
        }
        ul class="counts" aria-label="Integrations per stage" {
            @for column in &columns {
                li { span class="count-stage" { (stage_label(column.stage)) } " " strong class="count" data-stage=(column.stage) { (column.count) } }
            }
        }
        div class="board" tabindex="0" role="region" aria-label="Stages, left to right (scrolls sideways)" {
            @for column in &columns {
                section class="column" aria-labelledby={ "col-" (column.stage) } data-stage=(column.stage) {
                    h2 id={ "col-" (column.stage) } { (stage_label(column.stage)) " " span class="count" { "(" (column.count) ")" } }
                    @if column.integrations.is_empty() { p class="empty" { "None" } }
                    @else { ul class="cards" { @for s in &column.integrations { (card(s)) } } }
                }
            }
        }
        section aria-labelledby="calendar-heading" {
            h2 id="calendar-heading" { "Go-live calendar" }
            @if calendar.is_empty() { p { "Nothing scheduled." } }
            @else {
                table class="calendar" {
                    caption class="visually-hidden" { "Scheduled go-lives and monitoring ends" }
                    thead { tr { th scope="col" { "Date" } th scope="col" { "What" } th scope="col" { "Customer" } th scope="col" { "Owner" } th scope="col" { "Stage" } } }
                    tbody {
                        @for entry in &calendar {
                            tr {
                                td { (entry.date) }
                                td { (if entry.kind == "go_live" { "Go-live" } else { "Monitoring ends" }) }
                                td { a href={ "/integrations/" (entry.id) } { (entry.customer) } }
                                td { (entry.owner.as_deref().unwrap_or("unassigned")) }
                                td { (stage_label(entry.stage)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Page::Html(StatusCode::OK, layout("Board", Some(&session), Some(Live { after: head, integration: None }), content))
}

/// Events shown per audit page.
const AUDIT_PAGE_SIZE: usize = 50;
/// Positions read per step while walking the log backwards.
const AUDIT_WINDOW: u64 = 1024;

/// What the audit page filters on.
#[derive(Default)]
struct AuditFilter {
    actor: Option<String>,
    event_type: Option<String>,
    integration: Option<uuid::Uuid>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl AuditFilter {
    fn keeps(&self, event: &StoredEvent) -> bool {
        self.actor.as_ref().is_none_or(|a| *a == event.actor)
            && self.event_type.as_ref().is_none_or(|t| *t == event.event_type)
            && self.integration.is_none_or(|i| i == event.integration_id)
            && self.since.is_none_or(|s| event.recorded_at >= s)
            && self.until.is_none_or(|u| event.recorded_at <= u)
    }
}

/// The newest `limit` events before position `before` that `filter` keeps, newest first, and
/// whether older ones remain. Walks the log backwards in windows (positions have no gaps), so
/// the first page costs a window, not the whole log.
async fn newest_first(
    state: &AppState,
    filter: &AuditFilter,
    before: u64,
    limit: usize,
) -> Result<(Vec<StoredEvent>, bool), crate::engine::EngineError> {
    let mut found = Vec::new();
    let mut upper = before; // exclusive
    while upper > 1 {
        let lower = upper.saturating_sub(AUDIT_WINDOW).max(1); // inclusive
        let window = state
            .engine
            .store()
            .read_all(lower - 1, (upper - lower) as usize)
            .await
            .map_err(crate::engine::EngineError::from)?;
        for event in window.into_iter().rev().filter(|e| e.position < upper) {
            if filter.keeps(&event) {
                if found.len() == limit {
                    return Ok((found, true));
                }
                found.push(event);
            }
        }
        upper = lower;
    }
    Ok((found, false))
}

pub async fn audit_page(State(state): State<AppState>, Query(params): Params, request: Request) -> Page {
    let (parts, _) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let get = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let mut filter = AuditFilter {
        actor: get("actor").map(str::to_owned),
        event_type: get("type").map(str::to_owned),
        ..AuditFilter::default()
    };
    if let Some(text) = get("integration") {
        match uuid::Uuid::parse_str(text) {
            Ok(id) => filter.integration = Some(id),
            Err(_) => errors.push(format!("Integration {text:?} is not an integration id.")),
        }
    }
    for (name, slot, end_of_day) in [("since", &mut filter.since, false), ("until", &mut filter.until, true)] {
        if let Some(text) = get(name) {
            match render::parse_utc(text, end_of_day) {
                Some(at) => *slot = Some(at),
                None => errors.push(format!("{name} {text:?} is not a UTC time; use {}.", render::UTC_FORMAT_HINT)),
            }
        }
    }
    let mut before = u64::MAX;
    if let Some(text) = get("before") {
        match text.parse() {
            Ok(position) => before = position,
            Err(_) => errors.push(format!("before {text:?} is not a position.")),
        }
    }
    let mut page = None;
    let mut customers: HashMap<uuid::Uuid, String> = HashMap::new();
    if errors.is_empty() {
        let head = match state.engine.store().head().await {
            Ok(head) => head.position,
            Err(error) => return error_page(Some(&session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        };
        match newest_first(&state, &filter, before.min(head.saturating_add(1)), AUDIT_PAGE_SIZE).await {
            Ok(found) => page = Some(found),
            Err(error) => errors.push(error.to_string()),
        }
        match state.engine.list(&ListFilter::default()).await {
            Ok(all) => customers = all.into_iter().map(|s| (s.id.as_uuid(), s.customer)).collect(),
            Err(error) => errors.push(error.to_string()),
        }
    }
    let value = |name: &str| params.get(name).cloned().unwrap_or_default();
    let next_link = page.as_ref().filter(|(_, more)| *more).and_then(|(events, _)| events.last()).map(|oldest| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for name in ["actor", "type", "integration", "since", "until"] {
            if let Some(v) = get(name) {
                query.append_pair(name, v);
            }
        }
        query.append_pair("before", &oldest.position.to_string());
        format!("/audit?{}", query.finish())
    });
    let content = html! {
        h1 { "Audit" }
        p { "Who did what, when, to which integration: every recorded event, newest first. Times are UTC." }
        form method="get" action="/audit" class="filters" aria-label="Audit filters" {
            label for="audit-actor" { "Actor" }
            input id="audit-actor" name="actor" value=(value("actor")) placeholder="e.g. dana.reyes, customer, gitlab";
            label for="audit-type" { "Event" }
            select id="audit-type" name="type" {
                option value="" { "Any" }
                @for t in crate::domain::event_type_names() { option value=(t) selected[get("type") == Some(t.as_str())] { (render::humanize(t)) } }
            }
            label for="audit-integration" { "Integration id" }
            input id="audit-integration" name="integration" value=(value("integration")) size="36";
            label for="audit-since" { "Since (UTC)" }
            input id="audit-since" name="since" type="text" autocomplete="off" size="22" placeholder=(render::UTC_PLACEHOLDER)
                aria-describedby="audit-time-hint" value=(value("since"));
            label for="audit-until" { "Until (UTC)" }
            input id="audit-until" name="until" type="text" autocomplete="off" size="22" placeholder=(render::UTC_PLACEHOLDER)
                aria-describedby="audit-time-hint" value=(value("until"));
            span id="audit-time-hint" class="hint" { (render::UTC_FORMAT_HINT) }
            button type="submit" { "Search" }
        }
        @for error in &errors { p class="error" role="alert" { (error) } }
        @if let Some((events, _)) = &page {
            p id="audit-count" { (events.len()) " events on this page" }
            div class="table-scroll" tabindex="0" role="region" aria-labelledby="audit-caption" {
                table class="events" id="audit-results" {
                    caption id="audit-caption" class="visually-hidden" { "Audit results, newest first" }
                    thead { tr { th scope="col" { "#" } th scope="col" { "Time (UTC)" } th scope="col" { "Actor" } th scope="col" { "Integration" } th scope="col" { "Event" } th scope="col" { "What" } } }
                    tbody {
                        @for e in events {
                            tr data-position=(e.position) {
                                td { (e.position) }
                                td class="when" { (time(e.recorded_at)) }
                                td class="actor" { (e.actor) }
                                td class="integration" {
                                    a href={ "/integrations/" (e.integration_id) } title={ "Integration " (e.integration_id) } {
                                        (customers.get(&e.integration_id).map(String::as_str).unwrap_or("(unknown integration)"))
                                    }
                                }
                                td class="type" data-type=(e.event_type) { (render::humanize(&e.event_type)) }
                                td { (render::describe(e)) }
                            }
                        }
                    }
                }
            }
            @if let Some(link) = next_link { p { a href=(link) rel="next" { "Older events" } } }
        }
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Page::Html(status, layout("Audit", Some(&session), None, content))
}
