//! OurChat v1 (`/ws`) end to end: accounts, login, private and group text, account info,
//! history, heartbeat, logout/resume, idempotent resend and several devices.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_assigns_sequential_ocids_and_rejects_duplicates() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;

    let r = c
        .request(
            &json!({"code": 4, "time": 1718000000, "email": "Alice@Example.com", "password": "5f4dcc3b", "name": "Alice", "request_id": 1}),
            5,
        )
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    assert!(r["ocid"].is_u64(), "ocid must be a JSON integer: {r}");
    assert_eq!(r["ocid"], json!(10001), "the first ocid is 10001: {r}");
    assert_eq!(r["request_id"], json!(1));
    assert_recent_time(&r["time"]);

    // The same address in any letter case is taken.
    for email in ["alice@example.com", "ALICE@EXAMPLE.COM"] {
        let r = c
            .request(&json!({"code": 4, "email": email, "password": "x", "name": "Alice 2", "request_id": "dup"}), 5)
            .await;
        assert_eq!(r["state"], json!(2), "{r}");
        assert!(r.get("ocid").is_none(), "no ocid unless state 0: {r}");
        assert_eq!(r["request_id"], json!("dup"));
    }

    // An invalid address is an error, echoing the request id.
    let r = c
        .request(&json!({"code": 4, "email": "alice.example.com", "password": "x", "name": "Alice", "request_id": 2}), 100)
        .await;
    let message = assert_error(&r, "invalid_field", 1003, json!(4));
    assert!(
        message.contains("`email`"),
        "the message names the field: {message}"
    );
    assert_eq!(r["request_id"], json!(2));

    // Other invalid inputs.
    let r = c
        .request(
            &json!({"code": 4, "email": "bob@example.com", "password": "", "name": "Bob"}),
            100,
        )
        .await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(4)).contains("`password`"));
    let r = c
        .request(
            &json!({"code": 4, "email": "bob@example.com", "password": "x", "name": ""}),
            100,
        )
        .await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(4)).contains("`name`"));

    // The failed attempts consumed no ocid; the next one is 10002.
    let bob = register_v1(&mut c, "bob@example.com", "Bob", "pw-b").await;
    assert_eq!(bob, 10002);
    // Without `name` (as some clients register), the nickname is the email's local part.
    let r = c
        .request(
            &json!({"code": 4, "email": "carol@example.com", "password": "x"}),
            5,
        )
        .await;
    assert_eq!(
        (r["state"].clone(), r["ocid"].clone()),
        (json!(0), json!(10003)),
        "{r}"
    );
    assert_eq!(r["status"], r["state"], "`status` beside `state`: {r}");
    let mut c2 = server.v1().await;
    login_v1(&mut c2, "carol@example.com", "x").await;
    let r = c2
        .request(
            &json!({"code": 10, "ocid": 10003, "request_values": ["nickname"]}),
            11,
        )
        .await;
    assert_eq!(r["data"], json!({"nickname": "carol"}), "{r}");
    // Registering does not log the connection in.
    let r = c
        .request(
            &json!({"code": 0, "sender": {"private_id": 10001}, "msg": "hi"}),
            100,
        )
        .await;
    assert_error(&r, "not_logged_in", 2000, json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_email_and_by_ocid() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    let alice = register_v1(&mut c, "Alice@Example.com", "Alice", "pw-a").await;

    // By email, in another letter case.
    let l = login_v1_with(
        &mut c,
        &json!({"code": 6, "login_type": 0, "account": "ALICE@example.COM", "password": "pw-a", "request_id": "l1"}),
    )
    .await;
    assert_eq!(l.ocid, alice);
    assert!(l.missed.is_empty());

    // By ocid as a string and as an integer; every login issues a fresh token.
    let mut tokens = vec![l.token];
    for account in [json!(alice.to_string()), json!(alice)] {
        let mut c2 = server.v1().await;
        c2.send_json(&json!({"code": 6, "login_type": 1, "account": account, "password": "pw-a", "request_id": 2, "ext": 1}))
            .await;
        let r = c2.expect_code(7).await;
        assert_eq!(r["state"], json!(0), "{r}");
        assert_eq!(r["ocid"], json!(alice), "ocid is a JSON integer: {r}");
        assert_eq!(r["request_id"], json!(2));
        let token = string(&r["token"]);
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "base64url token: {token}"
        );
        assert!(!tokens.contains(&token), "tokens are fresh per login");
        tokens.push(token);
        assert!(read_sync_v1(&mut c2).await.is_empty());
    }

    // Wrong password, unknown email, unknown ocid: state 1, no ocid, no token, no sync.
    let mut c3 = server.v1().await;
    for req in [
        json!({"code": 6, "login_type": 0, "account": "alice@example.com", "password": "wrong", "request_id": 9}),
        json!({"code": 6, "login_type": 1, "account": alice, "password": "wrong", "request_id": 9}),
        json!({"code": 6, "login_type": 0, "account": "nobody@example.com", "password": "pw-a", "request_id": 9}),
        json!({"code": 6, "login_type": 1, "account": "99999", "password": "pw-a", "request_id": 9}),
        json!({"code": 6, "login_type": 1, "account": 99999, "password": "pw-a", "request_id": 9}),
    ] {
        let r = c3.request(&req, 7).await;
        assert_eq!(r["state"], json!(1), "{req} -> {r}");
        assert!(r.get("ocid").is_none() && r.get("token").is_none(), "{r}");
        assert_eq!(r["request_id"], json!(9));
        assert_recent_time(&r["time"]);
    }
    c3.expect_silence(200).await;
    // Still anonymous.
    let r = c3
        .request(&json!({"code": 104, "private_id": alice}), 100)
        .await;
    assert_error(&r, "not_logged_in", 2000, json!(104));

    // A bad login_type, and an integer account with login_type 0.
    let r = c3
        .request(
            &json!({"code": 6, "login_type": 4, "account": "a@b", "password": "x"}),
            100,
        )
        .await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(6)).contains("`login_type`"));
    let r = c3
        .request(
            &json!({"code": 6, "login_type": 0, "account": 10001, "password": "x"}),
            100,
        )
        .await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(6)).contains("`account`"));
}

