//! OurChat draft v0 (`GET /ws/v0`, docs/protocol/ourchat-v0.md): the request frames a client
//! sends, [`Frame`], a reading of any server frame, and [`Client`] for the common exchanges.
//!
//! Every v0 frame keeps its fields in `data`; ocids travel as digit strings; missed messages
//! (code 8) and history (code 105) carry whole code 0 frames serialized into JSON strings. v0
//! names chats by id only (a group's id is its v1 `group_id`; a private chat's id is learned
//! from an ack or a message), so its messages come out as [`Chat::Id`].

use super::Obj;
use crate::ws::{Conn, Endpoint, Options, Utf8Bytes};
use crate::{Ack, Chat, Error, History, LoggedIn, Message, Page, Result, decode};
use serde::Deserialize;

/// The endpoint path of v0.
pub const PATH: &str = "/ws/v0";

/// The frame codes of v0.
pub mod code {
    pub const TEXT: i64 = 0;
    pub const REGISTER: i64 = 4;
    pub const REGISTER_REPLY: i64 = 5;
    pub const LOGIN: i64 = 6;
    pub const LOGIN_REPLY: i64 = 7;
    pub const UNDELIVERED: i64 = 8;
    pub const ERROR: i64 = 100;
    pub const RESUME: i64 = 101;
    pub const RESUME_REPLY: i64 = 102;
    pub const ACK: i64 = 103;
    pub const HISTORY: i64 = 104;
    pub const HISTORY_REPLY: i64 = 105;
    pub const HEARTBEAT: i64 = 107;
    pub const HEARTBEAT_REPLY: i64 = 108;
    pub const LOGOUT: i64 = 109;
    pub const LOGOUT_REPLY: i64 = 110;
}

/// Where a v0 text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// An existing chat by id (`data.cid`): a group, or a private chat whose id is known.
    Chat(u64),
    /// The private chat with this account (`data.to`, an extension): created by the first
    /// message, reused after.
    To(u64),
}

