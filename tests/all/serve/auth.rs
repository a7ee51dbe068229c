//! Who may do what: admin tokens for management, caller tokens for
//! invocations and reads, rotation by editing the file, management
//! disabled off loopback without tokens, and token files others can read
//! refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::support::server::Reply;

/// Writes `tokens` to `path`, readable by its owner only.
fn write_tokens(path: &Path, tokens: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, tokens).unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// `method path` with `token` as its bearer token, if any.
fn with_token(
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
    token: Option<&str>,
) -> Reply {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    server.request_with(method, path, &auth, body)
}

/// Every route against no token, a wrong one, the right one, and an old
/// one after a rotation: management needs an admin token; invocations,
/// reads, probes and the scrape stay open.
#[test]
fn management_needs_an_admin_token_and_a_rotation_keeps_both_for_a_while() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("admin");
    write_tokens(&tokens, "# the admins\nfirst-token-4a7c\n");
    let server = serve(
        &[("double.js", DOUBLE)],
        &["--admin-token-file", tokens.to_str().unwrap()],
    );
    let put = |token| with_token(&server, "PUT", "/handlers/hello", HELLO.as_bytes(), token);
    let delete = |token| with_token(&server, "DELETE", "/handlers/hello", b"", token);

    for (reply, what) in [
        (put(None), "no token"),
        (put(Some("wrong")), "a wrong token"),
    ] {
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert_eq!(reply.json()["error"]["kind"], "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(put(Some("first-token-4a7c")).status, 201);
    assert_eq!(delete(None).status, 401);
    assert_eq!(delete(Some("first-token-4a7c!")).status, 401);
    assert_eq!(delete(Some("first-token-4a7c")).status, 204);

    // Open to anyone: invocations, reads, probes, the scrape.
    let invoke = with_token(
        &server,
        "POST",
        "/handlers/double/invoke",
        br#"{"n":2}"#,
        None,
    );
    assert_eq!(invoke.json(), json!({ "twice": 4 }));
    for path in [
        "/handlers",
        "/handlers/double",
        "/stats",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert_eq!(
            with_token(&server, "GET", path, b"", None).status,
            200,
            "{path}"
        );
    }

    // A rotation: the new token joins, then the old one leaves.
    write_tokens(&tokens, "first-token-4a7c\nsecond-token-9d2e\n");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(put(Some("second-token-9d2e")).status, 201);
    assert_eq!(put(Some("first-token-4a7c")).status, 200);
    write_tokens(&tokens, "second-token-9d2e\n");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        put(Some("first-token-4a7c")).status,
        401,
        "the old token left"
    );
    assert_eq!(delete(Some("second-token-9d2e")).status, 204);

    // A change that leaves the file empty keeps the tokens it had.
    write_tokens(&tokens, "\n");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(put(Some("second-token-9d2e")).status, 201);

    let log = server.log();
    for token in ["first-token-4a7c", "second-token-9d2e", "wrong"] {
        assert!(!log.contains(token), "the log shows {token}: {log}");
    }
    assert!(log.contains("holds no token"), "{log}");
}

/// With `invoke_token_file`, invocations and reads need a caller's token
/// or an admin's; a caller's token does not manage; probes and the scrape
/// stay open; after a rotation the old token is refused everywhere.
#[test]
fn invoke_tokens_guard_invocations_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, callers) = (dir.path().join("admin"), dir.path().join("callers"));
    write_tokens(&admin, "admin-5b1f\n");
    write_tokens(&callers, "caller-77e0\n");
    let server = serve(
        &[("double.js", DOUBLE)],
        &[
            "--admin-token-file",
            admin.to_str().unwrap(),
            "--invoke-token-file",
            callers.to_str().unwrap(),
        ],
    );
    let routes: [(&str, &str, &[u8]); 4] = [
        ("POST", "/handlers/double/invoke", br#"{"n":1}"#),
        ("GET", "/handlers", b""),
        ("GET", "/handlers/double", b""),
        ("GET", "/stats", b""),
    ];
    for (method, path, body) in routes {
        for (token, want) in [
            (None, 401),
            (Some("nope"), 401),
            (Some("caller-77e0"), 200),
            (Some("admin-5b1f"), 200),
        ] {
            let reply = with_token(&server, method, path, body, token);
            assert_eq!(
                reply.status,
                want,
                "{method} {path} with {token:?}: {}",
                reply.text()
            );
        }
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            with_token(&server, "GET", path, b"", None).status,
            200,
            "{path}"
        );
    }
    let put = with_token(
        &server,
        "PUT",
        "/handlers/hello",
        HELLO.as_bytes(),
        Some("caller-77e0"),
    );
    assert_eq!(put.status, 401, "a caller's token does not manage");

    // A rotation of the callers' file: the old token leaves every route.
    write_tokens(&callers, "caller-2b9a\n");
    std::thread::sleep(Duration::from_millis(1200));
    for (method, path, body) in routes {
        for (token, want) in [(Some("caller-77e0"), 401), (Some("caller-2b9a"), 200)] {
            let reply = with_token(&server, method, path, body, token);
            assert_eq!(
                reply.status, want,
                "{method} {path} with {token:?} after the rotation"
            );
        }
    }
    let log = server.log();
    assert!(
        !log.contains("caller-77e0") && !log.contains("caller-2b9a"),
        "{log}"
    );
}

/// Listening on every address with no admin token file, PUT and DELETE
/// answer 403 naming the setting (here through 127.0.0.1), the start says
/// so once, and invocations still work.
#[test]
fn off_loopback_without_tokens_management_is_disabled() {
    let cache = tempfile::tempdir().unwrap();
    let handlers = handlers_dir(&[("double.js", DOUBLE)]);
    let server = Server::start(
        cache.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--handlers",
            handlers.path().to_str().unwrap(),
        ],
    )
    .ready();
    for (method, body) in [("PUT", HELLO.as_bytes()), ("DELETE", &b""[..])] {
        let reply = with_token(&server, method, "/handlers/double", body, None);
        assert_eq!(reply.status, 403, "{method}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["kind"], "management_disabled");
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("admin_token_file"));
    }
    let invoke = with_token(
        &server,
        "POST",
        "/handlers/double/invoke",
        br#"{"n":3}"#,
        None,
    );
    assert_eq!(invoke.json(), json!({ "twice": 6 }));
    let log = server.log();
    assert_eq!(
        log.matches("registering and removing handlers is disabled")
            .count(),
        1,
        "{log}"
    );
}

/// A token file others may read is refused at start, naming the fix.
#[test]
fn a_token_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("admin");
    std::fs::write(&tokens, "t0ken\n").unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["serve", "--listen", "127.0.0.1:0", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .arg("--admin-token-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("t0ken"), "{stderr}");
}
