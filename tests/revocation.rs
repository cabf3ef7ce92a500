//! Revocation: the pure CRL check, then the real `handler` binary reading CRL files,
//! noticing when they change, and fetching CRLs from loopback distribution points
//! (including a CA that never answers and one that answers far too much).

mod common;

use common::{crl, crl_scoped, now, policy, write, Handler, Idp, TestPki, PARTNER_CN};
use mtls_handler::inbound::client_cert::revocation::check_chain;
use mtls_handler::inbound::client_cert::{
    validate_with_revocation, CertError, Crl, CrlError, CrlSet, Revocation, RevocationStatus,
    Thumbprint, TrustAnchors,
};
use mtls_handler::tools::pki::{CertSpec, Issued};
use openssl::x509::X509Crl;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

fn verified(crl: &X509Crl, anchors: &TrustAnchors) -> Result<Arc<Crl>, CrlError> {
    Crl::verify(&crl.to_der().unwrap(), anchors, "test").map(Arc::new)
}

fn set_of(crls: &[&X509Crl], anchors: &TrustAnchors) -> CrlSet {
    CrlSet::new(crls.iter().map(|c| verified(c, anchors).unwrap()))
}

/// CRLs from both CAs of `pki`, current for a week, revoking `revoked` (by whichever CA).
fn current_crls(pki: &TestPki, revoked_by_issuing: &[&Issued]) -> (X509Crl, X509Crl) {
    let t = now();
    let certs: Vec<_> = revoked_by_issuing.iter().map(|i| &i.cert).collect();
    (
        crl(&pki.root, &[], t - 60, t + 7 * DAY),
        crl(&pki.issuing, &certs, t - 60, t + 7 * DAY),
    )
}

fn check(
    der: &[u8],
    p: &mtls_handler::inbound::client_cert::Policy,
    set: &CrlSet,
    fail_open: bool,
) -> Result<RevocationStatus, CertError> {
    let r = Revocation {
        crls: set,
        fail_open,
    };
    validate_with_revocation(der, p, Some(&r), now()).map(|(_, status)| status)
}

// === the pure check ===

#[test]
fn a_client_certificate_on_its_issuers_crl_is_rejected_as_revoked() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let (root_crl, issuing_crl) = current_crls(&pki, &[&client]);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert_eq!(err.code(), "revoked");
    assert!(matches!(err, CertError::Revoked { issuer, .. } if issuer.contains("Test Issuing CA")));
    // Fail-open is about unknown status, never about a known revocation.
    assert_eq!(
        check(&client.der(), &p, &set, true).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_client_certificate_absent_from_current_crls_is_accepted_until_the_next_update() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let other = pki.client(PARTNER_CN);
    let (root_crl, issuing_crl) = current_crls(&pki, &[&other]);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let r = Revocation {
        crls: &set,
        fail_open: false,
    };
    let (accepted, status) = validate_with_revocation(&client.der(), &p, Some(&r), now()).unwrap();
    assert_eq!(status, RevocationStatus::Good);
    assert!(
        accepted.valid_until <= now() + 7 * DAY,
        "a decision based on a CRL must not outlive the CRL's nextUpdate"
    );
}

#[test]
fn a_revoked_intermediate_ca_rejects_every_certificate_it_issued() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[&pki.issuing.cert], t - 60, t + DAY);
    let issuing_crl = crl(&pki.issuing, &[], t - 60, t + DAY);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert!(matches!(err, CertError::Revoked { issuer, .. } if issuer.contains("Test Root CA")));
}

#[test]
fn no_crl_from_the_issuer_is_unknown_and_rejected_unless_fail_open() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let (root_crl, _) = current_crls(&pki, &[]);
    let set = set_of(&[&root_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert_eq!(err.code(), "revocation_unknown");
    assert!(err.to_string().contains("Test Issuing CA"));
    assert!(matches!(
        check(&client.der(), &p, &set, true),
        Ok(RevocationStatus::UnknownAccepted { .. })
    ));
}

#[test]
fn a_crl_past_its_next_update_makes_the_status_unknown() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[], t - 60, t + DAY);
    let stale = crl(&pki.issuing, &[], t - 3 * DAY, t - DAY);
    let set = set_of(&[&root_crl, &stale], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert_eq!(err.code(), "revocation_unknown");
    assert!(err.to_string().contains("due for renewal"));
}

