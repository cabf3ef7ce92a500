//! Turning certificate-and-key bytes into a [`KeyMaterial`]: PKCS#12 (`.pfx`/`.p12`, with a
//! password, including the legacy RC2-40/3DES bundles older Windows and Key Vault exports
//! make) and PEM (certificate(s) plus an unencrypted private key).
//!
//! Owns: the formats, picking the leaf (the certificate whose public key matches the key),
//! the chain order, and the SHA-1 thumbprint and validity of the leaf.
//! Must not: read files, fetch anything, look at the clock or log. The only side effect is
//! loading OpenSSL's `legacy` and `default` providers once per process
//! ([`ensure_legacy_provider`]), without which OpenSSL 3 cannot decrypt legacy PKCS#12.
//! With the system OpenSSL `legacy` is the module `ossl-modules/legacy.so`; in the portable
//! build (feature `portable`, OpenSSL compiled with `no-module`) it is built in, and the same
//! load by name finds it.

use openssl::error::ErrorStack;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::provider::Provider;
use openssl::x509::X509;
use std::sync::OnceLock;

/// Why bytes did not yield a certificate with its private key. Never carries key material
/// or passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("not a PKCS#12 file ({reason})")]
    NotPkcs12 { reason: String },
    #[error("wrong password for the PKCS#12 file")]
    WrongPassword,
    #[error("cannot decrypt the PKCS#12 file ({reason})")]
    Undecryptable { reason: String },
    #[error("no certificate in the {format} data")]
    NoCertificate { format: &'static str },
    #[error("no private key in the {format} data")]
    NoPrivateKey { format: &'static str },
    #[error("the PEM private key is encrypted; only unencrypted PEM keys are supported")]
    EncryptedPemKey,
    #[error("no certificate matches the private key")]
    KeyMismatch,
    #[error("not PEM ({reason})")]
    NotPem { reason: String },
    #[error("cannot read the certificate ({reason})")]
    BadCertificate { reason: String },
}

/// A leaf certificate, its chain and its private key, plus what the rest of the module
/// shows about it. `Debug` never prints the key.
#[derive(Clone)]
pub struct KeyMaterial {
    pub leaf: X509,
    /// Intermediates to send after the leaf (may be empty).
    pub chain: Vec<X509>,
    key: PKey<Private>,
    /// Uppercase hex SHA-1 of the leaf's DER, as App Service and the portal show it.
    pub thumbprint: String,
    pub common_name: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("thumbprint", &self.thumbprint)
            .field("common_name", &self.common_name)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// The leaf then the chain, as PEM (what `reqwest::Identity::from_pkcs8_pem` takes).
    pub fn chain_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        let mut out = self.leaf.to_pem()?;
        for c in &self.chain {
            out.extend(c.to_pem()?);
        }
        Ok(out)
    }

    /// The private key as PKCS#8 PEM. Handle with care: never log it.
    pub fn key_pkcs8_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        self.key.private_key_to_pem_pkcs8()
    }
}

