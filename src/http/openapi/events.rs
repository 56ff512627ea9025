//! The JSON Schema of the stored event envelope and of every event type, generated with
//! `schemars` from the domain's own `Event` (whose payload types derive `JsonSchema`), so the
//! schema cannot drift from what the engine writes.
//!
//! The envelope's `type` and `data` travel side by side, as `Event`'s serde tagging has them:
//! the schema of the envelope is the common fields plus, for each event type, `type` fixed
//! to its name and `data` of that type's shape.

use schemars::{generate::SchemaSettings, Schema};
use serde_json::{json, Value};

use crate::domain::{Event, EVENT_SCHEMA_VERSION};

/// The schema document served at `/api/v1/schemas/events.json` and committed in
/// `docs/events.schema.json`.
pub fn schema_value() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let event: Schema = generator.into_root_schema_for::<Event>();
    let mut event = event.to_value();
    // The definitions move to the document's top level, beside the envelope.
    let defs = event.as_object_mut().and_then(|o| o.remove("$defs")).unwrap_or_else(|| json!({}));
    if let Some(map) = event.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    let defs_value = {
        let mut defs = defs;
        if let Some(map) = defs.as_object_mut() {
            map.insert("Event".to_owned(), event);
        }
        defs
    };
    let old_shapes: Vec<serde_json::Value> = crate::engine::UPCASTERS
        .iter()
        .map(|u| {
            json!({
                "properties": {"type": {"const": u.event_type}, "schema_version": {"maximum": u.from_version}},
                "required": ["type", "schema_version"],
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://golive.invalid/schemas/events.json",
        "title": "golive event envelope",
        "description": format!(
            "An event as stored and as sent on the wire (history, audit, export, the event stream). \
             `hash` is SHA-256 over every other field (hex); `schema_version` {EVENT_SCHEMA_VERSION} is what \
             this build writes. `type` and `data` follow `#/$defs/Event`, except for an event written \
             by an older golive in a shape that changed since: it keeps its `schema_version` and that \
             version's `data`, as the hash requires (version 1's `credential_rotated` carried \
             `replacement`, `admin`, `webhook` (version 2's `issued`) and `bound_to` for every \
             credential); golive upcasts it when reading."
        ),
        "type": "object",
        "required": ["position", "integration_id", "version", "id", "recorded_at", "actor", "type",
                     "schema_version", "data", "prev_hash", "hash"],
        "properties": {
            "position": {"type": "integer", "minimum": 1, "description": "Global position: 1, 2, 3, ... without gaps"},
            "integration_id": {"type": "string", "format": "uuid"},
            "version": {"type": "integer", "minimum": 1, "description": "The event's number within its integration"},
            "id": {"type": "string", "format": "uuid"},
            "recorded_at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string", "minLength": 1},
            "type": {"type": "string", "pattern": "^[a-z_]+$"},
            "schema_version": {"type": "integer", "minimum": 1, "maximum": EVENT_SCHEMA_VERSION},
            "data": {},
            "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
        "additionalProperties": false,
        // Old shapes are exactly the (type, version) pairs an upcaster reads.
        "if": {"anyOf": old_shapes},
        "then": true,
        "else": {"$ref": "#/$defs/Event"},
        "$defs": defs_value,
    })
}
