//! The tiers together: lookup, single-flight compilation, promotion, and
//! the background disk writer.
//!
//! Lookup order: memory, the cache directory, the seed directory (if any),
//! then compile. A disk or seed hit is promoted: into memory, and a seed
//! hit into the cache directory too, so the seed is read once per entry.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::disk::{DiskTier, Op};
use super::memory::MemoryTier;
use super::{Artifact, Key, Origin, TierStats};
use crate::config::Eviction;

/// What the memory tier holds: whatever the entry decoded to.
type Held = Arc<dyn Any + Send + Sync>;

/// Where the callers of one key meet: the first looks up or compiles while
/// holding `gate`, and leaves what it found in `found` for the others.
#[derive(Default)]
struct Flight {
    gate: Mutex<()>,
    found: Mutex<Option<Held>>,
}

/// Takes the key's flight out of the map when its last caller leaves, even by
/// a panic.
struct Leave<'a> {
    inflight: &'a Mutex<HashMap<Key, Arc<Flight>>>,
    key: Key,
    flight: &'a Arc<Flight>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: nobody else is waiting.
        if Arc::strong_count(self.flight) == 2 {
            inflight.remove(&self.key);
        }
    }
}

enum Job {
    Write(Artifact, Key, Arc<[u8]>, Duration),
    Flush(mpsc::SyncSender<()>),
}

/// Both tiers for both artifact kinds. Share it behind an `Arc`.
pub struct Cache {
    memory: Mutex<MemoryTier<Held>>,
    disk: Arc<DiskTier>,
    seed: Option<DiskTier>,
    // Why the seed directory given was left out, if it was.
    seed_unavailable: Option<String>,
    writer: Mutex<Option<Sender<Job>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    inflight: Mutex<HashMap<Key, Arc<Flight>>>,
    compiles: [AtomicU64; 2],
    /// What those compiles took, in microseconds.
    compile_micros: [AtomicU64; 2],
}

/// What a build made: the artifact, the bytes to store, and what building
/// it took (its cost, should it be lost).
pub struct Built<T> {
    /// What the tiers hand out.
    pub artifact: T,
    /// What the disk tier stores.
    pub payload: Arc<[u8]>,
    /// What the build took.
    pub cost: Duration,
}

/// One entry of the cache directory, as its index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskEntry {
    /// Its key.
    pub key: Key,
    /// The blocks it takes, in bytes.
    pub bytes: u64,
    /// What building it took, as its header records it.
    pub cost: Duration,
}

impl Cache {
    /// Opens the cache: `memory_bytes` bounds the memory tier (all kinds
    /// together), `disk_bytes` the files under `dir`; both evict by the
    /// default policy ([`Eviction::Cost`]). Never fails: an unusable
    /// directory gives a disk tier that holds nothing, after one warning.
    pub fn open(dir: &Path, memory_bytes: u64, disk_bytes: u64) -> Cache {
        Self::open_with(dir, memory_bytes, disk_bytes, Eviction::default())
    }

    /// [`open`](Self::open), both tiers evicting by `eviction`.
    pub fn open_with(dir: &Path, memory_bytes: u64, disk_bytes: u64, eviction: Eviction) -> Cache {
        let disk = DiskTier::open(dir, disk_bytes, eviction);
        Self::with_disk(disk, memory_bytes, eviction)
    }

    /// Opens an existing cache directory only to look at it and check it
    /// (`nexus cache stats`, `verify`, `clear`): nothing is created, nothing
    /// evicted; `disk_bytes` bounds only what may be read. Check
    /// [`disk_unavailable`](Self::disk_unavailable).
    pub fn inspect(dir: &Path, disk_bytes: u64) -> Cache {
        Self::with_disk(DiskTier::inspect(dir, disk_bytes), 0, Eviction::default())
    }

    /// Adds a seed directory (see [`DiskTier::seed`]), looked up after the
    /// cache directory. A seed that cannot be used is warned about once,
    /// with why, and left out.
    pub fn with_seed(mut self, seed: &Path) -> Cache {
        let tier = DiskTier::seed(seed);
        match tier.unavailable() {
            Some(why) => {
                tracing::warn!(
                    seed = %seed.display(),
                    "seed directory not used: {why}; artifacts it would hold are compiled here"
                );
                self.seed_unavailable = Some(why.to_owned());
            }
            None => {
                let count = |kind| tier.keys(kind).len();
                tracing::info!(
                    seed = %seed.display(),
                    components = count(Artifact::Component),
                    bytecode = count(Artifact::Bytecode),
                    "seed directory in use"
                );
                self.seed = Some(tier);
            }
        }
        self
    }

