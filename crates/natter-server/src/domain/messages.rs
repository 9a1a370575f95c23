//! Messages: checking and storing a send (queued for a connection that pipelines its sends, or
//! awaited for a request without a connection), history by index, and the delivery state a
//! connection reads at login and records as it writes.

use super::error::internal;
use super::{Domain, DomainError, Invalid, To, now_ms};
use crate::event::{ChatInfo, Delivery, Origin};
use crate::store::{
    Appended, Category, Device, Index, Membership, Message, NewMessage, OnDurable, Part, Range,
    Receipt, StoreError, kind,
};
use natter_proto::{ChatId, MessageId, Ocid};
use std::sync::Arc;

/// Longest client message id, in bytes.
const MAX_CLIENT_ID: usize = 128;

/// A send queued in the store and not yet answered.
#[derive(Debug)]
pub struct PendingSend {
    pub chat: Arc<ChatInfo>,
    /// Resolves once the message is durable.
    pub receipt: Receipt,
}

/// The outcome of a send: what the ack needs.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: MessageId,
    pub chat: ChatId,
    pub index: Index,
    pub client_id: Option<String>,
}

impl Domain {
    /// Check a text message and queue it for storing; the returned `PendingSend` resolves
    /// (`receipt`) once it is durable, and [`Domain::finish_send`] says what that means for the
    /// sender. The store's writer publishes it right after the commit. Sends queued one after
    /// another get indexes in that order.
    ///
    /// # Errors
    /// `Invalid` (empty text, bad client id, own account), `TextTooLong`, `NoSuchAccount`,
    /// `NoSuchChat`, `NoSuchGroup`, `NotAMember`, `Internal`.
    pub async fn queue_text(
        &self,
        me: Ocid,
        to: To,
        text: String,
        client_id: Option<String>,
        origin: Option<Origin>,
    ) -> Result<PendingSend, DomainError> {
        self.queue_typed(me, to, kind::NORMAL, text, client_id, origin)
            .await
    }

    /// [`Domain::queue_text`] for a message of a given type (see `store::kind`; the system type
    /// is the server's own).
    ///
    /// # Errors
    /// As [`Domain::queue_text`], and `Invalid` for the system type or an unknown one.
    pub async fn queue_typed(
        &self,
        me: Ocid,
        to: To,
        message_kind: u8,
        text: String,
        client_id: Option<String>,
        origin: Option<Origin>,
    ) -> Result<PendingSend, DomainError> {
        if message_kind == kind::SYSTEM || message_kind > kind::GROUP {
            return Err(Invalid::MessageType.into());
        }
        if text.is_empty() {
            return Err(Invalid::EmptyText.into());
        }
        let max = self.limits.max_text_bytes;
        if text.len() > max {
            return Err(DomainError::TextTooLong { max });
        }
        let chat = self.checked_send(me, to, client_id.as_deref()).await?;
        let new = NewMessage {
            chat: chat.id,
            sender: me,
            kind: message_kind,
            parts: vec![Part {
                category: Category::TEXT,
                content: text,
            }],
            client_id,
            created_at: now_ms(),
        };
        let receipt = self.queue_message(chat.clone(), new, origin).await?;
        Ok(PendingSend { chat, receipt })
    }

    /// The chat a message of `me` goes to, checked: a well-formed client id, membership, no
    /// block in a private chat (which is made on first use).
    pub(super) async fn checked_send(
        &self,
        me: Ocid,
        to: To,
        client_id: Option<&str>,
    ) -> Result<Arc<ChatInfo>, DomainError> {
        if client_id.is_some_and(|c| c.is_empty() || c.len() > MAX_CLIENT_ID) {
            return Err(Invalid::ClientId { max: MAX_CLIENT_ID }.into());
        }
        let chat = self
            .resolve(me, to, true)
            .await?
            .ok_or_else(|| internal("private chat missing after create", &"none"))?;
        if chat.blocked {
            return Err(self.block_refusal(me, &chat).await);
        }
        if !chat.friends {
            self.spend(&self.quotas.stranger_messages, me, 1)?;
        }
        Ok(chat)
    }

    /// Why a private chat with a block refuses `me`'s message.
    pub(super) async fn block_refusal(&self, me: Ocid, chat: &ChatInfo) -> DomainError {
        let Some(peer) = chat.peer_of(me) else {
            return DomainError::NotAMember(chat.id);
        };
        match self.blocks(me, peer).await {
            Ok(true) => DomainError::Blocking(peer),
            Ok(false) => DomainError::NotAccepted(peer),
            Err(e) => e,
        }
    }

