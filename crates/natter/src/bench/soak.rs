//! The `soak` workload: a long run of churning connections that checks the server's memory
//! stays flat and nothing is lost.
//!
//! P pairs of accounts; in each pair one account writes to the other over and over, and the
//! two accounts speak different dialects: pair p's writer speaks the p-th of OurChat, pipe,
//! REST and service codes (in turn), its reader the next one (OurChat -> pipe -> REST ->
//! service codes -> OurChat). Each account is registered in its own dialect. A writer opens a
//! connection (OurChat: v1 and draft v0 in turn, resuming with its token; pipe and REST: a
//! password login, REST with its push channel; service codes: one request per message), sends
//! M messages awaiting each one's confirmation, and closes; every few v1 connections it also
//! uploads a small picture by tus, reads it back, and sends it as an image message. Meanwhile
//! the server's resident memory is sampled from `GET /metrics` once a second. At the end each
//! reader reads its chat whole in its own dialect (v1 history, pipe unread messages after a
//! login, REST `GET /api/message`, service code 9): every confirmed message must be there once,
//! at the index its confirmation named, with the indexes running 1, 2, 3, ... without a gap;
//! and the memory after the warm-up (the first quarter of the run) must not grow by more than
//! the allowed amount.

use super::Common;
use super::dialect;
use super::report::{self, Report};
use super::setup::{self, Account, Endpoint};
use anyhow::{Context, bail, ensure};
use natter_client::ourchat::{v0, v1};
use natter_client::{Target, ws};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the workload is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Soak {
    pub duration: Duration,
    pub pairs: usize,
    /// Messages sent on each connection before it is closed.
    pub per_connection: usize,
    /// Every this many connections of a writer, a picture too (0: none).
    pub file_every: usize,
    /// The most the server's memory may grow after the warm-up, in MiB.
    pub max_growth_mib: f64,
    /// The pipe dialect's TCP address.
    pub pipe: SocketAddr,
}

/// The dialects accounts speak, in the order pairs take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OurChat,
    Pipe,
    Rest,
    Svc,
}

const KINDS: [Kind; 4] = [Kind::OurChat, Kind::Pipe, Kind::Rest, Kind::Svc];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::OurChat => "ourchat",
            Self::Pipe => "pipe",
            Self::Rest => "rest",
            Self::Svc => "svc",
        }
    }
}

/// A soak account: its dialect, ocid and how it logs in there.
#[derive(Debug, Clone)]
struct Party {
    kind: Kind,
    ocid: u64,
    /// OurChat: its login (token). Others: unused.
    oc: Option<Account>,
    /// Pipe username, REST phone, or service-code token.
    login: String,
    /// Service codes: the chat with the reader (a writer's).
    chat: u64,
}

/// One writer's record.
#[derive(Debug, Default)]
struct Writer {
    /// Client id -> the index its ack named.
    acked: HashMap<String, u64>,
    connections: u64,
    files: u64,
    /// Acked per way of sending: v1, v0, pipe, rest, svc.
    by: [u64; 5],
}

/// The ways of sending, in [`Writer::by`]'s order.
const WAYS: [&str; 5] = ["v1", "v0", "pipe", "rest", "svc"];

/// A small PNG (a header IHDR with the given size, then filler), distinct per `n`.
fn picture(n: u64) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(&4u32.to_be_bytes());
    b.extend_from_slice(&3u32.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0]);
    b.extend_from_slice(&n.to_be_bytes());
    b.extend((0..2048u32).map(|i| (i % 251) as u8));
    b
}

