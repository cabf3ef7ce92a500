//! Path validation as strict as the strictest peers, with one verdict per certificate
//! (issue 11). Every certificate is generated here; each odd one is checked twice: under a
//! CA the direct route verifies, and under the same CA carrying a name constraint that
//! constrains nothing the test uses but sends every chain through OpenSSL's verifier. The
//! two verdicts must be the same.

mod common;

use common::{now, policy, run_to_exit, write, Handler, PARTNER_CN};
use mtls_handler::inbound::client_cert::{
    validate, validate_with_revocation, AnchorOptions, Crl, CrlError, CrlSet, MatchedBy,
    Revocation, RevocationStatus, Route, TrustAnchors, TrustError, WeakCa,
};
use mtls_handler::tools::pki::{generate_key, CertSpec, Eku, Issued, KeyKind, SigDigest};
use openssl::nid::Nid;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A name constraint on URIs that no certificate here has: it changes no verdict by
/// itself, but a CA carrying it is verified by OpenSSL only.
const FORCE_OPENSSL: &str = "critical,excluded;URI:excluded.invalid";

const UNKNOWN_OID: &str = "1.3.6.1.4.1.99999.1";
const SAN: &str = "2.5.29.17";
const KEY_USAGE: &str = "2.5.29.15";
const BASIC_CONSTRAINTS: &str = "2.5.29.19";
const AKI: &str = "2.5.29.35";

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn san_dns(names: &[&str]) -> Vec<u8> {
    let entries: Vec<u8> = names.iter().flat_map(|n| tlv(0x82, n.as_bytes())).collect();
    tlv(0x30, &entries)
}

/// What a validation said: "accepted" or the rejection code.
fn outcome(der: &[u8], anchors: TrustAnchors) -> String {
    match validate(der, &policy(&[PARTNER_CN], Some(anchors)), now()) {
        Ok(_) => "accepted".to_owned(),
        Err(e) => e.code().to_owned(),
    }
}

/// The verdict on a leaf made by `leaf(issuer)` under the CA `ca`, checked on both routes
/// (asserted equal); the leaf key is the same for both.
fn verdict(ca: CertSpec, leaf: impl Fn(&Issued) -> CertSpec) -> String {
    let plain = ca.self_signed().unwrap();
    let forced = ca
        .clone()
        .with_name_constraints(FORCE_OPENSSL)
        .self_signed()
        .unwrap();
    let direct_anchors = TrustAnchors::new(vec![plain.cert.clone()]).unwrap();
    let openssl_anchors = TrustAnchors::new(vec![forced.cert.clone()]).unwrap();
    let spec = leaf(&plain);
    let key = generate_key(spec.key).unwrap();
    let via_direct = spec.issued_by_with_key(&plain, key.clone()).unwrap().der();
    let via_openssl = leaf(&forced)
        .issued_by_with_key(&forced, key)
        .unwrap()
        .der();
    assert_eq!(openssl_anchors.route(&via_openssl), Route::OpenSsl);
    let direct_route = direct_anchors.route(&via_direct);
    let a = outcome(&via_direct, direct_anchors);
    let b = outcome(&via_openssl, openssl_anchors);
    assert_eq!(a, b, "direct route said {a}, OpenSSL's verifier said {b}");
    if a == "accepted" {
        // Both routes really were taken.
        assert_eq!(direct_route, Route::Direct);
    }
    a
}

fn ca() -> CertSpec {
    CertSpec::ca("Path CA", now(), 365)
}

fn leaf() -> CertSpec {
    CertSpec::leaf(PARTNER_CN, now(), 30)
}

// === one verdict per certificate: what the direct route used to accept alone ===

#[test]
fn a_leaf_without_an_authority_key_identifier_is_accepted_on_both_routes() {
    assert_eq!(
        verdict(ca(), |_| leaf().without_authority_key_id()),
        "accepted"
    );
}

#[test]
fn a_ca_without_a_subject_key_identifier_is_accepted_on_both_routes() {
    let v = verdict(ca().without(Nid::SUBJECT_KEY_IDENTIFIER), |_| {
        leaf().without_authority_key_id()
    });
    assert_eq!(v, "accepted");
}

#[test]
fn a_ca_with_an_empty_subject_vouches_for_nothing_on_either_route() {
    // The leaf's issuer is then empty too, which RFC 5280 forbids in the leaf itself.
    assert_eq!(verdict(ca().with_subject(vec![]), |_| leaf()), "malformed");
    let anchors =
        TrustAnchors::new(vec![ca().with_subject(vec![]).self_signed().unwrap().cert]).unwrap();
    assert!(
        anchors.defects()[0].1.contains("empty"),
        "{:?}",
        anchors.defects()
    );
}

#[test]
fn a_ca_whose_basic_constraints_are_not_critical_vouches_for_nothing_on_either_route() {
    let ca = ca().without(Nid::BASIC_CONSTRAINTS).with_raw_extension(
        BASIC_CONSTRAINTS,
        false,
        &[0x30, 0x03, 0x01, 0x01, 0xFF],
    );
    assert_eq!(verdict(ca, |_| leaf()), "untrusted_chain");
}

#[test]
fn a_ca_with_a_critical_authority_key_identifier_vouches_for_nothing_on_either_route() {
    let ca = ca().with_raw_extension(AKI, true, &tlv(0x30, &tlv(0x80, &[7; 20])));
    assert_eq!(verdict(ca, |_| leaf()), "untrusted_chain");
}

