//! The operations of the API, one documentation-only function per route: `utoipa::path`
//! describes each route's parameters, bodies and answers on a function, and these functions
//! exist for that alone (the handlers in `api.rs` stay free of documentation concerns), so
//! nothing calls them.

#![allow(dead_code)]

use super::schemas;

const INTEGRATION_ID: &str = "The integration's id (a UUID)";

#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations",
    summary = "Open an integration (rep; playbook fields of the request's own need the admin role)",
    request_body = schemas::OpenIntegration,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key answers the same")),
    responses(
        (status = 201, description = "The new integration's state", body = schemas::IntegrationState,
            headers(("Location" = String, description = "The integration's URL"), ("ETag" = String, description = "\"<version>\""))),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low, or playbook fields from a rep"),
        (status = 413, description = "Body too large"), (status = 415, description = "Not JSON"),
        (status = 422, description = "Idempotency-Key reused with another body"),
    ))]
fn open() {}

#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", summary = "List integrations",
    params(
        ("stage" = Option<schemas::Stage>, Query, description = "Only this stage"),
        ("owner" = Option<String>, Query, description = "Only this owner"),
        ("blocked" = Option<bool>, Query, description = "Only blocked (true) or unblocked (false)"),
        ("stalled_days" = Option<u32>, Query, description = "Only without progress for this many days"),
        ("limit" = Option<u32>, Query, description = "Page: at most this many (1 to 1000, default 100 when `after` is given); without `limit` and `after`, the whole list"),
        ("after" = Option<String>, Query, description = "Page: the cursor from the previous page's `Link: <…>; rel=\"next\"`"),
    ),
    responses((status = 200, description = "Summaries, by customer then id",
            body = Vec<schemas::IntegrationSummary>,
            headers(("Link" = String, description = "With `limit` or `after`, when more follow: `</api/v1/integrations?…&after=…>; rel=\"next\"`"))),
        (status = 400, description = "Invalid query")))]
fn list() {}

#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations", summary = "An integration's state",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    responses((status = 200, description = "The state", body = schemas::IntegrationState,
        headers(("ETag" = String, description = "\"<version>\""))), (status = 404, description = "Unknown id")))]
fn get_state() {}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/commands", tag = "integrations",
    summary = "Execute a v1 command (rep)",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID),
        ("If-Match" = Option<String>, Header, description = "The version the command expects, as an ETag \"7\""),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key answers the same and writes nothing")),
    request_body(content = serde_json::Value, description = "A v1 command: `{\"type\": \"<name>\", ...fields}`"),
    responses(
        (status = 200, description = "The new state and the events recorded", body = schemas::Executed,
            headers(("ETag" = String, description = "\"<version>\""))),
        (status = 400, description = "Malformed JSON, unknown type or invalid field"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id"), (status = 409, description = "Integration cancelled, or a lost race"),
        (status = 412, description = "If-Match is not the current version"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"), (status = 422, description = "Guard rejected (unmet), or Idempotency-Key reused"),
    ))]
fn command() {}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/history", tag = "integrations", summary = "Events, oldest first",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID),
        ("after" = Option<u64>, Query, description = "Only events after this version"),
        ("limit" = Option<u32>, Query, description = "At most this many (1 to 1000, default 100)")),
    responses((status = 200, description = "A page of events", body = schemas::EventPage),
        (status = 400, description = "Invalid query"), (status = 404, description = "Unknown id")))]
fn history() {}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/state", tag = "integrations",
    summary = "The state as it was at a time or a version (exactly one of at, version)",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID),
        ("at" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "An RFC 3339 time"),
        ("version" = Option<u64>, Query, description = "A version")),
    responses((status = 200, description = "The state then", body = schemas::IntegrationState,
        headers(("ETag" = String, description = "\"<version>\""))),
        (status = 400, description = "Invalid query"), (status = 404, description = "Unknown id, or nothing then")))]
fn state_at() {}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/diagnose", tag = "integrations", summary = "Why it is stuck and what to check",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    responses((status = 200, description = "The diagnosis", body = schemas::Diagnosis), (status = 404, description = "Unknown id")))]
fn diagnose() {}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/probe", tag = "integrations",
    summary = "Run the GitLab probe now (rep); a failed probe is a recorded finding",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    responses((status = 200, description = "The recorded result", body = schemas::ProbeResult,
        headers(("ETag" = String, description = "\"<version>\""))),
        (status = 403, description = "Role too low"), (status = 404, description = "Unknown id"),
        (status = 409, description = "Integration cancelled"), (status = 410, description = "Secrets shredded"),
        (status = 422, description = "Nothing to probe yet")))]
