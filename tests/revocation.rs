//! Revocation: the pure CRL check, then the real `handler` binary reading CRL files,
//! noticing when they change, and fetching CRLs from loopback distribution points
//! (including a CA that never answers and one that answers far too much).

mod common;

use common::{crl, now, policy, write, Handler, TestPki, PARTNER_CN};
use mtls_handler::inbound::client_cert::revocation::check_chain;
use mtls_handler::inbound::client_cert::{
    validate_with_revocation, CertError, Crl, CrlError, CrlSet, Revocation, RevocationStatus,
    Thumbprint, TrustAnchors,
};
use mtls_handler::tools::pki::{CertSpec, Issued};
use openssl::x509::X509Crl;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400;

fn verified(crl: &X509Crl, anchors: &TrustAnchors) -> Result<Arc<Crl>, CrlError> {
    Crl::verify(&crl.to_der().unwrap(), anchors, "test").map(Arc::new)
}

fn set_of(crls: &[&X509Crl], anchors: &TrustAnchors) -> CrlSet {
    CrlSet::new(crls.iter().map(|c| verified(c, anchors).unwrap()))
}

/// CRLs from both CAs of `pki`, current for a week, revoking `revoked` (by whichever CA).
fn current_crls(pki: &TestPki, revoked_by_issuing: &[&Issued]) -> (X509Crl, X509Crl) {
    let t = now();
    let certs: Vec<_> = revoked_by_issuing.iter().map(|i| &i.cert).collect();
    (
        crl(&pki.root, &[], t - 60, t + 7 * DAY),
        crl(&pki.issuing, &certs, t - 60, t + 7 * DAY),
    )
}

fn check(
    der: &[u8],
    p: &mtls_handler::inbound::client_cert::Policy,
    set: &CrlSet,
    fail_open: bool,
) -> Result<RevocationStatus, CertError> {
    let r = Revocation {
        crls: set,
        fail_open,
    };
    validate_with_revocation(der, p, Some(&r), now()).map(|(_, status)| status)
}

// === the pure check ===

#[test]
fn a_client_certificate_on_its_issuers_crl_is_rejected_as_revoked() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let (root_crl, issuing_crl) = current_crls(&pki, &[&client]);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert_eq!(err.code(), "revoked");
    assert!(matches!(err, CertError::Revoked { issuer, .. } if issuer.contains("Test Issuing CA")));
    // Fail-open is about unknown status, never about a known revocation.
    assert_eq!(
        check(&client.der(), &p, &set, true).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_client_certificate_absent_from_current_crls_is_accepted_until_the_next_update() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let other = pki.client(PARTNER_CN);
    let (root_crl, issuing_crl) = current_crls(&pki, &[&other]);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let r = Revocation {
        crls: &set,
        fail_open: false,
    };
    let (accepted, status) = validate_with_revocation(&client.der(), &p, Some(&r), now()).unwrap();
    assert_eq!(status, RevocationStatus::Good);
    assert!(
        accepted.valid_until <= now() + 7 * DAY,
        "a decision based on a CRL must not outlive the CRL's nextUpdate"
    );
}

#[test]
fn a_revoked_intermediate_ca_rejects_every_certificate_it_issued() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[&pki.issuing.cert], t - 60, t + DAY);
    let issuing_crl = crl(&pki.issuing, &[], t - 60, t + DAY);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert!(matches!(err, CertError::Revoked { issuer, .. } if issuer.contains("Test Root CA")));
}

#[test]
fn no_crl_from_the_issuer_is_unknown_and_rejected_unless_fail_open() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let (root_crl, _) = current_crls(&pki, &[]);
    let set = set_of(&[&root_crl], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert_eq!(err.code(), "revocation_unknown");
    assert!(err.to_string().contains("Test Issuing CA"));
    assert!(matches!(
        check(&client.der(), &p, &set, true),
        Ok(RevocationStatus::UnknownAccepted { .. })
    ));
}

#[test]
fn a_crl_past_its_next_update_makes_the_status_unknown() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[], t - 60, t + DAY);
    let stale = crl(&pki.issuing, &[], t - 3 * DAY, t - DAY);
    let set = set_of(&[&root_crl, &stale], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let err = check(&client.der(), &p, &set, false).unwrap_err();
    assert_eq!(err.code(), "revocation_unknown");
    assert!(err.to_string().contains("due for renewal"));
}

