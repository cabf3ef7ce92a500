//! The trusted CAs and chain verification against them.
//!
//! Owns: the CA set from `CLIENT_CERT_CA_PATH` and deciding whether a leaf chains to it
//! (signatures checked, no clock: the caller's `now` is applied to every certificate of
//! the chain here).
//!
//! Every configured CA is a trust anchor and App Service forwards only the leaf, so a chain
//! is always the leaf plus the CA that signed it. The common case is verified directly:
//! find the CAs whose subject is byte-for-byte the leaf's issuer (and whose key identifier
//! matches), and check the leaf's signature with the CA's pre-decoded key. Anything
//! unusual goes through OpenSSL's full verifier (`X509_verify_cert`, strict mode) instead:
//! issuer names that match only after canonicalisation, unhandled critical extensions,
//! signature algorithms other than RSA PKCS#1 / ECDSA with SHA-2 and Ed25519, and CAs with
//! name or policy constraints. The direct path exists because OpenSSL 3 spends most of a
//! full verification decoding the leaf (see BENCHMARKS.md).
//!
//! A leaf that no configured CA issued may still reach one through untrusted
//! intermediates (`CLIENT_CERT_INTERMEDIATES_PATH`, held here as [`Intermediates`], or the
//! chain the front end forwarded): [`TrustAnchors::verify_forwarded`] then builds the path
//! with `super::path`. Without intermediates the verification is exactly the above.
//! Must not: read files or the environment (`crate::inbound` loads the CA files), or log.

use super::digest::sha256;
use super::path::{self, CaFacts, IntermediateReport, Intermediates};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContext, X509};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;

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
    /// The CA's public key, decoded once.
    key: PKey<Public>,
    /// subjectKeyIdentifier, matched against a leaf's authorityKeyIdentifier.
    ski: Option<Vec<u8>>,
    /// True when the direct path may use this CA: no name, policy or other constraints
    /// that only OpenSSL's verifier enforces, and keyUsage (if any) allows keyCertSign.
    simple: bool,
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
    /// The leaf's serial number, unsigned big-endian bytes.
    pub leaf_serial: Vec<u8>,
    /// The configured CAs above the leaf, nearest first (never empty for a real chain).
    pub cas: Vec<X509>,
    pub not_before: i64,
    pub not_after: i64,
}

/// The trusted CAs from `CLIENT_CERT_CA_PATH`. Every one is a trust anchor (OpenSSL
/// `PARTIAL_CHAIN`), so an issuing CA can be trusted without its root.
pub struct TrustAnchors {
    store: X509Store,
    anchors: HashMap<[u8; 32], Anchor>,
    /// Subject name DER → the anchors with that subject (usually one; two during a CA
    /// key rollover).
    by_subject: HashMap<Vec<u8>, Vec<[u8; 32]>>,
    /// `CLIENT_CERT_INTERMEDIATES_PATH`: untrusted, only ever part of a path.
    intermediates: Intermediates,
    /// The anchors decoded for path building, on first use.
    path_facts: OnceLock<Vec<CaFacts>>,
}

impl TrustAnchors {
    /// Adds the untrusted intermediates that may complete a path to these anchors. Those
    /// that can never be on a path (not CAs, unreadable) are left out and reported.
    pub fn with_intermediates(mut self, certs: &[X509]) -> (Self, Vec<IntermediateReport>) {
        let (intermediates, reports) = Intermediates::new(certs);
        self.intermediates = intermediates;
        (self, reports)
    }

    /// The configured untrusted intermediates.
    pub fn intermediates(&self) -> &Intermediates {
        &self.intermediates
    }

    /// Every certificate whose CRLs are accepted: the anchors and the configured
    /// intermediates (a CRL is bound to its issuer's name and key, so an intermediate's CRL
    /// speaks only for what that key signed).
    pub fn crl_issuers(&self) -> impl Iterator<Item = &X509> {
        self.certificates().chain(self.intermediates.certificates())
    }

    pub(super) fn path_facts(&self) -> &[CaFacts] {
        self.path_facts
            .get_or_init(|| path::anchor_facts(self.certificates()))
    }

    /// [`Self::verify`], also through untrusted intermediates: the configured ones and
    /// `forwarded` (the request's chain, already decoded). With neither, exactly
    /// [`Self::verify`]. A leaf issued by a configured CA is verified as before; otherwise,
    /// or when that fails, a path is built (see `super::path`).
    pub(super) fn verify_forwarded(
        &self,
        der: &[u8],
        leaf: &X509Certificate<'_>,
        forwarded: &[CaFacts],
        now: i64,
    ) -> Result<VerifiedChain, String> {
        if forwarded.is_empty() && self.intermediates.is_empty() {
            return self.verify(der, leaf, now);
        }
        let direct = self
            .by_subject
            .contains_key(leaf.issuer().as_raw())
            .then(|| self.verify(der, leaf, now));
        match direct {
            Some(Ok(chain)) => Ok(chain),
            Some(Err(reason)) => path::build(leaf, der, self, &self.intermediates, forwarded, now)
                .map_err(|_| reason),
            None => path::build(leaf, der, self, &self.intermediates, forwarded, now),
        }
    }