fn probe() {}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/checks", tag = "integrations",
    summary = "Check the guide through GitLab's API (rep): the application, the webhook, test deliveries",
    description = "Starts a run of checks with the customer's access token and answers at once: progress and results arrive as events on the integration's stream (gitlab_check_started, application_checked, webhook_checked, test_delivery_requested, gitlab_check_finished) and in the state's check_runs and test_deliveries. No checks named: every check.",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    request_body = schemas::CheckRequest,
    responses((status = 202, description = "The run started", body = schemas::CheckStarted,
        headers(("Location" = String, description = "The integration's state"))),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id"), (status = 409, description = "Integration cancelled"),
        (status = 410, description = "Secrets shredded"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON"),
        (status = 422, description = "No usable access token, nothing to look for yet, or another run under way")))]
fn start_check() {}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/shred", tag = "integrations", summary = "Destroy the data key (admin)",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    responses((status = 200, description = "Shredded", body = schemas::Executed,
        headers(("ETag" = String, description = "\"<version>\""))),
        (status = 403, description = "Role too low"), (status = 404, description = "Unknown id"),
        (status = 409, description = "Integration cancelled")))]
fn shred() {}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/intake-links", tag = "integrations",
    summary = "Issue a one-time customer intake link (rep); the URL is shown only in this answer",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    request_body = schemas::IntakeLinkRequest,
    responses((status = 201, description = "The link", body = schemas::IntakeLinkIssued,
        headers(("ETag" = String, description = "\"<version>\""))),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id"), (status = 409, description = "Integration cancelled"),
        (status = 413, description = "Body too large"), (status = 415, description = "Not JSON")))]
fn create_intake_link() {}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/reveal", tag = "integrations", summary = "Reveal a secret (admin, audited)",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    request_body = schemas::RevealRequest,
    responses((status = 200, description = "The plaintext", body = schemas::Revealed),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id or no such secret"), (status = 409, description = "Integration cancelled"),
        (status = 410, description = "Secrets shredded"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON")))]
fn reveal() {}

#[utoipa::path(get, path = "/api/v1/board", tag = "views", summary = "Integrations per stage",
    responses((status = 200, description = "One column per stage", body = Vec<schemas::BoardColumn>)))]
fn board() {}

#[utoipa::path(get, path = "/api/v1/calendar", tag = "views", summary = "Go-live dates and monitoring ends",
    responses((status = 200, description = "Dated entries", body = Vec<schemas::CalendarEntry>)))]
fn calendar() {}

#[utoipa::path(get, path = "/api/v1/insights", tag = "views",
    summary = "Process figures: time in each stage, opened and gone live per week, stalls, cumulative flow",
    responses((status = 200, description = "The figures", body = schemas::Insights)))]
fn insights() {}

#[utoipa::path(get, path = "/api/v1/events", tag = "audit", summary = "Audit across integrations",
    params(
        ("actor" = Option<String>, Query, description = "Only this actor"),
        ("type" = Option<String>, Query, description = "Only this event type"),
        ("integration" = Option<uuid::Uuid>, Query, description = "Only this integration"),
        ("since" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Recorded at or after (RFC 3339)"),
        ("until" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Recorded at or before (RFC 3339)"),
        ("after" = Option<u64>, Query, description = "Only after this position"),
        ("limit" = Option<u32>, Query, description = "At most this many (1 to 1000, default 100)"),
    ),
    responses((status = 200, description = "A page of events", body = schemas::EventPage),
        (status = 400, description = "Invalid query"), (status = 404, description = "Unknown integration")))]
fn audit() {}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "audit",
    summary = "Server-Sent Events; id is the position; resume with Last-Event-ID or after",
    params(("after" = Option<u64>, Query, description = "Resume after this position"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position")),
    responses((status = 200, description = "An endless event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid query or header")))]
fn stream() {}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", summary = "Chain verification",
    params(("expect" = Option<String>, Query, description = "A head hash the chain must extend")),
    responses((status = 200, description = "The report", body = schemas::VerifyReport), (status = 400, description = "Invalid query")))]
fn verify() {}

