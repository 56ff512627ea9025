//! A fake GitLab held to GitLab's code (docs/gitlab-fidelity.md names each file it follows),
//! served over TLS with an internal CA. Where GitLab's code decides, the fake does as it does:
//! the hook test route runs the delivery while the request waits and answers 201 only when the
//! receiver answered 2xx, else 422 with the receiver's body or the HTTP client's error as Ruby
//! words it (`lib/api/hooks/trigger_test.rb`, `app/services/web_hook_service.rb`); "Ensure the
//! project has …" when there is no sample data; failed deliveries back the project hook off
//! (`WebHooks::AutoDisabling`) and `alert_status` shows it; `/applications` lists instance-wide
//! applications only, unpaged; Admin Mode refuses an admin's token without `admin_mode` on
//! admin-only routes; the routes and fields of each GitLab version (`version`). Every answer is
//! kept (`answers`) for the shape test against GitLab's schemas.
//!
//! Routes:
//! applications (`GET /api/v4/applications`), system hooks (`GET /api/v4/hooks`,
//! `POST /api/v4/hooks/:id`), group and project hooks and their test routes
//! (`POST /{groups,projects}/:id/hooks/:hook_id/test/:trigger`), groups and projects, paged with
//! `per_page`/`page` and `X-Next-Page` as GitLab pages. A test request sends a real delivery
//! back to the hook's URL with GitLab's headers and the sample payloads of `fixtures/gitlab`.
//!
//! The world is data a test shapes: which applications and hooks exist, whether the test route
//! exists (older GitLab), whether hook tests are rate limited, whether deliveries get through
//! the customer's firewall.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the fake instance holds and how it behaves.
#[derive(Default)]
pub struct World {
    /// The admin token it accepts (any other is 401).
    pub admin_token: String,
    /// A token that authenticates but is not an admin's (403 on admin routes).
    pub user_token: Option<String>,
    pub applications: Vec<Value>,
    pub system_hooks: Vec<Value>,
    pub group_hooks: BTreeMap<u64, Vec<Value>>,
    pub project_hooks: BTreeMap<u64, Vec<Value>>,
    /// Each hook's secret token, by hook id (GitLab never lists it).
    pub hook_tokens: BTreeMap<u64, String>,
    pub groups: Vec<u64>,
    pub projects: Vec<u64>,
    /// False: an older GitLab without the test routes (404).
    pub test_routes: bool,
    /// Hook tests allowed before GitLab answers 429 (None: no limit).
    pub tests_before_rate_limit: Option<usize>,
    /// False: the customer's firewall drops GitLab's deliveries to golive.
    pub deliveries_get_through: bool,
    /// Where deliveries to golive's public URL really go (the load balancer in front of golive):
    /// `(public prefix, address)`.
    pub golive_behind: Option<(String, String)>,
    /// Every call, as `METHOD path`.
    pub calls: Vec<String>,
    pub tests_requested: usize,
    /// Deliveries sent, with the status golive answered.
    pub delivered: Vec<(String, u16)>,
    pub instance_url: String,
    /// The group each project lives in (for group hooks).
    pub project_groups: BTreeMap<u64, u64>,
    /// Projects created through the API, and those deleted.
    pub created_projects: Vec<u64>,
    pub deleted_projects: Vec<u64>,
    /// The username whose comment appears on every merge request and issue (the Droid).
    pub droid_comments_as: Option<String>,
    /// A hostile or broken GitLab: `GET /projects/:id` fails with 500.
    pub project_reads_fail: bool,
    /// A hostile GitLab: creating a project answers with this other (existing) project's id.
    pub created_project_is: Option<u64>,
    /// The GitLab version the fake plays (`17.5.1-ee` when empty): it decides which routes
    /// and fields exist.
    pub version: String,
    /// How a delivery fails on its way to golive, as GitLab's HTTP client reports it.
    pub path_failure: Option<PathFailure>,
    /// GitLab's `webhook_timeout` in this fake (GitLab's default is 10 s; tests wait less).
    pub webhook_timeout_ms: u64,
    /// Hook fields (`merge_requests_events`, …) whose sample data the project lacks.
    pub no_sample_data: BTreeSet<String>,
    /// Admin Mode is on: admin-only routes refuse a token without the `admin_mode` scope.
    pub admin_mode: bool,
    /// The admin token's scopes (`api`, `sudo`, `read_user` when empty).
    pub token_scopes: Vec<String>,
    /// Each project hook's `recent_failures` and `disabled_until`, as GitLab keeps them.
    pub hook_failures: BTreeMap<u64, (u32, Option<chrono::DateTime<chrono::Utc>>)>,
    /// Projects whose hook list answers 500 (a GitLab in trouble).
    pub failing_hook_lists: BTreeSet<u64>,
    /// Every answer the fake gave: `(METHOD, path, status, JSON body)`.
    pub answers: Vec<(String, String, u16, Value)>,
}

