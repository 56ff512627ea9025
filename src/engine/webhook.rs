//! The webhook receiver's core, shared by `POST /hooks/gitlab/{id}` and `golive webhook replay`.

use chrono::Utc;

use super::{Engine, EngineError, ExecuteRequest, Executed};
use crate::domain::{Actor, IntegrationId, Origin};
use crate::gitlab::webhook::{delivery_facts, signing_key_bytes, verify, DeliveryHeaders, Malformed, Refusal};
use crate::secrets;

/// How a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// 401: counted for `diagnose` and `/metrics`, nothing stored.
    #[error("delivery refused: {0}")]
    Refused(Refusal),
    /// 400: nothing stored.
    #[error("malformed delivery: {0}")]
    Malformed(Malformed),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl Engine {
    /// Verifies a delivery (token in constant time, signature when a signing key was issued)
    /// and records its facts as `record_webhook_delivery` (actor `gitlab`). A resend with the
    /// same `Idempotency-Key` and body answers the first result and writes nothing.
    pub async fn receive_webhook(
        &self,
        id: IntegrationId,
        headers: &DeliveryHeaders,
        body: &[u8],
    ) -> Result<Executed, DeliveryError> {
        let state = self.state(id).await?;
        let credentials = state.facts.webhook_credentials.as_ref();
        let signing_key = match credentials.and_then(|c| c.signing_key.as_ref()) {
            Some(sealed) => {
                let key = self
                    .inner
                    .keystore
                    .existing_data_key(id)
                    .await
                    .map_err(EngineError::from)?
                    .ok_or(EngineError::Secrets(secrets::SecretsError::Shredded(id)))?;
                let written = secrets::unseal(&key, id, sealed).map_err(EngineError::from)?;
                let written =
                    String::from_utf8(written).map_err(|_| EngineError::Secrets(secrets::SecretsError::Unseal))?;
                Some(signing_key_bytes(&written).ok_or(EngineError::Secrets(secrets::SecretsError::Unseal))?)
            }
            None => None,
        };
        let now = self.now();
        if let Err(refusal) = verify(headers, body, credentials.map(|c| &c.token_digest), signing_key.as_deref(), now) {
            self.record_refused_delivery(id).await?;
            return Err(DeliveryError::Refused(refusal));
        }
        let facts = delivery_facts(headers, body, Utc::now()).map_err(DeliveryError::Malformed)?;
        let mut request = ExecuteRequest::new(id, facts, Actor::parse("gitlab").expect("valid"));
        request.origin = Origin::Internal;
        // GitLab keeps the Idempotency-Key when a delivery is resent: the dedup key. The digest
        // covers the event and the body, so a resend matches whatever its received-at.
        if let Some(key) = &headers.idempotency_key {
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            sha2::Digest::update(&mut hasher, headers.event.clone().unwrap_or_default().as_bytes());
            sha2::Digest::update(&mut hasher, b"\0");
            sha2::Digest::update(&mut hasher, body);
            request.idempotency_key = Some(format!("delivery/{key}"));
            request.request_digest = Some(hex::encode(sha2::Digest::finalize(hasher)));
        }
        Ok(self.execute(request).await?)
    }
}
