//! What a function is: a declaration (name, route, methods, access) and an async handler
//! that receives a [`Request`] and returns an [`Answer`] or an [`ApiError`].
//!
//! Owns: the declaration types, the request context a handler sees (built the same way for
//! forwarded HTTP and JSON invocations), route templates and their parameters, query
//! parsing, and the registry the host dispatches on.
//! Must not: decide who may call (the inbound gate does, see `app`), parse the host's
//! payloads (see `invocation`) or map errors to HTTP (see `http_error`).
//!
//! The product's own functions live in `crate::functions`; adding one is a folder with a
//! `function.json`, a module, and one line in `crate::functions::all`.

use crate::host::answer::Answer;
use crate::host::http_error::ApiError;
use crate::inbound::client_cert::{Accepted, CertError, CertificateInfo, MatchedBy};
use crate::inbound::config::HeaderConfig;
use crate::inbound::InboundGate;
use crate::outbound::Outbound;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use warp::http::{HeaderMap, HeaderName};

/// The invocation id header the host adds in forwarding and JSON modes, and the one the
/// newer proxying mode adds.
pub const INVOCATION_ID_HEADERS: [HeaderName; 2] = [
    HeaderName::from_static("x-azure-functions-invocationid"),
    HeaderName::from_static("x-ms-invocation-id"),
];

/// The HTTP methods a function can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const ALL: [Self; 5] = [Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete];

    /// The name as HTTP spells it (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// The name as `function.json` spells it (`get`).
    pub fn function_json_name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Put => "put",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }

    /// Case-insensitive; `None` for anything else (`HEAD`, `OPTIONS`, `TRACE`, junk).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    pub fn from_http(method: &warp::http::Method) -> Option<Self> {
        use warp::http::Method as M;
        match *method {
            M::GET => Some(Self::Get),
            M::POST => Some(Self::Post),
            M::PUT => Some(Self::Put),
            M::PATCH => Some(Self::Patch),
            M::DELETE => Some(Self::Delete),
            _ => None,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only callers whose client certificate the inbound gate accepts (the default).
    Gated,
    /// Anyone who reaches the app: no certificate is read or checked, and the handler
    /// sees no caller. Chosen on purpose with [`Function::public`].
    Public,
}

/// A function's answer: a successful [`Answer`] or an error that `http_error` renders.
pub type Outcome = Result<Answer, ApiError>;

/// A running handler.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// A function's handler, shareable with an invocation that must read its body first.
pub type Handler = Arc<dyn Fn(Request, Arc<AppState>) -> HandlerFuture + Send + Sync>;

/// One function: its declaration and its handler.
pub struct Function {
    name: &'static str,
    route: Route,
    methods: Vec<Method>,
    access: Access,
    handler: Handler,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("route", &self.route.template)
            .field("methods", &self.methods)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Function {
    /// A gated function named `name` (its folder's name), on route `name`, answering
    /// `methods` with `handler`. Change the route with [`Self::route`]; only
    /// [`Self::public`] lets a caller in without a certificate.
    pub fn new<H, Fut>(name: &'static str, methods: &[Method], handler: H) -> Self
    where
        H: Fn(Request, Arc<AppState>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let mut methods = methods.to_vec();
        methods.sort_unstable();
        methods.dedup();
        Self {
            name,
            route: Route::parse(name),
            methods,
            access: Access::Gated,
            handler: Arc::new(move |req, app| Box::pin(handler(req, app))),
        }
    }

    /// The route template as in `function.json` (`orders/{id}`); the default is the name.
    #[must_use]
    pub fn route(mut self, template: &'static str) -> Self {
        self.route = Route::parse(template);
        self
    }

    /// Lets anyone call this function, with no client certificate. Only for functions that
    /// show nothing about callers or partners (`health`).
    #[must_use]
    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn route_template(&self) -> &'static str {
        self.route.template
    }

    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    pub fn access(&self) -> Access {
        self.access
    }

    pub fn allows(&self, method: Method) -> bool {
        self.methods.contains(&method)
    }

    /// The `Allow` header value for a 405 (`GET, POST`).
    pub fn allow_header(&self) -> String {
        self.methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs the handler.
    pub(crate) fn call(&self, req: Request, app: Arc<AppState>) -> HandlerFuture {
        (self.handler)(req, app)
    }

    pub(crate) fn handler(&self) -> Handler {
        self.handler.clone()
    }

    /// Route parameters when `path` (after `/api/`, still percent-encoded) matches.
    pub fn match_path(&self, path: &str) -> Option<Vec<(String, String)>> {
        self.route.matches(path)
    }
}

/// A problem with the registered functions themselves (found at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("function {name:?}: the name must be a folder name (letters, digits, '-' or '_')")]
    BadName { name: String },
    #[error("function {name:?} is registered twice")]
    DuplicateName { name: String },
    #[error("functions {first:?} and {second:?} both declare route {route:?}")]
    DuplicateRoute {
        first: String,
        second: String,
        route: String,
    },
    #[error("function {name:?} declares no methods")]
    NoMethods { name: String },
    #[error("function {name:?}: route {route:?} is not a usable template ({reason})")]
    BadRoute {
        name: String,
        route: String,
        reason: &'static str,
    },
}

/// The registered functions, checked once.
#[derive(Debug)]
pub struct Registry {
    functions: Vec<Function>,
}

impl Registry {
    /// Checks names, routes and methods; refuses duplicates.
    pub fn new(functions: Vec<Function>) -> Result<Self, RegistryError> {
        for (i, f) in functions.iter().enumerate() {
            let valid_name = !f.name.is_empty()
                && f.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(RegistryError::BadName {
                    name: f.name.to_owned(),
                });
            }
            if f.methods.is_empty() {
                return Err(RegistryError::NoMethods {
                    name: f.name.to_owned(),
                });
            }
            if let Some(reason) = f.route.problem {
                return Err(RegistryError::BadRoute {
                    name: f.name.to_owned(),
                    route: f.route.template.to_owned(),
                    reason,
                });
            }
            for earlier in &functions[..i] {
                if earlier.name.eq_ignore_ascii_case(f.name) {
                    return Err(RegistryError::DuplicateName {
                        name: f.name.to_owned(),
                    });
                }
                if earlier.route.shape() == f.route.shape() {
                    return Err(RegistryError::DuplicateRoute {
                        first: earlier.name.to_owned(),
                        second: f.name.to_owned(),
                        route: f.route.template.to_owned(),
                    });
                }
            }
        }
        Ok(Self { functions })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Function> {
        self.functions.iter()
    }

