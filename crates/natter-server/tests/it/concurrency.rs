//! Concurrent senders and slow readers: indexes stay gapless and unique, every receiver
//! gets every message exactly once in index order.

use crate::common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const PER_SENDER: u64 = 50;
const SENDERS: u64 = 3;
const TOTAL: u64 = PER_SENDER * SENDERS;

/// What one sender saw: its acks (in arrival order) and the code 0 frames of the others.
struct SenderLog {
    ocid: u64,
    acks: Vec<Value>,
    delivered: Vec<Value>,
}

/// Send `PER_SENDER` messages to `group` without waiting for acks, then read until every
/// ack and every other sender's message has arrived.
async fn pipelined_sender(mut user: User, group: u64, tag: usize) -> SenderLog {
    for i in 0..PER_SENDER {
        user.client
            .feed_json(&json!({"code": 0, "sender": {"group_id": group}, "msg": format!("s{tag}-{i}"), "request_id": i}))
            .await;
        if i % 10 == 9 {
            user.client.flush().await;
        }
    }
    user.client.flush().await;
    let mut acks = Vec::new();
    let mut delivered = Vec::new();
    let others = TOTAL - PER_SENDER;
    while (acks.len() as u64) < PER_SENDER || (delivered.len() as u64) < others {
        let f = user.client.recv().await;
        match f["code"].as_i64() {
            Some(103) => acks.push(f),
            Some(0) => delivered.push(f),
            _ => panic!("sender {tag}: unexpected frame {f}"),
        }
    }
    user.client.expect_silence(200).await;
    SenderLog {
        ocid: user.ocid,
        acks,
        delivered,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_group_senders_get_unique_gapless_indexes() {
    let server = TestServer::start().await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(
            user_v1(
                &server,
                &format!("s{i}@example.com"),
                &format!("S{i}"),
                "pw",
            )
            .await,
        );
    }
    let mut rx = user_v1(&server, "rx@example.com", "Rx", "pw").await;
    let members: Vec<u64> = senders.iter().map(|u| u.ocid).chain([rx.ocid]).collect();
    let group = create_group_v1(&mut rx.client, &members).await;

    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(tag, user)| tokio::spawn(pipelined_sender(user, group, tag)))
        .collect();

    // The receiving member reads concurrently.
    let mut received = Vec::new();
    for _ in 0..TOTAL {
        received.push(rx.client.expect_code(0).await);
    }
    rx.client.expect_silence(300).await;

    let mut logs = Vec::new();
    for t in tasks {
        logs.push(t.await.expect("sender task panicked"));
    }

    // Acks: unique indexes, exactly 1..=TOTAL; each sender's in send order.
    let mut by_index: BTreeMap<u64, (u64, Value, String)> = BTreeMap::new();
    let mut cids = BTreeSet::new();
    for (tag, log) in logs.iter().enumerate() {
        assert_eq!(log.acks.len() as u64, PER_SENDER);
        let mut last = 0;
        for (i, ack) in log.acks.iter().enumerate() {
            assert_eq!(
                ack["request_id"],
                json!(i),
                "acks come back in request order: {ack}"
            );
            assert_eq!(ack["group_id"], json!(group));
            let index = int(&ack["index"]);
            assert!(
                index > last,
                "one connection's messages get increasing indexes"
            );
            last = index;
            assert!(cids.insert(int(&ack["cid"])), "duplicate cid in {ack}");
            let dup = by_index.insert(index, (log.ocid, ack["cid"].clone(), format!("s{tag}-{i}")));
            assert!(dup.is_none(), "index {index} acked twice");
        }
    }
    let all: Vec<u64> = by_index.keys().copied().collect();
    assert_eq!(
        all,
        (1..=TOTAL).collect::<Vec<_>>(),
        "acked indexes are exactly 1..={TOTAL}"
    );

    // The receiver: every message once, in index order, matching the acks.
    let got: Vec<u64> = received.iter().map(|f| int(&f["index"])).collect();
    assert_eq!(got, (1..=TOTAL).collect::<Vec<_>>(), "receiver order");
    for f in &received {
        let (sender, cid, msg) = &by_index[&int(&f["index"])];
        assert_eq!(&f["cid"], cid, "{f}");
        assert_eq!(
            f["sender"],
            json!({"ocid": sender, "group_id": group}),
            "{f}"
        );
        assert_eq!(f["msg"], json!(msg), "{f}");
    }

    // Each sender got the other senders' messages: once each, in index order.
    for log in &logs {
        let got: Vec<u64> = log.delivered.iter().map(|f| int(&f["index"])).collect();
        let own: BTreeSet<u64> = log.acks.iter().map(|a| int(&a["index"])).collect();
        let expected: Vec<u64> = (1..=TOTAL).filter(|i| !own.contains(i)).collect();
        assert_eq!(got, expected, "sender {} deliveries", log.ocid);
        for f in &log.delivered {
            assert_ne!(
                f["sender"]["ocid"],
                json!(log.ocid),
                "own message delivered back: {f}"
            );
        }
    }

    // History agrees.
    let h = history_v1(
        &mut rx.client,
        json!({"group_id": group, "after": 0, "limit": 500}),
    )
    .await;
    assert_eq!(indexes(&h), (1..=TOTAL).collect::<Vec<_>>());
    assert_eq!(h["more"], json!(false));
    for m in h["messages"].as_array().into_iter().flatten() {
        let (sender, cid, msg) = &by_index[&int(&m["index"])];
        assert_eq!(&m["cid"], cid);
        assert_eq!(m["sender"]["ocid"], json!(sender));
        assert_eq!(m["msg"], json!(msg));
    }
}

