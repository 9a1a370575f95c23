//! A restart on the same data directory keeps accounts, sessions, chats, messages, indexes
//! and delivery state.

use crate::common::*;
use crate::driver::{JsonDialect, for_each_dialect};
use natter_client::{Page, Target};
use serde_json::{Value, json};

for_each_dialect!(a_restart_keeps_history_tokens_and_indexes);

/// Every dialect: across a restart, the connection is closed with 1001, the token resumes on
/// a new connection with nothing missed, history is unchanged, and the chat's indexes go on.
async fn a_restart_keeps_history_tokens_and_indexes<D: JsonDialect>() {
    let mut server = TestServer::start().await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut a = D::connect(&server).await;
    let alice = a.register("alice@example.com", "Alice", "pw-a").await;
    a.login(alice, "alice@example.com", "pw-a").await;
    let to_bob = Target::Private(b.ocid);
    for i in 1..=3 {
        let ack = a.send(to_bob, &format!("a{i}")).await;
        assert_eq!(b.client.expect_code(0).await["cid"], json!(ack.id));
    }
    send_v1(&mut b.client, json!({"private_id": alice}), "b1").await;
    let m = a.recv_message().await;
    a.assert_message(&m, to_bob, b.ocid, 4, "b1");
    let (before, more) = a.history(to_bob, Page::default()).await;
    assert_eq!(before.len(), 4);
    assert!(!more);

    server.restart().await;
    match a.client().wait_closed().await {
        Ended::Close(code) => assert_eq!(code, Some(1001), "shutdown close code"),
        other => panic!("expected a close frame with 1001, got {other:?}"),
    }
    a.reconnect(&server).await;
    let token = a.token();
    let missed = a.resume(alice, &token).await;
    assert!(missed.is_empty(), "{}: {missed:?}", D::NAME);
    let (after, _) = a.history(to_bob, Page::default()).await;
    assert_eq!(
        after, before,
        "history is unchanged: ids, indexes, texts and times"
    );

    let mut b2 = server.v1().await;
    assert!(resume_v1(&mut b2, &b.token).await.missed.is_empty());
    let ack = a.send(to_bob, "after the restart").await;
    assert_eq!(ack.index, 5);
    assert!(ack.id > before[3].id, "message ids keep rising");
    let f = b2.expect_code(0).await;
    assert_eq!(
        (f["cid"].clone(), f["index"].clone()),
        (json!(ack.id), json!(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart() {
    let mut server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    // A private conversation and a group.
    for i in 1..=3 {
        send_v1(
            &mut a.client,
            json!({"private_id": b.ocid}),
            &format!("a{i}"),
        )
        .await;
        b.client.expect_code(0).await;
    }
    for i in 1..=2 {
        send_v1(
            &mut b.client,
            json!({"private_id": a.ocid}),
            &format!("b{i}"),
        )
        .await;
        a.client.expect_code(0).await;
    }
    let g = create_group_v1(&mut a.client, &[b.ocid]).await;
    send_v1(&mut a.client, json!({"group_id": g}), "g1").await;
    b.client.expect_code(0).await;
    send_v1(&mut b.client, json!({"group_id": g}), "g2").await;
    a.client.expect_code(0).await;

    // Bob goes offline; Alice writes to him.
    b.client.close().await;
    let p6 = send_v1(
        &mut a.client,
        json!({"private_id": b.ocid}),
        "while you were out",
    )
    .await;
    assert_eq!(p6["index"], json!(6));
    let g3 = send_v1(&mut a.client, json!({"group_id": g}), "g3").await;
    assert_eq!(g3["index"], json!(3));

    let private_before = history_v1(&mut a.client, json!({"private_id": b.ocid})).await;
    let group_before = history_v1(&mut a.client, json!({"group_id": g})).await;
    assert_eq!(indexes(&private_before), [1, 2, 3, 4, 5, 6]);
    assert_eq!(indexes(&group_before), [1, 2, 3]);

    // Restart: connected clients are closed with 1001.
    server.restart().await;
    match a.client.wait_closed().await {
        Ended::Close(code) => assert_eq!(code, Some(1001), "shutdown close code"),
        other => panic!("expected a close frame with 1001, got {other:?}"),
    }

    // Alice resumes with her old token; she missed nothing.
    let mut a2 = server.v1().await;
    let r = resume_v1(&mut a2, &a.token).await;
    assert_eq!(r.ocid, a.ocid);
    assert!(r.missed.is_empty(), "{:?}", r.missed);

    // History is unchanged: same ids, indexes, texts and times.
    let private_after = history_v1(&mut a2, json!({"private_id": b.ocid})).await;
    let group_after = history_v1(&mut a2, json!({"group_id": g})).await;
    assert_eq!(private_after["messages"], private_before["messages"]);
    assert_eq!(group_after["messages"], group_before["messages"]);

    // Bob logs in with his password and gets what he missed before the restart.
    let mut b2 = server.v1().await;
    let l = login_v1(&mut b2, "bob@example.com", "pw-b").await;
    assert_eq!(l.ocid, b.ocid);
    let got: Vec<(Value, Value)> = l
        .missed
        .iter()
        .map(|f| (f["cid"].clone(), f["msg"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (p6["cid"].clone(), json!("while you were out")),
            (g3["cid"].clone(), json!("g3"))
        ]
    );
    // His old token still works too.
    let mut b3 = server.v1().await;
    let r = resume_v1(&mut b3, &b.token).await;
    assert_eq!(r.ocid, b.ocid);

    // New messages continue the sequences; ids keep rising.
    let last_cid = int(&g3["cid"]);
    let ack = send_v1(&mut a2, json!({"private_id": b.ocid}), "after the restart").await;
    assert_eq!(ack["index"], json!(7));
    assert!(int(&ack["cid"]) > last_cid, "message ids keep rising");
    for rx in [&mut b2, &mut b3] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
        assert_eq!(f["index"], json!(7));
    }
    let ack = send_v1(&mut b2, json!({"group_id": g}), "g4").await;
    assert_eq!(ack["index"], json!(4));
    let f = a2.expect_code(0).await;
    assert_eq!(f["sender"], json!({"ocid": b.ocid, "group_id": g}));
    assert_eq!(f["index"], json!(4));

    // Accounts: the old ones still exist, and new ocids continue the sequence.
    let mut reg = server.v1().await;
    let carol = register_v1(&mut reg, "carol@example.com", "Carol", "pw-c").await;
    assert_eq!(carol, b.ocid + 1);
    let r = reg
        .request(
            &json!({"code": 4, "email": "ALICE@example.com", "password": "x", "name": "A"}),
            5,
        )
        .await;
    assert_eq!(r["state"], json!(2), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_delivery_state_survive_a_restart() {
    let mut server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut z = server.v0().await;
    let zed = register_v0(&mut z, "zed@example.com", "pw-z").await;
    let zl = login_v0(&mut z, &json!(zed), "pw-z").await;
    let zed_n: u64 = zed.parse().expect("digits");

    // Bob reads a message live, then the server stops (his connection still open).
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "seen").await;
    b.client.expect_code(0).await;
    // Zed gets one live and misses one.
    let zack = send_v1(&mut a.client, json!({"private_id": zed_n}), "z seen").await;
    let f = z.expect_code(0).await;
    assert_eq!(f["data"]["mid"], zack["cid"]);
    z.close().await;
    let zmissed = send_v1(&mut a.client, json!({"private_id": zed_n}), "z missed").await;
    // Alice logs out: her token is revoked for good.
    a.client.request(&json!({"code": 109}), 110).await;

    server.restart().await;

    // Delivery state was saved at shutdown: Bob's live message is not pushed again.
    let mut b2 = server.v1().await;
    let r = resume_v1(&mut b2, &b.token).await;
    assert!(
        r.missed.is_empty(),
        "delivered before the restart, pushed again: {:?}",
        r.missed
    );
    let h = history_v1(&mut b2, json!({"private_id": a.ocid})).await;
    assert_eq!(h["messages"][0]["cid"], ack["cid"]);

    // Zed (v0, by token) gets only the message he missed.
    let mut z2 = server.v0().await;
    let r = z2
        .request(&json!({"code": 101, "data": {"token": zl.token}}), 102)
        .await;
    assert_eq!(r["data"], json!({"state": 0, "ocId": zed}), "{r}");
    let (missed, batches) = read_undelivered_v0(&mut z2).await;
    assert_eq!(batches, [1]);
    assert_eq!(missed[0]["data"]["mid"], zmissed["cid"]);
    assert_eq!(missed[0]["data"]["index"], json!(2));

    // Alice's revoked token stays revoked; her password still works.
    let mut a2 = server.v1().await;
    let r = a2
        .request(&json!({"code": 101, "token": a.token}), 102)
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    let l = login_v1(&mut a2, "alice@example.com", "pw-a").await;
    assert_eq!(l.ocid, a.ocid);
    assert!(l.missed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_restarts_keep_indexes_gapless() {
    let mut server = TestServer::start().await;
    let mut reg = server.v1().await;
    let alice = register_v1(&mut reg, "alice@example.com", "Alice", "pw-a").await;
    let bob = register_v1(&mut reg, "bob@example.com", "Bob", "pw-b").await;
    let mut expected_index = 0;
    for round in 0..3 {
        let mut a = server.v1().await;
        login_v1(&mut a, "alice@example.com", "pw-a").await;
        for i in 0..5 {
            expected_index += 1;
            let ack = send_v1(&mut a, json!({"private_id": bob}), &format!("r{round}-{i}")).await;
            assert_eq!(ack["index"], json!(expected_index));
        }
        server.restart().await;
    }
    // Bob missed all 15, across three server lifetimes.
    let mut b = server.v1().await;
    let l = login_v1(&mut b, "bob@example.com", "pw-b").await;
    let idx: Vec<u64> = l.missed.iter().map(|f| int(&f["index"])).collect();
    assert_eq!(idx, (1..=15).collect::<Vec<_>>());
    assert!(
        l.missed
            .iter()
            .all(|f| f["sender"] == json!({"ocid": alice, "private_id": bob}))
    );
    server.stop().await;
}
