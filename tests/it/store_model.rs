//! Model-based property test of the store: random appends (right, wrong and absent expected
//! versions), repeated and conflicting idempotency keys, and reboots (close and reopen the
//! same directory), checked against an in-memory model. After every reboot the chain verifies
//! and the whole log equals the model's.
//!
//! Cases: `GOLIVE_STORE_MODEL_CASES` (default 256). Seed: `GOLIVE_PROPTEST_SEED` (printed).

use std::collections::HashMap;

use golive::store::{verify_chain, AppendOutcome, AppendRequest, ExpectedVersion, IdempotencyWrite, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use serde_json::json;
use uuid::Uuid;

use crate::store_conformance::{event, sled_opener};

#[derive(Debug, Clone)]
enum Expectation {
    Right,
    Wrong,
    Any,
}

#[derive(Debug, Clone)]
enum Op {
    Append { stream: u8, events: u8, expectation: Expectation, key: Option<u8>, payload: u8 },
    Reboot,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let expectation =
        prop_oneof![3 => Just(Expectation::Right), 1 => Just(Expectation::Wrong), 1 => Just(Expectation::Any)];
    prop_oneof![
        8 => (0u8..4, 1u8..4, expectation, prop::option::of(0u8..5), 0u8..3).prop_map(|(stream, events, expectation, key, payload)| Op::Append { stream, events, expectation, key, payload }),
        1 => Just(Op::Reboot),
    ]
}

#[derive(Default)]
struct Model {
    /// (stream, text) of every event, in position order.
    log: Vec<(Uuid, String)>,
    versions: HashMap<Uuid, u64>,
    /// key -> (digest, positions)
    keys: HashMap<String, (String, Vec<u64>)>,
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let open = sled_opener();
    let mut store = open(dir.path()).await;
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Reboot => {
                store.close().await.map_err(|e| fail(e.to_string()))?;
                drop(store);
                store = open(dir.path()).await;
                let report = verify_chain(store.as_ref(), None).await.unwrap();
                if !report.valid || report.events_checked != model.log.len() as u64 {
                    return Err(fail(format!("step {step}: after reboot {report:?}")));
                }
                let all = store.read_all(0, 100_000).await.unwrap();
                let stored: Vec<(Uuid, String)> =
                    all.iter().map(|e| (e.integration_id, e.data["text"].as_str().unwrap().to_owned())).collect();
                if stored != model.log {
                    return Err(fail(format!("step {step}: log after reboot differs from the model")));
                }
                for (stream, version) in &model.versions {
                    if store.stream_version(*stream).await.unwrap() != *version {
                        return Err(fail(format!("step {step}: version of {stream} lost on reboot")));
                    }
                }
            }
            Op::Append { stream, events, expectation, key, payload } => {
                let stream = Uuid::from_u128(u128::from(*stream) + 1);
                let current = model.versions.get(&stream).copied().unwrap_or(0);
                let expected = match expectation {
                    Expectation::Right => ExpectedVersion::Exact(current),
                    Expectation::Wrong => ExpectedVersion::Exact(current + 1 + u64::from(*payload)),
                    Expectation::Any => ExpectedVersion::Any,
                };
                let texts: Vec<String> = (0..*events).map(|i| format!("s{step} e{i} p{payload}")).collect();
                let digest = format!("{stream}/{events}/{payload}");
                let key = key.map(|k| format!("key-{k}"));
                let mut request = AppendRequest {
                    stream,
                    expected,
                    events: texts.iter().map(|t| event(t)).collect(),
                    idempotency: None,
                };
                request.idempotency = key.clone().map(|key| IdempotencyWrite {
                    key,
                    request_digest: digest.clone(),
                    response: json!(null),
                });
                let outcome = store.append(request).await;
                // What the model says should happen, in the store's order of checks.
                let prior = key.as_ref().and_then(|k| model.keys.get(k)).cloned();
                match (prior, outcome) {
                    (Some((d, positions)), Ok(AppendOutcome::Duplicate(record))) if d == digest => {
                        if record.positions != positions {
                            return Err(fail(format!("step {step}: duplicate answered other positions")));
                        }
                    }
                    (Some((d, _)), Err(StoreError::IdempotencyKeyReused { .. })) if d != digest => {}
                    (None, Err(StoreError::WrongExpectedVersion { actual, .. }))
                        if matches!(expectation, Expectation::Wrong) =>
                    {
                        if actual != current {
                            return Err(fail(format!("step {step}: reported version {actual}, model {current}")));
                        }
                    }
                    (None, Ok(AppendOutcome::Committed(stored))) if !matches!(expectation, Expectation::Wrong) => {
                        let first = model.log.len() as u64 + 1;
                        for (i, e) in stored.iter().enumerate() {
                            if e.position != first + i as u64 || e.version != current + 1 + i as u64 {
                                return Err(fail(format!(
                                    "step {step}: got position {} version {}",
                                    e.position, e.version
                                )));
                            }
                        }
                        for text in &texts {
                            model.log.push((stream, text.clone()));
                        }
                        model.versions.insert(stream, current + u64::from(*events));
                        if let Some(key) = key {
                            model.keys.insert(key, (digest, stored.iter().map(|e| e.position).collect()));
                        }
                    }
                    (prior, outcome) => {
                        return Err(fail(format!("step {step}: {op:?} prior key {prior:?} gave {outcome:?}")));
                    }
                }
                if store.head().await.unwrap().position != model.log.len() as u64 {
                    return Err(fail(format!("step {step}: head differs from the model")));
                }
            }
        }
    }
    store.close().await.unwrap();
    Ok(())
}

#[test]
fn random_appends_with_reboots_agree_with_the_model() {
    let seed = std::env::var("GOLIVE_PROPTEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let cases = std::env::var("GOLIVE_STORE_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    println!("store model: {cases} cases, seed {seed} (rerun with GOLIVE_PROPTEST_SEED={seed})");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&prop::collection::vec(op_strategy(), 1..40), |ops| runtime.block_on(run(ops)));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!("seed {seed}: {reason}\nminimal input: {ops:#?}"),
        Err(error) => panic!("seed {seed}: {error}"),
    }
}
