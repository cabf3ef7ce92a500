//! Why a forwarded client certificate was not accepted.
//!
//! Owns: the rejection reasons, with the context an operator needs in the log.
//! Must not: know about HTTP. `crate::host::http_error` maps these to status codes and the safe
//! client-facing messages; the `Display` text here is for logs and `handler inspect`.

/// Why the header did not hold exactly one well-formed certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("{count} X-ARR-ClientCert header values, expected one")]
    MultipleValues { count: usize },
    #[error("header is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("PEM armour is incomplete or holds more than one block")]
    BadPem,
    #[error("not base64: {detail}")]
    NotBase64 { detail: String },
    #[error("not a DER X.509 certificate: {detail}")]
    NotACertificate { detail: String },
    #[error("{bytes} bytes follow the certificate")]
    TrailingData { bytes: usize },
    #[error("certificate extension is malformed: {detail}")]
    BadExtension { detail: String },
    /// The certificate decodes but breaks the X.509 profile the handler enforces (strict
    /// extension decoding and RFC 5280 rules, see `client_cert::profile`).
    #[error("certificate breaks the X.509 profile: {detail}")]
    Profile { detail: String },
    /// The configured header format (`CLIENT_CERT_HEADER_FORMAT`) was not followed.
    #[error("{0}")]
    Header(HeaderError),
    /// A certificate of the forwarded chain (1 = the first after the leaf) is not one DER
    /// certificate.
    #[error("forwarded chain certificate {index}: {detail}")]
    Chain { index: usize, detail: String },
}

/// A certificate rejection. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// No `X-ARR-ClientCert` header, or only whitespace.
    #[error("no client certificate was forwarded")]
    Missing,
    #[error("malformed client certificate header: {0}")]
    Malformed(Malformed),
    #[error("certificate is not valid before {not_before} (now {now})")]
    NotYetValid { not_before: i64, now: i64 },
    #[error("certificate expired at {not_after} (now {now})")]
    Expired { not_after: i64, now: i64 },
    /// The EKU extension is present and does not list clientAuth (anyExtendedKeyUsage alone
    /// does not count).
    #[error("extended key usage does not allow client authentication (has: {ekus})")]
    NotForClientAuth { ekus: String },
    /// basicConstraints CA:TRUE.
    #[error("a CA certificate cannot be a client certificate")]
    CaCertificate,
    /// The common name is allowlisted, but the certificate does not chain to a trusted CA.
    #[error("common name {common_name:?} is allowlisted but the chain is not trusted: {reason}")]
    UntrustedChain { common_name: String, reason: String },
    /// The certificate's key or signature algorithm is below the key policy (RSA under
    /// 2048 bits, curves other than P-256/P-384/P-521, DSA, MD5 or SHA-1 signatures).
    #[error("weak key or signature algorithm: {reason}")]
    WeakKey { reason: String },
    /// Neither a pinned thumbprint nor an allowlisted common name.
    #[error("certificate matches no allowlisted thumbprint or common name")]
    NotAllowlisted,
    /// A certificate in the chain is on its issuer's CRL.
    #[error("certificate {serial} issued by {issuer:?} is revoked")]
    Revoked { serial: String, issuer: String },
    /// Revocation checking is on and the status of a certificate in the chain is unknown.
    #[error("revocation status unknown: {reason}")]
    RevocationUnknown { reason: String },
    /// The certificate matches a partner's identity but chains to a CA that is not the
    /// partner's issuer.
    #[error("certificate matches partner {partner:?} but was issued by {issuer:?}, not by the partner's issuer")]
    WrongIssuer { partner: String, issuer: String },
    /// The certificate matches more than one partner.
    #[error("certificate matches several partners: {}", partners.join(", "))]
    AmbiguousPartner { partners: Vec<String> },
}

impl CertError {
    /// The stable snake_case code clients and log queries rely on. Never change one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::NotForClientAuth { .. } => "not_for_client_auth",
            Self::CaCertificate => "ca_certificate",
            Self::WeakKey { .. } => "weak_key",
            Self::UntrustedChain { .. } => "untrusted_chain",
            Self::NotAllowlisted => "not_allowlisted",
            Self::Revoked { .. } => "revoked",
            Self::RevocationUnknown { .. } => "revocation_unknown",
            Self::WrongIssuer { .. } => "wrong_issuer",
            Self::AmbiguousPartner { .. } => "ambiguous_partner",
        }
    }

    /// Whether the same certificate could get a different answer later under the same
    /// policy purely because time passed; such answers are never cached.
    pub fn depends_on_time(&self) -> bool {
        matches!(
            self,
            Self::NotYetValid { .. }
                | Self::Expired { .. }
                | Self::UntrustedChain { .. }
                | Self::RevocationUnknown { .. }
        )
    }
}

impl From<Malformed> for CertError {
    fn from(m: Malformed) -> Self {
        Self::Malformed(m)
    }
}

/// Why a header in one of the forwarded formats did not hold one certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("{count} {header} header values, expected one")]
    Repeated { header: &'static str, count: usize },
    #[error("{header} header is {len} bytes, more than the {max} allowed")]
    TooLarge {
        header: &'static str,
        len: usize,
        max: usize,
    },
    #[error("bad percent-encoding at byte {at}")]
    BadPercentEncoding { at: usize },
    #[error("URL-decoded value is not UTF-8 text")]
    NotText,
    #[error("expected one PEM certificate, found {found}")]
    PemCount { found: usize },
    #[error("PEM armour is incomplete or holds something besides certificates")]
    BadPem,
    #[error("PEM body is not base64: {detail}")]
    PemNotBase64 { detail: String },
    #[error("XFCC has {count} elements; only one (the front end's) is accepted")]
    XfccElements { count: usize },
    #[error("XFCC value has an unterminated quoted string")]
    UnterminatedQuote,
    #[error("XFCC pair {pair:?} has no '='")]
    XfccPair { pair: String },
    #[error("XFCC key {key} appears more than once")]
    XfccDuplicate { key: &'static str },
    #[error("XFCC element has no Cert (the front end must forward the certificate)")]
    XfccNoCert,
    #[error("XFCC Hash is not 64 hex digits")]
    XfccBadHash,
    #[error("XFCC Hash does not match the SHA-256 of Cert")]
    XfccHashMismatch,
    #[error("{header} is not a structured-field byte sequence: {detail}")]
    NotByteSequence {
        header: &'static str,
        detail: String,
    },
    #[error("forwarded chain has {count} certificates, more than the {max} accepted")]
    ChainTooLong { count: usize, max: usize },
}
