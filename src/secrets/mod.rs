//! Sealing secrets: the edge's implementation of the domain's [`Sealer`].
//!
//! Each integration has its own 256-bit data key. Secrets are sealed with XChaCha20-Poly1305
//! under that key, with the integration id and the secret's kind as associated data, so a
//! sealed value cannot be moved to another integration or field. Fingerprints are an HMAC of
//! the plaintext under a key derived from the data key: equal secrets of one integration match,
//! and nothing links secrets across integrations. Webhook tokens are random, shown once and
//! stored only as a SHA-256 digest.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::domain::{
    HttpUrl, IntegrationId, IssuedWebhookCredentials, PlaintextSecret, SealedSecret, Sealer, SecretKind, TokenDigest,
};

/// Random bytes in a generated webhook secret token.
pub const WEBHOOK_TOKEN_BYTES: usize = 32;
/// Random bytes in a generated signing key.
pub const SIGNING_KEY_BYTES: usize = 32;

mod keystore;
mod pg_keystore;

pub use keystore::{FileKeystore, Keystore, MasterKey, MasterKeySource, MASTER_KEY_ENV};
pub use pg_keystore::PgKeystore;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("a sealed value is malformed or was sealed for another integration or field")]
    Unseal,
    #[error("the data key of integration {0} was shredded: its secrets are gone for good")]
    Shredded(IntegrationId),
    #[error("the data key of integration {0} cannot be unwrapped: is this the master key it was created with?")]
    WrongMasterKey(IntegrationId),
    #[error("the master key is invalid: {0}")]
    InvalidMasterKey(String),
    #[error("keystore IO failed on {path}: {message}")]
    Io { path: String, message: String },
}

/// A per-integration data key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        crate::sources::fill_random(&mut bytes);
        Self(bytes)
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn fingerprint(&self, kind: SecretKind, plaintext: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"golive fingerprint v1\0");
        mac.update(kind_label(kind).as_bytes());
        mac.update(b"\0");
        mac.update(plaintext);
        let digest = mac.finalize().into_bytes();
        format!("hmac:{}", hex::encode(&digest[..8]))
    }
}

fn kind_label(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::ApplicationSecret => "application_secret",
        SecretKind::AccessToken => "access_token",
        SecretKind::WebhookSigningKey => "webhook_signing_key",
    }
}

fn associated_data(integration: IntegrationId, kind: SecretKind) -> Vec<u8> {
    format!("golive v1 {integration} {}", kind_label(kind)).into_bytes()
}

/// Seals `plaintext` for `integration` under `key`.
pub fn seal(key: &DataKey, integration: IntegrationId, kind: SecretKind, plaintext: &[u8]) -> SealedSecret {
    let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
    let mut nonce = [0u8; 24];
    crate::sources::fill_random(&mut nonce);
    let aad = associated_data(integration, kind);
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    SealedSecret { kind, sealed: STANDARD.encode(sealed), fingerprint: key.fingerprint(kind, plaintext) }
}

/// Opens a sealed value. Used only by the explicit, audited reveal and by the probe.
pub fn unseal(key: &DataKey, integration: IntegrationId, secret: &SealedSecret) -> Result<Vec<u8>, SecretsError> {
    let bytes = STANDARD.decode(&secret.sealed).map_err(|_| SecretsError::Unseal)?;
    if bytes.len() < 24 {
        return Err(SecretsError::Unseal);
    }
    let (nonce, ciphertext) = bytes.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.0.as_ref().into());
    let aad = associated_data(integration, secret.kind);
    cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| SecretsError::Unseal)
}

/// SHA-256 of a webhook token, hex: what is stored and compared (in constant time).
pub fn token_digest(token: &str) -> TokenDigest {
    TokenDigest(hex::encode(Sha256::digest(token.as_bytes())))
}

/// Plaintext credentials golive generated during one command, to be shown once to the caller.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ShownOnce {
    pub webhook_url: Option<String>,
    pub secret_token: Option<String>,
    pub signing_key: Option<String>,
}

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShownOnce").field("webhook_url", &self.webhook_url).finish_non_exhaustive()
    }
}

