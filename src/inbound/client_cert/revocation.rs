//! Revocation: certificate revocation lists (CRLs) and the check of a verified chain.
//!
//! Owns: turning CRL bytes into a [`Crl`] we trust (parsed, issued by one of the trusted
//! CAs — matched by name *and* by a verified signature — whose keyUsage, when present,
//! includes cRLSign, with every extension decodable and no critical extension or critical
//! entry extension we do not implement), the immutable [`CrlSet`] snapshot, and
//! [`check_chain`] / [`check_issued`]: every certificate on the path, except the
//! self-signed root at its top, is looked up on a current CRL of the CA that issued it.
//!
//! Rules:
//! - a CRL belongs to an *issuer*, its name and public key, not to one CA certificate: a CA
//!   renewed on the same key, or cross-signed, is one issuer, and the answer does not
//!   depend on which of its certificates was read first;
//! - a CRL speaks only for the certificates in its scope (issuingDistributionPoint, RFC
//!   5280 §6.3.3 (b)): with a distributionPoint, only certificates whose CRL distribution
//!   points name it (a partition); with onlyContainsUserCerts / onlyContainsCACerts, only
//!   end-entity / CA certificates. CRLs outside a certificate's scope are no evidence;
//! - a serial on the newest current CRL in scope → [`CertError::Revoked`] (serials are
//!   compared as minimal two's-complement DER contents everywhere, so negative serials
//!   match too);
//! - no CRL in scope, or the newest one is past its nextUpdate (or not yet valid)
//!   → [`CertError::RevocationUnknown`] (the caller decides fail-open or fail-closed);
//! - the decision holds until the earliest nextUpdate of the CRLs used, and not past the
//!   moment a loaded CRL in scope whose thisUpdate is still in the future takes effect;
//! - a CRL without nextUpdate never goes stale (RFC 5280 requires the field; OpenSSL also
//!   accepts its absence).
//! - Supported: full, direct CRLs, optionally scoped by an issuingDistributionPoint.
//!   Delta CRLs, indirect CRLs and reason-partitioned CRLs are refused when loaded
//!   ([`CrlError::Unsupported`]).
//!
//! Must not: read files, fetch URLs, read the clock or log (see `crate::inbound::crl_store`).

use super::digest::hex_upper;
use super::error::CertError;
use super::trust::{TrustAnchors, VerifiedChain};
use openssl::x509::{X509Crl, X509Name, X509NameRef, X509Ref, X509};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::OID_X509_EXT_DELTA_CRL_INDICATOR;

/// Why a CRL cannot be used. `origin` names the file or URL it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("{origin}: not a CRL: {detail}")]
    Unparsable { origin: String, detail: String },
    #[error("{origin}: issued by {issuer:?}, which is not one of the trusted CAs")]
    UnknownIssuer { origin: String, issuer: String },
    #[error("{origin}: its signature does not verify with the key of the trusted CA {issuer:?}")]
    BadSignature { origin: String, issuer: String },
    #[error("{origin}: unsupported CRL: {detail}")]
    Unsupported { origin: String, detail: String },
    /// A CRL from a trusted CA that cannot be used (see [`CrlError::counts_as_missing`]).
    #[error("{origin}: CRL from {issuer:?} refused, so its issuer has no usable CRL: {reason}")]
    Refused {
        origin: String,
        issuer: String,
        reason: String,
    },
}

impl CrlError {
    /// A refused CRL is left out of the set rather than failing the whole read: its
    /// issuer's certificates then get `revocation_unknown` (unless fail-open), as when no
    /// CRL was published at all.
    pub fn counts_as_missing(&self) -> bool {
        matches!(self, Self::Refused { .. })
    }
}

/// Which kind of certificate a CRL covers (issuingDistributionPoint onlyContains*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kinds {
    All,
    EndEntities,
    Cas,
}

/// Which certificates a CRL covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    kinds: Kinds,
    /// The issuingDistributionPoint's names ([`dp_names`] form): the CRL covers only
    /// certificates with a CRL distribution point of one of these names. `None`: every
    /// certificate of the issuer.
    partition: Option<Vec<String>>,
}