    /// OpenSSL's verifier with `untrusted` intermediates (for paths through CAs with
    /// constraints only it enforces); the CAs above the leaf.
    pub(super) fn verify_with_untrusted(
        &self,
        leaf: &X509,
        untrusted: &[X509],
    ) -> Result<Vec<X509>, String> {
        let mut stack = Stack::new().map_err(|e| e.to_string())?;
        for c in untrusted {
            stack.push(c.clone()).map_err(|e| e.to_string())?;
        }
        self.openssl_chain_with(leaf, &stack)
    }

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
        let mut by_subject: HashMap<Vec<u8>, Vec<[u8; 32]>> = HashMap::new();
        for cert in certs {
            let der = cert.to_der()?;
            let key = sha256(&der);
            if anchors.contains_key(&key) {
                continue;
            }
            let (anchor, subject_der) = describe_anchor(&der, &cert)?;
            by_subject.entry(subject_der).or_default().push(key);
            anchors.insert(key, anchor);
            builder.add_cert(cert)?;
        }
        Ok(Self {
            store: builder.build(),
            anchors,
            by_subject,
            intermediates: Intermediates::default(),
            path_facts: OnceLock::new(),
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

    /// Verifies that the leaf (`der`, already parsed as `leaf`) chains to a trusted CA with
    /// a valid signature, and that every CA on the path is within its validity period at
    /// `now` and allows client authentication. The leaf's own validity and EKU are the
    /// caller's business.
    pub fn verify(
        &self,
        der: &[u8],
        leaf: &X509Certificate<'_>,
        now: i64,
    ) -> Result<VerifiedChain, String> {
        let leaf_serial = unsigned(leaf.raw_serial()).to_vec();
        let keys = match self.verify_direct(leaf) {
            Direct::Verified(key) => vec![key],
            Direct::BadSignature => {
                return Err("certificate signature failure (depth 0)".to_owned());
            }
            Direct::NotApplicable => self
                .verify_with_openssl(der)?
                .iter()
                .map(|ca| ca.to_der().map(|d| sha256(&d)))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?,
        };
        let (mut not_before, mut not_after) = (i64::MIN, i64::MAX);
        let mut cas = Vec::with_capacity(keys.len());
        for key in &keys {
            let Some(anchor) = self.anchors.get(key) else {
                return Err("chain left the trusted set".to_owned());
            };
            cas.push(anchor.cert.clone());
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
            leaf_serial,
            cas,
            not_before,
            not_after,
        })
    }

    /// The direct path: the leaf's signature checked with the key of a CA whose subject is
    /// exactly the leaf's issuer.
    fn verify_direct(&self, leaf: &X509Certificate<'_>) -> Direct {
        let Some(candidates) = self.by_subject.get(leaf.issuer().as_raw()) else {
            return Direct::NotApplicable;
        };
        let Some(digest) = signature_digest(leaf) else {
            return Direct::NotApplicable;
        };
        if has_unhandled_critical_extension(leaf) {
            return Direct::NotApplicable;
        }
        let aki = authority_key_id(leaf);
        let tbs = leaf.tbs_certificate.as_ref();
        let signature = &leaf.signature_value.data;
        let mut checked_any = false;
        for key in candidates {
            let anchor = &self.anchors[key];
            if !anchor.simple {
                return Direct::NotApplicable;
            }
            if let (Some(aki), Some(ski)) = (aki, &anchor.ski) {
                if aki != ski.as_slice() {
                    continue;
                }
            }
            checked_any = true;
            if verify_signature(&anchor.key, digest, tbs, signature) {
                return Direct::Verified(*key);
            }
        }
        if checked_any {
            Direct::BadSignature
        } else {
            // Only key-identifier mismatches: let OpenSSL explain.
            Direct::NotApplicable
        }
    }

    /// OpenSSL's full verifier; returns the CAs above the leaf.
    fn verify_with_openssl(&self, der: &[u8]) -> Result<Vec<X509>, String> {
        let leaf = X509::from_der(der).map_err(|e| e.to_string())?;
        let untrusted = Stack::new().map_err(|e| e.to_string())?;
        self.openssl_chain_with(&leaf, &untrusted)
    }

    fn openssl_chain_with(
        &self,
        leaf: &X509,
        untrusted: &openssl::stack::StackRef<X509>,
    ) -> Result<Vec<X509>, String> {
        let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
        let (ok, error, depth, chain) = ctx
            .init(&self.store, leaf, untrusted, |c| {
                let ok = c.verify_cert()?;
                let chain: Vec<X509> = c
                    .chain()
                    .map(|s| s.iter().skip(1).map(ToOwned::to_owned).collect())
                    .unwrap_or_default();
                Ok((ok, c.error(), c.error_depth(), chain))
            })
            .map_err(|e| e.to_string())?;
        if !ok {
            return Err(format!("{} (depth {depth})", error.error_string()));
        }
        Ok(chain)
    }
}

/// The outcome of the direct verification path.
enum Direct {
    Verified([u8; 32]),
    BadSignature,
    NotApplicable,
}

/// The digest to verify the certificate's signature with: `Some(None)` for Ed25519, which
/// hashes internally, and `None` when the direct path does not handle the algorithm.
pub(super) fn signature_digest(cert: &X509Certificate<'_>) -> Option<Option<MessageDigest>> {
    let outer = &cert.signature_algorithm;
    // The algorithm inside the signed part must be the one used (RFC 5280 4.1.1.2).
    if outer != &cert.tbs_certificate.signature {
        return None;
    }
    let oid = &outer.algorithm;
    let digest = if *oid == oids::OID_PKCS1_SHA256WITHRSA || *oid == oids::OID_SIG_ECDSA_WITH_SHA256
    {
        MessageDigest::sha256()
    } else if *oid == oids::OID_PKCS1_SHA384WITHRSA || *oid == oids::OID_SIG_ECDSA_WITH_SHA384 {
        MessageDigest::sha384()
    } else if *oid == oids::OID_PKCS1_SHA512WITHRSA || *oid == oids::OID_SIG_ECDSA_WITH_SHA512 {
        MessageDigest::sha512()
    } else if *oid == oids::OID_SIG_ED25519 {
        return Some(None);
    } else {
        return None;
    };
    Some(Some(digest))
}

pub(super) fn verify_signature(
    key: &PKey<Public>,
    digest: Option<MessageDigest>,
    tbs: &[u8],
    signature: &[u8],
) -> bool {
    let verifier = match digest {
        Some(md) => Verifier::new(md, key),
        None => Verifier::new_without_digest(key),
    };
    verifier
        .and_then(|mut v| v.verify_oneshot(signature, tbs))
        .unwrap_or(false)
}

/// A critical extension this code does not interpret; OpenSSL decides about those.
fn has_unhandled_critical_extension(cert: &X509Certificate<'_>) -> bool {
    cert.extensions().iter().any(|e| {
        e.critical
            && !matches!(
                e.parsed_extension(),
                ParsedExtension::BasicConstraints(_)
                    | ParsedExtension::KeyUsage(_)
                    | ParsedExtension::ExtendedKeyUsage(_)
                    | ParsedExtension::SubjectAlternativeName(_)
                    | ParsedExtension::SubjectKeyIdentifier(_)
                    | ParsedExtension::AuthorityKeyIdentifier(_)
            )
    })
}

fn authority_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })
}

