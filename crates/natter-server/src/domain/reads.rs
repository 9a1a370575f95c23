//! Read state and what a login is told: read receipts (synced across the reader's devices and
//! shown to the other side of a private chat), the chat list with unread counts, and the news
//! waiting at login (friend requests, join requests to answer, invitations, notices kept while
//! the account had no connection, and the unread total).

use super::error::internal;
use super::{Domain, DomainError, To};
use crate::event::{Audience, ChatInfo, Notice, Origin};
use crate::store::{ChatKind, ChatState, FriendRequest, Invitation, JoinRequest};
use natter_proto::{Index, Ocid};
use std::sync::Arc;

/// One chat of an account's chat list.
#[derive(Debug, Clone)]
pub struct ChatEntry {
    pub state: ChatState,
    pub chat: Arc<ChatInfo>,
    /// A group's name.
    pub name: String,
}

impl ChatEntry {
    /// When the chat was last active: its newest message (ms; 0 for none).
    pub fn active_at(&self) -> i64 {
        self.state.last.as_ref().map_or(0, |m| m.created_at)
    }
}

/// What waits for an account when it logs in.
#[derive(Debug, Clone, Default)]
pub struct News {
    pub friend_requests: Vec<FriendRequest>,
    /// Requests to join the groups it owns or administers.
    pub join_requests: Vec<JoinRequest>,
    pub invitations: Vec<Invitation>,
    /// Notices kept while it had no connection (answers to its join requests, removals),
    /// oldest first; each is handed to one login only.
    pub notices: Vec<(Notice, i64)>,
    /// Unread messages over all its chats.
    pub unread: u64,
}

impl Domain {
    /// Record that `me` has read a chat up to `index` (never lowered, never past its last
    /// message); returns how far it has read. `me`'s other connections are told, and so is the
    /// other side of a private chat.
    ///
    /// # Errors
    /// `NoSuchChat`, `NoSuchGroup`, `NotAMember`, `NoSuchAccount`, `Internal`.
    pub async fn mark_read(
        &self,
        me: Ocid,
        to: To,
        index: Index,
        origin: Option<Origin>,
    ) -> Result<Index, DomainError> {
        let Some(chat) = self.resolve(me, to, false).await? else {
            // A private chat that does not exist yet has nothing to read.
            if let To::Account(peer) = to {
                self.account(peer).await?;
            }
            return Ok(Index::ZERO);
        };
        let read = self
            .store
            .mark_read(me, chat.id, index)
            .await
            .map_err(|e| internal("read mark update failed", &e))?
            .ok_or(DomainError::NotAMember(chat.id))?;
        let mut audience = vec![me];
        // Across a block, the other side learns nothing.
        if !chat.blocked {
            audience.extend(chat.peer_of(me));
        }
        self.signal(
            Audience::Accounts(audience),
            origin,
            Notice::Read {
                chat: chat.id,
                reader: me,
                index: read,
                pair: match chat.members.as_slice() {
                    [a, b] if chat.kind == ChatKind::Private => Some((*a, *b)),
                    _ => None,
                },
            },
        );
        Ok(read)
    }

    /// `me`'s chats, the most recently active first, each with its newest message and unread
    /// count.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn chat_list(&self, me: Ocid) -> Result<Vec<ChatEntry>, DomainError> {
        let states = self
            .store
            .chat_states(me)
            .await
            .map_err(|e| internal("chat list read failed", &e))?;
        let groups = self.my_groups(me).await?;
        let mut entries = Vec::with_capacity(states.len());
        for state in states {
            let chat = self.chat(state.chat).await?;
            let name = groups
                .iter()
                .find(|g| g.id == state.chat)
                .map(|g| g.name.clone())
                .unwrap_or_default();
            entries.push(ChatEntry { chat, name, state });
        }
        entries.sort_by(|a, b| {
            b.active_at()
                .cmp(&a.active_at())
                .then(b.state.chat.cmp(&a.state.chat))
        });
        Ok(entries)
    }

    /// What waits for `me` at login. Kept notices are taken: the next login does not see them.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn news(&self, me: Ocid) -> Result<News, DomainError> {
        // Counted first, in one read: most logins have nothing waiting but unread messages.
        let counts = self
            .store
            .news_counts(me)
            .await
            .map_err(|e| internal("news read failed", &e))?;
        let mut news = News {
            unread: counts.unread,
            ..News::default()
        };
        if counts.friend_requests > 0 {
            news.friend_requests = self
                .store
                .friend_requests(me)
                .await
                .map_err(|e| internal("friend request read failed", &e))?;
        }
        if counts.join_requests > 0 {
            news.join_requests = self.requests_to_answer(me).await?;
        }
        if counts.invitations > 0 {
            news.invitations = self.invitations(me).await?;
        }
        if counts.notices > 0 {
            let kept = self
                .store
                .take_notices(me)
                .await
                .map_err(|e| internal("kept notices read failed", &e))?;
            news.notices = kept
                .iter()
                .filter_map(|k| crate::bus::kept_notice(k))
                .collect();
        }
        Ok(news)
    }
}
