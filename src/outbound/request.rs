//! Any call to a partner, for any function: method, URL, headers and body of the caller's
//! choosing, sent with the app's identity through [`Outbound::request`].
//!
//! Owns: the general request and response types and their limits. The identity, the
//! client, the deadline (`REMOTE_API_TIMEOUT_SECONDS`, including waiting for a first
//! load), the single retry of a refused connection and the error kinds are the same as
//! for [`Outbound::call`].
//! Must not: map errors to HTTP (that is `http_error`), follow redirects, or log bodies,
//! headers or URLs (they may carry secrets).

use super::{client, Active, Outbound, OutboundError};
use bytes::Bytes;
use client::FailureKind;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// The largest partner response body read into memory; a bigger one is an error.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A call to a partner: `PartnerRequest::new(Method::POST, url).json(&order)`.
#[derive(Debug, Clone)]
pub struct PartnerRequest {
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Result<Bytes, String>,
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

impl Outbound {
    /// `REMOTE_API_URL`, the partner this app is configured to call (if set).
    pub fn remote_api_url(&self) -> Option<&str> {
        self.inner.config.remote_api_url.as_deref()
    }

    /// Sends `request` presenting the app's identity and returns the partner's answer,
    /// any status. Bounded as a whole (identity, connect, TLS, request, response body) by
    /// `REMOTE_API_TIMEOUT_SECONDS`; a refused connection (nothing was sent) is retried
    /// once; redirects are returned, not followed.
    pub async fn request(&self, request: PartnerRequest) -> Result<PartnerResponse, OutboundError> {
        let body = request
            .body
            .map_err(|detail| OutboundError::Request { detail })?;
        let deadline = Instant::now() + self.inner.config.timeout;
        let active = self.identity(deadline).await?;
        let seconds = self.inner.config.timeout.as_secs();
        let mut retried = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(OutboundError::Timeout { seconds });
            }
            let sent = active
                .client
                .request(request.method.clone(), &request.url)
                .headers(request.headers.clone())
                .body(body.clone())
                .timeout(remaining)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    return read_response(response, &active, &request.method, deadline, seconds)
                        .await
                }
                Err(e) => {
                    let kind = client::classify(&e);
                    let e = e.without_url();
                    let detail = client::chain_text(&e);
                    if kind == FailureKind::Unreachable
                        && !retried
                        && remaining > Duration::from_secs(1)
                    {
                        tracing::info!(method = %request.method, error = %detail, "partner unreachable; retrying once");
                        retried = true;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    tracing::warn!(method = %request.method, kind = ?kind, error = %detail, "partner call failed");
                    return Err(match kind {
                        FailureKind::Timeout => OutboundError::Timeout { seconds },
                        FailureKind::Tls => OutboundError::Tls { detail },
                        FailureKind::Unreachable => OutboundError::Unreachable { detail },
                        FailureKind::Other => OutboundError::Request { detail },
                    });
                }
            }
        }
    }
}

/// Reads the whole body (at most [`MAX_RESPONSE_BYTES`]) before `deadline`.
async fn read_response(
    mut response: reqwest::Response,
    active: &Active,
    method: &Method,
    deadline: Instant,
    seconds: u64,
) -> Result<PartnerResponse, OutboundError> {
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return Err(OutboundError::Timeout { seconds }),
            Ok(Err(e)) => {
                return Err(OutboundError::Request {
                    detail: client::chain_text(&e.without_url()),
                })
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(OutboundError::Request {
                        detail: format!(
                            "the partner's response is over {MAX_RESPONSE_BYTES} bytes"
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    tracing::info!(
        method = %method,
        status,
        thumbprint = %active.identity.thumbprint(),
        source = active.identity.source.as_str(),
        "partner call answered"
    );
    Ok(PartnerResponse {
        status,
        headers,
        body: Bytes::from(body),
        certificate_thumbprint: active.identity.thumbprint().to_owned(),
    })
}
