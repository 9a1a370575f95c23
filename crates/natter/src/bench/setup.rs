//! How every workload sets up its connections, over natter-client's v1 client: endpoints (with
//! connections spread over loopback source addresses), the bench's accounts, logged-in and
//! resumed connections, pipelined sends, and the server's `GET /metrics`.
//!
//! Frames are read with [`natter_client::ourchat::v1::Frame`], which borrows from the received
//! text and skips every field the bench does not read, so the bench stays cheap next to the
//! server it measures.

use anyhow::{Context, bail, ensure};
use natter_client::ourchat::v1::{self, Frame};
use natter_client::{Target, http, ws};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::sync::Semaphore;

/// A bench connection: a v1 client.
pub type Conn = v1::Client;

/// The password of every bench account.
const PASSWORD: &str = "bench";
/// WebSocket read and write buffer per connection: small, so that tens of thousands of idle
/// connections fit in the bench process too.
const BUFFER: usize = 4 * 1024;

/// Where the server is, and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The v1 WebSocket URL, e.g. `ws://127.0.0.1:7878/ws`.
    pub url: String,
    ws: ws::Endpoint,
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
        let ws = ws::Endpoint::resolve(url).await?;
        let addr = ws.addr();
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
            ws,
            sources,
        })
    }

    /// Open connection number `n`: TCP (from source address `n` mod the sources) and the
    /// WebSocket upgrade.
    ///
    /// # Errors
    /// The TCP connection or the upgrade failed.
    pub async fn connect(&self, n: usize) -> anyhow::Result<Conn> {
        let options = ws::Options {
            source: (!self.sources.is_empty()).then(|| self.sources[n % self.sources.len()]),
            buffer: Some(BUFFER),
            recv_buffer: None,
        };
        Ok(Conn::connect(&self.ws, &options).await?)
    }

    /// The server's address (for its plain HTTP endpoints, such as `/files/`).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.ws.addr()
    }

    /// The server's `GET /metrics`: resident memory and logged-in connections.
    ///
    /// # Errors
    /// The request failed or the answer lacks the logged-in connections.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let answer = http::get(self.ws.addr(), self.ws.host_port(), "/metrics").await?;
        ensure!(answer.status == 200, "GET /metrics: {}", answer.status_line);
        Metrics::parse(&answer.body)
    }
}

/// What `GET /metrics` reports that the bench reads (two samples of the Prometheus text).
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    /// The server's resident set size (absent where the server cannot read it).
    pub rss_bytes: Option<u64>,
    /// Logged-in connections on that node.
    pub connections: u64,
}

impl Metrics {
    /// `process_resident_memory_bytes` and `natter_logged_in_connections` from the text
    /// exposition format.
    ///
    /// # Errors
    /// No `natter_logged_in_connections` sample.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let sample = |name: &str| {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| match l.split_once(' ') {
                    Some((n, v)) if n == name => v.trim().parse::<f64>().ok(),
                    _ => None,
                })
        };
        let connections = sample("natter_logged_in_connections")
            .context("GET /metrics has no natter_logged_in_connections sample")?;
        Ok(Self {
            rss_bytes: sample("process_resident_memory_bytes").map(|v| v as u64),
            connections: connections as u64,
        })
    }
}

/// A logged-in account: its ocid and the session token of its password login.
#[derive(Debug, Clone)]
pub struct Account {
    pub ocid: u64,
    pub token: String,
}

/// Register the account `name` with the bench password; returns its ocid.
///
/// # Errors
/// The connection failed or the server refused.
pub async fn register(conn: &mut Conn, name: &str) -> anyhow::Result<u64> {
    let email = format!("{name}@bench.natter");
    Ok(conn.register(&email, PASSWORD, name).await?)
}

/// Log in with the bench password and wait for the end of the catch-up; returns the account.
///
/// # Errors
/// The connection failed or the login was refused.
pub async fn login(conn: &mut Conn, ocid: u64) -> anyhow::Result<Account> {
    let login = conn.login(v1::Account::Ocid(ocid), PASSWORD).await?;
    let token = login.token.context("login reply without token")?;
    Ok(Account { ocid, token })
}

/// Send a password login (code 6) without waiting for the reply.
///
/// # Errors
/// The connection failed.
pub async fn send_login(conn: &mut Conn, ocid: u64) -> anyhow::Result<()> {
    Ok(conn.send_login(v1::Account::Ocid(ocid), PASSWORD).await?)
}

/// Wait for the resume reply (code 102) and check it names `ocid`.
///
/// # Errors
/// The connection failed or the resume was refused.
pub async fn resumed(conn: &mut Conn, ocid: u64) -> anyhow::Result<()> {
    let got = conn.resumed().await?;
    ensure!(got == ocid, "resume failed: resumed {got}, not {ocid}");
    Ok(())
}

/// Send `n` messages to `target` with at most `window` awaiting their ack, and wait for every
/// ack.
///
/// # Errors
/// The connection failed or the server refused a message.
pub async fn send_acked(
    conn: &mut Conn,
    target: Target,
    n: usize,
    window: usize,
) -> anyhow::Result<()> {
    let (mut sent, mut acked) = (0, 0);
    while acked < n {
        while sent < n && sent - acked < window.max(1) {
            conn.feed(v1::text(target, &format!("message {sent}")))
                .await?;
            sent += 1;
        }
        conn.flush().await?;
        let text = conn.next_text().await?;
        match Frame::parse(&text)?.code {
            v1::code::ACK => acked += 1,
            v1::code::ERROR => bail!("send failed: {}", text.as_str()),
            _ => {}
        }
    }
    Ok(())
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
            let ocid = register(&mut conn, &name).await?;
            let account = login(&mut conn, ocid).await?;
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
            resumed(&mut conn, account.ocid).await?;
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
