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
//! them over in a task-local, so nothing here clones the header map.

use crate::host::answer::{json_response, Answer};
use crate::host::app::{BodyError, Invocation, RequestBody, Step};
use crate::host::function::AppState;
use crate::host::function::{parse_query, CertHeaderNames, Method, INVOCATION_ID_HEADERS};
use crate::host::http_error::ApiError;
use crate::host::invocation::{self, CERT_HEADER};
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

/// The routes `crate::host::server` runs: each request's headers and body come from the
/// server's task-local ([`LIFTED`]), taken inside the route that handles it, so they are
/// never cloned nor moved through warp's combinators.
pub fn served_routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    readiness().or(json_invocation(state)).recover(recover)
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

/// The headers, body and query string the server lifted for this request (an empty
/// request if nothing was).
fn request_parts() -> (HeaderMap, RequestBody, Option<String>) {
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
/// (404 if none), then everything that needs no waiting (see `AppState::begin`). The
/// server calls it directly, without warp's filters.
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

/// `POST /{function}` with the host's JSON invocation payload.
fn json_invocation(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!(String)
        .and(warp::post())
        .and_then(move |name: String| {
            let state = state.clone();
            async move {
                let Some(function) = state.functions.by_name(&name) else {
                    return Ok::<_, Rejection>(ApiError::NotFound.to_answer().into_response());
                };
                let (outer, body, _) = request_parts();
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
