//! The board (`/`): a column per stage with a card per integration, filters, counts and the
//! go-live calendar; and the audit page (`/audit`): the cross-integration query, paged.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use maud::{html, Markup};

use super::render::{self, block_badge, days, stage_label, time};
use super::{error_page, layout, require_session, Live, Page};
use crate::engine::{board, AuditQuery, IntegrationSummary, ListFilter};
use crate::http::AppState;

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
        div class="board" {
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

pub async fn audit_page(State(state): State<AppState>, Query(params): Params, request: Request) -> Page {
    let (parts, _) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let get = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let mut query = AuditQuery { limit: 50, ..AuditQuery::default() };
    query.actor = get("actor").map(str::to_owned);
    query.event_type = get("type").map(str::to_owned);
    if let Some(text) = get("integration") {
        match uuid::Uuid::parse_str(text) {
            Ok(id) => query.integration = Some(id),
            Err(_) => errors.push(format!("Integration {text:?} is not an integration id.")),
        }
    }
    for (name, slot) in [("since", &mut query.since), ("until", &mut query.until)] {
        if let Some(text) = get(name) {
            match render::parse_form_time(text) {
                Some(at) => *slot = Some(at),
                None => errors.push(format!("{name} {text:?} is not a date and time.")),
            }
        }
    }
    if let Some(text) = get("after") {
        match text.parse() {
            Ok(after) => query.after = after,
            Err(_) => errors.push(format!("after {text:?} is not a position.")),
        }
    }
    let page = if errors.is_empty() {
        match state.engine.audit(&query).await {
            Ok(page) => Some(page),
            Err(error) => {
                errors.push(error.to_string());
                None
            }
        }
    } else {
        None
    };
    let value = |name: &str| params.get(name).cloned().unwrap_or_default();
    let next_link = page.as_ref().and_then(|p| p.next_after).map(|after| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for name in ["actor", "type", "integration", "since", "until"] {
            if let Some(v) = get(name) {
                query.append_pair(name, v);
            }
        }
        query.append_pair("after", &after.to_string());
        format!("/audit?{}", query.finish())
    });
    let content = html! {
        h1 { "Audit" }
        p { "Who did what, when, to which integration: every recorded event, oldest first." }
        form method="get" action="/audit" class="filters" aria-label="Audit filters" {
            label for="audit-actor" { "Actor" }
            input id="audit-actor" name="actor" value=(value("actor")) placeholder="e.g. dana.reyes, customer, gitlab";
            label for="audit-type" { "Event type" }
            select id="audit-type" name="type" {
                option value="" { "Any" }
                @for t in crate::domain::event_type_names() { option value=(t) selected[get("type") == Some(t.as_str())] { (t) } }
            }
            label for="audit-integration" { "Integration id" }
            input id="audit-integration" name="integration" value=(value("integration"));
            label for="audit-since" { "Since (UTC)" }
            input id="audit-since" name="since" type="datetime-local" step="1" value=(value("since"));
            label for="audit-until" { "Until (UTC)" }
            input id="audit-until" name="until" type="datetime-local" step="1" value=(value("until"));
            button type="submit" { "Search" }
        }
        @for error in &errors { p class="error" role="alert" { (error) } }
        @if let Some(page) = &page {
            p id="audit-count" { (page.events.len()) " events on this page" }
            table class="events" id="audit-results" {
                caption class="visually-hidden" { "Audit results" }
                thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Integration" } th scope="col" { "Type" } th scope="col" { "What" } } }
                tbody {
                    @for e in &page.events {
                        tr {
                            td { (e.position) }
                            td { (time(e.recorded_at)) }
                            td class="actor" { (e.actor) }
                            td { a href={ "/integrations/" (e.integration_id) } { (e.integration_id.to_string()[..8]) "…" } }
                            td class="type" { (e.event_type) }
                            td { (render::describe(e)) }
                        }
                    }
                }
            }
            @if let Some(link) = next_link { p { a href=(link) rel="next" { "Next page" } } }
        }
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Page::Html(status, layout("Audit", Some(&session), None, content))
}
