//! A raw TCP stream of `\n`-terminated lines as a [`Wire`], and the accept loop that serves a
//! line dialect on its own listener.
//!
//! A line is a frame (without its `\n`, and without a `\r` before it). Lines are bounded in
//! size and time: a peer that sends more than the limit without a newline is closed, with
//! memory bounded by the limit, and so is one that does not finish a line within the line
//! deadline of its first byte. Frames written are each followed by `\n`.

use super::Capped;
use crate::app::App;
use crate::conn::{self, Close, Inbound, Wire};
use crate::dialect::Dialect;
use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes read from the socket at a time (the buffer grows only for longer lines).
const READ_CHUNK: usize = 1024;
/// Capacity of the write buffer kept after a write; a larger one is let go.
const OUT_KEEP: usize = 128 * 1024;

/// Serve `dialect` on every connection `listener` accepts, until the server shuts down; each
/// connection's task is tracked, so shutdown waits for it.
/// `name` labels its connections in the metrics.
pub async fn serve<D: Dialect>(
    app: Arc<App>,
    mut listener: Capped,
    name: &'static str,
    dialect: D,
    max_line: usize,
) {
    let line_timeout = app.config.line_timeout;
    let dialect = Arc::new(dialect);
    let open = app.metrics.connections(name);
    loop {
        let accepted = tokio::select! {
            () = app.shutdown.cancelled() => return,
            a = listener.next() => a,
        };
        let (tcp, addr, slot) = accepted;
        let (read, write) = tcp.into_split();
        let wire = LineWire::new(read, write, max_line).line_timeout(line_timeout);
        let (app, dialect, open) = (app.clone(), dialect.clone(), open.clone());
        app.tracker.clone().spawn(async move {
            open.increment(1.0);
            conn::serve(app, wire, dialect, addr).await;
            open.decrement(1.0);
            drop(slot);
        });
    }
}

