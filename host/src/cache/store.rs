//! The two tiers together: lookup, single-flight compilation, promotion, and
//! the background disk writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use wasmtime::component::Component;
use wasmtime::Engine;

use super::disk::{DiskTier, Op};
use super::memory::MemoryTier;
use super::{Key, Kind, Source, TierStats};
use crate::bindings::{CacheStats, Tier};
use crate::error::Result;

#[derive(Clone)]
enum Artifact {
    Component(Component),
    Bytecode(Arc<[u8]>),
}

enum Job {
    Write(Kind, Key, Arc<[u8]>),
    Flush(mpsc::SyncSender<()>),
}

/// Both tiers for both artifact kinds. Share it behind an `Arc`.
pub struct Cache {
    memory: Mutex<MemoryTier<Artifact>>,
    disk: Arc<DiskTier>,
    writer: Mutex<Option<Sender<Job>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    inflight: Mutex<HashMap<Key, Arc<Mutex<()>>>>,
    compiles: [AtomicU64; 2],
}

impl Cache {
    /// Opens the cache: `memory_bytes` bounds the memory tier (all kinds
    /// together), `disk_bytes` the files under `dir`. Never fails; see
    /// [`DiskTier::open`].
    pub fn open(dir: &Path, memory_bytes: u64, disk_bytes: u64) -> Cache {
        let disk = Arc::new(DiskTier::open(dir, disk_bytes));
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_disk = disk.clone();
        let thread = std::thread::Builder::new()
            .name("nexus-cache-writer".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Write(kind, key, payload) => writer_disk.write(kind, &key, &payload),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .expect("spawn the cache writer");
        Cache {
            memory: Mutex::new(MemoryTier::new(memory_bytes)),
            disk,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(thread)),
            inflight: Mutex::default(),
            compiles: Default::default(),
        }
    }

    /// The bytecode for `key`, compiled by `compile` only if neither tier
    /// has it.
    ///
    /// # Errors
    ///
    /// Only `compile`'s own.
    pub fn bytecode(
        &self,
        key: Key,
        compile: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<(Arc<[u8]>, Source)> {
        let (artifact, source) = self.lookup(
            Kind::Bytecode,
            key,
            |payload| Ok(Artifact::Bytecode(payload.into())),
            || {
                let bytes: Arc<[u8]> = compile()?.into();
                Ok((Artifact::Bytecode(bytes.clone()), bytes))
            },
        )?;
        match artifact {
            Artifact::Bytecode(bytes) => Ok((bytes, source)),
            Artifact::Component(_) => unreachable!("keys are per kind"),
        }
    }

    /// The precompiled component for `key`, compiled by `compile` only if
    /// neither tier has it.
    ///
    /// # Errors
    ///
    /// Only `compile`'s own.
    pub fn component(
        &self,
        key: Key,
        engine: &Engine,
        compile: impl FnOnce() -> Result<Component>,
    ) -> Result<(Component, Source)> {
        let (artifact, source) = self.lookup(
            Kind::Component,
            key,
            |payload| {
                // SAFETY: the payload passed its header check (magic, kind,
                // this key, length, BLAKE3), and the key covers the engine's
                // compatibility hash: it is exactly what `serialize` wrote
                // for an engine like this one.
                unsafe { Component::deserialize(engine, payload) }
                    .map(Artifact::Component)
                    .map_err(|e| format!("{e:#}"))
            },
            || {
                let component = compile()?;
                let bytes: Arc<[u8]> = component.serialize().map_err(crate::Error::engine)?.into();
                Ok((Artifact::Component(component), bytes))
            },
        )?;
        match artifact {
            Artifact::Component(component) => Ok((component, source)),
            Artifact::Bytecode(_) => unreachable!("keys are per kind"),
        }
    }

    fn lookup(
        &self,
        kind: Kind,
        key: Key,
        decode: impl Fn(&[u8]) -> std::result::Result<Artifact, String>,
        compile: impl FnOnce() -> Result<(Artifact, Arc<[u8]>)>,
    ) -> Result<(Artifact, Source)> {
        if let Some(hit) = self.memory.lock().unwrap().get(kind, &key) {
            return Ok((hit, Source::Memory));
        }

        // One compiler per key: later callers wait here, then find it.
        let gate = self
            .inflight
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .clone();
        let _turn = gate.lock().unwrap();
        let result = self.fill(kind, key, decode, compile);
        drop(_turn);
        let mut inflight = self.inflight.lock().unwrap();
        if Arc::strong_count(&gate) == 2 {
            inflight.remove(&key);
        }
        result
    }

    fn fill(
        &self,
        kind: Kind,
        key: Key,
        decode: impl Fn(&[u8]) -> std::result::Result<Artifact, String>,
        compile: impl FnOnce() -> Result<(Artifact, Arc<[u8]>)>,
    ) -> Result<(Artifact, Source)> {
        if let Some(hit) = self.memory.lock().unwrap().peek(&key) {
            return Ok((hit, Source::Memory));
        }
        if let Some(payload) = self.disk.read(kind, &key) {
            match decode(&payload) {
                Ok(artifact) => {
                    let weight = payload.len() as u64;
                    self.memory
                        .lock()
                        .unwrap()
                        .insert(kind, key, artifact.clone(), weight);
                    return Ok((artifact, Source::Disk));
                }
                Err(why) => self.disk.reject(kind, &key, &why),
            }
        }
        let (artifact, payload) = compile()?;
        self.compiles[kind.index()].fetch_add(1, Relaxed);
        self.memory
            .lock()
            .unwrap()
            .insert(kind, key, artifact.clone(), payload.len() as u64);
        if let Some(writer) = self.writer.lock().unwrap().as_ref() {
            let _ = writer.send(Job::Write(kind, key, payload));
        }
        Ok((artifact, Source::Compiled))
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

    /// Counts a lookup the caller answered itself (precompiled bytecode) as
    /// a memory hit.
    pub fn record_hit(&self, kind: Kind) {
        self.memory.lock().unwrap().record_hit(kind);
    }

    /// How many artifacts of `kind` this cache compiled (both tiers missed).
    pub fn compiles(&self, kind: Kind) -> u64 {
        self.compiles[kind.index()].load(Relaxed)
    }

    pub fn memory_stats(&self, kind: Kind) -> TierStats {
        self.memory.lock().unwrap().stats(kind)
    }

    pub fn disk_stats(&self, kind: Kind) -> TierStats {
        self.disk.stats(kind)
    }

    /// Files of `kind` refused as damaged since start-up.
    pub fn corrupt(&self, kind: Kind) -> u64 {
        self.disk.corrupt(kind)
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

    /// The figures as the WIT record; `hit_rate` is the share of lookups
    /// that compiled nothing.
    pub fn stats(&self, kind: Kind) -> CacheStats {
        let memory = self.memory_stats(kind);
        let disk = self.disk_stats(kind);
        let lookups = memory.hits + memory.misses;
        CacheStats {
            memory: tier(memory),
            disk: tier(disk),
            hit_rate: if lookups == 0 {
                0.0
            } else {
                (lookups - self.compiles(kind)) as f64 / lookups as f64
            },
        }
    }
}

fn tier(t: TierStats) -> Tier {
    Tier {
        hits: t.hits,
        misses: t.misses,
        entries: t.entries,
        bytes: t.bytes,
        capacity_bytes: t.capacity_bytes,
        evictions: t.evictions,
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
