//! The pure validator, rule by rule, and the attacks it must stop. Every certificate is
//! generated for the test; `now` is passed in, never read inside the validator.

mod common;

use common::{now, pinned, policy, TestPki, PARTNER_CN};
use mtls_handler::inbound::client_cert::{
    validate, validate_header, Accepted, CertError, Malformed, MatchedBy, Thumbprint, TrustAnchors,
};
use mtls_handler::tools::pki::{CertSpec, Eku, Issued, KeyKind};
use openssl::nid::Nid;

/// `cert` checked now against a policy allowlisting the partner CN and trusting `pki`.
fn against_partner_policy(pki: &TestPki, cert: &Issued) -> Result<Accepted, CertError> {
    validate(
        &cert.der(),
        &policy(&[PARTNER_CN], Some(pki.anchors())),
        now(),
    )
}

fn sha1(der: &[u8]) -> Thumbprint {
    Thumbprint::of_der(der).0
}

fn sha256(der: &[u8]) -> Thumbprint {
    Thumbprint::of_der(der).1
}

// === acceptance ===

#[test]
fn certificate_from_a_trusted_ca_with_an_allowlisted_common_name_is_accepted() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let ok = against_partner_policy(&pki, &client).unwrap();
    assert_eq!(ok.matched_by, MatchedBy::CommonName);
    assert_eq!(ok.info.common_name(), Some(PARTNER_CN));
    assert_eq!(ok.info.thumbprint_sha1, sha1(&client.der()).to_string());
}

#[test]
fn common_name_matching_ignores_ascii_case() {
    let pki = TestPki::new();
    let client = pki.client("API-Client.Contoso.COM");
    assert!(against_partner_policy(&pki, &client).is_ok());
}

#[test]
fn the_issuing_ca_alone_is_enough_as_a_trust_anchor() {
    let pki = TestPki::new();
    let only_issuing = TrustAnchors::new(vec![pki.issuing.cert.clone()]).unwrap();
    let client = pki.client(PARTNER_CN);
    assert!(validate(
        &client.der(),
        &policy(&[PARTNER_CN], Some(only_issuing)),
        now()
    )
    .is_ok());
}

#[test]
fn a_root_alone_cannot_vouch_for_a_leaf_whose_intermediate_is_not_configured() {
    // The header carries only the leaf, so the intermediate must be in CLIENT_CERT_CA_PATH.
    let pki = TestPki::new();
    let only_root = TrustAnchors::new(vec![pki.root.cert.clone()]).unwrap();
    let client = pki.client(PARTNER_CN);
    let err = validate(
        &client.der(),
        &policy(&[PARTNER_CN], Some(only_root)),
        now(),
    )
    .unwrap_err();
    assert_eq!(err.code(), "untrusted_chain");
}

#[test]
fn an_rsa_partner_certificate_is_accepted() {
    let pki = TestPki::new();
    let client = CertSpec::leaf(PARTNER_CN, now(), 30)
        .with_key(KeyKind::Rsa2048)
        .issued_by(&pki.issuing)
        .unwrap();
    assert!(against_partner_policy(&pki, &client).is_ok());
}

#[test]
fn a_sha1_pin_accepts_a_self_signed_certificate_without_any_chain() {
    let cert = CertSpec::leaf("whoever", now(), 30).self_signed().unwrap();
    let ok = validate(&cert.der(), &pinned(&[sha1(&cert.der())]), now()).unwrap();
    assert_eq!(ok.matched_by, MatchedBy::Thumbprint);
}

#[test]
fn a_sha256_pin_pasted_with_colons_and_lowercase_accepts() {
    let cert = CertSpec::leaf("whoever", now(), 30).self_signed().unwrap();
    let hex = sha256(&cert.der()).to_string().to_lowercase();
    let pasted: Vec<String> = hex
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let pin = Thumbprint::parse(&format!("\u{200E}{}", pasted.join(":"))).unwrap();
    assert!(validate(&cert.der(), &pinned(&[pin]), now()).is_ok());
}

#[test]
fn a_pin_for_another_certificate_does_not_accept() {
    let cert = CertSpec::leaf("whoever", now(), 30).self_signed().unwrap();
    let other = CertSpec::leaf("whoever", now(), 30).self_signed().unwrap();
    let err = validate(&cert.der(), &pinned(&[sha256(&other.der())]), now()).unwrap_err();
    assert_eq!(err, CertError::NotAllowlisted);
}

