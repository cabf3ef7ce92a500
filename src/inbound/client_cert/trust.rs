//! The trusted CAs and chain verification against them.
//!
//! Owns: the CA set from `CLIENT_CERT_CA_PATH` and deciding whether a leaf chains to it
//! (signatures checked, no clock: the caller's `now` is applied to every certificate of
//! the chain here).
//!
//! Every configured CA is a trust anchor and App Service forwards only the leaf, so a chain
//! is always the leaf plus the CA that signed it. The common case is verified directly:
//! find the CAs whose subject is byte-for-byte the leaf's issuer (and whose key identifier,
//! issuer and serial match the leaf's authorityKeyIdentifier), and check the leaf's
//! signature with the CA's pre-decoded key. Anything unusual goes through OpenSSL's
//! verifier (`X509_verify_cert`) instead: issuer names that match only after
//! canonicalisation, critical policy extensions, signature algorithms other than RSA
//! PKCS#1 / ECDSA with SHA-2 and Ed25519, and CAs with name or policy constraints. The
//! direct path exists because OpenSSL 3 spends most of a full verification decoding the
//! leaf (see BENCHMARKS.md).
//!
//! **One verdict per certificate.** Both routes see certificates that already meet the
//! same profile and key policy (`super::profile`: the leaf before any route is chosen, each
//! CA when the set is built), and OpenSSL runs without `X509_STRICT`, whose RFC 5280 checks
//! are exactly those profile rules (done here in one place for both routes, with the
//! choices documented in SECURITY.md). What is left to OpenSSL is only what it alone
//! implements: canonical name matching and CA name/policy constraints. A CA that breaks the
//! profile stays out of OpenSSL's store and vouches for nothing; a leaf it signed gets its
//! defect as the reason on either route.
//!
//! A leaf that no configured CA issued may still reach one through untrusted
//! intermediates (`CLIENT_CERT_INTERMEDIATES_PATH`, held here as [`Intermediates`], or the
//! chain the front end forwarded): [`TrustAnchors::verify_forwarded`] then builds the path
//! with `super::path`. Without intermediates the verification is exactly the above.
//! Must not: read files or the environment (`crate::inbound` loads the CA files), or log.

use super::digest::{sha256, unsigned};
use super::path::{
    self, signature_digest, verify_signature, CaFacts, IntermediateReport, Intermediates,
};
use super::profile;
use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContext, X509};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{AuthorityKeyIdentifier, GeneralName, ParsedExtension};

/// Why the trusted CA set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("no CA certificates")]
    Empty,
    #[error("certificate {subject:?} is not a CA (basicConstraints CA:TRUE is required)")]
    NotACa { subject: String },
    #[error("certificate could not be read: {0}")]
    Unreadable(String),
    /// A CA whose key or signature algorithm is below the key policy.
    #[error(
        "CA {subject:?} (SHA-256 {sha256}) is refused: {reason}; replace it, or set \
         CLIENT_CERT_ALLOW_WEAK_KEYS=true to accept it (insecure)"
    )]
    WeakKey {
        subject: String,
        sha256: String,
        reason: String,
    },
    #[error("OpenSSL refused the CA set: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// What to do with a CA whose key is below the key policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeakCa {
    /// Fail building the set ([`TrustError::WeakKey`]): start-up.
    #[default]
    Refuse,
    /// Leave it out and report it ([`WeakCaReport`]): a CA set re-read while running, where
    /// a bad addition must not take the working set down.
    Skip,
}

/// How to build a CA set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnchorOptions {
    /// `CLIENT_CERT_ALLOW_WEAK_KEYS`: keep CAs below the key policy (explicit curve
    /// parameters are refused even so).
    pub allow_weak_keys: bool,
    pub weak_ca: WeakCa,
}

/// A CA below the key policy that did not fail the build: left out ([`WeakCa::Skip`]) or
/// kept because weak keys are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakCaReport {
    pub subject: String,
    /// Uppercase hex SHA-256 of the CA certificate.
    pub sha256: String,
    pub reason: String,
    /// True when the CA is in the set (`allow_weak_keys`), false when it was left out.
    pub kept: bool,
}

