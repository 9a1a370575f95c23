//! Friends, presence and typing on one node, through the v1 wire (codes 111-123): requests and
//! their pushes, answers, the friend list with who is online, presence pushes as friends come
//! and go, removal, typing in private and group chats, and every error these requests have.

use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_friend_request_is_pushed_listed_accepted_and_shows_presence() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    let r = alice
        .client
        .request(
            &json!({"code": 111, "ocid": bob.ocid, "msg": "it's alice", "request_id": 7}),
            112,
        )
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    assert_eq!(
        (r["ocid"].clone(), r["request_id"].clone()),
        (json!(bob.ocid), json!(7))
    );
    assert_recent_time(&r["time"]);
    let push = bob.client.expect_code(119).await;
    assert_eq!(
        (push["ocid"].clone(), push["msg"].clone()),
        (json!(alice.ocid), json!("it's alice"))
    );
    assert_recent_time(&push["time"]);

    // The request waits in Bob's list (also for a device that was offline when it came).
    let mut bob2 = server.v1().await;
    resume_v1(&mut bob2, &bob.token).await;
    let list = bob2.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"], json!([]));
    let requests = list["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 1, "{list}");
    assert_eq!(
        (requests[0]["ocid"].clone(), requests[0]["msg"].clone()),
        (json!(alice.ocid), json!("it's alice"))
    );
    assert!((now_s() - requests[0]["time"].as_i64().expect("time")).abs() < 60);

    // Bob accepts on his second device: Alice and Bob's first device are told.
    let r = bob2
        .request(
            &json!({"code": 113, "ocid": alice.ocid, "accept": true}),
            114,
        )
        .await;
    assert_eq!(
        (r["ocid"].clone(), r["accept"].clone()),
        (json!(alice.ocid), json!(true))
    );
    let update = alice.client.expect_code(120).await;
    assert_eq!(
        (
            update["ocid"].clone(),
            update["state"].clone(),
            update["by"].clone()
        ),
        (json!(bob.ocid), json!("accepted"), json!(bob.ocid))
    );
    expect_presence(&mut alice.client, bob.ocid, true).await;
    let update = bob.client.expect_code(120).await;
    assert_eq!(
        (update["ocid"].clone(), update["state"].clone()),
        (json!(alice.ocid), json!("accepted"))
    );
    let p = bob.client.expect_code(123).await;
    assert_eq!(p["ocid"], json!(alice.ocid));
    let p = bob2.expect_code(123).await;
    assert_eq!(p["ocid"], json!(alice.ocid));

    // Both lists show the friendship, with presence.
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["requests"], json!([]));
    let friends = list["friends"].as_array().expect("friends");
    assert_eq!(friends.len(), 1, "{list}");
    assert_eq!(
        (friends[0]["ocid"].clone(), friends[0]["online"].clone()),
        (json!(bob.ocid), json!(true))
    );
    assert!(friends[0]["since"].as_i64().expect("since") > 0);

    // Bob goes offline only when his last connection leaves.
    bob2.close().await;
    alice.client.expect_silence(300).await;
    bob.client.close().await;
    expect_presence(&mut alice.client, bob.ocid, false).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"][0]["online"], json!(false), "{list}");
    // And online again when he comes back.
    let mut bob3 = server.v1().await;
    resume_v1(&mut bob3, &bob.token).await;
    expect_presence(&mut alice.client, bob.ocid, true).await;
    // Alice leaving is told to Bob's new connection (it loaded his friends at login).
    alice.client.close().await;
    expect_presence(&mut bob3, alice.ocid, false).await;
}

