//! The settings of the `serve` command: the port the host gives us, and each part's own.
//!
//! Owns: reading every part's settings once, in one place, at start-up.
//! Must not: be read again after start-up.

use crate::inbound::config::InboundConfig;
use crate::outbound::OutboundConfig;
use crate::settings::{parse_number, ConfigError, EnvSource};
use std::path::PathBuf;

/// All settings of the `serve` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`, else `FUNCTIONS_HTTPWORKER_PORT`, else 3000.
    pub port: u16,
    pub inbound: InboundConfig,
    pub outbound: OutboundConfig,
    pub functions: FunctionsConfig,
}

impl Config {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Self {
            port: port(env)?,
            inbound: InboundConfig::from_env(env)?,
            outbound: OutboundConfig::from_env(env)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::config::DEFAULT_COMMON_NAME;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
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
    fn defaults_keep_the_seed_common_name_and_port_3000() {
        let c = Config::from_env(&env(&[])).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.inbound.common_names, vec![DEFAULT_COMMON_NAME]);
        assert!(c.inbound.thumbprints.is_empty());
        assert!(!c.inbound.allow_unverified_common_names);
        assert!(!c.inbound.allow_weak_keys);
    }
    #[test]
    fn a_bad_boolean_or_port_fails_naming_the_setting() {
        let e = Config::from_env(&env(&[("ALLOW_UNVERIFIED_COMMON_NAMES", "maybe")])).unwrap_err();
        assert_eq!(e.setting(), "ALLOW_UNVERIFIED_COMMON_NAMES");
        let e = Config::from_env(&env(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "70000")])).unwrap_err();
        assert_eq!(e.setting(), "FUNCTIONS_CUSTOMHANDLER_PORT");
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
}
