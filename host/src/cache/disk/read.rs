//! Reads: an entry is opened without blocking, refused unread if it is not
//! a regular file or is too large, read whole, and verified
//! ([`format::decode`]) before its payload is returned; a damaged one is
//! deleted (never in a seed) and counted.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, OpenOptionsExt as _};

use super::super::format::{self, Damage};
use super::super::trust;
use super::{allocated, Access, DiskTier, Op};
use crate::cache::{Artifact, Key};

/// Why an entry was not read.
pub(super) enum Refused {
    Io(io::Error),
    Damaged(Damage),
}

impl DiskTier {
    /// The verified payload of the entry and what it took to build, or
    /// `None` (a miss) if it is absent, unreadable or damaged; a damaged
    /// file is deleted.
    pub fn read(&self, kind: Artifact, key: &Key) -> Option<(Vec<u8>, Duration)> {
        let dir = self.dir.as_ref()?;
        let path = Self::path(kind, key);
        let miss = || self.index.lock().unwrap().stats[kind.index()].misses += 1;
        let (file, bytes, blocks) = match self.read_entry(dir, &path) {
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
            Ok((payload, cost)) => {
                let payload = payload.to_vec();
                let now = SystemTime::now();
                // Best effort: the next process sees this access too.
                if self.access == Access::Use {
                    let _ = file.into_std().set_modified(now);
                }
                let mut index = self.index.lock().unwrap();
                // Charged by its blocks, as a rescan and a write charge it.
                index.used(kind, *key, blocks, cost, now);
                index.stats[kind.index()].hits += 1;
                Some((payload, cost))
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
    /// Answers the file, its bytes and the blocks it takes.
    pub(super) fn read_entry(
        &self,
        dir: &Dir,
        path: &Path,
    ) -> Result<(cap_std::fs::File, Vec<u8>, u64), Refused> {
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
        Ok((file, bytes, allocated(&meta)))
    }

    /// Treats the entry as damaged: its payload passed the header but not
    /// its loader.
    pub fn reject(&self, kind: Artifact, key: &Key, why: &str) {
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

    pub(super) fn discard(
        &self,
        dir: &Dir,
        kind: Artifact,
        key: &Key,
        path: &Path,
        damage: &Damage,
    ) {
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
    pub fn peek(&self, kind: Artifact, key: &Key) -> Option<Vec<u8>> {
        let dir = self.dir.as_ref()?;
        let (_, bytes, _) = self.read_entry(dir, &Self::path(kind, key)).ok()?;
        format::decode(kind, key, &bytes)
            .ok()
            .map(|(payload, _)| payload.to_vec())
    }
}
