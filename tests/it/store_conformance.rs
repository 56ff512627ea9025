//! The store conformance suite: the promises every backend keeps. Each check takes a way to
//! open the backend on a directory, so reopening is part of what is tested.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;
use futures::future::BoxFuture;
use golive::store::{
    AppendOutcome, AppendRequest, EventStore, ExpectedVersion, IdempotencyWrite, NewEvent, SledStore, SledStoreOptions,
    StoreError, Subscription,
};
use golive::store::{PgStore, PgStoreOptions};
use serde_json::json;
use sha2::Digest;
use uuid::Uuid;

/// Opens a backend on a place named by a directory (sled uses it; PostgreSQL maps it to a
/// schema), so a second call with the same directory reopens the same store.
pub type Opener = Arc<dyn Fn(&Path) -> BoxFuture<'static, Arc<dyn EventStore>> + Send + Sync>;

pub fn sled_opener() -> Opener {
    Arc::new(|dir: &Path| {
        let store = SledStore::open(dir, reopen_options()).expect("open sled") as Arc<dyn EventStore>;
        Box::pin(async move { store })
    })
}

/// PostgreSQL in one schema per directory (created on first use, listed for dropping).
pub fn postgres_opener(base: String, schemas: Arc<std::sync::Mutex<Vec<String>>>) -> Opener {
    Arc::new(move |dir: &Path| {
        let digest = sha2::Sha256::digest(dir.display().to_string().as_bytes());
        let schema = format!("golive_t_{}", hex::encode(&digest[..10]));
        let base = base.clone();
        let schemas = schemas.clone();
        Box::pin(async move {
            let client = crate::pg::connect(&base).await;
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await.unwrap();
            schemas.lock().unwrap().push(schema.clone());
            let url = crate::pg::in_schema(&base, &schema);
            let options = PgStoreOptions { pool_size: 4, ..Default::default() };
            PgStore::connect(&url, options).await.expect("open postgres") as Arc<dyn EventStore>
        })
    })
}

/// Options for reopening a directory within the test process.
pub fn reopen_options() -> SledStoreOptions {
    SledStoreOptions { wait_for_lock: std::time::Duration::from_secs(10), ..Default::default() }
}

pub fn event(text: &str) -> NewEvent {
    NewEvent {
        id: Uuid::new_v4(),
        recorded_at: Utc::now(),
        actor: "tester".into(),
        event_type: "note_added".into(),
        schema_version: 1,
        data: json!({"text": text}),
    }
}

pub fn append(stream: Uuid, expected: ExpectedVersion, texts: &[&str]) -> AppendRequest {
    AppendRequest { stream, expected, events: texts.iter().map(|t| event(t)).collect(), idempotency: None }
}

pub fn committed(outcome: AppendOutcome) -> Vec<golive::store::StoredEvent> {
    match outcome {
        AppendOutcome::Committed(events) => events,
        AppendOutcome::Duplicate(_) => panic!("expected a commit, got a duplicate"),
    }
}

