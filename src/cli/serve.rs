//! `golive serve`: the HTTP service on the embedded store, with graceful shutdown, and how
//! people sign in to its dashboard (API tokens, single sign-on with OpenID Connect).

use std::io::Write;
use std::path::PathBuf;

use tokio::net::TcpListener;

use super::client::CliError;
use super::Cli;
use crate::auth::{Role, Tokens};
use crate::domain::HttpUrl;
use crate::engine::{Engine, EngineConfig, NotificationSettings, NotificationSinks, OpenOptions, SubscriptionSettings};
use crate::fixtures::{load_into_engine, Fixture};
use crate::http::{router, serve, HttpConfig, OidcIssuer, RoleClaim, RoleMapping, SsoConfig};

/// Notifications and subscriptions: the operator's SMTP relay (trusted, set here) and how
/// often notification rules are evaluated.
#[derive(Debug, Clone, clap::Args)]
pub struct OutboundFlags {
    /// The longest golive waits for GitLab's answer to a hook test. GitLab delivers the test
    /// while golive's request waits, for up to its own webhook timeout (10 s by default, set
    /// per instance): keep this well above it.
    #[arg(long, env = "GOLIVE_GITLAB_TEST_TIMEOUT_SECONDS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(11..=600))]
    pub gitlab_test_timeout_seconds: u64,
    /// The SMTP relay for e-mail notifications, `smtp://HOST[:PORT]` (port 587 by default;
    /// STARTTLS is always required).
    #[arg(long, env = "GOLIVE_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// The sender of e-mail notifications.
    #[arg(long, env = "GOLIVE_SMTP_FROM", default_value = "golive@localhost")]
    pub smtp_from: String,
    /// The relay's user name, when it wants one (the password comes from --smtp-password-file).
    #[arg(long, env = "GOLIVE_SMTP_USER")]
    pub smtp_user: Option<String>,
    /// A file holding the relay's password (never on the command line).
    #[arg(long, env = "GOLIVE_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<std::path::PathBuf>,
    /// A PEM file of the CA that signed the relay's certificate, for a private relay.
    #[arg(long, env = "GOLIVE_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// Send nothing outbound: subscriptions and notification rules are kept but neither
    /// delivered nor sent (for a trial or a fuzzing run whose made-up URLs must stay unvisited).
    #[arg(long, env = "GOLIVE_NO_OUTBOUND")]
    pub no_outbound: bool,
    /// How often notification rules are evaluated, in seconds.
    #[arg(long, env = "GOLIVE_NOTIFY_EVERY_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub notify_every_seconds: u64,
}

impl OutboundFlags {
    /// The relay, when one is configured.
    fn smtp_relay(&self) -> Result<Option<crate::outbound::mail::SmtpRelay>, CliError> {
        use crate::outbound::mail::{SmtpRelay, SmtpSettings};
        let Some(url) = &self.smtp_url else { return Ok(None) };
        let mut settings = SmtpSettings::parse(url, &self.smtp_from).map_err(|e| CliError::Usage(e.to_string()))?;
        match (&self.smtp_user, &self.smtp_password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file)
                    .map_err(|e| CliError::Usage(format!("--smtp-password-file {}: {e}", file.display())))?;
                settings.credentials = Some((user.clone(), password.trim_end_matches(['\r', '\n']).to_owned()));
            }
            (None, None) => {}
            _ => return Err(CliError::Usage("--smtp-user and --smtp-password-file go together".into())),
        }
        if let Some(file) = &self.smtp_ca_file {
            settings.ca_pem = Some(
                std::fs::read_to_string(file)
                    .map_err(|e| CliError::Usage(format!("--smtp-ca-file {}: {e}", file.display())))?,
            );
        }
        SmtpRelay::new(&settings).map(Some).map_err(|e| CliError::Usage(e.to_string()))
    }
}

