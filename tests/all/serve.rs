//! `nexus serve` over HTTP on an ephemeral loopback port: the API, every
//! status of the README's table, metrics, stats, restarts, signals,
//! concurrency and a storm of malformed requests.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::server::{handlers_dir, read_reply, sample, serve, signal, Server};
use crate::support::Rng;

const DOUBLE: &str = "export default (ctx) => ({ twice: ctx.n * 2 })";
const HELLO: &str = "export default (ctx) => ({ message: `Hello, ${ctx.name}!` })";

#[test]
fn register_invoke_list_replace_and_delete() {
    let server = serve(
        &[("double.js", DOUBLE), ("notes.txt", "not a handler")],
        &[],
    );

    let answer = server.request("POST", "/handlers/double/invoke", br#"{"n":21}"#);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), json!({ "twice": 42 }));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("x-nexus-path"), Some("plain"));
    assert!(answer
        .header("x-nexus-duration-us")
        .unwrap()
        .parse::<u64>()
        .is_ok());

    let list = server.request("GET", "/handlers", b"").json();
    let names: Vec<&str> = list["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["double"], "only *.js files: {list}");

    // A new handler, then the same source again (a memory hit), then a
    // replacement.
    let created = server.request(
        "PUT",
        "/handlers/greet",
        b"export default (c) => 'hi ' + c.who",
    );
    assert_eq!(created.status, 201, "{created:?}");
    let created = created.json();
    assert_eq!(created["name"], "greet");
    assert_eq!(created["origin"], "compiled");
    assert_eq!(created["key"].as_str().unwrap().len(), 64);
    assert!(created["bytecode_bytes"].as_u64().unwrap() > 0);
    let again = server.request(
        "PUT",
        "/handlers/greet",
        b"export default (c) => 'hi ' + c.who",
    );
    assert_eq!(
        (again.status, again.json()["origin"].clone()),
        (200, json!("memory"))
    );
    let greet = |who: &str| {
        server.request(
            "POST",
            "/handlers/greet/invoke",
            format!(r#"{{"who":"{who}"}}"#).as_bytes(),
        )
    };
    assert_eq!(greet("ada").json(), json!("hi ada"));
    let replaced = server.request(
        "PUT",
        "/handlers/greet",
        b"export default (c) => 'hello ' + c.who",
    );
    assert_eq!(replaced.status, 200);
    assert_ne!(replaced.json()["key"], created["key"]);
    assert_eq!(greet("ada").json(), json!("hello ada"));

    let shown = server.request("GET", "/handlers/greet", b"").json();
    assert_eq!(shown["invocations"], 1, "counted per version: {shown}");
    assert_eq!(shown["path"], "plain");
    assert_eq!(shown["key"], replaced.json()["key"]);
    // An empty body is `{}`.
    let empty = server.request("POST", "/handlers/greet/invoke", b"");
    assert_eq!(empty.json(), json!("hello undefined"));

    assert_eq!(server.request("DELETE", "/handlers/greet", b"").status, 204);
    assert_eq!(greet("ada").status, 404);
    assert_eq!(server.request("DELETE", "/handlers/greet", b"").status, 404);
    assert_eq!(
        server.request("GET", "/healthz", b"").json()["status"],
        "ok"
    );
}

/// Runs the server's start-up `curl` lines in a shell, as a user pastes
/// them; answers the last one's output.
fn paste(server: &Server) -> String {
    let mut last = String::new();
    for line in &server.curl {
        let out = std::process::Command::new("sh")
            .args(["-c", line])
            .output()
            .expect("sh runs; curl must be installed to paste the start-up lines");
        assert!(out.status.success(), "{line}: {out:?}");
        last = String::from_utf8(out.stdout).unwrap();
    }
    last
}

#[test]
fn the_start_up_lines_paste_as_they_are() {
    // A handlers file: the line invokes it.
    let server = serve(&[("hello.js", HELLO)], &[]);
    assert_eq!(server.curl.len(), 1, "{:?}", server.curl);
    let answer: Value = serde_json::from_str(&paste(&server)).unwrap();
    assert_eq!(answer, json!({ "message": "Hello, Nexus!" }));

    // None: a first line registers one, and the second invokes it.
    let server = serve(&[], &[]);
    assert_eq!(server.curl.len(), 2, "{:?}", server.curl);
    let answer: Value = serde_json::from_str(&paste(&server)).unwrap();
    assert_eq!(answer, json!({ "message": "Hello, Nexus!" }));
}

/// Each row of the README's table of errors, with its JSON.
#[test]
fn every_error_has_its_status_and_json() {
    let server = serve(&[
        ("double.js", DOUBLE),
        (
            "throws.js",
            "function check() { throw new TypeError('bad thing'); }\nexport default () => check();",
        ),
        ("bigint.js", "export default () => 10n"),
        (
            "huge.js",
            "export default () => 'x'.repeat(2 * 1024 * 1024)",
        ),
        (
            "bomb.js",
            "export default () => { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); }",
        ),
        (
            "recurse.js",
            "export default () => JSON.parse('['.repeat(1e6))",
        ),
        ("loop.js", "export default () => { for (;;) {} }"),
        ("nodefault.js", "export const x = 1;"),
    ], &["--max-body-bytes",
            "64Ki",
            "--max-output-bytes",
            "1Mi",
            "--max-memory-bytes",
            "32Mi",
            "--timeout-ms",
            "20000"]);
    let check = |method: &str, path: &str, body: &[u8], status: u16, kind: &str| -> Value {
        let reply = server.request(method, path, body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        let error = reply.json()["error"].clone();
        assert_eq!(error["kind"], kind, "{method} {path}: {error}");
        assert!(!error["message"].as_str().unwrap().is_empty());
        error
    };
    check(
        "PUT",
        "/handlers/Bad",
        b"export default 1",
        400,
        "invalid_name",
    );
    check(
        "PUT",
        &format!("/handlers/{}", "a".repeat(65)),
        b"",
        400,
        "invalid_name",
    );
    check("PUT", "/handlers/%2E%2E", b"", 400, "invalid_name");
    check(
        "POST",
        "/handlers/double/invoke",
        b"{not json",
        400,
        "invalid_input",
    );
    check(
        "POST",
        "/handlers/double/invoke",
        b"\xff\xfe",
        400,
        "invalid_input",
    );
    check(
        "POST",
        "/handlers/double/invoke?timeout_ms=abc",
        b"{}",
        400,
        "bad_request",
    );
    check(
        "POST",
        "/handlers/double/invoke?timeout_ms=0",
        b"{}",
        400,
        "bad_request",
    );
    check(
        "POST",
        "/handlers/double/invoke?verbose=1",
        b"{}",
        400,
        "bad_request",
    );
    check("POST", "/handlers/nobody/invoke", b"{}", 404, "not_found");
    check("GET", "/no/such/route", b"", 404, "not_found");
    check("DELETE", "/stats", b"", 405, "method_not_allowed");
    check(
        "GET",
        "/handlers/double/invoke",
        b"",
        405,
        "method_not_allowed",
    );
    check(
        "PUT",
        "/handlers/big",
        &vec![b' '; 65 * 1024],
        413,
        "body_too_large",
    );
    let compile = check(
        "PUT",
        "/handlers/broken",
        b"export default (ctx) => {\n  return ctx.;\n}",
        422,
        "compile_error",
    );
    assert_eq!(
        (compile["file"].clone(), compile["line"].clone()),
        (json!("broken.js"), json!(2))
    );
    assert!(compile["column"].as_u64().unwrap() > 0, "{compile}");
    let thrown = check(
        "POST",
        "/handlers/throws/invoke",
        b"{}",
        500,
        "runtime_error",
    );
    assert_eq!(
        (thrown["name"].clone(), thrown["message"].clone()),
        (json!("TypeError"), json!("bad thing"))
    );
    assert!(
        thrown["stack"]
            .as_str()
            .unwrap()
            .contains("at check (throws.js:1"),
        "{thrown}"
    );
    check(
        "POST",
        "/handlers/bigint/invoke",
        b"{}",
        502,
        "invalid_output",
    );
    check(
        "POST",
        "/handlers/huge/invoke",
        b"{}",
        502,
        "output_too_large",
    );
    check("POST", "/handlers/bomb/invoke", b"{}", 507, "out_of_memory");
    check(
        "POST",
        "/handlers/recurse/invoke",
        b"{}",
        500,
        "stack_overflow",
    );
    check(
        "POST",
        "/handlers/nodefault/invoke",
        b"{}",
        500,
        "invalid_module",
    );
    let timeout = check(
        "POST",
        "/handlers/loop/invoke?timeout_ms=200",
        b"{}",
        504,
        "timeout",
    );
    assert_eq!(timeout["limit_ms"], 200, "the query shortened it");
    // Still serving.
    assert_eq!(
        server
            .request("POST", "/handlers/double/invoke", br#"{"n":2}"#)
            .json(),
        json!({ "twice": 4 })
    );
}

#[test]
fn busy_is_503_with_retry_after() {
    let server = serve(&[("slow.js", "export default () => { const end = Date.now() + 1500; while (Date.now() < end) {} return 1; }")], &["--max-instances",
            "1",
            "--queue-timeout-ms",
            "50",
            "--timeout-ms",
            "20000"]);
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| server.request("POST", "/handlers/slow/invoke", b"{}"));
        std::thread::sleep(Duration::from_millis(400));
        let busy = server.request("POST", "/handlers/slow/invoke", b"{}");
        assert_eq!(busy.status, 503, "{}", busy.text());
        assert_eq!(busy.json()["error"]["kind"], "busy");
        assert_eq!(busy.header("retry-after"), Some("1"));
        assert_eq!(slow.join().unwrap().status, 200);
    });
}

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
        &[],
    );
    server.request("POST", "/handlers/double/invoke", br#"{"n":1}"#);
    let inside = server
        .request("POST", "/handlers/stats/invoke", b"{}")
        .json();
    let outside = server.request("GET", "/stats", b"").json();
    // The handler read them during its own invocation, before it counted.
    let mut expected = inside.clone();
    expected["executions"] = json!(inside["executions"].as_u64().unwrap() + 1);
    assert_eq!(numbers_as_f64(&outside), numbers_as_f64(&expected));
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

#[test]
fn a_restart_on_the_same_cache_compiles_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let dir = handlers_dir(&[
        ("double.js", DOUBLE),
        ("greet.js", "export default (c) => 'hi ' + c.who"),
    ]);
    let args = ["--handlers", dir.path().to_str().unwrap()];
    let mut first = Server::start(cache.path(), &args).ready();
    assert_eq!(first.request("GET", "/stats", b"").json()["compiles"], 2);
    assert!(first.terminate().success());
    let second = Server::start(cache.path(), &args).ready();
    let metrics = second.request("GET", "/metrics", b"").text();
    for artifact in ["bytecode", "component"] {
        assert_eq!(
            sample(
                &metrics,
                &format!(r#"nexus_cache_misses_total{{artifact="{artifact}"}}"#)
            ),
            0.0,
            "{artifact}"
        );
    }
    assert_eq!(
        sample(
            &metrics,
            r#"nexus_cache_hits_total{artifact="bytecode",tier="disk"}"#
        ),
        2.0
    );
    assert_eq!(
        second
            .request("POST", "/handlers/double/invoke", br#"{"n":4}"#)
            .json(),
        json!({ "twice": 8 })
    );
}

/// SIGTERM (a cluster stopping the pod) and SIGINT (Ctrl-C) alike.
#[test]
fn sigterm_lets_a_slow_invocation_finish_then_exits_0() {
    for sig in ["TERM", "INT"] {
        let mut server = serve(
            &[("slow.js", "export default () => { const end = Date.now() + 1500; while (Date.now() < end) {} return 'done'; }")],
            &["--timeout-ms", "20000"],
        );
        let pid = server.pid();
        std::thread::scope(|scope| {
            let slow = scope.spawn(|| server.request("POST", "/handlers/slow/invoke", b"{}"));
            std::thread::sleep(Duration::from_millis(400));
            signal(pid, sig);
            let reply = slow.join().unwrap();
            assert_eq!(
                (reply.status, reply.json()),
                (200, json!("done")),
                "SIG{sig}"
            );
        });
        let status = server.wait();
        let log = server.log();
        assert!(status.success(), "SIG{sig}: exit 0: {log}");
        assert!(
            log.contains(&format!("SIG{sig}: no new connections")),
            "{log}"
        );
    }
}

#[test]
fn two_hundred_concurrent_requests_each_get_their_own_answer() {
    let server = serve(&[("double.js", DOUBLE)], &["--timeout-ms", "20000"]);
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..200)
            .map(|n| {
                let server = &server;
                scope.spawn(move || {
                    let reply = server.request(
                        "POST",
                        "/handlers/double/invoke",
                        format!(r#"{{"n":{n}}}"#).as_bytes(),
                    );
                    (n, reply.status, reply.json())
                })
            })
            .collect();
        for call in calls {
            let (n, status, answer) = call.join().unwrap();
            assert_eq!((status, answer), (200, json!({ "twice": n * 2 })));
        }
    });
}

#[test]
fn a_thousand_malformed_requests_get_documented_statuses_and_the_server_keeps_serving() {
    let server = serve(&[("double.js", DOUBLE)], &["--max-body-bytes", "4Ki"]);
    let documented = [
        200, 201, 204, 400, 404, 405, 413, 422, 500, 502, 503, 504, 507,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW", "get", "",
    ];
    let paths = [
        "/",
        "/handlers",
        "/handlers/",
        "/handlers/double",
        "/handlers/double/invoke",
        "/handlers/double/invoke?timeout_ms=",
        "/handlers/double/invoke?timeout_ms=99999999999999999999",
        "/handlers/%ff/invoke",
        "/handlers/../etc/passwd",
        "/handlers/a%00b",
        "/handlers/UPPER",
        "/handlers/x/y/z",
        "/stats?x",
        "/metrics/",
        "//handlers",
        "/handlers/double/invoke#frag",
        "*",
        "http://evil/handlers",
        "/handlers/\u{e9}",
        "/readyz",
        "/healthz",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..1000 {
        let method = *rng.pick(&methods);
        let path = *rng.pick(&paths);
        let body: Vec<u8> = match rng.next() % 6 {
            0 => Vec::new(),
            1 => br#"{"n":3}"#.to_vec(),
            2 => rng.bytes(64),
            3 => vec![b'{'; 5000],
            4 => b"export default () => 1".to_vec(),
            _ => "{\"n\":\"\u{1F600}\"}".as_bytes().to_vec(),
        };
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\n").into_bytes();
        let form = rng.next() % 5;
        match form {
            // Truncated: says more than it sends.
            0 => {
                raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len() + 10).as_bytes())
            }
            // A length that is not a number.
            1 => raw.extend_from_slice(b"Content-Length: lots\r\n"),
            // Junk header bytes.
            2 => {
                raw.extend_from_slice(
                    format!("Content-Length: {}\r\nX-Junk: ", body.len()).as_bytes(),
                );
                raw.extend(
                    rng.bytes(20)
                        .into_iter()
                        .filter(|b| *b != b'\r' && *b != b'\n'),
                );
                raw.extend_from_slice(b"\r\n");
            }
            _ => raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes()),
        }
        raw.extend_from_slice(b"Connection: close\r\n\r\n");
        raw.extend_from_slice(&body);
        if i % 100 == 0 {
            // A slow body: the same request, a byte at a time for a while.
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            for byte in raw.iter().take(40) {
                let _ = stream.write_all(&[*byte]);
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = stream.write_all(raw.get(40..).unwrap_or_default());
            if form == 0 {
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            let reply = read_reply(&mut stream);
            *statuses.entry(reply.map_or(0, |r| r.status)).or_insert(0) += 1;
            continue;
        }
        let status = server.raw(&raw, form == 0).map_or(0, |r| r.status);
        *statuses.entry(status).or_insert(0) += 1;
        assert!(
            status == 0 || documented.contains(&status),
            "{method} {path}: status {status}"
        );
    }
    eprintln!("statuses (0: the connection closed without an answer): {statuses:?}");
    assert!(
        statuses.keys().filter(|s| **s != 0).count() >= 4,
        "{statuses:?}"
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
    // The storm may have replaced or removed `double`: register it again.
    assert!([200, 201].contains(
        &server
            .request("PUT", "/handlers/double", DOUBLE.as_bytes())
            .status
    ));
    assert_eq!(
        server
            .request("POST", "/handlers/double/invoke", br#"{"n":5}"#)
            .json(),
        json!({ "twice": 10 })
    );
    assert_eq!(server.request("GET", "/readyz", b"").status, 200);
}

#[test]
fn a_handlers_file_that_does_not_compile_stops_the_server_naming_it() {
    let cache = tempfile::tempdir().unwrap();
    let dir = handlers_dir(&[("broken.js", "export default (ctx) => {")]);
    let mut server = Server::start_with(
        cache.path(),
        &[
            "--handlers",
            dir.path().to_str().unwrap(),
            "--log-format",
            "json",
        ],
        &[],
    );
    let status = server.wait();
    assert_eq!(status.code(), Some(2));
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    assert!(log.contains("broken.js:1:"), "{log}");
    assert!(
        log.contains("compiling the guest"),
        "the first start says so: {log}"
    );
    // The log is JSON lines; the final error is plain text on stderr.
    let json_lines = log.lines().filter(|l| l.starts_with('{'));
    assert!(json_lines.clone().count() >= 1, "{log}");
    for line in json_lines {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}
