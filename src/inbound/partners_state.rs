//! The partners in force at run time: the current compiled document with where it came
//! from, the last reload error, the certificates last seen per partner (for expiry
//! warnings), and the shadow candidate with its count of differences.
//!
//! Owns: the state the gate swaps and `/api/health` reports. The gate holds it and is the
//! only one to swap the enforced set (clearing its cache in the same step); the shadow
//! never changes an answer.
//! Must not: read files or settings (`partner_source` does), know HTTP, or decide about a
//! certificate itself (that is `client_cert`).

use crate::inbound::client_cert::partners::{Grant, PartnerSet};
use crate::inbound::client_cert::{Accepted, CertError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

/// At most this many certificates' shadow decisions are remembered (then forgotten at once).
const MAX_SHADOW_MEMO: usize = 10_000;
/// A remembered shadow decision is reused for at most this many seconds.
const SHADOW_MEMO_SECONDS: i64 = 60;
/// At most this many (certificate, function) differences are logged; later ones are only
/// counted.
const MAX_LOGGED_DIFFERENCES: usize = 10_000;

/// A compiled document and where it came from.
#[derive(Debug)]
pub struct Active {
    pub set: PartnerSet,
    /// e.g. `file /home/site/partners.json`.
    pub source: String,
    /// SHA-256 of the document's bytes, uppercase hex.
    pub sha256: String,
    /// Unix seconds.
    pub loaded_at: i64,
}

/// The most recent certificate seen for one partner.
#[derive(Debug, Clone)]
struct Seen {
    thumbprint: String,
    not_after: i64,
    warning_days: u32,
    seen_at: i64,
    last_warned: Option<i64>,
}

/// The partners in force and what operators are told about them.
pub struct PartnersState {
    current: RwLock<Arc<Active>>,
    last_error: Mutex<Option<(i64, String)>>,
    seen: Mutex<HashMap<String, Seen>>,
    pub(crate) shadow: Option<Shadow>,
}

/// The candidate document and the differences it would make.
pub struct Shadow {
    current: RwLock<Option<Arc<Active>>>,
    last_error: Mutex<Option<(i64, String)>>,
    source: String,
    memo: Mutex<HashMap<[u8; 32], (i64, Outcome)>>,
    logged: Mutex<HashSet<([u8; 32], String)>>,
    differences: Mutex<BTreeMap<String, u64>>,
}

/// A certificate's decision as far as the partner goes (before the function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Partner(Arc<Grant>),
    Refused(&'static str),
}

impl Outcome {
    pub fn of(decision: &Result<Arc<Accepted>, CertError>) -> Self {
        match decision {
            Ok(a) => Self::Partner(a.partner.clone()),
            Err(e) => Self::Refused(e.code()),
        }
    }

    /// The answer for `function`: `allow (partner)`, `function_not_allowed (partner)` or
    /// the refusal code.
    pub fn for_function(&self, function: &str) -> String {
        match self {
            Self::Partner(g) if g.allows(function) => format!("allow ({})", g.name),
            Self::Partner(g) => format!("function_not_allowed ({})", g.name),
            Self::Refused(code) => (*code).to_owned(),
        }
    }

    fn kind(&self, function: &str) -> &'static str {
        match self {
            Self::Partner(g) if g.allows(function) => "allow",
            Self::Partner(_) => "function_not_allowed",
            Self::Refused(code) => code,
        }
    }
}

