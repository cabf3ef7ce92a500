//! Every front end's header format, end to end (issue 10): the real `handler` binary with
//! `CLIENT_CERT_HEADER_FORMAT` set, fed the headers each front end sends, and the real
//! `handler front-end` in every format with the real `curl` presenting certificates (and a
//! chain) in a TLS handshake.
//!
//! The same partner certificate is accepted and the same attacks are refused in all four
//! formats; malformed values of each kind give 403 `malformed`; a header of another format
//! (or the App Service header when another one is configured) is not read.

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;
use mtls_handler::inbound::client_cert::forwarded::{self, HeaderFormat};
use mtls_handler::tools::pki::{generate_key, Issued, KeyKind};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// The demo PKI as `handler dev-certs` writes it, in a temporary directory.
fn demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    mtls_handler::tools::dev_certs::write(dir.path(), false, now()).unwrap();
    dir
}

/// A certificate from the demo directory, with its key when there is one (a fresh,
/// unrelated key otherwise: only the certificate is ever sent in a header).
fn read(dir: &Path, name: &str) -> Issued {
    let pem = std::fs::read(dir.join(name)).unwrap();
    let key = std::fs::read(dir.join(name.replace(".pem", ".key"))).ok();
    Issued {
        cert: openssl::x509::X509::stack_from_pem(&pem).unwrap().remove(0),
        key: key.map_or_else(
            || generate_key(KeyKind::EcP256).unwrap(),
            |k| openssl::pkey::PKey::private_key_from_pem(&k).unwrap(),
        ),
    }
}

/// The handler's settings for `format` (the header a rewrite rule names for
/// `pem-urlencoded`), trusting `ca`.
fn settings(format: HeaderFormat, ca: &Path) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("CLIENT_CERT_HEADER_FORMAT", format.name().to_owned()),
        ("CLIENT_CERT_CA_PATH", ca.to_str().unwrap().to_owned()),
    ];
    if format == HeaderFormat::PemUrlencoded {
        env.push(("CLIENT_CERT_HEADER", "X-Client-Certificate".to_owned()));
    }
    env
}

fn header_name(format: HeaderFormat) -> &'static str {
    format.default_header().unwrap_or("X-Client-Certificate")
}

