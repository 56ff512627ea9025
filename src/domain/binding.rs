//! Credentials bound to the instance they were given for.
//!
//! A customer hands over an access token and an application secret for one GitLab instance: the
//! origin (scheme, host, port) of the instance URL in force at that moment, trusted through the
//! CA in force at that moment. If a representative later points the integration at another origin
//! or another CA, the credentials on record must not follow: they stay bound to where their owner
//! sent them, and the checklist asks for them again. The binding is recorded in the event that
//! carries the sealed credential, so the log says where each credential may be used.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::values::{CaCertificatePem, HttpUrl};

/// Where a credential may be used: an instance origin and the CA trusted for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CredentialBinding {
    /// `scheme://host[:port]`, as the URL standard serialises an origin (default ports omitted,
    /// host names lowercased).
    pub origin: String,
    /// SHA-256 (hex) of the configured CA bundle's normalised PEM text; `None` when the instance
    /// is trusted through the public roots.
    pub ca_fingerprint: Option<String>,
}

impl CredentialBinding {
    /// The binding a credential given for `gitlab_url`, trusted through `ca`, gets.
    pub fn for_instance(gitlab_url: &HttpUrl, ca: Option<&CaCertificatePem>) -> CredentialBinding {
        CredentialBinding { origin: origin_of(gitlab_url), ca_fingerprint: ca.map(ca_fingerprint) }
    }

    /// A short, plain description for labels and the intake page.
    pub fn describe(&self) -> String {
        match &self.ca_fingerprint {
            Some(fingerprint) => format!("{} (internal CA {})", self.origin, &fingerprint[..fingerprint.len().min(16)]),
            None => self.origin.clone(),
        }
    }
}

/// The origin of an instance URL: what a browser would call the same site.
pub fn origin_of(url: &HttpUrl) -> String {
    // `HttpUrl` parsed as an absolute http(s) URL with a host, so the origin is a tuple origin.
    url::Url::parse(url.as_str()).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| url.as_str().to_owned())
}

/// The fingerprint of a CA bundle: line endings and surrounding blanks do not change it.
pub fn ca_fingerprint(pem: &CaCertificatePem) -> String {
    let normalised: String =
        pem.as_str().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n");
    hex::encode(Sha256::digest(normalised.as_bytes()))
}
