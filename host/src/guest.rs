//! The guest: the `nexus-guest` component as `build.rs` built it (QuickJS for
//! `wasm32-wasip2`, its unreachable WASI imports trimmed), embedded in the
//! binary, and its fingerprint.
//!
//! Layer: a leaf; imports nothing of the crate.

/// The `nexus-guest` component, as built for `wasm32-wasip2`: what
/// `wasm-tools component wit` and jco read.
pub static GUEST_WASM: &[u8] = include_bytes!(env!("NEXUS_GUEST_WASM"));

/// BLAKE3 of [`GUEST_WASM`], hex: names this guest build in cache keys and
/// bytecode files.
pub const GUEST_FINGERPRINT: &str = env!("NEXUS_GUEST_FINGERPRINT");

/// [`GUEST_FINGERPRINT`] as bytes.
pub(crate) fn fingerprint() -> [u8; 32] {
    *blake3::Hash::from_hex(GUEST_FINGERPRINT)
        .expect("build.rs writes a hex fingerprint")
        .as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each build of the host (a profile, a feature set: `nexus`, the Node
    /// addon) builds the guest under its own OUT_DIR. If the guest named
    /// that directory, their guests would differ, and so would their cache
    /// keys: a handler compiled by one would never be a hit for another.
    #[test]
    fn the_guest_names_no_directory_of_this_build() {
        let out_dir = env!("OUT_DIR").as_bytes();
        assert!(
            !GUEST_WASM.windows(out_dir.len()).any(|w| w == out_dir),
            "the guest embeds {}",
            env!("OUT_DIR")
        );
    }
}
