//! A handler as the addon hands it to JavaScript: its bytecode, and its
//! prepared component once it has one.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use nexus_host::{CompiledHandler, PreparedHandler};

/// A compiled handler, and its prepared component once it has one.
#[napi]
pub struct NativeHandler {
    pub(crate) compiled: CompiledHandler,
    pub(crate) prepared: Option<PreparedHandler>,
}

#[napi]
impl NativeHandler {
    /// The handler's name, as compiled.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.compiled.name.clone()
    }

    /// The bytecode's cache key, 64 hex digits.
    #[napi(getter)]
    pub fn key(&self) -> String {
        self.compiled.key.to_hex()
    }

    /// Where its artifact came from: `memory`, `disk` or `compiled` (its
    /// component's, once prepared).
    #[napi(getter)]
    pub fn origin(&self) -> String {
        match &self.prepared {
            Some(prepared) => prepared.origin.as_str(),
            None => self.compiled.origin.as_str(),
        }
        .to_owned()
    }

    /// `plain`, or `prepared` once it has its own component.
    #[napi(getter)]
    pub fn path(&self) -> String {
        if self.prepared.is_some() {
            "prepared"
        } else {
            "plain"
        }
        .to_owned()
    }

    /// The QuickJS bytecode (a copy).
    #[napi(getter)]
    pub fn bytecode(&self) -> Buffer {
        Buffer::from(self.compiled.bytecode.to_vec())
    }
}
