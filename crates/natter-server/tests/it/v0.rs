//! OurChat draft v0 (`/ws/v0`) end to end, and talking to v1 users.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_register_and_login() {
    let server = TestServer::start().await;
    let mut c = server.v0().await;

    let r = c
        .request(
            &json!({"code": 4, "time": 1718000002, "data": {"mail": "Carol@Example.com", "password": "c0ffee"}, "request_id": "reg"}),
            5,
        )
        .await;
    assert_eq!(
        r["data"],
        json!({"state": 0, "ocId": "10001"}),
        "ocId is a string: {r}"
    );
    assert_eq!(r["request_id"], json!("reg"));
    assert_recent_time(&r["time"]);

    // Taken, in any case.
    let r = c
        .request(
            &json!({"code": 4, "data": {"mail": "CAROL@example.com", "password": "other"}}),
            5,
        )
        .await;
    assert_eq!(r["data"], json!({"state": 2}), "{r}");
    assert!(r.get("request_id").is_none());
    // Invalid.
    let r = c
        .request(&json!({"code": 4, "data": {"mail": "carol.example.com", "password": "x"}, "request_id": 1}), 100)
        .await;
    assert_error(&r, "invalid_field", 1003, json!(4));
    assert_eq!(r["request_id"], json!(1));
    let r = c
        .request(
            &json!({"code": 4, "data": {"mail": "dan@example.com"}}),
            100,
        )
        .await;
    let m = assert_error(&r, "missing_field", 1002, json!(4));
    assert_eq!(m, "field `data.password` is required");

    // Login by ocId as a string: code 7, then an empty code 8.
    let r = c
        .request(&json!({"code": 6, "time": 1718001000, "data": {"ocId": "10001", "password": "c0ffee"}, "request_id": 1}), 7)
        .await;
    assert_eq!(r["data"]["state"], json!(0), "{r}");
    assert_eq!(r["data"]["ocId"], json!("10001"), "{r}");
    assert_eq!(string(&r["data"]["token"]).len(), 43);
    assert_eq!(r["request_id"], json!(1));
    assert_recent_time(&r["time"]);
    let f = c.expect_code(8).await;
    assert_eq!(
        f,
        json!({"code": 8, "data": {"msg": [], "more": false}}),
        "empty code 8 with no time"
    );
    c.expect_silence(200).await;

    // By ocId as an integer.
    let mut c2 = server.v0().await;
    let l = login_v0(&mut c2, &json!(10001), "c0ffee").await;
    assert_eq!(l.ocid, "10001");
    assert!(l.missed.is_empty());

    // Wrong password, unknown ocId: state 1, nothing else.
    let mut c3 = server.v0().await;
    for (ocid, pw) in [
        (json!(10001), "nope"),
        (json!("10001"), "nope"),
        (json!("99999"), "c0ffee"),
    ] {
        let r = c3
            .request(
                &json!({"code": 6, "data": {"ocId": ocid, "password": pw}, "request_id": "x"}),
                7,
            )
            .await;
        assert_eq!(r["data"], json!({"state": 1}), "{r}");
        assert_eq!(r["request_id"], json!("x"));
        assert_recent_time(&r["time"]);
    }
    c3.expect_silence(200).await;
    // An email address is not an ocId: no account has it (state 1, like a wrong password).
    let r = c3
        .request(&json!({"code": 6, "data": {"ocId": "carol@example.com", "password": "c0ffee"}, "request_id": "l"}), 7)
        .await;
    assert_eq!(r["data"], json!({"state": 1}), "{r}");
    assert_eq!(r["request_id"], json!("l"));
    c3.expect_silence(200).await;

    // Heartbeat without data; resume; logout.
    let r = c3.request(&json!({"code": 107}), 108).await;
    assert_eq!(r["data"], json!({}));
    assert_recent_time(&r["time"]);
    let r = c3
        .request(
            &json!({"code": 101, "data": {"token": l.token}, "request_id": "r"}),
            102,
        )
        .await;
    assert_eq!(r["data"], json!({"state": 0, "ocId": "10001"}), "{r}");
    assert_eq!(r["request_id"], json!("r"));
    let (missed, batches) = read_undelivered_v0(&mut c3).await;
    assert!(missed.is_empty());
    assert_eq!(batches, [0]);
    let r = c3
        .request(&json!({"code": 109, "request_id": 9}), 110)
        .await;
    assert_eq!(r["data"], json!({}));
    assert_eq!(r["request_id"], json!(9));
    let r = c3
        .request(&json!({"code": 101, "data": {"token": l.token}}), 102)
        .await;
    assert_eq!(r["data"], json!({"state": 1}), "revoked: {r}");
    let r = c3
        .request(&json!({"code": 104, "data": {"cid": 1}}), 100)
        .await;
    assert_error(&r, "not_logged_in", 2000, json!(104));
}

