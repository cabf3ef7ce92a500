//! Loopback stand-ins for the outbound tests: a partner API that requires and verifies a
//! client certificate (real TLS), App Service's managed-identity endpoint (plain http) and
//! Key Vault (https, 401 challenge then the secret bundle), plus a test PKI and the
//! child-process harness the Key Vault tests need.
//!
//! Why a child process: the Azure SDK's `ManagedIdentityCredential` reads
//! `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` from the process environment and tests never
//! mutate it. So a Key Vault test re-runs itself (`<test binary> <name> --exact`) with those
//! two variables set to fixed values: the endpoint is `http://identity.test/...`, which the
//! test points at its loopback stand-in through `NetworkOverrides::resolve`.
//!
//! The child also installs a log subscriber (debug level) that prints to its stdout and keeps
//! a copy ([`LogCapture`]); the parent fails the test if the child's output holds the
//! identity header, the access token, a private key or a secret value the vault served.
//!
//! Include with `#[path = "support/outbound.rs"] mod outbound_support;`.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mtls_handler::outbound::{NetworkOverrides, OutboundConfig};
use mtls_handler::tools::pki::{CertSpec, Eku, Issued};
use openssl::hash::MessageDigest;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const VAULT_HOST: &str = "myvault.vault.azure.net";
pub const VAULT_URL: &str = "https://myvault.vault.azure.net";
pub const CERT_NAME: &str = "partner-client";
pub const IDENTITY_HOST: &str = "identity.test";
pub const IDENTITY_ENDPOINT: &str = "http://identity.test/msi/token";
pub const IDENTITY_HEADER: &str = "test-identity-header-not-a-secret";
pub const ACCESS_TOKEN: &str = "test-access-token";
/// A name for the partner when a test needs one that is not loopback (proxies).
pub const PARTNER_HOST: &str = "partner.test";
const CHILD_MARKER: &str = "MTLS_OUTBOUND_TEST_CHILD";
/// Every proxy variable the handler or a library might read; scrubbed from children.
pub const PROXY_VARIABLES: [&str; 9] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
];

pub fn now() -> i64 {
    mtls_handler::clock::system_clock()
}

pub fn thumbprint(cert: &X509) -> String {
    cert.digest(MessageDigest::sha1())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

// === PKI ===

/// One CA for server certificates (partner and vault), one for client certificates.
pub struct Pki {
    pub server_ca: Issued,
    pub client_ca: Issued,
    pub partner_server: Issued,
    pub vault_server: Issued,
}

impl Pki {
    pub fn new() -> Self {
        let n = now();
        let server_ca = CertSpec::ca("Test Server CA", n, 30).self_signed().unwrap();
        let client_ca = CertSpec::ca("Test Partner Client CA", n, 30)
            .self_signed()
            .unwrap();
        let partner_server = CertSpec::leaf("partner.test", n, 30)
            .with_ekus(Some(vec![Eku::ServerAuth]))
            .with_ip_addresses(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .with_dns_names(&["localhost", PARTNER_HOST])
            .issued_by(&server_ca)
            .unwrap();
        let vault_server = CertSpec::leaf(VAULT_HOST, n, 30)
            .with_ekus(Some(vec![Eku::ServerAuth]))
            .with_dns_names(&[VAULT_HOST])
            .issued_by(&server_ca)
            .unwrap();
        Self {
            server_ca,
            client_ca,
            partner_server,
            vault_server,
        }
    }

    /// A client certificate the partner accepts.
    pub fn client(&self, cn: &str) -> Issued {
        CertSpec::leaf(cn, now(), 10)
            .issued_by(&self.client_ca)
            .unwrap()
    }

    /// Writes the server CA (what `REMOTE_API_CA_PATH` names) into `dir`.
    pub fn write_server_ca(&self, dir: &Path) -> PathBuf {
        let p = dir.join("server-ca.pem");
        std::fs::write(&p, self.server_ca.cert_pem().unwrap()).unwrap();
        p
    }
}

/// `leaf` as a legacy (RC2-40 / 3DES) PKCS#12 made by the `openssl` CLI with `-legacy`.
pub fn legacy_pkcs12(dir: &Path, leaf: &Issued, password: &str) -> Vec<u8> {
    let cert = dir.join("legacy-cert.pem");
    let key = dir.join("legacy-key.pem");
    let out = dir.join("legacy.p12");
    std::fs::write(&cert, leaf.cert_pem().unwrap()).unwrap();
    std::fs::write(&key, leaf.key_pem().unwrap()).unwrap();
    let status = Command::new("openssl")
        .args(["pkcs12", "-export", "-legacy", "-in"])
        .arg(&cert)
        .arg("-inkey")
        .arg(&key)
        .arg("-out")
        .arg(&out)
        .arg("-passout")
        .arg(format!("pass:{password}"))
        .stdout(Stdio::null())
        .status()
        .expect("openssl CLI");
    assert!(status.success(), "openssl pkcs12 -export -legacy failed");
    std::fs::remove_file(&key).unwrap();
    let der = std::fs::read(&out).unwrap();
    // Prove it really is legacy: OpenSSL 3 without -legacy cannot read it.
    let plain = Command::new("openssl")
        .args(["pkcs12", "-noout", "-in"])
        .arg(&out)
        .arg("-passin")
        .arg(format!("pass:{password}"))
        .env("OPENSSL_MODULES", "/nonexistent")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        !plain.status.success(),
        "expected a legacy PKCS#12 that OpenSSL 3 refuses without the legacy provider"
    );
    der
}

// === A loopback HTTP(S) server ===

/// What a stand-in saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub peer: Option<X509>,
    /// The request body (form posts to the token endpoint), as text.
    pub body: String,
}

