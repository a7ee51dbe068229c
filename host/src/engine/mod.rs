//! Everything wasmtime, behind one type: [`Engine`] owns the wasmtime
//! engine (pooling allocator, copy-on-write images, epochs), its epoch
//! ticker, the one store builder and the Wizer snapshotter, and hands out a
//! [`Sandbox`] per component. The runtime asks it for typed things, each
//! answered in the library's own types: run a [`Call`] (plain bytecode, or a
//! prepared snapshot) against an input within [`Limits`], compile a source,
//! build a snapshot.
//!
//! Layer: imports wasmtime, `config`, `error` and `guest`; never the
//! cache, the artifacts or the runtime. No wasmtime type leaves this module
//! except [`Component`], a handle only `artifacts` holds. The WIT world's
//! bindings live here too ([`bindings`]); their record types are plain data. What a handler may do is decided here,
//! once: [`store`] is the only place a store gets its limits.
//!
//! Invariants:
//! - One engine per runtime, with the pooling allocator sized for
//!   `max_instances` instances, copy-on-write memory images and epoch
//!   interruption; [`epoch::Ticker`] drives the epochs while the engine lives.
//! - Every store comes from [`store::StoreBuilder`]: a memory cap, an epoch
//!   deadline that traps, and an empty WASI context.

#[allow(missing_docs)] // generated; wit/handler.wit documents it
mod bindings;
mod code;
mod epoch;
mod exports;
mod host;
mod kept;
mod observe;
mod reset;
mod sandbox;
mod snapshot;
mod stack;
mod store;

pub use bindings::{CacheStats, Level, RuntimeStats, Tier};
pub use host::{ConsoleCounts, LogLine};
pub(crate) use host::{ConsoleSink, StatsSource};
pub(crate) use kept::Kept;
pub use observe::Observed;
pub use reset::SlotResetChoice;
pub use sandbox::Timing;
pub(crate) use sandbox::{Call, Hooks, Ran, Sandbox, Teardown};
pub(crate) use snapshot::{
    Instrumented, CODE_VARIANT, INSTRUMENTED_VARIANT, PREPARED_VARIANT, VARIANT,
};
pub use stack::THREAD_STACK;
pub use store::Cancel;
pub(crate) use store::Limits;
pub(crate) use wasmtime::component::Component;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, Result};
use code::CodeStore;
use epoch::Ticker;
use host::{Console, Shared};
use snapshot::Snapshotter;
use store::StoreBuilder;

/// Per-component maxima, generous for the guest (one main module plus the
/// small shim modules `wit-component` adds).
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;
const KEEP_RESIDENT: usize = 16 << 20;

/// How an [`Engine`] is sized, and what its stores share.
pub(crate) struct EngineConfig {
    /// Instances running calls at once.
    pub max_instances: u32,
    /// Instances kept idle for reuse at once, beyond those: the pool holds
    /// both, so a kept instance never takes a call's slot.
    pub kept_instances: u32,
    /// The largest memory any instance may have (each store then holds its
    /// call to its own cap).
    pub largest_memory: u64,
    /// Console lines a second per handler.
    pub console_lines_per_second: u32,
    /// Where `Nexus.stats()` reads.
    pub stats: StatsSource,
    /// How pool slots are reset between instances.
    pub slot_reset: crate::config::SlotReset,
}

/// The wasmtime engine and everything that shares it. Dropping it stops
/// the epoch ticker.
pub(crate) struct Engine {
    stores: StoreBuilder,
    snapshotter: Snapshotter,
    code: Arc<CodeStore>,
    compatibility: [u8; 8],
    slot_reset: SlotResetChoice,
    // Dropped last: stops the epoch ticker.
    _ticker: Ticker,
}

impl Engine {
    /// The pooled engine, its ticker started.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] when wasmtime refuses the configuration (the pool
    /// cannot be reserved, for one).
    pub fn new(config: EngineConfig) -> Result<Self> {
        let slot_reset = reset::choose_here(config.slot_reset);
        let slots = config.max_instances + config.kept_instances;
        let code = Arc::new(CodeStore::default());
        let engine = pooled(slots, config.largest_memory, slot_reset, &code)?;
        let shared = Shared {
            stats: config.stats,
            console: Arc::new(Console::new(config.console_lines_per_second)),
        };
        Ok(Self {
            _ticker: Ticker::start(&engine),
            compatibility: compatibility_hash(&engine),
            slot_reset,
            snapshotter: Snapshotter::new(shared.clone())?,
            stores: StoreBuilder::new(&engine, shared),
            code,
        })
    }

