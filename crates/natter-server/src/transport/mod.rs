//! Transports: the listeners (a connection cap per node and per client address, and accept
//! back-off on each), the HTTP server and router that mount every HTTP and WebSocket dialect,
//! and the adapters that make a socket a [`crate::conn::Wire`]: `ws.rs` for WebSocket, `tcp.rs`
//! for a stream of lines.

pub mod files;
pub mod http;
pub mod tcp;
pub mod tls;
pub mod web;
pub mod ws;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The first pause after an accept error that is not the peer's (such as running out of file
/// descriptors); each further error in a row doubles it, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// At most one "connection refused at the cap" log line per this period.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(10);

/// A listener that holds at most `max` connections at once, and at most `per_address` from one
/// client address: a connection beyond either cap is accepted and closed at once (after
/// `refusal`, a few bytes written if the socket takes them without waiting), so that clients
/// learn it now rather than after a timeout. Accept errors that are not about one connection
/// (no file descriptors left) pause accepting with a back-off instead of spinning.
pub struct Capped {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max: usize,
    per_address: usize,
    /// Addresses that stand for many clients (a reverse proxy): not capped per address.
    shared: Vec<Network>,
    addresses: Counts,
    name: &'static str,
    refusal: &'static [u8],
    backoff: Duration,
    refused: u64,
    refusal_logged: Option<Instant>,
}