/// The [`Sealer`] for one integration and one command.
pub struct IntegrationSealer<'a> {
    key: &'a DataKey,
    integration: IntegrationId,
    public_url: &'a HttpUrl,
    shown: ShownOnce,
}

impl<'a> IntegrationSealer<'a> {
    pub fn new(key: &'a DataKey, integration: IntegrationId, public_url: &'a HttpUrl) -> Self {
        Self { key, integration, public_url, shown: ShownOnce::default() }
    }
    /// The credentials generated while preparing the command, for the response.
    pub fn into_shown(self) -> ShownOnce {
        self.shown
    }
}

/// The receiver URL of an integration: `{public_url}/hooks/gitlab/{id}`.
pub fn webhook_url(public_url: &HttpUrl, integration: IntegrationId) -> HttpUrl {
    HttpUrl::parse(format!("{}/hooks/gitlab/{integration}", public_url.as_str()))
        .expect("a valid base URL with a path appended stays valid")
}

impl Sealer for IntegrationSealer<'_> {
    fn seal(&mut self, kind: SecretKind, plaintext: &PlaintextSecret) -> SealedSecret {
        seal(self.key, self.integration, kind, plaintext.expose().as_bytes())
    }

    fn issue_webhook_credentials(&mut self, signing: bool) -> IssuedWebhookCredentials {
        let mut token = [0u8; WEBHOOK_TOKEN_BYTES];
        crate::sources::fill_random(&mut token);
        let token = format!("glw_{}", URL_SAFE_NO_PAD.encode(token));
        let signing_key = signing.then(|| {
            let mut key = [0u8; SIGNING_KEY_BYTES];
            crate::sources::fill_random(&mut key);
            let written = format!("whsec_{}", STANDARD.encode(key));
            let sealed = seal(self.key, self.integration, SecretKind::WebhookSigningKey, written.as_bytes());
            self.shown.signing_key = Some(written);
            sealed
        });
        let url = webhook_url(self.public_url, self.integration);
        self.shown.webhook_url = Some(url.as_str().to_owned());
        let digest = token_digest(&token);
        self.shown.secret_token = Some(token);
        IssuedWebhookCredentials { webhook_url: url, token_digest: digest, signing_key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration() -> IntegrationId {
        IntegrationId::from_uuid(uuid::Uuid::from_u128(7))
    }

    #[test]
    fn sealed_values_open_only_with_their_key_integration_and_kind() {
        let key = DataKey::generate();
        let sealed = seal(&key, integration(), SecretKind::AccessToken, b"glpat-abc");
        assert_eq!(unseal(&key, integration(), &sealed).unwrap(), b"glpat-abc");
        assert!(unseal(&DataKey::generate(), integration(), &sealed).is_err());
        let other = IntegrationId::from_uuid(uuid::Uuid::from_u128(8));
        assert!(unseal(&key, other, &sealed).is_err());
        let mut moved = sealed.clone();
        moved.kind = SecretKind::ApplicationSecret;
        assert!(unseal(&key, integration(), &moved).is_err());
        assert!(!sealed.sealed.contains("glpat"));
        assert!(!format!("{sealed:?}").contains(&sealed.sealed));
    }

    #[test]
    fn fingerprints_match_equal_secrets_and_differ_across_keys() {
        let key = DataKey::generate();
        let a = seal(&key, integration(), SecretKind::AccessToken, b"same");
        let b = seal(&key, integration(), SecretKind::AccessToken, b"same");
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.sealed, b.sealed, "a fresh nonce each time");
        let c = seal(&DataKey::generate(), integration(), SecretKind::AccessToken, b"same");
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn issued_webhook_credentials_store_only_a_digest() {
        let key = DataKey::generate();
        let public = HttpUrl::parse("https://golive.example.com").unwrap();
        let mut sealer = IntegrationSealer::new(&key, integration(), &public);
        let issued = sealer.issue_webhook_credentials(true);
        let shown = sealer.into_shown();
        let token = shown.secret_token.unwrap();
        assert!(token.len() >= 43, "at least 32 random bytes");
        assert_eq!(issued.token_digest, token_digest(&token));
        assert!(shown.signing_key.unwrap().starts_with("whsec_"));
        assert_eq!(issued.webhook_url.as_str(), format!("https://golive.example.com/hooks/gitlab/{}", integration()));
    }
}
