//! Automatic per-handler snapshots: the policy over [`Runtime::prepare`].
//!
//! Each registered handler has a [`HandlerSnapshot`]: its policy (the server's
//! `snapshot` setting, or the handler's own: given at registration, else
//! `handler_snapshots`' entry for its name), its snapshot's state and,
//! once built, its prepared component. One background thread, at a lower CPU
//! priority, builds snapshots one at a time from a bounded queue, so builds
//! never take an instance slot or more than one core from invocations.
//!
//! Invariants:
//! - Under `auto`, a handler is switched to its snapshot only if its top
//!   level read neither randomness nor `Nexus.stats()` ([`Observed`]): what
//!   it computed is what every instance would. A clock read there is frozen
//!   at this process's time, as Node's module load freezes it: such a
//!   snapshot is built in this process and kept in its memory, never taken
//!   from or put in the cache directory or the seed.
//! - A build that fails leaves the handler on the plain path: the failure
//!   is logged once, counted and shown, never an invocation's error.
//! - At most `max_snapshots` snapshots are loaded; past that, the least
//!   recently invoked is unloaded (its component stays in the cache, from
//!   which a later build loads it without snapshotting again).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::artifacts::{Clocks, CompiledHandler};
use crate::cache::Origin;
use crate::config::SnapshotPolicy;
use crate::engine::Observed;
use crate::runtime::{PreparedHandler, Runtime};

/// Builds that may wait for the worker; past that, a handler is asked
/// again on a later invocation.
const QUEUE: usize = 256;

/// Where a handler's snapshot stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// Snapshots are off (`snapshot = off`, or `max_snapshots = 0`).
    Off,
    /// Under `auto`: built after this many invocations.
    Waiting {
        /// The invocations that trigger the build.
        after: u32,
    },
    /// Waiting for the worker.
    Queued,
    /// The worker is building or loading it.
    Building,
    /// Loaded: calls run in it.
    Prepared,
    /// Unloaded to keep within `max_snapshots`; the next call asks for it
    /// again, from the cache.
    Unloaded,
    /// Under `auto`, not used: the top level read something that differs
    /// between instances.
    Refused(String),
    /// The build failed; calls stay on the plain path.
    Failed(String),
}

impl Snapshot {
    /// The state as one word: `off`, `waiting`, `queued`, `building`,
    /// `prepared`, `unloaded`, `refused`, `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Snapshot::Off => "off",
            Snapshot::Waiting { .. } => "waiting",
            Snapshot::Queued => "queued",
            Snapshot::Building => "building",
            Snapshot::Prepared => "prepared",
            Snapshot::Unloaded => "unloaded",
            Snapshot::Refused(_) => "refused",
            Snapshot::Failed(_) => "failed",
        }
    }

    /// Why it was refused or failed.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Snapshot::Refused(why) | Snapshot::Failed(why) => Some(why),
            _ => None,
        }
    }
}

/// How builds ended since the start, and how many snapshots were unloaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    /// Snapshotted and compiled.
    pub built: u64,
    /// Found in the cache: no snapshot taken.
    pub loaded: u64,
    /// Not used under `auto`: the top level read the clock, randomness or
    /// stats.
    pub refused: u64,
    /// The top level threw, ran out of time or memory, or the engine failed.
    pub failed: u64,
    /// Unloaded to keep within `max_snapshots`.
    pub unloaded: u64,
}

#[derive(Default)]
struct Counts {
    built: AtomicU64,
    loaded: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    unloaded: AtomicU64,
}

/// One handler's snapshot.
pub(crate) struct HandlerSnapshot {
    /// The name the handler is registered under (`tla`), as logs and
    /// advice name it; `compiled.name` is its file name (`tla.js`).
    name: String,
    compiled: CompiledHandler,
    policy: SnapshotPolicy,
    state: Mutex<Snapshot>,
    prepared: RwLock<Option<Arc<PreparedHandler>>>,
    /// When it was last invoked prepared, on the policy's own clock.
    last_used: AtomicU64,
}

impl HandlerSnapshot {
    pub fn state(&self) -> Snapshot {
        self.state.lock().unwrap().clone()
    }

    fn set(&self, state: Snapshot) {
        *self.state.lock().unwrap() = state;
    }

    pub fn prepared(&self) -> Option<Arc<PreparedHandler>> {
        self.prepared.read().unwrap().clone()
    }

    pub fn policy(&self) -> SnapshotPolicy {
        self.policy
    }
}

