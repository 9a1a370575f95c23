//! OurChat v1 (seed 001), served at `GET /ws`, and as OurChat's own 2024 clients and server
//! spoke it, at the WebSocket upgrade of `GET /` (the [`Flavour`]): flat `{code, time, ...}` JSON
//! text frames.
//!
//! Codes 0 and 4-11 are the seed's; 12-22 are the codes OurChat itself assigned later (server
//! status, verification, unregister, its error frame, account edits, uploads); 100 and up are
//! natter's documented extensions: error frames (100) are always sent, the other unasked frames
//! (acks, the sync-done marker, pushes) only once the client opted in (`ext`, or the first use
//! of an extension code). See `docs/protocol/ourchat-v1.md`. Every reply may carry the
//! request's `request_id`.

pub mod social;

pub use super::finish;
use super::{MAX_HISTORY, MAX_SINCE, Page};
use crate::json::fields::{self, Fields, Head};
use crate::json::scan::Scanner;
use crate::view::{FileKind, MessageView};
use crate::{ChatId, ErrorCode, Index, MessageId, Ocid, WireError};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

pub mod code {
    // The seed's.
    pub const TEXT: i64 = 0;
    /// The seed's codes for emoji (and GIFs), images and files; natter sends voice notes as
    /// files with a `duration_ms`.
    pub const EMOJI: i64 = 1;
    pub const IMAGE: i64 = 2;
    pub const FILE: i64 = 3;
    pub const REGISTER: i64 = 4;
    pub const REGISTER_REPLY: i64 = 5;
    pub const LOGIN: i64 = 6;
    pub const LOGIN_REPLY: i64 = 7;
    pub const NEW_SESSION: i64 = 8;
    pub const NEW_SESSION_REPLY: i64 = 9;
    pub const ACCOUNT_INFO: i64 = 10;
    pub const ACCOUNT_INFO_REPLY: i64 = 11;
    // Assigned later by OurChat itself.
    /// Both ways: the client asks, the server answers with `status` (0 running).
    pub const SERVER_STATUS: i64 = 12;
    /// Server to client: start an email verification (never sent by natter).
    pub const VERIFY_START: i64 = 13;
    /// Client to server: send me a verification code.
    pub const VERIFY_REQUEST: i64 = 14;
    /// Server to client: the verification's outcome (`status`).
    pub const VERIFY_STATUS: i64 = 15;
    /// Client to server: delete my account.
    pub const UNREGISTER: i64 = 16;
    pub const UNREGISTER_REPLY: i64 = 17;
    /// Server to client: OurChat's error frame (`details`), used by the 2024 flavour.
    pub const OURCHAT_ERROR: i64 = 18;
    /// Client to server: change my account's details.
    pub const SET_ACCOUNT: i64 = 19;
    pub const SET_ACCOUNT_REPLY: i64 = 20;
    /// Client to server: announce an upload.
    pub const UPLOAD: i64 = 21;
    pub const UPLOAD_REPLY: i64 = 22;
    // natter's extensions, from EXTENSIONS up: a request with one of these opts the connection
    // in to the extension frames.
    pub const EXTENSIONS: i64 = 100;
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
    pub const FRIEND_REQUEST_REPLY: i64 = 112;
    pub const FRIEND_ANSWER: i64 = 113;
    pub const FRIEND_ANSWER_REPLY: i64 = 114;
    pub const FRIEND_REMOVE: i64 = 115;
    pub const FRIEND_REMOVE_REPLY: i64 = 116;
    pub const FRIENDS: i64 = 117;
    pub const FRIENDS_REPLY: i64 = 118;
    pub const FRIEND_REQUEST_PUSH: i64 = 119;
    pub const FRIEND_UPDATE: i64 = 120;
    pub const TYPING: i64 = 121;
    pub const TYPING_PUSH: i64 = 122;
    pub const PRESENCE: i64 = 123;
    // Accounts (see `social`).
    pub const SET_PROFILE: i64 = 124;
    pub const SET_PROFILE_REPLY: i64 = 125;
    pub const PROFILE: i64 = 126;
    pub const PROFILE_REPLY: i64 = 127;
    pub const SEARCH: i64 = 128;
    pub const SEARCH_REPLY: i64 = 129;
    pub const CHANGE_PASSWORD: i64 = 130;
    pub const CHANGE_PASSWORD_REPLY: i64 = 131;
    pub const SET_SECURITY: i64 = 132;
    pub const SET_SECURITY_REPLY: i64 = 133;
    pub const RESET_PASSWORD: i64 = 134;
    pub const RESET_PASSWORD_REPLY: i64 = 135;
    pub const SECURITY_QUESTION: i64 = 136;
    pub const SECURITY_QUESTION_REPLY: i64 = 137;
    pub const LOGINS: i64 = 138;
    pub const LOGINS_REPLY: i64 = 139;
    pub const REVOKE_LOGIN: i64 = 140;
    pub const REVOKE_LOGIN_REPLY: i64 = 141;
    pub const DELETE_ACCOUNT: i64 = 142;
    pub const DELETE_ACCOUNT_REPLY: i64 = 143;
    pub const SET_REMARK: i64 = 144;
    pub const SET_REMARK_REPLY: i64 = 145;
    pub const BLOCK: i64 = 146;
    pub const BLOCK_REPLY: i64 = 147;
    pub const BLOCKED: i64 = 148;
    pub const BLOCKED_REPLY: i64 = 149;
    // Groups.
    pub const GROUP_INFO: i64 = 150;
    pub const GROUP_INFO_REPLY: i64 = 151;
    pub const UPDATE_GROUP: i64 = 152;
    pub const UPDATE_GROUP_REPLY: i64 = 153;
    pub const JOIN_GROUP: i64 = 154;
    pub const JOIN_GROUP_REPLY: i64 = 155;
    pub const ANSWER_JOIN: i64 = 156;
    pub const ANSWER_JOIN_REPLY: i64 = 157;
    pub const JOIN_REQUESTS: i64 = 158;
    pub const JOIN_REQUESTS_REPLY: i64 = 159;
    pub const INVITE: i64 = 160;
    pub const INVITE_REPLY: i64 = 161;
    pub const ANSWER_INVITATION: i64 = 162;
    pub const ANSWER_INVITATION_REPLY: i64 = 163;
    pub const INVITATIONS: i64 = 164;
    pub const INVITATIONS_REPLY: i64 = 165;
    pub const LEAVE_GROUP: i64 = 166;
    pub const LEAVE_GROUP_REPLY: i64 = 167;
    pub const KICK: i64 = 168;
    pub const KICK_REPLY: i64 = 169;
    pub const SET_ADMIN: i64 = 170;
    pub const SET_ADMIN_REPLY: i64 = 171;
    pub const TRANSFER_GROUP: i64 = 172;
    pub const TRANSFER_GROUP_REPLY: i64 = 173;
    pub const DISBAND: i64 = 174;
    pub const DISBAND_REPLY: i64 = 175;
    pub const MY_GROUPS: i64 = 176;
    pub const MY_GROUPS_REPLY: i64 = 177;
    pub const FIND_GROUPS: i64 = 178;
    pub const FIND_GROUPS_REPLY: i64 = 179;
    pub const JOIN_REQUEST_PUSH: i64 = 180;
    pub const JOIN_ANSWER_PUSH: i64 = 181;
    pub const INVITATION_PUSH: i64 = 182;
    pub const REMOVED_PUSH: i64 = 183;
    // Read state.
    pub const MARK_READ: i64 = 184;
    pub const MARK_READ_REPLY: i64 = 185;
    pub const CHAT_LIST: i64 = 186;
    pub const CHAT_LIST_REPLY: i64 = 187;
    pub const READ_PUSH: i64 = 188;
}

