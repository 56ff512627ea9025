//! The webhook receiver's core, shared by `POST /hooks/gitlab/{id}` and `golive webhook replay`.
//!
//! Two steps, so that nothing is read before it is authenticated: [`Engine::authenticate_delivery`]
//! looks only at the headers (the integration exists, the token matches in constant time, a
//! signed delivery carries a fresh signature) and [`Engine::record_delivery`] takes the body,
//! checks the signature over it and records the facts. [`Engine::receive_webhook`] does both.

use sha2::Digest;

use super::{Engine, EngineError, ExecuteRequest, Executed};
use crate::domain::{Actor, IntegrationId, Origin};
use crate::gitlab::webhook::{
    delivery_facts, signed_id, signing_key_bytes, verify_headers, verify_signature, DeliveryHeaders, Malformed, Refusal,
};
use crate::secrets;

/// Dedup keys longer than this are stored as their SHA-256 (a header can be long; a key in the
/// store should not be).
const MAX_PLAIN_KEY_BYTES: usize = 200;

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

impl DeliveryError {
    /// This error's one kind ([`crate::error_kind::ERROR_TABLE`]).
    pub fn kind(&self) -> crate::error_kind::ErrorKind {
        match self {
            DeliveryError::Refused(_) => crate::error_kind::ErrorKind::WebhookRefused,
            DeliveryError::Malformed(_) => crate::error_kind::ErrorKind::MalformedDelivery,
            DeliveryError::Engine(error) => error.kind(),
        }
    }
}

/// A delivery whose headers passed [`Engine::authenticate_delivery`]: its body may now be read.
pub struct AuthenticatedDelivery {
    id: IntegrationId,
    headers: DeliveryHeaders,
    /// The HMAC key when the integration's deliveries must be signed.
    signing_key: Option<Vec<u8>>,
}

impl std::fmt::Debug for AuthenticatedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticatedDelivery")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .field("signed", &self.signing_key.is_some())
            .finish()
    }
}

impl AuthenticatedDelivery {
    pub fn integration(&self) -> IntegrationId {
        self.id
    }
}

impl Engine {
    /// The first step, on headers alone: the integration exists (else `NotFound`), the
    /// `X-Gitlab-Token` matches the issued one in constant time, and when a signing key was
    /// issued the delivery carries a signature, an id and a timestamp at most 5 minutes off.
    /// A refusal is counted for `diagnose` and `/metrics`, as before; nothing is stored.
    pub async fn authenticate_delivery(
        &self,
        id: IntegrationId,
        headers: DeliveryHeaders,
    ) -> Result<AuthenticatedDelivery, DeliveryError> {
        let state = self.state(id).await?;
        let credentials = state.facts.webhook_credentials.as_ref();
        let signing_key = match credentials.and_then(|c| c.signing_key.as_ref()) {
            Some(sealed) => {
                let key = self
                    .keystore()
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
        let verdict = verify_headers(&headers, credentials.map(|c| &c.token_digest), signing_key.is_some(), self.now());
        if let Err(refusal) = verdict {
            self.record_refused_delivery(id).await?;
            return Err(DeliveryError::Refused(refusal));
        }
        Ok(AuthenticatedDelivery { id, headers, signing_key })
    }

    /// The second step: checks the signature over the body (when the delivery must be signed)
    /// and records the delivery's facts as `record_webhook_delivery` (actor `gitlab`).
    ///
    /// Dedup: a signed delivery is identified by the id it is signed with (`webhook-id`, which
    /// GitLab sets equal to the `Idempotency-Key`), an unsigned one by its `Idempotency-Key`.
    /// A repeat with the same event and body answers the first result and writes nothing; the
    /// record lives in the store, so this holds across replicas.
    pub async fn record_delivery(
        &self,
        delivery: AuthenticatedDelivery,
        body: &[u8],
    ) -> Result<Executed, DeliveryError> {
        let AuthenticatedDelivery { id, headers, signing_key } = delivery;
        if let Err(refusal) = verify_signature(&headers, body, signing_key.as_deref()) {
            self.record_refused_delivery(id).await?;
            return Err(DeliveryError::Refused(refusal));
        }
        let facts = delivery_facts(&headers, body, self.now()).map_err(DeliveryError::Malformed)?;
        let mut request = ExecuteRequest::new(id, facts, Actor::parse("gitlab").expect("valid"));
        request.origin = Origin::Internal;
        // Only a verified signature makes `webhook-id` the sender's word; without one the
        // Idempotency-Key is the dedup key, as GitLab documents it.
        let dedup_key = match signing_key {
            Some(_) => signed_id(&headers),
            None => headers.idempotency_key.as_deref(),
        };
        if let Some(key) = dedup_key {
            // The digest covers the event and the body, so a resend matches whatever its
            // received-at (and, signed, whatever its new timestamp).
            let mut hasher = sha2::Sha256::new();
            hasher.update(headers.event.clone().unwrap_or_default().as_bytes());
            hasher.update(b"\0");
            hasher.update(body);
            let key = if key.len() <= MAX_PLAIN_KEY_BYTES {
                key.to_owned()
            } else {
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
            };
            request.idempotency_key = Some(format!("delivery/{key}"));
            request.request_digest = Some(hex::encode(hasher.finalize()));
        }
        Ok(self.execute(request).await?)
    }

    /// Verifies a delivery (token in constant time, signature when a signing key was issued)
    /// and records its facts: [`Engine::authenticate_delivery`] then [`Engine::record_delivery`].
    pub async fn receive_webhook(
        &self,
        id: IntegrationId,
        headers: &DeliveryHeaders,
        body: &[u8],
    ) -> Result<Executed, DeliveryError> {
        let delivery = self.authenticate_delivery(id, headers.clone()).await?;
        self.record_delivery(delivery, body).await
    }
}