/// `GET /api/cert-info` on the handler with exactly these extra headers: (status, code or
/// common name).
fn get(port: u16, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = String::from("GET /api/cert-info HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// The headers `format`'s front end sends for `cert` with `chain`.
fn sent(format: HeaderFormat, cert: &Issued, chain: &[&Issued]) -> Vec<(String, String)> {
    let chain: Vec<Vec<u8>> = chain.iter().map(|c| c.der()).collect();
    let (value, chain_value) = forwarded::encode(format, &cert.der(), &chain);
    let mut h = vec![(header_name(format).to_owned(), value)];
    if let Some(c) = chain_value {
        h.push(("Client-Cert-Chain".to_owned(), c));
    }
    h
}

fn as_refs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn code(answer: &(u16, serde_json::Value)) -> (u16, String) {
    (
        answer.0,
        answer.1["code"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn the_same_partner_is_accepted_and_the_same_attacks_refused_in_every_format() {
    let dir = demo();
    let d = dir.path();
    let client = read(d, "client.pem");
    let expired = read(d, "expired.pem");
    let untrusted = read(d, "untrusted.pem");
    // The issuing CA, the first certificate of ca.pem.
    let ca = read(d, "ca.pem");
    for format in HeaderFormat::ALL {
        let env = settings(format, &d.join("ca.pem"));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_handler, port) = start_handler(&env);
        let ask = |cert: &Issued| code(&get(port, &as_refs(&sent(format, cert, &[]))));

        let ok = get(port, &as_refs(&sent(format, &client, &[])));
        assert_eq!(ok.0, 200, "{format}: {ok:?}");
        assert_eq!(ok.1["commonName"], CLIENT_CN, "{format}");
        assert_eq!(ask(&untrusted), (403, "untrusted_chain".into()), "{format}");
        assert_eq!(ask(&expired), (403, "expired".into()), "{format}");
        assert_eq!(ask(&ca), (403, "ca_certificate".into()), "{format}");
        assert_eq!(code(&get(port, &[])), (403, "missing".into()), "{format}");

        // App Service's header is read only when it is the configured one.
        let arr = client.header_value();
        let via_arr = code(&get(port, &[("X-ARR-ClientCert", &arr)]));
        if format == HeaderFormat::Arr {
            assert_eq!(via_arr.0, 200);
        } else {
            assert_eq!(via_arr, (403, "missing".into()), "{format}");
        }
        // The configured header holding another format's encoding is not read as one.
        for other in HeaderFormat::ALL.into_iter().filter(|f| *f != format) {
            let (value, _) = forwarded::encode(other, &client.der(), &[]);
            let got = code(&get(port, &[(header_name(format), &value)]));
            assert_eq!(got, (403, "malformed".into()), "{format} got {other}");
        }
    }
}

#[test]
fn malformed_values_of_each_kind_give_403_malformed_in_their_format() {
    let dir = demo();
    let d = dir.path();
    let client = {
        let pem = std::fs::read(d.join("client.pem")).unwrap();
        openssl::x509::X509::from_pem(&pem)
            .unwrap()
            .to_der()
            .unwrap()
    };
    let pem = forwarded::pem(&client);
    let enc = forwarded::url_encode(&pem);
    let hash = mtls_handler::inbound::client_cert::Thumbprint::of_der(&client)
        .1
        .to_string()
        .to_ascii_lowercase();
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&client)
    };
    let big = "A".repeat(17 * 1024);
    let cases: Vec<(HeaderFormat, Vec<(&str, String)>)> = vec![
        (HeaderFormat::Arr, vec![("X-ARR-ClientCert", "%%%".into())]),
        (HeaderFormat::Arr, vec![("X-ARR-ClientCert", big.clone())]),
        // XFCC: two elements, an unterminated quote, no Cert, a wrong Hash, bad
        // percent-encoding, two certificates in Cert.
        (
            HeaderFormat::Xfcc,
            vec![(
                "X-Forwarded-Client-Cert",
                format!("Cert=\"{enc}\",Cert=\"{enc}\""),
            )],
        ),
        (
            HeaderFormat::Xfcc,
            vec![("X-Forwarded-Client-Cert", format!("Cert=\"{enc}"))],
        ),
        (
            HeaderFormat::Xfcc,
            vec![("X-Forwarded-Client-Cert", format!("Hash={hash}"))],
        ),
        (
            HeaderFormat::Xfcc,
            vec![(
                "X-Forwarded-Client-Cert",
                format!("Hash={};Cert=\"{enc}\"", "0".repeat(64)),
            )],
        ),
        (
            HeaderFormat::Xfcc,
            vec![("X-Forwarded-Client-Cert", "Cert=\"%2-----\"".into())],
        ),
        (
            HeaderFormat::Xfcc,
            vec![(
                "X-Forwarded-Client-Cert",
                format!("Cert=\"{}\"", forwarded::url_encode(&format!("{pem}{pem}"))),
            )],
        ),
        (
            HeaderFormat::Xfcc,
            vec![("X-Forwarded-Client-Cert", big.clone())],
        ),
        // RFC 9440: not a byte sequence, parameters, an empty chain member, a chain
        // member that is not a certificate.
        (HeaderFormat::Rfc9440, vec![("Client-Cert", b64.clone())]),
        (
            HeaderFormat::Rfc9440,
            vec![("Client-Cert", format!(":{b64}:;x=1"))],
        ),
        (
            HeaderFormat::Rfc9440,
            vec![
                ("Client-Cert", format!(":{b64}:")),
                ("Client-Cert-Chain", ":QUJD:, ,".into()),
            ],
        ),
        (
            HeaderFormat::Rfc9440,
            vec![
                ("Client-Cert", format!(":{b64}:")),
                ("Client-Cert-Chain", ":QUJD:".into()),
            ],
        ),
        // URL-encoded PEM: bad percent-encoding, two PEM blocks, not PEM.
        (
            HeaderFormat::PemUrlencoded,
            vec![("X-Client-Certificate", format!("{enc}%G1"))],
        ),
        (
            HeaderFormat::PemUrlencoded,
            vec![(
                "X-Client-Certificate",
                forwarded::url_encode(&format!("{pem}{pem}")),
            )],
        ),
        (
            HeaderFormat::PemUrlencoded,
            vec![("X-Client-Certificate", b64.clone())],
        ),
    ];
    let mut handlers = std::collections::HashMap::new();
    for (format, headers) in cases {
        let port = handlers
            .entry(format)
            .or_insert_with(|| {
                let env = settings(format, &d.join("ca.pem"));
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                start_handler(&env)
            })
            .1;
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = code(&get(port, &h));
        assert_eq!(got, (403, "malformed".into()), "{format}: {headers:?}");
    }
}

#[test]
fn a_format_setting_that_cannot_work_stops_start_up_naming_the_setting() {
    let out = run_handler(
        &[],
        &[
            ("CLIENT_CERT_HEADER_FORMAT", "pem-urlencoded"),
            ("FUNCTIONS_CUSTOMHANDLER_PORT", &free_port().to_string()),
        ],
        None,
    );
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("CLIENT_CERT_HEADER"), "{text}");
}

/// Curl through `handler front-end` in `format` presenting `cert` (a PEM file, optionally
/// with its chain) and `key`.
fn through_front_end(
    dir: &Path,
    handler_env: &[(&str, &str)],
    front_end_args: &[&str],
    cert: &Path,
    key: &Path,
) -> (u16, serde_json::Value) {
    let (_handler, handler_port) = start_handler(handler_env);
    let (_front, port) = start_front_end_args(
        &dir.join("server.pem"),
        &dir.join("server.key"),
        handler_port,
        front_end_args,
    );
    let out = run_bounded(
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--noproxy", "*", "--cacert"])
            .arg(dir.join("ca.pem"))
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .args(["-w", "\n%{http_code}"])
            .arg(format!("https://localhost:{port}/api/cert-info")),
        None,
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", ""));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn curl_through_the_front_end_is_accepted_in_every_format() {
    let dir = demo();
    let d = dir.path();
    for format in HeaderFormat::ALL {
        let env = settings(format, &d.join("ca.pem"));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut args = vec!["--header-format", format.name()];
        if format == HeaderFormat::PemUrlencoded {
            args.extend(["--header", "X-Client-Certificate"]);
        }
        let got = through_front_end(d, &env, &args, &d.join("client.pem"), &d.join("client.key"));
        assert_eq!(got.0, 200, "{format}: {got:?}");
        assert_eq!(got.1["commonName"], CLIENT_CN, "{format}");
    }
}

#[test]
fn a_partner_under_an_intermediate_is_accepted_through_the_forwarded_chain_or_the_intermediates_path(
) {
    let dir = demo();
    let d = dir.path();
    // What the partner presents in the handshake: its leaf and its intermediate.
    let mut chain = std::fs::read(d.join("client-via-intermediate.pem")).unwrap();
    chain.extend(std::fs::read(d.join("intermediate.pem")).unwrap());
    let chain_file = d.join("partner-chain.pem");
    std::fs::write(&chain_file, chain).unwrap();
    let key = d.join("client-via-intermediate.key");
    for format in [HeaderFormat::Xfcc, HeaderFormat::Rfc9440] {
        let env = settings(format, &d.join("ca.pem"));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let forwarded = ["--header-format", format.name(), "--forward-chain"];
        let got = through_front_end(d, &env, &forwarded, &chain_file, &key);
        assert_eq!(got.0, 200, "{format}: {got:?}");
        // The same handshake, the chain not forwarded: the intermediate is not trusted.
        let leaf_only = ["--header-format", format.name()];
        let got = through_front_end(d, &env, &leaf_only, &chain_file, &key);
        assert_eq!(
            (got.0, got.1["code"].as_str()),
            (403, Some("untrusted_chain")),
            "{format}"
        );
    }
    // App Service forwards only the leaf: the intermediates path completes it.
    let intermediates = d.join("intermediate.pem");
    let mut env = settings(HeaderFormat::Arr, &d.join("ca.pem"));
    env.push((
        "CLIENT_CERT_INTERMEDIATES_PATH",
        intermediates.to_str().unwrap().to_owned(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let got = through_front_end(d, &env, &[], &chain_file, &key);
    assert_eq!(got.0, 200, "{got:?}");
}

#[test]
fn the_front_end_replaces_certificate_headers_the_client_sent() {
    let dir = demo();
    let d = dir.path();
    let echo = EchoBackend::start();
    let (_front, port) = start_front_end_args(
        &d.join("server.pem"),
        &d.join("server.key"),
        echo.port,
        &["--header-format", "xfcc"],
    );
    let out = run_bounded(
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--noproxy", "*", "--cacert"])
            .arg(d.join("ca.pem"))
            .arg("--cert")
            .arg(d.join("client.pem"))
            .arg("--key")
            .arg(d.join("client.key"))
            .args(["-H", "X-Forwarded-Client-Cert: Cert=forged"])
            .args(["-H", "Client-Cert: :Zm9yZ2Vk:"])
            .args(["-H", "X-ARR-ClientCert: Zm9yZ2Vk"])
            .arg(format!("https://localhost:{port}/api/cert-info")),
        None,
        Duration::from_secs(30),
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let xfcc = echoed(&body, "x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{body}");
    assert!(xfcc[0].starts_with("Hash="), "{xfcc:?}");
    assert!(echoed(&body, "client-cert").is_empty(), "{body}");
    assert!(echoed(&body, "x-arr-clientcert").is_empty(), "{body}");
}

#[test]
fn inspect_reads_a_pasted_xfcc_line_and_takes_intermediates() {
    let dir = demo();
    let d = dir.path();
    let leaf = openssl::x509::X509::from_pem(
        &std::fs::read(d.join("client-via-intermediate.pem")).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap();
    let mid = openssl::x509::X509::from_pem(&std::fs::read(d.join("intermediate.pem")).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    let ca = d.join("ca.pem");
    let env = [("CLIENT_CERT_CA_PATH", ca.to_str().unwrap())];
    // A whole XFCC line with the chain: accepted.
    let (xfcc, _) = forwarded::encode(HeaderFormat::Xfcc, &leaf, &[mid]);
    let line = format!("X-Forwarded-Client-Cert: {xfcc}\n");
    let out = run_handler(
        &["inspect", "--format", "xfcc", "-"],
        &env,
        Some(line.as_bytes()),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Forwarded chain: 1"), "{text}");
    // The leaf alone: rejected, then accepted with --intermediates.
    let leaf_file = d.join("client-via-intermediate.pem");
    let leaf_arg = leaf_file.to_str().unwrap();
    let out = run_handler(&["inspect", leaf_arg], &env, None);
    assert_eq!(out.status.code(), Some(1));
    let mid_file = d.join("intermediate.pem");
    let out = run_handler(
        &[
            "inspect",
            "--intermediates",
            mid_file.to_str().unwrap(),
            leaf_arg,
        ],
        &env,
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A mangled line is unreadable input (exit 2), with the reason.
    let out = run_handler(
        &["inspect", "--format", "xfcc", "-"],
        &env,
        Some(b"Cert=\"unterminated\n"),
    );
    assert_eq!(out.status.code(), Some(2));
}

/// `POST /cert-info` in the host's JSON mode with these request headers: the inner status
/// and body.
fn invoke_json(port: u16, headers: serde_json::Value) -> (u16, serde_json::Value) {
    let payload = serde_json::json!({
        "Data": { "req": {
            "Url": "https://app.example/api/cert-info",
            "Method": "GET", "Query": {}, "Headers": headers, "Params": {}, "Identities": []
        }},
        "Metadata": { "sys": { "MethodName": "cert-info", "UtcNow": "2026-11-30T07:00:00Z", "RandGuid": "0" } }
    })
    .to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let req = format!(
        "POST /cert-info HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let outer: serde_json::Value = serde_json::from_str(body).unwrap();
    let res = &outer["Outputs"]["res"];
    let status = res["statusCode"].as_u64().unwrap_or(0) as u16;
    let inner = serde_json::from_str(res["body"].as_str().unwrap_or("null")).unwrap();
    (status, inner)
}

#[test]
fn json_mode_reads_the_configured_headers_too() {
    let dir = demo();
    let d = dir.path();
    let leaf = read(d, "client-via-intermediate.pem");
    let mid = read(d, "intermediate.pem");
    let env = settings(HeaderFormat::Rfc9440, &d.join("ca.pem"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_handler, port) = start_handler(&env);
    let (cert, chain) = forwarded::encode(HeaderFormat::Rfc9440, &leaf.der(), &[mid.der()]);
    let got = invoke_json(
        port,
        serde_json::json!({ "client-cert": [cert], "Client-Cert-Chain": [chain.unwrap()] }),
    );
    assert_eq!(got.0, 200, "{got:?}");
    let got = invoke_json(port, serde_json::json!({ "Client-Cert": [cert] }));
    assert_eq!(
        (got.0, got.1["code"].as_str()),
        (403, Some("untrusted_chain"))
    );
    let arr = read(d, "client.pem").header_value();
    let got = invoke_json(port, serde_json::json!({ "X-ARR-ClientCert": [arr] }));
    assert_eq!((got.0, got.1["code"].as_str()), (403, Some("missing")));
}
