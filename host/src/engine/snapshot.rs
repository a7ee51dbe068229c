//! Pre-initializes the guest with `wasmtime-wizer`: instantiate it once,
//! call its `wizer-initialize` export (QuickJS's runtime and context are
//! created and kept), and snapshot the result into a new component whose
//! fresh instances start with QuickJS ready. A prepared handler's snapshot
//! also calls `prepare`, so its module is evaluated before the snapshot.
//!
//! The snapshot also freezes QuickJS's random state; the guest reseeds
//! `Math.random` from the host at the start of every invocation.

use std::future::Future;

use wasmtime::component::Component;
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use super::epoch::Ticker;
use super::exports::{self, HANDLER};
use super::host::Shared;
use super::store::{self, Limits, Mode, StoreBuilder};
use crate::bindings::HandlerError;
use crate::error::{Error, Result};

/// Names the snapshot format in component cache keys: bump it when what
/// `wizer-initialize` does changes.
pub const VARIANT: &str = "wizer-snapshot-v1";

/// Names per-handler snapshots (`wizer-initialize`, then `prepare`) in
/// component cache keys.
pub const PREPARED_VARIANT: &str = "wizer-prepared-v1";

/// The pre-initialized guest, as component bytes.
pub fn pre_initialize(wasm: &[u8], shared: Shared) -> Result<Vec<u8>> {
    let stores = StoreBuilder::new(&super::for_wizer()?, shared);
    on_own_thread(snapshot(&stores, wasm, "wizer-initialize", None))
}

/// The guest pre-initialized and then with `bytecode`'s module evaluated
/// (`prepare`), as component bytes: a handler's own component. The module's
/// top-level code is the handler's, so it runs under `limits`.
pub fn prepare_handler(
    wasm: &[u8],
    name: &str,
    bytecode: &[u8],
    shared: Shared,
    limits: Limits,
) -> Result<Vec<u8>> {
    let stores = StoreBuilder::new(&super::for_wizer()?, shared);
    let _ticker = Ticker::start(stores.engine());
    on_own_thread(snapshot(&stores, wasm, name, Some((bytecode, limits))))
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
    stores: &StoreBuilder,
    wasm: &[u8],
    name: &str,
    prepare: Option<(&[u8], Limits)>,
) -> Result<Vec<u8>> {
    let failed =
        |e: wasmtime::Error| Error::Engine(anyhow::anyhow!("pre-initializing the guest: {e:#}"));
    let mut wizer = Wizer::new();
    wizer.init_func("wizer-initialize").keep_init_func(true);
    let (cx, instrumented) = wizer.instrument_component(wasm).map_err(failed)?;
    let component = Component::new(stores.engine(), &instrumented).map_err(failed)?;
    let linker = store::linker(stores.engine(), Mode::Async)?;
    // The memory cap holds from the start; the guest's own initialization
    // is not held to the handler's timeout, `prepare` is.
    let mut store = stores.build(name, prepare.map(|(_, limits)| limits));
    store::set_deadline(&mut store, None);
    let instance = linker
        .instantiate_async(&mut store, &component)
        .await
        .map_err(failed)?;
    let init = instance
        .get_typed_func::<(), ()>(&mut store, "wizer-initialize")
        .map_err(failed)?;
    init.call_async(&mut store, ()).await.map_err(failed)?;

    if let Some((bytecode, limits)) = prepare {
        let prepare = exports::find(&component, HANDLER, "prepare").map_err(failed)?;
        let prepare = instance
            .get_typed_func::<(&[u8],), (std::result::Result<(), HandlerError>,)>(
                &mut store, prepare,
            )
            .map_err(failed)?;
        // Deadlines count from now: initializing above took time of its own.
        store::set_deadline(&mut store, Some(limits));
        let outcome = prepare.call_async(&mut store, (bytecode,)).await;
        store::verdict(&store, limits, outcome.map(|(r,)| r))?;
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
