//! Handler source → QuickJS bytecode, compiled inside the guest.

use crate::error::Result;
use crate::sandbox::Sandbox;

/// A handler compiled to bytecode for this guest build.
#[derive(Debug, Clone)]
pub struct CompiledHandler {
    /// The handler's name: its file name in stack traces.
    pub name: String,
    /// QuickJS bytecode, as written by this guest build.
    pub bytecode: std::sync::Arc<[u8]>,
}

pub(crate) fn compile(sandbox: &Sandbox, name: &str, source: &str) -> Result<CompiledHandler> {
    let (bytecode, _logs) = sandbox.call(name, |guest, store| {
        guest
            .nexus_handler_compiler()
            .call_compile(store, name, source)
    })?;
    Ok(CompiledHandler {
        name: name.to_owned(),
        bytecode: bytecode?.into(),
    })
}
