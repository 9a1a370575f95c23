//! natter's v1 extension codes 124-188: profiles, search, account security and logins,
//! remarks and blocks (124-149); groups (150-183); read state and the chat list (184-188); the
//! service token (189).
//! Requests are even, their replies the next odd code; 180-183 and 188 are pushes. See
//! `docs/protocol/ourchat-v1.md`.

use super::{LoginBy, Target, code, target};
use crate::json::fields::Fields;
use crate::{ChatId, ErrorCode, Index, Ocid, WireError};
use serde_json::{Map, Value, json};

/// Most results one search (128, 178) asks for.
pub const MAX_LIMIT: u32 = 50;

/// A field that may be set, cleared with `null`, or left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clearable {
    Keep,
    Clear,
    Set(String),
}

/// What code 128 searches by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchBy {
    Ocid,
    Email,
    Phone,
    Username,
    /// The start of the nickname, case-insensitive.
    Nickname,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Social {
    SetProfile {
        nickname: Option<String>,
        avatar: Option<String>,
        signature: Option<String>,
        description: Option<String>,
        sex: Option<u8>,
        status_text: Option<String>,
        username: Clearable,
        phone: Clearable,
        /// Who may put the account into a group without asking: `everyone`, `friends` or
        /// `nobody` (checked by the server).
        group_adds: Option<String>,
    },
    Profile {
        ocid: Ocid,
    },
    Search {
        by: SearchBy,
        query: String,
        after: u64,
        limit: u32,
    },
    ChangePassword {
        old: String,
        new: String,
        keep_others: bool,
    },
    SetSecurity {
        password: String,
        question: String,
        answer: String,
    },
    ResetPassword {
        by: LoginBy,
        account: String,
        answer: String,
        password: String,
    },
    SecurityQuestion {
        by: LoginBy,
        account: String,
    },
    Logins,
    RevokeLogin {
        id: String,
    },
    DeleteAccount {
        password: String,
    },
    SetRemark {
        ocid: Ocid,
        remark: String,
    },
    Block {
        ocid: Ocid,
        block: bool,
    },
    Blocked,
    GroupInfo {
        group: ChatId,
    },
    UpdateGroup {
        group: ChatId,
        name: Option<String>,
        description: Option<String>,
        avatar: Option<String>,
        /// 0 anyone may join, 1 an admin approves each request.
        join_mode: Option<u8>,
    },
    JoinGroup {
        group: ChatId,
        msg: String,
    },
    AnswerJoin {
        group: ChatId,
        ocid: Ocid,
        accept: bool,
    },
    /// One group's requests, or (no group) those of every group the caller administers.
    JoinRequests {
        group: Option<ChatId>,
    },
    Invite {
        group: ChatId,
        ocid: Ocid,
    },
    AnswerInvitation {
        group: ChatId,
        accept: bool,
    },
    Invitations,
    LeaveGroup {
        group: ChatId,
    },
    Kick {
        group: ChatId,
        ocid: Ocid,
    },
    SetAdmin {
        group: ChatId,
        ocid: Ocid,
        admin: bool,
    },
    TransferGroup {
        group: ChatId,
        ocid: Ocid,
    },
    Disband {
        group: ChatId,
    },
    MyGroups,
    FindGroups {
        query: String,
        after: u64,
        limit: u32,
    },
    MarkRead {
        target: Target,
        index: Index,
    },
    ChatList,
    /// The token the service-code dialect logs in with (with the account's UUID), confirmed
    /// with the password.
    SetServiceToken {
        token: String,
        password: String,
    },
}

impl Social {
    /// Whether the request may come before login (the password reset and its question).
    pub fn anonymous(&self) -> bool {
        matches!(
            self,
            Self::ResetPassword { .. } | Self::SecurityQuestion { .. }
        )
    }
}

fn invalid(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidField, message)
}

fn clearable(f: &Fields<'_>, name: &str) -> Result<Clearable, WireError> {
    Ok(match f.map_get(name) {
        None => Clearable::Keep,
        Some(Value::Null) => Clearable::Clear,
        Some(Value::String(s)) => Clearable::Set(s.clone()),
        Some(_) => return Err(invalid(format!("field `{name}` must be a string or null"))),
    })
}

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}

fn limit(f: &Fields<'_>) -> Result<u32, WireError> {
    match f.opt_id("limit")? {
        None => Ok(20),
        Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => Err(invalid(format!("field `limit` must be 1 to {MAX_LIMIT}"))),
    }
}

fn group(f: &Fields<'_>) -> Result<ChatId, WireError> {
    f.id("group_id").map(ChatId)
}

