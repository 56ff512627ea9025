//! The rep's side of the integration page: one form per v1 command (and the probe), grouped by
//! the guide's steps, all posting to `POST /integrations/{id}/commands`.
//!
//! That route turns a form into the same v1 JSON body the CLI's verbs build and runs it through
//! [`crate::engine::Engine::execute`] with the session's actor, the path the JSON API takes: the
//! dashboard adds no second way to change an integration. Each form carries the session's CSRF
//! token (checked with the origin, as every dashboard form is) and the version the rep was
//! looking at, sent as the expected version, so a form filled in on a stale page is refused
//! instead of silently applied. Viewers see no form and are refused (403) if they post one.
//!
//! Secrets typed into a form (application secret, access token, a rotated credential) go
//! straight into the command body and are sealed by the engine; they are never put back into a
//! page, a redirect URL or a log line. The webhook secret token golive generates is shown once,
//! on the answer to the command that issued it, and never again.

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::render::humanize;
use super::{check_form, error_page, field, form_fields, layout, require_role, require_session, Page};
use crate::auth::Role;
use crate::domain::{Credential, Integration, IntegrationId, Rejection, Scenario, Stage, Trigger};
use crate::engine::{EngineError, ExecuteRequest, Executed};
use crate::http::session::Session;
use crate::http::{AppState, Problem};

type Fields = HashMap<String, Vec<String>>;

/// The form type that runs the GitLab probe (not a v1 command: the probe records its result).
pub const PROBE: &str = "probe";

/// The form type that starts a run of checks through GitLab's API (not a v1 command: the run
/// records its own events, and the page shows them live as they arrive).
pub const CHECK: &str = "check";

/// The guide's steps, as the groups the forms are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Information,
    Network,
    Webhook,
    Testing,
    Validation,
    GoLive,
    AnyTime,
}

impl Step {
    const ALL: [Step; 7] =
        [Step::Information, Step::Network, Step::Webhook, Step::Testing, Step::Validation, Step::GoLive, Step::AnyTime];

    fn id(self) -> &'static str {
        match self {
            Step::Information => "step-information",
            Step::Network => "step-network",
            Step::Webhook => "step-webhook",
            Step::Testing => "step-testing",
            Step::Validation => "step-validation",
            Step::GoLive => "step-go-live",
            Step::AnyTime => "step-any-time",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Step::Information => "1. Information from the customer",
            Step::Network => "2. Network",
            Step::Webhook => "3. Webhook",
            Step::Testing => "4. Testing",
            Step::Validation => "5. Validation",
            Step::GoLive => "6. Go-live and monitoring",
            Step::AnyTime => "Any time: owner, notes, blocks, credentials, cancel",
        }
    }

    /// The form types of this step, in the guide's order.
    fn kinds(self) -> &'static [&'static str] {
        match self {
            Step::Information => &[
                "confirm_prerequisites",
                "register_application",
                "provide_application_secret",
                "set_instance_url",
                "provide_access_token",
                "submit_information",
            ],
            Step::Network => {
                &["evaluate_network_policy", "establish_vpc_peering", "establish_vpn", "configure_firewall"]
            }
            Step::Webhook => &["issue_webhook_credentials", "create_webhook"],
            Step::Testing => &[CHECK, PROBE, "record_api_check", "record_manual_test"],
            Step::Validation => &["validate_response"],
            Step::GoLive => {
                &["report_feedback", "resolve_feedback", "schedule_go_live", "go_live", "complete_monitoring"]
            }
            Step::AnyTime => &["assign_owner", "add_note", "block", "unblock", "rotate_credential", "cancel"],
        }
    }

    /// The step whose work brings an integration in `stage` to its next stage.
    fn current(stage: Stage) -> Step {
        match stage {
            Stage::Created => Step::Information,
            Stage::InfoGathered => Step::Network,
            Stage::NetworkEstablished => Step::Webhook,
            Stage::WebhookLive => Step::Testing,
            Stage::Tested => Step::Validation,
            Stage::Validated | Stage::Live | Stage::Cancelled => Step::GoLive,
        }
    }

    fn of(kind: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.kinds().contains(&kind))
    }
}

/// Whether `kind` is a form of this page (a public v1 command, or the probe).
pub fn is_form_kind(kind: &str) -> bool {
    Step::of(kind).is_some()
}

