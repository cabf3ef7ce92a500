//! The validation cache: one decision per certificate, reused while it cannot change.
//!
//! Owns: bounding memory (entries *and* bytes: a rejection's detail comes from the caller's
//! certificate, so entries differ in size) and deciding when a cached decision is stale.
//! Keyed by the SHA-256 of the certificate's DER (the gate uses a digest over the leaf and
//! the forwarded chain when a chain came with it). An acceptance is reused only inside the
//! certificate chain's validity window and for at most the configured age; rejections that
//! time could undo (expired, not yet valid, untrusted chain) are never stored.
//! Must not: validate anything itself or read the clock (callers pass `now`).

use crate::inbound::client_cert::{Accepted, CertError};
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// A cached decision.
pub type Decision = Result<Arc<Accepted>, CertError>;

/// How many distinct header spellings (line breaks, PEM armour...) of one certificate are
/// remembered; App Service always sends the same one.
const MAX_ALIASES_PER_ENTRY: usize = 2;

/// The byte budget of a cache made with [`ValidationCache::new`]: 32 MiB, about 10,000
/// accepted certificates with their remembered headers and rendered answers.
pub const DEFAULT_MAX_BYTES: usize = 32 * 1024 * 1024;

/// What one entry costs besides its decision and aliases (map slots, bookkeeping).
const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    decision: Decision,
    usable_from: i64,
    usable_until: i64,
    /// The exact header values known to decode to this certificate.
    aliases: Vec<Box<[u8]>>,
    /// Approximate bytes this entry holds, aliases included (see [`decision_cost`]).
    cost: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<[u8; 32], Entry>,
    /// Exact header value -> digest of the certificate it decodes to, so that a repeated
    /// request skips base64 decoding and hashing. Only ever points at live entries, and
    /// only at acceptances: callers cannot fill it with headers of their choosing.
    aliases: HashMap<Box<[u8]>, [u8; 32], foldhash::fast::RandomState>,
    /// When expired entries were last swept out (Unix seconds): a full cache is swept at
    /// most once a second, so a flood of new certificates cannot make every insert scan it.
    last_sweep: i64,
    /// Sum of the entries' costs.
    bytes: usize,
}

impl Inner {
    fn usable(&self, key: &[u8; 32], now: i64) -> Option<Decision> {
        let e = self.entries.get(key)?;
        (e.usable_from <= now && now <= e.usable_until).then(|| e.decision.clone())
    }

    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(e) = self.entries.remove(key) {
            self.bytes = self.bytes.saturating_sub(e.cost);
            for alias in &e.aliases {
                self.aliases.remove(alias);
            }
        }
    }

    /// Remembers `header` for the accepted entry `key` if the byte budget allows (aliases
    /// are only a shortcut, so they never evict anything).
    fn add_alias(&mut self, key: [u8; 32], header: &[u8], max_bytes: usize) {
        if self.aliases.contains_key(header) {
            return;
        }
        // Stored twice: in the entry (to forget it with the entry) and as the map key.
        let cost = 2 * header.len() + ENTRY_OVERHEAD;
        if self.bytes.saturating_add(cost) > max_bytes {
            return;
        }
        if let Some(e) = self.entries.get_mut(&key) {
            if e.decision.is_ok() && e.aliases.len() < MAX_ALIASES_PER_ENTRY {
                let header: Box<[u8]> = header.into();
                e.aliases.push(header.clone());
                e.cost += cost;
                self.bytes += cost;
                self.aliases.insert(header, key);
            }
        }
    }

    /// Drops entries past their usable time (at most once a second).
    fn sweep(&mut self, now: i64) {
        if now <= self.last_sweep {
            return;
        }
        self.last_sweep = now;
        let stale: Vec<[u8; 32]> = self
            .entries
            .iter()
            .filter(|(_, e)| e.usable_until < now)
            .map(|(k, _)| *k)
            .collect();
        for k in &stale {
            self.remove(k);
        }
    }

    /// Drops one arbitrary entry (HashMap order is randomised per process, so an attacker
    /// cannot aim at a victim's entry). False when there was none.
    fn evict_one(&mut self) -> bool {
        match self.entries.keys().next().copied() {
            Some(victim) => {
                self.remove(&victim);
                true
            }
            None => false,
        }
    }
}