impl Seen {
    pub fn query(&self, key: &str) -> Option<String> {
        let q = self.path_and_query.split_once('?')?.1;
        reqwest::Url::parse(&format!("http://x/?{q}"))
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A reply; `delay` is slept before answering.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A server on 127.0.0.1:0, stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    pub async fn start(
        tls: Option<SslAcceptor>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, tls, handler)
    }

    /// As [`Server::start`], on a listener the caller made.
    pub fn start_on(
        listener: tokio::net::TcpListener,
        tls: Option<SslAcceptor>,
        handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let tls = tls.map(Arc::new);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (tls, handler, seen) = (tls.clone(), handler.clone(), seen2.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            let ssl = Ssl::new(acceptor.context()).unwrap();
                            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                            if Pin::new(&mut stream).accept().await.is_err() {
                                return; // handshake refused (e.g. no or untrusted client cert)
                            }
                            let peer = stream.ssl().peer_certificate();
                            serve_connection(TokioIo::new(stream), peer, handler, seen).await;
                        }
                        None => serve_connection(TokioIo::new(tcp), None, handler, seen).await,
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve_connection<I>(
    io: I,
    peer: Option<X509>,
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let (handler, seen, peer) = (handler.clone(), seen.clone(), peer.clone());
        async move {
            use http_body_util::BodyExt as _;
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            let info = Seen {
                method: parts.method.as_str().to_owned(),
                path_and_query: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            v.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
                peer,
                body,
            };
            let reply = handler(&info);
            seen.lock().unwrap().push(info);
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            let mut res = hyper::Response::builder().status(reply.status);
            for (k, v) in &reply.headers {
                res = res.header(k, v);
            }
            Ok::<_, Infallible>(res.body(Full::new(Bytes::from(reply.body))).unwrap())
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await;
}

pub fn acceptor(server: &Issued, chain: &Issued) -> openssl::ssl::SslAcceptorBuilder {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key(&server.key).unwrap();
    b.set_certificate(&server.cert).unwrap();
    b.add_extra_chain_cert(chain.cert.clone()).unwrap();
    b
}

// === The partner API ===

/// How the partner answers.
#[derive(Debug, Clone)]
pub struct PartnerBehaviour {
    pub status: u16,
    pub delay: Duration,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
}

/// The partner: requires a client certificate chaining to `client_ca` (the handshake
/// fails otherwise) and answers `{"thumbprint", "commonName"}` of the certificate it saw.
pub struct Partner {
    pub server: Server,
    pub behaviour: Arc<Mutex<PartnerBehaviour>>,
}

/// The partner's TLS acceptor: its server certificate, and client certificates required
/// and verified against `pki.client_ca` alone (a client must send any intermediates).
pub fn partner_acceptor(pki: &Pki) -> SslAcceptor {
    let mut b = acceptor(&pki.partner_server, &pki.server_ca);
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(pki.client_ca.cert.clone()).unwrap();
    b.set_verify_cert_store(store.build()).unwrap();
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    b.build()
}

impl Partner {
    pub async fn start(pki: &Pki) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(pki, listener)
    }

    /// The partner on a listener the caller made.
    pub fn start_on(pki: &Pki, listener: tokio::net::TcpListener) -> Self {
        let behaviour = Arc::new(Mutex::new(PartnerBehaviour {
            status: 200,
            delay: Duration::ZERO,
            location: None,
        }));
        let beh = behaviour.clone();
        let server = Server::start_on(listener, Some(partner_acceptor(pki)), move |seen| {
            let b = beh.lock().unwrap().clone();
            let cert = seen.peer.as_ref();
            let cn = cert.and_then(|c| {
                c.subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .next()
                    .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
            });
            let mut reply = Reply::json(
                b.status,
                serde_json::json!({
                    "thumbprint": cert.map(thumbprint),
                    "commonName": cn,
                }),
            )
            .delayed(b.delay);
            if let Some(l) = b.location {
                reply.headers.push(("location".into(), l));
            }
            reply
        });
        Self { server, behaviour }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/partner/ping", self.server.addr.port())
    }

    /// The URL under [`PARTNER_HOST`] (resolve it with `NetworkOverrides`, or a proxy).
    pub fn named_url(&self) -> String {
        format!(
            "https://{PARTNER_HOST}:{}/partner/ping",
            self.server.addr.port()
        )
    }

    pub fn set(&self, status: u16, delay: Duration) {
        *self.behaviour.lock().unwrap() = PartnerBehaviour {
            status,
            delay,
            location: None,
        };
    }

    /// Answers `status` with `Location: location`.
    pub fn redirect(&self, status: u16, location: &str) {
        *self.behaviour.lock().unwrap() = PartnerBehaviour {
            status,
            delay: Duration::ZERO,
            location: Some(location.to_owned()),
        };
    }

    /// Thumbprints of the client certificates presented, one per request.
    pub fn presented(&self) -> Vec<String> {
        self.server
            .seen()
            .iter()
            .filter_map(|s| s.peer.as_ref().map(thumbprint))
            .collect()
    }
}

// === Managed identity endpoint ===

#[derive(Debug, Clone)]
pub enum IdentityMode {
    Token,
    Status(u16),
    Slow(Duration),
}

/// App Service's token endpoint: `GET ?api-version=2019-08-01&resource=...` with
/// `X-IDENTITY-HEADER`; answers `expires_on` as a string, as the platform does.
pub struct IdentityEndpoint {
    pub server: Server,
    pub mode: Arc<Mutex<IdentityMode>>,
}

impl IdentityEndpoint {
    pub async fn start() -> Self {
        let mode = Arc::new(Mutex::new(IdentityMode::Token));
        let m = mode.clone();
        let server = Server::start(None, move |seen| {
            if seen.header("x-identity-header") != Some(IDENTITY_HEADER)
                || seen.query("api-version").as_deref() != Some("2019-08-01")
                || !seen.path_and_query.starts_with("/msi/token")
            {
                return Reply::json(400, serde_json::json!({"error": "bad request"}));
            }
            let token = || {
                Reply::json(
                    200,
                    serde_json::json!({
                        "access_token": ACCESS_TOKEN,
                        "expires_on": (now() + 3600).to_string(),
                        "resource": seen.query("resource"),
                        "token_type": "Bearer",
                        "client_id": seen.query("client_id").unwrap_or_else(|| "system".into()),
                    }),
                )
            };
            match m.lock().unwrap().clone() {
                IdentityMode::Token => token(),
                IdentityMode::Status(s) => Reply::json(s, serde_json::json!({"error": "nope"})),
                IdentityMode::Slow(d) => token().delayed(d),
            }
        })
        .await;
        Self { server, mode }
    }

    pub fn set(&self, mode: IdentityMode) {
        *self.mode.lock().unwrap() = mode;
    }
}

// === Key Vault ===

#[derive(Debug, Clone)]
pub enum VaultMode {
    Serve,
    /// Every request, even with a token, gets this status.
    Status(u16),
    Slow(Duration),
    /// The 401 challenge names another resource (the SDK must refuse it).
    WrongChallengeResource,
}

#[derive(Debug, Clone)]
pub struct SecretVersion {
    pub version: String,
    pub content_type: String,
    pub value: String,
}

#[derive(Debug)]
pub struct VaultState {
    pub mode: VaultMode,
    /// Newest last.
    pub versions: Vec<SecretVersion>,
}

/// Key Vault: `GET /secrets/<name>[/<version>]?api-version=...`; 401 with a Bearer
/// challenge without a token, the secret bundle with `Bearer ACCESS_TOKEN`.
pub struct Vault {
    pub server: Server,
    pub state: Arc<Mutex<VaultState>>,
}

impl Vault {
    pub async fn start(pki: &Pki) -> Self {
        let state = Arc::new(Mutex::new(VaultState {
            mode: VaultMode::Serve,
            versions: Vec::new(),
        }));
        let st = state.clone();
        let server = Server::start(
            Some(acceptor(&pki.vault_server, &pki.server_ca).build()),
            move |seen| vault_reply(&st.lock().unwrap(), seen),
        )
        .await;
        Self { server, state }
    }

    pub fn set_mode(&self, mode: VaultMode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Adds a new latest version holding `leaf` as base64 PKCS#12 with an empty password.
    pub fn add_pkcs12(&self, version: &str, leaf: &Issued, chain: &[&X509]) {
        use base64::Engine as _;
        let der = leaf.pkcs12("", chain).unwrap();
        self.add_raw(
            version,
            "application/x-pkcs12",
            &base64::engine::general_purpose::STANDARD.encode(der),
        );
    }

    pub fn add_raw(&self, version: &str, content_type: &str, value: &str) {
        served_secret(value);
        self.state.lock().unwrap().versions.push(SecretVersion {
            version: version.into(),
            content_type: content_type.into(),
            value: value.into(),
        });
    }

    /// Secret paths requested with a token (after the challenge).
    pub fn authorized_paths(&self) -> Vec<String> {
        self.server
            .seen()
            .iter()
            .filter(|s| s.header("authorization").is_some())
            .map(|s| s.path_and_query.clone())
            .collect()
    }
}

fn vault_reply(state: &VaultState, seen: &Seen) -> Reply {
    let challenge = |resource: &str| {
        Reply {
        status: 401,
        headers: vec![(
            "www-authenticate".into(),
            format!(
                "Bearer authorization=\"https://login.windows.net/00000000-0000-0000-0000-00000000feed\", resource=\"{resource}\""
            ),
        )],
        body: String::new(),
        delay: Duration::ZERO,
    }
    };
    if seen.query("api-version").is_none() {
        return Reply::json(400, serde_json::json!({"error": {"code": "BadParameter"}}));
    }
    match seen.header("authorization") {
        None => {
            return match state.mode {
                VaultMode::WrongChallengeResource => challenge("https://evil.example"),
                _ => challenge("https://vault.azure.net"),
            }
        }
        Some(a) if a != format!("Bearer {ACCESS_TOKEN}") => {
            return challenge("https://vault.azure.net")
        }
        Some(_) => {}
    }
    let error = |status: u16, code: &str| {
        Reply::json(
            status,
            serde_json::json!({"error": {"code": code, "message": "stand-in"}}),
        )
    };
    let path = seen.path_and_query.split('?').next().unwrap_or_default();
    let mut parts = path.trim_matches('/').split('/');
    let (Some("secrets"), Some(name)) = (parts.next(), parts.next()) else {
        return error(404, "NotFound");
    };
    let wanted = parts.next().filter(|v| !v.is_empty());
    let delay = match &state.mode {
        VaultMode::Status(401) => return challenge("https://vault.azure.net"),
        VaultMode::Status(s) => return error(*s, "Forbidden"),
        VaultMode::Slow(d) => *d,
        _ => Duration::ZERO,
    };
    if name != CERT_NAME {
        return error(404, "SecretNotFound");
    }
    let found = match wanted {
        Some(v) => state.versions.iter().find(|s| s.version == v),
        None => state.versions.last(),
    };
    let Some(s) = found else {
        return error(404, "SecretNotFound");
    };
    Reply::json(
        200,
        serde_json::json!({
            "value": s.value,
            "contentType": s.content_type,
            "id": format!("{VAULT_URL}/secrets/{name}/{}", s.version),
            "kid": format!("{VAULT_URL}/keys/{name}/{}", s.version),
            "managed": true,
            "attributes": {
                "enabled": true,
                "nbf": now() - 3600,
                "exp": now() + 86_400,
                "created": now() - 3600,
                "updated": now() - 3600,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90
            },
            "tags": {}
        }),
    )
    .delayed(delay)
}

// === Configuration for a test ===

/// Short timings so failures show in seconds: a 3 s call timeout, 200 ms first backoff.
pub fn fast(mut c: OutboundConfig) -> OutboundConfig {
    c.retry_first = Duration::from_millis(200);
    c.retry_max = Duration::from_secs(1);
    c
}

/// `OutboundConfig::from_env` over `pairs` (plus a 3 s timeout unless given), then fast
/// retries and `overrides`.
pub fn config(pairs: &[(&str, String)], overrides: NetworkOverrides) -> OutboundConfig {
    let mut env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    env.entry("REMOTE_API_TIMEOUT_SECONDS".into())
        .or_insert_with(|| "3".into());
    let mut c = fast(OutboundConfig::from_env(&env).unwrap());
    c.overrides = overrides;
    c
}

/// Overrides that send the vault and identity host names to the stand-ins and trust the
/// test server CA for Azure endpoints.
pub fn azure_overrides(pki: &Pki, vault: SocketAddr, identity: SocketAddr) -> NetworkOverrides {
    NetworkOverrides {
        resolve: vec![
            (VAULT_HOST.to_owned(), vault),
            (IDENTITY_HOST.to_owned(), identity),
        ],
        azure_roots_pem: pki.server_ca.cert_pem().unwrap(),
        ..NetworkOverrides::default()
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// === Captured logs ===

/// Secret values the vault stand-in served in this process (checked against the logs).
static SERVED_SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn served_secret(value: &str) {
    SERVED_SECRETS.lock().unwrap().push(value.to_owned());
}

type Hook = (String, Box<dyn FnMut() + Send>);

/// Log lines as the handler's formatter writes them, kept for the test to read; optional
/// hooks run (synchronously, inside the logging call) when a line contains a pattern.
#[derive(Clone, Default)]
pub struct LogCapture {
    text: Arc<Mutex<String>>,
    hooks: Arc<Mutex<Vec<Hook>>>,
    echo: bool,
}

/// The writer the subscriber formats into.
pub struct CaptureWriter(LogCapture);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf).into_owned();
        if self.0.echo {
            print!("{line}");
        }
        self.0.text.lock().unwrap().push_str(&line);
        for (pattern, hook) in self.0.hooks.lock().unwrap().iter_mut() {
            if line.contains(pattern.as_str()) {
                hook();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.clone())
    }
}

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(self.clone())
            .with_ansi(false)
            .finish()
    }

    /// Captures every debug-level event logged on this thread while the guard lives (use a
    /// current-thread runtime so the code under test runs here).
    pub fn this_thread() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let guard = tracing::subscriber::set_default(capture.subscriber());
        (capture, guard)
    }

