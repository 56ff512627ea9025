//! The OpenAPI document of the HTTP API, generated from Rust types with `utoipa` and served at
//! `GET /api/v1/openapi.json`; and the JSON Schema of the event envelope and of every event
//! type, generated with `schemars`, served at `GET /api/v1/schemas/events.json`.
//!
//! The operations are declared below on documentation-only functions, one per route, so the
//! handlers in `api.rs` stay as they are; their bodies are the types of [`schemas`]. What
//! `utoipa` cannot say from the types is added in [`finish`]: every problem a status can carry
//! (its `type` an enum taken from `ERROR_TABLE`, so the document cannot drift from the table),
//! the `type` tag of each command, the answers every route can give (401, 408, 503), and the
//! OpenAPI links that hand the id of a newly opened integration to the routes under it.
//! Committed copies live in `docs/`; a test fails when they differ from what the build makes.

pub mod events;
mod paths;
pub mod schemas;

use axum::Json;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::error_kind::ERROR_TABLE;

#[derive(OpenApi)]
#[openapi(
    info(title = "golive", description = "The system of record for self-hosted GitLab onboardings."),
    paths(
        paths::open,
        paths::list,
        paths::get_state,
        paths::command,
        paths::history,
        paths::state_at,
        paths::diagnose,
        paths::probe,
        paths::start_check,
        paths::create_intake_link,
        paths::shred,
        paths::reveal,
        paths::board,
        paths::calendar,
        paths::insights,
        paths::audit,
        paths::stream,
        paths::verify,
        paths::export,
        paths::register_playbook,
        paths::list_playbooks,
        paths::get_playbook,
        paths::create_token,
        paths::list_tokens,
        paths::revoke_token_query,
        paths::revoke_token,
        paths::add_subscription,
        paths::list_subscriptions,
        paths::get_subscription,
        paths::remove_subscription,
        paths::pause_subscription,
        paths::resume_subscription,
        paths::replay_subscription,
        paths::add_rule,
        paths::list_rules,
        paths::remove_rule,
        paths::notification_journal,
        paths::openapi_json,
        paths::events_schema,
        paths::receive,
        paths::healthz,
        paths::readyz,
        paths::metrics,
    ),
    components(schemas(
        schemas::ConfirmPrerequisites,
        schemas::RegisterApplication,
        schemas::ProvideApplicationSecret,
        schemas::SetInstanceUrl,
        schemas::ProvideAccessToken,
        schemas::NoFields,
        schemas::EvaluateNetworkPolicy,
        schemas::EstablishVpcPeering,
        schemas::EstablishVpn,
        schemas::ConfigureFirewall,
        schemas::IssueWebhookCredentials,
        schemas::CreateWebhook,
        schemas::RecordApiCheck,
        schemas::RecordManualTest,
        schemas::ValidateResponse,
        schemas::ReportFeedback,
        schemas::ResolveFeedback,
        schemas::ScheduleGoLive,
        schemas::AssignOwner,
        schemas::AddNote,
        schemas::Block,
        schemas::Unblock,
        schemas::RotateCredential,
        schemas::Cancel,
        schemas::ChangePublicUrl,
    ))
)]
struct ApiDoc;

/// The statuses every route under `/api/v1` may answer besides its own: no or a bad token,
/// a body that did not arrive in time, overload, a timeout or a storage failure.
const COMMON_API_STATUSES: [u16; 3] = [401, 408, 503];

/// The whole document, as served and as committed in `docs/openapi.json`.
pub fn document_value() -> Value {
    let generated = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    finish(generated)
}

