//! The sled backend: one tree, one writer thread, group commit.
//!
//! Every key lives in sled's default tree under a one-byte prefix, so one `apply_batch` writes a
//! whole group atomically:
//!
//! | prefix | key                      | value                          |
//! |--------|--------------------------|--------------------------------|
//! | `e`    | position (u64 BE)        | the envelope, JSON             |
//! | `s`    | stream (16) + version BE | position (u64 BE)              |
//! | `h`    | stream (16)              | version (u64 BE)               |
//! | `m`    | `head`                   | position (u64 BE) + hash (hex) |
//! | `i`    | idempotency key          | the record, JSON               |
//! | `a`    | aux key                  | bytes (snapshots, checkpoints) |
//! | `c`    | counter key              | value (u64 BE)                 |
//!
//! Aux values and counters are written outside the writer thread with sled's own atomic
//! operations (`compare_and_swap`, `update_and_fetch`), which hold across every handle of the
//! one process that may open the directory. A conditional aux write is flushed before it
//! returns: a revoked token must stay revoked after a crash.
//!
//! The writer takes the first waiting append, then every append already queued behind it (up to
//! a bound), plans each with the append planner (`append_plan.rs`) against the heads as they
//! stand within the group, writes the group as
//! one batch, makes it durable once, and only then answers every appender of the group.
//!
//! Durable means durable against a power cut, not only a process crash. sled's own `flush` ends
//! in `sync_file_range`, which neither writes the file's metadata (a grown size, a new file's
//! name) nor asks the disk to empty its cache. So every flush goes through [`Durability::flush`]:
//! sled's flush, then `fdatasync` of sled's `db` file, and an `fsync` of any file sled created
//! since the last look (snapshots, blobs) and of the folder that names it. The folders
//! themselves (`events.sled`, its `blobs`, the data directory) are synced once at open, after
//! sled created them. The power-cut test (`tests/it/power_cut.rs`) proves what this buys.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

use super::append_plan::{AppendPlanner, Commit, Plan};
use super::{AppendOutcome, AppendRequest, EventStore, Head, IdempotencyRecord, StoreError, StoredEvent, GENESIS_HASH};

/// sled's page cache by default: room for the working set of a few hundred thousand events
/// while staying well inside the 512 MiB a million-event store may use.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The most appends one group commits.
pub const MAX_GROUP_APPENDS: usize = 1024;
/// Live-tail buffer; a subscriber further behind re-reads the log.
const COMMITTED_CHANNEL_CAPACITY: usize = 8192;

/// What the flush hook learns: the positions a flush made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushInfo {
    pub group_appends: usize,
    pub last_position: u64,
}

/// Called after each group's flush and before any of its appenders is answered.
pub type FlushHook = Arc<dyn Fn(FlushInfo) + Send + Sync>;

/// How far a flush goes before an appender is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// sled's flush, then `fdatasync`/`fsync` of sled's files and folders: an acknowledged
    /// write survives a power cut. The default, and the only mode the `golive` binary uses.
    #[default]
    Durable,
    /// sled's flush alone (`sync_file_range`): an acknowledged write survives a process crash
    /// but not a power cut. The behaviour before power-loss durability, kept so the power-cut
    /// test can keep proving that it loses acknowledged events and the benchmark can measure
    /// the difference in one run. Never the default; nothing outside tests and benchmarks sets it.
    FlushOnly,
}

#[derive(Clone, Default)]
pub struct SledStoreOptions {
    /// What a flush makes durable (default [`SyncMode::Durable`]).
    pub sync: SyncMode,
    /// sled's page cache, in bytes (default [`DEFAULT_CACHE_BYTES`]).
    pub cache_capacity_bytes: Option<u64>,
    pub flush_hook: Option<FlushHook>,
    /// How long to keep trying when the directory is locked. Another process's lock is
    /// reported at once by default; a reopen within one process (tests) may need a moment,
    /// because sled releases its lock from background threads after the last handle drops.
    pub wait_for_lock: std::time::Duration,
}

/// Counters for benchmarks and `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub flushes: AtomicU64,
    pub appends_committed: AtomicU64,
    pub events_committed: AtomicU64,
}

