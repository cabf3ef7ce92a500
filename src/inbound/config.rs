//! Inbound settings: the client-certificate policy, its cache and revocation checking.
//!
//! Owns: the names, defaults and syntax of the `ALLOWED_CLIENT_CERT_*`, `CLIENT_CERT_*` and
//! `ALLOW_UNVERIFIED_COMMON_NAMES` settings.
//! Must not: read the files the settings name (the gate and the CRL store do, at start-up).

use crate::inbound::client_cert::{Thumbprint, ThumbprintError};
use crate::settings::{at_least_one, list, parse_bool, parse_number, ConfigError, EnvSource};
use std::path::PathBuf;

/// The seed's default allowlisted common name.
pub const DEFAULT_COMMON_NAME: &str = "api-client.contoso.com";

/// Inbound client-certificate settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundConfig {
    /// `ALLOWED_CLIENT_CERT_COMMON_NAMES`
    pub common_names: Vec<String>,
    /// `ALLOWED_CLIENT_CERT_THUMBPRINTS`
    pub thumbprints: Vec<Thumbprint>,
    /// `CLIENT_CERT_CA_PATH`
    pub ca_path: Option<PathBuf>,
    /// `ALLOW_UNVERIFIED_COMMON_NAMES`
    pub allow_unverified_common_names: bool,
    /// `CLIENT_CERT_ALLOW_WEAK_KEYS`: accept keys and signature algorithms below the key
    /// policy, in client certificates and CAs (legacy partners only).
    pub allow_weak_keys: bool,
    /// `CLIENT_CERT_CACHE_SIZE` (0 turns the cache off)
    pub cache_size: usize,
    /// `CLIENT_CERT_CACHE_SECONDS`
    pub cache_seconds: u64,
    /// Revocation checking (`CLIENT_CERT_CRL_*`); `None` when off.
    pub revocation: Option<RevocationConfig>,
    /// The partners document (`CLIENT_CERT_PARTNERS*`); `None` when only the flat settings
    /// are used.
    pub partners: Option<PartnersConfig>,
}

/// Where a partners document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnersSource {
    /// `CLIENT_CERT_PARTNERS`: the JSON itself.
    Inline(String),
    /// `CLIENT_CERT_PARTNERS_PATH` (or `CLIENT_CERT_SHADOW_PARTNERS_PATH`): a file.
    Path(PathBuf),
    /// `CLIENT_CERT_PARTNERS_SECRET` (or `CLIENT_CERT_SHADOW_PARTNERS_SECRET`): a Key Vault
    /// secret in `KEY_VAULT_URL`.
    Secret { vault: String, name: String },
}

impl PartnersSource {
    /// The setting that names this source.
    pub fn setting(&self, shadow: bool) -> &'static str {
        match (self, shadow) {
            (Self::Inline(_), _) => "CLIENT_CERT_PARTNERS",
            (Self::Path(_), false) => "CLIENT_CERT_PARTNERS_PATH",
            (Self::Path(_), true) => "CLIENT_CERT_SHADOW_PARTNERS_PATH",
            (Self::Secret { .. }, false) => "CLIENT_CERT_PARTNERS_SECRET",
            (Self::Secret { .. }, true) => "CLIENT_CERT_SHADOW_PARTNERS_SECRET",
        }
    }

    /// Shown in `/api/health` and logs (never the inline JSON itself).
    pub fn describe(&self) -> String {
        match self {
            Self::Inline(_) => "setting CLIENT_CERT_PARTNERS".to_owned(),
            Self::Path(p) => format!("file {}", p.display()),
            Self::Secret { vault, name } => format!("Key Vault secret {name} in {vault}"),
        }
    }
}

/// Partners settings; present only when one of `CLIENT_CERT_PARTNERS`,
/// `CLIENT_CERT_PARTNERS_PATH` or `CLIENT_CERT_PARTNERS_SECRET` is set (the first one set,
/// in that order, wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnersConfig {
    pub source: PartnersSource,
    /// Settings that were set but lost to an earlier one (logged at start-up).
    pub ignored: Vec<&'static str>,
    /// `CLIENT_CERT_PARTNERS_CHECK_SECONDS` (default 30, at least 1).
    pub check_seconds: u64,
    /// `CLIENT_CERT_PARTNERS_REFRESH_MINUTES` (default 5, at least 1).
    pub refresh_minutes: u64,
    /// `CLIENT_CERT_SHADOW_PARTNERS_PATH` or `_SECRET`: a candidate document evaluated
    /// beside the enforced one, never enforced.
    pub shadow: Option<PartnersSource>,
}

