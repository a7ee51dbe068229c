//! A component linked once, and one call in a fresh instance of it: a
//! [`Call`] (which export, with what) in, a [`Ran`] or the host's error out.
//!
//! Invariants:
//! - Every call gets a new `Store` (from the [`StoreBuilder`], so within its
//!   limits) and a new instance from one `InstancePre`; neither outlives
//!   its call's [`Teardown`], trap or not: an instance that trapped is never
//!   used again, and one that answered is only torn down. (An instance kept
//!   for reuse lives in [`super::kept`].)

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre};
use wasmtime::Store;

use super::bindings::exports::nexus::handler::compiler::CompileOptions as WitOptions;
use super::bindings::HandlerError;
use super::exports::{Exports, Guest};
use super::host::{ConsoleSink, HostState, LogLine};
use super::store::{self, Cancel, Limits, Mode, StoreBuilder};
use crate::config::CompileOptions;
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
    /// Zero when the caller deferred it past the answer
    /// ([`DeferTeardown`](crate::DeferTeardown)).
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

/// What one call asks of a fresh instance.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Call<'a> {
    /// The plain path: the guest loads and evaluates `bytecode`, then calls
    /// its default export with `input`.
    Plain {
        /// QuickJS bytecode from this guest build.
        bytecode: &'a [u8],
        /// The input, as JSON.
        input: &'a str,
    },
    /// A prepared snapshot: its module is already evaluated; the call only
    /// parses `input`, calls the default export and writes the result.
    Prepared {
        /// The input, as JSON.
        input: &'a str,
    },
}

/// What a call answered: the handler's result as JSON, its console lines
/// and where the time went.
pub(crate) struct Ran {
    pub output: String,
    pub logs: Vec<LogLine>,
    /// Where the time went; `teardown` is zero while [`Ran::teardown`] is
    /// still to drop.
    pub timing: Timing,
    /// Whether it ran in an instance an earlier call used (see [`super::Kept`]).
    pub reused: bool,
    /// The fresh instance the call ran in, still to tear down; `None` for
    /// an instance kept for further calls.
    pub teardown: Option<Teardown>,
}

/// A fresh instance whose call has ended, not yet torn down. Dropping it
/// is the teardown: the pool slot's memory and tables are reset for the
/// next instance (about 5 µs for a small handler, tens of µs for one that
/// dirtied a large heap). A caller with an answer to send can send it
/// first and drop this after, off the answer's path.
pub(crate) struct Teardown(#[allow(dead_code, reason = "held for its drop")] Store<HostState>);

/// What a call's caller hooks into it: a [`Cancel`] that stops it, and
/// where its console lines are counted.
#[derive(Clone, Copy, Default)]
pub(crate) struct Hooks<'a> {
    pub cancel: Option<&'a Cancel>,
    pub console: Option<&'a (dyn ConsoleSink + Sync)>,
}

/// A component, linked once, ready to instantiate.
pub(crate) struct Sandbox {
    pub(super) stores: StoreBuilder,
    pub(super) pre: InstancePre<HostState>,
    pub(super) exports: Arc<Exports>,
}

impl Sandbox {
    /// Links `component` and checks its exports' types once.
    pub(super) fn new(stores: &StoreBuilder, component: &Component) -> Result<Self> {
        let linker = store::linker(stores.engine(), Mode::Sync)?;
        let pre = linker.instantiate_pre(component).map_err(Error::engine)?;
        let exports =
            Exports::new(&pre, || stores.build("exports", None)).map_err(Error::engine)?;
        Ok(Self {
            stores: stores.clone(),
            pre,
            exports: Arc::new(exports),
        })
    }

    /// Runs `call` in a fresh instance within `limits`; `handler` names its
    /// log lines. Traps and limits become their own [`Error`] variants.
    ///
    /// # Errors
    ///
    /// The handler's own errors and its limits' ([`Store`]'s verdict).
    pub fn run(
        &self,
        handler: &str,
        call: Call<'_>,
        limits: Limits,
        hooks: Hooks<'_>,
    ) -> Result<Ran> {
        let (output, logs, timing, teardown) =
            self.with_instance(handler, limits, hooks, |guest, store| match call {
                Call::Plain { bytecode, input } => guest.invoke(store, bytecode, input),
                Call::Prepared { input } => guest.invoke_prepared(store, input),
            })?;
        Ok(Ran {
            output,
            logs,
            timing,
            reused: false,
            teardown: Some(teardown),
        })
    }

    /// `source`, an ES module, compiled to QuickJS bytecode under `name` in
    /// a fresh instance within `limits`; the module is not evaluated.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`] with the position of a syntax error; the limits'.
    pub fn compile(
        &self,
        name: &str,
        source: &str,
        options: CompileOptions,
        limits: Limits,
    ) -> Result<Vec<u8>> {
        let options = WitOptions {
            strip_source: options.strip_source,
            strip_debug: options.strip_debug,
        };
        let (bytecode, _logs, _timing, _teardown) =
            self.with_instance(name, limits, Hooks::default(), |guest, store| {
                guest.compile(store, name, source, options)
            })?;
        Ok(bytecode)
    }

    /// Runs `f` against a fresh instance within `limits`, on a thread with
    /// the stack the guest needs; answers the instance still to tear down
    /// with what `f` answered (after an error it is torn down already).
    fn with_instance<T: Send>(
        &self,
        handler: &str,
        limits: Limits,
        hooks: Hooks<'_>,
        f: impl FnOnce(
                &Guest<'_>,
                &mut Store<HostState>,
            ) -> wasmtime::Result<std::result::Result<T, HandlerError>>
            + Send,
    ) -> Result<(T, Vec<LogLine>, Timing, Teardown)> {
        super::stack::with_stack(|| self.call_here(handler, limits, hooks, f))
    }

    fn call_here<T>(
        &self,
        handler: &str,
        limits: Limits,
        hooks: Hooks<'_>,
        f: impl FnOnce(
            &Guest<'_>,
            &mut Store<HostState>,
        ) -> wasmtime::Result<std::result::Result<T, HandlerError>>,
    ) -> Result<(T, Vec<LogLine>, Timing, Teardown)> {
        let start = Instant::now();
        let mut store = self.stores.build(handler, Some(limits));
        if let Some(cancel) = hooks.cancel {
            store::cancel_with(&mut store, cancel);
        }

        let set_up = Instant::now();
        let instance = self.pre.instantiate(&mut store);
        let instantiated = Instant::now();
        let outcome = instance.and_then(|instance| f(&self.exports.of(instance), &mut store));
        let called = Instant::now();
        let verdict = store::verdict(&store, limits, outcome);
        if let Some(console) = hooks.console {
            console.count(store.data().console_counts());
        }
        let logs = std::mem::take(&mut store.data_mut().logs);
        // After an error the instance goes now; the time is the call's.
        let value = verdict?;
        let timing = Timing {
            setup: set_up - start,
            instantiate: instantiated - set_up,
            call: called - instantiated,
            teardown: Duration::ZERO,
        };
        Ok((value, logs, timing, Teardown(store)))
    }
}
