//! The `golive` command line: noun-verb commands over a [`client::Client`], `--json` on every
//! read, tables on a terminal, one-line errors, documented exit codes.
//!
//! Exit codes: 0 ok · 1 unexpected failure · 2 usage or invalid input · 3 not found ·
//! 4 refused (invalid field, unmet requirements) · 5 conflict (cancelled, version) ·
//! 6 data directory locked by a running server · 7 not authenticated / not allowed ·
//! 8 verification failed · 9 temporarily unavailable (retry later). Failures golive reports
//! take their code from the one table in [`crate::error_kind`], in local and remote mode alike.

pub mod client;
mod input;
mod outbound;
mod output;
pub mod reference;
mod remote;
mod serve;
mod support;
mod verbs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::Utc;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::auth::Role;
use crate::domain::{Actor, HttpUrl, SecretKind, Stage};
use crate::engine::{At, AuditQuery, Engine, EngineConfig, ListFilter, OpenOptions};
use crate::gitlab::webhook::DeliveryHeaders;
use client::{CliError, Client, LocalClient};

const AFTER_HELP: &str = "Exit codes: 0 ok, 1 unexpected failure, 2 usage or invalid input, 3 not found, \
4 refused (invalid field or unmet requirements), 5 conflict (cancelled, version), 6 data directory locked \
by a running server (use --server), 7 not authenticated or not allowed, 8 verification failed, \
9 temporarily unavailable (storage, overload, timeout: retry later).";