#[test]
fn extended_key_usage_absent_or_listing_client_auth_allows_it_but_any_alone_does_not() {
    let pki = TestPki::new();
    for ekus in [
        None,
        Some(vec![Eku::ServerAuth, Eku::ClientAuth]),
        Some(vec![Eku::Any, Eku::ClientAuth]),
    ] {
        let client = CertSpec::leaf(PARTNER_CN, now(), 30)
            .with_ekus(ekus.clone())
            .issued_by(&pki.issuing)
            .unwrap();
        let result = against_partner_policy(&pki, &client);
        assert!(result.is_ok(), "{ekus:?}: {result:?}");
    }
    // OpenSSL's sslclient purpose and pyca's client verifier refuse anyExtendedKeyUsage
    // alone; so does the handler since issue 11.
    let any_only = CertSpec::leaf(PARTNER_CN, now(), 30)
        .with_ekus(Some(vec![Eku::Any]))
        .issued_by(&pki.issuing)
        .unwrap();
    assert_eq!(
        against_partner_policy(&pki, &any_only).unwrap_err().code(),
        "not_for_client_auth"
    );
}

#[test]
fn the_accepted_window_ends_at_the_earliest_not_after_on_the_chain() {
    let t = now();
    let root = CertSpec::ca("Short Root", t, 10).self_signed().unwrap();
    let client = CertSpec::leaf(PARTNER_CN, t, 365).issued_by(&root).unwrap();
    let anchors = TrustAnchors::new(vec![root.cert.clone()]).unwrap();
    let ok = validate(&client.der(), &policy(&[PARTNER_CN], Some(anchors)), t).unwrap();
    assert_eq!(ok.valid_until, t + 10 * 86_400);
}

// === attacks on the chain ===

#[test]
fn a_self_signed_certificate_with_an_allowlisted_common_name_is_rejected() {
    let pki = TestPki::new();
    let forged = CertSpec::leaf(PARTNER_CN, now(), 30).self_signed().unwrap();
    let err = against_partner_policy(&pki, &forged).unwrap_err();
    assert!(matches!(err, CertError::UntrustedChain { .. }), "{err:?}");
}

#[test]
fn a_certificate_from_a_forged_ca_with_the_trusted_cas_name_is_rejected() {
    let pki = TestPki::new();
    // Same subject name as the trusted issuing CA, different key: names prove nothing.
    let fake_ca = CertSpec::ca("Test Issuing CA", now(), 365)
        .self_signed()
        .unwrap();
    assert_eq!(
        fake_ca.cert.subject_name().to_der().unwrap(),
        pki.issuing.cert.subject_name().to_der().unwrap()
    );
    let forged = CertSpec::leaf(PARTNER_CN, now(), 30)
        .issued_by(&fake_ca)
        .unwrap();
    let err = against_partner_policy(&pki, &forged).unwrap_err();
    // OpenSSL refuses it before or at the signature check (the key identifiers differ too).
    assert!(matches!(err, CertError::UntrustedChain { .. }), "{err:?}");
}

#[test]
fn a_forged_certificate_without_key_identifiers_fails_the_signature_check() {
    let pki = TestPki::new();
    let fake_ca = CertSpec::ca("Test Issuing CA", now(), 365)
        .self_signed()
        .unwrap();
    let forged = CertSpec::leaf(PARTNER_CN, now(), 30)
        .without_authority_key_id()
        .issued_by(&fake_ca)
        .unwrap();
    let err = against_partner_policy(&pki, &forged).unwrap_err();
    match err {
        CertError::UntrustedChain { reason, .. } => {
            assert!(reason.contains("signature"), "{reason}")
        }
        other => panic!("expected untrusted chain, got {other:?}"),
    }
}

#[test]
fn a_genuine_certificate_without_key_identifiers_is_accepted() {
    let pki = TestPki::new();
    let client = CertSpec::leaf(PARTNER_CN, now(), 30)
        .without_authority_key_id()
        .issued_by(&pki.issuing)
        .unwrap();
    assert!(against_partner_policy(&pki, &client).is_ok());
}

