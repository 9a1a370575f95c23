//! OurChat clients as they were really written: a client that speaks only its seed sees only
//! seed codes; the 2024 clients' frames (server status, `status` in place of `state`, string
//! ocids, booleans for `login_type`, requests natter does not serve) at `/`; the draft client's
//! registration; the extension frames once a client opts in.

use crate::common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Every frame that arrives within `ms`, in order.
async fn drain(c: &mut Client, ms: u64) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(f) = c.recv_within(Duration::from_millis(ms)).await {
        got.push(f);
    }
    got
}

/// The codes of `frames`.
fn codes(frames: &[Value]) -> BTreeSet<i64> {
    frames.iter().filter_map(|f| f["code"].as_i64()).collect()
}

/// Seed 001's exchange as its own client speaks it (register, login, text both ways, offline
/// delivery, new session, account info): only seed codes reach it, even while an opted-in
/// device of the same account and a friend's presence and typing are about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_only_client_sees_only_seed_codes() {
    let server = TestServer::start().await;
    let mut seen: Vec<Value> = Vec::new();
    let mut a = server.v1().await;
    let mut b = server.v1().await;
    for (c, email, name) in [
        (&mut a, "a@example.com", "A"),
        (&mut b, "b@example.com", "B"),
    ] {
        let r = c
            .request(
                &json!({"code": 4, "time": 1, "email": email, "password": "pw", "name": name}),
                5,
            )
            .await;
        assert_eq!(r["state"], json!(0), "{r}");
        seen.push(r);
    }
    let seed_login = |email: &str| json!({"code": 6, "time": 1, "login_type": 0, "account": email, "password": "pw"});
    let r = a.request(&seed_login("a@example.com"), 7).await;
    let (ocid_a, token_a) = (int(&r["ocid"]), string(&r["token"]));
    seen.push(r);
    seen.extend(drain(&mut a, 300).await);
    // B is offline while A writes; then B logs in and is sent it (no sync-done marker).
    b.close().await;
    a.send_json(&json!({"code": 0, "time": 1, "sender": {"ocid": ocid_a, "private_id": 10002}, "msg": "while away"}))
        .await;
    a.expect_silence(300).await;
    let mut b = server.v1().await;
    let r = b.request(&seed_login("b@example.com"), 7).await;
    seen.push(r);
    let missed = b.expect_code(0).await;
    assert_eq!(missed["msg"], json!("while away"));
    seen.push(missed);
    b.expect_silence(300).await;
    // Both ways, live.
    b.send_json(&json!({"code": 0, "time": 1, "sender": {"ocid": 10002, "private_id": ocid_a}, "msg": "back"}))
        .await;
    let f = a.expect_code(0).await;
    assert_eq!(f["msg"], json!("back"));
    seen.push(f);
    // New session and account info.
    let r = a
        .request(&json!({"code": 8, "time": 1, "members": [10002]}), 9)
        .await;
    assert_eq!(r["success"], json!(true), "{r}");
    seen.push(r);
    let r = b
        .request(
            &json!({"code": 10, "time": 1, "ocid": ocid_a, "request_values": ["ocid", "nickname", "status", "avater", "time"]}),
            11,
        )
        .await;
    seen.push(r);
    // Meanwhile an opted-in device of A befriends B's opted-in device and types to B: B's
    // seed-only connection hears nothing of it, A's neither.
    let mut a2 = server.v1().await;
    let mut a2_user = User {
        ocid: ocid_a,
        token: login_v1(&mut a2, "a@example.com", "pw").await.token,
        client: a2,
    };
    let mut b2 = server.v1().await;
    let mut b2_user = User {
        ocid: 10002,
        token: login_v1(&mut b2, "b@example.com", "pw").await.token,
        client: b2,
    };
    befriend_v1(&mut a2_user, &mut b2_user).await;
    a2_user
        .client
        .send_json(&json!({"code": 121, "private_id": 10002}))
        .await;
    b2_user.client.expect_code(122).await;
    a2_user.client.close().await;
    seen.extend(drain(&mut a, 400).await);
    seen.extend(drain(&mut b, 400).await);
    let _ = token_a;
    let codes = codes(&seen);
    assert!(
        codes.iter().all(|c| [0, 5, 7, 9, 11].contains(c)),
        "a seed-only client saw codes {codes:?}"
    );
    assert!(codes.contains(&0) && codes.contains(&11), "{codes:?}");
}

