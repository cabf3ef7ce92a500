//! Criterion benchmarks of the inbound decision.
//!
//! - `full_validation/*`: the pure validator on a different certificate every iteration
//!   (parse, fingerprints, validity, EKU, allowlist, OpenSSL chain verification), i.e. what
//!   a cache miss costs. Throughput per core = 1 / time per iteration.
//! - `gate_cached`: the per-request path on a cache hit (header base64 decode, SHA-256,
//!   cache lookup).
//! - `header_decode`: base64 decoding alone.
//! - `via_intermediate/*` (issue 10): a full validation of a leaf issued by an intermediate
//!   CA that is not a trust anchor, under an RSA-2048 root: the intermediate from
//!   `CLIENT_CERT_INTERMEDIATES_PATH` (`configured`) or forwarded with the request
//!   (`forwarded`, as XFCC `Chain` / `Client-Cert-Chain` bring it), beside the same leaf
//!   issued by the anchor itself (`direct`). Two signature checks instead of one.
//! - `gate_cached_xfcc`, `gate_cached_rfc9440`: a cache hit in those header formats.
//! - `partners_1000/*`: the same with a partners document of 1,000 partners (each a CN and
//!   a DNS name bound to the CA by fingerprint) instead of the flat lists: a full validation
//!   (`full_validation_rsa_2048`, to compare with `full_validation/rsa_2048`), the cached
//!   gate path, and parsing + compiling the document (what a reload costs).
//!
//! Run: `cargo bench --bench validator`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mtls_handler::inbound::cache::ValidationCache;
use mtls_handler::inbound::client_cert::forwarded::{self, Forwarded, HeaderFormat};
use mtls_handler::inbound::client_cert::partners::{self, PartnerSet};
use mtls_handler::inbound::client_cert::{
    header, sha256, validate, validate_forwarded, validate_partners, Policy, Thumbprint,
    TrustAnchors,
};
use mtls_handler::inbound::partners_state::{Active, PartnersState};
use mtls_handler::inbound::InboundGate;
use mtls_handler::tools::pki::{generate_key, CertSpec, Issued, KeyKind};
use std::collections::HashSet;
use std::hint::black_box;

const CN: &str = "api-client.contoso.com";
const UNIQUE: usize = 2000;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A CA of `kind` and `UNIQUE` distinct client certificates it issued (one shared key,
/// distinct serials, so every DER differs).
fn fixture(kind: KeyKind) -> (Issued, Vec<Vec<u8>>) {
    let t = now();
    let ca = CertSpec::ca("Bench CA", t, 365)
        .with_key(kind)
        .self_signed()
        .unwrap();
    let key = generate_key(kind).unwrap();
    let certs = (0..UNIQUE)
        .map(|_| {
            CertSpec::leaf(CN, t, 30)
                .with_key(kind)
                .issued_by_with_key(&ca, key.clone())
                .unwrap()
                .der()
        })
        .collect();
    (ca, certs)
}

fn policy(ca: &Issued) -> Policy {
    Policy {
        thumbprints: HashSet::new(),
        common_names: vec![CN.to_owned()],
        trust: Some(TrustAnchors::new(vec![ca.cert.clone()]).unwrap()),
        allow_unverified_common_names: false,
        allow_weak_keys: false,
    }
}

fn full_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_validation");
    group.throughput(Throughput::Elements(1));
    for (name, kind) in [
        ("ecdsa_p256", KeyKind::EcP256),
        ("rsa_2048", KeyKind::Rsa2048),
    ] {
        let (ca, certs) = fixture(kind);
        let policy = policy(&ca);
        let t = now();
        assert!(validate(&certs[0], &policy, t).is_ok());
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % certs.len();
                black_box(validate(black_box(&certs[i]), &policy, t)).is_ok()
            })
        });
    }
    group.finish();
}

fn cached(c: &mut Criterion) {
    let (ca, certs) = fixture(KeyKind::EcP256);
    let gate = InboundGate::new(policy(&ca), ValidationCache::new(10_000, 300));
    let value = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&certs[0])
    };
    let t = now();
    assert!(gate.check(&[value.as_str()], t).is_ok());
    c.bench_function("gate_cached", |b| {
        b.iter(|| black_box(gate.check(black_box(&[value.as_str()]), t)).is_ok())
    });
    c.bench_function("header_decode", |b| {
        b.iter(|| black_box(header::decode(black_box(&[value.as_str()]))).is_ok())
    });
}

