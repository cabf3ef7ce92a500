//! Reading the outbound certificate from Key Vault: the certificate's backing secret, read
//! with the official SDK and the credential `AZURE_CREDENTIAL` chooses (see `credential`);
//! and, with the same reader, the text of other secrets (the partners document, which the
//! host hands to `inbound::partner_source`).
//!
//! Owns: the SDK objects (credential and `SecretClient`, built once and reused so the token
//! cache works), the bounded retry policy, the content types, and turning SDK errors into
//! [`KeyVaultError`]s that carry a status but never a token or secret value.
//! Must not: parse certificates (see `pkcs12`) or decide fallbacks (see `identity`).
//!
//! The SDK reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` (and runs `az` from `PATH`)
//! itself; everything else comes from the typed settings. The vault and Microsoft Entra are
//! reached through the configured proxy, if any; the managed-identity endpoint never is
//! (its transport is [`identity_client`]).

use super::client::{azure_client, identity_client, ClientBuildError};
use super::config::{KeyVaultConfig, NetworkOverrides};
use super::credential::{AzureCredential, CredentialConfig, CredentialError};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, FixedRetryOptions, RetryOptions, Transport};
use azure_security_keyvault_secrets::models::{Secret, SecretClientGetSecretOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Duration;

/// Why Key Vault did not give us the certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyVaultError {
    #[error("not authorized (HTTP 401)")]
    Unauthorized,
    #[error("access denied (HTTP 403): {principal} needs Key Vault Secrets User on {vault}")]
    Forbidden { principal: String, vault: String },
    #[error("certificate not found (HTTP 404)")]
    NotFound,
    #[error("Key Vault answered HTTP {status}")]
    Status { status: u16 },
    #[error("managed identity token request failed ({reason})")]
    ManagedIdentity { reason: String },
    /// The credential gave no token: which one, why, what to do.
    #[error("{0}")]
    Credential(CredentialError),
    #[error("cannot reach Key Vault ({reason})")]
    Unreachable { reason: String },
    #[error("timed out after {seconds}s")]
    Timeout { seconds: u64 },
    #[error("the secret has no value (is the certificate's key exportable?)")]
    EmptySecret,
    #[error("unsupported content type {content_type:?}")]
    UnsupportedContentType { content_type: String },
    #[error("the secret value is not base64 PKCS#12")]
    BadBase64,
    #[error("{reason}")]
    Other { reason: String },
}

/// What the vault returned: the certificate bytes in one of the two formats.
#[derive(Clone)]
pub enum SecretContent {
    /// `application/x-pkcs12` (or no content type): DER PKCS#12, empty password.
    Pkcs12(Vec<u8>),
    /// `application/x-pem-file`: PEM with the key.
    Pem(Vec<u8>),
}

impl std::fmt::Debug for SecretContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pkcs12(b) => write!(f, "Pkcs12({} bytes)", b.len()),
            Self::Pem(b) => write!(f, "Pem({} bytes)", b.len()),
        }
    }
}

/// A fetched secret: content plus the secret id (which names the version).
#[derive(Debug, Clone)]
pub struct FetchedSecret {
    pub content: SecretContent,
    /// The secret id URL, `https://<vault>/secrets/<name>/<version>` (no secret in it).
    pub id: Option<String>,
}

/// A reusable reader for one certificate.
pub struct KeyVaultReader {
    config: KeyVaultConfig,
    timeout: Duration,
    client: SecretClient,
}

impl std::fmt::Debug for KeyVaultReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultReader")
            .field("vault_url", &self.config.vault_url)
            .field("certificate_name", &self.config.certificate_name)
            .finish_non_exhaustive()
    }
}

