//! Revocation: certificate revocation lists (CRLs) and the check of a verified chain.
//!
//! Owns: turning CRL bytes into a [`Crl`] we trust (parsed, issued by one of the trusted
//! CAs — matched by name *and* by a verified signature — with no critical extension we do
//! not understand), the immutable [`CrlSet`] snapshot, and [`check_chain`]: every
//! certificate on a verified chain, except the trust anchor at its top, is looked up on a
//! current CRL of the CA that issued it.
//!
//! Rules:
//! - a serial on the newest current CRL of the issuer → [`CertError::Revoked`];
//! - no CRL from the issuer, or the newest one is past its nextUpdate (or not yet valid)
//!   → [`CertError::RevocationUnknown`] (the caller decides fail-open or fail-closed);
//! - a CRL without nextUpdate never goes stale (RFC 5280 requires the field; OpenSSL also
//!   accepts its absence).
//! - Supported: full, direct CRLs, optionally scoped by an issuingDistributionPoint to
//!   end-entity or CA certificates. Delta CRLs, indirect CRLs and reason-partitioned CRLs
//!   are refused when loaded ([`CrlError::Unsupported`]).
//!
//! Must not: read files, fetch URLs, read the clock or log (see `crate::inbound::crl_store`).

use super::error::CertError;
use super::info::hex_upper;
use super::trust::{unsigned, TrustAnchors, VerifiedChain};
use openssl::x509::{X509Crl, X509};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
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
}

/// Which certificates a CRL covers (issuingDistributionPoint onlyContains*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    EndEntities,
    Cas,
}