fn stream(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

async fn appends_get_gapless_positions_and_contiguous_versions(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    let a = committed(store.append(append(stream(1), ExpectedVersion::Exact(0), &["a1", "a2"])).await.unwrap());
    let b = committed(store.append(append(stream(2), ExpectedVersion::Exact(0), &["b1"])).await.unwrap());
    let c = committed(store.append(append(stream(1), ExpectedVersion::Exact(2), &["a3"])).await.unwrap());
    let positions: Vec<u64> = a.iter().chain(&b).chain(&c).map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert_eq!(a.iter().chain(&c).map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(b[0].version, 1);
    assert_eq!(b[0].prev_hash, a[1].hash, "one chain across streams");
    let stream_one = store.read_stream(stream(1), 1, 100).await.unwrap();
    assert_eq!(stream_one.iter().map(|e| e.data["text"].as_str().unwrap()).collect::<Vec<_>>(), ["a1", "a2", "a3"]);
    assert_eq!(store.read_stream(stream(1), 2, 1).await.unwrap()[0].version, 2);
    assert_eq!(store.read_all(2, 10).await.unwrap().len(), 2);
    assert_eq!(store.stream_version(stream(1)).await.unwrap(), 3);
    assert_eq!(store.stream_version(stream(9)).await.unwrap(), 0);
    assert_eq!(store.head().await.unwrap().position, 4);
    assert_eq!(store.streams().await.unwrap(), vec![(stream(1), 3), (stream(2), 1)]);
    assert_eq!(store.append(append(stream(1), ExpectedVersion::Any, &[])).await, Err(StoreError::EmptyAppend));
}

async fn a_wrong_expected_version_writes_nothing(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    store.append(append(stream(1), ExpectedVersion::Exact(0), &["one"])).await.unwrap();
    let refused = store.append(append(stream(1), ExpectedVersion::Exact(0), &["again"])).await;
    assert_eq!(refused, Err(StoreError::WrongExpectedVersion { stream: stream(1), expected: 0, actual: 1 }));
    let refused = store.append(append(stream(2), ExpectedVersion::Exact(3), &["ghost"])).await;
    assert!(matches!(refused, Err(StoreError::WrongExpectedVersion { actual: 0, .. })));
    assert_eq!(store.head().await.unwrap().position, 1);
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 1);
    committed(store.append(append(stream(1), ExpectedVersion::Any, &["any"])).await.unwrap());
    assert_eq!(store.stream_version(stream(1)).await.unwrap(), 2);
}

fn keyed(stream_id: Uuid, key: &str, digest: &str, text: &str) -> AppendRequest {
    let mut request = append(stream_id, ExpectedVersion::Any, &[text]);
    request.idempotency =
        Some(IdempotencyWrite { key: key.into(), request_digest: digest.into(), response: json!({"n": text}) });
    request
}

async fn idempotency_keys_return_the_first_result_and_write_nothing(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    let first = committed(store.append(keyed(stream(1), "k1", "d1", "first")).await.unwrap());
    match store.append(keyed(stream(1), "k1", "d1", "first")).await.unwrap() {
        AppendOutcome::Duplicate(record) => {
            assert_eq!(record.positions, vec![first[0].position]);
            assert_eq!(record.response, json!({"n": "first"}));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(
        store.append(keyed(stream(1), "k1", "other digest", "x")).await,
        Err(StoreError::IdempotencyKeyReused { key: "k1".into() })
    );
    assert_eq!(store.head().await.unwrap().position, 1);
    assert!(store.idempotency_record("k1").await.unwrap().is_some());
    assert!(store.idempotency_record("k2").await.unwrap().is_none());
}

async fn identical_appends_at_once_write_once(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.append(keyed(stream(7), "same", "digest", "once")).await.unwrap() })
        })
        .collect();
    let mut commits = 0;
    for task in tasks {
        if let AppendOutcome::Committed(_) = task.await.unwrap() {
            commits += 1;
        }
    }
    assert_eq!(commits, 1);
    assert_eq!(store.head().await.unwrap().position, 1);
}

async fn racing_writers_lose_no_update(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    let writers = 32;
    let per_writer = 10;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..per_writer {
                    loop {
                        let version = store.stream_version(stream(5)).await.unwrap();
                        let text = format!("w{w} i{i}");
                        match store.append(append(stream(5), ExpectedVersion::Exact(version), &[&text])).await {
                            Ok(_) => break,
                            Err(StoreError::WrongExpectedVersion { .. }) => conflicts += 1,
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let events = store.read_stream(stream(5), 1, 10_000).await.unwrap();
    assert_eq!(events.len(), writers * per_writer, "every append landed exactly once");
    let texts: HashSet<String> = events.iter().map(|e| e.data["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts.len(), writers * per_writer);
    assert!(events.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1), "exactly one winner per version");
}

async fn subscriptions_catch_up_then_follow_without_gap_or_duplicate(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    for i in 0..300 {
        store.append(append(stream(i % 7 + 1), ExpectedVersion::Any, &["before"])).await.unwrap();
    }
    let mut subscription = Subscription::new(store.clone(), 100);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                store.append(append(stream(i % 5 + 1), ExpectedVersion::Any, &["during", "during"])).await.unwrap();
            }
        })
    };
    let mut expected = 101;
    while expected <= 900 {
        let event = subscription.next_within(std::time::Duration::from_secs(10)).await.unwrap().expect("an event");
        assert_eq!(event.position, expected, "in order, no gap, no duplicate");
        expected += 1;
    }
    writer.await.unwrap();
    assert!(subscription.next_within(std::time::Duration::from_millis(100)).await.unwrap().is_none());
}

