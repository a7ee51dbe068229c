//! The index of the directory's files and the eviction policy: each file
//! charged to the [`Budget`] by the blocks it takes (as a kubelet counts a
//! volume) and ranked by the tier's [`Ranking`]; rebuilt from the directory
//! before a write when other processes may have changed it (the
//! directories' times moved, ten seconds passed, or the bound is near).
//!
//! A rebuild keeps what this process knew of each file it knew (its build
//! time and hits; a use by another process, seen as a newer modification
//! time, counts as one more hit), and reads only the header of a file it
//! meets for the first time, for its build time.

use std::io::{self, Read as _};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use cap_std::fs::{Dir, OpenOptionsExt as _};
use rustix::fs::{FlockOperation, OFlags};

use super::super::budget::Budget;
use super::super::format::{self, HEADER_LEN};
use super::super::policy::Ranking;
use super::write::is_temp;
use super::{allocated, Access, DiskTier, Op, STALE_TEMP};
use crate::cache::{Artifact, Key, TierStats};
use crate::config::Eviction;
use std::sync::atomic::Ordering::Relaxed;

/// The artifact directories' modification times.
fn stamps(dir: &Dir) -> Stamps {
    Artifact::ALL.map(|kind| {
        dir.metadata(kind.dir())
            .ok()?
            .modified()
            .ok()
            .map(|t| t.into_std())
    })
}

/// A time as the disk tier's clock reads it: seconds since the epoch.
fn seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The directory's files as last scanned, charged to the disk budget by
/// the blocks they take.
pub(super) struct Index {
    pub(super) ranking: Ranking<(Artifact, Key)>,
    pub(super) budget: Budget,
    pub(super) stats: [TierStats; 2],
    /// The artifact directories' modification times when the index last
    /// matched them (after a rescan, or this process's own change), and
    /// when it was last rescanned.
    seen: Option<(Stamps, Instant)>,
    /// Rescans so far.
    pub(super) rescans: u64,
}

/// Each artifact directory's modification time: any file created, renamed
/// in or removed, by any process, moves it.
type Stamps = [Option<SystemTime>; 2];

/// How long an index that the directories' times say is current may go
/// without a rescan anyway (a change within one tick of the clock would
/// not move them).
const RESCAN_EVERY: Duration = Duration::from_secs(10);

impl Index {
    pub(super) fn new(capacity: u64, eviction: Eviction) -> Self {
        Self {
            ranking: Ranking::new(eviction),
            budget: Budget::new(capacity),
            stats: Default::default(),
            seen: None,
            rescans: 0,
        }
    }

    /// An index of no files, under the same bound and policy; the figures
    /// so far, and the evicted entries' hits, are kept.
    pub(super) fn emptied(&mut self) -> Self {
        Self {
            ranking: self.ranking.emptied(),
            budget: Budget::new(self.budget.capacity()),
            stats: self.stats,
            seen: None,
            rescans: self.rescans,
        }
    }

    /// Counts a use of the entry (a read, a write) at `used`: `bytes` on
    /// disk, built in `cost`.
    pub(super) fn used(
        &mut self,
        kind: Artifact,
        key: Key,
        bytes: u64,
        cost: Duration,
        used: SystemTime,
    ) {
        let hits = self.ranking.get(&(kind, key)).map_or(0, |rank| rank.hits);
        self.insert(kind, key, bytes, cost, hits.saturating_add(1), used);
    }

    fn insert(
        &mut self,
        kind: Artifact,
        key: Key,
        bytes: u64,
        cost: Duration,
        hits: u32,
        used: SystemTime,
    ) {
        self.remove(kind, &key);
        self.budget.charge(bytes);
        self.ranking
            .insert((kind, key), bytes, cost, hits, seconds(used));
    }

    pub(super) fn remove(&mut self, kind: Artifact, key: &Key) -> bool {
        match self.ranking.remove(&(kind, *key)) {
            Some(old) => {
                self.budget.refund(old.bytes);
                true
            }
            None => false,
        }
    }
}

