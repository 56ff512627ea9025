//! Given/when/then tests of the customer intake's rules in the pure domain: a link is issued
//! with a digest and an expiry, redeemed once with everything the customer sends in one append,
//! and refused when unknown, expired or used.

use chrono::Duration;
use golive::domain::{
    ApplicationRegistration, Command, Event, HttpUrl, IntakeRefusal, IntakeSubmission, Rejection, Scope, SecretKind,
    ShortText, Stage, TokenDigest, INTAKE_LINK_MAX_HOURS,
};
use golive::secrets::token_digest;
use serde_json::json;

use crate::support::*;

fn issue(bench: &Bench, secret: &str, hours: i64) -> Command {
    Command::IssueIntakeLink {
        link_id: uuid::Uuid::new_v4(),
        token_digest: token_digest(secret),
        expires_at: bench.now + Duration::hours(hours),
    }
}

fn apply(bench: &mut Bench, events: Vec<Event>) -> Vec<&'static str> {
    let names = events.iter().map(Event::type_name).collect();
    for event in events {
        bench.state.apply(&event, bench.now);
    }
    names
}

fn submission(bench: &mut Bench, secret: &str, scopes: &[&str]) -> Command {
    let registration = ApplicationRegistration {
        name: ShortText::parse("Factory Integration").unwrap(),
        redirect_uri: HttpUrl::parse(redirect_uri()).unwrap(),
        application_id: ShortText::parse("app-from-customer").unwrap(),
        scopes: scopes.iter().map(|s| Scope::parse(*s).unwrap()).collect(),
    };
    let request = golive::domain::parse_request(
        json!({"type": "provide_application_secret", "secret": "customer-app-secret"}),
        golive::domain::Origin::Public,
    )
    .unwrap();
    let Command::ProvideApplicationSecret { secret: application_secret } = bench.prepare(request) else {
        unreachable!()
    };
    let request = golive::domain::parse_request(
        json!({"type": "provide_access_token", "token": "glpat-customer", "admin": true}),
        golive::domain::Origin::Public,
    )
    .unwrap();
    let Command::ProvideAccessToken { token: access_token, .. } = bench.prepare(request) else { unreachable!() };
    Command::RedeemIntake(Box::new(IntakeSubmission {
        presented: TokenDigest(token_digest(secret).0),
        application: registration,
        application_secret,
        access_token,
        admin: true,
        shown_instance: None,
    }))
}

const ALL_SCOPES: [&str; 6] = ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"];

#[test]
fn given_an_issued_link_when_the_customer_submits_then_everything_is_recorded_in_one_append() {
    let mut bench = Bench::opened();
    let command = issue(&bench, "link-secret", 72);
    let events = bench.decide_command(&command).unwrap();
    assert_eq!(apply(&mut bench, events), ["intake_link_issued"]);

    let command = submission(&mut bench, "link-secret", &ALL_SCOPES);
    let events = bench.decide_command(&command).unwrap();
    assert_eq!(
        apply(&mut bench, events),
        ["application_registered", "application_secret_provided", "access_token_provided", "intake_redeemed"]
    );
    assert!(bench.is_met("info.application_registered"));
    assert!(bench.is_met("info.application_secret_provided"));
    assert!(bench.is_met("info.access_token_provided"));
    assert_eq!(bench.state.intake_links.len(), 1);
    assert_eq!(bench.state.intake_links[0].redeemed_at, Some(bench.now));
}

#[test]
fn given_a_used_link_when_submitted_again_then_it_is_refused_and_nothing_is_written() {
    let mut bench = Bench::opened();
    let events = bench.decide_command(&issue(&bench, "once", 72)).unwrap();
    apply(&mut bench, events);
    let command = submission(&mut bench, "once", &ALL_SCOPES);
    let events = bench.decide_command(&command).unwrap();
    apply(&mut bench, events);
    let again = submission(&mut bench, "once", &ALL_SCOPES);
    assert_eq!(bench.decide_command(&again), Err(Rejection::Intake(IntakeRefusal::AlreadyUsed)));
}

#[test]
fn given_a_link_when_it_has_expired_or_the_secret_is_wrong_then_it_is_refused() {
    let mut bench = Bench::opened();
    let events = bench.decide_command(&issue(&bench, "short-lived", 1)).unwrap();
    apply(&mut bench, events);
    let wrong = submission(&mut bench, "not-the-secret", &ALL_SCOPES);
    assert_eq!(bench.decide_command(&wrong), Err(Rejection::Intake(IntakeRefusal::Unknown)));
    bench.advance(Duration::minutes(59));
    let in_time = submission(&mut bench, "short-lived", &ALL_SCOPES);
    assert!(bench.decide_command(&in_time).is_ok(), "still open a minute before expiry");
    bench.advance(Duration::minutes(1));
    let late = submission(&mut bench, "short-lived", &ALL_SCOPES);
    assert_eq!(bench.decide_command(&late), Err(Rejection::Intake(IntakeRefusal::Expired)));
}

