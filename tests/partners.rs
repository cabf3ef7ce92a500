//! Partners: the document and its schema, and which partner a certificate is. Every
//! certificate is generated for the test.

mod common;

use common::{now, policy, TestPki};
use mtls_handler::inbound::client_cert::partners::{self, PartnerSet, IMPLICIT_PARTNER};
use mtls_handler::inbound::client_cert::{
    validate, validate_partners, Accepted, CertError, MatchedBy, Policy, Thumbprint, TrustAnchors,
};
use mtls_handler::tools::pki::{CertSpec, Issued};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fingerprint(cert: &Issued) -> String {
    hex(&mtls_handler::inbound::client_cert::sha256(&cert.der()))
}

fn spki(cert: &Issued) -> String {
    let der = cert.cert.public_key().unwrap().public_key_to_der().unwrap();
    hex(&mtls_handler::inbound::client_cert::sha256(&der))
}

/// Two independent PKIs, both trusted.
struct TwoCas {
    a: TestPki,
    b: TestPki,
}

impl TwoCas {
    fn new() -> Self {
        Self {
            a: TestPki::new(),
            b: TestPki::new(),
        }
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::new(vec![
            self.a.root.cert.clone(),
            self.a.issuing.cert.clone(),
            self.b.root.cert.clone(),
            self.b.issuing.cert.clone(),
        ])
        .unwrap()
    }

    fn policy(&self) -> Policy {
        policy(&[], Some(self.anchors()))
    }
}

fn set(doc: &Value, trust: Option<&TrustAnchors>) -> PartnerSet {
    let doc = partners::parse(&doc.to_string()).unwrap();
    PartnerSet::compile(&doc, trust).unwrap()
}

fn decide(cert: &Issued, policy: &Policy, doc: &Value) -> Result<Accepted, CertError> {
    let set = set(doc, policy.trust.as_ref());
    validate_partners(&cert.der(), policy, &set, None, now()).map(|(a, _)| a)
}

fn partner(name: &str, issuer: Option<String>, blocks: Value, functions: &[&str]) -> Value {
    let mut p = json!({ "name": name, "match": blocks, "functions": functions });
    if let Some(i) = issuer {
        p["issuer"] = json!(i);
    }
    p
}

fn doc(partners: Vec<Value>) -> Value {
    json!({ "partners": partners })
}

fn leaf(cn: &str) -> CertSpec {
    CertSpec::leaf(cn, now(), 90)
}

// === every match kind ===

#[test]
fn a_dns_name_san_identifies_its_partner_when_issued_by_the_partners_ca() {
    let cas = TwoCas::new();
    let cert = leaf("ignored")
        .with_dns_names(&["other.example", "API.Fabrikam.example"])
        .issued_by(&cas.a.issuing)
        .unwrap();
    let d = doc(vec![partner(
        "Fabrikam",
        Some(fingerprint(&cas.a.issuing)),
        json!({"dnsName": "api.fabrikam.example"}),
        &["cert-info"],
    )]);
    let ok = decide(&cert, &cas.policy(), &d).unwrap();
    assert_eq!(ok.partner.name, "Fabrikam");
    assert_eq!(ok.matched_by, MatchedBy::DnsName);
    assert!(ok.partner.allows("cert-info") && !ok.partner.allows("outbound-mtls"));
}

#[test]
fn a_spiffe_uri_san_identifies_its_partner_exactly() {
    let cas = TwoCas::new();
    let id = "spiffe://northwind.example/payments/api";
    let cert = leaf("x")
        .with_uris(&[id])
        .issued_by(&cas.b.issuing)
        .unwrap();
    let other = leaf("x")
        .with_uris(&["spiffe://northwind.example/payments/API"])
        .issued_by(&cas.b.issuing)
        .unwrap();
    let d = doc(vec![partner(
        "Northwind",
        Some("CN=Test Issuing CA".to_owned()),
        json!({"uri": id}),
        &["*"],
    )]);
    // The issuer given by subject, as cert-info shows it (both test PKIs' issuing CAs
    // have this subject, so it names both).
    let ok = decide(&cert, &cas.policy(), &d).unwrap();
    assert_eq!(
        (ok.partner.name.as_str(), ok.matched_by),
        ("Northwind", MatchedBy::Uri)
    );
    assert_eq!(
        decide(&other, &cas.policy(), &d).unwrap_err(),
        CertError::NotAllowlisted
    );
}

