//! The read-only seed directory (`seed_dir`): looked up after the cache
//! directory, verified like it, promoted into it, never written; a seed
//! made for another engine, damaged or writable by others is not trusted,
//! and the host compiles instead, saying why.
//!
//! The pod's case (the image's seed, a non-root user, nothing compiled) is
//! `deploy::the_pod_as_deployed_starts_warm_from_the_images_seed_and_answers_probes_and_scrape`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nexus_host::{Artifact, Cache, Key, GUEST_WASM};

use crate::support::output;
use crate::support::server::{handlers_dir, sample, Server};

const HELLO: &str = "export default (ctx) => ({ hi: ctx.name })";

/// A seed: `nexus cache warm --handlers` into a new directory.
fn warm(handlers: &Path) -> tempfile::TempDir {
    let seed = tempfile::tempdir().unwrap();
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_nexus"))
            .args(["cache", "warm", "--handlers"])
            .arg(handlers)
            .arg("--cache-dir")
            .arg(seed.path())
            .env_remove("NEXUS_LOG"),
    );
    assert!(out.status.success());
    seed
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot_of(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                let bytes = std::fs::read(entry.path()).unwrap();
                files.insert(entry.path(), (bytes, meta.modified().unwrap()));
            }
        }
    }
    files
}

fn misses(server: &Server, artifact: &str) -> f64 {
    let metrics = server.request("GET", "/metrics", b"").text();
    sample(
        &metrics,
        &format!(r#"nexus_cache_misses_total{{artifact="{artifact}"}}"#),
    )
}

/// A seed hit is promoted into the cache directory: the next start, with
/// no seed at all, still compiles nothing. The seed itself is never
/// written or touched.
#[test]
fn a_seed_hit_is_promoted_into_the_cache_directory_and_the_seed_left_untouched() {
    let handlers = handlers_dir(&[("hello.js", HELLO)]);
    let seed = warm(handlers.path());
    let before = snapshot_of(seed.path());
    let cache = tempfile::tempdir().unwrap();
    let args = ["--handlers", handlers.path().to_str().unwrap()];
    for with_seed in [true, false] {
        let env: &[(&str, &str)] = if with_seed {
            &[("NEXUS_SEED_DIR", seed.path().to_str().unwrap())]
        } else {
            &[]
        };
        let server = Server::start_with(cache.path(), &args, env).ready();
        let reply = server.request("POST", "/handlers/hello/invoke", br#"{"name":"Ada"}"#);
        assert_eq!(reply.json()["hi"], "Ada", "seed: {with_seed}");
        assert_eq!(misses(&server, "component"), 0.0, "seed: {with_seed}");
        assert_eq!(misses(&server, "bytecode"), 0.0, "seed: {with_seed}");
        let metrics = server.request("GET", "/metrics", b"").text();
        assert_eq!(
            metrics.contains(r#"tier="seed""#),
            with_seed,
            "the seed tier is reported only when there is one"
        );
        if with_seed {
            let hits = sample(
                &metrics,
                r#"nexus_cache_hits_total{artifact="component",tier="seed"}"#,
            );
            assert_eq!(hits, 1.0, "{metrics}");
        }
    }
    assert_eq!(
        snapshot_of(seed.path()),
        before,
        "the seed is only read: no file written, removed or touched"
    );
}

/// A component compiled by an engine configured otherwise than the host's
/// (what another CPU or wasmtime gives), stored as that host would store
/// it: under the key its own engine's compatibility hash gives.
fn foreign_seed() -> tempfile::TempDir {
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .cranelift_opt_level(wasmtime::OptLevel::None);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = wasmtime::component::Component::new(&engine, GUEST_WASM).unwrap();
    let bytes: std::sync::Arc<[u8]> = component.serialize().unwrap().into();
    let engine_hash = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        h.finish().to_le_bytes()
    };
    let seed = tempfile::tempdir().unwrap();
    let cache = Cache::open(seed.path(), 0, 1 << 30);
    let key = Key::component(GUEST_WASM, &engine_hash, "wizer-snapshot-v1");
    cache
        .get_or_compile(
            Artifact::Component,
            key,
            |_| Err::<(), _>("not read here".to_owned()),
            || Ok::<_, ()>(((), bytes)),
        )
        .unwrap();
    cache.flush();
    seed
}

/// A seed from another engine configuration is not loaded: its keys cannot
/// match this engine's, the host logs why (wasmtime's own reason), and
/// compiles the guest itself.
#[test]
fn a_seed_from_another_engine_is_ignored_with_the_reason_logged() {
    let seed = foreign_seed();
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        cache.path(),
        &[],
        &[("NEXUS_SEED_DIR", seed.path().to_str().unwrap())],
    )
    .ready();
    let reply = server.request("PUT", "/handlers/hello", HELLO.as_bytes());
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = server.request("POST", "/handlers/hello/invoke", br#"{"name":"Bo"}"#);
    assert_eq!(reply.json()["hi"], "Bo");
    assert_eq!(misses(&server, "component"), 1.0, "the guest was compiled");
    let log = server.log();
    let reason = log
        .lines()
        .find(|l| l.contains("the seed directory has no guest component for this engine"))
        .unwrap_or_else(|| panic!("no reason logged: {log}"));
    assert!(
        reason.contains("compiled for another engine") && reason.contains("Module was compiled"),
        "wasmtime's reason, naming what differs: {reason}"
    );
}

/// A seed file that is damaged, or that others could have written, is
/// refused (counted, logged), left as it is, and compiled instead; a seed
/// directory others may write is not used at all. The answers never change.
#[test]
fn a_damaged_or_untrusted_seed_is_refused_and_compiled_instead() {
    let handlers = handlers_dir(&[("hello.js", HELLO)]);
    let seed = warm(handlers.path());
    let bytecode_dir = seed.path().join("v1/bytecode");
    let file = std::fs::read_dir(&bytecode_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let args = ["--handlers", handlers.path().to_str().unwrap()];
    let env = [("NEXUS_SEED_DIR", seed.path().to_str().unwrap())];

    let original = std::fs::read(&file).unwrap();
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for (case, says) in [
        ("damaged", "payload checksum mismatch"),
        ("group-writable file", "writable by nobody else"),
        ("group-writable directory", "is writable by group or others"),
    ] {
        match case {
            "damaged" => {
                let mut bytes = original.clone();
                *bytes.last_mut().unwrap() ^= 0x55;
                std::fs::write(&file, bytes).unwrap();
            }
            "group-writable file" => {
                std::fs::write(&file, &original).unwrap();
                mode(&file, 0o664);
            }
            _ => {
                mode(&file, 0o644);
                mode(&seed.path().join("v1"), 0o775);
            }
        }
        let before = snapshot_of(seed.path());
        let cache = tempfile::tempdir().unwrap();
        let server = Server::start_with(cache.path(), &args, &env).ready();
        let reply = server.request("POST", "/handlers/hello/invoke", br#"{"name":"Cy"}"#);
        assert_eq!(reply.json()["hi"], "Cy", "{case}");
        assert_eq!(misses(&server, "bytecode"), 1.0, "{case}: compiled instead");
        let component = if case == "group-writable directory" {
            1.0
        } else {
            0.0
        };
        assert_eq!(misses(&server, "component"), component, "{case}");
        let log = server.log();
        assert!(log.contains(says), "{case}: {log}");
        assert_eq!(
            snapshot_of(seed.path()),
            before,
            "{case}: the seed is left as it is"
        );
    }
}

/// `nexus cache stats` counts the seed beside the cache directory, and
/// says why a seed it cannot trust is not used.
#[test]
fn cache_stats_show_the_seed_or_why_it_is_not_used() {
    let handlers = handlers_dir(&[("hello.js", HELLO)]);
    let seed = warm(handlers.path());
    // An empty cache directory, as the server leaves one before its first
    // write.
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir(cache.path().join("v1")).unwrap();
    let stats = |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
        cmd.args(["cache", "stats", "--cache-dir"])
            .arg(cache.path())
            .env("NEXUS_SEED_DIR", seed.path())
            .env_remove("NEXUS_LOG");
        if json {
            cmd.arg("--json");
        }
        let out = output(&mut cmd);
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };

    let report: serde_json::Value = serde_json::from_str(&stats(true)).unwrap();
    assert_eq!(report["components"]["entries"], 0, "{report}");
    assert_eq!(report["bytecode"]["entries"], 0, "{report}");
    let tier = &report["seed"];
    assert_eq!(tier["dir"], seed.path().to_str().unwrap(), "{report}");
    // Warm wrote the pre-initialized guest, the instrumented guest, the
    // guest's compiled functions and the handler's snapshot (components),
    // and the handler's bytecode.
    assert_eq!(tier["components"]["entries"], 4, "{report}");
    assert_eq!(tier["bytecode"]["entries"], 1, "{report}");
    assert!(tier["components"]["bytes"].as_u64().unwrap() > 1_000_000);
    let text = stats(false);
    let seed_line = format!("seed {} (read only)", seed.path().display());
    assert!(text.contains(&seed_line), "{text}");

    std::fs::set_permissions(
        seed.path().join("v1"),
        std::fs::Permissions::from_mode(0o775),
    )
    .unwrap();
    let report: serde_json::Value = serde_json::from_str(&stats(true)).unwrap();
    let why = report["seed"]["unavailable"].as_str().unwrap_or_default();
    assert!(why.contains("writable by group or others"), "{report}");
    assert!(stats(false).contains("not used: "));
}
