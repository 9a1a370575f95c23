//! The hub: which connections of this node belong to which account, and the fan-out of a
//! delivery to them.
//!
//! Fan-out never blocks: each connection has a bounded outbox, and a full outbox marks the
//! connection as lagging (it then catches up from the store by index) instead of slowing the
//! sender or the other receivers. The lock is never held across an await.

use crate::domain::{Delivery, Dialect, encode};
use axum::extract::ws::Utf8Bytes;
use natter_proto::Ocid;
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

/// One live connection as the hub sees it.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: u64,
    pub dialect: Dialect,
    tx: mpsc::Sender<Arc<Outgoing>>,
    lagging: AtomicBool,
}

impl ConnHandle {
    /// Whether a delivery was dropped since the last call; clears the flag.
    pub fn take_lagging(&self) -> bool {
        self.lagging.swap(false, Ordering::AcqRel)
    }
}

#[derive(Default)]
pub struct Hub {
    next_id: AtomicU64,
    conns: RwLock<HashMap<Ocid, Vec<Arc<ConnHandle>>>>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new connection handle and the receiving end of its outbox.
    pub fn connection(
        &self,
        dialect: Dialect,
        outbox: usize,
    ) -> (Arc<ConnHandle>, mpsc::Receiver<Arc<Outgoing>>) {
        let (tx, rx) = mpsc::channel(outbox.max(1));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(ConnHandle {
            id,
            dialect,
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
                if Some(conn.id) == delivery.origin {
                    continue;
                }
                match conn.tx.try_send(out.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        conn.lagging.store(true, Ordering::Release);
                    }
                    // The connection is closing; what it missed stays in the store.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }
}
