//! The inbound gate: header bytes in, a cached decision out, each rejection logged once.
//!
//! Owns: combining `client_cert` (pure rules) with the `cache` and the log line an
//! operator searches for. Must not: know about HTTP or the invocation format.

use crate::cache::{Decision, ValidationCache};
use crate::client_cert::{self, header, CertError, Policy, Thumbprint};

/// The inbound policy with its cache.
pub struct InboundGate {
    policy: Policy,
    cache: ValidationCache,
}

impl InboundGate {
    pub fn new(policy: Policy, cache: ValidationCache) -> Self {
        Self { policy, cache }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn cache(&self) -> &ValidationCache {
        &self.cache
    }

    /// Decides on the `X-ARR-ClientCert` values of one request at `now` (Unix seconds).
    pub fn check<V: AsRef<[u8]>>(&self, values: &[V], now: i64) -> Decision {
        let der = match header::decode(values) {
            Ok(der) => der,
            Err(e) => {
                log_rejection(&e, None);
                return Err(e);
            }
        };
        let key = openssl::sha::sha256(&der);
        let decision = match self.cache.get(&key, now) {
            Some(hit) => hit,
            None => {
                let fresh = client_cert::validate(&der, &self.policy, now).map(std::sync::Arc::new);
                self.cache.insert(key, &fresh, now);
                fresh
            }
        };
        if let Err(e) = &decision {
            log_rejection(e, Some(&der));
        }
        decision
    }
}

fn log_rejection(error: &CertError, der: Option<&[u8]>) {
    let thumbprint = der.map(|d| Thumbprint::of_der(d).0.to_string());
    tracing::warn!(
        code = error.code(),
        thumbprint = thumbprint.as_deref().unwrap_or("-"),
        reason = %error,
        "client certificate rejected"
    );
}

// === start-up ===

use crate::cache::ValidationCache as Cache;
use crate::config::{ConfigError, InboundConfig};

impl InboundGate {
    /// Builds the policy from the settings, reading `CLIENT_CERT_CA_PATH`, and logs what it
    /// means in words: the warnings an operator must not miss are emitted here, once.
    pub fn from_config(config: &InboundConfig) -> Result<Self, ConfigError> {
        let trust = match &config.ca_path {
            None => None,
            Some(path) => Some(load_trust(path)?),
        };
        if config.allow_unverified_common_names {
            tracing::warn!(
                setting = "ALLOW_UNVERIFIED_COMMON_NAMES",
                "INSECURE: a client certificate whose common name is allowlisted is accepted \
                 without a trusted chain; anyone can make such a certificate"
            );
        } else if trust.is_none() && !config.common_names.is_empty() {
            tracing::warn!(
                setting = "CLIENT_CERT_CA_PATH",
                "no trusted CAs: certificates that match ALLOWED_CLIENT_CERT_COMMON_NAMES are \
                 rejected until CLIENT_CERT_CA_PATH is set (pinned thumbprints still work)"
            );
        }
        let sha1_pins = config
            .thumbprints
            .iter()
            .filter(|t| matches!(t, Thumbprint::Sha1(_)))
            .count();
        if sha1_pins > 0 {
            tracing::info!(
                sha1_pins,
                "SHA-1 thumbprints are accepted for compatibility; prefer SHA-256 pins"
            );
        }
        let policy = Policy {
            thumbprints: config.thumbprints.iter().copied().collect(),
            common_names: config.common_names.clone(),
            trust,
            allow_unverified_common_names: config.allow_unverified_common_names,
        };
        tracing::info!(
            common_names = ?policy.common_names,
            thumbprints = policy.thumbprints.len(),
            trusted_cas = policy.trust.as_ref().map_or(0, |t| t.len()),
            "inbound client-certificate policy loaded"
        );
        Ok(Self::new(
            policy,
            Cache::new(config.cache_size, config.cache_seconds),
        ))
    }
}

/// Reads the CA path. Certificates that are not CAs (App Service's `/var/ssl/certs` holds
/// every uploaded public certificate) are skipped with a warning, not trusted.
fn load_trust(path: &std::path::Path) -> Result<client_cert::TrustAnchors, ConfigError> {
    const SETTING: &str = "CLIENT_CERT_CA_PATH";
    let certs = crate::pki_files::read_certificates(path).map_err(|e| ConfigError::Unreadable {
        setting: SETTING,
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let (cas, others): (Vec<_>, Vec<_>) = certs.into_iter().partition(is_ca);
    for other in &others {
        tracing::warn!(
            setting = SETTING,
            subject = ?other.subject_name(),
            "skipping a certificate that is not a CA"
        );
    }
    if cas.is_empty() {
        return Err(ConfigError::invalid(
            SETTING,
            format!("{} holds no CA certificates", path.display()),
        ));
    }
    client_cert::TrustAnchors::new(cas).map_err(|e| ConfigError::invalid(SETTING, e.to_string()))
}

fn is_ca(cert: &openssl::x509::X509) -> bool {
    cert.to_der()
        .ok()
        .is_some_and(|der| client_cert::describe(&der).is_ok_and(|info| info.is_ca))
}
