//! The bench's OurChat v1 client, shared by every workload: connect (optionally from a chosen
//! loopback source address), register, log in, resume, create a group, send, and receive frames
//! parsed only as far as the bench needs.
//!
//! Frames are decoded into [`Frame`], which borrows from the received text and skips every field
//! the bench does not read, so the client stays cheap next to the server it measures.

use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// The password of every bench account.
const PASSWORD: &str = "bench";
/// WebSocket read and write buffer per connection: small, so that tens of thousands of idle
/// connections fit in the bench process too.
const BUFFER: usize = 4 * 1024;

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Where the server is, and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The v1 WebSocket URL, e.g. `ws://127.0.0.1:7878/ws`.
    pub url: String,
    /// `host:port` of the URL, for the HTTP requests to `/metrics`.
    host_port: String,
    addr: SocketAddr,
    /// Source addresses to spread connections over (empty: let the kernel choose).
    sources: Vec<IpAddr>,
}

impl Endpoint {
    /// Parse a `ws://host:port/path` URL and resolve its host; with `sources` > 1, outgoing
    /// connections are spread over 127.0.0.1 ..= 127.0.0.`sources` (loopback servers only).
    ///
    /// # Errors
    /// Not a `ws://` URL, an unresolvable host, or `sources` with a non-loopback server.
    pub async fn new(url: &str, sources: u8) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("`{url}`: only ws:// URLs are supported"))?;
        let host_port = rest.split('/').next().unwrap_or_default();
        ensure!(!host_port.is_empty(), "`{url}` names no host");
        let with_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_owned()
        } else {
            format!("{host_port}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("cannot resolve {with_port}"))?
            .next()
            .with_context(|| format!("{with_port} resolves to no address"))?;
        let sources = match sources {
            0 | 1 => Vec::new(),
            n => {
                ensure!(
                    addr.ip().is_loopback() && addr.is_ipv4(),
                    "--sources needs an IPv4 loopback server address, not {addr}"
                );
                (1..=n)
                    .map(|k| IpAddr::V4(Ipv4Addr::new(127, 0, 0, k)))
                    .collect()
            }
        };
        Ok(Self {
            url: url.to_owned(),
            host_port: with_port,
            addr,
            sources,
        })
    }

    /// Open connection number `n`: TCP (from source address `n` mod the sources) and the
    /// WebSocket upgrade.
    ///
    /// # Errors
    /// The TCP connection or the upgrade failed.
    pub async fn connect(&self, n: usize) -> anyhow::Result<Conn> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        if !self.sources.is_empty() {
            let source = self.sources[n % self.sources.len()];
            socket
                .bind(SocketAddr::new(source, 0))
                .with_context(|| format!("cannot bind to {source}"))?;
        }
        let stream = socket
            .connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(BUFFER)
            .write_buffer_size(BUFFER);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(self.url.as_str(), stream, Some(config))
                .await
                .with_context(|| format!("WebSocket upgrade at {} failed", self.url))?;
        Ok(Conn { ws })
    }

    /// The server's `GET /metrics`: resident memory and logged-in connections.
    ///
    /// # Errors
    /// The request failed or the answer is not the expected JSON.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = TcpStream::connect(self.addr).await?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host_port
        );
        s.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).await?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .context("malformed HTTP answer from /metrics")?;
        ensure!(
            head.starts_with("HTTP/1.1 200"),
            "GET /metrics: {}",
            head.lines().next().unwrap_or_default()
        );
        serde_json::from_str(body).context("GET /metrics did not return the expected JSON")
    }
}

/// What `GET /metrics` reports.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Metrics {
    /// The server's resident set size (absent where the server cannot read it).
    pub rss_bytes: Option<u64>,
    /// Logged-in connections on that node.
    pub connections: u64,
}

/// The fields of a server frame that the bench reads; everything else is skipped unparsed.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    pub code: i64,
    pub index: Option<u64>,
    pub state: Option<i64>,
    pub ocid: Option<u64>,
    pub count: Option<u64>,
    pub success: Option<bool>,
    pub group_id: Option<u64>,
    pub private_id: Option<u64>,
    #[serde(borrow)]
    pub msg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub token: Option<Cow<'a, str>>,
    pub sender: Option<Sender>,
}

/// `sender` of a delivered message.
#[derive(Debug, Deserialize)]
pub struct Sender {
    pub ocid: Option<u64>,
    pub group_id: Option<u64>,
    pub private_id: Option<u64>,
}

