//! `nexus_host`: runs JavaScript handlers in fresh WebAssembly instances of
//! the `nexus-guest` QuickJS component.
//!
//! ```no_run
//! let runtime = nexus_host::Runtime::new(nexus_host::Config::default())?;
//! let handler = runtime.compile("hello.js", "export default (ctx) => ({ hi: ctx.name })")?;
//! let answer = runtime.invoke(&handler, r#"{"name": "Ada"}"#)?;
//! assert_eq!(answer.output, r#"{"hi":"Ada"}"#);
//! # Ok::<(), nexus_host::Error>(())
//! ```

mod bindings;
pub mod bytecode;
pub mod cache;
pub mod compiler;
pub mod components;
pub mod config;
mod error;
mod exports;
pub mod runtime;
mod sandbox;
mod snapshot;
pub mod stats;

pub use bindings::{CacheStats, Level, RuntimeStats, Tier};
pub use bytecode::Bytecode;
pub use cache::Source;
pub use compiler::CompiledHandler;
pub use config::{CompileOptions, Config};
pub use error::{Error, Result};
pub use runtime::{Invocation, PreparedHandler, Runtime};
pub use sandbox::{LogLine, Timing};
