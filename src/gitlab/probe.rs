//! The GitLab probe: checks an instance with the customer's token and says what it found.
//!
//! HTTPS: `GET /api/v4/version`, `GET /api/v4/personal_access_tokens/self`, `GET /api/v4/user`;
//! SSH: a TCP connection to the SSH port reading the `SSH-2.0-` banner. Failures are classified
//! as the guide's troubleshooting thinks of them. Verification is never disabled: an internal CA
//! is added to the trusted roots, not used to switch checks off. The token travels only in the
//! `PRIVATE-TOKEN` header; it is never logged or put in a detail.
//!
//! Where the probe connects is the egress policy's decision ([`super::egress`]): the host is
//! resolved once, every address is checked, and both checks connect only to checked addresses.
//! No proxy is used: a proxy would connect wherever it resolves the name.

use std::collections::BTreeSet;
use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use super::egress::{CheckedDestination, EgressPolicy, PinnedResolver};
use crate::domain::FindingCategory;

/// Limits of one probe.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Largest answer read from GitLab, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// What to probe.
pub struct ProbeTarget {
    pub gitlab_url: String,
    pub token: String,
    pub ca_certificate_pem: Option<String>,
    pub ssh_port: u16,
}

impl std::fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("gitlab_url", &self.gitlab_url)
            .field("ssh_port", &self.ssh_port)
            .finish_non_exhaustive()
    }
}

/// One failed call, classified.
struct Failure {
    category: FindingCategory,
    detail: String,
    token_active: Option<bool>,
    /// GitLab answered (with an error status): the API is reachable, the token is the problem.
    answered: bool,
}

fn failure(category: FindingCategory, detail: impl Into<String>) -> Failure {
    Failure { category, detail: detail.into(), token_active: None, answered: false }
}

/// Names a transport error the way a person can act on it (no token inside: errors carry URLs,
/// and the token is never in a URL).
fn classify_transport(error: &reqwest::Error) -> Failure {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    let lower = chain.to_lowercase();
    let detail = if error.is_timeout() {
        "timed out: the instance did not answer in time (network path or firewall)".to_owned()
    } else if error.is_redirect() {
        format!("refused a redirect to another host: {chain}")
    } else if lower.contains("dns error")
        || lower.contains("failed to lookup")
        || lower.contains("name or service not known")
    {
        format!("DNS: the instance's name does not resolve from Factory's network ({chain})")
    } else if lower.contains("connection refused") {
        format!("connection refused: nothing listens there, or a firewall rejects Factory ({chain})")
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!(
            "TLS: the certificate does not name this host in a subjectAltName. If it names the host only in its CN, \
             rustls rejects it: reissue the certificate with a subjectAltName ({chain})"
        )
    } else if lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
        || lower.contains("certificate")
        || lower.contains("tls")
    {
        format!("TLS: the certificate is not trusted; if an internal CA signed it, set its PEM (set_instance_url ca_certificate_pem) ({chain})")
    } else {
        format!("the connection failed ({chain})")
    };
    failure(FindingCategory::ApiFailure, detail)
}

fn classify_status(call: &str, status: u16, body: &Value) -> Failure {
    let error = body.get("error").and_then(Value::as_str).unwrap_or("");
    let description = body.get("error_description").and_then(Value::as_str).unwrap_or("");
    let message = body.get("message").map(|m| m.to_string()).unwrap_or_default();
    match status {
        401 => {
            let why = if description.to_lowercase().contains("expired") {
                "the access token has expired"
            } else if description.to_lowercase().contains("revoked") {
                "the access token was revoked"
            } else {
                "the access token is invalid or unknown"
            };
            Failure {
                category: FindingCategory::PermissionDenied,
                detail: format!("{call}: 401 {error}: {why}"),
                token_active: Some(false),
                answered: true,
            }
        }
        403 => Failure {
            answered: true,
            ..failure(FindingCategory::PermissionDenied, format!("{call}: 403 {error} {message}").trim().to_owned())
        },
        429 => failure(FindingCategory::RateLimited, format!("{call}: 429 rate limited; retry later")),
        other => failure(FindingCategory::ApiFailure, format!("{call}: unexpected status {other}")),
    }
}

fn client(
    target: &ProbeTarget,
    config: &ProbeConfig,
    destination: &CheckedDestination,
) -> Result<reqwest::Client, Failure> {
    let origin = url::Url::parse(&target.gitlab_url)
        .map_err(|e| failure(FindingCategory::ApiFailure, format!("bad instance URL: {e}")))?;
    let host = origin.host_str().unwrap_or_default().to_owned();
    let policy = Policy::custom(move |attempt| {
        if attempt.previous().len() >= 3 {
            attempt.error("too many redirects")
        } else if attempt.url().host_str() != Some(host.as_str()) {
            let elsewhere = attempt.url().host_str().unwrap_or("?").to_owned();
            attempt.error(format!("redirect to another host ({elsewhere})"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .redirect(policy)
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(PinnedResolver {
            host: destination.host.clone(),
            addresses: destination.addresses.clone(),
        }))
        .user_agent(concat!("golive-probe/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &target.ca_certificate_pem {
        for certificate in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            failure(FindingCategory::ApiFailure, format!("the configured CA certificate cannot be read: {e}"))
        })? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| failure(FindingCategory::ApiFailure, format!("cannot build the HTTPS client: {e}")))
}

/// GETs `path` with the token; returns the JSON answer and the round trip.
async fn call(
    http: &reqwest::Client,
    target: &ProbeTarget,
    config: &ProbeConfig,
    path: &str,
) -> Result<(Value, Duration), Failure> {
    let started = Instant::now();
    let url = format!("{}{path}", target.gitlab_url.trim_end_matches('/'));
    let mut response =
        http.get(&url).header("PRIVATE-TOKEN", &target.token).send().await.map_err(|e| classify_transport(&e))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > config.max_body_bytes {
                    return Err(failure(
                        FindingCategory::ApiFailure,
                        format!("GET {path}: the answer is larger than {} bytes; not GitLab?", config.max_body_bytes),
                    ));
                }
            }
            Ok(None) => break,
            Err(e) => return Err(classify_transport(&e)),
        }
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(classify_status(&format!("GET {path}"), status, &json));
    }
    Ok((json, started.elapsed()))
}