#[test]
fn a_leaf_that_is_not_a_ca_but_asserts_key_cert_sign_is_malformed_on_both_routes() {
    // keyUsage digitalSignature + keyCertSign.
    let v = verdict(ca(), |_| {
        leaf().without(Nid::KEY_USAGE).with_raw_extension(
            KEY_USAGE,
            true,
            &[0x03, 0x02, 0x02, 0x84],
        )
    });
    assert_eq!(v, "malformed");
}

#[test]
fn a_leaf_key_with_explicit_curve_parameters_is_weak_on_both_routes() {
    let v = verdict(ca(), |_| {
        leaf().with_key(KeyKind::EcExplicit(Nid::X9_62_PRIME256V1))
    });
    assert_eq!(v, "weak_key");
}

#[test]
fn the_reason_for_a_defective_ca_is_the_same_on_both_routes() {
    let spec = ca().without(Nid::BASIC_CONSTRAINTS).with_raw_extension(
        BASIC_CONSTRAINTS,
        false,
        &[0x30, 0x03, 0x01, 0x01, 0xFF],
    );
    let mut reasons = Vec::new();
    for ca_spec in [spec.clone(), spec.with_name_constraints(FORCE_OPENSSL)] {
        let ca = ca_spec.self_signed().unwrap();
        let client = leaf().issued_by(&ca).unwrap();
        let anchors = TrustAnchors::new(vec![ca.cert.clone()]).unwrap();
        match validate(&client.der(), &policy(&[PARTNER_CN], Some(anchors)), now()) {
            Err(mtls_handler::inbound::client_cert::CertError::UntrustedChain {
                reason, ..
            }) => reasons.push(reason),
            other => panic!("expected untrusted_chain, got {other:?}"),
        }
    }
    assert!(reasons[0].contains("basicConstraints"), "{}", reasons[0]);
    assert_eq!(reasons[0], reasons[1]);
}

#[test]
fn an_authority_key_identifier_naming_another_issuer_serial_is_refused_on_both_routes() {
    // Same key and name as the trusted CA, another serial: a leaf whose AKI names that
    // other certificate (issuer + serial) is not issued by the trusted one (OpenSSL's
    // X509_check_akid), although the signature verifies with the trusted CA's key.
    for nc in [None, Some(FORCE_OPENSSL)] {
        let mut spec = ca().with_serial(&[0x11]);
        if let Some(nc) = nc {
            spec = spec.with_name_constraints(nc);
        }
        let trusted = spec.self_signed().unwrap();
        let twin = spec
            .clone()
            .with_serial(&[0x22])
            .issued_by_with_key(&trusted, trusted.key.clone())
            .unwrap();
        let aki = |of: &Issued| {
            let keyid = tlv(0x80, of.cert.subject_key_id().unwrap().as_slice());
            let issuer = tlv(0xA1, &tlv(0xA4, &of.cert.issuer_name().to_der().unwrap()));
            let serial = tlv(0x82, &of.cert.serial_number().to_bn().unwrap().to_vec());
            tlv(0x30, &[keyid, issuer, serial].concat())
        };
        let anchors = || TrustAnchors::new(vec![trusted.cert.clone()]).unwrap();
        for (names, expected) in [(&trusted, "accepted"), (&twin, "untrusted_chain")] {
            let client = leaf()
                .without_authority_key_id()
                .with_raw_extension(AKI, false, &aki(names))
                .issued_by(&trusted)
                .unwrap();
            assert_eq!(outcome(&client.der(), anchors()), expected, "{nc:?}");
        }
    }
}

// === strict decoding ===

#[test]
fn a_leaf_with_two_extensions_of_the_same_type_is_malformed() {
    let v = verdict(ca(), |_| {
        leaf()
            .with_dns_names(&["a.partner.example"])
            .with_raw_extension(SAN, false, &san_dns(&["b.partner.example"]))
    });
    assert_eq!(v, "malformed");
}

#[test]
fn a_leaf_whose_subject_alt_name_is_not_valid_der_is_malformed_with_the_reason() {
    // The inner dNSName claims 9 bytes and has 3.
    let bad = [0x30, 0x05, 0x82, 0x09, b'a', b'b', b'c'];
    assert_eq!(
        verdict(ca(), |_| leaf().with_raw_extension(SAN, false, &bad)),
        "malformed"
    );
    let issuer = ca().self_signed().unwrap();
    let client = leaf()
        .with_raw_extension(SAN, false, &bad)
        .issued_by(&issuer)
        .unwrap();
    let anchors = TrustAnchors::new(vec![issuer.cert.clone()]).unwrap();
    let err = validate(&client.der(), &policy(&[PARTNER_CN], Some(anchors)), now()).unwrap_err();
    assert!(err.to_string().contains("subjectAltName"), "{err}");
}

#[test]
fn extension_values_with_trailing_bytes_or_invalid_entries_are_malformed() {
    let mut trailing = san_dns(&["a.partner.example"]);
    trailing.extend([0x05, 0x00]);
    let five_byte_ip = tlv(0x30, &tlv(0x87, &[10, 0, 0, 1, 9]));
    let empty_san = vec![0x30, 0x00];
    for value in [trailing, five_byte_ip, empty_san] {
        let v = verdict(ca(), |_| leaf().with_raw_extension(SAN, false, &value));
        assert_eq!(v, "malformed", "{value:02x?}");
    }
}

#[test]
fn a_leaf_with_an_unknown_critical_extension_is_malformed_on_both_routes() {
    let v = verdict(ca(), |_| {
        leaf().with_raw_extension(UNKNOWN_OID, true, &[0x05, 0x00])
    });
    assert_eq!(v, "malformed");
    // Not critical: ignored, as RFC 5280 allows.
    let v = verdict(ca(), |_| {
        leaf().with_raw_extension(UNKNOWN_OID, false, &[0x05, 0x00])
    });
    assert_eq!(v, "accepted");
}

