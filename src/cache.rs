//! The validation cache: one decision per certificate, reused while it cannot change.
//!
//! Owns: bounding memory and deciding when a cached decision is stale.
//! Keyed by the SHA-256 of the certificate's DER. An acceptance is reused only inside the
//! certificate chain's validity window and for at most the configured age; rejections that
//! time could undo (expired, not yet valid, untrusted chain) are never stored.
//! Must not: validate anything itself or read the clock (callers pass `now`).

use crate::client_cert::{Accepted, CertError};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A cached decision.
pub type Decision = Result<Arc<Accepted>, CertError>;

struct Entry {
    decision: Decision,
    usable_from: i64,
    usable_until: i64,
}

/// A bounded map from certificate digest to decision.
pub struct ValidationCache {
    entries: RwLock<HashMap<[u8; 32], Entry>>,
    capacity: usize,
    max_age: i64,
}

impl ValidationCache {
    /// `capacity` 0 disables caching. `max_age_seconds` caps every entry's life.
    pub fn new(capacity: usize, max_age_seconds: u64) -> Self {
        Self {
            entries: RwLock::new(HashMap::with_capacity(capacity.min(1024))),
            capacity,
            max_age: i64::try_from(max_age_seconds).unwrap_or(i64::MAX),
        }
    }

    /// The stored decision for `key`, if it is still usable at `now`.
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<Decision> {
        let entries = self.entries.read().ok()?;
        let e = entries.get(key)?;
        (e.usable_from <= now && now <= e.usable_until).then(|| e.decision.clone())
    }

    /// Stores `decision` made at `now`, unless it is one that time alone could change.
    pub fn insert(&self, key: [u8; 32], decision: &Decision, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let expires = now.saturating_add(self.max_age);
        let (usable_from, usable_until) = match decision {
            Ok(a) => (a.valid_from, a.valid_until.min(expires)),
            Err(e) if e.depends_on_time() => return,
            Err(_) => (now, expires),
        };
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, e| e.usable_until >= now);
            if entries.len() >= self.capacity {
                // Still full of live entries: drop one arbitrary entry (HashMap order is
                // randomised per process, so an attacker cannot aim at a victim's entry).
                if let Some(victim) = entries.keys().next().copied() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                decision: decision.clone(),
                usable_from,
                usable_until,
            },
        );
    }

    /// Forgets every decision (for example when the revocation lists change).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_cert::{CertificateInfo, MatchedBy};

    fn accepted(valid_from: i64, valid_until: i64) -> Decision {
        Ok(Arc::new(Accepted {
            info: CertificateInfo {
                thumbprint_sha1: String::new(),
                thumbprint_sha256: String::new(),
                common_names: vec![],
                subject: String::new(),
                issuer: String::new(),
                serial_number: String::new(),
                not_before: valid_from,
                not_after: valid_until,
                dns_names: vec![],
                extended_key_usages: None,
                is_ca: false,
            },
            matched_by: MatchedBy::Thumbprint,
            valid_from,
            valid_until,
        }))
    }

    #[test]
    fn an_acceptance_is_never_reused_past_the_certificates_not_after() {
        let cache = ValidationCache::new(10, 3600);
        cache.insert([1; 32], &accepted(0, 1000), 500);
        assert!(cache.get(&[1; 32], 1000).is_some());
        assert!(cache.get(&[1; 32], 1001).is_none());
    }

    #[test]
    fn an_acceptance_is_not_reused_past_the_maximum_age() {
        let cache = ValidationCache::new(10, 60);
        cache.insert([1; 32], &accepted(0, 1_000_000), 500);
        assert!(cache.get(&[1; 32], 560).is_some());
        assert!(cache.get(&[1; 32], 561).is_none());
    }

    #[test]
    fn time_dependent_rejections_are_not_stored() {
        let cache = ValidationCache::new(10, 60);
        cache.insert(
            [1; 32],
            &Err(CertError::Expired {
                not_after: 1,
                now: 2,
            }),
            2,
        );
        assert!(cache.is_empty());
        cache.insert([2; 32], &Err(CertError::NotAllowlisted), 2);
        assert_eq!(cache.get(&[2; 32], 3), Some(Err(CertError::NotAllowlisted)));
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = ValidationCache::new(3, 60);
        for i in 0..10u8 {
            cache.insert([i; 32], &accepted(0, 1000), 10);
        }
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&[9; 32], 10).is_some(),
            "the newest entry is kept"
        );
    }

    #[test]
    fn a_zero_capacity_cache_stores_nothing() {
        let cache = ValidationCache::new(0, 60);
        cache.insert([1; 32], &accepted(0, 1000), 10);
        assert!(cache.get(&[1; 32], 10).is_none());
    }
}
