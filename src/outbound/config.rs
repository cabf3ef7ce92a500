//! Outbound settings: the partner URL, timeouts, trust, and where the app's own certificate
//! comes from.
//!
//! Owns: the outbound setting names, defaults, syntax and cross-field rules, and the one
//! test seam ([`NetworkOverrides`], never read from the environment).
//! Must not: read certificates or keys (only `REMOTE_API_CA_PATH` is checked for
//! readability, so a bad path fails start-up), or keep secrets printable.

use super::redact;
pub use super::secret::Secret;
use crate::settings::{parse_number, ConfigError, EnvSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where App Service puts the private certificates named in `WEBSITE_LOAD_CERTIFICATES`.
pub const APP_SERVICE_PRIVATE_CERTS: &str = "/var/ssl/private";

/// The Key Vault source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVaultConfig {
    /// `KEY_VAULT_URL`, https, without a trailing slash.
    pub vault_url: String,
    /// `OUTBOUND_CLIENT_CERT_NAME`
    pub certificate_name: String,
    /// `OUTBOUND_CLIENT_CERT_VERSION`; `None` is the latest.
    pub version: Option<String>,
    /// `AZURE_CLIENT_ID`: a user-assigned managed identity's client id.
    pub client_id: Option<String>,
    /// Whether `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (App Service managed
    /// identity). The Azure SDK reads the values itself; only presence is kept, for messages.
    pub app_service_identity: bool,
    /// How the vault is reached (the managed-identity endpoint never uses a proxy).
    pub proxy: ProxyConfig,
    /// `AZURE_CREDENTIAL` and what it needs: how the vault is signed in to.
    pub credential: super::credential::CredentialConfig,
}

/// The proxy for Key Vault and the partner, from the usual environment variables, as the
/// Azure SDKs and curl read them: `HTTPS_PROXY` (else `ALL_PROXY`; lowercase names too) unless
/// the host matches `NO_PROXY`. Both endpoints are https, so `HTTP_PROXY` never applies; the
/// proxy only sees a `CONNECT host:port` (TLS, tokens and the client certificate pass through
/// it end to end). Loopback destinations and the managed-identity endpoint never use it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProxyConfig {
    /// The proxy URL (`http://` or `https://`; `host:port` alone means `http://`), with
    /// its user info if any. Printed redacted.
    pub url: Option<String>,
    /// The variable `url` came from, for messages.
    pub setting: &'static str,
    /// `NO_PROXY` as given: comma-separated host names (suffix match), IP addresses,
    /// CIDR ranges, or `*`.
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &self.url.as_deref().map(redact::url))
            .field("setting", &self.setting)
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// The file source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileConfig {
    /// `OUTBOUND_CLIENT_CERT_PATH` (+ `OUTBOUND_CLIENT_CERT_PASSWORD`): PKCS#12 or PEM.
    Path {
        path: PathBuf,
        password: Option<Secret>,
    },
    /// `OUTBOUND_CLIENT_CERT_THUMBPRINT`: `<dir>/<THUMBPRINT>.p12`, no password, the file
    /// name matched case-insensitively. `dir` is [`APP_SERVICE_PRIVATE_CERTS`] outside tests.
    Thumbprint { dir: PathBuf, thumbprint: String },
}

/// Test seam, not a setting: applied to every HTTP client this module builds. Empty in
/// production. Tests use it to reach loopback stand-ins under real host names (the Key
/// Vault SDK insists on a `*.vault.azure.net`-like host) and to trust their test CA.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkOverrides {
    /// Host name → address, as `reqwest::ClientBuilder::resolve` (the address's port is used
    /// when the URL has none).
    pub resolve: Vec<(String, SocketAddr)>,
    /// Host names that fail to resolve, as a name without DNS records does (tests of a
    /// partner that cannot be found, without asking a real DNS server).
    pub unresolvable: Vec<String>,
    /// Extra trusted roots (PEM) for Azure endpoints (Key Vault, managed identity).
    pub azure_roots_pem: Vec<u8>,
}

