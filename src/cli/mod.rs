//! The `golive` command line: argument parsing and terminal output, thin over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;
use clap::{Parser, Subcommand};

use crate::domain::{HttpUrl, Playbook};
use crate::fixtures::{replay_in_memory, Fixture, FIXTURE_DIR};
use crate::ids::RandomIds;
use crate::secrets::DataKey;

#[derive(Debug, Parser)]
#[command(name = "golive", version, about = "The system of record for self-hosted GitLab onboardings")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay the fixture onboardings in memory and print where each one stands.
    Demo {
        /// The folder holding the journeys.
        #[arg(long, default_value = FIXTURE_DIR)]
        fixtures: PathBuf,
        /// The public URL golive would be reached at (webhook and redirect URLs derive from it).
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        public_url: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Test support: append to a store in a loop, printing each acknowledged append, until
    /// killed. The crash tests SIGKILL it and check that every acknowledged event survived.
    #[command(hide = true)]
    CrashWriter {
        #[arg(long)]
        data_dir: PathBuf,
        /// Streams to spread appends over.
        #[arg(long, default_value_t = 8)]
        streams: u32,
    },
}

/// Runs the CLI with the process arguments.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("golive: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo { fixtures, public_url, json } => demo(&fixtures, &public_url, json),
        Command::CrashWriter { data_dir, streams } => crash_writer(&data_dir, streams),
    }
}

fn demo(dir: &std::path::Path, public_url: &str, json: bool) -> anyhow::Result<()> {
    let public_url = HttpUrl::parse(public_url).map_err(|e| anyhow::anyhow!("--public-url: {e}"))?;
    let redirect = HttpUrl::parse(format!("{}/oauth/gitlab/callback", public_url.as_str()))
        .map_err(|e| anyhow::anyhow!("redirect URI: {e}"))?;
    let now = Utc::now();
    let journeys = Fixture::load_dir(dir).with_context(|| format!("loading fixtures from {}", dir.display()))?;
    let mut rows = Vec::new();
    for (path, fixture) in journeys {
        let replayed = replay_in_memory(
            &fixture,
            now,
            &public_url,
            Playbook::guide_default(redirect.clone()),
            &RandomIds,
            &DataKey::generate(),
        )
        .with_context(|| format!("replaying {}", path.display()))?;
        rows.push((fixture.name, replayed));
    }
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(name, r)| {
                serde_json::json!({
                    "fixture": name,
                    "customer": r.state.customer,
                    "stage": r.state.stage,
                    "owner": r.state.owner,
                    "days_in_stage": r.state.days_in_stage(now),
                    "blocked": r.state.block.as_ref().map(|b| b.category),
                    "events": r.events.len(),
                    "next_steps": r.state.next_steps(now),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{:<20} {:<20} {:<12} {:>5}  {:<19} NEXT STEP", "CUSTOMER", "STAGE", "OWNER", "DAYS", "BLOCKED");
    for (_, r) in &rows {
        let s = &r.state;
        let next = s.next_steps(now).into_iter().next().unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<20} {:<12} {:>5}  {:<19} {}",
            s.customer.as_str(),
            s.stage.as_str(),
            s.owner.as_ref().map(|o| o.as_str()).unwrap_or("-"),
            s.days_in_stage(now),
            s.block.as_ref().map(|b| b.category.as_str()).unwrap_or("-"),
            next
        );
    }
    Ok(())
}

/// Appends forever; each acknowledged append prints `ack <stream> <version> <position> <hash>`.
fn crash_writer(data_dir: &std::path::Path, streams: u32) -> anyhow::Result<()> {
    use std::io::Write;

    use crate::store::{
        AppendOutcome, AppendRequest, EventStore, ExpectedVersion, NewEvent, SledStore, SledStoreOptions,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let store = SledStore::open(data_dir, SledStoreOptions::default())?;
        let mut n: u64 = 0;
        loop {
            n += 1;
            let stream = uuid::Uuid::from_u128(u128::from(n % u64::from(streams.max(1))) + 1);
            let events = (0..(n % 3) + 1)
                .map(|i| NewEvent {
                    id: uuid::Uuid::new_v4(),
                    recorded_at: Utc::now(),
                    actor: "crash-writer".into(),
                    event_type: "note_added".into(),
                    schema_version: 1,
                    data: serde_json::json!({"text": format!("append {n} event {i}")}),
                })
                .collect();
            let request = AppendRequest { stream, expected: ExpectedVersion::Any, events, idempotency: None };
            if let AppendOutcome::Committed(stored) = store.append(request).await? {
                let mut out = std::io::stdout().lock();
                for event in stored {
                    writeln!(out, "ack {} {} {} {}", event.integration_id, event.version, event.position, event.hash)?;
                }
                out.flush()?;
            }
        }
    })
}