type Reply = oneshot::Sender<Result<AppendOutcome, StoreError>>;

enum Job {
    Append(AppendRequest, Reply),
    Close(oneshot::Sender<Result<(), StoreError>>),
}

pub struct SledStore {
    db: sled::Db,
    durability: Arc<Durability>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    committed: broadcast::Sender<Arc<StoredEvent>>,
    head: Arc<Mutex<Head>>,
    heads: Arc<Mutex<HashMap<Uuid, u64>>>,
    stats: Arc<StoreStats>,
    /// Set by the writer when a write failed; shared so readiness can report it.
    poisoned: Arc<Mutex<Option<String>>>,
}

fn storage(error: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(error.to_string())
}

fn event_key(position: u64) -> [u8; 9] {
    let mut key = [b'e'; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn stream_key(stream: Uuid, version: u64) -> [u8; 25] {
    let mut key = [b's'; 25];
    key[1..17].copy_from_slice(stream.as_bytes());
    key[17..].copy_from_slice(&version.to_be_bytes());
    key
}

fn head_key(stream: Uuid) -> [u8; 17] {
    let mut key = [b'h'; 17];
    key[1..].copy_from_slice(stream.as_bytes());
    key
}

fn prefixed(prefix: u8, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(prefix);
    out.extend_from_slice(key.as_bytes());
    out
}

const META_HEAD: &[u8] = b"mhead";

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(buf)
}

fn decode_event(position: u64, bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt { position, reason: format!("undecodable envelope: {e}") })
}

impl SledStore {
    /// Opens (or creates) a store in `dir`. Fails with [`StoreError::Locked`] when another
    /// process has it open.
    pub fn open(dir: &Path, options: SledStoreOptions) -> Result<Arc<SledStore>, StoreError> {
        super::owner_only::create_dir(dir).map_err(storage)?;
        let config = sled::Config::new()
            .path(dir.join("events.sled"))
            .cache_capacity(options.cache_capacity_bytes.unwrap_or(DEFAULT_CACHE_BYTES))
            .mode(sled::Mode::HighThroughput);
        let started = std::time::Instant::now();
        let db = loop {
            // sled creates its files with the umask: open it under 077 (see `owner_only`).
            match super::owner_only::with_private_umask(|| config.open()) {
                Ok(db) => break db,
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
                {
                    if started.elapsed() >= options.wait_for_lock {
                        return Err(StoreError::Locked { path: dir.display().to_string() });
                    }
                    thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => return Err(storage(error)),
            }
        };
        // Files sled made under an earlier, laxer umask (or an older build) become owner-only.
        super::owner_only::restrict_tree(dir).map_err(storage)?;
        let durability = match options.sync {
            SyncMode::Durable => Durability::open(dir, &dir.join("events.sled"))?,
            SyncMode::FlushOnly => Durability::flush_only(),
        };
        Self::start(db, options, durability)
    }

    /// A store in a temporary directory removed on drop (tests, benchmarks).
    pub fn temporary(options: SledStoreOptions) -> Result<Arc<SledStore>, StoreError> {
        let db = sled::Config::new().temporary(true).open().map_err(storage)?;
        // A temporary store is gone after a crash anyway: sled's flush is all it needs.
        Self::start(db, options, Durability::flush_only())
    }

    fn start(db: sled::Db, options: SledStoreOptions, durability: Durability) -> Result<Arc<SledStore>, StoreError> {
        let durability = Arc::new(durability);
        let head = match db.get(META_HEAD).map_err(storage)? {
            Some(bytes) => Head { position: read_u64(&bytes), hash: String::from_utf8_lossy(&bytes[8..]).into_owned() },
            None => Head { position: 0, hash: GENESIS_HASH.to_owned() },
        };
        let last_event = db.scan_prefix(b"e").next_back().transpose().map_err(storage)?;
        let last_position = last_event.map(|(key, _)| read_u64(&key[1..])).unwrap_or(0);
        if last_position != head.position {
            return Err(StoreError::Corrupt {
                position: last_position,
                reason: format!("the log ends at {last_position} but its head says {}", head.position),
            });
        }
        let mut heads = HashMap::new();
        for entry in db.scan_prefix(b"h") {
            let (key, value) = entry.map_err(storage)?;
            let stream = Uuid::from_slice(&key[1..17]).map_err(storage)?;
            heads.insert(stream, read_u64(&value));
        }
        let (committed, _) = broadcast::channel(COMMITTED_CHANNEL_CAPACITY);
        let head = Arc::new(Mutex::new(head));
        let heads = Arc::new(Mutex::new(heads));
        let stats = Arc::new(StoreStats::default());
        let (jobs, receiver) = mpsc::channel();
        let poisoned = Arc::new(Mutex::new(None));
        let writer = Writer {
            db: db.clone(),
            durability: durability.clone(),
            receiver,
            committed: committed.clone(),
            head: head.clone(),
            heads: heads.clone(),
            stats: stats.clone(),
            flush_hook: options.flush_hook,
            poisoned: poisoned.clone(),
        };
        thread::Builder::new().name("golive-writer".into()).spawn(move || writer.run()).map_err(storage)?;
        Ok(Arc::new(SledStore {
            db,
            durability,
            jobs: Mutex::new(Some(jobs)),
            committed,
            head,
            heads,
            stats,
            poisoned,
        }))
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Bytes sled uses on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(storage)
    }

    /// The underlying sled database (tests rewrite records through it to prove tamper evidence).
    pub fn sled(&self) -> &sled::Db {
        &self.db
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let guard = self.jobs.lock().expect("jobs lock");
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)
    }
}

