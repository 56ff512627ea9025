//! A FUSE file system that remembers what a power cut would keep (the idea of LazyFS).
//!
//! Every inode has two states: the *current* one, which reads see, and the *durable* one, which
//! is all a power cut would leave. A file's durable contents and size catch up with its current
//! ones on `fsync`/`fdatasync` of that file, and only then; a folder's durable names catch up
//! with its current names on `fsync` of that folder, and only then. So a new file, a rename or
//! a removal survives a cut only once its folder was synced, the model POSIX promises and
//! LazyFS checks. `close` (FUSE `flush`), `sync_file_range` and a process's exit make nothing
//! durable.
//!
//! [`Mounted::cut`] takes the cut: under the file system's one lock, it copies every durably
//! named entry, with its durable contents, into an ordinary folder. That folder is exactly
//! what a power cut at that instant would leave behind, and the test reopens golive on it.
//!
//! Everything is kept in memory rather than passed through to a backing folder: a backing
//! folder would sit behind a second page cache whose own durability would then need modelling,
//! and a test round's files are a few megabytes. The mount asks for no writeback cache (fuser
//! does not request `FUSE_WRITEBACK_CACHE`), so each `write` reaches this file system when it
//! happens, and `flock` (sled locks its `db` file) is left to the kernel, which handles it
//! locally because the file system does not claim `FUSE_FLOCK_LOCKS`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// How long the kernel may cache names and attributes. Every change goes through the kernel,
/// so its cache never goes stale; a second saves most `lookup`/`getattr` round trips.
const TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
    /// A file's contents as reads see them.
    data: Vec<u8>,
    /// A file's contents as of its last `fsync`.
    durable_data: Vec<u8>,
    /// A folder's names as `lookup` and `readdir` see them.
    entries: BTreeMap<OsString, u64>,
    /// A folder's names as of its last `fsync`.
    durable_entries: BTreeMap<OsString, u64>,
}

impl Node {
    fn new(kind: Kind, perm: u16) -> Node {
        Node {
            kind,
            perm,
            mtime: SystemTime::now(),
            data: Vec::new(),
            durable_data: Vec::new(),
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
        }
    }
}

/// What the file system counts, for the test's figures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub writes: u64,
    pub file_syncs: u64,
    pub folder_syncs: u64,
}

struct State {
    /// Nodes are never freed: a removed file may still be named in its folder's durable
    /// entries, and a round lives a second or two.
    nodes: HashMap<u64, Node>,
    next: u64,
    counts: Counts,
}

impl State {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let size = node.data.len() as u64;
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind: match node.kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            },
            perm: node.perm,
            nlink: if node.kind == Kind::Dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        let dir = self.nodes.get(&parent).ok_or(Errno::ENOENT)?;
        if dir.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        dir.entries.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn make(&mut self, parent: u64, name: &OsStr, kind: Kind, mode: u32) -> Result<u64, Errno> {
        match self.child(parent, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(e) if e == Errno::ENOENT => {}
            Err(e) => return Err(e),
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, Node::new(kind, (mode & 0o7777) as u16));
        let dir = self.nodes.get_mut(&parent).expect("checked above");
        dir.entries.insert(name.to_owned(), ino);
        dir.mtime = SystemTime::now();
        Ok(ino)
    }

    /// Copies the durable tree under `ino` into `into` (an existing folder).
    fn copy_durable(&self, ino: u64, into: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let node = &self.nodes[&ino];
        for (name, child) in &node.durable_entries {
            let path = into.join(name);
            let child_node = &self.nodes[child];
            match child_node.kind {
                Kind::File => std::fs::write(&path, &child_node.durable_data)?,
                Kind::Dir => {
                    std::fs::create_dir(&path)?;
                    self.copy_durable(*child, &path)?;
                }
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(u32::from(child_node.perm)))?;
        }
        Ok(())
    }
}

/// The file system handed to fuser; [`Mounted`] keeps a second handle on the same state.
struct LazyFs {
    state: Arc<Mutex<State>>,
}