#[test]
fn the_newest_crl_of_an_issuer_decides() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let root_crl = crl(&pki.root, &[], t - 60, t + DAY);
    let old = crl(&pki.issuing, &[], t - 2 * DAY, t + DAY);
    let new = crl(&pki.issuing, &[&client.cert], t - 60, t + DAY);
    let set = set_of(&[&root_crl, &old, &new], &pki.anchors());
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_crl_with_the_cas_name_but_another_key_is_refused() {
    let pki = TestPki::new();
    let t = now();
    // An attacker's CA with the same subject name as the trusted issuing CA.
    let forger = CertSpec::ca("Test Issuing CA", t, 30)
        .self_signed()
        .unwrap();
    let forged = crl(&forger, &[], t - 60, t + DAY);
    assert!(matches!(
        verified(&forged, &pki.anchors()),
        Err(CrlError::BadSignature { .. })
    ));
}

#[test]
fn a_crl_from_a_ca_that_is_not_trusted_is_refused() {
    let pki = TestPki::new();
    let t = now();
    let stranger = CertSpec::ca("Some Other CA", t, 30).self_signed().unwrap();
    let theirs = crl(&stranger, &[], t - 60, t + DAY);
    assert!(matches!(
        verified(&theirs, &pki.anchors()),
        Err(CrlError::UnknownIssuer { .. })
    ));
    assert!(matches!(
        Crl::verify(b"\x30\x03garbage", &pki.anchors(), "x"),
        Err(CrlError::Unparsable { .. })
    ));
}

#[test]
fn a_pinned_certificate_that_chains_to_a_ca_is_still_revocation_checked() {
    let pki = TestPki::new();
    let client = pki.client("pinned.example");
    let (root_crl, issuing_crl) = current_crls(&pki, &[&client]);
    let set = set_of(&[&root_crl, &issuing_crl], &pki.anchors());
    let mut p = policy(&[], Some(pki.anchors()));
    p.thumbprints.insert(Thumbprint::of_der(&client.der()).1);
    assert_eq!(
        check(&client.der(), &p, &set, false).unwrap_err().code(),
        "revoked"
    );
}

#[test]
fn a_pinned_self_signed_certificate_has_no_crl_to_consult() {
    let pki = TestPki::new();
    let own = CertSpec::leaf("self.example", now(), 30)
        .self_signed()
        .unwrap();
    let mut p = policy(&[], Some(pki.anchors()));
    p.thumbprints.insert(Thumbprint::of_der(&own.der()).1);
    assert_eq!(
        check(&own.der(), &p, &CrlSet::default(), false),
        Ok(RevocationStatus::NotApplicable)
    );
}

#[test]
fn without_revocation_settings_nothing_is_checked() {
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let p = policy(&[PARTNER_CN], Some(pki.anchors()));
    let (_, status) = validate_with_revocation(&client.der(), &p, None, now()).unwrap();
    assert_eq!(status, RevocationStatus::NotChecked);
    let der = client.der();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let chain = pki.anchors().verify(&der, &parsed, now()).unwrap();
    assert!(check_chain(&chain, &CrlSet::default(), &pki.anchors(), now()).is_err());
}

// === the real binary ===

/// `GET /api/cert-info` with the certificate header, through the real curl.
fn cert_info(h: &Handler, cert: &Issued) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-H"])
        .arg(format!("X-ARR-ClientCert: {}", cert.header_value()))
        .arg(h.url("/api/cert-info"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let code: u16 = code.trim().parse().unwrap_or(0);
    (code, serde_json::from_str(body).unwrap_or_default())
}

fn code_of(h: &Handler, cert: &Issued) -> String {
    let (status, body) = cert_info(h, cert);
    if status == 200 {
        "ok".to_owned()
    } else {
        body["code"].as_str().unwrap_or("?").to_owned()
    }
}

/// Polls until `cert` gets `want` (bounded), returning what it got last.
fn eventually(h: &Handler, cert: &Issued, want: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let got = code_of(h, cert);
        if got == want || start.elapsed() > limit {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pem(crls: &[&X509Crl]) -> Vec<u8> {
    crls.iter().flat_map(|c| c.to_pem().unwrap()).collect()
}

#[test]
fn the_handler_rejects_a_revoked_leaf_and_a_leaf_under_a_revoked_intermediate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let good = pki.client(PARTNER_CN);
    let revoked = pki.client(PARTNER_CN);
    let (root_crl, issuing_crl) = current_crls(&pki, &[&revoked]);
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    std::fs::create_dir(dir.path().join("crls")).unwrap();
    write(
        &dir.path().join("crls"),
        "root.crl",
        &root_crl.to_der().unwrap(),
    );
    write(
        &dir.path().join("crls"),
        "issuing.pem",
        &issuing_crl.to_pem().unwrap(),
    );
    let crls = dir.path().join("crls").to_string_lossy().into_owned();

    // A second PKI whose root revoked its issuing CA.
    let other = TestPki::new();
    let under_revoked_ca = other.client(PARTNER_CN);
    let t = now();
    let other_root_crl = crl(&other.root, &[&other.issuing.cert], t - 60, t + DAY);
    let other_issuing_crl = crl(&other.issuing, &[], t - 60, t + DAY);
    let other_ca = write(dir.path(), "other-ca.pem", &other.ca_bundle_pem());
    let other_crls = write(
        dir.path(),
        "other.pem",
        &pem(&[&other_root_crl, &other_issuing_crl]),
    );

    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
    ]);
    assert_eq!(code_of(&h, &good), "ok");
    let (status, body) = cert_info(&h, &revoked);
    assert_eq!(status, 403);
    assert_eq!(body["code"], "revoked");
    assert_eq!(body["error"], "client certificate has been revoked");
    drop(h);

    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &other_ca),
        ("CLIENT_CERT_CRL_PATH", &other_crls),
    ]);
    assert_eq!(code_of(&h, &under_revoked_ca), "revoked");
}