#[test]
fn an_email_san_identifies_its_partner_ignoring_case() {
    let cas = TwoCas::new();
    let cert = leaf("x")
        .with_emails(&["Ops@Contoso.example"])
        .issued_by(&cas.a.issuing)
        .unwrap();
    let d = doc(vec![partner(
        "Contoso ops",
        Some(fingerprint(&cas.a.issuing)),
        json!({"email": "ops@contoso.example"}),
        &["*"],
    )]);
    let ok = decide(&cert, &cas.policy(), &d).unwrap();
    assert_eq!(ok.matched_by, MatchedBy::Email);
}

#[test]
fn a_serial_number_as_cert_info_shows_it_identifies_one_certificate_of_the_issuer() {
    let cas = TwoCas::new();
    let cert = leaf("batch").issued_by(&cas.a.issuing).unwrap();
    let sibling = leaf("batch").issued_by(&cas.a.issuing).unwrap();
    let serial = validate(
        &cert.der(),
        &common::pinned(&[Thumbprint::of_der(&cert.der()).1]),
        now(),
    )
    .unwrap()
    .info
    .serial_number;
    // Pasted with colons and a leading zero byte.
    let pasted: Vec<String> = format!("00{serial}")
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_lowercase())
        .collect();
    let d = doc(vec![partner(
        "Batch",
        Some(fingerprint(&cas.a.issuing)),
        json!({"serialNumber": pasted.join(":"), "commonName": "batch"}),
        &["*"],
    )]);
    let ok = decide(&cert, &cas.policy(), &d).unwrap();
    assert_eq!(ok.matched_by, MatchedBy::SerialNumber);
    assert_eq!(
        decide(&sibling, &cas.policy(), &d).unwrap_err(),
        CertError::NotAllowlisted,
        "same CN, other serial: all fields of a block must match"
    );
}

#[test]
fn an_spki_pin_survives_a_renewal_with_the_same_key_without_any_chain() {
    let first = leaf("pinned").self_signed().unwrap();
    let renewed = leaf("pinned")
        .with_validity(now() - 60, now() + 400 * 86_400)
        .issued_by_with_key(&first, first.key.clone())
        .unwrap();
    let stranger = leaf("pinned").self_signed().unwrap();
    let d = doc(vec![partner(
        "Pinned",
        None,
        json!({"spkiSha256": spki(&first)}),
        &["*"],
    )]);
    let p = policy(&[], None);
    assert_eq!(decide(&first, &p, &d).unwrap().matched_by, MatchedBy::Spki);
    assert_eq!(decide(&renewed, &p, &d).unwrap().partner.name, "Pinned");
    assert_eq!(
        decide(&stranger, &p, &d).unwrap_err(),
        CertError::NotAllowlisted
    );
}

#[test]
fn thumbprint_pins_of_both_hashes_identify_a_self_signed_partner() {
    let a = leaf("a").self_signed().unwrap();
    let b = leaf("b").self_signed().unwrap();
    let (a1, _) = Thumbprint::of_der(&a.der());
    let d = doc(vec![
        partner("A", None, json!({"thumbprintSha1": a1.to_string()}), &["*"]),
        partner(
            "B",
            None,
            json!({"thumbprintSha256": fingerprint(&b)}),
            &["*"],
        ),
    ]);
    let p = policy(&[], None);
    assert_eq!(decide(&a, &p, &d).unwrap().partner.name, "A");
    let ok = decide(&b, &p, &d).unwrap();
    assert_eq!(
        (ok.partner.name.as_str(), ok.matched_by),
        ("B", MatchedBy::Thumbprint)
    );
}

#[test]
fn a_common_name_alone_identifies_a_partner_bound_to_its_issuer() {
    let cas = TwoCas::new();
    let cert = cas.a.client("api-client.fabrikam.example");
    let d = doc(vec![partner(
        "Fabrikam",
        Some(fingerprint(&cas.a.issuing)),
        json!({"commonName": "API-Client.Fabrikam.example"}),
        &["*"],
    )]);
    let ok = decide(&cert, &cas.policy(), &d).unwrap();
    assert_eq!(ok.matched_by, MatchedBy::CommonName);
}

// === issuer binding ===

