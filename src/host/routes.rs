//! The warp filters the Functions host talks to.
//!
//! Owns: paths and methods. `GET /` answers the host's readiness probe at once;
//! `GET /api/{function}` is forwarding mode (the original request); `POST /{function}` is
//! JSON mode. Everything else gets a JSON 404/405/413 from [`recover`].
//! Must not: decide answers (see `app`) or map domain errors (see `http_error`).

use crate::host::answer::{json_response, Answer};
use crate::host::app::{AppState, CertHeaderNames};
use crate::host::http_error::ApiError;
use crate::host::invocation::{self, Function};
use std::convert::Infallible;
use std::sync::Arc;
use warp::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use warp::{Filter, Rejection, Reply};

/// The host's JSON invocation payloads are small; anything bigger is not from the host.
pub const MAX_INVOCATION_BYTES: u64 = 1024 * 1024;

/// All routes, with rejections turned into JSON errors.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    readiness()
        .or(forwarded(state.clone()))
        .or(json_invocation(state))
        .recover(recover)
}

/// `GET /`: the host polls this until any HTTP answer arrives.
fn readiness() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path::end()
        .and(warp::get().or(warp::head()).unify())
        .map(|| json_response(StatusCode::OK, br#"{"status":"ready"}"#.to_vec()))
}

/// The certificate header values of one request: reference-counted copies of the header
/// values, never their bytes.
#[derive(Debug, Clone, Default)]
pub struct ClientCertHeaders {
    cert: Values,
    chain: Values,
}

#[derive(Debug, Clone, Default)]
enum Values {
    #[default]
    Absent,
    One(HeaderValue),
    /// Several values: kept so a rejection can say how many (a chain list may span lines).
    Many(Vec<HeaderValue>),
}

impl Values {
    fn of(headers: &HeaderMap, name: &HeaderName) -> Self {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Self::Absent,
            (Some(one), None) => Self::One(one.clone()),
            (Some(_), Some(_)) => Self::Many(headers.get_all(name).iter().cloned().collect()),
        }
    }

    fn as_slices(&self) -> Vec<&[u8]> {
        match self {
            Self::Absent => Vec::new(),
            Self::One(v) => vec![v.as_bytes()],
            Self::Many(vs) => vs.iter().map(HeaderValue::as_bytes).collect(),
        }
    }
}

impl ClientCertHeaders {
    /// Every value of the configured headers in `headers`.
    pub fn from_headers(headers: &HeaderMap, names: &CertHeaderNames) -> Self {
        Self {
            cert: Values::of(headers, &names.cert),
            chain: names
                .chain
                .as_ref()
                .map_or(Values::Absent, |c| Values::of(headers, c)),
        }
    }
}

tokio::task_local! {
    /// Set by `crate::host::server` around each request, so routing reads the certificate header
    /// without cloning the header map (warp has no filter for every value of one header).
    pub static CLIENT_CERT_HEADERS: ClientCertHeaders;
}

/// The request's certificate header values: from the server's task-local, or read from
/// the headers when the filters run without it (`warp::test`).
fn client_cert_headers(
    names: CertHeaderNames,
) -> impl Filter<Extract = (ClientCertHeaders,), Error = Infallible> + Clone {
    warp::any()
        .and_then(|| async {
            CLIENT_CERT_HEADERS
                .try_with(Clone::clone)
                .map_err(|_| warp::reject())
        })
        .or(warp::header::headers_cloned()
            .map(move |h: HeaderMap| ClientCertHeaders::from_headers(&h, &names)))
        .unify()
}

/// `GET /api/{function}`, as the host forwards the original request.
fn forwarded(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / String)
        .and(warp::get())
        .and(client_cert_headers(state.cert_headers.clone()))
        .and_then(move |name: String, headers: ClientCertHeaders| {
            let state = state.clone();
            async move {
                let function = Function::from_name(&name).ok_or_else(warp::reject::not_found)?;
                let (values, chain) = (headers.cert.as_slices(), headers.chain.as_slices());
                Ok::<_, Rejection>(
                    state
                        .invoke(function, &values, &chain)
                        .await
                        .into_response(),
                )
            }
        })
}

/// `POST /{function}` with the host's JSON invocation payload.
fn json_invocation(
    state: Arc<AppState>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!(String)
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_INVOCATION_BYTES))
        .and(warp::body::bytes())
        .and_then(move |name: String, body: bytes::Bytes| {
            let state = state.clone();
            async move {
                let function = Function::from_name(&name).ok_or_else(warp::reject::not_found)?;
                let payload: serde_json::Value = match serde_json::from_slice(&body) {
                    Ok(p) => p,
                    Err(e) => {
                        let err = ApiError::InvalidInvocation(e.to_string());
                        tracing::warn!(function = function.name(), error = %err, "bad invocation payload");
                        return Ok(err.to_answer().into_response());
                    }
                };
                let names = &state.cert_headers;
                let values = invocation::header_values(&payload, names.cert.as_str());
                let chain = names
                    .chain
                    .as_ref()
                    .map(|c| invocation::header_values(&payload, c.as_str()))
                    .unwrap_or_default();
                let answer = state.invoke(function, &values, &chain).await;
                let body = invocation::invocation_response(&answer, function);
                Ok::<_, Rejection>(Answer::ok(&body).into_response())
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
