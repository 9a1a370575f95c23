//! The real binary's memory under stalled readers: many connections of one account that never
//! read, in a group receiving large messages, keep the server process's resident memory under a
//! ceiling derived from the byte budgets it was started with; they are closed after the stall
//! deadline; another account logs in and chats meanwhile; and the stalled account, reconnecting,
//! gets every message exactly once by index.

use crate::common::serve;
use natter_client::ourchat::v1::{self, Account};
use natter_client::ws::{self, Ended, Event};
use natter_client::{Chat, Target};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "memory-password";

/// The process's resident memory in bytes (`VmRSS` of /proc/<pid>/status).
fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A sample of `/metrics` by name.
async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let r = natter_client::http::get(addr, "natter", "/metrics")
        .await
        .expect("GET /metrics");
    r.body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A v1 client connection with the given options.
async fn client(addr: std::net::SocketAddr, options: &ws::Options) -> v1::Client {
    let conn = tokio::time::timeout(
        Duration::from_secs(30),
        ws::Endpoint::at(addr, v1::PATH).connect(options),
    )
    .await
    .expect("connect within 30 s")
    .expect("connect");
    v1::Client::new(conn)
}

/// Register `email` and log it in on a fresh connection; the connection and its token.
async fn account(addr: std::net::SocketAddr, email: &str) -> (v1::Client, u64, String) {
    let mut c = client(addr, &ws::Options::default()).await;
    c.register(email, PASSWORD, email).await.expect("register");
    let li = c
        .login(Account::Email(email), PASSWORD)
        .await
        .expect("login");
    (c, li.ocid, li.token.expect("a token"))
}

