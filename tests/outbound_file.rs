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
    // App Service names the file in uppercase; here it is lowercase, so only the
    // case-insensitive scan of the directory finds it (the setting is uppercased).
    std::fs::rename(
        private.join(format!("{tp}.p12")),
        private.join(format!("{}.p12", tp.to_lowercase())),
    )
    .unwrap();
    let mut c = config(
        &w.settings(&[("OUTBOUND_CLIENT_CERT_THUMBPRINT", tp.clone())]),
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
    assert_eq!(
        w.partner.server.seen().len(),
        1,
        "an answer is never retried"
    );
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
    let mut c = config(
        &w.settings(&[("OUTBOUND_CLIENT_CERT_PATH", file.display().to_string())]),
        NetworkOverrides::default(),
    );
    // The background retry is a minute away: only a request's wake-up can load the file
    // within this test.
    c.retry_first = Duration::from_secs(60);
    c.retry_max = Duration::from_secs(60);
    c.retry_on_request_after = Duration::from_millis(100);
    let out = Outbound::start(c);
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

/// A certificate whose notAfter is `seconds` from now.
fn expiring_in(w: &World, cn: &str, seconds: i64) -> mtls_handler::tools::pki::Issued {
    let n = now();
    mtls_handler::tools::pki::CertSpec::leaf(cn, n, 1)
        .with_validity(n - 3600, n + seconds)
        .issued_by(&w.pki.client_ca)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_is_not_valid_yet_is_not_used() {
    let w = World::new().await;
    let n = now();
    let leaf = mtls_handler::tools::pki::CertSpec::leaf("outbound-future", n, 1)
        .with_validity(n + 3600, n + 86_400)
        .issued_by(&w.pki.client_ca)
        .unwrap();
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503);
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("not valid until"), "{msg}");
    assert!(w.partner.presented().is_empty());
    assert_eq!(out.status().state, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_certificate_stops_being_used_when_it_expires() {
    let w = World::new().await;
    let leaf = expiring_in(&w, "outbound-expiring", 5);
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    assert_eq!(
        out.call().await.unwrap().certificate_thumbprint,
        thumbprint(&leaf.cert)
    );
    let gone = eventually(Duration::from_secs(15), || {
        let state = out.status().state;
        async move { (state != "ready").then_some(()) }
    })
    .await;
    assert!(
        gone.is_some(),
        "the expired certificate is still reported ready"
    );
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert_eq!(
        w.partner.presented().len(),
        1,
        "only the call before expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_the_same_certificate_with_a_new_chain_sends_the_new_chain() {
    let w = World::new().await;
    // The partner trusts the client CA only: our certificate, issued by an intermediate,
    // is accepted only when we send the intermediate too.
    let n = now();
    let intermediate = mtls_handler::tools::pki::CertSpec::ca("Outbound Intermediate", n, 10)
        .issued_by(&w.pki.client_ca)
        .unwrap();
    let leaf = mtls_handler::tools::pki::CertSpec::leaf("outbound-chained", n, 5)
        .issued_by(&intermediate)
        .unwrap();
    let file = w.path("id.pfx");
    write(&file, &leaf.pkcs12("", &[]).unwrap());
    let mut c = config(
        &w.settings(&[("OUTBOUND_CLIENT_CERT_PATH", file.display().to_string())]),
        NetworkOverrides::default(),
    );
    c.refresh = Duration::from_millis(300);
    let out = Outbound::start(c);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("remote_tls_failed"))
    );

    write(&file, &leaf.pkcs12("", &[&intermediate.cert]).unwrap());
    let ok = eventually(Duration::from_secs(10), || {
        let out = out.clone();
        async move { out.call().await.ok() }
    })
    .await
    .expect("the reload never sent the intermediate");
    assert_eq!(ok.certificate_thumbprint, thumbprint(&leaf.cert));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_a_device_as_the_certificate_file_fails_the_load_at_once() {
    let w = World::new().await;
    let fifo = w.path("cert.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for path in [fifo.display().to_string(), "/dev/zero".to_owned()] {
        let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path.clone())]);
        let (status, body) = answer(out.call().await.unwrap_err());
        assert_eq!(status, 503, "{path}: {body}");
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.contains("not a regular file") && msg.contains(&path),
            "{msg}"
        );
        assert_eq!(out.status().state, "unavailable");
    }
    let big = w.path("big.pfx");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(mtls_handler::outbound::identity::MAX_FILE_BYTES + 1)
        .unwrap();
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", big.display().to_string())]);
    let (_, body) = answer(out.call().await.unwrap_err());
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("larger than 1048576 bytes"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_to_a_url_that_names_tls_and_certificates_is_unreachable() {
    let w = World::new().await;
    let leaf = w.pki.client("outbound-refused");
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
                format!(
                    "https://127.0.0.1:{}/api/tls/certificates/status?ssl=1",
                    closed.port()
                ),
            ),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path),
        ],
        NetworkOverrides::default(),
    ));
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(status, 502);
    assert_eq!(body["code"], "remote_unreachable", "{body}");
}