/// A bounded map from certificate digest to decision.
pub struct ValidationCache {
    inner: RwLock<Inner>,
    capacity: usize,
    max_bytes: usize,
    max_age: i64,
}

impl ValidationCache {
    /// `capacity` 0 disables caching. `max_age_seconds` caps every entry's life. Holds at
    /// most [`DEFAULT_MAX_BYTES`].
    pub fn new(capacity: usize, max_age_seconds: u64) -> Self {
        Self::with_max_bytes(capacity, max_age_seconds, DEFAULT_MAX_BYTES)
    }

    /// [`Self::new`] holding at most about `max_bytes` (decisions and remembered headers).
    pub fn with_max_bytes(capacity: usize, max_age_seconds: u64, max_bytes: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            capacity,
            max_bytes,
            max_age: i64::try_from(max_age_seconds).unwrap_or(i64::MAX),
        }
    }

    /// The stored decision for the certificate whose DER has SHA-256 `key`, if it is still
    /// usable at `now`.
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<Decision> {
        self.read().usable(key, now)
    }

    /// The stored decision for a header value seen before byte for byte, with the digest
    /// it stands for.
    pub fn get_by_header(&self, header: &[u8], now: i64) -> Option<([u8; 32], Decision)> {
        let inner = self.read();
        let key = *inner.aliases.get(header)?;
        inner.usable(&key, now).map(|d| (key, d))
    }

    /// Remembers that `header` decodes to the certificate with digest `key` (a no-op when
    /// that certificate is not cached as accepted).
    pub fn remember_header(&self, key: [u8; 32], header: &[u8]) {
        if self.capacity > 0 {
            self.write().add_alias(key, header, self.max_bytes);
        }
    }

    /// Stores `decision` made at `now` for the certificate with digest `key`, which
    /// arrived as `header` (when it was a single value), unless time alone could change
    /// the decision.
    pub fn insert(&self, key: [u8; 32], decision: &Decision, header: Option<&[u8]>, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let expires = now.saturating_add(self.max_age);
        let (usable_from, usable_until) = match decision {
            Ok(a) => (a.valid_from, a.valid_until.min(expires)),
            Err(e) if e.depends_on_time() => return,
            Err(_) => (now, expires),
        };
        let cost = decision_cost(decision);
        if cost > self.max_bytes {
            return;
        }
        let mut inner = self.write();
        inner.remove(&key);
        if inner.entries.len() >= self.capacity || inner.bytes + cost > self.max_bytes {
            inner.sweep(now);
            // Still full of live entries: make room one arbitrary entry at a time.
            while (inner.entries.len() >= self.capacity || inner.bytes + cost > self.max_bytes)
                && inner.evict_one()
            {}
        }
        inner.bytes += cost;
        inner.entries.insert(
            key,
            Entry {
                decision: decision.clone(),
                usable_from,
                usable_until,
                aliases: Vec::new(),
                cost,
            },
        );
        if let Some(header) = header {
            inner.add_alias(key, header, self.max_bytes);
        }
    }

    /// Forgets every decision (for example when the revocation lists change).
    pub fn clear(&self) {
        let mut inner = self.write();
        inner.entries.clear();
        inner.aliases.clear();
        inner.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// About how many bytes the cached decisions and remembered headers hold.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock cannot leave the maps inconsistent in a way that
    // matters (worst case a stale alias whose entry is gone, which `usable` ignores).
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// About how many bytes `decision` holds once cached, counting the answer an acceptance
/// renders later (`Accepted::rendering`, about the size of its fields again).
fn decision_cost(decision: &Decision) -> usize {
    let payload = match decision {
        Ok(a) => {
            let i = &a.info;
            let strings = i.thumbprint_sha1.len()
                + i.thumbprint_sha256.len()
                + i.subject.len()
                + i.issuer.len()
                + i.serial_number.len()
                + i.common_names.iter().map(|s| s.len() + 24).sum::<usize>()
                + i.dns_names.iter().map(|s| s.len() + 24).sum::<usize>()
                + i.extended_key_usages
                    .iter()
                    .flatten()
                    .map(|s| s.len() + 24)
                    .sum::<usize>();
            size_of::<Accepted>() + 2 * strings + 256
        }
        // The variants hold their Display text's parts; the text bounds them.
        Err(e) => size_of::<CertError>() + e.to_string().len(),
    };
    ENTRY_OVERHEAD + size_of::<Entry>() + payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::client_cert::{CertificateInfo, MatchedBy};

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
            rendering: Default::default(),
            partner: crate::inbound::client_cert::partners::Grant::implicit(),
        }))
    }

    #[test]
    fn an_acceptance_is_never_reused_past_the_certificates_not_after() {
        let cache = ValidationCache::new(10, 3600);
        cache.insert([1; 32], &accepted(0, 1000), None, 500);
        assert!(cache.get(&[1; 32], 1000).is_some());
        assert!(cache.get(&[1; 32], 1001).is_none());
    }

    #[test]
    fn an_acceptance_is_not_reused_past_the_maximum_age() {
        let cache = ValidationCache::new(10, 60);
        cache.insert([1; 32], &accepted(0, 1_000_000), None, 500);
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
            None,
            2,
        );
        assert!(cache.is_empty());
        cache.insert([2; 32], &Err(CertError::NotAllowlisted), None, 2);
        assert_eq!(cache.get(&[2; 32], 3), Some(Err(CertError::NotAllowlisted)));
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = ValidationCache::new(3, 60);
        for i in 0..10u8 {
            cache.insert([i; 32], &accepted(0, 1000), Some(&[i]), 10);
        }
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&[9; 32], 10).is_some(),
            "the newest entry is kept"
        );
        let aliases = (0..10u8)
            .filter(|i| cache.get_by_header(&[*i], 10).is_some())
            .count();
        assert_eq!(
            aliases, 3,
            "evicted entries take their header aliases with them"
        );
    }

    #[test]
    fn a_header_seen_before_finds_its_decision_until_the_entry_goes() {
        let cache = ValidationCache::new(10, 60);
        cache.insert([7; 32], &accepted(0, 1000), Some(b"QUJD"), 10);
        assert_eq!(
            cache.get_by_header(b"QUJD", 10).map(|(k, _)| k),
            Some([7; 32])
        );
        assert!(cache.get_by_header(b"QUJE", 10).is_none());
        cache.remember_header([7; 32], b"QU JD");
        assert!(cache.get_by_header(b"QU JD", 10).is_some());
        assert!(
            cache.get_by_header(b"QUJD", 1001).is_none(),
            "not past notAfter"
        );
        cache.clear();
        assert!(cache.get_by_header(b"QUJD", 10).is_none());
    }

    #[test]
    fn rejections_are_cached_by_digest_but_never_by_header_value() {
        let cache = ValidationCache::new(10, 60);
        cache.insert([8; 32], &Err(CertError::NotAllowlisted), Some(b"QUJD"), 10);
        assert!(cache.get(&[8; 32], 10).is_some());
        assert!(cache.get_by_header(b"QUJD", 10).is_none());
    }

    #[test]
    fn expired_entries_make_room_before_a_live_one_is_evicted() {
        let cache = ValidationCache::new(2, 3600);
        cache.insert([1; 32], &accepted(0, 5), None, 1);
        cache.insert([2; 32], &accepted(0, 100), None, 1);
        cache.insert([3; 32], &accepted(0, 100), None, 10);
        assert!(cache.get(&[2; 32], 10).is_some());
        assert!(cache.get(&[3; 32], 10).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_zero_capacity_cache_stores_nothing() {
        let cache = ValidationCache::new(0, 60);
        cache.insert([1; 32], &accepted(0, 1000), None, 10);
        assert!(cache.get(&[1; 32], 10).is_none());
    }
}
