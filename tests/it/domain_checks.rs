//! Given/when/then tests of what golive's checks through GitLab's API do to the checklist: the
//! latest fact counts, a check that could not look changes nothing, provoked deliveries are no
//! scenario evidence, a playbook may reserve items for GitLab's API, one run at a time.

use std::collections::BTreeSet;

use chrono::Duration;
use golive::domain::{
    ApplicationChecked, ApplicationFinding, CheckFailure, CheckKind, CheckRecord, Command, Event, FindingCategory,
    GitlabCheckFinished, GitlabCheckStarted, HookLocation, HttpUrl, LongText, Rejection, ShortText, Stage,
    TestDeliveryAnswered, TestDeliveryRequested, TestRequestOutcome, Trigger, WebhookChecked, WebhookFinding,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::*;

fn record(bench: &mut Bench, record: CheckRecord) -> Result<Vec<Event>, Rejection> {
    let outcome = bench.decide_command(&Command::RecordCheck(record));
    if let Ok(events) = &outcome {
        for event in events {
            bench.state.apply(event, bench.now);
            bench.history.push((event.clone(), bench.now));
        }
    }
    outcome
}

fn start(bench: &mut Bench, checks: &[CheckKind]) -> Uuid {
    let check_id = Uuid::from_u128(0xC0FFEE + bench.history.len() as u128);
    let started = GitlabCheckStarted { check_id, checks: checks.iter().copied().collect(), writes: Vec::new() };
    record(bench, CheckRecord::Started(started)).expect("a run starts");
    check_id
}

fn finish(bench: &mut Bench, check_id: Uuid) {
    let finished = GitlabCheckFinished {
        check_id,
        unmet: Vec::new(),
        deliveries_missing: BTreeSet::new(),
        could_not_look: BTreeSet::new(),
        skipped: BTreeSet::new(),
    };
    record(bench, CheckRecord::Finished(finished)).expect("the run finishes");
}

fn application_found(check_id: Uuid, callback_url_matches: bool) -> CheckRecord {
    CheckRecord::Application(ApplicationChecked {
        check_id,
        application_id: ShortText::parse("app-123").unwrap(),
        finding: ApplicationFinding::Found { name_matches: true, callback_url_matches, confidential: true },
    })
}

fn item(bench: &Bench, id: &str) -> golive::domain::ChecklistItem {
    bench.state.checklist().into_iter().find(|i| i.id == id).unwrap()
}

#[test]
fn given_the_rep_recorded_the_application_right_when_gitlab_shows_another_callback_url_then_it_is_unmet_until_recorded_again(
) {
    // Given an integration past info_gathered, the application recorded right by the rep.
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    assert_eq!(item(&bench, "info.application_registered").evidence.unwrap().source.describe(), "the rep's word");
    // When a check finds the callback URL registered in GitLab is another.
    let check_id = start(&mut bench, &[CheckKind::Application]);
    let events = record(&mut bench, application_found(check_id, false)).unwrap();
    // Then the item is unmet, rests on GitLab's API, says why, and the stage falls back.
    let registered = item(&bench, "info.application_registered");
    assert!(!registered.met);
    assert_eq!(registered.evidence.as_ref().unwrap().event, "application_checked");
    assert!(registered.reason.unwrap().contains("the callback URL registered in GitLab is not the redirect URI"));
    assert!(events.iter().any(|e| matches!(e, Event::StageRegressed { to: Stage::Created, .. })), "{events:?}");
    finish(&mut bench, check_id);
    // When the rep records it again (fixed in GitLab): the latest fact counts.
    bench.ok(json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect_uri(), "application_id": "app-123", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]}));
    assert!(bench.is_met("info.application_registered"));
    // And a check that finds it right meets it on GitLab's word.
    let check_id = start(&mut bench, &[CheckKind::Application]);
    record(&mut bench, application_found(check_id, true)).unwrap();
    assert!(bench.is_met("info.application_registered"));
    assert_eq!(item(&bench, "info.application_registered").evidence.unwrap().source.describe(), "GitLab's API");
}