    /// Captures (and prints) everything in this process. For children, one test each.
    pub fn whole_process() -> Self {
        let capture = Self {
            echo: true,
            ..Self::default()
        };
        tracing::subscriber::set_global_default(capture.subscriber()).unwrap();
        capture
    }

    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// How many lines contain `pattern`.
    pub fn count(&self, pattern: &str) -> usize {
        self.text().lines().filter(|l| l.contains(pattern)).count()
    }

    /// Runs `hook` each time a line containing `pattern` is logged.
    pub fn on(&self, pattern: &str, hook: impl FnMut() + Send + 'static) {
        self.hooks
            .lock()
            .unwrap()
            .push((pattern.to_owned(), Box::new(hook)));
    }

    /// Waits (at most `limit`) until a line contains `pattern`.
    pub async fn wait_for(&self, pattern: &str, limit: Duration) -> bool {
        eventually(limit, || {
            let found = self.count(pattern) > 0;
            async move { found.then_some(()) }
        })
        .await
        .is_some()
    }

    /// Fails if the logs hold a secret: the identity header, the token, a private key, a
    /// served secret value (or its first 64 characters), or any of `also`.
    pub fn assert_no_secrets(&self, also: &[&str]) {
        let text = self.text();
        let mut secrets: Vec<String> = vec![
            IDENTITY_HEADER.into(),
            ACCESS_TOKEN.into(),
            "PRIVATE KEY".into(),
        ];
        for v in SERVED_SECRETS.lock().unwrap().iter() {
            secrets.push(v.chars().take(64).collect());
        }
        secrets.extend(also.iter().map(|s| (*s).to_owned()));
        for s in secrets {
            assert!(
                !text.contains(&s),
                "the logs contain a secret ({s:.12}…):\n{text}"
            );
        }
    }
}

