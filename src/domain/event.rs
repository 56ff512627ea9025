//! Domain events: past-tense facts, the only thing ever stored.
//!
//! On the wire an event is `{"type": "<snake_case>", "data": {...}}`, which the store wraps in the
//! envelope of the design brief. Secrets appear only as `SealedSecret`; `PlaintextSecret` has no
//! `Serialize` impl, so an event holding one would not compile.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::binding::CredentialBinding;
use super::command::{
    ApiCheck, ApplicationRegistration, Credential, Firewall, InstanceSettings, ManualTest, NetworkPolicy,
    Prerequisites, ResponseValidation, VpcPeering, Vpn, WebhookSettings,
};
use super::playbook::{Playbook, Scenario};
use super::secret::{IssuedWebhookCredentials, SealedSecret, SecretKind, TokenDigest};
use super::signals::{BlockCategory, ProbeResult, WebhookDelivery};
use super::stage::Stage;
use super::values::{CaCertificatePem, Date, HttpUrl, IntegrationId, LongText, ShortText};

/// The schema version of the event payloads this build writes.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

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
    },
    PrerequisitesConfirmed(Prerequisites),
    ApplicationRegistered(ApplicationRegistration),
    ApplicationSecretProvided {
        secret: SealedSecret,
        /// The instance the secret was given for (absent in logs written before 2026-11-29:
        /// replay binds those to the instance in force when they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    InstanceUrlSet(InstanceSettings),
    AccessTokenProvided {
        token: SealedSecret,
        admin: bool,
        /// The instance the token was given for (see `ApplicationSecretProvided`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    InformationSubmitted {},
    NetworkPolicyEvaluated(NetworkPolicy),
    VpcPeeringEstablished(VpcPeering),
    VpnEstablished(Vpn),
    FirewallConfigured(Firewall),
    WebhookCredentialsIssued(IssuedWebhookCredentials),
    WebhookCreated(WebhookSettings),
    WebhookDeliveryRecorded(WebhookDelivery),
    ApiCheckRecorded(ApiCheck),
    ProbeResultRecorded(ProbeResult),
    ManualTestRecorded(ManualTest),
    ResponseValidated(ResponseValidation),
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
    CredentialRotated {
        credential: Credential,
        /// The new application secret or access token, when one was given.
        replacement: Option<SealedSecret>,
        admin: Option<bool>,
        /// The newly issued webhook token's stored form, for `webhook_token`.
        webhook: Option<IssuedWebhookCredentials>,
        /// The instance a replacement secret or token was given for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_to: Option<CredentialBinding>,
    },
    IntegrationCancelled {
        reason: LongText,
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
            Event::CredentialRotated { .. } => "credential_rotated",
            Event::IntegrationCancelled { .. } => "integration_cancelled",
            Event::SecretRevealed { .. } => "secret_revealed",
            Event::SecretsShredded {} => "secrets_shredded",
            Event::IntakeLinkIssued { .. } => "intake_link_issued",
            Event::IntakeRedeemed { .. } => "intake_redeemed",
        }
    }
}