/// How people sign in to the dashboard. The client secret is read from a file, never taken on
/// the command line (where `ps` shows it to every user of the machine).
#[derive(Debug, Clone, clap::Args)]
pub struct SignInFlags {
    /// Single sign-on: the OpenID provider's issuer URL (discovery is read from
    /// {issuer}/.well-known/openid-configuration). Register {public_url}/auth/sso/callback as
    /// the client's redirect URI.
    #[arg(long, env = "GOLIVE_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// Single sign-on: golive's client id at the provider.
    #[arg(long, env = "GOLIVE_OIDC_CLIENT_ID", value_name = "ID", requires = "oidc_issuer")]
    pub oidc_client_id: Option<String>,
    /// Single sign-on: a file holding the client secret (`-` for stdin).
    #[arg(long, env = "GOLIVE_OIDC_CLIENT_SECRET_FILE", value_name = "PATH", requires = "oidc_issuer")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Single sign-on: the ID token claim whose values give roles.
    #[arg(long, env = "GOLIVE_OIDC_ROLE_CLAIM", value_name = "CLAIM", default_value = "groups")]
    pub oidc_role_claim: String,
    /// Single sign-on: claim values and the role each gives, e.g.
    /// golive-admins=admin,golive-reps=rep,golive-viewers=viewer. Anyone with no mapped value
    /// is refused (403) and gets no session.
    #[arg(long, env = "GOLIVE_OIDC_ROLES", value_name = "VALUE=ROLE,...", requires = "oidc_issuer")]
    pub oidc_roles: Option<String>,
    /// Single sign-on: scopes asked for besides openid (comma-separated).
    #[arg(long, env = "GOLIVE_OIDC_SCOPES", value_name = "SCOPES", default_value = "profile")]
    pub oidc_scopes: String,
    /// Single sign-on: a PEM file of CA certificates to trust for a private issuer's TLS.
    #[arg(long, env = "GOLIVE_OIDC_CA_FILE", value_name = "PATH", requires = "oidc_issuer")]
    pub oidc_ca_file: Option<PathBuf>,
    /// Hide the dashboard's token form and refuse signing in with an API token (single sign-on
    /// only). Bearer tokens keep working for the API and the CLI. Needs --oidc-issuer.
    #[arg(long, env = "GOLIVE_NO_TOKEN_SIGN_IN")]
    pub no_token_sign_in: bool,
}

