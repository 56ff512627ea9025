//! Outbound event subscriptions against real HTTP endpoints on loopback: every matching event
//! in log order, signed per Standard Webhooks (verified with the specification's own crate),
//! through endpoints that fail, time out and come back, dead letters after the retry budget,
//! pause, resume and replay, a restart and an abandoned (crashed) deliverer, the egress policy,
//! the API's refusals, and two replicas on PostgreSQL delivering one at a time.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use golive::engine::{Engine, SubscriptionSettings};
use golive::gitlab::egress::{EgressPolicy, HostResolver, ResolveError};
use golive::outbound::OutboundLimits;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::http::{spawn_app_with_engine, TestApp};

/// One request the endpoint received.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub position: u64,
    pub event_type: String,
    pub stream: String,
    pub verified: bool,
}

#[derive(Default)]
struct EndpointState {
    secret: Option<String>,
    received: Vec<Received>,
    /// Answer this many requests with 500 (then succeed).
    fail_next: u32,
    /// Answer every request with 503 while set.
    down: bool,
    /// Wait this long before answering.
    delay_ms: u64,
    in_flight: u32,
    max_in_flight: u32,
    requests: u64,
}

/// A subscriber on loopback that records what it receives and can be told to misbehave.
#[derive(Clone)]
pub struct Endpoint {
    state: Arc<Mutex<EndpointState>>,
    pub url: String,
}

