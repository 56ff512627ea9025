//! The engine end to end on real sled directories: fixtures through the write path, optimistic
//! concurrency, idempotency, as-of, snapshots across restarts, the read model, secrets.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{Duration, TimeZone, Utc};
use golive::domain::{Actor, IntegrationId, SecretKind, Stage};
use golive::engine::{
    At, AuditQuery, Engine, EngineConfig, EngineError, ExecuteRequest, ListFilter, ManualClock, OpenOptions,
};
use golive::fixtures::{load_into_engine, Fixture, FIXTURE_DIR};
use serde_json::json;

use crate::fixtures_replay::{expected_summary, fixture_now, summarize};
use crate::support::*;

pub async fn engine_at(dir: &Path, clock: Arc<ManualClock>) -> Engine {
    let config = EngineConfig::new(public_url(), None);
    let options =
        OpenOptions { clock: Some(clock), store: crate::store_conformance::reopen_options(), ..Default::default() };
    Engine::open_dir(dir, config, options).await.expect("engine opens").0
}

fn actor(name: &str) -> Actor {
    Actor::parse(name).unwrap()
}

async fn opened(engine: &Engine) -> IntegrationId {
    let body = json!({"customer": "Hooli", "gitlab_url": GITLAB_URL, "owner": "gavin"});
    engine.open_integration(body, &actor("rep"), None).await.unwrap().state.id
}

async fn run(
    engine: &Engine,
    id: IntegrationId,
    body: serde_json::Value,
) -> Result<golive::engine::Executed, EngineError> {
    engine.execute(ExecuteRequest::new(id, body, actor("rep"))).await
}

