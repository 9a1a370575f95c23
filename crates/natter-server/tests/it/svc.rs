//! The service-code dialect (seed 002) over the wire: raw JSON bodies posted to `/svc` on a
//! plain HTTP/1.1 connection, each reply's HTTP status checked against its `state_code`. Every
//! service code, every cause and status, paging both ways, the limits, and service-code clients
//! chatting with OurChat v1 clients in private chats and groups.

use crate::common::*;
use natter_server::domain::Registration;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP exchange: the status and the body as JSON.
struct Reply {
    status: u16,
    body: Value,
}

/// POST `body` as it is to `/svc` on a connection of its own; the reply's status and JSON body.
async fn post_raw(addr: SocketAddr, body: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /svc HTTP/1.1\r\nHost: natter\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write head");
    // A server that refuses a body early may close before all of it is written.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(RECV_TIMEOUT, s.read_to_end(&mut raw))
        .await
        .expect("the reply came in time")
        .expect("read the reply");
    let text = String::from_utf8(raw).expect("a UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "replies are JSON: {head}"
    );
    let body: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(
        body["state_code"],
        json!(status),
        "the HTTP status is the state_code: {body}"
    );
    Reply { status, body }
}

/// POST `{"service_code": code, "content": content}`.
async fn call(addr: SocketAddr, code: i64, content: Value) -> Reply {
    let body = json!({"service_code": code, "content": content}).to_string();
    post_raw(addr, body.as_bytes()).await
}

/// A call that must succeed; its content.
async fn ok(addr: SocketAddr, code: i64, content: Value) -> Value {
    let r = call(addr, code, content.clone()).await;
    assert_eq!(
        (r.status, &r.body["content"]["msg"]),
        (200, &json!("success")),
        "code {code} with {content} failed: {}",
        r.body
    );
    r.body["content"].clone()
}

/// A call that must be refused with `cause`.
async fn refused(addr: SocketAddr, code: i64, content: Value, cause: &str) {
    let r = call(addr, code, content.clone()).await;
    assert_eq!(
        r.body["content"],
        json!({"msg": "failed", "cause": cause}),
        "code {code} with {content}: {}",
        r.body
    );
    assert_eq!(r.status, 200);
}

/// A call that must be answered `status` with a `msg`; that msg.
async fn status(addr: SocketAddr, code: i64, content: Value, status: u16) -> String {
    let r = call(addr, code, content.clone()).await;
    assert_eq!(r.status, status, "code {code} with {content}: {}", r.body);
    string(&r.body["content"]["msg"])
}

/// A registered service-code account.
struct Svc {
    uuid: String,
    token: String,
    ocid: u64,
}

async fn register(addr: SocketAddr, uuid: &str, token: &str) -> Svc {
    let r = ok(addr, 2, json!({"id": uuid, "token": token})).await;
    Svc {
        uuid: uuid.to_owned(),
        token: token.to_owned(),
        ocid: int(&r["ocid"]),
    }
}

fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// The `values` of a code 3 or 9 reply as (index, content).
fn page(r: &Value) -> Vec<(u64, String)> {
    r["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values: {r}"))
        .iter()
        .map(|m| (int(&m["index"]), string(&m["content"])))
        .collect()
}

fn indexes_of(r: &Value) -> Vec<u64> {
    page(r).into_iter().map(|(i, _)| i).collect()
}

/// An account's UUID as OurChat v1 code 10 tells it.
async fn uuid_v1(c: &mut Client, ocid: u64) -> String {
    let r = c
        .request(
            &json!({"code": 10, "ocid": ocid, "request_values": ["uuid", "ocid"]}),
            11,
        )
        .await;
    assert_eq!(r["data"]["ocid"], json!(ocid), "{r}");
    string(&r["data"]["uuid"])
}

