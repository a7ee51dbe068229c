//! Pre-initializes the guest with `wasmtime-wizer`: instantiate it once,
//! call its `wizer-initialize` export (QuickJS's runtime and context are
//! created and kept), and snapshot the result into a new component whose
//! fresh instances start with QuickJS ready.
//!
//! The snapshot also freezes QuickJS's random state; the guest reseeds
//! `Math.random` from the host at the start of every invocation.

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wizer::Wizer;

use crate::bindings::HandlerRuntime;
use crate::error::{Error, Result};
use crate::sandbox::HostState;
use crate::stats::Stats;

/// Names the snapshot format in component cache keys: bump it when what
/// `wizer-initialize` does changes.
pub const VARIANT: &str = "wizer-snapshot-v1";

/// The pre-initialized guest, as component bytes.
pub fn pre_initialize(wasm: &[u8], stats: Arc<Stats>) -> Result<Vec<u8>> {
    // Wizer drives the component through an async store; keep its executor
    // on a thread of its own, so this works inside or outside tokio.
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let executor = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| Error::Engine(e.into()))?;
                executor.block_on(run(wasm, stats))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Engine(anyhow::anyhow!(
                    "the snapshot thread panicked"
                )))
            })
    })
}

async fn run(wasm: &[u8], stats: Arc<Stats>) -> Result<Vec<u8>> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).map_err(Error::engine)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(Error::engine)?;
    HandlerRuntime::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(Error::engine)?;
    let mut store = Store::new(&engine, HostState::new(stats, "wizer-initialize", None));

    let mut wizer = Wizer::new();
    wizer.init_func("wizer-initialize").keep_init_func(true);
    let (snapshot, _) = wizer
        .run_component(&mut store, wasm, async |store, component| {
            linker.instantiate_async(store, component).await
        })
        .await
        .map_err(|e| Error::Engine(anyhow::anyhow!("pre-initializing the guest: {e:#}")))?;
    Ok(snapshot)
}
