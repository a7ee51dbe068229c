//! Pre-initializes the guest with `wasmtime-wizer`: instantiate it once,
//! call its `wizer-initialize` export (QuickJS's runtime and context are
//! created and kept), and snapshot the result into a new component whose
//! fresh instances start with QuickJS ready. A prepared handler's snapshot
//! also calls `prepare`, so its module is evaluated before the snapshot, and
//! answers what that evaluation [observed](Observed).
//!
//! Instrumenting the guest and compiling the instrumented component do not
//! depend on the handler: [`Snapshotter`] does them once per process, on
//! first use, so each snapshot after that pays only for instantiating,
//! evaluating and rewriting; the layer above keeps that compile in the
//! cache ([`Snapshotter::instrument_with`]).
//!
//! The snapshot also freezes QuickJS's random state; the guest reseeds
//! `Math.random` from the host at the start of every invocation.

use std::future::Future;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, Linker};
use wasmtime_wizer::{ComponentContext, WasmtimeWizerComponent, Wizer};

use super::bindings::HandlerError;
use super::epoch::Ticker;
use super::exports::{self, HANDLER};
use super::host::{HostState, Shared};
use super::observe::Observed;
use super::store::{self, Limits, Mode, StoreBuilder};
use crate::error::{Error, Result};
use crate::guest::GUEST_WASM;

/// Names the snapshot format in component cache keys: bump it when what
/// `wizer-initialize` does changes.
pub const VARIANT: &str = "wizer-snapshot-v1";

/// Names per-handler snapshots (`wizer-initialize`, then `prepare`) in
/// component cache keys; v2 entries start with the [`Observed`] byte.
pub const PREPARED_VARIANT: &str = "wizer-prepared-v2";

/// Names the compiled-code store (the functions the guest's compiles
/// made, [`CodeStore`](super::code::CodeStore)) in component cache keys.
pub const CODE_VARIANT: &str = "cranelift-code-v1";

/// Names the guest instrumented for Wizer and compiled on its engine
/// ([`Instrumented`]) in component cache keys.
pub const INSTRUMENTED_VARIANT: &str = "wizer-instrumented-v1";

const INIT: &str = "wizer-initialize";

/// Makes snapshots of the guest, instrumenting it once, on first use.
pub(crate) struct Snapshotter {
    shared: Shared,
    /// Wizer's engine: no pool, no compiled-code store.
    engine: wasmtime::Engine,
    compatibility: [u8; 8],
    instrumented: Mutex<Option<Arc<Instrumented>>>,
}

/// The handler-independent half of a snapshot: the guest instrumented and
/// compiled, on Wizer's engine.
pub(crate) struct Instrumented {
    stores: StoreBuilder,
    cx: ComponentContext<'static>,
    component: Component,
    linker: Linker<HostState>,
}

fn wizer() -> Wizer {
    let mut wizer = Wizer::new();
    wizer.init_func(INIT).keep_init_func(true);
    wizer
}

fn failed(e: wasmtime::Error) -> Error {
    Error::Engine(anyhow::anyhow!("pre-initializing the guest: {e:#}"))
}

impl Snapshotter {
    /// Snapshots whose stores share `shared` (`Nexus.stats()`, the console).
    ///
    /// # Errors
    ///
    /// [`Error::Engine`] if wasmtime refuses Wizer's engine.
    pub fn new(shared: Shared) -> Result<Self> {
        let engine = super::for_wizer()?;
        Ok(Self {
            shared,
            compatibility: super::compatibility_hash(&engine),
            engine,
            instrumented: Mutex::default(),
        })
    }

    /// What makes [`Instrumented`]'s native code loadable by another
    /// process's Wizer engine.
    pub fn compatibility_hash(&self) -> [u8; 8] {
        self.compatibility
    }

    /// Gives snapshots the instrumented guest `get` answers, unless they
    /// have one; `get` runs once at a time, so one caller makes it while
    /// the others wait.
    pub fn instrument_with(&self, get: impl FnOnce() -> Result<Instrumented>) -> Result<()> {
        self.instrumented_or(get).map(drop)
    }

