//! What a certificate says about itself: the fields `/api/cert-info` and `handler inspect`
//! show.
//!
//! Owns: reading names, SANs, EKUs, validity and fingerprints out of a parsed certificate.
//! Must not: judge the certificate.

use super::digest::hex_upper;
use super::policy::Thumbprint;
use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The identity-bearing fields of one certificate. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// SHA-1 of the DER, uppercase hex (the Azure "thumbprint").
    pub thumbprint_sha1: String,
    /// SHA-256 of the DER, uppercase hex.
    pub thumbprint_sha256: String,
    /// Every CN attribute of the subject, in certificate order.
    pub common_names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    /// Uppercase hex of the serial number's bytes.
    pub serial_number: String,
    pub not_before: i64,
    pub not_after: i64,
    pub dns_names: Vec<String>,
    /// Extended key usages by name (`clientAuth`, `serverAuth`, `any`) or OID; `None`
    /// when the extension is absent (which allows every use).
    pub extended_key_usages: Option<Vec<String>>,
    pub is_ca: bool,
}

impl CertificateInfo {
    /// The subject CN when there is exactly one; several CNs are ambiguous and none is
    /// reported as "the" common name.
    pub fn common_name(&self) -> Option<&str> {
        match self.common_names.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Describes `cert`, whose DER has the fingerprints `thumbprints` (SHA-1, SHA-256).
    pub(crate) fn from_parsed(
        cert: &X509Certificate<'_>,
        (sha1, sha256): (Thumbprint, Thumbprint),
    ) -> Self {
        let common_names = cert
            .subject()
            .iter_common_name()
            .map(|cn| match cn.as_str() {
                Ok(s) => s.to_owned(),
                // BMPString and friends: show the bytes rather than guess.
                Err(_) => format!("<undecodable {} bytes>", cn.as_slice().len()),
            })
            .collect();
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let extended_key_usages = match cert.extended_key_usage() {
            Ok(Some(eku)) => Some(eku_names(eku.value)),
            _ => None,
        };
        Self {
            thumbprint_sha1: sha1.to_string(),
            thumbprint_sha256: sha256.to_string(),
            common_names,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_number: hex_upper(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            dns_names,
            extended_key_usages,
            is_ca: cert.is_ca(),
        }
    }
}

pub(crate) fn eku_names(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let flags = [
        (eku.any, "any"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "ocspSigning"),
    ];
    for (set, name) in flags {
        if set {
            names.push(name.to_owned());
        }
    }
    names.extend(eku.other.iter().map(ToString::to_string));
    names
}
