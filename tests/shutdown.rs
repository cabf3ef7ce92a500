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

/// Reads a whole `Connection: close` response: its status code and decoded body.
fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok((0, raw));
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((code, body))
}

fn read_status(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    read_response(stream).map(|(code, body)| (code, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&chunked[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        let data = &chunked[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        chunked = data.get(size + 2..).unwrap_or_default();
    }
    out
}

/// Reads until the end of one interim response head (`HTTP/1.1 100 Continue`), bounded by
/// the socket's read timeout.
fn read_interim(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
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

    // In-flight: JSON invocations with half of the body sent. `Expect: 100-continue` makes
    // the handler say when it starts reading the body: from then on the request is in
    // flight, whatever the machine's load (no sleep needed).
    let body = format!(
        r#"{{"Data": {{"req": {{"Headers": {{"X-ARR-ClientCert": ["{header}"]}}}}}}, "Metadata": {{}}}}"#
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut in_flight = Vec::new();
    for _ in 0..8 {
        let mut s = connect(port).unwrap();
        let head = format!(
            "POST /cert-info HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        let interim = read_interim(&mut s).expect("no interim answer before the read timeout");
        assert!(interim.starts_with("HTTP/1.1 100 "), "{interim:?}");
        s.write_all(first).unwrap();
        in_flight.push(s);
    }

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

    // The in-flight requests finish, with the full answer: the certificate was accepted.
    let thumbprint = mtls_handler::inbound::client_cert::Thumbprint::of_der(&client.der())
        .0
        .to_string();
    for mut s in in_flight {
        s.write_all(rest)
            .expect("an in-flight request was cut off after SIGTERM");
        let (status, body) = read_response(&mut s).expect("an in-flight request got no answer");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let res = &answer["Outputs"]["res"];
        assert_eq!(res["statusCode"], 200, "{answer}");
        let inner: serde_json::Value =
            serde_json::from_str(res["body"].as_str().unwrap_or_default()).unwrap();
        assert_eq!(inner["thumbprint"], thumbprint.as_str(), "{answer}");
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
