//! The `soak` workload: a long run of churning connections that checks the server's memory
//! stays flat and nothing is lost.
//!
//! P pairs of accounts; in each pair one account writes to the other over and over: it opens a
//! connection (OurChat v1 and draft v0 in turn), resumes with its token, sends M messages each
//! with a client id, awaiting each ack, and closes; every few connections it also uploads a
//! small picture by tus, reads it back, and sends it as an image message (v1). Meanwhile the
//! server's resident memory is sampled from `GET /metrics` once a second. At the end each
//! receiving account reads its chat's whole history: every acked message must be there once,
//! at the index its ack named, with the indexes running 1, 2, 3, ... without a gap; and the
//! memory after the warm-up (the first quarter of the run) must not grow by more than the
//! allowed amount.

use super::Common;
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
}

/// One writer's record.
#[derive(Debug, Default)]
struct Writer {
    /// Client id -> the index its ack named.
    acked: HashMap<String, u64>,
    connections: u64,
    files: u64,
}

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

/// One writer: connections in turn over v1 and v0 until `until`.
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
    let bar = report::progress((soak.pairs * 2) as u64, "set-up: accounts");
    let tag = format!("{}s", common.tag);
    let at = |i: usize| common.endpoint(i / 2);
    let accounts =
        setup::accounts(at, &tag, soak.pairs * 2, common.setup_concurrency, &bar).await?;
    bar.finish_and_clear();
    // The receivers stay offline until the end (a connection nobody reads would only fill).
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, (account, conn)) in accounts.into_iter().enumerate() {
        conn.close().await;
        if i % 2 == 0 {
            writers.push(account);
        } else {
            readers.push(account);
        }
    }
    report.setup = format!(
        "registered {} accounts in {} pairs and logged each in once with its password (then \
         closed; the receivers stay offline until they read their history at the end){}",
        soak.pairs * 2,
        soak.pairs,
        common.spread("pair p on node p mod n")
    );
    report.setup_secs = setup_start.elapsed().as_secs_f64();
    report.measured = format!(
        "for {:.0} s each writer opens connections in turn over OurChat v1 and v0, resumes, sends \
         {} messages (each awaiting its ack) and closes; every {} v1 connections also a picture \
         (tus upload, read back, sent); server memory sampled every second",
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
    for (p, me) in writers.iter().enumerate() {
        let endpoint = common.endpoint(p).clone();
        let v0_url = endpoint
            .url
            .strip_suffix(v1::PATH)
            .map(|base| format!("{base}{}", v0::PATH))
            .context("the --url must end in /ws to reach v0 beside it")?;
        let v0_endpoint = ws::Endpoint::resolve(&v0_url).await?;
        let (me, to) = (me.clone(), readers[p].ocid);
        let acks = acks.clone();
        tasks.spawn(async move {
            let w = write(endpoint, v0_endpoint, me, to, soak, until, acks, p).await;
            (p, w)
        });
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
    for (p, w) in written.iter().enumerate() {
        let Some(w) = w else { continue };
        let mut conn = common.endpoint(p).connect(p).await?;
        resume_v1(&mut conn, &readers[p]).await?;
        let list = history(&mut conn, writers[p].ocid).await?;
        conn.close().await;
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
        let lost = w
            .acked
            .iter()
            .filter(|(cid, index)| at.get(cid.as_str()) != Some(index))
            .count();
        if lost > 0 {
            report.failures.push(format!(
                "pair {p}: {lost} acked messages are missing or at another index"
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
