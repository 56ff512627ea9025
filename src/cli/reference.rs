//! References to an integration as a rep types them (contract): a full id, the customer's name
//! (case-insensitive, exact), or a unique id prefix of at least six characters (hyphens
//! ignored).
//!
//! An exact full id wins and is used as it is. Otherwise the candidates are the union of the
//! id-prefix matches and the name matches; cancelled integrations count only when nothing else
//! matches, so a customer onboarded again after a cancelled attempt is still one name. More than
//! one candidate is a usage error (exit 2) listing them; none is "not found" (exit 3).
//!
//! Resolution happens in the CLI, for the local engine and a remote server alike, from the
//! integration list both answer: the HTTP API keeps its ids (design §2), and the same reference
//! means the same integration in both modes. [`ResolvingClient`] wraps any [`Client`] so that
//! every command taking an integration resolves it the same way.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::client::{CliError, Client};
use crate::auth::Role;
use crate::domain::{IntegrationId, SecretKind};
use crate::engine::{AuditQuery, ListFilter};
use crate::error_kind::ErrorKind;
use crate::gitlab::webhook::DeliveryHeaders;

/// The shortest id prefix golive takes for a reference: six hex digits are 16.7 million
/// values, so two integrations of one team rarely share one, and a collision is listed anyway.
pub const ID_PREFIX_MIN_CHARS: usize = 6;

/// One integration as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub customer: String,
    pub stage: String,
}

impl Candidate {
    fn is_cancelled(&self) -> bool {
        self.stage == "cancelled"
    }
}

/// The candidates in a list answer (`[{id, customer, stage, ...}]`), skipping what is not one.
pub fn candidates_in(list: &Value) -> Vec<Candidate> {
    let text = |item: &Value, field: &str| item.get(field).and_then(Value::as_str).map(str::to_owned);
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            Some(Candidate { id: text(item, "id")?, customer: text(item, "customer")?, stage: text(item, "stage")? })
        })
        .collect()
}

/// What a reference is before any lookup: a full id needs none.
pub fn full_id(reference: &str) -> Option<String> {
    IntegrationId::parse(reference.trim()).ok().map(|id| id.to_string())
}

/// Resolves `reference` among `candidates` by the rules of this module's header.
pub fn resolve(reference: &str, candidates: &[Candidate]) -> Result<String, CliError> {
    let reference = reference.trim();
    if let Some(id) = full_id(reference) {
        return Ok(id);
    }
    if reference.is_empty() {
        return Err(CliError::Usage("an integration reference must not be empty".into()));
    }
    let prefix: String = reference.chars().filter(|c| *c != '-').flat_map(char::to_lowercase).collect();
    let prefix_counts = prefix.chars().count() >= ID_PREFIX_MIN_CHARS;
    let name = reference.to_lowercase();
    let matches: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| {
            let by_prefix = prefix_counts && c.id.replace('-', "").to_lowercase().starts_with(&prefix);
            by_prefix || c.customer.to_lowercase() == name
        })
        .collect();
    let active: Vec<&Candidate> = matches.iter().copied().filter(|c| !c.is_cancelled()).collect();
    let chosen = if active.is_empty() { matches } else { active };
    match chosen.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => {
            let hint = if prefix_counts || full_id(reference).is_some() {
                String::new()
            } else {
                format!(" (an id prefix needs at least {ID_PREFIX_MIN_CHARS} characters)")
            };
            Err(CliError::failed(
                ErrorKind::NotFound,
                format!(
                    "no integration matches {reference:?}: give a customer name, a full id or an id prefix{hint}; \
                     `golive integration list` shows them"
                ),
            ))
        }
        many => {
            let lines: Vec<String> = many.iter().map(|c| format!("  {}  {}  {}", c.customer, c.id, c.stage)).collect();
            Err(CliError::Usage(format!(
                "{reference:?} matches {} integrations; use one of these ids:\n{}",
                many.len(),
                lines.join("\n")
            )))
        }
    }
}

/// A [`Client`] whose every integration argument may be a reference.
pub struct ResolvingClient {
    inner: Arc<dyn Client>,
}

impl ResolvingClient {
    pub fn new(inner: Arc<dyn Client>) -> Arc<Self> {
        Arc::new(Self { inner })
    }

