//! The inbound gate: header bytes in, a cached decision out, each rejection logged once.
//!
//! Owns: combining `client_cert` (pure rules) with the `cache` and the log line an
//! operator searches for, and holding the current CRL snapshot, which `crate::inbound::crl_store`
//! swaps in. Swapping clears the cache under the same lock every validation holds, so a
//! cached acceptance never outlives the CRL set it was checked against.
//! Must not: know about HTTP or the invocation format, or read CRL files.

pub mod cache;
pub mod client_cert;
pub mod crl_store;

use crate::inbound::cache::{Decision, ValidationCache};
use crate::inbound::client_cert::revocation::http_distribution_points;
use crate::inbound::client_cert::{
    header, CertError, CrlSet, Policy, Revocation, RevocationStatus, Thumbprint,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// At most this many distribution points are remembered for fetching.
const MAX_WANTED_DISTRIBUTION_POINTS: usize = 256;

/// The inbound policy with its cache and, when revocation is on, the current CRLs.
pub struct InboundGate {
    policy: Policy,
    cache: ValidationCache,
    revocation: Option<RevocationGate>,
}

/// The swappable CRL snapshot and what the fetcher should download next.
struct RevocationGate {
    current: RwLock<Arc<CrlSet>>,
    fail_open: bool,
    /// Remember the distribution points of certificates whose status was unknown.
    collect_wanted: bool,
    wanted: Mutex<BTreeSet<String>>,
    wanted_changed: tokio::sync::Notify,
}

impl InboundGate {
    pub fn new(policy: Policy, cache: ValidationCache) -> Self {
        Self {
            policy,
            cache,
            revocation: None,
        }
    }

    /// A gate that checks revocation against `crls` (replaced later with
    /// [`Self::replace_crls`]). `collect_wanted` remembers the CRL distribution points of
    /// certificates whose status was unknown, for [`Self::take_wanted_distribution_points`].
    pub fn with_revocation(
        policy: Policy,
        cache: ValidationCache,
        crls: CrlSet,
        fail_open: bool,
        collect_wanted: bool,
    ) -> Self {
        Self {
            policy,
            cache,
            revocation: Some(RevocationGate {
                current: RwLock::new(Arc::new(crls)),
                fail_open,
                collect_wanted,
                wanted: Mutex::new(BTreeSet::new()),
                wanted_changed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The current CRL set, when revocation checking is on.
    pub fn crls(&self) -> Option<Arc<CrlSet>> {
        self.revocation.as_ref().map(|r| {
            r.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Installs a new CRL set and forgets every cached decision, atomically with respect
    /// to [`Self::check`]. Does nothing when revocation checking is off.
    pub fn replace_crls(&self, crls: CrlSet) {
        if let Some(r) = &self.revocation {
            let mut current = r.current.write().unwrap_or_else(PoisonError::into_inner);
            *current = Arc::new(crls);
            self.cache.clear();
        }
    }

    /// The distribution points remembered since the last call (emptied).
    pub fn take_wanted_distribution_points(&self) -> Vec<String> {
        self.revocation.as_ref().map_or_else(Vec::new, |r| {
            let mut wanted = r.wanted.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *wanted).into_iter().collect()
        })
    }

    /// Completes when a new distribution point was remembered (never when revocation is
    /// off).
    pub async fn wanted_distribution_points_changed(&self) {
        match &self.revocation {
            Some(r) => r.wanted_changed.notified().await,
            None => std::future::pending().await,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn cache(&self) -> &ValidationCache {
        &self.cache
    }

    /// Decides on the `X-ARR-ClientCert` values of one request at `now` (Unix seconds).
    pub fn check<V: AsRef<[u8]>>(&self, values: &[V], now: i64) -> Decision {
        // The common case: this exact header value was accepted before. Rejections take
        // the full path so their log line can name the certificate.
        let single = match values {
            [one] => Some(one.as_ref()),
            _ => None,
        };
        if let Some((_, Ok(accepted))) = single.and_then(|h| self.cache.get_by_header(h, now)) {
            return Ok(accepted);
        }
        let der = match header::decode(values) {
            Ok(der) => der,
            Err(e) => {
                log_rejection(&e, None);
                return Err(e);
            }
        };
        let key = client_cert::sha256(&der);
        // Held across lookup, validation and insertion: `replace_crls` waits for it, so no
        // decision made with an old CRL set lands in the cache after the swap cleared it.
        let crls = self
            .revocation
            .as_ref()
            .map(|r| (r, r.current.read().unwrap_or_else(PoisonError::into_inner)));
        let decision = match self.cache.get(&key, now) {
            Some(hit) => {
                if let Some(h) = single {
                    self.cache.remember_header(key, h);
                }
                hit
            }
            None => {
                let fresh = match &crls {
                    None => client_cert::validate(&der, &self.policy, now),
                    Some((r, set)) => self.validate_revocation(r, set, &der, now),
                }
                .map(Arc::new);
                self.cache.insert(key, &fresh, single, now);
                fresh
            }
        };
        drop(crls);
        if let Err(e) = &decision {
            log_rejection(e, Some(&der));
        }
        decision
    }
}

impl InboundGate {
    fn validate_revocation(
        &self,
        r: &RevocationGate,
        set: &CrlSet,
        der: &[u8],
        now: i64,
    ) -> Result<client_cert::Accepted, CertError> {
        let revocation = Revocation {
            crls: set,
            fail_open: r.fail_open,
        };
        match client_cert::validate_with_revocation(der, &self.policy, Some(&revocation), now) {
            Ok((accepted, RevocationStatus::UnknownAccepted { reason })) => {
                tracing::warn!(
                    thumbprint = %Thumbprint::of_der(der).0,
                    reason = %reason,
                    setting = "CLIENT_CERT_REVOCATION_FAIL_OPEN",
                    "client certificate accepted although its revocation status is unknown"
                );
                r.remember_distribution_points(der);
                Ok(accepted)
            }
            Ok((accepted, _)) => Ok(accepted),
            Err(e) => {
                if matches!(e, CertError::RevocationUnknown { .. }) {
                    r.remember_distribution_points(der);
                }
                Err(e)
            }
        }
    }
}

impl RevocationGate {
    /// Only certificates whose chain verified reach here, so the URLs were put there by a
    /// trusted CA, not by the caller.
    fn remember_distribution_points(&self, der: &[u8]) {
        if !self.collect_wanted {
            return;
        }
        let mut added = false;
        {
            let mut wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner);
            for url in http_distribution_points(der) {
                if wanted.len() < MAX_WANTED_DISTRIBUTION_POINTS && wanted.insert(url) {
                    added = true;
                }
            }
        }
        if added {
            self.wanted_changed.notify_one();
        }
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

use crate::inbound::cache::ValidationCache as Cache;
use crate::inbound::client_cert::{AnchorOptions, WeakCa};
use crate::settings::{ConfigError, InboundConfig};

impl InboundGate {
    /// Builds the policy from the settings, reading `CLIENT_CERT_CA_PATH`, and logs what it
    /// means in words: the warnings an operator must not miss are emitted here, once.
    pub fn from_config(config: &InboundConfig) -> Result<Self, ConfigError> {
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
            allow_weak_keys: config.allow_weak_keys,
        };
        tracing::info!(
            common_names = ?policy.common_names,
            thumbprints = policy.thumbprints.len(),
            trusted_cas = policy.trust.as_ref().map_or(0, |t| t.len()),
            "inbound client-certificate policy loaded"
        );
        let cache = Cache::new(config.cache_size, config.cache_seconds);
        let Some(revocation) = &config.revocation else {
            return Ok(Self::new(policy, cache));
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
        Ok(Self::with_revocation(
            policy,
            cache,
            crls,
            revocation.fail_open,
            revocation.fetch,
        ))
    }
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