#[async_trait]
impl EventStore for SledStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        if request.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        let (reply, answer) = oneshot::channel();
        self.send(Job::Append(request, reply))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: Uuid, from_version: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let start = stream_key(stream, from_version.max(1));
        let end = stream_key(stream, u64::MAX);
        let mut out = Vec::new();
        for entry in self.db.range(start..=end).take(limit) {
            let (_, position) = entry.map_err(storage)?;
            let position = read_u64(&position);
            let bytes = self.db.get(event_key(position)).map_err(storage)?.ok_or_else(|| StoreError::Corrupt {
                position,
                reason: "the stream index names a missing event".into(),
            })?;
            out.push(decode_event(position, &bytes)?);
        }
        Ok(out)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let start = event_key(after.saturating_add(1));
        let end = event_key(u64::MAX);
        let mut out = Vec::with_capacity(limit.min(4096));
        for entry in self.db.range(start..=end).take(limit) {
            let (key, bytes) = entry.map_err(storage)?;
            out.push(decode_event(read_u64(&key[1..]), &bytes)?);
        }
        Ok(out)
    }

    async fn stream_version(&self, stream: Uuid) -> Result<u64, StoreError> {
        Ok(self.heads.lock().expect("heads lock").get(&stream).copied().unwrap_or(0))
    }

    async fn streams(&self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let mut all: Vec<(Uuid, u64)> = self.heads.lock().expect("heads lock").iter().map(|(k, v)| (*k, *v)).collect();
        all.sort();
        Ok(all)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        Ok(self.head.lock().expect("head lock").clone())
    }

    async fn idempotency_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        match self.db.get(prefixed(b'i', key)).map_err(storage)? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(storage),
            None => Ok(None),
        }
    }

    async fn get_aux(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(prefixed(b'a', key)).map_err(storage)?.map(|v| v.to_vec()))
    }

    async fn put_aux(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.db.insert(prefixed(b'a', key), value).map_err(storage)?;
        Ok(())
    }

    async fn put_aux_if_absent(&self, key: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        self.compare_and_swap_aux(key, None, Some(value)).await
    }

    async fn compare_and_swap_aux(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let swapped = self.db.compare_and_swap(prefixed(b'a', key), expected, new).map_err(storage)?.is_ok();
        if swapped {
            // sled's own `flush_async` can deadlock its small IO pool under concurrent
            // callers; a blocking flush on tokio's blocking pool cannot.
            let (db, durability) = (self.db.clone(), self.durability.clone());
            tokio::task::spawn_blocking(move || durability.flush(&db)).await.map_err(storage)??;
        }
        Ok(swapped)
    }

    async fn scan_aux(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix(prefixed(b'a', prefix)) {
            let (key, value) = entry.map_err(storage)?;
            let key = String::from_utf8(key[1..].to_vec()).map_err(storage)?;
            out.push((key, value.to_vec()));
        }
        Ok(out)
    }

    async fn add_to_counter(&self, key: &str, delta: u64) -> Result<u64, StoreError> {
        let updated = self
            .db
            .update_and_fetch(prefixed(b'c', key), |old| {
                let value = old.map(read_u64).unwrap_or(0).saturating_add(delta);
                Some(value.to_be_bytes().to_vec())
            })
            .map_err(storage)?;
        Ok(updated.map(|v| read_u64(&v)).unwrap_or(0))
    }

    async fn read_counter(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self.db.get(prefixed(b'c', key)).map_err(storage)?.map(|v| read_u64(&v)).unwrap_or(0))
    }

    fn committed(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.committed.subscribe()
    }

    fn write_health(&self) -> Result<(), StoreError> {
        match self.poisoned.lock().expect("poisoned lock").clone().or_else(|| self.durability.failure()) {
            Some(reason) => Err(StoreError::Poisoned(reason)),
            None => Ok(()),
        }
    }

    fn counters(&self) -> super::StoreCounters {
        super::StoreCounters {
            flushes: self.stats.flushes.load(Ordering::Relaxed),
            appends_committed: self.stats.appends_committed.load(Ordering::Relaxed),
            events_committed: self.stats.events_committed.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let sender = self.jobs.lock().expect("jobs lock").take();
        match sender {
            Some(sender) => {
                sender.send(Job::Close(reply)).map_err(|_| StoreError::Closed)?;
                answer.await.map_err(|_| StoreError::Closed)?
            }
            None => Ok(()),
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Some(sender) = self.jobs.lock().ok().and_then(|mut j| j.take()) {
            let (reply, _) = oneshot::channel();
            let _ = sender.send(Job::Close(reply));
        }
    }
}

/// What a flush syncs beyond sled's own flush, and what it has already synced.
pub(crate) struct Durability {
    /// `None` in [`SyncMode::FlushOnly`] (and for temporary stores): sled's flush alone.
    files: Option<SledFiles>,
    /// The first failed flush, whoever hit it. Linux reports a writeback error once per open
    /// file, so after one failure a later flush may succeed without the earlier pages ever
    /// reaching the disk: every flush after the first failure fails too, and the store refuses
    /// writes until golive restarts (and recovers from what is on disk).
    failure: Mutex<Option<String>>,
}

struct SledFiles {
    /// sled's folder, `<data-dir>/events.sled`.
    dir: PathBuf,
    /// A handle on sled's `db` file held for the store's life, so a flush costs one
    /// `fdatasync` and no `open`.
    db: File,
    /// The names in sled's folder and its `blobs` folder as of the last sync: a name not in
    /// here is a file sled created since (a snapshot, a blob), whose contents and name must be
    /// synced; a name gone from the folder is a removal the folder's sync makes durable.
    known: Mutex<BTreeSet<PathBuf>>,
}

impl Durability {
    fn flush_only() -> Durability {
        Durability { files: None, failure: Mutex::new(None) }
    }

    /// The first failed flush, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().expect("durability failure lock").clone()
    }

    /// Syncs what sled just created (its folder, `blobs`, `conf`, `db`, any snapshot), then
    /// the data directory that names `events.sled`, and holds the `db` file open.
    fn open(data_dir: &Path, dir: &Path) -> Result<Durability, StoreError> {
        let db = File::open(dir.join("db")).map_err(storage)?;
        let mut known = BTreeSet::new();
        for folder in [dir.join("blobs"), dir.to_path_buf()] {
            for name in list(&folder)? {
                let path = folder.join(&name);
                if path.is_file() {
                    File::open(&path).and_then(|f| f.sync_all()).map_err(storage)?;
                }
                known.insert(path);
            }
            sync_folder(&folder)?;
        }
        sync_folder(data_dir)?;
        Ok(Durability {
            files: Some(SledFiles { dir: dir.to_path_buf(), db, known: Mutex::new(known) }),
            failure: Mutex::new(None),
        })
    }

    /// The one way golive flushes sled: after it returns `Ok`, everything written to `db`
    /// before the call survives a power cut (or a process crash in [`SyncMode::FlushOnly`]).
    pub(crate) fn flush(&self, db: &sled::Db) -> Result<(), StoreError> {
        if let Some(reason) = self.failure() {
            return Err(StoreError::Poisoned(reason));
        }
        let result = self.flush_once(db);
        if let Err(error) = &result {
            let mut failure = self.failure.lock().expect("durability failure lock");
            failure.get_or_insert_with(|| error.to_string());
        }
        result
    }

    fn flush_once(&self, db: &sled::Db) -> Result<(), StoreError> {
        db.flush().map_err(storage)?;
        let Some(files) = &self.files else { return Ok(()) };
        // The log's bytes and the file's grown size; `fdatasync` includes the size when it
        // is needed to read the data back, and skips the rest of the metadata (times).
        files.db.sync_data().map_err(storage)?;
        // Files sled created or removed since the last look. Listing two small folders costs
        // microseconds beside the `fdatasync`; a folder is synced only when its names changed.
        let mut known = files.known.lock().expect("durability lock");
        for folder in [files.dir.join("blobs"), files.dir.clone()] {
            let now: BTreeSet<PathBuf> = list(&folder)?.into_iter().map(|name| folder.join(name)).collect();
            let before: BTreeSet<PathBuf> =
                known.iter().filter(|p| p.parent() == Some(folder.as_path())).cloned().collect();
            if now == before {
                continue;
            }
            for path in now.difference(&before) {
                if path.is_file() {
                    // A snapshot or a blob: sled syncs a snapshot itself but not every blob.
                    match File::open(path).and_then(|f| f.sync_all()) {
                        Ok(()) => {}
                        // Renamed or removed between the listing and here: the next
                        // listing sees what replaced it.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(storage(e)),
                    }
                }
            }
            sync_folder(&folder)?;
            known.retain(|p| p.parent() != Some(folder.as_path()));
            known.extend(now);
        }
        Ok(())
    }
}

