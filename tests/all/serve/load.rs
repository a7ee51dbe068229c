//! Many requests at once, and a storm of malformed ones.

use super::*;

/// Five looping handlers: calls spread over them fill every call thread
/// before any one handler's share binds.
const LOOPS: [(&str, &str); 5] = [
    ("loop0.js", LOOP),
    ("loop1.js", LOOP),
    ("loop2.js", LOOP),
    ("loop3.js", LOOP),
    ("loop4.js", LOOP),
];
const LOOP: &str = "export default () => { for (;;) {} }";

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

/// A client that goes away takes its call with it: 30 callers that each
/// give up on a looping handler after 100 ms leave nothing running, so a
/// trivial call right after answers at once, not after 30 loops have run
/// to their timeouts (10 s on two cores before).
#[test]
fn abandoned_calls_are_cancelled() {
    let server = serve(
        &[
            ("loop.js", "export default () => { for (;;) {} }"),
            ("quick.js", DOUBLE),
        ],
        &["--timeout-ms", "1000"],
    );
    for _ in 0..30 {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        let request =
            "POST /handlers/loop/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}";
        stream.write_all(request.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 64];
        let _ = std::io::Read::read(&mut stream, &mut buf);
        // Dropped: the client hangs up.
    }
    let start = std::time::Instant::now();
    let reply = server.request("POST", "/handlers/quick/invoke", br#"{"n":2}"#);
    let took = start.elapsed();
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Its own time is milliseconds; the margin is generous for a loaded
    // machine, and far below the 30 loops' 10 s.
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    let metrics = server.request("GET", "/metrics", b"").text();
    let cancelled = sample(&metrics, r#"nexus_invocations_total{outcome="cancelled"}"#);
    assert!(cancelled >= 25.0, "{cancelled} of 30 cancelled");
    // Each abandoned request is counted and logged as 499 all the same,
    // once the server has seen its connection close.
    let gone = r#"nexus_http_requests_total{route="/handlers/{name}/invoke",status="499"}"#;
    let start = std::time::Instant::now();
    loop {
        let metrics = server.request("GET", "/metrics", b"").text();
        let (counted, log) = (sample(&metrics, gone), server.log());
        let logged = log
            .matches("the client went away before the answer")
            .count();
        if (counted, logged) == (30.0, 30) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{counted} counted and {logged} logged of 30:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registrations cannot take every call thread: while as many slow
/// sources compile as there are threads, a call is still answered in a
/// small part of the time a compile takes (measured side by side).
#[test]
fn calls_are_answered_while_slow_sources_compile() {
    let server = serve(&[("quick.js", DOUBLE)], &["--timeout-ms", "60000"]);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    std::thread::scope(|scope| {
        let puts: Vec<_> = (0..threads)
            .map(|n| {
                let server = &server;
                scope.spawn(move || {
                    // Thousands of functions: seconds of parsing.
                    let source: String = (0..15_000)
                        .map(|i| format!("function f{i}(a) {{ return a + {i} + {n} }}\n"))
                        .chain(["export default () => f1(1)".to_owned()])
                        .collect();
                    let start = std::time::Instant::now();
                    let reply =
                        server.request("PUT", &format!("/handlers/slow{n}"), source.as_bytes());
                    assert_eq!(reply.status, 201, "{}", reply.text());
                    start.elapsed()
                })
            })
            .collect();
        // Once the compiles hold every thread they may, a call still gets
        // one of its own.
        server.wait_for_active(threads as u32 - 1);
        let start = std::time::Instant::now();
        let reply = server.request("POST", "/handlers/quick/invoke", br#"{"n":1}"#);
        let call = start.elapsed();
        assert_eq!(reply.status, 200, "{}", reply.text());
        let compile = puts.into_iter().map(|p| p.join().unwrap()).min().unwrap();
        assert!(
            call * 4 < compile,
            "the call took {call:?}, a compile {compile:?}: it waited for a thread"
        );
    });
}

/// Past the call threads, calls queue for at most `queue_timeout_ms`, end to
/// end: fifteen looping calls on a server whose threads are all taken get
/// 503 `busy` after about that long, naming the time they really waited.
/// They go to five looping handlers, so no handler's share binds first.
#[test]
fn calls_past_the_threads_wait_at_most_the_queue_timeout() {
    let server = serve(
        &LOOPS,
        &["--timeout-ms", "4000", "--queue-timeout-ms", "500"],
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let answers: Vec<(u16, Duration, Value, Option<String>)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..15)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let start = std::time::Instant::now();
                    let path = format!("/handlers/loop{}/invoke", i % LOOPS.len());
                    let reply = server.request("POST", &path, b"{}");
                    let retry = reply.header("retry-after").map(str::to_owned);
                    (reply.status, start.elapsed(), reply.json(), retry)
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    let timed_out = answers.iter().filter(|a| a.0 == 504).count();
    assert_eq!(timed_out, threads, "one call a thread ran to its timeout");
    assert_eq!(busy.len(), 15 - threads, "the rest were refused");
    for (_, took, body, retry) in busy {
        assert_eq!(body["error"]["kind"], "busy", "{body}");
        assert_eq!(retry.as_deref(), Some("1"));
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("queue_timeout_ms"), "{message}");
        // 500 ms, and a generous margin: not the 4 s a thread's call takes.
        assert!(
            *took < Duration::from_millis(2500),
            "refused after {took:?}"
        );
    }
}

/// `max_queued` bounds the queue itself: past it, a call is refused at once.
#[test]
fn a_full_queue_refuses_at_once() {
    let server = serve(
        &LOOPS,
        &[
            "--timeout-ms",
            "3000",
            "--queue-timeout-ms",
            "60000",
            "--max-queued",
            "0",
        ],
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    std::thread::scope(|scope| {
        let running: Vec<_> = (0..threads)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let path = format!("/handlers/loop{}/invoke", i % LOOPS.len());
                    server.request("POST", &path, b"{}").status
                })
            })
            .collect();
        server.wait_for_active(threads as u32);
        let start = std::time::Instant::now();
        let reply = server.request("POST", "/handlers/loop0/invoke", b"{}");
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(reply.text().contains("max_queued"), "{}", reply.text());
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "{:?}",
            start.elapsed()
        );
        for call in running {
            assert_eq!(call.join().unwrap(), 504);
        }
    });
}

