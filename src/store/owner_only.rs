//! Files and directories readable by their owner only, whatever the process's umask.
//!
//! The data directory holds the log (customer names, URLs, sealed secrets), the wrapped data
//! keys and possibly the master key: every directory in it is 0700 and every file 0600. sled
//! creates its files with the process's umask and offers no mode of its own, so the store
//! opens sled under a umask of 077 and then walks the directory to fix anything created
//! earlier or by an older build. Files sled creates later (snapshots, blobs) follow the umask
//! in force then: the `golive` binary sets 077 for its whole life, and an embedder keeps the
//! directory itself 0700 (nobody else can reach inside) and gets them fixed on the next open.

use std::path::Path;
use std::sync::Mutex;

/// The mode of every directory golive keeps data in.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file golive keeps data in.
pub const FILE_MODE: u32 = 0o600;

/// Serialises the umask's save-set-restore so two opens never restore each other's value.
static UMASK: Mutex<()> = Mutex::new(());

/// Sets the process's umask to 077 for good (the `golive` binary, at start): every file it
/// creates afterwards, sled's included, is born owner-only.
pub fn set_process_umask() {
    let _guard = UMASK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Runs `f` with a umask of 077, then puts the previous umask back.
pub fn with_private_umask<T>(f: impl FnOnce() -> T) -> T {
    let _guard = UMASK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: as above.
    let previous = unsafe { libc::umask(0o077) };
    let result = f();
    // SAFETY: as above.
    unsafe {
        libc::umask(previous);
    }
    result
}

/// Creates `dir` (and missing parents) as 0700, or makes an existing one 0700. Each folder it
/// creates is made durable: its parent is synced, so a power cut right after cannot leave a
/// data directory whose name was never written (and everything in it lost with it).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    for path in missing.iter().rev() {
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(path) {
            Ok(()) => {}
            // Another thread or process made it first: it syncs its parent itself.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
    }
    set_mode(dir, DIR_MODE)
}

/// Syncs a folder, which makes the names in it (new, renamed, removed) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if current != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Makes `dir` and every directory in it 0700 and every regular file in it 0600. Symbolic
/// links are neither followed nor changed (a link into another tree is the operator's doing).
pub fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    set_mode(dir, DIR_MODE)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            restrict_tree(&path)?;
        } else if kind.is_file() {
            set_mode(&path, FILE_MODE)?;
        }
    }
    Ok(())
}
