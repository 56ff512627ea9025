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
    Received, Registration,
};
use crate::error_kind::{exit, ErrorKind};
use crate::gitlab::webhook::DeliveryHeaders;
use crate::views;

/// Failures. A failure golive reports has a kind from the one table
/// ([`crate::error_kind::ERROR_TABLE`]), which gives its exit code; the CLI adds its own usage
/// errors, a failed verification, and failures of its own surroundings (a file, the network).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{message}")]
    Failed { kind: ErrorKind, message: String, unmet: Vec<(String, String)> },
    #[error("{0}")]
    VerifyFailed(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// A failure of `kind` with `message`.
    pub fn failed(kind: ErrorKind, message: impl Into<String>) -> Self {
        CliError::Failed { kind, message: message.into(), unmet: Vec::new() }
    }

    /// The process exit code (documented in `golive --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Other(_) => exit::UNEXPECTED,
            CliError::Usage(_) => exit::USAGE,
            CliError::Failed { kind, .. } => kind.exit_code(),
            CliError::VerifyFailed(_) => exit::VERIFY_FAILED,
        }
    }

    /// The kind, when golive reported this failure.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            CliError::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl From<EngineError> for CliError {
    fn from(error: EngineError) -> Self {
        let kind = error.kind();
        match error {
            EngineError::NotFound(id) => {
                CliError::failed(kind, format!("no integration {id}: check the id with `golive integration list`"))
            }
            EngineError::Rejected(Rejection::GuardRejected { command, unmet }) => CliError::Failed {
                kind,
                message: format!("{command} refused: requirements not met"),
                unmet: unmet.into_iter().map(|u| (u.id, u.label)).collect(),
            },
            locked if kind == ErrorKind::StoreLocked => CliError::failed(
                kind,
                format!(
                    "{locked}: a running golive server uses it; talk to that server with --server URL (or GOLIVE_SERVER) and GOLIVE_TOKEN"
                ),
            ),
            other => CliError::failed(kind, other.to_string()),
        }
    }
}

impl From<AuthError> for CliError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::NoSuchToken(_) => CliError::failed(ErrorKind::NotFound, error.to_string()),
            AuthError::NameTaken(_) => CliError::failed(ErrorKind::TokenNameTaken, error.to_string()),
            AuthError::InvalidName(_) => CliError::failed(ErrorKind::InvalidField, error.to_string()),
            AuthError::Store(e) => CliError::from(EngineError::Store(e)),
        }
    }
}

fn playbook_error(error: PlaybookError) -> CliError {
    match error {
        PlaybookError::VersionTaken { .. } => CliError::failed(ErrorKind::PlaybookVersionTaken, error.to_string()),
        PlaybookError::NotFound(_) => {
            CliError::failed(ErrorKind::NotFound, format!("{error}: see `golive playbook list`"))
        }
        PlaybookError::Engine(error) => error.into(),
    }
}

fn parse_id(id: &str) -> Result<IntegrationId, CliError> {
    IntegrationId::parse(id).map_err(|e| CliError::Usage(format!("integration id {id:?}: {e}")))
}

/// A call to golive's outbound side (subscriptions, notification rules, journals); ids as
/// typed (an integration reference is resolved before it gets here).
#[derive(Debug, Clone)]
pub enum OutboundCall {
    AddSubscription(Value),
    ListSubscriptions,
    ShowSubscription(String),
    RemoveSubscription(String),
    PauseSubscription(String),
    ResumeSubscription(String),
    ReplaySubscription(String, u64),
    AddRule(Value),
    ListRules,
    RemoveRule(String),
    Journal(String),
}

fn parse_uuid(id: &str, what: &str) -> Result<uuid::Uuid, CliError> {
    uuid::Uuid::parse_str(id.trim()).map_err(|_| CliError::Usage(format!("{what} id {id:?}: must be a UUID")))
}

/// A typed request from JSON the CLI built, refused with the field at fault.
fn typed<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, CliError> {
    serde_path_to_error::deserialize(body)
        .map_err(|e| CliError::failed(ErrorKind::InvalidField, format!("{}: {}", e.path(), e.inner())))
}

/// Everything the CLI asks of golive.
#[async_trait]
pub trait Client: Send + Sync {
    /// Opens an integration; answers its state (as `POST /api/v1/integrations` does).
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
    /// Runs checks through GitLab's API (`{checks?, group_id?, project_id?}`) to the end,
    /// telling `progress` what it is waiting for; answers `{check_id, run, state}`.
    async fn check(&self, id: &str, body: Value, progress: &(dyn Fn(String) + Send + Sync)) -> Result<Value, CliError>;
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
    /// The public URL an integration opened now would record: this process's for the local
    /// engine; `None` against a server (which checked its own when it started).
    async fn public_url(&self) -> Result<Option<String>, CliError>;
    /// Stores the public URL with the store (`golive init --public-url`); local only.
    async fn store_public_url(&self, url: &str) -> Result<(), CliError>;
    /// Issues a one-time customer intake link: `{url, link_id, expires_at, version}`.
    async fn intake_create(&self, id: &str, expires_in_hours: u32) -> Result<Value, CliError>;
    /// Subscriptions, notification rules and journals.
    async fn outbound(&self, call: OutboundCall) -> Result<Value, CliError>;
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
        Ok(views::state(&executed.state, self.engine.now()))
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

