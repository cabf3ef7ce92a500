//! Reading app settings: the environment as a source, the parsing helpers every part uses,
//! and [`ConfigError`], the start-up failure that names the setting.
//!
//! Owns: how a value is read (empty counts as unset) and the syntax of lists, booleans and
//! numbers. Each part owns its own settings type next to its code: `host::config`,
//! `inbound::config`, `outbound::config`.
//! Must not: know any part's settings, or be read again after start-up.

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

/// A positive integer; unset gives `default`, 0 fails naming the setting.
pub fn at_least_one(
    env: &dyn EnvSource,
    name: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    let v = parse_number(env, name, default)?;
    if v == 0 {
        return Err(ConfigError::invalid(name, "must be at least 1"));
    }
    Ok(v)
}
