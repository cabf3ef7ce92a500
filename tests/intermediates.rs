//! Paths through untrusted intermediates (issue 10): from `CLIENT_CERT_INTERMEDIATES_PATH`
//! or forwarded by the front end, never trust anchors themselves; every check on every
//! intermediate; bounded work; revocation over the whole path; the cache never reuses a
//! decision made with one chain for another.
//!
//! Driven through the gate (`InboundGate::check_forwarded`), the code a request takes
//! after the server lifts the headers, with certificates made per test.

mod common;

use common::{crl, now, policy, PARTNER_CN};
use mtls_handler::inbound::cache::ValidationCache;
use mtls_handler::inbound::client_cert::forwarded::{self, HeaderFormat};
use mtls_handler::inbound::client_cert::{CertError, Crl, CrlSet, TrustAnchors};
use mtls_handler::inbound::InboundGate;
use mtls_handler::tools::pki::{CertSpec, Eku, Issued};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A root (the only trust anchor), a partner intermediate under it that is *not* trusted,
/// and the partner's leaf under the intermediate.
struct Pki {
    root: Issued,
    intermediate: Issued,
    leaf: Issued,
}

fn pki() -> Pki {
    let t = now();
    let root = CertSpec::ca("Root CA", t, 3650).self_signed().unwrap();
    let intermediate = CertSpec::ca("Partner Intermediate CA", t, 1825)
        .issued_by(&root)
        .unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 365)
        .issued_by(&intermediate)
        .unwrap();
    Pki {
        root,
        intermediate,
        leaf,
    }
}

fn anchors(root: &Issued, intermediates: &[&Issued]) -> TrustAnchors {
    let certs: Vec<_> = intermediates.iter().map(|i| i.cert.clone()).collect();
    TrustAnchors::new(vec![root.cert.clone()])
        .unwrap()
        .with_intermediates(&certs, false)
        .0
}

fn gate(trust: TrustAnchors, format: HeaderFormat) -> InboundGate {
    InboundGate::new(
        policy(&[PARTNER_CN], Some(trust)),
        ValidationCache::new(100, 300),
    )
    .with_format(format)
}

/// What the front end sends for `leaf` with `chain`, decided by `gate`.
fn decide(gate: &InboundGate, leaf: &Issued, chain: &[&Issued]) -> Result<(), CertError> {
    let chain: Vec<Vec<u8>> = chain.iter().map(|c| c.der()).collect();
    let (value, chain_value) = forwarded::encode(gate.format(), &leaf.der(), &chain);
    let chain_values: Vec<String> = chain_value.into_iter().collect();
    gate.check_forwarded(&[value], &chain_values, now())
        .map(|_| ())
}

fn untrusted_reason(r: Result<(), CertError>) -> String {
    match r {
        Err(CertError::UntrustedChain { reason, .. }) => reason,
        other => panic!("expected untrusted_chain, got {other:?}"),
    }
}

#[test]
fn a_leaf_under_an_intermediate_from_the_intermediates_path_is_accepted_in_every_format() {
    let p = pki();
    for format in HeaderFormat::ALL {
        let g = gate(anchors(&p.root, &[&p.intermediate]), format);
        assert_eq!(decide(&g, &p.leaf, &[]), Ok(()), "{format}");
    }
}

#[test]
fn a_leaf_under_a_forwarded_intermediate_is_accepted_in_the_formats_that_forward_chains() {
    let p = pki();
    for format in [HeaderFormat::Xfcc, HeaderFormat::Rfc9440] {
        let g = gate(anchors(&p.root, &[]), format);
        assert_eq!(decide(&g, &p.leaf, &[&p.intermediate]), Ok(()), "{format}");
        // Without the chain there is no path: the intermediate was never trusted.
        untrusted_reason(decide(&g, &p.leaf, &[]));
    }
}

#[test]
fn an_intermediate_is_never_a_trust_anchor() {
    let t = now();
    let p = pki();
    // Its root is not configured: the intermediate alone vouches for nothing.
    let other_root = CertSpec::ca("Another Root", t, 3650).self_signed().unwrap();
    let g = gate(anchors(&other_root, &[&p.intermediate]), HeaderFormat::Xfcc);
    untrusted_reason(decide(&g, &p.leaf, &[]));
    untrusted_reason(decide(&g, &p.leaf, &[&p.intermediate]));
    // Presented as the client certificate, a CA is refused as one.
    assert_eq!(
        decide(&g, &p.intermediate, &[]),
        Err(CertError::CaCertificate)
    );
}