/// The names in `folder` (none when it does not exist).
fn list(folder: &Path) -> Result<Vec<std::ffi::OsString>, StoreError> {
    match std::fs::read_dir(folder) {
        Ok(entries) => entries.map(|e| e.map(|e| e.file_name()).map_err(storage)).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(storage(e)),
    }
}

/// `fsync` of a folder: makes the names in it (new, renamed, removed) durable.
fn sync_folder(folder: &Path) -> Result<(), StoreError> {
    super::owner_only::sync_dir(folder).map_err(|e| {
        // The path goes to the log only: the error's text reaches `/readyz`, which is public.
        tracing::error!(folder = %folder.display(), error = %e, "syncing a folder of the store failed");
        storage(format!("syncing a folder of the store: {e}"))
    })
}

struct Writer {
    db: sled::Db,
    durability: Arc<Durability>,
    receiver: mpsc::Receiver<Job>,
    committed: broadcast::Sender<Arc<StoredEvent>>,
    head: Arc<Mutex<Head>>,
    heads: Arc<Mutex<HashMap<Uuid, u64>>>,
    stats: Arc<StoreStats>,
    flush_hook: Option<FlushHook>,
    poisoned: Arc<Mutex<Option<String>>>,
}

/// One append's place in a group: its reply and what it will answer after the flush.
struct Pending {
    reply: Reply,
    outcome: Result<AppendOutcome, StoreError>,
}

