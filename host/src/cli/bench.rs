//! `nexus bench`: a handler N times in steady state, a fresh instance each.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::settings::Settings;
use super::{classify, compile_file, Failure};

#[derive(Args)]
pub(crate) struct BenchArgs {
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

pub(crate) fn bench(args: BenchArgs) -> Result<(), Failure> {
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
