//! API tokens: named, with a role, at least 32 random bytes, stored only as SHA-256.
//!
//! The actor of everything done with a token is the token's name. Tokens live outside the
//! event log (they are credentials, not history), in the store's auxiliary space: one key per
//! token name (`token/<name>`), created with an insert-if-absent and revoked with a
//! compare-and-swap, so replicas sharing a store never overwrite each other's changes. The
//! list is a prefix scan. Stores written before that kept every token in one value (`tokens`);
//! it is split into per-name keys the first time the registry is used, and then removed.
//!
//! Names golive itself acts under (and will act under) are reserved: [`reserved_actor_name`]
//! is the one list, used for tokens and for the CLI's `--as`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::Actor;
use crate::sources::{Clock, SystemClock};
use crate::store::{update_aux, AuxChange, EventStore, StoreError};

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

/// Actors golive itself acts as: the webhook receiver, the probe, the customer's intake page,
/// the monitoring timer, and names kept for golive's own later use.
pub const RESERVED_ACTOR_NAMES: [&str; 6] = ["gitlab", "probe", "customer", "monitoring-timer", "golive", "system"];
/// Single sign-on users will act as `sso:<name>`.
pub const RESERVED_ACTOR_PREFIX: &str = "sso:";

/// Whether `c` is invisible or reorders text (zero-width, joiners, bidi controls, line and
/// paragraph separators, the byte-order mark) or is a full-width form of an ASCII character:
/// characters that let a name look like another.
pub fn is_deceptive_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180E}'
        )
        || ('\u{200B}'..='\u{200F}').contains(&c)
        || ('\u{2028}'..='\u{202E}').contains(&c)
        || ('\u{2060}'..='\u{206F}').contains(&c)
        || c == '\u{3164}'
        || c == '\u{FEFF}'
        || ('\u{FF01}'..='\u{FF5E}').contains(&c)
        || ('\u{FFF0}'..='\u{FFFF}').contains(&c)
}

/// Why `name` may not be taken by a token or a person (`None`: it may). Compared without
/// case and surrounding spaces, so `Probe` or ` gitlab` cannot pass for golive's own actors
/// in the log, the audit or the dashboard.
pub fn reserved_actor_name(name: &str) -> Option<String> {
    let folded = name.trim().to_lowercase();
    if RESERVED_ACTOR_NAMES.contains(&folded.as_str()) {
        return Some(format!("{name:?} is reserved: golive acts under that name itself"));
    }
    if folded.starts_with(RESERVED_ACTOR_PREFIX) {
        return Some(format!(
            "{name:?} is reserved: names starting with {RESERVED_ACTOR_PREFIX:?} are single sign-on users"
        ));
    }
    None
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

/// The value that held every token before tokens were one key each.
const LEGACY_TOKENS_KEY: &str = "tokens";
/// Each token's key is this prefix and its name.
pub const TOKEN_KEY_PREFIX: &str = "token/";
/// Random bytes in an API token.
pub const TOKEN_BYTES: usize = 32;

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token_key(name: &str) -> String {
    format!("{TOKEN_KEY_PREFIX}{name}")
}

fn encode(record: &TokenRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("token records serialize")
}

fn unreadable(name: &str) -> AuthError {
    AuthError::Store(StoreError::Storage(format!("the stored token record {name:?} is unreadable")))
}

fn decode(name: &str, bytes: &[u8]) -> Result<TokenRecord, AuthError> {
    serde_json::from_slice(bytes).map_err(|_| unreadable(name))
}

/// The token registry.
pub struct Tokens<'a> {
    store: &'a dyn EventStore,
    /// Stamps creations and revocations.
    clock: &'a dyn Clock,
}

impl<'a> Tokens<'a> {
    /// Tokens in `store`, stamped by the system clock (the CLI's token commands).
    pub fn new(store: &'a dyn EventStore) -> Self {
        Self { store, clock: &SystemClock }
    }

    /// Tokens in `store`, stamped by `clock` (the engine's, in the service).
    pub fn with_clock(store: &'a dyn EventStore, clock: &'a dyn Clock) -> Self {
        Self { store, clock }
    }

