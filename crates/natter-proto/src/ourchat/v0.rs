//! OurChat draft "v0" (seed 000), served at `GET /ws/v0`: the `{code, time, data:{...}}`
//! envelope.
//!
//! Seed codes: 0 text, 4/5 register by `mail`, 6/7 login by `ocId`, 8 undelivered messages
//! (each a JSON *string*). 12 (server status) and 14/16/19/21 are answered as OurChat later
//! defined them; 100 and up are the same extensions as v1, inside `data`, seen by a client only
//! once it opted in. In v0 `cid` is the *chat's* id; the message id travels as the extension
//! field `mid`.

use super::{MAX_HISTORY, MAX_SINCE, Page};
use crate::json::fields::{self, Fields, Head};
use crate::view::MessageView;
use crate::{ChatId, ErrorCode, Index, MessageId, Ocid, WireError};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub mod code {
    pub use super::super::v1::code::{
        SERVER_STATUS, SET_ACCOUNT, SET_ACCOUNT_REPLY, UNREGISTER, UNREGISTER_REPLY, UPLOAD,
        UPLOAD_REPLY, VERIFY_REQUEST, VERIFY_STATUS,
    };
    pub const TEXT: i64 = 0;
    pub const RESERVED: [i64; 3] = [1, 2, 3];
    pub const REGISTER: i64 = 4;
    pub const REGISTER_REPLY: i64 = 5;
    pub const LOGIN: i64 = 6;
    pub const LOGIN_REPLY: i64 = 7;
    pub const UNDELIVERED: i64 = 8;
    // Extensions, numbered as in v1.
    pub const EXTENSIONS: i64 = 100;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `cid`: a chat the sender belongs to (group or private).
    Chat(ChatId),
    /// Extension `to`: the private chat with this account, made on first use.
    Private(Ocid),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Text {
        to: Target,
        /// The seed's `sender_id`; when present it must be the logged-in account.
        sender_id: Option<Ocid>,
        msg: String,
        client_id: Option<String>,
    },
    Register {
        /// `data.mail`, or `data.email` as the draft's own server read it.
        mail: String,
        password: String,
        /// `data.nick` or `data.name`, if given; else the mail's local part.
        nick: Option<String>,
        /// Opts in to natter's extension frames.
        ext: bool,
        /// Extension: an invitation code, for a server that registers by invitation only.
        invite: Option<String>,
    },
    Login {
        /// `None` when `data.ocId` is not a number: no account has it.
        ocid: Option<Ocid>,
        password: String,
        /// Opts in to natter's extension frames.
        ext: bool,
    },
    /// Code 12: is the server running?
    ServerStatus,
    /// Code 16: delete my account.
    Unregister,
    /// A request OurChat assigned that natter does not serve: answered with `reply`.
    Unsupported {
        reply: i64,
    },
    Resume {
        token: String,
        /// Chat id -> the last index the client holds (extension: nothing up to it is sent).
        since: Vec<(ChatId, Index)>,
    },
    History {
        chat: ChatId,
        page: Page,
        limit: u32,
    },
    Heartbeat,
    Logout,
}

#[derive(Debug)]
pub struct Envelope {
    pub code: i64,
    pub request_id: Option<Value>,
    pub request: Request,
}

#[derive(Debug)]
pub struct DecodeError {
    pub code: Option<i64>,
    pub request_id: Option<Value>,
    pub error: WireError,
}

