//! The delivery feed of one connection: what its device missed at login, the live deliveries
//! the hub offers, gap fills and resyncs from the store, and the delivery marks that record
//! how far its device has got.
//!
//! The invariant: within a chat, a connection receives messages in index order, each at most
//! once, and with no gaps. Live deliveries that skip ahead (published out of order, or dropped
//! because the outbox was full) make the connection read the gap from the store first.
//!
//! Delivery marks are kept per device (per login session): a device that resumes is sent
//! exactly what comes after its own marks, whatever the account's other devices were sent. A
//! brand-new device (a password login) starts where the account's furthest device got. When a
//! message counts as delivered is the dialect's choice ([`Marks`]): once written to the socket,
//! or once the client acknowledges it.

use super::{Conn, LoggedIn};
use crate::dialect::{Dialect, Marks};
use crate::domain::{DomainError, Login};
use crate::event::{ChatInfo, view};
use crate::hub::Outgoing;
use crate::ids::IdMap;
use crate::store::{Device, Message, kind};
use bytes::Bytes;
use natter_proto::view::FileKind;
use natter_proto::{ChatId, Index, Ocid};
use std::collections::HashMap;
use std::sync::Arc;

/// Messages read from the store per query while catching up.
const PAGE: u32 = 1000;
/// Most missed messages pushed at login; the rest follow as live frames (resync).
pub const MAX_CATCH_UP: usize = 10_000;
/// Most messages one gap fill or resync round reads before the socket is written again.
const FILL_BUDGET: u64 = 2_000;

/// A message missed while offline, with its chat for encoding.
pub type Missed = (Message, Arc<ChatInfo>);

/// This connection's position in one chat.
#[derive(Debug, Default)]
struct Cursor {
    /// Highest index written to (or sent from) this connection with nothing missing below.
    last: Index,
    /// Indexes above `last` that this connection sent itself (acked, never delivered back).
    own: Vec<Index>,
}

impl Cursor {
    fn advance(&mut self, index: Index) {
        if index > self.last {
            self.last = index;
        }
        while let Some(pos) = self.own.iter().position(|i| *i == self.last.next()) {
            self.own.swap_remove(pos);
            self.last = self.last.next();
        }
        let last = self.last;
        self.own.retain(|i| *i > last);
    }
}

/// How far a gap fill got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Everything asked for was written.
    Done,
    /// The budget ran out first.
    Budget,
    /// The store failed; retried at the next lag or gap, not in a loop.
    Failed,
}

/// A connection's delivery state.
#[derive(Debug)]
pub(super) struct Feed {
    policy: Marks,
    cursors: IdMap<ChatId, Cursor>,
    /// Indexes queued for the socket but not yet written: they count only once the transport
    /// has written them, so a broken connection never marks unsent messages.
    unwritten: IdMap<ChatId, Index>,
    /// Written, waiting for the client's acknowledgement (dialects that mark on ack).
    unacked: IdMap<ChatId, Index>,
    /// Delivered indexes not yet recorded in the store.
    marks: IdMap<ChatId, Index>,
    /// Read at login and held back by the dialect until the client asks for them: they do
    /// not count as written until released.
    held: IdMap<ChatId, Index>,
    /// More of the store remains to be written (a lag or a capped catch-up).
    resync_pending: bool,
}

fn raise(map: &mut IdMap<ChatId, Index>, chat: ChatId, index: Index) {
    let mark = map.entry(chat).or_insert(index);
    *mark = (*mark).max(index);
}

impl Feed {
    pub(super) fn new(policy: Marks) -> Self {
        Self {
            policy,
            cursors: IdMap::default(),
            unwritten: IdMap::default(),
            unacked: IdMap::default(),
            marks: IdMap::default(),
            held: IdMap::default(),
            resync_pending: false,
        }
    }

    /// `index` of `chat` is on its way to the socket.
    fn delivered(&mut self, chat: ChatId, index: Index) {
        let cursor = self.cursors.entry(chat).or_default();
        cursor.advance(index);
        self.unwritten.insert(chat, cursor.last);
    }

    /// The transport wrote every queued frame.
    fn written(&mut self) {
        let to = match self.policy {
            Marks::OnWrite => &mut self.marks,
            Marks::OnAck => &mut self.unacked,
        };
        for (chat, index) in self.unwritten.drain() {
            raise(to, chat, index);
        }
    }

