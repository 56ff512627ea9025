//! The request that opens an integration, parsed like a command.
//!
//! A request names its playbook in one of three ways: not at all (the server's default), by
//! reference to a registered playbook (`playbook_id`, optionally `playbook_version`), or inline
//! (`playbook`, the whole playbook). Who may use which is the caller's role, decided at the
//! edge: [`playbook_fields_in`] says whether a request carries playbook fields of its own.

use serde_json::Value;

use super::command::{parse_fields, OpenIntegration};
use super::playbook::{PlaybookId, PlaybookRef};
use super::rejection::Rejection;

/// The fields of a playbook. A request to open an integration that names any of them at its
/// top level, or carries `playbook`, brings a playbook of its own.
/// (`id` and `version` alone are too generic to say so, and are unknown fields anyway.)
pub const PLAYBOOK_FIELDS: [&str; 10] = [
    "playbook",
    "application_name",
    "redirect_uri",
    "required_scopes",
    "required_token_scopes",
    "required_triggers",
    "scenarios",
    "monitoring_days",
    "probe_interval_minutes",
    "allow_http",
];

/// The first playbook field `body` carries of its own (`playbook` or a playbook's field at the
/// top level), if any. `playbook_id` and `playbook_version` are references, not fields.
pub fn playbook_fields_in(body: &Value) -> Option<&'static str> {
    let object = body.as_object()?;
    PLAYBOOK_FIELDS.into_iter().find(|field| object.contains_key(*field))
}

/// Parses the body of `POST /api/v1/integrations` without a registry reference (the replay
/// path of fixtures and the domain bench): `playbook_id` is an unknown field here.
pub fn parse_open_request(body: Value) -> Result<OpenIntegration, Rejection> {
    if !body.is_object() {
        return Err(Rejection::Malformed("the request must be a JSON object".into()));
    }
    let request: OpenIntegration = parse_fields(body)?;
    if let Some(playbook) = &request.playbook {
        playbook.check().map_err(|(field, error)| Rejection::invalid(field, error.0))?;
    }
    Ok(request)
}

/// Parses the body of `POST /api/v1/integrations`, lifting out the reference to a registered
/// playbook (`playbook_id`, `playbook_version`), which the engine resolves.
pub fn parse_open_request_with_reference(mut body: Value) -> Result<(OpenIntegration, Option<PlaybookRef>), Rejection> {
    let Some(object) = body.as_object_mut() else {
        return Err(Rejection::Malformed("the request must be a JSON object".into()));
    };
    let id = object.remove("playbook_id");
    let version = object.remove("playbook_version");
    let reference = match (id, version) {
        (None, None) => None,
        (None, Some(_)) => return Err(Rejection::invalid("playbook_version", "needs playbook_id")),
        (Some(id), version) => {
            let id = id
                .as_str()
                .ok_or_else(|| Rejection::invalid("playbook_id", "must be a string"))
                .and_then(|text| PlaybookId::parse(text).map_err(|e| Rejection::invalid("playbook_id", e.0)))?;
            let version = match version {
                None | Some(Value::Null) => None,
                Some(value) => {
                    Some(value.as_u64().and_then(|v| u32::try_from(v).ok()).filter(|v| *v >= 1).ok_or_else(|| {
                        Rejection::invalid("playbook_version", "must be a whole number from 1 to 4294967295")
                    })?)
                }
            };
            Some(PlaybookRef { id, version })
        }
    };
    if reference.is_some() && object.contains_key("playbook") {
        return Err(Rejection::invalid("playbook", "give either playbook_id or playbook, not both"));
    }
    Ok((parse_open_request(body)?, reference))
}