    fn with_disk(disk: DiskTier, memory_bytes: u64, eviction: Eviction) -> Cache {
        let disk = Arc::new(disk);
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_disk = disk.clone();
        let thread = std::thread::Builder::new()
            .name("nexus-cache-writer".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Write(kind, key, payload, cost) => {
                            writer_disk.write(kind, &key, &payload, cost)
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .expect("spawn the cache writer");
        Cache {
            memory: Mutex::new(MemoryTier::new(memory_bytes, eviction)),
            disk,
            seed: None,
            seed_unavailable: None,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            inflight: Mutex::default(),
            compiles: Default::default(),
            compile_micros: Default::default(),
        }
    }

    /// The bytecode for `key`, compiled by `compile` only if neither tier
    /// has it.
    ///
    /// # Errors
    ///
    /// Only `compile`'s own.
    pub fn bytecode<E>(
        &self,
        key: Key,
        compile: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<(Arc<[u8]>, Origin), E> {
        self.get_or_compile(
            Artifact::Bytecode,
            key,
            |payload| Ok(Arc::<[u8]>::from(payload)),
            || {
                let bytes: Arc<[u8]> = compile()?.into();
                Ok((bytes.clone(), bytes))
            },
        )
    }

    /// The artifact of `kind` for `key`: from memory; else from a verified
    /// file, `decode`d (a file `decode` refuses is deleted as damaged); else
    /// `compile`d, which answers the artifact and the bytes to store. Once
    /// per key: concurrent callers of one key wait for the first.
    ///
    /// # Errors
    ///
    /// Only `compile`'s own.
    pub fn get_or_compile<T, E>(
        &self,
        kind: Artifact,
        key: Key,
        decode: impl Fn(&[u8]) -> Result<T, String>,
        compile: impl FnOnce() -> Result<(T, Arc<[u8]>), E>,
    ) -> Result<(T, Origin), E>
    where
        T: Clone + Send + Sync + 'static,
    {
        self.get_or_compile_keeping(kind, key, decode, compile, |_| true)
    }

    /// [`get_or_compile`](Self::get_or_compile), where what is compiled
    /// goes to the cache directory only if `persist` says so (else it stays
    /// in this process's memory tier).
    ///
    /// # Errors
    ///
    /// Only `compile`'s own.
    pub fn get_or_compile_keeping<T, E>(
        &self,
        kind: Artifact,
        key: Key,
        decode: impl Fn(&[u8]) -> Result<T, String>,
        compile: impl FnOnce() -> Result<(T, Arc<[u8]>), E>,
        persist: impl FnOnce(&T) -> bool,
    ) -> Result<(T, Origin), E>
    where
        T: Clone + Send + Sync + 'static,
    {
        let build = || {
            let start = Instant::now();
            let (artifact, payload) = compile()?;
            Ok(Built {
                artifact,
                payload,
                cost: start.elapsed(),
            })
        };
        self.get_or_build(kind, key, decode, build, persist)
    }

    /// [`get_or_compile_keeping`](Self::get_or_compile_keeping), where
    /// `build` says what it cost (rather than the time it took here): for
    /// a build whose cost its caller knows better, or replays a trace.
    ///
    /// # Errors
    ///
    /// Only `build`'s own.
    pub fn get_or_build<T, E>(
        &self,
        kind: Artifact,
        key: Key,
        decode: impl Fn(&[u8]) -> Result<T, String>,
        build: impl FnOnce() -> Result<Built<T>, E>,
        persist: impl FnOnce(&T) -> bool,
    ) -> Result<(T, Origin), E>
    where
        T: Clone + Send + Sync + 'static,
    {
        let held = |held: Held| held.downcast_ref::<T>().cloned();
        if let Some(hit) = self.memory.lock().unwrap().get(kind, &key).and_then(held) {
            return Ok((hit, Origin::Memory));
        }

        // One compiler per key: later callers wait for their turn, and take
        // what the first found or compiled from its flight (memory may not hold
        // it, nor the disk yet).
        let flight = self
            .inflight
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .clone();
        let _leave = Leave {
            inflight: &self.inflight,
            key,
            flight: &flight,
        };
        // A caller that panicked while compiling poisoned the gate, and left
        // nothing in the flight: the next one compiles.
        let _turn = flight.gate.lock().unwrap_or_else(|e| e.into_inner());
        let found = flight
            .found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(hit) = found.and_then(held) {
            return Ok((hit, Origin::Memory));
        }
        let (artifact, origin, weight, cost) = 'found: {
            if let Some((payload, cost)) = self.disk.read(kind, &key) {
                match decode(&payload) {
                    Ok(artifact) => break 'found (artifact, Origin::Disk, payload.len(), cost),
                    Err(why) => self.disk.reject(kind, &key, &why),
                }
            }
            if let Some(seed) = &self.seed {
                if let Some((payload, cost)) = seed.read(kind, &key) {
                    match decode(&payload) {
                        Ok(artifact) => {
                            let weight = payload.len();
                            self.store(kind, key, payload.into(), cost);
                            break 'found (artifact, Origin::Seed, weight, cost);
                        }
                        Err(why) => seed.reject(kind, &key, &why),
                    }
                }
            }
            let Built {
                artifact,
                payload,
                cost,
            } = build()?;
            self.compiles[kind.index()].fetch_add(1, Relaxed);
            // To the microsecond, as headers keep it.
            let micros = u64::try_from(cost.as_micros()).unwrap_or(u64::MAX);
            let cost = Duration::from_micros(micros);
            self.compile_micros[kind.index()].fetch_add(micros, Relaxed);
            let weight = payload.len();
            if persist(&artifact) {
                self.store(kind, key, payload, cost);
            }
            (artifact, Origin::Compiled, weight, cost)
        };
        let held: Held = Arc::new(artifact.clone());
        *flight.found.lock().unwrap_or_else(|e| e.into_inner()) = Some(held.clone());
        self.memory
            .lock()
            .unwrap()
            .insert(kind, key, held, weight as u64, cost);
        Ok((artifact, origin))
    }

    /// The entry of `kind` for `key` from the cache directory, else the
    /// seed (then copied into the cache directory), `decode`d; never from
    /// or into memory: for an entry its caller holds itself once read. A
    /// file `decode` refuses is treated as damaged.
    pub fn find_on_disk<T>(
        &self,
        kind: Artifact,
        key: Key,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        if let Some((payload, _)) = self.disk.read(kind, &key) {
            match decode(&payload) {
                Ok(found) => return Some(found),
                Err(why) => self.disk.reject(kind, &key, &why),
            }
        }
        let seed = self.seed.as_ref()?;
        let (payload, cost) = seed.read(kind, &key)?;
        match decode(&payload) {
            Ok(found) => {
                self.store(kind, key, payload.into(), cost);
                Some(found)
            }
            Err(why) => {
                seed.reject(kind, &key, &why);
                None
            }
        }
    }

    /// Queues `payload` (built in `cost`) for the cache directory only, in
    /// place of any entry for `key`: the counterpart of
    /// [`find_on_disk`](Self::find_on_disk).
    pub fn put_on_disk(&self, kind: Artifact, key: Key, payload: Arc<[u8]>, cost: Duration) {
        self.store(kind, key, payload, cost);
    }

    /// Queues the entry's write to the cache directory.
    fn store(&self, kind: Artifact, key: Key, payload: Arc<[u8]>, cost: Duration) {
        if let Some(writer) = self.writer.lock().unwrap().as_ref() {
            let _ = writer.send(Job::Write(kind, key, payload, cost));
        }
    }

    /// Waits until every queued disk write is done.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if let Some(writer) = self.writer.lock().unwrap().as_ref() {
            if writer.send(Job::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Keeps `key`'s entry of `artifact` in the cache directory whatever
    /// comes in after it: for the guest component, which every start needs
    /// and which no handler artifact should push out.
    pub fn pin(&self, artifact: Artifact, key: Key) {
        self.disk.pin(artifact, key);
    }

    /// How many artifacts of `kind` this cache compiled (both tiers missed).
    pub fn compiles(&self, kind: Artifact) -> u64 {
        self.compiles[kind.index()].load(Relaxed)
    }

    /// What those compiles took, all together: the work the cache did not
    /// save (first builds included).
    pub fn compile_time(&self, kind: Artifact) -> Duration {
        Duration::from_micros(self.compile_micros[kind.index()].load(Relaxed))
    }

    /// The cache directory's entries of `kind` as its index knows them
    /// (after [`flush`](Self::flush), this process's writes included).
    pub fn disk_entries(&self, kind: Artifact) -> Vec<DiskEntry> {
        self.disk.entries(kind)
    }

    /// The memory tier's figures for `kind`.
    pub fn memory_stats(&self, kind: Artifact) -> TierStats {
        self.memory.lock().unwrap().stats(kind)
    }

    /// The disk tier's figures for `kind`.
    pub fn disk_stats(&self, kind: Artifact) -> TierStats {
        self.disk.stats(kind)
    }

    /// The seed directory's figures for `kind`, if one is in use.
    pub fn seed_stats(&self, kind: Artifact) -> Option<TierStats> {
        self.seed.as_ref().map(|seed| seed.stats(kind))
    }

    /// Why the seed directory given to [`with_seed`](Self::with_seed) was
    /// left out, if it was.
    pub fn seed_unavailable(&self) -> Option<&str> {
        self.seed_unavailable.as_deref()
    }

    /// The seed directory's keys of `kind`, and a way to read each entry's
    /// verified payload without counting it: to explain why the seed did
    /// not have what was asked for. `None` without a seed.
    pub fn seed_entries(&self, kind: Artifact) -> Option<SeedEntries<'_>> {
        let seed = self.seed.as_ref()?;
        Some(SeedEntries {
            seed,
            kind,
            keys: seed.keys(kind),
        })
    }

    /// Files of `kind` refused as damaged since start-up, in the cache
    /// directory and the seed.
    pub fn corrupt(&self, kind: Artifact) -> u64 {
        self.disk.corrupt(kind) + self.seed.as_ref().map_or(0, |seed| seed.corrupt(kind))
    }

    /// Disk failures of `op` since start-up.
    pub fn disk_errors(&self, op: Op) -> u64 {
        self.disk.errors(op)
    }

    /// Reads and checks every file; damaged ones are removed and listed.
    ///
    /// # Errors
    ///
    /// When the cache directory cannot be opened or listed.
    pub fn verify(&self) -> std::io::Result<super::VerifyReport> {
        self.flush();
        self.disk.verify()
    }

    /// Removes every file the cache owns under its directory, nothing else;
    /// returns how many.
    ///
    /// # Errors
    ///
    /// When the directory cannot be opened or a file cannot be removed.
    pub fn clear(&self) -> std::io::Result<u64> {
        self.flush();
        self.disk.clear()
    }

    /// Whether the cache directory is in use.
    pub fn disk_available(&self) -> bool {
        self.disk.is_available()
    }

    /// Why the cache directory is not in use, if it is not.
    pub fn disk_unavailable(&self) -> Option<&str> {
        self.disk.unavailable()
    }

    /// The share of lookups of `kind` that compiled nothing; 0 before the
    /// first lookup.
    pub fn hit_rate(&self, kind: Artifact) -> f64 {
        let memory = self.memory_stats(kind);
        let lookups = memory.hits + memory.misses;
        if lookups == 0 {
            return 0.0;
        }
        lookups.saturating_sub(self.compiles(kind)) as f64 / lookups as f64
    }
}

/// A seed directory's entries of one kind, as
/// [`Cache::seed_entries`] gives them.
pub struct SeedEntries<'a> {
    seed: &'a DiskTier,
    kind: Artifact,
    /// The entries' keys.
    pub keys: Vec<Key>,
}

impl SeedEntries<'_> {
    /// The verified payload of the entry for `key`, if it reads and checks.
    pub fn payload(&self, key: &Key) -> Option<Vec<u8>> {
        self.seed.peek(self.kind, key)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish its queue and stop.
        self.writer.lock().unwrap().take();
        if let Some(thread) = self.writer_thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}