    /// The client acknowledged `chat` up to `upto`: what was written up to there is delivered.
    fn acked(&mut self, chat: ChatId, upto: Index) {
        let Some(&written) = self.unacked.get(&chat) else {
            return;
        };
        raise(&mut self.marks, chat, upto.min(written));
        if upto >= written {
            self.unacked.remove(&chat);
        }
    }

    fn clear(&mut self) {
        self.cursors.clear();
        self.unwritten.clear();
        self.unacked.clear();
        self.marks.clear();
        self.held.clear();
        self.resync_pending = false;
    }

    fn skips(&self, chat: ChatId, index: Index) -> bool {
        self.cursors
            .get(&chat)
            .is_some_and(|c| index <= c.last || c.own.contains(&index))
    }
}

impl<D: Dialect> Conn<D> {
    /// Make this connection `login`'s: register it for live delivery, then read everything its
    /// device missed. A device resumes after its own marks (a new login's start where the
    /// account's furthest device got: the store copies them when it opens the session), or
    /// after the index the client says it holds (`since`, per chat) when that is higher. A chat
    /// the device has no mark in (joined since) is read from where the account joined it.
    /// Returns the missed messages, oldest first, the account's own sends left out.
    ///
    /// # Errors
    /// `Internal` when the store fails (the connection is then left logged out).
    pub(super) async fn log_in(
        &mut self,
        login: Login,
        since: &[(ChatId, Index)],
    ) -> Result<Vec<Missed>, DomainError> {
        self.log_out().await;
        let ocid = login.account.ocid;
        // Register before reading the store: whatever commits from now on is in the outbox,
        // whatever committed before is in the store; the cursors drop the overlap.
        let config = &self.app.config;
        let (rate, burst) = (config.rate_per_sec, config.rate_burst);
        let shared = self
            .app
            .hub
            .register(ocid, &self.handle, || {
                crate::conn::budget::Bucket::new(rate, burst)
            })
            .map_err(|e| {
                tracing::info!(%ocid, client = %self.peer, max = e.max, "login refused: too many connections of the account");
                DomainError::TooManyConnections { max: e.max }
            })?;
        self.budget.share(shared);
        self.login = Some(LoggedIn {
            ocid,
            token: login.token,
            device: login.device,
        });
        match self.catch_up(ocid, login.device, since).await {
            Ok(missed) => {
                self.watch_friends(ocid).await;
                Ok(missed)
            }
            Err(e) => {
                self.log_out().await;
                Err(e)
            }
        }
    }

    /// Have this connection told when the account's friends come online or go offline.
    async fn watch_friends(&self, ocid: Ocid) {
        // Not fatal when it fails: the friend list still shows who is online.
        if let Ok(friends) = self.app.domain.friend_ids(ocid).await {
            self.app.hub.watch(ocid, &friends);
        }
    }

