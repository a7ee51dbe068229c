//! A damaged cache is repaired, never trusted: flipped and truncated
//! entries, special and huge files in their place, odd names.

use super::*;

/// Every way a file can be damaged, applied to a good file's bytes.
fn damages(
    good: &[u8],
    other_key_file: &[u8],
    other_kind_file: &[u8],
) -> Vec<(&'static str, Vec<u8>)> {
    let mut payload_flip = good.to_vec();
    *payload_flip.last_mut().unwrap() ^= 0x40;
    let mut cost_flip = good.to_vec();
    cost_flip[60] ^= 0x01; // inside the build time, which the checksum covers
    let mut header_flip = good.to_vec();
    header_flip[70] ^= 0x01; // inside the checksum field
    vec![
        ("payload byte flipped", payload_flip),
        ("build time flipped", cost_flip),
        ("header byte flipped", header_flip),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("zero length", Vec::new()),
        (
            "random garbage",
            (0..good.len().min(4096))
                .map(|i| (i * 7919 % 251) as u8)
                .collect(),
        ),
        ("wrong kind", other_kind_file.to_vec()),
        ("another key's file", other_key_file.to_vec()),
    ]
}

#[test]
fn damaged_bytecode_is_detected_removed_recompiled_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (key, other) = {
        let rt = Runtime::new(config(dir.path())).unwrap();
        let a = rt.compile("a.js", HELLO).unwrap();
        let b = rt.compile("b.js", "export default () => 'b'").unwrap();
        (a.key, b.key)
    };
    let path = bytecode_file(dir.path(), &key);
    let good = std::fs::read(&path).unwrap();
    let other_file = std::fs::read(bytecode_file(dir.path(), &other)).unwrap();
    let component = std::fs::read(component_file(dir.path())).unwrap();

    for (what, bytes) in damages(&good, &other_file, &component) {
        std::fs::write(&path, &bytes).unwrap();
        let rt = Runtime::new(config(dir.path())).unwrap();
        let compiled = rt.compile("a.js", HELLO).unwrap();
        assert_eq!(compiled.origin, Origin::Compiled, "{what}");
        assert_eq!(rt.cache().corrupt(Artifact::Bytecode), 1, "{what}");
        assert_eq!(
            rt.invoke(&compiled, r#"{"name":1}"#).unwrap().output,
            r#"{"hi":1}"#
        );
        rt.cache().flush();
        // Whole: the same entry, but for the build time it measured anew.
        let rewritten = std::fs::read(&path).unwrap();
        assert_eq!(rewritten[..56], good[..56], "{what}: rewritten whole");
        assert_eq!(rewritten[96..], good[96..], "{what}: rewritten whole");
    }
}

#[test]
fn a_damaged_component_is_detected_removed_recompiled_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let rt = Runtime::new(config(dir.path())).unwrap();
        rt.compile("a.js", HELLO).unwrap().key
    };
    let path = component_file(dir.path());
    let good = std::fs::read(&path).unwrap();
    let bytecode = std::fs::read(bytecode_file(dir.path(), &key)).unwrap();
    // A component file of another key: the same file under another name
    // is what a rename would leave, so build one from the good bytes with
    // the key field altered (its checksum still holds).
    let mut other_key = good.clone();
    other_key[20] ^= 0xff;

    for (what, bytes) in damages(&good, &other_key, &bytecode) {
        std::fs::write(&path, &bytes).unwrap();
        let rt = Runtime::new(config(dir.path())).unwrap();
        assert_eq!(rt.component_origin(), Origin::Compiled, "{what}");
        assert_eq!(rt.cache().corrupt(Artifact::Component), 1, "{what}");
        let h = rt.compile("a.js", HELLO).unwrap();
        assert_eq!(rt.invoke(&h, "{}").unwrap().output, "{}");
        rt.cache().flush();
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            good.len(),
            "{what}: rewritten"
        );
    }
}

