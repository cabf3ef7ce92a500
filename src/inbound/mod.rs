//! The inbound decision: who the caller is, from the certificate a front end forwarded.
//!
//! Owns: building the gate from the settings at start-up (reading `CLIENT_CERT_CA_PATH`
//! and the first CRLs, and logging what the policy means). Below it: [`gate`] (header bytes
//! in, a cached decision out), [`cache`], [`crl_store`] (CRL files and downloads, swapped
//! into the gate in the background), [`partner_source`] (the partners document, loaded at
//! start-up and reloaded in the background) with [`partners_state`] (the document in force,
//! the shadow and what health reports), [`config`] (the inbound settings) and
//! [`client_cert`] (the pure rules: no I/O, no clock).
//! Must not: know about HTTP or the host's protocols (that is `host`).

pub mod cache;
pub mod client_cert;
pub mod config;
pub mod crl_store;
pub mod gate;
pub mod partner_source;
pub mod partners_state;

pub use gate::InboundGate;

use crate::inbound::cache::ValidationCache as Cache;
use crate::inbound::client_cert::{AnchorOptions, CrlSet, Policy, Thumbprint, WeakCa};

use crate::inbound::config::InboundConfig;
use crate::settings::ConfigError;

impl InboundGate {
    /// Builds the gate from the settings: the flat policy, then the partners document when
    /// one is configured ([`partner_source::attach`]).
    pub fn from_config(config: &InboundConfig) -> Result<Self, ConfigError> {
        Self::from_config_with_intermediates(config, None)
    }

    /// [`Self::from_config`], with the intermediates in `extra` (a file or directory, as
    /// `handler inspect --intermediates` names) added to `CLIENT_CERT_INTERMEDIATES_PATH`.
    pub fn from_config_with_intermediates(
        config: &InboundConfig,
        extra: Option<&std::path::Path>,
    ) -> Result<Self, ConfigError> {
        let gate = Self::flat_from_config(config, extra)?;
        partner_source::attach(gate, config.partners.as_ref(), crate::clock::system_clock())
    }

    /// As [`Self::from_config`], reading a partners document kept in a secret with
    /// `secrets` ([`partner_source::attach_with_secrets`]).
    pub async fn from_config_with_secrets(
        config: &InboundConfig,
        secrets: Option<&dyn partner_source::SecretText>,
    ) -> Result<Self, ConfigError> {
        let gate = Self::flat_from_config(config, None)?;
        partner_source::attach_with_secrets(
            gate,
            config.partners.as_ref(),
            crate::clock::system_clock(),
            secrets,
        )
        .await
    }

    /// Builds the policy from the settings, reading `CLIENT_CERT_CA_PATH`, and logs what it
    /// means in words: the warnings an operator must not miss are emitted here, once.
    fn flat_from_config(
        config: &InboundConfig,
        extra: Option<&std::path::Path>,
    ) -> Result<Self, ConfigError> {
        if config.allow_weak_keys {
            tracing::warn!(
                setting = "CLIENT_CERT_ALLOW_WEAK_KEYS",
                "INSECURE: client certificates and CAs with RSA keys under 2048 bits, curves \
                 other than P-256/P-384/P-521, DSA keys or MD5/SHA-1 signatures are accepted; \
                 such keys can be broken and such signatures forged. For legacy partners only"
            );
        }
        let trust = match &config.ca_path {
            None => None,
            Some(path) => Some(load_trust(path, config.allow_weak_keys, WeakCa::Refuse)?),
        };
        let trust = match (trust, load_intermediates(config, extra)?) {
            (Some(trust), intermediates) if !intermediates.is_empty() => {
                let (trust, reports) =
                    trust.with_intermediates(&intermediates, config.allow_weak_keys);
                for r in reports {
                    tracing::warn!(
                        setting = "CLIENT_CERT_INTERMEDIATES_PATH",
                        subject = %r.subject,
                        reason = %r.reason,
                        "skipping an intermediate that can be on no path"
                    );
                }
                tracing::info!(
                    intermediates = trust.intermediates().len(),
                    "untrusted intermediates loaded (they complete paths, they are not trusted)"
                );
                Some(trust)
            }
            (None, intermediates) if !intermediates.is_empty() => {
                return Err(ConfigError::invalid(
                    "CLIENT_CERT_CA_PATH",
                    "intermediates complete a path to a trust anchor: set CLIENT_CERT_CA_PATH",
                ))
            }
            (trust, _) => trust,
        };
        if config.allow_unverified_common_names {
            tracing::warn!(
                setting = "ALLOW_UNVERIFIED_COMMON_NAMES",
                "INSECURE: a client certificate whose common name is allowlisted is accepted \
                 without a trusted chain; anyone can make such a certificate"
            );
        } else if trust.is_none() && !config.common_names.is_empty() && config.partners.is_none() {
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
            allow_weak_keys: config.allow_weak_keys,
        };
        tracing::info!(
            header_format = %config.header.format,
            header = %config.header.name,
            chain_header = config.header.chain_name.as_deref().unwrap_or("-"),
            common_names = ?policy.common_names,
            thumbprints = policy.thumbprints.len(),
            trusted_cas = policy.trust.as_ref().map_or(0, |t| t.len()),
            "inbound client-certificate policy loaded"
        );
        let cache = Cache::new(config.cache_size, config.cache_seconds);
        let format = config.header.format;
        let Some(revocation) = &config.revocation else {
            return Ok(Self::new(policy, cache).with_format(format));
        };
        let Some(trust) = &policy.trust else {
            return Err(ConfigError::invalid(
                "CLIENT_CERT_CRL_PATH",
                "revocation checking needs CLIENT_CERT_CA_PATH",
            ));
        };
        let crls = match &revocation.crl_path {
            None => CrlSet::default(),
            Some(path) => crl_store::read_crl_path(path, trust)
                .map_err(|e| e.into_config_error(path))?
                .into_set(),
        };
        if revocation.fail_open {
            tracing::warn!(
                setting = "CLIENT_CERT_REVOCATION_FAIL_OPEN",
                "revocation is fail-open: a certificate whose CRL is missing or stale is accepted"
            );
        }
        tracing::info!(
            crls = crls.len(),
            fetch = revocation.fetch,
            fail_open = revocation.fail_open,
            check_seconds = revocation.check_seconds,
            "revocation checking on"
        );
        Ok(
            Self::with_revocation(policy, cache, crls, revocation.fail_open, revocation.fetch)
                .with_format(format),
        )
    }
}

