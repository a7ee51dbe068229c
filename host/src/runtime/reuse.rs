//! Instances kept for reuse, by handler version: what calls of a handler
//! under `isolation = reuse` take an instance from, and give it back to.
//!
//! Invariants:
//! - An instance is only ever taken for the version it was made for. A
//!   version is a number the registry gives each registration once, so a
//!   replaced handler's instances never serve its successor.
//! - An instance goes back only after a call that succeeded (the engine
//!   hands back no other), whose output was within `max_output_bytes`, and
//!   while it has served fewer than `reuse_max_calls` calls and its memory
//!   is within `reuse_max_memory_percent` of the cap.
//! - At most `reuse_max_instances` are idle at once, over all versions;
//!   past it, the instance given back is dropped. One idle past
//!   `reuse_idle_ms` is dropped when next looked for, or by the sweeper.
//! - Idle instances are dropped outside the lock: a store's teardown resets
//!   its pool slot, and no other call waits on that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::engine::{Call, Hooks, Kept, Limits, Ran, Sandbox};
use crate::error::Result;

/// Why a kept instance was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Its call failed (an error, a timeout, a trap, out of memory, an
    /// output too large).
    Error,
    /// It served `reuse_max_calls` calls.
    MaxCalls,
    /// Its memory grew past `reuse_max_memory_percent` of the cap.
    Memory,
    /// It sat idle for `reuse_idle_ms`.
    Idle,
    /// `reuse_max_instances` were idle already.
    Full,
    /// Its handler was replaced or removed.
    Replaced,
}

impl Discard {
    /// Every reason, in the order of [`ReuseCounts::discarded`].
    pub const ALL: [Discard; 6] = [
        Discard::Error,
        Discard::MaxCalls,
        Discard::Memory,
        Discard::Idle,
        Discard::Full,
        Discard::Replaced,
    ];

    /// The reason's label: `error`, `max_calls`, `memory`, `idle`, `full`
    /// or `replaced`.
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::Error => "error",
            Discard::MaxCalls => "max_calls",
            Discard::Memory => "memory",
            Discard::Idle => "idle",
            Discard::Full => "full",
            Discard::Replaced => "replaced",
        }
    }
}

/// What reuse did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReuseCounts {
    /// Instances idle now, kept for a further call.
    pub idle: u64,
    /// Calls that ran in an instance an earlier call used.
    pub reused_calls: u64,
    /// Instances made for reuse.
    pub made: u64,
    /// Instances dropped, by reason, in the order of [`Discard::ALL`].
    pub discarded: [u64; 6],
}

struct Idle {
    kept: Kept,
    since: Instant,
}

/// The idle instances, by version, within their bounds.
pub(crate) struct Reuse {
    by_version: Mutex<HashMap<u64, Vec<Idle>>>,
    idle: AtomicU64,
    reused_calls: AtomicU64,
    made: AtomicU64,
    discarded: [AtomicU64; 6],
    max_idle: u64,
    max_calls: u32,
    max_memory: u64,
    max_output: u64,
    idle_for: Duration,
}

impl Reuse {
    pub fn new(config: &Config) -> Self {
        let percent = u64::from(config.reuse_max_memory_percent);
        Self {
            by_version: Mutex::default(),
            idle: AtomicU64::new(0),
            reused_calls: AtomicU64::new(0),
            made: AtomicU64::new(0),
            discarded: Default::default(),
            max_idle: u64::from(config.reuse_max_instances),
            max_calls: config.reuse_max_calls,
            max_memory: config.max_memory_bytes / 100 * percent,
            max_output: config.max_output_bytes,
            idle_for: config.reuse_idle,
        }
    }

    /// Runs `call` in an idle instance of `version`, or in a new one of
    /// `sandbox`'s component (a plain call's bytecode evaluated in it
    /// first), and keeps the instance for the next call if it may be.
    pub fn run(
        &self,
        version: u64,
        sandbox: &Sandbox,
        name: &str,
        call: Call<'_>,
        limits: Limits,
        hooks: Hooks<'_>,
    ) -> Result<Ran> {
        let (prepare, input) = match call {
            Call::Plain { bytecode, input } => (Some(bytecode), input),
            Call::Prepared { input } => (None, input),
        };
        let kept = self.take(version);
        if kept.is_none() {
            self.made.fetch_add(1, Relaxed);
        }
        let (ran, kept) = sandbox.run_kept(name, kept, prepare, input, limits, hooks);
        let fits = ran.as_ref().is_ok_and(|ran| {
            if ran.reused {
                self.reused_calls.fetch_add(1, Relaxed);
            }
            ran.output.len() as u64 <= self.max_output
        });
        match kept {
            Some(kept) if fits => self.give_back(version, kept),
            _ => self.count(Discard::Error),
        }
        ran
    }