/// The log line of the one retry after a refused connection.
const RETRYING: &str = "partner refused the connection; retrying once";

/// A file identity calling `url` with `overrides`, logs captured on this thread.
fn start_logged(w: &World, url: String, overrides: NetworkOverrides) -> std::sync::Arc<Outbound> {
    let leaf = w.pki.client("outbound-retry");
    let path = write(&w.path("retry.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let ca = w.pki.write_server_ca(w.dir.path());
    Outbound::start(config(
        &[
            ("REMOTE_API_URL", url),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path),
        ],
        overrides,
    ))
}

// Current-thread runtimes below: the code under test logs on this thread, where the
// capture is installed.

#[tokio::test]
async fn a_partner_that_refused_the_first_connection_is_reached_on_the_one_retry() {
    let (logs, _guard) = LogCapture::this_thread();
    let w = World::new().await;
    // Bound but not listening: connections are refused until the retry is announced.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut pending = Some((socket, tx));
    logs.on(RETRYING, move || {
        if let Some((socket, tx)) = pending.take() {
            let _ = tx.send(socket.listen(16).unwrap());
        }
    });
    let out = start_logged(
        &w,
        format!("https://127.0.0.1:{}/partner/ping", addr.port()),
        NetworkOverrides::default(),
    );
    let call = out.call();
    tokio::pin!(call);
    let partner = tokio::select! {
        result = &mut call => panic!("the call ended before any retry: {result:?}"),
        listener = rx => Partner::start_on(&w.pki, listener.unwrap()),
    };
    let ok = call.await.unwrap();
    assert_eq!(ok.status_code, 200);
    assert_eq!(partner.presented().len(), 1);
    assert_eq!(logs.count(RETRYING), 1);
}

#[tokio::test]
async fn a_partner_that_keeps_refusing_is_tried_twice_then_reported_unreachable() {
    let (logs, _guard) = LogCapture::this_thread();
    let w = World::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = start_logged(
        &w,
        format!("https://127.0.0.1:{}/", closed.port()),
        NetworkOverrides::default(),
    );
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("remote_unreachable"))
    );
    assert_eq!(logs.count(RETRYING), 1, "{}", logs.text());
    assert_eq!(logs.count("partner call failed"), 1);
}

