//! The guide's steps as CLI verbs: each builds a v1 command body.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::CliError;
use super::input::read_secret;

/// Booleans are spelled out (`--network-access true`), so a forgotten flag is an error, not a
/// silent `false`.
type Flag = bool;

#[derive(Debug, Clone, Subcommand)]
pub enum Prerequisites {
    /// Confirm the three prerequisites (confirm_prerequisites).
    Confirm {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Whether the customer has GitLab admin access (true or false).
        #[arg(long)]
        gitlab_admin_access: Flag,
        /// Whether network access between GitLab and Factory's AWS VPC is possible (true or false).
        #[arg(long)]
        network_access: Flag,
        /// Whether the customer has a Factory account with admin privileges (true or false).
        #[arg(long)]
        factory_admin_account: Flag,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum App {
    /// Record the GitLab application the customer registered (register_application).
    Register {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The application's name as registered in GitLab (compared exactly with the guide's).
        #[arg(long)]
        name: String,
        /// The redirect (callback) URI registered in GitLab.
        #[arg(long)]
        redirect_uri: String,
        /// The Application ID GitLab showed for the application.
        #[arg(long)]
        application_id: String,
        /// Comma-separated, e.g. api,read_user,read_repository.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Provide the Application Secret from a file, stdin (`-`) or a hidden prompt
    /// (provide_application_secret). Never on the command line.
    Secret {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// A file holding the Application Secret, or - for stdin (default: a hidden prompt).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Instance {
    /// Set the instance URL, an internal CA and the SSH port (set_instance_url).
    Set {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The instance's URL, e.g. https://gitlab.example.com.
        #[arg(long)]
        gitlab_url: String,
        /// PEM file of the internal CA that signed the instance's certificate.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// The instance's SSH port, when not 22.
        #[arg(long)]
        ssh_port: Option<u32>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AccessToken {
    /// Provide the access token from a file, stdin (`-`) or a hidden prompt (provide_access_token).
    Provide {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Whether the token belongs to a GitLab admin.
        #[arg(long)]
        admin: Flag,
        /// A file holding the access token, or - for stdin (default: a hidden prompt).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Info {
    /// Submit the collected information (submit_information).
    Submit {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Network {
    /// Record the network policy evaluation (evaluate_network_policy).
    Policy {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// A barrier found (repeat for several; none at all is fine).
        #[arg(long = "barrier")]
        barriers: Vec<String>,
        /// Notes on the evaluation.
        #[arg(long)]
        notes: Option<String>,
    },
    /// Record VPC peering (establish_vpc_peering).
    Peering {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The VPC peering connection's id, pcx-....
        #[arg(long)]
        peering_id: String,
        /// The customer's VPC id, vpc-....
        #[arg(long)]
        customer_vpc_id: String,
        /// Factory's VPC id, vpc-....
        #[arg(long)]
        factory_vpc_id: String,
        /// Whether both sides' route tables route to the peer (true or false).
        #[arg(long)]
        route_tables_configured: Flag,
    },
    /// Record a VPN (establish_vpn).
    Vpn {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Whether the VPN tunnel is up (true or false).
        #[arg(long)]
        tunnel_established: Flag,
        /// Whether the IPsec settings are compatible (true or false).
        #[arg(long)]
        ipsec_compatible: Flag,
        /// Notes on the VPN (provider, tunnel ids).
        #[arg(long)]
        notes: Option<String>,
    },
    /// Record the firewall configuration (configure_firewall).
    Firewall {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Whether the firewall allows outbound HTTPS (true or false).
        #[arg(long)]
        outbound_https: Flag,
        /// Whether the firewall allows outbound SSH (true or false).
        #[arg(long)]
        outbound_ssh: Flag,
        /// Whether golive's webhook endpoint is reachable from GitLab (true or false).
        #[arg(long)]
        webhook_endpoint_reachable: Flag,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Webhook {
    /// Issue the webhook URL and secret token, shown once (issue_webhook_credentials).
    Issue {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Also issue a Standard Webhooks signing key.
        #[arg(long)]
        signing: bool,
    },
    /// Record the webhook as created in GitLab (create_webhook).
    Create {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The webhook's URL as created in GitLab (golive issued it with `webhook issue`).
        #[arg(long)]
        url: String,
        /// Comma-separated: push, tag_push, comments, merge_requests, issues, ci_cd, jobs, deployments, releases.
        #[arg(long, value_delimiter = ',')]
        triggers: Vec<String>,
    },
    /// Record a delivery copied from GitLab's "Recent events", through the receiver's own
    /// verification. The secret token comes from the headers, or --token-file when GitLab
    /// showed it redacted.
    Replay {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// A file (or - for stdin) of the request headers: `Name: value` lines, or one JSON
        /// object of names to values.
        #[arg(long, value_name = "FILE")]
        headers: PathBuf,
        /// A file of the request body (the JSON payload).
        #[arg(long, value_name = "FILE")]
        body: PathBuf,
        /// A file (or - for stdin) holding the webhook's secret token, when the headers show it
        /// redacted.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Test {
    /// Record an API check (record_api_check).
    Api {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Whether the API check succeeded (true or false).
        #[arg(long)]
        ok: Flag,
        /// What was checked, e.g. the call and where from.
        #[arg(long)]
        detail: Option<String>,
    },
    /// Record a manual test of a scenario (record_manual_test).
    Manual {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The scenario tested: merge_request_created, code_pushed, issue_opened, pipeline_ran.
        #[arg(long)]
        scenario: String,
        /// Whether the test passed (true or false).
        #[arg(long)]
        passed: Flag,
        /// What was done and seen.
        #[arg(long)]
        note: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Validate {
    #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
    pub id: String,
    /// The scenario validated: merge_request_created, code_pushed, issue_opened, pipeline_ran.
    #[arg(long)]
    pub scenario: String,
    /// Whether the Droid's response was correct (false opens a feedback item).
    #[arg(long)]
    pub correct: Flag,
    /// What the Droid did (a link, a comment): --evidence or --note is required.
    #[arg(long)]
    pub evidence: Option<String>,
    /// A note on the response: --evidence or --note is required.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Feedback {
    /// List an integration's feedback items, open ones first (--all for the resolved too).
    List {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// Also the resolved items.
        #[arg(long)]
        all: bool,
    },
    /// Report a feedback item (report_feedback).
    Report {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// What went wrong, in a sentence.
        #[arg(long)]
        summary: String,
    },
    /// Resolve a feedback item (resolve_feedback).
    Resolve {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The feedback item's id (golive feedback list shows them).
        #[arg(long)]
        feedback_id: String,
        /// How it was resolved.
        #[arg(long)]
        resolution: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Intake {
    /// Issue a one-time link to the customer's intake form (the guide's "securely send"
    /// step): the customer registers the application and pastes the Application Secret and an
    /// admin token there, over HTTPS, and nobody copies secrets through chat. Shown once.
    Create {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// How long the link works, in hours (1 to 336).
        #[arg(long, value_name = "HOURS", default_value_t = 72,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::domain::INTAKE_LINK_MAX_HOURS)))]
        expires_in_hours: u32,
    },
    /// An integration's intake links: issued, expiry, open, redeemed or expired (never the link).
    List {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum Launch {
    /// Schedule the go-live date, YYYY-MM-DD, UTC (schedule_go_live).
    Schedule {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
        /// The go-live date, YYYY-MM-DD (UTC).
        #[arg(long)]
        date: String,
    },
    /// Go live (go_live).
    Go {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
    },
    /// Complete monitoring once its window has passed (complete_monitoring).
    Complete {
        #[arg(value_name = "REF", help = super::INTEGRATION_REFERENCE)]
        id: String,
    },
}

/// The command body for a verb (secrets read from files, stdin or a prompt).
pub fn prerequisites(verb: Prerequisites) -> (String, Value) {
    let Prerequisites::Confirm { id, gitlab_admin_access, network_access, factory_admin_account } = verb;
    (
        id,
        json!({"type": "confirm_prerequisites", "gitlab_admin_access": gitlab_admin_access, "network_access": network_access, "factory_admin_account": factory_admin_account}),
    )
}

pub fn app(verb: App) -> Result<(String, Value), CliError> {
    Ok(match verb {
        App::Register { id, name, redirect_uri, application_id, scopes } => (
            id,
            json!({"type": "register_application", "name": name, "redirect_uri": redirect_uri, "application_id": application_id, "scopes": scopes}),
        ),
        App::Secret { id, secret_file } => {
            let secret = read_secret("Application Secret", "--secret-file", secret_file.as_deref())?;
            (id, json!({"type": "provide_application_secret", "secret": secret}))
        }
    })
}

pub fn instance(verb: Instance) -> Result<(String, Value), CliError> {
    let Instance::Set { id, gitlab_url, ca_file, ssh_port } = verb;
    let mut body = json!({"type": "set_instance_url", "gitlab_url": gitlab_url});
    if let Some(path) = ca_file {
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", path.display())))?;
        body["ca_certificate_pem"] = json!(pem);
    }
    if let Some(port) = ssh_port {
        body["ssh_port"] = json!(port);
    }
    Ok((id, body))
}

pub fn access_token(verb: AccessToken) -> Result<(String, Value), CliError> {
    let AccessToken::Provide { id, admin, secret_file } = verb;
    let token = read_secret("access token", "--secret-file", secret_file.as_deref())?;
    Ok((id, json!({"type": "provide_access_token", "token": token, "admin": admin})))
}

pub fn network(verb: Network) -> (String, Value) {
    match verb {
        Network::Policy { id, barriers, notes } => {
            let mut body = json!({"type": "evaluate_network_policy", "barriers": barriers});
            if let Some(notes) = notes {
                body["notes"] = json!(notes);
            }
            (id, body)
        }
        Network::Peering { id, peering_id, customer_vpc_id, factory_vpc_id, route_tables_configured } => (
            id,
            json!({"type": "establish_vpc_peering", "peering_id": peering_id, "customer_vpc_id": customer_vpc_id, "factory_vpc_id": factory_vpc_id, "route_tables_configured": route_tables_configured}),
        ),
        Network::Vpn { id, tunnel_established, ipsec_compatible, notes } => {
            let mut body = json!({"type": "establish_vpn", "tunnel_established": tunnel_established, "ipsec_compatible": ipsec_compatible});
            if let Some(notes) = notes {
                body["notes"] = json!(notes);
            }
            (id, body)
        }
        Network::Firewall { id, outbound_https, outbound_ssh, webhook_endpoint_reachable } => (
            id,
            json!({"type": "configure_firewall", "outbound_https": outbound_https, "outbound_ssh": outbound_ssh, "webhook_endpoint_reachable": webhook_endpoint_reachable}),
        ),
    }
}

pub fn test(verb: Test) -> (String, Value) {
    match verb {
        Test::Api { id, ok, detail } => {
            let mut body = json!({"type": "record_api_check", "ok": ok});
            if let Some(detail) = detail {
                body["detail"] = json!(detail);
            }
            (id, body)
        }
        Test::Manual { id, scenario, passed, note } => {
            (id, json!({"type": "record_manual_test", "scenario": scenario, "passed": passed, "note": note}))
        }
    }
}

pub fn validate(verb: Validate) -> (String, Value) {
    let mut body = json!({"type": "validate_response", "scenario": verb.scenario, "correct": verb.correct});
    if let Some(evidence) = verb.evidence {
        body["evidence"] = json!(evidence);
    }
    if let Some(note) = verb.note {
        body["note"] = json!(note);
    }
    (verb.id, body)
}

/// The command a feedback verb sends; `None` for `list`, which only reads.
pub fn feedback(verb: Feedback) -> Option<(String, Value)> {
    Some(match verb {
        Feedback::List { .. } => return None,
        Feedback::Report { id, summary } => (id, json!({"type": "report_feedback", "summary": summary})),
        Feedback::Resolve { id, feedback_id, resolution } => {
            (id, json!({"type": "resolve_feedback", "feedback_id": feedback_id, "resolution": resolution}))
        }
    })
}

pub fn launch(verb: Launch) -> (String, Value) {
    match verb {
        Launch::Schedule { id, date } => (id, json!({"type": "schedule_go_live", "date": date})),
        Launch::Go { id } => (id, json!({"type": "go_live"})),
        Launch::Complete { id } => (id, json!({"type": "complete_monitoring"})),
    }
}
