//! Path building through untrusted intermediates: leaf → intermediates → trust anchor.
//!
//! Owns: finding and checking a certification path from a leaf to a CA in
//! `CLIENT_CERT_CA_PATH` through intermediates that are *never* trusted on their own: the
//! configured pool (`CLIENT_CERT_INTERMEDIATES_PATH`, parsed once, [`Intermediates`]) and
//! the chain the front end forwarded with the request (parsed per request). Every
//! intermediate on a path must
//! - be a CA (basicConstraints CA:TRUE) whose keyUsage, when present, allows keyCertSign;
//! - be within its validity period at `now`;
//! - not be EKU-restricted away from clientAuth (an EKU extension without clientAuth or
//!   anyExtendedKeyUsage);
//! - respect the pathLenConstraint of every CA above it, the anchor included (counting
//!   the non-self-issued intermediates below each CA, RFC 5280 6.1.4 (l)-(m));
//! - have signed the certificate below it (signature verified with its key; names
//!   compared byte for byte, authorityKeyIdentifier matched against subjectKeyIdentifier).
//!
//! The anchor is checked the same way (validity, EKU, path length). When a CA on the
//! path carries name constraints, policy constraints or critical extensions this code does
//! not interpret, the path found is handed to OpenSSL's verifier as well (the CAs in
//! `CLIENT_CERT_CA_PATH` as anchors, the path's intermediates as untrusted), which enforces
//! them: both must agree.
//!
//! Bounded: at most [`MAX_INTERMEDIATES`] intermediates on a path, at most
//! [`MAX_SIGNATURE_CHECKS`] signature verifications per leaf, a certificate never twice on
//! a path (by name and key, so cross-signed loops end), and the forwarded chain itself is
//! limited by `forwarded::MAX_CHAIN_CERTS`.
//! Must not: read files, the clock or the environment, or log; trust any intermediate.

use super::digest::sha256;
use super::profile;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::sign::Verifier;
use openssl::x509::X509;
use std::collections::HashMap;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry as oids;

/// At most this many intermediates between a leaf and its anchor.
pub const MAX_INTERMEDIATES: usize = 5;
/// At most this many signature verifications while building one leaf's path.
pub const MAX_SIGNATURE_CHECKS: usize = 16;

/// What path building needs to know about one CA certificate, decoded once.
pub(super) struct CaFacts {
    der: Vec<u8>,
    /// OpenSSL's decoding, made once: its public key is the one signatures are checked
    /// with (decoding the key a second time, alone, would cost as much again: OpenSSL 3's
    /// decoders are most of a validation's cost, see BENCHMARKS.md).
    cert: X509,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    pub(super) subject_text: String,
    key: PKey<Public>,
    /// SHA-256 of the SubjectPublicKeyInfo: with the subject, what makes two certificates
    /// "the same CA" for loop detection.
    spki: [u8; 32],
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    /// How this certificate's own signature is checked (see `trust::signature_digest`);
    /// `None`: only OpenSSL can (`X509::verify`).
    digest: Option<Option<MessageDigest>>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
    /// keyUsage absent or including keyCertSign.
    signs_certificates: bool,
    /// keyUsage absent or including cRLSign.
    signs_crls: bool,
    path_len: Option<u32>,
    /// No EKU extension, or one with clientAuth or anyExtendedKeyUsage.
    permits_client_auth: bool,
    self_issued: bool,
    /// Name/policy constraints or an uninterpreted critical extension: OpenSSL confirms.
    constrained: bool,
    /// Why this untrusted CA breaks the profile or the key policy (`super::profile`), the
    /// same rules the configured CAs meet; such a CA vouches for nothing.
    defect: Option<String>,
}

impl CaFacts {
    /// Reads an untrusted certificate, checking it against the profile and (unless
    /// `allow_weak_keys`) the key policy; `None` when it does not parse (such a
    /// certificate can be on no path).
    pub(super) fn from_der(der: &[u8], allow_weak_keys: bool) -> Option<Self> {
        Self::from_parts(der, X509::from_der(der).ok()?, allow_weak_keys)
    }