/// Ways a delivery fails between GitLab and golive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFailure {
    /// Nothing accepts the connection.
    Refused,
    /// GitLab does not trust golive's certificate.
    Tls,
}

impl World {
    /// `(major, minor)` of the version played.
    pub fn version(&self) -> (u32, u32) {
        let version = if self.version.is_empty() { "17.5.1-ee" } else { self.version.as_str() };
        let mut parts = version.split(['.', '-']);
        (parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap())
    }

    fn version_text(&self) -> String {
        if self.version.is_empty() {
            "17.5.1-ee".to_owned()
        } else {
            self.version.clone()
        }
    }

    fn scopes(&self) -> Vec<String> {
        if self.token_scopes.is_empty() {
            vec!["api".into(), "read_user".into(), "sudo".into()]
        } else {
            self.token_scopes.clone()
        }
    }
}

pub type Shared = Arc<Mutex<World>>;

#[derive(serde::Deserialize)]
struct Paging {
    page: Option<usize>,
    per_page: Option<usize>,
}

#[allow(clippy::result_large_err)] // A test server: the refusal is the response.
fn authorised(world: &World, headers: &HeaderMap, admin_only: bool) -> Result<(), Response> {
    let token = headers.get("private-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if token == world.admin_token {
        // `authenticated_as_admin!` asks `can_admin_all_resources?`, which with Admin Mode on
        // needs the token's `admin_mode` scope.
        if admin_only && world.admin_mode && !world.scopes().iter().any(|s| s == "admin_mode") {
            return Err((StatusCode::FORBIDDEN, Json(json!({"message": "403 Forbidden"}))).into_response());
        }
        return Ok(());
    }
    if world.user_token.as_deref() == Some(token) {
        if admin_only {
            return Err((StatusCode::FORBIDDEN, Json(json!({"message": "403 Forbidden"}))).into_response());
        }
        return Ok(());
    }
    Err((StatusCode::UNAUTHORIZED, Json(json!({"message": "401 Unauthorized"}))).into_response())
}

/// One page of `items` as GitLab pages them.
fn paged(items: &[Value], paging: &Paging) -> Response {
    let per_page = paging.per_page.unwrap_or(20).clamp(1, 100);
    let page = paging.page.unwrap_or(1).max(1);
    let start = (page - 1) * per_page;
    let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    let total_pages = items.len().div_ceil(per_page).max(1);
    let mut response = Json(Value::Array(slice)).into_response();
    let headers = response.headers_mut();
    headers.insert("x-page", page.to_string().parse().unwrap());
    headers.insert("x-per-page", per_page.to_string().parse().unwrap());
    headers.insert("x-total", items.len().to_string().parse().unwrap());
    headers.insert("x-total-pages", total_pages.to_string().parse().unwrap());
    let next = if page < total_pages { (page + 1).to_string() } else { String::new() };
    headers.insert("x-next-page", next.parse().unwrap());
    response
}

async fn applications(State(world): State<Shared>, headers: HeaderMap, Query(paging): Query<Paging>) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push("GET /api/v4/applications".into());
    let _ = paging;
    if let Err(refused) = authorised(&world, &headers, true) {
        return refused;
    }
    // `ApplicationsFinder`: `owner_id IS NULL`, and the route does not paginate.
    let listed: Vec<Value> = world
        .applications
        .iter()
        .filter(|a| a.get("owner").is_none())
        .map(|a| {
            let mut a = a.clone();
            if a.get("scopes").is_none() {
                a["scopes"] = json!(["api", "read_user"]);
            }
            a
        })
        .collect();
    Json(Value::Array(listed)).into_response()
}

