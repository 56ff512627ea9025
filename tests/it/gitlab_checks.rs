//! golive checks the guide through GitLab's API, against the fake GitLab of `fake_gitlab.rs`
//! over TLS with an internal CA, through the real HTTP API (`POST .../checks`, 202) and the
//! real receiver (the fake's test deliveries come back over HTTP).

use std::time::Duration;

use golive::domain::HttpUrl;
use golive::gitlab::egress::EgressPolicy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::fake_gitlab::{hook, FakeGitlab, World};
use crate::http::{spawn_app_with_engine, TestApp};

/// golive's public URL in these tests: a load balancer the fake GitLab knows to reach golive's
/// loopback address through (nothing resolves or connects to this name).
pub(crate) const PUBLIC_URL: &str = "https://golive.test";
pub(crate) const APPLICATION_ID: &str = "5e1f0c3a9d7b2468ace0135792468ace0135792468ace0135792468ace01357";
pub(crate) const ALL_TRIGGERS: [&str; 5] =
    ["push_events", "note_events", "merge_requests_events", "issues_events", "pipeline_events"];

async fn app_for_checks(delivery_wait_ms: u64) -> TestApp {
    app_behind(PUBLIC_URL, |checks| checks.delivery_wait = Duration::from_millis(delivery_wait_ms)).await
}

/// An app whose public URL is `public_url`, allowed to reach the fake GitLab on loopback,
/// pacing and polling quickly; `adjust` changes the check settings further.
pub(crate) async fn app_behind(public_url: &str, adjust: impl FnOnce(&mut golive::engine::CheckSettings)) -> TestApp {
    let public_url = HttpUrl::parse(public_url).unwrap();
    spawn_app_with_engine(move |config| {
        config.replace_public_url(public_url);
        config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
        config.checks.test_pacing = Duration::from_millis(30);
        config.checks.delivery_wait = Duration::from_secs(10);
        config.checks.poll_interval = Duration::from_millis(25);
        adjust(&mut config.checks);
    })
    .await
}

pub(crate) fn world() -> World {
    World {
        admin_token: "glpat-admin-of-the-fake".into(),
        user_token: Some("glpat-not-an-admin".into()),
        test_routes: true,
        deliveries_get_through: true,
        groups: vec![3],
        projects: vec![11, 12],
        ..World::default()
    }
}

/// The application as GitLab lists it.
pub(crate) fn application(callback_url: &str, name: &str, confidential: bool) -> Value {
    json!({"id": 1, "application_id": APPLICATION_ID, "application_name": name, "callback_url": callback_url, "confidential": confidential})
}

/// The customer created the webhook as a hook of group 3 with every required trigger.
fn hook_in_group_3(world: &mut World, onboarding: &Onboarding) {
    world.group_hooks.insert(3, vec![hook(41, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("group", 3)))]);
    world.hook_tokens.insert(41, onboarding.secret_token.clone());
}

pub(crate) struct Onboarding {
    pub(crate) id: String,
    pub(crate) webhook_url: String,
    pub(crate) secret_token: String,
}

