//! One connection loop for every wire and every dialect.
//!
//! A transport adapter (`transport/ws.rs`, `transport/tcp.rs`) turns its socket into a [`Wire`]:
//! frames in, frames out, a keepalive and a close. [`serve`] runs the connection on it with any
//! [`Dialect`]: it reads frames, spends the request budget, enforces the frame size, the login
//! gate and the ordering rule (a request that is not a pipelined send waits for the sends
//! before it), drains the outbox the hub fills, and writes everything through one owner of the
//! socket (this task). The per-connection state, [`Conn`], is split by job:
//!
//! - `sends.rs`: sends queued in the store and acked in request order;
//! - `feed.rs`: the delivery feed (login catch-up, per-chat cursors, gap fills, resync after
//!   lag, delivery marks per device);
//! - `budget.rs`: the request budgets.
//!
//! A slow reader only slows its own loop: its outbox fills, the hub marks it lagging, and it
//! catches up from the store once it drains. This module imports no dialect and no transport.

pub mod budget;
mod feed;
mod sends;

pub use feed::Missed;

use crate::app::App;
use crate::dialect::{Dialect, Event, Refusal};
use crate::domain::{Domain, DomainError, LoginKey, To};
use crate::event::Origin;
use crate::hub::{ConnHandle, Push};
use crate::store::Device;
use budget::Budget;
use bytes::Bytes;
use feed::Feed;
use natter_proto::{ChatId, Index, Ocid};
use sends::Queued;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Outbox items handled per turn before the loop looks at the socket again.
const DRAIN_MAX: usize = 256;
/// Longest the last words of a closing connection (the acks of its sends in flight, its
/// farewell and the close) may take: a peer that does not read cannot hold the task, or
/// shutdown, longer than this.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a wire reads.
#[derive(Debug)]
pub enum Inbound {
    /// One whole frame (a WebSocket text message, a line without its terminator).
    Frame(Bytes),
    /// A frame of a kind the dialects do not read (a WebSocket binary message).
    Binary,
    /// The peer is alive but sent nothing to handle (a WebSocket ping or pong).
    Alive,
    /// A frame over the wire's hard limit: the connection is closed.
    Oversize,
    /// The peer broke the wire's rules (invalid UTF-8 in a WebSocket text frame, a protocol
    /// violation, a line not finished in time): the connection is closed for this reason.
    Broken(Close),
    /// The peer closed the connection, or it broke.
    Closed,
}

/// Why the server closes a connection: a WebSocket close code and reason (a line wire just
/// closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    pub const SHUTDOWN: Self = Self {
        code: 1001,
        reason: "server shutting down",
    };
    pub const IDLE: Self = Self {
        code: 1001,
        reason: "idle timeout",
    };
    pub const TOO_LARGE: Self = Self {
        code: 1009,
        reason: "frame too large",
    };
    /// A WebSocket text frame that is not UTF-8.
    pub const INVALID_UTF8: Self = Self {
        code: 1007,
        reason: "invalid UTF-8",
    };
    /// A frame that breaks the WebSocket protocol.
    pub const PROTOCOL: Self = Self {
        code: 1002,
        reason: "protocol violation",
    };
    /// No login within `--login-timeout-secs` of connecting (or of logging out).
    pub const LOGIN_TIMEOUT: Self = Self {
        code: 1008,
        reason: "login timeout",
    };
    /// A line not finished within `--line-timeout-secs` of its first byte.
    pub const TOO_SLOW: Self = Self {
        code: 1008,
        reason: "request too slow",
    };
    /// The client did not take a part of a write (or a ping) within `--stall-timeout-secs`.
    pub const STALLED: Self = Self {
        code: 1008,
        reason: "client not reading",
    };
    /// The login this connection used ended (revoked, or its password changed).
    pub const LOGGED_OUT: Self = Self {
        code: 4001,
        reason: "login ended",
    };
    /// The account was banned by an operator (or deleted).
    pub const DISABLED: Self = Self {
        code: 4002,
        reason: "account disabled",
    };
}

