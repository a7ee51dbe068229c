//! Writes: the entry goes to a temporary file beside it, held under an
//! `flock` until it is renamed into place, so a reader sees a whole entry
//! or none and a temporary nobody holds is a dead writer's leftover.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;
use rustix::fs::FlockOperation;

use super::super::format;
use super::{allocated, DiskTier, Op, BLOCK};
use crate::cache::{Artifact, Key};

/// Whether `name` is a writer's temporary (`.tmp-…`).
pub(super) fn is_temp(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".tmp-")
}

impl DiskTier {
    /// Stores the entry (which took `cost` to build) atomically, evicting
    /// files as the policy ranks them to stay within the capacity; unless
    /// the policy finds it worth less than the files it would push out.
    /// Failures are counted, never returned.
    pub fn write(&self, kind: Artifact, key: &Key, payload: &[u8], cost: Duration) {
        let Some(dir) = &self.dir else { return };
        let file = format::encode(kind, key, payload, cost);
        let size = file.len().div_ceil(BLOCK) * BLOCK;
        let size = size as u64;
        let mut index = self.index.lock().unwrap();
        if !index.budget.can_hold(size) {
            return;
        }
        // What other processes wrote counts too: look before evicting.
        self.rescan_if_changed(dir, &mut index, size);
        if !self.admits(&mut index, kind, key, size, cost) {
            return;
        }
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
                index.used(kind, *key, size, cost, SystemTime::now());
                // Another writer may have filled the budget meanwhile.
                self.evict_until_admitted(dir, &mut index, 0);
                Self::matched(dir, &mut index);
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
    pub(super) fn create_temp(
        &self,
        dir: &Dir,
        kind: Artifact,
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
}
