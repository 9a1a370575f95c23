//! OurChat v1 (`GET /ws`, docs/protocol/ourchat-v1.md): the request frames a client sends,
//! [`Frame`], a cheap reading of any server frame, and [`Client`] for the common exchanges.
//!
//! [`Frame`] borrows from the received text and skips every field it does not name, so a load
//! generator can read hundreds of thousands of frames a second beside the server it measures.
//! [`Client`] waits for a request's reply while skipping frames pushed in between (deliveries,
//! presence, ...): tools that must see every frame read [`Client::next_text`] themselves.

use super::{Obj, int_list, str_list};
use crate::ws::{Conn, Endpoint, Options, Utf8Bytes};
use crate::{Ack, Chat, Error, History, LoggedIn, Message, Page, Result, Target, decode};
use serde::Deserialize;
use std::borrow::Cow;

/// The endpoint path of v1.
pub const PATH: &str = "/ws";

/// The frame codes of v1.
pub mod code {
    pub const TEXT: i64 = 0;
    pub const REGISTER: i64 = 4;
    pub const REGISTER_REPLY: i64 = 5;
    pub const LOGIN: i64 = 6;
    pub const LOGIN_REPLY: i64 = 7;
    pub const NEW_GROUP: i64 = 8;
    pub const NEW_GROUP_REPLY: i64 = 9;
    pub const ACCOUNT_INFO: i64 = 10;
    pub const ACCOUNT_INFO_REPLY: i64 = 11;
    pub const ERROR: i64 = 100;
    pub const RESUME: i64 = 101;
    pub const RESUME_REPLY: i64 = 102;
    pub const ACK: i64 = 103;
    pub const HISTORY: i64 = 104;
    pub const HISTORY_REPLY: i64 = 105;
    pub const SYNC_DONE: i64 = 106;
    pub const HEARTBEAT: i64 = 107;
    pub const HEARTBEAT_REPLY: i64 = 108;
    pub const LOGOUT: i64 = 109;
    pub const LOGOUT_REPLY: i64 = 110;
    pub const FRIEND_REQUEST: i64 = 111;
    pub const SET_PROFILE: i64 = 124;
    pub const SET_PROFILE_REPLY: i64 = 125;
    pub const FRIEND_REQUEST_REPLY: i64 = 112;
    pub const FRIEND_ANSWER: i64 = 113;
    pub const FRIEND_ANSWER_REPLY: i64 = 114;
    pub const REMOVE_FRIEND: i64 = 115;
    pub const REMOVE_FRIEND_REPLY: i64 = 116;
    pub const FRIEND_LIST: i64 = 117;
    pub const FRIEND_LIST_REPLY: i64 = 118;
    pub const FRIEND_REQUEST_PUSH: i64 = 119;
    pub const FRIEND_UPDATE_PUSH: i64 = 120;
    pub const TYPING: i64 = 121;
    pub const TYPING_PUSH: i64 = 122;
    pub const PRESENCE_PUSH: i64 = 123;
}

/// How a login names the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account<'a> {
    /// By email address (`login_type` 0).
    Email(&'a str),
    /// By ocid (`login_type` 1).
    Ocid(u64),
}

// ---------------------------------------------------------------------------------------------
// Request frames.

/// `sender` of a text, or the chat of a history read or typing notice.
fn target_obj(target: Target) -> Obj {
    match target {
        Target::Private(ocid) => Obj::empty().int("private_id", ocid),
        Target::Group(id) => Obj::empty().int("group_id", id),
    }
}

/// Code 4: register an account.
pub fn register(email: &str, password: &str, name: &str) -> String {
    Obj::code(code::REGISTER)
        .str("email", email)
        .str("password", password)
        .str("name", name)
        .done()
}

/// Code 6: log in with a password, opting in to natter's extension frames (`ext`: acks, the
/// sync-done marker, pushes), which this client reads.
pub fn login(account: Account<'_>, password: &str) -> String {
    login_frame(account, password).int("ext", 1).done()
}

