//! Precompiled handler files (`nexus compile -o FILE.qjsc`).
//!
//! ```text
//! 0..8     magic  b"NXSQJSC\0"
//! 8..12    format version, u32 LE
//! 12..44   guest fingerprint (BLAKE3 of the guest that wrote the bytecode)
//! 44..48   name length n, u32 LE
//! 48..48+n name, UTF-8
//! +8       payload length, u64 LE
//! +32      BLAKE3 of the payload
//! payload  QuickJS bytecode
//! ```
//!
//! QuickJS trusts bytecode, and bytecode only fits the guest build that
//! wrote it: [`Bytecode::from_file`] refuses a file from another guest build
//! or with a bad checksum before a byte of it reaches the guest.

use std::sync::Arc;

use super::CompiledHandler;
use crate::error::{Error, Result};
use crate::guest::{fingerprint, GUEST_FINGERPRINT};

const MAGIC: &[u8; 8] = b"NXSQJSC\0";
const VERSION: u32 = 1;

/// A handler's bytecode, detached from the cache: safe to store and ship.
#[derive(Debug, Clone)]
pub struct Bytecode {
    /// The handler's name, as its stack traces show it.
    pub name: String,
    /// QuickJS bytecode for this guest build.
    pub bytes: Arc<[u8]>,
}

impl From<&CompiledHandler> for Bytecode {
    fn from(handler: &CompiledHandler) -> Self {
        Bytecode {
            name: handler.name.clone(),
            bytes: handler.bytecode.clone(),
        }
    }
}

impl Bytecode {
    /// The file form: header, then the bytecode.
    pub fn to_file(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 128 + self.name.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&fingerprint());
        out.extend_from_slice(&(self.name.len() as u32).to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(blake3::hash(&self.bytes).as_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }

    /// Whether `file` claims to be a bytecode file (its magic).
    pub fn is_file(file: &[u8]) -> bool {
        file.starts_with(MAGIC)
    }

    /// Reads and verifies a file written by [`to_file`](Self::to_file).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBytecode`] saying what is wrong: not a Nexus bytecode
    /// file, another format version, another guest build, or damaged.
    pub fn from_file(file: &[u8]) -> Result<Bytecode> {
        let invalid = |why: String| Error::InvalidBytecode(why);
        let mut rest = file;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(invalid("truncated file".to_owned()));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        if take(8)? != MAGIC {
            return Err(invalid(
                "not a Nexus bytecode file (compile one with `nexus compile FILE.js -o FILE.qjsc`)"
                    .to_owned(),
            ));
        }
        let version = u32::from_le_bytes(take(4)?.try_into().unwrap());
        if version != VERSION {
            return Err(invalid(format!(
                "bytecode file format {version}, this nexus reads {VERSION}; recompile the handler"
            )));
        }
        let writer = take(32)?;
        if writer != fingerprint() {
            return Err(invalid(format!(
                "compiled by another guest build ({}…, this one is {}…); \
                 QuickJS bytecode only runs on the build that wrote it: recompile the handler",
                &blake3::Hash::from_bytes(writer.try_into().unwrap()).to_hex()[..12],
                &GUEST_FINGERPRINT[..12]
            )));
        }
        let name_len = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize;
        let name = String::from_utf8(take(name_len)?.to_vec())
            .map_err(|_| invalid("the handler name is not UTF-8".to_owned()))?;
        let len = u64::from_le_bytes(take(8)?.try_into().unwrap());
        let checksum = take(32)?.to_vec();
        let payload = take(len as usize)?;
        if blake3::hash(payload).as_bytes()[..] != checksum[..] {
            return Err(invalid("damaged: payload checksum mismatch".to_owned()));
        }
        if !rest.is_empty() {
            return Err(invalid("trailing bytes after the payload".to_owned()));
        }
        Ok(Bytecode {
            name,
            bytes: payload.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage_and_other_guests() {
        let b = Bytecode {
            name: "h.js".into(),
            bytes: vec![1, 2, 3].into(),
        };
        let file = b.to_file();
        let back = Bytecode::from_file(&file).unwrap();
        assert_eq!(
            (back.name.as_str(), &*back.bytes),
            ("h.js", &[1u8, 2, 3][..])
        );

        let mut other_guest = file.clone();
        other_guest[12] ^= 1;
        let e = Bytecode::from_file(&other_guest).unwrap_err().to_string();
        assert!(e.contains("another guest build"), "{e}");

        let mut damaged = file.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(Bytecode::from_file(&damaged)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        assert!(Bytecode::from_file(&file[..20]).is_err());
        assert!(Bytecode::from_file(b"export default 1")
            .unwrap_err()
            .to_string()
            .contains("not a Nexus"));
    }
}
