//! End to end: the real `handler` binary with a file identity calls a loopback partner that
//! requires client certificates, behind the inbound policy (a pinned thumbprint), in both
//! host protocols; its logs are captured and searched for secrets. Also: a certificate
//! "file" that is a FIFO or a device, and URLs with secrets in start-up errors.

#[path = "support/outbound.rs"]
mod outbound_support;

mod common;

use mtls_handler::tools::pki::CertSpec;
use outbound_support::{now, thumbprint, Partner, Pki};
use std::time::{Duration, Instant};

const PASSWORD: &str = "e2e-pfx-password-Zq8w";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .no_proxy()
        .build()
        .unwrap()
}

/// The SHA-1 fingerprint as the `openssl` CLI prints it (uppercase hex, no colons): an
/// independent check of the thumbprints the handler reports.
fn openssl_cli_sha1(pem: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl CLI");
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_uppercase()
}

async fn health(h: &common::Handler) -> serde_json::Value {
    http()
        .get(h.url("/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A JSON-mode invocation of `function` as the Functions host sends it; returns
/// `Outputs.res` (status code and parsed body).
async fn invoke(h: &common::Handler, function: &str, cert: &str) -> (u64, serde_json::Value) {
    let payload = serde_json::json!({
        "Data": { "req": {
            "Url": format!("https://app.azurewebsites.net/api/{function}"),
            "Method": "GET", "Query": {}, "Params": {}, "Identities": [],
            "Headers": { "X-ARR-ClientCert": [cert] }
        }},
        "Metadata": { "sys": { "MethodName": function, "UtcNow": "2026-11-30T07:00:00Z", "RandGuid": "0" } }
    });
    let res = http()
        .post(h.url(&format!("/{function}")))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "JSON mode answers the host with 200");
    let body: serde_json::Value = res.json().await.unwrap();
    let out = &body["Outputs"]["res"];
    let inner = serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap();
    (out["statusCode"].as_u64().unwrap_or(0), inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_calls_the_partner_with_its_file_certificate_and_reports_it_in_health() {
    let pki = Pki::new();
    let partner = Partner::start(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let identity = pki.client("outbound.e2e.example");
    let p12 = dir.path().join("outbound.pfx");
    std::fs::write(
        &p12,
        identity.pkcs12(PASSWORD, &[&pki.client_ca.cert]).unwrap(),
    )
    .unwrap();
    let ca = pki.write_server_ca(dir.path());
    let caller = CertSpec::leaf("caller.example", now(), 5)
        .self_signed()
        .unwrap();
    let url = partner.url();
    let (p12, ca) = (p12.display().to_string(), ca.display().to_string());
    let pin = thumbprint(&caller.cert);
    let h = common::Handler::start(&[
        ("RUST_LOG", "debug"),
        ("OUTBOUND_CLIENT_CERT_PATH", &p12),
        ("OUTBOUND_CLIENT_CERT_PASSWORD", PASSWORD),
        ("REMOTE_API_URL", &url),
        ("REMOTE_API_CA_PATH", &ca),
        ("REMOTE_API_TIMEOUT_SECONDS", "10"),
        ("ALLOWED_CLIENT_CERT_THUMBPRINTS", &pin),
    ]);

    let denied = http()
        .get(h.url("/api/outbound-mtls"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        denied.status(),
        403,
        "the inbound policy guards the function"
    );
    assert!(partner.presented().is_empty());

    let res = http()
        .get(h.url("/api/outbound-mtls"))
        .header("X-ARR-ClientCert", caller.header_value())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let want = thumbprint(&identity.cert);
    assert_eq!(want, openssl_cli_sha1(&identity.cert_pem().unwrap()));
    let expected =
        serde_json::json!({"statusCode": 200, "certificateThumbprint": want, "source": "file"});
    assert_eq!(body, expected);
    assert_eq!(
        partner.presented(),
        vec![want.clone()],
        "the partner saw our certificate"
    );

    // The same call in JSON mode (the host's invocation protocol) gives the same answer.
    assert_eq!(
        invoke(&h, "outbound-mtls", &caller.header_value()).await,
        (200, expected)
    );
    assert_eq!(partner.presented().len(), 2);

    let oc = &health(&h).await["outboundCertificate"];
    assert_eq!(oc["state"], "ready");
    assert_eq!(oc["source"], "file");
    assert_eq!(oc["thumbprint"], want);
    assert!(oc["notAfter"].is_string());

    partner.set(503, Duration::ZERO);
    let res = http()
        .get(h.url("/api/outbound-mtls"))
        .header("X-ARR-ClientCert", caller.header_value())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "remote_error_status");
    assert_eq!(body["statusCode"], 503);
    let (status, body) = invoke(&h, "outbound-mtls", &caller.header_value()).await;
    assert_eq!(
        (status, &body["code"]),
        (502, &serde_json::json!("remote_error_status"))
    );

    // Everything it logged, at debug level: the certificate's password and key never.
    let (_, log) = h.terminate();
    assert!(log.contains("outbound certificate loaded"), "{log}");
    assert!(log.contains("partner call answered"), "{log}");
    assert!(!log.contains(PASSWORD), "the password was logged:\n{log}");
    assert!(!log.contains("PRIVATE KEY"), "a key was logged:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_dev_zero_as_the_certificate_file_is_unavailable_in_health_and_sigterm_still_stops_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("outbound.pfx");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for path in [fifo.display().to_string(), "/dev/zero".to_owned()] {
        let h = common::Handler::start(&[
            ("OUTBOUND_CLIENT_CERT_PATH", &path),
            ("REMOTE_API_URL", "https://127.0.0.1:9/"),
            ("REMOTE_API_TIMEOUT_SECONDS", "2"),
        ]);
        let deadline = Instant::now() + Duration::from_secs(15);
        let state = loop {
            let state = health(&h).await["outboundCertificate"]["state"].clone();
            if state != "loading" || Instant::now() > deadline {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(state, "unavailable", "{path}");
        let (status, log) = h.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "{path}: SIGTERM did not stop it\n{log}"
        );
    }
}

#[test]
fn secrets_in_urls_never_reach_start_up_errors() {
    for (setting, value, secrets) in [
        (
            "REMOTE_API_URL",
            "http://svc:Pa55w0rd@partner.example/api?code=S3cretK3y",
            ["Pa55w0rd", "S3cretK3y"],
        ),
        (
            "REMOTE_API_URL",
            "https://svc:Pa55w0rd@/api?code=S3cretK3y",
            ["Pa55w0rd", "S3cretK3y"],
        ),
        (
            "KEY_VAULT_URL",
            "https://v.vault.azure.net/?sig=S3cretK3y&user=Pa55w0rd",
            ["Pa55w0rd", "S3cretK3y"],
        ),
        (
            "HTTPS_PROXY",
            "socks5://proxyuser:Pa55w0rd@proxy.example:1080/?S3cretK3y",
            ["Pa55w0rd", "S3cretK3y"],
        ),
    ] {
        let (status, stdout, stderr) =
            common::run_to_exit(&[(setting, value), ("OUTBOUND_CLIENT_CERT_NAME", "c")], &[]);
        assert_eq!(status.code(), Some(1), "{setting}={value}\n{stderr}");
        assert!(stderr.contains(setting), "{stderr}");
        for secret in secrets {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{setting}: {secret} printed\n{stdout}\n{stderr}"
            );
        }
    }
}
