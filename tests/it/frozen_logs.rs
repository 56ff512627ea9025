//! Logs written by earlier builds still open, verify and replay to the same states.
//!
//! `fixtures/logs/v1/` was written by the build of 2026-11-29 (before any event type changed):
//! every fixture journey plus one journey through the event types the fixtures do not reach
//! (intake, reveal, shred, manual tests, unblock, monitoring completed), loaded through the
//! engine at the fixtures' fixed "now". It holds the log twice: as JSON Lines (`log.jsonl`, what
//! `golive export` writes) and as the sled directory itself (`sled/`, with its default master
//! key: demo secrets only), and as a PostgreSQL dump (`postgres.sql`) made by that same build:
//! `golive migrate --from <the sled copy> --to postgres://…?options=-csearch_path%3Dgolive_frozen_v1`
//! then `pg_dump --schema=golive_frozen_v1 --inserts --no-owner --no-privileges --no-comments`
//! (the log, the stream heads and the wrapped data keys). `expected.json` keeps each integration's contract fields only —
//! stage, version, the ids of met checklist items, blocked, feedback, monitoring — so later
//! builds may add fields and labels, but never change what an old log means.
//!
//! `fixtures/logs/v2/` was written the same way by the build that gave events payloads of their
//! own (schema version 2: `credential_rotated` changed shape), with the rotations and the
//! longest texts the kitchen sink below adds; its `postgres.sql` names the schema
//! `golive_frozen_v2`.
//!
//! These files are never rewritten: a later format gets a `v3/` beside them. The generator below
//! runs only with `GOLIVE_FREEZE_LOGS=<empty directory>`, to write a new version's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use golive::domain::{Actor, IntegrationId, SecretKind};
use golive::engine::{Engine, EngineConfig, ExecuteRequest, ManualClock, OpenOptions};
use golive::fixtures::{load_into_engine, Fixture, FIXTURE_DIR};
use serde_json::{json, Value};

use crate::fixtures_replay::fixture_now;
use crate::support::*;

fn frozen_dir(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs").join(version)
}

