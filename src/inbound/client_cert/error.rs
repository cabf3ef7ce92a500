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
    /// The configured header format (`CLIENT_CERT_HEADER_FORMAT`) was not followed.
    #[error("{0}")]
    Header(super::forwarded::HeaderError),
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
    /// The EKU extension is present and allows neither clientAuth nor anyExtendedKeyUsage.
    #[error("extended key usage does not allow client authentication (has: {ekus})")]
    NotForClientAuth { ekus: String },
    /// basicConstraints CA:TRUE.
    #[error("a CA certificate cannot be a client certificate")]
    CaCertificate,
    /// The common name is allowlisted, but the certificate does not chain to a trusted CA.
    #[error("common name {common_name:?} is allowlisted but the chain is not trusted: {reason}")]
    UntrustedChain { common_name: String, reason: String },
    /// Neither a pinned thumbprint nor an allowlisted common name.
    #[error("certificate matches no allowlisted thumbprint or common name")]
    NotAllowlisted,
    /// A certificate in the chain is on its issuer's CRL.
    #[error("certificate {serial} issued by {issuer:?} is revoked")]
    Revoked { serial: String, issuer: String },
    /// Revocation checking is on and the status of a certificate in the chain is unknown.
    #[error("revocation status unknown: {reason}")]
    RevocationUnknown { reason: String },
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
            Self::UntrustedChain { .. } => "untrusted_chain",
            Self::NotAllowlisted => "not_allowlisted",
            Self::Revoked { .. } => "revoked",
            Self::RevocationUnknown { .. } => "revocation_unknown",
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
