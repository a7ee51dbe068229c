//! `nexus` subcommands.
//!
//! Exit codes: 0 success; 1 the handler failed (its error on stderr), or
//! `cache verify` found damage; 2 bad usage, a bad setting or an unreadable
//! file; 3 the host itself failed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use nexus_host::cache::{Cache, Kind};
use nexus_host::config::{Layer, SizeValue};
use nexus_host::{Config, Error, Runtime};
use serde_json::json;

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
    Run(RunArgs),
    /// Inspect or manage the cache directory.
    #[command(subcommand)]
    Cache(CacheCommand),
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
    settings: Settings,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Entries and bytes per artifact kind on disk.
    Stats(CacheArgs),
    /// Check every file's header and checksum, removing damaged ones; exits
    /// 1 if any was damaged.
    Verify(CacheArgs),
    /// Remove every file the cache owns, and nothing else in the directory.
    Clear(CacheArgs),
}

#[derive(Args)]
struct CacheArgs {
    #[command(flatten)]
    settings: Settings,
    /// Print JSON; `stats` prints
    /// {"bytecode": {"entries": N, "bytes": N}, "components": {...}, ...}.
    #[arg(long)]
    json: bool,
}

/// Settings. A flag beats its environment variable, which beats the config
/// file, which beats the default.
#[derive(Args, Clone)]
struct Settings {
    /// The cache directory [env: NEXUS_CACHE_DIR] [default: .nexus-cache]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Memory cache bound: bytes, or a quantity like 64Mi
    /// [env: NEXUS_MAX_CACHE_SIZE_BYTES] [default: 64Mi]
    #[arg(long, value_name = "SIZE")]
    max_cache_size_bytes: Option<String>,
    /// Disk cache bound: bytes, or a quantity like 96Mi
    /// [env: NEXUS_MAX_DISK_CACHE_BYTES] [default: 96Mi]
    #[arg(long, value_name = "SIZE")]
    max_disk_cache_bytes: Option<String>,
    /// Config file (TOML, the settings' snake_case names as keys)
    /// [env: NEXUS_CONFIG] [default: ./nexus.toml if present]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Settings {
    fn resolve(self) -> Result<Config, Failure> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let file = self
            .config
            .or_else(|| env("NEXUS_CONFIG").map(PathBuf::from))
            .or_else(|| Some(PathBuf::from("nexus.toml")).filter(|p| p.exists()));
        let flags = Layer {
            cache_dir: self.cache_dir,
            max_cache_size_bytes: self.max_cache_size_bytes.map(SizeValue::Text),
            max_disk_cache_bytes: self.max_disk_cache_bytes.map(SizeValue::Text),
        };
        let mut layers = vec![flags, Layer::from_env(env)];
        if let Some(path) = file {
            layers.push(Layer::from_file(&path).map_err(usage)?);
        }
        Config::resolve(&layers).map_err(usage)
    }
}

/// A failure, sorted by who is at fault; decides the exit status.
enum Failure {
    Handler(Error),
    /// Already reported on stdout; exit 1.
    Found,
    Usage(anyhow::Error),
    Host(anyhow::Error),
}

fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Usage(e.into())
}

fn host(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Host(e.into())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Cache(command) => cache(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Handler(e)) => {
            eprintln!("error[{}]: {e}", e.kind());
            ExitCode::from(1)
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

/// Handlers' console output at debug and up, the host's own at warn, both
/// to stderr; `NEXUS_LOG` (an `EnvFilter`) overrides.
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
    let source = read_file(&args.file).map_err(usage)?;
    let input = match (&args.input, &args.input_file) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) => read_file(path).map_err(usage)?,
        (None, None) => "{}".to_owned(),
    };
    let name = handler_name(&args.file);

    let runtime = Runtime::new(args.settings.resolve()?).map_err(host)?;
    let handler = runtime.compile(&name, &source).map_err(classify)?;
    let answer = runtime.invoke(&handler, &input).map_err(classify)?;
    println!("{}", answer.output);
    Ok(())
}

fn cache(command: CacheCommand) -> Result<(), Failure> {
    let args = match &command {
        CacheCommand::Stats(a) | CacheCommand::Verify(a) | CacheCommand::Clear(a) => a,
    };
    let json = args.json;
    let config = Settings::resolve(args.settings.clone())?;
    let dir = config.cache_dir.display().to_string();
    // Only the disk tier matters here: no memory budget, no engine.
    let cache = Cache::open(&config.cache_dir, 0, config.max_disk_cache_bytes);
    if !cache.disk_available() {
        return Err(usage(anyhow::anyhow!(
            "cannot use {dir} as a cache directory"
        )));
    }
    match command {
        CacheCommand::Stats(_) => {
            let kind = |k: Kind| {
                let s = cache.disk_stats(k);
                json!({ "entries": s.entries, "bytes": s.bytes })
            };
            if json {
                let report = json!({
                    "dir": dir,
                    "capacity_bytes": config.max_disk_cache_bytes,
                    "bytecode": kind(Kind::Bytecode),
                    "components": kind(Kind::Component),
                });
                println!("{report}");
            } else {
                println!("{dir} (bound: {} bytes)", config.max_disk_cache_bytes);
                for k in [Kind::Bytecode, Kind::Component] {
                    let s = cache.disk_stats(k);
                    println!(
                        "  {:<10} {:>6} entries {:>12} bytes",
                        k.as_str(),
                        s.entries,
                        s.bytes
                    );
                }
            }
        }
        CacheCommand::Verify(_) => {
            let report = cache
                .verify()
                .with_context(|| format!("verifying {dir}"))
                .map_err(host)?;
            if json {
                let damaged: Vec<_> = report
                    .damaged
                    .iter()
                    .map(|(file, why)| json!({ "file": file, "damage": why }))
                    .collect();
                println!(
                    "{}",
                    json!({ "checked": report.checked, "damaged": damaged })
                );
            } else {
                for (file, why) in &report.damaged {
                    println!("damaged, removed: {file}: {why}");
                }
                println!(
                    "{} files checked, {} damaged",
                    report.checked,
                    report.damaged.len()
                );
            }
            if !report.damaged.is_empty() {
                return Err(Failure::Found);
            }
        }
        CacheCommand::Clear(_) => {
            let removed = cache
                .clear()
                .with_context(|| format!("clearing {dir}"))
                .map_err(host)?;
            if json {
                println!("{}", json!({ "removed": removed }));
            } else {
                println!("removed {removed} cache files from {dir}");
            }
        }
    }
    Ok(())
}

fn classify(e: Error) -> Failure {
    if e.is_handler_error() {
        Failure::Handler(e)
    } else {
        host(e)
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