async fn reopening_restores_positions_heads_and_chain(open: &Opener, dir: &Path) {
    let (head, hash) = {
        let store = open(dir).await;
        for i in 0..50 {
            store.append(append(stream(i % 3 + 1), ExpectedVersion::Any, &["x", "y"])).await.unwrap();
        }
        store.put_aux("checkpoint", b"42".to_vec()).await.unwrap();
        let head = store.head().await.unwrap();
        store.close().await.unwrap();
        (head.position, head.hash)
    };
    let store = open(dir).await;
    let reopened = store.head().await.unwrap();
    assert_eq!((reopened.position, reopened.hash.clone()), (head, hash.clone()));
    assert_eq!(store.stream_version(stream(1)).await.unwrap(), 34);
    assert_eq!(store.get_aux("checkpoint").await.unwrap(), Some(b"42".to_vec()));
    let next = committed(store.append(append(stream(1), ExpectedVersion::Exact(34), &["after"])).await.unwrap());
    assert_eq!((next[0].position, next[0].version, next[0].prev_hash.clone()), (101, 35, hash));
    let report = golive::store::verify_chain(store.as_ref(), None).await.unwrap();
    assert!(report.valid);
    assert_eq!(report.events_checked, 101);
    store.close().await.unwrap();
}

async fn aux_conditional_writes_are_atomic_and_change_only_what_they_say(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    // Insert-if-absent: the first writer wins, the second changes nothing.
    assert!(store.put_aux_if_absent("item/one", b"first".to_vec()).await.unwrap());
    assert!(!store.put_aux_if_absent("item/one", b"second".to_vec()).await.unwrap());
    assert_eq!(store.get_aux("item/one").await.unwrap(), Some(b"first".to_vec()));
    // Compare-and-swap: a stale expectation changes nothing; the right one swaps.
    assert!(!store.compare_and_swap_aux("item/one", Some(b"stale"), Some(b"x".to_vec())).await.unwrap());
    assert!(!store.compare_and_swap_aux("item/one", None, Some(b"x".to_vec())).await.unwrap());
    assert_eq!(store.get_aux("item/one").await.unwrap(), Some(b"first".to_vec()));
    assert!(store.compare_and_swap_aux("item/one", Some(b"first"), Some(b"swapped".to_vec())).await.unwrap());
    assert_eq!(store.get_aux("item/one").await.unwrap(), Some(b"swapped".to_vec()));
    // Absent → present, and removal only from the expected value.
    assert!(store.compare_and_swap_aux("item/two", None, Some(b"2".to_vec())).await.unwrap());
    assert!(!store.compare_and_swap_aux("item/two", Some(b"3"), None).await.unwrap());
    assert!(store.compare_and_swap_aux("item/two", Some(b"2"), None).await.unwrap());
    assert_eq!(store.get_aux("item/two").await.unwrap(), None);
    assert!(store.compare_and_swap_aux("item/two", None, None).await.unwrap(), "absent is as expected");
    assert!(!store.compare_and_swap_aux("item/one", None, None).await.unwrap(), "present is not absent");
    // Prefix scans: exactly the keys under the prefix, in byte order, wildcards taken literally.
    for key in ["item/b", "item/a", "items", "other/a", "it%m/c", "item_x"] {
        store.put_aux(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let scanned: Vec<String> = store.scan_aux("item/").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(scanned, ["item/a", "item/b", "item/one"]);
    assert_eq!(store.scan_aux("item/a").await.unwrap(), vec![("item/a".to_owned(), b"item/a".to_vec())]);
    assert!(store.scan_aux("it%").await.unwrap().iter().all(|(k, _)| k.starts_with("it%")));
    assert!(store.scan_aux("nothing/").await.unwrap().is_empty());
    // Counters: their own namespace, created at zero, saturating.
    assert_eq!(store.read_counter("hits/x").await.unwrap(), 0);
    assert_eq!(store.add_to_counter("hits/x", 1).await.unwrap(), 1);
    assert_eq!(store.add_to_counter("hits/x", 5).await.unwrap(), 6);
    assert_eq!(store.read_counter("hits/x").await.unwrap(), 6);
    assert_eq!(store.get_aux("hits/x").await.unwrap(), None, "counters are not aux values");
    assert_eq!(store.read_counter("hits/y").await.unwrap(), 0);
    let big = store.add_to_counter("hits/big", u64::MAX).await.unwrap();
    assert_eq!(store.add_to_counter("hits/big", 1).await.unwrap(), big, "saturates instead of wrapping");
    store.close().await.unwrap();
    drop(store);
    // All of it durable across a reopen.
    let store = open(dir).await;
    assert_eq!(store.get_aux("item/one").await.unwrap(), Some(b"swapped".to_vec()));
    assert_eq!(store.get_aux("item/two").await.unwrap(), None);
    assert_eq!(store.read_counter("hits/x").await.unwrap(), 6);
    store.close().await.unwrap();
}

async fn racing_aux_writers_lose_no_update(open: &Opener, dir: &Path) {
    let store = open(dir).await;
    // 32 writers race for one key: exactly one inserts.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.put_aux_if_absent("race/claim", vec![i as u8]).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one insert-if-absent wins");
    // 16 writers each add their name to one shared list by compare-and-swap, and 16 count
    // 25 times each: nothing is lost.
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let listing = store.clone();
        tasks.push(tokio::spawn(async move {
            golive::store::update_aux(listing.as_ref(), "race/list", |current| {
                let mut names: Vec<u32> = current.map(|b| serde_json::from_slice(b).unwrap()).unwrap_or_default();
                names.push(i);
                golive::store::AuxChange::Put(serde_json::to_vec(&names).unwrap())
            })
            .await
            .unwrap();
        }));
        let counting = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                counting.add_to_counter("race/count", 1).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut names: Vec<u32> = serde_json::from_slice(&store.get_aux("race/list").await.unwrap().unwrap()).unwrap();
    names.sort();
    assert_eq!(names, (0..16).collect::<Vec<_>>(), "every compare-and-swap update is kept");
    assert_eq!(store.read_counter("race/count").await.unwrap(), 400, "every increment is counted");
    store.close().await.unwrap();
}

/// Runs every check against one backend, each on a fresh directory.
pub async fn run_conformance_suite(open: Opener) {
    macro_rules! check {
        ($name:ident) => {{
            let dir = tempfile::tempdir().unwrap();
            $name(&open, dir.path()).await;
        }};
    }
    check!(appends_get_gapless_positions_and_contiguous_versions);
    check!(a_wrong_expected_version_writes_nothing);
    check!(idempotency_keys_return_the_first_result_and_write_nothing);
    check!(identical_appends_at_once_write_once);
    check!(racing_writers_lose_no_update);
    check!(subscriptions_catch_up_then_follow_without_gap_or_duplicate);
    check!(reopening_restores_positions_heads_and_chain);
    check!(aux_conditional_writes_are_atomic_and_change_only_what_they_say);
    check!(racing_aux_writers_lose_no_update);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sled_store_keeps_every_promise() {
    run_conformance_suite(sled_opener()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_postgres_store_keeps_every_promise() {
    let Some(base) = crate::pg::available("the_postgres_store_keeps_every_promise").await else { return };
    let schemas = Arc::new(std::sync::Mutex::new(Vec::new()));
    run_conformance_suite(postgres_opener(base.clone(), schemas.clone())).await;
    let created: Vec<String> = schemas.lock().unwrap().clone();
    for schema in created {
        crate::pg::drop_schema(&base, &schema).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledgement_precedes_its_flush() {
    let flushed_up_to = Arc::new(AtomicU64::new(0));
    let groups = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = {
        let flushed_up_to = flushed_up_to.clone();
        let groups = groups.clone();
        Arc::new(move |info: golive::store::FlushInfo| {
            // Widen the window between flush and acknowledgement.
            std::thread::sleep(std::time::Duration::from_millis(2));
            flushed_up_to.store(info.last_position, Ordering::SeqCst);
            groups.lock().unwrap().push(info.group_appends);
        })
    };
    let store: Arc<dyn EventStore> =
        SledStore::temporary(SledStoreOptions { flush_hook: Some(hook), ..Default::default() }).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            let flushed_up_to = flushed_up_to.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let events =
                        committed(store.append(append(stream(i), ExpectedVersion::Any, &["e"])).await.unwrap());
                    let last = events.last().unwrap().position;
                    assert!(flushed_up_to.load(Ordering::SeqCst) >= last, "acknowledged {last} before its flush");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let groups = groups.lock().unwrap();
    assert_eq!(groups.iter().sum::<usize>(), 64 * 20);
    assert!(groups.iter().any(|g| *g > 1), "concurrent appends were grouped: {groups:?}");
}
