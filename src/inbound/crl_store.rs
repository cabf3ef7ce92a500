//! Where CRLs come from: files named by `CLIENT_CERT_CRL_PATH`, and (with
//! `CLIENT_CERT_CRL_FETCH=true`) the HTTP CRL distribution points of the certificates.
//!
//! Owns: reading CRL files (PEM or DER, a file or a directory one level deep), noticing
//! when they change (checked every `CLIENT_CERT_CRL_CHECK_SECONDS`, default 60), fetching
//! CRLs with a bounded time (`CLIENT_CERT_CRL_FETCH_TIMEOUT_SECONDS`) and size
//! ([`MAX_CRL_BYTES`]), asking every distribution point again every check interval with
//! a conditional GET (`If-None-Match` / `If-Modified-Since`, so an unchanged CRL costs a
//! 304 and a CA that republishes early is seen within the interval), and handing each new
//! set to the gate ([`crate::inbound::InboundGate::replace_crls`]).
//!
//! All of this runs in one background task: no request ever waits on a file or a CA. A
//! file that cannot be read, parsed or verified keeps the previous good set and logs an
//! error; a failed download keeps the previous CRL from that URL and is retried after the
//! check interval. A CRL that parses and verifies but is refused by the strict CRL rules
//! (its signer lacks cRLSign, or it has a critical extension the check does not implement)
//! is left out and logged once per CRL: its issuer then has no CRL, as if none was
//! published. The first request for a certificate whose issuer's CRL has never been
//! fetched gets `revocation_unknown` (or is accepted when fail-open) while the fetch runs.
//!
//! Must not: decide whether a certificate is revoked (`client_cert::revocation` does), or
//! be consulted on the request path.

use crate::inbound::client_cert::revocation::{http_distribution_points, split_crl_file};
use crate::inbound::client_cert::{Crl, CrlError, CrlSet, TrustAnchors};
use crate::inbound::config::RevocationConfig;
use crate::inbound::gate::InboundGate;
use crate::settings::ConfigError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The largest CRL we download (10 MiB); bigger answers are abandoned.
pub const MAX_CRL_BYTES: usize = 10 * 1024 * 1024;

/// Why the CRL files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CrlStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    NotACrlFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Crl(#[from] CrlError),
}

impl CrlStoreError {
    /// The start-up form, naming `CLIENT_CERT_CRL_PATH`.
    pub fn into_config_error(self, path: &Path) -> ConfigError {
        ConfigError::Unreadable {
            setting: "CLIENT_CERT_CRL_PATH",
            path: path.to_owned(),
            reason: self.to_string(),
        }
    }
}

/// The verified CRLs read from the CRL path.
#[derive(Debug, Default, Clone)]
pub struct LoadedCrls {
    pub crls: Vec<Arc<Crl>>,
}

impl LoadedCrls {
    pub fn into_set(self) -> CrlSet {
        CrlSet::new(self.crls)
    }
}

/// Reads every CRL under `path` and verifies each against `trust`. CRLs from issuers that
/// are not trusted CAs are skipped with a warning (a shared directory may hold others);
/// a CRL that is refused (signer without cRLSign, critical extension not implemented) is
/// skipped with an error, once per read, and its issuer then has no CRL; anything
/// unreadable, unparsable or with a bad signature fails the whole read.
pub fn read_crl_path(path: &Path, trust: &TrustAnchors) -> Result<LoadedCrls, CrlStoreError> {
    let mut loaded = LoadedCrls::default();
    for file in crl_files(path)? {
        let bytes = std::fs::read(&file).map_err(|source| CrlStoreError::Io {
            path: file.clone(),
            source,
        })?;
        let ders = split_crl_file(&bytes).map_err(|reason| CrlStoreError::NotACrlFile {
            path: file.clone(),
            reason,
        })?;
        let origin = file.display().to_string();
        for der in ders {
            match Crl::verify(&der, trust, &origin) {
                Ok(crl) => loaded.crls.push(Arc::new(crl)),
                Err(e @ CrlError::UnknownIssuer { .. }) => {
                    tracing::warn!(error = %e, "skipping a CRL from an untrusted issuer");
                }
                Err(e) if e.counts_as_missing() => log_refused(&der, &e, "CLIENT_CERT_CRL_PATH"),
                Err(e) => return Err(e.into()),
            }
        }
    }
    if loaded.crls.is_empty() {
        tracing::warn!(
            path = %path.display(),
            "CLIENT_CERT_CRL_PATH holds no CRL of a trusted CA: every chain is revocation_unknown"
        );
    }
    Ok(loaded)
}