    fn instrumented_or(
        &self,
        get: impl FnOnce() -> Result<Instrumented>,
    ) -> Result<Arc<Instrumented>> {
        let mut slot = self.instrumented.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ready) = &*slot {
            return Ok(ready.clone());
        }
        let ready = Arc::new(get()?);
        *slot = Some(ready.clone());
        Ok(ready)
    }

    fn instrumented(&self) -> Result<Arc<Instrumented>> {
        self.instrumented_or(|| self.compile_instrumented().map(|(ready, _)| ready))
    }

    /// The guest instrumented for Wizer and compiled: Cranelift's work,
    /// with its native code as [`load_instrumented`](Self::load_instrumented)
    /// reads it back.
    pub fn compile_instrumented(&self) -> Result<(Instrumented, Vec<u8>)> {
        let (cx, wasm) = wizer().instrument_component(GUEST_WASM).map_err(failed)?;
        let component = Component::new(&self.engine, &wasm).map_err(failed)?;
        let bytes = component.serialize().map_err(failed)?;
        Ok((self.ready(cx, component)?, bytes))
    }

    /// The instrumented guest from native code that
    /// [`compile_instrumented`](Self::compile_instrumented) made. Wizer
    /// still instruments the guest, for what a snapshot needs to know of
    /// it (a tenth of the compile's time).
    ///
    /// # Safety
    ///
    /// `payload` must be exactly what `compile_instrumented` answered on an
    /// engine with this [compatibility hash](Self::compatibility_hash).
    pub unsafe fn load_instrumented(
        &self,
        payload: &[u8],
    ) -> std::result::Result<Instrumented, String> {
        // SAFETY: the caller's contract, above.
        let component = unsafe { Component::deserialize(&self.engine, payload) }
            .map_err(|e| format!("{e:#}"))?;
        let (cx, _) = wizer()
            .instrument_component(GUEST_WASM)
            .map_err(|e| format!("instrumenting the guest: {e:#}"))?;
        self.ready(cx, component).map_err(|e| e.to_string())
    }

    fn ready(&self, cx: ComponentContext<'static>, component: Component) -> Result<Instrumented> {
        Ok(Instrumented {
            component,
            linker: store::linker(&self.engine, Mode::Async)?,
            stores: StoreBuilder::new(&self.engine, self.shared.clone()),
            cx,
        })
    }

    /// The pre-initialized guest, as component bytes.
    pub fn pre_initialize(&self) -> Result<Vec<u8>> {
        let instrumented = self.instrumented()?;
        on_own_thread(async move {
            instrumented
                .snapshot(INIT, None)
                .await
                .map(|(bytes, _)| bytes)
        })
    }

    /// The guest pre-initialized and then with `bytecode`'s module evaluated
    /// (`prepare`), as component bytes: a handler's own component. The
    /// module's top-level code is the handler's, so it runs under `limits`;
    /// what it read of the world comes back with the bytes.
    pub fn prepare(
        &self,
        name: &str,
        bytecode: &[u8],
        limits: Limits,
    ) -> Result<(Vec<u8>, Observed)> {
        let instrumented = self.instrumented()?;
        // The top level runs under a deadline; epochs tick only while it does.
        let _ticker = Ticker::start(instrumented.stores.engine());
        on_own_thread(async move {
            let (bytes, observed) = instrumented
                .snapshot(name, Some((bytecode, limits)))
                .await?;
            Ok((bytes, observed.expect("prepare watches")))
        })
    }
}

/// Wizer drives the component through an async store; keep its executor
/// on a thread of its own, so this works inside or outside tokio.
fn on_own_thread<T: Send>(work: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let executor = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| Error::Engine(e.into()))?;
                executor.block_on(work)
            })
            .join()
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("no message");
                Err(Error::Engine(anyhow::anyhow!(
                    "the snapshot thread panicked: {why}"
                )))
            })
    })
}

impl Instrumented {
    /// Instantiates the instrumented guest, calls `wizer-initialize` and,
    /// given bytecode, `prepare` (within its limits, watching its reads),
    /// then snapshots the instance.
    async fn snapshot(
        &self,
        name: &str,
        prepare: Option<(&[u8], Limits)>,
    ) -> Result<(Vec<u8>, Option<Observed>)> {
        // The memory cap holds from the start; the guest's own initialization
        // is not held to the handler's timeout, `prepare` is.
        let mut store = self.stores.build(name, prepare.map(|(_, limits)| limits));
        store::set_deadline(&mut store, None);
        let instance = self
            .linker
            .instantiate_async(&mut store, &self.component)
            .await
            .map_err(failed)?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, INIT)
            .map_err(failed)?;
        init.call_async(&mut store, ()).await.map_err(failed)?;

        let mut observed = None;
        if let Some((bytecode, limits)) = prepare {
            let prepare = exports::find(&self.component, HANDLER, "prepare").map_err(failed)?;
            let prepare = instance
                .get_typed_func::<(&[u8],), (std::result::Result<(), HandlerError>,)>(
                    &mut store, prepare,
                )
                .map_err(failed)?;
            // Only the handler's own top level counts: creating QuickJS's
            // context above read the clock too.
            let watch = store.data_mut().watch();
            // Deadlines count from now: initializing above took time of its own.
            store::set_deadline(&mut store, Some(limits));
            let outcome = prepare.call_async(&mut store, (bytecode,)).await;
            store::verdict(&store, limits, outcome.map(|(r,)| r))?;
            observed = Some(watch.observed());
        }

        let bytes = wizer()
            .snapshot_component(
                &self.cx,
                &mut WasmtimeWizerComponent {
                    store: &mut store,
                    instance,
                },
            )
            .await
            .map_err(failed)?;
        Ok((bytes, observed))
    }
}
