//! golive's checks of the guide through GitLab's REST API, with the customer's admin token.
//!
//! - The application: `GET /api/v4/applications` (admin), paged, finds the application by its
//!   Application ID and compares its name, callback URL and confidentiality with the playbook.
//! - The webhook: the hook whose URL is the issued webhook URL, among system hooks
//!   (`GET /api/v4/hooks`), a named group's or project's hooks, or — when the customer did not
//!   say where — every group's and project's hooks within a bounded number of lists.
//! - Test deliveries: `POST /projects/:id/hooks/:hook_id/test/:trigger`, the group equivalent,
//!   or `POST /hooks/:id` for a system hook, read as GitLab answers them ([`super::test_route`]):
//!   201 delivered; 422 a failed delivery, golive's own refusal, or no sample data; a GitLab
//!   older than the route is "not available" without asking; a 429 is "rate limited, retry at"
//!   (never a failure).
//! - A search that could not read a list (429, 5xx) is incomplete and never says "not found".
//!
//! The custody rules of the probe hold here too, and share its code: only the instance of
//! record is contacted, through the egress policy's checked addresses, with an internal CA
//! added to the roots (never verification switched off), no redirect followed, no proxy, every
//! answer bounded in size and time, every list bounded in pages. What is returned is golive's
//! classification: booleans, GitLab's numeric ids, triggers from golive's list, fixed sentences.
//! GitLab's names, URLs and messages are compared and dropped.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
pub use reqwest::Method;
use serde_json::Value;

use super::branch_filter::BranchFilter;
use super::egress::EgressPolicy;
use super::probe::{classify_status, classify_transport, client, failure, Failure, Origin, ProbeConfig, ProbeTarget};
use crate::domain::{
    ApplicationFinding, CheckFailure, FindingCategory, HookAlert, HookLocation, LongText, TestRequestOutcome, Trigger,
    WebhookFinding,
};

/// Limits of the checks' searches, beyond one call's limits ([`ProbeConfig`]).
#[derive(Debug, Clone)]
pub struct SearchLimits {
    /// Pages read of one list (100 entries each).
    pub max_pages: u32,
    /// Hook lists read when searching every group and project for the webhook.
    pub max_hook_lists: u32,
    /// The longest a search for the webhook may take, however slowly GitLab answers.
    pub max_search: Duration,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits { max_pages: 20, max_hook_lists: 200, max_search: Duration::from_secs(180) }
    }
}

/// Where the customer said the webhook lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPlace {
    Group(u64),
    Project(u64),
}

/// How long to wait before asking again, from a 429's `Retry-After` (seconds only, at most an
/// hour; 60 s when absent or unreadable).
pub fn retry_after_seconds(value: Option<&str>) -> u64 {
    value.and_then(|v| v.trim().parse::<u64>().ok()).map(|s| s.clamp(1, 3600)).unwrap_or(60)
}

/// An open connection to the instance of record, with the customer's token.
pub struct GitlabApi {
    http: reqwest::Client,
    base: String,
    token: String,
    config: ProbeConfig,
    origin: Origin,
    /// GitLab's version as `(major, minor)`, read once when connecting; `None` when GitLab did
    /// not say (the checks then try each route and read its answer).
    version: Option<(u32, u32)>,
}

