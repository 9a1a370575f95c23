//! Memory bounded by bytes, through the wire: stalled connections of one account receiving
//! large group messages stay within the per-connection and per-node budgets of buffered
//! outgoing data, are closed once they stall past the deadline and lose nothing (they read it
//! by index); other accounts log in meanwhile; history pages are cut by bytes; and an account's
//! connections per node are capped with a clear error in each dialect.

use crate::common::*;
use natter_client::ourchat::{v0, v1};
use natter_client::ws::{self, Ended, Event};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// The server's `/metrics` samples by name (labels included).
async fn metrics(addr: SocketAddr) -> std::collections::HashMap<String, f64> {
    let r = natter_client::http::get(addr, "natter", "/metrics")
        .await
        .expect("GET /metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, v)| Some((name.to_owned(), v.parse().ok()?)))
        .collect()
}

async fn metric(addr: SocketAddr, name: &str) -> f64 {
    metrics(addr)
        .await
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A v1 connection whose kernel receive buffer is small, so that a client that stops reading
/// holds up the server's writes soon.
async fn small_window(addr: SocketAddr) -> Client {
    let options = ws::Options {
        recv_buffer: Some(4096),
        ..ws::Options::default()
    };
    let conn = tokio::time::timeout(
        RECV_TIMEOUT,
        ws::Endpoint::at(addr, v1::PATH).connect(&options),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    Client { conn }
}

/// A pipe-dialect connection.
struct Pipe {
    read: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Pipe {
    async fn connect(addr: SocketAddr) -> Self {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("pipe");
        let (read, write) = tcp.into_split();
        Self {
            read: tokio::io::BufReader::new(read),
            write,
        }
    }

    /// Write `line` and read the answer (without its line end).
    async fn ask(&mut self, line: &str) -> String {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        let mut answer = String::new();
        tokio::time::timeout(RECV_TIMEOUT, self.read.read_line(&mut answer))
            .await
            .expect("a pipe answer in time")
            .expect("read");
        answer.trim_end().to_owned()
    }
}

/// Every text frame a connection still has for its reader, until it ends.
async fn read_to_end(c: &mut Client) -> (Vec<Value>, Ended) {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), c.conn.next_event())
            .await
            .expect("the connection ends within 30 s once read");
        match next {
            Event::Text(t) => frames.push(serde_json::from_str(t.as_str()).expect("JSON")),
            Event::Ended(end) => return (frames, end),
            Event::Ping | Event::Pong | Event::Binary(_) => {}
        }
    }
}

/// Sixteen connections of one account stop reading while a group they are in gets large
/// messages. The node's buffered outgoing bytes stay under its budget (plus the bounded
/// overshoot: one message per receiver, one write per connection), far below what the messages
/// would take if held for every connection; another account logs in and chats meanwhile; the
/// stalled connections are closed once they stall past the deadline; and one of them, reading
/// what reached it and then paging history after its last index, has every message exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_stay_within_the_byte_budgets_and_lose_nothing() {
    // More per connection than the kernel's socket buffers take (a send buffer grows to 4 MiB
    // by default), so that the writes really stall.
    const CONNS: usize = 16;
    const MESSAGES: usize = 400;
    const SIZE: usize = 16_000;
    const CONN_BYTES: usize = 64 * 1024;
    const NODE_BYTES: usize = 1024 * 1024;
    let server = TestServer::start_with(|c| {
        c.outbox_bytes = CONN_BYTES;
        c.node_outbox_bytes = NODE_BYTES;
        c.stall_timeout = Duration::from_secs(3);
        c.max_connections_per_account = CONNS + 1;
    })
    .await;
    let mut sender = user_v1(&server, "sender@example.com", "Sender", "pw-s").await;
    let mut stalled = user_v1(&server, "stalled@example.com", "Stalled", "pw-t").await;
    befriend_v1(&mut sender, &mut stalled).await;
    let group = create_group_v1(&mut sender.client, &[stalled.ocid]).await;

    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut c = small_window(server.addr).await;
        let r = c
            .request(&json!({"code": 101, "token": stalled.token, "ext": 1}), 102)
            .await;
        assert_eq!(r["state"], json!(0), "{r}");
        read_sync_v1(&mut c).await;
        conns.push(c);
    }
    // They read nothing from here on.
    let text = "x".repeat(SIZE);
    let mut sent = Vec::new();
    for _ in 0..MESSAGES {
        let ack = send_v1(&mut sender.client, json!({"group_id": group}), &text).await;
        sent.push(int(&ack["index"]));
    }

    // Another account logs in and chats while they stall (a generous bound: the machine may
    // be loaded, but nothing waits on the stalled connections).
    let other = tokio::time::timeout(Duration::from_secs(20), async {
        let mut other = user_v1(&server, "other@example.com", "Other", "pw-o").await;
        let ack = send_v1(&mut other.client, json!({"private_id": sender.ocid}), "hi").await;
        int(&ack["index"]);
        other
    })
    .await
    .expect("another account registers, logs in and sends within 20 s");

    // The stalled connections are closed once they stall past the deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let closed = metric(server.addr, "natter_stalled_connections_total").await;
        if closed >= CONNS as f64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {closed} of {CONNS} stalled connections were closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak = metric(server.addr, "natter_outgoing_buffered_peak_bytes").await as usize;
    let unbounded = CONNS * MESSAGES * SIZE;
    // The node's budget, overshot by at most one message per receiver (the budget is read
    // once per message) and one write per connection (at most its budget and a message).
    let bound = NODE_BYTES + CONNS * (SIZE + 1024) + CONNS * (CONN_BYTES + SIZE + 1024);
    assert!(peak > 0, "the gauge counted the writes");
    assert!(
        peak <= bound,
        "buffered outgoing bytes peaked at {peak}, over the bound {bound}"
    );
    assert!(peak * 8 < unbounded, "{peak} vs {unbounded}");
    let now = metric(server.addr, "natter_outgoing_buffered_bytes").await;
    assert_eq!(
        now, 0.0,
        "nothing stays buffered once the connections are gone"
    );

    // One of them reads what reached it, then pages history after its last index.
    let mut c = conns.pop().expect("a connection");
    drop(conns);
    let (frames, end) = read_to_end(&mut c).await;
    assert!(
        matches!(end, Ended::Eof | Ended::Error(_) | Ended::Close(_)),
        "{end:?}"
    );
    let mut got: Vec<u64> = frames
        .iter()
        .filter(|f| f["code"] == json!(0) && f["sender"]["group_id"] == json!(group))
        .map(|f| int(&f["index"]))
        .collect();
    let live = got.len();
    assert!(
        live < MESSAGES,
        "a stalled connection cannot have taken all {MESSAGES}"
    );
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates: {got:?}"
    );
    let mut reader = server.v1().await;
    resume_v1(&mut reader, &stalled.token).await;
    // The resumed device is pushed what it has not been written (the login sync holds one
    // budget's worth, resync rounds the rest): in order, each once.
    let mut pushed = Vec::new();
    while let Some(f) = reader.recv_within(Duration::from_secs(2)).await {
        assert_eq!(f["code"], json!(0), "only messages are pushed");
        pushed.push(int(&f["index"]));
    }
    assert!(
        pushed.windows(2).all(|w| w[0] < w[1]),
        "pushed in order, each once"
    );
    let mut after = got.last().copied().unwrap_or(sent[0] - 1);
    loop {
        let page = history_v1(
            &mut reader,
            json!({"group_id": group, "after": after, "limit": 500}),
        )
        .await;
        let indexes = indexes(&page);
        got.extend(&indexes);
        if let Some(last) = indexes.last() {
            after = *last;
        }
        if page["more"] != json!(true) {
            break;
        }
    }
    let want: Vec<u64> = sent.clone();
    let tail: Vec<u64> = got.iter().copied().filter(|i| *i >= sent[0]).collect();
    assert_eq!(
        tail, want,
        "every message once, in order ({live} live, the rest by index)"
    );
    assert_eq!(
        tail.iter().collect::<BTreeSet<_>>().len(),
        MESSAGES,
        "no duplicates"
    );
    drop(other);
}

