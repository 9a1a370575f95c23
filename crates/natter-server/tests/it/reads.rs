//! Read state and message types through the v1 wire: read receipts (codes 184, 185, 188)
//! across two devices of one account and to the other side of a private chat, the chat list
//! (186, 187) ordered by activity with unread counts, the unread total at login (106), and the
//! type a message carries (code 0 `type`).

use crate::common::*;
use serde_json::{Value, json};

/// Send `n` texts from `from` to a chat, passing over what else arrives meanwhile.
async fn send_n(from: &mut User, sender: Value, n: usize) {
    for i in 0..n {
        let text = format!("m{i}");
        from.client
            .send_json(&json!({"code": 0, "sender": sender, "msg": text}))
            .await;
        loop {
            let f = from.client.recv().await;
            if f["code"] == json!(103) {
                break;
            }
        }
    }
}

/// The next frame with `code`, passing over others.
async fn next_code(c: &mut Client, code: i64) -> Value {
    loop {
        let f = c.recv().await;
        if f["code"] == json!(code) {
            return f;
        }
    }
}

#[tokio::test]
async fn read_receipts_reach_the_readers_devices_and_the_private_peer() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut alice2 = server.v1().await;
    login_v1(&mut alice2, "alice@example.com", "pw-a").await;

    send_n(&mut bob, json!({"private_id": alice.ocid}), 3).await;
    for c in [&mut alice.client, &mut alice2] {
        for _ in 0..3 {
            c.expect_code(0).await;
        }
    }

    let r = alice
        .client
        .request(
            &json!({"code": 184, "private_id": bob.ocid, "index": 2, "request_id": "r"}),
            185,
        )
        .await;
    assert_eq!(
        (
            r["private_id"].clone(),
            r["index"].clone(),
            r["request_id"].clone()
        ),
        (json!(bob.ocid), json!(2), json!("r")),
        "{r}"
    );
    // Alice's other device names the chat by Bob; Bob names it by Alice.
    let push = alice2.expect_code(188).await;
    assert_eq!(
        (
            push["private_id"].clone(),
            push["ocid"].clone(),
            push["index"].clone()
        ),
        (json!(bob.ocid), json!(alice.ocid), json!(2)),
        "{push}"
    );
    let push = bob.client.expect_code(188).await;
    assert_eq!(
        (
            push["private_id"].clone(),
            push["ocid"].clone(),
            push["index"].clone()
        ),
        (json!(alice.ocid), json!(alice.ocid), json!(2)),
        "{push}"
    );
    alice.client.expect_silence(100).await;

    // Never lowered; never past the last message.
    let bob_ocid = bob.ocid;
    drop(bob);
    let r = alice
        .client
        .request(
            &json!({"code": 184, "private_id": bob_ocid, "index": 1}),
            185,
        )
        .await;
    assert_eq!(r["index"], json!(2), "{r}");
    let r = alice
        .client
        .request(
            &json!({"code": 184, "private_id": bob_ocid, "index": 99}),
            185,
        )
        .await;
    assert_eq!(r["index"], json!(3), "{r}");

    // A chat that is not one's own.
    let carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut bob = user_v1(&server, "bob2@example.com", "Bob", "pw-b").await;
    let group = create_group_v1(&mut bob.client, &[carol.ocid]).await;
    let r = alice
        .client
        .request(&json!({"code": 184, "group_id": group, "index": 1}), 100)
        .await;
    assert_error(&r, "not_a_member", 4002, json!(184));
}

#[tokio::test]
async fn the_chat_list_is_ordered_by_activity_with_unread_counts() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;

    let group = create_group_v1(&mut alice.client, &[bob.ocid, carol.ocid]).await;
    send_n(&mut bob, json!({"private_id": alice.ocid}), 2).await;
    // Alice's own messages are never unread to her.
    send_n(&mut alice, json!({"group_id": group}), 1).await;
    send_n(&mut carol, json!({"group_id": group}), 3).await;

    alice.client.send_json(&json!({"code": 186})).await;
    let list = next_code(&mut alice.client, 187).await;
    let chats = list["chats"].as_array().expect("chats");
    assert_eq!(chats.len(), 2, "{list}");
    // The group was active last.
    assert_eq!(chats[0]["group_id"], json!(group), "{list}");
    assert_eq!(
        (chats[0]["last_index"].clone(), chats[0]["unread"].clone()),
        (json!(4), json!(3)),
        "{list}"
    );
    assert_eq!(chats[0]["last"]["msg"], json!("m2"));
    assert_eq!(chats[0]["last"]["sender"]["ocid"], json!(carol.ocid));
    assert_eq!(chats[1]["private_id"], json!(bob.ocid), "{list}");
    assert_eq!(
        (chats[1]["unread"].clone(), chats[1]["read"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(list["unread"], json!(5), "{list}");

    // Bob writes again: his chat moves to the top.
    send_n(&mut bob, json!({"private_id": alice.ocid}), 1).await;
    alice
        .client
        .send_json(&json!({"code": 184, "group_id": group, "index": 3}))
        .await;
    next_code(&mut alice.client, 185).await;
    alice.client.send_json(&json!({"code": 186})).await;
    let list = next_code(&mut alice.client, 187).await;
    let chats = list["chats"].as_array().expect("chats");
    assert_eq!(chats[0]["private_id"], json!(bob.ocid), "{list}");
    assert_eq!(chats[0]["unread"], json!(3));
    assert_eq!(
        (chats[1]["read"].clone(), chats[1]["unread"].clone()),
        (json!(3), json!(1)),
        "{list}"
    );
    assert_eq!(list["unread"], json!(4));

    // The unread total is told at login, after the missed messages.
    let mut again = server.v1().await;
    let r = again
        .request(
            &json!({"code": 6, "login_type": 0, "account": "alice@example.com", "password": "pw-a", "ext": 1}),
            7,
        )
        .await;
    assert_eq!(r["state"], json!(0));
    let sync = read_sync_all(&mut again).await;
    assert_eq!(sync.done["unread"], json!(4), "{}", sync.done);
}

#[tokio::test]
async fn messages_keep_their_type() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    let to_bob = json!({"private_id": bob.ocid});
    alice
        .client
        .request(
            &json!({"code": 0, "sender": to_bob, "msg": "a topic", "type": 3}),
            103,
        )
        .await;
    let m = bob.client.expect_code(0).await;
    assert_eq!(
        (m["msg"].clone(), m["type"].clone()),
        (json!("a topic"), json!(3))
    );
    send_v1(&mut alice.client, to_bob.clone(), "plain").await;
    let m = bob.client.expect_code(0).await;
    assert!(m.get("type").is_none(), "a normal message has no type: {m}");

    let history = history_v1(&mut bob.client, json!({"private_id": alice.ocid})).await;
    let types: Vec<Value> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m.get("type").cloned().unwrap_or(json!(1)))
        .collect();
    assert_eq!(types, [json!(3), json!(1)]);

    // The system type is the server's own, and types stop at 7.
    for bad in [0, 8] {
        let r = alice
            .client
            .request(
                &json!({"code": 0, "sender": to_bob, "msg": "x", "type": bad}),
                100,
            )
            .await;
        assert!(
            assert_error(&r, "invalid_field", 1003, json!(0)).contains("`type`"),
            "{r}"
        );
    }
}
