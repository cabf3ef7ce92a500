//! Shared test helpers: a demo PKI generated per test, policies, and the real `handler`
//! binary started on a free loopback port.
#![allow(dead_code, unreachable_pub)]

use mtls_handler::inbound::client_cert::{Policy, Thumbprint, TrustAnchors};
use mtls_handler::tools::pki::{CertSpec, Issued};
use std::collections::HashSet;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PARTNER_CN: &str = "api-client.contoso.com";

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A root CA, an issuing CA under it, and helpers to issue partner certificates.
pub struct TestPki {
    pub root: Issued,
    pub issuing: Issued,
}

impl TestPki {
    pub fn new() -> Self {
        let t = now();
        let root = CertSpec::ca("Test Root CA", t, 3650).self_signed().unwrap();
        let issuing = CertSpec::ca("Test Issuing CA", t, 1825)
            .issued_by(&root)
            .unwrap();
        Self { root, issuing }
    }

    /// A partner certificate for `cn` from the issuing CA, valid for a year.
    pub fn client(&self, cn: &str) -> Issued {
        CertSpec::leaf(cn, now(), 365)
            .issued_by(&self.issuing)
            .unwrap()
    }

    /// Both CAs as a PEM bundle.
    pub fn ca_bundle_pem(&self) -> Vec<u8> {
        let mut pem = self.root.cert_pem().unwrap();
        pem.extend(self.issuing.cert_pem().unwrap());
        pem
    }

    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors::new(vec![self.root.cert.clone(), self.issuing.cert.clone()]).unwrap()
    }
}

/// A policy that allowlists `cns` and trusts `trust`.
pub fn policy(cns: &[&str], trust: Option<TrustAnchors>) -> Policy {
    Policy {
        thumbprints: HashSet::new(),
        common_names: cns.iter().map(|s| (*s).to_owned()).collect(),
        trust,
        allow_unverified_common_names: false,
        allow_weak_keys: false,
    }
}

pub fn pinned(thumbprints: &[Thumbprint]) -> Policy {
    Policy {
        thumbprints: thumbprints.iter().copied().collect(),
        ..policy(&[], None)
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `handler` binary, killed when dropped.
pub struct Handler {
    pub child: Child,
    pub port: u16,
    /// Where the handler's stdout (its log) goes; a pipe nobody reads could fill and block it.
    pub log: tempfile::NamedTempFile,
}

impl Handler {
    /// Starts `handler` with exactly `env` (plus PATH) and waits until `GET /` answers.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let handler = Self { child, port, log };
        handler.wait_ready(Duration::from_secs(20));
        handler
    }

    /// Everything the handler has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("handler did not listen on {} within {limit:?}", self.port);
    }

    /// Sends SIGTERM and waits (bounded) for the exit status; returns status and stdout.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(15));
        (status, self.log_text())
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` at most `limit`, killing it if it is still running.
pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `handler` with `env` and `args`, expecting it to exit by itself within 20 s.
pub fn run_to_exit(
    env: &[(&str, &str)],
    args: &[&str],
) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(20));
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    (status, out, err)
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

/// A CRL signed by `issuer` listing the serials of `revoked`, issued at `this_update` and
/// due for renewal at `next_update` (Unix seconds).
pub fn crl(
    issuer: &Issued,
    revoked: &[&openssl::x509::X509],
    this_update: i64,
    next_update: i64,
) -> openssl::x509::X509Crl {
    crl_scoped(issuer, revoked, this_update, next_update, &Idp::default())
}

/// An issuingDistributionPoint: which certificates a CRL speaks for (RFC 5280 5.2.5).
#[derive(Debug, Clone, Default)]
pub struct Idp {
    /// distributionPoint fullName URIs (a partition of the issuer's certificates).
    pub uris: Vec<String>,
    pub only_user_certs: bool,
    pub only_ca_certs: bool,
}

impl Idp {
    /// The partition published at `uri`.
    pub fn partition(uri: &str) -> Self {
        Self {
            uris: vec![uri.to_owned()],
            ..Self::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.uris.is_empty() && !self.only_user_certs && !self.only_ca_certs
    }

    /// The extension's DER value (tags are IMPLICIT, as in RFC 5280's module).
    fn der(&self) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let n = content.len();
            if n < 128 {
                out.push(n as u8);
            } else {
                out.extend([0x82, (n >> 8) as u8, n as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let mut body = Vec::new();
        if !self.uris.is_empty() {
            // [0] DistributionPointName { [0] fullName GeneralNames { [6] URI } }
            let names: Vec<u8> = self
                .uris
                .iter()
                .flat_map(|u| tlv(0x86, u.as_bytes()))
                .collect();
            body.extend(tlv(0xA0, &tlv(0xA0, &names)));
        }
        if self.only_user_certs {
            body.extend([0x81, 0x01, 0xFF]);
        }
        if self.only_ca_certs {
            body.extend([0x82, 0x01, 0xFF]);
        }
        tlv(0x30, &body)
    }
}

/// [`crl`] with an issuingDistributionPoint extension (critical) when `idp` says anything.
pub fn crl_scoped(
    issuer: &Issued,
    revoked: &[&openssl::x509::X509],
    this_update: i64,
    next_update: i64,
    idp: &Idp,
) -> openssl::x509::X509Crl {
    use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
    use openssl::x509::{X509CrlBuilder, X509Extension, X509RevokedBuilder};
    let mut b = X509CrlBuilder::new().unwrap();
    b.set_issuer_name(issuer.cert.subject_name()).unwrap();
    b.set_last_update(&Asn1Time::from_unix(this_update).unwrap())
        .unwrap();
    b.set_next_update(&Asn1Time::from_unix(next_update).unwrap())
        .unwrap();
    for cert in revoked {
        let mut r = X509RevokedBuilder::new().unwrap();
        r.set_serial_number(cert.serial_number()).unwrap();
        r.set_revocation_date(&Asn1Time::from_unix(this_update).unwrap())
            .unwrap();
        b.add_revoked(r.build()).unwrap();
    }
    // authorityKeyIdentifier: SEQUENCE { [0] keyIdentifier }.
    let key_id = issuer.cert.subject_key_id().unwrap().as_slice().to_vec();
    let mut aki = vec![0x30, (key_id.len() + 2) as u8, 0x80, key_id.len() as u8];
    aki.extend(&key_id);
    let aki_oid = Asn1Object::from_str("2.5.29.35").unwrap();
    let aki = Asn1OctetString::new_from_bytes(&aki).unwrap();
    b.append_extension(X509Extension::new_from_der(&aki_oid, false, &aki).unwrap())
        .unwrap();
    // cRLNumber: INTEGER 1.
    let number_oid = Asn1Object::from_str("2.5.29.20").unwrap();
    let number = Asn1OctetString::new_from_bytes(&[0x02, 0x01, 0x01]).unwrap();
    b.append_extension(X509Extension::new_from_der(&number_oid, false, &number).unwrap())
        .unwrap();
    if !idp.is_empty() {
        let idp_oid = Asn1Object::from_str("2.5.29.28").unwrap();
        let value = Asn1OctetString::new_from_bytes(&idp.der()).unwrap();
        b.append_extension(X509Extension::new_from_der(&idp_oid, true, &value).unwrap())
            .unwrap();
    }
    b.sort().unwrap();
    b.sign(&issuer.key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    b.build().unwrap()
}