/// The one log line for a refused CRL: once per CRL (by its SHA-256) in this process,
/// however often the file is re-read or the URL re-fetched.
fn log_refused(der: &[u8], e: &CrlError, setting: &'static str) {
    static REPORTED: std::sync::Mutex<Option<std::collections::HashSet<[u8; 32]>>> =
        std::sync::Mutex::new(None);
    let digest = crate::inbound::client_cert::sha256(der);
    let first = REPORTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(Default::default)
        .insert(digest);
    if first {
        tracing::error!(
            error = %e,
            setting,
            "CRL refused; certificates of its issuer are revocation_unknown until a usable CRL arrives"
        );
    }
}

/// The file itself, or the visible files directly in the directory, in name order.
fn crl_files(path: &Path) -> Result<Vec<PathBuf>, CrlStoreError> {
    crate::pki_files::files_at(path).map_err(|source| CrlStoreError::Io {
        path: path.to_owned(),
        source,
    })
}

/// What identifies one state of the CRL files: names, sizes, modification times, inodes.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>, u64)>;

fn fingerprint(path: &Path) -> Result<Fingerprint, CrlStoreError> {
    let mut fp = Vec::new();
    for file in crl_files(path)? {
        let meta = std::fs::metadata(&file).map_err(|source| CrlStoreError::Io {
            path: file.clone(),
            source,
        })?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        fp.push((file, meta.len(), meta.modified().ok(), inode));
    }
    Ok(fp)
}

/// One distribution point and what it last gave us.
#[derive(Default)]
struct Fetched {
    crls: Vec<Arc<Crl>>,
    digest: Option<[u8; 32]>,
    /// The validators of the last good answer, sent back so an unchanged CRL is a 304.
    validators: Validators,
    /// Unix seconds; 0 means "now".
    next_attempt: i64,
}

/// `ETag` and `Last-Modified` of a download, as the server sent them.
#[derive(Debug, Default, Clone)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// What one conditional GET gave.
enum Download {
    /// 304: the CRL we hold is still the current one.
    NotModified,
    Body(Vec<u8>, Validators),
}

/// The background task that keeps the gate's CRL set current.
pub struct Refresher {
    gate: Arc<InboundGate>,
    /// Unix seconds; tests pass a fixed one.
    clock: fn() -> i64,
    config: RevocationConfig,
    files: Option<Fingerprint>,
    file_crls: Vec<Arc<Crl>>,
    next_file_check: i64,
    fetched: HashMap<String, Fetched>,
    client: Option<reqwest::Client>,
}

/// Starts the refresher when revocation is on. Needs a Tokio runtime.
pub fn spawn(
    gate: Arc<InboundGate>,
    clock: fn() -> i64,
    config: &RevocationConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    gate.crls()?;
    let refresher = Refresher::new(gate, clock, config.clone())?;
    Some(tokio::spawn(refresher.run()))
}