/// A transport's connection as the loop drives it. Each method is used by one task only; `recv`
/// must be cancel-safe (it is raced against the outbox and timers).
pub trait Wire: Send + 'static {
    /// The next thing read.
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;
    /// Write every frame (emptying `frames`) and flush.
    ///
    /// # Errors
    /// The connection broke; nothing more can be written.
    fn send(&mut self, frames: &mut Vec<Bytes>)
    -> impl Future<Output = std::io::Result<()>> + Send;
    /// Prove the server is alive to an idle peer (a WebSocket ping; nothing on a line wire,
    /// whose dialect has its own heartbeat).
    ///
    /// # Errors
    /// The connection broke.
    fn keepalive(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Close the connection, saying why where the wire can.
    fn close(&mut self, why: Close) -> impl Future<Output = ()> + Send;
}

/// How a connection proves who it is.
pub enum Credentials {
    Password(LoginKey, String),
    /// A session token, and the last index the client holds per chat.
    Token(String, Since),
}

/// What a resuming client says it already holds, per chat.
pub enum Since {
    /// By chat id.
    Chats(Vec<(ChatId, Index)>),
    /// By destination (the chat of a private peer or a group).
    Targets(Vec<(To, Index)>),
}

/// A successful login or resume.
#[derive(Debug)]
pub struct Authenticated {
    pub ocid: Ocid,
    /// The new session token (password logins only).
    pub token: Option<String>,
    /// What the device missed, oldest first (the account's own sends left out).
    pub missed: Vec<Missed>,
}

/// Who a connection is logged in as.
#[derive(Debug)]
struct LoggedIn {
    ocid: Ocid,
    /// The token of the session this connection logged in with (revoked by logout).
    token: String,
    /// That session as a device: delivery marks are kept per device.
    device: Device,
}

/// One connection's state, shared by every dialect; a dialect's request handler gets it as
/// `&mut Conn<Self>`.
pub struct Conn<D: Dialect> {
    app: Arc<App>,
    dialect: Arc<D>,
    handle: Arc<ConnHandle>,
    /// The client's address, for the log and the limits on guessing.
    peer: SocketAddr,
    /// Refusing frames over the rate limit (logged once per run of refusals).
    refusing: bool,
    login: Option<LoggedIn>,
    budget: Budget,
    /// Sends queued in the store and not yet acked, oldest first.
    sends: VecDeque<Queued<D::Ack>>,
    feed: Feed,
    /// The dialect's own state for this connection.
    state: D::State,
}

impl<D: Dialect> Conn<D> {
    fn new(app: Arc<App>, dialect: Arc<D>, handle: Arc<ConnHandle>, peer: SocketAddr) -> Self {
        let budget = Budget::new(app.config.rate_per_sec, app.config.rate_burst);
        let feed = Feed::new(dialect.marks());
        Self {
            app,
            dialect,
            handle,
            peer,
            refusing: false,
            login: None,
            budget,
            sends: VecDeque::new(),
            feed,
            state: D::State::default(),
        }
    }

    /// The dialect's state for this connection.
    pub fn state(&self) -> &D::State {
        &self.state
    }

    pub fn state_mut(&mut self) -> &mut D::State {
        &mut self.state
    }

    /// The client's address (its attempts at passwords, tokens and answers are limited per
    /// address as well as per account).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The logged-in account, if any.
    pub fn me(&self) -> Option<Ocid> {
        self.login.as_ref().map(|l| l.ocid)
    }

    pub fn domain(&self) -> &Domain {
        &self.app.domain
    }

    /// Whether `ocid` has a connection anywhere in the cluster.
    /// The device (login session) this connection is logged in as.
    pub fn device(&self) -> Option<&Device> {
        self.login.as_ref().map(|l| &l.device)
    }

    pub fn is_online(&self, ocid: Ocid) -> bool {
        self.app.hub.is_online(ocid)
    }

    /// This connection as the origin of what it sends (it is not sent its own messages and
    /// notices back).
    pub fn origin(&self) -> Origin {
        self.handle.origin()
    }

    /// Check `credentials` and log this connection in (switching account if it was logged in),
    /// then collect what the device missed. A failed check leaves the connection as it was.
    ///
    /// # Errors
    /// `BadCredentials` or `InvalidToken`; `Internal` (the connection is then logged out).
    pub async fn authenticate(
        &mut self,
        credentials: Credentials,
    ) -> Result<Authenticated, DomainError> {
        // Boxed: a login's future (password check, catch-up) is the largest a connection ever
        // awaits, and logins are rare; inline, every idle connection's task would carry its
        // size for its whole life.
        Box::pin(self.authenticate_now(credentials)).await
    }