#[test]
fn a_ca_with_a_duplicate_or_unknown_critical_extension_vouches_for_nothing() {
    let duplicate = ca().with_raw_extension(KEY_USAGE, true, &[0x03, 0x02, 0x01, 0x06]);
    let unknown = ca().with_raw_extension(UNKNOWN_OID, true, &[0x05, 0x00]);
    for spec in [duplicate, unknown] {
        assert_eq!(verdict(spec, |_| leaf()), "untrusted_chain");
    }
}

#[test]
fn a_critical_authority_key_identifier_or_a_path_length_in_a_leaf_is_malformed() {
    let critical_aki = |issuer: &Issued| {
        let keyid = issuer.cert.subject_key_id().unwrap().as_slice().to_vec();
        leaf().without_authority_key_id().with_raw_extension(
            AKI,
            true,
            &tlv(0x30, &tlv(0x80, &keyid)),
        )
    };
    assert_eq!(verdict(ca(), critical_aki), "malformed");
    let path_len = |_: &Issued| {
        leaf().without(Nid::BASIC_CONSTRAINTS).with_raw_extension(
            BASIC_CONSTRAINTS,
            true,
            &[0x30, 0x03, 0x02, 0x01, 0x00],
        )
    };
    assert_eq!(verdict(ca(), path_len), "malformed");
}

#[test]
fn a_ca_whose_key_usage_lacks_key_cert_sign_vouches_for_nothing() {
    // keyUsage digitalSignature + cRLSign.
    let spec =
        ca().without(Nid::KEY_USAGE)
            .with_raw_extension(KEY_USAGE, true, &[0x03, 0x02, 0x01, 0x82]);
    assert_eq!(verdict(spec, |_| leaf()), "untrusted_chain");
}

// === profile ===

#[test]
fn serial_numbers_longer_than_twenty_octets_are_malformed() {
    assert_eq!(
        verdict(ca(), |_| leaf().with_serial(&[0x7F; 21])),
        "malformed"
    );
    assert_eq!(
        verdict(ca(), |_| leaf().with_serial(&[0x7F; 20])),
        "accepted"
    );
    // Twenty octets whose top bit is set need a sign byte in DER: still twenty octets.
    assert_eq!(
        verdict(ca(), |_| leaf().with_serial(&[0x80; 20])),
        "accepted"
    );
}

#[test]
fn version_1_and_2_certificates_with_extensions_are_malformed() {
    for version in [0, 1] {
        let v = verdict(ca(), |_| leaf().with_version(version));
        assert_eq!(v, "malformed", "version field {version}");
    }
}

#[test]
fn a_version_1_leaf_without_extensions_is_still_accepted() {
    // What `openssl x509 -req` made without an extension file before OpenSSL 3.
    let v = verdict(ca(), |_| {
        leaf()
            .with_version(0)
            .with_ekus(None)
            .without(Nid::BASIC_CONSTRAINTS)
            .without(Nid::KEY_USAGE)
            .without(Nid::SUBJECT_KEY_IDENTIFIER)
            .without_authority_key_id()
    });
    assert_eq!(v, "accepted");
}

#[test]
fn name_constraints_in_a_leaf_are_malformed() {
    let v = verdict(ca(), |_| {
        leaf().with_name_constraints("critical,permitted;DNS:partner.example")
    });
    assert_eq!(v, "malformed");
}

#[test]
fn any_extended_key_usage_alone_is_not_client_auth_but_beside_client_auth_it_is() {
    assert_eq!(
        verdict(ca(), |_| leaf().with_ekus(Some(vec![Eku::Any]))),
        "not_for_client_auth"
    );
    assert_eq!(
        verdict(ca(), |_| leaf()
            .with_ekus(Some(vec![Eku::Any, Eku::ClientAuth]))),
        "accepted"
    );
}

