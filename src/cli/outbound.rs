//! `golive subscription …` and `golive notification …`: outbound event subscriptions and
//! notification rules, and an integration's notification journal.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{CliError, Client, OutboundCall};
use super::output::{print_json, table, text};

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Register an endpoint that receives every matching event, signed per Standard Webhooks
    /// (admin). Prints the signing secret once.
    Add {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// Where golive POSTs each event (the egress policy applies: see --probe-allow).
        #[arg(long)]
        url: String,
        /// Only these event types (repeatable; default every type).
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        /// Only these integrations' events (repeatable: an id, an id prefix or a customer name;
        /// default every integration).
        #[arg(long = "integration")]
        integrations: Vec<String>,
        /// The first log position to deliver (1: the whole log); default the next event.
        #[arg(long)]
        from: Option<u64>,
    },
    /// Every subscription with its checkpoint, lag and health.
    List,
    /// One subscription, with its dead letters.
    Show {
        /// The subscription: its id, a unique id prefix of 6 or more characters, or its name.
        id: String,
    },
    /// Remove a subscription: nothing more is delivered and its secret is shredded.
    Remove {
        /// The subscription: its id, a unique id prefix of 6 or more characters, or its name.
        id: String,
    },
    /// Stop delivering (the checkpoint stays).
    Pause {
        /// The subscription's id.
        id: String,
    },
    /// Deliver again from the checkpoint.
    Resume {
        /// The subscription's id.
        id: String,
    },
    /// Deliver again from a log position (receivers see repeats with their original webhook-id).
    Replay {
        /// The subscription's id.
        id: String,
        /// The first position to deliver again.
        #[arg(long)]
        from: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotificationCommand {
    /// Notification rules (what to announce, for whose integrations, where).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// An integration's notification journal: every message sent, failed or given up.
    List {
        /// The integration (id, id prefix or customer name).
        integration: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule (admin).
    Add {
        /// A name for people, shown in every message the rule sends.
        #[arg(long)]
        name: String,
        /// Only integrations of these owners (repeatable; a team is its owners); default every owner.
        #[arg(long = "owner")]
        owners: Vec<String>,
        /// A cause (repeatable): blocked, stalled=DAYS, probe_failing, intake_submitted,
        /// go_live_tomorrow, webhook_silent=HOURS.
        #[arg(long = "on", required = true)]
        on: Vec<String>,
        /// A file holding a Slack-compatible incoming webhook URL (a secret: never on the
        /// command line).
        #[arg(long, conflicts_with = "email", required_unless_present = "email")]
        slack_url_file: Option<PathBuf>,
        /// E-mail these addresses through the server's SMTP relay (repeatable).
        #[arg(long)]
        email: Vec<String>,
    },
    /// Every rule.
    List,
    /// Remove a rule (admin).
    Remove {
        /// The rule's id (from `golive notification rule list`).
        id: String,
    },
}

pub async fn subscription(client: &dyn Client, command: &SubscriptionCommand, json_out: bool) -> Result<(), CliError> {
    let answer = match command {
        SubscriptionCommand::Add { name, url, event_types, integrations, from } => {
            // Integration references resolve as everywhere else in the CLI.
            let mut ids = Vec::with_capacity(integrations.len());
            for reference in integrations {
                ids.push(client.state(reference).await?["id"].clone());
            }
            let integrations = ids;
            let body = json!({
                "name": name, "url": url, "event_types": event_types, "integrations": integrations,
                "from_position": from,
            });
            let added = client.outbound(OutboundCall::AddSubscription(body)).await?;
            if json_out {
                print_json(&added);
            } else {
                let subscription = &added["subscription"];
                println!(
                    "subscription {} added; delivering from position {}",
                    text(&subscription["id"]),
                    subscription["checkpoint"].as_u64().unwrap_or(0) + 1
                );
                println!("signing secret (shown once; the receiver verifies webhook-signature with it):");
                println!("{}", text(&added["secret"]));
            }
            return Ok(());
        }
        SubscriptionCommand::List => {
            let list = client.outbound(OutboundCall::ListSubscriptions).await?;
            if json_out {
                print_json(&list);
            } else {
                let mut t =
                    table(&["ID", "NAME", "URL", "STATUS", "CHECKPOINT", "LAG", "DELIVERED", "RETRIES", "DEAD"]);
                for s in list.as_array().into_iter().flatten() {
                    t.add_row(vec![
                        text(&s["id"]),
                        text(&s["name"]),
                        text(&s["url"]),
                        text(&s["status"]),
                        text(&s["checkpoint"]),
                        text(&s["lag"]),
                        text(&s["delivered"]),
                        text(&s["retries"]),
                        text(&s["dead_lettered"]),
                    ]);
                }
                println!("{t}");
            }
            return Ok(());
        }
        SubscriptionCommand::Show { id } => {
            client.outbound(OutboundCall::ShowSubscription(subscription_id(client, id).await?)).await?
        }
        SubscriptionCommand::Remove { id } => {
            let id = subscription_id(client, id).await?;
            let removed = client.outbound(OutboundCall::RemoveSubscription(id.clone())).await?;
            if json_out {
                print_json(&removed);
            } else {
                println!("subscription {id} removed");
            }
            return Ok(());
        }
        SubscriptionCommand::Pause { id } => {
            client.outbound(OutboundCall::PauseSubscription(subscription_id(client, id).await?)).await?
        }
        SubscriptionCommand::Resume { id } => {
            client.outbound(OutboundCall::ResumeSubscription(subscription_id(client, id).await?)).await?
        }
        SubscriptionCommand::Replay { id, from } => {
            client.outbound(OutboundCall::ReplaySubscription(subscription_id(client, id).await?, *from)).await?
        }
    };
    if json_out {
        print_json(&answer);
    } else {
        describe_subscription(&answer);
    }
    Ok(())
}

/// A subscription named by its id, a unique id prefix of 6 or more characters, or its name
/// (case-insensitive): exit 3 when none matches, 2 when several do.
async fn subscription_id(client: &dyn Client, reference: &str) -> Result<String, CliError> {
    let reference = reference.trim();
    if uuid::Uuid::parse_str(reference).is_ok() {
        return Ok(reference.to_owned());
    }
    let list = client.outbound(OutboundCall::ListSubscriptions).await?;
    let folded = reference.to_lowercase();
    let matches: Vec<(String, String)> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            let id = s["id"].as_str().unwrap_or_default();
            let name = s["name"].as_str().unwrap_or_default();
            name.to_lowercase() == folded || (folded.len() >= 6 && id.starts_with(&folded))
        })
        .map(|s| (text(&s["id"]), text(&s["name"])))
        .collect();
    match matches.as_slice() {
        [(id, _)] => Ok(id.clone()),
        [] => Err(CliError::failed(
            crate::error_kind::ErrorKind::NotFound,
            format!("no subscription {reference:?}: see `golive subscription list`"),
        )),
        several => Err(CliError::Usage(format!(
            "{reference:?} names several subscriptions: {}",
            several.iter().map(|(id, name)| format!("{id} ({name})")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn describe_subscription(s: &Value) {
    println!("subscription {} ({})", text(&s["id"]), text(&s["name"]));
    println!("  url:        {}", text(&s["url"]));
    let types: Vec<String> = s["filter"]["event_types"].as_array().into_iter().flatten().map(text).collect();
    let integrations: Vec<String> = s["filter"]["integrations"].as_array().into_iter().flatten().map(text).collect();
    println!(
        "  filter:     {}; {}",
        if types.is_empty() { "every event type".to_owned() } else { types.join(", ") },
        if integrations.is_empty() { "every integration".to_owned() } else { integrations.join(", ") }
    );
    println!("  status:     {}", text(&s["status"]));
    println!("  checkpoint: {} (lag {})", text(&s["checkpoint"]), text(&s["lag"]));
    println!(
        "  delivered:  {}, retries {}, dead letters {}",
        text(&s["delivered"]),
        text(&s["retries"]),
        text(&s["dead_lettered"])
    );
    if let Some(failure) = s["last_failure"].as_str() {
        println!("  last failure: {failure} (retry at {})", text(&s["retry_at"]));
    }
    if let Some(by) = s["delivered_by"].as_str() {
        println!("  delivered by replica {by}");
    }
    for letter in s["dead_letters"].as_array().into_iter().flatten() {
        println!(
            "  dead letter: position {} {} after {} attempts: {}",
            text(&letter["position"]),
            text(&letter["event_type"]),
            text(&letter["attempts"]),
            text(&letter["failure"])
        );
    }
}

pub async fn notification(client: &dyn Client, command: &NotificationCommand, json_out: bool) -> Result<(), CliError> {
    match command {
        NotificationCommand::Rule(RuleCommand::Add { name, owners, on, slack_url_file, email }) => {
            let mut causes = Vec::new();
            for word in on {
                let trigger = crate::engine::NotificationTrigger::parse(word)
                    .map_err(|e| CliError::Usage(format!("--on {e}")))?;
                causes.push(json!(trigger));
            }
            let sink = match slack_url_file {
                Some(file) => {
                    let url = super::input::read_secret("the Slack webhook URL", "--slack-url-file", Some(file))?;
                    json!({"kind": "slack", "url": url.trim()})
                }
                None => json!({"kind": "email", "to": email}),
            };
            let body = json!({"name": name, "owners": owners, "on": causes, "sink": sink});
            let rule = client.outbound(OutboundCall::AddRule(body)).await?;
            if json_out {
                print_json(&rule);
            } else {
                println!("rule {} added: {} → {}", text(&rule["id"]), text(&rule["name"]), text(&rule["destination"]));
            }
        }
        NotificationCommand::Rule(RuleCommand::List) => {
            let rules = client.outbound(OutboundCall::ListRules).await?;
            if json_out {
                print_json(&rules);
                return Ok(());
            }
            let mut t = table(&["ID", "NAME", "OWNERS", "ON", "TO"]);
            for r in rules.as_array().into_iter().flatten() {
                let owners: Vec<String> = r["owners"].as_array().into_iter().flatten().map(text).collect();
                let on: Vec<String> = r["on"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| match (c.get("days"), c.get("hours")) {
                        (Some(days), _) => format!("{}={days}", text(&c["kind"])),
                        (_, Some(hours)) => format!("{}={hours}", text(&c["kind"])),
                        _ => text(&c["kind"]),
                    })
                    .collect();
                let owners = if owners.is_empty() { "everyone".to_owned() } else { owners.join(", ") };
                t.add_row(vec![text(&r["id"]), text(&r["name"]), owners, on.join(", "), text(&r["destination"])]);
            }
            println!("{t}");
        }
        NotificationCommand::Rule(RuleCommand::Remove { id }) => {
            let removed = client.outbound(OutboundCall::RemoveRule(id.clone())).await?;
            if json_out {
                print_json(&removed);
            } else {
                println!("rule {id} removed");
            }
        }
        NotificationCommand::List { integration } => {
            let journal = client.outbound(OutboundCall::Journal(integration.clone())).await?;
            if json_out {
                print_json(&journal);
                return Ok(());
            }
            let mut t = table(&["AT", "CAUSE", "RULE", "TO", "OUTCOME", "ATTEMPT", "WHY"]);
            for e in journal.as_array().into_iter().flatten() {
                t.add_row(vec![
                    text(&e["at"]),
                    text(&e["cause"]),
                    text(&e["rule_name"]),
                    text(&e["sink"]),
                    text(&e["outcome"]),
                    text(&e["attempt"]),
                    text(&e["failure"]),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}
