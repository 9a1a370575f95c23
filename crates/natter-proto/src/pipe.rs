//! The pipe dialect (seed 004): one UTF-8 line per command, fields separated by `|`.
//!
//! # Format
//! A line is `command|field|field...`, ended by `\n` (a `\r` before it is dropped). Inside a
//! field, four characters are written escaped, so that any text fits in a field: a backslash as
//! `\\`, a bar as `\|`, a line feed as `\n` and a carriage return as `\r`.
//!
//! A backslash followed by anything else, or ending a line, makes the line unreadable. Fields
//! are taken as written: `a|b|` has a last, empty field (the seed ends some lines with a `|`,
//! such as `get_unread_friend_request|`; [`Line::fields_for`] accepts that form). File bytes
//! travel as standard base64 (RFC 4648, padded) inside a field.
//!
//! This module only splits, unescapes, escapes and builds lines; it knows no command's meaning
//! beyond its name and does no I/O.

/// Why a line could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// A backslash not followed by `\`, `|`, `n` or `r`.
    BadEscape,
    /// No command name.
    Empty,
}

impl LineError {
    /// The reason word of an `error|...` reply.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::BadEscape => "bad_escape",
            Self::Empty => "unknown_command",
        }
    }
}

/// A line split into its command and unescaped fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub command: String,
    pub fields: Vec<String>,
}

impl Line {
    /// The fields when there are `n` of them, or `n` and one empty field after them (a line
    /// ended by `|`); `None` otherwise.
    pub fn fields_for(&self, n: usize) -> Option<&[String]> {
        match self.fields.len() {
            len if len == n => Some(&self.fields),
            len if len == n + 1 && self.fields[n].is_empty() => Some(&self.fields[..n]),
            _ => None,
        }
    }

    /// The fields when there are between `min` and `max` of them (a last empty field past
    /// `min` is dropped first, as in [`Line::fields_for`]); `None` otherwise.
    pub fn fields_between(&self, min: usize, max: usize) -> Option<&[String]> {
        let mut fields = &self.fields[..];
        if fields.len() > min && fields.last().is_some_and(String::is_empty) {
            fields = &fields[..fields.len() - 1];
        }
        (min..=max).contains(&fields.len()).then_some(fields)
    }
}

/// Split a line (without its newline) into its command and fields, unescaping each.
///
/// # Errors
/// [`LineError`] when the line is not UTF-8, has a bad escape, or has no command.
pub fn split(line: &[u8]) -> Result<Line, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.push(match chars.next() {
                Some('\\') => '\\',
                Some('|') => '|',
                Some('n') => '\n',
                Some('r') => '\r',
                _ => return Err(LineError::BadEscape),
            }),
            '|' => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    if fields.is_empty() {
        return Err(LineError::Empty);
    }
    let command = fields.remove(0);
    if command.is_empty() {
        return Err(LineError::Empty);
    }
    Ok(Line { command, fields })
}

/// Append `text` to `out` escaped as a field.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// `text` escaped as a field.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// A line being built: the command, then each field escaped and separated by `|`.
#[derive(Debug, Clone)]
pub struct LineBuf(String);

impl LineBuf {
    /// A line starting with `command` (written as it is: command names need no escape).
    pub fn new(command: &str) -> Self {
        Self(command.to_owned())
    }

    /// Add a text field (escaped).
    #[must_use]
    pub fn field(mut self, text: &str) -> Self {
        self.0.push('|');
        escape_into(&mut self.0, text);
        self
    }

    /// Add a number field.
    #[must_use]
    pub fn num(mut self, n: impl itoa::Integer) -> Self {
        self.0.push('|');
        self.0.push_str(itoa::Buffer::new().format(n));
        self
    }

    /// Add a field that needs no escape (base64, digits).
    #[must_use]
    pub fn raw(mut self, text: &str) -> Self {
        self.0.push('|');
        self.0.push_str(text);
        self
    }

    /// The line, without its newline.
    pub fn finish(self) -> String {
        self.0
    }
}

/// The `*_error|reason` line of `command`.
pub fn error(command: &str, reason: &str) -> String {
    let mut line = String::with_capacity(command.len() + reason.len() + 7);
    line.push_str(command);
    line.push_str("_error|");
    line.push_str(reason);
    line
}

