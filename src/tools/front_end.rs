//! `handler front-end`: a local stand-in for the App Service front end, so client
//! certificates can be tried without Azure (Core Tools never asks for one).
//!
//! Owns: terminating TLS, asking for a client certificate, forwarding each request to an
//! `http://` backend with the presented certificate in the header of the chosen front end
//! (`--header-format`: `arr` sets `X-ARR-ClientCert` to the base64 DER of the leaf as App
//! Service does; `xfcc` sets `X-Forwarded-Client-Cert` as the Container Apps ingress does;
//! `rfc9440` sets `Client-Cert` (and `Client-Cert-Chain`); `pem-urlencoded` sets a header
//! holding URL-encoded PEM, as an Application Gateway rewrite rule does), with the
//! intermediates the client sent when `--forward-chain` is given, and the limits (body
//! sizes, timeouts, connections) that keep it bounded. Like App Service it does not
//! validate the chain (the verify callback accepts every chain), but the TLS handshake
//! itself proves that the caller holds the certificate's private key. Every certificate
//! header a client sent (`X-ARR-ClientCert`, `X-Forwarded-Client-Cert`, `Client-Cert`,
//! `Client-Cert-Chain`, and the configured one) is always removed before forwarding.
//! Must not: judge certificates (that is the handler's job behind it), or be exposed as a
//! production proxy: it exists for local development and tests.

use crate::host::answer::Answer;
use crate::inbound::client_cert::forwarded::{self, HeaderFormat};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use serde_json::json;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

/// Largest request body forwarded to the backend.
pub const MAX_REQUEST_BODY: usize = 4 * 1024 * 1024;
/// Largest backend response body relayed to the client.
pub const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;
/// Time allowed for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a client to send request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for reading the request body and for the backend's whole answer.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 512;

