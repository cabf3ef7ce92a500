//! The handler's real server (`host::server::run` on a loopback port, in this process) with
//! a chosen list of functions, checked against function folders written into a temporary
//! app root exactly as start-up checks them; a partner API on real TLS that requires the
//! app's client certificate and records what it received; and the host's JSON invocation.
//!
//! Include with `#[path = "support/app.rs"] mod app_support;`.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use mtls_handler::host::config::Config;
use mtls_handler::host::function::Function;
use mtls_handler::tools::pki::{CertSpec, Eku, Issued};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub const PARTNER_CN: &str = "api-client.contoso.com";
pub const APP_CN: &str = "outbound.app.example";

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every CA and certificate a test needs: partners calling in (inbound CA), the app calling
/// out (its own identity, and the partner's TLS server certificate).
pub struct Pki {
    pub inbound_ca: Issued,
    pub caller: Issued,
    pub server_ca: Issued,
    pub partner_server: Issued,
    pub app_ca: Issued,
    pub app_identity: Issued,
}

impl Pki {
    pub fn new() -> Self {
        let t = now();
        let inbound_ca = CertSpec::ca("Inbound CA", t, 30).self_signed().unwrap();
        let caller = CertSpec::leaf(PARTNER_CN, t, 10)
            .issued_by(&inbound_ca)
            .unwrap();
        let server_ca = CertSpec::ca("Partner Server CA", t, 30)
            .self_signed()
            .unwrap();
        let partner_server = CertSpec::leaf("partner.test", t, 10)
            .with_ekus(Some(vec![Eku::ServerAuth]))
            .with_ip_addresses(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
            .issued_by(&server_ca)
            .unwrap();
        let app_ca = CertSpec::ca("App Identity CA", t, 30)
            .self_signed()
            .unwrap();
        let app_identity = CertSpec::leaf(APP_CN, t, 10).issued_by(&app_ca).unwrap();
        Self {
            inbound_ca,
            caller,
            server_ca,
            partner_server,
            app_ca,
            app_identity,
        }
    }

    /// Settings for a handler that accepts `caller` and calls `partner_url` as
    /// `app_identity`; files go into `dir`.
    pub fn settings(&self, dir: &Path, partner_url: Option<&str>) -> Vec<(String, String)> {
        let write = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p.to_string_lossy().into_owned()
        };
        let mut env = vec![
            (
                "CLIENT_CERT_CA_PATH".to_owned(),
                write("inbound-ca.pem", self.inbound_ca.cert_pem().unwrap()),
            ),
            (
                "ALLOWED_CLIENT_CERT_COMMON_NAMES".to_owned(),
                PARTNER_CN.to_owned(),
            ),
            (
                "OUTBOUND_CLIENT_CERT_PATH".to_owned(),
                write(
                    "app.p12",
                    self.app_identity.pkcs12("", &[&self.app_ca.cert]).unwrap(),
                ),
            ),
            (
                "REMOTE_API_CA_PATH".to_owned(),
                write("server-ca.pem", self.server_ca.cert_pem().unwrap()),
            ),
            ("REMOTE_API_TIMEOUT_SECONDS".to_owned(), "10".to_owned()),
        ];
        if let Some(url) = partner_url {
            env.push(("REMOTE_API_URL".to_owned(), url.to_owned()));
        }
        env
    }
}

/// The app's server on 127.0.0.1, serving `functions`; stopped on drop.
pub struct App {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// A temporary app root with the repository's function folders plus `extra`
/// (`(folder, function.json text)`).
pub fn app_root(extra: &[(&str, String)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_root()).unwrap() {
        let path = entry.unwrap().path();
        if path.join("function.json").is_file() {
            let name = path.file_name().unwrap();
            std::fs::create_dir(root.path().join(name)).unwrap();
            std::fs::copy(
                path.join("function.json"),
                root.path().join(name).join("function.json"),
            )
            .unwrap();
        }
    }
    for (folder, text) in extra {
        std::fs::create_dir_all(root.path().join(folder)).unwrap();
        std::fs::write(root.path().join(folder).join("function.json"), text).unwrap();
    }
    root
}

/// A `function.json` for an HTTP function on `route` allowing `methods`.
pub fn function_json(route: &str, methods: &[&str]) -> String {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "anonymous",
         "methods": methods, "route": route},
        {"type": "http", "direction": "out", "name": "res"}
    ]})
    .to_string()
}

impl App {
    /// Checks `functions` against `root` as start-up does, then serves them with `env`.
    pub async fn start(
        functions: Vec<Function>,
        root: tempfile::TempDir,
        env: &[(String, String)],
    ) -> Self {
        let mut map: HashMap<String, String> = env.iter().cloned().collect();
        map.insert(
            "FUNCTIONS_APP_ROOT_PATH".to_owned(),
            root.path().to_string_lossy().into_owned(),
        );
        let config = Config::from_env(&map).unwrap();
        let registry = mtls_handler::host::start::checked_registry(functions, &config).unwrap();
        let state = mtls_handler::host::start::build_state_with(&config, registry).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mtls_handler::host::server::run(listener, state, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            root,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A JSON-mode invocation of `function` as the host sends it, with `req` as `Data.req`;
    /// returns `Outputs.res` (status, headers, body parsed) after checking the HTTP 200.
    pub async fn invoke(&self, function: &str, req: Value) -> Output {
        let payload = json!({
            "Data": { "req": req },
            "Metadata": { "sys": { "MethodName": function, "UtcNow": "2026-11-30T07:00:00Z", "RandGuid": "0" } }
        });
        let res = client()
            .post(self.url(&format!("/{function}")))
            .header("X-Azure-Functions-InvocationId", "inv-json-1")
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "JSON mode always answers the host with 200"
        );
        let outer: Value = res.json().await.unwrap();
        let out = &outer["Outputs"]["res"];
        Output {
            status: out["statusCode"].as_u64().unwrap_or(0) as u16,
            headers: out["headers"].clone(),
            body: serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap(),
        }
    }
}

/// `Outputs.res` of a JSON-mode answer.
#[derive(Debug)]
pub struct Output {
    pub status: u16,
    pub headers: Value,
    pub body: Value,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// What the partner received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// CN of the client certificate presented.
    pub client_cn: Option<String>,
}

/// A partner API on TLS that requires a client certificate from `app_ca`, answers every
/// request with `status` and `{"received": true}`, and records what it got.
pub struct Partner {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Partner {
    pub async fn start(pki: &Pki, status: u16) -> Self {
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        b.set_private_key(&pki.partner_server.key).unwrap();
        b.set_certificate(&pki.partner_server.cert).unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(pki.app_ca.cert.clone()).unwrap();
        b.set_verify_cert_store(store.build()).unwrap();
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        let acceptor = Arc::new(b.build());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    let ssl = Ssl::new(acceptor.context()).unwrap();
                    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
                    if Pin::new(&mut stream).accept().await.is_err() {
                        return;
                    }
                    let client_cn = stream.ssl().peer_certificate().and_then(|c| {
                        c.subject_name()
                            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                            .next()
                            .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
                    });
                    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let (log, client_cn) = (log.clone(), client_cn.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            log.lock().unwrap().push(Received {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                content_type: parts
                                    .headers
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                                body,
                                client_cn,
                            });
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(br#"{"received":true}"#)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
