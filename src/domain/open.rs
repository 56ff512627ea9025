//! The request that opens an integration, parsed like a command.

use serde_json::Value;

use super::command::{parse_fields, OpenIntegration};
use super::rejection::Rejection;

/// Parses the body of `POST /api/v1/integrations`.
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
