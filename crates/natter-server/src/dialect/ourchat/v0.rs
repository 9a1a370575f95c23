//! OurChat draft v0 (seed 000) on the core, served at `GET /ws/v0`. Wire details:
//! `natter_proto::ourchat::v0` and `docs/protocol/ourchat-v0.md`.

use super::{
    Ext, UNSUPPORTED, auth_state, bytes, decode_with, now_s, range, refusal, register_state,
    unregister, wire_error,
};
use crate::conn::{Authenticated, Conn, Credentials, Missed, Since};
use crate::dialect::{Decoded, Dialect, Event, Refusal};
use crate::domain::{DomainError, LoginKey, Sent, To};
use crate::event::view;
use crate::hub::Slot;
use bytes::Bytes;
use natter_proto::ourchat::v0::{self, Envelope, Request, Target, code};
use natter_proto::{ErrorCode, MessageView, Ocid, WireError};
use serde_json::Value;

/// Undelivered messages per code 8 frame.
pub const UNDELIVERED_BATCH: usize = 100;

/// The v0 dialect; `slot` is where its frame for a delivered message is cached.
pub struct V0 {
    slot: Slot,
}

impl V0 {
    pub fn new(slot: Slot) -> Self {
        Self { slot }
    }
}

/// What a v0 send's ack needs: the request's code and id; `silent` when the client has not
/// opted in to acks.
pub struct Ack {
    code: i64,
    request_id: Option<Value>,
    silent: bool,
}

fn error(request: Option<i64>, request_id: Option<&Value>, e: &WireError) -> Bytes {
    bytes(v0::error_reply(now_s(), request, e), request_id)
}

impl Dialect for V0 {
    type Request = Envelope;
    type Ack = Ack;
    type State = Ext;

    fn slot(&self) -> Slot {
        self.slot
    }

    fn decode(&self, frame: &[u8]) -> Result<Decoded<Envelope>, Bytes> {
        let env = decode_with(frame, v0::error_reply, &bytes, |t| {
            v0::decode(t).map_err(|d| (d.code, d.request_id, d.error))
        })?;
        let needs_login = !matches!(
            env.request,
            Request::Register { .. }
                | Request::Login { .. }
                | Request::Resume { .. }
                | Request::Heartbeat
                | Request::ServerStatus
                | Request::Unsupported { .. }
        );
        let pipelined = matches!(env.request, Request::Text { .. });
        Ok(Decoded {
            request: env,
            needs_login,
            pipelined,
        })
    }

    async fn handle(&self, c: &mut Conn<Self>, env: Envelope, out: &mut Vec<Bytes>) {
        let rid = env.request_id.as_ref();
        let reply = |frame: Value| bytes(frame, rid);
        let fail = |e: &WireError| error(Some(env.code), rid, e);
        let t = now_s();
        // Using an extension code opts the connection in to the extension frames.
        if env.code >= code::EXTENSIONS {
            c.state_mut().on = true;
        }
        // Past the login gate, every request that needs a login has a logged-in account.
        let me = c.me().unwrap_or_default();
        match env.request {
            Request::Heartbeat => out.push(reply(v0::simple(code::HEARTBEAT_REPLY, t))),
            Request::ServerStatus => out.push(reply(v0::server_status(t))),
            Request::Unsupported { reply: answer } => {
                out.push(reply(v0::unsupported(t, answer, UNSUPPORTED)));
            }
            Request::Unregister => {
                let refused = unregister(c).await;
                out.push(reply(v0::unregister_reply(t, refused.as_deref())));
            }
            Request::Register {
                mail,
                password,
                nick,
                ext,
                invite,
            } => {
                c.state_mut().on |= ext;
                // Boxed, as logins are: rare, and a large future to carry inline.
                let result = Box::pin(c.domain().register_email(
                    &mail,
                    &password,
                    nick.as_deref(),
                    invite.as_deref(),
                ))
                .await;
                match register_state(&result) {
                    Ok(state) => out.push(reply(v0::register_reply(
                        t,
                        state,
                        result.ok().map(|a| a.ocid),
                    ))),
                    Err(e) => out.push(fail(&e)),
                }
            }
            Request::Login {
                ocid,
                password,
                ext,
            } => {
                c.state_mut().on |= ext;
                let result = match ocid {
                    Some(ocid) => {
                        let credentials = Credentials::Password(LoginKey::Ocid(ocid), password);
                        c.authenticate(credentials).await
                    }
                    None => Err(DomainError::BadCredentials),
                };
                match result {
                    Err(
                        e @ (DomainError::TooManyAttempts { .. }
                        | DomainError::TooManyConnections { .. }),
                    ) => {
                        out.push(fail(&wire_error(&e)));
                    }
                    result => answer_auth(code::LOGIN_REPLY, result, rid, out),
                }
            }
            Request::Resume { token, since } => {
                let credentials = Credentials::Token(token, Since::Chats(since));
                let result = c.authenticate(credentials).await;
                match result {
                    Err(
                        e @ (DomainError::TooManyAttempts { .. }
                        | DomainError::TooManyConnections { .. }),
                    ) => {
                        out.push(fail(&wire_error(&e)));
                    }
                    result => answer_auth(code::RESUME_REPLY, result, rid, out),
                }
            }
            Request::Logout => match c.logout().await {
                Ok(()) => out.push(reply(v0::simple(code::LOGOUT_REPLY, t))),
                Err(e) => out.push(fail(&wire_error(&e))),
            },
            Request::Text {
                to,
                sender_id,
                msg,
                client_id,
            } => {
                if sender_id.is_some_and(|id| id != me) {
                    c.drain_sends(out).await;
                    out.push(fail(&WireError::new(
                        ErrorCode::InvalidField,
                        "field `data.sender_id` must be your own ocid",
                    )));
                    return;
                }
                let to = match to {
                    Target::Chat(chat) => To::Chat(chat),
                    Target::Private(o) => To::Account(o),
                };
                let ack = Ack {
                    code: env.code,
                    request_id: env.request_id.clone(),
                    silent: !c.state().on,
                };
                c.send(to, crate::store::kind::NORMAL, msg, client_id, ack, out)
                    .await;
            }
            Request::History { chat, page, limit } => {
                let found = c
                    .domain()
                    .history(me, To::Chat(chat), range(page), limit)
                    .await;
                match found {
                    Ok((info, messages, more)) => {
                        let strings = match info {
                            Some(info) => messages
                                .iter()
                                .map(|m| {
                                    let text = m.text();
                                    v0::encode_text(&view(m, &info, &text))
                                })
                                .collect(),
                            None => Vec::new(),
                        };
                        out.push(reply(v0::history_reply(t, chat, strings, more)));
                    }
                    Err(e) => out.push(fail(&wire_error(&e))),
                }
            }
        }
    }

