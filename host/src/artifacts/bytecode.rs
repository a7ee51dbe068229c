//! Handler source → QuickJS bytecode, compiled inside the guest, through the
//! cache.

use std::sync::Arc;

use crate::cache::{Cache, Key, Origin};
use crate::config::CompileOptions;
use crate::engine::{Limits, Sandbox};
use crate::error::Result;
use crate::guest::GUEST_FINGERPRINT;

/// A handler compiled to bytecode for this guest build.
#[derive(Debug, Clone)]
pub struct CompiledHandler {
    /// The cache key: guest build, name, source and compile options.
    pub key: Key,
    /// The handler's name: its file name in stack traces.
    pub name: String,
    /// QuickJS bytecode, as written by this guest build.
    pub bytecode: Arc<[u8]>,
    /// Where the bytecode came from.
    pub origin: Origin,
}

impl CompiledHandler {
    /// Whether no compiling was needed.
    pub fn cache_hit(&self) -> bool {
        self.origin != Origin::Compiled
    }
}

/// `source`'s bytecode under `name`: from the cache, else compiled in a
/// fresh instance of the guest `sandbox` within `limits`.
///
/// # Errors
///
/// The guest's verdict on the source (`Compile`), or the limits' errors.
pub(crate) fn compile(
    sandbox: &Sandbox,
    cache: &Cache,
    options: CompileOptions,
    limits: Limits,
    name: &str,
    source: &str,
) -> Result<CompiledHandler> {
    let flags = [options.strip_source as u8, options.strip_debug as u8];
    let key = Key::bytecode(GUEST_FINGERPRINT, name, source, &flags);
    let (bytecode, origin) = cache.bytecode(key, || -> Result<Vec<u8>> {
        sandbox
            .compile(name, source, options, limits)
            .map_err(|e| super::diagnose::diagnose(e, name, source))
    })?;
    Ok(CompiledHandler {
        key,
        name: name.to_owned(),
        bytecode,
        origin,
    })
}
