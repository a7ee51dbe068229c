//! Where the cache may live: hostile handler names, directories others
//! can write, the per-user default, unusable directories.

use super::*;

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
    // The handlers', the guest's, the instrumented guest's, and the
    // guest's compiled functions'.
    assert_eq!(all.len(), names.len() + 3);
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
        // chmod cannot fix an owner: the advice says so, and what can.
        let rt = Runtime::new(config(&dir)).unwrap();
        let reason = rt.cache().disk_unavailable().unwrap().to_owned();
        assert!(!reason.contains("`chmod go-w`"), "{reason}");
        assert!(reason.contains("cannot change an owner"), "{reason}");
        std::os::unix::fs::chown(dir.join("v1"), Some(0), None).unwrap();
    }
}

/// A symbolic link in place of the cache's `v1` (or of a directory inside
/// it) is refused by name, with the fix, not met as "File exists".
#[test]
fn a_link_in_place_of_a_cache_directory_is_refused_saying_so() {
    let outer = tempfile::tempdir().unwrap();
    for (link, at) in [("v1", ""), ("components", "v1")] {
        let dir = outer.path().join(format!("cache-{link}"));
        let elsewhere = outer.path().join(format!("elsewhere-{link}"));
        std::fs::create_dir_all(dir.join(at)).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        if at == "v1" {
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o700);
            std::fs::set_permissions(dir.join("v1"), private).unwrap();
        }
        std::os::unix::fs::symlink(&elsewhere, dir.join(at).join(link)).unwrap();
        let rt = Runtime::new(config(&dir)).unwrap();
        assert!(!rt.cache().disk_available(), "{link}");
        let reason = rt.cache().disk_unavailable().unwrap().to_owned();
        assert!(reason.contains("is a symbolic link"), "{link}: {reason}");
        assert!(reason.contains("remove it"), "{link}: {reason}");
        assert!(!reason.contains("File exists"), "{link}: {reason}");
        let h = rt.compile("a.js", HELLO).unwrap();
        assert_eq!(rt.invoke(&h, "{}").unwrap().output, r#"{}"#);
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "nothing written through it"
        );
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
