//! The paths the Functions host talks to.
//!
//! Owns: paths, and turning each protocol's request into an [`Invocation`]. `GET /`
//! answers the host's readiness probe at once; `/api/{route}` (any method) is forwarding
//! mode, matched against the registered functions' routes ([`forwarded_step`]);
//! `POST /{function}` is JSON mode. Anything else gets a JSON 404/405/413 from [`recover`].
//! Must not: decide answers (see `app`) or map domain errors (see `http_error`).
//!
//! The server (`crate::host::server`) calls [`forwarded_step`] itself for `/api/...`, and
//! for the rest lifts each request's headers and body out before warp sees it, handing
//! them over in a task-local, so nothing here clones the header map. The warp filter for
//! `/api/...` serves `warp::test` with the same [`forwarded_step`].

use crate::host::answer::{json_response, Answer};
use crate::host::app::{BodyError, Invocation, RequestBody, Step};
use crate::host::function::AppState;
use crate::host::function::{parse_query, CertHeaderNames, Method, INVOCATION_ID_HEADERS};
use crate::host::http_error::ApiError;
use crate::host::invocation::{self, CERT_HEADER};
use bytes::Bytes;
use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

/// The largest JSON invocation payload for a body limit of `max_body`: the body may arrive
/// base64-encoded or JSON-escaped inside it, next to the headers and metadata.
pub fn invocation_limit(max_body: usize) -> usize {
    max_body.saturating_mul(4).saturating_add(1024 * 1024)
}

/// All routes, with rejections turned into JSON errors, reading each request's headers and
/// body from warp (for `warp::test`; the server uses [`served_routes`]).
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let from_warp = warp::header::headers_cloned()
        .and(warp::body::bytes())
        .and(
            warp::query::raw()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .map(|h, b, q| Some(Source::Test(h, b, q)));
    build(state, from_warp)
}

/// The routes `crate::host::server` runs: each request's headers and body come from the
/// server's task-local ([`LIFTED`]), taken inside the route that handles it, so they are
/// never cloned nor moved through warp's combinators.
pub fn served_routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    build(
        state,
        warp::any().and_then(|| std::future::ready(Ok::<_, Rejection>(None))),
    )
}

fn build<S>(
    state: Arc<AppState>,
    source: S,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone
where
    S: Filter<Extract = (Option<Source>,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    readiness()
        .or(forwarded(state.clone(), source.clone()))
        .or(json_invocation(state, source))
        .recover(recover)
}

/// `GET /`: the host polls this until any HTTP answer arrives.
fn readiness() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path::end()
        .and(warp::get().or(warp::head()).unify())
        .map(|| json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec()))
}

/// One request's headers, body and query string, lifted out by the server before routing.
pub struct Lifted {
    pub headers: HeaderMap,
    pub body: hyper::body::Incoming,
    /// The raw query string, when there is one.
    pub query: Option<String>,
}

tokio::task_local! {
    /// Set by `crate::host::server` around each request; taken (once) by the route that
    /// handles it.
    pub static LIFTED: RefCell<Option<Lifted>>;
}

/// A request's headers and body, from the server's task-local or, when the filters run
/// without it (`warp::test`), from warp.
pub enum Source {
    Lifted(Lifted),
    Test(HeaderMap, Bytes, Option<String>),
}

/// The headers, body and query string of the request: `source` when the filters read them
/// (`warp::test`), else what the server lifted (an empty request if nothing was).
fn request_parts(source: Option<Source>) -> (HeaderMap, RequestBody, Option<String>) {
    if let Some(source) = source {
        return source.into_parts();
    }
    LIFTED
        .try_with(|cell| {
            cell.borrow_mut()
                .take()
                .map(|l| (l.headers, RequestBody::incoming(l.body), l.query))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| (HeaderMap::new(), RequestBody::Empty, None))
}

impl Source {
    fn into_parts(self) -> (HeaderMap, RequestBody, Option<String>) {
        match self {
            Self::Lifted(l) => (l.headers, RequestBody::incoming(l.body), l.query),
            Self::Test(h, b, q) if b.is_empty() => (h, RequestBody::Empty, q),
            Self::Test(h, b, q) => (h, RequestBody::Ready(b), q),
        }
    }
}

/// Every value of the configured certificate header and of the chain header, removed
/// from `headers` with any `X-ARR-ClientCert` (functions never see them).
fn take_cert_values(
    headers: &mut HeaderMap,
    names: &CertHeaderNames,
) -> (Vec<HeaderValue>, Vec<HeaderValue>) {
    let mut take = |name: &HeaderName| match headers.entry(name) {
        header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
        header::Entry::Vacant(_) => Vec::new(),
    };
    let cert = take(&names.cert);
    let chain = names.chain.as_ref().map(&mut take).unwrap_or_default();
    if names.cert != CERT_HEADER {
        take(&CERT_HEADER);
    }
    (cert, chain)
}

/// The part of a forwarded request's path after `/api/`, when it has that prefix.
pub fn api_tail(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api")?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix('/')
    }
}

