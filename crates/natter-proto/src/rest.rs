//! The REST + push dialect (seed 003): JSON bodies under `/api/` answered in the envelope
//! `{"status", "result", "message", "date"}`, and a push channel whose packets are
//! `{"status", "pushId", "message"}` both ways. See `docs/protocol/rest.md`.
//!
//! This module reads request bodies and push packets and writes replies; it knows no HTTP, no
//! sockets and no domain. Ids (accounts, chats) are written as decimal strings, as the seed
//! writes them, and read as strings or numbers.

use crate::view::{FileKind, MessageView};
use serde_json::{Map, Value, json};

/// The seed's status codes, carried in every envelope's `status`.
pub mod status {
    pub const SUCCESS: i64 = 1;
    pub const FAILURE: i64 = 0;
    pub const NULL_PASSWORD: i64 = 6000;
    pub const NULL_USERNAME: i64 = 6001;
    pub const NULL_AVATAR: i64 = 6002;
    pub const NULL_PHONE: i64 = 6003;
    pub const NULL_USER: i64 = 6004;
    pub const SAME_USERNAME: i64 = 7000;
    pub const SAME_PHONE: i64 = 7001;
    pub const FORMAT_ERROR_PHONE: i64 = 8000;
    pub const FORMAT_ERROR_PHONE_LENGTH: i64 = 8001;
    pub const FORMAT_ERROR_PASSWORD: i64 = 8002;
    pub const FORMAT_ERROR_PASSWORD_LENGTH: i64 = 8003;
    pub const FORMAT_ERROR_USER_LENGTH: i64 = 8004;
    pub const FORMAT_ERROR_FILE: i64 = 8005;
    pub const ILLEGAL_USERNAME: i64 = 9000;
    pub const ERROR_PASSWORD: i64 = 10000;
    pub const ERROR_REPEAT_LOGIN: i64 = 11000;
    pub const ERROR_NET: i64 = 11001;
}

/// Message types (the seed's list, natter's too).
pub use crate::view::kind;

/// Content categories of an `info` part: 0 text, 1 image, 2 voice, 3 file.
pub mod category {
    pub const TEXT: u8 = 0;
    pub const IMAGE: u8 = 1;
    pub const VOICE: u8 = 2;
    pub const FILE: u8 = 3;
}

/// A time as the envelope's `date` and the profiles' `modifyAt` write it: UTC,
/// `YYYY-MM-DDTHH:MM:SS`, as the seed's example (`2018-11-14T21:40:56`).
pub fn date(at_ms: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(at_ms.div_euclid(1000));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// A message's `createTime`: [`date`] with milliseconds (`2018-11-14T21:40:56.123`).
pub fn time_ms(at_ms: i64) -> String {
    format!("{}.{:03}", date(at_ms), at_ms.rem_euclid(1000))
}

/// Unix seconds as (year, month, day, hour, minute, second) in UTC.
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rest / 3600) as u32,
        (rest % 3600 / 60) as u32,
        (rest % 60) as u32,
    )
}

/// One reply body: `{"status", "result", "message", "date"}`.
pub fn envelope(status: i64, result: Value, message: &str, now_ms: i64) -> Vec<u8> {
    let body = json!({
        "status": status,
        "result": result,
        "message": message,
        "date": date(now_ms),
    });
    body.to_string().into_bytes()
}

/// An id as this dialect writes it: a decimal string.
pub fn id(n: u64) -> String {
    n.to_string()
}

/// An id read from a string or a number; `None` when absent, empty or not a positive integer.
pub fn read_id(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n| *n > 0)
}

/// A small integer (a type, a category, a sex) read from a number or a numeric string.
pub fn read_small(v: Option<&Value>) -> Option<u8> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A text field read from a string, or from a number written as its digits (the seed sends
/// `phone` either way).
pub fn read_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A request body's JSON object.
///
/// # Errors
/// A sentence when the body is not a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Messages.

/// One `info` part of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub category: u8,
    pub content: String,
    /// An extension: a voice part's length in milliseconds (`duration`).
    pub duration_ms: Option<u64>,
}

/// A message a client sends (in a push packet's list, or to `POST /api/message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The chat it goes to; `None` for a first private message, which names `to`.
    pub chat: Option<u64>,
    /// The receiving account (a private message without a `chatId`).
    pub to: Option<u64>,
    /// The message type; 1 (normal) when absent.
    pub kind: u8,
    pub info: Vec<Info>,
    /// An extension: a client's id for the message, which makes a retried send return the
    /// stored message instead of a duplicate.
    pub client_id: Option<String>,
}

