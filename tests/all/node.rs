//! The same handlers under Node give the same JSON, to the byte.

use std::process::Command;

use crate::support::{self, vectors};

fn node_output(path: &std::path::Path, input: &std::path::Path) -> String {
    let script = support::vectors_dir().join("../node/run-handler.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(path)
        .arg(input)
        .output()
        .expect("node is needed for the parity tests (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[test]
fn successful_vectors_match_node_byte_for_byte() {
    let mut compared = 0;
    for v in vectors()
        .into_iter()
        .filter(|v| v.expected.get("output").is_some() && v.expected.get("node_differs").is_none())
    {
        let ours = support::run(&format!("{}.js", v.name), &v.source, &v.input)
            .unwrap()
            .output;
        assert_eq!(ours, node_output(&v.path, &v.input_path), "{}", v.name);
        compared += 1;
    }
    assert!(compared >= 6);
}