/// A CRL's issuer name, shared by its clones.
#[derive(Clone)]
struct IssuerName(Arc<X509Name>);

impl std::fmt::Debug for IssuerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self.0)
    }
}

/// A parsed CRL whose signature was verified against a trusted CA.
#[derive(Debug, Clone)]
pub struct Crl {
    /// SHA-256 of the issuer's public key (SubjectPublicKeyInfo DER).
    issuer_key: [u8; 32],
    /// The issuer's name as signed in the CRL (compared with OpenSSL's name comparison).
    issuer_name: IssuerName,
    issuer: String,
    this_update: i64,
    next_update: Option<i64>,
    scope: Scope,
    /// Revoked serial numbers ([`serial_key`] form).
    revoked: HashSet<Vec<u8>>,
    source: String,
    /// SHA-256 of the CRL's DER: orders CRLs with equal thisUpdate, so the answer never
    /// depends on file or map order.
    digest: [u8; 32],
}

impl Crl {
    /// Parses one DER CRL and verifies that one of `anchors` issued it: the issuer name
    /// must equal the CA's subject and the signature must verify with the CA's key.
    pub fn verify(der: &[u8], anchors: &TrustAnchors, source: &str) -> Result<Self, CrlError> {
        let unparsable = |detail: String| CrlError::Unparsable {
            origin: source.to_owned(),
            detail,
        };
        let (rest, parsed) =
            x509_parser::parse_x509_crl(der).map_err(|e| unparsable(e.to_string()))?;
        if !rest.is_empty() {
            return Err(unparsable(format!("{} bytes follow the CRL", rest.len())));
        }
        let crl = X509Crl::from_der(der).map_err(|e| unparsable(e.to_string()))?;
        let issuer = parsed.issuer().to_string();
        let mut named = anchors.crl_issuers().filter(|ca| {
            crl.issuer_name()
                .try_cmp(ca.subject_name())
                .is_ok_and(|o| o.is_eq())
        });
        let Some(first) = named.next() else {
            return Err(CrlError::UnknownIssuer {
                origin: source.to_owned(),
                issuer,
            });
        };
        // Several trusted CAs may share a name (re-keyed CAs): the signature decides. Those
        // that verify it share one key; several of them are one CA renewed or cross-signed.
        let signers: Vec<_> = std::iter::once(first)
            .chain(named)
            .filter(|ca| {
                ca.public_key()
                    .and_then(|key| crl.verify(&key))
                    .unwrap_or(false)
            })
            .collect();
        let Some(&signer) = signers.first() else {
            return Err(CrlError::BadSignature {
                origin: source.to_owned(),
                issuer,
            });
        };
        // Every CA the name and signature match has this key: the binding does not depend
        // on which of them came first.
        let issuer_key = key_id(signer).ok_or_else(|| unparsable("digest failed".into()))?;
        let issuer_name = IssuerName(Arc::new(
            crl.issuer_name()
                .to_owned()
                .map_err(|e| unparsable(e.to_string()))?,
        ));
        let refused = |reason: String| CrlError::Refused {
            origin: source.to_owned(),
            issuer: issuer.clone(),
            reason,
        };
        // RFC 5280 6.3.3 (f): the signer must be allowed to sign CRLs (any of its
        // certificates, so that the answer does not depend on their order).
        let may_sign_crls = signers.iter().any(|ca| {
            ca.to_der()
                .is_ok_and(|d| anchors.signs_crls(&super::digest::sha256(&d)))
        });
        if !may_sign_crls {
            return Err(refused(
                "the signing CA's keyUsage does not include cRLSign (RFC 5280 6.3.3 (f))"
                    .to_owned(),
            ));
        }
        strict_extensions(&parsed).map_err(refused)?;
        let scope = scope_of(&parsed).map_err(|detail| CrlError::Unsupported {
            origin: source.to_owned(),
            detail,
        })?;
        let revoked = parsed
            .iter_revoked_certificates()
            .map(|r| serial_key(r.raw_serial()))
            .collect();
        Ok(Self {
            issuer_key,
            issuer_name,
            issuer,
            this_update: parsed.last_update().timestamp(),
            next_update: parsed.next_update().map(|t| t.timestamp()),
            scope,
            revoked,
            source: source.to_owned(),
            digest: super::digest::sha256(der),
        })
    }

