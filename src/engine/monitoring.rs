//! Monitoring: what golive watches, about each integration and about itself.
//!
//! The monitoring timer's pass ([`Engine::monitoring_tick`]) probes every integration in its
//! monitoring window whose last probe is older than its playbook's interval, and completes
//! monitoring once the window has passed cleanly, and re-runs the read-only checks through
//! GitLab's API (application, webhook) with each probe; a probe ([`Engine::probe`]) unseals the
//! integration's access token and records what GitLab answered. Refused webhook deliveries are
//! counted outside the log, in per-integration counters every replica adds to, and feed the
//! diagnosis of a stuck integration. The projector's health and lag are what `/readyz` and
//! `/metrics` report about golive itself.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::projector::ProjectorStatus;
use super::{Engine, EngineError, ExecuteRequest, Executed};
use crate::domain::{self, Actor, DeliverySignals, Diagnosis, IntegrationId};
use crate::store::EventStore;

/// The counter of an integration's refused deliveries (one row or key per integration,
/// incremented atomically, so replicas never lose each other's counts).
fn refused_counter_key(id: IntegrationId) -> String {
    format!("refused_deliveries/{id}")
}

/// An integration's signal values live under this prefix: `first` and `last` (RFC 3339 times)
/// and `legacy` (the count carried over from the single value stores used to keep).
fn signals_prefix(id: IntegrationId) -> String {
    format!("signals/{id}/")
}

/// The single value that held every integration's signals before they were split.
const LEGACY_SIGNALS_KEY: &str = "signals";

fn time_bytes(at: chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    serde_json::to_vec(&at).expect("times serialize")
}

/// Splits the old single `signals` value into per-integration keys, then removes it. Every
/// write is an insert-if-absent, so replicas starting at once, or a restart after a crash
/// half way, neither lose nor double a count; the old value goes only if nobody changed it.
pub(super) async fn split_legacy_signals(store: &dyn EventStore) -> Result<(), EngineError> {
    let Some(bytes) = store.get_aux(LEGACY_SIGNALS_KEY).await? else { return Ok(()) };
    let Ok(legacy) = serde_json::from_slice::<HashMap<IntegrationId, DeliverySignals>>(&bytes) else {
        tracing::warn!("the old refused-delivery signals (aux key {LEGACY_SIGNALS_KEY:?}) are unreadable; ignored");
        return Ok(());
    };
    for (id, signals) in legacy {
        carry_over_signals(store, id, &signals).await?;
    }
    store.compare_and_swap_aux(LEGACY_SIGNALS_KEY, Some(&bytes), None).await?;
    Ok(())
}

/// Writes signals counted elsewhere (an old single value, another store) as the integration's
/// carried-over values, each only where none is stored yet.
async fn carry_over_signals(
    store: &dyn EventStore,
    id: IntegrationId,
    signals: &DeliverySignals,
) -> Result<(), EngineError> {
    let prefix = signals_prefix(id);
    store.put_aux_if_absent(&format!("{prefix}legacy"), signals.refused_deliveries.to_be_bytes().to_vec()).await?;
    if let Some(first) = signals.first_refused_at {
        store.put_aux_if_absent(&format!("{prefix}first"), time_bytes(first)).await?;
    }
    if let Some(last) = signals.last_refused_at {
        store.put_aux_if_absent(&format!("{prefix}last"), time_bytes(last)).await?;
    }
    Ok(())
}

impl Engine {
    /// Counts a delivery refused for a bad or missing token (never an event): an atomic
    /// increment of the integration's counter, the first refusal's time written only when
    /// absent, the last one's overwritten (replicas racing may leave any of their nearly equal
    /// times there).
    pub async fn record_refused_delivery(&self, id: IntegrationId) -> Result<(), EngineError> {
        let now = self.now();
        let store = self.store().as_ref();
        let prefix = signals_prefix(id);
        store.add_to_counter(&refused_counter_key(id), 1).await?;
        store.put_aux_if_absent(&format!("{prefix}first"), time_bytes(now)).await?;
        store.put_aux(&format!("{prefix}last"), time_bytes(now)).await?;
        Ok(())
    }

    /// What the store knows of an integration's refused deliveries, on every replica.
    pub async fn delivery_signals(&self, id: IntegrationId) -> Result<DeliverySignals, EngineError> {
        let store = self.store().as_ref();
        let mut signals = DeliverySignals {
            refused_deliveries: store.read_counter(&refused_counter_key(id)).await?,
            ..DeliverySignals::default()
        };
        let prefix = signals_prefix(id);
        for (key, value) in store.scan_aux(&prefix).await? {
            match &key[prefix.len()..] {
                "first" => signals.first_refused_at = serde_json::from_slice(&value).ok(),
                "last" => signals.last_refused_at = serde_json::from_slice(&value).ok(),
                "legacy" if value.len() == 8 => {
                    let carried = u64::from_be_bytes(value.as_slice().try_into().expect("eight bytes"));
                    signals.refused_deliveries = signals.refused_deliveries.saturating_add(carried);
                }
                _ => {}
            }
        }
        Ok(signals)
    }

