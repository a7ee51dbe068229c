//! The engine plus the cache: the guest component and each handler's
//! bytecode (and prepared component), compiled once, then found in memory or
//! in a verified file.
//!
//! Layer: imports `engine`, `cache`, `guest`, `bindings`, `config` and
//! `error`; never the runtime. This is the only place that turns cache bytes
//! into wasmtime objects, so the only place with `Component::deserialize`.

mod bytecode;
mod bytecode_file;
mod component;
mod diagnose;

pub(crate) use bytecode::compile;
pub use bytecode::CompiledHandler;
pub use bytecode_file::Bytecode;
pub(crate) use component::{guest, prepared, Clocks, Snapshotted};