/// Concurrent first messages in a new private chat from both sides: one chat, gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_start_a_private_chat_at_once() {
    let server = TestServer::start().await;
    let a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let (a_ocid, b_ocid) = (a.ocid, b.ocid);

    async fn burst(mut u: User, peer: u64) -> (User, Vec<u64>, Vec<u64>) {
        for i in 0..20 {
            u.client
                .feed_json(&json!({"code": 0, "sender": {"private_id": peer}, "msg": format!("{}-{i}", u.ocid)}))
                .await;
        }
        u.client.flush().await;
        let (mut acks, mut got) = (Vec::new(), Vec::new());
        while acks.len() < 20 || got.len() < 20 {
            let f = u.client.recv().await;
            match f["code"].as_i64() {
                Some(103) => acks.push(int(&f["index"])),
                Some(0) => got.push(int(&f["index"])),
                _ => panic!("unexpected {f}"),
            }
        }
        (u, acks, got)
    }
    let ta = tokio::spawn(burst(a, b_ocid));
    let tb = tokio::spawn(burst(b, a_ocid));
    let (mut a, a_acks, a_got) = ta.await.expect("alice task");
    let (_b, b_acks, b_got) = tb.await.expect("bob task");
    let mut all: Vec<u64> = a_acks.iter().chain(&b_acks).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
    assert_eq!(
        a_got, b_acks,
        "Alice receives Bob's messages in index order"
    );
    assert_eq!(
        b_got, a_acks,
        "Bob receives Alice's messages in index order"
    );
    let h = history_v1(&mut a.client, json!({"private_id": b_ocid, "limit": 500})).await;
    assert_eq!(indexes(&h), (1..=40).collect::<Vec<_>>());
}

/// Send `n` private messages of `size` bytes from `a` to `peer`, pipelined; returns the acks.
async fn flood(a: &mut Client, peer: u64, n: u64, size: usize, tag: &str) -> Vec<Value> {
    for i in 1..=n {
        let head = format!("{tag}{i}:");
        let msg = format!("{head}{}", "x".repeat(size.saturating_sub(head.len())));
        a.feed_json(&json!({"code": 0, "sender": {"private_id": peer}, "msg": msg}))
            .await;
        if i.is_multiple_of(16) {
            a.flush().await;
        }
    }
    a.flush().await;
    let mut acks = Vec::new();
    for _ in 0..n {
        acks.push(a.expect_code(103).await);
    }
    acks
}

