//! Hostile handlers and concurrency through the library: each failure is its
//! own error, within its limit, and the runtime keeps serving.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nexus_host::{Config, DeferTeardown, Error, Runtime};

const LOOP: &str = "export default () => { for (;;) {} }";
const LOOP_AFTER_AWAIT: &str = "export default async () => { await null; while (true) {} }";
const BOMB: &str =
    "export default () => { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); }";
const RECURSE: &str = "function f(n) { return f(n + 1) + 1; }\nexport default () => f(0);";
/// Recursion in C that QuickJS's stack check cannot see (its JSON parser
/// in a million nested arrays): the wasm stack runs out.
const DEEP_ARRAY: &str = "export default () => JSON.parse('['.repeat(1e6))";
const HUGE: &str = "export default () => 'x'.repeat(4 * 1024 * 1024)";
const GOOD: &str = "export default (ctx) => ({ twice: ctx.n * 2 })";

/// A runtime with tight limits, shared by these tests. Its default timeout
/// is generous, so that a loaded machine never turns another failure into a
/// timeout; the looping cases pass [`LOOP_TIMEOUT`] themselves.
fn limited() -> &'static Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        Arc::new(
            Runtime::new(Config {
                cache_dir: dir,
                timeout: Duration::from_secs(20),
                max_memory_bytes: 32 << 20,
                max_output_bytes: 1 << 20,
                ..Config::default()
            })
            .unwrap(),
        )
    })
}

const LOOP_TIMEOUT: Duration = Duration::from_millis(300);

fn run(name: &str, source: &str, input: &str) -> Result<String, Error> {
    let rt = limited();
    let h = rt.compile(name, source)?;
    let timeout = name.starts_with("loop").then_some(LOOP_TIMEOUT);
    rt.invoke_with_timeout(&h, input, timeout).map(|i| i.output)
}