impl PartnersConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Option<Self>, ConfigError> {
        let check_seconds = at_least_one(env, "CLIENT_CERT_PARTNERS_CHECK_SECONDS", 30)?;
        let refresh_minutes = at_least_one(env, "CLIENT_CERT_PARTNERS_REFRESH_MINUTES", 5)?;
        let vault = env
            .get("KEY_VAULT_URL")
            .map(|v| v.trim().trim_end_matches('/').to_owned());
        let secret = |setting: &'static str| -> Result<Option<PartnersSource>, ConfigError> {
            let Some(name) = env.get(setting) else {
                return Ok(None);
            };
            let Some(vault) = vault.clone() else {
                return Err(ConfigError::invalid(
                    setting,
                    "a Key Vault secret needs KEY_VAULT_URL",
                ));
            };
            Ok(Some(PartnersSource::Secret {
                vault,
                name: name.trim().to_owned(),
            }))
        };
        let mut found: Vec<PartnersSource> = Vec::new();
        if let Some(json) = env.get("CLIENT_CERT_PARTNERS") {
            found.push(PartnersSource::Inline(json));
        }
        if let Some(path) = env.get("CLIENT_CERT_PARTNERS_PATH") {
            found.push(PartnersSource::Path(PathBuf::from(path.trim())));
        }
        if let Some(s) = secret("CLIENT_CERT_PARTNERS_SECRET")? {
            found.push(s);
        }
        let shadow = match env.get("CLIENT_CERT_SHADOW_PARTNERS_PATH") {
            Some(p) => Some(PartnersSource::Path(PathBuf::from(p.trim()))),
            None => secret("CLIENT_CERT_SHADOW_PARTNERS_SECRET")?,
        };
        let mut found = found.into_iter();
        let Some(source) = found.next() else {
            if let Some(s) = shadow {
                return Err(ConfigError::invalid(
                    s.setting(true),
                    "a shadow document is compared with an enforced one: set \
                     CLIENT_CERT_PARTNERS, CLIENT_CERT_PARTNERS_PATH or \
                     CLIENT_CERT_PARTNERS_SECRET too (`handler partners from-settings` \
                     prints the document equivalent to the flat settings)",
                ));
            }
            return Ok(None);
        };
        Ok(Some(Self {
            source,
            ignored: found.map(|s| s.setting(false)).collect(),
            check_seconds,
            refresh_minutes,
            shadow,
        }))
    }
}

/// Revocation settings; present only when `CLIENT_CERT_CRL_PATH` or
/// `CLIENT_CERT_CRL_FETCH=true` is set (both need `CLIENT_CERT_CA_PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationConfig {
    /// `CLIENT_CERT_CRL_PATH`: CRL files (PEM or DER) or a directory of them.
    pub crl_path: Option<PathBuf>,
    /// `CLIENT_CERT_CRL_FETCH`: fetch CRLs from the certificates' HTTP distribution points.
    pub fetch: bool,
    /// `CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS` (default 5, at least 1).
    pub fetch_timeout_seconds: u64,
    /// `CLIENT_CERT_CRL_CHECK_SECONDS` (default 60, at least 1): how often CRL files are
    /// checked for changes and due downloads are retried.
    pub check_seconds: u64,
    /// `CLIENT_CERT_REVOCATION_FAIL_OPEN`: accept when the status is unknown.
    pub fail_open: bool,
}

