//! The domain core: the onboarding guide as a pure, event-sourced state machine.
//!
//! Nothing here performs IO, reads a clock or draws randomness: time, the actor and id
//! generation arrive through [`Context`], and cryptography through [`Sealer`]. This module
//! imports no storage, runtime or HTTP crate.
//!
//! The flow: [`parse_request`] turns JSON into a [`CommandRequest`]; [`CommandRequest::prepare`]
//! seals its secrets into a [`Command`]; [`Integration::decide`] turns it into [`Event`]s or a
//! [`Rejection`]; [`Integration::apply`] folds events into state.

mod actions;
mod binding;
mod checks;
mod command;
mod decide;
mod diagnose;
mod event;
mod intake;
mod open;
mod playbook;
mod rejection;
mod requirements;
mod secret;
mod signals;
mod stage;
mod state;
mod values;

pub use actions::{NextAction, Step};
pub use binding::{ca_fingerprint, origin_of, CredentialBinding};
pub use checks::{
    trigger_of, ApplicationChecked, ApplicationFinding, BranchFilterStrategy, CheckFailure, CheckKind, CheckRecord,
    CheckRun, DeliveryFailureCause, Evidence, EvidenceOrigin, GitlabCheckFinished, GitlabCheckStarted, HookAlert,
    HookLocation, PushFilter, ScenarioStep, ScenarioStepPerformed, StepOutcome, TestDeliveryAnswered,
    TestDeliveryProgress, TestDeliveryRequested, TestRequestOutcome, WebhookChecked, WebhookFinding, CHECK_RUNS_KEPT,
    CHECK_RUN_ABANDONED_AFTER_MINUTES,
};
pub use command::{
    parse_fields, parse_request, ApiCheck, ApplicationRegistration, Command, CommandRequest, Credential, Firewall,
    InstanceSettings, IntakeSubmission, ManualTest, NetworkPolicy, OpenIntegration, Origin, Prerequisites,
    ResponseValidation, Rotation, VpcPeering, Vpn, WebhookSettings, INTERNAL_COMMAND_TYPES, LIST_MAX_ENTRIES,
    PUBLIC_COMMAND_TYPES,
};
pub use decide::{open, Context, IdSource};
pub use diagnose::{
    advice, describe_duration, describe_remaining, BlockSummary, DeliverySignals, Diagnosis, Finding,
    LIVE_DELIVERY_SILENCE_DAYS, STALLED_AFTER_DAYS,
};
pub use event::event_type_names;
pub use event::{
    ApiCheckRecorded, ApplicationRegistered, Cause, CredentialRotated, Event, FirewallConfigured, InstanceUrlSet,
    ManualTestRecorded, NetworkPolicyEvaluated, PrerequisitesConfirmed, ResponseValidated, VpcPeeringEstablished,
    VpnEstablished, WebhookCreated, EVENT_SCHEMA_VERSION,
};
pub use intake::{INTAKE_LINKS_OPEN_MAX, INTAKE_LINK_MAX_HOURS};
pub use open::{parse_open_request, parse_open_request_with_reference, playbook_fields_in, PLAYBOOK_FIELDS};
pub use playbook::{
    ApiEvidenceItem, Playbook, PlaybookId, PlaybookRef, Scenario, Trigger, MONITORING_DAYS_MAX, PLAYBOOK_ID_MAX_CHARS,
};
pub use rejection::{IntakeRefusal, Rejection, Unmet};
pub use requirements::{ChecklistItem, Requirement, UnmetReason};
pub use secret::{
    IssuedWebhookCredentials, PlaintextSecret, SealedSecret, Sealer, SecretKind, TokenDigest, SECRET_MAX_BYTES,
};
pub use signals::{BlockCategory, FindingCategory, GitlabEvent, ProbeResult, WebhookDelivery};
pub use stage::Stage;
pub use state::{
    AccessToken, ApiEvidence, ApplicationSecret, Block, Cancellation, Connectivity, DeliveryStats, EvidenceSource,
    Facts, FeedbackItem, IntakeLink, IntakeLinkStatus, Integration, Monitoring, RecordedProbe, TokenFinding,
};
pub use values::{
    Actor, CaCertificatePem, Date, HttpUrl, IntegrationId, LongText, PeeringId, Port, Scope, ShortText, ValueError,
    VpcId, LONG_TEXT_MAX_CHARS, SHORT_TEXT_MAX_CHARS,
};