/// Decode one text frame.
///
/// # Errors
/// Any malformed, unknown or mistyped request, with the code to answer it with.
pub fn decode(text: &str) -> Result<Envelope, DecodeError> {
    let (map, Head { code, request_id }) =
        fields::parse_object(text).map_err(|(head, error)| DecodeError {
            code: head.code,
            request_id: head.request_id,
            error,
        })?;
    let code = code.unwrap_or(-1);
    let body = match map.get("data") {
        Some(Value::Object(data)) => decode_body(code, data),
        None | Some(Value::Null)
            if matches!(
                code,
                code::HEARTBEAT
                    | code::LOGOUT
                    | code::SERVER_STATUS
                    | code::UNREGISTER
                    | code::VERIFY_REQUEST
                    | code::SET_ACCOUNT
                    | code::UPLOAD
            ) =>
        {
            decode_body(code, &Map::new())
        }
        None | Some(Value::Null) => Err(WireError::new(
            ErrorCode::MissingField,
            "field `data` is required",
        )),
        Some(_) => Err(WireError::new(
            ErrorCode::InvalidField,
            "field `data` must be an object",
        )),
    };
    match body {
        Ok(request) => Ok(Envelope {
            code,
            request_id,
            request,
        }),
        Err(error) => Err(DecodeError {
            code: Some(code),
            request_id,
            error,
        }),
    }
}

fn decode_body(code: i64, data: &Map<String, Value>) -> Result<Request, WireError> {
    let f = Fields::new(data, "data.");
    Ok(match code {
        code::TEXT => {
            let to = match (f.opt_id("cid")?, f.opt_id("to")?) {
                (Some(c), None) => Target::Chat(ChatId(c)),
                (None, Some(o)) => Target::Private(Ocid(o)),
                (None, None) => {
                    return Err(WireError::new(
                        ErrorCode::MissingField,
                        "one of `data.cid` or `data.to` is required",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(WireError::new(
                        ErrorCode::InvalidField,
                        "only one of `data.cid` or `data.to` may be given",
                    ));
                }
            };
            let sender_id = match f.get("sender_id") {
                Some(Value::String(s)) if s.is_empty() => None,
                _ => f.opt_id("sender_id")?.map(Ocid),
            };
            Request::Text {
                to,
                sender_id,
                msg: f.str("msg")?.to_owned(),
                client_id: f.opt_str("client_id")?.map(str::to_owned),
            }
        }
        code::REGISTER => Request::Register {
            mail: match f.opt_str("mail")? {
                Some(m) => m.to_owned(),
                None => f
                    .opt_str("email")?
                    .ok_or_else(|| {
                        WireError::new(
                            ErrorCode::MissingField,
                            "field `data.mail` (or `data.email`) is required",
                        )
                    })?
                    .to_owned(),
            },
            password: f.str("password")?.to_owned(),
            nick: match f.opt_str("nick")? {
                Some(n) => Some(n.to_owned()),
                None => f.opt_str("name")?.map(str::to_owned),
            },
            ext: f.opt_flag("ext")?.unwrap_or(false),
            invite: f.opt_str("invite")?.map(str::to_owned),
        },
        code::LOGIN => Request::Login {
            // An ocId that is not a number names no account: a failed login, not a bad frame.
            ocid: match f.get("ocId") {
                None => return Err(fields::missing("data.", "ocId")),
                Some(v @ (Value::String(_) | Value::Number(_))) => fields::value_as_id(v).map(Ocid),
                Some(_) => {
                    return Err(fields::invalid("data.", "ocId", "a number or a string"));
                }
            },
            password: f.str("password")?.to_owned(),
            ext: f.opt_flag("ext")?.unwrap_or(false),
        },
        code::SERVER_STATUS => Request::ServerStatus,
        code::UNREGISTER => Request::Unregister,
        code::VERIFY_REQUEST => Request::Unsupported {
            reply: code::VERIFY_STATUS,
        },
        code::SET_ACCOUNT => Request::Unsupported {
            reply: code::SET_ACCOUNT_REPLY,
        },
        code::UPLOAD => Request::Unsupported {
            reply: code::UPLOAD_REPLY,
        },
        code::RESUME => Request::Resume {
            token: f.str("token")?.to_owned(),
            since: super::opt_cursors(&f, "since", MAX_SINCE)?,
        },
        code::HISTORY => {
            let (page, limit) = super::page(&f, MAX_HISTORY)?;
            Request::History {
                chat: ChatId(f.id("cid")?),
                page,
                limit,
            }
        }
        code::HEARTBEAT => Request::Heartbeat,
        code::LOGOUT => Request::Logout,
        c if code::RESERVED.contains(&c) => {
            return Err(WireError::new(
                ErrorCode::UnknownCode,
                format!("code {c} is reserved by the protocol and not served yet"),
            ));
        }
        c => {
            return Err(WireError::new(
                ErrorCode::UnknownCode,
                format!("code {c} is not a request this server accepts"),
            ));
        }
    })
}

#[derive(Serialize)]
struct TextData<'a> {
    cid: ChatId,
    sender_id: String,
    msg: std::borrow::Cow<'a, str>,
    mid: MessageId,
    index: Index,
    /// A file the message carries (natter's; v0 clients show `msg`).
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<Value>,
}

/// The text a v0 client shows for a message: a file's kind in brackets before its caption.
fn shown_text<'a>(m: &MessageView<'a>) -> std::borrow::Cow<'a, str> {
    match m.file {
        None => std::borrow::Cow::Borrowed(m.text),
        Some(f) if m.text.is_empty() => format!("[{}]", f.kind.name()).into(),
        Some(f) => format!("[{}] {}", f.kind.name(), m.text).into(),
    }
}

