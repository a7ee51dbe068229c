//! The guest component: its bytes, built by `build.rs` and embedded in the
//! binary, its fingerprint, and its compilation to native code.

use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::{Error, Result};

/// The `nexus-guest` component, as built for `wasm32-wasip2`.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("NEXUS_GUEST_WASM"));

/// BLAKE3 of [`GUEST_WASM`], hex: names this guest build in cache keys and
/// bytecode files.
pub const GUEST_FINGERPRINT: &str = env!("NEXUS_GUEST_FINGERPRINT");

/// Compiles the guest for `engine` (Cranelift; the expensive step).
pub fn compile(engine: &Engine) -> Result<Component> {
    Component::new(engine, GUEST_WASM).map_err(Error::engine)
}
