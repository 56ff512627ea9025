//! API tokens: named, with a role, at least 32 random bytes, stored only as SHA-256.
//!
//! The actor of everything done with a token is the token's name. Tokens live outside the
//! event log (they are credentials, not history), in the store's auxiliary space.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Actor;
use crate::store::{EventStore, StoreError};

/// What a token may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and audit.
    Viewer,
    /// + open integrations, commands, probes.
    Rep,
    /// + tokens, shred, export, reveal.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "rep" => Some(Role::Rep),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Rep => "rep",
            Role::Admin => "admin",
        }
    }
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What a listing shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a token named {0:?} exists already")]
    NameTaken(String),
    #[error("no active token named {0:?}")]
    NoSuchToken(String),
    #[error("invalid token name: {0}")]
    InvalidName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const TOKENS_KEY: &str = "tokens";
/// Random bytes in an API token.
pub const TOKEN_BYTES: usize = 32;

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token registry.
pub struct Tokens<'a> {
    store: &'a dyn EventStore,
}

static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl<'a> Tokens<'a> {
    pub fn new(store: &'a dyn EventStore) -> Self {
        Self { store }
    }

    async fn load(&self) -> Result<BTreeMap<String, TokenRecord>, AuthError> {
        Ok(match self.store.get_aux(TOKENS_KEY).await? {
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            None => BTreeMap::new(),
        })
    }

    async fn save(&self, tokens: &BTreeMap<String, TokenRecord>) -> Result<(), AuthError> {
        self.store.put_aux(TOKENS_KEY, serde_json::to_vec(tokens).expect("tokens serialize")).await?;
        Ok(())
    }

    /// Creates a token and returns it: the only time it is ever shown.
    pub async fn create(&self, name: &str, role: Role, created_by: &str) -> Result<String, AuthError> {
        Actor::parse(name).map_err(|e| AuthError::InvalidName(e.0))?;
        if matches!(name, "gitlab" | "probe" | "customer") {
            return Err(AuthError::InvalidName(format!("{name:?} is reserved for golive's own inputs")));
        }
        let _guard = WRITES.lock().await;
        let mut tokens = self.load().await?;
        if tokens.get(name).is_some_and(|t| t.revoked_at.is_none()) {
            return Err(AuthError::NameTaken(name.to_owned()));
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = format!("glv_{}", URL_SAFE_NO_PAD.encode(bytes));
        tokens.insert(
            name.to_owned(),
            TokenRecord {
                name: name.to_owned(),
                role,
                sha256: digest(&token),
                created_at: Utc::now(),
                created_by: created_by.to_owned(),
                revoked_at: None,
            },
        );
        self.save(&tokens).await?;
        Ok(token)
    }

    /// Every record, revoked ones included (digests, never tokens).
    pub async fn records(&self) -> Result<Vec<TokenRecord>, AuthError> {
        Ok(self.load().await?.into_values().collect())
    }

    pub async fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        Ok(self
            .load()
            .await?
            .into_values()
            .map(|t| TokenInfo {
                name: t.name,
                role: t.role,
                created_at: t.created_at,
                created_by: t.created_by,
                revoked_at: t.revoked_at,
            })
            .collect())
    }

    pub async fn revoke(&self, name: &str) -> Result<(), AuthError> {
        let _guard = WRITES.lock().await;
        let mut tokens = self.load().await?;
        match tokens.get_mut(name) {
            Some(record) if record.revoked_at.is_none() => record.revoked_at = Some(Utc::now()),
            _ => return Err(AuthError::NoSuchToken(name.to_owned())),
        }
        self.save(&tokens).await
    }

    /// The name and role of an active token, comparing digests in constant time.
    pub async fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>, AuthError> {
        let presented = digest(token);
        let tokens = self.load().await?;
        let mut found = None;
        for record in tokens.values() {
            let equal = bool::from(record.sha256.as_bytes().ct_eq(presented.as_bytes()));
            if equal && record.revoked_at.is_none() {
                found = Some((record.name.clone(), record.role));
            }
        }
        Ok(found)
    }
}