fn assert_still_serving() {
    assert_eq!(
        run("good.js", GOOD, r#"{"n":21}"#).unwrap(),
        r#"{"twice":42}"#
    );
}

#[test]
fn each_hostile_handler_gets_its_own_error_and_the_next_call_is_fine() {
    let cases: [(&str, &str, &str); 6] = [
        ("loop.js", LOOP, "timeout"),
        ("loop-await.js", LOOP_AFTER_AWAIT, "timeout"),
        ("bomb.js", BOMB, "out_of_memory"),
        ("recurse.js", RECURSE, "runtime_error"),
        ("deep-array.js", DEEP_ARRAY, "stack_overflow"),
        ("huge.js", HUGE, "output_too_large"),
    ];
    for (name, source, kind) in cases {
        let e = run(name, source, "{}").unwrap_err();
        assert_eq!(e.kind(), kind, "{name}: {e}");
        assert_still_serving();
    }
    match run("loop.js", LOOP, "{}").unwrap_err() {
        Error::Timeout { limit } => assert_eq!(limit, LOOP_TIMEOUT),
        other => panic!("{other}"),
    }
    match run("bomb.js", BOMB, "{}").unwrap_err() {
        Error::OutOfMemory { limit } => assert_eq!(limit, 32 << 20),
        other => panic!("{other}"),
    }
}

/// Deep recursion is QuickJS's catchable `RangeError` (not a trap that
/// ends the call): a handler can catch it and answer; at least 5 000 nested
/// calls work, as do deeply nested inputs.
#[test]
fn deep_recursion_is_a_catchable_range_error_and_five_thousand_calls_work() {
    let rt = limited();
    let depth = rt
        .compile(
            "depth.js",
            "function f(n) { return n === 0 ? 0 : 1 + f(n - 1); }
             export default (ctx) => {
               let caught = null;
               try { f(1e7); } catch (e) { caught = `${e.name}: ${e.message}`; }
               return { nested: f(ctx.n), caught };
             };",
        )
        .unwrap();
    let answer = rt.invoke(&depth, r#"{"n":5000}"#).unwrap().output;
    assert_eq!(
        answer,
        r#"{"nested":5000,"caught":"RangeError: Maximum call stack size exceeded"}"#
    );
    match rt
        .compile("r.js", RECURSE)
        .and_then(|h| rt.invoke(&h, "{}"))
    {
        Err(Error::Runtime { name, message, .. }) => {
            assert_eq!(
                (name.as_str(), message.as_str()),
                ("RangeError", "Maximum call stack size exceeded")
            );
        }
        other => panic!("uncaught, it is the handler's exception: {other:?}"),
    }

    let echo = rt
        .compile(
            "echo.js",
            "export default (ctx) => JSON.stringify(ctx).length",
        )
        .unwrap();
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(rt.invoke(&echo, &nested(10_000)).unwrap().output, "20000");
    let brackets_in_a_string = format!(r#"["{}"]"#, "[{".repeat(50_000));
    assert_eq!(
        rt.invoke(&echo, &brackets_in_a_string).unwrap().output,
        "100004",
        "brackets inside a string are not nesting"
    );
    for n in [100_000, 1_000_000] {
        match rt.invoke(&echo, &nested(n)) {
            Err(Error::InvalidInput(why)) => assert!(why.contains("at most 10000"), "{why}"),
            other => panic!("{n} deep: {other:?}"),
        }
    }
    assert_still_serving();
}

/// Parsing a bundle takes more memory than running it (a 9 MB one needs
/// ~90 MiB): compiling gets at least 256 MiB whatever the per-invocation
/// cap, as it gets at least 30 s; invocations keep the cap.
#[test]
fn compiling_may_use_more_memory_than_an_invocation() {
    let rt = Runtime::new(Config {
        max_memory_bytes: 4 << 20,
        ..crate::support::scratch_config()
    })
    .unwrap();
    let mut source = String::from("export default (ctx) => f7(ctx.n);\n");
    for i in 0..40_000 {
        source.push_str(&format!("function f{i}(a) {{ return a + {i}; }}\n"));
    }
    rt.compile("big.js", &source).unwrap();
    let bomb = rt.compile("bomb.js", BOMB).unwrap();
    match rt.invoke(&bomb, "{}") {
        Err(Error::OutOfMemory { limit }) => assert_eq!(limit, 4 << 20),
        other => panic!("{other:?}"),
    }
    let good = rt.compile("good.js", GOOD).unwrap();
    assert_eq!(
        rt.invoke(&good, r#"{"n":21}"#).unwrap().output,
        r#"{"twice":42}"#
    );
}

#[test]
fn a_call_may_override_the_timeout() {
    let rt = limited();
    let h = rt.compile("loop.js", LOOP).unwrap();
    match rt.invoke_with_timeout(&h, "{}", Some(Duration::from_millis(20))) {
        Err(Error::Timeout { limit }) => assert_eq!(limit, Duration::from_millis(20)),
        other => panic!("{other:?}"),
    }
    let slow = rt
        .compile("slow.js", "export default () => { const end = Date.now() + 400; while (Date.now() < end) {} return 'done'; }")
        .unwrap();
    let cut = rt.invoke_with_timeout(&slow, "{}", Some(Duration::from_millis(100)));
    assert_eq!(cut.unwrap_err().kind(), "timeout");
    let done = rt
        .invoke_with_timeout(&slow, "{}", Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(done.output, r#""done""#);
}

#[test]
fn timeouts_are_counted() {
    let rt = Runtime::new(Config {
        cache_dir: tempfile::tempdir().unwrap().keep(),
        timeout: Duration::from_millis(50),
        ..Config::default()
    })
    .unwrap();
    let h = rt.compile("loop.js", LOOP).unwrap();
    rt.invoke(&h, "{}").unwrap_err();
    let stats = rt.stats();
    assert_eq!(
        (stats.executions, stats.failures, stats.timeouts),
        (1, 1, 1)
    );
}

#[test]
fn sixty_four_concurrent_mixed_invocations_each_get_their_own_answer() {
    // A generous default timeout: 64 calls share two cores, and the bomb
    // must reach its memory cap, not the clock. The loops get 300 ms each.
    let rt = Arc::new(
        Runtime::new(Config {
            cache_dir: tempfile::tempdir().unwrap().keep(),
            timeout: Duration::from_secs(30),
            max_memory_bytes: 32 << 20,
            ..Config::default()
        })
        .unwrap(),
    );
    let sources = [
        ("good.js", GOOD),
        ("loop.js", LOOP),
        ("bomb.js", BOMB),
        (
            "throw.js",
            "export default () => { throw new TypeError('mine') }",
        ),
    ];
    let handlers: Vec<_> = sources
        .iter()
        .map(|(name, source)| rt.compile(name, source).unwrap())
        .collect();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results = tokio.block_on(async {
        let calls = (0..64).map(|i| {
            let (rt, handler) = (rt.clone(), handlers[i % 4].clone());
            tokio::spawn(async move {
                let input = format!(r#"{{"n":{i}}}"#);
                let timeout = (i % 4 == 1).then_some(Duration::from_millis(300));
                (i, rt.invoke_async(&handler, &input, timeout).await)
            })
        });
        futures_join(calls.collect()).await
    });
    for (i, result) in results {
        match (i % 4, result) {
            (0, Ok(answer)) => assert_eq!(answer.output, format!(r#"{{"twice":{}}}"#, i * 2)),
            (1, Err(e)) => assert_eq!(e.kind(), "timeout", "{i}"),
            (2, Err(e)) => assert_eq!(e.kind(), "out_of_memory", "{i}"),
            (3, Err(Error::Runtime { name, message, .. })) => {
                assert_eq!((name.as_str(), message.as_str()), ("TypeError", "mine"))
            }
            (kind, other) => panic!("call {i} (kind {kind}): {other:?}"),
        }
    }
    assert_eq!(rt.active_instances(), 0);
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[test]
fn past_max_instances_callers_wait_then_get_busy() {
    let rt = Arc::new(
        Runtime::new(Config {
            cache_dir: tempfile::tempdir().unwrap().keep(),
            max_instances: 1,
            queue_timeout: Duration::from_millis(50),
            timeout: Duration::from_millis(1500),
            ..Config::default()
        })
        .unwrap(),
    );
    let looping = rt.compile("loop.js", LOOP).unwrap();
    let good = rt.compile("good.js", GOOD).unwrap();
    let holder = {
        let (rt, looping) = (rt.clone(), looping.clone());
        std::thread::spawn(move || rt.invoke(&looping, "{}"))
    };
    while rt.active_instances() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let busy = rt.invoke(&good, r#"{"n":1}"#).unwrap_err();
    assert_eq!(busy.kind(), "busy");
    assert!(
        busy.to_string().contains("all 1 instances are busy"),
        "{busy}"
    );
    assert_eq!(holder.join().unwrap().unwrap_err().kind(), "timeout");
    // The slot is free again.
    assert_eq!(
        rt.invoke(&good, r#"{"n":1}"#).unwrap().output,
        r#"{"twice":2}"#
    );
}

/// A teardown deferred past the answer (what `nexus serve`'s call threads
/// do) still holds its instance's slot: at `max_instances = 1` another
/// caller waits for it, and gets it once the deferring thread tears down.
#[test]
fn a_deferred_teardown_keeps_its_slot_until_it_runs() {
    let rt = Runtime::new(Config {
        cache_dir: tempfile::tempdir().unwrap().keep(),
        max_instances: 1,
        queue_timeout: Duration::from_millis(50),
        ..Config::default()
    })
    .unwrap();
    let good = rt.compile("good.js", GOOD).unwrap();
    let other_caller =
        || std::thread::scope(|s| s.spawn(|| rt.invoke(&good, r#"{"n":2}"#)).join().unwrap());

    let later = DeferTeardown::start();
    let answered = rt.invoke(&good, r#"{"n":1}"#).unwrap();
    assert_eq!(answered.output, r#"{"twice":2}"#);
    assert_eq!(
        answered.timing.teardown,
        Duration::ZERO,
        "the teardown waits for the guard"
    );
    // A nested guard defers to the outermost one.
    drop(DeferTeardown::start());
    assert_eq!(
        rt.active_instances(),
        1,
        "the parked instance keeps its slot"
    );
    assert_eq!(other_caller().unwrap_err().kind(), "busy");

    drop(later);
    assert_eq!(rt.active_instances(), 0);
    assert_eq!(other_caller().unwrap().output, r#"{"twice":4}"#);
    // Without a guard, the call tears its instance down itself.
    let inline = rt.invoke(&good, r#"{"n":3}"#).unwrap();
    assert!(inline.timing.teardown > Duration::ZERO);
    assert_eq!(rt.active_instances(), 0);
}

/// CPU-bound processes that end when dropped: a loaded machine.
struct Hogs(Vec<std::process::Child>);

impl Hogs {
    fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .map(|_| {
                    std::process::Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .spawn()
                        .expect("start a CPU hog")
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// Deadlines keep to the clock, not to a count of sleeps: with ten CPU
/// hogs beside it on this machine's cores, a 500 ms timeout never fires
/// early, and fires within a generous 2× of its limit (the median of three;
/// bench/RESULTS.md has the measured figure).
#[test]
fn a_timeout_keeps_to_the_clock_on_a_loaded_machine() {
    let rt = limited();
    let handler = rt.compile("loop.js", LOOP).unwrap();
    let limit = Duration::from_millis(500);
    let _hogs = Hogs::start(10);
    let mut took: Vec<Duration> = (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            let e = rt
                .invoke_with_timeout(&handler, "{}", Some(limit))
                .unwrap_err();
            assert_eq!(e.kind(), "timeout", "{e}");
            start.elapsed()
        })
        .collect();
    took.sort();
    eprintln!("a 500 ms timeout under ten hogs took {took:?}");
    assert!(took[0] >= limit, "never early: {took:?}");
    assert!(took[1] <= limit * 2, "median within 2×: {took:?}");
}