/// Two users: `v` on v1, `z` on v0, both logged in.
struct Pair {
    v: User,
    z: Client,
    z_ocid: u64,
}

async fn pair(server: &TestServer) -> Pair {
    let v = user_v1(server, "vic@example.com", "Vic", "pw-v").await;
    let mut z = server.v0().await;
    let zed = register_v0(&mut z, "zed@example.com", "pw-z").await;
    let l = login_v0(&mut z, &json!(zed), "pw-z").await;
    assert!(l.missed.is_empty());
    Pair {
        v,
        z,
        z_ocid: zed.parse().expect("digits"),
    }
}

/// A v0 code 0 delivery must be exactly this message.
fn assert_v0_frame(f: &Value, chat: u64, sender: u64, msg: &str, mid: &Value, index: u64) {
    assert_eq!(f["code"], json!(0), "{f}");
    assert_recent_time(&f["time"]);
    assert_eq!(
        f["data"],
        json!({"cid": chat, "sender_id": sender.to_string(), "msg": msg, "mid": mid, "index": index}),
        "{f}"
    );
    assert!(f.get("request_id").is_none(), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_and_v1_chat_privately() {
    let server = TestServer::start().await;
    let Pair {
        mut v,
        mut z,
        z_ocid,
    } = pair(&server).await;

    // v0 starts the chat with data.to.
    let ack = z
        .request(
            &json!({"code": 0, "data": {"to": v.ocid, "msg": "hi vic"}, "request_id": 11}),
            103,
        )
        .await;
    assert_eq!(ack["request_id"], json!(11));
    assert_recent_time(&ack["time"]);
    let chat = int(&ack["data"]["cid"]);
    let mid1 = ack["data"]["mid"].clone();
    assert_eq!(ack["data"]["index"], json!(1));
    assert!(ack["data"].get("client_id").is_none(), "{ack}");
    let f = v.client.expect_code(0).await;
    assert_eq!(f["cid"], mid1, "v1 cid is the v0 mid: {f}");
    assert_eq!(
        f["sender"],
        json!({"ocid": z_ocid, "private_id": v.ocid}),
        "{f}"
    );
    assert_eq!(f["msg"], json!("hi vic"));
    assert_eq!(f["index"], json!(1));
    z.expect_silence(200).await;

    // v1 replies by private_id; v0 sees the chat id and sender_id as a string.
    let vack = send_v1(&mut v.client, json!({"private_id": z_ocid}), "hi zed").await;
    assert_eq!(vack["index"], json!(2));
    let f = z.expect_code(0).await;
    assert_v0_frame(&f, chat, v.ocid, "hi zed", &vack["cid"], 2);

    // v0 replies by cid, with sender_id as its own ocid (string, int, or empty).
    for (i, sender_id) in [
        json!(z_ocid.to_string()),
        json!(z_ocid),
        json!(""),
        Value::Null,
    ]
    .into_iter()
    .enumerate()
    {
        let index = 3 + i as u64;
        let msg = format!("reply {index}");
        let ack = send_v0(
            &mut z,
            json!({"cid": chat, "sender_id": sender_id, "msg": msg}),
        )
        .await;
        assert_eq!(ack["data"]["cid"], json!(chat));
        assert_eq!(ack["data"]["index"], json!(index));
        let f = v.client.expect_code(0).await;
        assert_eq!(f["cid"], ack["data"]["mid"]);
        assert_eq!(f["sender"], json!({"ocid": z_ocid, "private_id": v.ocid}));
        assert_eq!(f["msg"], json!(msg));
        assert_eq!(f["index"], json!(index));
    }
    // data.to for an existing chat reuses it.
    let ack = send_v0(&mut z, json!({"to": v.ocid.to_string(), "msg": "via to"})).await;
    assert_eq!(ack["data"]["cid"], json!(chat));
    assert_eq!(ack["data"]["index"], json!(7));
    v.client.expect_code(0).await;

    // Someone else's sender_id.
    let r = z
        .request(&json!({"code": 0, "data": {"cid": chat, "sender_id": v.ocid.to_string(), "msg": "spoof"}, "request_id": 12}), 100)
        .await;
    let m = assert_error(&r, "invalid_field", 1003, json!(0));
    assert!(m.contains("`data.sender_id`"), "{m}");
    assert_eq!(r["request_id"], json!(12));
    // Both or neither target; no msg; an unknown account or chat; not a member; own ocid.
    for (data, name, number) in [
        (
            json!({"cid": chat, "to": v.ocid, "msg": "x"}),
            "invalid_field",
            1003,
        ),
        (json!({"msg": "x"}), "missing_field", 1002),
        (json!({"cid": chat}), "missing_field", 1002),
        (json!({"cid": chat, "msg": ""}), "invalid_field", 1003),
        (json!({"cid": chat, "msg": 5}), "invalid_field", 1003),
        (json!({"to": 99999, "msg": "x"}), "no_such_account", 4000),
        (json!({"to": z_ocid, "msg": "x"}), "invalid_field", 1003),
        (json!({"cid": 99999, "msg": "x"}), "no_such_chat", 4001),
    ] {
        let r = z.request(&json!({"code": 0, "data": data}), 100).await;
        assert_error(&r, name, number, json!(0));
    }
    let r = z
        .request(&json!({"code": 0, "data": {"cid": chat}}), 100)
        .await;
    assert_eq!(
        assert_error(&r, "missing_field", 1002, json!(0)),
        "field `data.msg` is required"
    );
    // None of that was stored or delivered.
    v.client.expect_silence(200).await;
    let h = history_v1(&mut v.client, json!({"private_id": z_ocid})).await;
    assert_eq!(indexes(&h), [1, 2, 3, 4, 5, 6, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_and_v1_share_a_group() {
    let server = TestServer::start().await;
    let Pair {
        mut v,
        mut z,
        z_ocid,
    } = pair(&server).await;
    let mut w = user_v1(&server, "wes@example.com", "Wes", "pw-w").await;

    let g = create_group_v1(&mut v.client, &[z_ocid, w.ocid]).await;

    // v0 sends with data.cid = group id.
    let ack = z
        .request(
            &json!({"code": 0, "time": 1718001100, "data": {"cid": g, "sender_id": z_ocid.to_string(), "msg": "count me in", "client_id": "c-1"}, "request_id": 11}),
            103,
        )
        .await;
    assert_eq!(
        ack["data"],
        json!({"cid": g, "client_id": "c-1", "index": 1, "mid": ack["data"]["mid"]}),
        "{ack}"
    );
    int(&ack["data"]["mid"]);
    for rx in [&mut v.client, &mut w.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(f["cid"], ack["data"]["mid"]);
        assert_eq!(f["sender"], json!({"ocid": z_ocid, "group_id": g}), "{f}");
        assert_eq!(f["msg"], json!("count me in"));
        assert_eq!(f["index"], json!(1));
    }
    // The resend is idempotent on v0 too.
    let again = z
        .request(
            &json!({"code": 0, "data": {"cid": g, "msg": "count me in", "client_id": "c-1"}}),
            103,
        )
        .await;
    assert_eq!(again["data"], ack["data"]);
    v.client.expect_silence(200).await;
    // ... and a client_id is bound to its chat.
    let r = z
        .request(
            &json!({"code": 0, "data": {"to": v.ocid, "msg": "x", "client_id": "c-1"}}),
            100,
        )
        .await;
    assert_error(&r, "duplicate_client_id", 4004, json!(0));

    // v1 sends to the group: v0 gets data.cid = group id.
    let vack = send_v1(&mut v.client, json!({"group_id": g}), "hi all").await;
    let f = z.expect_code(0).await;
    assert_v0_frame(&f, g, v.ocid, "hi all", &vack["cid"], 2);
    let f = w.client.expect_code(0).await;
    assert_eq!(f["sender"], json!({"ocid": v.ocid, "group_id": g}));

    // A group v0 is not in.
    let other = create_group_v1(&mut v.client, &[w.ocid]).await;
    let r = z
        .request(&json!({"code": 0, "data": {"cid": other, "msg": "x"}}), 100)
        .await;
    assert_error(&r, "not_a_member", 4002, json!(0));
    let r = z
        .request(&json!({"code": 104, "data": {"cid": other}}), 100)
        .await;
    assert_error(&r, "not_a_member", 4002, json!(104));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_history_returns_json_strings() {
    let server = TestServer::start().await;
    let Pair {
        mut v,
        mut z,
        z_ocid,
    } = pair(&server).await;

    let first = send_v0(&mut z, json!({"to": v.ocid, "msg": "one"})).await;
    let chat = int(&first["data"]["cid"]);
    v.client.expect_code(0).await;
    let mut mids = vec![first["data"]["mid"].clone()];
    for i in 2..=5u64 {
        let mid = if i.is_multiple_of(2) {
            let ack = send_v1(
                &mut v.client,
                json!({"private_id": z_ocid}),
                &format!("m{i}"),
            )
            .await;
            z.expect_code(0).await;
            ack["cid"].clone()
        } else {
            let ack = send_v0(&mut z, json!({"cid": chat, "msg": format!("m{i}")})).await;
            v.client.expect_code(0).await;
            ack["data"]["mid"].clone()
        };
        mids.push(mid);
    }
    let sender_of = |i: u64| if i.is_multiple_of(2) { v.ocid } else { z_ocid };
    let msg_of = |i: u64| {
        if i == 1 {
            "one".to_owned()
        } else {
            format!("m{i}")
        }
    };

    let (r, frames) = history_v0(&mut z, json!({"cid": chat, "limit": 50})).await;
    assert_eq!(r["data"]["cid"], json!(chat));
    assert_eq!(r["data"]["more"], json!(false));
    assert_recent_time(&r["time"]);
    assert_eq!(frames.len(), 5);
    for (n, f) in frames.iter().enumerate() {
        let i = n as u64 + 1;
        assert_v0_frame(f, chat, sender_of(i), &msg_of(i), &mids[n], i);
    }

    let index_list = |frames: &[Value]| {
        frames
            .iter()
            .map(|f| int(&f["data"]["index"]))
            .collect::<Vec<_>>()
    };
    let (r, frames) = history_v0(&mut z, json!({"cid": chat.to_string(), "limit": 2})).await;
    assert_eq!(index_list(&frames), [4, 5]);
    assert_eq!(r["data"]["more"], json!(true));
    let (r, frames) = history_v0(&mut z, json!({"cid": chat, "limit": 2, "before": 4})).await;
    assert_eq!(index_list(&frames), [2, 3]);
    assert_eq!(r["data"]["more"], json!(true));
    let (r, frames) = history_v0(&mut z, json!({"cid": chat, "limit": 2, "before": 2})).await;
    assert_eq!(index_list(&frames), [1]);
    assert_eq!(r["data"]["more"], json!(false));
    let (r, frames) = history_v0(&mut z, json!({"cid": chat, "limit": 3, "after": 1})).await;
    assert_eq!(index_list(&frames), [2, 3, 4]);
    assert_eq!(r["data"]["more"], json!(true));
    let (r, frames) = history_v0(&mut z, json!({"cid": chat, "after": 4})).await;
    assert_eq!(index_list(&frames), [5]);
    assert_eq!(r["data"]["more"], json!(false));

    // The v1 view of the same chat has the same ids and indexes.
    let h = history_v1(&mut v.client, json!({"private_id": z_ocid})).await;
    let v1_cids: Vec<Value> = h["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["cid"].clone())
        .collect();
    assert_eq!(v1_cids, mids);

    let r = z
        .request(
            &json!({"code": 104, "data": {"cid": chat, "limit": 0}, "request_id": "h"}),
            100,
        )
        .await;
    assert_eq!(
        assert_error(&r, "invalid_field", 1003, json!(104)),
        "field `data.limit` must be between 1 and 500"
    );
    assert_eq!(r["request_id"], json!("h"));
    let r = z
        .request(
            &json!({"code": 104, "data": {"cid": chat, "before": 3, "after": 1}}),
            100,
        )
        .await;
    assert_error(&r, "invalid_field", 1003, json!(104));
    let r = z.request(&json!({"code": 104, "data": {}}), 100).await;
    assert_eq!(
        assert_error(&r, "missing_field", 1002, json!(104)),
        "field `data.cid` is required"
    );
    let r = z
        .request(&json!({"code": 104, "data": {"cid": 99999}}), 100)
        .await;
    assert_error(&r, "no_such_chat", 4001, json!(104));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_devices_and_v1_devices_of_one_account() {
    let server = TestServer::start().await;
    let Pair {
        mut v,
        mut z,
        z_ocid,
    } = pair(&server).await;
    // Zed also on a second v0 connection and on v1.
    let mut z2 = server.v0().await;
    login_v0(&mut z2, &json!(z_ocid), "pw-z").await;
    let mut z1 = server.v1().await;
    login_v1_with(
        &mut z1,
        &json!({"code": 6, "login_type": 1, "account": z_ocid, "password": "pw-z", "ext": 1}),
    )
    .await;

    let ack = send_v0(&mut z, json!({"to": v.ocid, "msg": "from v0"})).await;
    let chat = int(&ack["data"]["cid"]);
    let f = z2.expect_code(0).await;
    assert_v0_frame(&f, chat, z_ocid, "from v0", &ack["data"]["mid"], 1);
    for rx in [&mut z1, &mut v.client] {
        let f = rx.expect_code(0).await;
        assert_eq!(
            f["sender"],
            json!({"ocid": z_ocid, "private_id": v.ocid}),
            "{f}"
        );
        assert_eq!(f["cid"], ack["data"]["mid"]);
    }
    z.expect_silence(300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_ids_and_accounts_across_dialects() {
    let server = TestServer::start().await;
    let Pair {
        mut v,
        mut z,
        z_ocid,
    } = pair(&server).await;

    // The v0-registered account's nickname is its mail's local part, seen from v1.
    let r = v
        .client
        .request(
            &json!({"code": 10, "ocid": z_ocid, "request_values": ["nickname", "ocid", "email"]}),
            11,
        )
        .await;
    assert_eq!(
        r["data"],
        json!({"nickname": "zed", "ocid": z_ocid, "email": null})
    );

    // A private chat's id is not a group id for v1.
    let ack = send_v0(&mut z, json!({"to": v.ocid, "msg": "hi"})).await;
    let private_chat = int(&ack["data"]["cid"]);
    v.client.expect_code(0).await;
    let r = v
        .client
        .request(
            &json!({"code": 0, "sender": {"group_id": private_chat}, "msg": "x"}),
            100,
        )
        .await;
    assert_error(&r, "no_such_chat", 4001, json!(0));
    let r = v
        .client
        .request(&json!({"code": 104, "group_id": private_chat}), 100)
        .await;
    assert_error(&r, "no_such_chat", 4001, json!(104));
    // ... but a group id is a chat id for v0, and v0 history of the private chat works.
    let g = create_group_v1(&mut v.client, &[z_ocid]).await;
    assert_ne!(g, private_chat);
    let (_, frames) = history_v0(&mut z, json!({"cid": g})).await;
    assert!(frames.is_empty());
    let (_, frames) = history_v0(&mut z, json!({"cid": private_chat})).await;
    assert_eq!(frames.len(), 1);

    // sender_id is checked before the text.
    let r = z
        .request(
            &json!({"code": 0, "data": {"cid": private_chat, "sender_id": v.ocid, "msg": ""}}),
            100,
        )
        .await;
    assert_eq!(
        assert_error(&r, "invalid_field", 1003, json!(0)),
        "field `data.sender_id` must be your own ocid"
    );

    // A v0 token resumes on v1, and a v1 token on v0.
    let mut z_again = server.v0().await;
    let l = login_v0(&mut z_again, &json!(z_ocid.to_string()), "pw-z").await;
    let mut z1 = server.v1().await;
    let r = resume_v1(&mut z1, &l.token).await;
    assert_eq!(r.ocid, z_ocid);
    let mut v0 = server.v0().await;
    let r = v0
        .request(&json!({"code": 101, "data": {"token": v.token}}), 102)
        .await;
    assert_eq!(r["data"], json!({"state": 0, "ocId": v.ocid.to_string()}));
    read_undelivered_v0(&mut v0).await;

    // v0 can log in to an account registered on v1 (by ocid) and v1 to one registered on v0
    // (by email or ocid).
    let mut c = server.v0().await;
    let l = login_v0(&mut c, &json!(v.ocid), "pw-v").await;
    assert_eq!(l.ocid, v.ocid.to_string());
    let mut c = server.v1().await;
    let l = login_v1(&mut c, "ZED@example.com", "pw-z").await;
    assert_eq!(l.ocid, z_ocid);
}
