//! The remote side of the client: the same operations over golive's HTTP API, as the token's
//! owner (`GOLIVE_TOKEN`).

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::client::{CliError, Client};
use crate::auth::Role;
use crate::domain::SecretKind;
use crate::engine::{At, AuditQuery, ListFilter};
use crate::error_kind::{exit, ErrorKind};
use crate::gitlab::webhook::DeliveryHeaders;

pub struct RemoteClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl RemoteClient {
    pub fn new(server: &str, token: String) -> Result<Self, CliError> {
        let base = server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!("--server {server:?}: an http(s) URL such as http://127.0.0.1:8080")));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Other(e.to_string()))?;
        Ok(Self { base, token, http })
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| CliError::Other(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CliError::Other(e.to_string()))?;
        if status.is_success() {
            if text.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .map_err(|e| CliError::Other(format!("the server answered something that is not JSON: {e}")));
        }
        Err(problem_error(status, &text))
    }
}

/// Reads a problem answer back into the kind the server classified it as: by its `type`
/// from the one table, else by its status, so local and remote modes exit alike.
pub(crate) fn problem_error(status: StatusCode, text: &str) -> CliError {
    let problem: Value = serde_json::from_str(text).unwrap_or_else(|_| json!({"detail": text}));
    let detail = printable(problem["detail"].as_str().unwrap_or("no detail"));
    // The type names the kind only when its status agrees with the answer's (a proxy or a
    // confused server cannot make a 503 exit as "not found", or any answer as a local lock).
    let kind = problem["type"]
        .as_str()
        .and_then(ErrorKind::from_problem_type)
        .filter(|kind| kind.status() == status.as_u16() && *kind != ErrorKind::StoreLocked)
        .unwrap_or_else(|| ErrorKind::from_status(status.as_u16()));
    let message = match kind.exit_code() {
        exit::AUTH => format!("{detail} (check GOLIVE_TOKEN and its role)"),
        exit::UNEXPECTED | exit::RETRY_LATER => format!("the server answered {status}: {detail}"),
        _ => detail,
    };
    let unmet = match kind {
        ErrorKind::GuardRejected => problem["unmet"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| (printable(u["id"].as_str().unwrap_or("")), printable(u["label"].as_str().unwrap_or(""))))
            .collect(),
        _ => Vec::new(),
    };
    CliError::Failed { kind, message, unmet }
}

