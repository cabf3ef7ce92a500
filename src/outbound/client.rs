//! The HTTP clients this module uses: one mTLS client per identity for the partner API, and
//! one plain client for Azure endpoints (Key Vault, managed identity) given to the SDK as
//! its transport. Also classifies transport failures.
//!
//! Owns: TLS trust (the system store, which OpenSSL reads honouring `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`, plus `REMOTE_API_CA_PATH` for the partner), timeouts, redirects (none:
//! the client certificate must not follow a redirect elsewhere) and the test overrides.
//! Must not: decide which identity to use or retry anything.
//!
//! The system store under the portable build (feature `portable`): the vendored OpenSSL's
//! own default is `/usr/local/ssl`, which no image has; native-tls adds the bundle and
//! directories `openssl_probe::probe()` finds (Debian/Ubuntu, RHEL layouts, `SSL_CERT_FILE`
//! and `SSL_CERT_DIR` first) to every client built here, so both builds trust the same roots
//! (tests/package/debian11.sh checks each layout).

use super::config::{NetworkOverrides, OutboundConfig};
use super::pkcs12::KeyMaterial;
use openssl::x509::X509;
use std::error::Error as StdError;
use std::time::Duration;

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the HTTP client: {reason}")]
pub struct ClientBuildError {
    pub reason: String,
}

fn build_err(e: impl std::fmt::Display) -> ClientBuildError {
    ClientBuildError {
        reason: e.to_string(),
    }
}

fn base(timeout: Duration, overrides: &NetworkOverrides) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .tls_backend_native()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    for (host, addr) in &overrides.resolve {
        b = b.resolve(host, *addr);
    }
    b
}

/// The partner client presenting `identity`, trusting the system roots plus `extra_roots`.
pub fn partner_client(
    config: &OutboundConfig,
    identity: &KeyMaterial,
    extra_roots: &[X509],
) -> Result<reqwest::Client, ClientBuildError> {
    let chain = identity.chain_pem().map_err(build_err)?;
    let key = identity.key_pkcs8_pem().map_err(build_err)?;
    let id = reqwest::Identity::from_pkcs8_pem(&chain, &key).map_err(build_err)?;
    let mut roots = Vec::with_capacity(extra_roots.len());
    for c in extra_roots {
        roots.push(
            reqwest::Certificate::from_der(&c.to_der().map_err(build_err)?).map_err(build_err)?,
        );
    }
    base(config.timeout, &config.overrides)
        .identity(id)
        .https_only(true)
        .tls_certs_merge(roots)
        .build()
        .map_err(build_err)
}

/// The client the Azure SDK sends through (no client certificate). Managed identity
/// endpoints may be plain http on loopback, so https is not forced here; the SDK refuses
/// to send tokens over http itself.
pub fn azure_client(
    timeout: Duration,
    overrides: &NetworkOverrides,
) -> Result<reqwest::Client, ClientBuildError> {
    let mut b = base(timeout, overrides);
    if !overrides.azure_roots_pem.is_empty() {
        let roots =
            reqwest::Certificate::from_pem_bundle(&overrides.azure_roots_pem).map_err(build_err)?;
        b = b.tls_certs_merge(roots);
    }
    b.build().map_err(build_err)
}

/// What kind of transport failure a `reqwest::Error` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Tls,
    Unreachable,
    Other,
}

/// Classifies a transport error: TLS first (a handshake failure is also a connect error),
/// then timeout, then connection.
pub fn classify(e: &reqwest::Error) -> FailureKind {
    if is_tls(e) {
        FailureKind::Tls
    } else if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() {
        FailureKind::Unreachable
    } else {
        FailureKind::Other
    }
}

/// Whether an OpenSSL error (or a TLS alert) is anywhere in the error's chain.
fn is_tls(e: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if err.is::<openssl::error::ErrorStack>() || err.is::<openssl::ssl::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if is_tls(inner) {
                    return true;
                }
            }
        }
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("ssl") || text.contains("tls") || text.contains("certificate") {
            return true;
        }
        current = err.source();
    }
    false
}

/// The error chain as one line (for logs; never contains secrets).
pub fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut current = e.source();
    while let Some(err) = current {
        let t = err.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        current = err.source();
    }
    parts.join(": ")
}
