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
//!
//! Layers, each importing only those below it (each module's `//!` says
//! which):
//!
//! ```text
//! runtime     the façade: admission, invoke, prepare
//! stats       the runtime's counters and the `runtime-stats` record
//! artifacts   the guest component and handler bytecode, through the cache
//! engine      wasmtime only: engine, epochs, host state, one store builder,
//!             typed exports, sandbox, Wizer snapshot
//! cache       bytes and keys: memory and disk tiers, eviction, file format
//! config, error, guest, bindings
//! ```

#![deny(missing_docs)]

mod artifacts;
mod cache;
mod config;
mod engine;
mod error;
mod guest;
mod names;
mod registry;
mod runtime;
mod stats;

// The build script's import trimming, unit-tested here with the library.
#[cfg(test)]
#[path = "../build/trim_imports.rs"]
mod trim_imports;

pub use artifacts::{Bytecode, CompiledHandler};
pub use cache::{
    Artifact, Built, Cache, DiskEntry, Key, Op, Origin, SeedEntries, TierStats, VerifyReport,
    FORMAT_VERSION,
};
pub use config::{
    parse_size, CompileOptions, Config, Eviction, Isolation, Layer, LogFormat, RawValue, Setting,
    SnapshotPolicy, StatsScope, SETTINGS,
};
pub use engine::{
    CacheStats, Cancel, ConsoleCounts, Level, LogLine, Observed, RuntimeStats, SlotResetChoice,
    Tier, Timing, THREAD_STACK,
};
pub use error::{Error, Result};
pub use guest::{GUEST_FINGERPRINT, GUEST_WASM};
pub use registry::{
    check_name, handler_files, DirectoryWatcher, Handler, HandlerOptions, Handlers, ReloadCounts,
    Snapshot, SnapshotCounts, OTHER,
};
pub use runtime::{
    call_threads, DeferTeardown, Discard, Invocation, InvocationPath, PreparedHandler, ReuseCounts,
    Runtime,
};
pub use stats::{Counters, Durations, HandlerFigures};
