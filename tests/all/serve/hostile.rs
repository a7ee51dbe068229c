//! The hostile mix: steady good traffic while other clients abandon
//! looping calls, send headers a byte at a time, send large bodies and
//! register large sources, all at once on loopback. Good traffic keeps
//! being answered, its p99 within a stated factor of its own quiet p99
//! measured in the same run, the process's memory within a bound, and
//! every connection is answered or closed at the end.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::*;

/// How long good traffic runs alone, then beside the hostile clients.
const QUIET: Duration = Duration::from_secs(5);
const HOSTILE: Duration = Duration::from_secs(20);

/// Good callers: each calls `double` in a loop until `stop`, and answers
/// (status, latency) for each call.
fn good_traffic(server: &Server, stop: &AtomicBool) -> Vec<(u16, Duration)> {
    let mut calls = Vec::new();
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        n += 1;
        let start = Instant::now();
        let reply = server.request(
            "POST",
            "/handlers/double/invoke",
            format!(r#"{{"n":{n}}}"#).as_bytes(),
        );
        calls.push((reply.status, start.elapsed()));
        if reply.status == 200 {
            assert_eq!(reply.json(), json!({ "twice": n * 2 }));
        }
    }
    calls
}

fn percentile(calls: &[(u16, Duration)], p: f64) -> Duration {
    let mut times: Vec<Duration> = calls.iter().map(|c| c.1).collect();
    times.sort();
    times[((times.len() as f64 - 1.0) * p).round() as usize]
}

