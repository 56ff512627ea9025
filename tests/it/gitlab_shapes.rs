//! The shapes of GitLab's REST answers, checked against JSON schemas in
//! `fixtures/gitlab/schemas/`: GitLab's own schema fixtures where GitLab has one (vendored,
//! `public_api/v4/…`), schemas golive wrote from GitLab's entity classes where it has none
//! (`golive/…`). `fixtures/gitlab/schemas/README.md` says which is which and where each comes from.
//!
//! `check_answer` is for the fake GitLab: every answer it gives must be one GitLab gives.
//! An answer to a route this module does not know is an error, so a new route of the fake
//! needs a shape here first.
//!
//! Every `$ref` resolves from the files on disk: the validator's retriever reads only below the
//! schemas folder and refuses any other address (no network, no other files).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;

/// The address the schema files are known by: `$ref`s such as `./project_hook.json` resolve
/// against it, and the retriever maps it back onto the folder.
const BASE: &str = "file:///gitlab-schemas/";

/// Every route of GitLab's API that golive (or its fake GitLab) uses, as GitLab writes it.
pub const ROUTES: &[&str] = &[
    "GET /api/v4/version",
    "GET /api/v4/metadata",
    "GET /api/v4/personal_access_tokens/self",
    "GET /api/v4/user",
    "GET /api/v4/applications",
    "GET /api/v4/hooks",
    "POST /api/v4/hooks/:id",
    "GET /api/v4/groups",
    "GET /api/v4/groups/:id/hooks",
    "POST /api/v4/groups/:id/hooks/:hook_id/test/:trigger",
    "GET /api/v4/projects",
    "POST /api/v4/projects",
    "GET /api/v4/projects/:id",
    "DELETE /api/v4/projects/:id",
    "GET /api/v4/projects/:id/hooks",
    "POST /api/v4/projects/:id/hooks/:hook_id/test/:trigger",
    "POST /api/v4/projects/:id/repository/commits",
    "DELETE /api/v4/projects/:id/repository/branches/:branch",
    "POST /api/v4/projects/:id/merge_requests",
    "PUT /api/v4/projects/:id/merge_requests/:merge_request_iid",
    "GET /api/v4/projects/:id/merge_requests/:merge_request_iid/notes",
    "POST /api/v4/projects/:id/issues",
    "PUT /api/v4/projects/:id/issues/:issue_iid",
    "GET /api/v4/projects/:id/issues/:issue_iid/notes",
    "POST /api/v4/projects/:id/pipeline",
];

/// What GitLab answers on success: the status and the schema of the body (`None`: no body).
fn success_of(route: &str) -> Option<(u16, Option<&'static str>)> {
    Some(match route {
        "GET /api/v4/version" => (200, Some("golive/version.json")),
        "GET /api/v4/metadata" => (200, Some("public_api/v4/metadata.json")),
        "GET /api/v4/personal_access_tokens/self" => (200, Some("golive/personal_access_token.json")),
        "GET /api/v4/user" => (200, Some("golive/user.json")),
        "GET /api/v4/applications" => (200, Some("golive/applications.json")),
        "GET /api/v4/hooks" => (200, Some("public_api/v4/system_hooks.json")),
        // Grape answers a POST with 201 unless the endpoint says otherwise; lib/api/hooks/test.rb
        // does not.
        "POST /api/v4/hooks/:id" => (201, Some("golive/system_hook_test.json")),
        "GET /api/v4/groups" => (200, Some("golive/groups.json")),
        "GET /api/v4/groups/:id/hooks" => (200, Some("golive/group_hooks.json")),
        "POST /api/v4/groups/:id/hooks/:hook_id/test/:trigger"
        | "POST /api/v4/projects/:id/hooks/:hook_id/test/:trigger" => (201, Some("golive/message.json")),
        "GET /api/v4/projects" => (200, Some("golive/projects.json")),
        "POST /api/v4/projects" => (201, Some("golive/project.json")),
        "GET /api/v4/projects/:id" => (200, Some("golive/project.json")),
        "DELETE /api/v4/projects/:id" => (202, Some("golive/message.json")),
        "GET /api/v4/projects/:id/hooks" => (200, Some("public_api/v4/project_hooks.json")),
        "POST /api/v4/projects/:id/repository/commits" => (201, Some("golive/commit.json")),
        "DELETE /api/v4/projects/:id/repository/branches/:branch" => (204, None),
        "POST /api/v4/projects/:id/merge_requests" => (201, Some("golive/merge_request.json")),
        "PUT /api/v4/projects/:id/merge_requests/:merge_request_iid" => (200, Some("golive/merge_request.json")),
        "POST /api/v4/projects/:id/issues" => (201, Some("golive/issue.json")),
        "PUT /api/v4/projects/:id/issues/:issue_iid" => (200, Some("golive/issue.json")),
        "GET /api/v4/projects/:id/merge_requests/:merge_request_iid/notes"
        | "GET /api/v4/projects/:id/issues/:issue_iid/notes" => (200, Some("public_api/v4/notes.json")),
        "POST /api/v4/projects/:id/pipeline" => (201, Some("golive/pipeline.json")),
        _ => return None,
    })
}