    fn from_parts(der: &[u8], cert: X509, allow_weak_keys: bool) -> Option<Self> {
        let (rest, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let key = cert.public_key().ok()?;
        let mut facts = Self {
            der: der.to_vec(),
            cert,
            subject: parsed.subject().as_raw().to_vec(),
            issuer: parsed.issuer().as_raw().to_vec(),
            subject_text: parsed.subject().to_string(),
            key,
            spki: sha256(parsed.public_key().raw),
            ski: None,
            aki: None,
            digest: signature_digest(&parsed),
            tbs: parsed.tbs_certificate.as_ref().to_vec(),
            signature: parsed.signature_value.data.to_vec(),
            not_before: parsed.validity().not_before.timestamp(),
            not_after: parsed.validity().not_after.timestamp(),
            is_ca: false,
            signs_certificates: true,
            signs_crls: true,
            path_len: None,
            permits_client_auth: true,
            self_issued: parsed.subject().as_raw() == parsed.issuer().as_raw(),
            constrained: false,
            defect: None,
        };
        facts.defect = profile::check(&parsed)
            .err()
            .map(|v| format!("breaks the X.509 profile: {}", v.0))
            .or_else(|| {
                profile::check_keys(&parsed, !facts.self_issued)
                    .err()
                    .filter(|w| w.always_refused || !allow_weak_keys)
                    .map(|w| format!("weak key or signature algorithm: {}", w.reason))
            });
        for ext in parsed.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    facts.is_ca = bc.ca;
                    facts.path_len = bc.path_len_constraint;
                }
                ParsedExtension::KeyUsage(ku) => {
                    facts.signs_certificates = ku.key_cert_sign();
                    facts.signs_crls = ku.crl_sign();
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    facts.permits_client_auth = eku.client_auth || eku.any;
                }
                ParsedExtension::SubjectKeyIdentifier(k) => facts.ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    facts.aki = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                ParsedExtension::NameConstraints(_)
                | ParsedExtension::PolicyConstraints(_)
                | ParsedExtension::PolicyMappings(_)
                | ParsedExtension::InhibitAnyPolicy(_) => facts.constrained = true,
                ParsedExtension::SubjectAlternativeName(_)
                | ParsedExtension::CRLDistributionPoints(_)
                | ParsedExtension::AuthorityInfoAccess(_)
                | ParsedExtension::CertificatePolicies(_) => {}
                _ => facts.constrained |= ext.critical,
            }
        }
        Some(facts)
    }

    /// A CA whose OpenSSL form is already at hand (`trusted`: a configured CA, already
    /// held to the profile and key policy when its set was built).
    fn with_x509(cert: &X509, trusted: bool, allow_weak_keys: bool) -> Option<Self> {
        let mut facts = Self::from_parts(&cert.to_der().ok()?, cert.clone(), allow_weak_keys)?;
        if trusted {
            facts.defect = None;
        }
        Some(facts)
    }

    pub(super) fn x509(&self) -> Option<&X509> {
        Some(&self.cert)
    }

    /// Whether `self` signed the certificate with these parts.
    fn signed(&self, child: &Signed<'_>) -> bool {
        match (child.digest, child.x509) {
            (Some(digest), _) => verify_signature(&self.key, digest, child.tbs, child.signature),
            (None, Some(x509)) => x509.verify(&self.key).unwrap_or(false),
            (None, None) => false,
        }
    }

    /// Why this CA cannot vouch at `now` for a path with `below` non-self-issued
    /// intermediates under it; `None` when it can.
    fn unusable(&self, now: i64, below: usize, role: &str) -> Option<String> {
        let name = &self.subject_text;
        if let Some(defect) = &self.defect {
            return Some(format!(
                "{role} {name:?} cannot vouch for certificates: {defect}"
            ));
        }
        if !self.is_ca {
            return Some(format!(
                "{role} {name:?} is not a CA (basicConstraints CA:TRUE is required)"
            ));
        }
        if !self.signs_certificates {
            return Some(format!(
                "{role} {name:?} may not sign certificates (keyUsage without keyCertSign)"
            ));
        }
        if now < self.not_before {
            return Some(format!("{role} {name:?} is not valid yet"));
        }
        if now > self.not_after {
            return Some(format!("{role} {name:?} has expired"));
        }
        if !self.permits_client_auth {
            return Some(format!(
                "{role} {name:?} is restricted to other extended key usages"
            ));
        }
        if let Some(limit) = self.path_len {
            if below > limit as usize {
                return Some(format!(
                    "{role} {name:?} allows {limit} intermediate(s) below it, the path has {below}"
                ));
            }
        }
        None
    }
}

/// The signed parts of a certificate whose issuer is being looked for.
struct Signed<'a> {
    issuer: &'a [u8],
    aki: Option<&'a [u8]>,
    digest: Option<Option<MessageDigest>>,
    tbs: &'a [u8],
    signature: &'a [u8],
    /// For algorithms only OpenSSL verifies.
    x509: Option<&'a X509>,
}

impl<'a> Signed<'a> {
    fn of(facts: &'a CaFacts) -> Self {
        Self {
            issuer: &facts.issuer,
            aki: facts.aki.as_deref(),
            digest: facts.digest,
            tbs: &facts.tbs,
            signature: &facts.signature,
            x509: facts.x509(),
        }
    }
}

