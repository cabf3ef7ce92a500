//! Outbound mTLS: calling the partner API at `REMOTE_API_URL` with the app's own client
//! certificate.
//!
//! Owns: the cached identity and its HTTP client, the background loader (first load at
//! start-up, refresh every `OUTBOUND_CLIENT_CERT_REFRESH_MINUTES` and before `notAfter`,
//! backoff after failures), the partner call with its deadline and one safe retry, and
//! what `/api/health` says about the certificate.
//! Must not: map errors to HTTP (that is `http_error`), block start-up, or log secrets.
//!
//! Sub-modules: [`config`] (settings), [`identity`] (sources, in order), [`key_vault`],
//! [`credential`] (the Azure credential Key Vault is read with), [`pkcs12`] (bytes → key
//! material, pure), [`client`] (reqwest clients, error kinds), [`check`] (`handler outbound
//! check`).
//!
//! Lifecycle: [`Outbound::start`] spawns the loader on the current Tokio runtime and returns
//! at once. A call made while the first load runs waits for it (bounded by the call
//! timeout). After a failed load with no usable certificate the loader retries on its own
//! with a backoff (2 s, doubling, at most 5 min); a call made meanwhile wakes it when the
//! last attempt ended at least 2 s ago and waits for that attempt, otherwise it answers at
//! once with what was tried. A failed refresh keeps the previous identity until its
//! `notAfter`.

pub mod check;
pub mod client;
pub mod config;
pub mod credential;
mod error;
pub mod identity;
pub mod key_vault;
pub mod pkcs12;
pub mod redact;
pub mod request;
mod secret;

pub use config::{
    FileConfig, KeyVaultConfig, NetworkOverrides, OutboundConfig, ProxyConfig, Secret,
};
pub use error::OutboundError;
pub use identity::{ClientIdentity, LoadFailure, SourceKind};
pub use request::{PartnerRequest, PartnerResponse, MAX_RESPONSE_BYTES};

use crate::clock::system_clock;
use bytes::Bytes;
use client::FailureKind;
use identity::IdentitySource;
use openssl::x509::X509;
use reqwest::Method;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// A successful partner call (any 2xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundSuccess {
    pub status_code: u16,
    pub certificate_thumbprint: String,
    pub source: &'static str,
}

/// What `/api/health` reports about the outbound certificate (never secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundStatus {
    /// `ready`, `loading` or `unavailable`.
    pub state: &'static str,
    /// `keyVault` or `file` when ready.
    pub source: Option<&'static str>,
    pub thumbprint: Option<String>,
    /// RFC 3339.
    pub not_after: Option<String>,
    /// The Azure credential Key Vault is read with (`AZURE_CREDENTIAL`'s value, or what
    /// `auto` chose), when Key Vault is configured.
    pub credential: Option<&'static str>,
}

/// The identity in use and the client that presents it.
struct Active {
    identity: ClientIdentity,
    client: reqwest::Client,
}

#[derive(Clone, Default)]
struct Snapshot {
    active: Option<Arc<Active>>,
    loading: bool,
    failure: Option<Arc<LoadFailure>>,
    /// After a failure: the earliest time a request may trigger another attempt.
    retry_at: Option<Instant>,
}

impl Snapshot {
    fn usable(&self, now: i64) -> Option<Arc<Active>> {
        self.active
            .as_ref()
            .filter(|a| a.identity.valid_at(now))
            .cloned()
    }
}

struct Inner {
    config: OutboundConfig,
    remote_roots: Vec<X509>,
    state: watch::Sender<Snapshot>,
    wake: Notify,
}

/// The outbound client and the identity it presents.
pub struct Outbound {
    inner: Arc<Inner>,
    loader: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if let Some(task) = &self.loader {
            task.abort();
        }
    }
}