#[utoipa::path(get, path = "/api/v1/export", tag = "audit", summary = "The log as JSON Lines (admin)",
    responses((status = 200, description = "One envelope per line", content_type = "application/x-ndjson", body = String),
        (status = 403, description = "Role too low")))]
fn export() {}

#[utoipa::path(post, path = "/api/v1/playbooks", tag = "playbooks",
    summary = "Register a playbook version (admin; the same body again is 200, another body 409)",
    request_body = schemas::Playbook,
    responses((status = 201, description = "Registered", body = schemas::RegisteredPlaybook,
            headers(("Location" = String, description = "The version's URL"))),
        (status = 200, description = "Already registered with this body", body = schemas::RegisteredPlaybook,
            headers(("Location" = String, description = "The version's URL"))),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 409, description = "Version taken by another body"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON")))]
fn register_playbook() {}

#[utoipa::path(get, path = "/api/v1/playbooks", tag = "playbooks", summary = "The default playbook and every registered version",
    responses((status = 200, description = "Playbooks", body = schemas::Playbooks)))]
fn list_playbooks() {}

#[utoipa::path(get, path = "/api/v1/playbooks/{id}", tag = "playbooks", summary = "A registered playbook, its latest version unless ?version=N",
    params(("id" = String, Path, description = "The playbook's id", pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"),
        ("version" = Option<u32>, Query, description = "A version (from 1)")),
    responses((status = 200, description = "The playbook", body = schemas::RegisteredPlaybook),
        (status = 400, description = "Invalid query"), (status = 404, description = "Unknown playbook or version")))]
fn get_playbook() {}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", summary = "Create an API token (admin; shown once)",
    request_body = schemas::CreateToken,
    responses((status = 201, description = "The token", body = schemas::CreatedToken),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 409, description = "Name taken"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON")))]
fn create_token() {}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", summary = "List API tokens (admin)",
    responses((status = 200, description = "Tokens", body = Vec<schemas::TokenInfo>), (status = 403, description = "Role too low")))]
fn list_tokens() {}

#[utoipa::path(delete, path = "/api/v1/tokens", tag = "tokens", summary = "Revoke a token by ?name= (admin)",
    params(("name" = String, Query, description = "The token's name")),
    responses((status = 204, description = "Revoked"), (status = 400, description = "Invalid query"),
        (status = 403, description = "Role too low"), (status = 404, description = "No such token")))]
fn revoke_token_query() {}

#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens", summary = "Revoke a token (admin)",
    params(("name" = String, Path, description = "The token's name")),
    responses((status = 204, description = "Revoked"), (status = 403, description = "Role too low"),
        (status = 404, description = "No such token")))]
fn revoke_token() {}

const SUBSCRIPTION_ID: &str = "The subscription's id (a UUID)";

#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "subscriptions",
    summary = "Register an outbound event subscription (admin); its signing secret is shown once",
    request_body = crate::engine::NewSubscription,
    responses((status = 201, description = "The subscription and its secret (`whsec_…`)", body = crate::engine::AddedSubscription,
            headers(("Location" = String, description = "The subscription's URL"))),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 413, description = "Body too large"), (status = 415, description = "Not JSON")))]
fn add_subscription() {}

#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions", summary = "Every subscription and its health (admin)",
    responses((status = 200, description = "Subscriptions, oldest first", body = Vec<crate::engine::SubscriptionView>),
        (status = 403, description = "Role too low")))]
fn list_subscriptions() {}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions", summary = "One subscription with its dead letters (admin)",
    params(("id" = uuid::Uuid, Path, description = SUBSCRIPTION_ID)),
    responses((status = 200, description = "The subscription", body = crate::engine::SubscriptionView),
        (status = 403, description = "Role too low"), (status = 404, description = "Unknown id")))]
fn get_subscription() {}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    summary = "Remove a subscription (admin): nothing more is delivered and its secret is shredded",
    params(("id" = uuid::Uuid, Path, description = SUBSCRIPTION_ID)),
    responses((status = 204, description = "Removed"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id")))]
fn remove_subscription() {}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/pause", tag = "subscriptions", summary = "Stop delivering; the checkpoint stays (admin)",
    params(("id" = uuid::Uuid, Path, description = SUBSCRIPTION_ID)),
    responses((status = 200, description = "The subscription", body = crate::engine::SubscriptionView),
        (status = 403, description = "Role too low"), (status = 404, description = "Unknown id")))]