/// A forwarded request (`/api/{tail}`) up to its [`Step`]: the function its route names
/// (404 if none), then everything that needs no waiting (see `AppState::begin`). Used by
/// the server directly and by the warp filter below.
pub fn forwarded_step(
    state: &Arc<AppState>,
    method: &warp::http::Method,
    tail: &str,
    query: Option<&str>,
    mut headers: HeaderMap,
    body: RequestBody,
) -> Step {
    let Some((function, params)) = state.functions.by_path(tail) else {
        return Step::Answered(ApiError::NotFound.to_answer());
    };
    let (cert_values, chain_values) = take_cert_values(&mut headers, &state.cert_headers);
    let invocation = Invocation {
        method: Method::from_http(method),
        params,
        query: query.map(parse_query).unwrap_or_default(),
        headers,
        cert_values,
        chain_values,
        body,
    };
    state.begin(function, invocation)
}

/// Any method on `/api/{route}`, as the host forwards the original request. The server
/// answers these itself (see `crate::host::server`); this filter serves `warp::test`.
fn forwarded<S>(
    state: Arc<AppState>,
    source: S,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone
where
    S: Filter<Extract = (Option<Source>,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    warp::path("api")
        .and(warp::path::tail())
        .and(warp::method())
        .and(source)
        .and_then(
            move |tail: warp::path::Tail, method: warp::http::Method, source: Option<Source>| {
                let state = state.clone();
                let (headers, body, query) = request_parts(source);
                let step = forwarded_step(
                    &state,
                    &method,
                    tail.as_str(),
                    query.as_deref(),
                    headers,
                    body,
                );
                async move { Ok::<_, Rejection>(state.complete(step).await.into_response()) }
            },
        )
}

/// `POST /{function}` with the host's JSON invocation payload.
fn json_invocation<S>(
    state: Arc<AppState>,
    source: S,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone
where
    S: Filter<Extract = (Option<Source>,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    warp::path!(String)
        .and(warp::post())
        .and(source)
        .and_then(move |name: String, source: Option<Source>| {
            let state = state.clone();
            async move {
                let Some(function) = state.functions.by_name(&name) else {
                    return Ok::<_, Rejection>(ApiError::NotFound.to_answer().into_response());
                };
                let (outer, body, _) = request_parts(source);
                let limit = invocation_limit(state.max_body_bytes);
                let payload = match body.read(limit).await {
                    Ok(bytes) => bytes,
                    Err(BodyError::TooLarge) => {
                        return Ok(ApiError::PayloadTooLarge.to_answer().into_response())
                    }
                    Err(BodyError::Unreadable(reason)) => {
                        let err = ApiError::InvalidInvocation(reason);
                        return Ok(err.to_answer().into_response());
                    }
                };
                let payload: serde_json::Value = match serde_json::from_slice(&payload) {
                    Ok(p) => p,
                    Err(e) => {
                        let err = ApiError::InvalidInvocation(e.to_string());
                        tracing::warn!(function = function.name(), error = %err, "bad invocation payload");
                        return Ok(err.to_answer().into_response());
                    }
                };
                let mut call = invocation::read_request(&payload, &state.cert_headers);
                // The host sends the invocation id on its own request; a function finds it
                // among the headers, as in forwarding mode.
                for name in INVOCATION_ID_HEADERS {
                    if let Some(id) = outer.get(&name) {
                        call.headers.entry(name).or_insert_with(|| id.clone());
                    }
                }
                let invocation = Invocation {
                    method: call.method,
                    params: call.params,
                    query: call.query,
                    headers: call.headers,
                    cert_values: call.cert_values,
                    chain_values: call.chain_values,
                    body: match call.body {
                        Ok(b) if b.is_empty() => RequestBody::Empty,
                        Ok(b) => RequestBody::Ready(b),
                        Err(reason) => RequestBody::Unreadable(reason),
                    },
                };
                let answer = state.run(function, invocation).await;
                let body = invocation::invocation_response(&answer, function.name());
                Ok(Answer::ok(&body).into_response())
            }
        })
}

/// Turns warp's rejections into the same JSON error shape as everything else.
pub async fn recover(rejection: Rejection) -> Result<impl Reply, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::InvalidInvocation("length required".to_owned())
    } else {
        ApiError::InvalidInvocation(format!("{rejection:?}"))
    };
    Ok(error.to_answer().into_response())
}
