//! Domain events: past-tense facts, the only thing ever stored.
//!
//! On the wire an event is `{"type": "<snake_case>", "data": {...}}`, which the store wraps in the
//! envelope of the design brief. Secrets appear only as `SealedSecret`; `PlaintextSecret` has no
//! `Serialize` impl, so an event holding one would not compile.
//!
//! Every payload is a type of its own, written for the log rather than borrowed from a command:
//! commands refuse unknown fields and may change their words, events must decode for as long as
//! the log lives. So payloads are tolerant readers (unknown fields ignored, optional fields
//! defaulted), this module imports nothing from `command`, and a change of a payload's shape bumps
//! [`EVENT_SCHEMA_VERSION`] with an upcaster in `engine::codec` from the older shape. The frozen
//! logs of `fixtures/logs/` (decoded by `tests/it/frozen_logs.rs`) fail if a change alters how a
//! stored event decodes, a tightened value limit included.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use std::collections::BTreeSet;

use super::binding::CredentialBinding;
use super::checks::{
    ApplicationChecked, GitlabCheckFinished, GitlabCheckStarted, ScenarioStepPerformed, TestDeliveryAnswered,
    TestDeliveryRequested, WebhookChecked,
};
use super::playbook::{Playbook, Scenario, Trigger};
use super::secret::{IssuedWebhookCredentials, SealedSecret, SecretKind, TokenDigest};
use super::signals::{BlockCategory, ProbeResult, WebhookDelivery};
use super::stage::Stage;
use super::values::{
    CaCertificatePem, Date, HttpUrl, IntegrationId, LongText, PeeringId, Port, Scope, ShortText, VpcId,
};

/// The schema version of the event payloads this build writes.
///
/// - 1: the first (2026-11).
/// - 2: `credential_rotated` says what was rotated in one shape per credential (`replacement`
///   and `admin` only for the secret and the token, `issued` only for the webhook token) where
///   version 1 carried every field for every credential, mostly null.
pub const EVENT_SCHEMA_VERSION: u32 = 2;

/// The guide's three prerequisites, as confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrerequisitesConfirmed {
    pub gitlab_admin_access: bool,
    pub network_access: bool,
    pub factory_admin_account: bool,
}

/// The GitLab OAuth application the customer registered, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplicationRegistered {
    pub name: ShortText,
    pub redirect_uri: HttpUrl,
    pub application_id: ShortText,
    #[serde(default)]
    pub scopes: BTreeSet<Scope>,
}

/// The instance of record: where the customer's GitLab lives and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstanceUrlSet {
    pub gitlab_url: HttpUrl,
    #[serde(default)]
    pub ca_certificate_pem: Option<CaCertificatePem>,
    #[serde(default)]
    pub ssh_port: Option<Port>,
}

impl CredentialBinding {
    /// The binding a credential provided now, for the instance of record, would get.
    pub fn of(instance: &InstanceUrlSet) -> CredentialBinding {
        CredentialBinding::for_instance(&instance.gitlab_url, instance.ca_certificate_pem.as_ref())
    }
}

/// The barriers an evaluation of the customer's network policy found (possibly none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NetworkPolicyEvaluated {
    #[serde(default)]
    pub barriers: Vec<ShortText>,
    #[serde(default)]
    pub notes: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VpcPeeringEstablished {
    pub peering_id: PeeringId,
    pub customer_vpc_id: VpcId,
    pub factory_vpc_id: VpcId,
    pub route_tables_configured: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VpnEstablished {
    pub tunnel_established: bool,
    pub ipsec_compatible: bool,
    #[serde(default)]
    pub notes: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FirewallConfigured {
    pub outbound_https: bool,
    pub outbound_ssh: bool,
    pub webhook_endpoint_reachable: bool,
}

/// The webhook as created in GitLab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookCreated {
    pub url: HttpUrl,
    #[serde(default)]
    pub triggers: BTreeSet<Trigger>,
}

/// A person's check of API connectivity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiCheckRecorded {
    pub ok: bool,
    #[serde(default)]
    pub detail: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ManualTestRecorded {
    pub scenario: Scenario,
    pub passed: bool,
    pub note: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResponseValidated {
    pub scenario: Scenario,
    pub correct: bool,
    #[serde(default)]
    pub evidence: Option<LongText>,
    #[serde(default)]
    pub note: Option<LongText>,
}

/// Which credential a rotation replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    ApplicationSecret,
    AccessToken,
    WebhookToken,
}

impl Credential {
    pub fn as_str(&self) -> &'static str {
        match self {
            Credential::ApplicationSecret => "application_secret",
            Credential::AccessToken => "access_token",
            Credential::WebhookToken => "webhook_token",
        }
    }
}

