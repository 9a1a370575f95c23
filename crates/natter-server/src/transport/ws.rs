//! WebSocket as a [`Wire`]: text messages are frames, pings are keepalives, and the socket's
//! own limits close a connection whose frame is far too large. [`route`] mounts a dialect at a
//! path.

use crate::app::App;
use crate::conn::{self, Close, Inbound, Wire};
use crate::dialect::Dialect;
use crate::transport::ClientAddr;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use futures_util::SinkExt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// Read buffer per connection, allocated for its whole life: small, because memory per idle
/// connection matters more than a few extra reads for large frames (1 KiB here: ~6.7 KB of
/// server memory per idle logged-in connection; 4 KiB: ~9.8 KB).
const READ_BUFFER: usize = 1024;
/// Bytes gathered before a write to the socket; the buffer grows only while frames are being
/// written, so it costs an idle connection nothing.
const WRITE_BUFFER: usize = 4 * 1024;

/// `GET` that upgrades to a WebSocket connection speaking `dialect`; `name` labels its
/// connections in the metrics.
pub fn route<D: Dialect>(app: &App, name: &'static str, dialect: D) -> MethodRouter<Arc<App>> {
    let dialect = Arc::new(dialect);
    let open = app.metrics.connections(name);
    get(
        move |State(app): State<Arc<App>>,
              ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
              ws: WebSocketUpgrade| async move { upgrade(app, ws, dialect, peer, open) },
    )
}

/// `GET /`: a WebSocket upgrade there speaks `dialect` (clients that dial the server's root);
/// any other `GET` is the web client's page. `name` labels its connections in the metrics.
pub fn route_at_root<D: Dialect>(
    app: &App,
    name: &'static str,
    dialect: D,
) -> MethodRouter<Arc<App>> {
    let dialect = Arc::new(dialect);
    let open = app.metrics.connections(name);
    get(
        move |State(app): State<Arc<App>>,
              ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
              headers: HeaderMap,
              ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>| async move {
            match ws {
                Ok(ws) => upgrade(app, ws, dialect, peer, open),
                Err(_) => super::web::index(&headers),
            }
        },
    )
}

/// Upgrade to a WebSocket connection speaking `dialect` (for a route that checks the upgrade
/// request itself before it upgrades, such as a dialect authenticated by a cookie); `open`
/// counts its connections in the metrics.
pub fn upgrade<D: Dialect>(
    app: Arc<App>,
    ws: WebSocketUpgrade,
    dialect: Arc<D>,
    peer: SocketAddr,
    open: metrics::Gauge,
) -> axum::response::Response {
    // Frames up to four times the soft limit are read (and refused by the dialect); larger
    // ones close the connection.
    let hard = app.config.max_frame_bytes.saturating_mul(4).max(1024);
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(hard)
        .max_frame_size(hard)
        .on_upgrade(move |socket| {
            let tracker = app.tracker.clone();
            // The count goes down when the wire is dropped, with the connection. (Not in an
            // async block around `serve`: that block would hold serve's arguments beside its
            // future, doubling every connection's task.)
            let wire = WsWire {
                socket,
                _open: Open::new(open),
            };
            tracker.track_future(conn::serve(app, wire, dialect, peer))
        })
}

/// A WebSocket connection as the connection loop drives it.
pub struct WsWire {
    socket: WebSocket,
    _open: Open,
}

/// One open connection in its dialect's `natter_connections` gauge, for as long as it lives.
struct Open(metrics::Gauge);

impl Open {
    fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What a failed read means for the connection: a frame too large, invalid UTF-8 (1007) or a
/// protocol violation (1002) are answered with a close; anything else (the socket broke) just
/// ends it.
fn read_error(e: &axum::Error) -> Inbound {
    use tokio_tungstenite::tungstenite::Error as E;
    let inner = std::error::Error::source(e).and_then(|s| s.downcast_ref::<E>());
    match inner {
        Some(E::Capacity(_)) => Inbound::Oversize,
        Some(E::Utf8(_)) => Inbound::Broken(Close::INVALID_UTF8),
        Some(E::Protocol(p)) if !is_reset(p) => Inbound::Broken(Close::PROTOCOL),
        _ => Inbound::Closed,
    }
}

/// A peer that went away without the closing handshake: nothing to tell it.
fn is_reset(p: &tokio_tungstenite::tungstenite::error::ProtocolError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    matches!(p, P::ResetWithoutClosingHandshake | P::ReceivedAfterClosing)
}

impl Wire for WsWire {
    async fn recv(&mut self) -> Inbound {
        match self.socket.recv().await {
            Some(Ok(Message::Text(text))) => Inbound::Frame(Bytes::from(text)),
            Some(Ok(Message::Binary(_))) => Inbound::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Alive,
            Some(Ok(Message::Close(_))) | None => Inbound::Closed,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket read failed");
                read_error(&e)
            }
        }
    }

    async fn send(&mut self, frames: &mut Vec<Bytes>) -> io::Result<()> {
        for frame in frames.drain(..) {
            let text = Utf8Bytes::try_from(frame).map_err(io::Error::other)?;
            self.socket
                .feed(Message::Text(text))
                .await
                .map_err(io::Error::other)?;
        }
        self.socket.flush().await.map_err(io::Error::other)
    }

    async fn keepalive(&mut self) -> io::Result<()> {
        self.socket
            .send(Message::Ping(Bytes::new()))
            .await
            .map_err(io::Error::other)
    }

    async fn close(&mut self, why: Close) {
        let frame = CloseFrame {
            code: why.code,
            reason: Utf8Bytes::from_static(why.reason),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}
