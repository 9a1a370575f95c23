//! The per-dialect driver: one trait, [`Dialect`], implemented for each dialect ([`V1`], [`V0`],
//! [`Pipe`], [`Rest`]), so that a behaviour test is written once, generic over the dialect, and
//! instantiated for every dialect that can express it with [`for_each_dialect!`] (the JSON
//! dialects, which also implement [`JsonDialect`]: raw frames, envelopes, history) or
//! [`for_each_dialect_and_pipe!`] (every connection dialect).
//!
//! A driver is one connection of one account. It speaks the dialect's exact frames (built by
//! natter-client) through the strict harness helpers, and hands what arrives back as
//! natter-client's neutral [`Message`] (chat, index, id, sender, text). Tests name chats as
//! [`Target`]s; [`Dialect::assert_message`] checks a message against one in the dialect's own
//! terms (v0 names a private chat by an id it learns from the first ack or message, and holds
//! to it after).

use crate::common::*;
use natter_client::ourchat::{v0, v1};
use natter_client::pipe;
use natter_client::rest;
use natter_client::{Ack, Chat, Message, Page, Target};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One connection of one account, in one dialect.
pub trait Dialect: Sized {
    /// The dialect's name, for messages.
    const NAME: &'static str;

    /// A new, anonymous connection.
    async fn connect(server: &TestServer) -> Self;
    /// Replace the connection by a new anonymous one (after a restart, say), keeping what this
    /// driver knows of the account and its chats.
    async fn reconnect(&mut self, server: &TestServer);
    /// Close the connection (and wait until the server has dropped it).
    async fn close(self);

    /// Register an account (v0 has no name: its nickname is the mail's local part); returns
    /// its ocid.
    async fn register(&mut self, email: &str, name: &str, password: &str) -> u64;
    /// Log in (v1 by email, v0 by ocid), which must succeed; returns the missed messages.
    async fn login(&mut self, ocid: u64, email: &str, password: &str) -> Vec<Message>;
    /// Resume as `ocid` with a token that must be valid; returns the missed messages.
    async fn resume(&mut self, ocid: u64, token: &str) -> Vec<Message>;
    /// The token of the last password login.
    fn token(&self) -> String;

    /// Send a text that must be stored; returns its ack.
    async fn send(&mut self, target: Target, text: &str) -> Ack;
    /// The next frame, which must be a delivered message.
    async fn recv_message(&mut self) -> Message;
    /// Nothing arrives within `ms` milliseconds.
    async fn expect_silence(&mut self, ms: u64);

    /// `chat` (of a message or an ack) must be the chat the test calls `target`.
    fn assert_chat(&mut self, chat: Chat, target: Target);

    /// `m` must be message `index` of `target`, from `sender`, saying `text`.
    fn assert_message(&mut self, m: &Message, target: Target, sender: u64, index: u64, text: &str) {
        self.assert_chat(m.chat, target);
        assert_eq!(
            (m.index, m.sender, m.text.as_str()),
            (index, sender, text),
            "{}: {m:?}",
            Self::NAME
        );
    }
}

/// A dialect of JSON frames (the OurChat dialects): its raw frames and its history.
pub trait JsonDialect: Dialect {
    /// Codes that only the server sends: a client sending one gets `unknown_code`.
    const SERVER_CODES: &'static [i64];
    /// Codes the protocol reserves and the dialect does not serve (`unknown_code`, "reserved").
    const RESERVED_CODES: &'static [i64];

    /// The connection, to send and read frames of one's own.
    fn client(&mut self) -> &mut Client;
    /// A frame of this dialect's shape: `top`'s fields at the top level, and (v0) an empty
    /// `data`.
    fn envelope(top: Value) -> Value;
    /// A text frame to `target` with these field values as given (which may be invalid).
    fn text_frame(target: Target, msg: Value, client_id: Option<Value>) -> Value;
    /// A page of a chat's history, which must be readable; returns it and `more`.
    async fn history(&mut self, target: Target, page: Page) -> (Vec<Message>, bool);
}