async fn system_hooks(State(world): State<Shared>, headers: HeaderMap, Query(paging): Query<Paging>) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push("GET /api/v4/hooks".into());
    if let Err(refused) = authorised(&world, &headers, true) {
        return refused;
    }
    let listed: Vec<Value> = world.system_hooks.iter().map(|h| as_listed(&world, h, false)).collect();
    paged(&listed, &paging)
}

/// A hook as this version lists it: `alert_status` and `disabled_until` from its failures
/// (project hooks only back off in GitLab's open-source code), and only the fields the version
/// has (`custom_webhook_template` from 16.10, `branch_filter_strategy` from 17.2).
fn as_listed(world: &World, hook: &Value, backs_off: bool) -> Value {
    let mut hook = hook.clone();
    let version = world.version();
    let (failures, until) = world.hook_failures.get(&hook["id"].as_u64().unwrap()).copied().unwrap_or((0, None));
    let now = chrono::Utc::now();
    let status = if !backs_off {
        "executable"
    } else if failures > 39 {
        "disabled"
    } else if failures > 3 && until.is_some_and(|u| u >= now) {
        "temporarily_disabled"
    } else {
        "executable"
    };
    hook["alert_status"] = json!(status);
    hook["disabled_until"] = json!(until.filter(|_| status == "temporarily_disabled").map(|u| u.to_rfc3339()));
    let object = hook.as_object_mut().unwrap();
    if version < (16, 10) {
        object.remove("custom_webhook_template");
    }
    if version < (17, 2) {
        object.remove("branch_filter_strategy");
    }
    hook
}

/// GitLab's `backoff!` and `enable!` after a delivery (`WebHooks::AutoDisabling`).
fn after_delivery(world: &mut World, hook_id: u64, succeeded: bool) {
    let now = chrono::Utc::now();
    let entry = world.hook_failures.entry(hook_id).or_insert((0, None));
    if succeeded {
        *entry = (0, None);
        return;
    }
    let executable = entry.0 <= 3 || (entry.0 <= 39 && entry.1.is_some_and(|u| u < now));
    if !executable {
        return;
    }
    entry.0 = (entry.0 + 1).clamp(1, 40);
    if entry.0 > 3 {
        let backoff = (60.0 * 2f64.powi(entry.0 as i32 - 3)).clamp(60.0, 86_400.0);
        entry.1 = Some(now + chrono::Duration::seconds(backoff as i64));
    }
}

async fn groups(State(world): State<Shared>, headers: HeaderMap, Query(paging): Query<Paging>) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push("GET /api/v4/groups".into());
    if let Err(refused) = authorised(&world, &headers, false) {
        return refused;
    }
    let groups: Vec<Value> = world.groups.iter().map(|id| json!({"id": id, "name": format!("group {id}")})).collect();
    paged(&groups, &paging)
}

async fn projects(State(world): State<Shared>, headers: HeaderMap, Query(paging): Query<Paging>) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push("GET /api/v4/projects".into());
    if let Err(refused) = authorised(&world, &headers, false) {
        return refused;
    }
    let projects: Vec<Value> =
        world.projects.iter().map(|id| json!({"id": id, "name": format!("project {id}")})).collect();
    paged(&projects, &paging)
}

async fn group_hooks(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(group): Path<u64>,
    Query(paging): Query<Paging>,
) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push(format!("GET /api/v4/groups/{group}/hooks"));
    if let Err(refused) = authorised(&world, &headers, false) {
        return refused;
    }
    match world.group_hooks.get(&group) {
        Some(hooks) => {
            let listed: Vec<Value> = hooks.iter().map(|h| as_listed(&world, h, false)).collect();
            paged(&listed, &paging)
        }
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "404 Group Not Found"}))).into_response(),
    }
}

async fn project_hooks(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path(project): Path<u64>,
    Query(paging): Query<Paging>,
) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push(format!("GET /api/v4/projects/{project}/hooks"));
    if let Err(refused) = authorised(&world, &headers, false) {
        return refused;
    }
    if world.failing_hook_lists.contains(&project) {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"message": "500 Internal Server Error"})))
            .into_response();
    }
    match world.project_hooks.get(&project) {
        Some(hooks) => {
            let listed: Vec<Value> = hooks.iter().map(|h| as_listed(&world, h, true)).collect();
            paged(&listed, &paging)
        }
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "404 Project Not Found"}))).into_response(),
    }
}