#[test]
fn a_check_that_could_not_look_changes_no_item() {
    let mut bench = Bench::at_stage(Stage::Tested);
    let before = bench.state.checklist();
    let check_id = start(&mut bench, &[CheckKind::Application, CheckKind::Webhook]);
    let failure = CheckFailure {
        category: FindingCategory::PermissionDenied,
        detail: LongText::parse("GET /api/v4/applications: 403: the call needs a GitLab admin").unwrap(),
    };
    record(
        &mut bench,
        CheckRecord::Application(ApplicationChecked {
            check_id,
            application_id: ShortText::parse("app-123").unwrap(),
            finding: ApplicationFinding::Failed(failure.clone()),
        }),
    )
    .unwrap();
    let url = HttpUrl::parse(bench.webhook_url()).unwrap();
    let events = record(
        &mut bench,
        CheckRecord::Webhook(WebhookChecked { check_id, url, finding: WebhookFinding::Failed(failure) }),
    )
    .unwrap();
    assert_eq!(events.len(), 1, "no stage change: {events:?}");
    assert_eq!(bench.state.checklist(), before);
    assert_eq!(bench.state.stage, Stage::Tested);
    // The diagnosis names the checks that could not look.
    let diagnosis = bench.state.diagnose(bench.now, &Default::default());
    assert_eq!(diagnosis.findings.iter().filter(|f| f.message.contains("could not look")).count(), 2, "{diagnosis:?}");
}

#[test]
fn a_test_delivery_golive_asked_for_proves_the_path_but_is_no_scenario_evidence() {
    // Given webhook credentials issued, and a run asking for a push test.
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    bench.ok(json!({"type": "issue_webhook_credentials"}));
    let check_id = start(&mut bench, &[CheckKind::TestDeliveries]);
    let location = HookLocation::Project { project_id: 12 };
    let requested = TestDeliveryRequested { check_id, trigger: Trigger::Push, location, hook_id: 7 };
    record(&mut bench, CheckRecord::TestDelivery(requested)).unwrap();
    // When the push arrives (before GitLab's answer, as GitLab sends it), then the answer.
    bench.advance(Duration::milliseconds(400));
    bench.ok(push_delivery());
    let answered =
        TestDeliveryAnswered { check_id, trigger: Trigger::Push, location, outcome: TestRequestOutcome::Delivered };
    record(&mut bench, CheckRecord::TestAnswer(answered)).unwrap();
    // Then the delivery path is proven, the scenario is not, and the round trip is known.
    assert!(bench.is_met("webhook.delivery_verified") && bench.is_met("testing.webhook_functional"));
    let pushed = item(&bench, "testing.scenario_observed.code_pushed");
    assert!(!pushed.met);
    assert!(pushed.reason.unwrap().contains("only a test delivery golive asked GitLab for arrived"));
    assert_eq!(bench.state.facts.test_deliveries[&Trigger::Push].round_trip_seconds(), Some(0.4));
    // When the run is over, a real push is scenario evidence.
    finish(&mut bench, check_id);
    bench.ok(push_delivery());
    assert!(bench.is_met("testing.scenario_observed.code_pushed"));
    assert_eq!(
        item(&bench, "testing.scenario_observed.code_pushed").evidence.unwrap().source.describe(),
        "a GitLab delivery"
    );
}

#[test]
fn a_playbook_that_reserves_the_webhook_for_gitlab_s_api_is_not_met_by_a_person_s_word() {
    let mut playbook = serde_json::to_value(default_playbook()).unwrap();
    playbook["api_evidence_required"] = json!(["webhook.created_with_issued_url", "webhook.triggers"]);
    playbook["version"] = json!(2);
    let mut bench =
        Bench::opened_with(json!({"customer": "Strict Corp", "gitlab_url": GITLAB_URL, "playbook": playbook}));
    for (stage, body) in happy_path() {
        if stage > Stage::NetworkEstablished {
            break;
        }
        bench.ok(body);
    }
    bench.ok(json!({"type": "issue_webhook_credentials"}));
    let webhook = bench.webhook_url();
    bench.ok(json!({"type": "create_webhook", "url": webhook, "triggers": ["push", "comments", "merge_requests", "issues", "ci_cd"]}));
    let recorded = item(&bench, "webhook.triggers");
    assert!(!recorded.met);
    assert!(recorded.reason.unwrap().contains("requires GitLab's API to confirm it"));
    let check_id = start(&mut bench, &[CheckKind::Webhook]);
    let found = WebhookFinding::Found {
        location: HookLocation::Group { group_id: 3 },
        hook_id: 9,
        triggers: [Trigger::Push, Trigger::Comments, Trigger::MergeRequests, Trigger::Issues, Trigger::CiCd]
            .into_iter()
            .collect(),
        ssl_verification: true,
        alert: None,
        push_filter: None,
        custom_template: false,
    };
    let url = HttpUrl::parse(webhook).unwrap();
    record(&mut bench, CheckRecord::Webhook(WebhookChecked { check_id, url, finding: found })).unwrap();
    assert!(bench.is_met("webhook.triggers") && bench.is_met("webhook.created_with_issued_url"));
}

