//! `nexus cache stats|verify|clear`, and that looking writes nothing.

use super::*;

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
    // The guest, the instrumented guest, and the guest's functions.
    assert_eq!(stats["components"]["entries"], 3);
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
        text.contains("checksum mismatch") && text.contains("4 files checked, 1 damaged"),
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
        3,
        "the three components left"
    );
    assert_eq!(
        files(&cache_dir),
        [
            cache_dir.join("notes.txt"),
            cache_dir.join("v1/components/README")
        ]
    );
}

/// `nexus cache stats` and `verify` only look: with a bound of 0 they
/// evict nothing, and they never create a directory.
#[test]
fn looking_at_the_cache_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    drop(Runtime::new(config(&cache)).unwrap());
    let before = files(&cache);
    assert_eq!(
        before.len(),
        3,
        "the guest, the instrumented guest, the guest's functions: {before:?}"
    );
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