/// Fills in what the derive cannot say (see the module's header).
fn finish(mut doc: Value) -> Value {
    apply_rules(&mut doc);
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    doc["openapi"] = json!("3.1.0");
    let components = doc["components"].as_object_mut().expect("components");
    components.insert(
        "securitySchemes".into(),
        json!({"bearer": {"type": "http", "scheme": "bearer", "description": "An API token; GETs also accept the dashboard's session cookie"}}),
    );
    let schemas = components.get_mut("schemas").and_then(Value::as_object_mut).expect("schemas");
    add_problem_schemas(schemas);
    tag_commands(schemas);
    doc["security"] = json!([{"bearer": []}]);

    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().expect("a path item").iter_mut() {
            let api = path.starts_with("/api/");
            let responses = operation["responses"].as_object_mut().expect("responses");
            if api {
                for status in COMMON_API_STATUSES {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| json!({"description": common_description(status)}));
                }
            }
            if path.starts_with("/hooks/") {
                // A bad or missing token, and a full pool or byte budget.
                for status in [401, 408, 503] {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| json!({"description": common_description(status)}));
                }
            }
            if path == "/readyz" {
                responses.entry("503".to_owned()).or_insert_with(|| json!({"description": "Not ready"}));
            }
            for parameter in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                bound_query_number(path, parameter);
            }
            let responses = operation["responses"].as_object_mut().expect("responses");
            for (status, response) in responses.iter_mut() {
                let code: u16 = status.parse().expect("numeric statuses");
                if code >= 400 {
                    response["content"] = json!({"application/problem+json": {"schema": {"$ref": format!("#/components/schemas/Problem{code}")}}});
                    if code == 503 {
                        response["headers"] = json!({"Retry-After": {"description": "Seconds to wait, when golive knows", "required": false, "schema": {"type": "integer"}}});
                    }
                }
            }
            if path == "/api/v1/integrations/{id}/commands" && method == "post" {
                operation["requestBody"]["content"]["application/json"]["schema"] =
                    json!({"$ref": "#/components/schemas/Command"});
            }
            if path == "/api/v1/integrations" && method == "post" {
                operation["responses"]["201"]["links"] = integration_links();
            }
        }
    }
    doc
}

/// Numbers in a query are parsed as the Rust type the handler reads (`u32`, `u64`, `usize`),
/// with no `int32`/`int64` limit; the schema says exactly that range, so that a generator's
/// out-of-range value is one the server refuses.
fn bound_query_number(path: &str, parameter: &mut Value) {
    let is_integer = |schema: &Value| match &schema["type"] {
        Value::String(t) => t == "integer",
        Value::Array(types) => types.contains(&json!("integer")),
        _ => false,
    };
    if parameter["in"] != "query" || !is_integer(&parameter["schema"]) {
        return;
    }
    let name = parameter["name"].as_str().unwrap_or_default();
    let (minimum, maximum) = match (path, name) {
        (_, "stalled_days") => (0, u64::from(u32::MAX)),
        ("/api/v1/playbooks/{id}", "version") => (1, u64::from(u32::MAX)),
        _ => (0, u64::MAX),
    };
    parameter["schema"] = json!({"type": "integer", "minimum": minimum, "maximum": maximum});
}

/// Replaces every marker pattern (`"@short_text"`) with the keywords of its rule.
fn apply_rules(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let marker = map.get("pattern").and_then(Value::as_str).filter(|p| p.starts_with('@')).map(str::to_owned);
            if let Some(marker) = marker {
                let (_, keywords) = schemas::RULES
                    .iter()
                    .find(|(name, _)| *name == marker)
                    .unwrap_or_else(|| panic!("no rule {marker}"));
                let keywords: Map<String, Value> = serde_json::from_str(keywords).expect("rules are JSON objects");
                map.extend(keywords);
            }
            map.values_mut().for_each(apply_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(apply_rules),
        _ => {}
    }
}

fn common_description(status: u16) -> &'static str {
    match status {
        401 => "Missing or bad token",
        408 => "The body did not arrive in time",
        _ => "Overloaded, timed out or storage unavailable; see Retry-After",
    }
}

/// `Problem` (any row of `ERROR_TABLE`) and one `Problem<status>` per status in the table,
/// whose `type` is limited to that status's rows.
fn add_problem_schemas(schemas: &mut Map<String, Value>) {
    let problem = |types: Vec<&str>, status: Option<u16>| {
        let mut status_schema = json!({"type": "integer", "minimum": 400, "maximum": 599});
        if let Some(status) = status {
            status_schema = json!({"type": "integer", "const": status});
        }
        json!({
            "type": "object",
            "description": "An RFC 9457 problem; `type` is stable (src/error_kind.rs). Extras: `field` (an invalid field), `unmet` (a guard's unmet requirements), `current_version` (412).",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "enum": types},
                "title": {"type": "string"},
                "status": status_schema,
                "detail": {"type": "string"},
                "field": {"type": "string"},
                "unmet": {"type": "array", "items": {"$ref": "#/components/schemas/Unmet"}},
                "current_version": {"type": "integer", "minimum": 0},
            },
        })
    };
    schemas.insert("Problem".into(), problem(ERROR_TABLE.iter().map(|r| r.problem_type).collect(), None));
    let mut statuses: Vec<u16> = ERROR_TABLE.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        let types = ERROR_TABLE.iter().filter(|r| r.status == status).map(|r| r.problem_type).collect();
        schemas.insert(format!("Problem{status}"), problem(types, Some(status)));
    }
    schemas.insert(
        "Unmet".into(),
        json!({"type": "object", "required": ["id", "label"], "properties": {"id": {"type": "string"}, "label": {"type": "string"}}}),
    );
}