#[test]
fn the_same_common_name_from_another_trusted_ca_is_refused_by_issuer_binding() {
    let cas = TwoCas::new();
    let genuine = cas.a.client("api-client.fabrikam.example");
    let impostor = cas.b.client("api-client.fabrikam.example");
    let d = doc(vec![partner(
        "Fabrikam",
        Some(fingerprint(&cas.a.issuing)),
        json!({"commonName": "api-client.fabrikam.example"}),
        &["*"],
    )]);
    assert!(decide(&genuine, &cas.policy(), &d).is_ok());
    let err = decide(&impostor, &cas.policy(), &d).unwrap_err();
    assert_eq!(err.code(), "wrong_issuer", "{err}");
    assert!(err.to_string().contains("Fabrikam"), "{err}");
}

#[test]
fn two_partners_with_the_same_name_field_from_two_cas_are_told_apart_by_issuer() {
    let cas = TwoCas::new();
    let d = doc(vec![
        partner(
            "A",
            Some(fingerprint(&cas.a.issuing)),
            json!({"commonName": "shared.example"}),
            &["cert-info"],
        ),
        partner(
            "B",
            Some(fingerprint(&cas.b.issuing)),
            json!({"commonName": "shared.example"}),
            &["outbound-mtls"],
        ),
    ]);
    let a = decide(&cas.a.client("shared.example"), &cas.policy(), &d).unwrap();
    let b = decide(&cas.b.client("shared.example"), &cas.policy(), &d).unwrap();
    assert_eq!(
        (a.partner.name.as_str(), b.partner.name.as_str()),
        ("A", "B")
    );
}

#[test]
fn a_name_match_without_a_trusted_chain_is_an_untrusted_chain() {
    let cas = TwoCas::new();
    let self_signed = leaf("api-client.fabrikam.example").self_signed().unwrap();
    let d = doc(vec![partner(
        "Fabrikam",
        Some(fingerprint(&cas.a.issuing)),
        json!({"commonName": "api-client.fabrikam.example"}),
        &["*"],
    )]);
    let err = decide(&self_signed, &cas.policy(), &d).unwrap_err();
    assert_eq!(err.code(), "untrusted_chain");
}

#[test]
fn a_pin_with_an_issuer_also_needs_the_chain_to_that_issuer() {
    let cas = TwoCas::new();
    let cert = cas.b.client("pinned");
    let d = doc(vec![partner(
        "Pinned",
        Some(fingerprint(&cas.a.issuing)),
        json!({"thumbprintSha256": fingerprint(&cert)}),
        &["*"],
    )]);
    assert_eq!(
        decide(&cert, &cas.policy(), &d).unwrap_err().code(),
        "wrong_issuer"
    );
}

#[test]
fn an_issuer_that_is_not_a_configured_ca_fails_compilation_naming_the_partner() {
    let cas = TwoCas::new();
    let other = TestPki::new();
    let d = partners::parse(
        &doc(vec![partner(
            "Fabrikam",
            Some(fingerprint(&other.issuing)),
            json!({"commonName": "x"}),
            &["*"],
        )])
        .to_string(),
    )
    .unwrap();
    let err = PartnerSet::compile(&d, Some(&cas.anchors())).unwrap_err();
    assert_eq!(err.index, 0);
    assert!(
        err.to_string().contains("Fabrikam") && err.to_string().contains("CLIENT_CERT_CA_PATH")
    );
    assert!(
        PartnerSet::compile(&d, None).is_err(),
        "an issuer needs CAs at all"
    );
}

// === rotation and ambiguity ===

#[test]
fn during_a_rotation_the_old_and_the_new_certificate_both_identify_the_partner() {
    let cas = TwoCas::new();
    let old = cas.a.client("old.fabrikam.example");
    let new = leaf("x")
        .with_dns_names(&["new.fabrikam.example"])
        .issued_by(&cas.b.issuing)
        .unwrap();
    let d = doc(vec![json!({
        "name": "Fabrikam",
        "issuer": [fingerprint(&cas.a.issuing), fingerprint(&cas.b.issuing)],
        "match": [{"commonName": "old.fabrikam.example"}, {"dnsName": "new.fabrikam.example"}],
        "functions": ["*"],
    })]);
    assert_eq!(
        decide(&old, &cas.policy(), &d).unwrap().partner.name,
        "Fabrikam"
    );
    assert_eq!(
        decide(&new, &cas.policy(), &d).unwrap().partner.name,
        "Fabrikam"
    );
}