/// A parsed CRL whose signature was verified against a trusted CA.
#[derive(Debug, Clone)]
pub struct Crl {
    /// SHA-256 of the issuing CA's DER certificate.
    issuer_key: [u8; 32],
    issuer: String,
    this_update: i64,
    next_update: Option<i64>,
    scope: Scope,
    /// Revoked serial numbers as unsigned big-endian bytes without leading zeros.
    revoked: HashSet<Vec<u8>>,
    source: String,
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
        let scope = scope_of(&parsed).map_err(|detail| CrlError::Unsupported {
            origin: source.to_owned(),
            detail,
        })?;
        let crl = X509Crl::from_der(der).map_err(|e| unparsable(e.to_string()))?;
        let issuer = parsed.issuer().to_string();
        let mut named = anchors.certificates().filter(|ca| {
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
        // Several trusted CAs may share a name (re-keyed CAs): the signature decides.
        let signer = std::iter::once(first).chain(named).find(|ca| {
            ca.public_key()
                .and_then(|key| crl.verify(&key))
                .unwrap_or(false)
        });
        let Some(signer) = signer else {
            return Err(CrlError::BadSignature {
                origin: source.to_owned(),
                issuer,
            });
        };
        let issuer_key = cert_key(signer).ok_or_else(|| unparsable("digest failed".into()))?;
        let revoked = parsed
            .iter_revoked_certificates()
            .map(|r| unsigned(r.raw_serial()).to_vec())
            .collect();
        Ok(Self {
            issuer_key,
            issuer,
            this_update: parsed.last_update().timestamp(),
            next_update: parsed.next_update().map(|t| t.timestamp()),
            scope,
            revoked,
            source: source.to_owned(),
        })
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

/// The CRL scope from issuingDistributionPoint, refusing what we do not implement.
fn scope_of(
    crl: &x509_parser::revocation_list::CertificateRevocationList<'_>,
) -> Result<Scope, String> {
    let mut scope = Scope::All;
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
                scope = match (idp.only_contains_user_certs, idp.only_contains_ca_certs) {
                    (false, false) => Scope::All,
                    (true, false) => Scope::EndEntities,
                    (false, true) => Scope::Cas,
                    (true, true) => return Err("issuingDistributionPoint is contradictory".into()),
                };
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
            // Newest first, so the check takes the first current one.
            list.sort_by_key(|c| std::cmp::Reverse(c.this_update));
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
    /// The certificate does not chain to a configured CA (a pinned self-signed
    /// certificate, or the unverified common-name mode), so no CRL can speak for it.
    NotApplicable,
    /// Every certificate on the chain was found absent from a current CRL.
    Good,
    /// The status is unknown and the policy is fail-open.
    UnknownAccepted { reason: String },
}

/// Checks every certificate of `chain` (leaf first) except its top against the CRLs of
/// its issuer at `now`. Returns the earliest nextUpdate of the CRLs used: the decision
/// must not be reused after it.
///
/// OpenSSL stops a chain at the first trusted CA (every configured CA is an anchor), so
/// the chain is first extended upwards through `anchors` (issuer name and signature
/// checked) to the self-signed root when it is configured: a root's CRL can revoke an
/// intermediate that is itself configured as trusted.
pub fn check_chain(
    chain: &VerifiedChain,
    crls: &CrlSet,
    anchors: &TrustAnchors,
    now: i64,
) -> Result<Option<i64>, CertError> {
    let mut until: Option<i64> = None;
    let path = extend_to_root(&chain.cas, anchors);
    for (index, issuer) in path.iter().copied().enumerate() {
        let issuer_name = || name_of(issuer);
        let unknown = |reason: String| CertError::RevocationUnknown { reason };
        let key = cert_key(issuer).ok_or_else(|| unknown("cannot digest the issuer".into()))?;
        let is_leaf = index == 0;
        let usable = crls
            .by_issuer
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|c| match c.scope {
                Scope::All => true,
                Scope::EndEntities => is_leaf,
                Scope::Cas => !is_leaf,
            })
            .find(|c| c.this_update <= now);
        let Some(crl) = usable else {
            return Err(unknown(format!("no CRL from {:?}", issuer_name())));
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
        let serial = match index {
            0 => chain.leaf_serial.clone(),
            _ => path[index - 1]
                .serial_number()
                .to_bn()
                .map(|bn| bn.to_vec())
                .map_err(|e| unknown(format!("unreadable serial number: {e}")))?,
        };
        if crl.revoked.contains(&serial) {
            return Err(CertError::Revoked {
                serial: hex_upper(&serial),
                issuer: issuer_name(),
            });
        }
    }
    Ok(until)
}

/// `certs` followed by the configured CAs above its top, as far as they go.
fn extend_to_root<'a>(certs: &'a [X509], anchors: &'a TrustAnchors) -> Vec<&'a X509> {
    let mut path: Vec<&X509> = certs.iter().collect();
    while let Some(top) = path.last().copied() {
        let self_issued = top
            .issuer_name()
            .try_cmp(top.subject_name())
            .is_ok_and(|o| o.is_eq());
        if self_issued || path.len() > 16 {
            break;
        }
        let parent = anchors.certificates().find(|ca| {
            !path
                .iter()
                .any(|c| c.as_ref() == ca.as_ref() as &openssl::x509::X509Ref)
                && top
                    .issuer_name()
                    .try_cmp(ca.subject_name())
                    .is_ok_and(|o| o.is_eq())
                && ca
                    .public_key()
                    .and_then(|key| top.verify(&key))
                    .unwrap_or(false)
        });
        match parent {
            Some(ca) => path.push(ca),
            None => break,
        }
    }
    path
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

/// SHA-256 of a certificate's DER: how CRLs are tied to the CA that signed them.
fn cert_key(cert: &X509) -> Option<[u8; 32]> {
    cert.to_der().ok().map(|der| super::digest::sha256(&der))
}

fn name_of(cert: &X509) -> String {
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
    fn leading_zero_bytes_of_a_serial_are_ignored() {
        assert_eq!(unsigned(&[0, 0, 0x81, 2]), [0x81, 2]);
        assert_eq!(unsigned(&[0]), [0u8; 0]);
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
    fn an_empty_set_makes_any_chain_with_an_issuer_unknown() {
        let chain = VerifiedChain {
            leaf_serial: vec![1],
            cas: Vec::new(),
            anchors: Vec::new(),
            not_before: 0,
            not_after: 0,
        };
        // A chain of one certificate (a trust anchor alone) has nothing to check.
        let ca = crate::tools::pki::CertSpec::ca("CA", 0, 1)
            .self_signed()
            .unwrap();
        let anchors = TrustAnchors::new(vec![ca.cert]).unwrap();
        assert_eq!(
            check_chain(&chain, &CrlSet::default(), &anchors, 0),
            Ok(None)
        );
    }
}
