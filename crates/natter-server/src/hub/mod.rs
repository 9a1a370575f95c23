//! The hub: which connections of this node belong to which account, the fan-out of a
//! delivery or a notice to them, and presence (which accounts are online anywhere in the
//! cluster, told to their friends' connections here). It is this node's [`BusHandler`]:
//! whatever the bus delivers comes here.
//!
//! Fan-out never blocks: each connection has a bounded outbox, and a full outbox marks the
//! connection as lagging (it then catches up from the store by index) instead of slowing the
//! sender or the other receivers. The locks are never held across an await. The hub knows no
//! dialect: a delivery's frames are encoded by each receiving connection's dialect, at most
//! once per [`Slot`].

mod outbox;
mod presence;

pub use outbox::{ConnHandle, Outgoing, Push, SLOTS, Slot};

use crate::bus::{Bus, BusHandler};
use crate::conn::budget::{Bucket, SharedBucket};
use crate::event::{Audience, Delivery, FriendChange, Notice, Signal};
use crate::ids::IdMap;
use natter_proto::Ocid;
use presence::{Leaving, Presence};
use rand::RngExt;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An account's connections on this node, and the request budget they share.
#[derive(Debug)]
struct Local {
    conns: Vec<Arc<ConnHandle>>,
    bucket: SharedBucket,
}

/// What the hub lets connections hold: bytes of outgoing data, and connections per account.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// Bytes of deliveries one connection's outbox holds before further ones are left to the
    /// store (the connection catches up by index once it drains).
    pub conn_bytes: usize,
    /// Bytes of outgoing data this node buffers for all its connections together (queued
    /// deliveries and writes in progress); past it, deliveries are left to the store.
    pub node_bytes: usize,
    /// Logged-in connections one account may have on this node (0: no cap).
    pub per_account: usize,
}

impl Budgets {
    /// No limit but the outboxes' frame counts.
    pub const UNLIMITED: Self = Self {
        conn_bytes: usize::MAX,
        node_bytes: usize::MAX,
        per_account: 0,
    };
}

/// An account already has as many connections on this node as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnections {
    pub max: usize,
}

pub struct Hub {
    /// A random id for this node's hub, so origins are unique across the cluster.
    node: u64,
    budgets: Budgets,
    /// Bytes of outgoing data buffered on this node now (signed: a connection may take a
    /// delivery before the hub has added it), and the most ever buffered.
    buffered: AtomicI64,
    buffered_peak: AtomicI64,
    next_id: AtomicU64,
    conns: RwLock<IdMap<Ocid, Local>>,
    presence: Mutex<Presence>,
    /// Held while an account's first connection arrives or its last one leaves, until the
    /// change is published: the bus carries each account's changes in the order they happened.
    /// It guards the accounts whose last connection here left less than `grace` ago.
    transitions: Mutex<Leaving>,
    /// How long an account whose last connection here left still counts as online here, so
    /// that a reconnect within it (a network change, a restart of the app) tells nobody.
    grace: Duration,
    /// Where presence changes are published (set once the bus exists; it may hold the hub).
    bus: OnceLock<Weak<dyn Bus>>,
    /// Encoding slots handed out so far (see [`Hub::slot`]).
    slots: AtomicU8,
    /// Deliveries offered to outboxes, and those a full outbox left to the store (for the
    /// metrics; added once per message).
    delivered: AtomicU64,
    outbox_full: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// A hub whose accounts go offline as soon as their last connection leaves.
    pub fn new() -> Self {
        Self::with_grace(Duration::ZERO)
    }

