//! The `nexus` command line; `anyhow` lives here, at the binary's edge.

mod cli;
mod server;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Handlers run on the calling thread's stack: give this one the stack
    // a wasm call needs, so no call has to move to a helper thread.
    std::thread::Builder::new()
        .name("nexus".into())
        .stack_size(nexus_host::THREAD_STACK)
        .spawn(cli::main)
        .expect("start the main thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
