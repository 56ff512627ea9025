//! Scripted onboarding journeys ("fixtures"): data-driven tests and the demo's content.
//!
//! A fixture is a JSON file: how the integration was opened and a list of steps, each a command
//! (or an internal input) with an actor and a time **relative to now** (`"-12d 09:30"`), so a
//! demo loaded today shows real days in stage and real stalls. String values may use
//! placeholders, resolved when the step runs:
//!
//! - `${at}`: the step's own time (RFC 3339), e.g. a delivery's `received_at`;
//! - `${date:+N}` / `${date:-N}`: the UTC date N days from now (`YYYY-MM-DD`);
//! - `${webhook_url}`: the URL golive issued for this integration;
//! - `${redirect_uri}`: the redirect URI of the integration's playbook;
//! - `${feedback:N}`: the id of the integration's N-th feedback item (from 1).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Where the repository keeps its journeys.
pub const FIXTURE_DIR: &str = "fixtures/onboardings";

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid fixture: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("step {step}: bad time {text:?}: write it as \"-12d\", \"-12d 09:30\", \"+3d\" or \"now\"")]
    Time { step: usize, text: String },
    #[error("step {step}: unknown placeholder {placeholder:?}")]
    Placeholder { step: usize, placeholder: String },
    #[error("step {step}: {message}")]
    Refused { step: usize, message: String },
}

/// One scripted journey.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub name: String,
    pub description: String,
    /// When the integration was opened, relative to now.
    pub opened: String,
    pub opened_by: String,
    /// The body of `POST /api/v1/integrations`.
    pub open: Value,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at: String,
    pub actor: String,
    /// A v1 command body, or an internal input (`record_webhook_delivery`, `record_probe_result`).
    pub command: Value,
}

/// The journeys shipped inside the binary (the `--demo` content), as (file name, JSON).
pub const EMBEDDED: [(&str, &str); 4] = [
    ("acme-vpc-peering-live.json", include_str!("../fixtures/onboardings/acme-vpc-peering-live.json")),
    ("globex-vpn-token-rotation.json", include_str!("../fixtures/onboardings/globex-vpn-token-rotation.json")),
    (
        "initech-missing-scopes-blocked.json",
        include_str!("../fixtures/onboardings/initech-missing-scopes-blocked.json"),
    ),
    ("umbrella-cancelled.json", include_str!("../fixtures/onboardings/umbrella-cancelled.json")),
];

impl Fixture {
    /// The journeys shipped inside the binary.
    pub fn embedded() -> Result<Vec<Fixture>, FixtureError> {
        EMBEDDED
            .iter()
            .map(|(name, text)| {
                serde_json::from_str(text).map_err(|source| FixtureError::Parse { path: PathBuf::from(name), source })
            })
            .collect()
    }

    pub fn load(path: &Path) -> Result<Fixture, FixtureError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| FixtureError::Read { path: path.to_owned(), source })?;
        serde_json::from_str(&text).map_err(|source| FixtureError::Parse { path: path.to_owned(), source })
    }

    /// Every `*.json` journey in `dir` (expected-result files excluded), sorted by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<(PathBuf, Fixture)>, FixtureError> {
        let entries = std::fs::read_dir(dir).map_err(|source| FixtureError::Read { path: dir.to_owned(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.ends_with(".json") && !name.ends_with(".expected.json")
            })
            .collect();
        paths.sort();
        paths.into_iter().map(|p| Fixture::load(&p).map(|f| (p, f))).collect()
    }
}

/// Resolves a relative time such as `-12d 09:30`, `-3d`, `+2d 14:00`, `-5h` or `now`.
pub fn resolve_time(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text == "now" {
        return Some(now);
    }
    let (offset, clock) = match text.split_once(' ') {
        Some((offset, clock)) => (offset, Some(clock)),
        None => (text, None),
    };
    let sign = match offset.chars().next()? {
        '-' => -1,
        '+' => 1,
        _ => return None,
    };
    let unit = offset.chars().last()?;
    let amount: i64 = offset.get(1..offset.len() - 1)?.parse().ok()?;
    let delta = match unit {
        'd' => Duration::days(sign * amount),
        'h' => Duration::hours(sign * amount),
        'm' => Duration::minutes(sign * amount),
        _ => return None,
    };
    let moved = now + delta;
    match clock {
        None => Some(moved),
        Some(clock) => {
            let time = NaiveTime::parse_from_str(clock, "%H:%M").ok()?;
            Some(moved.date_naive().and_time(time).and_utc())
        }
    }
}

