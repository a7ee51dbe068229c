//! The one `wasmtime::Engine` of a runtime: pooling allocator, copy-on-write
//! memory images, and epoch interruption driven by a ticker thread.
//!
//! Invariants:
//! - One epoch tick is [`TICK`]; a deadline of `n` ticks traps within
//!   `n + 1` ticks of the call starting.
//! - The ticker holds only a weak reference and a stop flag: it ends when
//!   the [`Ticker`] is dropped (with the runtime), never keeping the engine
//!   alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, Result};

/// The epoch ticker's period: the resolution of timeouts.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Per-component maxima, generous for the guest (one main module plus the
/// small shim modules `wit-component` adds).
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;
const KEEP_RESIDENT: usize = 16 << 20;

/// The engine for `max_instances` instances at once, none with a memory
/// over `largest_memory` bytes (stores hold each call to its own cap).
pub(crate) fn new(max_instances: u32, largest_memory: u64) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(max_instances * MEMORIES_PER_COMPONENT)
        .total_tables(max_instances * TABLES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(largest_memory as usize)
        // Reused slots keep this much of the pre-initialized heap resident:
        // a fresh instance then starts without page faults.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // Linux 6.7+: reset only the pages an instance dirtied, not the
        // whole resident range; elsewhere this quietly falls back.
        .pagemap_scan(Enabled::Auto);

    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(Error::engine)
}

/// The engine `wasmtime-wizer` snapshots on: no pooling (one instance at a
/// time), epochs on, since preparing a handler runs the handler's own
/// top-level code.
pub(crate) fn wizer_engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    Engine::new(&config).map_err(Error::engine)
}

/// Advances the engine's epoch every [`TICK`] until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nexus-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn the epoch ticker");
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