#[test]
fn a_cas_name_constraints_are_enforced() {
    let t = now();
    let constrained = CertSpec::ca("Constrained CA", t, 365)
        .with_name_constraints("critical,permitted;DNS:partner.example")
        .self_signed()
        .unwrap();
    let anchors = || TrustAnchors::new(vec![constrained.cert.clone()]).unwrap();
    let inside = CertSpec::leaf("api.partner.example", t, 30)
        .with_dns_names(&["api.partner.example"])
        .issued_by(&constrained)
        .unwrap();
    assert!(validate(
        &inside.der(),
        &policy(&["api.partner.example"], Some(anchors())),
        t
    )
    .is_ok());
    let outside = CertSpec::leaf(PARTNER_CN, t, 30)
        .with_dns_names(&[PARTNER_CN])
        .issued_by(&constrained)
        .unwrap();
    let err = validate(&outside.der(), &policy(&[PARTNER_CN], Some(anchors())), t).unwrap_err();
    assert_eq!(err.code(), "untrusted_chain", "{err}");
}

#[test]
fn a_leaf_with_an_unknown_critical_extension_is_rejected() {
    let pki = TestPki::new();
    let mut b = openssl::x509::X509::builder().unwrap();
    let leaf = pki.client(PARTNER_CN);
    // Rebuild the partner certificate with one extra critical extension OpenSSL does not know.
    b.set_version(2).unwrap();
    b.set_serial_number(leaf.cert.serial_number()).unwrap();
    b.set_subject_name(leaf.cert.subject_name()).unwrap();
    b.set_issuer_name(pki.issuing.cert.subject_name()).unwrap();
    b.set_pubkey(&leaf.key).unwrap();
    b.set_not_before(leaf.cert.not_before()).unwrap();
    b.set_not_after(leaf.cert.not_after()).unwrap();
    b.append_extension(
        openssl::x509::extension::ExtendedKeyUsage::new()
            .client_auth()
            .build()
            .unwrap(),
    )
    .unwrap();
    #[allow(deprecated)]
    let unknown =
        openssl::x509::X509Extension::new(None, None, "1.3.6.1.4.1.99999.1", "critical,ASN1:NULL")
            .unwrap();
    b.append_extension(unknown).unwrap();
    b.sign(&pki.issuing.key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let der = b.build().to_der().unwrap();
    let err = validate(&der, &policy(&[PARTNER_CN], Some(pki.anchors())), now()).unwrap_err();
    // Refused before any chain is looked at, so the answer is the same on every route.
    match err {
        CertError::Malformed(Malformed::Profile { detail }) => {
            assert!(detail.contains("critical"), "{detail}")
        }
        other => panic!("expected malformed, got {other:?}"),
    }
}

#[test]
fn a_common_name_match_without_configured_cas_is_rejected() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let err = validate(&client.der(), &policy(&[PARTNER_CN], None), now()).unwrap_err();
    assert_eq!(err.code(), "untrusted_chain");
}

#[test]
fn a_certificate_under_an_expired_issuing_ca_is_rejected() {
    let t = now();
    let root = CertSpec::ca("Root", t, 3650).self_signed().unwrap();
    let old_ca = CertSpec::ca("Old Issuing CA", t, 1)
        .with_validity(t - 400 * 86_400, t - 86_400)
        .issued_by(&root)
        .unwrap();
    let client = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&old_ca)
        .unwrap();
    let anchors = TrustAnchors::new(vec![root.cert.clone(), old_ca.cert.clone()]).unwrap();
    let err = validate(&client.der(), &policy(&[PARTNER_CN], Some(anchors)), t).unwrap_err();
    assert_eq!(err.code(), "untrusted_chain");
}

#[test]
fn a_ca_restricted_to_server_auth_cannot_vouch_for_clients() {
    let t = now();
    let tls_ca = CertSpec::ca("Server-only CA", t, 365)
        .with_ekus(Some(vec![Eku::ServerAuth]))
        .self_signed()
        .unwrap();
    let client = CertSpec::leaf(PARTNER_CN, t, 30)
        .issued_by(&tls_ca)
        .unwrap();
    let anchors = TrustAnchors::new(vec![tls_ca.cert.clone()]).unwrap();
    let err = validate(&client.der(), &policy(&[PARTNER_CN], Some(anchors)), t).unwrap_err();
    assert_eq!(err.code(), "untrusted_chain");
}

