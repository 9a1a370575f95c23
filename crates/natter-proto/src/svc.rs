//! The service-code dialect (seed 002): one JSON request per HTTP `POST`,
//! `{"service_code": N, "content": {...}}`, answered by `{"state_code": S, "content": {...}}`
//! with the HTTP status equal to `S`. See `docs/protocol/svc.md`.
//!
//! This module reads requests and writes replies; it knows no HTTP and no domain.

use crate::json::fields::Fields;
use serde_json::{Map, Value, json};

/// Longest list accepted in code 7's `member` before the domain's own limits apply.
pub const MAX_MEMBERS: usize = 10_000;

/// A request, decoded. Every request but 1 and 2 is authenticated by its `token` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 1: check an account's UUID and token.
    Login { id: String, token: String },
    /// 2: register an account named by `id` with `token`; `name` and `invite` are extensions.
    Register {
        id: String,
        token: String,
        name: Option<String>,
        invite: Option<String>,
    },
    /// 3: messages of a chat, newest first, at most `count` from `index` down (`index` < 0:
    /// from the newest).
    Messages {
        token: String,
        chat: u64,
        index: i64,
        count: u32,
    },
    /// 4: the caller's chats.
    Chats { token: String },
    /// 5: send a text message; `client_id` (extension) makes a retry return the stored one.
    Send {
        token: String,
        chat: u64,
        msg: String,
        client_id: Option<String>,
    },
    /// 6: join a group.
    Join { token: String, chat: u64 },
    /// 7: create a group, or open a private chat (`is_group` false, one other member).
    Create {
        token: String,
        name: String,
        is_group: bool,
        members: Vec<String>,
    },
    /// 9: messages of a chat, oldest first: at most `count` from `index` up (`index` >= 0), or
    /// the `count` ending at the `-index`-th newest (`index` < 0).
    Receive {
        token: String,
        chat: u64,
        index: i64,
        count: u32,
    },
}

/// Why a body is not a request: answered with a 4xx status and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// 400: not JSON, not an object, or a field missing or wrong.
    Malformed(String),
    /// 404: no such service code.
    UnknownCode(String),
}

impl BadRequest {
    /// The HTTP status (and `state_code`).
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::UnknownCode(_) => 404,
        }
    }

    /// The sentence for `msg`.
    pub fn message(&self) -> &str {
        match self {
            Self::Malformed(m) | Self::UnknownCode(m) => m,
        }
    }
}

fn malformed(e: crate::WireError) -> BadRequest {
    BadRequest::Malformed(e.message)
}

/// A token: a string, or a non-negative integer (as the seed writes it), read as its decimal
/// digits; `1145141919810` and `"1145141919810"` are the same token.
fn token(f: &Fields<'_>) -> Result<String, BadRequest> {
    match f.get("token") {
        None => Err(BadRequest::Malformed(
            "field `content.token` is required".into(),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.to_string()),
        Some(_) => Err(BadRequest::Malformed(
            "field `content.token` must be a string or a non-negative integer".into(),
        )),
    }
}

/// A `count`: an integer of at least 1 (larger ones are capped by the server).
fn count(f: &Fields<'_>) -> Result<u32, BadRequest> {
    let n = f.int("count").map_err(malformed)?;
    if n < 1 {
        return Err(BadRequest::Malformed(
            "field `content.count` must be at least 1".into(),
        ));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Decode a request body.
///
/// # Errors
/// [`BadRequest::Malformed`] for a body that is not a JSON object, a missing or wrong
/// `service_code` or `content`, or a field of the content missing or wrong;
/// [`BadRequest::UnknownCode`] for a service code there is none of (8 included).
pub fn decode(body: &[u8]) -> Result<Request, BadRequest> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| BadRequest::Malformed(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(BadRequest::Malformed(
            "the body must be a JSON object".into(),
        ));
    };
    let top = Fields::new(&map, "");
    let code = match top.get("service_code") {
        None => {
            return Err(BadRequest::Malformed(
                "field `service_code` is required".into(),
            ));
        }
        Some(v) => v.as_i64().ok_or_else(|| {
            BadRequest::Malformed("field `service_code` must be an integer".into())
        })?,
    };
    if !matches!(code, 1..=7 | 9) {
        return Err(BadRequest::UnknownCode(format!(
            "unknown service code {code}"
        )));
    }
    let empty = Map::new();
    let content = match map.get("content") {
        None | Some(Value::Null) => Fields::new(&empty, "content."),
        Some(Value::Object(c)) => Fields::new(c, "content."),
        Some(_) => {
            return Err(BadRequest::Malformed(
                "field `content` must be an object".into(),
            ));
        }
    };
    let f = &content;
    let owned = |s: Option<&str>| s.map(str::to_owned);
    Ok(match code {
        1 => Request::Login {
            id: f.str("id").map_err(malformed)?.to_owned(),
            token: token(f)?,
        },
        2 => Request::Register {
            id: f.str("id").map_err(malformed)?.to_owned(),
            token: token(f)?,
            name: owned(f.opt_str("name").map_err(malformed)?),
            invite: owned(f.opt_str("invite").map_err(malformed)?),
        },
        3 => Request::Messages {
            token: token(f)?,
            chat: f.id("chat").map_err(malformed)?,
            index: f.int("index").map_err(malformed)?,
            count: count(f)?,
        },
        4 => Request::Chats { token: token(f)? },
        5 => Request::Send {
            token: token(f)?,
            chat: f.id("chat").map_err(malformed)?,
            msg: f.str("msg").map_err(malformed)?.to_owned(),
            client_id: owned(f.opt_str("client_id").map_err(malformed)?),
        },
        6 => Request::Join {
            token: token(f)?,
            chat: f.id("chat").map_err(malformed)?,
        },
        7 => {
            let members = f
                .opt_objects("member", MAX_MEMBERS)
                .map_err(malformed)?
                .iter()
                .map(|m| m.str("id").map(str::to_owned))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    BadRequest::Malformed(
                        "field `content.member` must be a list of objects with a string `id`"
                            .into(),
                    )
                })?;
            Request::Create {
                token: token(f)?,
                name: f.str("name").map_err(malformed)?.to_owned(),
                is_group: f.bool("is_group").map_err(malformed)?,
                members,
            }
        }
        _ => Request::Receive {
            token: token(f)?,
            chat: f.id("chat").map_err(malformed)?,
            index: f.int("index").map_err(malformed)?,
            count: count(f)?,
        },
    })
}

