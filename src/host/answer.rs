//! An invocation's answer, independent of how the host asked (forwarded HTTP or JSON).
//!
//! Owns: the status + serialized JSON body pair, extra response headers, and their
//! renderings. The body is serialized once, when the answer is made, so the hot path never
//! builds a `serde_json::Value` tree. Functions return answers; every body is JSON.
//! Must not: decide status codes for errors (see `http_error`).

use serde::Serialize;
use serde_json::Value;
use warp::http::{header, HeaderName, HeaderValue, Response, StatusCode};

/// Status and JSON body of one function invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    /// The JSON text of the body.
    pub body: Vec<u8>,
    /// The stable error code, for error answers.
    pub code: Option<String>,
    /// Headers besides the ones every answer carries (`Location`, `Allow`, ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answer {
    /// An answer whose body is `body` (its `code` member, if any, becomes [`Self::code`]).
    pub fn new(status: StatusCode, body: Value) -> Self {
        let code = body.get("code").and_then(Value::as_str).map(str::to_owned);
        Self {
            status,
            body: serde_json::to_vec(&body).unwrap_or_default(),
            code,
            headers: Vec::new(),
        }
    }

    /// An answer with `status` serializing `body` directly (`201 Created` and the like).
    pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Self {
        Self {
            status,
            ..Self::ok(body)
        }
    }

    /// The answer with header `name: value` added (replacing one of the same name). A name
    /// or value HTTP cannot carry is left out and logged.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                self.headers.retain(|(n, _)| *n != name);
                self.headers.push((name, value));
            }
            _ => tracing::warn!(header = name, "answer header left out: not valid in HTTP"),
        }
        self
    }

    /// A 200 answer serializing `body` directly.
    pub fn ok<T: Serialize + ?Sized>(body: &T) -> Self {
        Self {
            status: StatusCode::OK,
            body: serde_json::to_vec(body).unwrap_or_default(),
            code: None,
            headers: Vec::new(),
        }
    }

    /// A 200 answer whose body is already serialized JSON.
    pub fn ok_json(body: Vec<u8>) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            code: None,
            headers: Vec::new(),
        }
    }

    /// The body parsed back (for tests and diagnostics).
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text (it is always UTF-8 JSON).
    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("null")
    }

    /// The answer as a direct HTTP response (forwarding mode).
    pub fn into_response(self) -> Response<Vec<u8>> {
        let mut res = json_response(self.status, self.body);
        if !self.headers.is_empty() {
            for (name, value) in self.headers {
                res.headers_mut().insert(name, value);
            }
        }
        res
    }
}

/// A JSON response with the headers every answer carries.
#[inline]
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}
