//! Per-account limits on what reaches other accounts: groups created, invitations into groups
//! (accounts whose setting lets the inviter add them are added without one, and not counted),
//! friend requests, messages to strangers (private chats between
//! accounts that are not friends), and lookups of other accounts (account info, profiles,
//! searches). Each is counted per account in a fixed window on this node; past its maximum
//! the request is refused with the seconds until the window ends.
//!
//! Memory is bounded: each kind remembers at most `MAX_ACCOUNTS` accounts, and when full it
//! forgets those whose window has ended (then all). Nothing here touches the store.

use natter_proto::Ocid;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Accounts each kind of quota remembers at once.
const MAX_ACCOUNTS: usize = 100_000;

/// At most `max` per `window` for each account; `max == 0` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max: u32,
    pub window: Duration,
}

impl Quota {
    pub const fn per_hour(max: u32) -> Self {
        Self {
            max,
            window: Duration::from_secs(3600),
        }
    }

    pub const fn per_minute(max: u32) -> Self {
        Self {
            max,
            window: Duration::from_secs(60),
        }
    }
}

/// What each account may do to others per window (see `docs/security.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    /// Groups an account creates.
    pub groups: Quota,
    /// Accounts an account adds to groups it creates, or invites into groups.
    pub members: Quota,
    /// Friend requests an account sends.
    pub friend_requests: Quota,
    /// Messages an account sends in private chats with accounts that are not its friends.
    pub stranger_messages: Quota,
    /// Other accounts an account looks up: account info, profiles, searches.
    pub lookups: Quota,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            groups: Quota::per_hour(30),
            members: Quota::per_hour(500),
            friend_requests: Quota::per_hour(60),
            // Off unless configured: private chats between accounts that are not friends are
            // how most dialects' clients talk, and a recipient can block.
            stranger_messages: Quota::per_minute(0),
            // A client may look up every member of a large group it opens: generous, while
            // enumerating every account stays slow (18,000 an hour).
            lookups: Quota::per_minute(300),
        }
    }
}

/// Which quota a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Groups,
    Members,
    FriendRequests,
    StrangerMessages,
    Lookups,
}

impl Limited {
    /// What was limited, in words for a client.
    pub fn what(self) -> &'static str {
        match self {
            Self::Groups => "groups created",
            Self::Members => "invitations into groups",
            Self::FriendRequests => "friend requests",
            Self::StrangerMessages => "messages to accounts that are not your friends",
            Self::Lookups => "account lookups",
        }
    }
}

/// One kind of quota: each account's window start and count in it.
#[derive(Debug)]
pub(super) struct Counter {
    quota: Quota,
    kind: Limited,
    seen: Mutex<HashMap<Ocid, (Instant, u32)>>,
}

impl Counter {
    pub(super) fn new(quota: Quota, kind: Limited) -> Self {
        Self {
            quota,
            kind,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the quota is enforced at all.
    pub(super) fn enabled(&self) -> bool {
        self.quota.max > 0
    }

    /// Count `n` for `who`.
    ///
    /// # Errors
    /// Over the quota: what was limited and the seconds until the window ends (nothing is
    /// counted then).
    pub(super) fn take(&self, who: Ocid, n: u32) -> Result<(), (Limited, u64)> {
        if !self.enabled() || n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let window = self.quota.window;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_ACCOUNTS && !seen.contains_key(&who) {
            seen.retain(|_, (at, _)| now.duration_since(*at) < window);
            if seen.len() >= MAX_ACCOUNTS {
                seen.clear();
            }
        }
        let entry = seen.entry(who).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1.saturating_add(n) > self.quota.max {
            let left = window.saturating_sub(now.duration_since(entry.0));
            return Err((self.kind, left.as_secs().max(1)));
        }
        entry.1 += n;
        Ok(())
    }
}

/// Every kind, for one domain.
#[derive(Debug)]
pub(super) struct Quotas {
    pub(super) groups: Counter,
    pub(super) members: Counter,
    pub(super) friend_requests: Counter,
    pub(super) stranger_messages: Counter,
    pub(super) lookups: Counter,
}

impl Quotas {
    pub(super) fn new(limits: AbuseLimits) -> Self {
        Self {
            groups: Counter::new(limits.groups, Limited::Groups),
            members: Counter::new(limits.members, Limited::Members),
            friend_requests: Counter::new(limits.friend_requests, Limited::FriendRequests),
            stranger_messages: Counter::new(limits.stranger_messages, Limited::StrangerMessages),
            lookups: Counter::new(limits.lookups, Limited::Lookups),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_counts_per_account_and_window() {
        let c = Counter::new(Quota::per_hour(3), Limited::Groups);
        assert!(c.take(Ocid(1), 2).is_ok());
        assert!(c.take(Ocid(1), 1).is_ok());
        let (what, wait) = c.take(Ocid(1), 1).expect_err("over the quota");
        assert_eq!(what, Limited::Groups);
        assert!((3590..=3600).contains(&wait), "{wait}");
        assert!(c.take(Ocid(2), 3).is_ok(), "another account counts apart");
        assert!(c.take(Ocid(2), 1).is_err());
        let short = Counter::new(
            Quota {
                max: 1,
                window: Duration::from_millis(20),
            },
            Limited::Lookups,
        );
        assert!(short.take(Ocid(1), 1).is_ok());
        assert!(short.take(Ocid(1), 1).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.take(Ocid(1), 1).is_ok(), "a new window");
        let off = Counter::new(Quota::per_hour(0), Limited::Members);
        assert!((0..1000).all(|_| off.take(Ocid(1), 5).is_ok()));
    }
}
