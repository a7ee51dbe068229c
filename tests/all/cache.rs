//! The two-tier cache, through the library and the CLI: tier sequences,
//! damage, hostile names, unusable directories, processes sharing one
//! directory, and the disk bound.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nexus_host::{Artifact, Cache, Error, Key, Op};
use nexus_host::{Config, Origin, Runtime};
use serde_json::Value;

use crate::support::{nexus, output, vectors_dir};

const HELLO: &str = "export default (ctx) => ({ hi: ctx.name })";

fn config(dir: &Path) -> Config {
    Config {
        cache_dir: dir.to_owned(),
        ..Config::default()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn component_file(dir: &Path) -> PathBuf {
    let found = files(&dir.join("v1/components"));
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

fn bytecode_file(dir: &Path, key: &Key) -> PathBuf {
    dir.join("v1/bytecode")
        .join(format!("{}.qjsc", key.to_hex()))
}

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

/// Every way a file can be damaged, applied to a good file's bytes.
fn damages(
    good: &[u8],
    other_key_file: &[u8],
    other_kind_file: &[u8],
) -> Vec<(&'static str, Vec<u8>)> {
    let mut payload_flip = good.to_vec();
    *payload_flip.last_mut().unwrap() ^= 0x40;
    let mut header_flip = good.to_vec();
    header_flip[60] ^= 0x01; // inside the checksum field
    vec![
        ("payload byte flipped", payload_flip),
        ("header byte flipped", header_flip),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("zero length", Vec::new()),
        (
            "random garbage",
            (0..good.len().min(4096))
                .map(|i| (i * 7919 % 251) as u8)
                .collect(),
        ),
        ("wrong kind", other_kind_file.to_vec()),
        ("another key's file", other_key_file.to_vec()),
    ]
}

#[test]
fn damaged_bytecode_is_detected_removed_recompiled_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (key, other) = {
        let rt = Runtime::new(config(dir.path())).unwrap();
        let a = rt.compile("a.js", HELLO).unwrap();
        let b = rt.compile("b.js", "export default () => 'b'").unwrap();
        (a.key, b.key)
    };
    let path = bytecode_file(dir.path(), &key);
    let good = std::fs::read(&path).unwrap();
    let other_file = std::fs::read(bytecode_file(dir.path(), &other)).unwrap();
    let component = std::fs::read(component_file(dir.path())).unwrap();

    for (what, bytes) in damages(&good, &other_file, &component) {
        std::fs::write(&path, &bytes).unwrap();
        let rt = Runtime::new(config(dir.path())).unwrap();
        let compiled = rt.compile("a.js", HELLO).unwrap();
        assert_eq!(compiled.origin, Origin::Compiled, "{what}");
        assert_eq!(rt.cache().corrupt(Artifact::Bytecode), 1, "{what}");
        assert_eq!(
            rt.invoke(&compiled, r#"{"name":1}"#).unwrap().output,
            r#"{"hi":1}"#
        );
        rt.cache().flush();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "{what}: rewritten whole"
        );
    }
}

#[test]
fn a_damaged_component_is_detected_removed_recompiled_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let rt = Runtime::new(config(dir.path())).unwrap();
        rt.compile("a.js", HELLO).unwrap().key
    };
    let path = component_file(dir.path());
    let good = std::fs::read(&path).unwrap();
    let bytecode = std::fs::read(bytecode_file(dir.path(), &key)).unwrap();
    // A component file of another key: the same file under another name
    // is what a rename would leave, so build one from the good bytes with
    // the key field altered (its checksum still holds).
    let mut other_key = good.clone();
    other_key[20] ^= 0xff;

    for (what, bytes) in damages(&good, &other_key, &bytecode) {
        std::fs::write(&path, &bytes).unwrap();
        let rt = Runtime::new(config(dir.path())).unwrap();
        assert_eq!(rt.component_origin(), Origin::Compiled, "{what}");
        assert_eq!(rt.cache().corrupt(Artifact::Component), 1, "{what}");
        let h = rt.compile("a.js", HELLO).unwrap();
        assert_eq!(rt.invoke(&h, "{}").unwrap().output, "{}");
        rt.cache().flush();
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            good.len(),
            "{what}: rewritten"
        );
    }
}