    /// The function the host invokes as `POST /{name}` (JSON mode).
    pub fn by_name(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The function whose route matches `path` (forwarding mode, after `/api/`), with its
    /// route parameters. Literal routes win over templates.
    pub fn by_path(&self, path: &str) -> Option<(&Function, Vec<(String, String)>)> {
        let literal = self
            .functions
            .iter()
            .filter(|f| f.route.is_literal())
            .chain(self.functions.iter().filter(|f| !f.route.is_literal()));
        for f in literal {
            if let Some(params) = f.route.matches(path) {
                return Some((f, params));
            }
        }
        None
    }
}

/// A route template: literal segments and `{name}` parameters, as in `function.json`.
/// `{name:constraint}` is accepted (the host checks the constraint before forwarding),
/// `{name?}` may be absent when it is the last segment, and `{*name}` takes the rest.
#[derive(Debug, Clone)]
struct Route {
    template: &'static str,
    segments: Vec<Segment>,
    problem: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param { name: &'static str, optional: bool },
    Rest { name: &'static str },
}

impl Route {
    fn parse(template: &'static str) -> Self {
        let mut segments = Vec::new();
        let mut problem = None;
        let trimmed = template.trim_matches('/');
        if trimmed.is_empty() {
            problem = Some("empty");
        }
        let parts: Vec<&'static str> = trimmed.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let segment =
                if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    let (inner, rest) = match inner.strip_prefix('*') {
                        Some(r) => (r, true),
                        None => (inner, false),
                    };
                    let name_part = inner.split(':').next().unwrap_or("");
                    let (name, optional) = match name_part.strip_suffix('?') {
                        Some(n) => (n, true),
                        None => (name_part, inner.ends_with('?')),
                    };
                    if name.is_empty() {
                        problem = problem.or(Some("a parameter without a name"));
                    }
                    if (rest || optional) && !last {
                        problem = problem.or(Some(
                            "only the last segment may be optional or take the rest",
                        ));
                    }
                    if rest {
                        Segment::Rest { name }
                    } else {
                        Segment::Param { name, optional }
                    }
                } else {
                    if part.is_empty() || part.contains(['{', '}']) {
                        problem = problem.or(Some("an empty or malformed segment"));
                    }
                    Segment::Literal(part)
                };
            segments.push(segment);
        }
        Self {
            template,
            segments,
            problem,
        }
    }

    fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The template with parameter names erased (two routes with the same shape collide).
    fn shape(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.to_ascii_lowercase(),
                Segment::Param { .. } => "{}".to_owned(),
                Segment::Rest { .. } => "{*}".to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Literal segments match ASCII case-insensitively, as the host's router does. No
    /// allocation unless there are parameters (this runs on every forwarded request).
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut rest = (!path.is_empty()).then_some(path);
        let mut params = Vec::new();
        for segment in &self.segments {
            if let Segment::Rest { name } = segment {
                if let Some(r) = rest.filter(|r| !r.is_empty()) {
                    params.push(((*name).to_owned(), percent_decode(r)));
                }
                return Some(params);
            }
            let part = rest.map(|r| match r.bytes().position(|b| b == b'/') {
                Some(slash) => {
                    rest = Some(&r[slash + 1..]);
                    &r[..slash]
                }
                None => {
                    rest = None;
                    r
                }
            });
            match segment {
                Segment::Literal(l) => {
                    if !part.is_some_and(|p| p.eq_ignore_ascii_case(l)) {
                        return None;
                    }
                }
                Segment::Param { name, optional } => match part {
                    Some(p) if !p.is_empty() => {
                        params.push(((*name).to_owned(), percent_decode(p)));
                    }
                    _ if *optional => {}
                    _ => return None,
                },
                Segment::Rest { .. } => {}
            }
        }
        rest.is_none().then_some(params)
    }
}

/// Who is calling: the identity the inbound gate established. Only gated functions have
/// one.
#[derive(Debug, Clone)]
pub struct Caller {
    accepted: Arc<Accepted>,
}

impl Caller {
    pub(crate) fn new(accepted: Arc<Accepted>) -> Self {
        Self { accepted }
    }

    /// The client certificate's details (names, thumbprints, issuer, validity, SANs).
    pub fn certificate(&self) -> &CertificateInfo {
        &self.accepted.info
    }

    /// The certificate's subject CN, when it has exactly one.
    pub fn common_name(&self) -> Option<&str> {
        self.accepted.info.common_name()
    }

    /// SHA-256 of the certificate, uppercase hex: the stable key for "this caller".
    pub fn thumbprint_sha256(&self) -> &str {
        &self.accepted.info.thumbprint_sha256
    }

    /// Whether a pinned thumbprint or an allowed common name let the caller in.
    pub fn matched_by(&self) -> MatchedBy {
        self.accepted.matched_by
    }

    /// The partner's name from the partners document (`app-settings` when the flat
    /// `ALLOWED_CLIENT_CERT_*` settings accepted the caller).
    pub fn partner(&self) -> &str {
        &self.accepted.partner.name
    }

    /// The functions the partner may call (`["*"]`: all).
    pub fn functions(&self) -> Vec<String> {
        self.accepted.partner.functions.names()
    }

    /// The gate's decision itself (with its cached renderings).
    pub fn accepted(&self) -> &Accepted {
        &self.accepted
    }
}

/// What a handler receives: the same for forwarded HTTP and JSON invocations.
#[derive(Debug)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) caller: Option<Caller>,
}

impl Request {
    pub fn method(&self) -> Method {
        self.method
    }

    /// A route parameter (`{id}` in `orders/{id}`), percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }

    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// A query parameter, decoded; repeated keys are joined with `,` as the host does.
    pub fn query(&self, name: &str) -> Option<&str> {
        lookup(&self.query, name)
    }

    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// The request headers, without `X-ARR-ClientCert` (the gate reads that; functions
    /// use [`Self::caller`]).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON into `T`; a body that is not (400 `invalid_body`, with
    /// serde's line, column and what it expected).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::InvalidBody {
            reason: e.to_string(),
        })
    }

    /// The Functions host's invocation id (`X-Azure-Functions-InvocationId`), for logs.
    pub fn invocation_id(&self) -> Option<&str> {
        INVOCATION_ID_HEADERS
            .iter()
            .find_map(|name| self.headers.get(name)?.to_str().ok())
    }

    /// The authenticated caller. Always there in a gated function; in a public one this is
    /// the 403 `missing` error, so `req.caller()?` is safe everywhere.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller
            .as_ref()
            .ok_or(ApiError::Cert(CertError::Missing))
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `a=1&b=x%20y&a=2` → `[("a", "1,2"), ("b", "x y")]`: `+` is a space, repeated keys are
/// joined with `,` (what the host's forwarding does), empty keys are dropped.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(&k.replace('+', " "));
        if key.is_empty() {
            continue;
        }
        let value = percent_decode(&v.replace('+', " "));
        match pairs.iter_mut().find(|(existing, _)| *existing == key) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => pairs.push((key, value)),
        }
    }
    pairs
}

/// Percent-decoding; malformed escapes are kept as they are, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// === the state functions run with ===

/// Shared state of the running handler.
pub struct AppState {
    pub gate: Arc<InboundGate>,
    /// The headers the certificate (and chain) are read from.
    pub cert_headers: CertHeaderNames,
    pub outbound: Arc<Outbound>,
    /// The clock, Unix seconds; tests pass a fixed one.
    pub clock: fn() -> i64,
    /// The registered functions.
    pub functions: Registry,
    /// `MAX_REQUEST_BODY_BYTES`: the largest request body a function receives.
    pub max_body_bytes: usize,
}