/// The heading of a command's form.
pub fn form_title(kind: &str) -> &'static str {
    match kind {
        "confirm_prerequisites" => "Confirm prerequisites",
        "register_application" => "Register the GitLab application",
        "provide_application_secret" => "Provide the application secret",
        "set_instance_url" => "Set the instance URL",
        "provide_access_token" => "Provide the access token",
        "submit_information" => "Submit the information",
        "evaluate_network_policy" => "Evaluate the network policy",
        "establish_vpc_peering" => "Record VPC peering",
        "establish_vpn" => "Record a VPN",
        "configure_firewall" => "Record the firewall configuration",
        "issue_webhook_credentials" => "Issue webhook credentials",
        "create_webhook" => "Record the webhook created in GitLab",
        PROBE => "Run the GitLab probe",
        CHECK => "Check with GitLab's API",
        "record_api_check" => "Record an API check",
        "record_manual_test" => "Record a manual test",
        "validate_response" => "Validate the Droid's response",
        "report_feedback" => "Report feedback",
        "resolve_feedback" => "Resolve feedback",
        "schedule_go_live" => "Schedule the go-live date",
        "go_live" => "Go live",
        "complete_monitoring" => "Complete monitoring",
        "assign_owner" => "Assign the owner",
        "add_note" => "Add a note",
        "block" => "Block",
        "unblock" => "Unblock",
        "rotate_credential" => "Rotate a credential",
        "cancel" => "Cancel the onboarding",
        _ => "Command",
    }
}

/// The anchor of a command's form on the integration page (`#form-register_application`).
pub fn form_anchor(kind: &str) -> String {
    format!("form-{kind}")
}

/// What the page needs to draw the forms.
pub struct Forms<'a> {
    pub session: &'a Session,
    pub state: &'a Integration,
    /// The form whose submission was just refused: its step is shown open.
    pub refused_kind: Option<&'a str>,
}

/// Scopes offered as checkboxes besides the playbook's required ones.
const OFFERED_SCOPES: [&str; 4] = ["read_api", "write_registry", "admin_mode", "openid"];