impl KeyVaultReader {
    /// Builds the credential and client. `timeout` bounds each fetch.
    pub fn new(
        config: &KeyVaultConfig,
        timeout: Duration,
        overrides: &NetworkOverrides,
    ) -> Result<Self, KeyVaultError> {
        let other = |reason: String| KeyVaultError::Other { reason };
        let transport = azure_client(timeout, &config.proxy, overrides)
            .map_err(|ClientBuildError { reason }| other(reason))?;
        let identity_transport = identity_client(timeout, overrides)
            .map_err(|ClientBuildError { reason }| other(reason))?;
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(transport))),
            // GETs are safe to retry, but a few quick tries only: the SDK's default
            // (exponential, minutes) would hide a failure far beyond any caller's patience.
            retry: RetryOptions::fixed(FixedRetryOptions {
                delay: azure_core::time::Duration::milliseconds(300),
                max_retries: 2,
                max_total_elapsed: azure_core::time::Duration::seconds(5),
            }),
            ..Default::default()
        };
        // The managed-identity endpoint is never proxied: its request carries the
        // X-IDENTITY-HEADER secret.
        let identity_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(identity_transport))),
            ..client_options.clone()
        };
        let credential =
            AzureCredential::new(&config.credential, client_options.clone(), identity_options);
        let client = SecretClient::new(
            &config.vault_url,
            credential,
            Some(SecretClientOptions {
                client_options,
                // Keep the challenge-resource check on: the vault's 401 challenge must name
                // a resource whose host the vault's host ends with.
                verify_challenge_resource: Some(true),
                ..Default::default()
            }),
        )
        .map_err(|e| other(short(&e.to_string())))?;
        Ok(Self {
            config: config.clone(),
            timeout,
            client,
        })
    }

    /// Fetches the certificate's backing secret, bounded by the timeout.
    pub async fn fetch(&self) -> Result<FetchedSecret, KeyVaultError> {
        let options = SecretClientGetSecretOptions {
            secret_version: self.config.version.clone(),
            ..Default::default()
        };
        let secret = self
            .get(&self.config.certificate_name, Some(options))
            .await?;
        let value = secret
            .value
            .filter(|v| !v.is_empty())
            .ok_or(KeyVaultError::EmptySecret)?;
        let content = match secret.content_type.as_deref().map(str::trim) {
            None | Some("") | Some("application/x-pkcs12") => {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .map_err(|_| KeyVaultError::BadBase64)?;
                SecretContent::Pkcs12(der)
            }
            Some("application/x-pem-file") => SecretContent::Pem(value.into_bytes()),
            Some(other) => {
                return Err(KeyVaultError::UnsupportedContentType {
                    content_type: other.chars().take(100).collect(),
                })
            }
        };
        Ok(FetchedSecret {
            content,
            id: secret.id,
        })
    }
}

impl KeyVaultReader {
    /// Fetches the latest version of the secret `name` as text (any content type), bounded
    /// by the timeout: for secrets that are documents (the partners document), not
    /// certificates. The value is returned, never logged.
    pub async fn fetch_text(&self, name: &str) -> Result<String, KeyVaultError> {
        self.get(name, None)
            .await?
            .value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| KeyVaultError::Other {
                reason: "the secret has no value".to_owned(),
            })
    }

    /// The secret `name` (a version given in `options`, else the latest), bounded by the
    /// timeout, failures mapped to what the caller can act on.
    async fn get(
        &self,
        name: &str,
        options: Option<SecretClientGetSecretOptions<'_>>,
    ) -> Result<Secret, KeyVaultError> {
        let call = async { self.client.get_secret(name, options).await?.into_model() };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(KeyVaultError::Timeout {
                seconds: self.timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(map_error(
                &e,
                &self.config.vault_url,
                &self.config.credential,
            )),
            Ok(Ok(secret)) => Ok(secret),
        }
    }
}

/// SDK error → [`KeyVaultError`], keeping statuses, dropping bodies.
fn map_error(e: &azure_core::Error, vault: &str, credential: &CredentialConfig) -> KeyVaultError {
    if let Some(c) = CredentialError::find(e) {
        return KeyVaultError::Credential(c.clone());
    }
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => match u16::from(*status) {
            401 => KeyVaultError::Unauthorized,
            403 => KeyVaultError::Forbidden {
                principal: credential.principal(),
                vault: vault.to_owned(),
            },
            404 => KeyVaultError::NotFound,
            s => KeyVaultError::Status { status: s },
        },
        ErrorKind::Credential => KeyVaultError::ManagedIdentity {
            reason: short(&e.to_string()),
        },
        ErrorKind::Connection | ErrorKind::Io => KeyVaultError::Unreachable {
            reason: short(&error_chain(e)),
        },
        _ => KeyVaultError::Other {
            reason: short(&error_chain(e)),
        },
    }
}

fn error_chain(e: &azure_core::Error) -> String {
    super::client::chain_text(e)
}

/// One line, bounded, URLs redacted: SDK messages can be long and multi-line.
fn short(s: &str) -> String {
    let line: String = super::redact::urls_in(s)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() > 300 {
        line.chars().take(300).collect::<String>() + "…"
    } else {
        line
    }
}