/// The command names of the seed.
pub mod command {
    pub const REGISTER: &str = "register";
    pub const LOGIN: &str = "login";
    pub const UPDATE_PROFILE: &str = "update_profile";
    pub const FORGET_PASSWD: &str = "forget_passwd";
    pub const GET_USER_INFO: &str = "get_user_info";
    pub const GET_USER_FRIEND: &str = "get_user_friend";
    pub const GET_USER_GROUP: &str = "get_user_group";
    pub const GET_GROUP_INFO: &str = "get_group_info";
    pub const ADD_FRIEND: &str = "add_friend";
    pub const DEL_FRIEND: &str = "del_friend";
    pub const HAND_FRIEND_REQUEST: &str = "hand_friend_request";
    pub const CREATE_GROUP: &str = "create_group";
    pub const JOIN_GROUP: &str = "join_group";
    pub const HAND_GROUP_REQUEST: &str = "hand_group_request";
    pub const SEND_MESSAGE: &str = "send_message";
    pub const SEND_FILE: &str = "send_file";
    pub const GET_UNREAD_FRIEND_REQUEST: &str = "get_unread_friend_request";
    pub const GET_UNREAD_GROUP_REQUEST: &str = "get_unread_group_request";
    pub const GET_UNREAD_MESSAGE: &str = "get_unread_message";
    /// The peer-to-peer file offer, relayed to its target.
    pub const FILE: &str = "file";
    /// natter's extension: a file's bytes by its id.
    pub const GET_FILE: &str = "get_file";
}

/// The error reason words of the pipe dialect, short and stable (see `docs/protocol/pipe.md`).
pub mod reason {
    pub const UNKNOWN_COMMAND: &str = "unknown_command";
    pub const FIELD_COUNT: &str = "field_count";
    pub const BAD_FIELD: &str = "bad_field";
    pub const BAD_TOKEN: &str = "bad_token";
    pub const NOT_LOGGED_IN: &str = "not_logged_in";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const LINE_TOO_LONG: &str = "line_too_long";
    pub const BAD_CREDENTIALS: &str = "bad_credentials";
    pub const WRONG_ANSWER: &str = "wrong_answer";
    pub const USERNAME_TAKEN: &str = "username_taken";
    pub const BAD_USERNAME: &str = "bad_username";
    pub const BAD_PASSWORD: &str = "bad_password";
    pub const BAD_NICKNAME: &str = "bad_nickname";
    pub const TOO_LONG: &str = "too_long";
    pub const INVALID: &str = "invalid";
    pub const REGISTRATION_CLOSED: &str = "registration_closed";
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
    pub const NO_SECURITY_QUESTION: &str = "no_security_question";
    pub const RESET_LOCKED: &str = "reset_locked";
    pub const TOO_MANY_ATTEMPTS: &str = "too_many_attempts";
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    pub const LIMIT_REACHED: &str = "limit_reached";
    pub const NO_SUCH_ACCOUNT: &str = "no_such_account";
    pub const NO_SUCH_GROUP: &str = "no_such_group";
    pub const NOT_A_MEMBER: &str = "not_a_member";
    pub const FORBIDDEN: &str = "forbidden";
    pub const ALREADY_MEMBER: &str = "already_member";
    pub const NO_SUCH_REQUEST: &str = "no_such_request";
    pub const NOT_FRIENDS: &str = "not_friends";
    pub const SELF: &str = "self";
    pub const BLOCKED: &str = "blocked";
    pub const EMPTY_TEXT: &str = "empty_text";
    pub const TEXT_TOO_LONG: &str = "text_too_long";
    pub const FILE_TOO_LARGE: &str = "file_too_large";
    pub const OVER_QUOTA: &str = "over_quota";
    pub const NOT_AN_IMAGE: &str = "not_an_image";
    pub const NO_SUCH_FILE: &str = "no_such_file";
    pub const BAD_CHUNK: &str = "bad_chunk";
    pub const OFFLINE: &str = "offline";
    pub const INTERNAL: &str = "internal";
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    pub const LOGIN_TIMEOUT: &str = "login_timeout";
    pub const TOO_SLOW: &str = "too_slow";
    pub const SHUTTING_DOWN: &str = "shutting_down";
    pub const LOGIN_ENDED: &str = "login_ended";
}

