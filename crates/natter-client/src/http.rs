//! The server's plain HTTP endpoints (`GET /healthz`, `GET /metrics`): one HTTP/1.1 GET on a
//! fresh TCP connection, read to its end. Enough for operational endpoints on a trusted
//! network; no TLS, no chunked encoding, no keep-alive.

use crate::{Error, Result};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// The status code.
    pub status: u16,
    /// Everything after the header.
    pub body: String,
}

/// The whole answer to `GET path` from the server at `addr`, with `host` as the `Host` header.
///
/// # Errors
/// The connection failed or the answer is not HTTP.
pub async fn get_raw(addr: SocketAddr, host: &str, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Connect { addr, source })?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// `GET path` from the server at `addr`, with `host` as the `Host` header.
///
/// # Errors
/// The connection failed or the answer is not HTTP.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<Response> {
    let answer = get_raw(addr, host, path).await?;
    let malformed = || Error::Unexpected(format!("a malformed HTTP answer to GET {path}"));
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(malformed)?;
    let status_line = head.lines().next().unwrap_or_default().to_owned();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(malformed)?;
    Ok(Response {
        status_line,
        status,
        body: body.to_owned(),
    })
}