fn ocid(f: &Fields<'_>) -> Result<Ocid, WireError> {
    f.id("ocid").map(Ocid)
}

/// The request with code `c`, if `c` is one of these extension requests.
pub(super) fn decode(c: i64, f: &Fields<'_>) -> Option<Result<Social, WireError>> {
    let request = || -> Result<Social, WireError> {
        Ok(match c {
            code::SET_PROFILE => Social::SetProfile {
                nickname: owned(f.opt_str("nickname")?),
                avatar: owned(f.opt_str("avatar")?),
                signature: owned(f.opt_str("signature")?),
                description: owned(f.opt_str("description")?),
                sex: match f.opt_id("sex")? {
                    None => None,
                    Some(s) => Some(
                        u8::try_from(s).map_err(|_| invalid("field `sex` must be 0, 1, 2 or 3"))?,
                    ),
                },
                status_text: owned(f.opt_str("status_text")?),
                username: clearable(f, "username")?,
                phone: clearable(f, "phone")?,
                group_adds: owned(f.opt_str("group_adds")?),
            },
            code::PROFILE => Social::Profile { ocid: ocid(f)? },
            code::SEARCH => Social::Search {
                by: match f.str("by")? {
                    "ocid" => SearchBy::Ocid,
                    "email" => SearchBy::Email,
                    "phone" => SearchBy::Phone,
                    "username" => SearchBy::Username,
                    "nickname" => SearchBy::Nickname,
                    _ => {
                        return Err(invalid(
                            "field `by` must be ocid, email, phone, username or nickname",
                        ));
                    }
                },
                query: f.str("query")?.to_owned(),
                after: f.opt_id("after")?.unwrap_or(0),
                limit: limit(f)?,
            },
            code::CHANGE_PASSWORD => Social::ChangePassword {
                old: f.str("old_password")?.to_owned(),
                new: f.str("new_password")?.to_owned(),
                keep_others: f.opt_bool("keep_others")?.unwrap_or(false),
            },
            code::SET_SECURITY => Social::SetSecurity {
                password: f.str("password")?.to_owned(),
                question: f.str("question")?.to_owned(),
                answer: f.str("answer")?.to_owned(),
            },
            code::RESET_PASSWORD => Social::ResetPassword {
                by: LoginBy::read(f, "login_type")?,
                account: account(f)?,
                answer: f.str("answer")?.to_owned(),
                password: f.str("new_password")?.to_owned(),
            },
            code::SECURITY_QUESTION => Social::SecurityQuestion {
                by: LoginBy::read(f, "login_type")?,
                account: account(f)?,
            },
            code::LOGINS => Social::Logins,
            code::REVOKE_LOGIN => Social::RevokeLogin {
                id: f.str("id")?.to_owned(),
            },
            code::DELETE_ACCOUNT => Social::DeleteAccount {
                password: f.str("password")?.to_owned(),
            },
            code::SET_REMARK => Social::SetRemark {
                ocid: ocid(f)?,
                remark: f.str("remark")?.to_owned(),
            },
            code::BLOCK => Social::Block {
                ocid: ocid(f)?,
                block: f.opt_bool("block")?.unwrap_or(true),
            },
            code::BLOCKED => Social::Blocked,
            code::GROUP_INFO => Social::GroupInfo { group: group(f)? },
            code::UPDATE_GROUP => Social::UpdateGroup {
                group: group(f)?,
                name: owned(f.opt_str("name")?),
                description: owned(f.opt_str("description")?),
                avatar: owned(f.opt_str("avatar")?),
                join_mode: match f.opt_id("join_mode")? {
                    None => None,
                    Some(m @ 0..=1) => Some(m as u8),
                    Some(_) => return Err(invalid("field `join_mode` must be 0 or 1")),
                },
            },
            code::JOIN_GROUP => Social::JoinGroup {
                group: group(f)?,
                msg: f.opt_str("msg")?.unwrap_or_default().to_owned(),
            },
            code::ANSWER_JOIN => Social::AnswerJoin {
                group: group(f)?,
                ocid: ocid(f)?,
                accept: f.bool("accept")?,
            },
            code::JOIN_REQUESTS => Social::JoinRequests {
                group: f.opt_id("group_id")?.map(ChatId),
            },
            code::INVITE => Social::Invite {
                group: group(f)?,
                ocid: ocid(f)?,
            },
            code::ANSWER_INVITATION => Social::AnswerInvitation {
                group: group(f)?,
                accept: f.bool("accept")?,
            },
            code::INVITATIONS => Social::Invitations,
            code::LEAVE_GROUP => Social::LeaveGroup { group: group(f)? },
            code::KICK => Social::Kick {
                group: group(f)?,
                ocid: ocid(f)?,
            },
            code::SET_ADMIN => Social::SetAdmin {
                group: group(f)?,
                ocid: ocid(f)?,
                admin: f.bool("admin")?,
            },
            code::TRANSFER_GROUP => Social::TransferGroup {
                group: group(f)?,
                ocid: ocid(f)?,
            },
            code::DISBAND => Social::Disband { group: group(f)? },
            code::MY_GROUPS => Social::MyGroups,
            code::FIND_GROUPS => Social::FindGroups {
                query: f.str("query")?.to_owned(),
                after: f.opt_id("after")?.unwrap_or(0),
                limit: limit(f)?,
            },
            code::MARK_READ => Social::MarkRead {
                target: target(f)?,
                index: Index(f.id("index")?),
            },
            code::CHAT_LIST => Social::ChatList,
            code::SET_SERVICE_TOKEN => Social::SetServiceToken {
                token: match f.get("token") {
                    Some(Value::Number(n)) if n.as_u64().is_some() => n.to_string(),
                    Some(Value::Number(_)) => {
                        return Err(WireError::new(
                            ErrorCode::InvalidField,
                            "field `token` must be a string or a non-negative integer",
                        ));
                    }
                    _ => f.str("token")?.to_owned(),
                },
                password: f.str("password")?.to_owned(),
            },
            c => {
                return Err(WireError::new(
                    ErrorCode::UnknownCode,
                    format!("code {c} is not a request this server accepts"),
                ));
            }
        })
    };
    is_request(c).then(request)
}

