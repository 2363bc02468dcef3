//! The failed-login throttle: slows down password guessing without letting anyone lock a
//! person out of their account, in memory bounded whatever is sent.
//!
//! - **Per client address and email together.** After [`FREE_ATTEMPTS`] wrong passwords for one
//!   email *from one address*, that pair is locked for [`FIRST_LOCK`], doubling with every
//!   further failure up to [`MAX_LOCK`]. A guesser elsewhere cannot lock the real person out: the
//!   person's own address is a different pair.
//! - **Per client address.** One address that fails [`ADDRESS_FREE_ATTEMPTS`] times across any
//!   emails (password spraying) is locked the same way. A successful login does not reset this
//!   count, so a guesser cannot clear it with an account of their own.
//! - **Bounded.** Entries are keyed by a SHA-256 of the address and email (32 bytes, however long
//!   the email was), forgotten [`FORGET_AFTER`] after their last failure once unlocked, pruned at
//!   most once a minute, and capped at [`MAX_ENTRIES`] per table: when a table is full of live
//!   entries, the tenth whose last failures are oldest make room.
//!
//! Each server instance keeps its own throttle (an attacker spreading guesses over N instances
//! gets N times the attempts); every guess still costs one Argon2 verification, bounded per core.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins for one email from one address before the pair is locked for a while.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failed logins from one address, whatever the emails, before the address is locked.
pub const ADDRESS_FREE_ATTEMPTS: u32 = 50;
/// The first lock; it doubles with every further failure, up to [`MAX_LOCK`].
pub const FIRST_LOCK: Duration = Duration::from_secs(30);
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// An unlocked entry is forgotten this long after its last failure.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The most entries each table holds.
pub const MAX_ENTRIES: usize = 50_000;
/// Expired entries are swept at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        self.locked_until.is_none_or(|t| t <= now) && now.saturating_duration_since(self.last_failure) >= FORGET_AFTER
    }

    fn wait(&self, now: Instant) -> Option<Duration> {
        self.locked_until?.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

/// One table of failure counts with its cap.
#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
    free_attempts: u32,
}

impl<K: Eq + Hash + Copy> Table<K> {
    fn new(free_attempts: u32) -> Self {
        Table { entries: HashMap::new(), free_attempts }
    }

    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        self.entries.get(key)?.wait(now)
    }

    fn failed(&mut self, key: K, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| !e.expired(now));
            if self.entries.len() >= MAX_ENTRIES {
                // Drop the tenth whose last failure is oldest: one O(n) pass makes room for many
                // inserts, so a flood costs amortised O(1) per failure.
                let mut by_age: Vec<(Instant, K)> = self.entries.iter().map(|(k, e)| (e.last_failure, *k)).collect();
                let evict = MAX_ENTRIES / 10;
                by_age.select_nth_unstable_by_key(evict, |(t, _)| *t);
                for (_, k) in &by_age[..evict] {
                    self.entries.remove(k);
                }
            }
        }
        let entry = self.entries.entry(key).or_insert(Entry { failures: 0, locked_until: None, last_failure: now });
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= self.free_attempts {
            let doublings = (entry.failures - self.free_attempts).min(10);
            let lock = FIRST_LOCK.saturating_mul(1 << doublings).min(MAX_LOCK);
            entry.locked_until = Some(now + lock);
        }
    }

    fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, e| !e.expired(now));
    }
}

#[derive(Debug)]
struct Tables {
    pairs: Table<[u8; 32]>,
    addresses: Table<IpAddr>,
    last_prune: Instant,
}

/// Failed-login bookkeeping of this process (see the module documentation).
#[derive(Debug)]
pub struct LoginThrottle {
    tables: Mutex<Tables>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            tables: Mutex::new(Tables {
                pairs: Table::new(FREE_ATTEMPTS),
                addresses: Table::new(ADDRESS_FREE_ATTEMPTS),
                last_prune: Instant::now(),
            }),
        }
    }
}

fn pair_key(address: IpAddr, email: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(address.to_string().as_bytes());
    h.update([0]);
    h.update(email.as_bytes());
    h.finalize().into()
}

