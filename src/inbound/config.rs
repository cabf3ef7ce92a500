//! Inbound settings: the client-certificate policy, its cache and revocation checking.
//!
//! Owns: the names, defaults and syntax of the `ALLOWED_CLIENT_CERT_*`, `CLIENT_CERT_*` and
//! `ALLOW_UNVERIFIED_COMMON_NAMES` settings, including which header carries the
//! certificate and in which format ([`HeaderConfig`]).
//! Must not: read the files the settings name (the gate and the CRL store do, at start-up).

use crate::inbound::client_cert::forwarded::HeaderFormat;
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
    /// Where the certificate arrives (`CLIENT_CERT_HEADER*`).
    pub header: HeaderConfig,
    /// `CLIENT_CERT_INTERMEDIATES_PATH`: untrusted intermediate CAs that may complete a
    /// path to a CA in `CLIENT_CERT_CA_PATH` (never anchors themselves).
    pub intermediates_path: Option<PathBuf>,
}

/// Which request headers carry the certificate, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderConfig {
    /// `CLIENT_CERT_HEADER_FORMAT` (default `arr`).
    pub format: HeaderFormat,
    /// `CLIENT_CERT_HEADER`: the header read (default per format; required for
    /// `pem-urlencoded`). Only this header is read.
    pub name: String,
    /// `CLIENT_CERT_CHAIN_HEADER`: `rfc9440` only (default `Client-Cert-Chain`).
    pub chain_name: Option<String>,
}

impl Default for HeaderConfig {
    /// App Service: `X-ARR-ClientCert`, base64 DER.
    fn default() -> Self {
        Self {
            format: HeaderFormat::Arr,
            name: crate::inbound::client_cert::header::HEADER_NAME.to_owned(),
            chain_name: None,
        }
    }
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

impl HeaderConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        const FORMAT: &str = "CLIENT_CERT_HEADER_FORMAT";
        const HEADER: &str = "CLIENT_CERT_HEADER";
        const CHAIN: &str = "CLIENT_CERT_CHAIN_HEADER";
        let format = match env.get(FORMAT) {
            None => HeaderFormat::Arr,
            Some(v) => HeaderFormat::parse(&v).ok_or_else(|| {
                ConfigError::invalid(
                    FORMAT,
                    format!(
                        "{:?} is not one of arr, xfcc, rfc9440, pem-urlencoded",
                        v.trim()
                    ),
                )
            })?,
        };
        let name = match (env.get(HEADER), format.default_header()) {
            (Some(v), _) => header_name(HEADER, &v)?,
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                return Err(ConfigError::invalid(
                    HEADER,
                    format!(
                        "required with {FORMAT}={format}: the header your front end's rewrite \
                         rule sets (e.g. X-Client-Certificate)"
                    ),
                ))
            }
        };
        let chain_name = match (env.get(CHAIN), format.default_chain_header()) {
            (Some(v), Some(_)) => Some(header_name(CHAIN, &v)?),
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    CHAIN,
                    format!(
                        "only {FORMAT}=rfc9440 reads a chain header; {format} carries the \
                         chain (if any) in {HEADER}"
                    ),
                ))
            }
            (None, default) => default.map(str::to_owned),
        };
        if chain_name
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&name))
        {
            return Err(ConfigError::invalid(
                CHAIN,
                format!("must differ from {HEADER} ({name})"),
            ));
        }
        Ok(Self {
            format,
            name,
            chain_name,
        })
    }
}

/// An HTTP field name (RFC 9110 token).
fn header_name(setting: &'static str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if v.is_empty() || !v.chars().all(token) {
        return Err(ConfigError::invalid(
            setting,
            format!("{v:?} is not an HTTP header name"),
        ));
    }
    Ok(v.to_owned())
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
        let intermediates_path = env.get("CLIENT_CERT_INTERMEDIATES_PATH").map(PathBuf::from);
        if intermediates_path.is_some() && ca_path.is_none() {
            return Err(ConfigError::invalid(
                "CLIENT_CERT_INTERMEDIATES_PATH",
                "intermediates complete a path to a trust anchor: set CLIENT_CERT_CA_PATH too",
            ));
        }
        Ok(Self {
            header: HeaderConfig::from_env(env)?,
            intermediates_path,
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
    fn by_default_the_header_is_x_arr_clientcert_in_base64() {
        let c = InboundConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.header, HeaderConfig::default());
        assert_eq!(c.header.name, "X-ARR-ClientCert");
        assert_eq!(c.intermediates_path, None);
    }

    #[test]
    fn each_format_has_its_default_header() {
        let h = |f| HeaderConfig::from_env(&env(&[("CLIENT_CERT_HEADER_FORMAT", f)])).unwrap();
        assert_eq!(h("xfcc").name, "X-Forwarded-Client-Cert");
        assert_eq!(h("xfcc").chain_name, None);
        assert_eq!(h("RFC9440").name, "Client-Cert");
        assert_eq!(
            h("rfc9440").chain_name.as_deref(),
            Some("Client-Cert-Chain")
        );
        let custom = HeaderConfig::from_env(&env(&[
            ("CLIENT_CERT_HEADER_FORMAT", "pem-urlencoded"),
            ("CLIENT_CERT_HEADER", "X-Client-Certificate"),
        ]))
        .unwrap();
        assert_eq!(custom.name, "X-Client-Certificate");
    }

    #[test]
    fn header_settings_that_cannot_work_fail_naming_the_setting() {
        let fails = |pairs: &[(&'static str, &'static str)], setting: &str| {
            let e = InboundConfig::from_env(&env(pairs)).unwrap_err();
            assert_eq!(e.setting(), setting, "{pairs:?}");
            assert!(e.to_string().contains(setting));
        };
        fails(
            &[("CLIENT_CERT_HEADER_FORMAT", "pem-urlencoded")],
            "CLIENT_CERT_HEADER",
        );
        fails(
            &[("CLIENT_CERT_HEADER_FORMAT", "envoy")],
            "CLIENT_CERT_HEADER_FORMAT",
        );
        fails(&[("CLIENT_CERT_HEADER", "X Client")], "CLIENT_CERT_HEADER");
        fails(
            &[("CLIENT_CERT_CHAIN_HEADER", "Chain")],
            "CLIENT_CERT_CHAIN_HEADER",
        );
        fails(
            &[
                ("CLIENT_CERT_HEADER_FORMAT", "rfc9440"),
                ("CLIENT_CERT_CHAIN_HEADER", "client-cert"),
            ],
            "CLIENT_CERT_CHAIN_HEADER",
        );
        fails(
            &[("CLIENT_CERT_INTERMEDIATES_PATH", "/i.pem")],
            "CLIENT_CERT_INTERMEDIATES_PATH",
        );
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
