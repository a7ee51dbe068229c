//! The tiers in sequence: memory, disk, a restart; the bounds; lookups
//! of one key at once; processes sharing one directory.

use super::*;

#[test]
fn miss_then_memory_then_disk_after_a_restart_with_zero_compiles() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let rt = Runtime::new(config(dir.path())).unwrap();
        let first = rt.compile("hello.js", HELLO).unwrap();
        assert_eq!(first.origin, Origin::Compiled);
        assert!(!first.cache_hit());
        let second = rt.compile("hello.js", HELLO).unwrap();
        assert_eq!(second.origin, Origin::Memory);
        assert!(second.cache_hit());
        assert_eq!(rt.cache().compiles(Artifact::Bytecode), 1);
        first.key
    }; // dropping the runtime finishes its disk writes

    let rt = Runtime::new(config(dir.path())).unwrap();
    assert_eq!(rt.component_origin(), Origin::Disk);
    let promoted = rt.compile("hello.js", HELLO).unwrap();
    assert_eq!((promoted.origin, promoted.key), (Origin::Disk, key));
    assert_eq!(
        rt.compile("hello.js", HELLO).unwrap().origin,
        Origin::Memory
    );
    assert_eq!(
        rt.invoke(&promoted, r#"{"name":"x"}"#).unwrap().output,
        r#"{"hi":"x"}"#
    );

    let cache = rt.cache();
    assert_eq!(cache.compiles(Artifact::Bytecode), 0);
    assert_eq!(cache.compiles(Artifact::Component), 0);
    assert_eq!(cache.disk_stats(Artifact::Bytecode).hits, 1);
    assert_eq!(cache.memory_stats(Artifact::Bytecode).hits, 1);
    let stats = rt.stats();
    assert_eq!(stats.compiles, 0);
    assert_eq!(stats.bytecode.hit_rate, 1.0);
    assert_eq!(stats.components.disk.hits, 1);
}

#[test]
fn the_memory_bound_holds_and_evicts() {
    let dir = tempfile::tempdir().unwrap();
    // Room for a few small bytecode entries; the component does not fit.
    let rt = Runtime::new(Config {
        max_cache_size_bytes: 2_000,
        // Least recently used first: what this test looks for.
        cache_eviction: nexus_host::Eviction::Recency,
        ..config(dir.path())
    })
    .unwrap();
    for i in 0..20 {
        rt.compile(&format!("h{i}.js"), HELLO).unwrap();
    }
    let bytecode = rt.cache().memory_stats(Artifact::Bytecode);
    assert_eq!(rt.cache().memory_stats(Artifact::Component).entries, 0);
    assert!(bytecode.bytes <= 2_000, "{bytecode:?}");
    assert!(
        bytecode.entries > 0 && bytecode.entries < 20,
        "{bytecode:?}"
    );
    assert_eq!(bytecode.evictions, 20 - bytecode.entries);
    // The newest entry is held, the oldest went first (to disk only: wait
    // for the background writer before looking there).
    rt.cache().flush();
    assert_eq!(rt.compile("h19.js", HELLO).unwrap().origin, Origin::Memory);
    assert_eq!(rt.compile("h0.js", HELLO).unwrap().origin, Origin::Disk);
}

#[test]
fn a_new_guest_fingerprint_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 1 << 20, 1 << 20);
    let old = Key::bytecode("guest-build-1", "h.js", HELLO, b"");
    let new = Key::bytecode("guest-build-2", "h.js", HELLO, b"");
    assert_eq!(
        cache
            .bytecode(old, || Ok::<_, Error>(b"old".to_vec()))
            .unwrap()
            .1,
        Origin::Compiled
    );
    let (bytes, source) = cache
        .bytecode(new, || Ok::<_, Error>(b"new".to_vec()))
        .unwrap();
    assert_eq!((&*bytes, source), (&b"new"[..], Origin::Compiled));
    assert_eq!(cache.compiles(Artifact::Bytecode), 2);
}

#[test]
fn the_disk_bound_holds_after_many_distinct_entries() {
    let dir = tempfile::tempdir().unwrap();
    let bound = 20_000;
    {
        let cache = Cache::open(dir.path(), 0, bound);
        for i in 0..200u32 {
            let key = Key::bytecode("guest", &format!("h{i}.js"), "src", b"");
            let (bytes, source) = cache
                .bytecode(key, || Ok::<_, Error>(vec![i as u8; 900]))
                .unwrap();
            assert_eq!((bytes.len(), source), (900, Origin::Compiled));
        }
        cache.flush();
        let stats = cache.disk_stats(Artifact::Bytecode);
        assert!(stats.bytes <= bound, "{stats:?}");
        // Each takes a 4 KiB block: four fit. The rest were evicted, or
        // (under the default `cost`) refused as worth less than those held.
        assert!((1..=4).contains(&stats.entries), "{stats:?}");
    }
    let on_disk: u64 = files(dir.path())
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= bound, "{on_disk} bytes on disk");
    // A new process rebuilds its index from the directory and keeps the bound.
    let cache = Cache::open(dir.path(), 0, 5_000);
    assert!(cache.disk_stats(Artifact::Bytecode).bytes <= 5_000);
    let on_disk: u64 = files(dir.path())
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 5_000);
}