// === A proxy stand-in ===

/// What a proxy received: the request head (request line and headers) as sent.
#[derive(Debug, Clone)]
pub struct ProxySeen {
    pub head: String,
}

/// An HTTP proxy on loopback: `CONNECT host:port` is tunnelled (to `routes[host]` if
/// listed, else to `host:port`); any other request (plain-http proxying) is recorded and
/// answered 502, as a corporate proxy that cannot reach the instance's local endpoints.
pub struct ProxyStandIn {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<ProxySeen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProxyStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProxyStandIn {
    pub async fn start(routes: Vec<(String, SocketAddr)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, routes)
    }

    pub fn start_on(listener: tokio::net::TcpListener, routes: Vec<(String, SocketAddr)>) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let routes: Arc<HashMap<String, SocketAddr>> = Arc::new(routes.into_iter().collect());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let (seen, routes) = (seen2.clone(), routes.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match client.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    seen.lock().unwrap().push(ProxySeen { head: head.clone() });
                    let mut words = head.split_whitespace();
                    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
                        let _ = client
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    };
                    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
                    let upstream = match routes.get(host) {
                        Some(a) => tokio::net::TcpStream::connect(a).await,
                        None => tokio::net::TcpStream::connect(target).await,
                    };
                    let Ok(mut upstream) = upstream else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    if client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await
                        .is_ok()
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    pub fn heads(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.head.clone())
            .collect()
    }
}

