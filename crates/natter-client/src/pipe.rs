//! The pipe dialect (seed 004): `|`-separated UTF-8 lines over TCP (or TLS), as
//! `docs/protocol/pipe.md` specifies them.
//!
//! [`line`] writes a request line (escaping `\`, `|`, CR and LF inside fields), [`split`]
//! reads a server line back into fields, [`Conn`] sends and receives lines over any byte
//! stream, and [`Client`] does the common exchanges (register, login, send, read messages).

use crate::{Chat, Error, Message, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest line this client reads (a pushed file message carries the file's bytes, base64).
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// Append `text` to `out` escaped as a field.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A line (without its newline): `command`, then each field escaped, separated by `|`.
pub fn line(command: &str, fields: &[&str]) -> String {
    let mut out = command.to_owned();
    for f in fields {
        out.push('|');
        escape_into(&mut out, f);
    }
    out
}

/// A server line's fields (the first is its name), unescaped; `None` for a bad escape.
pub fn split(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.push(match chars.next()? {
                '\\' => '\\',
                '|' => '|',
                'n' => '\n',
                'r' => '\r',
                _ => return None,
            }),
            '|' => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    Some(fields)
}

/// A file carried in a pushed message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePart {
    /// `image`, `file`, `voice` or `emoji`.
    pub kind: String,
    pub name: String,
    pub size: u64,
    pub mime: String,
    /// The file's id (`GET /files/{id}` over HTTP).
    pub id: String,
    /// The file's bytes, base64 (empty when the server did not carry them).
    pub base64: String,
}

/// A `message|...` line read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The message; a private chat is named by its sender (see [`Pushed::to`]).
    pub message: Message,
    /// The receiver (private) or the group.
    pub to: u64,
    pub file: Option<FilePart>,
}

impl Pushed {
    /// The message as account `me` names its chat: a private chat by the other account.
    pub fn seen_by(&self, me: u64) -> Message {
        let mut m = self.message.clone();
        if matches!(m.chat, Chat::Private(_)) && m.sender == me {
            m.chat = Chat::Private(self.to);
        }
        m
    }
}

/// Read a `message|type|id|time|data|sender|to|message_id|index[|file...]` line.
pub fn message(fields: &[String]) -> Option<Pushed> {
    if fields.first().map(String::as_str) != Some("message") || fields.len() < 9 {
        return None;
    }
    let n = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let chat = match fields[1].as_str() {
        "0" => Chat::Private(n(2)?),
        "1" => Chat::Group(n(2)?),
        _ => return None,
    };
    let message = Message {
        chat,
        index: n(8)?,
        id: n(7)?,
        sender: n(5)?,
        text: fields[4].clone(),
        time: fields[3].parse().ok()?,
    };
    let file = match fields.len() {
        9 => None,
        15 => Some(FilePart {
            kind: fields[9].clone(),
            name: fields[10].clone(),
            size: n(11)?,
            mime: fields[12].clone(),
            id: fields[13].clone(),
            base64: fields[14].clone(),
        }),
        _ => return None,
    };
    Some(Pushed {
        message,
        to: n(6)?,
        file,
    })
}

/// A line connection over any byte stream.
pub struct Conn<S> {
    read: BufReader<tokio::io::ReadHalf<S>>,
    write: tokio::io::WriteHalf<S>,
    buf: Vec<u8>,
}

impl Conn<TcpStream> {
    /// Connect over TCP.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        Ok(Self::new(tcp))
    }
}

impl<S: AsyncRead + AsyncWrite> Conn<S> {
    /// Lines over `stream` (a TLS stream, say).
    pub fn new(stream: S) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self {
            read: BufReader::new(read),
            write,
            buf: Vec::new(),
        }
    }

    /// Write bytes as they are (a test's malformed line, several lines at once).
    ///
    /// # Errors
    /// The connection broke.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.write.write_all(bytes).await?;
        self.write.flush().await?;
        Ok(())
    }

    /// Write one request line.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn send(&mut self, command: &str, fields: &[&str]) -> Result<()> {
        let mut l = line(command, fields);
        l.push('\n');
        self.send_raw(l.as_bytes()).await
    }

    /// The next line (without its newline); `None` when the server closed the connection.
    ///
    /// # Errors
    /// The connection broke, or the line is not UTF-8 or longer than [`MAX_LINE`].
    pub async fn recv_line(&mut self) -> Result<Option<String>> {
        use tokio::io::AsyncReadExt;
        self.buf.clear();
        let mut limited = (&mut self.read).take(MAX_LINE as u64 + 1);
        let n = limited.read_until(b'\n', &mut self.buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            return Err(Error::Unexpected("a line without its end".into()));
        }
        self.buf.pop();
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| Error::Unexpected("a line that is not UTF-8".into()))?;
        Ok(Some(text.to_owned()))
    }

    /// The next line's fields.
    ///
    /// # Errors
    /// As [`Conn::recv_line`]; the connection ended; a bad escape.
    pub async fn recv(&mut self) -> Result<Vec<String>> {
        let line = self
            .recv_line()
            .await?
            .ok_or_else(|| Error::Unexpected("the connection ended".into()))?;
        split(&line).ok_or(Error::Unexpected(line))
    }

    /// Close the connection: stop writing, then read (and drop) what the server still sends
    /// until it closes its side, within `wait`.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn close(mut self, wait: Duration) -> Result<()> {
        self.write.shutdown().await?;
        let drain = async {
            while self.recv_line().await?.is_some() {}
            Ok::<_, Error>(())
        };
        match tokio::time::timeout(wait, drain).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unexpected(
                "the server kept the connection open".into(),
            )),
        }
    }

    /// [`Conn::recv`] within `wait`; `None` when nothing came.
    ///
    /// # Errors
    /// As [`Conn::recv`].
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<Vec<String>>> {
        match tokio::time::timeout(wait, self.recv()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }
}