/// `(major, minor)` of a version GitLab's way (`17.5.1-ee`).
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = super::probe::gitlab_version(version)?.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The first GitLab versions with each route golive uses (GitLab's API documentation and the
/// route files named in docs/gitlab-fidelity.md).
pub mod since {
    /// `GET /api/v4/personal_access_tokens/self`.
    pub const TOKEN_SELF: (u32, u32) = (15, 5);
    /// `POST /projects/:id/hooks/:hook_id/test/:trigger`.
    pub const PROJECT_HOOK_TEST: (u32, u32) = (16, 11);
    /// `POST /groups/:id/hooks/:hook_id/test/:trigger` (GitLab Premium).
    pub const GROUP_HOOK_TEST: (u32, u32) = (17, 1);
}

/// One answer: its status, its JSON body (Null when not JSON), and the headers golive reads.
struct Answer {
    status: u16,
    json: Value,
    next_page: Option<u32>,
    retry_after: Option<String>,
}

fn into_check_failure(failed: Failure, token: &str) -> CheckFailure {
    let detail: String = failed.detail.replace(token, "[redacted]").chars().take(1000).collect();
    CheckFailure { category: failed.category, detail: LongText::parse(detail).expect("golive's own sentence is valid") }
}

impl GitlabApi {
    /// Resolves and checks the instance's address under the egress policy and builds the client.
    pub async fn connect(
        target: &ProbeTarget,
        config: &ProbeConfig,
        egress: &EgressPolicy,
    ) -> Result<GitlabApi, CheckFailure> {
        let refuse = |detail: String| into_check_failure(failure(FindingCategory::ApiFailure, detail), &target.token);
        let Some(parsed) = url::Url::parse(&target.gitlab_url).ok().filter(|u| u.host().is_some()) else {
            return Err(refuse("the instance URL names no host golive can check".to_owned()));
        };
        let host = parsed.host().expect("checked above");
        let destination =
            egress.resolve_checked(&host, config.connect_timeout).await.map_err(|e| refuse(e.to_string()))?;
        let origin = Origin { host: destination.host.clone(), port: parsed.port_or_known_default().unwrap_or(443) };
        let http = client(target, config, &destination).map_err(|f| into_check_failure(f, &target.token))?;
        let mut api = GitlabApi {
            http,
            base: target.gitlab_url.trim_end_matches('/').to_owned(),
            token: target.token.clone(),
            config: config.clone(),
            origin,
            version: None,
        };
        // The version decides which routes exist; an instance that does not say is asked
        // route by route.
        if let Ok(answer) = api.send(Method::GET, "/api/v4/version").await {
            api.version = answer
                .json
                .get("version")
                .and_then(Value::as_str)
                .and_then(major_minor)
                .filter(|_| answer.status == 200);
        }
        Ok(api)
    }

    /// GitLab's version, when it said.
    pub fn version(&self) -> Option<(u32, u32)> {
        self.version
    }

    /// Whether this GitLab is older than `since` (unknown: not older).
    fn older_than(&self, since: (u32, u32)) -> bool {
        self.version.is_some_and(|v| v < since)
    }

    fn failed(&self, failed: Failure) -> CheckFailure {
        into_check_failure(failed, &self.token)
    }

    /// Sends one call; any status is an answer, a transport failure or an oversized answer is
    /// a failure.
    async fn send(&self, method: Method, path: &str) -> Result<Answer, CheckFailure> {
        self.send_json(method, path, None).await
    }

    /// [`GitlabApi::send`] with a JSON body.
    async fn send_json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer, CheckFailure> {
        self.send_within(method, path, body, None).await
    }

    /// [`GitlabApi::send_json`] with its own time limit in place of the client's.
    async fn send_within(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
    ) -> Result<Answer, CheckFailure> {
        let url = format!("{}{path}", self.base);
        let call = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut request = self.http.request(method, &url).header("PRIVATE-TOKEN", &self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let mut response = request.send().await.map_err(|e| self.failed(classify_transport(&e, &self.origin)))?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let next_page = header("x-next-page").and_then(|v| v.trim().parse::<u32>().ok());
        let retry_after = header("retry-after");
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > self.config.max_body_bytes {
                        return Err(self.failed(failure(
                            FindingCategory::ApiFailure,
                            format!("{call}: the answer is larger than {} bytes", self.config.max_body_bytes),
                        )));
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.failed(classify_transport(&e, &self.origin))),
            }
        }
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Answer { status, json, next_page, retry_after })
    }

    /// Reads a list page by page (100 per page) until `keep` says stop, the last page, or the
    /// page limit. Returns whether the list was read to its end.
    async fn each_page(
        &self,
        path: &str,
        max_pages: u32,
        keep: impl FnMut(&Value) -> bool,
    ) -> Result<bool, CheckFailure> {
        self.each_page_or_status(path, max_pages, keep).await.map_err(|(_, failed)| failed)
    }

    /// [`GitlabApi::each_page`], saying which status GitLab answered when it refused a page
    /// (`None`: no answer, or an answer that is not a list).
    async fn each_page_or_status(
        &self,
        path: &str,
        max_pages: u32,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> Result<bool, (Option<u16>, CheckFailure)> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut page = 1;
        for _ in 0..max_pages {
            let answer = self
                .send(Method::GET, &format!("{path}{separator}per_page=100&page={page}"))
                .await
                .map_err(|failed| (None, failed))?;
            if !(200..300).contains(&answer.status) {
                let call = format!("GET {}", path.split('?').next().unwrap_or(path));
                return Err((Some(answer.status), self.failed(classify_status(&call, answer.status, &answer.json))));
            }
            let Some(entries) = answer.json.as_array() else {
                return Err((
                    None,
                    self.failed(failure(
                        FindingCategory::ApiFailure,
                        format!("GET {path}: the answer is not a list; not GitLab's API?"),
                    )),
                ));
            };
            for entry in entries {
                if !keep(entry) {
                    return Ok(true);
                }
            }
            match answer.next_page {
                Some(next) if next > page => page = next,
                _ => return Ok(true),
            }
        }
        Ok(false)
    }
}

