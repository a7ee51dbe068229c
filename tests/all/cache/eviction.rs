//! Eviction by what a miss would cost: build times measured, kept in the
//! files' headers across restarts, and weighed by both tiers; `recency`
//! as the alternative.

use std::time::Duration;

use nexus_host::{Built, Eviction};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn key(n: u32) -> Key {
    Key::bytecode("guest", &format!("h{n}.js"), "src", b"")
}

/// Looks `key` up, building `size` bytes said to take `cost` on a miss.
fn look_up(cache: &Cache, key: Key, size: usize, cost: Duration) -> Origin {
    let build = || {
        Ok::<_, Error>(Built {
            artifact: (),
            payload: Arc::from(vec![7u8; size]),
            cost,
        })
    };
    let (_, origin) = cache
        .get_or_build(Artifact::Bytecode, key, |_| Ok(()), build, |_| true)
        .unwrap();
    cache.flush();
    origin
}

#[test]
fn a_slow_build_outlives_quick_ones_in_both_tiers_under_cost_only() {
    for (eviction, kept) in [(Eviction::Cost, true), (Eviction::Recency, false)] {
        let dir = tempfile::tempdir().unwrap();
        // Each tier has room for three entries of 3,000 bytes (one block
        // each on disk).
        let cache = Cache::open_with(dir.path(), 9_000, 3 * 4096, eviction);
        look_up(&cache, key(0), 3_000, MS * 1500);
        for n in 1..10 {
            look_up(&cache, key(n), 3_000, MS * 2);
        }
        let origin = look_up(&cache, key(0), 3_000, MS * 1500);
        let expected = if kept {
            Origin::Memory
        } else {
            Origin::Compiled
        };
        assert_eq!(origin, expected, "{eviction:?}");
        assert_eq!(
            cache.compile_time(Artifact::Bytecode),
            MS * (1500 * (2 - kept as u32) + 2 * 9)
        );
    }
}

#[test]
fn build_times_survive_a_restart_and_rank_what_the_new_process_evicts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cache = Cache::open(dir.path(), 0, 1 << 20);
        look_up(&cache, key(0), 3_000, MS * 900);
        for n in 1..6 {
            look_up(&cache, key(n), 3_000, MS * 3);
        }
        // Newer than the slow one: recency alone would keep them.
        std::thread::sleep(MS * 20);
        look_up(&cache, key(1), 3_000, MS * 3);
    }
    // A new process with a bound of two files reads each file's build time
    // from its header, and keeps the slowest.
    let cache = Cache::open(dir.path(), 0, 2 * 4096);
    let entries = cache.disk_entries(Artifact::Bytecode);
    let costs: Vec<Duration> = entries.iter().map(|e| e.cost).collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(costs.contains(&(MS * 900)), "{costs:?}");
    assert_eq!(look_up(&cache, key(0), 3_000, MS * 900), Origin::Disk);
}

#[test]
fn a_real_compile_records_its_build_time() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(config(dir.path())).unwrap();
    let handler = rt.compile("hello.js", HELLO).unwrap();
    rt.cache().flush();
    let entries = rt.cache().disk_entries(Artifact::Bytecode);
    let entry = entries.iter().find(|e| e.key == handler.key).unwrap();
    assert!(entry.cost > Duration::ZERO, "{entry:?}");
    assert!(
        rt.cache().compile_time(Artifact::Bytecode) >= entry.cost,
        "the cache counts what it spent"
    );
    // The guest: seconds, or what the process that built it measured.
    let guest = rt.cache().disk_entries(Artifact::Component);
    assert!(guest[0].cost > MS * 10, "{guest:?}");
}

/// `cache_eviction` through the CLI: a bad value names the setting and
/// what it accepts; `recency` and `cost` both serve.
#[test]
fn the_setting_is_checked_and_both_policies_serve() {
    let handler = vectors_dir().join("hello.js");
    let run = |policy: &str| {
        let (mut cmd, _cache) = nexus();
        output(
            cmd.arg("run")
                .arg(&handler)
                .args(["--input", r#"{"name":"x"}"#])
                .env("NEXUS_CACHE_EVICTION", policy),
        )
    };
    let bad = run("oldest");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("cache_eviction") && stderr.contains("`cost` or `recency`"),
        "{stderr}"
    );
    for policy in ["recency", "cost"] {
        let out = run(policy);
        assert!(out.status.success(), "{policy}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, x!"));
    }
}