/// A logged-in pipe account over one connection.
pub struct Client<S> {
    pub conn: Conn<S>,
    pub uid: u64,
    pub token: String,
}

/// Register `username` with `password` (sent as given: a seed client sends its md5).
///
/// # Errors
/// The server refused (the whole line in [`Error::Refused`]), or the connection failed.
pub async fn register<S: AsyncRead + AsyncWrite>(
    conn: &mut Conn<S>,
    username: &str,
    password: &str,
    nickname: &str,
) -> Result<u64> {
    conn.send(
        "register",
        &[username, password, nickname, "1", "", "1", "blue", "0"],
    )
    .await?;
    let reply = conn.recv().await?;
    match reply.first().map(String::as_str) {
        Some("register_succ") => reply
            .get(2)
            .and_then(|u| u.parse().ok())
            .ok_or_else(|| Error::Unexpected(reply.join("|"))),
        _ => Err(Error::Refused {
            what: "register",
            frame: reply.join("|"),
        }),
    }
}

impl<S: AsyncRead + AsyncWrite> Client<S> {
    /// Log in on `conn`; returns the client and the unread count `login_succ` announced.
    ///
    /// # Errors
    /// The server refused, or the connection failed.
    pub async fn login(mut conn: Conn<S>, username: &str, password: &str) -> Result<(Self, u64)> {
        conn.send("login", &[username, password]).await?;
        let reply = conn.recv().await?;
        if reply.first().map(String::as_str) != Some("login_succ") || reply.len() != 5 {
            return Err(Error::Refused {
                what: "login",
                frame: reply.join("|"),
            });
        }
        let uid = reply[2]
            .parse()
            .map_err(|_| Error::Unexpected(reply.join("|")))?;
        let count = reply[4]
            .parse()
            .map_err(|_| Error::Unexpected(reply.join("|")))?;
        let token = reply[3].clone();
        Ok((Self { conn, uid, token }, count))
    }

    /// Send a text to an account (`group` false) or a group; returns the message id and index.
    ///
    /// # Errors
    /// The server refused, or the connection failed.
    pub async fn send_message(&mut self, group: bool, to: u64, text: &str) -> Result<(u64, u64)> {
        let (uid, to) = (self.uid.to_string(), to.to_string());
        let kind = if group { "1" } else { "0" };
        let token = self.token.clone();
        self.conn
            .send("send_message", &[kind, &uid, &to, "0", text, &token])
            .await?;
        let reply = self.conn.recv().await?;
        match reply.first().map(String::as_str) {
            Some("send_message_succ") => {
                let n = |i: usize| reply.get(i).and_then(|v| v.parse().ok());
                n(2).zip(n(3))
                    .ok_or_else(|| Error::Unexpected(reply.join("|")))
            }
            _ => Err(Error::Refused {
                what: "send_message",
                frame: reply.join("|"),
            }),
        }
    }

    /// The next line, which must be a pushed message.
    ///
    /// # Errors
    /// Another line came, or the connection failed.
    pub async fn recv_message(&mut self) -> Result<Pushed> {
        let fields = self.conn.recv().await?;
        message(&fields).ok_or_else(|| Error::Unexpected(fields.join("|")))
    }

    /// `get_unread_message`, reading the `count` lines announced at login.
    ///
    /// # Errors
    /// Another line came, or the connection failed.
    pub async fn unread(&mut self, count: u64) -> Result<Vec<Pushed>> {
        self.conn.send("get_unread_message", &[""]).await?;
        let mut out = Vec::new();
        for _ in 0..count {
            out.push(self.recv_message().await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let l = line("send_message", &["0", "a|b\\c\nd"]);
        assert_eq!(l, "send_message|0|a\\|b\\\\c\\nd");
        assert_eq!(
            split(&l),
            Some(vec!["send_message".into(), "0".into(), "a|b\\c\nd".into()])
        );
        assert_eq!(split("x|\\q"), None);
    }

    #[test]
    fn reads_a_message_line() {
        let f = split("message|1|7|1700000000|hi\\|there|10001|7|42|3").expect("fields");
        let p = message(&f).expect("a message");
        assert_eq!(p.message.chat, Chat::Group(7));
        assert_eq!(
            (p.message.id, p.message.index, p.message.sender),
            (42, 3, 10001)
        );
        assert_eq!(p.message.text, "hi|there");
        assert!(p.file.is_none());
    }
}
