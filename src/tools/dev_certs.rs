//! `handler dev-certs`: a throw-away local PKI for the demo and for trying the handler by
//! hand.
//!
//! Owns: which files the demo PKI has, what each certificate contains, writing them with
//! private files readable by the owner only, and the idempotency rule (a complete set is
//! kept; a partial set is refused rather than half-regenerated, because new leaves would
//! not match the kept CA).
//! Must not: be used for anything but local development (the CA key is thrown away, keys
//! are unencrypted, the PKCS#12 files have empty passwords), or decide whether a
//! certificate is acceptable.

use crate::tools::pki::{CertSpec, Eku, Issued};
use openssl::error::ErrorStack;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The partner's common name: the seed's default allowlisted name.
pub const CLIENT_CN: &str = crate::inbound::config::DEFAULT_COMMON_NAME;
/// The app's own outbound identity.
pub const OUTBOUND_CN: &str = "outbound.mtls-handler.local";

/// Every file of the set, in the order they are written.
pub const FILES: [&str; 15] = [
    "ca.pem",
    "client.pem",
    "client.key",
    "client.p12",
    "server.pem",
    "server.key",
    "outbound.p12",
    "outbound.pem",
    "expired.pem",
    "expired.key",
    "untrusted.pem",
    "untrusted.key",
    "intermediate.pem",
    "client-via-intermediate.pem",
    "client-via-intermediate.key",
];

/// What `dev-certs` could not do.
#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    #[error("{dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{dir} holds only part of the demo PKI (missing: {missing}); \
         rerun with --force to regenerate every file"
    )]
    Partial { dir: PathBuf, missing: String },
    #[error("generating certificates: {0}")]
    OpenSsl(#[from] ErrorStack),
}

/// What happened to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Kept,
}

/// The certificates and keys of one demo PKI, in memory.
pub struct DemoPki {
    pub root: Issued,
    pub issuing: Issued,
    pub client: Issued,
    pub server: Issued,
    pub outbound: Issued,
    pub expired: Issued,
    pub untrusted: Issued,
    /// A partner's intermediate CA under the root, deliberately *not* in `ca.pem`: it
    /// completes a path only as an untrusted intermediate
    /// (`CLIENT_CERT_INTERMEDIATES_PATH`, or forwarded by the front end).
    pub intermediate: Issued,
    /// The partner certificate (allowlisted CN) issued by `intermediate`.
    pub client_via_intermediate: Issued,
}

impl std::fmt::Debug for DemoPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoPki").finish_non_exhaustive()
    }
}