/// What we precompute about each trusted CA, so verification needs no re-parsing.
#[derive(Debug, Clone)]
struct Anchor {
    cert: X509,
    /// The CA's public key, decoded once.
    key: PKey<Public>,
    /// subjectKeyIdentifier, matched against a leaf's authorityKeyIdentifier.
    ski: Option<Vec<u8>>,
    /// The CA's own serial number and issuer name (DER), matched against the optional
    /// authorityCertSerialNumber and authorityCertIssuer of a leaf's AKI, as OpenSSL does.
    raw_serial: Vec<u8>,
    issuer_der: Vec<u8>,
    /// True when the direct path may use this CA: no name, policy or other constraints
    /// that only OpenSSL's verifier enforces.
    simple: bool,
    /// Why this CA breaks the profile; such a CA vouches for nothing.
    defect: Option<String>,
    /// Name constraints on DNS names / email addresses: the leaf's SAN names of that kind
    /// must be well-formed for the constraints to apply.
    dns_constrained: bool,
    email_constrained: bool,
    /// keyUsage absent or including cRLSign (RFC 5280 6.3.3 (f)).
    signs_crls: bool,
    subject: String,
    not_before: i64,
    not_after: i64,
    /// False when the CA carries an EKU extension without clientAuth or anyExtendedKeyUsage.
    permits_client_auth: bool,
}

/// Which verifier decides a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The leaf's signature checked with the issuing CA's pre-decoded key.
    Direct,
    /// OpenSSL's `X509_verify_cert`.
    OpenSsl,
}

