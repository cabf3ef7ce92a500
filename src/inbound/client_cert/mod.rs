//! Deciding whether a forwarded client certificate is acceptable.
//!
//! Owns: the inbound decision as a pure function of (header bytes or DER, [`Policy`],
//! `now`). The rules, in order:
//! 1. the configured header format ([`forwarded`]; App Service's base64 by default) yields
//!    exactly one DER certificate, in DER proper (minimal lengths: another encoding of the
//!    same certificate would be another thumbprint and another cache entry), and every
//!    certificate of a forwarded chain is one DER certificate too;
//! 2. the certificate meets the profile ([`profile`]: every extension decodes, appears once
//!    and is processed when critical; RFC 5280 rules) — else `malformed`;
//! 3. `now` within the certificate's validity period, even for pinned certificates;
//! 4. an EKU extension, when present, lists clientAuth itself (anyExtendedKeyUsage alone
//!    does not count), and the certificate is not a CA;
//! 5. the key and signature algorithm meet the key policy (else `weak_key`, unless
//!    [`Policy::allow_weak_keys`]);
//! 6. a pinned thumbprint accepts; otherwise a single, exactly matching subject CN accepts
//!    only with a chain to a trusted CA, directly or through untrusted intermediates
//!    (configured or forwarded, see [`path`]; or in the seed's unverified mode). Every CA on
//!    that chain meets the same profile and key policy (checked when the CAs are loaded),
//!    and the verdict does not depend on which route `trust` verifies the chain by;
//! 7. when revocation checking is on ([`validate_with_revocation`]), every certificate of a
//!    chain to a trusted CA is looked up on its issuer's CRL (see [`revocation`]). This
//!    includes pinned certificates and unverified-mode CN matches *when they chain* to a
//!    configured CA: a pin must not resurrect a certificate its CA revoked. Whether it
//!    chains is decided by the issuer relationship (a configured CA's name and key signed
//!    it), not by the chain being acceptable: a pinned certificate under an expired CA is
//!    still on that CA's CRL. A certificate no configured CA issued (a pinned self-signed
//!    certificate) has no CRL to consult and is [`RevocationStatus::NotApplicable`].
//!
//! Rejections carry bounded detail (lists and strings from the certificate are cut, see
//! [`MAX_DETAIL_ITEMS`]): they are cached and logged, and anyone can make a certificate.
//!
//! Must not: do I/O, read the clock, log, cache, or know about HTTP. Callers pass `now`.

mod der;
mod digest;
mod error;
pub mod forwarded;
pub mod header;
mod info;
pub mod partners;
pub mod path;
mod policy;
pub mod profile;
pub mod revocation;
mod trust;

pub use digest::sha256;
pub use error::{CertError, HeaderError, Malformed};
pub use info::CertificateInfo;
pub use policy::{Policy, Thumbprint, ThumbprintError};
pub use revocation::{Crl, CrlError, CrlSet, Revocation, RevocationStatus};
pub use trust::{
    AnchorOptions, Route, TrustAnchors, TrustError, VerifiedChain, WeakCa, WeakCaReport,
};

use serde::Serialize;
use x509_parser::certificate::X509Certificate;

/// At most this many items of a list from the certificate go into a rejection's detail.
pub const MAX_DETAIL_ITEMS: usize = 8;
/// At most this many bytes of one string from the certificate go into a rejection's
/// detail.
pub const MAX_DETAIL_CHARS: usize = 64;

/// How an accepted certificate matched the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MatchedBy {
    Thumbprint,
    CommonName,
    /// A partner's `spkiSha256`.
    Spki,
    /// A partner's `serialNumber` (with its issuer).
    SerialNumber,
    /// A partner's `uri` (URI SAN, SPIFFE IDs included).
    Uri,
    /// A partner's `email` (email SAN).
    Email,
    /// A partner's `dnsName` (DNS SAN).
    DnsName,
}

impl From<partners::MatchKind> for MatchedBy {
    fn from(k: partners::MatchKind) -> Self {
        use partners::MatchKind as K;
        match k {
            K::Thumbprint => Self::Thumbprint,
            K::CommonName => Self::CommonName,
            K::Spki => Self::Spki,
            K::SerialNumber => Self::SerialNumber,
            K::Uri => Self::Uri,
            K::Email => Self::Email,
            K::DnsName => Self::DnsName,
        }
    }
}

