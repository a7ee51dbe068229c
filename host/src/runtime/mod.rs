//! The runtime: one engine, the linked guest, and every invocation.
//!
//! Data flows one way: [`Runtime`] → compiler → sandbox; nothing below calls
//! back up.

mod engine;

use std::sync::Arc;

use crate::bindings::RuntimeStats;
use crate::cache::{Cache, Source};
use crate::compiler::{self, CompiledHandler};
use crate::components;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::sandbox::{LogLine, Sandbox};
use crate::stats::Stats;

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
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    component_source: Source,
}

impl Runtime {
    /// Opens the cache, builds the engine, and loads (from the cache, or by
    /// compiling) and links the guest component.
    ///
    /// An unusable cache directory is not an error: the runtime warns once
    /// and serves from memory.
    ///
    /// # Errors
    ///
    /// [`Error::Engine`](crate::Error::Engine) when the engine or the guest
    /// component cannot be set up.
    pub fn new(config: Config) -> Result<Self> {
        let cache = Arc::new(Cache::open(
            &config.cache_dir,
            config.max_cache_size_bytes,
            config.max_disk_cache_bytes,
        ));
        let engine = engine::new()?;
        let (component, component_source) = components::load(&engine, &cache)?;
        tracing::debug!(target: "nexus::cache", artifact = "component", source = component_source.as_str(), "guest component");
        let stats = Arc::new(Stats::new(cache.clone()));
        let sandbox = Sandbox::new(&engine, &component, stats.clone())?;
        Ok(Self {
            config,
            sandbox,
            cache,
            stats,
            component_source,
        })
    }

    /// The artifact cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Where this runtime's guest component came from.
    pub fn component_source(&self) -> Source {
        self.component_source
    }

    /// The settings this runtime was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Compiles `source`, an ES module, to bytecode under `name` (the file
    /// name its stack traces show), unless the cache has it. The module is
    /// not evaluated.
    ///
    /// # Errors
    ///
    /// [`Error::Compile`](crate::Error::Compile) with the position of a
    /// syntax error; [`Error::Trap`](crate::Error::Trap) if the guest traps.
    pub fn compile(&self, name: &str, source: &str) -> Result<CompiledHandler> {
        if name.contains('\0') {
            return Err(Error::InvalidName(
                name.to_owned(),
                "it contains a NUL byte, which JavaScript file names cannot",
            ));
        }
        let compiled = compiler::compile(
            &self.sandbox,
            &self.cache,
            self.config.compile_options,
            name,
            source,
        )?;
        tracing::debug!(target: "nexus::cache", artifact = "bytecode", source = compiled.source.as_str(), handler = name, "handler bytecode");
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
        self.stats.executed(result.is_ok());
        result
    }

    /// The runtime's figures, as handlers see them through `Nexus.stats()`.
    pub fn stats(&self) -> RuntimeStats {
        self.stats.snapshot()
    }
}
