//! The app's own client identity and where it comes from: Key Vault, then a file
//! (`OUTBOUND_CLIENT_CERT_PATH`, or App Service's `/var/ssl/private/<THUMBPRINT>.p12`).
//!
//! Owns: the source order, the fallback from Key Vault to the file (with a warning naming
//! both; only when there is no usable current identity from Key Vault), rejecting expired
//! and not-yet-valid certificates, bounded file reads, and the "what was tried" summary of a
//! failure.
//! Must not: build HTTP clients, schedule refreshes, or log secrets (passwords, keys and
//! secret values never leave `KeyMaterial` / `Secret`).
//!
//! File reads run on a detached thread, at most [`MAX_FILE_BYTES`] and at most the call
//! timeout: a FIFO, a device or a hung network mount fails the load (and shows in health)
//! instead of blocking the loader or, through Tokio's blocking pool, process shutdown. A
//! read that never returns leaves its thread behind; no second one is started for that
//! source until it does.

use super::config::{FileConfig, OutboundConfig, Secret};
use super::key_vault::{KeyVaultError, KeyVaultReader, SecretContent};
use super::pkcs12::{self, KeyMaterial, KeyMaterialError};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The largest certificate file read (PKCS#12 and PEM files are a few KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

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

    /// Whether the certificate is within its validity period at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        self.material.not_before <= now && now < self.material.not_after
    }
}

/// Reads one file source's bytes off the async runtime, bounded in size and time.
#[derive(Debug, Clone)]
pub struct FileReader {
    timeout: Duration,
    /// Set while a read thread runs (also one that timed out and is still stuck).
    busy: Arc<AtomicBool>,
}

impl FileReader {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs `work` on a detached thread and waits for it at most the timeout.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(SourceError::FileUnreadable {
                reason: "an earlier read of it has not returned yet (hung file system?)".into(),
            });
        }
        /// Clears `busy` when the thread ends, whether it returns or panics.
        struct Done(Arc<AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let done = Done(self.busy.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("outbound-cert-read".into())
            .spawn(move || {
                let _done = done;
                let _ = tx.send(work());
            });
        if let Err(e) = spawned {
            self.busy.store(false, Ordering::SeqCst);
            return Err(SourceError::FileUnreadable {
                reason: format!("cannot start a reader thread ({})", e.kind()),
            });
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(SourceError::FileUnreadable {
                reason: "the reader thread failed".into(),
            }),
            Err(_) => Err(SourceError::FileTimeout {
                seconds: self.timeout.as_secs(),
            }),
        }
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
        reader: FileReader,
    },
    AppServiceThumbprint {
        dir: PathBuf,
        thumbprint: String,
        reader: FileReader,
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
    #[error("not a regular file")]
    NotAFile,
    #[error("the file is larger than {max_bytes} bytes")]
    FileTooLarge { max_bytes: u64 },
    #[error("reading the file took longer than {seconds}s")]
    FileTimeout { seconds: u64 },
    #[error("{0}")]
    Material(#[from] KeyMaterialError),
    #[error("certificate {thumbprint} expired at {not_after}")]
    Expired {
        thumbprint: String,
        not_after: String,
    },
    #[error("certificate {thumbprint} is not valid until {not_before}")]
    NotYetValid {
        thumbprint: String,
        not_before: String,
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
                reader: FileReader::new(config.timeout),
            }),
            Some(FileConfig::Thumbprint { dir, thumbprint }) => {
                sources.push(Self::AppServiceThumbprint {
                    dir: dir.clone(),
                    thumbprint: thumbprint.clone(),
                    reader: FileReader::new(config.timeout),
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
            Self::AppServiceThumbprint {
                dir, thumbprint, ..
            } => format!(
                "OUTBOUND_CLIENT_CERT_THUMBPRINT {}",
                dir.join(format!("{thumbprint}.p12")).display()
            ),
        }
    }

    /// Which kind of identity this source gives.
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::KeyVault { .. } => SourceKind::KeyVault,
            Self::File { .. } | Self::AppServiceThumbprint { .. } => SourceKind::File,
        }
    }

    /// Loads the identity from this source and checks it is valid at `now`.
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
                let origin = fetched
                    .id
                    .map_or_else(|| description.clone(), |id| super::redact::url(&id));
                (material, SourceKind::KeyVault, origin)
            }
            Self::File {
                path,
                password,
                reader,
            } => {
                let p = path.clone();
                let bytes = reader.run(move || read_regular_file(&p)).await?;
                let pw = password.as_ref().map_or("", Secret::expose);
                let material = pkcs12::from_file_bytes(&bytes, pw)?;
                (material, SourceKind::File, path.display().to_string())
            }
            Self::AppServiceThumbprint {
                dir,
                thumbprint,
                reader,
            } => {
                let (dir, thumbprint) = (dir.clone(), thumbprint.clone());
                let (path, bytes) = reader
                    .run(move || {
                        let path = find_thumbprint_file(&dir, &thumbprint)
                            .ok_or(SourceError::FileMissing)?;
                        let bytes = read_regular_file(&path)?;
                        Ok((path, bytes))
                    })
                    .await?;
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
        if material.not_before > now {
            return Err(SourceError::NotYetValid {
                thumbprint: material.thumbprint.clone(),
                not_before: crate::clock::rfc3339(material.not_before),
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
///
/// `current` is the identity in use: when the source it came from fails while it is still
/// valid, the attempt ends there (the caller keeps it) instead of falling back to a later
/// source; a brief Key Vault outage does not swap the Key Vault certificate for the file.
pub async fn load_first(
    sources: &[IdentitySource],
    setup_failures: &[Attempt],
    now: i64,
    current: Option<&ClientIdentity>,
) -> Result<ClientIdentity, LoadFailure> {
    let mut attempts: Vec<Attempt> = setup_failures.to_vec();
    let keep_from = current.filter(|c| c.valid_at(now)).map(|c| c.source);
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
            Err(error) => {
                attempts.push(Attempt {
                    source: source.describe(),
                    error,
                });
                if keep_from == Some(source.kind()) {
                    break;
                }
            }
        }
    }
    Err(LoadFailure { attempts })
}

fn io_error(e: &std::io::Error) -> SourceError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SourceError::FileMissing
    } else {
        SourceError::FileUnreadable {
            reason: e.kind().to_string(),
        }
    }
}