/// A decoded command. Account ids (`uid`) are ocids and group ids are chat ids, both decimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Register {
        username: String,
        password: String,
        nickname: String,
        icon: String,
        signature: String,
        question: String,
        answer: String,
        vip: bool,
    },
    Login {
        username: String,
        password: String,
    },
    UpdateProfile {
        uid: u64,
        token: String,
        nickname: String,
        icon: String,
        signature: String,
        question: String,
        answer: String,
    },
    ForgetPasswd {
        username: String,
        question: String,
        answer: String,
        password: String,
    },
    GetUserInfo {
        uid: u64,
        other: u64,
        token: String,
    },
    GetUserFriend {
        uid: u64,
        token: String,
    },
    GetUserGroup {
        uid: u64,
        token: String,
    },
    GetGroupInfo {
        uid: u64,
        group: u64,
        token: String,
    },
    AddFriend {
        uid: u64,
        other: u64,
        request: String,
        token: String,
    },
    DelFriend {
        uid: u64,
        other: u64,
        token: String,
    },
    HandFriendRequest {
        uid: u64,
        other: u64,
        accept: bool,
        token: String,
    },
    CreateGroup {
        uid: u64,
        name: String,
        token: String,
    },
    JoinGroup {
        uid: u64,
        group: u64,
        request: String,
        token: String,
    },
    /// `uid` is the account whose request is answered; the token is the answering admin's.
    HandGroupRequest {
        uid: u64,
        group: u64,
        accept: bool,
        token: String,
    },
    SendMessage {
        group: bool,
        uid: u64,
        to: u64,
        data: String,
        token: String,
    },
    SendFile(SendFile),
    GetUnreadFriendRequest,
    GetUnreadGroupRequest,
    GetUnreadMessage,
    /// natter's extension: a file's bytes by its id (one a pushed line came without).
    GetFile {
        uid: u64,
        file: String,
        token: String,
    },
    /// The peer-to-peer offer `file|sender|ip|port|name|size|`, then the target and token.
    FileOffer {
        uid: u64,
        host: String,
        port: String,
        name: String,
        size: String,
        to: u64,
        token: String,
    },
}

/// One `send_file` line: a chunk of a file (the whole file when `more` is false and no chunk
/// of `id` came before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFile {
    /// An image (type 0) rather than a file (type 1).
    pub image: bool,
    pub uid: u64,
    pub to: u64,
    /// The client's transfer id, tying chunks together.
    pub id: String,
    /// This chunk's bytes, base64.
    pub data: String,
    pub token: String,
    /// The file's name (natter's extension; the first chunk's counts).
    pub name: Option<String>,
    /// More chunks of `id` follow (natter's extension; absent: this is the last).
    pub more: bool,
    /// `to` is a group (natter's extension; absent: an account).
    pub group: bool,
}

/// A line refused before it reached its command: the reply's command name and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The command the reply names (`error` when the line names none this dialect knows).
    pub command: String,
    pub reason: &'static str,
}

impl Refused {
    /// The `*_error|reason` line (`error|reason` for a line without a known command).
    pub fn line(&self) -> String {
        if self.command == "error" {
            format!("error|{}", self.reason)
        } else {
            error(&self.command, self.reason)
        }
    }
}

/// The reply name of a request (`<name>_succ`, `<name>_error`).
pub fn reply_name(request: &Request) -> &'static str {
    use self::command as c;
    match request {
        Request::Register { .. } => c::REGISTER,
        Request::Login { .. } => c::LOGIN,
        Request::UpdateProfile { .. } => c::UPDATE_PROFILE,
        // The seed answers a reset with `up_pass_succ` / `up_pass_error`.
        Request::ForgetPasswd { .. } => "up_pass",
        Request::GetUserInfo { .. } => c::GET_USER_INFO,
        Request::GetUserFriend { .. } => c::GET_USER_FRIEND,
        Request::GetUserGroup { .. } => c::GET_USER_GROUP,
        Request::GetGroupInfo { .. } => c::GET_GROUP_INFO,
        Request::AddFriend { .. } => c::ADD_FRIEND,
        Request::DelFriend { .. } => c::DEL_FRIEND,
        Request::HandFriendRequest { .. } => c::HAND_FRIEND_REQUEST,
        Request::CreateGroup { .. } => c::CREATE_GROUP,
        Request::JoinGroup { .. } => c::JOIN_GROUP,
        Request::HandGroupRequest { .. } => c::HAND_GROUP_REQUEST,
        Request::SendMessage { .. } => c::SEND_MESSAGE,
        Request::SendFile(_) => c::SEND_FILE,
        Request::GetUnreadFriendRequest => c::GET_UNREAD_FRIEND_REQUEST,
        Request::GetUnreadGroupRequest => c::GET_UNREAD_GROUP_REQUEST,
        Request::GetUnreadMessage => c::GET_UNREAD_MESSAGE,
        Request::GetFile { .. } => c::GET_FILE,
        Request::FileOffer { .. } => c::FILE,
    }
}

