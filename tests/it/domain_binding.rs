//! Given/when/then: credentials stay bound to the instance origin and CA they were given for.

use golive::domain::{CredentialBinding, CredentialRotated, Event, InstanceUrlSet, Stage};
use serde_json::json;

use crate::support::*;

const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdummyca0001\n-----END CERTIFICATE-----\n";
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdummyca0002\n-----END CERTIFICATE-----\n";

fn regressed_requirements(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .find_map(|e| match e {
            Event::StageRegressed { cause, .. } => Some(cause.requirements.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no stage_regressed in {events:?}"))
}

fn bound_to_of(events: &[Event]) -> Vec<Option<CredentialBinding>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ApplicationSecretProvided { bound_to, .. } | Event::AccessTokenProvided { bound_to, .. } => {
                Some(bound_to.clone())
            }
            Event::CredentialRotated(
                CredentialRotated::AccessToken { bound_to, .. } | CredentialRotated::ApplicationSecret { bound_to, .. },
            ) => Some(bound_to.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_provided_credential_records_the_origin_and_ca_it_was_given_for() {
    let mut bench = Bench::opened();
    let events = bench.when(json!({"type": "provide_access_token", "token": "glpat-bound-1", "admin": true})).unwrap();
    let expected = CredentialBinding { origin: GITLAB_URL.to_owned(), ca_fingerprint: None };
    assert_eq!(bound_to_of(&events), [Some(expected)]);
    bench.ok(json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ca_certificate_pem": TEST_CA}));
    let events = bench.when(json!({"type": "provide_application_secret", "secret": "gloas-bound-1"})).unwrap();
    let binding = bound_to_of(&events).remove(0).unwrap();
    assert_eq!(binding.origin, GITLAB_URL);
    assert_eq!(binding.ca_fingerprint.as_deref().map(str::len), Some(64), "a SHA-256 fingerprint of the CA");
}

/// Every change of origin (host, scheme, port) or CA voids both credentials, with one regression
/// naming them; changes within the origin (path, SSH port) keep them.
#[test]
fn changing_the_instance_origin_or_ca_makes_both_credentials_unusable() {
    let voiding = [
        ("another host", json!({"type": "set_instance_url", "gitlab_url": "https://attacker.example"})),
        ("another port", json!({"type": "set_instance_url", "gitlab_url": "https://gitlab.customer.example:8443"})),
        ("another CA", json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ca_certificate_pem": TEST_CA})),
    ];
    for (why, change) in voiding {
        let mut bench = Bench::at_stage(Stage::InfoGathered);
        let events = bench.when(change).unwrap();
        let mut voided = regressed_requirements(&events);
        voided.sort();
        assert!(
            voided.starts_with(&["info.access_token_admin".to_owned(), "info.access_token_provided".to_owned()])
                && voided.contains(&"info.application_secret_provided".to_owned()),
            "{why}: {voided:?}"
        );
        assert_eq!(bench.state.stage, Stage::Created, "{why}");
        assert!(!bench.is_met("info.access_token_provided"), "{why}");
        assert!(!bench.is_met("info.application_secret_provided"), "{why}");
        assert!(bench.state.usable_access_token().is_none(), "{why}: the probe has no token to send");
        // The sealed values stay on record (history, audit), they just cannot be used here.
        assert!(bench.state.facts.access_token.is_some(), "{why}");
        let label = bench.state.checklist().into_iter().find(|i| i.id == "info.access_token_provided").unwrap().label;
        assert!(label.contains("was given for https://gitlab.customer.example"), "{why}: {label}");
    }
    let keeping = [
        ("another path", json!({"type": "set_instance_url", "gitlab_url": "https://gitlab.customer.example/gitlab"})),
        ("another SSH port", json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ssh_port": 2222})),
        (
            "default port spelled out",
            json!({"type": "set_instance_url", "gitlab_url": "https://GITLAB.customer.example:443"}),
        ),
    ];
    for (why, change) in keeping {
        let mut bench = Bench::at_stage(Stage::InfoGathered);
        let types = bench.ok(change);
        assert_eq!(types, ["instance_url_set"], "{why}");
        assert!(bench.state.usable_access_token().is_some(), "{why}");
        assert!(bench.state.usable_application_secret().is_some(), "{why}");
    }
}

#[test]
fn credentials_provided_again_for_the_new_instance_are_usable_and_the_stage_returns() {
    let mut bench = Bench::at_stage(Stage::InfoGathered);
    bench.ok(json!({"type": "set_instance_url", "gitlab_url": "https://gitlab2.customer.example", "ca_certificate_pem": OTHER_CA}));
    bench.ok(json!({"type": "provide_application_secret", "secret": "gloas-for-gitlab2"}));
    let events =
        bench.when(json!({"type": "provide_access_token", "token": "glpat-for-gitlab2", "admin": true})).unwrap();
    assert_eq!(entered(&events), [Stage::InfoGathered]);
    let token = bench.state.usable_access_token().unwrap();
    assert_eq!(token.bound_to.origin, "https://gitlab2.customer.example");
    // And going back to the first instance voids the new ones in turn.
    bench.ok(json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL}));
    assert!(bench.state.usable_access_token().is_none());
}

/// Moving away and back does not revive a credential: once the instance left its origin, it must
/// be provided again (a rep cannot park the integration elsewhere and return unnoticed).
#[test]
fn a_credential_voided_by_a_move_stays_void_when_the_instance_moves_back() {
    for (away, back) in [
        (
            json!({"type": "set_instance_url", "gitlab_url": "https://attacker.example"}),
            json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL}),
        ),
        (
            json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ca_certificate_pem": TEST_CA}),
            json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL}),
        ),
    ] {
        let mut bench = Bench::at_stage(Stage::InfoGathered);
        bench.ok(away);
        bench.ok(back.clone());
        assert!(bench.state.usable_access_token().is_none(), "{back}");
        assert!(bench.state.usable_application_secret().is_none(), "{back}");
        assert!(!bench.is_met("info.access_token_provided"));
        bench.ok(json!({"type": "provide_access_token", "token": "glpat-again", "admin": true}));
        bench.ok(json!({"type": "provide_application_secret", "secret": "gloas-again"}));
        assert_eq!(bench.state.stage, Stage::InfoGathered);
    }
}

#[test]
fn a_rotated_replacement_is_bound_to_the_instance_of_the_moment() {
    let mut bench = Bench::at_stage(Stage::InfoGathered);
    let events = bench
        .when(json!({"type": "rotate_credential", "credential": "access_token", "secret": "glpat-rotated-2", "admin": true}))
        .unwrap();
    assert_eq!(bound_to_of(&events), [Some(CredentialBinding { origin: GITLAB_URL.into(), ca_fingerprint: None })]);
    let events = bench.when(json!({"type": "rotate_credential", "credential": "access_token"})).unwrap();
    assert_eq!(bound_to_of(&events), [None], "no replacement, nothing to bind");
}

#[test]
fn once_live_a_change_of_origin_raises_a_block_instead_of_regressing() {
    let mut bench = Bench::at_stage(Stage::Live);
    let events = bench.when(json!({"type": "set_instance_url", "gitlab_url": "https://attacker.example"})).unwrap();
    assert!(events.iter().all(|e| !matches!(e, Event::StageRegressed { .. })));
    let cause = events
        .iter()
        .find_map(|e| match e {
            Event::IntegrationBlocked { cause: Some(cause), .. } => Some(cause.clone()),
            _ => None,
        })
        .expect("a block with a cause");
    assert!(cause.requirements.contains(&"info.access_token_provided".to_owned()), "{cause:?}");
    assert_eq!(bench.state.stage, Stage::Live);
    assert!(bench.state.usable_access_token().is_none());
}

/// Logs written before bindings existed carry no `bound_to`: replay binds each credential to the
/// instance in force when it was recorded, so an old log means what it meant.
#[test]
fn events_without_a_binding_bind_to_the_instance_in_force_when_they_were_recorded() {
    let mut bench = Bench::opened();
    let old_token: Event = serde_json::from_value(json!({
        "type": "access_token_provided",
        "data": {"token": {"kind": "access_token", "sealed": "AAAA", "fingerprint": "fp"}, "admin": true}
    }))
    .expect("a v1 event decodes");
    let Event::AccessTokenProvided { bound_to, .. } = &old_token else { unreachable!() };
    assert!(bound_to.is_none());
    bench.state.apply(&old_token, bench.now);
    assert_eq!(bench.state.usable_access_token().unwrap().bound_to.origin, GITLAB_URL);
    let moved = Event::InstanceUrlSet(InstanceUrlSet {
        gitlab_url: golive::domain::HttpUrl::parse("https://gitlab.moved.example").unwrap(),
        ca_certificate_pem: None,
        ssh_port: None,
    });
    bench.state.apply(&moved, bench.now);
    assert!(bench.state.usable_access_token().is_none());
    // And a binding round-trips through JSON unchanged, absent when `None` (old shape).
    let reencoded = serde_json::to_value(&old_token).unwrap();
    assert!(reencoded["data"].get("bound_to").is_none());
}