impl Forms<'_> {
    /// Every form, grouped by step; the current step (and a refused form's step) open.
    pub fn render(&self) -> Markup {
        let current = Step::current(self.state.stage);
        let refused_step = self.refused_kind.and_then(Step::of);
        html! {
            section id="commands" aria-labelledby="commands-heading" {
                h2 id="commands-heading" { "Record what happened" }
                p { "Each form records one step of the guide as " strong { (self.session.principal.actor) } ". "
                    "Secrets you type are sealed on arrival and never shown again. A form filled in before someone else recorded something is refused: reload and check first." }
                @for step in Step::ALL {
                    details id=(step.id()) class="step" open[step == current || Some(step) == refused_step] {
                        summary { (step.title()) }
                        div class="step-forms" {
                            @for kind in step.kinds() { (self.form(kind)) }
                        }
                    }
                }
            }
        }
    }

    fn frame(&self, kind: &str, help: Markup, fields: Markup, button: &str) -> Markup {
        let anchor = form_anchor(kind);
        let heading = format!("{anchor}-heading");
        html! {
            form id=(anchor) class="command stack" method="post" action={ "/integrations/" (self.state.id) "/commands" }
                aria-labelledby=(heading) {
                h3 id=(heading) { (form_title(kind)) }
                (help)
                input type="hidden" name="csrf" value=(self.session.csrf);
                input type="hidden" name="type" value=(kind);
                input type="hidden" name="expected_version" value=(self.state.version);
                (fields)
                div { button type="submit" { (button) } }
            }
        }
    }

    /// An input id unique on the page: the form's type and the field's name.
    fn id(kind: &str, name: &str) -> String {
        format!("{kind}-{name}")
    }

    fn checkbox(kind: &str, name: &str, label: &str, checked: bool) -> Markup {
        let id = Self::id(kind, name);
        html! {
            div class="check" {
                input id=(id) name=(name) type="checkbox" value="true" checked[checked];
                label for=(id) { (label) }
            }
        }
    }

    fn text(kind: &str, name: &str, label: &str, value: Option<&str>, required: bool) -> Markup {
        let id = Self::id(kind, name);
        html! {
            label for=(id) { (label) }
            input id=(id) name=(name) value=[value] required[required] autocomplete="off";
        }
    }

    fn textarea(kind: &str, name: &str, label: &str, required: bool) -> Markup {
        let id = Self::id(kind, name);
        html! {
            label for=(id) { (label) }
            textarea id=(id) name=(name) rows="3" required[required] {}
        }
    }

    fn secret(kind: &str, name: &str, label: &str, required: bool) -> Markup {
        let id = Self::id(kind, name);
        html! {
            label for=(id) { (label) }
            input id=(id) name=(name) type="password" autocomplete="new-password" required[required];
        }
    }

    fn select(kind: &str, name: &str, label: &str, options: &[(String, String)]) -> Markup {
        let id = Self::id(kind, name);
        html! {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, text) in options { option value=(value) { (text) } }
            }
        }
    }

    fn scenario_options(&self) -> Vec<(String, String)> {
        let scenarios: Vec<Scenario> = if self.state.playbook.scenarios.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            self.state.playbook.scenarios.iter().copied().collect()
        };
        scenarios
            .iter()
            .map(|s| (s.as_str().to_owned(), format!("{} ({})", humanize(s.as_str()), s.description())))
            .collect()
    }

    fn form(&self, kind: &str) -> Markup {
        let state = self.state;
        let playbook = &state.playbook;
        let facts = &state.facts;
        match kind {
            "confirm_prerequisites" => self.frame(
                kind,
                html! { p class="help" { "Tick what the customer confirmed; an unticked box is recorded as not yet." } },
                html! {
                    (Self::checkbox(kind, "gitlab_admin_access", "The customer has GitLab admin access", false))
                    (Self::checkbox(kind, "network_access", "Network access between GitLab and Factory's AWS VPC is possible", false))
                    (Self::checkbox(kind, "factory_admin_account", "The customer has a Factory account with admin privileges", false))
                },
                "Record prerequisites",
            ),
            "register_application" => {
                let registered = facts.application.as_ref();
                let required: Vec<&str> = playbook.required_scopes.iter().map(|s| s.as_str()).collect();
                let mut offered = required.clone();
                offered.extend(OFFERED_SCOPES.iter().filter(|s| !required.contains(s)));
                let checked = |scope: &str| match registered {
                    Some(app) => app.scopes.iter().any(|s| s.as_str() == scope),
                    None => required.contains(&scope),
                };
                self.frame(
                    kind,
                    html! { p class="help" { "What the customer's GitLab showed after registering the application (Admin Area → Applications)." } },
                    html! {
                        (Self::text(kind, "name", "Application name", Some(playbook.application_name.as_str()), true))
                        (Self::text(kind, "redirect_uri", "Redirect URI", Some(playbook.redirect_uri.as_str()), true))
                        (Self::text(kind, "application_id", "Application ID", registered.map(|a| a.application_id.as_str()), true))
                        fieldset {
                            legend { "Scopes granted to the application" }
                            @for scope in &offered {
                                div class="check" {
                                    input id={ (kind) "-scope-" (scope) } name="scopes" type="checkbox" value=(scope) checked[checked(scope)];
                                    label for={ (kind) "-scope-" (scope) } { (scope) }
                                }
                            }
                            (Self::text(kind, "other_scopes", "Other scopes (comma-separated)", None, false))
                        }
                    },
                    "Record the application",
                )
            }
            "provide_application_secret" => self.frame(
                kind,
                html! { p class="help" { "Sealed on arrival; golive shows only its fingerprint. The customer intake link above avoids handling it yourself." } },
                Self::secret(kind, "secret", "Application secret", true),
                "Provide the secret",
            ),
            "set_instance_url" => self.frame(
                kind,
                html! { p class="help" { "A new URL makes credentials given for the old one unusable until they are provided again." } },
                html! {
                    (Self::text(kind, "gitlab_url", "Instance URL", Some(facts.instance.gitlab_url.as_str()), true))
                    (Self::textarea(kind, "ca_certificate_pem", "Internal CA certificate (PEM, optional)", false))
                    (Self::text(kind, "ssh_port", "SSH port (optional, default 22)", None, false))
                },
                "Set the instance URL",
            ),
            "provide_access_token" => self.frame(
                kind,
                html! { p class="help" { "An access token of a GitLab administrator; sealed on arrival." } },
                html! {
                    (Self::secret(kind, "token", "Access token", true))
                    (Self::checkbox(kind, "admin", "The token belongs to a GitLab administrator", true))
                },
                "Provide the token",
            ),
            "submit_information" => self.frame(
                kind,
                html! { p class="help" { "Marks the information as complete; the checklist shows what is still missing." } },
                html! {},
                "Submit the information",
            ),
            "evaluate_network_policy" => self.frame(
                kind,
                html! { p class="help" { "Barriers found in the customer's network policy, one per line (none is fine)." } },
                html! {
                    (Self::textarea(kind, "barriers", "Barriers (one per line)", false))
                    (Self::text(kind, "notes", "Notes (optional)", None, false))
                },
                "Record the evaluation",
            ),
            "establish_vpc_peering" => self.frame(
                kind,
                html! { p class="help" { "AWS ids: pcx- or vpc- followed by 8 or 17 hexadecimal digits." } },
                html! {
                    (Self::text(kind, "peering_id", "Peering connection id (pcx-…)", None, true))
                    (Self::text(kind, "customer_vpc_id", "Customer VPC id (vpc-…)", None, true))
                    (Self::text(kind, "factory_vpc_id", "Factory VPC id (vpc-…)", None, true))
                    (Self::checkbox(kind, "route_tables_configured", "Route tables are configured", false))
                },
                "Record VPC peering",
            ),
            "establish_vpn" => self.frame(
                kind,
                html! { p class="help" { "The latest connectivity method recorded is the one that counts." } },
                html! {
                    (Self::checkbox(kind, "tunnel_established", "The tunnel is established", false))
                    (Self::checkbox(kind, "ipsec_compatible", "The IPsec settings are compatible", false))
                    (Self::text(kind, "notes", "Notes (optional)", None, false))
                },
                "Record the VPN",
            ),
            "configure_firewall" => self.frame(
                kind,
                html! {},
                html! {
                    (Self::checkbox(kind, "outbound_https", "Outbound HTTPS is allowed", false))
                    (Self::checkbox(kind, "outbound_ssh", "Outbound SSH is allowed", false))
                    (Self::checkbox(kind, "webhook_endpoint_reachable", "golive's webhook endpoint is reachable", false))
                },
                "Record the firewall",
            ),
            "issue_webhook_credentials" => match &facts.webhook_credentials {
                Some(credentials) => html! {
                    div id=(form_anchor(kind)) class="command" {
                        h3 { (form_title(kind)) }
                        p { "Credentials were issued for " code { (credentials.webhook_url) } ". Their secret token was shown once; to replace it, "
                            a href={ "#" (form_anchor("rotate_credential")) } { "rotate the webhook token" } "." }
                    }
                },
                None => self.frame(
                    kind,
                    html! { p class="help" { "golive generates the webhook URL and a secret token for GitLab. The token is shown once, on the next page." } },
                    Self::checkbox(kind, "signing", "Also issue a signing key (Standard Webhooks)", false),
                    "Issue credentials",
                ),
            },
            "create_webhook" => {
                let url = facts
                    .webhook
                    .as_ref()
                    .map(|w| w.url.as_str())
                    .or(facts.webhook_credentials.as_ref().map(|c| c.webhook_url.as_str()));
                let checked = |trigger: Trigger| match &facts.webhook {
                    Some(webhook) => webhook.triggers.contains(&trigger),
                    None => playbook.required_triggers.contains(&trigger),
                };
                self.frame(
                    kind,
                    html! { p class="help" { "The webhook as the customer created it in GitLab (Settings → Webhooks). " code { "ci_cd" } " is GitLab's \"Pipeline events\"." } },
                    html! {
                        (Self::text(kind, "url", "Webhook URL", url, true))
                        fieldset {
                            legend { "Triggers" }
                            @for trigger in Trigger::ALL {
                                div class="check" {
                                    input id={ (kind) "-trigger-" (trigger.as_str()) } name="triggers" type="checkbox" value=(trigger.as_str()) checked[checked(trigger)];
                                    label for={ (kind) "-trigger-" (trigger.as_str()) } { (trigger.as_str()) }
                                }
                            }
                        }
                    },
                    "Record the webhook",
                )
            }
            CHECK => self.frame(
                kind,
                html! { p class="help" { "golive reads the application and the webhook from GitLab with the customer's token, and can ask GitLab to send a test delivery per trigger (announced before, recorded after). Results appear below as they arrive; what GitLab says decides the items it checks." } },
                html! {
                    (Self::checkbox(kind, "application", "The application (name, callback URL, confidential)", true))
                    (Self::checkbox(kind, "webhook", "The webhook (where it lives, triggers, SSL verification)", true))
                    (Self::checkbox(kind, "test_deliveries", "Test deliveries (GitLab sends one per required trigger)", true))
                    (Self::text(kind, "group_id", "GitLab group id of the webhook (optional; default: search)", None, false))
                    (Self::text(kind, "project_id", "GitLab project id of the webhook (optional)", None, false))
                    @if self.session.principal.role >= Role::Admin {
                        fieldset {
                            legend { "Scenario run (admin): writes to the customer's GitLab" }
                            (Self::checkbox(kind, "scenarios", "Perform the scenarios (a scratch project in the webhook's group, deleted afterwards)", false))
                            (Self::text(kind, "scenario_project_id", "Perform them in this project instead (numeric id, optional)", None, false))
                            (Self::checkbox(kind, "keep_scratch_project", "Keep the scratch project afterwards", false))
                            (Self::text(kind, "droid_username", "The Droid's GitLab username, to watch for its comment (optional)", None, false))
                        }
                    }
                },
                "Run the checks",
            ),
            PROBE => self.frame(
                kind,
                html! { p class="help" { "Checks connectivity, the token's scopes and admin rights against the instance now, with the access token on record. A failure is recorded as a finding." } },
                html! {},
                "Run the probe",
            ),
            "record_api_check" => self.frame(
                kind,
                html! {},
                html! {
                    (Self::checkbox(kind, "ok", "The API call succeeded", false))
                    (Self::text(kind, "detail", "Detail (optional)", None, false))
                },
                "Record the check",
            ),
            "record_manual_test" => self.frame(
                kind,
                html! {},
                html! {
                    (Self::select(kind, "scenario", "Scenario", &self.scenario_options()))
                    (Self::checkbox(kind, "passed", "The test passed", false))
                    (Self::text(kind, "note", "Note", None, true))
                },
                "Record the test",
            ),
            "validate_response" => self.frame(
                kind,
                html! { p class="help" { "An incorrect response opens a feedback item. Give evidence or a note." } },
                html! {
                    (Self::select(kind, "scenario", "Scenario", &self.scenario_options()))
                    (Self::checkbox(kind, "correct", "The Droid's response was correct", false))
                    (Self::text(kind, "evidence", "Evidence (a link, a comment)", None, false))
                    (Self::text(kind, "note", "Note", None, false))
                },
                "Record the validation",
            ),
            "report_feedback" => self.frame(
                kind,
                html! {},
                Self::textarea(kind, "summary", "Summary", true),
                "Report feedback",
            ),
            "resolve_feedback" => {
                let open: Vec<(String, String)> =
                    state.open_feedback().map(|f| (f.id.to_string(), f.summary.as_str().to_owned())).collect();
                if open.is_empty() {
                    html! {
                        div id=(form_anchor(kind)) class="command" {
                            h3 { (form_title(kind)) }
                            p { "No open feedback item." }
                        }
                    }
                } else {
                    self.frame(
                        kind,
                        html! {},
                        html! {
                            (Self::select(kind, "feedback_id", "Feedback item", &open))
                            (Self::textarea(kind, "resolution", "Resolution", true))
                        },
                        "Resolve",
                    )
                }
            }
            "schedule_go_live" => {
                let id = Self::id(kind, "date");
                self.frame(
                    kind,
                    html! { p class="help" { "A UTC date. Going live needs the date reached and no open feedback." } },
                    html! {
                        label for=(id) { "Go-live date (UTC)" }
                        input id=(id) name="date" type="date" required value=[state.go_live_date.as_ref().map(|d| d.to_string())];
                    },
                    "Schedule",
                )
            }
            "go_live" => self.frame(
                kind,
                html! { p class="help" { "Needs stage Validated, the go-live date reached and no open feedback. Starts the monitoring window." } },
                html! {},
                "Go live",
            ),
            "complete_monitoring" => self.frame(
                kind,
                html! { p class="help" { "Once the monitoring window has passed." } },
                html! {},
                "Complete monitoring",
            ),
            "assign_owner" => self.frame(
                kind,
                html! {},
                Self::text(kind, "owner", "Owner", state.owner.as_ref().map(|o| o.as_str()), true),
                "Assign",
            ),
            "add_note" => self.frame(kind, html! {}, Self::textarea(kind, "text", "Note", true), "Add the note"),
            "block" => {
                let categories: Vec<(String, String)> = ["api_failure", "permission_denied", "webhook_not_received", "other"]
                    .iter()
                    .map(|c| ((*c).to_owned(), humanize(c)))
                    .collect();
                self.frame(
                    kind,
                    html! {},
                    html! {
                        (Self::select(kind, "category", "Category", &categories))
                        (Self::textarea(kind, "detail", "What is wrong", true))
                    },
                    "Block",
                )
            }
            "unblock" => self.frame(
                kind,
                html! {},
                Self::textarea(kind, "resolution", "How it was resolved", true),
                "Unblock",
            ),
            "rotate_credential" => {
                let credentials: Vec<(String, String)> =
                    [Credential::ApplicationSecret, Credential::AccessToken, Credential::WebhookToken]
                        .iter()
                        .map(|c| (c.as_str().to_owned(), humanize(c.as_str())))
                        .collect();
                let admin = [
                    (String::new(), "Not stated".to_owned()),
                    ("true".to_owned(), "Yes".to_owned()),
                    ("false".to_owned(), "No".to_owned()),
                ];
                self.frame(
                    kind,
                    html! { p class="help" { "Without a new secret, the credential becomes missing. A new webhook token is generated by golive and shown once." } },
                    html! {
                        (Self::select(kind, "credential", "Credential", &credentials))
                        (Self::secret(kind, "secret", "New secret (optional; not for the webhook token)", false))
                        (Self::select(kind, "admin", "A new access token belongs to an admin", &admin))
                    },
                    "Rotate",
                )
            }
            "cancel" => self.frame(
                kind,
                html! { p class="help" { "Final: every later command is refused. Type the customer's name to confirm." } },
                html! {
                    (Self::textarea(kind, "reason", "Reason", true))
                    (Self::text(kind, "confirm_customer", &format!("Type \"{}\" to confirm", state.customer), None, true))
                },
                "Cancel the onboarding",
            ),
            other => html! { p { "No form for " (other) "." } },
        }
    }
}