    /// Splits a store's old single token value into one key per token, then removes it. Safe to
    /// run by several replicas at once and again after a crash: each key is only inserted when
    /// absent (a key already there is newer than the old value), and the old value is removed
    /// only if nobody changed it meanwhile. Tokens under names reserved since are carried over
    /// revoked: they must not act as golive.
    async fn migrate_legacy(&self) -> Result<(), AuthError> {
        let Some(bytes) = self.store.get_aux(LEGACY_TOKENS_KEY).await? else { return Ok(()) };
        let Ok(legacy) = serde_json::from_slice::<BTreeMap<String, TokenRecord>>(&bytes) else {
            // Left in place for an operator to look at; it never authenticates anyone.
            tracing::warn!("the old token list (aux key {LEGACY_TOKENS_KEY:?}) is unreadable; it is ignored");
            return Ok(());
        };
        for (name, mut record) in legacy {
            if record.revoked_at.is_none() && reserved_actor_name(&name).is_some() {
                tracing::warn!(token = %name, "revoking a token whose name is now reserved for golive itself");
                record.revoked_at = Some(self.clock.now());
            }
            self.store.put_aux_if_absent(&token_key(&name), encode(&record)).await?;
        }
        self.store.compare_and_swap_aux(LEGACY_TOKENS_KEY, Some(&bytes), None).await?;
        Ok(())
    }

    /// Creates a token and returns it: the only time it is ever shown. A revoked token's name
    /// may be used again; an active one's may not.
    pub async fn create(&self, name: &str, role: Role, created_by: &str) -> Result<String, AuthError> {
        Actor::parse(name).map_err(|e| AuthError::InvalidName(e.0))?;
        if let Some(reason) = reserved_actor_name(name) {
            return Err(AuthError::InvalidName(reason));
        }
        // A token's name is who acted, in the log and on every page: a zero-width space, a
        // full-width colon or a Cyrillic letter would let one pass for another (`sso:root`), so
        // names are plain ASCII.
        if !name.chars().all(|c| c.is_ascii_graphic()) {
            return Err(AuthError::InvalidName(format!(
                "{name:?}: token names are ASCII letters, digits and punctuation, without spaces, so that no name can pass for another"
            )));
        }
        self.migrate_legacy().await?;
        let mut bytes = [0u8; TOKEN_BYTES];
        crate::sources::fill_random(&mut bytes);
        let token = format!("glv_{}", URL_SAFE_NO_PAD.encode(bytes));
        let record = TokenRecord {
            name: name.to_owned(),
            role,
            sha256: digest(&token),
            created_at: self.clock.now(),
            created_by: created_by.to_owned(),
            revoked_at: None,
        };
        let new = encode(&record);
        let change = update_aux(self.store, &token_key(name), |current| {
            let taken = match current.map(serde_json::from_slice::<TokenRecord>) {
                // An active token's record, or one that cannot be read, is never overwritten.
                Some(Err(_)) => true,
                Some(Ok(existing)) => existing.revoked_at.is_none(),
                None => false,
            };
            if taken {
                AuxChange::Keep
            } else {
                AuxChange::Put(new.clone())
            }
        })
        .await?;
        match change {
            AuxChange::Put(_) => Ok(token),
            _ => Err(AuthError::NameTaken(name.to_owned())),
        }
    }

    /// Every record, revoked ones included (digests, never tokens).
    pub async fn records(&self) -> Result<Vec<TokenRecord>, AuthError> {
        self.migrate_legacy().await?;
        let mut out = Vec::new();
        for (key, bytes) in self.store.scan_aux(TOKEN_KEY_PREFIX).await? {
            let name = &key[TOKEN_KEY_PREFIX.len()..];
            match decode(name, &bytes) {
                Ok(record) => out.push(record),
                // One damaged record must not lock every token holder out.
                Err(error) => tracing::warn!(token = %name, %error, "skipping an unreadable token record"),
            }
        }
        Ok(out)
    }

    pub async fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        Ok(self
            .records()
            .await?
            .into_iter()
            .map(|t| TokenInfo {
                name: t.name,
                role: t.role,
                created_at: t.created_at,
                created_by: t.created_by,
                revoked_at: t.revoked_at,
            })
            .collect())
    }

    /// Revokes the active token `name`: one compare-and-swap on its key, so a revocation is
    /// never undone by another replica's write to another token.
    pub async fn revoke(&self, name: &str) -> Result<(), AuthError> {
        self.migrate_legacy().await?;
        let now = self.clock.now();
        let change = update_aux(self.store, &token_key(name), |current| {
            match current.and_then(|bytes| serde_json::from_slice::<TokenRecord>(bytes).ok()) {
                Some(mut record) if record.revoked_at.is_none() => {
                    record.revoked_at = Some(now);
                    AuxChange::Put(encode(&record))
                }
                _ => AuxChange::Keep,
            }
        })
        .await?;
        match change {
            AuxChange::Put(_) => Ok(()),
            _ => Err(AuthError::NoSuchToken(name.to_owned())),
        }
    }

    /// The name and role of an active token, comparing digests in constant time.
    pub async fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>, AuthError> {
        let presented = digest(token);
        let mut found = None;
        for record in self.records().await? {
            let equal = bool::from(record.sha256.as_bytes().ct_eq(presented.as_bytes()));
            if equal && record.revoked_at.is_none() {
                found = Some((record.name.clone(), record.role));
            }
        }
        Ok(found)
    }
}
