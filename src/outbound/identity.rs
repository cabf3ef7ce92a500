//! The app's own client identity and where it comes from: Key Vault, then a file
//! (`OUTBOUND_CLIENT_CERT_PATH`, or App Service's `/var/ssl/private/<THUMBPRINT>.p12`).
//!
//! Owns: the source order, the fallback from Key Vault to the file (with a warning naming
//! both), rejecting expired certificates, and the "what was tried" summary of a failure.
//! Must not: build HTTP clients, schedule refreshes, or log secrets (passwords, keys and
//! secret values never leave `KeyMaterial` / `Secret`).

use super::config::{FileConfig, OutboundConfig, Secret};
use super::key_vault::{KeyVaultError, KeyVaultReader, SecretContent};
use super::pkcs12::{self, KeyMaterial, KeyMaterialError};
use std::path::{Path, PathBuf};

/// Which kind of source an identity came from (`source` in answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    KeyVault,
    File,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyVault => "keyVault",
            Self::File => "file",
        }
    }
}

/// A loaded identity: the key material plus where it came from.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub material: KeyMaterial,
    pub source: SourceKind,
    /// Human-readable origin: the Key Vault secret id or the file path.
    pub origin: String,
}

impl ClientIdentity {
    pub fn thumbprint(&self) -> &str {
        &self.material.thumbprint
    }

    pub fn not_after(&self) -> i64 {
        self.material.not_after
    }
}

/// One source, ready to load. All sources produce the same [`ClientIdentity`].
#[derive(Debug)]
pub enum IdentitySource {
    KeyVault {
        reader: Box<KeyVaultReader>,
        description: String,
    },
    File {
        path: PathBuf,
        password: Option<Secret>,
    },
    AppServiceThumbprint {
        dir: PathBuf,
        thumbprint: String,
    },
}

/// Why one source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    KeyVault(#[from] KeyVaultError),
    #[error("file not found")]
    FileMissing,
    #[error("cannot read the file ({reason})")]
    FileUnreadable { reason: String },
    #[error("{0}")]
    Material(#[from] KeyMaterialError),
    #[error("certificate {thumbprint} expired at {not_after}")]
    Expired {
        thumbprint: String,
        not_after: String,
    },
}

/// One failed source: what it was and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// E.g. `Key Vault https://v.vault.azure.net certificate "c"` or
    /// `OUTBOUND_CLIENT_CERT_PATH /x.pfx`.
    pub source: String,
    pub error: SourceError,
}

/// Every source failed (or none is configured). `Display` is safe for clients: settings,
/// paths and statuses, never secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    pub attempts: Vec<Attempt>,
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.attempts.is_empty() {
            return f.write_str(
                "no outbound client certificate is configured (set KEY_VAULT_URL and \
                 OUTBOUND_CLIENT_CERT_NAME, OUTBOUND_CLIENT_CERT_PATH, or \
                 OUTBOUND_CLIENT_CERT_THUMBPRINT)",
            );
        }
        f.write_str("no outbound client certificate could be loaded: ")?;
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", a.source, a.error)?;
        }
        Ok(())
    }
}

impl IdentitySource {
    /// The configured sources, in order: Key Vault, then the file. A Key Vault source that
    /// cannot even be set up becomes a failed attempt instead.
    pub fn from_config(config: &OutboundConfig) -> (Vec<Self>, Vec<Attempt>) {
        let mut sources = Vec::new();
        let mut setup_failures = Vec::new();
        if let Some(kv) = &config.key_vault {
            let description = format!(
                "Key Vault {} certificate {:?}{}",
                kv.vault_url,
                kv.certificate_name,
                kv.version
                    .as_ref()
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default()
            );
            match KeyVaultReader::new(kv, config.timeout, &config.overrides) {
                Ok(reader) => sources.push(Self::KeyVault {
                    reader: Box::new(reader),
                    description,
                }),
                Err(error) => setup_failures.push(Attempt {
                    source: description,
                    error: error.into(),
                }),
            }
        }
        match &config.file {
            Some(FileConfig::Path { path, password }) => sources.push(Self::File {
                path: path.clone(),
                password: password.clone(),
            }),
            Some(FileConfig::Thumbprint { dir, thumbprint }) => {
                sources.push(Self::AppServiceThumbprint {
                    dir: dir.clone(),
                    thumbprint: thumbprint.clone(),
                })
            }
            None => {}
        }
        (sources, setup_failures)
    }