/// The application check: finds `application_id` among GitLab's applications and compares.
pub async fn check_application(
    api: &GitlabApi,
    application_id: &str,
    expected_name: &str,
    expected_callback_url: &str,
    limits: &SearchLimits,
) -> ApplicationFinding {
    let mut found = None;
    let listed = api
        .each_page("/api/v4/applications", limits.max_pages, |entry| {
            if entry.get("application_id").and_then(Value::as_str) != Some(application_id) {
                return true;
            }
            // A callback URL may hold several URIs, one per line: the redirect URI must be one.
            let callback_url_matches = entry
                .get("callback_url")
                .and_then(Value::as_str)
                .is_some_and(|urls| urls.split_whitespace().any(|url| url == expected_callback_url));
            found = Some(ApplicationFinding::Found {
                name_matches: entry.get("application_name").and_then(Value::as_str) == Some(expected_name),
                callback_url_matches,
                confidential: entry.get("confidential").and_then(Value::as_bool).unwrap_or(false),
            });
            false
        })
        .await;
    match (listed, found) {
        (_, Some(finding)) => finding,
        (Ok(true), None) => ApplicationFinding::NotFound,
        (Ok(false), None) => ApplicationFinding::Failed(CheckFailure {
            category: FindingCategory::ApiFailure,
            detail: LongText::parse(format!(
                "GET /api/v4/applications: the application was not among the first {} pages; golive stopped there",
                limits.max_pages
            ))
            .expect("valid"),
        }),
        (Err(failed), None) => ApplicationFinding::Failed(failed),
    }
}

/// The hook's `*_events` field for each playbook trigger (the names of GitLab's hook API).
pub fn hook_field(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Push => "push_events",
        Trigger::TagPush => "tag_push_events",
        Trigger::Comments => "note_events",
        Trigger::MergeRequests => "merge_requests_events",
        Trigger::Issues => "issues_events",
        Trigger::CiCd => "pipeline_events",
        Trigger::Jobs => "job_events",
        Trigger::Deployments => "deployment_events",
        Trigger::Releases => "releases_events",
    }
}

/// GitLab's `alert_status` and `disabled_until` (`lib/api/entities/hook.rb`), as golive words
/// them; `None` when the answer has no `alert_status` (a GitLab that does not list it).
fn alert_of(hook: &Value) -> Option<HookAlert> {
    Some(match hook.get("alert_status")?.as_str()? {
        "executable" => HookAlert::Executable,
        "temporarily_disabled" => HookAlert::TemporarilyDisabled {
            until: hook
                .get("disabled_until")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
        },
        "disabled" => HookAlert::Disabled,
        _ => return None,
    })
}

