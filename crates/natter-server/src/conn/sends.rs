//! Sends queued in the store: a connection keeps reading while its sends wait for the commit
//! (up to `max_pending_sends`), and acks them in the order they were made.

use super::Conn;
use crate::dialect::Dialect;
use crate::domain::{Domain, PendingSend, To};
use crate::store::Appended;
use bytes::Bytes;
use futures_util::FutureExt;

/// A send waiting for the store's commit; its ack is written once it is durable, in request
/// order.
pub(super) struct Queued<A> {
    pending: PendingSend,
    /// What the dialect needs to encode the ack (or the error).
    ack: A,
}

impl<D: Dialect> Conn<D> {
    /// Check and queue a text message (of type `kind`) from the logged-in account: acked through the dialect
    /// with `ack` once durable (the connection reads on meanwhile), or, when it fails its
    /// checks, refused at once, after the sends before it.
    pub async fn send(
        &mut self,
        to: To,
        kind: u8,
        text: String,
        client_id: Option<String>,
        ack: D::Ack,
        out: &mut Vec<Bytes>,
    ) {
        let queued = match self.me() {
            Some(me) => {
                let origin = Some(self.origin());
                self.app
                    .domain
                    .queue_typed(me, to, kind, text, client_id, origin)
                    .await
            }
            None => Err(crate::domain::DomainError::Internal),
        };
        self.enqueue(queued, ack, out).await;
    }

    /// [`Conn::send`] for a message that carries a file (and an optional caption).
    pub async fn send_file(
        &mut self,
        to: To,
        attachment: &crate::domain::files::Attachment,
        caption: String,
        client_id: Option<String>,
        ack: D::Ack,
        out: &mut Vec<Bytes>,
    ) {
        let queued = match self.me() {
            Some(me) => {
                let origin = Some(self.origin());
                self.app
                    .domain
                    .queue_file(me, to, attachment, caption, client_id, origin)
                    .await
            }
            None => Err(crate::domain::DomainError::Internal),
        };
        self.enqueue(queued, ack, out).await;
    }

    /// Keep a queued send for its ack, or ack a refused one (after those before it).
    async fn enqueue(
        &mut self,
        queued: Result<crate::domain::PendingSend, crate::domain::DomainError>,
        ack: D::Ack,
        out: &mut Vec<Bytes>,
    ) {
        match queued {
            Ok(pending) => self.sends.push_back(Queued { pending, ack }),
            Err(e) => {
                self.drain_sends(out).await;
                out.extend(self.dialect.ack(ack, Err(&e)));
            }
        }
    }

    /// How many sends wait for the store.
    pub(super) fn sends_in_flight(&self) -> usize {
        self.sends.len()
    }

    /// The store's answer to the oldest queued send (cancel-safe; never resolves when none
    /// is queued).
    pub(super) async fn next_stored(&mut self) -> crate::store::Result<Appended> {
        match self.sends.front_mut() {
            Some(q) => (&mut q.pending.receipt).await,
            None => std::future::pending().await,
        }
    }

    /// Ack the oldest queued send with the store's answer `stored`.
    pub(super) async fn complete_send(
        &mut self,
        stored: crate::store::Result<Appended>,
        out: &mut Vec<Bytes>,
    ) {
        let Some(q) = self.sends.pop_front() else {
            return;
        };
        let result = Domain::finish_send(q.pending.chat.id, stored);
        if let Ok(sent) = &result {
            self.note_own(sent.chat, sent.index).await;
        }
        out.extend(self.dialect.ack(q.ack, result.as_ref()));
    }

    /// Ack every queued send the store has already answered, oldest first.
    pub(super) async fn absorb_sends(&mut self, out: &mut Vec<Bytes>) {
        while let Some(q) = self.sends.front_mut() {
            let Some(stored) = (&mut q.pending.receipt).now_or_never() else {
                break;
            };
            self.complete_send(stored, out).await;
        }
    }

    /// Wait for every queued send and ack it. Runs before any other request, so replies keep
    /// request order and a request sees the sends before it.
    pub async fn drain_sends(&mut self, out: &mut Vec<Bytes>) {
        while !self.sends.is_empty() {
            let stored = self.next_stored().await;
            self.complete_send(stored, out).await;
        }
    }

    /// Whether a send to `chat` waits for the store.
    pub(super) fn sending_to(&self, chat: natter_proto::ChatId) -> bool {
        self.sends.iter().any(|q| q.pending.chat.id == chat)
    }
}
