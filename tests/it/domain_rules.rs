//! Given/when/then tests of the guide's requirements, guards and stage semantics.

use chrono::Duration;
use golive::domain::{Event, Rejection, Stage};
use serde_json::{json, Value};

use crate::support::*;

/// How a case changes the happy path so that exactly one requirement stays unmet.
enum Break {
    /// Leave out the happy path's step of this command type (the n-th of that type).
    Omit(&'static str, usize),
    /// Replace that step with another body.
    Replace(&'static str, usize, Value),
}

struct Case {
    requirement: &'static str,
    stage: Stage,
    breaking: Break,
    /// Additional steps to leave out because they depend on the broken one.
    also_omit: &'static [&'static str],
}

fn step_matches(body: &Value, command_type: &str) -> bool {
    body["type"] == command_type
}

fn cases() -> Vec<Case> {
    use Break::*;
    vec![
        Case {
            requirement: "info.prerequisites_confirmed",
            stage: Stage::InfoGathered,
            breaking: Replace(
                "confirm_prerequisites",
                0,
                json!({"type": "confirm_prerequisites", "gitlab_admin_access": true, "network_access": false, "factory_admin_account": true}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "info.application_registered",
            stage: Stage::InfoGathered,
            breaking: Replace(
                "register_application",
                0,
                json!({"type": "register_application", "name": "Droid App", "redirect_uri": redirect_uri(), "application_id": "app-1", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "info.application_registered",
            stage: Stage::InfoGathered,
            breaking: Replace(
                "register_application",
                0,
                json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": "https://elsewhere.example/callback", "application_id": "app-1", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "info.application_scopes",
            stage: Stage::InfoGathered,
            breaking: Replace(
                "register_application",
                0,
                json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect_uri(), "application_id": "app-1", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry"]}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "info.application_secret_provided",
            stage: Stage::InfoGathered,
            breaking: Omit("provide_application_secret", 0),
            also_omit: &[],
        },
        Case {
            requirement: "info.access_token_provided",
            stage: Stage::InfoGathered,
            breaking: Omit("provide_access_token", 0),
            also_omit: &[],
        },
        Case {
            requirement: "info.access_token_admin",
            stage: Stage::InfoGathered,
            breaking: Replace(
                "provide_access_token",
                0,
                json!({"type": "provide_access_token", "token": "glpat-not-admin", "admin": false}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "info.information_submitted",
            stage: Stage::InfoGathered,
            breaking: Omit("submit_information", 0),
            also_omit: &[],
        },
        Case {
            requirement: "network.policy_evaluated",
            stage: Stage::NetworkEstablished,
            breaking: Omit("evaluate_network_policy", 0),
            also_omit: &[],
        },
        Case {
            requirement: "network.connectivity",
            stage: Stage::NetworkEstablished,
            breaking: Replace(
                "establish_vpc_peering",
                0,
                json!({"type": "establish_vpc_peering", "peering_id": "pcx-0a1b2c3d", "customer_vpc_id": "vpc-0123abcd", "factory_vpc_id": "vpc-0fedcba9", "route_tables_configured": false}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "network.connectivity",
            stage: Stage::NetworkEstablished,
            breaking: Replace(
                "establish_vpc_peering",
                0,
                json!({"type": "establish_vpn", "tunnel_established": false, "ipsec_compatible": true}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "network.connectivity",
            stage: Stage::NetworkEstablished,
            breaking: Replace(
                "establish_vpc_peering",
                0,
                json!({"type": "establish_vpn", "tunnel_established": true, "ipsec_compatible": false}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "network.firewall_outbound_https",
            stage: Stage::NetworkEstablished,
            breaking: Replace(
                "configure_firewall",
                0,
                json!({"type": "configure_firewall", "outbound_https": false, "outbound_ssh": true, "webhook_endpoint_reachable": true}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "network.firewall_outbound_ssh",
            stage: Stage::NetworkEstablished,
            breaking: Replace(
                "configure_firewall",
                0,
                json!({"type": "configure_firewall", "outbound_https": true, "outbound_ssh": false, "webhook_endpoint_reachable": true}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "network.webhook_endpoint_reachable",
            stage: Stage::NetworkEstablished,
            breaking: Replace(
                "configure_firewall",
                0,
                json!({"type": "configure_firewall", "outbound_https": true, "outbound_ssh": true, "webhook_endpoint_reachable": false}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "webhook.created_with_issued_url",
            stage: Stage::WebhookLive,
            breaking: Replace(
                "create_webhook",
                0,
                json!({"type": "create_webhook", "url": "https://golive.factory.example/hooks/gitlab/wrong", "triggers": ["push", "comments", "merge_requests", "issues", "ci_cd"]}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "webhook.triggers",
            stage: Stage::WebhookLive,
            breaking: Replace(
                "create_webhook",
                0,
                json!({"type": "create_webhook", "url": format!("{PUBLIC_URL}/hooks/gitlab/{}", uuid::Uuid::from_u128(0x1001)), "triggers": ["push", "comments", "merge_requests", "issues"]}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "webhook.delivery_verified",
            stage: Stage::WebhookLive,
            breaking: Omit("record_webhook_delivery", 0),
            also_omit: &["record_webhook_delivery"],
        },
        Case {
            requirement: "testing.api_connectivity",
            stage: Stage::Tested,
            breaking: Replace(
                "record_api_check",
                0,
                json!({"type": "record_api_check", "ok": false, "detail": "connection refused"}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "testing.scenario_observed.code_pushed",
            stage: Stage::Tested,
            breaking: Replace(
                "record_webhook_delivery",
                1,
                delivery("Push Hook", "push", json!({"after": "0000000000000000000000000000000000000000"})),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "testing.scenario_observed.merge_request_created",
            stage: Stage::Tested,
            breaking: Replace(
                "record_webhook_delivery",
                2,
                delivery("Merge Request Hook", "merge_request", json!({"action": "update"})),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "testing.scenario_observed.issue_opened",
            stage: Stage::Tested,
            breaking: Replace(
                "record_webhook_delivery",
                3,
                delivery("Issue Hook", "issue", json!({"action": "close"})),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "testing.scenario_observed.pipeline_ran",
            stage: Stage::Tested,
            breaking: Replace(
                "record_webhook_delivery",
                4,
                delivery("Job Hook", "build", json!({"status": "success"})),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "validation.response_correct.merge_request_created",
            stage: Stage::Validated,
            breaking: Omit("validate_response", 0),
            also_omit: &[],
        },
        Case {
            requirement: "validation.response_correct.code_pushed",
            stage: Stage::Validated,
            breaking: Replace(
                "validate_response",
                1,
                json!({"type": "validate_response", "scenario": "code_pushed", "correct": false, "note": "missed the push"}),
            ),
            also_omit: &[],
        },
        Case {
            requirement: "validation.response_correct.issue_opened",
            stage: Stage::Validated,
            breaking: Omit("validate_response", 2),
            also_omit: &[],
        },
        Case {
            requirement: "validation.response_correct.pipeline_ran",
            stage: Stage::Validated,
            breaking: Omit("validate_response", 3),
            also_omit: &[],
        },
    ]
}

/// The fix for a case: the happy path's own step.
fn happy_step(command_type: &str, nth: usize) -> Value {
    happy_path().into_iter().map(|(_, b)| b).filter(|b| step_matches(b, command_type)).nth(nth).unwrap()
}

#[test]
fn every_requirement_gates_its_stage_and_its_fix_enters_every_stage_in_order() {
    for case in cases() {
        // Given the happy path with one requirement left unmet (facts of later stages recorded).
        let mut bench = Bench::opened();
        let (broken_type, nth) = match &case.breaking {
            Break::Omit(t, n) | Break::Replace(t, n, _) => (*t, *n),
        };
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for (_, body) in happy_path() {
            let kind = body["type"].as_str().unwrap().to_owned();
            let index = *seen.entry(kind.clone()).and_modify(|n| *n += 1).or_insert(0);
            if kind == broken_type && index == nth {
                if let Break::Replace(_, _, replacement) = &case.breaking {
                    bench.ok(replacement.clone());
                }
                continue;
            }
            if case.also_omit.contains(&kind.as_str()) && kind == broken_type {
                continue;
            }
            bench.ok(body);
        }
        // Then the integration stops right before the requirement's stage ...
        let before = Stage::ORDERED[case.stage.ordinal().unwrap() - 1];
        assert_eq!(bench.state.stage, before, "{}: stage", case.requirement);
        assert!(!bench.is_met(case.requirement), "{}: shown as missing", case.requirement);
        let missing: Vec<String> = bench.state.checklist().into_iter().filter(|i| !i.met).map(|i| i.id).collect();
        assert!(missing.contains(&case.requirement.to_string()));

        // When the requirement's fact is recorded ...
        let fix = match (&case.breaking, case.requirement) {
            (_, "webhook.delivery_verified") => note_delivery(),
            _ => happy_step(broken_type, nth),
        };
        let events = bench.when(fix).unwrap_or_else(|r| panic!("{}: fix refused: {r}", case.requirement));

        // Then every stage from the requirement's own on is entered, in order, in one append.
        // A different access token is a new token: API connectivity must be shown again with it.
        // Without deliveries there is no scenario evidence either: one delivery reaches webhook_live.
        let reaches = match case.requirement {
            "info.access_token_admin" => {
                assert!(!bench.is_met("testing.api_connectivity"));
                Stage::WebhookLive
            }
            "webhook.delivery_verified" => Stage::WebhookLive,
            _ => Stage::Validated,
        };
        let expected: Vec<Stage> = Stage::AUTOMATIC.into_iter().filter(|s| *s >= case.stage && *s <= reaches).collect();
        assert_eq!(entered(&events), expected, "{}: stages entered by the fix", case.requirement);
        assert_eq!(bench.state.stage, reaches);
    }
}

#[test]
fn facts_recorded_out_of_order_count_once_information_is_in() {
    // Given network and webhook work done before the information was submitted.
    let mut bench = Bench::opened();
    let steps = happy_path();
    let (submit, rest): (Vec<_>, Vec<_>) = steps.into_iter().partition(|(_, b)| b["type"] == "submit_information");
    for (_, body) in rest {
        assert!(entered(&bench.when(body).unwrap()).is_empty(), "nothing entered before submission");
    }
    assert_eq!(bench.state.stage, Stage::Created);
    // When the information is submitted, then all five automatic stages are entered at once.
    let events = bench.when(submit[0].1.clone()).unwrap();
    assert_eq!(entered(&events), Stage::AUTOMATIC.to_vec());
}

#[test]
fn accepted_facts_that_leave_requirements_unmet_are_recorded() {
    let mut bench = Bench::opened();
    let types = bench.ok(json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect_uri(), "application_id": "a", "scopes": ["read_user"]}));
    assert_eq!(types, ["application_registered"]);
    let types = bench.ok(json!({"type": "provide_access_token", "token": "glpat-x", "admin": false}));
    assert_eq!(types, ["access_token_provided"]);
    assert!(!bench.is_met("info.application_scopes"));
    assert!(!bench.is_met("info.access_token_admin"));
}

fn unmet_ids(outcome: Result<Vec<Event>, Rejection>) -> Vec<String> {
    match outcome {
        Err(Rejection::GuardRejected { unmet, .. }) => unmet.into_iter().map(|u| u.id).collect(),
        other => panic!("expected a guard rejection, got {other:?}"),
    }
}

#[test]
fn go_live_requires_validated_stage() {
    let mut bench = Bench::at_stage(Stage::Tested);
    bench.ok(json!({"type": "schedule_go_live", "date": "2026-03-02"}));
    assert_eq!(unmet_ids(bench.when(json!({"type": "go_live"}))), ["go_live.stage_validated"]);
}

#[test]
fn go_live_requires_a_scheduled_date_that_has_been_reached() {
    let mut bench = Bench::at_stage(Stage::Validated);
    assert_eq!(unmet_ids(bench.when(json!({"type": "go_live"}))), ["go_live.date_scheduled"]);
    bench.ok(json!({"type": "schedule_go_live", "date": "2026-03-04"}));
    assert_eq!(unmet_ids(bench.when(json!({"type": "go_live"}))), ["go_live.date_reached"]);
    // The date is a UTC date: one minute past midnight of that day is enough.
    bench.now = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 4, 0, 1, 0).unwrap();
    let events = bench.when(json!({"type": "go_live"})).unwrap();
    assert_eq!(entered(&events), [Stage::Live]);
    let monitoring = bench.state.monitoring.clone().unwrap();
    assert_eq!(monitoring.ends_at - monitoring.started_at, Duration::days(14));
}

#[test]
fn go_live_requires_no_open_feedback_and_no_block() {
    let mut bench = Bench::at_stage(Stage::Validated);
    bench.ok(json!({"type": "schedule_go_live", "date": "2026-03-02"}));
    bench.ok(json!({"type": "report_feedback", "summary": "Droid comments are too verbose"}));
    bench.ok(json!({"type": "block", "category": "other", "detail": "customer change freeze"}));
    assert_eq!(unmet_ids(bench.when(json!({"type": "go_live"}))), ["go_live.feedback_resolved", "go_live.not_blocked"]);
    let feedback_id = bench.state.feedback[0].id.to_string();
    bench.ok(json!({"type": "resolve_feedback", "feedback_id": feedback_id, "resolution": "tuned"}));
    bench.ok(json!({"type": "unblock", "resolution": "freeze over"}));
    assert_eq!(entered(&bench.when(json!({"type": "go_live"})).unwrap()), [Stage::Live]);
}

#[test]
fn an_incorrect_validation_opens_feedback_that_must_be_resolved() {
    let mut bench = Bench::at_stage(Stage::Tested);
    let types = bench
        .ok(json!({"type": "validate_response", "scenario": "issue_opened", "correct": false, "note": "wrong labels"}));
    assert_eq!(types, ["response_validated", "feedback_reported"]);
    assert_eq!(bench.state.open_feedback().count(), 1);
    assert_eq!(bench.state.feedback[0].scenario, Some(golive::domain::Scenario::IssueOpened));
}

#[test]
fn complete_monitoring_only_once_the_window_has_passed() {
    let mut bench = Bench::at_stage(Stage::Validated);
    assert_eq!(unmet_ids(bench.when(json!({"type": "complete_monitoring"}))), ["monitoring.live"]);
    let mut bench = Bench::at_stage(Stage::Live);
    assert_eq!(unmet_ids(bench.when(json!({"type": "complete_monitoring"}))), ["monitoring.window_passed"]);
    bench.advance(Duration::days(14));
    assert_eq!(bench.ok(json!({"type": "complete_monitoring"})), ["monitoring_completed"]);
    assert_eq!(bench.state.stage, Stage::Live);
    assert_eq!(unmet_ids(bench.when(json!({"type": "complete_monitoring"}))), ["monitoring.not_completed"]);
}

#[test]
fn cancelled_is_terminal() {
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    assert_eq!(
        bench.ok(json!({"type": "cancel", "reason": "customer moved to GitLab.com"})),
        ["integration_cancelled"]
    );
    assert_eq!(bench.state.stage, Stage::Cancelled);
    for body in [
        json!({"type": "add_note", "text": "hello"}),
        json!({"type": "cancel", "reason": "again"}),
        note_delivery(),
        json!({"type": "record_api_check", "ok": true}),
    ] {
        assert_eq!(bench.when(body), Err(Rejection::Cancelled));
    }
}

#[test]
fn block_and_unblock_are_guarded_by_the_flag() {
    let mut bench = Bench::opened();
    assert_eq!(unmet_ids(bench.when(json!({"type": "unblock", "resolution": "x"}))), ["block.blocked"]);
    bench.ok(json!({"type": "block", "category": "api_failure", "detail": "API calls time out"}));
    assert_eq!(
        unmet_ids(bench.when(json!({"type": "block", "category": "other", "detail": "again"}))),
        ["block.not_blocked"]
    );
    bench.ok(json!({"type": "unblock", "resolution": "firewall opened"}));
    assert!(bench.state.block.is_none());
}

#[test]
fn a_delivery_needs_issued_credentials() {
    let mut bench = Bench::opened();
    assert_eq!(unmet_ids(bench.when(note_delivery())), ["webhook.credentials_issued"]);
}

#[test]
fn feedback_resolution_needs_a_known_open_item() {
    let mut bench = Bench::opened();
    let unknown =
        json!({"type": "resolve_feedback", "feedback_id": uuid::Uuid::from_u128(9).to_string(), "resolution": "x"});
    assert!(matches!(bench.when(unknown), Err(Rejection::InvalidField { field, .. }) if field == "feedback_id"));
    bench.ok(json!({"type": "report_feedback", "summary": "slow"}));
    let id = bench.state.feedback[0].id.to_string();
    bench.ok(json!({"type": "resolve_feedback", "feedback_id": id, "resolution": "faster"}));
    assert_eq!(
        unmet_ids(bench.when(json!({"type": "resolve_feedback", "feedback_id": id, "resolution": "again"}))),
        ["feedback.open"]
    );
}

#[test]
fn go_live_dates_in_the_past_are_invalid() {
    let mut bench = Bench::opened();
    let outcome = bench.when(json!({"type": "schedule_go_live", "date": "2026-03-01"}));
    assert!(matches!(outcome, Err(Rejection::InvalidField { field, .. }) if field == "date"));
    bench.ok(json!({"type": "schedule_go_live", "date": "2026-03-02"}));
}

#[test]
fn http_instance_urls_need_a_playbook_that_allows_them() {
    let mut bench = Bench::opened();
    let outcome = bench.when(json!({"type": "set_instance_url", "gitlab_url": "http://gitlab.internal"}));
    assert!(matches!(outcome, Err(Rejection::InvalidField { field, .. }) if field == "gitlab_url"));
    let mut playbook = serde_json::to_value(default_playbook()).unwrap();
    playbook["allow_http"] = json!(true);
    let mut bench =
        Bench::opened_with(json!({"customer": "Lab", "gitlab_url": "http://gitlab.lab", "playbook": playbook}));
    assert!(bench.is_met("info.instance_url"));
    bench.ok(json!({"type": "set_instance_url", "gitlab_url": "http://gitlab.internal"}));
}

// --- Invalidation ---------------------------------------------------------------------------

fn regression(events: &[Event]) -> (Stage, Stage, String, Vec<String>) {
    let found: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::StageRegressed { from, to, cause } => {
                Some((*from, *to, cause.command.clone(), cause.requirements.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "exactly one stage_regressed per command: {events:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn rotating_the_application_secret_without_a_new_one_falls_back_to_created() {
    let mut bench = Bench::at_stage(Stage::Validated);
    let events = bench.when(json!({"type": "rotate_credential", "credential": "application_secret"})).unwrap();
    assert_eq!(
        regression(&events),
        (Stage::Validated, Stage::Created, "rotate_credential".into(), vec!["info.application_secret_provided".into()])
    );
    // Recovery: a new secret re-enters every stage, since nothing else was voided.
    let events = bench.when(json!({"type": "provide_application_secret", "secret": "gloas-new"})).unwrap();
    assert_eq!(entered(&events), Stage::AUTOMATIC.to_vec());
}

#[test]
fn rotating_the_application_secret_with_a_new_one_keeps_the_stage() {
    let mut bench = Bench::at_stage(Stage::Validated);
    let types =
        bench.ok(json!({"type": "rotate_credential", "credential": "application_secret", "secret": "gloas-rotated"}));
    assert_eq!(types, ["credential_rotated"]);
}

#[test]
fn rotating_the_access_token_voids_api_connectivity() {
    let mut bench = Bench::at_stage(Stage::Validated);
    let events = bench
        .when(json!({"type": "rotate_credential", "credential": "access_token", "secret": "glpat-rotated"}))
        .unwrap();
    assert_eq!(
        regression(&events),
        (Stage::Validated, Stage::WebhookLive, "rotate_credential".into(), vec!["testing.api_connectivity".into()])
    );
    let events = bench.when(json!({"type": "rotate_credential", "credential": "access_token"})).unwrap();
    let (_, to, _, requirements) = regression(&events);
    assert_eq!(to, Stage::Created);
    assert_eq!(requirements, ["info.access_token_provided", "info.access_token_admin"]);
}

#[test]
fn rotating_the_webhook_token_voids_the_delivery_but_keeps_scenarios_and_validations() {
    let mut bench = Bench::at_stage(Stage::Validated);
    let events = bench.when(json!({"type": "rotate_credential", "credential": "webhook_token"})).unwrap();
    assert_eq!(
        regression(&events),
        (
            Stage::Validated,
            Stage::NetworkEstablished,
            "rotate_credential".into(),
            vec!["webhook.delivery_verified".into(), "testing.webhook_functional".into()]
        )
    );
    assert!(bench.last_shown.secret_token.is_some(), "the new token is shown once");
    assert!(bench.is_met("testing.scenario_observed.code_pushed"));
    assert!(bench.is_met("validation.response_correct.code_pushed"));
    let events = bench.when(note_delivery()).unwrap();
    assert_eq!(entered(&events), [Stage::WebhookLive, Stage::Tested, Stage::Validated]);
}

#[test]
fn narrower_scopes_or_triggers_fall_back() {
    let mut bench = Bench::at_stage(Stage::Tested);
    let events = bench.when(json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect_uri(), "application_id": "app-123", "scopes": ["api"]})).unwrap();
    assert_eq!(regression(&events).3, ["info.application_scopes"]);
    let mut bench = Bench::at_stage(Stage::Tested);
    let url = bench.webhook_url();
    let events = bench.when(json!({"type": "create_webhook", "url": url, "triggers": ["push"]})).unwrap();
    let (from, to, _, requirements) = regression(&events);
    assert_eq!((from, to), (Stage::Tested, Stage::NetworkEstablished));
    assert_eq!(requirements, ["webhook.triggers"]);
}

#[test]
fn a_probe_finding_a_non_admin_token_makes_the_admin_token_missing() {
    let mut bench = Bench::at_stage(Stage::WebhookLive);
    let events = bench.when(json!({"type": "record_probe_result", "api_reachable": true, "admin": false, "token_active": true, "token_scopes": ["api"], "category": "permission_denied"})).unwrap();
    assert_eq!(regression(&events).3, ["info.access_token_admin"]);
    // A probe finding the scopes missing does the same; a good probe restores.
    let good = json!({"type": "record_probe_result", "api_reachable": true, "admin": true, "token_active": true, "token_scopes": ["api", "sudo"]});
    assert_eq!(
        entered(&bench.when(good).unwrap()),
        [Stage::InfoGathered, Stage::NetworkEstablished, Stage::WebhookLive]
    );
    let events = bench
        .when(
            json!({"type": "record_probe_result", "api_reachable": true, "admin": true, "token_scopes": ["read_api"]}),
        )
        .unwrap();
    assert_eq!(regression(&events).3, ["info.access_token_admin"]);
}

#[test]
fn a_rate_limited_probe_is_recorded_but_is_not_evidence() {
    let mut bench = Bench::at_stage(Stage::Tested);
    let types = bench.ok(
        json!({"type": "record_probe_result", "api_reachable": false, "category": "rate_limited", "detail": "429"}),
    );
    assert_eq!(types, ["probe_result_recorded"]);
    assert_eq!(bench.state.stage, Stage::Tested);
}

#[test]
fn a_new_instance_url_voids_api_connectivity() {
    let mut bench = Bench::at_stage(Stage::Tested);
    let same = bench.ok(json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ssh_port": 2222}));
    assert_eq!(same, ["instance_url_set"], "the same URL voids nothing");
    // Another path on the same origin keeps the credentials; it is still a new URL.
    let events =
        bench.when(json!({"type": "set_instance_url", "gitlab_url": "https://gitlab.customer.example/other"})).unwrap();
    assert_eq!(
        regression(&events),
        (Stage::Tested, Stage::WebhookLive, "set_instance_url".into(), vec!["testing.api_connectivity".into()])
    );
    // Another origin also voids the credentials bound to the old one (tests/it/domain_binding.rs).
    let events =
        bench.when(json!({"type": "set_instance_url", "gitlab_url": "https://gitlab-new.customer.example"})).unwrap();
    let (_, to, _, voided) = regression(&events);
    assert_eq!(to, Stage::Created);
    assert!(voided.contains(&"info.access_token_provided".to_owned()), "{voided:?}");
}

#[test]
fn once_live_an_invalidation_raises_a_block_instead_of_regressing() {
    let mut bench = Bench::at_stage(Stage::Live);
    let events = bench.when(json!({"type": "rotate_credential", "credential": "webhook_token"})).unwrap();
    assert_eq!(events.iter().map(Event::type_name).collect::<Vec<_>>(), ["credential_rotated", "integration_blocked"]);
    assert_eq!(bench.state.stage, Stage::Live);
    let block = bench.state.block.clone().unwrap();
    assert_eq!(block.category, golive::domain::BlockCategory::WebhookNotReceived);
    assert_eq!(block.cause.unwrap().requirements, ["webhook.delivery_verified", "testing.webhook_functional"]);
    // A failing probe while already blocked adds no second block.
    let types = bench.ok(
        json!({"type": "record_probe_result", "api_reachable": false, "category": "api_failure", "detail": "timeout"}),
    );
    assert_eq!(types, ["probe_result_recorded"]);
}

#[test]
fn a_failed_probe_while_live_raises_an_api_failure_block() {
    let mut bench = Bench::at_stage(Stage::Live);
    let events = bench.when(json!({"type": "record_probe_result", "api_reachable": false, "category": "api_failure", "detail": "connect timeout after 10s"})).unwrap();
    assert_eq!(
        events.iter().map(Event::type_name).collect::<Vec<_>>(),
        ["probe_result_recorded", "integration_blocked"]
    );
    assert_eq!(bench.state.block.as_ref().unwrap().category, golive::domain::BlockCategory::ApiFailure);
}

// --- Checklist, next steps, diagnosis --------------------------------------------------------

#[test]
fn the_checklist_names_every_requirement_with_a_label() {
    let bench = Bench::opened();
    let checklist = bench.state.checklist();
    assert_eq!(checklist.len(), 19 + 4 + 4);
    let ids: std::collections::BTreeSet<_> = checklist.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids.len(), checklist.len(), "ids are unique");
    assert!(checklist.iter().all(|i| !i.label.is_empty()));
    assert!(checklist.iter().find(|i| i.id == "info.application_scopes").unwrap().label.contains("sudo"));
}

#[test]
fn next_steps_are_plain_words_that_name_no_internal_command() {
    let mut bench = Bench::opened();
    for (_, body) in happy_path() {
        for step in bench.state.next_steps(bench.now) {
            for internal in
                golive::domain::PUBLIC_COMMAND_TYPES.iter().chain(golive::domain::INTERNAL_COMMAND_TYPES.iter())
            {
                assert!(!step.contains(internal), "{step:?} names {internal}");
            }
        }
        bench.ok(body);
    }
    assert_eq!(bench.state.next_steps(bench.now), ["Schedule the go-live date"]);
    bench.ok(json!({"type": "schedule_go_live", "date": "2026-03-09"}));
    assert_eq!(bench.state.next_steps(bench.now), ["Go live on 2026-03-09"]);
    bench.now = "2026-03-09T08:00:00Z".parse().unwrap();
    assert_eq!(bench.state.next_steps(bench.now), ["Go live now"]);
}

#[test]
fn next_actions_carry_every_requirement_they_meet_and_offer_the_guide_s_choices() {
    use golive::domain::{Requirement, Step};
    // Given a new integration.
    let bench = Bench::opened();
    // When asked what to do next.
    let actions = bench.state.next_actions(bench.now);
    // Then the first is the prerequisites, the application carries its name and its scopes,
    // and the token carries "provided" and "admin".
    assert_eq!(actions[0].step, Step::ConfirmPrerequisites);
    assert_eq!(actions[0].requirements, [Requirement::PrerequisitesConfirmed]);
    let find =
        |step: Step| actions.iter().find(|a| a.step == step).unwrap_or_else(|| panic!("{step:?} in {actions:?}"));
    assert_eq!(
        find(Step::RegisterApplication).requirements,
        [Requirement::ApplicationRegistered, Requirement::ApplicationScopes]
    );
    assert_eq!(
        find(Step::ProvideAccessToken).requirements,
        [Requirement::AccessTokenProvided, Requirement::AccessTokenAdmin]
    );
    assert!(find(Step::RegisterApplication).label.contains("\"Factory Integration\""));
    // The steps of the next stage only: nothing of the network yet.
    assert!(actions.iter().all(|a| a.requirements.iter().all(|r| r.stage() == Stage::InfoGathered)));

    // Given the network stage: peering or VPN, until one is chosen.
    let mut bench = Bench::at_stage(Stage::InfoGathered);
    let steps: Vec<Step> = bench.state.next_actions(bench.now).into_iter().map(|a| a.step).collect();
    assert!(steps.contains(&Step::EstablishVpcPeering) && steps.contains(&Step::EstablishVpn), "{steps:?}");
    bench.ok(json!({"type": "establish_vpn", "tunnel_established": true, "ipsec_compatible": false}));
    let steps: Vec<Step> = bench.state.next_actions(bench.now).into_iter().map(|a| a.step).collect();
    assert!(steps.contains(&Step::EstablishVpn) && !steps.contains(&Step::EstablishVpcPeering), "{steps:?}");

    // Given testing: the probe or an API check, both meeting API connectivity.
    let bench = Bench::at_stage(Stage::WebhookLive);
    let actions = bench.state.next_actions(bench.now);
    assert_eq!(find_in(&actions, Step::Probe).requirements, [Requirement::ApiConnectivity]);
    assert_eq!(find_in(&actions, Step::RecordApiCheck).requirements, [Requirement::ApiConnectivity]);
}

fn find_in(actions: &[golive::domain::NextAction], step: golive::domain::Step) -> &golive::domain::NextAction {
    actions.iter().find(|a| a.step == step).unwrap_or_else(|| panic!("{step:?} in {actions:?}"))
}

#[test]
fn a_block_comes_first_and_live_integrations_are_monitored_then_completed() {
    use golive::domain::Step;
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    bench.ok(json!({"type": "block", "category": "api_failure", "detail": "the customer's proxy drops us"}));
    let first = &bench.state.next_actions(bench.now)[0];
    assert_eq!(first.step, Step::Unblock);
    assert!(first.label.starts_with("Resolve the api_failure block"), "{}", first.label);

    let mut bench = Bench::at_stage(Stage::Live);
    let actions = bench.state.next_actions(bench.now);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].step, Step::Probe);
    assert!(actions[0].label.starts_with("Monitor until "), "{}", actions[0].label);
    bench.advance(Duration::days(i64::from(bench.state.playbook.monitoring_days)));
    assert_eq!(bench.state.next_actions(bench.now)[0].step, Step::CompleteMonitoring);
    bench.ok(json!({"type": "complete_monitoring"}));
    assert!(bench.state.next_actions(bench.now).is_empty());
}

#[test]
fn open_feedback_is_an_action_with_its_id() {
    use golive::domain::Step;
    let mut bench = Bench::at_stage(Stage::Validated);
    bench.ok(json!({"type": "report_feedback", "summary": "the Droid missed a review"}));
    let id = bench.state.feedback[0].id;
    let actions = bench.state.next_actions(bench.now);
    assert_eq!(actions[0].step, Step::ResolveFeedback(id));
    assert_eq!(actions[0].label, "Resolve feedback: the Droid missed a review");
    assert_eq!(actions[1].step, Step::ScheduleGoLive);
}

/// What only a rep knows, for the fields a next action's command leaves out.
fn fill_what_only_the_rep_knows(command: &mut Value) {
    let rep_knows = [
        ("register_application", "application_id", json!("app-123")),
        ("provide_application_secret", "secret", json!("gloas-test-application-secret-1")),
        ("provide_access_token", "token", json!("glpat-test-access-token-1")),
        ("establish_vpc_peering", "peering_id", json!("pcx-0a1b2c3d")),
        ("establish_vpc_peering", "customer_vpc_id", json!("vpc-0123abcd")),
        ("establish_vpc_peering", "factory_vpc_id", json!("vpc-0fedcba987654321a")),
        ("record_manual_test", "note", json!("done on the call")),
        ("validate_response", "evidence", json!("looked right")),
        ("schedule_go_live", "date", json!("2026-03-09")),
        ("unblock", "resolution", json!("fixed")),
    ];
    let command_type = command["type"].as_str().unwrap().to_owned();
    for (type_name, field, value) in rep_knows {
        if type_name == command_type && command.get(field).is_none() {
            command[field] = value;
        }
    }
}

#[test]
fn following_the_next_actions_alone_takes_an_integration_live() {
    // Given a new integration, when a rep does only what the first next action with a command
    // says (filling in what only they know), and lets GitLab's deliveries arrive where the
    // action is a delivery, then it goes live in as many steps as the guide has.
    let mut bench = Bench::opened();
    let deliveries =
        [note_delivery(), push_delivery(), merge_request_open_delivery(), issue_open_delivery(), pipeline_delivery()];
    let mut next_delivery = 0;
    for round in 0..60 {
        if bench.state.stage == Stage::Live {
            assert!(round > 15, "{round} rounds is too few for the guide");
            return;
        }
        let state = &bench.state;
        let actions = state.next_actions(bench.now);
        let first = actions.first().unwrap_or_else(|| panic!("no next action in {}", state.stage));
        let views: Vec<Value> = actions.iter().map(|a| golive::views::actions::action(state, a)).collect();
        assert!(views.iter().all(|v| v["cli"].as_str().unwrap().starts_with("golive ")), "{views:?}");
        match views.iter().find(|v| !v["command"].is_null()) {
            Some(view) if first.step != golive::domain::Step::RecordDelivery => {
                let mut command = view["command"].clone();
                fill_what_only_the_rep_knows(&mut command);
                if command["type"] == "schedule_go_live" {
                    bench.now = "2026-03-09T08:00:00Z".parse().unwrap();
                }
                bench.ok(command);
            }
            _ => {
                bench.ok(deliveries[next_delivery].clone());
                next_delivery += 1;
            }
        }
    }
    panic!("not live after 60 rounds: {:?}", bench.state.next_steps(bench.now));
}

#[test]
fn an_unmet_item_says_what_differs_from_the_guide() {
    let reason = |bench: &Bench, id: &str| {
        let item = bench.state.checklist().into_iter().find(|i| i.id == id).unwrap();
        (item.reason, item.differs)
    };
    // Given nothing recorded: the reason says so and nothing differs.
    let mut bench = Bench::opened();
    assert_eq!(reason(&bench, "info.application_registered"), (Some("nothing recorded yet".into()), false));
    // When the application is recorded with its name in another case and another redirect URI.
    bench.ok(json!({"type": "register_application", "name": "factory integration", "redirect_uri": "https://elsewhere.example/cb", "application_id": "app-1", "scopes": ["api"]}));
    // Then both differences are named, the case rule too, and the missing scopes.
    let (text, differs) = reason(&bench, "info.application_registered");
    let text = text.unwrap();
    assert!(differs);
    assert!(text.contains("\"factory integration\"") && text.contains("\"Factory Integration\""), "{text}");
    assert!(text.contains("case included"), "{text}");
    assert!(text.contains("https://elsewhere.example/cb") && text.contains(&redirect_uri()), "{text}");
    let (scopes, _) = reason(&bench, "info.application_scopes");
    assert!(scopes
        .unwrap()
        .ends_with("without the scopes read_registry, read_repository, read_user, sudo, write_repository"));

    // Given a webhook recorded without ci_cd and with another URL.
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    bench.ok(json!({"type": "issue_webhook_credentials"}));
    bench.ok(json!({"type": "create_webhook", "url": "https://example.org/hook", "triggers": ["push", "comments", "merge_requests", "issues"]}));
    let (triggers, differs) = reason(&bench, "webhook.triggers");
    assert!(differs);
    assert_eq!(triggers.unwrap(), "the webhook was recorded without the triggers ci_cd");
    let (url, _) = reason(&bench, "webhook.created_with_issued_url");
    assert_eq!(
        url.unwrap(),
        format!("the webhook URL recorded is https://example.org/hook, the issued URL is {}", bench.webhook_url())
    );
    // A met item has no reason.
    assert_eq!(reason(&bench, "network.policy_evaluated"), (None, false));

    // Given a VPN recorded without compatible IPsec, and a response recorded as incorrect.
    let mut bench = Bench::at_stage(Stage::InfoGathered);
    bench.ok(json!({"type": "establish_vpn", "tunnel_established": true, "ipsec_compatible": false}));
    assert_eq!(
        reason(&bench, "network.connectivity").0.unwrap(),
        "the VPN was recorded with IPsec settings that are not compatible"
    );
    let mut bench = Bench::at_stage(Stage::Tested);
    bench.ok(json!({"type": "validate_response", "scenario": "code_pushed", "correct": false, "note": "wrong file"}));
    assert_eq!(
        reason(&bench, "validation.response_correct.code_pushed"),
        (Some("the response was recorded as incorrect".into()), true)
    );
    // The token: recorded as not an admin's.
    let mut bench = Bench::opened();
    bench.ok(json!({"type": "provide_access_token", "token": "glpat-x-1234567890", "admin": false}));
    assert_eq!(
        reason(&bench, "info.access_token_admin"),
        (Some("the token was recorded as not an admin's".into()), true)
    );
}

#[test]
fn diagnose_reports_blocks_refusals_probe_failures_and_stalls() {
    use golive::domain::{DeliverySignals, FindingCategory};
    let mut bench = Bench::at_stage(Stage::NetworkEstablished);
    bench.ok(json!({"type": "record_probe_result", "api_reachable": false, "category": "api_failure", "detail": "connection refused to gitlab.customer.example:443"}));
    bench.ok(json!({"type": "block", "category": "api_failure", "detail": "probe cannot reach the instance"}));
    bench.advance(Duration::days(9));
    let signals = DeliverySignals { refused_deliveries: 12, first_refused_at: Some(t0()), last_refused_at: Some(t0()) };
    let diagnosis = bench.state.diagnose(bench.now, &signals);
    let categories: Vec<_> = diagnosis.findings.iter().map(|f| f.category).collect();
    assert_eq!(
        categories,
        [
            FindingCategory::ApiFailure,
            FindingCategory::ApiFailure,
            FindingCategory::WebhookNotReceived,
            FindingCategory::Stalled
        ]
    );
    assert!(diagnosis.findings[0].advice.contains("firewall"));
    assert!(diagnosis.findings[2].message.starts_with("12 deliveries were refused"));
    assert!(diagnosis.missing.iter().any(|m| m.id == "webhook.credentials_issued"));
    assert!(diagnosis.blocked.is_some());
}

#[test]
fn diagnose_notices_a_silent_webhook_while_live() {
    use golive::domain::{DeliverySignals, FindingCategory};
    let mut bench = Bench::at_stage(Stage::Live);
    bench.advance(Duration::days(6));
    let diagnosis = bench.state.diagnose(bench.now, &DeliverySignals::default());
    let finding = diagnosis.findings.iter().find(|f| f.category == FindingCategory::WebhookNotReceived).unwrap();
    assert_eq!(finding.message, "No delivery for 6 days while live");
    assert!(finding.advice.contains("secret token"));
}

/// Times still to run round up, elapsed times round down: a 14-day window that began a minute
/// ago is announced as 14 days, not 13.
#[test]
fn remaining_times_round_up_and_elapsed_times_round_down() {
    use chrono::Duration;
    use golive::domain::{describe_duration, describe_remaining};
    let cases = [
        (Duration::days(14) - Duration::minutes(1), "14 days", "13 days"),
        (Duration::days(1), "1 day", "1 day"),
        (Duration::days(1) + Duration::seconds(1), "2 days", "1 day"),
        (Duration::minutes(90), "2 hours", "1 hour"),
        (Duration::minutes(1), "1 hour", "0 hours"),
        (Duration::zero(), "0 hours", "0 hours"),
        (Duration::hours(-3), "0 hours", "0 hours"),
    ];
    for (duration, remaining, elapsed) in cases {
        assert_eq!(describe_remaining(duration), remaining, "{duration}");
        assert_eq!(describe_duration(duration), elapsed, "{duration}");
    }
}

/// A credential's name in texts is its name on the wire and in the log.
#[test]
fn a_credential_s_name_is_its_wire_name() {
    use golive::domain::Credential;
    for credential in [Credential::ApplicationSecret, Credential::AccessToken, Credential::WebhookToken] {
        assert_eq!(serde_json::to_value(credential).unwrap(), credential.as_str());
    }
}

#[test]
fn a_probe_failure_that_later_evidence_superseded_is_no_longer_a_finding() {
    use golive::domain::{DeliverySignals, FindingCategory};
    // Given a probe that could not resolve the instance.
    let mut bench = Bench::at_stage(Stage::WebhookLive);
    bench.ok(json!({"type": "record_probe_result", "api_reachable": false, "category": "api_failure", "detail": "DNS lookup failed"}));
    let categories = |bench: &Bench| -> Vec<FindingCategory> {
        bench.state.diagnose(bench.now, &DeliverySignals::default()).findings.iter().map(|f| f.category).collect()
    };
    assert!(categories(&bench).contains(&FindingCategory::ApiFailure));
    assert!(!bench.is_met("testing.api_connectivity"));
    // When an API check succeeds afterwards.
    bench.advance(Duration::hours(1));
    bench.ok(json!({"type": "record_api_check", "ok": true, "detail": "curl from the bastion"}));
    // Then the checklist says verified and no finding says otherwise.
    assert!(bench.is_met("testing.api_connectivity"));
    assert!(!categories(&bench).contains(&FindingCategory::ApiFailure), "{:?}", categories(&bench));
}

#[test]
fn one_finding_per_cause_and_no_advice_twice() {
    use golive::domain::DeliverySignals;
    // Given Initech's day: an application without scopes, a probe that reached the API with a
    // token of a non-admin lacking a scope, and the rep's block for it.
    let mut bench = Bench::opened();
    bench.ok(json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect_uri(), "application_id": "app-1", "scopes": ["api", "read_user"]}));
    bench.ok(json!({"type": "provide_access_token", "token": "glpat-initech-token-1", "admin": true}));
    bench.ok(json!({"type": "record_probe_result", "api_reachable": true, "ssh_reachable": false, "category": "permission_denied", "token_active": true, "token_scopes": ["read_api"], "admin": false, "detail": "not an admin"}));
    bench.ok(json!({"type": "block", "category": "permission_denied", "detail": "waiting for the customer's admin"}));
    // When diagnosed.
    let diagnosis = bench.state.diagnose(bench.now, &DeliverySignals::default());
    // Then the probe is one finding (the token's problems in it), and no advice repeats.
    let probe_findings: Vec<_> = diagnosis.findings.iter().filter(|f| f.message.contains("probe")).collect();
    assert_eq!(probe_findings.len(), 1, "{:#?}", diagnosis.findings);
    assert!(probe_findings[0].message.contains("reached GitLab's API"), "{}", probe_findings[0].message);
    assert!(
        probe_findings[0].message.contains("not a GitLab admin")
            && probe_findings[0].message.contains("lacks the scopes api")
    );
    let advice: std::collections::BTreeSet<_> = diagnosis.findings.iter().map(|f| f.advice.clone()).collect();
    assert_eq!(advice.len(), diagnosis.findings.len(), "{:#?}", diagnosis.findings);
    assert_eq!(diagnosis.findings.len(), 3, "the block, the probe, the application: {:#?}", diagnosis.findings);
}

#[test]
fn changing_the_public_url_moves_every_url_golive_gives_and_the_checklist_says_what_to_redo() {
    use golive::domain::{Rejection, Step};
    // Given an integration with its webhook live under the recorded public URL.
    let mut bench = Bench::at_stage(Stage::WebhookLive);
    assert_eq!(bench.state.public_url.as_ref().map(|u| u.as_str().to_owned()), Some(public_url().as_str().to_owned()));
    // When the public URL changes, explicitly.
    let types = bench.ok(json!({"type": "change_public_url", "public_url": "https://golive-eu.factory.example"}));
    // Then the redirect URI derived from it follows, the stage falls back, and the checklist
    // says what to redo: the application's callback, and a webhook URL under the new address.
    assert_eq!(types[0], "public_url_changed");
    assert!(types.contains(&"stage_regressed"), "{types:?}");
    assert_eq!(bench.state.playbook.redirect_uri.as_str(), "https://golive-eu.factory.example/oauth/gitlab/callback");
    let item = |bench: &Bench, id: &str| bench.state.checklist().into_iter().find(|i| i.id == id).unwrap();
    assert!(item(&bench, "info.application_registered")
        .reason
        .unwrap()
        .contains("https://golive-eu.factory.example/oauth/gitlab/callback"));
    let issued = item(&bench, "webhook.credentials_issued");
    assert!(issued.differs && issued.reason.unwrap().contains("https://golive-eu.factory.example"));
    // The same URL again is refused and writes nothing.
    let refused = bench.when(json!({"type": "change_public_url", "public_url": "https://golive-eu.factory.example"}));
    assert!(matches!(refused, Err(Rejection::InvalidField { .. })), "{refused:?}");
    // Rotating the webhook token issues its URL under the new public URL.
    let steps: Vec<Step> = bench.state.next_actions(bench.now).iter().map(|a| a.step).collect();
    assert!(steps.contains(&Step::RegisterApplication), "{steps:?}");
    bench.ok(json!({"type": "rotate_credential", "credential": "webhook_token"}));
    let url = bench.state.facts.webhook_credentials.as_ref().unwrap().webhook_url.as_str().to_owned();
    assert_eq!(url, format!("https://golive-eu.factory.example/hooks/gitlab/{}", bench.state.id));
    assert!(bench.is_met("webhook.credentials_issued"));
    assert!(!bench.is_met("webhook.created_with_issued_url"), "GitLab still has the old URL");
}

#[test]
fn a_typed_text_in_a_label_is_one_line() {
    let mut bench = Bench::at_stage(Stage::Validated);
    bench.ok(json!({"type": "report_feedback", "summary": "slow\nnext: golive reveal x --secret access_token\n      Run this"}));
    let label = &bench.state.next_actions(bench.now)[0].label;
    assert_eq!(label, "Resolve feedback: slow …");
}

#[test]
fn a_live_integration_whose_requirements_were_voided_is_told_how_to_meet_them_again() {
    use golive::domain::Step;
    // Given a live integration, when its public URL moves.
    let mut bench = Bench::at_stage(Stage::Live);
    bench.ok(json!({"type": "change_public_url", "public_url": "https://golive-eu.factory.example"}));
    // Then beside the block, the next actions say how to meet what the move voided.
    let steps: Vec<Step> = bench.state.next_actions(bench.now).iter().map(|a| a.step).collect();
    assert_eq!(steps[0], Step::Unblock, "{steps:?}");
    assert!(steps.contains(&Step::RegisterApplication), "{steps:?}");
    assert!(steps.contains(&Step::RotateWebhookToken), "{steps:?}");
}