    async fn check(&self, id: &str, body: Value, progress: &(dyn Fn(String) + Send + Sync)) -> Result<Value, CliError> {
        let request = crate::engine::CheckRequest::from_json(body).map_err(crate::engine::EngineError::Rejected)?;
        if request.checks.contains(&crate::domain::CheckKind::TestDeliveries)
            || request.checks.contains(&crate::domain::CheckKind::Scenarios)
        {
            return Err(CliError::Usage(
                "test deliveries and scenario runs come back to golive's receiver, which runs in the server: run this check with \
                 --server URL (GOLIVE_SERVER), or check --application --webhook here"
                    .into(),
            ));
        }
        let tell = |step: crate::engine::CheckProgress| match step {
            crate::engine::CheckProgress::Recorded(event) => progress(format!("recorded {event}")),
            crate::engine::CheckProgress::Waiting { triggers, seconds_left } => progress(format!(
                "waiting for the test deliveries of {} ({seconds_left} s left)",
                triggers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
            )),
        };
        let outcome = self.engine.run_check(parse_id(id)?, request, &self.actor, &tell).await?;
        let state = views::state(&outcome.state, self.engine.now());
        let run = state["check_runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["check_id"] == json!(outcome.check_id)))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(json!({"check_id": outcome.check_id, "run": run, "state": state}))
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

    async fn public_url(&self) -> Result<Option<String>, CliError> {
        Ok(Some(self.engine.config().public_url.to_string()))
    }

    async fn store_public_url(&self, url: &str) -> Result<(), CliError> {
        let url = crate::domain::HttpUrl::parse(url).map_err(|e| CliError::Usage(format!("--public-url: {e}")))?;
        Ok(self.engine.store_public_url(&url).await?)
    }

    async fn intake_create(&self, id: &str, expires_in_hours: u32) -> Result<Value, CliError> {
        let issued = self.engine.issue_intake_link(parse_id(id)?, expires_in_hours, &self.actor).await?;
        Ok(crate::views::intake_link_issued(&issued))
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
        Ok(Tokens::with_clock(self.engine.store().as_ref(), self.engine.clock())
            .create(name, role, self.actor.as_str())
            .await?)
    }

    async fn outbound(&self, call: OutboundCall) -> Result<Value, CliError> {
        let engine = &self.engine;
        Ok(match call {
            OutboundCall::AddSubscription(body) => json!(engine.add_subscription(typed(body)?, &self.actor).await?),
            OutboundCall::ListSubscriptions => json!(engine.subscriptions().await?),
            OutboundCall::ShowSubscription(id) => json!(engine.subscription(parse_uuid(&id, "subscription")?).await?),
            OutboundCall::RemoveSubscription(id) => {
                engine.remove_subscription(parse_uuid(&id, "subscription")?).await?;
                json!({"removed": id})
            }
            OutboundCall::PauseSubscription(id) => {
                json!(engine.pause_subscription(parse_uuid(&id, "subscription")?).await?)
            }
            OutboundCall::ResumeSubscription(id) => {
                json!(engine.resume_subscription(parse_uuid(&id, "subscription")?).await?)
            }
            OutboundCall::ReplaySubscription(id, from) => {
                json!(engine.replay_subscription(parse_uuid(&id, "subscription")?, from).await?)
            }
            OutboundCall::AddRule(body) => json!(engine.add_notification_rule(typed(body)?, &self.actor).await?),
            OutboundCall::ListRules => json!(engine.notification_rules().await?),
            OutboundCall::RemoveRule(id) => {
                engine.remove_notification_rule(parse_uuid(&id, "notification rule")?).await?;
                json!({"removed": id})
            }
            OutboundCall::Journal(id) => json!(engine.notification_journal(parse_id(&id)?).await?),
        })
    }

    async fn token_list(&self) -> Result<Value, CliError> {
        Ok(json!(Tokens::with_clock(self.engine.store().as_ref(), self.engine.clock()).list().await?))
    }

    async fn token_revoke(&self, name: &str) -> Result<(), CliError> {
        Ok(Tokens::with_clock(self.engine.store().as_ref(), self.engine.clock()).revoke(name).await?)
    }

    async fn webhook_replay(&self, id: &str, headers: &DeliveryHeaders, body: &[u8]) -> Result<Value, CliError> {
        match self.engine.receive_webhook(parse_id(id)?, headers, body).await {
            Ok(Received::Ignored { version }) => Ok(json!({"status": "ignored", "version": version})),
            Ok(Received::Recorded(executed)) => {
                let view = views::state(&executed.state, self.engine.now());
                Ok(views::executed(view, &executed.events, &executed.shown, executed.replayed))
            }
            Err(error @ DeliveryError::Refused(_)) => Err(CliError::failed(
                error.kind(),
                format!("{error}; it was counted but not recorded. Use the secret token golive issued (--token-file)"),
            )),
            Err(DeliveryError::Engine(error)) => Err(error.into()),
            Err(error) => Err(CliError::failed(error.kind(), error.to_string())),
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
            Err(other) => Err(CliError::failed(other.kind(), other.to_string())),
        }
    }

    async fn close(&self) -> Result<(), CliError> {
        Ok(self.engine.close().await?)
    }
}