/// The certificate headers of every format: whatever a client sent in them is removed.
const CERT_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-arr-clientcert"),
    HeaderName::from_static("x-forwarded-client-cert"),
    HeaderName::from_static("client-cert"),
    HeaderName::from_static("client-cert-chain"),
];
/// The header `pem-urlencoded` uses unless `--header` names another (what Application
/// Gateway rewrite-rule examples call it).
pub const DEFAULT_PEM_HEADER: &str = "X-Client-Certificate";
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether the TLS handshake demands a client certificate (App Service `clientCertMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// No certificate, no connection.
    #[default]
    Required,
    /// A certificate is asked for; without one the request goes on without the header.
    Optional,
}

/// The `front-end` command's options.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// `http://host:port` of the handler (or of `func start`).
    pub backend: String,
    /// PEM server certificate, optionally followed by its chain.
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`.
    pub tls_key: PathBuf,
    pub mode: Mode,
    /// How the certificate is forwarded (`--header-format`).
    pub header_format: HeaderFormat,
    /// The certificate header (`--header`); `None` is the format's default.
    pub header: Option<String>,
    /// Forward the intermediates the client sent (`--forward-chain`; `xfcc`, `rfc9440`).
    pub forward_chain: bool,
}

/// Where and how the certificate is forwarded.
#[derive(Debug, Clone)]
struct Forwarding {
    format: HeaderFormat,
    header: HeaderName,
    chain_header: Option<HeaderName>,
    forward_chain: bool,
}

impl Forwarding {
    fn new(options: &Options) -> Result<Self, StartError> {
        let name = options
            .header
            .as_deref()
            .or(options.header_format.default_header())
            .unwrap_or(DEFAULT_PEM_HEADER);
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| StartError::Header {
            name: name.to_owned(),
        })?;
        let chain_header = options
            .header_format
            .default_chain_header()
            .map(|c| HeaderName::from_bytes(c.as_bytes()))
            .transpose()
            .map_err(|_| StartError::Header {
                name: "Client-Cert-Chain".to_owned(),
            })?;
        Ok(Self {
            format: options.header_format,
            header,
            chain_header,
            forward_chain: options.forward_chain,
        })
    }
}

/// Why the front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--backend {url:?}: {reason}")]
    Backend { url: String, reason: String },
    #[error("--tls-cert {cert} / --tls-key {key}: {reason}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("--header {name:?} is not an HTTP header name")]
    Header { name: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Why one request could not be relayed. `gateway_answer` answers these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("request body is larger than {max} bytes")]
    RequestTooLarge { max: usize },
    #[error("request body could not be read: {detail}")]
    BadRequestBody { detail: String },
    #[error("request target is not a valid URI: {detail}")]
    BadTarget { detail: String },
    #[error("backend unreachable: {detail}")]
    BackendUnreachable { detail: String },
    #[error("backend did not answer within {secs} s")]
    BackendTimeout { secs: u64 },
    #[error("backend response is larger than {max} bytes")]
    ResponseTooLarge { max: usize },
    #[error("backend response could not be read: {detail}")]
    BadResponse { detail: String },
}

/// The parts every connection shares.
struct Shared {
    backend: hyper::http::uri::Authority,
    forwarding: Forwarding,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The backend URL as an authority: `http://` only, no path beyond `/`.
pub fn parse_backend(url: &str) -> Result<hyper::http::uri::Authority, StartError> {
    let bad = |reason: &str| StartError::Backend {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("must start with http:// (the backend is on loopback)"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("must not have a path or query"));
    }
    uri.authority()
        .cloned()
        .ok_or_else(|| bad("has no host:port"))
}

/// The TLS settings: our certificate, and a client-certificate request whose chain is
/// not validated (App Service forwards any certificate; the handler decides).
pub fn acceptor(options: &Options) -> Result<SslAcceptor, StartError> {
    let tls = |e: openssl::error::ErrorStack| StartError::Tls {
        cert: options.tls_cert.clone(),
        key: options.tls_key.clone(),
        reason: e.to_string(),
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(tls)?;
    b.set_certificate_chain_file(&options.tls_cert)
        .map_err(tls)?;
    b.set_private_key_file(&options.tls_key, SslFiletype::PEM)
        .map_err(tls)?;
    b.check_private_key().map_err(tls)?;
    let mode = match options.mode {
        Mode::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        Mode::Optional => SslVerifyMode::PEER,
    };
    // Accept every chain; OpenSSL still checks the CertificateVerify signature, which is
    // the proof of possession the header's receiver relies on.
    b.set_verify_callback(mode, |_preverified, _ctx| true);
    b.set_session_id_context(b"mtls-handler-front-end")
        .map_err(tls)?;
    Ok(b.build())
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    acceptor: SslAcceptor,
    backend: hyper::http::uri::Authority,
    options: &Options,
    shutdown: impl Future<Output = ()>,
) {
    let forwarding = match Forwarding::new(options) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "front end cannot start");
            return;
        }
    };
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let shared = Arc::new(Shared {
        backend,
        forwarding,
        client,
    });
    let acceptor = Arc::new(acceptor);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, shared) = (Arc::clone(&acceptor), Arc::clone(&shared));
        tokio::spawn(async move {
            connection(tcp, peer, &acceptor, shared).await;
            drop(permit);
        });
    }
    tracing::info!("front end stopped");
}