fn finding_of(hook: &Value, location: HookLocation) -> Option<WebhookFinding> {
    let hook_id = hook.get("id").and_then(Value::as_u64)?;
    let triggers: BTreeSet<Trigger> = Trigger::ALL
        .into_iter()
        .filter(|t| location.can_send(*t) && hook.get(hook_field(*t)).and_then(Value::as_bool) == Some(true))
        .collect();
    let push_filter = BranchFilter::from_hook(
        hook.get("push_events_branch_filter").and_then(Value::as_str),
        hook.get("branch_filter_strategy").and_then(Value::as_str),
    )
    .map(|filter| filter.conclusions());
    Some(WebhookFinding::Found {
        location,
        hook_id,
        triggers,
        ssl_verification: hook.get("enable_ssl_verification").and_then(Value::as_bool).unwrap_or(false),
        alert: alert_of(hook),
        push_filter,
        custom_template: hook
            .get("custom_webhook_template")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.trim().is_empty()),
    })
}

/// The push filter of the hook the check found, kept in memory for a scenario run (the pattern
/// is the customer's text: used to choose a branch, never recorded).
pub fn push_filter_of(hook: &Value) -> Option<BranchFilter> {
    BranchFilter::from_hook(
        hook.get("push_events_branch_filter").and_then(Value::as_str),
        hook.get("branch_filter_strategy").and_then(Value::as_str),
    )
}

/// Looks through one hook list for the hook with `url`; the hook's listing comes back with
/// the finding.
async fn search_list(
    api: &GitlabApi,
    path: &str,
    location: HookLocation,
    url: &str,
    limits: &SearchLimits,
) -> Result<(Option<(WebhookFinding, Value)>, bool), (Option<u16>, CheckFailure)> {
    let mut found = None;
    let complete = api
        .each_page_or_status(path, limits.max_pages, |hook| {
            if hook.get("url").and_then(Value::as_str) == Some(url) {
                found = finding_of(hook, location).map(|finding| (finding, hook.clone()));
                return found.is_none();
            }
            true
        })
        .await?;
    Ok((found, complete))
}

/// Collects the numeric ids of a list of groups or projects, within the page limit.
async fn ids_of(api: &GitlabApi, path: &str, limits: &SearchLimits) -> Result<(Vec<u64>, bool), CheckFailure> {
    let mut ids = Vec::new();
    let complete = api
        .each_page(path, limits.max_pages, |entry| {
            ids.extend(entry.get("id").and_then(Value::as_u64));
            true
        })
        .await?;
    Ok((ids, complete))
}

/// The webhook check: the hook whose URL is `url`, where the customer said, else everywhere
/// within the limits.
pub async fn find_webhook(
    api: &GitlabApi,
    url: &str,
    place: Option<HookPlace>,
    limits: &SearchLimits,
) -> WebhookFinding {
    find_webhook_listing(api, url, place, limits).await.0
}

/// [`find_webhook`], with the hook's listing as GitLab gave it (for a scenario run's branch).
pub async fn find_webhook_listing(
    api: &GitlabApi,
    url: &str,
    place: Option<HookPlace>,
    limits: &SearchLimits,
) -> (WebhookFinding, Option<Value>) {
    match search_hooks(api, url, place, limits).await {
        Ok((finding, listing)) => (finding, listing),
        Err(failed) => (WebhookFinding::Failed(failed), None),
    }
}

