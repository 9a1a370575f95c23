//! Transports: the HTTP router and the WebSocket connection loop.

pub mod http;
pub mod ws;
