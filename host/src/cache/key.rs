//! Cache keys: BLAKE3 over everything an artifact depends on.
//!
//! Every field is length-prefixed and the artifact kind and format version
//! come first, so two different inputs never hash the same bytes, and a new
//! guest build, engine or format changes every key (old entries are then
//! simply never asked for, and age out under the disk bound).

use std::fmt;

use super::{Artifact, FORMAT_VERSION};

/// A 32-byte BLAKE3 key; file names show it as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    fn hash(kind: Artifact, fields: &[&[u8]]) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(b"nexus-cache-key");
        h.update(&FORMAT_VERSION.to_le_bytes());
        h.update(&[kind as u8]);
        for field in fields {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        Key(*h.finalize().as_bytes())
    }

    /// The key of a handler's bytecode.
    pub fn bytecode(guest_fingerprint: &str, name: &str, source: &str, options: &[u8]) -> Key {
        Key::hash(
            Artifact::Bytecode,
            &[
                guest_fingerprint.as_bytes(),
                name.as_bytes(),
                source.as_bytes(),
                options,
            ],
        )
    }

    /// The key of a precompiled component: its wasm and the engine's
    /// compatibility hash (wasmtime version, target, settings).
    pub fn component(wasm: &[u8], engine_hash: &[u8], variant: &str) -> Key {
        Key::hash(
            Artifact::Component,
            &[wasm, engine_hash, variant.as_bytes()],
        )
    }

    /// The key of a handler's own precompiled component: as
    /// [`component`](Self::component), and the handler's bytecode.
    pub fn prepared(wasm: &[u8], engine_hash: &[u8], variant: &str, bytecode: &[u8]) -> Key {
        Key::hash(
            Artifact::Component,
            &[wasm, engine_hash, variant.as_bytes(), bytecode],
        )
    }

    /// The key as 64 lowercase hex digits, as file names show it.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses a key from the hex of a file name.
    pub fn from_hex(hex: &str) -> Option<Key> {
        blake3::Hash::from_hex(hex).ok().map(|h| Key(*h.as_bytes()))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_key() {
        let base = Key::bytecode("g", "a.js", "src", b"o");
        assert_ne!(base, Key::bytecode("h", "a.js", "src", b"o"));
        assert_ne!(base, Key::bytecode("g", "b.js", "src", b"o"));
        assert_ne!(base, Key::bytecode("g", "a.js", "src2", b"o"));
        assert_ne!(base, Key::bytecode("g", "a.js", "src", b"p"));
        // Length prefixes: moving a byte between fields is a new key.
        assert_ne!(
            Key::bytecode("g", "ab", "c", b""),
            Key::bytecode("g", "a", "bc", b"")
        );
        assert_eq!(base, Key::from_hex(&base.to_hex()).unwrap());

        let component = Key::component(b"wasm", b"engine", "guest");
        assert_ne!(component, Key::component(b"wasm2", b"engine", "guest"));
        assert_ne!(component, Key::component(b"wasm", b"engine2", "guest"));
        assert_ne!(component, Key::component(b"wasm", b"engine", "snapshot"));
    }
}
