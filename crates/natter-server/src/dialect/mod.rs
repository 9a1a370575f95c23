//! Dialects: each seed's wire protocol on the one core.
//!
//! A dialect served over a connection implements [`Dialect`]: it decodes a frame into its
//! request (saying whether the request needs a login and whether it is a pipelined send),
//! handles it with the domain through its [`Conn`], and encodes everything the connection
//! sends: replies, acks, delivered messages, notices, presence and refusals. The connection
//! loop (`crate::conn`) enforces the login gate and request order once for all dialects, and
//! the hub caches each dialect's frame for a message in the dialect's [`Slot`]. A dialect
//! served per HTTP request needs no connection: its handlers authenticate each request, call
//! the domain (`Domain::send_text` awaits the durable append) and answer.
//!
//! Dialects never touch the store or a socket. Adding one is one module here and one line that
//! mounts it (see `docs/architecture.md`, "Adding a dialect").

pub mod ourchat;
pub mod pipe;
pub mod rest;
pub mod svc;

use crate::conn::{Close, Conn};
use crate::domain::{Domain, DomainError, Sent};
use crate::event::Notice;
use crate::hub::Slot;
use bytes::Bytes;
use natter_proto::{MessageView, Ocid};
use std::future::Future;

/// Why the connection refused a frame before its dialect handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request needs a logged-in connection.
    NotLoggedIn,
    /// The request budget is spent.
    RateLimited,
    /// The frame is larger than `max` bytes.
    FrameTooLarge { max: usize },
    /// A binary frame where the dialect reads text.
    BinaryFrame,
}

/// When a message counts as delivered to a device (and is not sent to it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marks {
    /// Once it is written to the socket.
    OnWrite,
    /// Once the client acknowledges it (`Conn::acked`); until then a reconnecting device is
    /// sent it again.
    OnAck,
}

/// A decoded request with what the connection needs to know about it.
#[derive(Debug)]
pub struct Decoded<R> {
    pub request: R,
    /// Refused with [`Refusal::NotLoggedIn`] on a connection that is not logged in.
    pub needs_login: bool,
    /// A send that may be pipelined: it does not wait for the sends before it. Every other
    /// request waits until they are acked, so replies keep request order.
    pub pipelined: bool,
}

/// Something the server tells a logged-in connection on its own.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A friend request, a friendship change or typing.
    Notice { notice: &'a Notice, at_ms: i64 },
    /// A friend came online or went offline.
    Presence { ocid: Ocid, online: bool },
}

/// A wire protocol served over a connection (a WebSocket, a TCP line stream).
pub trait Dialect: Send + Sync + Sized + 'static {
    /// A decoded request (with whatever its replies need, such as a request id).
    type Request: Send;
    /// What a queued send's ack needs besides the outcome.
    type Ack: Send;
    /// What the dialect remembers about one connection (for OurChat: whether the client opted
    /// in to its extension frames). `Conn::state` and `Conn::state_mut` reach it.
    type State: Default + Send;

    /// Where this dialect's frame for a delivered message is cached (from `Hub::slot`).
    fn slot(&self) -> Slot;

    /// When messages count as delivered to a device.
    fn marks(&self) -> Marks {
        Marks::OnWrite
    }

    /// Decode one frame.
    ///
    /// # Errors
    /// The dialect's reply to a frame it cannot read.
    fn decode(&self, frame: &[u8]) -> Result<Decoded<Self::Request>, Bytes>;

    /// Handle a decoded request that passed the login gate, pushing replies to `out`.
    fn handle(
        &self,
        conn: &mut Conn<Self>,
        request: Self::Request,
        out: &mut Vec<Bytes>,
    ) -> impl Future<Output = ()> + Send;

    /// The reply refusing `request` for `why` (the login gate).
    fn refuse(&self, request: &Self::Request, why: Refusal) -> Bytes;

    /// The reply refusing a frame that was not decoded (budget, size, binary); `frame` is the
    /// refused text frame, if it was one, so that the reply can name its request (its id).
    fn refuse_frame(&self, frame: Option<&[u8]>, why: Refusal) -> Bytes;

    /// A stored message as delivered to this dialect's connections (the same bytes for every
    /// receiver: it is encoded once per message).
    fn message(&self, view: &MessageView<'_>) -> Bytes;

    /// Whether [`Dialect::file_message`] makes frames: only then is a delivered file
    /// message handed to it (the others encode file messages like any other, from the cache).
    const FILE_FRAMES: bool = false;

    /// A delivered message that carries a file, as this dialect's frame when making it needs
    /// an awaited read (the pipe dialect carries the file's bytes in the line, its clients
    /// having no other way to fetch them); made for each receiving connection, for `me`.
    /// `None` (the default): the frame of [`Dialect::message`] is sent.
    fn file_message(
        &self,
        _domain: &Domain,
        _me: Ocid,
        _view: &MessageView<'_>,
    ) -> impl Future<Output = Option<Bytes>> + Send {
        std::future::ready(None)
    }

    /// The ack of a queued send, or its refusal; `None` when the client is not to be told.
    fn ack(&self, ack: Self::Ack, result: Result<&Sent, &DomainError>) -> Option<Bytes>;

    /// A notice or presence change for the account `me`, if this dialect shows it to this
    /// connection.
    fn event(&self, state: &Self::State, me: Ocid, event: Event<'_>) -> Option<Bytes>;

    /// A last frame before the server closes the connection for `why`, if the dialect has one.
    fn farewell(&self, _why: Close) -> Option<Bytes> {
        None
    }
}
