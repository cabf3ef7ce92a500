//! The inbound policy: pinned thumbprints, allowlisted common names and trusted CAs.
//!
//! Owns: the typed, already-validated form of the inbound settings and thumbprint syntax.
//! Chain verification against the trusted CAs lives in `trust`.
//! Must not: read files or the environment (`crate::settings` and `crate::pki_files` do), or
//! log.

use super::digest::sha256;
use super::trust::TrustAnchors;
use sha1::Digest as _;
use std::collections::HashSet;
use std::fmt;

/// A certificate fingerprint from `ALLOWED_CLIENT_CERT_THUMBPRINTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Thumbprint {
    /// SHA-1 of the DER certificate: what the Azure portal and .NET call "thumbprint".
    Sha1([u8; 20]),
    /// SHA-256 of the DER certificate: prefer this for new pins.
    Sha256([u8; 32]),
}

/// Why a configured thumbprint is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbprintError {
    #[error("{value:?} contains {bad:?}, which is not a hex digit")]
    NotHex { value: String, bad: char },
    #[error("{value:?} has {digits} hex digits; a SHA-1 thumbprint has 40 and a SHA-256 one 64")]
    WrongLength { value: String, digits: usize },
}

impl Thumbprint {
    /// Parses a fingerprint as people paste them: any case, with `:` or spaces between
    /// bytes, and with the invisible marks Windows' certificate dialog copies along
    /// (U+200E and friends), all ignored.
    pub fn parse(value: &str) -> Result<Self, ThumbprintError> {
        let mut digits = Vec::with_capacity(64);
        for c in value.chars() {
            if c == ':' || c.is_whitespace() || is_invisible(c) {
                continue;
            }
            let Some(d) = c.to_digit(16) else {
                return Err(ThumbprintError::NotHex {
                    value: value.to_owned(),
                    bad: c,
                });
            };
            digits.push(d as u8);
        }
        let bytes: Vec<u8> = digits
            .chunks(2)
            .map(|p| p[0] << 4 | p.get(1).copied().unwrap_or(0))
            .collect();
        match digits.len() {
            40 => Ok(Self::Sha1(bytes.try_into().unwrap_or([0; 20]))),
            64 => Ok(Self::Sha256(bytes.try_into().unwrap_or([0; 32]))),
            n => Err(ThumbprintError::WrongLength {
                value: value.to_owned(),
                digits: n,
            }),
        }
    }

    /// Both fingerprints of a DER certificate.
    pub fn of_der(der: &[u8]) -> (Self, Self) {
        (
            Self::Sha1(sha1::Sha1::digest(der).into()),
            Self::Sha256(sha256(der)),
        )
    }
}

impl fmt::Display for Thumbprint {
    /// Uppercase hex without separators, as the Azure portal shows thumbprints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: &[u8] = match self {
            Self::Sha1(b) => b,
            Self::Sha256(b) => b,
        };
        for b in bytes {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// Zero-width and direction marks that survive copy and paste from certificate viewers.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}'
    )
}

/// The inbound certificate policy, built once at start-up.
pub struct Policy {
    /// Pinned certificates: a match accepts without a chain.
    pub thumbprints: HashSet<Thumbprint>,
    /// Allowlisted subject common names (compared ASCII case-insensitively, exactly).
    pub common_names: Vec<String>,
    /// Trusted CAs; `None` when `CLIENT_CERT_CA_PATH` is unset.
    pub trust: Option<TrustAnchors>,
    /// The seed's weak mode: a CN match needs no trusted chain.
    pub allow_unverified_common_names: bool,
    /// `CLIENT_CERT_ALLOW_WEAK_KEYS`: accept leaves whose key or signature algorithm is
    /// below the key policy (explicit curve parameters are refused even so).
    pub allow_weak_keys: bool,
}

impl Policy {
    pub(crate) fn common_name_allowed(&self, cn: &str) -> bool {
        self.common_names
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(cn))
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("thumbprints", &self.thumbprints.len())
            .field("common_names", &self.common_names)
            .field("trusted_cas", &self.trust.as_ref().map(TrustAnchors::len))
            .field(
                "allow_unverified_common_names",
                &self.allow_unverified_common_names,
            )
            .field("allow_weak_keys", &self.allow_weak_keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "9F2B6C1E0A4D3B5C7E8F9A0B1C2D3E4F5A6B7C8D";

    #[test]
    fn thumbprint_ignores_case_colons_spaces_and_windows_marks() {
        let plain = Thumbprint::parse(SHA1).unwrap();
        let messy = "\u{200E}9f:2b:6c:1e 0a4d3b5c7e8f9a0b1c2d3e4f5a6b7c8d\u{FEFF}";
        assert_eq!(Thumbprint::parse(messy).unwrap(), plain);
        assert_eq!(plain.to_string(), SHA1);
    }

    #[test]
    fn thumbprint_of_64_digits_is_sha256() {
        let t = Thumbprint::parse(&"ab".repeat(32)).unwrap();
        assert!(matches!(t, Thumbprint::Sha256(_)));
    }

    #[test]
    fn thumbprint_of_other_lengths_or_non_hex_is_refused() {
        assert!(matches!(
            Thumbprint::parse("abcd"),
            Err(ThumbprintError::WrongLength { digits: 4, .. })
        ));
        assert!(matches!(
            Thumbprint::parse(&"g".repeat(40)),
            Err(ThumbprintError::NotHex { bad: 'g', .. })
        ));
    }
}
