//! What nodes say to each other over NATS, as JSON: the cluster's own versioned message type.
//!
//! It is defined here, apart from the store's records and the domain's notices, so that a
//! change to either is not silently a change of what crosses the cluster: conversions to and
//! from those types are written out below. Every packet carries `v`, the version of this
//! format; a node drops (and logs) packets of a version it does not speak.
//!
//! ```text
//! {"v":1,"b":{"t":"m","origin":{"node":..,"conn":..},"message":{..}}}
//! ```

use crate::event::{FriendChange, Notice, Origin};
use crate::store::{Category, Message, Part};
use natter_proto::{ChatId, Index, MessageId, Ocid};
use serde::{Deserialize, Serialize};

/// The version of this format that this node writes and reads.
pub const VERSION: u32 = 1;

/// One packet on the cluster's subject.
#[derive(Debug, Serialize, Deserialize)]
pub struct Packet {
    pub v: u32,
    pub b: Body,
}

/// What a packet says. Besides stored messages and resync requests, nodes exchange presence:
/// each node says when an account gets its first connection there or loses its last (`p`),
/// says it is alive every quarter of the peer timeout (`a`), and answers a newcomer's hello
/// (`h`) with the full list of accounts it holds (`s`, in parts). Ephemeral notices (`n`)
/// name their audience by accounts or by chat.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t")]
pub enum Body {
    #[serde(rename = "m")]
    Message {
        origin: Option<WireOrigin>,
        message: WireMessage,
    },
    #[serde(rename = "r")]
    Resync,
    #[serde(rename = "n")]
    Notice {
        origin: Option<WireOrigin>,
        to: WireAudience,
        notice: WireNotice,
        at: i64,
    },
    #[serde(rename = "p")]
    Presence { node: u64, ocid: u64, online: bool },
    #[serde(rename = "a")]
    Alive { node: u64 },
    #[serde(rename = "h")]
    Hello { node: u64 },
    #[serde(rename = "s")]
    Snapshot {
        node: u64,
        part: u32,
        last: bool,
        accounts: Vec<u64>,
    },
}

impl Packet {
    pub fn new(b: Body) -> Self {
        Self { v: VERSION, b }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WireOrigin {
    pub node: u64,
    pub conn: u64,
}

impl From<Origin> for WireOrigin {
    fn from(o: Origin) -> Self {
        Self {
            node: o.node,
            conn: o.conn,
        }
    }
}

impl From<WireOrigin> for Origin {
    fn from(o: WireOrigin) -> Self {
        Self {
            node: o.node,
            conn: o.conn,
        }
    }
}

/// A stored message.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireMessage {
    pub id: u64,
    pub chat: u64,
    pub index: u64,
    pub sender: u64,
    pub kind: u8,
    pub parts: Vec<WirePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Unix milliseconds.
    pub at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WirePart {
    pub category: u8,
    pub content: String,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.0,
            chat: m.chat.0,
            index: m.index.0,
            sender: m.sender.0,
            kind: m.kind,
            parts: m
                .parts
                .iter()
                .map(|p| WirePart {
                    category: p.category.0,
                    content: p.content.clone(),
                })
                .collect(),
            client_id: m.client_id.clone(),
            at: m.created_at,
        }
    }
}

impl From<WireMessage> for Message {
    fn from(m: WireMessage) -> Self {
        Self {
            id: MessageId(m.id),
            chat: ChatId(m.chat),
            index: Index(m.index),
            sender: Ocid(m.sender),
            kind: m.kind,
            parts: m
                .parts
                .into_iter()
                .map(|p| Part {
                    category: Category(p.category),
                    content: p.content,
                })
                .collect(),
            client_id: m.client_id,
            created_at: m.at,
        }
    }
}