/// The values placeholders resolve to for one step.
pub struct Placeholders<'a> {
    pub now: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub webhook_url: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub feedback_ids: &'a [uuid::Uuid],
}

/// Replaces placeholders in every string of `value`.
pub fn substitute(value: &Value, vars: &Placeholders<'_>) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => Value::String(substitute_text(text, vars)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, vars)).collect::<Result<_, _>>()?),
        Value::Object(map) => Value::Object(
            map.iter().map(|(k, v)| substitute(v, vars).map(|v| (k.clone(), v))).collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

fn substitute_text(text: &str, vars: &Placeholders<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| rest[start..].to_owned())?;
        let name = &after[..end];
        let replacement = if name == "at" {
            vars.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        } else if name == "redirect_uri" {
            vars.redirect_uri.ok_or_else(|| "${redirect_uri}".to_owned())?.to_owned()
        } else if name == "webhook_url" {
            vars.webhook_url.ok_or_else(|| "${webhook_url} (no webhook credentials issued yet)".to_owned())?.to_owned()
        } else if let Some(n) = name.strip_prefix("feedback:") {
            let n: usize = n.parse().map_err(|_| name.to_owned())?;
            let id = n.checked_sub(1).and_then(|i| vars.feedback_ids.get(i));
            id.ok_or_else(|| format!("{name} (no such feedback item yet)"))?.to_string()
        } else if let Some(days) = name.strip_prefix("date:") {
            let days: i64 = days.trim_start_matches('+').parse().map_err(|_| name.to_owned())?;
            (vars.now + Duration::days(days)).format("%Y-%m-%d").to_string()
        } else {
            return Err(name.to_owned());
        };
        out.push_str(&replacement);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A step with its time resolved, ready to execute.
#[derive(Debug, Clone)]
pub struct ResolvedStep {
    pub index: usize,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub command: Value,
}

impl Fixture {
    /// When the integration was opened, at `now`.
    pub fn opened_at(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, FixtureError> {
        resolve_time(&self.opened, now).ok_or_else(|| FixtureError::Time { step: 0, text: self.opened.clone() })
    }

    /// The steps with their times resolved against `now`, in order. Placeholders other than
    /// `${webhook_url}` are resolved too; that one needs the integration's state.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<Vec<ResolvedStep>, FixtureError> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let index = i + 1;
                let at = resolve_time(&step.at, now)
                    .ok_or_else(|| FixtureError::Time { step: index, text: step.at.clone() })?;
                Ok(ResolvedStep { index, at, actor: step.actor.clone(), command: step.command.clone() })
            })
            .collect()
    }
}

/// A step's command with its placeholders resolved against the integration as it stands.
fn step_body(
    step: &ResolvedStep,
    state: &crate::domain::Integration,
    now: DateTime<Utc>,
) -> Result<Value, FixtureError> {
    let webhook_url = state.facts.webhook_credentials.as_ref().map(|c| c.webhook_url.as_str().to_owned());
    let redirect_uri = state.playbook.redirect_uri.as_str().to_owned();
    let feedback_ids: Vec<uuid::Uuid> = state.feedback.iter().map(|f| f.id).collect();
    let vars = Placeholders {
        now,
        at: step.at,
        webhook_url: webhook_url.as_deref(),
        redirect_uri: Some(&redirect_uri),
        feedback_ids: &feedback_ids,
    };
    substitute(&step.command, &vars).map_err(|placeholder| FixtureError::Placeholder { step: step.index, placeholder })
}