#[test]
fn the_newest_crl_of_an_issuer_decides() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[], t - 60, t + DAY);
    let old = crl(&pki.issuing, &[], t - 2 * DAY, t + DAY);
    let new = crl(&pki.issuing, &[&client.cert], t - 60, t + DAY);
    let set = set_of(&[&root_crl, &old, &new], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_crl_with_the_cas_name_but_another_key_is_refused() {
    let pki = TestPki::new();
    let t = now();
    // An attacker's CA with the same subject name as the trusted issuing CA.
    let forger = CertSpec::ca("Test Issuing CA", t, 30)
        .self_signed()
        .unwrap();
    let forged = crl(&forger, &[], t - 60, t + DAY);
    assert!(matches!(
        verified(&forged, &pki.anchors()),
        Err(CrlError::BadSignature { .. })
    ));
}

#[test]
fn a_crl_from_a_ca_that_is_not_trusted_is_refused() {
    let pki = TestPki::new();
    let t = now();
    let stranger = CertSpec::ca("Some Other CA", t, 30).self_signed().unwrap();
    let theirs = crl(&stranger, &[], t - 60, t + DAY);
    assert!(matches!(
        verified(&theirs, &pki.anchors()),
        Err(CrlError::UnknownIssuer { .. })
    ));
    assert!(matches!(
        Crl::verify(b"\x30\x03garbage", &pki.anchors(), "x"),
        Err(CrlError::Unparsable { .. })
    ));
}

#[test]
fn a_pinned_certificate_that_chains_to_a_ca_is_still_revocation_checked() {
    let pki = TestPki::new();
    let client = pki.client("pinned.example");
    let (root_crl, issuing_crl) = current_crls(&pki, &[&client]);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let mut p = policy(&[], Some(pki.anchors()));
    p.thumbprints.insert(Thumbprint::of_der(&client.der()).1);
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_pinned_self_signed_certificate_has_no_crl_to_consult() {
    let pki = TestPki::new();
    let own = CertSpec::leaf("self.example", now(), 30)
        .self_signed()
        .unwrap();
    let mut p = policy(&[], Some(pki.anchors()));
    p.thumbprints.insert(Thumbprint::of_der(&own.der()).1);
    assert_eq!(
        check(&own.der(), &p, &CrlSet::default(), false),
        Ok(RevocationStatus::NotApplicable)
    );
}

#[test]
fn without_revocation_settings_nothing_is_checked() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let (_, status) = validate_with_revocation(&client.der(), &p, None, now()).unwrap();
    assert_eq!(status, RevocationStatus::NotChecked);
    let der = client.der();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let chain = pki.anchors().verify(&der, &parsed, now()).unwrap();
    assert!(check_chain(&chain, &parsed, &CrlSet::default(), &pki.anchors(), now()).is_err());
}

// === which CRL speaks for a certificate (issue 14) ===

/// A leaf of `pki`'s issuing CA whose CRL distribution point is `cdp`.
fn client_in_partition(pki: &TestPki, cdp: &str) -> Issued {
    CertSpec::leaf(PARTNER_CN, now(), 365)
        .with_crl_distribution_point(cdp)
        .issued_by(&pki.issuing)
        .unwrap()
}

#[test]
fn a_leaf_listed_on_its_own_crl_partition_is_revoked_although_another_partition_is_newer() {
    let pki = TestPki::new();
    let (part1, part2) = (
        "http://crl.example/part1.crl",
        "http://crl.example/part2.crl",
    );
    let client = client_in_partition(&pki, part1);
    let t = now();
    let root_crl = crl(&pki.root, &[], t - 60, t + DAY);
    let listing = crl_scoped(
        &pki.issuing,
        &[&client.cert],
        t - 120,
        t + DAY,
        &Idp::partition(part1),
    );
    let newer_other = crl_scoped(&pki.issuing, &[], t - 60, t + DAY, &Idp::partition(part2));
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let anchors = pki.anchors();
    for order in [[&listing, &newer_other], [&newer_other, &listing]] {
        let set = set_of(&[&root_crl, order[0], order[1]], &anchors);
        assert_eq!(
            check(&client.der(), &p, &set, false).unwrap_err().code(),
            "revoked"
        );
        assert_eq!(
            check(&client.der(), &p, &set, true).unwrap_err().code(),
            "revoked"
        );
    }
    // Another partition alone is no evidence about this leaf.
    let set = set_of(&[&root_crl, &newer_other], &anchors);
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revocation_unknown"
    );
    // A leaf without a distribution point is covered by no partition either.
    let no_cdp = pki.client(PARTNER_CN);
    let set = set_of(&[&root_crl, &listing, &newer_other], &anchors);
    assert_eq!(
        check(&no_cdp.der(), &p, &set, false).unwrap_err().code(),
        "revocation_unknown"
    );
    // A complete CRL (no distribution point in its scope) covers every partition.
    let complete = crl(&pki.issuing, &[], t - 30, t + DAY);
    let set = set_of(&[&root_crl, &complete], &anchors);
    assert_eq!(
        check(&client.der(), &p, &set, false),
        Ok(RevocationStatus::Good)
    );
}