#[tokio::test]
async fn crossed_requests_make_friends_and_removal_ends_presence() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;

    // Bob asks Alice, then Alice asks Bob: that is an answer.
    let r = bob
        .client
        .request(&json!({"code": 111, "ocid": alice.ocid}), 112)
        .await;
    assert_eq!(r["state"], json!(0));
    let push = alice.client.expect_code(119).await;
    assert_eq!(
        (push["ocid"].clone(), push["msg"].clone()),
        (json!(bob.ocid), json!(""))
    );
    let r = alice
        .client
        .request(&json!({"code": 111, "ocid": bob.ocid, "msg": "yes"}), 112)
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    let update = bob.client.expect_code(120).await;
    assert_eq!(
        (
            update["ocid"].clone(),
            update["state"].clone(),
            update["by"].clone()
        ),
        (json!(alice.ocid), json!("accepted"), json!(alice.ocid))
    );
    assert_eq!(bob.client.expect_code(123).await["ocid"], json!(alice.ocid));
    assert_eq!(alice.client.expect_code(123).await["ocid"], json!(bob.ocid));
    // Asking again changes nothing.
    let r = alice
        .client
        .request(&json!({"code": 111, "ocid": bob.ocid}), 112)
        .await;
    assert_eq!(r["state"], json!(2), "{r}");
    bob.client.expect_silence(200).await;

    // Carol is rejected: she is told, and nothing is left to answer.
    carol
        .client
        .request(
            &json!({"code": 111, "ocid": alice.ocid, "msg": "me too"}),
            112,
        )
        .await;
    alice.client.expect_code(119).await;
    let r = alice
        .client
        .request(
            &json!({"code": 113, "ocid": carol.ocid, "accept": false}),
            114,
        )
        .await;
    assert_eq!(r["accept"], json!(false));
    let update = carol.client.expect_code(120).await;
    assert_eq!(
        (update["ocid"].clone(), update["state"].clone()),
        (json!(alice.ocid), json!("rejected"))
    );
    let r = alice
        .client
        .request(
            &json!({"code": 113, "ocid": carol.ocid, "accept": true, "request_id": "x"}),
            100,
        )
        .await;
    assert_error(&r, "no_such_request", 4005, json!(113));
    assert_eq!(r["request_id"], json!("x"));
    carol.client.close().await;
    // Carol is no friend of Alice's: her leaving is not told to Alice.
    alice.client.expect_silence(200).await;

    // Bob removes Alice: both are told, and presence is no longer pushed.
    let r = bob
        .client
        .request(&json!({"code": 115, "ocid": alice.ocid}), 116)
        .await;
    assert_eq!(r["ocid"], json!(alice.ocid));
    let update = alice.client.expect_code(120).await;
    assert_eq!(
        (
            update["ocid"].clone(),
            update["state"].clone(),
            update["by"].clone()
        ),
        (json!(bob.ocid), json!("removed"), json!(bob.ocid))
    );
    let r = bob
        .client
        .request(&json!({"code": 115, "ocid": alice.ocid}), 100)
        .await;
    assert_error(&r, "not_friends", 4006, json!(115));
    bob.client.close().await;
    alice.client.expect_silence(300).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(
        list,
        json!({"code": 118, "time": list["time"], "friends": [], "requests": []})
    );
}

#[tokio::test]
async fn bad_friend_requests_get_errors() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let r = alice
        .client
        .request(&json!({"code": 111, "ocid": alice.ocid}), 100)
        .await;
    assert_error(&r, "invalid_field", 1003, json!(111));
    let r = alice
        .client
        .request(&json!({"code": 111, "ocid": 999_999}), 100)
        .await;
    assert_error(&r, "no_such_account", 4000, json!(111));
    let r = alice
        .client
        .request(
            &json!({"code": 111, "ocid": 999_999, "msg": "x".repeat(257)}),
            100,
        )
        .await;
    assert_error(&r, "invalid_field", 1003, json!(111));
    let r = alice
        .client
        .request(&json!({"code": 113, "ocid": 5}), 100)
        .await;
    assert_error(&r, "missing_field", 1002, json!(113));
    let r = alice
        .client
        .request(&json!({"code": 113, "ocid": 5, "accept": "yes"}), 100)
        .await;
    assert_error(&r, "invalid_field", 1003, json!(113));
    let r = alice.client.request(&json!({"code": 115}), 100).await;
    assert_error(&r, "missing_field", 1002, json!(115));
    // Logged out, none of them is served.
    let mut anon = server.v1().await;
    for code in [111, 113, 115, 117, 121] {
        let r = anon
            .request(
                &json!({"code": code, "ocid": alice.ocid, "accept": true, "private_id": 1}),
                100,
            )
            .await;
        assert_error(&r, "not_logged_in", 2000, json!(code));
    }
}

