//! `nexus bench`: a handler N times in steady state, a fresh instance each,
//! registered and called as `nexus serve` calls it (the registry's routing
//! and per-handler counting included).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;
use nexus_host::{
    Handler, HandlerOptions, Handlers, InvocationPath, Isolation, Runtime, Snapshot,
    SnapshotPolicy, Timing,
};
use serde_json::json;

use super::settings::Settings;
use super::{read_file, Failure};

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// The handler: an ES module with a default-export function.
    file: PathBuf,
    /// The input, as JSON text.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    input: String,
    /// Measured invocations, after a warm-up of a tenth as many (at least
    /// 10) [range: 1 to 1000000]
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    iterations: u32,
    /// Give the handler its own pre-initialized component first (its module
    /// evaluated once, before the snapshot; costs seconds unless cached),
    /// and run that: see `Runtime::prepare`.
    #[arg(long)]
    prepared: bool,
    /// Register the handler with `isolation = reuse`: calls run in an
    /// instance earlier calls used (within `reuse_max_calls`), its module
    /// state kept between them.
    #[arg(long)]
    reuse: bool,
    /// Print JSON: {"median_us", "p90_us", "p99_us", "per_second", "iterations",
    /// "path" (`plain` or `prepared`: the path every call took), "reused"
    /// (the share of calls that ran in an instance an earlier call used),
    /// "phases_us": {"setup", "instantiate", "call", "teardown"}} (phase medians).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: Settings,
}

pub(crate) fn bench(args: BenchArgs) -> Result<(), Failure> {
    let source = read_file(&args.file).map_err(super::usage)?;
    let runtime = Arc::new(Runtime::new(args.settings.resolve()?)?);
    let handlers = Handlers::new(runtime);
    let name = super::handler_name(&args.file);
    let name = registered_name(name.strip_suffix(".js").unwrap_or(&name));
    let options = HandlerOptions {
        snapshot: Some(match args.prepared {
            true => SnapshotPolicy::Eager,
            false => SnapshotPolicy::Off,
        }),
        isolation: Some(match args.reuse {
            true => Isolation::Reuse,
            false => Isolation::PerCall,
        }),
    };
    let (handler, _) = handlers.register_with(&name, &source, options)?;
    if args.prepared {
        snapshotted(&handler)?;
    }
    let invoke = || handlers.invoke(&handler, &args.input, None);
    let warm_up = (args.iterations / 10).max(10);
    for _ in 0..warm_up {
        invoke()?;
    }
    let n = args.iterations as usize;
    let mut samples = Vec::with_capacity(n);
    let mut paths = std::collections::BTreeSet::new();
    let mut reused = 0u32;
    let mut phases: [Vec<Duration>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    let start = Instant::now();
    for _ in 0..args.iterations {
        let t = Instant::now();
        let invocation = invoke()?;
        samples.push(t.elapsed());
        paths.insert(invocation.path.as_str());
        reused += u32::from(invocation.reused);
        let timing = invocation.timing;
        for (phase, part) in phases.iter_mut().zip(timing.phases()) {
            phase.push(part);
        }
    }
    let total = start.elapsed();
    // The snapshot worker holds the runtime past the end of this function:
    // what the cache has yet to write is written now, for the next run.
    handlers.runtime().cache().flush();
    let [median, p90, p99] = [0.5, 0.9, 0.99].map(|q| quantile_us(&mut samples, q));
    let phases = phases.map(|mut p| quantile_us(&mut p, 0.5));
    let per_second = args.iterations as f64 / total.as_secs_f64();
    let report = json!({
        "median_us": median,
        "p90_us": p90,
        "p99_us": p99,
        "per_second": per_second,
        "iterations": args.iterations,
        "path": paths.into_iter().collect::<Vec<_>>().join(","),
        "reused": f64::from(reused) / f64::from(args.iterations),
        "phases_us": Timing::PHASES.into_iter().zip(phases).collect::<std::collections::BTreeMap<_, _>>(),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{}: {} iterations, {}\n  \
             median {median:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs\n  \
             {per_second:.0} invocations/s (one thread)\n  \
             phase medians: {}",
            args.file.display(),
            args.iterations,
            match args.reuse {
                true => format!("{reused} in a reused instance"),
                false => "a fresh instance each".to_owned(),
            },
            Timing::PHASES
                .iter()
                .zip(phases)
                .map(|(name, us)| format!("{name} {us:.1} µs"))
                .collect::<Vec<_>>()
                .join("  "),
        );
    }
    Ok(())
}

/// A name the registry takes for a handler file's stem: lowercase, with
/// anything else a name may not hold as `-`. Bench numbers do not depend on
/// it (beyond the stack traces' file name).
fn registered_name(stem: &str) -> String {
    let mut name: String = stem
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '-',
        })
        .take(64)
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name.insert(0, 'h');
        name.truncate(64);
    }
    name
}

/// Waits for `handler`'s snapshot, which registering it under `eager`
/// queued.
fn snapshotted(handler: &Handler) -> Result<(), Failure> {
    loop {
        if handler.path() == InvocationPath::Prepared {
            return Ok(());
        }
        match handler.snapshot() {
            Snapshot::Failed(why) | Snapshot::Refused(why) => {
                return Err(super::host(anyhow!("the handler's snapshot failed: {why}")))
            }
            Snapshot::Off => {
                return Err(super::usage(anyhow!(
                    "--prepared needs snapshots, and max_snapshots = 0 turns them off"
                )))
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The `q` quantile of `samples`, in microseconds.
fn quantile_us(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6
}
