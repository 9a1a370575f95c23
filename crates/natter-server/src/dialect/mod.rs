//! One module per seed dialect: decode a frame, call the domain, encode the replies.
//! Dialects never touch the store or sockets; replies are appended to `out`.

pub mod v0;
pub mod v1;

use crate::session::Session;
use axum::extract::ws::Utf8Bytes;

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
