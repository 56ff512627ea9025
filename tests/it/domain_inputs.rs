//! Invalid input is refused with a message naming the field, and writes nothing.

use golive::domain::{parse_open_request, parse_request, Origin, Rejection};
use serde_json::{json, Value};

use crate::support::*;

fn field_of(outcome: Result<golive::domain::CommandRequest, Rejection>) -> String {
    match outcome {
        Err(Rejection::InvalidField { field, message }) => {
            assert!(!message.is_empty());
            field
        }
        other => panic!("expected an invalid field, got {other:?}"),
    }
}

#[test]
fn invalid_fields_are_named() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"type": "confirm_prerequisites", "gitlab_admin_access": "yes", "network_access": true, "factory_admin_account": true}),
            "gitlab_admin_access",
        ),
        (
            json!({"type": "confirm_prerequisites", "network_access": true, "factory_admin_account": true}),
            "gitlab_admin_access",
        ),
        (
            json!({"type": "confirm_prerequisites", "gitlab_admin_access": true, "network_access": true, "factory_admin_account": true, "extra": 1}),
            "extra",
        ),
        (
            json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": "https://x.example/cb", "application_id": "a", "scopes": ["API"]}),
            "scopes[0]",
        ),
        (
            json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": "https://x.example/cb", "application_id": "a", "scopes": ["api", "read-user"]}),
            "scopes[1]",
        ),
        (
            json!({"type": "register_application", "name": "", "redirect_uri": "https://x.example/cb", "application_id": "a", "scopes": []}),
            "name",
        ),
        (
            json!({"type": "register_application", "name": "F", "redirect_uri": "not a url", "application_id": "a", "scopes": []}),
            "redirect_uri",
        ),
        (
            json!({"type": "register_application", "name": "F", "redirect_uri": "https://x.example/cb", "application_id": "a", "scopes": vec!["api"; 65]}),
            "scopes",
        ),
        (json!({"type": "provide_application_secret", "secret": ""}), "secret"),
        (json!({"type": "provide_application_secret", "secret": "x".repeat(5000)}), "secret"),
        (json!({"type": "set_instance_url", "gitlab_url": "ftp://gitlab.example"}), "gitlab_url"),
        (json!({"type": "set_instance_url", "gitlab_url": "/relative"}), "gitlab_url"),
        (json!({"type": "set_instance_url", "gitlab_url": "https://gitlab.example", "ssh_port": 0}), "ssh_port"),
        (json!({"type": "set_instance_url", "gitlab_url": "https://gitlab.example", "ssh_port": 70000}), "ssh_port"),
        (
            json!({"type": "set_instance_url", "gitlab_url": "https://gitlab.example", "ca_certificate_pem": "hello"}),
            "ca_certificate_pem",
        ),
        (json!({"type": "provide_access_token", "token": "glpat-x"}), "admin"),
        (
            json!({"type": "establish_vpc_peering", "peering_id": "vpc-0a1b2c3d", "customer_vpc_id": "vpc-0123abcd", "factory_vpc_id": "vpc-0fedcba9", "route_tables_configured": true}),
            "peering_id",
        ),
        (
            json!({"type": "establish_vpc_peering", "peering_id": "pcx-0a1b2c3d", "customer_vpc_id": "vpc-0123abc", "factory_vpc_id": "vpc-0fedcba9", "route_tables_configured": true}),
            "customer_vpc_id",
        ),
        (
            json!({"type": "establish_vpc_peering", "peering_id": "pcx-0a1b2c3d", "customer_vpc_id": "vpc-0123abcd", "factory_vpc_id": "vpc-0FEDCBA9", "route_tables_configured": true}),
            "factory_vpc_id",
        ),
        (json!({"type": "evaluate_network_policy", "barriers": [""]}), "barriers[0]"),
        (json!({"type": "create_webhook", "url": "https://x.example/hook", "triggers": ["wiki_pages"]}), "triggers[0]"),
        (json!({"type": "record_manual_test", "scenario": "deployment_done", "passed": true, "note": "n"}), "scenario"),
        (json!({"type": "validate_response", "scenario": "code_pushed", "correct": true}), "evidence"),
        (json!({"type": "resolve_feedback", "feedback_id": "not-a-uuid", "resolution": "r"}), "feedback_id"),
        (json!({"type": "schedule_go_live", "date": "2026-13-01"}), "date"),
        (json!({"type": "schedule_go_live", "date": "01/03/2026"}), "date"),
        (json!({"type": "schedule_go_live", "date": "2026-02-29"}), "date"),
        (json!({"type": "assign_owner", "owner": "a\nb"}), "owner"),
        (json!({"type": "add_note", "text": "x".repeat(4001)}), "text"),
        (json!({"type": "block", "category": "network", "detail": "d"}), "category"),
        (json!({"type": "rotate_credential", "credential": "password"}), "credential"),
        (json!({"type": "rotate_credential", "credential": "webhook_token", "secret": "mine"}), "secret"),
        (json!({"type": "rotate_credential", "credential": "application_secret", "admin": true}), "admin"),
        (json!({"type": "cancel"}), "reason"),
        (json!({"type": "submit_information", "now": true}), "now"),
        (json!({"type": 7}), "type"),
        (json!({"gitlab_admin_access": true}), "type"),
    ];
    for (body, field) in cases {
        let shown = body.to_string();
        let shown = &shown[..shown.len().min(160)];
        assert_eq!(field_of(parse_request(body, Origin::Public)), field, "{shown}");
    }
}