/// Code 6 as the seed writes it, without opting in: the server then sends only seed codes.
pub fn login_seed(account: Account<'_>, password: &str) -> String {
    login_frame(account, password).done()
}

fn login_frame(account: Account<'_>, password: &str) -> Obj {
    let frame = Obj::code(code::LOGIN);
    let frame = match account {
        Account::Email(email) => frame.int("login_type", 0).str("account", email),
        Account::Ocid(ocid) => frame.int("login_type", 1).str("account", &ocid.to_string()),
    };
    frame.str("password", password)
}

/// Code 101: resume a session by token.
pub fn resume(token: &str) -> String {
    Obj::code(code::RESUME).str("token", token).done()
}

/// Code 101 with `since`: resume, saying up to which index each chat is already held.
pub fn resume_since(token: &str, since: &[(Target, u64)]) -> String {
    let mut list = String::from("[");
    for (i, (target, index)) in since.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        let entry = match *target {
            Target::Group(g) => Obj::empty().int("group_id", g),
            Target::Private(o) => Obj::empty().int("private_id", o),
        };
        list.push_str(&entry.int("index", *index).done());
    }
    list.push(']');
    Obj::code(code::RESUME)
        .str("token", token)
        .raw("since", &list)
        .done()
}

/// Code 0: a text message.
pub fn text(target: Target, msg: &str) -> String {
    text_with_id(target, msg, None)
}

/// Code 0 with an idempotency key: a resend with the same `client_id` is stored once.
pub fn text_with_id(target: Target, msg: &str, client_id: Option<&str>) -> String {
    Obj::code(code::TEXT)
        .raw("sender", &target_obj(target).done())
        .str("msg", msg)
        .str_opt("client_id", client_id)
        .done()
}

/// Code 8: create a group of `members` (the sender is added as its owner).
pub fn new_group(members: &[u64], name: Option<&str>) -> String {
    Obj::code(code::NEW_GROUP)
        .raw("members", &int_list(members))
        .str_opt("name", name)
        .done()
}

/// Code 10: ask for values of an account (`ocid`, `nickname`, `status`, `avatar`, `time`,
/// `email`).
pub fn account_info(ocid: u64, values: &[&str]) -> String {
    Obj::code(code::ACCOUNT_INFO)
        .int("ocid", ocid)
        .raw("request_values", &str_list(values))
        .done()
}

/// Code 104: read a page of a chat's history.
pub fn history(target: Target, page: Page) -> String {
    let frame = match target {
        Target::Private(ocid) => Obj::code(code::HISTORY).int("private_id", ocid),
        Target::Group(id) => Obj::code(code::HISTORY).int("group_id", id),
    };
    frame
        .int_opt("before", page.before)
        .int_opt("after", page.after)
        .int_opt("limit", page.limit)
        .done()
}

/// Code 107: heartbeat.
pub fn heartbeat() -> String {
    Obj::code(code::HEARTBEAT).done()
}

/// Code 124 with `group_adds` alone: who may put the account into a group without asking
/// (`everyone`, `friends` or `nobody`).
pub fn set_group_adds(to: &str) -> String {
    Obj::code(code::SET_PROFILE).str("group_adds", to).done()
}

/// Code 109: log out (revokes this connection's token).
pub fn logout() -> String {
    Obj::code(code::LOGOUT).done()
}

/// Code 111: ask an account to be friends, with a note.
pub fn friend_request(ocid: u64, msg: Option<&str>) -> String {
    Obj::code(code::FRIEND_REQUEST)
        .int("ocid", ocid)
        .str_opt("msg", msg)
        .done()
}

/// Code 113: accept or reject an account's friend request.
pub fn friend_answer(ocid: u64, accept: bool) -> String {
    Obj::code(code::FRIEND_ANSWER)
        .int("ocid", ocid)
        .bool("accept", accept)
        .done()
}

/// Code 115: end a friendship.
pub fn remove_friend(ocid: u64) -> String {
    Obj::code(code::REMOVE_FRIEND).int("ocid", ocid).done()
}

