//! Commands: the v1 vocabulary parsed from JSON into validated types, then prepared for `decide`.
//!
//! Two steps keep the domain pure. `parse_request` turns `{"type": ..., ...fields}` into a
//! `CommandRequest`, refusing any invalid field with a message naming it. `prepare` then hands the
//! request's plaintext secrets to an injected `Sealer`, producing a `Command` that holds only
//! sealed values. `decide` sees nothing but `Command`s.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::binding::CredentialBinding;
pub use super::event::Credential;
use super::playbook::{Playbook, Scenario, Trigger};
use super::rejection::Rejection;
use super::secret::{IssuedWebhookCredentials, PlaintextSecret, SealedSecret, Sealer, SecretKind, TokenDigest};
use super::signals::{BlockCategory, ProbeResult, WebhookDelivery};
use super::values::{CaCertificatePem, Date, HttpUrl, LongText, PeeringId, Port, Scope, ShortText, VpcId};

/// The three prerequisites of the guide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prerequisites {
    pub gitlab_admin_access: bool,
    pub network_access: bool,
    pub factory_admin_account: bool,
}

/// The GitLab OAuth application the customer registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRegistration {
    pub name: ShortText,
    pub redirect_uri: HttpUrl,
    pub application_id: ShortText,
    pub scopes: BTreeSet<Scope>,
}

/// Where the customer's GitLab lives and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceSettings {
    pub gitlab_url: HttpUrl,
    #[serde(default)]
    pub ca_certificate_pem: Option<CaCertificatePem>,
    #[serde(default)]
    pub ssh_port: Option<Port>,
}

