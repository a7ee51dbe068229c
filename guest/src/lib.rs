//! `nexus-guest`: QuickJS (through rquickjs) exported as the `nexus:handler`
//! world.
//!
//! Invariants:
//! - `compile` parses and writes bytecode; it never evaluates the module.
//! - `invoke` runs in an instance the host throws away afterwards, so nothing
//!   here has to reset state between calls.
//! - Handlers see only what this file installs on the global object
//!   (`console`, `Nexus`) plus QuickJS's standard intrinsics: no `std`/`os`
//!   modules, no module loader, no file system, network or environment.

mod js;

use exports::nexus::handler::{compiler, handler};
use nexus::handler::types::HandlerError;

wit_bindgen::generate!({
    world: "handler-runtime",
    path: "../wit",
});

struct Nexus;

impl Guest for Nexus {
    fn wizer_initialize() {
        js::initialize();
    }
}

impl compiler::Guest for Nexus {
    fn compile(
        name: String,
        source: String,
        options: compiler::CompileOptions,
    ) -> Result<Vec<u8>, HandlerError> {
        js::compile(&name, &source, options)
    }
}

impl handler::Guest for Nexus {
    fn invoke(bytecode: Vec<u8>, input: String) -> Result<String, HandlerError> {
        js::invoke(&bytecode, &input)
    }

    fn prepare(bytecode: Vec<u8>) -> Result<(), HandlerError> {
        js::prepare(&bytecode)
    }

    fn invoke_prepared(input: String) -> Result<String, HandlerError> {
        js::invoke_prepared(&input)
    }
}

export!(Nexus);
