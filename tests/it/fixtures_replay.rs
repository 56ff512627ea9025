//! Data-driven: every journey in `fixtures/onboardings/` replays to its `.expected.json`.
//!
//! Run with `GOLIVE_BLESS=1` to rewrite the expected files after a deliberate change, then
//! review the diff.

use std::path::Path;

use chrono::{TimeZone, Utc};
use golive::fixtures::{replay_in_memory, Fixture, FIXTURE_DIR};
use golive::ids::SequentialIds;
use golive::secrets::DataKey;
use serde_json::{json, Value};

use crate::support::*;

fn summary(replayed: &golive::fixtures::Replayed, now: chrono::DateTime<Utc>) -> Value {
    let types: Vec<&str> = replayed.events.iter().map(|(e, _, _)| e.type_name()).collect();
    summarize(&replayed.state, &types, now)
}

/// What a journey's expected file records about its final state.
pub fn summarize(state: &golive::domain::Integration, event_types: &[&str], now: chrono::DateTime<Utc>) -> Value {
    let checklist: serde_json::Map<String, Value> =
        state.checklist().into_iter().map(|item| (item.id, Value::Bool(item.met))).collect();
    json!({
        "stage": state.stage,
        "blocked": state.block.as_ref().map(|b| b.category),
        "version": state.version,
        "open_feedback": state.open_feedback().count(),
        "monitoring": state.is_monitoring(),
        "days_in_stage": state.days_in_stage(now),
        "events": event_types,
        "checklist": checklist,
        "next_steps": state.next_steps(now),
    })
}

/// The fixed "now" the expected files were written for.
pub fn fixture_now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

pub fn expected_summary(path: &Path) -> Value {
    let expected_path = path.with_extension("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap()
}

#[test]
fn every_fixture_replays_to_its_expected_state() {
    let now = fixture_now();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_DIR);
    let journeys = Fixture::load_dir(&dir).unwrap();
    assert!(journeys.len() >= 3, "at least three journeys");
    let bless = std::env::var_os("GOLIVE_BLESS").is_some();
    for (path, fixture) in journeys {
        let replayed = replay_in_memory(
            &fixture,
            now,
            &public_url(),
            default_playbook(),
            &SequentialIds::default(),
            &DataKey::from_bytes([1; 32]),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Folding the history from scratch gives the same state.
        let folded = golive::domain::Integration::replay(replayed.events.iter().map(|(e, at, _)| (e, *at))).unwrap();
        assert_eq!(folded, replayed.state, "{}: fold equals live state", fixture.name);
        let actual = summary(&replayed, now);
        let expected_path = path.with_extension("expected.json");
        if bless {
            std::fs::write(&expected_path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            continue;
        }
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!("{} is missing: run with GOLIVE_BLESS=1 and review it", expected_path.display())
        }))
        .unwrap();
        pretty_assertions::assert_eq!(actual, expected, "{}", fixture.name);
    }
}

#[test]
fn fixture_secrets_never_reach_an_event() {
    let now = Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_DIR);
    for (_, fixture) in Fixture::load_dir(&dir).unwrap() {
        let secrets: Vec<String> = fixture
            .steps
            .iter()
            .filter_map(|s| s.command.get("secret").or_else(|| s.command.get("token")))
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let replayed = replay_in_memory(
            &fixture,
            now,
            &public_url(),
            default_playbook(),
            &SequentialIds::default(),
            &DataKey::generate(),
        )
        .unwrap();
        let written = serde_json::to_string(&replayed.events.iter().map(|(e, _, _)| e).collect::<Vec<_>>()).unwrap();
        for secret in &secrets {
            assert!(!written.contains(secret.as_str()), "{}: a secret reached an event", fixture.name);
        }
    }
}

#[test]
fn relative_times_resolve_against_now() {
    use golive::fixtures::resolve_time;
    let now = Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap();
    assert_eq!(resolve_time("-12d 09:30", now), Some(Utc.with_ymd_and_hms(2026, 6, 3, 9, 30, 0).unwrap()));
    assert_eq!(resolve_time("+2d", now), Some(Utc.with_ymd_and_hms(2026, 6, 17, 12, 0, 0).unwrap()));
    assert_eq!(resolve_time("-5h", now), Some(Utc.with_ymd_and_hms(2026, 6, 15, 7, 0, 0).unwrap()));
    assert_eq!(resolve_time("now", now), Some(now));
    for bad in ["12d", "-d", "-3w", "-3d 25:00", ""] {
        assert_eq!(resolve_time(bad, now), None, "{bad}");
    }
}
