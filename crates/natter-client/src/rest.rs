//! The REST + push dialect (seed 003): JSON requests under `/api/` answered in the envelope
//! `{status, result, message, date}`, authenticated by the `sessionid` cookie that
//! `POST /api/login` sets, and the push channel, a WebSocket at `GET /api/push` opened with
//! that cookie, whose packets are `{status, pushId, message}` both ways.
//!
//! [`Api`] makes one HTTP/1.1 request per TCP connection (no TLS, no keep-alive) and keeps
//! the cookie; [`Push`] is the push channel: `start`, heartbeats, messages sent and confirmed,
//! messages received and acknowledged. [`message`] reads a message item into the neutral
//! [`Message`]. See `docs/protocol/rest.md`.

use crate::ws::{self, Endpoint, Options};
use crate::{Chat, Error, Message, Result, Target};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The session cookie's name.
pub const COOKIE: &str = "sessionid";

/// One answer of the HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub http: u16,
    /// The `Set-Cookie` header, if any.
    pub set_cookie: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The envelope.
    pub body: Value,
}

impl Answer {
    /// The seed's status code (`1` success).
    pub fn status(&self) -> i64 {
        self.body["status"].as_i64().unwrap_or(-1)
    }

    /// `result`.
    pub fn result(&self) -> &Value {
        &self.body["result"]
    }

    /// `message`.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// The answer if it is a success, else [`Error::Refused`] naming `what`.
    ///
    /// # Errors
    /// A status other than 1.
    pub fn success(self, what: &'static str) -> Result<Self> {
        if self.status() == 1 && self.http == 200 {
            Ok(self)
        } else {
            Err(Error::Refused {
                what,
                frame: format!("HTTP {} {}", self.http, self.body),
            })
        }
    }
}

/// The HTTP API of one server, as one client (with its session cookie once logged in).
#[derive(Debug, Clone)]
pub struct Api {
    addr: SocketAddr,
    /// The session token of the cookie, once logged in.
    token: Option<String>,
}

impl Api {
    /// A client of the server listening on `addr`, not logged in.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, token: None }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The session token the cookie carries, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Use `token` as the session cookie from now on (`None`: send none).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// `method path` with the cookie and a JSON `body`. A `Set-Cookie` of the session cookie
    /// is kept (an empty one removes it).
    ///
    /// # Errors
    /// The connection failed or the answer is not HTTP with a JSON body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let addr = self.addr;
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Cookie: {COOKIE}={t}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let answer = String::from_utf8_lossy(&raw).into_owned();
        let malformed = || Error::Unexpected(format!("a malformed HTTP answer to {method} {path}"));
        let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(malformed)?;
        let mut lines = head.lines();
        let http = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(malformed)?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let set_cookie = header("set-cookie");
        let retry_after = header("retry-after");
        if let Some(c) = &set_cookie
            && let Some(value) = c
                .strip_prefix(&format!("{COOKIE}="))
                .and_then(|v| v.split(';').next())
        {
            self.token = (!value.is_empty()).then(|| value.to_owned());
        }
        let body = crate::decode(body)?;
        Ok(Answer {
            http,
            set_cookie,
            retry_after,
            body,
        })
    }

    /// `GET path`.
    ///
    /// # Errors
    /// As [`Api::request`].
    pub async fn get(&mut self, path: &str) -> Result<Answer> {
        self.request("GET", path, None).await
    }

    /// `POST path` with `body`.
    ///
    /// # Errors
    /// As [`Api::request`].
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<Answer> {
        self.request("POST", path, Some(body)).await
    }

    /// `POST /api/register {phone, password}`; the new account's id.
    ///
    /// # Errors
    /// The request failed or was refused.
    pub async fn register(&mut self, phone: &str, password: &str) -> Result<u64> {
        let a = self
            .post(
                "/api/register",
                &json!({"phone": phone, "password": password}),
            )
            .await?
            .success("register")?;
        user_id(a.result())
    }

    /// `POST /api/login {phone, password}`, keeping the cookie; the account's id.
    ///
    /// # Errors
    /// The request failed or was refused.
    pub async fn login(&mut self, phone: &str, password: &str) -> Result<u64> {
        let a = self
            .post("/api/login", &json!({"phone": phone, "password": password}))
            .await?
            .success("login")?;
        if self.token.is_none() {
            return Err(Error::Unexpected("a login without a session cookie".into()));
        }
        user_id(a.result())
    }

    /// `GET /api/user`: the id of the account the cookie is logged in as.
    ///
    /// # Errors
    /// The request failed or was refused.
    pub async fn me(&mut self) -> Result<u64> {
        let a = self.get("/api/user").await?.success("own account")?;
        user_id(a.result())
    }

    /// `POST /api/logout`.
    ///
    /// # Errors
    /// The request failed or was refused.
    pub async fn logout(&mut self) -> Result<()> {
        self.post("/api/logout", &json!({}))
            .await?
            .success("logout")?;
        Ok(())
    }

    /// Open the push channel with the cookie (not started yet: see [`Push::start`]), as
    /// account `me`.
    ///
    /// # Errors
    /// The upgrade failed or was refused.
    pub async fn push(&self, me: u64) -> Result<Push> {
        let cookie = format!("{COOKIE}={}", self.token.as_deref().unwrap_or_default());
        let endpoint = Endpoint::at(self.addr, "/api/push");
        let conn = endpoint
            .connect_with(&Options::default(), &[("Cookie", &cookie)])
            .await?;
        Ok(Push {
            conn,
            me,
            push_id: String::new(),
            items: VecDeque::new(),
        })
    }
}

