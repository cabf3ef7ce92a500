//! The certificate profile and key policy every certificate on a path must meet, checked
//! the same way whichever route (`trust`'s direct check or OpenSSL's verifier) verifies
//! the chain.
//!
//! Owns:
//! - strict decoding: every extension decodes, completely, and appears once; a critical
//!   extension is one this code (or OpenSSL's verifier, for CA constraints) processes;
//! - the RFC 5280 profile rules the handler enforces (serial length, version, key
//!   identifiers and basicConstraints criticality, what only a CA may carry, non-empty
//!   names, the signature algorithm inside and outside the signed part);
//! - the key policy: RSA ≥ 2048 bits with an odd exponent ≥ 3, ECDSA on the named curves
//!   P-256, P-384 and P-521, Ed25519 and Ed448; no DSA, no other or explicit curves, no
//!   MD2/MD4/MD5/SHA-1 signatures;
//! - the syntax of SAN DNS names and email addresses checked against a CA's name
//!   constraints.
//!
//! Which code a finding becomes is the caller's business: `malformed`/`weak_key` for the
//! leaf (`super`), `untrusted_chain` or a start-up error for a CA (`trust`).
//! Must not: verify signatures or chains, read the clock, log, or allocate on the success
//! path beyond what the parser already did.

use super::digest::unsigned;
use std::fmt;
use x509_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::oid_registry as oids;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::AlgorithmIdentifier;

/// A certificate's own problem: its bytes or content break the profile. Becomes
/// `malformed` for a leaf and `untrusted_chain` for a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileViolation(pub String);