    async fn catch_up(
        &mut self,
        ocid: Ocid,
        device: Device,
        since: &[(ChatId, Index)],
    ) -> Result<Vec<Missed>, DomainError> {
        let held: HashMap<ChatId, Index> = since.iter().copied().collect();
        let memberships = self.app.domain.memberships(ocid, &device).await?;
        let mut missed = Vec::new();
        let mut capped = false;
        // Bytes of what is read: the pages stop once the sync's budget is read, and the rest
        // follows as resync rounds, each written before the next is read.
        let max_bytes = self.app.config.catch_up_bytes;
        let mut bytes = 0;
        for m in memberships {
            let mark = m.device.unwrap_or(m.joined);
            // What the client holds counts as delivered (never beyond what exists).
            let start = match held.get(&m.chat) {
                Some(&h) if h > mark => {
                    let h = h.min(m.last_index);
                    self.feed.marks.insert(m.chat, h);
                    h
                }
                _ => mark,
            };
            self.feed.cursors.entry(m.chat).or_default().advance(start);
            if m.last_index <= start {
                continue;
            }
            let chat = self.app.domain.chat(m.chat).await?;
            let mut after = start;
            let mut read = 0;
            while after < m.last_index && read < MAX_CATCH_UP && bytes < max_bytes {
                let page = self.app.domain.messages_after(m.chat, after, PAGE).await?;
                let Some(last) = page.last() else { break };
                after = last.index;
                read += page.len();
                bytes += page.iter().map(Message::wire_bytes).sum::<usize>();
                missed.extend(
                    page.into_iter()
                        .filter(|msg| msg.index <= m.last_index)
                        .map(|msg| (msg, chat.clone())),
                );
            }
            capped |= after < m.last_index;
        }
        // Oldest first across chats (ids rise with index within a chat), at most
        // MAX_CATCH_UP; each chat's cursor moves over what is pushed (and its own messages in
        // between), and the rest is left for the resync that follows.
        missed.sort_by_key(|(m, _)| m.id);
        if missed.len() > MAX_CATCH_UP {
            missed.truncate(MAX_CATCH_UP);
            capped = true;
        }
        // At least one message, however large; then as many as the byte budget holds.
        let mut kept = 0;
        let mut keep = missed.len();
        for (i, (msg, _)) in missed.iter().enumerate() {
            kept += msg.wire_bytes();
            if i > 0 && kept > max_bytes {
                keep = i;
                break;
            }
        }
        if keep < missed.len() {
            missed.truncate(keep);
            capped = true;
        }
        self.feed.resync_pending |= capped;
        for (msg, _) in &missed {
            self.feed.delivered(msg.chat, msg.index);
        }
        // A system message (a join, a rename...) is no send of the account's, even when the
        // account made the change.
        missed.retain(|(msg, _)| msg.sender != ocid || msg.kind == kind::SYSTEM);
        Ok(missed)
    }

    /// Whether part of the store still waits to be written to this connection.
    pub(super) fn resync_pending(&self) -> bool {
        self.feed.resync_pending
    }

    /// Forget the login: flush delivery marks, leave the hub.
    pub(super) async fn log_out(&mut self) {
        self.flush_marks().await;
        if let Some(login) = self.login.take() {
            self.app.hub.unregister(login.ocid, self.handle.id);
        }
        self.budget.unshare();
        self.feed.clear();
    }

    /// Write delivered indexes to the store (periodically, and when the connection ends).
    pub(super) async fn flush_marks(&mut self) {
        let Some(login) = &self.login else { return };
        if self.feed.marks.is_empty() {
            return;
        }
        let marks: Vec<(ChatId, Index)> = self.feed.marks.drain().collect();
        // Not fatal when it fails (logged by the domain): the device will be offered these
        // messages again when it next resumes.
        let _ = self
            .app
            .domain
            .mark_delivered(login.ocid, &login.device, &marks)
            .await;
    }

    /// The transport wrote every queued frame: what they carried now counts as written.
    pub(super) fn written(&mut self) {
        self.feed.written();
    }

    /// Hold back what the login read (`Authenticated::missed`) from counting as delivered when
    /// the next frames are written: for a dialect that announces the missed messages at login
    /// and writes them when the client asks (the pipe dialect's `get_unread_message`). Call
    /// right after a successful `authenticate`; [`Conn::release_held`] when they are written.
    /// A connection that ends in between leaves them undelivered to its device. (Marks are
    /// per chat: a live message of the same chat written in between counts for them too.)
    pub fn hold_catch_up(&mut self) {
        for (chat, index) in self.feed.unwritten.drain() {
            raise(&mut self.feed.held, chat, index);
        }
    }

    /// The messages held back by [`Conn::hold_catch_up`] are in the frames about to be
    /// written: they count as delivered once those are.
    pub fn release_held(&mut self) {
        for (chat, index) in self.feed.held.drain() {
            raise(&mut self.feed.unwritten, chat, index);
        }
    }

    /// The client acknowledged what it was sent of `chat` up to `upto` (for dialects that mark
    /// deliveries on the client's acknowledgement).
    pub fn acked(&mut self, chat: ChatId, upto: Index) {
        self.feed.acked(chat, upto);
    }

    /// This connection's cursor for `chat`, read from the store the first time it is needed:
    /// a chat unknown here was joined after this login, so everything after the index at which
    /// the account joined is new to this connection (whatever other devices have seen).
    async fn cursor(&mut self, chat: ChatId) -> &mut Cursor {
        if !self.feed.cursors.contains_key(&chat) {
            let mut start = Cursor::default();
            if let Some(login) = &self.login
                && let Ok(Some(joined)) = self.app.domain.joined_at(login.ocid, chat).await
            {
                start.last = joined;
            }
            self.feed.cursors.insert(chat, start);
        }
        self.feed.cursors.entry(chat).or_default()
    }