    /// What this source is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::KeyVault { description, .. } => description.clone(),
            Self::File { path, .. } => format!("OUTBOUND_CLIENT_CERT_PATH {}", path.display()),
            Self::AppServiceThumbprint { dir, thumbprint } => format!(
                "OUTBOUND_CLIENT_CERT_THUMBPRINT {}",
                dir.join(format!("{thumbprint}.p12")).display()
            ),
        }
    }

    /// Loads the identity from this source and checks it is not expired at `now`.
    pub async fn load(&self, now: i64) -> Result<ClientIdentity, SourceError> {
        let (material, source, origin) = match self {
            Self::KeyVault {
                reader,
                description,
            } => {
                let fetched = reader.fetch().await?;
                let material = match &fetched.content {
                    SecretContent::Pkcs12(der) => pkcs12::from_pkcs12(der, "")?,
                    SecretContent::Pem(pem) => pkcs12::from_pem(pem)?,
                };
                let origin = fetched.id.unwrap_or_else(|| description.clone());
                (material, SourceKind::KeyVault, origin)
            }
            Self::File { path, password } => {
                let bytes = read(path).await?;
                let pw = password.as_ref().map_or("", Secret::expose);
                let material = pkcs12::from_file_bytes(&bytes, pw)?;
                (material, SourceKind::File, path.display().to_string())
            }
            Self::AppServiceThumbprint { dir, thumbprint } => {
                let path = find_thumbprint_file(dir, thumbprint)
                    .await
                    .ok_or(SourceError::FileMissing)?;
                let bytes = read(&path).await?;
                let material = pkcs12::from_pkcs12(&bytes, "")?;
                (material, SourceKind::File, path.display().to_string())
            }
        };
        if material.not_after <= now {
            return Err(SourceError::Expired {
                thumbprint: material.thumbprint.clone(),
                not_after: crate::clock::rfc3339(material.not_after),
            });
        }
        Ok(ClientIdentity {
            material,
            source,
            origin,
        })
    }
}

/// Tries `sources` in order; the first that loads wins. When an earlier source failed and
/// a later one worked, logs a warning naming both.
pub async fn load_first(
    sources: &[IdentitySource],
    setup_failures: &[Attempt],
    now: i64,
) -> Result<ClientIdentity, LoadFailure> {
    let mut attempts: Vec<Attempt> = setup_failures.to_vec();
    for source in sources {
        match source.load(now).await {
            Ok(identity) => {
                if !attempts.is_empty() {
                    let failed = LoadFailure {
                        attempts: attempts.clone(),
                    };
                    tracing::warn!(
                        failed = %failed,
                        using = %source.describe(),
                        thumbprint = %identity.thumbprint(),
                        "outbound certificate: an earlier source failed; using a later one"
                    );
                }
                return Ok(identity);
            }
            Err(error) => attempts.push(Attempt {
                source: source.describe(),
                error,
            }),
        }
    }
    Err(LoadFailure { attempts })
}

async fn read(path: &Path) -> Result<Vec<u8>, SourceError> {
    match tokio::fs::read(path).await {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::FileMissing),
        Err(e) => Err(SourceError::FileUnreadable {
            reason: e.kind().to_string(),
        }),
    }
}

/// `<dir>/<thumbprint>.p12`, the name compared case-insensitively (App Service writes
/// uppercase names; settings are often pasted in lowercase).
async fn find_thumbprint_file(dir: &Path, thumbprint: &str) -> Option<PathBuf> {
    let exact = dir.join(format!("{thumbprint}.p12"));
    if tokio::fs::metadata(&exact).await.is_ok() {
        return Some(exact);
    }
    let wanted = format!("{thumbprint}.p12");
    let mut entries = tokio::fs::read_dir(dir).await.ok()?;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(&wanted))
        {
            return Some(entry.path());
        }
    }
    None
}