#[test]
fn crls_limited_to_user_or_ca_certificates_speak_only_for_those() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let users_only = Idp {
        only_user_certs: true,
        ..Idp::default()
    };
    let cas_only = Idp {
        only_ca_certs: true,
        ..Idp::default()
    };
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let anchors = pki.anchors();
    // The issuing CA's CA-only CRL says nothing about the leaf.
    let set = set_of(
        &[
            &crl(&pki.root, &[], t - 60, t + DAY),
            &crl_scoped(&pki.issuing, &[], t - 60, t + DAY, &cas_only),
        ],
        &anchors,
    );
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revocation_unknown"
    );
    // The root's user-only CRL says nothing about the issuing CA.
    let set = set_of(
        &[
            &crl_scoped(&pki.root, &[], t - 60, t + DAY, &users_only),
            &crl(&pki.issuing, &[], t - 60, t + DAY),
        ],
        &anchors,
    );
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revocation_unknown"
    );
    // And each does speak for its own kind.
    let set = set_of(
        &[
            &crl_scoped(&pki.root, &[&pki.issuing.cert], t - 60, t + DAY, &cas_only),
            &crl_scoped(&pki.issuing, &[], t - 60, t + DAY, &users_only),
        ],
        &anchors,
    );
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_crl_of_a_ca_renewed_on_the_same_key_gives_the_same_answer_whatever_the_order() {
    let t = now();
    let root = CertSpec::ca("Twin Root CA", t, 3650).self_signed().unwrap();
    let key =
        mtls_handler::tools::pki::generate_key(mtls_handler::tools::pki::KeyKind::EcP256).unwrap();
    // The same CA (name and key) in two certificates: the original and a renewal.
    let first = CertSpec::ca("Twin Issuing CA", t, 365)
        .issued_by_with_key(&root, key.clone())
        .unwrap();
    let renewed = CertSpec::ca("Twin Issuing CA", t, 730)
        .issued_by_with_key(&root, key.clone())
        .unwrap();
    let client = CertSpec::leaf(PARTNER_CN, t, 30).issued_by(&first).unwrap();
    let issuing_crl = crl(&first, &[&client.cert], t - 60, t + DAY);
    let root_crl = crl(&root, &[], t - 60, t + DAY);
    let mut answers = std::collections::BTreeSet::new();
    for round in 0..16 {
        let cas = if round % 2 == 0 {
            vec![root.cert.clone(), first.cert.clone(), renewed.cert.clone()]
        } else {
            vec![renewed.cert.clone(), first.cert.clone(), root.cert.clone()]
        };
        let anchors = TrustAnchors::new(cas.clone()).unwrap();
        let set = set_of(&[&root_crl, &issuing_crl], &anchors);
        let p = policy(&[PARTNER_CN], Some(TrustAnchors::new(cas).unwrap()));
        for fail_open in [false, true] {
            let answer = match check(&client.der(), &p, &set, fail_open) {
                Ok(status) => format!("{status:?}"),
                Err(e) => e.code().to_owned(),
            };
            answers.insert(answer);
        }
    }
    assert_eq!(answers.into_iter().collect::<Vec<_>>(), ["revoked"]);
}