/// One HTTP/1.1 request on a fresh connection; the status, headers (lower-case names) and body.
async fn http(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<(String, String)>, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer without a head")?;
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("an HTTP answer without a status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers, raw[end + 4..].to_vec()))
}

/// Upload `bytes` as a picture (tus creation with upload), read it back whole; its file id.
async fn upload(addr: SocketAddr, token: &str, bytes: &[u8]) -> anyhow::Result<String> {
    let head = format!(
        "POST /files/ HTTP/1.1\r\nHost: natter\r\nConnection: close\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nAuthorization: Bearer {token}\r\n\
         Upload-Length: {len}\r\nUpload-Metadata: filename c29hay5wbmc=,filetype aW1hZ2UvcG5n\r\n\
         Content-Length: {len}\r\n\r\n",
        len = bytes.len()
    );
    let (status, headers, _) = http(addr, &head, bytes).await?;
    ensure!(status == 201, "upload answered {status}");
    let id = headers
        .iter()
        .find(|(n, _)| n == "location")
        .and_then(|(_, v)| v.strip_prefix("/files/"))
        .context("an upload without a Location")?
        .to_owned();
    let head = format!(
        "GET /files/{id} HTTP/1.1\r\nHost: natter\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    let (status, _, body) = http(addr, &head, b"").await?;
    ensure!(
        status == 200 && body == bytes,
        "the picture read back differs ({status}, {} bytes)",
        body.len()
    );
    Ok(id)
}

/// Wait for the ack of `client_id` on a v1 or v0 connection; its index.
async fn ack_of(conn: &mut ws::Conn, client_id: &str) -> anyhow::Result<u64> {
    loop {
        let text = conn.next_text().await?;
        let f: Value = serde_json::from_str(&text)?;
        // v0 puts an ack's fields in `data`.
        let d = if f["data"].is_object() {
            &f["data"]
        } else {
            &f
        };
        match f["code"].as_i64() {
            Some(103) if d["client_id"].as_str() == Some(client_id) => {
                return d["index"].as_u64().context("an ack without an index");
            }
            Some(100) => bail!("a send was refused: {text}"),
            _ => {}
        }
    }
}

/// One writer of another dialect than OurChat: a connection (or, for service codes, a batch
/// of requests) of `per_connection` messages at a time until `until`.
async fn write_other(
    addr: SocketAddr,
    me: Party,
    to: u64,
    soak: Soak,
    until: Instant,
    acks: Arc<AtomicU64>,
) -> anyhow::Result<Writer> {
    let mut w = Writer::default();
    while Instant::now() < until {
        let n = w.connections;
        w.connections += 1;
        let texts: Vec<String> = (0..soak.per_connection)
            .map(|k| format!("soak-{}-{n}-{k}", me.ocid))
            .collect();
        let with_file = soak.file_every > 0 && n % soak.file_every as u64 == 0;
        let bytes = picture(n);
        let caption = format!("soak-{}-{n}-file", me.ocid);
        let mut texts = texts;
        let (way, indexes) = match me.kind {
            Kind::Pipe => {
                let file = with_file.then_some(bytes.as_slice());
                let (indexes, sent) =
                    dialect::pipe_send(soak.pipe, &me.login, to, &texts, file).await?;
                if let Some((key, index)) = sent {
                    w.acked.insert(key, index);
                    w.by[2] += 1;
                    w.files += 1;
                }
                (2, indexes)
            }
            Kind::Rest => {
                let file = with_file.then_some((bytes.as_slice(), caption.as_str()));
                let indexes = dialect::rest_send(addr, &me.login, to, &texts, file).await?;
                if with_file {
                    texts.push(caption);
                    w.files += 1;
                }
                (3, indexes)
            }
            Kind::Svc => (
                4,
                dialect::svc_send(addr, &me.login, me.chat, &texts).await?,
            ),
            Kind::OurChat => bail!("an OurChat writer is written by `write`"),
        };
        ensure!(indexes.len() == texts.len(), "a confirmation short");
        for (t, index) in texts.into_iter().zip(indexes) {
            w.acked.insert(t, index);
            w.by[way] += 1;
            acks.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(w)
}

/// One OurChat writer: connections in turn over v1 and v0 until `until`.
#[allow(clippy::too_many_arguments)]
async fn write(
    endpoint: Endpoint,
    v0_endpoint: ws::Endpoint,
    me: Account,
    to: u64,
    soak: Soak,
    until: Instant,
    acks: Arc<AtomicU64>,
    pair: usize,
) -> anyhow::Result<Writer> {
    let mut w = Writer::default();
    let options = ws::Options::default();
    while Instant::now() < until {
        let n = w.connections;
        w.connections += 1;
        let over_v0 = n % 2 == 1;
        let mut client = if over_v0 {
            let mut c = v0::Client::connect(&v0_endpoint, &options).await?;
            c.resume(&me.token).await?;
            Either::V0(c)
        } else {
            let mut c = endpoint.connect(pair).await?;
            resume_v1(&mut c, &me).await?;
            Either::V1(c)
        };
        let conn = client.conn();
        for k in 0..soak.per_connection {
            let cid = format!("soak-{}-{n}-{k}", me.ocid);
            let frame = if over_v0 {
                v0::text_with_id(v0::Target::To(to), &cid, Some(&cid))
            } else {
                v1::text_with_id(Target::Private(to), &cid, Some(&cid))
            };
            conn.send_text(frame).await?;
            let index = ack_of(conn, &cid).await?;
            w.acked.insert(cid, index);
            w.by[usize::from(over_v0)] += 1;
            acks.fetch_add(1, Ordering::Relaxed);
        }
        if !over_v0 && soak.file_every > 0 && (n / 2) % soak.file_every as u64 == 0 {
            let id = upload(endpoint.addr(), &me.token, &picture(n)).await?;
            let cid = format!("soak-{}-{n}-file", me.ocid);
            let frame = serde_json::json!({
                "code": 2,
                "sender": {"private_id": to},
                "file": {"id": id},
                "msg": cid,
                "client_id": cid,
            });
            conn.send_text(frame.to_string()).await?;
            let index = ack_of(conn, &cid).await?;
            w.acked.insert(cid, index);
            w.by[0] += 1;
            w.files += 1;
        }
        client.close().await;
    }
    Ok(w)
}

/// Resume over v1 and pass over what is pushed up to sync-done (pictures included).
async fn resume_v1(c: &mut setup::Conn, me: &Account) -> anyhow::Result<()> {
    c.send_resume(&me.token).await?;
    setup::resumed(c, me.ocid).await?;
    c.sync_done().await?;
    Ok(())
}

/// A writer's connection of the moment.
enum Either {
    V0(v0::Client),
    V1(v1::Client),
}

impl Either {
    fn conn(&mut self) -> &mut ws::Conn {
        match self {
            Self::V0(c) => c.conn(),
            Self::V1(c) => c.conn(),
        }
    }

    async fn close(self) {
        match self {
            Self::V0(c) => c.close().await,
            Self::V1(c) => c.close().await,
        }
    }
}

/// The whole private chat with `peer` as `conn`'s account reads it: (index, text) oldest first.
async fn history(conn: &mut setup::Conn, peer: u64) -> anyhow::Result<Vec<(u64, String)>> {
    let mut out: Vec<(u64, String)> = Vec::new();
    loop {
        let after = out.last().map_or(0, |(i, _)| *i);
        let page = natter_client::Page {
            before: None,
            after: Some(after),
            limit: Some(100),
        };
        conn.send(v1::history(Target::Private(peer), page)).await?;
        let text = conn.reply(v1::code::HISTORY_REPLY).await?;
        let v: Value = serde_json::from_str(&text)?;
        let list = v["messages"]
            .as_array()
            .context("a history without messages")?;
        for m in list {
            let index = m["index"].as_u64().context("a message without an index")?;
            let text = m["msg"].as_str().unwrap_or_default().to_owned();
            out.push((index, text));
        }
        if list.is_empty() || v["more"] != Value::Bool(true) {
            return Ok(out);
        }
    }
}

/// Run the workload.
///
/// # Errors
/// Set-up failures, or a connection that failed during the run.
pub async fn soak(common: &Common, soak: Soak) -> anyhow::Result<Report> {
    let mut report = Report::new("soak", &common.url());
    report.param("seconds", soak.duration.as_secs_f64());
    report.param("pairs", soak.pairs);
    report.param("per_connection", soak.per_connection);
    report.param("file_every", soak.file_every);
    report.param("max_growth_mib", soak.max_growth_mib);

    let setup_start = Instant::now();
    let kind_of = |i: usize| {
        let p = i / 2;
        KINDS[(p + i % 2) % KINDS.len()]
    };
    let oc_roles: Vec<usize> = (0..soak.pairs * 2)
        .filter(|&i| kind_of(i) == Kind::OurChat)
        .collect();
    let bar = report::progress((soak.pairs * 2) as u64, "set-up: accounts");
    let tag = format!("{}s", common.tag);
    let run = dialect::run_number(&tag);
    let at = |k: usize| common.endpoint(oc_roles[k] / 2);
    let mut oc_accounts =
        setup::accounts(at, &tag, oc_roles.len(), common.setup_concurrency, &bar).await?;
    let addr = common.endpoint(0).addr();
    // Every account, in role order (2p: pair p's writer, 2p + 1: its reader).
    let mut parties: Vec<Party> = Vec::with_capacity(soak.pairs * 2);
    let mut uuid_asker = None;
    let mut oc = oc_accounts.drain(..);
    for i in 0..soak.pairs * 2 {
        let kind = kind_of(i);
        let mut party = Party {
            kind,
            ocid: 0,
            oc: None,
            login: String::new(),
            chat: 0,
        };
        match kind {
            Kind::OurChat => {
                let (account, conn) = oc.next().context("an OurChat account short")?;
                party.ocid = account.ocid;
                party.oc = Some(account);
                match uuid_asker {
                    None => uuid_asker = Some(conn),
                    Some(_) => conn.close().await,
                }
            }
            Kind::Pipe => {
                party.login = dialect::pipe_username(run, i);
                party.ocid = dialect::pipe_register(soak.pipe, &party.login).await?;
            }
            Kind::Rest => {
                party.login = dialect::rest_phone(run, i);
                party.ocid = dialect::rest_register(addr, &party.login).await?;
            }
            Kind::Svc => {
                let (uuid, token) = dialect::svc_identity(run, i);
                party.ocid = dialect::svc_register(addr, &uuid, &token).await?;
                party.login = token;
            }
        }
        bar.inc(u64::from(kind != Kind::OurChat));
        parties.push(party);
    }
    drop(oc);
    // A service-code writer opens its private chat by the reader's UUID (OurChat code 10).
    let mut asker = uuid_asker.context("no OurChat account")?;
    for p in 0..soak.pairs {
        if parties[2 * p].kind != Kind::Svc {
            continue;
        }
        let reader = parties[2 * p + 1].ocid;
        asker.send(v1::account_info(reader, &["uuid"])).await?;
        let text = asker.reply(v1::code::ACCOUNT_INFO_REPLY).await?;
        let v: Value = serde_json::from_str(&text)?;
        let uuid = v["data"]["uuid"].as_str().context("no UUID in code 11")?;
        parties[2 * p].chat = dialect::svc_chat(addr, &parties[2 * p].login, uuid).await?;
    }
    asker.close().await;
    bar.finish_and_clear();
    report.setup = format!(
        "registered {} accounts in {} pairs, each in its own dialect (pair p's writer the p-th of \
         OurChat, pipe, REST and service codes in turn, its reader the next), and logged the \
         OurChat ones in once with their password (then closed; the readers stay offline until \
         they read their chat at the end){}",
        soak.pairs * 2,
        soak.pairs,
        common.spread("pair p on node p mod n")
    );
    report.setup_secs = setup_start.elapsed().as_secs_f64();
    report.measured = format!(
        "for {:.0} s each writer opens connections (OurChat: v1 and v0 in turn, resumed; pipe: \
         password login; REST: password login and push channel; service codes: a request per \
         message), sends {} messages (each awaiting its confirmation) and closes; every {} \
         connections also a picture (v1: tus upload, read back, sent; pipe: send_file; REST: \
         POST /api/file, sent); server memory sampled every second",
        soak.duration.as_secs_f64(),
        soak.per_connection,
        soak.file_every
    );

    let metrics_at = common.endpoint(0).clone();
    let first = metrics_at.metrics().await?;
    let acks = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + soak.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..soak.pairs {
        let endpoint = common.endpoint(p).clone();
        let me = parties[2 * p].clone();
        let to = parties[2 * p + 1].ocid;
        let acks = acks.clone();
        if let Some(account) = me.oc.clone() {
            let v0_url = endpoint
                .url
                .strip_suffix(v1::PATH)
                .map(|base| format!("{base}{}", v0::PATH))
                .context("the --url must end in /ws to reach v0 beside it")?;
            let v0_endpoint = ws::Endpoint::resolve(&v0_url).await?;
            tasks.spawn(async move {
                let w = write(endpoint, v0_endpoint, account, to, soak, until, acks, p).await;
                (p, w)
            });
        } else {
            let addr = endpoint.addr();
            tasks.spawn(async move {
                let w = write_other(addr, me, to, soak, until, acks).await;
                (p, w)
            });
        }
    }
    report::note(&format!(
        "measuring: {} writers churning for {:.0} s",
        soak.pairs,
        soak.duration.as_secs_f64()
    ));
    // Memory once a second while the writers run.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let bar = report::progress(soak.duration.as_secs(), "seconds");
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(rss) = metrics_at.metrics().await?.rss_bytes {
            samples.push((start.elapsed().as_secs_f64(), rss));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut written: Vec<Option<Writer>> = (0..soak.pairs).map(|_| None).collect();
    let mut errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (p, w) = done?;
        match w {
            Ok(w) => written[p] = Some(w),
            Err(e) => errors.push(format!("writer {p}: {e:#}")),
        }
    }
    let busy = start.elapsed();

    // Nothing lost, nothing twice, every index in place.
    let (mut acked, mut stored, mut connections, mut files) = (0, 0, 0, 0);
    let mut by = [0u64; 5];
    let mut read_by = [0u64; 4];
    for (p, w) in written.iter().enumerate() {
        let Some(w) = w else { continue };
        let reader = &parties[2 * p + 1];
        let writer = parties[2 * p].ocid;
        let list = match reader.kind {
            Kind::OurChat => {
                let account = reader
                    .oc
                    .as_ref()
                    .context("an OurChat reader without login")?;
                let mut conn = common.endpoint(p).connect(p).await?;
                resume_v1(&mut conn, account).await?;
                let list = history(&mut conn, writer).await?;
                conn.close().await;
                list
            }
            Kind::Pipe => dialect::pipe_read(soak.pipe, &reader.login).await?,
            Kind::Rest => {
                dialect::rest_read(common.endpoint(p).addr(), &reader.login, writer).await?
            }
            Kind::Svc => dialect::svc_read(common.endpoint(p).addr(), &reader.login).await?,
        };
        let k = KINDS.iter().position(|k| *k == reader.kind).unwrap_or(0);
        read_by[k] += list.len() as u64;
        for (b, n) in by.iter_mut().zip(w.by) {
            *b += n;
        }
        acked += w.acked.len();
        stored += list.len();
        connections += w.connections;
        files += w.files;
        let indexes_ok = list
            .iter()
            .enumerate()
            .all(|(i, (index, _))| *index == i as u64 + 1);
        if !indexes_ok {
            report
                .failures
                .push(format!("pair {p}: the chat's indexes have gaps or repeats"));
        }
        let at: HashMap<&str, u64> = list.iter().map(|(i, t)| (t.as_str(), *i)).collect();
        if at.len() != list.len() {
            report
                .failures
                .push(format!("pair {p}: a message is stored twice"));
        }
        let lost: Vec<(&String, &u64)> = w
            .acked
            .iter()
            .filter(|(cid, index)| at.get(cid.as_str()) != Some(index))
            .collect();
        if let Some((cid, index)) = lost.iter().min_by_key(|(_, i)| **i) {
            let there = list.iter().find(|(i, _)| i == *index).map(|(_, t)| t);
            report.failures.push(format!(
                "pair {p} ({} to {}): {} acked messages are missing or at another index; the \
                 first, {cid:?} acked at {index}, where the reader finds {there:?}",
                parties[2 * p].kind.name(),
                reader.kind.name(),
                lost.len()
            ));
        }
    }
    if let Some(e) = errors.first() {
        report
            .failures
            .push(format!("{} writers failed; first: {e}", errors.len()));
    }

    // Memory: after the warm-up (the first quarter), it may not grow by more than allowed.
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let warm = soak.duration.as_secs_f64() / 4.0;
    let after_warmup: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|(_, r)| *r)
        .collect();
    let median_of = |xs: &[u64]| {
        let mut v = xs.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    };
    let head = median_of(&after_warmup[..after_warmup.len().min(3)]);
    let tail = median_of(&after_warmup[after_warmup.len().saturating_sub(3)..]);
    report.figure("seconds", busy.as_secs_f64(), "s");
    report.figure(
        "messages_per_sec",
        acked as f64 / busy.as_secs_f64().max(1e-9),
        "msg/s",
    );
    report.count("acked", acked as u64);
    report.count("stored", stored as u64);
    report.count("connections", connections);
    report.count("pictures", files);
    for (way, n) in WAYS.iter().zip(by) {
        report.count(format!("acked_{way}"), n);
    }
    for (kind, n) in KINDS.iter().zip(read_by) {
        report.count(format!("read_{}", kind.name()), n);
    }
    if let Some(rss) = first.rss_bytes {
        report.figure("rss_before_mib", mib(rss), "MiB");
    }
    let peak = samples.iter().map(|(_, r)| *r).max();
    if let Some(peak) = peak {
        report.figure("rss_peak_mib", mib(peak), "MiB");
    }
    report.check = format!(
        "every acked message stored once at its index, indexes gapless, and server memory after \
         the warm-up growing by at most {} MiB",
        soak.max_growth_mib
    );
    match (head, tail) {
        (Some(head), Some(tail)) => {
            let growth = mib(tail) - mib(head);
            report.figure("rss_after_warmup_mib", mib(head), "MiB");
            report.figure("rss_end_mib", mib(tail), "MiB");
            report.figure("rss_growth_mib", growth, "MiB");
            if growth > soak.max_growth_mib {
                report.failures.push(format!(
                    "server memory grew by {growth:.1} MiB after the warm-up (at most {} allowed)",
                    soak.max_growth_mib
                ));
            }
        }
        _ => report
            .failures
            .push("the server reports no resident memory (process_resident_memory_bytes)".into()),
    }
    if acked == 0 {
        report.failures.push("no message was acknowledged".into());
    }
    Ok(report)
}