/// The `X-Gitlab-Event` and sample payload GitLab sends to test `trigger`.
fn sample(trigger: &str) -> Option<(&'static str, &'static str)> {
    Some(match trigger {
        "push_events" => ("Push Hook", "push"),
        "tag_push_events" => ("Tag Push Hook", "tag_push"),
        "note_events" => ("Note Hook", "note"),
        "issues_events" => ("Issue Hook", "issue_open"),
        "merge_requests_events" => ("Merge Request Hook", "merge_request_open"),
        "pipeline_events" => ("Pipeline Hook", "pipeline_failed"),
        "job_events" => ("Job Hook", "job"),
        _ => return None,
    })
}

/// Sends one delivery to `hook` as GitLab does, unless the firewall drops it.
fn deliver(world: &Shared, hook: &Value, event: &'static str, body: Vec<u8>) -> tokio::task::JoinHandle<()> {
    let world = world.clone();
    let hook = hook.clone();
    // Queued as GitLab queues it (`WebHookWorker`), then the same delivery as a test's, and
    // the same backoff for a project hook.
    tokio::spawn(async move {
        let result = deliver_inline(&world, &hook, event, body).await;
        if hook.get("project_id").is_some() {
            let succeeded = matches!(result, Ok((200..=299, _)));
            after_delivery(&mut world.lock().unwrap(), hook["id"].as_u64().unwrap(), succeeded);
        }
    })
}

/// Sends one delivery while the caller waits, as a hook test does: the receiver's status and
/// body, or the HTTP client's error in Ruby's words.
async fn deliver_inline(world: &Shared, hook: &Value, event: &str, body: Vec<u8>) -> Result<(u16, String), String> {
    let (url, token, instance, through, failure, timeout_ms, user_agent) = {
        let w = world.lock().unwrap();
        let mut url = hook["url"].as_str().unwrap().to_owned();
        if let Some((public, address)) = &w.golive_behind {
            if let Some(rest) = url.strip_prefix(public.as_str()) {
                url = format!("{address}{rest}");
            }
        }
        let token = w.hook_tokens.get(&hook["id"].as_u64().unwrap()).cloned();
        let timeout = if w.webhook_timeout_ms == 0 { 300 } else { w.webhook_timeout_ms };
        let user_agent = format!("GitLab/{}", w.version_text());
        (url, token, w.instance_url.clone(), w.deliveries_get_through, w.path_failure, timeout, user_agent)
    };
    let public = url::Url::parse(hook["url"].as_str().unwrap()).unwrap();
    let (host, port) = (public.host_str().unwrap().to_owned(), public.port_or_known_default().unwrap());
    if !through {
        // A firewall that drops packets: GitLab waits its webhook_timeout, then Net::HTTP
        // gives up reading.
        tokio::time::sleep(std::time::Duration::from_millis(timeout_ms)).await;
        return Err("Net::ReadTimeout with #<TCPSocket:(closed)>".to_owned());
    }
    match failure {
        Some(PathFailure::Refused) => {
            return Err(format!(
                "Failed to open TCP connection to {host}:{port} (Connection refused - connect(2) for \"{host}\" port {port})"
            ))
        }
        Some(PathFailure::Tls) => {
            return Err(format!(
                "SSL_connect returned=1 errno=0 peeraddr=10.20.30.40:{port} state=error: certificate verify failed (unable to get local issuer certificate)"
            ))
        }
        None => {}
    }
    let mut request = reqwest::Client::new()
        .post(&url)
        .timeout(std::time::Duration::from_millis(timeout_ms.max(5_000)))
        .header("content-type", "application/json")
        .header("user-agent", user_agent)
        .header("x-gitlab-event", event)
        .header("x-gitlab-instance", instance)
        .header("x-gitlab-webhook-uuid", uuid::Uuid::new_v4().to_string())
        .header("x-gitlab-event-uuid", uuid::Uuid::new_v4().to_string())
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .body(body);
    if let Some(token) = token {
        request = request.header("x-gitlab-token", token);
    }
    let response = request.send().await.map_err(|e| format!("Errno::ECONNRESET: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    // `RESPONSE_BODY_SIZE_LIMIT`: GitLab keeps 8 KB of the receiver's body.
    let text: String = text.chars().take(8 * 1024).collect();
    world.lock().unwrap().delivered.push((event.to_owned(), status));
    Ok((status, text))
}

/// The message `TestHooks::ProjectService` gives when the project lacks sample data.
fn no_sample_message(trigger: &str) -> &'static str {
    match trigger {
        "push_events" | "tag_push_events" => "Ensure the project has at least one commit.",
        "note_events" | "confidential_note_events" | "emoji_events" => "Ensure the project has notes.",
        "issues_events" | "confidential_issues_events" => "Ensure the project has issues.",
        "merge_requests_events" => "Ensure the project has merge requests.",
        "job_events" => "Ensure the project has CI jobs.",
        "pipeline_events" => "Ensure the project has CI pipelines.",
        "releases_events" => "Ensure the project has releases.",
        _ => "Ensure the wiki is enabled and has pages.",
    }
}

/// Counts a hook test against the rate limit; `Some(response)` when refused.
fn rate_limited(world: &mut World) -> Option<Response> {
    world.tests_requested += 1;
    // 17.0: 3 a minute per hook; from 17.1: 5 a minute per project (or group) and user
    // (`web_hook_test` in `Gitlab::ApplicationRateLimiter`). A test run here lasts well under
    // a minute, so the count is over the fake's life.
    let by_version = match world.version() {
        v if v < (17, 0) => None,
        (17, 0) => Some(3),
        _ => Some(5),
    };
    match world.tests_before_rate_limit.or(by_version) {
        Some(allowed) if world.tests_requested > allowed => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                Json(
                    json!({"message": {"error": "This endpoint has been requested too many times. Try again later."}}),
                ),
            )
                .into_response(),
        ),
        _ => None,
    }
}