    /// A hub whose accounts go offline `grace` after their last connection leaves, unless one
    /// comes back first (then nobody is told anything). [`Hub::settle_until`] must run for
    /// them to go offline; with a zero grace there is nothing to settle.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            node: rand::rng().random(),
            budgets: Budgets::UNLIMITED,
            buffered: AtomicI64::new(0),
            buffered_peak: AtomicI64::new(0),
            next_id: AtomicU64::new(0),
            conns: RwLock::new(IdMap::default()),
            presence: Mutex::new(Presence::default()),
            transitions: Mutex::new(Leaving::new()),
            grace,
            bus: OnceLock::new(),
            slots: AtomicU8::new(0),
            delivered: AtomicU64::new(0),
            outbox_full: AtomicU64::new(0),
        }
    }

    /// This hub with `budgets` of outgoing bytes and connections per account.
    #[must_use]
    pub fn with_budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// The budgets this hub keeps.
    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    /// `bytes` more of outgoing data are buffered on this node (negative: fewer).
    pub fn buffer(&self, bytes: i64) {
        let now = self.buffered.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if bytes > 0 {
            self.buffered_peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Whether this node buffers less outgoing data than its budget.
    pub fn has_room(&self) -> bool {
        usize::try_from(self.buffered.load(Ordering::Relaxed)).unwrap_or(0)
            < self.budgets.node_bytes
    }

    /// Bytes of outgoing data buffered on this node now, and the most ever buffered.
    pub fn buffered(&self) -> (u64, u64) {
        let read = |a: &AtomicI64| u64::try_from(a.load(Ordering::Relaxed)).unwrap_or(0);
        (read(&self.buffered), read(&self.buffered_peak))
    }

    fn transitions(&self) -> std::sync::MutexGuard<'_, Leaving> {
        self.transitions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot of its own in every delivery's frame cache, for a dialect being mounted: its
    /// frame for a message is then encoded once, whichever of its connections receive it.
    pub fn slot(&self) -> Slot {
        let n = self.slots.fetch_add(1, Ordering::Relaxed);
        Slot((usize::from(n) < SLOTS).then_some(n))
    }

    /// Publish this node's presence changes on `bus` from now on.
    pub fn attach(&self, bus: &Arc<dyn Bus>) {
        let _ = self.bus.set(Arc::downgrade(bus));
    }

    fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection handle and the receiving end of its outbox.
    pub fn connection(&self, outbox: usize) -> (Arc<ConnHandle>, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(outbox.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(ConnHandle {
            id,
            node: self.node,
            tx,
            lagging: AtomicBool::new(false),
            recheck: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
        });
        (handle, rx)
    }

    /// Add a logged-in connection of `ocid`; returns the request budget the account's
    /// connections here share (made with `bucket` for its first one).
    ///
    /// # Errors
    /// The account already has `Budgets::per_account` connections here.
    pub fn register(
        &self,
        ocid: Ocid,
        conn: &Arc<ConnHandle>,
        bucket: impl FnOnce() -> Bucket,
    ) -> Result<SharedBucket, TooManyConnections> {
        let mut leaving = self.transitions();
        let (first, shared) = {
            let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
            let max = self.budgets.per_account;
            if max > 0 && conns.get(&ocid).is_some_and(|l| l.conns.len() >= max) {
                return Err(TooManyConnections { max });
            }
            let local = conns.entry(ocid).or_insert_with(|| Local {
                conns: Vec::new(),
                bucket: Arc::new(Mutex::new(bucket())),
            });
            local.conns.push(conn.clone());
            (local.conns.len() == 1, local.bucket.clone())
        };
        // Back within the grace: it never went offline, so nobody is told it came online.
        if first && leaving.remove(&ocid).is_none() {
            self.local_presence(ocid, true);
        }
        Ok(shared)
    }

    pub fn unregister(&self, ocid: Ocid, conn_id: u64) {
        let mut leaving = self.transitions();
        let last = {
            let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
            let Some(local) = conns.get_mut(&ocid) else {
                return;
            };
            local.conns.retain(|c| c.id != conn_id);
            let last = local.conns.is_empty();
            if last {
                conns.remove(&ocid);
            }
            last
        };
        if last {
            self.presence().forget(ocid);
            if self.grace.is_zero() {
                self.local_presence(ocid, false);
            } else {
                leaving.insert(ocid, Instant::now() + self.grace);
            }
        }
    }

    /// The accounts whose grace has run out without a connection coming back go offline (and
    /// their friends are told).
    fn settle(&self) {
        let mut leaving = self.transitions();
        if leaving.is_empty() {
            return;
        }
        let now = Instant::now();
        let gone: Vec<Ocid> = leaving
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(o, _)| *o)
            .collect();
        for ocid in gone {
            leaving.remove(&ocid);
            self.local_presence(ocid, false);
        }
    }

    /// Settle the leaving accounts every quarter of the grace until `stop` (nothing to do
    /// with a zero grace).
    pub async fn settle_until(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        if self.grace.is_zero() {
            return;
        }
        let mut tick = tokio::time::interval((self.grace / 4).max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => self.settle(),
            }
        }
    }

    /// This node's own change: applied here, then published to the other nodes.
    fn local_presence(&self, ocid: Ocid, online: bool) {
        self.presence_changed(self.node, ocid, online);
        if let Some(bus) = self.bus.get().and_then(Weak::upgrade) {
            bus.presence(self.node, ocid, online);
        }
    }

    /// Apply a presence change and tell the friends with connections here if it changed
    /// whether the account is online.
    fn presence_changed(&self, node: u64, ocid: Ocid, online: bool) {
        let watchers = {
            let mut p = self.presence();
            if p.set(node, ocid, online).is_none() {
                return;
            }
            p.watchers_of(ocid)
        };
        self.push_presence(&watchers, ocid, online);
    }

    fn push_presence(&self, to: &[Ocid], ocid: Ocid, online: bool) {
        if to.is_empty() {
            return;
        }
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        for conn in to
            .iter()
            .filter_map(|w| conns.get(w))
            .flat_map(|l| &l.conns)
        {
            conn.push_ephemeral(Push::Presence { ocid, online });
        }
    }

    /// Whether `ocid` is online on any node (as far as this node has heard), within its grace
    /// included.
    pub fn is_online(&self, ocid: Ocid) -> bool {
        self.presence().online.contains_key(&ocid)
    }

    /// `ocid`'s connections here are told when any of `friends` comes online or goes offline
    /// (until its last connection here leaves). Ignored if it has no connection here.
    pub fn watch(&self, ocid: Ocid, friends: &[Ocid]) {
        let local = self
            .conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&ocid);
        if !local {
            return;
        }
        let mut p = self.presence();
        for f in friends {
            p.watch(ocid, *f);
        }
    }

    /// Have every connection of `ocid` on this node check its login again (after a ban, a
    /// deletion or a revoked login). Returns how many were told.
    pub fn recheck(&self, ocid: Ocid) -> usize {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        let Some(local) = conns.get(&ocid) else {
            return 0;
        };
        for conn in &local.conns {
            // The flag survives a full outbox: it is read again once the outbox drains.
            conn.recheck.store(true, Ordering::Release);
            conn.push_ephemeral(Push::Recheck);
        }
        local.conns.len()
    }

    /// Deliveries offered to outboxes so far, and how many of them found the outbox full.
    pub fn delivery_counts(&self) -> (u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.outbox_full.load(Ordering::Relaxed),
        )
    }

    /// How many connections are logged in on this node.
    pub fn connections(&self) -> usize {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        conns.values().map(|l| l.conns.len()).sum()
    }

    fn befriended(&self, a: Ocid, b: Ocid, change: FriendChange) {
        let local: Vec<(Ocid, Ocid)> = {
            let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
            [(a, b), (b, a)]
                .into_iter()
                .filter(|(who, _)| conns.contains_key(who))
                .collect()
        };
        let mut tell = Vec::new();
        {
            let mut p = self.presence();
            for (who, friend) in local {
                match change {
                    FriendChange::Accepted => {
                        p.watch(who, friend);
                        if p.online.contains_key(&friend) {
                            tell.push((who, friend));
                        }
                    }
                    FriendChange::Removed => p.unwatch(who, friend),
                    FriendChange::Rejected => {}
                }
            }
        }
        // A new friend who is online is announced as such.
        for (who, friend) in tell {
            self.push_presence(&[who], friend, true);
        }
    }
}