#[test]
fn the_handler_is_fail_closed_without_a_crl_and_fail_open_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    // Only the root's CRL: nothing speaks for certificates of the issuing CA.
    let only_root = write(
        dir.path(),
        "root.pem",
        &pem(&[&crl(&pki.root, &[], t - 60, t + DAY)]),
    );
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &only_root),
    ]);
    assert_eq!(code_of(&h, &client), "revocation_unknown");
    drop(h);

    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &only_root),
        ("CLIENT_CERT_REVOCATION_FAIL_OPEN", "true"),
    ]);
    assert_eq!(code_of(&h, &client), "ok");
    assert!(h.log_text().contains("revocation status is unknown"));
}

#[test]
fn the_handler_treats_a_crl_past_its_next_update_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let t = now();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let crls = write(
        dir.path(),
        "crls.pem",
        &pem(&[
            &crl(&pki.root, &[], t - 60, t + DAY),
            &crl(&pki.issuing, &[], t - 3 * DAY, t - DAY),
        ]),
    );
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
    ]);
    assert_eq!(code_of(&h, &client), "revocation_unknown");
}

#[test]
fn a_replaced_crl_file_revokes_within_the_check_interval_and_a_corrupt_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let (root_crl, issuing_crl) = current_crls(&pki, &[]);
    let crls = write(dir.path(), "crls.pem", &pem(&[&root_crl, &issuing_crl]));
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_PATH", &crls),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ("RUST_LOG", "info"),
    ]);
    // Accepted, and therefore cached.
    assert_eq!(code_of(&h, &client), "ok");
    assert_eq!(code_of(&h, &client), "ok");

    let (root_crl, issuing_crl) = current_crls(&pki, &[&client]);
    let tmp = write(dir.path(), ".next", &pem(&[&root_crl, &issuing_crl]));
    std::fs::rename(&tmp, &crls).unwrap();
    assert_eq!(
        eventually(&h, &client, "revoked", Duration::from_secs(15)),
        "revoked",
        "the new CRL must win over the cached acceptance"
    );

    std::fs::write(
        &crls,
        b"-----BEGIN X509 CRL-----\nnot base64!\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let start = Instant::now();
    while !h.log_text().contains("keeping the previous CRLs")
        && start.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(h.log_text().contains("keeping the previous CRLs"));
    assert_eq!(
        code_of(&h, &client),
        "revoked",
        "the previous good set stays in force"
    );
}

#[test]
fn a_corrupt_crl_file_at_start_up_fails_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let bad = write(dir.path(), "bad.crl", b"\x30\x82garbage");
    let (status, _, err) = common::run_to_exit(
        &[
            ("CLIENT_CERT_CA_PATH", &ca),
            ("CLIENT_CERT_CRL_PATH", &bad),
            (
                "FUNCTIONS_CUSTOMHANDLER_PORT",
                &common::free_port().to_string(),
            ),
        ],
        &[],
    );
    assert!(!status.success());
    assert!(err.contains("CLIENT_CERT_CRL_PATH"), "{err}");

    let (status, _, err) = common::run_to_exit(
        &[
            ("CLIENT_CERT_CRL_PATH", &bad),
            (
                "FUNCTIONS_CUSTOMHANDLER_PORT",
                &common::free_port().to_string(),
            ),
        ],
        &[],
    );
    assert!(!status.success());
    assert!(
        err.contains("CLIENT_CERT_CRL_PATH") && err.contains("CLIENT_CERT_CA_PATH"),
        "{err}"
    );
}

// === fetching from distribution points ===

