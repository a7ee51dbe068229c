//! `nexus run` as a user types it: inputs, exit codes, messages.

use std::io::Write;
use std::process::{Command, Stdio};

use nexus_host::Bytecode;

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
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, " \n").unwrap();
    // No input, an empty stdin, an empty file, an empty --input: all `{}`,
    // as an empty body is over HTTP.
    let cases: [&[&str]; 4] = [
        &[],
        &["--input-file", "-"],
        &["--input-file", empty.to_str().unwrap()],
        &["--input", ""],
    ];
    for args in cases {
        let (mut cmd, _c) = nexus();
        let out = output(cmd.arg("run").arg(&file).args(args));
        assert!(out.status.success(), "{args:?}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "{}\n", "{args:?}");
    }
}

#[test]
fn input_that_is_not_json_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("echo.js");
    std::fs::write(&file, "export default (ctx) => ctx").unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.arg("run").arg(&file).args(["--input", "{bad"]));
    assert_eq!(out.status.code(), Some(2), "bad input is bad usage");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("error[invalid_input]: "), "{stderr}");
    assert!(out.stdout.is_empty());
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
fn the_cache_dir_flag_names_the_directory_used() {
    let dir = tempfile::tempdir().unwrap();
    // `nexus()` sets NEXUS_CACHE_DIR to a directory of its own: the flag
    // must win over it.
    let (mut cmd, env_dir) = nexus();
    let out = output(
        cmd.arg("run")
            .arg(hello())
            .arg("--cache-dir")
            .arg(dir.path()),
    );
    assert!(out.status.success());
    let entries = |sub: &str| {
        std::fs::read_dir(dir.path().join("v1").join(sub))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(entries("bytecode"), 1, "the handler's bytecode is there");
    assert_eq!(
        entries("components"),
        3,
        "and the guest's native code, the instrumented guest's, and the functions its compiles made"
    );
    assert!(
        !env_dir.path().join("v1").exists(),
        "the environment's directory was not used"
    );
}

#[test]
fn hostile_handlers_through_the_cli_exit_1_naming_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source, kind) in [
        ("loop.js", "export default () => { for (;;) {} }", "timeout"),
        (
            "bomb.js",
            "export default () => { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); }",
            "out_of_memory",
        ),
        (
            "recurse.js",
            "function f(n) { return f(n + 1) + 1; }\nexport default () => f(0);",
            "runtime_error",
        ),
        (
            "deep.js",
            "export default () => JSON.parse('['.repeat(1e6))",
            "stack_overflow",
        ),
        (
            "huge.js",
            "export default () => 'x'.repeat(4 * 1024 * 1024)",
            "output_too_large",
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, source).unwrap();
        // Only the loop is meant to time out: the others get a timeout no
        // loaded machine reaches (building a 4 MiB string can take 200 ms).
        let timeout = if kind == "timeout" { "200" } else { "20000" };
        let (mut cmd, _c) = nexus();
        let out = output(cmd.arg("run").arg(&file).args([
            "--timeout-ms",
            timeout,
            "--max-output-bytes",
            "1Mi",
        ]));
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!("error[{kind}]")),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn precompiled_bytecode_round_trips_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("double.js");
    std::fs::write(
        &source,
        "export default (ctx) => { console.log('from bytecode'); return ctx.n * 2; }",
    )
    .unwrap();
    let compiled = dir.path().join("double.qjsc");
    let (mut cmd, _c) = nexus();
    assert!(
        output(cmd.arg("compile").arg(&source).arg("-o").arg(&compiled))
            .status
            .success()
    );

    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.arg("run")
            .arg(&compiled)
            .args(["--input", r#"{"n":21}"#]),
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "42\n");
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("from bytecode"));

    // The library reads the same file.
    let bytecode = Bytecode::from_file(&std::fs::read(&compiled).unwrap()).unwrap();
    // A runtime of its own: no other test's lookups land in its counters.
    let rt = nexus_host::Runtime::new(crate::support::scratch_config()).unwrap();
    let before = rt.stats().bytecode;
    assert_eq!(
        rt.invoke_bytecode(&bytecode, r#"{"n":2}"#, None)
            .unwrap()
            .output,
        "4"
    );
    let after = rt.stats().bytecode;
    assert_eq!(
        (after.memory.hits, after.memory.misses, after.disk.hits),
        (before.memory.hits, before.memory.misses, before.disk.hits),
        "no cache was looked up, so no lookup is counted"
    );

    // Bytecode from another guest build is refused, never loaded.
    let mut other = std::fs::read(&compiled).unwrap();
    other[12] ^= 0xff; // inside the guest fingerprint
    let foreign = dir.path().join("foreign.qjsc");
    std::fs::write(&foreign, &other).unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.arg("run").arg(&foreign));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("error[invalid_bytecode]") && stderr.contains("another guest build"),
        "{stderr}"
    );
}

