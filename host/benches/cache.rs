//! `just bench` (cache): cold vs disk-warm vs memory-warm, on a small
//! handler and a ~1.4 MB one, side by side in one run; then the two
//! artifacts' compile vs verified load, and bytecode sizes per write option.
//!
//! Needs the compat handlers: `node tests/compat/make-handlers.mjs
//! target/bench-handlers` (the `bench` recipe runs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nexus_host::{CompileOptions, Config, Origin, Runtime};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn config(dir: &Path) -> Config {
    Config {
        cache_dir: dir.to_owned(),
        ..Config::default()
    }
}

fn nexus_run(handler: &Path, input: &Path, cache: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .arg("run")
        .arg(handler)
        .arg("--input-file")
        .arg(input)
        .arg("--cache-dir")
        .arg(cache)
        .env("NEXUS_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    common::on_big_stack(bench);
}

fn bench() {
    let root = common::root();
    let handlers = root.join("target/bench-handlers");
    if !handlers.join("combined.js").exists() {
        eprintln!("missing {}: run `just bench`", handlers.display());
        std::process::exit(2);
    }
    let cases: [(&str, PathBuf, PathBuf); 2] = [
        (
            "small (examples/hello.js)",
            root.join("examples/hello.js"),
            root.join("tests/vectors/hello.input.json"),
        ),
        (
            "1.4 MB (combined.js)",
            handlers.join("combined.js"),
            handlers.join("combined.input.json"),
        ),
    ];
    let scratch = tempfile::tempdir().unwrap();

    println!("## Cache: a new process (`nexus run`) and the same process\n");
    println!("| handler | size | cold (empty cache) | disk-warm (new process) | memory-warm (same process) | cold / disk-warm |");
    println!("|---|---|---|---|---|---|");
    for (i, (label, handler, input)) in cases.iter().enumerate() {
        let size = std::fs::metadata(handler).unwrap().len();
        let cold = median(
            (0..5)
                .map(|run| {
                    let dir = scratch.path().join(format!("cold-{i}-{run}"));
                    time(|| nexus_run(handler, input, &dir))
                })
                .collect(),
        );
        let warm_dir = scratch.path().join(format!("warm-{i}"));
        nexus_run(handler, input, &warm_dir);
        let disk_warm = median(
            (0..10)
                .map(|_| time(|| nexus_run(handler, input, &warm_dir)))
                .collect(),
        );

        let source = std::fs::read_to_string(handler).unwrap();
        let input_json = std::fs::read_to_string(input).unwrap();
        let rt = Runtime::new(config(&warm_dir)).unwrap();
        rt.compile("h.js", &source).unwrap();
        let memory_warm = median(
            (0..20)
                .map(|_| {
                    time(|| {
                        let h = rt.compile("h.js", &source).unwrap();
                        assert_eq!(h.origin, Origin::Memory);
                        rt.invoke(&h, &input_json).unwrap();
                    })
                })
                .collect(),
        );
        println!(
            "| {label} | {} KiB | {} | {} | {} | {:.1}× |",
            size / 1024,
            ms(cold),
            ms(disk_warm),
            ms(memory_warm),
            cold.as_secs_f64() / disk_warm.as_secs_f64()
        );
    }

    println!("\n## Compile vs verified load, in process\n");
    println!("| artifact | compile | verified load from disk | memory | compile / load |");
    println!("|---|---|---|---|---|");
    let component_compile = median(
        (0..3)
            .map(|n| {
                let dir = scratch.path().join(format!("component-cold-{n}"));
                time(|| {
                    let rt = Runtime::new(config(&dir)).unwrap();
                    assert_eq!(rt.component_origin(), Origin::Compiled);
                })
            })
            .collect(),
    );
    let warm = scratch.path().join("component-warm");
    drop(Runtime::new(config(&warm)).unwrap());
    let component_load = median(
        (0..10)
            .map(|_| {
                time(|| {
                    let rt = Runtime::new(config(&warm)).unwrap();
                    assert_eq!(rt.component_origin(), Origin::Disk);
                })
            })
            .collect(),
    );
    println!(
        "| guest component (`Runtime::new`) | {} | {} | n/a | {:.0}× |",
        ms(component_compile),
        ms(component_load),
        component_compile.as_secs_f64() / component_load.as_secs_f64()
    );
    for (label, handler, _) in &cases {
        let source = std::fs::read_to_string(handler).unwrap();
        let rt = Runtime::new(config(&warm)).unwrap();
        let compile = median(
            (0..5)
                .map(|n| {
                    time(|| {
                        assert_eq!(
                            rt.compile(&format!("c{n}.js"), &source).unwrap().origin,
                            Origin::Compiled
                        )
                    })
                })
                .collect(),
        );
        drop(rt);
        let load = median(
            (0..5)
                .map(|n| {
                    let rt = Runtime::new(config(&warm)).unwrap();
                    time(|| {
                        assert_eq!(
                            rt.compile(&format!("c{n}.js"), &source).unwrap().origin,
                            Origin::Disk
                        )
                    })
                })
                .collect(),
        );
        let rt = Runtime::new(config(&warm)).unwrap();
        rt.compile("c0.js", &source).unwrap();
        let memory = median(
            (0..20)
                .map(|_| {
                    time(|| {
                        assert_eq!(rt.compile("c0.js", &source).unwrap().origin, Origin::Memory)
                    })
                })
                .collect(),
        );
        println!(
            "| bytecode, {label} | {} | {} | {} | {:.0}× |",
            ms(compile),
            ms(load),
            ms(memory),
            compile.as_secs_f64() / load.as_secs_f64()
        );
    }

    println!("\n## Bytecode size per write option (source bytes → bytecode bytes)\n");
    println!("| handler | source | full | strip source (default) | strip debug | strip both |");
    println!("|---|---|---|---|---|---|");
    let sized = [
        ("examples/hello.js", root.join("examples/hello.js")),
        ("compat marked", handlers.join("marked.js")),
        ("compat lodash", handlers.join("lodash.js")),
        ("combined (1.4 MB)", handlers.join("combined.js")),
        ("compat typescript", handlers.join("typescript.js")),
    ];
    let options = [(false, false), (true, false), (false, true), (true, true)];
    for (label, path) in sized {
        let source = std::fs::read_to_string(&path).unwrap();
        let mut row = format!("| {label} | {} |", source.len());
        for (strip_source, strip_debug) in options {
            let dir = scratch
                .path()
                .join(format!("sizes-{strip_source}-{strip_debug}"));
            let rt = Runtime::new(Config {
                compile_options: CompileOptions {
                    strip_source,
                    strip_debug,
                },
                ..config(&dir)
            })
            .unwrap();
            let len = rt.compile("h.js", &source).unwrap().bytecode.len();
            row.push_str(&format!(
                " {len} ({:.2}×) |",
                len as f64 / source.len() as f64
            ));
        }
        println!("{row}");
    }
}
