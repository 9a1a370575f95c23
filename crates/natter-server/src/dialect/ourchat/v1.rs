//! OurChat v1 (seed 001) on the core, in two flavours: as the seed writes it, at `GET /ws`, and
//! as OurChat's 2024 clients and server spoke it, at the WebSocket upgrade of `GET /`. Wire
//! details: `natter_proto::ourchat::v1` and `docs/protocol/ourchat-v1.md`.

use super::social::{invitation_value, join_request_value};
use super::{
    Ext, UNSUPPORTED, auth_state, decode_with, now_s, range, refusal, register_state, unregister,
    wire_error,
};
use crate::conn::{Authenticated, Conn, Credentials, Since};
use crate::dialect::{Decoded, Dialect, Event, Refusal};
use crate::domain::files::Attachment;
use crate::domain::{DomainError, LoginKey, Sent, To};
use crate::event::{Notice, view};
use crate::hub::Slot;
use crate::store::{Befriend, Identity};
use bytes::Bytes;
use natter_proto::ourchat::v1::{
    self, Envelope, Flavour, InfoField, LoginBy, Request, Target, code, social,
};
use natter_proto::{MessageView, Ocid, WireError};
use serde_json::{Map, Value, json};

/// The v1 dialect in one flavour; `slot` is where its frame for a delivered message is cached.
pub struct V1 {
    slot: Slot,
    flavour: Flavour,
}

impl V1 {
    /// Seed 001 as written (`/ws`).
    pub fn new(slot: Slot) -> Self {
        Self {
            slot,
            flavour: Flavour::Seed,
        }
    }

    /// OurChat as its 2024 clients spoke it (`/`).
    pub fn ourchat_2024(slot: Slot) -> Self {
        Self {
            slot,
            flavour: Flavour::OurChat2024,
        }
    }

    /// A frame as this flavour writes it, with the request's id.
    pub(super) fn bytes(&self, frame: Value, request_id: Option<&Value>) -> Bytes {
        Bytes::from(v1::finish_as(frame, request_id, self.flavour))
    }

    fn error(&self, request: Option<i64>, request_id: Option<&Value>, e: &WireError) -> Bytes {
        self.bytes(v1::error_reply(now_s(), request, e), request_id)
    }
}

/// What a v1 send's ack names: the destination as the request gave it, and the request's code
/// and id; `silent` when the client has not opted in to acks.
pub struct Ack {
    target: Target,
    code: i64,
    request_id: Option<Value>,
    silent: bool,
}

impl Ack {
    /// The ack of a send to `target` by request `code`, silent unless `c` opted in.
    fn new(c: &Conn<V1>, target: Target, code: i64, request_id: &Option<Value>) -> Self {
        Self {
            target,
            code,
            request_id: request_id.clone(),
            silent: !c.state().on,
        }
    }
}

/// The identity a login (or a reset) names; `None` for an ocid that is not a number.
pub(super) fn identity(by: LoginBy, account: &str) -> Option<Identity> {
    Some(match by {
        LoginBy::Email => Identity::Email(account.to_owned()),
        LoginBy::Username => Identity::Username(account.to_owned()),
        LoginBy::Phone => Identity::Phone(account.to_owned()),
        LoginBy::Ocid => return None,
    })
}

fn to(target: Target) -> To {
    match target {
        Target::Private(o) => To::Account(o),
        Target::Group(g) => To::Group(g),
    }
}

impl Dialect for V1 {
    type Request = Envelope;
    type Ack = Ack;
    type State = Ext;

    fn slot(&self) -> Slot {
        self.slot
    }

    fn decode(&self, frame: &[u8]) -> Result<Decoded<Envelope>, Bytes> {
        let finish = |frame, rid: Option<&Value>| self.bytes(frame, rid);
        let env = decode_with(frame, v1::error_reply, &finish, |t| {
            v1::decode(t).map_err(|d| (d.code, d.request_id, d.error))
        })?;
        let needs_login = !matches!(
            env.request,
            Request::Register { .. }
                | Request::Login { .. }
                | Request::Resume { .. }
                | Request::Heartbeat
                | Request::ServerStatus
                | Request::Unsupported { .. }
        ) && !matches!(&env.request, Request::Social(s) if s.anonymous());
        let pipelined = matches!(env.request, Request::Text { .. } | Request::File { .. });
        Ok(Decoded {
            request: env,
            needs_login,
            pipelined,
        })
    }

