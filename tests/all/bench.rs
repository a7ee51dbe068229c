//! `nexus bench`: percentiles and phases, on the plain and prepared paths.

use serde_json::Value;

use crate::support::{self, nexus, output};

#[test]
fn nexus_bench_reports_percentiles() {
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.arg("bench")
            .arg(crate::support::vectors_dir().join("hello.js"))
            .args(["--input", r#"{"name":"b"}"#, "--iterations", "50", "--json"]),
    );
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["iterations"], 50);
    let (median, p90, p99) = (
        report["median_us"].as_f64().unwrap(),
        report["p90_us"].as_f64().unwrap(),
        report["p99_us"].as_f64().unwrap(),
    );
    assert!(median > 0.0 && median <= p90 && p90 <= p99, "{report}");
    assert!(report["per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(report["path"], "plain", "{report}");
    assert_eq!(report["reused"], 0.0, "a fresh instance each: {report}");
    // Exactly the four phases, each measured. Each call's whole time holds
    // each of its phases, so the median call is at least each phase's
    // median: phases that were not part of the call would break that.
    let phases = report["phases_us"].as_object().unwrap();
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(names, ["call", "instantiate", "setup", "teardown"]);
    for (phase, us) in phases {
        let us = us.as_f64().unwrap();
        assert!(us > 0.0 && us <= median, "{phase}: {report}");
    }
}

#[test]
fn nexus_bench_runs_a_prepared_handler() {
    let (mut cmd, _cache) = nexus();
    let out = output(
        cmd.arg("bench")
            .arg(support::vectors_dir().join("hello.js"))
            .args([
                "--input",
                r#"{"name":"b"}"#,
                "--iterations",
                "20",
                "--prepared",
                "--json",
            ]),
    );
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["iterations"], 20);
    assert!(
        report["median_us"].as_f64().is_some_and(|us| us > 0.0),
        "{report}"
    );
    assert_eq!(
        report["path"], "prepared",
        "every call ran in the handler's own snapshot: {report}"
    );
}

#[test]
fn nexus_bench_reuses_instances_when_asked() {
    let (mut cmd, _cache) = nexus();
    let out = output(
        cmd.arg("bench")
            .arg(support::vectors_dir().join("hello.js"))
            .args(["--input", r#"{"name":"b"}"#, "--iterations", "40"])
            .args(["--reuse", "--json"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The first warm-up call made the instance; every measured one reused it.
    assert_eq!(report["reused"], 1.0, "{report}");
    assert_eq!(report["phases_us"]["instantiate"], 0.0, "{report}");
}

#[test]
fn nexus_bench_refuses_more_iterations_than_it_can_hold() {
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.arg("bench")
            .arg(support::vectors_dir().join("hello.js"))
            .args(["--iterations", "4294967295"]),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1..=1000000"));
}
