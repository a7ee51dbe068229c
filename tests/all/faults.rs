//! Faults and load: thousands of damaged cache files, writers killed
//! mid-write, processes churning one small cache directory, and a soak of
//! good and hostile handlers at full concurrency. The long ones take
//! `NEXUS_CHURN_SECONDS` (30) and `NEXUS_SOAK_SECONDS` (60).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_host::{Artifact, Cache, Config, Key, Origin, Runtime};
use serde_json::Value;

use crate::support::server::{handlers_dir, Server};
use crate::support::Rng;

fn seconds(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// The files of one kind in a cache directory, by key.
fn entries(cache: &Path, kind: Artifact) -> Vec<(Key, PathBuf)> {
    let dir = cache.join("v1").join(match kind {
        Artifact::Component => "components",
        Artifact::Bytecode => "bytecode",
    });
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let key = Key::from_hex(name.split('.').next()?)?;
            Some((key, e.path()))
        })
        .collect();
    found.sort_by(|a, b| a.1.cmp(&b.1));
    found
}

/// The header's fields: magic, version, kind and padding, key, length,
/// build time, checksum (cache/format.rs).
const FIELDS: [(usize, usize); 7] = [
    (0, 8),
    (8, 12),
    (12, 16),
    (16, 48),
    (48, 56),
    (56, 64),
    (64, 96),
];
const HEADER_LEN: usize = 96;

/// One random damage to `good`: bit flips (mostly in the header), a
/// truncation, an extension, a header field overwritten, or another entry's
/// file (another key, or another kind) in its place.
fn mutate(rng: &mut Rng, good: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let mut bytes = good.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(3) {
                let at = if rng.below(2) == 0 {
                    rng.below(HEADER_LEN)
                } else {
                    rng.below(bytes.len())
                };
                bytes[at] ^= 1 << rng.below(8);
            }
        }
        1 => bytes.truncate(rng.below(good.len())),
        2 => bytes.extend((0..=rng.below(64)).map(|_| rng.next() as u8)),
        3 => {
            let (start, end) = FIELDS[rng.below(FIELDS.len())];
            for byte in &mut bytes[start..end] {
                *byte = rng.next() as u8;
            }
        }
        4 => bytes = others[rng.below(others.len())].to_vec(),
        _ => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
        }
    }
    bytes
}

/// Writes `rounds` damaged versions of `key`'s file and reads each through
/// a cache: each is refused (and removed) or answers the original payload.
/// Answers (refused, harmless).
fn fuzz(
    cache: &Cache,
    kind: Artifact,
    (key, path): &(Key, PathBuf),
    others: &[&[u8]],
    rounds: usize,
    rng: &mut Rng,
) -> (usize, usize) {
    let good = std::fs::read(path).unwrap();
    let payload = &good[HEADER_LEN..];
    let (mut refused, mut harmless) = (0, 0);
    for round in 0..rounds {
        let damaged = mutate(rng, &good, others);
        std::fs::write(path, &damaged).unwrap();
        let read = cache.get_or_compile(
            kind,
            *key,
            |bytes| Ok(bytes.to_vec()),
            || Err::<(Vec<u8>, Arc<[u8]>), _>("refused"),
        );
        match read {
            Ok((bytes, origin)) => {
                assert_eq!(origin, Origin::Disk);
                assert!(
                    bytes == payload,
                    "round {round}: a damaged {kind:?} file was loaded"
                );
                harmless += 1;
            }
            Err(_) => {
                assert!(
                    !path.exists(),
                    "round {round}: a refused file was left in place"
                );
                refused += 1;
            }
        }
    }
    std::fs::write(path, &good).unwrap();
    (refused, harmless)
}