/// Loads OpenSSL 3's `default` and `legacy` providers once and keeps them loaded for the
/// life of the process (loading one provider explicitly disables the implicit default, so
/// both are needed). Returns the load error, if any, as text; later calls return the same.
pub fn ensure_legacy_provider() -> Result<(), String> {
    static PROVIDERS: OnceLock<Result<(Provider, Provider), String>> = OnceLock::new();
    PROVIDERS
        .get_or_init(|| {
            let default = Provider::load(None, "default").map_err(|e| e.to_string())?;
            let legacy = Provider::load(None, "legacy").map_err(|e| e.to_string())?;
            Ok((default, legacy))
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

/// A DER PKCS#12 bundle with `password` ("" for none).
pub fn from_pkcs12(der: &[u8], password: &str) -> Result<KeyMaterial, KeyMaterialError> {
    // Without the legacy provider RC2-40 bundles fail below with a clear error anyway.
    let _ = ensure_legacy_provider();
    let p12 = Pkcs12::from_der(der).map_err(|e| KeyMaterialError::NotPkcs12 {
        reason: first_reason(&e),
    })?;
    let parsed = p12.parse2(password).map_err(|e| {
        let reason = first_reason(&e);
        if reason.contains("mac verify failure") {
            KeyMaterialError::WrongPassword
        } else {
            KeyMaterialError::Undecryptable { reason }
        }
    })?;
    let key = parsed
        .pkey
        .ok_or(KeyMaterialError::NoPrivateKey { format: "PKCS#12" })?;
    let mut certs: Vec<X509> = parsed.cert.into_iter().collect();
    if let Some(ca) = parsed.ca {
        certs.extend(ca);
    }
    assemble(certs, key, "PKCS#12")
}

/// PEM text holding one private key (PKCS#8, PKCS#1 or SEC1, unencrypted) and one or more
/// certificates in any order.
pub fn from_pem(pem: &[u8]) -> Result<KeyMaterial, KeyMaterialError> {
    if !contains(pem, b"-----BEGIN ") {
        return Err(KeyMaterialError::NotPem {
            reason: "no BEGIN line".to_owned(),
        });
    }
    if contains(pem, b"ENCRYPTED PRIVATE KEY") || contains(pem, b"Proc-Type: 4,ENCRYPTED") {
        return Err(KeyMaterialError::EncryptedPemKey);
    }
    if !contains(pem, b"PRIVATE KEY-----") {
        return Err(KeyMaterialError::NoPrivateKey { format: "PEM" });
    }
    let key = PKey::private_key_from_pem(pem).map_err(|e| KeyMaterialError::NotPem {
        reason: first_reason(&e),
    })?;
    let certs = X509::stack_from_pem(pem).map_err(|e| KeyMaterialError::BadCertificate {
        reason: first_reason(&e),
    })?;
    assemble(certs, key, "PEM")
}

/// PKCS#12 when the bytes look like DER (start with a SEQUENCE), PEM otherwise.
pub fn from_file_bytes(bytes: &[u8], password: &str) -> Result<KeyMaterial, KeyMaterialError> {
    if bytes.first() == Some(&0x30) {
        from_pkcs12(bytes, password)
    } else if contains(bytes, b"-----BEGIN ") {
        from_pem(bytes)
    } else {
        Err(KeyMaterialError::NotPkcs12 {
            reason: "neither DER PKCS#12 nor PEM".to_owned(),
        })
    }
}

fn assemble(
    certs: Vec<X509>,
    key: PKey<Private>,
    format: &'static str,
) -> Result<KeyMaterial, KeyMaterialError> {
    if certs.is_empty() {
        return Err(KeyMaterialError::NoCertificate { format });
    }
    let leaf_index = certs
        .iter()
        .position(|c| c.public_key().is_ok_and(|pk| pk.public_eq(&key)))
        .ok_or(KeyMaterialError::KeyMismatch)?;
    let mut chain = certs;
    let leaf = chain.remove(leaf_index);
    let bad = |e: String| KeyMaterialError::BadCertificate { reason: e };
    let der = leaf.to_der().map_err(|e| bad(first_reason(&e)))?;
    let thumbprint = crate::inbound::client_cert::Thumbprint::of_der(&der)
        .0
        .to_string();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
    let common_name = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let validity = parsed.validity();
    Ok(KeyMaterial {
        thumbprint,
        common_name,
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        leaf,
        chain,
        key,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first OpenSSL reason, short enough for a message.
fn first_reason(e: &ErrorStack) -> String {
    e.errors()
        .first()
        .map(|err| err.reason().unwrap_or("unknown reason").to_owned())
        .unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::pki::CertSpec;

    const NOW: i64 = 1_750_000_000;

    fn issued() -> (crate::tools::pki::Issued, crate::tools::pki::Issued) {
        let ca = CertSpec::ca("Test CA", NOW, 30).self_signed().unwrap();
        let leaf = CertSpec::leaf("outbound.example", NOW, 10)
            .issued_by(&ca)
            .unwrap();
        (ca, leaf)
    }

    #[test]
    fn a_pkcs12_bundle_yields_the_leaf_its_chain_and_an_uppercase_thumbprint() {
        let (ca, leaf) = issued();
        let der = leaf.pkcs12("pw", &[&ca.cert]).unwrap();
        let m = from_pkcs12(&der, "pw").unwrap();
        assert_eq!(m.common_name.as_deref(), Some("outbound.example"));
        assert_eq!(m.chain.len(), 1);
        assert_eq!(m.thumbprint.len(), 40);
        assert_eq!(m.thumbprint, m.thumbprint.to_uppercase());
        assert_eq!(m.not_after, NOW + 10 * 86_400);
    }

    #[test]
    fn a_wrong_password_is_reported_as_such() {
        let (_, leaf) = issued();
        let der = leaf.pkcs12("right", &[]).unwrap();
        assert_eq!(
            from_pkcs12(&der, "wrong").unwrap_err(),
            KeyMaterialError::WrongPassword
        );
    }

    #[test]
    fn corrupt_bytes_are_not_pkcs12() {
        let err = from_pkcs12(b"\x30\x03\x02\x01", "").unwrap_err();
        assert!(matches!(err, KeyMaterialError::NotPkcs12 { .. }), "{err:?}");
    }

    #[test]
    fn pem_with_the_key_after_the_certificates_finds_the_leaf_by_its_key() {
        let (ca, leaf) = issued();
        let mut pem = ca.cert_pem().unwrap();
        pem.extend(leaf.cert_pem().unwrap());
        pem.extend(leaf.key_pem().unwrap());
        let m = from_pem(&pem).unwrap();
        assert_eq!(m.common_name.as_deref(), Some("outbound.example"));
        assert_eq!(m.chain.len(), 1);
    }

    #[test]
    fn pem_without_a_key_or_with_a_foreign_key_is_rejected() {
        let (ca, leaf) = issued();
        let pem = leaf.cert_pem().unwrap();
        assert_eq!(
            from_pem(&pem).unwrap_err(),
            KeyMaterialError::NoPrivateKey { format: "PEM" }
        );
        let mut pem = leaf.cert_pem().unwrap();
        pem.extend(ca.key_pem().unwrap());
        assert_eq!(from_pem(&pem).unwrap_err(), KeyMaterialError::KeyMismatch);
    }

    #[test]
    fn debug_output_never_contains_the_key() {
        let (_, leaf) = issued();
        let der = leaf.pkcs12("", &[]).unwrap();
        let m = from_pkcs12(&der, "").unwrap();
        let text = format!("{m:?}");
        assert!(!text.contains("PRIVATE"));
        assert!(text.contains(&m.thumbprint));
    }
}
