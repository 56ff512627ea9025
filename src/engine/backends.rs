//! Where the log lives: the embedded sled store in a data directory (the default), or a
//! PostgreSQL database shared by several golive replicas.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use super::{Engine, EngineConfig, EngineError, OpenOptions, SystemClock};
use crate::domain::IntegrationId;
use crate::secrets::{self, DataKey, MasterKey, MasterKeySource, PgKeystore, SecretsError};
use crate::store::{EventStore, PgStore, PgStoreOptions};

/// The store a golive process opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// sled in this data directory (keys in `keys/`, the default master key beside them).
    Sled(PathBuf),
    /// A PostgreSQL URL (`postgres://…`); the data directory still holds the default master
    /// key file when no other master key is given.
    Postgres { url: String, data_dir: PathBuf },
}

impl StoreLocation {
    /// `--store` (or `GOLIVE_STORE`): a `postgres://` or `postgresql://` URL, else sled in
    /// `data_dir`.
    pub fn parse(store: Option<&str>, data_dir: &Path) -> Result<StoreLocation, String> {
        match store.map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("sled") => Ok(StoreLocation::Sled(data_dir.to_owned())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                // sslmode and sslrootcert are checked here, so a typo fails before any connection.
                crate::store::split_tls_parameters(url).map_err(|e| format!("--store: {e}"))?;
                Ok(StoreLocation::Postgres { url: url.to_owned(), data_dir: data_dir.to_owned() })
            }
            Some(other) => Err(format!(
                "--store {other:?}: expected `sled` or a postgres:// URL (e.g. postgres://golive@db.internal/golive)"
            )),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sled(dir) => format!("sled in {}", dir.display()),
            StoreLocation::Postgres { url, .. } => format!("PostgreSQL at {}", redact_url(url)),
        }
    }
}

/// A URL with its password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The aux key of a value only the right master key can unwrap: replicas started with another
/// master key refuse to start instead of sealing secrets nobody else can open.
const MASTER_KEY_CHECK: &str = "master_key_check";

impl Engine {
    /// Opens the engine on `location`.
    pub async fn open_location(
        location: &StoreLocation,
        config: EngineConfig,
        options: OpenOptions,
    ) -> Result<(Engine, Vec<String>), EngineError> {
        match location {
            StoreLocation::Sled(dir) => Engine::open_dir(dir, config, options).await,
            StoreLocation::Postgres { url, data_dir } => Engine::open_postgres(url, data_dir, config, options).await,
        }
    }

    /// Opens the engine on PostgreSQL (migrating the schema first).
    pub async fn open_postgres(
        url: &str,
        data_dir: &Path,
        config: EngineConfig,
        options: OpenOptions,
    ) -> Result<(Engine, Vec<String>), EngineError> {
        let store = PgStore::connect(url, PgStoreOptions::default()).await?;
        let (master, source) = MasterKey::load(data_dir, options.master_key_file.as_deref())?;
        let mut warnings = Vec::new();
        if let MasterKeySource::GeneratedDefault(path) | MasterKeySource::ExistingDefault(path) = &source {
            warnings.push(format!(
                "the master key is a file in the local data directory ({}): every replica needs the same key; set {} or --master-key-file in production",
                path.display(),
                secrets::MASTER_KEY_ENV
            ));
        }
        let check_id = IntegrationId::from_uuid(Uuid::nil());
        // The first replica writes the check (insert-if-absent, so of replicas starting at once
        // with different keys only one wins); every replica then verifies what is stored.
        let check = master.wrap(check_id, &DataKey::from_bytes([0; 32]));
        store.put_aux_if_absent(MASTER_KEY_CHECK, check.into_bytes()).await?;
        let stored = store.get_aux(MASTER_KEY_CHECK).await?.unwrap_or_default();
        if master.unwrap(check_id, &String::from_utf8_lossy(&stored)).is_err() {
            return Err(EngineError::Secrets(SecretsError::InvalidMasterKey(
                "this database was set up with another master key; start every replica with the same key".into(),
            )));
        }
        let keystore = Arc::new(PgKeystore::new(store.pool(), master));
        let clock = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let ids = options.ids.unwrap_or_else(|| Arc::new(crate::sources::RandomIds));
        let engine = Engine::start_with_ids(store, keystore, config, clock, ids).await?;
        Ok((engine, warnings))
    }
}
