//! Dashboard sessions: signing in with an API token or with single sign-on yields a new random
//! session id in an HttpOnly, SameSite=Strict cookie. The server keeps only the id's digest,
//! beside the log (so every replica sharing the store knows the session), with who holds it (the
//! token's digest, or a single sign-on user's actor and role), an expiry and the session's CSRF
//! token. A token session re-checks its API token on each request: revoking it ends its
//! sessions, and a changed role applies at once. A single sign-on session keeps the role mapped
//! at sign-in for its 12 hours. Signing out ends the session on the server, not just in the
//! browser.
//!
//! Each session is one aux key (`session/<digest of the id>`), written once with an
//! insert-if-absent and ended with a compare-and-swap: replicas never read, modify and write
//! back a shared value, and a session ended on one replica is ended on every replica at once
//! (sessions are not cached).

use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::{AppState, Principal};
use crate::auth::Role;
use crate::domain::Actor;
use crate::store::{update_aux, AuxChange};

pub const COOKIE_NAME: &str = "golive_session";
/// How long a session lasts without signing in again.
pub const SESSION_HOURS: i64 = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionRecord {
    #[serde(flatten)]
    holder: Holder,
    csrf: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

/// Who a session is for. Records written before single sign-on name a token's digest only,
/// and still load as [`Holder::Token`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Holder {
    /// Signed in with an API token: each request looks the token up again, so revoking it ends
    /// the session and a changed role applies at once.
    Token { token_sha256: String },
    /// Signed in with single sign-on: the actor (`sso:<name>`) and the role mapped at sign-in,
    /// kept for the session's life.
    SingleSignOn { sso_actor: String, sso_role: Role },
}

/// A live session: who, and the CSRF token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    id_digest: String,
}

/// 256 random bits, base64url: session ids, CSRF tokens, and single sign-on's login ids, states,
/// nonces and PKCE verifiers.
pub(super) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    crate::sources::fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn aux_key(id_digest: &str) -> String {
    format!("session/{id_digest}")
}

/// The session cookie's value, when the request carries one.
pub fn cookie_value(parts: &Parts) -> Option<String> {
    named_cookie(&parts.headers, COOKIE_NAME)
}

/// The value of the cookie `name`, when the request carries one.
pub(super) fn named_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let cookies = headers.get_all(header::COOKIE);
    cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value for a new session, `Secure` when the public URL is https.
pub fn set_cookie(state: &AppState, id: &str) -> HeaderValue {
    let secure = if state.engine.config().public_url.is_https() { "; Secure" } else { "" };
    let value =
        format!("{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", SESSION_HOURS * 3600);
    HeaderValue::from_str(&value).expect("ids are base64url")
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("golive_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Signs in with an API token: a new session id (for the cookie), or `None` for a bad token.
pub async fn sign_in(state: &AppState, token: &str) -> Result<Option<String>, Problem> {
    if state.tokens.lookup(state, token).await?.is_none() {
        return Ok(None);
    }
    create(state, Holder::Token { token_sha256: digest(token) }).await.map(Some)
}

/// Signs in a single sign-on user as `actor` with `role`: a new session id (for the cookie).
pub async fn sign_in_as(state: &AppState, actor: Actor, role: Role) -> Result<String, Problem> {
    create(state, Holder::SingleSignOn { sso_actor: actor.to_string(), sso_role: role }).await
}

/// Writes a new session for `holder` under a new random id, never an existing one.
async fn create(state: &AppState, holder: Holder) -> Result<String, Problem> {
    let id = random_secret();
    let now = state.engine.now();
    let record = SessionRecord {
        holder,
        csrf: random_secret(),
        created_at: now,
        expires_at: now + Duration::hours(SESSION_HOURS),
        ended_at: None,
    };
    let bytes = serde_json::to_vec(&record).expect("sessions serialize");
    let created = state
        .engine
        .store()
        .put_aux_if_absent(&aux_key(&digest(&id)), bytes)
        .await
        .map_err(|e| Problem::internal(e.to_string()))?;
    if !created {
        // 256 random bits met an existing id: the random source is broken; sign nobody in.
        return Err(Problem::internal("a new session id collided with an existing one"));
    }
    Ok(id)
}

/// The live session named by the request's cookie, if any.
pub async fn current(parts: &Parts, state: &AppState) -> Result<Option<Session>, Problem> {
    let Some(id) = cookie_value(parts) else { return Ok(None) };
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let id_digest = digest(&id);
    let Some(bytes) =
        state.engine.store().get_aux(&aux_key(&id_digest)).await.map_err(|e| Problem::internal(e.to_string()))?
    else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_slice::<SessionRecord>(&bytes) else { return Ok(None) };
    if record.ended_at.is_some() || state.engine.now() >= record.expires_at {
        return Ok(None);
    }
    let (name, role) = match record.holder {
        Holder::Token { token_sha256 } => match state.tokens.lookup_digest(state, &token_sha256).await? {
            Some(found) => found,
            None => return Ok(None),
        },
        Holder::SingleSignOn { sso_actor, sso_role } => (sso_actor, sso_role),
    };
    let actor = Actor::parse(name).map_err(|e| Problem::internal(e.0))?;
    Ok(Some(Session { principal: Principal { actor, role }, csrf: record.csrf, id_digest }))
}

impl Session {
    /// Whether a submitted form's CSRF token is this session's (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Ends the session on the server: one compare-and-swap on its key, so the end is never
    /// lost to a concurrent write.
    pub async fn end(&self, state: &AppState) -> Result<(), Problem> {
        let now = state.engine.now();
        let store = state.engine.store();
        update_aux(store.as_ref(), &aux_key(&self.id_digest), |current| {
            match current.and_then(|bytes| serde_json::from_slice::<SessionRecord>(bytes).ok()) {
                Some(mut record) if record.ended_at.is_none() => {
                    record.ended_at = Some(now);
                    AuxChange::Put(serde_json::to_vec(&record).expect("sessions serialize"))
                }
                // Already ended, or gone: nothing to do.
                _ => AuxChange::Keep,
            }
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_single_sign_on_still_load_and_new_ones_round_trip() {
        let old = br#"{"token_sha256":"ab12","csrf":"c","created_at":"2026-03-02T09:00:00Z","expires_at":"2026-03-02T21:00:00Z","ended_at":null}"#;
        let record: SessionRecord = serde_json::from_slice(old).unwrap();
        assert!(matches!(record.holder, Holder::Token { ref token_sha256 } if token_sha256 == "ab12"));

        let sso = SessionRecord {
            holder: Holder::SingleSignOn { sso_actor: "sso:alice".into(), sso_role: Role::Rep },
            ..record
        };
        let bytes = serde_json::to_vec(&sso).unwrap();
        let again: SessionRecord = serde_json::from_slice(&bytes).unwrap();
        assert!(
            matches!(again.holder, Holder::SingleSignOn { ref sso_actor, sso_role: Role::Rep } if sso_actor == "sso:alice")
        );
    }
}
