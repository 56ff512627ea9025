//! Between domain events and stored envelopes: encoding, decoding and upcasting.
//!
//! Stored payloads carry a `schema_version`. Reading one written by an older golive runs it
//! through the upcasters registered for its type, one version step at a time, until it has the
//! current shape; a payload from a newer golive is refused rather than misread.

use chrono::{DateTime, Utc};
use serde_json::Value;
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
    decode_parts(upcasters, stored.position, &stored.event_type, stored.schema_version, stored.data.clone())
}

/// Decodes an envelope it may consume (no copy of the payload): the replay path.
pub fn decode_owned(stored: StoredEvent) -> Result<Event, CodecError> {
    decode_parts(UPCASTERS, stored.position, &stored.event_type, stored.schema_version, stored.data)
}

fn decode_parts(
    upcasters: &[Upcaster],
    position: u64,
    event_type: &str,
    schema_version: u32,
    data: Value,
) -> Result<Event, CodecError> {
    let data = upcast_with(upcasters, position, event_type, schema_version, data)?;
    // Hand serde the tag before the content: a JSON object would put "data" first (keys sort),
    // which makes serde buffer the whole payload before it can pick the variant.
    let fields = [("type", Value::String(event_type.to_owned())), ("data", data)];
    let deserializer = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(fields.into_iter());
    serde::Deserialize::deserialize(deserializer).map_err(|e: serde_json::Error| CodecError::Undecodable {
        position,
        event_type: event_type.to_owned(),
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