    /// Whether this CRL speaks for a certificate that is a CA or not (`is_ca`) with the
    /// CRL distribution point names `dps` ([`dp_names`] form).
    fn covers(&self, is_ca: bool, dps: &[String]) -> bool {
        let kind_ok = match self.scope.kinds {
            Kinds::All => true,
            Kinds::EndEntities => !is_ca,
            Kinds::Cas => is_ca,
        };
        kind_ok
            && self
                .scope
                .partition
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| dps.contains(n)))
    }

    /// When the issuer promises a newer CRL (Unix seconds), if it says.
    pub fn next_update(&self) -> Option<i64> {
        self.next_update
    }

    /// When this CRL was issued (Unix seconds).
    pub fn this_update(&self) -> i64 {
        self.this_update
    }

    /// The issuing CA's subject, for logs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The file or URL this CRL came from, for logs.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of revoked serials listed.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

/// Every CRL extension and CRL entry extension decodes and appears once, and the only
/// critical ones are those the check implements (issuingDistributionPoint; a delta CRL
/// indicator is refused by [`scope_of`]). RFC 5280 5.2 and 5.3: a CRL with a critical
/// extension or entry extension the application cannot process must not be used.
fn strict_extensions(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
) -> Result<(), String> {
    let exts = crl.extensions();
    for (i, ext) in exts.iter().enumerate() {
        if exts[..i].iter().any(|e| e.oid == ext.oid) {
            return Err(format!("CRL extension {} appears more than once", ext.oid));
        }
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(format!(
                "CRL extension {} does not decode: {error}",
                ext.oid
            ));
        }
        let implemented = matches!(
            ext.parsed_extension(),
            ParsedExtension::IssuingDistributionPoint(_)
        ) || ext.oid == OID_X509_EXT_DELTA_CRL_INDICATOR;
        if ext.critical && !implemented {
            return Err(format!(
                "critical CRL extension {} is not implemented{}",
                ext.oid,
                if ext.oid == x509_parser::oid_registry::OID_X509_EXT_CRL_NUMBER {
                    " (RFC 5280 5.2.3: cRLNumber is never critical)"
                } else {
                    ""
                }
            ));
        }
    }
    for entry in crl.iter_revoked_certificates() {
        for ext in entry.extensions() {
            if ext.critical {
                return Err(format!(
                    "critical CRL entry extension {} is not implemented",
                    ext.oid
                ));
            }
        }
    }
    Ok(())
}

/// The CRL scope from issuingDistributionPoint, refusing what we do not implement.
fn scope_of(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
) -> Result<Scope, String> {
    let mut scope = Scope {
        kinds: Kinds::All,
        partition: None,
    };
    for ext in crl.extensions() {
        if ext.oid == OID_X509_EXT_DELTA_CRL_INDICATOR {
            return Err("delta CRLs are not supported".to_owned());
        }
        match ext.parsed_extension() {
            ParsedExtension::IssuingDistributionPoint(idp) => {
                if idp.indirect_crl {
                    return Err("indirect CRLs are not supported".to_owned());
                }
                if idp.only_some_reasons.is_some() {
                    return Err("CRLs partitioned by reason are not supported".to_owned());
                }
                if idp.only_contains_attribute_certs {
                    return Err("attribute-certificate CRLs do not apply".to_owned());
                }
                scope.kinds = match (idp.only_contains_user_certs, idp.only_contains_ca_certs) {
                    (false, false) => Kinds::All,
                    (true, false) => Kinds::EndEntities,
                    (false, true) => Kinds::Cas,
                    (true, true) => return Err("issuingDistributionPoint is contradictory".into()),
                };
                scope.partition = idp.distribution_point.as_ref().map(dp_names);
            }
            ParsedExtension::CRLNumber(_)
            | ParsedExtension::AuthorityKeyIdentifier(_)
            | ParsedExtension::IssuerAlternativeName(_)
            | ParsedExtension::AuthorityInfoAccess(_) => {}
            _ if ext.critical => {
                return Err(format!("unknown critical extension {}", ext.oid));
            }
            _ => {}
        }
    }
    Ok(scope)
}

