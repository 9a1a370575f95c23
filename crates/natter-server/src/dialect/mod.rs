//! One module per seed dialect: decode a frame, call the domain, encode the replies.
//! Dialects never touch the store or sockets; replies are appended to `out`.

pub mod v0;
pub mod v1;

use crate::domain::{LoginKey, To};
use crate::session::{AckFrame, Missed, QueuedSend, Session};
use axum::extract::ws::Utf8Bytes;
use natter_proto::{ChatId, ErrorCode, Index, Ocid, WireError};

/// Unix seconds now, for the `time` of replies.
pub fn now_s() -> i64 {
    crate::domain::now_ms() / 1000
}

/// Handle one text frame in the session's dialect.
pub async fn handle(session: &mut Session, text: &str, out: &mut Vec<Utf8Bytes>) {
    match session.dialect {
        crate::domain::Dialect::V1 => v1::handle(session, text, out).await,
        crate::domain::Dialect::V0 => v0::handle(session, text, out).await,
    }
}

/// A pushed notice or presence change as a frame for this connection, if its dialect has one
/// (v0 has none) and it is logged in.
pub fn push_frame(session: &Session, push: &crate::hub::Push) -> Option<Utf8Bytes> {
    let me = session.me().ok()?;
    match session.dialect {
        crate::domain::Dialect::V1 => v1::push_frame(me, push),
        crate::domain::Dialect::V0 => None,
    }
}

/// The error reply for a failure outside any request (oversize or binary frame).
pub fn frame_error(session: &Session, e: &natter_proto::WireError) -> Utf8Bytes {
    let t = now_s();
    match session.dialect {
        crate::domain::Dialect::V1 => {
            natter_proto::v1::finish(natter_proto::v1::error_reply(t, None, e), None)
        }
        crate::domain::Dialect::V0 => {
            natter_proto::v0::finish(natter_proto::v0::error_reply(t, None, e), None)
        }
    }
    .into()
}

/// When a request needs one, require a login. Returns the logged-in ocid (0 when not logged
/// in and not needed). (The rate limit is applied to every frame by the transport.)
///
/// # Errors
/// `not_logged_in`.
pub fn gate(session: &Session, needs_login: bool) -> Result<Ocid, WireError> {
    match session.me() {
        Ok(me) => Ok(me),
        Err(e) if needs_login => Err(e),
        Err(_) => Ok(0),
    }
}

/// How a connection proves who it is.
pub enum Credentials {
    Password(LoginKey, String),
    /// A session token, and the last index the client holds per chat.
    Token(String, Since),
}

/// What a resuming client says it already holds, per chat.
pub enum Since {
    /// By chat id (v0's `cid`).
    Chats(Vec<(ChatId, Index)>),
    /// By destination (v1's `group_id` / `private_id`).
    Targets(Vec<(To, Index)>),
}

/// The outcome of a login or resume, in the seeds' states: 0 ok, 1 rejected (wrong account,
/// password or token), 2 server failure.
pub struct Auth {
    pub state: u8,
    pub ocid: Option<Ocid>,
    /// The new session token (password logins only).
    pub token: Option<String>,
    pub missed: Vec<Missed>,
}

impl Auth {
    fn failed(state: u8) -> Self {
        Self {
            state,
            ocid: None,
            token: None,
            missed: Vec::new(),
        }
    }

    /// A login that could not name an account at all.
    pub fn rejected() -> Self {
        Self::failed(1)
    }
}

/// Log the connection in (switching account if it was logged in) and collect what it missed.
pub async fn authenticate(session: &mut Session, credentials: Credentials) -> Auth {
    let (result, fresh, since) = match credentials {
        Credentials::Password(key, password) => (
            session.app.domain.login(key, &password).await,
            true,
            Since::Chats(Vec::new()),
        ),
        Credentials::Token(token, since) => (
            session.app.domain.resume(&token).await.map(|a| (a, token)),
            false,
            since,
        ),
    };
    let (account, token) = match result {
        Ok(found) => found,
        Err(e) if matches!(e.code, ErrorCode::BadCredentials | ErrorCode::InvalidToken) => {
            return Auth::failed(1);
        }
        Err(_) => return Auth::failed(2),
    };
    let since = match since {
        Since::Chats(c) => c,
        Since::Targets(t) => session.app.domain.chat_ids(account.ocid, t).await,
    };
    match session.log_in(&account, token.clone(), &since).await {
        Ok(missed) => Auth {
            state: 0,
            ocid: Some(account.ocid),
            token: fresh.then_some(token),
            missed,
        },
        Err(_) => Auth::failed(2),
    }
}

/// Register by email: `Ok((state, ocid))` in the seeds' states (0 ok, 1 server error,
/// 2 email taken).
///
/// # Errors
/// Input the seeds have no state for (`invalid_field`).
pub async fn register(
    session: &Session,
    email: &str,
    password: &str,
    name: Option<&str>,
) -> Result<(u8, Option<Ocid>), WireError> {
    match session
        .app
        .domain
        .register_email(email, password, name)
        .await
    {
        Ok(a) => Ok((0, Some(a.ocid))),
        Err(e) if e.code == ErrorCode::EmailTaken => Ok((2, None)),
        Err(e) if e.code == ErrorCode::Internal => Ok((1, None)),
        Err(e) => Err(e),
    }
}

/// Revoke the connection's session token and log it out.
///
/// # Errors
/// `internal` when the revocation cannot be stored (the connection stays logged in).
pub async fn logout(session: &mut Session) -> Result<(), WireError> {
    if let Some(login) = &session.login {
        session.app.domain.logout(&login.token).await?;
    }
    session.log_out().await;
    Ok(())
}

/// Check and queue a text message from the logged-in account: acked with `ack` once durable (the
/// connection reads on meanwhile), or, when it fails its checks, answered at once with `error`,
/// after the sends before it.
pub async fn send_text(
    s: &mut Session,
    to: To,
    text: String,
    client_id: Option<String>,
    ack: AckFrame,
    error: impl FnOnce(&WireError) -> Utf8Bytes,
    out: &mut Vec<Utf8Bytes>,
) {
    let origin = Some(s.conn.origin());
    let queued = match s.me() {
        Ok(me) => {
            s.app
                .domain
                .queue_text(me, to, text, client_id, origin)
                .await
        }
        Err(e) => Err(e),
    };
    match queued {
        Ok(pending) => s.queue_send(QueuedSend {
            pending,
            reply: ack,
        }),
        Err(e) => {
            s.drain_sends(out).await;
            out.push(error(&e));
        }
    }
}
