//! Instruction cost of a full validation with the flat settings and with a 1,000-partner
//! document, for callgrind (wall-clock numbers on a shared machine are too noisy for a 10%
//! comparison):
//!
//! ```sh
//! cargo build --release --example partners_cost
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/pc.out \
//!     --toggle-collect='partners_cost::measure_*' target/release/examples/partners_cost
//! callgrind_annotate --inclusive=yes /tmp/pc.out | grep measure_
//! ```
//!
//! (and again with the argument `partners` for the cached path of the partners gate).
//!
//! Each `measure_flat`/`measure_partners` validates the same `N` distinct RSA-2048
//! certificates once (divide its inclusive instruction count by `N`); each
//! `measure_cached` makes `CACHED` cache hits through the gate (divide by `CACHED`).

use mtls_handler::inbound::cache::ValidationCache;
use mtls_handler::inbound::client_cert::partners::{self, PartnerSet};
use mtls_handler::inbound::client_cert::{
    sha256, validate, validate_partners, Policy, Thumbprint, TrustAnchors,
};
use mtls_handler::inbound::partners_state::{Active, PartnersState};
use mtls_handler::inbound::InboundGate;
use mtls_handler::tools::pki::{generate_key, CertSpec, KeyKind};
use std::collections::HashSet;
use std::hint::black_box;

const N: usize = 200;
const CN: &str = "api-client.contoso.com";

#[inline(never)]
fn measure_flat(certs: &[Vec<u8>], policy: &Policy, t: i64) -> usize {
    certs
        .iter()
        .filter(|c| black_box(validate(c, policy, t)).is_ok())
        .count()
}

#[inline(never)]
fn measure_partners(certs: &[Vec<u8>], policy: &Policy, set: &PartnerSet, t: i64) -> usize {
    certs
        .iter()
        .filter(|c| black_box(validate_partners(c, policy, set, None, t)).is_ok())
        .count()
}

/// `CACHED` cache hits of one header value through the gate.
#[inline(never)]
fn measure_cached(gate: &InboundGate, header: &str, t: i64) -> usize {
    (0..CACHED)
        .filter(|_| black_box(gate.check(&[header], t)).is_ok())
        .count()
}

const CACHED: usize = 10_000;

fn main() {
    let t = time::OffsetDateTime::now_utc().unix_timestamp();
    let ca = CertSpec::ca("Bench CA", t, 365)
        .with_key(KeyKind::Rsa2048)
        .self_signed()
        .expect("CA");
    let key = generate_key(KeyKind::Rsa2048).expect("key");
    let certs: Vec<Vec<u8>> = (0..N)
        .map(|_| {
            CertSpec::leaf(CN, t, 30)
                .with_key(KeyKind::Rsa2048)
                .issued_by_with_key(&ca, key.clone())
                .expect("leaf")
                .der()
        })
        .collect();
    let trust = || Some(TrustAnchors::new(vec![ca.cert.clone()]).expect("anchors"));
    let flat = Policy {
        thumbprints: HashSet::new(),
        common_names: vec![CN.to_owned()],
        trust: trust(),
        allow_unverified_common_names: false,
        allow_weak_keys: false,
    };
    let issuer = Thumbprint::Sha256(sha256(&ca.der())).to_string();
    let list: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let cn = if i == 500 {
                CN.to_owned()
            } else {
                format!("partner-{i}.example")
            };
            serde_json::json!({"name": format!("Partner {i}"), "issuer": issuer,
                "match": [{"commonName": cn}, {"dnsName": format!("api.partner-{i}.example")}],
                "functions": ["cert-info"]})
        })
        .collect();
    let doc = partners::parse(&serde_json::json!({ "partners": list }).to_string()).expect("doc");
    let documented = Policy {
        common_names: Vec::new(),
        trust: trust(),
        ..flat
    };
    let set = PartnerSet::compile(&doc, documented.trust.as_ref()).expect("compile");
    let flat = Policy {
        thumbprints: HashSet::new(),
        common_names: vec![CN.to_owned()],
        trust: trust(),
        allow_unverified_common_names: false,
        allow_weak_keys: false,
    };
    // Warm both paths once (lazy statics, first allocations), then measure.
    let _ = validate(&certs[0], &flat, t);
    let _ = validate_partners(&certs[0], &documented, &set, None, t);
    let a = measure_flat(&certs, &flat, t);
    let b = measure_partners(&certs, &documented, &set, t);
    assert_eq!((a, b), (N, N));
    println!("validated {N} certificates each way");

    let header = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&certs[0])
    };
    let flat_gate = InboundGate::new(flat, ValidationCache::new(10_000, 300));
    let partners_gate = InboundGate::new(documented, ValidationCache::new(10_000, 300))
        .with_partners(PartnersState::new(
            Active {
                set,
                source: "cost".to_owned(),
                sha256: String::new(),
                loaded_at: t,
            },
            None,
        ));
    assert!(flat_gate.check(&[header.as_str()], t).is_ok());
    assert!(partners_gate.check(&[header.as_str()], t).is_ok());
    // The cached path is measured for one gate per run: `partners` as the first argument
    // picks the partners gate.
    let gate = match std::env::args().nth(1).as_deref() {
        Some("partners") => &partners_gate,
        _ => &flat_gate,
    };
    assert_eq!(measure_cached(gate, &header, t), CACHED);
    println!("{CACHED} cached checks");
}