impl From<crate::Target> for Target {
    /// A group is addressed by its id; a private chat by the other account.
    fn from(t: crate::Target) -> Self {
        match t {
            crate::Target::Group(g) => Self::Chat(g),
            crate::Target::Private(ocid) => Self::To(ocid),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request frames.

fn with_data(code: i64, data: Obj) -> String {
    Obj::code(code).raw("data", &data.done()).done()
}

/// Code 4: register an account by mail (its nickname is the mail's local part).
pub fn register(mail: &str, password: &str) -> String {
    with_data(
        code::REGISTER,
        Obj::empty().str("mail", mail).str("password", password),
    )
}

/// Code 6: log in by ocid (sent as a digit string, as the draft defines), opting in to
/// natter's extension frames (`ext`), which this client reads.
pub fn login(ocid: u64, password: &str) -> String {
    with_data(
        code::LOGIN,
        Obj::empty()
            .str("ocId", &ocid.to_string())
            .str("password", password)
            .int("ext", 1),
    )
}

/// Code 101: resume a session by token (v1 tokens work too).
pub fn resume(token: &str) -> String {
    with_data(code::RESUME, Obj::empty().str("token", token))
}

/// Code 101 with `since`: resume, saying up to which index each chat (by id) is already held.
pub fn resume_since(token: &str, since: &[(u64, u64)]) -> String {
    let held = since.iter().fold(Obj::empty(), |o, (chat, index)| {
        o.int(&chat.to_string(), *index)
    });
    with_data(
        code::RESUME,
        Obj::empty().str("token", token).raw("since", &held.done()),
    )
}

/// Code 0: a text message.
pub fn text(target: Target, msg: &str) -> String {
    text_with_id(target, msg, None)
}

/// Code 0 with an idempotency key: a resend with the same `client_id` is stored once.
pub fn text_with_id(target: Target, msg: &str, client_id: Option<&str>) -> String {
    let data = match target {
        Target::Chat(cid) => Obj::empty().int("cid", cid),
        Target::To(ocid) => Obj::empty().int("to", ocid),
    };
    with_data(
        code::TEXT,
        data.str("msg", msg).str_opt("client_id", client_id),
    )
}

/// Code 104: read a page of a chat's history.
pub fn history(chat: u64, page: Page) -> String {
    with_data(
        code::HISTORY,
        Obj::empty()
            .int("cid", chat)
            .int_opt("before", page.before)
            .int_opt("after", page.after)
            .int_opt("limit", page.limit),
    )
}

/// Code 107: heartbeat (no `data`).
pub fn heartbeat() -> String {
    Obj::code(code::HEARTBEAT).done()
}

/// Code 109: log out (no `data`).
pub fn logout() -> String {
    Obj::code(code::LOGOUT).done()
}

// ---------------------------------------------------------------------------------------------
// Server frames.

/// A server frame's fields that clients commonly read; everything else is skipped.
#[derive(Debug, Deserialize)]
pub struct Frame {
    pub code: i64,
    pub time: Option<i64>,
    pub data: Option<Data>,
}

/// `data` of a server frame.
#[derive(Debug, Default, Deserialize)]
pub struct Data {
    pub state: Option<i64>,
    #[serde(rename = "ocId")]
    pub oc_id: Option<Id>,
    pub token: Option<String>,
    /// The chat id.
    pub cid: Option<u64>,
    /// The message id.
    pub mid: Option<u64>,
    pub index: Option<u64>,
    pub sender_id: Option<Id>,
    /// A text (code 0), or serialized code 0 frames (codes 8 and 17).
    pub msg: Option<Msg>,
    pub more: Option<bool>,
    /// The error name of a code 100 frame.
    pub error: Option<String>,
}

/// An ocid as v0 sends it: a digit string (or, leniently, an integer).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Id {
    Int(u64),
    Str(String),
}

impl Id {
    /// The number, if it is one.
    pub fn get(&self) -> Option<u64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Str(s) => s.parse().ok(),
        }
    }
}

/// `data.msg`: a text, or a list of serialized frames.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Msg {
    Text(String),
    Frames(Vec<String>),
}

impl Frame {
    /// Decode a text frame.
    ///
    /// # Errors
    /// Not a JSON object with an integer `code`.
    pub fn parse(text: &str) -> Result<Self> {
        decode(text)
    }

    fn data(&self) -> Option<&Data> {
        self.data.as_ref()
    }

    /// A delivered message (code 0) in the neutral view; `None` if this is not a complete one.
    pub fn message(&self) -> Option<Message> {
        if self.code != code::TEXT {
            return None;
        }
        let d = self.data()?;
        let Some(Msg::Text(text)) = &d.msg else {
            return None;
        };
        Some(Message {
            chat: Chat::Id(d.cid?),
            index: d.index?,
            id: d.mid?,
            sender: d.sender_id.as_ref()?.get()?,
            text: text.clone(),
            time: self.time?,
        })
    }

    /// The acknowledgement of a stored message (code 103); `None` if this is not one.
    pub fn ack(&self) -> Option<Ack> {
        if self.code != code::ACK {
            return None;
        }
        let d = self.data()?;
        Some(Ack {
            chat: Chat::Id(d.cid?),
            id: d.mid?,
            index: d.index?,
        })
    }