/// A client opts in with `ext` on its login, or by using any extension code: from then on its
/// sends are acked and its sync ends with code 106.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_frames_come_once_the_client_opts_in() {
    let server = TestServer::start().await;
    let mut a = server.v1().await;
    register_v1(&mut a, "a@example.com", "A", "pw").await;
    let mut reg = server.v1().await;
    let bob = register_v1(&mut reg, "b@example.com", "B", "pw").await;
    let r = a
        .request(
            &json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw"}),
            7,
        )
        .await;
    assert_eq!(r["state"], json!(0));
    a.expect_silence(200).await;
    a.send_json(&json!({"code": 0, "sender": {"private_id": bob}, "msg": "unacked"}))
        .await;
    a.expect_silence(300).await;
    // The first extension request opts in: heartbeat (107).
    a.request(&json!({"code": 107}), 108).await;
    let ack = a
        .request(
            &json!({"code": 0, "sender": {"private_id": bob}, "msg": "acked"}),
            103,
        )
        .await;
    assert_eq!(
        ack["index"],
        json!(2),
        "the first one was stored unacked: {ack}"
    );
    // `ext` on the login: the sync ends with 106.
    let mut b = server.v1().await;
    let r = b
        .request(
            &json!({"code": 6, "login_type": 1, "account": bob, "password": "pw", "ext": true}),
            7,
        )
        .await;
    assert_eq!(r["state"], json!(0));
    let synced = read_sync_v1(&mut b).await;
    assert_eq!(synced.len(), 2);
}

/// OurChat's 2024 clients dial the server's root: `{"code":12}` is their first frame; replies
/// carry `status` in place of `state` and ocids as strings; `login_type` may be a boolean;
/// account info answers what natter does not know with null; requests natter does not serve
/// (verification, unregister, account edits, uploads) get a failing `status`; errors come as
/// OurChat's code 18 with `details`. They chat with a seed client on `/ws`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2024_clients_at_the_root() {
    let server = TestServer::start().await;
    let mut c = Client::connect(server.addr, "/").await;
    let r = c.request(&json!({"code": 12}), 12).await;
    assert_eq!(r["status"], json!(0), "{r}");
    let r = c
        .request(
            &json!({"code": 4, "email": "new@example.com", "password": "e3b0c442", "name": "Outchat"}),
            5,
        )
        .await;
    assert_eq!(
        (r["status"].clone(), r["ocid"].clone()),
        (json!(0), json!("10001")),
        "{r}"
    );
    assert!(
        r.get("state").is_none(),
        "`status` in place of `state`: {r}"
    );
    let r = c
        .request(
            &json!({"code": 6, "login_type": true, "account": "10001", "password": "e3b0c442"}),
            7,
        )
        .await;
    assert_eq!(
        (r["status"].clone(), r["ocid"].clone()),
        (json!(0), json!("10001")),
        "{r}"
    );
    c.expect_silence(200).await;

    // A seed client on /ws talks with it both ways; each sees the other in its own terms.
    let mut s = server.v1().await;
    let seed = register_v1(&mut s, "seed@example.com", "Seed", "pw").await;
    let login = login_v1(&mut s, "seed@example.com", "pw").await;
    assert!(login.missed.is_empty());
    s.send_json(&json!({"code": 0, "sender": {"private_id": 10001}, "msg": "hi from /ws"}))
        .await;
    s.expect_code(103).await;
    let f = c.expect_code(0).await;
    assert_eq!(
        (f["msg"].clone(), f["sender"].clone()),
        (
            json!("hi from /ws"),
            json!({"ocid": seed.to_string(), "private_id": "10001"})
        ),
        "{f}"
    );
    c.send_json(&json!({"code": 0, "sender": {"ocid": "10001", "private_id": seed.to_string()}, "msg": "hi from /"}))
        .await;
    let f = s.expect_code(0).await;
    assert_eq!(
        (f["msg"].clone(), f["sender"].clone()),
        (
            json!("hi from /"),
            json!({"ocid": 10001, "private_id": seed})
        ),
        "{f}"
    );

    // Account info: what natter does not know is null; the reply has a status.
    let r = c
        .request(
            &json!({"code": 10, "ocid": seed.to_string(), "request_values": ["ocid", "nickname", "avatar_hash", "sessions"]}),
            11,
        )
        .await;
    assert_eq!(
        r["data"],
        json!({"ocid": seed.to_string(), "nickname": "Seed", "avatar_hash": null, "sessions": null})
    );
    assert_eq!(r["status"], json!(0));
    // New session: status and session_id beside the seed's fields.
    let r = c
        .request(&json!({"code": 8, "members": [seed.to_string()]}), 9)
        .await;
    assert_eq!(r["status"], json!(0), "{r}");
    assert_eq!(r["session_id"], json!(r["group_id"].to_string()), "{r}");
    // What natter does not serve: a failing status in the reply those clients read.
    for (req, reply) in [
        (json!({"code": 14, "email": "new@example.com"}), 15),
        (json!({"code": 19, "data": {"nickname": "x"}}), 20),
        (json!({"code": 21, "hash": "abc", "auto_clean": true}), 22),
    ] {
        let r = c.request(&req, reply).await;
        assert_eq!(r["status"], json!(1), "{req} -> {r}");
        assert!(r["details"].as_str().is_some_and(|d| !d.is_empty()), "{r}");
    }
    // An error: OurChat's code 18 with `details` (natter's fields beside it).
    let r = c.request(&json!({"code": 10}), 18).await;
    assert!(
        r["details"]
            .as_str()
            .is_some_and(|d| d.contains("`request_values`")),
        "{r}"
    );
    assert_eq!(r["error"], json!("missing_field"));
    // A plain GET of / is not the WebSocket endpoint: it is the web client's page.
    let host = server.addr.to_string();
    let answer = natter_client::http::get(server.addr, &host, "/")
        .await
        .expect("GET /");
    assert_eq!(answer.status, 200, "{}", answer.status_line);
    assert!(answer.body.contains("/web/app.js"), "{}", answer.body);
    // Unregister deletes the account, as OurChat does; the login ends with it.
    let r = c.request(&json!({"code": 16}), 17).await;
    assert_eq!(r["status"], json!(0), "{r}");
    closed_after_frames(&mut c, 4001).await;
}

