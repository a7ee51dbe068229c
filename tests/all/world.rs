//! The built guest's own WIT, read from its bytes as `wasm-tools component
//! wit` does.

use wit_component::DecodedWasm;

#[test]
fn the_guest_exports_the_nexus_handler_world() {
    let decoded = wit_component::decode(nexus_host::GUEST_WASM).unwrap();
    let DecodedWasm::Component(resolve, world) = decoded else {
        panic!("the guest is not a component");
    };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::WorldItem| match items {
        wit_parser::WorldItem::Interface { id, .. } => resolve.id_of(*id).unwrap(),
        wit_parser::WorldItem::Function(f) => format!("func {}", f.name),
        other => panic!("unexpected world item {other:?}"),
    };
    let mut exports: Vec<String> = world.exports.values().map(names).collect();
    exports.sort();
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
    let mut imports: Vec<String> = world.imports.values().map(names).collect();
    imports.sort();
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
