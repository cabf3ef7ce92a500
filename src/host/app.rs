//! What each function answers, whichever way the host invoked it.
//!
//! Owns: the application state and the mapping from (function, certificate header) to an
//! [`Answer`]. Both host protocols (forwarded HTTP and JSON invocations) end here, so the
//! same policy gives the same answers in both.
//! Must not: parse HTTP or invocation payloads (see `routes` and `invocation`).

use crate::clock::rfc3339;
use crate::host::answer::Answer;
use crate::host::http_error::ApiError;
use crate::host::invocation::Function;
use crate::inbound::client_cert::{Accepted, MatchedBy};
use crate::inbound::config::HeaderConfig;
use crate::inbound::InboundGate;
use crate::outbound::Outbound;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use warp::http::HeaderName;

/// The configured certificate header (`CLIENT_CERT_HEADER`, `X-ARR-ClientCert` by
/// default) and chain header (`CLIENT_CERT_CHAIN_HEADER`, `rfc9440` only): the only
/// headers the certificate is read from.
#[derive(Debug, Clone)]
pub struct CertHeaderNames {
    pub cert: HeaderName,
    pub chain: Option<HeaderName>,
}

impl CertHeaderNames {
    /// From the checked settings (a name the settings accepted is a valid header name).
    pub fn from_config(config: &HeaderConfig) -> Self {
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes())
                .unwrap_or(HeaderName::from_static("x-arr-clientcert"))
        };
        Self {
            cert: name(&config.name),
            chain: config.chain_name.as_deref().map(name),
        }
    }
}

impl Default for CertHeaderNames {
    fn default() -> Self {
        Self::from_config(&HeaderConfig::default())
    }
}

/// Shared state of the running handler.
pub struct AppState {
    pub gate: Arc<InboundGate>,
    /// The headers the certificate (and chain) are read from.
    pub cert_headers: CertHeaderNames,
    pub outbound: Arc<Outbound>,
    /// The clock, Unix seconds; tests pass a fixed one.
    pub clock: fn() -> i64,
}

impl AppState {
    /// Runs `function` for a request whose certificate header values are `cert_headers` and
    /// chain header values (`rfc9440`) are `chain_headers`.
    pub async fn invoke<V: AsRef<[u8]>>(
        &self,
        function: Function,
        cert_headers: &[V],
        chain_headers: &[V],
    ) -> Answer {
        let check = || {
            self.gate
                .check_forwarded(cert_headers, chain_headers, (self.clock)())
        };
        match function {
            Function::Health => self.health(),
            Function::CertInfo => match check() {
                Ok(accepted) => Answer::ok_json(
                    accepted
                        .rendering
                        .get_or_init(|| {
                            serde_json::to_vec(&CertInfo::of(&accepted)).unwrap_or_default()
                        })
                        .to_vec(),
                ),
                Err(e) => ApiError::Cert(e).to_answer(),
            },
            Function::OutboundMtls => match check() {
                Ok(_) => match self.outbound.call().await {
                    Ok(success) => Answer::ok(&success),
                    Err(e) => ApiError::Outbound(e).to_answer(),
                },
                Err(e) => ApiError::Cert(e).to_answer(),
            },
        }
    }

    fn health(&self) -> Answer {
        Answer::ok(&json!({
            "status": "ok",
            "outboundCertificate": self.outbound.status(),
        }))
    }
}

/// The `/api/cert-info` body: the seed's `thumbprint` and `commonName`, and more.
/// Serialized straight from the cached decision (no intermediate JSON tree).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertInfo<'a> {
    thumbprint: &'a str,
    common_name: Option<&'a str>,
    thumbprint_sha256: &'a str,
    subject: &'a str,
    issuer: &'a str,
    serial_number: &'a str,
    not_before: String,
    not_after: String,
    dns_names: &'a [String],
    matched_by: MatchedBy,
}

impl<'a> CertInfo<'a> {
    fn of(accepted: &'a Accepted) -> Self {
        let info = &accepted.info;
        Self {
            thumbprint: &info.thumbprint_sha1,
            common_name: info.common_name(),
            thumbprint_sha256: &info.thumbprint_sha256,
            subject: &info.subject,
            issuer: &info.issuer,
            serial_number: &info.serial_number,
            not_before: rfc3339(info.not_before),
            not_after: rfc3339(info.not_after),
            dns_names: &info.dns_names,
            matched_by: accepted.matched_by,
        }
    }
}