impl crate::bus::Presence for Hub {
    /// A connection here, or an account online on another node. An account whose last
    /// connection here left within the grace still counts as online for its friends, but has
    /// nothing to be told on.
    fn has_connection(&self, ocid: Ocid) -> bool {
        let here = self
            .conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&ocid);
        here || self
            .presence()
            .online
            .get(&ocid)
            .is_some_and(|nodes| nodes.iter().any(|n| *n != self.node))
    }
}

impl BusHandler for Hub {
    fn node(&self) -> u64 {
        self.node
    }

    /// Another node's presence change, from the bus.
    fn remote_presence(&self, node: u64, ocid: Ocid, online: bool) {
        if node != self.node {
            self.presence_changed(node, ocid, online);
        }
    }

    /// Another node's whole list of accounts with connections there (it replaces what was
    /// known of that node).
    fn remote_snapshot(&self, node: u64, accounts: &[Ocid]) {
        if node == self.node {
            return;
        }
        let listed: HashSet<Ocid> = accounts.iter().copied().collect();
        let (went, came) = {
            let mut p = self.presence();
            let before: Vec<Ocid> = p
                .online
                .iter()
                .filter(|(_, nodes)| nodes.contains(&node))
                .map(|(o, _)| *o)
                .collect();
            let mut went = Vec::new();
            for o in before.into_iter().filter(|o| !listed.contains(o)) {
                if p.set(node, o, false).is_some() {
                    went.push((o, p.watchers_of(o)));
                }
            }
            let mut came = Vec::new();
            for o in &listed {
                if p.set(node, *o, true).is_some() {
                    came.push((*o, p.watchers_of(*o)));
                }
            }
            (went, came)
        };
        for (o, w) in went {
            self.push_presence(&w, o, false);
        }
        for (o, w) in came {
            self.push_presence(&w, o, true);
        }
    }

