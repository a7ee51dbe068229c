//! What an operator sees per handler: its series in `/metrics` (bounded by
//! `max_handler_series`), its figures in `GET /handlers/{name}`, and the
//! request id on every response and log line.

use super::*;
use crate::support::server::Reply;

const NOISY: &str = r#"export default (ctx) => {
  console.log("one", ctx.n);
  console.warn("two", ctx.n);
  if (ctx.fail) throw new Error("asked to fail");
  return { n: ctx.n };
}"#;

/// The label sets of `family`'s samples in a scrape (without `_bucket`,
/// `_sum`, `_count` suffixes).
fn handler_labels(scrape: &str, family: &str) -> std::collections::BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(family))
        .filter_map(|rest| {
            let rest = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| rest.strip_prefix(s))
                .unwrap_or(rest);
            let labels = rest.strip_prefix('{')?;
            let at = labels.find("handler=\"")? + "handler=\"".len();
            let end = labels[at..].find('"')?;
            Some(labels[at..at + end].to_owned())
        })
        .collect()
}

#[test]
fn each_handler_has_its_own_outcomes_durations_and_console_lines() {
    let server = serve(
        &[
            ("noisy.js", NOISY),
            ("loop.js", "export default () => { for (;;) {} }"),
        ],
        &["--console-lines-per-second", "1", "--snapshot", "off"],
    );
    for n in 0..3 {
        let body = format!(r#"{{"n":{n}}}"#);
        let reply = server.request("POST", "/handlers/noisy/invoke", body.as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let failed = server.request("POST", "/handlers/noisy/invoke", br#"{"fail":true}"#);
    assert_eq!(failed.status, 500, "{}", failed.text());
    let timed_out = server.request("POST", "/handlers/loop/invoke?timeout_ms=50", b"{}");
    assert_eq!(timed_out.status, 504);

    let scrape = server.request("GET", "/metrics", b"").text();
    let calls = |handler: &str, outcome: &str| {
        sample(
            &scrape,
            &format!(
                r#"nexus_handler_invocations_total{{handler="{handler}",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(calls("noisy", "ok"), 3.0);
    assert_eq!(calls("noisy", "runtime_error"), 1.0);
    assert_eq!(calls("loop", "timeout"), 1.0);
    assert_eq!(calls("loop", "ok"), 0.0, "ok is always there");
    assert!(
        !scrape.contains(r#"handler="loop",outcome="runtime_error""#),
        "an error kind appears once it happened"
    );
    let count = |handler: &str| {
        sample(
            &scrape,
            &format!(r#"nexus_handler_duration_seconds_count{{handler="{handler}"}}"#),
        )
    };
    assert_eq!((count("noisy"), count("loop")), (4.0, 1.0));
    // The timeout is at least 50 ms: only buckets from 0.05 s up hold it.
    let bucket = |le: &str| {
        sample(
            &scrape,
            &format!(r#"nexus_handler_duration_seconds_bucket{{handler="loop",le="{le}"}}"#),
        )
    };
    assert_eq!(
        (bucket("0.00001"), bucket("0.025"), bucket("10")),
        (0.0, 0.0, 1.0)
    );
    assert_eq!(
        sample(
            &scrape,
            r#"nexus_handler_console_lines_total{handler="noisy"}"#
        ),
        8.0
    );
    // One line a second: of 8 lines written in well under a few seconds,
    // most were kept out of the log.
    let suppressed = sample(
        &scrape,
        r#"nexus_handler_console_lines_suppressed_total{handler="noisy",reason="rate_limit"}"#,
    );
    assert!((4.0..=7.0).contains(&suppressed), "{suppressed}");
    assert_eq!(
        sample(
            &scrape,
            r#"nexus_handler_info{handler="noisy",path="plain",snapshot="off"}"#
        ),
        1.0
    );
    assert_eq!(sample(&scrape, "nexus_handler_series_folded_total"), 0.0);

    // The same figures, for one handler, over the API.
    let shown = server.request("GET", "/handlers/noisy", b"").json();
    assert_eq!(shown["outcomes"], json!({ "ok": 3, "runtime_error": 1 }));
    assert_eq!(shown["errors"], 1);
    assert_eq!(shown["console_lines"]["written"], 8);
    assert_eq!(shown["console_lines"]["suppressed"], suppressed as u64);
    assert_eq!(shown["metrics_handler"], "noisy");

    // Re-registering a handler keeps its figures; removing it drops them.
    let replaced = server.request("PUT", "/handlers/noisy", NOISY.as_bytes());
    assert_eq!(replaced.status, 200);
    let shown = server.request("GET", "/handlers/noisy", b"").json();
    assert_eq!(shown["outcomes"]["ok"], 3);
    assert_eq!(server.request("DELETE", "/handlers/noisy", b"").status, 204);
    let scrape = server.request("GET", "/metrics", b"").text();
    assert!(!scrape.contains(r#"handler="noisy""#), "{scrape}");
}

#[test]
fn a_thousand_handlers_give_at_most_max_handler_series_and_other() {
    const HANDLERS: usize = 1000;
    const MAX: usize = 40;
    let files: Vec<(String, String)> = (0..HANDLERS)
        .map(|i| (format!("h{i:04}.js"), format!("export default () => ({i})")))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let max = MAX.to_string();
    let server = serve(&files, &["--max-handler-series", &max, "--snapshot", "off"]);
    for i in 0..HANDLERS {
        let reply = server.request("POST", &format!("/handlers/h{i:04}/invoke"), b"");
        assert_eq!(reply.text(), i.to_string());
    }
    let scrape = server.request("GET", "/metrics", b"").text();
    for family in [
        "nexus_handler_invocations_total",
        "nexus_handler_duration_seconds",
        "nexus_handler_console_lines_total",
        "nexus_handler_console_lines_suppressed_total",
    ] {
        let labels = handler_labels(&scrape, family);
        assert_eq!(labels.len(), MAX + 1, "{family}: {labels:?}");
        assert!(labels.contains("_other"), "{family}");
    }
    assert_eq!(handler_labels(&scrape, "nexus_handler_info").len(), MAX);
    let folded = (HANDLERS - MAX) as f64;
    assert_eq!(sample(&scrape, "nexus_handler_series_folded_total"), folded);
    // Every call is counted once: by its own handler, or under _other.
    let ok: f64 = scrape
        .lines()
        .filter(|l| {
            l.starts_with("nexus_handler_invocations_total{") && l.contains(r#"outcome="ok""#)
        })
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(ok, HANDLERS as f64);
    assert_eq!(
        sample(
            &scrape,
            r#"nexus_handler_invocations_total{handler="_other",outcome="ok"}"#
        ),
        folded
    );
    // A folded handler's own figures are still its own.
    let folded_one = server
        .request("GET", &format!("/handlers/h{:04}", HANDLERS - 1), b"")
        .json();
    assert_eq!(folded_one["metrics_handler"], "_other");
    assert_eq!(folded_one["outcomes"], json!({ "ok": 1 }));
}

#[test]
fn a_request_id_ties_the_handlers_console_lines_and_the_access_line_together() {
    let server = serve(
        &[(
            "two.js",
            r#"export default (ctx) => { console.log("first line", ctx.n); console.error("second line"); return ctx; }"#,
        )],
        &["--log-format", "json", "--snapshot", "off"],
    );
    let id = "trace-7f3a/9 with spaces";
    let reply = server.request_with(
        "POST",
        "/handlers/two/invoke",
        &format!("X-Request-Id: {id}\r\n"),
        br#"{"n":5}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some(id));
    let log = server.log_with(r#""target":"nexus::access""#);
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["request_id"] == id)
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(
        messages,
        ["first line 5", "second line", "answered"],
        "{log}"
    );
    for line in &lines {
        assert_eq!(line["handler"], "two", "{line}");
    }
    // The access line's figures are fields, not text.
    let access = &lines[2];
    assert_eq!(access["target"], "nexus::access");
    assert_eq!(access["status"], 200);
    assert_eq!(access["path"], "plain");
    assert_eq!(access["route"], "/handlers/{name}/invoke");
    assert!(access["duration_us"].as_u64().unwrap() > 0, "{access}");
    assert_eq!(lines[1]["level"], "ERROR");

    // Probes get their id, but no access line at the default level.
    let probe = server.request_with("GET", "/healthz", "X-Request-Id: probe-1\r\n", b"");
    assert_eq!(probe.header("x-request-id"), Some("probe-1"));
    let after = server.request_with("GET", "/handlers", "X-Request-Id: after-probe\r\n", b"");
    assert_eq!(after.status, 200);
    let log = server.log_with(r#""request_id":"after-probe""#);
    assert!(!log.contains(r#""request_id":"probe-1""#), "{log}");
}

/// Busy threads write their log lines in batches: none is split, merged
/// or lost, a call's console line still comes before its access line,
/// and what was batched when SIGTERM came is written before the exit.
#[test]
fn under_load_every_line_is_written_whole_once_and_in_order() {
    let mut server = serve(
        &[(
            "say.js",
            r#"export default (ctx) => { console.log("said", ctx.n); return ctx.n; }"#,
        )],
        &[
            "--log-format",
            "json",
            "--console-lines-per-second",
            "100000",
        ],
    );
    const CALLERS: usize = 16;
    const EACH: usize = 25;
    std::thread::scope(|scope| {
        for caller in 0..CALLERS {
            let server = &server;
            scope.spawn(move || {
                for call in 0..EACH {
                    let n = caller * EACH + call;
                    let reply = server.request_with(
                        "POST",
                        "/handlers/say/invoke",
                        &format!("X-Request-Id: load-{n}\r\n"),
                        format!(r#"{{"n":{n}}}"#).as_bytes(),
                    );
                    assert_eq!((reply.status, reply.json()), (200, json!(n)));
                }
            });
        }
    });
    assert!(server.terminate().success());
    let log = server.log();
    let mut seen = std::collections::HashMap::<String, Vec<String>>::new();
    for line in log.lines() {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(id) = line["request_id"]
            .as_str()
            .filter(|id| id.starts_with("load-"))
        {
            let message = line["message"].as_str().unwrap().to_owned();
            seen.entry(id.to_owned()).or_default().push(message);
        }
    }
    assert_eq!(seen.len(), CALLERS * EACH);
    for (id, messages) in &seen {
        let n = id.strip_prefix("load-").unwrap();
        assert_eq!(messages, &[format!("said {n}"), "answered".into()], "{id}");
    }
}

#[test]
fn every_response_carries_a_request_id_and_an_insane_one_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("admin");
    std::fs::write(&tokens, "admin-token-5b1d\n").unwrap();
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let admin = ["--admin-token-file", tokens.to_str().unwrap()];
    let server = serve(&[("double.js", DOUBLE)], &admin);
    let id_of = |reply: &Reply| reply.header("x-request-id").map(str::to_owned);
    // Answers and errors alike: a fresh id each.
    let replies = [
        server.request("POST", "/handlers/double/invoke", br#"{"n":1}"#),
        server.request("POST", "/handlers/nope/invoke", b"{}"),
        server.request("POST", "/handlers/Bad!/invoke", b"{}"),
        server.request("POST", "/handlers/double/invoke", b"not json"),
        server.request("GET", "/no/such/route", b""),
        server.request("PUT", "/handlers/double", DOUBLE.as_bytes()),
        server.request("GET", "/metrics", b""),
    ];
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404, 400, 400, 404, 401, 200]);
    let mut ids: Vec<String> = replies.iter().map(|r| id_of(r).expect("an id")).collect();
    for id in &ids {
        assert!(uuid_like(id), "{id}");
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), replies.len(), "each request its own id");
    // Too long, or not printable ASCII: replaced, never echoed.
    for insane in ["x".repeat(129), "tab\there".to_owned()] {
        let reply = server.request_with(
            "GET",
            "/healthz",
            &format!("X-Request-Id: {insane}\r\n"),
            b"",
        );
        let id = id_of(&reply).unwrap();
        assert!(uuid_like(&id), "{insane:?} became {id}");
    }
    let longest = "x".repeat(128);
    let reply = server.request_with(
        "GET",
        "/healthz",
        &format!("X-Request-Id: {longest}\r\n"),
        b"",
    );
    assert_eq!(id_of(&reply), Some(longest));
}

/// `8-4-4-4-12` hex digits.
fn uuid_like(id: &str) -> bool {
    let parts: Vec<usize> = id.split('-').map(str::len).collect();
    parts == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}