/// Seed 001's `/ws` also answers the probe and the requests OurChat assigned later, and
/// adds `status` beside `state`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_endpoint_answers_later_codes_too() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    let r = c.request(&json!({"code": 12, "request_id": 1}), 12).await;
    assert_eq!(
        (r["status"].clone(), r["request_id"].clone()),
        (json!(0), json!(1))
    );
    let r = c.request(&json!({"code": 16}), 100).await;
    assert_error(&r, "not_logged_in", 2000, json!(16));
    let r = c.request(&json!({"code": 14}), 15).await;
    assert_eq!(r["status"], json!(1), "{r}");
    // Server-to-client codes sent by a client are unknown to the server.
    for code in [13, 15, 17, 18, 20, 22] {
        let r = c.request(&json!({"code": code}), 100).await;
        assert_error(&r, "unknown_code", 1001, json!(code));
    }
    let r = c
        .request(
            &json!({"code": 4, "email": "a@example.com", "password": "pw", "name": "A"}),
            5,
        )
        .await;
    assert_eq!(
        (r["state"].clone(), r["status"].clone()),
        (json!(0), json!(0)),
        "{r}"
    );
    let r = c
        .request(
            &json!({"code": 6, "login_type": false, "account": "a@example.com", "password": "no"}),
            7,
        )
        .await;
    assert_eq!(
        (r["state"].clone(), r["status"].clone()),
        (json!(1), json!(1)),
        "{r}"
    );
    let r = c
        .request(
            &json!({"code": 6, "login_type": false, "account": "a@example.com", "password": "pw"}),
            7,
        )
        .await;
    assert_eq!(
        (r["state"].clone(), r["status"].clone()),
        (json!(0), json!(0)),
        "{r}"
    );
    let r = c.request(&json!({"code": 16}), 17).await;
    assert_eq!(r["status"], json!(0), "unregister deletes the account: {r}");
    assert_eq!(c.wait_closed().await, Ended::Close(Some(4001)));
    // Its email is free again, and its password no longer logs in.
    let mut again = server.v1().await;
    let r = again
        .request(
            &json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw"}),
            7,
        )
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    let r = again
        .request(
            &json!({"code": 4, "email": "a@example.com", "password": "pw2", "name": "A2"}),
            5,
        )
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
}

/// The draft's client registers with `email` and `nick` (its server read those, the draft
/// says `mail`); the probe is answered in the draft's envelope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_draft_client_registers_with_email_and_nick() {
    let server = TestServer::start().await;
    let mut c = server.v0().await;
    let r = c
        .request(
            &json!({"code": 4, "time": 1, "data": {"email": "draft@example.com", "nick": "Drafty", "password": "pw"}}),
            5,
        )
        .await;
    assert_eq!(r["data"], json!({"state": 0, "ocId": "10001"}), "{r}");
    let r = c.request(&json!({"code": 12, "data": {}}), 12).await;
    assert_eq!(r["data"], json!({"status": 0}), "{r}");
    // Its nickname is the one it gave.
    let mut v1 = server.v1().await;
    login_v1(&mut v1, "draft@example.com", "pw").await;
    let r = v1
        .request(
            &json!({"code": 10, "ocid": 10001, "request_values": ["nickname"]}),
            11,
        )
        .await;
    assert_eq!(r["data"], json!({"nickname": "Drafty"}));
    // The draft's unregister deletes the account; every login of it ends.
    login_v0(&mut c, &json!("10001"), "pw").await;
    let r = c.request(&json!({"code": 16, "data": {}}), 17).await;
    assert_eq!(r["data"], json!({"status": 0}), "{r}");
    closed_after_frames(&mut c, 4001).await;
    closed_after_frames(&mut v1, 4001).await;
}
