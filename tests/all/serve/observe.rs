//! What the server shows of itself: `/metrics` and `/stats`.

use super::*;

#[test]
fn metrics_parse_and_move_as_the_server_works() {
    let server = serve(
        &[
            ("double.js", DOUBLE),
            ("loop.js", "export default () => { for (;;) {} }"),
        ],
        &[],
    );
    let scrape = || {
        let reply = server.request("GET", "/metrics", b"");
        assert_eq!(reply.status, 200);
        assert!(reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"));
        reply.text()
    };
    let before = scrape();
    // Every line is a comment or `name{labels} value`.
    for line in before
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (_, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
    }
    for family in [
        "nexus_cache_hits_total",
        "nexus_cache_misses_total",
        "nexus_cache_hit_rate",
        "nexus_cache_bytes",
        "nexus_cache_entries",
        "nexus_cache_evictions_total",
        "nexus_cache_corrupt_total",
        "nexus_cache_disk_errors_total",
        "nexus_compile_duration_seconds",
        "nexus_cache_rebuild_seconds_total",
        "nexus_invocations_total",
        "nexus_invocation_duration_seconds",
        "nexus_instances_active",
        "nexus_handlers",
        "nexus_http_requests_total",
        "nexus_http_request_duration_seconds",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{before}"
        );
    }
    let ok = r#"nexus_invocations_total{outcome="ok"}"#;
    let timeouts = r#"nexus_invocations_total{outcome="timeout"}"#;
    let memory_hits = r#"nexus_cache_hits_total{artifact="bytecode",tier="memory"}"#;
    assert_eq!(sample(&before, r#"nexus_handlers{path="plain"}"#), 2.0);
    // The two compiles' seconds: what the cache did not save.
    let rebuilt = sample(
        &before,
        r#"nexus_cache_rebuild_seconds_total{artifact="bytecode"}"#,
    );
    let compiles = sample(
        &before,
        r#"nexus_compile_duration_seconds_sum{artifact="bytecode"}"#,
    );
    assert!(rebuilt > 0.0 && rebuilt == compiles, "{rebuilt} {compiles}");
    assert_eq!(
        sample(&before, r#"nexus_cache_misses_total{artifact="bytecode"}"#),
        2.0
    );

    assert_eq!(
        server
            .request("POST", "/handlers/double/invoke", br#"{"n":1}"#)
            .status,
        200
    );
    assert_eq!(
        server
            .request("POST", "/handlers/loop/invoke?timeout_ms=100", b"{}")
            .status,
        504
    );
    assert_eq!(
        server
            .request("PUT", "/handlers/double", DOUBLE.as_bytes())
            .status,
        200
    );
    let after = scrape();
    assert_eq!(sample(&after, ok), sample(&before, ok) + 1.0);
    assert_eq!(sample(&after, timeouts), sample(&before, timeouts) + 1.0);
    assert_eq!(
        sample(&after, memory_hits),
        sample(&before, memory_hits) + 1.0,
        "a repeat is a hit"
    );
    assert!(sample(&after, "nexus_invocation_duration_seconds_count") >= 2.0);
    // The names before 0.2 still carry the same samples, marked deprecated.
    for (old, new) in [
        ("nexus_executions_total{outcome=\"ok\"}", ok),
        ("nexus_executions_total{outcome=\"timeout\"}", timeouts),
        (
            "nexus_execution_duration_seconds_count",
            "nexus_invocation_duration_seconds_count",
        ),
    ] {
        assert_eq!(sample(&after, old), sample(&after, new), "{old}");
    }
    assert!(
        after.contains("# HELP nexus_executions_total Deprecated, removed in Nexus 0.3"),
        "{after}"
    );
    assert!(
        sample(
            &after,
            r#"nexus_http_requests_total{route="/handlers/{name}/invoke",status="504"}"#
        ) >= 1.0
    );
}

#[test]
fn stats_agree_over_http_in_a_handler_and_in_the_library() {
    let server = serve(
        &[
            ("stats.js", "export default () => Nexus.stats()"),
            ("double.js", DOUBLE),
        ],
        &["--stats-scope", "host"],
    );
    server.request("POST", "/handlers/double/invoke", br#"{"n":1}"#);
    let inside = server
        .request("POST", "/handlers/stats/invoke", b"{}")
        .json();
    let outside = server.request("GET", "/stats", b"").json();
    // The handler read them during its own invocation, before it counted.
    let mut expected = inside.clone();
    expected["executions"] = json!(inside["executions"].as_u64().unwrap() + 1);
    // The disk tiers move on their own: the cache writes in the background.
    let mut outside_now = outside.clone();
    for record in [&mut expected, &mut outside_now] {
        for artifact in ["bytecode", "components"] {
            record[artifact]["disk"] = Value::Null;
        }
    }
    assert_eq!(numbers_as_f64(&outside_now), numbers_as_f64(&expected));
    assert_eq!(outside["executions"], 2);
    assert_eq!(outside["compiles"], 2);
    // The library's own record has the same fields, named the same.
    let rt = crate::support::runtime();
    let library = serde_json::to_value(rt.stats()).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&library), keys(&outside));
    assert_eq!(
        keys(&library["bytecode"]["memory"]),
        keys(&outside["bytecode"]["memory"])
    );
}

/// By default a handler sees only its own figures: another tenant's
/// calls, failures and cache traffic do not show.
#[test]
fn a_handler_sees_its_own_figures_by_default() {
    let server = serve(
        &[
            ("stats.js", "export default () => Nexus.stats()"),
            ("double.js", DOUBLE),
        ],
        &[],
    );
    for n in 0..5 {
        server.request(
            "POST",
            "/handlers/double/invoke",
            format!(r#"{{"n":{n}}}"#).as_bytes(),
        );
    }
    server.request("POST", "/handlers/stats/invoke", b"{}");
    let inside = server
        .request("POST", "/handlers/stats/invoke", b"{}")
        .json();
    assert_eq!(inside["executions"], 1, "{inside}");
    assert_eq!(inside["failures"], 0, "{inside}");
    assert_eq!(inside["host_wide"], false, "{inside}");
    assert_eq!(inside["bytecode"]["memory"]["entries"], 0, "{inside}");
    let outside = server.request("GET", "/stats", b"").json();
    assert_eq!(outside["executions"], 7, "{outside}");
    assert_eq!(outside["host_wide"], true, "{outside}");
}

/// `value` with every number as a float: JavaScript writes `0.0` as `0`.
fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How pool slots are reset shows in the metrics and, when in full, in one
/// start-up line saying why; by default it follows whether the host has
/// swap.
#[test]
fn the_slot_reset_shows_in_the_metrics_and_the_log() {
    let swap = std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| !l.trim().is_empty())
        || std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("SwapTotal:") && !l.contains(" 0 kB"));
    for (args, full) in [(&[][..], swap), (&["--slot-reset", "full"][..], true)] {
        let server = serve(&[("double.js", DOUBLE)], args);
        for n in 0..3 {
            let reply = server.request(
                "POST",
                "/handlers/double/invoke",
                format!(r#"{{"n":{n}}}"#).as_bytes(),
            );
            assert_eq!(reply.json(), json!({ "twice": n * 2 }));
        }
        let metrics = server.request("GET", "/metrics", b"").text();
        let mode = if full { "full" } else { "scan" };
        assert_eq!(
            sample(&metrics, &format!(r#"nexus_slot_reset{{mode="{mode}"}}"#)),
            1.0
        );
        let log = server.log();
        assert_eq!(log.contains("pool slots are reset in full"), full, "{log}");
    }
}
