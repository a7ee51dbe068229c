//! Every invocation starts from a fresh instance.

use std::time::Duration;

use nexus_host::Runtime;
use serde_json::Value;

use crate::support::{nexus, output, runtime, scratch_config};

#[test]
fn global_state_does_not_survive_an_invocation() {
    let rt = runtime();
    let handler = rt
        .compile(
            "count.js",
            "export default () => { globalThis.count = (globalThis.count || 0) + 1; return globalThis.count; }",
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(rt.invoke(&handler, "{}").unwrap().output, "1");
    }
}

#[test]
fn module_state_does_not_survive_an_invocation() {
    let rt = runtime();
    let handler = rt
        .compile("module-state.js", "let n = 0; export default () => ++n;")
        .unwrap();
    let first = rt.invoke(&handler, "null").unwrap().output;
    let second = rt.invoke(&handler, "null").unwrap().output;
    assert_eq!((first.as_str(), second.as_str()), ("1", "1"));
}

#[test]
fn a_failed_invocation_leaves_the_next_one_fine() {
    let rt = runtime();
    let bad = rt
        .compile(
            "bad.js",
            "export default () => { globalThis.leak = 1; throw new Error('x'); }",
        )
        .unwrap();
    let good = rt
        .compile("good.js", "export default () => typeof globalThis.leak")
        .unwrap();
    assert!(rt.invoke(&bad, "{}").is_err());
    assert_eq!(rt.invoke(&good, "{}").unwrap().output, r#""undefined""#);
}

#[test]
fn handlers_read_the_runtimes_own_figures() {
    // A runtime of its own, so no other test moves the counters.
    let rt = Runtime::new(scratch_config()).unwrap();
    let stats = rt
        .compile("stats.js", "export default () => Nexus.stats()")
        .unwrap();
    let thrower = rt
        .compile("throw.js", "export default () => { throw 1 }")
        .unwrap();
    rt.invoke(&stats, "{}").unwrap();
    rt.invoke(&thrower, "{}").unwrap_err();

    let seen: Value = serde_json::from_str(&rt.invoke(&stats, "{}").unwrap().output).unwrap();
    assert_eq!(seen["compiles"], 2);
    // The running invocation is counted once it ends.
    assert_eq!(seen["executions"], 2);
    assert_eq!(seen["failures"], 1);
    assert_eq!(seen["bytecode"]["memory"]["hits"], 0);

    let after = rt.stats();
    assert_eq!(
        (after.compiles, after.executions, after.failures),
        (2, 3, 1)
    );
}

#[test]
fn randomness_and_time_are_fresh_per_invocation() {
    let rt = crate::support::runtime();
    let h = rt
        .compile(
            "fresh.js",
            "export default () => ({ r: Math.random(), t: Date.now() })",
        )
        .unwrap();
    let first: Value = serde_json::from_str(&rt.invoke(&h, "{}").unwrap().output).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let second: Value = serde_json::from_str(&rt.invoke(&h, "{}").unwrap().output).unwrap();
    assert_ne!(first["r"], second["r"]);
    assert!(second["t"].as_f64().unwrap() > first["t"].as_f64().unwrap());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!(
        (now_ms - second["t"].as_f64().unwrap()).abs() < 60_000.0,
        "Date.now() is the wall clock"
    );
}

#[test]
fn math_random_differs_between_processes_sharing_one_cached_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("random.js");
    std::fs::write(
        &handler,
        "export default () => [Math.random(), Math.random()]",
    )
    .unwrap();
    let run = || {
        let (mut cmd, _c) = nexus();
        cmd.env("NEXUS_LOG", "nexus::cache=debug")
            .arg("run")
            .arg(&handler)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"));
        let out = output(&mut cmd);
        assert!(out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        let numbers: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            numbers.iter().all(|n| (0.0..1.0).contains(n)),
            "{numbers:?}"
        );
        assert_ne!(numbers[0], numbers[1]);
        (numbers, stderr)
    };
    let (first, _) = run();
    let (second, log) = run();
    assert!(
        log.contains("artifact=\"component\" origin=\"disk\""),
        "{log}"
    );
    assert_ne!(first, second, "two processes, one snapshot, two sequences");
}
