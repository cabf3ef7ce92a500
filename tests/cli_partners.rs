//! `handler partners check` and `handler partners from-settings`: the real binary.

mod common;

use common::{now, policy, run_to_exit, write, TestPki};
use mtls_handler::inbound::client_cert::partners::{self, PartnerSet};
use mtls_handler::inbound::client_cert::{validate, validate_partners, Thumbprint};
use mtls_handler::tools::pki::CertSpec;

#[test]
fn a_valid_document_checks_with_exit_0_and_lists_its_partners() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/partners/partners.json"
    );
    let (status, out, err) = run_to_exit(&[], &["partners", "check", file]);
    assert_eq!(status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("valid syntax") && out.contains("\"Fabrikam\""),
        "{out}"
    );
}

#[test]
fn a_bad_document_fails_with_exit_1_giving_line_column_and_json_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\n  \"partners\": [\n    {\"name\": \"A\", \"functions\": [\"*\"],\n     \"match\": {\"thumbprintSha256\": \"12\"}}\n  ]\n}\n";
    let file = write(dir.path(), "bad.json", text.as_bytes());
    let (status, out, err) = run_to_exit(&[], &["partners", "check", &file]);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(err.contains("line 4, column"), "{err}");
    assert!(
        err.contains("$.partners[0].match.thumbprintSha256"),
        "{err}"
    );
}

#[test]
fn with_the_ca_path_set_an_issuer_that_is_not_trusted_fails_the_check() {
    let pki = TestPki::new();
    let stranger = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let fp = Thumbprint::of_der(&stranger.issuing.der()).1.to_string();
    let doc = serde_json::json!({"partners": [{"name": "Fabrikam", "issuer": fp,
        "match": {"commonName": "x"}, "functions": ["cert-info"]}]});
    let file = write(dir.path(), "p.json", doc.to_string().as_bytes());
    let (status, _, err) = run_to_exit(&[], &["partners", "check", &file]);
    assert_eq!(
        status.code(),
        Some(0),
        "without CAs the issuer is not checked: {err}"
    );
    let (status, _, err) = run_to_exit(
        &[("CLIENT_CERT_CA_PATH", &ca)],
        &["partners", "check", &file],
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("Fabrikam") && err.contains("not a CA"),
        "{err}"
    );
}

#[test]
fn from_settings_prints_a_document_that_decides_like_the_flat_settings() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let pinned = CertSpec::leaf("pinned", now(), 30).self_signed().unwrap();
    let pin = Thumbprint::of_der(&pinned.der()).0.to_string();
    let env = [
        ("CLIENT_CERT_CA_PATH", ca.as_str()),
        ("ALLOWED_CLIENT_CERT_COMMON_NAMES", "a.example, b.example"),
        ("ALLOWED_CLIENT_CERT_THUMBPRINTS", pin.as_str()),
    ];
    let (status, out, err) = run_to_exit(&env, &["partners", "from-settings"]);
    assert_eq!(status.code(), Some(0), "{err}");
    let doc = partners::parse(&out).unwrap();
    let set = PartnerSet::compile(&doc, Some(&pki.anchors())).unwrap();
    let mut flat = policy(&["a.example", "b.example"], Some(pki.anchors()));
    flat.thumbprints.insert(Thumbprint::of_der(&pinned.der()).0);
    let t = now();
    for cert in [
        pki.client("a.example"),
        pki.client("B.example"),
        pki.client("c.example"),
        other.client("a.example"),
        pinned,
    ] {
        assert_eq!(
            validate(&cert.der(), &flat, t).map(|a| a.matched_by),
            validate_partners(&cert.der(), &flat, &set, None, t).map(|(a, _)| a.matched_by)
        );
    }
}

#[test]
fn from_settings_says_when_it_cannot_be_exact() {
    let (status, out, err) = run_to_exit(
        &[("ALLOW_UNVERIFIED_COMMON_NAMES", "true")],
        &["partners", "from-settings"],
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(err.contains("ALLOW_UNVERIFIED_COMMON_NAMES"), "{err}");
    assert!(partners::parse(&out).is_ok());
}

#[test]
fn inspect_names_the_partner_and_compares_a_candidate_document_function_by_function() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let cert = pki.client("api.fabrikam.example");
    let pem = write(dir.path(), "client.pem", &cert.cert_pem().unwrap());
    let issuer = Thumbprint::of_der(&pki.issuing.der()).1.to_string();
    let doc = |functions: &[&str]| {
        serde_json::json!({"partners": [{"name": "Fabrikam", "issuer": issuer,
            "match": {"commonName": "api.fabrikam.example"}, "functions": functions}]})
        .to_string()
    };
    let current = doc(&["cert-info"]);
    let candidate = write(dir.path(), "candidate.json", doc(&["*"]).as_bytes());
    let (status, out, err) = run_to_exit(
        &[
            ("CLIENT_CERT_CA_PATH", &ca),
            ("CLIENT_CERT_PARTNERS", &current),
        ],
        &["inspect", &pem, "--compare", &candidate],
    );
    assert_eq!(status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains("partner:    Fabrikam (may call: cert-info)"),
        "{out}"
    );
    let line = |f: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(f))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("cert-info").ends_with("same"), "{out}");
    let outbound = line("outbound-mtls");
    assert!(
        outbound.contains("function_not_allowed (Fabrikam)")
            && outbound.contains("allow (Fabrikam)")
            && outbound.ends_with("DIFFERS"),
        "{out}"
    );
}
