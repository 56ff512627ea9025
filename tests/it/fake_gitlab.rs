//! A fake GitLab written from GitLab's API documentation, served over TLS with an internal CA:
//! applications (`GET /api/v4/applications`), system hooks (`GET /api/v4/hooks`,
//! `POST /api/v4/hooks/:id`), group and project hooks and their test routes
//! (`POST /{groups,projects}/:id/hooks/:hook_id/test/:trigger`), groups and projects, paged with
//! `per_page`/`page` and `X-Next-Page` as GitLab pages. A test request sends a real delivery
//! back to the hook's URL with GitLab's headers and the sample payloads of `fixtures/gitlab`.
//!
//! The world is data a test shapes: which applications and hooks exist, whether the test route
//! exists (older GitLab), whether hook tests are rate limited, whether deliveries get through
//! the customer's firewall.

use std::collections::BTreeMap;
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
    if let Err(refused) = authorised(&world, &headers, true) {
        return refused;
    }
    paged(&world.applications, &paging)
}

async fn system_hooks(State(world): State<Shared>, headers: HeaderMap, Query(paging): Query<Paging>) -> Response {
    let mut world = world.lock().unwrap();
    world.calls.push("GET /api/v4/hooks".into());
    if let Err(refused) = authorised(&world, &headers, true) {
        return refused;
    }
    paged(&world.system_hooks, &paging)
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
        Some(hooks) => paged(hooks, &paging),
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
    match world.project_hooks.get(&project) {
        Some(hooks) => paged(hooks, &paging),
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
    tokio::spawn(async move {
        let (url, token, instance) = {
            let w = world.lock().unwrap();
            if !w.deliveries_get_through {
                return;
            }
            let mut url = hook["url"].as_str().unwrap().to_owned();
            if let Some((public, address)) = &w.golive_behind {
                if let Some(rest) = url.strip_prefix(public.as_str()) {
                    url = format!("{address}{rest}");
                }
            }
            let token = w.hook_tokens.get(&hook["id"].as_u64().unwrap()).cloned();
            (url, token, w.instance_url.clone())
        };
        let mut request = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "GitLab/17.6.1-ee")
            .header("x-gitlab-event", event)
            .header("x-gitlab-instance", instance)
            .header("x-gitlab-webhook-uuid", uuid::Uuid::new_v4().to_string())
            .header("x-gitlab-event-uuid", uuid::Uuid::new_v4().to_string())
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .body(body);
        if let Some(token) = token {
            request = request.header("x-gitlab-token", token);
        }
        let status = request.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        world.lock().unwrap().delivered.push((event.to_owned(), status));
    })
}

/// Counts a hook test against the rate limit; `Some(response)` when refused.
fn rate_limited(world: &mut World) -> Option<Response> {
    world.tests_requested += 1;
    match world.tests_before_rate_limit {
        Some(allowed) if world.tests_requested > allowed => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"message": "This endpoint has been requested too many times. Try again later."})),
            )
                .into_response();
            response.headers_mut().insert("retry-after", "45".parse().unwrap());
            Some(response)
        }
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
        if !w.test_routes {
            return (StatusCode::NOT_FOUND, Json(json!({"error": "404 Not Found"}))).into_response();
        }
        if let Some(refused) = rate_limited(&mut w) {
            return refused;
        }
        let hooks = if kind == "groups" { w.group_hooks.get(&owner) } else { w.project_hooks.get(&owner) };
        let Some(hook) = hooks.and_then(|h| h.iter().find(|h| h["id"] == hook_id)).cloned() else {
            return (StatusCode::NOT_FOUND, Json(json!({"message": "404 Hook Not Found"}))).into_response();
        };
        let Some(event) = sample(&trigger) else {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "trigger does not have a valid value"})))
                .into_response();
        };
        (hook, event)
    };
    // GitLab runs a hook test while the request waits, and answers after the delivery: so
    // the delivery reaches golive before golive hears that GitLab accepted.
    let _ = deliver(&world, &hook, event.0, crate::http::payload(event.1)).await;
    (StatusCode::CREATED, Json(json!({"message": "201 Created"}))).into_response()
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
        if let Some(refused) = rate_limited(&mut w) {
            return refused;
        }
        match w.system_hooks.iter().find(|h| h["id"] == hook_id).cloned() {
            Some(hook) => hook,
            None => return (StatusCode::NOT_FOUND, Json(json!({"message": "404 Not found"}))).into_response(),
        }
    };
    let body = json!({"event_name": "project_create", "created_at": "2026-11-30T09:00:00Z", "name": "StoreCloud",
        "owner_email": "johnsmith@example.com", "owner_name": "John Smith", "path": "storecloud",
        "path_with_namespace": "jsmith/storecloud", "project_id": 74, "project_visibility": "private"});
    let _ = deliver(&world, &hook, "System Hook", serde_json::to_vec(&body).unwrap()).await;
    Json(body).into_response()
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
        .fallback(anything_else)
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
