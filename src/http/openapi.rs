//! `GET /api/v1/openapi.json`: every contract route with its status codes, written by hand
//! (no download at build time).

use axum::Json;
use serde_json::{json, Map, Value};

fn op(summary: &str, role: &str, codes: &[u16]) -> Value {
    let mut responses = Map::new();
    for code in codes {
        let description = match code {
            200 => "OK",
            201 => "Created",
            204 => "No content",
            400 => "Malformed JSON, unknown type or invalid field (problem+json)",
            401 => "Missing or bad token (problem+json)",
            403 => "Role too low (problem+json)",
            404 => "Unknown id (problem+json)",
            409 => "Integration cancelled, or a lost race (problem+json)",
            410 => "Secrets shredded (problem+json)",
            412 => "If-Match is not the current version (problem+json)",
            413 => "Body too large (problem+json)",
            415 => "Not JSON (problem+json)",
            422 => "Guard rejected, or Idempotency-Key reused (problem+json)",
            503 => "Overloaded; see Retry-After (problem+json)",
            _ => "See the problem document",
        };
        responses.insert(code.to_string(), json!({"description": description}));
    }
    json!({"summary": summary, "x-golive-role": role, "responses": responses})
}

pub async fn document(_who: super::Principal) -> Json<Value> {
    Json(with_parameters(spec()))
}

/// Adds path parameters, query parameters and JSON request bodies to every operation.
fn with_parameters(mut spec: Value) -> Value {
    let queries: &[(&str, &[(&str, &str)])] = &[
        (
            "/api/v1/integrations",
            &[("stage", "string"), ("owner", "string"), ("blocked", "boolean"), ("stalled_days", "integer")],
        ),
        ("/api/v1/integrations/{id}/history", &[("after", "integer"), ("limit", "integer")]),
        ("/api/v1/integrations/{id}/state", &[("at", "string"), ("version", "integer")]),
        (
            "/api/v1/events",
            &[
                ("actor", "string"),
                ("type", "string"),
                ("since", "string"),
                ("until", "string"),
                ("after", "integer"),
                ("limit", "integer"),
            ],
        ),
        ("/api/v1/events/stream", &[("after", "integer")]),
        ("/api/v1/playbooks/{id}", &[("version", "integer")]),
        ("/api/v1/audit/verify", &[("expect", "string")]),
    ];
    let Some(paths) = spec["paths"].as_object_mut() else { return spec };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else { continue };
        for (method, operation) in operations.iter_mut() {
            let mut parameters = Vec::new();
            for name in ["id", "name"] {
                if path.contains(&format!("{{{name}}}")) {
                    let format = if name == "id" && !path.starts_with("/api/v1/playbooks") {
                        json!({"type": "string", "format": "uuid"})
                    } else {
                        json!({"type": "string"})
                    };
                    parameters.push(json!({"name": name, "in": "path", "required": true, "schema": format}));
                }
            }
            if method == "get" {
                if let Some((_, names)) = queries.iter().find(|(p, _)| p == path) {
                    for (name, kind) in names.iter() {
                        parameters
                            .push(json!({"name": name, "in": "query", "required": false, "schema": {"type": kind}}));
                    }
                }
            }
            operation["parameters"] = Value::Array(parameters);
            if method == "post" && !path.ends_with("/shred") && !path.ends_with("/probe") {
                operation["requestBody"] =
                    json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
            }
        }
    }
    spec
}

fn spec() -> Value {
    let read = [200, 400, 401, 404, 503];
    json!({
        "openapi": "3.1.0",
        "info": {"title": "golive", "version": env!("CARGO_PKG_VERSION"), "description": "The system of record for self-hosted GitLab onboardings."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/integrations": {
                "post": op("Open an integration from a registered playbook (playbook_id, playbook_version) or the default; playbook fields of the request's own need the admin role (403)", "rep", &[201, 400, 401, 403, 413, 415, 422, 503]),
                "get": op("List integrations (stage, owner, blocked, stalled_days)", "viewer", &[200, 400, 401, 503]),
            },
            "/api/v1/integrations/{id}": {"get": op("An integration's state (ETag)", "viewer", &read)},
            "/api/v1/integrations/{id}/commands": {"post": op("Execute a v1 command (If-Match, Idempotency-Key)", "rep", &[200, 400, 401, 403, 404, 409, 412, 413, 415, 422, 503])},
            "/api/v1/integrations/{id}/history": {"get": op("Events, oldest first (after, limit)", "viewer", &read)},
            "/api/v1/integrations/{id}/state": {"get": op("The state at a time or version", "viewer", &read)},
            "/api/v1/integrations/{id}/diagnose": {"get": op("Why it is stuck and what to check", "viewer", &read)},
            "/api/v1/integrations/{id}/probe": {"post": op("Run the GitLab probe now; a failed probe is a recorded finding", "rep", &[200, 401, 403, 404, 410, 422, 503])},
            "/api/v1/integrations/{id}/shred": {"post": op("Destroy the data key", "admin", &[200, 401, 403, 404, 503])},
            "/api/v1/integrations/{id}/reveal": {"post": op("Reveal a secret (audited)", "admin", &[200, 400, 401, 403, 404, 410, 415, 503])},
            "/api/v1/board": {"get": op("Integrations per stage", "viewer", &read)},
            "/api/v1/calendar": {"get": op("Go-live dates and monitoring ends", "viewer", &read)},
            "/api/v1/insights": {"get": op("Process figures: time in each stage (median, 90th percentile), opened and gone live per week, stalls, cumulative flow", "viewer", &read)},
            "/api/v1/events": {"get": op("Audit across integrations (actor, type, since, until, after, limit)", "viewer", &read)},
            "/api/v1/events/stream": {"get": op("Server-Sent Events; id is the position; resume with Last-Event-ID or after", "viewer", &read)},
            "/api/v1/audit/verify": {"get": op("Chain verification", "viewer", &read)},
            "/api/v1/export": {"get": op("The log as JSON Lines", "admin", &[200, 401, 403, 503])},
            "/api/v1/playbooks": {
                "post": op("Register a playbook version (immutable: the same body again is 200, another body 409)", "admin", &[200, 201, 400, 401, 403, 409, 413, 415, 503]),
                "get": op("The default playbook and every registered version", "viewer", &[200, 401, 503]),
            },
            "/api/v1/playbooks/{id}": {"get": op("A registered playbook, its latest version unless ?version=N", "viewer", &read)},
            "/api/v1/tokens": {
                "post": op("Create an API token (shown once)", "admin", &[201, 400, 401, 403, 409, 415, 503]),
                "get": op("List API tokens", "admin", &[200, 401, 403, 503]),
                "delete": op("Revoke a token (?name=)", "admin", &[204, 400, 401, 403, 404, 503]),
            },
            "/api/v1/tokens/{name}": {"delete": op("Revoke a token", "admin", &[204, 401, 403, 404, 503])},
            "/api/v1/openapi.json": {"get": op("This document", "viewer", &[200, 401])},
            "/hooks/gitlab/{id}": {"post": op("GitLab webhook receiver (X-Gitlab-Token; webhook-signature with a signing key)", "gitlab", &[200, 400, 401, 404, 413, 503])},
            "/healthz": {"get": op("Liveness", "public", &[200])},
            "/readyz": {"get": op("Readiness", "public", &[200, 503])},
            "/metrics": {"get": op("Prometheus metrics", "public", &[200])},
        }
    })
}