/// A delivered private code 0 frame must be exactly this message.
fn assert_private_frame(f: &Value, cid: u64, from: u64, to: u64, msg: &str, index: u64) {
    assert_eq!(f["code"], json!(0), "{f}");
    assert_eq!(f["cid"], json!(cid), "cid is the ack's message id: {f}");
    assert_eq!(f["sender"], json!({"ocid": from, "private_id": to}), "{f}");
    assert_eq!(f["msg"], json!(msg), "{f}");
    assert_eq!(f["index"], json!(index), "{f}");
    assert_recent_time(&f["time"]);
    assert!(
        f.get("request_id").is_none(),
        "deliveries never carry a request_id: {f}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_text_is_acked_to_sender_and_delivered_to_peer() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    a.client
        .send_json(&json!({"code": 0, "time": 1718000200, "sender": {"ocid": a.ocid, "private_id": b.ocid}, "msg": "hello bob", "request_id": "m1"}))
        .await;
    let ack1 = a.client.expect_code(103).await;
    let cid1 = int(&ack1["cid"]);
    assert_eq!(ack1["index"], json!(1), "{ack1}");
    assert_eq!(ack1["private_id"], json!(b.ocid), "{ack1}");
    assert!(
        ack1.get("group_id").is_none() && ack1.get("client_id").is_none(),
        "{ack1}"
    );
    assert_eq!(ack1["request_id"], json!("m1"));
    assert_recent_time(&ack1["time"]);

    let f = b.client.expect_code(0).await;
    assert_private_frame(&f, cid1, a.ocid, b.ocid, "hello bob", 1);
    // The sender never gets its own message back.
    a.client.expect_silence(200).await;

    // The private id may be a digit string; the request id an integer.
    a.client
        .send_json(&json!({"code": 0, "sender": {"private_id": b.ocid.to_string()}, "msg": "second", "request_id": 7}))
        .await;
    let ack2 = a.client.expect_code(103).await;
    assert_eq!(ack2["index"], json!(2));
    assert_eq!(ack2["private_id"], json!(b.ocid));
    assert_eq!(ack2["request_id"], json!(7));
    let cid2 = int(&ack2["cid"]);
    assert!(cid2 > cid1, "message ids increase");
    let f = b.client.expect_code(0).await;
    assert_private_frame(&f, cid2, a.ocid, b.ocid, "second", 2);

    // Bob replies: the same chat, so index 3; private_id is the recipient (Alice).
    let ack3 = send_v1(&mut b.client, json!({"private_id": a.ocid}), "hi alice").await;
    assert_eq!(ack3["index"], json!(3));
    assert_eq!(ack3["private_id"], json!(a.ocid));
    assert!(
        ack3.get("request_id").is_none(),
        "no request_id unless sent: {ack3}"
    );
    let f = a.client.expect_code(0).await;
    assert_private_frame(&f, int(&ack3["cid"]), b.ocid, a.ocid, "hi alice", 3);
    b.client.expect_silence(200).await;

    // Unicode text round-trips unchanged.
    let text = "héllo \"wörld\" 👋\n\\ end";
    let ack4 = send_v1(&mut a.client, json!({"private_id": b.ocid}), text).await;
    let f = b.client.expect_code(0).await;
    assert_private_frame(&f, int(&ack4["cid"]), a.ocid, b.ocid, text, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_on_errors() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;

    let r = a
        .client
        .request(&json!({"code": 0, "sender": {"private_id": 99999}, "msg": "anyone?", "request_id": "m-9"}), 100)
        .await;
    assert_error(&r, "no_such_account", 4000, json!(0));
    assert_eq!(r["request_id"], json!("m-9"));

    let r = a
        .client
        .request(&json!({"code": 0, "sender": {"group_id": 2, "private_id": 10002}, "msg": "hi", "request_id": 5}), 100)
        .await;
    let m = assert_error(&r, "invalid_field", 1003, json!(0));
    assert_eq!(m, "only one of `group_id` or `private_id` may be given");
    assert_eq!(r["request_id"], json!(5));

    let r = a
        .client
        .request(
            &json!({"code": 0, "sender": {}, "msg": "hi", "request_id": -3}),
            100,
        )
        .await;
    let m = assert_error(&r, "missing_field", 1002, json!(0));
    assert_eq!(m, "one of `group_id` or `private_id` is required");
    assert_eq!(r["request_id"], json!(-3));

    let r = a
        .client
        .request(&json!({"code": 0, "sender": {"private_id": a.ocid}, "msg": "me", "request_id": "self"}), 100)
        .await;
    assert_error(&r, "invalid_field", 1003, json!(0));
    assert_eq!(r["request_id"], json!("self"));

    let r = a
        .client
        .request(
            &json!({"code": 0, "sender": {"group_id": 4242}, "msg": "hi", "request_id": "g"}),
            100,
        )
        .await;
    assert_error(&r, "no_such_chat", 4001, json!(0));
    assert_eq!(r["request_id"], json!("g"));

    let r = a
        .client
        .request(
            &json!({"code": 0, "sender": {"private_id": 99999}, "msg": "", "request_id": "e"}),
            100,
        )
        .await;
    assert_error(&r, "invalid_field", 1003, json!(0));
    assert_eq!(r["request_id"], json!("e"));

    // Errors without a request id carry none.
    let r = a
        .client
        .request(
            &json!({"code": 0, "sender": {"private_id": 99999}, "msg": "x"}),
            100,
        )
        .await;
    assert!(r.get("request_id").is_none(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_created_and_deliver_to_other_members() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut c = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;

    // Duplicates and string ids are accepted.
    let r = a
        .client
        .request(
            &json!({"code": 8, "time": 1718000100, "members": [b.ocid, c.ocid.to_string(), b.ocid, a.ocid], "name": "Weekend", "request_id": 3}),
            9,
        )
        .await;
    assert_eq!(r["success"], json!(true), "{r}");
    assert_eq!(r["msg"], json!(""));
    assert_eq!(r["request_id"], json!(3));
    assert_recent_time(&r["time"]);
    let g = int(&r["group_id"]);
    // Members are not notified of the new group.
    b.client.expect_silence(200).await;

    a.client
        .send_json(
            &json!({"code": 0, "sender": {"group_id": g}, "msg": "hi all", "request_id": "g1"}),
        )
        .await;
    let ack = a.client.expect_code(103).await;
    assert_eq!(ack["group_id"], json!(g), "{ack}");
    assert!(ack.get("private_id").is_none(), "{ack}");
    assert_eq!(ack["index"], json!(1));
    assert_eq!(ack["request_id"], json!("g1"));
    for rx in [&mut b.client, &mut c.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"], "{f}");
        assert_eq!(f["sender"], json!({"ocid": a.ocid, "group_id": g}), "{f}");
        assert_eq!(f["msg"], json!("hi all"));
        assert_eq!(f["index"], json!(1));
        assert_recent_time(&f["time"]);
    }
    a.client.expect_silence(200).await;

    let ack = send_v1(
        &mut c.client,
        json!({"group_id": g.to_string()}),
        "count me in",
    )
    .await;
    assert_eq!(ack["index"], json!(2));
    assert_eq!(ack["group_id"], json!(g));
    for rx in [&mut a.client, &mut b.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["sender"], json!({"ocid": c.ocid, "group_id": g}), "{f}");
        assert_eq!(f["index"], json!(2));
        assert_eq!(f["msg"], json!("count me in"));
    }
    c.client.expect_silence(200).await;

    // An unknown member: not created.
    let r = a
        .client
        .request(
            &json!({"code": 8, "members": [b.ocid, 99999], "request_id": 4}),
            9,
        )
        .await;
    assert_eq!(r["success"], json!(false), "{r}");
    assert_eq!(r["msg"], json!("no account with ocid 99999"));
    assert!(r.get("group_id").is_none(), "{r}");
    assert_eq!(r["request_id"], json!(4));

    // An empty list: a group of one. Others are not members.
    let solo = create_group_v1(&mut a.client, &[]).await;
    assert_ne!(solo, g);
    let r = b
        .client
        .request(
            &json!({"code": 0, "sender": {"group_id": solo}, "msg": "let me in"}),
            100,
        )
        .await;
    assert_error(&r, "not_a_member", 4002, json!(0));
    let r = b
        .client
        .request(&json!({"code": 104, "group_id": solo}), 100)
        .await;
    assert_error(&r, "not_a_member", 4002, json!(104));
    let ack = send_v1(
        &mut a.client,
        json!({"group_id": solo}),
        "talking to myself",
    )
    .await;
    assert_eq!(ack["index"], json!(1));

    // Malformed requests.
    let r = a
        .client
        .request(&json!({"code": 8, "members": "bob"}), 100)
        .await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(8)).contains("`members`"));
    let r = a.client.request(&json!({"code": 8}), 100).await;
    assert!(assert_error(&r, "missing_field", 1002, json!(8)).contains("`members`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_info_answers_every_value_under_the_asked_name() {
    let server = TestServer::start().await;
    let before = now_s();
    let mut a = user_v1(&server, "Alice@Example.com", "Alice", "pw-a").await;
    let b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let after = now_s();

    let all = [
        "ocid", "nickname", "status", "avater", "avatar", "time", "email",
    ];
    let r = a
        .client
        .request(
            &json!({"code": 10, "time": 1718000200, "ocid": b.ocid, "request_values": all, "request_id": "i1"}),
            11,
        )
        .await;
    assert_eq!(r["request_id"], json!("i1"));
    assert_recent_time(&r["time"]);
    let d = &r["data"];
    assert_eq!(
        d.as_object().map(|m| m.len()),
        Some(7),
        "one key per asked name: {r}"
    );
    assert_eq!(d["ocid"], json!(b.ocid));
    assert_eq!(d["nickname"], json!("Bob"));
    assert_eq!(d["status"], json!(0));
    assert_eq!(d["avater"], json!(""));
    assert_eq!(d["avatar"], json!(""));
    assert_eq!(
        d["email"],
        Value::Null,
        "another account's email is null: {r}"
    );
    let t = d["time"]
        .as_i64()
        .unwrap_or_else(|| panic!("`time` must be an integer: {r}"));
    assert!(
        (before..=after).contains(&t),
        "registration time {t} in Unix seconds, within [{before}, {after}]"
    );

    // Your own account: the email (stored lower-cased); the ocid may be a digit string.
    let r = a
        .client
        .request(&json!({"code": 10, "ocid": a.ocid.to_string(), "request_values": ["email", "nickname", "ocid", "ocid"]}), 11)
        .await;
    assert_eq!(
        r["data"],
        json!({"email": "alice@example.com", "nickname": "Alice", "ocid": a.ocid}),
        "a name asked twice appears once: {r}"
    );
    assert!(r.get("request_id").is_none());

    // Only `avater`: answered under that spelling only.
    let r = a
        .client
        .request(
            &json!({"code": 10, "ocid": b.ocid, "request_values": ["avater"]}),
            11,
        )
        .await;
    assert_eq!(r["data"], json!({"avater": ""}));

    // An empty list gives an empty object.
    let r = a
        .client
        .request(
            &json!({"code": 10, "ocid": b.ocid, "request_values": []}),
            11,
        )
        .await;
    assert_eq!(r["data"], json!({}));

    // A value name natter does not know (later clients ask for more) is answered as null,
    // and the others still are.
    let r = a
        .client
        .request(
            &json!({"code": 10, "ocid": b.ocid, "request_values": ["phone", "ocid"], "request_id": 3}),
            11,
        )
        .await;
    assert_eq!(r["data"], json!({"phone": null, "ocid": b.ocid}), "{r}");
    assert_eq!(r["request_id"], json!(3));

    // An unknown account.
    let r = a
        .client
        .request(
            &json!({"code": 10, "ocid": 99999, "request_values": ["ocid"], "request_id": 4}),
            100,
        )
        .await;
    assert_error(&r, "no_such_account", 4000, json!(10));
    assert_eq!(r["request_id"], json!(4));

    // Too many values, and missing fields.
    let r = a
        .client
        .request(
            &json!({"code": 10, "ocid": b.ocid, "request_values": vec!["ocid"; 17]}),
            100,
        )
        .await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(10)).contains("`request_values`"));
    let r = a
        .client
        .request(&json!({"code": 10, "ocid": b.ocid}), 100)
        .await;
    assert!(assert_error(&r, "missing_field", 1002, json!(10)).contains("`request_values`"));
    let r = a
        .client
        .request(&json!({"code": 10, "request_values": ["ocid"]}), 100)
        .await;
    assert!(assert_error(&r, "missing_field", 1002, json!(10)).contains("`ocid`"));

    // Anonymous connections may not ask.
    let mut anon = server.v1().await;
    let r = anon
        .request(
            &json!({"code": 10, "ocid": b.ocid, "request_values": ["ocid"]}),
            100,
        )
        .await;
    assert_error(&r, "not_logged_in", 2000, json!(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_by_index() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut c_client = server.v1().await;
    let carol = register_v1(&mut c_client, "carol@example.com", "Carol", "pw-c").await;

    let mut cids = Vec::new();
    for i in 1..=7u64 {
        let ack = send_v1(
            &mut a.client,
            json!({"private_id": b.ocid}),
            &format!("m{i}"),
        )
        .await;
        assert_eq!(ack["index"], json!(i));
        cids.push(int(&ack["cid"]));
    }
    for _ in 0..7 {
        b.client.expect_code(0).await;
    }
    let check = |h: &Value, expect: &[u64], more: bool| {
        assert_eq!(indexes(h), expect, "indexes of {h}");
        assert_eq!(h["more"], json!(more), "`more` of {h}");
        for m in h["messages"].as_array().into_iter().flatten() {
            let i = int(&m["index"]);
            let idx = usize::try_from(i - 1).expect("small index");
            assert_eq!(m["cid"], json!(cids[idx]), "{m}");
            assert_eq!(m["code"], json!(0));
            assert_eq!(m["sender"], json!({"ocid": a.ocid, "private_id": b.ocid}));
            assert_eq!(m["msg"], json!(format!("m{i}")));
            assert_recent_time(&m["time"]);
        }
    };

    // Latest, default limit 50.
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "request_id": "h0"}),
    )
    .await;
    check(&h, &[1, 2, 3, 4, 5, 6, 7], false);
    assert_eq!(h["private_id"], json!(b.ocid));
    assert!(h.get("group_id").is_none());
    assert_eq!(h["request_id"], json!("h0"));
    assert_recent_time(&h["time"]);

    // Latest with a limit, then paging backwards.
    let h = history_v1(&mut a.client, json!({"private_id": b.ocid, "limit": 3})).await;
    check(&h, &[5, 6, 7], true);
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "limit": 3, "before": 5}),
    )
    .await;
    check(&h, &[2, 3, 4], true);
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "limit": "3", "before": "2"}),
    )
    .await;
    check(&h, &[1], false);
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "limit": 6, "before": 8}),
    )
    .await;
    check(&h, &[2, 3, 4, 5, 6, 7], true);
    let h = history_v1(&mut a.client, json!({"private_id": b.ocid, "limit": 7})).await;
    check(&h, &[1, 2, 3, 4, 5, 6, 7], false);
    let h = history_v1(&mut a.client, json!({"private_id": b.ocid, "before": 1})).await;
    check(&h, &[], false);

    // Paging forwards.
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "limit": 5, "after": 0}),
    )
    .await;
    check(&h, &[1, 2, 3, 4, 5], true);
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "limit": 5, "after": 5}),
    )
    .await;
    check(&h, &[6, 7], false);
    let h = history_v1(
        &mut a.client,
        json!({"private_id": b.ocid, "limit": 2, "after": 5}),
    )
    .await;
    check(&h, &[6, 7], false);
    let h = history_v1(&mut a.client, json!({"private_id": b.ocid, "after": 7})).await;
    check(&h, &[], false);

    // The peer sees the same chat (the same frames).
    let hb = history_v1(&mut b.client, json!({"private_id": a.ocid})).await;
    let ha = history_v1(&mut a.client, json!({"private_id": b.ocid})).await;
    assert_eq!(hb["messages"], ha["messages"]);
    assert_eq!(hb["private_id"], json!(a.ocid));

    // A private chat never written to is empty.
    let h = history_v1(&mut a.client, json!({"private_id": carol})).await;
    assert_eq!(h["messages"], json!([]));
    assert_eq!(h["more"], json!(false));
    assert_eq!(h["private_id"], json!(carol));

    // Bad requests.
    for (req, name, number, field) in [
        (
            json!({"code": 104, "private_id": b.ocid, "limit": 0}),
            "invalid_field",
            1003,
            "`limit`",
        ),
        (
            json!({"code": 104, "private_id": b.ocid, "limit": 501}),
            "invalid_field",
            1003,
            "`limit`",
        ),
        (
            json!({"code": 104, "private_id": b.ocid, "before": 3, "after": 1}),
            "invalid_field",
            1003,
            "`before`",
        ),
        (
            json!({"code": 104, "private_id": b.ocid, "before": -1}),
            "invalid_field",
            1003,
            "`before`",
        ),
        (json!({"code": 104}), "missing_field", 1002, "`group_id`"),
        (
            json!({"code": 104, "private_id": b.ocid, "group_id": 1}),
            "invalid_field",
            1003,
            "`group_id`",
        ),
    ] {
        let r = a.client.request(&req, 100).await;
        let m = assert_error(&r, name, number, json!(104));
        assert!(m.contains(field), "{req} -> {m}");
    }
    let r = a
        .client
        .request(&json!({"code": 104, "private_id": 99999}), 100)
        .await;
    assert_error(&r, "no_such_account", 4000, json!(104));
    let r = a
        .client
        .request(&json!({"code": 104, "group_id": 99999}), 100)
        .await;
    assert_error(&r, "no_such_chat", 4001, json!(104));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_logout_and_resume() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;

    // Heartbeat works before login.
    let r = c
        .request(&json!({"code": 107, "request_id": "hb"}), 108)
        .await;
    assert_eq!(r["request_id"], json!("hb"));
    assert_recent_time(&r["time"]);
    let r = c.request(&json!({"code": 107}), 108).await;
    assert!(r.get("request_id").is_none());

    let alice = register_v1(&mut c, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let first = login_v1(&mut c, "alice@example.com", "pw-a").await;

    // Logout: code 110, then the connection is anonymous but open.
    let r = c
        .request(&json!({"code": 109, "request_id": "bye"}), 110)
        .await;
    assert_eq!(r["request_id"], json!("bye"));
    assert_recent_time(&r["time"]);
    let r = c
        .request(&json!({"code": 0, "sender": {"private_id": b.ocid}, "msg": "still there?", "request_id": 1}), 100)
        .await;
    assert_error(&r, "not_logged_in", 2000, json!(0));
    assert_eq!(r["request_id"], json!(1));
    let r = c.request(&json!({"code": 109}), 100).await;
    assert_error(&r, "not_logged_in", 2000, json!(109));
    c.request(&json!({"code": 107}), 108).await;
    // A logged-out connection gets no deliveries.
    send_v1(
        &mut b.client,
        json!({"private_id": alice}),
        "are you there?",
    )
    .await;
    c.expect_silence(300).await;

    // The revoked token no longer resumes, on this or any connection.
    let r = c
        .request(
            &json!({"code": 101, "token": first.token, "request_id": "r1"}),
            102,
        )
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    assert!(r.get("ocid").is_none(), "{r}");
    assert_eq!(r["request_id"], json!("r1"));
    c.expect_silence(200).await;
    let mut c2 = server.v1().await;
    let r = c2
        .request(&json!({"code": 101, "token": first.token}), 102)
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    let r = c2
        .request(&json!({"code": 101, "token": "not-a-token"}), 102)
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    let r = c2.request(&json!({"code": 101}), 100).await;
    assert!(assert_error(&r, "missing_field", 1002, json!(101)).contains("`token`"));
    let r = c2.request(&json!({"code": 101, "token": 5}), 100).await;
    assert!(assert_error(&r, "invalid_field", 1003, json!(101)).contains("`token`"));

    // A new login; its token resumes on a new connection.
    let second = login_v1(&mut c, "alice@example.com", "pw-a").await;
    let mut c3 = server.v1().await;
    let r = c3
        .request(
            &json!({"code": 101, "token": second.token, "request_id": "r2"}),
            102,
        )
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    assert_eq!(r["ocid"], json!(alice), "{r}");
    assert_eq!(r["request_id"], json!("r2"));
    assert!(r.get("token").is_none(), "{r}");
    assert_recent_time(&r["time"]);
    read_sync_v1(&mut c3).await;
    // The resumed connection is logged in as Alice.
    let ack = send_v1(&mut c3, json!({"private_id": b.ocid}), "resumed").await;
    assert_eq!(ack["private_id"], json!(b.ocid));
    let f = b.client.expect_code(0).await;
    assert_eq!(f["sender"], json!({"ocid": alice, "private_id": b.ocid}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_makes_resends_idempotent() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut c = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;

    let req = json!({"code": 0, "sender": {"private_id": b.ocid}, "msg": "hello bob", "client_id": "a-0001", "request_id": 7});
    let ack1 = a.client.request(&req, 103).await;
    assert_eq!(ack1["client_id"], json!("a-0001"), "{ack1}");
    assert_eq!(ack1["index"], json!(1));
    assert_eq!(ack1["request_id"], json!(7));
    let f = b.client.expect_code(0).await;
    assert_eq!(f["cid"], ack1["cid"]);

    // The same client_id again: the same ack, nothing new stored or delivered.
    let mut again = req.clone();
    again["request_id"] = json!(8);
    let ack2 = a.client.request(&again, 103).await;
    assert_eq!(ack2["cid"], ack1["cid"], "{ack2}");
    assert_eq!(ack2["index"], ack1["index"], "{ack2}");
    assert_eq!(ack2["client_id"], json!("a-0001"));
    assert_eq!(ack2["private_id"], json!(b.ocid));
    assert_eq!(ack2["request_id"], json!(8));
    b.client.expect_silence(300).await;

    // The same client_id for another chat.
    let r = a
        .client
        .request(&json!({"code": 0, "sender": {"private_id": c.ocid}, "msg": "hello carol", "client_id": "a-0001", "request_id": 9}), 100)
        .await;
    assert_error(&r, "duplicate_client_id", 4004, json!(0));
    assert_eq!(r["request_id"], json!(9));
    c.client.expect_silence(200).await;

    // Client ids are per account: Bob may use the same one.
    let ack = b
        .client
        .request(&json!({"code": 0, "sender": {"private_id": a.ocid}, "msg": "hi alice", "client_id": "a-0001"}), 103)
        .await;
    assert_eq!(ack["index"], json!(2));
    assert_ne!(ack["cid"], ack1["cid"]);
    a.client.expect_code(0).await;

    // Only the two messages are stored; Carol's chat with Alice is empty.
    let h = history_v1(&mut a.client, json!({"private_id": b.ocid})).await;
    assert_eq!(indexes(&h), [1, 2]);
    let h = history_v1(&mut a.client, json!({"private_id": c.ocid})).await;
    assert_eq!(h["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_an_account_receives_its_messages() {
    let server = TestServer::start().await;
    let mut a1 = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut a2 = server.v1().await;
    let l = login_v1(&mut a2, "alice@example.com", "pw-a").await;
    assert_eq!(l.ocid, a1.ocid);

    // Bob -> Alice: both of Alice's connections get identical frames.
    let ack = send_v1(&mut b.client, json!({"private_id": a1.ocid}), "hi alice").await;
    let f1 = a1.client.expect_code(0).await;
    let f2 = a2.expect_code(0).await;
    assert_eq!(f1, f2);
    assert_eq!(f1["cid"], ack["cid"]);
    assert_eq!(f1["sender"], json!({"ocid": b.ocid, "private_id": a1.ocid}));

    // Alice's first connection sends: it gets the ack only; her second connection and Bob
    // get the code 0 frame.
    let ack = send_v1(
        &mut a1.client,
        json!({"private_id": b.ocid}),
        "from my laptop",
    )
    .await;
    assert_eq!(ack["index"], json!(2));
    for rx in [&mut a2, &mut b.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
        assert_eq!(f["sender"], json!({"ocid": a1.ocid, "private_id": b.ocid}));
        assert_eq!(f["msg"], json!("from my laptop"));
        assert_eq!(f["index"], json!(2));
    }
    a1.client.expect_silence(300).await;

    // The same in a group.
    let g = create_group_v1(&mut a2, &[b.ocid]).await;
    let ack = send_v1(&mut a2, json!({"group_id": g}), "from my phone").await;
    for rx in [&mut a1.client, &mut b.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
        assert_eq!(f["sender"], json!({"ocid": a1.ocid, "group_id": g}));
    }
    a2.expect_silence(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_on_a_logged_in_connection_switches_account() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut c = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;

    // Alice's connection becomes Bob's.
    let l = login_v1(&mut a.client, "bob@example.com", "pw-b").await;
    assert_eq!(l.ocid, b.ocid);
    send_v1(&mut c.client, json!({"private_id": a.ocid}), "for alice").await;
    a.client.expect_silence(300).await;
    let ack = send_v1(&mut c.client, json!({"private_id": b.ocid}), "for bob").await;
    for rx in [&mut a.client, &mut b.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
        assert_eq!(f["sender"], json!({"ocid": c.ocid, "private_id": b.ocid}));
    }
    // And it sends as Bob.
    let ack = send_v1(&mut a.client, json!({"private_id": c.ocid}), "bob here").await;
    let f = c.client.expect_code(0).await;
    assert_eq!(f["cid"], ack["cid"]);
    assert_eq!(f["sender"], json!({"ocid": b.ocid, "private_id": c.ocid}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_login_or_resume_leaves_the_connection_as_it_was() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    for req in [
        json!({"code": 6, "login_type": 0, "account": "bob@example.com", "password": "wrong"}),
        json!({"code": 6, "login_type": 1, "account": "not a number", "password": "pw-b"}),
        json!({"code": 101, "token": "no-such-token"}),
    ] {
        let code = if req["code"] == json!(6) { 7 } else { 102 };
        let r = a.client.request(&req, code).await;
        assert_eq!(r["state"], json!(1), "{req} -> {r}");
    }
    a.client.expect_silence(200).await;
    // Still Alice: receives her messages and sends as her.
    let ack = send_v1(&mut b.client, json!({"private_id": a.ocid}), "still alice?").await;
    let f = a.client.expect_code(0).await;
    assert_eq!(f["cid"], ack["cid"]);
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "yes").await;
    let f = b.client.expect_code(0).await;
    assert_eq!(f["cid"], ack["cid"]);
    assert_eq!(f["sender"]["ocid"], json!(a.ocid));

    // The ocid account may be given with surrounding whitespace.
    let mut c = server.v1().await;
    let l = login_v1_with(&mut c, &json!({"code": 6, "login_type": 1, "account": format!(" {} ", a.ocid), "password": "pw-a"})).await;
    assert_eq!(l.ocid, a.ocid);
    let l = login_v1_with(
        &mut c,
        &json!({"code": 6, "login_type": 0, "account": "  Alice@Example.COM ", "password": "pw-a"}),
    )
    .await;
    assert_eq!(l.ocid, a.ocid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token_but_not_other_connections() {
    let server = TestServer::start().await;
    let mut a1 = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    // Two more connections resume with the same token at once.
    let mut a2 = server.v1().await;
    let mut a3 = server.v1().await;
    assert_eq!(resume_v1(&mut a2, &a1.token).await.ocid, a1.ocid);
    assert_eq!(resume_v1(&mut a3, &a1.token).await.ocid, a1.ocid);
    // And another login with its own token.
    let mut a4 = server.v1().await;
    let other = login_v1(&mut a4, "alice@example.com", "pw-a").await;

    a1.client.request(&json!({"code": 109}), 110).await;
    // The token is revoked for resumes...
    let mut probe = server.v1().await;
    let r = probe
        .request(&json!({"code": 101, "token": a1.token}), 102)
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
    // ... but connections that used it stay logged in, and so does the other session.
    let ack = send_v1(
        &mut b.client,
        json!({"private_id": a1.ocid}),
        "who is there?",
    )
    .await;
    for rx in [&mut a2, &mut a3, &mut a4] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
    }
    a1.client.expect_silence(200).await;
    send_v1(&mut a2, json!({"private_id": b.ocid}), "me").await;
    b.client.expect_code(0).await;
    // The other token still resumes.
    let mut a5 = server.v1().await;
    assert_eq!(resume_v1(&mut a5, &other.token).await.ocid, a1.ocid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_do_not_resume() {
    let server =
        TestServer::start_with(|c| c.limits.session_ttl = std::time::Duration::from_secs(1)).await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut c = server.v1().await;
    assert_eq!(resume_v1(&mut c, &a.token).await.ocid, a.ocid);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut c2 = server.v1().await;
    let r = c2
        .request(&json!({"code": 101, "token": a.token}), 102)
        .await;
    assert_eq!(r["state"], json!(1), "an expired token: {r}");
    // Connections already logged in stay so.
    let r = a
        .client
        .request(&json!({"code": 104, "private_id": a.ocid + 1}), 100)
        .await;
    assert_error(&r, "no_such_account", 4000, json!(104));
    let l = login_v1(&mut c2, "alice@example.com", "pw-a").await;
    assert_eq!(l.ocid, a.ocid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_limits_apply() {
    let server = TestServer::start_with(|c| {
        c.limits.max_text_bytes = 10;
        c.limits.max_group_members = 3;
    })
    .await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut reg = server.v1().await;
    let carol = register_v1(&mut reg, "carol@example.com", "Carol", "pw-c").await;
    let dan = register_v1(&mut reg, "dan@example.com", "Dan", "pw-d").await;

    // Text length is in bytes.
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "ééééé").await;
    assert_eq!(ack["index"], json!(1));
    assert_eq!(b.client.expect_code(0).await["msg"], json!("ééééé"));
    for msg in ["éééééé", "12345678901"] {
        let r = a
            .client
            .request(
                &json!({"code": 0, "sender": {"private_id": b.ocid}, "msg": msg}),
                100,
            )
            .await;
        assert_error(&r, "message_too_long", 4003, json!(0));
    }

    // Group size counts the owner; the checks run size, name, members.
    let long_name = "n".repeat(129);
    for (req, msg) in [
        (
            json!({"code": 8, "members": [b.ocid, carol, dan]}),
            "a group may have at most 3 members".to_owned(),
        ),
        (
            json!({"code": 8, "members": [b.ocid, carol, 99999, 99998]}),
            "a group may have at most 3 members".to_owned(),
        ),
        (
            json!({"code": 8, "members": [b.ocid, 99999], "name": long_name}),
            "field `name` must be at most 128 characters".to_owned(),
        ),
        (
            json!({"code": 8, "members": [b.ocid, 99999], "name": "ok"}),
            "no account with ocid 99999".to_owned(),
        ),
    ] {
        let r = a.client.request(&req, 9).await;
        assert_eq!(r["success"], json!(false), "{req} -> {r}");
        assert_eq!(r["msg"], json!(msg), "{req} -> {r}");
        assert!(r.get("group_id").is_none());
    }
    let ok_name = "ñ".repeat(128);
    let r = a
        .client
        .request(
            &json!({"code": 8, "members": [b.ocid, carol, a.ocid], "name": ok_name}),
            9,
        )
        .await;
    assert_eq!(
        r["success"],
        json!(true),
        "three members counting the owner, a 128-character name: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_input_rules() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    let reg = |email: Value, password: Value, name: Value| json!({"code": 4, "email": email, "password": password, "name": name});

    for (email, password, name, field) in [
        (json!("@example.com"), json!("p"), json!("N"), "`email`"),
        (json!("dan@"), json!("p"), json!("N"), "`email`"),
        (json!("d an@example.com"), json!("p"), json!("N"), "`email`"),
        (json!("dan.example.com"), json!("p"), json!("N"), "`email`"),
        (
            json!(format!("{}@example.com", "d".repeat(243))),
            json!("p"),
            json!("N"),
            "`email`",
        ),
        (
            json!("dan@example.com"),
            json!(""),
            json!("N"),
            "`password`",
        ),
        (
            json!("dan@example.com"),
            json!("p".repeat(1025)),
            json!("N"),
            "`password`",
        ),
        (json!("dan@example.com"), json!("p"), json!(""), "`name`"),
        (json!("dan@example.com"), json!("p"), json!("   "), "`name`"),
        (
            json!("dan@example.com"),
            json!("p"),
            json!("n".repeat(65)),
            "`name`",
        ),
    ] {
        let r = c.request(&reg(email.clone(), password, name), 100).await;
        let m = assert_error(&r, "invalid_field", 1003, json!(4));
        assert!(m.contains(field), "{email}: {m}");
    }

    // Limits inclusive; email trimmed and lower-cased; name trimmed; characters, not bytes.
    let email254 = format!("{}@example.com", "e".repeat(242));
    assert_eq!(email254.len(), 254);
    let ocid = register_v1(&mut c, &email254, &"名".repeat(64), &"p".repeat(1024)).await;
    login_v1(&mut c, &email254, &"p".repeat(1024)).await;
    let r = c
        .request(
            &json!({"code": 10, "ocid": ocid, "request_values": ["nickname", "email"]}),
            11,
        )
        .await;
    assert_eq!(
        r["data"],
        json!({"nickname": "名".repeat(64), "email": email254})
    );

    let ocid = register_v1(&mut c, "  Dan@Example.COM ", "  Dan  ", "p").await;
    let l = login_v1(&mut c, "dan@example.com", "p").await;
    assert_eq!(l.ocid, ocid);
    let r = c
        .request(
            &json!({"code": 10, "ocid": ocid, "request_values": ["nickname", "email"]}),
            11,
        )
        .await;
    assert_eq!(
        r["data"],
        json!({"nickname": "Dan", "email": "dan@example.com"})
    );
    let r = c
        .request(&reg(json!("dan@EXAMPLE.com"), json!("q"), json!("Dan")), 5)
        .await;
    assert_eq!(r["state"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_in_the_documented_order() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let long = "x".repeat(16_385);
    // Empty msg before the destination; length before the destination; client_id before it.
    for (req, name, number) in [
        (
            json!({"code": 0, "sender": {"private_id": 99999}, "msg": ""}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": {"group_id": 99999}, "msg": long}),
            "message_too_long",
            4003,
        ),
        (
            json!({"code": 0, "sender": {"private_id": 99999}, "msg": "x", "client_id": ""}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": {"private_id": a.ocid}, "msg": "x"}),
            "invalid_field",
            1003,
        ),
    ] {
        let r = a.client.request(&req, 100).await;
        assert_error(&r, name, number, json!(0));
    }
    // Decoding before login.
    let mut anon = server.v1().await;
    let r = anon
        .request(&json!({"code": 0, "sender": {"private_id": 1}}), 100)
        .await;
    assert_error(&r, "missing_field", 1002, json!(0));
    // History of your own private chat.
    let r = a
        .client
        .request(&json!({"code": 104, "private_id": a.ocid}), 100)
        .await;
    assert_eq!(
        assert_error(&r, "invalid_field", 1003, json!(104)),
        "a private chat needs another account than your own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_pings_are_sent() {
    let server = TestServer::start_with(|c| {
        c.idle_timeout = std::time::Duration::from_secs(1);
        c.ping_interval = std::time::Duration::from_millis(300);
    })
    .await;
    // A client that reads (and so answers pings with pongs) stays connected.
    let mut alive = server.v1().await;
    let mut silent = server.v1().await;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(2500);
    while tokio::time::Instant::now() < deadline {
        match alive.next_event_until(deadline).await {
            None => break,
            Some(natter_client::ws::Event::Ping) => pings += 1,
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 3, "pings every 300 ms: {pings}");
    still_alive(&mut alive).await;
    // A client that sends nothing at all (not even pongs) is closed with 1001.
    // (The client may see the close frame, or only a broken pipe when it answers the pings
    // that were queued before the close.)
    match silent.wait_closed().await {
        Ended::Close(code) => assert_eq!(code, Some(1001)),
        Ended::Eof | Ended::Error(_) => {}
    }
}

async fn still_alive(c: &mut Client) {
    c.request(&json!({"code": 107}), 108).await;
}