    /// Carries an integration's refused-delivery signals over to another engine's store (a
    /// migration between backends), as that store's carried-over values.
    pub async fn copy_delivery_signals_into(&self, target: &Engine, id: IntegrationId) -> Result<(), EngineError> {
        let signals = self.delivery_signals(id).await?;
        if signals.refused_deliveries == 0 {
            return Ok(());
        }
        carry_over_signals(target.store().as_ref(), id, &signals).await
    }

    /// Why an integration is stuck and what to check.
    pub async fn diagnose(&self, id: IntegrationId) -> Result<Diagnosis, EngineError> {
        let state = self.state(id).await?;
        Ok(state.diagnose(self.now(), &self.delivery_signals(id).await?))
    }
}

impl Engine {
    /// The projector's health and lag behind the log's head.
    pub async fn projector_status(&self) -> Result<ProjectorStatus, EngineError> {
        self.projection().status().await
    }
}

/// What one pass of the monitoring timer did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TickReport {
    pub probed: Vec<IntegrationId>,
    /// Integrations whose application and webhook were checked through GitLab's API.
    pub checked: Vec<IntegrationId>,
    pub completed: Vec<IntegrationId>,
}

impl Engine {
    /// Probes the integration's GitLab with its sealed access token and records what it found
    /// (`record_probe_result`). The probe is an action of whoever asked: the recorded event's
    /// actor is `actor` (a rep's token name, the CLI's user, or `monitoring-timer`), so an audit
    /// by actor finds it. Connections follow the configured egress policy. Returns the
    /// recorded input.
    pub async fn probe(
        &self,
        id: IntegrationId,
        config: &crate::gitlab::probe::ProbeConfig,
        actor: &Actor,
    ) -> Result<(Executed, Value), EngineError> {
        let state = self.state(id).await?;
        let target = self.gitlab_target(&state, "probe").await?;
        let required = state.playbook.required_token_scopes.iter().map(|s| s.as_str().to_owned()).collect();
        let found = crate::gitlab::probe::probe(&target, &required, config, &self.config().probe_egress).await;
        let request = ExecuteRequest::new(id, found.clone(), actor.clone()).internal();
        let executed = self.execute(request).await?;
        Ok((executed, found))
    }

    /// One pass of the monitoring timer: probes every monitoring integration whose last probe
    /// is older than its playbook's interval, and completes monitoring for those whose window
    /// has passed cleanly (not blocked).
    pub async fn monitoring_tick(&self, config: &crate::gitlab::probe::ProbeConfig) -> Result<TickReport, EngineError> {
        let now = self.now();
        let candidates: Vec<domain::Integration> =
            { self.read_model_snapshot().await?.integrations.into_values().filter(|s| s.is_monitoring()).collect() };
        let mut report = TickReport::default();
        let timer = Actor::parse("monitoring-timer").expect("valid");
        for state in candidates {
            let monitoring = state.monitoring.as_ref().expect("monitoring integrations have a window");
            if now >= monitoring.ends_at && state.block.is_none() {
                let request = ExecuteRequest::new(state.id, json!({"type": "complete_monitoring"}), timer.clone());
                match self.execute(request).await {
                    Ok(_) => report.completed.push(state.id),
                    Err(error) => tracing::warn!(integration = %state.id, %error, "completing monitoring failed"),
                }
                continue;
            }
            let interval = chrono::Duration::minutes(i64::from(state.playbook.probe_interval_minutes));
            let due = state.facts.latest_probe.as_ref().is_none_or(|p| now - p.at >= interval);
            if due && state.usable_access_token().is_some() {
                match self.probe(state.id, config, &timer).await {
                    Ok(_) => report.probed.push(state.id),
                    Err(error) => tracing::warn!(integration = %state.id, %error, "the monitoring probe failed to run"),
                }
                // The read-only checks go with the probe: an application or a webhook changed
                // in GitLab after go-live shows up (and blocks) within one probe interval.
                let checks: std::collections::BTreeSet<domain::CheckKind> = domain::CheckKind::READ_ONLY
                    .into_iter()
                    .filter(|check| match check {
                        domain::CheckKind::Application => state.facts.application.is_some(),
                        _ => state.facts.webhook_credentials.is_some(),
                    })
                    .collect();
                if !checks.is_empty() {
                    // Where the webhook was last found is where the timer looks, rather than
                    // searching every group and project each interval.
                    let hook_place = match state.facts.webhook_check.as_ref().map(|(c, _)| &c.finding) {
                        Some(domain::WebhookFinding::Found {
                            location: domain::HookLocation::Group { group_id },
                            ..
                        }) => Some(crate::gitlab::checks::HookPlace::Group(*group_id)),
                        Some(domain::WebhookFinding::Found {
                            location: domain::HookLocation::Project { project_id },
                            ..
                        }) => Some(crate::gitlab::checks::HookPlace::Project(*project_id)),
                        _ => None,
                    };
                    let request = super::CheckRequest { checks, hook_place, ..super::CheckRequest::all() };
                    // Started, not awaited: a slow GitLab delays its own run, never the timer's
                    // pass over the other integrations.
                    match self.start_check(state.id, request, &timer).await {
                        Ok(_) => report.checked.push(state.id),
                        Err(error) => {
                            tracing::warn!(integration = %state.id, %error, "the monitoring checks failed to run")
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}