#[tokio::test]
async fn a_partner_name_that_does_not_resolve_is_unreachable_and_not_retried() {
    let (logs, _guard) = LogCapture::this_thread();
    let w = World::new().await;
    let overrides = NetworkOverrides {
        unresolvable: vec![PARTNER_HOST.into()],
        ..NetworkOverrides::default()
    };
    let out = start_logged(&w, w.partner.named_url(), overrides);
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("remote_unreachable"))
    );
    assert_eq!(logs.count(RETRYING), 0, "{}", logs.text());
    assert_eq!(logs.count("partner call failed"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed() {
    let w = World::new().await;
    let elsewhere = Partner::start(&w.pki).await;
    let leaf = w.pki.client("outbound-redirected");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let out = w.start(&[("OUTBOUND_CLIENT_CERT_PATH", path)]);
    for status in [301, 302, 307, 308] {
        w.partner.redirect(status, &elsewhere.url());
        let (code, body) = answer(out.call().await.unwrap_err());
        assert_eq!(code, 502);
        assert_eq!(body["code"], "remote_error_status");
        assert_eq!(body["statusCode"], status);
    }
    assert!(
        elsewhere.presented().is_empty(),
        "our certificate followed a redirect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_whose_body_is_still_arriving_at_the_deadline_is_a_timeout() {
    let w = World::new().await;
    let stalling = StallingPartner::start(&w.pki, 1000, 10).await;
    let leaf = w.pki.client("outbound-stalled");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let ca = w.pki.write_server_ca(w.dir.path());
    let out = Outbound::start(config(
        &[
            ("REMOTE_API_URL", stalling.url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path),
            ("REMOTE_API_TIMEOUT_SECONDS", "1".into()),
        ],
        NetworkOverrides::default(),
    ));
    let (status, body) = answer(out.call().await.unwrap_err());
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("remote_timeout")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_body_is_read_up_to_1_mib_and_the_rest_is_not_waited_for() {
    let w = World::new().await;
    // 1 MiB and a bit arrives, then the body stalls: the answer does not wait for it.
    let limit = mtls_handler::outbound::DRAIN_LIMIT;
    let stalling = StallingPartner::start(&w.pki, 4 * limit, limit + 64 * 1024).await;
    let leaf = w.pki.client("outbound-big-body");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let ca = w.pki.write_server_ca(w.dir.path());
    let out = Outbound::start(config(
        &[
            ("REMOTE_API_URL", stalling.url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path),
            ("REMOTE_API_TIMEOUT_SECONDS", "10".into()),
        ],
        NetworkOverrides::default(),
    ));
    let ok = out.call().await.unwrap();
    assert_eq!(ok.status_code, 200);
    assert_eq!(limit, 1 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_carries_the_partner_call_in_a_tunnel_unless_no_proxy_names_it() {
    let w = World::new().await;
    let proxy = ProxyStandIn::start(vec![(PARTNER_HOST.into(), w.partner.server.addr)]).await;
    let leaf = w.pki.client("outbound-proxied");
    let path = write(&w.path("id.pfx"), &leaf.pkcs12("", &[]).unwrap());
    let ca = w.pki.write_server_ca(w.dir.path());
    let direct = NetworkOverrides {
        resolve: vec![(PARTNER_HOST.into(), w.partner.server.addr)],
        ..NetworkOverrides::default()
    };
    let start = |extra: &[(&'static str, String)]| {
        let mut pairs = vec![
            ("REMOTE_API_URL", w.partner.named_url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path.clone()),
        ];
        pairs.extend(extra.iter().cloned());
        Outbound::start(config(&pairs, direct.clone()))
    };

    let out = start(&[("HTTPS_PROXY", proxy.url())]);
    assert_eq!(
        out.call().await.unwrap().certificate_thumbprint,
        thumbprint(&leaf.cert)
    );
    let port = w.partner.server.addr.port();
    assert_eq!(
        proxy
            .heads()
            .iter()
            .map(|h| h.lines().next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>(),
        vec![format!("CONNECT {PARTNER_HOST}:{port} HTTP/1.1")],
        "one tunnel, and the proxy saw nothing else"
    );

    // NO_PROXY (names match their subdomains; lowercase variables work too).
    let out = start(&[
        ("https_proxy", proxy.url()),
        ("no_proxy", "other.example,test".into()),
    ]);
    out.call().await.unwrap();
    // A loopback partner never goes through the proxy.
    let out = Outbound::start(config(
        &[
            ("REMOTE_API_URL", w.partner.url()),
            ("REMOTE_API_CA_PATH", ca.display().to_string()),
            ("OUTBOUND_CLIENT_CERT_PATH", path.clone()),
            ("ALL_PROXY", proxy.url()),
        ],
        NetworkOverrides::default(),
    ));
    out.call().await.unwrap();
    assert_eq!(proxy.heads().len(), 1, "{:?}", proxy.heads());
    assert_eq!(w.partner.presented().len(), 3);
}