    /// The messages serialized in a code 8 or code 105 frame, parsed; `None` if an entry is not
    /// a complete code 0 frame.
    pub fn messages(&self) -> Option<Vec<Message>> {
        match &self.data()?.msg {
            Some(Msg::Frames(entries)) => entries
                .iter()
                .map(|e| Frame::parse(e).ok()?.message())
                .collect(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A v0 connection with the common exchanges. Every call that waits for a reply skips frames
/// pushed meanwhile, and fails on an error reply (code 100).
pub struct Client {
    conn: Conn,
}

impl Client {
    /// A client on an open connection to the v0 endpoint.
    pub fn new(conn: Conn) -> Self {
        Self { conn }
    }

    /// Connect to `endpoint` (which must be the v0 endpoint).
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

    /// Send a frame now.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send(&mut self, frame: impl Into<Utf8Bytes>) -> Result<()> {
        self.conn.send_text(frame).await
    }

    /// Close politely; see [`Conn::close`].
    pub async fn close(self) {
        self.conn.close().await;
    }

    /// Wait for the frame with code `reply`, skipping others; returns it.
    ///
    /// # Errors
    /// An error frame (code 100) came first, or the connection failed.
    pub async fn reply(&mut self, reply: i64) -> Result<(Utf8Bytes, Frame)> {
        loop {
            let text = self.conn.next_text().await?;
            let f = Frame::parse(&text)?;
            if f.code == reply {
                return Ok((text, f));
            }
            if f.code == code::ERROR {
                return Err(Error::Server(text.as_str().to_owned()));
            }
        }
    }

    /// Register an account by mail; returns its ocid. Registering does not log in.
    ///
    /// # Errors
    /// The server refused (for example, the mail is taken) or the connection failed.
    pub async fn register(&mut self, mail: &str, password: &str) -> Result<u64> {
        self.send(register(mail, password)).await?;
        let (text, f) = self.reply(code::REGISTER_REPLY).await?;
        let d = f.data.unwrap_or_default();
        match (d.state, d.oc_id.and_then(|o| o.get())) {
            (Some(0), Some(ocid)) => Ok(ocid),
            _ => Err(refused("register", &text)),
        }
    }

    /// Log in by ocid and read the undelivered messages (every code 8 frame).
    ///
    /// # Errors
    /// The login was refused or the connection failed.
    pub async fn login(&mut self, ocid: u64, password: &str) -> Result<LoggedIn> {
        self.send(login(ocid, password)).await?;
        let (text, f) = self.reply(code::LOGIN_REPLY).await?;
        let d = f.data.unwrap_or_default();
        let (ocid, token) = match (d.state, d.oc_id.and_then(|o| o.get()), d.token) {
            (Some(0), Some(ocid), Some(token)) => (ocid, token),
            _ => return Err(refused("login", &text)),
        };
        let missed = self.undelivered().await?;
        Ok(LoggedIn {
            ocid,
            token: Some(token),
            missed,
        })
    }

    /// Resume by token and read the undelivered messages.
    ///
    /// # Errors
    /// The token was refused or the connection failed.
    pub async fn resume(&mut self, token: &str) -> Result<LoggedIn> {
        self.resume_with(&resume(token)).await
    }

    /// Resume by token, saying what is held (see [`resume_since`]).
    ///
    /// # Errors
    /// The token was refused or the connection failed.
    pub async fn resume_since(&mut self, token: &str, since: &[(u64, u64)]) -> Result<LoggedIn> {
        self.resume_with(&resume_since(token, since)).await
    }

    async fn resume_with(&mut self, frame: &str) -> Result<LoggedIn> {
        self.send(frame.to_owned()).await?;
        let (text, f) = self.reply(code::RESUME_REPLY).await?;
        let d = f.data.unwrap_or_default();
        let ocid = match (d.state, d.oc_id.and_then(|o| o.get())) {
            (Some(0), Some(ocid)) => ocid,
            _ => return Err(refused("resume", &text)),
        };
        let missed = self.undelivered().await?;
        Ok(LoggedIn {
            ocid,
            token: None,
            missed,
        })
    }

    /// Read code 8 frames up to the one with `more: false`; returns their messages in order.
    ///
    /// # Errors
    /// An entry is not a message, or the connection failed.
    pub async fn undelivered(&mut self) -> Result<Vec<Message>> {
        let mut missed = Vec::new();
        loop {
            let (text, f) = self.reply(code::UNDELIVERED).await?;
            let batch = f
                .messages()
                .ok_or_else(|| Error::Unexpected(format!("a malformed code 8: {text}")))?;
            missed.extend(batch);
            if f.data().and_then(|d| d.more) != Some(true) {
                return Ok(missed);
            }
        }
    }

    /// Send a text and wait for its ack (whose chat is the chat's id).
    ///
    /// # Errors
    /// The server refused the message or the connection failed.
    pub async fn send_text(&mut self, target: Target, msg: &str) -> Result<Ack> {
        self.send(text(target, msg)).await?;
        let (text, f) = self.reply(code::ACK).await?;
        f.ack()
            .ok_or_else(|| Error::Unexpected(format!("an incomplete ack: {text}")))
    }

    /// The next delivered message, skipping other frames.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn next_message(&mut self) -> Result<Message> {
        loop {
            let text = self.conn.next_text().await?;
            let f = Frame::parse(&text)?;
            if f.code == code::TEXT {
                return f
                    .message()
                    .ok_or_else(|| Error::Unexpected(format!("an incomplete message: {text}")));
            }
        }
    }

    /// Read a page of a chat's history.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn history(&mut self, chat: u64, page: Page) -> Result<History> {
        self.send(history(chat, page)).await?;
        let (text, f) = self.reply(code::HISTORY_REPLY).await?;
        let malformed = || Error::Unexpected(format!("a malformed history reply: {text}"));
        let messages = f.messages().ok_or_else(malformed)?;
        let more = f.data().and_then(|d| d.more).ok_or_else(malformed)?;
        Ok(History { messages, more })
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
        self.reply(code::LOGOUT_REPLY).await.map(drop)
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
            v(&register("c@d.e", "pw")),
            json!({"code": 4, "data": {"mail": "c@d.e", "password": "pw"}})
        );
        assert_eq!(
            v(&login(10003, "pw")),
            json!({"code": 6, "data": {"ocId": "10003", "password": "pw", "ext": 1}})
        );
        assert_eq!(
            v(&resume_since("t", &[(7, 40), (2, 1)])),
            json!({"code": 101, "data": {"token": "t", "since": {"7": 40, "2": 1}}})
        );
        assert_eq!(
            v(&text_with_id(Target::Chat(2), "hi", Some("c-1"))),
            json!({"code": 0, "data": {"cid": 2, "msg": "hi", "client_id": "c-1"}})
        );
        assert_eq!(
            v(&text(crate::Target::Private(10001).into(), "hi")),
            json!({"code": 0, "data": {"to": 10001, "msg": "hi"}})
        );
        assert_eq!(
            v(&history(
                2,
                Page {
                    after: Some(1),
                    ..Page::default()
                }
            )),
            json!({"code": 104, "data": {"cid": 2, "after": 1}})
        );
        assert_eq!(v(&heartbeat()), json!({"code": 107}));
    }

    #[test]
    fn undelivered_entries_read_as_neutral_messages() {
        let text = r#"{"code":8,"data":{"more":false,"msg":["{\"code\":0,\"time\":1718000300,\"data\":{\"cid\":2,\"sender_id\":\"10001\",\"msg\":\"hi all\",\"mid\":5,\"index\":1}}"]}}"#;
        let f = Frame::parse(text).expect("frame");
        assert_eq!(
            f.messages(),
            Some(vec![Message {
                chat: Chat::Id(2),
                index: 1,
                id: 5,
                sender: 10001,
                text: "hi all".into(),
                time: 1_718_000_300
            }])
        );
        let ack = Frame::parse(r#"{"code":103,"data":{"cid":3,"index":1,"mid":7},"time":1}"#)
            .expect("ack");
        assert_eq!(
            ack.ack(),
            Some(Ack {
                chat: Chat::Id(3),
                id: 7,
                index: 1
            })
        );
    }
}