#[test]
fn an_expired_intermediate_breaks_the_path() {
    let t = now();
    let p = pki();
    let expired = CertSpec::ca("Partner Intermediate CA", t, 0)
        .with_validity(t - 30 * 86_400, t - 86_400)
        .issued_by(&p.root)
        .unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30)
        .with_validity(t - 2 * 86_400, t + 86_400)
        .issued_by(&expired)
        .unwrap();
    let g = gate(anchors(&p.root, &[&expired]), HeaderFormat::Arr);
    let reason = untrusted_reason(decide(&g, &leaf, &[]));
    assert!(reason.contains("expired"), "{reason}");
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Rfc9440);
    let reason = untrusted_reason(decide(&g, &leaf, &[&expired]));
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn an_intermediate_that_is_not_a_ca_breaks_the_path() {
    let t = now();
    let p = pki();
    // An end-entity certificate of the trusted root, used to sign a leaf.
    let not_ca = CertSpec::leaf("Partner Intermediate CA", t, 365)
        .issued_by(&p.root)
        .unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&not_ca)
        .unwrap();
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Xfcc);
    let reason = untrusted_reason(decide(&g, &leaf, &[&not_ca]));
    assert!(reason.contains("not a CA"), "{reason}");
}

#[test]
fn the_forwarded_chain_cannot_make_the_leaf_itself_an_issuer() {
    let t = now();
    let p = pki();
    // A partner's genuine leaf (CA:FALSE) signs a certificate of its own choosing and
    // forwards itself as the "intermediate".
    let genuine = CertSpec::leaf("Partner Intermediate CA", t, 365)
        .issued_by(&p.intermediate)
        .unwrap();
    let forged = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&genuine)
        .unwrap();
    let g = gate(anchors(&p.root, &[&p.intermediate]), HeaderFormat::Xfcc);
    let reason = untrusted_reason(decide(&g, &forged, &[&genuine, &p.intermediate]));
    assert!(reason.contains("not a CA"), "{reason}");
    // A self-issued leaf that forwards itself as its own issuer gets nowhere either.
    let self_signed = CertSpec::leaf(PARTNER_CN, t, 30).self_signed().unwrap();
    untrusted_reason(decide(&g, &self_signed, &[&self_signed]));
}

#[test]
fn an_intermediate_signed_by_an_untrusted_ca_breaks_the_path() {
    let t = now();
    let p = pki();
    let rogue_root = CertSpec::ca("Root CA", t, 3650).self_signed().unwrap();
    // Same names as the real intermediate and root, other keys.
    let rogue = CertSpec::ca("Partner Intermediate CA", t, 1825)
        .issued_by(&rogue_root)
        .unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30).issued_by(&rogue).unwrap();
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Xfcc);
    untrusted_reason(decide(&g, &leaf, &[&rogue]));
    untrusted_reason(decide(&g, &leaf, &[&rogue, &rogue_root]));
}

#[test]
fn path_length_limits_of_the_cas_above_are_enforced_the_anchor_included() {
    let t = now();
    let root = CertSpec::ca("Root CA", t, 3650)
        .with_path_len(0)
        .self_signed()
        .unwrap();
    let mid = CertSpec::ca("Mid CA", t, 1825).issued_by(&root).unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30).issued_by(&mid).unwrap();
    let g = gate(anchors(&root, &[&mid]), HeaderFormat::Arr);
    let reason = untrusted_reason(decide(&g, &leaf, &[]));
    assert!(reason.contains("allows 0 intermediate"), "{reason}");

    let root = CertSpec::ca("Root CA", t, 3650).self_signed().unwrap();
    let upper = CertSpec::ca("Upper CA", t, 1825)
        .with_path_len(0)
        .issued_by(&root)
        .unwrap();
    let lower = CertSpec::ca("Lower CA", t, 1825).issued_by(&upper).unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30).issued_by(&lower).unwrap();
    let g = gate(anchors(&root, &[]), HeaderFormat::Rfc9440);
    let reason = untrusted_reason(decide(&g, &leaf, &[&lower, &upper]));
    assert!(reason.contains("Upper CA"), "{reason}");
    // Two levels are fine where nothing limits them.
    let free = CertSpec::ca("Upper CA", t, 1825).issued_by(&root).unwrap();
    let lower = CertSpec::ca("Lower CA", t, 1825).issued_by(&free).unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30).issued_by(&lower).unwrap();
    assert_eq!(decide(&g, &leaf, &[&lower, &free]), Ok(()));
}