#[test]
fn a_pinned_certificate_on_its_cas_crl_is_revoked_even_when_its_chain_fails_for_another_reason() {
    let t = now();
    let root = CertSpec::ca("Pin Root CA", t, 3650).self_signed().unwrap();
    let expired_ca = CertSpec::ca("Expired Issuing CA", t, 1)
        .with_validity(t - 30 * DAY, t - DAY)
        .issued_by(&root)
        .unwrap();
    let server_only_ca = CertSpec::ca("Server-only Issuing CA", t, 365)
        .with_ekus(Some(vec![mtls_handler::tools::pki::Eku::ServerAuth]))
        .issued_by(&root)
        .unwrap();
    for ca in [&expired_ca, &server_only_ca] {
        let pinned_leaf = CertSpec::leaf("pinned.example", t, 30)
            .issued_by(ca)
            .unwrap();
        let anchors = || TrustAnchors::new(vec![root.cert.clone(), ca.cert.clone()]).unwrap();
        let set = set_of(
            &[
                &crl(&root, &[], t - 60, t + DAY),
                &crl(ca, &[&pinned_leaf.cert], t - 60, t + DAY),
            ],
            &anchors(),
        );
        let mut p = policy(&[], Some(anchors()));
        p.thumbprints
            .insert(Thumbprint::of_der(&pinned_leaf.der()).1);
        assert_eq!(
            check(&pinned_leaf.der(), &p, &set, false)
                .unwrap_err()
                .code(),
            "revoked",
            "{:?}",
            ca.cert.subject_name()
        );
    }
}

#[test]
fn an_intermediate_with_a_negative_serial_is_found_on_its_roots_crl() {
    let t = now();
    let root = CertSpec::ca("Negative Root CA", t, 3650)
        .self_signed()
        .unwrap();
    for serial in [-5, -255, -128, -65_536] {
        let issuing = CertSpec::ca("Negative Issuing CA", t, 365)
            .with_signed_serial(serial)
            .issued_by(&root)
            .unwrap();
        let client = CertSpec::leaf(PARTNER_CN, t, 30)
            .issued_by(&issuing)
            .unwrap();
        let anchors = || TrustAnchors::new(vec![root.cert.clone(), issuing.cert.clone()]).unwrap();
        let set = set_of(
            &[
                &crl(&root, &[&issuing.cert], t - 60, t + DAY),
                &crl(&issuing, &[], t - 60, t + DAY),
            ],
            &anchors(),
        );
        let p = policy(&[PARTNER_CN], Some(anchors()));
        assert_eq!(
            check(&client.der(), &p, &set, false).unwrap_err().code(),
            "revoked",
            "serial {serial}"
        );
    }
    // A positive serial with the same magnitude bytes is a different certificate.
    let issuing = CertSpec::ca("Negative Issuing CA", t, 365)
        .with_signed_serial(128)
        .issued_by(&root)
        .unwrap();
    let impostor = CertSpec::ca("Negative Issuing CA", t, 365)
        .with_signed_serial(-128)
        .issued_by(&root)
        .unwrap();
    let client = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&issuing)
        .unwrap();
    let anchors = || TrustAnchors::new(vec![root.cert.clone(), issuing.cert.clone()]).unwrap();
    let set = set_of(
        &[
            &crl(&root, &[&impostor.cert], t - 60, t + DAY),
            &crl(&issuing, &[], t - 60, t + DAY),
        ],
        &anchors(),
    );
    let p = policy(&[PARTNER_CN], Some(anchors()));
    assert_eq!(
        check(&client.der(), &p, &set, false),
        Ok(RevocationStatus::Good)
    );
}

#[test]
fn a_cached_acceptance_ends_when_a_loaded_crl_issued_in_the_future_takes_effect() {
    use mtls_handler::inbound::cache::ValidationCache;
    use mtls_handler::inbound::InboundGate;
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[], t - 60, t + DAY);
    let current = crl(&pki.issuing, &[], t - 60, t + DAY);
    // Already published (clocks differ), in force from t + 100.
    let next = crl(&pki.issuing, &[&client.cert], t + 100, t + DAY);
    let anchors = pki.anchors();
    let set = set_of(&[&root_crl, &current, &next], &anchors);
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let r = Revocation {
        crls: &set,
        fail_open: false,
    };
    let (accepted, _) = validate_with_revocation(&client.der(), &p, Some(&r), t).unwrap();
    assert!(
        accepted.valid_until < t + 100,
        "{} >= {}",
        accepted.valid_until,
        t + 100
    );

    let r = Revocation {
        crls: &set,
        fail_open: true,
    };
    // Fail-open with no CRL in force for the issuer: the acceptance still ends there.
    let only_future = set_of(&[&root_crl, &next], &anchors);
    let open = Revocation {
        crls: &only_future,
        ..r
    };
    let (accepted, status) = validate_with_revocation(&client.der(), &p, Some(&open), t).unwrap();
    assert!(matches!(status, RevocationStatus::UnknownAccepted { .. }));
    assert!(accepted.valid_until < t + 100);

    let gate = InboundGate::with_revocation(p, ValidationCache::new(100, 3600), set, false, false);
    let header = [client.header_value()];
    assert!(gate.check(&header, t).is_ok());
    assert!(gate.check(&header, t + 99).is_ok());
    assert_eq!(gate.check(&header, t + 100).unwrap_err().code(), "revoked");
}