async fn test_hook(
    world: Shared,
    headers: HeaderMap,
    kind: &str,
    owner: u64,
    hook_id: u64,
    trigger: String,
) -> Response {
    let (hook, event) = {
        let mut w = world.lock().unwrap();
        w.calls.push(format!("POST /api/v4/{kind}/{owner}/hooks/{hook_id}/test/{trigger}"));
        if let Err(refused) = authorised(&w, &headers, false) {
            return refused;
        }
        let since = if kind == "groups" { (17, 1) } else { (16, 11) };
        if !w.test_routes || w.version() < since {
            return (StatusCode::NOT_FOUND, Json(json!({"error": "404 Not Found"}))).into_response();
        }
        let Some(event) = sample(&trigger) else {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "trigger does not have a valid value"})))
                .into_response();
        };
        let hooks = if kind == "groups" { w.group_hooks.get(&owner) } else { w.project_hooks.get(&owner) };
        let Some(hook) = hooks.and_then(|h| h.iter().find(|h| h["id"] == hook_id)).cloned() else {
            return (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response();
        };
        if let Some(refused) = rate_limited(&mut w) {
            return refused;
        }
        if w.no_sample_data.contains(&trigger) {
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": no_sample_message(&trigger)})))
                .into_response();
        }
        (hook, event)
    };
    // GitLab runs a hook test while the request waits (`force: true`: even a disabled hook
    // runs), and answers after the delivery.
    let result = deliver_inline(&world, &hook, event.0, crate::http::payload(event.1)).await;
    let succeeded = matches!(result, Ok((200..=299, _)));
    if kind == "projects" {
        after_delivery(&mut world.lock().unwrap(), hook_id, succeeded);
    }
    match result {
        Ok((200..=299, _)) => (StatusCode::CREATED, Json(json!({"message": "201 Created"}))).into_response(),
        Ok((_, body)) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": body}))).into_response(),
        Err(error) => (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": error}))).into_response(),
    }
}

async fn test_project_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, hook, trigger)): Path<(u64, u64, String)>,
) -> Response {
    test_hook(world, headers, "projects", project, hook, trigger).await
}

async fn test_group_hook(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((group, hook, trigger)): Path<(u64, u64, String)>,
) -> Response {
    test_hook(world, headers, "groups", group, hook, trigger).await
}

