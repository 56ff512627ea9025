//! The request and response bodies of the API as typed schemas for the OpenAPI document.
//!
//! Most answers are built as `serde_json::Value` in `views.rs` and the handlers, so these
//! structs are schema-only mirrors of what the server sends and accepts: they exist to carry
//! the shapes and the validation rules (lengths, patterns, enums, formats, required fields,
//! unknown fields refused) into the document. Schemathesis checks them against the server's
//! real answers in CI, which is what keeps a mirror honest. The patterns restate the rules of
//! `domain::values`; where a rule cannot be said as a pattern (a URL the parser refuses, a
//! certificate that does not parse) the server's 400 is the documented answer.

#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The rules of `domain::values` as JSON Schema keywords. `utoipa` takes only literals in
/// its attributes, so fields name a rule with a marker pattern (`"@short_text"`) and the
/// document replaces each marker with its keywords: one definition per rule.
pub const RULES: &[(&str, &str)] = &[
    // A short single-line text: not blank, at most 200 characters, no control characters.
    (
        "@short_text",
        r#"{"minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"}"#,
    ),
    // A free text: not blank, at most 4000 characters, no control characters but \n, \r, \t.
    (
        "@long_text",
        r#"{"minLength": 1, "maxLength": 4000, "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"}"#,
    ),
    // A secret in plaintext: not blank, no control characters, at most 4096 bytes (1024
    // characters keep every match under the byte limit).
    (
        "@secret",
        r#"{"minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"}"#,
    ),
    // An https URL with a plain host name: the part of what `HttpUrl` accepts that a pattern
    // can say (the URL parser refuses more hosts than a pattern can).
    (
        "@https_url",
        r#"{"maxLength": 2048, "pattern": "^https://[a-z][a-z0-9-]{0,20}[a-z0-9](\\.[a-z][a-z0-9-]{0,20}[a-z0-9]){0,3}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~-]{1,20}){0,4}$"}"#,
    ),
    // A date YYYY-MM-DD; days up to 28 so that every match is a calendar date.
    // Any http(s) URL, for playbooks (whose `allow_http` may admit http).
    (
        "@any_url",
        r#"{"maxLength": 2048, "pattern": "^https?://[a-z0-9.-]+(:[1-9][0-9]{0,4})?(/[A-Za-z0-9._~-]{1,20}){0,4}$"}"#,
    ),
    ("@date", r#"{"pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"}"#),
    ("@scope", r#"{"pattern": "^[a-z_]{1,64}$"}"#),
    ("@vpc_id", r#"{"pattern": "^vpc-([0-9a-f]{8}|[0-9a-f]{17})$"}"#),
    ("@peering_id", r#"{"pattern": "^pcx-([0-9a-f]{8}|[0-9a-f]{17})$"}"#),
    ("@playbook_id", r#"{"pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}"#),
    // A PEM certificate; whether it parses is the server's to say (400).
    ("@pem", r#"{"maxLength": 65536, "pattern": "-----BEGIN CERTIFICATE-----[\\s\\S]*-----END CERTIFICATE-----"}"#),
];

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Created,
    InfoGathered,
    NetworkEstablished,
    WebhookLive,
    Tested,
    Validated,
    Live,
    Cancelled,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Push,
    TagPush,
    Comments,
    MergeRequests,
    Issues,
    CiCd,
    Jobs,
    Deployments,
    Releases,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    MergeRequestCreated,
    CodePushed,
    IssueOpened,
    PipelineRan,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockCategory {
    ApiFailure,
    PermissionDenied,
    WebhookNotReceived,
    Other,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingCategory {
    ApiFailure,
    PermissionDenied,
    WebhookNotReceived,
    RateLimited,
    Stalled,
    Other,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    ApplicationSecret,
    AccessToken,
    WebhookToken,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    ApplicationSecret,
    AccessToken,
    WebhookSigningKey,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Rep,
    Viewer,
}

// ---- requests -------------------------------------------------------------------------------

/// A playbook sent whole (admin only; a rep names a registered one with `playbook_id`).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    #[schema(pattern = "@playbook_id")]
    pub id: String,
    // u64 in this mirror: utoipa writes `format: int32` for a u32, which generators read as a
    // bound of 2^31 - 1 below the real one.
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub version: u64,
    #[schema(pattern = "@short_text")]
    pub application_name: String,
    #[schema(pattern = "@any_url")]
    pub redirect_uri: String,
    #[schema(inline, max_items = 64)]
    pub required_scopes: Vec<ScopeName>,
    #[schema(inline, max_items = 64)]
    pub required_token_scopes: Vec<ScopeName>,
    pub required_triggers: Vec<Trigger>,
    pub scenarios: Vec<Scenario>,
    #[schema(minimum = 1, maximum = 366)]
    pub monitoring_days: u32,
    /// From 1 minute to 7 days.
    #[schema(minimum = 1, maximum = 10080)]
    pub probe_interval_minutes: u32,
    pub allow_http: bool,
    /// Whether the GitLab application must be confidential (the application check compares it;
    /// absent: not compared).
    pub application_confidential: Option<bool>,
    /// Items only GitLab's API may meet (a person's record is not enough for them).
    #[schema(nullable = false)]
    pub api_evidence_required: Option<Vec<ApiEvidenceItem>>,
}

/// A checklist item a playbook may reserve for GitLab's API.
#[derive(Serialize, Deserialize, ToSchema)]
pub enum ApiEvidenceItem {
    #[serde(rename = "info.application_registered")]
    ApplicationRegistered,
    #[serde(rename = "webhook.created_with_issued_url")]
    WebhookCreatedWithIssuedUrl,
    #[serde(rename = "webhook.triggers")]
    WebhookTriggers,
}

/// A scope name, `[a-z_]{1,64}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = "@scope")]
pub struct ScopeName(pub String);

/// `POST /api/v1/integrations`. A rep names a registered playbook (`playbook_id`, optionally
/// `playbook_version`) or takes the server's default; playbook fields need the admin role.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenIntegration {
    #[schema(pattern = "@short_text", example = "Acme Corp")]
    pub customer: String,
    #[schema(pattern = "@https_url", example = "https://gitlab.acme.example")]
    pub gitlab_url: String,
    #[schema(pattern = "@short_text")]
    pub owner: Option<String>,
    #[schema(pattern = "@playbook_id")]
    pub playbook_id: Option<String>,
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub playbook_version: Option<u64>,
    #[schema(pattern = "@pem")]
    pub ca_certificate_pem: Option<String>,
}

macro_rules! command {
    ($(#[$doc:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($body)* }
    };
}

command!(
    /// `confirm_prerequisites`: the guide's three prerequisites.
    ConfirmPrerequisites {
        pub gitlab_admin_access: bool,
        pub network_access: bool,
        pub factory_admin_account: bool,
    }
);
command!(
    /// `register_application`: the GitLab OAuth application the customer registered.
    RegisterApplication {
        #[schema(pattern = "@short_text", example = "Factory Integration")]
        pub name: String,
        #[schema(pattern = "@https_url")]
        pub redirect_uri: String,
        #[schema(pattern = "@short_text")]
        pub application_id: String,
        #[schema(inline, max_items = 64)]
        pub scopes: Vec<ScopeName>,
    }
);
command!(
    /// `provide_application_secret`: sealed on arrival, never returned.
    ProvideApplicationSecret {
        #[schema(pattern = "@secret")]
        pub secret: String,
    }
);
command!(
    /// `set_instance_url`: where the customer's GitLab lives, and the internal CA that signed
    /// its certificate.
    SetInstanceUrl {
        #[schema(pattern = "@https_url")]
        pub gitlab_url: String,
        #[schema(pattern = "@pem")]
        pub ca_certificate_pem: Option<String>,
        #[schema(minimum = 1, maximum = 65535)]
        pub ssh_port: Option<u32>,
    }
);
command!(
    /// `provide_access_token`: sealed on arrival, never returned.
    ProvideAccessToken {
        #[schema(pattern = "@secret")]
        pub token: String,
        pub admin: bool,
    }
);
command!(
    /// `submit_information`, `go_live`, `complete_monitoring`: no fields.
    NoFields {}
);
command!(
    /// `evaluate_network_policy`: the barriers found (possibly none).
    EvaluateNetworkPolicy {
        #[schema(inline, max_items = 64)]
        pub barriers: Vec<ShortTextItem>,
        #[schema(pattern = "@long_text")]
        pub notes: Option<String>,
    }
);
/// A short text in a list.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = "@short_text")]
pub struct ShortTextItem(pub String);

command!(
    /// `establish_vpc_peering`.
    EstablishVpcPeering {
        #[schema(pattern = "@peering_id", example = "pcx-0a1b2c3d")]
        pub peering_id: String,
        #[schema(pattern = "@vpc_id", example = "vpc-0a1b2c3d")]
        pub customer_vpc_id: String,
        #[schema(pattern = "@vpc_id", example = "vpc-1a2b3c4d")]
        pub factory_vpc_id: String,
        pub route_tables_configured: bool,
    }
);
command!(
    /// `establish_vpn`.
    EstablishVpn {
        pub tunnel_established: bool,
        pub ipsec_compatible: bool,
        #[schema(pattern = "@long_text")]
        pub notes: Option<String>,
    }
);
command!(
    /// `configure_firewall`.
    ConfigureFirewall {
        pub outbound_https: bool,
        pub outbound_ssh: bool,
        pub webhook_endpoint_reachable: bool,
    }
);
command!(
    /// `issue_webhook_credentials`: the answer carries `webhook_url`, `secret_token` and, with
    /// `signing: true`, `signing_key`, shown once.
    IssueWebhookCredentials {
        pub signing: Option<bool>,
    }
);
command!(
    /// `create_webhook`: the webhook as created in GitLab.
    CreateWebhook {
        #[schema(pattern = "@https_url")]
        pub url: String,
        #[schema(max_items = 64)]
        pub triggers: Vec<Trigger>,
    }
);
command!(
    /// `record_api_check`.
    RecordApiCheck {
        pub ok: bool,
        #[schema(pattern = "@long_text")]
        pub detail: Option<String>,
    }
);
command!(
    /// `record_manual_test`.
    RecordManualTest {
        pub scenario: Scenario,
        pub passed: bool,
        #[schema(pattern = "@long_text")]
        pub note: String,
    }
);
command!(
    /// `validate_response`: `evidence` or `note` is required.
    ValidateResponse {
        pub scenario: Scenario,
        pub correct: bool,
        #[schema(pattern = "@long_text")]
        pub evidence: Option<String>,
        #[schema(pattern = "@long_text")]
        pub note: Option<String>,
    }
);
command!(
    /// `report_feedback`: the answer's events carry the new `feedback_id`.
    ReportFeedback {
        #[schema(pattern = "@long_text")]
        pub summary: String,
    }
);
command!(
    /// `resolve_feedback`.
    ResolveFeedback {
        #[schema(format = Uuid)]
        pub feedback_id: String,
        #[schema(pattern = "@long_text")]
        pub resolution: String,
    }
);
command!(
    /// `schedule_go_live`: a UTC date.
    ScheduleGoLive {
        #[schema(pattern = "@date", example = "2026-12-14")]
        pub date: String,
    }
);
command!(
    /// `assign_owner`.
    AssignOwner {
        #[schema(pattern = "@short_text")]
        pub owner: String,
    }
);
command!(
    /// `add_note`.
    AddNote {
        #[schema(pattern = "@long_text")]
        pub text: String,
    }
);
command!(
    /// `block`: a troubleshooting category and what is wrong.
    Block {
        pub category: BlockCategory,
        #[schema(pattern = "@long_text")]
        pub detail: String,
    }
);
command!(
    /// `unblock`.
    Unblock {
        #[schema(pattern = "@long_text")]
        pub resolution: String,
    }
);
command!(
    /// `rotate_credential`: without `secret` the old one is void and must be provided again.
    RotateCredential {
        pub credential: Credential,
        #[schema(pattern = "@secret")]
        pub secret: Option<String>,
        pub admin: Option<bool>,
    }
);
command!(
    /// `cancel`: terminal; every later command is refused (409).
    Cancel {
        #[schema(pattern = "@long_text")]
        pub reason: String,
    }
);

command!(
    /// `change_public_url`: where golive is reached from outside for this integration (later
    /// webhook URLs and intake links derive from it; a derived redirect URI follows it).
    ChangePublicUrl {
        #[schema(pattern = "@https_url")]
        pub public_url: String,
    }
);

/// The command names and the schema of each command's fields, in vocabulary order. The
/// document gives each command schema its `type` property from this table.
pub const COMMANDS: [(&str, &str); 27] = [
    ("confirm_prerequisites", "ConfirmPrerequisites"),
    ("register_application", "RegisterApplication"),
    ("provide_application_secret", "ProvideApplicationSecret"),
    ("set_instance_url", "SetInstanceUrl"),
    ("provide_access_token", "ProvideAccessToken"),
    ("submit_information", "NoFields"),
    ("evaluate_network_policy", "EvaluateNetworkPolicy"),
    ("establish_vpc_peering", "EstablishVpcPeering"),
    ("establish_vpn", "EstablishVpn"),
    ("configure_firewall", "ConfigureFirewall"),
    ("issue_webhook_credentials", "IssueWebhookCredentials"),
    ("create_webhook", "CreateWebhook"),
    ("record_api_check", "RecordApiCheck"),
    ("record_manual_test", "RecordManualTest"),
    ("validate_response", "ValidateResponse"),
    ("report_feedback", "ReportFeedback"),
    ("resolve_feedback", "ResolveFeedback"),
    ("schedule_go_live", "ScheduleGoLive"),
    ("go_live", "NoFields"),
    ("complete_monitoring", "NoFields"),
    ("assign_owner", "AssignOwner"),
    ("add_note", "AddNote"),
    ("block", "Block"),
    ("unblock", "Unblock"),
    ("rotate_credential", "RotateCredential"),
    ("cancel", "Cancel"),
    ("change_public_url", "ChangePublicUrl"),
];

/// `POST /api/v1/tokens`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Not one of golive's own actor names (gitlab, probe, customer, ...).
    #[schema(pattern = "@short_text")]
    pub name: String,
    pub role: Role,
}

/// `POST /api/v1/integrations/{id}/intake-links` (rep).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct IntakeLinkRequest {
    /// How long the link works, in hours (default 72).
    #[schema(minimum = 1, maximum = 336)]
    pub expires_in_hours: Option<u32>,
}

/// A one-time intake link, shown once.
#[derive(Serialize, ToSchema)]
pub struct IntakeLinkIssued {
    /// The whole link to send the customer (the integration's public URL and a secret path).
    pub url: String,
    #[schema(format = Uuid)]
    pub link_id: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(minimum = 1)]
    pub version: u64,
}

/// An intake link as the state lists it (never its secret).
#[derive(Serialize, ToSchema)]
pub struct IntakeLinkView {
    #[schema(format = Uuid)]
    pub link_id: String,
    #[schema(format = DateTime)]
    pub issued_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub status: IntakeLinkStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntakeLinkStatus {
    Open,
    Redeemed,
    Expired,
}

/// `POST /api/v1/integrations/{id}/reveal` (admin, audited).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RevealRequest {
    pub secret: SecretKind,
}

// ---- responses ------------------------------------------------------------------------------

/// One requirement of the checklist.
#[derive(Serialize, ToSchema)]
pub struct ChecklistItem {
    pub id: String,
    pub label: String,
    pub stage: Stage,
    pub met: bool,
    /// Why an unmet item is unmet, naming what differs from the guide ("nothing recorded yet"
    /// when nothing was); null when met.
    pub reason: Option<String>,
    /// Whether something was recorded that differs from what the guide expects.
    pub differs: bool,
    /// What the item rests on, and the event that supplied it; null while nothing is recorded.
    pub evidence: Option<ItemEvidence>,
}

/// Where an item's fact came from.
#[derive(Serialize, ToSchema)]
pub struct ItemEvidence {
    pub source: EvidenceSource,
    /// The supplying event's type.
    pub event: String,
    /// Its version in the integration's stream.
    #[schema(minimum = 1)]
    pub version: u64,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    Rep,
    CustomerIntake,
    GitlabApi,
    GitlabDelivery,
    Golive,
}

/// A check golive can run through GitLab's API.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    Application,
    Webhook,
    TestDeliveries,
    /// Opt-in, admin only: performs the playbook's scenarios in the customer's GitLab.
    Scenarios,
}

/// `POST /api/v1/integrations/{id}/checks` (rep): which checks (none named: all), and where the
/// webhook lives when the customer said (else golive searches within bounded pages).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[schema(min_items = 1)]
    pub checks: Option<Vec<CheckName>>,
    #[schema(minimum = 1)]
    pub group_id: Option<u64>,
    /// Not with `group_id`.
    #[schema(minimum = 1)]
    pub project_id: Option<u64>,
    /// With `scenarios`: the project to perform them in (else a scratch project in the
    /// webhook's group).
    #[schema(minimum = 1)]
    pub scenario_project_id: Option<u64>,
    /// With `scenarios`: keep the scratch project afterwards.
    pub keep_scratch_project: Option<bool>,
    /// With `scenarios`: the Droid's GitLab username, whose comment golive watches for.
    #[schema(pattern = r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}$")]
    pub droid_username: Option<String>,
}

/// A run of checks started: its id, and where its progress appears.
#[derive(Serialize, ToSchema)]
pub struct CheckStarted {
    #[schema(format = Uuid)]
    pub check_id: String,
    #[schema(format = Uuid)]
    pub integration_id: String,
    /// The checks the run performs.
    pub checks: Vec<CheckName>,
    /// Checks a request that named none left out because they cannot run yet (no Application
    /// ID recorded, no webhook credentials issued).
    pub skipped: Vec<CheckName>,
    /// The integration's state (its `check_runs` and `test_deliveries`).
    pub state: String,
    /// The integration's history (the run's events).
    pub events: String,
}

/// A run of checks as the state lists it, newest first.
#[derive(Serialize, ToSchema)]
pub struct CheckRunView {
    #[schema(format = Uuid)]
    pub check_id: String,
    pub checks: Vec<CheckName>,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub under_way: bool,
    /// The checked items left unmet.
    pub unmet: Vec<String>,
    /// Triggers whose requested test delivery never arrived.
    pub deliveries_missing: Vec<String>,
    /// Checks that could not look (GitLab unreachable, the token refused): see `check_failures`.
    pub could_not_look: Vec<CheckName>,
    /// Checks a run that named none left out because they could not run yet.
    pub skipped: Vec<CheckName>,
}

/// The latest check of a kind that could not look, in golive's words.
#[derive(Serialize, ToSchema)]
pub struct CheckFailureView {
    pub category: String,
    pub detail: String,
    #[schema(format = DateTime)]
    pub at: String,
}

/// A requested test delivery, per trigger, of the latest run that asked for them.
#[derive(Serialize, ToSchema)]
pub struct TestDeliveryView {
    #[schema(format = Uuid)]
    pub check_id: String,
    /// Where the hook lives: `{kind: system|group|project, group_id?, project_id?}`.
    #[schema(value_type = Object)]
    pub hook: serde_json::Value,
    /// `{outcome: delivered|delivery_failed|no_sample_data|not_testable|not_available|rate_limited|failed, ...}`
    /// (`delivery_failed` with `cause`: timeout, connection, tls, refused_by_golive; and `reason`).
    #[schema(value_type = Object)]
    pub outcome: serde_json::Value,
    #[schema(format = DateTime)]
    pub requested_at: String,
    #[schema(format = DateTime)]
    pub received_at: Option<String>,
    pub round_trip_seconds: Option<f64>,
}

/// A next action (contract): what to do, the requirements it meets, the command line to run
/// (full id, no global options, upper-case placeholders for what only the rep knows), and the
/// v1 command with the fields golive can fill, or null when it is not a v1 command.
#[derive(Serialize, ToSchema)]
pub struct NextAction {
    pub label: String,
    pub requirement_ids: Vec<String>,
    #[schema(pattern = "^golive ")]
    pub cli: String,
    /// `{type, ...fields}`.
    #[schema(value_type = Option<Object>)]
    pub command: Option<serde_json::Value>,
}

/// A value recorded for the checklist, as a rep reads it (secrets as "provided" only).
#[derive(Serialize, ToSchema)]
pub struct RecordedValue {
    pub item: String,
    pub value: String,
}

/// A requirement not met, as named in `unmet` and `missing`.
#[derive(Serialize, ToSchema)]
pub struct Unmet {
    pub id: String,
    pub label: String,
}

#[derive(Serialize, ToSchema)]
pub struct Cause {
    pub command: String,
    pub requirements: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Blocked {
    pub category: BlockCategory,
    pub detail: String,
    #[schema(format = DateTime)]
    pub since: String,
    pub cause: Option<Cause>,
}

#[derive(Serialize, ToSchema)]
pub struct FeedbackItem {
    #[schema(format = Uuid)]
    pub id: String,
    pub summary: String,
    pub scenario: Option<Scenario>,
    #[schema(format = DateTime)]
    pub reported_at: String,
    pub resolution: Option<String>,
    #[schema(format = DateTime)]
    pub resolved_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Monitoring {
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    pub reason: String,
    #[schema(format = DateTime)]
    pub at: String,
    pub from_stage: Stage,
}

#[derive(Serialize, ToSchema)]
pub struct PlaybookRef {
    pub id: String,
    pub version: u32,
}

/// Where a credential may be used.
#[derive(Serialize, ToSchema)]
pub struct Binding {
    pub origin: String,
    pub ca_fingerprint: Option<String>,
    pub usable: bool,
}

/// Secrets appear only as fingerprints.
#[derive(Serialize, ToSchema)]
pub struct SecretsView {
    pub application_secret: Option<String>,
    pub access_token: Option<String>,
    pub application_secret_bound_to: Option<Binding>,
    pub access_token_bound_to: Option<Binding>,
    pub webhook_signing_key: Option<String>,
    #[schema(format = DateTime)]
    pub shredded_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub url: Option<String>,
    pub deliveries_recorded: u64,
    #[schema(format = DateTime)]
    pub last_delivery_at: Option<String>,
    #[schema(format = DateTime)]
    pub verified_delivery_at: Option<String>,
}

/// An integration's state: the contract's fields plus conveniences.
#[derive(Serialize, ToSchema)]
pub struct IntegrationState {
    #[schema(format = Uuid)]
    pub id: String,
    pub customer: String,
    pub owner: Option<String>,
    pub stage: Stage,
    #[schema(minimum = 1)]
    pub version: u64,
    pub redirect_uri: String,
    pub gitlab_url: String,
    pub blocked: Option<Blocked>,
    pub checklist: Vec<ChecklistItem>,
    pub next_steps: Vec<String>,
    pub next_actions: Vec<NextAction>,
    pub recorded: Vec<RecordedValue>,
    pub feedback: Vec<FeedbackItem>,
    pub monitoring: Option<Monitoring>,
    #[schema(format = DateTime)]
    pub opened_at: String,
    #[schema(format = DateTime)]
    pub stage_entered_at: String,
    pub days_in_stage: i64,
    #[schema(format = DateTime)]
    pub last_progress_at: String,
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub go_live_date: Option<String>,
    pub cancelled: Option<Cancelled>,
    pub playbook: PlaybookRef,
    pub secrets: SecretsView,
    pub webhook: WebhookView,
    pub latest_probe: Option<LatestProbe>,
    pub check_runs: Vec<CheckRunView>,
    /// Per check name: the latest check of that kind that could not look.
    pub check_failures: std::collections::BTreeMap<String, CheckFailureView>,
    /// The steps of the latest scenario run: `{check_id, step, scenario, outcome, at}`.
    #[schema(value_type = Vec<Object>)]
    pub scenario_steps: Vec<serde_json::Value>,
    /// Scenarios whose Droid comment a scenario run saw, and when.
    #[schema(value_type = Object)]
    pub droid_comments_seen: serde_json::Value,
    /// Per trigger name.
    pub test_deliveries: std::collections::BTreeMap<String, TestDeliveryView>,
    /// Where golive is reached from outside for this integration, recorded when it opened
    /// (null for integrations opened before golive recorded it).
    pub public_url: Option<String>,
    pub intake_links: Vec<IntakeLinkView>,
}

/// The latest probe result, as recorded, and when.
#[derive(Serialize, ToSchema)]
pub struct LatestProbe {
    #[schema(format = DateTime)]
    pub at: String,
    pub result: ProbeResult,
}

/// The envelope of a stored event (the JSON Schema of `data` per `type` is
/// `GET /api/v1/schemas/events.json`).
#[derive(Serialize, ToSchema)]
pub struct EventEnvelope {
    #[schema(minimum = 1)]
    pub position: u64,
    #[schema(format = Uuid)]
    pub integration_id: String,
    #[schema(minimum = 1)]
    pub version: u64,
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = DateTime)]
    pub recorded_at: String,
    pub actor: String,
    #[serde(rename = "type")]
    #[schema(pattern = r"^[a-z_]+$")]
    pub event_type: String,
    #[schema(minimum = 1)]
    pub schema_version: u32,
    pub data: serde_json::Value,
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    pub prev_hash: String,
    #[schema(pattern = r"^[0-9a-f]{64}$")]
    pub hash: String,
}

/// The answer to a command; `webhook_url`, `secret_token`, `signing_key` and `already_shown`
/// come with `issue_webhook_credentials` and a `webhook_token` rotation.
#[derive(Serialize, ToSchema)]
pub struct Executed {
    pub state: IntegrationState,
    pub events: Vec<EventEnvelope>,
    pub webhook_url: Option<String>,
    pub secret_token: Option<String>,
    #[schema(pattern = r"^whsec_")]
    pub signing_key: Option<String>,
    pub already_shown: Option<bool>,
}

/// A page of events; pass `next_after` as `after` to continue (null at the end).
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventEnvelope>,
    pub next_after: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct IntegrationSummary {
    #[schema(format = Uuid)]
    pub id: String,
    pub customer: String,
    /// The instance of record.
    pub gitlab_url: String,
    pub owner: Option<String>,
    pub stage: Stage,
    pub version: u64,
    pub blocked: Option<BlockCategory>,
    pub days_in_stage: i64,
    pub days_since_progress: i64,
    pub stalled: bool,
    pub go_live_date: Option<String>,
    #[schema(format = DateTime)]
    pub monitoring_ends_at: Option<String>,
    pub next_step: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BoardColumn {
    pub stage: Stage,
    pub count: u64,
    pub integrations: Vec<IntegrationSummary>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CalendarKind {
    GoLive,
    MonitoringEnds,
}

#[derive(Serialize, ToSchema)]
pub struct CalendarEntry {
    #[schema(format = Date)]
    pub date: String,
    pub kind: CalendarKind,
    #[schema(format = Uuid)]
    pub id: String,
    pub customer: String,
    pub owner: Option<String>,
    pub stage: Stage,
}

#[derive(Serialize, ToSchema)]
pub struct Finding {
    pub category: FindingCategory,
    pub message: String,
    pub advice: String,
}

#[derive(Serialize, ToSchema)]
pub struct BlockSummary {
    pub category: BlockCategory,
    pub detail: String,
    #[schema(format = DateTime)]
    pub since: String,
}

#[derive(Serialize, ToSchema)]
pub struct Diagnosis {
    pub stage: Stage,
    pub blocked: Option<BlockSummary>,
    pub missing: Vec<Unmet>,
    pub findings: Vec<Finding>,
}

/// What one run of the GitLab probe found (a failed probe is a finding, not an error).
#[derive(Serialize, ToSchema)]
pub struct ProbeResult {
    pub api_reachable: bool,
    pub ssh_reachable: Option<bool>,
    pub category: Option<FindingCategory>,
    pub gitlab_version: Option<String>,
    pub token_active: Option<bool>,
    pub token_expires_at: Option<String>,
    pub token_scopes: Option<Vec<String>>,
    pub missing_token_scopes: Option<Vec<String>>,
    pub admin: Option<bool>,
    pub detail: Option<String>,
    pub api_round_trip_ms: Option<u64>,
    pub ssh_round_trip_ms: Option<u64>,
    /// The integration's version after recording the result (only in the probe's answer).
    pub version: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyReport {
    pub valid: bool,
    pub head: String,
    pub events_checked: u64,
    pub first_bad_position: Option<u64>,
    pub reason: Option<String>,
    pub extends_expected: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub name: String,
    pub role: Role,
    /// Shown once; only its SHA-256 is stored.
    pub token: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RegisteredPlaybook {
    pub playbook: Playbook,
    pub registered_by: String,
    #[schema(format = DateTime)]
    pub registered_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Playbooks {
    pub default: Playbook,
    pub playbooks: Vec<RegisteredPlaybook>,
}

#[derive(Serialize, ToSchema)]
pub struct Revealed {
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectorStatus {
    pub up: bool,
    pub restarts: u64,
    pub checkpoint: u64,
    pub lag: u64,
    pub last_failure: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
    pub head: u64,
    pub projector: ProjectorStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Recorded,
    Duplicate,
    /// A GitLab event golive does not use: acknowledged, stored nowhere.
    Ignored,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryRecorded {
    pub status: DeliveryStatus,
    pub version: u64,
}

/// Process figures (the read model's; their detail is documented in `docs/`).
#[derive(Serialize, ToSchema)]
pub struct Insights {
    #[serde(flatten)]
    pub figures: std::collections::BTreeMap<String, serde_json::Value>,
}
