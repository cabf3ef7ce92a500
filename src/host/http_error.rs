//! The one place where domain errors become HTTP answers.
//!
//! Owns: status codes, stable error codes and the safe messages clients see. Full detail
//! goes to the log (see `inbound`), never to the client.
//! Must not: decide anything about certificates or partners.

use crate::host::answer::Answer;
use crate::inbound::client_cert::CertError;
use crate::outbound::OutboundError;
use serde_json::json;
use warp::http::StatusCode;

/// The seed's messages, kept verbatim for compatibility.
pub const MSG_MISSING: &str = "client certificate header missing";
pub const MSG_NOT_ALLOWLISTED: &str = "client certificate is not allowlisted";

/// Everything that can turn an invocation into an error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// The caller is a known partner, not allowed this function.
    #[error("partner {partner:?} may not call {function}")]
    FunctionNotAllowed {
        partner: String,
        function: &'static str,
    },
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("invalid invocation payload: {0}")]
    InvalidInvocation(String),
    /// The request body could not be read or is not what the function expects.
    #[error("invalid request body: {reason}")]
    InvalidBody { reason: String },
    /// A function's own refusal (`ApiError::function(422, "invalid_order", "...")`).
    #[error("{code}: {message}")]
    Function {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

impl ApiError {
    /// A function's own error: `status` (4xx or 5xx; anything else becomes 500), a stable
    /// snake_case `code` and a `message` the caller may see.
    pub fn function(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let status = if status.is_client_error() || status.is_server_error() {
            status
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::Function {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Cert(_) | Self::FunctionNotAllowed { .. } => StatusCode::FORBIDDEN,
            Self::Outbound(e) => outbound_status(e),
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidInvocation(_) | Self::InvalidBody { .. } => StatusCode::BAD_REQUEST,
            Self::Function { status, .. } => *status,
        }
    }

    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Cert(e) => e.code(),
            Self::Outbound(e) => outbound_code(e),
            Self::FunctionNotAllowed { .. } => "function_not_allowed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidInvocation(_) => "invalid_invocation",
            Self::InvalidBody { .. } => "invalid_body",
            Self::Function { code, .. } => code,
        }
    }

    /// The message clients see: short, stable, no internal detail.
    pub fn message(&self) -> String {
        match self {
            Self::Cert(e) => cert_message(e).to_owned(),
            Self::Outbound(e) => e.to_string(),
            Self::FunctionNotAllowed { .. } => {
                "the client certificate's partner may not call this function".to_owned()
            }
            Self::NotFound => "no such function".to_owned(),
            Self::MethodNotAllowed => "method not allowed".to_owned(),
            Self::PayloadTooLarge => "request body too large".to_owned(),
            Self::InvalidInvocation(_) => "invalid invocation payload".to_owned(),
            // Serde's "expected ... at line 1 column 9": about the caller's own bytes.
            Self::InvalidBody { reason } => format!("invalid request body: {reason}"),
            Self::Function { message, .. } => message.clone(),
        }
    }

    pub fn to_answer(&self) -> Answer {
        let mut body = json!({ "error": self.message(), "code": self.code() });
        // "The partner answered non-2xx" also says what it answered.
        if let Self::Outbound(e) = self {
            if let Some(status) = e.remote_status() {
                body["statusCode"] = json!(status);
            }
        }
        Answer::new(self.status(), body)
    }
}

fn cert_message(e: &CertError) -> &'static str {
    match e {
        CertError::Missing => MSG_MISSING,
        CertError::NotAllowlisted => MSG_NOT_ALLOWLISTED,
        CertError::Malformed(_) => "client certificate header is malformed",
        CertError::NotYetValid { .. } => "client certificate is not yet valid",
        CertError::Expired { .. } => "client certificate has expired",
        CertError::NotForClientAuth { .. } => {
            "client certificate is not valid for client authentication"
        }
        CertError::CaCertificate => "a CA certificate cannot be a client certificate",
        CertError::WeakKey { .. } => "client certificate key or signature algorithm is too weak",
        CertError::UntrustedChain { .. } => "client certificate does not chain to a trusted CA",
        CertError::Revoked { .. } => "client certificate has been revoked",
        CertError::RevocationUnknown { .. } => {
            "client certificate revocation status could not be checked"
        }
        CertError::WrongIssuer { .. } => {
            "client certificate was not issued by the partner's certificate authority"
        }
        CertError::AmbiguousPartner { .. } => "client certificate matches more than one partner",
        // `CertError` is non_exhaustive for other crates only; keep a safe default.
        #[allow(unreachable_patterns)]
        _ => "client certificate was rejected",
    }
}

/// No partner or no identity: 503 (we cannot call yet). The partner failed or answered
/// non-2xx: 502 (a bad gateway, with a code that says how).
fn outbound_status(e: &OutboundError) -> StatusCode {
    match e {
        OutboundError::NotConfigured
        | OutboundError::NoIdentity { .. }
        | OutboundError::IdentityLoading { .. } => StatusCode::SERVICE_UNAVAILABLE,
        OutboundError::RemoteStatus { .. }
        | OutboundError::Unreachable { .. }
        | OutboundError::Tls { .. }
        | OutboundError::Timeout { .. }
        | OutboundError::Request { .. } => StatusCode::BAD_GATEWAY,
        // `OutboundError` is non_exhaustive for other crates only; keep a safe default.
        #[allow(unreachable_patterns)]
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn outbound_code(e: &OutboundError) -> &'static str {
    match e {
        OutboundError::NotConfigured => "outbound_not_configured",
        OutboundError::NoIdentity { .. } => "outbound_identity_unavailable",
        OutboundError::IdentityLoading { .. } => "outbound_identity_loading",
        OutboundError::RemoteStatus { .. } => "remote_error_status",
        OutboundError::Unreachable { .. } => "remote_unreachable",
        OutboundError::Tls { .. } => "remote_tls_failed",
        OutboundError::Timeout { .. } => "remote_timeout",
        OutboundError::Request { .. } => "remote_request_failed",
        #[allow(unreachable_patterns)]
        _ => "outbound_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_messages_are_kept_verbatim() {
        let a = ApiError::Cert(CertError::Missing).to_answer();
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(a.body_json()["error"], "client certificate header missing");
        let a = ApiError::Cert(CertError::NotAllowlisted).to_answer();
        assert_eq!(
            a.body_json()["error"],
            "client certificate is not allowlisted"
        );
        assert_eq!(a.body_json()["code"], "not_allowlisted");
    }

    #[test]
    fn every_certificate_rejection_is_a_403() {
        let e = CertError::UntrustedChain {
            common_name: "x".into(),
            reason: "secret detail".into(),
        };
        let a = ApiError::Cert(e).to_answer();
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert!(!a.body_text().contains("secret detail"));
    }
}