impl<'a> Frame<'a> {
    /// Decode a text frame.
    ///
    /// # Errors
    /// Not a JSON object with an integer `code`.
    pub fn parse(text: &'a str) -> anyhow::Result<Self> {
        serde_json::from_str(text).with_context(|| format!("unexpected frame from server: {text}"))
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Private(u64),
    Group(u64),
}

/// A logged-in account: its ocid and the session token of its password login.
#[derive(Debug, Clone)]
pub struct Account {
    pub ocid: u64,
    pub token: String,
}

/// One WebSocket connection to the server.
pub struct Conn {
    ws: Ws,
}

impl Conn {
    /// The next text frame (pings are answered by tungstenite; other frames are skipped).
    ///
    /// # Errors
    /// The connection failed or was closed.
    pub async fn next_text(&mut self) -> anyhow::Result<Utf8Bytes> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t),
                Some(Ok(Message::Close(frame))) => {
                    bail!("the server closed the connection: {frame:?}")
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("connection failed"),
                None => bail!("the server closed the connection"),
            }
        }
    }

    /// Send one frame now.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send(&mut self, text: String) -> anyhow::Result<()> {
        self.ws
            .send(Message::text(text))
            .await
            .context("send failed")
    }

    /// Queue one frame without flushing; see [`Conn::flush`].
    ///
    /// # Errors
    /// The connection failed.
    pub async fn feed(&mut self, text: String) -> anyhow::Result<()> {
        self.ws
            .feed(Message::text(text))
            .await
            .context("send failed")
    }

    /// Write out every queued frame.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.ws.flush().await.context("send failed")
    }

    /// Close the connection politely (a WebSocket close, then wait for the server's).
    pub async fn close(mut self) {
        if self.ws.close(None).await.is_ok() {
            let wait = async { while let Some(Ok(_)) = self.ws.next().await {} };
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
    }

    /// Wait for the reply with code `reply`, skipping other frames; an error frame (12) fails.
    async fn reply(&mut self, reply: i64) -> anyhow::Result<Utf8Bytes> {
        loop {
            let text = self.next_text().await?;
            let code = Frame::parse(&text)?.code;
            if code == reply {
                return Ok(text);
            }
            if code == 12 {
                bail!("server error: {}", text.as_str());
            }
        }
    }

    /// Register an account with the bench password; returns its ocid.
    ///
    /// # Errors
    /// The connection failed or the server refused.
    pub async fn register(&mut self, name: &str) -> anyhow::Result<u64> {
        let email = format!("{name}@bench.natter");
        let frame = json!({"code": 4, "email": email, "password": PASSWORD, "name": name});
        self.send(frame.to_string()).await?;
        let text = self.reply(5).await?;
        let r = Frame::parse(&text)?;
        ensure!(r.state == Some(0), "register failed: {}", text.as_str());
        r.ocid.context("register reply without ocid")
    }

    /// Log in with the password and wait for the end of the catch-up; returns the account.
    ///
    /// # Errors
    /// The connection failed or the login was refused.
    pub async fn login(&mut self, ocid: u64) -> anyhow::Result<Account> {
        self.send_login(ocid).await?;
        let text = self.reply(7).await?;
        let r = Frame::parse(&text)?;
        ensure!(r.state == Some(0), "login failed: {}", text.as_str());
        let token = r.token.context("login reply without token")?.into_owned();
        self.sync_done().await?;
        Ok(Account { ocid, token })
    }

    /// Send a password login (code 6) without waiting for the reply.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_login(&mut self, ocid: u64) -> anyhow::Result<()> {
        let frame =
            json!({"code": 6, "login_type": 1, "account": ocid.to_string(), "password": PASSWORD});
        self.send(frame.to_string()).await
    }

    /// Send a resume (code 13) without waiting for the reply.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn send_resume(&mut self, token: &str) -> anyhow::Result<()> {
        self.send(json!({"code": 13, "token": token}).to_string())
            .await
    }

    /// Wait for the resume reply (code 14) and check it names `ocid`.
    ///
    /// # Errors
    /// The connection failed or the resume was refused.
    pub async fn resumed(&mut self, ocid: u64) -> anyhow::Result<()> {
        let text = self.reply(14).await?;
        let r = Frame::parse(&text)?;
        ensure!(
            r.state == Some(0) && r.ocid == Some(ocid),
            "resume failed: {}",
            text.as_str()
        );
        Ok(())
    }

    /// Skip frames up to the sync-done frame (18); returns its count.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn sync_done(&mut self) -> anyhow::Result<u64> {
        let text = self.reply(18).await?;
        Ok(Frame::parse(&text)?.count.unwrap_or(0))
    }

    /// Send `n` messages to `target` with at most `window` awaiting their ack, and wait for
    /// every ack.
    ///
    /// # Errors
    /// The connection failed or the server refused a message.
    pub async fn send_acked(
        &mut self,
        target: Target,
        n: usize,
        window: usize,
    ) -> anyhow::Result<()> {
        let (mut sent, mut acked) = (0, 0);
        while acked < n {
            while sent < n && sent - acked < window.max(1) {
                self.feed(message(target, &format!("message {sent}")))
                    .await?;
                sent += 1;
            }
            self.flush().await?;
            let text = self.next_text().await?;
            match Frame::parse(&text)?.code {
                15 => acked += 1,
                12 => bail!("send failed: {}", text.as_str()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Create a group with these members (the caller is added as owner); returns its id.
    ///
    /// # Errors
    /// The connection failed or the server refused.
    pub async fn create_group(&mut self, members: &[u64]) -> anyhow::Result<u64> {
        self.send(json!({"code": 8, "members": members, "name": "bench"}).to_string())
            .await?;
        let text = self.reply(9).await?;
        let r = Frame::parse(&text)?;
        ensure!(
            r.success == Some(true),
            "group creation failed: {}",
            text.as_str()
        );
        r.group_id.context("group reply without group_id")
    }
}

/// The text frame of a message to `target`.
pub fn message(target: Target, msg: &str) -> String {
    let sender = match target {
        Target::Private(ocid) => json!({"private_id": ocid}),
        Target::Group(id) => json!({"group_id": id}),
    };
    json!({"code": 0, "sender": sender, "msg": msg}).to_string()
}

/// Register `n` fresh accounts named `{tag}{i}` and log each in once with its password, at
/// most `concurrency` at a time, account `i` at the endpoint `at(i)`; returns each account
/// with its logged-in connection (to that endpoint), in order.
///
/// Password hashing (Argon2id) makes this the slow part of a run's set-up.
///
/// # Errors
/// Any registration or login failed.
pub async fn accounts<'a>(
    at: impl Fn(usize) -> &'a Endpoint,
    tag: &str,
    n: usize,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<(Account, Conn)>> {
    let limit = std::sync::Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (endpoint, limit, progress) = (at(i).clone(), limit.clone(), progress.clone());
        let name = format!("{tag}{i}");
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let mut conn = endpoint.connect(i).await?;
            let ocid = conn.register(&name).await?;
            let account = conn.login(ocid).await?;
            progress.inc(1);
            anyhow::Ok((i, account, conn))
        });
    }
    let mut out: Vec<Option<(Account, Conn)>> = (0..n).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, account, conn) = done??;
        out[i] = Some((account, conn));
    }
    out.into_iter()
        .map(|a| a.context("an account set-up task vanished"))
        .collect()
}

