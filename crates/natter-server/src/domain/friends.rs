//! Friends, friend requests and typing: the domain's ephemeral notices.
//!
//! Friend requests and friendships are stored; the notices that announce them (and typing) are
//! not: they go to whichever connections are online when they happen, on every node, and a
//! client that was offline reads the stored state (its friends and pending requests) instead.

use super::error::internal;
use super::{Domain, DomainError, Invalid, To, now_ms};
use crate::event::{Audience, FriendChange, Notice, Origin, Signal};
use crate::store::{Befriend, Friend, FriendRequest};
use natter_proto::Ocid;
use std::sync::Arc;

/// Longest friend request text, in characters.
pub const MAX_REQUEST_TEXT: usize = 256;

/// An account's friends and the requests waiting for its answer.
#[derive(Debug, Clone)]
pub struct Contacts {
    pub friends: Vec<Friend>,
    pub requests: Vec<FriendRequest>,
}

fn not_self(me: Ocid, other: Ocid) -> Result<(), DomainError> {
    if me == other {
        Err(Invalid::OwnAccount.into())
    } else {
        Ok(())
    }
}

impl Domain {
    pub(super) fn signal(&self, audience: Audience, origin: Option<Origin>, notice: Notice) {
        self.bus.notify(Arc::new(Signal {
            audience,
            origin,
            notice,
            at: now_ms(),
        }));
    }

    /// Ask `to` to be `me`'s friend. If `to` had already asked `me`, they become friends.
    ///
    /// # Errors
    /// `Invalid` (own account, note too long), `NoSuchAccount`, `Blocking`, `Internal`.
    pub async fn request_friend(
        &self,
        me: Ocid,
        to: Ocid,
        message: &str,
        origin: Option<Origin>,
    ) -> Result<Befriend, DomainError> {
        not_self(me, to)?;
        if message.chars().count() > MAX_REQUEST_TEXT {
            return Err(Invalid::RequestNote {
                max: MAX_REQUEST_TEXT,
            }
            .into());
        }
        self.live_account(to).await?;
        if self.blocks(me, to).await? {
            return Err(DomainError::Blocking(to));
        }
        self.spend(&self.quotas.friend_requests, me, 1)?;
        // An account that blocks `me` never sees the request; `me` is answered as a stranger
        // would be.
        if self.blocks(to, me).await? {
            return Ok(Befriend::Requested);
        }
        let outcome = self
            .store
            .request_friend(me, to, message, now_ms())
            .await
            .map_err(|e| internal("friend request failed", &e))?;
        if outcome != Befriend::Requested {
            self.friendship_changed(me, to);
        }
        match outcome {
            Befriend::Requested => self.signal(
                Audience::Accounts(vec![to]),
                origin,
                Notice::FriendRequest {
                    from: me,
                    message: message.to_owned(),
                },
            ),
            Befriend::Accepted => self.signal(
                Audience::Accounts(vec![me, to]),
                origin,
                Notice::Friendship {
                    a: me,
                    b: to,
                    change: FriendChange::Accepted,
                    by: me,
                },
            ),
            Befriend::AlreadyFriends => {}
        }
        Ok(outcome)
    }

    /// Accept or reject the request `from` sent to `me`.
    ///
    /// # Errors
    /// `NoSuchRequest`, `Internal`.
    pub async fn answer_friend(
        &self,
        me: Ocid,
        from: Ocid,
        accept: bool,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        let found = self
            .store
            .answer_friend_request(me, from, accept, now_ms())
            .await
            .map_err(|e| internal("friend answer failed", &e))?;
        if !found {
            return Err(DomainError::NoSuchRequest(from));
        }
        let change = if accept {
            self.friendship_changed(me, from);
            FriendChange::Accepted
        } else {
            FriendChange::Rejected
        };
        self.signal(
            Audience::Accounts(vec![me, from]),
            origin,
            Notice::Friendship {
                a: me,
                b: from,
                change,
                by: me,
            },
        );
        Ok(())
    }