fn trimmed(fields: &Fields, name: &str) -> String {
    field(fields, name).trim().to_owned()
}

fn optional(fields: &Fields, name: &str) -> Option<String> {
    Some(trimmed(fields, name)).filter(|v| !v.is_empty())
}

fn flag(fields: &Fields, name: &str) -> bool {
    field(fields, name) == "true"
}

fn every(fields: &Fields, name: &str) -> Vec<String> {
    fields.get(name).into_iter().flatten().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()
}

fn lines(fields: &Fields, name: &str) -> Vec<String> {
    field(fields, name).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// A secret as typed: only the line break a paste may bring is dropped (a secret's own spaces
/// are its own).
fn secret_field(fields: &Fields, name: &str) -> String {
    field(fields, name).trim_end_matches(['\r', '\n']).to_owned()
}

fn with_optional(mut body: Value, fields: &Fields, names: &[&str]) -> Value {
    for name in names {
        if let Some(value) = optional(fields, name) {
            body[*name] = json!(value);
        }
    }
    body
}

/// The v1 command body for a submitted form: the same shapes `cli::verbs` builds. Empty texts
/// are passed on, so the domain's own validation names what is missing.
pub fn command_body(kind: &str, fields: &Fields) -> Result<Value, String> {
    Ok(match kind {
        "confirm_prerequisites" => json!({
            "type": kind,
            "gitlab_admin_access": flag(fields, "gitlab_admin_access"),
            "network_access": flag(fields, "network_access"),
            "factory_admin_account": flag(fields, "factory_admin_account"),
        }),
        "register_application" => {
            let mut scopes = every(fields, "scopes");
            for scope in field(fields, "other_scopes").split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty())
            {
                if !scopes.iter().any(|s| s == scope) {
                    scopes.push(scope.to_owned());
                }
            }
            json!({
                "type": kind,
                "name": trimmed(fields, "name"),
                "redirect_uri": trimmed(fields, "redirect_uri"),
                "application_id": trimmed(fields, "application_id"),
                "scopes": scopes,
            })
        }
        "provide_application_secret" => json!({"type": kind, "secret": secret_field(fields, "secret")}),
        "set_instance_url" => {
            let mut body = json!({"type": kind, "gitlab_url": trimmed(fields, "gitlab_url")});
            let pem = field(fields, "ca_certificate_pem").replace("\r\n", "\n");
            if !pem.trim().is_empty() {
                body["ca_certificate_pem"] = json!(pem.trim().to_owned() + "\n");
            }
            if let Some(port) = optional(fields, "ssh_port") {
                let port: u32 = port
                    .parse()
                    .map_err(|_| format!("The SSH port {port:?} is not a whole number from 1 to 65535."))?;
                body["ssh_port"] = json!(port);
            }
            body
        }
        "provide_access_token" => {
            json!({"type": kind, "token": secret_field(fields, "token"), "admin": flag(fields, "admin")})
        }
        "submit_information" | "go_live" | "complete_monitoring" => json!({"type": kind}),
        "evaluate_network_policy" => {
            with_optional(json!({"type": kind, "barriers": lines(fields, "barriers")}), fields, &["notes"])
        }
        "establish_vpc_peering" => json!({
            "type": kind,
            "peering_id": trimmed(fields, "peering_id"),
            "customer_vpc_id": trimmed(fields, "customer_vpc_id"),
            "factory_vpc_id": trimmed(fields, "factory_vpc_id"),
            "route_tables_configured": flag(fields, "route_tables_configured"),
        }),
        "establish_vpn" => with_optional(
            json!({
                "type": kind,
                "tunnel_established": flag(fields, "tunnel_established"),
                "ipsec_compatible": flag(fields, "ipsec_compatible"),
            }),
            fields,
            &["notes"],
        ),
        "configure_firewall" => json!({
            "type": kind,
            "outbound_https": flag(fields, "outbound_https"),
            "outbound_ssh": flag(fields, "outbound_ssh"),
            "webhook_endpoint_reachable": flag(fields, "webhook_endpoint_reachable"),
        }),
        "issue_webhook_credentials" => json!({"type": kind, "signing": flag(fields, "signing")}),
        "create_webhook" => json!({"type": kind, "url": trimmed(fields, "url"), "triggers": every(fields, "triggers")}),
        "record_api_check" => with_optional(json!({"type": kind, "ok": flag(fields, "ok")}), fields, &["detail"]),
        "record_manual_test" => json!({
            "type": kind,
            "scenario": trimmed(fields, "scenario"),
            "passed": flag(fields, "passed"),
            "note": trimmed(fields, "note"),
        }),
        "validate_response" => with_optional(
            json!({"type": kind, "scenario": trimmed(fields, "scenario"), "correct": flag(fields, "correct")}),
            fields,
            &["evidence", "note"],
        ),
        "report_feedback" => json!({"type": kind, "summary": trimmed(fields, "summary")}),
        "resolve_feedback" => json!({
            "type": kind,
            "feedback_id": trimmed(fields, "feedback_id"),
            "resolution": trimmed(fields, "resolution"),
        }),
        "schedule_go_live" => json!({"type": kind, "date": trimmed(fields, "date")}),
        "assign_owner" => json!({"type": kind, "owner": trimmed(fields, "owner")}),
        "add_note" => json!({"type": kind, "text": trimmed(fields, "text")}),
        "block" => json!({"type": kind, "category": trimmed(fields, "category"), "detail": trimmed(fields, "detail")}),
        "unblock" => json!({"type": kind, "resolution": trimmed(fields, "resolution")}),
        "rotate_credential" => {
            let mut body = json!({"type": kind, "credential": trimmed(fields, "credential")});
            let secret = secret_field(fields, "secret");
            if !secret.is_empty() {
                body["secret"] = json!(secret);
            }
            match field(fields, "admin") {
                "true" => body["admin"] = json!(true),
                "false" => body["admin"] = json!(false),
                _ => {}
            }
            body
        }
        "cancel" => json!({"type": kind, "reason": trimmed(fields, "reason")}),
        other => return Err(format!("{other:?} is not a command this page can record.")),
    })
}