/// The configured intermediates (`CLIENT_CERT_INTERMEDIATES_PATH`) and the anchors, indexed
/// by subject, decoded once at start-up.
#[derive(Default)]
pub struct Intermediates {
    pool: Vec<CaFacts>,
}

/// An index of CAs by subject name DER.
struct Index<'a> {
    by_subject: HashMap<&'a [u8], Vec<&'a CaFacts>>,
}

impl<'a> Index<'a> {
    fn new(all: impl Iterator<Item = &'a CaFacts>) -> Self {
        let mut by_subject: HashMap<&[u8], Vec<&CaFacts>> = HashMap::new();
        for facts in all {
            by_subject
                .entry(facts.subject.as_slice())
                .or_default()
                .push(facts);
        }
        Self { by_subject }
    }
}

/// A configured intermediate that cannot complete any path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntermediateReport {
    pub subject: String,
    pub reason: String,
}

impl Intermediates {
    /// Decodes the configured intermediates. Certificates that are not CAs, or that do not
    /// parse, are left out and reported.
    pub fn new(certs: &[X509], allow_weak_keys: bool) -> (Self, Vec<IntermediateReport>) {
        let mut pool = Vec::new();
        let mut reports = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for cert in certs {
            let Ok(der) = cert.to_der() else { continue };
            if !seen.insert(sha256(&der)) {
                continue;
            }
            match CaFacts::with_x509(cert, false, allow_weak_keys) {
                Some(facts) if facts.is_ca && facts.defect.is_none() => pool.push(facts),
                Some(facts) if facts.is_ca => reports.push(IntermediateReport {
                    reason: facts.defect.unwrap_or_default(),
                    subject: facts.subject_text,
                }),
                Some(facts) => reports.push(IntermediateReport {
                    subject: facts.subject_text,
                    reason: "not a CA (basicConstraints CA:TRUE is required)".to_owned(),
                }),
                None => reports.push(IntermediateReport {
                    subject: format!("{:?}", cert.subject_name()),
                    reason: "cannot be read".to_owned(),
                }),
            }
        }
        (Self { pool }, reports)
    }

    pub fn len(&self) -> usize {
        self.pool.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pool.is_empty()
    }

    /// Subjects of the configured intermediates, for logs and `handler inspect`.
    pub fn subjects(&self) -> Vec<String> {
        self.pool.iter().map(|f| f.subject_text.clone()).collect()
    }

    /// Whether the configured intermediate whose DER has SHA-256 `key` may sign CRLs.
    pub(super) fn signs_crls(&self, key: &[u8; 32]) -> bool {
        self.pool
            .iter()
            .any(|f| f.signs_crls && sha256(&f.der) == *key)
    }

    /// The configured intermediates, for CRL issuer lookups.
    pub(super) fn certificates(&self) -> impl Iterator<Item = &X509> {
        self.pool.iter().filter_map(CaFacts::x509)
    }
}

/// Decodes a forwarded chain (already bounded in length). Certificates that do not parse
/// are reported by index.
pub(super) fn decode_forwarded(
    chain: &[Vec<u8>],
    allow_weak_keys: bool,
) -> Result<Vec<CaFacts>, usize> {
    chain
        .iter()
        .enumerate()
        .map(|(i, der)| CaFacts::from_der(der, allow_weak_keys).ok_or(i))
        .collect()
}

/// Search state: the signature budget and the most useful reason a candidate failed.
struct Search {
    budget: usize,
    reason: Option<String>,
}

impl Search {
    fn note(&mut self, reason: String) {
        self.reason.get_or_insert(reason);
    }
}

/// A path found and checked: the CAs above the leaf, nearest first (the anchor last), and
/// the window in which all of them are valid.
pub(super) struct BuiltPath {
    pub(super) cas: Vec<X509>,
    pub(super) not_before: i64,
    pub(super) not_after: i64,
    /// A CA on it has constraints only OpenSSL's verifier enforces: the caller must have
    /// OpenSSL confirm this very path.
    pub(super) constrained: bool,
}