    /// Record a message this connection sent, so it is neither delivered back nor mistaken
    /// for a gap.
    pub(super) async fn note_own(&mut self, chat: ChatId, index: Index) {
        let cursor = self.cursor(chat).await;
        if index == cursor.last.next() {
            cursor.advance(index);
        } else if index > cursor.last && !cursor.own.contains(&index) {
            cursor.own.push(index);
        }
    }

    /// A live delivery from the hub: write it (after any gap) unless already seen.
    pub(super) async fn deliver(&mut self, out: &Outgoing, frames: &mut Vec<Bytes>) {
        // Deliveries queued for an account this connection has since logged out of (or
        // switched from) stay undelivered here.
        let Some(login) = &self.login else { return };
        if !out.delivery.chat.is_member(login.ocid) {
            return;
        }
        let m = &out.delivery.message;
        let (chat, index) = (m.chat, m.index);
        if self.sending_to(chat) && index > self.cursor(chat).await.last.next() {
            // The gap may be this connection's own sends to this chat, durable but not acked
            // yet: ack them first, or the gap fill would write them back to their sender.
            self.absorb_sends(frames).await;
            if index > self.cursor(chat).await.last.next() {
                self.drain_sends(frames).await;
            }
        }
        let cursor = self.cursor(chat).await;
        if index <= cursor.last || cursor.own.contains(&index) {
            return;
        }
        if index > cursor.last.next() {
            let from = cursor.last;
            if !self.app.hub.has_room() {
                // The node buffers all it may: this one and the gap come with the resync
                // rounds once there is room.
                self.feed.resync_pending = true;
                return;
            }
            match self
                .fill(chat, from, Index(index.0 - 1), FILL_BUDGET, frames)
                .await
            {
                Fill::Done => {}
                // Too far behind: this one comes with the resync rounds.
                Fill::Budget => {
                    self.feed.resync_pending = true;
                    return;
                }
                // Writing this one now would open a gap; the next delivery or lag retries.
                Fill::Failed => return,
            }
        }
        let d = &out.delivery;
        let me = self.me().unwrap_or_default();
        let frame = match self.file_frame(me, &d.message, &d.chat) {
            Some(read) => read.await,
            None => None,
        };
        let frame = match frame {
            Some(frame) => frame,
            None => {
                let dialect = &*self.dialect;
                out.frame(dialect.slot(), |d| {
                    let text = d.message.text();
                    dialect.message(&view(&d.message, &d.chat, &text))
                })
            }
        };
        frames.push(frame);
        self.feed.delivered(chat, index);
    }

    /// The dialect's own frame for a message that carries a file, when it makes one with an
    /// awaited read (see [`Dialect::file_message`]); `None` for every other message.
    fn file_frame(
        &self,
        me: Ocid,
        m: &Message,
        chat: &Arc<ChatInfo>,
    ) -> Option<impl Future<Output = Option<Bytes>> + Send + use<D>> {
        if !D::FILE_FRAMES || !m.parts.iter().any(|p| FileKind::of(p.category.0).is_some()) {
            return None;
        }
        let (dialect, app) = (self.dialect.clone(), self.app.clone());
        let (m, chat) = (m.clone(), chat.clone());
        Some(async move {
            let text = m.text();
            dialect
                .file_message(&app.domain, me, &view(&m, &chat, &text))
                .await
        })
    }

