//! `just bench` (replay): what each eviction policy costs in compile time,
//! on a skewed trace over many handlers whose artifacts are real.
//!
//! 1. Profiles: every compat handler's bytecode and snapshot are built
//!    once through a real runtime; their sizes, and the build times their
//!    cache headers record, are the profiles.
//! 2. Trace: `NEXUS_REPLAY_HANDLERS` handlers (default 1,000), each with
//!    its own keys and one profile (in turn); `NEXUS_REPLAY_REQUESTS`
//!    requests (default 4,000) drawn from a Zipf distribution of exponent
//!    `NEXUS_REPLAY_ZIPF` (default 1.0) over them, popularity shuffled.
//!    A request looks up its handler's bytecode, then its snapshot, as a
//!    cold start does; a miss "builds" the artifact: the profile's bytes,
//!    charged the profile's build time (no time is spent).
//! 3. Replay: the same trace through a real `Cache` per policy, at the
//!    default bounds (64Mi memory, 96Mi disk) on a memory-backed directory
//!    when there is one, with the guest component in it and pinned, as a
//!    runtime has it.
//!
//! Prints each policy's hit rate per tier and the compile seconds spent,
//! side by side. Needs the compat handlers: `node tests/compat/make-handlers.mjs
//! target/bench-handlers` (the `bench` recipe runs it).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nexus_host::{Artifact, Built, Cache, Config, Eviction, Key, Origin, Runtime};

/// One real handler's artifacts: (bytes, build time) of each.
struct Profile {
    name: String,
    bytecode: (u64, Duration),
    snapshot: Option<(u64, Duration)>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The entries `after` holds that `before` did not.
fn added(
    before: &[nexus_host::DiskEntry],
    after: &[nexus_host::DiskEntry],
) -> Vec<(u64, Duration)> {
    after
        .iter()
        .filter(|entry| !before.contains(entry))
        .map(|entry| (entry.bytes, entry.cost))
        .collect()
}

/// Builds each handler's bytecode and snapshot through a runtime, and reads
/// back their sizes and recorded build times; also the guest's.
fn profiles(handlers: &Path, work: &Path) -> ((u64, Duration), Vec<Profile>) {
    let runtime = Runtime::new(Config {
        cache_dir: work.join("profiles"),
        max_disk_cache_bytes: 4 << 30,
        ..Config::default()
    })
    .expect("a runtime");
    let cache = runtime.cache();
    let entries = |kind| {
        cache.flush();
        cache.disk_entries(kind)
    };
    let guest = entries(Artifact::Component)[0];
    // The first snapshot in a process also instruments the guest: not a
    // handler's own cost.
    let warm = runtime
        .compile("warm.js", "export default () => 1")
        .expect("compiles");
    runtime.prepare(&warm).expect("prepares");

    let mut files: Vec<PathBuf> = std::fs::read_dir(handlers)
        .expect("the compat handlers (node tests/compat/make-handlers.mjs target/bench-handlers)")
        .map(|e| e.unwrap().path())
        // Each bundle once: `combined.js` is several of them.
        .filter(|p| p.extension().is_some_and(|e| e == "js") && !p.ends_with("combined.js"))
        .collect();
    files.sort();
    let mut profiles = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&file).unwrap();
        let before = (entries(Artifact::Bytecode), entries(Artifact::Component));
        let Ok(handler) = runtime.compile(&name, &source) else {
            eprintln!("{name}: does not compile, left out");
            continue;
        };
        let prepared = runtime.prepare(&handler).is_ok();
        let bytecode = added(&before.0, &entries(Artifact::Bytecode));
        let snapshot = added(&before.1, &entries(Artifact::Component));
        let Some(&bytecode) = bytecode.first() else {
            continue;
        };
        profiles.push(Profile {
            name,
            bytecode,
            snapshot: snapshot.first().copied().filter(|_| prepared),
        });
    }
    ((guest.bytes, guest.cost), profiles)
}

/// splitmix64: enough randomness for a trace, and the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Handler indices, Zipf-distributed over shuffled ranks.
fn trace(handlers: usize, requests: usize, exponent: f64) -> Vec<usize> {
    let mut rng = Rng(0x006e_6578_7573);
    let mut by_rank: Vec<usize> = (0..handlers).collect();
    for i in (1..handlers).rev() {
        by_rank.swap(i, rng.next() as usize % (i + 1));
    }
    let mut cumulative = Vec::with_capacity(handlers);
    let mut sum = 0.0;
    for rank in 1..=handlers {
        sum += 1.0 / (rank as f64).powf(exponent);
        cumulative.push(sum);
    }
    (0..requests)
        .map(|_| {
            let x = rng.unit() * sum;
            by_rank[cumulative.partition_point(|&c| c < x).min(handlers - 1)]
        })
        .collect()
}

struct Outcome {
    lookups: u64,
    memory: (u64, u64),
    disk: (u64, u64),
    compiles: u64,
    compile: Duration,
}

fn key(kind: &str, handler: usize) -> Key {
    Key::bytecode("replay", kind, &handler.to_string(), &[])
}

