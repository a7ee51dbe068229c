//! Every shared vector, through the library and through `nexus run`.

use serde_json::Value;

use crate::support::{self, check_cli_error, check_error, expected_logs, vectors};

#[test]
fn library_answers_every_vector() {
    for v in vectors() {
        let result = support::run(&format!("{}.js", v.name), &v.source, &v.input);
        match (v.expected.get("output"), v.expected.get("error"), result) {
            (Some(want), None, Ok(answer)) => {
                let got: Value = serde_json::from_str(&answer.output).unwrap();
                assert_eq!(&got, want, "{}: output", v.name);
                let logs: Vec<(String, String)> = answer
                    .logs
                    .iter()
                    .map(|l| (l.level.as_str().to_owned(), l.message.clone()))
                    .collect();
                assert_eq!(logs, expected_logs(&v.expected), "{}: logs", v.name);
            }
            (None, Some(want), Err(e)) => check_error(&v.name, want, &e),
            (_, _, result) => panic!("{}: expected {}, got {result:?}", v.name, v.expected),
        }
    }
}

#[test]
fn cli_answers_every_vector() {
    // One cache for every run: the first compiles the guest, the rest load it.
    let (_, cache) = support::nexus();
    for v in vectors() {
        let (mut cmd, _own) = support::nexus();
        cmd.env("NEXUS_CACHE_DIR", cache.path())
            .arg("run")
            .arg(&v.path)
            .arg("--input-file")
            .arg(&v.input_path);
        let out = support::output(&mut cmd);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        if let Some(want) = v.expected.get("output") {
            assert_eq!(out.status.code(), Some(0), "{}: {stderr}", v.name);
            let got: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(&got, want, "{}", v.name);
            // console lines reach stderr, in order.
            let mut rest = stderr.as_str();
            for (level, message) in expected_logs(&v.expected) {
                let at = rest
                    .find(&message)
                    .unwrap_or_else(|| panic!("{}: no {level} line {message:?}", v.name));
                assert!(
                    rest[..at].to_lowercase().contains(&level),
                    "{}: {message:?} not at {level}",
                    v.name
                );
                rest = &rest[at + message.len()..];
            }
        } else {
            // Bad input is a usage error; the handler's failures exit 1.
            let code = match v.expected["error"]["kind"].as_str() {
                Some("invalid_input") => 2,
                _ => 1,
            };
            assert_eq!(out.status.code(), Some(code), "{}: {stderr}", v.name);
            assert!(stdout.is_empty(), "{}: a failure printed {stdout}", v.name);
            check_cli_error(&v.name, &v.expected["error"], &stderr);
        }
    }
}
