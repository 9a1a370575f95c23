//! The push channel of the REST dialect (`GET /api/push`), a connection on the generic loop:
//! `"start"` logs it in with the session cookie's login and sends what it has not acknowledged
//! and the friend and join requests waiting for it, `"restart"` logs it in again (every message not yet
//! acknowledged is sent again), `""` is a heartbeat, `{chatId, content: "ok"}`
//! acknowledges a chat's messages (deliveries are marked on acknowledgement), and a list of
//! messages sends them, each confirmed with the acknowledgement shape. Notices (requests,
//! friendship and group changes, typing, presence, read receipts) are pushed as message items
//! of the seed's types without an `index` ([`notice_of`]).
//!
//! Every packet carries the client's `pushId` (the id of its login), so a message is encoded
//! for each receiving connection. Never logs the session token it holds.

use super::{Failure, compose, failure};
use crate::conn::{Conn, Credentials, Since};
use crate::dialect::{Decoded, Dialect, Event, Marks, Refusal};
use crate::domain::{DomainError, Sent};
use crate::event::{Notice, view};
use crate::hub::Slot;
use bytes::Bytes;
use natter_proto::rest::{self, BadPacket, Packet, kind, status};
use natter_proto::{ChatId, Index, MessageView, Ocid};
use serde_json::{Value, json};

/// Most messages in one packet of the catch-up after `start`.
const CATCH_UP_BATCH: usize = 100;

/// The push dialect for one connection: the login its cookie named, and that login's push id.
pub struct Push {
    /// The session token of the cookie the upgrade request carried.
    token: String,
    push_id: String,
}

impl Push {
    pub fn new(token: String, push_id: String) -> Self {
        Self { token, push_id }
    }

    fn packet(&self, status: i64, message: Value) -> Bytes {
        Bytes::from(rest::push(status, &self.push_id, message))
    }

    fn failed(&self, f: &Failure) -> Bytes {
        self.packet(f.status, json!(f.message))
    }

    /// `start` or `restart`: log in (again) with the cookie's login; the reply, then every
    /// message the login has not acknowledged, in packets of at most [`CATCH_UP_BATCH`].
    async fn start(&self, c: &mut Conn<Self>, word: &str, out: &mut Vec<Bytes>) {
        let credentials = Credentials::Token(self.token.clone(), Since::Chats(Vec::new()));
        match c.authenticate(credentials).await {
            Ok(auth) => {
                out.push(self.packet(status::SUCCESS, json!(word)));
                for batch in auth.missed.chunks(CATCH_UP_BATCH) {
                    let items: Vec<Value> = batch
                        .iter()
                        .map(|(m, chat)| {
                            let text = m.text();
                            rest::message_item(&view(m, chat, &text))
                        })
                        .collect();
                    out.push(self.packet(status::SUCCESS, Value::Array(items)));
                }
                // Friend requests waiting for an answer, however long the channel was closed.
                // Not fatal when the read fails: they are pushed at the next start.
                if let Ok(contacts) = c.domain().contacts(auth.ocid).await {
                    let items: Vec<Value> = contacts
                        .requests
                        .iter()
                        .filter(|r| r.to == auth.ocid)
                        .map(|r| request_item(r.from, r.to, &r.message, r.created_at))
                        .collect();
                    if !items.is_empty() {
                        out.push(self.packet(status::SUCCESS, Value::Array(items)));
                    }
                }
                // Requests to join the groups the account administers, likewise.
                if let Ok(requests) = c.domain().requests_to_answer(auth.ocid).await {
                    let items: Vec<Value> = requests
                        .iter()
                        .map(|r| join_request_item(r.chat, r.ocid, &r.message, r.created_at))
                        .collect();
                    if !items.is_empty() {
                        out.push(self.packet(status::SUCCESS, Value::Array(items)));
                    }
                }
            }
            Err(e) => out.push(self.failed(&failure(&e))),
        }
    }
}

/// What confirming a client's message needs: where the client said it goes.
pub struct AckTo {
    from: Ocid,
    to: Option<u64>,
    chat: Option<u64>,
}

