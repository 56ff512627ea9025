//! The next actions as clients use them (contract): `{label, requirement_ids, cli, command}`.
//!
//! `cli` is a command line a rep can run as it stands, starting with `golive `, with the
//! integration's full id and no global options; where only the rep knows a value it holds an
//! upper-case placeholder from [`PLACEHOLDERS`]. `command` is the v1 command type with the fields
//! golive can fill (`{type, ...}`), or `null` for an action that is not a v1 command (the probe, a
//! delivery from GitLab). The CLI shows the same lines with the reference as the rep typed it
//! ([`with_reference`]); the dashboard shows the same actions as buttons.

use serde_json::{json, Map, Value};

use crate::domain::{CheckKind, Connectivity, Integration, NextAction, Step};

/// Every placeholder a `cli` line may hold, and what the rep puts there. A line holds each at
/// most once.
pub const PLACEHOLDERS: [(&str, &str); 10] = [
    ("FILE", "a file holding the secret (or - for stdin)"),
    ("APPLICATION_ID", "the Application ID GitLab showed"),
    ("URL", "the instance's URL, e.g. https://gitlab.example.com"),
    ("PEERING_ID", "the VPC peering connection's id, pcx-..."),
    ("CUSTOMER_VPC_ID", "the customer's VPC id, vpc-..."),
    ("FACTORY_VPC_ID", "Factory's VPC id, vpc-..."),
    ("HEADERS_FILE", "a file of the delivery's request headers"),
    ("BODY_FILE", "a file of the delivery's request body"),
    ("TEXT", "a few words in quotes"),
    ("YYYY-MM-DD", "a date (UTC)"),
];

/// `text` as one word for a POSIX shell: as it is when it holds only characters no shell treats
/// specially, otherwise in single quotes (a quote inside written `'\''`). For the commands golive
/// suggests, which a rep pastes.
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '=' | '@' | '%' | '+' | ',')
        });
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// A command line under construction: words are quoted as they are added.
struct Line(Vec<String>);

impl Line {
    fn new(verb: &str, id: &str) -> Self {
        let mut words: Vec<String> = ["golive"].into_iter().chain(verb.split(' ')).map(str::to_owned).collect();
        words.push(id.to_owned());
        Line(words)
    }
    fn flag(mut self, name: &str, value: impl AsRef<str>) -> Self {
        let value = value.as_ref();
        if value.starts_with('-') {
            // A recorded value such as an Application ID `-x` would read as a flag of its own;
            // joined to its flag it stays the flag's value.
            self.0.push(format!("{name}={}", shell_quote(value)));
        } else {
            self.0.push(name.to_owned());
            self.0.push(shell_quote(value));
        }
        self
    }
    fn finish(self) -> String {
        self.0.join(" ")
    }
}

