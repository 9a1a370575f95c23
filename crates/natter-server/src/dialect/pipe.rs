//! The pipe dialect (seed 004) on the core: `|`-separated UTF-8 lines on a TCP port of its own
//! (`--pipe-listen`). Line format and commands: `natter_proto::pipe` and
//! `docs/protocol/pipe.md`.
//!
//! Identity: `uid` is the account's ocid and the token a natter login token. Every command
//! that carries a token is checked: the token must be a live login of the `uid` the command
//! names, and of the account this connection is logged in as (a connection that is not logged
//! in yet is logged in by the first token it shows). `login_succ` announces how many messages
//! the login missed; they are held back and written by `get_unread_message`, once.
//!
//! Files: `send_file` carries base64 bytes, in chunks tied by their id; the whole file is
//! stored as a file (other dialects reach it by its id) and sent as a message. A pushed file
//! message carries the bytes too, up to [`MAX_PUSHED_FILE`] (and [`UNREAD_FILE_BUDGET`] for all
//! the files of one `get_unread_message`); beyond that, `get_file` fetches a file's bytes by its
//! id, up to [`MAX_PIPE_FILE`].

use crate::conn::{Authenticated, Close, Conn, Credentials, Missed, Since};
use crate::dialect::{Decoded, Dialect, Event, Refusal};
use crate::domain::files::{Attachment, FileKind};
use crate::domain::{Domain, DomainError, Invalid, LoginKey, Sent, To};
use crate::event::{Notice, view};
use crate::hub::Slot;
use crate::store::{Identity, ProfileEdit, kind};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use natter_proto::pipe::{self, LineBuf, Request, reason};
use natter_proto::{ChatId, MessageView, Ocid};
use tokio::io::AsyncReadExt;

/// Largest file a pipe client sends (all chunks of one id together, held in memory until the
/// last) and fetches with `get_file`.
pub const MAX_PIPE_FILE: u64 = 4 * 1024 * 1024;
/// Largest file whose bytes a pushed message line carries: a larger one is pushed with its
/// details and an empty bytes field (`get_file` fetches it). Kept small because a connection
/// may be handed many deliveries in one turn, each read and encoded for it.
pub const MAX_PUSHED_FILE: u64 = 1024 * 1024;
/// Most file bytes one `get_unread_message` carries in its lines; later files come without
/// their bytes.
pub const UNREAD_FILE_BUDGET: u64 = 8 * 1024 * 1024;

/// The pipe dialect; `slot` is where its line for a delivered message is cached.
pub struct Pipe {
    slot: Slot,
}

impl Pipe {
    pub fn new(slot: Slot) -> Self {
        Self { slot }
    }
}

/// A chunked `send_file` in progress.
#[derive(Debug)]
struct Upload {
    id: String,
    image: bool,
    to: u64,
    group: bool,
    name: String,
    bytes: Vec<u8>,
}

/// What the pipe dialect keeps per connection.
#[derive(Debug, Default)]
pub struct State {
    /// The token this connection logged in with.
    token: Option<String>,
    /// What the login missed, until `get_unread_message` takes it.
    unread: Vec<Missed>,
    upload: Option<Upload>,
}

/// What a send's reply needs.
pub enum Ack {
    Message,
    File { id: String, size: u64, file: String },
}

