//! natter's wire contract: the ids every dialect names, a neutral view of a message, the
//! error-code registry, the JSON tools the decoders and encoders share, and the frames of each
//! dialect.
//!
//! This crate knows nothing of sockets, tasks or storage (no tokio, no sqlx): it turns bytes a
//! client wrote into typed requests, and typed replies into the bytes a client expects.

pub mod error;
pub mod ids;
pub mod json;
pub mod ourchat;
pub mod pipe;
pub mod rest;
pub mod svc;
pub mod tus;
pub mod view;

pub use error::{ErrorCode, WireError};
pub use ids::{ChatId, Index, MessageId, Ocid};
pub use view::MessageView;
