//! Running one invocation, whichever way the host asked.
//!
//! Owns: the application state and the order every invocation goes through: the method
//! the function declares (else 405), the inbound gate for gated functions (else 403), the
//! body size limit (else 413), then the function's handler. Both host protocols (forwarded
//! HTTP and JSON invocations) end here, so the same request gets the same answer in both.
//! Must not: parse HTTP or invocation payloads (see `routes` and `invocation`), or hold
//! any function's own logic (see `crate::functions`).

use crate::host::answer::Answer;
use crate::host::function::{
    Access, AppState, Caller, Function, Handler, HandlerFuture, Method, Request,
};
use crate::host::http_error::ApiError;
use crate::inbound::client_cert::Accepted;
use bytes::Bytes;
use std::sync::Arc;
use warp::http::HeaderMap;

/// One invocation as either protocol delivers it, before any check.
pub struct Invocation<V> {
    /// The HTTP method; `None` when it is not one a function can declare.
    pub method: Option<Method>,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// The request headers without the certificate headers.
    pub headers: HeaderMap,
    /// The configured certificate header's values (`X-ARR-ClientCert` by default; any
    /// spelling of the name).
    pub cert_values: Vec<V>,
    /// The configured chain header's values (`rfc9440`'s `Client-Cert-Chain`; else none).
    pub chain_values: Vec<V>,
    /// Read only once the gate let the caller in.
    pub body: RequestBody,
}

/// A request body, not yet read.
#[derive(Debug)]
pub enum RequestBody {
    Empty,
    Ready(Bytes),
    Incoming(hyper::body::Incoming),
    /// The body could not be decoded (a JSON invocation's `Body` that is not base64).
    Unreadable(String),
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable(String),
}

impl RequestBody {
    /// A streamed body (an empty one is known as such without reading).
    pub fn incoming(body: hyper::body::Incoming) -> Self {
        use hyper::body::Body as _;
        if body.is_end_stream() {
            Self::Empty
        } else {
            Self::Incoming(body)
        }
    }

    /// The whole body, refused past `limit` bytes (at once when `Content-Length` says so).
    pub async fn read(self, limit: usize) -> Result<Bytes, BodyError> {
        use http_body_util::BodyExt as _;
        use hyper::body::Body as _;
        match self {
            Self::Empty => Ok(Bytes::new()),
            Self::Ready(b) if b.len() > limit => Err(BodyError::TooLarge),
            Self::Ready(b) => Ok(b),
            Self::Unreadable(reason) => Err(BodyError::Unreadable(reason)),
            Self::Incoming(incoming) if incoming.size_hint().lower() > limit as u64 => {
                Err(BodyError::TooLarge)
            }
            Self::Incoming(incoming) => {
                match http_body_util::Limited::new(incoming, limit)
                    .collect()
                    .await
                {
                    Ok(collected) => Ok(collected.to_bytes()),
                    Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                        Err(BodyError::TooLarge)
                    }
                    Err(e) => Err(BodyError::Unreadable(e.to_string())),
                }
            }
        }
    }
}

/// An invocation after the checks that need no waiting (method, gate): answered, running,
/// or waiting for its body. Holds no borrow, so a route can make it before its future.
pub enum Step {
    /// Refused (405, 403) or otherwise answered already.
    Answered(Answer),
    /// The handler is running.
    Running {
        function: &'static str,
        future: HandlerFuture,
    },
    /// The body must be read first (boxed: a body to stream is the exception, and it keeps
    /// every step small).
    ReadBody(Box<PendingBody>),
}

/// An admitted invocation whose body is still to be read.
pub struct PendingBody {
    function: &'static str,
    handler: Handler,
    request: Request,
    body: RequestBody,
}

impl AppState {
    /// Runs `function` for `invocation`: method (405), gate (403), body limit (413),
    /// handler. The same for both host protocols.
    pub async fn run<V: AsRef<[u8]>>(
        self: &Arc<Self>,
        function: &Function,
        invocation: Invocation<V>,
    ) -> Answer {
        let step = self.begin(function, invocation);
        self.complete(step).await
    }

