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
//! Include with `#[path = "support/outbound.rs"] mod outbound_support;`.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mtls_handler::outbound::{NetworkOverrides, OutboundConfig};
use mtls_handler::pki::{CertSpec, Eku, Issued};
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
const CHILD_MARKER: &str = "MTLS_OUTBOUND_TEST_CHILD";

pub fn now() -> i64 {
    mtls_handler::app::system_clock()
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
            .with_dns_names(&["localhost"])
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
}

/// The partner: requires a client certificate chaining to `client_ca` (the handshake
/// fails otherwise) and answers `{"thumbprint", "commonName"}` of the certificate it saw.
pub struct Partner {
    pub server: Server,
    pub behaviour: Arc<Mutex<PartnerBehaviour>>,
}

impl Partner {
    pub async fn start(pki: &Pki) -> Self {
        let mut b = acceptor(&pki.partner_server, &pki.server_ca);
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(pki.client_ca.cert.clone()).unwrap();
        b.set_verify_cert_store(store.build()).unwrap();
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        let behaviour = Arc::new(Mutex::new(PartnerBehaviour {
            status: 200,
            delay: Duration::ZERO,
        }));
        let beh = behaviour.clone();
        let server = Server::start(Some(b.build()), move |seen| {
            let b = beh.lock().unwrap().clone();
            let cert = seen.peer.as_ref();
            let cn = cert.and_then(|c| {
                c.subject_name()
                    .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                    .next()
                    .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
            });
            Reply::json(
                b.status,
                serde_json::json!({
                    "thumbprint": cert.map(thumbprint),
                    "commonName": cn,
                }),
            )
            .delayed(b.delay)
        })
        .await;
        Self { server, behaviour }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/partner/ping", self.server.addr.port())
    }

    pub fn set(&self, status: u16, delay: Duration) {
        *self.behaviour.lock().unwrap() = PartnerBehaviour { status, delay };
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

// === The child-process harness ===

/// In the child: returns `true` (run the test body). In the parent: re-runs this test
/// binary for `test_name` alone with `IDENTITY_ENDPOINT`/`IDENTITY_HEADER` set, waits (at
/// most 120 s, killing it after), asserts it passed, and returns `false`.
pub fn in_managed_identity_env(test_name: &str) -> bool {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .env("IDENTITY_ENDPOINT", IDENTITY_ENDPOINT)
        .env("IDENTITY_HEADER", IDENTITY_HEADER)
        .env_remove("MSI_ENDPOINT")
        .env_remove("MSI_SECRET")
        .env("RUST_LOG", "info")
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
    false
}

/// A multi-threaded runtime for a child's body.
pub fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}
