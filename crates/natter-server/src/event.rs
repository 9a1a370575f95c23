//! What the domain announces and every node hands to its connections: stored messages on their
//! way to the members of a chat, and ephemeral notices (friend requests, friendship changes,
//! typing, group requests and answers, read receipts).
//!
//! These are the values the domain publishes on the bus and the hub fans out; they know no
//! dialect and no transport. A connection's dialect turns them into its own frames.

use crate::store::{ChatKind, Message};
use natter_proto::{ChatId, Index, MessageView, Ocid};
use std::sync::Arc;

/// Which connection sent a message: it gets the ack, not the message. `node` is the random
/// instance id of the sending node's hub, so connection ids need not be unique across nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub node: u64,
    pub conn: u64,
}

/// A chat as the delivery path needs it: kind and members (ascending).
#[derive(Debug)]
pub struct ChatInfo {
    pub id: ChatId,
    pub kind: ChatKind,
    pub members: Vec<Ocid>,
    /// A private chat whose members do not accept messages from each other (one blocks the
    /// other).
    pub blocked: bool,
    /// A private chat whose members are friends (read only while messages to strangers are
    /// limited; `true` otherwise).
    pub friends: bool,
    /// When this was read from the store (caches reload what is older than they trust).
    pub loaded: std::time::Instant,
}

impl ChatInfo {
    pub fn is_member(&self, ocid: Ocid) -> bool {
        self.members.binary_search(&ocid).is_ok()
    }

    /// For a private chat, the member that is not `ocid`.
    pub fn peer_of(&self, ocid: Ocid) -> Option<Ocid> {
        match self.kind {
            ChatKind::Private => self.members.iter().copied().find(|m| *m != ocid),
            ChatKind::Group => None,
        }
    }
}

/// A stored message on its way to every connection of every member: the unit the bus
/// carries and the hub fans out.
#[derive(Debug)]
pub struct Delivery {
    pub message: Message,
    pub chat: Arc<ChatInfo>,
    /// The connection that sent it (it gets an ack, not the message).
    pub origin: Option<Origin>,
}

/// The neutral view every dialect encodes a stored message from; `text` is the message's
/// text (see [`Message::text`]), borrowed by the caller.
pub fn view<'a>(m: &'a Message, chat: &ChatInfo, text: &'a str) -> MessageView<'a> {
    MessageView {
        id: m.id,
        chat: m.chat,
        index: m.index,
        at_ms: m.created_at,
        sender: m.sender,
        private_to: chat.peer_of(m.sender),
        kind: m.kind,
        text,
        file: m.parts.iter().find_map(|p| {
            natter_proto::view::FileKind::of(p.category.0).map(|kind| {
                natter_proto::view::FileView {
                    kind,
                    json: &p.content,
                }
            })
        }),
    }
}

/// How a friendship changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendChange {
    Accepted,
    Rejected,
    Removed,
}

impl FriendChange {
    /// The change in one word, as the dialects that name it write it.
    pub fn word(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Removed => "removed",
        }
    }
}

/// An event for connections that are online now; never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `from` asks to join group `chat` (for its owner and admins).
    JoinRequest {
        chat: ChatId,
        from: Ocid,
        message: String,
    },
    /// `by` answered `ocid`'s request to join `chat` (for the requester and the admins).
    JoinAnswer {
        chat: ChatId,
        ocid: Ocid,
        accepted: bool,
        by: Ocid,
    },
    /// `by` invites the receiving account to group `chat`.
    Invitation { chat: ChatId, by: Ocid },
    /// The receiving account is no longer in group `chat`: `by` removed it, or disbanded the
    /// group.
    Removed {
        chat: ChatId,
        by: Ocid,
        disbanded: bool,
    },
    /// `reader` has read `chat` up to `index` (for the reader's other devices and the other
    /// side of a private chat).
    Read {
        chat: ChatId,
        reader: Ocid,
        index: Index,
        /// A private chat's two members (dialects name a private chat by the other one).
        pair: Option<(Ocid, Ocid)>,
    },
    /// `from` offers the receiving account a file to fetch from `from` directly (seed 004's
    /// peer-to-peer `file` line): where to connect, the file's name and size, relayed as the
    /// sender wrote them.
    PeerFile {
        from: Ocid,
        host: String,
        port: String,
        name: String,
        size: String,
    },
    /// Logins of the receiving account ended (revoked, its password changed or reset, the
    /// account deleted): its connections check their login against the store, and those whose
    /// login ended close. For the hub, never shown to a client.
    LoggedOut,
    /// What nodes cache of these chats, or of the private chat of this pair, is stale (its
    /// members or a block changed). For the nodes, never for connections.
    Forget {
        chat: Option<ChatId>,
        pair: Option<(Ocid, Ocid)>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_of_private_chat() {
        let c = ChatInfo {
            id: ChatId(1),
            kind: ChatKind::Private,
            members: vec![Ocid(10001), Ocid(10002)],
            blocked: false,
            friends: true,
            loaded: std::time::Instant::now(),
        };
        assert_eq!(c.peer_of(Ocid(10001)), Some(Ocid(10002)));
        assert_eq!(c.peer_of(Ocid(10002)), Some(Ocid(10001)));
        assert!(c.is_member(Ocid(10002)) && !c.is_member(Ocid(10003)));
    }
}