/// Read one message item: `{chatId, toId, type, info: [{category, content}], clientId}`
/// (`fromId` and `createTime` are the server's and ignored).
///
/// # Errors
/// A sentence naming the field that is missing or wrong.
pub fn outgoing(v: &Value) -> Result<Outgoing, String> {
    let Value::Object(m) = v else {
        return Err("each message must be an object".into());
    };
    let chat = read_id(m.get("chatId"));
    let to = read_id(m.get("toId"));
    if chat.is_none() && to.is_none() {
        return Err("a message needs a `chatId`, or a `toId` for a first private message".into());
    }
    let kind = match m.get("type") {
        None | Some(Value::Null) => kind::NORMAL,
        Some(Value::String(s)) if s.is_empty() => kind::NORMAL,
        t => read_small(t)
            .filter(|k| *k <= kind::GROUP)
            .ok_or("field `type` must be a number from 0 to 7")?,
    };
    let Some(Value::Array(parts)) = m.get("info") else {
        return Err("field `info` must be a list of `{category, content}`".into());
    };
    let mut info = Vec::with_capacity(parts.len());
    for p in parts {
        let category = match p.get("category") {
            None | Some(Value::Null) => category::TEXT,
            Some(Value::String(s)) if s.is_empty() => category::TEXT,
            c => read_small(c)
                .filter(|c| *c <= category::FILE)
                .ok_or("field `info[].category` must be 0, 1, 2 or 3")?,
        };
        let content = match p.get("content") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err("field `info[].content` must be a string".into()),
        };
        let duration_ms = match p.get("duration") {
            None | Some(Value::Null) => None,
            Some(d) => Some(
                d.as_u64()
                    .ok_or("field `info[].duration` must be a number")?,
            ),
        };
        info.push(Info {
            category,
            content,
            duration_ms,
        });
    }
    let client_id = match m.get("clientId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("field `clientId` must be a string".into()),
    };
    Ok(Outgoing {
        chat,
        to,
        kind,
        info,
        client_id,
    })
}

/// Where a file part of a message points: the files API path of its file.
pub fn file_path(id: &str) -> String {
    format!("/files/{id}")
}

/// The file id a file part's `content` names: `/files/{id}` (or a full URL ending so), or the
/// bare id.
pub fn file_id(content: &str) -> &str {
    let c = content.trim();
    match c.rfind("/files/") {
        Some(at) => &c[at + "/files/".len()..],
        None => c,
    }
}

/// The file id inside a file's JSON as the server writes it in messages (`{"id": ...}`).
fn json_id(file_json: &str) -> String {
    serde_json::from_str::<Value>(file_json)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

/// A stored message as this dialect lists it: `{chatId, fromId, toId, type, info, createTime}`
/// plus the extensions `index` and `msgId`. `toId` is the receiving account in a private chat
/// and the group (its chat id) in a group. A file is a part of category 1-3 (an emoji: 1)
/// whose content is its files API path, after a text part with the caption if there is one.
pub fn message_item(m: &MessageView<'_>) -> Value {
    let mut info = Vec::new();
    if !m.text.is_empty() || m.file.is_none() {
        info.push(json!({"category": category::TEXT, "content": m.text}));
    }
    if let Some(f) = &m.file {
        let category = match f.kind {
            FileKind::Image | FileKind::Emoji => category::IMAGE,
            FileKind::Voice => category::VOICE,
            FileKind::File => category::FILE,
        };
        info.push(json!({"category": category, "content": file_path(&json_id(f.json))}));
    }
    let to = m.private_to.map_or(m.chat.0, |o| o.0);
    json!({
        "chatId": id(m.chat.0),
        "fromId": id(m.sender.0),
        "toId": id(to),
        "type": m.kind,
        "info": info,
        "createTime": time_ms(m.at_ms),
        "index": m.index.0,
        "msgId": id(m.id.0),
    })
}

/// A notice as a message item: what the server tells a client that is not a stored message (a
/// friend or join request, a friendship change, typing, presence, a read receipt). It has one
/// text part and no `index` or `msgId`, and needs no acknowledgement. `chat` is the chat it
/// concerns (`""` when none).
pub fn notice_item(
    chat: Option<u64>,
    from: u64,
    to: u64,
    kind: u8,
    content: &str,
    at_ms: i64,
) -> Value {
    json!({
        "chatId": chat.map(id).unwrap_or_default(),
        "fromId": id(from),
        "toId": id(to),
        "type": kind,
        "info": [{"category": category::TEXT, "content": content}],
        "createTime": time_ms(at_ms),
    })
}

/// The acknowledgement shape `{fromId, toId, chatId, content}`: the server's confirmation of a
/// client's message (`content` "ok", or why it was refused), with the extensions `index` and
/// `msgId` when it was stored.
pub fn ack(from: u64, to: Option<u64>, chat: Option<u64>, content: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("fromId".into(), json!(id(from)));
    m.insert("toId".into(), json!(to.map(id).unwrap_or_default()));
    m.insert("chatId".into(), json!(chat.map(id).unwrap_or_default()));
    m.insert("content".into(), json!(content));
    m
}

// ---------------------------------------------------------------------------------------------
// Push packets.

/// A packet a push client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `"start"`: begin (log the channel in); answered with the client's `pushId`.
    Start,
    /// `"restart"`: resume the queue: every message not yet acknowledged is sent again.
    Restart,
    /// `""` (or no message): a heartbeat, answered with one.
    Heartbeat,
    /// `{fromId, toId, chatId, content: "ok"}`: the client has the messages of `chat` it was
    /// sent, up to `index` when it says (an extension), else all of them.
    Ack { chat: u64, index: Option<u64> },
    /// A list of messages to send.
    Messages(Vec<Outgoing>),
}