/// Barriers found when evaluating the customer's network policy (possibly none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    pub barriers: Vec<ShortText>,
    #[serde(default)]
    pub notes: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VpcPeering {
    pub peering_id: PeeringId,
    pub customer_vpc_id: VpcId,
    pub factory_vpc_id: VpcId,
    pub route_tables_configured: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vpn {
    pub tunnel_established: bool,
    pub ipsec_compatible: bool,
    #[serde(default)]
    pub notes: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    pub outbound_https: bool,
    pub outbound_ssh: bool,
    pub webhook_endpoint_reachable: bool,
}

/// The webhook as created in GitLab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: HttpUrl,
    pub triggers: BTreeSet<Trigger>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiCheck {
    pub ok: bool,
    #[serde(default)]
    pub detail: Option<LongText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualTest {
    pub scenario: Scenario,
    pub passed: bool,
    pub note: LongText,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseValidation {
    pub scenario: Scenario,
    pub correct: bool,
    #[serde(default)]
    pub evidence: Option<LongText>,
    #[serde(default)]
    pub note: Option<LongText>,
}

/// What each recorded fact becomes in the log: the command's fields, in the event's own type.
/// Commands depend on events, never the other way round.
mod into_events {
    use super::super::event as e;
    use super::{
        ApiCheck, ApplicationRegistration, Firewall, InstanceSettings, ManualTest, NetworkPolicy, Prerequisites,
        ResponseValidation, VpcPeering, Vpn, WebhookSettings,
    };

    impl From<Prerequisites> for e::PrerequisitesConfirmed {
        fn from(p: Prerequisites) -> Self {
            let Prerequisites { gitlab_admin_access, network_access, factory_admin_account } = p;
            Self { gitlab_admin_access, network_access, factory_admin_account }
        }
    }

    impl From<ApplicationRegistration> for e::ApplicationRegistered {
        fn from(a: ApplicationRegistration) -> Self {
            let ApplicationRegistration { name, redirect_uri, application_id, scopes } = a;
            Self { name, redirect_uri, application_id, scopes }
        }
    }

    impl From<InstanceSettings> for e::InstanceUrlSet {
        fn from(i: InstanceSettings) -> Self {
            let InstanceSettings { gitlab_url, ca_certificate_pem, ssh_port } = i;
            Self { gitlab_url, ca_certificate_pem, ssh_port }
        }
    }

    impl From<NetworkPolicy> for e::NetworkPolicyEvaluated {
        fn from(p: NetworkPolicy) -> Self {
            let NetworkPolicy { barriers, notes } = p;
            Self { barriers, notes }
        }
    }

    impl From<VpcPeering> for e::VpcPeeringEstablished {
        fn from(p: VpcPeering) -> Self {
            let VpcPeering { peering_id, customer_vpc_id, factory_vpc_id, route_tables_configured } = p;
            Self { peering_id, customer_vpc_id, factory_vpc_id, route_tables_configured }
        }
    }

    impl From<Vpn> for e::VpnEstablished {
        fn from(v: Vpn) -> Self {
            let Vpn { tunnel_established, ipsec_compatible, notes } = v;
            Self { tunnel_established, ipsec_compatible, notes }
        }
    }

    impl From<Firewall> for e::FirewallConfigured {
        fn from(f: Firewall) -> Self {
            let Firewall { outbound_https, outbound_ssh, webhook_endpoint_reachable } = f;
            Self { outbound_https, outbound_ssh, webhook_endpoint_reachable }
        }
    }

    impl From<WebhookSettings> for e::WebhookCreated {
        fn from(w: WebhookSettings) -> Self {
            let WebhookSettings { url, triggers } = w;
            Self { url, triggers }
        }
    }

    impl From<ApiCheck> for e::ApiCheckRecorded {
        fn from(c: ApiCheck) -> Self {
            let ApiCheck { ok, detail } = c;
            Self { ok, detail }
        }
    }

    impl From<ManualTest> for e::ManualTestRecorded {
        fn from(t: ManualTest) -> Self {
            let ManualTest { scenario, passed, note } = t;
            Self { scenario, passed, note }
        }
    }

    impl From<ResponseValidation> for e::ResponseValidated {
        fn from(v: ResponseValidation) -> Self {
            let ResponseValidation { scenario, correct, evidence, note } = v;
            Self { scenario, correct, evidence, note }
        }
    }
}

/// What the customer submitted, secrets already sealed by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeSubmission {
    pub presented: TokenDigest,
    pub application: ApplicationRegistration,
    pub application_secret: SealedSecret,
    pub access_token: SealedSecret,
    pub admin: bool,
    /// The instance the intake page showed the customer, when the page sent it back.
    pub shown_instance: Option<CredentialBinding>,
}

impl ApplicationRegistration {
    /// A registration from values that arrive apart (the customer's intake form), by the rules of
    /// `register_application`: the same limits, and the same field names in a refusal
    /// (`application_id`, `scopes`, `scopes[i]`).
    pub fn from_parts(
        name: ShortText,
        redirect_uri: HttpUrl,
        application_id: &str,
        scopes: &[String],
    ) -> Result<Self, Rejection> {
        let application_id = ShortText::parse(application_id).map_err(|e| Rejection::invalid("application_id", e.0))?;
        check_list_len("scopes", scopes.len())?;
        let scopes = scopes
            .iter()
            .enumerate()
            .map(|(i, scope)| Scope::parse(scope.as_str()).map_err(|e| Rejection::invalid(format!("scopes[{i}]"), e.0)))
            .collect::<Result<BTreeSet<Scope>, Rejection>>()?;
        Ok(Self { name, redirect_uri, application_id, scopes })
    }
}

/// The request to open a new integration (`POST /api/v1/integrations`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenIntegration {
    pub customer: ShortText,
    pub gitlab_url: HttpUrl,
    #[serde(default)]
    pub owner: Option<ShortText>,
    #[serde(default)]
    pub playbook: Option<Playbook>,
    #[serde(default)]
    pub ca_certificate_pem: Option<CaCertificatePem>,
}

/// A command as parsed from the wire: valid fields, secrets still in plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRequest {
    ConfirmPrerequisites(Prerequisites),
    RegisterApplication(ApplicationRegistration),
    ProvideApplicationSecret { secret: PlaintextSecret },
    SetInstanceUrl(InstanceSettings),
    ProvideAccessToken { token: PlaintextSecret, admin: bool },
    SubmitInformation,
    EvaluateNetworkPolicy(NetworkPolicy),
    EstablishVpcPeering(VpcPeering),
    EstablishVpn(Vpn),
    ConfigureFirewall(Firewall),
    IssueWebhookCredentials { signing: bool },
    CreateWebhook(WebhookSettings),
    RecordApiCheck(ApiCheck),
    RecordManualTest(ManualTest),
    ValidateResponse(ResponseValidation),
    ReportFeedback { summary: LongText },
    ResolveFeedback { feedback_id: Uuid, resolution: LongText },
    ScheduleGoLive { date: Date },
    GoLive,
    CompleteMonitoring,
    AssignOwner { owner: ShortText },
    AddNote { text: LongText },
    Block { category: BlockCategory, detail: LongText },
    Unblock { resolution: LongText },
    RotateCredential { credential: Credential, secret: Option<PlaintextSecret>, admin: Option<bool> },
    Cancel { reason: LongText },
    ChangePublicUrl { public_url: HttpUrl },
    RecordWebhookDelivery(WebhookDelivery),
    RecordProbeResult(ProbeResult),
}