// === the real binary ===

/// `GET /api/cert-info` with the certificate header, through the real curl.
fn cert_info(h: &Handler, cert: &Issued) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-H"])
        .arg(format!("X-ARR-ClientCert: {}", cert.header_value()))
        .arg(h.url("/api/cert-info"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let code: u16 = code.trim().parse().unwrap_or(0);
    (code, serde_json::from_str(body).unwrap_or_default())
}

fn code_of(h: &Handler, cert: &Issued) -> String {
    let (status, body) = cert_info(h, cert);
    if status == 200 {
        "ok".to_owned()
    } else {
        body["code"].as_str().unwrap_or("?").to_owned()
    }
}

/// Polls until `cert` gets `want` (bounded), returning what it got last.
fn eventually(h: &Handler, cert: &Issued, want: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = code_of(h, cert);
        if got == want || start.elapsed() > limit {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pem(crls: &[&X509Crl]) -> Vec<u8> {
    crls.iter().flat_map(|c| c.to_pem().unwrap()).collect()
}

#[test]
fn the_handler_rejects_a_revoked_leaf_and_a_leaf_under_a_revoked_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let good = pki.client(PARTNER_CN);
    let revoked = pki.client(PARTNER_CN);
    let (root_crl, issuing_crl) = current_crls(&pki, &[&revoked]);
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    std::fs::create_dir(dir.path().join("crls")).unwrap();
    write(
        &dir.path().join("crls"),
        "root.crl",
        &root_crl.to_der().unwrap(),
    );
    write(
        &dir.path().join("crls"),
        "issuing.pem",
        &issuing_crl.to_pem().unwrap(),
    );
    let crls = dir.path().join("crls").to_string_lossy().into_owned();

    // A second PKI whose root revoked its issuing CA.
    let other = TestPki::new();
    let under_revoked_ca = other.client(PARTNER_CN);
    let t = now();
    let other_root_crl = crl(&other.root, &[&other.issuing.cert], t - 60, t + DAY);
    let other_issuing_crl = crl(&other.issuing, &[], t - 60, t + DAY);
    let other_ca = write(dir.path(), "other-ca.pem", &other.ca_bundle_pem());
    let other_crls = write(
        dir.path(),
        "other.pem",
        &pem(&[&other_root_crl, &other_issuing_crl]),
    );

    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
    ]);
    assert_eq!(code_of(&h, &good), "ok");
    let (status, body) = cert_info(&h, &revoked);
    assert_eq!(status, 403);
    assert_eq!(body["code"], "revoked");
    assert_eq!(body["error"], "client certificate has been revoked");
    drop(h);

    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &other_ca),
        ("CLIENT_CERT_CRL_PATH", &other_crls),
    ]);
    assert_eq!(code_of(&h, &under_revoked_ca), "revoked");
}

#[test]
fn the_handler_checks_a_leaf_against_its_own_crl_partition_in_the_crl_directory() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let (part1, part2) = (
        "http://crl.example/part1.crl",
        "http://crl.example/part2.crl",
    );
    let listed = client_in_partition(&pki, part1);
    let elsewhere = client_in_partition(&pki, part2);
    let t = now();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let crls = dir.path().join("crls");
    std::fs::create_dir(&crls).unwrap();
    write(
        &crls,
        "root.pem",
        &pem(&[&crl(&pki.root, &[], t - 60, t + DAY)]),
    );
    let p1 = crl_scoped(
        &pki.issuing,
        &[&listed.cert],
        t - 120,
        t + DAY,
        &Idp::partition(part1),
    );
    let p2 = crl_scoped(&pki.issuing, &[], t - 60, t + DAY, &Idp::partition(part2));
    write(&crls, "part1.pem", &pem(&[&p1]));
    write(&crls, "part2.pem", &pem(&[&p2]));
    let crls = crls.to_string_lossy().into_owned();
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
    ]);
    assert_eq!(code_of(&h, &listed), "revoked");
    assert_eq!(code_of(&h, &elsewhere), "ok");
    assert_eq!(code_of(&h, &pki.client(PARTNER_CN)), "revocation_unknown");
}

