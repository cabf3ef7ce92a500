//! The inbound gate: header bytes in, a cached decision out, each rejection logged once.
//!
//! Owns: combining `client_cert` (pure rules) with the `cache` and the log line an
//! operator searches for, and holding the current CRL snapshot, which `crate::inbound::crl_store`
//! swaps in. Swapping clears the cache under the same lock every validation holds, so a
//! cached acceptance never outlives the CRL set it was checked against.
//! Likewise for the partners document in force (`crate::inbound::partners_state`), which
//! `crate::inbound::partner_source` swaps in, and the shadow document it consults.
//! The header format (`CLIENT_CERT_HEADER_FORMAT`) is the gate's: it decodes the values of
//! the configured header(s) into the leaf and the forwarded chain. A decision is cached
//! under the leaf's SHA-256 when nothing was forwarded with it (as always for `arr`), and
//! under a digest of the leaf *and* the forwarded chain otherwise, so a decision made with
//! one chain is never reused for another.
//! Must not: know about HTTP or the invocation format, or read CRL files.

use crate::inbound::cache::{Decision, ValidationCache};
use crate::inbound::client_cert::forwarded::{self, Forwarded, HeaderFormat};
use crate::inbound::client_cert::partners::PartnerSet;
use crate::inbound::client_cert::revocation::http_distribution_points;
use crate::inbound::client_cert::{
    self, CertError, CrlSet, Policy, Revocation, RevocationStatus, Thumbprint,
};
use crate::inbound::partners_state::{Active, Outcome, PartnersState};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// At most this many distribution points are remembered for fetching.
const MAX_WANTED_DISTRIBUTION_POINTS: usize = 256;

/// The inbound policy with its cache and, when revocation is on, the current CRLs.
pub struct InboundGate {
    policy: Policy,
    format: HeaderFormat,
    cache: ValidationCache,
    revocation: Option<RevocationGate>,
    /// The partners document in force, when one is configured (else the flat settings).
    partners: Option<PartnersState>,
}

/// The swappable CRL snapshot and what the fetcher should download next.
struct RevocationGate {
    current: RwLock<Arc<CrlSet>>,
    fail_open: bool,
    /// Remember the distribution points of certificates whose status was unknown.
    collect_wanted: bool,
    wanted: Mutex<BTreeSet<String>>,
    wanted_changed: tokio::sync::Notify,
}

impl InboundGate {
    pub fn new(policy: Policy, cache: ValidationCache) -> Self {
        Self {
            policy,
            format: HeaderFormat::Arr,
            cache,
            revocation: None,
            partners: None,
        }
    }

    /// The same gate reading certificates forwarded in `format` (default `arr`).
    pub fn with_format(mut self, format: HeaderFormat) -> Self {
        self.format = format;
        self
    }

    /// The header format this gate decodes.
    pub fn format(&self) -> HeaderFormat {
        self.format
    }

    /// A gate that checks revocation against `crls` (replaced later with
    /// [`Self::replace_crls`]). `collect_wanted` remembers the CRL distribution points of
    /// certificates whose status was unknown, for [`Self::take_wanted_distribution_points`].
    pub fn with_revocation(
        policy: Policy,
        cache: ValidationCache,
        crls: CrlSet,
        fail_open: bool,
        collect_wanted: bool,
    ) -> Self {
        Self {
            policy,
            format: HeaderFormat::Arr,
            cache,
            revocation: Some(RevocationGate {
                current: RwLock::new(Arc::new(crls)),
                fail_open,
                collect_wanted,
                wanted: Mutex::new(BTreeSet::new()),
                wanted_changed: tokio::sync::Notify::new(),
            }),
            partners: None,
        }
    }

    /// The same gate deciding by a partners document (replaced later with
    /// [`Self::replace_partners`]).
    pub fn with_partners(mut self, partners: PartnersState) -> Self {
        self.partners = Some(partners);
        self
    }

    /// The partners state, when a partners document is configured.
    pub fn partners(&self) -> Option<&PartnersState> {
        self.partners.as_ref()
    }

    /// Installs a new partners document and forgets every cached decision, atomically
    /// with respect to [`Self::check`] (as [`Self::replace_crls`] does). Does nothing when
    /// no document is configured.
    pub fn replace_partners(&self, active: Active) {
        if let Some(p) = &self.partners {
            p.replace(active, || self.cache.clear());
        }
    }