#[test]
fn handler_names_cannot_escape_the_cache_dir() {
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("cache");
    let rt = Runtime::new(config(&dir)).unwrap();
    let long = "x/".repeat(5000);
    let names = [
        "../../escape.js",
        "/etc/passwd",
        "a/../../b.js",
        "..",
        long.as_str(),
    ];
    for name in names {
        let h = rt.compile(name, HELLO).unwrap();
        assert_eq!(rt.invoke(&h, "{}").unwrap().output, "{}", "{name:?}");
    }
    let nul = rt.compile("nul\0byte.js", HELLO).unwrap_err();
    assert_eq!(nul.kind(), "invalid_name");
    assert!(nul.to_string().contains("NUL"), "{nul}");
    rt.cache().flush();
    // Nothing beside the cache dir, and only hex names inside it.
    let top: Vec<_> = std::fs::read_dir(outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top, ["cache"]);
    let all = files(&dir);
    assert_eq!(all.len(), names.len() + 1);
    for path in all {
        let name = path.file_name().unwrap().to_str().unwrap();
        let (hex, ext) = name.split_once('.').unwrap();
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
        assert!(ext == "qjsc" || ext == "cwasm");
    }
}

#[test]
fn a_regular_file_in_place_of_the_cache_dir_still_answers() {
    let outer = tempfile::tempdir().unwrap();
    let blocker = outer.path().join("not-a-dir");
    std::fs::write(&blocker, "in the way").unwrap();
    let rt = Runtime::new(config(&blocker)).unwrap();
    assert!(!rt.cache().disk_available());
    let h = rt.compile("a.js", HELLO).unwrap();
    assert_eq!(
        rt.invoke(&h, r#"{"name":2}"#).unwrap().output,
        r#"{"hi":2}"#
    );
    assert_eq!(rt.compile("a.js", HELLO).unwrap().origin, Origin::Memory);
    assert_eq!(rt.cache().disk_errors(Op::Open), 1);
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "in the way");
}

/// A cache directory someone else could have written: its components are
/// never loaded (they would run as native code in the host); the runtime
/// compiles its own and serves from memory.
#[test]
fn a_cache_dir_others_can_write_is_not_trusted_with_native_code() {
    use std::os::unix::fs::PermissionsExt;
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("cache");
    drop(Runtime::new(config(&dir)).unwrap());
    let planted = component_file(&dir);
    for d in ["", "v1", "v1/components", "v1/bytecode"] {
        let mode = std::fs::metadata(dir.join(d)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{d} is created 0700");
    }
    let untrusted = |why: &str, expect: &str| {
        let rt = Runtime::new(config(&dir)).unwrap();
        assert_eq!(rt.component_origin(), Origin::Compiled, "{why}: not loaded");
        assert!(!rt.cache().disk_available(), "{why}");
        let reason = rt.cache().disk_unavailable().unwrap().to_owned();
        assert!(reason.contains(expect), "{why}: {reason}");
        assert!(reason.contains("--cache-dir"), "names the fix: {reason}");
        assert_eq!(rt.cache().disk_errors(Op::Open), 1, "{why}");
        let h = rt.compile("a.js", HELLO).unwrap();
        assert_eq!(
            rt.invoke(&h, r#"{"name":1}"#).unwrap().output,
            r#"{"hi":1}"#
        );
        assert!(planted.exists(), "{why}: nothing written or removed");
    };
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(&dir.join("v1/components"), 0o777);
    untrusted(
        "components writable by others",
        "writable by group or others",
    );
    set_mode(&dir.join("v1/components"), 0o700);
    set_mode(&dir.join("v1"), 0o770);
    untrusted("v1 writable by its group", "writable by group or others");
    set_mode(&dir.join("v1"), 0o700);
    // The directory of a shared volume may be open to all (an emptyDir is
    // 0777): what is checked is the `v1` inside it.
    set_mode(&dir, 0o777);
    assert_eq!(
        Runtime::new(config(&dir)).unwrap().component_origin(),
        Origin::Disk
    );
    if running_as_root() {
        std::os::unix::fs::chown(dir.join("v1"), Some(65534), None).unwrap();
        untrusted("another owner", "owned by uid 65534");
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    })
}

/// Without a setting, the cache is per user and never under the working
/// directory, where a checkout could carry one.
#[test]
fn the_default_cache_dir_is_per_user() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let hello = vectors_dir().join("hello.js");
    let run = |xdg: Option<&Path>| {
        let (mut cmd, _c) = nexus();
        cmd.env_remove("NEXUS_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", home.path())
            .current_dir(work.path());
        if let Some(xdg) = xdg {
            cmd.env("XDG_CACHE_HOME", xdg);
        }
        assert!(output(cmd.arg("run").arg(&hello)).status.success());
    };
    run(None);
    assert!(home.path().join(".cache/nexus/v1/components").is_dir());
    run(Some(&home.path().join("xdg")));
    assert!(home.path().join("xdg/nexus/v1/bytecode").is_dir());
    assert!(
        std::fs::read_dir(work.path()).unwrap().next().is_none(),
        "nothing in the working directory"
    );
    // --help shows the default it will use.
    let (mut cmd, _c) = nexus();
    cmd.env("HOME", home.path()).env_remove("XDG_CACHE_HOME");
    let help = output(cmd.args(["run", "--help"]));
    let help = String::from_utf8(help.stdout).unwrap();
    let default = format!("[default: {}]", home.path().join(".cache/nexus").display());
    assert!(help.contains(&default), "{help}");
}

