//! Between domain events and stored envelopes: encoding, decoding and upcasting.
//!
//! Stored payloads carry a `schema_version`. Reading one written by an older golive runs it
//! through the upcasters registered for its type, one version step at a time, until it has the
//! current shape; a payload from a newer golive is refused rather than misread.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{Event, EVENT_SCHEMA_VERSION};
use crate::store::{NewEvent, StoredEvent};

/// Turns a payload of `event_type` at `from_version` into its shape at `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(Value) -> Value,
}

/// The upcasters of this build. Schema version 1 is the first, so there is none yet; a change
/// of an event's payload adds one here together with a bump of `EVENT_SCHEMA_VERSION`.
pub const UPCASTERS: &[Upcaster] = &[];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("event at position {position} has schema version {version}, newer than this golive ({EVENT_SCHEMA_VERSION}): upgrade golive")]
    FromTheFuture { position: u64, version: u32 },
    #[error("event at position {position} ({event_type} v{version}) has no upcaster to v{}", version + 1)]
    NoUpcaster { position: u64, event_type: String, version: u32 },
    #[error("event at position {position} ({event_type}) cannot be decoded: {message}")]
    Undecodable { position: u64, event_type: String, message: String },
}

/// Brings a payload up to the current schema with `upcasters`.
pub fn upcast_with(
    upcasters: &[Upcaster],
    position: u64,
    event_type: &str,
    mut version: u32,
    mut data: Value,
) -> Result<Value, CodecError> {
    if version > EVENT_SCHEMA_VERSION {
        return Err(CodecError::FromTheFuture { position, version });
    }
    while version < EVENT_SCHEMA_VERSION {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from_version == version)
            .ok_or_else(|| CodecError::NoUpcaster { position, event_type: event_type.to_owned(), version })?;
        data = (step.upcast)(data);
        version += 1;
    }
    Ok(data)
}

/// Decodes a stored envelope into the domain event it records.
pub fn decode(stored: &StoredEvent) -> Result<Event, CodecError> {
    decode_with(UPCASTERS, stored)
}

pub fn decode_with(upcasters: &[Upcaster], stored: &StoredEvent) -> Result<Event, CodecError> {
    let data = upcast_with(upcasters, stored.position, &stored.event_type, stored.schema_version, stored.data.clone())?;
    serde_json::from_value(json!({"type": stored.event_type, "data": data})).map_err(|e| CodecError::Undecodable {
        position: stored.position,
        event_type: stored.event_type.clone(),
        message: e.to_string(),
    })
}

/// Encodes a domain event for appending.
pub fn encode(event: &Event, id: Uuid, recorded_at: DateTime<Utc>, actor: &str) -> NewEvent {
    let mut value = serde_json::to_value(event).expect("domain events always serialize");
    let data = value.get_mut("data").map(Value::take).unwrap_or(Value::Null);
    NewEvent {
        id,
        recorded_at,
        actor: actor.to_owned(),
        event_type: event.type_name().to_owned(),
        schema_version: EVENT_SCHEMA_VERSION,
        data,
    }
}