#[test]
fn an_intermediate_restricted_to_other_extended_key_usages_breaks_the_path() {
    let t = now();
    let p = pki();
    let server_only = CertSpec::ca("Partner Intermediate CA", t, 1825)
        .with_ekus(Some(vec![Eku::ServerAuth]))
        .issued_by(&p.root)
        .unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&server_only)
        .unwrap();
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Xfcc);
    let reason = untrusted_reason(decide(&g, &leaf, &[&server_only]));
    assert!(reason.contains("extended key usages"), "{reason}");
}

#[test]
fn name_constraints_of_the_anchor_apply_to_a_path_through_an_intermediate() {
    let t = now();
    let root = CertSpec::ca("Root CA", t, 3650)
        .with_name_constraints("critical,permitted;DNS:partner.example")
        .self_signed()
        .unwrap();
    let mid = CertSpec::ca("Mid CA", t, 1825).issued_by(&root).unwrap();
    let inside = CertSpec::leaf(PARTNER_CN, t, 30)
        .with_dns_names(&["api.partner.example"])
        .issued_by(&mid)
        .unwrap();
    let outside = CertSpec::leaf(PARTNER_CN, t, 30)
        .with_dns_names(&["evil.example"])
        .issued_by(&mid)
        .unwrap();
    let g = gate(anchors(&root, &[&mid]), HeaderFormat::Arr);
    assert_eq!(decide(&g, &inside, &[]), Ok(()));
    untrusted_reason(decide(&g, &outside, &[]));
}

#[test]
fn a_cross_signed_loop_is_rejected_quickly() {
    let t = now();
    let root = CertSpec::ca("Root CA", t, 3650).self_signed().unwrap();
    // A and B certify each other; neither reaches the root.
    let a_self = CertSpec::ca("Loop A", t, 365).self_signed().unwrap();
    let b_self = CertSpec::ca("Loop B", t, 365).self_signed().unwrap();
    let a_by_b = CertSpec::ca("Loop A", t, 365)
        .issued_by_with_key(&b_self, a_self.key.clone())
        .unwrap();
    let b_by_a = CertSpec::ca("Loop B", t, 365)
        .issued_by_with_key(&a_self, b_self.key.clone())
        .unwrap();
    let leaf = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&a_self)
        .unwrap();
    let g = gate(anchors(&root, &[&a_by_b, &b_by_a]), HeaderFormat::Xfcc);
    let started = Instant::now();
    let chain = [&a_by_b, &b_by_a, &a_self, &b_self];
    untrusted_reason(decide(&g, &leaf, &chain));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn fifty_chain_certificates_are_refused_as_malformed_before_any_is_parsed() {
    let p = pki();
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Rfc9440);
    let chain: Vec<&Issued> = std::iter::repeat_n(&p.intermediate, 50).collect();
    assert!(matches!(
        decide(&g, &p.leaf, &chain),
        Err(CertError::Malformed(_))
    ));
}

#[test]
fn a_chain_certificate_that_is_not_a_certificate_is_malformed() {
    let p = pki();
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Rfc9440);
    let value = forwarded::encode(HeaderFormat::Rfc9440, &p.leaf.der(), &[]).0;
    let decided = g.check_forwarded(&[value.as_str()], &[":QUJD:"], now());
    assert!(
        matches!(decided, Err(CertError::Malformed(_))),
        "{decided:?}"
    );
}

#[test]
fn a_decision_made_with_one_chain_is_never_reused_for_another() {
    let t = now();
    let p = pki();
    let expired = CertSpec::ca("Partner Intermediate CA", t, 0)
        .with_validity(t - 30 * 86_400, t - 86_400)
        .issued_by_with_key(&p.root, p.intermediate.key.clone())
        .unwrap();
    let g = gate(anchors(&p.root, &[]), HeaderFormat::Xfcc);
    assert_eq!(decide(&g, &p.leaf, &[&p.intermediate]), Ok(()));
    // Same leaf, same issuer key, but a chain that must not verify: decided afresh.
    untrusted_reason(decide(&g, &p.leaf, &[&expired]));
    untrusted_reason(decide(&g, &p.leaf, &[]));
    assert_eq!(decide(&g, &p.leaf, &[&p.intermediate]), Ok(()));
}