#[test]
fn malformed_san_names_are_refused_under_a_ca_that_constrains_their_kind() {
    let t = now();
    let dns_ca = CertSpec::ca("DNS-constrained CA", t, 365)
        .with_name_constraints("critical,permitted;DNS:partner.example")
        .self_signed()
        .unwrap();
    let email_ca = CertSpec::ca("Email-constrained CA", t, 365)
        .with_name_constraints("critical,permitted;email:partner.example")
        .self_signed()
        .unwrap();
    let check = |ca: &Issued, san: Vec<u8>| {
        let client = CertSpec::leaf("api.partner.example", t, 30)
            .with_raw_extension(SAN, false, &san)
            .issued_by(ca)
            .unwrap();
        let anchors = TrustAnchors::new(vec![ca.cert.clone()]).unwrap();
        validate(
            &client.der(),
            &policy(&["api.partner.example"], Some(anchors)),
            t,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    assert_eq!(check(&dns_ca, san_dns(&["api.partner.example"])), Ok(()));
    let err = check(&dns_ca, san_dns(&["api..partner.example"])).unwrap_err();
    assert!(err.contains("not a valid host name"), "{err}");
    let email = |m: &str| tlv(0x30, &tlv(0x81, m.as_bytes()));
    assert_eq!(check(&email_ca, email("ops@partner.example")), Ok(()));
    let err = check(&email_ca, email("ops@@partner.example")).unwrap_err();
    assert!(err.contains("not a valid address"), "{err}");
}

// === key policy ===

#[test]
fn weak_leaf_keys_and_signatures_are_refused_with_weak_key_and_strong_ones_accepted() {
    let weak = [
        leaf().with_key(KeyKind::Rsa(1024)),
        leaf().with_key(KeyKind::Ec(Nid::X9_62_PRIME192V1)),
        leaf().with_key(KeyKind::Dsa(1024)),
        leaf().with_digest(SigDigest::Sha1),
    ];
    for spec in weak {
        let what = format!("{:?} {:?}", spec.key, spec.digest);
        assert_eq!(verdict(ca(), |_| spec.clone()), "weak_key", "{what}");
    }
    // ECDSA has no MD5 variant: an RSA CA signs with md5WithRSAEncryption.
    let rsa_ca = ca().with_key(KeyKind::Rsa2048);
    assert_eq!(
        verdict(rsa_ca, |_| leaf().with_digest(SigDigest::Md5)),
        "weak_key"
    );
    let strong = [
        leaf().with_key(KeyKind::Rsa2048),
        leaf().with_key(KeyKind::Ec(Nid::SECP384R1)),
        leaf().with_key(KeyKind::Ec(Nid::SECP521R1)),
        leaf().with_key(KeyKind::Ed25519),
    ];
    for spec in strong {
        let what = format!("{:?}", spec.key);
        assert_eq!(verdict(ca(), |_| spec.clone()), "accepted", "{what}");
    }
}

#[test]
fn a_weak_pinned_leaf_is_refused_too_and_allowed_only_by_the_setting() {
    let cert = leaf().with_key(KeyKind::Rsa(1024)).self_signed().unwrap();
    let mut p =
        common::pinned(&[mtls_handler::inbound::client_cert::Thumbprint::of_der(&cert.der()).1]);
    let err = validate(&cert.der(), &p, now()).unwrap_err();
    assert_eq!(err.code(), "weak_key");
    assert!(err.to_string().contains("1024 bits"), "{err}");
    p.allow_weak_keys = true;
    assert_eq!(
        validate(&cert.der(), &p, now()).unwrap().matched_by,
        MatchedBy::Thumbprint
    );
}

#[test]
fn explicit_curve_parameters_are_refused_even_when_weak_keys_are_allowed() {
    let cert = leaf()
        .with_key(KeyKind::EcExplicit(Nid::X9_62_PRIME256V1))
        .self_signed()
        .unwrap();
    let mut p =
        common::pinned(&[mtls_handler::inbound::client_cert::Thumbprint::of_der(&cert.der()).1]);
    p.allow_weak_keys = true;
    assert_eq!(
        validate(&cert.der(), &p, now()).unwrap_err().code(),
        "weak_key"
    );
}

#[test]
fn a_weak_ca_fails_the_build_names_the_certificate_and_is_skipped_or_kept_on_request() {
    let weak = CertSpec::ca("Legacy RSA-1024 CA", now(), 365)
        .with_key(KeyKind::Rsa(1024))
        .self_signed()
        .unwrap();
    let good = ca().self_signed().unwrap();
    let certs = || vec![weak.cert.clone(), good.cert.clone()];
    let err = TrustAnchors::new(certs()).unwrap_err();
    assert!(matches!(err, TrustError::WeakKey { .. }), "{err:?}");
    assert!(err.to_string().contains("Legacy RSA-1024 CA"), "{err}");
    let skip = AnchorOptions {
        allow_weak_keys: false,
        weak_ca: WeakCa::Skip,
    };
    let (anchors, report) = TrustAnchors::build(certs(), skip).unwrap();
    assert_eq!(anchors.len(), 1);
    assert_eq!((report.len(), report[0].kept), (1, false));
    let client = leaf().issued_by(&weak).unwrap();
    assert_eq!(outcome(&client.der(), anchors), "untrusted_chain");
    let allow = AnchorOptions {
        allow_weak_keys: true,
        weak_ca: WeakCa::Refuse,
    };
    let (anchors, report) = TrustAnchors::build(certs(), allow).unwrap();
    assert_eq!((anchors.len(), report[0].kept), (2, true));
    let mut p = policy(&[PARTNER_CN], Some(anchors));
    p.allow_weak_keys = true;
    assert!(validate(&client.der(), &p, now()).is_ok());
}

#[test]
fn a_sha1_self_signature_on_a_root_is_not_relied_on_but_an_intermediates_is() {
    let root = ca().with_digest(SigDigest::Sha1).self_signed().unwrap();
    assert!(TrustAnchors::new(vec![root.cert.clone()]).is_ok());
    let intermediate = CertSpec::ca("SHA-1 Intermediate", now(), 365)
        .with_digest(SigDigest::Sha1)
        .issued_by(&root)
        .unwrap();
    let err = TrustAnchors::new(vec![root.cert.clone(), intermediate.cert.clone()]).unwrap_err();
    assert!(err.to_string().contains("SHA-1"), "{err}");
}

#[test]
fn the_real_handler_refuses_to_start_with_a_weak_ca_naming_the_setting_and_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let weak = CertSpec::ca("Legacy DSA CA", now(), 365)
        .with_key(KeyKind::Dsa(1024))
        .self_signed()
        .unwrap();
    let ca = write(dir.path(), "ca.pem", &weak.cert_pem().unwrap());
    let port = common::free_port().to_string();
    let (status, _, err) = run_to_exit(
        &[
            ("CLIENT_CERT_CA_PATH", ca.as_str()),
            ("FUNCTIONS_CUSTOMHANDLER_PORT", port.as_str()),
        ],
        &[],
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("CLIENT_CERT_CA_PATH"), "{err}");
    assert!(err.contains("Legacy DSA CA"), "{err}");
}

#[tokio::test]
async fn with_the_setting_the_real_handler_warns_loudly_and_accepts_a_legacy_partner() {
    let dir = tempfile::tempdir().unwrap();
    let legacy_ca = CertSpec::ca("Legacy CA", now(), 365)
        .with_key(KeyKind::Rsa(1024))
        .self_signed()
        .unwrap();
    let client = leaf()
        .with_key(KeyKind::Rsa(1024))
        .issued_by(&legacy_ca)
        .unwrap();
    let ca = write(dir.path(), "ca.pem", &legacy_ca.cert_pem().unwrap());
    let get = |h: &Handler| {
        let url = h.url("/api/cert-info");
        let value = client.header_value();
        async move {
            let res = reqwest::Client::new()
                .get(url)
                .header("X-ARR-ClientCert", value)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body)
        }
    };
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", ca.as_str()),
        ("CLIENT_CERT_ALLOW_WEAK_KEYS", "true"),
        ("ALLOWED_CLIENT_CERT_COMMON_NAMES", PARTNER_CN),
    ]);
    let (status, _) = get(&h).await;
    assert_eq!(status, 200);
    let log = h.log_text();
    assert!(log.contains("CLIENT_CERT_ALLOW_WEAK_KEYS"), "{log}");
    assert!(log.contains("INSECURE"), "{log}");
    drop(h);

    // Without it, the same partner under a strong CA gets 403 weak_key.
    let strong_ca = ca_issuing_rsa1024_leaf(&dir);
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", strong_ca.0.as_str()),
        ("ALLOWED_CLIENT_CERT_COMMON_NAMES", PARTNER_CN),
    ]);
    let res = reqwest::Client::new()
        .get(h.url("/api/cert-info"))
        .header("X-ARR-ClientCert", strong_ca.1)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "weak_key");
}

