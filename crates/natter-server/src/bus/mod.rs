//! The delivery bus: how a stored message, a notice or a presence change reaches every node.
//!
//! Every node, the origin included, delivers from the bus, so one node and many share one
//! path: the domain publishes, and whatever arrives from the bus is handed to this node's
//! [`BusHandler`] (the hub), which offers it to its own connections. `LocalBus` is the single
//! node's in-process bus; `NatsBus` carries its own versioned messages (`wire.rs`) between the
//! nodes of a cluster.
//!
//! The bus is a fast path, not the record: a message is durable (and acked) before it is
//! published, and anything a bus drops is caught up from the store by index (a later message
//! in the same chat reveals the gap; a bus reconnect makes every connection resync).
//!
//! This module knows the events it carries (`crate::event`) and nothing above them: not the
//! hub, not the domain, not the app.

pub mod nats;
mod wire;

pub use wire::{keep as keep_notice, kept as kept_notice};

use crate::event::{ChatInfo, Delivery, Signal};
use async_trait::async_trait;
use natter_proto::{ChatId, Ocid};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub trait Bus: Send + Sync + 'static {
    /// Publish a stored message to every node, this one included. Called only after the
    /// message is durable, by the store's writer in index order; never waits (a delivery the
    /// bus cannot take now is dropped and caught up from the store).
    fn publish(&self, delivery: Arc<Delivery>);
    /// Publish an ephemeral notice to every node, this one included. Never waits; a notice
    /// the bus cannot take is lost (notices are not stored).
    fn notify(&self, signal: Arc<Signal>);
    /// Tell the other nodes that `ocid` now has (or no longer has) a connection on node
    /// `node`. This node's hub has already applied it. Called in the order the changes happen.
    fn presence(&self, node: u64, ocid: Ocid, online: bool);
    /// Whether the bus can carry deliveries now (readiness). An in-process bus always can.
    fn connected(&self) -> bool {
        true
    }
    /// Messages dropped and reconnections so far (for the metrics). An in-process bus has
    /// neither.
    fn stats(&self) -> BusStats {
        BusStats::default()
    }
}

/// What a bus has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Bus messages dropped: not published while disconnected, or a full publish queue.
    pub dropped: u64,
    /// Reconnections after the bus connection was lost.
    pub reconnects: u64,
}

/// What a node does with what arrives from the bus: implemented by the hub. None of these may
/// wait; each is called from the bus's receiving task (or inline by `LocalBus`).
pub trait BusHandler: Send + Sync + 'static {
    /// This node's random id on the bus.
    fn node(&self) -> u64;
    /// A stored message for this node's connections.
    fn deliver(&self, delivery: &Arc<Delivery>);
    /// A notice for this node's connections.
    fn notice(&self, signal: &Arc<Signal>);
    /// Another node's presence change.
    fn remote_presence(&self, node: u64, ocid: Ocid, online: bool);
    /// Another node's whole list of accounts (it replaces what was known of that node).
    fn remote_snapshot(&self, node: u64, accounts: &[Ocid]);
    /// `node` was heard from; `true` if it was not known (new, or given up on).
    fn heard(&self, node: u64) -> bool;
    /// Give up on the nodes not heard from for `timeout`; returns how many.
    fn expire_peers(&self, timeout: Duration) -> usize;
    /// Deliveries may have been lost: every connection here catches up from the store.
    fn resync_all(&self);
    /// This node's accounts, handed to `publish` while no presence change is being published
    /// (so that a snapshot and the changes stay in order).
    fn local_accounts(&self, publish: &mut dyn FnMut(Vec<Ocid>));
}

/// How the bus learns a chat's members when a message arrives naming only its chat (the
/// domain's chat cache, backed by the store).
#[async_trait]
pub trait Chats: Send + Sync + 'static {
    /// The chat, or `None` when it cannot be found (the caller then resyncs).
    async fn chat_info(&self, chat: ChatId) -> Option<Arc<ChatInfo>>;
    /// Another node changed this chat's members, or a block between this pair: drop what is
    /// cached of it.
    fn forget(&self, chat: Option<ChatId>, pair: Option<(Ocid, Ocid)>);
}

/// Whether an account has a connection on any node: the hub's view of the cluster, which the
/// domain asks before keeping a notice for an account's next login.
pub trait Presence: Send + Sync + 'static {
    fn has_connection(&self, ocid: Ocid) -> bool;
}

/// The in-process bus of a single node: publishing is this node's fan-out.
pub struct LocalBus {
    handler: OnceLock<Arc<dyn BusHandler>>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalBus {
    /// A bus that delivers nothing until [`LocalBus::attach`] names its handler.
    pub fn new() -> Self {
        Self {
            handler: OnceLock::new(),
        }
    }

    /// Deliver to `handler` from now on (once).
    pub fn attach(&self, handler: Arc<dyn BusHandler>) {
        let _ = self.handler.set(handler);
    }
}

impl Bus for LocalBus {
    fn publish(&self, delivery: Arc<Delivery>) {
        if let Some(h) = self.handler.get() {
            h.deliver(&delivery);
        }
    }

    fn notify(&self, signal: Arc<Signal>) {
        if let Some(h) = self.handler.get() {
            h.notice(&signal);
        }
    }

    /// A single node has no one to tell.
    fn presence(&self, _node: u64, _ocid: Ocid, _online: bool) {}
}