/// Splits the bytes of a CRL file into DER CRLs: one or more PEM `X509 CRL` blocks, or a
/// single DER CRL. Does not parse the CRLs themselves.
pub fn split_crl_file(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN X509 CRL-----";
    const END: &str = "-----END X509 CRL-----";
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        if bytes.is_empty() {
            return Err("empty file".to_owned());
        }
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "PEM file is not UTF-8".to_owned())?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body_start = start + BEGIN.len();
        let Some(len) = rest[body_start..].find(END) else {
            return Err("a PEM X509 CRL block has no END line".to_owned());
        };
        let body: String = rest[body_start..body_start + len]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("PEM X509 CRL block is not base64: {e}"))?;
        out.push(der);
        rest = &rest[body_start + len + END.len()..];
    }
    if out.is_empty() {
        return Err("no X509 CRL block".to_owned());
    }
    Ok(out)
}

/// An immutable set of verified CRLs, indexed by issuing CA.
#[derive(Debug, Default, Clone)]
pub struct CrlSet {
    by_issuer: HashMap<[u8; 32], Vec<Arc<Crl>>>,
    len: usize,
}

impl CrlSet {
    pub fn new(crls: impl IntoIterator<Item = Arc<Crl>>) -> Self {
        let mut by_issuer: HashMap<[u8; 32], Vec<Arc<Crl>>> = HashMap::new();
        let mut len = 0;
        for crl in crls {
            by_issuer.entry(crl.issuer_key).or_default().push(crl);
            len += 1;
        }
        for list in by_issuer.values_mut() {
            // Newest first, so the check takes the first current one; equal thisUpdates in
            // digest order, whatever order the files or downloads came in.
            list.sort_by(|a, b| {
                b.this_update
                    .cmp(&a.this_update)
                    .then_with(|| a.digest.cmp(&b.digest))
            });
        }
        Self { by_issuer, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every CRL in the set.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Crl>> {
        self.by_issuer.values().flatten()
    }

    /// The earliest thisUpdate after `now` of any CRL in the set: when a CRL loaded ahead
    /// of time comes into force.
    pub fn next_in_force_after(&self, now: i64) -> Option<i64> {
        self.iter()
            .map(|c| c.this_update)
            .filter(|t| *t > now)
            .min()
    }
}

/// Revocation checking as the caller configured it.
#[derive(Debug, Clone, Copy)]
pub struct Revocation<'a> {
    pub crls: &'a CrlSet,
    /// Accept a certificate whose revocation status is unknown (reported as
    /// [`RevocationStatus::UnknownAccepted`]) instead of rejecting it.
    pub fail_open: bool,
}

/// What revocation checking concluded about an accepted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationStatus {
    /// Revocation checking is off.
    NotChecked,
    /// No configured CA issued the certificate (a pinned self-signed certificate, or a
    /// self-signed one in the unverified common-name mode), so no CRL can speak for it.
    NotApplicable,
    /// Every certificate on the chain was found absent from a current CRL.
    Good,
    /// The status is unknown and the policy is fail-open.
    UnknownAccepted { reason: String },
}

/// Checks the leaf of a verified `chain` (`leaf`, parsed) and every CA above it against
/// the CRLs of its issuer at `now`. Returns until when the decision holds (see the module
/// rules), `None` when no CRL used has a nextUpdate.
///
/// OpenSSL stops a chain at the first trusted CA (every configured CA is an anchor), so
/// the path is extended upwards through `anchors` (issuer name and signature checked) to
/// the self-signed root when it is configured: a root's CRL can revoke an intermediate
/// that is itself configured as trusted.
pub fn check_chain(
    chain: &VerifiedChain,
    leaf: &X509Certificate<'_>,
    crls: &CrlSet,
    anchors: &TrustAnchors,
    now: i64,
) -> Result<Option<i64>, CertError> {
    if chain.cas.is_empty() {
        return Ok(None);
    }
    check_path(leaf, &chain.cas, crls, anchors, now)
}