#[test]
fn given_no_link_when_a_customer_submits_then_it_is_refused() {
    let mut bench = Bench::opened();
    let command = submission(&mut bench, "anything", &ALL_SCOPES);
    assert_eq!(bench.decide_command(&command), Err(Rejection::Intake(IntakeRefusal::Unknown)));
}

#[test]
fn links_must_expire_in_the_future_and_within_the_limit() {
    let bench = Bench::opened();
    for hours in [0, -1, i64::from(INTAKE_LINK_MAX_HOURS) + 1] {
        let outcome = bench.decide_command(&issue(&bench, "s", hours));
        assert!(
            matches!(outcome, Err(Rejection::InvalidField { ref field, .. }) if field == "expires_in_hours"),
            "{hours}: {outcome:?}"
        );
    }
    assert!(bench.decide_command(&issue(&bench, "s", i64::from(INTAKE_LINK_MAX_HOURS))).is_ok());
}

#[test]
fn a_submission_without_scopes_is_refused_and_leaves_the_link_open() {
    let mut bench = Bench::opened();
    let events = bench.decide_command(&issue(&bench, "k", 24)).unwrap();
    apply(&mut bench, events);
    let empty = submission(&mut bench, "k", &[]);
    assert!(
        matches!(bench.decide_command(&empty), Err(Rejection::InvalidField { ref field, .. }) if field == "scopes")
    );
    let fine = submission(&mut bench, "k", &ALL_SCOPES);
    assert!(bench.decide_command(&fine).is_ok());
}

#[test]
fn a_cancelled_integration_takes_no_intake() {
    let mut bench = Bench::opened();
    let events = bench.decide_command(&issue(&bench, "k", 24)).unwrap();
    apply(&mut bench, events);
    bench.ok(json!({"type": "cancel", "reason": "customer left"}));
    let command = submission(&mut bench, "k", &ALL_SCOPES);
    assert_eq!(bench.decide_command(&command), Err(Rejection::Cancelled));
    assert_eq!(bench.state.stage, Stage::Cancelled);
}

#[test]
fn sealed_secrets_of_a_submission_are_the_customers_and_of_the_right_kind() {
    let mut bench = Bench::opened();
    let events = bench.decide_command(&issue(&bench, "k", 24)).unwrap();
    apply(&mut bench, events);
    let command = submission(&mut bench, "k", &ALL_SCOPES);
    let events = bench.decide_command(&command).unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("customer-app-secret") && !text.contains("glpat-customer"), "no plaintext in events");
    assert!(bench.state.facts.application_secret.is_none(), "nothing before the submission");
    apply(&mut bench, events);
    assert_eq!(bench.state.facts.application_secret.as_ref().unwrap().secret.kind, SecretKind::ApplicationSecret);
    assert_eq!(bench.state.facts.access_token.as_ref().unwrap().token.kind, SecretKind::AccessToken);
}

#[test]
fn given_the_instance_changed_after_the_page_was_shown_when_the_customer_submits_then_nothing_is_recorded() {
    let mut bench = Bench::opened();
    let events = bench.decide_command(&issue(&bench, "shown", 72)).unwrap();
    apply(&mut bench, events);
    let shown = golive::domain::CredentialBinding::of(&bench.state.facts.instance);
    // A rep points the integration elsewhere while the customer's page is open.
    bench.ok(json!({"type": "set_instance_url", "gitlab_url": "https://attacker.example"}));
    let Command::RedeemIntake(mut submitted) = submission(&mut bench, "shown", &ALL_SCOPES) else { unreachable!() };
    submitted.shown_instance = Some(shown);
    let command = Command::RedeemIntake(submitted.clone());
    assert_eq!(bench.decide_command(&command), Err(Rejection::Intake(IntakeRefusal::InstanceChanged)));
    // Shown the current instance, the same link works, and binds the secrets there.
    submitted.shown_instance = Some(golive::domain::CredentialBinding::of(&bench.state.facts.instance));
    let events = bench.decide_command(&Command::RedeemIntake(submitted)).unwrap();
    apply(&mut bench, events);
    assert_eq!(bench.state.usable_access_token().unwrap().bound_to.origin, "https://attacker.example");
}

#[test]
fn at_most_three_links_are_open_at_once() {
    // Given three open links.
    let mut bench = Bench::opened();
    for secret in ["first-secret", "second-secret", "third-secret"] {
        let command = issue(&bench, secret, 24);
        let events = bench.decide_command(&command).unwrap();
        apply(&mut bench, events);
    }
    // When a fourth is asked for, it is refused, naming the limit.
    let refused = bench.decide_command(&issue(&bench, "fourth-secret", 24)).unwrap_err();
    assert!(refused.to_string().contains(&format!("at most {}", golive::domain::INTAKE_LINKS_OPEN_MAX)), "{refused}");
    // Then once they expire, a new one is issued.
    bench.advance(Duration::hours(25));
    assert!(bench.decide_command(&issue(&bench, "fourth-secret", 24)).is_ok());
}
