//! Prometheus metrics: requests by route and status, latency, events appended, deliveries by
//! kind and outcome, write groups, dashboard sign-ins by method and outcome.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::domain::GitlabEvent;
use crate::gitlab::webhook::UNUSED_EVENTS;

/// The HTTP methods that get their own label value; any other is counted as `other`, so a
/// client cannot add series by making methods up.
const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The label value of a method: a known one, or `other`.
fn method_label(method: &Method) -> &'static str {
    KNOWN_METHODS.into_iter().find(|known| method.as_str() == *known).unwrap_or("other")
}

/// The label value of an `X-Gitlab-Event` header: one of GitLab's event kinds (those golive uses
/// and those it acknowledges without using), or `other` (absent, unknown or made up), so a sender
/// cannot add series.
fn event_label(header: Option<&str>) -> &'static str {
    let Some(header) = header else { return "other" };
    GitlabEvent::from_header(header)
        .map(|event| event.header_value())
        .or_else(|| UNUSED_EVENTS.into_iter().find(|unused| *unused == header))
        .unwrap_or("other")
}

/// Latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// How a person signed in to the dashboard (a label value of `golive_sign_ins_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignInMethod {
    Token,
    Sso,
}

impl SignInMethod {
    fn label(self) -> &'static str {
        match self {
            SignInMethod::Token => "token",
            SignInMethod::Sso => "sso",
        }
    }
}

/// How a sign-in ended: a fixed set, so label values never come from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignInOutcome {
    SignedIn,
    /// A bad token, a provider's refusal, or an ID token that failed verification.
    Refused,
    /// Single sign-on: the account has no mapped role.
    NoRole,
    /// Single sign-on: the callback's sign-in was already used, expired, or its state differed.
    ExpiredLink,
    /// Single sign-on: the provider could not be reached or answered wrongly.
    ProviderUnavailable,
    /// Token sign-in is turned off on this server.
    Disabled,
    /// Something failed on golive's side (storage).
    Error,
}