impl LoginThrottle {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a login for `email` from `address` must wait, if it must.
    pub fn locked_for(&self, address: IpAddr, email: &str, now: Instant) -> Option<Duration> {
        let key = pair_key(address, email);
        let t = self.tables();
        match (t.pairs.wait(&key, now), t.addresses.wait(&address, now)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Records a failed login.
    pub fn failed(&self, address: IpAddr, email: &str, now: Instant) {
        let key = pair_key(address, email);
        let mut t = self.tables();
        if now.saturating_duration_since(t.last_prune) >= PRUNE_EVERY {
            t.pairs.prune(now);
            t.addresses.prune(now);
            t.last_prune = now;
        }
        t.pairs.failed(key, now);
        t.addresses.failed(address, now);
    }

    /// Records a successful login: the pair starts afresh (the address count stays).
    pub fn succeeded(&self, address: IpAddr, email: &str) {
        let key = pair_key(address, email);
        self.tables().pairs.entries.remove(&key);
    }

    /// Entries held (pairs, addresses): for tests and diagnostics.
    pub fn len(&self) -> (usize, usize) {
        let t = self.tables();
        (t.pairs.entries.len(), t.addresses.entries.len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn a_pair_locks_after_the_free_attempts_and_doubles() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..FREE_ATTEMPTS - 1 {
            t.failed(ip(1), "ada@example.com", now);
        }
        assert_eq!(t.locked_for(ip(1), "ada@example.com", now), None);
        t.failed(ip(1), "ada@example.com", now);
        assert_eq!(t.locked_for(ip(1), "ada@example.com", now), Some(FIRST_LOCK));
        t.failed(ip(1), "ada@example.com", now);
        assert_eq!(t.locked_for(ip(1), "ada@example.com", now), Some(FIRST_LOCK * 2));
        // The same person from another address, and another email from this one, are not locked.
        assert_eq!(t.locked_for(ip(2), "ada@example.com", now), None);
        assert_eq!(t.locked_for(ip(1), "grace@example.com", now), None);
        t.succeeded(ip(1), "ada@example.com");
        assert_eq!(t.locked_for(ip(1), "ada@example.com", now), None);
    }

    #[test]
    fn locks_never_exceed_the_maximum_and_expire() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..40 {
            t.failed(ip(1), "ada@example.com", now);
        }
        assert_eq!(t.locked_for(ip(1), "ada@example.com", now), Some(MAX_LOCK));
        assert_eq!(t.locked_for(ip(1), "ada@example.com", now + MAX_LOCK), None);
    }

    #[test]
    fn an_address_spraying_many_emails_is_locked() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for i in 0..ADDRESS_FREE_ATTEMPTS {
            t.failed(ip(1), &format!("user{i}@example.com"), now);
        }
        assert_eq!(t.locked_for(ip(1), "someone-new@example.com", now), Some(FIRST_LOCK));
        assert_eq!(t.locked_for(ip(2), "someone-new@example.com", now), None);
    }

    #[test]
    fn memory_is_bounded_whatever_is_sent() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        let long = "x".repeat(10_000);
        for i in 0..(MAX_ENTRIES + 500) {
            let addr = IpAddr::V4(Ipv4Addr::from(u32::try_from(i).unwrap_or(0)));
            t.failed(addr, &format!("{i}{long}"), now);
        }
        let (pairs, addresses) = t.len();
        assert!(pairs <= MAX_ENTRIES && pairs > MAX_ENTRIES / 2, "{pairs}");
        assert!(addresses <= MAX_ENTRIES && addresses > MAX_ENTRIES / 2, "{addresses}");
        // Entries are forgotten once unlocked and quiet for a while: a later failure sweeps them.
        let later = now + FORGET_AFTER + PRUNE_EVERY;
        t.failed(ip(1), "ada@example.com", later);
        assert_eq!(t.len(), (1, 1));
    }

    #[test]
    fn a_full_table_makes_room_by_dropping_the_oldest() {
        let t = LoginThrottle::default();
        let start = Instant::now();
        for i in 0..MAX_ENTRIES {
            let at = start + Duration::from_millis(u64::try_from(i).unwrap_or(0) % 1000);
            t.failed(ip(9), &format!("user{i}@example.com"), at);
        }
        let late = start + Duration::from_secs(2);
        for _ in 0..FREE_ATTEMPTS {
            t.failed(ip(7), "victim-guess@example.com", late);
        }
        assert!(t.len().0 <= MAX_ENTRIES);
        assert!(t.locked_for(ip(7), "victim-guess@example.com", late).is_some());
    }
}