/// Why a submitted form was not recorded, in words for the rep.
fn refusal_message(kind: &str, error: EngineError) -> (StatusCode, String) {
    let title = form_title(kind);
    match error {
        EngineError::VersionMismatch { expected, actual, .. } => (
            StatusCode::CONFLICT,
            format!(
                "{title}: not recorded. The form was filled in at version {expected}, but the integration is now at \
                 version {actual}: something was recorded meanwhile. Check the page below, then submit again."
            ),
        ),
        EngineError::Rejected(Rejection::GuardRejected { unmet, .. }) => {
            let labels: Vec<String> = unmet.into_iter().map(|u| u.label).collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{title}: refused, not yet possible. Still missing: {}.", labels.join("; ")),
            )
        }
        EngineError::Rejected(Rejection::InvalidField { field, message }) => (
            StatusCode::BAD_REQUEST,
            format!("{title}: refused. {}: {message}.", humanize(field.trim_start_matches('.'))),
        ),
        other => {
            let problem = Problem::from(other);
            (problem.status, format!("{title}: refused. {}", problem.detail))
        }
    }
}

/// `POST /integrations/{id}/commands`: one form, one command, as the session's actor.
pub async fn submit(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let session = match require_session(&parts, &state).await {
        Ok(session) => session,
        Err(page) => return page.into_response(),
    };
    let fields = match form_fields(body).await {
        Ok(fields) => fields,
        Err(problem) => return error_page(Some(&session), problem.status, &problem.detail).into_response(),
    };
    if let Err(page) = check_form(&parts.headers, &session, &fields).and_then(|_| require_role(&session, Role::Rep)) {
        return page.into_response();
    }
    let Ok(id) = IntegrationId::parse(&id) else {
        return error_page(Some(&session), StatusCode::NOT_FOUND, "There is no such integration.").into_response();
    };
    let kind = field(&fields, "type").to_owned();
    let refuse = |status: StatusCode, message: String| {
        let session = session.clone();
        let state = state.clone();
        let kind = kind.clone();
        async move {
            let notice = super::integration::Notice::Refused { kind: &kind, message: &message };
            super::integration::render(&state, &session, id, None, notice, status).await.into_response()
        }
    };
    if !is_form_kind(&kind) {
        return refuse(StatusCode::BAD_REQUEST, format!("{kind:?} is not a command this page can record.")).await;
    }
    let Ok(expected) = field(&fields, "expected_version").trim().parse::<u64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The form did not say which version of the integration it was filled in on; reload the page.".into(),
        )
        .await;
    };
    let current = match state.engine.state(id).await {
        Ok(current) => current,
        Err(EngineError::NotFound(_)) => {
            return error_page(Some(&session), StatusCode::NOT_FOUND, "There is no such integration.").into_response()
        }
        Err(error) => {
            let problem = Problem::from(error);
            return error_page(Some(&session), problem.status, &problem.detail).into_response();
        }
    };
    // The dashboard's own guards, as the CLI has them: they check the page the rep saw, so a
    // stale page is refused first.
    if current.version != expected {
        let (status, message) =
            refusal_message(&kind, EngineError::VersionMismatch { integration: id, expected, actual: current.version });
        return refuse(status, message).await;
    }
    if kind == "issue_webhook_credentials" && current.facts.webhook_credentials.is_some() {
        return refuse(
            StatusCode::CONFLICT,
            "Issue webhook credentials: refused. Credentials were already issued and GitLab holds their token; \
             issuing again would void it. To replace the token, use Rotate a credential with the webhook token."
                .into(),
        )
        .await;
    }
    if kind == "cancel" && !field(&fields, "confirm_customer").trim().eq_ignore_ascii_case(current.customer.as_str()) {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("Cancel the onboarding: not done. Type the customer's name, {}, to confirm.", current.customer),
        )
        .await;
    }
    if kind == CHECK {
        let mut body = serde_json::json!({});
        let checks: Vec<&str> = ["application", "webhook", "test_deliveries", "scenarios"]
            .into_iter()
            .filter(|name| !field(&fields, name).is_empty())
            .collect();
        if checks.contains(&"scenarios") {
            if let Err(page) = require_role(&session, Role::Admin) {
                return page.into_response();
            }
            if !field(&fields, "keep_scratch_project").is_empty() {
                body["keep_scratch_project"] = serde_json::json!(true);
            }
            let droid = field(&fields, "droid_username").trim();
            if !droid.is_empty() {
                body["droid_username"] = serde_json::json!(droid);
            }
        }
        body["checks"] = serde_json::json!(checks);
        for place in ["group_id", "project_id", "scenario_project_id"] {
            let typed = field(&fields, place).trim();
            if typed.is_empty() {
                continue;
            }
            match typed.parse::<u64>() {
                Ok(number) => body[place] = serde_json::json!(number),
                Err(_) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{}: refused. The {} is GitLab's numeric id.",
                            form_title(&kind),
                            place.replace('_', " ")
                        ),
                    )
                    .await
                }
            }
        }
        let started = match crate::engine::CheckRequest::from_json(body) {
            Ok(request) => state.engine.start_check(id, request, &session.principal.actor).await,
            Err(rejection) => Err(EngineError::Rejected(rejection)),
        };
        return match started {
            Ok(_) => {
                let version = state.engine.state(id).await.map(|s| s.version).unwrap_or(expected);
                Redirect::to(&format!("/integrations/{id}?recorded={expected}-{version}#checks-heading"))
                    .into_response()
            }
            Err(error) => {
                let (status, message) = refusal_message(&kind, error);
                refuse(status, message).await
            }
        };
    }
    let outcome = if kind == PROBE {
        state
            .engine
            .probe(id, &crate::gitlab::probe::ProbeConfig::default(), &session.principal.actor)
            .await
            .map(|(executed, _)| executed)
    } else {
        let body = match command_body(&kind, &fields) {
            Ok(body) => body,
            Err(message) => {
                return refuse(StatusCode::BAD_REQUEST, format!("{}: refused. {message}", form_title(&kind))).await
            }
        };
        let mut execute = ExecuteRequest::new(id, body, session.principal.actor.clone());
        execute.expected_version = Some(expected);
        state.engine.execute(execute).await
    };
    match outcome {
        Ok(executed) if executed.shown.secret_token.is_some() => shown_once(&session, &executed, expected),
        Ok(executed) => {
            let to = format!("/integrations/{id}?recorded={expected}-{}", executed.state.version);
            Redirect::to(&to).into_response()
        }
        Err(error) => {
            let (status, message) = refusal_message(&kind, error);
            refuse(status, message).await
        }
    }
}

