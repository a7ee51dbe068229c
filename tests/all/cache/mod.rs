//! The two-tier cache, through the library and the CLI: tier sequences,
//! damage, hostile names, unusable directories, processes sharing one
//! directory, and the disk bound.
//!
//! One module per topic; the helpers they share are here.

mod cli;
mod code;
mod damage;
mod eviction;
mod tiers;
mod trust;

pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::sync::Arc;

pub(crate) use nexus_host::{Artifact, Cache, Config, Error, Key, Op, Origin, Runtime};
pub(crate) use serde_json::Value;

pub(crate) use crate::support::{nexus, output, vectors_dir};

pub(crate) const HELLO: &str = "export default (ctx) => ({ hi: ctx.name })";

pub(crate) fn config(dir: &Path) -> Config {
    Config {
        cache_dir: dir.to_owned(),
        ..Config::default()
    }
}

pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The guest's component file: before any snapshot, the one component
/// entry that [holds](held) a component of its own.
pub(crate) fn component_file(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = files(&dir.join("v1/components"))
        .into_iter()
        .filter(|path| held(path) == Held::Component)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

/// What a component entry holds, as its file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    /// Native code: the guest's, or a prepared handler's (after one byte).
    Component,
    /// Native code of the guest instrumented for Wizer: it exports Wizer's
    /// accessors of the guest's state.
    Instrumented,
    /// No native code of its own: the functions the guest's compiles made.
    Functions,
}

pub(crate) fn held(path: &Path) -> Held {
    let bytes = std::fs::read(path).unwrap();
    let elf = |at: usize| bytes.get(at..at + 4) == Some(b"\x7fELF");
    if !elf(96) && !elf(97) {
        Held::Functions
    } else if bytes.windows(13).any(|w| w == b"wizer_memory_") {
        Held::Instrumented
    } else {
        Held::Component
    }
}

/// How many component entries hold each of: (components, the instrumented
/// guest, compiled functions), once the writes are done.
pub(crate) fn components_held(rt: &Runtime, dir: &Path) -> (usize, usize, usize) {
    rt.cache().flush();
    let mut counts = (0, 0, 0);
    for path in files(&dir.join("v1/components")) {
        match held(&path) {
            Held::Component => counts.0 += 1,
            Held::Instrumented => counts.1 += 1,
            Held::Functions => counts.2 += 1,
        }
    }
    counts
}

pub(crate) fn bytecode_file(dir: &Path, key: &Key) -> PathBuf {
    dir.join("v1/bytecode")
        .join(format!("{}.qjsc", key.to_hex()))
}