fn via_intermediate(c: &mut Criterion) {
    let t = now();
    let kind = KeyKind::Rsa2048;
    let root = CertSpec::ca("Bench Root", t, 365)
        .with_key(kind)
        .self_signed()
        .unwrap();
    let mid = CertSpec::ca("Bench Intermediate", t, 365)
        .with_key(kind)
        .issued_by(&root)
        .unwrap();
    let key = generate_key(kind).unwrap();
    let leaves = |issuer: &Issued| -> Vec<Vec<u8>> {
        (0..UNIQUE)
            .map(|_| {
                CertSpec::leaf(CN, t, 30)
                    .with_key(kind)
                    .issued_by_with_key(issuer, key.clone())
                    .unwrap()
                    .der()
            })
            .collect()
    };
    let (direct, via_mid) = (leaves(&root), leaves(&mid));
    let anchors = || TrustAnchors::new(vec![root.cert.clone()]).unwrap();
    let with = |trust: TrustAnchors| Policy {
        trust: Some(trust),
        ..policy(&root)
    };
    let plain = with(anchors());
    let configured = with(
        anchors()
            .with_intermediates(std::slice::from_ref(&mid.cert), false)
            .0,
    );
    let chain = vec![mid.der()];
    assert!(validate(&direct[0], &plain, t).is_ok());
    assert!(validate(&via_mid[0], &configured, t).is_ok());
    let forwarded = |leaf: &[u8]| Forwarded {
        leaf: leaf.to_vec(),
        chain: chain.clone(),
    };
    assert!(validate_forwarded(&forwarded(&via_mid[0]), &plain, None, None, t).is_ok());
    let requests: Vec<Forwarded> = via_mid.iter().map(|l| forwarded(l)).collect();

    let mut group = c.benchmark_group("via_intermediate");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("direct_rsa_2048", |b| {
        b.iter(|| {
            i = (i + 1) % UNIQUE;
            black_box(validate(black_box(&direct[i]), &plain, t)).is_ok()
        })
    });
    group.bench_function("configured_rsa_2048", |b| {
        b.iter(|| {
            i = (i + 1) % UNIQUE;
            black_box(validate(black_box(&via_mid[i]), &configured, t)).is_ok()
        })
    });
    group.bench_function("forwarded_rsa_2048", |b| {
        b.iter(|| {
            i = (i + 1) % UNIQUE;
            black_box(validate_forwarded(
                black_box(&requests[i]),
                &plain,
                None,
                None,
                t,
            ))
            .is_ok()
        })
    });
    group.finish();
}

/// 1,000 partners bound to `ca`; the benchmark certificates' CN is partner 500's.
fn partners_document(ca: &Issued) -> String {
    let issuer = Thumbprint::Sha256(sha256(&ca.der())).to_string();
    let partners: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let cn = if i == 500 {
                CN.to_owned()
            } else {
                format!("partner-{i}.example")
            };
            serde_json::json!({
                "name": format!("Partner {i}"),
                "issuer": issuer,
                "match": [{"commonName": cn}, {"dnsName": format!("api.partner-{i}.example")}],
                "functions": ["cert-info"],
            })
        })
        .collect();
    serde_json::json!({ "partners": partners }).to_string()
}

fn with_partners(c: &mut Criterion) {
    let mut group = c.benchmark_group("partners_1000");
    let (ca, certs) = fixture(KeyKind::Rsa2048);
    let policy = Policy {
        common_names: Vec::new(),
        ..policy(&ca)
    };
    let text = partners_document(&ca);
    let doc = partners::parse(&text).unwrap();
    let set = PartnerSet::compile(&doc, policy.trust.as_ref()).unwrap();
    let t = now();
    assert!(validate_partners(&certs[0], &policy, &set, None, t).is_ok());
    let mut i = 0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("full_validation_rsa_2048", |b| {
        b.iter(|| {
            i = (i + 1) % certs.len();
            black_box(validate_partners(
                black_box(&certs[i]),
                &policy,
                &set,
                None,
                t,
            ))
            .is_ok()
        })
    });
    group.bench_function("parse_and_compile", |b| {
        b.iter(|| {
            let doc = partners::parse(black_box(&text)).unwrap();
            black_box(PartnerSet::compile(&doc, policy.trust.as_ref()).unwrap()).len()
        })
    });
    // The cached path with the same kind of certificate as `gate_cached` (the header's
    // length matters there).
    let (ec_ca, ec_certs) = fixture(KeyKind::EcP256);
    let ec_policy = Policy {
        common_names: Vec::new(),
        ..crate::policy(&ec_ca)
    };
    let ec_doc = partners::parse(&partners_document(&ec_ca)).unwrap();
    let state = PartnersState::new(
        Active {
            set: PartnerSet::compile(&ec_doc, ec_policy.trust.as_ref()).unwrap(),
            source: "bench".to_owned(),
            sha256: String::new(),
            loaded_at: t,
        },
        None,
    );
    let gate = InboundGate::new(ec_policy, ValidationCache::new(10_000, 300)).with_partners(state);
    let value = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&ec_certs[0])
    };
    assert!(gate.check(&[value.as_str()], t).is_ok());
    group.bench_function("gate_cached", |b| {
        b.iter(|| black_box(gate.check(black_box(&[value.as_str()]), t)).is_ok())
    });
    group.finish();
}

fn cached_formats(c: &mut Criterion) {
    let (ca, certs) = fixture(KeyKind::EcP256);
    let t = now();
    for format in [HeaderFormat::Xfcc, HeaderFormat::Rfc9440] {
        let gate =
            InboundGate::new(policy(&ca), ValidationCache::new(10_000, 300)).with_format(format);
        let (value, _) = forwarded::encode(format, &certs[0], &[]);
        assert!(gate.check(&[value.as_str()], t).is_ok());
        c.bench_function(&format!("gate_cached_{format}"), |b| {
            b.iter(|| black_box(gate.check(black_box(&[value.as_str()]), t)).is_ok())
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = full_validation, cached, with_partners, via_intermediate, cached_formats
}
criterion_main!(benches);