/// `POST /api/v4/hooks/:id`: GitLab's system hook test sends a sample system event.
async fn test_system_hook(State(world): State<Shared>, headers: HeaderMap, Path(hook_id): Path<u64>) -> Response {
    let hook = {
        let mut w = world.lock().unwrap();
        w.calls.push(format!("POST /api/v4/hooks/{hook_id}"));
        if let Err(refused) = authorised(&w, &headers, true) {
            return refused;
        }
        match w.system_hooks.iter().find(|h| h["id"] == hook_id).cloned() {
            Some(hook) => hook,
            None => return (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response(),
        }
    };
    // `lib/api/system_hooks.rb` mounts `Hooks::Test` with this data; the delivery's result is
    // not read, and the answer is the data, 201.
    let body = json!({"event_name": "project_create", "name": "Ruby", "path": "ruby", "project_id": 1,
        "owner_name": "Someone", "owner_email": "example@gitlabhq.com"});
    let _ = deliver_inline(&world, &hook, "System Hook", serde_json::to_vec(&body).unwrap()).await;
    (StatusCode::CREATED, Json(body)).into_response()
}

/// Sends a delivery of `event` for something that happened in `project` to every hook that
/// listens there (the project's hooks and its group's) with `field` on.
fn deliver_event(world: &Shared, project: u64, field: &str, event: &'static str, fixture: &str) {
    let hooks: Vec<Value> = {
        let w = world.lock().unwrap();
        let group = w.project_groups.get(&project).copied();
        w.project_hooks
            .get(&project)
            .into_iter()
            .flatten()
            .chain(group.and_then(|g| w.group_hooks.get(&g)).into_iter().flatten())
            .filter(|h| h[field] == true)
            .cloned()
            .collect()
    };
    for hook in hooks {
        // Scenario deliveries follow GitLab's answer, as GitLab queues them.
        drop(deliver(world, &hook, event, crate::http::payload(fixture)));
    }
}

fn known_project(world: &World, project: u64) -> bool {
    (world.projects.contains(&project) || world.created_projects.contains(&project))
        && !world.deleted_projects.contains(&project)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "404 Project Not Found"}))).into_response()
}

async fn create_project(State(world): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push("POST /api/v4/projects".into());
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    let Some(group) = body["namespace_id"].as_u64() else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "namespace_id is invalid"}))).into_response();
    };
    if let Some(other) = w.created_project_is {
        let answer = json!({"id": other, "name": "production", "path": "production", "default_branch": "main",
            "namespace": {"id": group, "kind": "group"}});
        return (StatusCode::CREATED, Json(answer)).into_response();
    }
    let id = 500 + w.created_projects.len() as u64;
    w.created_projects.push(id);
    w.project_groups.insert(id, group);
    w.project_hooks.insert(id, Vec::new());
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "name": body["name"], "path": body["path"], "default_branch": "main",
        "visibility": body["visibility"], "namespace": {"id": group, "kind": "group"}})),
    )
        .into_response()
}

async fn get_project(State(world): State<Shared>, headers: HeaderMap, Path(project): Path<u64>) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push(format!("GET /api/v4/projects/{project}"));
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    if !known_project(&w, project) {
        return not_found();
    }
    if w.project_reads_fail {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"message": "500 Internal Server Error"})))
            .into_response();
    }
    Json(json!({"id": project, "default_branch": "main", "name": format!("project {project}")})).into_response()
}

async fn delete_project(State(world): State<Shared>, headers: HeaderMap, Path(project): Path<u64>) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push(format!("DELETE /api/v4/projects/{project}"));
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    if !known_project(&w, project) {
        return not_found();
    }
    w.deleted_projects.push(project);
    (StatusCode::ACCEPTED, Json(json!({"message": "202 Accepted"}))).into_response()
}