impl fmt::Display for ProfileViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key or signature algorithm below the key policy. Becomes `weak_key` for a leaf and a
/// start-up error (or a skipped CA on reload) for a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakKey {
    pub reason: String,
    /// Explicit curve parameters: refused even when weak keys are allowed, since they let
    /// a certificate define its own curve (CVE-2020-0601).
    pub always_refused: bool,
}

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Checks decoding and profile rules that hold for any certificate, leaf or CA, plus the
/// rules for what it claims to be (CA or end entity, from its own basicConstraints).
pub(crate) fn check(cert: &X509Certificate<'_>) -> Result<(), ProfileViolation> {
    let bad = |s: String| Err(ProfileViolation(s));
    let tbs = &cert.tbs_certificate;
    let version = tbs.version.0;
    if version > 2 {
        return bad(format!("unknown certificate version {}", version + 1));
    }
    if version < 2 && !tbs.extensions().is_empty() {
        return bad(format!(
            "a version {} certificate carries extensions, which need version 3 (RFC 5280 4.1.2.9)",
            version + 1
        ));
    }
    if version == 0 && (tbs.issuer_uid.is_some() || tbs.subject_uid.is_some()) {
        return bad("a version 1 certificate carries unique identifiers".to_owned());
    }
    let serial = unsigned(cert.raw_serial()).len();
    if serial > 20 {
        return bad(format!(
            "the serial number is {serial} octets long; RFC 5280 4.1.2.2 allows at most 20"
        ));
    }
    if cert.signature_algorithm != tbs.signature {
        return bad(
            "the signature algorithm outside the signed part differs from the one inside \
             (RFC 5280 4.1.1.2)"
                .to_owned(),
        );
    }
    if tbs.issuer.iter().next().is_none() {
        return bad("the issuer name is empty (RFC 5280 4.1.2.4)".to_owned());
    }

    let extensions = tbs.extensions();
    let mut is_ca = false;
    let mut key_cert_sign = false;
    let mut path_len = false;
    let mut san: Option<(bool, usize)> = None;
    let mut name_constraints = false;
    for (i, ext) in extensions.iter().enumerate() {
        if extensions[..i].iter().any(|e| e.oid == ext.oid) {
            return bad(format!(
                "the {} extension appears more than once (RFC 5280 4.2)",
                name(ext)
            ));
        }
        decode_fully(ext)?;
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                is_ca = bc.ca;
                path_len = bc.path_len_constraint.is_some();
            }
            ParsedExtension::KeyUsage(ku) => {
                if ku.flags == 0 {
                    return bad("keyUsage asserts no usage (RFC 5280 4.2.1.3)".to_owned());
                }
                key_cert_sign = ku.key_cert_sign();
            }
            ParsedExtension::SubjectAlternativeName(names) => {
                check_general_names("subjectAltName", &names.general_names)?;
                san = Some((ext.critical, names.general_names.len()));
            }
            ParsedExtension::NameConstraints(nc) => {
                name_constraints = true;
                for subtrees in [&nc.permitted_subtrees, &nc.excluded_subtrees]
                    .into_iter()
                    .flatten()
                {
                    for subtree in subtrees {
                        if let GeneralName::Invalid(..) = subtree.base {
                            return bad("a nameConstraints subtree does not decode".to_owned());
                        }
                    }
                }
            }
            ParsedExtension::AuthorityKeyIdentifier(_)
            | ParsedExtension::SubjectKeyIdentifier(_)
                if ext.critical =>
            {
                return bad(format!(
                    "the {} extension is critical; RFC 5280 4.2.1.1/4.2.1.2 say it never is",
                    name(ext)
                ));
            }
            ParsedExtension::AuthorityInfoAccess(_) if ext.critical => {
                return bad(
                    "the authorityInfoAccess extension is critical; RFC 5280 4.2.2.1 says it \
                     never is"
                        .to_owned(),
                );
            }
            _ if ext.critical && !processed_when_critical(ext) => {
                return bad(format!(
                    "unknown critical extension {} (RFC 5280 4.2: a certificate with a \
                     critical extension that is not processed must be refused)",
                    ext.oid
                ));
            }
            _ => {}
        }
        if ext.oid.as_bytes() == PROXY_CERT_INFO {
            return bad("a proxy certificate (RFC 3820) is not accepted".to_owned());
        }
    }
    if let Some((critical, entries)) = san {
        if entries == 0 {
            return bad("the subjectAltName extension is empty (RFC 5280 4.2.1.6)".to_owned());
        }
        if tbs.subject.iter().next().is_none() && !critical {
            return bad(
                "the subject is empty and the subjectAltName is not critical (RFC 5280 4.2.1.6)"
                    .to_owned(),
            );
        }
    } else if tbs.subject.iter().next().is_none() {
        return bad("the subject is empty and there is no subjectAltName".to_owned());
    }

    if is_ca {
        let bc_critical = extensions
            .iter()
            .any(|e| e.oid == oids::OID_X509_EXT_BASIC_CONSTRAINTS && e.critical);
        if !bc_critical {
            return bad(
                "the basicConstraints extension of a CA is not critical (RFC 5280 4.2.1.9)"
                    .to_owned(),
            );
        }
        if tbs.subject.iter().next().is_none() {
            return bad("a CA's subject name is empty (RFC 5280 4.1.2.6)".to_owned());
        }
        let has_key_usage = extensions
            .iter()
            .any(|e| e.oid == oids::OID_X509_EXT_KEY_USAGE);
        if has_key_usage && !key_cert_sign {
            return bad(
                "a CA's keyUsage does not include keyCertSign (RFC 5280 4.2.1.3)".to_owned(),
            );
        }
    } else {
        if key_cert_sign {
            return bad(
                "the keyUsage of a certificate that is not a CA asserts keyCertSign \
                 (RFC 5280 4.2.1.3)"
                    .to_owned(),
            );
        }
        if path_len {
            return bad(
                "basicConstraints has a pathLenConstraint but the certificate is not a CA \
                 (RFC 5280 4.2.1.9)"
                    .to_owned(),
            );
        }
        if name_constraints {
            return bad(
                "an end-entity certificate carries nameConstraints, which only a CA may \
                 (RFC 5280 4.2.1.10)"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// proxyCertInfo (1.3.6.1.5.5.7.1.14).
const PROXY_CERT_INFO: &[u8] = &[0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x0E];

/// The extension value is one complete DER element that the parser decoded.
fn decode_fully(ext: &X509Extension<'_>) -> Result<(), ProfileViolation> {
    match Any::from_der(ext.value) {
        Ok(([], _)) => {}
        Ok((rest, _)) => {
            return Err(ProfileViolation(format!(
                "the {} extension has {} bytes after its value",
                name(ext),
                rest.len()
            )))
        }
        Err(e) => {
            return Err(ProfileViolation(format!(
                "the {} extension does not decode: {e}",
                name(ext)
            )))
        }
    }
    if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
        return Err(ProfileViolation(format!(
            "the {} extension does not decode: {error}",
            name(ext)
        )));
    }
    Ok(())
}

fn check_general_names(what: &str, names: &[GeneralName<'_>]) -> Result<(), ProfileViolation> {
    for n in names {
        match n {
            GeneralName::Invalid(tag, _) => {
                return Err(ProfileViolation(format!(
                    "a {what} entry (tag {}) does not decode",
                    tag.0
                )))
            }
            GeneralName::IPAddress(ip) if ip.len() != 4 && ip.len() != 16 => {
                return Err(ProfileViolation(format!(
                    "a {what} IP address is {} bytes (4 or 16 expected)",
                    ip.len()
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Critical extensions something on the path processes: the leaf rules here, the direct
/// route, or OpenSSL's verifier (policies and name constraints of CAs). Any other
/// critical extension refuses the certificate.
fn processed_when_critical(ext: &X509Extension<'_>) -> bool {
    matches!(
        ext.parsed_extension(),
        ParsedExtension::BasicConstraints(_)
            | ParsedExtension::KeyUsage(_)
            | ParsedExtension::ExtendedKeyUsage(_)
            | ParsedExtension::SubjectAlternativeName(_)
            | ParsedExtension::NameConstraints(_)
            | ParsedExtension::CertificatePolicies(_)
            | ParsedExtension::PolicyConstraints(_)
            | ParsedExtension::PolicyMappings(_)
            | ParsedExtension::InhibitAnyPolicy(_)
            | ParsedExtension::CRLDistributionPoints(_)
    )
}

/// A readable name for an extension: its RFC 5280 name when known, else its OID.
fn name(ext: &X509Extension<'_>) -> String {
    oids::OidRegistry::default()
        .with_x509()
        .get(&ext.oid)
        .map_or_else(|| ext.oid.to_id_string(), |e| e.sn().to_owned())
}

// === key policy ===

/// Checks the subject public key and, when `check_signature`, the signature algorithm.
/// The self-signature of a trust anchor is not something any decision relies on (a trust
/// anchor is a name and a key, RFC 5280 6.1.1 (d)), so `trust` passes `false` for
/// self-signed CAs.
pub(crate) fn check_keys(cert: &X509Certificate<'_>, check_signature: bool) -> Result<(), WeakKey> {
    check_public_key(cert)?;
    if check_signature {
        check_signature_algorithm(&cert.signature_algorithm)?;
    }
    Ok(())
}

fn weak(reason: String) -> Result<(), WeakKey> {
    Err(WeakKey {
        reason,
        always_refused: false,
    })
}

fn check_public_key(cert: &X509Certificate<'_>) -> Result<(), WeakKey> {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == oids::OID_PKCS1_RSAENCRYPTION || *alg == oids::OID_PKCS1_RSASSAPSS {
        let Ok((_, rsa)) = RSAPublicKey::from_der(&spki.subject_public_key.data) else {
            return weak("the RSA public key does not decode".to_owned());
        };
        let bits = bit_length(rsa.modulus);
        if bits < MIN_RSA_BITS {
            return weak(format!(
                "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
        let e = unsigned(rsa.exponent);
        if e.last().is_none_or(|low| low & 1 == 0) || (e.len() == 1 && e[0] < 3) {
            return weak("RSA public exponent is even or below 3".to_owned());
        }
        return Ok(());
    }
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let Some(params) = &spki.algorithm.parameters else {
            return weak("EC key without curve parameters".to_owned());
        };
        if params.tag() != Tag::Oid {
            return Err(WeakKey {
                reason: "EC key with explicit curve parameters; only named curves \
                         (P-256, P-384, P-521) are accepted"
                    .to_owned(),
                always_refused: true,
            });
        }
        let curve = params.as_oid().ok();
        let named = curve.as_ref().is_some_and(|c| {
            *c == oids::OID_EC_P256 || *c == oids::OID_NIST_EC_P384 || *c == oids::OID_NIST_EC_P521
        });
        if !named {
            let shown = curve.map_or_else(|| "?".to_owned(), |c| c.to_id_string());
            return weak(format!(
                "EC key on curve {shown}; only P-256, P-384 and P-521 are accepted"
            ));
        }
        return Ok(());
    }
    if *alg == oids::OID_SIG_ED25519 || *alg == oids::OID_SIG_ED448 {
        return Ok(());
    }
    if *alg == oids::OID_KEY_TYPE_DSA {
        return weak("DSA key; DSA is not accepted".to_owned());
    }
    weak(format!("unsupported public key algorithm {alg}"))
}

/// Number of significant bits of an unsigned big-endian integer.
fn bit_length(bytes: &[u8]) -> usize {
    let n = unsigned(bytes);
    match n.first() {
        None => 0,
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn check_signature_algorithm(alg: &AlgorithmIdentifier<'_>) -> Result<(), WeakKey> {
    let oid = &alg.algorithm;
    let bytes = oid.as_bytes();
    if *oid == oids::OID_PKCS1_MD2WITHRSAENC
        || *oid == oids::OID_PKCS1_MD4WITHRSAENC
        || *oid == oids::OID_PKCS1_MD5WITHRSAENC
        || bytes == MD5_WITH_RSA_OIW
    {
        return weak("signed with an MD2/MD4/MD5 digest".to_owned());
    }
    if *oid == oids::OID_PKCS1_SHA1WITHRSA
        || *oid == oids::OID_SHA1_WITH_RSA
        || bytes == ECDSA_WITH_SHA1
    {
        return weak("signed with SHA-1".to_owned());
    }
    if *oid == oids::OID_SIG_DSA_WITH_SHA1 || bytes == DSA_WITH_SHA1_OIW || is_dsa_with_sha2(bytes)
    {
        return weak("signed with DSA".to_owned());
    }
    if *oid == oids::OID_PKCS1_RSASSAPSS {
        // RSASSA-PSS-params: hashAlgorithm DEFAULT sha1 (RFC 4055).
        let hash = alg
            .parameters
            .as_ref()
            .map(x509_parser::signature_algorithm::RsaSsaPssParams::try_from);
        let hash_oid = match &hash {
            None => None,
            Some(Ok(p)) => Some(p.hash_algorithm_oid().as_bytes().to_vec()),
            Some(Err(_)) => return weak("RSASSA-PSS parameters do not decode".to_owned()),
        };
        let hash_oid = hash_oid.unwrap_or_else(|| SHA1.to_vec());
        if hash_oid == SHA1 || [MD2, MD4, MD5].contains(&hash_oid.as_slice()) {
            return weak("RSASSA-PSS signature with a SHA-1 or MD digest".to_owned());
        }
    }
    Ok(())
}

// Object identifiers the registry does not name, as DER content bytes.
/// ecdsa-with-SHA1 (1.2.840.10045.4.1)
const ECDSA_WITH_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01];
/// OIW dsaWithSHA1 (1.3.14.3.2.27)
const DSA_WITH_SHA1_OIW: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1B];
/// OIW md5WithRSA (1.3.14.3.2.3)
const MD5_WITH_RSA_OIW: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x03];
/// id-sha1 (1.3.14.3.2.26)
const SHA1: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1A];
/// md2, md4, md5 (1.2.840.113549.2.{2,4,5})
const MD2: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x02];
const MD4: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x04];
const MD5: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x05];

/// dsa-with-sha224/256/384/512 and dsa-with-sha3-* (2.16.840.1.101.3.4.3.1 to .8).
fn is_dsa_with_sha2(oid: &[u8]) -> bool {
    const PREFIX: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    oid.len() == PREFIX.len() + 1 && oid.starts_with(PREFIX) && (1..=8).contains(&oid[PREFIX.len()])
}

// === names under name constraints ===

/// Checks that the leaf's SAN DNS names (when `dns`) and email addresses (when `email`)
/// are well-formed, so a CA's name constraints of that kind can be applied to them at all.
pub(crate) fn check_constrained_names(
    leaf: &X509Certificate<'_>,
    dns: bool,
    email: bool,
) -> Result<(), String> {
    let Ok(Some(san)) = leaf.subject_alternative_name() else {
        return Ok(());
    };
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) if dns && !is_dns_name(d) => {
                return Err(format!(
                    "the subjectAltName DNS name {d:?} is not a valid host name, so the \
                     issuing CA's DNS name constraints cannot be applied to it"
                ));
            }
            GeneralName::RFC822Name(m) if email && !is_email(m) => {
                return Err(format!(
                    "the subjectAltName email address {m:?} is not a valid address, so the \
                     issuing CA's email name constraints cannot be applied to it"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A host name: dot-separated labels of 1 to 63 letters, digits and hyphens, not starting
/// or ending with a hyphen, 253 characters at most; a leading `*` label is allowed.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `local@domain`: a non-empty local part of printable ASCII without spaces, `@`, `"` or
/// `\`, and a domain that is a host name.
pub(crate) fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'@' | b'"' | b'\\' | b'(' | b')'))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !domain.starts_with("*.")
        && is_dns_name(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_follow_the_letter_digit_hyphen_rule() {
        for ok in [
            "a",
            "api.partner.example",
            "*.partner.example",
            "x-1.example",
        ] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "-a.example",
            "a-.example",
            "a b.example",
            "a_b.example",
            "*",
            "a.*.example",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn email_addresses_need_a_local_part_and_a_host_name() {
        assert!(is_email("ops@partner.example"));
        for bad in [
            "partner.example",
            "@partner.example",
            "ops@",
            "ops@@partner.example",
            "o ps@partner.example",
            "ops@partner..example",
            ".ops@partner.example",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn bit_length_ignores_sign_padding() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01, 0x00]), 9);
        assert_eq!(bit_length(&[]), 0);
    }
}
