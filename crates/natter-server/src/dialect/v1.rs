//! OurChat v1 (seed 001) on the domain. Wire details: `natter_proto::v1` and
//! `docs/protocol/ourchat-v1.md`.

use super::{Credentials, now_s};
use crate::domain::friends::{FriendChange, Notice};
use crate::domain::{LoginKey, To, encode, view};
use crate::hub::Push;
use crate::session::{AckFrame, Missed, Session};
use crate::store::Befriend;
use crate::store::Range;
use axum::extract::ws::Utf8Bytes;
use natter_proto::v1::{self, InfoField, LoginBy, Page, Request, Target, code};
use natter_proto::{Ocid, WireError};
use serde_json::{Map, Value, json};

pub fn to(target: Target) -> To {
    match target {
        Target::Private(o) => To::Account(o),
        Target::Group(g) => To::Group(g),
    }
}

pub fn range(page: Page) -> Range {
    match page {
        Page::Latest => Range::Latest,
        Page::Before(i) => Range::Before(i),
        Page::After(i) => Range::After(i),
    }
}

pub async fn handle(s: &mut Session, text: &str, out: &mut Vec<Utf8Bytes>) {
    let env = match v1::decode(text) {
        Ok(env) if matches!(env.request, Request::Text { .. }) => env,
        // Anything but a send first waits for the sends before it (replies in request order).
        Ok(env) => {
            s.drain_sends(out).await;
            env
        }
        Err(d) => {
            s.drain_sends(out).await;
            out.push(
                v1::finish(
                    v1::error_reply(now_s(), d.code, &d.error),
                    d.request_id.as_ref(),
                )
                .into(),
            );
            return;
        }
    };
    let rid = env.request_id.as_ref();
    let reply = |frame: Value| -> Utf8Bytes { v1::finish(frame, rid).into() };
    let error = |e: &WireError| -> Utf8Bytes {
        v1::finish(v1::error_reply(now_s(), Some(env.code), e), rid).into()
    };
    let t = now_s();
    let needs_login = !matches!(
        env.request,
        Request::Register { .. }
            | Request::Login { .. }
            | Request::Resume { .. }
            | Request::Heartbeat
    );
    let me = match super::gate(s, needs_login) {
        Ok(me) => me,
        Err(e) => {
            out.push(error(&e));
            return;
        }
    };
    match env.request {
        Request::Heartbeat => out.push(reply(v1::simple(code::HEARTBEAT_REPLY, t))),
        Request::Register {
            email,
            password,
            name,
        } => match super::register(s, &email, &password, Some(&name)).await {
            Ok((state, ocid)) => out.push(reply(v1::register_reply(t, state, ocid))),
            Err(e) => out.push(error(&e)),
        },
        Request::Login {
            by,
            account,
            password,
        } => {
            let key = match by {
                LoginBy::Email => Some(LoginKey::Email(account)),
                LoginBy::Ocid => account.trim().parse().ok().map(LoginKey::Ocid),
            };
            let auth = match key {
                Some(key) => super::authenticate(s, Credentials::Password(key, password)).await,
                None => super::Auth::rejected(),
            };
            answer_auth(s, code::LOGIN_REPLY, auth, rid, out);
        }
        Request::Resume { token, since } => {
            let since = since.into_iter().map(|(t, i)| (to(t), i)).collect();
            let credentials = Credentials::Token(token, super::Since::Targets(since));
            let auth = super::authenticate(s, credentials).await;
            answer_auth(s, code::RESUME_REPLY, auth, rid, out);
        }
        Request::Logout => match super::logout(s).await {
            Ok(()) => out.push(reply(v1::simple(code::LOGOUT_REPLY, t))),
            Err(e) => out.push(error(&e)),
        },
        Request::Text {
            to: target,
            msg,
            client_id,
        } => {
            let (rid, code) = (env.request_id.clone(), env.code);
            let ack: AckFrame = Box::new(move |result| {
                match result {
                    Ok(sent) => v1::encode_ack(
                        now_s(),
                        target,
                        sent.id,
                        sent.index,
                        sent.client_id.as_deref(),
                        rid.as_ref(),
                    ),
                    Err(e) => v1::finish(v1::error_reply(now_s(), Some(code), e), rid.as_ref()),
                }
                .into()
            });
            super::send_text(s, to(target), msg, client_id, ack, error, out).await;
        }
        Request::NewSession { members, name } => {
            let name = name.unwrap_or_default();
            match s.app.domain.create_group(me, &members, &name).await {
                Ok(chat) => out.push(reply(v1::new_session_reply(t, Ok(chat.id)))),
                Err(e) => out.push(reply(v1::new_session_reply(t, Err(&e.message)))),
            }
        }
        Request::AccountInfo { ocid, values } => match s.app.domain.account(ocid).await {
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
                        InfoField::Email => Value::Null,
                    };
                    data.insert(name, v);
                }
                out.push(reply(v1::account_info_reply(t, data)));
            }
            Err(e) => out.push(error(&e)),
        },
        Request::History {
            target,
            page,
            limit,
        } => {
            match s
                .app
                .domain
                .history(me, to(target), range(page), limit)
                .await
            {
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
                Err(e) => out.push(error(&e)),
            }
        }
        Request::FriendRequest { ocid, msg } => {
            let origin = Some(s.conn.origin());
            match s.app.domain.request_friend(me, ocid, &msg, origin).await {
                Ok(outcome) => {
                    let state = match outcome {
                        Befriend::Requested => 0,
                        Befriend::Accepted => 1,
                        Befriend::AlreadyFriends => 2,
                    };
                    out.push(reply(v1::friend_request_reply(t, ocid, state)));
                }
                Err(e) => out.push(error(&e)),
            }
        }
        Request::FriendAnswer { ocid, accept } => {
            let origin = Some(s.conn.origin());
            match s.app.domain.answer_friend(me, ocid, accept, origin).await {
                Ok(()) => out.push(reply(v1::friend_answer_reply(t, ocid, accept))),
                Err(e) => out.push(error(&e)),
            }
        }
        Request::FriendRemove { ocid } => {
            let origin = Some(s.conn.origin());
            match s.app.domain.remove_friend(me, ocid, origin).await {
                Ok(()) => out.push(reply(v1::friend_remove_reply(t, ocid))),
                Err(e) => out.push(error(&e)),
            }
        }
        Request::Friends => match s.app.domain.contacts(me).await {
            Ok(c) => {
                let friends = c
                    .friends
                    .iter()
                    .map(|f| v1::friend_value(f.ocid, f.since / 1000, s.app.hub.is_online(f.ocid)))
                    .collect();
                let requests = c
                    .requests
                    .iter()
                    .map(|r| v1::request_value(r.from, &r.message, r.created_at / 1000))
                    .collect();
                out.push(reply(v1::friends_reply(t, friends, requests)));
            }
            Err(e) => out.push(error(&e)),
        },
        // Answered only when it fails: typing notices are frequent and need no reply.
        Request::Typing { to: target } => {
            let origin = Some(s.conn.origin());
            if let Err(e) = s.app.domain.typing(me, to(target), origin).await {
                out.push(error(&e));
            }
        }
    }
}