/// A server's words as the terminal may show them: control characters (escape sequences that
/// could rewrite the screen) become spaces.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_ref()
                .map(|v| format!("{k}={}", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[async_trait]
impl Client for RemoteClient {
    async fn open(&self, body: Value) -> Result<Value, CliError> {
        self.call(Method::POST, "/api/v1/integrations", Some(&body)).await
    }
    async fn execute(&self, id: &str, body: Value) -> Result<Value, CliError> {
        self.call(Method::POST, &format!("/api/v1/integrations/{id}/commands"), Some(&body)).await
    }
    async fn state(&self, id: &str) -> Result<Value, CliError> {
        self.call(Method::GET, &format!("/api/v1/integrations/{id}"), None).await
    }
    async fn state_at(&self, id: &str, at: At) -> Result<Value, CliError> {
        let q = match at {
            At::Version(v) => query(&[("version", Some(v.to_string()))]),
            At::Time(t) => query(&[("at", Some(t.to_rfc3339()))]),
        };
        self.call(Method::GET, &format!("/api/v1/integrations/{id}/state{q}"), None).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Value, CliError> {
        let q = query(&[
            ("stage", filter.stage.map(|s| s.as_str().to_owned())),
            ("owner", filter.owner.clone()),
            ("blocked", filter.blocked.map(|b| b.to_string())),
            ("stalled_days", filter.stalled_days.map(|d| d.to_string())),
        ]);
        self.call(Method::GET, &format!("/api/v1/integrations{q}"), None).await
    }
    async fn board(&self) -> Result<Value, CliError> {
        self.call(Method::GET, "/api/v1/board", None).await
    }
    async fn calendar(&self) -> Result<Value, CliError> {
        self.call(Method::GET, "/api/v1/calendar", None).await
    }

    async fn insights(&self) -> Result<Value, CliError> {
        self.call(Method::GET, "/api/v1/insights", None).await
    }
    async fn history(&self, id: &str, after: u64, limit: usize) -> Result<Value, CliError> {
        let mut all = Vec::new();
        let mut after = after;
        loop {
            let page = self
                .call(
                    Method::GET,
                    &format!("/api/v1/integrations/{id}/history?after={after}&limit={}", limit.min(1000)),
                    None,
                )
                .await?;
            all.extend(page["events"].as_array().cloned().unwrap_or_default());
            match page["next_after"].as_u64() {
                Some(next) if all.len() < limit => after = next,
                _ => break,
            }
        }
        all.truncate(limit);
        Ok(Value::Array(all))
    }
    async fn audit(&self, q: &AuditQuery) -> Result<Value, CliError> {
        let q = query(&[
            ("actor", q.actor.clone()),
            ("type", q.event_type.clone()),
            ("integration", q.integration.map(|i| i.to_string())),
            ("since", q.since.map(|t| t.to_rfc3339())),
            ("until", q.until.map(|t| t.to_rfc3339())),
            ("after", Some(q.after.to_string())),
            ("limit", Some(q.limit.to_string())),
        ]);
        self.call(Method::GET, &format!("/api/v1/events{q}"), None).await
    }
    async fn diagnose(&self, id: &str) -> Result<Value, CliError> {
        self.call(Method::GET, &format!("/api/v1/integrations/{id}/diagnose"), None).await
    }
    async fn verify(&self, expect: Option<&str>) -> Result<Value, CliError> {
        self.call(
            Method::GET,
            &format!("/api/v1/audit/verify{}", query(&[("expect", expect.map(str::to_owned))])),
            None,
        )
        .await
    }
    async fn export_page(&self, after: u64, limit: usize) -> Result<Vec<Value>, CliError> {
        // The server streams the whole log; take the page asked for.
        if after > 0 {
            return Ok(Vec::new());
        }
        let response = self
            .http
            .get(format!("{}/api/v1/export", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| CliError::Other(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CliError::Other(e.to_string()))?;
        if !status.is_success() {
            return Err(problem_error(status, &text));
        }
        let _ = limit;
        text.lines().map(|l| serde_json::from_str(l).map_err(|e| CliError::Other(e.to_string()))).collect()
    }
    async fn shred(&self, id: &str) -> Result<Value, CliError> {
        self.call(Method::POST, &format!("/api/v1/integrations/{id}/shred"), None).await
    }
    async fn check(&self, id: &str, body: Value, progress: &(dyn Fn(String) + Send + Sync)) -> Result<Value, CliError> {
        let accepted = self.call(Method::POST, &format!("/api/v1/integrations/{id}/checks"), Some(&body)).await?;
        let check_id = accepted["check_id"].clone();
        // The server runs the checks; their progress and results are in the integration's
        // state, read until the run is recorded as finished (or abandoned).
        let started = std::time::Instant::now();
        loop {
            let state = self.call(Method::GET, &format!("/api/v1/integrations/{id}"), None).await?;
            let run = state["check_runs"]
                .as_array()
                .and_then(|runs| runs.iter().find(|r| r["check_id"] == check_id))
                .cloned();
            match run {
                Some(run) if !run["finished_at"].is_null() => {
                    return Ok(json!({"check_id": check_id, "run": run, "state": state}));
                }
                Some(run) if run["under_way"] == false => {
                    return Err(CliError::Other(format!(
                        "the run of checks {} stopped before it finished (the server restarted?): run golive check again",
                        check_id.as_str().unwrap_or("")
                    )));
                }
                _ => {}
            }
            let waiting: Vec<String> = state["test_deliveries"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, p)| {
                    p["check_id"] == check_id
                        && (p["outcome"].is_null()
                            || matches!(p["outcome"]["outcome"].as_str(), Some("sent" | "delivered")))
                        && p["received_at"].is_null()
                })
                .map(|(trigger, _)| trigger.clone())
                .collect();
            if waiting.is_empty() {
                progress("checking through GitLab's API".to_owned());
            } else {
                progress(format!("waiting for the test deliveries of {}", waiting.join(", ")));
            }
            if started.elapsed() > std::time::Duration::from_secs(45 * 60) {
                return Err(CliError::Other("the run of checks did not finish within 45 minutes".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    async fn probe(&self, id: &str) -> Result<Value, CliError> {
        self.call(Method::POST, &format!("/api/v1/integrations/{id}/probe"), None).await
    }
    async fn public_url(&self) -> Result<Option<String>, CliError> {
        Ok(None)
    }
    async fn store_public_url(&self, _url: &str) -> Result<(), CliError> {
        Err(CliError::Usage(
            "golive init --public-url stores the URL with the store: run it where the store is (without --server)"
                .into(),
        ))
    }
    async fn intake_create(&self, id: &str, expires_in_hours: u32) -> Result<Value, CliError> {
        let body = json!({"expires_in_hours": expires_in_hours});
        self.call(Method::POST, &format!("/api/v1/integrations/{id}/intake-links"), Some(&body)).await
    }
    async fn reveal(&self, id: &str, kind: SecretKind) -> Result<String, CliError> {
        let answer = self
            .call(Method::POST, &format!("/api/v1/integrations/{id}/reveal"), Some(&json!({"secret": kind})))
            .await?;
        Ok(answer["secret"].as_str().unwrap_or_default().to_owned())
    }
    async fn playbook_add(&self, body: Value) -> Result<Value, CliError> {
        self.call(Method::POST, "/api/v1/playbooks", Some(&body)).await
    }
    async fn playbook_list(&self) -> Result<Value, CliError> {
        self.call(Method::GET, "/api/v1/playbooks", None).await
    }
    async fn playbook_show(&self, id: &str, version: Option<u32>) -> Result<Value, CliError> {
        let id =
            crate::domain::PlaybookId::parse(id).map_err(|e| CliError::Usage(format!("playbook id {id:?}: {e}")))?;
        let path = format!("/api/v1/playbooks/{id}{}", query(&[("version", version.map(|v| v.to_string()))]));
        self.call(Method::GET, &path, None).await
    }
    async fn token_create(&self, name: &str, role: Role) -> Result<String, CliError> {
        let answer = self.call(Method::POST, "/api/v1/tokens", Some(&json!({"name": name, "role": role}))).await?;
        Ok(answer["token"].as_str().unwrap_or_default().to_owned())
    }
    async fn outbound(&self, call: super::client::OutboundCall) -> Result<Value, CliError> {
        use super::client::OutboundCall as Call;
        // Ids go into paths: only UUIDs, so nothing typed can reach another route.
        let uuid = |id: &str, what: &str| {
            uuid::Uuid::parse_str(id.trim()).map_err(|_| CliError::Usage(format!("{what} id {id:?}: must be a UUID")))
        };
        match call {
            Call::AddSubscription(body) => self.call(Method::POST, "/api/v1/subscriptions", Some(&body)).await,
            Call::ListSubscriptions => self.call(Method::GET, "/api/v1/subscriptions", None).await,
            Call::ShowSubscription(id) => {
                self.call(Method::GET, &format!("/api/v1/subscriptions/{}", uuid(&id, "subscription")?), None).await
            }
            Call::RemoveSubscription(id) => {
                let path = format!("/api/v1/subscriptions/{}", uuid(&id, "subscription")?);
                self.call(Method::DELETE, &path, None).await.map(|_| json!({"removed": id}))
            }
            Call::PauseSubscription(id) => {
                let path = format!("/api/v1/subscriptions/{}/pause", uuid(&id, "subscription")?);
                self.call(Method::POST, &path, Some(&json!({}))).await
            }
            Call::ResumeSubscription(id) => {
                let path = format!("/api/v1/subscriptions/{}/resume", uuid(&id, "subscription")?);
                self.call(Method::POST, &path, Some(&json!({}))).await
            }
            Call::ReplaySubscription(id, from) => {
                let path = format!("/api/v1/subscriptions/{}/replay", uuid(&id, "subscription")?);
                self.call(Method::POST, &path, Some(&json!({"from_position": from}))).await
            }
            Call::AddRule(body) => self.call(Method::POST, "/api/v1/notification-rules", Some(&body)).await,
            Call::ListRules => self.call(Method::GET, "/api/v1/notification-rules", None).await,
            Call::RemoveRule(id) => {
                let path = format!("/api/v1/notification-rules/{}", uuid(&id, "notification rule")?);
                self.call(Method::DELETE, &path, None).await.map(|_| json!({"removed": id}))
            }
            Call::Journal(id) => {
                let id = crate::domain::IntegrationId::parse(&id)
                    .map_err(|e| CliError::Usage(format!("integration id {id:?}: {e}")))?;
                self.call(Method::GET, &format!("/api/v1/integrations/{id}/notifications"), None).await
            }
        }
    }
    async fn token_list(&self) -> Result<Value, CliError> {
        self.call(Method::GET, "/api/v1/tokens", None).await
    }
    async fn token_revoke(&self, name: &str) -> Result<(), CliError> {
        self.call(Method::DELETE, &format!("/api/v1/tokens/{name}"), None).await.map(|_| ())
    }
    async fn webhook_replay(&self, id: &str, headers: &DeliveryHeaders, body: &[u8]) -> Result<Value, CliError> {
        let before = self.state(id).await?["version"].as_u64().unwrap_or(0);
        let mut request = self
            .http
            .post(format!("{}/hooks/gitlab/{id}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        let pairs = [
            ("x-gitlab-event", &headers.event),
            ("x-gitlab-token", &headers.token),
            ("x-gitlab-instance", &headers.instance),
            ("x-gitlab-webhook-uuid", &headers.webhook_uuid),
            ("x-gitlab-event-uuid", &headers.event_uuid),
            ("idempotency-key", &headers.idempotency_key),
            ("user-agent", &headers.user_agent),
            ("webhook-id", &headers.webhook_id),
            ("webhook-timestamp", &headers.webhook_timestamp),
            ("webhook-signature", &headers.webhook_signature),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.map_err(|e| CliError::Other(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CliError::Other(e.to_string()))?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(CliError::failed(
                ErrorKind::WebhookRefused,
                format!("delivery refused; it was counted but not recorded: {text}"),
            ));
        }
        if !status.is_success() {
            return Err(problem_error(status, &text));
        }
        // The receiver answers briefly; answer as a command does: the new state and the events
        // this delivery recorded.
        let state = self.state(id).await?;
        let events = self.history(id, before, 1000).await?;
        Ok(json!({"state": state, "events": events}))
    }
    async fn import(
        &self,
        _lines: Box<dyn Iterator<Item = std::io::Result<String>> + Send>,
        _progress: Box<dyn FnMut(u64) + Send>,
    ) -> Result<Value, CliError> {
        Err(CliError::Usage(
            "import works on a local data directory only: stop the server and run it without --server".into(),
        ))
    }
    async fn close(&self) -> Result<(), CliError> {
        Ok(())
    }
}

#[cfg(test)]
mod exit_code_table {
    //! The table test: every kind exits with the table's code, and every error the engine
    //! reports exits the same in local mode (the error itself) and remote mode (the problem the
    //! HTTP layer answers for it, read back by this client).
    use super::*;
    use crate::domain::{IntakeRefusal, IntegrationId, Rejection, Unmet};
    use crate::engine::{DeliveryError, EngineError, ImportError};
    use crate::error_kind::ERROR_TABLE;
    use crate::http::problem::Problem;
    use crate::secrets::SecretsError;
    use crate::store::StoreError;
    use axum::response::IntoResponse;
    use std::collections::HashSet;

    async fn over_the_wire(problem: Problem) -> CliError {
        let response = problem.into_response();
        let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        problem_error(status, &String::from_utf8_lossy(&body))
    }

    fn engine_errors() -> Vec<EngineError> {
        let id = IntegrationId::from_uuid(uuid::Uuid::from_u128(7));
        let unmet = vec![Unmet { id: "info.customer".into(), label: "Customer named".into() }];
        vec![
            EngineError::NotFound(id),
            Rejection::invalid("customer", "empty").into(),
            Rejection::UnknownType("no command frobnicate".into()).into(),
            Rejection::Malformed("expected an object".into()).into(),
            Rejection::GuardRejected { command: "go_live", unmet }.into(),
            Rejection::Cancelled.into(),
            Rejection::Intake(IntakeRefusal::Unknown).into(),
            Rejection::Intake(IntakeRefusal::Expired).into(),
            Rejection::Intake(IntakeRefusal::AlreadyUsed).into(),
            Rejection::Intake(IntakeRefusal::InstanceChanged).into(),
            EngineError::VersionMismatch { integration: id, expected: 3, actual: 4 },
            EngineError::Conflict { integration: id, attempts: 17 },
            EngineError::IdempotencyKeyReused,
            EngineError::NoSuchSecret(id),
            SecretsError::Shredded(id).into(),
            SecretsError::Unseal.into(),
            SecretsError::WrongMasterKey(id).into(),
            crate::engine::CodecError::FromTheFuture { position: 1, version: 99 }.into(),
            StoreError::WrongExpectedVersion { stream: id.as_uuid(), expected: 1, actual: 2 }.into(),
            StoreError::IdempotencyKeyReused { key: "k".into() }.into(),
            StoreError::EmptyAppend.into(),
            StoreError::Locked { path: "/data".into() }.into(),
            StoreError::Storage("disk full".into()).into(),
            StoreError::Corrupt { position: 9, reason: "bad hash".into() }.into(),
            StoreError::Poisoned("earlier write failed".into()).into(),
            StoreError::Closed.into(),
        ]
    }

    #[tokio::test]
    async fn every_kind_exits_with_its_table_code_over_the_wire() {
        // A locked data directory is the local CLI's alone: a server never answers it.
        for row in ERROR_TABLE.iter().filter(|row| row.kind != ErrorKind::StoreLocked) {
            let remote = over_the_wire(Problem::new(row.kind, "detail")).await;
            assert_eq!(remote.kind(), Some(row.kind), "{row:?}");
            assert_eq!(remote.exit_code(), row.exit_code, "{row:?}");
        }
    }

    #[tokio::test]
    async fn local_and_remote_exit_alike_for_every_engine_error() {
        let mut kinds_seen = HashSet::new();
        // Engine errors are not `Clone`: the list is made twice, once for each side.
        for (error, same) in engine_errors().into_iter().zip(engine_errors()) {
            let kind = error.kind();
            let described = format!("{error:?}");
            let remote = over_the_wire(Problem::from(same)).await;
            let local = CliError::from(error);
            // A locked data directory is the local CLI's alone: a server holds its lock.
            if kind != ErrorKind::StoreLocked {
                assert_eq!(local.exit_code(), remote.exit_code(), "{described}: local {local:?}, remote {remote:?}");
            }
            assert_eq!(local.kind(), Some(kind), "{described}");
            assert_eq!(local.exit_code(), kind.exit_code(), "{described}");
            kinds_seen.insert(kind);
        }
        // The engine's kinds are all exercised (the rest come from the HTTP layer itself).
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::InvalidField,
            ErrorKind::UnknownCommandType,
            ErrorKind::MalformedCommand,
            ErrorKind::GuardRejected,
            ErrorKind::IntegrationCancelled,
            ErrorKind::IntakeLinkUnknown,
            ErrorKind::IntakeLinkExpired,
            ErrorKind::IntakeLinkUsed,
            ErrorKind::IntakeInstanceChanged,
            ErrorKind::PreconditionFailed,
            ErrorKind::Conflict,
            ErrorKind::IdempotencyKeyReused,
            ErrorKind::Shredded,
            ErrorKind::StoreLocked,
            ErrorKind::StorageUnavailable,
            ErrorKind::Internal,
        ] {
            assert!(kinds_seen.contains(&kind), "no engine error of kind {kind:?} was tried");
        }
    }

    #[test]
    fn a_server_cannot_choose_an_exit_code_its_status_does_not_allow_nor_paint_the_terminal() {
        let lying = problem_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"type":"not-found","detail":"x"}"#);
        assert_eq!(lying.exit_code(), exit::RETRY_LATER);
        let locked = problem_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"type":"store-locked","detail":"x"}"#);
        assert_eq!(locked.exit_code(), exit::RETRY_LATER, "a lock is the local CLI's alone");
        let limited = problem_error(StatusCode::TOO_MANY_REQUESTS, "slow down");
        assert_eq!(limited.exit_code(), exit::RETRY_LATER);
        let painted = problem_error(
            StatusCode::NOT_FOUND,
            r#"{"type":"not-found","detail":"\u001b[2Jgone","unmet":[{"id":"a","label":"b"}]}"#,
        );
        assert!(!painted.to_string().contains('\u{1b}'), "{painted}");
        assert!(matches!(painted, CliError::Failed { ref unmet, .. } if unmet.is_empty()), "unmet only for 422");
    }

    #[tokio::test]
    async fn delivery_and_import_errors_exit_alike_local_and_remote() {
        let refused = DeliveryError::Refused(crate::gitlab::webhook::Refusal::MissingToken);
        assert_eq!(refused.kind(), ErrorKind::WebhookRefused);
        let remote = over_the_wire(Problem::new(refused.kind(), refused.to_string())).await;
        assert_eq!(remote.exit_code(), exit::AUTH);
        let not_empty = ImportError::NotEmpty(3);
        assert_eq!(not_empty.kind().exit_code(), exit::CONFLICT);
    }
}