    /// Whether `a` and `b` are friends is cached with their private chat while messages to
    /// strangers are limited: drop it everywhere.
    fn friendship_changed(&self, a: Ocid, b: Ocid) {
        if self.quotas.stranger_messages.enabled() {
            self.changed(None, Some((a.min(b), a.max(b))));
        }
    }

    /// End `me`'s friendship with `other`.
    ///
    /// # Errors
    /// `NotFriends`, `Internal`.
    pub async fn remove_friend(
        &self,
        me: Ocid,
        other: Ocid,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        let removed = self
            .store
            .remove_friend(me, other)
            .await
            .map_err(|e| internal("friend removal failed", &e))?;
        if !removed {
            return Err(DomainError::NotFriends(other));
        }
        self.friendship_changed(me, other);
        self.signal(
            Audience::Accounts(vec![me, other]),
            origin,
            Notice::Friendship {
                a: me,
                b: other,
                change: FriendChange::Removed,
                by: me,
            },
        );
        Ok(())
    }

    /// `me`'s friends and the friend requests waiting for `me`'s answer.
    ///
    /// # Errors
    /// `Internal`.
    pub async fn contacts(&self, me: Ocid) -> Result<Contacts, DomainError> {
        let friends = self
            .store
            .friends(me)
            .await
            .map_err(|e| internal("friend list read failed", &e))?;
        let requests = self
            .store
            .friend_requests(me)
            .await
            .map_err(|e| internal("friend request read failed", &e))?;
        Ok(Contacts { friends, requests })
    }

    /// The ocids of `me`'s friends (whose presence `me`'s connections are told).
    ///
    /// # Errors
    /// `Internal`.
    pub async fn friend_ids(&self, me: Ocid) -> Result<Vec<Ocid>, DomainError> {
        let friends = self
            .store
            .friends(me)
            .await
            .map_err(|e| internal("friend list read failed", &e))?;
        Ok(friends.iter().map(|f| f.ocid).collect())
    }

    /// Tell the other side of a chat that `me` is typing.
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchAccount`, `NoSuchChat`, `NoSuchGroup`, `NotAMember`,
    /// `Internal`.
    pub async fn typing(
        &self,
        me: Ocid,
        to: To,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        let (audience, group) = match self.resolve(me, to, false).await? {
            // Between accounts that block each other, typing goes nowhere, and says so to no one.
            Some(chat) if chat.blocked => return Ok(()),
            Some(chat) => {
                let group = chat.peer_of(me).is_none().then_some(chat.id);
                (Audience::Chat(chat), group)
            }
            // No private chat yet: the peer is told all the same.
            None => {
                let To::Account(peer) = to else {
                    return Err(internal("chat missing after resolve", &"none"));
                };
                self.account(peer).await?;
                if self.blocks(peer, me).await? || self.blocks(me, peer).await? {
                    return Ok(());
                }
                (Audience::Accounts(vec![peer]), None)
            }
        };
        self.signal(audience, origin, Notice::Typing { from: me, group });
        Ok(())
    }

    /// Relay `from`'s offer of a file it serves itself (seed 004's peer-to-peer `file` line) to
    /// `to`'s connections; only an account online now can take it.
    ///
    /// # Errors
    /// `Invalid` (own account), `NoSuchAccount`, `Blocking`, `NotAccepted` (`to` blocks
    /// `from`), `Internal`.
    pub async fn offer_file(
        &self,
        to: Ocid,
        offer: Notice,
        origin: Option<Origin>,
    ) -> Result<(), DomainError> {
        let Notice::PeerFile { from, .. } = &offer else {
            return Err(internal("not a file offer", &"notice"));
        };
        let from = *from;
        not_self(from, to)?;
        self.live_account(to).await?;
        if self.blocks(from, to).await? {
            return Err(DomainError::Blocking(to));
        }
        if self.blocks(to, from).await? {
            return Err(DomainError::NotAccepted(to));
        }
        self.signal(Audience::Accounts(vec![to]), origin, offer);
        Ok(())
    }
}