async fn search_hooks(
    api: &GitlabApi,
    url: &str,
    place: Option<HookPlace>,
    limits: &SearchLimits,
) -> Result<(WebhookFinding, Option<Value>), CheckFailure> {
    let mut searched = Vec::new();
    let mut complete = true;
    let mut lists_read = 0u32;
    let started = std::time::Instant::now();
    let mut places = vec![HookLocation::System];
    match place {
        Some(HookPlace::Group(group_id)) => places.push(HookLocation::Group { group_id }),
        Some(HookPlace::Project(project_id)) => places.push(HookLocation::Project { project_id }),
        None => {
            let (groups, all_groups) = ids_of(api, "/api/v4/groups?all_available=true", limits).await?;
            let (projects, all_projects) = ids_of(api, "/api/v4/projects?simple=true", limits).await?;
            complete &= all_groups && all_projects;
            places.extend(groups.into_iter().map(|group_id| HookLocation::Group { group_id }));
            places.extend(projects.into_iter().map(|project_id| HookLocation::Project { project_id }));
        }
    }
    for location in places {
        if lists_read >= limits.max_hook_lists || started.elapsed() >= limits.max_search {
            complete = false;
            break;
        }
        lists_read += 1;
        let path = match location {
            HookLocation::System => "/api/v4/hooks".to_owned(),
            HookLocation::Group { group_id } => format!("/api/v4/groups/{group_id}/hooks"),
            HookLocation::Project { project_id } => format!("/api/v4/projects/{project_id}/hooks"),
        };
        let listed = match search_list(api, &path, location, url, limits).await {
            Ok(listed) => listed,
            // While searching every group and project: a 404 or 403 means "no hooks golive
            // may see here" (group hooks need GitLab Premium); a 429 or 5xx means this list
            // was not read, so the search is incomplete and can say no "not found". Where
            // the customer pointed, and for system hooks, any refusal is the answer.
            Err((Some(status), failed)) if place.is_none() && !matches!(location, HookLocation::System) => match status
            {
                403 | 404 => continue,
                429 | 500..=599 => {
                    complete = false;
                    continue;
                }
                _ => return Err(failed),
            },
            Err((_, failed)) => return Err(failed),
        };
        searched.push(location);
        let (found, read_whole_list) = listed;
        if let Some((finding, listing)) = found {
            return Ok((finding, Some(listing)));
        }
        complete &= read_whole_list;
    }
    // Only the places named in the finding: a search of every group and project names them
    // by count, not one by one.
    if searched.len() > 8 {
        searched.truncate(8);
        complete = false;
    }
    Ok((WebhookFinding::NotFound { searched, complete }, None))
}

/// Asks GitLab to send a test delivery of `trigger` through the hook, and reads GitLab's
/// answer as GitLab's code gives it ([`super::test_route`]). GitLab runs the delivery while
/// the request waits, so the request may take GitLab's whole webhook timeout (10 s by default)
/// and more: `timeout` is its own ceiling, well above GitLab's.
pub async fn request_test_delivery(
    api: &GitlabApi,
    location: HookLocation,
    hook_id: u64,
    trigger: Trigger,
    now: DateTime<Utc>,
    timeout: Duration,
) -> TestRequestOutcome {
    if !location.can_send(trigger) {
        return TestRequestOutcome::NotTestable;
    }
    let not_before = |what: &str, since: (u32, u32)| {
        let (major, minor) = api.version().unwrap_or_default();
        TestRequestOutcome::NotAvailable {
            reason: Some(
                LongText::parse(format!(
                    "GitLab {major}.{minor} cannot test {what} through its API (it can from {}.{}): press Test on the hook in GitLab",
                    since.0, since.1
                ))
                .expect("valid"),
            ),
        }
    };
    let path = match location {
        HookLocation::System => format!("/api/v4/hooks/{hook_id}"),
        HookLocation::Group { group_id } => {
            if api.older_than(since::GROUP_HOOK_TEST) {
                return not_before("group hooks", since::GROUP_HOOK_TEST);
            }
            format!("/api/v4/groups/{group_id}/hooks/{hook_id}/test/{}", hook_field(trigger))
        }
        HookLocation::Project { project_id } => {
            if api.older_than(since::PROJECT_HOOK_TEST) {
                return not_before("project hooks", since::PROJECT_HOOK_TEST);
            }
            format!("/api/v4/projects/{project_id}/hooks/{hook_id}/test/{}", hook_field(trigger))
        }
    };
    let answer = match api.send_within(Method::POST, &path, None, Some(timeout)).await {
        Ok(answer) => answer,
        Err(failed) => return TestRequestOutcome::Failed(failed),
    };
    // A system hook's test (`lib/api/hooks/test.rb`) answers 201 with its sample data whatever
    // the delivery did: only the delivery's arrival at golive tells.
    match super::test_route::classify_answer(answer.status, &answer.json, answer.retry_after.as_deref(), trigger, now) {
        Some(outcome) => outcome,
        None => TestRequestOutcome::Failed(api.failed(classify_status(
            &format!("POST {path}"),
            answer.status,
            &answer.json,
        ))),
    }
}

