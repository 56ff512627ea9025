//! Secrets as the domain sees them: plaintext only on the way in, sealed ever after.
//!
//! `PlaintextSecret` can be parsed from a request but has no `Serialize` impl and prints
//! `[redacted]`, so no event, log line or error can carry it. Events hold `SealedSecret`, an
//! opaque ciphertext produced by a `Sealer` the edge injects (the domain does no cryptography),
//! plus a short fingerprint that lets a person tell two secrets apart without seeing either.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::values::ValueError;

/// The largest secret accepted, in bytes.
pub const SECRET_MAX_BYTES: usize = 4_096;

/// Which secret a value is: used to pick a key label and to name it in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    ApplicationSecret,
    AccessToken,
    WebhookSigningKey,
}

/// A secret as it arrives from a person. Never serialized, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PlaintextSecret(String);

impl PlaintextSecret {
    pub fn parse(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(ValueError("must not be empty".into()));
        }
        if text.len() > SECRET_MAX_BYTES {
            return Err(ValueError(format!("must be at most {SECRET_MAX_BYTES} bytes")));
        }
        if text.chars().any(char::is_control) {
            return Err(ValueError("must not contain control characters".into()));
        }
        Ok(Self(text))
    }
    /// The plaintext, for the sealer and for an explicit, audited reveal only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlaintextSecret {
    type Error = ValueError;
    fn try_from(text: String) -> Result<Self, ValueError> {
        Self::parse(text)
    }
}

impl fmt::Debug for PlaintextSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for PlaintextSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A sealed secret: ciphertext (base64, opaque to the domain) and a fingerprint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SealedSecret {
    pub kind: SecretKind,
    /// Opaque sealed bytes, encoded by the sealer.
    pub sealed: String,
    /// A short, keyed digest of the plaintext: equal secrets have equal fingerprints.
    pub fingerprint: String,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("kind", &self.kind)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The digest of a webhook secret token, as stored (the token itself is shown once and dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct TokenDigest(pub String);

/// What golive issued for a webhook: everything but the plaintext token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IssuedWebhookCredentials {
    pub webhook_url: super::values::HttpUrl,
    pub token_digest: TokenDigest,
    pub signing_key: Option<SealedSecret>,
}

/// The edge's cryptography, injected into command preparation so the domain stays pure.
///
/// The engine implements it with real AEAD sealing and a random source; tests use a fake.
/// Plaintext webhook tokens and signing keys are kept by the implementation to show once.
pub trait Sealer {
    /// Seals a secret provided by a person.
    fn seal(&mut self, kind: SecretKind, plaintext: &PlaintextSecret) -> SealedSecret;
    /// Generates a new webhook secret token (and, when asked, a signing key) and returns the
    /// stored form.
    fn issue_webhook_credentials(&mut self, signing: bool) -> IssuedWebhookCredentials;
}