impl Dialect for Push {
    type Request = Packet;
    type Ack = AckTo;
    type State = ();

    fn slot(&self) -> Slot {
        Slot::PER_RECEIVER
    }

    fn marks(&self) -> Marks {
        Marks::OnAck
    }

    fn decode(&self, frame: &[u8]) -> Result<Decoded<Packet>, Bytes> {
        let packet = rest::packet(frame)
            .map_err(|BadPacket(why)| self.packet(status::FAILURE, json!(why)))?;
        let needs_login = matches!(packet, Packet::Ack { .. } | Packet::Messages(_));
        let pipelined = matches!(packet, Packet::Messages(_));
        Ok(Decoded {
            request: packet,
            needs_login,
            pipelined,
        })
    }

    async fn handle(&self, c: &mut Conn<Self>, packet: Packet, out: &mut Vec<Bytes>) {
        match packet {
            Packet::Start => Box::pin(self.start(c, "start", out)).await,
            Packet::Restart => Box::pin(self.start(c, "restart", out)).await,
            Packet::Heartbeat => out.push(self.packet(status::SUCCESS, json!(""))),
            Packet::Ack { chat, index } => {
                c.acked(ChatId(chat), Index(index.unwrap_or(u64::MAX)));
            }
            Packet::Messages(items) => {
                let me = c.me().unwrap_or_default();
                for item in items {
                    let ack = AckTo {
                        from: me,
                        to: item.to,
                        chat: item.chat,
                    };
                    match compose(&item) {
                        Err(f) => {
                            c.drain_sends(out).await;
                            let body = rest::ack(me.0, item.to, item.chat, &f.message);
                            out.push(self.packet(f.status, Value::Object(body)));
                        }
                        Ok(m) => match m.file {
                            Some(file) => {
                                c.send_file(m.to, &file, m.text, m.client_id, ack, out)
                                    .await;
                            }
                            None => {
                                c.send(m.to, m.kind, m.text, m.client_id, ack, out).await;
                            }
                        },
                    }
                }
            }
        }
    }

    fn refuse(&self, _request: &Packet, why: Refusal) -> Bytes {
        self.refuse_frame(None, why)
    }

    fn refuse_frame(&self, _frame: Option<&[u8]>, why: Refusal) -> Bytes {
        let why = match why {
            Refusal::NotLoggedIn => "send \"start\" first".to_owned(),
            Refusal::RateLimited => "too many packets; slow down".to_owned(),
            Refusal::FrameTooLarge { max } => format!("a packet may be at most {max} bytes"),
            Refusal::BinaryFrame => "packets are JSON text frames".to_owned(),
        };
        self.packet(status::FAILURE, json!(why))
    }

    fn message(&self, view: &MessageView<'_>) -> Bytes {
        self.packet(status::SUCCESS, json!([rest::message_item(view)]))
    }

    fn ack(&self, ack: AckTo, result: Result<&Sent, &DomainError>) -> Option<Bytes> {
        Some(match result {
            Ok(sent) => {
                let mut body = rest::ack(ack.from.0, ack.to, Some(sent.chat.0), "ok");
                body.insert("index".into(), json!(sent.index.0));
                body.insert("msgId".into(), json!(rest::id(sent.id.0)));
                self.packet(status::SUCCESS, Value::Object(body))
            }
            Err(e) => {
                let f = failure(e);
                let body = rest::ack(ack.from.0, ack.to, ack.chat, &f.message);
                self.packet(f.status, Value::Object(body))
            }
        })
    }

    fn event(&self, _state: &(), me: Ocid, event: Event<'_>) -> Option<Bytes> {
        let item = match event {
            Event::Presence { ocid, online } => {
                let content =
                    json!({"event": "presence", "userId": rest::id(ocid.0), "online": online});
                notice(
                    None,
                    ocid,
                    me.0,
                    kind::NOTICE,
                    &content,
                    crate::domain::now_ms(),
                )
            }
            Event::Notice { notice: n, at_ms } => notice_of(n, me, at_ms)?,
        };
        Some(self.packet(status::SUCCESS, json!([item])))
    }
}

