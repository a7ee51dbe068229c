//! The façade for one invocation: the engine, the linked guest, admission,
//! and every compile, invocation and preparation.
//!
//! Layer: imports `artifacts`, `engine`, `cache`, `stats`, `config` and
//! `error`; named handlers (`registry`) sit above it. Data flows one way:
//! [`Runtime`] → artifacts → {engine, cache}; nothing below calls back up.
//! Every invocation runs in a fresh instance within its limits (timeout,
//! memory, at most `max_instances` at once). No wasmtime type appears here:
//! the engine answers in the library's own types.

mod admission;
mod later;
mod reuse;

pub use later::DeferTeardown;
pub use reuse::{Discard, ReuseCounts};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::artifacts::{self, Bytecode, Clocks, CompiledHandler, Snapshotted};
use crate::cache::{Artifact, Cache, Origin};
use crate::config::Config;
use crate::engine::{
    Call, Cancel, Engine, EngineConfig, Hooks, Limits, LogLine, Observed, Sandbox, Timing,
};
use crate::engine::{RuntimeStats, SlotResetChoice};
use crate::error::{Error, Result};
use crate::stats::{Counters, HandlerSeries, Stats};
use admission::Admission;
use reuse::Reuse;

/// The smallest disk cache that holds the guest component (about 4 MB, in
/// 4 KiB blocks) with room to spare.
const MIN_DISK_CACHE: u64 = 8 << 20;

/// Compiling may take at least this long, whatever the invocations' timeout.
const COMPILE_TIME: Duration = Duration::from_secs(30);

/// Compiling may use at least this much memory, whatever the invocations'
/// cap.
const COMPILE_MEMORY: u64 = 256 << 20;

/// The memory cap for compiling; also the pool's slot size, the largest any
/// instance can be (each store's own limit holds invocations to theirs).
fn compile_memory(config: &Config) -> u64 {
    config.max_memory_bytes.max(COMPILE_MEMORY)
}

/// How many threads an embedder should run calls on (`nexus serve`'s call
/// threads, the Node addon's): one per core, and one more. Enough to keep
/// the cores busy while a thread hands an answer back, few enough that
/// calls do not thrash the cores at high concurrency.
pub fn call_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// What one successful invocation answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The handler's result, as JSON.
    pub output: String,
    /// What the handler wrote with `console.*`, in order.
    pub logs: Vec<LogLine>,
    /// Where the invocation's time went.
    pub timing: Timing,
    /// Which component ran it.
    pub path: InvocationPath,
    /// Whether it ran in an instance an earlier call of the same handler
    /// version used (`isolation = reuse`), not a fresh one.
    pub reused: bool,
}

/// Which component an invocation ran in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationPath {
    /// The shared guest, which loaded and evaluated the handler's bytecode.
    Plain,
    /// The handler's own [prepared](Runtime::prepare) component.
    Prepared,
}

impl InvocationPath {
    /// `plain` or `prepared`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationPath::Plain => "plain",
            InvocationPath::Prepared => "prepared",
        }
    }
}

/// What a call runs: bytecode in the shared guest, or a prepared handler's
/// own snapshot.
pub(crate) enum Target<'a> {
    /// The shared guest, loading `bytecode` (named `name` in stack traces).
    Plain { name: &'a str, bytecode: &'a [u8] },
    /// The handler's own snapshot.
    Prepared(&'a PreparedHandler),
}

impl<'a> Target<'a> {
    /// `handler`'s bytecode, on the plain path.
    pub(crate) fn plain(handler: &'a CompiledHandler) -> Self {
        Target::Plain {
            name: &handler.name,
            bytecode: &handler.bytecode,
        }
    }
}

/// A handler with its own pre-initialized component; see
/// [`Runtime::prepare`]. Cheap to clone.
#[derive(Clone)]
pub struct PreparedHandler {
    /// The handler's name: its file name in stack traces.
    pub name: String,
    /// Where its component came from.
    pub origin: Origin,
    /// What its module's top level read of the world while it was
    /// evaluated for the snapshot (each call sees those values frozen).
    pub observed: Observed,
    sandbox: Arc<Sandbox>,
}