/// The contract fields of a state, the only thing a frozen log promises to keep.
fn contract_fields(state: &golive::domain::Integration) -> Value {
    let met: Vec<String> = state.checklist().into_iter().filter(|item| item.met).map(|item| item.id).collect();
    let feedback: Vec<Value> =
        state.feedback.iter().map(|item| json!({"id": item.id, "open": item.resolution.is_none()})).collect();
    json!({
        "stage": state.stage,
        "version": state.version,
        "checklist_met": met,
        "blocked": state.block.as_ref().map(|b| b.category),
        "feedback": feedback,
        "monitoring": state.monitoring.as_ref().map(|m| json!({
            "started_at": m.started_at,
            "ends_at": m.ends_at,
            "completed_at": m.completed_at,
        })),
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn engine_on(dir: &Path) -> Engine {
    let options = OpenOptions {
        clock: Some(Arc::new(ManualClock::new(fixture_now()))),
        store: crate::store_conformance::reopen_options(),
        ..Default::default()
    };
    Engine::open_dir(dir, EngineConfig::new(public_url(), None), options).await.expect("the frozen log opens").0
}

async fn states_of(engine: &Engine) -> Value {
    let mut ids: Vec<IntegrationId> = Vec::new();
    for event in engine.export_page(0, 100_000).await.unwrap() {
        if event.event_type == "integration_opened" {
            ids.push(IntegrationId::parse(&event.integration_id.to_string()).unwrap());
        }
    }
    let mut out = serde_json::Map::new();
    for id in ids {
        out.insert(id.to_string(), contract_fields(&engine.state(id).await.unwrap()));
    }
    Value::Object(out)
}

/// Every frozen version, oldest first. A version, once here, stays forever.
const FROZEN_VERSIONS: [&str; 2] = ["v1", "v2"];

fn expected_of(version: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(frozen_dir(version).join("expected.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frozen_sled_directory_opens_verifies_and_replays_to_the_frozen_states() {
    for version in FROZEN_VERSIONS {
        eprintln!("frozen log {version}: sled directory");
        sled_directory_replays(version).await;
    }
}

async fn sled_directory_replays(version: &str) {
    let frozen = frozen_dir(version);
    let expected = expected_of(version);
    // sled writes on open; the committed copy stays untouched.
    let scratch = tempfile::tempdir().unwrap();
    copy_dir(&frozen.join("sled"), scratch.path());
    let engine = engine_on(scratch.path()).await;
    let report = engine.verify(None).await.unwrap();
    assert!(report.valid, "the frozen chain verifies: {report:?}");
    assert_eq!(report.head, expected["head"].as_str().unwrap(), "the head hash is the frozen one");
    pretty_assertions::assert_eq!(states_of(&engine).await, expected["states"]);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frozen_json_lines_import_verifies_and_replays_to_the_frozen_states() {
    for version in FROZEN_VERSIONS {
        eprintln!("frozen log {version}: JSON Lines import");
        json_lines_replay(version).await;
    }
}

async fn json_lines_replay(version: &str) {
    let frozen = frozen_dir(version);
    let expected = expected_of(version);
    let text = std::fs::read_to_string(frozen.join("log.jsonl")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_on(dir.path()).await;
    let report = engine.import_lines(text.lines().map(|l| Ok(l.to_owned())), |_| {}).await.unwrap();
    assert_eq!(report.events, expected["events"].as_u64().unwrap());
    let verified = engine.verify(None).await.unwrap();
    assert!(verified.valid);
    assert_eq!(verified.head, expected["head"].as_str().unwrap());
    pretty_assertions::assert_eq!(states_of(&engine).await, expected["states"]);
    engine.close().await.unwrap();
}

/// Loads a frozen `pg_dump` into a schema of its own and answers the URL that works in it.
/// The dump names its schema `golive_frozen_<version>`; each run renames it to a fresh one, so
/// runs never collide. Lines for psql alone (`\restrict` in newer pg_dump) are left out: the
/// rest is plain SQL with INSERTs (`pg_dump --inserts`), which any client can run.
async fn restore_dump(base: &str, version: &str) -> (String, String) {
    let dump = std::fs::read_to_string(frozen_dir(version).join("postgres.sql")).unwrap();
    let frozen_schema = format!("golive_frozen_{version}");
    assert!(dump.contains(&format!("CREATE SCHEMA {frozen_schema};")), "the dump holds its own schema");
    let schema = format!("golive_t_{}", uuid::Uuid::new_v4().simple());
    let sql: String = dump
        .lines()
        .filter(|line| !line.starts_with('\\'))
        .map(|line| line.replace(&frozen_schema, &schema) + "\n")
        .collect();
    crate::pg::connect(base).await.batch_execute(&sql).await.expect("the frozen dump loads");
    (schema.clone(), crate::pg::in_schema(base, &schema))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frozen_postgres_dump_restores_verifies_and_replays_to_the_frozen_states() {
    let Some(base) = crate::pg::available("frozen_logs::every_frozen_postgres_dump").await else { return };
    for version in FROZEN_VERSIONS {
        eprintln!("frozen log {version}: PostgreSQL dump");
        postgres_dump_replays(&base, version).await;
    }
}

async fn postgres_dump_replays(base: &str, version: &str) {
    let frozen = frozen_dir(version);
    let expected = expected_of(version);
    let (schema, url) = restore_dump(base, version).await;
    let scratch = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        clock: Some(Arc::new(ManualClock::new(fixture_now()))),
        // The dump was migrated from the frozen sled directory, so its data keys are wrapped by
        // that directory's (demo) master key.
        master_key_file: Some(frozen.join("sled").join("master.key")),
        ..Default::default()
    };
    let location = golive::engine::StoreLocation::Postgres { url, data_dir: scratch.path().to_owned() };
    let (engine, _) = Engine::open_location(&location, EngineConfig::new(public_url(), None), options)
        .await
        .expect("the restored dump opens");
    let report = engine.verify(None).await.unwrap();
    assert!(report.valid, "the frozen chain verifies: {report:?}");
    assert_eq!(report.head, expected["head"].as_str().unwrap(), "the head hash is the frozen one");
    assert_eq!(report.events_checked, expected["events"].as_u64().unwrap());
    pretty_assertions::assert_eq!(states_of(&engine).await, expected["states"]);
    // The data keys came along: secrets recorded by the frozen build still open (except where
    // the frozen journey shredded them, by design).
    let admin = Actor::parse("frozen-log-check").unwrap();
    let mut opened = 0;
    for event in engine.export_page(0, 100_000).await.unwrap() {
        if event.event_type != "access_token_provided" {
            continue;
        }
        let id = IntegrationId::parse(&event.integration_id.to_string()).unwrap();
        match engine.reveal(id, SecretKind::AccessToken, &admin).await {
            Ok(_) => opened += 1,
            Err(golive::engine::EngineError::Secrets(golive::secrets::SecretsError::Shredded(_))) => {}
            Err(other) => panic!("a frozen secret of {id} does not open: {other}"),
        }
    }
    assert!(opened > 0, "no frozen access token was tried");
    engine.close().await.unwrap();
    crate::pg::drop_schema(base, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frozen_log_covers_every_event_type_of_its_version() {
    let types = [
        "integration_opened",
        "prerequisites_confirmed",
        "application_registered",
        "application_secret_provided",
        "instance_url_set",
        "access_token_provided",
        "information_submitted",
        "network_policy_evaluated",
        "vpc_peering_established",
        "vpn_established",
        "firewall_configured",
        "webhook_credentials_issued",
        "webhook_created",
        "webhook_delivery_recorded",
        "api_check_recorded",
        "probe_result_recorded",
        "manual_test_recorded",
        "response_validated",
        "feedback_reported",
        "feedback_resolved",
        "go_live_scheduled",
        "stage_entered",
        "stage_regressed",
        "monitoring_started",
        "monitoring_completed",
        "owner_assigned",
        "note_added",
        "integration_blocked",
        "integration_unblocked",
        "credential_rotated",
        "integration_cancelled",
        "secret_revealed",
        "secrets_shredded",
        "intake_link_issued",
        "intake_redeemed",
    ];
    // Schema version 2 changed the shape of credential_rotated and added no type.
    let types_of = |version: &str| -> Vec<&str> {
        match version {
            "v1" | "v2" => types.to_vec(),
            other => panic!("{other}: list its event types here"),
        }
    };
    for version in FROZEN_VERSIONS {
        let text = std::fs::read_to_string(frozen_dir(version).join("log.jsonl")).unwrap();
        let seen: std::collections::BTreeSet<String> = text
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["type"].as_str().unwrap().to_owned())
            .collect();
        let missing: Vec<&str> = types_of(version).into_iter().filter(|t| !seen.contains(*t)).collect();
        assert!(missing.is_empty(), "the frozen {version} log lacks {missing:?}");
    }
}

/// The v2 set was written after `credential_rotated` changed shape: it holds a rotation of every
/// credential in the v2 shape, and values at every text limit of the day, so a later build that
/// tightens a limit fails here rather than on a customer's log.
#[test]
fn the_v2_log_holds_every_rotation_shape_and_values_at_their_limits() {
    let text = std::fs::read_to_string(frozen_dir("v2").join("log.jsonl")).unwrap();
    let events: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let rotations: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| e["type"] == "credential_rotated")
        .map(|e| {
            assert_eq!(e["schema_version"], 2);
            e["data"]["credential"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(rotations.len(), 3, "every credential rotated: {rotations:?}");
    let longest = |field: &str| {
        events.iter().filter_map(|e| e["data"][field].as_str()).map(|t| t.chars().count()).max().unwrap_or(0)
    };
    assert_eq!(longest("owner"), golive::domain::SHORT_TEXT_MAX_CHARS);
    assert_eq!(longest("text"), golive::domain::LONG_TEXT_MAX_CHARS);
}

/// Writes a new frozen version into the empty directory named by `GOLIVE_FREEZE_LOGS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_the_current_build_s_log_when_asked() {
    let Some(out) = std::env::var_os("GOLIVE_FREEZE_LOGS") else {
        return;
    };
    let out = PathBuf::from(out);
    let sled_dir = out.join("sled");
    std::fs::create_dir_all(&sled_dir).unwrap();
    let clock = Arc::new(ManualClock::new(fixture_now()));
    let options = OpenOptions {
        clock: Some(clock.clone()),
        store: crate::store_conformance::reopen_options(),
        ..Default::default()
    };
    let engine = Engine::open_dir(&sled_dir, EngineConfig::new(public_url(), None), options).await.unwrap().0;
    let journeys = Fixture::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_DIR)).unwrap();
    for (_, fixture) in &journeys {
        load_into_engine(&engine, fixture, fixture_now()).await.unwrap();
    }
    kitchen_sink(&engine, &clock).await;

    let events = engine.export_page(0, 100_000).await.unwrap();
    let mut jsonl = String::new();
    for event in &events {
        jsonl.push_str(&serde_json::to_string(event).unwrap());
        jsonl.push('\n');
    }
    std::fs::write(out.join("log.jsonl"), jsonl).unwrap();
    let report = engine.verify(None).await.unwrap();
    let expected = json!({
        "written_by": format!("golive {} on 2026-11-29", env!("CARGO_PKG_VERSION")),
        "events": events.len(),
        "head": report.head,
        "states": states_of(&engine).await,
    });
    std::fs::write(out.join("expected.json"), serde_json::to_string_pretty(&expected).unwrap() + "\n").unwrap();
    engine.close().await.unwrap();
}

/// One journey through the event types the fixtures do not reach.
async fn kitchen_sink(engine: &Engine, clock: &ManualClock) {
    let rep = Actor::parse("dana.reyes").unwrap();
    let admin = Actor::parse("security-admin").unwrap();
    clock.set(fixture_now() - Duration::days(40));
    let opened = engine
        .open_integration(json!({"customer": "Soylent", "gitlab_url": GITLAB_URL, "owner": "lee.tanaka"}), &rep, None)
        .await
        .unwrap();
    let id = opened.state.id;
    let run = |body: Value| {
        let rep = rep.clone();
        async move { engine.execute(ExecuteRequest::new(id, body, rep)).await.unwrap() }
    };
    run(json!({"type": "assign_owner", "owner": "dana.reyes"})).await;
    // The longest texts of the day: a tightened limit must fail the frozen-log tests.
    run(json!({"type": "assign_owner", "owner": "o".repeat(golive::domain::SHORT_TEXT_MAX_CHARS)})).await;
    run(json!({"type": "add_note", "text": "n".repeat(golive::domain::LONG_TEXT_MAX_CHARS)})).await;
    run(json!({"type": "assign_owner", "owner": "dana.reyes"})).await;
    let link = engine.issue_intake_link(id, 72, &rep).await.unwrap();
    let secret = link.path.rsplit('/').next().unwrap().to_owned();
    let state = engine.state(id).await.unwrap();
    let form = golive::engine::IntakeForm {
        application_id: "app-4711".into(),
        application_secret: "gloas-frozen-application-secret-0001".into(),
        access_token: "glpat-frozen-access-token-000000001".into(),
        admin: true,
        scopes: state.playbook.required_scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        ..Default::default()
    };
    engine.redeem_intake(id, &secret, &form).await.unwrap();
    run(json!({"type": "confirm_prerequisites", "gitlab_admin_access": true, "network_access": true, "factory_admin_account": true})).await;
    run(json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ssh_port": 22})).await;
    run(json!({"type": "submit_information"})).await;
    run(json!({"type": "block", "category": "api_failure", "detail": "VPN change window next week"})).await;
    run(json!({"type": "unblock", "resolution": "The change window was moved forward"})).await;
    run(json!({"type": "record_api_check", "ok": true, "detail": "curl from the bastion"})).await;
    run(json!({"type": "record_manual_test", "scenario": "pipeline_ran", "passed": true, "note": "ran on the call"}))
        .await;
    // Every credential rotated, each in its own shape (schema version 2).
    run(json!({"type": "rotate_credential", "credential": "access_token", "secret": "glpat-frozen-access-token-000000002", "admin": true})).await;
    run(json!({"type": "rotate_credential", "credential": "application_secret", "secret": "gloas-frozen-application-secret-0002"})).await;
    run(json!({"type": "issue_webhook_credentials", "signing": false})).await;
    run(json!({"type": "rotate_credential", "credential": "webhook_token"})).await;
    engine.reveal(id, SecretKind::AccessToken, &admin).await.unwrap();
    engine.shred(id, &admin).await.unwrap();
    run(json!({"type": "cancel", "reason": "Customer chose another vendor"})).await;

    // monitoring_completed: the Acme journey is live; finish its window.
    clock.set(fixture_now() + Duration::days(30));
    let live: Vec<_> =
        engine.list(&Default::default()).await.unwrap().into_iter().filter(|s| s.customer == "Acme Robotics").collect();
    for summary in live {
        let body = json!({"type": "complete_monitoring"});
        engine.execute(ExecuteRequest::new(summary.id, body, rep.clone())).await.unwrap();
    }
    clock.set(fixture_now());
}