/// [`serve`] on a TLS listener: each connection's handshake is done (off the accept loop)
/// before its lines are read.
pub async fn serve_tls<D: Dialect>(
    app: Arc<App>,
    mut listener: super::tls::TlsListener,
    name: &'static str,
    dialect: D,
    max_line: usize,
) {
    use axum::serve::Listener;
    let line_timeout = app.config.line_timeout;
    let dialect = Arc::new(dialect);
    let open = app.metrics.connections(name);
    loop {
        let (tls, addr) = tokio::select! {
            () = app.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (read, write) = tokio::io::split(tls);
        let wire = LineWire::new(read, write, max_line).line_timeout(line_timeout);
        let (app, dialect, open) = (app.clone(), dialect.clone(), open.clone());
        app.tracker.clone().spawn(async move {
            open.increment(1.0);
            conn::serve(app, wire, dialect, addr).await;
            open.decrement(1.0);
        });
    }
}

/// Lines in, lines out.
pub struct LineWire<R, W> {
    read: R,
    write: W,
    /// Bytes read and not yet handed out as lines.
    buf: BytesMut,
    /// How much of `buf` is known to hold no newline.
    searched: usize,
    max_line: usize,
    /// When the line in `buf` must be finished (`None` while `buf` is empty).
    deadline: Option<Instant>,
    line_timeout: Duration,
    out: Vec<u8>,
}

/// A line's deadline unless told otherwise.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

impl<R, W> LineWire<R, W> {
    /// Lines of at most `max_line` bytes (not counting the newline).
    pub fn new(read: R, write: W, max_line: usize) -> Self {
        Self {
            read,
            write,
            buf: BytesMut::new(),
            searched: 0,
            max_line: max_line.max(1),
            deadline: None,
            line_timeout: LINE_TIMEOUT,
            out: Vec::new(),
        }
    }

    /// A line must be finished within `timeout` of its first byte.
    #[must_use]
    pub fn line_timeout(mut self, timeout: Duration) -> Self {
        self.line_timeout = timeout;
        self
    }

    /// The next whole line in the buffer, if there is one.
    fn line(&mut self) -> Option<Bytes> {
        let at = self.buf[self.searched..].iter().position(|b| *b == b'\n')?;
        let mut line = self.buf.split_to(self.searched + at + 1);
        self.searched = 0;
        // What follows the line (if anything) is the start of the next one.
        self.deadline = (!self.buf.is_empty()).then(|| Instant::now() + self.line_timeout);
        line.truncate(line.len() - 1);
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        Some(line.freeze())
    }
}

impl<R, W> Wire for LineWire<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    async fn recv(&mut self) -> Inbound {
        loop {
            if let Some(line) = self.line() {
                return Inbound::Frame(line);
            }
            self.searched = self.buf.len();
            // The limit counts a line's bytes; a `\r` may still come before its newline.
            if self.buf.len() > self.max_line + 1 {
                return Inbound::Oversize;
            }
            self.buf.reserve(READ_CHUNK);
            // Cancel-safe: bytes read are in `buf`, whatever happens to this future.
            let read = match self.deadline {
                None => self.read.read_buf(&mut self.buf).await,
                Some(at) => {
                    match tokio::time::timeout_at(at, self.read.read_buf(&mut self.buf)).await {
                        Ok(read) => read,
                        Err(_) => return Inbound::Broken(Close::TOO_SLOW),
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return Inbound::Closed,
                Ok(_) => {}
            }
            if self.deadline.is_none() && !self.buf.is_empty() {
                self.deadline = Some(Instant::now() + self.line_timeout);
            }
        }
    }

    async fn send(&mut self, frames: &mut Vec<Bytes>) -> io::Result<()> {
        self.out.clear();
        for frame in frames.drain(..) {
            self.out.extend_from_slice(&frame);
            self.out.push(b'\n');
        }
        self.write.write_all(&self.out).await?;
        // A large write (a file line) leaves no large buffer behind on an idle connection.
        if self.out.capacity() > OUT_KEEP {
            self.out = Vec::new();
        }
        self.write.flush().await
    }

    async fn keepalive(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn close(&mut self, _why: Close) {
        let _ = self.write.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn lines_are_split_bounded_and_written_back() {
        let (client, server) = duplex(64);
        let (server_read, server_write) = tokio::io::split(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let mut wire = LineWire::new(server_read, server_write, 8);
        client_write
            .write_all(b"one\ntwo\r\nthr")
            .await
            .expect("write");
        let frame = |i: Inbound| match i {
            Inbound::Frame(b) => b,
            other => panic!("expected a line, got {other:?}"),
        };
        assert_eq!(frame(wire.recv().await), Bytes::from_static(b"one"));
        assert_eq!(frame(wire.recv().await), Bytes::from_static(b"two"));
        client_write.write_all(b"ee\n\n").await.expect("write");
        assert_eq!(frame(wire.recv().await), Bytes::from_static(b"three"));
        assert_eq!(frame(wire.recv().await), Bytes::new());
        // Exactly the limit is a line; one byte more without a newline closes.
        client_write.write_all(b"12345678\n").await.expect("write");
        assert_eq!(frame(wire.recv().await), Bytes::from_static(b"12345678"));
        client_write.write_all(b"123456789x").await.expect("write");
        assert!(matches!(wire.recv().await, Inbound::Oversize));

        let mut frames = vec![Bytes::from_static(b"a|b"), Bytes::from_static(b"c")];
        wire.send(&mut frames).await.expect("send");
        assert!(frames.is_empty());
        let mut got = [0u8; 6];
        client_read.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"a|b\nc\n");
    }

    #[tokio::test]
    async fn a_closed_peer_ends_the_wire_and_a_partial_line_is_dropped() {
        let (client, server) = duplex(64);
        let (server_read, server_write) = tokio::io::split(server);
        let mut wire = LineWire::new(server_read, server_write, 64);
        let mut client = client;
        client.write_all(b"whole\npart").await.expect("write");
        drop(client);
        assert!(matches!(wire.recv().await, Inbound::Frame(b) if b == "whole"));
        assert!(matches!(wire.recv().await, Inbound::Closed));
    }

    /// A line begun must be finished within the line deadline, however steadily its bytes
    /// come; a peer that sends nothing at all is left to the login and idle deadlines.
    #[tokio::test]
    async fn a_line_dribbled_past_its_deadline_closes_the_wire() {
        let (client, server) = duplex(1024);
        let (server_read, server_write) = tokio::io::split(server);
        let (_client_read, mut client_write) = tokio::io::split(client);
        let mut wire =
            LineWire::new(server_read, server_write, 512).line_timeout(Duration::from_secs(2));
        // Silence is not a slow line.
        assert!(
            tokio::time::timeout(Duration::from_secs(3), wire.recv())
                .await
                .is_err()
        );
        // A line finished within its deadline is a line.
        let in_time = async {
            client_write.write_all(b"on").await.expect("write");
            tokio::time::sleep(Duration::from_millis(200)).await;
            client_write.write_all(b"e\ntw").await.expect("write");
        };
        let (got, ()) = tokio::join!(wire.recv(), in_time);
        assert!(matches!(got, Inbound::Frame(b) if b == "one"));
        // The next line began with the last read: a byte every 100 ms does not keep it open.
        let started = std::time::Instant::now();
        let dribble = async {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if client_write.write_all(b"o").await.is_err() {
                    break;
                }
            }
        };
        let got = tokio::select! {
            got = wire.recv() => got,
            () = dribble => panic!("a dribbled line was read for 10 s"),
        };
        assert!(
            matches!(got, Inbound::Broken(why) if why == Close::TOO_SLOW),
            "{got:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(9));
    }

    /// A line dialect of the smallest kind: each line is answered with itself, a line
    /// starting with `private` needs a login, `bad` cannot be decoded.
    struct Echo {
        slot: crate::hub::Slot,
    }

    impl Dialect for Echo {
        type Request = Bytes;
        type Ack = ();
        type State = ();

        fn slot(&self) -> crate::hub::Slot {
            self.slot
        }

        fn decode(&self, frame: &[u8]) -> Result<crate::dialect::Decoded<Bytes>, Bytes> {
            if frame == b"bad" {
                return Err(Bytes::from_static(b"error|bad"));
            }
            Ok(crate::dialect::Decoded {
                request: Bytes::copy_from_slice(frame),
                needs_login: frame.starts_with(b"private"),
                pipelined: false,
            })
        }

        async fn handle(&self, _conn: &mut conn::Conn<Self>, line: Bytes, out: &mut Vec<Bytes>) {
            out.push(line);
        }

        fn refuse(&self, _line: &Bytes, why: crate::dialect::Refusal) -> Bytes {
            Bytes::from(format!("refused|{why:?}"))
        }

        fn refuse_frame(&self, _frame: Option<&[u8]>, why: crate::dialect::Refusal) -> Bytes {
            Bytes::from(format!("refused|{why:?}"))
        }

        fn message(&self, view: &natter_proto::MessageView<'_>) -> Bytes {
            Bytes::copy_from_slice(view.text.as_bytes())
        }

        fn ack(
            &self,
            (): (),
            _result: Result<&crate::domain::Sent, &crate::domain::DomainError>,
        ) -> Option<Bytes> {
            None
        }

        fn event(
            &self,
            (): &(),
            _me: natter_proto::Ocid,
            _event: crate::dialect::Event<'_>,
        ) -> Option<Bytes> {
            None
        }

        fn farewell(&self, why: Close) -> Option<Bytes> {
            Some(Bytes::from(format!("bye|{}", why.reason)))
        }
    }

    /// A dialect over TCP lines runs on the same connection loop as the WebSocket ones: its
    /// replies, its refusals (undecodable, login gate), the line limit and shutdown.
    #[tokio::test]
    async fn a_line_dialect_is_served_on_its_own_listener() {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let config = crate::Config {
            data_dir: dir.path().to_path_buf(),
            ..crate::Config::default()
        };
        let app = App::build(config, shutdown.clone()).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let capped = Capped::new(listener, 10, "lines", b"");
        let echo = Echo {
            slot: app.hub.slot(),
        };
        let served = tokio::spawn(serve(app.clone(), capped, "echo", echo, 32));

        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (read, mut write) = tcp.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut next = async || {
            tokio::time::timeout(std::time::Duration::from_secs(5), lines.next_line())
                .await
                .expect("a line in time")
                .expect("read")
        };
        write
            .write_all(b"hello\nbad\nprivate stuff\n")
            .await
            .expect("write");
        assert_eq!(next().await.as_deref(), Some("hello"));
        assert_eq!(next().await.as_deref(), Some("error|bad"));
        assert_eq!(next().await.as_deref(), Some("refused|NotLoggedIn"));
        write.write_all(&[b'x'; 40]).await.expect("write");
        assert_eq!(next().await.as_deref(), Some("bye|frame too large"));
        assert_eq!(next().await, None, "closed after an over-long line");

        // At shutdown an idle connection is told and closed, and the listener stops.
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (read, mut write) = tcp.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"ping\n").await.expect("write");
        assert_eq!(
            lines.next_line().await.expect("read").as_deref(),
            Some("ping")
        );
        shutdown.cancel();
        assert_eq!(
            lines.next_line().await.expect("read").as_deref(),
            Some("bye|server shutting down")
        );
        tokio::time::timeout(std::time::Duration::from_secs(5), served)
            .await
            .expect("the listener stops")
            .expect("task");
        app.tracker.close();
        app.tracker.wait().await;
        app.domain.close().await;
    }
}