    async fn handle(&self, c: &mut Conn<Self>, env: Envelope, out: &mut Vec<Bytes>) {
        let rid = env.request_id.as_ref();
        let reply = |frame: Value| self.bytes(frame, rid);
        let fail = |e: &DomainError| self.error(Some(env.code), rid, &wire_error(e));
        let t = now_s();
        // Using an extension code opts the connection in to the extension frames.
        if env.code >= code::EXTENSIONS {
            c.state_mut().on = true;
        }
        // Past the login gate, every request that needs a login has a logged-in account.
        let me = c.me().unwrap_or_default();
        match env.request {
            Request::Heartbeat => out.push(reply(v1::simple(code::HEARTBEAT_REPLY, t))),
            Request::ServerStatus => out.push(reply(v1::server_status(t))),
            Request::Unsupported { reply: answer } => {
                out.push(reply(v1::unsupported(t, answer, UNSUPPORTED)));
            }
            Request::Unregister => {
                let refused = unregister(c).await;
                out.push(reply(v1::unregister_reply(t, refused.as_deref())));
            }
            Request::Register {
                by,
                account,
                password,
                name,
                ext,
                invite,
            } => {
                c.state_mut().on |= ext;
                let id = identity(by, &account).unwrap_or(Identity::Email(account));
                // Boxed, as logins are: rare, and a large future to carry inline.
                let result = Box::pin(c.domain().register(
                    &id,
                    &password,
                    name.as_deref(),
                    invite.as_deref(),
                ))
                .await;
                match register_state(&result) {
                    Ok(state) => out.push(reply(v1::register_reply(
                        t,
                        state,
                        result.ok().map(|a| a.ocid),
                    ))),
                    Err(e) => out.push(self.error(Some(env.code), rid, &e)),
                }
            }
            Request::Login {
                by,
                account,
                password,
                ext,
            } => {
                c.state_mut().on |= ext;
                let key = match by {
                    LoginBy::Ocid => account.trim().parse().ok().map(LoginKey::Ocid),
                    _ => identity(by, &account).map(LoginKey::Identity),
                };
                let result = match key {
                    Some(key) => c.authenticate(Credentials::Password(key, password)).await,
                    None => Err(DomainError::BadCredentials),
                };
                match result {
                    Err(
                        e @ (DomainError::TooManyAttempts { .. }
                        | DomainError::TooManyConnections { .. }),
                    ) => out.push(fail(&e)),
                    result => {
                        self.answer_auth(c, code::LOGIN_REPLY, result, rid, out)
                            .await;
                    }
                }
            }
            Request::Resume { token, since } => {
                let since = since.into_iter().map(|(t, i)| (to(t), i)).collect();
                let result = c
                    .authenticate(Credentials::Token(token, Since::Targets(since)))
                    .await;
                match result {
                    Err(
                        e @ (DomainError::TooManyAttempts { .. }
                        | DomainError::TooManyConnections { .. }),
                    ) => out.push(fail(&e)),
                    result => {
                        self.answer_auth(c, code::RESUME_REPLY, result, rid, out)
                            .await;
                    }
                }
            }
            Request::Logout => match c.logout().await {
                Ok(()) => out.push(reply(v1::simple(code::LOGOUT_REPLY, t))),
                Err(e) => out.push(fail(&e)),
            },
            Request::Text {
                to: target,
                msg,
                client_id,
                kind,
            } => {
                let ack = Ack::new(c, target, env.code, &env.request_id);
                let kind = kind.unwrap_or(crate::store::kind::NORMAL);
                c.send(to(target), kind, msg, client_id, ack, out).await;
            }
            Request::File {
                to: target,
                file,
                kind,
                duration_ms,
                msg,
                client_id,
            } => {
                let ack = Ack::new(c, target, env.code, &env.request_id);
                let attachment = Attachment {
                    file,
                    kind,
                    duration_ms,
                };
                // Boxed: its future is large and the connection's holds the largest request's.
                Box::pin(c.send_file(to(target), &attachment, msg, client_id, ack, out)).await;
            }
            Request::Social(request) => {
                Box::pin(self.social(c, env.code, rid, request, out)).await;
            }
            Request::NewSession { members, name } => {
                let name = name.unwrap_or_default();
                let origin = Some(c.origin());
                // Boxed: rare, and its future (the consent checks) would otherwise enlarge
                // every connection's task.
                let made = Box::pin(
                    c.domain()
                        .create_group_inviting(me, &members, &name, origin),
                )
                .await;
                let frame = match made {
                    Ok((chat, invited)) => {
                        let mut frame = v1::new_session_reply(t, Ok(chat.id));
                        // Listed accounts whose setting asks for an invitation.
                        frame["invited"] = json!(invited);
                        frame
                    }
                    Err(e) => v1::new_session_reply(t, Err(&wire_error(&e).message)),
                };
                out.push(reply(frame));
            }
            Request::AccountInfo { ocid, values } => match c.domain().account_for(me, ocid).await {
                Ok(a) => {
                    let mut data = Map::new();
                    for (field, name) in values {
                        let v = match field {
                            InfoField::Ocid => json!(a.ocid),
                            InfoField::Nickname => json!(a.nickname),
                            InfoField::Status => json!(a.status),
                            InfoField::Avatar => json!(a.avatar),
                            InfoField::Time => json!(a.created_at / 1000),
                            InfoField::Email if a.ocid == me => json!(a.email),
                            InfoField::Uuid => json!(a.uuid),
                            InfoField::Email | InfoField::Unknown => Value::Null,
                        };
                        data.insert(name, v);
                    }
                    out.push(reply(v1::account_info_reply(t, data)));
                }
                Err(e) => out.push(fail(&e)),
            },
            Request::History {
                target,
                page,
                limit,
            } => {
                let found = c.domain().history(me, to(target), range(page), limit).await;
                match found {
                    Ok((chat, messages, more)) => {
                        let values = match chat {
                            Some(chat) => messages
                                .iter()
                                .map(|m| {
                                    let text = m.text();
                                    v1::text_value(&view(m, &chat, &text))
                                })
                                .collect(),
                            None => Vec::new(),
                        };
                        out.push(reply(v1::history_reply(t, target, values, more)));
                    }
                    Err(e) => out.push(fail(&e)),
                }
            }
            Request::FriendRequest { ocid, msg } => {
                let origin = Some(c.origin());
                match c.domain().request_friend(me, ocid, &msg, origin).await {
                    Ok(outcome) => {
                        let state = match outcome {
                            Befriend::Requested => 0,
                            Befriend::Accepted => 1,
                            Befriend::AlreadyFriends => 2,
                        };
                        out.push(reply(v1::friend_request_reply(t, ocid, state)));
                    }
                    Err(e) => out.push(fail(&e)),
                }
            }
            Request::FriendAnswer { ocid, accept } => {
                let origin = Some(c.origin());
                match c.domain().answer_friend(me, ocid, accept, origin).await {
                    Ok(()) => out.push(reply(v1::friend_answer_reply(t, ocid, accept))),
                    Err(e) => out.push(fail(&e)),
                }
            }
            Request::FriendRemove { ocid } => {
                let origin = Some(c.origin());
                match c.domain().remove_friend(me, ocid, origin).await {
                    Ok(()) => out.push(reply(v1::friend_remove_reply(t, ocid))),
                    Err(e) => out.push(fail(&e)),
                }
            }
            Request::Friends => match c.domain().contacts(me).await {
                Ok(contacts) => {
                    let friends = contacts
                        .friends
                        .iter()
                        .map(|f| v1::friend_value(f.ocid, f.since / 1000, c.is_online(f.ocid)))
                        .collect();
                    let requests = contacts
                        .requests
                        .iter()
                        .map(|r| v1::request_value(r.from, &r.message, r.created_at / 1000))
                        .collect();
                    out.push(reply(v1::friends_reply(t, friends, requests)));
                }
                Err(e) => out.push(fail(&e)),
            },
            // Answered only when it fails: typing notices are frequent and need no reply.
            Request::Typing { to: target } => {
                let origin = Some(c.origin());
                if let Err(e) = c.domain().typing(me, to(target), origin).await {
                    out.push(fail(&e));
                }
            }
        }
    }