    /// Note that `node` was heard from; `true` if it was not known (new, or given up on).
    fn heard(&self, node: u64) -> bool {
        if node == self.node {
            return false;
        }
        self.presence().peers.insert(node, Instant::now()).is_none()
    }

    /// Give up on the nodes not heard from for `timeout`: their accounts are offline unless
    /// they are on another node. Returns how many nodes were given up on.
    fn expire_peers(&self, timeout: Duration) -> usize {
        let gone = {
            let mut p = self.presence();
            let dead: Vec<u64> = p
                .peers
                .iter()
                .filter(|(_, at)| at.elapsed() > timeout)
                .map(|(n, _)| *n)
                .collect();
            if dead.is_empty() {
                return 0;
            }
            let mut gone = Vec::new();
            for node in &dead {
                p.peers.remove(node);
                for o in p.drop_node(*node) {
                    gone.push((o, p.watchers_of(o)));
                }
            }
            tracing::warn!(
                nodes = dead.len(),
                accounts = gone.len(),
                "peer nodes went silent; their accounts are offline"
            );
            (dead.len(), gone)
        };
        for (o, w) in &gone.1 {
            self.push_presence(w, *o, false);
        }
        gone.0
    }

    /// The accounts with connections on this node (for another node's snapshot), read while
    /// no presence change is being published, so the snapshot and the changes stay in order.
    /// Accounts within their grace still count: they have not gone offline yet.
    fn local_accounts(&self, publish: &mut dyn FnMut(Vec<Ocid>)) {
        let leaving = self.transitions();
        let mut accounts: Vec<Ocid> = self
            .conns
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        accounts.extend(leaving.keys().copied());
        publish(accounts);
    }

    /// Offer a delivery to every connection of every member except the sending one.
    fn deliver(&self, delivery: &Arc<Delivery>) {
        let out = Arc::new(Outgoing::new(delivery.clone()));
        // Read once per message: the node's budget may be overshot by one message's worth per
        // receiver, which keeps this loop to one atomic add per receiver.
        let room = self.has_room();
        let mut added = 0;
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        let (mut offered, mut full) = (0, 0);
        for member in &delivery.chat.members {
            let Some(local) = conns.get(member) else {
                continue;
            };
            for conn in &local.conns {
                if delivery.origin == Some(conn.origin()) {
                    continue;
                }
                offered += 1;
                match conn.push_sized(&out, self.budgets.conn_bytes, room) {
                    Some(size) => added += size,
                    None => full += 1,
                }
            }
        }
        drop(conns);
        if added > 0 {
            self.buffer(i64::try_from(added).unwrap_or(i64::MAX));
        }
        // Counted once per message, not per receiver.
        if offered > 0 {
            self.delivered.fetch_add(offered, Ordering::Relaxed);
        }
        if full > 0 {
            self.outbox_full.fetch_add(full, Ordering::Relaxed);
        }
    }

    /// Offer a notice to its audience's connections here, except the one it came from. A
    /// friendship change also changes whose presence the two accounts are told.
    fn notice(&self, signal: &Arc<Signal>) {
        // An ended login closes its connections through the account's recheck: a flag that a
        // full outbox cannot drop, read once the outbox drains (the login is checked against the
        // store).
        if let (Notice::LoggedOut, Audience::Accounts(list)) = (&signal.notice, &signal.audience) {
            for ocid in list {
                self.recheck(*ocid);
            }
            return;
        }
        {
            let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
            let offer = |ocid: &Ocid| {
                for conn in conns.get(ocid).into_iter().flat_map(|l| &l.conns) {
                    if signal.origin != Some(conn.origin()) {
                        conn.push_ephemeral(Push::Notice(signal.clone()));
                    }
                }
            };
            match &signal.audience {
                Audience::Accounts(list) => list.iter().for_each(offer),
                Audience::Chat(chat) => chat.members.iter().for_each(offer),
            }
        }
        if let Notice::Friendship { a, b, change, .. } = signal.notice {
            self.befriended(a, b, change);
        }
    }

    /// Tell every logged-in connection to catch up from the store (after the bus may have
    /// lost deliveries).
    fn resync_all(&self) {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        for conn in conns.values().flat_map(|l| &l.conns) {
            conn.lagging.store(true, Ordering::Release);
            let _ = conn.push(Push::Resync);
        }
    }
}
