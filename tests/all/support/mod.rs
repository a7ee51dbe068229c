//! Helpers shared by the test modules: the runtime, the CLI, the vectors;
//! [`server`], the `nexus serve` fixture.

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use nexus_host::{Config, Error, Invocation, Runtime};
use serde_json::{json, Value};

/// One runtime for the library tests: compiling the guest is the slow part.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(scratch_config()).expect("runtime"))
}

/// The default settings, with the cache in a fresh temporary directory (kept
/// until the test process ends) and a timeout no loaded machine reaches.
pub fn scratch_config() -> Config {
    Config {
        cache_dir: tempfile::tempdir().unwrap().keep(),
        timeout: std::time::Duration::from_secs(20),
        ..Config::default()
    }
}

/// Compiles and invokes through the library.
pub fn run(name: &str, source: &str, input: &str) -> Result<Invocation, Error> {
    let rt = runtime();
    let handler = rt.compile(name, source)?;
    rt.invoke(&handler, input)
}

/// The `nexus` binary, with its cache in a fresh temporary directory.
pub fn nexus() -> (Command, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus"));
    cmd.env("NEXUS_CACHE_DIR", cache.path())
        .env_remove("NEXUS_LOG")
        .stdin(Stdio::null());
    (cmd, cache)
}

pub fn output(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run nexus");
    eprintln!(
        "status: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

pub struct Vector {
    pub name: String,
    pub path: PathBuf,
    pub input_path: PathBuf,
    pub source: String,
    pub input: String,
    pub expected: Value,
}

pub fn vectors() -> Vec<Vector> {
    let dir = vectors_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".js").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 12, "vectors missing from {}", dir.display());
    names
        .into_iter()
        .map(|name| {
            let path = dir.join(format!("{name}.js"));
            let input_path = dir.join(format!("{name}.input.json"));
            let expected = std::fs::read_to_string(dir.join(format!("{name}.expected.json")))
                .unwrap_or_else(|e| panic!("{name}.expected.json: {e}"));
            Vector {
                source: std::fs::read_to_string(&path).unwrap(),
                input: std::fs::read_to_string(&input_path).unwrap(),
                expected: serde_json::from_str(&expected)
                    .unwrap_or_else(|e| panic!("{name}.expected.json: {e}")),
                name,
                path,
                input_path,
            }
        })
        .collect()
}

/// The error as the fields an expectation may name.
pub fn error_fields(e: &Error) -> Value {
    let mut fields = json!({ "kind": e.kind(), "display": e.to_string() });
    match e {
        Error::Compile {
            message,
            file,
            line,
            column,
        } => {
            fields["message"] = json!(message);
            fields["file"] = json!(file);
            fields["line"] = json!(line);
            fields["column"] = json!(column);
        }
        Error::Runtime {
            name,
            message,
            stack,
        } => {
            fields["name"] = json!(name);
            fields["message"] = json!(message);
            fields["stack"] = json!(stack);
        }
        Error::InvalidInput(m)
        | Error::InvalidOutput(m)
        | Error::InvalidBytecode(m)
        | Error::InvalidModule(m) => fields["message"] = json!(m),
        other => panic!("unexpected host error: {other}"),
    }
    fields
}

/// Checks an expected error against the library's error, field by field.
pub fn check_error(name: &str, expected: &Value, e: &Error) {
    let got = error_fields(e);
    for (key, want) in expected.as_object().unwrap() {
        match key.as_str() {
            "message_contains" => {
                let message = got["message"].as_str().unwrap();
                assert!(
                    message.contains(want.as_str().unwrap()),
                    "{name}: message {message:?} lacks {want}"
                );
            }
            "stack_contains" => {
                let stack = got["stack"].as_str().unwrap();
                for frame in want.as_array().unwrap() {
                    assert!(
                        stack.contains(frame.as_str().unwrap()),
                        "{name}: stack {stack:?} lacks {frame}"
                    );
                }
            }
            _ => assert_eq!(&got[key], want, "{name}: field {key} of {got}"),
        }
    }
}

/// Checks an expected error against what the CLI printed on stderr.
pub fn check_cli_error(name: &str, expected: &Value, stderr: &str) {
    let kind = expected["kind"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("error[{kind}]: ")),
        "{name}: stderr lacks the kind {kind}: {stderr}"
    );
    for key in ["name", "message", "message_contains"] {
        if let Some(text) = expected.get(key).and_then(Value::as_str) {
            assert!(
                stderr.contains(text),
                "{name}: stderr lacks {text:?}: {stderr}"
            );
        }
    }
    if let Some(frames) = expected.get("stack_contains") {
        for frame in frames.as_array().unwrap() {
            let frame = frame.as_str().unwrap();
            assert!(stderr.contains(frame), "{name}: stderr lacks {frame:?}");
        }
    }
    if let (Some(file), Some(line), Some(column)) = (
        expected.get("file"),
        expected.get("line"),
        expected.get("column"),
    ) {
        let position = format!("{}:{line}:{column}: ", file.as_str().unwrap());
        assert!(
            stderr.contains(&position),
            "{name}: stderr lacks {position}"
        );
    }
}

/// The expected console lines as `(level, message)`.
pub fn expected_logs(expected: &Value) -> Vec<(String, String)> {
    expected
        .get("logs")
        .and_then(Value::as_array)
        .map(|lines| {
            lines
                .iter()
                .map(|l| {
                    (
                        l[0].as_str().unwrap().to_owned(),
                        l[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A small deterministic generator (xorshift): a storm or a run of
/// mutations is the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
