//! Data keys: one per integration, wrapped by the master key, kept outside the event log.
//!
//! The file keystore keeps each wrapped key in its own small file, `keys/<integration>.key`.
//! Shredding overwrites the file with random bytes, syncs it, removes it and syncs the folder:
//! once done, nothing that could unseal that integration's secrets remains in the data
//! directory, while the hash-chained log (which holds only ciphertext) stays verifiable.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::{DataKey, SecretsError};
use crate::domain::IntegrationId;

/// The environment variable that carries the master key (base64 or hex of 32 bytes).
pub const MASTER_KEY_ENV: &str = "GOLIVE_MASTER_KEY";

/// The key that wraps every data key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Where the master key came from; `GeneratedDefault` deserves a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    Environment,
    File(PathBuf),
    GeneratedDefault(PathBuf),
    ExistingDefault(PathBuf),
}

fn io_error(path: &Path, error: std::io::Error) -> SecretsError {
    SecretsError::Io { path: path.display().to_string(), message: error.to_string() }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 32 bytes written as base64 or as 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| SecretsError::InvalidMasterKey(e.to_string()))?
        } else {
            STANDARD.decode(text).map_err(|_| SecretsError::InvalidMasterKey("not base64 or hex".into()))?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| SecretsError::InvalidMasterKey(format!("{} bytes, 32 needed", v.len())))?;
        Ok(Self(bytes))
    }

    /// The master key from, in order: `GOLIVE_MASTER_KEY`, `key_file`, or the default file
    /// `master.key` in `data_dir`, created with mode 0600 when missing.
    pub fn load(data_dir: &Path, key_file: Option<&Path>) -> Result<(MasterKey, MasterKeySource), SecretsError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return Ok((Self::parse(&text)?, MasterKeySource::Environment));
        }
        if let Some(path) = key_file {
            let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
            return Ok((Self::parse(&text)?, MasterKeySource::File(path.to_owned())));
        }
        let path = data_dir.join("master.key");
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
            return Ok((Self::parse(&text)?, MasterKeySource::ExistingDefault(path)));
        }
        crate::store::owner_only::create_dir(data_dir).map_err(|e| io_error(data_dir, e))?;
        let mut bytes = [0u8; 32];
        crate::sources::fill_random(&mut bytes);
        // A master key lost to a power cut would leave every data key, and so every secret,
        // unreadable: it is durable (bytes and name) before anything is sealed with it.
        write_new_durably(&path, STANDARD.encode(bytes).as_bytes())?;
        Ok((Self(bytes), MasterKeySource::GeneratedDefault(path)))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    fn aad(integration: IntegrationId) -> Vec<u8> {
        format!("golive data key v1 {integration}").into_bytes()
    }

    pub(crate) fn wrap(&self, integration: IntegrationId, key: &DataKey) -> String {
        let mut nonce = [0u8; 24];
        crate::sources::fill_random(&mut nonce);
        let aad = Self::aad(integration);
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: key.as_bytes(), aad: &aad })
            .expect("in-memory encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub(crate) fn unwrap(&self, integration: IntegrationId, wrapped: &str) -> Result<DataKey, SecretsError> {
        let bytes = STANDARD.decode(wrapped.trim()).map_err(|_| SecretsError::WrongMasterKey(integration))?;
        if bytes.len() < 24 {
            return Err(SecretsError::WrongMasterKey(integration));
        }
        let (nonce, sealed) = bytes.split_at(24);
        let aad = Self::aad(integration);
        let plain = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .map_err(|_| SecretsError::WrongMasterKey(integration))?;
        let plain: [u8; 32] = plain.try_into().map_err(|_| SecretsError::WrongMasterKey(integration))?;
        Ok(DataKey::from_bytes(plain))
    }
}

/// Writes a file readable by its owner only, synced to disk.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_error(path, e))?;
    // `mode` applies only when the file is created: an existing file is made 0600 here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(crate::store::owner_only::FILE_MODE))
            .map_err(|e| io_error(path, e))?;
    }
    file.write_all(bytes).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))?;
    Ok(())
}

/// Where data keys live. Async so a database-backed keystore can follow.
#[async_trait]
pub trait Keystore: Send + Sync + 'static {
    /// The integration's data key, created when it has none yet.
    async fn data_key(&self, integration: IntegrationId) -> Result<DataKey, SecretsError>;
    /// The integration's data key if it exists (`Shredded` after a shred).
    async fn existing_data_key(&self, integration: IntegrationId) -> Result<Option<DataKey>, SecretsError>;
    /// Destroys the data key. Returns whether there was one.
    async fn shred(&self, integration: IntegrationId) -> Result<bool, SecretsError>;
    /// Every wrapped data key, for copying a store (`golive migrate`); still wrapped.
    async fn export_wrapped(&self) -> Result<Vec<(IntegrationId, String)>, SecretsError>;
    /// Stores a wrapped data key copied from another keystore (checked against the master key).
    async fn import_wrapped(&self, integration: IntegrationId, wrapped: &str) -> Result<(), SecretsError>;
}

/// Data keys as one small file each under `<data_dir>/keys/`.
pub struct FileKeystore {
    dir: PathBuf,
    master: MasterKey,
    cache: Mutex<HashMap<IntegrationId, DataKey>>,
    /// Serialises creation and shredding so two callers never create two keys.
    writes: tokio::sync::Mutex<()>,
}