impl RevocationConfig {
    /// `None` when neither `CLIENT_CERT_CRL_PATH` nor `CLIENT_CERT_CRL_FETCH` turns
    /// revocation on.
    pub fn from_env(
        env: &dyn EnvSource,
        ca_path: Option<&PathBuf>,
    ) -> Result<Option<Self>, ConfigError> {
        const PATH: &str = "CLIENT_CERT_CRL_PATH";
        const FETCH: &str = "CLIENT_CERT_CRL_FETCH";
        let crl_path = env.get(PATH).map(PathBuf::from);
        let fetch = parse_bool(env, FETCH, false)?;
        let fail_open = parse_bool(env, "CLIENT_CERT_REVOCATION_FAIL_OPEN", false)?;
        let fetch_timeout_seconds = at_least_one(env, "CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS", 5)?;
        let check_seconds = at_least_one(env, "CLIENT_CERT_CRL_CHECK_SECONDS", 60)?;
        if crl_path.is_none() && !fetch {
            return Ok(None);
        }
        if ca_path.is_none() {
            let setting = if crl_path.is_some() { PATH } else { FETCH };
            return Err(ConfigError::invalid(
                setting,
                "revocation checking needs the issuing CAs: set CLIENT_CERT_CA_PATH too",
            ));
        }
        Ok(Some(Self {
            crl_path,
            fetch,
            fetch_timeout_seconds,
            check_seconds,
            fail_open,
        }))
    }
}

