//! The disk tier: verified entries under `<cache_dir>/v1/{components,bytecode}/`.
//!
//! Invariants:
//! - Every access goes through the one `cap_std::fs::Dir` of `<cache_dir>/v1`
//!   opened by [`DiskTier::open`]; file names are only ever
//!   `<hex key>.<ext>` or temporaries beside them, never anything a handler
//!   named.
//! - That directory and its two subdirectories are created 0700 and used
//!   only if this user owns them and neither group nor others may write
//!   them: the cache holds native code. Otherwise the tier holds nothing
//!   (memory only), after one warning that says why and how to fix it. The
//!   cache directory itself may be shared (a volume's root): it is checked
//!   only through `v1`, opened once.
//! - A file is read whole and passes [`format::decode`] before its payload
//!   is returned; one that fails is deleted and counted.
//! - Writes go to a temporary file in the same directory, then rename, so a
//!   reader (in this process or another) sees a whole entry or none. The
//!   writer holds an `flock` on its temporary until it is renamed: one that
//!   nobody holds was left by a writer that died (SIGKILL), and the next
//!   rescan removes it.
//! - The directory's files take no more blocks than the budget (see
//!   [`super::budget`]), counted as a kubelet counts them (allocated
//!   blocks, temporaries included) and rescanned before every write, so
//!   that processes sharing the directory keep one bound: least recently
//!   used entries are deleted first. The index is rebuilt from
//!   the directory at start-up, by modification time, which a hit refreshes.
//! - A seed directory ([`DiskTier::seed`]) is a cache directory made ahead
//!   and only ever read: root may own it (an image's files), and then its
//!   files must be safe too (owned by root or this user, writable by nobody
//!   else). Nothing in it is written, touched or removed; a damaged entry
//!   is refused and counted, and the caller compiles instead.
//! - Nothing here fails a caller: an unusable directory or a full disk is
//!   warned about once per operation, counted, and the entry skipped.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use std::os::unix::fs::DirBuilderExt as _;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use rustix::fs::{FlockOperation, OFlags};

use super::budget::Budget;
use super::format::{self, Damage};
use super::trust::{self, Owners};
use super::{Key, Kind, TierStats};

/// The mode of every directory the cache creates: only its owner may
/// enter, list or write it.
const PRIVATE: u32 = 0o700;

/// Whether a tier is used (created, evicted to its bound), only looked at,
/// or a read-only seed: never written, nothing in it ever removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Use,
    Inspect,
    Seed,
}

impl Access {
    fn owners(self) -> Owners {
        match self {
            Access::Seed => Owners::ThisUserOrRoot,
            Access::Use | Access::Inspect => Owners::ThisUser,
        }
    }
}

/// Whether `name` is a writer's temporary (`.tmp-…`).
fn is_temp(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".tmp-")
}

/// Why an entry was not read.
enum Refused {
    Io(io::Error),
    Damaged(Damage),
}

/// The unit a file system allocates in, for estimating a file's blocks
/// before it is written.
const BLOCK: usize = 4096;

/// What `meta`'s file takes on disk: its allocated blocks, which a
/// kubelet counts against a volume (a 330-byte entry takes 4 KiB).
fn allocated(meta: &cap_std::fs::Metadata) -> u64 {
    meta.blocks() * 512
}

/// No entry is ever larger (a prepared typescript handler's component is
/// about 50 MB): a larger file is refused unread.
const MAX_ENTRY: u64 = 1 << 30;

/// Temporaries older than this are leftovers of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// The operations whose failures are counted, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening or creating the directory.
    Open,
    /// Reading an entry.
    Read,
    /// Writing an entry.
    Write,
    /// Deleting an entry.
    Remove,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 4] = [Op::Open, Op::Read, Op::Write, Op::Remove];

    /// The `op` label: `open`, `read`, `write` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Remove => "remove",
        }
    }
}

struct Entry {
    bytes: u64,
    last_access: SystemTime,
}