/// Opens an integration on the fake instance, records the application and issues the webhook
/// credentials; `token` is the access token the customer gave.
pub(crate) async fn onboard(app: &TestApp, fake: &FakeGitlab, token: &str) -> Onboarding {
    {
        let mut world = fake.world.lock().unwrap();
        world.golive_behind = Some((PUBLIC_URL.to_owned(), app.address.clone()));
    }
    let (status, opened) =
        app.post(&app.rep, "/api/v1/integrations", &json!({"customer": "Checked Corp", "gitlab_url": fake.url})).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let id = opened["id"].as_str().unwrap().to_owned();
    app.ok(&id, json!({"type": "set_instance_url", "gitlab_url": fake.url, "ca_certificate_pem": fake.ca_pem})).await;
    app.ok(&id, json!({"type": "provide_access_token", "token": token, "admin": true})).await;
    let redirect = format!("{PUBLIC_URL}/oauth/gitlab/callback");
    app.ok(&id, json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect, "application_id": APPLICATION_ID, "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]})).await;
    let issued = app.ok(&id, json!({"type": "issue_webhook_credentials"})).await;
    Onboarding {
        id,
        webhook_url: issued["webhook_url"].as_str().unwrap().to_owned(),
        secret_token: issued["secret_token"].as_str().unwrap().to_owned(),
    }
}

/// Starts a run through the API and waits until its `gitlab_check_finished` is recorded.
pub(crate) async fn check(app: &TestApp, id: &str, body: Value) -> (Value, Vec<Value>) {
    let response = app
        .http
        .post(app.url(&format!("/api/v1/integrations/{id}/checks")))
        .bearer_auth(&app.rep)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.unwrap();
    let check_id = accepted["check_id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
        let events = history["events"].as_array().unwrap().clone();
        if events.iter().any(|e| e["type"] == "gitlab_check_finished" && e["data"]["check_id"] == check_id.as_str()) {
            let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
            let run: Vec<Value> = events.into_iter().filter(|e| e["data"]["check_id"] == check_id.as_str()).collect();
            return (state, run);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the run of checks {check_id} did not finish");
}

pub(crate) fn item<'a>(state: &'a Value, id: &str) -> &'a Value {
    state["checklist"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap_or_else(|| panic!("no item {id}"))
}

pub(crate) fn of_type<'a>(run: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    run.iter().filter(|e| e["type"] == event_type).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_correct_the_checks_meet_the_items_and_deliveries_prove_the_path_not_the_scenarios() {
    let mut app = app_for_checks(10_000).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        world.applications = vec![
            json!({"id": 9, "application_id": "another", "application_name": "Other", "callback_url": "https://elsewhere.test/cb", "confidential": true}),
            application(&format!("{PUBLIC_URL}/oauth/gitlab/callback"), "Factory Integration", true),
        ];
        world.project_hooks.insert(11, vec![]);
        world
            .project_hooks
            .insert(12, vec![hook(77, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("project", 12)))]);
        world.group_hooks.insert(3, vec![]);
        world.hook_tokens.insert(77, onboarding.secret_token.clone());
    }
    let (state, run) = check(&app, &onboarding.id, json!({})).await;

    // Announced before it happened, recorded after.
    let started = of_type(&run, "gitlab_check_started");
    assert_eq!(started.len(), 1);
    assert!(started[0]["data"]["writes"][0].as_str().unwrap().contains("test deliveries"), "{}", started[0]);
    assert_eq!(
        of_type(&run, "application_checked")[0]["data"]["finding"],
        json!({"outcome": "found", "name_matches": true, "callback_url_matches": true, "confidential": true})
    );
    let webhook = &of_type(&run, "webhook_checked")[0]["data"]["finding"];
    assert_eq!(webhook["outcome"], "found", "{webhook}");
    assert_eq!(webhook["location"], json!({"kind": "project", "project_id": 12}));
    assert_eq!(webhook["triggers"], json!(["push", "comments", "merge_requests", "issues", "ci_cd"]));
    assert_eq!(of_type(&run, "test_delivery_requested").len(), 5);
    let answered = of_type(&run, "test_delivery_answered");
    assert_eq!(answered.len(), 5);
    assert!(answered.iter().all(|r| r["data"]["outcome"] == json!({"outcome": "delivered"})), "{answered:?}");
    // Each request was recorded before GitLab was asked (GitLab may deliver before it answers).
    for trigger in ["push", "comments", "merge_requests", "issues", "ci_cd"] {
        let position = |event_type: &str| {
            run.iter().position(|e| e["type"] == event_type && e["data"]["trigger"] == trigger).unwrap()
        };
        assert!(position("test_delivery_requested") < position("test_delivery_answered"), "{trigger}");
    }
    let finished = &of_type(&run, "gitlab_check_finished")[0]["data"];
    assert_eq!(finished["unmet"], json!([]), "{finished}");
    assert_eq!(finished["deliveries_missing"], json!([]), "{finished}");

    // Each item says what it rests on.
    for (id, source, event) in [
        ("info.application_registered", "gitlab_api", "application_checked"),
        ("info.application_scopes", "rep", "application_registered"),
        ("webhook.created_with_issued_url", "gitlab_api", "webhook_checked"),
        ("webhook.triggers", "gitlab_api", "webhook_checked"),
        ("webhook.credentials_issued", "golive", "webhook_credentials_issued"),
        ("webhook.delivery_verified", "gitlab_delivery", "webhook_delivery_recorded"),
        ("info.access_token_provided", "rep", "access_token_provided"),
    ] {
        let item = item(&state, id);
        assert_eq!(item["met"], true, "{item}");
        assert_eq!(
            (item["evidence"]["source"].as_str(), item["evidence"]["event"].as_str()),
            (Some(source), Some(event)),
            "{item}"
        );
        assert!(item["evidence"]["at"].is_string() && item["evidence"]["version"].is_u64(), "{item}");
    }
    // GitLab's sample data proves the delivery path, not the scenarios.
    for scenario in ["code_pushed", "merge_request_created", "issue_opened", "pipeline_ran"] {
        let item = item(&state, &format!("testing.scenario_observed.{scenario}"));
        assert_eq!(item["met"], false, "{item}");
        assert!(item["reason"].as_str().unwrap().contains("test delivery golive asked GitLab for"), "{item}");
    }
    // The round trips are in the state, per trigger.
    let deliveries = &state["test_deliveries"];
    for trigger in ["push", "comments", "merge_requests", "issues", "ci_cd"] {
        assert!(deliveries[trigger]["round_trip_seconds"].is_number(), "{trigger}: {deliveries}");
    }
    // Only reads and the five test requests went to GitLab; nothing GitLab chose reached the log.
    let writes: Vec<String> = fake.calls().into_iter().filter(|c| c.starts_with("POST")).collect();
    assert_eq!(writes.len(), 5, "{writes:?}");
    let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{}/history", onboarding.id)).await;
    let log = history.to_string();
    for gitlab_said in ["elsewhere.test", "\"Other\"", "glpat-admin-of-the-fake"] {
        assert!(!log.contains(gitlab_said), "{gitlab_said:?} reached the log");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_registered_with_another_callback_url_is_unmet_even_after_the_rep_recorded_it_right() {
    let mut app = app_for_checks(1_000).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    let (_, before) = app.get(&app.viewer, &format!("/api/v1/integrations/{}", onboarding.id)).await;
    assert_eq!(item(&before, "info.application_registered")["met"], true);
    assert_eq!(item(&before, "info.application_registered")["evidence"]["source"], "rep");
    fake.world.lock().unwrap().applications =
        vec![application("https://evil.example/steal", "Factory integration", false)];
    let (state, run) = check(&app, &onboarding.id, json!({"checks": ["application"]})).await;
    let item = item(&state, "info.application_registered");
    assert_eq!(item["met"], false, "{item}");
    assert_eq!(item["evidence"]["source"], "gitlab_api");
    let reason = item["reason"].as_str().unwrap();
    assert!(reason.contains("the callback URL registered in GitLab is not the redirect URI"), "{reason}");
    assert!(reason.contains("name in GitLab is not \"Factory Integration\""), "{reason}");
    assert!(reason.contains("not confidential"), "{reason}");
    assert_eq!(of_type(&run, "gitlab_check_finished")[0]["data"]["unmet"], json!(["info.application_registered"]));
    assert!(!serde_json::to_string(&run).unwrap().contains("evil.example"), "GitLab's callback URL is not copied");

    // The rep records it again after fixing it in GitLab: the latest fact counts.
    let redirect = format!("{PUBLIC_URL}/oauth/gitlab/callback");
    let again = app.ok(&onboarding.id, json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect, "application_id": APPLICATION_ID, "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]})).await;
    let _ = again;
    let (_, after) = app.get(&app.viewer, &format!("/api/v1/integrations/{}", onboarding.id)).await;
    assert_eq!(crate::gitlab_checks::item(&after, "info.application_registered")["evidence"]["source"], "rep");
    assert_eq!(crate::gitlab_checks::item(&after, "info.application_registered")["met"], true);

    // An application GitLab does not list at all.
    fake.world.lock().unwrap().applications = vec![];
    let (state, _) = check(&app, &onboarding.id, json!({"checks": ["application"]})).await;
    let reason =
        crate::gitlab_checks::item(&state, "info.application_registered")["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("lists no instance-wide application with the Application ID"), "{reason}");
    assert!(reason.contains("register it as an instance-wide application (Admin area > Applications)"), "{reason}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_findings_missing_wrong_url_missing_triggers_ssl_off_and_a_system_hook() {
    let mut app = app_for_checks(1_000).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    let webhook_check = |body: Value| {
        let app = &app;
        let id = onboarding.id.clone();
        async move {
            let (state, run) = check(app, &id, body).await;
            let finding = of_type(&run, "webhook_checked")[0]["data"]["finding"].clone();
            let url_item = item(&state, "webhook.created_with_issued_url").clone();
            let triggers_item = item(&state, "webhook.triggers").clone();
            (finding, url_item, triggers_item)
        }
    };
    // Missing: nothing anywhere (every group and project searched).
    {
        let mut world = fake.world.lock().unwrap();
        world.group_hooks.insert(3, vec![]);
        world.project_hooks.insert(11, vec![]);
        world.project_hooks.insert(12, vec![]);
    }
    let (finding, url_item, _) = webhook_check(json!({"checks": ["webhook"]})).await;
    assert_eq!(finding["outcome"], "not_found", "{finding}");
    assert_eq!(finding["complete"], true, "{finding}");
    assert!(url_item["reason"].as_str().unwrap().contains("shows no hook with the issued URL"), "{url_item}");

    // A hook with another URL (a typo) is not the webhook.
    let typo = onboarding.webhook_url.replace("/hooks/gitlab/", "/hook/gitlab/");
    fake.world
        .lock()
        .unwrap()
        .project_hooks
        .insert(12, vec![hook(5, &typo, &ALL_TRIGGERS, true, Some(("project", 12)))]);
    let (finding, url_item, _) = webhook_check(json!({"checks": ["webhook"], "project_id": 12})).await;
    assert_eq!(
        finding,
        json!({"outcome": "not_found", "searched": [{"kind": "system"}, {"kind": "project", "project_id": 12}], "complete": true})
    );
    assert_eq!(url_item["met"], false);

    // Found, without two triggers and with SSL verification off.
    fake.world.lock().unwrap().group_hooks.insert(
        3,
        vec![hook(
            6,
            &onboarding.webhook_url,
            &["push_events", "merge_requests_events", "issues_events"],
            false,
            Some(("group", 3)),
        )],
    );
    let (finding, url_item, triggers_item) = webhook_check(json!({"checks": ["webhook"], "group_id": 3})).await;
    assert_eq!(finding["location"], json!({"kind": "group", "group_id": 3}), "{finding}");
    assert!(url_item["reason"].as_str().unwrap().contains("SSL verification is off"), "{url_item}");
    let reason = triggers_item["reason"].as_str().unwrap();
    assert!(reason.contains("does not send the triggers comments, ci_cd"), "{reason}");

    // Living as a system hook: say what a system hook cannot send.
    {
        let mut world = fake.world.lock().unwrap();
        world.group_hooks.insert(3, vec![]);
        world.system_hooks =
            vec![hook(8, &onboarding.webhook_url, &["push_events", "merge_requests_events"], true, None)];
    }
    let (finding, url_item, triggers_item) = webhook_check(json!({"checks": ["webhook"]})).await;
    assert_eq!(finding["location"], json!({"kind": "system"}), "{finding}");
    assert_eq!(url_item["met"], true, "{url_item}");
    let reason = triggers_item["reason"].as_str().unwrap();
    assert!(reason.contains("a system hook cannot send comments, issues, ci_cd events"), "{reason}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_gitlab_a_rate_limit_and_a_firewall_are_told_apart() {
    let mut app = app_for_checks(600).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        world
            .project_hooks
            .insert(12, vec![hook(77, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("project", 12)))]);
        world.hook_tokens.insert(77, onboarding.secret_token.clone());
        world.test_routes = false;
    }
    // Older GitLab: no test route; recorded as not available, nothing waited for.
    let (_, run) = check(&app, &onboarding.id, json!({"checks": ["test_deliveries"], "project_id": 12})).await;
    let answered = of_type(&run, "test_delivery_answered");
    assert!(answered.iter().all(|r| r["data"]["outcome"]["outcome"] == "not_available"), "{answered:?}");
    assert_eq!(of_type(&run, "gitlab_check_finished")[0]["data"]["deliveries_missing"], json!([]));

    // Rate limited after two: recorded as "retry at", not a failure.
    {
        let mut world = fake.world.lock().unwrap();
        world.test_routes = true;
        world.tests_before_rate_limit = Some(2);
    }
    let (_, run) = check(&app, &onboarding.id, json!({"checks": ["test_deliveries"], "project_id": 12})).await;
    let outcomes: Vec<&str> = of_type(&run, "test_delivery_answered")
        .iter()
        .map(|r| r["data"]["outcome"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["delivered", "delivered", "rate_limited", "rate_limited", "rate_limited"]);
    // After the 429, the run asked GitLab nothing more: 2 + 1 test requests, not 5.
    assert_eq!(fake.world.lock().unwrap().tests_requested, 3);
    let limited = &of_type(&run, "test_delivery_answered")[2]["data"]["outcome"];
    let requested_at: chrono::DateTime<chrono::Utc> =
        of_type(&run, "test_delivery_answered")[2]["recorded_at"].as_str().unwrap().parse().unwrap();
    let retry_at: chrono::DateTime<chrono::Utc> = limited["retry_at"].as_str().unwrap().parse().unwrap();
    let seconds = (retry_at - requested_at).num_seconds();
    // GitLab's 429 for hook tests carries no Retry-After: golive waits a minute.
    assert!((58..=61).contains(&seconds), "no Retry-After: a minute: {seconds}");

    // A firewall drops the deliveries: GitLab's test answers 422 with its HTTP client's timeout;
    // golive names it, asks no more (each failure counts towards GitLab disabling the hook), and
    // diagnose says why.
    {
        let mut world = fake.world.lock().unwrap();
        world.tests_before_rate_limit = None;
        world.deliveries_get_through = false;
    }
    let (_, run) = check(&app, &onboarding.id, json!({"checks": ["test_deliveries"], "project_id": 12})).await;
    let answered = of_type(&run, "test_delivery_answered");
    assert_eq!(answered.len(), 1, "one failed delivery, then no more asking: {answered:?}");
    assert_eq!(answered[0]["data"]["outcome"]["outcome"], "delivery_failed");
    assert_eq!(answered[0]["data"]["outcome"]["cause"], "timeout");
    let (_, diagnosis) = app.get(&app.viewer, &format!("/api/v1/integrations/{}/diagnose", onboarding.id)).await;
    let finding = diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["category"] == "webhook_not_received" && f["message"].as_str().unwrap().contains("timed out"))
        .unwrap_or_else(|| panic!("{diagnosis}"));
    assert!(finding["advice"].as_str().unwrap().contains("firewall"), "{finding}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_admin_rights_is_a_permission_finding_and_changes_no_item() {
    let mut app = app_for_checks(500).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-not-an-admin").await;
    let (state, run) = check(&app, &onboarding.id, json!({"checks": ["application", "webhook"]})).await;
    let application = &of_type(&run, "application_checked")[0]["data"]["finding"];
    assert_eq!(application["outcome"], "failed", "{application}");
    assert_eq!(application["category"], "permission_denied", "{application}");
    let webhook = &of_type(&run, "webhook_checked")[0]["data"]["finding"];
    assert_eq!(webhook["category"], "permission_denied", "{webhook}");
    // The run says which checks could not look; the diagnosis says why.
    let finished = &of_type(&run, "gitlab_check_finished")[0]["data"];
    assert_eq!(finished["could_not_look"], json!(["application", "webhook"]), "{finished}");
    assert_eq!(state["check_failures"]["application"]["category"], "permission_denied", "{}", state["check_failures"]);
    // A check that could not look is no fact about the application: the rep's record stands.
    assert_eq!(item(&state, "info.application_registered")["evidence"]["source"], "rep");
    assert_eq!(item(&state, "info.application_registered")["met"], true);
    let log = serde_json::to_string(&run).unwrap();
    assert!(!log.contains("glpat-not-an-admin"), "the token never reaches the record");

    // Refusals write nothing: a viewer, unknown fields, both places, a scenario run.
    let url = app.url(&format!("/api/v1/integrations/{}/checks", onboarding.id));
    let viewer = app.http.post(&url).bearer_auth(&app.viewer).json(&json!({})).send().await.unwrap();
    assert_eq!(viewer.status(), StatusCode::FORBIDDEN);
    for body in [
        json!({"checks": ["everything"]}),
        json!({"group_id": 1, "project_id": 2}),
        json!({"ssl": false}),
        json!([1]),
        json!({"checks": []}),
    ] {
        let refused = app.http.post(&url).bearer_auth(&app.rep).json(&body).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let (_, after) = app.get(&app.viewer, &format!("/api/v1/integrations/{}", onboarding.id)).await;
    assert_eq!(after["version"], state["version"], "a refused request wrote nothing");
    app.stop().await;
}

/// Runs the real binary against the app as the rep (remote mode), off the runtime's threads.
pub(crate) async fn golive(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let mut command = assert_cmd::Command::cargo_bin("golive").unwrap();
    command
        .args(["--server", &app.address])
        .args(args)
        .env("GOLIVE_TOKEN", &app.rep)
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .env_remove("GOLIVE_SERVER");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golive_check_in_the_terminal_exits_0_when_all_is_met_and_4_when_a_check_finds_something_unmet() {
    let mut app = app_for_checks(10_000).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        world.applications =
            vec![application(&format!("{PUBLIC_URL}/oauth/gitlab/callback"), "Factory Integration", true)];
        world.group_hooks.insert(3, vec![hook(41, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("group", 3)))]);
        world.hook_tokens.insert(41, onboarding.secret_token.clone());
    }
    let (code, stdout, stderr) = golive(&app, &["check", "checked corp"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("(application, webhook, test deliveries)"), "{stdout}");
    assert!(
        stdout.contains("met    GitLab application registered") && stdout.contains("(rests on GitLab's API)"),
        "{stdout}"
    );
    for trigger in ["push", "comments", "merge_requests", "issues", "ci_cd"] {
        assert!(stdout.contains(&format!("test delivery {trigger}: delivered, arrived after")), "{trigger}: {stdout}");
    }

    fake.world.lock().unwrap().applications =
        vec![application("https://gitlab.elsewhere.test/cb", "Factory Integration", true)];
    let (code, stdout, stderr) = golive(&app, &["check", "checked corp", "--application"]).await;
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(stdout.contains("unmet  GitLab application registered"), "{stdout}");
    assert!(stdout.contains("the callback URL registered in GitLab is not the redirect URI"), "{stdout}");
    assert!(stderr.contains("the checks found 1 item(s) unmet"), "{stderr}");

    // --json answers the run and the state.
    let (code, stdout, _) = golive(&app, &["check", "checked corp", "--webhook", "--group", "3", "--json"]).await;
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["run"]["checks"], json!(["webhook"]));
    assert_eq!(answer["run"]["unmet"], json!([]));
    app.stop().await;
}

/// An app whose scenario runs wait briefly for the Droid.
async fn app_for_scenarios() -> TestApp {
    app_behind(PUBLIC_URL, |checks| checks.droid_wait = Duration::from_millis(1500)).await
}

async fn check_as_admin(app: &TestApp, id: &str, body: Value) -> (Value, Vec<Value>) {
    let url = app.url(&format!("/api/v1/integrations/{id}/checks"));
    let rep = app.http.post(&url).bearer_auth(&app.rep).json(&body).send().await.unwrap();
    let status = rep.status();
    assert_eq!(status, StatusCode::FORBIDDEN, "a scenario run is an admin's: {}", rep.text().await.unwrap());
    let accepted: Value =
        app.http.post(&url).bearer_auth(&app.admin).json(&body).send().await.unwrap().json().await.unwrap();
    let check_id = accepted["check_id"].as_str().unwrap_or_else(|| panic!("{accepted}")).to_owned();
    for _ in 0..600 {
        let (_, history) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}/history")).await;
        let events = history["events"].as_array().unwrap().clone();
        if events.iter().any(|e| e["type"] == "gitlab_check_finished" && e["data"]["check_id"] == check_id.as_str()) {
            let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{id}")).await;
            return (state, events.into_iter().filter(|e| e["data"]["check_id"] == check_id.as_str()).collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scenario run did not finish");
}

fn steps_of(run: &[Value]) -> Vec<(String, String)> {
    of_type(run, "scenario_step_performed")
        .iter()
        .map(|e| {
            (
                e["data"]["step"].as_str().unwrap().to_owned(),
                e["data"]["outcome"]["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_run_in_a_scratch_project_observes_every_scenario_sees_the_droid_and_deletes_the_project() {
    let mut app = app_for_scenarios().await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        hook_in_group_3(&mut world, &onboarding);
        world.droid_comments_as = Some("factory-droid".into());
    }
    let (state, run) = check_as_admin(
        &app,
        &onboarding.id,
        json!({"checks": ["webhook", "scenarios"], "droid_username": "factory-droid"}),
    )
    .await;
    let writes = of_type(&run, "gitlab_check_started")[0]["data"]["writes"].to_string();
    assert!(writes.contains("scratch project") && writes.contains("then delete the scratch project"), "{writes}");
    let steps = steps_of(&run);
    for (step, outcome) in [
        ("create_scratch_project", "done"),
        ("push_commit", "done"),
        ("open_merge_request", "done"),
        ("open_issue", "done"),
        ("create_pipeline", "done"),
        ("watch_droid_comment", "seen"),
        ("clean_up", "done"),
    ] {
        assert!(steps.contains(&(step.to_owned(), outcome.to_owned())), "{step} {outcome}: {steps:?}");
    }
    // Real deliveries of real scenarios: evidence.
    for scenario in ["code_pushed", "merge_request_created", "issue_opened", "pipeline_ran"] {
        let item = item(&state, &format!("testing.scenario_observed.{scenario}"));
        assert_eq!(item["met"], true, "{item}");
        assert_eq!(item["evidence"]["source"], "gitlab_delivery", "{item}");
    }
    assert_eq!(of_type(&run, "gitlab_check_finished")[0]["data"]["unmet"], json!([]));
    // The Droid's comment is evidence for the validation step; the rep still decides.
    let validation = item(&state, "validation.response_correct.merge_request_created");
    assert_eq!(validation["met"], false);
    assert!(
        validation["reason"].as_str().unwrap().contains("golive saw the Droid comment on the scratch merge request"),
        "{validation}"
    );
    // The scratch project was created in the hook's group and deleted afterwards.
    let (created, deleted) = {
        let world = fake.world.lock().unwrap();
        (world.created_projects.clone(), world.deleted_projects.clone())
    };
    assert_eq!(created.len(), 1);
    assert_eq!(deleted, created);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_run_without_a_droid_comment_keeps_the_project_when_asked_and_says_when_it_is_not_possible() {
    let mut app = app_for_scenarios().await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        hook_in_group_3(&mut world, &onboarding);
    }
    let (_, run) = check_as_admin(
        &app,
        &onboarding.id,
        json!({"checks": ["scenarios"], "droid_username": "factory-droid", "keep_scratch_project": true}),
    )
    .await;
    let steps = steps_of(&run);
    assert!(steps.contains(&("watch_droid_comment".into(), "not_seen".into())), "{steps:?}");
    assert!(!steps.iter().any(|(step, _)| step == "clean_up"), "kept, as asked: {steps:?}");
    assert!(fake.world.lock().unwrap().deleted_projects.is_empty());

    // A project hook: a new project never reaches it, so the run says so and writes nothing.
    {
        let mut world = fake.world.lock().unwrap();
        world.group_hooks.insert(3, vec![]);
        world
            .project_hooks
            .insert(12, vec![hook(42, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("project", 12)))]);
    }
    let created_before = fake.world.lock().unwrap().created_projects.len();
    let (_, run) = check_as_admin(&app, &onboarding.id, json!({"checks": ["scenarios"]})).await;
    let performed = of_type(&run, "scenario_step_performed");
    assert_eq!(performed.len(), 1, "{performed:?}");
    let reason = performed[0]["data"]["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("a new project never reaches it") && reason.contains("--scenario-project 12"), "{reason}");
    assert_eq!(fake.world.lock().unwrap().created_projects.len(), created_before);

    // In the project the customer names (where the hook listens): performed, then tidied up.
    let (state, run) =
        check_as_admin(&app, &onboarding.id, json!({"checks": ["scenarios"], "scenario_project_id": 12})).await;
    let steps = steps_of(&run);
    assert!(
        steps.contains(&("push_commit".into(), "done".into())) && steps.contains(&("clean_up".into(), "done".into())),
        "{steps:?}"
    );
    assert_eq!(item(&state, "testing.scenario_observed.issue_opened")["met"], true);
    let calls = fake.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("DELETE /api/v4/projects/12/repository/branches/golive-check-")),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c == "DELETE /api/v4/projects/12"), "a named project is never deleted");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_check_transcript_is_true() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let block = readme.split("<!-- transcript-checks -->").nth(1).unwrap().split("```").nth(1).unwrap();
    const README_PUBLIC_URL: &str = "https://golive.example.com";
    let mut app = app_behind(README_PUBLIC_URL, |_| {}).await;
    let fake = FakeGitlab::start(world()).await;
    fake.world.lock().unwrap().golive_behind = Some((README_PUBLIC_URL.to_owned(), app.address.clone()));
    let (_, opened) =
        app.post(&app.rep, "/api/v1/integrations", &json!({"customer": "Hooli", "gitlab_url": fake.url})).await;
    let id = opened["id"].as_str().unwrap().to_owned();
    app.ok(&id, json!({"type": "set_instance_url", "gitlab_url": fake.url, "ca_certificate_pem": fake.ca_pem})).await;
    app.ok(&id, json!({"type": "provide_access_token", "token": "glpat-admin-of-the-fake", "admin": true})).await;
    let redirect = format!("{README_PUBLIC_URL}/oauth/gitlab/callback");
    app.ok(&id, json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect, "application_id": APPLICATION_ID, "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]})).await;
    let issued = app.ok(&id, json!({"type": "issue_webhook_credentials"})).await;
    let webhook_url = issued["webhook_url"].as_str().unwrap().to_owned();
    {
        let mut world = fake.world.lock().unwrap();
        world.applications = vec![application(&redirect, "Factory Integration", true)];
        world.group_hooks.insert(3, vec![]);
        world.project_hooks.insert(11, vec![]);
        world.project_hooks.insert(12, vec![]);
    }
    // "arrived after 0.4 s" varies: compared as "arrived after … s".
    let steady = |line: &str| match line.split_once("arrived after ") {
        Some((head, _)) => format!("{head}arrived after … s"),
        None => line.to_owned(),
    };
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines().skip(1) {
        match line.strip_prefix("$ golive ") {
            Some(command) => runs.push((command.to_owned(), Vec::new())),
            None => runs.last_mut().unwrap().1.push(steady(line)),
        }
    }
    assert_eq!(runs.len(), 2);
    for (index, (command, expected)) in runs.iter().enumerate() {
        if index == 1 {
            // The customer creates the webhook in a group.
            let mut world = fake.world.lock().unwrap();
            world.group_hooks.insert(3, vec![hook(41, &webhook_url, &ALL_TRIGGERS, true, Some(("group", 3)))]);
            world.hook_tokens.insert(41, issued["secret_token"].as_str().unwrap().to_owned());
        }
        let args: Vec<&str> = command.split(' ').collect();
        let (code, stdout, stderr) = golive(&app, &args).await;
        assert_eq!(code, if index == 0 { 4 } else { 0 }, "{command}: {stderr}");
        let check_id = stdout.lines().next().unwrap().split(' ').nth(1).unwrap().to_owned();
        let actual: Vec<String> =
            stdout.lines().map(|l| steady(&l.replace(&check_id, "<check>").replace(&id, "<id>"))).collect();
        assert_eq!(&actual, expected, "README transcript: golive {command}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integration_page_runs_the_checks_and_shows_what_each_item_rests_on() {
    use crate::dashboard::{csrf_of, page, post_command, sign_in};
    let mut app = app_for_checks(5_000).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        world.applications =
            vec![application(&format!("{PUBLIC_URL}/oauth/gitlab/callback"), "Factory Integration", true)];
        world
            .project_hooks
            .insert(12, vec![hook(77, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("project", 12)))]);
        world.hook_tokens.insert(77, onboarding.secret_token.clone());
    }
    let rep = sign_in(&app, &app.rep).await;
    let path = format!("/integrations/{}", onboarding.id);
    let (_, _, html) = page(&app, &rep, &path).await;
    assert!(html.contains("id=\"form-check\"") && html.contains("No check has run yet."), "the page offers the check");
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{}", onboarding.id)).await;
    let version = state["version"].to_string();
    let csrf = csrf_of(&html);
    let form = [
        ("csrf", csrf.as_str()),
        ("type", "check"),
        ("expected_version", version.as_str()),
        ("application", "true"),
        ("webhook", "true"),
        ("test_deliveries", "true"),
        ("project_id", "12"),
    ];
    let (status, headers, _) = post_command(&app, &rep, &onboarding.id, &app.address, &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers["location"].to_str().unwrap().ends_with("#checks-heading"));
    let mut html = String::new();
    for _ in 0..200 {
        html = page(&app, &rep, &path).await.2;
        if html.contains("Checks finished") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(html.contains("Checks finished: every item checked is met"), "the timeline tells the run");
    assert!(
        html.contains("rests on GitLab&#39;s API") || html.contains("rests on GitLab's API"),
        "each item says what it rests on"
    );
    assert!(html.contains("data-trigger=\"push\""), "the test deliveries are listed");
    // A typed id that is not GitLab's numeric id is refused, and nothing is started.
    let (_, state) = app.get(&app.viewer, &format!("/api/v1/integrations/{}", onboarding.id)).await;
    let version = state["version"].to_string();
    let bad = [
        ("csrf", csrf.as_str()),
        ("type", "check"),
        ("expected_version", version.as_str()),
        ("webhook", "true"),
        ("group_id", "acme/robots"),
    ];
    let (status, _, refused) = post_command(&app, &rep, &onboarding.id, &app.address, &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused.contains("numeric id"), "{refused}");
    let (_, after) = app.get(&app.viewer, &format!("/api/v1/integrations/{}", onboarding.id)).await;
    assert_eq!(after["version"], state["version"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_run_that_stops_early_still_cleans_up_and_never_touches_a_project_gitlab_substitutes() {
    let mut app = app_for_scenarios().await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        hook_in_group_3(&mut world, &onboarding);
        world.project_reads_fail = true;
    }
    // The scratch project is made, then GitLab fails: the project is still deleted.
    let (_, run) = check_as_admin(&app, &onboarding.id, json!({"checks": ["scenarios"]})).await;
    let steps = steps_of(&run);
    assert!(steps.contains(&("push_commit".into(), "failed".into())), "{steps:?}");
    assert!(steps.contains(&("clean_up".into(), "done".into())), "{steps:?}");
    {
        let world = fake.world.lock().unwrap();
        assert_eq!(world.deleted_projects, world.created_projects, "the scratch project was removed");
    }
    // GitLab answers the creation with another project (its production): golive writes
    // nothing there and deletes nothing.
    {
        let mut world = fake.world.lock().unwrap();
        world.project_reads_fail = false;
        world.created_project_is = Some(12);
    }
    let calls_before = fake.calls().len();
    let (_, run) = check_as_admin(&app, &onboarding.id, json!({"checks": ["scenarios"]})).await;
    let steps = steps_of(&run);
    assert_eq!(steps, [("create_scratch_project".to_owned(), "failed".to_owned())], "{steps:?}");
    let later: Vec<String> = fake.calls()[calls_before..].to_vec();
    assert!(!later.iter().any(|c| c.contains("/projects/12")), "{later:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_cut_short_by_its_limits_leaves_the_earlier_evidence_standing() {
    let mut app = app_behind(PUBLIC_URL, |checks| checks.limits.max_hook_lists = 2).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        world
            .project_hooks
            .insert(12, vec![hook(77, &onboarding.webhook_url, &ALL_TRIGGERS, true, Some(("project", 12)))]);
        world.group_hooks.insert(3, vec![]);
        world.project_hooks.insert(11, vec![]);
    }
    let (state, _) = check(&app, &onboarding.id, json!({"checks": ["webhook"], "project_id": 12})).await;
    assert_eq!(item(&state, "webhook.triggers")["met"], true);
    // A search of everything within two hook lists cannot reach project 12: no fact.
    let (state, run) = check(&app, &onboarding.id, json!({"checks": ["webhook"]})).await;
    assert_eq!(of_type(&run, "webhook_checked")[0]["data"]["finding"]["complete"], false);
    assert_eq!(of_type(&run, "gitlab_check_finished")[0]["data"]["could_not_look"], json!(["webhook"]));
    for id in ["webhook.triggers", "webhook.created_with_issued_url"] {
        assert_eq!(item(&state, id)["met"], true, "{id}");
    }
    assert!(state["check_failures"]["webhook"]["detail"].as_str().unwrap().contains("name the group or project"));
    app.stop().await;
}

/// GitLab sends a push only when the hook's push filter lets its branch through: the scenario
/// run pushes to a branch that passes (a wildcard filter's own pattern), or says why it cannot
/// (a filter naming one branch) and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_run_pushes_to_a_branch_the_push_filter_lets_through_or_says_why_it_cannot() {
    let mut app = app_for_scenarios().await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    let filtered = |pattern: &str| {
        let mut world = fake.world.lock().unwrap();
        hook_in_group_3(&mut world, &onboarding);
        let hook = &mut world.group_hooks.get_mut(&3).unwrap()[0];
        hook["push_events_branch_filter"] = json!(pattern);
        hook["branch_filter_strategy"] = json!("wildcard");
    };
    filtered("main");
    let (_, run) = check_as_admin(&app, &onboarding.id, json!({"checks": ["webhook", "scenarios"]})).await;
    let steps = steps_of(&run);
    assert!(steps.iter().all(|(_, outcome)| outcome == "not_possible"), "{steps:?}");
    let reason = of_type(&run, "scenario_step_performed")[0]["data"]["outcome"]["reason"].to_string();
    assert!(reason.contains("push filter lets through no branch golive can choose"), "{reason}");
    assert!(fake.world.lock().unwrap().created_projects.is_empty(), "nothing written");

    filtered("feature/*");
    let (_, run) = check_as_admin(&app, &onboarding.id, json!({"checks": ["webhook", "scenarios"]})).await;
    let steps = steps_of(&run);
    assert!(steps.contains(&("push_commit".to_owned(), "done".to_owned())), "{steps:?}");
    app.stop().await;
}

/// A hook list GitLab did not answer (5xx) makes the search incomplete: golive says so and never
/// "not found", and the item keeps no evidence either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_list_gitlab_did_not_answer_makes_the_search_incomplete_never_not_found() {
    let mut app = app_for_checks(500).await;
    let fake = FakeGitlab::start(World { failing_hook_lists: [11].into_iter().collect(), ..world() }).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    fake.world.lock().unwrap().project_hooks.insert(12, vec![]);
    let (state, run) = check(&app, &onboarding.id, json!({"checks": ["webhook"]})).await;
    let finding = &of_type(&run, "webhook_checked")[0]["data"]["finding"];
    assert_eq!(finding["outcome"], "not_found", "{finding}");
    assert_eq!(finding["complete"], false, "{finding}");
    let item = item(&state, "webhook.created_with_issued_url");
    assert_eq!(item["met"], false, "{item}");
    assert!(item["evidence"].is_null() || item["evidence"]["source"] != "gitlab_api", "{item}");
    let finished = &of_type(&run, "gitlab_check_finished")[0]["data"];
    assert!(finished["could_not_look"].to_string().contains("webhook"), "{finished}");
    app.stop().await;
}

/// A hook with a custom webhook template sends the rendered template, not GitLab's payload
/// (`WebHookService#request_payload`): the webhook item says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_with_a_custom_template_is_reported_since_golive_needs_gitlab_s_payload() {
    let mut app = app_for_checks(500).await;
    let fake = FakeGitlab::start(world()).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        hook_in_group_3(&mut world, &onboarding);
        world.group_hooks.get_mut(&3).unwrap()[0]["custom_webhook_template"] = json!(r#"{"event":"{{object_kind}}"}"#);
    }
    let (state, run) = check(&app, &onboarding.id, json!({"checks": ["webhook"], "group_id": 3})).await;
    assert_eq!(of_type(&run, "webhook_checked")[0]["data"]["finding"]["custom_template"], true);
    let item = item(&state, "webhook.created_with_issued_url");
    assert_eq!(item["met"], false, "{item}");
    assert!(
        item["reason"].as_str().unwrap().contains("sends a custom webhook template instead of GitLab's payload"),
        "{item}"
    );
    app.stop().await;
}
