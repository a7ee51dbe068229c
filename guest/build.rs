//! Link arguments the guest's QuickJS needs (see src/js/stack.rs).

/// The shadow stack in linear memory: QuickJS's limit (2 MiB, `MAX_STACK`
/// in src/js/stack.rs) plus room for the C code between two checks.
const STACK_SIZE: usize = 3 << 20;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("wasm") {
        // rquickjs's calls to JS_UpdateStackTop reach the guest's wrapper,
        // which restores the stack limit QuickJS turns off on WASI.
        println!("cargo:rustc-link-arg=--wrap=JS_UpdateStackTop");
        println!("cargo:rustc-link-arg=-zstack-size={STACK_SIZE}");
    }
}
