//! GitLab's own webhook payloads (`fixtures/gitlab/payloads/`, each file's source in its
//! `SOURCES.md`) posted to a running golive with the `X-Gitlab-Event` GitLab sends them with: what
//! golive answers (recorded, or acknowledged and ignored), which are evidence, and that GitLab's
//! resend of each (the logged copy, e-mail addresses redacted) is a duplicate that writes nothing.

use std::collections::BTreeSet;
use std::path::Path;

use golive::domain::IntegrationId;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{spawn_app, to_webhook_live, TestApp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Recorded,
    Ignored,
}

/// (fixture, X-Gitlab-Event, answer, scenario it is evidence of)
const CASES: [(&str, &str, Answer, Option<&str>); 26] = [
    ("push", "Push Hook", Answer::Recorded, Some("code_pushed")),
    ("tag_push", "Tag Push Hook", Answer::Recorded, None),
    ("note", "Note Hook", Answer::Recorded, None),
    ("issue", "Issue Hook", Answer::Recorded, Some("issue_opened")),
    ("confidential_issue", "Confidential Issue Hook", Answer::Recorded, Some("issue_opened")),
    ("merge_request", "Merge Request Hook", Answer::Recorded, Some("merge_request_created")),
    ("pipeline", "Pipeline Hook", Answer::Recorded, Some("pipeline_ran")),
    ("job", "Job Hook", Answer::Recorded, None),
    ("deployment", "Deployment Hook", Answer::Recorded, None),
    ("release", "Release Hook", Answer::Recorded, None),
    ("wiki_page", "Wiki Page Hook", Answer::Recorded, None),
    ("emoji", "Emoji Hook", Answer::Ignored, None),
    ("member", "Member Hook", Answer::Ignored, None),
    ("subgroup", "Subgroup Hook", Answer::Ignored, None),
    ("project", "Project Hook", Answer::Ignored, None),
    ("resource_access_token", "Resource Access Token Hook", Answer::Ignored, None),
    ("feature_flag", "Feature Flag Hook", Answer::Ignored, None),
    ("milestone", "Milestone Hook", Answer::Ignored, None),
    // A system hook's push and merge request count as what they are.
    ("system_push", "System Hook", Answer::Recorded, Some("code_pushed")),
    ("system_tag_push", "System Hook", Answer::Recorded, None),
    ("system_merge_request", "System Hook", Answer::Recorded, Some("merge_request_created")),
    // A system hook's own events prove the delivery path (GitLab's system hook test sends
    // `project_create`) and are evidence of no scenario.
    ("system_repository_update", "System Hook", Answer::Recorded, None),
    ("system_project_create", "System Hook", Answer::Recorded, None),
    ("system_user_create", "System Hook", Answer::Recorded, None),
    ("system_group_create", "System Hook", Answer::Recorded, None),
    ("system_member_approval", "System Hook", Answer::Ignored, None),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gitlab/payloads").join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether a value is e-mail shaped, as Ruby's `URI::MailTo::EMAIL_REGEXP` (anchored) decides.
fn email_shaped(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    let local_ok =
        !local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    local_ok && domain.split('.').all(label_ok)
}

/// What GitLab logs of a request, and so resends: `WebHookLog#redact_user_emails` replaces every
/// e-mail-shaped value with `[REDACTED]`; the hash is encoded again (so spacing differs too).
fn as_logged(body: &[u8]) -> (Vec<u8>, usize) {
    fn redact(value: &mut Value, count: &mut usize) {
        match value {
            Value::String(text) if email_shaped(text) => {
                *text = "[REDACTED]".into();
                *count += 1;
            }
            Value::Array(items) => items.iter_mut().for_each(|v| redact(v, count)),
            Value::Object(map) => map.values_mut().for_each(|v| redact(v, count)),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(body).unwrap();
    let mut count = 0;
    redact(&mut value, &mut count);
    (serde_json::to_vec(&value).unwrap(), count)
}

async fn version(app: &TestApp, id: &str) -> u64 {
    app.engine.state(IntegrationId::parse(id).unwrap()).await.unwrap().version
}

async fn scenarios(app: &TestApp, id: &str) -> BTreeSet<String> {
    let state = app.engine.state(IntegrationId::parse(id).unwrap()).await.unwrap();
    state.facts.scenarios_observed.keys().map(|s| s.as_str().to_owned()).collect()
}

async fn last_delivery(app: &TestApp, id: &str) -> Value {
    let history = app.engine.history(IntegrationId::parse(id).unwrap(), 0, 1000).await.unwrap();
    let event = history.iter().rev().find(|e| e.event_type == "webhook_delivery_recorded").expect("a delivery");
    event.data.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_s_own_payloads_are_recorded_or_acknowledged_and_their_resends_are_duplicates() {
    let mut app = spawn_app().await;
    let mut redacted_somewhere = 0;
    for (name, event, answer, evidence) in CASES {
        let (id, token) = to_webhook_live(&app).await;
        let body = fixture(name);
        let key = uuid::Uuid::new_v4().to_string();
        let before = version(&app, &id).await;
        let response = app.deliver(&id, event, &body, Some(&token), &key).await;
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        let answered: Value = response.json().await.unwrap();
        let recorded = version(&app, &id).await;
        match answer {
            Answer::Recorded => {
                assert_eq!(answered["status"], "recorded", "{name}: {answered}");
                assert_eq!(recorded, before + 1, "{name}: one event");
                let facts = last_delivery(&app, &id).await;
                assert_eq!(facts["event"], event, "{name}: {facts}");
                let kind = serde_json::from_slice::<Value>(&body).unwrap()["object_kind"].clone();
                assert_eq!(facts.get("object_kind").cloned().unwrap_or(Value::Null), kind, "{name}: kept as sent");
            }
            Answer::Ignored => {
                assert_eq!(answered["status"], "ignored", "{name}: {answered}");
                assert_eq!(answered["version"], before, "{name}");
                assert_eq!(recorded, before, "{name}: nothing written");
            }
        }
        let expected: BTreeSet<String> = evidence.into_iter().map(str::to_owned).collect();
        assert_eq!(scenarios(&app, &id).await, expected, "{name}: evidence");

        // GitLab's resend: the logged request (e-mail addresses redacted), the same key.
        let (logged, redacted) = as_logged(&body);
        redacted_somewhere += redacted;
        let resend = app.deliver(&id, event, &logged, Some(&token), &key).await;
        assert_eq!(resend.status(), StatusCode::OK, "{name}: resend");
        let resent: Value = resend.json().await.unwrap();
        let expected_status = if answer == Answer::Recorded { "duplicate" } else { "ignored" };
        assert_eq!(resent["status"], expected_status, "{name}: resend {resent}");
        assert_eq!(version(&app, &id).await, recorded, "{name}: a resend writes nothing");
    }
    assert!(redacted_somewhere > 10, "the fixtures carry e-mail addresses GitLab redacts ({redacted_somewhere})");

    // Counted per kind, as ignored; an unknown kind as `other`.
    let (id, token) = to_webhook_live(&app).await;
    let unknown = app.deliver(&id, "Future Thing Hook", &fixture("emoji"), Some(&token), "k-future").await;
    assert_eq!(unknown.status(), StatusCode::OK);
    let metrics = app.http.get(app.url("/metrics")).bearer_auth(&app.admin).send().await.unwrap().text().await.unwrap();
    for line in [
        r#"golive_webhook_deliveries_total{kind="Emoji Hook",outcome="ignored"} 2"#,
        r#"golive_webhook_deliveries_total{kind="System Hook",outcome="ignored"} 2"#,
        r#"golive_webhook_deliveries_total{kind="System Hook",outcome="duplicate"} 7"#,
        r#"golive_webhook_deliveries_total{kind="other",outcome="ignored"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(!metrics.contains("Future Thing"), "no label value from a sender");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_that_would_record_other_facts_conflicts_and_what_is_wrong_stays_4xx() {
    let mut app = spawn_app().await;
    let (id, token) = to_webhook_live(&app).await;
    let body = fixture("merge_request");
    assert_eq!(app.deliver(&id, "Merge Request Hook", &body, Some(&token), "k-mr").await.status(), StatusCode::OK);
    let recorded = version(&app, &id).await;
    // Same key, another action: not a resend. The first record stands.
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["object_attributes"]["action"] = json!("close");
    let conflict =
        app.deliver(&id, "Merge Request Hook", &serde_json::to_vec(&other).unwrap(), Some(&token), "k-mr").await;
    assert_eq!(conflict.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A system hook's copy of the same merge request under the same key is another delivery too.
    let system = app.deliver(&id, "System Hook", &body, Some(&token), "k-mr").await;
    assert_eq!(system.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // GitLab's resend of a log entry it stripped for size: nothing golive can use.
    let oversize = app.deliver(&id, "Merge Request Hook", br#"{"oversize":true}"#, Some(&token), "k-mr").await;
    assert_eq!(oversize.status(), StatusCode::OK);
    assert_eq!(oversize.json::<Value>().await.unwrap()["status"], "ignored");
    assert_eq!(version(&app, &id).await, recorded, "nothing written");
    // Still 4xx: a wrong token, a body that is not JSON, a kind that contradicts a used event,
    // even under an event golive does not use for the body.
    let wrong = app.deliver(&id, "Emoji Hook", &fixture("emoji"), Some("glw-wrong"), "k-w").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let not_json = app.deliver(&id, "Emoji Hook", b"<xml/>", Some(&token), "k-x").await;
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let contradiction = app.deliver(&id, "Push Hook", &fixture("system_repository_update"), Some(&token), "k-c").await;
    assert_eq!(contradiction.status(), StatusCode::BAD_REQUEST);
    let contradiction = app.deliver(&id, "Merge Request Hook", &fixture("emoji"), Some(&token), "k-c2").await;
    assert_eq!(contradiction.status(), StatusCode::BAD_REQUEST);
    assert_eq!(version(&app, &id).await, recorded, "nothing written");
    app.stop().await;
}

#[test]
fn a_system_hook_s_push_or_merge_request_answers_the_project_trigger() {
    let delivery = |event: &str, kind: Option<&str>| -> golive::domain::WebhookDelivery {
        let mut facts = json!({"event": event, "received_at": "2026-11-29T12:00:00Z", "body_sha256": "0".repeat(64),
            "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "action": "open"});
        if let Some(kind) = kind {
            facts["object_kind"] = json!(kind);
        }
        serde_json::from_value(facts).unwrap()
    };
    use golive::domain::{trigger_of, GitlabEvent, Trigger};
    for (kind, trigger) in
        [("push", Trigger::Push), ("tag_push", Trigger::TagPush), ("merge_request", Trigger::MergeRequests)]
    {
        let d = delivery("System Hook", Some(kind));
        assert_eq!(d.check(), Ok(()));
        assert_eq!(trigger_of(d.project_event()), Some(trigger), "{kind}");
    }
    let system_event = delivery("System Hook", None);
    assert_eq!(system_event.check(), Ok(()));
    assert_eq!(system_event.project_event(), GitlabEvent::System);
    assert_eq!(trigger_of(system_event.project_event()), None);
    assert_eq!(system_event.scenario_evidence(), None);
    assert!(delivery("System Hook", Some("note")).check().is_err());
}
