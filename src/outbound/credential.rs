//! The Azure credential the handler signs in with (Key Vault today; any other Azure service
//! or Key Vault secret later): which one `AZURE_CREDENTIAL` picks, or `auto` finds, and why;
//! building it from the official SDK (`azure_identity`); and explaining its failures so a
//! person can act on them.
//!
//! Owns: the credential settings (`AZURE_CREDENTIAL`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`
//! for service principals and workload identity, `AZURE_FEDERATED_TOKEN_FILE`,
//! `AZURE_CLIENT_CERTIFICATE_PATH`/`_PASSWORD`, `AZURE_CLIENT_SECRET`, `AZURE_AUTHORITY_HOST`,
//! given to the SDK as its cloud option), the `auto` order, the conversion of a
//! PEM certificate and key into the PKCS#12 the SDK's certificate credential takes, and the
//! failure text: which credential, what failed (the SDK error's whole source chain, where
//! the actionable part such as `AADSTS90002` or "Please run 'az login'" lives), what to do.
//! Must not: request tokens by hand (the SDK does), fall through from one credential to
//! another, or let a secret (client secret, certificate password, token) into `Debug`,
//! messages or logs.
//!
//! `auto` picks exactly one, in this order, from what the environment holds:
//! 1. App Service / Functions managed identity: `IDENTITY_ENDPOINT` (+ `IDENTITY_HEADER`);
//! 2. workload identity: `AZURE_FEDERATED_TOKEN_FILE` (+ `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`);
//! 3. a service principal: `AZURE_CLIENT_CERTIFICATE_PATH` or `AZURE_CLIENT_SECRET` (+
//!    `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`); both at once is refused as ambiguous;
//! 4. developer tools (`az login`, then `azd auth login`) when none of the above is set.
//!
//! The VM/container IMDS identity is used only when chosen
//! (`AZURE_CREDENTIAL=managed-identity` without `IDENTITY_ENDPOINT`): on a laptop, probing
//! 169.254.169.254 would only add a slow, confusing failure. A chosen credential that is incomplete fails start-up
//! naming the missing setting; one that fails at run time reports its own failure and is
//! never replaced by another.

use super::pkcs12;
use super::secret::Secret;
use crate::settings::{ConfigError, EnvSource};
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, SecretBytes, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::error::Error as StdError;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const AZURE_CREDENTIAL: &str = "AZURE_CREDENTIAL";
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const AZURE_CLIENT_CERTIFICATE_PATH: &str = "AZURE_CLIENT_CERTIFICATE_PATH";
pub const AZURE_CLIENT_CERTIFICATE_PASSWORD: &str = "AZURE_CLIENT_CERTIFICATE_PASSWORD";
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
pub const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
pub const IDENTITY_HEADER: &str = "IDENTITY_HEADER";

/// The largest service principal certificate file read (PEM or PKCS#12 are a few KiB).
const MAX_CERTIFICATE_FILE: u64 = 1 << 20;

/// The credential kinds `AZURE_CREDENTIAL` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ManagedIdentity,
    WorkloadIdentity,
    DeveloperTools,
    ClientCertificate,
    ClientSecret,
}

impl CredentialKind {
    pub const ALL: [Self; 5] = [
        Self::ManagedIdentity,
        Self::WorkloadIdentity,
        Self::DeveloperTools,
        Self::ClientCertificate,
        Self::ClientSecret,
    ];

    /// The setting's value for this kind (also what `/api/health` shows).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ManagedIdentity => "managed-identity",
            Self::WorkloadIdentity => "workload-identity",
            Self::DeveloperTools => "developer-tools",
            Self::ClientCertificate => "client-certificate",
            Self::ClientSecret => "client-secret",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(value))
    }
}

impl std::fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the chosen credential needs. Secrets are [`Secret`]s: compared, never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSettings {
    /// App Service / Functions (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`, read by the SDK) or,
    /// without them, the VM/container IMDS endpoint. `client_id` picks a user-assigned
    /// identity.
    ManagedIdentity {
        client_id: Option<String>,
        app_service: bool,
    },
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// Azure CLI, then Azure Developer CLI (the SDK's `DeveloperToolsCredential`).
    DeveloperTools,
    ClientCertificate {
        tenant_id: String,
        client_id: String,
        path: PathBuf,
        password: Option<Secret>,
    },
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
}

/// The credential chosen at start-up and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialConfig {
    pub settings: CredentialSettings,
    /// Why this credential: `AZURE_CREDENTIAL=client-secret`, or what `auto` found (and
    /// which other settings it left unused).
    pub reason: String,
    /// `AZURE_AUTHORITY_HOST`, when set: the Microsoft Entra authority for workload identity
    /// and service principals (unset: the public cloud's).
    pub authority_host: Option<String>,
}

