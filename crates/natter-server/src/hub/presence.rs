//! Presence as one node knows it: which accounts are online anywhere in the cluster (and on
//! which nodes), which other nodes are alive, and which accounts with connections here watch
//! which friends.

use natter_proto::Ocid;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Who is online and who wants to know.
#[derive(Debug, Default)]
pub(super) struct Presence {
    /// Every account online anywhere in the cluster, with the nodes it has connections on.
    pub(super) online: HashMap<Ocid, Vec<u64>>,
    /// The other nodes, and when each was last heard from.
    pub(super) peers: HashMap<u64, Instant>,
    /// For each account with connections here: its friends (whose presence it is told).
    friends: HashMap<Ocid, HashSet<Ocid>>,
    /// The reverse: for each account, its friends that have connections here.
    watchers: HashMap<Ocid, HashSet<Ocid>>,
}

impl Presence {
    /// Record that `ocid` is (or is no longer) on `node`. `Some(online)` when that changed
    /// whether the account is online anywhere.
    pub(super) fn set(&mut self, node: u64, ocid: Ocid, online: bool) -> Option<bool> {
        if online {
            let nodes = self.online.entry(ocid).or_default();
            if nodes.contains(&node) {
                return None;
            }
            nodes.push(node);
            (nodes.len() == 1).then_some(true)
        } else {
            let nodes = self.online.get_mut(&ocid)?;
            let before = nodes.len();
            nodes.retain(|n| *n != node);
            if nodes.len() == before || !nodes.is_empty() {
                return None;
            }
            self.online.remove(&ocid);
            Some(false)
        }
    }

    /// Drop `node` from every account; returns the accounts that went offline with it.
    pub(super) fn drop_node(&mut self, node: u64) -> Vec<Ocid> {
        let mut gone = Vec::new();
        self.online.retain(|ocid, nodes| {
            nodes.retain(|n| *n != node);
            if nodes.is_empty() {
                gone.push(*ocid);
            }
            !nodes.is_empty()
        });
        gone
    }

    pub(super) fn watch(&mut self, who: Ocid, friend: Ocid) {
        self.friends.entry(who).or_default().insert(friend);
        self.watchers.entry(friend).or_default().insert(who);
    }

    pub(super) fn unwatch(&mut self, who: Ocid, friend: Ocid) {
        if let Some(f) = self.friends.get_mut(&who) {
            f.remove(&friend);
            if f.is_empty() {
                self.friends.remove(&who);
            }
        }
        if let Some(w) = self.watchers.get_mut(&friend) {
            w.remove(&who);
            if w.is_empty() {
                self.watchers.remove(&friend);
            }
        }
    }

    /// `who` has no connection here any more: stop watching its friends.
    pub(super) fn forget(&mut self, who: Ocid) {
        for friend in self.friends.remove(&who).unwrap_or_default() {
            if let Some(w) = self.watchers.get_mut(&friend) {
                w.remove(&who);
                if w.is_empty() {
                    self.watchers.remove(&friend);
                }
            }
        }
    }

    pub(super) fn watchers_of(&self, ocid: Ocid) -> Vec<Ocid> {
        self.watchers
            .get(&ocid)
            .map(|w| w.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Accounts whose last connection here left, with when they go offline here unless one of
/// their connections comes back first.
pub(super) type Leaving = HashMap<Ocid, Instant>;