    async fn authenticate_now(
        &mut self,
        credentials: Credentials,
    ) -> Result<Authenticated, DomainError> {
        let m = &self.app.metrics;
        let (login, fresh, since) = match credentials {
            Credentials::Password(key, password) => {
                let account = crate::domain::key_for_log(&key);
                let login = self
                    .app
                    .domain
                    .login_from(key, &password, Some(self.peer.ip()))
                    .await;
                match &login {
                    Ok(_) => m.logins_ok.increment(1),
                    Err(DomainError::Internal) => m.logins_failed.increment(1),
                    Err(e) => {
                        m.logins_rejected.increment(1);
                        tracing::info!(client = %self.peer, %account, reason = %e, "login failed");
                    }
                }
                (login?, true, Since::Chats(Vec::new()))
            }
            Credentials::Token(token, since) => {
                let login = self
                    .app
                    .domain
                    .resume_from(&token, Some(self.peer.ip()))
                    .await;
                match &login {
                    Ok(_) => m.resumes_ok.increment(1),
                    Err(DomainError::Internal) => m.logins_failed.increment(1),
                    Err(e) => {
                        m.resumes_rejected.increment(1);
                        tracing::info!(client = %self.peer, reason = %e, "resume failed");
                    }
                }
                (login?, false, since)
            }
        };
        let ocid = login.account.ocid;
        let since = match since {
            Since::Chats(c) => c,
            Since::Targets(t) => self.app.domain.chat_ids(ocid, t).await,
        };
        let token = fresh.then(|| login.token.clone());
        let missed = self.log_in(login, &since).await?;
        Ok(Authenticated {
            ocid,
            token,
            missed,
        })
    }

    /// Revoke the connection's session token and log it out.
    ///
    /// # Errors
    /// `Internal` when the revocation cannot be stored (the connection stays logged in).
    pub async fn logout(&mut self) -> Result<(), DomainError> {
        // Marks first: the revocation then removes the device's marks for good.
        self.flush_marks().await;
        if let Some(login) = &self.login {
            self.app.domain.logout(&login.token).await?;
        }
        self.log_out().await;
        Ok(())
    }

    /// Spend one request from the budget.
    fn allow_frame(&mut self) -> bool {
        let allowed = self.budget.allow();
        if allowed {
            self.refusing = false;
        }
        allowed
    }

    /// A frame was refused for the budget: counted, and logged once per run of refusals
    /// (a client over its rate sends many).
    fn rate_limited(&mut self) {
        self.app.metrics.rate_limited.increment(1);
        if !self.refusing {
            self.refusing = true;
            tracing::info!(
                ocid = ?self.me().map(|o| o.0),
                client = %self.peer,
                "requests refused: over the rate limit (--rate-per-sec)"
            );
        }
    }

    /// Check the login again (the account's standing changed): `Some` close reason when it no
    /// longer stands. A store failure keeps the connection (the next login or resume checks).
    async fn recheck(&mut self) -> Option<Close> {
        let login = self.login.as_ref()?;
        match self.app.domain.standing(&login.token).await {
            Ok(()) | Err(DomainError::Internal) => None,
            Err(DomainError::AccountDisabled) => {
                tracing::info!(ocid = %login.ocid, client = %self.peer, "connection closed: account disabled");
                self.app.metrics.closed_logins.increment(1);
                Some(Close::DISABLED)
            }
            Err(_) => {
                tracing::info!(ocid = %login.ocid, client = %self.peer, "connection closed: login revoked");
                self.app.metrics.closed_logins.increment(1);
                Some(Close::LOGGED_OUT)
            }
        }
    }

    /// One frame of a request: decode it, keep request order, apply the login gate, and hand
    /// it to the dialect.
    async fn request(&mut self, dialect: &D, frame: &[u8], out: &mut Vec<Bytes>) {
        let decoded = match dialect.decode(frame) {
            Ok(d) => d,
            Err(reply) => {
                self.drain_sends(out).await;
                out.push(reply);
                return;
            }
        };
        // Anything but a pipelined send first waits for the sends before it: replies stay in
        // request order, and a request sees the sends before it.
        if !decoded.pipelined {
            self.drain_sends(out).await;
        }
        if decoded.needs_login && self.login.is_none() {
            out.push(dialect.refuse(&decoded.request, Refusal::NotLoggedIn));
            return;
        }
        dialect.handle(self, decoded.request, out).await;
    }

