//! Offline delivery: what an account missed is pushed after login (v1: code 0 frames then
//! code 106; v0: code 8 batches of JSON strings), exactly once per account.

use crate::common::*;
use crate::driver::{Dialect, for_each_dialect_and_pipe};
use natter_client::Target;
use serde_json::{Value, json};
use std::time::Duration;

for_each_dialect_and_pipe!(missed_messages_are_pushed_once_in_send_order);

/// Every dialect: what an account missed before its first login, in a private chat and a
/// group, is pushed at login in send order; once delivered, neither a later login nor a
/// resume pushes it again.
async fn missed_messages_are_pushed_once_in_send_order<D: Dialect>() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = D::connect(&server).await;
    let bob = b.register("bob@example.com", "Bob", "pw-b").await;
    let g = create_group_v1(&mut a.client, &[bob]).await;
    let sent = [
        (Target::Private(bob), "p1", 1),
        (Target::Private(bob), "p2", 2),
        (Target::Group(g), "g1", 1),
        (Target::Private(bob), "p3", 3),
    ];
    let mut ids = Vec::new();
    for (target, text, index) in sent {
        let to = match target {
            Target::Private(o) => json!({"private_id": o}),
            Target::Group(g) => json!({"group_id": g}),
        };
        let ack = send_v1(&mut a.client, to, text).await;
        assert_eq!(ack["index"], json!(index));
        ids.push(int(&ack["cid"]));
    }

    let missed = b.login(bob, "bob@example.com", "pw-b").await;
    assert_eq!(missed.len(), 4, "{}: {missed:?}", D::NAME);
    for ((m, id), (target, text, index)) in missed.iter().zip(&ids).zip(sent) {
        let from_alice = match target {
            Target::Private(_) => Target::Private(a.ocid),
            Target::Group(_) => target,
        };
        b.assert_message(m, from_alice, a.ocid, index, text);
        assert_eq!(m.id, *id);
        assert_recent_time(&json!(m.time));
    }

    // Delivered now: after this connection has gone, a login gets nothing, nor a resume.
    let token = b.token();
    b.close().await;
    let mut b2 = D::connect(&server).await;
    let missed = b2.login(bob, "bob@example.com", "pw-b").await;
    assert!(missed.is_empty(), "already delivered: {missed:?}");
    let mut b3 = D::connect(&server).await;
    let missed = b3.resume(bob, &token).await;
    assert!(missed.is_empty(), "already delivered: {missed:?}");
}

/// Comfortably longer than the server's delivery-state save interval ("about once a second").
const SAVE_INTERVAL: Duration = Duration::from_millis(2500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_login_pushes_missed_messages_then_sync_done() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    // Bob and Carol are registered but not connected.
    let mut reg = server.v1().await;
    let bob = register_v1(&mut reg, "bob@example.com", "Bob", "pw-b").await;
    let carol = register_v1(&mut reg, "carol@example.com", "Carol", "pw-c").await;
    let g = create_group_v1(&mut a.client, &[bob, carol]).await;

    // Three private messages, the group message, two more private: in send order.
    let mut acks = Vec::new();
    for i in 1..=3 {
        acks.push(send_v1(&mut a.client, json!({"private_id": bob}), &format!("p{i}")).await);
    }
    acks.push(send_v1(&mut a.client, json!({"group_id": g}), "g1").await);
    for i in 4..=5 {
        acks.push(send_v1(&mut a.client, json!({"private_id": bob}), &format!("p{i}")).await);
    }

    let mut b = server.v1().await;
    let l = login_v1(&mut b, "bob@example.com", "pw-b").await;
    assert_eq!(l.ocid, bob);
    assert_eq!(
        l.missed.len(),
        6,
        "exactly the six missed messages: {:?}",
        l.missed
    );
    let expected = [
        (json!({"ocid": a.ocid, "private_id": bob}), "p1", 1),
        (json!({"ocid": a.ocid, "private_id": bob}), "p2", 2),
        (json!({"ocid": a.ocid, "private_id": bob}), "p3", 3),
        (json!({"ocid": a.ocid, "group_id": g}), "g1", 1),
        (json!({"ocid": a.ocid, "private_id": bob}), "p4", 4),
        (json!({"ocid": a.ocid, "private_id": bob}), "p5", 5),
    ];
    for ((f, ack), (sender, msg, index)) in l.missed.iter().zip(&acks).zip(&expected) {
        assert_eq!(f["code"], json!(0), "{f}");
        assert_eq!(f["cid"], ack["cid"], "{f}");
        assert_eq!(&f["sender"], sender, "{f}");
        assert_eq!(f["msg"], json!(msg), "{f}");
        assert_eq!(f["index"], json!(index), "{f}");
        assert_recent_time(&f["time"]);
        assert!(f.get("request_id").is_none(), "{f}");
    }

    // Delivered now: a fresh connection (after this one has gone) gets nothing.
    b.close().await;
    let mut b2 = server.v1().await;
    let l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "already delivered: {:?}", l.missed);
    // ... and a resume neither.
    let mut b3 = server.v1().await;
    let r = resume_v1(&mut b3, &l.token).await;
    assert!(r.missed.is_empty(), "already delivered: {:?}", r.missed);

    // Carol missed only the group message.
    let mut c = server.v1().await;
    let l = login_v1(&mut c, "carol@example.com", "pw-c").await;
    assert_eq!(l.missed.len(), 1, "{:?}", l.missed);
    assert_eq!(
        l.missed[0]["sender"],
        json!({"ocid": a.ocid, "group_id": g})
    );
    assert_eq!(l.missed[0]["cid"], acks[3]["cid"]);
}