    fn refuse(&self, env: &Envelope, why: Refusal) -> Bytes {
        self.error(Some(env.code), env.request_id.as_ref(), &refusal(why))
    }

    fn refuse_frame(&self, frame: Option<&[u8]>, why: Refusal) -> Bytes {
        let (code, request_id) = super::undecoded_head(frame);
        self.error(code, request_id.as_ref(), &refusal(why))
    }

    fn message(&self, view: &MessageView<'_>) -> Bytes {
        Bytes::from(v1::encode_text(view, self.flavour))
    }

    fn ack(&self, ack: Ack, result: Result<&Sent, &DomainError>) -> Option<Bytes> {
        let rid = ack.request_id.as_ref();
        match result {
            Ok(_) if ack.silent => None,
            Ok(sent) => Some(Bytes::from(v1::encode_ack(
                now_s(),
                ack.target,
                sent.id,
                sent.index,
                sent.client_id.as_deref(),
                rid,
                self.flavour,
            ))),
            Err(e) => Some(self.error(Some(ack.code), rid, &wire_error(e))),
        }
    }

    fn event(&self, state: &Ext, me: Ocid, event: Event<'_>) -> Option<Bytes> {
        if !state.on {
            return None;
        }
        let frame = match event {
            Event::Presence { ocid, online } => v1::presence(now_s(), ocid, online),
            Event::Notice { notice, at_ms } => {
                let t = at_ms / 1000;
                match notice {
                    Notice::FriendRequest { from, message } => {
                        v1::friend_request_push(t, *from, message)
                    }
                    Notice::Friendship { a, b, change, by } => {
                        let other = if *a == me { *b } else { *a };
                        let state = change.word();
                        v1::friend_update(t, other, state, *by)
                    }
                    // An account is not told of its own typing (on its other devices).
                    Notice::Typing { from, .. } if *from == me => return None,
                    Notice::Typing { from, group } => {
                        let target = group.map_or(Target::Private(me), Target::Group);
                        v1::typing_push(t, *from, target)
                    }
                    other => Self::social_push(other, me, t)?,
                }
            }
        };
        Some(self.bytes(frame, None))
    }
}

