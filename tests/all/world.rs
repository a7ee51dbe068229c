//! The built guest's own WIT, read from its bytes as `wasm-tools component
//! wit` does: embedded in the host, and as `nexus component` writes it.

use wit_component::DecodedWasm;

use crate::support::{nexus, output};

/// A component's world, as sorted export and import names (interfaces by
/// their `package/name@version`, functions as `func NAME`), and the
/// resolve it was read into.
fn world_of(wasm: &[u8]) -> (Vec<String>, Vec<String>, wit_parser::Resolve) {
    let decoded = wit_component::decode(wasm).unwrap();
    let DecodedWasm::Component(resolve, world) = decoded else {
        panic!("not a component");
    };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::WorldItem| match items {
        wit_parser::WorldItem::Interface { id, .. } => resolve.id_of(*id).unwrap(),
        wit_parser::WorldItem::Function(f) => format!("func {}", f.name),
        other => panic!("unexpected world item {other:?}"),
    };
    let mut exports: Vec<String> = world.exports.values().map(names).collect();
    exports.sort();
    let mut imports: Vec<String> = world.imports.values().map(names).collect();
    imports.sort();
    (exports, imports, resolve)
}

#[test]
fn the_guest_exports_the_nexus_handler_world() {
    let (exports, imports, resolve) = world_of(nexus_host::GUEST_WASM);
    assert_eq!(
        exports,
        [
            "func wizer-initialize",
            "nexus:handler/compiler@0.1.0",
            "nexus:handler/handler@0.1.0",
        ]
    );
    // Of WASI, only what handlers reach: host/build.rs turns the rest of
    // what Rust's std links (stdio, environment, files, exit) into traps.
    let unversioned: Vec<&str> = imports
        .iter()
        .map(|i| i.split('@').next().unwrap())
        .collect();
    assert_eq!(
        unversioned,
        [
            "nexus:handler/log",
            "nexus:handler/stats",
            "nexus:handler/types",
            "wasi:clocks/monotonic-clock",
            "wasi:clocks/wall-clock",
            "wasi:random/insecure-seed",
            "wasi:random/random",
        ],
        "{imports:?}"
    );

    let compiler = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some("compiler"))
        .unwrap()
        .1;
    assert!(compiler.functions.contains_key("compile"));
    let handler = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some("handler"))
        .unwrap()
        .1;
    assert!(handler.functions.contains_key("invoke"));
}

/// `nexus component` writes the guest the host runs: the plain build is
/// the embedded one, byte for byte; the pre-initialized snapshot has the
/// same world. Both are read back from the written files.
#[test]
fn nexus_component_writes_the_plain_guest_and_its_snapshot_with_the_same_world() {
    let dir = tempfile::tempdir().unwrap();
    let mut worlds = Vec::new();
    for (flags, file) in [
        (&[][..], "plain.wasm"),
        (&["--pre-initialized"][..], "pre.wasm"),
    ] {
        let path = dir.path().join(file);
        let (mut cmd, _cache) = nexus();
        let out = output(cmd.arg("component").args(flags).arg("-o").arg(&path));
        assert!(out.status.success(), "{file}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.contains(nexus_host::GUEST_FINGERPRINT), "{stdout}");
        let wasm = std::fs::read(&path).unwrap();
        if file == "plain.wasm" {
            assert!(
                wasm == nexus_host::GUEST_WASM,
                "the plain guest is the embedded one"
            );
        } else {
            assert!(
                wasm != nexus_host::GUEST_WASM,
                "the snapshot differs from the plain build"
            );
        }
        let (exports, imports, _) = world_of(&wasm);
        worlds.push((exports, imports));
    }
    let (exports, imports, _) = world_of(nexus_host::GUEST_WASM);
    assert_eq!(worlds[0], (exports.clone(), imports.clone()));
    assert_eq!(
        worlds[1].1, imports,
        "the snapshot imports what the guest does"
    );
    for export in [
        "nexus:handler/compiler@0.1.0",
        "nexus:handler/handler@0.1.0",
    ] {
        assert!(worlds[1].0.iter().any(|e| e == export), "{:?}", worlds[1].0);
    }
}