/// The policy and its worker's queue.
pub(crate) struct Snapshots {
    /// The server's `snapshot` setting: a handler's unless it has its own.
    policy: SnapshotPolicy,
    /// `max_snapshots` > 0: without room for one, no handler gets one.
    enabled: bool,
    after: u32,
    queue: SyncSender<Weak<HandlerSnapshot>>,
    counts: Arc<Counts>,
    clock: AtomicU64,
}

impl Snapshots {
    /// The policy of `runtime`'s settings, with its worker started (even
    /// under `off`, which a handler's own policy may override), unless
    /// `max_snapshots` is 0.
    pub fn start(runtime: Arc<Runtime>) -> Self {
        let config = runtime.config().clone();
        let enabled = config.max_snapshots > 0;
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let worker = Worker {
            max_snapshots: config.max_snapshots as usize,
            loaded: Vec::new(),
            counts: counts.clone(),
            runtime,
        };
        if enabled {
            let spawned = std::thread::Builder::new()
                .name("nexus-snapshots".into())
                .spawn(move || worker.run(jobs));
            if let Err(e) = spawned {
                tracing::warn!(
                    "cannot start the snapshot worker ({e}): every call takes the plain path"
                );
            }
        }
        Self {
            after: config.snapshot_after,
            policy: config.snapshot,
            enabled,
            queue,
            counts,
            clock: AtomicU64::new(0),
        }
    }

    /// A snapshot for a newly registered handler, under its own `policy` if it
    /// has one, else the server's; under `eager`, its build is queued now.
    pub fn register(
        &self,
        name: &str,
        compiled: CompiledHandler,
        policy: Option<SnapshotPolicy>,
    ) -> Arc<HandlerSnapshot> {
        let policy = match policy.unwrap_or(self.policy) {
            _ if !self.enabled => SnapshotPolicy::Off,
            policy => policy,
        };
        let state = match policy {
            SnapshotPolicy::Off => Snapshot::Off,
            SnapshotPolicy::Auto => Snapshot::Waiting { after: self.after },
            SnapshotPolicy::Eager => Snapshot::Queued,
        };
        let snapshot = Arc::new(HandlerSnapshot {
            name: name.to_owned(),
            compiled,
            policy,
            state: Mutex::new(state),
            prepared: RwLock::default(),
            last_used: AtomicU64::new(0),
        });
        if policy == SnapshotPolicy::Eager {
            self.enqueue(&snapshot, Snapshot::Waiting { after: 0 });
        }
        snapshot
    }

    /// The prepared component to run this call in, if loaded; else, where
    /// `invocations` (this one included) reached the threshold, queues the
    /// build.
    pub fn route(
        &self,
        snapshot: &Arc<HandlerSnapshot>,
        invocations: u64,
    ) -> Option<Arc<PreparedHandler>> {
        if let Some(prepared) = snapshot.prepared() {
            snapshot
                .last_used
                .store(self.clock.fetch_add(1, Relaxed) + 1, Relaxed);
            return Some(prepared);
        }
        let threshold = match snapshot.policy {
            SnapshotPolicy::Off => return None,
            SnapshotPolicy::Auto => self.after,
            // Only if the build could not be queued at registration.
            SnapshotPolicy::Eager => 0,
        };
        if invocations < u64::from(threshold) {
            return None;
        }
        let mut state = snapshot.state.lock().unwrap();
        if matches!(*state, Snapshot::Waiting { .. } | Snapshot::Unloaded) {
            let before = std::mem::replace(&mut *state, Snapshot::Queued);
            drop(state);
            self.enqueue(snapshot, before);
        }
        None
    }

    /// Queues `snapshot`'s build; when the queue is full, puts back the state
    /// it had, so a later call asks again.
    fn enqueue(&self, snapshot: &Arc<HandlerSnapshot>, before: Snapshot) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(Arc::downgrade(snapshot))
        {
            snapshot.set(before);
        }
    }

    pub fn counts(&self) -> SnapshotCounts {
        let c = &self.counts;
        SnapshotCounts {
            built: c.built.load(Relaxed),
            loaded: c.loaded.load(Relaxed),
            refused: c.refused.load(Relaxed),
            failed: c.failed.load(Relaxed),
            unloaded: c.unloaded.load(Relaxed),
        }
    }
}