impl Refresher {
    fn new(gate: Arc<InboundGate>, clock: fn() -> i64, config: RevocationConfig) -> Option<Self> {
        let trust = gate.policy().trust.as_ref()?;
        let mut fetched = HashMap::new();
        let mut client = None;
        if config.fetch {
            // The CAs' own distribution points (where their issuers publish) are known now;
            // end-entity ones are learnt from the certificates that arrive.
            for ca in trust.certificates() {
                for url in ca
                    .to_der()
                    .map(|d| http_distribution_points(&d))
                    .unwrap_or_default()
                {
                    fetched.entry(url).or_insert_with(Fetched::default);
                }
            }
            let timeout = Duration::from_secs(config.fetch_timeout_seconds);
            client = match reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
            {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the CRL download client; CRL fetching is off");
                    None
                }
            };
        }
        Some(Self {
            gate,
            clock,
            config,
            files: None,
            file_crls: Vec::new(),
            next_file_check: 0,
            fetched,
            client,
        })
    }

    async fn run(mut self) {
        let interval = Duration::from_secs(self.config.check_seconds);
        loop {
            let now = (self.clock)();
            let mut changed = self.refresh_files(now);
            changed |= self.refresh_fetched(now).await;
            if changed {
                self.publish();
            }
            let gate = self.gate.clone();
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = gate.wanted_distribution_points_changed() => {}
            }
            for url in self.gate.take_wanted_distribution_points() {
                self.fetched.entry(url).or_default();
            }
        }
    }

    /// Re-reads the CRL files when they changed (at most once per check interval).
    /// Returns whether the file CRLs changed.
    fn refresh_files(&mut self, now: i64) -> bool {
        let Some(path) = self.config.crl_path.clone() else {
            return false;
        };
        if now < self.next_file_check {
            return false;
        }
        self.next_file_check = now.saturating_add(self.config.check_seconds as i64);
        let fp = match fingerprint(&path) {
            Ok(fp) => fp,
            Err(e) => {
                tracing::error!(error = %e, setting = "CLIENT_CERT_CRL_PATH", "cannot list the CRL files; keeping the previous CRLs");
                return false;
            }
        };
        if self.files.as_ref() == Some(&fp) {
            return false;
        }
        self.files = Some(fp);
        let Some(trust) = self.gate.policy().trust.as_ref() else {
            return false;
        };
        match read_crl_path(&path, trust) {
            Ok(loaded) => {
                tracing::info!(crls = loaded.crls.len(), path = %path.display(), "CRL files read");
                self.file_crls = loaded.crls;
                true
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    setting = "CLIENT_CERT_CRL_PATH",
                    "a CRL file could not be used; keeping the previous CRLs"
                );
                false
            }
        }
    }

    /// Downloads every distribution point that is due, concurrently, each bounded in time
    /// and size. Returns whether any CRL changed.
    async fn refresh_fetched(&mut self, now: i64) -> bool {
        let Some(client) = self.client.clone() else {
            return false;
        };
        let due: Vec<String> = self
            .fetched
            .iter()
            .filter(|(_, f)| f.next_attempt <= now)
            .map(|(url, _)| url.clone())
            .collect();
        if due.is_empty() {
            return false;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for url in due {
            let client = client.clone();
            let validators = self
                .fetched
                .get(&url)
                .filter(|f| f.digest.is_some())
                .map(|f| f.validators.clone())
                .unwrap_or_default();
            tasks.spawn(async move {
                let result = download(&client, &url, &validators).await;
                (url, result)
            });
        }
        let mut changed = false;
        let retry = now.saturating_add(self.config.check_seconds as i64);
        while let Some(joined) = tasks.join_next().await {
            let Ok((url, result)) = joined else { continue };
            let Some(trust) = self.gate.policy().trust.as_ref() else {
                continue;
            };
            let entry = self.fetched.entry(url.clone()).or_default();
            // Asked again every interval, whatever the CRL's nextUpdate says: CAs publish
            // early when they revoke.
            entry.next_attempt = retry;
            let parsed = result.and_then(|download| match download {
                Download::NotModified => Ok(None),
                Download::Body(bytes, validators) => {
                    let digest = crate::inbound::client_cert::sha256(&bytes);
                    let mut crls = Vec::new();
                    for der in split_crl_file(&bytes)? {
                        match Crl::verify(&der, trust, &url) {
                            Ok(crl) => crls.push(Arc::new(crl)),
                            // Counts as missing: left out, logged once per CRL.
                            Err(e) if e.counts_as_missing() => {
                                log_refused(&der, &e, "CLIENT_CERT_CRL_FETCH");
                            }
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Ok(Some((digest, crls, validators)))
                }
            });
            match parsed {
                Ok(None) => {
                    tracing::debug!(url = ?url, "CRL not modified");
                }
                Ok(Some((digest, crls, validators))) => {
                    entry.validators = validators;
                    if entry.digest != Some(digest) {
                        let next_update = crls.iter().filter_map(|c| c.next_update()).min();
                        tracing::info!(url = ?url, crls = crls.len(), next_update, "CRL downloaded");
                        entry.digest = Some(digest);
                        entry.crls = crls;
                        changed = true;
                    }
                }
                Err(reason) => {
                    tracing::warn!(
                        url = ?url,
                        error = ?reason,
                        kept = entry.crls.len(),
                        "CRL download failed; keeping the previous CRL from this URL"
                    );
                }
            }
        }
        changed
    }

    fn publish(&self) {
        let all = self
            .file_crls
            .iter()
            .chain(self.fetched.values().flat_map(|f| f.crls.iter()))
            .cloned();
        let set = CrlSet::new(all);
        tracing::info!(
            crls = set.len(),
            "CRL set updated; validation cache cleared"
        );
        self.gate.replace_crls(set);
    }
}

/// One conditional GET (sending back `validators`), refusing answers other than 2xx and
/// 304, and bodies over [`MAX_CRL_BYTES`].
async fn download(
    client: &reqwest::Client,
    url: &str,
    validators: &Validators,
) -> Result<Download, String> {
    let mut request = client.get(url);
    if let Some(etag) = &validators.etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    if let Some(date) = &validators.last_modified {
        request = request.header(reqwest::header::IF_MODIFIED_SINCE, date);
    }
    let mut response = request.send().await.map_err(|e| e.to_string())?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Download::NotModified);
    }
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 256)
            .map(str::to_owned)
    };
    let validators = Validators {
        etag: header(reqwest::header::ETAG),
        last_modified: header(reqwest::header::LAST_MODIFIED),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_CRL_BYTES as u64)
    {
        return Err(format!("larger than {MAX_CRL_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_CRL_BYTES {
            return Err(format!("larger than {MAX_CRL_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Download::Body(body, validators))
}
