//! OurChat (seeds 000 and 001) on the core: what the draft v0 (`/ws/v0`) and v1 (`/ws`) share.
//! Both answer failures with an error frame (code 100; OurChat's code 18 in the 2024 flavour) and the error registry of `natter_proto::error`, and both
//! report login and registration outcomes in the seeds' `state` values.

mod social;
mod v0;
mod v1;

pub use v0::V0;
pub use v1::V1;

use crate::dialect::Refusal;
use crate::domain::{DomainError, Invalid};
use crate::store::Range;
use crate::store::Role;
use bytes::Bytes;
use natter_proto::ourchat::{Page, finish};
use natter_proto::{ErrorCode, WireError};
use serde_json::Value;

/// How a version writes its error frame: (time, the failed request's code, error).
type ErrorReply = fn(i64, Option<i64>, &WireError) -> Value;

/// How a version (and flavour) finishes a frame for the wire, with the request's id.
type Finish<'a> = &'a dyn Fn(Value, Option<&Value>) -> Bytes;

/// A frame finished as both OurChat versions write it by default.
fn bytes(frame: Value, request_id: Option<&Value>) -> Bytes {
    Bytes::from(finish(frame, request_id))
}

/// A frame's text decoded by `decode`, or the error frame that answers it (written by
/// `reply`, finished by `finish`).
fn decode_with<E>(
    frame: &[u8],
    reply: ErrorReply,
    finish: Finish<'_>,
    decode: impl FnOnce(&str) -> Result<E, (Option<i64>, Option<Value>, WireError)>,
) -> Result<E, Bytes> {
    let error = |code, rid: Option<&Value>, e: &WireError| finish(reply(now_s(), code, e), rid);
    let text = text(frame).map_err(|e| error(None, None, &e))?;
    decode(text).map_err(|(code, rid, e)| error(code, rid.as_ref(), &e))
}

/// Why a request OurChat assigned is not served.
const UNSUPPORTED: &str = "not supported by this server";

/// Per-connection state of both versions.
#[derive(Debug, Default)]
pub struct Ext {
    /// The client opted in to natter's extension frames (acks, the sync-done marker, pushes):
    /// with `ext` on a login or registration, or by using an extension code.
    pub on: bool,
}

/// Unix seconds now, for the `time` of replies.
fn now_s() -> i64 {
    crate::domain::now_ms() / 1000
}

/// A history page as the store reads it.
fn range(page: Page) -> Range {
    match page {
        Page::Latest => Range::Latest,
        Page::Before(i) => Range::Before(i),
        Page::After(i) => Range::After(i),
    }
}