#[test]
fn internal_inputs_are_checked_too() {
    let mismatch = delivery("Push Hook", "merge_request", json!({}));
    assert_eq!(field_of(parse_request(mismatch, Origin::Internal)), "object_kind");
    let missing_kind = {
        let mut d = delivery("Pipeline Hook", "pipeline", json!({}));
        d.as_object_mut().unwrap().remove("object_kind");
        d
    };
    assert_eq!(field_of(parse_request(missing_kind, Origin::Internal)), "object_kind");
    let bad_digest = delivery("Pipeline Hook", "pipeline", json!({"body_sha256": "abc"}));
    assert_eq!(field_of(parse_request(bad_digest, Origin::Internal)), "body_sha256");
    let bad_event = delivery("Snippet Hook", "snippet", json!({}));
    assert_eq!(field_of(parse_request(bad_event, Origin::Internal)), "event");
    let bad_time = delivery("Pipeline Hook", "pipeline", json!({"received_at": "yesterday"}));
    assert_eq!(field_of(parse_request(bad_time, Origin::Internal)), "received_at");
    let bad_probe = json!({"type": "record_probe_result", "api_reachable": true, "category": "dns"});
    assert_eq!(field_of(parse_request(bad_probe, Origin::Internal)), "category");
}

#[test]
fn unknown_types_and_internal_inputs_on_the_public_side_are_refused() {
    assert!(matches!(parse_request(json!({"type": "launch_rockets"}), Origin::Public), Err(Rejection::UnknownType(_))));
    assert!(
        matches!(parse_request(note_delivery(), Origin::Public), Err(Rejection::UnknownType(m)) if m.contains("internal"))
    );
    assert!(matches!(parse_request(json!([1, 2]), Origin::Public), Err(Rejection::Malformed(_))));
    assert!(matches!(parse_request(json!("go_live"), Origin::Public), Err(Rejection::Malformed(_))));
}

#[test]
fn open_requests_are_validated() {
    assert!(parse_open_request(json!({"customer": "A", "gitlab_url": "https://g.example"})).is_ok());
    let field = |body: Value| match parse_open_request(body) {
        Err(Rejection::InvalidField { field, .. }) => field,
        other => panic!("expected an invalid field, got {other:?}"),
    };
    assert_eq!(field(json!({"gitlab_url": "https://g.example"})), "customer");
    assert_eq!(field(json!({"customer": "A", "gitlab_url": "gitlab"})), "gitlab_url");
    assert_eq!(field(json!({"customer": "A", "gitlab_url": "https://g.example", "actor": "me"})), "actor");
    let mut playbook = serde_json::to_value(default_playbook()).unwrap();
    playbook["monitoring_days"] = json!(0);
    assert_eq!(
        field(json!({"customer": "A", "gitlab_url": "https://g.example", "playbook": playbook})),
        "playbook.monitoring_days"
    );
}

#[test]
fn a_refused_command_writes_nothing_and_changes_nothing() {
    let mut bench = Bench::at_stage(golive::domain::Stage::WebhookLive);
    let before = bench.state.clone();
    let history = bench.history.len();
    assert!(bench.when(json!({"type": "schedule_go_live", "date": "2020-01-01"})).is_err());
    assert!(bench.when(json!({"type": "go_live"})).is_err());
    assert_eq!(bench.state, before);
    assert_eq!(bench.history.len(), history);
}

#[test]
fn plaintext_secrets_never_print() {
    let request = parse_request(
        json!({"type": "provide_access_token", "token": "glpat-super-secret", "admin": true}),
        Origin::Public,
    )
    .unwrap();
    assert!(!format!("{request:?}").contains("super-secret"));
    let mut bench = Bench::opened();
    let command = bench.prepare(request);
    assert!(!format!("{command:?}").contains("super-secret"));
    let events = bench.decide_command(&command).unwrap();
    assert!(!serde_json::to_string(&events).unwrap().contains("super-secret"));
}
