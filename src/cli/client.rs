//! The CLI's one way to reach golive: a client trait with a local side (the engine in this
//! process) and a remote side (HTTP, with `--server`). Every command goes through it, so both
//! modes behave the same; both answer with the JSON views of `crate::views`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::auth::{AuthError, Role, Tokens};
use crate::domain::{Actor, IntegrationId, PlaybookId, PlaybookRef, Rejection, SecretKind};
use crate::engine::{
    At, AuditQuery, DeliveryError, Engine, EngineError, ExecuteRequest, ImportError, ListFilter, PlaybookError,
    Registration,
};
use crate::gitlab::webhook::DeliveryHeaders;
use crate::views;

/// Failures, each with its documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Refused { message: String, unmet: Vec<(String, String)> },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    VerifyFailed(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code (documented in `golive --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Other(_) => 1,
            CliError::Usage(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::Refused { .. } => 4,
            CliError::Conflict(_) => 5,
            CliError::Locked(_) => 6,
            CliError::Auth(_) => 7,
            CliError::VerifyFailed(_) => 8,
        }
    }
}

impl From<EngineError> for CliError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound(id) => CliError::NotFound(format!("no integration {id}: check the id with `golive integration list`")),
            EngineError::Rejected(Rejection::GuardRejected { command, unmet }) => CliError::Refused {
                message: format!("{command} refused: requirements not met"),
                unmet: unmet.into_iter().map(|u| (u.id, u.label)).collect(),
            },
            EngineError::Rejected(Rejection::Cancelled) => {
                CliError::Conflict("the integration is cancelled; no command is accepted any more".into())
            }
            EngineError::Rejected(rejection) => CliError::Refused { message: rejection.to_string(), unmet: Vec::new() },
            EngineError::VersionMismatch { .. } | EngineError::Conflict { .. } => CliError::Conflict(error.to_string()),
            EngineError::IdempotencyKeyReused => CliError::Refused { message: error.to_string(), unmet: Vec::new() },
            EngineError::Store(crate::store::StoreError::Locked { path }) => CliError::Locked(format!(
                "the data directory {path} is in use by a running golive server; talk to it with --server URL (or GOLIVE_SERVER) and GOLIVE_TOKEN"
            )),
            other => CliError::Other(other.to_string()),
        }
    }
}

impl From<AuthError> for CliError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::NoSuchToken(_) => CliError::NotFound(error.to_string()),
            AuthError::NameTaken(_) | AuthError::InvalidName(_) => CliError::Usage(error.to_string()),
            AuthError::Store(e) => CliError::from(EngineError::Store(e)),
        }
    }
}

fn playbook_error(error: PlaybookError) -> CliError {
    match error {
        PlaybookError::VersionTaken { .. } => CliError::Conflict(error.to_string()),
        PlaybookError::NotFound(_) => CliError::NotFound(format!("{error}: see `golive playbook list`")),
        PlaybookError::Engine(error) => error.into(),
    }
}

fn parse_id(id: &str) -> Result<IntegrationId, CliError> {
    IntegrationId::parse(id).map_err(|e| CliError::Usage(format!("integration id {id:?}: {e}")))
}