/// Which OurChat a connection speaks: seed 001 as written (`/ws`), or OurChat as its 2024
/// clients and server spoke it (`/`): `status` in place of `state`, ocids as strings, errors as
/// OurChat's code 18.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Seed,
    OurChat2024,
}

/// Longest list accepted in `members` or `request_values` before the domain's own limits apply.
pub const MAX_LIST: usize = 10_000;

/// Who a message is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A private chat with this account.
    Private(Ocid),
    /// A group chat.
    Group(ChatId),
}

/// `login_type` of code 6 (and how codes 134 and 136 name an account): 0 email, 1 ocid, and
/// natter's 2 username, 3 phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginBy {
    Email,
    Ocid,
    Username,
    Phone,
}

impl LoginBy {
    /// `login_type` read as the seed writes it (0/1, or false/true) or as natter extends it.
    pub(crate) fn read(f: &Fields<'_>, name: &str) -> Result<Self, WireError> {
        Ok(match f.get(name) {
            Some(Value::Bool(false)) => Self::Email,
            Some(Value::Bool(true)) => Self::Ocid,
            _ => match f.int(name)? {
                0 => Self::Email,
                1 => Self::Ocid,
                2 => Self::Username,
                3 => Self::Phone,
                _ => {
                    return Err(WireError::new(
                        ErrorCode::InvalidField,
                        format!(
                            "field `{name}` must be 0 (email), 1 (ocid), 2 (username) or 3 (phone)"
                        ),
                    ));
                }
            },
        })
    }
}

/// One `request_values` entry of code 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoField {
    Ocid,
    Nickname,
    Status,
    Avatar,
    Time,
    Email,
    /// A value natter does not know (later clients ask for more): answered as `null`.
    Unknown,
}

