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

/// The first schema version golive ever wrote.
pub const FIRST_SCHEMA_VERSION: u32 = 1;

/// Turns a payload of `event_type` at `from_version` into its shape at `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(Value) -> Value,
}

/// The upcasters of this build, one per changed payload and version step. A change of an
/// event's payload adds one here together with a bump of `EVENT_SCHEMA_VERSION`; a payload whose
/// shape did not change in a step needs none (see [`upcast_with`]). Old steps stay forever: a log
/// written by any earlier build must still load.
pub const UPCASTERS: &[Upcaster] =
    &[Upcaster { event_type: "credential_rotated", from_version: 1, upcast: credential_rotated_v1_to_v2 }];

/// `credential_rotated` v1 carried `replacement`, `admin`, `webhook` and `bound_to` for every
/// credential; v2 keeps only the fields of the credential rotated, and calls the webhook
/// token's stored form `issued`.
fn credential_rotated_v1_to_v2(data: Value) -> Value {
    let Value::Object(mut fields) = data else { return data };
    let keep: &[&str] = match fields.get("credential").and_then(Value::as_str) {
        Some("application_secret") => &["credential", "replacement", "bound_to"],
        Some("access_token") => &["credential", "replacement", "admin", "bound_to"],
        Some("webhook_token") => {
            if let Some(issued) = fields.remove("webhook") {
                fields.insert("issued".to_owned(), issued);
            }
            &["credential", "issued"]
        }
        // Not a payload any golive wrote: left as it is, for decoding to refuse with its reason.
        _ => return Value::Object(fields),
    };
    fields.retain(|name, _| keep.contains(&name.as_str()));
    Value::Object(fields)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("event at position {position} has schema version {version}, newer than this golive ({EVENT_SCHEMA_VERSION}): upgrade golive")]
    FromTheFuture { position: u64, version: u32 },
    #[error(
        "event at position {position} has schema version {version}; golive's versions start at {FIRST_SCHEMA_VERSION}"
    )]
    NoSuchVersion { position: u64, version: u32 },
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
    if version < FIRST_SCHEMA_VERSION {
        return Err(CodecError::NoSuchVersion { position, version });
    }
    // A step without an upcaster for this type leaves its payload as it is: most steps change
    // one event type and no other.
    while version < EVENT_SCHEMA_VERSION {
        if let Some(step) = upcasters.iter().find(|u| u.event_type == event_type && u.from_version == version) {
            data = (step.upcast)(data);
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::CredentialRotated;

    fn token() -> Value {
        json!({"fingerprint": "hmac:8ead882854fb3747", "kind": "access_token", "sealed": "c2VhbGVk"})
    }

    fn issued() -> Value {
        json!({"signing_key": null, "token_digest": "e7".repeat(32), "webhook_url": "https://golive.example/hooks/gitlab/x"})
    }

    fn binding() -> Value {
        json!({"origin": "https://gitlab.example", "ca_fingerprint": null})
    }

    fn decoded(version: u32, data: Value) -> Result<Event, CodecError> {
        decode_parts(UPCASTERS, 7, "credential_rotated", version, data)
    }

    /// Every shape golive 1 wrote for `credential_rotated`, and what it says in version 2.
    #[test]
    fn every_v1_rotation_upcasts_to_the_v2_shape_that_says_the_same() {
        let cases = [
            (
                json!({"credential": "access_token", "replacement": null, "admin": null, "webhook": null}),
                json!({"credential": "access_token", "replacement": null, "admin": null}),
            ),
            (
                json!({"credential": "access_token", "replacement": token(), "admin": true, "webhook": null, "bound_to": binding()}),
                json!({"credential": "access_token", "replacement": token(), "admin": true, "bound_to": binding()}),
            ),
            (
                json!({"credential": "application_secret", "replacement": token(), "admin": null, "webhook": null}),
                json!({"credential": "application_secret", "replacement": token()}),
            ),
            (
                json!({"credential": "webhook_token", "replacement": null, "admin": null, "webhook": issued()}),
                json!({"credential": "webhook_token", "issued": issued()}),
            ),
        ];
        for (v1, v2) in cases {
            assert_eq!(credential_rotated_v1_to_v2(v1.clone()), v2, "upcast of {v1}");
            let from_v1 = decoded(1, v1.clone()).unwrap_or_else(|e| panic!("{v1} does not decode: {e}"));
            let from_v2 = decoded(2, v2.clone()).unwrap();
            assert_eq!(from_v1, from_v2);
            // What this build writes for the same fact is the v2 shape, byte for byte.
            let written = encode(&from_v2, uuid::Uuid::nil(), chrono::DateTime::UNIX_EPOCH, "test");
            assert_eq!((written.schema_version, written.data), (EVENT_SCHEMA_VERSION, v2));
        }
        let Event::CredentialRotated(CredentialRotated::AccessToken { admin, replacement, .. }) =
            decoded(1, json!({"credential": "access_token", "replacement": token(), "admin": true, "webhook": null}))
                .unwrap()
        else {
            panic!("not an access token rotation");
        };
        assert_eq!((admin, replacement.is_some()), (Some(true), true));
    }

    #[test]
    fn a_payload_no_golive_wrote_is_refused_with_its_position_not_misread() {
        for data in [json!({"credential": "ssh_key"}), json!("not an object"), json!({"credential": "webhook_token"})] {
            let error = decoded(1, data.clone()).expect_err("decoded");
            assert!(matches!(error, CodecError::Undecodable { position: 7, .. }), "{data}: {error}");
        }
    }

    #[test]
    fn a_payload_from_a_newer_golive_is_refused() {
        let error = decoded(EVENT_SCHEMA_VERSION + 1, json!({})).expect_err("decoded");
        assert_eq!(error, CodecError::FromTheFuture { position: 7, version: EVENT_SCHEMA_VERSION + 1 });
    }

    #[test]
    fn a_version_before_the_first_is_refused() {
        let error = decoded(0, json!({"credential": "access_token"})).expect_err("decoded");
        assert_eq!(error, CodecError::NoSuchVersion { position: 7, version: 0 });
    }

    /// Every step from the first version to the current one is accounted for: a payload change
    /// that forgot its upcaster shows up as a version with no entry in `EVENT_SCHEMA_VERSION`'s
    /// list of changes, which this test keeps in step with `UPCASTERS`.
    #[test]
    fn every_version_step_that_changed_a_payload_has_its_upcasters() {
        let steps_with_changes: &[(u32, &[&str])] = &[(1, &["credential_rotated"])];
        assert_eq!(steps_with_changes.len() as u32, EVENT_SCHEMA_VERSION - FIRST_SCHEMA_VERSION);
        for (from_version, types) in steps_with_changes {
            for event_type in *types {
                assert!(
                    UPCASTERS.iter().any(|u| u.from_version == *from_version && u.event_type == *event_type),
                    "{event_type} v{from_version} has no upcaster"
                );
            }
        }
        assert_eq!(UPCASTERS.len(), steps_with_changes.iter().map(|(_, t)| t.len()).sum::<usize>());
    }

    #[test]
    fn a_type_without_an_upcaster_for_a_step_passes_it_unchanged() {
        let note = json!({"text": "a note"});
        assert_eq!(upcast_with(UPCASTERS, 1, "note_added", 1, note.clone()).unwrap(), note);
    }

    /// Tolerant reading: a field the payload does not know (a later golive's addition of the same
    /// version, or a removed one) is ignored rather than refused.
    #[test]
    fn unknown_fields_in_a_stored_payload_are_ignored() {
        let data = json!({"ok": true, "detail": null, "added_later": 1});
        let event = decode_parts(UPCASTERS, 1, "api_check_recorded", EVENT_SCHEMA_VERSION, data).unwrap();
        assert!(matches!(event, Event::ApiCheckRecorded(check) if check.ok));
    }
}
