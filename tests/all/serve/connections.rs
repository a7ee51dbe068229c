//! What a connection may cost: header, idle and body timeouts, the cap on
//! open connections, descriptors running out, shutdown with connections
//! still sending headers, and the bytes of bodies held at once.

use std::io::Read;
use std::time::Instant;

use super::*;

/// Reads (and drops) what `stream` receives until the server closes it;
/// answers how long that took, or `None` if it was still open after
/// `patience`.
fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut received = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < patience {
        match stream.read(&mut buf) {
            Ok(0) => return Some((start.elapsed(), received)),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some((start.elapsed(), received)),
        }
    }
    None
}

/// A connection that sends nothing, one that sends its headers a byte at
/// a time, one kept alive after its answer, and one whose body stalls:
/// each is closed once its timeout passes (1 s here; the defaults are 30 s),
/// the stalled body with a 408 that names the setting.
#[test]
fn slow_and_idle_connections_are_closed_after_their_timeouts() {
    let server = serve(
        &[("double.js", DOUBLE)],
        &["--header-timeout-ms", "1000", "--body-timeout-ms", "1000"],
    );
    let patience = Duration::from_secs(8);
    let addr = server.addr;
    std::thread::scope(|scope| {
        let silent = scope.spawn(|| {
            let mut stream = TcpStream::connect(addr).unwrap();
            closed_within(&mut stream, patience)
        });
        let slow = scope.spawn(|| {
            let mut stream = TcpStream::connect(addr).unwrap();
            let start = Instant::now();
            // A byte every 100 ms: never a whole head.
            for byte in b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Padding: "
                .iter()
                .cycle()
            {
                if stream.write_all(&[*byte]).is_err() || start.elapsed() > patience {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            start.elapsed()
        });
        let kept_alive = scope.spawn(|| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            // The answer comes, then the connection idles until closed.
            closed_within(&mut stream, patience)
        });
        let stalled = scope.spawn(|| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(
                    b"POST /handlers/double/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"n\":",
                )
                .unwrap();
            closed_within(&mut stream, patience)
        });

        let (took, _) = silent
            .join()
            .unwrap()
            .expect("a silent connection stays open");
        assert!(
            took < Duration::from_secs(5),
            "silent: closed after {took:?}"
        );
        let took = slow.join().unwrap();
        assert!(
            took < Duration::from_secs(5),
            "slow headers: written to for {took:?}"
        );
        let (took, answer) = kept_alive
            .join()
            .unwrap()
            .expect("an idle keep-alive stays open");
        assert!(took < Duration::from_secs(5), "idle: closed after {took:?}");
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let (took, answer) = stalled.join().unwrap().expect("a stalled body stays open");
        assert!(
            took < Duration::from_secs(5),
            "stalled: closed after {took:?}"
        );
        let reply = read_reply(&mut answer.as_slice()).expect("a 408 before the close");
        assert_eq!(reply.status, 408, "{}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["kind"], "body_timeout", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("body_timeout_ms"),
            "{error}"
        );
    });
    // And the server serves on.
    assert_eq!(server.request("GET", "/healthz", b"").status, 200);
}