/// One handler flooded with slow calls, at twice its share of the call
/// threads, leaves threads to the others: each call to another handler
/// answers 200 within its own timeout, while the flood waits its turn.
#[test]
fn a_flooded_handler_leaves_call_threads_to_the_others() {
    let server = serve(
        &[
            ("loop.js", "export default () => { for (;;) {} }"),
            ("quick.js", DOUBLE),
        ],
        &["--timeout-ms", "2000", "--queue-timeout-ms", "10000"],
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    // The default share: half the threads, rounded up, and never all.
    let share = threads.div_ceil(2).min(threads - 1);
    std::thread::scope(|scope| {
        let flood: Vec<_> = (0..2 * share)
            .map(|_| {
                scope.spawn(|| {
                    server
                        .request("POST", "/handlers/loop/invoke", b"{}")
                        .status
                })
            })
            .collect();
        server.wait_for_active(share as u32);
        for n in 0..5 {
            let start = std::time::Instant::now();
            let reply = server.request(
                "POST",
                "/handlers/quick/invoke?timeout_ms=500",
                format!(r#"{{"n":{n}}}"#).as_bytes(),
            );
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert!(
                start.elapsed() < Duration::from_millis(500),
                "call {n} waited {:?} behind the flood",
                start.elapsed()
            );
        }
        // The flood runs its share, no more. The last quick call's instance
        // may still be alive a moment: it is torn down after its answer.
        let start = std::time::Instant::now();
        loop {
            let metrics = server.request("GET", "/metrics", b"").text();
            let active = sample(&metrics, "nexus_instances_active");
            assert!(active <= (share + 1) as f64, "{active} active");
            if active == share as f64 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_millis(500),
                "{active} active, for a share of {share}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The flood ran in turns of its share, each to its timeout.
        for call in flood {
            assert_eq!(call.join().unwrap(), 504);
        }
    });
}