/// Whether `c` is one of these extension requests (not a reply or push).
fn is_request(c: i64) -> bool {
    (code::SET_PROFILE..=code::FIND_GROUPS).contains(&c) && c % 2 == 0
        || c == code::MARK_READ
        || c == code::CHAT_LIST
        || c == code::SET_SERVICE_TOKEN
}

/// `account` as code 6 takes it: a string, or an integer ocid.
fn account(f: &Fields<'_>) -> Result<String, WireError> {
    match f.get("account") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Ok(f.str("account")?.to_owned()),
    }
}

/// A reply or push: `{code, time}` and `fields`.
pub fn frame(code: i64, time: i64, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("code".into(), json!(code));
    out.insert("time".into(), json!(time));
    if let Value::Object(map) = fields {
        out.extend(map);
    }
    Value::Object(out)
}

/// A chat named as code 0 names it: `group_id` or `private_id`.
pub fn target_fields(to: Target) -> Value {
    match to {
        Target::Private(p) => json!({"private_id": p}),
        Target::Group(g) => json!({"group_id": g}),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Request, decode as decode_frame};
    use super::*;

    fn social(frame: &str) -> Result<Social, WireError> {
        decode_frame(frame)
            .map(|env| match env.request {
                Request::Social(s) => s,
                other => panic!("not a social request: {other:?}"),
            })
            .map_err(|e| e.error)
    }

    #[test]
    fn requests_decode_and_replies_are_refused() {
        assert_eq!(
            social(r#"{"code":124,"nickname":"Ann","username":null}"#),
            Ok(Social::SetProfile {
                nickname: Some("Ann".into()),
                avatar: None,
                signature: None,
                description: None,
                sex: None,
                status_text: None,
                username: Clearable::Clear,
                phone: Clearable::Keep,
                group_adds: None,
            })
        );
        assert_eq!(
            social(r#"{"code":154,"group_id":"7"}"#),
            Ok(Social::JoinGroup {
                group: ChatId(7),
                msg: String::new()
            })
        );
        assert_eq!(
            social(r#"{"code":184,"private_id":10002,"index":4}"#),
            Ok(Social::MarkRead {
                target: Target::Private(Ocid(10002)),
                index: Index(4)
            })
        );
        let e = social(r#"{"code":128,"by":"shoe size","query":"x"}"#).expect_err("bad by");
        assert_eq!(e.code, ErrorCode::InvalidField);
        let e = social(r#"{"code":178,"query":"x","limit":51}"#).expect_err("limit");
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(
            social(r#"{"code":189,"token":1145141919810,"password":"pw"}"#),
            Ok(Social::SetServiceToken {
                token: "1145141919810".into(),
                password: "pw".into()
            })
        );
        let e = social(r#"{"code":189,"token":-1,"password":"pw"}"#).expect_err("token");
        assert_eq!(e.code, ErrorCode::InvalidField);
        for reply in [125, 151, 180, 183, 185, 188, 190, 191] {
            let e = decode_frame(&format!(r#"{{"code":{reply}}}"#)).expect_err("not a request");
            assert_eq!(e.error.code, ErrorCode::UnknownCode, "{reply}");
        }
    }
}