#[test]
fn a_leaf_certificate_cannot_be_configured_as_a_trusted_ca() {
    let leaf = CertSpec::leaf("not a ca", now(), 30).self_signed().unwrap();
    assert!(TrustAnchors::new(vec![leaf.cert.clone()]).is_err());
}

// === validity period ===

#[test]
fn an_expired_certificate_is_rejected_even_when_pinned() {
    let t = now();
    let cert = CertSpec::leaf("old", t, 1)
        .with_validity(t - 100, t - 1)
        .self_signed()
        .unwrap();
    let err = validate(&cert.der(), &pinned(&[sha1(&cert.der())]), t).unwrap_err();
    assert_eq!(
        err,
        CertError::Expired {
            not_after: t - 1,
            now: t
        }
    );
}

#[test]
fn a_not_yet_valid_certificate_is_rejected_even_when_pinned() {
    let t = now();
    let cert = CertSpec::leaf("future", t, 1)
        .with_validity(t + 60, t + 600)
        .self_signed()
        .unwrap();
    let err = validate(&cert.der(), &pinned(&[sha256(&cert.der())]), t).unwrap_err();
    assert_eq!(
        err,
        CertError::NotYetValid {
            not_before: t + 60,
            now: t
        }
    );
}

#[test]
fn validity_boundaries_are_inclusive() {
    let t = now();
    let cert = CertSpec::leaf("edge", t, 1)
        .with_validity(t, t + 10)
        .self_signed()
        .unwrap();
    let p = pinned(&[sha1(&cert.der())]);
    assert!(validate(&cert.der(), &p, t).is_ok());
    assert!(validate(&cert.der(), &p, t + 10).is_ok());
    assert!(validate(&cert.der(), &p, t + 11).is_err());
}

// === usage ===

#[test]
fn a_certificate_with_only_server_auth_is_rejected_for_client_auth() {
    let pki = TestPki::new();
    let server = CertSpec::leaf(PARTNER_CN, now(), 30)
        .with_ekus(Some(vec![Eku::ServerAuth]))
        .issued_by(&pki.issuing)
        .unwrap();
    let p = mtls_handler::inbound::client_cert::Policy {
        thumbprints: [sha1(&server.der())].into_iter().collect(),
        ..policy(&[PARTNER_CN], Some(pki.anchors()))
    };
    let err = validate(&server.der(), &p, now()).unwrap_err();
    assert_eq!(
        err,
        CertError::NotForClientAuth {
            ekus: "serverAuth".to_owned()
        }
    );
}

#[test]
fn a_ca_certificate_is_never_a_client_certificate_even_when_pinned() {
    let pki = TestPki::new();
    let der = pki.issuing.der();
    let p = mtls_handler::inbound::client_cert::Policy {
        thumbprints: [sha1(&der)].into_iter().collect(),
        ..policy(&["Test Issuing CA"], Some(pki.anchors()))
    };
    assert_eq!(
        validate(&der, &p, now()).unwrap_err(),
        CertError::CaCertificate
    );
}

// === common-name tricks ===

#[test]
fn a_subject_with_two_common_names_never_matches_by_common_name() {
    let pki = TestPki::new();
    for order in [[PARTNER_CN, "evil.example"], ["evil.example", PARTNER_CN]] {
        let client = CertSpec::leaf("x", now(), 30)
            .with_subject(
                order
                    .iter()
                    .map(|cn| (Nid::COMMONNAME, (*cn).to_owned()))
                    .collect(),
            )
            .issued_by(&pki.issuing)
            .unwrap();
        let err = against_partner_policy(&pki, &client).unwrap_err();
        assert_eq!(err, CertError::NotAllowlisted, "{order:?}");
    }
}

#[test]
fn a_subject_without_a_common_name_never_matches_by_common_name() {
    let pki = TestPki::new();
    let client = CertSpec::leaf("x", now(), 30)
        .with_subject(vec![(Nid::ORGANIZATIONNAME, PARTNER_CN.to_owned())])
        .issued_by(&pki.issuing)
        .unwrap();
    let err = against_partner_policy(&pki, &client).unwrap_err();
    assert_eq!(err, CertError::NotAllowlisted);
}

