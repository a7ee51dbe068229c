//! A component linked once, and one call in a fresh instance of it.
//!
//! Invariants:
//! - Every call gets a new `Store` (from the [`StoreBuilder`], so within its
//!   limits) and a new instance from one `InstancePre`; both are dropped
//!   when the call returns, trap or not: an instance that trapped is never
//!   used again.

use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre};
use wasmtime::Store;

use super::exports::{Exports, Guest};
use super::host::{HostState, LogLine};
use super::store::{self, Limits, Mode, StoreBuilder};
use crate::bindings::HandlerError;
use crate::error::{Error, Result};

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

/// A component, linked once, ready to instantiate.
pub(crate) struct Sandbox {
    stores: StoreBuilder,
    pre: InstancePre<HostState>,
    exports: Exports,
}

impl Sandbox {
    /// Links `component` and checks its exports' types once.
    pub fn new(stores: &StoreBuilder, component: &Component) -> Result<Self> {
        let linker = store::linker(stores.engine(), Mode::Sync)?;
        let pre = linker.instantiate_pre(component).map_err(Error::engine)?;
        let exports =
            Exports::new(&pre, || stores.build("exports", None)).map_err(Error::engine)?;
        Ok(Self {
            stores: stores.clone(),
            pre,
            exports,
        })
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
            ) -> wasmtime::Result<std::result::Result<T, HandlerError>>
            + Send,
    ) -> Result<(T, Vec<LogLine>, Timing)>
    where
        T: Send,
    {
        super::stack::with_stack(|| self.call_here(handler, limits, f))
    }

    fn call_here<T>(
        &self,
        handler: &str,
        limits: Limits,
        f: impl FnOnce(
            &Guest<'_>,
            &mut Store<HostState>,
        ) -> wasmtime::Result<std::result::Result<T, HandlerError>>,
    ) -> Result<(T, Vec<LogLine>, Timing)> {
        let start = Instant::now();
        let mut store = self.stores.build(handler, Some(limits));

        let set_up = Instant::now();
        let instance = self.pre.instantiate(&mut store);
        let instantiated = Instant::now();
        let outcome = instance.and_then(|instance| f(&self.exports.of(instance), &mut store));
        let called = Instant::now();
        let verdict = store::verdict(&store, limits, outcome);
        let logs = std::mem::take(&mut store.data_mut().logs);
        drop(store);
        let timing = Timing {
            setup: set_up - start,
            instantiate: instantiated - set_up,
            call: called - instantiated,
            teardown: called.elapsed(),
        };
        verdict.map(|value| (value, logs, timing))
    }
}