    /// Queue a checked message for storing; the store's writer publishes it right after the
    /// commit, so every chat's messages reach the bus in index order. A retried send
    /// (`Existing`) is published again, in case the node that stored it died before publishing
    /// (receivers drop what they already have by index).
    pub(super) async fn queue_message(
        &self,
        chat: Arc<ChatInfo>,
        new: NewMessage,
        origin: Option<Origin>,
    ) -> Result<Receipt, DomainError> {
        let bus = self.bus.clone();
        let publish: OnDurable = Box::new(move |appended: &Appended| {
            let (Appended::New(message) | Appended::Existing(message)) = appended;
            bus.publish(Arc::new(Delivery {
                message: message.clone(),
                chat,
                origin,
            }));
        });
        self.store
            .queue_append(new, Some(publish))
            .await
            .map_err(|e| internal("message append failed", &e))
    }

    /// What a queued send's receipt means for its sender.
    ///
    /// # Errors
    /// `DuplicateClientId`, `NoSuchChat`, `Internal`.
    pub fn finish_send(
        chat: ChatId,
        stored: crate::store::Result<Appended>,
    ) -> Result<Sent, DomainError> {
        match stored {
            Ok(Appended::New(m) | Appended::Existing(m)) => Ok(Sent {
                id: m.id,
                chat: m.chat,
                index: m.index,
                client_id: m.client_id,
            }),
            Err(StoreError::ClientIdReused) => Err(DomainError::DuplicateClientId),
            Err(StoreError::NoSuchChat) => Err(DomainError::NoSuchChat(chat)),
            Err(e) => Err(internal("message append failed", &e)),
        }
    }

    /// Send a text message and wait until it is durable: for a request without a connection
    /// (an HTTP dialect), which needs no hub entry and is answered once the message is stored.
    /// The message reaches every member's connections like any other.
    ///
    /// # Errors
    /// As [`Domain::queue_text`] and [`Domain::finish_send`].
    pub async fn send_text(
        &self,
        me: Ocid,
        to: To,
        text: String,
        client_id: Option<String>,
    ) -> Result<Sent, DomainError> {
        self.send_typed(me, to, kind::NORMAL, text, client_id).await
    }

    /// [`Domain::send_text`] for a message of a given type.
    ///
    /// # Errors
    /// As [`Domain::queue_typed`] and [`Domain::finish_send`].
    pub async fn send_typed(
        &self,
        me: Ocid,
        to: To,
        message_kind: u8,
        text: String,
        client_id: Option<String>,
    ) -> Result<Sent, DomainError> {
        let pending = self
            .queue_typed(me, to, message_kind, text, client_id, None)
            .await?;
        Self::finish_send(pending.chat.id, pending.receipt.await)
    }

    /// A page of a chat's history for a member, ascending, and whether more lie beyond it.
    /// `None` for a private chat that does not exist yet (with an account that does).
    ///
    /// # Errors
    /// `NoSuchAccount`, `NoSuchChat`, `NoSuchGroup`, `NotAMember`, `Internal`.
    pub async fn history(
        &self,
        me: Ocid,
        to: To,
        range: Range,
        limit: u32,
    ) -> Result<(Option<Arc<ChatInfo>>, Vec<Message>, bool), DomainError> {
        let Some(chat) = self.resolve(me, to, false).await? else {
            if let To::Account(peer) = to {
                self.account(peer).await?;
            }
            return Ok((None, Vec::new(), false));
        };
        let mut messages = self
            .store
            .messages(chat.id, range, limit + 1)
            .await
            .map_err(|e| internal("history read failed", &e))?;
        let mut more = messages.len() > limit as usize;
        if more {
            match range {
                Range::After(_) => {
                    messages.pop();
                }
                Range::Latest | Range::Before(_) => {
                    messages.remove(0);
                }
            }
        }
        // Within the reply budget, keeping the messages next to where the page starts (the
        // oldest going forward, the newest going back); at least one.
        let max = self.limits.max_reply_bytes;
        let forward = matches!(range, Range::After(_));
        let mut bytes = 0;
        let mut keep = 0;
        for i in 0..messages.len() {
            let m = if forward {
                &messages[i]
            } else {
                &messages[messages.len() - 1 - i]
            };
            bytes += m.wire_bytes();
            if keep > 0 && bytes > max {
                break;
            }
            keep += 1;
        }
        if keep < messages.len() {
            more = true;
            if forward {
                messages.truncate(keep);
            } else {
                messages.drain(..messages.len() - keep);
            }
        }
        Ok((Some(chat), messages, more))
    }