/// Revocation for a certificate accepted without a verified chain (a pinned certificate,
/// or the unverified common-name mode): `None` when no configured CA issued it (name and
/// signature), otherwise [`check_chain`]'s answer for the path through that CA. Whether
/// that CA is currently valid or allowed for client authentication does not matter here:
/// a CA's CRL speaks for what it issued.
pub fn check_issued(
    der: &[u8],
    leaf: &X509Certificate<'_>,
    crls: &CrlSet,
    anchors: &TrustAnchors,
    now: i64,
) -> Option<Result<Option<i64>, CertError>> {
    let x509 = X509::from_der(der).ok()?;
    if is_self_issued(&x509) {
        return None;
    }
    let issuer = parent_of(&x509, anchors, &[])?;
    Some(check_path(
        leaf,
        std::slice::from_ref(issuer),
        crls,
        anchors,
        now,
    ))
}

/// Checks the leaf and then each CA of `path` (the CAs above the leaf, nearest first,
/// intermediates included) against its issuer's CRLs, and beyond the end of `path` keeps
/// going up through the configured CAs to a self-signed root.
fn check_path<'a>(
    leaf: &X509Certificate<'_>,
    path: &'a [X509],
    crls: &CrlSet,
    anchors: &'a TrustAnchors,
    now: i64,
) -> Result<Option<i64>, CertError> {
    let Some((first_issuer, above)) = path.split_first() else {
        return Ok(None);
    };
    let mut above = above.iter();
    let unknown = |reason: String| CertError::RevocationUnknown { reason };
    let mut until: Option<i64> = None;
    let mut serial = serial_key(leaf.raw_serial());
    let mut dps = cdp_names(leaf);
    let mut is_ca = false;
    let mut issuer = representative(first_issuer, anchors);
    let mut visited: Vec<&X509> = Vec::new();
    loop {
        let issuer_name = || name_of(issuer);
        let key = key_id(issuer).ok_or_else(|| unknown("cannot digest the issuer's key".into()))?;
        let in_scope = || {
            crls.by_issuer.get(&key).into_iter().flatten().filter(|c| {
                c.issuer_name
                    .0
                    .try_cmp(issuer.subject_name())
                    .is_ok_and(|o| o.is_eq())
                    && c.covers(is_ca, &dps)
            })
        };
        // A CRL already loaded but not in force yet ends the decision when it starts.
        if let Some(next_in_force) = in_scope()
            .filter(|c| c.this_update > now)
            .map(|c| c.this_update - 1)
            .min()
        {
            until = Some(until.map_or(next_in_force, |u| u.min(next_in_force)));
        }
        let Some(crl) = in_scope().find(|c| c.this_update <= now) else {
            return Err(unknown(format!(
                "no CRL from {:?} covers {}",
                issuer_name(),
                if is_ca { "the CA" } else { "the certificate" }
            )));
        };
        if let Some(next) = crl.next_update {
            if now > next {
                return Err(unknown(format!(
                    "the newest CRL from {:?} ({}) was due for renewal at {next}",
                    issuer_name(),
                    crl.source
                )));
            }
            until = Some(until.map_or(next, |u| u.min(next)));
        }
        if crl.revoked.contains(&serial) {
            return Err(CertError::Revoked {
                serial: hex_upper(&serial),
                issuer: issuer_name(),
            });
        }
        // One level up: the issuer's own issuer, if configured.
        visited.push(issuer);
        if is_self_issued(issuer) || visited.len() > 16 {
            break;
        }
        // The path that was built first (through intermediates), then the configured CAs.
        let parent = match above.next() {
            Some(p) => p,
            None => match parent_of(issuer, anchors, &visited) {
                Some(p) => p,
                None => break,
            },
        };
        let Some((ca_serial, ca_dps)) = ca_facts(issuer) else {
            return Err(unknown(format!("cannot read the CA {:?}", issuer_name())));
        };
        serial = ca_serial;
        dps = ca_dps;
        is_ca = true;
        issuer = representative(parent, anchors);
    }
    Ok(until)
}