impl LazyFs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.state();
        match state.child(parent.0, name) {
            Ok(ino) => reply.entry(&TTL, &state.attr(ino).expect("named nodes exist"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        let Some(node) = state.nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        if let Some(size) = size {
            if node.kind == Kind::Dir {
                return reply.error(Errno::EISDIR);
            }
            node.data.resize(size as usize, 0);
            node.mtime = SystemTime::now();
        }
        let attr = state.attr(ino.0).expect("exists");
        reply.attr(&TTL, &attr);
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let mut state = self.state();
        match state.make(parent.0, name, Kind::Dir, mode & !umask) {
            Ok(ino) => reply.entry(&TTL, &state.attr(ino).expect("made"), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        match state.make(parent.0, name, Kind::File, mode & !umask) {
            Ok(ino) => {
                reply.created(&TTL, &state.attr(ino).expect("made"), Generation(0), FileHandle(0), FopenFlags::empty())
            }
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        match state.child(parent.0, name) {
            Ok(ino) if state.nodes[&ino].kind == Kind::Dir => reply.error(Errno::EISDIR),
            Ok(_) => {
                let dir = state.nodes.get_mut(&parent.0).expect("looked up");
                dir.entries.remove(name);
                dir.mtime = SystemTime::now();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        match state.child(parent.0, name) {
            Ok(ino) if state.nodes[&ino].kind != Kind::Dir => reply.error(Errno::ENOTDIR),
            Ok(ino) if !state.nodes[&ino].entries.is_empty() => reply.error(Errno::ENOTEMPTY),
            Ok(_) => {
                let dir = state.nodes.get_mut(&parent.0).expect("looked up");
                dir.entries.remove(name);
                dir.mtime = SystemTime::now();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let ino = match state.child(parent.0, name) {
            Ok(ino) => ino,
            Err(e) => return reply.error(e),
        };
        match state.child(newparent.0, newname) {
            Ok(_) if flags.contains(RenameFlags::RENAME_NOREPLACE) => return reply.error(Errno::EEXIST),
            Ok(old) if state.nodes[&old].kind == Kind::Dir && !state.nodes[&old].entries.is_empty() => {
                return reply.error(Errno::ENOTEMPTY)
            }
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return reply.error(e),
        }
        let now = SystemTime::now();
        let from = state.nodes.get_mut(&parent.0).expect("looked up");
        from.entries.remove(name);
        from.mtime = now;
        let to = state.nodes.get_mut(&newparent.0).expect("looked up");
        to.entries.insert(newname.to_owned(), ino);
        to.mtime = now;
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.state().nodes.get(&ino.0) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let state = self.state();
        let Some(node) = state.nodes.get(&ino.0) else { return reply.error(Errno::ENOENT) };
        let start = (offset as usize).min(node.data.len());
        let end = start.saturating_add(size as usize).min(node.data.len());
        reply.data(&node.data[start..end]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        state.counts.writes += 1;
        let Some(node) = state.nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        let start = offset as usize;
        let end = start + data.len();
        if node.data.len() < end {
            node.data.resize(end, 0);
        }
        node.data[start..end].copy_from_slice(data);
        node.mtime = SystemTime::now();
        reply.written(data.len() as u32);
    }

    /// `close`: makes nothing durable.
    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    /// `fsync` and `fdatasync` of a file: its contents and size become durable (not its name).
    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut state = self.state();
        state.counts.file_syncs += 1;
        let Some(node) = state.nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        node.durable_data.clone_from(&node.data);
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let state = self.state();
        let Some(node) = state.nodes.get(&ino.0) else { return reply.error(Errno::ENOENT) };
        let mut all: Vec<(u64, FileType, OsString)> =
            vec![(ino.0, FileType::Directory, ".".into()), (ino.0, FileType::Directory, "..".into())];
        for (name, child) in &node.entries {
            let kind = match state.nodes[child].kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            all.push((*child, kind, name.clone()));
        }
        for (index, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    /// `fsync` of a folder: the names in it (new, renamed, removed) become durable.
    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let mut state = self.state();
        state.counts.folder_syncs += 1;
        let Some(node) = state.nodes.get_mut(&ino.0) else { return reply.error(Errno::ENOENT) };
        node.durable_entries.clone_from(&node.entries);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}

/// A mounted [`LazyFs`]; dropping it unmounts (lazily, should a handle still be open).
pub struct Mounted {
    path: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    _dir: tempfile::TempDir,
}

impl Mounted {
    /// Mounts a fresh, empty file system on a new temporary folder. Fails where FUSE cannot be
    /// mounted (no `/dev/fuse`, not root, a container without `CAP_SYS_ADMIN`).
    pub fn new() -> io::Result<Mounted> {
        let dir = tempfile::tempdir()?;
        let mut root = Node::new(Kind::Dir, 0o755);
        root.durable_entries = BTreeMap::new();
        let state = Arc::new(Mutex::new(State {
            nodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            next: INodeNo::ROOT.0 + 1,
            counts: Counts::default(),
        }));
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("golive-lazyfs".into()), MountOption::DefaultPermissions];
        let session = fuser::spawn_mount(LazyFs { state: state.clone() }, dir.path(), &config)?;
        Ok(Mounted { path: dir.path().to_owned(), state, session: Some(session), _dir: dir })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn counts(&self) -> Counts {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).counts
    }

    /// The power cut: copies every durably named entry with its durable contents into `into`
    /// (an empty folder), atomically with respect to every operation on the file system.
    pub fn cut(&self, into: &Path) -> io::Result<()> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.copy_durable(INodeNo::ROOT.0, into)
    }

    /// Makes everything durable as it stands, as if every file and folder had been synced.
    pub fn settle(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for node in state.nodes.values_mut() {
            node.durable_data.clone_from(&node.data);
            node.durable_entries.clone_from(&node.entries);
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A lazy unmount: the name goes at once, and the session ends once the last open
        // handle (sled's background threads may still hold one) is closed.
        if let Ok(path) = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 reads a NUL-terminated path; it has no other effect on memory.
            unsafe {
                libc::umount2(path.as_ptr(), libc::MNT_DETACH);
            }
        }
        drop(self.session.take());
    }
}
