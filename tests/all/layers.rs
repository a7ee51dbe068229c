//! The repository's own layer check (`scripts/layers.py`, reading
//! `host/layers.toml`), which CI runs before the tests: it passes on the
//! tree, and fails on an import that goes up a layer or sideways, or on
//! wasmtime named outside the engine.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(src: &Path) -> std::process::Output {
    let repo = repo();
    Command::new("python3")
        .arg(repo.join("scripts/layers.py"))
        .arg(src)
        .arg(repo.join("host/layers.toml"))
        .output()
        .expect("python3 runs the layer check")
}

/// host/src, copied so a test can add an import to it.
fn copy_of_src() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(repo().join("host/src"))
        .arg(dir.path().join("src"))
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn every_import_in_host_src_goes_down_a_layer() {
    let out = check(&repo().join("host/src"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("every import goes down"),
        "{stderr}"
    );
}

#[test]
fn an_upward_or_sideways_import_fails_the_check_naming_the_line() {
    for (file, import, says) in [
        // The cache may not reach the runtime above it...
        (
            "cache/memory.rs",
            "use crate::runtime::Runtime;",
            "`cache` imports `runtime`, a layer above",
        ),
        // ...nor the engine beside it...
        (
            "cache/key.rs",
            "pub(crate) use crate::engine::Limits;",
            "`cache` imports `engine`, a layer beside",
        ),
        // ...and an inline path counts as much as a `use`.
        (
            "engine/store.rs",
            "fn f(_: &crate::registry::Handlers) {}",
            "`engine` imports `registry`",
        ),
        // Nothing but the engine names wasmtime.
        (
            "runtime/mod.rs",
            "fn g(_: &wasmtime::Engine) {}",
            "`runtime` names the crate `wasmtime`, which only engine may",
        ),
    ] {
        let dir = copy_of_src();
        let src = dir.path().join("src");
        let path = src.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(import);
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        let out = check(&src);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        let line = text.lines().count();
        assert!(
            stderr.contains(&format!("{file}:{line}: {says}")),
            "{stderr}"
        );
    }
}

#[test]
fn a_module_missing_from_the_table_is_refused() {
    let dir = copy_of_src();
    let src = dir.path().join("src");
    std::fs::write(src.join("plugins.rs"), "use crate::error::Error;\n").unwrap();
    let out = check(&src);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("module `plugins` is in no layer"),
        "{stderr}"
    );
}
