//! The two-tier cache of compiled artifacts: precompiled guest components and
//! handler bytecode.
//!
//! Lookup goes memory → disk (verified, then promoted) → compile, once per
//! key even under concurrent requests; a compiled artifact is stored in both
//! tiers, the disk write done by a background thread.

mod disk;
mod format;
mod key;
mod memory;
mod store;

pub use disk::{Op, VerifyReport};
pub use key::Key;
pub use store::Cache;

/// Bump when the file format or what a key covers changes: old entries then
/// become unreachable by key.
pub const FORMAT_VERSION: u32 = 1;
const VERSION_DIR: &str = "v1";

/// What a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Component = 1,
    Bytecode = 2,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Component, Kind::Bytecode];

    /// The `artifact` label: `component` or `bytecode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Component => "component",
            Kind::Bytecode => "bytecode",
        }
    }

    fn index(self) -> usize {
        self as usize - 1
    }

    fn dir(self) -> &'static str {
        match self {
            Kind::Component => "v1/components",
            Kind::Bytecode => "v1/bytecode",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Kind::Component => "cwasm",
            Kind::Bytecode => "qjsc",
        }
    }

    /// The key a file name `<hex>.<ext>` stands for.
    fn key_of(self, file_name: &str) -> Option<Key> {
        let hex = file_name
            .strip_suffix(self.extension())?
            .strip_suffix('.')?;
        Key::from_hex(hex)
    }
}

/// Where a looked-up artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    Disk,
    Compiled,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Disk => "disk",
            Source::Compiled => "compiled",
        }
    }
}

/// One tier's figures for one artifact kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
    pub evictions: u64,
}