/// The answer to a command that generated webhook credentials: the only time the secret token
/// (and a signing key) is shown. The page is never cached (`Cache-Control: no-store`).
fn shown_once(session: &Session, executed: &Executed, before: u64) -> Response {
    let shown = &executed.shown;
    let state = &executed.state;
    let back = format!("/integrations/{}?recorded={before}-{}", state.id, state.version);
    let content = html! {
        h1 { "Webhook credentials for " (state.customer) }
        p role="status" id="shown-once" { "Recorded. Enter these in the customer's GitLab (Settings → Webhooks). "
            strong { "The secret token is shown only now" } ": golive keeps only its hash. Copy it before leaving this page." }
        div class="stack" {
            label for="webhook-url" { "Webhook URL" }
            input id="webhook-url" class="wide" readonly value=(shown.webhook_url.as_deref().unwrap_or(""));
            label for="secret-token" { "Secret token" }
            input id="secret-token" class="wide" readonly value=(shown.secret_token.as_deref().unwrap_or(""));
            @if let Some(key) = &shown.signing_key {
                label for="signing-key" { "Signing key" }
                input id="signing-key" class="wide" readonly value=(key);
            }
        }
        p { a href=(back) { "Back to the integration" } }
    };
    Page::Html(StatusCode::OK, layout("Webhook credentials", Some(session), None, content)).into_response()
}

