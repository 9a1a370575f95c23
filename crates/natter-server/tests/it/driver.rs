//! The per-dialect driver: one trait, [`Dialect`], implemented for each dialect ([`V1`], [`V0`]),
//! so that a behaviour test is written once, generic over the dialect, and instantiated for
//! every dialect that can express it with [`for_each_dialect!`].
//!
//! A driver is one connection of one account. It speaks the dialect's exact frames (built by
//! natter-client) through the strict harness helpers, and hands what arrives back as
//! natter-client's neutral [`Message`] (chat, index, id, sender, text). Tests name chats as
//! [`Target`]s; [`Dialect::assert_message`] checks a message against one in the dialect's own
//! terms (v0 names a private chat by an id it learns from the first ack or message, and holds
//! to it after).

use crate::common::*;
use natter_client::ourchat::{v0, v1};
use natter_client::{Ack, Chat, Message, Page, Target};
use serde_json::{Value, json};
use std::collections::HashMap;

/// One connection of one account, in one dialect.
pub trait Dialect: Sized {
    /// The dialect's name, for messages.
    const NAME: &'static str;
    /// Codes that only the server sends: a client sending one gets `unknown_code`.
    const SERVER_CODES: &'static [i64];
    /// Codes the dialect reserves without serving them (answered `unknown_code`, "reserved").
    const RESERVED_CODES: &'static [i64];

    /// A new, anonymous connection.
    async fn connect(server: &TestServer) -> Self;
    /// The connection, to send and read frames of one's own.
    fn client(&mut self) -> &mut Client;
    /// Replace the connection by a new anonymous one (after a restart, say), keeping what this
    /// driver knows of the account and its chats.
    async fn reconnect(&mut self, server: &TestServer);
    /// Close the connection (and wait until the server has dropped it).
    async fn close(self);

    /// A frame of this dialect's shape: `top`'s fields at the top level, and (v0) an empty
    /// `data`.
    fn envelope(top: Value) -> Value;
    /// A text frame to `target` with these field values as given (which may be invalid).
    fn text_frame(target: Target, msg: Value, client_id: Option<Value>) -> Value;

    /// Register an account (v0 has no name: its nickname is the mail's local part); returns
    /// its ocid.
    async fn register(&mut self, email: &str, name: &str, password: &str) -> u64;
    /// Log in (v1 by email, v0 by ocid), which must succeed; returns the missed messages.
    async fn login(&mut self, ocid: u64, email: &str, password: &str) -> Vec<Message>;
    /// Resume with a token that must be valid; returns the missed messages.
    async fn resume(&mut self, token: &str) -> Vec<Message>;
    /// The token of the last password login.
    fn token(&self) -> String;

    /// Send a text that must be stored; returns its ack.
    async fn send(&mut self, target: Target, text: &str) -> Ack;
    /// The next frame, which must be a delivered message.
    async fn recv_message(&mut self) -> Message;
    /// A page of a chat's history, which must be readable; returns it and `more`.
    async fn history(&mut self, target: Target, page: Page) -> (Vec<Message>, bool);

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

/// Instantiate generic tests for every dialect: for each `test::<D>()`, a module `test` with
/// the tests `v1` and `v0`.
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

impl Dialect for V1 {
    const NAME: &'static str = "v1";
    // Codes 1-3 carry files.
    const RESERVED_CODES: &'static [i64] = &[];
    const SERVER_CODES: &'static [i64] = &[
        5, 7, 9, 11, 13, 15, 17, 18, 20, 22, 23, 100, 102, 103, 105, 106, 108, 110, 112, 114, 116,
        118, 119, 120, 122, 123, 125, 127, 129, 131, 133, 135, 137, 139, 141, 143, 145, 147, 149,
        151, 153, 155, 157, 159, 161, 163, 165, 167, 169, 171, 173, 175, 177, 179, 180, 181, 182,
        183, 185, 187, 188, 189,
    ];

    async fn connect(server: &TestServer) -> Self {
        Self {
            client: server.v1().await,
            ocid: 0,
            token: String::new(),
        }
    }

    fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    async fn reconnect(&mut self, server: &TestServer) {
        self.client = server.v1().await;
    }

    async fn close(self) {
        self.client.close().await;
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

    async fn resume(&mut self, token: &str) -> Vec<Message> {
        let l = resume_v1(&mut self.client, token).await;
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

impl Dialect for V0 {
    const NAME: &'static str = "v0";
    const RESERVED_CODES: &'static [i64] = &[1, 2, 3];
    const SERVER_CODES: &'static [i64] = &[
        5, 7, 8, 9, 10, 11, 13, 15, 17, 18, 20, 22, 100, 102, 103, 105, 106, 108, 110,
    ];

    async fn connect(server: &TestServer) -> Self {
        Self {
            client: server.v0().await,
            ocid: 0,
            token: String::new(),
            private_chats: HashMap::new(),
        }
    }

    fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    async fn reconnect(&mut self, server: &TestServer) {
        self.client = server.v0().await;
    }

    async fn close(self) {
        self.client.close().await;
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

    async fn resume(&mut self, token: &str) -> Vec<Message> {
        let r = self.client.request(&frame(&v0::resume(token)), 102).await;
        assert_eq!(r["data"]["state"], json!(0), "v0 resume failed: {r}");
        let ocid = string(&r["data"]["ocId"])
            .parse()
            .unwrap_or_else(|_| panic!("v0 ocId is not digits: {r}"));
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
