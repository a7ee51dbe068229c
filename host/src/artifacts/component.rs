//! Components through the cache: the pre-initialized guest, and a handler's
//! own prepared component.

use std::sync::Arc;

use wasmtime::component::Component;
use wasmtime::Engine;

use crate::cache::{Cache, Key, Kind, Origin};
use crate::engine::{self, Limits, Shared};
use crate::error::{Error, Result};
use crate::guest::GUEST_WASM;

/// The pre-initialized guest compiled for `engine`: from memory, from a
/// verified file, or by snapshotting and Cranelift (the expensive steps), in
/// that order.
///
/// # Errors
///
/// [`Error::Engine`] if pre-initializing or compiling fails.
pub(crate) fn guest(
    engine: &Engine,
    cache: &Cache,
    shared: &Shared,
) -> Result<(Component, Origin)> {
    let key = Key::component(
        GUEST_WASM,
        &engine::compatibility_hash(engine),
        engine::VARIANT,
    );
    load(engine, cache, key, || {
        tracing::info!(
            target: "nexus::cache",
            "compiling the guest for this machine: the first start on this cache takes a few seconds (about 2 s here)"
        );
        engine::pre_initialize(GUEST_WASM, shared.clone())
    })
}

/// A handler's own component: the guest pre-initialized with `bytecode`'s
/// module evaluated, compiled for `engine`, through the cache like the guest
/// itself.
///
/// # Errors
///
/// The handler's own errors from evaluating its module (`Runtime`,
/// `InvalidModule`, `InvalidBytecode`, the limits' errors);
/// [`Error::Engine`] if snapshotting or compiling fails.
pub(crate) fn prepared(
    engine: &Engine,
    cache: &Cache,
    shared: &Shared,
    name: &str,
    bytecode: &[u8],
    limits: Limits,
) -> Result<(Component, Origin)> {
    let key = Key::prepared(
        GUEST_WASM,
        &engine::compatibility_hash(engine),
        engine::PREPARED_VARIANT,
        bytecode,
    );
    load(engine, cache, key, || {
        engine::prepare_handler(GUEST_WASM, name, bytecode, shared.clone(), limits)
    })
}

/// The component for `key`, else the one `snapshot` makes, compiled.
fn load(
    engine: &Engine,
    cache: &Cache,
    key: Key,
    snapshot: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(Component, Origin)> {
    cache.get_or_compile(
        Kind::Component,
        key,
        |payload| {
            // SAFETY: the payload passed its header check (magic, kind, this
            // key, length, BLAKE3), and the key covers the engine's
            // compatibility hash: it is exactly what `serialize` wrote for an
            // engine like this one.
            unsafe { Component::deserialize(engine, payload) }.map_err(|e| format!("{e:#}"))
        },
        || {
            let component = Component::new(engine, &snapshot()?).map_err(Error::engine)?;
            let bytes: Arc<[u8]> = component.serialize().map_err(Error::engine)?.into();
            Ok((component, bytes))
        },
    )
}