/// The reply name of a command name, `None` for a command this dialect does not know.
fn known(command: &str) -> Option<&'static str> {
    use self::command as c;
    Some(match command {
        c::REGISTER => c::REGISTER,
        c::LOGIN => c::LOGIN,
        c::UPDATE_PROFILE => c::UPDATE_PROFILE,
        c::FORGET_PASSWD => "up_pass",
        c::GET_USER_INFO => c::GET_USER_INFO,
        c::GET_USER_FRIEND => c::GET_USER_FRIEND,
        c::GET_USER_GROUP => c::GET_USER_GROUP,
        c::GET_GROUP_INFO => c::GET_GROUP_INFO,
        c::ADD_FRIEND => c::ADD_FRIEND,
        c::DEL_FRIEND => c::DEL_FRIEND,
        c::HAND_FRIEND_REQUEST => c::HAND_FRIEND_REQUEST,
        c::CREATE_GROUP => c::CREATE_GROUP,
        c::JOIN_GROUP => c::JOIN_GROUP,
        c::HAND_GROUP_REQUEST => c::HAND_GROUP_REQUEST,
        c::SEND_MESSAGE => c::SEND_MESSAGE,
        c::SEND_FILE => c::SEND_FILE,
        c::GET_UNREAD_FRIEND_REQUEST => c::GET_UNREAD_FRIEND_REQUEST,
        c::GET_UNREAD_GROUP_REQUEST => c::GET_UNREAD_GROUP_REQUEST,
        c::GET_UNREAD_MESSAGE => c::GET_UNREAD_MESSAGE,
        c::GET_FILE => c::GET_FILE,
        c::FILE => c::FILE,
        _ => return None,
    })
}

fn id(field: &str) -> Result<u64, &'static str> {
    let field = field.trim();
    if field.is_empty() || field.len() > 20 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(reason::BAD_FIELD);
    }
    field.parse().map_err(|_| reason::BAD_FIELD)
}

fn flag(field: &str) -> Result<bool, &'static str> {
    match field.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(reason::BAD_FIELD),
    }
}

/// Decode one line into its request.
///
/// # Errors
/// [`Refused`] with the reply name and reason: an unreadable line (`error|not_utf8`,
/// `error|bad_escape`), an unknown command (`error|unknown_command`), a wrong number of
/// fields (`<name>_error|field_count`) or a field that is not what it must be
/// (`<name>_error|bad_field`).
pub fn decode(line: &[u8]) -> Result<Request, Refused> {
    let line = split(line).map_err(|e| Refused {
        command: "error".into(),
        reason: e.reason(),
    })?;
    let Some(name) = known(&line.command) else {
        return Err(Refused {
            command: "error".into(),
            reason: reason::UNKNOWN_COMMAND,
        });
    };
    decode_fields(&line).map_err(|reason| Refused {
        command: name.into(),
        reason,
    })
}

