//! The byte helpers every part of the rules shares.
//!
//! Owns: SHA-256 over DER bytes (cache keys, trust-anchor keys, SHA-256 thumbprints),
//! uppercase hex, and an INTEGER's magnitude bytes.
//! Must not: depend on any other rule module; they all depend on it.

use sha2::Digest as _;

/// SHA-256 of `bytes` (the cache key and the SHA-256 thumbprint).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// Uppercase hex without separators, as serial numbers and thumbprints are shown.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A DER INTEGER's content without its sign-padding zero bytes.
pub(crate) fn unsigned(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    &raw[start..]
}