/// Looks `key` up, "building" `size` bytes charged `cost` on a miss.
fn look_up(cache: &Cache, kind: Artifact, key: Key, (size, cost): (u64, Duration)) -> Origin {
    let build = || {
        Ok::<_, ()>(Built {
            artifact: (),
            payload: Arc::from(vec![0u8; size as usize]),
            cost,
        })
    };
    let (_, origin) = cache
        .get_or_build(kind, key, |_| Ok(()), build, |_| true)
        .unwrap();
    if origin == Origin::Compiled {
        // Every write lands before the next lookup: a replay is the same
        // whatever the writer thread's timing.
        cache.flush();
    }
    origin
}

fn replay(
    eviction: Eviction,
    dir: &Path,
    guest: (u64, Duration),
    profiles: &[Profile],
    trace: &[usize],
) -> Outcome {
    let cache = Cache::open_with(dir, 64 << 20, 96 << 20, eviction);
    let guest_key = key("guest", 0);
    cache.pin(Artifact::Component, guest_key);
    look_up(&cache, Artifact::Component, guest_key, guest);
    let start = (
        cache.compiles(Artifact::Bytecode) + cache.compiles(Artifact::Component),
        cache.compile_time(Artifact::Bytecode) + cache.compile_time(Artifact::Component),
    );
    let mut lookups = 0;
    for &handler in trace {
        let profile = &profiles[handler % profiles.len()];
        look_up(
            &cache,
            Artifact::Bytecode,
            key("bytecode", handler),
            profile.bytecode,
        );
        lookups += 1;
        if let Some(snapshot) = profile.snapshot {
            look_up(
                &cache,
                Artifact::Component,
                key("snapshot", handler),
                snapshot,
            );
            lookups += 1;
        }
    }
    let sum = |f: fn(&Cache, Artifact) -> nexus_host::TierStats| {
        Artifact::ALL.iter().fold((0, 0), |(h, m), &kind| {
            let stats = f(&cache, kind);
            (h + stats.hits, m + stats.misses)
        })
    };
    Outcome {
        lookups,
        memory: sum(Cache::memory_stats),
        disk: sum(Cache::disk_stats),
        compiles: cache.compiles(Artifact::Bytecode) + cache.compiles(Artifact::Component)
            - start.0,
        compile: cache.compile_time(Artifact::Bytecode) + cache.compile_time(Artifact::Component)
            - start.1,
    }
}

fn rate((hits, misses): (u64, u64)) -> String {
    format!(
        "{:.1}%",
        100.0 * hits as f64 / (hits + misses).max(1) as f64
    )
}

fn main() {
    common::on_big_stack(run);
}

fn run() {
    let handlers = common::root().join("target/bench-handlers");
    // Memory-backed, as the Kubernetes cache volume is, when there is one.
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let (guest, profiles) = profiles(&handlers, work.path());
    assert!(
        !profiles.is_empty(),
        "no handlers in {}",
        handlers.display()
    );

    println!("\n### Artifacts the replay uses (built here, build times from their headers)\n");
    println!("| handler | bytecode | built in | snapshot | built in |");
    println!("|---|---|---|---|---|");
    let kib = |b: u64| format!("{:.0} KiB", b as f64 / 1024.0);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    for p in &profiles {
        let (snapshot, built) = p
            .snapshot
            .map_or(("—".into(), "—".into()), |(b, d)| (mib(b), ms(d)));
        println!(
            "| {} | {} | {} | {snapshot} | {built} |",
            p.name,
            kib(p.bytecode.0),
            ms(p.bytecode.1)
        );
    }
    println!(
        "| (the guest, pinned) | | | {} | {} |",
        mib(guest.0),
        ms(guest.1)
    );

    let handler_count = env_or("NEXUS_REPLAY_HANDLERS", 1000);
    let requests = env_or("NEXUS_REPLAY_REQUESTS", 4000);
    let exponent = env_or("NEXUS_REPLAY_ZIPF", 1.0);
    let trace = trace(handler_count, requests, exponent);
    println!(
        "\n### Replay: {requests} requests, Zipf({exponent}) over {handler_count} handlers; \
         memory 64Mi, disk 96Mi\n"
    );
    println!("| eviction | lookups | memory hit rate | disk hit rate | compiled nothing | compiles | compile seconds | vs recency |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for eviction in [Eviction::Recency, Eviction::Cost] {
        let dir = work.path().join(eviction.as_str());
        let outcome = replay(eviction, &dir, guest, &profiles, &trace);
        let seconds = outcome.compile.as_secs_f64();
        let base = *baseline.get_or_insert(seconds);
        println!(
            "| {} | {} | {} | {} | {} | {} | {seconds:.1} | {:.2}× |",
            eviction.as_str(),
            outcome.lookups,
            rate(outcome.memory),
            rate(outcome.disk),
            rate((outcome.lookups - outcome.compiles, outcome.compiles)),
            outcome.compiles,
            seconds / base,
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