#[test]
fn ten_thousand_mutations_of_real_cache_files_are_refused_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(Config {
        cache_dir: dir.path().to_owned(),
        ..crate::support::scratch_config()
    })
    .unwrap();
    for name in ["a.js", "b.js"] {
        runtime
            .compile(name, "export default (ctx) => ({ hello: ctx.name })")
            .unwrap();
    }
    runtime.cache().flush();
    drop(runtime);

    let bytecode = entries(dir.path(), Artifact::Bytecode);
    // The guest's, beside the instrumented guest and its compiled functions.
    let component: Vec<_> = entries(dir.path(), Artifact::Component)
        .into_iter()
        .filter(|(_, path)| crate::cache::held(path) == crate::cache::Held::Component)
        .collect();
    assert_eq!((bytecode.len(), component.len()), (2, 1));
    let read = |entry: &(Key, PathBuf)| std::fs::read(&entry.1).unwrap();
    let (a, b, guest) = (read(&bytecode[0]), read(&bytecode[1]), read(&component[0]));
    // No memory tier: every read goes to the file.
    let cache = Cache::open(dir.path(), 0, 1 << 30);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut refused, mut harmless) = fuzz(
        &cache,
        Artifact::Bytecode,
        &bytecode[0],
        &[&b, &guest],
        7_000,
        &mut rng,
    );
    let (r, h) = fuzz(
        &cache,
        Artifact::Component,
        &component[0],
        &[&a, &b],
        3_000,
        &mut rng,
    );
    (refused, harmless) = (refused + r, harmless + h);
    eprintln!(
        "10000 mutations: {refused} refused and removed, {harmless} harmless (payload unchanged)"
    );
    assert_eq!(refused + harmless, 10_000);
    assert!(refused > 9_000, "most damage is refused: {refused}");
    assert_eq!(
        cache.corrupt(Artifact::Bytecode) + cache.corrupt(Artifact::Component),
        refused as u64
    );
}

