//! End to end: the real `handler` binary with a file identity calls a loopback partner that
//! requires client certificates, behind the inbound policy (a pinned thumbprint).

#[path = "support/outbound.rs"]
mod outbound_support;

use mtls_handler::tools::pki::CertSpec;
use outbound_support::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Handler(Child);

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        identity.pkcs12("e2e-pw", &[&pki.client_ca.cert]).unwrap(),
    )
    .unwrap();
    let ca = pki.write_server_ca(dir.path());
    let caller = CertSpec::leaf("caller.example", now(), 5)
        .self_signed()
        .unwrap();

    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_handler"))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("OUTBOUND_CLIENT_CERT_PATH", &p12)
        .env("OUTBOUND_CLIENT_CERT_PASSWORD", "e2e-pw")
        .env("REMOTE_API_URL", partner.url())
        .env("REMOTE_API_CA_PATH", &ca)
        .env("REMOTE_API_TIMEOUT_SECONDS", "10")
        .env("ALLOWED_CLIENT_CERT_THUMBPRINTS", thumbprint(&caller.cert))
        .env_remove("KEY_VAULT_URL")
        .env_remove("OUTBOUND_CLIENT_CERT_NAME")
        .env_remove("OUTBOUND_CLIENT_CERT_THUMBPRINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _handler = Handler(child);

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/")).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the handler never started listening"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let denied = http
        .get(format!("{base}/api/outbound-mtls"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        denied.status(),
        403,
        "the inbound policy guards the function"
    );
    assert!(partner.presented().is_empty());

    let res = http
        .get(format!("{base}/api/outbound-mtls"))
        .header("X-ARR-ClientCert", caller.header_value())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let want = thumbprint(&identity.cert);
    assert_eq!(
        body,
        serde_json::json!({"statusCode": 200, "certificateThumbprint": want, "source": "file"})
    );
    assert_eq!(
        partner.presented(),
        vec![want.clone()],
        "the partner saw our certificate"
    );

    let health: serde_json::Value = http
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oc = &health["outboundCertificate"];
    assert_eq!(oc["state"], "ready");
    assert_eq!(oc["source"], "file");
    assert_eq!(oc["thumbprint"], want);
    assert!(oc["notAfter"].is_string());

    partner.set(503, Duration::ZERO);
    let res = http
        .get(format!("{base}/api/outbound-mtls"))
        .header("X-ARR-ClientCert", caller.header_value())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "remote_error_status");
    assert_eq!(body["statusCode"], 503);
}