/// `user.id` of account information.
fn user_id(info: &Value) -> Result<u64> {
    info["user"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Unexpected(format!("account information without an id: {info}")))
}

/// What a push packet from the server carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// Message items (stored messages, and notices).
    Items(Vec<Value>),
    /// An acknowledgement-shaped object: the confirmation of a sent message (its status is
    /// the packet's).
    Confirmation { status: i64, body: Value },
    /// A word: the answer to `start`, `restart` or a heartbeat (`""`), or a refusal's reason
    /// (status 0).
    Word { status: i64, word: String },
}

/// The push channel of one login.
pub struct Push {
    conn: ws::Conn,
    me: u64,
    push_id: String,
    /// Items read but not yet handed out (a packet may carry several).
    items: VecDeque<Value>,
}

impl Push {
    /// The `pushId` the server named (after [`Push::start`]).
    pub fn push_id(&self) -> &str {
        &self.push_id
    }

    /// Send a packet with this `message`.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send(&mut self, message: Value) -> Result<()> {
        let p = json!({"status": 1, "pushId": self.push_id, "message": message});
        self.conn.send_text(p.to_string()).await
    }

    /// The next packet, whatever it is.
    ///
    /// # Errors
    /// The connection ended, or a packet is not JSON.
    pub async fn packet(&mut self) -> Result<Packet> {
        let text = self.conn.next_text().await?;
        let v: Value = crate::decode(&text)?;
        if let Some(id) = v["pushId"].as_str().filter(|id| !id.is_empty()) {
            id.clone_into(&mut self.push_id);
        }
        let status = v["status"].as_i64().unwrap_or(-1);
        Ok(match &v["message"] {
            Value::Array(items) => Packet::Items(items.clone()),
            Value::Object(_) => Packet::Confirmation {
                status,
                body: v["message"].clone(),
            },
            Value::String(s) => Packet::Word {
                status,
                word: s.clone(),
            },
            _ => {
                return Err(Error::Unexpected(format!(
                    "a packet without a message: {v}"
                )));
            }
        })
    }

    /// Send `start` (or `restart`) and read its answer; the `pushId`.
    ///
    /// # Errors
    /// The connection failed or the channel was refused.
    pub async fn start(&mut self, word: &str) -> Result<String> {
        self.send(json!(word)).await?;
        loop {
            match self.packet().await? {
                Packet::Word { status: 1, word: w } if w == word => break,
                Packet::Items(items) => self.items.extend(items),
                other => {
                    return Err(Error::Refused {
                        what: "start",
                        frame: format!("{other:?}"),
                    });
                }
            }
        }
        Ok(self.push_id.clone())
    }

    /// Everything the server sends until the answer to a heartbeat: after [`Push::start`],
    /// what the login missed and the requests waiting (message and notice items, in order).
    ///
    /// # Errors
    /// The connection failed or something else than items arrived.
    pub async fn until_heartbeat(&mut self) -> Result<Vec<Value>> {
        self.send(json!("")).await?;
        let mut got: Vec<Value> = self.items.drain(..).collect();
        loop {
            match self.packet().await? {
                Packet::Items(items) => got.extend(items),
                Packet::Word { status: 1, word } if word.is_empty() => return Ok(got),
                other => return Err(Error::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Send one text message to `target` (a private chat by `toId`, a group by `chatId`) and
    /// wait for its confirmation, keeping the items that arrive meanwhile for
    /// [`Push::next_item`]; the confirmation (status 1 or the refusal's) and its body.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_text(&mut self, target: Target, text: &str) -> Result<(i64, Value)> {
        let (chat, to) = match target {
            Target::Private(o) => (String::new(), o.to_string()),
            Target::Group(g) => (g.to_string(), String::new()),
        };
        let item = json!({"chatId": chat, "toId": to, "type": 1,
                          "info": [{"category": 0, "content": text}]});
        self.send(json!([item])).await?;
        loop {
            match self.packet().await? {
                Packet::Confirmation { status, body } => return Ok((status, body)),
                Packet::Items(items) => self.items.extend(items),
                other => return Err(Error::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// The next item (a stored message or a notice), read when none is kept.
    ///
    /// # Errors
    /// The connection failed, or something else than items arrived.
    pub async fn next_item(&mut self) -> Result<Value> {
        loop {
            if let Some(item) = self.items.pop_front() {
                return Ok(item);
            }
            match self.packet().await? {
                Packet::Items(items) => self.items.extend(items),
                other => return Err(Error::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// The next stored message (notices are skipped), acknowledged.
    ///
    /// # Errors
    /// The connection failed, or something else than items arrived.
    pub async fn next_message(&mut self) -> Result<Message> {
        loop {
            let item = self.next_item().await?;
            if let Some(m) = message(&item, self.me) {
                self.ack(&item).await?;
                return Ok(m);
            }
        }
    }

    /// Acknowledge a stored message item: its chat up to its index.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn ack(&mut self, item: &Value) -> Result<()> {
        let ack = json!({"fromId": item["fromId"], "toId": item["toId"],
                         "chatId": item["chatId"], "content": "ok", "index": item["index"]});
        self.send(ack).await
    }

    /// Whether an item was kept unread.
    pub fn has_items(&self) -> bool {
        !self.items.is_empty()
    }

    /// The connection, for reading raw events.
    pub fn conn(&mut self) -> &mut ws::Conn {
        &mut self.conn
    }

    /// Close politely and wait for the server to close too.
    pub async fn close(self) {
        self.conn.close().await;
    }
}

/// A stored message item as account `me` sees it; `None` for a notice (no `index`). A private
/// chat is named by the other account, a group (whose `toId` is its `chatId`) by its id.
pub fn message(item: &Value, me: u64) -> Option<Message> {
    let num = |k: &str| item[k].as_str().and_then(|s| s.parse::<u64>().ok());
    let index = item["index"].as_u64()?;
    let (chat, from, to) = (num("chatId")?, num("fromId")?, num("toId")?);
    let chat = if to == chat {
        Chat::Group(chat)
    } else if from == me {
        Chat::Private(to)
    } else {
        Chat::Private(from)
    };
    let text = item["info"]
        .as_array()?
        .iter()
        .filter(|p| p["category"] == json!(0))
        .filter_map(|p| p["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Some(Message {
        chat,
        index,
        id: num("msgId")?,
        sender: from,
        text,
        time: unix_seconds(item["createTime"].as_str()?)?,
    })
}

/// Unix seconds of a `YYYY-MM-DDTHH:MM:SS[.mmm]` UTC time.
pub fn unix_seconds(t: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_to_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00"), Some(0));
        assert_eq!(unix_seconds("2018-11-14T21:40:56.123"), Some(1_542_231_656));
        assert_eq!(unix_seconds("2000-02-29T00:00:00"), Some(951_782_400));
        assert_eq!(unix_seconds("nope"), None);
    }

    #[test]
    fn items_name_private_chats_by_the_other_account_and_groups_by_id() {
        let item = |chat: &str, to: &str| {
            json!({"chatId": chat, "fromId": "10002", "toId": to, "type": 1,
                   "info": [{"category": 0, "content": "hi"}],
                   "createTime": "2018-11-14T21:40:56.000", "index": 3, "msgId": "9"})
        };
        let m = message(&item("7", "10001"), 10001).expect("a message");
        assert_eq!(
            (m.chat, m.index, m.id, m.sender),
            (Chat::Private(10002), 3, 9, 10002)
        );
        assert_eq!(m.text, "hi");
        let m = message(&item("7", "10001"), 10002).expect("a message");
        assert_eq!(m.chat, Chat::Private(10001));
        let g = message(&item("5", "5"), 10001).expect("a message");
        assert_eq!(g.chat, Chat::Group(5));
        let mut notice = item("", "10001");
        notice.as_object_mut().map(|o| o.remove("index"));
        assert_eq!(message(&notice, 10001), None);
    }
}