/// The directory's files as last scanned, charged to the disk budget by
/// the blocks they take.
struct Index {
    entries: HashMap<(Kind, Key), Entry>,
    /// Temporaries being written (by any process): charged, never evicted.
    temp_bytes: u64,
    budget: Budget,
    stats: [TierStats; 2],
}

impl Index {
    fn new(capacity: u64) -> Self {
        Self {
            entries: HashMap::new(),
            temp_bytes: 0,
            budget: Budget::new(capacity),
            stats: Default::default(),
        }
    }

    fn insert(&mut self, kind: Kind, key: Key, bytes: u64, last_access: SystemTime) {
        self.remove(kind, &key);
        self.budget.charge(bytes);
        self.entries
            .insert((kind, key), Entry { bytes, last_access });
    }

    fn remove(&mut self, kind: Kind, key: &Key) -> bool {
        match self.entries.remove(&(kind, *key)) {
            Some(old) => {
                self.budget.refund(old.bytes);
                true
            }
            None => false,
        }
    }

    /// The least recently used entry, taken out of the index.
    fn pop_lru(&mut self) -> Option<(Kind, Key)> {
        let (&(kind, key), _) = self.entries.iter().min_by_key(|(_, e)| e.last_access)?;
        self.remove(kind, &key);
        Some((kind, key))
    }
}

/// What `verify` found: files checked, and the ones refused (and removed).
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Files read and checked.
    pub checked: u64,
    /// Each damaged file's path and what was wrong with it.
    pub damaged: Vec<(String, String)>,
}

/// The cache directory's entries. Share it behind an `Arc`.
pub(super) struct DiskTier {
    /// `<root>/v1`, where every entry lives; `None` if unusable.
    dir: Option<Dir>,
    /// `<root>`, only to remove `v1` on `clear`.
    root_dir: Option<Dir>,
    root: PathBuf,
    /// Why the directory could not be used.
    unavailable: Option<String>,
    access: Access,
    /// The largest file read: no entry may be larger.
    read_limit: u64,
    index: Mutex<Index>,
    corrupt: [AtomicU64; 2],
    errors: [AtomicU64; 4],
    warned: [std::sync::atomic::AtomicBool; 4],
    temp_counter: AtomicU64,
}

impl DiskTier {
    /// Opens (creating it if needed) the cache directory at `root`, bounded
    /// to `capacity` bytes. Never fails: an unusable directory gives a tier
    /// that holds nothing, after one warning.
    pub fn open(root: &Path, capacity: u64) -> DiskTier {
        Self::open_as(root, capacity, Access::Use)
    }

    /// Opens an existing cache directory to look at it (`nexus cache stats`
    /// and `verify`): nothing is created, and nothing evicted to fit
    /// `capacity`, which only bounds what may be read.
    pub fn inspect(root: &Path, capacity: u64) -> DiskTier {
        Self::open_as(root, capacity, Access::Inspect)
    }

    /// Opens a seed directory: a cache directory made ahead, only ever
    /// read. Root may own it; its files are trusted like its directories.
    pub fn seed(root: &Path) -> DiskTier {
        Self::open_as(root, MAX_ENTRY, Access::Seed)
    }

    fn open_as(root: &Path, capacity: u64, access: Access) -> DiskTier {
        let mut tier = DiskTier {
            dir: None,
            root_dir: None,
            root: root.to_owned(),
            unavailable: None,
            access,
            read_limit: match access {
                Access::Use => capacity.min(MAX_ENTRY),
                Access::Inspect | Access::Seed => MAX_ENTRY,
            },
            index: Mutex::new(Index::new(capacity)),
            corrupt: Default::default(),
            errors: Default::default(),
            warned: Default::default(),
            temp_counter: AtomicU64::new(0),
        };
        match Self::open_dir(root, access) {
            Ok((root_dir, dir)) => {
                tier.root_dir = Some(root_dir);
                tier.dir = Some(dir);
                tier.rebuild_index(access);
            }
            // A seed's caller says why it is not used, in its own words.
            Err(e) if access == Access::Seed => tier.unavailable = Some(e.to_string()),
            Err(e) => {
                tier.failed(Op::Open, &e);
                tier.unavailable = Some(e.to_string());
            }
        }
        tier
    }