#[test]
fn the_handler_is_fail_closed_without_a_crl_and_fail_open_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    // Only the root's CRL: nothing speaks for certificates of the issuing CA.
    let only_root = write(
        dir.path(),
        "root.pem",
        &pem(&[&crl(&pki.root, &[], t - 60, t + DAY)]),
    );
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &only_root),
    ]);
    assert_eq!(code_of(&h, &client), "revocation_unknown");
    drop(h);

    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &only_root),
        ("CLIENT_CERT_REVOCATION_FAIL_OPEN", "true"),
    ]);
    assert_eq!(code_of(&h, &client), "ok");
    assert!(h.log_text().contains("revocation status is unknown"));
}

#[test]
fn the_handler_treats_a_crl_past_its_next_update_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let crls = write(
        dir.path(),
        "crls.pem",
        &pem(&[
            &crl(&pki.root, &[], t - 60, t + DAY),
            &crl(&pki.issuing, &[], t - 3 * DAY, t - DAY),
        ]),
    );
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
    ]);
    assert_eq!(code_of(&h, &client), "revocation_unknown");
}

#[test]
fn a_replaced_crl_file_revokes_within_the_check_interval_and_a_corrupt_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let (root_crl, issuing_crl) = current_crls(&pki, &[]);
    let crls = write(dir.path(), "crls.pem", &pem(&[&root_crl, &issuing_crl]));
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ("RUST_LOG", "info"),
    ]);
    // Accepted, and therefore cached.
    assert_eq!(code_of(&h, &client), "ok");
    assert_eq!(code_of(&h, &client), "ok");

    let (root_crl, issuing_crl) = current_crls(&pki, &[&client]);
    let tmp = write(dir.path(), ".next", &pem(&[&root_crl, &issuing_crl]));
    std::fs::rename(&tmp, &crls).unwrap();
    assert_eq!(
        eventually(&h, &client, "revoked", Duration::from_secs(15)),
        "revoked",
        "the new CRL must win over the cached acceptance"
    );

    std::fs::write(
        &crls,
        b"-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let start = Instant::now();
    while !h.log_text().contains("keeping the previous CRLs")
        && start.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(h.log_text().contains("keeping the previous CRLs"));
    assert_eq!(
        code_of(&h, &client),
        "revoked",
        "the previous good set stays in force"
    );
}

#[test]
fn a_corrupt_crl_file_at_start_up_fails_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let bad = write(dir.path(), "bad.crl", b"\x30\x82garbage");
    let (status, _, err) = common::run_to_exit(
        &[
            ("CLIENT_CERT_CA_PATH", &ca),
            ("CLIENT_CERT_CRL_PATH", &bad),
            (
                "FUNCTIONS_CUSTOMHANDLER_PORT",
                &common::free_port().to_string(),
            ),
        ],
        &[],
    );
    assert!(!status.success());
    assert!(err.contains("CLIENT_CERT_CRL_PATH"), "{err}");

    let (status, _, err) = common::run_to_exit(
        &[
            ("CLIENT_CERT_CRL_PATH", &bad),
            (
                "FUNCTIONS_CUSTOMHANDLER_PORT",
                &common::free_port().to_string(),
            ),
        ],
        &[],
    );
    assert!(!status.success());
    assert!(
        err.contains("CLIENT_CERT_CRL_PATH") && err.contains("CLIENT_CERT_CA_PATH"),
        "{err}"
    );
}

// === fetching from distribution points ===

/// What the loopback CRL server answers on one path.
#[derive(Clone, Default)]
struct Route {
    body: Vec<u8>,
    delay: Duration,
    /// Leave Content-Length out (the body ends when the connection closes).
    no_length: bool,
    /// Sent as `ETag`; a request with a matching `If-None-Match` gets 304.
    etag: Option<String>,
    /// Hold every answer until [`CrlServer::release`] (bounded at 60 s).
    held: bool,
}

