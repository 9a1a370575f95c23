//! The WebSocket connection loop: read frames, hand them to the dialect, drain the outbox,
//! ping, and write everything through one socket owner (this task).
//!
//! A slow reader only slows its own loop: its outbox fills, the hub marks it lagging, and it
//! catches up from the store once it drains.

use crate::app::App;
use crate::dialect;
use crate::domain::Dialect;
use crate::hub::Push;
use crate::session::Session;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use natter_proto::{ErrorCode, WireError};
use std::sync::Arc;
use std::time::Instant;

/// Read buffer per connection, allocated for its whole life: small, because memory per idle
/// connection matters more than a few extra reads for large frames (1 KiB here: ~6.7 KB of
/// server memory per idle logged-in connection; 4 KiB: ~9.8 KB).
const READ_BUFFER: usize = 1024;
/// Bytes gathered before a write to the socket; the buffer grows only while frames are being
/// written, so it costs an idle connection nothing.
const WRITE_BUFFER: usize = 4 * 1024;
/// Outbox items written per turn before the loop looks at the socket again.
const DRAIN_MAX: usize = 256;

pub fn upgrade(app: Arc<App>, ws: WebSocketUpgrade, dialect: Dialect) -> Response {
    let hard = app.config.max_frame_bytes.saturating_mul(4).max(1024);
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(hard)
        .max_frame_size(hard)
        .on_upgrade(move |socket| {
            let tracker = app.tracker.clone();
            tracker.track_future(connection(app, socket, dialect))
        })
}

async fn connection(app: Arc<App>, mut socket: WebSocket, dialect: Dialect) {
    let (conn, mut outbox) = app.hub.connection(dialect, app.config.outbox_frames);
    let mut session = Session::new(app.clone(), dialect, conn);
    let mut frames: Vec<Utf8Bytes> = Vec::new();
    let mut ticker = tokio::time::interval(app.config.ping_interval.min(app.config.mark_interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the client was last heard from, updated on the ticker from `heard`: reading the
    // clock for every frame showed in the profile.
    let mut last_seen = Instant::now();
    let mut heard = false;
    let mut last_ping = Instant::now();
    // Made once, not per turn of the loop (each would register with the token anew).
    let cancelled = app.shutdown.cancelled();
    tokio::pin!(cancelled);
    let close = loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break Some((1001, "server shutting down")),
            stored = session.next_stored(), if session.sends_in_flight() > 0 => {
                session.complete_send(stored, &mut frames).await;
                session.absorb_sends(&mut frames).await;
            }
            // While too many sends wait for the store, frames wait in the socket.
            incoming = socket.recv(), if session.sends_in_flight() < app.config.max_pending_sends => {
                heard = true;
                match incoming {
                    Some(Ok(Message::Text(_) | Message::Binary(_))) if !session.allow_frame() => {
                        let e = WireError::new(ErrorCode::RateLimited, "too many requests; slow down");
                        frames.push(dialect::frame_error(&session, &e));
                    }
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > app.config.max_frame_bytes {
                            let e = WireError::new(
                                ErrorCode::FrameTooLarge,
                                format!("frames may be at most {} bytes", app.config.max_frame_bytes),
                            );
                            frames.push(dialect::frame_error(&session, &e));
                        } else {
                            dialect::handle(&mut session, &text, &mut frames).await;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = WireError::new(ErrorCode::BinaryFrame, "only text frames are accepted");
                        frames.push(dialect::frame_error(&session, &e));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket read failed");
                        let too_big = e.to_string().contains("too long") || e.to_string().contains("Space limit");
                        break too_big.then_some((1009, "frame too large"));
                    }
                }
            }
            Some(push) = outbox.recv() => {
                let mut push = Some(push);
                let mut n = 0;
                while let Some(item) = push.take() {
                    match item {
                        Push::Deliver(out) => session.deliver(&out, &mut frames).await,
                        // Carried out by the lagging check below.
                        Push::Resync => {}
                        other => frames.extend(dialect::push_frame(&session, &other)),
                    }
                    n += 1;
                    if n < DRAIN_MAX {
                        push = outbox.try_recv().ok();
                    }
                }
                if outbox.is_empty() && session.conn.take_lagging() {
                    session.resync(&mut frames).await;
                }
            }
            () = std::future::ready(()), if session.resync_pending() => {
                session.resync(&mut frames).await;
            }
            _ = ticker.tick() => {
                if std::mem::take(&mut heard) {
                    last_seen = Instant::now();
                } else if last_seen.elapsed() > app.config.idle_timeout {
                    break Some((1001, "idle timeout"));
                }
                session.flush_marks().await;
                if last_ping.elapsed() >= app.config.ping_interval {
                    last_ping = Instant::now();
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                }
            }
        }
        if !frames.is_empty() {
            if write_all(&mut socket, &mut frames).await.is_err() {
                break None;
            }
            session.written();
        }
    };
    if close.is_some() {
        // The socket is still open: ack the sends the store is finishing.
        session.drain_sends(&mut frames).await;
    }
    if !frames.is_empty() && write_all(&mut socket, &mut frames).await.is_ok() {
        session.written();
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = socket.send(Message::Close(Some(frame))).await;
    }
    session.log_out().await;
}

async fn write_all(socket: &mut WebSocket, frames: &mut Vec<Utf8Bytes>) -> Result<(), axum::Error> {
    for frame in frames.drain(..) {
        socket.feed(Message::Text(frame)).await?;
    }
    socket.flush().await
}