    /// With a shadow document configured, decides the request again by the candidate and
    /// counts and logs a difference from `enforced` for `function`. Never changes the
    /// answer.
    pub fn shadow_compare<V: AsRef<[u8]>>(
        &self,
        values: &[V],
        chain: &[V],
        function: &str,
        enforced: &Decision,
        now: i64,
    ) {
        let Some(state) = &self.partners else {
            return;
        };
        let Some(shadow) = &state.shadow else {
            return;
        };
        let Some(candidate) = shadow.active() else {
            return;
        };
        let Ok(forwarded) = forwarded::decode(self.format, values, chain) else {
            return;
        };
        let key = cache_key(&forwarded);
        let outcome = match shadow.remembered(&key, now) {
            Some(o) => o,
            None => {
                let crls = self.crls();
                let revocation =
                    self.revocation
                        .as_ref()
                        .zip(crls.as_deref())
                        .map(|(r, c)| Revocation {
                            crls: c,
                            fail_open: r.fail_open,
                        });
                let decided = client_cert::validate_forwarded(
                    &forwarded,
                    &self.policy,
                    Some(&candidate.set),
                    revocation.as_ref(),
                    now,
                )
                .map(|(a, _)| Arc::new(a));
                let o = Outcome::of(&decided);
                shadow.remember(key, o.clone(), now);
                o
            }
        };
        let thumbprint = Thumbprint::of_der(&forwarded.leaf).0.to_string();
        shadow.compare(key, &thumbprint, function, &Outcome::of(enforced), &outcome);
    }

