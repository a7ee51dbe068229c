//! Every invocation starts from a fresh instance.

use std::time::Duration;

use nexus_host::{Runtime, StatsScope};
use serde_json::{json, Value};

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

/// `Nexus.stats()` shows a handler its own figures by default (its calls
/// and compiles; the caches, every tenant's, as zero), and the host's only
/// under `stats_scope = host`.
#[test]
fn handlers_read_their_own_figures_unless_the_host_allows_more() {
    for scope in [StatsScope::Handler, StatsScope::Host] {
        // A runtime of its own, so no other test moves the counters.
        let mut config = scratch_config();
        config.stats_scope = scope;
        let rt = Runtime::new(config).unwrap();
        let stats = rt
            .compile("stats.js", "export default () => Nexus.stats()")
            .unwrap();
        let thrower = rt
            .compile("throw.js", "export default () => { throw 1 }")
            .unwrap();
        rt.invoke(&stats, "{}").unwrap();
        rt.invoke(&thrower, "{}").unwrap_err();
        rt.invoke(&thrower, "{}").unwrap_err();

        let seen: Value = serde_json::from_str(&rt.invoke(&stats, "{}").unwrap().output).unwrap();
        // The running invocation is counted once it ends.
        let figures = (
            &seen["compiles"],
            &seen["executions"],
            &seen["failures"],
            &seen["host_wide"],
        );
        match scope {
            StatsScope::Handler => {
                assert_eq!(figures, (&json!(1), &json!(1), &json!(0), &json!(false)));
                assert_eq!(seen["bytecode"]["memory"]["capacity_bytes"], 0, "{seen}");
                assert_eq!(seen["components"]["memory"]["entries"], 0, "{seen}");
            }
            StatsScope::Host => {
                assert_eq!(figures, (&json!(2), &json!(3), &json!(2), &json!(true)));
                assert!(
                    seen["bytecode"]["memory"]["capacity_bytes"].as_u64() > Some(0),
                    "{seen}"
                );
            }
        }
        // The library's own record is always the host's.
        let after = rt.stats();
        assert_eq!(
            (
                after.compiles,
                after.executions,
                after.failures,
                after.host_wide
            ),
            (2, 4, 2, true)
        );
    }
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