#[test]
fn a_cache_dir_without_write_access_still_answers() {
    use std::os::unix::fs::PermissionsExt;
    let outer = tempfile::tempdir().unwrap();
    std::fs::set_permissions(outer.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = outer.path().join("ro");
    // A complete, valid tree its owner, the user below, may read but not
    // write.
    drop(Cache::open(&dir, 0, 1 << 20));
    for d in [
        dir.clone(),
        dir.join("v1"),
        dir.join("v1/bytecode"),
        dir.join("v1/components"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let handler = outer.path().join("h.js");
    std::fs::write(&handler, HELLO).unwrap();

    // Root ignores permissions: run the CLI as `nobody` where we are root,
    // from a copy `nobody` can reach whatever the checkout's permissions.
    let (mut cmd, _c) = nexus();
    let is_root = std::fs::write(dir.join("probe"), "").is_ok();
    let mut cmd = if is_root {
        std::fs::remove_file(dir.join("probe")).unwrap();
        // Owned by the user that runs it, as a cache directory must be.
        for d in ["", "v1", "v1/bytecode", "v1/components"] {
            std::os::unix::fs::chown(dir.join(d), Some(65534), Some(65534)).unwrap();
        }
        let binary = outer.path().join("nexus");
        std::fs::copy(cmd.get_program(), &binary).unwrap();
        let mut setpriv = std::process::Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&binary)
            .env("NEXUS_LOG", "warn")
            .stdin(std::process::Stdio::null());
        setpriv
    } else {
        cmd.env("NEXUS_LOG", "warn");
        cmd
    };
    cmd.arg("run")
        .arg(&handler)
        .args(["--input", r#"{"name":"ro"}"#, "--cache-dir"])
        .arg(&dir);
    let out = output(&mut cmd);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "{\"hi\":\"ro\"}\n");
    let stderr = String::from_utf8(out.stderr).unwrap();
    // One warning for the failed write, however many writes failed.
    assert_eq!(
        stderr.matches("cache directory write failed").count(),
        1,
        "{stderr}"
    );
    assert!(files(&dir).is_empty(), "nothing was written");
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
        assert!(stats.evictions >= 150, "{stats:?}");
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
    assert_eq!(report["checked"], 4); // one component, three handlers
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

#[test]
fn cache_cli_stats_verify_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("c");
    let (mut cmd, _c) = nexus();
    assert!(output(
        cmd.arg("run")
            .arg(vectors_dir().join("hello.js"))
            .arg("--cache-dir")
            .arg(&cache_dir)
    )
    .status
    .success());

    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.args(["cache", "stats", "--json", "--cache-dir"])
            .arg(&cache_dir),
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["bytecode"]["entries"], 1);
    assert_eq!(stats["components"]["entries"], 1);
    assert!(stats["components"]["bytes"].as_u64().unwrap() > 1_000_000);

    // Damage the bytecode file: verify names it, removes it and exits 1.
    let bytecode = files(&cache_dir.join("v1/bytecode")).remove(0);
    let mut bytes = std::fs::read(&bytecode).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&bytecode, bytes).unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.args(["cache", "verify", "--cache-dir"]).arg(&cache_dir));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("checksum mismatch") && text.contains("2 files checked, 1 damaged"),
        "{text}"
    );
    assert!(!bytecode.exists());

    // Clear removes the cache's files and nothing else.
    std::fs::write(cache_dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(cache_dir.join("v1/components/README"), "mine too").unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.args(["cache", "clear", "--json", "--cache-dir"])
            .arg(&cache_dir),
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["removed"],
        1
    );
    assert_eq!(
        files(&cache_dir),
        [
            cache_dir.join("notes.txt"),
            cache_dir.join("v1/components/README")
        ]
    );
}

