//! Outbound mTLS with a file identity (`OUTBOUND_CLIENT_CERT_PATH` or App Service's
//! `/var/ssl/private/<THUMBPRINT>.p12`) against a loopback partner that requires and
//! verifies client certificates; and every partner-side failure.

#[path = "support/outbound.rs"]
mod outbound_support;

use mtls_handler::host::http_error::ApiError;
use mtls_handler::outbound::{NetworkOverrides, Outbound, OutboundError};
use outbound_support::*;
use std::path::Path;
use std::time::Duration;

struct World {
    pki: Pki,
    partner: Partner,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let pki = Pki::new();
        let partner = Partner::start(&pki).await;
        Self {
            pki,
            partner,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Settings with the partner URL and its CA, plus `extra`.
    fn settings(&self, extra: &[(&str, String)]) -> Vec<(&'static str, String)> {
        let ca = self.pki.write_server_ca(self.dir.path());
        let mut v: Vec<(&'static str, String)> = vec![
            ("REMOTE_API_URL", self.partner.url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
        ];
        for (k, val) in extra {
            v.push((leak(k), val.clone()));
        }
        v
    }

    fn start(&self, extra: &[(&str, String)]) -> std::sync::Arc<Outbound> {
        Outbound::start(config(&self.settings(extra), NetworkOverrides::default()))
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.display().to_string()
}

fn answer(e: OutboundError) -> (u16, serde_json::Value) {
    let a = ApiError::Outbound(e).to_answer();
    (a.status.as_u16(), a.body_json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkcs12_file_identity_is_presented_to_the_partner_and_reported_ready() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-one");
    let p12 = write(
        &w.path("id.pfx"),
        &leaf.pkcs12("s3cret", &[&w.pki.client_ca.cert]).unwrap(),
    );
    let out = w.start(&[
        ("OUTBOUND_CLIENT_CERT_PATH", p12),
        ("OUTBOUND_CLIENT_CERT_PASSWORD", "s3cret".into()),
    ]);

    let ok = out.call().await.unwrap();
    assert_eq!(ok.status_code, 200);
    assert_eq!(ok.source, "file");
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
    assert_eq!(w.partner.presented(), vec![thumbprint(&leaf.cert)]);

    let status = serde_json::to_value(out.status()).unwrap();
    assert_eq!(status["state"], "ready");
    assert_eq!(status["source"], "file");
    assert_eq!(status["thumbprint"], thumbprint(&leaf.cert));
    assert!(status["notAfter"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        serde_json::to_value(&ok).unwrap(),
        serde_json::json!({"statusCode": 200, "certificateThumbprint": thumbprint(&leaf.cert), "source": "file"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pem_file_with_certificate_and_key_works() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-pem");
    let mut pem = leaf.key_pem().unwrap();
    pem.extend(leaf.cert_pem().unwrap());
    let path = write(&w.path("id.pem"), &pem);
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    let ok = out.call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
    assert_eq!(w.partner.presented(), vec![thumbprint(&leaf.cert)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_rc2_pkcs12_made_by_the_openssl_cli_loads() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-legacy");
    let der = legacy_pkcs12(w.dir.path(), &leaf, "legacy-pw");
    let path = write(&w.path("legacy-copy.p12"), &der);
    let out = w.start(&[
        ("OUTBOUND_CLIENT_CERT_PATH", path),
        ("OUTBOUND_CLIENT_CERT_PASSWORD", "legacy-pw".into()),
    ]);
    let ok = out.call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_service_thumbprint_file_is_found_whatever_the_setting_case() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-app-service");
    let tp = thumbprint(&leaf.cert);
    let private = w.path("private");
    std::fs::create_dir(&private).unwrap();
    write(
        &private.join(format!("{tp}.p12")),
        &leaf.pkcs12("", &[]).unwrap(),
    );
    let mut c = config(
        &w.settings(&[("OUTBOUND_CLIENT_CERT_THUMBPRINT", tp.to_lowercase())]),
        NetworkOverrides::default(),
    );
    match &mut c.file {
        Some(mtls_handler::outbound::FileConfig::Thumbprint { dir, .. }) => *dir = private,
        other => panic!("expected a thumbprint source, got {other:?}"),
    }
    let out = Outbound::start(c);
    let ok = out.call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, tp);
    assert_eq!(ok.source, "file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_answers_503_naming_the_setting_and_the_path() {
    let w = World::new().await;
    let missing = w.path("nope.pfx").display().to_string();
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", missing.clone())]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    assert_eq!(body["code"], "outbound_identity_unavailable");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("OUTBOUND_CLIENT_CERT_PATH") && msg.contains(&missing),
        "{msg}"
    );
    assert!(msg.contains("not found"), "{msg}");
    assert_eq!(out.status().state, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_answers_503_without_revealing_either_password() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-pw");
    let path = write(
        &w.path("id.pfx"),
        &leaf.pkcs12("the-right-one", &[]).unwrap(),
    );
    let out = w.start(&[
        ("OUTBOUND_CLIENT_CERT_PATH", path),
        ("OUTBOUND_CLIENT_CERT_PASSWORD", "the-wrong-one".into()),
    ]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("wrong password"), "{msg}");
    assert!(!msg.contains("the-right-one") && !msg.contains("the-wrong-one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_pkcs12_answers_503() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-corrupt");
    let mut der = leaf.pkcs12("", &[]).unwrap();
    der.truncate(der.len() / 2);
    let path = write(&w.path("id.pfx"), &der);
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    assert!(
        body["error"].as_str().unwrap().contains("PKCS#12"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_not_used() {
    let w = World::new().await;
    let n = now();
    let leaf = mtls_handler::tools::pki::CertSpec::leaf("outbound-expired", n, 1)
        .with_validity(n - 86_400 * 10, n - 60)
        .issued_by(&w.pki.client_ca)
        .unwrap();
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert!(w.partner.presented().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_source_or_partner_url_the_answer_is_503_saying_what_is_missing() {
    let w = World::new().await;
    let out = w.start(&[]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("OUTBOUND_CLIENT_CERT_PATH"));
    assert_eq!(out.status().state, "unavailable");

    let out = Outbound::start(config(&[], NetworkOverrides::default()));
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    assert_eq!(body["code"], "outbound_not_configured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_2xx_partner_answer_is_a_502_carrying_the_status_code() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-503");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    w.partner.set(418, Duration::ZERO);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 502);
    assert_eq!(body["code"], "remote_error_status");
    assert_eq!(body["statusCode"], 418);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_partner_times_out_as_a_502_with_its_own_code() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-slow");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = w.start(&[
        ("OUTBOUND_CLIENT_CERT_PATH", path),
        ("REMOTE_API_TIMEOUT_SECONDS", "1".into()),
    ]);
    w.partner.set(200, Duration::from_secs(5));
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 502);
    assert_eq!(body["code"], "remote_timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_partner_is_a_502_with_its_own_code() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-down");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ca = w.pki.write_server_ca(w.dir.path());
    let out = Outbound::start(config(
        &[
            (
                "REMOTE_API_URL",
                format!("https://127.0.0.1:{}/", closed.port()),
            ),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path),
        ],
        NetworkOverrides::default(),
    ));
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 502);
    assert_eq!(body["code"], "remote_unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_partner_does_not_trust_fails_the_handshake_as_a_502() {
    let w = World::new().await;
    let stranger = mtls_handler::tools::pki::CertSpec::leaf("stranger", now(), 5)
        .self_signed()
        .unwrap();
    let path = write(&w.path("id.pfx"), &stranger.pkcs12("", &[]).unwrap());
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 502);
    assert_eq!(body["code"], "remote_tls_failed", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_whose_server_certificate_is_not_trusted_fails_as_tls() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-untrusting");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = Outbound::start(config(
        &[
            ("REMOTE_API_URL", w.partner.url()),
            ("OUTBOUND_CLIENT_CERT_PATH", path),
        ],
        NetworkOverrides::default(),
    ));
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 502);
    assert_eq!(body["code"], "remote_tls_failed", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_file_is_picked_up_by_the_refresh_without_a_restart() {
    let w = World::new().await;
    let first = w.pki.client("outbound-v1");
    let second = w.pki.client("outbound-v2");
    let file = w.path("id.pfx");
    write(&file, &first.pkcs12("", &[]).unwrap());
    let mut c = config(
        &w.settings(&[("OUTBOUND_CLIENT_CERT_PATH", file.display().to_string())]),
        NetworkOverrides::default(),
    );
    c.refresh = Duration::from_millis(300);
    let out = Outbound::start(c);
    assert_eq!(
        out.call().await.unwrap().certificate_thumbprint,
        thumbprint(&first.cert)
    );

    write(&file, &second.pkcs12("", &[]).unwrap());
    let want = thumbprint(&second.cert);
    let seen = eventually(Duration::from_secs(10), || {
        let tp = out.status().thumbprint;
        let want = want.clone();
        async move { (tp.as_deref() == Some(want.as_str())).then_some(()) }
    })
    .await;
    assert!(seen.is_some(), "the refresh never picked up the new file");
    let ok = out.call().await.unwrap();
    assert_eq!(ok.certificate_thumbprint, want);
    assert_eq!(w.partner.presented().last(), Some(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_load_a_later_request_retries_and_succeeds() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-late");
    let file = w.path("late.pfx");
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", file.display().to_string())]);
    assert!(out.call().await.is_err());
    write(&file, &leaf.pkcs12("", &[]).unwrap());
    let ok = eventually(Duration::from_secs(10), || {
        let out = out.clone();
        async move { out.call().await.ok() }
    })
    .await
    .expect("a later request should load the file");
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
}
