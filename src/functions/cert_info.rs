//! `GET /api/cert-info`: what the inbound gate found in the caller's certificate.
//!
//! The body of an acceptance is rendered once and kept with the cached decision, so a
//! cached caller costs a copy, not a serialization (see BENCHMARKS.md).

use crate::clock::rfc3339;
use crate::host::answer::Answer;
use crate::host::function::AppState;
use crate::host::function::{Function, Method, Outcome, Request};
use crate::inbound::client_cert::{Accepted, MatchedBy};
use serde::Serialize;
use std::sync::Arc;

pub fn function() -> Function {
    Function::new("cert-info", &[Method::Get], cert_info)
}

async fn cert_info(req: Request, _app: Arc<AppState>) -> Outcome {
    let accepted = req.caller()?.accepted();
    Ok(Answer::ok_json(
        accepted
            .rendering
            .get_or_init(|| serde_json::to_vec(&CertInfo::of(accepted)).unwrap_or_default())
            .to_vec(),
    ))
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
