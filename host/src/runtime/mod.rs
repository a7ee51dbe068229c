//! The runtime: one engine, the linked guest, and every invocation.
//!
//! Data flows one way: [`Runtime`] → compiler → sandbox; nothing below calls
//! back up.

mod engine;

use std::sync::Arc;

use crate::bindings::RuntimeStats;
use crate::compiler::{self, CompiledHandler};
use crate::components;
use crate::config::Config;
use crate::error::Result;
use crate::sandbox::{LogLine, Sandbox};
use crate::stats::Counters;

/// What one successful invocation answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The handler's result, as JSON.
    pub output: String,
    /// What the handler wrote with `console.*`, in order.
    pub logs: Vec<LogLine>,
}

/// Compiles and runs handlers; cheap to share behind an `Arc`.
pub struct Runtime {
    config: Config,
    sandbox: Sandbox,
    counters: Arc<Counters>,
}

impl Runtime {
    /// Builds the engine and compiles and links the guest component.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`](crate::Error::Engine) when the engine or the guest
    /// component cannot be set up.
    pub fn new(config: Config) -> Result<Self> {
        let engine = engine::new()?;
        let component = components::compile(&engine)?;
        let counters = Arc::new(Counters::default());
        let sandbox = Sandbox::new(&engine, &component, counters.clone())?;
        Ok(Self {
            config,
            sandbox,
            counters,
        })
    }

    /// The settings this runtime was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Compiles `source`, an ES module, to bytecode under `name` (the file
    /// name its stack traces show). The module is not evaluated.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`](crate::Error::Compile) with the position of a
    /// syntax error; [`Error::Trap`](crate::Error::Trap) if the guest traps.
    pub fn compile(&self, name: &str, source: &str) -> Result<CompiledHandler> {
        let compiled = compiler::compile(&self.sandbox, name, source)?;
        self.counters.compiled();
        Ok(compiled)
    }

    /// Runs `handler` in a fresh instance with `input` (JSON).
    ///
    /// # Errors
    ///
    /// The handler's own failures (`Runtime`, `InvalidInput`,
    /// `InvalidOutput`, `InvalidModule`, `InvalidBytecode`) and traps.
    pub fn invoke(&self, handler: &CompiledHandler, input: &str) -> Result<Invocation> {
        let result = self
            .sandbox
            .call(&handler.name, |guest, store| {
                guest
                    .nexus_handler_handler()
                    .call_invoke(store, &handler.bytecode, input)
            })
            .and_then(|(answer, logs)| {
                Ok(Invocation {
                    output: answer?,
                    logs,
                })
            });
        self.counters.executed(result.is_ok());
        result
    }

    /// The runtime's figures, as handlers see them through `Nexus.stats()`.
    pub fn stats(&self) -> RuntimeStats {
        self.counters.snapshot()
    }
}
