//! Host-side bindings for the `nexus:handler` world, generated from `wit/`.
//!
//! Layer: a leaf; the types every layer above may use.

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
