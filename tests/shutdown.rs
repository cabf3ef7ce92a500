//! Graceful shutdown under load and the exit codes the Functions host acts on, with the
//! real `handler` binary and raw HTTP/1.1 over loopback TCP.
//!
//! In-flight requests are JSON-mode invocations whose body is still arriving when SIGTERM
//! lands: the request has started, so the handler must finish it.

mod common;

use common::{run_to_exit, write, Handler, TestPki, PARTNER_CN};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Reads a whole `Connection: close` response and returns its status code.
fn read_status(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, text))
}

#[test]
fn sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let client = pki.client(PARTNER_CN);
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let h = Handler::start(&[("CLIENT_CERT_CA_PATH", &ca), ("RUST_LOG", "info")]);
    let port = h.port;
    let header = client.header_value();

    // Background load: forwarding-mode requests on fresh connections until refused.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, ok, bad, header) = (stop.clone(), ok.clone(), bad.clone(), header.clone());
        load.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = connect(port) else { break };
                let req = format!(
                    "GET /api/cert-info HTTP/1.1\r\nHost: x\r\nX-ARR-ClientCert: {header}\r\n\
                     Connection: close\r\n\r\n"
                );
                if s.write_all(req.as_bytes()).is_err() {
                    continue;
                }
                match read_status(&mut s) {
                    Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                    // A connection accepted just before the listener closed may be dropped
                    // unanswered (status 0); anything else is a wrong answer.
                    Ok((0, _)) | Err(_) => 0,
                    Ok(_) => bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let start = Instant::now();
    while ok.load(Ordering::Relaxed) < 50 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok.load(Ordering::Relaxed) >= 50, "the load never got going");

    // In-flight: JSON invocations with half of the body sent.
    let body = format!(
        r#"{{"Data": {{"req": {{"Headers": {{"X-ARR-ClientCert": ["{header}"]}}}}}}, "Metadata": {{}}}}"#
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut in_flight = Vec::new();
    for _ in 0..8 {
        let mut s = connect(port).unwrap();
        let head = format!(
            "POST /cert-info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(first).unwrap();
        in_flight.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));

    let pid = h.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    // New connections are refused once the handler stops accepting.
    let start = Instant::now();
    let mut refused = false;
    while start.elapsed() < Duration::from_secs(10) {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert!(
        refused,
        "the handler still accepts connections after SIGTERM"
    );

    // The in-flight requests finish, with the full answer.
    for mut s in in_flight {
        s.write_all(rest).unwrap();
        let (status, text) = read_status(&mut s).unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"Outputs\""), "{text}");
        assert!(text.contains("\\\"statusCode\\\"") || text.contains("statusCode"));
    }
    assert_eq!(bad.load(Ordering::Relaxed), 0, "wrong answers under load");

    let (status, log) = h.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("draining"), "{log}");
}

#[test]
fn a_bad_revocation_setting_exits_non_zero_naming_the_setting_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let ca = write(dir.path(), "ca.pem", &pki.ca_bundle_pem());
    let port = common::free_port().to_string();
    for (name, value) in [
        ("CLIENT_CERT_CRL_CHECK_SECONDS", "0"),
        ("CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS", "five"),
        ("CLIENT_CERT_REVOCATION_FAIL_OPEN", "perhaps"),
        ("CLIENT_CERT_CRL_FETCH", "sometimes"),
    ] {
        let (status, _, err) = run_to_exit(
            &[
                ("CLIENT_CERT_CA_PATH", &ca),
                ("CLIENT_CERT_CRL_FETCH", "true"),
                ("FUNCTIONS_CUSTOMHANDLER_PORT", &port),
                (name, value),
            ],
            &[],
        );
        assert_eq!(status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
    }
}
