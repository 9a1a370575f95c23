//! OurChat draft v0 (seed 000) on the domain. Wire details: `natter_proto::v0` and
//! `docs/protocol/ourchat-v0.md`.

use super::{Credentials, now_s};
use crate::domain::{LoginKey, To, encode, view};
use crate::session::{AckFrame, Missed, Session};
use axum::extract::ws::Utf8Bytes;
use natter_proto::v0::{self, Request, Target, code};
use natter_proto::{ErrorCode, WireError};
use serde_json::Value;

/// Undelivered messages per code 8 frame.
pub const UNDELIVERED_BATCH: usize = 100;

pub async fn handle(s: &mut Session, text: &str, out: &mut Vec<Utf8Bytes>) {
    let env = match v0::decode(text) {
        Ok(env) if matches!(env.request, Request::Text { .. }) => env,
        // Anything but a send first waits for the sends before it (replies in request order).
        Ok(env) => {
            s.drain_sends(out).await;
            env
        }
        Err(d) => {
            s.drain_sends(out).await;
            out.push(
                v0::finish(
                    v0::error_reply(now_s(), d.code, &d.error),
                    d.request_id.as_ref(),
                )
                .into(),
            );
            return;
        }
    };
    let rid = env.request_id.as_ref();
    let reply = |frame: Value| -> Utf8Bytes { v0::finish(frame, rid).into() };
    let error = |e: &WireError| -> Utf8Bytes {
        v0::finish(v0::error_reply(now_s(), Some(env.code), e), rid).into()
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
        Request::Heartbeat => out.push(reply(v0::simple(code::HEARTBEAT_REPLY, t))),
        Request::Register { mail, password } => {
            match super::register(s, &mail, &password, None).await {
                Ok((state, ocid)) => out.push(reply(v0::register_reply(t, state, ocid))),
                Err(e) => out.push(error(&e)),
            }
        }
        Request::Login { ocid, password } => {
            let credentials = Credentials::Password(LoginKey::Ocid(ocid), password);
            let auth = super::authenticate(s, credentials).await;
            answer_auth(s, code::LOGIN_REPLY, auth, rid, out);
        }
        Request::Resume { token, since } => {
            let credentials = Credentials::Token(token, super::Since::Chats(since));
            let auth = super::authenticate(s, credentials).await;
            answer_auth(s, code::RESUME_REPLY, auth, rid, out);
        }
        Request::Logout => match super::logout(s).await {
            Ok(()) => out.push(reply(v0::simple(code::LOGOUT_REPLY, t))),
            Err(e) => out.push(error(&e)),
        },
        Request::Text {
            to,
            sender_id,
            msg,
            client_id,
        } => {
            if sender_id.is_some_and(|id| id != me) {
                s.drain_sends(out).await;
                out.push(error(&WireError::new(
                    ErrorCode::InvalidField,
                    "field `data.sender_id` must be your own ocid",
                )));
                return;
            }
            let to = match to {
                Target::Chat(c) => To::Chat(c),
                Target::Private(o) => To::Account(o),
            };
            let (rid, code) = (env.request_id.clone(), env.code);
            let ack: AckFrame = Box::new(move |result| {
                let frame = match result {
                    Ok(sent) => v0::ack(
                        now_s(),
                        sent.chat,
                        sent.id,
                        sent.index,
                        sent.client_id.as_deref(),
                    ),
                    Err(e) => v0::error_reply(now_s(), Some(code), e),
                };
                v0::finish(frame, rid.as_ref()).into()
            });
            super::send_text(s, to, msg, client_id, ack, error, out).await;
        }
        Request::History { chat, page, limit } => {
            match s
                .app
                .domain
                .history(me, To::Chat(chat), super::v1::range(page), limit)
                .await
            {
                Ok((info, messages, more)) => {
                    let strings = match info {
                        Some(info) => messages
                            .iter()
                            .map(|m| {
                                let text = m.text();
                                encode(s.dialect, &view(m, &info, &text))
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    out.push(reply(v0::history_reply(t, chat, strings, more)));
                }
                Err(e) => out.push(error(&e)),
            }
        }
    }
}

/// Code 8 frames (always at least one), each with up to `UNDELIVERED_BATCH` messages as
/// JSON strings; `more` says whether another follows.
fn push_undelivered(s: &Session, missed: Vec<Missed>, out: &mut Vec<Utf8Bytes>) {
    let strings: Vec<String> = missed
        .iter()
        .map(|(m, chat)| {
            let text = m.text();
            encode(s.dialect, &view(m, chat, &text))
        })
        .collect();
    let batches = strings.len().div_ceil(UNDELIVERED_BATCH).max(1);
    let mut rest = strings.into_iter();
    for i in 0..batches {
        let batch: Vec<String> = rest.by_ref().take(UNDELIVERED_BATCH).collect();
        let mut frame = v0::undelivered(batch);
        frame["data"]["more"] = Value::Bool(i + 1 < batches);
        out.push(v0::finish(frame, None).into());
    }
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
    let frame = v0::login_reply(now_s(), code, auth.state, auth.ocid, auth.token.as_deref());
    out.push(v0::finish(frame, rid).into());
    if auth.state == 0 {
        push_undelivered(s, auth.missed, out);
    }
}