/// The writes of a scenario: a commit, a merge request, an issue, a pipeline; each answered
/// as GitLab answers and followed by its delivery.
async fn project_write(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, what)): Path<(u64, String)>,
    request: axum::extract::Request,
) -> Response {
    {
        let mut w = world.lock().unwrap();
        w.calls.push(format!("{} /api/v4/projects/{project}/{what}", request.method()));
        if let Err(refused) = authorised(&w, &headers, false) {
            return refused;
        }
        if !known_project(&w, project) {
            return not_found();
        }
    }
    let (field, event, fixture, answer) = match what.as_str() {
        "repository/commits" => (
            "push_events",
            "Push Hook",
            "push",
            json!({"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "short_id": "da156088"}),
        ),
        "merge_requests" => (
            "merge_requests_events",
            "Merge Request Hook",
            "merge_request_open",
            json!({"id": 99, "iid": 1, "state": "opened"}),
        ),
        "issues" => ("issues_events", "Issue Hook", "issue_open", json!({"id": 301, "iid": 23, "state": "opened"})),
        "pipeline" => ("pipeline_events", "Pipeline Hook", "pipeline_failed", json!({"id": 31, "status": "pending"})),
        _ => return not_found(),
    };
    deliver_event(&world, project, field, event, fixture);
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn push_commit(
    world: State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    request: axum::extract::Request,
) -> Response {
    project_write(world, headers, Path((id, "repository/commits".to_owned())), request).await
}

async fn open_merge_request(
    world: State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    request: axum::extract::Request,
) -> Response {
    project_write(world, headers, Path((id, "merge_requests".to_owned())), request).await
}

async fn open_issue(
    world: State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    request: axum::extract::Request,
) -> Response {
    project_write(world, headers, Path((id, "issues".to_owned())), request).await
}

async fn create_pipeline(
    world: State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    request: axum::extract::Request,
) -> Response {
    project_write(world, headers, Path((id, "pipeline".to_owned())), request).await
}

/// Notes of a merge request or an issue: the Droid's comment when the world has one.
async fn notes(
    State(world): State<Shared>,
    headers: HeaderMap,
    Path((project, kind, iid)): Path<(u64, String, u64)>,
) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push(format!("GET /api/v4/projects/{project}/{kind}/{iid}/notes"));
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    let notes = match &w.droid_comments_as {
        Some(username) => {
            json!([{"id": 1301, "body": "I reviewed this change.", "author": {"id": 90, "username": username, "name": "Droid"}, "system": false}])
        }
        None => {
            json!([{"id": 1300, "body": "assigned to @root", "author": {"id": 1, "username": "root"}, "system": true}])
        }
    };
    Json(notes).into_response()
}

/// Closing a merge request or an issue, deleting a branch.
async fn project_update(State(world): State<Shared>, headers: HeaderMap, request: axum::extract::Request) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push(format!("{} {}", request.method(), request.uri().path()));
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    if request.method() == axum::http::Method::DELETE {
        return StatusCode::NO_CONTENT.into_response();
    }
    Json(json!({"state": "closed"})).into_response()
}

async fn version(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push("GET /api/v4/version".into());
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    Json(json!({"version": w.version_text(), "revision": "6f1e2c3d4b5"})).into_response()
}

async fn user(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push("GET /api/v4/user".into());
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    let token = headers.get("private-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut answer = json!({"id": 1, "username": "root", "name": "Administrator", "state": "active",
        "locked": false, "avatar_url": null, "web_url": format!("{}/root", w.instance_url),
        "created_at": "2026-01-05T09:00:00.000Z", "email": "admin@example.com", "commit_email": "admin@example.com",
        "bio": "", "location": "", "pronouns": null, "skype": "", "linkedin": "", "twitter": "", "website_url": "",
        "organization": "", "last_sign_in_at": "2026-12-01T08:00:00.000Z", "confirmed_at": "2026-01-05T09:00:00.000Z",
        "color_scheme_id": 1, "projects_limit": 100000, "current_sign_in_at": "2026-12-03T08:00:00.000Z",
        "identities": [], "can_create_group": true, "can_create_project": true, "two_factor_enabled": false,
        "external": false, "namespace_id": 1});
    // `UserWithAdmin` exposes `is_admin` for an admin, whatever Admin Mode says.
    if token == w.admin_token {
        answer["is_admin"] = json!(true);
    }
    Json(answer).into_response()
}

async fn token_self(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    w.calls.push("GET /api/v4/personal_access_tokens/self".into());
    if let Err(refused) = authorised(&w, &headers, false) {
        return refused;
    }
    if w.version() < (15, 5) {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "404 Not Found"}))).into_response();
    }
    Json(json!({"id": 42, "name": "factory", "revoked": false, "created_at": "2026-10-01T09:00:00.000Z",
        "scopes": w.scopes(), "user_id": 1, "last_used_at": null, "active": true, "expires_at": "2027-10-01"}))
    .into_response()
}

