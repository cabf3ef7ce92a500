//! Where the partners document comes from, and keeping it current.
//!
//! Owns: reading the document named by `CLIENT_CERT_PARTNERS` (inline),
//! `CLIENT_CERT_PARTNERS_PATH` (a file) or `CLIENT_CERT_PARTNERS_SECRET` (Key Vault), and the
//! shadow candidate likewise; compiling it against the gate's trusted CAs (plus the implicit
//! partner of the flat settings, when those are set); at start-up, a bad document stops
//! start-up with the line, column and JSON path; afterwards, re-reading files when their
//! content changes (checked every `CLIENT_CERT_PARTNERS_CHECK_SECONDS`): a good document is
//! swapped into the gate (which clears its cache in the same step), a bad one is logged and
//! the previous one kept. The same task logs partner certificates that expire soon.
//! Must not: decide about certificates, or hold any state the gate does not own.
//!
//! A Key Vault secret (`CLIENT_CERT_PARTNERS_SECRET`, `CLIENT_CERT_SHADOW_PARTNERS_SECRET`)
//! is read through [`SecretText`], which the host implements with the outbound Key Vault
//! reader and its credential (this module must not use `outbound`): at start-up by
//! [`attach_with_secrets`] (a secret that cannot be read stops start-up naming the setting),
//! then every `CLIENT_CERT_PARTNERS_REFRESH_MINUTES`, where an unreadable or bad secret keeps
//! the previous document as a bad file does. The secret's value is never logged.

use crate::inbound::client_cert::partners::{self, PartnerSet};
use crate::inbound::client_cert::{sha256, Policy, Thumbprint};
use crate::inbound::config::{PartnersConfig, PartnersSource};
use crate::inbound::gate::InboundGate;
use crate::inbound::partners_state::{Active, PartnersState};
use crate::settings::ConfigError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The text of a secret, or a one-line reason it could not be read.
pub type SecretFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// "Fetch this secret's text": how a document named by a `*_SECRET` setting is read. The
/// host implements it with the Key Vault reader of the outbound certificate (same vault,
/// same credential). An error must say why without the secret's value.
pub trait SecretText: Send + Sync {
    /// The latest version of the secret `name`.
    fn read<'a>(&'a self, name: &'a str) -> SecretFuture<'a>;
}

/// Whether `config` names a document in a secret (enforced or shadow).
pub fn uses_secret(config: &PartnersConfig) -> bool {
    std::iter::once(&config.source)
        .chain(config.shadow.as_ref())
        .any(|s| matches!(s, PartnersSource::Secret { .. }))
}

/// Reads the document's bytes.
async fn read_source_async(
    source: &PartnersSource,
    secrets: Option<&dyn SecretText>,
) -> Result<Vec<u8>, String> {
    match source {
        PartnersSource::Secret { name, .. } => {
            let Some(secrets) = secrets else {
                return read_source(source);
            };
            check_size(secrets.read(name).await?.into_bytes())
        }
        PartnersSource::Path(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            check_size(bytes)
        }
        other => read_source(other),
    }
}

/// Reads the document's bytes (blocking; start-up and tools).
pub fn read_source(source: &PartnersSource) -> Result<Vec<u8>, String> {
    match source {
        PartnersSource::Inline(json) => check_size(json.clone().into_bytes()),
        PartnersSource::Path(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            check_size(bytes)
        }
        PartnersSource::Secret { name, .. } => Err(format!(
            "Key Vault secret {name:?} is read with the Key Vault credential by `handler \
             serve` only; here, use CLIENT_CERT_PARTNERS_PATH or CLIENT_CERT_PARTNERS"
        )),
    }
}

fn check_size(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() > partners::document::MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the document is {} bytes, more than the {} allowed",
            bytes.len(),
            partners::document::MAX_DOCUMENT_BYTES
        ));
    }
    Ok(bytes)
}