/// The certificates of `CLIENT_CERT_INTERMEDIATES_PATH` and of `extra`.
fn load_intermediates(
    config: &InboundConfig,
    extra: Option<&std::path::Path>,
) -> Result<Vec<openssl::x509::X509>, ConfigError> {
    const SETTING: &str = "CLIENT_CERT_INTERMEDIATES_PATH";
    let mut certs = Vec::new();
    for path in config
        .intermediates_path
        .iter()
        .map(|p| p.as_path())
        .chain(extra)
    {
        certs.extend(crate::pki_files::read_certificates(path).map_err(|e| {
            ConfigError::Unreadable {
                setting: SETTING,
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?);
    }
    Ok(certs)
}

/// Reads the CA path. Certificates that are not CAs (App Service's `/var/ssl/certs` holds
/// every uploaded public certificate) are skipped with a warning, not trusted. A CA below
/// the key policy fails with [`WeakCa::Refuse`] (start-up: the error names the setting and
/// the certificate) and is skipped with an error logged with [`WeakCa::Skip`] (a CA set
/// re-read while running). A CA that breaks the profile is logged as an error once: it
/// vouches for nothing, and leaves it issued are refused with its defect as the reason.
pub fn load_trust(
    path: &std::path::Path,
    allow_weak_keys: bool,
    weak_ca: WeakCa,
) -> Result<client_cert::TrustAnchors, ConfigError> {
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
    let options = AnchorOptions {
        allow_weak_keys,
        weak_ca,
    };
    let (anchors, weak) = client_cert::TrustAnchors::build(cas, options)
        .map_err(|e| ConfigError::invalid(SETTING, e.to_string()))?;
    for ca in &weak {
        if ca.kept {
            tracing::warn!(
                setting = "CLIENT_CERT_ALLOW_WEAK_KEYS",
                subject = ?ca.subject,
                sha256 = %ca.sha256,
                reason = %ca.reason,
                "trusting a CA below the key policy because weak keys are allowed"
            );
        } else {
            tracing::error!(
                setting = SETTING,
                subject = ?ca.subject,
                sha256 = %ca.sha256,
                reason = %ca.reason,
                "skipping a CA below the key policy (CLIENT_CERT_ALLOW_WEAK_KEYS=true accepts it)"
            );
        }
    }
    for (subject, defect) in anchors.defects() {
        tracing::error!(
            setting = SETTING,
            subject = ?subject,
            reason = %defect,
            "this CA breaks the X.509 profile and vouches for no client certificate"
        );
    }
    Ok(anchors)
}

fn is_ca(cert: &openssl::x509::X509) -> bool {
    cert.to_der()
        .ok()
        .is_some_and(|der| client_cert::describe(&der).is_ok_and(|info| info.is_ca))
}