/// A receiver that does not read while the sender sends must later get everything, once,
/// in order: its outbox of 4 overflows and it catches up from the store.
async fn slow_reader(size: usize) {
    const N: u64 = 200;
    let server = TestServer::start_with(|c| c.outbox_frames = 4).await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    let acks = flood(&mut a.client, b.ocid, N, size, "m").await;
    let ack_indexes: Vec<u64> = acks.iter().map(|a| int(&a["index"])).collect();
    assert_eq!(ack_indexes, (1..=N).collect::<Vec<_>>());

    let mut got = Vec::new();
    for _ in 0..N {
        got.push(b.client.expect_code(0).await);
    }
    b.client.expect_silence(500).await;
    for (i, f) in got.iter().enumerate() {
        let index = i as u64 + 1;
        assert_eq!(
            f["index"],
            json!(index),
            "frame {i}: {}",
            &f.to_string()[..80.min(f.to_string().len())]
        );
        assert_eq!(f["cid"], acks[i]["cid"]);
        assert_eq!(f["sender"], json!({"ocid": a.ocid, "private_id": b.ocid}));
        let msg = string(&f["msg"]);
        assert!(
            msg.starts_with(&format!("m{index}:")),
            "message {index} text"
        );
        assert_eq!(msg.len(), size.max(format!("m{index}:").len()));
    }

    // Still live afterwards.
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "after").await;
    assert_eq!(ack["index"], json!(N + 1));
    let f = b.client.expect_code(0).await;
    assert_eq!(f["index"], json!(N + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_gets_every_small_message_once_in_order() {
    slow_reader(16).await;
}

/// Big messages fill the socket buffers, so the server's writes to the reader block and its
/// outbox overflows for certain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_gets_every_large_message_once_in_order() {
    slow_reader(12_000).await;
}

/// A reader so far behind (its socket full, thousands of messages dropped from its outbox)
/// that catching up takes several rounds still gets everything once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_behind_reader_catches_up_in_rounds() {
    const BIG: u64 = 600;
    const SMALL: u64 = 2_600;
    let server = TestServer::start_with(|c| {
        c.outbox_frames = 4;
        c.rate_per_sec = 0;
    })
    .await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    // Big messages first, to stall the server's writes to Bob; then many small ones.
    let big = flood(&mut a.client, b.ocid, BIG, 16_000, "b").await;
    let small = flood(&mut a.client, b.ocid, SMALL, 8, "s").await;
    let acks: Vec<&Value> = big.iter().chain(&small).collect();
    let ack_indexes: Vec<u64> = acks.iter().map(|a| int(&a["index"])).collect();
    assert_eq!(ack_indexes, (1..=BIG + SMALL).collect::<Vec<_>>());

    for (i, ack) in acks.iter().enumerate() {
        let f = b.client.expect_code(0).await;
        assert_eq!(f["index"], json!(i as u64 + 1));
        assert_eq!(f["cid"], ack["cid"]);
    }
    b.client.expect_silence(500).await;
}

/// A second device of an account whose connection is stalled (its socket is full) while a
/// new chat starts and its first device receives and records those messages: once the
/// second device reads again, it must still get every message of the new chat ("every
/// connection of every member of the chat receives it"; "No message is lost").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_second_device_still_gets_a_new_chats_messages() {
    const FLOOD: u64 = 600;
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let b1 = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let bob = b1.ocid;
    let mut b2 = server.v1().await;
    login_v1(&mut b2, "bob@example.com", "pw-b").await;

    // b1 reads everything as it comes; b2 reads nothing for now.
    let reader = tokio::spawn(async move {
        let mut b1 = b1;
        let mut frames = Vec::new();
        for _ in 0..FLOOD + 3 {
            frames.push(b1.client.expect_code(0).await);
        }
        (b1, frames)
    });
    // 600 x 16 kB private messages (more than the kernel buffers) fill b2's socket, so the server's writes to it block.
    let private_acks = flood(&mut a.client, bob, FLOOD, 16_000, "p").await;
    // Then a new group, created after both devices logged in, gets three messages.
    let g = create_group_v1(&mut a.client, &[bob]).await;
    let mut group_acks = Vec::new();
    for i in 1..=3 {
        group_acks.push(send_v1(&mut a.client, json!({"group_id": g}), &format!("g{i}")).await);
    }
    let (_b1, b1_frames) = reader.await.expect("b1 reader panicked");
    let group_seen: Vec<u64> = b1_frames
        .iter()
        .filter(|f| f["sender"]["group_id"] == json!(g))
        .map(|f| int(&f["index"]))
        .collect();
    assert_eq!(
        group_seen,
        [1, 2, 3],
        "the first device got the group messages"
    );
    // Let the server record b1's deliveries (it does so periodically).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // Now b2 reads: it must get all 303 messages.
    let mut got = Vec::new();
    while let Some(f) = b2.recv_within(Duration::from_secs(2)).await {
        got.push(f);
    }
    let private: Vec<u64> = got
        .iter()
        .filter(|f| f["sender"].get("private_id").is_some())
        .map(|f| int(&f["index"]))
        .collect();
    assert_eq!(
        private,
        (1..=FLOOD).collect::<Vec<_>>(),
        "b2's private messages"
    );
    assert_eq!(int(&private_acks[0]["index"]), 1);
    let group: Vec<(Value, u64)> = got
        .iter()
        .filter(|f| f["sender"].get("group_id").is_some())
        .map(|f| (f["cid"].clone(), int(&f["index"])))
        .collect();
    let expected: Vec<(Value, u64)> = group_acks
        .iter()
        .map(|a| (a["cid"].clone(), int(&a["index"])))
        .collect();
    assert_eq!(group, expected, "b2 lost the new group's messages");
    assert_eq!(got.len() as u64, FLOOD + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_get_unique_sequential_ocids() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        tasks.push(tokio::spawn(async move {
            let mut c =
                Client::connect(addr, if i.is_multiple_of(2) { "/ws" } else { "/ws/v0" }).await;
            if i.is_multiple_of(2) {
                register_v1(&mut c, &format!("u{i}@example.com"), "U", "pw").await
            } else {
                register_v0(&mut c, &format!("u{i}@example.com"), "pw")
                    .await
                    .parse()
                    .expect("digits")
            }
        }));
    }
    let mut ocids = Vec::new();
    for t in tasks {
        ocids.push(t.await.expect("registration task"));
    }
    ocids.sort_unstable();
    assert_eq!(
        ocids,
        (10001..10001 + 8).collect::<Vec<_>>(),
        "unique and gapless"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_of_one_address_have_one_winner() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut tasks = Vec::new();
    for i in 0..5u32 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, "/ws").await;
            let email = if i.is_multiple_of(2) {
                "same@example.com"
            } else {
                "SAME@example.com"
            };
            c.request(
                &json!({"code": 4, "email": email, "password": "pw", "name": "S"}),
                5,
            )
            .await
        }));
    }
    let mut states = Vec::new();
    for t in tasks {
        states.push(t.await.expect("registration task")["state"].clone());
    }
    let ok = states.iter().filter(|s| **s == json!(0)).count();
    let taken = states.iter().filter(|s| **s == json!(2)).count();
    assert_eq!((ok, taken), (1, 4), "{states:?}");
}

