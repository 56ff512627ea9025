//! Shared test helpers: a given/when/then bench over the pure domain.

use chrono::{DateTime, Duration, TimeZone, Utc};
use golive::domain::{self, Actor, Command, Context, Event, HttpUrl, Integration, Origin, Playbook, Rejection, Stage};
use golive::ids::SequentialIds;
use golive::secrets::{DataKey, IntegrationSealer, ShownOnce};
use serde_json::{json, Value};

pub const PUBLIC_URL: &str = "https://golive.factory.example";
pub const GITLAB_URL: &str = "https://gitlab.customer.example";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub fn public_url() -> HttpUrl {
    HttpUrl::parse(PUBLIC_URL).unwrap()
}

pub fn redirect_uri() -> String {
    format!("{PUBLIC_URL}/oauth/gitlab/callback")
}

pub fn default_playbook() -> Playbook {
    Playbook::guide_default(HttpUrl::parse(redirect_uri()).unwrap())
}

/// A pure-domain bench: the state, a clock, deterministic ids and a real sealer.
pub struct Bench {
    pub state: Integration,
    pub history: Vec<(Event, DateTime<Utc>)>,
    pub now: DateTime<Utc>,
    pub ids: SequentialIds,
    pub key: DataKey,
    pub last_shown: ShownOnce,
}

/// What one `when` produced.
pub type Outcome = Result<Vec<Event>, Rejection>;

impl Bench {
    /// A new integration with the guide's default playbook.
    pub fn opened() -> Bench {
        Bench::opened_with(json!({"customer": "Customer Inc", "gitlab_url": GITLAB_URL}))
    }

    pub fn opened_with(open: Value) -> Bench {
        let ids = SequentialIds::starting_at(0x1000);
        let now = t0();
        let request = domain::parse_open_request(open).expect("valid open request");
        let ctx = Context { now, actor: Actor::parse("rep").unwrap(), ids: &ids };
        let events = domain::open(request, default_playbook(), public_url(), &ctx).expect("opened");
        let state = Integration::from_opened(&events[0], now).unwrap();
        let history = events.into_iter().map(|e| (e, now)).collect();
        Bench { state, history, now, ids, key: DataKey::from_bytes([7; 32]), last_shown: ShownOnce::default() }
    }

    /// An integration taken along the happy path until it stands in `stage`.
    pub fn at_stage(stage: Stage) -> Bench {
        let mut bench = Bench::opened();
        for (_, body) in happy_path() {
            if bench.state.stage == stage {
                break;
            }
            bench.ok(body);
        }
        if stage == Stage::Live {
            let today = bench.now.format("%Y-%m-%d").to_string();
            bench.ok(json!({"type": "schedule_go_live", "date": today}));
            bench.ok(json!({"type": "go_live"}));
        }
        assert_eq!(bench.state.stage, stage, "the happy path reaches {stage}");
        bench
    }

    pub fn webhook_url(&self) -> String {
        format!("{PUBLIC_URL}/hooks/gitlab/{}", self.state.id)
    }

    /// Prepares a JSON command and decides it without applying (the state is untouched).
    pub fn decide(&mut self, body: Value) -> Outcome {
        let origin = internal_or_public(&body);
        let request = domain::parse_request(body, origin)?;
        let command = self.prepare(request);
        self.decide_command(&command)
    }

    pub fn prepare(&mut self, request: domain::CommandRequest) -> Command {
        let public = public_url();
        let mut sealer = IntegrationSealer::new(&self.key, self.state.id, &public);
        let command = request.prepare(&mut sealer);
        self.last_shown = sealer.into_shown();
        command
    }

    pub fn decide_command(&self, command: &Command) -> Outcome {
        let actor = Actor::parse("rep").unwrap();
        let ctx = Context { now: self.now, actor, ids: &self.ids };
        self.state.decide(command, &ctx)
    }

    /// When: runs a JSON command; applies its events when accepted.
    pub fn when(&mut self, body: Value) -> Outcome {
        let before = self.state.clone();
        let outcome = self.decide(body);
        match &outcome {
            Ok(events) => {
                for event in events {
                    self.state.apply(event, self.now);
                    self.history.push((event.clone(), self.now));
                }
            }
            Err(_) => assert_eq!(self.state, before, "a refused command leaves the state unchanged"),
        }
        outcome
    }

    /// Runs a command that must be accepted and returns its events' type names.
    #[track_caller]
    pub fn ok(&mut self, body: Value) -> Vec<&'static str> {
        let shown = body.to_string();
        match self.when(body) {
            Ok(events) => events.iter().map(Event::type_name).collect(),
            Err(rejection) => panic!("{shown} was refused: {rejection}"),
        }
    }

    pub fn advance(&mut self, duration: Duration) {
        self.now += duration;
    }

    pub fn is_met(&self, id: &str) -> bool {
        self.state
            .checklist()
            .into_iter()
            .find(|item| item.id == id)
            .unwrap_or_else(|| panic!("no requirement {id}"))
            .met
    }
}