/// All outbound settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// `REMOTE_API_URL` (https).
    pub remote_api_url: Option<String>,
    /// `REMOTE_API_TIMEOUT_SECONDS`: the whole partner call; also bounds each identity load.
    pub timeout: Duration,
    /// `REMOTE_API_CA_PATH`: extra roots for the partner's server certificate.
    pub remote_ca_path: Option<PathBuf>,
    pub key_vault: Option<KeyVaultConfig>,
    /// `KEY_VAULT_URL` and the credential, for secrets that are not the certificate (the
    /// partners document, `CLIENT_CERT_PARTNERS_SECRET`); `certificate_name` is empty.
    /// Present whenever `KEY_VAULT_URL` is set.
    pub secrets_vault: Option<KeyVaultConfig>,
    pub file: Option<FileConfig>,
    /// `OUTBOUND_CLIENT_CERT_REFRESH_MINUTES`
    pub refresh: Duration,
    /// First delay before retrying a failed load; doubles per failure up to `retry_max`.
    /// Not settings (tests shorten them).
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// After a failed load with no usable certificate, a request may trigger an attempt at
    /// once when the last one ended at least this long ago (the background retries follow
    /// the backoff, which may be minutes by then). Not a setting.
    pub retry_on_request_after: Duration,
    /// `HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY` for the partner (Key Vault has its own copy).
    pub proxy: ProxyConfig,
    pub overrides: NetworkOverrides,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            remote_api_url: None,
            timeout: Duration::from_secs(30),
            remote_ca_path: None,
            key_vault: None,
            secrets_vault: None,
            file: None,
            refresh: Duration::from_secs(60 * 60),
            retry_first: Duration::from_secs(2),
            retry_max: Duration::from_secs(5 * 60),
            retry_on_request_after: Duration::from_secs(2),
            proxy: ProxyConfig::default(),
            overrides: NetworkOverrides::default(),
        }
    }
}

const REMOTE_API_URL: &str = "REMOTE_API_URL";
const TIMEOUT: &str = "REMOTE_API_TIMEOUT_SECONDS";
const REMOTE_CA: &str = "REMOTE_API_CA_PATH";
const KEY_VAULT_URL: &str = "KEY_VAULT_URL";
const CERT_NAME: &str = "OUTBOUND_CLIENT_CERT_NAME";
const CERT_VERSION: &str = "OUTBOUND_CLIENT_CERT_VERSION";
const CERT_PATH: &str = "OUTBOUND_CLIENT_CERT_PATH";
const CERT_PASSWORD: &str = "OUTBOUND_CLIENT_CERT_PASSWORD";
const CERT_THUMBPRINT: &str = "OUTBOUND_CLIENT_CERT_THUMBPRINT";
const REFRESH: &str = "OUTBOUND_CLIENT_CERT_REFRESH_MINUTES";