/// A domain refusal as OurChat reports it: its error code and a sentence for the client.
fn wire_error(e: &DomainError) -> WireError {
    use ErrorCode as C;
    let (code, message) = match e {
        DomainError::Invalid(i) => (C::InvalidField, invalid_text(*i)),
        DomainError::TextTooLong { max } => (
            C::MessageTooLong,
            format!("a message may be at most {max} bytes"),
        ),
        DomainError::EmailTaken => (
            C::EmailTaken,
            "that email address is already registered".into(),
        ),
        DomainError::BadCredentials => (C::BadCredentials, "wrong account or password".into()),
        DomainError::InvalidToken => (
            C::InvalidToken,
            "the session token is unknown, expired or revoked".into(),
        ),
        DomainError::AccountDisabled => (
            C::AccountDisabled,
            "this account is banned or deleted".into(),
        ),
        DomainError::RegistrationClosed => (
            C::RegistrationClosed,
            "this server takes no registrations".into(),
        ),
        DomainError::InvalidInvite => (
            C::InvalidInvite,
            "registration needs a valid, unused invitation code in field `invite`".into(),
        ),
        DomainError::NoSuchAccount(o) => (C::NoSuchAccount, format!("no account with ocid {o}")),
        DomainError::NoSuchChat(c) => (C::NoSuchChat, format!("no chat with id {c}")),
        DomainError::NoSuchGroup(c) => (C::NoSuchChat, format!("no group with id {c}")),
        DomainError::NotAMember(c) => (C::NotAMember, format!("you are not a member of chat {c}")),
        DomainError::NoSuchMember { chat, ocid } => (
            C::NotAMember,
            format!("{ocid} is not a member of group {chat}"),
        ),
        DomainError::NoSuchRequest(o) => (
            C::NoSuchRequest,
            format!("no friend request from {o} is waiting for your answer"),
        ),
        DomainError::NotFriends(o) => (C::NotFriends, format!("{o} is not your friend")),
        DomainError::DuplicateClientId => (
            C::DuplicateClientId,
            "that client_id was already used for a message to another chat".into(),
        ),
        DomainError::UsernameTaken => (C::UsernameTaken, "that username is taken".into()),
        DomainError::PhoneTaken => (
            C::PhoneTaken,
            "that phone number is already registered".into(),
        ),
        DomainError::Forbidden { chat, need } => (
            C::Forbidden,
            match need {
                Role::Owner => format!("only the owner of group {chat} may do this"),
                Role::Admin | Role::Member => {
                    format!("only an admin of group {chat} may do this")
                }
            },
        ),
        DomainError::AlreadyMember(c) => (
            C::AlreadyMember,
            format!("that account is already a member of group {c}"),
        ),
        DomainError::NoSuchJoinRequest { chat, ocid } => (
            C::NoSuchJoinRequest,
            format!("no request from {ocid} to join group {chat} is waiting"),
        ),
        DomainError::NoSuchInvitation(c) => (
            C::NoSuchInvitation,
            format!("no invitation to group {c} is waiting"),
        ),
        DomainError::OwnerCannotLeave(c) => (
            C::OwnerCannotLeave,
            format!("hand group {c} to another member (or disband it) before leaving"),
        ),
        DomainError::Blocking(o) => (C::Blocking, format!("you block {o}; unblock it first")),
        DomainError::NotAccepted(o) => (
            C::NotAccepted,
            format!("{o} does not accept messages from you"),
        ),
        DomainError::ResetLocked { retry_after_s } => (
            C::TooManyAttempts,
            format!("too many wrong answers; try again in {retry_after_s} seconds"),
        ),
        DomainError::TooManyAttempts { retry_after_s } => (
            C::TooManyAttempts,
            format!("too many failed attempts; try again in {retry_after_s} seconds"),
        ),
        DomainError::LimitReached {
            what,
            retry_after_s,
        } => (
            C::LimitReached,
            format!(
                "too many {} in a while; try again in {retry_after_s} seconds",
                what.what()
            ),
        ),
        DomainError::TooManyConnections { max } => (
            C::TooManyConnections,
            format!("this account has {max} connections to this server already; close one first"),
        ),
        DomainError::NoSecurityQuestion => (
            C::NoSecurityQuestion,
            "no security question is set for that account".into(),
        ),
        DomainError::NoSuchLogin => (C::NoSuchLogin, "no login has that id".into()),
        DomainError::NoSuchFile => (
            C::NoSuchFile,
            "no file with that id, or none you may read".into(),
        ),
        DomainError::WrongFileKind { need } => {
            (C::WrongFileKind, format!("the file must be {need}"))
        }
        DomainError::FileTooLarge { max } => (
            C::FileTooLarge,
            format!("a file may be at most {max} bytes"),
        ),
        DomainError::OverQuota { quota } => (
            C::OverQuota,
            format!("your files would exceed your quota of {quota} bytes"),
        ),
        // Only the service-code dialect registers by UUID.
        DomainError::UuidTaken => (C::InvalidField, "that uuid is already registered".into()),
        DomainError::ServiceTokenTaken => (
            C::ServiceTokenTaken,
            "that token is another account's service token".into(),
        ),
        DomainError::Internal => (C::Internal, "the server failed; try again".into()),
    };
    WireError::new(code, message)
}