/// Forty connections of one account, with 4 KiB kernel receive buffers, resume and then read
/// nothing while another account sends 240 messages of 32 KB to a group they are in (7.7 MB
/// per connection, 307 MB for all of them if the server held everything it owes them).
///
/// The server runs with `--outbox-kb 64 --node-outbox-mb 4 --stall-timeout-secs 3`. What it
/// may hold for them (docs/security.md, "Memory"): the node's budget (4 MiB), overshot by one
/// message per receiving connection and by one write per connection of at most its outbox
/// budget plus a message, that is 4 MiB + 40 x (64 KiB + 2 x 32 KB), about 9 MiB, held twice
/// while the WebSocket library copies a write: 18 MiB. The ceiling on the process's resident
/// memory (sampled every 50 ms from /proc) is its resident memory before the messages, plus
/// those 18 MiB, plus 64 MiB for what any busy server holds (the store's page cache, the
/// allocator's free lists, the sender's frames): 82 MiB over the start, under a third of what
/// the messages would take if held for every connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_keep_the_process_under_its_memory_ceiling_and_lose_nothing() {
    const CONNS: usize = 40;
    const MESSAGES: usize = 240;
    const SIZE: u64 = 32_000;
    const OUTBOX: u64 = 64 * 1024;
    const NODE: u64 = 4 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let max_conns = (CONNS + 2).to_string();
    let server = serve(
        &dir.path().join("data"),
        &[
            "--rate-per-sec",
            "0",
            "--group-adds-default",
            "everyone",
            "--outbox-kb",
            "64",
            "--node-outbox-mb",
            "4",
            "--stall-timeout-secs",
            "3",
            "--max-text-bytes",
            "65536",
            "--max-connections-per-account",
            &max_conns,
        ],
        "memory",
    );
    let addr: std::net::SocketAddr = server.addr.parse().expect("address");
    let pid = server.child.id();

    let (mut sender, _, _) = account(addr, "sender@memory.test").await;
    let (first, stalled, token) = account(addr, "stalled@memory.test").await;
    first.close().await;
    let group = sender
        .create_group(&[stalled], Some("large"))
        .await
        .expect("a group");

    let small = ws::Options {
        recv_buffer: Some(4096),
        ..ws::Options::default()
    };
    let mut conns = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut c = client(addr, &small).await;
        c.resume(&token).await.expect("resume");
        conns.push(c);
    }

    // The process's memory, sampled until the end.
    let before = rss(pid).expect("VmRSS of the server");
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = rss(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // They read nothing from here on.
    let mut sent = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let mut text = format!("m{i:04} ");
        text.push_str(&"x".repeat(SIZE as usize - text.len()));
        let ack = tokio::time::timeout(
            Duration::from_secs(30),
            sender.send_text(Target::Group(group), &text),
        )
        .await
        .expect("an ack within 30 s")
        .expect("a send");
        sent.push(ack.index);
    }

    // A third account registers, logs in and chats with the sender meanwhile (a generous bound:
    // the machine may be loaded, but nothing waits on the stalled connections).
    let round_trip = tokio::time::timeout(Duration::from_secs(30), async {
        let started = Instant::now();
        let (mut other, other_ocid, _) = account(addr, "other@memory.test").await;
        let ack = other
            .send_text(Target::Private(sender.ocid().expect("ocid")), "still here?")
            .await
            .expect("a send");
        loop {
            let m = sender.next_message().await.expect("a message");
            if m.chat == Chat::Private(other_ocid) {
                assert_eq!((m.index, m.text.as_str()), (ack.index, "still here?"));
                break;
            }
        }
        other.close().await;
        started.elapsed()
    })
    .await
    .expect("another account registers, logs in and chats within 30 s");

    // The stalled connections are closed once they stall past the deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let closed = metric(addr, "natter_stalled_connections_total").await;
        if closed >= CONNS as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {closed} of {CONNS} stalled connections were closed within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler");
    let peak = peak.load(Ordering::Relaxed);
    let held = 2 * (NODE + CONNS as u64 * (OUTBOX + 2 * SIZE));
    let ceiling = before + held + 64 * MIB;
    let unbounded = CONNS as u64 * MESSAGES as u64 * SIZE;
    eprintln!(
        "server RSS: {:.1} MiB before, peak {:.1} MiB (ceiling {:.1} MiB; {:.1} MiB if held \
         for every connection); another account's login and round trip took {:.2} s",
        before as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        ceiling as f64 / MIB as f64,
        unbounded as f64 / MIB as f64,
        round_trip.as_secs_f64()
    );
    assert!(
        peak <= ceiling,
        "the server's RSS peaked at {peak} bytes, over its ceiling of {ceiling}"
    );

    // One stalled connection: what reached it, up to where the server closed it.
    let mut c = conns.pop().expect("a connection");
    drop(conns);
    let mut live = Vec::new();
    let end = loop {
        let next = tokio::time::timeout(Duration::from_secs(30), c.conn().next_event())
            .await
            .expect("the connection ends within 30 s once read");
        match next {
            Event::Text(t) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("JSON");
                let index = f["index"].as_u64().unwrap_or_default();
                if f["code"] == 0 && f["sender"]["group_id"] == group && index >= sent[0] {
                    live.push(index);
                }
            }
            Event::Ended(end) => break end,
            Event::Ping | Event::Pong | Event::Binary(_) => {}
        }
    };
    assert!(
        matches!(end, Ended::Close(Some(1008)) | Ended::Eof | Ended::Error(_)),
        "{end:?}"
    );
    assert!(
        live.len() < MESSAGES,
        "a stalled connection cannot have taken all {MESSAGES}"
    );

    // It reconnects, saying up to which index it holds the group: the rest comes, each once.
    let held_up_to = live.last().copied().unwrap_or(sent[0] - 1);
    let mut again = client(addr, &ws::Options::default()).await;
    again
        .send(v1::resume_since(
            &token,
            &[(Target::Group(group), held_up_to)],
        ))
        .await
        .expect("resume");
    again.resumed().await.expect("resumed");
    let last = *sent.last().expect("sent");
    let mut got = live.clone();
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.last().copied() < Some(last) {
        assert!(
            Instant::now() < deadline,
            "after reconnecting, only up to {:?} of {last} within 90 s",
            got.last()
        );
        let m = tokio::time::timeout(Duration::from_secs(30), again.next_message())
            .await
            .expect("a message within 30 s")
            .expect("a message");
        if m.chat == Chat::Group(group) && m.index >= sent[0] {
            got.push(m.index);
        }
    }
    // Nothing more comes for the group (no message twice).
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(2), again.next_message()).await {
        let m = m.expect("a message");
        assert_ne!(m.chat, Chat::Group(group), "a message twice: {}", m.index);
    }
    let live_count = live.len();
    assert_eq!(
        got, sent,
        "every message once, in index order ({live_count} live, the rest after reconnecting)"
    );
    again.close().await;
    sender.close().await;
}
