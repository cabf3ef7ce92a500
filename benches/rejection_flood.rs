//! Memory under a flood of distinct certificates that anyone can make (not a test): the
//! release `handler` gets `FLOOD_REQUESTS` (default 10,000) forwarded requests, each with a
//! different self-signed certificate carrying thousands of extended key usages and no
//! clientAuth (one ~16 KiB header each). Prints the handler's RSS before, right after, and
//! after 5 s idle, and the longest log line.
//!
//! Run: `cargo bench --bench rejection_flood`.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::ExtendedKeyUsage;
use openssl::x509::{X509NameBuilder, X509};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Reads one response (Content-Length framed) from a keep-alive connection.
fn read_response(reader: &mut BufReader<TcpStream>) -> u16 {
    let mut status = 0;
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return 0;
        }
        let l = line.trim_end();
        if status == 0 {
            status = l
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
        } else if l.is_empty() {
            break;
        } else if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    status
}

fn main() {
    let requests: usize = std::env::var("FLOOD_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_handler"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("ALLOWED_CLIENT_CERT_COMMON_NAMES", "api-client.contoso.com")
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "handler did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    let before = rss_kib(pid);

    // One key and one EKU extension for every certificate; serials make them distinct.
    let key = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, "eku.example")
        .unwrap();
    let name = name.build();
    let mut eku = ExtendedKeyUsage::new();
    for i in 0..2300 {
        eku.other(&format!("1.2.{i}"));
    }
    let eku = eku.build().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = || {
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let mut serial = BigNum::new().unwrap();
        serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
        let serial: Asn1Integer = serial.to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(now - 3600).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + 86_400).unwrap())
            .unwrap();
        b.append_extension2(&eku).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b.build().to_der().unwrap())
    };
    let sample = header();
    let started = Instant::now();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..requests {
        let req = format!(
            "GET /api/cert-info HTTP/1.1\r\nHost: x\r\nX-ARR-ClientCert: {}\r\n\r\n",
            header()
        );
        writer.write_all(req.as_bytes()).unwrap();
        *statuses.entry(read_response(&mut reader)).or_insert(0) += 1;
    }
    let elapsed = started.elapsed();
    let after = rss_kib(pid);
    std::thread::sleep(Duration::from_secs(5));
    let idle = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let longest = std::fs::read_to_string(log.path())
        .unwrap_or_default()
        .lines()
        .map(str::len)
        .max()
        .unwrap_or(0);
    println!(
        "rejection_flood: {requests} requests ({}-byte headers) in {:.1} s, statuses {statuses:?}",
        sample.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "rejection_flood: RSS {:.1} MiB before, {:.1} MiB after, {:.1} MiB after 5 s idle; longest log line {longest} bytes",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        idle as f64 / 1024.0
    );
}