/// Instantiate generic tests for every dialect that has a connection of its own: for each
/// `test::<D>()`, a module `test` with the tests `v1`, `v0`, `pipe` and `rest` (its push
/// channel).
macro_rules! for_each_dialect_and_pipe {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v1() {
                    super::$test::<crate::driver::V1>().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v0() {
                    super::$test::<crate::driver::V0>().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn pipe() {
                    super::$test::<crate::driver::Pipe>().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn rest() {
                    super::$test::<crate::driver::Rest>().await;
                }
            }
        )*
    };
}
pub(crate) use for_each_dialect_and_pipe;

/// Instantiate generic tests for every JSON dialect: for each `test::<D>()`, a module `test`
/// with the tests `v1` and `v0`.
macro_rules! for_each_dialect {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v1() {
                    super::$test::<crate::driver::V1>().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn v0() {
                    super::$test::<crate::driver::V0>().await;
                }
            }
        )*
    };
}
pub(crate) use for_each_dialect;

/// A v1 frame as natter-client reads it, in the neutral view of account `me`.
fn v1_message(f: &Value, me: u64) -> Message {
    let text = f.to_string();
    v1::Frame::parse(&text)
        .ok()
        .and_then(|frame| frame.message(me))
        .unwrap_or_else(|| panic!("not a complete v1 message: {f}"))
}

/// A v0 frame as natter-client reads it, in the neutral view.
fn v0_message(f: &Value) -> Message {
    let text = f.to_string();
    v0::Frame::parse(&text)
        .ok()
        .and_then(|frame| frame.message())
        .unwrap_or_else(|| panic!("not a complete v0 message: {f}"))
}

/// The v1 fields naming `target` (`private_id` or `group_id`).
fn v1_target(target: Target) -> Value {
    match target {
        Target::Private(ocid) => json!({"private_id": ocid}),
        Target::Group(id) => json!({"group_id": id}),
    }
}

// ---------------------------------------------------------------------------------------------

/// OurChat v1 (`/ws`).
pub struct V1 {
    client: Client,
    ocid: u64,
    token: String,
}

impl JsonDialect for V1 {
    const SERVER_CODES: &'static [i64] = &[
        5, 7, 9, 11, 13, 15, 17, 18, 20, 22, 23, 100, 102, 103, 105, 106, 108, 110, 112, 114, 116,
        118, 119, 120, 122, 123, 125, 127, 129, 131, 133, 135, 137, 139, 141, 143, 145, 147, 149,
        151, 153, 155, 157, 159, 161, 163, 165, 167, 169, 171, 173, 175, 177, 179, 180, 181, 182,
        183, 185, 187, 188, 190, 191,
    ];
    /// Codes 1-3 (emoji, image, file) are served: messages that carry a file.
    const RESERVED_CODES: &'static [i64] = &[];

    fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn envelope(top: Value) -> Value {
        top
    }

    fn text_frame(target: Target, msg: Value, client_id: Option<Value>) -> Value {
        let mut f = json!({"code": 0, "sender": v1_target(target), "msg": msg});
        if let Some(id) = client_id {
            f["client_id"] = id;
        }
        f
    }

    async fn history(&mut self, target: Target, page: Page) -> (Vec<Message>, bool) {
        let mut req = v1_target(target);
        for (key, value) in [
            ("before", page.before),
            ("after", page.after),
            ("limit", page.limit),
        ] {
            if let Some(v) = value {
                req[key] = json!(v);
            }
        }
        let h = history_v1(&mut self.client, req).await;
        let messages = h["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| v1_message(m, self.ocid))
            .collect();
        (messages, h["more"] == json!(true))
    }
}

impl Dialect for V1 {
    const NAME: &'static str = "v1";

    async fn connect(server: &TestServer) -> Self {
        Self {
            client: server.v1().await,
            ocid: 0,
            token: String::new(),
        }
    }

    async fn reconnect(&mut self, server: &TestServer) {
        self.client = server.v1().await;
    }

    async fn close(self) {
        self.client.close().await;
    }

    async fn register(&mut self, email: &str, name: &str, password: &str) -> u64 {
        register_v1(&mut self.client, email, name, password).await
    }

    async fn login(&mut self, ocid: u64, email: &str, password: &str) -> Vec<Message> {
        let l = login_v1(&mut self.client, email, password).await;
        assert_eq!(l.ocid, ocid, "logged in as another account");
        self.ocid = ocid;
        self.token = l.token;
        l.missed.iter().map(|f| v1_message(f, ocid)).collect()
    }

