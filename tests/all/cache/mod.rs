//! The two-tier cache, through the library and the CLI: tier sequences,
//! damage, hostile names, unusable directories, processes sharing one
//! directory, and the disk bound.
//!
//! One module per topic; the helpers they share are here.

mod cli;
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

pub(crate) fn component_file(dir: &Path) -> PathBuf {
    let found = files(&dir.join("v1/components"));
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

pub(crate) fn bytecode_file(dir: &Path, key: &Key) -> PathBuf {
    dir.join("v1/bytecode")
        .join(format!("{}.qjsc", key.to_hex()))
}