#[test]
fn common_names_with_nul_prefix_suffix_or_padding_do_not_match() {
    let pki = TestPki::new();
    let tricks = [
        format!("{PARTNER_CN}\0.evil.example"),
        format!("x{PARTNER_CN}"),
        format!("{PARTNER_CN}.evil.example"),
        format!(" {PARTNER_CN}"),
        format!("{PARTNER_CN} "),
        "api-client.contoso.co".to_owned(),
        "*.contoso.com".to_owned(),
    ];
    for cn in tricks {
        let client = pki.client(&cn);
        let err = against_partner_policy(&pki, &client).unwrap_err();
        assert_eq!(err, CertError::NotAllowlisted, "{cn:?}");
    }
}

#[test]
fn the_seeds_unverified_mode_accepts_a_self_signed_common_name_but_still_checks_expiry() {
    let t = now();
    let mut p = policy(&[PARTNER_CN], None);
    p.allow_unverified_common_names = true;
    let forged = CertSpec::leaf(PARTNER_CN, t, 30).self_signed().unwrap();
    assert_eq!(
        validate(&forged.der(), &p, t).unwrap().matched_by,
        MatchedBy::CommonName
    );
    let expired = CertSpec::leaf(PARTNER_CN, t, 1)
        .with_validity(t - 10, t - 5)
        .self_signed()
        .unwrap();
    assert_eq!(
        validate(&expired.der(), &p, t).unwrap_err().code(),
        "expired"
    );
}

// === malformed input ===

#[test]
fn garbage_truncated_and_padded_der_are_malformed() {
    let pki = TestPki::new();
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let der = pki.client(PARTNER_CN).der();
    let mut trailing = der.clone();
    trailing.extend_from_slice(b"\0\0");
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        b"hello world".to_vec(),
        vec![0x30, 0x82, 0xff, 0xff],
        der[..der.len() / 2].to_vec(),
        der[1..].to_vec(),
    ];
    for bytes in cases {
        assert_eq!(validate(&bytes, &p, now()).unwrap_err().code(), "malformed");
    }
    assert_eq!(
        validate(&trailing, &p, now()).unwrap_err(),
        CertError::Malformed(Malformed::TrailingData { bytes: 2 })
    );
}

#[test]
fn two_concatenated_certificates_are_malformed() {
    let pki = TestPki::new();
    let mut two = pki.client(PARTNER_CN).der();
    two.extend(pki.client(PARTNER_CN).der());
    let err = validate(&two, &policy(&[PARTNER_CN], Some(pki.anchors())), now()).unwrap_err();
    assert!(matches!(
        err,
        CertError::Malformed(Malformed::TrailingData { .. })
    ));
}

#[test]
fn the_header_accepts_base64_der_and_a_full_pem_block_alike() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let pem = String::from_utf8(client.cert_pem().unwrap()).unwrap();
    let folded: String = client
        .header_value()
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
        .collect();
    for value in [client.header_value(), pem, folded] {
        assert!(validate_header(&[value.as_str()], &p, now()).is_ok());
    }
}

#[test]
fn a_missing_or_blank_header_is_missing_and_two_headers_are_malformed() {
    let pki = TestPki::new();
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let v = pki.client(PARTNER_CN).header_value();
    assert_eq!(
        validate_header::<&str>(&[], &p, now()).unwrap_err(),
        CertError::Missing
    );
    assert_eq!(
        validate_header(&["  "], &p, now()).unwrap_err(),
        CertError::Missing
    );
    assert_eq!(
        validate_header(&[v.as_str(), v.as_str()], &p, now()).unwrap_err(),
        CertError::Malformed(Malformed::MultipleValues { count: 2 })
    );
}

/// A DER TLV with `tag` around `content`, its length in the minimal form or, with
/// `extra_length_bytes`, in a long form padded with that many leading zero bytes.
fn tlv(tag: u8, content: &[u8], extra_length_bytes: usize) -> Vec<u8> {
    let n = content.len();
    let mut length: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![tag];
    if n < 128 && extra_length_bytes == 0 {
        out.push(n as u8);
    } else {
        let mut long = vec![0u8; extra_length_bytes];
        long.append(&mut length);
        out.push(0x80 | long.len() as u8);
        out.extend(long);
    }
    out.extend_from_slice(content);
    out
}

