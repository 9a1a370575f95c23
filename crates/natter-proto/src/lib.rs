//! natter's wire contract: the frames of every dialect, the error-code registry and the
//! typed field reader the decoders share.
//!
//! This crate knows nothing of sockets, tasks or storage (no tokio, no sqlx): it turns bytes a
//! client wrote into typed requests, and typed replies into the bytes a client expects.

pub mod error;
pub mod fields;
pub mod json;
mod scan;
pub mod v0;
pub mod v1;

pub use error::{ErrorCode, WireError};

/// An account's public number, the "OC number" of the seeds.
pub type Ocid = u64;
/// A chat (private or group); for groups this is the seeds' `group_id`.
pub type ChatId = u64;
/// A server-assigned message id (v1 `cid`, v0 `mid`).
pub type MessageId = u64;
/// A message's position in its chat: 1, 2, 3... with no gaps.
pub type Index = u64;
