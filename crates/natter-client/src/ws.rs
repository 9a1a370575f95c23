//! The WebSocket connection every WebSocket dialect runs on: resolve a `ws://` URL, open TCP
//! (optionally from a chosen source address, always with `TCP_NODELAY`), upgrade, send and
//! receive text frames, and say how the connection ended.
//!
//! Nothing here knows a dialect: frames are opaque text. Pings are answered by tungstenite
//! while the connection is read; [`Conn::next_text`] skips them, [`Conn::next_event`] shows
//! them.

use crate::{Error, Result};
use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A received text frame: cheap to clone, derefs to `str`.
pub use tokio_tungstenite::tungstenite::Utf8Bytes;

/// How long [`Conn::close`] waits for the server to answer the close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A server's WebSocket URL, resolved once.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: String,
    host_port: String,
    addr: SocketAddr,
}

impl Endpoint {
    /// Parse a `ws://host[:port]/path` URL and resolve its host (the port defaults to 80).
    ///
    /// # Errors
    /// Not a `ws://` URL, no host, or the host does not resolve.
    pub async fn resolve(url: &str) -> Result<Self> {
        let bad = |why| Error::Url {
            url: url.to_owned(),
            why,
        };
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| bad("only ws:// URLs are supported"))?;
        let host_port = rest.split('/').next().unwrap_or_default();
        if host_port.is_empty() {
            return Err(bad("the URL names no host"));
        }
        let with_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_owned()
        } else {
            format!("{host_port}:80")
        };
        let resolve = |source| Error::Resolve {
            host: with_port.clone(),
            source,
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(resolve)?
            .next()
            .ok_or_else(|| resolve(std::io::Error::other("no address")))?;
        Ok(Self {
            url: url.to_owned(),
            host_port: with_port,
            addr,
        })
    }

    /// The endpoint at `path` of a server listening on `addr` (no name to resolve).
    pub fn at(addr: SocketAddr, path: &str) -> Self {
        Self {
            url: format!("ws://{addr}{path}"),
            host_port: addr.to_string(),
            addr,
        }
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port` of the URL, as an HTTP `Host` header names it.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    /// The resolved server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Open a connection: TCP, then the WebSocket upgrade.
    ///
    /// # Errors
    /// The source address cannot be bound, the TCP connection failed, or the upgrade was
    /// refused ([`Error::UpgradeRefused`] with the server's HTTP status) or failed.
    pub async fn connect(&self, options: &Options) -> Result<Conn> {
        self.connect_with(options, &[]).await
    }

    /// [`Endpoint::connect`] with extra request headers on the upgrade (a `Cookie`, say).
    ///
    /// # Errors
    /// As [`Endpoint::connect`]; a header that HTTP does not allow is [`Error::Url`].
    pub async fn connect_with(&self, options: &Options, headers: &[(&str, &str)]) -> Result<Conn> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let bad = |why| Error::Url {
            url: self.url.clone(),
            why,
        };
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|_| bad("not a WebSocket URL"))?;
        for (name, value) in headers {
            let name = HeaderName::try_from(*name).map_err(|_| bad("a bad header name"))?;
            let value = HeaderValue::try_from(*value).map_err(|_| bad("a bad header value"))?;
            request.headers_mut().append(name, value);
        }
        let connect = |source| Error::Connect {
            addr: self.addr,
            source,
        };
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(connect)?;
        if let Some(source) = options.source {
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
                connect(std::io::Error::new(e.kind(), format!("bind {source}: {e}")))
            })?;
        }
        if let Some(size) = options.recv_buffer {
            socket.set_recv_buffer_size(size).map_err(connect)?;
        }
        let stream = socket.connect(self.addr).await.map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        let config = options.buffer.map(|size| {
            WebSocketConfig::default()
                .read_buffer_size(size)
                .write_buffer_size(size)
        });
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, config)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(answer) => Error::UpgradeRefused {
                    url: self.url.clone(),
                    status: answer.status().as_u16(),
                },
                e => Error::Upgrade {
                    url: self.url.clone(),
                    source: Box::new(e),
                },
            })?;
        Ok(Conn { ws })
    }
}

/// How to open a connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The local address to connect from (`None`: the kernel chooses). Spreading many
    /// connections to a loopback server over 127.0.0.x gives each source its own ports.
    pub source: Option<IpAddr>,
    /// The WebSocket read and write buffer size in bytes (`None`: tungstenite's defaults,
    /// 128 KiB to read). Small buffers let tens of thousands of connections fit in one process.
    pub buffer: Option<usize>,
    /// The socket's kernel receive buffer in bytes (`None`: the kernel's default). A small one
    /// makes a client that stops reading hold up the server's writes sooner.
    pub recv_buffer: Option<u32>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server sent a close frame (with its code, if any).
    Close(Option<u16>),
    /// The stream ended without a close frame.
    Eof,
    /// The transport failed (for example reset by the peer).
    Error(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Close(Some(code)) => write!(f, "closed by the server with code {code}"),
            Self::Close(None) => write!(f, "closed by the server"),
            Self::Eof => write!(f, "the stream ended without a close"),
            Self::Error(e) => write!(f, "{e}"),
        }
    }
}

/// What arrived on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Text(Utf8Bytes),
    Binary(Vec<u8>),
    /// A ping (already answered, or to be answered at the next read or write).
    Ping,
    Pong,
    /// Nothing more will arrive.
    Ended(Ended),
}

/// One WebSocket connection.
pub struct Conn {
    ws: WebSocketStream<TcpStream>,
}

impl Conn {
    /// Send one text frame now.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<()> {
        self.ws.send(Message::text(text)).await.map_err(transport)
    }

    /// Queue one text frame without flushing; see [`Conn::flush`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn feed_text(&mut self, text: impl Into<Utf8Bytes>) -> Result<()> {
        self.ws.feed(Message::text(text)).await.map_err(transport)
    }

    /// Write out every queued frame.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn flush(&mut self) -> Result<()> {
        self.ws.flush().await.map_err(transport)
    }

    /// Send one binary frame now.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_binary(&mut self, bytes: impl Into<Vec<u8>>) -> Result<()> {
        self.ws
            .send(Message::binary(bytes.into()))
            .await
            .map_err(transport)
    }

    /// The next thing that arrives; after [`Event::Ended`], nothing more will.
    pub async fn next_event(&mut self) -> Event {
        loop {
            return match self.ws.next().await {
                Some(Ok(Message::Text(t))) => Event::Text(t),
                Some(Ok(Message::Binary(b))) => Event::Binary(b.to_vec()),
                Some(Ok(Message::Ping(_))) => Event::Ping,
                Some(Ok(Message::Pong(_))) => Event::Pong,
                Some(Ok(Message::Close(frame))) => {
                    Event::Ended(Ended::Close(frame.map(|f| u16::from(f.code))))
                }
                // Reads never return raw frames.
                Some(Ok(Message::Frame(_))) => continue,
                Some(Err(e)) => Event::Ended(Ended::Error(e.to_string())),
                None => Event::Ended(Ended::Eof),
            };
        }
    }

    /// The next text frame, skipping pings and pongs.
    ///
    /// # Errors
    /// The connection ended ([`Error::Ended`]) or a binary frame arrived ([`Error::Unexpected`]).
    pub async fn next_text(&mut self) -> Result<Utf8Bytes> {
        loop {
            match self.next_event().await {
                Event::Text(t) => return Ok(t),
                Event::Ping | Event::Pong => {}
                Event::Binary(b) => {
                    return Err(Error::Unexpected(format!(
                        "a binary frame of {} bytes",
                        b.len()
                    )));
                }
                Event::Ended(how) => return Err(Error::Ended(how)),
            }
        }
    }

    /// Wait for the connection to end, skipping pings and pongs; returns how it ended.
    ///
    /// # Errors
    /// A text or binary frame arrived first ([`Error::Unexpected`]).
    pub async fn wait_closed(&mut self) -> Result<Ended> {
        loop {
            match self.next_event().await {
                Event::Ping | Event::Pong => {}
                Event::Ended(how) => return Ok(how),
                Event::Text(t) => return Err(Error::Unexpected(format!("a text frame: {t}"))),
                Event::Binary(b) => {
                    return Err(Error::Unexpected(format!(
                        "a binary frame of {} bytes",
                        b.len()
                    )));
                }
            }
        }
    }

    /// Close politely: send a close, then read until the server has closed too (so that
    /// whatever the server does when a connection ends has happened), for at most 5 s.
    pub async fn close(mut self) {
        if self.ws.close(None).await.is_ok() {
            let wait = async { while let Some(Ok(_)) = self.ws.next().await {} };
            let _ = tokio::time::timeout(CLOSE_WAIT, wait).await;
        }
    }
}

fn transport(e: tokio_tungstenite::tungstenite::Error) -> Error {
    Error::Transport(Box::new(e))
}
