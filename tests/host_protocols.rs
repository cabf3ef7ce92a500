//! The real `handler` binary driven as the Functions host drives it: forwarded HTTP
//! requests on `/api/{function}`, JSON invocations on `POST /{function}`, the readiness
//! probe, start-up failures and SIGTERM.

mod common;

use common::{now, run_to_exit, write, Handler, TestPki, PARTNER_CN};
use mtls_handler::tools::pki::CertSpec;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A handler trusting `pki` and allowlisting the partner CN.
fn start(pki: &TestPki, dir: &tempfile::TempDir) -> Handler {
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    Handler::start(&[
        ("CLIENT_CERT_CA_PATH", ca.as_str()),
        ("ALLOWED_CLIENT_CERT_COMMON_NAMES", PARTNER_CN),
    ])
}

async fn get(h: &Handler, path: &str, cert: Option<&str>) -> (u16, Value) {
    let mut req = client().get(h.url(path));
    if let Some(c) = cert {
        req = req.header("X-ARR-ClientCert", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// A JSON-mode invocation as the host sends it; returns the HTTP status and the parsed
/// `Outputs.res` (status code and decoded body) plus `Logs`.
async fn invoke(h: &Handler, function: &str, cert: Option<&str>) -> (u16, u16, Value, Value) {
    let mut headers = json!({ "Accept": ["*/*"], "User-Agent": ["curl/8"] });
    if let Some(c) = cert {
        headers["x-arr-clientcert"] = json!([c]);
    }
    let payload = json!({
        "Data": { "req": {
            "Url": format!("https://app.azurewebsites.net/api/{function}"),
            "Method": "GET", "Query": {}, "Headers": headers, "Params": {}, "Identities": []
        }},
        "Metadata": { "sys": { "MethodName": function, "UtcNow": "2026-11-30T07:00:00Z", "RandGuid": "0" } }
    });
    let res = client()
        .post(h.url(&format!("/{function}")))
        .json(&payload)
        .send()
        .await
        .unwrap();
    let http = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    let out = &body["Outputs"]["res"];
    let status = out["statusCode"].as_u64().unwrap_or(0) as u16;
    let inner: Value = serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap();
    (http, status, inner, body["Logs"].clone())
}

#[tokio::test]
async fn the_readiness_probe_answers_without_a_certificate() {
    let h = Handler::start(&[]);
    let res = client().get(h.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn health_needs_no_certificate() {
    let h = Handler::start(&[]);
    let (status, body) = get(&h, "/api/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn cert_info_describes_an_accepted_partner_in_forwarding_mode() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&pki, &dir);
    let partner = CertSpec::leaf(PARTNER_CN, now(), 30)
        .with_dns_names(&["partner.example"])
        .issued_by(&pki.issuing)
        .unwrap();
    let (status, body) = get(&h, "/api/cert-info", Some(&partner.header_value())).await;
    assert_eq!(status, 200, "{body}");
    let info = mtls_handler::inbound::client_cert::describe(&partner.der()).unwrap();
    assert_eq!(body["thumbprint"], info.thumbprint_sha1);
    assert_eq!(body["thumbprintSha256"], info.thumbprint_sha256);
    assert_eq!(body["commonName"], PARTNER_CN);
    assert_eq!(body["matchedBy"], "commonName");
    assert_eq!(body["dnsNames"], json!(["partner.example"]));
    assert!(body["issuer"].as_str().unwrap().contains("Test Issuing CA"));
    assert!(body["notAfter"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_missing_header_gets_the_seeds_message_and_a_stable_code() {
    let h = Handler::start(&[]);
    let (status, body) = get(&h, "/api/cert-info", None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"error": "client certificate header missing", "code": "missing"})
    );
}

#[tokio::test]
async fn a_certificate_from_nobody_we_know_gets_the_seeds_not_allowlisted_message() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&pki, &dir);
    let stranger = pki.client("stranger.example");
    let (status, body) = get(&h, "/api/cert-info", Some(&stranger.header_value())).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"error": "client certificate is not allowlisted", "code": "not_allowlisted"})
    );
    let (status, body) = get(&h, "/api/outbound-mtls", Some(&stranger.header_value())).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_allowlisted"))
    );
}

#[tokio::test]
async fn the_header_name_is_case_insensitive_and_two_values_are_malformed() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&pki, &dir);
    let v = pki.client(PARTNER_CN).header_value();
    let res = client()
        .get(h.url("/api/cert-info"))
        .header("x-arr-clientcert", &v)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client()
        .get(h.url("/api/cert-info"))
        .header("X-ARR-ClientCert", &v)
        .header("x-arr-clientcert", &v)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "malformed");
}

