//! The HTTP clients this module uses: one mTLS client per identity for the partner API, one
//! plain client for Key Vault and one for the managed-identity endpoint (both given to the
//! SDK as its transport). Also classifies transport failures.
//!
//! Owns: TLS trust (the system store, which OpenSSL reads honouring `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`, plus `REMOTE_API_CA_PATH` for the partner), proxies (the typed
//! [`ProxyConfig`] for Key Vault and the partner, loopback always direct; never one for the
//! managed-identity endpoint, whose request carries the `X-IDENTITY-HEADER` secret; the
//! process environment is never read here), timeouts, redirects (none: the client
//! certificate must not follow a redirect elsewhere) and the test overrides.
//! Must not: decide which identity to use or retry anything.
//!
//! The system store under the portable build (feature `portable`): the vendored OpenSSL's
//! own default is `/usr/local/ssl`, which no image has; native-tls adds the bundle and
//! directories `openssl_probe::probe()` finds (Debian/Ubuntu, RHEL layouts, `SSL_CERT_FILE`
//! and `SSL_CERT_DIR` first) to every client built here, so both builds trust the same roots
//! (tests/package/debian11.sh checks each layout).

use super::config::{NetworkOverrides, OutboundConfig, ProxyConfig};
use super::pkcs12::KeyMaterial;
use openssl::x509::X509;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

/// Why a client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the HTTP client: {reason}")]
pub struct ClientBuildError {
    pub reason: String,
}

fn build_err(e: impl std::fmt::Display) -> ClientBuildError {
    ClientBuildError {
        reason: super::redact::urls_in(&e.to_string()),
    }
}

/// Destinations that never go through a proxy, whatever `NO_PROXY` says.
const ALWAYS_DIRECT: &str = "localhost,127.0.0.0/8,::1";

/// Timeouts, no redirects, no proxy (not even the environment's), the test overrides.
fn base(timeout: Duration, overrides: &NetworkOverrides) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .tls_backend_native()
        .no_proxy()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    for (host, addr) in &overrides.resolve {
        b = b.resolve(host, *addr);
    }
    if !overrides.unresolvable.is_empty() {
        b = b.dns_resolver(Arc::new(Unresolvable(overrides.unresolvable.clone())));
    }
    b
}

/// `b` sending https requests through `proxy`, if one is configured.
fn with_proxy(
    b: reqwest::ClientBuilder,
    proxy: &ProxyConfig,
) -> Result<reqwest::ClientBuilder, ClientBuildError> {
    let Some(url) = &proxy.url else {
        return Ok(b);
    };
    let mut direct = ALWAYS_DIRECT.to_owned();
    if let Some(more) = &proxy.no_proxy {
        direct.push(',');
        direct.push_str(more);
    }
    let p = reqwest::Proxy::https(url.as_str())
        .map_err(build_err)?
        .no_proxy(reqwest::NoProxy::from_string(&direct));
    Ok(b.proxy(p))
}

/// Test seam ([`NetworkOverrides::unresolvable`]): these names fail to resolve, as a name
/// without DNS records does; others resolve as usual.
struct Unresolvable(Vec<String>);

impl reqwest::dns::Resolve for Unresolvable {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let fails = self.0.iter().any(|n| n.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            if fails {
                return Err(std::io::Error::other(format!(
                    "failed to lookup address information: {host}: Name or service not known"
                ))
                .into());
            }
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
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
    with_proxy(base(config.timeout, &config.overrides), &config.proxy)?
        .identity(id)
        .https_only(true)
        .tls_certs_merge(roots)
        .build()
        .map_err(build_err)
}

/// The client the Azure SDK sends Key Vault requests through (no client certificate),
/// through `proxy` if one is configured.
pub fn azure_client(
    timeout: Duration,
    proxy: &ProxyConfig,
    overrides: &NetworkOverrides,
) -> Result<reqwest::Client, ClientBuildError> {
    azure_builder(with_proxy(base(timeout, overrides), proxy)?, overrides)?
        .build()
        .map_err(build_err)
}

/// The client for the managed-identity token endpoint: never through a proxy (the request
/// carries the `X-IDENTITY-HEADER` secret, and the endpoint is local to the instance).
/// The endpoint may be plain http on loopback, so https is not forced here.
pub fn identity_client(
    timeout: Duration,
    overrides: &NetworkOverrides,
) -> Result<reqwest::Client, ClientBuildError> {
    azure_builder(base(timeout, overrides), overrides)?
        .build()
        .map_err(build_err)
}

fn azure_builder(
    b: reqwest::ClientBuilder,
    overrides: &NetworkOverrides,
) -> Result<reqwest::ClientBuilder, ClientBuildError> {
    if overrides.azure_roots_pem.is_empty() {
        return Ok(b);
    }
    let roots =
        reqwest::Certificate::from_pem_bundle(&overrides.azure_roots_pem).map_err(build_err)?;
    Ok(b.tls_certs_merge(roots))
}

/// What kind of transport failure a `reqwest::Error` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Timeout,
    Tls,
    /// The connection was refused: the request never reached the partner.
    Refused,
    /// Any other connection failure (a name that does not resolve, no route, a reset).
    Unreachable,
    Other,
}

/// Classifies a transport error from its kind and the types in its source chain, never
/// from its text (which quotes the URL): TLS first (a handshake failure is also a connect
/// error), then timeout, then a refused connection, then any other connection failure.
pub fn classify(e: &reqwest::Error) -> FailureKind {
    classify_chain(e, e.is_timeout(), e.is_connect())
}

fn classify_chain(e: &(dyn StdError + 'static), timeout: bool, connect: bool) -> FailureKind {
    if any_in_chain(e, &|err| {
        err.is::<openssl::error::ErrorStack>() || err.is::<openssl::ssl::Error>()
    }) {
        FailureKind::Tls
    } else if timeout {
        FailureKind::Timeout
    } else if any_in_chain(e, &|err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    }) {
        FailureKind::Refused
    } else if connect {
        FailureKind::Unreachable
    } else {
        FailureKind::Other
    }
}

/// Whether `test` holds for an error in `e`'s source chain, including the errors that an
/// `io::Error` wraps (which `io::Error::source` skips).
fn any_in_chain(
    e: &(dyn StdError + 'static),
    test: &dyn Fn(&(dyn StdError + 'static)) -> bool,
) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if test(err) {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if any_in_chain(inner, test) {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// The error chain as one line, URLs redacted (for logs and answers; never secrets).
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
    super::redact::urls_in(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a source, as hyper-util's `ConnectError` is.
    #[derive(Debug)]
    struct Wrapped(&'static str, std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn only_a_refused_connection_counts_as_refused_whatever_the_text_says() {
        let refused = Wrapped(
            "tcp connect error for https://h/api/tls/certificate/ssl",
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        );
        assert_eq!(classify_chain(&refused, false, true), FailureKind::Refused);
        let dns = Wrapped(
            "dns error",
            std::io::Error::other("failed to lookup address information"),
        );
        assert_eq!(classify_chain(&dns, false, true), FailureKind::Unreachable);
        let text_only = Wrapped("certificate tls ssl", std::io::Error::other("tls"));
        assert_eq!(classify_chain(&text_only, false, false), FailureKind::Other);
        let handshake = std::io::Error::other(openssl::error::ErrorStack::get());
        assert_eq!(classify_chain(&handshake, false, true), FailureKind::Tls);
    }
}
