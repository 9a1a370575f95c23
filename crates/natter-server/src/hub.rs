//! The hub: which connections of this node belong to which account, and the fan-out of a
//! delivery to them.
//!
//! Fan-out never blocks: each connection has a bounded outbox, and a full outbox marks the
//! connection as lagging (it then catches up from the store by index) instead of slowing the
//! sender or the other receivers. The lock is never held across an await.

use crate::bus::Origin;
use crate::domain::{Delivery, Dialect, encode};
use axum::extract::ws::Utf8Bytes;
use natter_proto::Ocid;
use rand::RngExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::mpsc;

/// A delivery as it sits in outboxes: shared by every receiving connection, its code 0 frame
/// encoded at most once per dialect.
#[derive(Debug)]
pub struct Outgoing {
    pub delivery: Arc<Delivery>,
    frames: [OnceLock<Utf8Bytes>; 2],
}

impl Outgoing {
    pub fn new(delivery: Arc<Delivery>) -> Self {
        Self {
            delivery,
            frames: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The message's frame in `dialect`, encoded on first use.
    pub fn frame(&self, dialect: Dialect) -> Utf8Bytes {
        self.frames[dialect as usize]
            .get_or_init(|| encode(dialect, &self.delivery.view()).into())
            .clone()
    }
}

/// What a connection's outbox carries.
#[derive(Debug)]
pub enum Push {
    /// A live message.
    Deliver(Arc<Outgoing>),
    /// Deliveries may have been lost on the way (a bus outage): read every chat's tail from
    /// the store.
    Resync,
}

/// One live connection as the hub sees it.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: u64,
    pub dialect: Dialect,
    node: u64,
    tx: mpsc::Sender<Push>,
    lagging: AtomicBool,
}

impl ConnHandle {
    /// Whether a delivery was dropped since the last call; clears the flag.
    pub fn take_lagging(&self) -> bool {
        self.lagging.swap(false, Ordering::AcqRel)
    }

    /// This connection as the sender of a message, cluster-wide.
    pub fn origin(&self) -> Origin {
        Origin {
            node: self.node,
            conn: self.id,
        }
    }
}

pub struct Hub {
    /// A random id for this node's hub, so origins are unique across the cluster.
    node: u64,
    next_id: AtomicU64,
    conns: RwLock<HashMap<Ocid, Vec<Arc<ConnHandle>>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            node: rand::rng().random(),
            next_id: AtomicU64::new(0),
            conns: RwLock::new(HashMap::new()),
        }
    }

    /// A new connection handle and the receiving end of its outbox.
    pub fn connection(
        &self,
        dialect: Dialect,
        outbox: usize,
    ) -> (Arc<ConnHandle>, mpsc::Receiver<Push>) {
        let (tx, rx) = mpsc::channel(outbox.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(ConnHandle {
            id,
            dialect,
            node: self.node,
            tx,
            lagging: AtomicBool::new(false),
        });
        (handle, rx)
    }

    pub fn register(&self, ocid: Ocid, conn: &Arc<ConnHandle>) {
        let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
        conns.entry(ocid).or_default().push(conn.clone());
    }

    pub fn unregister(&self, ocid: Ocid, conn_id: u64) {
        let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = conns.get_mut(&ocid) {
            list.retain(|c| c.id != conn_id);
            if list.is_empty() {
                conns.remove(&ocid);
            }
        }
    }

    /// How many connections are logged in on this node.
    pub fn connections(&self) -> usize {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        conns.values().map(Vec::len).sum()
    }

    /// Offer a delivery to every connection of every member except the sending one.
    pub fn dispatch(&self, delivery: &Arc<Delivery>) {
        let out = Arc::new(Outgoing::new(delivery.clone()));
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        for member in &delivery.chat.members {
            let Some(list) = conns.get(member) else {
                continue;
            };
            for conn in list {
                if delivery.origin == Some(conn.origin()) {
                    continue;
                }
                conn.push(Push::Deliver(out.clone()));
            }
        }
    }

    /// Tell every logged-in connection to catch up from the store (after the bus may have
    /// lost deliveries).
    pub fn resync_all(&self) {
        let conns = self.conns.read().unwrap_or_else(|p| p.into_inner());
        for conn in conns.values().flatten() {
            conn.lagging.store(true, Ordering::Release);
            conn.push(Push::Resync);
        }
    }
}

impl ConnHandle {
    fn push(&self, push: Push) {
        match self.tx.try_send(push) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagging.store(true, Ordering::Release);
            }
            // The connection is closing; what it missed stays in the store.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