impl CredentialConfig {
    /// Reads and checks the credential settings; a chosen credential that lacks one of its
    /// settings fails naming it.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let authority_host = authority_host(env)?;
        let (kind, reason) = match env.get(AZURE_CREDENTIAL).map(|v| v.trim().to_owned()) {
            None => auto(env)?,
            Some(v) if v.eq_ignore_ascii_case("auto") => auto(env)?,
            Some(v) => match CredentialKind::parse(&v) {
                Some(kind) => (kind, format!("{AZURE_CREDENTIAL}={kind}")),
                None => {
                    let names: Vec<&str> = CredentialKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(ConfigError::invalid(
                        AZURE_CREDENTIAL,
                        format!("{v:?} is not one of auto, {}", names.join(", ")),
                    ));
                }
            },
        };
        if env.get(AZURE_CLIENT_CERTIFICATE_PASSWORD).is_some()
            && env.get(AZURE_CLIENT_CERTIFICATE_PATH).is_none()
        {
            return Err(ConfigError::invalid(
                AZURE_CLIENT_CERTIFICATE_PASSWORD,
                format!("is only used with {AZURE_CLIENT_CERTIFICATE_PATH}, which is not set"),
            ));
        }
        let settings = settings_for(kind, &reason, env)?;
        Ok(Self {
            settings,
            reason,
            authority_host,
        })
    }

    pub fn kind(&self) -> CredentialKind {
        match self.settings {
            CredentialSettings::ManagedIdentity { .. } => CredentialKind::ManagedIdentity,
            CredentialSettings::WorkloadIdentity { .. } => CredentialKind::WorkloadIdentity,
            CredentialSettings::DeveloperTools => CredentialKind::DeveloperTools,
            CredentialSettings::ClientCertificate { .. } => CredentialKind::ClientCertificate,
            CredentialSettings::ClientSecret { .. } => CredentialKind::ClientSecret,
        }
    }

    /// The credential for people: its kind and the non-secret facts that identify it.
    pub fn describe(&self) -> String {
        let authority = self
            .authority_host
            .as_ref()
            .map(|h| format!(", authority {h}"))
            .unwrap_or_default();
        let what = match &self.settings {
            CredentialSettings::ManagedIdentity {
                client_id,
                app_service,
            } => {
                let which = client_id.as_ref().map_or_else(
                    || "system-assigned".to_owned(),
                    |c| format!("user-assigned, client id {c}"),
                );
                if *app_service {
                    format!("App Service managed identity via IDENTITY_ENDPOINT, {which}")
                } else {
                    format!("VM/container managed identity via IMDS (169.254.169.254), {which}")
                }
            }
            CredentialSettings::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => format!(
                "tenant {tenant_id}, client id {client_id}, token file {}{authority}",
                token_file.display()
            ),
            CredentialSettings::DeveloperTools => {
                "Azure CLI sign-in (az login), then Azure Developer CLI (azd auth login)".to_owned()
            }
            CredentialSettings::ClientCertificate {
                tenant_id,
                client_id,
                path,
                ..
            } => format!(
                "service principal, tenant {tenant_id}, client id {client_id}, certificate {}{authority}",
                path.display()
            ),
            CredentialSettings::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => format!("service principal, tenant {tenant_id}, client id {client_id}{authority}"),
        };
        format!("{} ({what})", self.kind())
    }

    /// Who needs a role assignment on a resource, in words (for a 403).
    pub fn principal(&self) -> String {
        match &self.settings {
            CredentialSettings::ManagedIdentity {
                client_id: Some(c), ..
            } => format!("the user-assigned managed identity {c}"),
            CredentialSettings::ManagedIdentity { .. } => "the app's managed identity".to_owned(),
            CredentialSettings::WorkloadIdentity { client_id, .. } => {
                format!("the workload identity's application {client_id}")
            }
            CredentialSettings::DeveloperTools => "the signed-in az/azd user".to_owned(),
            CredentialSettings::ClientCertificate { client_id, .. }
            | CredentialSettings::ClientSecret { client_id, .. } => {
                format!("the service principal {client_id}")
            }
        }
    }
}