/// "For each chat, the server keeps one delivered-up-to index per account ... The server saves
/// these indexes to its database about once a second": once that has happened, messages synced
/// to one device are not pushed again to another device of the account, even while the first
/// is still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_synced_messages_are_not_repeated_to_a_second_device() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut reg = server.v1().await;
    let bob = register_v1(&mut reg, "bob@example.com", "Bob", "pw-b").await;
    for i in 1..=3 {
        send_v1(&mut a.client, json!({"private_id": bob}), &format!("p{i}")).await;
    }
    let mut b1 = server.v1().await;
    let l = login_v1(&mut b1, "bob@example.com", "pw-b").await;
    assert_eq!(l.missed.len(), 3);
    tokio::time::sleep(SAVE_INTERVAL).await;

    // b1 stays connected.
    let mut b2 = server.v1().await;
    let l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    assert!(
        l.missed.is_empty(),
        "messages synced to another device were pushed again: {:?}",
        l.missed
    );
    b1.expect_silence(100).await;
}

/// As above, for a message delivered live to a connected device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_live_delivered_messages_are_not_repeated_to_a_second_device() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b1 = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    let ack = send_v1(&mut a.client, json!({"private_id": b1.ocid}), "live").await;
    let f = b1.client.expect_code(0).await;
    assert_eq!(f["cid"], ack["cid"]);
    tokio::time::sleep(SAVE_INTERVAL).await;

    // b1 stays connected; a second device logs in, on v1 and on v0.
    let mut b2 = server.v1().await;
    let l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    assert!(
        l.missed.is_empty(),
        "a message delivered live was pushed again: {:?}",
        l.missed
    );
    let mut b0 = server.v0().await;
    let l = login_v0(&mut b0, &json!(b1.ocid), "pw-b").await;
    assert!(
        l.missed.is_empty(),
        "a message delivered live was pushed again: {:?}",
        l.missed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_messages_are_not_pushed_back_at_login() {
    let server = TestServer::start().await;
    let mut reg = server.v1().await;
    let alice = register_v1(&mut reg, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    // Bob writes to offline Alice and to a group; then leaves.
    let g = create_group_v1(&mut b.client, &[alice]).await;
    let ack1 = send_v1(&mut b.client, json!({"private_id": alice}), "one").await;
    let ack2 = send_v1(&mut b.client, json!({"group_id": g}), "two").await;
    b.client.close().await;

    // Bob's next login has nothing to sync: his own messages are not missed.
    let mut b2 = server.v1().await;
    let l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    assert!(
        l.missed.is_empty(),
        "own messages pushed back: {:?}",
        l.missed
    );
    // Alice gets both.
    let mut a = server.v1().await;
    let l = login_v1(&mut a, "alice@example.com", "pw-a").await;
    let cids: Vec<&Value> = l.missed.iter().map(|f| &f["cid"]).collect();
    assert_eq!(cids, [&ack1["cid"], &ack2["cid"]]);

    // Alice answers while Bob (b2) is online: he gets it live, not again at his next login.
    let ack3 = send_v1(&mut a, json!({"private_id": b.ocid}), "three").await;
    let f = b2.expect_code(0).await;
    assert_eq!(f["cid"], ack3["cid"]);
    b2.close().await;
    let mut b3 = server.v1().await;
    let l = login_v1(&mut b3, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);
    // History still has everything, own messages included.
    let h = history_v1(&mut b3, json!({"private_id": alice})).await;
    assert_eq!(indexes(&h), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_login_gets_code_8_with_json_strings() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut reg = server.v0().await;
    let zed = register_v0(&mut reg, "zed@example.com", "pw-z").await;
    let zed_n: u64 = zed.parse().expect("digits");
    let g = create_group_v1(&mut a.client, &[zed_n]).await;

    let p1 = send_v1(&mut a.client, json!({"private_id": zed_n}), "hi \"zed\"").await;
    let g1 = send_v1(&mut a.client, json!({"group_id": g}), "group hi").await;
    let p2 = send_v1(&mut a.client, json!({"private_id": zed_n}), "still there?").await;

    let mut z = server.v0().await;
    let l = login_v0(&mut z, &json!(zed), "pw-z").await;
    assert_eq!(l.ocid, zed);
    assert_eq!(l.batches, [3], "one code 8 frame with three entries");
    let private_chat = int(&l.missed[0]["data"]["cid"]);
    assert_ne!(private_chat, g, "the private chat has its own id");
    let expected = [
        (&p1, private_chat, "hi \"zed\"", 1),
        (&g1, g, "group hi", 1),
        (&p2, private_chat, "still there?", 2),
    ];
    for (f, (ack, chat, msg, index)) in l.missed.iter().zip(expected) {
        assert_eq!(f["code"], json!(0), "{f}");
        assert_recent_time(&f["time"]);
        let d = &f["data"];
        assert_eq!(d["cid"], json!(chat), "data.cid is the chat id: {f}");
        assert_eq!(
            d["sender_id"],
            json!(a.ocid.to_string()),
            "sender_id is a string: {f}"
        );
        assert_eq!(d["msg"], json!(msg), "{f}");
        assert_eq!(d["mid"], ack["cid"], "mid is the v1 message id: {f}");
        assert_eq!(d["index"], json!(index), "{f}");
    }

    // Delivered: the next login (after this connection ends) gets an empty code 8.
    z.close().await;
    let mut z2 = server.v0().await;
    let l = login_v0(&mut z2, &json!(zed_n), "pw-z").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);
    assert_eq!(
        l.batches,
        [0],
        "code 8 is always sent, once, even when empty"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_backlog_is_split_into_code_8_batches() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut reg = server.v0().await;
    let zed = register_v0(&mut reg, "zed@example.com", "pw-z").await;
    let zed_n: u64 = zed.parse().expect("digits");

    // 130 messages, pipelined.
    const N: u64 = 130;
    for i in 1..=N {
        a.client
            .feed_json(&json!({"code": 0, "sender": {"private_id": zed_n}, "msg": format!("m{i}")}))
            .await;
    }
    a.client.flush().await;
    let mut mids = Vec::new();
    for i in 1..=N {
        let ack = a.client.expect_code(103).await;
        assert_eq!(ack["index"], json!(i), "{ack}");
        mids.push(ack["cid"].clone());
    }

    let mut z = server.v0().await;
    let l = login_v0(&mut z, &json!(zed), "pw-z").await;
    assert_eq!(l.batches, [100, 30], "at most 100 entries per code 8 frame");
    let got: Vec<u64> = l.missed.iter().map(|f| int(&f["data"]["index"])).collect();
    assert_eq!(got, (1..=N).collect::<Vec<_>>());
    for (i, f) in l.missed.iter().enumerate() {
        assert_eq!(f["data"]["msg"], json!(format!("m{}", i + 1)));
        assert_eq!(f["data"]["mid"], mids[i]);
        assert_eq!(f["data"]["sender_id"], json!(a.ocid.to_string()));
    }
    z.expect_silence(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_state_is_shared_across_dialects() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut reg = server.v1().await;
    let bob = register_v1(&mut reg, "bob@example.com", "Bob", "pw-b").await;

    // Bob (a v1 account) syncs on v1, then on v0 has nothing left.
    send_v1(&mut a.client, json!({"private_id": bob}), "one").await;
    let mut b1 = server.v1().await;
    let l = login_v1(&mut b1, "bob@example.com", "pw-b").await;
    assert_eq!(l.missed.len(), 1);
    b1.close().await;
    let mut b0 = server.v0().await;
    let l = login_v0(&mut b0, &json!(bob.to_string()), "pw-b").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);

    // Live on v0, then nothing on v1.
    let ack = send_v1(&mut a.client, json!({"private_id": bob}), "two").await;
    let f = b0.expect_code(0).await;
    assert_eq!(f["data"]["mid"], ack["cid"]);
    assert_eq!(f["data"]["index"], json!(2));
    b0.close().await;
    let mut b1 = server.v1().await;
    let l = login_v1(&mut b1, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);

    // Missed while offline: pushed on v0 (resume with a v1 token), then not again on v1.
    b1.close().await;
    send_v1(&mut a.client, json!({"private_id": bob}), "three").await;
    let mut b0 = server.v0().await;
    let r = b0
        .request(&json!({"code": 101, "data": {"token": l.token}}), 102)
        .await;
    assert_eq!(
        r["data"],
        json!({"state": 0, "ocId": bob.to_string()}),
        "{r}"
    );
    let (missed, batches) = read_undelivered_v0(&mut b0).await;
    assert_eq!(batches, [1]);
    assert_eq!(missed[0]["data"]["msg"], json!("three"));
    assert_eq!(missed[0]["data"]["index"], json!(3));
    b0.close().await;
    let mut b1 = server.v1().await;
    let l = login_v1(&mut b1, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);
}

/// One login sync covers at most 10000 messages; the rest follows after code 106 (v1) or after
/// the last code 8 (v0) as ordinary code 0 frames, in index order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_covers_at_most_10000_messages_and_the_rest_follows() {
    const N: u64 = 10_005;
    let server = TestServer::start_with(|c| c.rate_per_sec = 0).await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut reg = server.v1().await;
    let bob = register_v1(&mut reg, "bob@example.com", "Bob", "pw-b").await;
    let mut reg0 = server.v0().await;
    let zed: u64 = register_v0(&mut reg0, "zed@example.com", "pw-z")
        .await
        .parse()
        .expect("digits");
    let g = create_group_v1(&mut a.client, &[bob, zed]).await;

    for i in 1..=N {
        a.client
            .feed_json(&json!({"code": 0, "sender": {"group_id": g}, "msg": format!("m{i}")}))
            .await;
        if i.is_multiple_of(64) {
            a.client.flush().await;
        }
    }
    a.client.flush().await;
    for i in 1..=N {
        let ack = a.client.expect_code(103).await;
        assert_eq!(ack["index"], json!(i));
    }

    // v1: 10000 frames, code 106 with count 10000, then the other 5.
    let mut b = server.v1().await;
    let l = login_v1(&mut b, "bob@example.com", "pw-b").await;
    let idx: Vec<u64> = l.missed.iter().map(|f| int(&f["index"])).collect();
    assert_eq!(idx, (1..=10_000).collect::<Vec<_>>());
    for i in 10_001..=N {
        let f = b.expect_code(0).await;
        assert_eq!(f["index"], json!(i));
        assert_eq!(f["msg"], json!(format!("m{i}")));
        assert_eq!(f["sender"], json!({"ocid": a.ocid, "group_id": g}));
    }
    b.expect_silence(300).await;

    // v0: 100 code 8 frames of 100, then the other 5 as code 0 frames.
    let mut z = server.v0().await;
    let l = login_v0(&mut z, &json!(zed), "pw-z").await;
    assert_eq!(l.batches, vec![100; 100]);
    let idx: Vec<u64> = l.missed.iter().map(|f| int(&f["data"]["index"])).collect();
    assert_eq!(idx, (1..=10_000).collect::<Vec<_>>());
    for i in 10_001..=N {
        let f = z.expect_code(0).await;
        assert_eq!(f["data"]["index"], json!(i));
        assert_eq!(f["data"]["cid"], json!(g));
        assert_eq!(f["data"]["msg"], json!(format!("m{i}")));
    }
    z.expect_silence(300).await;
}

/// Delivery state is saved at logout and at an account switch, not only periodically: a
/// device logging in right afterwards is not sent those messages again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_state_is_saved_at_logout_and_account_switch() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut reg = server.v1().await;
    register_v1(&mut reg, "carol@example.com", "Carol", "pw-c").await;

    // Logout.
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "one").await;
    assert_eq!(b.client.expect_code(0).await["cid"], ack["cid"]);
    b.client.request(&json!({"code": 109}), 110).await;
    let mut b2 = server.v1().await;
    let l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "saved at logout: {:?}", l.missed);

    // Account switch.
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "two").await;
    assert_eq!(b2.expect_code(0).await["cid"], ack["cid"]);
    login_v1(&mut b2, "carol@example.com", "pw-c").await;
    let mut b3 = server.v1().await;
    let l = login_v1(&mut b3, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "saved at the switch: {:?}", l.missed);
}

