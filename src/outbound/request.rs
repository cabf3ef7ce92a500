//! Any call to a partner, for any function: method, URL, headers and body of the caller's
//! choosing, sent with the app's identity through [`super::Outbound::request`].
//!
//! Owns: the general request and response types and their limits. The identity, the
//! client, the deadline (`REMOTE_API_TIMEOUT_SECONDS`, including waiting for a first
//! load), the single retry of a refused connection and the error kinds are the same as
//! for [`super::Outbound::call`].
//! Must not: map errors to HTTP (that is `http_error`), follow redirects, or log bodies,
//! headers or URLs (they may carry secrets).

use super::error::OutboundError;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The largest partner response body read into memory; a bigger one is an error.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A call to a partner: `PartnerRequest::new(Method::POST, url).json(&order)`.
#[derive(Debug, Clone)]
pub struct PartnerRequest {
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Result<Bytes, String>,
}

impl PartnerRequest {
    /// `method` on `url` (absolute, `https://`).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: Ok(Bytes::new()),
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }

    /// Adds a header (a second value for a name already set is added, not replaced).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The body as bytes, with its content type.
    #[must_use]
    pub fn body(mut self, content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        self.headers.insert(CONTENT_TYPE, content_type);
        self.body = Ok(body.into());
        self
    }

    /// `value` serialized as the JSON body (`Content-Type: application/json`). A value
    /// that cannot be serialized fails the call (`remote_request_failed`) without sending.
    #[must_use]
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.body = serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| format!("the request body cannot be serialized: {e}"));
        self
    }
}

/// What the partner answered, whatever the status.
#[derive(Debug, Clone)]
pub struct PartnerResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// SHA-1 thumbprint of the certificate the app presented.
    pub certificate_thumbprint: String,
}

impl PartnerResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself when 2xx, else `remote_error_status` (502 with the partner's
    /// status).
    pub fn success(self) -> Result<Self, OutboundError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(OutboundError::RemoteStatus {
                status: self.status,
            })
        }
    }

    /// The body parsed as JSON; a body that is not is `remote_request_failed`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, OutboundError> {
        serde_json::from_slice(&self.body).map_err(|e| OutboundError::Request {
            detail: format!("the partner's response is not the JSON expected: {e}"),
        })
    }
}