#[derive(Serialize)]
struct TextFrame<'a> {
    code: i64,
    time: i64,
    data: TextData<'a>,
}

fn text_frame<'a>(m: &MessageView<'a>) -> TextFrame<'a> {
    TextFrame {
        code: code::TEXT,
        time: m.time_s(),
        data: TextData {
            cid: m.chat,
            sender_id: m.sender.to_string(),
            msg: shown_text(m),
            mid: m.id,
            index: m.index,
            file: m.file.and_then(|f| serde_json::from_str(f.json).ok()),
        },
    }
}

/// Code 0 as delivered: `cid` the chat, `sender_id` the sender's ocid as a string.
pub fn encode_text(m: &MessageView<'_>) -> String {
    serde_json::to_string(&text_frame(m)).unwrap_or_default()
}

/// Code 8: undelivered messages, each a code 0 frame serialized into a JSON string.
pub fn undelivered(messages: Vec<String>) -> Value {
    json!({"code": code::UNDELIVERED, "data": {"msg": messages}})
}

pub use super::finish;

fn envelope(code: i64, time: i64, data: Value) -> Value {
    json!({"code": code, "time": time, "data": data})
}

/// Code 5; `ocId` is a string, as the seed defines it.
pub fn register_reply(time: i64, state: u8, ocid: Option<Ocid>) -> Value {
    let mut data = json!({"state": state});
    if let Some(o) = ocid {
        data["ocId"] = json!(o.to_string());
    }
    envelope(code::REGISTER_REPLY, time, data)
}

/// Code 7 (and 14 for resume): `state`, plus the extensions `ocId` and `token` on success.
pub fn login_reply(
    time: i64,
    code: i64,
    state: u8,
    ocid: Option<Ocid>,
    token: Option<&str>,
) -> Value {
    let mut data = json!({"state": state});
    if let Some(o) = ocid {
        data["ocId"] = json!(o.to_string());
    }
    if let Some(t) = token {
        data["token"] = json!(t);
    }
    envelope(code, time, data)
}

pub fn error_reply(time: i64, request: Option<i64>, e: &WireError) -> Value {
    envelope(
        code::ERROR,
        time,
        json!({
            "request": request,
            "error_code": e.code.number(),
            "error": e.code.name(),
            "message": e.message,
        }),
    )
}

pub fn ack(
    time: i64,
    chat: ChatId,
    mid: MessageId,
    index: Index,
    client_id: Option<&str>,
) -> Value {
    let mut data = json!({"cid": chat, "mid": mid, "index": index});
    if let Some(c) = client_id {
        data["client_id"] = json!(c);
    }
    envelope(code::ACK, time, data)
}

