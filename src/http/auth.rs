//! Who is calling: a bearer token (any route) and its role. The actor of everything a caller
//! does is the token's name (or, in a single sign-on session, `sso:<name>`), never a field of
//! the request.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::AppState;
use crate::auth::{Role, Tokens, RESERVED_ACTOR_PREFIX};
use crate::domain::Actor;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub actor: Actor,
    pub role: Role,
}

impl Principal {
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        if self.role >= role {
            return Ok(());
        }
        let who = if self.actor.as_str().starts_with(RESERVED_ACTOR_PREFIX) {
            format!("single sign-on user {}", self.actor)
        } else {
            format!("token {}", self.actor)
        };
        Err(Problem::forbidden(format!("this needs the {} role; {who} is {}", role.as_str(), self.role.as_str())))
    }
}

/// How long the token list is trusted before it is read again. Other replicas sharing the
/// store may create or revoke tokens; this bounds how long a revocation there takes here.
const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Active tokens by digest, cached briefly; dropped at once when tokens change through this
/// process's API.
#[derive(Default)]
pub struct TokenCache {
    by_digest: tokio::sync::RwLock<Option<(std::time::Instant, ActiveTokens)>>,
}

/// Token digest → (name, role), active tokens only.
type ActiveTokens = HashMap<String, (String, Role)>;

impl TokenCache {
    pub async fn invalidate(&self) {
        *self.by_digest.write().await = None;
    }

    pub(super) async fn lookup(&self, state: &AppState, token: &str) -> Result<Option<(String, Role)>, Problem> {
        self.lookup_digest(state, &hex::encode(Sha256::digest(token.as_bytes()))).await
    }

    /// Like [`TokenCache::lookup`], for a token known only by its digest (a session's).
    pub(super) async fn lookup_digest(
        &self,
        state: &AppState,
        presented: &str,
    ) -> Result<Option<(String, Role)>, Problem> {
        let fresh = self.by_digest.read().await.as_ref().is_some_and(|(at, _)| at.elapsed() < TOKEN_CACHE_TTL);
        if !fresh {
            let list = Tokens::with_clock(state.engine.store().as_ref(), state.engine.clock())
                .records()
                .await
                .map_err(|e| Problem::internal(e.to_string()))?;
            let map =
                list.into_iter().filter(|t| t.revoked_at.is_none()).map(|t| (t.sha256, (t.name, t.role))).collect();
            *self.by_digest.write().await = Some((std::time::Instant::now(), map));
        }
        let guard = self.by_digest.read().await;
        let Some((_, map)) = guard.as_ref() else { return Ok(None) };
        // Compare against every digest in constant time rather than trusting a map lookup's timing.
        let mut found = None;
        for (digest, who) in map {
            if bool::from(digest.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(who.clone());
            }
        }
        Ok(found)
    }
}

/// The bearer token of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = match bearer(parts) {
            Some(token) => Some(token.to_owned()),
            // The dashboard's session cookie is accepted for reads only, so a page can never be
            // tricked into writing through the API.
            None if parts.method == Method::GET => {
                if let Some(session) = super::session::current(parts, state).await? {
                    return Ok(session.principal);
                }
                None
            }
            None => None,
        };
        let Some(token) = token else {
            return Err(Problem::unauthorized("send Authorization: Bearer <token>"));
        };
        match state.tokens.lookup(state, &token).await? {
            Some((name, role)) => {
                Ok(Principal { actor: Actor::parse(name).map_err(|e| Problem::internal(e.0))?, role })
            }
            None => Err(Problem::unauthorized("the token is unknown or revoked")),
        }
    }
}
