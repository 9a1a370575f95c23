//! Friends, friend requests and typing: the domain's ephemeral notices.
//!
//! Friend requests and friendships are stored; the notices that announce them (and typing) are
//! not: they go to whichever connections are online when they happen, on every node, and a
//! client that was offline reads the stored state (its friends and pending requests) instead.

use super::{ChatInfo, Domain, To, internal, invalid, now_ms};
use crate::bus::Origin;
use crate::store::{Befriend, Friend, FriendRequest};
use natter_proto::{ChatId, ErrorCode, Ocid, WireError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Longest friend request text, in characters.
pub const MAX_REQUEST_TEXT: usize = 256;

/// How a friendship changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FriendChange {
    Accepted,
    Rejected,
    Removed,
}

/// An event for connections that are online now; never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// `from` asks the receiving account to be friends.
    FriendRequest { from: Ocid, message: String },
    /// The friendship (or request) between `a` and `b` changed; `by` made the change.
    Friendship {
        a: Ocid,
        b: Ocid,
        change: FriendChange,
        by: Ocid,
    },
    /// `from` is typing, in `group`, or to the receiving account when `group` is `None`.
    Typing { from: Ocid, group: Option<ChatId> },
}

/// Who a notice is for.
#[derive(Debug, Clone)]
pub enum Audience {
    /// Every connection of these accounts.
    Accounts(Vec<Ocid>),
    /// Every connection of every member of this chat.
    Chat(Arc<ChatInfo>),
}

/// A notice on its way to its audience (the origin connection is left out).
#[derive(Debug, Clone)]
pub struct Signal {
    pub audience: Audience,
    pub origin: Option<Origin>,
    pub notice: Notice,
    /// Unix milliseconds when it happened.
    pub at: i64,
}

/// An account's friends and the requests waiting for its answer.
#[derive(Debug, Clone)]
pub struct Contacts {
    pub friends: Vec<Friend>,
    pub requests: Vec<FriendRequest>,
}

fn not_self(me: Ocid, other: Ocid) -> Result<(), WireError> {
    if me == other {
        Err(invalid("that is your own account"))
    } else {
        Ok(())
    }
}

impl Domain {
    fn signal(&self, audience: Audience, origin: Option<Origin>, notice: Notice) {
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
    /// `invalid_field` (own account, text too long), `no_such_account`, `internal`.
    pub async fn request_friend(
        &self,
        me: Ocid,
        to: Ocid,
        message: &str,
        origin: Option<Origin>,
    ) -> Result<Befriend, WireError> {
        not_self(me, to)?;
        if message.chars().count() > MAX_REQUEST_TEXT {
            return Err(invalid(format!(
                "field `msg` must be at most {MAX_REQUEST_TEXT} characters"
            )));
        }
        self.account(to).await?;
        let outcome = self
            .store
            .request_friend(me, to, message, now_ms())
            .await
            .map_err(|e| internal("friend request failed", &e))?;
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
    /// `no_such_request`, `internal`.
    pub async fn answer_friend(
        &self,
        me: Ocid,
        from: Ocid,
        accept: bool,
        origin: Option<Origin>,
    ) -> Result<(), WireError> {
        let found = self
            .store
            .answer_friend_request(me, from, accept, now_ms())
            .await
            .map_err(|e| internal("friend answer failed", &e))?;
        if !found {
            return Err(WireError::new(
                ErrorCode::NoSuchRequest,
                format!("no friend request from {from} is waiting for your answer"),
            ));
        }
        let change = if accept {
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

    /// End `me`'s friendship with `other`.
    ///
    /// # Errors
    /// `not_friends`, `internal`.
    pub async fn remove_friend(
        &self,
        me: Ocid,
        other: Ocid,
        origin: Option<Origin>,
    ) -> Result<(), WireError> {
        let removed = self
            .store
            .remove_friend(me, other)
            .await
            .map_err(|e| internal("friend removal failed", &e))?;
        if !removed {
            return Err(WireError::new(
                ErrorCode::NotFriends,
                format!("{other} is not your friend"),
            ));
        }
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
    /// `internal`.
    pub async fn contacts(&self, me: Ocid) -> Result<Contacts, WireError> {
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

    /// Tell the other side of a chat that `me` is typing.
    ///
    /// # Errors
    /// `invalid_field` (own account), `no_such_account`, `no_such_chat`, `not_a_member`,
    /// `internal`.
    pub async fn typing(&self, me: Ocid, to: To, origin: Option<Origin>) -> Result<(), WireError> {
        let (audience, group) = match self.resolve(me, to, false).await? {
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
                (Audience::Accounts(vec![peer]), None)
            }
        };
        self.signal(audience, origin, Notice::Typing { from: me, group });
        Ok(())
    }
}