    fn refuse(&self, env: &Envelope, why: Refusal) -> Bytes {
        error(Some(env.code), env.request_id.as_ref(), &refusal(why))
    }

    fn refuse_frame(&self, frame: Option<&[u8]>, why: Refusal) -> Bytes {
        let (code, request_id) = super::undecoded_head(frame);
        error(code, request_id.as_ref(), &refusal(why))
    }

    fn message(&self, view: &MessageView<'_>) -> Bytes {
        Bytes::from(v0::encode_text(view))
    }

    fn ack(&self, ack: Ack, result: Result<&Sent, &DomainError>) -> Option<Bytes> {
        let frame = match result {
            Ok(_) if ack.silent => return None,
            Ok(sent) => v0::ack(
                now_s(),
                sent.chat,
                sent.id,
                sent.index,
                sent.client_id.as_deref(),
            ),
            Err(e) => v0::error_reply(now_s(), Some(ack.code), &wire_error(e)),
        };
        Some(bytes(frame, ack.request_id.as_ref()))
    }

    /// v0 has no notices and no presence.
    fn event(&self, _state: &Ext, _me: Ocid, _event: Event<'_>) -> Option<Bytes> {
        None
    }
}

/// Code 8 frames (always at least one), each with up to `UNDELIVERED_BATCH` messages as
/// JSON strings; `more` says whether another follows.
fn push_undelivered(missed: &[Missed], out: &mut Vec<Bytes>) {
    let strings: Vec<String> = missed
        .iter()
        .map(|(m, chat)| {
            let text = m.text();
            v0::encode_text(&view(m, chat, &text))
        })
        .collect();
    let batches = strings.len().div_ceil(UNDELIVERED_BATCH).max(1);
    let mut rest = strings.into_iter();
    for i in 0..batches {
        let batch: Vec<String> = rest.by_ref().take(UNDELIVERED_BATCH).collect();
        let mut frame = v0::undelivered(batch);
        frame["data"]["more"] = Value::Bool(i + 1 < batches);
        out.push(bytes(frame, None));
    }
}

/// Code 7 or 14 with the authentication's state (and token, for a password login), then, on
/// success, what the device missed.
fn answer_auth(
    code: i64,
    result: Result<Authenticated, DomainError>,
    rid: Option<&Value>,
    out: &mut Vec<Bytes>,
) {
    let state = auth_state(&result);
    let (ocid, token) = match &result {
        Ok(a) => (Some(a.ocid), a.token.as_deref()),
        Err(_) => (None, None),
    };
    out.push(bytes(
        v0::login_reply(now_s(), code, state, ocid, token),
        rid,
    ));
    if let Ok(a) = result {
        push_undelivered(&a.missed, out);
    }
}