fn invalid_text(i: Invalid) -> String {
    match i {
        Invalid::NotAnEmail => "field `email` must be an email address".into(),
        Invalid::Email { max } => {
            format!("field `email` must be an email address of at most {max} bytes")
        }
        Invalid::Password { max } => format!("field `password` must be 1 to {max} bytes"),
        Invalid::Nickname { max } => format!("field `name` must be 1 to {max} characters"),
        Invalid::GroupName { max } => format!("field `name` must be at most {max} characters"),
        Invalid::GroupSize { max } => format!("a group may have at most {max} members"),
        Invalid::EmptyText => "field `msg` must not be empty".into(),
        Invalid::ClientId { max } => format!("field `client_id` must be 1 to {max} bytes"),
        Invalid::PrivateChatWithSelf => "a private chat needs another account than your own".into(),
        Invalid::OwnAccount => "that is your own account".into(),
        Invalid::RequestNote { max } => format!("field `msg` must be at most {max} characters"),
        Invalid::Username { max } => format!(
            "field `username` must be 3 to {max} characters of a-z, 0-9, _ and ., starting with a letter"
        ),
        Invalid::Phone => "field `phone` must be an optional + and 6 to 15 digits".into(),
        Invalid::TooLong { field, max } => {
            format!("field `{}` must be at most {max} characters", field.name())
        }
        Invalid::Sex => "field `sex` must be 0, 1, 2 or 3".into(),
        Invalid::Query { max } => format!("field `query` must be 1 to {max} characters"),
        Invalid::Answer { max } => format!("field `answer` must be 1 to {max} characters"),
        Invalid::Question { max } => format!("field `question` must be 1 to {max} characters"),
        Invalid::EmptyEdit => "nothing to change: give at least one field".into(),
        Invalid::MessageType => "field `type` must be 1 to 7".into(),
        Invalid::VoiceDuration { max } => format!(
            "field `file.duration_ms` is required for a voice note (1 to {max}) and allowed only there"
        ),
        Invalid::Uuid => "field `uuid` must be a UUID".into(),
        Invalid::ServiceToken { min, max } => {
            format!("field `token` must be {min} to {max} characters")
        }
        Invalid::GroupAdds => "field `group_adds` must be everyone, friends or nobody".into(),
    }
}

/// A refusal by the connection as OurChat reports it.
fn refusal(why: Refusal) -> WireError {
    match why {
        Refusal::NotLoggedIn => WireError::new(ErrorCode::NotLoggedIn, "log in first"),
        Refusal::RateLimited => {
            WireError::new(ErrorCode::RateLimited, "too many requests; slow down")
        }
        Refusal::FrameTooLarge { max } => WireError::new(
            ErrorCode::FrameTooLarge,
            format!("frames may be at most {max} bytes"),
        ),
        Refusal::BinaryFrame => {
            WireError::new(ErrorCode::BinaryFrame, "only text frames are accepted")
        }
    }
}

/// OurChat's unregister (code 16, both versions): delete the logged-in account, the connection
/// being the proof, as in OurChat; `Some` reason when it failed. The account's logins end after
/// the reply (their connections close with 4001).
async fn unregister<D: crate::dialect::Dialect>(c: &mut crate::conn::Conn<D>) -> Option<String> {
    let me = c.me()?;
    let origin = Some(c.origin());
    let deleted = Box::pin(c.domain().erase_account(me, origin)).await;
    deleted.err().map(|e| wire_error(&e).message)
}

/// The code and request id of a frame refused before it was decoded, to name it in the
/// refusal.
fn undecoded_head(frame: Option<&[u8]>) -> (Option<i64>, Option<Value>) {
    let head = frame
        .and_then(|f| std::str::from_utf8(f).ok())
        .map(natter_proto::json::fields::head_of);
    head.map_or((None, None), |h| (h.code, h.request_id))
}

/// A frame's text: OurChat frames are JSON, which is UTF-8.
fn text(frame: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(frame)
        .map_err(|_| WireError::new(ErrorCode::BadJson, "frame is not valid UTF-8"))
}

/// A login or resume outcome in the seeds' `state`: 0 ok, 1 rejected (wrong account, password
/// or token), 2 server failure.
fn auth_state<T>(result: &Result<T, DomainError>) -> u8 {
    match result {
        Ok(_) => 0,
        Err(
            DomainError::BadCredentials | DomainError::InvalidToken | DomainError::AccountDisabled,
        ) => 1,
        Err(_) => 2,
    }
}

/// A registration outcome in the seeds' `state` (0 ok, 1 server error, 2 email taken), or the
/// refusal the seeds have no state for.
fn register_state<T>(result: &Result<T, DomainError>) -> Result<u8, WireError> {
    match result {
        Ok(_) => Ok(0),
        Err(DomainError::EmailTaken) => Ok(2),
        Err(DomainError::Internal) => Ok(1),
        Err(e) => Err(wire_error(e)),
    }
}