async fn connection(tcp: TcpStream, peer: SocketAddr, acceptor: &SslAcceptor, shared: Arc<Shared>) {
    let stream = Ssl::new(acceptor.context()).and_then(|ssl| SslStream::new(ssl, tcp));
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up TLS for a connection");
            return;
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    }
    // On a server, OpenSSL's peer chain leaves the leaf out: these are what the client sent
    // after it, i.e. its intermediates (untrusted; the handler decides).
    let intermediates: Vec<Vec<u8>> = if shared.forwarding.forward_chain {
        stream
            .ssl()
            .peer_cert_chain()
            .map(|s| s.iter().filter_map(|c| c.to_der().ok()).collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let cert = stream
        .ssl()
        .peer_certificate()
        .and_then(|c| c.to_der().ok())
        .map(|der| PresentedCert::new(&der, &intermediates, &shared.forwarding));
    let cert = cert.map(Arc::new);
    let service = hyper::service::service_fn(move |req| {
        let (shared, cert) = (Arc::clone(&shared), cert.clone());
        async move { Ok::<_, Infallible>(handle(req, &shared, cert.as_deref(), peer).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The leaf the client proved it holds, as the headers carry it.
struct PresentedCert {
    header: HeaderValue,
    chain_header: Option<HeaderValue>,
    thumbprint: String,
}

impl PresentedCert {
    fn new(der: &[u8], intermediates: &[Vec<u8>], forwarding: &Forwarding) -> Self {
        let (value, chain) = forwarded::encode(forwarding.format, der, intermediates);
        // Every encoding is printable ASCII, always a valid header value.
        let to_header = |v: &str| HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static(""));
        Self {
            header: to_header(&value),
            chain_header: chain.as_deref().map(to_header),
            thumbprint: crate::inbound::client_cert::Thumbprint::of_der(der)
                .0
                .to_string(),
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    cert: Option<&PresentedCert>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let spoofed = CERT_HEADERS
        .iter()
        .chain(std::iter::once(&shared.forwarding.header))
        .any(|h| req.headers().contains_key(h));
    let (response, error) = match forward(req, shared, cert, peer).await {
        Ok(r) => (r, None),
        Err(e) => (gateway_response(&e), Some(e)),
    };
    tracing::info!(
        %peer,
        method = %method,
        target = ?target,
        status = response.status().as_u16(),
        client_cert = cert.map_or("-", |c| c.thumbprint.as_str()),
        stripped_client_header = spoofed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        error = error.as_ref().map(ToString::to_string),
        "front-end request"
    );
    response
}

/// The local front end's own failures (`handler front-end`), answered as a gateway does.
fn gateway_answer(e: &GatewayError) -> Answer {
    use GatewayError as G;
    let (status, code, message) = match e {
        G::RequestTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ),
        G::BadRequestBody { .. } | G::BadTarget { .. } => {
            (StatusCode::BAD_REQUEST, "bad_request", "bad request")
        }
        G::BackendUnreachable { .. } => (
            StatusCode::BAD_GATEWAY,
            "backend_unreachable",
            "the handler behind the front end is not reachable",
        ),
        G::BackendTimeout { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            "backend_timeout",
            "the handler behind the front end did not answer in time",
        ),
        G::ResponseTooLarge { .. } | G::BadResponse { .. } => (
            StatusCode::BAD_GATEWAY,
            "bad_backend_response",
            "the handler behind the front end answered with an unusable response",
        ),
    };
    Answer::new(status, json!({ "error": message, "code": code }))
}

fn gateway_response(e: &GatewayError) -> Response<Full<Bytes>> {
    let answer: Answer = gateway_answer(e);
    answer
        .into_response()
        .map(|body| Full::new(Bytes::from(body)))
}

async fn forward(
    req: Request<Incoming>,
    shared: &Shared,
    cert: Option<&PresentedCert>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, GatewayError> {
    let timeout = GatewayError::BackendTimeout {
        secs: BACKEND_TIMEOUT.as_secs(),
    };
    tokio::time::timeout(BACKEND_TIMEOUT, relay(req, shared, cert, peer))
        .await
        .map_err(|_| timeout)?
}

async fn relay(
    req: Request<Incoming>,
    shared: &Shared,
    cert: Option<&PresentedCert>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, GatewayError> {
    let (mut parts, body) = req.into_parts();
    // A declared length over the limit is refused before reading (and before hyper
    // answers `Expect: 100-continue`), so the client stops sending.
    if hyper::body::Body::size_hint(&body).lower() > MAX_REQUEST_BODY as u64 {
        return Err(GatewayError::RequestTooLarge {
            max: MAX_REQUEST_BODY,
        });
    }
    let body = read_limited(body, MAX_REQUEST_BODY)
        .await
        .map_err(|e| match e {
            Limit::Exceeded => GatewayError::RequestTooLarge {
                max: MAX_REQUEST_BODY,
            },
            Limit::Failed(detail) => GatewayError::BadRequestBody { detail },
        })?;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(shared.backend.clone())
        .path_and_query(path)
        .build()
        .map_err(|e| GatewayError::BadTarget {
            detail: e.to_string(),
        })?;
    parts.version = hyper::Version::HTTP_11;
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    // Whatever the client put there proves nothing: only the handshake does.
    for name in CERT_HEADERS.iter().chain([&shared.forwarding.header]) {
        h.remove(name);
    }
    if let Some(c) = cert {
        h.insert(shared.forwarding.header.clone(), c.header.clone());
        if let (Some(name), Some(value)) = (&shared.forwarding.chain_header, &c.chain_header) {
            h.insert(name.clone(), value.clone());
        }
    }
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        h.insert(X_FORWARDED_FOR, v);
    }
    set_content_length(h, body.len());
    let request = Request::from_parts(parts, Full::new(body));

    let response =
        shared
            .client
            .request(request)
            .await
            .map_err(|e| GatewayError::BackendUnreachable {
                detail: error_chain(&e),
            })?;
    let (mut parts, body) = response.into_parts();
    let body = read_limited(body, MAX_RESPONSE_BODY)
        .await
        .map_err(|e| match e {
            Limit::Exceeded => GatewayError::ResponseTooLarge {
                max: MAX_RESPONSE_BODY,
            },
            Limit::Failed(detail) => GatewayError::BadResponse { detail },
        })?;
    strip_hop_by_hop(&mut parts.headers);
    set_content_length(&mut parts.headers, body.len());
    Ok(Response::from_parts(parts, Full::new(body)))
}

enum Limit {
    Exceeded,
    Failed(String),
}

async fn read_limited<B>(body: B, max: usize) -> Result<Bytes, Limit>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(Limit::Exceeded),
        Err(e) => Err(Limit::Failed(e.to_string())),
    }
}

/// Removes the headers that describe one connection, not the message (RFC 9110 7.6.1).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        h.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        h.remove(name);
    }
}

fn set_content_length(h: &mut HeaderMap, len: usize) {
    h.remove(header::CONTENT_LENGTH);
    if len > 0 {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The `front-end` command: runs until SIGTERM or Ctrl-C. Exit 1 when it cannot start.
pub fn run(options: &Options) -> ExitCode {
    use crate::settings::{EnvSource as _, ProcessEnv};
    crate::telemetry::init(
        ProcessEnv
            .get("LOG_FORMAT")
            .is_some_and(|f| f.eq_ignore_ascii_case("json")),
    );
    let started = parse_backend(&options.backend)
        .and_then(|b| Forwarding::new(options).map(|_| b))
        .and_then(|b| Ok((b, acceptor(options)?)));
    let (backend, acceptor) = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("front-end: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("front-end: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let addr = options.listen;
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(source) => {
                eprintln!("front-end: {}", StartError::Listen { addr, source });
                return ExitCode::FAILURE;
            }
        };
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the front end is a local development tool; it is listening beyond loopback");
        }
        tracing::info!(
            %addr,
            backend = %backend,
            mode = ?options.mode,
            header_format = %options.header_format,
            forward_chain = options.forward_chain,
            "front end listening (https); the certificate header carries the presented certificate"
        );
        serve(listener, acceptor, backend, options, crate::host::server::shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_must_be_plain_http_without_a_path() {
        assert!(parse_backend("http://127.0.0.1:3000").is_ok());
        assert!(parse_backend("http://127.0.0.1:3000/").is_ok());
        assert!(parse_backend("https://127.0.0.1:3000").is_err());
        assert!(parse_backend("http://127.0.0.1:3000/api").is_err());
        assert!(parse_backend("127.0.0.1:3000").is_err());
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
