//! What the benchmarks share.

/// Runs `bench` on a thread with the stack a wasm call needs
/// (`nexus_host::THREAD_STACK`): calls run on the calling thread's stack,
/// and from a smaller one each would move to a helper thread.
pub fn on_big_stack(bench: fn()) {
    std::thread::Builder::new()
        .stack_size(nexus_host::THREAD_STACK)
        .spawn(bench)
        .unwrap()
        .join()
        .unwrap();
}

/// The workspace's root, where `target/bench-handlers` is.
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}
