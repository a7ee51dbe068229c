//! The disk tier: verified entries under `<cache_dir>/v1/{components,bytecode}/`.
//!
//! One idea a file: opening the directory and trusting it (here), the
//! [`index`] and eviction, [`read`]s, [`write`]s with temporaries and locks,
//! and [`maintain`]ance (`verify`, `clear`).
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
//!   blocks, temporaries included) and rescanned before a write whenever
//!   another process may have changed the directory (its artifact
//!   directories' times moved since this process last matched them, ten
//!   seconds passed, or the write would take it past 90% of the bound), so
//!   that processes sharing the directory keep one bound: least recently
//!   used entries are deleted first. A write that needs no rescan costs its
//!   own file, not the directory's. The index is rebuilt from
//!   the directory at start-up, by modification time, which a hit refreshes.
//! - A seed directory ([`DiskTier::seed`]) is a cache directory made ahead
//!   and only ever read: root may own it (an image's files), and then its
//!   files must be safe too (owned by root or this user, writable by nobody
//!   else). Nothing in it is written, touched or removed; a damaged entry
//!   is refused and counted, and the caller compiles instead.
//! - Nothing here fails a caller: an unusable directory or a full disk is
//!   warned about once per operation, counted, and the entry skipped.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use std::os::unix::fs::DirBuilderExt as _;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilderExt as _, MetadataExt as _};

use super::trust::{self, Owners};
use super::{Artifact, Key, TierStats};
use crate::config::Eviction;
use index::Index;

mod index;
mod maintain;
mod read;
mod write;

pub use maintain::VerifyReport;

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

/// The unit a file system allocates in, for estimating a file's blocks
/// before it is written.
pub(super) const BLOCK: usize = 4096;

/// What `meta`'s file takes on disk: its allocated blocks, which a
/// kubelet counts against a volume (a 330-byte entry takes 4 KiB).
pub(super) fn allocated(meta: &cap_std::fs::Metadata) -> u64 {
    meta.blocks() * 512
}

/// No entry is ever larger (a prepared typescript handler's component is
/// about 50 MB): a larger file is refused unread.
const MAX_ENTRY: u64 = 1 << 30;

/// Temporaries older than this are leftovers of a crashed writer.
pub(super) const STALE_TEMP: Duration = Duration::from_secs(600);

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
    /// Entries never evicted to make room (the guest component, which
    /// every start needs).
    pinned: Mutex<HashSet<(Artifact, Key)>>,
}

impl DiskTier {
    /// Opens (creating it if needed) the cache directory at `root`, bounded
    /// to `capacity` bytes, evicting by `eviction`. Never fails: an
    /// unusable directory gives a tier that holds nothing, after one
    /// warning.
    pub fn open(root: &Path, capacity: u64, eviction: Eviction) -> DiskTier {
        Self::open_as(root, capacity, Access::Use, eviction)
    }

    /// Opens an existing cache directory to look at it (`nexus cache stats`
    /// and `verify`): nothing is created, and nothing evicted to fit
    /// `capacity`, which only bounds what may be read.
    pub fn inspect(root: &Path, capacity: u64) -> DiskTier {
        Self::open_as(root, capacity, Access::Inspect, Eviction::default())
    }

    /// Opens a seed directory: a cache directory made ahead, only ever
    /// read. Root may own it; its files are trusted like its directories.
    pub fn seed(root: &Path) -> DiskTier {
        Self::open_as(root, MAX_ENTRY, Access::Seed, Eviction::default())
    }

    fn open_as(root: &Path, capacity: u64, access: Access, eviction: Eviction) -> DiskTier {
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
            index: Mutex::new(Index::new(capacity, eviction)),
            corrupt: Default::default(),
            errors: Default::default(),
            warned: Default::default(),
            temp_counter: AtomicU64::new(0),
            pinned: Mutex::default(),
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
        let owners = access.owners();
        // A link in place of a directory is refused by name, not met later
        // as an "exists" from creating the directory it hides.
        let is_link = |dir: &Dir, name: &str| {
            dir.symlink_metadata(name)
                .is_ok_and(|m| m.file_type().is_symlink())
        };
        if is_link(&root_dir, super::VERSION_DIR) {
            return Err(trust::refuse_link(&version, owners));
        }
        if access == Access::Use {
            root_dir.create_dir_with(super::VERSION_DIR, &private)?;
        }
        // Opened once: renaming or replacing the name later cannot redirect
        // this process's reads.
        let dir = root_dir
            .open_dir(super::VERSION_DIR)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", version.display())))?;
        trust::check_dir(&version, &dir.dir_metadata()?, owners)?;
        for kind in Artifact::ALL {
            if is_link(&dir, kind.dir()) {
                return Err(trust::refuse_link(&version.join(kind.dir()), owners));
            }
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

    /// Never evicts `key`'s entry of `artifact` to make room for others
    /// (from now on, in this process).
    pub fn pin(&self, artifact: Artifact, key: Key) {
        self.pinned.lock().unwrap().insert((artifact, key));
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
    pub(super) fn shown(&self, path: &Path) -> PathBuf {
        self.root.join(super::VERSION_DIR).join(path)
    }

    pub(super) fn path(kind: Artifact, key: &Key) -> PathBuf {
        Path::new(kind.dir()).join(format!("{}.{}", key.to_hex(), kind.extension()))
    }

    pub(super) fn failed(&self, op: Op, e: &io::Error) {
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

    pub fn stats(&self, kind: Artifact) -> TierStats {
        let index = self.index.lock().unwrap();
        let (entries, bytes) = index
            .ranking
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .fold((0, 0), |(n, b), (_, rank)| (n + 1, b + rank.bytes));
        TierStats {
            entries,
            bytes,
            capacity_bytes: index.budget.capacity(),
            ..index.stats[kind.index()]
        }
    }

    pub fn corrupt(&self, kind: Artifact) -> u64 {
        self.corrupt[kind.index()].load(Relaxed)
    }

    pub fn errors(&self, op: Op) -> u64 {
        self.errors[op as usize].load(Relaxed)
    }
}
