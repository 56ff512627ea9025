//! The version matrix: each GitLab version golive supports × each way an onboarding goes wrong,
//! against the fake GitLab held to GitLab's code (`fake_gitlab.rs`), through golive's real HTTP
//! API and receiver. Each cell checks the verdict and the words golive gives in `status` (the
//! checklist's reasons), `diagnose` and the check's own record; the terminal's words for the
//! four failures GitLab's test route reports are checked once on the newest version. Every
//! answer the fakes gave is then held to GitLab's own shapes (`gitlab_shapes.rs`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_gitlab::{hook, FakeGitlab, PathFailure, World};
use crate::gitlab_checks::{app_behind, application, check, item, of_type, onboard, world, ALL_TRIGGERS, PUBLIC_URL};
use crate::http::TestApp;

/// The versions of the matrix: before `personal_access_tokens/self` (15.0, 15.4), before the
/// project hook test route (16.10), its first rate limit (17.0), and today's (17.5).
const VERSIONS: [&str; 5] = ["15.0.5-ee", "15.4.6-ee", "16.10.4-ee", "17.0.2-ee", "17.5.1-ee"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    AllCorrect,
    Firewall,
    WrongHookToken,
    TlsFailure,
    NoSampleData,
    DisabledHook,
    BranchFilter,
    UserOwnedApplication,
    AdminModeOff,
}

const CASES: [Case; 9] = [
    Case::AllCorrect,
    Case::Firewall,
    Case::WrongHookToken,
    Case::TlsFailure,
    Case::NoSampleData,
    Case::DisabledHook,
    Case::BranchFilter,
    Case::UserOwnedApplication,
    Case::AdminModeOff,
];

const HOOK_ID: u64 = 77;

/// Shapes the fake's world for `case` once the onboarding's webhook is known.
fn shape(world: &mut World, case: Case, webhook_url: &str, secret_token: &str) {
    let mut project_hook = hook(HOOK_ID, webhook_url, &ALL_TRIGGERS, true, Some(("project", 12)));
    world.hook_tokens.insert(HOOK_ID, secret_token.to_owned());
    world.webhook_timeout_ms = 200;
    let mut app = application(&format!("{PUBLIC_URL}/oauth/gitlab/callback"), "Factory Integration", true);
    match case {
        Case::AllCorrect => {}
        Case::Firewall => world.deliveries_get_through = false,
        Case::WrongHookToken => {
            world.hook_tokens.insert(HOOK_ID, "a-token-someone-typed-by-hand".into());
        }
        Case::TlsFailure => world.path_failure = Some(PathFailure::Tls),
        Case::NoSampleData => world.no_sample_data = ALL_TRIGGERS.iter().map(|t| t.to_string()).collect(),
        Case::DisabledHook => {
            world.hook_failures.insert(HOOK_ID, (5, Some(chrono::Utc::now() + chrono::Duration::hours(1))));
        }
        Case::BranchFilter => {
            project_hook["push_events_branch_filter"] = json!("main");
            project_hook["branch_filter_strategy"] = json!("wildcard");
        }
        Case::UserOwnedApplication => app["owner"] = json!("user"),
        Case::AdminModeOff => {
            world.admin_mode = true;
            world.token_scopes = vec!["api".into(), "read_user".into(), "sudo".into()];
        }
    }
    world.applications = vec![app];
    world.project_hooks.insert(12, vec![project_hook]);
}

fn reason(state: &Value, id: &str) -> String {
    item(state, id)["reason"].as_str().unwrap_or("").to_owned()
}

