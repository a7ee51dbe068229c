//! `just bench` (snapshot): what building a handler's snapshot costs, the
//! first time in a new process and every time after, for the trivial
//! handler and the lodash bundle of `just compat`, with the guest cached.
//! Processes take turns: one whose cache directory lacks the two entries
//! snapshot builds take from it (the guest instrumented for Wizer, and the
//! functions Cranelift compiled for the guest), so its first build compiles
//! both again, and one whose directory has them. Each build is of a new
//! handler name, so of new bytecode: its snapshot never comes from the
//! cache. Prints a markdown table of medians.

mod common;

use std::path::{Path, PathBuf};
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

/// The component entries snapshot builds take from the cache, told apart
/// from the guest's by what they hold: the compiled functions are not an
/// ELF image, and the instrumented guest exports Wizer's accessors.
fn build_aids(cache: &Path) -> Vec<PathBuf> {
    let components = std::fs::read_dir(cache.join("v1/components")).unwrap();
    components
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            let elf = |at: usize| bytes.get(at..at + 4) == Some(b"\x7fELF");
            (!elf(96) && !elf(97)) || bytes.windows(13).any(|w| w == b"wizer_memory_")
        })
        .collect()
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
    println!("| handler | first build in a new process, without them | first build in a new process, with them | each later build | without / with |");
    println!("|---|---|---|---|---|");
    // The guest compiled into the disk cache, with both aids: no process
    // below pays for the guest.
    drop(Runtime::new(config.clone()).unwrap());
    let aids = build_aids(cache.path());
    assert_eq!(aids.len(), 2, "the instrumented guest and the functions");
    let mut round = 0;
    for (name, path) in &handlers {
        let Ok(source) = std::fs::read_to_string(path) else {
            println!(
                "| {name} | {} missing: run `just bench` | | | |",
                path.display()
            );
            continue;
        };
        let (mut without, mut with, mut later) = (Vec::new(), Vec::new(), Vec::new());
        for process in 0..2 * PROCESSES {
            let kept = process % 2 == 1;
            if !kept {
                for aid in &aids {
                    std::fs::remove_file(aid).unwrap();
                }
            }
            let runtime = Runtime::new(config.clone()).unwrap();
            for build in 0..=LATER {
                round += 1;
                let handler = runtime
                    .compile(&format!("{name}-{round}.js"), &source)
                    .unwrap();
                let start = Instant::now();
                runtime.prepare(&handler).unwrap();
                let took = start.elapsed();
                match (build, kept) {
                    (0, false) => without.push(took),
                    (0, true) => with.push(took),
                    _ => later.push(took),
                }
            }
            // The process without them made them again.
            runtime.cache().flush();
        }
        let (without, with, later) = (median(without), median(with), median(later));
        println!(
            "| {name} | {without:.0} ms | {with:.0} ms | {later:.0} ms | {:.1}× |",
            without / with
        );
    }
}