#[tokio::test]
async fn typing_reaches_the_other_side_only() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut alice2 = server.v1().await;
    resume_v1(&mut alice2, &alice.token).await;

    // Private, before any message exists: no reply, Bob is told.
    alice
        .client
        .send_json(&json!({"code": 121, "private_id": bob.ocid}))
        .await;
    let t = bob.client.expect_code(122).await;
    assert_eq!(
        t["sender"],
        json!({"ocid": alice.ocid, "private_id": bob.ocid}),
        "{t}"
    );
    assert_recent_time(&t["time"]);
    alice.client.expect_silence(200).await;
    alice2.expect_silence(0).await;
    carol.client.expect_silence(0).await;

    // A group: every other member, not the typer's own devices.
    let g = create_group_v1(&mut alice.client, &[bob.ocid, carol.ocid]).await;
    bob.client
        .send_json(&json!({"code": 121, "group_id": g}))
        .await;
    for c in [&mut alice.client, &mut alice2, &mut carol.client] {
        let t = c.expect_code(122).await;
        assert_eq!(t["sender"], json!({"ocid": bob.ocid, "group_id": g}));
    }
    bob.client.expect_silence(200).await;

    // Errors: a group one is not in, an unknown account, one's own account.
    let dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let mut dave = dave.client;
    let r = dave
        .request(&json!({"code": 121, "group_id": g}), 100)
        .await;
    assert_error(&r, "not_a_member", 4002, json!(121));
    let r = dave
        .request(&json!({"code": 121, "private_id": 999_999}), 100)
        .await;
    assert_error(&r, "no_such_account", 4000, json!(121));
    let r = alice
        .client
        .request(&json!({"code": 121, "private_id": alice.ocid}), 100)
        .await;
    assert_error(&r, "invalid_field", 1003, json!(121));
    let r = alice.client.request(&json!({"code": 121}), 100).await;
    assert_error(&r, "missing_field", 1002, json!(121));
}

#[tokio::test]
async fn v0_connections_are_not_sent_notices() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    befriend_v1(&mut alice, &mut bob).await;
    // Bob also on v0: presence and typing pushes have no v0 frame.
    let mut bob_v0 = server.v0().await;
    login_v0(&mut bob_v0, &json!(bob.ocid.to_string()), "pw-b").await;
    alice
        .client
        .send_json(&json!({"code": 121, "private_id": bob.ocid}))
        .await;
    bob.client.expect_code(122).await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    carol
        .client
        .request(&json!({"code": 111, "ocid": bob.ocid}), 112)
        .await;
    bob.client.expect_code(119).await;
    bob_v0.expect_silence(300).await;
}

/// An account that reconnects within the presence grace never went offline: its friends are
/// told nothing, either way. One that stays away goes offline once the grace has run out.
#[tokio::test]
async fn a_quick_reconnect_tells_friends_nothing() {
    let grace = Duration::from_millis(1500);
    let server = TestServer::start_with(|c| c.presence_grace = grace).await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    befriend_v1(&mut alice, &mut bob).await;

    // Bob's only connection drops and he is back half a second later.
    bob.client.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut bob2 = server.v1().await;
    resume_v1(&mut bob2, &bob.token).await;
    alice.client.expect_silence(2500).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"][0]["online"], json!(true), "{list}");

    // Now he stays away: offline, not before the grace.
    let left = Instant::now();
    bob2.close().await;
    expect_presence(&mut alice.client, bob.ocid, false).await;
    assert!(
        left.elapsed() >= grace,
        "told after {:?}, within the grace",
        left.elapsed()
    );
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"][0]["online"], json!(false), "{list}");

    // And when he comes back after that, Alice is told.
    let mut bob3 = server.v1().await;
    resume_v1(&mut bob3, &bob.token).await;
    expect_presence(&mut alice.client, bob.ocid, true).await;
}
