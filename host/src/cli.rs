//! `nexus` subcommands.
//!
//! Exit codes: 0 success; 1 the handler failed (its error on stderr);
//! 2 bad usage or unreadable input files; 3 the host itself failed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use nexus_host::{Config, Error, Runtime};

/// Nexus: a plugin host that runs JavaScript handlers in fresh, isolated
/// WebAssembly instances.
///
/// A handler is an ES module whose default export takes the parsed JSON
/// input and returns a JSON-able value (or a promise of one).
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
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The handler: an ES module with a default-export function.
    file: PathBuf,
    /// The input, as JSON text. Without --input or --input-file: `{}`.
    #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the input JSON from PATH (`-` for stdin).
    #[arg(long, value_name = "PATH")]
    input_file: Option<PathBuf>,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
struct CacheArgs {
    /// The cache directory.
    #[arg(
        long,
        value_name = "DIR",
        env = "NEXUS_CACHE_DIR",
        default_value = ".nexus-cache"
    )]
    cache_dir: PathBuf,
}

/// A failure, sorted by who is at fault; decides the exit status.
enum Failure {
    Handler(Error),
    Usage(anyhow::Error),
    Host(anyhow::Error),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run(args) => run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Handler(e)) => {
            eprintln!("error[{}]: {e}", e.kind());
            ExitCode::from(1)
        }
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

/// Handlers' console output at info and up, the host's own at warn, both to
/// stderr; `NEXUS_LOG` (an `EnvFilter`) overrides.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NEXUS_LOG")
        .unwrap_or_else(|_| "warn,nexus::console=debug".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let source = read_file(&args.file).map_err(Failure::Usage)?;
    let input = match (&args.input, &args.input_file) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) => read_file(path).map_err(Failure::Usage)?,
        (None, None) => "{}".to_owned(),
    };
    let name = handler_name(&args.file);

    let runtime = Runtime::new(Config {
        cache_dir: args.cache.cache_dir,
    })
    .map_err(|e| Failure::Host(e.into()))?;
    let handler = runtime.compile(&name, &source).map_err(classify)?;
    let answer = runtime.invoke(&handler, &input).map_err(classify)?;
    println!("{}", answer.output);
    Ok(())
}

fn classify(e: Error) -> Failure {
    if e.is_handler_error() {
        Failure::Handler(e)
    } else {
        Failure::Host(e.into())
    }
}

/// The name stack traces show: the file's own name, without its folders.
fn handler_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "handler.js".to_owned())
}

fn read_file(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}