/// Runs `work` on a thread of its own; fails the test if it has not
/// answered within two minutes, instead of hanging the suite.
fn within_two_minutes<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    answer
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("it answers, and does not hang")
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A FIFO, or a sparse 1 TiB file, in place of an entry: refused before a
/// byte is read, removed, and recompiled. Neither hangs nor kills a start,
/// an invocation or `nexus cache verify`.
#[test]
fn special_and_huge_files_in_place_of_entries_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let key = Runtime::new(config(dir.path()))
        .unwrap()
        .compile("hello.js", HELLO)
        .unwrap()
        .key;
    let start = |root: PathBuf| {
        within_two_minutes(move || {
            let rt = Runtime::new(config(&root)).unwrap();
            let h = rt.compile("hello.js", HELLO).unwrap();
            let answer = rt.invoke(&h, r#"{"name":"f"}"#).unwrap().output;
            assert_eq!(answer, r#"{"hi":"f"}"#);
            rt.cache().flush();
            (
                rt.component_origin(),
                h.origin,
                rt.cache().corrupt(Artifact::Bytecode),
            )
        })
    };
    // A FIFO would block a plain open for ever.
    let bytecode = bytecode_file(dir.path(), &key);
    std::fs::remove_file(&bytecode).unwrap();
    mkfifo(&bytecode);
    let (component, handler, corrupt) = start(dir.path().to_owned());
    assert_eq!(
        (component, handler, corrupt),
        (Origin::Disk, Origin::Compiled, 1)
    );
    assert!(
        bytecode.metadata().unwrap().is_file(),
        "replaced by a real entry"
    );

    // A sparse 1 TiB file would be preallocated by a plain read, and abort.
    let component = component_file(dir.path());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&component)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let (origin, _, _) = start(dir.path().to_owned());
    assert_eq!(origin, Origin::Compiled, "the 1 TiB file was not loaded");
    assert!(component_file(dir.path()).metadata().unwrap().len() < 1 << 30);

    // `nexus cache verify` reports both kinds, removes them, and returns.
    let fifo = dir
        .path()
        .join(format!("v1/bytecode/{}.qjsc", "ab".repeat(32)));
    mkfifo(&fifo);
    let huge = dir
        .path()
        .join(format!("v1/bytecode/{}.qjsc", "cd".repeat(32)));
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let cache_dir = dir.path().to_owned();
    let out = within_two_minutes(move || {
        let (mut cmd, _c) = nexus();
        output(
            cmd.args(["cache", "verify", "--json", "--cache-dir"])
                .arg(&cache_dir),
        )
    });
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let damage: Vec<&str> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["damage"].as_str().unwrap())
        .collect();
    assert!(
        damage.iter().any(|d| d.contains("not a regular file")),
        "{report}"
    );
    assert!(
        damage.iter().any(|d| d.contains("limit on an entry")),
        "{report}"
    );
    assert!(!fifo.exists() && !huge.exists());
}

/// Names the cache did not write as it writes them: an uppercase-hex entry
/// is not counted (it could never be evicted), and a temporary whose name
/// is not UTF-8 is still cleared.
#[test]
fn odd_names_are_neither_counted_nor_in_the_way() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path(), 0, 1 << 20);
    let key = Key::bytecode("guest", "h.js", HELLO, b"");
    cache
        .bytecode(key, || Ok::<_, Error>(b"x".to_vec()))
        .unwrap();
    cache.flush();
    drop(cache);
    let bytecode = dir.path().join("v1/bytecode");
    let upper = bytecode.join(format!("{}.qjsc", key.to_hex().to_uppercase()));
    std::fs::copy(bytecode_file(dir.path(), &key), &upper).unwrap();
    let odd_temp = bytecode.join(std::ffi::OsStr::from_bytes(b".tmp-\xff\xfe"));
    std::fs::write(&odd_temp, b"half written").unwrap();

    let cache = Cache::open(dir.path(), 0, 1 << 20);
    assert_eq!(
        cache.disk_stats(Artifact::Bytecode).entries,
        1,
        "only the real entry"
    );
    drop(cache);
    let (mut cmd, _c) = nexus();
    let out = output(
        cmd.args(["cache", "clear", "--json", "--cache-dir"])
            .arg(dir.path()),
    );
    assert!(out.status.success());
    assert!(!odd_temp.exists(), "the odd temporary was cleared");
    assert!(
        upper.exists(),
        "a file the cache does not own is left alone"
    );
}
