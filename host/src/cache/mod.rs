//! The two-tier cache of compiled artifacts: bytes and keys.
//!
//! Lookup goes memory → disk (verified, then promoted) → a read-only seed
//! directory, if there is one (verified, then promoted) → compile, once per
//! key even under concurrent requests; a compiled artifact is stored in both
//! tiers, the disk write done by a background thread.
//!
//! Both tiers evict by one [`policy`]: by default, what would cost least to
//! rebuild per byte it frees (each entry's build time is measured when it
//! is made, and kept in its file's header).
//!
//! Layer: imports only `std`, `cap-std`, `blake3` and the
//! [`Eviction`](crate::config::Eviction) setting; never wasmtime, the bindings or anything above. What an entry decodes to (a component, a
//! byte slice) is the caller's business: the memory tier holds it as
//! `dyn Any`, the disk tier as verified bytes.

mod budget;
mod disk;
mod format;
mod key;
mod memory;
mod policy;
mod tiers;
mod trust;

pub use disk::{Op, VerifyReport};
pub use key::Key;
pub use tiers::{Built, Cache, DiskEntry, SeedEntries};

/// Bump when the file format or what a key covers changes: old entries then
/// become unreachable by key, rank as costing nothing, and are the first
/// evicted. (2: each entry's build time in its header.)
pub const FORMAT_VERSION: u32 = 2;
/// The directory layout's version: the directory under the cache directory
/// that holds every entry, whatever its format.
const VERSION_DIR: &str = "v1";

/// What a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Artifact {
    /// A precompiled (native) component.
    Component = 1,
    /// A handler's QuickJS bytecode.
    Bytecode = 2,
}

impl Artifact {
    /// Every kind, components first.
    pub const ALL: [Artifact; 2] = [Artifact::Component, Artifact::Bytecode];

    /// The `artifact` label: `component` or `bytecode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Artifact::Component => "component",
            Artifact::Bytecode => "bytecode",
        }
    }

    fn index(self) -> usize {
        self as usize - 1
    }

    fn dir(self) -> &'static str {
        match self {
            Artifact::Component => "components",
            Artifact::Bytecode => "bytecode",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Artifact::Component => "cwasm",
            Artifact::Bytecode => "qjsc",
        }
    }

    /// The key a file name `<hex>.<ext>` stands for: only the name the
    /// cache itself writes (lowercase hex), so that every file it counts
    /// is one it can evict.
    fn key_of(self, file_name: &std::ffi::OsStr) -> Option<Key> {
        let hex = file_name
            .to_str()?
            .strip_suffix(self.extension())?
            .strip_suffix('.')?;
        Key::from_hex(hex).filter(|key| key.to_hex() == hex)
    }
}

/// Where a looked-up artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The memory tier had it.
    Memory,
    /// A verified file had it; it is now in memory too.
    Disk,
    /// The seed directory had it; it is now in memory and in the cache
    /// directory too.
    Seed,
    /// Neither tier had it: it was compiled, and stored in both.
    Compiled,
}

impl Origin {
    /// Every origin.
    pub const ALL: [Origin; 4] = [Origin::Memory, Origin::Disk, Origin::Seed, Origin::Compiled];

    /// The label: `memory`, `disk`, `seed` or `compiled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Memory => "memory",
            Origin::Disk => "disk",
            Origin::Seed => "seed",
            Origin::Compiled => "compiled",
        }
    }
}

/// One tier's figures for one artifact kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Lookups this tier answered.
    pub hits: u64,
    /// Lookups this tier could not answer.
    pub misses: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// The tier's bound (shared by every kind).
    pub capacity_bytes: u64,
    /// Entries evicted to stay within the bound.
    pub evictions: u64,
}