fn auto(env: &dyn EnvSource) -> Result<(CredentialKind, String), ConfigError> {
    let has = |name: &str| env.get(name).is_some();
    let (kind, found) = if has(IDENTITY_ENDPOINT) {
        (
            CredentialKind::ManagedIdentity,
            "IDENTITY_ENDPOINT is set (App Service / Functions managed identity)",
        )
    } else if has(AZURE_FEDERATED_TOKEN_FILE) {
        (
            CredentialKind::WorkloadIdentity,
            "AZURE_FEDERATED_TOKEN_FILE is set (workload identity)",
        )
    } else if has(AZURE_CLIENT_CERTIFICATE_PATH) && has(AZURE_CLIENT_SECRET) {
        return Err(ConfigError::invalid(
            AZURE_CREDENTIAL,
            format!(
                "auto cannot choose: both {AZURE_CLIENT_CERTIFICATE_PATH} and \
                 {AZURE_CLIENT_SECRET} are set; set {AZURE_CREDENTIAL} to client-certificate \
                 or client-secret, or unset one of them"
            ),
        ));
    } else if has(AZURE_CLIENT_CERTIFICATE_PATH) {
        (
            CredentialKind::ClientCertificate,
            "AZURE_CLIENT_CERTIFICATE_PATH is set (service principal with a certificate)",
        )
    } else if has(AZURE_CLIENT_SECRET) {
        (
            CredentialKind::ClientSecret,
            "AZURE_CLIENT_SECRET is set (service principal with a secret)",
        )
    } else {
        (
            CredentialKind::DeveloperTools,
            "no managed identity (IDENTITY_ENDPOINT), workload identity \
             (AZURE_FEDERATED_TOKEN_FILE) or service principal (AZURE_CLIENT_CERTIFICATE_PATH, \
             AZURE_CLIENT_SECRET) is configured, so the developer tools' sign-in is used",
        )
    };
    // Settings that point at another credential are named, never used silently.
    let unused: Vec<&str> = [
        (IDENTITY_ENDPOINT, CredentialKind::ManagedIdentity),
        (AZURE_FEDERATED_TOKEN_FILE, CredentialKind::WorkloadIdentity),
        (
            AZURE_CLIENT_CERTIFICATE_PATH,
            CredentialKind::ClientCertificate,
        ),
        (AZURE_CLIENT_SECRET, CredentialKind::ClientSecret),
    ]
    .into_iter()
    .filter(|(name, k)| *k != kind && has(name))
    .map(|(name, _)| name)
    .collect();
    let mut reason = format!("{AZURE_CREDENTIAL}=auto: {found}");
    if !unused.is_empty() {
        reason.push_str(&format!(
            "; also set but not used: {} (set {AZURE_CREDENTIAL} to choose another credential)",
            unused.join(", ")
        ));
    }
    Ok((kind, reason))
}

/// An `AZURE_CLIENT_ID` value as given, or the error naming the setting when it is not a
/// client id (a GUID: hex digits and dashes).
pub(super) fn checked_client_id(value: Option<String>) -> Result<Option<String>, ConfigError> {
    if let Some(c) = &value {
        if !c.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '-') {
            return Err(ConfigError::invalid(
                AZURE_CLIENT_ID,
                format!("{c:?} is not a client id (a GUID)"),
            ));
        }
    }
    Ok(value)
}

fn settings_for(
    kind: CredentialKind,
    reason: &str,
    env: &dyn EnvSource,
) -> Result<CredentialSettings, ConfigError> {
    let required = |name: &'static str| {
        env.get(name)
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| ConfigError::invalid(name, format!("must be set for {kind} ({reason})")))
    };
    let client_id = |required_here: bool| -> Result<Option<String>, ConfigError> {
        let value = if required_here {
            Some(required(AZURE_CLIENT_ID)?)
        } else {
            env.get(AZURE_CLIENT_ID).map(|c| c.trim().to_owned())
        };
        checked_client_id(value)
    };
    let tenant_id = || -> Result<String, ConfigError> {
        let t = required(AZURE_TENANT_ID)?;
        // What the SDK accepts: a GUID or a domain name.
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(ConfigError::invalid(
                AZURE_TENANT_ID,
                format!(
                    "{t:?} is not a tenant id (a GUID or a domain such as contoso.onmicrosoft.com)"
                ),
            ));
        }
        Ok(t)
    };
    Ok(match kind {
        CredentialKind::ManagedIdentity => {
            let endpoint = env.get(IDENTITY_ENDPOINT).is_some();
            if endpoint && env.get(IDENTITY_HEADER).is_none() {
                // The SDK would silently use IMDS instead: refuse the half-set environment.
                return Err(ConfigError::invalid(
                    IDENTITY_HEADER,
                    "must be set with IDENTITY_ENDPOINT (App Service managed identity)",
                ));
            }
            CredentialSettings::ManagedIdentity {
                client_id: client_id(false)?,
                app_service: endpoint,
            }
        }
        CredentialKind::WorkloadIdentity => CredentialSettings::WorkloadIdentity {
            tenant_id: tenant_id()?,
            client_id: client_id(true)?.unwrap_or_default(),
            token_file: PathBuf::from(required(AZURE_FEDERATED_TOKEN_FILE)?),
        },
        CredentialKind::DeveloperTools => CredentialSettings::DeveloperTools,
        CredentialKind::ClientCertificate => CredentialSettings::ClientCertificate {
            tenant_id: tenant_id()?,
            client_id: client_id(true)?.unwrap_or_default(),
            path: PathBuf::from(required(AZURE_CLIENT_CERTIFICATE_PATH)?),
            password: env.get(AZURE_CLIENT_CERTIFICATE_PASSWORD).map(Secret::new),
        },
        CredentialKind::ClientSecret => CredentialSettings::ClientSecret {
            tenant_id: tenant_id()?,
            client_id: client_id(true)?.unwrap_or_default(),
            secret: Secret::new(
                env.get(AZURE_CLIENT_SECRET)
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            AZURE_CLIENT_SECRET,
                            format!("must be set for {kind} ({reason})"),
                        )
                    })?
                    .trim(),
            ),
        },
    })
}