#[tokio::test]
async fn a_ca_that_breaks_the_profile_is_logged_at_start_up_and_its_partners_get_untrusted_chain() {
    let dir = tempfile::tempdir().unwrap();
    let bad_ca = ca()
        .without(Nid::BASIC_CONSTRAINTS)
        .with_raw_extension(BASIC_CONSTRAINTS, false, &[0x30, 0x03, 0x01, 0x01, 0xFF])
        .self_signed()
        .unwrap();
    let client = leaf().issued_by(&bad_ca).unwrap();
    let path = write(dir.path(), "ca.pem", &bad_ca.cert_pem().unwrap());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", path.as_str()),
        ("ALLOWED_CLIENT_CERT_COMMON_NAMES", PARTNER_CN),
    ]);
    let res = reqwest::Client::new()
        .get(h.url("/api/cert-info"))
        .header("X-ARR-ClientCert", client.header_value())
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "untrusted_chain");
    let log = h.log_text();
    assert!(log.contains("breaks the X.509 profile"), "{log}");
    assert!(log.contains("basicConstraints"), "{log}");
}

/// A strong CA file and the header value of an RSA-1024 leaf it issued.
fn ca_issuing_rsa1024_leaf(dir: &tempfile::TempDir) -> (String, String) {
    let strong = ca().self_signed().unwrap();
    let client = leaf()
        .with_key(KeyKind::Rsa(1024))
        .issued_by(&strong)
        .unwrap();
    let path = write(dir.path(), "strong-ca.pem", &strong.cert_pem().unwrap());
    (path, client.header_value())
}

// === the verdict never depends on the route (property) ===

/// One odd feature a leaf may have.
#[derive(Debug, Clone)]
enum Oddity {
    None,
    NoAki,
    KeyCertSign,
    DuplicateSan,
    BadSan,
    UnknownCritical,
    UnknownNonCritical,
    CriticalAki,
    PathLen,
    NameConstraints,
    LongSerial,
    Version(i32),
}

fn oddity() -> impl Strategy<Value = Oddity> {
    prop_oneof![
        Just(Oddity::None),
        Just(Oddity::NoAki),
        Just(Oddity::KeyCertSign),
        Just(Oddity::DuplicateSan),
        Just(Oddity::BadSan),
        Just(Oddity::UnknownCritical),
        Just(Oddity::UnknownNonCritical),
        Just(Oddity::CriticalAki),
        Just(Oddity::PathLen),
        Just(Oddity::NameConstraints),
        Just(Oddity::LongSerial),
        (0..2i32).prop_map(Oddity::Version),
    ]
}

fn apply(spec: CertSpec, odd: &Oddity, issuer: &Issued) -> CertSpec {
    match odd {
        Oddity::None => spec,
        Oddity::NoAki => spec.without_authority_key_id(),
        Oddity::KeyCertSign => spec.without(Nid::KEY_USAGE).with_raw_extension(
            KEY_USAGE,
            true,
            &[0x03, 0x02, 0x02, 0x84],
        ),
        Oddity::DuplicateSan => spec
            .with_dns_names(&["a.partner.example"])
            .with_raw_extension(SAN, false, &san_dns(&["b.partner.example"])),
        Oddity::BadSan => spec.with_raw_extension(SAN, false, &[0x30, 0x03, 0x82, 0x05, b'x']),
        Oddity::UnknownCritical => spec.with_raw_extension(UNKNOWN_OID, true, &[0x05, 0x00]),
        Oddity::UnknownNonCritical => spec.with_raw_extension(UNKNOWN_OID, false, &[0x05, 0x00]),
        Oddity::CriticalAki => {
            let keyid = issuer
                .cert
                .subject_key_id()
                .map_or_else(|| vec![1; 20], |k| k.as_slice().to_vec());
            spec.without_authority_key_id().with_raw_extension(
                AKI,
                true,
                &tlv(0x30, &tlv(0x80, &keyid)),
            )
        }
        Oddity::PathLen => spec.without(Nid::BASIC_CONSTRAINTS).with_raw_extension(
            BASIC_CONSTRAINTS,
            true,
            &[0x30, 0x03, 0x02, 0x01, 0x00],
        ),
        Oddity::NameConstraints => spec.with_name_constraints("permitted;DNS:partner.example"),
        Oddity::LongSerial => spec.with_serial(&[0x42; 21]),
        Oddity::Version(v) => spec.with_version(*v),
    }
}