/// Keeps every answer (status and JSON body) for the shape test.
async fn keep_answer(
    State(world): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (method, path) = (request.method().to_string(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    world.lock().unwrap().answers.push((method, path, parts.status.as_u16(), json));
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

async fn anything_else(State(world): State<Shared>, request: axum::extract::Request) -> Response {
    world.lock().unwrap().calls.push(format!("{} {}", request.method(), request.uri().path()));
    (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not Found"}))).into_response()
}

pub fn router(world: Shared) -> Router {
    Router::new()
        .route("/api/v4/applications", get(applications))
        .route("/api/v4/hooks", get(system_hooks))
        .route("/api/v4/hooks/{id}", post(test_system_hook))
        .route("/api/v4/groups", get(groups))
        .route("/api/v4/projects", get(projects).post(create_project))
        .route("/api/v4/projects/{id}", get(get_project).delete(delete_project))
        .route("/api/v4/projects/{id}/repository/commits", post(push_commit))
        .route("/api/v4/projects/{id}/merge_requests", post(open_merge_request))
        .route("/api/v4/projects/{id}/issues", post(open_issue))
        .route("/api/v4/projects/{id}/pipeline", post(create_pipeline))
        .route("/api/v4/projects/{id}/{kind}/{iid}/notes", get(notes))
        .route("/api/v4/projects/{id}/merge_requests/{iid}", axum::routing::put(project_update))
        .route("/api/v4/projects/{id}/issues/{iid}", axum::routing::put(project_update))
        .route("/api/v4/projects/{id}/repository/branches/{branch}", axum::routing::delete(project_update))
        .route("/api/v4/groups/{id}/hooks", get(group_hooks))
        .route("/api/v4/projects/{id}/hooks", get(project_hooks))
        .route("/api/v4/groups/{id}/hooks/{hook_id}/test/{trigger}", post(test_group_hook))
        .route("/api/v4/projects/{id}/hooks/{hook_id}/test/{trigger}", post(test_project_hook))
        .route("/api/v4/version", get(version))
        .route("/api/v4/user", get(user))
        .route("/api/v4/personal_access_tokens/self", get(token_self))
        .fallback(anything_else)
        .layer(axum::middleware::from_fn_with_state(world.clone(), keep_answer))
        .with_state(world)
}

/// A running fake: its URL (`https://localhost:port`), the CA that signed its certificate, and
/// its world.
pub struct FakeGitlab {
    pub url: String,
    pub ca_pem: String,
    pub world: Shared,
}

impl FakeGitlab {
    pub async fn start(world: World) -> FakeGitlab {
        let ca = crate::probe::test_ca();
        let (cert, key) = crate::probe::leaf(&ca, true);
        let world = Arc::new(Mutex::new(world));
        let url = crate::probe::serve_tls(router(world.clone()), cert, key).await;
        world.lock().unwrap().instance_url = url.clone();
        FakeGitlab { url, ca_pem: ca.ca_pem, world }
    }

    pub fn calls(&self) -> Vec<String> {
        self.world.lock().unwrap().calls.clone()
    }
}

/// A GitLab hook as the hooks API lists it, with every trigger of `triggers` on.
pub fn hook(id: u64, url: &str, triggers: &[&str], ssl: bool, owner: Option<(&str, u64)>) -> Value {
    let mut hook = json!({
        "id": id,
        "url": url,
        "name": "Factory",
        "description": "",
        "created_at": "2026-11-30T08:00:00.000Z",
        "push_events": false,
        "tag_push_events": false,
        "merge_requests_events": false,
        "repository_update_events": false,
        "enable_ssl_verification": ssl,
        "alert_status": "executable",
        "disabled_until": null,
        "url_variables": [],
        "push_events_branch_filter": null,
        "branch_filter_strategy": "wildcard",
        "custom_webhook_template": null,
        "custom_headers": [],
    });
    if let Some((kind, owner_id)) = owner {
        for field in [
            "issues_events",
            "confidential_issues_events",
            "note_events",
            "confidential_note_events",
            "pipeline_events",
            "wiki_page_events",
            "deployment_events",
            "job_events",
            "releases_events",
            "emoji_events",
            "resource_access_token_events",
            "feature_flag_events",
        ] {
            hook[field] = json!(false);
        }
        hook[if kind == "group" { "group_id" } else { "project_id" }] = json!(owner_id);
    }
    for trigger in triggers {
        hook[*trigger] = json!(true);
    }
    hook
}
