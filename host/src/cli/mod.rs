//! `nexus` subcommands.
//!
//! Exit codes: 0 success; 1 the handler failed (its error on stderr), or
//! `cache verify` found damage; 2 bad usage, a bad setting or an unreadable
//! file; 3 the host itself failed.
//!
//! Layer: the binary's edge, beside `server`; it uses only `nexus_host`'s
//! public API, and `anyhow` lives here.

mod bench;
mod cache;
mod component;
mod logs;
mod run;
mod serve;
mod settings;
mod table;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use nexus_host::{CompiledHandler, Error, LogFormat, Runtime};

pub(crate) use logs::init_tracing;
use settings::Settings;

/// Nexus: a plugin host that runs JavaScript handlers in fresh, isolated
/// WebAssembly instances.
///
/// A handler is an ES module whose default export takes the parsed JSON
/// input and returns a JSON-able value (or a promise of one). Compiled
/// artifacts are cached in memory and in a cache directory, so a handler
/// seen once is not compiled again, even by the next process.
#[derive(Parser)]
#[command(name = "nexus", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a handler once and print its result as JSON on stdout.
    ///
    /// console.* output goes to stderr. If the handler fails, its error
    /// (kind, message, and line:column or stack) goes to stderr and the exit
    /// status is 1.
    #[command(
        after_help = "Examples:\n  nexus run examples/hello.js --input '{\"name\":\"Ada\"}'\n  \
        echo '{\"n\": 2}' | nexus run handler.js --input-file -"
    )]
    Run(run::RunArgs),
    /// Compile a handler to a bytecode file that `nexus run` runs directly.
    ///
    /// The file only runs on the guest build that wrote it; another build
    /// refuses it with an invalid_bytecode error.
    Compile(run::CompileArgs),
    /// Measure a handler: N invocations in steady state, a fresh instance
    /// each, after a warm-up; prints median, p90 and p99 per invocation (µs),
    /// invocations per second, and where the time goes (setup, instantiate,
    /// call, teardown).
    Bench(bench::BenchArgs),
    /// Inspect or manage the cache directory.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Write the guest component the host runs (the plain build, or the
    /// pre-initialized snapshot), for jco, `wasm-tools component wit` and
    /// other hosts.
    ///
    /// Prints the file, its size and the guest build's BLAKE3 fingerprint
    /// (the one bytecode cache keys cover).
    #[command(after_help = "Examples:\n  nexus component -o nexus_guest.wasm\n  \
        wasm-tools component wit nexus_guest.wasm")]
    Component(component::ComponentArgs),
    /// Serve handlers over HTTP: register, invoke, list and remove them;
    /// /stats, /metrics (Prometheus), /healthz and /readyz.
    ///
    /// Prints the URL it listens on, and a curl line to try. SIGTERM or
    /// SIGINT stops it gracefully: no new connections, in-flight requests
    /// finish within grace_period_ms, exit 0.
    #[command(after_help = "Examples:\n  nexus serve --handlers examples\n  \
        nexus serve --listen 0.0.0.0:8080 --log-format json")]
    Serve(serve::ServeArgs),
    /// Print every setting: its flag, environment variable, default, range
    /// and help, as Markdown (docs/settings.md) or JSON.
    #[command(after_help = "Examples:\n  nexus settings > docs/settings.md\n  \
        nexus settings --format json")]
    Settings(table::SettingsArgs),
}

/// A failure, sorted by who is at fault; decides the exit status.
pub(crate) enum Failure {
    Handler(Error),
    /// Already reported on stdout; exit 1.
    Found,
    Usage(anyhow::Error),
    Host(anyhow::Error),
}

pub(crate) fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

pub(crate) fn host(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Host(e.into())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve`'s log format is a setting: it sets up its own log.
    if !matches!(cli.command, Command::Serve(_)) {
        init_tracing(LogFormat::Text, "warn,nexus::console=debug");
    }
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Compile(args) => run::compile(args),
        Command::Bench(args) => bench::bench(args),
        Command::Cache(command) => cache::cache(command),
        Command::Component(args) => component::component(args),
        Command::Serve(args) => serve::serve(args),
        Command::Settings(args) => table::settings(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Handler(e)) => {
            // The message is the handler's own text: keep its escape
            // sequences from reaching the terminal.
            eprintln!("error[{}]: {}", e.kind(), escape_controls(&e.to_string()));
            // Input that is not JSON is the caller's mistake, as any bad
            // argument is: a usage error, not the handler's failure.
            match e {
                Error::InvalidInput(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
        Err(Failure::Found) => ExitCode::from(1),
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Host(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// `text` with its control characters but newlines and tabs written as
/// escapes (`\u{1b}`), so that it prints as it reads.
fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A runtime with `settings`, and the handler in `file` compiled by it.
pub(crate) fn compile_file(
    file: &Path,
    settings: Settings,
) -> Result<(Runtime, CompiledHandler), Failure> {
    let source = read_file(file).map_err(usage)?;
    let runtime = Runtime::new(settings.resolve()?)?;
    let handler = runtime.compile(&handler_name(file), &source)?;
    Ok((runtime, handler))
}

/// Sorts the library's errors by who is at fault.
impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Config { .. } => usage(e),
            e if e.is_handler_error() => Failure::Handler(e),
            e => host(e),
        }
    }
}

/// The name stack traces show: the file's own name, without its folders.
pub(crate) fn handler_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "handler.js".to_owned())
}

pub(crate) fn read_file(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