#[test]
fn one_run_at_a_time_its_records_belong_to_it_and_an_abandoned_run_gives_way() {
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    let first = start(&mut bench, &[CheckKind::Application]);
    let second =
        GitlabCheckStarted { check_id: Uuid::from_u128(2), checks: [CheckKind::Webhook].into(), writes: vec![] };
    let refused = record(&mut bench, CheckRecord::Started(second.clone())).unwrap_err();
    assert_eq!(refused.unmet_ids(), ["check.none_under_way"]);
    let stranger = record(&mut bench, application_found(Uuid::from_u128(99), true)).unwrap_err();
    assert!(matches!(stranger, Rejection::InvalidField { ref field, .. } if field == "check_id"), "{stranger:?}");
    let empty = GitlabCheckStarted { check_id: Uuid::from_u128(3), checks: BTreeSet::new(), writes: vec![] };
    // A run whose process stopped gives way after half an hour; its late records are refused.
    bench.advance(Duration::minutes(29));
    assert!(record(&mut bench, CheckRecord::Started(second.clone())).is_err());
    bench.advance(Duration::minutes(2));
    assert!(record(&mut bench, CheckRecord::Started(empty)).is_err(), "a run names at least one check");
    record(&mut bench, CheckRecord::Started(second)).unwrap();
    assert!(record(&mut bench, application_found(first, true)).is_err());
}

#[test]
fn what_a_hook_can_send_decides_the_triggers_reason() {
    // Given webhook credentials issued.
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    bench.ok(json!({"type": "issue_webhook_credentials"}));
    let url = HttpUrl::parse(bench.webhook_url()).unwrap();
    let sends = |triggers: &[Trigger]| triggers.iter().copied().collect::<BTreeSet<Trigger>>();
    // When GitLab's API finds it as a system hook sending push and merge requests only.
    let check_id = start(&mut bench, &[CheckKind::Webhook]);
    let system = WebhookFinding::Found {
        location: HookLocation::System,
        hook_id: 1,
        triggers: sends(&[Trigger::Push, Trigger::MergeRequests]),
        ssl_verification: true,
        alert: None,
        push_filter: None,
        custom_template: false,
    };
    record(&mut bench, CheckRecord::Webhook(WebhookChecked { check_id, url: url.clone(), finding: system })).unwrap();
    finish(&mut bench, check_id);
    // Then the reason says what a system hook cannot send at all.
    let reason = item(&bench, "webhook.triggers").reason.unwrap();
    assert!(reason.contains("a system hook cannot send comments, issues, ci_cd events"), "{reason}");
    // When it is a group hook lacking the same triggers: they are merely not switched on.
    let check_id = start(&mut bench, &[CheckKind::Webhook]);
    let group = WebhookFinding::Found {
        location: HookLocation::Group { group_id: 3 },
        hook_id: 2,
        triggers: sends(&[Trigger::Push, Trigger::MergeRequests]),
        ssl_verification: true,
        alert: None,
        push_filter: None,
        custom_template: false,
    };
    record(&mut bench, CheckRecord::Webhook(WebhookChecked { check_id, url, finding: group })).unwrap();
    let reason = item(&bench, "webhook.triggers").reason.unwrap();
    assert!(reason.contains("does not send the triggers comments, issues, ci_cd"), "{reason}");
    assert!(!reason.contains("system hook"), "{reason}");
    assert!(HookLocation::Group { group_id: 3 }.can_send(Trigger::Issues));
    assert!(!HookLocation::System.can_send(Trigger::Issues) && HookLocation::System.can_send(Trigger::Push));
}

#[test]
fn test_answers_recorded_under_the_old_words_read_as_the_new_ones() {
    // Given answers recorded before golive read GitLab's hook-test answers as GitLab gives them.
    let old: [(serde_json::Value, &str); 3] = [
        (json!({"outcome": "sent"}), "delivered"),
        (json!({"outcome": "unsupported"}), "not_testable"),
        (json!({"outcome": "not_available"}), "not_available"),
    ];
    for (recorded, word) in old {
        // When they are read, then they mean what the new words mean, and are written anew so.
        let outcome: TestRequestOutcome = serde_json::from_value(recorded.clone()).unwrap();
        assert_eq!(outcome.word(), word, "{recorded}");
        assert_eq!(serde_json::to_value(&outcome).unwrap()["outcome"], word);
    }
}
