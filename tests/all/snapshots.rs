//! `nexus serve`'s automatic per-handler snapshots, over HTTP: `auto`
//! switches a handler to its snapshot with the same answers (a top-level
//! clock read frozen at this process's time, as in Node), keeps handlers
//! whose top level reads randomness or the runtime's figures on the plain
//! path, and survives a failing build; `eager` and `off`; the
//! `max_snapshots` bound; restarts.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::server::{handlers_dir, sample, serve, Server};

/// A top level that computes something (a table), and reads nothing that
/// differs between instances.
const PURE: &str = "
const squares = Array.from({ length: 10 }, (_, i) => i * i);
export default (ctx) => ({ n: ctx.n, square: squares[ctx.n], sum: squares.reduce((a, b) => a + b) });
";
const CLOCK: &str =
    "const started = Date.now(); export default () => ({ started: typeof started })";
const RANDOM: &str = "const r = Math.random(); export default () => ({ below_one: r < 1 })";
const STATS: &str = "const s = Nexus.stats(); export default () => typeof s.executions";
const THROWS: &str = "throw new TypeError('not at the top level, please'); export default () => 1;";

/// `GET /handlers/{name}` once the snapshot has settled (not queued or
/// building); builds in a debug build take seconds each.
pub fn settled(server: &Server, name: &str) -> Value {
    let start = Instant::now();
    loop {
        let handler = server
            .request("GET", &format!("/handlers/{name}"), b"")
            .json();
        let state = handler["snapshot"].as_str().unwrap().to_owned();
        if !["queued", "building"].contains(&state.as_str()) {
            return handler;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{name}'s snapshot never settled: {handler}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Invokes `name` with `input`; answers the status, the path header and the
/// JSON body.
fn invoke(server: &Server, name: &str, input: &str) -> (u16, String, Value) {
    let reply = server.request(
        "POST",
        &format!("/handlers/{name}/invoke"),
        input.as_bytes(),
    );
    let path = reply.header("x-nexus-path").unwrap_or("none").to_owned();
    (reply.status, path, reply.json())
}

fn snapshots(server: &Server, outcome: &str) -> f64 {
    let metrics = server.request("GET", "/metrics", b"").text();
    sample(
        &metrics,
        &format!(r#"nexus_snapshots_total{{outcome="{outcome}"}}"#),
    )
}

#[test]
fn auto_switches_pure_and_clock_reading_handlers_and_keeps_random_stats_and_failures_plain() {
    let server = serve(
        &[
            ("pure.js", PURE),
            ("clock.js", CLOCK),
            ("random.js", RANDOM),
            ("stats.js", STATS),
            ("throws.js", THROWS),
        ],
        &["--snapshot-after", "2"],
    );
    let names = ["pure", "clock", "random", "stats", "throws"];
    let mut before = Vec::new();
    for name in names {
        assert_eq!(settled(&server, name)["snapshot"], "waiting", "{name}");
        for n in [3, 4] {
            let (status, path, body) = invoke(&server, name, &format!(r#"{{"n":{n}}}"#));
            assert_eq!(path, "plain", "{name} before its snapshot");
            before.push((name, n, status, body));
        }
    }

    let pure = settled(&server, "pure");
    assert_eq!(
        (&pure["snapshot"], &pure["path"]),
        (&json!("prepared"), &json!("prepared"))
    );
    let clock = settled(&server, "clock");
    assert_eq!(
        (&clock["snapshot"], &clock["path"]),
        (&json!("prepared"), &json!("prepared"))
    );
    for (name, reads) in [("random", "Math.random()"), ("stats", "Nexus.stats()")] {
        let handler = settled(&server, name);
        assert_eq!(handler["snapshot"], "refused", "{handler}");
        assert_eq!(handler["path"], "plain", "{handler}");
        let reason = handler["snapshot_reason"].as_str().unwrap();
        assert!(reason.contains(reads), "{name}: {reason}");
    }
    let throws = settled(&server, "throws");
    assert_eq!(
        (&throws["snapshot"], &throws["path"]),
        (&json!("failed"), &json!("plain"))
    );
    let reason = throws["snapshot_reason"].as_str().unwrap();
    assert!(reason.contains("not at the top level, please"), "{reason}");

    // Byte for byte the same answers, on the path each handler is on now.
    for (name, n, status, body) in &before {
        let (again, path, answer) = invoke(&server, name, &format!(r#"{{"n":{n}}}"#));
        let prepared = ["pure", "clock"].contains(name);
        let expected_path = if prepared { "prepared" } else { "plain" };
        assert_eq!(path, expected_path, "{name}");
        assert_eq!((again, &answer), (*status, body), "{name} with n={n}");
    }
    assert_eq!(
        invoke(&server, "throws", "{}").2["error"]["kind"],
        "runtime_error",
        "a failed build is not the invocation's error: it fails as it always did"
    );

    assert_eq!(snapshots(&server, "built"), 2.0);
    assert_eq!(snapshots(&server, "refused"), 2.0);
    assert_eq!(snapshots(&server, "failed"), 1.0);
    let metrics = server.request("GET", "/metrics", b"").text();
    assert_eq!(sample(&metrics, r#"nexus_handlers{path="prepared"}"#), 2.0);
    assert_eq!(sample(&metrics, r#"nexus_handlers{path="plain"}"#), 3.0);
    let log = server.log();
    assert_eq!(
        log.matches("snapshot failed").count(),
        1,
        "logged once: {log}"
    );
}

#[test]
fn eager_snapshots_at_registration_whatever_the_top_level_read_and_off_never() {
    let eager = serve(
        &[("clock.js", CLOCK), ("pure.js", PURE)],
        &["--snapshot", "eager"],
    );
    for name in ["clock", "pure"] {
        let handler = settled(&eager, name);
        assert_eq!(handler["snapshot"], "prepared", "{handler}");
        assert_eq!(handler["invocations"], 0, "built before any call");
    }
    let (status, path, body) = invoke(&eager, "clock", "{}");
    assert_eq!(
        (status, path.as_str(), body),
        (200, "prepared", json!({ "started": "number" }))
    );
    let now_frozen = "const t = Date.now(); export default () => t";
    let registered = eager.request("PUT", "/handlers/frozen", now_frozen.as_bytes());
    assert_eq!(registered.status, 201);
    assert_eq!(settled(&eager, "frozen")["snapshot"], "prepared");
    let first = invoke(&eager, "frozen", "{}").2;
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        invoke(&eager, "frozen", "{}").2,
        first,
        "eager freezes the top level's clock"
    );

    let off = serve(&[("pure.js", PURE)], &["--snapshot", "off"]);
    for _ in 0..5 {
        assert_eq!(invoke(&off, "pure", r#"{"n":2}"#).1, "plain");
    }
    let handler = settled(&off, "pure");
    assert_eq!(
        (&handler["snapshot"], &handler["path"]),
        (&json!("off"), &json!("plain"))
    );
    assert_eq!(snapshots(&off, "built"), 0.0);
}

#[test]
fn a_handler_registered_with_its_own_policy_overrides_the_servers() {
    // The server's policy is auto: a top-level Math.random() is refused...
    let server = serve(&[], &["--snapshot-after", "1"]);
    let put = |name: &str, query: &str, source: &str| {
        server.request(
            "PUT",
            &format!("/handlers/{name}{query}"),
            source.as_bytes(),
        )
    };
    assert_eq!(put("random", "", RANDOM).status, 201);
    invoke(&server, "random", "{}");
    let random = settled(&server, "random");
    assert_eq!(
        (&random["snapshot"], &random["snapshot_policy"]),
        (&json!("refused"), &json!("auto"))
    );
    let reason = random["snapshot_reason"].as_str().unwrap();
    // The way out it names works as written: by the registered name.
    assert!(
        reason.contains("PUT /handlers/random?snapshot=eager")
            && reason.contains("handler_snapshots = \"random=eager\""),
        "the reason names the way out: {random}"
    );
    assert!(!reason.contains("random.js"), "{reason}");

    // ...unless the handler itself asks for eager: prepared at registration.
    let eager = put("random-eager", "?snapshot=eager", RANDOM);
    assert_eq!(eager.status, 201, "{}", eager.text());
    let handler = settled(&server, "random-eager");
    assert_eq!(
        (
            &handler["snapshot"],
            &handler["snapshot_policy"],
            &handler["invocations"]
        ),
        (&json!("prepared"), &json!("eager"), &json!(0))
    );
    let (status, path, body) = invoke(&server, "random-eager", "{}");
    assert_eq!(
        (status, path.as_str(), body),
        (200, "prepared", json!({ "below_one": true }))
    );

    // Off, for a pure handler auto would snapshot: never.
    assert_eq!(put("pure", "?snapshot=off", PURE).status, 201);
    for _ in 0..3 {
        assert_eq!(invoke(&server, "pure", r#"{"n":1}"#).1, "plain");
    }
    let pure = settled(&server, "pure");
    assert_eq!(
        (&pure["snapshot"], &pure["snapshot_policy"]),
        (&json!("off"), &json!("off"))
    );

    // Replacing it without a policy gives it the server's again.
    assert_eq!(put("pure", "", PURE).status, 200);
    invoke(&server, "pure", r#"{"n":2}"#);
    let pure = settled(&server, "pure");
    assert_eq!(
        (&pure["snapshot"], &pure["snapshot_policy"]),
        (&json!("prepared"), &json!("auto"))
    );

    for (query, says) in [
        ("?snapshot=always", "expected auto, eager or off"),
        ("?timeout_ms=5", "takes only snapshot"),
    ] {
        let refused = put("other", query, PURE);
        assert_eq!(refused.status, 400, "{query}");
        let error = &refused.json()["error"];
        assert_eq!(error["kind"], "bad_request", "{query}");
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
    }
    assert_eq!(server.request("GET", "/handlers/other", b"").status, 404);
    assert_eq!(snapshots(&server, "built"), 2.0);
    assert_eq!(snapshots(&server, "refused"), 1.0);
}

#[test]
fn the_handler_snapshots_setting_gives_named_handlers_their_own_policy() {
    // What a `--handlers` directory (a ConfigMap) cannot say in its files.
    let server = serve(
        &[("clock.js", CLOCK), ("pure.js", PURE), ("other.js", PURE)],
        &[
            "--snapshot-after",
            "1",
            "--handler-snapshots",
            "clock=eager, pure=off",
        ],
    );
    let clock = settled(&server, "clock");
    assert_eq!(
        (
            &clock["snapshot"],
            &clock["snapshot_policy"],
            &clock["invocations"]
        ),
        (&json!("prepared"), &json!("eager"), &json!(0)),
        "prepared at registration, clock read and all"
    );
    assert_eq!(invoke(&server, "clock", "{}").1, "prepared");

    for _ in 0..3 {
        assert_eq!(invoke(&server, "pure", r#"{"n":2}"#).1, "plain");
    }
    let pure = settled(&server, "pure");
    assert_eq!(
        (&pure["snapshot"], &pure["snapshot_policy"]),
        (&json!("off"), &json!("off"))
    );

    // A handler the setting does not name has the server's policy.
    invoke(&server, "other", r#"{"n":3}"#);
    let other = settled(&server, "other");
    assert_eq!(
        (&other["snapshot"], &other["snapshot_policy"]),
        (&json!("prepared"), &json!("auto"))
    );

    // A PUT's own policy comes first; without one, the setting's holds.
    let put = |query: &str| {
        server
            .request("PUT", &format!("/handlers/pure{query}"), PURE.as_bytes())
            .status
    };
    assert_eq!(put("?snapshot=auto"), 200);
    assert_eq!(settled(&server, "pure")["snapshot_policy"], "auto");
    assert_eq!(put(""), 200);
    assert_eq!(settled(&server, "pure")["snapshot_policy"], "off");
}

#[test]
fn at_most_max_snapshots_are_loaded_and_an_unloaded_one_comes_back_from_the_cache() {
    let server = serve(
        &[
            ("a.js", PURE),
            ("b.js", "export default (ctx) => ({ b: ctx.n })"),
        ],
        &["--snapshot-after", "1", "--max-snapshots", "1"],
    );
    assert_eq!(invoke(&server, "a", r#"{"n":1}"#).2["square"], 1);
    assert_eq!(settled(&server, "a")["snapshot"], "prepared");
    assert_eq!(invoke(&server, "b", r#"{"n":2}"#).2, json!({ "b": 2 }));
    assert_eq!(settled(&server, "b")["snapshot"], "prepared");
    let a = settled(&server, "a");
    assert_eq!(
        (&a["snapshot"], &a["path"]),
        (&json!("unloaded"), &json!("plain"))
    );
    assert_eq!(snapshots(&server, "unloaded"), 1.0);

    // Back on the plain path, with the same answer; then loaded again.
    let (_, path, body) = invoke(&server, "a", r#"{"n":3}"#);
    assert_eq!((path.as_str(), &body["square"]), ("plain", &json!(9)));
    assert_eq!(settled(&server, "a")["snapshot"], "prepared");
    assert_eq!(invoke(&server, "a", r#"{"n":3}"#).1, "prepared");
    assert_eq!(settled(&server, "b")["snapshot"], "unloaded");
    assert_eq!(
        snapshots(&server, "built"),
        2.0,
        "a was not snapshotted twice"
    );
    assert_eq!(snapshots(&server, "loaded"), 1.0);
}

#[test]
fn a_restart_loads_snapshots_from_the_cache_and_builds_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let dir = handlers_dir(&[("pure.js", PURE)]);
    let args = [
        "--handlers",
        dir.path().to_str().unwrap(),
        "--snapshot-after",
        "1",
    ];
    let mut first = Server::start(cache.path(), &args).ready();
    invoke(&first, "pure", r#"{"n":5}"#);
    assert_eq!(settled(&first, "pure")["snapshot"], "prepared");
    assert_eq!(snapshots(&first, "built"), 1.0);
    assert!(first.terminate().success());

    let second = Server::start(cache.path(), &args).ready();
    let (_, _, answer) = invoke(&second, "pure", r#"{"n":5}"#);
    assert_eq!(answer["square"], 25);
    assert_eq!(settled(&second, "pure")["snapshot"], "prepared");
    assert_eq!(invoke(&second, "pure", r#"{"n":5}"#).2, answer);
    assert_eq!(snapshots(&second, "built"), 0.0);
    assert_eq!(snapshots(&second, "loaded"), 1.0);
    let metrics = second.request("GET", "/metrics", b"").text();
    for artifact in ["bytecode", "component"] {
        let misses = format!(r#"nexus_cache_misses_total{{artifact="{artifact}"}}"#);
        assert_eq!(sample(&metrics, &misses), 0.0, "{artifact}");
    }
}

/// Milliseconds since the epoch, now.
fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
}

#[test]
fn under_auto_a_top_level_clock_read_is_frozen_at_this_processs_time_never_cached() {
    const STAMP: &str = "const loaded = Date.now(); export default () => ({ loaded })";
    let cache = tempfile::tempdir().unwrap();
    let dir = handlers_dir(&[("stamp.js", STAMP)]);
    let args = [
        "--handlers",
        dir.path().to_str().unwrap(),
        "--snapshot-after",
        "1",
    ];
    let mut loaded = Vec::new();
    for start in 0..2 {
        let started = now_ms();
        let mut server = Server::start(cache.path(), &args).ready();
        invoke(&server, "stamp", "{}");
        let stamp = settled(&server, "stamp");
        assert_eq!(
            (&stamp["snapshot"], &stamp["snapshot_policy"]),
            (&json!("prepared"), &json!("auto")),
            "{stamp}"
        );
        let (_, path, first) = invoke(&server, "stamp", "{}");
        std::thread::sleep(Duration::from_millis(20));
        let (_, _, second) = invoke(&server, "stamp", "{}");
        assert_eq!(path, "prepared");
        assert_eq!(first, second, "frozen for this process's life, as in Node");
        let at = first["loaded"].as_f64().unwrap();
        assert!(
            at >= started,
            "start {start}: {at} before the process's {started}"
        );
        // Built in this process each time, the restart included: never
        // loaded from the cache directory, where it was never put.
        assert_eq!(snapshots(&server, "built"), 1.0, "start {start}");
        assert_eq!(snapshots(&server, "loaded"), 0.0, "start {start}");
        let metrics = server.request("GET", "/metrics", b"").text();
        let on_disk = r#"nexus_cache_entries{artifact="component",tier="disk"}"#;
        assert_eq!(
            sample(&metrics, on_disk),
            3.0,
            "the guest, the instrumented guest and the guest's functions alone"
        );
        assert!(server.terminate().success());
        loaded.push(at);
    }
    assert!(loaded[1] > loaded[0], "{loaded:?}");
}

/// Real lodash (tests/compat's bundle, as `just compat` runs it) reads the
/// clock at load (its `shortOut` heuristic calls `Date.now`): under auto it
/// gets its snapshot all the same, and answers as it did on the plain path.
#[test]
fn real_lodash_is_prepared_under_auto() {
    let work = tempfile::tempdir().unwrap();
    let compat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/compat");
    let made = std::process::Command::new("node")
        .arg(compat.join("make-handlers.mjs"))
        .arg(work.path())
        .output()
        .expect("node");
    assert!(
        made.status.success(),
        "make-handlers.mjs failed (run `npm ci` in tests/compat; `./x test` does): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let read = |file: &str| std::fs::read_to_string(work.path().join(file)).unwrap();
    let (lodash, input) = (read("lodash.js"), read("lodash.input.json"));
    let server = serve(&[("lodash.js", &lodash)], &["--snapshot-after", "1"]);
    let (status, path, plain) = invoke(&server, "lodash", &input);
    assert_eq!((status, path.as_str()), (200, "plain"), "{plain}");
    let handler = settled(&server, "lodash");
    assert_eq!(
        (&handler["snapshot"], &handler["snapshot_policy"]),
        (&json!("prepared"), &json!("auto")),
        "{handler}"
    );
    let (status, path, prepared) = invoke(&server, "lodash", &input);
    assert_eq!((status, path.as_str()), (200, "prepared"));
    assert_eq!(prepared, plain);
}

#[test]
fn cache_warm_leaves_serve_nothing_to_compile_or_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let dir = handlers_dir(&[("pure.js", PURE), ("clock.js", CLOCK)]);
    let handlers = dir.path().to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args([
            "cache",
            "warm",
            "--json",
            "--handlers",
            handlers,
            "--cache-dir",
        ])
        .arg(cache.path())
        .env_remove("NEXUS_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warmed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(warmed["guest"], "compiled");
    let names: Vec<&str> = warmed["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(
                (&h["bytecode"], &h["snapshot"]),
                (&json!("compiled"), &json!("compiled")),
                "{h}"
            );
            h["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names, ["clock", "pure"]);
    assert!(warmed["handlers"][0]["snapshot_reason"]
        .as_str()
        .unwrap()
        .contains("clock"));

    let server = Server::start(
        cache.path(),
        &["--handlers", handlers, "--snapshot-after", "1"],
    )
    .ready();
    assert_eq!(invoke(&server, "pure", r#"{"n":3}"#).2["square"], 9);
    invoke(&server, "clock", "{}");
    assert_eq!(settled(&server, "pure")["snapshot"], "prepared");
    // The clock reader's snapshot in the cache froze another process's
    // time: under auto this process builds its own, outside the cache.
    assert_eq!(settled(&server, "clock")["snapshot"], "prepared");
    assert_eq!(snapshots(&server, "built"), 1.0, "the clock reader's own");
    assert_eq!(snapshots(&server, "loaded"), 1.0);
    assert_eq!(snapshots(&server, "refused"), 0.0);
    let metrics = server.request("GET", "/metrics", b"").text();
    for artifact in ["bytecode", "component"] {
        let misses = format!(r#"nexus_cache_misses_total{{artifact="{artifact}"}}"#);
        assert_eq!(sample(&metrics, &misses), 0.0, "{artifact}");
    }
}