/// The configured certificate header (`CLIENT_CERT_HEADER`, `X-ARR-ClientCert` by
/// default) and chain header (`CLIENT_CERT_CHAIN_HEADER`, `rfc9440` only): the only headers
/// the certificate is read from. Functions see neither, nor an `X-ARR-ClientCert`.
#[derive(Debug, Clone)]
pub struct CertHeaderNames {
    pub cert: HeaderName,
    pub chain: Option<HeaderName>,
}

/// App Service's header, hidden from functions whatever the configured one.
const ARR_HEADER: HeaderName = HeaderName::from_static("x-arr-clientcert");

impl CertHeaderNames {
    /// From the checked settings (a name the settings accepted is a valid header name).
    pub fn from_config(config: &HeaderConfig) -> Self {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).unwrap_or(ARR_HEADER);
        Self {
            cert: name(&config.name),
            chain: config.chain_name.as_deref().map(name),
        }
    }

    /// Whether `name` is a certificate header functions must not see.
    pub fn hides(&self, name: &HeaderName) -> bool {
        *name == self.cert || self.chain.as_ref() == Some(name) || *name == ARR_HEADER
    }
}

impl Default for CertHeaderNames {
    /// App Service's `X-ARR-ClientCert`.
    fn default() -> Self {
        Self::from_config(&HeaderConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(t: &'static str, path: &str) -> Option<Vec<(String, String)>> {
        Route::parse(t).matches(path)
    }

    #[test]
    fn literal_routes_match_case_insensitively_with_an_optional_trailing_slash() {
        assert_eq!(route("cert-info", "cert-info"), Some(vec![]));
        assert_eq!(route("cert-info", "Cert-Info/"), Some(vec![]));
        assert_eq!(route("cert-info", "cert-info/x"), None);
        assert_eq!(route("cert-info", "cert"), None);
    }

    #[test]
    fn route_parameters_are_extracted_and_decoded() {
        let p = route("orders/{id}", "orders/a%20b").unwrap();
        assert_eq!(p, vec![("id".to_owned(), "a b".to_owned())]);
        assert_eq!(route("orders/{id:int}", "orders/7").unwrap()[0].1, "7");
        assert_eq!(route("orders/{id}", "orders"), None);
        assert_eq!(route("orders/{id?}", "orders"), Some(vec![]));
        let p = route("files/{*path}", "files/a/b%2Fc").unwrap();
        assert_eq!(p, vec![("path".to_owned(), "a/b/c".to_owned())]);
    }

    #[test]
    fn bad_templates_are_reported() {
        assert!(Route::parse("").problem.is_some());
        assert!(Route::parse("a/{*rest}/b").problem.is_some());
        assert!(Route::parse("a//b").problem.is_some());
        assert!(Route::parse("a/{}").problem.is_some());
        assert!(Route::parse("orders/{id}").problem.is_none());
    }

    #[test]
    fn repeated_query_keys_are_joined_like_the_host_does() {
        assert_eq!(
            parse_query("a=1&b=x+y%21&a=2&=z&c"),
            vec![
                ("a".to_owned(), "1,2".to_owned()),
                ("b".to_owned(), "x y!".to_owned()),
                ("c".to_owned(), String::new()),
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn the_registry_refuses_duplicates_and_empty_method_lists() {
        async fn h(_: Request, _: Arc<AppState>) -> Outcome {
            Ok(Answer::ok(&()))
        }
        let dup = Registry::new(vec![
            Function::new("a", &[Method::Get], h),
            Function::new("a", &[Method::Get], h).route("b"),
        ]);
        assert!(matches!(dup, Err(RegistryError::DuplicateName { .. })));
        let same_route = Registry::new(vec![
            Function::new("a", &[Method::Get], h).route("x/{id}"),
            Function::new("b", &[Method::Get], h).route("X/{other}"),
        ]);
        assert!(matches!(
            same_route,
            Err(RegistryError::DuplicateRoute { .. })
        ));
        let none = Registry::new(vec![Function::new("a", &[], h)]);
        assert!(matches!(none, Err(RegistryError::NoMethods { .. })));
        let bad = Registry::new(vec![Function::new("a/b", &[Method::Get], h)]);
        assert!(matches!(bad, Err(RegistryError::BadName { .. })));
    }

    #[test]
    fn literal_routes_win_over_templates() {
        async fn h(_: Request, _: Arc<AppState>) -> Outcome {
            Ok(Answer::ok(&()))
        }
        let r = Registry::new(vec![
            Function::new("by-id", &[Method::Get], h).route("orders/{id}"),
            Function::new("latest", &[Method::Get], h).route("orders/latest"),
        ])
        .unwrap();
        assert_eq!(r.by_path("orders/latest").unwrap().0.name(), "latest");
        assert_eq!(r.by_path("orders/7").unwrap().0.name(), "by-id");
    }
}
