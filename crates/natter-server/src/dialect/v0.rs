//! OurChat draft v0 (seed 000) on the domain. Wire details: `natter_proto::v0` and
//! `docs/protocol/ourchat-v0.md`.

use super::now_s;
use crate::domain::{LoginKey, To, encode, view};
use crate::session::{Missed, Session};
use axum::extract::ws::Utf8Bytes;
use natter_proto::v0::{self, Request, Target, code};
use natter_proto::{ErrorCode, WireError};
use serde_json::Value;

/// Undelivered messages per code 8 frame.
pub const UNDELIVERED_BATCH: usize = 100;

pub async fn handle(s: &mut Session, text: &str, out: &mut Vec<Utf8Bytes>) {
    let env = match v0::decode(text) {
        Ok(env) => env,
        Err(d) => {
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
    if !s.allow_request() {
        out.push(error(&WireError::new(
            ErrorCode::RateLimited,
            "too many requests; slow down",
        )));
        return;
    }
    let t = now_s();
    let needs_login = !matches!(
        env.request,
        Request::Register { .. }
            | Request::Login { .. }
            | Request::Resume { .. }
            | Request::Heartbeat
    );
    let me = match s.me() {
        Ok(me) => me,
        Err(e) if needs_login => {
            out.push(error(&e));
            return;
        }
        Err(_) => 0,
    };
    match env.request {
        Request::Heartbeat => out.push(reply(v0::simple(code::HEARTBEAT_REPLY, t))),
        Request::Register { mail, password } => {
            match s.app.domain.register_email(&mail, &password, None).await {
                Ok(a) => out.push(reply(v0::register_reply(t, 0, Some(a.ocid)))),
                Err(e) if e.code == ErrorCode::EmailTaken => {
                    out.push(reply(v0::register_reply(t, 2, None)))
                }
                Err(e) if e.code == ErrorCode::Internal => {
                    out.push(reply(v0::register_reply(t, 1, None)))
                }
                Err(e) => out.push(error(&e)),
            }
        }
        Request::Login { ocid, password } => {
            match s.app.domain.login(LoginKey::Ocid(ocid), &password).await {
                Ok((account, token)) => match s.log_in(&account, token.clone()).await {
                    Ok(missed) => {
                        out.push(reply(v0::login_reply(
                            t,
                            code::LOGIN_REPLY,
                            0,
                            Some(account.ocid),
                            Some(&token),
                        )));
                        push_undelivered(s, missed, out);
                    }
                    Err(_) => out.push(reply(v0::login_reply(t, code::LOGIN_REPLY, 2, None, None))),
                },
                Err(e) if e.code == ErrorCode::BadCredentials => {
                    out.push(reply(v0::login_reply(t, code::LOGIN_REPLY, 1, None, None)));
                }
                Err(_) => out.push(reply(v0::login_reply(t, code::LOGIN_REPLY, 2, None, None))),
            }
        }
        Request::Resume { token } => match s.app.domain.resume(&token).await {
            Ok(account) => match s.log_in(&account, token).await {
                Ok(missed) => {
                    out.push(reply(v0::login_reply(
                        t,
                        code::RESUME_REPLY,
                        0,
                        Some(account.ocid),
                        None,
                    )));
                    push_undelivered(s, missed, out);
                }
                Err(_) => out.push(reply(v0::login_reply(t, code::RESUME_REPLY, 2, None, None))),
            },
            Err(e) if e.code == ErrorCode::InvalidToken => {
                out.push(reply(v0::login_reply(t, code::RESUME_REPLY, 1, None, None)));
            }
            Err(_) => out.push(reply(v0::login_reply(t, code::RESUME_REPLY, 2, None, None))),
        },
        Request::Logout => {
            if let Some(login) = &s.login
                && let Err(e) = s.app.domain.logout(&login.token).await
            {
                out.push(error(&e));
                return;
            }
            s.log_out().await;
            out.push(reply(v0::simple(code::LOGOUT_REPLY, t)));
        }
        Request::Text {
            to,
            sender_id,
            msg,
            client_id,
        } => {
            if sender_id.is_some_and(|id| id != me) {
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
            match s
                .app
                .domain
                .send_text(me, to, msg, client_id, Some(s.conn.id))
                .await
            {
                Ok(sent) => {
                    s.note_own(sent.chat.id, sent.message.index).await;
                    let m = &sent.message;
                    out.push(reply(v0::ack(
                        now_s(),
                        m.chat,
                        m.id,
                        m.index,
                        m.client_id.as_deref(),
                    )));
                }
                Err(e) => out.push(error(&e)),
            }
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