impl DemoPki {
    /// Generates a fresh PKI valid from an hour before `now` (Unix seconds).
    pub fn generate(now: i64) -> Result<Self, ErrorStack> {
        let root = CertSpec::ca("mtls-handler Dev Root CA", now, 3650).self_signed()?;
        let issuing = CertSpec::ca("mtls-handler Dev Issuing CA", now, 1825).issued_by(&root)?;
        let client = CertSpec::leaf(CLIENT_CN, now, 365).issued_by(&issuing)?;
        let server = CertSpec::leaf("localhost", now, 365)
            .with_ekus(Some(vec![Eku::ServerAuth]))
            .with_dns_names(&["localhost"])
            .with_ip_addresses(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .issued_by(&issuing)?;
        let outbound = CertSpec::leaf(OUTBOUND_CN, now, 365).issued_by(&issuing)?;
        let expired = CertSpec::leaf(CLIENT_CN, now, 0)
            .with_validity(now - 30 * 86_400, now - 86_400)
            .issued_by(&issuing)?;
        // Self-signed with the allowlisted name: what an attacker can make in one command.
        let untrusted = CertSpec::leaf(CLIENT_CN, now, 365).self_signed()?;
        let intermediate =
            CertSpec::ca("mtls-handler Dev Partner Intermediate CA", now, 1825).issued_by(&root)?;
        let client_via_intermediate =
            CertSpec::leaf(CLIENT_CN, now, 365).issued_by(&intermediate)?;
        Ok(Self {
            intermediate,
            client_via_intermediate,
            root,
            issuing,
            client,
            server,
            outbound,
            expired,
            untrusted,
        })
    }

    /// The contents of every file in [`FILES`], and whether each is private.
    fn files(&self) -> Result<Vec<DemoFile>, ErrorStack> {
        let issuing = &self.issuing.cert;
        let chain = |leaf: &Issued| -> Result<Vec<u8>, ErrorStack> {
            let mut pem = leaf.cert_pem()?;
            pem.extend(issuing.to_pem()?);
            Ok(pem)
        };
        let mut ca = self.issuing.cert_pem()?;
        ca.extend(self.root.cert_pem()?);
        Ok(vec![
            DemoFile::new("ca.pem", ca, false),
            DemoFile::new("client.pem", self.client.cert_pem()?, false),
            DemoFile::new("client.key", self.client.key_pem()?, true),
            DemoFile::new("client.p12", self.client.pkcs12("", &[issuing])?, true),
            DemoFile::new("server.pem", chain(&self.server)?, false),
            DemoFile::new("server.key", self.server.key_pem()?, true),
            DemoFile::new("outbound.p12", self.outbound.pkcs12("", &[issuing])?, true),
            DemoFile::new("outbound.pem", self.outbound.cert_pem()?, false),
            DemoFile::new("expired.pem", self.expired.cert_pem()?, false),
            DemoFile::new("expired.key", self.expired.key_pem()?, true),
            DemoFile::new("untrusted.pem", self.untrusted.cert_pem()?, false),
            DemoFile::new("untrusted.key", self.untrusted.key_pem()?, true),
            DemoFile::new("intermediate.pem", self.intermediate.cert_pem()?, false),
            DemoFile::new(
                "client-via-intermediate.pem",
                self.client_via_intermediate.cert_pem()?,
                false,
            ),
            DemoFile::new(
                "client-via-intermediate.key",
                self.client_via_intermediate.key_pem()?,
                true,
            ),
        ])
    }
}

/// One file of the set.
struct DemoFile {
    name: &'static str,
    bytes: Vec<u8>,
    /// Holds a private key: readable by the owner only.
    private: bool,
}

impl DemoFile {
    fn new(name: &'static str, bytes: Vec<u8>, private: bool) -> Self {
        Self {
            name,
            bytes,
            private,
        }
    }
}

/// Writes the demo PKI into `dir` unless a complete set is already there (or `force`).
pub fn write(dir: &Path, force: bool, now: i64) -> Result<Outcome, DevCertsError> {
    let io = |source| DevCertsError::Io {
        dir: dir.to_owned(),
        source,
    };
    let missing: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).exists())
        .collect();
    if !force {
        if missing.is_empty() {
            return Ok(Outcome::Kept);
        }
        if missing.len() < FILES.len() {
            return Err(DevCertsError::Partial {
                dir: dir.to_owned(),
                missing: missing.join(", "),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let pki = DemoPki::generate(now)?;
    for f in pki.files()? {
        write_file(&dir.join(f.name), &f.bytes, f.private).map_err(io)?;
    }
    Ok(Outcome::Created)
}

/// Replaces `path` atomically (write to a temporary name, then rename).
fn write_file(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The settings and commands that use the files in `dir`.
pub fn usage(dir: &Path) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Settings for the handler (inbound trust and outbound identity):"
    );
    let _ = writeln!(s, "  CLIENT_CERT_CA_PATH={d}/ca.pem");
    let _ = writeln!(s, "  ALLOWED_CLIENT_CERT_COMMON_NAMES={CLIENT_CN}");
    let _ = writeln!(s, "  OUTBOUND_CLIENT_CERT_PATH={d}/outbound.p12");
    let _ = writeln!(s, "  REMOTE_API_CA_PATH={d}/ca.pem");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Local front end (App Service stand-in) in front of the handler:"
    );
    let _ = writeln!(
        s,
        "  handler front-end --listen 127.0.0.1:8443 --backend http://127.0.0.1:3000 \\\n    \
         --tls-cert {d}/server.pem --tls-key {d}/server.key"
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Accepted (PEM pair, or the PKCS#12 with its empty password):"
    );
    let _ = writeln!(
        s,
        "  curl --cacert {d}/ca.pem --cert {d}/client.pem --key {d}/client.key \
         https://localhost:8443/api/cert-info"
    );
    let _ = writeln!(
        s,
        "  curl --cacert {d}/ca.pem --cert-type P12 --cert {d}/client.p12: \
         https://localhost:8443/api/cert-info"
    );
    let _ = writeln!(s, "Rejected (403 expired, 403 untrusted_chain):");
    let _ = writeln!(
        s,
        "  curl --cacert {d}/ca.pem --cert {d}/expired.pem --key {d}/expired.key \
         https://localhost:8443/api/cert-info"
    );
    let _ = writeln!(
        s,
        "  curl --cacert {d}/ca.pem --cert {d}/untrusted.pem --key {d}/untrusted.key \
         https://localhost:8443/api/cert-info"
    );
    let _ = writeln!(
        s,
        "Through an intermediate CA that is not in ca.pem (accepted with \
         CLIENT_CERT_INTERMEDIATES_PATH={d}/intermediate.pem, or when the front end forwards \
         it: --header-format xfcc --forward-chain and curl --cert with the chain):"
    );
    let _ = writeln!(
        s,
        "  cat {d}/client-via-intermediate.pem {d}/intermediate.pem > /tmp/partner-chain.pem"
    );
    let _ = writeln!(
        s,
        "  curl --cacert {d}/ca.pem --cert /tmp/partner-chain.pem --key \
         {d}/client-via-intermediate.key https://localhost:8443/api/cert-info"
    );
    let _ = writeln!(s, "Explain a decision:");
    let _ = writeln!(
        s,
        "  CLIENT_CERT_CA_PATH={d}/ca.pem handler inspect {d}/expired.pem"
    );
    s
}

/// The `dev-certs` command: exit 0 on success, 1 on failure.
pub fn run(dir: &Path, force: bool) -> ExitCode {
    match write(dir, force, crate::clock::system_clock()) {
        Ok(outcome) => {
            let what = match outcome {
                Outcome::Created => "wrote a new",
                Outcome::Kept => "kept the existing (--force regenerates it)",
            };
            println!(
                "dev-certs: {what} demo PKI in {}; for local use only\n",
                dir.display()
            );
            print!("{}", usage(dir));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dev-certs: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_file_is_produced() {
        let pki = DemoPki::generate(1_800_000_000).unwrap();
        let names: Vec<&str> = pki.files().unwrap().iter().map(|f| f.name).collect();
        assert_eq!(names, FILES);
    }
}
