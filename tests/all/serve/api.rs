//! The API: registering, invoking, listing, replacing and removing
//! handlers; the start-up lines; every status of the error table.

use super::*;

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
    // A parameter given twice is refused, not guessed at.
    let twice = check(
        "POST",
        "/handlers/double/invoke?timeout_ms=100&timeout_ms=200",
        b"{}",
        400,
        "bad_request",
    );
    assert!(
        twice["message"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{twice}"
    );
    check(
        "PUT",
        "/handlers/double?snapshot=off&snapshot=eager",
        DOUBLE.as_bytes(),
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
        server.wait_for_active(1);
        let busy = server.request("POST", "/handlers/slow/invoke", b"{}");
        assert_eq!(busy.status, 503, "{}", busy.text());
        assert_eq!(busy.json()["error"]["kind"], "busy");
        assert_eq!(busy.header("retry-after"), Some("1"));
        assert_eq!(slow.join().unwrap().status, 200);
    });
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
    // Waits for the log to be read to the end too.
    let status = server.wait();
    assert_eq!(status.code(), Some(2));
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

/// One name for a handler in every log line: the one it is registered
/// under, never its file name.
#[test]
fn logs_name_a_handler_by_its_registered_name() {
    let server = serve(
        &[(
            "tla.js",
            "console.log('top level'); export default () => { console.log('in a call'); return 1 }",
        )],
        &["--log-format", "json", "--snapshot", "off"],
    );
    assert_eq!(
        server.request("POST", "/handlers/tla/invoke", b"{}").status,
        200
    );
    let log = server.log_with("in a call");
    let named: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| !l["handler"].is_null())
        .collect();
    let names: Vec<&str> = named
        .iter()
        .map(|l| l["handler"].as_str().unwrap())
        .collect();
    assert!(named.len() >= 3, "registered, and two console lines: {log}");
    assert!(names.iter().all(|n| *n == "tla"), "{names:?}\n{log}");
}

/// Query values are percent-decoded, as any HTTP client may encode them.
#[test]
fn query_values_are_percent_decoded() {
    let server = serve(&[("double.js", DOUBLE)], &[]);
    let reply = server.request(
        "POST",
        "/handlers/double/invoke?timeout_ms=%35%30",
        b"{\"n\":2}",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({ "twice": 4 }));
    let reply = server.request(
        "PUT",
        "/handlers/double?snapshot=%65ager",
        DOUBLE.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let shown = server.request("GET", "/handlers/double", b"").json();
    assert_eq!(shown["snapshot_policy"], "eager", "{shown}");
}

/// A source the parser cannot take is the author's compile error, with a
/// position: nested too deeply for the parser's stack or the wasm stack,
/// or importing a module.
#[test]
fn sources_the_parser_cannot_take_are_compile_errors_with_a_position() {
    let server = serve(&[], &[]);
    let deep = format!(
        "export default () =>\n  {}1{}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let blocks = format!(
        "export default () => {{{}{}}}",
        "{".repeat(30_000),
        "}".repeat(30_000)
    );
    for (name, source, line, column) in [
        ("parens", deep.as_str(), 2, 100_002),
        ("blocks", blocks.as_str(), 1, 30_022),
        (
            "imports",
            "// a\nimport \"os\";\nexport default () => 1",
            2,
            8,
        ),
    ] {
        let reply = server.request("PUT", &format!("/handlers/{name}"), source.as_bytes());
        assert_eq!(reply.status, 422, "{name}: {}", reply.text());
        let error = reply.json()["error"].clone();
        assert_eq!(error["kind"], "compile_error", "{name}: {error}");
        assert_eq!(
            (error["line"].as_u64(), error["column"].as_u64()),
            (Some(line), Some(column)),
            "{name}: {error}"
        );
    }
    assert_eq!(server.request("GET", "/healthz", b"").status, 200);
}

/// The RSS of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    kib << 10
}