/// A DER INTEGER's content without its sign-padding zero bytes.
pub(super) fn unsigned(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    &raw[start..]
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.subjects()).finish()
    }
}

fn describe_anchor(der: &[u8], x509: &X509) -> Result<(Anchor, Vec<u8>), TrustError> {
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
    let mut ski = None;
    let mut simple = true;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::KeyUsage(ku) => simple &= ku.key_cert_sign(),
            ParsedExtension::BasicConstraints(_)
            | ParsedExtension::ExtendedKeyUsage(_)
            | ParsedExtension::AuthorityKeyIdentifier(_)
            | ParsedExtension::SubjectAlternativeName(_)
            | ParsedExtension::CRLDistributionPoints(_)
            | ParsedExtension::AuthorityInfoAccess(_)
            | ParsedExtension::CertificatePolicies(_) => {}
            // Name constraints, policy constraints/mappings, inhibitAnyPolicy, unknown
            // critical extensions...: OpenSSL's verifier enforces them.
            _ => simple &= !ext.critical && !is_constraint(ext.parsed_extension()),
        }
    }
    let subject_der = cert.subject().as_raw().to_vec();
    let anchor = Anchor {
        cert: x509.clone(),
        key: x509.public_key()?,
        ski,
        simple,
        subject,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        permits_client_auth,
    };
    Ok((anchor, subject_der))
}

fn is_constraint(ext: &ParsedExtension<'_>) -> bool {
    matches!(
        ext,
        ParsedExtension::NameConstraints(_)
            | ParsedExtension::PolicyConstraints(_)
            | ParsedExtension::PolicyMappings(_)
            | ParsedExtension::InhibitAnyPolicy(_)
    )
}