/// What `/api/health` shows under `partners`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnersStatus {
    pub source: String,
    pub sha256: String,
    pub loaded_at: String,
    pub partners: usize,
    pub last_reload_error: Option<ReloadErrorStatus>,
    pub expiring: Vec<ExpiringStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadErrorStatus {
    pub at: String,
    pub error: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringStatus {
    pub partner: String,
    pub thumbprint: String,
    pub not_after: String,
    pub days_left: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStatus {
    pub source: String,
    pub sha256: Option<String>,
    pub last_reload_error: Option<ReloadErrorStatus>,
    /// Differences since start, by `enforced -> shadow` kind (one per request).
    pub differences: BTreeMap<String, u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PartnersState {
    pub fn new(active: Active, shadow_source: Option<String>) -> Self {
        Self {
            current: RwLock::new(Arc::new(active)),
            last_error: Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
            shadow: shadow_source.map(|source| Shadow {
                current: RwLock::new(None),
                last_error: Mutex::new(None),
                source,
                memo: Mutex::new(HashMap::new()),
                logged: Mutex::new(HashSet::new()),
                differences: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The document in force; hold the guard while a decision made with it is cached.
    pub fn read(&self) -> RwLockReadGuard<'_, Arc<Active>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The document in force, without holding a lock.
    pub fn active(&self) -> Arc<Active> {
        self.read().clone()
    }

    /// Swaps the document while `while_held` runs (the gate clears its cache there).
    pub(crate) fn replace(&self, active: Active, while_held: impl FnOnce()) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(active);
        while_held();
        drop(current);
        *lock(&self.last_error) = None;
    }

    /// Records a failed reload (the document in force stays).
    pub fn reload_failed(&self, now: i64, error: String) {
        *lock(&self.last_error) = Some((now, error));
    }

    /// Notes the certificate a partner was just accepted with.
    pub fn saw(&self, accepted: &Accepted, now: i64) {
        let mut seen = lock(&self.seen);
        let name = &accepted.partner.name;
        let entry = Seen {
            thumbprint: accepted.info.thumbprint_sha256.clone(),
            not_after: accepted.info.not_after,
            warning_days: accepted.partner.not_after_warning_days,
            seen_at: now,
            last_warned: None,
        };
        match seen.get_mut(name) {
            Some(s) if s.thumbprint == entry.thumbprint => {
                s.seen_at = now;
                s.warning_days = entry.warning_days;
            }
            Some(s) if s.seen_at <= now => *s = entry,
            Some(_) => {}
            None => {
                seen.insert(name.clone(), entry);
            }
        }
    }

    fn expiring(&self, now: i64) -> Vec<ExpiringStatus> {
        let seen = lock(&self.seen);
        let mut out: Vec<ExpiringStatus> = seen
            .iter()
            .filter(|(_, s)| s.not_after - now <= i64::from(s.warning_days) * 86_400)
            .map(|(name, s)| ExpiringStatus {
                partner: name.clone(),
                thumbprint: s.thumbprint.clone(),
                not_after: crate::clock::rfc3339(s.not_after),
                days_left: (s.not_after - now).div_euclid(86_400),
            })
            .collect();
        out.sort_by(|a, b| a.partner.cmp(&b.partner));
        out
    }

    /// Logs a warning, at most once a day per partner, for each partner whose most
    /// recently seen certificate expires within its `notAfterWarningDays`.
    pub fn warn_expiring(&self, now: i64) {
        let mut seen = lock(&self.seen);
        for (name, s) in seen.iter_mut() {
            let left = s.not_after - now;
            let due = s.last_warned.is_none_or(|t| now - t >= 86_400);
            if left <= i64::from(s.warning_days) * 86_400 && due {
                s.last_warned = Some(now);
                tracing::warn!(
                    partner = %name,
                    thumbprint = %s.thumbprint,
                    not_after = %crate::clock::rfc3339(s.not_after),
                    days_left = left.div_euclid(86_400),
                    "partner certificate expires soon"
                );
            }
        }
    }

    pub fn status(&self, now: i64) -> PartnersStatus {
        let active = self.active();
        let error_status = |e: &Option<(i64, String)>| {
            e.as_ref().map(|(at, error)| ReloadErrorStatus {
                at: crate::clock::rfc3339(*at),
                error: error.clone(),
            })
        };
        PartnersStatus {
            source: active.source.clone(),
            sha256: active.sha256.clone(),
            loaded_at: crate::clock::rfc3339(active.loaded_at),
            partners: active.set.len(),
            last_reload_error: error_status(&lock(&self.last_error)),
            expiring: self.expiring(now),
            shadow: self.shadow.as_ref().map(|s| ShadowStatus {
                source: s.source.clone(),
                sha256: s.active().map(|a| a.sha256.clone()),
                last_reload_error: error_status(&lock(&s.last_error)),
                differences: lock(&s.differences).clone(),
            }),
        }
    }
}

impl Shadow {
    pub fn active(&self) -> Option<Arc<Active>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace(&self, active: Active) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(active));
        lock(&self.memo).clear();
        *lock(&self.last_error) = None;
    }

    pub fn reload_failed(&self, now: i64, error: String) {
        *lock(&self.last_error) = Some((now, error));
    }

    /// The remembered shadow outcome for a certificate, if fresh.
    pub(crate) fn remembered(&self, key: &[u8; 32], now: i64) -> Option<Outcome> {
        lock(&self.memo)
            .get(key)
            .filter(|(at, _)| now - at <= SHADOW_MEMO_SECONDS && *at <= now)
            .map(|(_, o)| o.clone())
    }

    pub(crate) fn remember(&self, key: [u8; 32], outcome: Outcome, now: i64) {
        let mut memo = lock(&self.memo);
        if memo.len() >= MAX_SHADOW_MEMO {
            memo.clear();
        }
        memo.insert(key, (now, outcome));
    }

    /// Counts and (once per certificate and function) logs a difference.
    pub(crate) fn compare(
        &self,
        key: [u8; 32],
        thumbprint: &str,
        function: &str,
        enforced: &Outcome,
        shadow: &Outcome,
    ) {
        let (e, s) = (
            enforced.for_function(function),
            shadow.for_function(function),
        );
        if e == s {
            return;
        }
        let kind = format!("{} -> {}", enforced.kind(function), shadow.kind(function));
        *lock(&self.differences).entry(kind).or_insert(0) += 1;
        let mut logged = lock(&self.logged);
        if logged.len() < MAX_LOGGED_DIFFERENCES && logged.insert((key, function.to_owned())) {
            tracing::warn!(
                thumbprint,
                function,
                enforced = %e,
                shadow = %s,
                "shadow partners document decides differently"
            );
        }
    }
}
