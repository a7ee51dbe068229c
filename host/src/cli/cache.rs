//! `nexus cache stats|verify|clear`.

use anyhow::Context;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use nexus_host::{handler_files, Artifact, Cache, Runtime, TierStats};
use serde_json::{json, Value};

use super::settings::Settings;
use super::{escape_controls, host, usage, Failure};

#[derive(Subcommand)]
pub(crate) enum CacheCommand {
    /// Entries and bytes per artifact kind on disk: in the cache directory
    /// and, when `seed_dir` is set, in the seed.
    Stats(CacheArgs),
    /// Check every file's header and checksum, removing damaged ones; exits
    /// 1 if any was damaged.
    Verify(CacheArgs),
    /// Remove every file the cache owns, and nothing else in the directory.
    Clear(CacheArgs),
    /// Compile the guest (with what snapshot builds take from the cache),
    /// and each `--handlers` file's bytecode and snapshot, into the cache
    /// directory, then exit: a later `nexus serve` on it compiles nothing,
    /// and builds a new handler's snapshot in under a second. Exits 1 if a
    /// handler does not compile.
    Warm(WarmArgs),
}

#[derive(Args)]
pub(crate) struct WarmArgs {
    /// Every `*.js` file here, as `nexus serve --handlers` registers them.
    #[arg(long, value_name = "DIR")]
    handlers: Option<PathBuf>,
    #[command(flatten)]
    args: CacheArgs,
}

#[derive(Args)]
pub(crate) struct CacheArgs {
    #[command(flatten)]
    settings: Settings,
    /// Print JSON; `stats` prints
    /// {"bytecode": {"entries": N, "bytes": N}, "components": {...}, ...},
    /// with the same for the seed under "seed" when one is set.
    #[arg(long)]
    json: bool,
}

pub(crate) fn cache(command: CacheCommand) -> Result<(), Failure> {
    let args = match &command {
        CacheCommand::Stats(a) | CacheCommand::Verify(a) | CacheCommand::Clear(a) => a,
        CacheCommand::Warm(warm_args) => return warm(warm_args),
    };
    let json = args.json;
    let config = Settings::resolve(args.settings.clone())?;
    let dir = config.cache_dir.display().to_string();
    // Only the disk tier matters here: no memory, no engine. Looking must not
    // write: nothing is created, nothing evicted to the bound.
    let cache = Cache::inspect(&config.cache_dir, config.max_disk_cache_bytes);
    if let Some(why) = cache.disk_unavailable() {
        return Err(usage(anyhow::anyhow!(
            "cannot use {dir} as a cache directory: {why}"
        )));
    }
    match command {
        CacheCommand::Stats(_) => {
            // The seed is looked up after the cache directory: its figures
            // belong beside them.
            let cache = match &config.seed_dir {
                Some(seed) => cache.with_seed(seed),
                None => cache,
            };
            let seed = config.seed_dir.as_ref().map(|s| s.display().to_string());
            let seed_stats = |k| cache.seed_stats(k).unwrap_or_default();
            if json {
                let mut report = kinds_json(|k| cache.disk_stats(k));
                report["dir"] = json!(dir);
                report["capacity_bytes"] = json!(config.max_disk_cache_bytes);
                if let Some(seed) = seed {
                    report["seed"] = match cache.seed_unavailable() {
                        Some(why) => json!({ "dir": seed, "unavailable": why }),
                        None => {
                            let mut tier = kinds_json(seed_stats);
                            tier["dir"] = json!(seed);
                            tier
                        }
                    };
                }
                println!("{report}");
            } else {
                println!("{dir} (bound: {} bytes)", config.max_disk_cache_bytes);
                print_kinds(|k| cache.disk_stats(k));
                if let Some(seed) = seed {
                    match cache.seed_unavailable() {
                        Some(why) => println!("seed {seed}: not used: {}", escape_controls(why)),
                        None => {
                            println!("seed {seed} (read only)");
                            print_kinds(seed_stats);
                        }
                    }
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
        CacheCommand::Warm(_) => unreachable!("answered above"),
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

/// `{"bytecode": {"entries", "bytes"}, "components": {...}}` of one tier.
/// The text form of the same figures is [`print_kinds`].
fn kinds_json(stats: impl Fn(Artifact) -> TierStats) -> Value {
    let kind = |k| {
        let s = stats(k);
        json!({ "entries": s.entries, "bytes": s.bytes })
    };
    json!({ "bytecode": kind(Artifact::Bytecode), "components": kind(Artifact::Component) })
}

fn print_kinds(stats: impl Fn(Artifact) -> TierStats) {
    for k in [Artifact::Bytecode, Artifact::Component] {
        let s = stats(k);
        println!(
            "  {:<10} {:>6} entries {:>12} bytes",
            k.as_str(),
            s.entries,
            s.bytes
        );
    }
}

/// `nexus cache warm`: the guest, then each handler's bytecode and snapshot
/// (whatever its top level reads: `snapshot = auto` decides at serve time,
/// from what is stored beside it), through the cache.
fn warm(warm: &WarmArgs) -> Result<(), Failure> {
    let config = Settings::resolve(warm.args.settings.clone())?;
    let dir = config.cache_dir.display().to_string();
    let runtime = Runtime::new(config)?;
    if let Some(why) = runtime.cache().disk_unavailable() {
        return Err(usage(anyhow::anyhow!("cannot warm {dir}: {why}")));
    }
    let mut handlers = Vec::new();
    let mut failed = false;
    let files = match &warm.handlers {
        Some(folder) => handler_files(folder)
            .with_context(|| format!("cannot read the handlers directory {}", folder.display()))
            .map_err(usage)?,
        None => Vec::new(),
    };
    for (name, path) in files {
        let source = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(usage)?;
        let entry = match runtime.compile(&format!("{name}.js"), &source) {
            Err(e) => {
                failed = true;
                json!({ "name": name, "error": e.to_string() })
            }
            Ok(compiled) => match runtime.prepare(&compiled) {
                Ok(prepared) => json!({
                    "name": name,
                    "bytecode": compiled.origin.as_str(),
                    "snapshot": prepared.origin.as_str(),
                    "snapshot_reason": prepared.observed.reason(),
                }),
                // Still served, on the plain path: not a failure of warm.
                Err(e) => json!({
                    "name": name,
                    "bytecode": compiled.origin.as_str(),
                    "snapshot_error": e.to_string(),
                }),
            },
        };
        handlers.push(entry);
    }
    runtime.cache().flush();
    let guest = runtime.component_origin().as_str();
    if warm.args.json {
        println!(
            "{}",
            json!({ "dir": dir, "guest": guest, "handlers": handlers })
        );
    } else {
        println!("{dir}: guest {guest}");
        for h in &handlers {
            let name = h["name"].as_str().unwrap_or_default();
            match (&h["error"], &h["snapshot_error"]) {
                (Value::String(e), _) => {
                    println!("  {name}: does not compile: {}", escape_controls(e))
                }
                (_, Value::String(e)) => println!(
                    "  {name}: bytecode {}; no snapshot (its calls will take the plain path): {}",
                    h["bytecode"].as_str().unwrap_or_default(),
                    escape_controls(e)
                ),
                _ => println!(
                    "  {name}: bytecode {}, snapshot {}",
                    h["bytecode"].as_str().unwrap_or_default(),
                    h["snapshot"].as_str().unwrap_or_default()
                ),
            }
        }
    }
    if failed {
        return Err(Failure::Found);
    }
    Ok(())
}
