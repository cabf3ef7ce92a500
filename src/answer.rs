//! An invocation's answer, independent of how the host asked (forwarded HTTP or JSON).
//!
//! Owns: the status + JSON body pair and its two renderings.
//! Must not: decide status codes (see `http_error` and `app`).

use serde_json::Value;
use warp::http::{header, HeaderValue, Response, StatusCode};

/// Status and JSON body of one function invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }

    pub fn ok(body: Value) -> Self {
        Self::new(StatusCode::OK, body)
    }

    /// The answer as a direct HTTP response (forwarding mode).
    pub fn into_response(self) -> Response<Vec<u8>> {
        json_response(
            self.status,
            serde_json::to_vec(&self.body).unwrap_or_default(),
        )
    }
}

/// A JSON response with the headers every answer carries.
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
