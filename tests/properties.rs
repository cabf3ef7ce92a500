//! Property tests over the real HTTP server (`mtls_handler::host::server::run` on a
//! loopback port, reached by a real HTTP client), so every request takes the path
//! production takes (the server lifts `X-ARR-ClientCert` into the task-local the routes
//! read), with the real start-up path building the state from settings: a trusted CA, a
//! pinned certificate and current CRLs, so every branch of the gate is reachable.
//!
//! - any bytes in `X-ARR-ClientCert` (forwarding mode) give 200 or 403, never a 5xx or a
//!   panic;
//! - the same in every `CLIENT_CERT_HEADER_FORMAT` (`xfcc`, `rfc9440` with any bytes in
//!   `Client-Cert-Chain` too, `pem-urlencoded`): any bytes in the configured headers give 200
//!   or 403;
//! - any JSON-mode payload (arbitrary JSON, the host's shape with arbitrary values,
//!   non-JSON bytes) gets HTTP 200 with `Outputs`, or 400/413; never a 5xx.
//!
//! Case counts are modest (256) so the suite stays fast.

mod common;

use common::{crl, now, write, TestPki, PARTNER_CN};
use mtls_handler::host::config::Config;
use mtls_handler::host::function::AppState;
use mtls_handler::tools::pki::{CertSpec, Issued};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::HeaderValue;

const CASES: u32 = 256;

struct Fixture {
    rt: tokio::runtime::Runtime,
    /// `http://127.0.0.1:port` of the running server.
    base: String,
    client: reqwest::Client,
    good: Issued,
    pinned: Issued,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(&[])
}

