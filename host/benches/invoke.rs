//! `just bench` (invoke): a trivial handler (`bench/trivial.js`), a fresh
//! instance per call, against the same handler in a fresh Node `vm` context
//! per call (`bench/node-vm-peer.mjs`), measured side by side in one run.
//! Nexus runs it both ways: the plain path (the guest loads and evaluates
//! the module's bytecode in every call) and a prepared handler (its own
//! snapshot, the module evaluated once, before it).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_host::{Config, Error, Invocation, Runtime};

const ITERATIONS: usize = 2000;
const BLOCK: usize = 200;
const SECONDS: u64 = 2;
const INPUT: &str = r#"{"name":"bench"}"#;

type Invoke = Arc<dyn Fn() -> Result<Invocation, Error> + Send + Sync>;

/// Medians and tails of one way of invoking, and its throughput.
struct Measured {
    median: f64,
    p90: f64,
    p99: f64,
    phases: [f64; 4],
    per_second: f64,
}

/// Measures each way of invoking. They take turns in blocks of
/// [`BLOCK`] calls, so a noisy stretch of the machine lands on all of them
/// alike while each block runs one component, as a busy handler does.
fn measure(ways: &[Invoke]) -> Vec<Measured> {
    for _ in 0..ITERATIONS / 10 {
        for invoke in ways {
            invoke().unwrap();
        }
    }
    let mut samples = vec![Vec::with_capacity(ITERATIONS); ways.len()];
    let mut phases: Vec<[Vec<Duration>; 4]> = ways.iter().map(|_| Default::default()).collect();
    for _ in 0..ITERATIONS / BLOCK {
        for (i, invoke) in ways.iter().enumerate() {
            for _ in 0..BLOCK {
                let t = Instant::now();
                let timing = invoke().unwrap().timing;
                samples[i].push(t.elapsed());
                for (phase, part) in phases[i].iter_mut().zip(timing.phases()) {
                    phase.push(part);
                }
            }
        }
    }
    ways.iter()
        .zip(samples.iter_mut().zip(phases))
        .map(|(invoke, (samples, phases))| {
            let [median, p90, p99] = [0.5, 0.9, 0.99].map(|q| quantile_us(samples, q));
            Measured {
                median,
                p90,
                p99,
                phases: phases.map(|mut p| quantile_us(&mut p, 0.5)),
                per_second: throughput(invoke),
            }
        })
        .collect()
}

/// Invocations per second on two threads.
fn throughput(invoke: &Invoke) -> f64 {
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let invoke = invoke.clone();
            std::thread::Builder::new()
                .stack_size(nexus_host::THREAD_STACK)
                .spawn(move || {
                    let mut n = 0u64;
                    while Instant::now() < end {
                        invoke().unwrap();
                        n += 1;
                    }
                    n
                })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.unwrap().join().unwrap())
        .sum::<u64>() as f64
        / SECONDS as f64
}

fn main() {
    common::on_big_stack(bench);
}

fn bench() {
    let root = common::root();
    let source = std::fs::read_to_string(root.join("bench/trivial.js")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(
        Runtime::new(Config {
            cache_dir: dir.path().to_owned(),
            ..Config::default()
        })
        .unwrap(),
    );
    let handler = rt.compile("trivial.js", &source).unwrap();
    let prepared = rt.prepare(&handler).unwrap();

    let ways: [Invoke; 2] = [
        {
            let (rt, handler) = (rt.clone(), handler.clone());
            Arc::new(move || rt.invoke(&handler, INPUT))
        },
        {
            let rt = rt.clone();
            Arc::new(move || rt.invoke_prepared(&prepared, INPUT, None))
        },
    ];
    let [plain, ready]: [Measured; 2] = measure(&ways).try_into().ok().unwrap();

    let node = Command::new("node")
        .arg(root.join("bench/node-vm-peer.mjs"))
        .args([ITERATIONS.to_string(), SECONDS.to_string()])
        .output()
        .expect("node runs the peer benchmark");
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    let node: serde_json::Value = serde_json::from_slice(&node.stdout).unwrap();
    let node_median = node["median_us"].as_f64().unwrap();
    let node_per_second = node["per_second_2_threads"].as_f64().unwrap();

    // How late a timeout fires: an endless loop under a 50 ms deadline.
    let looping = rt
        .compile("loop.js", "export default () => { for (;;) {} }")
        .unwrap();
    let deadline = Duration::from_millis(50);
    let mut late: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let e = rt
                .invoke_with_timeout(&looping, "{}", Some(deadline))
                .unwrap_err();
            assert_eq!(e.kind(), "timeout");
            t.elapsed().saturating_sub(deadline)
        })
        .collect();
    late.sort();

    println!("## Invocation: a trivial handler, a fresh instance / context per call\n");
    println!(
        "| measure | Nexus, plain (fresh wasm instance) | Nexus, prepared (fresh instance of its own snapshot) | Node `vm` (fresh context) | Node / Nexus plain | Node / Nexus prepared |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| median per invocation ({ITERATIONS} calls) | {:.1} µs (p90 {:.1}, p99 {:.1}) | {:.1} µs (p90 {:.1}, p99 {:.1}) | {node_median:.1} µs (p90 {:.1}, p99 {:.1}) | {:.2}× | {:.2}× |",
        plain.median,
        plain.p90,
        plain.p99,
        ready.median,
        ready.p90,
        ready.p99,
        node["p90_us"].as_f64().unwrap(),
        node["p99_us"].as_f64().unwrap(),
        node_median / plain.median,
        node_median / ready.median,
    );
    println!(
        "| invocations per second, 2 threads, {SECONDS} s | {:.0} | {:.0} | {node_per_second:.0} | {:.2}× | {:.2}× |",
        plain.per_second,
        ready.per_second,
        plain.per_second / node_per_second,
        ready.per_second / node_per_second,
    );
    println!("\nWhere a Nexus invocation's time goes (phase medians, same {ITERATIONS} calls):\n");
    println!("| path | setup (store, limits) | instantiate | call (the guest's own work) | teardown (memory and table reset) |");
    println!("|---|---|---|---|---|");
    for (path, m) in [("plain", &plain), ("prepared", &ready)] {
        let cells: Vec<String> = m.phases.iter().map(|us| format!("{us:.1} µs")).collect();
        println!("| {path} | {} |", cells.join(" | "));
    }
    println!(
        "\nTimeout: an endless loop under a {} ms deadline was stopped a median {:.2} ms late (max {:.2} ms, 20 runs).",
        deadline.as_millis(),
        late[late.len() / 2].as_secs_f64() * 1e3,
        late[late.len() - 1].as_secs_f64() * 1e3
    );
}

/// The `q` quantile of `samples`, in microseconds.
fn quantile_us(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6
}