/// Builds and checks a path from `leaf` to one of `anchors` (the trust anchors, decoded)
/// through `configured` and `forwarded` intermediates at `now`. `Err` is the reason for
/// the log.
pub(super) fn build(
    leaf: &X509Certificate<'_>,
    leaf_der: &[u8],
    anchors: &[CaFacts],
    configured: &Intermediates,
    forwarded: &[CaFacts],
    now: i64,
) -> Result<BuiltPath, String> {
    let anchor_index = Index::new(anchors.iter());
    let pool = Index::new(configured.pool.iter().chain(forwarded.iter()));
    let leaf_x509 = signature_digest(leaf)
        .is_none()
        .then(|| X509::from_der(leaf_der).ok())
        .flatten();
    let aki = leaf_aki(leaf);
    let start = Signed {
        issuer: leaf.issuer().as_raw(),
        aki: aki.as_deref(),
        digest: signature_digest(leaf),
        tbs: leaf.tbs_certificate.as_ref(),
        signature: &leaf.signature_value.data,
        x509: leaf_x509.as_ref(),
    };
    let mut search = Search {
        budget: MAX_SIGNATURE_CHECKS,
        reason: None,
    };
    let mut path: Vec<&CaFacts> = Vec::new();
    let found = extend(&start, &anchor_index, &pool, now, &mut path, &mut search);
    let Some(anchor) = found else {
        return Err(search.reason.unwrap_or_else(|| {
            format!(
                "no path to a trusted CA: the issuer {:?} is neither a CA in CLIENT_CERT_CA_PATH \
                 nor an intermediate that chains to one",
                leaf.issuer().to_string()
            )
        }));
    };
    let cas: Vec<X509> = path
        .iter()
        .copied()
        .chain([anchor])
        .map(|f| f.x509().cloned())
        .collect::<Option<_>>()
        .ok_or_else(|| "a CA on the path cannot be decoded".to_owned())?;
    let not_before = path
        .iter()
        .map(|f| f.not_before)
        .chain([anchor.not_before])
        .max()
        .unwrap_or(i64::MIN);
    let not_after = path
        .iter()
        .map(|f| f.not_after)
        .chain([anchor.not_after])
        .min()
        .unwrap_or(i64::MAX);
    Ok(BuiltPath {
        cas,
        not_before,
        not_after,
        constrained: path.iter().any(|f| f.constrained) || anchor.constrained,
    })
}

fn aki_fits(child_aki: Option<&[u8]>, ski: Option<&Vec<u8>>) -> bool {
    match (child_aki, ski) {
        (Some(a), Some(s)) => a == s.as_slice(),
        _ => true,
    }
}

/// Depth-first: an anchor that signed `child`, else an intermediate that did and whose
/// own issuer leads to an anchor. `path` holds the intermediates chosen so far (leaf
/// side first).
fn extend<'a>(
    child: &Signed<'_>,
    anchors: &Index<'a>,
    pool: &Index<'a>,
    now: i64,
    path: &mut Vec<&'a CaFacts>,
    search: &mut Search,
) -> Option<&'a CaFacts> {
    let below = path.iter().filter(|f| !f.self_issued).count();
    for anchor in anchors.by_subject.get(child.issuer).into_iter().flatten() {
        if !aki_fits(child.aki, anchor.ski.as_ref()) {
            continue;
        }
        if search.budget == 0 {
            search.note(budget_reason());
            return None;
        }
        search.budget -= 1;
        if !anchor.signed(child) {
            search.note(format!(
                "the signature by the trusted CA {:?} does not verify",
                anchor.subject_text
            ));
            continue;
        }
        match anchor.unusable(now, below, "trusted CA") {
            None => return Some(anchor),
            Some(reason) => search.note(reason),
        }
    }
    if path.len() >= MAX_INTERMEDIATES {
        search.note(format!(
            "no trusted CA within {MAX_INTERMEDIATES} intermediates"
        ));
        return None;
    }
    for candidate in pool.by_subject.get(child.issuer).into_iter().flatten() {
        if !aki_fits(child.aki, candidate.ski.as_ref()) {
            continue;
        }
        // Never the same CA twice on one path: cross-signed loops end here.
        if path
            .iter()
            .any(|f| f.subject == candidate.subject && f.spki == candidate.spki)
        {
            continue;
        }
        if let Some(reason) = candidate.unusable(now, below, "intermediate") {
            search.note(reason);
            continue;
        }
        if search.budget == 0 {
            search.note(budget_reason());
            return None;
        }
        search.budget -= 1;
        if !candidate.signed(child) {
            search.note(format!(
                "the signature by the intermediate {:?} does not verify",
                candidate.subject_text
            ));
            continue;
        }
        path.push(candidate);
        let next = Signed::of(candidate);
        if let Some(anchor) = extend(&next, anchors, pool, now, path, search) {
            return Some(anchor);
        }
        path.pop();
        if search.budget == 0 {
            return None;
        }
    }
    None
}

fn budget_reason() -> String {
    format!("path building gave up after {MAX_SIGNATURE_CHECKS} signature checks")
}

fn leaf_aki(leaf: &X509Certificate<'_>) -> Option<Vec<u8>> {
    leaf.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// The anchors as path-building facts, decoded once per set.
pub(super) fn anchor_facts<'a>(certs: impl Iterator<Item = &'a X509>) -> Vec<CaFacts> {
    certs
        .filter_map(|c| CaFacts::with_x509(c, true, true))
        .collect()
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