fn authority_host(env: &dyn EnvSource) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.get(AZURE_AUTHORITY_HOST) else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(value.trim()).map_err(|e| {
        ConfigError::invalid(
            AZURE_AUTHORITY_HOST,
            format!("{value:?} is not a URL ({e})"),
        )
    })?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            AZURE_AUTHORITY_HOST,
            format!("{value:?} must be an https:// URL, e.g. https://login.microsoftonline.com"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(ConfigError::invalid(
            AZURE_AUTHORITY_HOST,
            "must be just the authority's address (no user, password or query)",
        ));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_owned()))
}

/// Why the credential gave no token: which credential, what failed, what to do. Safe to show
/// to clients and to log: the SDK's messages name settings, tenants, files and AADSTS codes,
/// never secrets or tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    /// [`CredentialConfig::describe`].
    pub credential: String,
    /// The SDK error's source chain on one line.
    pub reason: String,
    /// What to do, when the failure is one we recognise.
    pub hint: Option<String>,
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "credential {} could not get a token: {}",
            self.credential, self.reason
        )?;
        if let Some(h) = &self.hint {
            write!(f, " -> {h}")?;
        }
        Ok(())
    }
}

impl StdError for CredentialError {}

impl CredentialError {
    /// The `CredentialError` somewhere in `e`'s source chain (the SDK wraps what a
    /// credential returns, e.g. in "non-transport error occurred which will not be retried").
    pub fn find<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Self> {
        let mut current = Some(e);
        while let Some(err) = current {
            if let Some(found) = err.downcast_ref::<Self>() {
                return Some(found);
            }
            current = err.source();
        }
        None
    }
}

/// The configured credential, as the SDK's `TokenCredential`. The SDK credential is built on
/// the first token request (and again after a failed build, e.g. a workload identity token
/// file that is not mounted yet), so building never fails and every failure arrives, as a
/// [`CredentialError`] in the error's source chain, where the token was needed.
pub struct AzureCredential {
    config: CredentialConfig,
    client_options: ClientOptions,
    /// For the managed-identity endpoint: never through a proxy (its request carries the
    /// `X-IDENTITY-HEADER` secret).
    identity_options: ClientOptions,
    built: Mutex<Option<Arc<dyn TokenCredential>>>,
}

impl std::fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureCredential")
            .field("credential", &self.config.describe())
            .finish_non_exhaustive()
    }
}

impl AzureCredential {
    /// The credential for `config`; `client_options` (transport, retries) go to the SDK
    /// credentials that call Microsoft Entra, `identity_options` to the managed-identity
    /// credential. Logs which credential and why.
    pub fn new(
        config: &CredentialConfig,
        client_options: ClientOptions,
        identity_options: ClientOptions,
    ) -> Arc<Self> {
        tracing::info!(
            credential = config.kind().as_str(),
            detail = %config.describe(),
            reason = %config.reason,
            "Azure credential chosen"
        );
        Arc::new(Self {
            config: config.clone(),
            client_options,
            identity_options,
            built: Mutex::new(None),
        })
    }

    pub fn config(&self) -> &CredentialConfig {
        &self.config
    }

    fn sdk_credential(&self) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = built.as_ref() {
            return Ok(c.clone());
        }
        let credential = build(
            &self.config,
            self.client_options.clone(),
            self.identity_options.clone(),
        )?;
        *built = Some(credential.clone());
        Ok(credential)
    }

    /// `e` (an SDK credential error) as a [`CredentialError`].
    pub fn explain(&self, e: &(dyn StdError + 'static)) -> CredentialError {
        explain(&self.config, e)
    }
}

#[async_trait::async_trait]
impl TokenCredential for AzureCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let credential = self
            .sdk_credential()
            .map_err(|e| azure_core::Error::new(ErrorKind::Credential, e))?;
        credential
            .get_token(scopes, options)
            .await
            .map_err(|e| azure_core::Error::new(ErrorKind::Credential, self.explain(&e)))
    }
}