/// Whether an actor name stands for golive's own internal inputs.
pub fn is_internal_actor(actor: &str) -> bool {
    actor == "gitlab" || actor == "probe"
}

/// The outcome of replaying a fixture: the events with their times, and the final state.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub events: Vec<(crate::domain::Event, DateTime<Utc>, String)>,
    pub state: crate::domain::Integration,
}

/// Replays a fixture through the domain alone (parse, seal, decide, apply), in memory.
///
/// Every step must be accepted: a fixture is a journey that happened. `ids` supplies the
/// integration id and feedback ids; `key` seals the fixture's demo secrets.
pub fn replay_in_memory(
    fixture: &Fixture,
    now: DateTime<Utc>,
    public_url: &crate::domain::HttpUrl,
    default_playbook: crate::domain::Playbook,
    ids: &dyn crate::domain::IdSource,
    key: &crate::secrets::DataKey,
) -> Result<Replayed, FixtureError> {
    use crate::domain::{self, Actor, Context, Integration, Origin};

    let refused = |step: usize, message: String| FixtureError::Refused { step, message };
    let actor = |step: usize, name: &str| Actor::parse(name).map_err(|e| refused(step, format!("actor: {e}")));
    let opened_at = fixture.opened_at(now)?;
    let request = domain::parse_open_request(fixture.open.clone()).map_err(|e| refused(0, e.to_string()))?;
    let ctx = Context { now: opened_at, actor: actor(0, &fixture.opened_by)?, ids };
    let opened =
        domain::open(request, default_playbook, public_url.clone(), &ctx).map_err(|e| refused(0, e.to_string()))?;
    let mut state = Integration::from_opened(&opened[0], opened_at).expect("open yields integration_opened");
    let mut events: Vec<_> = opened.into_iter().map(|e| (e, opened_at, fixture.opened_by.clone())).collect();

    for step in fixture.resolve(now)? {
        let body = step_body(&step, &state, now)?;
        let origin = if is_internal_actor(&step.actor) { Origin::Internal } else { Origin::Public };
        let request = domain::parse_request(body, origin).map_err(|e| refused(step.index, e.to_string()))?;
        let mut sealer = crate::secrets::IntegrationSealer::new(key, state.id, public_url);
        let command = request.prepare(&mut sealer);
        let ctx = Context { now: step.at, actor: actor(step.index, &step.actor)?, ids };
        let produced = state.decide(&command, &ctx).map_err(|e| refused(step.index, e.to_string()))?;
        for event in produced {
            state.apply(&event, step.at);
            events.push((event, step.at, step.actor.clone()));
        }
    }
    Ok(Replayed { events, state })
}

/// Loads a fixture into an engine, each step at its own (relative) time, through the same
/// execute path as any client. Returns the new integration's id.
pub async fn load_into_engine(
    engine: &crate::engine::Engine,
    fixture: &Fixture,
    now: DateTime<Utc>,
) -> Result<crate::domain::IntegrationId, FixtureError> {
    use crate::domain::{Actor, Origin};
    use crate::engine::ExecuteRequest;

    let refused = |step: usize, message: String| FixtureError::Refused { step, message };
    let actor = |step: usize, name: &str| Actor::parse(name).map_err(|e| refused(step, format!("actor: {e}")));
    let opened_at = fixture.opened_at(now)?;
    let opened = engine
        .open_integration_at(fixture.open.clone(), &actor(0, &fixture.opened_by)?, None, Some(opened_at))
        .await
        .map_err(|e| refused(0, e.to_string()))?;
    let id = opened.state.id;
    let mut state = opened.state;
    for step in fixture.resolve(now)? {
        let body = step_body(&step, &state, now)?;
        let mut request = ExecuteRequest::new(id, body, actor(step.index, &step.actor)?);
        request.origin = if is_internal_actor(&step.actor) { Origin::Internal } else { Origin::Public };
        request.recorded_at = Some(step.at);
        let executed = engine.execute(request).await.map_err(|e| refused(step.index, e.to_string()))?;
        state = executed.state;
    }
    Ok(id)
}