impl SignInFlags {
    /// The single sign-on settings, when an issuer is given.
    fn sso_config(&self) -> Result<Option<SsoConfig>, CliError> {
        let Some(issuer) = self.oidc_issuer.as_deref() else {
            if self.no_token_sign_in {
                return Err(CliError::Usage(
                    "--no-token-sign-in needs single sign-on (--oidc-issuer …): nobody could sign in to the \
                     dashboard"
                        .into(),
                ));
            }
            return Ok(None);
        };
        let usage = |e: crate::http::SsoError| CliError::Usage(e.to_string());
        let issuer = OidcIssuer::parse(issuer).map_err(usage)?;
        let client_id = self
            .oidc_client_id
            .as_deref()
            .ok_or_else(|| CliError::Usage("--oidc-issuer needs --oidc-client-id".into()))?;
        let Some(secret_file) = self.oidc_client_secret_file.as_deref() else {
            return Err(CliError::Usage("--oidc-issuer needs --oidc-client-secret-file PATH".into()));
        };
        let secret = super::input::read_secret("OpenID client secret", "--oidc-client-secret-file", Some(secret_file))?;
        let roles = self.oidc_roles.as_deref().ok_or_else(|| {
            CliError::Usage("--oidc-issuer needs --oidc-roles VALUE=ROLE,… (e.g. golive-reps=rep)".into())
        })?;
        let role_claim = RoleClaim::parse(&self.oidc_role_claim).map_err(usage)?;
        let role_mapping = RoleMapping::parse(roles).map_err(usage)?;
        let scopes: Vec<String> = self.oidc_scopes.split(',').map(str::to_owned).collect();
        let ca = match self.oidc_ca_file.as_deref() {
            Some(path) => Some(
                std::fs::read(path).map_err(|e| CliError::Usage(format!("--oidc-ca-file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        SsoConfig::new(issuer, client_id, &secret, role_claim, role_mapping, &scopes, ca.as_deref())
            .map(Some)
            .map_err(usage)
    }
}

pub async fn run(
    cli: &Cli,
    listen: &str,
    redirect_uri: Option<&str>,
    demo: bool,
    outbound: &OutboundFlags,
    sign_in: &SignInFlags,
) -> Result<(), CliError> {
    init_tracing();
    let smtp = outbound.smtp_relay()?;
    // Checked before anything is opened: a bad single sign-on setting is a usage error.
    let sso = sign_in.sso_config()?;
    let listener = TcpListener::bind(listen).await.map_err(|e| CliError::Usage(format!("--listen {listen}: {e}")))?;
    let address = listener.local_addr().map_err(|e| CliError::Other(e.to_string()))?;
    let public_url = cli.public_url.clone().unwrap_or_else(|| format!("http://{address}"));
    let public_url = HttpUrl::parse(public_url).map_err(|e| CliError::Usage(format!("--public-url: {e}")))?;
    let redirect = match redirect_uri {
        Some(uri) => Some(HttpUrl::parse(uri).map_err(|e| CliError::Usage(format!("--redirect-uri: {e}")))?),
        None => None,
    };
    let mut config = EngineConfig::new(public_url, redirect);
    // Without a flag or GOLIVE_PUBLIC_URL, the URL stored with the store wins over the listen
    // address.
    config.public_url_is_fallback = cli.public_url.is_none();
    config.probe_egress = crate::gitlab::egress::EgressPolicy::allowing(cli.probe_allow.clone());
    config.checks.test_request_timeout = std::time::Duration::from_secs(outbound.gitlab_test_timeout_seconds);
    let options = OpenOptions { master_key_file: cli.master_key_file.clone(), ..Default::default() };
    let location = super::store_location(cli)?;
    let (engine, warnings) = Engine::open_location(&location, config, options).await?;
    // The server gives customers URLs (webhook URLs, intake links) for every integration opened
    // through it: a loopback or http one is refused before it listens, unless allowed.
    if let Err(refused) =
        super::check_customer_url(engine.config().public_url.as_str(), cli.allow_local_urls || demo, "this server")
    {
        engine.close().await?;
        return Err(refused);
    }
    tracing::info!(store = %location.describe(), "store opened");
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let mut stdout = std::io::stdout();
    // The contract: the first line on stdout says where we listen (the real port for :0).
    writeln!(stdout, "listening on http://{address}")
        .and_then(|_| stdout.flush())
        .map_err(|e| CliError::Other(e.to_string()))?;
    if demo {
        let token = load_demo(&engine).await?;
        writeln!(stdout, "demo viewer token: {token}")
            .and_then(|_| stdout.flush())
            .map_err(|e| CliError::Other(e.to_string()))?;
    }
    // The demo's instances are fictional: probing them would only record DNS failures and
    // block the demo's live integration.
    let timer = if demo {
        tracing::info!("monitoring timer off with --demo: the demo's GitLab instances are fictional");
        None
    } else {
        Some(tokio::spawn(monitoring_timer(engine.clone())))
    };
    // Subscriptions deliver on every replica that holds their lease; notification passes run
    // on every replica too (each notification is claimed before it is sent).
    let outbound_tasks = if outbound.no_outbound {
        tracing::info!("--no-outbound: subscriptions and notifications are kept but nothing is sent");
        None
    } else {
        let mut random = [0u8; 6];
        crate::sources::fill_random(&mut random);
        let holder = format!("{}-{}", std::process::id(), hex::encode(random));
        let deliverers = engine.start_subscription_deliverers(holder, SubscriptionSettings::default());
        let sinks = NotificationSinks::new(&engine, smtp, NotificationSettings::default());
        let notifier = tokio::spawn(notification_timer(engine.clone(), sinks, outbound.notify_every_seconds));
        Some((deliverers, notifier))
    };
    if let Some(sso) = &sso {
        tracing::info!(issuer = %sso.issuer().as_str(), token_sign_in = !sign_in.no_token_sign_in, "single sign-on on");
    }
    let http_config = HttpConfig { sso, token_sign_in: !sign_in.no_token_sign_in, ..HttpConfig::default() };
    let app = router(engine.clone(), http_config);
    serve(listener, app, shutdown_signal()).await.map_err(|e| CliError::Other(e.to_string()))?;
    if let Some(timer) = timer {
        timer.abort();
    }
    if let Some((deliverers, notifier)) = outbound_tasks {
        notifier.abort();
        // Leases released, so the next start (or another replica) delivers at once.
        deliverers.stop().await;
    }
    tracing::info!("shutting down: in-flight requests done, flushing the store");
    engine.close().await?;
    Ok(())
}

/// Loads the embedded journeys into an empty store; returns a new viewer token.
async fn load_demo(engine: &Engine) -> Result<String, CliError> {
    if engine.store().head().await.map_err(|e| CliError::Other(e.to_string()))?.position == 0 {
        let now = engine.now();
        for fixture in Fixture::embedded().map_err(|e| CliError::Other(e.to_string()))? {
            load_into_engine(engine, &fixture, now)
                .await
                .map_err(|e| CliError::Other(format!("{}: {e}", fixture.name)))?;
        }
    }
    let tokens = Tokens::with_clock(engine.store().as_ref(), engine.clock());
    let name = format!("demo-viewer-{}", engine.now().format("%Y%m%d%H%M%S%3f"));
    Ok(tokens.create(&name, Role::Viewer, "golive serve --demo").await?)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GOLIVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: a log file or a journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// Every minute: probe monitoring integrations whose probe is due; complete monitoring whose
/// window has passed cleanly.
async fn monitoring_timer(engine: Engine) {
    let config = crate::gitlab::probe::ProbeConfig::default();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        match engine.monitoring_tick(&config).await {
            Ok(report) if !report.probed.is_empty() || !report.completed.is_empty() => {
                tracing::info!(probed = report.probed.len(), completed = report.completed.len(), "monitoring timer");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "the monitoring timer failed"),
        }
    }
}

/// Evaluates notification rules every `every_seconds`, and soon after events are recorded (at
/// most once a second), so a block or a submitted intake is announced within seconds.
async fn notification_timer(engine: Engine, sinks: NotificationSinks, every_seconds: u64) {
    let mut committed = engine.store().committed();
    let period = std::time::Duration::from_secs(every_seconds);
    loop {
        match engine.notification_pass(&sinks).await {
            Ok(report) if report != Default::default() => tracing::info!(?report, "notifications"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "a notification pass failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = committed.recv() => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    }
}