/// The certificates of a successful chain, leaf first, and the window in which all of
/// them are valid.
#[derive(Debug)]
pub struct VerifiedChain {
    /// The leaf's serial number, unsigned big-endian bytes.
    pub leaf_serial: Vec<u8>,
    /// The CAs above the leaf, nearest first: untrusted intermediates, then the configured
    /// CA that anchors them (never empty for a real chain).
    pub cas: Vec<X509>,
    /// SHA-256 of each of `cas`' DER, in the same order (which CA anchors the chain, for
    /// partners bound to an issuer).
    pub anchors: Vec<[u8; 32]>,
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
    /// that can never be on a path (not CAs, unreadable, below the profile or key policy)
    /// are left out and reported.
    pub fn with_intermediates(
        mut self,
        certs: &[X509],
        allow_weak_keys: bool,
    ) -> (Self, Vec<IntermediateReport>) {
        let (intermediates, reports) = Intermediates::new(certs, allow_weak_keys);
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

    fn path_facts(&self) -> &[CaFacts] {
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
        let built = match direct {
            Some(Ok(chain)) => return Ok(chain),
            Some(Err(reason)) => self
                .build_path(leaf, der, forwarded, now)
                .map_err(|_| reason),
            None => self.build_path(leaf, der, forwarded, now),
        }?;
        Ok(built)
    }

    fn build_path(
        &self,
        leaf: &X509Certificate<'_>,
        der: &[u8],
        forwarded: &[CaFacts],
        now: i64,
    ) -> Result<VerifiedChain, String> {
        let built = path::build(
            leaf,
            der,
            self.path_facts(),
            &self.intermediates,
            forwarded,
            now,
        )?;
        let mut cas = built.cas;
        if built.constrained {
            // Name and policy constraints: OpenSSL enforces them on the very same path.
            let x509 = X509::from_der(der).map_err(|e| e.to_string())?;
            let anchor = cas.pop();
            self.verify_with_untrusted(&x509, &cas)?;
            cas.extend(anchor);
        }
        let anchors = cas
            .iter()
            .map(|c| c.to_der().map(|d| sha256(&d)))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok(VerifiedChain {
            leaf_serial: unsigned(leaf.raw_serial()).to_vec(),
            cas,
            anchors,
            not_before: built.not_before,
            not_after: built.not_after,
        })
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

    /// Builds the trust store with the default options: a CA below the key policy fails
    /// the build. Certificates that are not CAs are refused rather than silently trusted
    /// as issuers.
    pub fn new(certs: Vec<X509>) -> Result<Self, TrustError> {
        Self::build(certs, AnchorOptions::default()).map(|(anchors, _)| anchors)
    }

    /// Builds the trust store. CAs below the key policy fail the build, or with
    /// [`WeakCa::Skip`] are left out; either way those that did not fail it are reported.
    /// A CA that breaks the profile is kept but vouches for nothing (see
    /// [`Self::defects`]).
    pub fn build(
        certs: Vec<X509>,
        options: AnchorOptions,
    ) -> Result<(Self, Vec<WeakCaReport>), TrustError> {
        if certs.is_empty() {
            return Err(TrustError::Empty);
        }
        let mut builder = X509StoreBuilder::new()?;
        // Time is checked by us against the caller's `now` (see `verify`), so the result
        // is a function of its inputs rather than of the wall clock. No X509_STRICT: its
        // RFC 5280 checks are `profile`'s, applied to both routes (see the module doc).
        builder.set_flags(X509VerifyFlags::PARTIAL_CHAIN | X509VerifyFlags::NO_CHECK_TIME)?;
        let mut anchors = HashMap::new();
        let mut by_subject: HashMap<Vec<u8>, Vec<[u8; 32]>> = HashMap::new();
        let mut reports = Vec::new();
        for cert in certs {
            let der = cert.to_der()?;
            let key = sha256(&der);
            if anchors.contains_key(&key) {
                continue;
            }
            let (anchor, subject_der, weak) = describe_anchor(&der, &cert)?;
            if let Some(weak) = weak {
                let sha256 = super::digest::hex_upper(&key);
                let kept = options.allow_weak_keys && !weak.always_refused;
                if !kept && options.weak_ca == WeakCa::Refuse {
                    return Err(TrustError::WeakKey {
                        subject: anchor.subject,
                        sha256,
                        reason: weak.reason,
                    });
                }
                reports.push(WeakCaReport {
                    subject: anchor.subject.clone(),
                    sha256,
                    reason: weak.reason,
                    kept,
                });
                if !kept {
                    continue;
                }
            }
            by_subject.entry(subject_der).or_default().push(key);
            if anchor.defect.is_none() {
                builder.add_cert(cert)?;
            }
            anchors.insert(key, anchor);
        }
        if anchors.is_empty() {
            return Err(TrustError::Empty);
        }
        let anchors = Self {
            store: builder.build(),
            anchors,
            by_subject,
            intermediates: Intermediates::default(),
            path_facts: OnceLock::new(),
        };
        Ok((anchors, reports))
    }

    /// The CAs that break the profile and therefore vouch for nothing: (subject, why).
    pub fn defects(&self) -> Vec<(String, String)> {
        let mut d: Vec<(String, String)> = self
            .anchors
            .values()
            .filter_map(|a| a.defect.clone().map(|d| (a.subject.clone(), d)))
            .collect();
        d.sort();
        d
    }

    /// Whether the CA (or configured intermediate) whose DER has SHA-256 `key` may sign
    /// CRLs: its keyUsage, when present, includes cRLSign.
    pub fn signs_crls(&self, key: &[u8; 32]) -> bool {
        self.anchors
            .get(key)
            .map_or_else(|| self.intermediates.signs_crls(key), |a| a.signs_crls)
    }

    /// Number of distinct trusted CAs.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are no trusted CAs (never true for a built set).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The trusted CA certificates that vouch for something (for verifying the CRLs they
    /// sign); CAs that break the profile are left out.
    pub fn certificates(&self) -> impl Iterator<Item = &X509> {
        self.anchors
            .values()
            .filter(|a| a.defect.is_none())
            .map(|a| &a.cert)
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
            Direct::Defective(reason) => return Err(reason),
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
            if anchor.dns_constrained || anchor.email_constrained {
                profile::check_constrained_names(
                    leaf,
                    anchor.dns_constrained,
                    anchor.email_constrained,
                )?;
            }
            not_before = not_before.max(anchor.not_before);
            not_after = not_after.min(anchor.not_after);
        }
        Ok(VerifiedChain {
            leaf_serial,
            cas,
            anchors: keys,
            not_before,
            not_after,
        })
    }

    /// Which route [`Self::verify`] takes for the leaf `der` (for tests and diagnostics).
    pub fn route(&self, der: &[u8]) -> Route {
        let Ok((_, leaf)) = x509_parser::parse_x509_certificate(der) else {
            return Route::OpenSsl;
        };
        match self.verify_direct(&leaf) {
            Direct::NotApplicable => Route::OpenSsl,
            _ => Route::Direct,
        }
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
        let anchors = || candidates.iter().map(|key| (key, &self.anchors[key]));
        if anchors().any(|(_, a)| !a.simple) {
            return Direct::NotApplicable;
        }
        let aki = authority_key_id(leaf);
        let tbs = leaf.tbs_certificate.as_ref();
        let signature = &leaf.signature_value.data;
        let mut checked_any = false;
        for (key, anchor) in anchors() {
            if !aki.is_none_or(|aki| aki_matches(aki, anchor)) {
                continue;
            }
            checked_any = true;
            if verify_signature(&anchor.key, digest, tbs, signature) {
                return match &anchor.defect {
                    None => Direct::Verified(*key),
                    Some(defect) => Direct::Defective(defective_ca(anchor, defect)),
                };
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
        self.openssl_chain(&leaf)
            .map_err(|e| self.defective_issuer(&leaf).unwrap_or(e))
    }

    /// The defect of a CA outside OpenSSL's store that issued `leaf` (same name after
    /// canonicalisation, and its key verifies the leaf's signature), so both routes give
    /// the same reason.
    fn defective_issuer(&self, leaf: &X509) -> Option<String> {
        self.anchors.values().find_map(|a| {
            let defect = a.defect.as_ref()?;
            let named = leaf
                .issuer_name()
                .try_cmp(a.cert.subject_name())
                .is_ok_and(|o| o.is_eq());
            (named && leaf.verify(&a.key).unwrap_or(false)).then(|| defective_ca(a, defect))
        })
    }

    fn openssl_chain(&self, leaf: &X509) -> Result<Vec<X509>, String> {
        let untrusted = Stack::new().map_err(|e| e.to_string())?;
        self.openssl_chain_with(leaf, &untrusted)
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
    /// Signed by a configured CA that breaks the profile.
    Defective(String),
    BadSignature,
    NotApplicable,
}

fn defective_ca(anchor: &Anchor, defect: &str) -> String {
    format!(
        "the issuing CA {:?} cannot vouch for certificates: {defect}",
        anchor.subject
    )
}

/// The leaf's authorityKeyIdentifier fits the CA: key identifier (when both have one),
/// authorityCertSerialNumber and the first directoryName of authorityCertIssuer (when
/// present), as OpenSSL's `X509_check_akid` requires.
fn aki_matches(aki: &AuthorityKeyIdentifier<'_>, anchor: &Anchor) -> bool {
    if let (Some(id), Some(ski)) = (&aki.key_identifier, &anchor.ski) {
        if id.0 != ski.as_slice() {
            return false;
        }
    }
    if let Some(serial) = aki.authority_cert_serial {
        if unsigned(serial) != unsigned(&anchor.raw_serial) {
            return false;
        }
    }
    let issuer = aki
        .authority_cert_issuer
        .iter()
        .flatten()
        .find_map(|n| match n {
            GeneralName::DirectoryName(name) => Some(name.as_raw()),
            _ => None,
        });
    issuer.is_none_or(|name| name == anchor.issuer_der.as_slice())
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

fn authority_key_id<'a, 'b>(
    cert: &'a X509Certificate<'b>,
) -> Option<&'a AuthorityKeyIdentifier<'b>> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => Some(aki),
            _ => None,
        })
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.subjects()).finish()
    }
}