    async fn resume(&mut self, ocid: u64, token: &str) -> Vec<Message> {
        let l = resume_v1(&mut self.client, token).await;
        assert_eq!(l.ocid, ocid, "resumed as another account");
        assert!(
            self.ocid == 0 || self.ocid == l.ocid,
            "resumed as {}, not {}",
            l.ocid,
            self.ocid
        );
        self.ocid = l.ocid;
        l.missed.iter().map(|f| v1_message(f, l.ocid)).collect()
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    async fn send(&mut self, target: Target, text: &str) -> Ack {
        let ack = send_v1(&mut self.client, v1_target(target), text).await;
        let raw = ack.to_string();
        let ack = v1::Frame::parse(&raw)
            .ok()
            .and_then(|f| f.ack())
            .unwrap_or_else(|| panic!("not a complete v1 ack: {raw}"));
        self.assert_chat(ack.chat, target);
        ack
    }

    async fn recv_message(&mut self) -> Message {
        let f = self.client.expect_code(0).await;
        v1_message(&f, self.ocid)
    }

    async fn expect_silence(&mut self, ms: u64) {
        self.client.expect_silence(ms).await;
    }

    fn assert_chat(&mut self, chat: Chat, target: Target) {
        let want = match target {
            Target::Private(ocid) => Chat::Private(ocid),
            Target::Group(id) => Chat::Group(id),
        };
        assert_eq!(chat, want, "v1 names the chat {target:?} so");
    }
}

// ---------------------------------------------------------------------------------------------

/// OurChat draft v0 (`/ws/v0`).
pub struct V0 {
    client: Client,
    ocid: u64,
    token: String,
    /// The id of the private chat with each account, once learned.
    private_chats: HashMap<u64, u64>,
}

impl V0 {
    /// The chat id of `target`: a group's id is its chat id; a private chat's must be known.
    fn chat_id(&self, target: Target) -> u64 {
        match target {
            Target::Group(id) => id,
            Target::Private(ocid) => *self.private_chats.get(&ocid).unwrap_or_else(|| {
                panic!("v0 names the private chat with {ocid} by an id not yet learned")
            }),
        }
    }
}

impl JsonDialect for V0 {
    const SERVER_CODES: &'static [i64] = &[
        5, 7, 8, 9, 10, 11, 13, 15, 17, 18, 20, 22, 100, 102, 103, 105, 106, 108, 110,
    ];
    const RESERVED_CODES: &'static [i64] = &[1, 2, 3];

    fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    fn envelope(top: Value) -> Value {
        let mut v = json!({"data": {}});
        if let (Value::Object(m), Value::Object(top)) = (&mut v, top) {
            m.extend(top);
        }
        v
    }

    fn text_frame(target: Target, msg: Value, client_id: Option<Value>) -> Value {
        let mut data = match target {
            Target::Private(ocid) => json!({"to": ocid}),
            Target::Group(id) => json!({"cid": id}),
        };
        data["msg"] = msg;
        if let Some(id) = client_id {
            data["client_id"] = id;
        }
        json!({"code": 0, "data": data})
    }

    async fn history(&mut self, target: Target, page: Page) -> (Vec<Message>, bool) {
        let mut data = json!({"cid": self.chat_id(target)});
        for (key, value) in [
            ("before", page.before),
            ("after", page.after),
            ("limit", page.limit),
        ] {
            if let Some(v) = value {
                data[key] = json!(v);
            }
        }
        let (r, frames) = history_v0(&mut self.client, data).await;
        let messages = frames.iter().map(v0_message).collect();
        (messages, r["data"]["more"] == json!(true))
    }
}

impl Dialect for V0 {
    const NAME: &'static str = "v0";

    async fn connect(server: &TestServer) -> Self {
        Self {
            client: server.v0().await,
            ocid: 0,
            token: String::new(),
            private_chats: HashMap::new(),
        }
    }

    async fn reconnect(&mut self, server: &TestServer) {
        self.client = server.v0().await;
    }

    async fn close(self) {
        self.client.close().await;
    }

