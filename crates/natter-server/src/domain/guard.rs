//! Limits on guessing secrets: failed attempts at a password, a session token, a security
//! answer (or any other secret a dialect checks, such as a service token) are counted per
//! account and per client address, with a back-off that grows with every failure.
//!
//! An attempt is counted *before* its secret is checked and forgiven once it proves right, so
//! attempts sent together (pipelined, or over many connections) cannot outrun the limit. The
//! counts live in this node's memory, keyed by account and address, not by connection: they
//! survive reconnecting (not a restart; each node of a cluster counts its own).
//!
//! How a dialect uses it (through `Domain::attempt`, which picks the guard for the kind of
//! secret and leaves shared addresses out):
//!
//! ```text
//! let attempt = domain.attempt(Secret::Service, Some(Subject::account(ocid)), Some(ip))?;
//! if secret_is_right { attempt.succeeded(); }  // dropped unsucceeded, it counts as a failure
//! ```
//!
//! This module knows no wire and no store.

use natter_proto::Ocid;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`; a bare address is
/// the one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `addr/prefix`, the prefix capped at the address's length.
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            addr,
            prefix: prefix.min(max),
        }
    }

    /// The loopback networks (`127.0.0.0/8`, `::1`).
    pub fn loopback() -> Vec<Self> {
        vec![
            Self::new(IpAddr::from([127, 0, 0, 0]), 8),
            Self::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
        ]
    }

    /// Whether `ip` is in one of `networks` (an IPv4-mapped IPv6 address as its IPv4
    /// address).
    pub fn any_contains(networks: &[Network], ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        networks.iter().any(|n| n.contains(ip))
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an IP address or network (such as 10.0.0.0/8)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self::new(addr, prefix))
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How many failures a subject has for free, and how the lock after them grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures before the first lock (the failure that reaches this count sets it).
    pub free: u32,
    /// The first lock; each further failure doubles it, up to `max_lock`.
    pub first_lock: Duration,
    pub max_lock: Duration,
    /// A subject without a failure for this long starts again from zero.
    pub forget: Duration,
}

/// The limits on guessing, for each kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessLimits {
    /// Per account (or per name that is no account: unknown accounts are limited alike, so
    /// that the limit does not tell which accounts exist).
    pub account: Policy,
    /// Per client address (an IPv4 address or an IPv6 /64): more free failures, as many
    /// people may share one address.
    pub address: Policy,
}

impl Default for GuessLimits {
    fn default() -> Self {
        let lock = |free| Policy {
            free,
            first_lock: Duration::from_secs(1),
            max_lock: Duration::from_secs(15 * 60),
            forget: Duration::from_secs(24 * 3600),
        };
        Self {
            account: lock(5),
            address: lock(20),
        }
    }
}

/// Who an attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An account (its failures are forgiven by its next success).
    Account(Ocid),
    /// A name that leads to no account (an email, a username, a phone number), normalised,
    /// kept as a 128-bit hash (so that names sent to fill the table cost 16 bytes each).
    Name([u8; 16]),
    /// A client address: an IPv4 address, or the /64 network of an IPv6 address.
    Address(AddressKey),
}

/// What counts as one client address (for the guessing limits and the connection cap): an
/// IPv4 address, or the /64 network of an IPv6 address (one host is commonly given a whole
/// /64). An IPv4-mapped IPv6 address is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(u32::from(v4)),
                None => Self::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl Subject {
    pub fn account(ocid: Ocid) -> Self {
        Self::Account(ocid)
    }

    /// A name that may not be an account's (normalised by the caller).
    pub fn name(name: &str) -> Self {
        use blake2::Digest;
        let digest = blake2::Blake2b::<blake2::digest::consts::U16>::digest(name.as_bytes());
        Self::Name(digest.into())
    }

    /// The client at `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn address(ip: IpAddr) -> Self {
        Self::Address(AddressKey::from(ip))
    }
}

/// Attempts are refused until the lock ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

impl Locked {
    /// Whole seconds to wait (at least one).
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Counts of failed attempts at one kind of secret.
pub struct Guard {
    limits: GuessLimits,
    entries: Mutex<HashMap<Subject, Entry>>,
    max_entries: usize,
}

/// Subjects tracked before the guard forgets the least dangerous ones (each is ~100 bytes).
const MAX_ENTRIES: usize = 200_000;

impl Guard {
    pub fn new(limits: GuessLimits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
            max_entries: MAX_ENTRIES,
        }
    }

    fn policy(&self, subject: &Subject) -> &Policy {
        match subject {
            Subject::Account(_) | Subject::Name(_) => &self.limits.account,
            Subject::Address(_) => &self.limits.address,
        }
    }