impl Endpoint {
    pub async fn start() -> Endpoint {
        let state = Arc::new(Mutex::new(EndpointState::default()));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { receive(state, headers, body).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Endpoint { state, url }
    }

    pub fn set_secret(&self, secret: &str) {
        self.state.lock().unwrap().secret = Some(secret.to_owned());
    }
    pub fn fail_next(&self, count: u32) {
        self.state.lock().unwrap().fail_next = count;
    }
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }
    pub fn set_delay_ms(&self, delay_ms: u64) {
        self.state.lock().unwrap().delay_ms = delay_ms;
    }
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }
    pub fn max_in_flight(&self) -> u32 {
        self.state.lock().unwrap().max_in_flight
    }
    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }

    /// Waits until the endpoint has taken every position in `expected` (at least once).
    pub async fn wait_for(&self, expected: &BTreeSet<u64>, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let received = self.received();
            let got: BTreeSet<u64> = received.iter().map(|r| r.position).collect();
            if expected.is_subset(&got) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the endpoint still misses positions {:?} after {within:?}",
                expected.difference(&got).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(state: Arc<Mutex<EndpointState>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let (delay_ms, secret) = {
        let mut s = state.lock().unwrap();
        s.requests += 1;
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        (s.delay_ms, s.secret.clone())
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let mut s = state.lock().unwrap();
    s.in_flight -= 1;
    if s.down {
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    if s.fail_next > 0 {
        s.fail_next -= 1;
        return AxumStatus::INTERNAL_SERVER_ERROR;
    }
    let verified = secret.is_some_and(|secret| {
        let mut map = axum::http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            if let Some(value) = headers.get(name) {
                map.insert(name, value.clone());
            }
        }
        standardwebhooks::Webhook::new(&secret).unwrap().verify(&body, &map).is_ok()
    });
    let event: Value = serde_json::from_slice(&body).unwrap();
    let webhook_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(webhook_id, event["id"].as_str().unwrap(), "webhook-id is the event's id");
    s.received.push(Received {
        webhook_id,
        position: event["position"].as_u64().unwrap(),
        event_type: event["type"].as_str().unwrap().to_owned(),
        stream: event["integration_id"].as_str().unwrap_or_default().to_owned(),
        verified,
    });
    AxumStatus::NO_CONTENT
}

/// Short times, so retries and leases play out in a test's seconds.
pub fn fast_settings() -> SubscriptionSettings {
    SubscriptionSettings {
        retry_base_ms: 40,
        retry_cap_ms: 300,
        attempts_max: 6,
        lease_ms: 1_500,
        poll_ms: 50,
        batch: 64,
        limits: OutboundLimits { connect_timeout_ms: 1_000, request_timeout_ms: 400 },
    }
}

async fn app_allowing_loopback() -> TestApp {
    spawn_app_with_engine(|config| {
        config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
    })
    .await
}

/// Adds a subscription through the API; tells the endpoint its secret.
async fn add(app: &TestApp, endpoint: &Endpoint, extra: Value) -> String {
    let mut body = json!({"name": "warehouse", "url": endpoint.url});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, answer) = app.post(&app.admin, "/api/v1/subscriptions", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let secret = answer["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    endpoint.set_secret(secret);
    answer["subscription"]["id"].as_str().unwrap().to_owned()
}

/// Appends `notes` notes to `id`; returns the log's head.
async fn notes(app: &TestApp, id: &str, notes: usize) -> u64 {
    for i in 0..notes {
        app.ok(id, json!({"type": "add_note", "text": format!("note {i}")})).await;
    }
    app.engine.store().head().await.unwrap().position
}

/// The positions of the log after `after`, up to the head, whose events `keep` accepts.
async fn positions(engine: &Engine, after: u64, keep: impl Fn(&golive::store::StoredEvent) -> bool) -> BTreeSet<u64> {
    engine.store().read_all(after, 100_000).await.unwrap().iter().filter(|e| keep(e)).map(|e| e.position).collect()
}

/// In log order: the first receipt of each event comes after every earlier event's, and a
/// repeat is only ever of an event already received (at least once, detectable by
/// `webhook-id`).
pub fn assert_in_order(received: &[Received]) {
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut highest = 0;
    for r in received {
        if seen.contains(&r.position) {
            continue;
        }
        assert!(r.position > highest, "position {} arrived after {highest}: {received:?}", r.position);
        highest = r.position;
        seen.insert(r.position);
    }
}

async fn view(app: &TestApp, id: &str) -> Value {
    let (status, body) = app.get(&app.admin, &format!("/api/v1/subscriptions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn wait_view(app: &TestApp, id: &str, what: &str, test: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = view(app, id).await;
        if test(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn every_matching_event_arrives_in_order_signed_through_failures_timeouts_and_an_outage() {
    let app = app_allowing_loopback().await;
    let endpoint = Endpoint::start().await;
    let integration = app.open().await;
    let start = app.engine.store().head().await.unwrap().position;
    let subscription = add(&app, &endpoint, json!({})).await;
    let deliverers = app.engine.start_subscription_deliverers("replica-a".into(), fast_settings());

    // Given a healthy endpoint: every event after the subscription's start arrives.
    let head = notes(&app, &integration, 5).await;
    let received = endpoint.wait_for(&positions(&app.engine, start, |_| true).await, Duration::from_secs(10)).await;
    assert!(received.iter().all(|r| r.verified), "every delivery verifies with the secret: {received:?}");
    assert!(received.iter().all(|r| r.position > start), "nothing before the subscription's start");

    // When the endpoint fails twice, then answers slower than the timeout once, then is down a while:
    endpoint.fail_next(2);
    let head2 = notes(&app, &integration, 3).await;
    let _ = endpoint.wait_for(&positions(&app.engine, head, |_| true).await, Duration::from_secs(10)).await;
    assert_eq!(endpoint.max_in_flight(), 1, "one request at a time per subscription");
    // Slower than golive's timeout: golive gives up on the request (the endpoint, still busy
    // with it, may then see the retry overlap its own late answer).
    endpoint.set_delay_ms(700);
    let head3 = notes(&app, &integration, 1).await;
    let retried = wait_view(&app, &subscription, "a timed-out attempt is retried", |v| {
        v["last_failure"].as_str().is_some_and(|f| f.contains("did not answer within"))
    })
    .await;
    assert_eq!(retried["status"], "retrying");
    endpoint.set_delay_ms(0);
    endpoint.wait_for(&[head3].into(), Duration::from_secs(10)).await;
    endpoint.set_down(true);
    let head4 = notes(&app, &integration, 2).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    endpoint.set_down(false);
    // Then everything still arrives, in log order, and the counters say what happened.
    let received = endpoint.wait_for(&positions(&app.engine, start, |_| true).await, Duration::from_secs(15)).await;
    assert_in_order(&received);
    assert!(head4 > head3 && head3 > head2);
    let shown = wait_view(&app, &subscription, "caught up", |v| v["lag"] == 0 && v["status"] == "idle").await;
    assert!(shown["retries"].as_u64().unwrap() >= 3, "{shown}");
    assert_eq!(shown["dead_lettered"], 0);
    assert_eq!(shown["checkpoint"].as_u64().unwrap(), head4);
    // The secret is never shown again.
    assert!(shown.get("secret").is_none());
    let (_, list) = app.get(&app.admin, "/api/v1/subscriptions").await;
    assert!(!list.to_string().contains("whsec_"), "{list}");
    // Metrics carry the subscription's lag and counters.
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(&format!("golive_subscription_lag_positions{{subscription=\"{subscription}\"}} 0")),
        "{metrics}"
    );
    assert!(metrics.contains("golive_subscription_attempts_total{outcome=\"retried\"}"), "{metrics}");
    deliverers.stop().await;
}

#[tokio::test]
async fn an_event_past_its_retry_budget_goes_to_the_dead_letters_and_delivery_moves_on() {
    let app = app_allowing_loopback().await;
    let endpoint = Endpoint::start().await;
    let integration = app.open().await;
    let subscription = add(&app, &endpoint, json!({})).await;
    let deliverers = app.engine.start_subscription_deliverers("replica-a".into(), fast_settings());
    // Six attempts (the budget) fail; the seventh request would succeed.
    endpoint.fail_next(6);
    let head = notes(&app, &integration, 2).await;
    let shown = wait_view(&app, &subscription, "dead-lettered then caught up", |v| v["lag"] == 0).await;
    assert_eq!(shown["dead_lettered"], 1, "{shown}");
    let letters = shown["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["position"].as_u64().unwrap(), head - 1);
    assert_eq!(letters[0]["attempts"], 6);
    assert_eq!(letters[0]["failure"], "the endpoint answered HTTP 500");
    let received = endpoint.received();
    assert_eq!(received.iter().map(|r| r.position).collect::<Vec<_>>(), vec![head], "the next event still arrives");

    // Replay from the dead letter's position: it arrives now, with its original webhook-id.
    let (status, replayed) = app
        .post(&app.admin, &format!("/api/v1/subscriptions/{subscription}/replay"), &json!({"from_position": head - 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    let received = endpoint.wait_for(&[head - 1, head].into(), Duration::from_secs(10)).await;
    let ids: Vec<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{received:?}");
    assert_eq!(ids[0], ids[2], "a replayed event keeps its webhook-id, so the receiver can tell a repeat");
    deliverers.stop().await;
}

#[tokio::test]
async fn filters_pause_resume_and_the_apis_refusals_write_nothing() {
    let app = app_allowing_loopback().await;
    let endpoint = Endpoint::start().await;
    let first = app.open().await;
    let second = app.open().await;
    let subscription =
        add(&app, &endpoint, json!({"event_types": ["note_added"], "integrations": [second], "from_position": 1}))
            .await;
    let deliverers = app.engine.start_subscription_deliverers("replica-a".into(), fast_settings());
    notes(&app, &first, 2).await;
    notes(&app, &second, 2).await;
    let wanted =
        positions(&app.engine, 0, |e| e.event_type == "note_added" && e.integration_id.to_string() == second).await;
    assert_eq!(wanted.len(), 2);
    let received = endpoint.wait_for(&wanted, Duration::from_secs(10)).await;
    assert!(received.iter().all(|r| r.event_type == "note_added" && r.stream == second), "{received:?}");
    wait_view(&app, &subscription, "caught up", |v| v["lag"] == 0).await;

    // Paused: nothing is sent; resumed: what was recorded meanwhile arrives.
    let (status, paused) =
        app.post(&app.admin, &format!("/api/v1/subscriptions/{subscription}/pause"), &json!({})).await;
    assert_eq!((status, paused["status"].as_str()), (StatusCode::OK, Some("paused")));
    let before = endpoint.requests();
    notes(&app, &second, 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(endpoint.requests(), before, "a paused subscription sends nothing");
    app.post(&app.admin, &format!("/api/v1/subscriptions/{subscription}/resume"), &json!({})).await;
    let wanted =
        positions(&app.engine, 0, |e| e.event_type == "note_added" && e.integration_id.to_string() == second).await;
    assert_in_order(&endpoint.wait_for(&wanted, Duration::from_secs(10)).await);

    // Refusals: a rep, bad bodies, unknown ids; none adds a subscription.
    let (status, _) = app.post(&app.rep, "/api/v1/subscriptions", &json!({"name": "x", "url": endpoint.url})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get(&app.viewer, "/api/v1/subscriptions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, field) in [
        (json!({"name": "x", "url": "ftp://example.com"}), "url"),
        (json!({"name": "", "url": endpoint.url}), "name"),
        (json!({"name": "x", "url": endpoint.url, "event_types": ["no_such_event"]}), "event_types"),
        (json!({"name": "x", "url": endpoint.url, "from_position": 0}), "from_position"),
        (json!({"name": "x", "url": endpoint.url, "from_position": 1_000_000}), "from_position"),
        (json!({"name": "x", "url": endpoint.url, "secret": "mine"}), "secret"),
        (json!({"name": "x", "url": endpoint.url, "integrations": ["not-a-uuid"]}), "integrations"),
        (json!({"name": "x", "url": format!("{}\r\nX-Injected: 1", endpoint.url)}), "url"),
        (json!({"name": "ware\u{200b}house", "url": endpoint.url}), "name"),
    ] {
        let (status, problem) = app.post(&app.admin, "/api/v1/subscriptions", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(field), "{body} -> {problem}");
    }
    let (status, _) = app
        .post(&app.admin, &format!("/api/v1/subscriptions/{subscription}/replay"), &json!({"from_position": 0}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get(&app.admin, &format!("/api/v1/subscriptions/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get(&app.admin, "/api/v1/subscriptions/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.engine.subscriptions().await.unwrap().len(), 1, "no refused request added one");
    // A token cannot take a name that looks like a single sign-on user's.
    for name in ["\u{200b}sso:root", "sso\u{ff1a}root", "\u{0455}so:root"] {
        let (status, _) = app.post(&app.admin, "/api/v1/tokens", &json!({"name": name, "role": "rep"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
    }

    // Removed: nothing more is delivered, and it is gone.
    let path = format!("/api/v1/subscriptions/{subscription}");
    let response = app.http.delete(app.url(&path)).bearer_auth(&app.rep).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app.http.delete(app.url(&path)).bearer_auth(&app.admin).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = app.get(&app.admin, &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = endpoint.requests();
    notes(&app, &second, 2).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(endpoint.requests(), before, "a removed subscription sends nothing");
    deliverers.stop().await;
}

#[tokio::test]
async fn a_restart_and_a_crashed_deliverer_resume_from_the_checkpoint_without_skipping() {
    let app = app_allowing_loopback().await;
    let endpoint = Endpoint::start().await;
    let integration = app.open().await;
    let start = app.engine.store().head().await.unwrap().position;
    add(&app, &endpoint, json!({})).await;
    let first = app.engine.start_subscription_deliverers("before-restart".into(), fast_settings());
    notes(&app, &integration, 3).await;
    endpoint.wait_for(&positions(&app.engine, start, |_| true).await, Duration::from_secs(10)).await;
    first.stop().await;
    // Recorded while nobody delivers.
    notes(&app, &integration, 3).await;
    let second = app.engine.start_subscription_deliverers("after-restart".into(), fast_settings());
    endpoint.wait_for(&positions(&app.engine, start, |_| true).await, Duration::from_secs(10)).await;
    // A crash mid-way: the worker is aborted, its lease left behind (on sled, where only this
    // process can deliver, the next start takes it at once).
    endpoint.set_delay_ms(200);
    let before_crash = notes(&app, &integration, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    second.abandon();
    endpoint.set_delay_ms(0);
    notes(&app, &integration, 2).await;
    let third = app.engine.start_subscription_deliverers("after-crash".into(), fast_settings());
    let received = endpoint.wait_for(&positions(&app.engine, start, |_| true).await, Duration::from_secs(10)).await;
    assert_in_order(&received);
    assert!(before_crash > start);
    let unique: BTreeSet<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    println!(
        "{} requests for {} events (repeats are at-least-once, told apart by webhook-id)",
        received.len(),
        unique.len()
    );
    third.stop().await;
}

/// Resolves every name to one address, as an attacker's DNS might.
struct ResolvesTo(IpAddr);

#[async_trait::async_trait]
impl HostResolver for ResolvesTo {
    async fn resolve(&self, _host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        Ok(vec![self.0])
    }
}

#[tokio::test]
async fn an_endpoint_that_resolves_to_the_metadata_service_is_refused_before_any_connection() {
    // No --probe-allow: the custody egress rules apply to subscription endpoints. The name
    // resolves (by an injected resolver) to the cloud metadata address; golive never connects.
    let app = spawn_app_with_engine(|config| {
        config.probe_egress =
            EgressPolicy::default().with_resolver(Arc::new(ResolvesTo("169.254.169.254".parse().unwrap())));
    })
    .await;
    let integration = app.open().await;
    let (status, added) = app
        .post(
            &app.admin,
            "/api/v1/subscriptions",
            &json!({"name": "internal", "url": "https://hooks.internal.example/golive"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let id = added["subscription"]["id"].as_str().unwrap().to_owned();
    let deliverers = app.engine.start_subscription_deliverers("replica-a".into(), fast_settings());
    notes(&app, &integration, 1).await;
    let shown = wait_view(&app, &id, "refused", |v| v["dead_lettered"] == 1).await;
    let failure = shown["dead_letters"][0]["failure"].as_str().unwrap();
    assert!(failure.contains("not allowed") && failure.contains("169.254.169.254"), "{failure}");
    deliverers.stop().await;
}

#[tokio::test]
async fn two_replicas_on_postgresql_deliver_a_subscription_one_at_a_time_and_take_over_from_a_crashed_one() {
    let Some(base) = crate::pg::available("two_replicas_on_postgresql_deliver_a_subscription_one_at_a_time").await
    else {
        return;
    };
    let (schema, url) = crate::pg::fresh_schema(&base).await;
    // Both replicas share the master key, as replicas of one deployment do.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("master.key");
    std::fs::write(&key_file, hex_key()).unwrap();
    let replica = |name: &'static str| {
        let url = url.clone();
        let key_file = key_file.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut config = golive::engine::EngineConfig::new(
                golive::domain::HttpUrl::parse("https://golive.example.com").unwrap(),
                None,
            );
            config.probe_egress = EgressPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]);
            let options = golive::engine::OpenOptions { master_key_file: Some(key_file), ..Default::default() };
            let (engine, _) = Engine::open_postgres(&url, dir.path(), config, options).await.unwrap();
            (engine, dir, name)
        }
    };
    let (a, _dir_a, _) = replica("a").await;
    let (b, _dir_b, _) = replica("b").await;
    let endpoint = Endpoint::start().await;
    let actor = golive::domain::Actor::parse("admin").unwrap();
    let added = a
        .add_subscription(serde_json::from_value(json!({"name": "warehouse", "url": endpoint.url})).unwrap(), &actor)
        .await
        .unwrap();
    endpoint.set_secret(&added.secret);
    // Slow answers widen the window in which two replicas could overlap.
    endpoint.set_delay_ms(30);
    let deliver_a = a.start_subscription_deliverers("replica-a".into(), fast_settings());
    let deliver_b = b.start_subscription_deliverers("replica-b".into(), fast_settings());
    let open = |engine: &Engine, n: usize| {
        let engine = engine.clone();
        let actor = actor.clone();
        async move {
            for i in 0..n {
                let body = json!({"customer": format!("Customer {i}"), "gitlab_url": "https://gitlab.example.com"});
                engine.open_integration(body, &actor, None).await.unwrap();
            }
        }
    };
    // Both replicas record events while both run deliverers.
    tokio::join!(open(&a, 8), open(&b, 8));
    let all = positions(&a, 0, |_| true).await;
    endpoint.wait_for(&all, Duration::from_secs(30)).await;
    assert_eq!(endpoint.max_in_flight(), 1, "never two replicas delivering at once");
    // The holder crashes: the other takes over once its lease runs out.
    let holder = a.subscription(added.subscription.id).await.unwrap().delivered_by.unwrap();
    let (crashed, survivor) = if holder == "replica-a" { (deliver_a, deliver_b) } else { (deliver_b, deliver_a) };
    crashed.abandon();
    open(&a, 4).await;
    let all = positions(&a, 0, |_| true).await;
    let received = endpoint.wait_for(&all, Duration::from_secs(30)).await;
    assert_in_order(&received);
    assert_eq!(endpoint.max_in_flight(), 1);
    let shown = b.subscription(added.subscription.id).await.unwrap();
    assert_ne!(shown.delivered_by.as_deref(), Some(holder.as_str()), "the survivor delivers now: {shown:?}");
    survivor.stop().await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    crate::pg::drop_schema(&base, &schema).await;
}

fn hex_key() -> String {
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `golive serve` process on `data`, allowed to reach loopback; answers its address.
fn serve(data: &std::path::Path) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .env("GOLIVE_LOG", "warn")
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0", "--probe-allow", "127.0.0.0/8"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first_line).unwrap();
    let address = first_line.trim().strip_prefix("listening on ").expect("the first line names the address").to_owned();
    (child, address)
}

/// The `golive` binary against `address` with `token`; its JSON answer.
fn remote(address: &str, token: &str, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
        .args(["--server", address])
        .args(args)
        .arg("--json")
        .env("GOLIVE_TOKEN", token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_every_event_in_order_through_a_sigkill_and_a_restart_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
        .arg("--data-dir")
        .arg(&data)
        .args(["token", "create", "--role", "admin", "--name", "ops"])
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let endpoint = Endpoint::start().await;
    let (mut server, address) = serve(&data);
    let added = remote(
        &address,
        &token,
        &["subscription", "add", "--name", "warehouse", "--url", &endpoint.url, "--from", "1"],
    );
    endpoint.set_secret(added["secret"].as_str().unwrap());
    let subscription = added["subscription"]["id"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let record = |address: String, count: usize| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            for i in 0..count {
                let body = json!({"customer": format!("Customer {i}"), "gitlab_url": "https://gitlab.example.com"});
                let response = http
                    .post(format!("{address}/api/v1/integrations"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        }
    };
    // Events flow and deliveries with them; the server is killed mid-way.
    endpoint.set_delay_ms(60);
    record(address.clone(), 6).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while endpoint.received().len() < 2 {
        assert!(Instant::now() < deadline, "no delivery before the kill");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unsafe { libc::kill(server.id() as i32, libc::SIGKILL) };
    server.wait().unwrap();
    let before_kill = endpoint.received().len();
    endpoint.set_delay_ms(0);

    // Restarted on the same directory: delivery resumes from the checkpoint.
    let (mut server, address) = serve(&data);
    record(address.clone(), 3).await;
    let store_head = |address: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let events: Value = http
                .get(format!("{address}/api/v1/events?limit=1000"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            events["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["position"].as_u64().unwrap())
                .collect::<BTreeSet<u64>>()
        }
    };
    let all = store_head(address.clone()).await;
    endpoint.wait_for(&all, Duration::from_secs(20)).await;
    // A graceful stop, events recorded while no server runs (the CLI on the directory), and
    // the next start delivers them too.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_golive"))
        .env("GOLIVE_ALLOW_LOCAL_URLS", "true")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--as",
            "ops",
            "integration",
            "create",
            "--customer",
            "Offline Inc",
            "--gitlab-url",
            "https://gitlab.offline.example",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut server, address) = serve(&data);
    let all = store_head(address.clone()).await;
    let received = endpoint.wait_for(&all, Duration::from_secs(20)).await;
    assert_in_order(&received);
    assert!(received.iter().all(|r| r.verified), "every delivery is signed with the secret");
    let unique: BTreeSet<&str> = received.iter().map(|r| r.webhook_id.as_str()).collect();
    assert_eq!(unique.len(), all.len(), "every event, no other");
    println!(
        "{} events, {} requests ({} before the SIGKILL); repeats carry the same webhook-id",
        all.len(),
        received.len(),
        before_kill
    );
    let shown = remote(&address, &token, &["subscription", "show", &subscription]);
    assert_eq!(shown["checkpoint"].as_u64().unwrap(), *all.last().unwrap());
    let listed = remote(&address, &token, &["subscription", "list"]);
    assert_eq!(listed[0]["lag"], 0);
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    server.wait().unwrap();
}
