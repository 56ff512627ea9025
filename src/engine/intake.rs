//! The customer intake's edge: issuing one-time links and redeeming them with the customer's
//! secrets, sealed here before the domain sees them. The domain decides whether a link is still
//! good; this file draws the randomness and does the sealing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Engine, EngineError, Executed};
use crate::domain::{
    self, Actor, Command, HttpUrl, IntakeSubmission, IntegrationId, PlaintextSecret, Rejection, Sealer, SecretKind,
    ShortText,
};
use crate::secrets::{self, IntegrationSealer};

/// Random bytes in an intake link's secret.
const INTAKE_SECRET_BYTES: usize = 32;

/// A freshly issued link: the secret is in `path` and is shown this once.
#[derive(Debug, Clone)]
pub struct IssuedIntakeLink {
    pub executed: Executed,
    pub link_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// `/intake/{integration}/{secret}`, relative.
    pub path: String,
    /// The whole link to send the customer: the integration's recorded public URL and `path`.
    pub url: String,
}

/// What the intake page shows the customer before they submit: nothing secret.
#[derive(Debug, Clone, Serialize)]
pub struct IntakeInvitation {
    pub customer: ShortText,
    pub application_name: ShortText,
    pub redirect_uri: HttpUrl,
    pub required_scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
    /// The instance the secrets will be bound to: shown to the customer, and sent back with the
    /// form so that a change in between refuses the submission instead of rebinding it.
    pub gitlab_url: HttpUrl,
    pub instance: domain::CredentialBinding,
    /// Where golive is reached from outside for this integration (recorded when it opened).
    #[serde(skip)]
    pub public_url: HttpUrl,
}

/// The customer's form, as typed. Parsed and sealed by [`Engine::redeem_intake`].
#[derive(Clone, Default, Deserialize)]
pub struct IntakeForm {
    pub application_id: String,
    pub application_secret: String,
    pub access_token: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The instance origin the page showed (`CredentialBinding::origin`).
    #[serde(default)]
    pub shown_origin: Option<String>,
    /// The CA fingerprint the page showed; empty or absent for none.
    #[serde(default)]
    pub shown_ca_fingerprint: Option<String>,
}

/// Keeps the form's secrets out of logs: only the public fields are printed.
impl std::fmt::Debug for IntakeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeForm")
            .field("application_id", &self.application_id)
            .field("admin", &self.admin)
            .field("scopes", &self.scopes)
            .field("shown_origin", &self.shown_origin)
            .finish_non_exhaustive()
    }
}

/// Parses what the customer typed into the three facts it records, with the same rules as the
/// public commands (`register_application`, `provide_application_secret`,
/// `provide_access_token`); an invalid field is named (`application_id`, `scopes`,
/// `application_secret`, `access_token`). Pure: the fuzz target calls it directly.
pub fn parse_intake(
    form: &IntakeForm,
    application_name: &ShortText,
    redirect_uri: &HttpUrl,
) -> Result<(domain::ApplicationRegistration, PlaintextSecret, PlaintextSecret), Rejection> {
    let registration = domain::ApplicationRegistration::from_parts(
        application_name.clone(),
        redirect_uri.clone(),
        form.application_id.trim(),
        &form.scopes,
    )?;
    let parse_secret = |field: &str, value: &str| -> Result<PlaintextSecret, Rejection> {
        PlaintextSecret::parse(value.trim()).map_err(|e| Rejection::invalid(field, e.0))
    };
    let application_secret = parse_secret("application_secret", &form.application_secret)?;
    let access_token = parse_secret("access_token", &form.access_token)?;
    Ok((registration, application_secret, access_token))
}

fn customer_actor() -> Actor {
    Actor::parse("customer").expect("a valid actor name")
}

impl Engine {
    /// Where golive is reached from outside for `state`: the public URL recorded when it opened,
    /// or, for integrations opened before golive recorded it, the configured one.
    pub fn public_url_of(&self, state: &domain::Integration) -> HttpUrl {
        state.public_url.clone().unwrap_or_else(|| self.config().public_url.clone())
    }

