//! The subscriptions page (admins): each outbound subscription's health — where it delivers,
//! how far behind the log it is, its retries and dead letters, and which replica holds it.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use maud::{html, Markup};

use super::render::time;
use super::{error_page, layout, require_session, Live, Page};
use crate::auth::Role;
use crate::engine::SubscriptionView;
use crate::http::AppState;

pub async fn subscriptions_page(State(state): State<AppState>, request: Request) -> Page {
    let (parts, _) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    if session.principal.role < Role::Admin {
        return error_page(Some(&session), StatusCode::FORBIDDEN, "Subscriptions are for admins.");
    }
    let subscriptions = match state.engine.subscriptions().await {
        Ok(list) => list,
        Err(error) => return error_page(Some(&session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let head = match state.engine.store().head().await {
        Ok(head) => head.position,
        Err(error) => return error_page(Some(&session), StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let live = Live { after: head, integration: None };
    Page::Html(StatusCode::OK, layout("Subscriptions", Some(&session), Some(live), content(&subscriptions, head)))
}

fn content(subscriptions: &[SubscriptionView], head: u64) -> Markup {
    html! {
        h1 { "Subscriptions" }
        p { "Endpoints that receive golive's events, in log order, signed per Standard Webhooks. The log ends at position " (head) "." }
        @if subscriptions.is_empty() {
            p { "No subscription yet: " code { "golive subscription add --name NAME --url URL" } }
        } @else {
            table id="subscriptions" {
                caption { "Health of each subscription" }
                thead {
                    tr {
                        th scope="col" { "Name" } th scope="col" { "Endpoint" } th scope="col" { "Status" }
                        th scope="col" { "Checkpoint" } th scope="col" { "Lag" } th scope="col" { "Delivered" }
                        th scope="col" { "Retries" } th scope="col" { "Dead letters" } th scope="col" { "Last delivery" }
                        th scope="col" { "Delivered by" }
                    }
                }
                tbody {
                    @for s in subscriptions {
                        tr data-subscription=(s.id) data-status=(s.status) {
                            th scope="row" { (s.name) }
                            td { code { (s.url) } }
                            td class={ "status-" (s.status) } {
                                (s.status)
                                @if let Some(failure) = &s.last_failure { br; small { (failure) } }
                            }
                            td { (s.checkpoint) }
                            td { (s.lag) }
                            td { (s.delivered) }
                            td { (s.retries) }
                            td { (s.dead_lettered) }
                            td {
                                @match s.last_delivered_at {
                                    Some(at) => { (time(at)) @if let Some(ms) = s.last_round_trip_ms { " (" (ms) " ms)" } }
                                    None => { "never" }
                                }
                            }
                            td { (s.delivered_by.as_deref().unwrap_or("nobody now")) }
                        }
                    }
                }
            }
        }
    }
}