fn comma_list(items: impl IntoIterator<Item = impl ToString>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// The `cli` line and the `command` body of one action.
fn words_for(state: &Integration, step: Step) -> (String, Value) {
    let id = state.id.to_string();
    let playbook = &state.playbook;
    let facts = &state.facts;
    let body = |fields: Value| -> Value {
        let mut object = Map::new();
        object.insert("type".into(), json!(command_type(step)));
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        Value::Object(object)
    };
    match step {
        Step::ConfirmPrerequisites => (
            Line::new("prerequisites confirm", &id)
                .flag("--gitlab-admin-access", "true")
                .flag("--network-access", "true")
                .flag("--factory-admin-account", "true")
                .finish(),
            body(json!({"gitlab_admin_access": true, "network_access": true, "factory_admin_account": true})),
        ),
        Step::RegisterApplication => {
            // A recorded Application ID is kept: the rep corrects the rest of the record.
            let application_id = facts.application.as_ref().map(|a| a.application_id.to_string());
            let scopes: Vec<String> = playbook.required_scopes.iter().map(|s| s.to_string()).collect();
            let line = Line::new("app register", &id)
                .flag("--name", playbook.application_name.as_str())
                .flag("--redirect-uri", playbook.redirect_uri.as_str())
                .flag("--application-id", application_id.as_deref().unwrap_or("APPLICATION_ID"))
                .flag("--scopes", comma_list(&scopes))
                .finish();
            let mut fields = json!({
                "name": playbook.application_name,
                "redirect_uri": playbook.redirect_uri,
                "scopes": scopes,
            });
            if let Some(application_id) = application_id {
                fields["application_id"] = json!(application_id);
            }
            (line, body(fields))
        }
        Step::ProvideApplicationSecret => {
            (Line::new("app secret", &id).flag("--secret-file", "FILE").finish(), body(json!({})))
        }
        Step::SetInstanceUrl => (Line::new("instance set", &id).flag("--gitlab-url", "URL").finish(), body(json!({}))),
        Step::ProvideAccessToken => (
            Line::new("access-token provide", &id).flag("--admin", "true").flag("--secret-file", "FILE").finish(),
            body(json!({"admin": true})),
        ),
        Step::SubmitInformation => (Line::new("info submit", &id).finish(), body(json!({}))),
        Step::EvaluateNetworkPolicy => (Line::new("network policy", &id).finish(), body(json!({"barriers": []}))),
        Step::EstablishVpcPeering => {
            // A peering already recorded keeps its ids: only the route tables are missing.
            let recorded = match &facts.connectivity {
                Some(Connectivity::VpcPeering(p)) => Some(p),
                _ => None,
            };
            let peering_id = recorded.map(|p| p.peering_id.as_str().to_owned());
            let customer_vpc_id = recorded.map(|p| p.customer_vpc_id.as_str().to_owned());
            let factory_vpc_id = recorded.map(|p| p.factory_vpc_id.as_str().to_owned());
            let line = Line::new("network peering", &id)
                .flag("--peering-id", peering_id.as_deref().unwrap_or("PEERING_ID"))
                .flag("--customer-vpc-id", customer_vpc_id.as_deref().unwrap_or("CUSTOMER_VPC_ID"))
                .flag("--factory-vpc-id", factory_vpc_id.as_deref().unwrap_or("FACTORY_VPC_ID"))
                .flag("--route-tables-configured", "true")
                .finish();
            let mut fields = json!({"route_tables_configured": true});
            if let Some(p) = recorded {
                fields["peering_id"] = json!(p.peering_id);
                fields["customer_vpc_id"] = json!(p.customer_vpc_id);
                fields["factory_vpc_id"] = json!(p.factory_vpc_id);
            }
            (line, body(fields))
        }
        Step::EstablishVpn => (
            Line::new("network vpn", &id)
                .flag("--tunnel-established", "true")
                .flag("--ipsec-compatible", "true")
                .finish(),
            body(json!({"tunnel_established": true, "ipsec_compatible": true})),
        ),
        Step::ConfigureFirewall => (
            Line::new("network firewall", &id)
                .flag("--outbound-https", "true")
                .flag("--outbound-ssh", "true")
                .flag("--webhook-endpoint-reachable", "true")
                .finish(),
            body(json!({"outbound_https": true, "outbound_ssh": true, "webhook_endpoint_reachable": true})),
        ),
        Step::IssueWebhookCredentials => (Line::new("webhook issue", &id).finish(), body(json!({}))),
        Step::RotateWebhookToken => (
            Line::new("rotate", &id).flag("--credential", "webhook_token").finish(),
            body(json!({"credential": "webhook_token"})),
        ),
        Step::CreateWebhook => {
            let triggers: Vec<&str> = playbook.required_triggers.iter().map(|t| t.as_str()).collect();
            let url = facts.webhook_credentials.as_ref().map(|c| c.webhook_url.to_string());
            let line = Line::new("webhook create", &id)
                .flag("--url", url.as_deref().unwrap_or("URL"))
                .flag("--triggers", comma_list(&triggers))
                .finish();
            let mut fields = json!({"triggers": triggers});
            if let Some(url) = url {
                fields["url"] = json!(url);
            }
            (line, body(fields))
        }
        Step::RecordDelivery => (
            Line::new("webhook replay", &id).flag("--headers", "HEADERS_FILE").flag("--body", "BODY_FILE").finish(),
            Value::Null,
        ),
        Step::Probe => (Line::new("probe", &id).finish(), Value::Null),
        Step::Check(kind) => {
            let flag = match kind {
                CheckKind::Application => "--application",
                CheckKind::Webhook => "--webhook",
                CheckKind::TestDeliveries => "--test-deliveries",
                CheckKind::Scenarios => "--scenarios",
            };
            (format!("{} {flag}", Line::new("check", &id).finish()), Value::Null)
        }
        Step::RecordApiCheck => (
            Line::new("test api", &id).flag("--ok", "true").flag("--detail", "TEXT").finish(),
            body(json!({"ok": true})),
        ),
        Step::RecordManualTest(scenario) => (
            Line::new("test manual", &id)
                .flag("--scenario", scenario.as_str())
                .flag("--passed", "true")
                .flag("--note", "TEXT")
                .finish(),
            body(json!({"scenario": scenario, "passed": true})),
        ),
        Step::ValidateResponse(scenario) => (
            Line::new("validate", &id)
                .flag("--scenario", scenario.as_str())
                .flag("--correct", "true")
                .flag("--evidence", "TEXT")
                .finish(),
            body(json!({"scenario": scenario, "correct": true})),
        ),
        Step::ResolveFeedback(feedback_id) => (
            Line::new("feedback resolve", &id)
                .flag("--feedback-id", feedback_id.to_string())
                .flag("--resolution", "TEXT")
                .finish(),
            body(json!({"feedback_id": feedback_id})),
        ),
        Step::Unblock => (Line::new("unblock", &id).flag("--resolution", "TEXT").finish(), body(json!({}))),
        Step::ScheduleGoLive => {
            (Line::new("launch schedule", &id).flag("--date", "YYYY-MM-DD").finish(), body(json!({})))
        }
        Step::GoLive => (Line::new("launch go", &id).finish(), body(json!({}))),
        Step::CompleteMonitoring => (Line::new("launch complete", &id).finish(), body(json!({}))),
    }
}

/// The v1 command type that records a step, or `None` for the steps that are not v1 commands.
pub fn command_type(step: Step) -> Option<&'static str> {
    Some(match step {
        Step::ConfirmPrerequisites => "confirm_prerequisites",
        Step::RegisterApplication => "register_application",
        Step::ProvideApplicationSecret => "provide_application_secret",
        Step::SetInstanceUrl => "set_instance_url",
        Step::ProvideAccessToken => "provide_access_token",
        Step::SubmitInformation => "submit_information",
        Step::EvaluateNetworkPolicy => "evaluate_network_policy",
        Step::EstablishVpcPeering => "establish_vpc_peering",
        Step::EstablishVpn => "establish_vpn",
        Step::ConfigureFirewall => "configure_firewall",
        Step::IssueWebhookCredentials => "issue_webhook_credentials",
        Step::RotateWebhookToken => "rotate_credential",
        Step::CreateWebhook => "create_webhook",
        Step::RecordDelivery | Step::Probe | Step::Check(_) => return None,
        Step::RecordApiCheck => "record_api_check",
        Step::RecordManualTest(_) => "record_manual_test",
        Step::ValidateResponse(_) => "validate_response",
        Step::ResolveFeedback(_) => "resolve_feedback",
        Step::Unblock => "unblock",
        Step::ScheduleGoLive => "schedule_go_live",
        Step::GoLive => "go_live",
        Step::CompleteMonitoring => "complete_monitoring",
    })
}

