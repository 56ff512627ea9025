//! Secret operations: the audited reveal of a sealed secret and crypto-shredding.
//!
//! A reveal unseals one of the integration's secrets with its data key and records the reveal
//! (who, which secret, its fingerprint) before the plaintext is returned; a shred destroys the
//! integration's data key in the keystore, then records the shredding, after which every
//! sealed secret of the integration stays sealed. Both records go through the write path.

use super::{Engine, EngineError, Executed};
use crate::domain::{Actor, Command, IntegrationId, SecretKind};
use crate::secrets::{self, SecretsError};

impl Engine {
    /// Reveals a sealed secret in plaintext to `actor`, after recording that it did.
    pub async fn reveal(&self, id: IntegrationId, kind: SecretKind, actor: &Actor) -> Result<String, EngineError> {
        let state = self.state(id).await?;
        let sealed = match kind {
            SecretKind::ApplicationSecret => state.facts.application_secret.as_ref().map(|s| s.secret.clone()),
            SecretKind::AccessToken => state.facts.access_token.as_ref().map(|t| t.token.clone()),
            SecretKind::WebhookSigningKey => {
                state.facts.webhook_credentials.as_ref().and_then(|c| c.signing_key.clone())
            }
        }
        .ok_or(EngineError::NoSuchSecret(id))?;
        let key = self.keystore().existing_data_key(id).await?.ok_or(SecretsError::Shredded(id))?;
        let plaintext = secrets::unseal(&key, id, &sealed)?;
        let command = Command::RecordSecretReveal { kind, fingerprint: sealed.fingerprint.clone() };
        self.writes().execute_internal(id, command, actor).await?;
        String::from_utf8(plaintext).map_err(|_| EngineError::Secrets(SecretsError::Unseal))
    }

    /// Destroys the integration's data key and records that it did.
    pub async fn shred(&self, id: IntegrationId, actor: &Actor) -> Result<Executed, EngineError> {
        self.state(id).await?;
        self.keystore().shred(id).await?;
        self.writes().execute_internal(id, Command::RecordSecretsShredded, actor).await
    }
}