/// Why a push packet was not read: answered with a failure packet carrying the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPacket(pub String);

/// Read one push packet `{status, pushId, message}`.
///
/// # Errors
/// [`BadPacket`] with a sentence naming what is wrong.
pub fn packet(frame: &[u8]) -> Result<Packet, BadPacket> {
    let bad = |s: &str| BadPacket(s.to_owned());
    let v: Value =
        serde_json::from_slice(frame).map_err(|e| BadPacket(format!("not JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(bad("a packet must be a JSON object"));
    };
    match m.get("message") {
        None | Some(Value::Null) => Ok(Packet::Heartbeat),
        Some(Value::String(s)) => match s.trim() {
            "" => Ok(Packet::Heartbeat),
            "start" => Ok(Packet::Start),
            "restart" => Ok(Packet::Restart),
            "ok" => Err(bad(
                "an acknowledgement is `{fromId, toId, chatId, content: \"ok\"}`",
            )),
            _ => Err(bad(
                "`message` must be \"\", \"start\", \"restart\", an acknowledgement or a list of messages",
            )),
        },
        Some(Value::Object(a)) => {
            if a.get("content").and_then(Value::as_str) != Some("ok") {
                return Err(bad("an acknowledgement's `content` must be \"ok\""));
            }
            let chat =
                read_id(a.get("chatId")).ok_or(bad("an acknowledgement needs a `chatId`"))?;
            let index = match a.get("index") {
                None | Some(Value::Null) => None,
                Some(i) => Some(i.as_u64().ok_or(bad("field `index` must be a number"))?),
            };
            Ok(Packet::Ack { chat, index })
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(bad("a list of messages must not be empty"));
            }
            let list = items.iter().map(outgoing).collect::<Result<Vec<_>, _>>();
            list.map(Packet::Messages).map_err(BadPacket)
        }
        Some(_) => Err(bad("`message` must be a string, an object or a list")),
    }
}

/// A push packet `{status, pushId, message}`.
pub fn push(status: i64, push_id: &str, message: Value) -> Vec<u8> {
    json!({"status": status, "pushId": push_id, "message": message})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::FileView;
    use crate::{ChatId, Index, MessageId, Ocid};

    #[test]
    fn dates_are_utc_in_the_seeds_format() {
        assert_eq!(date(0), "1970-01-01T00:00:00");
        assert_eq!(date(1_542_231_656_000), "2018-11-14T21:40:56");
        assert_eq!(time_ms(1_542_231_656_007), "2018-11-14T21:40:56.007");
        assert_eq!(date(951_782_400_000), "2000-02-29T00:00:00");
    }

    #[test]
    fn ids_read_from_strings_or_numbers() {
        assert_eq!(read_id(Some(&json!("10001"))), Some(10001));
        assert_eq!(read_id(Some(&json!(10001))), Some(10001));
        assert_eq!(read_id(Some(&json!(""))), None);
        assert_eq!(read_id(Some(&json!(0))), None);
        assert_eq!(read_id(None), None);
        assert_eq!(
            read_text(Some(&json!(18870742138u64))).as_deref(),
            Some("18870742138")
        );
    }

    /// Found by the `rest_body` fuzz target: a type past 7 was read as a message type.
    #[test]
    fn a_message_type_past_7_is_refused() {
        let item = |t: Value| outgoing(&json!({"chatId": "7", "type": t, "info": []}));
        assert_eq!(item(json!(7)).map(|o| o.kind), Ok(7));
        assert_eq!(item(json!("3")).map(|o| o.kind), Ok(3));
        for bad in [json!(8), json!(21), json!("255"), json!(256)] {
            assert_eq!(
                item(bad.clone()),
                Err("field `type` must be a number from 0 to 7".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn packets_decode_every_kind() {
        let p = |s: &str| packet(s.as_bytes());
        assert_eq!(
            p(r#"{"status":1,"pushId":"","message":"start"}"#),
            Ok(Packet::Start)
        );
        assert_eq!(
            p(r#"{"status":1,"pushId":"x","message":"restart"}"#),
            Ok(Packet::Restart)
        );
        assert_eq!(
            p(r#"{"status":1,"pushId":"x","message":""}"#),
            Ok(Packet::Heartbeat)
        );
        assert_eq!(
            p(r#"{"status":1,"message":{"fromId":"1","toId":"2","chatId":"7","content":"ok"}}"#),
            Ok(Packet::Ack {
                chat: 7,
                index: None
            })
        );
        assert_eq!(
            p(r#"{"message":{"chatId":7,"content":"ok","index":3}}"#),
            Ok(Packet::Ack {
                chat: 7,
                index: Some(3)
            })
        );
        assert!(p(r#"{"message":{"chatId":"7","content":"no"}}"#).is_err());
        assert!(p("[1]").is_err());
        assert!(p("nope").is_err());
        let m = p(
            r#"{"message":[{"chatId":"","toId":"10002","type":"1","info":[{"category":"0","content":"hi"}]}]}"#,
        );
        assert_eq!(
            m,
            Ok(Packet::Messages(vec![Outgoing {
                chat: None,
                to: Some(10002),
                kind: 1,
                info: vec![Info {
                    category: 0,
                    content: "hi".into(),
                    duration_ms: None
                }],
                client_id: None,
            }]))
        );
        assert!(
            p(r#"{"message":[{"chatId":"","info":[]}]}"#).is_err(),
            "no destination"
        );
        assert!(p(r#"{"message":[{"chatId":"3","info":[{"category":9,"content":""}]}]}"#).is_err());
    }

    #[test]
    fn items_carry_text_then_the_file_path() {
        let file = r#"{"id":"abc","kind":"image","mime":"image/png","name":"p.png","size":3}"#;
        let v = MessageView {
            id: MessageId(9),
            chat: ChatId(4),
            index: Index(2),
            at_ms: 1_542_231_656_000,
            sender: Ocid(10001),
            private_to: Some(Ocid(10002)),
            kind: 1,
            text: "look",
            file: Some(FileView {
                kind: FileKind::Image,
                json: file,
            }),
        };
        assert_eq!(
            message_item(&v),
            json!({"chatId": "4", "fromId": "10001", "toId": "10002", "type": 1,
                   "info": [{"category": 0, "content": "look"},
                            {"category": 1, "content": "/files/abc"}],
                   "createTime": "2018-11-14T21:40:56.000", "index": 2, "msgId": "9"})
        );
        assert_eq!(file_id("/files/abc"), "abc");
        assert_eq!(file_id("https://h/files/abc"), "abc");
        assert_eq!(file_id("abc"), "abc");
    }

    #[test]
    fn notices_are_items_without_an_index() {
        assert_eq!(
            notice_item(None, 10002, 10001, kind::REQUEST, "hi", 1_542_231_656_000),
            json!({"chatId": "", "fromId": "10002", "toId": "10001", "type": 2,
                   "info": [{"category": 0, "content": "hi"}],
                   "createTime": "2018-11-14T21:40:56.000"})
        );
        assert_eq!(
            notice_item(Some(42), 10002, 42, kind::NOTICE, "{}", 0)["chatId"],
            json!("42")
        );
    }
}