impl FileKeystore {
    pub fn open(data_dir: &Path, master: MasterKey) -> Result<Self, SecretsError> {
        let dir = data_dir.join("keys");
        crate::store::owner_only::create_dir(&dir).map_err(|e| io_error(&dir, e))?;
        // Key files written by an older build, or copied in, become owner-only too.
        crate::store::owner_only::restrict_tree(&dir).map_err(|e| io_error(&dir, e))?;
        Ok(Self { dir, master, cache: Mutex::new(HashMap::new()), writes: tokio::sync::Mutex::new(()) })
    }

    fn path(&self, integration: IntegrationId) -> PathBuf {
        self.dir.join(format!("{integration}.key"))
    }

    fn cached(&self, integration: IntegrationId) -> Option<DataKey> {
        self.cache.lock().expect("keystore cache").get(&integration).cloned()
    }

    fn read(&self, integration: IntegrationId) -> Result<Option<DataKey>, SecretsError> {
        let path = self.path(integration);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = self.master.unwrap(integration, &text)?;
                self.cache.lock().expect("keystore cache").insert(integration, key.clone());
                Ok(Some(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }
}

#[async_trait]
impl Keystore for FileKeystore {
    async fn data_key(&self, integration: IntegrationId) -> Result<DataKey, SecretsError> {
        if let Some(key) = self.cached(integration) {
            return Ok(key);
        }
        let _guard = self.writes.lock().await;
        if let Some(key) = self.read(integration)? {
            return Ok(key);
        }
        let key = DataKey::generate();
        let path = self.path(integration);
        write_new_durably(&path, self.master.wrap(integration, &key).as_bytes())?;
        self.cache.lock().expect("keystore cache").insert(integration, key.clone());
        Ok(key)
    }

    async fn existing_data_key(&self, integration: IntegrationId) -> Result<Option<DataKey>, SecretsError> {
        if let Some(key) = self.cached(integration) {
            return Ok(Some(key));
        }
        self.read(integration)
    }

    async fn shred(&self, integration: IntegrationId) -> Result<bool, SecretsError> {
        let _guard = self.writes.lock().await;
        self.cache.lock().expect("keystore cache").remove(&integration);
        let path = self.path(integration);
        let length = match std::fs::metadata(&path) {
            Ok(meta) => meta.len() as usize,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(&path, e)),
        };
        // Overwrite in place before unlinking, so the wrapped key's bytes do not linger in the
        // file's blocks (on a plain, non-copy-on-write file system).
        let mut noise = vec![0u8; length.max(64)];
        crate::sources::fill_random(&mut noise);
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| io_error(&path, e))?;
        file.write_all(&noise).map_err(|e| io_error(&path, e))?;
        file.sync_all().map_err(|e| io_error(&path, e))?;
        drop(file);
        std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    async fn export_wrapped(&self) -> Result<Vec<(IntegrationId, String)>, SecretsError> {
        let mut keys = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_error(&self.dir, e))?.path();
            let Some(id) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| IntegrationId::parse(s).ok()) else {
                continue;
            };
            if path.extension().and_then(|e| e.to_str()) == Some("key") {
                keys.push((id, std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?));
            }
        }
        Ok(keys)
    }

    async fn import_wrapped(&self, integration: IntegrationId, wrapped: &str) -> Result<(), SecretsError> {
        self.master.unwrap(integration, wrapped)?;
        let _guard = self.writes.lock().await;
        let path = self.path(integration);
        write_private(&path, wrapped.as_bytes())?;
        sync_dir(&self.dir)?;
        self.cache.lock().expect("keystore cache").remove(&integration);
        Ok(())
    }
}

/// Writes a new file so that it exists only once it is durable: the bytes go to a temporary
/// file that is synced, renamed into place, and the folder synced. On any failure the new file
/// is removed, so a retry cannot find (in the page cache) a key that never reached the disk and
/// seal secrets with it.
fn write_new_durably(path: &Path, bytes: &[u8]) -> Result<(), SecretsError> {
    let folder = path.parent().ok_or_else(|| io_error(path, std::io::Error::other("no parent folder")))?;
    let temporary = path.with_extension("partial");
    let written = write_private(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| io_error(path, e)))
        .and_then(|()| sync_dir(folder));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
        let _ = std::fs::remove_file(path);
    }
    written
}

fn sync_dir(dir: &Path) -> Result<(), SecretsError> {
    crate::store::owner_only::sync_dir(dir).map_err(|e| io_error(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_keys_parse_from_base64_or_hex() {
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse("short").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn wrapped_keys_open_only_with_their_master_key_and_integration() {
        let master = MasterKey::from_bytes([3; 32]);
        let id = IntegrationId::from_uuid(uuid::Uuid::from_u128(1));
        let key = DataKey::generate();
        let wrapped = master.wrap(id, &key);
        assert_eq!(master.unwrap(id, &wrapped).unwrap().as_bytes(), key.as_bytes());
        assert!(MasterKey::from_bytes([4; 32]).unwrap(id, &wrapped).is_err());
        assert!(master.unwrap(IntegrationId::from_uuid(uuid::Uuid::from_u128(2)), &wrapped).is_err());
    }
}