/// One action as JSON.
pub fn action(state: &Integration, action: &NextAction) -> Value {
    let (cli, command) = words_for(state, action.step);
    json!({
        "label": action.label,
        "requirement_ids": action.requirements.iter().map(|r| r.id()).collect::<Vec<_>>(),
        "cli": cli,
        "command": command,
    })
}

/// A `cli` line with the integration's full id replaced by the reference as the rep typed it,
/// shell-quoted. Only the word that is the id is replaced (a URL holding the id keeps it).
pub fn with_reference(cli: &str, full_id: &str, reference: &str) -> String {
    let mut replaced = false;
    cli.split(' ')
        .map(|word| {
            if !replaced && word == full_id {
                replaced = true;
                shell_quote(reference)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_that_looks_like_a_flag_stays_its_flag_s_value() {
        let line = Line::new("app register", "id").flag("--application-id", "--server=http://x").flag("--name", "a b");
        assert_eq!(line.finish(), "golive app register id --application-id=--server=http://x --name 'a b'");
    }

    #[test]
    fn only_the_word_that_is_the_id_takes_the_reference() {
        let id = "4fe4ae68-eb80-4c14-a532-2bc372c2e81d";
        let cli = format!("golive webhook create {id} --url https://g.example/hooks/gitlab/{id}");
        assert_eq!(
            with_reference(&cli, id, "acme robotics"),
            format!("golive webhook create 'acme robotics' --url https://g.example/hooks/gitlab/{id}")
        );
    }
}