    /// The checks that need no waiting, in order: the method the function declares, then
    /// the inbound gate for a gated function. A body already at hand starts the handler.
    pub fn begin<V: AsRef<[u8]>>(
        self: &Arc<Self>,
        function: &Function,
        invocation: Invocation<V>,
    ) -> Step {
        let Some(method) = invocation.method.filter(|m| function.allows(*m)) else {
            return Step::Answered(
                ApiError::MethodNotAllowed
                    .to_answer()
                    .with_header("allow", &function.allow_header()),
            );
        };
        let caller = match function.access() {
            Access::Public => None,
            Access::Gated => match self.authorize(
                function.name(),
                &invocation.cert_values,
                &invocation.chain_values,
            ) {
                Ok(accepted) => Some(Caller::new(accepted)),
                Err(refused) => return Step::Answered(refused),
            },
        };
        let (body, pending) = match invocation.body {
            RequestBody::Empty => (Bytes::new(), None),
            RequestBody::Ready(b) if b.len() <= self.max_body_bytes => (b, None),
            other => (Bytes::new(), Some(other)),
        };
        let request = Request {
            method,
            params: invocation.params,
            query: invocation.query,
            headers: invocation.headers,
            body,
            caller,
        };
        match pending {
            None => Step::Running {
                function: function.name(),
                future: function.call(request, self.clone()),
            },
            Some(body) => Step::ReadBody(Box::new(PendingBody {
                function: function.name(),
                handler: function.handler(),
                request,
                body,
            })),
        }
    }

    /// The caller's certificate decision for `function`: the gate's, then whether its
    /// partner may call `function`. A shadow partners document is consulted on the way
    /// (it never changes the answer).
    fn authorize<V: AsRef<[u8]>>(
        &self,
        function: &'static str,
        cert_values: &[V],
        chain_values: &[V],
    ) -> Result<Arc<Accepted>, Answer> {
        let now = (self.clock)();
        let decision = self.gate.check_forwarded(cert_values, chain_values, now);
        self.gate
            .shadow_compare(cert_values, chain_values, function, &decision, now);
        let accepted = decision.map_err(|e| ApiError::Cert(e).to_answer())?;
        if !accepted.partner.allows(function) {
            tracing::warn!(
                code = "function_not_allowed",
                partner = %accepted.partner.name,
                function,
                thumbprint = %accepted.info.thumbprint_sha1,
                "partner called a function it is not allowed"
            );
            return Err(ApiError::FunctionNotAllowed {
                partner: accepted.partner.name.clone(),
                function,
            }
            .to_answer());
        }
        Ok(accepted)
    }

    /// Waits for what [`Self::begin`] left: the body (413 past `MAX_REQUEST_BODY_BYTES`),
    /// then the handler; renders the handler's error.
    pub async fn complete(self: &Arc<Self>, step: Step) -> Answer {
        let (function, outcome) = match step {
            Step::Answered(answer) => return answer,
            Step::Running { function, future } => (function, future.await),
            Step::ReadBody(pending) => {
                let PendingBody {
                    function,
                    handler,
                    mut request,
                    body,
                } = *pending;
                request.body = match Box::pin(body.read(self.max_body_bytes)).await {
                    Ok(body) => body,
                    Err(BodyError::TooLarge) => return ApiError::PayloadTooLarge.to_answer(),
                    Err(BodyError::Unreadable(reason)) => {
                        return ApiError::InvalidBody { reason }.to_answer()
                    }
                };
                (function, handler(request, self.clone()).await)
            }
        };
        match outcome {
            Ok(answer) => answer,
            Err(e) => {
                // The gate and the partner client log their own failures; a function's own
                // server error is logged here.
                if matches!(e, ApiError::Function { .. }) && e.status().is_server_error() {
                    tracing::warn!(function, code = e.code(), error = %e, "function failed");
                }
                e.to_answer()
            }
        }
    }
}