pub fn history_reply(time: i64, chat: ChatId, messages: Vec<String>, more: bool) -> Value {
    envelope(
        code::HISTORY_REPLY,
        time,
        json!({"cid": chat, "msg": messages, "more": more}),
    )
}

pub fn simple(code: i64, time: i64) -> Value {
    envelope(code, time, json!({}))
}

/// Code 12's answer: the server is running.
pub fn server_status(time: i64) -> Value {
    envelope(code::SERVER_STATUS, time, json!({"status": 0}))
}

/// The answer, with code `reply`, to a request OurChat assigned that this server does not
/// serve: `status` 1 (OurChat's "failed") and why in `details`.
pub fn unsupported(time: i64, reply: i64, details: &str) -> Value {
    envelope(reply, time, json!({"status": 1, "details": details}))
}

/// Code 17: the account is deleted (`status` 0), or why not (`status` 1 and `details`).
pub fn unregister_reply(time: i64, refused: Option<&str>) -> Value {
    match refused {
        None => envelope(code::UNREGISTER_REPLY, time, json!({"status": 0})),
        Some(why) => unsupported(time, code::UNREGISTER_REPLY, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_seed_login_with_string_ocid() {
        let e = decode(r#"{"code":6,"time":1,"data":{"ocId":"10001","password":"x"}}"#)
            .expect("decodes");
        assert_eq!(
            e.request,
            Request::Login {
                ocid: Some(Ocid(10001)),
                password: "x".into(),
                ext: false,
            }
        );
    }

    #[test]
    fn undelivered_carries_strings() {
        let m = MessageView {
            id: MessageId(1),
            chat: ChatId(2),
            index: Index(1),
            at_ms: 5_000,
            sender: Ocid(10001),
            private_to: Some(Ocid(10002)),
            kind: crate::view::kind::NORMAL,
            text: "a\"b",
            file: None,
        };
        let v = undelivered(vec![encode_text(&m)]);
        let inner = v["data"]["msg"][0].as_str().expect("a string");
        let parsed: Value = serde_json::from_str(inner).expect("inner JSON");
        assert_eq!(parsed["data"]["sender_id"], "10001");
        assert_eq!(parsed["data"]["msg"], "a\"b");
        // A file shows as its kind before the caption, and travels whole beside it.
        let file = crate::view::FileView {
            kind: crate::view::FileKind::Voice,
            json: r#"{"duration_ms":1500,"id":"v","kind":"voice"}"#,
        };
        let voice: Value = serde_json::from_str(&encode_text(&MessageView {
            file: Some(file),
            ..m
        }))
        .expect("json");
        assert_eq!(voice["data"]["msg"], "[voice] a\"b");
        assert_eq!(voice["data"]["file"]["duration_ms"], 1500);
    }

    #[test]
    fn tolerant_input() {
        let register = |frame: &str| match decode(frame).expect("decodes").request {
            Request::Register { mail, nick, .. } => (mail, nick),
            other => panic!("not a register: {other:?}"),
        };
        assert_eq!(
            register(r#"{"code":4,"data":{"mail":"a@b.c","password":"p"}}"#),
            ("a@b.c".into(), None)
        );
        assert_eq!(
            register(r#"{"code":4,"data":{"email":"a@b.c","nick":"Al","password":"p"}}"#),
            ("a@b.c".into(), Some("Al".into()))
        );
        assert_eq!(
            register(r#"{"code":4,"data":{"email":"a@b.c","name":"Al","password":"p"}}"#),
            ("a@b.c".into(), Some("Al".into()))
        );
        assert!(decode(r#"{"code":4,"data":{"nick":"Al","password":"p"}}"#).is_err());
        match decode(r#"{"code":6,"data":{"ocId":"alice","password":"p"}}"#)
            .expect("a login")
            .request
        {
            Request::Login { ocid, .. } => assert_eq!(ocid, None),
            other => panic!("not a login: {other:?}"),
        }
        assert_eq!(
            decode(r#"{"code":12}"#).expect("decodes").request,
            Request::ServerStatus
        );
    }
}