#[test]
fn the_verdict_never_depends_on_the_route_for_any_mix_of_leaf_features() {
    let plain = ca().self_signed().unwrap();
    let forced = ca()
        .with_name_constraints(FORCE_OPENSSL)
        .self_signed()
        .unwrap();
    let direct_anchors = TrustAnchors::new(vec![plain.cert.clone()]).unwrap();
    let openssl_anchors = TrustAnchors::new(vec![forced.cert.clone()]).unwrap();
    let p_direct = policy(&[PARTNER_CN], Some(direct_anchors));
    let p_openssl = policy(&[PARTNER_CN], Some(openssl_anchors));
    let keys = [
        KeyKind::EcP256,
        KeyKind::Ec(Nid::SECP384R1),
        KeyKind::Ec(Nid::X9_62_PRIME192V1),
        KeyKind::Ed25519,
        KeyKind::EcExplicit(Nid::X9_62_PRIME256V1),
    ];
    let eku = prop_oneof![
        Just(None),
        Just(Some(vec![Eku::ClientAuth])),
        Just(Some(vec![Eku::Any])),
        Just(Some(vec![Eku::ServerAuth])),
        Just(Some(vec![Eku::Any, Eku::ClientAuth])),
    ];
    let digest = prop_oneof![Just(SigDigest::Sha256), Just(SigDigest::Sha1)];
    let strategy = (
        prop::collection::vec(oddity(), 0..3),
        0..keys.len(),
        eku,
        digest,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    runner
        .run(&strategy, |(odds, key, ekus, digest, ca_flag)| {
            let t = now();
            let base = CertSpec::leaf(PARTNER_CN, t, 30)
                .with_key(keys[key])
                .with_ekus(ekus)
                .with_digest(digest)
                .with_ca(ca_flag && odds.is_empty());
            let leaf_key = generate_key(keys[key]).unwrap();
            let make = |issuer: &Issued| {
                let spec = odds
                    .iter()
                    .fold(base.clone(), |s, odd| apply(s, odd, issuer));
                spec.issued_by_with_key(issuer, leaf_key.clone())
                    .unwrap()
                    .der()
            };
            let code = |r: Result<_, mtls_handler::inbound::client_cert::CertError>| {
                r.map(|_| "accepted".to_owned())
                    .unwrap_or_else(|e| e.code().to_owned())
            };
            let a = code(validate(&make(&plain), &p_direct, t));
            let b = code(validate(&make(&forced), &p_openssl, t));
            prop_assert_eq!(&a, &b, "{:?}", odds);
            seen.borrow_mut().insert(a);
            Ok(())
        })
        .unwrap();
    // The run covered acceptance and the new refusals, not just one kind of answer.
    let seen = seen.into_inner();
    for code in ["accepted", "malformed", "weak_key", "not_for_client_auth"] {
        assert!(seen.contains(code), "no case ended {code}: {seen:?}");
    }
}

/// One odd feature a CA may have.
#[derive(Debug, Clone)]
enum CaOddity {
    None,
    NoSki,
    BasicConstraintsNotCritical,
    CriticalAki,
    KeyUsageWithoutKeyCertSign,
    DuplicateKeyUsage,
    UnknownCritical,
    UnknownNonCritical,
    Sha1SelfSignature,
}

fn ca_oddity() -> impl Strategy<Value = CaOddity> {
    prop_oneof![
        Just(CaOddity::None),
        Just(CaOddity::NoSki),
        Just(CaOddity::BasicConstraintsNotCritical),
        Just(CaOddity::CriticalAki),
        Just(CaOddity::KeyUsageWithoutKeyCertSign),
        Just(CaOddity::DuplicateKeyUsage),
        Just(CaOddity::UnknownCritical),
        Just(CaOddity::UnknownNonCritical),
        Just(CaOddity::Sha1SelfSignature),
    ]
}

fn apply_ca(spec: CertSpec, odd: &CaOddity) -> CertSpec {
    match odd {
        CaOddity::None => spec,
        CaOddity::NoSki => spec.without(Nid::SUBJECT_KEY_IDENTIFIER),
        CaOddity::BasicConstraintsNotCritical => spec
            .without(Nid::BASIC_CONSTRAINTS)
            .with_raw_extension(BASIC_CONSTRAINTS, false, &[0x30, 0x03, 0x01, 0x01, 0xFF]),
        CaOddity::CriticalAki => {
            spec.with_raw_extension(AKI, true, &tlv(0x30, &tlv(0x80, &[9; 20])))
        }
        CaOddity::KeyUsageWithoutKeyCertSign => spec.without(Nid::KEY_USAGE).with_raw_extension(
            KEY_USAGE,
            true,
            &[0x03, 0x02, 0x01, 0x82],
        ),
        CaOddity::DuplicateKeyUsage => {
            spec.with_raw_extension(KEY_USAGE, true, &[0x03, 0x02, 0x01, 0x06])
        }
        CaOddity::UnknownCritical => spec.with_raw_extension(UNKNOWN_OID, true, &[0x05, 0x00]),
        CaOddity::UnknownNonCritical => spec.with_raw_extension(UNKNOWN_OID, false, &[0x05, 0x00]),
        CaOddity::Sha1SelfSignature => spec.with_digest(SigDigest::Sha1),
    }
}

#[test]
fn the_verdict_never_depends_on_the_route_for_any_mix_of_ca_features() {
    let keys = [
        KeyKind::EcP256,
        KeyKind::Ec(Nid::SECP384R1),
        KeyKind::Ed25519,
    ];
    let strategy = (
        prop::collection::vec(ca_oddity(), 0..3),
        0..keys.len(),
        prop::collection::vec(oddity(), 0..2),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(std::collections::BTreeSet::new());
    runner
        .run(&strategy, |(ca_odds, key, leaf_odds)| {
            let spec = ca_odds.iter().fold(ca().with_key(keys[key]), apply_ca);
            // The leaf never names the CA's key: a CA without SKI must still be found.
            let v = verdict(spec, |issuer| {
                leaf_odds
                    .iter()
                    .fold(leaf().without_authority_key_id(), |s, odd| {
                        apply(s, odd, issuer)
                    })
            });
            seen.borrow_mut().insert(v);
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner();
    for code in ["accepted", "untrusted_chain"] {
        assert!(seen.contains(code), "no case ended {code}: {seen:?}");
    }
}

// === strict CRLs ===

/// An extension as (dotted OID, critical, DER value).
type Ext<'a> = (&'a str, bool, Vec<u8>);

/// A CRL signed by `issuer` (an ECDSA P-256 CA) with the given extensions (OID,
/// critical, DER value), listing `revoked` (a certificate and its entry extensions) when
/// given. Written out in DER: OpenSSL's builder cannot add entry extensions.
fn crl_with(
    issuer: &Issued,
    extensions: &[Ext<'_>],
    revoked: Option<(&openssl::x509::X509, Vec<Ext<'_>>)>,
) -> Vec<u8> {
    let extension = |(oid, critical, value): &Ext<'_>| {
        let mut content = oid_der(oid);
        if *critical {
            content.extend([0x01, 0x01, 0xFF]);
        }
        content.extend(tlv(0x04, value));
        tlv(0x30, &content)
    };
    let time = |t: i64| {
        let s = time::OffsetDateTime::from_unix_timestamp(t)
            .unwrap()
            .format(time::macros::format_description!(
                "[year repr:last_two][month][day][hour][minute][second]Z"
            ))
            .unwrap();
        tlv(0x17, s.as_bytes())
    };
    let t = now();
    let ecdsa_sha256 = tlv(0x30, &oid_der("1.2.840.10045.4.3.2"));
    let mut tbs = vec![];
    tbs.extend(tlv(0x02, &[0x01]));
    tbs.extend(&ecdsa_sha256);
    tbs.extend(issuer.cert.subject_name().to_der().unwrap());
    tbs.extend(time(t - 60));
    tbs.extend(time(t + 86_400));
    if let Some((cert, entry_exts)) = revoked {
        let mut entry = tlv(0x02, &cert.serial_number().to_bn().unwrap().to_vec());
        entry.extend(time(t - 60));
        if !entry_exts.is_empty() {
            let exts: Vec<u8> = entry_exts.iter().flat_map(extension).collect();
            entry.extend(tlv(0x30, &exts));
        }
        tbs.extend(tlv(0x30, &tlv(0x30, &entry)));
    }
    if !extensions.is_empty() {
        let exts: Vec<u8> = extensions.iter().flat_map(extension).collect();
        tbs.extend(tlv(0xA0, &tlv(0x30, &exts)));
    }
    let tbs = tlv(0x30, &tbs);
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &issuer.key).unwrap();
    let signature = signer.sign_oneshot_to_vec(&tbs).unwrap();
    let mut bits = vec![0x00];
    bits.extend(signature);
    tlv(0x30, &[tbs, ecdsa_sha256, tlv(0x03, &bits)].concat())
}

/// DER of a dotted OID.
fn oid_der(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
    let mut content = vec![(arcs[0] * 40 + arcs[1]) as u8];
    for &arc in &arcs[2..] {
        let mut bytes = vec![(arc & 0x7F) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            bytes.insert(0, (rest & 0x7F) as u8 | 0x80);
            rest >>= 7;
        }
        content.extend(bytes);
    }
    tlv(0x06, &content)
}

const CRL_NUMBER: &str = "2.5.29.20";

fn revocation_outcome(der: &[u8], anchors: TrustAnchors, crls: CrlSet, fail_open: bool) -> String {
    let p = policy(&[PARTNER_CN], Some(anchors));
    let r = Revocation {
        crls: &crls,
        fail_open,
    };
    match validate_with_revocation(der, &p, Some(&r), now()) {
        Ok((_, RevocationStatus::Good)) => "good".to_owned(),
        Ok((_, RevocationStatus::UnknownAccepted { .. })) => "unknown_accepted".to_owned(),
        Ok((_, other)) => format!("{other:?}"),
        Err(e) => e.code().to_owned(),
    }
}

#[test]
fn a_crl_with_a_critical_crl_number_is_refused_and_counts_as_missing() {
    let ca = ca().self_signed().unwrap();
    let client = leaf().issued_by(&ca).unwrap();
    let anchors = || TrustAnchors::new(vec![ca.cert.clone()]).unwrap();
    let number = vec![0x02, 0x01, 0x01];
    let good = crl_with(&ca, &[(CRL_NUMBER, false, number.clone())], None);
    let crl = Crl::verify(&good, &anchors(), "good.crl").unwrap();
    let set = CrlSet::new([std::sync::Arc::new(crl)]);
    assert_eq!(
        revocation_outcome(&client.der(), anchors(), set, false),
        "good"
    );

    let bad = crl_with(&ca, &[(CRL_NUMBER, true, number)], None);
    let err = Crl::verify(&bad, &anchors(), "bad.crl").unwrap_err();
    assert!(err.counts_as_missing(), "{err:?}");
    assert!(
        err.to_string().contains("cRLNumber is never critical"),
        "{err}"
    );
    for (fail_open, expected) in [(false, "revocation_unknown"), (true, "unknown_accepted")] {
        let outcome = revocation_outcome(&client.der(), anchors(), CrlSet::default(), fail_open);
        assert_eq!(outcome, expected);
    }
}

#[test]
fn a_crl_with_an_unknown_critical_extension_or_entry_extension_is_refused() {
    let ca = ca().self_signed().unwrap();
    let client = leaf().issued_by(&ca).unwrap();
    let anchors = TrustAnchors::new(vec![ca.cert.clone()]).unwrap();
    let null = vec![0x05, 0x00];
    let unknown = crl_with(&ca, &[(UNKNOWN_OID, true, null.clone())], None);
    let entry = crl_with(
        &ca,
        &[],
        Some((&client.cert, vec![(UNKNOWN_OID, true, null)])),
    );
    for der in [unknown, entry] {
        let err = Crl::verify(&der, &anchors, "x.crl").unwrap_err();
        assert!(matches!(err, CrlError::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains(UNKNOWN_OID), "{err}");
    }
}

#[test]
fn a_crl_signed_by_a_ca_whose_key_usage_lacks_crl_sign_is_refused() {
    // keyUsage keyCertSign only.
    let no_crl_sign = ca()
        .without(Nid::KEY_USAGE)
        .with_raw_extension(KEY_USAGE, true, &[0x03, 0x02, 0x02, 0x04])
        .self_signed()
        .unwrap();
    let client = leaf().issued_by(&no_crl_sign).unwrap();
    let anchors = || TrustAnchors::new(vec![no_crl_sign.cert.clone()]).unwrap();
    assert_eq!(outcome(&client.der(), anchors()), "accepted");
    let crl = crl_with(&no_crl_sign, &[], Some((&client.cert, vec![])));
    let err = Crl::verify(&crl, &anchors(), "x.crl").unwrap_err();
    assert!(err.to_string().contains("cRLSign"), "{err}");
    // The revocation it carries is not honoured; the status is unknown instead.
    let outcome = revocation_outcome(&client.der(), anchors(), CrlSet::default(), false);
    assert_eq!(outcome, "revocation_unknown");
}

#[tokio::test]
async fn a_refused_crl_file_does_not_stop_start_up_is_logged_once_and_leaves_the_status_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca().self_signed().unwrap();
    let client = leaf().issued_by(&ca).unwrap();
    let ca_path = write(dir.path(), "ca.pem", &ca.cert_pem().unwrap());
    let crl = crl_with(&ca, &[(CRL_NUMBER, true, vec![0x02, 0x01, 0x07])], None);
    let crl_path = write(dir.path(), "ca.crl", &crl);
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", ca_path.as_str()),
        ("CLIENT_CERT_CRL_PATH", crl_path.as_str()),
        ("ALLOWED_CLIENT_CERT_COMMON_NAMES", PARTNER_CN),
    ]);
    for _ in 0..3 {
        let res = reqwest::Client::new()
            .get(h.url("/api/cert-info"))
            .header("X-ARR-ClientCert", client.header_value())
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "revocation_unknown");
    }
    let log = h.log_text();
    assert_eq!(log.matches("CRL refused").count(), 1, "{log}");
}