impl Outbound {
    /// Starts loading the identity in the background on the current Tokio runtime. Never
    /// blocks and never fails: problems show in `status()` and in call errors.
    pub fn start(config: OutboundConfig) -> Arc<Self> {
        let remote_roots = match &config.remote_ca_path {
            None => Vec::new(),
            Some(path) => crate::pki_files::read_certificates(path).unwrap_or_else(|e| {
                tracing::error!(setting = "REMOTE_API_CA_PATH", error = %e, "cannot read extra CAs");
                Vec::new()
            }),
        };
        let has_source = config.has_identity_source();
        let initial = Snapshot {
            loading: has_source,
            failure: (!has_source).then(|| Arc::new(LoadFailure { attempts: vec![] })),
            ..Snapshot::default()
        };
        let inner = Arc::new(Inner {
            config,
            remote_roots,
            state: watch::channel(initial).0,
            wake: Notify::new(),
        });
        let loader = if has_source {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => Some(handle.spawn(run_loader(inner.clone()))),
                Err(_) => {
                    tracing::error!("outbound certificate: no async runtime; not loading");
                    inner.state.send_modify(|s| {
                        s.loading = false;
                        s.failure = Some(Arc::new(LoadFailure { attempts: vec![] }));
                    });
                    None
                }
            }
        } else {
            tracing::info!("outbound certificate: no source configured");
            None
        };
        Arc::new(Self { inner, loader })
    }

    /// Calls `REMOTE_API_URL` (GET) presenting the current identity. The whole call,
    /// including waiting for a first load, is bounded by `REMOTE_API_TIMEOUT_SECONDS`.
    pub async fn call(&self) -> Result<OutboundSuccess, OutboundError> {
        let url = self
            .inner
            .config
            .remote_api_url
            .clone()
            .ok_or(OutboundError::NotConfigured)?;
        let deadline = Instant::now() + self.inner.config.timeout;
        let active = self.identity(deadline).await?;
        self.send(&url, &active, deadline).await
    }

    /// What `/api/health` shows.
    pub fn status(&self) -> OutboundStatus {
        let s = self.inner.state.borrow();
        let credential = self
            .inner
            .config
            .key_vault
            .as_ref()
            .map(|kv| kv.credential.kind().as_str());
        match s.usable(system_clock()) {
            Some(a) => OutboundStatus {
                credential,
                state: "ready",
                source: Some(a.identity.source.as_str()),
                thumbprint: Some(a.identity.thumbprint().to_owned()),
                not_after: Some(crate::clock::rfc3339(a.identity.not_after())),
            },
            None => OutboundStatus {
                credential,
                state: if s.loading { "loading" } else { "unavailable" },
                source: None,
                thumbprint: None,
                not_after: None,
            },
        }
    }

    /// The current identity, waiting for a load in flight (or one this call triggers after
    /// the backoff) until `deadline`.
    async fn identity(&self, deadline: Instant) -> Result<Arc<Active>, OutboundError> {
        let mut rx = self.inner.state.subscribe();
        loop {
            {
                let s = rx.borrow_and_update();
                if let Some(active) = s.usable(system_clock()) {
                    return Ok(active);
                }
                if !s.loading {
                    let due = s.retry_at.is_none_or(|t| t <= Instant::now());
                    if self.loader.is_none() || !due {
                        return Err(no_identity(&s));
                    }
                    self.inner.wake.notify_one();
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(no_identity(&rx.borrow())),
                Err(_) => {
                    let s = rx.borrow();
                    return Err(if s.loading && s.failure.is_none() {
                        OutboundError::IdentityLoading {
                            seconds: self.inner.config.timeout.as_secs(),
                        }
                    } else {
                        no_identity(&s)
                    });
                }
            }
        }
    }

    async fn send(
        &self,
        url: &str,
        active: &Active,
        deadline: Instant,
    ) -> Result<OutboundSuccess, OutboundError> {
        let seconds = self.inner.config.timeout.as_secs();
        let response = self
            .send_retrying(deadline, &Method::GET, |remaining| {
                active.client.get(url).timeout(remaining)
            })
            .await?;
        let status = response.status().as_u16();
        let body = drain(response, deadline).await;
        tracing::info!(
            status,
            body = ?body,
            thumbprint = %active.identity.thumbprint(),
            source = active.identity.source.as_str(),
            "partner call answered"
        );
        if !(200..300).contains(&status) {
            return Err(OutboundError::RemoteStatus { status });
        }
        // A 2xx counts once its body has arrived (or the drain limit is reached).
        match body {
            Drained::Complete | Drained::Limit => Ok(OutboundSuccess {
                status_code: status,
                certificate_thumbprint: active.identity.thumbprint().to_owned(),
                source: active.identity.source.as_str(),
            }),
            Drained::TimedOut => Err(OutboundError::Timeout { seconds }),
            Drained::Failed(detail) => Err(OutboundError::Request { detail }),
        }
    }

    /// Sends the request `build` makes (given the time left) until `deadline`. A refused
    /// connection means the request never reached the partner: it is tried once more, if
    /// time allows. Nothing else is retried.
    async fn send_retrying(
        &self,
        deadline: Instant,
        method: &Method,
        build: impl Fn(Duration) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OutboundError> {
        let seconds = self.inner.config.timeout.as_secs();
        let mut retried = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(OutboundError::Timeout { seconds });
            }
            let e = match build(remaining).send().await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            let kind = client::classify(&e);
            let e = e.without_url();
            let detail = client::chain_text(&e);
            if kind == FailureKind::Refused && !retried && remaining > Duration::from_secs(1) {
                tracing::info!(method = %method, error = %detail, "partner refused the connection; retrying once");
                retried = true;
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            tracing::warn!(method = %method, kind = ?kind, error = %detail, "partner call failed");
            return Err(match kind {
                FailureKind::Timeout => OutboundError::Timeout { seconds },
                FailureKind::Tls => OutboundError::Tls { detail },
                FailureKind::Refused | FailureKind::Unreachable => {
                    OutboundError::Unreachable { detail }
                }
                FailureKind::Other => OutboundError::Request { detail },
            });
        }
    }
}

