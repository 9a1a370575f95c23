//! One connection as the hub sees it: its bounded outbox, what the outbox carries, and a
//! delivery shared by every receiving connection with its frames encoded at most once per
//! encoding.

use crate::event::{Delivery, Origin, Signal};
use bytes::Bytes;
use natter_proto::Ocid;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;

/// How many encodings of one message are kept for its receivers (one per dialect that
/// receives it).
pub const SLOTS: usize = 8;

/// Where a dialect's frame for a message is kept in an [`Outgoing`]: handed out by the hub when
/// a dialect is mounted. Past [`SLOTS`] dialects, a dialect's frames are encoded for each
/// receiver instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub(super) Option<u8>);

impl Slot {
    /// No slot: the dialect's frame for a message is encoded for each receiving connection
    /// (for a dialect whose frames carry something of the connection's own).
    pub const PER_RECEIVER: Self = Self(None);
}

/// A delivery as it sits in outboxes: shared by every receiving connection, its frame encoded
/// at most once per slot.
#[derive(Debug)]
pub struct Outgoing {
    pub delivery: Arc<Delivery>,
    /// What one receiver's frame of it is reckoned to cost, in bytes ([`Message::wire_bytes`]),
    /// against its connection's and the node's budgets of buffered outgoing data.
    ///
    /// [`Message::wire_bytes`]: crate::store::Message::wire_bytes
    pub size: usize,
    frames: [OnceLock<Bytes>; SLOTS],
}

impl Outgoing {
    pub fn new(delivery: Arc<Delivery>) -> Self {
        Self {
            size: delivery.message.wire_bytes(),
            delivery,
            frames: Default::default(),
        }
    }

    /// The message's frame for `slot`, made by `encode` the first time it is asked for.
    pub fn frame(&self, slot: Slot, encode: impl FnOnce(&Delivery) -> Bytes) -> Bytes {
        match slot.0 {
            Some(i) => self.frames[usize::from(i)]
                .get_or_init(|| encode(&self.delivery))
                .clone(),
            None => encode(&self.delivery),
        }
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
    /// An ephemeral notice (friend request, friendship change, typing).
    Notice(Arc<Signal>),
    /// A friend of this connection's account came online or went offline (cluster-wide).
    Presence { ocid: Ocid, online: bool },
    /// The account's standing changed (banned, deleted, a login revoked): check the login.
    Recheck,
}

/// One live connection as the hub sees it.
#[derive(Debug)]
pub struct ConnHandle {
    pub id: u64,
    pub(super) node: u64,
    pub(super) tx: mpsc::Sender<Push>,
    pub(super) lagging: AtomicBool,
    /// Set when the account's standing changed: the connection checks its login again.
    pub(super) recheck: AtomicBool,
    /// Bytes of the deliveries waiting in the outbox (each [`Outgoing::size`]).
    pub(super) queued: AtomicUsize,
}

impl ConnHandle {
    /// Whether the connection's login must be checked again; clears the flag.
    pub fn take_recheck(&self) -> bool {
        self.recheck.load(Ordering::Relaxed) && self.recheck.swap(false, Ordering::AcqRel)
    }

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

    /// Offer something that is not stored: a full outbox just drops it (there is nothing to
    /// catch up from).
    pub(super) fn push_ephemeral(&self, push: Push) {
        let _ = self.tx.try_send(push);
    }

    /// Offer a stored message (or a resync): a full outbox marks the connection lagging, and it
    /// catches up from the store once it drains. `false` when the outbox was full.
    pub(super) fn push(&self, push: Push) -> bool {
        match self.tx.try_send(push) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagging.store(true, Ordering::Release);
                false
            }
            // The connection is closing; what it missed stays in the store.
            Err(mpsc::error::TrySendError::Closed(_)) => true,
        }
    }

    /// Offer a delivery of `size` bytes within the connection's byte budget `budget`: over it
    /// (or with `room` false: the node is over its own budget) the delivery is left to the
    /// store and the connection marked lagging, as with a full outbox. `Some(size)` when it
    /// was queued (the bytes now count until the connection takes it), `None` when not.
    pub(super) fn push_sized(
        &self,
        out: &Arc<Outgoing>,
        budget: usize,
        room: bool,
    ) -> Option<usize> {
        let size = out.size;
        let queued = self.queued.load(Ordering::Relaxed);
        // An empty outbox always takes one message, whatever its size, so that a message
        // larger than the budget still reaches a reader that keeps up.
        if !room || (queued > 0 && queued + size > budget) {
            self.lagging.store(true, Ordering::Release);
            return None;
        }
        self.queued.fetch_add(size, Ordering::Relaxed);
        match self.tx.try_send(Push::Deliver(out.clone())) {
            Ok(()) => Some(size),
            Err(e) => {
                self.queued.fetch_sub(size, Ordering::Relaxed);
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    self.lagging.store(true, Ordering::Release);
                    None
                } else {
                    // The connection is closing; what it missed stays in the store.
                    Some(0)
                }
            }
        }
    }

    /// The connection took deliveries of `bytes` from its outbox.
    pub fn taken(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
}
