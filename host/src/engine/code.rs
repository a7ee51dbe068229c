//! Cranelift's incremental compilation store: each function's compiled
//! code, by the hash of what it was compiled from (wasmtime's
//! `incremental-cache`).
//!
//! A handler's snapshot is the guest with other data: almost every function
//! in it compiles exactly as the guest's own did. With this store filled,
//! Cranelift answers those from it and compiles only the rest.
//!
//! Invariants:
//! - Only the pooled engine uses it: what it holds was compiled with that
//!   engine's settings, and Wizer's engine, configured otherwise, keeps its
//!   one compile (the instrumented guest) in the cache whole instead.
//! - It only grows while [recording](CodeStore::record), which the caller
//!   turns on for the compiles of a process that found no stored copy and
//!   off when it [takes](CodeStore::take_recorded) what they added: so it
//!   holds one guest's worth of functions, not one more per snapshot.
//! - [`CodeStore::load`] refuses any blob that does not parse whole; the
//!   cache has already checked its checksum, and trusts it as it trusts the
//!   native code beside it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{OnceLock, RwLock};

/// Compiled functions by key, for the pooled engine's compiles.
#[derive(Debug, Default)]
pub(crate) struct CodeStore {
    functions: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
    recording: AtomicBool,
    /// Functions were added since the last take.
    added: AtomicBool,
    /// A stored copy was looked for.
    looked: OnceLock<()>,
}

impl wasmtime::CacheStore for CodeStore {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let functions = self.functions.read().unwrap_or_else(|e| e.into_inner());
        functions.get(key).map(|code| Cow::Owned(code.clone()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        if !self.recording.load(Relaxed) {
            return false;
        }
        let mut functions = self.functions.write().unwrap_or_else(|e| e.into_inner());
        functions.insert(key.to_vec(), value);
        self.added.store(true, Relaxed);
        true
    }
}

impl CodeStore {
    /// Runs `look` the first time it is called; later callers wait until it
    /// has run.
    pub fn once(&self, look: impl FnOnce()) {
        self.looked.get_or_init(look);
    }

    /// Whether compiles from now on add what they compiled.
    pub fn record(&self, on: bool) {
        self.recording.store(on, Relaxed);
    }

    /// Every function held, as [`load`](Self::load) reads them, if compiles
    /// added any since the last take; recording stops.
    pub fn take_recorded(&self) -> Option<Vec<u8>> {
        self.recording.store(false, Relaxed);
        if !self.added.swap(false, Relaxed) {
            return None;
        }
        let functions = self.functions.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        out.extend_from_slice(&(functions.len() as u64).to_le_bytes());
        for (key, code) in functions.iter() {
            for part in [key, code] {
                out.extend_from_slice(&(part.len() as u64).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        Some(out)
    }

    /// Adds the functions `blob` holds; answers how many.
    ///
    /// # Errors
    ///
    /// Why `blob` is not one [`take_recorded`](Self::take_recorded) wrote;
    /// then nothing is added.
    pub fn load(&self, blob: &[u8]) -> Result<usize, String> {
        let mut reader = Reader(blob);
        let count = reader.length()?;
        let mut loaded = HashMap::new();
        for _ in 0..count {
            let key = reader.part()?;
            loaded.insert(key.to_vec(), reader.part()?.to_vec());
        }
        if !reader.0.is_empty() {
            return Err(format!("{} bytes past the last function", reader.0.len()));
        }
        let mut functions = self.functions.write().unwrap_or_else(|e| e.into_inner());
        functions.extend(loaded);
        Ok(count)
    }

    /// Whether it holds nothing.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// What is left of a blob to read.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn length(&mut self) -> Result<usize, String> {
        let bytes = self.take(8)?;
        usize::try_from(u64::from_le_bytes(bytes.try_into().unwrap()))
            .map_err(|_| "a length past the address space".to_owned())
    }

    /// A length, then that many bytes.
    fn part(&mut self) -> Result<&'a [u8], String> {
        let n = self.length()?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::CacheStore as _;

    #[test]
    fn records_only_when_asked_and_round_trips() {
        let store = CodeStore::default();
        assert!(!store.insert(b"f", b"code".to_vec()), "not recording");
        assert_eq!(store.take_recorded(), None);
        store.record(true);
        assert!(store.insert(b"f", b"code".to_vec()));
        assert!(store.insert(b"g", Vec::new()));
        let blob = store.take_recorded().unwrap();
        assert!(!store.insert(b"h", b"x".to_vec()), "a take stops recording");
        assert_eq!(store.take_recorded(), None, "nothing added since");

        let other = CodeStore::default();
        assert_eq!(other.load(&blob), Ok(2));
        assert_eq!(other.get(b"f").as_deref(), Some(&b"code"[..]));
        assert_eq!(other.get(b"g").as_deref(), Some(&b""[..]));
        assert_eq!(other.get(b"h"), None);
    }

    #[test]
    fn refuses_a_blob_that_does_not_parse_whole() {
        let store = CodeStore::default();
        store.record(true);
        store.insert(b"f", b"code".to_vec());
        let blob = store.take_recorded().unwrap();
        let fresh = CodeStore::default();
        for damaged in [
            &blob[..blob.len() - 1],
            &blob[..4],
            &[blob.as_slice(), b"x"].concat()[..],
            &[&[9, 0, 0, 0, 0, 0, 0, 0][..], &blob[8..]].concat()[..],
            &[0xff; 16][..],
        ] {
            assert!(fresh.load(damaged).is_err());
            assert!(fresh.is_empty(), "nothing added from a refused blob");
        }
    }
}