/// Why a well-formed request was refused: answered `200` with `msg: "failed"` and `cause`.
/// Each cause's text is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// 2: another account has this UUID.
    UuidTaken,
    /// 2: another account has this token.
    TokenTaken,
    /// 2: the server takes no registrations.
    RegistrationClosed,
    /// 2: registration needs an invitation code (`invite`), and this one is missing, unknown,
    /// used or expired.
    InvalidInvite,
    /// 1, 3-9: the account is banned.
    AccountDisabled,
    /// 3, 5, 9: no chat has that id.
    NoSuchChat,
    /// 6: no group has that id (a private chat's id included).
    NoSuchGroup,
    /// 3, 5, 9: the caller is not a member of the chat.
    NotAMember,
    /// 6: the caller is a member already.
    AlreadyMember,
    /// 7: a member's UUID names no account.
    NoSuchUser,
    /// 7: a private chat needs exactly one other member.
    OneMemberNeeded,
    /// 7: a private chat with oneself.
    OwnAccount,
    /// 6, 7: the group would have more members than the server allows.
    GroupFull,
    /// 5: the text is longer than the server allows.
    MessageTooLong,
    /// 5: the caller blocks the other member of this private chat.
    Blocking,
    /// 5: the other member of this private chat does not accept messages from the caller.
    NotAccepted,
    /// 5: the `client_id` was used before for a message to another chat.
    DuplicateClientId,
}

impl Cause {
    /// Every cause, for documentation and tests.
    pub const ALL: [Cause; 17] = [
        Self::UuidTaken,
        Self::TokenTaken,
        Self::RegistrationClosed,
        Self::InvalidInvite,
        Self::AccountDisabled,
        Self::NoSuchChat,
        Self::NoSuchGroup,
        Self::NotAMember,
        Self::AlreadyMember,
        Self::NoSuchUser,
        Self::OneMemberNeeded,
        Self::OwnAccount,
        Self::GroupFull,
        Self::MessageTooLong,
        Self::Blocking,
        Self::NotAccepted,
        Self::DuplicateClientId,
    ];

    /// The stable text of `cause`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UuidTaken => "uuid_taken",
            Self::TokenTaken => "token_taken",
            Self::RegistrationClosed => "registration_closed",
            Self::InvalidInvite => "invalid_invite",
            Self::AccountDisabled => "account_disabled",
            Self::NoSuchChat => "no_such_chat",
            Self::NoSuchGroup => "no_such_group",
            Self::NotAMember => "not_a_member",
            Self::AlreadyMember => "already_member",
            Self::NoSuchUser => "no_such_user",
            Self::OneMemberNeeded => "one_member_needed",
            Self::OwnAccount => "own_account",
            Self::GroupFull => "group_full",
            Self::MessageTooLong => "message_too_long",
            Self::Blocking => "blocking",
            Self::NotAccepted => "not_accepted",
            Self::DuplicateClientId => "duplicate_client_id",
        }
    }
}