/// The anchor, its subject's DER, and its key-policy finding (the caller decides).
fn describe_anchor(
    der: &[u8],
    x509: &X509,
) -> Result<(Anchor, Vec<u8>, Option<profile::WeakKey>), TrustError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TrustError::Unreadable(e.to_string()))?;
    let subject = cert.subject().to_string();
    let defect = profile::check(&cert).err().map(|v| v.0);
    // basicConstraints is read leniently here: a CA whose extensions break the profile is
    // kept (with its defect) so that leaves it signed are told why.
    let is_ca = cert
        .extensions()
        .iter()
        .any(|e| matches!(e.parsed_extension(), ParsedExtension::BasicConstraints(bc) if bc.ca));
    if !is_ca {
        return Err(TrustError::NotACa { subject });
    }
    let key = x509.public_key()?;
    // A self-signed CA's own signature is relied on by nothing (RFC 5280 6.1.1 (d)).
    let self_signed =
        cert.issuer().as_raw() == cert.subject().as_raw() && x509.verify(&key).unwrap_or(false);
    let weak = profile::check_keys(&cert, !self_signed).err();
    let mut permits_client_auth = true;
    let mut ski = None;
    let mut simple = true;
    let mut signs_crls = true;
    let (mut dns_constrained, mut email_constrained) = (false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::KeyUsage(ku) => signs_crls = ku.crl_sign(),
            ParsedExtension::ExtendedKeyUsage(eku) => {
                permits_client_auth = eku.client_auth || eku.any;
            }
            ParsedExtension::NameConstraints(nc) => {
                simple = false;
                for subtree in [&nc.permitted_subtrees, &nc.excluded_subtrees]
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    match subtree.base {
                        GeneralName::DNSName(_) => dns_constrained = true,
                        GeneralName::RFC822Name(_) => email_constrained = true,
                        _ => {}
                    }
                }
            }
            ParsedExtension::BasicConstraints(_)
            | ParsedExtension::AuthorityKeyIdentifier(_)
            | ParsedExtension::SubjectAlternativeName(_)
            | ParsedExtension::CRLDistributionPoints(_)
            | ParsedExtension::AuthorityInfoAccess(_)
            | ParsedExtension::CertificatePolicies(_) => {}
            // Policy constraints/mappings, inhibitAnyPolicy: OpenSSL's verifier takes them.
            other => simple &= !ext.critical && !is_constraint(other),
        }
    }
    let subject_der = cert.subject().as_raw().to_vec();
    let anchor = Anchor {
        cert: x509.clone(),
        key,
        ski,
        raw_serial: cert.raw_serial().to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        simple,
        defect,
        dns_constrained,
        email_constrained,
        signs_crls,
        subject,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        permits_client_auth,
    };
    Ok((anchor, subject_der, weak))
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
