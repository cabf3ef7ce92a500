//! Why an outbound call did not succeed.
//!
//! Owns: [`OutboundError`], whose `Display` is what clients see.
//! Must not: map itself to HTTP (that is `host::http_error`).

/// Why the partner call did not succeed. `Display` is what clients see: no secrets, no
/// internal addresses; `detail` fields are for logs only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    #[error("REMOTE_API_URL is not set: there is no partner API to call")]
    NotConfigured,
    /// What was tried and why each source failed.
    #[error("{message}")]
    NoIdentity { message: String },
    #[error("the outbound client certificate is still loading (waited {seconds}s)")]
    IdentityLoading { seconds: u64 },
    #[error("the partner API answered HTTP {status}")]
    RemoteStatus { status: u16 },
    #[error("the partner API could not be reached")]
    Unreachable { detail: String },
    #[error("the TLS handshake with the partner API failed")]
    Tls { detail: String },
    #[error("the partner API did not answer within {seconds}s")]
    Timeout { seconds: u64 },
    #[error("the call to the partner API failed")]
    Request { detail: String },
}

impl OutboundError {
    /// The partner's status code, for "the partner answered non-2xx".
    pub fn remote_status(&self) -> Option<u16> {
        match self {
            Self::RemoteStatus { status } => Some(*status),
            _ => None,
        }
    }
}
