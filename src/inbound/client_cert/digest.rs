//! The digest every part of the rules shares.
//!
//! Owns: SHA-256 over DER bytes (cache keys, trust-anchor keys, SHA-256 thumbprints).
//! Must not: depend on any other rule module; they all depend on it.

use sha2::Digest as _;

/// SHA-256 of `bytes` (the cache key and the SHA-256 thumbprint).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}