    /// Count one attempt by each of `subjects`, before its secret is checked.
    ///
    /// # Errors
    /// A subject is locked: nothing is counted, and the secret must not be checked.
    pub fn attempt(&self, subjects: &[Subject]) -> Result<Attempt<'_>, Locked> {
        self.attempt_at(subjects, Instant::now())
    }

    fn attempt_at(&self, subjects: &[Subject], now: Instant) -> Result<Attempt<'_>, Locked> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Refused if any subject is locked (the longest lock is the answer).
        let mut wait = None::<Duration>;
        for subject in subjects {
            let Some(e) = entries.get(subject) else {
                continue;
            };
            if let Some(until) = e.locked_until.filter(|u| *u > now)
                && now.duration_since(e.last) < self.policy(subject).forget
            {
                let left = until - now;
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        if let Some(retry_after) = wait {
            return Err(Locked { retry_after });
        }
        if entries.len() + subjects.len() > self.max_entries {
            self.prune(&mut entries, now);
        }
        let mut before = Vec::with_capacity(subjects.len());
        for subject in subjects {
            let policy = *self.policy(subject);
            let e = entries.entry(subject.clone()).or_insert(Entry {
                failures: 0,
                last: now,
                locked_until: None,
            });
            if now.duration_since(e.last) >= policy.forget {
                *e = Entry {
                    failures: 0,
                    last: now,
                    locked_until: None,
                };
            }
            before.push((subject.clone(), *e));
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            if e.failures >= policy.free {
                e.locked_until = Some(now + lock_for(&policy, e.failures));
            }
        }
        Ok(Attempt {
            guard: self,
            before,
        })
    }

    /// Make room: forget subjects quiet for their whole `forget` period, then, if still full,
    /// the ones that are not locked.
    fn prune(&self, entries: &mut HashMap<Subject, Entry>, now: Instant) {
        entries.retain(|s, e| now.duration_since(e.last) < self.policy(s).forget);
        if entries.len() >= self.max_entries * 9 / 10 {
            entries.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
        }
        if entries.len() >= self.max_entries * 9 / 10 {
            tracing::warn!(
                subjects = entries.len(),
                "guessing limits: too many locked subjects; forgetting them all"
            );
            entries.clear();
        }
    }

    /// Failures counted against `subject` now (for tests and diagnostics).
    pub fn failures(&self, subject: &Subject) -> u32 {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(subject).map_or(0, |e| e.failures)
    }
}

/// The lock after `failures` failures under `policy`.
fn lock_for(policy: &Policy, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(policy.free).min(30);
    policy
        .first_lock
        .saturating_mul(1 << doublings)
        .min(policy.max_lock)
}

/// One counted attempt: a failure unless [`Attempt::succeeded`] is called.
#[must_use = "an attempt counts as a failure unless it is marked as succeeded"]
pub struct Attempt<'a> {
    guard: &'a Guard,
    /// Each subject's entry before this attempt was counted.
    before: Vec<(Subject, Entry)>,
}

