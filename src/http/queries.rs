//! Query parameters of the API, parsed into typed filters: pure functions, shared by the routes
//! and the fuzz targets. Unknown parameters and invalid values are a 400 naming the parameter.

use crate::error_kind::ErrorKind;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Problem;
use crate::domain::{IntegrationId, Stage};
use crate::engine::{At, AuditQuery, ListFilter};

pub fn number<T: std::str::FromStr>(params: &HashMap<String, String>, name: &str) -> Result<Option<T>, Problem> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            Problem::new(ErrorKind::InvalidQuery, format!("{name}={text:?} is not a valid number"))
                .with(json!({"field": name}))
        }),
    }
}

pub fn time(params: &HashMap<String, String>, name: &str) -> Result<Option<DateTime<Utc>>, Problem> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
            Problem::new(ErrorKind::InvalidQuery, format!("{name}={text:?} is not an RFC 3339 time"))
                .with(json!({"field": name}))
        }),
    }
}

pub fn only(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Problem> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(Problem::new(
            ErrorKind::InvalidQuery,
            format!("unknown query parameter {unknown:?}; allowed: {}", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `GET /api/v1/integrations`: `stage`, `owner`, `blocked`, `stalled_days` (and the paging of
/// [`list_paging`]).
pub fn list_filter(params: &HashMap<String, String>) -> Result<ListFilter, Problem> {
    only(params, &["stage", "owner", "blocked", "stalled_days", "limit", "after"])?;
    let stage = match params.get("stage") {
        Some(s) => Some(
            Stage::parse(s)
                .ok_or_else(|| Problem::new(ErrorKind::InvalidQuery, format!("stage={s:?} is not a stage")))?,
        ),
        None => None,
    };
    let blocked = match params.get("blocked").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => return Err(Problem::new(ErrorKind::InvalidQuery, format!("blocked={other:?}: true or false"))),
    };
    Ok(ListFilter {
        stage,
        owner: params.get("owner").cloned(),
        blocked,
        stalled_days: number(params, "stalled_days")?,
    })
}

/// The most integrations one page of the list holds, and how many without a `limit`.
pub const LIST_LIMIT_MAX: usize = 1000;
pub const LIST_LIMIT_DEFAULT: usize = 100;

/// The list's paging: `None` without `limit` and `after` (the whole list, as before paging);
/// otherwise `(limit, after)`, `limit` from 1 to 1000 (default 100).
pub fn list_paging(params: &HashMap<String, String>) -> Result<Option<(usize, Option<String>)>, Problem> {
    if !params.contains_key("limit") && !params.contains_key("after") {
        return Ok(None);
    }
    let limit = number::<usize>(params, "limit")?.unwrap_or(LIST_LIMIT_DEFAULT);
    if !(1..=LIST_LIMIT_MAX).contains(&limit) {
        return Err(Problem::new(ErrorKind::InvalidQuery, format!("limit={limit}: from 1 to {LIST_LIMIT_MAX}"))
            .with(json!({"field": "limit"})));
    }
    Ok(Some((limit, params.get("after").cloned())))
}

/// A history page: `after` (a version) and `limit` (1 to 1000, default 100).
pub fn page(params: &HashMap<String, String>) -> Result<(u64, usize), Problem> {
    only(params, &["after", "limit"])?;
    let after = number(params, "after")?.unwrap_or(0);
    let limit: usize = number(params, "limit")?.unwrap_or(100).clamp(1, 1000);
    Ok((after, limit))
}

/// `state?at=<RFC 3339>` or `state?version=<n>`, exactly one.
pub fn as_of(params: &HashMap<String, String>) -> Result<At, Problem> {
    only(params, &["at", "version"])?;
    match (time(params, "at")?, number(params, "version")?) {
        (Some(t), None) => Ok(At::Time(t)),
        (None, Some(v)) => Ok(At::Version(v)),
        _ => Err(Problem::new(ErrorKind::InvalidQuery, "give exactly one of at=<RFC 3339> or version=<n>")),
    }
}

/// `GET /api/v1/events`: `actor`, `type`, `integration`, `since`, `until`, `after`, `limit`.
pub fn audit_query(params: &HashMap<String, String>) -> Result<AuditQuery, Problem> {
    only(params, &["actor", "type", "since", "until", "after", "limit", "integration"])?;
    let integration = match params.get("integration") {
        Some(text) => Some(
            IntegrationId::parse(text).map_err(|_| Problem::not_found(format!("no integration {text:?}")))?.as_uuid(),
        ),
        None => None,
    };
    Ok(AuditQuery {
        actor: params.get("actor").cloned(),
        event_type: params.get("type").cloned(),
        integration,
        since: time(params, "since")?,
        until: time(params, "until")?,
        after: number(params, "after")?.unwrap_or(0),
        limit: number::<usize>(params, "limit")?.unwrap_or(100).clamp(1, 1000),
    })
}

/// Parses a raw query string the way the routes receive it (for fuzzing and tests).
pub fn parse_query_string(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}