fn decode_fields(line: &Line) -> Result<Request, &'static str> {
    use self::command as c;
    let n = |count: usize| line.fields_for(count).ok_or(reason::FIELD_COUNT);
    let s = |f: &String| f.clone();
    Ok(match line.command.as_str() {
        c::REGISTER => {
            let f = n(8)?;
            Request::Register {
                username: s(&f[0]),
                password: s(&f[1]),
                nickname: s(&f[2]),
                icon: s(&f[3]),
                signature: s(&f[4]),
                question: s(&f[5]),
                answer: s(&f[6]),
                vip: flag(&f[7])?,
            }
        }
        c::LOGIN => {
            let f = n(2)?;
            Request::Login {
                username: s(&f[0]),
                password: s(&f[1]),
            }
        }
        c::UPDATE_PROFILE => {
            let f = n(7)?;
            Request::UpdateProfile {
                uid: id(&f[0])?,
                token: s(&f[1]),
                nickname: s(&f[2]),
                icon: s(&f[3]),
                signature: s(&f[4]),
                question: s(&f[5]),
                answer: s(&f[6]),
            }
        }
        c::FORGET_PASSWD => {
            let f = n(4)?;
            Request::ForgetPasswd {
                username: s(&f[0]),
                question: s(&f[1]),
                answer: s(&f[2]),
                password: s(&f[3]),
            }
        }
        c::GET_USER_INFO => {
            let f = n(3)?;
            Request::GetUserInfo {
                uid: id(&f[0])?,
                other: id(&f[1])?,
                token: s(&f[2]),
            }
        }
        c::GET_USER_FRIEND | c::GET_USER_GROUP => {
            let f = n(2)?;
            let (uid, token) = (id(&f[0])?, s(&f[1]));
            if line.command == c::GET_USER_FRIEND {
                Request::GetUserFriend { uid, token }
            } else {
                Request::GetUserGroup { uid, token }
            }
        }
        c::GET_GROUP_INFO => {
            let f = n(3)?;
            Request::GetGroupInfo {
                uid: id(&f[0])?,
                group: id(&f[1])?,
                token: s(&f[2]),
            }
        }
        c::ADD_FRIEND => {
            let f = n(4)?;
            Request::AddFriend {
                uid: id(&f[0])?,
                other: id(&f[1])?,
                request: s(&f[2]),
                token: s(&f[3]),
            }
        }
        c::DEL_FRIEND => {
            let f = n(3)?;
            Request::DelFriend {
                uid: id(&f[0])?,
                other: id(&f[1])?,
                token: s(&f[2]),
            }
        }
        c::HAND_FRIEND_REQUEST => {
            let f = n(4)?;
            Request::HandFriendRequest {
                uid: id(&f[0])?,
                other: id(&f[1])?,
                accept: flag(&f[2])?,
                token: s(&f[3]),
            }
        }
        c::CREATE_GROUP => {
            let f = n(3)?;
            Request::CreateGroup {
                uid: id(&f[0])?,
                name: s(&f[1]),
                token: s(&f[2]),
            }
        }
        c::JOIN_GROUP => {
            let f = n(4)?;
            Request::JoinGroup {
                uid: id(&f[0])?,
                group: id(&f[1])?,
                request: s(&f[2]),
                token: s(&f[3]),
            }
        }
        c::HAND_GROUP_REQUEST => {
            let f = n(4)?;
            Request::HandGroupRequest {
                uid: id(&f[0])?,
                group: id(&f[1])?,
                accept: flag(&f[2])?,
                token: s(&f[3]),
            }
        }
        c::SEND_MESSAGE => {
            let f = n(6)?;
            // f[3] is the client's time: the server's clock stamps every message.
            Request::SendMessage {
                group: flag(&f[0])?,
                uid: id(&f[1])?,
                to: id(&f[2])?,
                data: s(&f[4]),
                token: s(&f[5]),
            }
        }
        c::SEND_FILE => {
            let f = line.fields_between(7, 10).ok_or(reason::FIELD_COUNT)?;
            let opt = |i: usize| f.get(i).map(String::as_str).filter(|v| !v.is_empty());
            Request::SendFile(SendFile {
                image: !flag(&f[0])?,
                uid: id(&f[1])?,
                to: id(&f[2])?,
                id: s(&f[4]),
                data: s(&f[5]),
                token: s(&f[6]),
                name: opt(7).map(str::to_owned),
                more: opt(8).map(flag).transpose()?.unwrap_or(false),
                group: opt(9).map(flag).transpose()?.unwrap_or(false),
            })
        }
        c::GET_UNREAD_FRIEND_REQUEST => {
            n(0)?;
            Request::GetUnreadFriendRequest
        }
        c::GET_UNREAD_GROUP_REQUEST => {
            n(0)?;
            Request::GetUnreadGroupRequest
        }
        c::GET_UNREAD_MESSAGE => {
            n(0)?;
            Request::GetUnreadMessage
        }
        c::GET_FILE => {
            let f = n(3)?;
            Request::GetFile {
                uid: id(&f[0])?,
                file: s(&f[1]),
                token: s(&f[2]),
            }
        }
        c::FILE => {
            // The offer as the seed writes it (ending with `|`), then the target and token.
            let f = n(7)?;
            Request::FileOffer {
                uid: id(&f[0])?,
                host: s(&f[1]),
                port: s(&f[2]),
                name: s(&f[3]),
                size: s(&f[4]),
                to: id(&f[5])?,
                token: s(&f[6]),
            }
        }
        _ => return Err(reason::UNKNOWN_COMMAND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> (String, Vec<String>) {
        let l = split(line.as_bytes()).expect("a line");
        (l.command, l.fields)
    }

    #[test]
    fn splits_and_unescapes() {
        assert_eq!(
            fields("login|alice|abc"),
            ("login".into(), vec!["alice".into(), "abc".into()])
        );
        assert_eq!(
            fields("get_unread_message|"),
            ("get_unread_message".into(), vec![String::new()])
        );
        assert_eq!(fields("cmd||"), ("cmd".into(), vec![String::new(); 2]));
        assert_eq!(
            fields("cmd|a\\|b|c\\\\|d\\ne\\r"),
            (
                "cmd".into(),
                vec!["a|b".into(), "c\\".into(), "d\ne\r".into()]
            )
        );
        // An escaped bar at the end is text, not a separator.
        assert_eq!(fields("cmd|a\\|"), ("cmd".into(), vec!["a|".into()]));
        assert_eq!(
            fields("cmd|a\\\\|"),
            ("cmd".into(), vec!["a\\".into(), String::new()])
        );
        assert_eq!(fields("cmd"), ("cmd".into(), vec![]));
    }

    #[test]
    fn counts_fields_with_or_without_a_closing_bar() {
        let line = split(b"cmd|a|b|").expect("line");
        assert_eq!(line.fields_for(2).map(<[String]>::len), Some(2));
        assert_eq!(line.fields_for(3).map(<[String]>::len), Some(3));
        assert!(line.fields_for(1).is_none());
        let line = split(b"cmd|a|b").expect("line");
        assert!(line.fields_for(3).is_none());
        assert_eq!(line.fields_between(1, 4).map(<[String]>::len), Some(2));
        assert!(line.fields_between(3, 4).is_none());
        let line = split(b"get_unread_message|").expect("line");
        assert_eq!(line.fields_for(0).map(<[String]>::len), Some(0));
    }

    #[test]
    fn refuses_what_cannot_be_read() {
        assert_eq!(split(b"cmd|a\\x"), Err(LineError::BadEscape));
        assert_eq!(split(b"cmd|a\\"), Err(LineError::BadEscape));
        assert_eq!(split(b"cmd|\xff"), Err(LineError::NotUtf8));
        assert_eq!(split(b""), Err(LineError::Empty));
        assert_eq!(split(b"|a"), Err(LineError::Empty));
    }

    #[test]
    fn escaping_round_trips() {
        for text in [
            "",
            "plain",
            "a|b",
            "\\",
            "\\|",
            "two\nlines\r\n",
            "|||",
            "ü|€\\n",
        ] {
            let line = LineBuf::new("x").field(text).field("end").finish();
            assert!(!line.contains('\n'), "{line:?}");
            let (_, got) = fields(&line);
            assert_eq!(got, vec![text.to_owned(), "end".to_owned()], "{line:?}");
        }
        assert_eq!(escape("a|b\\c\nd"), "a\\|b\\\\c\\nd");
    }

    #[test]
    fn builds_lines() {
        let line = LineBuf::new("login_succ")
            .field("登录成功！")
            .num(10001u64)
            .raw("tok")
            .num(3u64)
            .finish();
        assert_eq!(line, "login_succ|登录成功！|10001|tok|3");
        assert_eq!(
            error("login", "bad_credentials"),
            "login_error|bad_credentials"
        );
    }

    #[test]
    fn decodes_commands_and_refuses_bad_ones() {
        assert_eq!(
            decode(b"login|alice|0cc175b9c0f1b6a831c399e269772661"),
            Ok(Request::Login {
                username: "alice".into(),
                password: "0cc175b9c0f1b6a831c399e269772661".into()
            })
        );
        assert_eq!(
            decode(b"send_message|1|10001|3|1700000000|a\\|b|tok"),
            Ok(Request::SendMessage {
                group: true,
                uid: 10001,
                to: 3,
                data: "a|b".into(),
                token: "tok".into(),
            })
        );
        assert_eq!(
            decode(b"get_unread_message|"),
            Ok(Request::GetUnreadMessage)
        );
        let Ok(Request::SendFile(f)) = decode(b"send_file|1|10001|10002|0|t1|QUJD|tok|a.txt|1")
        else {
            panic!("a send_file");
        };
        assert!(!f.image && f.more && !f.group);
        assert_eq!(f.name.as_deref(), Some("a.txt"));
        let refused = |line: &[u8]| decode(line).expect_err("refused").line();
        assert_eq!(refused(b"nope|1"), "error|unknown_command");
        assert_eq!(refused(b"login|a\\q|b"), "error|bad_escape");
        assert_eq!(refused(b"login|a"), "login_error|field_count");
        assert_eq!(refused(b"forget_passwd|a|b|c"), "up_pass_error|field_count");
        assert_eq!(
            refused(b"get_user_friend|x|tok"),
            "get_user_friend_error|bad_field"
        );
        assert_eq!(
            refused(b"hand_friend_request|1|2|yes|tok"),
            "hand_friend_request_error|bad_field"
        );
    }
}