/// A reply body: `{"state_code": status, "content": content}`.
pub fn reply(status: u16, content: Map<String, Value>) -> Vec<u8> {
    json!({"state_code": status, "content": content})
        .to_string()
        .into_bytes()
}

/// `200`, `msg: "success"`, and `extra` beside it.
pub fn success(extra: Map<String, Value>) -> Vec<u8> {
    let mut content = Map::new();
    content.insert("msg".into(), "success".into());
    content.extend(extra);
    reply(200, content)
}

/// `200`, `msg: "failed"` and the cause.
pub fn failed(cause: Cause) -> Vec<u8> {
    let mut content = Map::new();
    content.insert("msg".into(), "failed".into());
    content.insert("cause".into(), cause.as_str().into());
    reply(200, content)
}

/// A 4xx (or 500) status with `msg`.
pub fn error(status: u16, msg: &str) -> Vec<u8> {
    let mut content = Map::new();
    content.insert("msg".into(), msg.into());
    reply(status, content)
}

/// One message of a code 3 or 9 list; `name` (the sender's nickname) only in code 9's.
pub fn message_value(
    sender: &str,
    name: Option<&str>,
    content: &str,
    index: u64,
    time: i64,
    system: bool,
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), sender.into());
    if let Some(name) = name {
        m.insert("name".into(), name.into());
    }
    m.insert("content".into(), content.into());
    m.insert("index".into(), index.into());
    m.insert("time".into(), time.into());
    if system {
        m.insert("system".into(), true.into());
    }
    Value::Object(m)
}

/// One chat of a code 4 list: `type` is `"chat"` for a group and `"user"` for a private chat,
/// `is_group` says the same, `usrs` are the members' UUIDs.
pub fn chat_value(id: u64, name: &str, is_group: bool, members: &[&str]) -> Value {
    let usrs: Vec<Value> = members.iter().map(|u| json!({"id": u})).collect();
    json!({
        "id": id,
        "name": name,
        "type": if is_group { "chat" } else { "user" },
        "is_group": is_group,
        "usrs": usrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(body: &str) -> BadRequest {
        decode(body.as_bytes()).expect_err("refused")
    }

    #[test]
    fn decodes_each_code_as_the_seed_writes_it() {
        assert_eq!(
            decode(br#"{"service_code":2,"content":{"id":"u","token":1145141919810}}"#),
            Ok(Request::Register {
                id: "u".into(),
                token: "1145141919810".into(),
                name: None,
                invite: None
            })
        );
        assert_eq!(
            decode(
                br#"{"service_code":9,"content":{"token":"t","chat":"7","index":-1,"count":20}}"#
            ),
            Ok(Request::Receive {
                token: "t".into(),
                chat: 7,
                index: -1,
                count: 20
            })
        );
        assert_eq!(
            decode(
                br#"{"service_code":7,"content":{"token":1,"name":"n","is_group":true,"member":[{"id":"a"},{"id":"b"}]}}"#
            ),
            Ok(Request::Create {
                token: "1".into(),
                name: "n".into(),
                is_group: true,
                members: vec!["a".into(), "b".into()]
            })
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        assert_eq!(bad("{").status(), 400);
        assert_eq!(bad("[1]").message(), "the body must be a JSON object");
        assert_eq!(
            bad(r#"{"content":{}}"#).message(),
            "field `service_code` is required"
        );
        assert_eq!(
            bad(r#"{"service_code":8}"#),
            BadRequest::UnknownCode("unknown service code 8".into())
        );
        assert_eq!(
            bad(r#"{"service_code":5,"content":{"token":"t","chat":1}}"#).message(),
            "field `content.msg` is required"
        );
        assert_eq!(
            bad(r#"{"service_code":4,"content":{"token":1.5}}"#).message(),
            "field `content.token` must be a string or a non-negative integer"
        );
        assert_eq!(
            bad(r#"{"service_code":3,"content":{"token":"t","chat":1,"index":0,"count":0}}"#)
                .message(),
            "field `content.count` must be at least 1"
        );
        assert_eq!(
            bad(r#"{"service_code":7,"content":{"token":"t","name":"n","is_group":true,"member":[{"id":3}]}}"#).status(),
            400
        );
    }

    #[test]
    fn causes_are_unique() {
        let mut names: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Cause::ALL.len());
    }
}