/// The commands a next step names, in the order it names them: the words in brackets that are
/// command types, as in `(confirm_prerequisites)` or `(provide_access_token or
/// rotate_credential)`, and the probe. Only bracketed words count, so "the api_failure block"
/// names no command.
pub fn commands_named_in(step: &str) -> Vec<&'static str> {
    let mut named = Vec::new();
    for bracketed in step.split('(').skip(1).filter_map(|rest| rest.split(')').next()) {
        for word in bracketed.split(|c: char| !(c.is_ascii_lowercase() || c == '_')) {
            let probe = [PROBE, CHECK];
            let mut known = crate::domain::PUBLIC_COMMAND_TYPES.iter().chain(probe.iter());
            if let Some(kind) = known.find(|kind| **kind == word) {
                if !named.contains(kind) {
                    named.push(*kind);
                }
            }
        }
    }
    named
}

/// A button-styled link to a command's form on this page.
pub fn jump_to_form(kind: &str) -> Markup {
    html! { a class="button" href={ "#" (form_anchor(kind)) } data-form=(kind) { (form_title(kind)) } }
}

/// A next action's button: opens the command's form and fills in the fields golive already
/// knows (the action's `command` without its `type`; never a secret, which golive does not
/// suggest).
pub fn prefilled_button(kind: &str, command: &Value) -> Markup {
    let mut fields = command.clone();
    if let Some(map) = fields.as_object_mut() {
        map.remove("type");
    }
    html! {
        a class="button" href={ "#" (form_anchor(kind)) } data-form=(kind) data-prefill=(fields.to_string()) { (form_title(kind)) }
    }
}

/// For the flash line: the version range a `recorded=A-B` parameter names.
pub fn recorded_range(text: &str) -> Option<(u64, u64)> {
    let (from, to) = text.split_once('-')?;
    let (from, to) = (from.parse::<u64>().ok()?, to.parse::<u64>().ok()?);
    (from < to && to - from <= 64).then_some((from, to))
}