fn journeys() -> Vec<(std::path::PathBuf, Fixture)> {
    Fixture::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_DIR)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_through_the_engine_reach_their_expected_states() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    for (path, fixture) in journeys() {
        let id = load_into_engine(&engine, &fixture, fixture_now()).await.unwrap();
        let state = engine.state(id).await.unwrap();
        let history = engine.history(id, 0, 10_000).await.unwrap();
        let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        pretty_assertions::assert_eq!(
            summarize(&state, &types, fixture_now()),
            expected_summary(&path),
            "{}",
            fixture.name
        );
    }
    assert!(engine.verify(None).await.unwrap().valid);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_version_that_is_not_current_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(t0()))).await;
    let id = opened(&engine).await;
    let mut request = ExecuteRequest::new(id, json!({"type": "add_note", "text": "hi"}), actor("rep"));
    request.expected_version = Some(7);
    let error = engine.execute(request.clone()).await.unwrap_err();
    assert!(matches!(error, EngineError::VersionMismatch { expected: 7, actual: 1, .. }), "{error}");
    request.expected_version = Some(1);
    assert_eq!(engine.execute(request).await.unwrap().state.version, 2);
    assert_eq!(engine.store().head().await.unwrap().position, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_without_a_pinned_version_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(t0()))).await;
    let id = opened(&engine).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(
                async move { run(&engine, id, json!({"type": "add_note", "text": format!("note {i}")})).await },
            )
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let state = engine.state(id).await.unwrap();
    assert_eq!(state.version, 33);
    assert_eq!(state.facts.notes, 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_idempotency_key_answers_the_first_result_and_shows_no_secret_again() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(t0()))).await;
    let id = opened(&engine).await;
    let mut request = ExecuteRequest::new(id, json!({"type": "issue_webhook_credentials"}), actor("rep"));
    request.idempotency_key = Some("4c1a".into());
    let first = engine.execute(request.clone()).await.unwrap();
    assert!(first.shown.secret_token.is_some() && !first.replayed);
    let again = engine.execute(request.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.shown.secret_token, None, "shown once");
    assert_eq!(again.shown.webhook_url, first.shown.webhook_url);
    assert_eq!(again.events, first.events);
    assert_eq!(again.state.version, first.state.version);
    let mut other = request.clone();
    other.body = json!({"type": "issue_webhook_credentials", "signing": true});
    assert!(matches!(engine.execute(other).await, Err(EngineError::IdempotencyKeyReused)));
    // Two identical requests at once: one write.
    let mut note = ExecuteRequest::new(id, json!({"type": "add_note", "text": "once"}), actor("rep"));
    note.idempotency_key = Some("same-time".into());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let engine = engine.clone();
            let note = note.clone();
            tokio::spawn(async move { engine.execute(note).await.unwrap() })
        })
        .collect();
    let mut written = 0;
    for task in tasks {
        if !task.await.unwrap().replayed {
            written += 1;
        }
    }
    assert_eq!(written, 1);
    assert_eq!(engine.state(id).await.unwrap().facts.notes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_as_of_a_version_or_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = engine_at(dir.path(), clock.clone()).await;
    let id = opened(&engine).await;
    clock.advance(Duration::days(1));
    run(&engine, id, json!({"type": "assign_owner", "owner": "monica"})).await.unwrap();
    clock.advance(Duration::days(1));
    run(&engine, id, json!({"type": "assign_owner", "owner": "richard"})).await.unwrap();
    let owner = |s: &golive::domain::Integration| s.owner.as_ref().map(|o| o.to_string());
    assert_eq!(owner(&engine.state_at(id, At::Version(1)).await.unwrap()), Some("gavin".into()));
    assert_eq!(owner(&engine.state_at(id, At::Version(2)).await.unwrap()), Some("monica".into()));
    assert_eq!(owner(&engine.state_at(id, At::Time(t0() + Duration::hours(36))).await.unwrap()), Some("monica".into()));
    assert_eq!(owner(&engine.state_at(id, At::Time(t0() + Duration::days(3))).await.unwrap()), Some("richard".into()));
    assert!(matches!(engine.state_at(id, At::Time(t0() - Duration::days(1))).await, Err(EngineError::NotFound(_))));
    let unknown = IntegrationId::from_uuid(uuid::Uuid::from_u128(77));
    assert!(matches!(engine.state(unknown).await, Err(EngineError::NotFound(_))));
    assert!(matches!(engine.history(unknown, 0, 10).await, Err(EngineError::NotFound(_))));
    assert!(matches!(run(&engine, unknown, json!({"type": "go_live"})).await, Err(EngineError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_streams_load_from_snapshots_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let (id, before) = {
        let engine = engine_at(dir.path(), clock.clone()).await;
        let id = opened(&engine).await;
        for i in 0..2_500 {
            run(&engine, id, json!({"type": "add_note", "text": format!("n{i}")})).await.unwrap();
        }
        let state = engine.state(id).await.unwrap();
        engine.close().await.unwrap();
        drop(engine);
        (id, state)
    };
    let engine = engine_at(dir.path(), clock).await;
    let snapshot = engine.store().get_aux(&format!("snapshot/{id}")).await.unwrap().expect("a snapshot");
    let snapshot: serde_json::Value = serde_json::from_slice(&snapshot).unwrap();
    assert_eq!(snapshot["state"]["version"], 2_000);
    let after = engine.state(id).await.unwrap();
    assert_eq!(*after, *before);
    assert_eq!(after.version, 2_501);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_lists_boards_calendars_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(fixture_now()));
    let engine = engine_at(dir.path(), clock.clone()).await;
    for (_, fixture) in journeys() {
        load_into_engine(&engine, &fixture, fixture_now()).await.unwrap();
    }
    let customers =
        |list: Vec<golive::engine::IntegrationSummary>| list.into_iter().map(|s| s.customer).collect::<Vec<_>>();
    let all = engine.list(&ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        customers(engine.list(&ListFilter { stage: Some(Stage::Live), ..Default::default() }).await.unwrap()),
        ["Acme Robotics"]
    );
    assert_eq!(
        customers(engine.list(&ListFilter { blocked: Some(true), ..Default::default() }).await.unwrap()),
        ["Initech"]
    );
    assert_eq!(
        customers(engine.list(&ListFilter { stalled_days: Some(7), ..Default::default() }).await.unwrap()),
        ["Initech"]
    );
    assert_eq!(
        customers(engine.list(&ListFilter { owner: Some("dana.reyes".into()), ..Default::default() }).await.unwrap()),
        ["Acme Robotics", "Umbrella Labs"]
    );
    let board = engine.board().await.unwrap();
    let counts: Vec<(Stage, usize)> = board.iter().map(|c| (c.stage, c.count)).collect();
    assert_eq!(
        counts,
        [
            (Stage::Created, 1),
            (Stage::InfoGathered, 0),
            (Stage::NetworkEstablished, 0),
            (Stage::WebhookLive, 0),
            (Stage::Tested, 0),
            (Stage::Validated, 1),
            (Stage::Live, 1),
            (Stage::Cancelled, 1)
        ]
    );
    let calendar = engine.calendar().await.unwrap();
    let entries: Vec<(String, String)> = calendar.iter().map(|e| (e.date.to_string(), e.kind.clone())).collect();
    assert_eq!(
        entries,
        [("2026-06-19".to_string(), "monitoring_ends".to_string()), ("2026-06-20".into(), "go_live".into())]
    );
    // The insights projected with the read model equal a fold of the whole log.
    let projected = engine.insights().await.unwrap();
    assert_eq!(projected, engine.insights_from_the_whole_log().await.unwrap());
    assert_eq!(projected.integrations, 4);
    // Pages of two follow the list's order without gap or repeat, with the filters applied.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine.list_page(&ListFilter::default(), after.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        paged.extend(page.items);
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let dana = ListFilter { owner: Some("dana.reyes".into()), ..Default::default() };
    let first = engine.list_page(&dana, None, 1).await.unwrap();
    assert_eq!(customers(first.items), ["Acme Robotics"]);
    let second = engine.list_page(&dana, first.next_after.as_deref(), 1).await.unwrap();
    assert_eq!((customers(second.items), second.next_after), (vec!["Umbrella Labs".to_owned()], None));
    assert!(matches!(
        engine.list_page(&ListFilter::default(), Some("not a cursor"), 2).await,
        Err(EngineError::Rejected(_))
    ));
    // A rebuild from position 0 equals what the projector built incrementally.
    let incremental = engine.read_model_snapshot().await.unwrap();
    engine.rebuild_read_model().await.unwrap();
    assert_eq!(engine.read_model_snapshot().await.unwrap(), incremental);
    engine.close().await.unwrap();
    drop(engine);
    // Reopened: the saved read model is used and is current.
    let engine = engine_at(dir.path(), clock).await;
    assert_eq!(engine.read_model_checkpoint(), incremental.checkpoint);
    assert_eq!(engine.read_model_snapshot().await.unwrap(), incremental);
    assert_eq!(engine.insights().await.unwrap(), projected, "the insights were saved with the read model");
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_queries_filter_and_page() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    for (_, fixture) in journeys() {
        load_into_engine(&engine, &fixture, fixture_now()).await.unwrap();
    }
    let probes =
        engine.audit(&AuditQuery { actor: Some("probe".into()), limit: 100, ..Default::default() }).await.unwrap();
    assert!(probes.events.iter().all(|e| e.actor == "probe"));
    assert_eq!(probes.events.iter().filter(|e| e.event_type == "probe_result_recorded").count(), 5);
    assert!(probes.events.iter().any(|e| e.event_type == "stage_entered"), "consequences carry the actor too");
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut query = AuditQuery { event_type: Some("stage_entered".into()), limit: 4, ..Default::default() };
    loop {
        let page = engine.audit(&query).await.unwrap();
        pages += 1;
        seen.extend(page.events.iter().map(|e| e.position));
        match page.next_after {
            Some(after) => query.after = after,
            None => break,
        }
    }
    assert!(pages > 2);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "pages neither overlap nor go back");
    let all_entered = engine
        .audit(&AuditQuery { event_type: Some("stage_entered".into()), limit: 1000, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(seen, all_entered.events.iter().map(|e| e.position).collect::<Vec<_>>());
    let recent = engine
        .audit(&AuditQuery {
            since: Some(fixture_now() - Duration::days(2)),
            until: Some(fixture_now()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(recent.events.iter().all(|e| e.recorded_at >= fixture_now() - Duration::days(2)));
    assert!(!recent.events.is_empty());
}

/// Every file under `dir` (recursively) with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The plaintext and its base64 forms at every alignment (standard and URL-safe).
fn encodings(secret: &str) -> Vec<Vec<u8>> {
    let mut out = vec![secret.as_bytes().to_vec()];
    for engine in [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE_NO_PAD] {
        for pad in 0..3 {
            let mut bytes = vec![0u8; pad];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = engine.encode(&bytes);
            let start = if pad == 0 { 0 } else { 4 };
            let middle = &encoded[start..encoded.len() - 4];
            out.push(middle.as_bytes().to_vec());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_rests_in_plaintext_and_shredding_forgets_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(fixture_now()));
    let engine = engine_at(dir.path(), clock).await;
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for (_, fixture) in journeys() {
        ids.push(load_into_engine(&engine, &fixture, fixture_now()).await.unwrap());
        for step in &fixture.steps {
            for field in ["secret", "token"] {
                if let Some(text) = step.command.get(field).and_then(|v| v.as_str()) {
                    secrets.push(text.to_owned());
                }
            }
        }
    }
    assert!(secrets.len() >= 6);
    let acme = ids[0];
    let token = engine.reveal(acme, SecretKind::AccessToken, &actor("security.lead")).await.unwrap();
    assert_eq!(token, "glpat-acme-demo-admin-token-Xy12Qw34");
    let last = engine.history(acme, 0, 10_000).await.unwrap().pop().unwrap();
    assert_eq!((last.event_type.as_str(), last.actor.as_str()), ("secret_revealed", "security.lead"));
    assert!(!last.data.to_string().contains("glpat"));
    engine.close().await.unwrap();
    drop(engine);
    for (path, bytes) in files(dir.path()) {
        for secret in &secrets {
            for form in encodings(secret) {
                assert!(!contains(&bytes, &form), "{} holds a secret in the clear or base64", path.display());
            }
        }
    }
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    for id in &ids {
        engine.shred(*id, &actor("security.lead")).await.unwrap();
        assert!(engine.state(*id).await.unwrap().facts.secrets_shredded_at.is_some());
    }
    assert!(matches!(
        engine.reveal(acme, SecretKind::AccessToken, &actor("security.lead")).await,
        Err(EngineError::Secrets(golive::secrets::SecretsError::Shredded(_)))
    ));
    assert!(engine.verify(None).await.unwrap().valid, "history stays verifiable after shredding");
    engine.close().await.unwrap();
    let keys: Vec<_> = std::fs::read_dir(dir.path().join("keys")).unwrap().collect();
    assert!(keys.is_empty(), "no data key remains: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_directory_is_told_it_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(t0()))).await;
    let config = EngineConfig::new(public_url(), None);
    let second = Engine::open_dir(dir.path(), config, OpenOptions::default()).await;
    assert!(matches!(second, Err(EngineError::Store(golive::store::StoreError::Locked { .. }))));
    engine.close().await.unwrap();
    let _ = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_command_takes_the_same_write_path_as_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    let id = opened(&engine).await;
    // Given the same note as JSON and as a typed command,
    let by_json = run(&engine, id, json!({"type": "add_note", "text": "kick-off booked"})).await.unwrap();
    let note =
        golive::domain::CommandRequest::AddNote { text: golive::domain::LongText::parse("kick-off booked").unwrap() };
    let typed = engine.execute_typed(id, note, &actor("rep")).await.unwrap();
    // then both record a `note_added` with the same data, one version apart.
    let data = |e: &golive::engine::Executed| (e.events[0].event_type.clone(), e.events[0].data.clone());
    assert_eq!(data(&typed), data(&by_json));
    assert_eq!(typed.state.version, by_json.state.version + 1);
    assert_eq!(typed.events[0].actor, "rep");
    // An unknown integration is refused and nothing is written.
    let history = engine.history(id, 0, 1000).await.unwrap().len();
    let unknown = engine
        .execute_typed(
            IntegrationId::parse("00000000-0000-0000-0000-000000000999").unwrap(),
            golive::domain::CommandRequest::SubmitInformation,
            &actor("rep"),
        )
        .await;
    assert!(matches!(unknown, Err(EngineError::NotFound(_))), "{unknown:?}");
    assert_eq!(engine.history(id, 0, 1000).await.unwrap().len(), history);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_open_records_what_its_json_records_and_answers_typed_events() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    let body = json!({"customer": "Hooli", "gitlab_url": GITLAB_URL, "owner": "dana.reyes"});
    let by_json = engine.open_integration(body, &actor("rep"), None).await.unwrap();
    let request = golive::domain::OpenIntegration {
        customer: golive::domain::ShortText::parse("Hooli").unwrap(),
        gitlab_url: golive::domain::HttpUrl::parse(GITLAB_URL).unwrap(),
        owner: Some(golive::domain::ShortText::parse("dana.reyes").unwrap()),
        playbook: None,
        ca_certificate_pem: None,
    };
    let typed = engine.open_typed(request.clone(), None, &actor("rep")).await.unwrap();
    // Given the same request as JSON and typed, both open an integration that differs by its id only.
    let without_id = |e: &golive::engine::Executed| {
        let mut data = e.events[0].data.clone();
        data.as_object_mut().unwrap().remove("integration_id");
        data
    };
    assert_eq!(without_id(&typed), without_id(&by_json));
    assert_ne!(typed.state.id, by_json.state.id);
    let events = typed.domain_events().unwrap();
    assert!(
        matches!(&events[..], [golive::domain::Event::IntegrationOpened { integration_id, .. }] if *integration_id == typed.state.id)
    );
    // A playbook given twice (whole and by reference) is refused, and nothing is written.
    let before = engine.export_page(0, 1000).await.unwrap().len();
    let twice = golive::domain::OpenIntegration {
        playbook: Some(golive::domain::Playbook::guide_default(public_url())),
        ..request
    };
    let reference =
        golive::domain::PlaybookRef { id: golive::domain::PlaybookId::parse("guide").unwrap(), version: None };
    let refused = engine.open_typed(twice, Some(reference), &actor("rep")).await;
    assert!(
        matches!(refused, Err(EngineError::Rejected(golive::domain::Rejection::InvalidField { ref field, .. })) if field == "playbook"),
        "{refused:?}"
    );
    assert_eq!(engine.export_page(0, 1000).await.unwrap().len(), before);
    engine.close().await.unwrap();
}

/// A typed command meets the rules JSON parsing applies beyond the types, and a refused one
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_command_is_refused_where_its_json_would_be() {
    use golive::domain::{CommandRequest, Credential, PlaintextSecret, ResponseValidation, Scenario, Scope};
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    let id = opened(&engine).await;
    // One more distinct scope than a list may hold.
    let too_many_scopes: std::collections::BTreeSet<Scope> = (1..=golive::domain::LIST_MAX_ENTRIES)
        .map(|n| "a".repeat(n))
        .chain(["b".to_owned()])
        .map(|name| Scope::parse(name).unwrap())
        .collect();
    let refused: Vec<(&str, CommandRequest)> = vec![
        (
            "evidence",
            CommandRequest::ValidateResponse(ResponseValidation {
                scenario: Scenario::PipelineRan,
                correct: true,
                evidence: None,
                note: None,
            }),
        ),
        (
            "secret",
            CommandRequest::RotateCredential {
                credential: Credential::WebhookToken,
                secret: Some(PlaintextSecret::parse("chosen-by-the-caller").unwrap()),
                admin: None,
            },
        ),
        (
            "admin",
            CommandRequest::RotateCredential {
                credential: Credential::ApplicationSecret,
                secret: None,
                admin: Some(true),
            },
        ),
        (
            "scopes",
            CommandRequest::RegisterApplication(golive::domain::ApplicationRegistration {
                name: golive::domain::ShortText::parse("Factory Integration").unwrap(),
                redirect_uri: golive::domain::HttpUrl::parse("https://golive.example/callback").unwrap(),
                application_id: golive::domain::ShortText::parse("app-1").unwrap(),
                scopes: too_many_scopes,
            }),
        ),
    ];
    let before = engine.history(id, 0, 1000).await.unwrap().len();
    for (field, command) in refused {
        let answer = engine.execute_typed(id, command, &actor("rep")).await;
        assert!(
            matches!(&answer, Err(EngineError::Rejected(golive::domain::Rejection::InvalidField { field: f, .. })) if f == field),
            "{field}: {answer:?}"
        );
    }
    assert_eq!(engine.history(id, 0, 1000).await.unwrap().len(), before, "nothing was written");
    engine.close().await.unwrap();
}

/// The frozen v1 log with one change, rechained so that only the change is wrong.
fn crafted_log(change: impl Fn(&mut Vec<golive::store::StoredEvent>)) -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs/v1/log.jsonl")).unwrap();
    let mut events: Vec<golive::store::StoredEvent> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    change(&mut events);
    let mut previous = golive::store::GENESIS_HASH.to_owned();
    for (index, event) in events.iter_mut().enumerate() {
        event.position = index as u64 + 1;
        event.prev_hash = previous;
        event.hash = event.compute_hash();
        previous = event.hash.clone();
    }
    events.iter().map(|e| serde_json::to_string(e).unwrap()).collect()
}

/// A refused import writes nothing: every line is checked (chain, decoding, stream versions)
/// before the first is written, so the same store then takes the good log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_import_leaves_the_store_empty() {
    type Change = Box<dyn Fn(&mut Vec<golive::store::StoredEvent>)>;
    let last = 102;
    let cases: Vec<(&str, Change)> = vec![
        ("newer than this golive", Box::new(|e| e[55].schema_version = 99)),
        ("versions start at 1", Box::new(|e| e[55].schema_version = 0)),
        ("cannot be decoded", Box::new(move |e| e[last].event_type = "spaceship_landed".into())),
        (
            "cannot be decoded",
            Box::new(|e| {
                let i = e.iter().position(|e| e.event_type == "credential_rotated").unwrap();
                e[i].data["credential"] = "ssh_key".into();
            }),
        ),
        (
            "where 5 was due",
            Box::new(|e| {
                let i = e.iter().position(|e| e.version == 5).unwrap();
                let stream = e[i].integration_id;
                for event in e.iter_mut().filter(|x| x.integration_id == stream && x.version >= 5) {
                    event.version += 1;
                }
            }),
        ),
        ("does not begin with its own integration_opened", Box::new(|e| e[0].integration_id = uuid::Uuid::nil())),
        ("appears twice", Box::new(|e| e[1].id = e[0].id)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_at(dir.path(), Arc::new(ManualClock::new(fixture_now()))).await;
    for (reason, change) in &cases {
        let lines = crafted_log(change);
        let refused = engine.import_lines(lines.into_iter().map(Ok), |_| {}).await;
        let message = refused.expect_err(reason).to_string();
        assert!(message.contains(reason), "expected {reason:?}, got {message:?}");
        assert_eq!(engine.export_page(0, 10).await.unwrap().len(), 0, "{reason}: nothing written");
    }
    // A tampered line (not rechained) is refused the same way, and still nothing is written.
    let mut lines = crafted_log(|_| {});
    lines[79] = lines[79].replace("\"actor\":\"", "\"actor\":\"x");
    let message = engine.import_lines(lines.into_iter().map(Ok), |_| {}).await.unwrap_err().to_string();
    assert!(message.starts_with("line 80: hash does not match"), "{message}");
    assert_eq!(engine.export_page(0, 10).await.unwrap().len(), 0);
    // The untouched log goes in afterwards.
    let report = engine.import_lines(crafted_log(|_| {}).into_iter().map(Ok), |_| {}).await.unwrap();
    assert_eq!(report.events, 103);
    engine.close().await.unwrap();
}