/// A history page of many large messages is cut at the reply budget (the newest kept when
/// paging back, the oldest when paging forward) and says there is more; paging on reads the
/// rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_are_bounded_in_bytes() {
    const SIZE: usize = 16_000;
    let server = TestServer::start_with(|c| c.limits.max_reply_bytes = 64 * 1024).await;
    let mut a = user_v1(&server, "a@example.com", "A", "pw-a").await;
    let b = user_v1(&server, "b@example.com", "B", "pw-b").await;
    let text = "y".repeat(SIZE);
    for _ in 0..20 {
        send_v1(&mut a.client, json!({"private_id": b.ocid}), &text).await;
    }
    let page = history_v1(&mut a.client, json!({"private_id": b.ocid, "limit": 20})).await;
    let newest = indexes(&page);
    assert!(
        (1..=4).contains(&newest.len()),
        "64 KiB holds at most four 16 KB messages: {newest:?}"
    );
    assert_eq!(newest.last(), Some(&20), "the newest are kept going back");
    assert_eq!(page["more"], json!(true));
    let page = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "after": 0, "limit": 20}),
    )
    .await;
    let oldest = indexes(&page);
    assert_eq!(
        oldest.first(),
        Some(&1),
        "the oldest are kept going forward"
    );
    assert!(oldest.len() <= 4, "{oldest:?}");
    assert_eq!(page["more"], json!(true));
    let mut all = oldest;
    while all.len() < 20 {
        let after = *all.last().expect("a page");
        let page = history_v1(
            &mut a.client,
            json!({"private_id": b.ocid, "after": after, "limit": 20}),
        )
        .await;
        let more = indexes(&page);
        assert!(!more.is_empty() && more.len() <= 4, "{more:?}");
        all.extend(more);
    }
    assert_eq!(all, (1..=20).collect::<Vec<u64>>());
    // A page with room for everything asked says there is no more.
    let page = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "after": 18, "limit": 20}),
    )
    .await;
    assert_eq!(indexes(&page), vec![19, 20]);
    assert_eq!(page["more"], json!(false));
}

