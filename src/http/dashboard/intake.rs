//! The customer intake, both sides: a representative creates a one-time, expiring link (shown
//! once); the customer opens it without an account and submits the application and the access
//! token. What arrives is sealed by the engine and recorded with actor `customer`; a used or
//! expired link is refused.

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::render::time;
use super::{check_form, error_page, field, form_fields, layout, require_role, require_session, same_origin, Page};
use crate::auth::Role;
use crate::domain::{IntakeRefusal, IntegrationId, Rejection, INTAKE_LINK_MAX_HOURS};
use crate::engine::{EngineError, IntakeForm, IntakeInvitation};
use crate::http::AppState;

/// Scopes offered as checkboxes; the playbook's required ones are listed first and checked.
const OFFERED_SCOPES: [&str; 10] = [
    "api",
    "read_user",
    "read_repository",
    "write_repository",
    "read_registry",
    "sudo",
    "read_api",
    "write_registry",
    "admin_mode",
    "openid",
];

pub async fn create_link(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Page {
    let (parts, body) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page,
    };
    let fields = match form_fields(body).await {
        Ok(fields) => fields,
        Err(problem) => return error_page(Some(&session), problem.status, &problem.detail),
    };
    if let Err(page) = check_form(&parts.headers, &session, &fields).and_then(|_| require_role(&session, Role::Rep)) {
        return page;
    }
    let Ok(id) = IntegrationId::parse(&id) else {
        return error_page(Some(&session), StatusCode::NOT_FOUND, "There is no such integration.");
    };
    let hours = match field(&fields, "expires_in_hours").trim().parse::<u32>() {
        Ok(hours) if (1..=INTAKE_LINK_MAX_HOURS).contains(&hours) => hours,
        _ => {
            return error_page(
                Some(&session),
                StatusCode::BAD_REQUEST,
                &format!("The link's lifetime must be a whole number of hours from 1 to {INTAKE_LINK_MAX_HOURS}."),
            )
        }
    };
    match state.engine.issue_intake_link(id, hours, &session.principal.actor).await {
        Ok(issued) => {
            let url = issued.url.clone();
            let content = html! {
                h1 { "Intake link for " (issued.executed.state.customer) }
                p { "Send this link to the customer over a channel you trust. It works once and expires at " (time(issued.expires_at)) ". It is shown only now: golive keeps only its digest." }
                p { label for="intake-url" { "Intake link" } }
                p { input id="intake-url" class="wide" readonly value=(url); }
                p { a href={ "/integrations/" (id) } { "Back to the integration" } }
            };
            Page::Html(StatusCode::CREATED, layout("Intake link", Some(&session), None, content))
        }
        Err(EngineError::NotFound(_)) => {
            error_page(Some(&session), StatusCode::NOT_FOUND, "There is no such integration.")
        }
        Err(EngineError::Rejected(Rejection::Cancelled)) => {
            error_page(Some(&session), StatusCode::CONFLICT, "The integration is cancelled.")
        }
        Err(error) => error_page(Some(&session), StatusCode::BAD_REQUEST, &error.to_string()),
    }
}

fn refused(refusal: IntakeRefusal) -> Page {
    let status = match refusal {
        IntakeRefusal::Unknown => StatusCode::NOT_FOUND,
        IntakeRefusal::Expired | IntakeRefusal::AlreadyUsed => StatusCode::GONE,
        IntakeRefusal::InstanceChanged => StatusCode::CONFLICT,
    };
    Page::Html(
        status,
        layout(
            "Intake link",
            None,
            None,
            html! { h1 { "This link cannot be used" } p class="error" role="alert" id="intake-refused" { (refusal.to_string()) } },
        ),
    )
}

fn engine_failure(error: EngineError) -> Page {
    match error {
        EngineError::Rejected(Rejection::Intake(refusal)) => refused(refusal),
        EngineError::NotFound(_) | EngineError::Rejected(Rejection::Cancelled) => refused(IntakeRefusal::Unknown),
        other => {
            tracing::error!(error = %other, "intake failed");
            error_page(
                None,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side; nothing was recorded. Try again.",
            )
        }
    }
}