impl InfoField {
    fn parse(s: &str) -> Self {
        match s {
            "ocid" => Self::Ocid,
            "nickname" => Self::Nickname,
            "status" => Self::Status,
            // The seed spells it `avater`; both are accepted and answered under the asked name.
            "avater" | "avatar" => Self::Avatar,
            "time" => Self::Time,
            "email" => Self::Email,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Text {
        to: Target,
        msg: String,
        /// Extension: the client's own id for this message; a resend with the same id returns
        /// the stored message instead of storing a duplicate.
        client_id: Option<String>,
        /// Extension: the message type (1 normal if absent; 2-7 as seed 003 lists them).
        kind: Option<u8>,
    },
    /// Codes 1 (emoji), 2 (image) and 3 (file, or a voice note with `file.duration_ms`): a
    /// message carrying an uploaded file, with an optional caption in `msg`.
    File {
        to: Target,
        /// The uploaded file's id.
        file: String,
        kind: FileKind,
        duration_ms: Option<u64>,
        msg: String,
        client_id: Option<String>,
    },
    Register {
        /// Which identity `account` is: the seed's `email`, or natter's `username` or `phone`
        /// given in place of it.
        by: LoginBy,
        account: String,
        password: String,
        /// Absent in some clients: the email's local part is used.
        name: Option<String>,
        /// Opts in to natter's extension frames.
        ext: bool,
        /// Extension: an invitation code, for a server that registers by invitation only.
        invite: Option<String>,
    },
    Login {
        by: LoginBy,
        account: String,
        password: String,
        /// Opts in to natter's extension frames.
        ext: bool,
    },
    /// Code 12: is the server running?
    ServerStatus,
    /// Code 16: delete my account.
    Unregister,
    /// A request OurChat assigned that natter does not serve (14, 19, 21): answered with
    /// `reply` and a failing `status`.
    Unsupported {
        reply: i64,
    },
    NewSession {
        members: Vec<Ocid>,
        name: Option<String>,
    },
    AccountInfo {
        ocid: Ocid,
        /// Each requested field with the name it was asked under.
        values: Vec<(InfoField, String)>,
    },
    Resume {
        token: String,
        /// Per chat, the last index the client holds (extension: nothing up to it is sent).
        since: Vec<(Target, Index)>,
    },
    History {
        target: Target,
        page: Page,
        limit: u32,
    },
    Heartbeat,
    Logout,
    /// Ask `ocid` to be friends, with an optional note.
    FriendRequest {
        ocid: Ocid,
        msg: String,
    },
    /// Accept or reject the request `ocid` sent.
    FriendAnswer {
        ocid: Ocid,
        accept: bool,
    },
    FriendRemove {
        ocid: Ocid,
    },
    Friends,
    /// The sender is typing to a chat.
    Typing {
        to: Target,
    },
    /// Codes 124-188: accounts, groups and read state.
    Social(social::Social),
}

/// A decoded request with its head.
#[derive(Debug)]
pub struct Envelope {
    pub code: i64,
    pub request_id: Option<Value>,
    pub request: Request,
}

/// A request that failed to decode: answered with code 100, naming the request's code and id.
#[derive(Debug)]
pub struct DecodeError {
    pub code: Option<i64>,
    pub request_id: Option<Value>,
    pub error: WireError,
}

/// A well-formed code 0 frame in its common shape, read by a strict scanner (no JSON tree, no
/// map of fields): `code`, `sender` (exactly one of `group_id` and `private_id`, as plain
/// integers), `msg`, and optionally `client_id`, `request_id` (a string or a non-negative
/// integer) and other fields with scalar values, which are skipped. `None` sends the frame to
/// the general decoder, which accepts everything this accepts, decodes it the same way, and
/// names what is wrong with the rest.
fn plain_text(text: &str) -> Option<Envelope> {
    let mut scan = Scanner::new(text);
    let (mut code, mut msg, mut client_id, mut request_id) = (None, None, None, None);
    let mut kind = None;
    let (mut group, mut private, mut sender) = (None, None, false);
    scan.object(|scan, key| match key {
        // Any other request is left to the general decoder as soon as its code is read.
        "code" => once(&mut code, scan, Scanner::uint).filter(|()| code == Some(code::TEXT as u64)),
        "msg" => once(&mut msg, scan, Scanner::string),
        "client_id" => once_or_null(&mut client_id, scan, Scanner::string),
        "type" => once_or_null(&mut kind, scan, |scan| {
            scan.uint().and_then(|k| u8::try_from(k).ok())
        }),
        "request_id" => once_or_null(&mut request_id, scan, |scan| {
            if scan.at_string() {
                Some(Value::String(scan.string()?.into_owned()))
            } else {
                scan.uint().map(Value::from)
            }
        }),
        "sender" if !sender => {
            sender = true;
            scan.object(|scan, key| match key {
                "group_id" => once_or_null(&mut group, scan, Scanner::uint),
                "private_id" => once_or_null(&mut private, scan, Scanner::uint),
                _ => scan.skip_scalar(),
            })
        }
        "sender" => None,
        _ => scan.skip_scalar(),
    })?;
    scan.end()?;
    let (group, private) = (group.flatten(), private.flatten());
    let (client_id, request_id) = (client_id.flatten(), request_id.flatten());
    let to = match (group, private) {
        (Some(g), None) => Target::Group(ChatId(g)),
        (None, Some(p)) => Target::Private(Ocid(p)),
        _ => return None,
    };
    if code.is_none()
        || request_id
            .as_ref()
            .is_some_and(|id| !fields::valid_request_id(id))
    {
        return None;
    }
    Some(Envelope {
        code: code::TEXT,
        request_id,
        request: Request::Text {
            to,
            msg: msg?.into_owned(),
            client_id: client_id.map(Cow::into_owned),
            kind: kind.flatten(),
        },
    })
}

/// Read a field's value into `slot`, which must still be empty: a repeated field is left to
/// the general decoder (where the last one counts).
fn once<'a, T>(
    slot: &mut Option<T>,
    scan: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Option<T>,
) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(read(scan)?);
    Some(())
}

/// `once` for a field where `null` means absent: `Some(None)` records a `null`, so a field
/// given as a value and again as `null` is a repeat too.
fn once_or_null<'a, T>(
    slot: &mut Option<Option<T>>,
    scan: &mut Scanner<'a>,
    read: impl FnOnce(&mut Scanner<'a>) -> Option<T>,
) -> Option<()> {
    once(slot, scan, |scan| {
        if scan.null() {
            Some(None)
        } else {
            read(scan).map(Some)
        }
    })
}