impl SignInOutcome {
    fn label(self) -> &'static str {
        match self {
            SignInOutcome::SignedIn => "signed_in",
            SignInOutcome::Refused => "refused",
            SignInOutcome::NoRole => "no_role",
            SignInOutcome::ExpiredLink => "expired_link",
            SignInOutcome::ProviderUnavailable => "provider_unavailable",
            SignInOutcome::Disabled => "disabled",
            SignInOutcome::Error => "error",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    deliveries: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    sign_ins: Mutex<BTreeMap<(SignInMethod, SignInOutcome), u64>>,
    /// Event-stream (SSE) connections open now.
    streams_open: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// Counts one open event stream for as long as it lives.
pub struct StreamGuard(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a request by method (known methods, else `other`), route (the router's own
    /// pattern, or `unmatched`) and status.
    pub fn request(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((method_label(method), route.to_owned(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().expect("metrics lock");
        let h = latency.entry(route.to_owned()).or_default();
        let seconds = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum_seconds += seconds;
    }

    pub fn stream_opened(&self) -> StreamGuard {
        self.streams_open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StreamGuard(self.streams_open.clone())
    }

    /// Counts a delivery by its `X-Gitlab-Event` (known kinds, else `other`) and outcome.
    pub fn delivery(&self, kind: Option<&str>, outcome: &'static str) {
        *self.deliveries.lock().expect("metrics lock").entry((event_label(kind), outcome)).or_default() += 1;
    }
}

impl Metrics {
    /// Counts a dashboard sign-in by method and outcome.
    pub fn sign_in(&self, method: SignInMethod, outcome: SignInOutcome) {
        *self.sign_ins.lock().expect("metrics lock").entry((method, outcome)).or_default() += 1;
    }
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

pub async fn render(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let mut out = String::new();
    out.push_str("# HELP golive_http_requests_total HTTP requests by route and status.\n# TYPE golive_http_requests_total counter\n");
    for ((method, route, status), n) in m.requests.lock().expect("metrics lock").iter() {
        let _ = writeln!(
            out,
            "golive_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    out.push_str("# HELP golive_http_request_duration_seconds Request latency.\n# TYPE golive_http_request_duration_seconds histogram\n");
    for (route, h) in m.latency.lock().expect("metrics lock").iter() {
        let route = label(route);
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "golive_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                h.counts[i]
            );
        }
        let _ =
            writeln!(out, "golive_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "golive_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum_seconds);
        let _ = writeln!(out, "golive_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
    }
    out.push_str("# HELP golive_webhook_deliveries_total Webhook deliveries by kind and outcome.\n# TYPE golive_webhook_deliveries_total counter\n");
    for ((kind, outcome), n) in m.deliveries.lock().expect("metrics lock").iter() {
        let _ = writeln!(out, "golive_webhook_deliveries_total{{kind=\"{}\",outcome=\"{outcome}\"}} {n}", label(kind));
    }
    out.push_str("# HELP golive_sign_ins_total Dashboard sign-ins by method and outcome.\n# TYPE golive_sign_ins_total counter\n");
    for ((method, outcome), n) in m.sign_ins.lock().expect("metrics lock").iter() {
        let _ =
            writeln!(out, "golive_sign_ins_total{{method=\"{}\",outcome=\"{}\"}} {n}", method.label(), outcome.label());
    }
    let counters = state.engine.store().counters();
    let _ = writeln!(out, "# HELP golive_events_appended_total Events appended since start.\n# TYPE golive_events_appended_total counter\ngolive_events_appended_total {}", counters.events_committed);
    let _ = writeln!(out, "# HELP golive_appends_committed_total Appends committed since start.\n# TYPE golive_appends_committed_total counter\ngolive_appends_committed_total {}", counters.appends_committed);
    let _ = writeln!(out, "# HELP golive_write_groups_total Write groups flushed (appends / groups = mean group size).\n# TYPE golive_write_groups_total counter\ngolive_write_groups_total {}", counters.flushes);
    let _ = writeln!(out, "# HELP golive_event_streams_open Event-stream (SSE) connections open now.\n# TYPE golive_event_streams_open gauge\ngolive_event_streams_open {}", m.streams_open.load(std::sync::atomic::Ordering::Relaxed));
    if let Ok(projector) = state.engine.projector_status().await {
        let _ = writeln!(out, "# HELP golive_projector_up Whether the read model's projector follows the log (1) or is down awaiting a restart (0).\n# TYPE golive_projector_up gauge\ngolive_projector_up {}", u8::from(projector.up));
        let _ = writeln!(out, "# HELP golive_projector_lag_positions Positions between the read model's checkpoint and the log's head.\n# TYPE golive_projector_lag_positions gauge\ngolive_projector_lag_positions {}", projector.lag);
        let _ = writeln!(out, "# HELP golive_projector_restarts_total Restarts of the read model's projector since start.\n# TYPE golive_projector_restarts_total counter\ngolive_projector_restarts_total {}", projector.restarts);
    }
    let outbound = state.engine.outbound_counters();
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(out, "# HELP golive_notifications_total Notifications this process sent or failed to send.\n# TYPE golive_notifications_total counter\ngolive_notifications_total{{outcome=\"sent\"}} {}\ngolive_notifications_total{{outcome=\"failed\"}} {}", outbound.notifications_sent.load(relaxed), outbound.notifications_failed.load(relaxed));
    let _ = writeln!(out, "# HELP golive_subscription_attempts_total Subscription delivery attempts of this process by outcome.\n# TYPE golive_subscription_attempts_total counter\ngolive_subscription_attempts_total{{outcome=\"delivered\"}} {}\ngolive_subscription_attempts_total{{outcome=\"retried\"}} {}\ngolive_subscription_attempts_total{{outcome=\"dead_lettered\"}} {}", outbound.deliveries.load(relaxed), outbound.retries.load(relaxed), outbound.dead_letters.load(relaxed));
    // Per subscription, from its shared progress record: the same figures on every replica.
    if let Ok(subscriptions) = state.engine.subscriptions().await {
        out.push_str("# HELP golive_subscription_lag_positions Positions of the log after a subscription's checkpoint.\n# TYPE golive_subscription_lag_positions gauge\n");
        for s in &subscriptions {
            let _ = writeln!(out, "golive_subscription_lag_positions{{subscription=\"{}\"}} {}", s.id, s.lag);
        }
        out.push_str("# HELP golive_subscription_delivered_total Events a subscription delivered (every replica).\n# TYPE golive_subscription_delivered_total counter\n");
        for s in &subscriptions {
            let _ = writeln!(out, "golive_subscription_delivered_total{{subscription=\"{}\"}} {}", s.id, s.delivered);
        }
        out.push_str("# HELP golive_subscription_retries_total Failed attempts a subscription retried (every replica).\n# TYPE golive_subscription_retries_total counter\n");
        for s in &subscriptions {
            let _ = writeln!(out, "golive_subscription_retries_total{{subscription=\"{}\"}} {}", s.id, s.retries);
        }
        out.push_str("# HELP golive_subscription_dead_letters_total Events a subscription gave up on (every replica).\n# TYPE golive_subscription_dead_letters_total counter\n");
        for s in &subscriptions {
            let _ = writeln!(
                out,
                "golive_subscription_dead_letters_total{{subscription=\"{}\"}} {}",
                s.id, s.dead_lettered
            );
        }
    }
    let mut response = out.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_come_from_known_lists() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
        assert_eq!(event_label(Some("Push Hook")), "Push Hook");
        assert_eq!(event_label(Some("Push Hook 2")), "other");
        assert_eq!(event_label(Some("Emoji Hook")), "Emoji Hook");
        assert_eq!(event_label(Some("emoji hook")), "other");
        assert_eq!(event_label(None), "other");
    }
}
