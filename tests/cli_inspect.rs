//! `handler inspect`: the real binary explaining one certificate's decision, with exit
//! codes 0 (accepted), 1 (rejected) and 2 (unreadable input or bad settings).

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;
use std::process::Output;

fn inspect(pki: &Pki, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let ca = pki.path_str("ca.pem");
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    run_handler(&all, &[("CLIENT_CERT_CA_PATH", &ca)], stdin)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_trusted_partner_certificate_is_accepted_with_exit_0_and_its_identity_printed() {
    let pki = Pki::new();
    let out = inspect(&pki, &[&pki.path_str("client.pem")], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let (sha1, sha256) = mtls_handler::inbound::client_cert::Thumbprint::of_der(&pki.client.der());
    assert!(text.contains(&sha1.to_string()), "{text}");
    assert!(text.contains(&sha256.to_string()), "{text}");
    assert!(text.contains("CN=api-client.contoso.com"), "{text}");
    assert!(text.contains("CN=e2e Issuing CA"), "{text}");
    assert!(text.contains("clientAuth"), "{text}");
    assert!(text.contains("ACCEPTED"), "{text}");
}

#[test]
fn an_expired_certificate_is_rejected_with_exit_1_the_code_and_the_expiry_date() {
    let pki = Pki::new();
    let out = inspect(&pki, &[&pki.path_str("expired.pem")], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("REJECTED (403, code expired)"), "{text}");
    let not_after = mtls_handler::clock::rfc3339(now() - 86_400);
    // The expiry is printed as a date, to the day (the second may differ by one).
    assert!(text.contains(&not_after[..10]), "{text}");
}

#[test]
fn a_self_signed_certificate_with_the_allowed_name_is_rejected_as_untrusted_chain() {
    let pki = Pki::new();
    let out = inspect(&pki, &[&pki.path_str("untrusted.pem")], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("code untrusted_chain"), "{text}");
    assert!(text.contains("self-signed"), "{text}");
}

#[test]
fn the_header_value_on_standard_input_is_read_as_app_service_sends_it() {
    let pki = Pki::new();
    let value = pki.client.header_value();
    let out = inspect(&pki, &[], Some(value.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Certificate (base64)"));
    // A whole header line copied from a log, via `-`.
    let line = format!("X-ARR-ClientCert: {value}\n");
    let out = inspect(&pki, &["-"], Some(line.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_der_file_is_read() {
    let pki = Pki::new();
    let der = pki.dir.path().join("client.der");
    std::fs::write(&der, pki.client.der()).unwrap();
    let out = inspect(&pki, &[der.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Certificate (DER)"));
}

#[test]
fn a_pinned_certificate_is_accepted_by_thumbprint_without_any_ca() {
    let pki = Pki::new();
    let (_, sha256) = mtls_handler::inbound::client_cert::Thumbprint::of_der(&pki.untrusted.der());
    let pin = sha256.to_string();
    let path = pki.path_str("untrusted.pem");
    let out = run_handler(
        &["inspect", &path],
        &[("ALLOWED_CLIENT_CERT_THUMBPRINTS", &pin)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("pinned thumbprint"));
}

#[test]
fn garbage_empty_and_missing_input_exit_2() {
    let pki = Pki::new();
    let out = inspect(&pki, &[], Some(b"this is not a certificate"));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("not a PEM, DER or base64 certificate"));
    let out = inspect(&pki, &[], Some(b""));
    assert_eq!(out.status.code(), Some(2));
    let out = inspect(&pki, &["/nonexistent/cert.pem"], None);
    assert_eq!(out.status.code(), Some(2));
    // Valid base64 of something that is not a certificate.
    let out = inspect(&pki, &[], Some(b"QUJDREVGR0g="));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_bad_setting_exits_2_naming_the_setting() {
    let pki = Pki::new();
    let path = pki.path_str("client.pem");
    let out = run_handler(
        &["inspect", &path],
        &[("ALLOWED_CLIENT_CERT_THUMBPRINTS", "abc123")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ALLOWED_CLIENT_CERT_THUMBPRINTS"));
    let out = run_handler(
        &["inspect", &path],
        &[("CLIENT_CERT_CA_PATH", "/nonexistent/ca.pem")],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("CLIENT_CERT_CA_PATH"));
}