    // -- delivery state: what a connection reads at login and records as it writes ---------

    /// Every chat of `me`, with `device`'s delivery marks.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn memberships(
        &self,
        me: Ocid,
        device: &Device,
    ) -> Result<Vec<Membership>, DomainError> {
        self.store
            .memberships(me, device)
            .await
            .map_err(|e| internal("membership read failed", &e))
    }

    /// The index `me` joined `chat` at (it is sent what comes after), if a member.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn joined_at(&self, me: Ocid, chat: ChatId) -> Result<Option<Index>, DomainError> {
        self.store
            .membership(me, chat)
            .await
            .map(|m| m.map(|m| m.joined))
            .map_err(|e| internal("membership read failed", &e))
    }

    /// At most `limit` messages of `chat` after index `after`, ascending. For a connection's own
    /// catch-up: the caller has checked membership.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn messages_after(
        &self,
        chat: ChatId,
        after: Index,
        limit: u32,
    ) -> Result<Vec<Message>, DomainError> {
        let messages = self
            .store
            .messages(chat, Range::After(after), limit)
            .await
            .map_err(|e| internal("catch-up read failed", &e))?;
        // A system message follows a change of members that this node may not have heard of
        // (its bus message lost): what is cached of the chat is stale.
        if messages.iter().any(|m| m.kind == kind::SYSTEM) {
            self.forget_cached(Some(chat), None);
        }
        Ok(messages)
    }

    /// Record how far `device` of `me` has been delivered in each chat (never lowered).
    ///
    /// # Errors
    /// `Internal`.
    pub async fn mark_delivered(
        &self,
        me: Ocid,
        device: &Device,
        marks: &[(ChatId, Index)],
    ) -> Result<(), DomainError> {
        self.store
            .mark_delivered(me, device, marks)
            .await
            .map_err(|e| internal("delivery marks not recorded", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Bus, LocalBus};
    use crate::conn::budget::Bucket;
    use crate::domain::Limits;
    use crate::hub::{Hub, Push};
    use crate::store::sqlite::SqliteStore;

    /// A request without a connection (an HTTP dialect's): the send is answered once durable,
    /// needs no hub entry of its own, and reaches the other member's connections like any
    /// other; a retry is answered with the stored message.
    #[tokio::test]
    async fn a_send_without_a_connection_is_stored_and_delivered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("natter.db"))
            .await
            .expect("store");
        let hub = Arc::new(Hub::new());
        let local = LocalBus::new();
        local.attach(hub.clone());
        let bus: Arc<dyn Bus> = Arc::new(local);
        hub.attach(&bus);
        let domain = Domain::new(Arc::new(store), bus, hub.clone(), Limits::default());
        let a = domain
            .register_email("a@example.com", "pw", None, None)
            .await
            .expect("a");
        let b = domain
            .register_email("b@example.com", "pw", None, None)
            .await
            .expect("b");
        let (conn, mut outbox) = hub.connection(8);
        hub.register(b.ocid, &conn, || Bucket::new(0, 0))
            .expect("no cap on connections");

        let sent = domain
            .send_text(a.ocid, To::Account(b.ocid), "hi".into(), Some("c1".into()))
            .await
            .expect("sent");
        assert_eq!(
            (sent.index, sent.client_id.as_deref()),
            (Index(1), Some("c1"))
        );
        let (_, stored, _) = domain
            .history(b.ocid, To::Account(a.ocid), Range::Latest, 10)
            .await
            .expect("history");
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].id, stored[0].text().as_ref()), (sent.id, "hi"));
        match outbox.try_recv() {
            Ok(Push::Deliver(out)) => assert_eq!(out.delivery.message.id, sent.id),
            other => panic!("expected the message in b's outbox, got {other:?}"),
        }
        let again = domain
            .send_text(a.ocid, To::Account(b.ocid), "hi".into(), Some("c1".into()))
            .await
            .expect("retried");
        assert_eq!((again.id, again.index), (sent.id, sent.index));
        assert!(matches!(
            domain
                .send_text(a.ocid, To::Account(a.ocid), "me".into(), None)
                .await,
            Err(DomainError::Invalid(Invalid::PrivateChatWithSelf))
        ));
        domain.close().await;
    }
}