impl Attempt<'_> {
    /// The secret was right: the attempt is forgiven, and an account's earlier failures too.
    pub fn succeeded(mut self) {
        let mut entries = self.guard.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (subject, before) in self.before.drain(..) {
            match subject {
                Subject::Account(_) => {
                    entries.remove(&subject);
                }
                _ => {
                    if let Some(e) = entries.get_mut(&subject) {
                        e.failures = e.failures.saturating_sub(1);
                        e.locked_until = before.locked_until;
                        if e.failures == 0 {
                            entries.remove(&subject);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let n: Network = "10.1.0.0/16".parse().expect("network");
        assert!(n.contains("10.1.200.3".parse().expect("ip")));
        assert!(!n.contains("10.2.0.1".parse().expect("ip")));
        assert!(!n.contains("::1".parse().expect("ip")));
        let host: Network = "192.0.2.7".parse().expect("host");
        assert!(host.contains("192.0.2.7".parse().expect("ip")));
        assert!(!host.contains("192.0.2.8".parse().expect("ip")));
        let all: Network = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains("203.0.113.9".parse().expect("ip")));
        let v6: Network = "2001:db8::/32".parse().expect("v6");
        assert!(v6.contains("2001:db8:1::1".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nonsense".parse::<Network>().is_err());
    }

    fn limits(free: u32) -> GuessLimits {
        let p = Policy {
            free,
            first_lock: Duration::from_secs(60),
            max_lock: Duration::from_secs(3600),
            forget: Duration::from_secs(24 * 3600),
        };
        GuessLimits {
            account: p,
            address: Policy { free: 10, ..p },
        }
    }

    #[test]
    fn failures_lock_with_a_growing_back_off_and_success_forgives() {
        assert_eq!(lock_for(&limits(3).account, 3), Duration::from_secs(60));
        assert_eq!(lock_for(&limits(3).account, 4), Duration::from_secs(120));
        assert_eq!(lock_for(&limits(3).account, 5), Duration::from_secs(240));
        assert_eq!(lock_for(&limits(3).account, 40), Duration::from_secs(3600));

        let guard = Guard::new(limits(3));
        let me = [Subject::account(Ocid(1))];
        // Two free failures, and a right answer forgives them.
        drop(guard.attempt(&me).expect("free"));
        drop(guard.attempt(&me).expect("free"));
        guard.attempt(&me).expect("free").succeeded();
        assert_eq!(guard.failures(&me[0]), 0);
        // The third failure in a row locks.
        for _ in 0..3 {
            drop(guard.attempt(&me).expect("free"));
        }
        let locked = guard.attempt(&me).map(|_| ()).expect_err("locked");
        assert!(locked.retry_after > Duration::from_secs(50), "{locked:?}");
        assert_eq!(locked.retry_after_s(), 60);
        // A refused attempt is not counted.
        assert_eq!(guard.failures(&me[0]), 3);
        // Another account is not locked by it.
        guard
            .attempt(&[Subject::account(Ocid(2))])
            .expect("other")
            .succeeded();
    }

    #[test]
    fn an_address_is_locked_across_accounts_and_not_forgiven_by_one_success() {
        let guard = Guard::new(limits(100));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for n in 0..9 {
            drop(
                guard
                    .attempt(&[Subject::account(Ocid(n)), Subject::address(ip)])
                    .expect("free"),
            );
        }
        // A success (the attacker's own account) forgives only its own attempt.
        guard
            .attempt(&[Subject::account(Ocid(99)), Subject::address(ip)])
            .expect("free")
            .succeeded();
        assert_eq!(guard.failures(&Subject::address(ip)), 9);
        drop(
            guard
                .attempt(&[Subject::account(Ocid(50)), Subject::address(ip)])
                .expect("the tenth"),
        );
        assert!(
            guard
                .attempt(&[Subject::account(Ocid(51)), Subject::address(ip)])
                .is_err()
        );
        // The /64 of an IPv6 client is one address.
        let a: IpAddr = "2001:db8::1".parse().expect("ip");
        let b: IpAddr = "2001:db8::2".parse().expect("ip");
        assert_eq!(Subject::address(a), Subject::address(b));
    }

    /// Attempts an attacker who retries the moment a lock ends gets in `hours` hours.
    fn attempts_in(policy_free: u32, address: bool, hours: u64) -> u32 {
        let guard = Guard::new(GuessLimits {
            account: Policy {
                free: policy_free,
                ..GuessLimits::default().account
            },
            address: Policy {
                free: policy_free,
                ..GuessLimits::default().address
            },
        });
        let subject = if address {
            Subject::address("192.0.2.1".parse().expect("ip"))
        } else {
            Subject::account(Ocid(1))
        };
        let start = Instant::now();
        let mut now = start;
        let mut made = 0;
        while now < start + Duration::from_secs(hours * 3600) {
            match guard.attempt_at(std::slice::from_ref(&subject), now) {
                Ok(attempt) => {
                    drop(attempt);
                    made += 1;
                }
                Err(locked) => now += locked.retry_after,
            }
        }
        made
    }

    /// The figures docs/security.md gives, with the default limits: per account 17 attempts in
    /// the first hour and 4 an hour after that; per address 32, then 4 an hour.
    #[test]
    fn attempts_an_attacker_gets_per_hour_with_the_defaults() {
        let d = GuessLimits::default();
        assert_eq!(attempts_in(d.account.free, false, 1), 17);
        assert_eq!(attempts_in(d.account.free, false, 2) - 17, 4);
        assert_eq!(attempts_in(d.account.free, false, 24), 17 + 23 * 4);
        assert_eq!(attempts_in(d.address.free, true, 1), 32);
        assert_eq!(attempts_in(d.address.free, true, 24), 32 + 23 * 4);
    }

    #[test]
    fn a_full_table_forgets_the_least_dangerous_first() {
        let mut guard = Guard::new(limits(2));
        guard.max_entries = 10;
        let locked = Subject::account(Ocid(0));
        drop(guard.attempt(std::slice::from_ref(&locked)).expect("free"));
        drop(guard.attempt(std::slice::from_ref(&locked)).expect("free"));
        for n in 1..30 {
            drop(guard.attempt(&[Subject::account(Ocid(n))]).expect("free"));
        }
        assert!(guard.attempt(std::slice::from_ref(&locked)).is_err());
    }
}