/// A rotation after sealing: what replaces the old credential, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    ApplicationSecret { replacement: Option<SealedSecret> },
    AccessToken { replacement: Option<SealedSecret>, admin: Option<bool> },
    WebhookToken { issued: IssuedWebhookCredentials },
}

/// A command ready for `decide`: every secret sealed, every generated credential issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ConfirmPrerequisites(Prerequisites),
    RegisterApplication(ApplicationRegistration),
    ProvideApplicationSecret {
        secret: SealedSecret,
    },
    SetInstanceUrl(InstanceSettings),
    ProvideAccessToken {
        token: SealedSecret,
        admin: bool,
    },
    SubmitInformation,
    EvaluateNetworkPolicy(NetworkPolicy),
    EstablishVpcPeering(VpcPeering),
    EstablishVpn(Vpn),
    ConfigureFirewall(Firewall),
    IssueWebhookCredentials(IssuedWebhookCredentials),
    CreateWebhook(WebhookSettings),
    RecordApiCheck(ApiCheck),
    RecordManualTest(ManualTest),
    ValidateResponse(ResponseValidation),
    ReportFeedback {
        summary: LongText,
    },
    ResolveFeedback {
        feedback_id: Uuid,
        resolution: LongText,
    },
    ScheduleGoLive {
        date: Date,
    },
    GoLive,
    CompleteMonitoring,
    AssignOwner {
        owner: ShortText,
    },
    AddNote {
        text: LongText,
    },
    Block {
        category: BlockCategory,
        detail: LongText,
    },
    Unblock {
        resolution: LongText,
    },
    RotateCredential(Rotation),
    Cancel {
        reason: LongText,
    },
    /// Where golive is reached from outside for this integration changes: later webhook URLs
    /// and intake links derive from the new one, and a redirect URI derived from the old one
    /// follows it.
    ChangePublicUrl {
        public_url: HttpUrl,
    },
    RecordWebhookDelivery(WebhookDelivery),
    RecordProbeResult(ProbeResult),
    /// Engine-made: an explicit reveal of a sealed secret, recorded before the plaintext leaves.
    RecordSecretReveal {
        kind: SecretKind,
        fingerprint: String,
    },
    /// Engine-made: the data key was destroyed.
    RecordSecretsShredded,
    /// Engine-made: a representative asked for a customer intake link.
    IssueIntakeLink {
        link_id: Uuid,
        token_digest: super::secret::TokenDigest,
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// Engine-made: the customer submitted the intake form through a link.
    RedeemIntake(Box<IntakeSubmission>),
    /// Engine-made: a run of checks through GitLab's API recorded its progress or a finding.
    RecordCheck(super::checks::CheckRecord),
}

/// Where a command comes from: the public endpoint may not send internal inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `POST /api/v1/integrations/{id}/commands`, the CLI's command verbs.
    Public,
    /// The webhook receiver, the probe, fixtures and the CLI's delivery replay.
    Internal,
}