impl Writer {
    fn run(mut self) {
        while let Ok(first) = self.receiver.recv() {
            let mut group = Vec::new();
            let mut close = None;
            match first {
                Job::Append(request, reply) => group.push((request, reply)),
                Job::Close(reply) => close = Some(reply),
            }
            while close.is_none() && group.len() < MAX_GROUP_APPENDS {
                match self.receiver.try_recv() {
                    Ok(Job::Append(request, reply)) => group.push((request, reply)),
                    Ok(Job::Close(reply)) => close = Some(reply),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            if let Some(reply) = close {
                let result = self.durability.flush(&self.db);
                // Release this thread's handle before answering, so a reopen right after
                // `close` finds the directory unlocked once the store itself is dropped.
                drop(self);
                let _ = reply.send(result);
                return;
            }
        }
    }

    fn commit_group(&mut self, group: Vec<(AppendRequest, Reply)>) {
        if let Some(reason) = self.poisoned.lock().expect("poisoned lock").clone() {
            for (_, reply) in group {
                let _ = reply.send(Err(StoreError::Poisoned(reason.clone())));
            }
            return;
        }
        let mut planner = AppendPlanner::new(self.head.lock().expect("head lock").clone());
        let mut batch = sled::Batch::default();
        let mut pending = Vec::with_capacity(group.len());
        let mut written: Vec<Arc<StoredEvent>> = Vec::new();
        let mut appends = 0u64;
        for (request, reply) in group {
            let plan = planner.plan(
                &request,
                |stream| self.heads.lock().expect("heads lock").get(&stream).copied().unwrap_or(0),
                |key| match self.db.get(prefixed(b'i', key)).map_err(storage)? {
                    Some(bytes) => serde_json::from_slice::<IdempotencyRecord>(&bytes).map(Some).map_err(storage),
                    None => Ok(None),
                },
            );
            let outcome = match plan {
                Plan::Commit(commit) => stage(commit, &mut batch, &mut written),
                Plan::Answer(answer) => answer,
            };
            if matches!(outcome, Ok(AppendOutcome::Committed(_))) {
                appends += 1;
            }
            pending.push(Pending { reply, outcome });
        }
        if !written.is_empty() {
            let head = planner.head().clone();
            let mut meta = head.position.to_be_bytes().to_vec();
            meta.extend_from_slice(head.hash.as_bytes());
            batch.insert(META_HEAD, meta);
            let result = self.db.apply_batch(batch).map_err(storage).and_then(|_| self.durability.flush(&self.db));
            if let Err(error) = result {
                // Whether the batch reached the disk is unknown: refuse further writes rather
                // than build on a state that may differ from the disk. Nobody is acknowledged.
                let reason = match error {
                    StoreError::Storage(reason) => reason,
                    other => other.to_string(),
                };
                *self.poisoned.lock().expect("poisoned lock") = Some(reason.clone());
                for p in pending {
                    let _ = p.reply.send(Err(StoreError::Storage(reason.clone())));
                }
                return;
            }
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
            self.stats.appends_committed.fetch_add(appends, Ordering::Relaxed);
            self.stats.events_committed.fetch_add(written.len() as u64, Ordering::Relaxed);
            if let Some(hook) = &self.flush_hook {
                hook(FlushInfo { group_appends: appends as usize, last_position: head.position });
            }
            *self.head.lock().expect("head lock") = head;
            self.heads.lock().expect("heads lock").extend(planner.versions());
        }
        for p in pending {
            let _ = p.reply.send(p.outcome);
        }
        for event in written {
            let _ = self.committed.send(event);
        }
    }
}

/// Puts a planned append's keys into the group's batch: the envelopes, the stream index, the
/// stream's head and the idempotency record.
fn stage(
    commit: Commit,
    batch: &mut sled::Batch,
    written: &mut Vec<Arc<StoredEvent>>,
) -> Result<AppendOutcome, StoreError> {
    for envelope in &commit.events {
        let bytes = serde_json::to_vec(envelope).map_err(storage)?;
        batch.insert(&event_key(envelope.position), bytes);
        batch.insert(&stream_key(commit.stream, envelope.version), &envelope.position.to_be_bytes());
    }
    batch.insert(&head_key(commit.stream), &commit.version_after.to_be_bytes());
    if let Some(record) = &commit.record {
        batch.insert(prefixed(b'i', &record.key), serde_json::to_vec(record).map_err(storage)?);
    }
    written.extend(commit.events.iter().cloned().map(Arc::new));
    Ok(AppendOutcome::Committed(commit.events))
}
