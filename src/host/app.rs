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
use crate::inbound::InboundGate;
use crate::outbound::Outbound;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use tracing::Instrument as _;

/// Shared state of the running handler.
pub struct AppState {
    pub gate: Arc<InboundGate>,
    pub outbound: Arc<Outbound>,
    /// The clock, Unix seconds; tests pass a fixed one.
    pub clock: fn() -> i64,
}

impl AppState {
    /// Runs `function` for a request whose `X-ARR-ClientCert` values are `cert_headers`.
    pub async fn invoke<V: AsRef<[u8]>>(&self, function: Function, cert_headers: &[V]) -> Answer {
        match function {
            Function::Health => self.health(),
            Function::CertInfo => match self.authorize(function, cert_headers) {
                Ok(accepted) => Answer::ok_json(
                    accepted
                        .rendering
                        .get_or_init(|| {
                            serde_json::to_vec(&CertInfo::of(&accepted)).unwrap_or_default()
                        })
                        .to_vec(),
                ),
                Err(refused) => refused,
            },
            Function::OutboundMtls => match self.authorize(function, cert_headers) {
                Ok(accepted) => {
                    // Every log line of the call carries the partner.
                    let span = tracing::info_span!(
                        "invocation",
                        function = function.name(),
                        partner = %accepted.partner.name
                    );
                    match self.outbound.call().instrument(span).await {
                        Ok(success) => Answer::ok(&success),
                        Err(e) => ApiError::Outbound(e).to_answer(),
                    }
                }
                Err(refused) => refused,
            },
        }
    }

    /// The caller's certificate decision for `function`: the gate's, then whether its
    /// partner may call `function`. A shadow partners document is consulted on the way
    /// (it never changes the answer).
    fn authorize<V: AsRef<[u8]>>(
        &self,
        function: Function,
        cert_headers: &[V],
    ) -> Result<Arc<Accepted>, Answer> {
        let now = (self.clock)();
        let decision = self.gate.check(cert_headers, now);
        self.gate
            .shadow_compare(cert_headers, function.name(), &decision, now);
        let accepted = decision.map_err(|e| ApiError::Cert(e).to_answer())?;
        if !accepted.partner.allows(function.name()) {
            tracing::warn!(
                code = "function_not_allowed",
                partner = %accepted.partner.name,
                function = function.name(),
                thumbprint = %accepted.info.thumbprint_sha1,
                "partner called a function it is not allowed"
            );
            return Err(ApiError::FunctionNotAllowed {
                partner: accepted.partner.name.clone(),
                function: function.name(),
            }
            .to_answer());
        }
        Ok(accepted)
    }

    fn health(&self) -> Answer {
        let partners = self.gate.partners().map(|p| p.status((self.clock)()));
        Answer::ok(&json!({
            "status": "ok",
            "outboundCertificate": self.outbound.status(),
            "partners": partners,
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
    /// The partner's name (`app-settings` for the flat settings).
    partner: &'a str,
    /// The functions it may call (`["*"]`: all).
    functions: Vec<String>,
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
            partner: &accepted.partner.name,
            functions: accepted.partner.functions.names(),
        }
    }
}
