//! A fresh guest instance per call: its store, host state and imports.
//!
//! Invariants:
//! - Every call gets a new `Store` and a new instance from one `InstancePre`;
//!   both are dropped when the call returns, trap or not.
//! - The guest's WASI context is empty: no preopened directories, no
//!   environment, no arguments, no stdio, no sockets. What QuickJS needs
//!   (clocks, randomness) is all a handler can reach.

use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{nexus::handler as wit, HandlerRuntime, HandlerRuntimePre, Level};
use crate::error::{Error, Result};
use crate::stats::Stats;

/// Console output a handler may keep per call; past it, lines are dropped
/// and one marker line says so.
const MAX_LOG_BYTES: usize = 1 << 20;

/// One `console.*` line from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    stats: Arc<Stats>,
    handler: String,
    logs: Vec<LogLine>,
    log_bytes: usize,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.log_bytes > MAX_LOG_BYTES {
            return;
        }
        self.log_bytes += message.len();
        let (level, message) = if self.log_bytes > MAX_LOG_BYTES {
            (
                Level::Warn,
                format!("console output over {MAX_LOG_BYTES} bytes; the rest is dropped"),
            )
        } else {
            (level, message)
        };
        let handler = self.handler.as_str();
        match level {
            Level::Debug => tracing::debug!(target: "nexus::console", handler, "{message}"),
            Level::Info => tracing::info!(target: "nexus::console", handler, "{message}"),
            Level::Warn => tracing::warn!(target: "nexus::console", handler, "{message}"),
            Level::Error => tracing::error!(target: "nexus::console", handler, "{message}"),
        }
        self.logs.push(LogLine { level, message });
    }
}

impl wit::stats::Host for HostState {
    fn get(&mut self) -> wit::stats::RuntimeStats {
        self.stats.snapshot()
    }
}

impl wit::types::Host for HostState {}

/// The guest component, linked once, ready to instantiate.
pub(crate) struct Sandbox {
    engine: Engine,
    pre: HandlerRuntimePre<HostState>,
    stats: Arc<Stats>,
}

impl Sandbox {
    pub fn new(engine: &Engine, component: &Component, stats: Arc<Stats>) -> Result<Self> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(Error::engine)?;
        HandlerRuntime::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(Error::engine)?;
        let pre = linker
            .instantiate_pre(component)
            .and_then(HandlerRuntimePre::new)
            .map_err(Error::engine)?;
        Ok(Self {
            engine: engine.clone(),
            pre,
            stats,
        })
    }

    /// Runs `f` against a fresh instance; `handler` names the log lines.
    pub fn call<R>(
        &self,
        handler: &str,
        f: impl FnOnce(&HandlerRuntime, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<(R, Vec<LogLine>)> {
        let state = HostState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            stats: self.stats.clone(),
            handler: handler.to_owned(),
            logs: Vec::new(),
            log_bytes: 0,
        };
        let mut store = Store::new(&self.engine, state);
        let bindings = self.pre.instantiate(&mut store).map_err(trap)?;
        let result = f(&bindings, &mut store).map_err(trap)?;
        Ok((result, std::mem::take(&mut store.data_mut().logs)))
    }
}

fn trap(e: wasmtime::Error) -> Error {
    Error::Trap(format!("{e:#}"))
}