/// Requests seen and answers being held, shared with the server threads.
#[derive(Default)]
struct Seen {
    /// Every request head, in arrival order.
    requests: Vec<String>,
    /// Requests received on held routes and not answered yet.
    holding: usize,
    released: bool,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving fixed bodies, as a CA's CRL host does.
struct CrlServer {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    seen: Arc<(Mutex<Seen>, std::sync::Condvar)>,
}

impl CrlServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let seen: Arc<(Mutex<Seen>, std::sync::Condvar)> = Arc::default();
        let (shared, shared_seen) = (routes.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (routes, seen) = (shared.clone(), shared_seen.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let route = routes.lock().unwrap().get(&path).cloned();
                    let (lock, changed) = &*seen;
                    lock.lock().unwrap().requests.push(text.clone());
                    changed.notify_all();
                    let Some(route) = route else {
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    };
                    if route.held {
                        let mut s = lock.lock().unwrap();
                        s.holding += 1;
                        changed.notify_all();
                        let (mut s, _) = changed
                            .wait_timeout_while(s, Duration::from_secs(60), |s| !s.released)
                            .unwrap();
                        s.holding -= 1;
                    }
                    std::thread::sleep(route.delay);
                    let lower = text.to_ascii_lowercase();
                    if let Some(etag) = &route.etag {
                        if lower.contains(&format!("if-none-match: {}", etag.to_ascii_lowercase()))
                        {
                            let _ = stream.write_all(
                                format!(
                                    "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                                )
                                .as_bytes(),
                            );
                            return;
                        }
                    }
                    let mut head = "HTTP/1.1 200 OK\r\nConnection: close\r\n".to_owned();
                    if let Some(etag) = &route.etag {
                        head.push_str(&format!("ETag: {etag}\r\n"));
                    }
                    if !route.no_length {
                        head.push_str(&format!("Content-Length: {}\r\n", route.body.len()));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&route.body);
                });
            }
        });
        Self { port, routes, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn serve(&self, path: &str, body: Vec<u8>) {
        self.serve_route(
            path,
            Route {
                body,
                ..Route::default()
            },
        );
    }

    fn serve_route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), route);
    }

    /// Waits (at most `limit`) until `done` holds for what the server has seen.
    fn wait_for(&self, limit: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let (lock, changed) = &*self.seen;
        let s = lock.lock().unwrap();
        let (s, _) = changed.wait_timeout_while(s, limit, |s| !done(s)).unwrap();
        done(&s)
    }

    fn holding(&self) -> usize {
        self.seen.0.lock().unwrap().holding
    }

    /// Lets every held answer go, now and later.
    fn release(&self) {
        let (lock, changed) = &*self.seen;
        lock.lock().unwrap().released = true;
        changed.notify_all();
    }
}

/// A root, an issuing CA whose CDP is the root's CRL on `server`, and a way to issue
/// leaves whose CDP is the issuing CA's CRL on `server`.
struct CdpPki {
    root: Issued,
    issuing: Issued,
    leaf_cdp: String,
}

impl CdpPki {
    fn new(server: &CrlServer) -> Self {
        let t = now();
        let root = CertSpec::ca("CDP Root CA", t, 3650).self_signed().unwrap();
        let issuing = CertSpec::ca("CDP Issuing CA", t, 1825)
            .with_crl_distribution_point(&server.url("/root.crl"))
            .issued_by(&root)
            .unwrap();
        Self {
            root,
            issuing,
            leaf_cdp: server.url("/issuing.crl"),
        }
    }

    fn client(&self) -> Issued {
        CertSpec::leaf(PARTNER_CN, now(), 365)
            .with_crl_distribution_point(&self.leaf_cdp)
            .issued_by(&self.issuing)
            .unwrap()
    }

    fn ca_bundle(&self) -> Vec<u8> {
        let mut pem = self.root.cert_pem().unwrap();
        pem.extend(self.issuing.cert_pem().unwrap());
        pem
    }
}

#[test]
fn crls_are_fetched_from_the_distribution_points_and_revocations_take_effect() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let good = pki.client();
    let revoked = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    server.serve(
        "/issuing.crl",
        crl(&pki.issuing, &[&revoked.cert], t - 60, t + DAY)
            .to_der()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_FETCH", "true"),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ("RUST_LOG", "info"),
    ]);
    // The first request learns the leaf's distribution point; the fetch follows.
    assert_eq!(eventually(&h, &good, "ok", Duration::from_secs(15)), "ok");
    assert_eq!(code_of(&h, &revoked), "revoked");
    assert!(h.log_text().contains("CRL downloaded"));
}