impl DiskTier {
    /// Rebuilds the index from what the directory really holds now (other
    /// processes write to it too), counting each file's allocated blocks,
    /// temporaries included; removes temporaries a crashed writer left.
    /// Hits, misses and evictions so far are kept, and what was known of
    /// each file still there.
    pub(super) fn rescan(&self, dir: &Dir, index: &mut Index, access: Access) {
        let fresh = index.emptied();
        let known = std::mem::replace(index, fresh);
        index.rescans += 1;
        index.seen = Some((stamps(dir), Instant::now()));
        let mut files = Vec::new();
        for kind in Artifact::ALL {
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
                        // Being written (by any process): charged, never evicted.
                        index.budget.charge(allocated(&meta));
                    }
                    continue;
                }
                if let Some(key) = kind.key_of(&name) {
                    files.push((modified, kind, key, allocated(&meta)));
                }
            }
        }
        // In the order they were used, so that ties go to the least recent.
        files.sort_unstable();
        for (modified, kind, key, bytes) in files {
            let (cost, hits) = match known.ranking.get(&(kind, key)) {
                // Used since by another process: once more, at least.
                Some(rank) => (
                    rank.cost,
                    rank.hits + u32::from(seconds(modified) > rank.used),
                ),
                None => (Self::read_cost(dir, kind, &key), 1),
            };
            index.insert(kind, key, bytes, cost, hits, modified);
        }
    }

    /// The build time a file's header records; zero (evicted first) if it
    /// cannot be read or is not a current entry (an older format's).
    fn read_cost(dir: &Dir, kind: Artifact, key: &Key) -> Duration {
        let mut options = cap_std::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(OFlags::NONBLOCK.bits() as i32);
        let header = || -> io::Result<Vec<u8>> {
            let file = dir.open_with(Self::path(kind, key), &options)?;
            if !file.metadata()?.is_file() {
                return Err(io::ErrorKind::InvalidData.into());
            }
            let mut header = Vec::with_capacity(HEADER_LEN);
            file.take(HEADER_LEN as u64).read_to_end(&mut header)?;
            Ok(header)
        };
        header()
            .ok()
            .and_then(|header| format::cost(kind, key, &header).ok())
            .unwrap_or_default()
    }

    /// [`rescan`](Self::rescan)s unless the index is known to match the
    /// directory: the directories have not changed since it last did, it
    /// was rescanned within [`RESCAN_EVERY`], and `incoming` bytes fit with
    /// room to spare (near the bound, every byte another process wrote
    /// counts). A write then costs its own file, not the directory's.
    pub(super) fn rescan_if_changed(&self, dir: &Dir, index: &mut Index, incoming: u64) {
        let current = match index.seen {
            Some((seen, at)) => seen == stamps(dir) && at.elapsed() < RESCAN_EVERY,
            None => false,
        };
        let roomy = index.budget.held() + incoming <= index.budget.capacity() / 10 * 9;
        if !(current && roomy) {
            self.rescan(dir, index, Access::Use);
        }
    }

    /// Notes that the index matches the directory after this process's own
    /// change to it.
    pub(super) fn matched(dir: &Dir, index: &mut Index) {
        if let Some((seen, _)) = &mut index.seen {
            *seen = stamps(dir);
        }
    }

    /// Whether a live writer holds the temporary at `path` (its lock).
    pub(super) fn held(dir: &Dir, path: &Path) -> bool {
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

    pub(super) fn rebuild_index(&self, access: Access) {
        let Some(dir) = &self.dir else { return };
        let mut index = self.index.lock().unwrap();
        self.rescan(dir, &mut index, access);
        if access == Access::Use {
            self.evict_until_admitted(dir, &mut index, 0);
        }
    }

    /// Whether the policy lets an entry of `size` bytes, built in `cost`,
    /// take the place of the files that would go for it; a pinned entry
    /// always comes in.
    pub(super) fn admits(
        &self,
        index: &mut Index,
        kind: Artifact,
        key: &Key,
        size: u64,
        cost: Duration,
    ) -> bool {
        let pinned = self.pinned.lock().unwrap();
        let room = index.budget.shortfall(size);
        pinned.contains(&(kind, *key))
            || index
                .ranking
                .admits((kind, *key), size, cost, room, |entry| {
                    pinned.contains(entry)
                })
    }

    /// Deletes files, as the policy ranks them, until `incoming` bytes fit.
    pub(super) fn evict_until_admitted(&self, dir: &Dir, index: &mut Index, incoming: u64) {
        let pinned = self.pinned.lock().unwrap().clone();
        while !index.budget.admits(incoming) {
            let Some(((kind, key), rank)) = index.ranking.evict(|entry| pinned.contains(entry))
            else {
                break;
            };
            index.budget.refund(rank.bytes);
            index.stats[kind.index()].evictions += 1;
            if let Err(e) = dir.remove_file(Self::path(kind, &key)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cache eviction failed: {e}");
                    self.errors[Op::Remove as usize].fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// The entries of `kind` the index holds, in key order.
    pub fn entries(&self, kind: Artifact) -> Vec<crate::cache::DiskEntry> {
        let index = self.index.lock().unwrap();
        let mut entries: Vec<_> = index
            .ranking
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|(&(_, key), rank)| crate::cache::DiskEntry {
                key,
                bytes: rank.bytes,
                cost: rank.cost,
            })
            .collect();
        entries.sort_by_key(|entry| entry.key);
        entries
    }

    /// The keys of `kind` the directory held when last scanned.
    pub fn keys(&self, kind: Artifact) -> Vec<Key> {
        let index = self.index.lock().unwrap();
        let mut keys: Vec<Key> = index
            .ranking
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, key), _)| *key)
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn open(root: &Path, capacity: u64) -> DiskTier {
        DiskTier::open(root, capacity, Eviction::Recency)
    }

    #[test]
    fn a_pinned_entry_is_never_evicted_to_make_room() {
        let root = tempfile::tempdir().unwrap();
        // Room for three one-block entries.
        let tier = open(root.path(), 3 * 4096);
        let key = |n: u32| Key::bytecode("guest", &format!("{n}.js"), "", &[]);
        let guest = Key::component(b"guest", b"engine", "v");
        tier.write(Artifact::Component, &guest, &[1; 100], MS);
        tier.pin(Artifact::Component, guest);
        for n in 0..10 {
            tier.write(Artifact::Bytecode, &key(n), &[2; 100], MS);
        }
        assert!(
            tier.read(Artifact::Component, &guest).is_some(),
            "pinned: kept"
        );
        assert!(tier.read(Artifact::Bytecode, &key(0)).is_none(), "evicted");
        assert!(
            tier.read(Artifact::Bytecode, &key(9)).is_some(),
            "the newest"
        );
    }

    #[test]
    fn a_read_hit_charges_the_blocks_a_write_and_a_rescan_charge() {
        let root = tempfile::tempdir().unwrap();
        let tier = open(root.path(), 1 << 20);
        let key = Key::bytecode("guest", "small.js", "export default 1", &[]);
        // A few hundred bytes: one 4 KiB block on disk.
        tier.write(Artifact::Bytecode, &key, &[7; 300], MS);
        let file = root
            .path()
            .join(crate::cache::VERSION_DIR)
            .join(DiskTier::path(Artifact::Bytecode, &key));
        let blocks = std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&file).unwrap());
        let on_disk = blocks * 512;
        assert!(on_disk > 400, "{on_disk}");
        let charged = || tier.index.lock().unwrap().budget.held();
        assert_eq!(charged(), on_disk, "written");
        assert_eq!(tier.read(Artifact::Bytecode, &key).unwrap().0, [7; 300]);
        assert_eq!(charged(), on_disk, "read back: its blocks, not its length");
        assert_eq!(tier.stats(Artifact::Bytecode).bytes, on_disk);
        let dir = tier.dir.as_ref().unwrap();
        tier.rescan(dir, &mut tier.index.lock().unwrap(), Access::Use);
        assert_eq!(charged(), on_disk, "rescanned");
    }

    #[test]
    fn a_write_rescans_only_when_another_writer_changed_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let ours = open(root.path(), 64 << 20);
        let key = |n: u32| Key::bytecode("guest", &format!("{n}.js"), "", &[]);
        let rescans = |tier: &DiskTier| tier.index.lock().unwrap().rescans;
        ours.write(Artifact::Bytecode, &key(0), &[1; 100], MS);
        let after_first = rescans(&ours);
        for n in 1..200 {
            ours.write(Artifact::Bytecode, &key(n), &[1; 100], MS);
        }
        assert_eq!(rescans(&ours), after_first, "its own writes: no rescan");

        // Another process writes into the same directory: the next write
        // rescans first, and its entry counts against the one bound.
        let theirs = open(root.path(), 64 << 20);
        theirs.write(Artifact::Bytecode, &key(1000), &[2; 100], MS);
        ours.write(Artifact::Bytecode, &key(200), &[1; 100], MS);
        assert_eq!(rescans(&ours), after_first + 1);
        let index = ours.index.lock().unwrap();
        assert!(index
            .ranking
            .get(&(Artifact::Bytecode, key(1000)))
            .is_some());
        assert_eq!(index.ranking.iter().count(), 202);
    }

    #[test]
    fn near_the_bound_every_write_rescans() {
        let root = tempfile::tempdir().unwrap();
        // Room for ten one-block entries: from the tenth, a write would
        // take it past 90%.
        let tier = open(root.path(), 10 * 4096);
        let key = |n: u32| Key::bytecode("guest", &format!("{n}.js"), "", &[]);
        for n in 0..9 {
            tier.write(Artifact::Bytecode, &key(n), &[1; 100], MS);
        }
        let before = tier.index.lock().unwrap().rescans;
        for n in 9..13 {
            tier.write(Artifact::Bytecode, &key(n), &[1; 100], MS);
        }
        assert_eq!(tier.index.lock().unwrap().rescans, before + 4);
    }

    #[test]
    fn under_cost_an_entry_slow_to_build_outlives_quick_ones() {
        for (eviction, kept) in [(Eviction::Cost, true), (Eviction::Recency, false)] {
            let root = tempfile::tempdir().unwrap();
            // Room for three one-block entries.
            let tier = DiskTier::open(root.path(), 3 * 4096, eviction);
            let key = |n: u32| Key::bytecode("guest", &format!("{n}.js"), "", &[]);
            tier.write(Artifact::Bytecode, &key(0), &[1; 100], MS * 2000);
            for n in 1..10 {
                tier.write(Artifact::Bytecode, &key(n), &[2; 100], MS);
            }
            let found = tier.read(Artifact::Bytecode, &key(0));
            assert_eq!(found.is_some(), kept, "{eviction:?}");
            if let Some((_, cost)) = found {
                assert_eq!(cost, MS * 2000, "read back from its header");
            }
            assert!(
                tier.read(Artifact::Bytecode, &key(9)).is_some(),
                "the newest"
            );
        }
    }

    #[test]
    fn a_rescan_keeps_what_it_knew_and_reads_build_times_from_headers() {
        let root = tempfile::tempdir().unwrap();
        let ours = DiskTier::open(root.path(), 1 << 20, Eviction::Cost);
        let key = |n: u32| Key::bytecode("guest", &format!("{n}.js"), "", &[]);
        let rank = |tier: &DiskTier, n| {
            let index = tier.index.lock().unwrap();
            let rank = index.ranking.get(&(Artifact::Bytecode, key(n))).unwrap();
            (rank.cost, rank.hits)
        };
        ours.write(Artifact::Bytecode, &key(0), &[1; 100], MS * 750);
        ours.write(Artifact::Bytecode, &key(1), &[1; 100], MS * 3);
        ours.read(Artifact::Bytecode, &key(0)).unwrap();
        assert_eq!(rank(&ours, 0), (MS * 750, 2));

        // Another process meets the files for the first time: their build
        // times come from their headers.
        let theirs = DiskTier::open(root.path(), 1 << 20, Eviction::Cost);
        assert_eq!(rank(&theirs, 0), (MS * 750, 1));
        assert_eq!(rank(&theirs, 1), (MS * 3, 1));

        // Our rescan keeps our hits, and counts their use as one more.
        std::thread::sleep(Duration::from_millis(20));
        theirs.read(Artifact::Bytecode, &key(1)).unwrap();
        let dir = ours.dir.as_ref().unwrap();
        ours.rescan(dir, &mut ours.index.lock().unwrap(), Access::Use);
        assert_eq!(rank(&ours, 0), (MS * 750, 2));
        assert_eq!(rank(&ours, 1), (MS * 3, 2));
    }
}