fn no_identity(s: &Snapshot) -> OutboundError {
    OutboundError::NoIdentity {
        message: s.failure.as_ref().map_or_else(
            || "the outbound client certificate is not available".to_owned(),
            |f| f.to_string(),
        ),
    }
}

/// The most of a partner's body that is read (and discarded, so the connection can be
/// reused); a longer body is cut off there and the connection closed.
pub const DRAIN_LIMIT: usize = 1 << 20;

/// How reading the partner's body ended.
#[derive(Debug)]
enum Drained {
    Complete,
    /// [`DRAIN_LIMIT`] bytes read; the rest is not waited for.
    Limit,
    /// The deadline came while the body was still arriving.
    TimedOut,
    Failed(String),
}

/// Reads (and discards) up to [`DRAIN_LIMIT`] bytes of the body, until `deadline`.
async fn drain(mut response: reqwest::Response, deadline: Instant) -> Drained {
    let mut read = 0usize;
    loop {
        if read >= DRAIN_LIMIT {
            return Drained::Limit;
        }
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return Drained::TimedOut,
            Ok(Ok(Some(chunk))) => read += chunk.len(),
            Ok(Ok(None)) => return Drained::Complete,
            Ok(Err(e)) if e.is_timeout() => return Drained::TimedOut,
            Ok(Err(e)) => return Drained::Failed(client::chain_text(&e.without_url())),
        }
    }
}

/// The background loader: loads, publishes, sleeps until the next refresh (or a request's
/// wake-up after a failure), forever. Aborted when the `Outbound` is dropped.
async fn run_loader(inner: Arc<Inner>) {
    let (sources, setup_failures) = IdentitySource::from_config(&inner.config);
    load_loop(&inner, &sources, &setup_failures).await;
}

