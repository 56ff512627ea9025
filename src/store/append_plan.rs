//! The append planner: what every backend decides for each append of a group before it writes.
//!
//! A group of appends is planned in order against the log's head and the streams' versions as
//! stored before the group, plus whatever the appends already planned in the group changed.
//! Each append is, in this order: refused when it carries no event; answered from the record
//! of its idempotency key when the key was used before (the same request digest replays the
//! recorded answer, another digest is refused); refused when the stream is not at the version
//! it expects; else committed, with the next positions, the stream's next versions and the
//! hash chain continued from the head. The planner is pure: the sled writer and both of
//! PostgreSQL's paths (the checked one on what it read under the lock, the fast one on what it
//! assumes) say where the stored versions and records come from, and write what it planned.

use std::collections::HashMap;

use uuid::Uuid;

use super::{AppendOutcome, AppendRequest, ExpectedVersion, Head, IdempotencyRecord, StoreError, StoredEvent};

/// One append, planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Write these events (and the record), then answer `Committed`.
    Commit(Commit),
    /// Nothing to write: answer this.
    Answer(Result<AppendOutcome, StoreError>),
}

/// What a committed append writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Commit {
    pub stream: Uuid,
    /// The stream's version before this append.
    pub version_before: u64,
    /// The stream's version after it (the last event's version).
    pub version_after: u64,
    /// The events, sealed: positions, versions and hashes assigned.
    pub events: Vec<StoredEvent>,
    /// The idempotency record to store, when the append carries a key.
    pub record: Option<IdempotencyRecord>,
}

/// Plans the appends of one group, in order.
#[derive(Debug)]
pub(crate) struct AppendPlanner {
    head: Head,
    /// Streams' versions after the appends planned so far.
    versions: HashMap<Uuid, u64>,
    /// Idempotency records of the appends planned so far.
    records: HashMap<String, IdempotencyRecord>,
}

impl AppendPlanner {
    /// A planner continuing the log from `head`.
    pub(crate) fn new(head: Head) -> AppendPlanner {
        AppendPlanner { head, versions: HashMap::new(), records: HashMap::new() }
    }

    /// Plans one append. `stored_version` gives the stream's version before the group and
    /// `stored_record` the record stored under a key before the group; each is asked only when
    /// the group has not already settled it. An error looking up the record answers this
    /// append with it.
    pub(crate) fn plan(
        &mut self,
        request: &AppendRequest,
        stored_version: impl FnOnce(Uuid) -> u64,
        stored_record: impl FnOnce(&str) -> Result<Option<IdempotencyRecord>, StoreError>,
    ) -> Plan {
        if request.events.is_empty() {
            return Plan::Answer(Err(StoreError::EmptyAppend));
        }
        if let Some(write) = &request.idempotency {
            let existing = match self.records.get(&write.key) {
                Some(record) => Some(record.clone()),
                None => match stored_record(&write.key) {
                    Ok(found) => found,
                    Err(error) => return Plan::Answer(Err(error)),
                },
            };
            if let Some(record) = existing {
                return Plan::Answer(if record.request_digest == write.request_digest {
                    Ok(AppendOutcome::Duplicate(record))
                } else {
                    Err(StoreError::IdempotencyKeyReused { key: write.key.clone() })
                });
            }
        }
        let current = match self.versions.get(&request.stream) {
            Some(version) => *version,
            None => stored_version(request.stream),
        };
        if let ExpectedVersion::Exact(expected) = request.expected {
            if expected != current {
                return Plan::Answer(Err(StoreError::WrongExpectedVersion {
                    stream: request.stream,
                    expected,
                    actual: current,
                }));
            }
        }
        let mut events = Vec::with_capacity(request.events.len());
        for (i, new) in request.events.iter().enumerate() {
            let position = self.head.position + 1;
            let event =
                StoredEvent::seal(new.clone(), request.stream, position, current + 1 + i as u64, &self.head.hash);
            self.head = Head { position, hash: event.hash.clone() };
            events.push(event);
        }
        let version_after = current + request.events.len() as u64;
        self.versions.insert(request.stream, version_after);
        let record = request.idempotency.as_ref().map(|write| IdempotencyRecord {
            key: write.key.clone(),
            request_digest: write.request_digest.clone(),
            stream: request.stream,
            positions: events.iter().map(|e| e.position).collect(),
            response: write.response.clone(),
            // The time its events were recorded at (the engine's clock), not the wall clock.
            recorded_at: events.first().map(|e| e.recorded_at).unwrap_or_default(),
        });
        if let Some(record) = &record {
            self.records.insert(record.key.clone(), record.clone());
        }
        Plan::Commit(Commit { stream: request.stream, version_before: current, version_after, events, record })
    }

