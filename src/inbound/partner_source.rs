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
//! TODO(issue 13): `CLIENT_CERT_PARTNERS_SECRET` needs the shared Key Vault credential that
//! `src/outbound/credential.rs` will provide; until it lands, [`read_source`] refuses a
//! secret source with a message naming the setting, so such a configuration fails start-up
//! rather than running without its partners. The seam is `read_source`'s `Secret` arm
//! (read the secret value with that credential, then re-read every
//! `CLIENT_CERT_PARTNERS_REFRESH_MINUTES` in [`Refresher::run`]).

use crate::inbound::client_cert::partners::{self, PartnerSet};
use crate::inbound::client_cert::{sha256, Policy, Thumbprint};
use crate::inbound::config::{PartnersConfig, PartnersSource};
use crate::inbound::gate::InboundGate;
use crate::inbound::partners_state::{Active, PartnersState};
use crate::settings::ConfigError;
use std::sync::Arc;
use std::time::Duration;

/// Reads the document's bytes.
async fn read_source_async(source: &PartnersSource) -> Result<Vec<u8>, String> {
    match source {
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
            "reading the partners document from Key Vault secret {name:?} is not available \
             in this build yet (it needs the shared Key Vault credential); use \
             CLIENT_CERT_PARTNERS_PATH or CLIENT_CERT_PARTNERS meanwhile"
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
/// [`ConfigError`] naming the setting.
pub fn attach(
    gate: InboundGate,
    config: Option<&PartnersConfig>,
    now: i64,
) -> Result<InboundGate, ConfigError> {
    let Some(config) = config else {
        return Ok(gate);
    };
    for ignored in &config.ignored {
        tracing::warn!(
            setting = ignored,
            used = config.source.setting(false),
            "partners document: this setting is ignored because an earlier source is set"
        );
    }
    let load = |source: &PartnersSource, shadow: bool| {
        let setting = source.setting(shadow);
        read_source(source)
            .and_then(|bytes| compile(source, &bytes, gate.policy(), now))
            .map_err(|e| ConfigError::invalid(setting, e))
    };
    let active = load(&config.source, false)?;
    log_loaded("partners document loaded", &active, gate.policy());
    let state = PartnersState::new(active, config.shadow.as_ref().map(PartnersSource::describe));
    if let (Some(source), Some(shadow)) = (&config.shadow, &state.shadow) {
        let candidate = load(source, true)?;
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

/// Starts the task that re-reads file documents and warns about expiring partner
/// certificates. `None` when no document is configured.
pub fn spawn(
    gate: Arc<InboundGate>,
    clock: fn() -> i64,
    config: &PartnersConfig,
) -> Option<tokio::task::JoinHandle<()>> {
    gate.partners()?;
    let refresher = Refresher {
        gate,
        clock,
        config: config.clone(),
        last_failure: [None, None],
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
}

impl Refresher {
    async fn run(mut self) {
        let interval = Duration::from_secs(self.config.check_seconds);
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
        if let PartnersSource::Path(_) = &self.config.source {
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
        if let (Some(source @ PartnersSource::Path(_)), Some(shadow)) =
            (self.config.shadow.clone(), &state.shadow)
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
        let bytes = read_source_async(source).await?;
        if Thumbprint::Sha256(sha256(&bytes)).to_string() == current_sha256 {
            return Ok(None);
        }
        compile(source, &bytes, self.gate.policy(), now)
            .map(Some)
            .map_err(|e| format!("{}: {e}", source.describe()))
    }
}