/// The route pattern of a concrete request: `("GET", "/api/v4/projects/15/hooks?page=2")` is
/// `GET /api/v4/projects/:id/hooks`. `None` for a request to no route of [`ROUTES`].
pub fn route_of(method: &str, path: &str) -> Option<&'static str> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let method = method.to_ascii_uppercase();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().copied().find(|route| {
        let (route_method, pattern) = route.split_once(' ').expect("a route is METHOD PATH");
        let wanted: Vec<&str> = pattern.split('/').collect();
        route_method == method
            && wanted.len() == segments.len()
            && wanted.iter().zip(&segments).all(|(w, s)| if w.starts_with(':') { !s.is_empty() } else { w == s })
    })
}

/// Checks that `body`, answered with `status` to `route` (a pattern of [`ROUTES`]), has a shape
/// GitLab gives. 4xx and 5xx answers must be GitLab's error bodies; a success status must be
/// the one GitLab uses on that route. `Err` says what is wrong.
pub fn check_answer(route: &str, status: u16, body: &Value) -> Result<(), String> {
    let Some((success, schema)) = success_of(route) else {
        return Err(format!("{route}: no GitLab shape is known for this route (tests/it/gitlab_shapes.rs)"));
    };
    let schema = match status {
        // Rack::Attack's throttles (lib/gitlab/rack_attack.rb) answer 429 in text/plain with
        // Gitlab::Throttle.rate_limiting_response_text ("Retry later\n" unless an admin set
        // another): a fake records such a body as a JSON string.
        429 if body.is_string() => return Ok(()),
        400..=599 => Some("golive/error.json"),
        s if s == success => schema,
        _ => return Err(format!("{route}: GitLab answers {success} on success, not {status}")),
    };
    match schema {
        None if body.is_null() => Ok(()),
        None => Err(format!("{route}: GitLab answers {status} with no body, not {body}")),
        Some(file) => validate(file, body).map_err(|e| format!("{route} {status} ({file}): {e}")),
    }
}

/// Validates `body` against the schema file `file` (relative to the schemas folder).
pub fn validate(file: &str, body: &Value) -> Result<(), String> {
    let validator = validator(file)?;
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/gitlab/schemas")
}

/// Reads schema files from the schemas folder only.
struct LocalFiles;

impl Retrieve for LocalFiles {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let address = uri.as_str();
        let relative = address
            .strip_prefix(BASE)
            .ok_or_else(|| format!("{address}: only schemas below {BASE} are resolved (no network)"))?;
        Ok(load(relative)?)
    }
}

