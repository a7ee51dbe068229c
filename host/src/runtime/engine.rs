//! The one `wasmtime::Engine` of a process, and how it is configured.

use wasmtime::Engine;

use crate::error::{Error, Result};

pub(crate) fn new() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).map_err(Error::engine)
}