#[derive(Debug, Parser)]
#[command(name = "golive", version, about = "The system of record for self-hosted GitLab onboardings", after_help = AFTER_HELP)]
pub struct Cli {
    /// The data directory of the embedded store.
    #[arg(long, global = true, env = "GOLIVE_DATA_DIR", default_value = "./golive-data")]
    pub data_dir: PathBuf,
    /// Talk to a running golive server instead of opening the data directory (with GOLIVE_TOKEN).
    #[arg(long, global = true, env = "GOLIVE_SERVER")]
    pub server: Option<String>,
    /// Who you are, in local mode (default: your OS user). Refused with --server: there the
    /// actor is the token's name.
    #[arg(long = "as", global = true, env = "GOLIVE_ACTOR")]
    pub actor: Option<String>,
    /// Where customers' GitLab reaches golive (the redirect URI, webhook URLs and intake links
    /// derive from it). This flag, then GOLIVE_PUBLIC_URL, then the URL stored by
    /// `golive init --public-url URL`; else the listen address for `serve`,
    /// http://127.0.0.1:8080 otherwise. An integration keeps the URL it was opened with.
    #[arg(long, global = true, env = "GOLIVE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Let golive give customers a loopback or plain-http URL (a trial on one machine, tests);
    /// it still warns. `serve --demo` implies it.
    #[arg(long, global = true, env = "GOLIVE_ALLOW_LOCAL_URLS")]
    pub allow_local_urls: bool,
    /// Where the log lives: `sled` (the embedded default, in --data-dir) or a PostgreSQL URL
    /// (postgres://…) shared by several replicas.
    #[arg(long, global = true, env = "GOLIVE_STORE")]
    pub store: Option<String>,
    /// The master key file (else GOLIVE_MASTER_KEY, else master.key in the data directory).
    #[arg(long, global = true, env = "GOLIVE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Lets the probe, the checks, subscription endpoints and Slack notification webhooks reach
    /// addresses golive otherwise refuses (loopback, link-local, unspecified, multicast,
    /// broadcast): a CIDR or an address; repeatable. Applies where this process sends (`serve`,
    /// and `probe` or `check` without --server).
    #[arg(long = "probe-allow", global = true, env = "GOLIVE_PROBE_ALLOW", value_delimiter = ',',
          value_name = "CIDR", value_parser = crate::gitlab::egress::parse_allowance)]
    pub probe_allow: Vec<ipnet::IpNet>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (API, webhook receiver, event stream) on the data directory.
    Serve {
        /// The address to listen on (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// The OAuth redirect URI of the default playbook (default {public_url}/oauth/gitlab/callback).
        #[arg(long)]
        redirect_uri: Option<String>,
        /// Load the demo onboardings into an empty store and print a viewer token.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        outbound: Box<serve::OutboundFlags>,
        #[command(flatten)]
        sign_in: Box<serve::SignInFlags>,
    },
    /// Create the data directory, its store and keys.
    Init,
    /// Open, list and show integrations.
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Prerequisites of the guide.
    #[command(subcommand)]
    Prerequisites(verbs::Prerequisites),
    /// The customer's GitLab application.
    #[command(subcommand)]
    App(verbs::App),
    /// The customer's GitLab instance.
    #[command(subcommand)]
    Instance(verbs::Instance),
    /// The customer's admin access token.
    #[command(subcommand)]
    AccessToken(verbs::AccessToken),
    /// Submit the information gathered.
    #[command(subcommand)]
    Info(verbs::Info),
    /// Network policy, peering or VPN, firewall.
    #[command(subcommand)]
    Network(verbs::Network),
    /// Webhook credentials, creation, and replaying deliveries.
    #[command(subcommand)]
    Webhook(verbs::Webhook),
    /// API checks and manual tests.
    #[command(subcommand)]
    Test(verbs::Test),
    /// Record whether the Droid's response to a scenario was correct.
    Validate(verbs::Validate),
    /// Feedback items.
    #[command(subcommand)]
    Feedback(verbs::Feedback),
    /// Go-live: schedule, go, complete monitoring.
    #[command(subcommand)]
    Launch(verbs::Launch),
    /// The customer's intake link: create one, list them.
    #[command(subcommand)]
    Intake(verbs::Intake),
    /// Assign the owner.
    Assign {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// The new owner.
        #[arg(long)]
        owner: String,
    },
    /// Add a note.
    Note {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// The note.
        #[arg(long)]
        text: String,
    },
    /// Block with a troubleshooting category: api_failure, permission_denied, webhook_not_received, other.
    Block {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// api_failure, permission_denied, webhook_not_received or other.
        #[arg(long)]
        category: String,
        /// What is blocking, in a sentence.
        #[arg(long)]
        detail: String,
    },
    /// Lift the block.
    Unblock {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// How the block was resolved.
        #[arg(long)]
        resolution: String,
    },
    /// Rotate a credential: application_secret, access_token (new secret from --secret-file,
    /// or none to mark it missing) or webhook_token (golive issues a new one).
    Rotate {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// application_secret, access_token or webhook_token.
        #[arg(long)]
        credential: String,
        /// A file holding the new secret, or - for stdin (for application_secret and access_token).
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// For access_token: whether the new token belongs to a GitLab admin.
        #[arg(long)]
        admin: Option<bool>,
    },
    /// Cancel the onboarding (terminal).
    Cancel {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// Why the onboarding ends (kept in the log).
        #[arg(long)]
        reason: String,
        /// Cancel without asking (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Send a raw v1 command from a JSON file (or `-` for stdin).
    Command {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// A JSON file holding one v1 command, or - for stdin.
        file: PathBuf,
    },
    /// Stage, owner, days in stage, checklist, next steps, block and advice.
    Status {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
    },
    /// Integrations per stage, blocked and stalled first.
    Board,
    /// Go-live dates and monitoring ends.
    Calendar,
    /// What the log says about the process: time in each stage (median, 90th percentile),
    /// opened and gone live per week, where onboardings stall.
    Insights,
    /// An integration's events, or its state at a moment (--at RFC 3339) or version.
    History {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// The state as it was at this moment: a date (UTC, the end of that day) or an RFC 3339 time.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        version: Option<u64>,
        /// Start after this version (for paging).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Events across integrations, filtered and paged.
    Audit {
        /// Only events by this actor. (Its own id: the global --as is also called actor.)
        #[arg(long = "actor", id = "actor_filter")]
        actor: Option<String>,
        /// Only events of this type, e.g. stage_entered (an unknown type lists the known ones).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// From this moment on: a date (UTC, from its start) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Up to this moment: a date (UTC, to its end) or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Start after this log position (for paging).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Why an integration is stuck and what to check.
    Diagnose {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
    },
    /// Verify the hash chain; prints the head hash to keep elsewhere.
    Verify {
        /// A head hash kept earlier: the log must still contain it.
        #[arg(long)]
        expect: Option<String>,
    },
    /// Write the log as JSON Lines with hashes (to a file or stdout).
    Export {
        /// Write to this file (default: stdout).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Import JSON Lines into an empty store, verifying the chain.
    Import {
        /// A JSON Lines file written by `golive export`.
        file: PathBuf,
    },
    /// Copy a whole store to another backend (sled directory ⇄ postgres:// URL), then verify
    /// the copy's chain and compare every integration's state. The target must be empty.
    Migrate {
        /// A sled data directory or a postgres:// URL.
        #[arg(long)]
        from: String,
        /// A sled data directory or a postgres:// URL.
        #[arg(long)]
        to: String,
    },
    /// Destroy an integration's data key: its secrets are gone for good.
    Shred {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
    },
    /// Probe the integration's GitLab now (API, token, admin, SSH) and record what it found.
    Probe {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
    },
    /// Check the guide through GitLab's API with the customer's token, and record what GitLab
    /// says: the application, the webhook, test deliveries. No flag: every check that can run
    /// (without --server: the application and the webhook). Exit 0 when every item checked is
    /// met, 4 when a check found something unmet or could not look.
    Check {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// Find the application by its Application ID and compare name, callback URL and confidentiality.
        #[arg(long)]
        application: bool,
        /// Find the hook with the issued URL (system, group or project hooks): triggers, SSL verification.
        #[arg(long)]
        webhook: bool,
        /// Ask GitLab to send a test delivery per required trigger and wait for each (needs --server).
        #[arg(long = "test-deliveries")]
        test_deliveries: bool,
        /// Perform the playbook's scenarios through the API in a scratch project (admin only).
        #[arg(long)]
        scenarios: bool,
        /// The GitLab group the webhook lives in (numeric id); default: search.
        #[arg(long, value_name = "GROUP_ID", conflicts_with = "project")]
        group: Option<u64>,
        /// The GitLab project the webhook lives in (numeric id); default: search.
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<u64>,
        /// With --scenarios: perform them in this project (numeric id) instead of a scratch project.
        #[arg(long = "scenario-project", value_name = "PROJECT_ID", requires = "scenarios")]
        scenario_project: Option<u64>,
        /// With --scenarios: keep the scratch project afterwards (default: deleted).
        #[arg(long = "keep-scratch-project", requires = "scenarios")]
        keep_scratch_project: bool,
        /// With --scenarios: the Droid's GitLab username; golive watches for its comment.
        #[arg(long = "droid-user", value_name = "USERNAME", requires = "scenarios")]
        droid_user: Option<String>,
    },
    /// Reveal a secret in plaintext (audited): application_secret, access_token, webhook_signing_key.
    Reveal {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// application_secret, access_token or webhook_signing_key.
        #[arg(long)]
        secret: String,
    },
    /// The admin's playbooks, from which integrations are opened.
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Outbound event subscriptions: endpoints that receive every matching event, in order,
    /// signed, at least once (admin).
    #[command(subcommand)]
    Subscription(outbound::SubscriptionCommand),
    /// Notification rules and an integration's notification journal.
    #[command(subcommand)]
    Notification(outbound::NotificationCommand),
    /// Replay the fixture onboardings in memory and print where each one stands.
    Demo {
        /// Replay the journeys (`*.json`) in this directory instead of the ones built in.
        #[arg(long)]
        fixtures: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Open an integration.
    Create {
        /// The customer's name, as reps will refer to it (`golive status <name>`).
        #[arg(long)]
        customer: String,
        /// The customer's GitLab instance, e.g. https://gitlab.example.com (https unless the
        /// playbook allows http).
        #[arg(long)]
        gitlab_url: String,
        /// The rep who owns the onboarding (default: none; `golive assign` sets it later).
        #[arg(long)]
        owner: Option<String>,
        /// A registered playbook's id (default: the server's default playbook).
        #[arg(long, value_name = "ID")]
        playbook: Option<String>,
        /// The registered playbook's version (default: its latest).
        #[arg(long, value_name = "N", requires = "playbook", value_parser = clap::value_parser!(u32).range(1..))]
        playbook_version: Option<u32>,
        /// A whole playbook as a JSON file, sent inline (the admin role only).
        #[arg(long, value_name = "PATH", conflicts_with = "playbook")]
        playbook_file: Option<PathBuf>,
        /// A file with the PEM CA bundle the instance is trusted through (an internal CA).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Open it even though another open integration has the same instance URL.
        #[arg(long)]
        force: bool,
    },
    /// List integrations.
    List {
        /// Only this stage: created, info_gathered, network_established, webhook_live, tested, validated, live, cancelled.
        #[arg(long)]
        stage: Option<String>,
        /// Only this owner's integrations.
        #[arg(long)]
        owner: Option<String>,
        /// Only blocked (true) or only unblocked (false).
        #[arg(long)]
        blocked: Option<bool>,
        /// Only integrations without progress for at least this many days.
        #[arg(long)]
        stalled_days: Option<u32>,
    },
    /// Change where golive is reached from outside for one integration (audited): later webhook
    /// URLs and intake links derive from the new URL, and a redirect URI golive derived from the
    /// old one follows it (the customer must update the application; the checklist says so).
    PublicUrl {
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
        /// The new public URL, e.g. https://golive.example.com.
        #[arg(value_name = "URL")]
        url: String,
    },
    /// Show an integration's state.
    Show {
        /// The playbook's id.
        #[arg(value_name = "REF", help = INTEGRATION_REFERENCE)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// Register a playbook version from a JSON file (admin); a registered version never changes.
    Add {
        /// A playbook as a JSON file.
        file: PathBuf,
    },
    /// List the default playbook and every registered version.
    List,
    /// Show a registered playbook (its latest version unless --version).
    Show {
        /// The playbook's id.
        id: String,
        /// The version (default: the latest).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        version: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the token.
    Create {
        /// viewer, rep or admin.
        #[arg(long)]
        role: String,
        /// The token's name: it becomes the actor of what the token records.
        #[arg(long)]
        name: String,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by name.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// The command line as clap defines it, with the global options shown once, in
/// `golive --help`. clap repeats global options in every subcommand's help; here they are
/// declared hidden, listed once in the root's help (from their own definitions, so the list
/// cannot drift), and every subcommand's help says where they are.
pub fn command_definition() -> clap::Command {
    fn point_to_root(mut command: clap::Command) -> clap::Command {
        if command.get_after_help().is_none() {
            command =
                command.after_help("Global options (--data-dir, --server, --as, --json, ...): see `golive --help`.");
        }
        let names: Vec<String> = command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
        for name in names {
            command = command.mut_subcommand(name, point_to_root);
        }
        command
    }
    let mut root = <Cli as clap::CommandFactory>::command();
    let mut listed = String::from("Global options (any command):\n");
    for arg in root.get_arguments().filter(|arg| arg.is_global_set()) {
        let Some(long) = arg.get_long() else { continue };
        let value = match arg.get_value_names() {
            Some(names) if arg.get_action().takes_values() => format!(" <{}>", names.join(" ")),
            _ => String::new(),
        };
        let env = arg.get_env().map(|name| format!(" [env: {}]", name.to_string_lossy())).unwrap_or_default();
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        listed.push_str(&format!("  --{long}{value}{env}\n          {help}\n"));
    }
    root = root.after_help(format!("{listed}\n{AFTER_HELP}"));
    // Listed above; hidden from the generated option lists, the root's and (as clap propagates
    // global options with their settings) every subcommand's.
    let globals: Vec<clap::Id> =
        root.get_arguments().filter(|arg| arg.is_global_set()).map(|arg| arg.get_id().clone()).collect();
    for id in globals {
        root = root.mut_arg(id, |arg| arg.hide(true));
    }
    let names: Vec<String> = root.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    for name in names {
        root = root.mut_subcommand(name, point_to_root);
    }
    root
}

/// Runs the CLI with the process arguments.
pub fn run() -> ExitCode {
    // Every file golive creates, sled's later snapshots and blobs included, is its owner's only.
    crate::store::owner_only::set_process_umask();
    // `golive status hooli | head`: a closed pipe ends the process quietly, as it does any
    // Unix tool, instead of a panic on the next write.
    // SAFETY: setting a signal's disposition to the default at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let matches = command_definition().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("golive: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("golive: {error}");
            if let CliError::Failed { unmet, .. } = &error {
                for (id, label) in unmet {
                    eprintln!("  missing: {label} ({id})");
                }
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// The OS user, who acts by default in local mode; `None` when the environment names nobody.
fn os_user() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .into_iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// Whether a command may run without knowing who acts: reads, and the set-up commands whose
/// records are not events (tokens, an import of a log whose events name their own actors).
fn needs_no_actor(command: &Command) -> bool {
    matches!(
        command,
        Command::Init
            | Command::Status { .. }
            | Command::Board
            | Command::Calendar
            | Command::Insights
            | Command::History { .. }
            | Command::Audit { .. }
            | Command::Diagnose { .. }
            | Command::Verify { .. }
            | Command::Export { .. }
            | Command::Integration(IntegrationCommand::Show { .. } | IntegrationCommand::List { .. })
            | Command::Playbook(PlaybookCommand::List | PlaybookCommand::Show { .. })
            | Command::Feedback(verbs::Feedback::List { .. })
            | Command::Intake(verbs::Intake::List { .. })
            | Command::Token(_)
            | Command::Import { .. }
            | Command::Subscription(outbound::SubscriptionCommand::List | outbound::SubscriptionCommand::Show { .. })
            | Command::Notification(
                outbound::NotificationCommand::List { .. }
                    | outbound::NotificationCommand::Rule(outbound::RuleCommand::List)
            )
    )
}

const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Whether a URL given to a customer would work only on this machine or travel in the clear:
/// plain http, or a loopback host.
pub(crate) fn is_local_url(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else { return true };
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            // `localhost.` is the same name, fully qualified.
            let name = name.trim_end_matches('.');
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(address)) => address.is_loopback() || address.is_unspecified(),
        Some(url::Host::Ipv6(address)) => address.is_loopback() || address.is_unspecified(),
        None => true,
    };
    parsed.scheme() != "https" || loopback
}

/// The rule for URLs golive gives customers: a loopback or http URL needs `--allow-local-urls`
/// (refused, exit 2, otherwise) and, allowed, still warns.
pub(crate) fn check_customer_url(url: &str, allowed: bool, what: &str) -> Result<(), CliError> {
    if !is_local_url(url) {
        return Ok(());
    }
    if !allowed {
        return Err(CliError::Usage(format!(
            "{what} would give the customer {url}, which is plain http or loopback: set golive's public URL once with \
             `golive init --public-url https://golive.example.com` (or GOLIVE_PUBLIC_URL), or pass --allow-local-urls for a trial"
        )));
    }
    eprintln!(
        "golive: warning: {what} gives the customer {url}, which works only on this machine or travels in the clear"
    );
    Ok(())
}

/// Where `--store` and `--data-dir` say the log lives.
pub(crate) fn store_location(cli: &Cli) -> Result<crate::engine::StoreLocation, CliError> {
    crate::engine::StoreLocation::parse(cli.store.as_deref(), &cli.data_dir).map_err(CliError::Usage)
}

async fn local_engine(cli: &Cli) -> Result<Engine, CliError> {
    let public_url = cli.public_url.as_deref().unwrap_or(DEFAULT_PUBLIC_URL);
    let public_url = HttpUrl::parse(public_url).map_err(|e| CliError::Usage(format!("--public-url: {e}")))?;
    let mut config = EngineConfig::new(public_url, None);
    // Without a flag or GOLIVE_PUBLIC_URL, the URL stored with the store wins over the default.
    config.public_url_is_fallback = cli.public_url.is_none();
    config.probe_egress = crate::gitlab::egress::EgressPolicy::allowing(cli.probe_allow.clone());
    let options = OpenOptions { master_key_file: cli.master_key_file.clone(), ..Default::default() };
    let (engine, warnings) = Engine::open_location(&store_location(cli)?, config, options).await?;
    // The default master key is worth a warning where a person sets golive up, not on every
    // command of their day (the server warns at every start).
    if matches!(cli.command, Command::Init) {
        for warning in warnings {
            eprintln!("golive: warning: {warning}");
        }
    }
    Ok(engine)
}

/// The help of every argument that names an integration.
pub(crate) const INTEGRATION_REFERENCE: &str =
    "The integration: its customer name (any case), a full id, or an id prefix of 6+ characters";

async fn connect(cli: &Cli) -> Result<Arc<dyn Client>, CliError> {
    if let Some(server) = &cli.server {
        if cli.actor.is_some() {
            return Err(CliError::Usage("--as is refused with --server: the actor is your token's name".into()));
        }
        let token = std::env::var("GOLIVE_TOKEN").map_err(|_| {
            CliError::failed(
                crate::error_kind::ErrorKind::Unauthorized,
                "remote mode needs GOLIVE_TOKEN (create one with `golive token create`)",
            )
        })?;
        return Ok(Arc::new(remote::RemoteClient::new(server, token)?));
    }
    let actor = match cli.actor.clone().or_else(os_user) {
        Some(actor) => actor,
        // Every event names who recorded it; an event must not be signed "unknown". A read may
        // go on: it records nothing. A token made here says it was made by the local admin.
        None if !needs_no_actor(&cli.command) => {
            return Err(CliError::Usage(
                "who is acting? No --as and no USER in the environment: pass --as NAME or set GOLIVE_ACTOR".into(),
            ))
        }
        None => "local-admin".to_owned(),
    };
    let actor = Actor::parse(actor.as_str()).map_err(|e| CliError::Usage(format!("--as: {e}")))?;
    if let Some(reason) = crate::auth::reserved_actor_name(actor.as_str()) {
        return Err(CliError::Usage(match cli.actor {
            Some(_) => format!("--as: {reason}"),
            None => format!("the OS user name is the actor by default, and {reason}; pass --as NAME"),
        }));
    }
    Ok(LocalClient::new(local_engine(cli).await?, actor))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, CliError> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| CliError::Usage(format!("{what} from stdin: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| CliError::Usage(format!("{what} {}: {e}", path.display())))
}

/// Which end of a day a bare date means: the start for `--since`, the end for `--until` and
/// `--at` (so `--until 2026-11-29` includes that whole day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DayEnd {
    Start,
    End,
}

/// An RFC 3339 time, or a date (`YYYY-MM-DD`, UTC) meaning the start or the end of that day.
fn parse_time(text: &str, flag: &str, day_end: DayEnd) -> Result<chrono::DateTime<Utc>, CliError> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let time = match day_end {
            DayEnd::Start => date.and_hms_opt(0, 0, 0),
            DayEnd::End => date.and_hms_nano_opt(23, 59, 59, 999_999_999),
        };
        return Ok(time.expect("a valid time of day").and_utc());
    }
    Err(CliError::Usage(format!(
        "{flag} {text:?}: write a date (2026-11-25, UTC) or an RFC 3339 time (2026-11-25T09:00:00Z)"
    )))
}

async fn execute(cli: Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Serve { listen, redirect_uri, demo, outbound, sign_in } => {
            return serve::run(&cli, listen, redirect_uri.as_deref(), *demo, outbound, sign_in).await
        }
        Command::Migrate { from, to } => return support::migrate(&cli, from, to).await,
        Command::Demo { fixtures } => {
            return support::demo(
                fixtures.as_deref(),
                cli.public_url.as_deref().unwrap_or(DEFAULT_PUBLIC_URL),
                cli.json,
            )
        }
        _ => {}
    }
    // Every integration argument may be a reference (a name, an id prefix): resolved once, here.
    let client = reference::ResolvingClient::new(connect(&cli).await?);
    let result = dispatch(&cli, client.as_ref()).await;
    let closed = client.close().await;
    result.and(closed)
}

/// Checks the public URL an integration's customer-facing URLs derive from (the one it recorded
/// when it opened; for older integrations, this process's) by [`check_customer_url`]. Only in
/// local mode: a server checked its own public URL when it started, and a rep's client could not
/// change it anyway.
async fn check_customer_url_of(client: &dyn Client, state: &Value, allowed: bool, what: &str) -> Result<(), CliError> {
    let Some(process_url) = client.public_url().await? else { return Ok(()) };
    let url = state["public_url"].as_str().map(str::to_owned).unwrap_or(process_url);
    check_customer_url(&url, allowed, what)
}

/// A second open (not cancelled) integration for one instance is most often a mistake (a rep
/// who did not find the first): refused unless `--force`, naming the one that exists. The
/// HTTP API keeps the design's semantics and opens it.
async fn refuse_a_second_onboarding_of(client: &dyn Client, gitlab_url: &str) -> Result<(), CliError> {
    // Compared as golive stores URLs (normalised); an invalid URL is left to the open to refuse.
    let Ok(wanted) = crate::domain::HttpUrl::parse(gitlab_url) else { return Ok(()) };
    let list = client.list(&ListFilter::default()).await?;
    let same = list.as_array().into_iter().flatten().find(|summary| {
        summary["gitlab_url"].as_str() == Some(wanted.as_str()) && summary["stage"].as_str() != Some("cancelled")
    });
    match same {
        Some(existing) => Err(CliError::failed(
            crate::error_kind::ErrorKind::Conflict,
            format!(
                "{} ({}) already onboards {}; add --force to open a second integration for it",
                existing["customer"].as_str().unwrap_or_default(),
                existing["id"].as_str().unwrap_or_default(),
                wanted.as_str()
            ),
        )),
        None => Ok(()),
    }
}

async fn dispatch(cli: &Cli, client: &dyn Client) -> Result<(), CliError> {
    let json_out = cli.json;
    let command_result = |reference: &str, value: Value| output::command_result(&value, reference, json_out);
    match &cli.command {
        Command::Init => {
            if let Some(url) = &cli.public_url {
                check_customer_url(url, cli.allow_local_urls, "this public URL")?;
                client.store_public_url(url).await?;
            }
            let head = client.verify(None).await?;
            if json_out {
                output::print_json(&json!({"data_dir": cli.data_dir, "events": head["events_checked"]}));
            } else {
                println!(
                    "golive data directory ready at {} ({} events)",
                    cli.data_dir.display(),
                    head["events_checked"]
                );
                if let Some(url) = &cli.public_url {
                    println!("public URL stored: {url} (integrations opened from now on give customers URLs under it)");
                }
            }
        }
        Command::Integration(IntegrationCommand::Create {
            customer,
            gitlab_url,
            owner,
            playbook,
            playbook_version,
            playbook_file,
            ca_file,
            force,
        }) => {
            if let Some(url) = client.public_url().await? {
                check_customer_url(&url, cli.allow_local_urls, "this integration's URLs (redirect URI, webhook URL)")?;
            }
            if !force {
                refuse_a_second_onboarding_of(client, gitlab_url).await?;
            }
            let mut body = json!({"customer": customer, "gitlab_url": gitlab_url});
            if let Some(owner) = owner {
                body["owner"] = json!(owner);
            }
            if let Some(id) = playbook {
                body["playbook_id"] = json!(id);
            }
            if let Some(version) = playbook_version {
                body["playbook_version"] = json!(version);
            }
            if let Some(path) = playbook_file {
                let text = read_file(path, "--playbook-file")?;
                body["playbook"] =
                    serde_json::from_slice(&text).map_err(|e| CliError::Usage(format!("--playbook-file: {e}")))?;
            }
            if let Some(path) = ca_file {
                body["ca_certificate_pem"] = json!(String::from_utf8_lossy(&read_file(path, "--ca-file")?));
            }
            let result = client.open(body).await?;
            if json_out {
                output::print_json(&result);
            } else {
                println!("{}", result["id"].as_str().unwrap_or_default());
            }
        }
        Command::Integration(IntegrationCommand::List { stage, owner, blocked, stalled_days }) => {
            let stage = match stage {
                Some(s) => Some(Stage::parse(s).ok_or_else(|| CliError::Usage(format!("--stage {s:?}: one of created, info_gathered, network_established, webhook_live, tested, validated, live, cancelled")))?),
                None => None,
            };
            let filter = ListFilter { stage, owner: owner.clone(), blocked: *blocked, stalled_days: *stalled_days };
            output::list(&client.list(&filter).await?, json_out);
        }
        Command::Integration(IntegrationCommand::PublicUrl { id, url }) => {
            check_customer_url(url, cli.allow_local_urls, "this public URL")?;
            command_result(id, client.execute(id, json!({"type": "change_public_url", "public_url": url})).await?)
        }
        Command::Integration(IntegrationCommand::Show { id }) | Command::Status { id } => {
            let state = client.state(id).await?;
            let diagnosis = client.diagnose(id).await?;
            output::status(&state, &diagnosis, id, json_out);
        }
        Command::Prerequisites(verb) => {
            let (id, body) = verbs::prerequisites(verb.clone());
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::App(verb) => {
            let (id, body) = verbs::app(verb.clone())?;
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Instance(verb) => {
            let (id, body) = verbs::instance(verb.clone())?;
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::AccessToken(verb) => {
            let (id, body) = verbs::access_token(verb.clone())?;
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Info(verbs::Info::Submit { id }) => {
            command_result(id, client.execute(id, json!({"type": "submit_information"})).await?)
        }
        Command::Network(verb) => {
            let (id, body) = verbs::network(verb.clone());
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Webhook(verbs::Webhook::Issue { id, signing }) => {
            // Issuing again would void the token GitLab holds (and block a live integration);
            // replacing it is a rotation, which says so in the log.
            let state = client.state(id).await?;
            if !state["webhook"]["url"].is_null() {
                return Err(CliError::failed(
                    crate::error_kind::ErrorKind::GuardRejected,
                    format!(
                        "webhook credentials were already issued for {id}; to replace the token, run: \
                         golive rotate {} --credential webhook_token",
                        output::shell_quote(id)
                    ),
                ));
            }
            check_customer_url_of(client, &state, cli.allow_local_urls, "this webhook URL").await?;
            command_result(
                id,
                client.execute(id, json!({"type": "issue_webhook_credentials", "signing": signing})).await?,
            )
        }
        Command::Webhook(verbs::Webhook::Create { id, url, triggers }) => command_result(
            id,
            client.execute(id, json!({"type": "create_webhook", "url": url, "triggers": triggers})).await?,
        ),
        Command::Webhook(verbs::Webhook::Replay { id, headers, body, token_file }) => {
            let header_text = String::from_utf8(read_file(headers, "--headers")?)
                .map_err(|_| CliError::Usage("--headers is not UTF-8".into()))?;
            let mut parsed = DeliveryHeaders::parse_text(&header_text).map_err(CliError::Usage)?;
            let redacted = parsed
                .token
                .as_deref()
                .is_none_or(|t| t.is_empty() || t.contains("REDACTED") || t.chars().all(|c| c == '*' || c == '['));
            if token_file.is_some() || redacted {
                parsed.token = Some(input::read_secret("webhook secret token", "--token-file", token_file.as_deref())?);
            }
            let body = read_file(body, "--body")?;
            command_result(id, client.webhook_replay(id, &parsed, &body).await?);
        }
        Command::Test(verb) => {
            let (id, body) = verbs::test(verb.clone());
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Validate(verb) => {
            let (id, body) = verbs::validate(verb.clone());
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Feedback(verbs::Feedback::List { id, all }) => {
            let state = client.state(id).await?;
            output::feedback(&state["feedback"], *all, json_out);
        }
        Command::Feedback(verb) => {
            let (id, body) = verbs::feedback(verb.clone()).expect("list is handled above");
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Intake(verbs::Intake::Create { id, expires_in_hours }) => {
            let state = client.state(id).await?;
            check_customer_url_of(client, &state, cli.allow_local_urls, "this intake link").await?;
            let issued = client.intake_create(id, *expires_in_hours).await?;
            if json_out {
                output::print_json(&issued);
            } else {
                println!("intake link (shown once; send it to the customer over a channel you trust):");
                println!("{}", issued["url"].as_str().unwrap_or_default());
                println!("works once, until {}", output::utc_time(&issued["expires_at"]));
            }
        }
        Command::Intake(verbs::Intake::List { id }) => {
            let state = client.state(id).await?;
            output::intake_links(&state["intake_links"], json_out);
        }
        Command::Launch(verb) => {
            let (id, body) = verbs::launch(verb.clone());
            command_result(&id, client.execute(&id, body).await?);
        }
        Command::Assign { id, owner } => {
            command_result(id, client.execute(id, json!({"type": "assign_owner", "owner": owner})).await?)
        }
        Command::Note { id, text } => {
            command_result(id, client.execute(id, json!({"type": "add_note", "text": text})).await?)
        }
        Command::Block { id, category, detail } => command_result(
            id,
            client.execute(id, json!({"type": "block", "category": category, "detail": detail})).await?,
        ),
        Command::Unblock { id, resolution } => {
            command_result(id, client.execute(id, json!({"type": "unblock", "resolution": resolution})).await?)
        }
        Command::Rotate { id, credential, secret_file, admin } => {
            if credential == "webhook_token" {
                let state = client.state(id).await?;
                check_customer_url_of(client, &state, cli.allow_local_urls, "this webhook URL").await?;
            }
            let mut body = json!({"type": "rotate_credential", "credential": credential});
            if let Some(path) = secret_file {
                body["secret"] = json!(input::read_secret("new secret", "--secret-file", Some(path))?);
            }
            if let Some(admin) = admin {
                body["admin"] = json!(admin);
            }
            command_result(id, client.execute(id, body).await?);
        }
        Command::Cancel { id, reason, yes } => {
            if !yes {
                input::confirm(&format!("Cancel {id} for good? Nothing can be recorded for it afterwards."))?;
            }
            command_result(id, client.execute(id, json!({"type": "cancel", "reason": reason})).await?)
        }
        Command::Command { id, file } => {
            let body: Value = serde_json::from_slice(&read_file(file, "command file")?)
                .map_err(|e| CliError::Usage(format!("command file: malformed JSON: {e}")))?;
            command_result(id, client.execute(id, body).await?);
        }
        Command::Board => output::board(&client.board().await?, json_out),
        Command::Calendar => output::calendar(&client.calendar().await?, json_out),
        Command::Insights => output::insights(&client.insights().await?, json_out),
        Command::History { id, at, version, after, limit } => {
            let moment = match (at, version) {
                (Some(_), Some(_)) => return Err(CliError::Usage("give --at or --version, not both".into())),
                (Some(at), None) => Some(At::Time(parse_time(at, "--at", DayEnd::End)?)),
                (None, Some(v)) => Some(At::Version(*v)),
                (None, None) => None,
            };
            match moment {
                Some(moment) => {
                    let state = client.state_at(id, moment).await?;
                    let diagnosis = json!({"findings": [], "missing": []});
                    output::status(&state, &diagnosis, id, json_out);
                }
                None => output::events(&client.history(id, *after, *limit).await?, json_out, false),
            }
        }
        Command::Audit { actor, event_type, since, until, after, limit } => {
            if let Some(wanted) = event_type {
                let known = crate::domain::event_type_names();
                if !known.iter().any(|t| t == wanted) {
                    return Err(CliError::Usage(format!(
                        "--type {wanted:?} is no event type; one of: {}",
                        known.join(", ")
                    )));
                }
            }
            let query = AuditQuery {
                actor: actor.clone(),
                event_type: event_type.clone(),
                integration: None,
                since: since.as_deref().map(|s| parse_time(s, "--since", DayEnd::Start)).transpose()?,
                until: until.as_deref().map(|s| parse_time(s, "--until", DayEnd::End)).transpose()?,
                after: *after,
                limit: *limit,
            };
            let page = client.audit(&query).await?;
            if json_out {
                output::print_json(&page);
            } else {
                output::events(&page["events"], false, true);
                if let Some(next) = page["next_after"].as_u64() {
                    println!("more: --after {next}");
                }
            }
        }
        Command::Diagnose { id } => output::diagnosis(&client.diagnose(id).await?, json_out),
        Command::Verify { expect } => {
            let report = client.verify(expect.as_deref()).await?;
            if json_out {
                output::print_json(&report);
            } else if report["valid"] == json!(true) {
                println!("valid: {} events; head {}", report["events_checked"], report["head"].as_str().unwrap_or(""));
            }
            if report["valid"] != json!(true) {
                return Err(CliError::VerifyFailed(format!(
                    "the log does not verify: {} (first bad position {})",
                    report["reason"].as_str().unwrap_or("unknown"),
                    report["first_bad_position"]
                )));
            }
        }
        Command::Export { output: path } => export(client, path.as_deref()).await?,
        Command::Import { file } => {
            let handle = std::fs::File::open(file).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            let total = std::io::BufRead::lines(std::io::BufReader::new(
                std::fs::File::open(file).map_err(|e| CliError::Usage(e.to_string()))?,
            ))
            .count() as u64;
            let bar = output::progress(total);
            let lines = Box::new(std::io::BufRead::lines(std::io::BufReader::new(handle)));
            let progress_bar = bar.clone();
            let report = client.import(lines, Box::new(move |n| progress_bar.set_position(n))).await?;
            bar.finish_and_clear();
            if json_out {
                output::print_json(&report);
            } else {
                println!("imported {} events; head {}", report["events"], report["head"].as_str().unwrap_or(""));
            }
        }
        Command::Probe { id } => {
            let found = client.probe(id).await?;
            if json_out {
                output::print_json(&found);
            } else {
                let yes_no = |v: &Value| match v.as_bool() {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                };
                println!(
                    "API reachable: {} · SSH reachable: {} · GitLab {}",
                    yes_no(&found["api_reachable"]),
                    yes_no(&found["ssh_reachable"]),
                    found["gitlab_version"].as_str().unwrap_or("-")
                );
                println!(
                    "token active: {} · admin: {} · scopes: {}",
                    yes_no(&found["token_active"]),
                    yes_no(&found["admin"]),
                    found["token_scopes"]
                );
                if let Some(category) = found["category"].as_str() {
                    println!("{category}: {}", found["detail"].as_str().unwrap_or(""));
                }
            }
        }
        Command::Check {
            id,
            application,
            webhook,
            test_deliveries,
            scenarios,
            group,
            project,
            scenario_project,
            keep_scratch_project,
            droid_user,
        } => {
            let mut checks = Vec::new();
            for (wanted, name) in [
                (*application, "application"),
                (*webhook, "webhook"),
                (*test_deliveries, "test_deliveries"),
                (*scenarios, "scenarios"),
            ] {
                if wanted {
                    checks.push(name);
                }
            }
            let mut body = json!({});
            if !checks.is_empty() {
                body["checks"] = json!(checks);
            } else if cli.server.is_none() {
                // Without the server nothing receives test deliveries: the read-only checks.
                body["checks"] = json!(["application", "webhook"]);
            }
            if let Some(group) = group {
                body["group_id"] = json!(group);
            }
            if let Some(project) = project {
                body["project_id"] = json!(project);
            }
            if let Some(project) = scenario_project {
                body["scenario_project_id"] = json!(project);
            }
            if *keep_scratch_project {
                body["keep_scratch_project"] = json!(true);
            }
            if let Some(user) = droid_user {
                body["droid_username"] = json!(user);
            }
            let spinner = output::spinner();
            let shown = spinner.clone();
            let result = client.check(id, body, &move |message| shown.set_message(message)).await;
            spinner.finish_and_clear();
            let result = result?;
            if json_out {
                output::print_json(&result);
            } else {
                output::check_result(&result);
            }
            let count = |key: &str| result["run"][key].as_array().map_or(0, Vec::len);
            let (unmet, missing, blind) = (count("unmet"), count("deliveries_missing"), count("could_not_look"));
            if unmet + missing + blind > 0 {
                let mut found = Vec::new();
                if unmet > 0 {
                    found.push(format!("{unmet} item(s) unmet"));
                }
                if missing > 0 {
                    found.push(format!("{missing} test delivery(ies) that never arrived"));
                }
                if blind > 0 {
                    found.push(format!("{blind} check(s) that could not look"));
                }
                return Err(CliError::failed(
                    crate::error_kind::ErrorKind::GuardRejected,
                    format!("the checks found {}", found.join(", ")),
                ));
            }
        }
        Command::Shred { id } => {
            let result = client.shred(id).await?;
            if json_out {
                output::print_json(&result);
            } else {
                println!("shredded: the data key of {id} is destroyed; its secrets can no longer be opened");
            }
        }
        Command::Reveal { id, secret } => {
            let kind: SecretKind = serde_json::from_value(json!(secret)).map_err(|_| {
                CliError::Usage(format!(
                    "--secret {secret:?}: one of application_secret, access_token, webhook_signing_key"
                ))
            })?;
            let plaintext = client.reveal(id, kind).await?;
            println!("{plaintext}");
        }
        Command::Token(TokenCommand::Create { role, name }) => {
            let role = Role::parse(role)
                .ok_or_else(|| CliError::Usage(format!("--role {role:?}: one of admin, rep, viewer")))?;
            println!("{}", client.token_create(name, role).await?);
        }
        Command::Playbook(PlaybookCommand::Add { file }) => {
            let text = read_file(file, "playbook file")?;
            let body: Value =
                serde_json::from_slice(&text).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
            let record = client.playbook_add(body).await?;
            if json_out {
                output::print_json(&record);
            } else {
                let playbook = &record["playbook"];
                println!(
                    "playbook {} version {} registered",
                    playbook["id"].as_str().unwrap_or(""),
                    playbook["version"]
                );
            }
        }
        Command::Playbook(PlaybookCommand::List) => {
            let listed = client.playbook_list().await?;
            if json_out {
                output::print_json(&listed);
            } else {
                let default = &listed["default"];
                println!(
                    "default: {} version {} (redirect URI {})",
                    default["id"].as_str().unwrap_or(""),
                    default["version"],
                    default["redirect_uri"].as_str().unwrap_or("")
                );
                for record in listed["playbooks"].as_array().into_iter().flatten() {
                    let playbook = &record["playbook"];
                    println!(
                        "{} version {} (redirect URI {}; registered by {} at {})",
                        playbook["id"].as_str().unwrap_or(""),
                        playbook["version"],
                        playbook["redirect_uri"].as_str().unwrap_or(""),
                        record["registered_by"].as_str().unwrap_or(""),
                        record["registered_at"].as_str().unwrap_or("")
                    );
                }
            }
        }
        Command::Playbook(PlaybookCommand::Show { id, version }) => {
            let record = client.playbook_show(id, *version).await?;
            output::print_json(&record);
        }
        Command::Token(TokenCommand::List) => output::tokens(&client.token_list().await?, json_out),
        Command::Token(TokenCommand::Revoke { name }) => {
            client.token_revoke(name).await?;
            if !json_out {
                println!("revoked {name}");
            }
        }
        Command::Subscription(command) => outbound::subscription(client, command, json_out).await?,
        Command::Notification(command) => outbound::notification(client, command, json_out).await?,
        Command::Serve { .. } | Command::Demo { .. } | Command::Migrate { .. } => {
            unreachable!("handled before connecting")
        }
    }
    Ok(())
}

async fn export(client: &dyn Client, path: Option<&Path>) -> Result<(), CliError> {
    use std::io::Write;
    let mut out: Box<dyn Write> = match path {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| CliError::Usage(format!("--output {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let total = client.verify(None).await?["events_checked"].as_u64().unwrap_or(0);
    let bar = if path.is_some() { output::progress(total) } else { indicatif::ProgressBar::hidden() };
    let mut after = 0;
    loop {
        let page = client.export_page(after, 5000).await?;
        let Some(last) = page.last().and_then(|e| e["position"].as_u64()) else { break };
        for event in &page {
            writeln!(out, "{event}").map_err(|e| CliError::Other(e.to_string()))?;
        }
        after = last;
        bar.set_position(after);
    }
    out.flush().map_err(|e| CliError::Other(e.to_string()))?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_means_the_start_or_the_end_of_that_day_in_utc() {
        let start = parse_time("2026-11-29", "--since", DayEnd::Start).unwrap();
        let end = parse_time("2026-11-29", "--until", DayEnd::End).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-11-29T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-11-29T23:59:59.999999999+00:00");
        let exact = parse_time("2026-11-29T09:30:00+01:00", "--at", DayEnd::End).unwrap();
        assert_eq!(exact.to_rfc3339(), "2026-11-29T08:30:00+00:00");
        let refused = parse_time("29/11/2026", "--since", DayEnd::Start).unwrap_err().to_string();
        assert!(refused.contains("2026-11-25") && refused.contains("RFC 3339"), "{refused}");
    }

    #[test]
    fn the_event_types_listed_are_every_type_an_event_can_have() {
        let names = crate::domain::event_type_names();
        assert_eq!(names.len(), 43, "{names:?}");
        assert_eq!(names[0], "integration_opened", "declaration order");
        for name in ["integration_opened", "credential_rotated", "intake_redeemed", "probe_result_recorded"] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
    }

    #[test]
    fn suggested_words_are_quoted_for_a_shell_only_when_they_need_it() {
        assert_eq!(output::shell_quote("2fefa944-1111"), "2fefa944-1111");
        assert_eq!(output::shell_quote("Acme Robotics"), "'Acme Robotics'");
        assert_eq!(output::shell_quote("O'Reilly"), "'O'\\''Reilly'");
        assert_eq!(output::shell_quote(""), "''");
    }
}

#[cfg(test)]
mod help_tests {
    /// Every flag and argument of every command, with the path to it, that has no help text.
    fn without_help(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} {id}"));
            }
        }
        for sub in command.get_subcommands() {
            without_help(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_flag_has_help_text() {
        let mut missing = Vec::new();
        without_help(&super::command_definition(), "golive", &mut missing);
        assert!(missing.is_empty(), "flags without help:\n{}", missing.join("\n"));
    }

    #[test]
    fn global_options_are_listed_once_in_the_root_help() {
        let mut root = super::command_definition();
        let root_help = root.render_long_help().to_string();
        for flag in ["--data-dir", "--server", "--as", "--public-url", "--allow-local-urls", "--json", "--probe-allow"]
        {
            // Each option's own line is indented two spaces; wrapped help lines, ten.
            let listed = root_help
                .lines()
                .filter(|line| line.starts_with(&format!("  {flag} ")) || line.trim_end() == format!("  {flag}"))
                .count();
            assert_eq!(listed, 1, "{flag} in:\n{root_help}");
        }
        let mut app = super::command_definition();
        let sub_help =
            app.find_subcommand_mut("app").unwrap().find_subcommand_mut("register").unwrap().render_help().to_string();
        assert!(!sub_help.lines().any(|line| line.trim_start().starts_with("--data-dir")), "{sub_help}");
        assert!(sub_help.contains("see `golive --help`"), "{sub_help}");
    }
}