    async fn id(&self, reference: &str) -> Result<String, CliError> {
        if let Some(id) = full_id(reference) {
            return Ok(id);
        }
        let list = self.inner.list(&ListFilter::default()).await?;
        resolve(reference, &candidates_in(&list))
    }
}

#[async_trait]
impl Client for ResolvingClient {
    async fn open(&self, body: Value) -> Result<Value, CliError> {
        self.inner.open(body).await
    }
    async fn execute(&self, id: &str, body: Value) -> Result<Value, CliError> {
        self.inner.execute(&self.id(id).await?, body).await
    }
    async fn state(&self, id: &str) -> Result<Value, CliError> {
        self.inner.state(&self.id(id).await?).await
    }
    async fn state_at(&self, id: &str, at: crate::engine::At) -> Result<Value, CliError> {
        self.inner.state_at(&self.id(id).await?, at).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Value, CliError> {
        self.inner.list(filter).await
    }
    async fn board(&self) -> Result<Value, CliError> {
        self.inner.board().await
    }
    async fn calendar(&self) -> Result<Value, CliError> {
        self.inner.calendar().await
    }
    async fn insights(&self) -> Result<Value, CliError> {
        self.inner.insights().await
    }
    async fn history(&self, id: &str, after: u64, limit: usize) -> Result<Value, CliError> {
        self.inner.history(&self.id(id).await?, after, limit).await
    }
    async fn audit(&self, query: &AuditQuery) -> Result<Value, CliError> {
        self.inner.audit(query).await
    }
    async fn diagnose(&self, id: &str) -> Result<Value, CliError> {
        self.inner.diagnose(&self.id(id).await?).await
    }
    async fn verify(&self, expect: Option<&str>) -> Result<Value, CliError> {
        self.inner.verify(expect).await
    }
    async fn export_page(&self, after: u64, limit: usize) -> Result<Vec<Value>, CliError> {
        self.inner.export_page(after, limit).await
    }
    async fn shred(&self, id: &str) -> Result<Value, CliError> {
        self.inner.shred(&self.id(id).await?).await
    }
    async fn probe(&self, id: &str) -> Result<Value, CliError> {
        self.inner.probe(&self.id(id).await?).await
    }
    async fn check(&self, id: &str, body: Value, progress: &(dyn Fn(String) + Send + Sync)) -> Result<Value, CliError> {
        self.inner.check(&self.id(id).await?, body, progress).await
    }
    async fn reveal(&self, id: &str, kind: SecretKind) -> Result<String, CliError> {
        self.inner.reveal(&self.id(id).await?, kind).await
    }
    async fn playbook_add(&self, body: Value) -> Result<Value, CliError> {
        self.inner.playbook_add(body).await
    }
    async fn playbook_list(&self) -> Result<Value, CliError> {
        self.inner.playbook_list().await
    }
    async fn playbook_show(&self, id: &str, version: Option<u32>) -> Result<Value, CliError> {
        // A playbook id, not an integration reference.
        self.inner.playbook_show(id, version).await
    }
    async fn token_create(&self, name: &str, role: Role) -> Result<String, CliError> {
        self.inner.token_create(name, role).await
    }
    async fn token_list(&self) -> Result<Value, CliError> {
        self.inner.token_list().await
    }
    async fn outbound(&self, call: super::client::OutboundCall) -> Result<Value, CliError> {
        // Only a journal names an integration; subscriptions and rules have ids of their own.
        let call = match call {
            super::client::OutboundCall::Journal(reference) => {
                super::client::OutboundCall::Journal(self.id(&reference).await?)
            }
            other => other,
        };
        self.inner.outbound(call).await
    }
    async fn token_revoke(&self, name: &str) -> Result<(), CliError> {
        self.inner.token_revoke(name).await
    }
    async fn webhook_replay(&self, id: &str, headers: &DeliveryHeaders, body: &[u8]) -> Result<Value, CliError> {
        self.inner.webhook_replay(&self.id(id).await?, headers, body).await
    }
    async fn import(
        &self,
        lines: Box<dyn Iterator<Item = std::io::Result<String>> + Send>,
        progress: Box<dyn FnMut(u64) + Send>,
    ) -> Result<Value, CliError> {
        self.inner.import(lines, progress).await
    }
    async fn public_url(&self) -> Result<Option<String>, CliError> {
        self.inner.public_url().await
    }
    async fn store_public_url(&self, url: &str) -> Result<(), CliError> {
        self.inner.store_public_url(url).await
    }
    async fn intake_create(&self, id: &str, expires_in_hours: u32) -> Result<Value, CliError> {
        self.inner.intake_create(&self.id(id).await?, expires_in_hours).await
    }
    async fn close(&self) -> Result<(), CliError> {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, customer: &str, stage: &str) -> Candidate {
        Candidate { id: id.into(), customer: customer.into(), stage: stage.into() }
    }

    fn team() -> Vec<Candidate> {
        vec![
            candidate("2fefa944-1111-4000-8000-000000000001", "Hooli", "created"),
            candidate("2fefa955-2222-4000-8000-000000000002", "Initech", "live"),
            candidate("7a000000-3333-4000-8000-000000000003", "Acme Robotics", "cancelled"),
            candidate("7a000001-4444-4000-8000-000000000004", "Acme Robotics", "tested"),
            candidate("9b000000-5555-4000-8000-000000000005", "Globex", "cancelled"),
            candidate("9c000000-6666-4000-8000-000000000006", "2fefa944", "created"),
        ]
    }

    /// (reference, the id it resolves to, or the exit code it fails with)
    #[test]
    fn references_resolve_by_the_contract() {
        let cases: &[(&str, Result<&str, u8>)] = &[
            // An exact full id wins, also one no integration has (the command then says 404).
            ("2fefa944-1111-4000-8000-000000000001", Ok("2fefa944-1111-4000-8000-000000000001")),
            ("00000000-0000-4000-8000-00000000ffff", Ok("00000000-0000-4000-8000-00000000ffff")),
            // A name, in any case; surrounding blanks ignored.
            ("hooli", Ok("2fefa944-1111-4000-8000-000000000001")),
            (" HOOLI ", Ok("2fefa944-1111-4000-8000-000000000001")),
            // A unique prefix of at least six characters, hyphens ignored, any case.
            ("2fefa95", Ok("2fefa955-2222-4000-8000-000000000002")),
            ("2FEFA955-22", Ok("2fefa955-2222-4000-8000-000000000002")),
            ("2fefa9551111", Err(3)),
            // Too short for a prefix, and no such name.
            ("2fefa", Err(3)),
            // Two prefix matches.
            ("2fefa9", Err(2)),
            // A prefix of one integration and the name of another: both are candidates.
            ("2fefa944", Err(2)),
            // The cancelled attempt does not count beside the active one...
            ("acme robotics", Ok("7a000001-4444-4000-8000-000000000004")),
            // ...but a cancelled integration is found when nothing else matches.
            ("globex", Ok("9b000000-5555-4000-8000-000000000005")),
            ("9b0000", Ok("9b000000-5555-4000-8000-000000000005")),
            // A partial name is not a name.
            ("Hoo", Err(3)),
            ("", Err(2)),
        ];
        for (reference, expected) in cases {
            let got = resolve(reference, &team());
            match (expected, &got) {
                (Ok(id), Ok(got)) => assert_eq!(got, id, "{reference:?}"),
                (Err(code), Err(error)) => assert_eq!(error.exit_code(), *code, "{reference:?}: {error}"),
                _ => panic!("{reference:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn an_ambiguous_reference_lists_name_id_and_stage_of_each_candidate() {
        let error = resolve("2fefa944", &team()).unwrap_err().to_string();
        assert!(error.contains("matches 2 integrations"), "{error}");
        assert!(error.contains("  Hooli  2fefa944-1111-4000-8000-000000000001  created"), "{error}");
        assert!(error.contains("  2fefa944  9c000000-6666-4000-8000-000000000006  created"), "{error}");
    }

    #[test]
    fn candidates_come_from_the_list_answer() {
        let list = serde_json::json!([
            {"id": "a", "customer": "A", "stage": "live", "owner": null},
            {"id": "b"},
            "not an object"
        ]);
        assert_eq!(candidates_in(&list), vec![candidate("a", "A", "live")]);
    }
}
