//! `isolation = reuse`: a handler's calls run in an instance earlier calls
//! of the same version used, so module state persists between them, and
//! the instance is dropped after a failed call, at `reuse_max_calls`, past
//! `reuse_max_memory_percent`, idle past `reuse_idle_ms`, and when its
//! handler is replaced.

use super::*;
use crate::support::server::Reply;

/// Counts its calls in module state; draws a random number per call.
const COUNTER: &str = r#"let n = 0;
export default (ctx) => {
  n += 1;
  if (ctx.fail) throw new Error("asked to fail");
  if (ctx.spin) for (;;) {}
  if (ctx.grow) globalThis.kept = new Uint8Array(ctx.grow);
  if (ctx.big) return { n, big: "x".repeat(ctx.big) };
  return { n, r: Math.random() };
}"#;

fn call(server: &Server, name: &str, input: &str) -> Reply {
    server.request(
        "POST",
        &format!("/handlers/{name}/invoke"),
        input.as_bytes(),
    )
}

/// The call count the handler's module state had reached, and the header
/// saying which instance ran it.
fn count(server: &Server, name: &str) -> (u64, String) {
    let reply = call(server, name, "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let instance = reply.header("x-nexus-instance").unwrap().to_owned();
    (reply.json()["n"].as_u64().unwrap(), instance)
}

fn counts(server: &Server, name: &str, calls: usize) -> Vec<u64> {
    (0..calls).map(|_| count(server, name).0).collect()
}

fn discarded(server: &Server, reason: &str) -> f64 {
    let scrape = server.request("GET", "/metrics", b"").text();
    sample(
        &scrape,
        &format!(r#"nexus_instances_discarded_total{{reason="{reason}"}}"#),
    )
}

#[test]
fn module_state_persists_between_calls_of_one_version_only() {
    // Both paths: the shared guest evaluating the bytecode once (`off`),
    // and the handler's own snapshot (`eager`).
    for snapshot in ["off", "eager"] {
        let server = serve(
            &[("counter.js", COUNTER), ("fresh.js", COUNTER)],
            &[
                "--snapshot",
                snapshot,
                "--handler-isolation",
                "counter=reuse",
            ],
        );
        let first = count(&server, "counter");
        assert_eq!(first, (1, "fresh".to_owned()), "snapshot={snapshot}");
        assert_eq!(count(&server, "counter"), (2, "reused".to_owned()));
        // Math.random is reseeded per call, not replayed from the instance.
        let draws: std::collections::BTreeSet<String> = (0..5)
            .map(|_| call(&server, "counter", "{}").json()["r"].to_string())
            .collect();
        assert_eq!(draws.len(), 5, "{draws:?}");
        assert_eq!(count(&server, "counter").0, 8);

        // The default: a fresh instance per call, nothing persists.
        assert_eq!(counts(&server, "fresh", 3), [1, 1, 1]);
        assert_eq!(count(&server, "fresh").1, "fresh");
        let shown = server.request("GET", "/handlers/fresh", b"").json();
        assert_eq!(shown["isolation"], "per-call", "{shown}");
        let shown = server.request("GET", "/handlers/counter", b"").json();
        assert_eq!(shown["isolation"], "reuse", "{shown}");

        // Another handler of the same source has its own instances.
        let put = server.request("PUT", "/handlers/other?isolation=reuse", COUNTER.as_bytes());
        assert_eq!(put.status, 201, "{}", put.text());
        assert_eq!(counts(&server, "other", 2), [1, 2]);
        assert_eq!(count(&server, "counter").0, 9);

        // A new version starts from its own module state; the old one's
        // instances are dropped.
        let put = server.request(
            "PUT",
            "/handlers/counter?isolation=reuse",
            COUNTER.as_bytes(),
        );
        assert_eq!(put.status, 200, "{}", put.text());
        assert_eq!(counts(&server, "counter", 2), [1, 2]);
        assert_eq!(discarded(&server, "replaced"), 1.0, "snapshot={snapshot}");

        // Re-registered without the query, the setting applies again.
        let put = server.request("PUT", "/handlers/other", COUNTER.as_bytes());
        assert_eq!(put.status, 200, "{}", put.text());
        assert_eq!(counts(&server, "other", 2), [1, 1]);

        let scrape = server.request("GET", "/metrics", b"").text();
        assert_eq!(sample(&scrape, "nexus_instances_kept"), 1.0, "{scrape}");
        assert_eq!(sample(&scrape, "nexus_instance_reuses_total"), 10.0);
    }
}

#[test]
fn a_failed_call_drops_its_instance() {
    let server = serve(
        &[("counter.js", COUNTER)],
        &[
            "--isolation",
            "reuse",
            "--snapshot",
            "off",
            "--max-memory-bytes",
            "16Mi",
            "--reuse-max-memory-percent",
            "100",
            "--max-output-bytes",
            "1000",
        ],
    );
    assert_eq!(counts(&server, "counter", 2), [1, 2]);
    let thrown = call(&server, "counter", r#"{"fail":true}"#);
    assert_eq!(thrown.status, 500, "{}", thrown.text());
    assert_eq!(counts(&server, "counter", 2), [1, 2]);

    let spun = server.request(
        "POST",
        "/handlers/counter/invoke?timeout_ms=50",
        br#"{"spin":true}"#,
    );
    assert_eq!(spun.status, 504, "{}", spun.text());
    assert_eq!(counts(&server, "counter", 1), [1]);

    // A call that fails with `kind`: the next call finds no instance kept.
    let fails_with = |input: &str, kind: &str| {
        let reply = call(&server, "counter", input);
        assert_eq!(reply.json()["error"]["kind"], kind, "{}", reply.text());
        assert_eq!(counts(&server, "counter", 1), [1]);
    };
    fails_with(r#"{"grow":33554432}"#, "out_of_memory");

    let invalid = call(&server, "counter", "{");
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    assert_eq!(counts(&server, "counter", 1), [1]);

    // The handler returned, but its answer was refused: a failed call too.
    fails_with(r#"{"big":2000}"#, "output_too_large");
    assert_eq!(discarded(&server, "error"), 5.0);
}

#[test]
fn max_calls_memory_and_idle_time_bound_an_instance() {
    let server = serve(
        &[("counter.js", COUNTER)],
        &[
            "--isolation",
            "reuse",
            "--reuse-max-calls",
            "3",
            "--max-memory-bytes",
            "32Mi",
            "--reuse-max-memory-percent",
            "50",
            "--reuse-idle-ms",
            "300",
        ],
    );
    assert_eq!(counts(&server, "counter", 7), [1, 2, 3, 1, 2, 3, 1]);
    assert_eq!(discarded(&server, "max_calls"), 2.0);

    // Growing past half the cap: the call answers, the instance goes.
    let grown = call(&server, "counter", r#"{"grow":20000000}"#);
    assert_eq!(grown.status, 200, "{}", grown.text());
    assert_eq!(grown.json()["n"], 2);
    assert_eq!(counts(&server, "counter", 2), [1, 2]);
    assert_eq!(discarded(&server, "memory"), 1.0);

    // Idle past reuse_idle_ms, it is dropped, even if never called again.
    std::thread::sleep(Duration::from_millis(800));
    let scrape = server.request("GET", "/metrics", b"").text();
    assert_eq!(sample(&scrape, "nexus_instances_kept"), 0.0);
    assert_eq!(discarded(&server, "idle"), 1.0);
    assert_eq!(count(&server, "counter"), (1, "fresh".to_owned()));
}

#[test]
fn reuse_is_asked_for_clearly_or_refused() {
    let server = serve(&[], &["--reuse-max-instances", "0"]);
    for (query, says) in [
        ("isolation=shared", "expected per-call or reuse"),
        ("isolation=reuse&isolation=reuse", "given more than once"),
        ("reuse=1", "takes only snapshot and isolation"),
    ] {
        let reply = server.request("PUT", &format!("/handlers/c?{query}"), COUNTER.as_bytes());
        assert_eq!(reply.status, 400, "{query}");
        assert!(reply.text().contains(says), "{query}: {}", reply.text());
    }
    // With no instance to keep, reuse is per-call, and says so.
    let put = server.request("PUT", "/handlers/c?isolation=reuse", COUNTER.as_bytes());
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(
        server.request("GET", "/handlers/c", b"").json()["isolation"],
        "per-call"
    );
    assert_eq!(counts(&server, "c", 2), [1, 1]);
}

#[test]
fn concurrent_callers_each_get_an_instance_within_the_bound() {
    let server = serve(
        &[("counter.js", COUNTER)],
        &["--isolation", "reuse", "--reuse-max-instances", "2"],
    );
    let total: u64 = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| counts(&server, "counter", 20).len() as u64))
            .collect();
        callers.into_iter().map(|c| c.join().unwrap()).sum()
    });
    assert_eq!(total, 120);
    let scrape = server.request("GET", "/metrics", b"").text();
    let kept = sample(&scrape, "nexus_instances_kept");
    assert!((1.0..=2.0).contains(&kept), "{kept}");
    // Every call ran in a kept instance but the ones that made one.
    let made = 120.0 - sample(&scrape, "nexus_instance_reuses_total");
    let dropped = discarded(&server, "full");
    assert!(
        made >= 1.0 && made == kept + dropped,
        "made {made}, kept {kept}, dropped {dropped}"
    );
}