/// Eight threads look up one key at once, each compile taking 50 ms;
/// answers how many compiled.
fn compiles_of_eight_concurrent_lookups(cache: &Arc<Cache>) -> u32 {
    let compiles = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let key = Key::bytecode("guest", "same.js", "src", b"");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, compiles) = (cache.clone(), compiles.clone());
            std::thread::spawn(move || {
                cache
                    .bytecode(key, || {
                        compiles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok::<_, Error>(b"bytecode".to_vec())
                    })
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(&*t.join().unwrap().0, b"bytecode");
    }
    compiles.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn concurrent_lookups_of_one_key_compile_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(dir.path(), 1 << 20, 1 << 20));
    assert_eq!(compiles_of_eight_concurrent_lookups(&cache), 1);
}

/// With no memory tier to hold the result (`max_cache_size_bytes = 0`),
/// eight concurrent lookups of one key still compile once: the waiters get
/// the result from the first. A compile that panics does not poison its
/// key: the next lookup compiles.
#[test]
fn compile_once_holds_without_memory_and_survives_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(dir.path(), 0, 0));
    assert_eq!(compiles_of_eight_concurrent_lookups(&cache), 1);

    let other = Key::bytecode("guest", "panics.js", "src", b"");
    let panicked = std::thread::spawn({
        let cache = cache.clone();
        move || {
            cache.bytecode(other, || -> Result<Vec<u8>, Error> {
                panic!("a compiler bug")
            })
        }
    })
    .join();
    assert!(panicked.is_err());
    let (bytes, origin) = cache
        .bytecode(other, || Ok::<_, Error>(b"fine".to_vec()))
        .unwrap();
    assert_eq!((&*bytes, origin), (&b"fine"[..], Origin::Compiled));
}

#[test]
fn processes_share_one_cache_dir() {
    let dir = tempfile::tempdir().unwrap();
    let handlers: Vec<(PathBuf, String, String)> = (0..3)
        .map(|i| {
            let path = dir.path().join(format!("h{i}.js"));
            std::fs::write(
                &path,
                format!("export default (ctx) => ({{ h: {i}, n: ctx.n }})"),
            )
            .unwrap();
            (
                path,
                format!("{{\"n\":{i}}}"),
                format!("{{\"h\":{i},\"n\":{i}}}\n"),
            )
        })
        .collect();
    let cache_dir = dir.path().join("cache");
    let children: Vec<_> = (0..6)
        .map(|p| {
            let (path, input, want) = handlers[p % 3].clone();
            let (mut cmd, _c) = nexus();
            let child = cmd
                .arg("run")
                .arg(&path)
                .args(["--input", &input])
                .arg("--cache-dir")
                .arg(&cache_dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, want)
        })
        .collect();
    for (child, want) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    }
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.args(["cache", "verify", "--json", "--cache-dir"])
            .arg(&cache_dir),
    );
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The guest, the instrumented guest, its functions, three handlers.
    assert_eq!(report["checked"], 6);
    assert_eq!(report["damaged"], serde_json::json!([]));
}

#[test]
fn a_second_nexus_run_compiles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hello = vectors_dir().join("hello.js");
    let run = || {
        let (mut cmd, _c) = nexus();
        cmd.env("NEXUS_LOG", "nexus::cache=debug")
            .arg("run")
            .arg(&hello)
            .args(["--input", r#"{"name":"Ada"}"#, "--cache-dir"])
            .arg(dir.path());
        let out = output(&mut cmd);
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let first = run();
    assert!(
        first.contains("artifact=\"component\" origin=\"compiled\""),
        "{first}"
    );
    assert!(
        first.contains("artifact=\"bytecode\" origin=\"compiled\""),
        "{first}"
    );
    let second = run();
    assert!(
        second.contains("artifact=\"component\" origin=\"disk\""),
        "{second}"
    );
    assert!(
        second.contains("artifact=\"bytecode\" origin=\"disk\""),
        "{second}"
    );
    assert!(!second.contains("compiled"), "{second}");
}

/// Four writers with an index each (as four processes would have) share
/// one directory under a 256 KiB bound: what the files take on disk, in the
/// blocks `du` and the kubelet count, stays within the bound, plus one 4 KiB
/// block per writer in flight.
#[test]
fn writers_sharing_a_directory_keep_one_bound_in_blocks() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let bound = 256 * 1024;
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let root = dir.path().to_owned();
            std::thread::spawn(move || {
                let cache = Cache::open(&root, 0, bound);
                for i in 0..200 {
                    let key = Key::bytecode("guest", &format!("w{w}-{i}.js"), "src", b"");
                    cache
                        .bytecode(key, || Ok::<_, Error>(vec![w; 300]))
                        .unwrap();
                }
                cache.flush();
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let found = files(dir.path());
    let du: u64 = found
        .iter()
        .map(|f| f.metadata().unwrap().blocks() * 512)
        .sum();
    eprintln!("{} files, {du} bytes in blocks", found.len());
    assert!(du <= bound + 4 * 4096, "{du} bytes on disk over {bound}");
    assert!(found.len() >= 40, "the bound is used: {}", found.len());
}

/// A disk bound too small for the guest component would make every start
/// compile it: Nexus says so.
#[test]
fn a_disk_bound_below_the_guest_component_is_warned_about() {
    let (mut cmd, _c) = nexus();
    cmd.env("NEXUS_LOG", "warn");
    let out = output(
        cmd.arg("run")
            .arg(vectors_dir().join("hello.js"))
            .args(["--max-disk-cache-bytes", "2Mi"]),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot hold the guest component"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 8Mi"), "{stderr}");
}
