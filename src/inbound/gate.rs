//! The inbound gate: header bytes in, a cached decision out, each rejection logged once.
//!
//! Owns: combining `client_cert` (pure rules) with the `cache` and the log line an
//! operator searches for, and holding the current CRL snapshot, which `crate::inbound::crl_store`
//! swaps in. Swapping clears the cache under the same lock every validation holds, so a
//! cached acceptance never outlives the CRL set it was checked against.
//! Likewise for the partners document in force (`crate::inbound::partners_state`), which
//! `crate::inbound::partner_source` swaps in, and the shadow document it consults.
//! Must not: know about HTTP or the invocation format, or read CRL files.

use crate::inbound::cache::{Decision, ValidationCache};
use crate::inbound::client_cert::partners::PartnerSet;
use crate::inbound::client_cert::revocation::http_distribution_points;
use crate::inbound::client_cert::{
    self, header, CertError, CrlSet, Policy, Revocation, RevocationStatus, Thumbprint,
};
use crate::inbound::partners_state::{Active, Outcome, PartnersState};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// At most this many distribution points are remembered for fetching.
const MAX_WANTED_DISTRIBUTION_POINTS: usize = 256;

/// The inbound policy with its cache and, when revocation is on, the current CRLs.
pub struct InboundGate {
    policy: Policy,
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
            cache,
            revocation: None,
            partners: None,
        }
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
        let Ok(der) = header::decode(values) else {
            return;
        };
        let key = client_cert::sha256(&der);
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
                let decided = client_cert::validate_partners(
                    &der,
                    &self.policy,
                    &candidate.set,
                    revocation.as_ref(),
                    now,
                )
                .map(|(a, _)| Arc::new(a));
                let o = Outcome::of(&decided);
                shadow.remember(key, o.clone(), now);
                o
            }
        };
        let thumbprint = Thumbprint::of_der(&der).0.to_string();
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

    /// Decides on the `X-ARR-ClientCert` values of one request at `now` (Unix seconds).
    pub fn check<V: AsRef<[u8]>>(&self, values: &[V], now: i64) -> Decision {
        // The common case: this exact header value was accepted before. Rejections take
        // the full path so their log line can name the certificate.
        let single = match values {
            [one] => Some(one.as_ref()),
            _ => None,
        };
        if let Some((_, Ok(accepted))) = single.and_then(|h| self.cache.get_by_header(h, now)) {
            return Ok(accepted);
        }
        let der = match header::decode(values) {
            Ok(der) => der,
            Err(e) => {
                log_rejection(&e, None);
                return Err(e);
            }
        };
        let key = client_cert::sha256(&der);
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
                    None => self.validate_with(&der, None, set, now).map(|(a, _)| a),
                    Some((r, crls)) => self.validate_revocation(r, crls, &der, set, now),
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
            log_rejection(e, Some(&der));
        }
        decision
    }
}

impl InboundGate {
    fn validate_revocation(
        &self,
        r: &RevocationGate,
        set: &CrlSet,
        der: &[u8],
        partners: Option<&PartnerSet>,
        now: i64,
    ) -> Result<client_cert::Accepted, CertError> {
        let revocation = Revocation {
            crls: set,
            fail_open: r.fail_open,
        };
        match self.validate_with(der, Some(&revocation), partners, now) {
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
        der: &[u8],
        revocation: Option<&Revocation<'_>>,
        partners: Option<&PartnerSet>,
        now: i64,
    ) -> Result<(client_cert::Accepted, RevocationStatus), CertError> {
        match partners {
            None => client_cert::validate_with_revocation(der, &self.policy, revocation, now),
            Some(set) => client_cert::validate_partners(der, &self.policy, set, revocation, now),
        }
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
