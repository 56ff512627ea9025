//! Chain verification: recompute every hash and link, check positions and versions.

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use super::{EventStore, StoreError, GENESIS_HASH};

/// The result of verifying the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub valid: bool,
    /// The hash of the last event checked (the head when valid).
    pub head: String,
    pub events_checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the log passes through `expected_hash` (when one was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extends_expected: Option<bool>,
}

/// Verifies the whole log. `expect` is a hash recorded earlier (kept outside golive): the log
/// must still contain it, which detects a rewrite that recomputed every later hash.
pub async fn verify_chain(store: &dyn EventStore, expect: Option<&str>) -> Result<VerifyReport, StoreError> {
    let mut after = 0u64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0u64;
    let mut versions: HashMap<Uuid, u64> = HashMap::new();
    let mut seen_expected = expect.is_none();
    let bad = |position: u64, reason: String, head: String, checked: u64| VerifyReport {
        valid: false,
        head,
        events_checked: checked,
        first_bad_position: Some(position),
        reason: Some(reason),
        extends_expected: None,
    };
    loop {
        let batch = store.read_all(after, 4096).await?;
        if batch.is_empty() {
            break;
        }
        for event in batch {
            let expected_position = after + 1;
            if event.position != expected_position {
                return Ok(bad(
                    expected_position,
                    format!("position {} where {expected_position} was due", event.position),
                    prev_hash,
                    checked,
                ));
            }
            if event.prev_hash != prev_hash {
                return Ok(bad(
                    event.position,
                    "prev_hash does not match the previous event's hash".into(),
                    prev_hash,
                    checked,
                ));
            }
            if event.compute_hash() != event.hash {
                return Ok(bad(event.position, "hash does not match the event's contents".into(), prev_hash, checked));
            }
            let version = versions.entry(event.integration_id).or_insert(0);
            if event.version != *version + 1 {
                return Ok(bad(
                    event.position,
                    format!("version {} where {} was due", event.version, *version + 1),
                    prev_hash,
                    checked,
                ));
            }
            *version = event.version;
            if expect == Some(event.hash.as_str()) {
                seen_expected = true;
            }
            prev_hash = event.hash;
            after = event.position;
            checked += 1;
        }
    }
    let head = store.head().await?;
    if head.position != after {
        return Ok(bad(
            after + 1,
            format!("the head says {} but the log ends at {after}", head.position),
            prev_hash,
            checked,
        ));
    }
    Ok(VerifyReport {
        valid: seen_expected,
        head: prev_hash,
        events_checked: checked,
        first_bad_position: None,
        reason: (!seen_expected)
            .then(|| "the expected hash is not in the log: it was rewritten or truncated".to_owned()),
        extends_expected: expect.map(|_| seen_expected),
    })
}