/// A domain refusal as a reason word.
fn reason_of(e: &DomainError) -> &'static str {
    use DomainError as E;
    match e {
        E::Invalid(i) => match i {
            Invalid::Username { .. } => reason::BAD_USERNAME,
            Invalid::Password { .. } => reason::BAD_PASSWORD,
            Invalid::Nickname { .. } => reason::BAD_NICKNAME,
            Invalid::EmptyText => reason::EMPTY_TEXT,
            Invalid::PrivateChatWithSelf | Invalid::OwnAccount => reason::SELF,
            Invalid::TooLong { .. }
            | Invalid::RequestNote { .. }
            | Invalid::GroupName { .. }
            | Invalid::Answer { .. }
            | Invalid::Question { .. } => reason::TOO_LONG,
            _ => reason::INVALID,
        },
        E::TextTooLong { .. } => reason::TEXT_TOO_LONG,
        E::UsernameTaken => reason::USERNAME_TAKEN,
        E::BadCredentials => reason::BAD_CREDENTIALS,
        E::InvalidToken => reason::BAD_TOKEN,
        E::AccountDisabled => reason::ACCOUNT_DISABLED,
        E::RegistrationClosed | E::InvalidInvite => reason::REGISTRATION_CLOSED,
        E::NoSuchAccount(_) => reason::NO_SUCH_ACCOUNT,
        E::NoSuchChat(_) | E::NoSuchGroup(_) => reason::NO_SUCH_GROUP,
        E::NotAMember(_) | E::NoSuchMember { .. } => reason::NOT_A_MEMBER,
        E::Forbidden { .. } | E::OwnerCannotLeave(_) => reason::FORBIDDEN,
        E::AlreadyMember(_) => reason::ALREADY_MEMBER,
        E::NoSuchRequest(_) | E::NoSuchJoinRequest { .. } | E::NoSuchInvitation(_) => {
            reason::NO_SUCH_REQUEST
        }
        E::NotFriends(_) => reason::NOT_FRIENDS,
        E::Blocking(_) | E::NotAccepted(_) => reason::BLOCKED,
        E::ResetLocked { .. } => reason::RESET_LOCKED,
        E::TooManyAttempts { .. } => reason::TOO_MANY_ATTEMPTS,
        E::TooManyConnections { .. } => reason::TOO_MANY_CONNECTIONS,
        E::LimitReached { .. } => reason::LIMIT_REACHED,
        E::NoSecurityQuestion => reason::NO_SECURITY_QUESTION,
        E::FileTooLarge { .. } => reason::FILE_TOO_LARGE,
        E::OverQuota { .. } => reason::OVER_QUOTA,
        E::WrongFileKind { .. } => reason::NOT_AN_IMAGE,
        E::EmailTaken
        | E::PhoneTaken
        | E::UuidTaken
        | E::ServiceTokenTaken
        | E::NoSuchLogin
        | E::DuplicateClientId
        | E::Internal => reason::INTERNAL,
        E::NoSuchFile => reason::NO_SUCH_FILE,
    }
}

fn line(text: String) -> Bytes {
    Bytes::from(text)
}

fn fail(name: &str, why: &str) -> Bytes {
    line(pipe::error(name, why))
}

/// The message type of the seed's lines: 0 private, 1 group.
fn chat_type(view: &MessageView<'_>) -> u8 {
    u8::from(view.private_to.is_none())
}

/// `message|type|id|time|data|sender|to|message_id|index`: `id` is the sender (private) or
/// the group; `to` the receiver (private) or the group; `index` the message's place in its
/// chat.
fn message_line(view: &MessageView<'_>) -> LineBuf {
    let (id, to) = match view.private_to {
        Some(receiver) => (view.sender.0, receiver.0),
        None => (view.chat.0, view.chat.0),
    };
    LineBuf::new("message")
        .num(chat_type(view))
        .num(id)
        .num(view.time_s())
        .field(view.text)
        .num(view.sender.0)
        .num(to)
        .num(view.id.0)
        .num(view.index.0)
}

/// A file in a message, read from its JSON.
struct FileInfo {
    id: String,
    name: String,
    size: u64,
    mime: String,
}

fn file_info(json: &str) -> Option<FileInfo> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    Some(FileInfo {
        id: v.get("id")?.as_str()?.to_owned(),
        name: v
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_owned(),
        size: v
            .get("size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        mime: v
            .get("mime")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned(),
    })
}

/// A message line with its file: `...|kind|name|size|mime|file_id|base64` (the bytes empty
/// when the file is over [`MAX_PIPE_FILE`] or cannot be read).
fn file_line(
    view: &MessageView<'_>,
    kind: FileKind,
    info: &FileInfo,
    bytes: Option<&[u8]>,
) -> Bytes {
    let encoded = bytes.map(|b| BASE64.encode(b)).unwrap_or_default();
    line(
        message_line(view)
            .raw(kind.name())
            .field(&info.name)
            .num(info.size)
            .field(&info.mime)
            .field(&info.id)
            .raw(&encoded)
            .finish(),
    )
}

