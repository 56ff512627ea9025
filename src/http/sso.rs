//! Single sign-on for the dashboard with OpenID Connect: the authorization code flow with PKCE,
//! `state` and `nonce`, against the operator's own OpenID provider found by discovery from its
//! issuer URL. The `openidconnect` crate verifies the ID token (signature against the
//! provider's JWKS, `iss`, `aud`, `exp`, `nonce`) with the engine's clock as "now".
//!
//! A sign-in starts at [`START_PATH`]: golive keeps a login record (the `state`, the `nonce`,
//! the PKCE verifier and where to go afterwards) under a random login id, sends that id to the
//! browser in a short-lived SameSite=Lax cookie (Lax, so it comes back with the provider's
//! redirect), and sends the browser to the provider. The provider redirects back to
//! [`CALLBACK_PATH`]; the login record is consumed there (removed with one compare-and-swap)
//! before anything else, so a callback replayed (or raced on another replica) finds nothing and
//! signs nobody in. Sign-ins started and never finished are swept once they expire, at most
//! once a minute, so anonymous starts cannot pile up in the store. The person's role comes from a configurable claim (e.g. `groups`) through the
//! operator's mapping; an account with no mapped role gets a 403 and no session. The actor of
//! an SSO user is `sso:<preferred_username>`, a prefix no API token may take.
//!
//! The issuer is configuration, set by the operator: it is trusted, so the egress rules for
//! customer-set URLs do not apply to it. Its HTTP client follows no redirects. When an ID token
//! names a key the cached JWKS lacks (the provider rotated its keys), discovery and the JWKS
//! are fetched again, at most once per [`KEY_REFETCH_MIN_INTERVAL`].
//!
//! Nothing secret (the client secret, codes, tokens, the PKCE verifier) is ever logged, shown
//! on a page or put in an error: errors carry the provider's error codes and the verifier's
//! reasons only.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::html;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenClaims, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::dashboard::{layout, safe_next, Page};
use super::metrics::{SignInMethod, SignInOutcome};
use super::session;
use super::AppState;
use crate::auth::{Role, RESERVED_ACTOR_PREFIX};
use crate::domain::Actor;
use crate::store::{update_aux, AuxChange};

/// Where the dashboard's "Sign in with single sign-on" link goes.
pub const START_PATH: &str = "/auth/sso/start";
/// Where the provider sends the browser back; register `{public_url}/auth/sso/callback` with it.
pub const CALLBACK_PATH: &str = "/auth/sso/callback";
/// The cookie naming a sign-in in progress.
pub const LOGIN_COOKIE_NAME: &str = "golive_sso";
/// How long a started sign-in may take at the provider.
pub const LOGIN_MAX_AGE_SECONDS: i64 = 600;
/// The least time between two fetches of the provider's keys caused by an unknown key id: a
/// stream of tokens naming made-up keys must not turn into a stream of requests to the provider.
pub const KEY_REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// The least time between two sweeps of expired login records, in seconds.
pub const LOGIN_SWEEP_INTERVAL_SECONDS: i64 = 60;
/// How long one request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest provider error code repeated on a page; longer or odd ones are not repeated.
const ERROR_CODE_MAX_CHARS: usize = 40;

/// Everything that can go wrong with single sign-on, from configuration to callback.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("single sign-on configuration: {0}")]
    Configuration(String),
    #[error("the OpenID provider could not be reached or answered wrongly: {0}")]
    ProviderUnavailable(String),
    #[error("no sign-in in progress matches this callback (already used, expired, or started in another browser)")]
    LoginUnknown,
    #[error("the callback's state does not match the sign-in this browser started")]
    StateMismatch,
    #[error("the OpenID provider refused the sign-in ({0})")]
    ProviderRefused(String),
    #[error("the ID token was rejected: {0}")]
    IdTokenRejected(String),
    #[error("the ID token has no preferred_username golive can use as an actor")]
    NoUsername,
    #[error("{actor} has no golive role: no value of its {claim:?} claim is mapped to a role")]
    NoRole { actor: String, claim: String },
    #[error("recording the sign-in failed: {0}")]
    Store(String),
}