async fn load_loop(
    inner: &Inner,
    sources: &[IdentitySource],
    setup_failures: &[identity::Attempt],
) {
    let config = &inner.config;
    let mut failures_in_row: u32 = 0;
    loop {
        inner.state.send_modify(|s| s.loading = true);
        let now = system_clock();
        let current = inner.state.borrow().active.clone();
        let loaded = identity::load_first(
            sources,
            setup_failures,
            now,
            current.as_ref().map(|c| &c.identity),
        )
        .await;
        let next = match loaded.and_then(|id| activate(inner, current.as_deref(), id)) {
            Ok(active) => {
                failures_in_row = 0;
                let next = next_refresh(config.refresh, active.identity.not_after(), now);
                inner.state.send_modify(|s| {
                    s.active = Some(active);
                    s.loading = false;
                    s.failure = None;
                    s.retry_at = None;
                });
                next
            }
            Err(failure) => {
                failures_in_row = failures_in_row.saturating_add(1);
                let backoff = backoff(config, failures_in_row);
                let keeps = current.as_ref().filter(|a| a.identity.valid_at(now));
                match keeps {
                    Some(old) => tracing::warn!(
                        error = %failure,
                        keeping = %old.identity.thumbprint(),
                        retry_in_s = backoff.as_secs_f64(),
                        "outbound certificate refresh failed; keeping the current one"
                    ),
                    None => tracing::error!(
                        error = %failure,
                        retry_in_s = backoff.as_secs_f64(),
                        "outbound certificate could not be loaded"
                    ),
                }
                let next = keeps.map_or(backoff, |old| {
                    backoff.min(next_refresh(config.refresh, old.identity.not_after(), now))
                });
                let keep = keeps.cloned();
                inner.state.send_modify(|s| {
                    s.active = keep;
                    s.loading = false;
                    s.failure = Some(Arc::new(failure));
                    // A request may pull the next attempt forward, but not sooner than this.
                    s.retry_at = Some(Instant::now() + config.retry_on_request_after.min(backoff));
                });
                next
            }
        };
        let wake_at = Instant::now() + next;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(wake_at) => break,
                () = inner.wake.notified() => {
                    let s = inner.state.borrow();
                    let due = s.retry_at.is_none_or(|t| t <= Instant::now());
                    if s.usable(system_clock()).is_none() && due {
                        break;
                    }
                }
            }
        }
    }
}

/// Builds the client for a freshly loaded identity, reusing the current one when neither
/// the certificate nor its chain changed (keeps pooled connections).
fn activate(
    inner: &Inner,
    current: Option<&Active>,
    identity: ClientIdentity,
) -> Result<Arc<Active>, LoadFailure> {
    let same = |c: &&Active| {
        c.identity.thumbprint() == identity.thumbprint()
            && same_chain(&c.identity.material.chain, &identity.material.chain)
    };
    if let Some(cur) = current.filter(same) {
        tracing::debug!(thumbprint = %identity.thumbprint(), "outbound certificate unchanged");
        return Ok(Arc::new(Active {
            client: cur.client.clone(),
            identity,
        }));
    }
    let client = client::partner_client(&inner.config, &identity.material, &inner.remote_roots)
        .map_err(|e| LoadFailure {
            attempts: vec![identity::Attempt {
                source: identity.origin.clone(),
                error: identity::SourceError::Material(pkcs12::KeyMaterialError::BadCertificate {
                    reason: e.reason,
                }),
            }],
        })?;
    tracing::info!(
        thumbprint = %identity.thumbprint(),
        previous = current.map(|c| c.identity.thumbprint()),
        source = identity.source.as_str(),
        origin = %identity.origin,
        not_after = %crate::clock::rfc3339(identity.not_after()),
        "outbound certificate loaded"
    );
    Ok(Arc::new(Active { identity, client }))
}

/// Whether two intermediate chains are the same certificates in the same order.
fn same_chain(a: &[X509], b: &[X509]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| matches!((x.to_der(), y.to_der()), (Ok(x), Ok(y)) if x == y))
}

/// The next refresh: the configured interval, but ahead of `notAfter` (by half the time
/// left, at most 5 minutes), never sooner than a second.
fn next_refresh(refresh: Duration, not_after: i64, now: i64) -> Duration {
    let left = Duration::from_secs(u64::try_from(not_after.saturating_sub(now)).unwrap_or(0));
    let ahead = (left / 2).min(Duration::from_secs(300));
    refresh
        .min(left.saturating_sub(ahead))
        .max(Duration::from_secs(1))
}

/// `retry_first`, doubling per failure in a row, capped by `retry_max` and the refresh.
fn backoff(config: &OutboundConfig, failures_in_row: u32) -> Duration {
    let factor = 1u32 << failures_in_row.saturating_sub(1).min(16);
    config
        .retry_first
        .saturating_mul(factor)
        .min(config.retry_max)
        .min(config.refresh)
}