/// A message as a pipe line, with its file's bytes read for `me` when it carries one of at
/// most [`MAX_PUSHED_FILE`] bytes and `budget` (which the file's size is taken from) allows.
async fn message_with_file(
    domain: &Domain,
    me: Ocid,
    view: &MessageView<'_>,
    budget: &mut u64,
) -> Bytes {
    let Some(file) = view.file else {
        return line(message_line(view).finish());
    };
    let Some(info) = file_info(file.json) else {
        return line(message_line(view).finish());
    };
    let bytes = if info.size <= MAX_PUSHED_FILE && info.size <= *budget {
        *budget -= info.size;
        read_file(domain, me, &info.id).await.ok().map(|(_, b)| b)
    } else {
        None
    };
    file_line(view, file.kind, &info, bytes.as_deref())
}

/// File `id` as `me` may read it, with its bytes (at most [`MAX_PIPE_FILE`]).
async fn read_file(
    domain: &Domain,
    me: Ocid,
    id: &str,
) -> Result<(crate::store::files::File, Vec<u8>), DomainError> {
    let file = domain.readable_file(Some(me), id).await?;
    if file.size > MAX_PIPE_FILE {
        return Err(DomainError::FileTooLarge { max: MAX_PIPE_FILE });
    }
    let mut reader = domain.file_bytes(&file, 0, MAX_PIPE_FILE).await?;
    let mut bytes = Vec::with_capacity(file.size as usize);
    reader.read_to_end(&mut bytes).await.map_err(|e| {
        tracing::error!(error = %e, "file bytes unreadable");
        DomainError::Internal
    })?;
    Ok((file, bytes))
}

/// Whether a request carries a token (and so can log a connection in).
fn token_of(request: &Request) -> Option<&str> {
    Some(match request {
        Request::UpdateProfile { token, .. }
        | Request::GetUserInfo { token, .. }
        | Request::GetUserFriend { token, .. }
        | Request::GetUserGroup { token, .. }
        | Request::GetGroupInfo { token, .. }
        | Request::AddFriend { token, .. }
        | Request::DelFriend { token, .. }
        | Request::HandFriendRequest { token, .. }
        | Request::CreateGroup { token, .. }
        | Request::JoinGroup { token, .. }
        | Request::HandGroupRequest { token, .. }
        | Request::SendMessage { token, .. }
        | Request::GetFile { token, .. }
        | Request::FileOffer { token, .. } => token,
        Request::SendFile(f) => &f.token,
        Request::Register { .. }
        | Request::Login { .. }
        | Request::ForgetPasswd { .. }
        | Request::GetUnreadFriendRequest
        | Request::GetUnreadGroupRequest
        | Request::GetUnreadMessage => return None,
    })
}

/// The account a request says it acts as (`None`: the token's own account acts, as in
/// `hand_group_request`, whose `uid` names the requester).
fn actor_of(request: &Request) -> Option<u64> {
    Some(match request {
        Request::UpdateProfile { uid, .. }
        | Request::GetUserInfo { uid, .. }
        | Request::GetUserFriend { uid, .. }
        | Request::GetUserGroup { uid, .. }
        | Request::GetGroupInfo { uid, .. }
        | Request::AddFriend { uid, .. }
        | Request::DelFriend { uid, .. }
        | Request::HandFriendRequest { uid, .. }
        | Request::CreateGroup { uid, .. }
        | Request::JoinGroup { uid, .. }
        | Request::SendMessage { uid, .. }
        | Request::GetFile { uid, .. }
        | Request::FileOffer { uid, .. } => *uid,
        Request::SendFile(f) => f.uid,
        _ => return None,
    })
}

impl Pipe {
    /// Keep what a login missed for `get_unread_message` (and not count it delivered yet).
    fn logged_in(c: &mut Conn<Self>, a: Authenticated, token: String) {
        c.hold_catch_up();
        let state = c.state_mut();
        state.token = Some(token);
        state.unread = a.missed;
        state.upload = None;
    }