impl OutboundConfig {
    /// Reads and checks every outbound setting; a bad one fails naming it.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let remote_api_url = env
            .get(REMOTE_API_URL)
            .map(|v| https_url(REMOTE_API_URL, &v, true))
            .transpose()?;
        let timeout_secs: u64 = parse_number(env, TIMEOUT, 30)?;
        if timeout_secs == 0 || timeout_secs > 600 {
            return Err(ConfigError::invalid(TIMEOUT, "must be between 1 and 600"));
        }
        let refresh_minutes: u64 = parse_number(env, REFRESH, 60)?;
        if refresh_minutes == 0 || refresh_minutes > 7 * 24 * 60 {
            return Err(ConfigError::invalid(
                REFRESH,
                "must be between 1 and 10080 (a week)",
            ));
        }
        let remote_ca_path = env.get(REMOTE_CA).map(PathBuf::from);
        if let Some(path) = &remote_ca_path {
            crate::pki_files::read_certificates(path).map_err(|e| ConfigError::Unreadable {
                setting: REMOTE_CA,
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        let proxy = proxy(env)?;
        Ok(Self {
            remote_api_url,
            timeout: Duration::from_secs(timeout_secs),
            remote_ca_path,
            key_vault: key_vault(env, &proxy)?,
            secrets_vault: secrets_vault(env, &proxy)?,
            file: file(env)?,
            refresh: Duration::from_secs(refresh_minutes * 60),
            proxy,
            ..Self::default()
        })
    }

    /// Whether any identity source is configured.
    pub fn has_identity_source(&self) -> bool {
        self.key_vault.is_some() || self.file.is_some()
    }
}

/// The proxy variables, checked: a proxy URL that cannot be used fails start-up naming the
/// variable (its user info redacted).
fn proxy(env: &dyn EnvSource) -> Result<ProxyConfig, ConfigError> {
    const PROXY: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
    const NO_PROXY: [&str; 2] = ["NO_PROXY", "no_proxy"];
    let no_proxy = NO_PROXY.iter().find_map(|n| env.get(n));
    let Some((setting, value)) = PROXY.iter().find_map(|n| env.get(n).map(|v| (*n, v))) else {
        return Ok(ProxyConfig {
            no_proxy,
            ..ProxyConfig::default()
        });
    };
    let value = value.trim();
    let full = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let shown = redact::url(value);
    let url = reqwest::Url::parse(&full)
        .map_err(|e| ConfigError::invalid(setting, format!("{shown:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            setting,
            format!("{shown:?}: only http:// and https:// proxies are supported"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            setting,
            format!("{shown:?} has no host"),
        ));
    }
    Ok(ProxyConfig {
        url: Some(full),
        setting,
        no_proxy,
    })
}

fn key_vault(
    env: &dyn EnvSource,
    proxy: &ProxyConfig,
) -> Result<Option<KeyVaultConfig>, ConfigError> {
    let url = env.get(KEY_VAULT_URL);
    let name = env.get(CERT_NAME).map(|n| n.trim().to_owned());
    let version = env.get(CERT_VERSION).map(|v| v.trim().to_owned());
    let (url, name) = match (url, name) {
        (None, None) => {
            if version.is_some() {
                return Err(ConfigError::invalid(
                    CERT_VERSION,
                    format!("needs {KEY_VAULT_URL} and {CERT_NAME}"),
                ));
            }
            return Ok(None);
        }
        // The vault may hold only the partners document.
        (Some(_), None) if PARTNERS_SECRETS.iter().any(|s| env.get(s).is_some()) => {
            return Ok(None)
        }
        (Some(_), None) => {
            return Err(ConfigError::invalid(
                CERT_NAME,
                format!("must be set when {KEY_VAULT_URL} is"),
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::invalid(
                KEY_VAULT_URL,
                format!("must be set when {CERT_NAME} is"),
            ))
        }
        (Some(u), Some(n)) => (u, n),
    };
    let vault_url = https_url(KEY_VAULT_URL, &url, false)?;
    let name_ok = |s: &str| {
        !s.is_empty() && s.len() <= 127 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !name_ok(&name) {
        return Err(ConfigError::invalid(
            CERT_NAME,
            format!("{name:?} is not a Key Vault name (letters, digits and '-')"),
        ));
    }
    if let Some(v) = &version {
        if !v.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ConfigError::invalid(
                CERT_VERSION,
                format!("{v:?} is not a Key Vault version (letters and digits)"),
            ));
        }
    }
    let client_id = super::credential::checked_client_id(
        env.get("AZURE_CLIENT_ID").map(|c| c.trim().to_owned()),
    )?;
    Ok(Some(KeyVaultConfig {
        vault_url,
        certificate_name: name,
        version,
        client_id,
        app_service_identity: env.get("IDENTITY_ENDPOINT").is_some()
            && env.get("IDENTITY_HEADER").is_some(),
        proxy: proxy.clone(),
        credential: super::credential::CredentialConfig::from_env(env)?,
    }))
}

/// Settings that name other secrets in `KEY_VAULT_URL` (read by `inbound::partner_source`).
const PARTNERS_SECRETS: [&str; 2] = [
    "CLIENT_CERT_PARTNERS_SECRET",
    "CLIENT_CERT_SHADOW_PARTNERS_SECRET",
];

/// The vault and credential without a certificate: see [`OutboundConfig::secrets_vault`].
fn secrets_vault(
    env: &dyn EnvSource,
    proxy: &ProxyConfig,
) -> Result<Option<KeyVaultConfig>, ConfigError> {
    let Some(url) = env.get(KEY_VAULT_URL) else {
        return Ok(None);
    };
    let client_id = super::credential::checked_client_id(
        env.get("AZURE_CLIENT_ID").map(|c| c.trim().to_owned()),
    )?;
    Ok(Some(KeyVaultConfig {
        vault_url: https_url(KEY_VAULT_URL, &url, false)?,
        certificate_name: String::new(),
        version: None,
        client_id,
        app_service_identity: env.get("IDENTITY_ENDPOINT").is_some()
            && env.get("IDENTITY_HEADER").is_some(),
        proxy: proxy.clone(),
        credential: super::credential::CredentialConfig::from_env(env)?,
    }))
}

fn file(env: &dyn EnvSource) -> Result<Option<FileConfig>, ConfigError> {
    let password = env.get(CERT_PASSWORD).map(Secret::new);
    if let Some(path) = env.get(CERT_PATH) {
        return Ok(Some(FileConfig::Path {
            path: PathBuf::from(path.trim()),
            password,
        }));
    }
    if password.is_some() {
        return Err(ConfigError::invalid(
            CERT_PASSWORD,
            format!("is only used with {CERT_PATH}, which is not set"),
        ));
    }
    match env.get(CERT_THUMBPRINT) {
        None => Ok(None),
        Some(t) => {
            let t = t.trim();
            if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ConfigError::invalid(
                    CERT_THUMBPRINT,
                    format!("{t:?} is not a SHA-1 thumbprint (40 hex digits)"),
                ));
            }
            Ok(Some(FileConfig::Thumbprint {
                dir: PathBuf::from(APP_SERVICE_PRIVATE_CERTS),
                thumbprint: t.to_ascii_uppercase(),
            }))
        }
    }
}

/// An absolute https URL (http allowed only for nothing: both endpoints carry credentials
/// or mTLS). `with_path` keeps a path and query; otherwise only scheme, host and port.
/// Messages quote the value redacted (no user info, no query): it may hold a password or a
/// key (`?code=`).
fn https_url(setting: &'static str, value: &str, with_path: bool) -> Result<String, ConfigError> {
    let shown = redact::url(value);
    let url = reqwest::Url::parse(value.trim())
        .map_err(|e| ConfigError::invalid(setting, format!("{shown:?} is not a URL ({e})")))?;
    if url.scheme() != "https" {
        return Err(ConfigError::invalid(
            setting,
            format!("{shown:?} must start with https://"),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            setting,
            format!("{shown:?} has no host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            setting,
            "must not contain a user name or password",
        ));
    }
    if with_path {
        return Ok(url.to_string());
    }
    if url.query().is_some() || !matches!(url.path(), "" | "/") {
        return Err(ConfigError::invalid(
            setting,
            format!(
                "{shown:?} must be just the vault address, e.g. https://myvault.vault.azure.net"
            ),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn defaults_are_thirty_seconds_and_sixty_minutes_with_no_source() {
        let c = OutboundConfig::from_env(&env(&[])).unwrap();
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.refresh, Duration::from_secs(3600));
        assert!(!c.has_identity_source());
        assert_eq!(c.remote_api_url, None);
    }

    #[test]
    fn bad_numbers_and_urls_fail_naming_the_setting() {
        for (name, value) in [
            (REFRESH, "soon"),
            (REFRESH, "0"),
            (TIMEOUT, "abc"),
            (TIMEOUT, "0"),
            (REMOTE_API_URL, "http://partner.example/"),
            (REMOTE_API_URL, "not a url"),
        ] {
            let e = OutboundConfig::from_env(&env(&[(name, value)])).unwrap_err();
            assert_eq!(e.setting(), name, "{name}={value}");
            assert!(e.to_string().contains(name));
        }
        let e = OutboundConfig::from_env(&env(&[
            (KEY_VAULT_URL, "http://v.vault.azure.net"),
            (CERT_NAME, "c"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting(), KEY_VAULT_URL);
    }

    #[test]
    fn half_a_key_vault_configuration_fails_naming_the_missing_setting() {
        let e = OutboundConfig::from_env(&env(&[(KEY_VAULT_URL, "https://v.vault.azure.net")]))
            .unwrap_err();
        assert_eq!(e.setting(), CERT_NAME);
        let e = OutboundConfig::from_env(&env(&[(CERT_NAME, "c")])).unwrap_err();
        assert_eq!(e.setting(), KEY_VAULT_URL);
    }

    #[test]
    fn a_key_vault_url_loses_its_trailing_slash() {
        let c = OutboundConfig::from_env(&env(&[
            (KEY_VAULT_URL, "https://myvault.vault.azure.net/"),
            (CERT_NAME, "partner-cert"),
            ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000001"),
        ]))
        .unwrap();
        let kv = c.key_vault.unwrap();
        assert_eq!(kv.vault_url, "https://myvault.vault.azure.net");
        assert_eq!(
            kv.client_id.as_deref(),
            Some("00000000-0000-0000-0000-000000000001")
        );
        assert!(!kv.app_service_identity);
    }

    #[test]
    fn a_thumbprint_names_an_uppercase_file_in_var_ssl_private() {
        let c = OutboundConfig::from_env(&env(&[(
            CERT_THUMBPRINT,
            "abcdef0123456789abcdef0123456789abcdef01",
        )]))
        .unwrap();
        assert_eq!(
            c.file,
            Some(FileConfig::Thumbprint {
                dir: PathBuf::from("/var/ssl/private"),
                thumbprint: "ABCDEF0123456789ABCDEF0123456789ABCDEF01".into()
            })
        );
        let e = OutboundConfig::from_env(&env(&[(CERT_THUMBPRINT, "abc")])).unwrap_err();
        assert_eq!(e.setting(), CERT_THUMBPRINT);
    }

    #[test]
    fn the_password_is_never_printed() {
        let c =
            OutboundConfig::from_env(&env(&[(CERT_PATH, "/x.pfx"), (CERT_PASSWORD, "hunter2")]))
                .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn the_proxy_comes_from_https_proxy_then_all_proxy_and_is_never_printed_with_its_password() {
        let c = OutboundConfig::from_env(&env(&[
            ("ALL_PROXY", "http://all.example:1"),
            ("https_proxy", "u:Pr0xyPw@proxy.example:3128"),
            ("NO_PROXY", ".internal"),
            (KEY_VAULT_URL, "https://v.vault.azure.net"),
            (CERT_NAME, "c"),
        ]))
        .unwrap();
        assert_eq!(
            c.proxy.url.as_deref(),
            Some("http://u:Pr0xyPw@proxy.example:3128")
        );
        assert_eq!(c.proxy.setting, "https_proxy");
        assert_eq!(c.proxy.no_proxy.as_deref(), Some(".internal"));
        assert_eq!(c.key_vault.as_ref().unwrap().proxy, c.proxy);
        assert!(!format!("{c:?}").contains("Pr0xyPw"));
        let c = OutboundConfig::from_env(&env(&[("ALL_PROXY", "http://all.example:1")])).unwrap();
        assert_eq!(c.proxy.url.as_deref(), Some("http://all.example:1"));
        // HTTP_PROXY is for http URLs; both endpoints are https.
        let c = OutboundConfig::from_env(&env(&[("HTTP_PROXY", "http://p:1")])).unwrap();
        assert_eq!(c.proxy.url, None);
        let e = OutboundConfig::from_env(&env(&[("HTTPS_PROXY", "socks5://u:Pr0xyPw@p:1080")]))
            .unwrap_err();
        assert_eq!(e.setting(), "HTTPS_PROXY");
        assert!(!e.to_string().contains("Pr0xyPw"), "{e}");
    }

    #[test]
    fn a_password_or_key_in_a_url_setting_is_never_in_the_error() {
        for (name, value) in [
            (
                REMOTE_API_URL,
                "http://svc:Pa55w0rd@partner.example/api?code=K3y",
            ),
            (REMOTE_API_URL, "https://svc:Pa55w0rd@/api?code=K3y"),
            (REMOTE_API_URL, "ftp://svc:Pa55w0rd@h/?code=K3y"),
        ] {
            let e = OutboundConfig::from_env(&env(&[(name, value)])).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(name), "{text}");
            assert!(
                !text.contains("Pa55w0rd") && !text.contains("K3y"),
                "{text}"
            );
        }
        let e = OutboundConfig::from_env(&env(&[
            (KEY_VAULT_URL, "https://v.vault.azure.net/?sig=K3y"),
            (CERT_NAME, "c"),
        ]))
        .unwrap_err();
        assert!(!e.to_string().contains("K3y"), "{e}");
    }

    #[test]
    fn an_unreadable_remote_ca_path_fails_start_up() {
        let e = OutboundConfig::from_env(&env(&[(REMOTE_CA, "/nonexistent/ca.pem")])).unwrap_err();
        assert_eq!(e.setting(), REMOTE_CA);
    }
}
