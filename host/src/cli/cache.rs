//! `nexus cache stats|verify|clear`.

use anyhow::Context;
use clap::{Args, Subcommand};
use nexus_host::{Cache, Kind};
use serde_json::json;

use super::settings::Settings;
use super::{host, usage, Failure};

#[derive(Subcommand)]
pub(crate) enum CacheCommand {
    /// Entries and bytes per artifact kind on disk.
    Stats(CacheArgs),
    /// Check every file's header and checksum, removing damaged ones; exits
    /// 1 if any was damaged.
    Verify(CacheArgs),
    /// Remove every file the cache owns, and nothing else in the directory.
    Clear(CacheArgs),
}

#[derive(Args)]
pub(crate) struct CacheArgs {
    #[command(flatten)]
    settings: Settings,
    /// Print JSON; `stats` prints
    /// {"bytecode": {"entries": N, "bytes": N}, "components": {...}, ...}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn cache(command: CacheCommand) -> Result<(), Failure> {
    let args = match &command {
        CacheCommand::Stats(a) | CacheCommand::Verify(a) | CacheCommand::Clear(a) => a,
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