/// The fixture with `extra` settings (e.g. another header format).
fn fixture_with(extra: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let good = pki.client(PARTNER_CN);
    let pinned = CertSpec::leaf("pinned.example", now(), 30)
        .self_signed()
        .unwrap();
    let t = now();
    let mut crls = crl(&pki.root, &[], t - 60, t + 86_400).to_pem().unwrap();
    crls.extend(crl(&pki.issuing, &[], t - 60, t + 86_400).to_pem().unwrap());
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let crl_path = write(dir.path(), "crls.pem", &crls);
    let pin = mtls_handler::inbound::client_cert::Thumbprint::of_der(&pinned.der())
        .1
        .to_string();
    let env: HashMap<String, String> = [
        ("CLIENT_CERT_CA_PATH", ca),
        ("CLIENT_CERT_CRL_PATH", crl_path),
        ("ALLOWED_CLIENT_CERT_THUMBPRINTS", pin),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .collect();
    let config = Config::from_env(&env).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let state: Arc<AppState> = {
        let _guard = rt.enter();
        mtls_handler::host::start::build_state_with(
            &config,
            mtls_handler::host::function::Registry::new(mtls_handler::functions::all()).unwrap(),
        )
        .unwrap()
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Runs whenever the tests drive the runtime; ends with it.
    rt.spawn(mtls_handler::host::server::run(
        listener,
        state,
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    Fixture {
        rt,
        base,
        client,
        good,
        pinned,
        _dir: dir,
    }
}

impl Fixture {
    fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        self.rt.block_on(async {
            let res = req.send().await.expect("the server answered");
            let status = res.status().as_u16();
            let body = res.bytes().await.expect("a whole body");
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        })
    }

    fn forwarded(&self, header: Option<HeaderValue>) -> (u16, Value) {
        let mut req = self.client.get(format!("{}/api/cert-info", self.base));
        if let Some(v) = header {
            req = req.header("X-ARR-ClientCert", v);
        }
        self.send(req)
    }

    /// `GET /api/cert-info` with these header values.
    fn with_headers(&self, headers: &[(&str, HeaderValue)]) -> (u16, Value) {
        let mut req = self.client.get(format!("{}/api/cert-info", self.base));
        for (name, value) in headers {
            req = req.header(*name, value.clone());
        }
        self.send(req)
    }

    fn invoke(&self, function: &str, body: Vec<u8>) -> (u16, Value) {
        let req = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("content-type", "application/json")
            .body(body);
        self.send(req)
    }
}

/// Bytes HTTP can carry in a header value (no CR, LF, NUL or other controls but tab).
fn header_bytes(raw: Vec<u8>) -> Vec<u8> {
    raw.into_iter()
        .filter(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
        .collect()
}

/// A valid header with random damage: flipped bytes, truncation, junk appended.
fn damaged(valid: String) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (
        prop::collection::vec((0..len, any::<u8>()), 0..4),
        0..=len,
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(flips, cut, tail)| {
            let mut v = valid.clone().into_bytes();
            for (i, b) in flips {
                v[i] = b;
            }
            v.truncate(cut.max(1));
            v.extend(tail);
            header_bytes(v)
        })
}

#[test]
fn any_bytes_in_the_certificate_header_give_200_or_403_never_a_5xx() {
    let f = fixture();
    // The fixture itself: the three kinds of answer are reachable.
    assert_eq!(f.forwarded(None).0, 403);
    let good = HeaderValue::from_str(&f.good.header_value()).unwrap();
    assert_eq!(f.forwarded(Some(good)).0, 200);
    let pinned = HeaderValue::from_str(&f.pinned.header_value()).unwrap();
    assert_eq!(f.forwarded(Some(pinned)).0, 200);

    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096).prop_map(header_bytes),
        "[A-Za-z0-9+/=\\s-]{0,3000}".prop_map(String::into_bytes),
        damaged(f.good.header_value()),
        damaged(f.pinned.header_value()),
    ];
    let mut runner = TestRunner::new(RunnerConfig {
        cases: CASES,
        ..RunnerConfig::default()
    });
    runner
        .run(&strategy, |bytes| {
            let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                return Ok(());
            };
            let (status, body) = f.forwarded(Some(value));
            prop_assert!(status == 200 || status == 403, "status {status}: {body}");
            if status == 403 {
                prop_assert!(body["code"].is_string(), "403 without a code: {body}");
                prop_assert!(body["error"].is_string());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_bytes_in_any_configured_header_format_give_200_or_403_never_a_5xx() {
    use mtls_handler::inbound::client_cert::forwarded::{encode, HeaderFormat};
    for format in [
        HeaderFormat::Xfcc,
        HeaderFormat::Rfc9440,
        HeaderFormat::PemUrlencoded,
    ] {
        let name = format.default_header().unwrap_or("X-Client-Certificate");
        let f = fixture_with(&[
            ("CLIENT_CERT_HEADER_FORMAT", format.name()),
            ("CLIENT_CERT_HEADER", name),
        ]);
        // The good certificate as this front end sends it, with a chain where it can.
        let issuing = TestPki::new().issuing.der();
        let (good, chain) = encode(format, &f.good.der(), &[issuing]);
        let mut headers = vec![(name, HeaderValue::from_str(&good).unwrap())];
        if let Some(c) = &chain {
            headers.push(("Client-Cert-Chain", HeaderValue::from_str(c).unwrap()));
        }
        // The fixture: accepted as sent (the chain's issuer is another PKI's: still a
        // decision, not a failure), and missing without the header.
        let status = f.with_headers(&headers).0;
        assert!(status == 200 || status == 403, "{format}: {status}");
        assert_eq!(
            f.with_headers(&headers[..1]).0,
            if format == HeaderFormat::Rfc9440 {
                200
            } else {
                status
            },
            "{format}"
        );
        assert_eq!(f.with_headers(&[]).0, 403);

        let value = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048).prop_map(header_bytes),
            "[A-Za-z0-9+/=;,:\"%\\ -]{0,1500}".prop_map(String::into_bytes),
            damaged(good.clone()),
        ];
        let chain_value = prop_oneof![
            Just(None),
            damaged(chain.clone().unwrap_or_else(|| ":QUJD:".to_owned())).prop_map(Some),
            "[A-Za-z0-9+/=:, ]{0,600}".prop_map(|s| Some(s.into_bytes())),
        ];
        let mut runner = TestRunner::new(RunnerConfig {
            cases: CASES / 4,
            ..RunnerConfig::default()
        });
        runner
            .run(&(value, chain_value), |(bytes, chain)| {
                let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                    return Ok(());
                };
                let mut headers = vec![(name, value)];
                if let Some(c) = chain.and_then(|c| HeaderValue::from_bytes(&c).ok()) {
                    headers.push(("Client-Cert-Chain", c));
                }
                let (status, body) = f.with_headers(&headers);
                prop_assert!(
                    status == 200 || status == 403,
                    "{format}: status {status}: {body}"
                );
                if status == 403 {
                    prop_assert!(body["code"].is_string(), "403 without a code: {body}");
                }
                Ok(())
            })
            .unwrap();
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Data".to_owned()),
        Just("req".to_owned()),
        Just("Headers".to_owned()),
        Just("X-ARR-ClientCert".to_owned()),
        Just("x-arr-clientcert".to_owned()),
        Just("Metadata".to_owned()),
        "[A-Za-z]{0,8}",
    ]
}

fn arbitrary_json(cert: String) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from(cert)),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Checks the JSON-mode contract for one answer.
fn clean_invocation_answer(status: u16, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(
        matches!(status, 200 | 400 | 413),
        "HTTP {status} for a JSON invocation: {body}"
    );
    if status == 200 {
        let inner = &body["Outputs"]["res"]["statusCode"];
        prop_assert!(
            matches!(inner.as_u64(), Some(200 | 403)),
            "inner status {inner}: {body}"
        );
    } else {
        prop_assert!(body["code"].is_string(), "{body}");
    }
    Ok(())
}