/// Parses and compiles `bytes` from `source` against `policy`'s trusted CAs, adding the
/// implicit partner of the flat settings when they are set.
pub fn compile(
    source: &PartnersSource,
    bytes: &[u8],
    policy: &Policy,
    now: i64,
) -> Result<Active, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let doc = partners::parse(text).map_err(|e| e.to_string())?;
    let set = PartnerSet::compile(&doc, policy.trust.as_ref())
        .and_then(|s| s.with_implicit(policy))
        .map_err(|e| e.to_string())?;
    Ok(Active {
        set,
        source: source.describe(),
        sha256: Thumbprint::Sha256(sha256(bytes)).to_string(),
        loaded_at: now,
    })
}

/// Loads the configured document (and shadow) into `gate` at start-up; any problem is a
/// [`ConfigError`] naming the setting. A secret source fails here: see
/// [`attach_with_secrets`].
pub fn attach(
    gate: InboundGate,
    config: Option<&PartnersConfig>,
    now: i64,
) -> Result<InboundGate, ConfigError> {
    let Some(config) = config else {
        return Ok(gate);
    };
    let enforced = read_source(&config.source);
    let shadow = config.shadow.as_ref().map(read_source);
    install(gate, config, now, enforced, shadow)
}

/// As [`attach`], reading secret sources with `secrets`. A secret that cannot be read stops
/// start-up: without its document the gate would not know the partners.
pub async fn attach_with_secrets(
    gate: InboundGate,
    config: Option<&PartnersConfig>,
    now: i64,
    secrets: Option<&dyn SecretText>,
) -> Result<InboundGate, ConfigError> {
    let Some(config) = config else {
        return Ok(gate);
    };
    let enforced = read_source_async(&config.source, secrets).await;
    let shadow = match &config.shadow {
        Some(source) => Some(read_source_async(source, secrets).await),
        None => None,
    };
    install(gate, config, now, enforced, shadow)
}

/// Compiles the documents read from the configured sources into `gate`.
fn install(
    gate: InboundGate,
    config: &PartnersConfig,
    now: i64,
    enforced: Result<Vec<u8>, String>,
    shadow_bytes: Option<Result<Vec<u8>, String>>,
) -> Result<InboundGate, ConfigError> {
    for ignored in &config.ignored {
        tracing::warn!(
            setting = ignored,
            used = config.source.setting(false),
            "partners document: this setting is ignored because an earlier source is set"
        );
    }
    let load = |source: &PartnersSource, bytes: Result<Vec<u8>, String>, shadow: bool| {
        let setting = source.setting(shadow);
        bytes
            .and_then(|bytes| compile(source, &bytes, gate.policy(), now))
            .map_err(|e| ConfigError::invalid(setting, e))
    };
    let active = load(&config.source, enforced, false)?;
    log_loaded("partners document loaded", &active, gate.policy());
    let state = PartnersState::new(active, config.shadow.as_ref().map(PartnersSource::describe));
    if let (Some(source), Some(shadow), Some(bytes)) = (&config.shadow, &state.shadow, shadow_bytes)
    {
        let candidate = load(source, bytes, true)?;
        log_loaded("shadow partners document loaded", &candidate, gate.policy());
        shadow.replace(candidate);
    }
    Ok(gate.with_partners(state))
}

fn log_loaded(message: &'static str, active: &Active, policy: &Policy) {
    let implicit = !(policy.common_names.is_empty() && policy.thumbprints.is_empty());
    tracing::info!(
        source = %active.source,
        sha256 = %active.sha256,
        partners = active.set.len(),
        implicit_partner_from_settings = implicit,
        "{message}"
    );
}

/// Starts the task that re-reads file documents (on change) and secret documents (every
/// `CLIENT_CERT_PARTNERS_REFRESH_MINUTES`, with `secrets`), and warns about expiring partner
/// certificates. `None` when no document is configured.
pub fn spawn(
    gate: Arc<InboundGate>,
    clock: fn() -> i64,
    config: &PartnersConfig,
    secrets: Option<Arc<dyn SecretText>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = Duration::from_secs(config.refresh_minutes.saturating_mul(60));
    spawn_with(gate, clock, config, secrets, every)
}