/// The background builder: one build at a time.
struct Worker {
    max_snapshots: usize,
    /// The snapshots with a loaded snapshot; a removed handler's goes dead.
    loaded: Vec<Weak<HandlerSnapshot>>,
    counts: Arc<Counts>,
    runtime: Arc<Runtime>,
}

impl Worker {
    fn run(mut self, jobs: Receiver<Weak<HandlerSnapshot>>) {
        // Builds take seconds of CPU: let invocations go first.
        if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
            tracing::debug!("snapshot worker keeps its priority: {e}");
        }
        // Ends when the handlers (and so the queue's sender) are dropped.
        for job in jobs {
            // A handler removed or replaced since it was queued is gone.
            if let Some(snapshot) = job.upgrade() {
                self.build(&snapshot);
            }
        }
    }

    fn build(&mut self, snapshot: &Arc<HandlerSnapshot>) {
        snapshot.set(Snapshot::Building);
        let name = snapshot.name.as_str();
        let counts = &self.counts;
        // Under auto, a clock read at the top level is frozen at this
        // process's time, as Node's module load freezes it: the snapshot is
        // this process's own. Randomness or the runtime's figures would be
        // the same in every instance, and keep the handler plain.
        let clocks = match snapshot.policy {
            SnapshotPolicy::Auto => Clocks::ThisProcess,
            SnapshotPolicy::Eager | SnapshotPolicy::Off => Clocks::Shared,
        };
        match self.runtime.prepare_unadmitted(&snapshot.compiled, clocks) {
            Ok(prepared) => match (Observed {
                clock: false,
                ..prepared.observed
            })
            .reason()
            {
                Some(why) if snapshot.policy == SnapshotPolicy::Auto => {
                    counts.refused.fetch_add(1, Relaxed);
                    tracing::info!(target: "nexus::snapshot", handler = name, "not used under snapshot = auto: {why}; calls stay on the plain path");
                    snapshot.set(Snapshot::Refused(format!(
                        "{why}; to snapshot it anyway, give it the eager policy \
                         (PUT /handlers/{name}?snapshot=eager, or the setting \
                         handler_snapshots = \"{name}=eager\")"
                    )));
                }
                _ => {
                    let outcome = match prepared.origin {
                        Origin::Compiled => &counts.built,
                        Origin::Memory | Origin::Disk | Origin::Seed => &counts.loaded,
                    };
                    outcome.fetch_add(1, Relaxed);
                    tracing::debug!(target: "nexus::snapshot", handler = name, origin = prepared.origin.as_str(), "prepared");
                    self.install(snapshot, prepared);
                }
            },
            Err(e) => {
                counts.failed.fetch_add(1, Relaxed);
                let why = format!("{} ({})", e, e.kind());
                tracing::warn!(target: "nexus::snapshot", handler = name, "snapshot failed; calls stay on the plain path: {why}");
                snapshot.set(Snapshot::Failed(why));
            }
        }
    }

    /// Loads `prepared` into `snapshot`, then unloads the least recently
    /// invoked snapshots past `max_snapshots`.
    fn install(&mut self, snapshot: &Arc<HandlerSnapshot>, prepared: PreparedHandler) {
        let newest = self
            .loaded
            .iter()
            .filter_map(Weak::upgrade)
            .map(|s| s.last_used.load(Relaxed))
            .max()
            .unwrap_or(0);
        // It has not been invoked prepared yet: count it as recent as the
        // most recent, so it is not the first to go.
        snapshot.last_used.store(newest, Relaxed);
        *snapshot.prepared.write().unwrap() = Some(Arc::new(prepared));
        snapshot.set(Snapshot::Prepared);
        self.loaded.retain(|s| s.strong_count() > 0);
        self.loaded.push(Arc::downgrade(snapshot));
        while self.loaded.len() > self.max_snapshots {
            let this = Arc::downgrade(snapshot);
            let Some((index, _)) = self
                .loaded
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.ptr_eq(&this))
                .map(|(i, s)| (i, s.upgrade().map_or(0, |s| s.last_used.load(Relaxed))))
                .min_by_key(|(_, used)| *used)
            else {
                break;
            };
            if let Some(old) = self.loaded.swap_remove(index).upgrade() {
                *old.prepared.write().unwrap() = None;
                old.set(Snapshot::Unloaded);
                self.counts.unloaded.fetch_add(1, Relaxed);
                tracing::debug!(target: "nexus::snapshot", handler = old.name.as_str(), "unloaded (max_snapshots)");
            }
        }
    }
}