/// A notice for account `me` as a message item (see `docs/protocol/rest.md`, "Notices"):
/// requests are type 2 (request) with the note as text; changes of a friendship or of a group
/// membership are type 0 (system); typing and read receipts are type 4 (notice); the last two
/// kinds carry a JSON object as their text.
fn notice_of(n: &Notice, me: Ocid, at_ms: i64) -> Option<Value> {
    let uid = |o: &Ocid| rest::id(o.0);
    Some(match n {
        // A friend request is a message of type 2 (request) from the asking account.
        Notice::FriendRequest { from, message } => request_item(*from, me, message, at_ms),
        Notice::Friendship { a, b, change, by } => {
            let other = if *a == me { *b } else { *a };
            let state = change.word();
            let content =
                json!({"event": "friend", "state": state, "userId": uid(&other), "by": uid(by)});
            notice(None, *by, me.0, kind::SYSTEM, &content, at_ms)
        }
        // An account is not told of its own typing (on its other devices).
        Notice::Typing { from, .. } if *from == me => return None,
        Notice::Typing { from, group } => {
            let content = json!({"event": "typing", "userId": uid(from)});
            let to = group.map_or(me.0, |g| g.0);
            notice(group.map(|g| g.0), *from, to, kind::NOTICE, &content, at_ms)
        }
        Notice::Read {
            chat,
            reader,
            index,
            pair,
        } => {
            // A private chat's other member (whose messages were read); a group itself.
            let to = match pair {
                Some((a, b)) => {
                    if a == reader {
                        b.0
                    } else {
                        a.0
                    }
                }
                None => chat.0,
            };
            let content = json!({"event": "read", "userId": uid(reader), "index": index.0});
            notice(Some(chat.0), *reader, to, kind::NOTICE, &content, at_ms)
        }
        Notice::JoinRequest {
            chat,
            from,
            message,
        } => join_request_item(*chat, *from, message, at_ms),
        Notice::JoinAnswer {
            chat,
            ocid,
            accepted,
            by,
        } => {
            let state = if *accepted { "accepted" } else { "rejected" };
            let content =
                json!({"event": "join", "state": state, "userId": uid(ocid), "by": uid(by)});
            notice(Some(chat.0), *by, chat.0, kind::SYSTEM, &content, at_ms)
        }
        Notice::Invitation { chat, by } => {
            let content = json!({"event": "invited", "by": uid(by)});
            notice(Some(chat.0), *by, me.0, kind::SYSTEM, &content, at_ms)
        }
        Notice::Removed {
            chat,
            by,
            disbanded,
        } => {
            let event = if *disbanded { "disbanded" } else { "removed" };
            let content = json!({"event": event, "by": uid(by)});
            notice(Some(chat.0), *by, me.0, kind::SYSTEM, &content, at_ms)
        }
        Notice::PeerFile { .. } | Notice::LoggedOut | Notice::Forget { .. } => return None,
    })
}

/// A notice item whose text is the JSON object `content`.
fn notice(chat: Option<u64>, from: Ocid, to: u64, kind: u8, content: &Value, at_ms: i64) -> Value {
    rest::notice_item(chat, from.0, to, kind, &content.to_string(), at_ms)
}

/// A friend request from `from` to `to` as a message item of type 2 (request), its note as
/// the text.
fn request_item(from: Ocid, to: Ocid, note: &str, at_ms: i64) -> Value {
    rest::notice_item(None, from.0, to.0, kind::REQUEST, note, at_ms)
}

/// A request from `from` to join group `chat` (for its admins) as a message item of type 2
/// (request) in the group, its note as the text.
pub(super) fn join_request_item(chat: ChatId, from: Ocid, note: &str, at_ms: i64) -> Value {
    rest::notice_item(Some(chat.0), from.0, chat.0, kind::REQUEST, note, at_ms)
}