// === A partner whose body stalls ===

/// A partner (same TLS and client-certificate check as [`Partner`]) that answers 200 with
/// `Content-Length: announced`, sends `sent` bytes of it, and then sends nothing more while
/// the connection stays open.
pub struct StallingPartner {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StallingPartner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StallingPartner {
    pub async fn start(pki: &Pki, announced: usize, sent: usize) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = Arc::new(partner_acceptor(pki));
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let ssl = Ssl::new(acceptor.context()).unwrap();
                    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                    if Pin::new(&mut stream).accept().await.is_err() {
                        return;
                    }
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {announced}\r\n\r\n"
                    );
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 16 * 1024];
                    let mut left = sent;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        if stream.write_all(&chunk[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                    let _ = stream.flush().await;
                    // Hold the connection open, sending nothing, until the test ends.
                    std::future::pending::<()>().await;
                    drop(stream);
                });
            }
        });
        Self { addr, task }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/partner/ping", self.addr.port())
    }
}

// === The child-process harness ===

/// In the child: returns `true` (run the test body). In the parent: re-runs this test
/// binary for `test_name` alone with `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` set, waits (at
/// most 120 s, killing it after), asserts it passed and logged no secret, and returns
/// `false`.
pub fn in_managed_identity_env(test_name: &str) -> bool {
    in_child_env(test_name, &[])
}