#[test]
fn a_ca_that_never_answers_leaves_the_status_unknown_and_the_download_times_out() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let client = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    server.serve_route(
        "/issuing.crl",
        Route {
            body: crl(&pki.issuing, &[], t - 60, t + DAY).to_der().unwrap(),
            held: true,
            ..Route::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_FETCH", "true"),
        ("CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS", "1"),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ("RUST_LOG", "info"),
    ]);
    assert_eq!(code_of(&h, &client), "revocation_unknown");
    let start = Instant::now();
    while !h.log_text().contains("CRL download failed") && start.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = h.log_text();
    assert!(log.contains("CRL download failed"), "{log}");
    assert!(log.contains("issuing.crl"));
    assert_eq!(code_of(&h, &client), "revocation_unknown");
    server.release();
}

#[test]
fn a_request_is_answered_while_the_ca_is_still_holding_the_crl_download() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let client = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    server.serve_route(
        "/issuing.crl",
        Route {
            body: crl(&pki.issuing, &[], t - 60, t + DAY).to_der().unwrap(),
            held: true,
            ..Route::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_FETCH", "true"),
        ("CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS", "60"),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
    ]);
    // The first request teaches the handler the leaf's distribution point.
    assert_eq!(code_of(&h, &client), "revocation_unknown");
    assert!(
        server.wait_for(Duration::from_secs(15), |s| s.holding > 0),
        "the handler never asked for the issuing CA's CRL"
    );
    // The download is in progress (the CA holds its answer): requests are answered anyway.
    for _ in 0..3 {
        assert_eq!(code_of(&h, &client), "revocation_unknown");
        assert_eq!(server.holding(), 1, "answered only after the CA let go");
    }
    server.release();
    assert_eq!(eventually(&h, &client, "ok", Duration::from_secs(15)), "ok");
}

#[test]
fn fetched_crls_are_checked_again_every_interval_with_a_conditional_get() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let client = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    let issuing = |revoked: &[&openssl::x509::X509], etag: &str| Route {
        body: crl(&pki.issuing, revoked, t - 60, t + 7 * DAY)
            .to_der()
            .unwrap(),
        etag: Some(etag.to_owned()),
        ..Route::default()
    };
    server.serve_route("/issuing.crl", issuing(&[], "\"v1\""));
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_FETCH", "true"),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
    ]);
    assert_eq!(eventually(&h, &client, "ok", Duration::from_secs(15)), "ok");
    // Asked again long before the CRL's nextUpdate, naming the version it holds.
    assert!(
        server.wait_for(Duration::from_secs(15), |s| s.requests.iter().any(|r| {
            r.starts_with("GET /issuing.crl")
                && r.to_ascii_lowercase().contains("if-none-match: \"v1\"")
        })),
        "no conditional re-fetch"
    );
    assert_eq!(code_of(&h, &client), "ok", "a 304 keeps the CRL");
    // The CA republishes early: the revocation is seen within the check interval.
    server.serve_route("/issuing.crl", issuing(&[&client.cert], "\"v2\""));
    assert_eq!(
        eventually(&h, &client, "revoked", Duration::from_secs(15)),
        "revoked"
    );
}

#[test]
fn an_oversized_crl_download_is_abandoned_with_or_without_a_declared_length() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let client = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    let huge = vec![0x30; mtls_handler::inbound::crl_store::MAX_CRL_BYTES + 1024];
    for no_length in [false, true] {
        server.serve_route(
            "/issuing.crl",
            Route {
                body: huge.clone(),
                no_length,
                ..Route::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
        let h = Handler::start(&[
            ("CLIENT_CERT_CA_PATH", &ca),
            ("CLIENT_CERT_CRL_FETCH", "true"),
            ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
            ("RUST_LOG", "info"),
        ]);
        assert_eq!(code_of(&h, &client), "revocation_unknown");
        let start = Instant::now();
        while !h.log_text().contains("larger than") && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            h.log_text().contains("larger than"),
            "no_length={no_length}"
        );
        assert_eq!(code_of(&h, &client), "revocation_unknown");
    }
}
