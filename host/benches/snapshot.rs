//! `just bench` (snapshot): what building a handler's snapshot costs, the
//! first time in a process (which instruments and compiles the guest for
//! Wizer, once) and every time after (the handler's evaluation, the snapshot
//! and Cranelift only), for the trivial handler and the lodash bundle of
//! `just compat`. Each build is of a new handler name, so of new bytecode:
//! nothing comes from the cache. Prints a markdown table of medians.

mod common;

use std::time::{Duration, Instant};

use nexus_host::{Config, Runtime};

/// Builds per handler after the first, in each process.
const LATER: usize = 3;
/// Processes (runtimes), whose first builds give the first column.
const PROCESSES: usize = 3;

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    common::on_big_stack(bench);
}

fn bench() {
    let root = common::root();
    let handlers = [
        ("trivial", root.join("bench/trivial.js")),
        ("lodash", root.join("target/bench-handlers/lodash.js")),
    ];
    let cache = tempfile::tempdir().unwrap();
    let config = Config {
        cache_dir: cache.path().to_owned(),
        // Snapshots of new bytecode miss anyway; no memory tier keeps the
        // guest's runs honest.
        max_cache_size_bytes: 0,
        timeout: Duration::from_secs(30),
        ..Config::default()
    };
    println!("| handler | first build in a process (instruments the guest) | each later build | first / later |");
    println!("|---|---|---|---|");
    // The guest compiled into the disk cache: no process below pays for it.
    drop(Runtime::new(config.clone()).unwrap());
    let mut round = 0;
    for (name, path) in &handlers {
        let Ok(source) = std::fs::read_to_string(path) else {
            println!(
                "| {name} | {} missing: run `just bench` | | |",
                path.display()
            );
            continue;
        };
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for _ in 0..PROCESSES {
            let runtime = Runtime::new(config.clone()).unwrap();
            for build in 0..=LATER {
                round += 1;
                let handler = runtime
                    .compile(&format!("{name}-{round}.js"), &source)
                    .unwrap();
                let start = Instant::now();
                runtime.prepare(&handler).unwrap();
                let took = start.elapsed();
                if build == 0 { &mut first } else { &mut later }.push(took);
            }
        }
        let (first, later) = (median(first), median(later));
        println!(
            "| {name} | {first:.0} ms | {later:.0} ms | {:.1}× |",
            first / later
        );
    }
}