    /// Check a command's token: a live login of `uid` (when the command names its actor) and
    /// of this connection's account; a connection not logged in yet is logged in by it.
    async fn check(
        c: &mut Conn<Self>,
        uid: Option<u64>,
        token: &str,
    ) -> Result<Ocid, &'static str> {
        if let (Some(me), Some(own)) = (c.me(), c.state().token.as_deref())
            && own == token
        {
            return match uid {
                Some(uid) if uid != me.0 => Err(reason::BAD_TOKEN),
                _ => Ok(me),
            };
        }
        // Another token: it must be a live login of the named account.
        let client = Some(c.peer().ip());
        let owner = match c.domain().resume_from(token, client).await {
            Ok(login) => login.account.ocid,
            Err(DomainError::Internal) => return Err(reason::INTERNAL),
            Err(DomainError::AccountDisabled) => return Err(reason::ACCOUNT_DISABLED),
            Err(DomainError::TooManyAttempts { .. }) => return Err(reason::TOO_MANY_ATTEMPTS),
            Err(_) => return Err(reason::BAD_TOKEN),
        };
        if uid.is_some_and(|uid| uid != owner.0) {
            return Err(reason::BAD_TOKEN);
        }
        match c.me() {
            Some(me) if me == owner => Ok(me),
            Some(_) => Err(reason::BAD_TOKEN),
            None => {
                let since = Since::Chats(Vec::new());
                match c
                    .authenticate(Credentials::Token(token.to_owned(), since))
                    .await
                {
                    Ok(a) if a.ocid == owner => {
                        Self::logged_in(c, a, token.to_owned());
                        Ok(owner)
                    }
                    Ok(_) | Err(_) => Err(reason::BAD_TOKEN),
                }
            }
        }
    }

    async fn send_file(
        &self,
        c: &mut Conn<Self>,
        me: Ocid,
        f: pipe::SendFile,
        out: &mut Vec<Bytes>,
    ) {
        let name = pipe::command::SEND_FILE;
        let Ok(chunk) = BASE64.decode(f.data.as_bytes()) else {
            c.state_mut().upload = None;
            out.push(fail(name, reason::BAD_CHUNK));
            return;
        };
        let state = c.state_mut();
        let upload = match state.upload.take() {
            Some(u) if u.id == f.id => u,
            // A new id starts a new file (one left unfinished is dropped).
            _ => Upload {
                id: f.id.clone(),
                image: f.image,
                to: f.to,
                group: f.group,
                name: f.name.clone().unwrap_or_default(),
                bytes: Vec::new(),
            },
        };
        let mut upload = upload;
        if upload.bytes.len() as u64 + chunk.len() as u64 > MAX_PIPE_FILE {
            out.push(fail(name, reason::FILE_TOO_LARGE));
            return;
        }
        upload.bytes.extend_from_slice(&chunk);
        if f.more {
            let received = upload.bytes.len() as u64;
            state.upload = Some(upload);
            out.push(line(
                LineBuf::new("send_file_succ")
                    .field("发送成功！")
                    .field(&f.id)
                    .num(received)
                    .finish(),
            ));
            return;
        }
        if upload.bytes.is_empty() {
            out.push(fail(name, reason::BAD_CHUNK));
            return;
        }
        let file_name = match upload.name.trim() {
            "" if upload.image => "image",
            "" => "file",
            n => n,
        };
        let stored = c.domain().put_file(me, file_name, "", &upload.bytes).await;
        let file = match stored {
            Ok(file) => file,
            Err(e) => {
                out.push(fail(name, reason_of(&e)));
                return;
            }
        };
        let to = if upload.group {
            To::Group(ChatId(upload.to))
        } else {
            To::Account(Ocid(upload.to))
        };
        let attachment = Attachment {
            file: file.id.clone(),
            kind: if upload.image {
                FileKind::Image
            } else {
                FileKind::File
            },
            duration_ms: None,
        };
        let ack = Ack::File {
            id: upload.id,
            size: file.size,
            file: file.id,
        };
        c.send_file(to, &attachment, String::new(), None, ack, out)
            .await;
    }

    async fn profile(
        c: &mut Conn<Self>,
        me: Ocid,
        nickname: &str,
        icon: &str,
        signature: &str,
        question: &str,
        answer: &str,
    ) -> Result<(), &'static str> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let edit = ProfileEdit {
            nickname: some(nickname),
            avatar: some(icon),
            signature: some(signature),
            ..ProfileEdit::default()
        };
        let security = match (question.trim(), answer.trim()) {
            ("", "") => None,
            ("", _) | (_, "") => return Err(reason::BAD_FIELD),
            _ => Some((question, answer)),
        };
        if edit != ProfileEdit::default() {
            c.domain()
                .update_profile(me, &edit)
                .await
                .map_err(|e| reason_of(&e))?;
        }
        if let Some((q, a)) = security {
            c.domain()
                .set_security_answer(me, q, a)
                .await
                .map_err(|e| reason_of(&e))?;
        }
        Ok(())
    }
}