impl std::fmt::Debug for PreparedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedHandler")
            .field("name", &self.name)
            .field("origin", &self.origin)
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

/// Compiles and runs handlers. `Send + Sync`: share it behind an `Arc`.
pub struct Runtime {
    config: Config,
    sandbox: Sandbox,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    admission: Arc<Admission>,
    reuse: Arc<Reuse>,
    component_origin: Origin,
    // Dropped last: the sandboxes above hold instances of its pool.
    engine: Engine,
}

impl Runtime {
    /// Opens the cache, builds the engine, and loads (from the cache, or by
    /// compiling) and links the guest component.
    ///
    /// An unusable cache directory is not an error: the runtime warns once
    /// and serves from memory.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for settings out of range; [`Error::Engine`] when
    /// the engine or the guest component cannot be set up.
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        let mut cache = Cache::open_with(
            &config.cache_dir,
            config.max_cache_size_bytes,
            config.max_disk_cache_bytes,
            config.cache_eviction,
        );
        if let Some(seed) = &config.seed_dir {
            cache = cache.with_seed(seed);
        }
        let cache = Arc::new(cache);
        if cache.disk_available() && config.max_disk_cache_bytes < MIN_DISK_CACHE {
            tracing::warn!(
                "max_disk_cache_bytes = {} cannot hold the guest component (about 4 MB): \
                 every start will compile it (about 2 s); give the disk cache at least 8Mi",
                config.max_disk_cache_bytes
            );
        }
        let stats = Arc::new(Stats::new(cache.clone(), config.stats_scope));
        let record = stats.clone();
        let engine = Engine::new(EngineConfig {
            max_instances: config.max_instances,
            kept_instances: config.reuse_max_instances,
            largest_memory: compile_memory(&config),
            console_lines_per_second: config.console_lines_per_second,
            stats: Arc::new(move |handler| record.record_for(handler)),
            slot_reset: config.slot_reset,
        })?;
        let reset = engine.slot_reset();
        if reset.full {
            tracing::info!(
                slot_reset = "full",
                "pool slots are reset in full: {}; each call then faults in the pages it touches, about 70 µs more a call for a trivial handler and 0.5 ms for lodash (bench/RESULTS.md)",
                reset.reason
            );
        } else {
            tracing::debug!(
                slot_reset = "scan",
                "pool slots are reset by page scan: {}",
                reset.reason
            );
        }
        let start = Instant::now();
        let (component, component_origin) = artifacts::guest(&engine, &cache)?;
        stats.compiled_if(Artifact::Component, component_origin, start, None);
        tracing::debug!(target: "nexus::cache", artifact = "component", origin = component_origin.as_str(), "guest component");
        let sandbox = engine.sandbox(&component)?;
        let reuse = Arc::new(Reuse::new(&config));
        if config.reuse_max_instances > 0 {
            reuse::sweep_while_alive(&reuse);
        }
        Ok(Self {
            admission: Arc::new(Admission::new(config.max_instances, config.queue_timeout)),
            reuse,
            config,
            sandbox,
            cache,
            stats,
            component_origin,
            engine,
        })
    }

    /// The settings this runtime was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the engine resets pool slots between instances, and why
    /// (`slot_reset`, and whether the host has swap).
    pub fn slot_reset(&self) -> SlotResetChoice {
        self.engine.slot_reset()
    }

    /// The artifact cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Where this runtime's guest component came from.
    pub fn component_origin(&self) -> Origin {
        self.component_origin
    }

    /// Instances alive now: invocations and compiles running, and fresh
    /// instances whose answer went out and whose teardown a [`DeferTeardown`]
    /// holds.
    pub fn active_instances(&self) -> u32 {
        self.admission.active()
    }

    fn limits(&self, timeout: Option<Duration>) -> Limits {
        Limits {
            timeout: timeout.unwrap_or(self.config.timeout),
            max_memory_bytes: self.config.max_memory_bytes,
        }
    }

    /// Compiles `source`, an ES module, to bytecode under `name` (the file
    /// name its stack traces show), unless the cache has it. The module is
    /// not evaluated.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`] with the position of a syntax error;
    /// [`Error::InvalidName`] for a name with a NUL byte; the limits'
    /// errors if compiling runs out of time or memory (it gets at least
    /// 30 s and 256 MiB, whatever the invocations' limits).
    pub fn compile(&self, name: &str, source: &str) -> Result<CompiledHandler> {
        if name.contains('\0') {
            return Err(Error::InvalidName(
                name.to_owned(),
                "it contains a NUL byte, which JavaScript file names cannot",
            ));
        }
        let _permit = self.admission.enter()?;
        // Parsing a large bundle takes longer, and more memory, than running
        // a handler (a 9 MB one: seconds, and ~90 MiB). It runs no handler
        // code, and what it uses is bounded by the source.
        let limits = Limits {
            timeout: self.config.timeout.max(COMPILE_TIME),
            max_memory_bytes: compile_memory(&self.config),
        };
        let start = Instant::now();
        let compiled = artifacts::compile(
            &self.sandbox,
            &self.cache,
            self.config.compile_options,
            limits,
            name,
            source,
        )?;
        self.stats.compiled_if(
            Artifact::Bytecode,
            compiled.origin,
            start,
            Some(log_name(name)),
        );
        tracing::debug!(target: "nexus::cache", artifact = "bytecode", origin = compiled.origin.as_str(), handler = log_name(name), "handler bytecode");
        Ok(compiled)
    }

    /// Runs `handler` in a fresh instance with `input` (JSON), within the
    /// configured timeout.
    ///
    /// # Errors
    ///
    /// The handler's own failures (`Runtime`, `InvalidInput`,
    /// `InvalidOutput`, `InvalidModule`, `InvalidBytecode`), its limits
    /// (`Timeout`, `OutOfMemory`, `StackOverflow`, `OutputTooLarge`), and
    /// `Busy` when no instance frees up in time.
    pub fn invoke(&self, handler: &CompiledHandler, input: &str) -> Result<Invocation> {
        self.invoke_with_timeout(handler, input, None)
    }

    /// As [`invoke`](Self::invoke), with this call's own timeout.
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke).
    pub fn invoke_with_timeout(
        &self,
        handler: &CompiledHandler,
        input: &str,
        timeout: Option<Duration>,
    ) -> Result<Invocation> {
        self.call(Target::plain(handler), input, timeout, None, None, None)
    }

    /// Gives `handler` its own pre-initialized component: the guest with the
    /// handler's module already evaluated, so each fresh instance only
    /// parses the input, calls the default export and writes the result.
    /// Costs a snapshot and a Cranelift compile (seconds) unless the cache
    /// has it; worth it for handlers that run often or whose module takes
    /// long to evaluate.
    ///
    /// The module's top-level code runs once, now: what it computes (a
    /// `Math.random()`, a `Date.now()`) is the same in every invocation.
    /// Code inside the handler runs per invocation, as with
    /// [`invoke`](Self::invoke).
    ///
    /// # Errors
    ///
    /// The errors of evaluating the module (`Runtime`, `InvalidModule`,
    /// `InvalidBytecode`, `Timeout`, `OutOfMemory`, `StackOverflow`);
    /// [`Error::Engine`] if snapshotting or compiling fails.
    pub fn prepare(&self, handler: &CompiledHandler) -> Result<PreparedHandler> {
        let _permit = self.admission.enter()?;
        self.prepare_unadmitted(handler, Clocks::Shared)
    }

    /// [`prepare`](Self::prepare) without taking an instance slot: for a
    /// background worker, which runs one build at a time and whose build
    /// instantiates on an engine of its own; `clocks` says whose clock the
    /// snapshot may have frozen.
    pub(crate) fn prepare_unadmitted(
        &self,
        handler: &CompiledHandler,
        clocks: Clocks,
    ) -> Result<PreparedHandler> {
        let start = Instant::now();
        let (
            Snapshotted {
                component,
                observed,
                ..
            },
            origin,
        ) = artifacts::prepared(
            &self.engine,
            &self.cache,
            log_name(&handler.name),
            &handler.bytecode,
            self.limits(None),
            clocks,
        )?;
        self.stats
            .compiled_if(Artifact::Component, origin, start, None);
        Ok(PreparedHandler {
            name: handler.name.clone(),
            origin,
            observed,
            sandbox: Arc::new(self.engine.sandbox(&component)?),
        })
    }

    /// Runs a [prepared](Self::prepare) handler in a fresh instance of its
    /// own component, with the same limits as [`invoke`](Self::invoke).
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke).
    pub fn invoke_prepared(
        &self,
        handler: &PreparedHandler,
        input: &str,
        timeout: Option<Duration>,
    ) -> Result<Invocation> {
        self.invoke_prepared_cancellable(handler, input, timeout, None)
    }

    /// [`invoke_with_timeout`](Self::invoke_with_timeout), stopped by
    /// `cancel`: a call cancelled before it starts never does, and one
    /// running ends within about 10 ms.
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke), and [`Error::Cancelled`].
    pub fn invoke_cancellable(
        &self,
        handler: &CompiledHandler,
        input: &str,
        timeout: Option<Duration>,
        cancel: Option<&Cancel>,
    ) -> Result<Invocation> {
        self.call(Target::plain(handler), input, timeout, cancel, None, None)
    }

    /// [`invoke_prepared`](Self::invoke_prepared), stopped by `cancel` as
    /// [`invoke_cancellable`](Self::invoke_cancellable) is.
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke), and [`Error::Cancelled`].
    pub fn invoke_prepared_cancellable(
        &self,
        handler: &PreparedHandler,
        input: &str,
        timeout: Option<Duration>,
        cancel: Option<&Cancel>,
    ) -> Result<Invocation> {
        self.call(
            Target::Prepared(handler),
            input,
            timeout,
            cancel,
            None,
            None,
        )
    }

    /// Runs precompiled bytecode (a `.qjsc` file), with the same limits as
    /// [`invoke`](Self::invoke). No cache was looked up, so none is counted.
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke).
    pub fn invoke_bytecode(
        &self,
        bytecode: &Bytecode,
        input: &str,
        timeout: Option<Duration>,
    ) -> Result<Invocation> {
        let target = Target::Plain {
            name: &bytecode.name,
            bytecode: &bytecode.bytes,
        };
        self.call(target, input, timeout, None, None, None)
    }

    /// One invocation of `target`: admitted, in a fresh instance of its
    /// component (or, with `reuse`, a handler version's number, in an
    /// instance an earlier call of that version left), its output bounded,
    /// and counted (in a registered handler's `series` too, if given).
    pub(crate) fn call(
        &self,
        target: Target<'_>,
        input: &str,
        timeout: Option<Duration>,
        cancel: Option<&Cancel>,
        series: Option<&HandlerSeries>,
        reuse: Option<u64>,
    ) -> Result<Invocation> {
        let (sandbox, name, call, path) = match target {
            Target::Plain { name, bytecode } => (
                &self.sandbox,
                name,
                Call::Plain { bytecode, input },
                InvocationPath::Plain,
            ),
            Target::Prepared(handler) => (
                &*handler.sandbox,
                handler.name.as_str(),
                Call::Prepared { input },
                InvocationPath::Prepared,
            ),
        };
        let mut took = Duration::ZERO;
        let cancelled = || match cancel {
            Some(cancel) if cancel.is_cancelled() => Err(Error::Cancelled),
            _ => Ok(()),
        };
        let result = cancelled()
            .and_then(|()| self.admission.enter())
            .and_then(|permit| {
                // Its caller may have gone while it waited for a slot.
                cancelled()?;
                let start = Instant::now();
                let hooks = Hooks {
                    cancel,
                    console: series.map(|s| s as _),
                };
                let (name, limits) = (log_name(name), self.limits(timeout));
                let ran = match reuse {
                    None => sandbox.run(name, call, limits, hooks),
                    Some(version) => self.reuse.run(version, sandbox, name, call, limits, hooks),
                };
                took = start.elapsed();
                let ran = ran?;
                let (output, logs, mut timing, reused) =
                    (ran.output, ran.logs, ran.timing, ran.reused);
                if let Some(teardown) = ran.teardown {
                    timing.teardown = later::tear_down(teardown, permit);
                }
                if output.len() as u64 > self.config.max_output_bytes {
                    return Err(Error::OutputTooLarge {
                        size: output.len() as u64,
                        limit: self.config.max_output_bytes,
                    });
                }
                Ok(Invocation {
                    output,
                    logs,
                    timing,
                    path,
                    reused,
                })
            });
        self.stats.invoked(log_name(name), &result, took);
        if let Some(series) = series {
            series.invoked(&result, took);
        }
        result
    }

    /// [`invoke`](Self::invoke) for async callers: runs on tokio's blocking
    /// pool, so waiting for an instance never blocks the executor.
    ///
    /// # Errors
    ///
    /// As [`invoke`](Self::invoke).
    pub async fn invoke_async(
        self: &Arc<Self>,
        handler: &CompiledHandler,
        input: &str,
        timeout: Option<Duration>,
    ) -> Result<Invocation> {
        let (runtime, handler, input) = (self.clone(), handler.clone(), input.to_owned());
        joined(
            tokio::task::spawn_blocking(move || {
                runtime.invoke_with_timeout(&handler, &input, timeout)
            })
            .await,
        )
    }

    /// The guest pre-initialized (QuickJS's runtime and context created,
    /// then snapshotted): the component this runtime compiles and
    /// instantiates, before Cranelift. For other hosts and tools.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if pre-initializing fails.
    pub fn pre_initialized_guest(&self) -> Result<Vec<u8>> {
        self.engine.pre_initialize()
    }

    /// Drops the idle instances kept for handler version `version`: it was
    /// replaced or removed.
    pub(crate) fn forget_kept(&self, version: u64) {
        self.reuse.forget(version);
    }

    /// What instance reuse did so far.
    pub fn reuse_counts(&self) -> ReuseCounts {
        self.reuse.counts()
    }

    /// The runtime's figures, as handlers see them through `Nexus.stats()`.
    pub fn stats(&self) -> RuntimeStats {
        self.stats.record()
    }

    /// The counters beyond [`stats`](Self::stats), for metrics: invocations
    /// by outcome, and how long invocations and compiles took.
    pub fn counters(&self) -> Counters {
        self.stats.counters()
    }
}

/// The name logs give a handler compiled as `name`: its file name without
/// `.js` (`tla.js` is `tla`), the name it is registered under in a server.
fn log_name(name: &str) -> &str {
    name.strip_suffix(".js").unwrap_or(name)
}

/// A blocking task's answer; one that panicked or was cancelled is the
/// host's failure, not the handler's.
fn joined<T>(task: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    task.map_err(|e| Error::Internal(format!("the invocation's worker failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_panicked_is_an_internal_error_not_a_trap() {
        let executor = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let task = executor.block_on(async {
            tokio::task::spawn_blocking(|| -> Result<()> { panic!("worker bug") }).await
        });
        let error = joined(task).unwrap_err();
        assert_eq!(error.kind(), "internal", "{error}");
        assert!(!error.is_handler_error());
        assert!(error.to_string().contains("worker failed"), "{error}");
    }
}