/// The connection slot an accepted connection holds, under the node's cap and its address's,
/// until it is dropped.
pub struct Slot {
    _node: OwnedSemaphorePermit,
    address: Option<AddressHold>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(AddressHold { key, counts }) = self.address.take() {
            let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = counts.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

/// The answer to an HTTP connection over a cap.
pub const HTTP_REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

impl Capped {
    /// `listener`, holding at most `max` connections (at least one); `name` is for logs.
    pub fn new(
        listener: TcpListener,
        max: usize,
        name: &'static str,
        refusal: &'static [u8],
    ) -> Self {
        let max = max.max(1);
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            max,
            per_address: 0,
            shared: Vec::new(),
            addresses: Arc::default(),
            name,
            refusal,
            backoff: Duration::ZERO,
            refused: 0,
            refusal_logged: None,
        }
    }

    /// At most `n` connections at once from one client address (an IPv4 address or an IPv6
    /// /64); 0: no cap but the listener's.
    #[must_use]
    pub fn per_address(mut self, n: usize) -> Self {
        self.per_address = n;
        self
    }

    /// Connections from these networks (a reverse proxy, a load generator) are held to the
    /// listener's cap only.
    #[must_use]
    pub fn shared(mut self, networks: Vec<Network>) -> Self {
        self.shared = networks;
        self
    }

    /// The next connection within the caps, with `TCP_NODELAY` set, and the slot it holds
    /// until it is dropped.
    pub async fn next(&mut self) -> (TcpStream, SocketAddr, Slot) {
        loop {
            match self.listener.accept().await {
                Ok((tcp, addr)) => {
                    self.backoff = Duration::ZERO;
                    let Ok(node) = self.slots.clone().try_acquire_owned() else {
                        self.refuse(&tcp, addr, "--max-connections");
                        continue;
                    };
                    let Some(address) = self.address_slot(addr.ip()) else {
                        self.refuse(&tcp, addr, "--max-connections-per-address");
                        continue;
                    };
                    without_nagle(&tcp);
                    let slot = Slot {
                        _node: node,
                        address,
                    };
                    return (tcp, addr, slot);
                }
                // The peer gave up before it was accepted: nothing to wait for.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    self.backoff = (self.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
                    tracing::error!(
                        listener = self.name,
                        error = %e,
                        pause_ms = self.backoff.as_millis() as u64,
                        "cannot accept connections; pausing"
                    );
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }

    /// A place for one more connection from `ip` under the per-address cap: `Some(None)` when
    /// there is no such cap, `None` when the address is at it.
    fn address_slot(&self, ip: IpAddr) -> Option<Option<AddressHold>> {
        if self.per_address == 0 || Network::any_contains(&self.shared, ip) {
            return Some(None);
        }
        let key = AddressKey::from(ip);
        let mut counts = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= self.per_address {
            return None;
        }
        *n += 1;
        Some(Some(AddressHold {
            key,
            counts: self.addresses.clone(),
        }))
    }

    fn refuse(&mut self, tcp: &TcpStream, addr: SocketAddr, cap: &'static str) {
        // Best effort: whatever the socket buffer takes now; the connection closes when
        // `tcp` is dropped.
        let _ = tcp.try_write(self.refusal);
        self.refused += 1;
        if self
            .refusal_logged
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_PERIOD)
        {
            self.refusal_logged = Some(Instant::now());
            tracing::warn!(
                listener = self.name,
                max = self.max,
                per_address = self.per_address,
                refused = self.refused,
                client = %addr,
                cap,
                "connection refused: at a connection cap"
            );
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Frames are small and each write is flushed on purpose; with Nagle's algorithm on, the kernel
/// held a frame back while an earlier one was unacknowledged, and 1-2 % of the messages of a
/// steady load arrived ~16 ms late.
fn without_nagle(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// An accepted connection holding its slot under the caps until it is dropped.
pub struct CappedStream {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

impl axum::serve::Listener for Capped {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        let (tcp, addr, slot) = self.next().await;
        (CappedStream { tcp, _slot: slot }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Capped::local_addr(self)
    }
}

pub use crate::domain::guard::{AddressKey, Network};

/// Connections held per client address.
type Counts = Arc<Mutex<HashMap<AddressKey, usize>>>;

/// One connection's place under its address's cap.
struct AddressHold {
    key: AddressKey,
    counts: Counts,
}

/// The client's address of an HTTP request (or WebSocket upgrade), as the HTTP server puts it
/// in each request's `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn connections_over_the_cap_are_refused_at_once_and_slots_come_back() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut capped = Capped::new(listener, 2, "test", b"full\n");
        let _a = TcpStream::connect(addr).await.expect("connect");
        let _b = TcpStream::connect(addr).await.expect("connect");
        let (first, _, slot) = capped.next().await;
        assert!(first.nodelay().expect("nodelay"), "TCP_NODELAY is off");
        let (_second, _, _slot2) = capped.next().await;
        // The third is answered and closed while `next` waits for one within the cap.
        let mut c = TcpStream::connect(addr).await.expect("connect");
        let waiting = tokio::spawn(async move {
            let (_, _, slot) = capped.next().await;
            slot
        });
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
            .await
            .expect("the refused connection is closed at once")
            .expect("read");
        assert_eq!(got, b"full\n");
        assert!(
            !waiting.is_finished(),
            "a refused connection is not handed out"
        );
        // A slot freed: the next connection is taken.
        drop(slot);
        let _d = TcpStream::connect(addr).await.expect("connect");
        let _slot = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("accepted once a slot is free")
            .expect("task");
    }

    /// Connections from one address beyond its cap are refused at once; other addresses are
    /// still served, and the address's slots come back as its connections end.
    #[tokio::test]
    async fn one_address_cannot_take_more_than_its_share() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut capped = Capped::new(listener, 100, "test", b"full\n").per_address(2);
        let from = |ip: &str| {
            let ip: IpAddr = ip.parse().expect("ip");
            async move {
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                socket.bind(SocketAddr::new(ip, 0)).expect("bind source");
                socket.connect(addr).await.expect("connect")
            }
        };
        let _a = from("127.0.0.2").await;
        let _b = from("127.0.0.2").await;
        let (_, first, slot) = capped.next().await;
        let (_, _, _slot2) = capped.next().await;
        assert_eq!(first.ip().to_string(), "127.0.0.2");
        let mut c = from("127.0.0.2").await;
        let _d = from("127.0.0.3").await;
        // The third from 127.0.0.2 is refused; the one from 127.0.0.3 is taken.
        let (_, other, _slot3) = tokio::time::timeout(Duration::from_secs(5), capped.next())
            .await
            .expect("another address is served");
        assert_eq!(other.ip().to_string(), "127.0.0.3");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
            .await
            .expect("the refused connection is closed at once")
            .expect("read");
        assert_eq!(got, b"full\n");
        drop(slot);
        let _e = from("127.0.0.2").await;
        let (_, again, _) = tokio::time::timeout(Duration::from_secs(5), capped.next())
            .await
            .expect("a freed slot of the address is taken again");
        assert_eq!(again.ip().to_string(), "127.0.0.2");

        // A shared address is held to the listener's cap only.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr2 = listener.local_addr().expect("address");
        let mut shared = Capped::new(listener, 100, "test", b"full\n")
            .per_address(1)
            .shared(vec!["127.0.0.0/30".parse().expect("network")]);
        let mut held = Vec::new();
        for _ in 0..3 {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::new(IpAddr::from([127, 0, 0, 2]), 0))
                .expect("bind source");
            held.push(socket.connect(addr2).await.expect("connect"));
            held.push(
                tokio::time::timeout(Duration::from_secs(5), shared.next())
                    .await
                    .expect("a shared address is not capped")
                    .0,
            );
        }
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        let key = |s: &str| AddressKey::from(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
    }
}
