//! Pre-initializes the guest with `wasmtime-wizer`: instantiate it once,
//! call its `wizer-initialize` export (QuickJS's runtime and context are
//! created and kept), and snapshot the result into a new component whose
//! fresh instances start with QuickJS ready. A prepared handler's snapshot
//! also calls `prepare`, so its module is evaluated before the snapshot.
//!
//! The snapshot also freezes QuickJS's random state; the guest reseeds
//! `Math.random` from the host at the start of every invocation.

use std::future::Future;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use crate::bindings::{HandlerError, HandlerRuntime};
use crate::error::{Error, Result};
use crate::runtime::{self, Ticker};
use crate::sandbox::{classify, HostState, Limits};
use crate::stats::Stats;

/// The guest's `handler` interface, as its component exports it.
const HANDLER_INTERFACE: &str = "nexus:handler/handler@0.1.0";

/// Names the snapshot format in component cache keys: bump it when what
/// `wizer-initialize` does changes.
pub const VARIANT: &str = "wizer-snapshot-v1";

/// Names per-handler snapshots (`wizer-initialize`, then `prepare`) in
/// component cache keys.
pub const PREPARED_VARIANT: &str = "wizer-prepared-v1";

/// The pre-initialized guest, as component bytes.
pub fn pre_initialize(wasm: &[u8], stats: Arc<Stats>) -> Result<Vec<u8>> {
    let engine = runtime::wizer_engine()?;
    let state = HostState::new(stats, "wizer-initialize", None);
    on_own_thread(snapshot(&engine, wasm, state, None))
}

/// The guest pre-initialized and then with `bytecode`'s module evaluated
/// (`prepare`), as component bytes: a handler's own component. The module's
/// top-level code is the handler's, so it runs under `limits`.
pub fn prepare_handler(
    wasm: &[u8],
    name: &str,
    bytecode: &[u8],
    stats: Arc<Stats>,
    limits: Limits,
) -> Result<Vec<u8>> {
    let engine = runtime::wizer_engine()?;
    let _ticker = Ticker::start(&engine);
    let state = HostState::new(stats, name, Some(limits.max_memory_bytes));
    on_own_thread(snapshot(&engine, wasm, state, Some((bytecode, limits))))
}

/// Wizer drives the component through an async store; keep its executor
/// on a thread of its own, so this works inside or outside tokio.
fn on_own_thread(work: impl Future<Output = Result<Vec<u8>>> + Send) -> Result<Vec<u8>> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let executor = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| Error::Engine(e.into()))?;
                executor.block_on(work)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Engine(anyhow::anyhow!(
                    "the snapshot thread panicked"
                )))
            })
    })
}

/// Instruments `wasm`, instantiates it, calls `wizer-initialize` and, given
/// bytecode, `prepare` (within its limits), then snapshots the instance.
async fn snapshot(
    engine: &Engine,
    wasm: &[u8],
    state: HostState,
    prepare: Option<(&[u8], Limits)>,
) -> Result<Vec<u8>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(Error::engine)?;
    HandlerRuntime::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(Error::engine)?;
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // The guest's own initialization is not held to a handler's timeout.
    store.set_epoch_deadline(u64::MAX / 2);
    store.epoch_deadline_trap();

    let missing = |name: &str| Error::Engine(anyhow::anyhow!("the guest exports no `{name}`"));
    let failed =
        |e: wasmtime::Error| Error::Engine(anyhow::anyhow!("pre-initializing the guest: {e:#}"));
    let mut wizer = Wizer::new();
    wizer.init_func("wizer-initialize").keep_init_func(true);
    let (cx, instrumented) = wizer.instrument_component(wasm).map_err(failed)?;
    let component = Component::new(engine, &instrumented).map_err(failed)?;
    let instance = linker
        .instantiate_async(&mut store, &component)
        .await
        .map_err(failed)?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, "wizer-initialize")
        .map_err(failed)?;
    init.call_async(&mut store, ()).await.map_err(failed)?;

    if let Some((bytecode, limits)) = prepare {
        let handler = instance
            .get_export_index(&mut store, None, HANDLER_INTERFACE)
            .ok_or_else(|| missing(HANDLER_INTERFACE))?;
        let prepare = instance
            .get_export_index(&mut store, Some(&handler), "prepare")
            .ok_or_else(|| missing("prepare"))?;
        let prepare = instance
            .get_typed_func::<(&[u8],), (std::result::Result<(), HandlerError>,)>(
                &mut store, prepare,
            )
            .map_err(failed)?;
        // Deadlines count from now: compiling above took time of its own.
        store.set_epoch_deadline(limits.deadline_ticks());
        let outcome = prepare.call_async(&mut store, (bytecode,)).await;
        let out_of_memory = store.data().limiter.refused;
        classify(outcome.map(|(r,)| r), out_of_memory, limits)?;
    }

    wizer
        .snapshot_component(
            &cx,
            &mut WasmtimeWizerComponent {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(failed)
}
