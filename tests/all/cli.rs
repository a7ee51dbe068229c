//! `nexus run` as a user types it: inputs, exit codes, messages.

use std::io::Write;
use std::process::Stdio;

use crate::support::{self, nexus, output};

fn hello() -> std::path::PathBuf {
    support::vectors_dir().join("hello.js")
}

#[test]
fn run_takes_input_inline_from_a_file_and_from_stdin() {
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.args(["run"])
            .arg(hello())
            .args(["--input", r#"{"name":"Ada"}"#]),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"greeting\":\"Hello, Ada!\"}\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"name":"Bo"}"#).unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.arg("run").arg(hello()).arg("--input-file").arg(&input));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"greeting\":\"Hello, Bo!\"}\n"
    );

    let (mut cmd, _c) = nexus();
    let mut child = cmd
        .arg("run")
        .arg(hello())
        .args(["--input-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"name":"Cy"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"greeting\":\"Hello, Cy!\"}\n"
    );
}

#[test]
fn run_without_input_passes_an_empty_object() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("echo.js");
    std::fs::write(&file, "export default (ctx) => ctx").unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.arg("run").arg(&file));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "{}\n");
}

#[test]
fn bad_usage_exits_2_and_says_why() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["run", "/no/such/handler.js"],
            "cannot read /no/such/handler.js",
        ),
        (&["run"], "FILE"),
        (
            &["run", "x.js", "--input", "{}", "--input-file", "y"],
            "cannot be used with",
        ),
        (&["launch"], "unrecognized subcommand"),
    ];
    for (args, message) in cases {
        let (mut cmd, _c) = nexus();
        let out = output(cmd.args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn help_explains_run() {
    let (mut cmd, _c) = nexus();
    let out = output(cmd.args(["run", "--help"]));
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for text in [
        "--input <JSON>",
        "--input-file <PATH>",
        "--cache-dir <DIR>",
        "exit status is 1",
    ] {
        assert!(help.contains(text), "help lacks {text}: {help}");
    }
}

#[test]
fn the_cache_dir_flag_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.arg("run")
            .arg(hello())
            .arg("--cache-dir")
            .arg(dir.path()),
    );
    assert!(out.status.success());
}