fn findings(diagnosis: &Value) -> String {
    diagnosis["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("[{}] {} / {}", f["category"].as_str().unwrap(), f["message"], f["advice"]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The test-delivery outcomes of the run, as `word` or `delivery_failed:cause`.
fn outcomes(run: &[Value]) -> Vec<String> {
    of_type(run, "test_delivery_answered")
        .iter()
        .map(|r| {
            let outcome = &r["data"]["outcome"];
            match outcome["cause"].as_str() {
                Some(cause) => format!("{}:{cause}", outcome["outcome"].as_str().unwrap()),
                None => outcome["outcome"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

async fn cell(app: &TestApp, version: &str, case: Case) -> Vec<(String, String, u16, Value)> {
    let fake = FakeGitlab::start(World { version: version.to_owned(), ..world() }).await;
    let onboarding = onboard(app, &fake, "glpat-admin-of-the-fake").await;
    shape(&mut fake.world.lock().unwrap(), case, &onboarding.webhook_url, &onboarding.secret_token);
    let (state, run) =
        check(app, &onboarding.id, json!({"checks": ["application", "webhook", "test_deliveries"], "project_id": 12}))
            .await;
    let (_, diagnosis) = app.get(&app.viewer, &format!("/api/v1/integrations/{}/diagnose", onboarding.id)).await;
    let said = format!("{version} {case:?}\nrun: {:?}\nfindings:\n{}", outcomes(&run), findings(&diagnosis));
    let tests_route = version >= "16.11";
    let old_route = |outcomes: &[String]| {
        outcomes.iter().all(|o| o == "not_available")
            && reason(&state, "webhook.delivery_verified").is_empty()
                == item(&state, "webhook.delivery_verified")["met"].as_bool().unwrap()
    };
    let delivered_all = |outcomes: &[String]| {
        if version.starts_with("17.0") {
            // 17.0 allows 3 hook tests a minute per hook: the rest wait.
            outcomes == ["delivered", "delivered", "delivered", "rate_limited", "rate_limited"]
        } else {
            outcomes.iter().all(|o| o == "delivered") && outcomes.len() == 5
        }
    };
    let ran = outcomes(&run);
    match case {
        Case::AllCorrect | Case::DisabledHook | Case::BranchFilter | Case::UserOwnedApplication => {
            if tests_route {
                assert!(delivered_all(&ran), "{said}");
                assert_eq!(item(&state, "webhook.delivery_verified")["met"], true, "{said}");
            } else {
                assert!(old_route(&ran), "{said}");
                let words = of_type(&run, "test_delivery_answered")[0]["data"]["outcome"]["reason"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert!(
                    words.contains("cannot test project hooks through its API (it can from 16.11)"),
                    "{said}: {words}"
                );
            }
            let application = item(&state, "info.application_registered");
            let hook_url = item(&state, "webhook.created_with_issued_url");
            let triggers = item(&state, "webhook.triggers");
            match case {
                Case::AllCorrect => {
                    assert!(
                        application["met"] == true && hook_url["met"] == true && triggers["met"] == true,
                        "{said}\n{state}"
                    );
                }
                Case::DisabledHook => {
                    assert_eq!(hook_url["met"], false, "{said}");
                    let words = reason(&state, "webhook.created_with_issued_url");
                    assert!(
                        words.contains("GitLab disabled a hook of project 12 after repeated failed deliveries"),
                        "{said}: {words}"
                    );
                    assert!(findings(&diagnosis).contains("delivers nothing"), "{said}");
                }
                Case::BranchFilter => {
                    assert_eq!(triggers["met"], false, "{said}");
                    let words = reason(&state, "webhook.triggers");
                    assert!(words.contains("push events are filtered to some branches only"), "{said}: {words}");
                }
                Case::UserOwnedApplication => {
                    assert_eq!(application["met"], false, "{said}");
                    let words = reason(&state, "info.application_registered");
                    assert!(
                        words.contains("register it as an instance-wide application (Admin area > Applications)"),
                        "{said}: {words}"
                    );
                    assert!(!words.contains("not found"), "{said}: {words}");
                }
                _ => unreachable!(),
            }
        }
        Case::Firewall | Case::WrongHookToken | Case::TlsFailure | Case::NoSampleData => {
            let status_words = reason(&state, "webhook.delivery_verified");
            let diagnose_words = findings(&diagnosis);
            if !tests_route {
                // GitLab before 16.11 cannot be asked: golive says so and nothing else.
                assert!(old_route(&ran), "{said}");
                assert!(!diagnose_words.contains("Test deliveries of"), "{said}");
                return fake.world.lock().unwrap().answers.clone();
            }
            let (expected, words) = match case {
                Case::Firewall => (vec!["delivery_failed:timeout"], "timed out before golive answered"),
                Case::WrongHookToken => {
                    (vec!["delivery_failed:refused_by_golive"], "the hook holds another secret token")
                }
                Case::TlsFailure => (vec!["delivery_failed:tls"], "TLS failed between GitLab and golive"),
                _ => (vec!["no_sample_data"; if version.starts_with("17.0") { 3 } else { 5 }], "no sample data"),
            };
            assert_eq!(&ran[..expected.len()], expected.as_slice(), "{said}");
            assert_eq!(item(&state, "webhook.delivery_verified")["met"], false, "{said}");
            assert!(status_words.contains(words), "status: {said}\n{status_words}");
            assert!(diagnose_words.contains(words), "diagnose: {said}");
            // None is called another.
            for other in ["timed out before golive answered", "another secret token", "TLS failed", "no sample data"] {
                if other != words && !words.contains(other) {
                    assert!(!status_words.contains(other) && !diagnose_words.contains(other), "{other}: {said}");
                }
            }
        }
        Case::AdminModeOff => {
            // Admin-only routes refuse the admin's token: the checks could not look, and the
            // probe names Admin Mode.
            let application = &of_type(&run, "application_checked")[0]["data"]["finding"];
            assert_eq!(application["outcome"], "failed", "{said}");
            assert_eq!(application["category"], "permission_denied", "{said}");
            let (_, probed) =
                app.post(&app.rep, &format!("/api/v1/integrations/{}/probe", onboarding.id), &json!({})).await;
            let detail = probed["detail"].as_str().unwrap_or("").to_owned();
            assert_eq!(probed["admin"], false, "{said}: {probed}");
            assert!(detail.contains("Admin Mode"), "{said}: {probed}");
            if version < "15.5" {
                assert!(detail.contains("could not be checked"), "{said}: {probed}");
            }
        }
    }
    if case == Case::AllCorrect {
        let (_, probed) =
            app.post(&app.rep, &format!("/api/v1/integrations/{}/probe", onboarding.id), &json!({})).await;
        assert_eq!(probed["admin"], true, "{said}: {probed}");
        assert_eq!(probed["gitlab_version"], version, "{said}: {probed}");
        let detail = probed["detail"].as_str().unwrap_or("");
        // Before 15.5 the token's scopes cannot be read: said, not failed.
        assert_eq!(detail.contains("came in 15.5"), version < "15.5", "{said}: {probed}");
        assert_ne!(probed["category"], "permission_denied", "{said}: {probed}");
    }
    let answers = fake.world.lock().unwrap().answers.clone();
    answers
}

/// The hook fields a GitLab version does not list yet (GitLab's entity history; see
/// docs/gitlab-fidelity.md): `custom_webhook_template` from 16.10, `branch_filter_strategy`
/// from 17.2.
fn absent_in(version: &str) -> Vec<&'static str> {
    let (major, minor) = golive::gitlab::checks::major_minor(version).unwrap();
    let mut absent = Vec::new();
    if (major, minor) < (16, 10) {
        absent.push("custom_webhook_template");
    }
    if (major, minor) < (17, 2) {
        absent.push("branch_filter_strategy");
    }
    absent
}

async fn walk(version: &str) {
    let mut app = app_behind(PUBLIC_URL, |checks| checks.delivery_wait = Duration::from_secs(5)).await;
    let mut answers = Vec::new();
    for case in CASES {
        answers.extend(cell(&app, version, case).await);
    }
    // Every answer the fake gave has GitLab's shape.
    let mut wrong = Vec::new();
    for (method, path, status, body) in &answers {
        let Some(route) = crate::gitlab_shapes::route_of(method, path) else {
            wrong.push(format!("{method} {path}: no route"));
            continue;
        };
        if let Err(why) = crate::gitlab_shapes::check_answer(route, *status, body) {
            // The vendored schemas are today's GitLab's: a field a version does not have yet is
            // the only difference allowed, and only for that field.
            let absent_then = absent_in(version);
            let errors: Vec<&str> = why
                .split("; ")
                .filter(|e| !absent_then.iter().any(|field| e.contains(&format!("\"{field}\" is a required property"))))
                .collect();
            if !errors.is_empty() {
                wrong.push(format!("{method} {path} {status}: {}", errors.join("; ")));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{version}: answers not of GitLab's shape:\n{}", wrong.join("\n"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_15_0() {
    walk(VERSIONS[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_15_4() {
    walk(VERSIONS[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_16_10() {
    walk(VERSIONS[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_17_0() {
    walk(VERSIONS[3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_17_5() {
    walk(VERSIONS[4]).await;
}

/// The terminal's words: `golive check` names a refused connection as such, with GitLab's own
/// message nowhere in them, and exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golive_check_in_the_terminal_names_a_refused_connection() {
    let mut app = app_behind(PUBLIC_URL, |checks| checks.delivery_wait = Duration::from_secs(5)).await;
    let fake = FakeGitlab::start(World { version: VERSIONS[4].to_owned(), ..world() }).await;
    let onboarding = onboard(&app, &fake, "glpat-admin-of-the-fake").await;
    {
        let mut world = fake.world.lock().unwrap();
        shape(&mut world, Case::AllCorrect, &onboarding.webhook_url, &onboarding.secret_token);
        world.path_failure = Some(PathFailure::Refused);
    }
    let (code, stdout, stderr) =
        crate::gitlab_checks::golive(&app, &["check", "checked corp", "--test-deliveries", "--project", "12"]).await;
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(stdout.contains("delivery failed (GitLab could not connect to golive)"), "{stdout}");
    assert!(stdout.contains("was refused"), "{stdout}");
    assert!(!stdout.contains("connect(2)"), "GitLab's message is read, not copied: {stdout}");
    app.stop().await;
}
