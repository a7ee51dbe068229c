//! The `nexus` command line; `anyhow` lives here, at the binary's edge.

mod cli;
mod server;

fn main() -> std::process::ExitCode {
    cli::main()
}