    /// Adds the compiled functions `blob` holds (what
    /// [`recorded_code`](Self::recorded_code) answered, in this process or
    /// another) to those later compiles look up; answers how many.
    ///
    /// # Errors
    ///
    /// Why `blob` does not parse; nothing is added then.
    ///
    /// # Safety
    ///
    /// `blob` must be exactly what `recorded_code` answered on an engine
    /// with this [compatibility hash](Self::compatibility_hash): the
    /// functions it holds become native code in the components compiled
    /// after, unchecked.
    pub unsafe fn load_code(&self, blob: &[u8]) -> std::result::Result<usize, String> {
        self.code.load(blob)
    }

    /// Runs `look` (which finds a stored copy of the compiled functions, or
    /// turns recording on) once per engine; callers meanwhile wait for it.
    pub fn code_once(&self, look: impl FnOnce()) {
        self.code.once(look);
    }

    /// Whether compiles from now on keep what they compiled, for
    /// [`recorded_code`](Self::recorded_code).
    pub fn record_code(&self, on: bool) {
        self.code.record(on);
    }

    /// Every compiled function held, if compiles added any since the last
    /// call; recording stops.
    pub fn recorded_code(&self) -> Option<Vec<u8>> {
        self.code.take_recorded()
    }

    /// What makes the [instrumented guest](Self::compile_instrumented)'s
    /// native code loadable by another process: the compatibility hash of
    /// the engine snapshots are made on.
    pub fn instrumented_compatibility_hash(&self) -> [u8; 8] {
        self.snapshotter.compatibility_hash()
    }

    /// Gives snapshots the instrumented guest `get` answers (from
    /// [`load_instrumented`](Self::load_instrumented) or
    /// [`compile_instrumented`](Self::compile_instrumented)), unless they
    /// have one already; otherwise their first use compiles it. Callers
    /// meanwhile wait.
    ///
    /// # Errors
    ///
    /// `get`'s.
    pub fn instrument_with(&self, get: impl FnOnce() -> Result<Instrumented>) -> Result<()> {
        self.snapshotter.instrument_with(get)
    }

    /// The guest instrumented for Wizer and compiled (about a second of
    /// Cranelift), and its native code.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if instrumenting or compiling fails.
    pub fn compile_instrumented(&self) -> Result<(Instrumented, Vec<u8>)> {
        self.snapshotter.compile_instrumented()
    }

    /// The instrumented guest from the native code
    /// [`compile_instrumented`](Self::compile_instrumented) answered.
    ///
    /// # Safety
    ///
    /// `payload` must be exactly that code, made on an engine with this
    /// [instrumented compatibility hash](Self::instrumented_compatibility_hash):
    /// wasmtime maps it as executable code without checking it.
    pub unsafe fn load_instrumented(
        &self,
        payload: &[u8],
    ) -> std::result::Result<Instrumented, String> {
        // SAFETY: the caller's contract, above.
        unsafe { self.snapshotter.load_instrumented(payload) }
    }

    /// How pool slots are reset between instances, and why.
    pub fn slot_reset(&self) -> SlotResetChoice {
        self.slot_reset
    }

    /// What makes native code from one engine loadable by another:
    /// wasmtime's version, the target and the settings that shape code.
    pub fn compatibility_hash(&self) -> [u8; 8] {
        self.compatibility
    }

    /// Cranelift: `wasm` (a component) compiled for this engine.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if the component does not validate or compile.
    pub fn compile(&self, wasm: &[u8]) -> Result<Component> {
        Component::new(self.stores.engine(), wasm).map_err(Error::engine)
    }

    /// `component`'s native code, as [`deserialize`](Self::deserialize)
    /// reads it back.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if wasmtime cannot serialize it.
    pub fn serialize(&self, component: &Component) -> Result<Vec<u8>> {
        component.serialize().map_err(Error::engine)
    }

