//! Bad input on both dialects: every malformed frame gets its documented error, the
//! connection stays usable (except for a frame over 4x the limit), nothing is stored, and
//! other connections are not disturbed. What every dialect shares is written once over the
//! driver ([`Dialect`]).

use crate::common::*;
use crate::driver::{JsonDialect, for_each_dialect};
use natter_client::{Page, Target};
use serde_json::{Value, json};
use std::time::Duration;

for_each_dialect!(
    frame_level_errors,
    oversized_frames,
    rate_limit,
    bad_texts_store_nothing
);

/// The connection still answers a heartbeat.
async fn still_usable(c: &mut Client) {
    let r = c
        .request(&json!({"code": 107, "request_id": "alive"}), 108)
        .await;
    assert_eq!(r["request_id"], json!("alive"), "{r}");
}

/// Send raw text and expect a code 100 with this error; returns the frame.
async fn raw_error(c: &mut Client, raw: &str, name: &str, number: u32, request: Value) -> Value {
    c.send_raw(raw).await;
    let r = c.expect_code(100).await;
    assert_error(&r, name, number, request);
    r
}

fn message(frame: &Value) -> String {
    string(&error_body(frame)["message"])
}

async fn frame_level_errors<D: JsonDialect>() {
    let server = TestServer::start().await;
    let mut d = D::connect(&server).await;
    let c = d.client();

    // Not JSON: bad_json, request null; the connection goes on.
    let r = raw_error(c, "hello", "bad_json", 1000, Value::Null).await;
    assert!(message(&r).starts_with("frame is not valid JSON: "), "{r}");
    assert!(r.get("request_id").is_none(), "{r}");
    still_usable(c).await;
    let r = raw_error(
        c,
        r#"{"code": 107, "request_id": "x""#,
        "bad_json",
        1000,
        Value::Null,
    )
    .await;
    assert!(
        r.get("request_id").is_none(),
        "nothing is echoed from unparsable JSON: {r}"
    );
    // JSON that is not an object.
    for raw in ["[1,2]", "[]", "19", "\"code\"", "null", "true"] {
        let r = raw_error(c, raw, "bad_json", 1000, Value::Null).await;
        assert_eq!(message(&r), "frame must be a JSON object", "{raw}: {r}");
    }
    still_usable(c).await;

    // `code` missing, or not an integer: request null, request_id echoed.
    let body = D::envelope;
    let r = raw_error(
        c,
        &body(json!({"request_id": "m"})).to_string(),
        "missing_field",
        1002,
        Value::Null,
    )
    .await;
    assert_eq!(message(&r), "field `code` is required");
    assert_eq!(r["request_id"], json!("m"));
    for code in [
        json!("x"),
        json!("19"),
        json!(1.5),
        json!(null),
        json!([19]),
        json!({"n": 19}),
    ] {
        let raw = body(json!({"code": code, "request_id": 3})).to_string();
        let r = raw_error(c, &raw, "invalid_field", 1003, Value::Null).await;
        assert_eq!(message(&r), "field `code` must be an integer", "{raw}");
        assert_eq!(r["request_id"], json!(3), "{raw}");
    }

    // Unknown and reserved codes.
    let r = raw_error(
        c,
        &body(json!({"code": 99, "request_id": "u"})).to_string(),
        "unknown_code",
        1001,
        json!(99),
    )
    .await;
    assert_eq!(message(&r), "code 99 is not a request this server accepts");
    assert_eq!(r["request_id"], json!("u"));
    let r = raw_error(
        c,
        &body(json!({"code": -1})).to_string(),
        "unknown_code",
        1001,
        json!(-1),
    )
    .await;
    assert_eq!(message(&r), "code -1 is not a request this server accepts");
    for &code in D::RESERVED_CODES {
        let r = raw_error(
            c,
            &body(json!({"code": code})).to_string(),
            "unknown_code",
            1001,
            json!(code),
        )
        .await;
        assert_eq!(
            message(&r),
            format!("code {code} is reserved by the protocol and not served yet")
        );
    }
    for &code in D::SERVER_CODES {
        let r = raw_error(
            c,
            &body(json!({"code": code})).to_string(),
            "unknown_code",
            1001,
            json!(code),
        )
        .await;
        assert_eq!(
            message(&r),
            format!("code {code} is not a request this server accepts")
        );
    }

    // A bad request_id: invalid_field, nothing echoed, `request` is the code.
    let long = "x".repeat(65);
    for rid in [
        json!(1.5),
        json!({"id": 1}),
        json!([1]),
        json!(true),
        json!(long),
    ] {
        let raw = body(json!({"code": 107, "request_id": rid})).to_string();
        let r = raw_error(c, &raw, "invalid_field", 1003, json!(107)).await;
        assert_eq!(
            message(&r),
            "field `request_id` must be an integer or a string of at most 64 characters"
        );
        assert!(r.get("request_id").is_none(), "{r}");
    }
    // The longest string and big integers are fine.
    let r = c
        .request(&json!({"code": 107, "request_id": "y".repeat(64)}), 108)
        .await;
    assert_eq!(r["request_id"], json!("y".repeat(64)));
    let r = c
        .request(&json!({"code": 107, "request_id": i64::MIN}), 108)
        .await;
    assert_eq!(r["request_id"], json!(i64::MIN));
    let r = c
        .request(&json!({"code": 107, "request_id": u64::MAX}), 108)
        .await;
    assert_eq!(r["request_id"], json!(u64::MAX));

    // Binary frames.
    c.send_binary(&[0, 1, 2, 3]).await;
    let r = c.expect_code(100).await;
    assert_error(&r, "binary_frame", 1005, Value::Null);
    c.send_binary(br#"{"code":107}"#).await;
    let r = c.expect_code(100).await;
    assert_error(&r, "binary_frame", 1005, Value::Null);
    still_usable(c).await;
    c.expect_silence(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_field_errors_name_the_field() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    for (req, name, number, text) in [
        (
            json!({"code": 4, "email": "a@b", "password": 1, "name": "x", "request_id": "r"}),
            "invalid_field",
            1003,
            "field `password` must be a string",
        ),
        (
            json!({"code": 4, "email": ["a@b"], "password": "p", "name": "x", "request_id": "r"}),
            "invalid_field",
            1003,
            "field `email` must be a string",
        ),
        (
            json!({"code": 4, "password": "p", "name": "x", "request_id": "r"}),
            "missing_field",
            1002,
            "field `email` is required",
        ),
        (
            json!({"code": 4, "email": "a@b", "password": null, "name": "x", "request_id": "r"}),
            "missing_field",
            1002,
            "field `password` is required",
        ),
        (
            json!({"code": 6, "login_type": 0, "account": "a@b", "request_id": "r"}),
            "missing_field",
            1002,
            "field `password` is required",
        ),
        (
            json!({"code": 6, "login_type": "0", "account": "a@b", "password": "p", "request_id": "r"}),
            "invalid_field",
            1003,
            "field `login_type` must be an integer",
        ),
        (
            json!({"code": 6, "login_type": 4, "account": "a@b", "password": "p", "request_id": "r"}),
            "invalid_field",
            1003,
            "field `login_type` must be 0 (email), 1 (ocid), 2 (username) or 3 (phone)",
        ),
        (
            json!({"code": 101, "token": 42, "request_id": "r"}),
            "invalid_field",
            1003,
            "field `token` must be a string",
        ),
        // Decoding comes before the login check.
        (
            json!({"code": 0, "sender": {"private_id": 10001}, "msg": 7, "request_id": "r"}),
            "invalid_field",
            1003,
            "field `msg` must be a string",
        ),
        (
            json!({"code": 0, "sender": {"private_id": 10001}, "request_id": "r"}),
            "missing_field",
            1002,
            "field `msg` is required",
        ),
        (
            json!({"code": 8, "members": [10001, "x"], "request_id": "r"}),
            "invalid_field",
            1003,
            "field `members` must be a list of non-negative integers",
        ),
    ] {
        let code = req["code"].clone();
        let r = c.request(&req, 100).await;
        assert_error(&r, name, number, code);
        assert_eq!(message(&r), text, "{req}");
        assert_eq!(r["request_id"], json!("r"));
    }
    let r = c
        .request(&json!({"code": 0, "sender": "bob", "msg": "x"}), 100)
        .await;
    assert!(
        assert_error(&r, "invalid_field", 1003, json!(0)).contains("`sender`"),
        "{r}"
    );

    // Well-formed requests that need a login.
    for req in [
        json!({"code": 0, "sender": {"private_id": 10001}, "msg": "x", "request_id": 1}),
        json!({"code": 8, "members": [], "request_id": 1}),
        json!({"code": 10, "ocid": 10001, "request_values": ["ocid"], "request_id": 1}),
        json!({"code": 104, "private_id": 10001, "request_id": 1}),
        json!({"code": 109, "request_id": 1}),
    ] {
        let r = c.request(&req, 100).await;
        assert_error(&r, "not_logged_in", 2000, req["code"].clone());
        assert_eq!(r["request_id"], json!(1));
    }
    still_usable(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_field_errors_name_the_field() {
    let server = TestServer::start().await;
    let mut c = server.v0().await;
    for (req, name, number, text) in [
        (
            json!({"code": 4, "data": {"mail": "a@b", "password": 1}, "request_id": "r"}),
            "invalid_field",
            1003,
            "field `data.password` must be a string",
        ),
        (
            json!({"code": 4, "data": {"password": "p"}, "request_id": "r"}),
            "missing_field",
            1002,
            "field `data.mail` (or `data.email`) is required",
        ),
        (
            json!({"code": 4, "request_id": "r"}),
            "missing_field",
            1002,
            "field `data` is required",
        ),
        (
            json!({"code": 4, "data": "mail", "request_id": "r"}),
            "invalid_field",
            1003,
            "field `data` must be an object",
        ),
        (
            json!({"code": 107, "data": [], "request_id": "r"}),
            "invalid_field",
            1003,
            "field `data` must be an object",
        ),
        (
            json!({"code": 99, "request_id": "r"}),
            "missing_field",
            1002,
            "field `data` is required",
        ),
        (
            json!({"code": 2, "request_id": "r"}),
            "missing_field",
            1002,
            "field `data` is required",
        ),
        (
            json!({"code": 6, "data": {"ocId": "10001"}, "request_id": "r"}),
            "missing_field",
            1002,
            "field `data.password` is required",
        ),
        (
            json!({"code": 6, "data": {"ocId": [10001], "password": "c0ffee"}, "request_id": "r"}),
            "invalid_field",
            1003,
            "field `data.ocId` must be a number or a string",
        ),
        (
            json!({"code": 101, "data": {}, "request_id": "r"}),
            "missing_field",
            1002,
            "field `data.token` is required",
        ),
        (
            json!({"code": 0, "data": {"to": 10001, "msg": ["x"]}, "request_id": "r"}),
            "invalid_field",
            1003,
            "field `data.msg` must be a string",
        ),
        (
            json!({"code": 0, "data": {"msg": "x"}, "request_id": "r"}),
            "missing_field",
            1002,
            "one of `data.cid` or `data.to` is required",
        ),
        (
            json!({"code": 104, "data": {"cid": "two"}, "request_id": "r"}),
            "invalid_field",
            1003,
            "field `data.cid` must be a non-negative integer",
        ),
    ] {
        let code = req["code"].clone();
        let r = c.request(&req, 100).await;
        assert_error(&r, name, number, code);
        assert_eq!(message(&r), text, "{req}");
        assert_eq!(r["request_id"], json!("r"));
    }

    // An ocId that is not a number (an email, a negative number) names no account: a failed
    // login (state 1), as a wrong password is.
    for ocid in [json!("carol@example.com"), json!(-5)] {
        let r = c
            .request(
                &json!({"code": 6, "data": {"ocId": ocid, "password": "c0ffee"}, "request_id": "r"}),
                7,
            )
            .await;
        assert_eq!(r["data"], json!({"state": 1}), "{r}");
    }

    // Codes 107 and 109 may omit data (or send null).
    let r = c.request(&json!({"code": 107, "data": null}), 108).await;
    assert_eq!(r["data"], json!({}));

    // Well-formed requests that need a login.
    for req in [
        json!({"code": 0, "data": {"to": 10001, "msg": "x"}, "request_id": 1}),
        json!({"code": 104, "data": {"cid": 1}, "request_id": 1}),
        json!({"code": 109, "request_id": 1}),
    ] {
        let r = c.request(&req, 100).await;
        assert_error(&r, "not_logged_in", 2000, req["code"].clone());
        assert_eq!(r["request_id"], json!(1));
    }
    still_usable(&mut c).await;
}

async fn oversized_frames<D: JsonDialect>() {
    const LIMIT: usize = 4096;
    let server = TestServer::start_with(|c| c.max_frame_bytes = LIMIT).await;
    let mut d = D::connect(&server).await;
    let c = d.client();

    // A valid heartbeat padded to exactly the limit is answered normally.
    let pad = |len: usize| -> String {
        let head = r#"{"code":107,"request_id":"big","pad":""#;
        let tail = r#""}"#;
        let s = format!("{head}{}{tail}", "p".repeat(len - head.len() - tail.len()));
        assert_eq!(s.len(), len);
        s
    };
    c.send_raw(&pad(LIMIT)).await;
    let r = c.expect_code(108).await;
    assert_eq!(r["request_id"], json!("big"));

    // One byte more: frame_too_large, naming the request; still usable.
    c.send_raw(&pad(LIMIT + 1)).await;
    let r = c.expect_code(100).await;
    assert_error(&r, "frame_too_large", 1004, json!(107));
    assert_eq!(r["request_id"], json!("big"), "{r}");
    still_usable(c).await;
    // Exactly 4x the limit: still only frame_too_large.
    c.send_raw(&pad(4 * LIMIT)).await;
    let r = c.expect_code(100).await;
    assert_error(&r, "frame_too_large", 1004, json!(107));
    still_usable(c).await;

    // Over 4x the limit: the server closes the connection (1009), or the stream ends.
    c.try_send_raw(&pad(4 * LIMIT + 1000)).await;
    match c.wait_closed().await {
        Ended::Close(code) => assert_eq!(code, Some(1009), "close code"),
        Ended::Eof | Ended::Error(_) => {}
    }

    // The server itself is fine.
    let mut c2 = D::connect(&server).await;
    still_usable(c2.client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_connections_share_one_budget() {
    let server = TestServer::start_with(|c| {
        c.rate_per_sec = 1;
        c.rate_burst = 3;
    })
    .await;
    // Two frames from this connection's own (anonymous) budget: register and log in.
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut first = alice.client;
    let mut second = server.v1().await;
    resume_v1(&mut second, &alice.token).await;
    // The account's budget of 3 is spent on the first connection...
    for i in 0..3 {
        first
            .request(&json!({"code": 107, "request_id": i}), 108)
            .await;
    }
    // ...so the second one is limited too,
    let r = second
        .request(&json!({"code": 107, "request_id": "over"}), 100)
        .await;
    assert_error(&r, "rate_limited", 4290, json!(107));
    assert_eq!(r["request_id"], "over", "a refusal names its request: {r}");
    // while another account, and an anonymous connection, are not.
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    bob.client.request(&json!({"code": 107}), 108).await;
    let mut anon = server.v1().await;
    anon.request(&json!({"code": 107}), 108).await;
}

async fn rate_limit<D: JsonDialect>() {
    // A refill of 1/s leaves the 5..=7 window below two seconds of slack, so a slow machine
    // does not change the outcome.
    let server = TestServer::start_with(|c| {
        c.rate_per_sec = 1;
        c.rate_burst = 5;
    })
    .await;
    let mut d = D::connect(&server).await;
    let c = d.client();
    for i in 0..20 {
        c.feed_json(&json!({"code": 107, "request_id": i})).await;
    }
    c.flush().await;
    let (mut ok, mut limited) = (0, 0);
    for i in 0..20 {
        let f = c.recv().await;
        // Every reply, a refusal too, names its request.
        assert_eq!(f["request_id"], json!(i), "{f}");
        match f["code"].as_i64() {
            Some(108) => ok += 1,
            Some(100) => {
                assert_error(&f, "rate_limited", 4290, json!(107));
                limited += 1;
            }
            _ => panic!("unexpected {f}"),
        }
    }
    assert!(
        (5..=7).contains(&ok),
        "the burst of 5 passes, little more: {ok} ok"
    );
    assert!(limited >= 13, "the rest is rate limited: {limited}");
    c.expect_silence(100).await;

    // Bad frames count too.
    for _ in 0..10 {
        c.send_raw("nonsense").await;
    }
    let mut limited = 0;
    for _ in 0..10 {
        let f = c.recv().await;
        let name = error_body(&f)["error"].clone();
        if name == json!("rate_limited") {
            limited += 1;
        } else {
            assert_eq!(name, json!("bad_json"), "{f}");
        }
    }
    assert!(limited >= 5, "bad frames spend the budget too: {limited}");

    // The budget refills.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    still_usable(c).await;
}

/// One kind of garbage frame, each answered with a code 100.
async fn send_garbage(c: &mut Client, kind: usize) {
    match kind {
        0 => c.send_raw("{{{").await,
        1 => c.send_binary(&[0xff; 64]).await,
        2 => {
            c.send_raw(&format!(r#"{{"code":107,"p":"{}"}}"#, "y".repeat(70_000)))
                .await
        }
        3 => {
            c.send_raw(r#"{"code":0,"sender":{"private_id":10001},"msg":""}"#)
                .await
        }
        _ => c.send_raw(r#"{"code":0,"data":{"cid":1,"msg":"x"}}"#).await,
    }
}

/// A client sending garbage (including a frame that gets it disconnected) does not disturb a
/// conversation between two others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_client_does_not_disturb_others() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut m1 = user_v1(&server, "mallory@example.com", "Mallory", "pw-m").await;
    let mut m0 = server.v0().await;
    login_v0(&mut m0, &json!(m1.ocid), "pw-m").await;

    let huge = format!(r#"{{"code":107,"pad":"{}"}}"#, "x".repeat(4 * 65536 + 10));
    const GARBAGE: usize = 5;
    for round in 0..3u64 {
        for kind in 0..GARBAGE {
            send_garbage(&mut m1.client, kind).await;
            send_garbage(&mut m0, kind).await;
        }
        let ack = send_v1(
            &mut a.client,
            json!({"private_id": b.ocid}),
            &format!("a{round}"),
        )
        .await;
        let f = b.client.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
        assert_eq!(f["index"], json!(2 * round + 1));
        let ack = send_v1(
            &mut b.client,
            json!({"private_id": a.ocid}),
            &format!("b{round}"),
        )
        .await;
        let f = a.client.expect_code(0).await;
        assert_eq!(f["cid"], ack["cid"]);
        assert_eq!(f["index"], json!(2 * round + 2));
    }
    // Every garbage frame got an error.
    for c in [&mut m1.client, &mut m0] {
        for _ in 0..3 * GARBAGE {
            c.expect_code(100).await;
        }
    }
    // Now get the bad clients disconnected.
    m1.client.try_send_raw(&huge).await;
    m0.try_send_raw(&huge).await;
    m1.client.wait_closed().await;
    m0.wait_closed().await;
    let ack = send_v1(&mut a.client, json!({"private_id": b.ocid}), "still here").await;
    assert_eq!(ack["index"], json!(7));
    let f = b.client.expect_code(0).await;
    assert_eq!(f["msg"], json!("still here"));
    a.client.expect_silence(200).await;
    b.client.expect_silence(200).await;
}

/// Bad text requests from a logged-in client store nothing: history shows only the good
/// messages, gapless, and the receiver got only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_bad_text_requests_store_nothing() {
    let server = TestServer::start().await;
    let mut a = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut b = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let g = create_group_v1(&mut a.client, &[b.ocid]).await;
    let solo = create_group_v1(&mut b.client, &[]).await;
    let to_b = json!({"private_id": b.ocid});

    let first = send_v1(&mut a.client, to_b.clone(), "good 1").await;
    assert_eq!(first["index"], json!(1));
    b.client.expect_code(0).await;

    let too_long = "z".repeat(16_385);
    let long_client_id = "c".repeat(129);
    for (req, name, number) in [
        (
            json!({"code": 0, "sender": to_b, "msg": ""}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": to_b, "msg": too_long}),
            "message_too_long",
            4003,
        ),
        (
            json!({"code": 0, "sender": to_b, "msg": 5}),
            "invalid_field",
            1003,
        ),
        (json!({"code": 0, "sender": to_b}), "missing_field", 1002),
        (json!({"code": 0, "msg": "x"}), "missing_field", 1002),
        (
            json!({"code": 0, "sender": {"private_id": b.ocid, "group_id": g}, "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": {"private_id": a.ocid}, "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": {"private_id": 99999}, "msg": "x"}),
            "no_such_account",
            4000,
        ),
        (
            json!({"code": 0, "sender": {"private_id": "abc"}, "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": {"group_id": 99999}, "msg": "x"}),
            "no_such_chat",
            4001,
        ),
        (
            json!({"code": 0, "sender": {"group_id": solo}, "msg": "x"}),
            "not_a_member",
            4002,
        ),
        (
            json!({"code": 0, "sender": to_b, "msg": "x", "client_id": ""}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": to_b, "msg": "x", "client_id": long_client_id}),
            "invalid_field",
            1003,
        ),
        (
            json!({"code": 0, "sender": to_b, "msg": "x", "client_id": 5}),
            "invalid_field",
            1003,
        ),
    ] {
        let r = a.client.request(&req, 100).await;
        assert_error(&r, name, number, json!(0));
    }
    // Frame-level garbage that looks like a text message.
    let big = json!({"code": 0, "sender": to_b, "msg": "w".repeat(70_000)}).to_string();
    a.client.send_raw(&big).await;
    assert_error(
        &a.client.expect_code(100).await,
        "frame_too_large",
        1004,
        json!(0),
    );
    a.client
        .send_binary(
            json!({"code": 0, "sender": to_b, "msg": "bin"})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_error(
        &a.client.expect_code(100).await,
        "binary_frame",
        1005,
        Value::Null,
    );
    a.client
        .send_raw(r#"{"code":0,"sender":{"private_id":10002},"msg":"trunc"#)
        .await;
    assert_error(
        &a.client.expect_code(100).await,
        "bad_json",
        1000,
        Value::Null,
    );

    // The longest allowed text is fine, and gets the next index.
    let max_text = "m".repeat(16_384);
    let second = send_v1(&mut a.client, to_b.clone(), &max_text).await;
    assert_eq!(
        second["index"],
        json!(2),
        "failed requests consume no index"
    );
    let f = b.client.expect_code(0).await;
    assert_eq!(f["msg"], json!(max_text));
    b.client.expect_silence(200).await;

    let h = history_v1(&mut a.client, json!({"private_id": b.ocid})).await;
    assert_eq!(indexes(&h), [1, 2]);
    assert_eq!(h["messages"][0]["msg"], json!("good 1"));
    let h = history_v1(&mut a.client, json!({"group_id": g})).await;
    assert_eq!(h["messages"], json!([]));
    let h = history_v1(&mut b.client, json!({"group_id": solo})).await;
    assert_eq!(h["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_bad_text_requests_store_nothing() {
    let server = TestServer::start().await;
    let mut v = user_v1(&server, "vic@example.com", "Vic", "pw-v").await;
    let mut z = server.v0().await;
    let zed = register_v0(&mut z, "zed@example.com", "pw-z").await;
    login_v0(&mut z, &json!(zed), "pw-z").await;
    let other = create_group_v1(&mut v.client, &[]).await;

    let first = send_v0(&mut z, json!({"to": v.ocid, "msg": "good 1"})).await;
    let chat = int(&first["data"]["cid"]);
    v.client.expect_code(0).await;

    let too_long = "z".repeat(16_385);
    for (data, name, number) in [
        (json!({"cid": chat, "msg": ""}), "invalid_field", 1003),
        (
            json!({"cid": chat, "msg": too_long}),
            "message_too_long",
            4003,
        ),
        (json!({"cid": chat}), "missing_field", 1002),
        (
            json!({"cid": chat, "to": v.ocid, "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (
            json!({"cid": chat, "sender_id": v.ocid, "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (
            json!({"cid": chat, "sender_id": "nobody", "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (json!({"to": 99999, "msg": "x"}), "no_such_account", 4000),
        (json!({"cid": 99999, "msg": "x"}), "no_such_chat", 4001),
        (json!({"cid": other, "msg": "x"}), "not_a_member", 4002),
        (
            json!({"cid": chat, "msg": "x", "client_id": ""}),
            "invalid_field",
            1003,
        ),
    ] {
        let r = z.request(&json!({"code": 0, "data": data}), 100).await;
        assert_error(&r, name, number, json!(0));
    }
    z.send_raw(r#"{"code":0,"data":{"cid":1,"msg":"trunc"#)
        .await;
    assert_error(&z.expect_code(100).await, "bad_json", 1000, Value::Null);
    z.send_binary(b"{}").await;
    assert_error(&z.expect_code(100).await, "binary_frame", 1005, Value::Null);

    let second = send_v0(&mut z, json!({"cid": chat, "msg": "good 2"})).await;
    assert_eq!(second["data"]["index"], json!(2));
    let f = v.client.expect_code(0).await;
    assert_eq!(f["msg"], json!("good 2"));
    v.client.expect_silence(200).await;
    let (_, frames) = history_v0(&mut z, json!({"cid": chat})).await;
    let msgs: Vec<Value> = frames.iter().map(|f| f["data"]["msg"].clone()).collect();
    assert_eq!(msgs, [json!("good 1"), json!("good 2")]);
}

/// Every dialect: text requests that fail (bad values, unknown or forbidden chats) store
/// nothing and consume no index; the peer gets only the good messages, and history has only
/// them.
async fn bad_texts_store_nothing<D: JsonDialect>() {
    let server = TestServer::start().await;
    let mut v = user_v1(&server, "vic@example.com", "Vic", "pw-v").await;
    let mut z = D::connect(&server).await;
    let zed = z.register("zed@example.com", "Zed", "pw-z").await;
    z.login(zed, "zed@example.com", "pw-z").await;
    let other = create_group_v1(&mut v.client, &[]).await;
    let to_v = Target::Private(v.ocid);

    let first = z.send(to_v, "good 1").await;
    assert_eq!(first.index, 1);
    let f = v.client.expect_code(0).await;
    assert_eq!(f["cid"], json!(first.id));

    let too_long = "z".repeat(16_385);
    for (target, msg, client_id, name, number) in [
        (to_v, json!(""), None, "invalid_field", 1003),
        (to_v, json!(too_long), None, "message_too_long", 4003),
        (to_v, json!(5), None, "invalid_field", 1003),
        (to_v, json!("x"), Some(json!("")), "invalid_field", 1003),
        (
            to_v,
            json!("x"),
            Some(json!("c".repeat(129))),
            "invalid_field",
            1003,
        ),
        (
            Target::Private(zed),
            json!("x"),
            None,
            "invalid_field",
            1003,
        ),
        (
            Target::Private(99999),
            json!("x"),
            None,
            "no_such_account",
            4000,
        ),
        (Target::Group(99999), json!("x"), None, "no_such_chat", 4001),
        (Target::Group(other), json!("x"), None, "not_a_member", 4002),
    ] {
        let req = D::text_frame(target, msg, client_id);
        let r = z.client().request(&req, 100).await;
        assert_error(&r, name, number, json!(0));
    }

    let second = z.send(to_v, "good 2").await;
    assert_eq!(second.index, 2, "failed requests consume no index");
    let f = v.client.expect_code(0).await;
    assert_eq!(f["msg"], json!("good 2"));
    v.client.expect_silence(200).await;
    let (history, more) = z.history(to_v, Page::default()).await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["good 1", "good 2"], "{}", D::NAME);
    assert!(!more);
    let h = history_v1(&mut v.client, json!({"group_id": other})).await;
    assert_eq!(h["messages"], json!([]));
}