/// What a rotation put in place of the old credential (schema version 2; see the upcaster
/// `credential_rotated` v1 to v2 in `engine::codec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "credential", rename_all = "snake_case")]
pub enum CredentialRotated {
    ApplicationSecret {
        /// The new secret, when one was given; without one the old secret is void.
        #[serde(default)]
        replacement: Option<SealedSecret>,
        /// The instance the replacement was given for (absent in logs written before
        /// 2026-11-29: replay binds those to the instance in force when they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    AccessToken {
        #[serde(default)]
        replacement: Option<SealedSecret>,
        /// Whether the replacement is an admin token; absent: as the old one was.
        #[serde(default)]
        admin: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    WebhookToken {
        /// The newly issued webhook token's stored form.
        issued: IssuedWebhookCredentials,
    },
}

impl CredentialRotated {
    pub fn credential(&self) -> Credential {
        match self {
            CredentialRotated::ApplicationSecret { .. } => Credential::ApplicationSecret,
            CredentialRotated::AccessToken { .. } => Credential::AccessToken,
            CredentialRotated::WebhookToken { .. } => Credential::WebhookToken,
        }
    }
}

/// Which command caused a regression or an automatic block, and which requirements it voided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Cause {
    pub command: String,
    pub requirements: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Event {
    IntegrationOpened {
        integration_id: IntegrationId,
        customer: ShortText,
        gitlab_url: HttpUrl,
        owner: Option<ShortText>,
        playbook: Playbook,
        ca_certificate_pem: Option<CaCertificatePem>,
        /// Where golive is reached from outside, recorded when the integration opened: its
        /// webhook URL and intake links derive from this, never from the flags of the process
        /// at hand. Absent in logs written before 2026-11-30 (those derive from the server's
        /// configured public URL).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_url: Option<HttpUrl>,
    },
    PrerequisitesConfirmed(PrerequisitesConfirmed),
    ApplicationRegistered(ApplicationRegistered),
    ApplicationSecretProvided {
        secret: SealedSecret,
        /// The instance the secret was given for (absent in logs written before 2026-11-29:
        /// replay binds those to the instance in force when they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    InstanceUrlSet(InstanceUrlSet),
    AccessTokenProvided {
        token: SealedSecret,
        admin: bool,
        /// The instance the token was given for (see `ApplicationSecretProvided`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    InformationSubmitted {},
    NetworkPolicyEvaluated(NetworkPolicyEvaluated),
    VpcPeeringEstablished(VpcPeeringEstablished),
    VpnEstablished(VpnEstablished),
    FirewallConfigured(FirewallConfigured),
    WebhookCredentialsIssued(IssuedWebhookCredentials),
    WebhookCreated(WebhookCreated),
    WebhookDeliveryRecorded(WebhookDelivery),
    ApiCheckRecorded(ApiCheckRecorded),
    ProbeResultRecorded(ProbeResult),
    ManualTestRecorded(ManualTestRecorded),
    ResponseValidated(ResponseValidated),
    FeedbackReported {
        feedback_id: Uuid,
        summary: LongText,
        /// Set when an incorrect validation opened the item.
        scenario: Option<Scenario>,
    },
    FeedbackResolved {
        feedback_id: Uuid,
        resolution: LongText,
    },
    GoLiveScheduled {
        date: Date,
    },
    StageEntered {
        stage: Stage,
    },
    StageRegressed {
        from: Stage,
        to: Stage,
        cause: Cause,
    },
    MonitoringStarted {
        started_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    MonitoringCompleted {
        completed_at: DateTime<Utc>,
    },
    OwnerAssigned {
        owner: ShortText,
    },
    NoteAdded {
        text: LongText,
    },
    IntegrationBlocked {
        category: BlockCategory,
        detail: LongText,
        /// Set when golive raised the block itself (an invalidation once live).
        cause: Option<Cause>,
    },
    IntegrationUnblocked {
        resolution: LongText,
    },
    CredentialRotated(CredentialRotated),
    IntegrationCancelled {
        reason: LongText,
    },
    /// Where golive is reached from outside for this integration changed (explicitly, by a
    /// person): later webhook URLs and intake links derive from `public_url`. `redirect_uri`
    /// is the playbook's new redirect URI when it was derived from the old public URL and so
    /// follows it; absent when the playbook's own stays.
    PublicUrlChanged {
        public_url: HttpUrl,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redirect_uri: Option<HttpUrl>,
    },
    /// A sealed secret was revealed in plaintext to the actor (audited, explicit).
    SecretRevealed {
        kind: SecretKind,
        fingerprint: String,
    },
    /// The integration's data key was destroyed: its sealed secrets can never be opened again.
    SecretsShredded {},
    /// A representative issued a one-time intake link; only the digest of its secret is kept.
    IntakeLinkIssued {
        link_id: Uuid,
        token_digest: TokenDigest,
        expires_at: DateTime<Utc>,
    },
    /// The customer used an intake link; recorded with what they submitted, in one append.
    IntakeRedeemed {
        link_id: Uuid,
    },
    /// golive began a run of checks through GitLab's API (announcing the writes it will make).
    GitlabCheckStarted(GitlabCheckStarted),
    /// What GitLab's applications API showed of the application with the recorded id.
    ApplicationChecked(ApplicationChecked),
    /// Where the hook with the issued URL lives in GitLab, its triggers and SSL verification.
    WebhookChecked(WebhookChecked),
    /// golive asked GitLab to send a test delivery for one trigger, and what GitLab answered.
    TestDeliveryRequested(TestDeliveryRequested),
    /// What GitLab answered to that request.
    TestDeliveryAnswered(TestDeliveryAnswered),
    /// A step of a scenario run performed in (or watched in) the customer's GitLab.
    ScenarioStepPerformed(ScenarioStepPerformed),
    /// A run of checks ended.
    GitlabCheckFinished(GitlabCheckFinished),
}

/// Every event type's name (the envelope's `type`), in declaration order, as the event's JSON
/// Schema lists them: one list for the CLI's `--type` check and the dashboard's filters.
/// Computed once.
pub fn event_type_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let schema = schemars::schema_for!(Event);
        let variants = schema.as_value().get("oneOf").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        variants
            .iter()
            .filter_map(|variant| variant.pointer("/properties/type/const").and_then(|t| t.as_str()).map(str::to_owned))
            .collect()
    })
}

impl Event {
    /// The snake_case type name, as in the envelope's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::IntegrationOpened { .. } => "integration_opened",
            Event::PrerequisitesConfirmed(_) => "prerequisites_confirmed",
            Event::ApplicationRegistered(_) => "application_registered",
            Event::ApplicationSecretProvided { .. } => "application_secret_provided",
            Event::InstanceUrlSet(_) => "instance_url_set",
            Event::AccessTokenProvided { .. } => "access_token_provided",
            Event::InformationSubmitted {} => "information_submitted",
            Event::NetworkPolicyEvaluated(_) => "network_policy_evaluated",
            Event::VpcPeeringEstablished(_) => "vpc_peering_established",
            Event::VpnEstablished(_) => "vpn_established",
            Event::FirewallConfigured(_) => "firewall_configured",
            Event::WebhookCredentialsIssued(_) => "webhook_credentials_issued",
            Event::WebhookCreated(_) => "webhook_created",
            Event::WebhookDeliveryRecorded(_) => "webhook_delivery_recorded",
            Event::ApiCheckRecorded(_) => "api_check_recorded",
            Event::ProbeResultRecorded(_) => "probe_result_recorded",
            Event::ManualTestRecorded(_) => "manual_test_recorded",
            Event::ResponseValidated(_) => "response_validated",
            Event::FeedbackReported { .. } => "feedback_reported",
            Event::FeedbackResolved { .. } => "feedback_resolved",
            Event::GoLiveScheduled { .. } => "go_live_scheduled",
            Event::StageEntered { .. } => "stage_entered",
            Event::StageRegressed { .. } => "stage_regressed",
            Event::MonitoringStarted { .. } => "monitoring_started",
            Event::MonitoringCompleted { .. } => "monitoring_completed",
            Event::OwnerAssigned { .. } => "owner_assigned",
            Event::NoteAdded { .. } => "note_added",
            Event::IntegrationBlocked { .. } => "integration_blocked",
            Event::IntegrationUnblocked { .. } => "integration_unblocked",
            Event::CredentialRotated(_) => "credential_rotated",
            Event::IntegrationCancelled { .. } => "integration_cancelled",
            Event::PublicUrlChanged { .. } => "public_url_changed",
            Event::SecretRevealed { .. } => "secret_revealed",
            Event::SecretsShredded {} => "secrets_shredded",
            Event::IntakeLinkIssued { .. } => "intake_link_issued",
            Event::IntakeRedeemed { .. } => "intake_redeemed",
            Event::GitlabCheckStarted(_) => "gitlab_check_started",
            Event::ApplicationChecked(_) => "application_checked",
            Event::WebhookChecked(_) => "webhook_checked",
            Event::TestDeliveryRequested(_) => "test_delivery_requested",
            Event::TestDeliveryAnswered(_) => "test_delivery_answered",
            Event::ScenarioStepPerformed(_) => "scenario_step_performed",
            Event::GitlabCheckFinished(_) => "gitlab_check_finished",
        }
    }
}