// === any partner request (see `request`) ===

impl Outbound {
    /// `REMOTE_API_URL`, the partner this app is configured to call (if set).
    pub fn remote_api_url(&self) -> Option<&str> {
        self.inner.config.remote_api_url.as_deref()
    }

    /// Sends `request` presenting the app's identity and returns the partner's answer,
    /// any status. Bounded as a whole (identity, connect, TLS, request, response body) by
    /// `REMOTE_API_TIMEOUT_SECONDS`; a refused connection (nothing was sent) is retried
    /// once; redirects are returned, not followed.
    pub async fn request(&self, request: PartnerRequest) -> Result<PartnerResponse, OutboundError> {
        let body = request
            .body
            .map_err(|detail| OutboundError::Request { detail })?;
        let deadline = Instant::now() + self.inner.config.timeout;
        let active = self.identity(deadline).await?;
        let seconds = self.inner.config.timeout.as_secs();
        let response = self
            .send_retrying(deadline, &request.method, |remaining| {
                active
                    .client
                    .request(request.method.clone(), &request.url)
                    .headers(request.headers.clone())
                    .body(body.clone())
                    .timeout(remaining)
            })
            .await?;
        read_response(response, &active, &request.method, deadline, seconds).await
    }
}

/// Reads the whole body (at most [`MAX_RESPONSE_BYTES`]) before `deadline`.
async fn read_response(
    mut response: reqwest::Response,
    active: &Active,
    method: &Method,
    deadline: Instant,
    seconds: u64,
) -> Result<PartnerResponse, OutboundError> {
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Err(_) => return Err(OutboundError::Timeout { seconds }),
            Ok(Err(e)) => {
                return Err(OutboundError::Request {
                    detail: client::chain_text(&e.without_url()),
                })
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(OutboundError::Request {
                        detail: format!(
                            "the partner's response is over {MAX_RESPONSE_BYTES} bytes"
                        ),
                    });
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    tracing::info!(
        method = %method,
        status,
        thumbprint = %active.identity.thumbprint(),
        source = active.identity.source.as_str(),
        "partner call answered"
    );
    Ok(PartnerResponse {
        status,
        headers,
        body: Bytes::from(body),
        certificate_thumbprint: active.identity.thumbprint().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_happens_ahead_of_expiry_when_that_comes_first() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_refresh(hour, 10_000 + 7200, 10_000), hour);
        assert_eq!(
            next_refresh(hour, 10_000 + 1200, 10_000),
            Duration::from_secs(900)
        );
        assert_eq!(next_refresh(hour, 10_000, 10_000), Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = OutboundConfig {
            retry_first: Duration::from_secs(2),
            retry_max: Duration::from_secs(10),
            ..OutboundConfig::default()
        };
        let got: Vec<u64> = (1..=5).map(|n| backoff(&c, n).as_secs()).collect();
        assert_eq!(got, vec![2, 4, 8, 10, 10]);
    }

    /// The README's schedule, with the default settings and the real loader (on Tokio's
    /// paused clock, so the 17 minutes take no time).
    #[tokio::test(start_paused = true)]
    async fn a_failing_source_is_retried_after_2_s_doubling_up_to_5_minutes() {
        let inner = Arc::new(Inner {
            config: OutboundConfig::default(),
            remote_roots: Vec::new(),
            state: watch::channel(Snapshot {
                loading: true,
                ..Snapshot::default()
            })
            .0,
            wake: Notify::new(),
        });
        let failing = vec![identity::Attempt {
            source: "a source that always fails".into(),
            error: identity::SourceError::FileMissing,
        }];
        let mut rx = inner.state.subscribe();
        let loader = {
            let inner = inner.clone();
            tokio::spawn(async move { load_loop(&inner, &[], &failing).await })
        };
        let mut failed_at = Vec::new();
        while failed_at.len() < 11 {
            rx.changed().await.unwrap();
            let s = rx.borrow_and_update().clone();
            if !s.loading && s.failure.is_some() {
                failed_at.push(Instant::now());
            }
        }
        loader.abort();
        let gaps: Vec<u64> = failed_at
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs())
            .collect();
        assert_eq!(gaps, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
