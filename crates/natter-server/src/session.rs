//! Per-connection state shared by every dialect: who is logged in, which index of each chat
//! this connection has seen, the catch-up on login, and the request rate budget.
//!
//! The invariant: within a chat, a connection receives messages in index order, each at most
//! once, and with no gaps. Live deliveries that skip ahead (published out of order, or dropped
//! because the outbox was full) make the session read the gap from the store first.

use crate::app::App;
use crate::domain::{ChatInfo, Dialect, Domain, PendingSend, Sent, encode, view};
use crate::hub::{Bucket, ConnHandle, Outgoing, SharedBucket};
use crate::ids::IdMap;
use crate::store::{Account, Appended, Message, Range};
use axum::extract::ws::Utf8Bytes;
use futures_util::FutureExt;
use natter_proto::{ChatId, ErrorCode, Index, Ocid, WireError};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Messages read from the store per query while catching up.
const PAGE: u32 = 1000;
/// Most missed messages pushed at login; the rest follow as live frames (resync).
pub const MAX_CATCH_UP: usize = 10_000;
/// Most messages one gap fill or resync round reads before the socket is written again.
const FILL_BUDGET: u64 = 2_000;

/// Who a connection is logged in as.
#[derive(Debug)]
pub struct LoggedIn {
    pub ocid: Ocid,
    /// The token of the session this connection logged in with (revoked by logout).
    pub token: String,
}

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
        while let Some(pos) = self.own.iter().position(|i| *i == self.last + 1) {
            self.own.swap_remove(pos);
            self.last += 1;
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

/// Encodes a send's ack (or its error) in the request's dialect.
pub type AckFrame = Box<dyn FnOnce(Result<&Sent, &WireError>) -> Utf8Bytes + Send + Sync>;

/// A send waiting for the store's commit; its ack is written once it is durable, in request
/// order.
pub struct QueuedSend {
    pub pending: PendingSend,
    /// The ack (or the error) in the request's dialect.
    pub reply: AckFrame,
}

/// A message missed while offline, with its chat for encoding.
pub type Missed = (Message, Arc<ChatInfo>);

pub struct Session {
    pub app: Arc<App>,
    pub dialect: Dialect,
    pub conn: Arc<ConnHandle>,
    pub login: Option<LoggedIn>,
    cursors: IdMap<ChatId, Cursor>,
    /// Indexes queued for the socket but not yet written: they become `marks` only once the
    /// transport has written them, so a broken connection never marks unsent messages.
    unwritten: IdMap<ChatId, Index>,
    /// Written indexes not yet recorded in the store.
    marks: IdMap<ChatId, Index>,
    /// This connection's request budget while it is anonymous.
    bucket: Bucket,
    /// Once logged in: the budget its account shares with its other connections on this node.
    account_bucket: Option<SharedBucket>,
    /// More of the store remains to be written (a lag or a capped catch-up).
    resync_pending: bool,
    /// Sends queued in the store and not yet acked, oldest first.
    sends: VecDeque<QueuedSend>,
}

impl Session {
    pub fn new(app: Arc<App>, dialect: Dialect, conn: Arc<ConnHandle>) -> Self {
        let bucket = Bucket::new(app.config.rate_per_sec, app.config.rate_burst);
        Self {
            app,
            dialect,
            conn,
            login: None,
            cursors: IdMap::default(),
            unwritten: IdMap::default(),
            marks: IdMap::default(),
            bucket,
            account_bucket: None,
            resync_pending: false,
            sends: VecDeque::new(),
        }
    }

    /// How many sends wait for the store.
    pub fn sends_in_flight(&self) -> usize {
        self.sends.len()
    }

    /// Keep a queued send until the store answers it.
    pub fn queue_send(&mut self, send: QueuedSend) {
        self.sends.push_back(send);
    }

    /// The store's answer to the oldest queued send (cancel-safe; never resolves when none
    /// is queued).
    pub async fn next_stored(&mut self) -> crate::store::Result<Appended> {
        match self.sends.front_mut() {
            Some(q) => (&mut q.pending.receipt).await,
            None => std::future::pending().await,
        }
    }

    /// Ack the oldest queued send with the store's answer `stored`.
    pub async fn complete_send(
        &mut self,
        stored: crate::store::Result<Appended>,
        out: &mut Vec<Utf8Bytes>,
    ) {
        let Some(q) = self.sends.pop_front() else {
            return;
        };
        let result = Domain::finish_send(stored);
        if let Ok(sent) = &result {
            self.note_own(sent.chat, sent.index).await;
        }
        out.push((q.reply)(result.as_ref()));
    }

    /// Ack every queued send the store has already answered, oldest first.
    pub async fn absorb_sends(&mut self, out: &mut Vec<Utf8Bytes>) {
        while let Some(q) = self.sends.front_mut() {
            let Some(stored) = (&mut q.pending.receipt).now_or_never() else {
                break;
            };
            self.complete_send(stored, out).await;
        }
    }

    /// Wait for every queued send and ack it. Runs before any other request, so replies keep
    /// request order and a request sees the sends before it.
    pub async fn drain_sends(&mut self, out: &mut Vec<Utf8Bytes>) {
        while !self.sends.is_empty() {
            let stored = self.next_stored().await;
            self.complete_send(stored, out).await;
        }
    }

    /// Spend one frame from the rate budget: the connection's own while it is anonymous, its
    /// account's (shared by all its connections on this node) once it is logged in.
    pub fn allow_frame(&mut self) -> bool {
        if self.bucket.unlimited() {
            return true;
        }
        match &self.account_bucket {
            Some(shared) => shared.lock().unwrap_or_else(|p| p.into_inner()).allow(),
            None => self.bucket.allow(),
        }
    }

    /// The logged-in account, or `not_logged_in`.
    pub fn me(&self) -> Result<Ocid, WireError> {
        self.login
            .as_ref()
            .map(|l| l.ocid)
            .ok_or_else(|| WireError::new(ErrorCode::NotLoggedIn, "log in first"))
    }

    /// Make this connection `account`'s: register it for live delivery, then read everything
    /// the account missed after its delivered index, or after the index the client says it
    /// holds (`since`, per chat) when that is higher. Returns the missed messages, oldest first.
    ///
    /// # Errors
    /// `internal` when the store fails (the connection is then left logged out).
    pub async fn log_in(
        &mut self,
        account: &Account,
        token: String,
        since: &[(ChatId, Index)],
    ) -> Result<Vec<Missed>, WireError> {
        self.log_out().await;
        let ocid = account.ocid;
        // Register before reading the store: whatever commits from now on is in the outbox,
        // whatever committed before is in the store; the cursors drop the overlap.
        let config = &self.app.config;
        let (rate, burst) = (config.rate_per_sec, config.rate_burst);
        self.account_bucket = Some(
            self.app
                .hub
                .register(ocid, &self.conn, || Bucket::new(rate, burst)),
        );
        self.login = Some(LoggedIn { ocid, token });
        match self.catch_up(ocid, since).await {
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
        match self.app.domain.store().friends(ocid).await {
            Ok(friends) => {
                let ids: Vec<Ocid> = friends.iter().map(|f| f.ocid).collect();
                self.app.hub.watch(ocid, &ids);
            }
            // Not fatal: the friend list (code 29) still shows who is online.
            Err(e) => tracing::warn!(error = %e, "friend list read failed; no presence pushes"),
        }
    }

    async fn catch_up(
        &mut self,
        ocid: Ocid,
        since: &[(ChatId, Index)],
    ) -> Result<Vec<Missed>, WireError> {
        let held: HashMap<ChatId, Index> = since.iter().copied().collect();
        let store = self.app.domain.store().clone();
        let memberships = store
            .memberships(ocid)
            .await
            .map_err(|e| internal("membership read failed", &e))?;
        let mut missed = Vec::new();
        let mut capped = false;
        for m in memberships {
            // What the client holds counts as delivered (never beyond what exists).
            let start = match held.get(&m.chat) {
                Some(&h) if h > m.delivered => {
                    let h = h.min(m.last_index);
                    self.marks.insert(m.chat, h);
                    h
                }
                _ => m.delivered,
            };
            self.cursors.entry(m.chat).or_default().advance(start);
            if m.last_index <= start {
                continue;
            }
            let chat = self.app.domain.chat(m.chat).await?;
            let mut after = start;
            let mut read = 0;
            while after < m.last_index && read < MAX_CATCH_UP {
                let page = store
                    .messages(m.chat, Range::After(after), PAGE)
                    .await
                    .map_err(|e| internal("catch-up read failed", &e))?;
                let Some(last) = page.last() else { break };
                after = last.index;
                read += page.len();
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
        self.resync_pending |= capped;
        for (msg, _) in &missed {
            self.delivered(msg.chat, msg.index);
        }
        missed.retain(|(msg, _)| msg.sender != ocid);
        Ok(missed)
    }

    /// Whether part of the store still waits to be written to this connection.
    pub fn resync_pending(&self) -> bool {
        self.resync_pending
    }

    /// Forget the login: flush delivery marks, leave the hub.
    pub async fn log_out(&mut self) {
        self.flush_marks().await;
        if let Some(login) = self.login.take() {
            self.app.hub.unregister(login.ocid, self.conn.id);
        }
        self.account_bucket = None;
        self.cursors.clear();
        self.unwritten.clear();
        self.marks.clear();
        self.resync_pending = false;
    }

    /// Write delivered indexes to the store (periodically, and when the connection ends).
    pub async fn flush_marks(&mut self) {
        let Some(login) = &self.login else { return };
        if self.marks.is_empty() {
            return;
        }
        let marks: Vec<(ChatId, Index)> = self.marks.drain().collect();
        if let Err(e) = self
            .app
            .domain
            .store()
            .mark_delivered(login.ocid, &marks)
            .await
        {
            // Not fatal: the account will be offered these messages again at its next login.
            tracing::warn!(error = %e, "could not record delivered messages");
        }
    }

    /// This connection's cursor for `chat`, read from the store the first time it is needed:
    /// a chat unknown here was joined after this login, so everything after the index at which
    /// the account joined is new to this connection (whatever other devices have seen).
    async fn cursor(&mut self, chat: ChatId) -> &mut Cursor {
        if !self.cursors.contains_key(&chat) {
            let mut start = Cursor::default();
            if let Some(login) = &self.login {
                match self.app.domain.store().membership(login.ocid, chat).await {
                    Ok(Some(m)) => start.last = m.joined,
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, chat, "membership read failed"),
                }
            }
            self.cursors.insert(chat, start);
        }
        self.cursors.entry(chat).or_default()
    }

    /// Record a message this connection sent, so it is neither delivered back nor mistaken
    /// for a gap.
    pub async fn note_own(&mut self, chat: ChatId, index: Index) {
        let cursor = self.cursor(chat).await;
        if index == cursor.last + 1 {
            cursor.advance(index);
        } else if index > cursor.last && !cursor.own.contains(&index) {
            cursor.own.push(index);
        }
    }

    /// A live delivery from the hub: write it (after any gap) unless already seen.
    pub async fn deliver(&mut self, out: &Outgoing, frames: &mut Vec<Utf8Bytes>) {
        // Deliveries queued for an account this connection has since logged out of (or
        // switched from) stay undelivered here.
        let Some(login) = &self.login else { return };
        if !out.delivery.chat.is_member(login.ocid) {
            return;
        }
        let m = &out.delivery.message;
        let (chat, index) = (m.chat, m.index);
        let own_in_flight = self.sends.iter().any(|q| q.pending.chat.id == chat);
        if own_in_flight && index > self.cursor(chat).await.last + 1 {
            // The gap may be this connection's own sends to this chat, durable but not acked
            // yet: ack them first, or the gap fill would write them back to their sender.
            self.absorb_sends(frames).await;
            if index > self.cursor(chat).await.last + 1 {
                self.drain_sends(frames).await;
            }
        }
        let cursor = self.cursor(chat).await;
        if index <= cursor.last || cursor.own.contains(&index) {
            return;
        }
        if index > cursor.last + 1 {
            let from = cursor.last;
            match self.fill(chat, from, index - 1, FILL_BUDGET, frames).await {
                Fill::Done => {}
                // Too far behind: this one comes with the resync rounds.
                Fill::Budget => {
                    self.resync_pending = true;
                    return;
                }
                // Writing this one now would open a gap; the next delivery or lag retries.
                Fill::Failed => return,
            }
        }
        frames.push(out.frame(self.dialect));
        self.delivered(chat, index);
    }

    fn delivered(&mut self, chat: ChatId, index: Index) {
        let cursor = self.cursors.entry(chat).or_default();
        cursor.advance(index);
        self.unwritten.insert(chat, cursor.last);
    }

    /// The transport wrote every queued frame: what they carried now counts as delivered.
    pub fn written(&mut self) {
        for (chat, index) in self.unwritten.drain() {
            let mark = self.marks.entry(chat).or_insert(index);
            *mark = (*mark).max(index);
        }
    }

    /// Read `(from, to]` of a chat from the store, at most `budget` messages, and write what
    /// this connection has not seen. Returns whether it reached `to`.
    async fn fill(
        &mut self,
        chat: ChatId,
        from: Index,
        to: Index,
        budget: u64,
        frames: &mut Vec<Utf8Bytes>,
    ) -> Fill {
        let info = match self.app.domain.chat(chat).await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(chat, error = %e, "gap fill skipped");
                return Fill::Failed;
            }
        };
        let store = self.app.domain.store().clone();
        let end = to.min(from.saturating_add(budget));
        let mut after = from;
        while after < end {
            let limit = (end - after).min(u64::from(PAGE)) as u32;
            let page = match store.messages(chat, Range::After(after), limit).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(chat, error = %e, "gap fill read failed");
                    return Fill::Failed;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.index;
            for msg in &page {
                let skip = self
                    .cursors
                    .get(&chat)
                    .is_some_and(|c| msg.index <= c.last || c.own.contains(&msg.index));
                if !skip {
                    let text = msg.text();
                    frames.push(encode(self.dialect, &view(msg, &info, &text)).into());
                }
                self.delivered(chat, msg.index);
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
    pub async fn resync(&mut self, frames: &mut Vec<Utf8Bytes>) {
        // Sends committed but not yet acked must not be read back as missed.
        self.drain_sends(frames).await;
        self.resync_pending = false;
        let Some(login) = &self.login else { return };
        let memberships = match self.app.domain.store().memberships(login.ocid).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "resync read failed; will retry on the next lag");
                return;
            }
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
                    self.resync_pending = true;
                    return;
                }
                Fill::Done => {}
            }
            budget = budget.saturating_sub(m.last_index - last);
            if budget == 0 {
                self.resync_pending = true;
                return;
            }
        }
    }
}

fn internal(context: &str, e: &dyn std::fmt::Display) -> WireError {
    tracing::error!(error = %e, "{context}");
    WireError::new(ErrorCode::Internal, "the server failed; try again")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_absorbs_own_messages() {
        let mut c = Cursor {
            last: 4,
            own: vec![6, 7],
        };
        c.advance(5);
        assert_eq!(c.last, 7);
        assert!(c.own.is_empty());
        c.own.push(9);
        c.advance(3);
        assert_eq!((c.last, c.own.as_slice()), (7, &[9][..]));
    }
}