    /// Native code that [`serialize`](Self::serialize) wrote, loaded.
    ///
    /// # Safety
    ///
    /// `payload` must be exactly what `serialize` wrote on an engine with
    /// this [compatibility hash](Self::compatibility_hash): wasmtime maps
    /// it as executable code without checking it.
    pub unsafe fn deserialize(&self, payload: &[u8]) -> std::result::Result<Component, String> {
        // SAFETY: the caller's contract, above.
        unsafe { Component::deserialize(self.stores.engine(), payload) }
            .map_err(|e| format!("{e:#}"))
    }

    /// Whether `payload` starts like wasmtime's serialized native code.
    pub fn is_native_code(payload: &[u8]) -> bool {
        wasmtime::Engine::detect_precompiled(payload).is_some()
    }

    /// `component`, linked once, ready to instantiate per call.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if it does not link against the guest's world or
    /// lacks one of the exports the host calls.
    pub fn sandbox(&self, component: &Component) -> Result<Sandbox> {
        Sandbox::new(&self.stores, component)
    }

    /// The guest pre-initialized (QuickJS's runtime and context created,
    /// then snapshotted), as component bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if pre-initializing fails.
    pub fn pre_initialize(&self) -> Result<Vec<u8>> {
        self.snapshotter.pre_initialize()
    }

    /// A handler's snapshot: the guest pre-initialized, then with
    /// `bytecode`'s module evaluated under `limits`, as component bytes,
    /// with what its top level read of the world.
    ///
    /// # Errors
    ///
    /// The module's own errors (`Runtime`, `InvalidModule`,
    /// `InvalidBytecode`, the limits'); [`Error::Engine`] if snapshotting
    /// fails.
    pub fn snapshot(
        &self,
        name: &str,
        bytecode: &[u8],
        limits: Limits,
    ) -> Result<(Vec<u8>, Observed)> {
        self.snapshotter.prepare(name, bytecode, limits)
    }
}

impl Error {
    fn engine(e: wasmtime::Error) -> Self {
        Error::Engine(e.into())
    }
}

/// The engine for `max_instances` instances at once, none with a memory
/// over `largest_memory` bytes (stores hold each call to its own cap).
fn pooled(
    max_instances: u32,
    largest_memory: u64,
    reset: SlotResetChoice,
    code: &Arc<CodeStore>,
) -> Result<wasmtime::Engine> {
    // A full reset keeps nothing resident: every page is decommitted.
    let (keep_resident, scan) = match reset.full {
        true => (0, Enabled::No),
        false => (KEEP_RESIDENT, Enabled::Auto),
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(max_instances * MEMORIES_PER_COMPONENT)
        .total_tables(max_instances * TABLES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        // Async stacks: none is ever used, as calls are synchronous.
        .total_stacks(1)
        .max_memory_size(largest_memory as usize)
        // Reused slots keep this much of the pre-initialized heap resident:
        // a fresh instance then starts without page faults.
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident)
        // Reuse warm slots before touching cold ones: the slots ever used
        // (each keeping up to KEEP_RESIDENT resident) are then no more than
        // the most instances ever alive at once, not every slot in the pool.
        .max_unused_warm_slots(0)
        // Linux 6.7+: reset only the pages an instance dirtied, not the
        // whole resident range; elsewhere this quietly falls back.
        .pagemap_scan(scan);

    let mut config = wasmtime::Config::new();
    config
        .enable_incremental_compilation(code.clone())
        .map_err(Error::engine)?
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(stack::WASM_STACK)
        // Not used (calls here are synchronous, on the caller's stack), but
        // may not be smaller than the wasm stack.
        .async_stack_size(stack::WASM_STACK + (2 << 20))
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasmtime::Engine::new(&config).map_err(Error::engine)
}

/// The engine `wasmtime-wizer` snapshots on: no pooling (one instance at a
/// time), epochs on, since preparing a handler runs the handler's own
/// top-level code.
fn for_wizer() -> Result<wasmtime::Engine> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        // The handler's top level may recurse as deep here as in a call;
        // Wizer runs it on a fiber of this size.
        .max_wasm_stack(stack::WASM_STACK)
        .async_stack_size(stack::WASM_STACK + (2 << 20));
    wasmtime::Engine::new(&config).map_err(Error::engine)
}

/// What makes native code from one engine loadable by another: wasmtime's
/// version, the target and the settings that shape code.
fn compatibility_hash(engine: &wasmtime::Engine) -> [u8; 8] {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish().to_le_bytes()
}
