//! Secret operations: the audited reveal of a sealed secret and crypto-shredding.
//!
//! A reveal unseals one of the integration's secrets with its data key and records the reveal
//! (who, which secret, its fingerprint) before the plaintext is returned; a shred destroys the
//! integration's data key in the keystore, then records the shredding, after which every
//! sealed secret of the integration stays sealed. Both records go through the write path.

use super::{Engine, EngineError, Executed};
use crate::domain::{Actor, Command, Integration, IntegrationId, SealedSecret, SecretKind};
use crate::secrets::{self, DataKey, SecretsError};

/// Unseals one of the integration's secrets. After a shred, a secret sealed before it stays
/// sealed even when a newer key exists (one made for a secret provided since): that is the
/// shred doing its work, answered as `Shredded` (410), not as an internal error.
pub(super) fn unseal_secret(key: &DataKey, state: &Integration, sealed: &SealedSecret) -> Result<Vec<u8>, EngineError> {
    secrets::unseal(key, state.id, sealed).map_err(|error| match error {
        SecretsError::Unseal if state.facts.secrets_shredded_at.is_some() => SecretsError::Shredded(state.id).into(),
        other => other.into(),
    })
}

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
        let plaintext = unseal_secret(&key, &state, &sealed)?;
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