/// A write to the customer's GitLab for a scenario run: sends `body` and answers GitLab's
/// numeric `id_field` of what it made (none asked: `None`). Any status outside 2xx is a
/// failure in golive's words.
pub async fn write(
    api: &GitlabApi,
    method: Method,
    path: &str,
    body: Option<&Value>,
    id_field: Option<&str>,
) -> Result<Option<u64>, CheckFailure> {
    let answer = write_answer(api, method, path, body).await?;
    Ok(id_field.and_then(|field| answer.get(field).and_then(Value::as_u64)))
}

/// [`write`], answering GitLab's JSON (read by the caller to check it, never recorded).
pub async fn write_answer(
    api: &GitlabApi,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, CheckFailure> {
    let answer = api.send_json(method.clone(), path, body).await?;
    if !(200..300).contains(&answer.status) {
        let mut call = format!("{method} {}", path.split('?').next().unwrap_or(path));
        // A branch name may come from the customer's push filter: it is not put in a record.
        if let Some(at) = call.find("/repository/branches/") {
            call.truncate(at);
            call.push_str("/repository/branches/:branch");
        }
        return Err(api.failed(classify_status(&call, answer.status, &answer.json)));
    }
    Ok(answer.json)
}

/// Reads a project's default branch (kept in memory for the run, never recorded).
pub async fn default_branch(api: &GitlabApi, project_id: u64) -> Result<String, CheckFailure> {
    let path = format!("/api/v4/projects/{project_id}");
    let answer = api.send(Method::GET, &path).await?;
    if !(200..300).contains(&answer.status) {
        return Err(api.failed(classify_status(&format!("GET {path}"), answer.status, &answer.json)));
    }
    Ok(answer.json.get("default_branch").and_then(Value::as_str).filter(|b| !b.is_empty()).unwrap_or("main").to_owned())
}

/// Whether a note by `username` is on the first page of `notes_path` (newest first).
pub async fn commented_by(api: &GitlabApi, notes_path: &str, username: &str) -> Result<bool, CheckFailure> {
    let answer = api.send(Method::GET, &format!("{notes_path}?sort=desc&order_by=created_at&per_page=100")).await?;
    if !(200..300).contains(&answer.status) {
        return Err(api.failed(classify_status(&format!("GET {notes_path}"), answer.status, &answer.json)));
    }
    Ok(answer
        .json
        .as_array()
        .into_iter()
        .flatten()
        .any(|note| note.pointer("/author/username").and_then(Value::as_str) == Some(username)))
}

/// The pause between two test requests that keeps under GitLab's hook-test rate limit.
pub const DEFAULT_TEST_PACING: Duration = Duration::from_secs(13);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_bounded_seconds() {
        assert_eq!(retry_after_seconds(Some("30")), 30);
        assert_eq!(retry_after_seconds(Some("0")), 1);
        assert_eq!(retry_after_seconds(Some("999999")), 3600);
        assert_eq!(retry_after_seconds(Some("Wed, 21 Oct 2026 07:28:00 GMT")), 60);
        assert_eq!(retry_after_seconds(None), 60);
    }

    #[test]
    fn a_system_hook_reports_only_the_triggers_it_can_send() {
        let hook = serde_json::json!({"id": 7, "url": "https://golive/hooks", "push_events": true,
            "note_events": true, "issues_events": true, "merge_requests_events": true, "enable_ssl_verification": true});
        let Some(WebhookFinding::Found { triggers, .. }) = finding_of(&hook, HookLocation::System) else { panic!() };
        assert_eq!(triggers, [Trigger::Push, Trigger::MergeRequests].into_iter().collect());
    }
}
