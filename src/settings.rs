//! Start-up configuration: every app setting, read once, typed and checked.
//!
//! Owns: setting names, defaults, syntax, and the messages that name a bad setting.
//! Must not: be read again after start-up, or hold anything but plain values (files named
//! by settings are read by the modules that own them, at start-up).

use crate::inbound::client_cert::{Thumbprint, ThumbprintError};
use std::collections::HashMap;
use std::path::PathBuf;

/// Where settings come from: the process environment in production, a map in tests.
pub trait EnvSource {
    /// The value of `name`, or `None` when unset. Empty values count as unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        Self::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }
}

impl EnvSource for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*v).to_owned())
    }
}

/// A setting that stops the handler from starting. The message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
    #[error("setting {setting}: cannot read {path}: {reason}")]
    Unreadable {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl ConfigError {
    pub fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting this error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Invalid { setting, .. } | Self::Unreadable { setting, .. } => setting,
        }
    }
}

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
    /// `CLIENT_CERT_CACHE_SIZE` (0 turns the cache off)
    pub cache_size: usize,
    /// `CLIENT_CERT_CACHE_SECONDS`
    pub cache_seconds: u64,
    /// Revocation checking (`CLIENT_CERT_CRL_*`); `None` when off.
    pub revocation: Option<RevocationConfig>,
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

fn at_least_one(env: &dyn EnvSource, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let v = parse_number(env, name, default)?;
    if v == 0 {
        return Err(ConfigError::invalid(name, "must be at least 1"));
    }
    Ok(v)
}

/// All settings of the `serve` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`, else `FUNCTIONS_HTTPWORKER_PORT`, else 3000.
    pub port: u16,
    pub inbound: InboundConfig,
    pub outbound: crate::outbound::OutboundConfig,
    pub functions: FunctionsConfig,
}

impl Config {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            port: port(env)?,
            inbound: InboundConfig::from_env(env)?,
            outbound: crate::outbound::OutboundConfig::from_env(env)?,
            functions: FunctionsConfig::from_env(env)?,
        })
    }
}

fn port(env: &dyn EnvSource) -> Result<u16, ConfigError> {
    for name in ["FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"] {
        if env.get(name).is_some() {
            return parse_number(env, name, 3000);
        }
    }
    Ok(3000)
}

impl InboundConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        const CNS: &str = "ALLOWED_CLIENT_CERT_COMMON_NAMES";
        const TPS: &str = "ALLOWED_CLIENT_CERT_THUMBPRINTS";
        let common_names = match env.get(CNS) {
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
            allow_unverified_common_names: parse_bool(env, "ALLOW_UNVERIFIED_COMMON_NAMES", false)?,
            cache_size: parse_number(env, "CLIENT_CERT_CACHE_SIZE", 10_000)?,
            cache_seconds: parse_number(env, "CLIENT_CERT_CACHE_SECONDS", 300)?,
        })
    }
}

/// How the functions are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionsConfig {
    /// `MAX_REQUEST_BODY_BYTES` (default 1 MiB, 1 byte to 100 MiB): larger bodies get 413.
    pub max_body_bytes: usize,
    /// `FUNCTIONS_APP_ROOT_PATH` (set by the host), else the working directory: where the
    /// function folders are.
    pub app_root: Option<PathBuf>,
}

/// The default `MAX_REQUEST_BODY_BYTES`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl FunctionsConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        const BODY: &str = "MAX_REQUEST_BODY_BYTES";
        let max_body_bytes = parse_number(env, BODY, DEFAULT_MAX_BODY_BYTES)?;
        if !(1..=100 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(ConfigError::invalid(
                BODY,
                format!("{max_body_bytes} is not between 1 and 104857600 (100 MiB)"),
            ));
        }
        Ok(Self {
            max_body_bytes,
            app_root: env.get("FUNCTIONS_APP_ROOT_PATH").map(PathBuf::from),
        })
    }
}

/// A comma-separated list, each item trimmed, empty items dropped.
pub fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), any case; unset gives `default`.
pub fn parse_bool(
    env: &dyn EnvSource,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match env.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) => match v.as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::invalid(
                name,
                format!("{v:?} is not true or false"),
            )),
        },
    }
}

/// A non-negative integer; unset gives `default`.
pub fn parse_number<T: std::str::FromStr>(
    env: &dyn EnvSource,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            ConfigError::invalid(name, format!("{:?} is not a valid number", v.trim()))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn defaults_keep_the_seed_common_name_and_port_3000() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.inbound.common_names, vec![DEFAULT_COMMON_NAME]);
        assert!(c.inbound.thumbprints.is_empty());
        assert!(!c.inbound.allow_unverified_common_names);
    }

    #[test]
    fn custom_handler_port_wins_over_http_worker_port() {
        let c = Config::from_env(&env(&[
            ("FUNCTIONS_CUSTOMHANDLER_PORT", "4001"),
            ("FUNCTIONS_HTTPWORKER_PORT", "4002"),
        ]))
        .unwrap();
        assert_eq!(c.port, 4001);
        let c = Config::from_env(&env(&[("FUNCTIONS_HTTPWORKER_PORT", "4002")])).unwrap();
        assert_eq!(c.port, 4002);
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
    fn the_body_limit_defaults_to_one_mib_and_refuses_zero_naming_the_setting() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(c.functions.max_body_bytes, 1024 * 1024);
        let c = Config::from_env(&env(&[("MAX_REQUEST_BODY_BYTES", "2048")])).unwrap();
        assert_eq!(c.functions.max_body_bytes, 2048);
        for bad in ["0", "lots", "104857601"] {
            let e = Config::from_env(&env(&[("MAX_REQUEST_BODY_BYTES", bad)])).unwrap_err();
            assert_eq!(e.setting(), "MAX_REQUEST_BODY_BYTES");
        }
    }

    #[test]
    fn a_bad_boolean_or_port_fails_naming_the_setting() {
        let e = Config::from_env(&env(&[("ALLOW_UNVERIFIED_COMMON_NAMES", "maybe")])).unwrap_err();
        assert_eq!(e.setting(), "ALLOW_UNVERIFIED_COMMON_NAMES");
        let e = Config::from_env(&env(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "70000")])).unwrap_err();
        assert_eq!(e.setting(), "FUNCTIONS_CUSTOMHANDLER_PORT");
    }
}