/// Registrations are bounded: 24 PUTs of handlers carrying a 15 MiB
/// string each fill `max_registry_bytes` (64Mi) and then get 507
/// `registry_full`, the process's memory stays within a stated bound, and
/// the guest component stays on disk however much handler bytecode went
/// through the disk cache.
#[test]
fn registrations_are_bounded_and_never_push_the_guest_out() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(cache.path(), &[]).ready();
    // The guest, once its background write is done (a temporary until
    // then).
    let components = cache.path().join("v1/components");
    let start = std::time::Instant::now();
    let guest = loop {
        let entries: Vec<_> = std::fs::read_dir(&components)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .filter(|p| crate::cache::held(p) == crate::cache::Held::Component)
            .collect();
        if !entries.is_empty() {
            break entries;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never written");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(guest.len(), 1, "the guest alone: {guest:?}");
    let before = rss(server.pid());
    let (mut registered, mut refused) = (0, 0);
    for n in 0..24 {
        let source = format!(
            "export default () => \"{n}{}\".length",
            "x".repeat(15 << 20)
        );
        let reply = server.request("PUT", &format!("/handlers/big{n}"), source.as_bytes());
        match reply.status {
            201 => registered += 1,
            507 => {
                let error = reply.json()["error"].clone();
                assert_eq!(error["kind"], "registry_full", "{error}");
                assert!(
                    error["message"]
                        .as_str()
                        .unwrap()
                        .contains("max_registry_bytes"),
                    "{error}"
                );
                refused += 1;
            }
            status => panic!("PUT {n}: {status} {}", reply.text()),
        }
    }
    assert_eq!((registered, refused), (4, 20), "64Mi holds four of them");
    let after = rss(server.pid());
    eprintln!("RSS {} MiB before, {} MiB after", before >> 20, after >> 20);
    // What registrations hold (64Mi), the memory cache (64Mi), and room
    // for the compiles' instances and the allocator: far below the 545 MiB
    // an unbounded registry reached.
    let bound = 64 + 64 + 160;
    assert!(
        after <= before + (bound << 20),
        "RSS grew from {} to {} MiB, over {bound} MiB",
        before >> 20,
        after >> 20
    );
    assert!(guest[0].exists(), "the guest component is still on disk");
    // Removing one makes room for another.
    assert_eq!(server.request("DELETE", "/handlers/big0", b"").status, 204);
    let source = format!("export default () => \"{}\".length", "y".repeat(15 << 20));
    assert_eq!(
        server
            .request("PUT", "/handlers/again", source.as_bytes())
            .status,
        201
    );
}

/// `max_handlers` bounds the names: a new one past it is refused before
/// it is compiled, while re-registering a name already there still works.
#[test]
fn max_handlers_bounds_the_names_registered() {
    let server = serve(
        &[("a.js", DOUBLE), ("b.js", DOUBLE)],
        &["--max-handlers", "2"],
    );
    let reply = server.request("PUT", "/handlers/c", DOUBLE.as_bytes());
    assert_eq!(reply.status, 507, "{}", reply.text());
    let error = reply.json()["error"].clone();
    assert_eq!(error["kind"], "registry_full");
    assert!(
        error["message"].as_str().unwrap().contains("max_handlers"),
        "{error}"
    );
    assert_eq!(
        server
            .request("PUT", "/handlers/a", HELLO.as_bytes())
            .status,
        200
    );
    assert_eq!(server.request("DELETE", "/handlers/b", b"").status, 204);
    assert_eq!(
        server
            .request("PUT", "/handlers/c", DOUBLE.as_bytes())
            .status,
        201
    );
}

/// `GET /handlers` pages by name: `limit` (100 by default, at most 1000)
/// from the first after `after`, with `next` the cursor of the next page.
#[test]
fn listing_pages_through_the_handlers_by_name() {
    let files: Vec<(String, String)> = (0..250)
        .map(|i| (format!("h{i:04}.js"), DOUBLE.to_owned()))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let server = serve(&files, &["--snapshot", "off"]);
    let names = |page: &Value| -> Vec<String> {
        page["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = server.request("GET", "/handlers", b"").json();
    assert_eq!(names(&first).len(), 100);
    assert_eq!(first["next"], "h0099");
    let mut all = names(&first);
    let mut next = first["next"].clone();
    while let Some(after) = next.as_str() {
        let page = server
            .request("GET", &format!("/handlers?limit=60&after={after}"), b"")
            .json();
        all.extend(names(&page));
        next = page["next"].clone();
    }
    let expected: Vec<String> = (0..250).map(|i| format!("h{i:04}")).collect();
    assert_eq!(all, expected);
    let some = server
        .request("GET", "/handlers?after=h0010&limit=3", b"")
        .json();
    assert_eq!(names(&some), ["h0011", "h0012", "h0013"]);
    let last = server.request("GET", "/handlers?after=h0249", b"").json();
    assert_eq!((names(&last).len(), &last["next"]), (0, &Value::Null));
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "page=2",
        "after=a&after=b",
    ] {
        let reply = server.request("GET", &format!("/handlers?{bad}"), b"");
        assert_eq!(reply.status, 400, "{bad}");
        assert_eq!(reply.json()["error"]["kind"], "bad_request", "{bad}");
    }
}