/// A notice's audience: a chat goes by id (receivers look its members up).
#[derive(Debug, Serialize, Deserialize)]
pub enum WireAudience {
    #[serde(rename = "a")]
    Accounts(Vec<u64>),
    #[serde(rename = "c")]
    Chat(u64),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum WireNotice {
    #[serde(rename = "friend_request")]
    FriendRequest { from: u64, message: String },
    #[serde(rename = "friendship")]
    Friendship {
        a: u64,
        b: u64,
        change: WireChange,
        by: u64,
    },
    #[serde(rename = "typing")]
    Typing { from: u64, group: Option<u64> },
    #[serde(rename = "join_request")]
    JoinRequest {
        chat: u64,
        from: u64,
        message: String,
    },
    #[serde(rename = "join_answer")]
    JoinAnswer {
        chat: u64,
        ocid: u64,
        accepted: bool,
        by: u64,
    },
    #[serde(rename = "invitation")]
    Invitation { chat: u64, by: u64 },
    #[serde(rename = "removed")]
    Removed { chat: u64, by: u64, disbanded: bool },
    #[serde(rename = "read")]
    Read {
        chat: u64,
        reader: u64,
        index: u64,
        pair: Option<(u64, u64)>,
    },
    #[serde(rename = "peer_file")]
    PeerFile {
        from: u64,
        host: String,
        port: String,
        name: String,
        size: String,
    },
    #[serde(rename = "logged_out")]
    LoggedOut,
    #[serde(rename = "forget")]
    Forget {
        chat: Option<u64>,
        pair: Option<(u64, u64)>,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum WireChange {
    #[serde(rename = "accepted")]
    Accepted,
    #[serde(rename = "rejected")]
    Rejected,
    #[serde(rename = "removed")]
    Removed,
}

impl From<&Notice> for WireNotice {
    fn from(n: &Notice) -> Self {
        match n {
            Notice::FriendRequest { from, message } => Self::FriendRequest {
                from: from.0,
                message: message.clone(),
            },
            Notice::Friendship { a, b, change, by } => Self::Friendship {
                a: a.0,
                b: b.0,
                change: match change {
                    FriendChange::Accepted => WireChange::Accepted,
                    FriendChange::Rejected => WireChange::Rejected,
                    FriendChange::Removed => WireChange::Removed,
                },
                by: by.0,
            },
            Notice::Typing { from, group } => Self::Typing {
                from: from.0,
                group: group.map(|g| g.0),
            },
            Notice::JoinRequest {
                chat,
                from,
                message,
            } => Self::JoinRequest {
                chat: chat.0,
                from: from.0,
                message: message.clone(),
            },
            Notice::JoinAnswer {
                chat,
                ocid,
                accepted,
                by,
            } => Self::JoinAnswer {
                chat: chat.0,
                ocid: ocid.0,
                accepted: *accepted,
                by: by.0,
            },
            Notice::Invitation { chat, by } => Self::Invitation {
                chat: chat.0,
                by: by.0,
            },
            Notice::Removed {
                chat,
                by,
                disbanded,
            } => Self::Removed {
                chat: chat.0,
                by: by.0,
                disbanded: *disbanded,
            },
            Notice::Read {
                chat,
                reader,
                index,
                pair,
            } => Self::Read {
                chat: chat.0,
                reader: reader.0,
                index: index.0,
                pair: pair.map(|(a, b)| (a.0, b.0)),
            },
            Notice::PeerFile {
                from,
                host,
                port,
                name,
                size,
            } => Self::PeerFile {
                from: from.0,
                host: host.clone(),
                port: port.clone(),
                name: name.clone(),
                size: size.clone(),
            },
            Notice::LoggedOut => Self::LoggedOut,
            Notice::Forget { chat, pair } => Self::Forget {
                chat: chat.map(|c| c.0),
                pair: pair.map(|(a, b)| (a.0, b.0)),
            },
        }
    }
}

impl From<WireNotice> for Notice {
    fn from(n: WireNotice) -> Self {
        match n {
            WireNotice::FriendRequest { from, message } => Self::FriendRequest {
                from: Ocid(from),
                message,
            },
            WireNotice::Friendship { a, b, change, by } => Self::Friendship {
                a: Ocid(a),
                b: Ocid(b),
                change: match change {
                    WireChange::Accepted => FriendChange::Accepted,
                    WireChange::Rejected => FriendChange::Rejected,
                    WireChange::Removed => FriendChange::Removed,
                },
                by: Ocid(by),
            },
            WireNotice::Typing { from, group } => Self::Typing {
                from: Ocid(from),
                group: group.map(ChatId),
            },
            WireNotice::JoinRequest {
                chat,
                from,
                message,
            } => Self::JoinRequest {
                chat: ChatId(chat),
                from: Ocid(from),
                message,
            },
            WireNotice::JoinAnswer {
                chat,
                ocid,
                accepted,
                by,
            } => Self::JoinAnswer {
                chat: ChatId(chat),
                ocid: Ocid(ocid),
                accepted,
                by: Ocid(by),
            },
            WireNotice::Invitation { chat, by } => Self::Invitation {
                chat: ChatId(chat),
                by: Ocid(by),
            },
            WireNotice::Removed {
                chat,
                by,
                disbanded,
            } => Self::Removed {
                chat: ChatId(chat),
                by: Ocid(by),
                disbanded,
            },
            WireNotice::Read {
                chat,
                reader,
                index,
                pair,
            } => Self::Read {
                chat: ChatId(chat),
                reader: Ocid(reader),
                index: Index(index),
                pair: pair.map(|(a, b)| (Ocid(a), Ocid(b))),
            },
            WireNotice::PeerFile {
                from,
                host,
                port,
                name,
                size,
            } => Self::PeerFile {
                from: Ocid(from),
                host,
                port,
                name,
                size,
            },
            WireNotice::LoggedOut => Self::LoggedOut,
            WireNotice::Forget { chat, pair } => Self::Forget {
                chat: chat.map(ChatId),
                pair: pair.map(|(a, b)| (Ocid(a), Ocid(b))),
            },
        }
    }
}

/// A notice as it is kept in the store for an account that was offline: the same form as on
/// the bus, so the two never drift apart.
#[derive(Serialize, Deserialize)]
struct Kept {
    v: u32,
    at: i64,
    n: WireNotice,
}

/// The stored form of a notice (from time `at`, ms) kept for an offline account.
pub fn keep(notice: &Notice, at: i64) -> String {
    serde_json::to_string(&Kept {
        v: VERSION,
        at,
        n: WireNotice::from(notice),
    })
    .unwrap_or_default()
}

/// A kept notice and its time read back; `None` for one this node cannot read.
pub fn kept(stored: &str) -> Option<(Notice, i64)> {
    let kept: Kept = serde_json::from_str(stored).ok()?;
    (kept.v == VERSION).then(|| (kept.n.into(), kept.at))
}

/// Decode a packet: `Ok(None)` for a version this node does not speak.
///
/// # Errors
/// The bytes are not a packet.
pub fn decode(payload: &[u8]) -> Result<Option<Body>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version = serde_json::from_slice(payload)?;
    if version.v != VERSION {
        return Ok(None);
    }
    serde_json::from_slice::<Packet>(payload).map(|p| Some(p.b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_crosses_the_cluster_unchanged() {
        let m = Message {
            id: MessageId(9),
            chat: ChatId(3),
            index: Index(2),
            sender: Ocid(10001),
            kind: 1,
            parts: vec![Part {
                category: Category(0),
                content: "hi \"there\"".into(),
            }],
            client_id: Some("c1".into()),
            created_at: 1_700_000_000_123,
        };
        let packet = Packet::new(Body::Message {
            origin: Some(WireOrigin { node: 7, conn: 8 }),
            message: WireMessage::from(&m),
        });
        let bytes = serde_json::to_vec(&packet).expect("json");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.starts_with(r#"{"v":1,"b":{"t":"m""#), "{text}");
        let Some(Body::Message { origin, message }) = decode(&bytes).expect("decodes") else {
            panic!("not a message: {text}");
        };
        assert_eq!(origin.map(|o| (o.node, o.conn)), Some((7, 8)));
        assert_eq!(Message::from(message), m);
    }

    #[test]
    fn a_kept_notice_reads_back() {
        let n = Notice::JoinAnswer {
            chat: ChatId(4),
            ocid: Ocid(10002),
            accepted: false,
            by: Ocid(10001),
        };
        assert_eq!(kept(&keep(&n, 5)), Some((n, 5)));
        assert_eq!(kept("{}"), None);
    }

    #[test]
    fn another_version_is_left_alone() {
        let other = br#"{"v":2,"b":{"t":"x","new":"shape"}}"#;
        assert!(decode(other).expect("a packet").is_none());
        assert!(decode(b"not json").is_err());
    }

    #[test]
    fn notices_round_trip() {
        for n in [
            Notice::FriendRequest {
                from: Ocid(1),
                message: "hello".into(),
            },
            Notice::Friendship {
                a: Ocid(1),
                b: Ocid(2),
                change: FriendChange::Removed,
                by: Ocid(2),
            },
            Notice::Typing {
                from: Ocid(1),
                group: Some(ChatId(4)),
            },
            Notice::PeerFile {
                from: Ocid(1),
                host: "192.0.2.7".into(),
                port: "9000".into(),
                name: "a|b.txt".into(),
                size: "12".into(),
            },
        ] {
            let bytes = serde_json::to_vec(&WireNotice::from(&n)).expect("json");
            let back: WireNotice = serde_json::from_slice(&bytes).expect("decodes");
            assert_eq!(Notice::from(back), n);
        }
    }
}