#[test]
fn any_json_mode_payload_gets_a_clean_answer_never_a_5xx() {
    let f = fixture();
    let cert = f.good.header_value();
    let shaped = (arbitrary_json(cert.clone()), arbitrary_json(cert.clone())).prop_map(
        |(headers, metadata)| {
            json!({"Data": {"req": {"Url": "http://x/api/cert-info", "Method": "GET",
                   "Headers": headers}}, "Metadata": metadata})
        },
    );
    let header_value = arbitrary_json(cert.clone()).prop_map(
        |v| json!({"Data": {"req": {"Headers": {"X-ARR-ClientCert": v}}}, "Metadata": {}}),
    );
    let strategy = prop_oneof![
        arbitrary_json(cert).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        shaped.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        header_value.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..512),
    ];
    let mut runner = TestRunner::new(RunnerConfig {
        cases: CASES,
        ..RunnerConfig::default()
    });
    runner
        .run(
            &(strategy, prop_oneof![Just("cert-info"), Just("health")]),
            |(body, function)| {
                let (status, answer) = f.invoke(function, body);
                clean_invocation_answer(status, &answer)
            },
        )
        .unwrap();
}

#[test]
fn huge_and_deeply_nested_payloads_get_413_or_400() {
    let f = fixture();
    let limit = mtls_handler::host::routes::invocation_limit(
        mtls_handler::host::config::DEFAULT_MAX_BODY_BYTES,
    );
    let huge = vec![b' '; limit + 1];
    let (status, body) = f.invoke("cert-info", huge);
    assert_eq!(status, 413, "{body}");

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (status, body) = f.invoke("cert-info", deep.into_bytes());
    assert_eq!(status, 400, "{body}");

    let deep_object = format!(
        r#"{{"Data": {{"req": {{"Headers": {{"X-ARR-ClientCert": {}1{}}}}}}}}}"#,
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let (status, body) = f.invoke("cert-info", deep_object.into_bytes());
    assert_eq!(status, 400, "{body}");

    // Just under the body limit, with a header value far over the 16 KiB certificate limit.
    let big_header = "A".repeat(900 * 1024);
    let payload = json!({"Data": {"req": {"Headers": {"X-ARR-ClientCert": [big_header]}}}});
    let (status, body) = f.invoke("cert-info", serde_json::to_vec(&payload).unwrap());
    assert_eq!(status, 200);
    assert_eq!(body["Outputs"]["res"]["statusCode"], 403);
    assert!(body["Outputs"]["res"]["body"]
        .as_str()
        .unwrap()
        .contains("malformed"));
}