    /// Opens `root` (created 0700 if missing, to use it) and, inside it,
    /// the version directory every entry lives in, checked trustworthy.
    fn open_dir(root: &Path, access: Access) -> io::Result<(Dir, Dir)> {
        let private = {
            let mut builder = cap_std::fs::DirBuilder::new();
            builder.recursive(true).mode(PRIVATE);
            builder
        };
        let version = root.join(super::VERSION_DIR);
        // The one ambient step: from here on, only paths inside `root`.
        if access == Access::Use {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE)
                .create(root)?;
        }
        let root_dir = Dir::open_ambient_dir(root, ambient_authority())?;
        if access == Access::Use {
            root_dir.create_dir_with(super::VERSION_DIR, &private)?;
        }
        // Opened once: renaming or replacing the name later cannot redirect
        // this process's reads.
        let dir = root_dir
            .open_dir(super::VERSION_DIR)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", version.display())))?;
        let owners = access.owners();
        trust::check_dir(&version, &dir.dir_metadata()?, owners)?;
        for kind in Kind::ALL {
            if access == Access::Use {
                dir.create_dir_with(kind.dir(), &private)?;
            }
            match dir.metadata(kind.dir()) {
                Ok(meta) => trust::check_dir(&version.join(kind.dir()), &meta, owners)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && access != Access::Use => {}
                Err(e) => return Err(e),
            }
        }
        Ok((root_dir, dir))
    }

    /// Whether the directory could be opened.
    pub fn is_available(&self) -> bool {
        self.dir.is_some()
    }

    /// Why the directory cannot be used, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// An entry's path, as messages show it.
    fn shown(&self, path: &Path) -> PathBuf {
        self.root.join(super::VERSION_DIR).join(path)
    }

    /// Rebuilds the index from what the directory really holds now (other
    /// processes write to it too), counting each file's allocated blocks,
    /// temporaries included; removes temporaries a crashed writer left.
    /// Hits, misses and evictions so far are kept.
    fn rescan(&self, dir: &Dir, index: &mut Index, access: Access) {
        let stats = index.stats;
        *index = Index::new(index.budget.capacity());
        index.stats = stats;
        for kind in Kind::ALL {
            let Ok(entries) = dir.read_dir(kind.dir()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Ok(meta) = entry.metadata() else { continue };
                let modified = meta
                    .modified()
                    .map(|t| t.into_std())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                if is_temp(&name) {
                    let path = Path::new(kind.dir()).join(&name);
                    let age = SystemTime::now()
                        .duration_since(modified)
                        .unwrap_or_default();
                    if access == Access::Use && (age > STALE_TEMP || !Self::held(dir, &path)) {
                        let _ = dir.remove_file(&path);
                    } else {
                        index.temp_bytes += allocated(&meta);
                        index.budget.charge(allocated(&meta));
                    }
                    continue;
                }
                if let Some(key) = kind.key_of(&name) {
                    index.insert(kind, key, allocated(&meta), modified);
                }
            }
        }
    }

    /// Whether a live writer holds the temporary at `path` (its lock).
    fn held(dir: &Dir, path: &Path) -> bool {
        let mut options = cap_std::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(OFlags::NONBLOCK.bits() as i32);
        let Ok(file) = dir.open_with(path, &options) else {
            return true;
        };
        // A lock taken here is let go when `file` closes, at once.
        rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive).is_err()
    }

    fn rebuild_index(&self, access: Access) {
        let Some(dir) = &self.dir else { return };
        let mut index = self.index.lock().unwrap();
        self.rescan(dir, &mut index, access);
        if access == Access::Use {
            self.evict_until_admitted(dir, &mut index, 0);
        }
    }

    fn path(kind: Kind, key: &Key) -> PathBuf {
        Path::new(kind.dir()).join(format!("{}.{}", key.to_hex(), kind.extension()))
    }

    /// The verified payload of the entry, or `None` (a miss) if it is
    /// absent, unreadable or damaged; a damaged file is deleted.
    pub fn read(&self, kind: Kind, key: &Key) -> Option<Vec<u8>> {
        let dir = self.dir.as_ref()?;
        let path = Self::path(kind, key);
        let miss = || self.index.lock().unwrap().stats[kind.index()].misses += 1;
        let (file, bytes) = match self.read_entry(dir, &path) {
            Ok(read) => read,
            Err(Refused::Io(e)) => {
                self.index.lock().unwrap().remove(kind, key);
                miss();
                if e.kind() != io::ErrorKind::NotFound {
                    self.failed(Op::Read, &e);
                }
                return None;
            }
            Err(Refused::Damaged(damage)) => {
                self.discard(dir, kind, key, &path, &damage);
                miss();
                return None;
            }
        };
        match format::decode(kind, key, &bytes) {
            Ok(payload) => {
                let payload = payload.to_vec();
                let now = SystemTime::now();
                // Best effort: the next process sees this access too.
                if self.access == Access::Use {
                    let _ = file.into_std().set_modified(now);
                }
                let mut index = self.index.lock().unwrap();
                index.insert(kind, *key, bytes.len() as u64, now);
                index.stats[kind.index()].hits += 1;
                Some(payload)
            }
            Err(damage) => {
                self.discard(dir, kind, key, &path, &damage);
                miss();
                None
            }
        }
    }

    /// Opens and reads one entry, refusing before a byte is read anything
    /// that is not a regular file (a FIFO would block, a device never end)
    /// or is larger than the tier may hold (a sparse 1 TiB file); it opens
    /// without blocking, and reads no more than the size it checked.
    fn read_entry(&self, dir: &Dir, path: &Path) -> Result<(cap_std::fs::File, Vec<u8>), Refused> {
        let mut options = cap_std::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
        let file = dir.open_with(path, &options).map_err(Refused::Io)?;
        let meta = file.metadata().map_err(Refused::Io)?;
        if !meta.is_file() {
            return Err(Refused::Damaged(Damage::NotAFile));
        }
        // A cache directory's files are private to its 0700 directories; a
        // seed's are readable by all, and each must be as safe as its
        // directory.
        if self.access == Access::Seed {
            trust::check_file(&meta, self.access.owners())
                .map_err(|why| Refused::Damaged(Damage::Untrusted(why)))?;
        }
        let limit = self.read_limit;
        if meta.len() > limit {
            return Err(Refused::Damaged(Damage::TooLarge {
                size: meta.len(),
                limit,
            }));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        (&file)
            .take(meta.len() + 1)
            .read_to_end(&mut bytes)
            .map_err(Refused::Io)?;
        Ok((file, bytes))
    }

    /// Treats the entry as damaged: its payload passed the header but not
    /// its loader.
    pub fn reject(&self, kind: Kind, key: &Key, why: &str) {
        if let Some(dir) = &self.dir {
            let path = Self::path(kind, key);
            self.corrupt[kind.index()].fetch_add(1, Relaxed);
            if self.access == Access::Seed {
                tracing::warn!(file = %self.shown(&path).display(), "seed entry refused by its loader: {why}; ignored (the seed is only read), compiling instead");
            } else {
                tracing::warn!(file = %self.shown(&path).display(), "cache entry refused by its loader: {why}; removed");
                if let Err(e) = dir.remove_file(&path) {
                    self.failed(Op::Remove, &e);
                }
            }
            self.index.lock().unwrap().remove(kind, key);
        }
    }

    fn discard(&self, dir: &Dir, kind: Kind, key: &Key, path: &Path, damage: &Damage) {
        self.corrupt[kind.index()].fetch_add(1, Relaxed);
        self.index.lock().unwrap().remove(kind, key);
        if self.access == Access::Seed {
            tracing::warn!(file = %self.shown(path).display(), "seed entry refused ({damage}); ignored (the seed is only read), compiling instead");
            return;
        }
        tracing::warn!(file = %self.shown(path).display(), "damaged cache entry ({damage}); removed, will recompile");
        if let Err(e) = dir.remove_file(path) {
            if e.kind() != io::ErrorKind::NotFound {
                self.failed(Op::Remove, &e);
            }
        }
    }

    /// An entry's verified payload, or `None`; counts nothing, changes
    /// nothing: for explaining a miss.
    pub fn peek(&self, kind: Kind, key: &Key) -> Option<Vec<u8>> {
        let dir = self.dir.as_ref()?;
        let (_, bytes) = self.read_entry(dir, &Self::path(kind, key)).ok()?;
        format::decode(kind, key, &bytes).ok().map(<[u8]>::to_vec)
    }

    /// The keys of `kind` the directory held when last scanned.
    pub fn keys(&self, kind: Kind) -> Vec<Key> {
        let index = self.index.lock().unwrap();
        let mut keys: Vec<Key> = index
            .entries
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, key)| *key)
            .collect();
        keys.sort();
        keys
    }

    /// Stores the entry atomically, evicting least recently used files to
    /// stay within the capacity. Failures are counted, never returned.
    pub fn write(&self, kind: Kind, key: &Key, payload: &[u8]) {
        let Some(dir) = &self.dir else { return };
        let file = format::encode(kind, key, payload);
        let size = file.len().div_ceil(BLOCK) * BLOCK;
        let size = size as u64;
        let mut index = self.index.lock().unwrap();
        if !index.budget.can_hold(size) {
            return;
        }
        // What other processes wrote counts too: look before evicting.
        self.rescan(dir, &mut index, Access::Use);
        self.evict_until_admitted(dir, &mut index, size);
        drop(index);

        let path = Self::path(kind, key);
        let (temp, created) = self.create_temp(dir, kind, key);
        let written = created.and_then(|mut f| {
            f.write_all(&file)?;
            f.flush()
        });
        match written.and_then(|()| dir.rename(&temp, dir, &path)) {
            Ok(()) => {
                let size = dir.metadata(&path).map_or(size, |meta| allocated(&meta));
                let mut index = self.index.lock().unwrap();
                index.insert(kind, *key, size, SystemTime::now());
                // Another writer may have filled the budget meanwhile.
                self.evict_until_admitted(dir, &mut index, 0);
            }
            Err(e) => {
                let _ = dir.remove_file(&temp);
                self.failed(Op::Write, &e);
            }
        }
    }

    /// A new temporary file beside the entry, under a name no other writer
    /// (another runtime in this process, another container that is also
    /// PID 1 on a shared volume) can be using: random, and created only if
    /// it does not exist.
    fn create_temp(
        &self,
        dir: &Dir,
        kind: Kind,
        key: &Key,
    ) -> (PathBuf, io::Result<cap_std::fs::File>) {
        let mut options = cap_std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        let mut tries = 0;
        loop {
            let nonce = {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(self.temp_counter.fetch_add(1, Relaxed));
                h.write_u32(std::process::id());
                h.finish()
            };
            let temp = Path::new(kind.dir()).join(format!(".tmp-{}-{nonce:016x}", key.to_hex()));
            match dir.open_with(&temp, &options) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 3 => tries += 1,
                // Held until the file is closed, after its rename: a
                // temporary nobody holds is a dead writer's leftover.
                Ok(file) => {
                    let locked = rustix::fs::flock(&file, FlockOperation::LockExclusive)
                        .map_err(io::Error::from);
                    return (temp, locked.map(|()| file));
                }
                created => return (temp, created),
            }
        }
    }

    /// Deletes least recently used files until `incoming` bytes fit.
    fn evict_until_admitted(&self, dir: &Dir, index: &mut Index, incoming: u64) {
        while !index.budget.admits(incoming) {
            let Some((kind, key)) = index.pop_lru() else {
                break;
            };
            index.stats[kind.index()].evictions += 1;
            if let Err(e) = dir.remove_file(Self::path(kind, &key)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cache eviction failed: {e}");
                    self.errors[Op::Remove as usize].fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn failed(&self, op: Op, e: &io::Error) {
        self.errors[op as usize].fetch_add(1, Relaxed);
        // Once per operation per process, not once per request.
        if !self.warned[op as usize].swap(true, Relaxed) {
            tracing::warn!(
                dir = %self.root.display(),
                "cache directory {} failed: {e}; serving from memory (further {} errors are only counted)",
                op.as_str(),
                op.as_str()
            );
        }
    }

    pub fn stats(&self, kind: Kind) -> TierStats {
        let index = self.index.lock().unwrap();
        let (entries, bytes) = index
            .entries
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .fold((0, 0), |(n, b), (_, e)| (n + 1, b + e.bytes));
        TierStats {
            entries,
            bytes,
            capacity_bytes: index.budget.capacity(),
            ..index.stats[kind.index()]
        }
    }

    pub fn corrupt(&self, kind: Kind) -> u64 {
        self.corrupt[kind.index()].load(Relaxed)
    }

    pub fn errors(&self, op: Op) -> u64 {
        self.errors[op as usize].load(Relaxed)
    }

    /// Reads and checks every entry; damaged ones are removed and listed.
    pub fn verify(&self) -> io::Result<VerifyReport> {
        let dir = self.open_or_err()?;
        let mut report = VerifyReport::default();
        for kind in Kind::ALL {
            for name in Self::owned_files(dir, kind)? {
                if is_temp(&name) {
                    continue;
                }
                report.checked += 1;
                let path = Path::new(kind.dir()).join(&name);
                let damage = match kind.key_of(&name) {
                    None => Some("not named after a key".to_owned()),
                    Some(key) => match self.read_entry(dir, &path) {
                        Err(Refused::Io(e)) => Some(format!("unreadable: {e}")),
                        Err(Refused::Damaged(damage)) => Some(damage.to_string()),
                        Ok((_, bytes)) => format::decode(kind, &key, &bytes)
                            .err()
                            .map(|d| d.to_string()),
                    },
                };
                if let Some(mut why) = damage {
                    if let Err(e) = dir.remove_file(&path) {
                        why = format!("{why}; could not remove it: {e}");
                    }
                    report
                        .damaged
                        .push((self.shown(&path).display().to_string(), why));
                }
            }
        }
        Ok(report)
    }

    /// Removes every file the cache owns, and nothing else. Returns how many.
    pub fn clear(&self) -> io::Result<u64> {
        let dir = self.open_or_err()?;
        let mut removed = 0;
        for kind in Kind::ALL {
            for name in Self::owned_files(dir, kind)? {
                if is_temp(&name) || kind.key_of(&name).is_some() {
                    dir.remove_file(Path::new(kind.dir()).join(&name))?;
                    removed += 1;
                }
            }
            let _ = dir.remove_dir(kind.dir());
        }
        if let Some(root_dir) = &self.root_dir {
            let _ = root_dir.remove_dir(super::VERSION_DIR);
        }
        let mut index = self.index.lock().unwrap();
        *index = Index::new(index.budget.capacity());
        Ok(removed)
    }

    fn open_or_err(&self) -> io::Result<&Dir> {
        self.dir.as_ref().ok_or_else(|| {
            io::Error::other(format!(
                "cannot use the cache directory {}: {}",
                self.root.display(),
                self.unavailable.as_deref().unwrap_or("unknown error")
            ))
        })
    }

    /// The names of the files of `kind`'s directory the cache owns: entries
    /// and temporaries, whatever bytes their names hold.
    fn owned_files(dir: &Dir, kind: Kind) -> io::Result<Vec<OsString>> {
        match dir.read_dir(kind.dir()) {
            Ok(entries) => Ok(entries
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| {
                    is_temp(n) || n.as_encoded_bytes().ends_with(kind.extension().as_bytes())
                })
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