fn pause_subscription() {}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/resume", tag = "subscriptions", summary = "Deliver again from the checkpoint (admin)",
    params(("id" = uuid::Uuid, Path, description = SUBSCRIPTION_ID)),
    responses((status = 200, description = "The subscription", body = crate::engine::SubscriptionView),
        (status = 403, description = "Role too low"), (status = 404, description = "Unknown id")))]
fn resume_subscription() {}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/replay", tag = "subscriptions",
    summary = "Deliver again from a log position (admin); receivers see repeats with their original webhook-id",
    params(("id" = uuid::Uuid, Path, description = SUBSCRIPTION_ID)),
    request_body = ReplayRequest,
    responses((status = 200, description = "The subscription", body = crate::engine::SubscriptionView),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id"), (status = 413, description = "Body too large"), (status = 415, description = "Not JSON")))]
fn replay_subscription() {}

/// Where a replay starts.
#[derive(utoipa::ToSchema)]
#[allow(unused)]
pub struct ReplayRequest {
    /// The first log position to deliver again (1 to the head + 1).
    #[schema(minimum = 1)]
    from_position: u64,
}

#[utoipa::path(post, path = "/api/v1/notification-rules", tag = "notifications",
    summary = "Add a notification rule (admin); a Slack URL is stored sealed and shown only by its host",
    request_body = crate::engine::NewRule,
    responses((status = 201, description = "The rule", body = crate::engine::RuleView,
            headers(("Location" = String, description = "The rule's URL"))),
        (status = 400, description = "Invalid field"), (status = 403, description = "Role too low"),
        (status = 413, description = "Body too large"), (status = 415, description = "Not JSON")))]
fn add_rule() {}

#[utoipa::path(get, path = "/api/v1/notification-rules", tag = "notifications", summary = "Every notification rule (rep)",
    responses((status = 200, description = "Rules, oldest first", body = Vec<crate::engine::RuleView>),
        (status = 403, description = "Role too low")))]
fn list_rules() {}

#[utoipa::path(delete, path = "/api/v1/notification-rules/{id}", tag = "notifications", summary = "Remove a notification rule (admin)",
    params(("id" = uuid::Uuid, Path, description = "The rule's id (a UUID)")),
    responses((status = 204, description = "Removed"), (status = 403, description = "Role too low"),
        (status = 404, description = "Unknown id")))]
fn remove_rule() {}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/notifications", tag = "notifications",
    summary = "The integration's notification journal: every message sent, failed or given up, oldest first",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID)),
    responses((status = 200, description = "The journal", body = Vec<crate::engine::JournalEntry>),
        (status = 404, description = "Unknown id")))]
fn notification_journal() {}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", summary = "This document",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
fn openapi_json() {}

#[utoipa::path(get, path = "/api/v1/schemas/events.json", tag = "meta",
    summary = "The JSON Schema of the event envelope and of every event type",
    responses((status = 200, description = "A JSON Schema (draft 2020-12)", body = Object)))]
fn events_schema() {}

#[utoipa::path(post, path = "/hooks/gitlab/{id}", tag = "webhooks",
    summary = "The GitLab webhook receiver (X-Gitlab-Token; webhook-signature with a signing key)",
    params(("id" = uuid::Uuid, Path, description = INTEGRATION_ID),
        ("X-Gitlab-Token" = String, Header, description = "The secret token golive issued"),
        ("X-Gitlab-Event" = String, Header, description = "GitLab's event name, e.g. Push Hook"),
        ("Idempotency-Key" = Option<String>, Header, description = "GitLab's delivery id, for deduplication")),
    request_body(content = Object, description = "GitLab's delivery, as GitLab sends it"),
    responses((status = 200, description = "Recorded, a duplicate, or ignored (an event golive does not use)", body = schemas::DeliveryRecorded),
        (status = 400, description = "Malformed delivery"), (status = 404, description = "Unknown id"),
        (status = 409, description = "Integration cancelled"), (status = 413, description = "Body too large"),
        (status = 415, description = "Not JSON")),
    security(()))]
fn receive() {}

#[utoipa::path(get, path = "/healthz", tag = "meta", summary = "Liveness",
    responses((status = 200, description = "ok", content_type = "text/plain", body = String)), security(()))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "meta", summary = "Readiness",
    responses((status = 200, description = "Ready", body = schemas::Ready)), security(()))]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "meta", summary = "Prometheus metrics",
    responses((status = 200, description = "The text exposition format", content_type = "text/plain", body = String)),
    security(()))]
fn metrics() {}
