//! Per-handler snapshots (`Runtime::prepare`): the module is evaluated once,
//! before the snapshot; every invocation still gets a fresh instance.

use std::time::Duration;

use nexus_host::{Config, Origin, Runtime};
use serde_json::Value;

use crate::support;

fn prepare_and_invoke(name: &str, source: &str, inputs: &[&str]) -> Vec<String> {
    let rt = support::runtime();
    let handler = rt.compile(name, source).unwrap();
    let prepared = rt.prepare(&handler).unwrap();
    inputs
        .iter()
        .map(|input| rt.invoke_prepared(&prepared, input, None).unwrap().output)
        .collect()
}

#[test]
fn a_prepared_handler_answers_as_the_plain_path_does() {
    let source = std::fs::read_to_string(support::vectors_dir().join("hello.js")).unwrap();
    let input = r#"{"name":"Ada"}"#;
    let plain = support::run("hello.js", &source, input).unwrap();
    let prepared = prepare_and_invoke("hello.js", &source, &[input]);
    assert_eq!(prepared, [plain.output]);
}

#[test]
fn each_prepared_invocation_starts_from_the_snapshot() {
    // Top-level code ran once, before the snapshot: `seed` is the same in
    // every call. The handler's own state never carries over, and its
    // `Math.random()` is reseeded per call.
    let source = "let calls = 0;\nconst seed = Math.random();\n\
                  export default () => ({ calls: ++calls, seed, now: Math.random() });";
    let outputs = prepare_and_invoke("state.js", source, &["null", "null"]);
    let outputs: Vec<Value> = outputs
        .iter()
        .map(|o| serde_json::from_str(o).unwrap())
        .collect();
    let (a, b) = (&outputs[0], &outputs[1]);
    assert_eq!(
        (a["calls"].as_u64(), b["calls"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(a["seed"], b["seed"]);
    assert_ne!(a["now"], b["now"]);
}

#[test]
fn a_module_that_fails_to_evaluate_is_refused_with_its_error() {
    let rt = support::runtime();
    let cases = [
        (
            "throws.js",
            "throw new TypeError('no config');\nexport default () => 1;",
            "runtime_error",
        ),
        ("not-a-function.js", "export default 42;", "invalid_module"),
    ];
    for (name, source, kind) in cases {
        let handler = rt.compile(name, source).unwrap();
        let error = rt.prepare(&handler).unwrap_err();
        assert_eq!(error.kind(), kind, "{name}: {error}");
    }
    // Nothing is left behind: the runtime keeps serving.
    assert_eq!(
        support::run("ok.js", "export default () => 7", "null")
            .unwrap()
            .output,
        "7"
    );
}

#[test]
fn top_level_code_is_held_to_the_timeout() {
    let rt = Runtime::new(Config {
        timeout: Duration::from_millis(500),
        ..support::runtime().config().clone()
    })
    .unwrap();
    let handler = rt
        .compile("spin.js", "for (;;) {}\nexport default () => 1;")
        .unwrap();
    let error = rt.prepare(&handler).unwrap_err();
    assert_eq!(error.kind(), "timeout", "{error}");
}

#[test]
fn a_prepared_component_is_cached_across_runtimes() {
    let config = Config {
        cache_dir: tempfile::tempdir().unwrap().keep(),
        ..support::scratch_config()
    };
    let source = "export default (ctx) => ctx.n + 1";
    let first = Runtime::new(config.clone()).unwrap();
    let handler = first.compile("inc.js", source).unwrap();
    assert_eq!(first.prepare(&handler).unwrap().origin, Origin::Compiled);
    assert_eq!(first.prepare(&handler).unwrap().origin, Origin::Memory);
    first.cache().flush();
    drop(first);

    let second = Runtime::new(config).unwrap();
    let handler = second.compile("inc.js", source).unwrap();
    let prepared = second.prepare(&handler).unwrap();
    assert_eq!(prepared.origin, Origin::Disk);
    let answer = second
        .invoke_prepared(&prepared, r#"{"n":41}"#, None)
        .unwrap();
    assert_eq!(answer.output, "42");
}
