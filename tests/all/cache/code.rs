//! What a snapshot build needs besides the guest, kept in the cache
//! directory by the first start: the guest instrumented for Wizer (compiled
//! on Wizer's engine), and the functions the guest's compiles made, which a
//! later process's snapshot compiles look up instead of compiling again.

use super::*;

fn disk_hits(rt: &Runtime) -> u64 {
    rt.cache().disk_stats(Artifact::Component).hits
}

#[test]
fn a_later_process_builds_its_snapshots_from_what_the_first_start_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let rt = Runtime::new(config(dir.path())).unwrap();
        assert_eq!(
            components_held(&rt, dir.path()),
            (1, 1, 1),
            "the guest, the instrumented guest and the guest's functions"
        );
    }
    let rt = Runtime::new(config(dir.path())).unwrap();
    assert_eq!(rt.component_origin(), Origin::Disk);
    assert_eq!(disk_hits(&rt), 1, "the guest");
    let handler = rt.compile("hello.js", HELLO).unwrap();
    let prepared = rt.prepare(&handler).unwrap();
    assert_eq!(
        disk_hits(&rt),
        3,
        "and the instrumented guest and the functions, for the snapshot"
    );
    assert_eq!(
        rt.invoke_prepared(&prepared, r#"{"name":"x"}"#, None)
            .unwrap()
            .output,
        r#"{"hi":"x"}"#
    );
    // The snapshot is stored; nothing more was recorded.
    assert_eq!(components_held(&rt, dir.path()), (2, 1, 1));
    let again = rt.compile("again.js", HELLO).unwrap();
    rt.prepare(&again).unwrap();
    assert_eq!(disk_hits(&rt), 3, "each looked up once per process");
}

/// Damages the one entry of `dir` that holds `what`.
fn damage(dir: &Path, what: Held) {
    let path = files(&dir.join("v1/components"))
        .into_iter()
        .find(|path| held(path) == what)
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &bytes).unwrap();
}

#[test]
fn a_damaged_entry_is_removed_and_made_again() {
    for what in [Held::Functions, Held::Instrumented] {
        let dir = tempfile::tempdir().unwrap();
        drop(Runtime::new(config(dir.path())).unwrap());
        damage(dir.path(), what);

        let rt = Runtime::new(config(dir.path())).unwrap();
        let handler = rt.compile("hello.js", HELLO).unwrap();
        let prepared = rt.prepare(&handler).unwrap();
        assert_eq!(rt.cache().corrupt(Artifact::Component), 1, "{what:?}");
        assert_eq!(
            rt.invoke_prepared(&prepared, r#"{"name":"y"}"#, None)
                .unwrap()
                .output,
            r#"{"hi":"y"}"#
        );
        // Made again by this snapshot's build, and whole again.
        assert_eq!(components_held(&rt, dir.path()), (2, 1, 1), "{what:?}");
        drop(rt);
        let rt = Runtime::new(config(dir.path())).unwrap();
        rt.prepare(&rt.compile("other.js", HELLO).unwrap()).unwrap();
        assert_eq!(rt.cache().corrupt(Artifact::Component), 0, "{what:?}");
        assert_eq!(disk_hits(&rt), 3, "{what:?}");
    }
}

/// A pod's case: a new cache directory beside a seed (`nexus cache warm`).
/// Its first snapshot build takes both from the seed, and copies them into
/// the cache directory for its next start.
#[test]
fn a_seed_gives_a_new_cache_directory_both() {
    let seed = tempfile::tempdir().unwrap();
    drop(Runtime::new(config(seed.path())).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Config {
        seed_dir: Some(seed.path().to_owned()),
        ..config(dir.path())
    })
    .unwrap();
    let seed_hits = |rt: &Runtime| rt.cache().seed_stats(Artifact::Component).unwrap().hits;
    assert_eq!(seed_hits(&rt), 1, "the guest");
    let handler = rt.compile("hello.js", HELLO).unwrap();
    rt.prepare(&handler).unwrap();
    assert_eq!(
        seed_hits(&rt),
        3,
        "and the instrumented guest and the functions"
    );
    assert_eq!(
        rt.cache().compiles(Artifact::Component),
        1,
        "the snapshot alone"
    );
    assert_eq!(components_held(&rt, dir.path()), (2, 1, 1));
}