    /// Read `(from, to]` of a chat from the store, at most `budget` messages, and write what
    /// this connection has not seen. Returns whether it reached `to`.
    async fn fill(
        &mut self,
        chat: ChatId,
        from: Index,
        to: Index,
        budget: u64,
        frames: &mut Vec<Bytes>,
    ) -> Fill {
        let Ok(info) = self.app.domain.chat(chat).await else {
            return Fill::Failed;
        };
        let end = to.min(from.plus(budget));
        // The frames of one write stay within the connection's byte budget (at least one
        // message is written, however large); the rest waits until the socket took them.
        let max_bytes = self.app.config.outbox_bytes;
        let mut bytes: usize = frames.iter().map(Bytes::len).sum();
        let mut after = from;
        while after < end {
            let limit = end.since(after).min(u64::from(PAGE)) as u32;
            let Ok(page) = self.app.domain.messages_after(chat, after, limit).await else {
                return Fill::Failed;
            };
            let Some(last) = page.last() else { break };
            after = last.index;
            let me = self.me().unwrap_or_default();
            for msg in &page {
                if bytes >= max_bytes && !frames.is_empty() {
                    return Fill::Budget;
                }
                if !self.feed.skips(chat, msg.index) {
                    let frame = match self.file_frame(me, msg, &info) {
                        Some(read) => read.await,
                        None => None,
                    };
                    let frame = match frame {
                        Some(frame) => frame,
                        None => {
                            let text = msg.text();
                            self.dialect.message(&view(msg, &info, &text))
                        }
                    };
                    bytes += frame.len();
                    frames.push(frame);
                }
                self.feed.delivered(chat, msg.index);
            }
        }
        // Stopping short of `to` only because of the budget leaves work; an early end of the
        // store (nothing more committed) does not.
        if after < to && after >= end {
            Fill::Budget
        } else {
            Fill::Done
        }
    }

    /// Write every chat's missing tail from the store, in rounds of at most `FILL_BUDGET`
    /// messages (after a full outbox dropped deliveries, or a capped catch-up).
    pub(super) async fn resync(&mut self, frames: &mut Vec<Bytes>) {
        self.app.metrics.resyncs.increment(1);
        // Sends committed but not yet acked must not be read back as missed.
        self.drain_sends(frames).await;
        // The node buffers all it may: later (the loop tries again while it is pending).
        self.feed.resync_pending = !self.app.hub.has_room();
        if self.feed.resync_pending {
            return;
        }
        let Some(login) = &self.login else { return };
        let (ocid, device) = (login.ocid, login.device);
        // On failure (logged by the domain), retried at the next lag.
        let Ok(memberships) = self.app.domain.memberships(ocid, &device).await else {
            return;
        };
        let mut budget = FILL_BUDGET;
        for m in memberships {
            let last = self.cursor(m.chat).await.last;
            if m.last_index <= last {
                continue;
            }
            match self.fill(m.chat, last, m.last_index, budget, frames).await {
                Fill::Failed => return,
                Fill::Budget => {
                    self.feed.resync_pending = true;
                    return;
                }
                Fill::Done => {}
            }
            budget = budget.saturating_sub(m.last_index.since(last));
            if budget == 0 {
                self.feed.resync_pending = true;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_absorbs_own_messages() {
        let mut c = Cursor {
            last: Index(4),
            own: vec![Index(6), Index(7)],
        };
        c.advance(Index(5));
        assert_eq!(c.last, Index(7));
        assert!(c.own.is_empty());
        c.own.push(Index(9));
        c.advance(Index(3));
        assert_eq!((c.last, c.own.as_slice()), (Index(7), &[Index(9)][..]));
    }

    #[test]
    fn marks_follow_writes_or_acknowledgements() {
        let chat = ChatId(3);
        // Marked once written.
        let mut f = Feed::new(Marks::OnWrite);
        f.delivered(chat, Index(1));
        f.delivered(chat, Index(2));
        assert!(f.marks.is_empty(), "nothing counts before it is written");
        f.written();
        assert_eq!(f.marks.get(&chat), Some(&Index(2)));
        // Marked once acknowledged, never beyond what was written.
        let mut f = Feed::new(Marks::OnAck);
        f.delivered(chat, Index(1));
        f.delivered(chat, Index(2));
        f.acked(chat, Index(2));
        assert!(
            f.marks.is_empty(),
            "an ack of what was not written counts for nothing"
        );
        f.written();
        assert!(f.marks.is_empty(), "written is not yet delivered");
        f.acked(chat, Index(1));
        assert_eq!(f.marks.get(&chat), Some(&Index(1)));
        f.acked(chat, Index(9));
        assert_eq!(f.marks.get(&chat), Some(&Index(2)));
        f.delivered(chat, Index(3));
        f.written();
        f.acked(chat, Index(3));
        assert_eq!(f.marks.get(&chat), Some(&Index(3)));
    }
}