/// An accepted certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub info: CertificateInfo,
    pub matched_by: MatchedBy,
    /// Unix seconds from which this decision holds (latest notBefore on the chain).
    pub valid_from: i64,
    /// Unix seconds until which this decision holds (earliest notAfter on the chain).
    pub valid_until: i64,
    /// The caller's serialized description of this acceptance, made once: an acceptance
    /// is cached and answered many times, its rendering need not be redone per request.
    pub rendering: RenderMemo,
    /// The partner the certificate belongs to and what it may call (the implicit partner
    /// of the flat settings, allowed every function, when no partners document is used).
    pub partner: std::sync::Arc<partners::Grant>,
}

/// A lazily filled slot for a serialized form of the value that holds it. It is not part
/// of the value: it never takes part in comparisons.
#[derive(Default, Clone)]
pub struct RenderMemo(std::sync::OnceLock<Box<[u8]>>);

impl RenderMemo {
    /// The stored bytes, made by `render` on first use.
    pub fn get_or_init(&self, render: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.get_or_init(|| render().into_boxed_slice())
    }
}

impl PartialEq for RenderMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RenderMemo {}

impl std::fmt::Debug for RenderMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenderMemo")
    }
}

/// Decodes the header values of one request and validates the certificate.
pub fn validate_header<V: AsRef<[u8]>>(
    values: &[V],
    policy: &Policy,
    now: i64,
) -> Result<Accepted, CertError> {
    let der = header::decode(values)?;
    validate(&der, policy, now)
}

/// Parses one DER certificate, rejecting trailing bytes, and describes it.
pub fn describe(der: &[u8]) -> Result<CertificateInfo, CertError> {
    let cert = parse(der)?;
    Ok(CertificateInfo::from_parsed(&cert, Thumbprint::of_der(der)))
}

/// Validates one DER certificate against `policy` at `now` (Unix seconds), without
/// revocation checking.
pub fn validate(der: &[u8], policy: &Policy, now: i64) -> Result<Accepted, CertError> {
    validate_with_revocation(der, policy, None, now).map(|(accepted, _)| accepted)
}

/// Validates one DER certificate against `policy` at `now` (Unix seconds) and, when
/// `revocation` is given, checks the chain against its CRLs. An acceptance checked against
/// CRLs is valid only until the earliest nextUpdate of those CRLs (`valid_until`).
pub fn validate_with_revocation(
    der: &[u8],
    policy: &Policy,
    revocation: Option<&Revocation<'_>>,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    validate_by(der, &[], policy, None, revocation, now)
}

/// [`validate_with_revocation`] for what a front end forwarded: the leaf, and the chain
/// it sent with it, whose certificates are only ever untrusted intermediates. Every chain
/// certificate must be one DER certificate (else `malformed`). With `partners`, rule 4 is
/// the partners document's, as in [`validate_partners`].
pub fn validate_forwarded(
    forwarded: &forwarded::Forwarded,
    policy: &Policy,
    partners: Option<&partners::PartnerSet>,
    revocation: Option<&Revocation<'_>>,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    validate_by(
        &forwarded.leaf,
        &forwarded.chain,
        policy,
        partners,
        revocation,
        now,
    )
}

/// Validates one DER certificate against a partner set at `now`: rules 1–3 and 5 exactly as
/// [`validate_with_revocation`], and instead of rule 4, exactly one partner of `set` must
/// match (see [`partners::matcher`]); `policy` gives the trusted CAs.
pub fn validate_partners(
    der: &[u8],
    policy: &Policy,
    set: &partners::PartnerSet,
    revocation: Option<&Revocation<'_>>,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    validate_by(der, &[], policy, Some(set), revocation, now)
}

