//! Every invocation starts from a fresh instance.

use nexus_host::Runtime;
use serde_json::Value;

use crate::support::{runtime, scratch_config};

#[test]
fn global_state_does_not_survive_an_invocation() {
    let rt = runtime();
    let handler = rt
        .compile(
            "count.js",
            "export default () => { globalThis.count = (globalThis.count || 0) + 1; return globalThis.count; }",
        )
        .unwrap();
    for _ in 0..3 {
        assert_eq!(rt.invoke(&handler, "{}").unwrap().output, "1");
    }
}

#[test]
fn module_state_does_not_survive_an_invocation() {
    let rt = runtime();
    let handler = rt
        .compile("module-state.js", "let n = 0; export default () => ++n;")
        .unwrap();
    let first = rt.invoke(&handler, "null").unwrap().output;
    let second = rt.invoke(&handler, "null").unwrap().output;
    assert_eq!((first.as_str(), second.as_str()), ("1", "1"));
}

#[test]
fn a_failed_invocation_leaves_the_next_one_fine() {
    let rt = runtime();
    let bad = rt
        .compile(
            "bad.js",
            "export default () => { globalThis.leak = 1; throw new Error('x'); }",
        )
        .unwrap();
    let good = rt
        .compile("good.js", "export default () => typeof globalThis.leak")
        .unwrap();
    assert!(rt.invoke(&bad, "{}").is_err());
    assert_eq!(rt.invoke(&good, "{}").unwrap().output, r#""undefined""#);
}

#[test]
fn handlers_read_the_runtimes_own_figures() {
    // A runtime of its own, so no other test moves the counters.
    let rt = Runtime::new(scratch_config()).unwrap();
    let stats = rt
        .compile("stats.js", "export default () => Nexus.stats()")
        .unwrap();
    let thrower = rt
        .compile("throw.js", "export default () => { throw 1 }")
        .unwrap();
    rt.invoke(&stats, "{}").unwrap();
    rt.invoke(&thrower, "{}").unwrap_err();

    let seen: Value = serde_json::from_str(&rt.invoke(&stats, "{}").unwrap().output).unwrap();
    assert_eq!(seen["compiles"], 2);
    // The running invocation is counted once it ends.
    assert_eq!(seen["executions"], 2);
    assert_eq!(seen["failures"], 1);
    assert_eq!(seen["bytecode"]["memory"]["hits"], 0);

    let after = rt.stats();
    assert_eq!(
        (after.compiles, after.executions, after.failures),
        (2, 3, 1)
    );
}