/// The bytes of the regular file at `path` (symbolic links followed), at most
/// [`MAX_FILE_BYTES`]. Blocking: runs on a [`FileReader`] thread.
fn read_regular_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    // Checked before opening: opening a FIFO blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(|e| io_error(&e))?;
    if !meta.is_file() {
        return Err(SourceError::NotAFile);
    }
    let file = std::fs::File::open(path).map_err(|e| io_error(&e))?;
    // Checked again on what was opened, in case the path was swapped in between.
    let meta = file.metadata().map_err(|e| io_error(&e))?;
    if !meta.is_file() {
        return Err(SourceError::NotAFile);
    }
    let too_large = SourceError::FileTooLarge {
        max_bytes: MAX_FILE_BYTES,
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large);
    }
    Ok(bytes)
}

/// `<dir>/<thumbprint>.p12`, the name compared case-insensitively (App Service writes
/// uppercase names; settings are often pasted in lowercase). Blocking.
fn find_thumbprint_file(dir: &Path, thumbprint: &str) -> Option<PathBuf> {
    let wanted = format!("{thumbprint}.p12");
    let exact = dir.join(&wanted);
    if exact.exists() {
        return Some(exact);
    }
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(&wanted))
        })
        .map(|entry| entry.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_does_not_return_in_time_fails_and_blocks_no_second_reader() {
        let reader = FileReader::new(Duration::from_millis(100));
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let first = reader
            .run(move || {
                let _ = stuck.recv();
                Ok(())
            })
            .await;
        assert_eq!(first, Err(SourceError::FileTimeout { seconds: 0 }));
        // The first thread is still stuck: no second one is started.
        let second = reader.run(|| Ok(())).await;
        assert!(
            matches!(&second, Err(SourceError::FileUnreadable { reason }) if reason.contains("not returned")),
            "{second:?}"
        );
        release.send(()).unwrap();
        let mut again = reader.run(|| Ok(())).await;
        for _ in 0..100 {
            if again.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            again = reader.run(|| Ok(())).await;
        }
        assert_eq!(
            again,
            Ok(()),
            "once the stuck read returns, reads work again"
        );
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(read_regular_file(&fifo), Err(SourceError::NotAFile));
        assert_eq!(
            read_regular_file(Path::new("/dev/zero")),
            Err(SourceError::NotAFile)
        );
        let big = dir.path().join("big.pfx");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        assert_eq!(
            read_regular_file(&big),
            Err(SourceError::FileTooLarge {
                max_bytes: MAX_FILE_BYTES
            })
        );
    }
}
