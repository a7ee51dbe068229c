//! A fresh guest instance per call: its store, host state and imports.
//!
//! Invariants:
//! - Every call gets a new `Store` and a new instance from one `InstancePre`;
//!   both are dropped when the call returns, trap or not: an instance that
//!   trapped is never used again.
//! - Every store has a memory cap (`StoreLimits`) and an epoch deadline, so
//!   no handler can run or grow past its limits.
//! - The guest imports only clocks and randomness from WASI (host/build.rs
//!   turned the rest of what Rust's std links into traps), and its WASI
//!   context is empty: no preopened directories, no environment, no
//!   arguments, no stdio, no sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, InstancePre, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{nexus::handler as wit, HandlerError, HandlerRuntime, Level};
use crate::error::{Error, Result};
use crate::exports::{Exports, Guest};
use crate::runtime::TICK;
use crate::stats::Stats;

/// Console output a handler may keep per call; past it, lines are dropped
/// and one marker line says so.
const MAX_LOG_BYTES: usize = 1 << 20;

/// One `console.*` line from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// Where one call's time went, phase by phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Creating the store, its host state and limits.
    pub setup: Duration,
    /// Instantiating the guest from the pre-linked component (pooled slots,
    /// imports, the snapshot's memory mapped copy-on-write).
    pub instantiate: Duration,
    /// The guest's own work: arguments in, QuickJS loading and evaluating
    /// the module, the handler's call, the result out.
    pub call: Duration,
    /// Dropping the store: the slot's memory and tables reset for reuse.
    pub teardown: Duration,
}

impl Timing {
    /// The phases' names, in the order they run.
    pub const PHASES: [&'static str; 4] = ["setup", "instantiate", "call", "teardown"];

    /// The phases' durations, in the order of [`PHASES`](Self::PHASES).
    pub fn phases(&self) -> [Duration; 4] {
        [self.setup, self.instantiate, self.call, self.teardown]
    }

    /// All phases together.
    pub fn total(&self) -> Duration {
        self.phases().iter().sum()
    }
}

/// What one call may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_memory_bytes: u64,
}

impl Limits {
    /// The timeout in epoch ticks: a deadline that traps within one tick
    /// after it.
    pub fn deadline_ticks(&self) -> u64 {
        self.timeout.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64
    }
}

/// How a call into the guest ended, as the host's error: a refused memory
/// grow is out-of-memory whatever QuickJS made of it; then the handler's own
/// errors; then traps (the deadline, the wasm stack).
pub(crate) fn classify<T>(
    outcome: wasmtime::Result<std::result::Result<T, HandlerError>>,
    out_of_memory: bool,
    limits: Limits,
) -> Result<T> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        _ if out_of_memory => Err(Error::OutOfMemory {
            limit: limits.max_memory_bytes,
        }),
        Ok(Err(HandlerError::Runtime(e)))
            if e.name == "RangeError" && e.message == "Maximum call stack size exceeded" =>
        {
            Err(Error::StackOverflow)
        }
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Error::Timeout {
                limit: limits.timeout,
            },
            Some(Trap::StackOverflow) => Error::StackOverflow,
            _ => Error::Trap(format!("{e:#}")),
        }),
    }
}

/// `StoreLimits`, remembering whether a memory grow was refused: QuickJS
/// turns that into an ordinary exception, which is still out-of-memory.
pub(crate) struct Limiter {
    limits: StoreLimits,
    pub(crate) refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

pub(crate) struct HostState {
    // Made on first use: most calls never reach WASI.
    wasi: Option<WasiCtx>,
    pub(crate) limiter: Limiter,
    table: ResourceTable,
    stats: Arc<Stats>,
    handler: String,
    logs: Vec<LogLine>,
    log_bytes: usize,
}

impl HostState {
    /// A fresh state: an empty WASI context, and a memory cap if given.
    pub fn new(stats: Arc<Stats>, handler: &str, max_memory_bytes: Option<u64>) -> Self {
        let mut limits = StoreLimitsBuilder::new();
        if let Some(max) = max_memory_bytes {
            limits = limits.memory_size(max as usize);
        }
        HostState {
            wasi: None,
            limiter: Limiter {
                limits: limits.build(),
                refused: false,
            },
            table: ResourceTable::new(),
            stats,
            handler: handler.to_owned(),
            logs: Vec::new(),
            log_bytes: 0,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| WasiCtx::builder().build()),
            table: &mut self.table,
        }
    }
}

impl wit::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_bytes > MAX_LOG_BYTES {
            return;
        }
        self.log_bytes += message.len();
        let (level, message) = if self.log_bytes > MAX_LOG_BYTES {
            (
                Level::Warn,
                format!("console output over {MAX_LOG_BYTES} bytes; the rest is dropped"),
            )
        } else {
            (level, message)
        };
        let handler = self.handler.as_str();
        match level {
            Level::Debug => tracing::debug!(target: "nexus::console", handler, "{message}"),
            Level::Info => tracing::info!(target: "nexus::console", handler, "{message}"),
            Level::Warn => tracing::warn!(target: "nexus::console", handler, "{message}"),
            Level::Error => tracing::error!(target: "nexus::console", handler, "{message}"),
        }
        self.logs.push(LogLine { level, message });
    }
}

impl wit::stats::Host for HostState {
    fn get(&mut self) -> wit::stats::RuntimeStats {
        self.stats.snapshot()
    }
}

impl wit::types::Host for HostState {}

/// The guest component, linked once, ready to instantiate.
pub(crate) struct Sandbox {
    engine: Engine,
    pre: InstancePre<HostState>,
    exports: Exports,
    stats: Arc<Stats>,
}

impl Sandbox {
    pub fn new(engine: &Engine, component: &Component, stats: Arc<Stats>) -> Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::engine)?;
        HandlerRuntime::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(Error::engine)?;
        let pre = linker.instantiate_pre(component).map_err(Error::engine)?;
        let new_store = || {
            let mut store = Store::new(engine, HostState::new(stats.clone(), "exports", None));
            // Instantiating runs no handler code: any far deadline will do.
            store.set_epoch_deadline(1 << 40);
            store
        };
        let exports = Exports::new(&pre, new_store).map_err(Error::engine)?;
        Ok(Self {
            engine: engine.clone(),
            pre,
            exports,
            stats,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs `f` against a fresh instance within `limits`; `handler` names
    /// the log lines. Traps and limits become their own [`Error`] variants.
    /// On success, also answers where the time went.
    pub fn call<T>(
        &self,
        handler: &str,
        limits: Limits,
        f: impl FnOnce(
            &Guest<'_>,
            &mut Store<HostState>,
        ) -> wasmtime::Result<std::result::Result<T, HandlerError>>,
    ) -> Result<(T, Vec<LogLine>, Timing)> {
        let start = Instant::now();
        let state = HostState::new(self.stats.clone(), handler, Some(limits.max_memory_bytes));
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(limits.deadline_ticks());
        store.epoch_deadline_trap();

        let set_up = Instant::now();
        let instance = self.pre.instantiate(&mut store);
        let instantiated = Instant::now();
        let outcome = instance.and_then(|instance| f(&self.exports.of(instance), &mut store));
        let called = Instant::now();
        let out_of_memory = store.data().limiter.refused;
        let logs = std::mem::take(&mut store.data_mut().logs);
        drop(store);
        let timing = Timing {
            setup: set_up - start,
            instantiate: instantiated - set_up,
            call: called - instantiated,
            teardown: called.elapsed(),
        };
        classify(outcome, out_of_memory, limits).map(|value| (value, logs, timing))
    }
}
