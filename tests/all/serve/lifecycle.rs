//! Restarts on the same cache, and signals.

use super::*;

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
            server.wait_for_active(1);
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

/// The grace period holds: at its end a call still running is cut off and
/// the process exits then (within a generous margin), saying how many were
/// cut off; with nothing running, it says nothing of the kind.
#[test]
fn the_grace_period_holds_and_says_what_it_cut_off() {
    let mut server = serve(
        &[("loop.js", "export default () => { for (;;) {} }")],
        &["--timeout-ms", "30000", "--grace-period-ms", "1000"],
    );
    let pid = server.pid();
    let addr = server.addr;
    let caller = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let request =
            "POST /handlers/loop/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}";
        stream.write_all(request.as_bytes()).unwrap();
        // The server closes the connection when it cuts the call off.
        read_reply(&mut stream)
    });
    server.wait_for_active(1);
    let signalled = std::time::Instant::now();
    signal(pid, "TERM");
    let status = server.wait();
    let took = signalled.elapsed();
    assert!(status.success(), "{}", server.log());
    assert!(
        took < Duration::from_millis(1000 + 3000),
        "exits at the grace period's end, not the call's: {took:?}"
    );
    assert!(caller.join().unwrap().is_none(), "cut off, not answered");
    let log = server.log();
    assert!(
        log.contains("1 requests still running were cut off"),
        "{log}"
    );

    // Nothing running: no talk of cutting anything off.
    let mut idle = serve(&[("loop.js", "export default () => 1")], &[]);
    let _keep_alive = TcpStream::connect(idle.addr).unwrap();
    assert!(idle.terminate().success());
    assert!(!idle.log().contains("cut off"), "{}", idle.log());
}
