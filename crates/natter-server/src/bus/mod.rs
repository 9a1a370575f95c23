//! The delivery bus: how a stored message reaches every node's hub.
//!
//! Every node, the origin included, delivers from the bus, so one node and many share one
//! path: the domain publishes a stored message, and whatever arrives from the bus is fanned out
//! by this node's hub to its own connections. `LocalBus` is the single node's in-process bus;
//! `NatsBus` carries deliveries between the nodes of a cluster.
//!
//! The bus is a fast path, not the record: a message is durable (and acked) before it is
//! published, and anything a bus drops is caught up from the store by index (a later message
//! in the same chat reveals the gap; a bus reconnect makes every connection resync).

pub mod nats;

use crate::domain::Delivery;
use crate::domain::friends::Signal;
use crate::hub::Hub;
use natter_proto::Ocid;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which connection sent a message: it gets the ack, not the message. `node` is the random
/// instance id of the sending node's hub, so connection ids need not be unique across nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub node: u64,
    pub conn: u64,
}

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
}

/// The in-process bus of a single node: publishing is this node's fan-out.
pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Bus for LocalBus {
    fn publish(&self, delivery: Arc<Delivery>) {
        self.hub.dispatch(&delivery);
    }

    fn notify(&self, signal: Arc<Signal>) {
        self.hub.signal(&signal);
    }

    /// A single node has no one to tell.
    fn presence(&self, _node: u64, _ocid: Ocid, _online: bool) {}
}