/// Decode one text frame.
///
/// # Errors
/// Any malformed, unknown or mistyped request, with the code to answer it with.
pub fn decode(text: &str) -> Result<Envelope, DecodeError> {
    if let Some(env) = plain_text(text) {
        return Ok(env);
    }
    let (map, Head { code, request_id }) =
        fields::parse_object(text).map_err(|(head, error)| DecodeError {
            code: head.code,
            request_id: head.request_id,
            error,
        })?;
    let code = code.unwrap_or(-1);
    match decode_body(code, &map) {
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

fn target(sender: &Fields<'_>) -> Result<Target, WireError> {
    match (sender.opt_id("group_id")?, sender.opt_id("private_id")?) {
        (Some(g), None) => Ok(Target::Group(ChatId(g))),
        (None, Some(p)) => Ok(Target::Private(Ocid(p))),
        (None, None) => Err(WireError::new(
            ErrorCode::MissingField,
            "one of `group_id` or `private_id` is required",
        )),
        (Some(_), Some(_)) => Err(WireError::new(
            ErrorCode::InvalidField,
            "only one of `group_id` or `private_id` may be given",
        )),
    }
}

fn decode_body(code: i64, map: &Map<String, Value>) -> Result<Request, WireError> {
    let f = Fields::new(map, "");
    Ok(match code {
        code::TEXT => {
            let sender = f.object("sender")?;
            Request::Text {
                to: target(&sender)?,
                msg: f.str("msg")?.to_owned(),
                client_id: f.opt_str("client_id")?.map(str::to_owned),
                kind: match f.opt_id("type")? {
                    None => None,
                    Some(k) => Some(u8::try_from(k).map_err(|_| {
                        WireError::new(ErrorCode::InvalidField, "field `type` must be 1 to 7")
                    })?),
                },
            }
        }
        code::REGISTER => {
            // natter: a `username` or a `phone` in place of the seed's `email`.
            let (by, account) = match (
                f.opt_str("email")?,
                f.opt_str("username")?,
                f.opt_str("phone")?,
            ) {
                (Some(e), _, _) => (LoginBy::Email, e),
                (None, Some(u), _) => (LoginBy::Username, u),
                (None, None, Some(p)) => (LoginBy::Phone, p),
                (None, None, None) => (LoginBy::Email, f.str("email")?),
            };
            Request::Register {
                by,
                account: account.to_owned(),
                password: f.str("password")?.to_owned(),
                name: f.opt_str("name")?.map(str::to_owned),
                ext: f.opt_flag("ext")?.unwrap_or(false),
                invite: f.opt_str("invite")?.map(str::to_owned),
            }
        }
        code::LOGIN => {
            // 0/1 as the seed writes it; false/true as some clients send it.
            let by = LoginBy::read(&f, "login_type")?;
            // `account` is a string in the seed; an integer ocid is accepted too.
            let account = match f.get("account") {
                Some(Value::Number(n)) if by == LoginBy::Ocid => n.to_string(),
                _ => f.str("account")?.to_owned(),
            };
            Request::Login {
                by,
                account,
                password: f.str("password")?.to_owned(),
                ext: f.opt_flag("ext")?.unwrap_or(false),
            }
        }
        code::NEW_SESSION => Request::NewSession {
            members: f
                .id_list("members", MAX_LIST)?
                .into_iter()
                .map(Ocid)
                .collect(),
            name: f.opt_str("name")?.map(str::to_owned),
        },
        code::ACCOUNT_INFO => {
            let names = f.str_list("request_values", 16)?;
            let mut values = Vec::with_capacity(names.len());
            for name in names {
                values.push((InfoField::parse(name), name.to_owned()));
            }
            Request::AccountInfo {
                ocid: Ocid(f.id("ocid")?),
                values,
            }
        }
        code::RESUME => Request::Resume {
            token: f.str("token")?.to_owned(),
            since: f
                .opt_objects("since", MAX_SINCE)?
                .iter()
                .map(|o| Ok((target(o)?, Index(o.id("index")?))))
                .collect::<Result<_, WireError>>()?,
        },
        code::HISTORY => {
            let (page, limit) = super::page(&f, MAX_HISTORY)?;
            Request::History {
                target: target(&f)?,
                page,
                limit,
            }
        }
        code::HEARTBEAT => Request::Heartbeat,
        code::LOGOUT => Request::Logout,
        code::FRIEND_REQUEST => Request::FriendRequest {
            ocid: Ocid(f.id("ocid")?),
            msg: f.opt_str("msg")?.unwrap_or_default().to_owned(),
        },
        code::FRIEND_ANSWER => Request::FriendAnswer {
            ocid: Ocid(f.id("ocid")?),
            accept: f.bool("accept")?,
        },
        code::FRIEND_REMOVE => Request::FriendRemove {
            ocid: Ocid(f.id("ocid")?),
        },
        code::FRIENDS => Request::Friends,
        code::TYPING => Request::Typing { to: target(&f)? },
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
        c if let Some(request) = social::decode(c, &f) => Request::Social(request?),
        code::EMOJI | code::IMAGE | code::FILE => {
            let sender = f.object("sender")?;
            let file = f.object("file")?;
            let duration_ms = file.opt_id("duration_ms")?;
            let kind = match code {
                code::EMOJI => FileKind::Emoji,
                code::IMAGE => FileKind::Image,
                _ if duration_ms.is_some() => FileKind::Voice,
                _ => FileKind::File,
            };
            Request::File {
                to: target(&sender)?,
                file: file.str("id")?.to_owned(),
                kind,
                duration_ms,
                msg: f.opt_str("msg")?.unwrap_or_default().to_owned(),
                client_id: f.opt_str("client_id")?.map(str::to_owned),
            }
        }
        c => {
            return Err(WireError::new(
                ErrorCode::UnknownCode,
                format!("code {c} is not a request this server accepts"),
            ));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Server -> client frames.

/// `sender` of a delivered text message.
#[derive(Debug, Serialize)]
struct Sender {
    ocid: Ocid,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<ChatId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_id: Option<Ocid>,
}

#[derive(Debug, Serialize)]
struct TextFrame<'a> {
    code: i64,
    time: i64,
    cid: MessageId,
    sender: Sender,
    msg: &'a str,
    index: Index,
    /// Extension: the message type, when it is not 1 (normal).
    #[serde(rename = "type", skip_serializing_if = "is_normal")]
    kind: u8,
    /// The file of a code 1, 2 or 3 message.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<Value>,
}

/// The code a message travels under: 0 text, 1 emoji, 2 image, 3 file or voice note.
pub fn message_code(m: &MessageView<'_>) -> i64 {
    match m.file.map(|f| f.kind) {
        None => code::TEXT,
        Some(FileKind::Emoji) => code::EMOJI,
        Some(FileKind::Image) => code::IMAGE,
        Some(FileKind::File | FileKind::Voice) => code::FILE,
    }
}

fn is_normal(kind: &u8) -> bool {
    *kind == crate::view::kind::NORMAL
}

/// Code 0 as delivered: `cid` is the message id, `index` (extension) its place in the chat.
/// In a private chat `private_id` is the receiving account, as the seed defines it, so the
/// same bytes go to both parties and to every device.
pub fn text_value(m: &MessageView<'_>) -> Value {
    serde_json::to_value(text_frame(m)).unwrap_or(Value::Null)
}

fn text_frame<'a>(m: &MessageView<'a>) -> TextFrame<'a> {
    let (group_id, private_id) = match m.private_to {
        Some(to) => (None, Some(to)),
        None => (Some(m.chat), None),
    };
    TextFrame {
        code: message_code(m),
        time: m.time_s(),
        cid: m.id,
        sender: Sender {
            ocid: m.sender,
            group_id,
            private_id,
        },
        msg: m.text,
        index: m.index,
        kind: m.kind,
        file: m.file.and_then(|f| serde_json::from_str(f.json).ok()),
    }
}

/// Code 0 encoded, once per message, for every v1 connection of a flavour that receives it:
/// the bytes `serde_json` writes for [`text_value`] (made [`flavoured`]), without its per-key
/// escaping.
pub fn encode_text(m: &MessageView<'_>, flavour: Flavour) -> String {
    let file_len = m.file.map_or(0, |f| f.json.len() + 8);
    let mut w = crate::json::Writer::new(160 + m.text.len() + file_len);
    w.lit(r#"{"code":"#)
        .int(message_code(m) as u64)
        .lit(r#","time":"#)
        .int(m.time_s())
        .lit(r#","cid":"#)
        .int(m.id.0);
    match flavour {
        Flavour::Seed => {
            w.lit(r#","sender":{"ocid":"#).int(m.sender.0);
            match m.private_to {
                Some(to) => w.lit(r#","private_id":"#).int(to.0),
                None => w.lit(r#","group_id":"#).int(m.chat.0),
            };
        }
        Flavour::OurChat2024 => {
            w.lit(r#","sender":{"ocid":""#).int(m.sender.0);
            match m.private_to {
                Some(to) => w.lit(r#"","private_id":""#).int(to.0).lit(r#"""#),
                None => w.lit(r#"","group_id":"#).int(m.chat.0),
            };
        }
    }
    w.lit(r#"},"msg":"#)
        .str(m.text)
        .lit(r#","index":"#)
        .int(m.index.0);
    if m.kind != crate::view::kind::NORMAL {
        w.lit(r#","type":"#).int(u64::from(m.kind));
    }
    if let Some(file) = m.file {
        // The server's own JSON object, written whole.
        w.lit(r#","file":"#).raw(file.json);
    }
    w.lit("}").finish()
}

/// Code 5: `state` 0 registered, 1 server error, 2 email taken.
pub fn register_reply(time: i64, state: u8, ocid: Option<Ocid>) -> Value {
    let mut v = json!({"code": code::REGISTER_REPLY, "time": time, "state": state});
    if let Some(ocid) = ocid {
        v["ocid"] = json!(ocid);
    }
    v
}

pub fn login_reply(
    time: i64,
    code: i64,
    state: u8,
    ocid: Option<Ocid>,
    token: Option<&str>,
) -> Value {
    let mut v = json!({"code": code, "time": time, "state": state});
    if let Some(ocid) = ocid {
        v["ocid"] = json!(ocid);
    }
    if let Some(token) = token {
        v["token"] = json!(token);
    }
    v
}

pub fn new_session_reply(time: i64, result: Result<ChatId, &str>) -> Value {
    match result {
        Ok(group) => {
            json!({"code": code::NEW_SESSION_REPLY, "time": time, "success": true, "msg": "", "group_id": group})
        }
        Err(why) => {
            json!({"code": code::NEW_SESSION_REPLY, "time": time, "success": false, "msg": why})
        }
    }
}

pub fn account_info_reply(time: i64, data: Map<String, Value>) -> Value {
    json!({"code": code::ACCOUNT_INFO_REPLY, "time": time, "data": data})
}

/// Code 100: the reply to any request that failed. In the 2024 flavour (see [`flavoured`]) it
/// becomes OurChat's code 18, with the message as `details`.
pub fn error_reply(time: i64, request: Option<i64>, e: &WireError) -> Value {
    json!({
        "code": code::ERROR,
        "time": time,
        "request": request,
        "error_code": e.code.number(),
        "error": e.code.name(),
        "message": e.message,
    })
}

/// Code 12's answer: the server is running.
pub fn server_status(time: i64) -> Value {
    json!({"code": code::SERVER_STATUS, "time": time, "status": 0})
}

/// The answer, with code `reply`, to a request OurChat assigned that this server does not
/// serve: `status` 1 (OurChat's "failed") and why in `details`.
pub fn unsupported(time: i64, reply: i64, details: &str) -> Value {
    json!({"code": reply, "time": time, "status": 1, "details": details})
}

/// Code 17: the account is deleted (`status` 0), or why not (`status` 1 and `details`).
pub fn unregister_reply(time: i64, refused: Option<&str>) -> Value {
    match refused {
        None => json!({"code": code::UNREGISTER_REPLY, "time": time, "status": 0}),
        Some(why) => unsupported(time, code::UNREGISTER_REPLY, why),
    }
}

/// Code 103, encoded: the message is durable; its id and index (one per send, so written
/// field by field).
pub fn encode_ack(
    time: i64,
    to: Target,
    id: MessageId,
    index: Index,
    client_id: Option<&str>,
    request_id: Option<&Value>,
    flavour: Flavour,
) -> String {
    let mut w = crate::json::Writer::new(128 + client_id.map_or(0, str::len));
    w.lit(r#"{"code":103,"time":"#)
        .int(time)
        .lit(r#","cid":"#)
        .int(id.0)
        .lit(r#","index":"#)
        .int(index.0);
    match (to, flavour) {
        (Target::Group(g), _) => w.lit(r#","group_id":"#).int(g.0),
        (Target::Private(p), Flavour::Seed) => w.lit(r#","private_id":"#).int(p.0),
        (Target::Private(p), Flavour::OurChat2024) => {
            w.lit(r#","private_id":""#).int(p.0).lit(r#"""#)
        }
    };
    if let Some(c) = client_id {
        w.lit(r#","client_id":"#).str(c);
    }
    if let Some(r) = request_id {
        w.lit(r#","request_id":"#).value(r);
    }
    w.lit("}").finish()
}

pub fn history_reply(time: i64, to: Target, messages: Vec<Value>, more: bool) -> Value {
    let mut v =
        json!({"code": code::HISTORY_REPLY, "time": time, "messages": messages, "more": more});
    put_target(&mut v, to);
    v
}

pub fn sync_done(time: i64, count: u64) -> Value {
    json!({"code": code::SYNC_DONE, "time": time, "count": count})
}

fn put_target(v: &mut Value, to: Target) {
    match to {
        Target::Private(p) => v["private_id"] = json!(p),
        Target::Group(g) => v["group_id"] = json!(g),
    }
}

/// Code 112. `state`: 0 the request waits for an answer, 1 now friends (the other account had
/// asked first), 2 already friends.
pub fn friend_request_reply(time: i64, ocid: Ocid, state: u8) -> Value {
    json!({"code": code::FRIEND_REQUEST_REPLY, "time": time, "ocid": ocid, "state": state})
}

pub fn friend_answer_reply(time: i64, ocid: Ocid, accept: bool) -> Value {
    json!({"code": code::FRIEND_ANSWER_REPLY, "time": time, "ocid": ocid, "accept": accept})
}

pub fn friend_remove_reply(time: i64, ocid: Ocid) -> Value {
    json!({"code": code::FRIEND_REMOVE_REPLY, "time": time, "ocid": ocid})
}

/// One entry of code 118's `friends`: `since` in Unix seconds.
pub fn friend_value(ocid: Ocid, since: i64, online: bool) -> Value {
    json!({"ocid": ocid, "since": since, "online": online})
}

/// One entry of code 118's `requests`: `time` in Unix seconds.
pub fn request_value(ocid: Ocid, msg: &str, time: i64) -> Value {
    json!({"ocid": ocid, "msg": msg, "time": time})
}

pub fn friends_reply(time: i64, friends: Vec<Value>, requests: Vec<Value>) -> Value {
    json!({"code": code::FRIENDS_REPLY, "time": time, "friends": friends, "requests": requests})
}

/// Code 119: `ocid` asks to be friends.
pub fn friend_request_push(time: i64, ocid: Ocid, msg: &str) -> Value {
    json!({"code": code::FRIEND_REQUEST_PUSH, "time": time, "ocid": ocid, "msg": msg})
}

/// Code 120: the friendship with `ocid` changed (`state` accepted, rejected or removed) by `by`.
pub fn friend_update(time: i64, ocid: Ocid, state: &str, by: Ocid) -> Value {
    json!({"code": code::FRIEND_UPDATE, "time": time, "ocid": ocid, "state": state, "by": by})
}

/// Code 122: `ocid` is typing; the chat is named as in a delivered code 0.
pub fn typing_push(time: i64, ocid: Ocid, to: Target) -> Value {
    let mut sender = json!({"ocid": ocid});
    put_target(&mut sender, to);
    json!({"code": code::TYPING_PUSH, "time": time, "sender": sender})
}

/// Code 123: a friend came online or went offline.
pub fn presence(time: i64, ocid: Ocid, online: bool) -> Value {
    json!({"code": code::PRESENCE, "time": time, "ocid": ocid, "online": online})
}

pub fn simple(code: i64, time: i64) -> Value {
    json!({"code": code, "time": time})
}

/// Fields that carry an ocid, written as strings in the 2024 flavour.
const OCID_FIELDS: [&str; 3] = ["ocid", "private_id", "by"];

/// Strings for the ocid fields of `v` and of every object inside it.
fn ocids_as_strings(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                match field {
                    Value::Number(n) if OCID_FIELDS.contains(&k.as_str()) => {
                        *field = Value::String(n.to_string());
                    }
                    other => ocids_as_strings(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(ocids_as_strings),
        _ => {}
    }
}

/// A frame as `flavour` writes it. Seed: where seed 001 has `state` (codes 5 and 7, and the
/// resume reply), `status` beside it with the same value, as later clients read it. 2024:
/// `status` in place of `state` there, ocids as strings, code 9 and 11 with their `status`
/// (and code 9's `session_id`), and the error frame as OurChat's code 18 with `details`.
pub fn flavoured(mut frame: Value, flavour: Flavour) -> Value {
    let Value::Object(map) = &mut frame else {
        return frame;
    };
    let code = map.get("code").and_then(Value::as_i64);
    let states = matches!(
        code,
        Some(code::REGISTER_REPLY | code::LOGIN_REPLY | code::RESUME_REPLY)
    );
    match flavour {
        Flavour::Seed => {
            if states && let Some(state) = map.get("state").cloned() {
                map.insert("status".into(), state);
            }
        }
        Flavour::OurChat2024 => {
            if states && let Some(state) = map.remove("state") {
                map.insert("status".into(), state);
            }
            match code {
                Some(code::NEW_SESSION_REPLY) => {
                    let ok = map.get("success") == Some(&Value::Bool(true));
                    map.insert("status".into(), json!(if ok { 0 } else { 1 }));
                    if let Some(group) = map.get("group_id").and_then(Value::as_u64) {
                        map.insert("session_id".into(), Value::String(group.to_string()));
                    }
                }
                Some(code::ACCOUNT_INFO_REPLY) => {
                    map.insert("status".into(), json!(0));
                }
                Some(code::ERROR) => {
                    map.insert("code".into(), json!(code::OURCHAT_ERROR));
                    if let Some(message) = map.get("message").cloned() {
                        map.insert("details".into(), message);
                    }
                }
                _ => {}
            }
            ocids_as_strings(&mut frame);
        }
    }
    frame
}

/// Serialize a reply in `flavour`, adding the echoed `request_id` when there is one.
pub fn finish_as(frame: Value, request_id: Option<&Value>, flavour: Flavour) -> String {
    finish(flavoured(frame, flavour), request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code 103 as `serde_json` would write it, to hold `encode_ack` to.
    #[derive(Serialize)]
    struct AckFrame<'a> {
        code: i64,
        time: i64,
        cid: MessageId,
        index: Index,
        #[serde(skip_serializing_if = "Option::is_none")]
        group_id: Option<ChatId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        private_id: Option<Ocid>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        request_id: Option<&'a Value>,
    }

    #[test]
    fn hand_written_encoders_match_serde_json() {
        let image = crate::view::FileView {
            kind: FileKind::Image,
            json: r#"{"height":2,"id":"f","kind":"image","mime":"image/png","name":"a \"b\".png","size":9,"width":3}"#,
        };
        for (text, file) in [
            ("hi", None),
            ("say \"x\"\n", None),
            ("ünï", None),
            ("", Some(image)),
        ] {
            for private_to in [Some(7), None] {
                let m = MessageView {
                    id: MessageId(11),
                    chat: ChatId(3),
                    index: Index(42),
                    at_ms: 1_700_000_000_123,
                    sender: Ocid(10_001),
                    private_to: private_to.map(Ocid),
                    kind: crate::view::kind::NORMAL,
                    text,
                    file,
                };
                let reference = serde_json::to_string(&text_frame(&m)).expect("json");
                assert_eq!(encode_text(&m, Flavour::Seed), reference);
                // The 2024 flavour: the same frame with its ocids as strings.
                let got: Value =
                    serde_json::from_str(&encode_text(&m, Flavour::OurChat2024)).expect("json");
                assert_eq!(got, flavoured(text_value(&m), Flavour::OurChat2024));
                assert_eq!(got["sender"]["ocid"], json!("10001"));
            }
        }
        let id = json!({"n": [1, 2]});
        for to in [Target::Private(Ocid(7)), Target::Group(ChatId(3))] {
            for client_id in [None, Some("c\"1")] {
                for request_id in [None, Some(&id)] {
                    let (group_id, private_id) = match to {
                        Target::Group(g) => (Some(g), None),
                        Target::Private(p) => (None, Some(p)),
                    };
                    let frame = AckFrame {
                        code: code::ACK,
                        time: -5,
                        cid: MessageId(9),
                        index: Index(2),
                        group_id,
                        private_id,
                        client_id,
                        request_id,
                    };
                    let reference = serde_json::to_string(&frame).expect("json");
                    let ack = |flavour| {
                        encode_ack(
                            -5,
                            to,
                            MessageId(9),
                            Index(2),
                            client_id,
                            request_id,
                            flavour,
                        )
                    };
                    assert_eq!(ack(Flavour::Seed), reference);
                    let got: Value =
                        serde_json::from_str(&ack(Flavour::OurChat2024)).expect("json");
                    let value = serde_json::to_value(&frame).expect("json");
                    assert_eq!(got, flavoured(value, Flavour::OurChat2024));
                }
            }
        }
    }

    #[test]
    fn decodes_seed_text() {
        let e = decode(r#"{"code":0,"time":1,"sender":{"ocid":5,"private_id":"7"},"msg":"hi"}"#)
            .expect("decodes");
        assert_eq!(
            e.request,
            Request::Text {
                to: Target::Private(Ocid(7)),
                msg: "hi".into(),
                client_id: None,
                kind: None,
            }
        );
        // The type of a message is read on the fast path as by the general decoder.
        let typed = r#"{"code":0,"sender":{"group_id":3},"msg":"t","type":3}"#;
        let Request::Text { kind, .. } = decode(typed).expect("decodes").request else {
            panic!("not a text");
        };
        assert_eq!(kind, Some(3));
        assert!(plain_text(typed).is_some());
    }

    #[test]
    fn names_the_bad_field() {
        let e = decode(r#"{"code":4,"email":"a@b","password":1,"name":"x","request_id":"r"}"#)
            .expect_err("mistyped");
        assert_eq!(e.error.code, ErrorCode::InvalidField);
        assert!(e.error.message.contains("`password`"));
        assert_eq!(e.request_id, Some(json!("r")));
        assert_eq!(e.code, Some(4));
    }

    #[test]
    fn accepts_avater_and_avatar() {
        let e = decode(r#"{"code":10,"ocid":1,"request_values":["avater","avatar"]}"#).expect("ok");
        let Request::AccountInfo { values, .. } = e.request else {
            panic!("wrong request")
        };
        assert_eq!(values[0], (InfoField::Avatar, "avater".into()));
        assert_eq!(values[1], (InfoField::Avatar, "avatar".into()));
    }

    /// What the general decoder makes of a code 0 frame: its request id and request, or
    /// `None` when it refuses the frame.
    fn general(frame: &str) -> Option<(Option<Value>, Request)> {
        let (map, head) = fields::parse_object(frame).ok()?;
        if head.code != Some(code::TEXT) {
            return None;
        }
        let request = decode_body(code::TEXT, &map).ok()?;
        Some((head.request_id, request))
    }

    fn fast(frame: &str) -> Option<(Option<Value>, Request)> {
        plain_text(frame).map(|env| (env.request_id, env.request))
    }

    /// Frames of the common shape, each read by the scanner.
    const PLAIN: [&str; 12] = [
        r#"{"code":0,"time":1,"sender":{"ocid":5,"private_id":7},"msg":"hi"}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"a\"b","client_id":"c1","request_id":"r"}"#,
        r#"{"code":0,"sender":{"group_id":3,"private_id":null},"msg":"x","request_id":9}"#,
        r#" { "code" : 0 , "sender" : { "private_id" : 12 } , "msg" : "spaced" } "#,
        r#"{"msg":"keys in any order","sender":{"private_id":1},"code":0}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"line\nbreak\ttab \\ \/ \b\f\r"}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"\u00e9\u4e2d\ud83d\ude00 é中😀"}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"","client_id":null,"request_id":null}"#,
        r#"{"code":0,"time":-1.5e3,"extra":true,"other":false,"nothing":null,"s":"x","sender":{"group_id":18446744073709551615},"msg":"m"}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"\u0000 nul"}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"k","request_id":"\u0072"}"#,
        r#"{"code":0,"sender":{"group_id":3},"msg":"x","time":0.25,"t2":1E+2,"t3":0e-1}"#,
    ];

    #[test]
    fn plain_text_matches_the_general_decoder() {
        for frame in PLAIN {
            let read = fast(frame).unwrap_or_else(|| panic!("not read by the scanner: {frame}"));
            assert_eq!(Some(read), general(frame), "{frame}");
        }
        // Left to the general decoder: some it reads (other shapes), the rest it refuses.
        for frame in [
            r#"{"code":0,"sender":{"private_id":"7"},"msg":"digits as a string"}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","extra":[1,2]}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","extra":{"a":1}}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","msg":"again"}"#,
            r#"{"code":0,"sender":{"group_id":3,"group_id":3},"msg":"x"}"#,
            r#"{"code":0,"sender":{"group_id":3},"sender":{"group_id":3},"msg":"x"}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","client_id":"a","client_id":null}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","request_id":1,"request_id":null}"#,
            r#"{"code":0,"sender":{"group_id":3,"group_id":null,"private_id":4},"msg":"x"}"#,
        ] {
            assert!(plain_text(frame).is_none(), "{frame}");
            assert!(decode(frame).is_ok(), "{frame}");
        }
        for frame in [
            r#"{"code":0,"sender":{"group_id":3,"private_id":4},"msg":"x"}"#,
            r#"{"code":0,"sender":{},"msg":"x"}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":null}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","request_id":[1]}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","request_id":1.5}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x"} trailing"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x",}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"raw	tab"}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"\ud83d alone"}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"\x"}"#,
            r#"{"code":0,"sender":{"group_id":-3},"msg":"x"}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","time":01}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","time":1.}"#,
            r#"{"code":0,"sender":{"group_id":3},"msg":"x","time":tru}"#,
            r#"{"code":00,"sender":{"group_id":3},"msg":"x"}"#,
        ] {
            assert!(plain_text(frame).is_none(), "{frame}");
            assert!(decode(frame).is_err(), "{frame}");
        }
    }

    /// Every frame the scanner reads, the general decoder reads the same way: checked on each
    /// single-byte deletion, replacement and insertion in the frames above, and on pseudo-random
    /// runs of several such edits.
    #[test]
    fn the_scanner_never_disagrees_with_the_general_decoder() {
        const BYTES: &[u8] = b" \t\n{}[],:\"\\/-+.0179eEnulltrfasbu\x01x";
        let mut checked = 0;
        let mut check = |bytes: &[u8]| {
            let Ok(frame) = std::str::from_utf8(bytes) else {
                return;
            };
            if let Some(read) = fast(frame) {
                assert_eq!(Some(read), general(frame), "{frame}");
                checked += 1;
            }
        };
        for frame in PLAIN {
            let b = frame.as_bytes();
            for i in 0..=b.len() {
                if i < b.len() {
                    check(&[&b[..i], &b[i + 1..]].concat());
                }
                for &x in BYTES {
                    if i < b.len() {
                        check(&[&b[..i], &[x], &b[i + 1..]].concat());
                    }
                    check(&[&b[..i], &[x], &b[i..]].concat());
                }
            }
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for round in 0..20_000 {
            let mut b = PLAIN[round % PLAIN.len()].as_bytes().to_vec();
            for _ in 0..1 + next(4) {
                let (i, x) = (next(b.len()), BYTES[next(BYTES.len())]);
                match next(3) {
                    0 => drop(b.remove(i)),
                    1 => b[i] = x,
                    _ => b.insert(i, x),
                }
            }
            check(&b);
        }
        assert!(checked > 10_000, "only {checked} edited frames were read");
    }

    #[test]
    fn text_frame_shape() {
        let m = MessageView {
            id: MessageId(9),
            chat: ChatId(3),
            index: Index(2),
            at_ms: 100_999,
            sender: Ocid(10),
            private_to: None,
            kind: crate::view::kind::NORMAL,
            text: "yo",
            file: None,
        };
        assert_eq!(
            encode_text(&m, Flavour::Seed),
            r#"{"code":0,"time":100,"cid":9,"sender":{"ocid":10,"group_id":3},"msg":"yo","index":2}"#
        );
        assert_eq!(
            encode_text(&m, Flavour::OurChat2024),
            r#"{"code":0,"time":100,"cid":9,"sender":{"ocid":"10","group_id":3},"msg":"yo","index":2}"#
        );
    }

    #[test]
    fn flavours_of_a_reply() {
        let login = login_reply(5, code::LOGIN_REPLY, 0, Some(Ocid(10001)), Some("t"));
        assert_eq!(
            flavoured(login.clone(), Flavour::Seed),
            json!({"code": 7, "time": 5, "state": 0, "status": 0, "ocid": 10001, "token": "t"})
        );
        assert_eq!(
            flavoured(login, Flavour::OurChat2024),
            json!({"code": 7, "time": 5, "status": 0, "ocid": "10001", "token": "t"})
        );
        let made = new_session_reply(5, Ok(ChatId(4)));
        let made = flavoured(made, Flavour::OurChat2024);
        assert_eq!(
            (made["status"].clone(), made["session_id"].clone()),
            (json!(0), json!("4"))
        );
        let e = WireError::new(ErrorCode::NotLoggedIn, "log in first");
        let e = flavoured(error_reply(5, Some(8), &e), Flavour::OurChat2024);
        assert_eq!(
            (e["code"].clone(), e["details"].clone()),
            (json!(18), json!("log in first"))
        );
        assert_eq!(e["error"], json!("not_logged_in"));
        // Friends' ocids, nested, become strings too; other numbers do not.
        let f = friends_reply(5, vec![friend_value(Ocid(7), 9, true)], vec![]);
        let f = flavoured(f, Flavour::OurChat2024);
        assert_eq!(
            f["friends"][0],
            json!({"ocid": "7", "since": 9, "online": true})
        );
    }

    #[test]
    fn tolerant_input() {
        let login = |frame: &str| match decode(frame).expect("decodes").request {
            Request::Login {
                by, account, ext, ..
            } => (by, account, ext),
            other => panic!("not a login: {other:?}"),
        };
        assert_eq!(
            login(r#"{"code":6,"login_type":true,"account":"10001","password":"p"}"#),
            (LoginBy::Ocid, "10001".into(), false)
        );
        assert_eq!(
            login(r#"{"code":6,"login_type":false,"account":"a@b.c","password":"p","ext":1}"#),
            (LoginBy::Email, "a@b.c".into(), true)
        );
        assert_eq!(
            login(r#"{"code":6,"login_type":1,"account":10001,"password":"p","ext":true}"#),
            (LoginBy::Ocid, "10001".into(), true)
        );
        assert!(
            decode(r#"{"code":6,"login_type":1,"account":"1","password":"p","ext":"yes"}"#)
                .is_err()
        );
        match decode(r#"{"code":4,"email":"a@b.c","password":"p"}"#)
            .expect("decodes")
            .request
        {
            Request::Register { name, .. } => assert_eq!(name, None),
            other => panic!("not a register: {other:?}"),
        }
        match decode(r#"{"code":10,"ocid":"0000010001","request_values":["ocid","sessions"]}"#)
            .expect("decodes")
            .request
        {
            Request::AccountInfo { ocid, values } => {
                assert_eq!(ocid, Ocid(10001));
                assert_eq!(values[1], (InfoField::Unknown, "sessions".into()));
            }
            other => panic!("not account info: {other:?}"),
        }
        assert_eq!(
            decode(r#"{"code":12}"#).expect("decodes").request,
            Request::ServerStatus
        );
        assert_eq!(
            decode(r#"{"code":19,"data":{"nickname":"x"}}"#)
                .expect("decodes")
                .request,
            Request::Unsupported {
                reply: code::SET_ACCOUNT_REPLY
            }
        );
    }
}
