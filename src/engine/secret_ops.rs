//! Signals and secrets: refused-delivery counters, diagnosis, audited reveal, shredding.

use super::*;

impl Engine {
    /// Counts a delivery refused for a bad or missing token (never an event).
    pub async fn record_refused_delivery(&self, id: IntegrationId) -> Result<(), EngineError> {
        let now = self.now();
        let bytes = {
            let mut signals = self.inner.signals.lock().expect("signals lock");
            let entry = signals.entry(id).or_default();
            entry.refused_deliveries += 1;
            entry.first_refused_at.get_or_insert(now);
            entry.last_refused_at = Some(now);
            serde_json::to_vec(&*signals).expect("signals serialize")
        };
        self.inner.store.put_aux("signals", bytes).await?;
        Ok(())
    }

    pub fn delivery_signals(&self, id: IntegrationId) -> DeliverySignals {
        self.inner.signals.lock().expect("signals lock").get(&id).cloned().unwrap_or_default()
    }

    /// Why an integration is stuck and what to check.
    pub async fn diagnose(&self, id: IntegrationId) -> Result<Diagnosis, EngineError> {
        let state = self.state(id).await?;
        Ok(state.diagnose(self.now(), &self.delivery_signals(id)))
    }

    /// Reveals a sealed secret in plaintext to `actor`, after recording that it did.
    pub async fn reveal(&self, id: IntegrationId, kind: SecretKind, actor: &Actor) -> Result<String, EngineError> {
        let state = self.state(id).await?;
        let sealed = match kind {
            SecretKind::ApplicationSecret => state.facts.application_secret.clone(),
            SecretKind::AccessToken => state.facts.access_token.as_ref().map(|t| t.token.clone()),
            SecretKind::WebhookSigningKey => {
                state.facts.webhook_credentials.as_ref().and_then(|c| c.signing_key.clone())
            }
        }
        .ok_or(EngineError::NoSuchSecret(id))?;
        let key = self.inner.keystore.existing_data_key(id).await?.ok_or(SecretsError::Shredded(id))?;
        let plaintext = secrets::unseal(&key, id, &sealed)?;
        let command = Command::RecordSecretReveal { kind, fingerprint: sealed.fingerprint.clone() };
        self.execute_internal(id, command, actor).await?;
        String::from_utf8(plaintext).map_err(|_| EngineError::Secrets(SecretsError::Unseal))
    }

    /// Destroys the integration's data key and records that it did.
    pub async fn shred(&self, id: IntegrationId, actor: &Actor) -> Result<Executed, EngineError> {
        self.state(id).await?;
        self.inner.keystore.shred(id).await?;
        self.execute_internal(id, Command::RecordSecretsShredded, actor).await
    }
}