/// Builds the SDK credential. Reads the service principal's certificate file, if any.
fn build(
    config: &CredentialConfig,
    client_options: ClientOptions,
    identity_options: ClientOptions,
) -> Result<Arc<dyn TokenCredential>, CredentialError> {
    let sdk = |e: azure_core::Error| explain(config, &e);
    // The authority host always comes from the typed setting, never from the SDK's own read
    // of the process environment: `func start` passes local.settings.json's empty
    // "AZURE_AUTHORITY_HOST": "" through, which the SDK would take as an invalid URL.
    let mut client_options = client_options;
    client_options.cloud = Some(Arc::new(match &config.authority_host {
        Some(host) => {
            let mut custom = CustomConfiguration::default();
            custom.authority_host.clone_from(host);
            CloudConfiguration::from(custom)
        }
        None => CloudConfiguration::AzurePublic,
    }));
    Ok(match &config.settings {
        CredentialSettings::ManagedIdentity { client_id, .. } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options: identity_options,
            }))
            .map_err(sdk)?
        }
        CredentialSettings::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options },
            client_id: Some(client_id.clone()),
            tenant_id: Some(tenant_id.clone()),
            token_file_path: Some(token_file.clone()),
        }))
        .map_err(sdk)?,
        CredentialSettings::DeveloperTools => DeveloperToolsCredential::new(None).map_err(sdk)?,
        CredentialSettings::ClientCertificate {
            tenant_id,
            client_id,
            path,
            password,
        } => {
            let der = certificate_as_pkcs12(path, password.as_ref()).map_err(|reason| {
                CredentialError {
                    credential: config.describe(),
                    hint: Some(format!(
                        "{AZURE_CLIENT_CERTIFICATE_PATH} must name a readable PEM (certificate \
                         and unencrypted RSA key, as `az ad sp create-for-rbac --create-cert` \
                         writes) or PKCS#12 file ({AZURE_CLIENT_CERTIFICATE_PASSWORD} for its \
                         password)"
                    )),
                    reason,
                }
            })?;
            ClientCertificateCredential::new(
                tenant_id.clone(),
                client_id.clone(),
                SecretBytes::new(der),
                Some(ClientCertificateCredentialOptions {
                    client_options,
                    password: None,
                }),
            )
            .map_err(sdk)?
        }
        CredentialSettings::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => ClientSecretCredential::new(
            tenant_id,
            client_id.clone(),
            azure_core::credentials::Secret::new(secret.expose().to_owned()),
            Some(ClientSecretCredentialOptions { client_options }),
        )
        .map_err(sdk)?,
    })
}

/// The service principal's certificate file (PEM or PKCS#12, even legacy) re-packed as the
/// PKCS#12 (empty password, RSA key) that the SDK's `ClientCertificateCredential` parses.
/// The error text names the file, never the password.
fn certificate_as_pkcs12(path: &Path, password: Option<&Secret>) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CERTIFICATE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    if bytes.len() as u64 > MAX_CERTIFICATE_FILE {
        return Err(format!("{} is larger than 1 MiB", path.display()));
    }
    let material = pkcs12::from_file_bytes(&bytes, password.map_or("", Secret::expose))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let failed = |e: openssl::error::ErrorStack| format!("cannot re-pack {}: {e}", path.display());
    let key_pem = material.key_pkcs8_pem().map_err(failed)?;
    let key = openssl::pkey::PKey::private_key_from_pem(&key_pem).map_err(failed)?;
    if key.id() != openssl::pkey::Id::RSA {
        return Err(format!(
            "{}: the key is not RSA (Microsoft Entra certificate credentials need an RSA key)",
            path.display()
        ));
    }
    let mut chain = openssl::stack::Stack::new().map_err(failed)?;
    for c in &material.chain {
        chain.push(c.clone()).map_err(failed)?;
    }
    let mut builder = openssl::pkcs12::Pkcs12::builder();
    builder.name("").pkey(&key).cert(&material.leaf);
    if !material.chain.is_empty() {
        builder.ca(chain);
    }
    let p12 = builder.build2("").map_err(failed)?;
    p12.to_der().map_err(failed)
}

