//! natter's client library: one module per dialect, over connection layers shared between them.
//!
//! - [`ws`]: a WebSocket connection ([`ws::Conn`]) that knows nothing of any dialect: connect
//!   (optionally from a chosen source address), send and receive text frames, report how the
//!   connection ended.
//! - [`http`]: the server's plain HTTP endpoints (`/healthz`, `/metrics`).
//! - [`ourchat::v1`] and [`ourchat::v0`]: the OurChat dialects served on `/ws` and `/ws/v0`:
//!   the exact request frames of their protocol documents, cheap reading of the server's
//!   frames, and a small client for the common exchanges.
//! - [`pipe`]: the pipe dialect's line protocol.
//! - [`rest`]: the REST + push dialect: HTTP requests with the session cookie, and the push
//!   channel.
//!
//! Used by natter's tests, by `natter bench` (so reading a frame stays cheap: it borrows from
//! the received text and skips what it does not need) and by terminal clients. It must not
//! depend on the server crate: it speaks the wire only.

pub mod http;
pub mod ourchat;
pub mod pipe;
pub mod rest;
pub mod ws;

use std::net::SocketAddr;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not one this client can use.
    #[error("`{url}`: {why}")]
    Url { url: String, why: &'static str },
    /// A host name could not be resolved.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection (or binding its source address) failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server answered the WebSocket upgrade with an HTTP status instead (503 when it is
    /// at its connection cap, for example).
    #[error("WebSocket upgrade at {url} refused with HTTP status {status}")]
    UpgradeRefused { url: String, status: u16 },
    /// The WebSocket upgrade failed.
    #[error("WebSocket upgrade at {url} failed: {source}")]
    Upgrade {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// Reading or writing an open connection failed.
    #[error("the connection failed: {0}")]
    Transport(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// A plain HTTP exchange failed.
    #[error("HTTP: {0}")]
    Io(#[from] std::io::Error),
    /// The connection ended while a frame was awaited.
    #[error("the connection ended: {0}")]
    Ended(ws::Ended),
    /// The server sent something the protocol does not allow at this point.
    #[error("unexpected from the server: {0}")]
    Unexpected(String),
    /// A frame from the server could not be decoded.
    #[error("unexpected frame from server ({source}): {frame}")]
    Decode {
        frame: String,
        #[source]
        source: serde_json::Error,
    },
    /// The server answered a request with an error reply (the whole frame).
    #[error("server error: {0}")]
    Server(String),
    /// The server answered a request with a reply that says it failed (the whole frame).
    #[error("{what} failed: {frame}")]
    Refused { what: &'static str, frame: String },
}

/// What every call of this crate returns.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a message goes, as a person names it: the private chat with an account, or a group.
/// Each dialect writes it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The private chat with this account (its ocid).
    Private(u64),
    /// The group with this id.
    Group(u64),
}

/// The chat of a received message, as far as its dialect tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chat {
    /// A group (its id).
    Group(u64),
    /// The private chat with this other account (its ocid).
    Private(u64),
    /// A chat known by its id only: v0 does not say whether a chat is a group.
    Id(u64),
}

/// A stored message as any dialect delivers it: the neutral view that lets one test or tool
/// work with every dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub chat: Chat,
    /// Its position in the chat: 1, 2, 3, ... with no gaps.
    pub index: u64,
    /// The server-assigned message id (v1 `cid`, v0 `mid`).
    pub id: u64,
    /// The author's ocid.
    pub sender: u64,
    pub text: String,
    /// When the server accepted it, in Unix seconds.
    pub time: i64,
}

/// What a server acknowledged for a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The chat it went to, as the dialect names it in acks.
    pub chat: Chat,
    /// The message id.
    pub id: u64,
    /// Its index in its chat.
    pub index: u64,
}

/// A page of a chat's history: which part of the chat to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Page {
    /// Only messages with an index lower than this (the newest of them).
    pub before: Option<u64>,
    /// Only messages with an index higher than this (the oldest of them).
    pub after: Option<u64>,
    /// At most this many (the server's default when absent).
    pub limit: Option<u64>,
}

/// A page of history as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// In ascending index order.
    pub messages: Vec<Message>,
    /// Whether the chat has more in the direction read.
    pub more: bool,
}

/// What a successful login or resume gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub ocid: u64,
    /// The session token (`None` after a resume, which issues none).
    pub token: Option<String>,
    /// What the server pushed as missed, in the order pushed.
    pub missed: Vec<Message>,
}

/// Decode a whole frame into `T`, naming the frame on failure.
fn decode<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| Error::Decode {
        frame: text.to_owned(),
        source,
    })
}