/// Rules 1–3 for every certificate (and every forwarded chain certificate parses), then
/// rule 4 by the flat policy or, when given, by the partners document.
fn validate_by(
    der: &[u8],
    chain: &[Vec<u8>],
    policy: &Policy,
    partners: Option<&partners::PartnerSet>,
    revocation: Option<&Revocation<'_>>,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    let cert = parse(der)?;
    profile::check(&cert).map_err(|v| Malformed::Profile { detail: v.0 })?;
    for (i, c) in chain.iter().enumerate() {
        parse(c).map_err(|e| match e {
            CertError::Malformed(m) => Malformed::Chain {
                index: i + 1,
                detail: bounded(&m.to_string(), 2 * MAX_DETAIL_CHARS),
            }
            .into(),
            other => other,
        })?;
    }
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now < not_before {
        return Err(CertError::NotYetValid { not_before, now });
    }
    if now > not_after {
        return Err(CertError::Expired { not_after, now });
    }
    check_usage(&cert)?;
    if let Err(weak) = profile::check_keys(&cert, true) {
        if weak.always_refused || !policy.allow_weak_keys {
            return Err(CertError::WeakKey {
                reason: weak.reason,
            });
        }
    }

    let (sha1, sha256) = Thumbprint::of_der(der);
    let info = CertificateInfo::from_parsed(&cert, (sha1, sha256));
    let forwarded =
        path::decode_forwarded(chain, policy.allow_weak_keys).map_err(|i| Malformed::Chain {
            index: i + 1,
            detail: "cannot be read".to_owned(),
        })?;
    if let Some(set) = partners {
        let window = (not_before, not_after);
        let prints = (sha1, sha256);
        return by_partner(
            der, &forwarded, &cert, info, prints, window, policy, set, revocation, now,
        );
    }
    if policy.thumbprints.contains(&sha1) || policy.thumbprints.contains(&sha256) {
        let accepted = Accepted {
            info,
            matched_by: MatchedBy::Thumbprint,
            valid_from: not_before,
            valid_until: not_after,
            rendering: RenderMemo::default(),
            partner: partners::Grant::implicit(),
        };
        return revocation_if_issued(der, &cert, accepted, policy, revocation, now);
    }

    // Several CN attributes are ambiguous (which one did the CA vet?): never a match.
    let Some(cn) = single_common_name(&cert) else {
        return Err(CertError::NotAllowlisted);
    };
    if !policy.common_name_allowed(cn) {
        return Err(CertError::NotAllowlisted);
    }
    if policy.allow_unverified_common_names {
        let accepted = Accepted {
            info,
            matched_by: MatchedBy::CommonName,
            valid_from: not_before,
            valid_until: not_after,
            rendering: RenderMemo::default(),
            partner: partners::Grant::implicit(),
        };
        return revocation_if_issued(der, &cert, accepted, policy, revocation, now);
    }
    let untrusted = |reason: String| CertError::UntrustedChain {
        common_name: cn.to_owned(),
        reason,
    };
    let Some(trust) = &policy.trust else {
        return Err(untrusted("no trusted CAs are configured".to_owned()));
    };
    let chain = trust
        .verify_forwarded(der, &cert, &forwarded, now)
        .map_err(untrusted)?;
    let accepted = Accepted {
        info,
        matched_by: MatchedBy::CommonName,
        valid_from: not_before.max(chain.not_before),
        valid_until: not_after.min(chain.not_after),
        rendering: RenderMemo::default(),
        partner: partners::Grant::implicit(),
    };
    match revocation {
        None => Ok((accepted, RevocationStatus::NotChecked)),
        Some(r) => apply_revocation(
            r,
            revocation::check_chain(&chain, &cert, r.crls, trust, now),
            accepted,
            now,
        ),
    }
}

/// Rule 4 by the partners document (and rule 5 for the chain it used or, like
/// [`revocation_if_issued`], by the issuer relationship of a pinned certificate).
#[allow(clippy::too_many_arguments)]
fn by_partner(
    der: &[u8],
    forwarded: &[path::CaFacts],
    cert: &X509Certificate<'_>,
    info: CertificateInfo,
    prints: (Thumbprint, Thumbprint),
    (not_before, not_after): (i64, i64),
    policy: &Policy,
    set: &partners::PartnerSet,
    revocation: Option<&Revocation<'_>>,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    let (Thumbprint::Sha1(sha1_bytes), Thumbprint::Sha256(sha256_bytes)) = prints else {
        return Err(CertError::NotAllowlisted);
    };
    let facts = partners::facts(cert, sha1_bytes, sha256_bytes, set);
    let mut verified: Option<Result<VerifiedChain, String>> = None;
    let selected = set.select(&facts, || {
        let result = match &policy.trust {
            None => Err("no trusted CAs are configured".to_owned()),
            Some(trust) => trust.verify_forwarded(der, cert, forwarded, now),
        };
        let anchors = match &result {
            Ok(chain) => Ok(partners::ChainAnchors {
                keys: chain.anchors.clone(),
                issuer: info.issuer.clone(),
            }),
            Err(reason) => Err(reason.clone()),
        };
        verified = Some(result);
        anchors
    })?;
    let mut accepted = Accepted {
        info,
        matched_by: selected.kind.into(),
        valid_from: not_before,
        valid_until: not_after,
        rendering: RenderMemo::default(),
        partner: selected.grant,
    };
    if let (true, Some(Ok(chain))) = (selected.used_chain, &verified) {
        accepted.valid_from = accepted.valid_from.max(chain.not_before);
        accepted.valid_until = accepted.valid_until.min(chain.not_after);
    }
    // The chain the match relied on is checked whole; a pinned certificate is checked by
    // its issuer relationship, as on the flat path.
    match (revocation, &policy.trust, verified) {
        (Some(r), Some(trust), Some(Ok(chain))) if selected.used_chain => apply_revocation(
            r,
            revocation::check_chain(&chain, cert, r.crls, trust, now),
            accepted,
            now,
        ),
        _ => revocation_if_issued(der, cert, accepted, policy, revocation, now),
    }
}