/// Runs `work` on a thread of its own; fails the test if it has not
/// answered within two minutes, instead of hanging the suite.
fn within_two_minutes<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    answer
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("it answers, and does not hang")
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A FIFO, or a sparse 1 TiB file, in place of an entry: refused before a
/// byte is read, removed, and recompiled. Neither hangs nor kills a start,
/// an invocation or `nexus cache verify`.
#[test]
fn special_and_huge_files_in_place_of_entries_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let key = Runtime::new(config(dir.path()))
        .unwrap()
        .compile("hello.js", HELLO)
        .unwrap()
        .key;
    let start = |root: PathBuf| {
        within_two_minutes(move || {
            let rt = Runtime::new(config(&root)).unwrap();
            let h = rt.compile("hello.js", HELLO).unwrap();
            let answer = rt.invoke(&h, r#"{"name":"f"}"#).unwrap().output;
            assert_eq!(answer, r#"{"hi":"f"}"#);
            rt.cache().flush();
            (
                rt.component_origin(),
                h.origin,
                rt.cache().corrupt(Artifact::Bytecode),
            )
        })
    };
    // A FIFO would block a plain open for ever.
    let bytecode = bytecode_file(dir.path(), &key);
    std::fs::remove_file(&bytecode).unwrap();
    mkfifo(&bytecode);
    let (component, handler, corrupt) = start(dir.path().to_owned());
    assert_eq!(
        (component, handler, corrupt),
        (Origin::Disk, Origin::Compiled, 1)
    );
    assert!(
        bytecode.metadata().unwrap().is_file(),
        "replaced by a real entry"
    );

    // A sparse 1 TiB file would be preallocated by a plain read, and abort.
    let component = component_file(dir.path());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&component)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let (origin, _, _) = start(dir.path().to_owned());
    assert_eq!(origin, Origin::Compiled, "the 1 TiB file was not loaded");
    assert!(component_file(dir.path()).metadata().unwrap().len() < 1 << 30);

    // `nexus cache verify` reports both kinds, removes them, and returns.
    let fifo = dir
        .path()
        .join(format!("v1/bytecode/{}.qjsc", "ab".repeat(32)));
    mkfifo(&fifo);
    let huge = dir
        .path()
        .join(format!("v1/bytecode/{}.qjsc", "cd".repeat(32)));
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let cache_dir = dir.path().to_owned();
    let out = within_two_minutes(move || {
        let (mut cmd, _c) = nexus();
        output(
            cmd.args(["cache", "verify", "--json", "--cache-dir"])
                .arg(&cache_dir),
        )
    });
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let damage: Vec<&str> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["damage"].as_str().unwrap())
        .collect();
    assert!(
        damage.iter().any(|d| d.contains("not a regular file")),
        "{report}"
    );
    assert!(
        damage.iter().any(|d| d.contains("limit on an entry")),
        "{report}"
    );
    assert!(!fifo.exists() && !huge.exists());
}

/// `nexus cache stats` and `verify` only look: with a bound of 0 they
/// evict nothing, and they never create a directory.
#[test]
fn looking_at_the_cache_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    drop(Runtime::new(config(&cache)).unwrap());
    let before = files(&cache);
    assert_eq!(before.len(), 1, "{before:?}");
    for command in ["stats", "verify"] {
        let (mut cmd, _c) = nexus();
        let out = output(
            cmd.args([
                "cache",
                command,
                "--max-disk-cache-bytes",
                "0",
                "--cache-dir",
            ])
            .arg(&cache),
        );
        assert!(out.status.success(), "{command}");
        assert_eq!(files(&cache), before, "{command} changed nothing");
    }
    let missing = dir.path().join("missing");
    for command in ["stats", "verify", "clear"] {
        let (mut cmd, _c) = nexus();
        let out = output(cmd.args(["cache", command, "--cache-dir"]).arg(&missing));
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot use"));
        assert!(!missing.exists(), "{command} created nothing");
    }
}

/// Names the cache did not write as it writes them: an uppercase-hex entry
/// is not counted (it could never be evicted), and a temporary whose name
/// is not UTF-8 is still cleared.
#[test]
fn odd_names_are_neither_counted_nor_in_the_way() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 0, 1 << 20);
    let key = Key::bytecode("guest", "h.js", HELLO, b"");
    cache
        .bytecode(key, || Ok::<_, Error>(b"x".to_vec()))
        .unwrap();
    cache.flush();
    drop(cache);
    let bytecode = dir.path().join("v1/bytecode");
    let upper = bytecode.join(format!("{}.qjsc", key.to_hex().to_uppercase()));
    std::fs::copy(bytecode_file(dir.path(), &key), &upper).unwrap();
    let odd_temp = bytecode.join(std::ffi::OsStr::from_bytes(b".tmp-\xff\xfe"));
    std::fs::write(&odd_temp, b"half written").unwrap();

    let cache = Cache::open(dir.path(), 0, 1 << 20);
    assert_eq!(
        cache.disk_stats(Artifact::Bytecode).entries,
        1,
        "only the real entry"
    );
    drop(cache);
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.args(["cache", "clear", "--json", "--cache-dir"])
            .arg(dir.path()),
    );
    assert!(out.status.success());
    assert!(!odd_temp.exists(), "the odd temporary was cleared");
    assert!(
        upper.exists(),
        "a file the cache does not own is left alone"
    );
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