#[test]
fn a_certificate_matching_two_partners_is_refused_as_ambiguous() {
    let cas = TwoCas::new();
    let cert = leaf("shared.example")
        .with_dns_names(&["shared.example"])
        .issued_by(&cas.a.issuing)
        .unwrap();
    let d = doc(vec![
        partner(
            "One",
            Some(fingerprint(&cas.a.issuing)),
            json!({"commonName": "shared.example"}),
            &["*"],
        ),
        partner(
            "Two",
            Some(fingerprint(&cas.a.issuing)),
            json!({"dnsName": "shared.example"}),
            &["*"],
        ),
    ]);
    let err = decide(&cert, &cas.policy(), &d).unwrap_err();
    assert_eq!(
        err,
        CertError::AmbiguousPartner {
            partners: vec!["One".into(), "Two".into()]
        }
    );
    assert_eq!(err.code(), "ambiguous_partner");
}

// === the flat settings as the implicit partner ===

#[test]
fn the_flat_settings_decide_exactly_as_before_as_the_implicit_partner() {
    let pki = TestPki::new();
    let other = TestPki::new();
    let pinned_self_signed = leaf("pinned").self_signed().unwrap();
    let mut flat = policy(&["api-client.contoso.com"], Some(pki.anchors()));
    flat.thumbprints
        .insert(Thumbprint::of_der(&pinned_self_signed.der()).1);
    let implicit = PartnerSet::from_policy(&flat);
    let cases = [
        pki.client("api-client.contoso.com"),
        pki.client("someone-else"),
        other.client("api-client.contoso.com"),
        pinned_self_signed,
        leaf("api-client.contoso.com").self_signed().unwrap(),
    ];
    let t = now();
    for cert in &cases {
        let old = validate(&cert.der(), &flat, t);
        let new = validate_partners(&cert.der(), &flat, &implicit, None, t).map(|(a, _)| a);
        assert_eq!(old, new);
        if let Ok(a) = new {
            assert_eq!(a.partner.name, IMPLICIT_PARTNER);
            assert!(a.partner.allows("outbound-mtls"));
        }
    }
}

#[test]
fn unverified_common_names_stay_unverified_in_the_implicit_partner() {
    let mut flat = policy(&["api-client.contoso.com"], None);
    flat.allow_unverified_common_names = true;
    let cert = leaf("api-client.contoso.com").self_signed().unwrap();
    let set = PartnerSet::from_policy(&flat);
    assert!(validate_partners(&cert.der(), &flat, &set, None, now()).is_ok());
}

// === the document and its schema ===

fn schema() -> jsonschema::Validator {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("partners.schema.json")).unwrap())
            .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn the_example_documents_validate_against_the_schema_and_parse() {
    let v = schema();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/partners");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        partners::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 2);
}

const PIN: &str = "9f2b6c1e0a4d3b5c7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";

fn good_documents() -> Vec<Value> {
    vec![
        json!({"partners": []}),
        json!({"$schema": "./partners.schema.json", "partners": []}),
        json!({"partners": [{"name": "a", "match": {"thumbprintSha256": PIN}, "functions": ["*"]}]}),
        json!({"partners": [{"name": "a", "match": {"thumbprintSha256": "9F:2B 6C1E0A4D3B5C7E8F9A0B1C2D3E4F5A6B7C8D9E0F1A2B3C4D5E6F7A8B9C0D"}, "functions": ["cert-info"]}]}),
        json!({"partners": [{"name": "a", "issuer": "CN=CA", "match": {"commonName": "x", "dnsName": "y"}, "functions": ["cert-info", "outbound-mtls"], "notAfterWarningDays": 0}]}),
        json!({"partners": [{"name": "a", "issuer": ["CN=CA", PIN], "match": [{"uri": "spiffe://x/y"}, {"email": "a@b"}], "functions": ["*"]}]}),
        json!({"partners": [{"name": "a", "match": [{"serialNumber": "01:02", "issuer": PIN}, {"spkiSha256": PIN}], "functions": ["*"]}]}),
        json!({"partners": [{"name": "a b", "issuer": "O=x, CN=y", "match": {"serialNumber": "0"}, "functions": ["x_y-1"], "notAfterWarningDays": 3650}]}),
    ]
}