    /// The current CRL set, when revocation checking is on.
    pub fn crls(&self) -> Option<Arc<CrlSet>> {
        self.revocation.as_ref().map(|r| {
            r.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Installs a new CRL set and forgets every cached decision, atomically with respect
    /// to [`Self::check`]. Does nothing when revocation checking is off.
    pub fn replace_crls(&self, crls: CrlSet) {
        if let Some(r) = &self.revocation {
            let mut current = r.current.write().unwrap_or_else(PoisonError::into_inner);
            *current = Arc::new(crls);
            self.cache.clear();
        }
    }

    /// The distribution points remembered since the last call (emptied).
    pub fn take_wanted_distribution_points(&self) -> Vec<String> {
        self.revocation.as_ref().map_or_else(Vec::new, |r| {
            let mut wanted = r.wanted.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *wanted).into_iter().collect()
        })
    }

    /// Completes when a new distribution point was remembered (never when revocation is
    /// off).
    pub async fn wanted_distribution_points_changed(&self) {
        match &self.revocation {
            Some(r) => r.wanted_changed.notified().await,
            None => std::future::pending().await,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn cache(&self) -> &ValidationCache {
        &self.cache
    }

    /// Decides on the certificate header values of one request at `now` (Unix seconds),
    /// with no chain header (`X-ARR-ClientCert` for the default format).
    pub fn check<V: AsRef<[u8]>>(&self, values: &[V], now: i64) -> Decision {
        self.check_forwarded::<V>(values, &[], now)
    }

    /// Decides on the certificate header values and the chain header values (`rfc9440`'s
    /// `Client-Cert-Chain`; other formats have none) of one request at `now`.
    pub fn check_forwarded<V: AsRef<[u8]>>(&self, values: &[V], chain: &[V], now: i64) -> Decision {
        // The common case: these exact header values were accepted before. Rejections take
        // the full path so their log line can name the certificate.
        let joined;
        let single = match (values, chain) {
            ([one], []) => Some(one.as_ref()),
            ([one], more) => {
                joined = alias_of(one.as_ref(), more);
                Some(joined.as_slice())
            }
            _ => None,
        };
        if let Some((_, Ok(accepted))) = single.and_then(|h| self.cache.get_by_header(h, now)) {
            return Ok(accepted);
        }
        let forwarded = match forwarded::decode(self.format, values, chain) {
            Ok(f) => f,
            Err(e) => {
                log_rejection(&e, None);
                return Err(e);
            }
        };
        let der = &forwarded.leaf;
        let key = cache_key(&forwarded);
        // Held across lookup, validation and insertion: `replace_crls` waits for it, so no
        // decision made with an old CRL set lands in the cache after the swap cleared it.
        let crls = self
            .revocation
            .as_ref()
            .map(|r| (r, r.current.read().unwrap_or_else(PoisonError::into_inner)));
        // Held likewise: `replace_partners` waits for it.
        let partners = self.partners.as_ref().map(PartnersState::read);
        let set = partners.as_ref().map(|active| &active.set);
        let decision = match self.cache.get(&key, now) {
            Some(hit) => {
                if let Some(h) = single {
                    self.cache.remember_header(key, h);
                }
                hit
            }
            None => {
                let fresh = match &crls {
                    None => self
                        .validate_with(&forwarded, None, set, now)
                        .map(|(a, _)| a),
                    Some((r, crls)) => self.validate_revocation(r, crls, &forwarded, set, now),
                }
                .map(Arc::new);
                self.cache.insert(key, &fresh, single, now);
                if let (Some(state), Ok(accepted)) = (&self.partners, &fresh) {
                    state.saw(accepted, now);
                }
                fresh
            }
        };
        drop(partners);
        drop(crls);
        if let Err(e) = &decision {
            log_rejection(e, Some(der));
        }
        decision
    }
}

/// The cache key of what was forwarded: the leaf's SHA-256 alone when no chain came with
/// it (what every `arr` request and `inspect` use), else a digest over the leaf and each
/// chain certificate, length-prefixed, so that no other split of the same bytes collides.
fn cache_key(forwarded: &Forwarded) -> [u8; 32] {
    if forwarded.chain.is_empty() {
        return client_cert::sha256(&forwarded.leaf);
    }
    let mut input = Vec::with_capacity(
        16 + forwarded.leaf.len() + forwarded.chain.iter().map(|c| c.len() + 8).sum::<usize>(),
    );
    input.extend_from_slice(b"leaf+chain");
    for cert in std::iter::once(&forwarded.leaf).chain(&forwarded.chain) {
        input.extend_from_slice(&(cert.len() as u64).to_be_bytes());
        input.extend_from_slice(cert);
    }
    client_cert::sha256(&input)
}

/// The remembered form of a certificate header value with chain header values: joined by
/// line feeds, which no header value contains, so it equals no single header value.
fn alias_of<V: AsRef<[u8]>>(value: &[u8], chain: &[V]) -> Vec<u8> {
    let mut alias = value.to_vec();
    for c in chain {
        alias.push(b'\n');
        alias.extend_from_slice(c.as_ref());
    }
    alias
}

impl InboundGate {
    fn validate_revocation(
        &self,
        r: &RevocationGate,
        set: &CrlSet,
        forwarded: &Forwarded,
        partners: Option<&PartnerSet>,
        now: i64,
    ) -> Result<client_cert::Accepted, CertError> {
        let der = &forwarded.leaf;
        let revocation = Revocation {
            crls: set,
            fail_open: r.fail_open,
        };
        match self.validate_with(forwarded, Some(&revocation), partners, now) {
            Ok((accepted, RevocationStatus::UnknownAccepted { reason })) => {
                tracing::warn!(
                    thumbprint = %Thumbprint::of_der(der).0,
                    reason = %reason,
                    setting = "CLIENT_CERT_REVOCATION_FAIL_OPEN",
                    "client certificate accepted although its revocation status is unknown"
                );
                r.remember_distribution_points(der);
                Ok(accepted)
            }
            Ok((accepted, _)) => Ok(accepted),
            Err(e) => {
                if matches!(e, CertError::RevocationUnknown { .. }) {
                    r.remember_distribution_points(der);
                }
                Err(e)
            }
        }
    }
}

impl InboundGate {
    /// The pure validation: by the partners document when one is in force, else by the
    /// flat settings.
    fn validate_with(
        &self,
        forwarded: &Forwarded,
        revocation: Option<&Revocation<'_>>,
        partners: Option<&PartnerSet>,
        now: i64,
    ) -> Result<(client_cert::Accepted, RevocationStatus), CertError> {
        client_cert::validate_forwarded(forwarded, &self.policy, partners, revocation, now)
    }
}

impl RevocationGate {
    /// Only certificates whose chain verified reach here, so the URLs were put there by a
    /// trusted CA, not by the caller.
    fn remember_distribution_points(&self, der: &[u8]) {
        if !self.collect_wanted {
            return;
        }
        let mut added = false;
        {
            let mut wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner);
            for url in http_distribution_points(der) {
                if wanted.len() < MAX_WANTED_DISTRIBUTION_POINTS && wanted.insert(url) {
                    added = true;
                }
            }
        }
        if added {
            self.wanted_changed.notify_one();
        }
    }
}

/// The longest reason a rejection's log line carries: the detail is already bounded where
/// it is made (`client_cert`), this keeps every line about a caller's certificate under a
/// few KiB whatever a future error variant holds.
const MAX_LOGGED_REASON: usize = 1024;

fn log_rejection(error: &CertError, der: Option<&[u8]>) {
    let thumbprint = der.map(|d| Thumbprint::of_der(d).0.to_string());
    let mut reason = error.to_string();
    if reason.len() > MAX_LOGGED_REASON {
        let mut end = MAX_LOGGED_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    // The partner, when the certificate was identified as one (or several) but refused.
    let partner = match error {
        CertError::WrongIssuer { partner, .. } => partner.clone(),
        CertError::AmbiguousPartner { partners } => partners.join(", "),
        _ => "-".to_owned(),
    };
    tracing::warn!(
        code = error.code(),
        thumbprint = thumbprint.as_deref().unwrap_or("-"),
        partner = %partner,
        reason = %reason,
        "client certificate rejected"
    );
}
