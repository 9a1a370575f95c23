//! Delivery state per device, and the listener's connection cap, over the wire.

use crate::common::*;
use natter_client::ws;
use serde_json::json;
use std::time::Duration;

/// Long enough for connections to have written their delivery marks (once a second).
const SAVE_INTERVAL: Duration = Duration::from_millis(2500);

/// Resume over v0 with a token that must be valid; returns the parsed missed messages.
async fn resume_v0(c: &mut Client, token: &str) -> Vec<serde_json::Value> {
    let r = c
        .request(&json!({"code": 101, "data": {"token": token}}), 102)
        .await;
    assert_eq!(r["data"]["state"], json!(0), "v0 resume failed: {r}");
    read_undelivered_v0(c).await.0
}

/// A device that was away while another device of the account received messages is sent
/// exactly those messages when it resumes; the device that received them is sent nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_device_gets_what_it_missed_while_another_device_was_online() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut phone = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    // The chat exists, and the phone has recorded its first message, before the other
    // devices log in: they start after it.
    send_v1(&mut a.client, json!({"private_id": phone.ocid}), "m0").await;
    phone.client.expect_code(0).await;
    tokio::time::sleep(SAVE_INTERVAL).await;
    let mut laptop = server.v1().await;
    let l = login_v1(&mut laptop, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);
    let laptop_token = l.token;
    let mut tablet = server.v0().await;
    let l = login_v0(&mut tablet, &json!(phone.ocid), "pw-b").await;
    assert!(l.missed.is_empty(), "{:?}", l.missed);
    let tablet_token = l.token;
    laptop.close().await;
    tablet.close().await;

    let mut acks = Vec::new();
    for i in 1..=3 {
        let ack = send_v1(
            &mut a.client,
            json!({"private_id": phone.ocid}),
            &format!("m{i}"),
        )
        .await;
        assert_eq!(phone.client.expect_code(0).await["cid"], ack["cid"]);
        acks.push(ack);
    }
    tokio::time::sleep(SAVE_INTERVAL).await;

    // The laptop (v1) and the tablet (v0) were away: each is sent the three.
    let mut laptop = server.v1().await;
    let missed = resume_v1(&mut laptop, &laptop_token).await.missed;
    let cids: Vec<_> = missed.iter().map(|m| m["cid"].clone()).collect();
    let acked: Vec<_> = acks.iter().map(|a| a["cid"].clone()).collect();
    assert_eq!(cids, acked, "the laptop gets exactly what it missed");
    let mut tablet = server.v0().await;
    let missed = resume_v0(&mut tablet, &tablet_token).await;
    let mids: Vec<_> = missed.iter().map(|m| m["data"]["mid"].clone()).collect();
    assert_eq!(mids, acked, "the tablet gets exactly what it missed");

    // The phone, which received them live, is sent nothing when it resumes; nor is a new
    // device (it starts where the account's furthest device got).
    let phone_token = phone.token.clone();
    phone.client.close().await;
    let mut phone = server.v1().await;
    assert!(resume_v1(&mut phone, &phone_token).await.missed.is_empty());
    let mut fresh = server.v1().await;
    assert!(
        login_v1(&mut fresh, "bob@example.com", "pw-b")
            .await
            .missed
            .is_empty()
    );
    // And the laptop, having been sent them, is not sent them again.
    laptop.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut laptop = server.v1().await;
    assert!(
        resume_v1(&mut laptop, &laptop_token)
            .await
            .missed
            .is_empty()
    );
}

/// A new device's starting point is recorded at its login: resuming it at once (before it
/// has written any delivery mark) does not replay the chats' history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_resumes_from_where_it_started() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut reg = server.v1().await;
    let bob = register_v1(&mut reg, "bob@example.com", "Bob", "pw-b").await;
    for i in 1..=5 {
        send_v1(&mut a.client, json!({"private_id": bob}), &format!("m{i}")).await;
    }
    let mut first = server.v1().await;
    assert_eq!(
        login_v1(&mut first, "bob@example.com", "pw-b")
            .await
            .missed
            .len(),
        5
    );
    first.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut second = server.v1().await;
    let l = login_v1(&mut second, "bob@example.com", "pw-b").await;
    assert!(l.missed.is_empty());
    // Gone at once, without a logout.
    drop(second);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = server.v1().await;
    let missed = resume_v1(&mut again, &l.token).await.missed;
    assert!(missed.is_empty(), "history replayed: {missed:?}");
    // What comes later reaches it.
    let ack = send_v1(&mut a.client, json!({"private_id": bob}), "m6").await;
    assert_eq!(again.expect_code(0).await["cid"], ack["cid"]);
}

/// Connections beyond `max_connections` are refused at once (503), and a slot comes back when
/// a connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_at_once() {
    let server = TestServer::start_with(|c| c.max_connections = 2).await;
    let mut one = server.v1().await;
    let _two = server.v0().await;
    let endpoint = ws::Endpoint::at(server.addr, "/ws");
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        endpoint.connect(&ws::Options::default()),
    )
    .await
    .expect("refused at once, not after a timeout");
    match refused {
        Err(natter_client::Error::UpgradeRefused { status, .. }) => assert_eq!(status, 503),
        Err(other) => panic!("expected a 503 refusal, got {other:?}"),
        Ok(_) => panic!("expected a 503 refusal, got a connection"),
    }
    // The two connections still work.
    one.request(&json!({"code": 107}), 108).await;
    one.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut three = server.v1().await;
    three.request(&json!({"code": 107}), 108).await;
}