#[tokio::test]
async fn registration_and_login_by_uuid_and_token() {
    let server = TestServer::start().await;
    let addr = server.addr;
    // The seed writes the token as a number; it is the same token as its digits.
    let r = ok(
        addr,
        2,
        json!({"id": "67E55044-10B1-426F-9247-BB680E5FE0C8", "token": 1_145_141_919_810_u64}),
    )
    .await;
    let ocid = int(&r["ocid"]);
    assert!(ocid >= 10001, "{r}");
    let r = ok(
        addr,
        1,
        json!({"id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "token": "1145141919810"}),
    )
    .await;
    assert_eq!(
        r,
        json!({"msg": "success", "ocid": ocid, "name": "user-67e55044"})
    );
    let r = ok(
        addr,
        2,
        json!({"id": uuid(2), "token": "another-token", "name": "Bea"}),
    )
    .await;
    let bea = int(&r["ocid"]);
    assert_eq!(bea, ocid + 1);
    assert_eq!(
        ok(addr, 1, json!({"id": uuid(2), "token": "another-token"})).await["name"],
        json!("Bea")
    );

    // Taken, wrong, malformed.
    refused(
        addr,
        2,
        json!({"id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "token": "fresh-token"}),
        "uuid_taken",
    )
    .await;
    refused(
        addr,
        2,
        json!({"id": uuid(3), "token": 1_145_141_919_810_u64}),
        "token_taken",
    )
    .await;
    // Another's token, or a token with another's UUID, is no login.
    assert_eq!(
        status(
            addr,
            1,
            json!({"id": uuid(2), "token": 1_145_141_919_810_u64}),
            401
        )
        .await,
        "unknown id or token"
    );
    assert_eq!(
        status(
            addr,
            1,
            json!({"id": uuid(9), "token": "another-token"}),
            401
        )
        .await,
        "unknown id or token"
    );
    assert_eq!(
        status(addr, 2, json!({"id": "nope", "token": "12345678"}), 400).await,
        "field `content.id` must be a UUID"
    );
    assert_eq!(
        status(addr, 2, json!({"id": uuid(4), "token": "short"}), 400).await,
        "field `content.token` must be 8 to 128 characters"
    );
    assert_eq!(
        status(
            addr,
            2,
            json!({"id": uuid(4), "token": "t".repeat(129)}),
            400
        )
        .await,
        "field `content.token` must be 8 to 128 characters"
    );
    assert_eq!(
        status(addr, 2, json!({"id": uuid(4)}), 400).await,
        "field `content.token` is required"
    );
    assert_eq!(
        status(addr, 1, json!({"token": "12345678"}), 400).await,
        "field `content.id` is required"
    );
    // A service-code account has no password: OurChat cannot log in to it with any.
    let mut c = server.v1().await;
    let r = c
        .request(
            &json!({"code": 6, "login_type": 1, "account": ocid, "password": ""}),
            7,
        )
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
}

#[tokio::test]
async fn registration_follows_the_servers_mode() {
    let closed = TestServer::start_with(|c| c.limits.registration = Registration::Closed).await;
    refused(
        closed.addr,
        2,
        json!({"id": uuid(1), "token": "12345678"}),
        "registration_closed",
    )
    .await;

    let server = TestServer::start_with(|c| c.limits.registration = Registration::Invite).await;
    let domain = natter_server::app::operator_domain(&server.config)
        .await
        .expect("an operator's view of the store");
    let code = domain.create_invite(None).await.expect("invite");
    let addr = server.addr;
    refused(
        addr,
        2,
        json!({"id": uuid(1), "token": "12345678"}),
        "invalid_invite",
    )
    .await;
    ok(
        addr,
        2,
        json!({"id": uuid(1), "token": "12345678", "invite": code}),
    )
    .await;
    refused(
        addr,
        2,
        json!({"id": uuid(2), "token": "87654321", "invite": code}),
        "invalid_invite",
    )
    .await;

    // A banned account is refused, whatever it asks.
    let me = ok(addr, 1, json!({"id": uuid(1), "token": "12345678"})).await;
    domain
        .set_banned(natter_proto::Ocid(int(&me["ocid"])), true)
        .await
        .expect("ban");
    refused(
        addr,
        1,
        json!({"id": uuid(1), "token": "12345678"}),
        "account_disabled",
    )
    .await;
    refused(addr, 4, json!({"token": "12345678"}), "account_disabled").await;
    domain.close().await;
}

#[tokio::test]
async fn every_service_code_with_a_token() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let a = register(addr, &uuid(1), "token-of-a").await;
    let b = register(addr, &uuid(2), "token-of-b").await;
    let c = register(addr, &uuid(3), "token-of-c").await;

    // 7, a private chat: the same one however often it is asked for, and in both directions.
    let r = ok(
        addr,
        7,
        json!({"token": a.token, "name": "ignored", "is_group": false, "member": [{"id": b.uuid}]}),
    )
    .await;
    let private = int(&r["chat"]);
    let r = ok(
        addr,
        7,
        json!({"token": b.token, "name": "", "is_group": false,
               "member": [{"id": a.uuid}, {"id": b.uuid}]}),
    )
    .await;
    assert_eq!(int(&r["chat"]), private);

    // 5: each send answered with its index.
    for (n, text) in ["one", "two", "three"].iter().enumerate() {
        let r = ok(
            addr,
            5,
            json!({"token": a.token, "chat": private, "msg": text}),
        )
        .await;
        assert_eq!(r, json!({"msg": "success", "index": n + 1}));
    }
    let r = ok(
        addr,
        5,
        json!({"token": b.token, "chat": private, "msg": "four"}),
    )
    .await;
    assert_eq!(int(&r["index"]), 4);

    // 3: newest first, as the seed lists them.
    let r = ok(
        addr,
        3,
        json!({"token": b.token, "chat": private, "index": -1, "count": 20}),
    )
    .await;
    let values = r["values"].as_array().expect("values");
    assert_eq!(indexes_of(&r), vec![4, 3, 2, 1]);
    assert_eq!(values[0]["id"], json!(b.uuid));
    assert_eq!(values[1]["id"], json!(a.uuid));
    assert_eq!(values[0]["content"], json!("four"));
    assert!(values[0].get("name").is_none(), "code 3 has no name: {r}");
    let time = values[0]["time"].as_i64().expect("time");
    assert!(
        (time - now_s() * 1000).abs() < 60_000,
        "times are Unix milliseconds: {time}"
    );

    // 9: oldest first, with names.
    let r = ok(
        addr,
        9,
        json!({"token": a.token, "chat": private, "index": 2, "count": 2}),
    )
    .await;
    assert_eq!(
        r["values"],
        json!([
            {"id": a.uuid, "name": "user-00000000", "content": "two", "index": 2,
             "time": r["values"][0]["time"]},
            {"id": a.uuid, "name": "user-00000000", "content": "three", "index": 3,
             "time": r["values"][1]["time"]},
        ])
    );

    // 7, a group: its id as an extension; the members named by UUID, the creator included.
    let r = ok(
        addr,
        7,
        json!({"token": a.token, "name": "Readers", "is_group": true, "member": [{"id": b.uuid}]}),
    )
    .await;
    let group = int(&r["chat"]);
    assert_ne!(group, private);

    // 6: a group made here is open; joining twice is refused.
    let r = ok(addr, 6, json!({"token": c.token, "chat": group})).await;
    assert_eq!(r, json!({"msg": "success", "joined": true}));
    refused(
        addr,
        6,
        json!({"token": c.token, "chat": group}),
        "already_member",
    )
    .await;
    refused(
        addr,
        6,
        json!({"token": c.token, "chat": private}),
        "no_such_group",
    )
    .await;
    refused(
        addr,
        6,
        json!({"token": c.token, "chat": 999}),
        "no_such_group",
    )
    .await;
    let r = ok(
        addr,
        5,
        json!({"token": c.token, "chat": group, "msg": "hi all"}),
    )
    .await;
    let sent = int(&r["index"]);

    // The join is in the group's history as a system message, before what C wrote.
    let r = ok(
        addr,
        9,
        json!({"token": b.token, "chat": group, "index": -1, "count": 2}),
    )
    .await;
    assert_eq!(
        page(&r),
        vec![
            (sent - 1, "user-00000000 joined".to_owned()),
            (sent, "hi all".to_owned())
        ]
    );
    assert_eq!(r["values"][0]["system"], json!(true), "{r}");
    assert_eq!(r["values"][0]["id"], json!(c.uuid), "{r}");
    assert!(r["values"][1].get("system").is_none(), "{r}");

    // 4: every chat, the most recently active first, members by UUID.
    let r = ok(addr, 4, json!({"token": b.token})).await;
    let values = r["values"].as_array().expect("values");
    assert_eq!(values.len(), 2, "{r}");
    assert_eq!(values[0]["id"], json!(group));
    assert_eq!(values[0]["name"], json!("Readers"));
    assert_eq!(
        (&values[0]["type"], &values[0]["is_group"]),
        (&json!("chat"), &json!(true))
    );
    let mut usrs: Vec<String> = values[0]["usrs"]
        .as_array()
        .expect("usrs")
        .iter()
        .map(|u| string(&u["id"]))
        .collect();
    usrs.sort();
    assert_eq!(usrs, vec![a.uuid.clone(), b.uuid.clone(), c.uuid.clone()]);
    assert_eq!(
        values[1],
        json!({"id": private, "name": "user-00000000", "type": "user", "is_group": false,
               "usrs": [{"id": a.uuid}, {"id": b.uuid}]})
    );
    let r = ok(addr, 4, json!({"token": c.token})).await;
    assert_eq!(r["values"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(c.ocid, a.ocid + 2);
}

#[tokio::test]
async fn every_refusal_has_its_cause_or_status() {
    let server = TestServer::start_with(|c| {
        c.limits.max_text_bytes = 10;
        c.limits.max_group_members = 3;
        c.svc_max_body_bytes = 2048;
    })
    .await;
    let addr = server.addr;
    let a = register(addr, &uuid(1), "token-of-a").await;
    let b = register(addr, &uuid(2), "token-of-b").await;
    let c = register(addr, &uuid(3), "token-of-c").await;
    let d = register(addr, &uuid(4), "token-of-d").await;
    let chat = int(&ok(
        addr,
        7,
        json!({"token": a.token, "name": "", "is_group": false, "member": [{"id": b.uuid}]}),
    )
    .await["chat"]);

    // Chats that are not there, or not the caller's.
    for code in [3, 9] {
        for (token, chat, cause) in [
            (&a.token, 999, "no_such_chat"),
            (&c.token, chat, "not_a_member"),
        ] {
            refused(
                addr,
                code,
                json!({"token": token, "chat": chat, "index": -1, "count": 5}),
                cause,
            )
            .await;
        }
    }
    refused(
        addr,
        5,
        json!({"token": a.token, "chat": 999, "msg": "x"}),
        "no_such_chat",
    )
    .await;
    refused(
        addr,
        5,
        json!({"token": c.token, "chat": chat, "msg": "x"}),
        "not_a_member",
    )
    .await;
    refused(
        addr,
        5,
        json!({"token": a.token, "chat": chat, "msg": "eleven byte"}),
        "message_too_long",
    )
    .await;
    assert_eq!(
        status(
            addr,
            5,
            json!({"token": a.token, "chat": chat, "msg": ""}),
            400
        )
        .await,
        "field `content.msg` must not be empty"
    );

    // A retried send with its client_id is the stored message; reused for another chat, it is
    // refused.
    let first = ok(
        addr,
        5,
        json!({"token": a.token, "chat": chat, "msg": "once", "client_id": "c-1"}),
    )
    .await;
    let again = ok(
        addr,
        5,
        json!({"token": a.token, "chat": chat, "msg": "once", "client_id": "c-1"}),
    )
    .await;
    assert_eq!(first, again);
    let other = int(&ok(
        addr,
        7,
        json!({"token": a.token, "name": "", "is_group": false, "member": [{"id": c.uuid}]}),
    )
    .await["chat"]);
    refused(
        addr,
        5,
        json!({"token": a.token, "chat": other, "msg": "once", "client_id": "c-1"}),
        "duplicate_client_id",
    )
    .await;

    // 7's refusals.
    refused(
        addr,
        7,
        json!({"token": a.token, "name": "g", "is_group": true, "member": [{"id": uuid(99)}]}),
        "no_such_user",
    )
    .await;
    refused(
        addr,
        7,
        json!({"token": a.token, "name": "", "is_group": false, "member": [{"id": a.uuid}]}),
        "own_account",
    )
    .await;
    refused(
        addr,
        7,
        json!({"token": a.token, "name": "", "is_group": false,
               "member": [{"id": b.uuid}, {"id": c.uuid}]}),
        "one_member_needed",
    )
    .await;
    refused(
        addr,
        7,
        json!({"token": a.token, "name": "", "is_group": false, "member": []}),
        "one_member_needed",
    )
    .await;
    refused(
        addr,
        7,
        json!({"token": a.token, "name": "big", "is_group": true,
               "member": [{"id": b.uuid}, {"id": c.uuid}, {"id": d.uuid}]}),
        "group_full",
    )
    .await;
    assert_eq!(
        status(
            addr,
            7,
            json!({"token": a.token, "name": "g", "is_group": true, "member": [{"id": "x"}]}),
            400
        )
        .await,
        "each `id` of field `content.member` must be a UUID"
    );
    assert_eq!(
        status(
            addr,
            7,
            json!({"token": a.token, "name": "n".repeat(129), "is_group": true, "member": []}),
            400
        )
        .await,
        "field `content.name` must be at most 128 characters"
    );
    assert_eq!(
        status(
            addr,
            7,
            json!({"token": a.token, "name": "g", "member": []}),
            400
        )
        .await,
        "field `content.is_group` is required"
    );

    // 6 into a full group.
    let group = int(&ok(
        addr,
        7,
        json!({"token": a.token, "name": "three", "is_group": true,
                   "member": [{"id": b.uuid}, {"id": c.uuid}]}),
    )
    .await["chat"]);
    refused(
        addr,
        6,
        json!({"token": d.token, "chat": group}),
        "group_full",
    )
    .await;

    // 401: a token nobody has.
    for (code, content) in [
        (
            3,
            json!({"token": "nobody-has-it", "chat": chat, "index": -1, "count": 1}),
        ),
        (4, json!({"token": 12_345_678})),
        (
            5,
            json!({"token": "nobody-has-it", "chat": chat, "msg": "x"}),
        ),
        (6, json!({"token": "nobody-has-it", "chat": group})),
        (
            7,
            json!({"token": "nobody-has-it", "name": "", "is_group": true, "member": []}),
        ),
        (
            9,
            json!({"token": "nobody-has-it", "chat": chat, "index": 0, "count": 1}),
        ),
    ] {
        assert_eq!(status(addr, code, content, 401).await, "unknown token");
    }

    // 404: codes there are none of, 8 included.
    for code in [0, 8, 10, -1] {
        assert_eq!(
            status(addr, code, json!({"token": a.token}), 404).await,
            format!("unknown service code {code}")
        );
    }

    // 400: bodies that are not requests.
    for (body, msg) in [
        ("[1, 2]", "the body must be a JSON object"),
        (r#"{"content": {}}"#, "field `service_code` is required"),
        (
            r#"{"service_code": "4", "content": {}}"#,
            "field `service_code` must be an integer",
        ),
        (
            r#"{"service_code": 4, "content": []}"#,
            "field `content` must be an object",
        ),
        (
            r#"{"service_code": 4, "content": {"token": true}}"#,
            "field `content.token` must be a string or a non-negative integer",
        ),
        (
            r#"{"service_code": 9, "content": {"token": "t", "chat": 1, "index": "x", "count": 1}}"#,
            "field `content.index` must be an integer",
        ),
        (
            r#"{"service_code": 3, "content": {"token": "t", "chat": -4, "index": 0, "count": 1}}"#,
            "field `content.chat` must be a non-negative integer",
        ),
        (
            r#"{"service_code": 9, "content": {"token": "t", "chat": 1, "index": 0, "count": 0}}"#,
            "field `content.count` must be at least 1",
        ),
    ] {
        let r = post_raw(addr, body.as_bytes()).await;
        assert_eq!(
            (r.status, string(&r.body["content"]["msg"])),
            (400, msg.to_owned()),
            "{body}"
        );
    }
    let r = post_raw(addr, b"{\"service_code\": 4,").await;
    assert_eq!(r.status, 400);
    assert!(
        string(&r.body["content"]["msg"]).starts_with("the body is not valid JSON"),
        "{}",
        r.body
    );

    // 413: a body over the limit, however well-formed.
    let big = json!({"service_code": 5, "content": {"token": a.token, "chat": chat,
                                                     "msg": "x".repeat(2048)}})
    .to_string();
    let r = post_raw(addr, big.as_bytes()).await;
    assert_eq!(
        (r.status, string(&r.body["content"]["msg"])),
        (413, "the body may be at most 2048 bytes".to_owned())
    );
}

#[tokio::test]
async fn paging_forward_and_backward_is_gapless() {
    let server = TestServer::start_with(|c| c.svc_max_count = 10).await;
    let addr = server.addr;
    let a = register(addr, &uuid(1), "token-of-a").await;
    let b = register(addr, &uuid(2), "token-of-b").await;
    let chat = int(&ok(
        addr,
        7,
        json!({"token": a.token, "name": "", "is_group": false, "member": [{"id": b.uuid}]}),
    )
    .await["chat"]);
    let get = |code: i64, index: i64, count: u32| {
        let token = b.token.clone();
        async move {
            indexes_of(
                &ok(
                    addr,
                    code,
                    json!({"token": token, "chat": chat, "index": index, "count": count}),
                )
                .await,
            )
        }
    };
    assert!(get(9, -1, 5).await.is_empty(), "an empty chat");
    assert!(get(3, -1, 5).await.is_empty(), "an empty chat");
    for n in 1..=25 {
        let r = ok(
            addr,
            5,
            json!({"token": a.token, "chat": chat, "msg": format!("m{n}")}),
        )
        .await;
        assert_eq!(int(&r["index"]), n);
    }
    let range = |from: u64, to: u64| (from..=to).collect::<Vec<u64>>();

    // 9 forward: a poll from the last index seen plus one reads everything once.
    let mut seen = Vec::new();
    let mut next: i64 = 1;
    loop {
        let got = get(9, next, 10).await;
        let Some(last) = got.last() else { break };
        next = *last as i64 + 1;
        seen.extend(got);
    }
    assert_eq!(seen, range(1, 25));
    assert_eq!(get(9, 0, 3).await, range(1, 3), "index 0 is the start");
    assert!(get(9, 26, 10).await.is_empty());

    // 9 backward: oldest first, ending at the -index-th newest.
    assert_eq!(get(9, -1, 10).await, range(16, 25));
    assert_eq!(get(9, -11, 10).await, range(6, 15));
    assert_eq!(get(9, -21, 10).await, range(1, 5));
    assert_eq!(get(9, -25, 10).await, vec![1]);
    assert!(get(9, -26, 10).await.is_empty());

    // 3: newest first, from `index` down (-1: from the newest).
    assert_eq!(
        get(3, -1, 10).await,
        range(16, 25).into_iter().rev().collect::<Vec<_>>()
    );
    assert_eq!(
        get(3, 15, 10).await,
        range(6, 15).into_iter().rev().collect::<Vec<_>>()
    );
    assert_eq!(get(3, 5, 10).await, vec![5, 4, 3, 2, 1]);
    assert_eq!(get(3, 99, 2).await, vec![25, 24]);
    assert!(get(3, 0, 10).await.is_empty());

    // count is capped by the server's limit.
    assert_eq!(get(9, 1, 500).await, range(1, 10));
    assert_eq!(get(3, -1, 500).await.len(), 10);
    let texts = page(
        &ok(
            addr,
            9,
            json!({"token": b.token, "chat": chat, "index": 24, "count": 5}),
        )
        .await,
    );
    assert_eq!(texts, vec![(24, "m24".to_owned()), (25, "m25".to_owned())]);
}

/// Failed token attempts are counted by the guessing limits (service tokens apart), here three
/// per address before a lock of a minute: every request of that address is then refused with
/// 429 and the seconds to wait, the right token too.
fn three_failures_per_address(c: &mut natter_server::Config) {
    // Loopback is a shared address by default (not limited per address).
    c.limits.shared_addresses = Vec::new();
    c.limits.guessing.address.free = 3;
    c.limits.guessing.address.first_lock = Duration::from_secs(60);
}

#[tokio::test]
async fn failed_token_attempts_and_requests_are_limited_per_address() {
    let server = TestServer::start_with(three_failures_per_address).await;
    let addr = server.addr;
    let a = register(addr, &uuid(1), "token-of-a").await;
    // Two failures of the three: requests still go through.
    status(addr, 4, json!({"token": "guess-0001"}), 401).await;
    status(addr, 1, json!({"id": a.uuid, "token": "guess-0002"}), 401).await;
    ok(addr, 4, json!({"token": a.token})).await;
    // Registering with a taken token is learning a token: it counts.
    refused(
        addr,
        2,
        json!({"id": uuid(2), "token": "token-of-a"}),
        "token_taken",
    )
    .await;
    // The address is locked: every request of it is refused now, the right token too, before
    // it is looked at.
    for content in [json!({"token": a.token}), json!({"token": "guess-0003"})] {
        let why = status(addr, 4, content, 429).await;
        assert!(
            why.starts_with("too many failed token attempts; try again in "),
            "{why}"
        );
    }

    // Guesses sent together cannot outrun the limit: each is counted before its token is
    // checked.
    let server = TestServer::start_with(three_failures_per_address).await;
    let addr = server.addr;
    let guesses: Vec<_> = (0..12)
        .map(|n| {
            tokio::spawn(async move {
                call(addr, 4, json!({"token": format!("guess-{n:04}")}))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.expect("a guess"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![401; 3], vec![429; 9]].concat());

    // A login names its account by UUID: failures count against the account from any
    // address.
    let server = TestServer::start_with(|c| {
        c.limits.guessing.account.free = 2;
        c.limits.guessing.account.first_lock = Duration::from_secs(60);
    })
    .await;
    let addr = server.addr;
    let a = register(addr, &uuid(1), "token-of-a").await;
    for n in 0..2 {
        status(
            addr,
            1,
            json!({"id": a.uuid, "token": format!("guess-{n:04}")}),
            401,
        )
        .await;
    }
    let why = status(addr, 1, json!({"id": a.uuid, "token": a.token}), 429).await;
    assert!(why.starts_with("too many failed token attempts"), "{why}");
    // Requests by token alone are not about the UUID's account.
    ok(addr, 4, json!({"token": a.token})).await;

    let server = TestServer::start_with(|c| {
        c.rate_per_sec = 1;
        c.rate_burst = 2;
    })
    .await;
    let addr = server.addr;
    let a = register(addr, &uuid(1), "token-of-a").await;
    ok(addr, 4, json!({"token": a.token})).await;
    assert_eq!(
        status(addr, 4, json!({"token": a.token}), 429).await,
        "too many requests; slow down"
    );
}

#[tokio::test]
async fn service_code_and_ourchat_clients_chat_with_each_other() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let s = register(addr, &uuid(1), "token-of-s").await;
    let mut v = user_v1(&server, "vera@example.com", "Vera", "pw").await;
    // Each side learns the other's name for it: the UUID from OurChat's code 10, the ocid
    // from code 1.
    let v_uuid = uuid_v1(&mut v.client, v.ocid).await;
    assert_eq!(
        uuid_v1(&mut v.client, s.ocid).await,
        s.uuid,
        "an account registered by service code has its UUID"
    );
    let login = ok(addr, 1, json!({"id": s.uuid, "token": s.token})).await;
    assert_eq!(int(&login["ocid"]), s.ocid);

    // A private chat opened by the service-code side; its message reaches Vera at once.
    let chat = int(&ok(
        addr,
        7,
        json!({"token": s.token, "name": "", "is_group": false, "member": [{"id": v_uuid}]}),
    )
    .await["chat"]);
    ok(
        addr,
        5,
        json!({"token": s.token, "chat": chat, "msg": "hello vera"}),
    )
    .await;
    let got = v.client.expect_code(0).await;
    assert_eq!(
        (&got["sender"], &got["msg"], &got["index"]),
        (
            &json!({"ocid": s.ocid, "private_id": v.ocid}),
            &json!("hello vera"),
            &json!(1)
        )
    );
    // Vera answers by ocid; the service-code side reads it with code 9.
    let ack = send_v1(&mut v.client, json!({"private_id": s.ocid}), "hi back").await;
    assert_eq!(ack["index"], json!(2));
    let r = ok(
        addr,
        9,
        json!({"token": s.token, "chat": chat, "index": 1, "count": 10}),
    )
    .await;
    assert_eq!(
        r["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|m| (string(&m["id"]), string(&m["name"]), string(&m["content"])))
            .collect::<Vec<_>>(),
        vec![
            (
                s.uuid.clone(),
                "user-00000000".to_owned(),
                "hello vera".to_owned()
            ),
            (v_uuid.clone(), "Vera".to_owned(), "hi back".to_owned()),
        ]
    );
    let r = history_v1(&mut v.client, json!({"private_id": s.ocid})).await;
    assert_eq!(indexes(&r), vec![1, 2]);

    // A group made by OurChat (approval by default): a join from the service-code side waits.
    let group = create_group_v1(&mut v.client, &[]).await;
    let r = ok(addr, 6, json!({"token": s.token, "chat": group})).await;
    assert_eq!(
        r,
        json!({"msg": "success", "joined": false, "pending": true})
    );
    let request = v.client.expect_code(180).await;
    assert_eq!(request["ocid"], json!(s.ocid), "{request}");
    refused(
        addr,
        5,
        json!({"token": s.token, "chat": group, "msg": "let me in"}),
        "not_a_member",
    )
    .await;
    // Opened, it is joined at once, and both sides talk in it.
    let r = v
        .client
        .request(
            &json!({"code": 152, "group_id": group, "join_mode": 0}),
            153,
        )
        .await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(
        ok(addr, 6, json!({"token": s.token, "chat": group})).await,
        json!({"msg": "success", "joined": true})
    );
    let joined = v.client.expect_code(0).await;
    assert_eq!(
        joined["type"],
        json!(0),
        "the join, a system message: {joined}"
    );
    let r = ok(
        addr,
        5,
        json!({"token": s.token, "chat": group, "msg": "in the group"}),
    )
    .await;
    let got = v.client.expect_code(0).await;
    assert_eq!(
        (&got["sender"], &got["msg"], &got["index"]),
        (
            &json!({"ocid": s.ocid, "group_id": group}),
            &json!("in the group"),
            &r["index"]
        )
    );
    send_v1(&mut v.client, json!({"group_id": group}), "welcome").await;
    let r = ok(
        addr,
        9,
        json!({"token": s.token, "chat": group, "index": -1, "count": 3}),
    )
    .await;
    let values = r["values"].as_array().expect("values");
    assert_eq!(
        values
            .iter()
            .map(|m| string(&m["content"]))
            .collect::<Vec<_>>(),
        vec!["user-00000000 joined", "in the group", "welcome"]
    );
    assert_eq!(values[2]["id"], json!(v_uuid));

    // A group made by the service-code side with Vera in it: she hears its messages, and the
    // chat list names both by UUID.
    let made = int(&ok(
        addr,
        7,
        json!({"token": s.token, "name": "Ours", "is_group": true, "member": [{"id": v_uuid}]}),
    )
    .await["chat"]);
    ok(
        addr,
        5,
        json!({"token": s.token, "chat": made, "msg": "our group"}),
    )
    .await;
    let got = v.client.expect_code(0).await;
    assert_eq!(
        (&got["sender"]["group_id"], &got["msg"]),
        (&json!(made), &json!("our group"))
    );
    send_v1(&mut v.client, json!({"group_id": made}), "nice").await;
    let r = ok(addr, 4, json!({"token": s.token})).await;
    let first = &r["values"][0];
    assert_eq!(
        (&first["id"], &first["name"], &first["is_group"]),
        (&json!(made), &json!("Ours"), &json!(true))
    );
    let mut usrs: Vec<String> = first["usrs"]
        .as_array()
        .expect("usrs")
        .iter()
        .map(|u| string(&u["id"]))
        .collect();
    usrs.sort();
    let mut both = vec![s.uuid.clone(), v_uuid.clone()];
    both.sort();
    assert_eq!(usrs, both);
    assert_eq!(
        r["values"]
            .as_array()
            .expect("values")
            .iter()
            .find(|c| c["id"] == json!(chat))
            .map(|c| c["name"].clone()),
        Some(json!("Vera")),
        "a private chat is named after the other member: {r}"
    );
    v.client.expect_silence(200).await;
}

#[tokio::test]
async fn an_ourchat_account_logs_in_here_with_a_token_it_sets() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let s = register(addr, &uuid(1), "token-of-s").await;
    let mut v = user_v1(&server, "vera@example.com", "Vera", "pw").await;
    let v_uuid = uuid_v1(&mut v.client, v.ocid).await;
    // Without one, the UUID logs in with nothing.
    status(addr, 1, json!({"id": v_uuid, "token": "vera-token"}), 401).await;

    // Code 189 sets it, confirmed with the password.
    let set =
        |token: Value, password: &str| json!({"code": 189, "token": token, "password": password});
    let r = v
        .client
        .request(&set(json!("vera-token"), "wrong"), 100)
        .await;
    assert_error(&r, "bad_credentials", 2001, json!(189));
    let r = v.client.request(&set(json!("short"), "pw"), 100).await;
    assert_error(&r, "invalid_field", 1003, json!(189));
    let r = v.client.request(&set(json!("token-of-s"), "pw"), 100).await;
    assert_error(&r, "service_token_taken", 3005, json!(189));
    let r = v.client.request(&set(json!("vera-token"), "pw"), 190).await;
    assert_eq!(
        (&r["ocid"], &r["uuid"]),
        (&json!(v.ocid), &json!(v_uuid)),
        "{r}"
    );
    assert_eq!(
        ok(addr, 1, json!({"id": v_uuid, "token": "vera-token"})).await,
        json!({"msg": "success", "ocid": v.ocid, "name": "Vera"})
    );

    // The same account on both sides: what it sends here reaches its OurChat connection.
    let chat = int(&ok(
        addr,
        7,
        json!({"token": "vera-token", "name": "", "is_group": false, "member": [{"id": s.uuid}]}),
    )
    .await["chat"]);
    ok(
        addr,
        5,
        json!({"token": "vera-token", "chat": chat, "msg": "from the other client"}),
    )
    .await;
    let got = v.client.expect_code(0).await;
    assert_eq!(
        (&got["sender"], &got["msg"]),
        (
            &json!({"ocid": v.ocid, "private_id": s.ocid}),
            &json!("from the other client")
        )
    );

    // A block made in OurChat holds here, with its cause on each side.
    let r = v
        .client
        .request(&json!({"code": 146, "ocid": s.ocid}), 147)
        .await;
    assert!(r.get("error").is_none(), "{r}");
    refused(
        addr,
        5,
        json!({"token": "vera-token", "chat": chat, "msg": "x"}),
        "blocking",
    )
    .await;
    refused(
        addr,
        5,
        json!({"token": s.token, "chat": chat, "msg": "x"}),
        "not_accepted",
    )
    .await;

    // A new token replaces the old one.
    v.client
        .request(&set(json!(12_345_678_901_u64), "pw"), 190)
        .await;
    status(addr, 4, json!({"token": "vera-token"}), 401).await;
    ok(addr, 4, json!({"token": "12345678901"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_answered_408() {
    let server =
        TestServer::start_with(|c| c.body_idle_timeout = std::time::Duration::from_millis(300))
            .await;
    let mut s = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let head = "POST /svc HTTP/1.1\r\nHost: natter\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\nConnection: close\r\n\r\n{\"service_code\":";
    s.write_all(head.as_bytes()).await.expect("write");
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        crate::common::http::read_reply(&mut s, false),
    )
    .await
    .expect("an answer, not a held connection");
    assert_eq!(reply.status, 408, "{reply:?}");
    assert_eq!(reply.json()["state_code"], json!(408));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_code_client_and_a_pipe_client_chat_privately_and_in_a_group() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let s = register(addr, &uuid(77), "svc-token-77").await;
    let mut p = crate::pipe::P::new(&server, "pete").await;

    // Pipe to service code, privately: the chat appears in code 4 and its message in code 9.
    p.say(false, s.ocid, "hello svc").await;
    let chats = ok(addr, 4, json!({"token": s.token})).await;
    let private = chats["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|c| c["is_group"] == json!(false))
        .unwrap_or_else(|| panic!("the private chat is listed: {chats}"))
        .clone();
    let chat = int(&private["id"]);
    let got = ok(
        addr,
        9,
        json!({"token": s.token, "chat": chat, "index": 1, "count": 10}),
    )
    .await;
    assert_eq!(got["values"][0]["content"], json!("hello svc"), "{got}");
    assert_eq!(got["values"][0]["index"], json!(1), "{got}");
    // And back: the pipe client is pushed the reply.
    let r = ok(
        addr,
        5,
        json!({"token": s.token, "chat": chat, "msg": "hi | pete"}),
    )
    .await;
    assert_eq!(r["index"], json!(2), "{r}");
    let m = p.message().await;
    assert_eq!(
        (m.message.text.as_str(), m.message.sender),
        ("hi | pete", s.ocid)
    );

    // A group made by the pipe client, joined by the service-code client.
    let (pid, pt) = (p.id.clone(), p.token.clone());
    let r = p.ask("create_group", &[&pid, "readers", &pt]).await;
    assert_eq!(r[0], "create_group_succ", "{r:?}");
    let group: u64 = r[1].parse().expect("a group id");
    // It asks for approval: the owner is pushed the request and accepts it.
    let r = ok(addr, 6, json!({"token": s.token, "chat": group})).await;
    assert_eq!(
        (&r["joined"], &r["pending"]),
        (&json!(false), &json!(true)),
        "{r}"
    );
    let sid = s.ocid.to_string();
    let g = group.to_string();
    let push = p.next_line().await;
    assert_eq!(push[..3], ["group_request", "1", sid.as_str()], "{push:?}");
    // The answer's reply, and the join announced in the group, in either order.
    let a = p.ask("hand_group_request", &[&sid, &g, "1", &pt]).await;
    let b = p.next_line().await;
    let mut firsts = [a[0].clone(), b[0].clone()];
    firsts.sort();
    assert_eq!(
        firsts,
        ["hand_group_request_succ", "message"],
        "{a:?} {b:?}"
    );
    p.say(true, group, "welcome").await;
    let got = ok(
        addr,
        9,
        json!({"token": s.token, "chat": group, "index": -1, "count": 1}),
    )
    .await;
    assert_eq!(got["values"][0]["content"], json!("welcome"), "{got}");
    ok(
        addr,
        5,
        json!({"token": s.token, "chat": group, "msg": "thanks"}),
    )
    .await;
    let m = p.message().await;
    assert_eq!(
        (m.message.text.as_str(), m.message.sender),
        ("thanks", s.ocid)
    );
}
