//! OurChat, in the two versions of its protocol document that natter serves: the draft "v0"
//! (seed 000, `GET /ws/v0`) and v1 (seed 001, `GET /ws`). What both share lives here: history
//! paging, the positions a resuming client holds, and how a reply is finished.

pub mod v0;
pub mod v1;

use crate::json::fields::{Fields, invalid};
use crate::{ChatId, ErrorCode, Index, WireError};
use serde_json::Value;

/// Most messages one history request may ask for.
pub const MAX_HISTORY: u32 = 500;
/// Most chats a resume may name in `since`.
pub const MAX_SINCE: usize = 10_000;

/// Which side of an index a history request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest messages.
    Latest,
    /// Messages with an index lower than this, newest first.
    Before(Index),
    /// Messages with an index higher than this, oldest first.
    After(Index),
}

/// The history paging fields: `before` or `after` (not both) and `limit` (1..=`max`,
/// default 50).
///
/// # Errors
/// `invalid_field` naming the field.
pub fn page(f: &Fields<'_>, max: u32) -> Result<(Page, u32), WireError> {
    let prefix = f.prefix();
    let page = match (f.opt_id("before")?, f.opt_id("after")?) {
        (None, None) => Page::Latest,
        (Some(b), None) => Page::Before(Index(b)),
        (None, Some(a)) => Page::After(Index(a)),
        (Some(_), Some(_)) => {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                format!("only one of `{prefix}before` or `{prefix}after` may be given"),
            ));
        }
    };
    let limit = f.opt_id("limit")?.unwrap_or(50);
    if limit == 0 || limit > u64::from(max) {
        return Err(WireError::new(
            ErrorCode::InvalidField,
            format!("field `{prefix}limit` must be between 1 and {max}"),
        ));
    }
    Ok((page, limit as u32))
}

/// An optional object of chat id (a string of digits) to index, at most `max` entries: the
/// positions a client already holds.
///
/// # Errors
/// `invalid_field` naming the field.
pub fn opt_cursors(
    f: &Fields<'_>,
    name: &str,
    max: usize,
) -> Result<Vec<(ChatId, Index)>, WireError> {
    let prefix = f.prefix();
    let expected = "an object of chat id to index, e.g. {\"12\": 40}";
    let Some(v) = f.get(name) else {
        return Ok(Vec::new());
    };
    let map = v
        .as_object()
        .ok_or_else(|| invalid(prefix, name, expected))?;
    if map.len() > max {
        return Err(WireError::new(
            ErrorCode::InvalidField,
            format!("field `{prefix}{name}` has more than {max} entries"),
        ));
    }
    map.iter()
        .map(|(chat, index)| {
            let chat = chat.parse::<u64>().ok();
            match (chat, crate::json::fields::value_as_id(index)) {
                (Some(c), Some(i)) => Ok((ChatId(c), Index(i))),
                _ => Err(invalid(prefix, name, expected)),
            }
        })
        .collect()
}

/// Serialize a reply, adding the echoed `request_id` when there is one.
pub fn finish(mut frame: Value, request_id: Option<&Value>) -> String {
    if let (Some(id), Value::Object(map)) = (request_id, &mut frame) {
        map.insert("request_id".into(), id.clone());
    }
    serde_json::to_string(&frame).unwrap_or_default()
}