/// Of the configured certificates of one issuer (same name and key: a renewal or a
/// cross-certificate), the one the path continues through, chosen the same way whatever
/// the file or map order: a self-signed one if configured, else the lowest SHA-256.
fn representative<'a>(cert: &'a X509, anchors: &'a TrustAnchors) -> &'a X509 {
    // Names first: comparing them is cheap, digesting keys is not.
    let named: Vec<&X509> = anchors
        .certificates()
        .filter(|ca| same_name(ca.subject_name(), cert.subject_name()))
        .collect();
    if named.len() < 2 {
        return cert;
    }
    let key = key_id(cert);
    let group: Vec<&X509> = named
        .into_iter()
        .filter(|ca| key.is_some() && key_id(ca) == key)
        .chain(std::iter::once(cert))
        .collect();
    preferred(group).unwrap_or(cert)
}

/// A configured CA or intermediate that issued `cert` (its subject is `cert`'s issuer and
/// its key verifies `cert`'s signature), other than those in `visited`.
fn parent_of<'a>(cert: &X509Ref, anchors: &'a TrustAnchors, visited: &[&X509]) -> Option<&'a X509> {
    // The configured intermediates count too: a pinned certificate one of them issued is on
    // that intermediate's CRL, and the intermediate on its issuer's.
    let candidates: Vec<&X509> = anchors
        .crl_issuers()
        .filter(|ca| {
            same_name(cert.issuer_name(), ca.subject_name())
                && !visited.iter().any(|v| {
                    same_name(v.subject_name(), ca.subject_name()) && key_id(v) == key_id(ca)
                })
                && ca
                    .public_key()
                    .and_then(|key| cert.verify(&key))
                    .unwrap_or(false)
        })
        .collect();
    preferred(candidates)
}

/// Of certificates of one issuer, the one to continue through: self-signed first, then the
/// lowest SHA-256 of the DER (independent of the order they were configured in).
fn preferred(mut certs: Vec<&X509>) -> Option<&X509> {
    if certs.len() > 1 {
        certs.sort_by_cached_key(|ca| {
            (
                !is_self_issued(ca),
                ca.to_der().map(|d| super::digest::sha256(&d)).ok(),
            )
        });
    }
    certs.first().copied()
}

fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    a.try_cmp(b).is_ok_and(|o| o.is_eq())
}

fn is_self_issued(cert: &X509Ref) -> bool {
    same_name(cert.issuer_name(), cert.subject_name())
}

/// A configured CA's serial ([`serial_key`] form) and CRL distribution point names.
fn ca_facts(cert: &X509) -> Option<(Vec<u8>, Vec<String>)> {
    let der = cert.to_der().ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some((serial_key(parsed.raw_serial()), cdp_names(&parsed)))
}

/// A serial number as compared everywhere: the DER INTEGER's contents in minimal two's
/// complement (redundant leading 0x00 / 0xFF bytes dropped), so 128 (`00 80`) and -128
/// (`80`) differ and a non-minimal encoding on a CRL still matches.
pub fn serial_key(raw: &[u8]) -> Vec<u8> {
    let mut s = raw;
    while let [first, second, ..] = s {
        let redundant =
            (*first == 0 && second & 0x80 == 0) || (*first == 0xFF && second & 0x80 != 0);
        if !redundant {
            break;
        }
        s = &s[1..];
    }
    s.to_vec()
}

/// The names of a distribution point, comparable between a certificate's CRL distribution
/// points and a CRL's issuingDistributionPoint. A name relative to the CRL issuer is
/// compared as it is: CRLs here are direct, so both sides are relative to the same CA.
fn dp_names(name: &DistributionPointName<'_>) -> Vec<String> {
    match name {
        DistributionPointName::FullName(names) => names.iter().map(ToString::to_string).collect(),
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => vec![format!("relative:{rdn:?}")],
    }
}