/// "When a connection breaks, messages the server could not finish writing to it do not
/// count as delivered and are pushed again at the next login."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_not_written_to_a_broken_connection_are_pushed_at_the_next_login() {
    const N: u64 = 600;
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let bob = b.ocid;

    // Bob does not read; 600 x 16 kB is far more than the socket buffers hold, so the server
    // is still writing to him when his device vanishes.
    for i in 1..=N {
        let msg = format!("m{i}:{}", "x".repeat(16_000));
        a.client
            .feed_json(&json!({"code": 0, "sender": {"private_id": bob}, "msg": msg}))
            .await;
        if i.is_multiple_of(16) {
            a.client.flush().await;
        }
    }
    a.client.flush().await;
    for _ in 0..N {
        a.client.expect_code(103).await;
    }
    drop(b);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut b2 = server.v1().await;
    let mut l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    // The login sync carries up to `catch_up_bytes` (4 MiB); the rest follows it as frames.
    while let Some(f) = b2.recv_within(Duration::from_secs(2)).await {
        assert_eq!(f["code"], json!(0), "{}", f["code"]);
        l.missed.push(f);
    }
    let idx: Vec<u64> = l.missed.iter().map(|f| int(&f["index"])).collect();
    let first = *idx
        .first()
        .unwrap_or_else(|| panic!("nothing pushed again"));
    assert!(
        first > 1,
        "what was written before the break counts as delivered"
    );
    assert_eq!(
        idx,
        (first..=N).collect::<Vec<_>>(),
        "the unwritten tail, in order, once"
    );
    for f in &l.missed {
        let i = int(&f["index"]);
        assert!(string(&f["msg"]).starts_with(&format!("m{i}:")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_skips_what_the_client_says_it_holds() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let token = b.token.clone();
    b.client.close().await;
    for i in 1..=4 {
        send_v1(
            &mut a.client,
            json!({"private_id": b.ocid}),
            &format!("m{i}"),
        )
        .await;
    }
    // Bob's client already has 1 and 2 (say the server crashed before recording that).
    let mut c = server.v1().await;
    let r = c
        .request(
            &json!({"code": 101, "token": token, "since": [{"private_id": a.ocid, "index": 2}]}),
            102,
        )
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    let missed = read_sync_v1(&mut c).await;
    let indexes: Vec<u64> = missed.iter().map(|m| int(&m["index"])).collect();
    assert_eq!(indexes, [3, 4]);
    // `since` is validated like any field.
    let mut d = server.v1().await;
    let r = d
        .request(
            &json!({"code": 101, "token": token, "since": [{"index": 2}], "request_id": 1}),
            100,
        )
        .await;
    let m = assert_error(&r, "missing_field", 1002, json!(101));
    assert!(m.contains("group_id"), "{m}");
    let r = d
        .request(
            &json!({"code": 101, "token": token, "since": {"x": 1}, "request_id": 2}),
            100,
        )
        .await;
    let m = assert_error(&r, "invalid_field", 1003, json!(101));
    assert!(m.contains("`since`"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v0_resume_skips_what_the_client_says_it_holds() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut z = server.v0().await;
    let z_ocid = register_v0(&mut z, "zed@example.com", "pw-z").await;
    let login = login_v0(&mut z, &json!(z_ocid), "pw-z").await;
    z.close().await;
    let z_id: u64 = z_ocid.parse().expect("numeric");
    for i in 1..=3 {
        send_v1(&mut a.client, json!({"private_id": z_id}), &format!("m{i}")).await;
    }
    // The first chat of a fresh server is chat 1 (v0 frames carry it as `data.cid`).
    let mut z = server.v0().await;
    let r = z
        .request(
            &json!({"code": 101, "data": {"token": login.token, "since": {"1": 1}}}),
            102,
        )
        .await;
    assert_eq!(r["data"]["state"], json!(0), "{r}");
    let (missed, _) = read_undelivered_v0(&mut z).await;
    let indexes: Vec<u64> = missed.iter().map(|m| int(&m["data"]["index"])).collect();
    assert_eq!(indexes, [2, 3]);
    assert!(
        missed.iter().all(|m| m["data"]["cid"] == json!(1)),
        "{missed:?}"
    );
}