impl InboundConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        const CNS: &str = "ALLOWED_CLIENT_CERT_COMMON_NAMES";
        const TPS: &str = "ALLOWED_CLIENT_CERT_THUMBPRINTS";
        let partners = PartnersConfig::from_env(env)?;
        // With a partners document, the seed's default name is not an implicit partner.
        let common_names = match env.get(CNS) {
            None if partners.is_some() => Vec::new(),
            None => vec![DEFAULT_COMMON_NAME.to_owned()],
            Some(v) => list(&v),
        };
        if let Some(bad) = common_names
            .iter()
            .find(|cn| cn.chars().any(char::is_control))
        {
            return Err(ConfigError::invalid(
                CNS,
                format!("{bad:?} contains a control character"),
            ));
        }
        let thumbprints = env
            .get(TPS)
            .map(|v| {
                list(&v)
                    .iter()
                    .map(|t| Thumbprint::parse(t))
                    .collect::<Result<Vec<_>, ThumbprintError>>()
            })
            .transpose()
            .map_err(|e| ConfigError::invalid(TPS, e.to_string()))?
            .unwrap_or_default();
        let ca_path = env.get("CLIENT_CERT_CA_PATH").map(PathBuf::from);
        let revocation = RevocationConfig::from_env(env, ca_path.as_ref())?;
        Ok(Self {
            common_names,
            thumbprints,
            ca_path,
            revocation,
            partners,
            allow_unverified_common_names: parse_bool(env, "ALLOW_UNVERIFIED_COMMON_NAMES", false)?,
            allow_weak_keys: parse_bool(env, "CLIENT_CERT_ALLOW_WEAK_KEYS", false)?,
            cache_size: parse_number(env, "CLIENT_CERT_CACHE_SIZE", 10_000)?,
            cache_seconds: parse_number(env, "CLIENT_CERT_CACHE_SECONDS", 300)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn common_names_are_trimmed_and_empty_items_dropped() {
        let c = InboundConfig::from_env(&env(&[(
            "ALLOWED_CLIENT_CERT_COMMON_NAMES",
            " a.example , ,b.example",
        )]))
        .unwrap();
        assert_eq!(c.common_names, vec!["a.example", "b.example"]);
    }

    #[test]
    fn a_thumbprint_of_the_wrong_length_fails_naming_the_setting() {
        let e = InboundConfig::from_env(&env(&[("ALLOWED_CLIENT_CERT_THUMBPRINTS", "abc123")]))
            .unwrap_err();
        assert_eq!(e.setting(), "ALLOWED_CLIENT_CERT_THUMBPRINTS");
        assert!(e.to_string().contains("ALLOWED_CLIENT_CERT_THUMBPRINTS"));
    }

    #[test]
    fn the_first_partners_source_set_wins_and_the_default_name_is_dropped() {
        let c = InboundConfig::from_env(&env(&[
            ("CLIENT_CERT_PARTNERS_PATH", "/home/partners.json"),
            ("CLIENT_CERT_PARTNERS", "{}"),
        ]))
        .unwrap();
        let p = c.partners.unwrap();
        assert_eq!(p.source, PartnersSource::Inline("{}".to_owned()));
        assert_eq!(p.ignored, vec!["CLIENT_CERT_PARTNERS_PATH"]);
        assert_eq!((p.check_seconds, p.refresh_minutes), (30, 5));
        assert!(c.common_names.is_empty());
    }

    #[test]
    fn a_partners_secret_without_a_vault_or_a_lone_shadow_fails_naming_the_setting() {
        let e = InboundConfig::from_env(&env(&[("CLIENT_CERT_PARTNERS_SECRET", "p")])).unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_PARTNERS_SECRET");
        let e = InboundConfig::from_env(&env(&[("CLIENT_CERT_SHADOW_PARTNERS_PATH", "/x")]))
            .unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_SHADOW_PARTNERS_PATH");
        let e = InboundConfig::from_env(&env(&[
            ("CLIENT_CERT_PARTNERS", "{}"),
            ("CLIENT_CERT_PARTNERS_CHECK_SECONDS", "0"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_PARTNERS_CHECK_SECONDS");
    }

    #[test]
    fn revocation_is_off_unless_a_crl_path_or_fetching_is_set() {
        let c = InboundConfig::from_env(&env(&[("CLIENT_CERT_CA_PATH", "/ca.pem")])).unwrap();
        assert_eq!(c.revocation, None);
    }

    #[test]
    fn crl_settings_parse_with_their_defaults() {
        let c = InboundConfig::from_env(&env(&[
            ("CLIENT_CERT_CA_PATH", "/ca.pem"),
            ("CLIENT_CERT_CRL_PATH", "/crls"),
        ]))
        .unwrap();
        let r = c.revocation.unwrap();
        assert_eq!(r.crl_path, Some(PathBuf::from("/crls")));
        assert!(!r.fetch && !r.fail_open);
        assert_eq!((r.fetch_timeout_seconds, r.check_seconds), (5, 60));

        let c = InboundConfig::from_env(&env(&[
            ("CLIENT_CERT_CA_PATH", "/ca.pem"),
            ("CLIENT_CERT_CRL_FETCH", "true"),
            ("CLIENT_CERT_REVOCATION_FAIL_OPEN", "TRUE"),
            ("CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS", "2"),
            ("CLIENT_CERT_CRL_CHECK_SECONDS", "1"),
        ]))
        .unwrap();
        let r = c.revocation.unwrap();
        assert_eq!(r.crl_path, None);
        assert!(r.fetch && r.fail_open);
        assert_eq!((r.fetch_timeout_seconds, r.check_seconds), (2, 1));
    }

    #[test]
    fn crl_checking_without_a_ca_path_fails_naming_the_setting() {
        let e = InboundConfig::from_env(&env(&[("CLIENT_CERT_CRL_PATH", "/crls")])).unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_CRL_PATH");
        let e = InboundConfig::from_env(&env(&[("CLIENT_CERT_CRL_FETCH", "yes")])).unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_CRL_FETCH");
    }

    #[test]
    fn a_zero_or_bad_crl_interval_fails_naming_the_setting() {
        for name in [
            "CLIENT_CERT_CRL_CHECK_SECONDS",
            "CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS",
        ] {
            for bad in ["0", "soon"] {
                let e = InboundConfig::from_env(&env(&[
                    ("CLIENT_CERT_CA_PATH", "/ca.pem"),
                    ("CLIENT_CERT_CRL_PATH", "/crls"),
                    (name, bad),
                ]))
                .unwrap_err();
                assert_eq!(e.setting(), name);
            }
        }
        let e = InboundConfig::from_env(&env(&[("CLIENT_CERT_REVOCATION_FAIL_OPEN", "maybe")]))
            .unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_REVOCATION_FAIL_OPEN");
    }

    #[test]
    fn weak_keys_are_allowed_only_by_an_explicit_true_and_a_typo_names_the_setting() {
        let c = InboundConfig::from_env(&env(&[("CLIENT_CERT_ALLOW_WEAK_KEYS", "true")])).unwrap();
        assert!(c.allow_weak_keys);
        let e =
            InboundConfig::from_env(&env(&[("CLIENT_CERT_ALLOW_WEAK_KEYS", "ture")])).unwrap_err();
        assert_eq!(e.setting(), "CLIENT_CERT_ALLOW_WEAK_KEYS");
    }
}