/// The command names of vocabulary v1, public ones first.
pub const PUBLIC_COMMAND_TYPES: [&str; 27] = [
    "confirm_prerequisites",
    "register_application",
    "provide_application_secret",
    "set_instance_url",
    "provide_access_token",
    "submit_information",
    "evaluate_network_policy",
    "establish_vpc_peering",
    "establish_vpn",
    "configure_firewall",
    "issue_webhook_credentials",
    "create_webhook",
    "record_api_check",
    "record_manual_test",
    "validate_response",
    "report_feedback",
    "resolve_feedback",
    "schedule_go_live",
    "go_live",
    "complete_monitoring",
    "assign_owner",
    "add_note",
    "block",
    "unblock",
    "rotate_credential",
    "cancel",
    "change_public_url",
];

/// Inputs only golive itself produces.
pub const INTERNAL_COMMAND_TYPES: [&str; 2] = ["record_webhook_delivery", "record_probe_result"];

/// Deserializes `value` into `T`, naming the failing field (by path) in the rejection.
pub fn parse_fields<T: DeserializeOwned>(value: Value) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let (field, message) = split_serde_message(&path, &inner);
        Rejection::InvalidField { field, message }
    })
}

/// serde reports a missing or unknown field at the parent path, with the name in the message;
/// lift that name into the field so the caller always learns which field was wrong.
fn split_serde_message(path: &str, message: &str) -> (String, String) {
    let join = |name: &str| {
        if path == name || path.ends_with(&format!(".{name}")) {
            path.to_owned()
        } else if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    for marker in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(marker) {
            if let Some(end) = rest.find('`') {
                let name = &rest[..end];
                let what = if marker.starts_with("missing") {
                    "is required".to_owned()
                } else {
                    "is not a field of this command".to_owned()
                };
                return (join(name), what);
            }
        }
    }
    let field = if path == "." || path.is_empty() { "body".to_owned() } else { path.to_owned() };
    (field, message.to_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFields {
    secret: PlaintextSecret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFields {
    token: PlaintextSecret,
    admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningFields {
    #[serde(default)]
    signing: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFields {
    url: HttpUrl,
    triggers: Vec<Trigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryFields {
    summary: LongText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveFeedbackFields {
    feedback_id: Uuid,
    resolution: LongText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateFields {
    date: Date,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnerFields {
    owner: ShortText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextFields {
    text: LongText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockFields {
    category: BlockCategory,
    detail: LongText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolutionFields {
    resolution: LongText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateFields {
    credential: Credential,
    #[serde(default)]
    secret: Option<PlaintextSecret>,
    #[serde(default)]
    admin: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonFields {
    reason: LongText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicUrlFields {
    public_url: HttpUrl,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFields {
    name: ShortText,
    redirect_uri: HttpUrl,
    application_id: ShortText,
    scopes: Vec<Scope>,
}

/// The most list entries (scopes, triggers, barriers) one command may carry.
pub const LIST_MAX_ENTRIES: usize = 64;

fn check_list_len(field: &str, len: usize) -> Result<(), Rejection> {
    if len > LIST_MAX_ENTRIES {
        return Err(Rejection::invalid(field, format!("must have at most {LIST_MAX_ENTRIES} entries (got {len})")));
    }
    Ok(())
}

/// Parses a v1 command body `{"type": "<name>", ...fields}`.
pub fn parse_request(body: Value, origin: Origin) -> Result<CommandRequest, Rejection> {
    let Value::Object(mut fields) = body else {
        return Err(Rejection::Malformed("a command must be a JSON object with a \"type\" field".into()));
    };
    let command_type = match fields.remove("type") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(Rejection::invalid("type", "must be a string")),
        None => return Err(Rejection::invalid("type", "is required")),
    };
    if origin == Origin::Public && INTERNAL_COMMAND_TYPES.contains(&command_type.as_str()) {
        return Err(Rejection::UnknownType(format!(
            "{command_type} is an internal input recorded by golive itself, not a command"
        )));
    }
    let rest = Value::Object(fields);
    let request = match command_type.as_str() {
        "confirm_prerequisites" => CommandRequest::ConfirmPrerequisites(parse_fields(rest)?),
        "register_application" => {
            let f: RegisterFields = parse_fields(rest)?;
            check_list_len("scopes", f.scopes.len())?;
            CommandRequest::RegisterApplication(ApplicationRegistration {
                name: f.name,
                redirect_uri: f.redirect_uri,
                application_id: f.application_id,
                scopes: f.scopes.into_iter().collect(),
            })
        }
        "provide_application_secret" => {
            let f: SecretFields = parse_fields(rest)?;
            CommandRequest::ProvideApplicationSecret { secret: f.secret }
        }
        "set_instance_url" => CommandRequest::SetInstanceUrl(parse_fields(rest)?),
        "provide_access_token" => {
            let f: TokenFields = parse_fields(rest)?;
            CommandRequest::ProvideAccessToken { token: f.token, admin: f.admin }
        }
        "submit_information" => {
            let _: Empty = parse_fields(rest)?;
            CommandRequest::SubmitInformation
        }
        "evaluate_network_policy" => {
            let policy: NetworkPolicy = parse_fields(rest)?;
            check_list_len("barriers", policy.barriers.len())?;
            CommandRequest::EvaluateNetworkPolicy(policy)
        }
        "establish_vpc_peering" => CommandRequest::EstablishVpcPeering(parse_fields(rest)?),
        "establish_vpn" => CommandRequest::EstablishVpn(parse_fields(rest)?),
        "configure_firewall" => CommandRequest::ConfigureFirewall(parse_fields(rest)?),
        "issue_webhook_credentials" => {
            let f: SigningFields = parse_fields(rest)?;
            CommandRequest::IssueWebhookCredentials { signing: f.signing.unwrap_or(false) }
        }
        "create_webhook" => {
            let f: WebhookFields = parse_fields(rest)?;
            check_list_len("triggers", f.triggers.len())?;
            CommandRequest::CreateWebhook(WebhookSettings { url: f.url, triggers: f.triggers.into_iter().collect() })
        }
        "record_api_check" => CommandRequest::RecordApiCheck(parse_fields(rest)?),
        "record_manual_test" => CommandRequest::RecordManualTest(parse_fields(rest)?),
        "validate_response" => CommandRequest::ValidateResponse(parse_fields(rest)?),
        "report_feedback" => {
            let f: SummaryFields = parse_fields(rest)?;
            CommandRequest::ReportFeedback { summary: f.summary }
        }
        "resolve_feedback" => {
            let f: ResolveFeedbackFields = parse_fields(rest)?;
            CommandRequest::ResolveFeedback { feedback_id: f.feedback_id, resolution: f.resolution }
        }
        "schedule_go_live" => {
            let f: DateFields = parse_fields(rest)?;
            CommandRequest::ScheduleGoLive { date: f.date }
        }
        "go_live" => {
            let _: Empty = parse_fields(rest)?;
            CommandRequest::GoLive
        }
        "complete_monitoring" => {
            let _: Empty = parse_fields(rest)?;
            CommandRequest::CompleteMonitoring
        }
        "assign_owner" => {
            let f: OwnerFields = parse_fields(rest)?;
            CommandRequest::AssignOwner { owner: f.owner }
        }
        "add_note" => {
            let f: TextFields = parse_fields(rest)?;
            CommandRequest::AddNote { text: f.text }
        }
        "block" => {
            let f: BlockFields = parse_fields(rest)?;
            CommandRequest::Block { category: f.category, detail: f.detail }
        }
        "unblock" => {
            let f: ResolutionFields = parse_fields(rest)?;
            CommandRequest::Unblock { resolution: f.resolution }
        }
        "rotate_credential" => {
            let f: RotateFields = parse_fields(rest)?;
            CommandRequest::RotateCredential { credential: f.credential, secret: f.secret, admin: f.admin }
        }
        "cancel" => {
            let f: ReasonFields = parse_fields(rest)?;
            CommandRequest::Cancel { reason: f.reason }
        }
        "change_public_url" => {
            let f: PublicUrlFields = parse_fields(rest)?;
            CommandRequest::ChangePublicUrl { public_url: f.public_url }
        }
        "record_webhook_delivery" => CommandRequest::RecordWebhookDelivery(parse_fields(rest)?),
        "record_probe_result" => CommandRequest::RecordProbeResult(parse_fields(rest)?),
        other => {
            return Err(Rejection::UnknownType(format!(
                "unknown command type {other:?}; known types: {}",
                PUBLIC_COMMAND_TYPES.join(", ")
            )))
        }
    };
    request.check()?;
    Ok(request)
}

impl CommandRequest {
    /// The rules that span fields or bound a list, which the field types alone do not carry.
    /// Every request meets them, parsed from JSON or built by an embedder
    /// (`Engine::execute_typed` checks them too).
    pub fn check(&self) -> Result<(), Rejection> {
        match self {
            CommandRequest::RegisterApplication(a) => check_list_len("scopes", a.scopes.len()),
            CommandRequest::EvaluateNetworkPolicy(p) => check_list_len("barriers", p.barriers.len()),
            CommandRequest::CreateWebhook(w) => check_list_len("triggers", w.triggers.len()),
            CommandRequest::ValidateResponse(v) if v.evidence.is_none() && v.note.is_none() => {
                Err(Rejection::invalid("evidence", "evidence or note is required: say what the Droid did"))
            }
            CommandRequest::RotateCredential { credential, secret, admin } => {
                if *credential == Credential::WebhookToken && secret.is_some() {
                    return Err(Rejection::invalid(
                        "secret",
                        "golive generates webhook tokens; rotate webhook_token without a secret",
                    ));
                }
                if *credential != Credential::AccessToken && admin.is_some() {
                    return Err(Rejection::invalid("admin", "only an access_token rotation takes admin"));
                }
                Ok(())
            }
            CommandRequest::RecordWebhookDelivery(delivery) => {
                delivery.check().map_err(|(field, error)| Rejection::invalid(field, error.0))
            }
            _ => Ok(()),
        }
    }

    /// Whether preparing this request seals or issues a secret (and so needs a data key).
    pub fn needs_sealer(&self) -> bool {
        matches!(
            self,
            CommandRequest::ProvideApplicationSecret { .. }
                | CommandRequest::ProvideAccessToken { .. }
                | CommandRequest::IssueWebhookCredentials { .. }
                | CommandRequest::RotateCredential { .. }
        )
    }

    /// Seals secrets and issues generated credentials through the injected sealer.
    pub fn prepare(self, sealer: &mut dyn Sealer) -> Command {
        match self {
            CommandRequest::ConfirmPrerequisites(p) => Command::ConfirmPrerequisites(p),
            CommandRequest::RegisterApplication(a) => Command::RegisterApplication(a),
            CommandRequest::ProvideApplicationSecret { secret } => {
                Command::ProvideApplicationSecret { secret: sealer.seal(SecretKind::ApplicationSecret, &secret) }
            }
            CommandRequest::SetInstanceUrl(s) => Command::SetInstanceUrl(s),
            CommandRequest::ProvideAccessToken { token, admin } => {
                Command::ProvideAccessToken { token: sealer.seal(SecretKind::AccessToken, &token), admin }
            }
            CommandRequest::SubmitInformation => Command::SubmitInformation,
            CommandRequest::EvaluateNetworkPolicy(p) => Command::EvaluateNetworkPolicy(p),
            CommandRequest::EstablishVpcPeering(p) => Command::EstablishVpcPeering(p),
            CommandRequest::EstablishVpn(v) => Command::EstablishVpn(v),
            CommandRequest::ConfigureFirewall(f) => Command::ConfigureFirewall(f),
            CommandRequest::IssueWebhookCredentials { signing } => {
                Command::IssueWebhookCredentials(sealer.issue_webhook_credentials(signing))
            }
            CommandRequest::CreateWebhook(w) => Command::CreateWebhook(w),
            CommandRequest::RecordApiCheck(c) => Command::RecordApiCheck(c),
            CommandRequest::RecordManualTest(t) => Command::RecordManualTest(t),
            CommandRequest::ValidateResponse(v) => Command::ValidateResponse(v),
            CommandRequest::ReportFeedback { summary } => Command::ReportFeedback { summary },
            CommandRequest::ResolveFeedback { feedback_id, resolution } => {
                Command::ResolveFeedback { feedback_id, resolution }
            }
            CommandRequest::ScheduleGoLive { date } => Command::ScheduleGoLive { date },
            CommandRequest::GoLive => Command::GoLive,
            CommandRequest::CompleteMonitoring => Command::CompleteMonitoring,
            CommandRequest::AssignOwner { owner } => Command::AssignOwner { owner },
            CommandRequest::AddNote { text } => Command::AddNote { text },
            CommandRequest::Block { category, detail } => Command::Block { category, detail },
            CommandRequest::Unblock { resolution } => Command::Unblock { resolution },
            CommandRequest::RotateCredential { credential, secret, admin } => {
                let rotation = match credential {
                    Credential::ApplicationSecret => Rotation::ApplicationSecret {
                        replacement: secret.map(|s| sealer.seal(SecretKind::ApplicationSecret, &s)),
                    },
                    Credential::AccessToken => Rotation::AccessToken {
                        replacement: secret.map(|s| sealer.seal(SecretKind::AccessToken, &s)),
                        admin,
                    },
                    Credential::WebhookToken => {
                        Rotation::WebhookToken { issued: sealer.issue_webhook_credentials(false) }
                    }
                };
                Command::RotateCredential(rotation)
            }
            CommandRequest::Cancel { reason } => Command::Cancel { reason },
            CommandRequest::ChangePublicUrl { public_url } => Command::ChangePublicUrl { public_url },
            CommandRequest::RecordWebhookDelivery(d) => Command::RecordWebhookDelivery(d),
            CommandRequest::RecordProbeResult(p) => Command::RecordProbeResult(p),
        }
    }
}

impl Command {
    /// The wire name of the command, used in `stage_regressed.cause.command` and in messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::ConfirmPrerequisites(_) => "confirm_prerequisites",
            Command::RegisterApplication(_) => "register_application",
            Command::ProvideApplicationSecret { .. } => "provide_application_secret",
            Command::SetInstanceUrl(_) => "set_instance_url",
            Command::ProvideAccessToken { .. } => "provide_access_token",
            Command::SubmitInformation => "submit_information",
            Command::EvaluateNetworkPolicy(_) => "evaluate_network_policy",
            Command::EstablishVpcPeering(_) => "establish_vpc_peering",
            Command::EstablishVpn(_) => "establish_vpn",
            Command::ConfigureFirewall(_) => "configure_firewall",
            Command::IssueWebhookCredentials(_) => "issue_webhook_credentials",
            Command::CreateWebhook(_) => "create_webhook",
            Command::RecordApiCheck(_) => "record_api_check",
            Command::RecordManualTest(_) => "record_manual_test",
            Command::ValidateResponse(_) => "validate_response",
            Command::ReportFeedback { .. } => "report_feedback",
            Command::ResolveFeedback { .. } => "resolve_feedback",
            Command::ScheduleGoLive { .. } => "schedule_go_live",
            Command::GoLive => "go_live",
            Command::CompleteMonitoring => "complete_monitoring",
            Command::AssignOwner { .. } => "assign_owner",
            Command::AddNote { .. } => "add_note",
            Command::Block { .. } => "block",
            Command::Unblock { .. } => "unblock",
            Command::RotateCredential(_) => "rotate_credential",
            Command::Cancel { .. } => "cancel",
            Command::ChangePublicUrl { .. } => "change_public_url",
            Command::RecordWebhookDelivery(_) => "record_webhook_delivery",
            Command::RecordProbeResult(_) => "record_probe_result",
            Command::RecordSecretReveal { .. } => "record_secret_reveal",
            Command::RecordSecretsShredded => "record_secrets_shredded",
            Command::IssueIntakeLink { .. } => "issue_intake_link",
            Command::RedeemIntake(_) => "redeem_intake",
            Command::RecordCheck(_) => "record_gitlab_check",
        }
    }
}