/// A pushed notice or presence change for the account `me` as a v1 frame, if it has one.
pub fn push_frame(me: Ocid, push: &Push) -> Option<Utf8Bytes> {
    let frame = match push {
        Push::Presence { ocid, online } => v1::presence(now_s(), *ocid, *online),
        Push::Notice(signal) => {
            let t = signal.at / 1000;
            match &signal.notice {
                Notice::FriendRequest { from, message } => {
                    v1::friend_request_push(t, *from, message)
                }
                Notice::Friendship { a, b, change, by } => {
                    let other = if *a == me { *b } else { *a };
                    let state = match change {
                        FriendChange::Accepted => "accepted",
                        FriendChange::Rejected => "rejected",
                        FriendChange::Removed => "removed",
                    };
                    v1::friend_update(t, other, state, *by)
                }
                // An account is not told of its own typing (on its other devices).
                Notice::Typing { from, .. } if *from == me => return None,
                Notice::Typing { from, group } => {
                    let target = group.map_or(Target::Private(me), Target::Group);
                    v1::typing_push(t, *from, target)
                }
            }
        }
        Push::Deliver(_) | Push::Resync => return None,
    };
    Some(v1::finish(frame, None).into())
}

/// Missed messages as ordinary code 0 frames, then code 18 with their count.
fn push_missed(s: &Session, missed: Vec<Missed>, out: &mut Vec<Utf8Bytes>) {
    let count = missed.len() as u64;
    for (m, chat) in &missed {
        let text = m.text();
        out.push(encode(s.dialect, &view(m, chat, &text)).into());
    }
    out.push(v1::finish(v1::sync_done(now_s(), count), None).into());
}

/// Code 7 or 14 with the authentication's state (and token, for a password login), then, on
/// success, what the account missed.
fn answer_auth(
    s: &Session,
    code: i64,
    auth: super::Auth,
    rid: Option<&Value>,
    out: &mut Vec<Utf8Bytes>,
) {
    let frame = v1::login_reply(now_s(), code, auth.state, auth.ocid, auth.token.as_deref());
    out.push(v1::finish(frame, rid).into());
    if auth.state == 0 {
        push_missed(s, auth.missed, out);
    }
}
