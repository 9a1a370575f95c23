//! Request budgets: a token bucket per connection before login, and one per account (shared by
//! its connections on this node, kept in the hub) after it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket of requests; `rate == 0` disables it.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// `rate` tokens per second, holding at most `max(burst, rate)`; full at first.
    pub fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(rate));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    pub fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    /// Spend one token if there is one.
    pub fn allow(&mut self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An account's request budget, shared by its connections on this node.
pub type SharedBucket = Arc<Mutex<Bucket>>;

/// A connection's budget: its own bucket while it is anonymous, its account's once logged in.
#[derive(Debug)]
pub struct Budget {
    own: Bucket,
    account: Option<SharedBucket>,
}

impl Budget {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            own: Bucket::new(rate, burst),
            account: None,
        }
    }

    /// Spend from `account` (shared with the account's other connections) from now on.
    pub fn share(&mut self, account: SharedBucket) {
        self.account = Some(account);
    }

    /// Back to the connection's own bucket (logged out).
    pub fn unshare(&mut self) {
        self.account = None;
    }

    /// Spend one request; `false` when the budget is empty.
    pub fn allow(&mut self) -> bool {
        if self.own.unlimited() {
            return true;
        }
        match &self.account {
            Some(shared) => shared.lock().unwrap_or_else(|p| p.into_inner()).allow(),
            None => self.own.allow(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_budget_is_spent_by_every_connection() {
        let shared: SharedBucket = Arc::new(Mutex::new(Bucket::new(1, 3)));
        let (mut a, mut b) = (Budget::new(1, 3), Budget::new(1, 3));
        a.share(shared.clone());
        b.share(shared);
        assert!(a.allow() && b.allow() && a.allow());
        assert!(!b.allow(), "three requests spent the shared burst");
        // The anonymous budget is the connection's own again after logout.
        b.unshare();
        assert!(b.allow());
        let mut free = Budget::new(0, 0);
        assert!((0..10_000).all(|_| free.allow()));
    }
}
