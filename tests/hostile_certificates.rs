//! What an unauthenticated caller can make the handler keep or write: certificates anyone
//! can make (self-signed, thousands of extended key usages in one 16 KiB header) must cost
//! bounded memory in the validation cache and bounded log lines.

mod common;

use common::{now, Handler};
use mtls_handler::inbound::cache::ValidationCache;
use mtls_handler::inbound::client_cert::header::MAX_HEADER_BYTES;
use mtls_handler::inbound::client_cert::Policy;
use mtls_handler::inbound::InboundGate;
use mtls_handler::tools::pki::{generate_key, CertSpec, Eku, Issued, KeyKind};
use std::process::Command;

/// A self-signed certificate with `n` extended key usages, none of them clientAuth.
fn long_eku_list_certificate(
    n: usize,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
) -> Issued {
    let ekus = (0..n).map(|i| Eku::Other(format!("1.2.{i}"))).collect();
    let spec = CertSpec::leaf("eku.example", now(), 30)
        .with_ekus(Some(ekus))
        .without_authority_key_id();
    // Self-signed with a shared key: the signature is not what is being tested.
    let signer = Issued {
        cert: spec.self_signed().unwrap().cert,
        key: key.clone(),
    };
    spec.issued_by_with_key(&signer, key.clone()).unwrap()
}

#[test]
fn cached_rejections_of_certificates_with_thousands_of_ekus_stay_small() {
    let key = generate_key(KeyKind::EcP256).unwrap();
    let gate = InboundGate::new(
        Policy {
            thumbprints: Default::default(),
            common_names: vec!["api-client.contoso.com".to_owned()],
            trust: None,
            allow_unverified_common_names: false,
            allow_weak_keys: false,
        },
        ValidationCache::new(10_000, 300),
    );
    let t = now();
    let count = 50;
    for _ in 0..count {
        let cert = long_eku_list_certificate(2400, &key);
        let header = cert.header_value();
        assert!(header.len() <= MAX_HEADER_BYTES);
        let err = gate.check(&[header.as_str()], t).unwrap_err();
        assert_eq!(err.code(), "not_for_client_auth");
    }
    assert_eq!(gate.cache().len(), count, "rejections are cached");
    let bytes = gate.cache().bytes();
    assert!(
        bytes <= count * 1024,
        "{bytes} bytes cached for {count} rejections"
    );
}

#[test]
fn the_cache_holds_no_more_bytes_than_its_budget_whatever_the_entries() {
    let key = generate_key(KeyKind::EcP256).unwrap();
    let budget = 64 * 1024;
    let gate = InboundGate::new(
        Policy {
            thumbprints: Default::default(),
            common_names: Vec::new(),
            trust: None,
            allow_unverified_common_names: false,
            allow_weak_keys: false,
        },
        ValidationCache::with_max_bytes(10_000, 300, budget),
    );
    let t = now();
    for _ in 0..200 {
        let cert = long_eku_list_certificate(50, &key);
        assert!(gate.check(&[cert.header_value()], t).is_err());
        assert!(gate.cache().bytes() <= budget, "{}", gate.cache().bytes());
    }
    assert!(
        gate.cache().len() < 200,
        "entries were evicted to stay in budget"
    );
    assert!(!gate.cache().is_empty());
}

#[test]
fn the_handler_logs_a_bounded_line_for_a_certificate_with_thousands_of_ekus() {
    let key = generate_key(KeyKind::EcP256).unwrap();
    let cert = long_eku_list_certificate(2400, &key);
    let h = Handler::start(&[("ALLOWED_CLIENT_CERT_COMMON_NAMES", "api-client.contoso.com")]);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-H"])
        .arg(format!("X-ARR-ClientCert: {}", cert.header_value()))
        .arg(h.url("/api/cert-info"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("not_for_client_auth"), "{body}");
    assert!(body.len() < 1024, "{body}");
    let log = h.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("client certificate rejected"))
        .unwrap_or_else(|| panic!("no rejection logged: {log}"));
    assert!(line.contains("not_for_client_auth"), "{line}");
    for line in log.lines() {
        assert!(line.len() <= 2048, "a {} byte log line", line.len());
    }
}