/// Reads the SSH banner from the first checked address that accepts; returns the round trip.
async fn ssh_banner(addresses: &[std::net::IpAddr], port: u16, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let targets: Vec<std::net::SocketAddr> = addresses.iter().map(|ip| std::net::SocketAddr::new(*ip, port)).collect();
    let attempt = async {
        let mut stream =
            tokio::net::TcpStream::connect(&targets[..]).await.map_err(|e| format!("SSH port {port}: {e}"))?;
        let mut banner = Vec::new();
        let mut buffer = [0u8; 256];
        while !banner.contains(&b'\n') && banner.len() < 255 {
            let n = stream.read(&mut buffer).await.map_err(|e| format!("SSH port {port}: {e}"))?;
            if n == 0 {
                break;
            }
            banner.extend_from_slice(&buffer[..n]);
        }
        if banner.starts_with(b"SSH-2.0-") || banner.starts_with(b"SSH-1.99-") {
            Ok(())
        } else {
            Err(format!("SSH port {port} answered, but not with an SSH-2.0 banner"))
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("SSH port {port}: timed out")),
    }
}

/// Probes the instance and returns the `record_probe_result` input describing what it found.
///
/// A destination the egress policy refuses, or a name that does not resolve, is a recorded
/// `api_failure` and no connection is opened.
pub async fn probe(
    target: &ProbeTarget,
    required_token_scopes: &BTreeSet<String>,
    config: &ProbeConfig,
    egress: &EgressPolicy,
) -> Value {
    let unreachable = |detail: String| {
        json!({
            "type": "record_probe_result",
            "api_reachable": false,
            "category": FindingCategory::ApiFailure,
            "detail": detail,
        })
    };
    let Some(parsed) = url::Url::parse(&target.gitlab_url).ok().filter(|u| u.host().is_some()) else {
        return unreachable("the instance URL names no host golive can probe".to_owned());
    };
    let host = parsed.host().expect("checked above");
    let destination = match egress.resolve_checked(&host, config.connect_timeout).await {
        Ok(destination) => destination,
        Err(refused) => return unreachable(refused.to_string()),
    };
    let ssh = ssh_banner(&destination.addresses, target.ssh_port, config.connect_timeout).await;
    let mut result = json!({
        "type": "record_probe_result",
        "api_reachable": false,
        "ssh_reachable": ssh.is_ok(),
    });
    if let Ok(rtt) = &ssh {
        result["ssh_round_trip_ms"] = json!(rtt.as_millis() as u64);
    }
    let mut details = Vec::new();
    if let Err(e) = &ssh {
        details.push(e.clone());
    }
    let outcome = async {
        let http = client(target, config, &destination)?;
        let (version, rtt) = call(&http, target, config, "/api/v4/version").await?;
        result["api_reachable"] = json!(true);
        result["api_round_trip_ms"] = json!(rtt.as_millis() as u64);
        if let Some(v) = version.get("version").and_then(Value::as_str) {
            result["gitlab_version"] = json!(v.chars().take(100).collect::<String>());
        }
        let (token, _) = call(&http, target, config, "/api/v4/personal_access_tokens/self").await?;
        let active = token.get("active").and_then(Value::as_bool).unwrap_or(true)
            && token.get("revoked") != Some(&Value::Bool(true));
        result["token_active"] = json!(active);
        if let Some(expires) =
            token.get("expires_at").and_then(Value::as_str).filter(|d| crate::domain::Date::parse(d).is_ok())
        {
            result["token_expires_at"] = json!(expires);
        }
        let scopes: BTreeSet<String> = token
            .get("scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| crate::domain::Scope::parse(*s).is_ok())
            .map(str::to_owned)
            .collect();
        result["token_scopes"] = json!(scopes);
        let (user, _) = call(&http, target, config, "/api/v4/user").await?;
        // `is_admin` appears only when the caller is an admin: absent means not admin.
        let admin = user.get("is_admin").and_then(Value::as_bool).unwrap_or(false);
        result["admin"] = json!(admin);
        let missing: Vec<&String> = required_token_scopes.difference(&scopes).collect();
        let mut problems = Vec::new();
        if !active {
            problems.push("the token is not active".to_owned());
        }
        if !missing.is_empty() {
            problems.push(format!(
                "the token lacks the scopes {}",
                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !admin {
            problems.push("the token's user is not a GitLab admin".to_owned());
        }
        if !problems.is_empty() {
            return Err(failure(FindingCategory::PermissionDenied, problems.join("; ")));
        }
        Ok(())
    }
    .await;
    if let Err(failed) = outcome {
        result["category"] = json!(failed.category);
        if failed.answered {
            result["api_reachable"] = json!(true);
        }
        if let Some(active) = failed.token_active {
            result["token_active"] = json!(active);
        }
        details.insert(0, failed.detail);
    } else if ssh.is_err() {
        result["category"] = json!(FindingCategory::ApiFailure);
    }
    if !details.is_empty() {
        let detail: String = details.join("; ").replace(&target.token, "[redacted]").chars().take(3900).collect();
        result["detail"] = json!(detail);
    }
    result
}