impl SsoError {
    fn status(&self) -> StatusCode {
        match self {
            SsoError::Configuration(_) | SsoError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SsoError::ProviderUnavailable(_) => StatusCode::BAD_GATEWAY,
            SsoError::LoginUnknown | SsoError::StateMismatch => StatusCode::BAD_REQUEST,
            SsoError::ProviderRefused(_) | SsoError::IdTokenRejected(_) => StatusCode::UNAUTHORIZED,
            SsoError::NoUsername | SsoError::NoRole { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// What the person is told: what went wrong and what to do, never a detail that could
    /// carry a secret (those go to the server's log).
    fn explanation(&self) -> String {
        match self {
            SsoError::Configuration(_) | SsoError::Store(_) => {
                "golive could not complete the sign-in: try again; if it keeps happening, tell an admin (the \
                 details are in the server's log)."
                    .into()
            }
            SsoError::ProviderUnavailable(_) => {
                "golive could not reach the single sign-on provider: try again in a minute; if it keeps \
                 happening, tell an admin (the details are in the server's log)."
                    .into()
            }
            SsoError::LoginUnknown => "This sign-in link was already used or has expired: sign in again.".into(),
            SsoError::StateMismatch => {
                "This sign-in answer does not belong to the sign-in this browser started: sign in again.".into()
            }
            SsoError::ProviderRefused(code) => format!(
                "The single sign-on provider did not sign you in (it answered {code}): sign in again, or ask an \
                 admin if it keeps happening."
            ),
            SsoError::IdTokenRejected(_) => {
                "The single sign-on provider's answer could not be verified, so golive did not sign you in: sign \
                 in again; if it keeps happening, tell an admin (the details are in the server's log)."
                    .into()
            }
            SsoError::NoUsername => {
                "Your single sign-on account has no user name (preferred_username) golive can record as you: ask \
                 an admin."
                    .into()
            }
            SsoError::NoRole { .. } => {
                "Your account has no golive role: ask an admin to add you to a group mapped to a role.".into()
            }
        }
    }

    fn outcome(&self) -> SignInOutcome {
        match self {
            SsoError::Configuration(_) | SsoError::Store(_) => SignInOutcome::Error,
            SsoError::ProviderUnavailable(_) => SignInOutcome::ProviderUnavailable,
            SsoError::LoginUnknown | SsoError::StateMismatch => SignInOutcome::ExpiredLink,
            SsoError::ProviderRefused(_) | SsoError::IdTokenRejected(_) | SsoError::NoUsername => {
                SignInOutcome::Refused
            }
            SsoError::NoRole { .. } => SignInOutcome::NoRole,
        }
    }
}

/// The OpenID provider's issuer URL: absolute http(s), with a host, without credentials, query
/// or fragment. Kept exactly as given: the provider's discovery document and ID tokens must name
/// the very same string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer(String);

impl OidcIssuer {
    pub fn parse(text: &str) -> Result<Self, SsoError> {
        let invalid = |why: &str| SsoError::Configuration(format!("the issuer URL {text:?} {why}"));
        let url = url::Url::parse(text).map_err(|e| invalid(&format!("is not an absolute URL ({e})")))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(invalid("must use https (or http)"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or a fragment"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The claim whose values name roles, e.g. `groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleClaim(String);

impl RoleClaim {
    pub fn parse(text: &str) -> Result<Self, SsoError> {
        let well_formed =
            (1..=100).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
        if !well_formed {
            return Err(SsoError::Configuration(format!(
                "the role claim {text:?} must be 1 to 100 letters, digits or _-.:/ (e.g. groups)"
            )));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which claim values give which golive role: `golive-admins=admin,golive-reps=rep`. A person
/// with several mapped values gets the highest of their roles; with none, no role at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleMapping(BTreeMap<String, Role>);

impl RoleMapping {
    pub fn parse(text: &str) -> Result<Self, SsoError> {
        let mut mapping = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((value, role)) = entry.rsplit_once('=') else {
                return Err(SsoError::Configuration(format!(
                    "role mapping entry {entry:?} must read VALUE=ROLE, e.g. golive-reps=rep"
                )));
            };
            let value = value.trim();
            let Some(role) = Role::parse(role.trim()) else {
                return Err(SsoError::Configuration(format!(
                    "role mapping entry {entry:?}: the role must be admin, rep or viewer"
                )));
            };
            if value.is_empty() {
                return Err(SsoError::Configuration(format!("role mapping entry {entry:?} has no claim value")));
            }
            if mapping.insert(value.to_owned(), role).is_some_and(|earlier| earlier != role) {
                return Err(SsoError::Configuration(format!("the claim value {value:?} is mapped to two roles")));
            }
        }
        Ok(Self(mapping))
    }

    /// The highest role any of `values` maps to.
    pub fn role_for<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Option<Role> {
        values.into_iter().filter_map(|value| self.0.get(value).copied()).max()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The operator's single sign-on settings, checked when parsed; the HTTP client to the
/// provider is built here (no redirects, a timeout, the optional private CA).
#[derive(Debug, Clone)]
pub struct SsoConfig {
    issuer: OidcIssuer,
    client_id: ClientId,
    client_secret: ClientSecret,
    role_claim: RoleClaim,
    role_mapping: RoleMapping,
    scopes: Vec<String>,
    http: reqwest::Client,
}

impl SsoConfig {
    /// `scopes` are asked for besides `openid`; `issuer_ca_pem` is a PEM bundle trusted for the
    /// provider's TLS besides the web's roots (a private issuer).
    pub fn new(
        issuer: OidcIssuer,
        client_id: &str,
        client_secret: &str,
        role_claim: RoleClaim,
        role_mapping: RoleMapping,
        scopes: &[String],
        issuer_ca_pem: Option<&[u8]>,
    ) -> Result<Self, SsoError> {
        if client_id.trim().is_empty() {
            return Err(SsoError::Configuration("the client id is empty".into()));
        }
        if client_secret.is_empty() {
            return Err(SsoError::Configuration("the client secret is empty".into()));
        }
        if role_mapping.is_empty() {
            return Err(SsoError::Configuration(
                "no claim value is mapped to a role, so nobody could sign in: map at least one (e.g. \
                 golive-reps=rep)"
                    .into(),
            ));
        }
        let scopes: Vec<String> =
            scopes.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && s != "openid").collect();
        if let Some(odd) = scopes.iter().find(|s| !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')) {
            return Err(SsoError::Configuration(format!("the scope {odd:?} is not a valid scope name")));
        }
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("golive/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = issuer_ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| SsoError::Configuration(format!("the issuer's CA file: {e}")))?;
            if certificates.is_empty() {
                return Err(SsoError::Configuration("the issuer's CA file holds no PEM certificate".into()));
            }
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build().map_err(|e| SsoError::Configuration(format!("the provider's HTTP client: {e}")))?;
        Ok(Self {
            issuer,
            client_id: ClientId::new(client_id.trim().to_owned()),
            client_secret: ClientSecret::new(client_secret.to_owned()),
            role_claim,
            role_mapping,
            scopes,
            http,
        })
    }

    pub fn issuer(&self) -> &OidcIssuer {
        &self.issuer
    }
}

/// Every claim of the ID token beyond the standard ones, so the role claim can be read.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

type GoliveIdTokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type GoliveTokenResponse = StandardTokenResponse<GoliveIdTokenFields, CoreTokenType>;
/// A client made from the provider's discovery document (authorization endpoint set, token
/// and userinfo endpoints as the document says).
type ProviderClient = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    GoliveTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The provider as last discovered, and when its keys were last fetched again for an unknown
/// key id.
struct Discovered {
    client: ProviderClient,
    last_key_refetch: Option<Instant>,
}

/// Single sign-on in the running service: the settings, the callback URL and the provider's
/// discovery document, fetched at the first sign-in (so golive starts while the provider is
/// down) and kept.
pub struct SsoService {
    config: SsoConfig,
    redirect: RedirectUrl,
    provider: tokio::sync::Mutex<Option<Discovered>>,
    /// When this process last swept expired login records (the engine's clock).
    last_sweep: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl SsoService {
    pub fn new(config: SsoConfig, public_url: &str) -> Result<Self, SsoError> {
        let redirect = RedirectUrl::new(format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/')))
            .map_err(|e| SsoError::Configuration(format!("the callback URL: {e}")))?;
        Ok(Self { config, redirect, provider: tokio::sync::Mutex::new(None), last_sweep: std::sync::Mutex::new(None) })
    }

    async fn discover(&self) -> Result<ProviderClient, SsoError> {
        let issuer = IssuerUrl::new(self.config.issuer.as_str().to_owned())
            .map_err(|e| SsoError::Configuration(format!("the issuer URL: {e}")))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.config.http)
            .await
            .map_err(|e| SsoError::ProviderUnavailable(format!("discovery: {}", error_chain(&e))))?;
        Ok(ProviderClient::from_provider_metadata(
            metadata,
            self.config.client_id.clone(),
            Some(self.config.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone()))
    }

    /// The provider's client, discovering it first if need be.
    async fn client(&self) -> Result<ProviderClient, SsoError> {
        let mut provider = self.provider.lock().await;
        if let Some(discovered) = provider.as_ref() {
            return Ok(discovered.client.clone());
        }
        let client = self.discover().await?;
        *provider = Some(Discovered { client: client.clone(), last_key_refetch: None });
        Ok(client)
    }

    /// The provider's client with its keys fetched again (discovery and the JWKS), for an ID
    /// token signed with a key golive does not know. Within [`KEY_REFETCH_MIN_INTERVAL`] of the
    /// last such fetch, the client as it is: another sign-in may just have fetched the new key.
    async fn client_with_fresh_keys(&self) -> Result<ProviderClient, SsoError> {
        let mut provider = self.provider.lock().await;
        if let Some(discovered) = provider.as_mut() {
            if discovered.last_key_refetch.is_some_and(|at| at.elapsed() < KEY_REFETCH_MIN_INTERVAL) {
                return Ok(discovered.client.clone());
            }
            // Counted from the attempt, so a provider that is down is not asked again at once either.
            discovered.last_key_refetch = Some(Instant::now());
        }
        let client = self.discover().await?;
        tracing::info!(issuer = %self.config.issuer.as_str(), "fetched the OpenID provider's keys again: an ID token named an unknown key");
        *provider = Some(Discovered { client: client.clone(), last_key_refetch: Some(Instant::now()) });
        Ok(client)
    }
}

/// An error and its sources in one line (reqwest's top line alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A sign-in in progress, kept beside the log under the digest of its login id until the
/// callback consumes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoginRecord {
    state: String,
    nonce: String,
    pkce_verifier: String,
    next: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Where login records live beside the log; each key is this and the digest of a login id.
const LOGIN_KEY_PREFIX: &str = "sso-login/";

fn login_key(login_id: &str) -> String {
    format!("{LOGIN_KEY_PREFIX}{}", session::digest(login_id))
}

fn login_cookie(state: &AppState, login_id: &str) -> HeaderValue {
    let secure = if state.engine.config().public_url.is_https() { "; Secure" } else { "" };
    let value = format!(
        "{LOGIN_COOKIE_NAME}={login_id}; HttpOnly; SameSite=Lax; Path=/auth/sso; Max-Age={LOGIN_MAX_AGE_SECONDS}{secure}"
    );
    HeaderValue::from_str(&value).expect("login ids are base64url")
}

fn clear_login_cookie() -> HeaderValue {
    HeaderValue::from_static("golive_sso=; HttpOnly; SameSite=Lax; Path=/auth/sso; Max-Age=0")
}

fn login_cookie_value(headers: &HeaderMap) -> Option<String> {
    session::named_cookie(headers, LOGIN_COOKIE_NAME)
}

/// `GET /auth/sso/start?next=…`: records a sign-in and sends the browser to the provider.
pub async fn start(State(state): State<AppState>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let Some(sso) = state.sso.clone() else {
        return super::Problem::not_found("single sign-on is not configured on this server").into_response();
    };
    let next = safe_next(query.get("next").map(String::as_str).unwrap_or("/"));
    match begin(&state, &sso, next).await {
        Ok((login_id, to)) => {
            let mut response = Redirect::to(&to).into_response();
            response.headers_mut().append(header::SET_COOKIE, login_cookie(&state, &login_id));
            response
        }
        Err(error) => refuse(&state, error, None),
    }
}

async fn begin(state: &AppState, sso: &SsoService, next: String) -> Result<(String, String), SsoError> {
    let client = sso.client().await?;
    let login_id = session::random_secret();
    let pkce_verifier = session::random_secret();
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(pkce_verifier.clone()));
    let (csrf, nonce) = (session::random_secret(), session::random_secret());
    let (state_for_url, nonce_for_url) = (csrf.clone(), nonce.clone());
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(state_for_url),
            move || Nonce::new(nonce_for_url),
        )
        .set_pkce_challenge(challenge);
    for scope in &sso.config.scopes {
        request = request.add_scope(openidconnect::Scope::new(scope.clone()));
    }
    let (url, _, _) = request.url();
    let now = state.engine.now();
    let record = LoginRecord {
        state: csrf,
        nonce,
        pkce_verifier,
        next,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(LOGIN_MAX_AGE_SECONDS),
    };
    sweep_expired_logins(state, sso).await;
    let created = state
        .engine
        .store()
        .put_aux_if_absent(&login_key(&login_id), serde_json::to_vec(&record).expect("login records serialize"))
        .await
        .map_err(|e| SsoError::Store(e.to_string()))?;
    if !created {
        return Err(SsoError::Store("a new login id collided with an existing one".into()));
    }
    Ok((login_id, url.to_string()))
}

/// Removes expired login records (sign-ins started and never finished), at most once per
/// [`LOGIN_SWEEP_INTERVAL_SECONDS`] in this process. Each removal is a compare-and-swap against the
/// record as read, so a record changed meanwhile is left alone. A failure is only logged: the
/// next sweep tries again.
async fn sweep_expired_logins(state: &AppState, sso: &SsoService) {
    let now = state.engine.now();
    {
        let mut last = sso.last_sweep.lock().expect("sweep lock");
        if last.is_some_and(|at| now - at < chrono::Duration::seconds(LOGIN_SWEEP_INTERVAL_SECONDS)) {
            return;
        }
        *last = Some(now);
    }
    let store = state.engine.store();
    let records = match store.scan_aux(LOGIN_KEY_PREFIX).await {
        Ok(records) => records,
        Err(error) => return tracing::warn!(%error, "sweeping expired single sign-on records failed"),
    };
    for (key, bytes) in records {
        let expired = serde_json::from_slice::<LoginRecord>(&bytes).map_or(true, |record| now >= record.expires_at);
        if expired {
            if let Err(error) = store.compare_and_swap_aux(&key, Some(&bytes), None).await {
                return tracing::warn!(%error, "sweeping expired single sign-on records failed");
            }
        }
    }
}

/// What the provider sends back: a code and the state, or an error and the state.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/sso/callback`: consumes the sign-in, exchanges the code, verifies the ID token,
/// maps the role and starts a session.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(sso) = state.sso.clone() else {
        return super::Problem::not_found("single sign-on is not configured on this server").into_response();
    };
    match finish(&state, &sso, login_cookie_value(&headers), query).await {
        Ok((session_id, next, actor, role)) => {
            state.metrics.sign_in(SignInMethod::Sso, SignInOutcome::SignedIn);
            tracing::info!(actor = %actor, role = role.as_str(), "signed in with single sign-on");
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, session::set_cookie(&state, &session_id));
            headers.append(header::SET_COOKIE, clear_login_cookie());
            response
        }
        Err(error) => refuse(&state, error, Some(clear_login_cookie())),
    }
}

/// Counts and logs a refused sign-in and answers with a page saying why and what to do.
fn refuse(state: &AppState, error: SsoError, cookie: Option<HeaderValue>) -> Response {
    state.metrics.sign_in(SignInMethod::Sso, error.outcome());
    match error.status() {
        status if status.is_server_error() => tracing::error!(%error, "single sign-on failed"),
        _ => tracing::warn!(%error, "single sign-on refused"),
    }
    let status = error.status();
    let page = Page::Html(
        status,
        layout(
            "Single sign-on",
            None,
            None,
            html! {
                h1 { "You are not signed in" }
                p class="error" role="alert" id="sso-error" { (error.explanation()) }
                p { a href="/signin" { "Sign in again" } }
            },
        ),
    );
    let mut response = page.into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Consumes the login record named by the cookie: removed with one compare-and-swap, so exactly
/// one callback ever gets it. An expired or unreadable record is removed too, and gets nobody in.
async fn consume_login(state: &AppState, login_id: &str) -> Result<LoginRecord, SsoError> {
    let now = state.engine.now();
    let mut taken = None;
    let change = update_aux(state.engine.store().as_ref(), &login_key(login_id), |current| {
        taken = None;
        let Some(bytes) = current else { return AuxChange::Keep };
        match serde_json::from_slice::<LoginRecord>(bytes) {
            Ok(record) if now < record.expires_at => taken = Some(record),
            _ => {}
        }
        AuxChange::Remove
    })
    .await
    .map_err(|e| SsoError::Store(e.to_string()))?;
    match (change, taken) {
        (AuxChange::Remove, Some(record)) => Ok(record),
        _ => Err(SsoError::LoginUnknown),
    }
}

/// A provider error code repeated on a page only when it looks like one (`access_denied`).
fn shown_error_code(code: &str) -> String {
    let plain = !code.is_empty()
        && code.len() <= ERROR_CODE_MAX_CHARS
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        code.to_owned()
    } else {
        "an error".to_owned()
    }
}

async fn finish(
    state: &AppState,
    sso: &SsoService,
    login_id: Option<String>,
    query: CallbackQuery,
) -> Result<(String, String, Actor, Role), SsoError> {
    let login_id = login_id.filter(|id| !id.is_empty() && id.len() <= 100).ok_or(SsoError::LoginUnknown)?;
    let record = consume_login(state, &login_id).await?;
    let presented_state = query.state.unwrap_or_default();
    if !bool::from(record.state.as_bytes().ct_eq(presented_state.as_bytes())) {
        return Err(SsoError::StateMismatch);
    }
    if let Some(code) = query.error {
        return Err(SsoError::ProviderRefused(shown_error_code(&code)));
    }
    let code = query.code.filter(|c| !c.is_empty()).ok_or_else(|| SsoError::ProviderRefused("no code".into()))?;
    let client = sso.client().await?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| SsoError::ProviderUnavailable(format!("the provider names no token endpoint: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(record.pkce_verifier.clone()))
        .request_async(&sso.config.http)
        .await
        .map_err(|e| match e {
            openidconnect::RequestTokenError::ServerResponse(answer) => {
                SsoError::ProviderRefused(shown_error_code(answer.error().as_ref()))
            }
            // The parser's message may quote the answer, which holds tokens: not repeated.
            openidconnect::RequestTokenError::Parse(..) => {
                SsoError::ProviderUnavailable("the token endpoint's answer could not be read".into())
            }
            other => SsoError::ProviderUnavailable(format!("the code exchange: {}", error_chain(&other))),
        })?;
    let id_token = response.id_token().ok_or_else(|| SsoError::IdTokenRejected("the answer has no ID token".into()))?;
    let nonce = Nonce::new(record.nonce.clone());
    let verify =
        |client: &ProviderClient| -> Result<IdTokenClaims<OtherClaims, CoreGenderClaim>, ClaimsVerificationError> {
            let engine = state.engine.clone();
            let verifier = client.id_token_verifier().set_time_fn(move || engine.now());
            id_token.claims(&verifier, &nonce).cloned()
        };
    let claims = match verify(&client) {
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
            verify(&sso.client_with_fresh_keys().await?)
        }
        other => other,
    }
    .map_err(|e| SsoError::IdTokenRejected(e.to_string()))?;
    let username = claims.preferred_username().map(|name| name.as_str().trim()).unwrap_or("");
    if username.is_empty() || username.chars().any(|c| c.is_whitespace() || crate::auth::is_deceptive_char(c)) {
        return Err(SsoError::NoUsername);
    }
    let actor = Actor::parse(format!("{RESERVED_ACTOR_PREFIX}{username}")).map_err(|_| SsoError::NoUsername)?;
    let values: Vec<&str> = match claims.additional_claims().0.get(sso.config.role_claim.as_str()) {
        Some(serde_json::Value::String(value)) => vec![value.as_str()],
        Some(serde_json::Value::Array(values)) => values.iter().filter_map(serde_json::Value::as_str).collect(),
        _ => Vec::new(),
    };
    let Some(role) = sso.config.role_mapping.role_for(values) else {
        return Err(SsoError::NoRole { actor: actor.to_string(), claim: sso.config.role_claim.as_str().to_owned() });
    };
    let session_id =
        session::sign_in_as(state, actor.clone(), role).await.map_err(|problem| SsoError::Store(problem.detail))?;
    Ok((session_id, record.next, actor, role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_mapping_gives_the_highest_mapped_role_and_none_without_one() {
        let mapping = RoleMapping::parse("golive-admins=admin, golive-reps=rep,staff=viewer").unwrap();
        assert_eq!(mapping.role_for(["staff", "golive-reps"]), Some(Role::Rep));
        assert_eq!(mapping.role_for(["golive-admins", "staff"]), Some(Role::Admin));
        assert_eq!(mapping.role_for(["elsewhere"]), None);
        assert_eq!(mapping.role_for([]), None);
        assert!(RoleMapping::parse("golive-reps").is_err());
        assert!(RoleMapping::parse("golive-reps=owner").is_err());
        assert!(RoleMapping::parse("=rep").is_err());
        assert!(RoleMapping::parse("x=rep,x=admin").is_err());
    }

    #[test]
    fn issuer_urls_are_absolute_http_without_credentials_query_or_fragment() {
        assert!(OidcIssuer::parse("https://id.example.com/realms/ops").is_ok());
        assert!(OidcIssuer::parse("id.example.com").is_err());
        assert!(OidcIssuer::parse("ftp://id.example.com").is_err());
        assert!(OidcIssuer::parse("https://user:pw@id.example.com").is_err());
        assert!(OidcIssuer::parse("https://id.example.com/?a=b").is_err());
    }

    #[test]
    fn only_plain_error_codes_reach_a_page() {
        assert_eq!(shown_error_code("access_denied"), "access_denied");
        assert_eq!(shown_error_code("<script>"), "an error");
        assert_eq!(shown_error_code(&"a".repeat(41)), "an error");
    }
}
