//! The handlers directory is the registry: two servers watching one
//! directory agree, a restart serves what was registered, a kubelet-style
//! `..data` swap adds, changes and removes handlers, a broken change keeps
//! the old version serving, rapid changes end in the last one, and a
//! read-only directory refuses registrations.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use super::*;

/// How long a change may take to reach a server watching the directory.
const CONVERGE: Duration = Duration::from_secs(10);

/// Polls `check` until it holds, for at most [`CONVERGE`].
fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < CONVERGE,
            "{what}: not within {CONVERGE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn answer(server: &Server, name: &str) -> Option<Value> {
    let reply = server.request("POST", &format!("/handlers/{name}/invoke"), b"{}");
    (reply.status == 200).then(|| reply.json())
}

/// Replaces `path` with `text` as an editor or `kubectl cp` would: a new
/// file renamed over it.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("swp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn returns(value: &str) -> String {
    format!("export default () => ({value})")
}

#[test]
fn two_servers_watching_one_directory_agree_and_a_restart_keeps_the_set() {
    let dir = handlers_dir(&[("double.js", DOUBLE)]);
    let dir_arg = dir.path().to_str().unwrap();
    let (cache_a, cache_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Server::start(cache_a.path(), &["--handlers", dir_arg]).ready();
    let b = Server::start(cache_b.path(), &["--handlers", dir_arg]).ready();

    let put = a.request(
        "PUT",
        "/handlers/hello?snapshot=off&isolation=reuse",
        HELLO.as_bytes(),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    assert!(dir.path().join("hello.js").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hello.snapshot")).unwrap(),
        "off"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hello.isolation")).unwrap(),
        "reuse"
    );
    let took = eventually("B serves A's registration", || {
        answer(&b, "hello").is_some()
    });
    eprintln!("a PUT to one server reached the other in {took:?}");
    let shown = b.request("GET", "/handlers/hello", b"").json();
    assert_eq!(shown["snapshot_policy"], "off", "{shown}");
    assert_eq!(shown["isolation"], "reuse", "{shown}");

    assert_eq!(a.request("DELETE", "/handlers/double", b"").status, 204);
    assert!(!dir.path().join("double.js").exists());
    let took = eventually("B drops A's removal", || {
        b.request("GET", "/handlers/double", b"").status == 404
    });
    eprintln!("a DELETE on one server reached the other in {took:?}");

    // A restart serves the same set, with the handler's own policy.
    assert!(a.terminate().success());
    let a = Server::start(cache_a.path(), &["--handlers", dir_arg]).ready();
    let names: Vec<Value> = a.request("GET", "/handlers", b"").json()["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("hello")]);
    let shown = a.request("GET", "/handlers/hello", b"").json();
    assert_eq!(shown["snapshot_policy"], "off", "{shown}");
    assert_eq!(shown["isolation"], "reuse", "{shown}");
}

/// The kubelet's update of a mounted ConfigMap: the files are symlinks
/// through `..data`, which is swapped in one rename to a new timestamped
/// directory; then new names get their symlinks and removed ones lose
/// theirs.
#[test]
fn a_kubelet_style_swap_adds_changes_and_removes_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let version = |stamp: &str, files: &[(&str, String)]| {
        let at = root.join(stamp);
        std::fs::create_dir(&at).unwrap();
        for (name, text) in files {
            std::fs::write(at.join(name), text).unwrap();
        }
    };
    version(
        "..2026_12_04_10_00_00.1",
        &[("a.js", returns("1")), ("b.js", returns("2"))],
    );
    std::os::unix::fs::symlink("..2026_12_04_10_00_00.1", root.join("..data")).unwrap();
    for name in ["a.js", "b.js"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(cache.path(), &["--handlers", root.to_str().unwrap()]).ready();
    assert_eq!(answer(&server, "a"), Some(json!(1)));
    assert_eq!(answer(&server, "b"), Some(json!(2)));

    version(
        "..2026_12_04_10_05_00.2",
        &[("a.js", returns("10")), ("c.js", returns("30"))],
    );
    std::os::unix::fs::symlink("..2026_12_04_10_05_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/c.js", root.join("c.js")).unwrap();
    std::fs::remove_file(root.join("b.js")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_12_04_10_00_00.1")).unwrap();

    eventually("a changed", || answer(&server, "a") == Some(json!(10)));
    eventually("c added", || answer(&server, "c") == Some(json!(30)));
    eventually("b removed", || {
        server.request("GET", "/handlers/b", b"").status == 404
    });
    let metrics = server.request("GET", "/metrics", b"").text();
    assert!(sample(&metrics, r#"nexus_registry_reloads_total{result="ok"}"#) >= 3.0);
}

/// A change that does not compile keeps the previous version serving,
/// shows as the handler's `reload_error` with file:line:col, is counted
/// and logged once; rapid changes end in the last one.
#[test]
fn a_broken_change_keeps_the_old_version_and_rapid_changes_end_in_the_last() {
    let dir = handlers_dir(&[("a.js", &returns("1"))]);
    let file = dir.path().join("a.js");
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(cache.path(), &["--handlers", dir.path().to_str().unwrap()]).ready();

    replace(&file, "export default () => {\n  return (;\n}");
    eventually("the broken change is seen", || {
        server.request("GET", "/handlers/a", b"").json()["reload_error"].is_string()
    });
    assert_eq!(
        answer(&server, "a"),
        Some(json!(1)),
        "the old version serves"
    );
    let shown = server.request("GET", "/handlers/a", b"").json();
    let error = shown["reload_error"].as_str().unwrap();
    assert!(error.contains("a.js:2:"), "{error}");
    let metrics = server.request("GET", "/metrics", b"").text();
    assert_eq!(
        sample(&metrics, r#"nexus_registry_reloads_total{result="error"}"#),
        1.0
    );
    // Touching the directory again does not log the same failure again.
    std::fs::write(dir.path().join("unrelated.txt"), "x").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server
            .log()
            .matches("the previous version keeps serving")
            .count(),
        1
    );

    for i in 0..100 {
        replace(&file, &returns(&i.to_string()));
    }
    eventually("the last change serves", || {
        answer(&server, "a") == Some(json!(99))
    });
    let shown = server.request("GET", "/handlers/a", b"").json();
    assert!(shown["reload_error"].is_null(), "{shown}");
}

/// A directory the server cannot write (a ConfigMap's is read-only)
/// refuses registrations and removals with 409, naming the way to change
/// the handlers; the handlers in it still serve.
#[test]
fn a_read_only_directory_refuses_registrations() {
    let dir = handlers_dir(&[("double.js", DOUBLE)]);
    let cache = tempfile::tempdir().unwrap();
    let args = ["--handlers", dir.path().to_str().unwrap()];
    // Root writes anywhere: the server then runs as nobody.
    let bin = tempfile::tempdir().unwrap();
    let server = if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        for path in [dir.path(), &dir.path().join("double.js")] {
            let mode = if path.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        // A copy nobody may run wherever this checkout is.
        std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let nexus = bin.path().join("nexus");
        std::fs::copy(env!("CARGO_BIN_EXE_nexus"), &nexus).unwrap();
        let mut setpriv = std::process::Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&nexus);
        Server::launch(setpriv, cache.path(), &args, &[]).ready()
    } else {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        Server::start(cache.path(), &args).ready()
    };
    for (method, body) in [("PUT", HELLO.as_bytes()), ("DELETE", &b""[..])] {
        let reply = server.request(method, "/handlers/double", body);
        assert_eq!(reply.status, 409, "{method}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["kind"], "read_only_registry");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("kubectl apply -k"),
            "{error}"
        );
    }
    assert_eq!(
        server
            .request("POST", "/handlers/double/invoke", br#"{"n":4}"#)
            .json(),
        json!({ "twice": 8 })
    );
    assert!(!dir.path().join("hello.js").exists());
}