/// The (tag, header length, content) of the TLV at the start of `der`.
fn split_tlv(der: &[u8]) -> (u8, usize, &[u8]) {
    let (len, header) = match der[1] {
        n if n < 0x80 => (n as usize, 2),
        n => {
            let k = (n & 0x7f) as usize;
            let len = der[2..2 + k]
                .iter()
                .fold(0usize, |a, b| a << 8 | *b as usize);
            (len, 2 + k)
        }
    };
    (der[0], header, &der[header..header + len])
}

#[test]
fn a_certificate_with_a_non_minimal_length_encoding_is_malformed_not_another_thumbprint() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let der = client.der();
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    assert!(validate(&der, &p, now()).is_ok());
    let (_, _, content) = split_tlv(&der);
    // The outer SEQUENCE's length with a leading zero byte (`30 83 00 ..`).
    let padded_outer = tlv(0x30, content, 1);
    // The signature algorithm (outside the signed part) with a long-form length.
    let (_, tbs_header, tbs) = split_tlv(content);
    let tbs_len = tbs_header + tbs.len();
    let (alg_tag, _, alg) = split_tlv(&content[tbs_len..]);
    let alg_len = split_tlv(&content[tbs_len..]).1 + alg.len();
    let mut inner = content[..tbs_len].to_vec();
    inner.extend(tlv(alg_tag, alg, 1));
    inner.extend_from_slice(&content[tbs_len + alg_len..]);
    let long_alg = tlv(0x30, &inner, 0);
    for variant in [padded_outer, long_alg] {
        assert_ne!(variant, der);
        let err = validate(&variant, &p, now()).unwrap_err();
        assert_eq!(err.code(), "malformed", "{err}");
        let pin = pinned(&[sha256(&variant)]);
        assert_eq!(
            validate(&variant, &pin, now()).unwrap_err().code(),
            "malformed"
        );
    }
}

/// A self-signed certificate with `n` extended key usages, none of them clientAuth, as
/// anyone can make: what an unauthenticated caller can send in one 16 KiB header.
fn long_eku_list_certificate(n: usize) -> Issued {
    let ekus = (0..n).map(|i| Eku::Other(format!("1.2.{i}"))).collect();
    CertSpec::leaf("eku.example", now(), 30)
        .with_ekus(Some(ekus))
        .self_signed()
        .unwrap()
}

#[test]
fn a_rejection_of_a_certificate_with_thousands_of_ekus_carries_bounded_detail() {
    let cert = long_eku_list_certificate(2400);
    let header = cert.header_value();
    assert!(
        header.len() <= mtls_handler::inbound::client_cert::header::MAX_HEADER_BYTES,
        "{}",
        header.len()
    );
    let err = validate_header(&[header.as_str()], &pinned(&[]), now()).unwrap_err();
    assert_eq!(err.code(), "not_for_client_auth");
    let text = err.to_string();
    assert!(text.len() <= 512, "{} bytes: {}", text.len(), &text[..200]);
    assert!(text.contains("1.2.0"), "{text}");
    assert!(text.contains("more"), "{text}");
}

#[test]
fn thumbprints_are_the_fingerprints_the_openssl_cli_prints() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.der");
    std::fs::write(&path, client.der()).unwrap();
    let openssl = |digest: &str| {
        let out = std::process::Command::new("openssl")
            .args([
                "x509",
                "-inform",
                "DER",
                "-noout",
                "-fingerprint",
                digest,
                "-in",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        // "SHA1 Fingerprint=AB:CD:..."
        let (_, hex) = text.trim().split_once('=').unwrap();
        hex.replace(':', "")
    };
    let (want_sha1, want_sha256) = (openssl("-sha1"), openssl("-sha256"));
    assert_eq!(want_sha1.len(), 40);
    assert_eq!(want_sha256.len(), 64);
    let ok = against_partner_policy(&pki, &client).unwrap();
    assert_eq!(ok.info.thumbprint_sha1, want_sha1);
    assert_eq!(ok.info.thumbprint_sha256, want_sha256);
    // And a pin pasted from openssl's output accepts the certificate.
    let pin = Thumbprint::parse(&openssl("-sha1")).unwrap();
    assert!(validate(&client.der(), &pinned(&[pin]), now()).is_ok());
}