/// Code 117: list friends and pending requests.
pub fn friend_list() -> String {
    Obj::code(code::FRIEND_LIST).done()
}

/// Code 121: tell a chat's other members that this account is typing.
pub fn typing(target: Target) -> String {
    let frame = match target {
        Target::Private(ocid) => Obj::code(code::TYPING).int("private_id", ocid),
        Target::Group(id) => Obj::code(code::TYPING).int("group_id", id),
    };
    frame.done()
}

// ---------------------------------------------------------------------------------------------
// Server frames.

/// The fields of a server frame that clients commonly read; everything else is skipped
/// unparsed. Strings borrow from the frame's text where they hold no escapes.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    pub code: i64,
    pub time: Option<i64>,
    /// The message id (codes 0 and 15).
    pub cid: Option<u64>,
    pub index: Option<u64>,
    pub state: Option<i64>,
    pub ocid: Option<u64>,
    pub count: Option<u64>,
    pub success: Option<bool>,
    pub group_id: Option<u64>,
    pub private_id: Option<u64>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub msg: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub token: Option<Cow<'a, str>>,
    /// The error name of a code 100 frame.
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub error: Option<Cow<'a, str>>,
    pub sender: Option<Sender>,
}

/// `sender` of a delivered message (or typing notice).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Sender {
    pub ocid: Option<u64>,
    pub group_id: Option<u64>,
    pub private_id: Option<u64>,
}

impl<'a> Frame<'a> {
    /// Decode a text frame.
    ///
    /// # Errors
    /// Not a JSON object with an integer `code`.
    pub fn parse(text: &'a str) -> Result<Self> {
        decode(text)
    }

    /// A delivered message (code 0) in the neutral view, as received by account `me` (which
    /// names the other party of a private chat); `None` if this is not a complete delivery.
    pub fn message(&self, me: u64) -> Option<Message> {
        if self.code != code::TEXT {
            return None;
        }
        let sender = self.sender?;
        let from = sender.ocid?;
        let chat = match (sender.group_id, sender.private_id) {
            (Some(g), None) => Chat::Group(g),
            (None, Some(to)) => Chat::Private(if from == me { to } else { from }),
            _ => return None,
        };
        Some(Message {
            chat,
            index: self.index?,
            id: self.cid?,
            sender: from,
            text: self.msg.as_deref()?.to_owned(),
            time: self.time?,
        })
    }

    /// The acknowledgement of a stored message (code 103); `None` if this is not one.
    pub fn ack(&self) -> Option<Ack> {
        if self.code != code::ACK {
            return None;
        }
        let chat = match (self.group_id, self.private_id) {
            (Some(g), None) => Chat::Group(g),
            (None, Some(p)) => Chat::Private(p),
            _ => return None,
        };
        Some(Ack {
            chat,
            id: self.cid?,
            index: self.index?,
        })
    }
}

/// An optional string that borrows from the frame when it holds no escapes (serde borrows a
/// bare `Cow<str>`, but always copies one inside an `Option`).
fn borrowed<'de: 'a, 'a, D>(d: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Str<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Str<'a>>::deserialize(d)?.map(|s| s.0))
}

/// A code 105 reply.
#[derive(Deserialize)]
struct HistoryReply<'a> {
    #[serde(borrow)]
    messages: Vec<Frame<'a>>,
    more: bool,
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A v1 connection with the common exchanges. Every call that waits for a reply skips frames
/// pushed meanwhile, and fails on an error reply (code 100).
pub struct Client {
    conn: Conn,
    /// The logged-in account (names the other party of private chats).
    me: Option<u64>,
}

impl Client {
    /// A client on an open connection to the v1 endpoint.
    pub fn new(conn: Conn) -> Self {
        Self { conn, me: None }
    }

    /// Connect to `endpoint` (which must be the v1 endpoint).
    ///
    /// # Errors
    /// See [`Endpoint::connect`].
    pub async fn connect(endpoint: &Endpoint, options: &Options) -> Result<Self> {
        Ok(Self::new(endpoint.connect(options).await?))
    }