    /// A pushed notice or presence change as this connection's frame, if its dialect shows it
    /// and the connection is logged in.
    fn event(&self, push: &Push) -> Option<Bytes> {
        let me = self.me()?;
        let event = match push {
            Push::Notice(signal) => Event::Notice {
                notice: &signal.notice,
                at_ms: signal.at,
            },
            Push::Presence { ocid, online } => Event::Presence {
                ocid: *ocid,
                online: *online,
            },
            Push::Deliver(_) | Push::Resync | Push::Recheck => return None,
        };
        self.dialect.event(&self.state, me, event)
    }
}

pin_project_lite::pin_project! {
    /// `fut`'s output, or `None` when it is not ready within `limit`. The timer is set only
    /// when a poll finds `fut` pending, so a write the socket takes at once reads no clock;
    /// and it is boxed: a timer is large, and held inline it would enlarge every connection's
    /// task (idle ones included), while a socket that does not take a write at once is rare.
    struct Within<F> {
        #[pin]
        fut: F,
        limit: Duration,
        timer: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Some(out));
        }
        let limit = *this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        timer.as_mut().poll(cx).map(|()| None)
    }
}

fn within<F: Future>(limit: Duration, fut: F) -> Within<F> {
    Within {
        fut,
        limit,
        timer: None,
    }
}

/// A write larger than this is handed to the wire in parts of about this many bytes, each of
/// which the client must take within the stall timeout (`write_parts`).
const WRITE_PART: usize = 64 * 1024;

/// Write `frames` in parts of about `WRITE_PART` bytes: `Ok(false)` when the connection broke,
/// `Err(())` when the client took less than a part within `stall`. A slow reader that keeps
/// reading is not closed, however large the write; one that stops is, within `stall`.
async fn write_parts<W: Wire>(
    wire: &mut W,
    frames: &mut Vec<Bytes>,
    stall: Duration,
) -> Result<bool, ()> {
    let mut rest = std::mem::take(frames).into_iter().peekable();
    let mut part = Vec::new();
    while rest.peek().is_some() {
        let mut bytes = 0;
        while let Some(frame) = rest.next_if(|f| part.is_empty() || bytes + f.len() <= WRITE_PART) {
            bytes += frame.len();
            part.push(frame);
        }
        match within(stall, wire.send(&mut part)).await {
            Some(Ok(())) => {}
            Some(Err(_)) => return Ok(false),
            None => return Err(()),
        }
        part.clear();
    }
    Ok(true)
}

/// A connection whose peer took too little of a write within `--stall-timeout-secs`: logged
/// and counted, and closed.
fn stalled<D: Dialect>(app: &App, conn: &Conn<D>) -> Close {
    app.metrics.stalled.increment(1);
    tracing::info!(
        client = %conn.peer,
        ocid = ?conn.me().map(|o| o.0),
        "connection closed: the client stopped reading (stall timeout)"
    );
    Close::STALLED
}