/// A gate checking revocation with CRLs from `signers`.
fn revocation_gate(
    trust: TrustAnchors,
    crls: &[(&Issued, &[&Issued])],
    format: HeaderFormat,
) -> InboundGate {
    let t = now();
    let set: Vec<Arc<Crl>> = crls
        .iter()
        .map(|(signer, revoked)| {
            let revoked: Vec<_> = revoked.iter().map(|r| &r.cert).collect();
            let der = crl(signer, &revoked, t - 60, t + 86_400).to_der().unwrap();
            Arc::new(Crl::verify(&der, &trust, "test").unwrap())
        })
        .collect();
    InboundGate::with_revocation(
        policy(&[PARTNER_CN], Some(trust)),
        ValidationCache::new(100, 300),
        CrlSet::new(set),
        false,
        false,
    )
    .with_format(format)
}

#[test]
fn revocation_covers_every_certificate_on_a_path_through_an_intermediate() {
    let p = pki();
    let trust = || anchors(&p.root, &[&p.intermediate]);
    // Both CRLs current and empty: accepted.
    let g = revocation_gate(
        trust(),
        &[(&p.root, &[]), (&p.intermediate, &[])],
        HeaderFormat::Arr,
    );
    assert_eq!(decide(&g, &p.leaf, &[]), Ok(()));
    // The intermediate's CRL revokes the leaf.
    let g = revocation_gate(
        trust(),
        &[(&p.root, &[]), (&p.intermediate, &[&p.leaf])],
        HeaderFormat::Arr,
    );
    assert!(matches!(
        decide(&g, &p.leaf, &[]),
        Err(CertError::Revoked { .. })
    ));
    // The root's CRL revokes the intermediate.
    let g = revocation_gate(
        trust(),
        &[(&p.root, &[&p.intermediate]), (&p.intermediate, &[])],
        HeaderFormat::Arr,
    );
    assert!(matches!(
        decide(&g, &p.leaf, &[]),
        Err(CertError::Revoked { .. })
    ));
    // No CRL from the intermediate: unknown, refused (fail-closed).
    let g = revocation_gate(trust(), &[(&p.root, &[])], HeaderFormat::Arr);
    assert!(matches!(
        decide(&g, &p.leaf, &[]),
        Err(CertError::RevocationUnknown { .. })
    ));
}

#[test]
fn with_revocation_on_a_forwarded_intermediate_without_a_crl_is_refused_as_unknown() {
    // Only configured intermediates can have CRLs loaded; a forwarded one cannot vouch
    // that what it issued is not revoked.
    let p = pki();
    let g = revocation_gate(anchors(&p.root, &[]), &[(&p.root, &[])], HeaderFormat::Xfcc);
    assert!(matches!(
        decide(&g, &p.leaf, &[&p.intermediate]),
        Err(CertError::RevocationUnknown { .. })
    ));
}

#[test]
fn a_pinned_certificate_under_a_configured_intermediate_is_still_checked_for_revocation() {
    use mtls_handler::inbound::client_cert::Thumbprint;
    let p = pki();
    let trust = anchors(&p.root, &[&p.intermediate]);
    let t = now();
    let set: Vec<Arc<Crl>> = [(&p.root, vec![]), (&p.intermediate, vec![&p.leaf.cert])]
        .into_iter()
        .map(|(signer, revoked)| {
            let der = crl(signer, &revoked, t - 60, t + 86_400).to_der().unwrap();
            Arc::new(Crl::verify(&der, &trust, "test").unwrap())
        })
        .collect();
    let pinned = mtls_handler::inbound::client_cert::Policy {
        thumbprints: [Thumbprint::of_der(&p.leaf.der()).1].into_iter().collect(),
        ..policy(&[], Some(trust))
    };
    let g = InboundGate::with_revocation(
        pinned,
        ValidationCache::new(10, 60),
        CrlSet::new(set),
        false,
        false,
    );
    assert!(matches!(
        decide(&g, &p.leaf, &[]),
        Err(CertError::Revoked { .. })
    ));
}
