//! Fuzz target: the `X-ARR-ClientCert` header parser and the whole validator (chain,
//! pins, revocation), plus the CRL file parser, on arbitrary bytes.
//!
//! Every interpretation of the input runs on every execution: as one header value, as
//! two header values, as a DER certificate, and as a CRL file. The policy trusts the CA
//! in `seeds/ca.pem` (whose certificates are in the seed corpus, so chain verification is
//! reachable), pins one seed certificate and holds that CA's CRL.
//! Must not: panic, whatever the input. Any panic is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mtls_handler::inbound::client_cert::revocation::{http_distribution_points, split_crl_file};
use mtls_handler::inbound::client_cert::{
    describe, validate_header, validate_with_revocation, Crl, CrlSet, Policy, Revocation,
    Thumbprint, TrustAnchors,
};
use openssl::x509::X509;
use std::sync::{Arc, OnceLock};

struct Fixture {
    policy: Policy,
    crls: CrlSet,
    /// An hour after the seed leaf's notBefore: inside every seed's validity, and fixed,
    /// so a run repeats exactly.
    now: i64,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let cas = X509::stack_from_pem(include_bytes!("../seeds/ca.pem")).unwrap_or_default();
        let trust = TrustAnchors::new(cas).ok();
        let mut crls = Vec::new();
        if let Some(trust) = &trust {
            for der in split_crl_file(include_bytes!("../seeds/crl.pem")).unwrap_or_default() {
                if let Ok(crl) = Crl::verify(&der, trust, "seed") {
                    crls.push(Arc::new(crl));
                }
            }
        }
        let pinned = X509::from_pem(include_bytes!("../seeds/pinned.pem"))
            .and_then(|c| c.to_der())
            .map(|der| Thumbprint::of_der(&der).1)
            .ok();
        let now = X509::from_pem(include_bytes!("../seeds/good.pem"))
            .and_then(|c| c.to_der())
            .ok()
            .and_then(|der| describe(&der).ok())
            .map_or(0, |info| info.not_before + 3600);
        Fixture {
            now,
            policy: Policy {
                thumbprints: pinned.into_iter().collect(),
                common_names: vec!["api-client.contoso.com".to_owned()],
                trust,
                allow_unverified_common_names: false,
                allow_weak_keys: false,
            },
            crls: CrlSet::new(crls),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = validate_header(&[data], &f.policy, f.now);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = validate_header(&[a, b], &f.policy, f.now);
    for fail_open in [false, true] {
        let r = Revocation {
            crls: &f.crls,
            fail_open,
        };
        let _ = validate_with_revocation(data, &f.policy, Some(&r), f.now);
    }
    let _ = http_distribution_points(data);
    if let (Ok(ders), Some(trust)) = (split_crl_file(data), f.policy.trust.as_ref()) {
        for der in ders {
            let _ = Crl::verify(&der, trust, "fuzz");
        }
    }
});
