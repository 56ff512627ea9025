//! The stored envelope of an event and the hash chain over the whole log.
//!
//! Each envelope's `hash` is SHA-256 over a canonical, length-prefixed encoding of every other
//! field (including `prev_hash`), so editing any field of any stored event, or removing or
//! reordering events, breaks the chain at that position.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as the store keeps it and as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Global position: 1, 2, 3, ... without gaps.
    pub position: u64,
    pub integration_id: Uuid,
    /// The event's number within its integration: 1 for the first.
    pub version: u64,
    pub id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// An event to append: everything but what the store assigns (position, version, hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    pub id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
}

fn put_field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// Writes `value` as JSON with object keys sorted, whatever serde_json's map order is.
pub fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl StoredEvent {
    /// The hash this envelope must carry, computed from all its other fields.
    pub fn compute_hash(&self) -> String {
        let mut hasher = Sha256::new();
        put_field(&mut hasher, b"golive-event-v1");
        put_field(&mut hasher, &self.position.to_be_bytes());
        put_field(&mut hasher, self.integration_id.as_bytes());
        put_field(&mut hasher, &self.version.to_be_bytes());
        put_field(&mut hasher, self.id.as_bytes());
        put_field(&mut hasher, self.recorded_at.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        put_field(&mut hasher, self.actor.as_bytes());
        put_field(&mut hasher, self.event_type.as_bytes());
        put_field(&mut hasher, &self.schema_version.to_be_bytes());
        let mut data = String::new();
        canonical_json(&self.data, &mut data);
        put_field(&mut hasher, data.as_bytes());
        put_field(&mut hasher, self.prev_hash.as_bytes());
        hex::encode(hasher.finalize())
    }

    /// Builds the envelope for `event` at `position`/`version`, chained after `prev_hash`.
    pub fn seal(event: NewEvent, stream: Uuid, position: u64, version: u64, prev_hash: &str) -> StoredEvent {
        let mut stored = StoredEvent {
            position,
            integration_id: stream,
            version,
            id: event.id,
            recorded_at: event.recorded_at,
            actor: event.actor,
            event_type: event.event_type,
            schema_version: event.schema_version,
            data: event.data,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        stored.hash = stored.compute_hash();
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"z":1,"y":2}],"c":"x"}}"#).unwrap();
        let mut out = String::new();
        canonical_json(&value, &mut out);
        assert_eq!(out, r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#);
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let event = NewEvent {
            id: Uuid::from_u128(1),
            recorded_at: chrono::DateTime::from_timestamp(1_764_417_600, 0).unwrap(),
            actor: "rep".into(),
            event_type: "note_added".into(),
            schema_version: 1,
            data: serde_json::json!({"text": "hi"}),
        };
        let stored = StoredEvent::seal(event, Uuid::from_u128(2), 1, 1, GENESIS_HASH);
        assert_eq!(stored.hash, stored.compute_hash());
        type Mutation = Box<dyn Fn(&mut StoredEvent)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|e| e.position += 1),
            Box::new(|e| e.integration_id = Uuid::from_u128(3)),
            Box::new(|e| e.version += 1),
            Box::new(|e| e.id = Uuid::from_u128(4)),
            Box::new(|e| e.recorded_at += chrono::Duration::nanoseconds(1)),
            Box::new(|e| e.actor.push('x')),
            Box::new(|e| e.event_type.push('x')),
            Box::new(|e| e.schema_version += 1),
            Box::new(|e| e.data = serde_json::json!({"text": "ho"})),
            Box::new(|e| e.prev_hash = "1".repeat(64)),
        ];
        for mutate in mutations {
            let mut changed = stored.clone();
            mutate(&mut changed);
            assert_ne!(changed.compute_hash(), stored.hash);
        }
    }
}