/// Sockets the process holds open (its listener among them).
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn good_traffic_holds_up_under_a_hostile_mix() {
    let server = serve(
        &[
            ("double.js", DOUBLE),
            ("loop.js", "export default () => { for (;;) {} }"),
        ],
        &[
            "--timeout-ms",
            "1000",
            "--header-timeout-ms",
            "2000",
            "--body-timeout-ms",
            "2000",
        ],
    );
    let pid = server.pid();
    // The runtime's own (its signal pipe) and the listener.
    let idle_sockets = sockets(pid);
    let stop = AtomicBool::new(false);
    let quiet_stop = AtomicBool::new(false);

    // Quiet: good traffic alone, two callers.
    let quiet: Vec<(u16, Duration)> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| good_traffic(&server, &quiet_stop)))
            .collect();
        std::thread::sleep(QUIET);
        quiet_stop.store(true, Relaxed);
        callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let before = peak_rss(pid);

    let abandoned = AtomicU64::new(0);
    let slow_closed = AtomicU64::new(0);
    let slow_opened = AtomicU64::new(0);
    let bodies = std::sync::Mutex::new(Vec::<u16>::new());
    let puts = std::sync::Mutex::new(Vec::<u16>::new());
    let addr = server.addr;
    let good: Vec<(u16, Duration)> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| good_traffic(&server, &stop)))
            .collect();
        // Abandoned loops: each caller gives up after 100 ms.
        scope.spawn(|| {
            while !stop.load(Relaxed) {
                let mut stream = TcpStream::connect(addr).unwrap();
                let call =
                    "POST /handlers/loop/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}";
                stream.write_all(call.as_bytes()).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let _ = stream.read(&mut [0u8; 64]);
                abandoned.fetch_add(1, Relaxed);
            }
        });
        // Slow headers: 50 connections, a byte each every 500 ms, each
        // replaced when the server closes it.
        scope.spawn(|| {
            let connect = || {
                slow_opened.fetch_add(1, Relaxed);
                let stream = TcpStream::connect(addr).unwrap();
                (stream, 0usize)
            };
            let head = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
            let mut slow: Vec<(TcpStream, usize)> = (0..50).map(|_| connect()).collect();
            while !stop.load(Relaxed) {
                for entry in &mut slow {
                    let byte = head[entry.1 % head.len()];
                    if entry.0.write_all(&[byte]).is_err() {
                        slow_closed.fetch_add(1, Relaxed);
                        *entry = connect();
                    } else {
                        entry.1 += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        // Large bodies: 15 MiB inputs, one after another, from two clients.
        for _ in 0..2 {
            scope.spawn(|| {
                let mut body = br#"{"n":1}"#.to_vec();
                body.resize(15 << 20, b' ');
                while !stop.load(Relaxed) {
                    let reply = server.raw(
                        &[
                            format!(
                                "POST /handlers/double/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                            &body,
                        ]
                        .concat(),
                        false,
                    );
                    // A refused body may be cut off before its answer is read.
                    bodies.lock().unwrap().push(reply.map_or(0, |r| r.status));
                }
            });
        }
        // Large sources: thousands of functions each, registered in turn.
        scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Relaxed) {
                let source: String = (0..5_000)
                    .map(|f| format!("function f{f}(a) {{ return a + {f} + {i} }}\n"))
                    .chain(["export default () => f1(1)".to_owned()])
                    .collect();
                let reply =
                    server.request("PUT", &format!("/handlers/big{}", i % 3), source.as_bytes());
                puts.lock().unwrap().push(reply.status);
                i += 1;
            }
        });
        std::thread::sleep(HOSTILE);
        stop.store(true, Relaxed);
        callers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let grown = peak_rss(pid).saturating_sub(before);
    let metrics = server.request("GET", "/metrics", b"").text();
    let outcome = |o: &str| {
        sample(
            &metrics,
            &format!("nexus_invocations_total{{outcome=\"{o}\"}}"),
        )
    };
    eprintln!(
        "hostile mix: invocations ok {}, cancelled {}, timed out {}",
        outcome("ok"),
        outcome("cancelled"),
        outcome("timeout")
    );

    // Every connection answered or closed: once the header timeout has
    // passed, the server holds the sockets it had idle, and no more.
    std::thread::sleep(Duration::from_millis(3000));
    let open = sockets(pid);

    let quiet_p99 = percentile(&quiet, 0.99);
    let p50 = percentile(&good, 0.50);
    let p99 = percentile(&good, 0.99);
    let bodies = bodies.into_inner().unwrap();
    let puts = puts.into_inner().unwrap();
    let count = |list: &[u16], status: u16| list.iter().filter(|s| **s == status).count();
    eprintln!(
        "hostile mix: good calls {} quiet (p50 {:?}, p99 {:?}), {} under the mix (p50 {p50:?}, p99 {p99:?}, {:.1}x the quiet p99); \
         abandoned loops {}; slow-header connections {} opened, {} closed by the server; \
         15 MiB bodies {} answered 200, {} refused 503, {} cut off; 5000-function PUTs {} ({} ok); \
         peak RSS +{} MiB; sockets open after {}",
        quiet.len(),
        percentile(&quiet, 0.5),
        quiet_p99,
        good.len(),
        p99.as_secs_f64() / quiet_p99.as_secs_f64(),
        abandoned.load(Relaxed),
        slow_opened.load(Relaxed),
        slow_closed.load(Relaxed),
        count(&bodies, 200),
        count(&bodies, 503),
        count(&bodies, 0),
        puts.len(),
        puts.iter().filter(|s| **s == 200 || **s == 201).count(),
        grown >> 20,
        open,
    );

    let failed: Vec<_> = good.iter().filter(|c| c.0 != 200).collect();
    assert!(failed.is_empty(), "good calls failed: {failed:?}");
    assert!(
        p99 <= quiet_p99 * FACTOR,
        "good p99 {p99:?} is over {FACTOR}x its quiet p99 {quiet_p99:?}"
    );
    assert!(grown < 512 << 20, "peak RSS grew {} MiB", grown >> 20);
    assert!(
        slow_closed.load(Relaxed) >= 50,
        "the server closed only {} slow-header connections",
        slow_closed.load(Relaxed)
    );
    assert!(
        open <= idle_sockets,
        "{open} sockets open, {idle_sockets} when idle: {}",
        server.log()
    );
    assert!(count(&bodies, 200) > 0 && puts.iter().any(|s| *s == 201 || *s == 200));
}

/// The stated factor: good traffic's p99 under the mix against its quiet
/// p99, measured in the same run. Under the mix good calls share the three
/// call threads with the loops, the large inputs and a compile (26x to 39x
/// here in the debug build: 140 ms against 3.6 ms); the factor leaves room for a
/// slower machine.
const FACTOR: u32 = 150;