/// Gives each command schema its `type` (one schema per command name) and builds `Command`,
/// the `oneOf` the commands route takes, with a discriminator on `type`.
fn tag_commands(schemas: &mut Map<String, Value>) {
    let mut one_of = Vec::new();
    let mut mapping = Map::new();
    for (name, fields) in schemas::COMMANDS {
        let mut schema = schemas.get(fields).cloned().expect("every command's fields are a component");
        let title = format!("Command_{name}");
        schema["properties"]["type"] = json!({"type": "string", "const": name});
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        let mut required: Vec<Value> = required;
        required.insert(0, json!("type"));
        schema["required"] = Value::Array(required);
        schema["additionalProperties"] = json!(false);
        let reference = format!("#/components/schemas/{title}");
        one_of.push(json!({"$ref": reference}));
        mapping.insert(name.to_owned(), json!(reference));
        schemas.insert(title, schema);
    }
    for (_, fields) in schemas::COMMANDS {
        schemas.remove(fields);
    }
    schemas.insert(
        "Command".into(),
        json!({
            "description": "A v1 command: `{\"type\": \"<name>\", ...fields}`. Unknown fields are refused (400).",
            "oneOf": one_of,
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }),
    );
}

/// The links from an opened integration to the routes that take its id. Not to `reveal`: a
/// new integration holds no secret, and that route's 404 ("no such secret") would read as the
/// integration itself missing.
fn integration_links() -> Value {
    let mut links = Map::new();
    for (name, operation) in [
        ("GetState", "get_state"),
        ("ExecuteCommand", "command"),
        ("History", "history"),
        ("StateAt", "state_at"),
        ("Diagnose", "diagnose"),
        ("Probe", "probe"),
        ("StartCheck", "start_check"),
        ("Shred", "shred"),
    ] {
        links.insert(name.to_owned(), json!({"operationId": operation, "parameters": {"id": "$response.body#/id"}}));
    }
    Value::Object(links)
}

/// `GET /api/v1/openapi.json` (viewer).
pub async fn document(_who: super::Principal) -> Json<Value> {
    Json(document_value())
}

/// `GET /api/v1/schemas/events.json` (viewer).
pub async fn events_document(_who: super::Principal) -> Json<Value> {
    Json(events::schema_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares `docs/<name>` with what this build generates; with `GOLIVE_WRITE_DOCS=1`
    /// writes it instead, which is how the committed copies are regenerated.
    fn check_committed_copy(name: &str, generated: &Value) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(name);
        let text = serde_json::to_string_pretty(generated).expect("serializes") + "\n";
        if std::env::var_os("GOLIVE_WRITE_DOCS").is_some() {
            std::fs::write(&path, &text).expect("docs/ is writable");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/{name} differs from what this build generates; regenerate it with \
             `GOLIVE_WRITE_DOCS=1 cargo test --lib committed_copies` and commit the result"
        );
    }

    #[test]
    fn committed_copies_match_the_build() {
        check_committed_copy("openapi.json", &document_value());
        check_committed_copy("events.schema.json", &events::schema_value());
    }

    #[test]
    fn every_problem_type_of_the_table_is_in_the_document() {
        let doc = document_value();
        let types = doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"].as_array().unwrap().clone();
        assert_eq!(types.len(), ERROR_TABLE.len());
        for row in ERROR_TABLE {
            let per_status =
                &doc["components"]["schemas"][format!("Problem{}", row.status)]["properties"]["type"]["enum"];
            assert!(per_status.as_array().unwrap().contains(&json!(row.problem_type)), "{row:?}");
        }
    }

    #[test]
    fn every_public_command_has_a_schema() {
        let doc = document_value();
        let names: Vec<&str> = schemas::COMMANDS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, crate::domain::PUBLIC_COMMAND_TYPES.to_vec());
        let one_of = doc["components"]["schemas"]["Command"]["oneOf"].as_array().unwrap();
        assert_eq!(one_of.len(), names.len());
    }
}
