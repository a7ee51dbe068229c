//! The on-disk entry format: a fixed header, then the payload.
//!
//! ```text
//! 0..8    magic  b"NXSCACHE"
//! 8..12   format version, u32 LE
//! 12      artifact kind (1 component, 2 bytecode), then 3 zero bytes
//! 16..48  the entry's key
//! 48..56  payload length, u64 LE
//! 56..64  what building the payload took, in microseconds, u64 LE
//! 64..96  BLAKE3 of bytes 56..64, then the payload
//! 96..    payload
//! ```
//!
//! [`decode`] checks every field against what the reader expects before it
//! hands out a byte of payload: native code and QuickJS bytecode are trusted
//! by their loaders, so an unverified file must never reach them. The build
//! time only ranks the entry for eviction; [`cost`] reads it from a header
//! alone (a rescan does not read whole files), unverified, and caps it, so
//! a forged one can at most keep an entry [`MAX_COST`] longer.

use std::fmt;
use std::time::Duration;

use super::{Artifact, Key, FORMAT_VERSION};

const MAGIC: &[u8; 8] = b"NXSCACHE";
pub const HEADER_LEN: usize = 96;

/// No build is ranked as costing more (the guest takes seconds, the
/// largest snapshot tens of seconds).
pub const MAX_COST: Duration = Duration::from_secs(600);

fn checksum(cost: &[u8], payload: &[u8]) -> blake3::Hash {
    blake3::Hasher::new()
        .update(cost)
        .update(payload)
        .finalize()
}

fn cost_of(bytes: [u8; 8]) -> Duration {
    Duration::from_micros(u64::from_le_bytes(bytes)).min(MAX_COST)
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    Truncated(usize),
    Magic,
    Version(u32),
    Artifact(u8),
    Key,
    Length {
        header: u64,
        actual: u64,
    },
    Checksum,
    /// A FIFO, a device, a directory, a socket: never read.
    NotAFile,
    /// Larger than the tier may hold: never read.
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// In a seed directory, a file someone else could have written.
    Untrusted(String),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated(n) => write!(f, "truncated: {n} bytes, shorter than the header"),
            Damage::Magic => f.write_str("not a Nexus cache file (bad magic)"),
            Damage::Version(v) => write!(f, "format version {v}, expected {FORMAT_VERSION}"),
            Damage::Artifact(k) => write!(f, "holds artifact kind {k}, not the one asked for"),
            Damage::Key => f.write_str("holds another key's entry"),
            Damage::Length { header, actual } => {
                write!(f, "payload is {actual} bytes, header says {header}")
            }
            Damage::Checksum => f.write_str("payload checksum mismatch"),
            Damage::NotAFile => f.write_str("not a regular file (a FIFO, device or directory)"),
            Damage::Untrusted(why) => f.write_str(why),
            Damage::TooLarge { size, limit } => {
                write!(f, "{size} bytes, over the {limit}-byte limit on an entry")
            }
        }
    }
}

/// The file for `payload`, which took `cost` to build.
pub fn encode(kind: Artifact, key: &Key, payload: &[u8], cost: Duration) -> Vec<u8> {
    let cost = u64::try_from(cost.as_micros())
        .unwrap_or(u64::MAX)
        .to_le_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&cost);
    out.extend_from_slice(checksum(&cost, payload).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of `file`, if it is exactly the entry for `kind` and `key`,
/// and what it took to build.
pub fn decode<'a>(
    kind: Artifact,
    key: &Key,
    file: &'a [u8],
) -> Result<(&'a [u8], Duration), Damage> {
    let (header, payload) = check_header(kind, key, file)?;
    let length = u64::from_le_bytes(header[48..56].try_into().unwrap());
    if length != payload.len() as u64 {
        return Err(Damage::Length {
            header: length,
            actual: payload.len() as u64,
        });
    }
    let cost = &header[56..64];
    if header[64..96] != *checksum(cost, payload).as_bytes() {
        return Err(Damage::Checksum);
    }
    Ok((payload, cost_of(cost.try_into().unwrap())))
}

/// What the entry for `kind` and `key` took to build, as the header that
/// begins `file` says (unverified, capped at [`MAX_COST`]).
pub fn cost(kind: Artifact, key: &Key, file: &[u8]) -> Result<Duration, Damage> {
    let (header, _) = check_header(kind, key, file)?;
    Ok(cost_of(header[56..64].try_into().unwrap()))
}

/// The header's fixed fields checked; the header and what follows it.
fn check_header<'a>(
    kind: Artifact,
    key: &Key,
    file: &'a [u8],
) -> Result<(&'a [u8], &'a [u8]), Damage> {
    if file.len() < HEADER_LEN {
        return Err(Damage::Truncated(file.len()));
    }
    let (header, payload) = file.split_at(HEADER_LEN);
    if &header[0..8] != MAGIC {
        return Err(Damage::Magic);
    }
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(Damage::Version(version));
    }
    if header[12..16] != [kind as u8, 0, 0, 0] {
        return Err(Damage::Artifact(header[12]));
    }
    if header[16..48] != key.0 {
        return Err(Damage::Key);
    }
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_every_damage() {
        let key = Key([7; 32]);
        let took = Duration::from_millis(1234);
        let file = encode(Artifact::Bytecode, &key, b"payload", took);
        assert_eq!(
            decode(Artifact::Bytecode, &key, &file),
            Ok((&b"payload"[..], took))
        );
        assert_eq!(
            cost(Artifact::Bytecode, &key, &file[..HEADER_LEN]),
            Ok(took)
        );
        // The build time is covered by the checksum too.
        let mut slower = file.clone();
        slower[57] ^= 1;
        assert_eq!(
            decode(Artifact::Bytecode, &key, &slower),
            Err(Damage::Checksum)
        );
        // A forged one is capped.
        slower[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(cost(Artifact::Bytecode, &key, &slower), Ok(MAX_COST));

        assert_eq!(
            decode(Artifact::Component, &key, &file),
            Err(Damage::Artifact(2))
        );
        assert_eq!(
            decode(Artifact::Bytecode, &Key([8; 32]), &file),
            Err(Damage::Key)
        );
        assert_eq!(
            decode(Artifact::Bytecode, &key, &file[..10]),
            Err(Damage::Truncated(10))
        );
        assert!(matches!(
            decode(Artifact::Bytecode, &key, &file[..file.len() - 1]),
            Err(Damage::Length { .. })
        ));
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode(Artifact::Bytecode, &key, &flipped),
            Err(Damage::Checksum)
        );
        let mut magic = file.clone();
        magic[0] ^= 1;
        assert_eq!(decode(Artifact::Bytecode, &key, &magic), Err(Damage::Magic));
        let mut version = file;
        version[8] ^= 1;
        assert!(matches!(
            decode(Artifact::Bytecode, &key, &version),
            Err(Damage::Version(_))
        ));
    }
}
