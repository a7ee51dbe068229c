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
use nexus_host::{Bytecode, CompiledHandler, Config, Error, Runtime};
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
    /// Compile a handler to a bytecode file that `nexus run` runs directly.
    ///
    /// The file only runs on the guest build that wrote it; another build
    /// refuses it with an invalid_bytecode error.
    Compile(CompileArgs),
    /// Measure a handler: N invocations in steady state, a fresh instance
    /// each, after a warm-up; prints median, p90 and p99 per invocation (µs)
    /// and invocations per second.
    Bench(BenchArgs),
    /// Inspect or manage the cache directory.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Args)]
struct RunArgs {
    /// The handler: an ES module with a default-export function, or a
    /// bytecode file from `nexus compile`.
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

#[derive(Args)]
struct CompileArgs {
    /// The handler: an ES module with a default-export function.
    file: PathBuf,
    /// Where to write the bytecode (conventionally FILE.qjsc).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
struct BenchArgs {
    /// The handler: an ES module with a default-export function.
    file: PathBuf,
    /// The input, as JSON text.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    input: String,
    /// Measured invocations, after a warm-up of a tenth as many (at least 10).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Print JSON: {"median_us", "p90_us", "p99_us", "per_second", "iterations"}.
    #[arg(long)]
    json: bool,
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
    /// How long one invocation may run, in milliseconds
    /// [env: NEXUS_TIMEOUT_MS] [default: 1000]
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<String>,
    /// Memory one instance may use: bytes, or a quantity like 64Mi
    /// [env: NEXUS_MAX_MEMORY_BYTES] [default: 64Mi]
    #[arg(long, value_name = "SIZE")]
    max_memory_bytes: Option<String>,
    /// Instances alive at once (concurrent invocations)
    /// [env: NEXUS_MAX_INSTANCES] [default: 256]
    #[arg(long, value_name = "N")]
    max_instances: Option<String>,
    /// How long a call waits for a free instance, in milliseconds
    /// [env: NEXUS_QUEUE_TIMEOUT_MS] [default: 5000]
    #[arg(long, value_name = "MS")]
    queue_timeout_ms: Option<String>,
    /// The largest result accepted: bytes, or a quantity like 8Mi
    /// [env: NEXUS_MAX_OUTPUT_BYTES] [default: 8Mi]
    #[arg(long, value_name = "SIZE")]
    max_output_bytes: Option<String>,
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
            timeout_ms: self.timeout_ms.map(SizeValue::Text),
            max_memory_bytes: self.max_memory_bytes.map(SizeValue::Text),
            max_instances: self.max_instances.map(SizeValue::Text),
            queue_timeout_ms: self.queue_timeout_ms.map(SizeValue::Text),
            max_output_bytes: self.max_output_bytes.map(SizeValue::Text),
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
        Command::Compile(args) => compile(args),
        Command::Bench(args) => bench(args),
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
    let file = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))
        .map_err(usage)?;
    let input = match (&args.input, &args.input_file) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) => read_file(path).map_err(usage)?,
        (None, None) => "{}".to_owned(),
    };
    let runtime = Runtime::new(args.settings.resolve()?).map_err(classify)?;
    let answer = if Bytecode::is_file(&file) {
        let bytecode = Bytecode::from_file(&file).map_err(classify)?;
        runtime.invoke_bytecode(&bytecode, &input, None)
    } else {
        let source = String::from_utf8(file)
            .with_context(|| {
                format!(
                    "{} is neither UTF-8 JavaScript nor a bytecode file",
                    args.file.display()
                )
            })
            .map_err(usage)?;
        let handler = runtime
            .compile(&handler_name(&args.file), &source)
            .map_err(classify)?;
        runtime.invoke(&handler, &input)
    }
    .map_err(classify)?;
    println!("{}", answer.output);
    Ok(())
}

/// A runtime with `settings`, and the handler in `file` compiled by it.
fn compile_file(file: &Path, settings: Settings) -> Result<(Runtime, CompiledHandler), Failure> {
    let source = read_file(file).map_err(usage)?;
    let runtime = Runtime::new(settings.resolve()?).map_err(classify)?;
    let handler = runtime
        .compile(&handler_name(file), &source)
        .map_err(classify)?;
    Ok((runtime, handler))
}

fn compile(args: CompileArgs) -> Result<(), Failure> {
    let (_, handler) = compile_file(&args.file, args.settings)?;
    std::fs::write(&args.output, Bytecode::from(&handler).to_file())
        .with_context(|| format!("cannot write {}", args.output.display()))
        .map_err(usage)?;
    Ok(())
}

fn bench(args: BenchArgs) -> Result<(), Failure> {
    let (runtime, handler) = compile_file(&args.file, args.settings)?;
    let warm_up = (args.iterations / 10).max(10);
    for _ in 0..warm_up {
        runtime.invoke(&handler, &args.input).map_err(classify)?;
    }
    let mut samples = Vec::with_capacity(args.iterations as usize);
    let start = std::time::Instant::now();
    for _ in 0..args.iterations {
        let t = std::time::Instant::now();
        runtime.invoke(&handler, &args.input).map_err(classify)?;
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    let report = json!({
        "median_us": at(0.5),
        "p90_us": at(0.9),
        "p99_us": at(0.99),
        "per_second": args.iterations as f64 / total.as_secs_f64(),
        "iterations": args.iterations,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{}: {} iterations, a fresh instance each\n  median {:.1} µs  p90 {:.1} µs  p99 {:.1} µs\n  {:.0} invocations/s (one thread)",
            args.file.display(),
            args.iterations,
            at(0.5),
            at(0.9),
            at(0.99),
            args.iterations as f64 / total.as_secs_f64()
        );
    }
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
    match e {
        Error::Config { .. } => usage(e),
        e if e.is_handler_error() => Failure::Handler(e),
        e => host(e),
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