/// Everything the CLI asks of golive.
#[async_trait]
pub trait Client: Send + Sync {
    async fn open(&self, body: Value) -> Result<Value, CliError>;
    async fn execute(&self, id: &str, body: Value) -> Result<Value, CliError>;
    async fn state(&self, id: &str) -> Result<Value, CliError>;
    async fn state_at(&self, id: &str, at: At) -> Result<Value, CliError>;
    async fn list(&self, filter: &ListFilter) -> Result<Value, CliError>;
    async fn board(&self) -> Result<Value, CliError>;
    async fn calendar(&self) -> Result<Value, CliError>;
    async fn insights(&self) -> Result<Value, CliError>;
    async fn history(&self, id: &str, after: u64, limit: usize) -> Result<Value, CliError>;
    async fn audit(&self, query: &AuditQuery) -> Result<Value, CliError>;
    async fn diagnose(&self, id: &str) -> Result<Value, CliError>;
    async fn verify(&self, expect: Option<&str>) -> Result<Value, CliError>;
    async fn export_page(&self, after: u64, limit: usize) -> Result<Vec<Value>, CliError>;
    async fn shred(&self, id: &str) -> Result<Value, CliError>;
    async fn probe(&self, id: &str) -> Result<Value, CliError>;
    async fn reveal(&self, id: &str, kind: SecretKind) -> Result<String, CliError>;
    /// Registers a playbook version; answers the registered record.
    async fn playbook_add(&self, body: Value) -> Result<Value, CliError>;
    /// `{default, playbooks: [registered...]}`.
    async fn playbook_list(&self) -> Result<Value, CliError>;
    /// One registered version (the latest when `version` is `None`).
    async fn playbook_show(&self, id: &str, version: Option<u32>) -> Result<Value, CliError>;
    async fn token_create(&self, name: &str, role: Role) -> Result<String, CliError>;
    async fn token_list(&self) -> Result<Value, CliError>;
    async fn token_revoke(&self, name: &str) -> Result<(), CliError>;
    async fn webhook_replay(&self, id: &str, headers: &DeliveryHeaders, body: &[u8]) -> Result<Value, CliError>;
    /// Imports JSON Lines into an empty store (local mode only).
    async fn import(
        &self,
        lines: Box<dyn Iterator<Item = std::io::Result<String>> + Send>,
        progress: Box<dyn FnMut(u64) + Send>,
    ) -> Result<Value, CliError>;
    async fn close(&self) -> Result<(), CliError>;
}

/// The engine in this process, acting as `actor`.
pub struct LocalClient {
    pub engine: Engine,
    pub actor: Actor,
}

impl LocalClient {
    pub fn new(engine: Engine, actor: Actor) -> Arc<Self> {
        Arc::new(Self { engine, actor })
    }
}

#[async_trait]
impl Client for LocalClient {
    async fn open(&self, body: Value) -> Result<Value, CliError> {
        let executed = self.engine.open_integration(body, &self.actor, None).await?;
        Ok(views::executed(views::state(&executed.state, self.engine.now()), &executed.events, &executed.shown, false))
    }

    async fn execute(&self, id: &str, body: Value) -> Result<Value, CliError> {
        let request = ExecuteRequest::new(parse_id(id)?, body, self.actor.clone());
        let executed = self.engine.execute(request).await?;
        let view = views::state(&executed.state, self.engine.now());
        Ok(views::executed(view, &executed.events, &executed.shown, executed.replayed))
    }

    async fn state(&self, id: &str) -> Result<Value, CliError> {
        let state = self.engine.state(parse_id(id)?).await?;
        Ok(views::state(&state, self.engine.now()))
    }