/// Revocation for a certificate accepted without a chain (pinned, or the unverified CN
/// mode): checked when a configured CA issued it, whether or not that chain would be
/// acceptable, and not applicable otherwise.
fn revocation_if_issued(
    der: &[u8],
    cert: &X509Certificate<'_>,
    accepted: Accepted,
    policy: &Policy,
    revocation: Option<&Revocation<'_>>,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    let Some(r) = revocation else {
        return Ok((accepted, RevocationStatus::NotChecked));
    };
    let Some(trust) = &policy.trust else {
        return Ok((accepted, RevocationStatus::NotApplicable));
    };
    match revocation::check_issued(der, cert, r.crls, trust, now) {
        None => Ok((accepted, RevocationStatus::NotApplicable)),
        Some(checked) => apply_revocation(r, checked, accepted, now),
    }
}

fn apply_revocation(
    r: &Revocation<'_>,
    checked: Result<Option<i64>, CertError>,
    mut accepted: Accepted,
    now: i64,
) -> Result<(Accepted, RevocationStatus), CertError> {
    match checked {
        Ok(until) => {
            if let Some(until) = until {
                accepted.valid_until = accepted.valid_until.min(until);
            }
            Ok((accepted, RevocationStatus::Good))
        }
        Err(CertError::RevocationUnknown { reason }) if r.fail_open => {
            // Nothing spoke for the chain; a loaded CRL that comes into force later might.
            if let Some(next) = r.crls.next_in_force_after(now) {
                accepted.valid_until = accepted.valid_until.min(next - 1);
            }
            Ok((accepted, RevocationStatus::UnknownAccepted { reason }))
        }
        Err(e) => Err(e),
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        CertError::Malformed(Malformed::NotACertificate {
            detail: bounded(&e.to_string(), 2 * MAX_DETAIL_CHARS),
        })
    })?;
    if !rest.is_empty() {
        return Err(Malformed::TrailingData { bytes: rest.len() }.into());
    }
    der::check_lengths(der).map_err(|detail| Malformed::NotACertificate {
        detail: format!("not DER: {detail}"),
    })?;
    Ok(cert)
}

/// `text` cut to at most `max` bytes (at a character boundary), marked when cut.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// At most [`MAX_DETAIL_ITEMS`] items, each cut to [`MAX_DETAIL_CHARS`], joined; says how
/// many were left out.
fn bounded_list(items: &[String]) -> String {
    let mut out: Vec<String> = items
        .iter()
        .take(MAX_DETAIL_ITEMS)
        .map(|s| bounded(s, MAX_DETAIL_CHARS))
        .collect();
    if items.len() > MAX_DETAIL_ITEMS {
        out.push(format!("and {} more", items.len() - MAX_DETAIL_ITEMS));
    }
    out.join(", ")
}

fn check_usage(cert: &X509Certificate<'_>) -> Result<(), CertError> {
    let bad_extension = |e: x509_parser::error::X509Error| {
        CertError::Malformed(Malformed::BadExtension {
            detail: bounded(&e.to_string(), 2 * MAX_DETAIL_CHARS),
        })
    };
    if let Some(eku) = cert.extended_key_usage().map_err(bad_extension)? {
        // anyExtendedKeyUsage alone is not enough: OpenSSL's sslclient purpose and pyca's
        // client verifier refuse it too.
        if !eku.value.client_auth {
            return Err(CertError::NotForClientAuth {
                ekus: bounded_list(&info::eku_names(eku.value)),
            });
        }
    }
    let is_ca = cert
        .basic_constraints()
        .map_err(bad_extension)?
        .is_some_and(|bc| bc.value.ca);
    if is_ca {
        return Err(CertError::CaCertificate);
    }
    Ok(())
}

/// The subject's CN when there is exactly one and it decodes as a string.
fn single_common_name<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a str> {
    let mut cns = cert.subject().iter_common_name();
    let first = cns.next()?;
    if cns.next().is_some() {
        return None;
    }
    first.as_str().ok()
}