// === the accepted corpus stays accepted ===

#[test]
fn the_openssl_cli_made_certificates_and_crls_of_the_fuzz_seeds_keep_their_verdicts() {
    use openssl::x509::X509;
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let read = |name: &str| std::fs::read(seeds.join(name)).unwrap();
    let cas = X509::stack_from_pem(&read("ca.pem")).unwrap();
    let anchors = || TrustAnchors::new(cas.clone()).unwrap();
    assert!(anchors().defects().is_empty(), "{:?}", anchors().defects());
    let der = |name: &str| X509::from_pem(&read(name)).unwrap().to_der().unwrap();
    let good = der("good.pem");
    let t = mtls_handler::inbound::client_cert::describe(&good)
        .unwrap()
        .not_before
        + 3600;
    let p = || policy(&[PARTNER_CN], Some(anchors()));
    for (name, expected) in [
        ("good.pem", "accepted"),
        ("revoked.pem", "accepted"),
        ("no-eku.pem", "accepted"),
        ("server-only.pem", "not_for_client_auth"),
        ("ca-as-leaf.pem", "ca_certificate"),
        ("impostor.pem", "ca_certificate"),
        ("other-cn.pem", "not_allowlisted"),
    ] {
        let got = match validate(&der(name), &p(), t) {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        };
        assert_eq!(got, expected, "{name}");
    }
    let crls: Vec<_> = ["issuing-crl.der", "root-crl.der"]
        .iter()
        .map(|f| std::sync::Arc::new(Crl::verify(&read(f), &anchors(), f).unwrap()))
        .collect();
    let set = CrlSet::new(crls);
    let r = Revocation {
        crls: &set,
        fail_open: false,
    };
    let check = |name: &str| {
        validate_with_revocation(&der(name), &p(), Some(&r), t)
            .map(|(_, s)| s)
            .map_err(|e| e.code())
    };
    assert_eq!(check("good.pem"), Ok(RevocationStatus::Good));
    assert_eq!(check("revoked.pem"), Err("revoked"));
}
