//! `golive demo` (the journeys replayed in memory) and `golive migrate`.

use serde_json::json;

use super::client::CliError;
use super::output;
use crate::domain::{HttpUrl, Playbook};
use crate::fixtures::{replay_in_memory, Fixture};
use crate::ids::RandomIds;
use crate::secrets::DataKey;

/// Replays the demo journeys (those built into the binary, or the `*.json` files of `dir`) in
/// memory and prints where each ends: works from any directory.
pub fn demo(dir: Option<&std::path::Path>, public_url: &str, json: bool) -> Result<(), CliError> {
    let public_url = HttpUrl::parse(public_url).map_err(|e| CliError::Usage(format!("--public-url: {e}")))?;
    let redirect = HttpUrl::parse(format!("{}/oauth/gitlab/callback", public_url.as_str()))
        .map_err(|e| CliError::Usage(format!("redirect URI: {e}")))?;
    let now = crate::sources::Clock::now(&crate::sources::SystemClock);
    let journeys = match dir {
        Some(dir) => Fixture::load_dir(dir)
            .map_err(|e| CliError::Usage(format!("loading fixtures from {}: {e}", dir.display())))?,
        None => {
            let fixtures = Fixture::embedded().map_err(|e| CliError::Other(format!("the built-in journeys: {e}")))?;
            crate::fixtures::EMBEDDED.iter().map(|(name, _)| std::path::PathBuf::from(name)).zip(fixtures).collect()
        }
    };
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
        .map_err(|e| CliError::Other(format!("replaying {}: {e}", path.display())))?;
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
        output::print_json(&json!(out));
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

/// `golive migrate --from A --to B`: copies a store between backends and checks the copy.
pub async fn migrate(cli: &super::Cli, from: &str, to: &str) -> Result<(), CliError> {
    use crate::engine::{Engine, EngineConfig, OpenOptions, StoreLocation};
    let location = |text: &str| -> Result<StoreLocation, CliError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            StoreLocation::parse(Some(text), &cli.data_dir).map_err(CliError::Usage)
        } else {
            Ok(StoreLocation::Sled(std::path::PathBuf::from(text)))
        }
    };
    let (source, target) = (location(from)?, location(to)?);
    if source == target {
        return Err(CliError::Usage("--from and --to name the same store".into()));
    }
    let public_url = cli.public_url.as_deref().unwrap_or(super::DEFAULT_PUBLIC_URL);
    let public_url =
        crate::domain::HttpUrl::parse(public_url).map_err(|e| CliError::Usage(format!("--public-url: {e}")))?;
    let options = || OpenOptions { master_key_file: cli.master_key_file.clone(), ..Default::default() };
    let (source_engine, _) =
        Engine::open_location(&source, EngineConfig::new(public_url.clone(), None), options()).await?;
    let (target_engine, _) = Engine::open_location(&target, EngineConfig::new(public_url, None), options()).await?;
    let total = source_engine.store().head().await.map_err(|e| CliError::Other(e.to_string()))?.position;
    let bar = super::output::progress(total);
    let progress_bar = bar.clone();
    let outcome = source_engine.migrate_into(&target_engine, move |n| progress_bar.set_position(n)).await;
    bar.finish_and_clear();
    let closed = (source_engine.close().await, target_engine.close().await);
    let report = outcome.map_err(|e| match e {
        crate::engine::ImportError::Engine(inner) => CliError::from(inner),
        other => CliError::failed(other.kind(), other.to_string()),
    })?;
    closed.0?;
    closed.1?;
    if cli.json {
        super::output::print_json(&serde_json::json!(report));
    } else {
        println!(
            "copied {} events and {} data keys from {} to {}; chain valid: {}; head {}; {} integrations fold to the same state",
            report.events,
            report.data_keys,
            source.describe(),
            target.describe(),
            report.chain_valid,
            report.head,
            report.integrations_compared
        );
    }
    Ok(())
}
