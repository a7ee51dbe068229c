//! Everything wasmtime: the engine and its epoch ticker, the host state a
//! store carries (limits, log, stats, WASI), the one store builder, the
//! guest's typed exports, the sandbox that runs one call in a fresh
//! instance, and the Wizer snapshot.
//!
//! Layer: imports wasmtime, `bindings`, `error` and `guest`; never the
//! cache, the artifacts or the runtime. What a handler may do is decided
//! here, once: [`store`] is the only place a store gets its limits.
//!
//! Invariants:
//! - One engine per runtime, with the pooling allocator sized for
//!   `max_instances` instances, copy-on-write memory images and epoch
//!   interruption; [`epoch::Ticker`] drives the epochs.
//! - Every store comes from [`store::StoreBuilder`]: a memory cap, an epoch
//!   deadline that traps, and an empty WASI context.

mod epoch;
mod exports;
mod host;
mod observe;
mod sandbox;
mod snapshot;
mod stack;
mod store;

pub(crate) use epoch::Ticker;
pub(crate) use exports::Guest;
pub use host::LogLine;
pub(crate) use host::{Console, HostState, Shared};
pub use observe::Observed;
pub(crate) use sandbox::Sandbox;
pub use sandbox::Timing;
pub(crate) use snapshot::{Snapshotter, PREPARED_VARIANT, VARIANT};
pub use stack::THREAD_STACK;
pub(crate) use store::{Limits, StoreBuilder};

use std::hash::{Hash, Hasher};

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, Result};

/// Per-component maxima, generous for the guest (one main module plus the
/// small shim modules `wit-component` adds).
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;
const KEEP_RESIDENT: usize = 16 << 20;

/// The engine for `max_instances` instances at once, none with a memory
/// over `largest_memory` bytes (stores hold each call to its own cap).
pub(crate) fn pooled(max_instances: u32, largest_memory: u64) -> Result<Engine> {
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
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // Reuse warm slots before touching cold ones: the slots ever used
        // (each keeping up to KEEP_RESIDENT resident) are then no more than
        // the most instances ever alive at once, not every slot in the pool.
        .max_unused_warm_slots(0)
        // Linux 6.7+: reset only the pages an instance dirtied, not the
        // whole resident range; elsewhere this quietly falls back.
        .pagemap_scan(Enabled::Auto);

    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(stack::WASM_STACK)
        // Not used (calls here are synchronous, on the caller's stack), but
        // may not be smaller than the wasm stack.
        .async_stack_size(stack::WASM_STACK + (2 << 20))
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(Error::engine)
}

/// The engine `wasmtime-wizer` snapshots on: no pooling (one instance at a
/// time), epochs on, since preparing a handler runs the handler's own
/// top-level code.
pub(crate) fn for_wizer() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        // The handler's top level may recurse as deep here as in a call;
        // Wizer runs it on a fiber of this size.
        .max_wasm_stack(stack::WASM_STACK)
        .async_stack_size(stack::WASM_STACK + (2 << 20));
    Engine::new(&config).map_err(Error::engine)
}

/// What makes native code from one engine loadable by another: wasmtime's
/// version, the target and the settings that shape code.
pub(crate) fn compatibility_hash(engine: &Engine) -> [u8; 8] {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish().to_le_bytes()
}