/// As [`in_managed_identity_env`], with `extra` variables set in the child (after every
/// proxy variable of the parent's environment was removed).
pub fn in_child_env(test_name: &str, extra: &[(&str, String)]) -> bool {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .env("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT)
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .env_remove("MSI_ENDPOINT")
        .env_remove("MSI_SECRET")
        .env("RUST_LOG", "debug");
    for v in PROXY_VARIABLES {
        cmd.env_remove(v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    let report = format!("--- child stdout ---\n{stdout}\n--- child stderr ---\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("child test timed out\n{report}"));
    assert!(status.success(), "child test failed\n{report}");
    assert!(
        stdout.contains("1 passed"),
        "child did not run exactly this test\n{report}"
    );
    // The child's logs were captured (its subscriber prints them) and hold no secret.
    assert!(
        stdout.contains("mtls_handler::outbound"),
        "the child logged nothing from the outbound module\n{report}"
    );
    for secret in [IDENTITY_HEADER, ACCESS_TOKEN, "PRIVATE KEY"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the child's output contains {secret:?}\n{report}"
        );
    }
    false
}

/// A multi-threaded runtime for a child's body; every log line of the child is captured
/// and checked for secrets (see [`LogCapture::assert_no_secrets`]) once the body passed.
pub fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    let logs = LogCapture::whole_process();
    *CHILD_LOGS.lock().unwrap() = Some(logs.clone());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
    logs.assert_no_secrets(&[]);
}

/// The child's capture (installed by [`block_on`]), for tests that wait for a log line.
pub fn child_logs() -> LogCapture {
    CHILD_LOGS.lock().unwrap().clone().expect("inside block_on")
}

static CHILD_LOGS: Mutex<Option<LogCapture>> = Mutex::new(None);