    /// The connection, to send or read frames of one's own.
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// The account this client logged in as (by [`Client::login`] or [`Client::resume`]).
    pub fn ocid(&self) -> Option<u64> {
        self.me
    }

    /// Send a frame now.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send(&mut self, frame: impl Into<Utf8Bytes>) -> Result<()> {
        self.conn.send_text(frame).await
    }

    /// Queue a frame without flushing; see [`Client::flush`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn feed(&mut self, frame: impl Into<Utf8Bytes>) -> Result<()> {
        self.conn.feed_text(frame).await
    }

    /// Write out every queued frame.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn flush(&mut self) -> Result<()> {
        self.conn.flush().await
    }

    /// The next text frame, whatever it is.
    ///
    /// # Errors
    /// See [`Conn::next_text`].
    pub async fn next_text(&mut self) -> Result<Utf8Bytes> {
        self.conn.next_text().await
    }

    /// Close politely; see [`Conn::close`].
    pub async fn close(self) {
        self.conn.close().await;
    }

    /// Wait for the frame with code `reply`, skipping others; returns its text.
    ///
    /// # Errors
    /// An error frame (code 100) came first, or the connection failed.
    pub async fn reply(&mut self, reply: i64) -> Result<Utf8Bytes> {
        loop {
            let text = self.conn.next_text().await?;
            let code = Frame::parse(&text)?.code;
            if code == reply {
                return Ok(text);
            }
            if code == code::ERROR {
                return Err(Error::Server(text.as_str().to_owned()));
            }
        }
    }

    /// Register an account; returns its ocid. Registering does not log in.
    ///
    /// # Errors
    /// The server refused (for example, the email is taken) or the connection failed.
    pub async fn register(&mut self, email: &str, password: &str, name: &str) -> Result<u64> {
        self.send(register(email, password, name)).await?;
        let text = self.reply(code::REGISTER_REPLY).await?;
        let r = Frame::parse(&text)?;
        match (r.state, r.ocid) {
            (Some(0), Some(ocid)) => Ok(ocid),
            _ => Err(refused("register", &text)),
        }
    }

    /// Log in with a password and read the missed messages pushed before sync-done.
    ///
    /// # Errors
    /// The login was refused or the connection failed.
    pub async fn login(&mut self, account: Account<'_>, password: &str) -> Result<LoggedIn> {
        self.send_login(account, password).await?;
        let (ocid, token) = self.logged_in().await?;
        let missed = self.sync().await?;
        Ok(LoggedIn {
            ocid,
            token: Some(token),
            missed,
        })
    }

    /// Send a password login (code 6) without waiting for the reply.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_login(&mut self, account: Account<'_>, password: &str) -> Result<()> {
        self.send(login(account, password)).await
    }

    /// Wait for the login reply (code 7); returns the ocid and the token. The missed messages
    /// and sync-done follow.
    ///
    /// # Errors
    /// The login was refused or the connection failed.
    pub async fn logged_in(&mut self) -> Result<(u64, String)> {
        let text = self.reply(code::LOGIN_REPLY).await?;
        let r = Frame::parse(&text)?;
        match (r.state, r.ocid, r.token) {
            (Some(0), Some(ocid), Some(token)) => {
                self.me = Some(ocid);
                Ok((ocid, token.into_owned()))
            }
            _ => Err(refused("login", &text)),
        }
    }

    /// Resume by token and read the missed messages pushed before sync-done.
    ///
    /// # Errors
    /// The token was refused or the connection failed.
    pub async fn resume(&mut self, token: &str) -> Result<LoggedIn> {
        self.send_resume(token).await?;
        let ocid = self.resumed().await?;
        let missed = self.sync().await?;
        Ok(LoggedIn {
            ocid,
            token: None,
            missed,
        })
    }

    /// Send a resume (code 101) without waiting for the reply.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_resume(&mut self, token: &str) -> Result<()> {
        self.send(resume(token)).await
    }

    /// Wait for the resume reply (code 102); returns the account's ocid. The missed messages and
    /// sync-done follow.
    ///
    /// # Errors
    /// The token was refused or the connection failed.
    pub async fn resumed(&mut self) -> Result<u64> {
        let text = self.reply(code::RESUME_REPLY).await?;
        let r = Frame::parse(&text)?;
        match (r.state, r.ocid) {
            (Some(0), Some(ocid)) => {
                self.me = Some(ocid);
                Ok(ocid)
            }
            _ => Err(refused("resume", &text)),
        }
    }

    /// Read the messages pushed after a login or resume, up to sync-done (code 106).
    ///
    /// # Errors
    /// Sync-done's count differs from the messages pushed, or the connection failed.
    pub async fn sync(&mut self) -> Result<Vec<Message>> {
        let me = self.me.unwrap_or_default();
        let mut missed = Vec::new();
        loop {
            let text = self.conn.next_text().await?;
            let f = Frame::parse(&text)?;
            match f.code {
                code::TEXT => {
                    missed.push(f.message(me).ok_or_else(|| {
                        Error::Unexpected(format!("an incomplete message: {text}"))
                    })?)
                }
                code::SYNC_DONE => {
                    if f.count != Some(missed.len() as u64) {
                        return Err(Error::Unexpected(format!(
                            "sync-done after {} messages: {text}",
                            missed.len()
                        )));
                    }
                    return Ok(missed);
                }
                code::ERROR => return Err(Error::Server(text.as_str().to_owned())),
                _ => {}
            }
        }
    }

    /// Skip frames up to sync-done (code 106); returns its count.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn sync_done(&mut self) -> Result<u64> {
        let text = self.reply(code::SYNC_DONE).await?;
        Ok(Frame::parse(&text)?.count.unwrap_or(0))
    }

    /// Send a text and wait for its ack.
    ///
    /// # Errors
    /// The server refused the message or the connection failed.
    pub async fn send_text(&mut self, target: Target, msg: &str) -> Result<Ack> {
        self.send(text(target, msg)).await?;
        let reply = self.reply(code::ACK).await?;
        Frame::parse(&reply)?
            .ack()
            .ok_or_else(|| Error::Unexpected(format!("an incomplete ack: {reply}")))
    }

    /// The next delivered message, skipping other frames.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn next_message(&mut self) -> Result<Message> {
        let me = self.me.unwrap_or_default();
        loop {
            let text = self.conn.next_text().await?;
            let f = Frame::parse(&text)?;
            if f.code == code::TEXT {
                return f
                    .message(me)
                    .ok_or_else(|| Error::Unexpected(format!("an incomplete message: {text}")));
            }
        }
    }

    /// Say who may put this account into a group without asking (`everyone`, `friends` or
    /// `nobody`); the others' groups invite it.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn set_group_adds(&mut self, to: &str) -> Result<()> {
        self.send(set_group_adds(to)).await?;
        self.reply(code::SET_PROFILE_REPLY).await?;
        Ok(())
    }

    /// Create a group with these members (the caller is added as owner); returns its id.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn create_group(&mut self, members: &[u64], name: Option<&str>) -> Result<u64> {
        self.send(new_group(members, name)).await?;
        let text = self.reply(code::NEW_GROUP_REPLY).await?;
        let r = Frame::parse(&text)?;
        match (r.success, r.group_id) {
            (Some(true), Some(id)) => Ok(id),
            _ => Err(refused("group creation", &text)),
        }
    }

    /// Read a page of a chat's history.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn history(&mut self, target: Target, page: Page) -> Result<History> {
        self.send(history(target, page)).await?;
        let text = self.reply(code::HISTORY_REPLY).await?;
        let r: HistoryReply<'_> = decode(&text)?;
        let me = self.me.unwrap_or_default();
        let messages = r
            .messages
            .iter()
            .map(|f| f.message(me))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Unexpected(format!("an incomplete history entry: {text}")))?;
        Ok(History {
            messages,
            more: r.more,
        })
    }

    /// Heartbeat: answered even before login.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn heartbeat(&mut self) -> Result<()> {
        self.send(heartbeat()).await?;
        self.reply(code::HEARTBEAT_REPLY).await.map(drop)
    }

    /// Log out: the token is revoked and the connection is anonymous again.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn logout(&mut self) -> Result<()> {
        self.send(logout()).await?;
        self.reply(code::LOGOUT_REPLY).await?;
        self.me = None;
        Ok(())
    }
}

