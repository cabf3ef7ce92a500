//! End to end through real TLS: the real `curl` → `handler front-end` (the App Service
//! stand-in) → the real `handler` binary, each on a free loopback port.

#[path = "support/e2e.rs"]
mod e2e;

use e2e::*;

/// The handler trusting the PKI's CAs, and a front end in `mode` in front of it.
fn stack(pki: &Pki, mode: &str) -> (ChildGuard, ChildGuard, u16) {
    let env = pki.handler_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (handler, handler_port) = start_handler(&env);
    let (front, port) = start_front_end(pki, handler_port, mode);
    (handler, front, port)
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn accepted_partner_gets_cert_info_with_its_own_thumbprint() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "required");
    let r = curl(
        &pki,
        port,
        "/api/cert-info",
        &args(&cert_args(&pki, "client")),
    );
    assert_eq!((r.exit, r.status), (0, 200), "{r:?}");
    let body = r.json();
    let (sha1, sha256) = mtls_handler::inbound::client_cert::Thumbprint::of_der(&pki.client.der());
    assert_eq!(body["thumbprint"], sha1.to_string());
    assert_eq!(body["thumbprintSha256"], sha256.to_string());
    assert_eq!(body["commonName"], CLIENT_CN);
    assert_eq!(body["matchedBy"], "commonName");
}

#[test]
fn without_a_certificate_required_mode_fails_the_tls_handshake() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "required");
    for tls in [&["--tls-max", "1.2"][..], &["--tlsv1.3"][..]] {
        let r = curl(&pki, port, "/api/health", tls);
        assert_ne!(r.exit, 0, "handshake should fail ({tls:?}): {r:?}");
        assert_eq!(r.status, 0, "no HTTP answer expected: {r:?}");
    }
}

#[test]
fn without_a_certificate_optional_mode_forwards_no_header_and_the_handler_says_missing() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "optional");
    let r = curl(&pki, port, "/api/cert-info", &[]);
    assert_eq!((r.exit, r.status), (0, 403), "{r:?}");
    assert_eq!(r.json()["code"], "missing");
    let health = curl(&pki, port, "/api/health", &[]);
    assert_eq!(health.status, 200, "{health:?}");
}

#[test]
fn optional_mode_still_forwards_a_certificate_the_client_presents() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "optional");
    let r = curl(
        &pki,
        port,
        "/api/cert-info",
        &args(&cert_args(&pki, "client")),
    );
    assert_eq!((r.exit, r.status), (0, 200), "{r:?}");
    assert_eq!(r.json()["commonName"], CLIENT_CN);
}

#[test]
fn a_client_supplied_header_without_a_tls_certificate_is_stripped_never_trusted() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "optional");
    // The header holds a certificate the handler would accept: only its removal saves us.
    let spoof = format!("X-ARR-ClientCert: {}", pki.client.header_value());
    let r = curl(&pki, port, "/api/cert-info", &["-H", &spoof]);
    assert_eq!((r.exit, r.status), (0, 403), "{r:?}");
    assert_eq!(r.json()["code"], "missing");
    // Any spelling of the name, and two copies, are removed too.
    let lower = format!("x-arr-clientcert: {}", pki.client.header_value());
    let r = curl(&pki, port, "/api/cert-info", &["-H", &spoof, "-H", &lower]);
    assert_eq!(r.json()["code"], "missing", "{r:?}");
}

#[test]
fn a_client_supplied_header_is_replaced_by_the_certificate_presented_in_the_handshake() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "required");
    let spoof = format!("X-ARR-ClientCert: {}", pki.client.header_value());
    let mut a = cert_args(&pki, "untrusted");
    a.extend(["-H".to_owned(), spoof]);
    let r = curl(&pki, port, "/api/cert-info", &args(&a));
    assert_eq!((r.exit, r.status), (0, 403), "{r:?}");
    assert_eq!(r.json()["code"], "untrusted_chain");
}

#[test]
fn a_self_signed_certificate_with_the_allowlisted_name_is_rejected_as_untrusted_chain() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "required");
    let r = curl(
        &pki,
        port,
        "/api/cert-info",
        &args(&cert_args(&pki, "untrusted")),
    );
    assert_eq!((r.exit, r.status), (0, 403), "{r:?}");
    assert_eq!(r.json()["code"], "untrusted_chain");
}

#[test]
fn an_expired_certificate_passes_the_front_end_and_is_rejected_as_expired() {
    let pki = Pki::new();
    let (_h, _f, port) = stack(&pki, "required");
    let r = curl(
        &pki,
        port,
        "/api/cert-info",
        &args(&cert_args(&pki, "expired")),
    );
    assert_eq!((r.exit, r.status), (0, 403), "{r:?}");
    assert_eq!(r.json()["code"], "expired");
}

#[test]
fn the_backend_receives_exactly_the_presented_leaf_and_https_as_the_forwarded_proto() {
    let pki = Pki::new();
    let echo = EchoBackend::start();
    let (_f, port) = start_front_end(&pki, echo.port, "required");
    let mut a = cert_args(&pki, "client");
    a.extend([
        "-H".to_owned(),
        "X-ARR-ClientCert: forged".to_owned(),
        "-H".to_owned(),
        "X-Forwarded-Proto: http".to_owned(),
    ]);
    let r = curl(&pki, port, "/any/path?x=1", &args(&a));
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.json();
    assert_eq!(
        echoed(&seen, "x-arr-clientcert"),
        vec![pki.client.header_value()]
    );
    assert_eq!(echoed(&seen, "x-forwarded-proto"), vec!["https"]);
}

#[test]
fn a_backend_that_is_down_gives_a_502_with_a_code() {
    let pki = Pki::new();
    let (_f, port) = start_front_end(&pki, free_port(), "required");
    let r = curl(&pki, port, "/api/health", &args(&cert_args(&pki, "client")));
    assert_eq!(r.status, 502, "{r:?}");
    assert_eq!(r.json()["code"], "backend_unreachable");
}

#[test]
fn a_request_body_over_the_limit_gets_413_without_reaching_the_backend() {
    let pki = Pki::new();
    let (_f, port) = start_front_end(&pki, free_port(), "required");
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        big.path(),
        vec![b'a'; mtls_handler::tools::front_end::MAX_REQUEST_BODY + 1],
    )
    .unwrap();
    let data = format!("@{}", big.path().display());
    let mut a = cert_args(&pki, "client");
    a.extend(["--data-binary".to_owned(), data]);
    let r = curl(&pki, port, "/api/health", &args(&a));
    assert_eq!(r.status, 413, "{r:?}");
}

#[test]
fn the_demo_script_check_mode_passes_against_the_debug_binary() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<String> = (0..4).map(|_| free_port().to_string()).collect();
    let out = run_bounded(
        std::process::Command::new("bash")
            .arg(app_root().join("scripts/demo.sh"))
            .arg("--check")
            .current_dir(app_root())
            .env("HANDLER_BIN", HANDLER)
            .env("DEMO_DIR", dir.path())
            .env("DEMO_PORT", &ports[0])
            .env("DEMO_HANDLER_PORT", &ports[1])
            .env("DEMO_PARTNER_PORT", &ports[2])
            .env("DEMO_PARTNER_HANDLER_PORT", &ports[3]),
        None,
        std::time::Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "demo.sh --check failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