    /// The most recently used idle instance of `version` still within its
    /// idle time; older ones past it are dropped.
    fn take(&self, version: u64) -> Option<Kept> {
        let (found, expired) = {
            let mut by_version = self.by_version.lock().unwrap();
            let idle = by_version.get_mut(&version)?;
            let found = idle.pop();
            let expired: Vec<Idle> = match &found {
                Some(last) if last.since.elapsed() >= self.idle_for => {
                    // The newest is stale, so all are.
                    std::mem::take(idle)
                }
                _ => Vec::new(),
            };
            if idle.is_empty() {
                by_version.remove(&version);
            }
            let gone = expired.len() as u64 + u64::from(found.is_some());
            self.idle.fetch_sub(gone, Relaxed);
            (found, expired)
        };
        match found {
            Some(last) if last.since.elapsed() < self.idle_for => Some(last.kept),
            Some(stale) => {
                self.discard(Discard::Idle, 1 + expired.len() as u64);
                drop((stale, expired));
                None
            }
            None => None,
        }
    }

    fn give_back(&self, version: u64, kept: Kept) {
        let reason = if kept.calls() >= self.max_calls {
            Some(Discard::MaxCalls)
        } else if kept.memory_bytes() > self.max_memory {
            Some(Discard::Memory)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.count(reason);
            return;
        }
        let mut by_version = self.by_version.lock().unwrap();
        if self.idle.load(Relaxed) >= self.max_idle {
            drop(by_version);
            self.count(Discard::Full);
            return;
        }
        self.idle.fetch_add(1, Relaxed);
        by_version.entry(version).or_default().push(Idle {
            kept,
            since: Instant::now(),
        });
    }

    /// Drops `version`'s idle instances: its handler was replaced or
    /// removed.
    pub fn forget(&self, version: u64) {
        let gone = self.by_version.lock().unwrap().remove(&version);
        if let Some(gone) = gone {
            self.idle.fetch_sub(gone.len() as u64, Relaxed);
            self.discard(Discard::Replaced, gone.len() as u64);
        }
    }

    /// Drops every instance idle past its time.
    fn sweep(&self) {
        let mut expired = Vec::new();
        {
            let mut by_version = self.by_version.lock().unwrap();
            by_version.retain(|_, idle| {
                let (stale, fresh): (Vec<Idle>, Vec<Idle>) = std::mem::take(idle)
                    .into_iter()
                    .partition(|i| i.since.elapsed() >= self.idle_for);
                expired.extend(stale);
                *idle = fresh;
                !idle.is_empty()
            });
            self.idle.fetch_sub(expired.len() as u64, Relaxed);
        }
        self.discard(Discard::Idle, expired.len() as u64);
    }

    fn count(&self, reason: Discard) {
        self.discard(reason, 1);
    }

    fn discard(&self, reason: Discard, n: u64) {
        if n > 0 {
            let at = Discard::ALL.iter().position(|r| *r == reason).unwrap();
            self.discarded[at].fetch_add(n, Relaxed);
        }
    }

    pub fn counts(&self) -> ReuseCounts {
        ReuseCounts {
            idle: self.idle.load(Relaxed),
            reused_calls: self.reused_calls.load(Relaxed),
            made: self.made.load(Relaxed),
            discarded: self.discarded.each_ref().map(|n| n.load(Relaxed)),
        }
    }
}

/// Starts a thread that drops instances idle past their time, while
/// `reuse` lives.
pub(crate) fn sweep_while_alive(reuse: &Arc<Reuse>) {
    let every = (reuse.idle_for / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let reuse: Weak<Reuse> = Arc::downgrade(reuse);
    let spawned = std::thread::Builder::new()
        .name("nexus-reuse-sweep".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            match reuse.upgrade() {
                Some(reuse) => reuse.sweep(),
                None => return,
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the reuse sweeper ({e}): idle instances are dropped only when next looked for");
    }
}
