//! Behaviour every dialect has, written once over the driver ([`Dialect`]): two accounts chat
//! privately whatever dialect each speaks (every pair of dialects), and every device of an
//! account receives every message of its chats, its own sent from another device included.

use crate::common::*;
use crate::driver::{Dialect, JsonDialect, V0, V1, for_each_dialect_and_pipe};
use natter_client::{Message, Page, Target};
use serde_json::json;

/// A private chat between an account on `A` and one on `B`: each receives what the other
/// sends, in index order, and both read the same history.
async fn private_chat<A: JsonDialect, B: JsonDialect>() {
    let server = TestServer::start().await;
    let mut a = A::connect(&server).await;
    let alice = a.register("alice@example.com", "Alice", "pw-a").await;
    assert!(a.login(alice, "alice@example.com", "pw-a").await.is_empty());
    let mut b = B::connect(&server).await;
    let bob = b.register("bob@example.com", "Bob", "pw-b").await;
    assert!(b.login(bob, "bob@example.com", "pw-b").await.is_empty());

    let first = a.send(Target::Private(bob), "hi bob").await;
    assert_eq!(first.index, 1);
    let m = b.recv_message().await;
    b.assert_message(&m, Target::Private(alice), alice, 1, "hi bob");
    assert_eq!(m.id, first.id, "the ack's id is the delivered message's");
    // The sender never gets its own message back.
    a.expect_silence(200).await;

    let reply = b.send(Target::Private(alice), "hi alice").await;
    assert_eq!(reply.index, 2);
    assert!(reply.id > first.id, "message ids increase");
    let m = a.recv_message().await;
    a.assert_message(&m, Target::Private(bob), bob, 2, "hi alice");
    assert_eq!(m.id, reply.id);
    b.expect_silence(200).await;

    // Both read the same two messages.
    let (ha, more) = a.history(Target::Private(bob), Page::default()).await;
    assert!(!more);
    let (hb, _) = b.history(Target::Private(alice), Page::default()).await;
    let view = |h: &[Message]| {
        h.iter()
            .map(|m| (m.index, m.id, m.sender, m.text.clone(), m.time))
            .collect::<Vec<_>>()
    };
    assert_eq!(view(&ha), view(&hb), "{} and {}", A::NAME, B::NAME);
    let read: Vec<_> = ha
        .iter()
        .map(|m| (m.index, m.id, m.sender, m.text.as_str()))
        .collect();
    assert_eq!(
        read,
        [
            (1, first.id, alice, "hi bob"),
            (2, reply.id, bob, "hi alice")
        ]
    );
    for m in &ha {
        a.assert_chat(m.chat, Target::Private(bob));
        assert_recent_time(&json!(m.time));
    }
    for m in &hb {
        b.assert_chat(m.chat, Target::Private(alice));
    }
}

mod a_private_chat_between_dialects {
    use super::{V0, V1, private_chat};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v1_and_v1() {
        private_chat::<V1, V1>().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v1_and_v0() {
        private_chat::<V1, V0>().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v0_and_v1() {
        private_chat::<V0, V1>().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v0_and_v0() {
        private_chat::<V0, V0>().await;
    }
}

for_each_dialect_and_pipe!(every_device_receives_every_message);

/// Two devices of one account on `D`: a message to the account reaches both; one device's
/// message reaches the other device and the peer, never the sending device; the same in a
/// group.
async fn every_device_receives_every_message<D: Dialect>() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b1 = D::connect(&server).await;
    let bob = b1.register("bob@example.com", "Bob", "pw-b").await;
    b1.login(bob, "bob@example.com", "pw-b").await;
    let mut b2 = D::connect(&server).await;
    assert!(b2.login(bob, "bob@example.com", "pw-b").await.is_empty());

    // Alice -> Bob: both devices get it.
    let ack = send_v1(&mut a.client, json!({"private_id": bob}), "hi bob").await;
    for d in [&mut b1, &mut b2] {
        let m = d.recv_message().await;
        d.assert_message(&m, Target::Private(a.ocid), a.ocid, 1, "hi bob");
        assert_eq!(m.id, int(&ack["cid"]));
    }

    // Bob's first device sends: it gets the ack only; his second device and Alice get the
    // message.
    let sent = b1.send(Target::Private(a.ocid), "from device 1").await;
    assert_eq!(sent.index, 2);
    let m = b2.recv_message().await;
    b2.assert_message(&m, Target::Private(a.ocid), bob, 2, "from device 1");
    assert_eq!(m.id, sent.id);
    let f = a.client.expect_code(0).await;
    assert_eq!(f["cid"], json!(sent.id));
    assert_eq!(f["sender"], json!({"ocid": bob, "private_id": a.ocid}));
    b1.expect_silence(300).await;

    // The same in a group.
    let g = create_group_v1(&mut a.client, &[bob]).await;
    let sent = b2.send(Target::Group(g), "from device 2").await;
    assert_eq!(sent.index, 1);
    let m = b1.recv_message().await;
    b1.assert_message(&m, Target::Group(g), bob, 1, "from device 2");
    assert_eq!(m.id, sent.id);
    let f = a.client.expect_code(0).await;
    assert_eq!(f["sender"], json!({"ocid": bob, "group_id": g}));
    b2.expect_silence(300).await;
    a.client.expect_silence(0).await;
}