/// What the loopback CRL server answers on one path.
#[derive(Clone)]
struct Route {
    body: Vec<u8>,
    delay: Duration,
    /// Leave Content-Length out (the body ends when the connection closes).
    no_length: bool,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving fixed bodies, as a CA's CRL host does.
struct CrlServer {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

impl CrlServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let shared = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let routes = shared.clone();
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let route = routes.lock().unwrap().get(&path).cloned();
                    let Some(route) = route else {
                        let _ = stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    };
                    std::thread::sleep(route.delay);
                    let head = if route.no_length {
                        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            route.body.len()
                        )
                    };
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&route.body);
                });
            }
        });
        Self { port, routes }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn serve(&self, path: &str, body: Vec<u8>) {
        self.serve_route(
            path,
            Route {
                body,
                delay: Duration::ZERO,
                no_length: false,
            },
        );
    }

    fn serve_route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), route);
    }
}

/// A root, an issuing CA whose CDP is the root's CRL on `server`, and a way to issue
/// leaves whose CDP is the issuing CA's CRL on `server`.
struct CdpPki {
    root: Issued,
    issuing: Issued,
    leaf_cdp: String,
}

impl CdpPki {
    fn new(server: &CrlServer) -> Self {
        let t = now();
        let root = CertSpec::ca("CDP Root CA", t, 3650).self_signed().unwrap();
        let issuing = CertSpec::ca("CDP Issuing CA", t, 1825)
            .with_crl_distribution_point(&server.url("/root.crl"))
            .issued_by(&root)
            .unwrap();
        Self {
            root,
            issuing,
            leaf_cdp: server.url("/issuing.crl"),
        }
    }

    fn client(&self) -> Issued {
        CertSpec::leaf(PARTNER_CN, now(), 365)
            .with_crl_distribution_point(&self.leaf_cdp)
            .issued_by(&self.issuing)
            .unwrap()
    }

    fn ca_bundle(&self) -> Vec<u8> {
        let mut pem = self.root.cert_pem().unwrap();
        pem.extend(self.issuing.cert_pem().unwrap());
        pem
    }
}

#[test]
fn crls_are_fetched_from_the_distribution_points_and_revocations_take_effect() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let good = pki.client();
    let revoked = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    server.serve(
        "/issuing.crl",
        crl(&pki.issuing, &[&revoked.cert], t - 60, t + DAY)
            .to_der()
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_FETCH", "true"),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ("RUST_LOG", "info"),
    ]);
    // The first request learns the leaf's distribution point; the fetch follows.
    assert_eq!(eventually(&h, &good, "ok", Duration::from_secs(15)), "ok");
    assert_eq!(code_of(&h, &revoked), "revoked");
    assert!(h.log_text().contains("CRL downloaded"));
}

#[test]
fn a_ca_that_never_answers_delays_no_request_and_leaves_the_status_unknown() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let client = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    server.serve_route(
        "/issuing.crl",
        Route {
            body: crl(&pki.issuing, &[], t - 60, t + DAY).to_der().unwrap(),
            delay: Duration::from_secs(30),
            no_length: false,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
    let h = Handler::start(&[
        ("CLIENT_CERT_CA_PATH", &ca),
        ("CLIENT_CERT_CRL_FETCH", "true"),
        ("CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS", "1"),
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ("RUST_LOG", "info"),
    ]);
    // Every answer arrives (curl gives up after 10 s; the CA takes 30 s) and says unknown.
    for _ in 0..5 {
        assert_eq!(code_of(&h, &client), "revocation_unknown");
        std::thread::sleep(Duration::from_millis(300));
    }
    let start = Instant::now();
    while !h.log_text().contains("CRL download failed") && start.elapsed() < Duration::from_secs(15)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = h.log_text();
    assert!(log.contains("CRL download failed"), "{log}");
    assert!(log.contains("issuing.crl"));
}

#[test]
fn an_oversized_crl_download_is_abandoned_with_or_without_a_declared_length() {
    let server = CrlServer::start();
    let pki = CdpPki::new(&server);
    let client = pki.client();
    let t = now();
    server.serve(
        "/root.crl",
        crl(&pki.root, &[], t - 60, t + DAY).to_der().unwrap(),
    );
    let huge = vec![0x30; mtls_handler::inbound::crl_store::MAX_CRL_BYTES + 1024];
    for no_length in [false, true] {
        server.serve_route(
            "/issuing.crl",
            Route {
                body: huge.clone(),
                delay: Duration::ZERO,
                no_length,
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = write(dir.path(), "ca.pem", &pki.ca_bundle());
        let h = Handler::start(&[
            ("CLIENT_CERT_CA_PATH", &ca),
            ("CLIENT_CERT_CRL_FETCH", "true"),
            ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
            ("RUST_LOG", "info"),
        ]);
        assert_eq!(code_of(&h, &client), "revocation_unknown");
        let start = Instant::now();
        while !h.log_text().contains("larger than") && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            h.log_text().contains("larger than"),
            "no_length={no_length}"
        );
        assert_eq!(code_of(&h, &client), "revocation_unknown");
    }
}
