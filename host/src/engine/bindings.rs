//! Host-side bindings for the `nexus:handler` world, generated from `wit/`,
//! and the guest's error variants as the library's [`Error`].
//!
//! The record types (`RuntimeStats`, `Tier`, …) are plain data; the engine
//! re-exports them for the layers above.

wasmtime::component::bindgen!({
    world: "handler-runtime",
    path: "../wit",
    // `GET /stats` serves the `runtime-stats` record as JSON: the WIT names
    // in snake_case, as `Nexus.stats()` shows them.
    additional_derives: [serde::Serialize],
});

pub use nexus::handler::log::Level;
pub use nexus::handler::stats::{CacheStats, RuntimeStats, Tier};
pub use nexus::handler::types::HandlerError;

use crate::error::Error;

impl Level {
    /// The level's WIT name: `debug`, `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl From<HandlerError> for Error {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Compile(d) => Error::Compile {
                message: d.message,
                file: d.file,
                line: d.line,
                column: d.column,
            },
            HandlerError::Runtime(x) => Error::Runtime {
                name: x.name,
                message: x.message,
                stack: x.stack,
            },
            HandlerError::InvalidInput(m) => Error::InvalidInput(m),
            HandlerError::InvalidOutput(m) => Error::InvalidOutput(m),
            HandlerError::InvalidBytecode(m) => Error::InvalidBytecode(m),
            HandlerError::InvalidModule(m) => Error::InvalidModule(m),
        }
    }
}