/// Explains an SDK credential error: the chain on one line plus what to do.
pub fn explain(config: &CredentialConfig, e: &(dyn StdError + 'static)) -> CredentialError {
    if let Some(already) = CredentialError::find(e) {
        return already.clone();
    }
    let reason = one_line(&chain(e));
    CredentialError {
        credential: config.describe(),
        hint: hint(config, &reason),
        reason,
    }
}

/// Every distinct message in the chain, minus the SDK's generic wrappers and links.
fn chain(e: &(dyn StdError + 'static)) -> String {
    const NOISE: [&str; 2] = [
        "non-transport error occurred which will not be retried",
        "retry policy expired and the request will no longer be retried",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    while let Some(err) = current {
        // Without the SDK's troubleshooting-link lines and repeated lines (an aggregate
        // appends each error's chain again after its link).
        let mut lines: Vec<&str> = Vec::new();
        let full = err.to_string();
        for l in full.lines().map(str::trim) {
            if !l.is_empty() && !l.starts_with("To troubleshoot, visit ") && !lines.contains(&l) {
                lines.push(l);
            }
        }
        let text = lines.join("\n");
        if !text.is_empty()
            && !NOISE.contains(&text.as_str())
            && !parts.iter().any(|p| p.contains(&text))
        {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// One line, control characters as spaces, runs of spaces collapsed, at most 1000 chars.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    let out = out.trim_end().to_owned();
    if out.chars().count() > 1000 {
        out.chars().take(1000).collect::<String>() + "…"
    } else {
        out
    }
}

/// What to do about a failure we recognise (AADSTS codes per Microsoft Entra's error
/// reference; CLI texts as the Azure CLI prints them).
fn hint(config: &CredentialConfig, reason: &str) -> Option<String> {
    let has = |needle: &str| reason.contains(needle);
    let (tenant, client) = match &config.settings {
        CredentialSettings::WorkloadIdentity {
            tenant_id,
            client_id,
            ..
        }
        | CredentialSettings::ClientCertificate {
            tenant_id,
            client_id,
            ..
        }
        | CredentialSettings::ClientSecret {
            tenant_id,
            client_id,
            ..
        } => (tenant_id.as_str(), client_id.as_str()),
        _ => ("", ""),
    };
    let developer = config.kind() == CredentialKind::DeveloperTools;
    let text = if has("AADSTS90002") {
        if developer {
            "the tenant was not found: run `az login --tenant <your tenant id>`".to_owned()
        } else {
            format!(
                "tenant {tenant:?} was not found: check {AZURE_TENANT_ID} (a directory id or \
                 domain of this cloud; {AZURE_AUTHORITY_HOST} selects sovereign clouds)"
            )
        }
    } else if has("AADSTS700016") {
        format!(
            "application {client} is not registered in tenant {tenant}: check {AZURE_CLIENT_ID} \
             and {AZURE_TENANT_ID}"
        )
    } else if has("AADSTS7000215") || has("AADSTS7000222") {
        format!(
            "the client secret is wrong or expired: create a new one (`az ad app credential \
             reset --id {client}`) and set {AZURE_CLIENT_SECRET} to its value (not its id)"
        )
    } else if has("AADSTS700027") {
        format!(
            "the certificate in {AZURE_CLIENT_CERTIFICATE_PATH} is not registered on \
             application {client}: upload its public part (`az ad app credential reset --id \
             {client} --cert @cert.pem --append`)"
        )
    } else if has("AADSTS70021") || has("AADSTS700211") || has("AADSTS700213") {
        format!(
            "no federated credential of application {client} matches the token in \
             {AZURE_FEDERATED_TOKEN_FILE}: check the federated credential's issuer (the \
             cluster's OIDC issuer) and subject (system:serviceaccount:<namespace>:<name>)"
        )
    } else if has("failed to read federated token") {
        format!(
            "{AZURE_FEDERATED_TOKEN_FILE} cannot be read: check the path and that the pod runs \
             with the workload identity service account and the label \
             azure.workload.identity/use: \"true\" (the webhook mounts the token)"
        )
    } else if has("AADSTS700082")
        || has("AADSTS70043")
        || has("AADSTS50173")
        || has("AADSTS70008")
        || has("Interactive authentication is needed")
    {
        "the Azure CLI session has expired: run `az login` again".to_owned()
    } else if has("Please run 'az login'") || has("azd auth login") {
        "you are not signed in: run `az login` (and `az account set --subscription <id>`)"
            .to_owned()
    } else if developer && (has("not found on PATH") || has("wasn't found on PATH")) {
        format!(
            "install the Azure CLI and run `az login`, or set {AZURE_CREDENTIAL} to the \
             credential this machine has (on App Service or Container Apps: turn on the app's \
             managed identity, which sets IDENTITY_ENDPOINT)"
        )
    } else if matches!(
        config.settings,
        CredentialSettings::ManagedIdentity {
            app_service: true,
            ..
        }
    ) {
        "check that the app has a managed identity (`az functionapp identity assign`) and, for \
         a user-assigned one, that AZURE_CLIENT_ID is its client id"
            .to_owned()
    } else if matches!(
        config.settings,
        CredentialSettings::ManagedIdentity {
            app_service: false,
            ..
        }
    ) {
        "without IDENTITY_ENDPOINT the managed identity comes from the IMDS endpoint, which \
         only Azure VMs and containers with an identity have; elsewhere choose another \
         AZURE_CREDENTIAL"
            .to_owned()
    } else if has("error sending request") || has("Connection refused") || has("dns error") {
        format!(
            "Microsoft Entra ID could not be reached{}: check the network",
            config
                .authority_host
                .as_ref()
                .map(|h| format!(" at {h} ({AZURE_AUTHORITY_HOST})"))
                .unwrap_or_default()
        )
    } else {
        return None;
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    fn chosen(pairs: &[(&'static str, &'static str)]) -> CredentialConfig {
        CredentialConfig::from_env(&env(pairs)).unwrap()
    }

    fn refused(pairs: &[(&'static str, &'static str)]) -> ConfigError {
        CredentialConfig::from_env(&env(pairs)).unwrap_err()
    }

    #[test]
    fn auto_prefers_the_app_service_managed_identity_and_names_what_it_leaves_unused() {
        let c = chosen(&[
            (IDENTITY_ENDPOINT, "http://127.0.0.1:41000/msi/token"),
            (IDENTITY_HEADER, "h"),
            (AZURE_CLIENT_SECRET, "s3cr3t-value"),
            (AZURE_TENANT_ID, TENANT),
        ]);
        assert_eq!(c.kind(), CredentialKind::ManagedIdentity);
        assert!(
            c.reason.contains("IDENTITY_ENDPOINT is set"),
            "{}",
            c.reason
        );
        assert!(
            c.reason
                .contains("also set but not used: AZURE_CLIENT_SECRET"),
            "{}",
            c.reason
        );
        assert!(c.describe().contains("App Service managed identity"));
        assert!(!format!("{c:?}{}{}", c.describe(), c.reason).contains("s3cr3t-value"));
    }

    #[test]
    fn auto_picks_workload_identity_before_a_service_principal() {
        let c = chosen(&[
            (
                AZURE_FEDERATED_TOKEN_FILE,
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
            (AZURE_CLIENT_ID, CLIENT),
            (AZURE_TENANT_ID, TENANT),
            (AZURE_CLIENT_SECRET, "x"),
        ]);
        assert_eq!(c.kind(), CredentialKind::WorkloadIdentity);
        assert!(c.reason.contains("AZURE_CLIENT_SECRET"), "{}", c.reason);
    }

    #[test]
    fn auto_picks_a_service_principal_by_certificate_or_secret_but_never_both() {
        let base = [(AZURE_CLIENT_ID, CLIENT), (AZURE_TENANT_ID, TENANT)];
        let mut cert = base.to_vec();
        cert.push((AZURE_CLIENT_CERTIFICATE_PATH, "/sp.pem"));
        assert_eq!(chosen(&cert).kind(), CredentialKind::ClientCertificate);
        let mut secret = base.to_vec();
        secret.push((AZURE_CLIENT_SECRET, "x"));
        assert_eq!(chosen(&secret).kind(), CredentialKind::ClientSecret);
        let mut both = cert.clone();
        both.push((AZURE_CLIENT_SECRET, "x"));
        let e = refused(&both);
        assert_eq!(e.setting(), AZURE_CREDENTIAL);
        assert!(e.to_string().contains("cannot choose"), "{e}");
        // An explicit choice settles it.
        both.push((AZURE_CREDENTIAL, "client-secret"));
        assert_eq!(chosen(&both).kind(), CredentialKind::ClientSecret);
    }

    #[test]
    fn auto_uses_the_developer_tools_only_when_nothing_else_is_configured() {
        let c = chosen(&[]);
        assert_eq!(c.kind(), CredentialKind::DeveloperTools);
        assert!(c
            .reason
            .starts_with("AZURE_CREDENTIAL=auto: no managed identity"));
        // A client id alone (a user-assigned identity elsewhere) does not change that.
        assert_eq!(
            chosen(&[(AZURE_CLIENT_ID, CLIENT)]).kind(),
            CredentialKind::DeveloperTools
        );
    }

    #[test]
    fn an_incomplete_identity_fails_start_up_instead_of_falling_through() {
        let e = refused(&[
            (AZURE_FEDERATED_TOKEN_FILE, "/token"),
            (AZURE_CLIENT_ID, CLIENT),
        ]);
        assert_eq!(e.setting(), AZURE_TENANT_ID);
        assert!(e.to_string().contains("workload-identity"), "{e}");
        let e = refused(&[(AZURE_CLIENT_SECRET, "x"), (AZURE_TENANT_ID, TENANT)]);
        assert_eq!(e.setting(), AZURE_CLIENT_ID);
        let e = refused(&[(IDENTITY_ENDPOINT, "http://127.0.0.1:1/")]);
        assert_eq!(e.setting(), IDENTITY_HEADER);
        let e = refused(&[(AZURE_CREDENTIAL, "client-certificate")]);
        assert_eq!(e.setting(), AZURE_TENANT_ID);
        let e = refused(&[
            (AZURE_CREDENTIAL, "client-certificate"),
            (AZURE_TENANT_ID, TENANT),
            (AZURE_CLIENT_ID, CLIENT),
        ]);
        assert_eq!(e.setting(), AZURE_CLIENT_CERTIFICATE_PATH);
    }

    #[test]
    fn explicit_managed_identity_without_the_app_service_endpoint_means_imds() {
        let c = chosen(&[(AZURE_CREDENTIAL, "Managed-Identity")]);
        assert_eq!(
            c.settings,
            CredentialSettings::ManagedIdentity {
                client_id: None,
                app_service: false
            }
        );
        assert!(c.describe().contains("IMDS"));
        assert_eq!(c.reason, "AZURE_CREDENTIAL=managed-identity");
    }

    #[test]
    fn an_empty_authority_host_from_local_settings_means_the_public_cloud() {
        assert_eq!(chosen(&[(AZURE_AUTHORITY_HOST, "")]).authority_host, None);
        let c = chosen(&[(AZURE_AUTHORITY_HOST, "https://login.microsoftonline.us/")]);
        assert_eq!(
            c.authority_host.as_deref(),
            Some("https://login.microsoftonline.us")
        );
    }

    #[test]
    fn bad_values_fail_start_up_naming_the_setting() {
        for (pairs, setting) in [
            (vec![(AZURE_CREDENTIAL, "azure-cli")], AZURE_CREDENTIAL),
            (
                vec![(AZURE_AUTHORITY_HOST, "http://login.example")],
                AZURE_AUTHORITY_HOST,
            ),
            (
                vec![(AZURE_CLIENT_CERTIFICATE_PASSWORD, "pw")],
                AZURE_CLIENT_CERTIFICATE_PASSWORD,
            ),
            (
                vec![
                    (AZURE_CLIENT_SECRET, "x"),
                    (AZURE_CLIENT_ID, CLIENT),
                    (AZURE_TENANT_ID, "not a tenant"),
                ],
                AZURE_TENANT_ID,
            ),
            (
                vec![
                    (AZURE_CREDENTIAL, "managed-identity"),
                    (AZURE_CLIENT_ID, "me"),
                ],
                AZURE_CLIENT_ID,
            ),
        ] {
            let e = CredentialConfig::from_env(&pairs.iter().copied().collect::<HashMap<_, _>>())
                .unwrap_err();
            assert_eq!(e.setting(), setting, "{pairs:?}: {e}");
        }
    }

    #[test]
    fn the_client_secret_and_certificate_password_are_never_printed() {
        let c = chosen(&[
            (AZURE_CREDENTIAL, "client-certificate"),
            (AZURE_CLIENT_CERTIFICATE_PATH, "/sp.pfx"),
            (AZURE_CLIENT_CERTIFICATE_PASSWORD, "pfx-password-value"),
            (AZURE_CLIENT_SECRET, "client-secret-value"),
            (AZURE_CLIENT_ID, CLIENT),
            (AZURE_TENANT_ID, TENANT),
        ]);
        let shown = format!("{c:?} {} {}", c.describe(), c.reason);
        assert!(!shown.contains("pfx-password-value"), "{shown}");
        assert!(!shown.contains("client-secret-value"), "{shown}");
    }

    #[test]
    fn a_wrapped_sdk_failure_is_explained_from_its_source_chain() {
        let c = chosen(&[
            (AZURE_CLIENT_SECRET, "x"),
            (AZURE_CLIENT_ID, CLIENT),
            (AZURE_TENANT_ID, "contoso.example"),
        ]);
        let inner = azure_core::Error::with_message(
            ErrorKind::Credential,
            "ClientSecretCredential authentication failed. AADSTS90002: Tenant \
             'contoso.example' not found.\nTo troubleshoot, visit \
             https://aka.ms/azsdk/rust/identity/troubleshoot#client-secret",
        );
        let outer = inner.with_context("non-transport error occurred which will not be retried");
        let e = explain(&c, &outer);
        assert!(e
            .reason
            .starts_with("ClientSecretCredential authentication failed. AADSTS90002"));
        assert!(!e.reason.contains("non-transport"), "{}", e.reason);
        assert!(e
            .hint
            .as_deref()
            .unwrap_or_default()
            .contains(AZURE_TENANT_ID));
        assert!(
            e.to_string().starts_with("credential client-secret ("),
            "{e}"
        );
        // Wrapped again by the SDK, the explanation is found, not re-derived.
        let rewrapped = azure_core::Error::new(ErrorKind::Credential, e.clone())
            .with_context("non-transport error occurred which will not be retried");
        assert_eq!(CredentialError::find(&rewrapped), Some(&e));
    }
}