fn nexus(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
    cmd.env("NEXUS_CACHE_DIR", cache)
        .env_remove("NEXUS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn temporaries(cache: &Path) -> Vec<PathBuf> {
    ["components", "bytecode"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(cache.join("v1").join(d))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect()
}

fn verify(cache: &Path) -> Value {
    let out = nexus(cache)
        .args(["cache", "verify", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn writers_killed_mid_write_leave_nothing_damaged_and_the_next_start_cleans_up() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let run = |i: usize| {
        let file = work.path().join(format!("h{i}.js"));
        std::fs::write(
            &file,
            format!("export default (ctx) => ({{ i: {i}, n: ctx.n }})"),
        )
        .unwrap();
        nexus(cache.path())
            .arg("run")
            .arg(&file)
            .args(["--input", r#"{"n":7}"#])
            .spawn()
            .unwrap()
    };
    // How long a run takes here, cold (compiling the guest) and warm: the
    // kills land anywhere from the start to past the end.
    let timed = |i: usize| {
        let start = Instant::now();
        assert!(run(i).wait().unwrap().success());
        start.elapsed()
    };
    let (cold, warm) = (timed(1000), timed(1001));
    let (mut killed, mut finished) = (0, 0);
    for i in 0..40 {
        // Every fourth run starts without the guest: it compiles and writes
        // the 4 MB component, the longest write.
        let took = if i % 4 == 0 {
            let _ = std::fs::remove_dir_all(cache.path().join("v1/components"));
            cold
        } else {
            warm
        };
        let mut child = run(i);
        let kill_at = took.mul_f64(rng.below(1500) as f64 / 1000.0);
        let deadline = Instant::now() + kill_at;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "run {i} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(answer, serde_json::json!({ "i": i, "n": 7 }));
                finished += 1;
                break;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    eprintln!("40 writers: {killed} killed with SIGKILL, {finished} finished (a run took {cold:?} cold, {warm:?} warm)");
    assert!(
        killed >= 10 && finished >= 3,
        "{killed} killed, {finished} finished"
    );

    // A dead writer's leftover, and a live writer's temporary (this test
    // holds its lock): the next start removes only the first.
    let leftover = cache.path().join("v1/bytecode/.tmp-dead-writer");
    std::fs::write(&leftover, b"half an entry").unwrap();
    let live = cache.path().join("v1/bytecode/.tmp-live-writer");
    let held = std::fs::File::create(&live).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();

    let report = verify(cache.path());
    assert_eq!(report["damaged"], serde_json::json!([]), "{report}");
    let file = work.path().join("after.js");
    std::fs::write(&file, "export default () => 'after'").unwrap();
    let out = nexus(cache.path()).arg("run").arg(&file).output().unwrap();
    assert!(out.status.success());
    let left = temporaries(cache.path());
    assert_eq!(
        left,
        vec![live.clone()],
        "only the live writer's temporary stays"
    );
    drop(held);
    let report = verify(cache.path());
    assert_eq!(report["damaged"], serde_json::json!([]), "{report}");
}

/// `du -sk DIR` in bytes.
fn du(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-sk").arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn four_processes_churning_one_small_cache_stay_within_its_bound() {
    const BOUND: u64 = 16 << 20;
    // Each process may have one entry in flight past the bound; entries
    // here are a few KiB, the guest's component about 4 MB.
    const SLACK: u64 = 4 << 20;
    let cache = tempfile::tempdir().unwrap();
    let empty = handlers_dir(&[]);
    let bound = BOUND.to_string();
    let args = [
        "--handlers",
        empty.path().to_str().unwrap(),
        "--max-disk-cache-bytes",
        &bound,
        "--max-cache-size-bytes",
        "1Mi",
        "--snapshot",
        "off",
    ];
    let first = Server::start(cache.path(), &args).ready();
    let mut servers = vec![first];
    for _ in 1..4 {
        servers.push(Server::start(cache.path(), &args).ready());
    }
    let run_for = seconds("NEXUS_CHURN_SECONDS", 30);
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let mut largest = 0;
    std::thread::scope(|scope| {
        for (p, server) in servers.iter().enumerate() {
            let (stop, calls) = (&stop, &calls);
            scope.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Relaxed) {
                    i += 1;
                    let source = format!(
                        "export default (ctx) => ({{ p: {p}, i: {i}, pad: '{}' }})",
                        "x".repeat((i % 7) as usize * 300)
                    );
                    let name = format!("h{}", i % 500);
                    let put =
                        server.request("PUT", &format!("/handlers/{name}"), source.as_bytes());
                    assert!(put.status == 200 || put.status == 201, "{put:?}");
                    let reply = server.request("POST", &format!("/handlers/{name}/invoke"), b"{}");
                    assert_eq!(reply.status, 200, "{}", reply.text());
                    assert_eq!(reply.json()["i"], i);
                    calls.fetch_add(1, Relaxed);
                }
            });
        }
        let start = Instant::now();
        while start.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(250));
            largest = largest.max(du(&cache.path().join("v1")));
        }
        stop.store(true, Relaxed);
    });
    let calls = calls.load(Relaxed);
    eprintln!(
        "churn: 4 processes, {calls} registrations and invocations in {} s; du at most {} KiB (bound {} KiB + slack {} KiB)",
        run_for.as_secs(),
        largest / 1024,
        BOUND / 1024,
        SLACK / 1024
    );
    assert!(
        largest <= BOUND + SLACK,
        "du {largest} over {BOUND} + {SLACK}"
    );
    assert!(calls > 100, "{calls}");
    drop(servers);
    let report = verify(cache.path());
    assert_eq!(report["damaged"], serde_json::json!([]), "{report}");
    assert!(du(&cache.path().join("v1")) <= BOUND + SLACK);
}

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[test]
fn a_soak_of_good_and_hostile_handlers_at_max_instances_keeps_memory_flat() {
    const INSTANCES: usize = 8;
    let handlers = handlers_dir(&[
        ("good.js", "export default (ctx) => ({ twice: ctx.n * 2 })"),
        ("loop.js", "export default () => { for (;;) {} }"),
        (
            "bomb.js",
            "export default () => { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); }",
        ),
        (
            "recurse.js",
            "function f(n) { return f(n + 1) + 1; } export default () => f(0);",
        ),
        (
            "deep.js",
            "export default () => JSON.parse('['.repeat(1e6))",
        ),
        (
            "flood.js",
            "export default () => { for (;;) console.log(''); }",
        ),
        (
            "throws.js",
            "export default () => { throw new Error('no'); }",
        ),
        ("huge.js", "export default () => 'x'.repeat(2 << 20)"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let instances = INSTANCES.to_string();
    let server = Server::start(
        cache.path(),
        &[
            "--handlers",
            handlers.path().to_str().unwrap(),
            "--max-instances",
            &instances,
            "--max-memory-bytes",
            "16Mi",
            "--max-cache-size-bytes",
            "16Mi",
            "--max-output-bytes",
            "1Mi",
            "--timeout-ms",
            "2000",
            "--queue-timeout-ms",
            "60000",
        ],
    )
    .ready();
    let expected = [
        ("good", 200, "", r#"{"n":21}"#),
        ("loop", 504, "timeout", "{}"),
        ("bomb", 507, "out_of_memory", "{}"),
        ("recurse", 500, "runtime_error", "{}"),
        ("deep", 500, "stack_overflow", "{}"),
        ("flood", 504, "timeout", "{}"),
        ("throws", 500, "runtime_error", "{}"),
        ("huge", 502, "output_too_large", "{}"),
    ];
    // Every handler's snapshot built first (each snapshot and prepared
    // component adds a bounded few MiB): what is measured is the steady state.
    for (name, _, _, input) in expected {
        for _ in 0..3 {
            server.request(
                "POST",
                &format!("/handlers/{name}/invoke?timeout_ms=100"),
                input.as_bytes(),
            );
        }
    }
    let start = Instant::now();
    while server
        .request("GET", "/handlers", b"")
        .text()
        .contains("\"queued\"")
        || server
            .request("GET", "/handlers", b"")
            .text()
            .contains("\"building\"")
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "snapshots never settled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let run_for = seconds("NEXUS_SOAK_SECONDS", 60);
    let stop = AtomicBool::new(false);
    let calls = AtomicU64::new(0);
    let mut samples = Vec::new();
    std::thread::scope(|scope| {
        for t in 0..INSTANCES {
            let (stop, calls, server, expected) = (&stop, &calls, &server, &expected);
            scope.spawn(move || {
                let mut i = t;
                while !stop.load(Relaxed) {
                    let (name, status, kind, input) = expected[i % expected.len()];
                    i += 1;
                    let reply = server.request(
                        "POST",
                        &format!("/handlers/{name}/invoke"),
                        input.as_bytes(),
                    );
                    assert_eq!(reply.status, status, "{name}: {}", reply.text());
                    if status == 200 && name == "good" {
                        assert_eq!(reply.json(), serde_json::json!({ "twice": 42 }));
                    } else if status != 200 {
                        assert_eq!(reply.json()["error"]["kind"], kind, "{name}");
                    }
                    calls.fetch_add(1, Relaxed);
                }
            });
        }
        let start = Instant::now();
        while start.elapsed() < run_for {
            std::thread::sleep(Duration::from_secs(1));
            samples.push(rss(server.pid()));
        }
        stop.store(true, Relaxed);
    });
    let mib = |b: u64| b >> 20;
    let first = samples[0];
    let peak = *samples.iter().max().unwrap();
    let (early, late) = samples.split_at(samples.len() / 2);
    let (early, late) = (*early.iter().max().unwrap(), *late.iter().max().unwrap());
    eprintln!(
        "soak: {} calls in {} s at {INSTANCES} at once; RSS MiB first {}, peak {}, first half's peak {}, second half's peak {}; samples {:?}",
        calls.load(Relaxed),
        run_for.as_secs(),
        mib(first),
        mib(peak),
        mib(early),
        mib(late),
        samples.iter().map(|s| mib(*s)).collect::<Vec<_>>()
    );
    // Within the bounds: each instance slot ever used keeps up to 16 MiB
    // resident (at most INSTANCES slots), the memory cache holds 16 MiB,
    // plus a constant for thread stacks and allocator slack.
    let bound = first + INSTANCES as u64 * (16 << 20) + (16 << 20) + (64 << 20);
    assert!(peak <= bound, "RSS {peak} over {bound}: {samples:?}");
    // Flat: the second half holds no more than the first, within 32 MiB.
    assert!(late <= early + (32 << 20), "RSS grew: {samples:?}");
    assert_eq!(
        server
            .request("POST", "/handlers/good/invoke", br#"{"n":2}"#)
            .json(),
        serde_json::json!({ "twice": 4 })
    );
}