fn bad_documents() -> Vec<Value> {
    let p = |extra: Value| {
        let mut base = json!({"name": "a", "match": {"thumbprintSha256": PIN}, "functions": ["*"]});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        json!({ "partners": [base] })
    };
    vec![
        json!({}),
        json!([]),
        json!({"partners": {}}),
        json!({"partners": [], "extra": 1}),
        p(json!({"name": null})),
        p(json!({"name": ""})),
        p(json!({"name": " padded"})),
        p(json!({"name": "tab\there"})),
        p(json!({"match": null})),
        p(json!({"match": []})),
        p(json!({"match": {}})),
        p(json!({"match": {"thumbprintSha256": "abc"}})),
        p(json!({"match": {"thumbprintSha1": PIN}})),
        p(json!({"match": {"thumbprintSha256": PIN, "colour": "red"}})),
        p(json!({"match": {"commonName": "no issuer"}})),
        p(json!({"match": [{"thumbprintSha256": PIN}, {"dnsName": "no issuer"}]})),
        p(json!({"match": {"commonName": ""}, "issuer": "CN=x"})),
        p(json!({"match": {"serialNumber": "xyz"}, "issuer": "CN=x"})),
        p(json!({"issuer": []})),
        p(json!({"issuer": "not a ca"})),
        p(json!({"issuer": "9f2b6c1e0a4d3b5c7e8f9a0b1c2d3e4f5a6b7c8d"})),
        p(json!({"functions": null})),
        p(json!({"functions": []})),
        p(json!({"functions": ["*", "cert-info"]})),
        p(json!({"functions": ["cert info"]})),
        p(json!({"functions": "*"})),
        p(json!({"notAfterWarningDays": -1})),
        p(json!({"notAfterWarningDays": 3651})),
        p(json!({"notAfterWarningDays": "30"})),
        p(json!({"unknown": true})),
    ]
}

#[test]
fn the_parser_and_the_schema_agree_on_good_and_bad_documents() {
    let v = schema();
    for d in good_documents() {
        assert!(v.is_valid(&d), "schema refused {d}");
        assert!(
            partners::parse(&d.to_string()).is_ok(),
            "parser refused {d}: {:?}",
            partners::parse(&d.to_string())
        );
    }
    for d in bad_documents() {
        assert!(!v.is_valid(&d), "schema accepted {d}");
        assert!(
            partners::parse(&d.to_string()).is_err(),
            "parser accepted {d}"
        );
    }
}

#[test]
fn duplicate_partner_names_are_refused_by_the_parser() {
    // JSON Schema cannot say "unique by a member"; `handler partners check` can.
    let one = json!({"name": "A", "match": {"thumbprintSha256": PIN}, "functions": ["*"]});
    let two = json!({"name": "a", "match": {"thumbprintSha256": PIN}, "functions": ["*"]});
    let e = partners::parse(&json!({"partners": [one, two]}).to_string()).unwrap_err();
    assert_eq!(e.path, "$.partners");
}

// === robustness ===

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 :=*._-]{0,70}".prop_map(Value::from),
        Just(Value::from(PIN)),
        Just(Value::from("CN=x")),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let keys = prop_oneof![
            Just("partners".to_owned()),
            Just("name".to_owned()),
            Just("match".to_owned()),
            Just("issuer".to_owned()),
            Just("functions".to_owned()),
            Just("commonName".to_owned()),
            Just("thumbprintSha256".to_owned()),
            Just("serialNumber".to_owned()),
            Just("notAfterWarningDays".to_owned()),
            "[a-z]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_either_loads_or_gives_a_positioned_error(text in ".{0,400}") {
        if let Err(e) = partners::parse(&text) {
            prop_assert!(e.path.starts_with('$'));
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn any_json_document_either_loads_and_compiles_or_gives_a_clean_error(doc in arbitrary_json()) {
        let wrapped = json!({"partners": [doc.clone()]});
        for candidate in [doc, wrapped] {
            match partners::parse(&candidate.to_string()) {
                Ok(d) => {
                    // Compiles or names the partner at fault; never panics.
                    if let Err(e) = PartnerSet::compile(&d, None) {
                        prop_assert!(e.index < d.partners.0.len());
                    }
                }
                Err(e) => prop_assert!(e.line >= 1 && e.path.starts_with('$')),
            }
        }
    }
}