/// `console.log("")` in a loop until the timeout: the host keeps at most
/// 10,000 lines of one call (each counted at 64 bytes at least), so its
/// memory stays flat however many lines the loop writes.
#[test]
fn a_console_flood_cannot_grow_the_hosts_memory() {
    /// What a warm `nexus run` may reach: it needs ~24 MiB here; a 5 s
    /// flood kept whole took it past 100 MiB.
    const BOUND_KIB: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flood.js");
    std::fs::write(&file, "export default () => { for (;;) console.log(''); }").unwrap();
    // Compiling the guest takes more memory than running it: do it first.
    let (mut cmd, cache) = nexus();
    assert!(output(cmd.arg("run").arg(hello())).status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .env("NEXUS_CACHE_DIR", cache.path())
        .env("NEXUS_LOG", "error")
        .arg("run")
        .arg(&file)
        .args(["--timeout-ms", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    while child.try_wait().unwrap().is_none() {
        // VmHWM only grows: its last reading is the peak, give or take 20 ms.
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak_kib = peak_kib.max(hwm.unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("peak RSS {peak_kib} KiB; stderr: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[timeout]"), "{stderr}");
    assert!(peak_kib > 0, "RSS was read");
    assert!(
        peak_kib < BOUND_KIB,
        "peak RSS {peak_kib} KiB, over {BOUND_KIB} KiB"
    );
}

/// A handler's error text is its own: escape sequences in it are printed
/// as escapes, never sent to the terminal.
#[test]
fn handler_text_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ansi.js");
    std::fs::write(
        &file,
        r#"export default () => { throw new Error("\x1b[2J\x1b]0;pwned\x07 gone"); }"#,
    )
    .unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.arg("run").arg(&file));
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(r"\u{1b}[2J\u{1b}]0;pwned\u{7} gone"),
        "{stderr}"
    );
}

/// One handler cannot flood the host's log: past its rate, console lines
/// are counted, and summed up in one line at the end of the call. The
/// invocation's own record of its lines is unaffected.
#[test]
fn console_lines_are_rate_limited_per_handler_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chatty.js");
    std::fs::write(
        &file,
        "export default () => { for (let i = 0; i < 100; i++) console.log(`line ${i}`); return 1; }",
    )
    .unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.arg("run")
            .arg(&file)
            .args(["--console-lines-per-second", "5"]),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let shown = stderr.matches("line ").count();
    assert!((5..=6).contains(&shown), "{shown} lines shown: {stderr}");
    let summary = format!("{} console lines suppressed", 100 - shown);
    assert!(stderr.contains(&summary), "{stderr}");
    assert!(
        stderr.contains("handler=\"chatty\""),
        "tagged with the handler, by its name without .js: {stderr}"
    );
}

/// A console line is one log line in the text format too: a newline in it
/// cannot forge a line of the host's own.
#[test]
fn a_console_line_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("forge.js");
    std::fs::write(
        &file,
        r#"export default () => { console.log("x\n ERROR accept error: forged\r\n"); return 1 }"#,
    )
    .unwrap();
    let (mut cmd, _c) = nexus();
    let out = output(cmd.arg("run").arg(&file));
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(r"x\n ERROR accept error: forged\r\n"),
        "{stderr}"
    );
    assert!(!stderr.lines().any(|l| l.trim_start().starts_with("ERROR")));
}