/// `max_connections` bounds what is open at once: past it, a new
/// connection waits (in the listen backlog) until one closes.
#[test]
fn connections_past_the_cap_wait_for_one_to_close() {
    let server = serve(&[], &["--max-connections", "4"]);
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Each is accepted (and answers) before the next.
    for stream in &mut idle {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    let mut waiting = TcpStream::connect(server.addr).unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 12];
    assert!(
        waiting.read_exact(&mut buf).is_err(),
        "a fifth connection was served beside four"
    );
    drop(idle.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let reply = read_reply(&mut waiting).expect("served once one closed");
    assert_eq!(reply.status, 200);
}

/// With 64 descriptors and 70 idle connections, accepts fail: the server
/// says so, backs off, and `/healthz` answers once the header timeout has
/// closed the idle ones.
#[test]
fn with_few_descriptors_probes_answer_once_idle_connections_are_reaped() {
    let cache = tempfile::tempdir().unwrap();
    let mut prlimit = std::process::Command::new("prlimit");
    prlimit
        .arg("--nofile=64")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_nexus"));
    let server =
        Server::launch(prlimit, cache.path(), &["--header-timeout-ms", "2000"], &[]).ready();
    let idle: Vec<TcpStream> = (0..70)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    assert!(idle.len() > 60, "only {} connected", idle.len());
    let start = Instant::now();
    let reply = server.request("GET", "/healthz", b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The idle ones' 2 s, and margin: not never, as before.
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    let log = server.log_with("accept error");
    assert!(log.contains("Too many open files"), "{log}");
    assert!(
        log.contains("open-file limit is below max_connections"),
        "{log}"
    );
    drop(idle);
}

/// A connection still sending its headers does not hold shutdown: the
/// server exits at once, not at the grace period's end.
#[test]
fn shutdown_drops_connections_still_sending_headers() {
    let mut server = serve(&[], &["--grace-period-ms", "20000"]);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 12];
    idle.read_exact(&mut buf).unwrap();
    let start = Instant::now();
    assert!(server.terminate().success(), "{}", server.log());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "held for {:?} (grace 20 s)",
        start.elapsed()
    );
    assert!(!server.log().contains("cut off"), "{}", server.log());
}

/// Eighteen clients send 15 MiB bodies to a looping handler and hang up:
/// the bodies held at once stay within `max_body_memory_bytes` (32 MiB
/// here), the rest are refused unread with 503, and the process's peak
/// memory grows by less than the eighteen bodies alone (270 MiB).
#[test]
fn large_bodies_held_at_once_are_bounded() {
    let server = serve(
        &[
            ("loop.js", "export default () => { for (;;) {} }"),
            ("double.js", DOUBLE),
        ],
        &["--timeout-ms", "2000", "--max-body-memory-bytes", "32Mi"],
    );
    assert_eq!(
        server
            .request("POST", "/handlers/double/invoke", br#"{"n":1}"#)
            .status,
        200
    );
    let before = peak_rss(server.pid());
    // Valid JSON, and nothing for the handler to build from it.
    let mut body = b"{}".to_vec();
    body.resize(15 << 20, b' ');
    let head = format!(
        "POST /handlers/loop/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    std::thread::scope(|scope| {
        for _ in 0..18 {
            let (head, body, addr) = (&head, &body, server.addr);
            scope.spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(head.as_bytes()).unwrap();
                // Refused unread, the connection may close before it all went.
                let _ = stream.write_all(body);
                std::thread::sleep(Duration::from_millis(300));
                // Then the client hangs up.
            });
        }
    });
    let metrics = server.request("GET", "/metrics", b"").text();
    let series = r#"nexus_http_requests_total{route="/handlers/{name}/invoke",status="503"}"#;
    let refused = if metrics.contains(series) {
        sample(&metrics, series)
    } else {
        0.0
    };
    assert!(refused >= 10.0, "only {refused} of 18 refused");
    let grown = peak_rss(server.pid()).saturating_sub(before);
    eprintln!(
        "refused {refused} of 18; peak memory grew {} MiB",
        grown >> 20
    );
    assert!(grown < 150 << 20, "peak memory grew {} MiB", grown >> 20);
    assert_eq!(
        server
            .request("POST", "/handlers/double/invoke", br#"{"n":2}"#)
            .status,
        200
    );
}

/// A client that sends its call and closes its side at once has gone,
/// even though the close arrives with the request: the call is cancelled
/// (it does not run to its 5 s timeout) and the connection closes unanswered.
#[test]
fn a_call_whose_client_closed_with_the_request_is_cancelled() {
    let server = serve(
        &[("loop.js", "export default () => { for (;;) {} }")],
        &["--timeout-ms", "5000"],
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"POST /handlers/loop/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (took, answer) = closed_within(&mut stream, Duration::from_secs(20)).expect("closed");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    let metrics = server.request("GET", "/metrics", b"").text();
    assert_eq!(
        sample(&metrics, r#"nexus_invocations_total{outcome="timeout"}"#),
        0.0
    );
}
