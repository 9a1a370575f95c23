//! The delivery bus: how a stored message reaches every node's hub.
//!
//! Every node, the origin included, delivers from the bus, so one node and many share one
//! path. `LocalBus` is the in-process bus of a single node: publishing hands the delivery
//! straight to this node's hub (a non-blocking fan-out).

use crate::domain::Delivery;
use crate::hub::Hub;
use async_trait::async_trait;
use std::sync::Arc;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publish a stored message to every node. Called only after the message is durable.
    async fn publish(&self, delivery: Arc<Delivery>);
}

pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, delivery: Arc<Delivery>) {
        self.hub.dispatch(&delivery);
    }
}