/// As [`spawn`], re-reading secrets every `secret_every` (tests shorten it).
pub fn spawn_with(
    gate: Arc<InboundGate>,
    clock: fn() -> i64,
    config: &PartnersConfig,
    secrets: Option<Arc<dyn SecretText>>,
    secret_every: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    gate.partners()?;
    let refresher = Refresher {
        gate,
        clock,
        config: config.clone(),
        last_failure: [None, None],
        secrets,
        secret_every,
        secrets_read_at: tokio::time::Instant::now(),
    };
    Some(tokio::spawn(refresher.run()))
}

struct Refresher {
    gate: Arc<InboundGate>,
    clock: fn() -> i64,
    config: PartnersConfig,
    /// The last error logged for the enforced and the shadow document, so a bad file is
    /// logged once, not every check.
    last_failure: [Option<String>; 2],
    /// Reads secret sources.
    secrets: Option<Arc<dyn SecretText>>,
    /// How often secret sources are re-read.
    secret_every: Duration,
    /// When secret sources were last read (start-up, then each refresh).
    secrets_read_at: tokio::time::Instant,
}

impl Refresher {
    async fn run(mut self) {
        let interval = Duration::from_secs(self.config.check_seconds).min(self.secret_every);
        loop {
            tokio::time::sleep(interval).await;
            self.check_once().await;
        }
    }

    /// One round: reload what changed, then warn about expiring certificates.
    async fn check_once(&mut self) {
        let now = (self.clock)();
        let Some(state) = self.gate.partners() else {
            return;
        };
        let secrets_due = self.secrets_read_at.elapsed() >= self.secret_every;
        if secrets_due {
            self.secrets_read_at = tokio::time::Instant::now();
        }
        let due = |source: &PartnersSource| match source {
            PartnersSource::Path(_) => true,
            PartnersSource::Secret { .. } => secrets_due,
            PartnersSource::Inline(_) => false,
        };
        if due(&self.config.source) {
            let source = self.config.source.clone();
            let current = state.active().sha256.clone();
            match self.reload(&source, &current, now).await {
                Ok(Some(active)) => {
                    log_loaded("partners document reloaded", &active, self.gate.policy());
                    self.gate.replace_partners(active);
                    self.last_failure[0] = None;
                }
                Ok(None) => {}
                Err(e) => {
                    if self.last_failure[0].as_ref() != Some(&e) {
                        tracing::error!(
                            setting = source.setting(false),
                            error = %e,
                            "partners document not reloaded; the previous one stays in force"
                        );
                        self.last_failure[0] = Some(e.clone());
                    }
                    state.reload_failed(now, e);
                }
            }
        }
        if let (Some(source), Some(shadow)) =
            (self.config.shadow.clone().filter(|s| due(s)), &state.shadow)
        {
            let current = shadow
                .active()
                .map(|a| a.sha256.clone())
                .unwrap_or_default();
            match self.reload(&source, &current, now).await {
                Ok(Some(active)) => {
                    log_loaded(
                        "shadow partners document reloaded",
                        &active,
                        self.gate.policy(),
                    );
                    shadow.replace(active);
                    self.last_failure[1] = None;
                }
                Ok(None) => {}
                Err(e) => {
                    if self.last_failure[1].as_ref() != Some(&e) {
                        tracing::error!(
                            setting = source.setting(true),
                            error = %e,
                            "shadow partners document not reloaded; the previous one stays"
                        );
                        self.last_failure[1] = Some(e.clone());
                    }
                    shadow.reload_failed(now, e);
                }
            }
        }
        state.warn_expiring(now);
    }

    /// The new document when the content changed, `None` when it did not.
    async fn reload(
        &self,
        source: &PartnersSource,
        current_sha256: &str,
        now: i64,
    ) -> Result<Option<Active>, String> {
        let bytes = read_source_async(source, self.secrets.as_deref()).await?;
        if Thumbprint::Sha256(sha256(&bytes)).to_string() == current_sha256 {
            return Ok(None);
        }
        compile(source, &bytes, self.gate.policy(), now)
            .map(Some)
            .map_err(|e| format!("{}: {e}", source.describe()))
    }
}