impl V1 {
    /// Code 7 or 102 with the authentication's state (and token, for a password login), then,
    /// on success, what the device missed as code 0 frames, and (opted in) what waits for the
    /// account (friend requests as 119, join requests to answer as 180, invitations as 182,
    /// kept notices as 181 and 183) and code 106 with the count of missed messages and the
    /// unread total.
    async fn answer_auth(
        &self,
        c: &Conn<Self>,
        code: i64,
        result: Result<Authenticated, DomainError>,
        rid: Option<&Value>,
        out: &mut Vec<Bytes>,
    ) {
        let outcome = auth_state(&result);
        let (ocid, token) = match &result {
            Ok(a) => (Some(a.ocid), a.token.as_deref()),
            Err(_) => (None, None),
        };
        out.push(self.bytes(v1::login_reply(now_s(), code, outcome, ocid, token), rid));
        let Ok(a) = result else { return };
        for (m, chat) in &a.missed {
            let text = m.text();
            out.push(self.message(&view(m, chat, &text)));
        }
        if !c.state().on {
            return;
        }
        let t = now_s();
        let mut done = v1::sync_done(t, a.missed.len() as u64);
        // On failure (logged already) the login stands without its news.
        if let Ok(news) = c.domain().news(a.ocid).await {
            for r in &news.friend_requests {
                let push = v1::friend_request_push(r.created_at / 1000, r.from, &r.message);
                out.push(self.bytes(push, None));
            }
            let pushes = news
                .join_requests
                .iter()
                .map(|r| social::frame(code::JOIN_REQUEST_PUSH, t, join_request_value(r)))
                .chain(
                    news.invitations
                        .iter()
                        .map(|i| social::frame(code::INVITATION_PUSH, t, invitation_value(i))),
                )
                .chain(
                    news.notices
                        .iter()
                        .filter_map(|(n, at)| Self::social_push(n, a.ocid, at / 1000)),
                );
            for push in pushes {
                out.push(self.bytes(push, None));
            }
            done["unread"] = json!(news.unread);
        }
        out.push(self.bytes(done, None));
    }
}