fn intake_form(invitation: &IntakeInvitation, previous: Option<&IntakeForm>, error: Option<&str>) -> Markup {
    let checked = |scope: &str| match previous {
        Some(form) => form.scopes.iter().any(|s| s == scope),
        None => invitation.required_scopes.iter().any(|s| s == scope),
    };
    let mut offered: Vec<&str> = invitation.required_scopes.iter().map(String::as_str).collect();
    offered.extend(OFFERED_SCOPES.iter().filter(|s| !invitation.required_scopes.iter().any(|r| r == *s)));
    layout(
        "Secure intake",
        None,
        None,
        html! {
            h1 { "Connect " (invitation.customer) "'s GitLab to Factory" }
            p { "This page is for " strong { (invitation.customer) } ". What you enter goes straight to Factory's golive, encrypted on arrival; nobody at Factory sees the secrets. This link works once and expires at " (time(invitation.expires_at)) "." }
            p id="intake-instance" { "The secrets you send are for the GitLab instance at " strong { (invitation.gitlab_url) }
                @if let Some(fingerprint) = &invitation.instance.ca_fingerprint { " (trusted through the internal CA with fingerprint " code { (fingerprint) } ")" }
                ". golive will only ever use them there: if that is not your instance, do not send them and tell your Factory representative." }
            h2 { "1. Register the application in GitLab" }
            ol {
                li { "In GitLab, open Admin Area → Applications → New application." }
                li { "Name: " code { (invitation.application_name) } }
                li { "Redirect URI: " code { (invitation.redirect_uri) } }
                li { "Scopes: " @for (i, s) in invitation.required_scopes.iter().enumerate() { @if i > 0 { ", " } code { (s) } } }
            }
            h2 { "2. Enter what GitLab showed you" }
            @if let Some(error) = error { p class="error" role="alert" id="intake-error" { (error) } }
            form method="post" class="stack" {
                input type="hidden" name="shown_origin" value=(invitation.instance.origin);
                input type="hidden" name="shown_ca_fingerprint" value=(invitation.instance.ca_fingerprint.as_deref().unwrap_or(""));
                label for="application_id" { "Application ID" }
                input id="application_id" name="application_id" required autocomplete="off"
                    value=[previous.map(|f| f.application_id.as_str())];
                label for="application_secret" { "Application secret" }
                input id="application_secret" name="application_secret" type="password" required autocomplete="off";
                label for="access_token" { "Access token of a GitLab administrator" }
                input id="access_token" name="access_token" type="password" required autocomplete="off";
                div class="check" {
                    input id="admin" name="admin" type="checkbox" value="true" checked[previous.is_none_or(|f| f.admin)];
                    label for="admin" { "The token belongs to an administrator" }
                }
                fieldset {
                    legend { "Scopes granted to the application" }
                    @for scope in &offered {
                        div class="check" {
                            input id={ "scope-" (scope) } name="scopes" type="checkbox" value=(scope) checked[checked(scope)];
                            label for={ "scope-" (scope) } { (scope) }
                        }
                    }
                }
                button type="submit" { "Send securely" }
            }
        },
    )
}

pub async fn intake_page(State(state): State<AppState>, Path((id, secret)): Path<(String, String)>) -> Page {
    let Ok(id) = IntegrationId::parse(&id) else { return refused(IntakeRefusal::Unknown) };
    match state.engine.intake_invitation(id, &secret).await {
        Ok(invitation) => Page::Html(StatusCode::OK, intake_form(&invitation, None, None)),
        Err(error) => engine_failure(error),
    }
}

/// The intake form as the browser posts it (`application/x-www-form-urlencoded`).
pub fn intake_form_from_body(body: &[u8]) -> IntakeForm {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        fields.entry(key.into_owned()).or_default().push(value.into_owned());
    }
    form_of(&fields)
}

fn form_of(fields: &HashMap<String, Vec<String>>) -> IntakeForm {
    IntakeForm {
        application_id: field(fields, "application_id").to_owned(),
        application_secret: field(fields, "application_secret").to_owned(),
        access_token: field(fields, "access_token").to_owned(),
        admin: field(fields, "admin") == "true",
        scopes: fields.get("scopes").cloned().unwrap_or_default(),
        shown_origin: fields.get("shown_origin").and_then(|v| v.first()).cloned(),
        shown_ca_fingerprint: fields.get("shown_ca_fingerprint").and_then(|v| v.first()).cloned(),
    }
}

pub async fn intake_submit(
    State(state): State<AppState>,
    Path((id, secret)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(id) = IntegrationId::parse(&id) else { return refused(IntakeRefusal::Unknown).into_response() };
    // The link's secret is the capability; the origin check keeps other sites from posting a
    // customer's browser's data through a link they learned.
    if !same_origin(&parts.headers) {
        return error_page(None, StatusCode::FORBIDDEN, "Submit the form from its own page.").into_response();
    }
    let fields = match form_fields(body).await {
        Ok(fields) => fields,
        Err(problem) => return error_page(None, problem.status, &problem.detail).into_response(),
    };
    let form = form_of(&fields);
    match state.engine.redeem_intake(id, &secret, &form).await {
        Ok(executed) => Page::Html(
            StatusCode::OK,
            layout(
                "Thank you",
                None,
                None,
                html! {
                    h1 { "Thank you" }
                    p id="intake-done" role="status" { "Factory received the application and the access token for " (executed.state.customer) ". They were encrypted on arrival. You can close this page; this link no longer works." }
                },
            ),
        )
        .into_response(),
        Err(EngineError::Rejected(Rejection::InvalidField { field, message })) => {
            let invitation = match state.engine.intake_invitation(id, &secret).await {
                Ok(invitation) => invitation,
                Err(error) => return engine_failure(error).into_response(),
            };
            let label = field.replace('_', " ");
            Page::Html(
                StatusCode::BAD_REQUEST,
                intake_form(&invitation, Some(&form), Some(&format!("Please check the {label}: {message}."))),
            )
            .into_response()
        }
        Err(error) => engine_failure(error).into_response(),
    }
}