    /// Issues a one-time intake link for `id`, open for `expires_in_hours`.
    pub async fn issue_intake_link(
        &self,
        id: IntegrationId,
        expires_in_hours: u32,
        actor: &Actor,
    ) -> Result<IssuedIntakeLink, EngineError> {
        let mut secret = [0u8; INTAKE_SECRET_BYTES];
        crate::sources::fill_random(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let link_id = self.ids().next_id();
        // Checked: the hours come from a caller, and an instant past chrono's range would panic.
        let expires_at =
            self.now().checked_add_signed(chrono::Duration::hours(i64::from(expires_in_hours))).ok_or_else(|| {
                Rejection::invalid("expires_in_hours", format!("must be at most {}", domain::INTAKE_LINK_MAX_HOURS))
            })?;
        let command = Command::IssueIntakeLink { link_id, token_digest: secrets::token_digest(&secret), expires_at };
        let executed = self.writes().execute_internal(id, command, actor).await?;
        let path = format!("/intake/{id}/{secret}");
        let url = format!("{}{path}", self.public_url_of(&executed.state).as_str().trim_end_matches('/'));
        Ok(IssuedIntakeLink { executed, link_id, expires_at, path, url })
    }

    /// What the customer is asked for, when `secret` opens a usable link of `id`.
    pub async fn intake_invitation(&self, id: IntegrationId, secret: &str) -> Result<IntakeInvitation, EngineError> {
        let state = self.state(id).await.map_err(|e| match e {
            EngineError::NotFound(_) => EngineError::Rejected(Rejection::Intake(domain::IntakeRefusal::Unknown)),
            other => other,
        })?;
        if state.is_cancelled() {
            return Err(EngineError::Rejected(Rejection::Intake(domain::IntakeRefusal::Unknown)));
        }
        let link = state
            .intake_link(&secrets::token_digest(secret), self.now())
            .map_err(|r| EngineError::Rejected(Rejection::Intake(r)))?;
        Ok(IntakeInvitation {
            customer: state.customer.clone(),
            application_name: state.playbook.application_name.clone(),
            redirect_uri: state.playbook.redirect_uri.clone(),
            required_scopes: state.playbook.required_scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_at: link.expires_at,
            gitlab_url: state.facts.instance.gitlab_url.clone(),
            instance: domain::CredentialBinding::of(&state.facts.instance),
            public_url: self.public_url_of(&state),
        })
    }

    /// Records the customer's submission through link `secret`: the application, its secret and
    /// the access token, sealed, with actor `customer`, in one append that also uses up the link.
    pub async fn redeem_intake(
        &self,
        id: IntegrationId,
        secret: &str,
        form: &IntakeForm,
    ) -> Result<Executed, EngineError> {
        tracing::debug!(integration = %id, form = ?form, "intake submitted");
        // Refuse a dead link before looking at the form, so a used link says so.
        let invitation = self.intake_invitation(id, secret).await?;
        let (registration, application_secret, access_token) =
            parse_intake(form, &invitation.application_name, &invitation.redirect_uri)?;
        let key = self.keystore().data_key(id).await?;
        // The intake never issues a webhook URL, but the sealer is the integration's all the same.
        let public_url = invitation.public_url.clone();
        let mut sealer = IntegrationSealer::new(&key, id, &public_url);
        let submission = IntakeSubmission {
            presented: secrets::token_digest(secret),
            application: registration,
            application_secret: sealer.seal(SecretKind::ApplicationSecret, &application_secret),
            access_token: sealer.seal(SecretKind::AccessToken, &access_token),
            admin: form.admin,
            shown_instance: form.shown_origin.as_ref().map(|origin| domain::CredentialBinding {
                origin: origin.clone(),
                ca_fingerprint: form.shown_ca_fingerprint.clone().filter(|f| !f.is_empty()),
            }),
        };
        self.writes().execute_internal(id, Command::RedeemIntake(Box::new(submission)), &customer_actor()).await
    }
}