    /// The log's head after the appends planned so far.
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }

    /// The streams the planned appends changed, with their versions after the group.
    pub(crate) fn versions(&self) -> &HashMap<Uuid, u64> {
        &self.versions
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::store::{IdempotencyWrite, NewEvent, GENESIS_HASH};

    fn event(n: u8) -> NewEvent {
        NewEvent {
            id: Uuid::from_bytes([n; 16]),
            recorded_at: chrono::Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, u32::from(n)).unwrap(),
            actor: "dana.reyes".into(),
            event_type: "note_added".into(),
            schema_version: 1,
            data: json!({"n": n}),
        }
    }

    fn request(
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        key: Option<(&str, &str)>,
    ) -> AppendRequest {
        AppendRequest {
            stream,
            expected,
            events,
            idempotency: key.map(|(key, digest)| IdempotencyWrite {
                key: key.into(),
                request_digest: digest.into(),
                response: json!({"answer": key}),
            }),
        }
    }

    fn genesis() -> Head {
        Head { position: 0, hash: GENESIS_HASH.to_owned() }
    }

    fn none(_: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(None)
    }

    fn commit(plan: Plan) -> Commit {
        match plan {
            Plan::Commit(commit) => commit,
            Plan::Answer(answer) => panic!("expected a commit, got {answer:?}"),
        }
    }

    fn answer(plan: Plan) -> Result<AppendOutcome, StoreError> {
        match plan {
            Plan::Answer(answer) => answer,
            Plan::Commit(commit) => panic!("expected an answer, got a commit of {commit:?}"),
        }
    }

    #[test]
    fn a_commit_continues_positions_versions_and_the_chain() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut planner = AppendPlanner::new(Head { position: 7, hash: "f".repeat(64) });
        let first =
            commit(planner.plan(&request(a, ExpectedVersion::Exact(3), vec![event(1), event(2)], None), |_| 3, none));
        assert_eq!((first.version_before, first.version_after), (3, 5));
        assert_eq!(first.events.iter().map(|e| (e.position, e.version)).collect::<Vec<_>>(), [(8, 4), (9, 5)]);
        assert_eq!(first.events[0].prev_hash, "f".repeat(64));
        assert_eq!(first.events[1].prev_hash, first.events[0].hash);
        // The same hashes as sealing by hand.
        let by_hand = StoredEvent::seal(event(1), a, 8, 4, &"f".repeat(64));
        assert_eq!(first.events[0], by_hand);
        assert!(first.events.iter().all(|e| e.compute_hash() == e.hash));
        // A second stream continues the chain; a second append to `a` continues its version
        // without asking the store again.
        let second = commit(planner.plan(&request(b, ExpectedVersion::Any, vec![event(3)], None), |_| 0, none));
        assert_eq!((second.events[0].position, second.events[0].version), (10, 1));
        assert_eq!(second.events[0].prev_hash, first.events[1].hash);
        let third = commit(planner.plan(
            &request(a, ExpectedVersion::Exact(5), vec![event(4)], None),
            |_| panic!("the group knows the stream"),
            none,
        ));
        assert_eq!((third.version_before, third.version_after, third.events[0].position), (5, 6, 11));
        assert_eq!(planner.head(), &Head { position: 11, hash: third.events[0].hash.clone() });
        assert_eq!(planner.versions(), &HashMap::from([(a, 6), (b, 1)]));
    }

    #[test]
    fn a_keyed_commit_leaves_its_record() {
        let a = Uuid::from_u128(1);
        let mut planner = AppendPlanner::new(genesis());
        let done = commit(planner.plan(
            &request(a, ExpectedVersion::Exact(0), vec![event(1), event(2)], Some(("k", "d"))),
            |_| 0,
            none,
        ));
        let record = done.record.expect("a keyed append leaves a record");
        assert_eq!((record.key.as_str(), record.request_digest.as_str(), record.stream), ("k", "d", a));
        assert_eq!(record.positions, [1, 2]);
        assert_eq!(record.response, json!({"answer": "k"}));
        assert_eq!(record.recorded_at, event(1).recorded_at);
    }

    #[test]
    fn a_wrong_expected_version_is_refused_and_changes_nothing() {
        let a = Uuid::from_u128(1);
        let mut planner = AppendPlanner::new(genesis());
        let refused = answer(planner.plan(&request(a, ExpectedVersion::Exact(2), vec![event(1)], None), |_| 4, none));
        assert_eq!(refused, Err(StoreError::WrongExpectedVersion { stream: a, expected: 2, actual: 4 }));
        assert_eq!(planner.head(), &genesis());
        assert!(planner.versions().is_empty());
        // Within a group, the version an earlier append left is the one checked.
        commit(planner.plan(&request(a, ExpectedVersion::Exact(4), vec![event(2)], None), |_| 4, none));
        let refused = answer(planner.plan(&request(a, ExpectedVersion::Exact(4), vec![event(3)], None), |_| 4, none));
        assert_eq!(refused, Err(StoreError::WrongExpectedVersion { stream: a, expected: 4, actual: 5 }));
    }

    #[test]
    fn an_empty_append_is_refused() {
        let mut planner = AppendPlanner::new(genesis());
        let refused =
            answer(planner.plan(&request(Uuid::from_u128(1), ExpectedVersion::Any, vec![], None), |_| 0, none));
        assert_eq!(refused, Err(StoreError::EmptyAppend));
    }

    #[test]
    fn a_used_key_replays_the_same_request_and_refuses_another() {
        let a = Uuid::from_u128(1);
        let stored = IdempotencyRecord {
            key: "k".into(),
            request_digest: "d".into(),
            stream: a,
            positions: vec![1],
            response: json!({}),
            recorded_at: event(1).recorded_at,
        };
        let lookup = |key: &str| Ok((key == "k").then(|| stored.clone()));
        let mut planner = AppendPlanner::new(Head { position: 1, hash: "a".repeat(64) });
        // The key is checked before the version: a replay is answered even though the stream
        // has moved on.
        let replay = answer(planner.plan(
            &request(a, ExpectedVersion::Exact(0), vec![event(2)], Some(("k", "d"))),
            |_| 1,
            lookup,
        ));
        assert_eq!(replay, Ok(AppendOutcome::Duplicate(stored.clone())));
        let reused = answer(planner.plan(
            &request(a, ExpectedVersion::Exact(1), vec![event(2)], Some(("k", "other"))),
            |_| 1,
            lookup,
        ));
        assert_eq!(reused, Err(StoreError::IdempotencyKeyReused { key: "k".into() }));
        assert_eq!(planner.head().position, 1);
        // A key first used within the group is known to the appends after it.
        let first =
            commit(planner.plan(&request(a, ExpectedVersion::Any, vec![event(3)], Some(("new", "d"))), |_| 1, lookup));
        let again = answer(planner.plan(
            &request(a, ExpectedVersion::Any, vec![event(3)], Some(("new", "d"))),
            |_| 1,
            |_| panic!("the group knows the key"),
        ));
        assert_eq!(again, Ok(AppendOutcome::Duplicate(first.record.expect("keyed"))));
        let other =
            answer(planner.plan(&request(a, ExpectedVersion::Any, vec![event(3)], Some(("new", "x"))), |_| 1, lookup));
        assert_eq!(other, Err(StoreError::IdempotencyKeyReused { key: "new".into() }));
    }

    #[test]
    fn a_failed_record_lookup_answers_that_append() {
        let mut planner = AppendPlanner::new(genesis());
        let failed = answer(planner.plan(
            &request(Uuid::from_u128(1), ExpectedVersion::Any, vec![event(1)], Some(("k", "d"))),
            |_| 0,
            |_| Err(StoreError::Storage("disk gone".into())),
        ));
        assert_eq!(failed, Err(StoreError::Storage("disk gone".into())));
        assert_eq!(planner.head(), &genesis());
    }
}