#[tokio::test]
async fn garbage_in_the_header_is_a_clean_403_not_a_5xx() {
    let h = Handler::start(&[]);
    let huge = "A".repeat(20_000);
    for bad in [
        "%%%",
        "QUJD",
        "-----BEGIN CERTIFICATE-----",
        huge.as_str(),
        "QU\tJD\t==",
    ] {
        let (status, body) = get(&h, "/api/cert-info", Some(bad)).await;
        assert_eq!(status, 403, "{bad:.20}");
        assert_eq!(body["code"], "malformed", "{bad:.20}");
    }
    let res = client()
        .get(h.url("/api/cert-info"))
        .header(
            "X-ARR-ClientCert",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe\x80").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn unknown_functions_and_methods_get_json_errors() {
    let h = Handler::start(&[]);
    let (status, body) = get(&h, "/api/nope", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let res = client()
        .delete(h.url("/api/cert-info"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "method_not_allowed"
    );
}

#[tokio::test]
async fn json_mode_gives_the_same_answers_as_forwarding_mode() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let h = start(&pki, &dir);
    let t = now();
    let accepted = pki.client(PARTNER_CN).header_value();
    let stranger = pki.client("stranger.example").header_value();
    let expired = CertSpec::leaf(PARTNER_CN, t, 1)
        .with_validity(t - 100, t - 10)
        .issued_by(&pki.issuing)
        .unwrap()
        .header_value();
    for cert in [
        Some(accepted.as_str()),
        Some(stranger.as_str()),
        Some(expired.as_str()),
        Some("junk"),
        None,
    ] {
        for function in ["cert-info", "health"] {
            let (fwd_status, fwd_body) = get(&h, &format!("/api/{function}"), cert).await;
            let (http, status, body, logs) = invoke(&h, function, cert).await;
            assert_eq!(http, 200, "JSON mode always answers the host with 200");
            assert_eq!(
                (status, &body),
                (fwd_status, &fwd_body),
                "{function} {cert:.10?}"
            );
            if status >= 400 {
                assert!(
                    logs.as_array().is_some_and(|l| !l.is_empty()),
                    "rejections are logged to the host"
                );
            }
        }
    }
}

#[tokio::test]
async fn json_mode_rejects_a_payload_that_is_not_json_with_a_400() {
    let h = Handler::start(&[]);
    let res = client()
        .post(h.url("/cert-info"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "invalid_invocation"
    );
    let res = client()
        .post(h.url("/no-such-function"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn json_mode_without_headers_in_the_payload_is_a_missing_certificate() {
    let h = Handler::start(&[]);
    let res = client()
        .post(h.url("/cert-info"))
        .json(&json!({"Data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["Outputs"]["res"]["statusCode"], 403);
    assert_eq!(
        body["Outputs"]["res"]["headers"]["Content-Type"],
        "application/json"
    );
}

#[test]
fn a_bad_thumbprint_setting_stops_start_up_naming_the_setting() {
    let (status, _, stderr) = run_to_exit(&[("ALLOWED_CLIENT_CERT_THUMBPRINTS", "12:34")], &[]);
    assert!(!status.success());
    assert!(
        stderr.contains("ALLOWED_CLIENT_CERT_THUMBPRINTS"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_log_format_stops_start_up_naming_the_setting() {
    let (status, _, stderr) = run_to_exit(&[("LOG_FORMAT", "xml")], &[]);
    assert!(!status.success());
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}

#[test]
fn an_unreadable_ca_path_stops_start_up_naming_the_setting() {
    let (status, _, stderr) = run_to_exit(&[("CLIENT_CERT_CA_PATH", "/nonexistent/ca.pem")], &[]);
    assert!(!status.success());
    assert!(stderr.contains("CLIENT_CERT_CA_PATH"), "{stderr}");
}

#[test]
fn a_ca_file_of_garbage_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "ca.pem",
        b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
    );
    let (status, _, stderr) = run_to_exit(&[("CLIENT_CERT_CA_PATH", path.as_str())], &[]);
    assert!(!status.success());
    assert!(stderr.contains("CLIENT_CERT_CA_PATH"), "{stderr}");
}

#[test]
fn the_http_worker_port_is_used_when_the_custom_handler_port_is_absent() {
    let port = common::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let mut listening = false;
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening);
}

#[test]
fn sigterm_stops_the_handler_with_exit_code_zero() {
    let h = Handler::start(&[]);
    let (status, log) = h.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn enabling_the_unverified_mode_logs_a_loud_warning() {
    let h = Handler::start(&[("ALLOW_UNVERIFIED_COMMON_NAMES", "true")]);
    let (_, log) = h.terminate();
    assert!(log.contains("INSECURE"), "{log}");
}

#[tokio::test]
async fn each_rejection_is_logged_once_with_its_code_and_thumbprint() {
    let h = Handler::start(&[]);
    let stranger = CertSpec::leaf("stranger", now(), 30).self_signed().unwrap();
    get(&h, "/api/cert-info", Some(&stranger.header_value())).await;
    get(&h, "/api/cert-info", Some(&stranger.header_value())).await; // second: from the cache
    let tp = mtls_handler::inbound::client_cert::describe(&stranger.der())
        .unwrap()
        .thumbprint_sha1;
    let log = h.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client certificate rejected"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("not_allowlisted") && l.contains(&tp)),
        "{log}"
    );
    assert!(
        !log.contains(&stranger.header_value()),
        "the certificate itself is never logged"
    );
}