fn refused(what: &'static str, frame: &str) -> Error {
    Error::Refused {
        what,
        frame: frame.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn v(frame: &str) -> Value {
        serde_json::from_str(frame).expect("JSON")
    }

    #[test]
    fn requests_are_the_documented_frames() {
        assert_eq!(
            v(&register("a@b.c", "pw", "A")),
            json!({"code": 4, "email": "a@b.c", "password": "pw", "name": "A"})
        );
        assert_eq!(
            v(&login(Account::Email("a@b.c"), "pw")),
            json!({"code": 6, "login_type": 0, "account": "a@b.c", "password": "pw", "ext": 1})
        );
        assert_eq!(
            v(&login(Account::Ocid(10001), "pw")),
            json!({"code": 6, "login_type": 1, "account": "10001", "password": "pw", "ext": 1})
        );
        assert_eq!(
            v(&resume_since(
                "t",
                &[(Target::Group(2), 5), (Target::Private(10002), 3)]
            )),
            json!({"code": 101, "token": "t", "since": [{"group_id": 2, "index": 5}, {"private_id": 10002, "index": 3}]})
        );
        assert_eq!(
            v(&text_with_id(Target::Private(10002), "hi", Some("a-1"))),
            json!({"code": 0, "sender": {"private_id": 10002}, "msg": "hi", "client_id": "a-1"})
        );
        assert_eq!(
            v(&text(Target::Group(2), "hi")),
            json!({"code": 0, "sender": {"group_id": 2}, "msg": "hi"})
        );
        assert_eq!(
            v(&new_group(&[1, 2], Some("g"))),
            json!({"code": 8, "members": [1, 2], "name": "g"})
        );
        assert_eq!(
            v(&history(
                Target::Private(7),
                Page {
                    before: Some(3),
                    after: None,
                    limit: Some(2)
                }
            )),
            json!({"code": 104, "private_id": 7, "before": 3, "limit": 2})
        );
        assert_eq!(
            v(&account_info(7, &["ocid", "email"])),
            json!({"code": 10, "ocid": 7, "request_values": ["ocid", "email"]})
        );
        assert_eq!(
            v(&friend_answer(7, true)),
            json!({"code": 113, "ocid": 7, "accept": true})
        );
        assert_eq!(
            v(&typing(Target::Group(3))),
            json!({"code": 121, "group_id": 3})
        );
    }

    #[test]
    fn deliveries_read_as_neutral_messages() {
        let text = r#"{"code":0,"time":1718000200,"cid":4,"sender":{"ocid":10001,"private_id":10002},"msg":"hello bob","index":3}"#;
        let f = Frame::parse(text).expect("frame");
        assert!(matches!(f.msg, Some(Cow::Borrowed(_))), "borrowed text");
        let m = f.message(10002).expect("a message");
        assert_eq!(
            m,
            Message {
                chat: Chat::Private(10001),
                index: 3,
                id: 4,
                sender: 10001,
                text: "hello bob".into(),
                time: 1_718_000_200
            }
        );
        assert_eq!(
            f.message(10001).expect("own").chat,
            Chat::Private(10002),
            "the sender's other device sees the recipient as the other party"
        );
        let ack = Frame::parse(r#"{"cid":5,"code":103,"group_id":2,"index":1,"time":1}"#)
            .expect("ack")
            .ack();
        assert_eq!(
            ack,
            Some(Ack {
                chat: Chat::Group(2),
                id: 5,
                index: 1
            })
        );
        assert!(Frame::parse("[1]").is_err());
    }
}