/// Sends from one connection are pipelined (the server reads on while the store commits),
/// yet every reply comes back in request order: an invalid send's error between the acks
/// around it, and a request after the sends sees all of them. With a pipeline cap of 2 the
/// server pauses reading most of the time; with 64 it reads the whole burst at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_are_answered_in_request_order() {
    for cap in [64, 2] {
        pipelined_replies_in_order(cap).await;
    }
}

async fn pipelined_replies_in_order(cap: usize) {
    let server = TestServer::start_with(|c| c.max_pending_sends = cap).await;
    let mut a = user_v1(&server, "a@example.com", "A", "pw").await;
    let mut b = user_v1(&server, "b@example.com", "B", "pw").await;
    const N: u64 = 30;
    for i in 0..N {
        // Request 10 is an empty text: `invalid_field`, answered in its place.
        let msg = if i == 10 {
            String::new()
        } else {
            format!("m{i}")
        };
        a.client
            .feed_json(
                &json!({"code": 0, "sender": {"private_id": b.ocid}, "msg": msg, "request_id": i}),
            )
            .await;
    }
    a.client
        .feed_json(&json!({"code": 104, "private_id": b.ocid, "limit": 100, "request_id": "h"}))
        .await;
    a.client.flush().await;

    let mut last_index = 0;
    for i in 0..N {
        let f = a.client.recv().await;
        assert_eq!(
            f["request_id"],
            json!(i),
            "cap {cap}: replies in request order: {f}"
        );
        if i == 10 {
            assert_error(&f, "invalid_field", 1003, json!(0));
            continue;
        }
        assert_eq!(f["code"], json!(103), "{f}");
        let index = int(&f["index"]);
        assert_eq!(
            index,
            last_index + 1,
            "indexes follow the request order: {f}"
        );
        last_index = index;
    }
    let history = a.client.expect_code(105).await;
    assert_eq!(history["request_id"], json!("h"));
    assert_eq!(
        indexes(&history),
        (1..N).collect::<Vec<_>>(),
        "the history request sees every send before it"
    );
    a.client.expect_silence(200).await;

    for i in 0..N - 1 {
        let f = b.client.expect_code(0).await;
        assert_eq!(int(&f["index"]), i + 1, "{f}");
    }
    b.client.expect_silence(200).await;
}