/// An account may hold `max_connections_per_account` logged-in connections on a node: one
/// more login is refused with `too_many_connections` (v1 and v0 error 4292, the pipe
/// dialect's reason) and leaves the connection open and anonymous; once one leaves, a login
/// succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_account_are_capped() {
    let server = TestServer::start_with(|c| c.max_connections_per_account = 2).await;
    let mut first = user_v1(&server, "cap@example.com", "Cap", "pw-c").await;
    let mut second = server.v1().await;
    let login = login_v1(&mut second, "cap@example.com", "pw-c").await;

    let mut third = server.v1().await;
    third
        .send_json(
            &json!({"code": 6, "login_type": 0, "account": "cap@example.com",
            "password": "pw-c", "request_id": "r3", "ext": 1}),
        )
        .await;
    let refused = third.recv().await;
    let message = assert_error(&refused, "too_many_connections", 4292, json!(6));
    assert!(message.contains('2'), "{message}");
    assert_eq!(refused["request_id"], json!("r3"), "{refused}");
    // A resume is refused the same way, and the connection stays usable.
    third
        .send_json(&json!({"code": 101, "token": login.token}))
        .await;
    assert_error(
        &third.recv().await,
        "too_many_connections",
        4292,
        json!(101),
    );
    // v0 says the same.
    let mut v0c = server.v0().await;
    v0c.send_json(&frame(&v0::login(first.ocid, "pw-c"))).await;
    assert_error(&v0c.recv().await, "too_many_connections", 4292, json!(6));
    // The pipe dialect answers with its reason.
    let mut pipes = Vec::new();
    for n in 0..3 {
        let mut p = Pipe::connect(server.pipe).await;
        if n == 0 {
            let r = p.ask("register|piper|pw-p|Piper|||||0").await;
            assert!(r.starts_with("register_succ|"), "{r}");
        }
        let r = p.ask("login|piper|pw-p").await;
        if n < 2 {
            assert!(r.starts_with("login_succ|"), "{r}");
        } else {
            assert_eq!(r, "login_error|too_many_connections");
        }
        pipes.push(p);
    }

    // One leaves: a login succeeds.
    second.close().await;
    let mut fourth = server.v1().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        fourth
            .send_json(&frame(&v1::login(
                v1::Account::Email("cap@example.com"),
                "pw-c",
            )))
            .await;
        let r = fourth.recv().await;
        if r["code"] == json!(7) {
            assert_eq!(r["state"], json!(0), "{r}");
            break;
        }
        assert_error(&r, "too_many_connections", 4292, json!(6));
        assert!(
            tokio::time::Instant::now() < deadline,
            "the account's connection that left still counts after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.client.expect_silence(100).await;
}
