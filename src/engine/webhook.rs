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
    delivery_facts, signed_id, signing_key_bytes, verify_headers, verify_signature, DeliveryFacts, DeliveryHeaders,
    Malformed, Refusal,
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

/// What became of a delivery that was authenticated and well-formed.
#[derive(Debug)]
pub enum Received {
    /// Recorded; or, when `replayed`, a resend of one already recorded: nothing written.
    Recorded(Executed),
    /// A GitLab event golive does not use ([`DeliveryFacts::Unused`]): nothing written. The
    /// integration's version as the delivery was authenticated.
    Ignored { version: u64 },
}

/// A delivery whose headers passed [`Engine::authenticate_delivery`]: its body may now be read.
pub struct AuthenticatedDelivery {
    id: IntegrationId,
    headers: DeliveryHeaders,
    /// The HMAC key when the integration's deliveries must be signed.
    signing_key: Option<Vec<u8>>,
    /// The integration's version when the headers were checked.
    version: u64,
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
        Ok(AuthenticatedDelivery { id, headers, signing_key, version: state.version })
    }

    /// The second step: checks the signature over the body (when the delivery must be signed)
    /// and records the delivery's facts as `record_webhook_delivery` (actor `gitlab`), or, for a
    /// GitLab event golive does not use, records nothing ([`Received::Ignored`]).
    ///
    /// Dedup: a signed delivery is identified by the id it is signed with (`webhook-id`, which
    /// GitLab sets equal to the `Idempotency-Key`), an unsigned one by its `Idempotency-Key`.
    /// A repeat whose recorded facts (event, object kind, action, status, commit, project,
    /// object id, instance, key) are the same answers the first result and writes nothing, even
    /// when its body differs where GitLab redacts a resend (e-mail addresses); a repeat with
    /// different facts is refused (`idempotency-key-reused`). The record lives in the store, so
    /// this holds across replicas.
    pub async fn record_delivery(
        &self,
        delivery: AuthenticatedDelivery,
        body: &[u8],
    ) -> Result<Received, DeliveryError> {
        let AuthenticatedDelivery { id, headers, signing_key, version } = delivery;
        if let Err(refusal) = verify_signature(&headers, body, signing_key.as_deref()) {
            self.record_refused_delivery(id).await?;
            return Err(DeliveryError::Refused(refusal));
        }
        let facts = match delivery_facts(&headers, body, self.now()).map_err(DeliveryError::Malformed)? {
            DeliveryFacts::Record(facts) => facts,
            DeliveryFacts::Unused => return Ok(Received::Ignored { version }),
        };
        let request_digest = resend_digest(&facts);
        let mut request = ExecuteRequest::new(id, facts, Actor::parse("gitlab").expect("valid"));
        request.origin = Origin::Internal;
        // Only a verified signature makes `webhook-id` the sender's word; without one the
        // Idempotency-Key is the dedup key, as GitLab documents it.
        let dedup_key = match signing_key {
            Some(_) => signed_id(&headers),
            None => headers.idempotency_key.as_deref(),
        };
        if let Some(key) = dedup_key {
            let key = if key.len() <= MAX_PLAIN_KEY_BYTES {
                key.to_owned()
            } else {
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
            };
            request.idempotency_key = Some(format!("delivery/{key}"));
            request.request_digest = Some(request_digest);
        }
        Ok(Received::Recorded(self.execute(request).await?))
    }

    /// Verifies a delivery (token in constant time, signature when a signing key was issued)
    /// and records its facts: [`Engine::authenticate_delivery`] then [`Engine::record_delivery`].
    pub async fn receive_webhook(
        &self,
        id: IntegrationId,
        headers: &DeliveryHeaders,
        body: &[u8],
    ) -> Result<Received, DeliveryError> {
        let delivery = self.authenticate_delivery(id, headers.clone()).await?;
        self.record_delivery(delivery, body).await
    }
}

/// The facts of a delivery that say what happened, as opposed to how this attempt arrived.
///
/// A resend is GitLab's *logged* copy of the request (`WebHooks::Events::ResendService` posts
/// `web_hook_log.request_data` again with the logged `Idempotency-Key`), and the log is not the
/// request: `WebHookLog#redact_user_emails` replaces every e-mail-shaped value with
/// `[REDACTED]` before saving, and an oversized entry is stored as `{"oversize": true}`. So the
/// digest cannot cover the body. It covers every recorded fact except those that describe the
/// attempt (received-at, the body's SHA-256, `X-Gitlab-Webhook-UUID`, which is new per attempt,
/// the `User-Agent`, which changes when GitLab is upgraded between the two, and whether it was
/// signed). None of the covered facts can hold an e-mail address (each is checked against a known
/// shape), so GitLab's redaction never changes them; and a repeat that would record anything
/// different under the same key is a conflict, never a silent duplicate: the first record stands.
fn resend_digest(facts: &serde_json::Value) -> String {
    const PER_ATTEMPT: [&str; 5] = ["received_at", "body_sha256", "webhook_uuid", "user_agent", "signed"];
    let mut covered = facts.clone();
    if let Some(map) = covered.as_object_mut() {
        for key in PER_ATTEMPT {
            map.remove(key);
        }
    }
    let mut text = String::new();
    crate::store::canonical_json(&covered, &mut text);
    hex::encode(sha2::Sha256::digest(format!("delivery-facts/v1\0{text}").as_bytes()))
}