    async fn state_at(&self, id: &str, at: At) -> Result<Value, CliError> {
        let state = self.engine.state_at(parse_id(id)?, at).await?;
        Ok(views::state(&state, self.engine.now()))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Value, CliError> {
        Ok(json!(self.engine.list(filter).await?))
    }

    async fn board(&self) -> Result<Value, CliError> {
        Ok(json!(self.engine.board().await?))
    }

    async fn calendar(&self) -> Result<Value, CliError> {
        Ok(json!(self.engine.calendar().await?))
    }

    async fn insights(&self) -> Result<Value, CliError> {
        Ok(json!(self.engine.insights().await?))
    }

    async fn history(&self, id: &str, after: u64, limit: usize) -> Result<Value, CliError> {
        Ok(json!(self.engine.history(parse_id(id)?, after, limit).await?))
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Value, CliError> {
        Ok(json!(self.engine.audit(query).await?))
    }

    async fn diagnose(&self, id: &str) -> Result<Value, CliError> {
        Ok(json!(self.engine.diagnose(parse_id(id)?).await?))
    }

    async fn verify(&self, expect: Option<&str>) -> Result<Value, CliError> {
        Ok(json!(self.engine.verify(expect).await?))
    }

    async fn export_page(&self, after: u64, limit: usize) -> Result<Vec<Value>, CliError> {
        Ok(self.engine.export_page(after, limit).await?.into_iter().map(|e| json!(e)).collect())
    }

    async fn shred(&self, id: &str) -> Result<Value, CliError> {
        let executed = self.engine.shred(parse_id(id)?, &self.actor).await?;
        Ok(views::executed(views::state(&executed.state, self.engine.now()), &executed.events, &executed.shown, false))
    }

    async fn probe(&self, id: &str) -> Result<Value, CliError> {
        let (executed, mut found) =
            self.engine.probe(parse_id(id)?, &crate::gitlab::probe::ProbeConfig::default(), &self.actor).await?;
        if let Some(map) = found.as_object_mut() {
            map.remove("type");
            map.insert("version".into(), json!(executed.state.version));
        }
        Ok(found)
    }

    async fn reveal(&self, id: &str, kind: SecretKind) -> Result<String, CliError> {
        Ok(self.engine.reveal(parse_id(id)?, kind, &self.actor).await?)
    }

    async fn playbook_add(&self, body: Value) -> Result<Value, CliError> {
        match self.engine.register_playbook(body, &self.actor).await.map_err(playbook_error)? {
            Registration::Created(record) | Registration::AlreadyRegistered(record) => Ok(json!(record)),
        }
    }

    async fn playbook_list(&self) -> Result<Value, CliError> {
        let registered = self.engine.playbooks().await?;
        Ok(json!({"default": self.engine.config().default_playbook, "playbooks": registered}))
    }

    async fn playbook_show(&self, id: &str, version: Option<u32>) -> Result<Value, CliError> {
        let id = PlaybookId::parse(id).map_err(|e| CliError::Usage(format!("playbook id {id:?}: {e}")))?;
        let found = self.engine.registered_playbook(&PlaybookRef { id, version }).await.map_err(playbook_error)?;
        Ok(json!(found))
    }

    async fn token_create(&self, name: &str, role: Role) -> Result<String, CliError> {
        Ok(Tokens::new(self.engine.store().as_ref()).create(name, role, self.actor.as_str()).await?)
    }

    async fn token_list(&self) -> Result<Value, CliError> {
        Ok(json!(Tokens::new(self.engine.store().as_ref()).list().await?))
    }

    async fn token_revoke(&self, name: &str) -> Result<(), CliError> {
        Ok(Tokens::new(self.engine.store().as_ref()).revoke(name).await?)
    }

    async fn webhook_replay(&self, id: &str, headers: &DeliveryHeaders, body: &[u8]) -> Result<Value, CliError> {
        match self.engine.receive_webhook(parse_id(id)?, headers, body).await {
            Ok(executed) => {
                let view = views::state(&executed.state, self.engine.now());
                Ok(views::executed(view, &executed.events, &executed.shown, executed.replayed))
            }
            Err(DeliveryError::Refused(refusal)) => Err(CliError::Auth(format!(
                "delivery refused ({refusal}); it was counted but not recorded. Use the secret token golive issued (--token-file) "
            ))),
            Err(DeliveryError::Malformed(malformed)) => Err(CliError::Refused { message: malformed.to_string(), unmet: Vec::new() }),
            Err(DeliveryError::Engine(error)) => Err(error.into()),
        }
    }

    async fn import(
        &self,
        lines: Box<dyn Iterator<Item = std::io::Result<String>> + Send>,
        progress: Box<dyn FnMut(u64) + Send>,
    ) -> Result<Value, CliError> {
        match self.engine.import_lines(lines, progress).await {
            Ok(report) => Ok(json!(report)),
            Err(ImportError::Engine(e)) => Err(e.into()),
            Err(other) => Err(CliError::Refused { message: other.to_string(), unmet: Vec::new() }),
        }
    }

    async fn close(&self) -> Result<(), CliError> {
        Ok(self.engine.close().await?)
    }
}