/// A tag that makes this run's account names unique on the server.
pub fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("b{:x}{:x}-", nanos, std::process::id())
}

/// A connection opened by [`open_resumed`].
pub struct Opened {
    /// The connection's number `i` (see [`open_resumed`]).
    pub number: usize,
    pub conn: Conn,
    /// From the start of the TCP connect to the resume reply.
    pub took: Duration,
    /// Messages pushed by the catch-up after the resume (the sync-done count).
    pub synced: u64,
}

/// Open `n` connections, number `i` to the endpoint `at(i)` resuming
/// `accounts[i % accounts.len()]`, with at most `concurrency` being opened at once; a result
/// per connection, in no particular order.
pub async fn open_resumed<'a>(
    at: impl Fn(usize) -> &'a Endpoint,
    accounts: &[Account],
    n: usize,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> Vec<anyhow::Result<Opened>> {
    if accounts.is_empty() {
        return vec![Err(anyhow::anyhow!("no accounts to resume"))];
    }
    let limit = std::sync::Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (endpoint, limit, progress) = (at(i).clone(), limit.clone(), progress.clone());
        let account = accounts[i % accounts.len()].clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let start = std::time::Instant::now();
            let mut conn = endpoint.connect(i).await?;
            conn.send_resume(&account.token).await?;
            conn.resumed(account.ocid).await?;
            let took = start.elapsed();
            let synced = conn.sync_done().await?;
            progress.inc(1);
            anyhow::Ok(Opened {
                number: i,
                conn,
                took,
                synced,
            })
        });
    }
    let mut out = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        out.push(done.context("a connection task failed").and_then(|r| r));
    }
    out
}
