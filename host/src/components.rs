//! The guest component: its bytes, built by `build.rs` and embedded in the
//! binary, its fingerprint, and its native code through the cache.

use std::hash::{Hash, Hasher};

use wasmtime::component::Component;
use wasmtime::Engine;

use std::sync::Arc;

use crate::cache::{Cache, Key, Source};
use crate::error::{Error, Result};
use crate::sandbox::Limits;
use crate::snapshot;
use crate::stats::Stats;

/// The `nexus-guest` component, as built for `wasm32-wasip2`.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("NEXUS_GUEST_WASM"));

/// BLAKE3 of [`GUEST_WASM`], hex: names this guest build in cache keys and
/// bytecode files.
pub const GUEST_FINGERPRINT: &str = env!("NEXUS_GUEST_FINGERPRINT");

/// The pre-initialized guest compiled for `engine`: from memory, from a
/// verified file, or by snapshotting and Cranelift (the expensive steps), in
/// that order.
///
/// # Errors
///
/// [`Error::Engine`] if pre-initializing or compiling fails.
pub(crate) fn load(
    engine: &Engine,
    cache: &Cache,
    stats: &Arc<Stats>,
) -> Result<(Component, Source)> {
    let key = Key::component(GUEST_WASM, &engine_hash(engine), snapshot::VARIANT);
    cache.component(key, engine, || {
        let wasm = snapshot::pre_initialize(GUEST_WASM, stats.clone())?;
        Component::new(engine, &wasm).map_err(Error::engine)
    })
}

/// A handler's own component: the guest pre-initialized with `bytecode`'s
/// module evaluated (see [`snapshot::prepare_handler`]), compiled for
/// `engine`, through the cache like the guest itself.
///
/// # Errors
///
/// The handler's own errors from evaluating its module (`Runtime`,
/// `InvalidModule`, `InvalidBytecode`, the limits' errors);
/// [`Error::Engine`] if snapshotting or compiling fails.
pub(crate) fn prepared(
    engine: &Engine,
    cache: &Cache,
    stats: &Arc<Stats>,
    name: &str,
    bytecode: &[u8],
    limits: Limits,
) -> Result<(Component, Source)> {
    let key = Key::prepared(
        GUEST_WASM,
        &engine_hash(engine),
        snapshot::PREPARED_VARIANT,
        bytecode,
    );
    cache.component(key, engine, || {
        let wasm = snapshot::prepare_handler(GUEST_WASM, name, bytecode, stats.clone(), limits)?;
        Component::new(engine, &wasm).map_err(Error::engine)
    })
}

/// What makes native code from one engine loadable by another: wasmtime's
/// version, the target and the settings that shape code.
fn engine_hash(engine: &Engine) -> [u8; 8] {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish().to_le_bytes()
}