fn load(relative: &str) -> Result<Value, String> {
    if relative.split('/').any(|part| part == ".." || part.is_empty()) {
        return Err(format!("{relative}: not a path inside the schemas folder"));
    }
    let path = schemas_dir().join(relative);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

type Compiled = Arc<Validator>;

fn validator(file: &str) -> Result<Compiled, String> {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Compiled>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap().get(file) {
        return Ok(found.clone());
    }
    let schema = load(file)?;
    // GitLab's fixtures declare no draft; its spec matcher reads them as draft 4, and golive's
    // own files say draft 4.
    let compiled = jsonschema::options()
        .with_draft(Draft::Draft4)
        .with_base_uri(format!("{BASE}{file}"))
        .with_retriever(LocalFiles)
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| format!("{file} does not compile: {e}"))?;
    let compiled = Arc::new(compiled);
    cache.lock().unwrap().insert(file.to_owned(), compiled.clone());
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_schema_files() -> Vec<String> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if path.extension().is_some_and(|e| e == "json") {
                    out.push(path.strip_prefix(root).unwrap().to_str().unwrap().replace('\\', "/"));
                }
            }
        }
        let root = schemas_dir();
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }

    /// A project hook as GitLab 17.x/18.x answers it (API::Entities::ProjectHook).
    fn project_hook() -> Value {
        json!({
            "id": 7, "url": "https://golive.factory.example/hooks/gitlab/abc", "name": "golive",
            "description": null, "project_id": 15, "created_at": "2026-11-30T09:00:00.000Z",
            "push_events": true, "push_events_branch_filter": "main", "branch_filter_strategy": "wildcard",
            "tag_push_events": false, "merge_requests_events": true, "repository_update_events": false,
            "enable_ssl_verification": true, "issues_events": true, "confidential_issues_events": false,
            "note_events": true, "confidential_note_events": false, "pipeline_events": true,
            "wiki_page_events": false, "job_events": false, "deployment_events": false,
            "feature_flag_events": false, "releases_events": false, "emoji_events": false,
            "resource_access_token_events": false, "alert_status": "temporarily_disabled",
            "disabled_until": "2026-11-30T09:10:00.000Z", "url_variables": [],
            "custom_webhook_template": "{\"event\":\"{{object_kind}}\"}", "custom_headers": [{"key": "X-Team"}]
        })
    }

    #[test]
    fn every_schema_compiles_and_resolves_its_references_locally() {
        let files = all_schema_files();
        assert!(files.len() >= 20, "{files:?}");
        for file in &files {
            validator(file).unwrap_or_else(|e| panic!("{e}"));
        }
        for route in ROUTES {
            assert!(success_of(route).is_some(), "{route} has no shape");
        }
    }

    #[test]
    fn routes_are_found_from_concrete_paths() {
        assert_eq!(route_of("GET", "/api/v4/projects/15/hooks"), Some("GET /api/v4/projects/:id/hooks"));
        assert_eq!(
            route_of("get", "/api/v4/projects/15/hooks?page=2&per_page=100"),
            Some("GET /api/v4/projects/:id/hooks")
        );
        assert_eq!(
            route_of("POST", "/api/v4/projects/15/hooks/7/test/push_events"),
            Some("POST /api/v4/projects/:id/hooks/:hook_id/test/:trigger")
        );
        assert_eq!(
            route_of("POST", "/api/v4/groups/3/hooks/9/test/note_events"),
            Some("POST /api/v4/groups/:id/hooks/:hook_id/test/:trigger")
        );
        assert_eq!(route_of("POST", "/api/v4/hooks/4"), Some("POST /api/v4/hooks/:id"));
        assert_eq!(route_of("GET", "/api/v4/hooks"), Some("GET /api/v4/hooks"));
        assert_eq!(
            route_of("GET", "/api/v4/personal_access_tokens/self"),
            Some("GET /api/v4/personal_access_tokens/self")
        );
        assert_eq!(
            route_of("GET", "/api/v4/projects/15/merge_requests/1/notes"),
            Some("GET /api/v4/projects/:id/merge_requests/:merge_request_iid/notes")
        );
        assert_eq!(route_of("GET", "/api/v4/projects/15"), Some("GET /api/v4/projects/:id"));
        assert_eq!(
            route_of("DELETE", "/api/v4/projects/15/repository/branches/golive%2Fprobe"),
            Some("DELETE /api/v4/projects/:id/repository/branches/:branch")
        );
        assert_eq!(route_of("GET", "/api/v4/hooks/4"), None);
        assert_eq!(route_of("GET", "/api/v4/projects//hooks"), None);
        assert_eq!(route_of("GET", "/api/v4/runners"), None);
    }

    #[test]
    fn a_project_hook_as_gitlab_gives_it_validates_and_wrong_ones_do_not() {
        let hooks = json!([project_hook()]);
        check_answer("GET /api/v4/projects/:id/hooks", 200, &hooks).unwrap();

        let mut string_id = project_hook();
        string_id["id"] = json!("7");
        assert!(check_answer("GET /api/v4/projects/:id/hooks", 200, &json!([string_id])).is_err());

        let mut missing = project_hook();
        missing.as_object_mut().unwrap().remove("alert_status");
        let e = check_answer("GET /api/v4/projects/:id/hooks", 200, &json!([missing])).unwrap_err();
        assert!(e.contains("alert_status"), "{e}");

        let mut unknown_status = project_hook();
        unknown_status["alert_status"] = json!("paused");
        assert!(check_answer("GET /api/v4/projects/:id/hooks", 200, &json!([unknown_status])).is_err());

        // The fake's old minimal shape is not GitLab's.
        let minimal = json!([{"id": 7, "url": "https://x.example/h", "push_events": true}]);
        assert!(check_answer("GET /api/v4/projects/:id/hooks", 200, &minimal).is_err());
    }

    #[test]
    fn system_and_group_hooks() {
        let system = json!([{
            "id": 4, "url": "https://golive.factory.example/hooks/gitlab/sys", "name": null, "description": null,
            "created_at": "2026-11-30T09:00:00.000Z", "push_events": false, "tag_push_events": false,
            "merge_requests_events": false, "repository_update_events": true, "enable_ssl_verification": true,
            "alert_status": "executable", "disabled_until": null, "url_variables": [],
            "custom_webhook_template": null, "custom_headers": [], "push_events_branch_filter": null,
            "branch_filter_strategy": "wildcard"
        }]);
        check_answer("GET /api/v4/hooks", 200, &system).unwrap();

        let mut group = project_hook();
        let object = group.as_object_mut().unwrap();
        object.remove("project_id");
        object.insert("group_id".into(), json!(3));
        object.insert("subgroup_events".into(), json!(false));
        object.insert("member_events".into(), json!(false));
        check_answer("GET /api/v4/groups/:id/hooks", 200, &json!([group])).unwrap();
        group["branch_filter_strategy"] = json!("glob");
        assert!(check_answer("GET /api/v4/groups/:id/hooks", 200, &json!([group])).is_err());

        let sample = json!({"event_name": "project_create", "created_at": "2026-11-30T09:00:00Z", "name": "StoreCloud",
            "owner_email": "johnsmith@example.com", "owner_name": "John Smith", "path": "storecloud",
            "path_with_namespace": "jsmith/storecloud", "project_id": 74, "project_visibility": "private"});
        check_answer("POST /api/v4/hooks/:id", 201, &sample).unwrap();
        assert!(check_answer("POST /api/v4/hooks/:id", 200, &sample).is_err(), "Grape answers a POST with 201");
    }

    #[test]
    fn hook_tests_answer_201_or_a_message() {
        let route = "POST /api/v4/projects/:id/hooks/:hook_id/test/:trigger";
        check_answer(route, 201, &json!({"message": "201 Created"})).unwrap();
        check_answer(route, 422, &json!({"message": "Ensure the project has notes."})).unwrap();
        check_answer(route, 422, &json!({"message": "Net::ReadTimeout with #<TCPSocket:(closed)>"})).unwrap();
        // check_rate_limit! (lib/api/helpers/rate_limiter.rb) nests the text under "error".
        check_answer(
            route,
            429,
            &json!({"message": {"error": "This endpoint has been requested too many times. Try again later."}}),
        )
        .unwrap();
        check_answer(route, 429, &json!("Retry later\n")).unwrap();
        assert!(check_answer(route, 422, &json!("Retry later\n")).is_err());
        check_answer(route, 400, &json!({"error": "trigger does not have a valid value"})).unwrap();
        check_answer(route, 404, &json!({"message": "404 Not found"})).unwrap();
        assert!(check_answer(route, 200, &json!({"message": "201 Created"})).is_err());
        assert!(check_answer(route, 422, &json!({"status": "error"})).is_err());
        assert!(check_answer(route, 422, &json!({"message": "x", "error": "y"})).is_err());
    }

    #[test]
    fn probe_answers() {
        check_answer("GET /api/v4/version", 200, &json!({"version": "17.6.1-ee", "revision": "6c8a1e0c2f1"})).unwrap();
        assert!(check_answer("GET /api/v4/version", 200, &json!({"version": 17})).is_err());
        check_answer(
            "GET /api/v4/metadata",
            200,
            &json!({"version": "17.6.1-ee", "revision": "6c8a1e0c2f1", "enterprise": true,
                    "kas": {"enabled": false, "externalUrl": null, "version": null}}),
        )
        .unwrap();
        let token = json!({"id": 2, "name": "golive", "revoked": false, "created_at": "2026-11-01T08:00:00.000Z",
            "description": null, "scopes": ["api", "admin_mode"], "user_id": 1, "last_used_at": null,
            "active": true, "expires_at": "2027-11-01", "expired": false, "granular": false});
        check_answer("GET /api/v4/personal_access_tokens/self", 200, &token).unwrap();
        let mut no_scopes = token.clone();
        no_scopes.as_object_mut().unwrap().remove("scopes");
        assert!(check_answer("GET /api/v4/personal_access_tokens/self", 200, &no_scopes).is_err());
        check_answer(
            "GET /api/v4/personal_access_tokens/self",
            401,
            &json!({"error": "invalid_token",
            "error_description": "Token was revoked. You have to re-authorize from the user."}),
        )
        .unwrap();
    }

    fn user(admin: Option<bool>) -> Value {
        let mut user = json!({
            "id": 1, "username": "root", "email": "admin@example.com", "commit_email": "admin@example.com",
            "name": "Administrator", "state": "active", "avatar_url": "https://gitlab.customer.example/a.png",
            "web_url": "https://gitlab.customer.example/root", "created_at": "2026-01-01T00:00:00.000Z",
            "bio": "", "location": "", "pronouns": null, "skype": "", "linkedin": "", "twitter": "",
            "website_url": "", "organization": "", "last_sign_in_at": "2026-11-30T08:00:00.000Z",
            "confirmed_at": "2026-01-01T00:00:00.000Z", "color_scheme_id": 1, "projects_limit": 100000,
            "current_sign_in_at": "2026-11-30T08:00:00.000Z", "identities": [], "can_create_group": true,
            "can_create_project": true, "two_factor_enabled": false, "external": false, "namespace_id": 1
        });
        if let Some(admin) = admin {
            user["is_admin"] = json!(admin);
        }
        user
    }

    #[test]
    fn the_current_user_has_is_admin_only_when_an_administrator() {
        check_answer("GET /api/v4/user", 200, &user(Some(true))).unwrap();
        check_answer("GET /api/v4/user", 200, &user(None)).unwrap();
        let mut wrong = user(Some(true));
        wrong["is_admin"] = json!("yes");
        assert!(check_answer("GET /api/v4/user", 200, &wrong).is_err());
        let mut no_id = user(None);
        no_id.as_object_mut().unwrap().remove("id");
        assert!(check_answer("GET /api/v4/user", 200, &no_id).is_err());
    }

    #[test]
    fn applications_groups_projects() {
        let apps = json!([{"id": 1, "application_id": "5832fc6e14300a0d962240a8144466eef4ee93ef0d218477e55f11cf12fc3737",
            "application_name": "golive", "callback_url": "https://golive.factory.example/oauth/gitlab/callback",
            "confidential": true, "scopes": ["api"]}]);
        check_answer("GET /api/v4/applications", 200, &apps).unwrap();
        let mut secret = apps.clone();
        secret[0]["secret"] = json!("gloas-…");
        assert!(check_answer("GET /api/v4/applications", 200, &secret).is_err(), "the list shows no secret");

        let groups = json!([{"id": 3, "name": "Factory", "path": "factory", "full_name": "Factory", "full_path": "factory",
            "web_url": "https://gitlab.customer.example/groups/factory", "description": "", "visibility": "private",
            "parent_id": null, "created_at": "2026-01-01T00:00:00.000Z", "avatar_url": null,
            "share_with_group_lock": false}]);
        check_answer("GET /api/v4/groups", 200, &groups).unwrap();
        assert!(check_answer("GET /api/v4/groups", 200, &json!([{"id": 3, "name": "group 3"}])).is_err());

        let project = json!({"id": 15, "description": null, "name": "shop", "name_with_namespace": "Factory / shop",
            "path": "shop", "path_with_namespace": "factory/shop", "created_at": "2026-01-01T00:00:00.000Z",
            "default_branch": "main", "tag_list": [], "topics": [],
            "ssh_url_to_repo": "git@gitlab.customer.example:factory/shop.git",
            "http_url_to_repo": "https://gitlab.customer.example/factory/shop.git",
            "web_url": "https://gitlab.customer.example/factory/shop", "readme_url": null, "forks_count": 0,
            "avatar_url": null, "star_count": 0, "last_activity_at": "2026-11-30T08:00:00.000Z",
            "namespace": {"id": 3, "name": "Factory", "path": "factory", "kind": "group", "full_path": "factory",
                          "parent_id": null, "avatar_url": null, "web_url": "https://gitlab.customer.example/groups/factory"}});
        check_answer("GET /api/v4/projects", 200, &json!([project])).unwrap();
        check_answer("GET /api/v4/projects/:id", 200, &project).unwrap();
        check_answer("POST /api/v4/projects", 201, &project).unwrap();
        assert!(check_answer("GET /api/v4/projects/:id", 200, &json!({"id": 15, "default_branch": "main"})).is_err());
        check_answer("DELETE /api/v4/projects/:id", 202, &json!({"message": "202 Accepted"})).unwrap();
        check_answer("DELETE /api/v4/projects/:id/repository/branches/:branch", 204, &Value::Null).unwrap();
    }

    #[test]
    fn unknown_routes_and_statuses_are_errors() {
        assert!(check_answer("GET /api/v4/runners", 200, &json!([])).is_err());
        assert!(check_answer("GET /api/v4/projects/:id/hooks", 201, &json!([])).is_err());
        assert!(check_answer("GET /api/v4/projects/:id/hooks", 302, &Value::Null).is_err());
        check_answer("GET /api/v4/projects/:id/hooks", 200, &json!([])).unwrap();
        check_answer("GET /api/v4/projects/:id/hooks", 403, &json!({"message": "403 Forbidden"})).unwrap();
        check_answer("GET /api/v4/projects/:id/hooks", 500, &json!({"message": "500 Internal Server Error"})).unwrap();
        assert!(check_answer("GET /api/v4/projects/:id/hooks", 404, &json!("404 Not Found")).is_err());
    }
}