/// Run one connection on `wire` in `dialect` until the peer leaves, the connection idles out or
/// the server shuts down; then answer what is in flight, close, and log out.
pub async fn serve<W: Wire, D: Dialect>(
    app: Arc<App>,
    mut wire: W,
    dialect: Arc<D>,
    peer: SocketAddr,
) {
    let (handle, mut outbox) = app.hub.connection(app.config.outbox_frames);
    tracing::debug!(client = %peer, conn = handle.id, "connection opened");
    let mut conn = Conn::new(app.clone(), dialect.clone(), handle, peer);
    let mut frames: Vec<Bytes> = Vec::new();
    let config = &app.config;
    let mut ticker = tokio::time::interval(config.ping_interval.min(config.mark_interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the client was last heard from, updated on the ticker from `heard`: reading the
    // clock for every frame showed in the profile.
    let mut last_seen = Instant::now();
    let mut heard = false;
    let mut last_ping = Instant::now();
    // Since when the connection has not been logged in (from its start, or a logout).
    let mut anonymous_since = Some(Instant::now());
    // Made once, not per turn of the loop (each would register with the token anew).
    let cancelled = app.shutdown.cancelled();
    tokio::pin!(cancelled);
    let close = loop {
        tokio::select! {
            biased;
            () = &mut cancelled => break Some(Close::SHUTDOWN),
            stored = conn.next_stored(), if conn.sends_in_flight() > 0 => {
                conn.complete_send(stored, &mut frames).await;
                conn.absorb_sends(&mut frames).await;
            }
            // While too many sends wait for the store, frames wait in the socket.
            inbound = wire.recv(), if conn.sends_in_flight() < config.max_pending_sends => {
                heard = true;
                match inbound {
                    Inbound::Frame(frame) if !conn.allow_frame() => {
                        conn.rate_limited();
                        frames.push(dialect.refuse_frame(Some(&frame), Refusal::RateLimited));
                    }
                    Inbound::Binary if !conn.allow_frame() => {
                        conn.rate_limited();
                        frames.push(dialect.refuse_frame(None, Refusal::RateLimited));
                    }
                    Inbound::Frame(frame) if frame.len() > config.max_frame_bytes => {
                        let max = config.max_frame_bytes;
                        let why = Refusal::FrameTooLarge { max };
                        frames.push(dialect.refuse_frame(Some(&frame), why));
                    }
                    Inbound::Frame(frame) => conn.request(&dialect, &frame, &mut frames).await,
                    Inbound::Binary => {
                        frames.push(dialect.refuse_frame(None, Refusal::BinaryFrame));
                    }
                    Inbound::Alive => {}
                    Inbound::Oversize => break Some(Close::TOO_LARGE),
                    Inbound::Broken(why) => break Some(why),
                    Inbound::Closed => break None,
                }
            }
            Some(push) = outbox.recv() => {
                let mut push = Some(push);
                let mut n = 0;
                // Bytes taken from the outbox: they leave its budget, and count again (as
                // frames) while they are written.
                let mut taken = 0;
                while let Some(item) = push.take() {
                    match &item {
                        Push::Deliver(out) => {
                            taken += out.size;
                            conn.deliver(out, &mut frames).await;
                        }
                        // Carried out by the lagging and recheck checks below.
                        Push::Resync | Push::Recheck => {}
                        other => frames.extend(conn.event(other)),
                    }
                    n += 1;
                    if n < DRAIN_MAX {
                        push = outbox.try_recv().ok();
                    }
                }
                if taken > 0 {
                    conn.handle.taken(taken);
                    app.hub.buffer(-(taken as i64));
                }
                // Boxed, as logins are: rare, and its future (a store read) would otherwise be
                // carried by every idle connection's task.
                if conn.handle.take_recheck()
                    && let Some(why) = Box::pin(conn.recheck()).await
                {
                    break Some(why);
                }
                // Boxed, as the recheck is: rare (after lag), and its future (store reads)
                // would otherwise be carried by every idle connection's task.
                if outbox.is_empty() && conn.handle.take_lagging() {
                    Box::pin(conn.resync(&mut frames)).await;
                }
            }
            // While the node buffers all it may, the ticker brings the loop back to look.
            () = std::future::ready(()), if conn.resync_pending() && app.hub.has_room() => {
                Box::pin(conn.resync(&mut frames)).await;
            }
            _ = ticker.tick() => {
                if std::mem::take(&mut heard) {
                    last_seen = Instant::now();
                } else if last_seen.elapsed() > config.idle_timeout {
                    break Some(Close::IDLE);
                }
                match (conn.me(), anonymous_since) {
                    (Some(_), _) => anonymous_since = None,
                    (None, None) => anonymous_since = Some(Instant::now()),
                    (None, Some(since)) if since.elapsed() > config.login_timeout => {
                        break Some(Close::LOGIN_TIMEOUT);
                    }
                    (None, Some(_)) => {}
                }
                conn.flush_marks().await;
                if last_ping.elapsed() >= config.ping_interval {
                    last_ping = Instant::now();
                    // A peer that does not read cannot hold the connection past shutdown, or
                    // past the stall timeout.
                    let alive = tokio::select! {
                        biased;
                        r = within(config.stall_timeout, wire.keepalive()) => match r {
                            Some(r) => r.is_ok(),
                            None => break Some(stalled(&app, &conn)),
                        },
                        () = &mut cancelled => false,
                    };
                    if !alive {
                        break None;
                    }
                }
            }
        }
        if !frames.is_empty() {
            // Counted against the node's budget while the socket takes them (once per write,
            // not per frame).
            let total: usize = frames.iter().map(Bytes::len).sum();
            let bytes = i64::try_from(total).unwrap_or(i64::MAX);
            app.hub.buffer(bytes);
            // `Ok(false)`: the connection broke; `Err(())`: the client stalled.
            let stall = config.stall_timeout;
            let sent = if total <= WRITE_PART {
                tokio::select! {
                    biased;
                    r = within(stall, wire.send(&mut frames)) => r.map(|r| r.is_ok()).ok_or(()),
                    () = &mut cancelled => Ok(false),
                }
            } else {
                // Boxed, as the timer is: a write of many parts is rare.
                tokio::select! {
                    biased;
                    r = Box::pin(write_parts(&mut wire, &mut frames, stall)) => r,
                    () = &mut cancelled => Ok(false),
                }
            };
            app.hub.buffer(-bytes);
            match sent {
                Ok(true) => conn.written(),
                Ok(false) => break None,
                // What was not written stays unmarked: the device reads it by index later.
                Err(()) => break Some(stalled(&app, &conn)),
            }
        }
    };
    // Deliveries still queued leave the budgets with the outbox.
    outbox.close();
    let mut left = 0;
    while let Ok(push) = outbox.try_recv() {
        if let Push::Deliver(out) = push {
            left += out.size;
        }
    }
    if left > 0 {
        conn.handle.taken(left);
        app.hub.buffer(-(left as i64));
    }
    // Bounded: a peer that does not read, or a store that does not answer, cannot keep the
    // connection (and shutdown) waiting.
    // A client that reads nothing would not take last words either.
    let ended = close;
    if close == Some(Close::STALLED) {
        frames.clear();
    }
    let close = close.filter(|c| *c != Close::STALLED);
    let last_words = async {
        if let Some(why) = close {
            // The socket is still open: ack the sends the store is finishing, and say goodbye.
            conn.drain_sends(&mut frames).await;
            frames.extend(dialect.farewell(why));
        }
        if !frames.is_empty() && wire.send(&mut frames).await.is_ok() {
            conn.written();
        }
        if let Some(why) = close {
            wire.close(why).await;
        }
    };
    if tokio::time::timeout(FAREWELL_TIMEOUT, last_words)
        .await
        .is_err()
    {
        tracing::debug!(client = %peer, "connection dropped: its last words were not taken in time");
    }
    tracing::debug!(
        client = %peer,
        conn = conn.handle.id,
        ocid = ?conn.me().map(|o| o.0),
        reason = ended.map_or("by the client", |c| c.reason),
        "connection closed"
    );
    conn.log_out().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wire that takes whole parts at once, until it stops reading after `stop_after`.
    struct Taker {
        parts: Vec<usize>,
        stop_after: usize,
    }

    impl Wire for Taker {
        async fn recv(&mut self) -> Inbound {
            std::future::pending().await
        }

        async fn send(&mut self, frames: &mut Vec<Bytes>) -> std::io::Result<()> {
            if self.parts.len() == self.stop_after {
                std::future::pending::<()>().await;
            }
            self.parts.push(frames.drain(..).map(|f| f.len()).sum());
            Ok(())
        }

        async fn keepalive(&mut self) -> std::io::Result<()> {
            Ok(())
        }

        async fn close(&mut self, _why: Close) {}
    }

    #[tokio::test]
    async fn a_large_write_goes_out_in_parts_each_within_the_stall_timeout() {
        let frames =
            || -> Vec<Bytes> { (0..10).map(|_| Bytes::from(vec![b'x'; 20_000])).collect() };
        let stall = Duration::from_millis(50);
        let mut wire = Taker {
            parts: Vec::new(),
            stop_after: usize::MAX,
        };
        let mut all = frames();
        assert_eq!(write_parts(&mut wire, &mut all, stall).await, Ok(true));
        assert_eq!(wire.parts, [60_000, 60_000, 60_000, 20_000]);
        // A small write is one part.
        let mut one = vec![Bytes::from_static(b"hi")];
        assert!(matches!(
            within(stall, wire.send(&mut one)).await,
            Some(Ok(()))
        ));
        assert_eq!(wire.parts.last(), Some(&2));
        // A client that stops reading is given up on within the timeout of one part.
        let mut wire = Taker {
            parts: Vec::new(),
            stop_after: 2,
        };
        let mut all = frames();
        assert_eq!(write_parts(&mut wire, &mut all, stall).await, Err(()));
        assert_eq!(wire.parts.len(), 2);
        // A frame larger than a part goes alone.
        let mut wire = Taker {
            parts: Vec::new(),
            stop_after: usize::MAX,
        };
        let mut big = vec![Bytes::from(vec![b'y'; 100_000]), Bytes::from_static(b"z")];
        assert_eq!(write_parts(&mut wire, &mut big, stall).await, Ok(true));
        assert_eq!(wire.parts, [100_000, 1]);
    }
}