/// The names of every CRL distribution point of `cert` that its issuer publishes (points
/// naming another cRLIssuer are indirect and not supported).
fn cdp_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter().filter(|p| p.crl_issuer.is_none()) {
                if let Some(name) = &point.distribution_point {
                    names.extend(dp_names(name));
                }
            }
        }
    }
    names
}

/// The HTTP(S) CRL distribution point URIs of a DER certificate (empty when it has none
/// or cannot be parsed).
pub fn http_distribution_points(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() else {
            continue;
        };
        for point in points.iter() {
            if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                for name in names {
                    if let GeneralName::URI(uri) = name {
                        let lower = uri.to_ascii_lowercase();
                        if lower.starts_with("http://") || lower.starts_with("https://") {
                            urls.push((*uri).to_owned());
                        }
                    }
                }
            }
        }
    }
    urls
}

/// SHA-256 of a CA's SubjectPublicKeyInfo: with the name, how CRLs are tied to an issuer.
fn key_id(cert: &X509Ref) -> Option<[u8; 32]> {
    let key = cert.public_key().ok()?.public_key_to_der().ok()?;
    Some(super::digest::sha256(&key))
}

fn name_of(cert: &X509Ref) -> String {
    cert.to_der()
        .ok()
        .and_then(|der| {
            x509_parser::parse_x509_certificate(&der)
                .ok()
                .map(|(_, c)| c.subject().to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_minimal_twos_complement() {
        assert_eq!(
            serial_key(&[0, 0x81, 2]),
            [0, 0x81, 2],
            "positive, sign byte kept"
        );
        assert_eq!(serial_key(&[0, 0, 0x81, 2]), [0, 0x81, 2]);
        assert_eq!(serial_key(&[0, 5]), [5]);
        assert_eq!(serial_key(&[0xFF, 0x80]), [0x80], "-128");
        assert_ne!(
            serial_key(&[0x80]),
            serial_key(&[0, 0x80]),
            "-128 is not 128"
        );
        assert_eq!(serial_key(&[0xFF, 0x01]), [0xFF, 0x01], "-255");
        assert_eq!(serial_key(&[0]), [0]);
    }

    #[test]
    fn a_file_without_pem_armour_is_one_der_crl_and_an_empty_file_is_refused() {
        assert_eq!(
            split_crl_file(&[0x30, 0x03]).unwrap(),
            vec![vec![0x30, 0x03]]
        );
        assert!(split_crl_file(b"").is_err());
    }

    #[test]
    fn pem_blocks_are_split_and_a_truncated_block_is_refused() {
        let pem = "-----BEGIN X509 CRL-----\nMAM=\n-----END X509 CRL-----\n\
                   -----BEGIN X509 CRL-----\nMAQ=\n-----END X509 CRL-----\n";
        assert_eq!(split_crl_file(pem.as_bytes()).unwrap().len(), 2);
        assert!(split_crl_file(b"-----BEGIN X509 CRL-----\nMAM=\n").is_err());
        assert!(split_crl_file(b"-----BEGIN CERTIFICATE-----\n").is_err());
    }

    #[test]
    fn an_empty_set_makes_a_chain_with_an_issuer_unknown() {
        let ca = crate::tools::pki::CertSpec::ca("CA", 0, 1)
            .self_signed()
            .unwrap();
        let leaf = crate::tools::pki::CertSpec::leaf("leaf", 0, 1)
            .issued_by(&ca)
            .unwrap()
            .der();
        let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        let anchors = TrustAnchors::new(vec![ca.cert.clone()]).unwrap();
        let chain = VerifiedChain {
            leaf_serial: vec![1],
            cas: vec![ca.cert],
            anchors: Vec::new(),
            not_before: 0,
            not_after: 0,
        };
        assert!(matches!(
            check_chain(&chain, &parsed, &CrlSet::default(), &anchors, 0),
            Err(CertError::RevocationUnknown { .. })
        ));
        // A chain of one certificate (a trust anchor alone) has nothing to check.
        let alone = VerifiedChain {
            cas: Vec::new(),
            ..chain
        };
        assert_eq!(
            check_chain(&alone, &parsed, &CrlSet::default(), &anchors, 0),
            Ok(None)
        );
    }
}