pub fn internal_or_public(body: &Value) -> Origin {
    match body.get("type").and_then(Value::as_str) {
        Some("record_webhook_delivery") | Some("record_probe_result") => Origin::Internal,
        _ => Origin::Public,
    }
}

/// The stages entered (in order) by a list of events.
pub fn entered(events: &[Event]) -> Vec<Stage> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StageEntered { stage } => Some(*stage),
            _ => None,
        })
        .collect()
}

pub fn delivery(event: &str, kind: &str, extra: Value) -> Value {
    let mut body = json!({
        "type": "record_webhook_delivery",
        "event": event,
        "object_kind": kind,
        "project": "customer/app",
        "instance": GITLAB_URL,
        "idempotency_key": "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "received_at": "2026-03-02T09:00:00Z",
        "body_sha256": "a3f1c2e4b5d6a7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
    });
    let map = body.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        map.insert(k.clone(), v.clone());
    }
    body
}

pub fn note_delivery() -> Value {
    delivery("Note Hook", "note", json!({}))
}
pub fn push_delivery() -> Value {
    delivery("Push Hook", "push", json!({"after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}))
}
pub fn merge_request_open_delivery() -> Value {
    delivery("Merge Request Hook", "merge_request", json!({"action": "open"}))
}
pub fn issue_open_delivery() -> Value {
    delivery("Issue Hook", "issue", json!({"action": "open"}))
}
pub fn pipeline_delivery() -> Value {
    delivery("Pipeline Hook", "pipeline", json!({"status": "failed"}))
}

/// The guide walked in order: each step with the stage it completes.
pub fn happy_path() -> Vec<(Stage, Value)> {
    let webhook = format!("{PUBLIC_URL}/hooks/gitlab/{}", uuid::Uuid::from_u128(0x1001));
    vec![
        (
            Stage::InfoGathered,
            json!({"type": "confirm_prerequisites", "gitlab_admin_access": true, "network_access": true, "factory_admin_account": true}),
        ),
        (
            Stage::InfoGathered,
            json!({"type": "register_application", "name": "Factory Integration", "redirect_uri": redirect_uri(), "application_id": "app-123", "scopes": ["api", "read_user", "read_repository", "write_repository", "read_registry", "sudo"]}),
        ),
        (
            Stage::InfoGathered,
            json!({"type": "provide_application_secret", "secret": "gloas-test-application-secret-1"}),
        ),
        (Stage::InfoGathered, json!({"type": "set_instance_url", "gitlab_url": GITLAB_URL, "ssh_port": 22})),
        (
            Stage::InfoGathered,
            json!({"type": "provide_access_token", "token": "glpat-test-access-token-1", "admin": true}),
        ),
        (Stage::InfoGathered, json!({"type": "submit_information"})),
        (Stage::NetworkEstablished, json!({"type": "evaluate_network_policy", "barriers": []})),
        (
            Stage::NetworkEstablished,
            json!({"type": "establish_vpc_peering", "peering_id": "pcx-0a1b2c3d", "customer_vpc_id": "vpc-0123abcd", "factory_vpc_id": "vpc-0fedcba987654321a", "route_tables_configured": true}),
        ),
        (
            Stage::NetworkEstablished,
            json!({"type": "configure_firewall", "outbound_https": true, "outbound_ssh": true, "webhook_endpoint_reachable": true}),
        ),
        (Stage::WebhookLive, json!({"type": "issue_webhook_credentials"})),
        (
            Stage::WebhookLive,
            json!({"type": "create_webhook", "url": webhook, "triggers": ["push", "comments", "merge_requests", "issues", "ci_cd"]}),
        ),
        (Stage::WebhookLive, note_delivery()),
        (Stage::Tested, json!({"type": "record_api_check", "ok": true})),
        (Stage::Tested, push_delivery()),
        (Stage::Tested, merge_request_open_delivery()),
        (Stage::Tested, issue_open_delivery()),
        (Stage::Tested, pipeline_delivery()),
        (
            Stage::Validated,
            json!({"type": "validate_response", "scenario": "merge_request_created", "correct": true, "evidence": "reviewed"}),
        ),
        (
            Stage::Validated,
            json!({"type": "validate_response", "scenario": "code_pushed", "correct": true, "evidence": "indexed"}),
        ),
        (
            Stage::Validated,
            json!({"type": "validate_response", "scenario": "issue_opened", "correct": true, "evidence": "triaged"}),
        ),
        (
            Stage::Validated,
            json!({"type": "validate_response", "scenario": "pipeline_ran", "correct": true, "evidence": "explained"}),
        ),
    ]
}