/// `friend_request|count|uid|request|...` and `group_request|count|uid|groupid|request|...`.
fn requests_line<'a>(
    name: &str,
    items: impl ExactSizeIterator<Item = (Ocid, Option<ChatId>, &'a str)>,
) -> Bytes {
    let mut l = LineBuf::new(name).num(items.len() as u64);
    for (uid, group, text) in items {
        l = l.num(uid.0);
        if let Some(g) = group {
            l = l.num(g.0);
        }
        l = l.field(text);
    }
    line(l.finish())
}

impl Dialect for Pipe {
    type Request = Request;
    type Ack = Ack;
    type State = State;
    const FILE_FRAMES: bool = true;

    fn slot(&self) -> Slot {
        self.slot
    }

    fn decode(&self, frame: &[u8]) -> Result<Decoded<Request>, Bytes> {
        let request = pipe::decode(frame).map_err(|r| line(r.line()))?;
        let needs_login = matches!(
            request,
            Request::GetUnreadFriendRequest
                | Request::GetUnreadGroupRequest
                | Request::GetUnreadMessage
        );
        let pipelined = matches!(request, Request::SendMessage { .. });
        Ok(Decoded {
            request,
            needs_login,
            pipelined,
        })
    }

    #[allow(clippy::too_many_lines)]
    async fn handle(&self, c: &mut Conn<Self>, request: Request, out: &mut Vec<Bytes>) {
        let name = pipe::reply_name(&request);
        let ok = |text: &str| line(LineBuf::new(&format!("{name}_succ")).field(text).finish());
        // Every command with a token: checked first.
        let me = match token_of(&request) {
            Some(token) => {
                let token = token.to_owned();
                match Self::check(c, actor_of(&request), &token).await {
                    Ok(me) => me,
                    Err(why) => {
                        c.drain_sends(out).await;
                        out.push(fail(name, why));
                        return;
                    }
                }
            }
            None => c.me().unwrap_or_default(),
        };
        let origin = Some(c.origin());
        match request {
            Request::Register {
                username,
                password,
                nickname,
                icon,
                signature,
                question,
                answer,
                vip: _,
            } => {
                let edit = ProfileEdit {
                    avatar: (!icon.is_empty()).then_some(icon),
                    signature: (!signature.is_empty()).then_some(signature),
                    ..ProfileEdit::default()
                };
                let security = match (question.trim(), answer.trim()) {
                    ("", "") => None,
                    ("", _) | (_, "") => {
                        out.push(fail(name, reason::BAD_FIELD));
                        return;
                    }
                    _ => Some((question.as_str(), answer.as_str())),
                };
                let made = Box::pin(c.domain().register_with_profile(
                    &Identity::Username(username),
                    &password,
                    Some(nickname.as_str()).filter(|n| !n.is_empty()),
                    &edit,
                    security,
                ))
                .await;
                out.push(match made {
                    Ok(account) => line(
                        LineBuf::new("register_succ")
                            .field("注册成功！")
                            .num(account.ocid.0)
                            .finish(),
                    ),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::Login { username, password } => {
                let key = LoginKey::Identity(Identity::Username(username));
                match c.authenticate(Credentials::Password(key, password)).await {
                    Ok(mut a) => {
                        let token = a.token.take().unwrap_or_default();
                        let (ocid, count) = (a.ocid, a.missed.len());
                        Self::logged_in(c, a, token.clone());
                        out.push(line(
                            LineBuf::new("login_succ")
                                .field("登录成功！")
                                .num(ocid.0)
                                .raw(&token)
                                .num(count as u64)
                                .finish(),
                        ));
                    }
                    Err(e) => out.push(fail(name, reason_of(&e))),
                }
            }
            Request::UpdateProfile {
                nickname,
                icon,
                signature,
                question,
                answer,
                ..
            } => {
                let done =
                    Self::profile(c, me, &nickname, &icon, &signature, &question, &answer).await;
                out.push(match done {
                    Ok(()) => ok("修改成功！"),
                    Err(why) => fail(name, why),
                });
            }
            Request::ForgetPasswd {
                username,
                question,
                answer,
                password,
            } => {
                let who = Identity::Username(username);
                // The question named must be the account's; a wrong one counts as a wrong
                // answer (and is not an attempt).
                let reset = match c.domain().security_question(&who).await {
                    Ok(q) if q.trim() == question.trim() => {
                        let client = Some(c.peer().ip());
                        c.domain()
                            .reset_password_from(&who, &answer, &password, client)
                            .await
                    }
                    Ok(_) => Err(DomainError::BadCredentials),
                    Err(e) => Err(e),
                };
                out.push(match reset {
                    Ok(()) => ok("修改成功！"),
                    Err(DomainError::BadCredentials) => fail(name, reason::WRONG_ANSWER),
                    Err(DomainError::Invalid(Invalid::Username { .. })) => {
                        fail(name, reason::WRONG_ANSWER)
                    }
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::GetUserInfo { uid, other, .. } => {
                let looked = match Ocid(other) {
                    o if o == me => Ok(()),
                    _ => c.domain().look_up(me),
                };
                let found = match looked {
                    Ok(()) => c.domain().profile(me, Ocid(other)).await,
                    Err(e) => Err(e),
                };
                match found {
                    Ok(p) => {
                        let head = if uid == other {
                            "userinfo"
                        } else {
                            "friend_detail_info"
                        };
                        out.push(line(
                            LineBuf::new(head)
                                .field(&p.account.nickname)
                                .field(&p.account.avatar)
                                .field(&p.account.signature)
                                .finish(),
                        ));
                    }
                    Err(e) => out.push(fail(name, reason_of(&e))),
                }
            }
            Request::GetUserFriend { .. } => match c.domain().contacts(me).await {
                Ok(contacts) => {
                    let mut l = LineBuf::new("friendinfo").num(contacts.friends.len() as u64);
                    for f in &contacts.friends {
                        l = l.num(f.ocid.0);
                    }
                    out.push(line(l.finish()));
                }
                Err(e) => out.push(fail(name, reason_of(&e))),
            },
            Request::GetUserGroup { .. } => match c.domain().my_groups(me).await {
                Ok(groups) => {
                    let mut l = LineBuf::new("groupinfo").num(groups.len() as u64);
                    for g in &groups {
                        l = l.num(g.id.0);
                    }
                    out.push(line(l.finish()));
                }
                Err(e) => out.push(fail(name, reason_of(&e))),
            },
            Request::GetGroupInfo { group, .. } => {
                match c.domain().group(me, ChatId(group)).await {
                    Ok(g) if g.role.is_some() => {
                        let chat = g.chat;
                        let mut l = LineBuf::new("groupinfo")
                            .num(chat.id.0)
                            .field(&chat.name)
                            .num(chat.members.len() as u64)
                            .num(chat.owner.map_or(0, |o| o.0));
                        for m in &chat.members {
                            l = l.num(m.0);
                        }
                        out.push(line(l.finish()));
                    }
                    Ok(_) => out.push(fail(name, reason::NOT_A_MEMBER)),
                    Err(e) => out.push(fail(name, reason_of(&e))),
                }
            }
            Request::AddFriend { other, request, .. } => {
                let asked = c
                    .domain()
                    .request_friend(me, Ocid(other), &request, origin)
                    .await;
                out.push(match asked {
                    Ok(_) => ok("已发送请求！"),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::DelFriend { other, .. } => {
                let removed = c.domain().remove_friend(me, Ocid(other), origin).await;
                out.push(match removed {
                    Ok(()) => ok("删除成功！"),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::HandFriendRequest { other, accept, .. } => {
                let answered = c
                    .domain()
                    .answer_friend(me, Ocid(other), accept, origin)
                    .await;
                out.push(match answered {
                    Ok(()) if accept => ok("同意请求！"),
                    Ok(()) => ok("拒绝请求！"),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::CreateGroup { name: group, .. } => {
                out.push(match c.domain().create_group(me, &[], &group).await {
                    Ok(chat) => line(
                        LineBuf::new("create_group_succ")
                            .num(chat.id.0)
                            .field("群组创建成功！")
                            .finish(),
                    ),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::JoinGroup { group, request, .. } => {
                let joined = c
                    .domain()
                    .join_group(me, ChatId(group), &request, origin)
                    .await;
                out.push(match joined {
                    Ok(_) => ok("已发送请求！"),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::HandGroupRequest {
                uid, group, accept, ..
            } => {
                let answered = c
                    .domain()
                    .answer_join(me, ChatId(group), Ocid(uid), accept, origin)
                    .await;
                out.push(match answered {
                    Ok(()) if accept => ok("同意请求！"),
                    Ok(()) => ok("拒绝请求！"),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
            Request::SendMessage {
                group, to, data, ..
            } => {
                let to = if group {
                    To::Group(ChatId(to))
                } else {
                    To::Account(Ocid(to))
                };
                c.send(to, kind::NORMAL, data, None, Ack::Message, out)
                    .await;
            }
            Request::SendFile(f) => self.send_file(c, me, f, out).await,
            Request::GetUnreadFriendRequest => match c.domain().contacts(me).await {
                Ok(contacts) => out.push(requests_line(
                    "friend_request",
                    contacts
                        .requests
                        .iter()
                        .map(|r| (r.from, None, r.message.as_str())),
                )),
                Err(e) => out.push(fail(name, reason_of(&e))),
            },
            Request::GetUnreadGroupRequest => match c.domain().requests_to_answer(me).await {
                Ok(requests) => out.push(requests_line(
                    "group_request",
                    requests
                        .iter()
                        .map(|r| (r.ocid, Some(r.chat), r.message.as_str())),
                )),
                Err(e) => out.push(fail(name, reason_of(&e))),
            },
            Request::GetUnreadMessage => {
                let unread = std::mem::take(&mut c.state_mut().unread);
                let mut budget = UNREAD_FILE_BUDGET;
                for (m, chat) in &unread {
                    let text = m.text();
                    let v = view(m, chat, &text);
                    out.push(message_with_file(c.domain(), me, &v, &mut budget).await);
                }
                c.release_held();
            }
            Request::GetFile { file, .. } => match read_file(c.domain(), me, &file).await {
                Ok((f, bytes)) => out.push(line(
                    LineBuf::new("get_file_succ")
                        .field(&f.id)
                        .field(&f.name)
                        .num(f.size)
                        .field(&f.mime)
                        .raw(&BASE64.encode(&bytes))
                        .finish(),
                )),
                Err(e) => out.push(fail(name, reason_of(&e))),
            },
            Request::FileOffer {
                host,
                port,
                name: file,
                size,
                to,
                ..
            } => {
                let offer = Notice::PeerFile {
                    from: me,
                    host,
                    port,
                    name: file,
                    size,
                };
                let to = Ocid(to);
                let relayed = if c.is_online(to) {
                    c.domain().offer_file(to, offer, origin).await
                } else {
                    Err(DomainError::NoSuchLogin)
                };
                out.push(match relayed {
                    Ok(()) => ok("已发送！"),
                    Err(DomainError::NoSuchLogin) => fail(name, reason::OFFLINE),
                    Err(e) => fail(name, reason_of(&e)),
                });
            }
        }
    }

    fn refuse(&self, request: &Request, why: Refusal) -> Bytes {
        fail(pipe::reply_name(request), refusal(why))
    }

    fn refuse_frame(&self, _frame: Option<&[u8]>, why: Refusal) -> Bytes {
        line(format!("error|{}", refusal(why)))
    }

    fn message(&self, view: &MessageView<'_>) -> Bytes {
        match view
            .file
            .and_then(|f| file_info(f.json).map(|i| (f.kind, i)))
        {
            Some((kind, info)) => file_line(view, kind, &info, None),
            None => line(message_line(view).finish()),
        }
    }

    async fn file_message(
        &self,
        domain: &Domain,
        me: Ocid,
        view: &MessageView<'_>,
    ) -> Option<Bytes> {
        Some(message_with_file(domain, me, view, &mut { MAX_PUSHED_FILE }).await)
    }

    fn ack(&self, ack: Ack, result: Result<&Sent, &DomainError>) -> Option<Bytes> {
        Some(match (ack, result) {
            (Ack::Message, Ok(sent)) => line(
                LineBuf::new("send_message_succ")
                    .field("发送成功！")
                    .num(sent.id.0)
                    .num(sent.index.0)
                    .finish(),
            ),
            (Ack::File { id, size, file }, Ok(sent)) => line(
                LineBuf::new("send_file_succ")
                    .field("发送成功！")
                    .field(&id)
                    .num(size)
                    .field(&file)
                    .num(sent.id.0)
                    .num(sent.index.0)
                    .finish(),
            ),
            (Ack::Message, Err(e)) => fail(pipe::command::SEND_MESSAGE, reason_of(e)),
            (Ack::File { .. }, Err(e)) => fail(pipe::command::SEND_FILE, reason_of(e)),
        })
    }

    fn event(&self, _state: &State, _me: Ocid, event: Event<'_>) -> Option<Bytes> {
        let Event::Notice { notice, .. } = event else {
            return None;
        };
        Some(match notice {
            Notice::FriendRequest { from, message } => requests_line(
                "friend_request",
                std::iter::once((*from, None, message.as_str())),
            ),
            Notice::JoinRequest {
                chat,
                from,
                message,
            } => requests_line(
                "group_request",
                std::iter::once((*from, Some(*chat), message.as_str())),
            ),
            // Relayed as the seed writes it, ending with `|`.
            Notice::PeerFile {
                from,
                host,
                port,
                name,
                size,
            } => {
                let mut l = LineBuf::new("file")
                    .num(from.0)
                    .field(host)
                    .field(port)
                    .field(name)
                    .field(size)
                    .finish();
                l.push('|');
                line(l)
            }
            _ => return None,
        })
    }

    fn farewell(&self, why: Close) -> Option<Bytes> {
        let why = match why {
            Close::IDLE => reason::IDLE_TIMEOUT,
            Close::TOO_LARGE => reason::LINE_TOO_LONG,
            Close::LOGIN_TIMEOUT => reason::LOGIN_TIMEOUT,
            Close::TOO_SLOW => reason::TOO_SLOW,
            Close::LOGGED_OUT => reason::LOGIN_ENDED,
            Close::DISABLED => reason::ACCOUNT_DISABLED,
            _ => reason::SHUTTING_DOWN,
        };
        Some(line(format!("error|{why}")))
    }
}

fn refusal(why: Refusal) -> &'static str {
    match why {
        Refusal::NotLoggedIn => reason::NOT_LOGGED_IN,
        Refusal::RateLimited => reason::RATE_LIMITED,
        Refusal::FrameTooLarge { .. } => reason::LINE_TOO_LONG,
        Refusal::BinaryFrame => reason::BAD_FIELD,
    }
}
