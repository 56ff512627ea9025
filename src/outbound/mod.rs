//! Outbound traffic to places golive's users name: subscription endpoints and notification
//! webhooks over HTTP(S) ([`Poster`]), and e-mail through the operator's relay ([`mail`]).
//!
//! A URL an admin typed is as untrusted as a customer's instance URL: it goes through the
//! probe's egress policy (`--probe-allow`; loopback, private, link-local and other special
//! addresses refused unless the operator allows them), is resolved once per request and
//! connected to only at the addresses that passed, never follows a redirect or a proxy, and is
//! bounded in time. What the far side answers is never copied anywhere: golive keeps the
//! status code, or a failure in its own words. The operator's own SMTP relay, set in the
//! server's configuration, is trusted and not subject to the policy.

pub mod mail;

use std::time::{Duration, Instant};

use reqwest::redirect::Policy;

use crate::domain::HttpUrl;
use crate::gitlab::egress::{EgressError, EgressPolicy, PinnedResolver};

/// Time limits of one outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLimits {
    pub connect_timeout_ms: u64,
    /// The whole request, answer included.
    pub request_timeout_ms: u64,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits { connect_timeout_ms: 5_000, request_timeout_ms: 10_000 }
    }
}

/// The most of an answer's body golive reads (and throws away) so the connection can be
/// reused; a longer answer is cut, which costs only the connection.
const ANSWER_READ_MAX_BYTES: usize = 64 * 1024;

/// Why a POST did not succeed, in golive's words (nothing the endpoint said).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostFailure {
    #[error("{}", describe_egress(.0))]
    Egress(#[from] EgressError),
    #[error("the endpoint did not answer within {0} ms")]
    TimedOut(u64),
    #[error("golive could not connect to the endpoint (refused or unreachable)")]
    Connect,
    #[error("the TLS handshake with the endpoint failed")]
    Tls,
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the endpoint redirected (HTTP {0}); golive never follows a redirect")]
    Redirect(u16),
    #[error("the request to the endpoint failed")]
    Transport,
}

/// A refused destination in the words of outbound traffic (the egress policy's own messages
/// speak of probes and instances).
fn describe_egress(error: &EgressError) -> String {
    match error {
        EgressError::NotAllowed { host, address, class } => {
            let named = if host.trim_matches(['[', ']']) == address.to_string() {
                format!("{address}")
            } else {
                format!("{host} ({address})")
            };
            let article = if class.to_string().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            format!(
                "the destination is not allowed: {named} is {article} {class} address; golive sends to such addresses only where its operator allows them (`golive serve --probe-allow CIDR`)"
            )
        }
        EgressError::Unresolved { host } => format!("DNS: the endpoint's name {host} does not resolve"),
        EgressError::ResolveTimedOut { host } => format!("DNS: the endpoint's name {host} did not resolve in time"),
    }
}

impl PostFailure {
    /// A short, fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PostFailure::Egress(_) => "egress_refused",
            PostFailure::TimedOut(_) => "timeout",
            PostFailure::Connect => "connect",
            PostFailure::Tls => "tls",
            PostFailure::Status(_) => "status",
            PostFailure::Redirect(_) => "redirect",
            PostFailure::Transport => "transport",
        }
    }
}

/// One successful POST: its status and round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub status: u16,
    pub round_trip_ms: u64,
}

/// POSTs JSON to user-set URLs under the egress policy. Keeps one client per destination
/// (host and checked addresses) so a subscription's deliveries reuse their connection; a new
/// resolution with other addresses builds a new client.
pub struct Poster {
    policy: EgressPolicy,
    limits: OutboundLimits,
    user_agent: &'static str,
    cached: tokio::sync::Mutex<Option<(String, Vec<std::net::IpAddr>, reqwest::Client)>>,
}

impl Poster {
    pub fn new(policy: EgressPolicy, limits: OutboundLimits, user_agent: &'static str) -> Self {
        Poster { policy, limits, user_agent, cached: tokio::sync::Mutex::new(None) }
    }

    /// POSTs `body` with `headers`; a 2xx is success, anything else a failure.
    pub async fn post_json(
        &self,
        url: &HttpUrl,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Posted, PostFailure> {
        let parsed = url::Url::parse(url.as_str()).map_err(|_| PostFailure::Transport)?;
        let host = parsed.host().ok_or(PostFailure::Transport)?;
        let destination =
            self.policy.resolve_checked(&host, Duration::from_millis(self.limits.connect_timeout_ms)).await?;
        let client = self.client_for(&destination.host, &destination.addresses).await?;
        let started = Instant::now();
        let mut request = client.post(url.as_str()).header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.body(body).send().await.map_err(|e| classify(&e, self.limits))?;
        let status = response.status().as_u16();
        let mut read = 0usize;
        while read < ANSWER_READ_MAX_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                Err(error) => {
                    // A 2xx whose body broke off still counts: the endpoint took the request.
                    if (200..300).contains(&status) {
                        break;
                    }
                    return Err(classify(&error, self.limits));
                }
            }
        }
        let round_trip_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match status {
            200..=299 => Ok(Posted { status, round_trip_ms }),
            300..=399 => Err(PostFailure::Redirect(status)),
            _ => Err(PostFailure::Status(status)),
        }
    }

    async fn client_for(&self, host: &str, addresses: &[std::net::IpAddr]) -> Result<reqwest::Client, PostFailure> {
        let mut cached = self.cached.lock().await;
        if let Some((cached_host, cached_addresses, client)) = cached.as_ref() {
            if cached_host == host && cached_addresses == addresses {
                return Ok(client.clone());
            }
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_millis(self.limits.request_timeout_ms))
            .connect_timeout(Duration::from_millis(self.limits.connect_timeout_ms))
            .redirect(Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(PinnedResolver { host: host.to_owned(), addresses: addresses.to_vec() }))
            .user_agent(self.user_agent)
            .build()
            .map_err(|_| PostFailure::Transport)?;
        *cached = Some((host.to_owned(), addresses.to_vec(), client.clone()));
        Ok(client)
    }
}

fn classify(error: &reqwest::Error, limits: OutboundLimits) -> PostFailure {
    if error.is_timeout() {
        return PostFailure::TimedOut(limits.request_timeout_ms);
    }
    // reqwest names TLS trouble only in its source chain.
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        let text = inner.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return PostFailure::Tls;
        }
        source = inner.source();
    }
    if error.is_connect() {
        PostFailure::Connect
    } else {
        PostFailure::Transport
    }
}