    async fn register(&mut self, email: &str, _name: &str, password: &str) -> u64 {
        let ocid = register_v0(&mut self.client, email, password).await;
        ocid.parse()
            .unwrap_or_else(|_| panic!("v0 ocId {ocid} is not digits"))
    }

    async fn login(&mut self, ocid: u64, _email: &str, password: &str) -> Vec<Message> {
        let l = login_v0(&mut self.client, &json!(ocid), password).await;
        assert_eq!(l.ocid, ocid.to_string(), "logged in as another account");
        self.ocid = ocid;
        self.token = l.token;
        l.missed.iter().map(v0_message).collect()
    }

    async fn resume(&mut self, expected: u64, token: &str) -> Vec<Message> {
        let r = self.client.request(&frame(&v0::resume(token)), 102).await;
        assert_eq!(r["data"]["state"], json!(0), "v0 resume failed: {r}");
        let ocid = string(&r["data"]["ocId"])
            .parse()
            .unwrap_or_else(|_| panic!("v0 ocId is not digits: {r}"));
        assert_eq!(ocid, expected, "resumed as another account");
        assert!(
            self.ocid == 0 || self.ocid == ocid,
            "resumed as {ocid}, not {}",
            self.ocid
        );
        self.ocid = ocid;
        let (missed, _) = read_undelivered_v0(&mut self.client).await;
        missed.iter().map(v0_message).collect()
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    async fn send(&mut self, target: Target, text: &str) -> Ack {
        let data = match target {
            Target::Private(ocid) => json!({"to": ocid, "msg": text}),
            Target::Group(id) => json!({"cid": id, "msg": text}),
        };
        let ack = send_v0(&mut self.client, data).await;
        let raw = ack.to_string();
        let ack = v0::Frame::parse(&raw)
            .ok()
            .and_then(|f| f.ack())
            .unwrap_or_else(|| panic!("not a complete v0 ack: {raw}"));
        self.assert_chat(ack.chat, target);
        ack
    }

    async fn recv_message(&mut self) -> Message {
        let f = self.client.expect_code(0).await;
        v0_message(&f)
    }

    async fn expect_silence(&mut self, ms: u64) {
        self.client.expect_silence(ms).await;
    }

    fn assert_chat(&mut self, chat: Chat, target: Target) {
        let Chat::Id(id) = chat else {
            panic!("v0 names chats by id, got {chat:?}");
        };
        match target {
            Target::Group(g) => assert_eq!(id, g, "a group's v0 chat id is its id"),
            Target::Private(ocid) => match self.private_chats.get(&ocid) {
                Some(known) => {
                    assert_eq!(id, *known, "the private chat with {ocid} changed its id")
                }
                None => {
                    assert!(
                        !self.private_chats.values().any(|c| *c == id),
                        "chat {id} is already the private chat with another account"
                    );
                    self.private_chats.insert(ocid, id);
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The pipe dialect (seed 004, its own TCP port). Accounts are registered by username: the
/// local part of the email the tests name.
pub struct Pipe {
    conn: pipe::Conn<tokio::net::TcpStream>,
    ocid: u64,
    token: String,
}

impl Pipe {
    /// The next line, within the harness's patience.
    async fn line(&mut self) -> Vec<String> {
        tokio::time::timeout(RECV_TIMEOUT, self.conn.recv())
            .await
            .expect("a pipe line in time")
            .expect("a readable pipe line")
    }

    /// A line that must be a message, as this account names its chat.
    async fn message_line(&mut self) -> Message {
        let fields = self.line().await;
        pipe::message(&fields)
            .unwrap_or_else(|| panic!("not a pipe message: {fields:?}"))
            .seen_by(self.ocid)
    }

    async fn send_line(&mut self, command: &str, fields: &[&str]) {
        self.conn
            .send(command, fields)
            .await
            .expect("send a pipe line");
    }
}

fn username(email: &str) -> &str {
    email.split('@').next().unwrap_or(email)
}

impl Dialect for Pipe {
    const NAME: &'static str = "pipe";

    async fn connect(server: &TestServer) -> Self {
        Self {
            conn: pipe::Conn::connect(server.pipe).await.expect("connect"),
            ocid: 0,
            token: String::new(),
        }
    }

    async fn reconnect(&mut self, server: &TestServer) {
        self.conn = pipe::Conn::connect(server.pipe).await.expect("connect");
    }

    async fn close(self) {
        self.conn.close(RECV_TIMEOUT).await.expect("closed");
    }

    async fn register(&mut self, email: &str, name: &str, password: &str) -> u64 {
        pipe::register(&mut self.conn, username(email), password, name)
            .await
            .expect("pipe registration")
    }

    async fn login(&mut self, ocid: u64, email: &str, password: &str) -> Vec<Message> {
        self.send_line("login", &[username(email), password]).await;
        let r = self.line().await;
        assert_eq!(r.len(), 5, "pipe login failed: {r:?}");
        assert_eq!(r[0], "login_succ", "{r:?}");
        assert_eq!(r[2], ocid.to_string(), "logged in as another account");
        self.ocid = ocid;
        self.token = r[3].clone();
        let count: usize = r[4].parse().expect("a count");
        self.send_line("get_unread_message", &[""]).await;
        let mut missed = Vec::new();
        for _ in 0..count {
            missed.push(self.message_line().await);
        }
        missed
    }

    async fn resume(&mut self, ocid: u64, token: &str) -> Vec<Message> {
        // A token command logs a fresh connection in; the unread messages follow, then the
        // reply to a last command marks their end.
        let me = ocid.to_string();
        self.send_line("get_user_friend", &[&me, token]).await;
        let r = self.line().await;
        assert_eq!(r[0], "friendinfo", "pipe resume failed: {r:?}");
        self.ocid = ocid;
        self.send_line("get_unread_message", &[""]).await;
        self.send_line("get_unread_friend_request", &[""]).await;
        let mut missed = Vec::new();
        loop {
            let fields = self.line().await;
            if fields[0] == "friend_request" {
                return missed;
            }
            let m =
                pipe::message(&fields).unwrap_or_else(|| panic!("not a pipe message: {fields:?}"));
            missed.push(m.seen_by(ocid));
        }
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    async fn send(&mut self, target: Target, text: &str) -> Ack {
        let (kind, to, chat) = match target {
            Target::Private(o) => ("0", o, Chat::Private(o)),
            Target::Group(g) => ("1", g, Chat::Group(g)),
        };
        let (me, to, token) = (self.ocid.to_string(), to.to_string(), self.token.clone());
        self.send_line("send_message", &[kind, &me, &to, "0", text, &token])
            .await;
        let r = self.line().await;
        assert_eq!(r.len(), 4, "pipe send failed: {r:?}");
        assert_eq!(r[0], "send_message_succ", "{r:?}");
        Ack {
            chat,
            id: r[2].parse().expect("an id"),
            index: r[3].parse().expect("an index"),
        }
    }

    async fn recv_message(&mut self) -> Message {
        self.message_line().await
    }

    async fn expect_silence(&mut self, ms: u64) {
        let got = self
            .conn
            .recv_within(std::time::Duration::from_millis(ms))
            .await
            .expect("readable");
        assert_eq!(got, None, "pipe: expected nothing");
    }

    fn assert_chat(&mut self, chat: Chat, target: Target) {
        let want = match target {
            Target::Private(ocid) => Chat::Private(ocid),
            Target::Group(id) => Chat::Group(id),
        };
        assert_eq!(chat, want, "pipe names the chat {target:?} so");
    }
}

// ---------------------------------------------------------------------------------------------

/// The REST + push dialect (seed 003): accounts by phone (a number made from the email the
/// tests name), HTTP requests with the session cookie, and the push channel for messages. A
/// connection is the push channel of the driver's login; every message received is
/// acknowledged, so that it counts as delivered. It is no [`JsonDialect`]: the tests written
/// over that trait send OurChat frames by their codes (bad input, a restart's resume and
/// history, private chats compared by their histories), which the push channel has no
/// equivalent of; its own bad packets and history are tested in `rest.rs` and `rest_social.rs`.
pub struct Rest {
    api: rest::Api,
    push: Option<rest::Push>,
    ocid: u64,
    token: String,
}

/// The phone number the REST driver registers the account of `email` with: 11 digits made
/// from the email, the same each time.
pub fn phone_of(email: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in email.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("13{:09}", h % 1_000_000_000)
}

impl Rest {
    fn push(&mut self) -> &mut rest::Push {
        self.push
            .as_mut()
            .expect("the REST driver's push channel is open (log in first)")
    }

    /// Open the push channel with the cookie, start it, and collect (and acknowledge) what
    /// the login missed, as the driver's account.
    async fn open(&mut self, ocid: u64) -> Vec<Message> {
        let mut push = tokio::time::timeout(RECV_TIMEOUT, self.api.push(ocid))
            .await
            .expect("the push channel opens in time")
            .expect("the push channel opens");
        let id = tokio::time::timeout(RECV_TIMEOUT, push.start("start"))
            .await
            .expect("start answered in time")
            .expect("start answered");
        assert_eq!(id.len(), 16, "a push id names the login: {id}");
        let items = tokio::time::timeout(RECV_TIMEOUT, push.until_heartbeat())
            .await
            .expect("the catch-up in time")
            .expect("the catch-up");
        let mut missed = Vec::new();
        for item in &items {
            if let Some(m) = rest::message(item, ocid) {
                push.ack(item).await.expect("acknowledge");
                missed.push(m);
            }
        }
        self.ocid = ocid;
        self.push = Some(push);
        missed
    }
}

impl Dialect for Rest {
    const NAME: &'static str = "rest";

    async fn connect(server: &TestServer) -> Self {
        Self {
            api: rest::Api::new(server.addr),
            push: None,
            ocid: 0,
            token: String::new(),
        }
    }

    async fn reconnect(&mut self, server: &TestServer) {
        self.api = rest::Api::new(server.addr);
        self.push = None;
    }

    async fn close(self) {
        if let Some(push) = self.push {
            push.close().await;
        }
    }

    async fn register(&mut self, email: &str, _name: &str, password: &str) -> u64 {
        self.api
            .register(&phone_of(email), password)
            .await
            .expect("REST registration")
    }

    async fn login(&mut self, ocid: u64, email: &str, password: &str) -> Vec<Message> {
        let id = self
            .api
            .login(&phone_of(email), password)
            .await
            .expect("REST login");
        assert_eq!(id, ocid, "logged in as another account");
        self.token = self.api.token().expect("a session cookie").to_owned();
        self.open(ocid).await
    }

    async fn resume(&mut self, ocid: u64, token: &str) -> Vec<Message> {
        self.api.set_token(Some(token.to_owned()));
        let id = self.api.me().await.expect("the cookie's account");
        assert_eq!(id, ocid, "resumed as another account");
        self.open(ocid).await
    }

    fn token(&self) -> String {
        self.token.clone()
    }

    async fn send(&mut self, target: Target, text: &str) -> Ack {
        let (status, c) = tokio::time::timeout(RECV_TIMEOUT, self.push().send_text(target, text))
            .await
            .expect("a confirmation in time")
            .expect("a confirmation");
        assert_eq!((status, &c["content"]), (1, &json!("ok")), "REST send: {c}");
        let chat = match target {
            Target::Private(o) => {
                assert_eq!(c["toId"], json!(o.to_string()), "{c}");
                Chat::Private(o)
            }
            Target::Group(g) => {
                assert_eq!(c["chatId"], json!(g.to_string()), "{c}");
                Chat::Group(g)
            }
        };
        Ack {
            chat,
            id: string(&c["msgId"]).parse().expect("a message id"),
            index: c["index"].as_u64().expect("an index"),
        }
    }

    async fn recv_message(&mut self) -> Message {
        tokio::time::timeout(RECV_TIMEOUT, self.push().next_message())
            .await
            .expect("a message in time")
            .expect("a message")
    }

    async fn expect_silence(&mut self, ms: u64) {
        let push = self.push();
        assert!(!push.has_items(), "REST: an item is waiting");
        let until = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(until, push.conn().next_event()).await {
                Err(_) => return,
                Ok(natter_client::ws::Event::Ping | natter_client::ws::Event::Pong) => {}
                Ok(other) => panic!("REST: expected nothing, got {other:?}"),
            }
        }
    }

    fn assert_chat(&mut self, chat: Chat, target: Target) {
        let want = match target {
            Target::Private(ocid) => Chat::Private(ocid),
            Target::Group(id) => Chat::Group(id),
        };
        assert_eq!(chat, want, "REST names the chat {target:?} so");
    }
}
