//! Outbound mTLS: calling the partner API at `REMOTE_API_URL` with the app's own
//! certificate.
//!
//! (Stub: issue "Outbound mTLS" fills this in. Until then every call answers 503.)

use crate::config::{ConfigError, EnvSource};
use serde::Serialize;
use std::sync::Arc;

/// Outbound settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboundConfig {
    /// `REMOTE_API_URL`
    pub remote_api_url: Option<String>,
}

impl OutboundConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            remote_api_url: env.get("REMOTE_API_URL"),
        })
    }
}

/// A successful partner call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundSuccess {
    pub status_code: u16,
    pub certificate_thumbprint: String,
    pub source: &'static str,
}

/// Why the partner call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    #[error("outbound mTLS is not implemented yet")]
    NotImplemented,
}

/// What `/api/health` reports about the outbound certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundStatus {
    pub state: &'static str,
}

/// The outbound client and the identity it presents.
#[derive(Debug)]
pub struct Outbound {
    _config: OutboundConfig,
}

impl Outbound {
    /// Starts loading the identity in the background. Never blocks and never fails.
    pub fn start(config: OutboundConfig) -> Arc<Self> {
        Arc::new(Self { _config: config })
    }

    pub async fn call(&self) -> Result<OutboundSuccess, OutboundError> {
        Err(OutboundError::NotImplemented)
    }

    pub fn status(&self) -> OutboundStatus {
        OutboundStatus {
            state: "unavailable",
        }
    }
}
