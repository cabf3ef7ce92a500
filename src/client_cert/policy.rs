//! The inbound policy: pinned thumbprints, allowlisted common names and trusted CAs.
//!
//! Owns: the typed, already-validated form of the inbound settings, thumbprint syntax, and
//! chain verification against the trusted CAs (OpenSSL, signatures checked, no clock: the
//! caller's `now` is applied to every certificate of the chain here).
//! Must not: read files or the environment (`crate::config` and `crate::pki_files` do), or
//! log.

use openssl::hash::MessageDigest;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContext, X509};
use sha1::Digest as _;
use std::collections::{HashMap, HashSet};
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

/// SHA-256 of `bytes` (the cache key and the SHA-256 thumbprint).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
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
            .finish()
    }
}

/// Why the trusted CA set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no CA certificates")]
    Empty,
    #[error("certificate {subject:?} is not a CA (basicConstraints CA:TRUE is required)")]
    NotACa { subject: String },
    #[error("certificate could not be read: {0}")]
    Unreadable(String),
    #[error("OpenSSL refused the CA set: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// What we precompute about each trusted CA, so verification needs no re-parsing.
#[derive(Debug, Clone)]
struct Anchor {
    cert: X509,
    subject: String,
    not_before: i64,
    not_after: i64,
    /// False when the CA carries an EKU extension without clientAuth or anyExtendedKeyUsage.
    permits_client_auth: bool,
}

/// The certificates of a successful chain, leaf first, and the window in which all of
/// them are valid.
#[derive(Debug)]
pub struct VerifiedChain {
    pub certs: Vec<X509>,
    pub not_before: i64,
    pub not_after: i64,
}

/// The trusted CAs from `CLIENT_CERT_CA_PATH`. Every one is a trust anchor (OpenSSL
/// `PARTIAL_CHAIN`), so an issuing CA can be trusted without its root.
pub struct TrustAnchors {
    store: X509Store,
    anchors: HashMap<[u8; 32], Anchor>,
}

impl TrustAnchors {
    /// Builds the trust store. Certificates that are not CAs are refused rather than
    /// silently trusted as issuers.
    pub fn new(certs: Vec<X509>) -> Result<Self, TrustError> {
        if certs.is_empty() {
            return Err(TrustError::Empty);
        }
        let mut builder = X509StoreBuilder::new()?;
        // Time is checked by us against the caller's `now` (see `verify`), so the result
        // is a function of its inputs rather than of the wall clock.
        builder.set_flags(
            X509VerifyFlags::PARTIAL_CHAIN
                | X509VerifyFlags::X509_STRICT
                | X509VerifyFlags::NO_CHECK_TIME,
        )?;
        let mut anchors = HashMap::new();
        for cert in certs {
            let der = cert.to_der()?;
            let anchor = describe_anchor(&der, &cert)?;
            if anchors.insert(openssl::sha::sha256(&der), anchor).is_none() {
                builder.add_cert(cert)?;
            }
        }
        Ok(Self {
            store: builder.build(),
            anchors,
        })
    }

    /// Number of distinct trusted CAs.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are no trusted CAs (never true for a built set).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The trusted CA certificates (for verifying the CRLs they sign).
    pub fn certificates(&self) -> impl Iterator<Item = &X509> {
        self.anchors.values().map(|a| &a.cert)
    }

    /// Subjects of the trusted CAs, for start-up logs and `handler inspect`.
    pub fn subjects(&self) -> Vec<String> {
        let mut s: Vec<String> = self.anchors.values().map(|a| a.subject.clone()).collect();
        s.sort();
        s
    }

    /// Verifies that `leaf` chains to a trusted CA with valid signatures, and that every
    /// CA on the path is within its validity period at `now` and allows client
    /// authentication. The leaf's own validity and EKU are the caller's business.
    pub fn verify(&self, leaf: &X509, now: i64) -> Result<VerifiedChain, String> {
        let untrusted = Stack::new().map_err(|e| e.to_string())?;
        let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
        let outcome = ctx
            .init(&self.store, leaf, &untrusted, |c| {
                let ok = c.verify_cert()?;
                let chain: Vec<X509> = c
                    .chain()
                    .map(|s| s.iter().map(ToOwned::to_owned).collect())
                    .unwrap_or_default();
                Ok((ok, c.error(), c.error_depth(), chain))
            })
            .map_err(|e| e.to_string())?;
        let (ok, error, depth, certs) = outcome;
        if !ok {
            return Err(format!("{} (depth {depth})", error.error_string()));
        }
        let (mut not_before, mut not_after) = (i64::MIN, i64::MAX);
        for ca in certs.iter().skip(1) {
            let digest = ca
                .digest(MessageDigest::sha256())
                .map_err(|e| e.to_string())?;
            let key: [u8; 32] = digest.as_ref().try_into().map_err(|_| "digest length")?;
            let Some(anchor) = self.anchors.get(&key) else {
                return Err("chain left the trusted set".to_owned());
            };
            if now < anchor.not_before {
                return Err(format!("CA {:?} is not valid yet", anchor.subject));
            }
            if now > anchor.not_after {
                return Err(format!("CA {:?} has expired", anchor.subject));
            }
            if !anchor.permits_client_auth {
                return Err(format!(
                    "CA {:?} is restricted to other extended key usages",
                    anchor.subject
                ));
            }
            not_before = not_before.max(anchor.not_before);
            not_after = not_after.min(anchor.not_after);
        }
        Ok(VerifiedChain {
            certs,
            not_before,
            not_after,
        })
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.subjects()).finish()
    }
}

fn describe_anchor(der: &[u8], x509: &X509) -> Result<Anchor, TrustError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TrustError::Unreadable(e.to_string()))?;
    let subject = cert.subject().to_string();
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| TrustError::Unreadable(e.to_string()))?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(TrustError::NotACa { subject });
    }
    let permits_client_auth = match cert.extended_key_usage() {
        Ok(Some(eku)) => eku.value.client_auth || eku.value.any,
        Ok(None) => true,
        Err(e) => return Err(TrustError::Unreadable(e.to_string())),
    };
    Ok(Anchor {
        cert: x509.clone(),
        subject,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        permits_client_auth,
    })
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
