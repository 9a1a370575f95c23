//! The REST + push dialect (seed 003) over the wire: raw HTTP/1.1 requests to `/api/...` with
//! the session cookie, every envelope and status code checked, and the push channel at
//! `GET /api/push` driven as a raw WebSocket with the cookie: start, heartbeats, deliveries,
//! acknowledgements and redelivery of what was not acknowledged, and conversations with
//! OurChat v1 clients both ways.

use crate::common::http::{self, Reply};
use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// One exchange: the HTTP status, the `Set-Cookie` header and the envelope.
pub(crate) struct Answer {
    pub(crate) http: u16,
    pub(crate) cookie: Option<String>,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn status(&self) -> i64 {
        self.body["status"].as_i64().expect("a numeric status")
    }
}

/// `method path` with the session `cookie` (the token) and a JSON `body`; the envelope is
/// checked for its four fields and its date.
pub(crate) async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let cookie = cookie.map(|t| format!("sessionid={t}"));
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    if let Some(c) = &cookie {
        headers.push(("Cookie", c));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r: Reply = http::request(addr, method, path, &headers, body.as_bytes()).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{method} {path}"
    );
    let v = r.json();
    let keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "the envelope has four fields: {v}");
    for k in ["status", "result", "message", "date"] {
        assert!(v.get(k).is_some(), "the envelope has `{k}`: {v}");
    }
    assert_date(&v["date"]);
    Answer {
        http: r.status,
        cookie: r.header("set-cookie").map(str::to_owned),
        body: v,
    }
}

/// A `YYYY-MM-DDTHH:MM:SS` date within a minute of now (UTC).
fn assert_date(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("a date string: {v}"));
    assert_eq!(s.len(), 19, "{s}");
    let b = s.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':',
        "{s}"
    );
    let now = natter_proto::rest::date(natter_server::domain::now_ms());
    assert_eq!(
        &s[..15],
        &now[..15],
        "the date is now (to the ten minutes): {s} vs {now}"
    );
}

pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    body: Value,
) -> Answer {
    api(addr, "POST", path, cookie, Some(body)).await
}

pub(crate) async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Answer {
    api(addr, "GET", path, cookie, None).await
}

/// A refusal with this HTTP status and seed status code.
pub(crate) fn refused(a: &Answer, http: u16, status: i64) {
    assert_eq!((a.http, a.status()), (http, status), "{}", a.body);
    assert_eq!(
        a.body["result"],
        json!([]),
        "a refusal has no result: {}",
        a.body
    );
}

/// Register `phone`; its id.
pub(crate) async fn register(addr: SocketAddr, phone: &str, pw: &str) -> u64 {
    let a = post(
        addr,
        "/api/register",
        None,
        json!({"phone": phone, "password": pw}),
    )
    .await;
    assert_eq!((a.http, a.status()), (200, 1), "{}", a.body);
    a.body["result"]["user"]["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("numeric")
}

/// Log `phone` in; the session token from its cookie.
pub(crate) async fn login(addr: SocketAddr, phone: &str, pw: &str) -> String {
    let a = post(
        addr,
        "/api/login",
        None,
        json!({"phone": phone, "password": pw}),
    )
    .await;
    assert_eq!((a.http, a.status()), (200, 1), "{}", a.body);
    let cookie = a.cookie.expect("login sets the cookie");
    let token = cookie
        .strip_prefix("sessionid=")
        .and_then(|c| c.split(';').next())
        .expect("a sessionid cookie");
    token.to_owned()
}

/// A registered, logged-in account: its id and session token.
pub(crate) async fn account(addr: SocketAddr, phone: &str) -> (u64, String) {
    let id = register(addr, phone, "pw-of-rest").await;
    (id, login(addr, phone, "pw-of-rest").await)
}

#[tokio::test]
async fn register_login_session_and_logout() {
    let server = TestServer::start().await;
    let addr = server.addr;
    // The phone may come as a number, as the seed's login example sends it.
    let a = post(
        addr,
        "/api/register",
        None,
        json!({"phone": 18870742138u64, "password": "lkkzbl"}),
    )
    .await;
    assert_eq!(
        (a.http, a.status(), a.body["message"].as_str()),
        (200, 1, Some("registered"))
    );
    let user = &a.body["result"]["user"];
    let id = user["id"].as_str().expect("id").to_owned();
    assert!(id.parse::<u64>().expect("numeric") >= 10001);
    assert_eq!(user["phone"], json!("18870742138"));
    assert_eq!(user["username"], json!(""));
    assert_eq!(user["isFriend"], json!(false));
    assert_eq!(user["friends"], json!(0));
    assert_eq!(user["sex"], json!(0));
    assert_eq!(a.body["result"]["isBind"], json!(true));
    assert_eq!(a.body["result"]["account"], json!("18870742138"));
    assert!(a.cookie.is_none(), "registering does not log in");

    // Wrong password, unknown phone: 10000 alike.
    let bad = post(
        addr,
        "/api/login",
        None,
        json!({"phone": "18870742138", "password": "x"}),
    )
    .await;
    refused(&bad, 401, 10000);
    assert!(bad.cookie.is_none());
    let unknown = post(
        addr,
        "/api/login/",
        None,
        json!({"phone": "19999999999", "password": "x"}),
    )
    .await;
    refused(&unknown, 401, 10000);

    let ok = post(
        addr,
        "/api/login",
        None,
        json!({"phone": "18870742138", "password": "lkkzbl"}),
    )
    .await;
    assert_eq!((ok.http, ok.status()), (200, 1), "{}", ok.body);
    assert_eq!(ok.body["result"]["user"]["id"], json!(id));
    let cookie = ok.cookie.expect("a cookie");
    assert!(cookie.starts_with("sessionid="), "{cookie}");
    for attribute in [
        "; HttpOnly",
        "; SameSite=Lax",
        "; Path=/",
        "; Max-Age=2592000",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure without TLS: {cookie}"
    );
    let token = cookie["sessionid=".len()..]
        .split(';')
        .next()
        .expect("value")
        .to_owned();
    assert_eq!(token.len(), 43, "the cookie is a natter login token");

    let me = get(addr, "/api/user", Some(&token)).await;
    assert_eq!((me.http, me.status()), (200, 1));
    assert_eq!(me.body["result"]["user"]["id"], json!(id));
    assert_eq!(
        get(addr, "/api/user/", Some(&token)).await.status(),
        1,
        "a trailing slash is the same route"
    );
    refused(&get(addr, "/api/user", None).await, 401, 0);
    refused(&get(addr, "/api/user", Some("not-a-token")).await, 401, 0);

    // A login on a live session is a repeated login.
    let again = post(
        addr,
        "/api/login",
        Some(&token),
        json!({"phone": "18870742138", "password": "lkkzbl"}),
    )
    .await;
    refused(&again, 409, 11000);

    let out = post(addr, "/api/logout", Some(&token), json!({})).await;
    assert_eq!((out.http, out.status()), (200, 1));
    let cleared = out.cookie.expect("logout clears the cookie");
    assert!(
        cleared.starts_with("sessionid=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    refused(&get(addr, "/api/user", Some(&token)).await, 401, 0);
    refused(
        &post(addr, "/api/logout", Some(&token), json!({})).await,
        401,
        0,
    );
    // Logged out, logging in again is no repeat.
    let back = post(
        addr,
        "/api/login",
        Some(&token),
        json!({"phone": "18870742138", "password": "lkkzbl"}),
    )
    .await;
    assert_eq!(back.status(), 1, "{}", back.body);
}

#[tokio::test]
async fn registration_and_login_fields_get_their_status_codes() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let reg = |body: Value| post(addr, "/api/register", None, body);
    refused(&reg(json!({"password": "pw"})).await, 400, 6003);
    refused(
        &reg(json!({"phone": "", "password": "pw"})).await,
        400,
        6003,
    );
    refused(&reg(json!({"phone": "13800000001"})).await, 400, 6000);
    refused(
        &reg(json!({"phone": "13800000001", "password": ""})).await,
        400,
        6000,
    );
    refused(
        &reg(json!({"phone": "138-abc-0001", "password": "pw"})).await,
        400,
        8000,
    );
    refused(
        &reg(json!({"phone": ["1"], "password": "pw"})).await,
        400,
        8000,
    );
    refused(
        &reg(json!({"phone": "12345", "password": "pw"})).await,
        400,
        8001,
    );
    refused(
        &reg(json!({"phone": "1234567890123456", "password": "pw"})).await,
        400,
        8001,
    );
    refused(
        &reg(json!({"phone": "13800000001", "password": 12345})).await,
        400,
        8002,
    );
    refused(
        &reg(json!({"phone": "13800000001", "password": "p".repeat(1025)})).await,
        400,
        8003,
    );
    let not_json = http::request(addr, "POST", "/api/register", &[], b"{").await;
    assert_eq!(
        (not_json.status, &not_json.json()["status"]),
        (400, &json!(0))
    );
    register(addr, "13800000001", "pw").await;
    refused(
        &reg(json!({"phone": "138 0000 0001", "password": "pw"})).await,
        409,
        7001,
    );
    let login = |body: Value| post(addr, "/api/login", None, body);
    refused(&login(json!({"password": "pw"})).await, 400, 6003);
    refused(&login(json!({"phone": "13800000001"})).await, 400, 6000);
    refused(
        &login(json!({"phone": "13800000001", "password": false})).await,
        400,
        8002,
    );
}

#[tokio::test]
async fn failed_logins_are_limited() {
    let server = TestServer::start_with(|c| {
        c.limits.guessing.account.free = 2;
        c.limits.guessing.account.first_lock = Duration::from_secs(30);
    })
    .await;
    let addr = server.addr;
    register(addr, "13800000002", "right").await;
    let body = json!({"phone": "13800000002", "password": "wrong"});
    for _ in 0..2 {
        refused(
            &post(addr, "/api/login", None, body.clone()).await,
            401,
            10000,
        );
    }
    let r = http::request(addr, "POST", "/api/login", &[], body.to_string().as_bytes()).await;
    assert_eq!((r.status, &r.json()["status"]), (429, &json!(0)));
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    // Locked: even the right password waits.
    let right = post(
        addr,
        "/api/login",
        None,
        json!({"phone": "13800000002", "password": "right"}),
    )
    .await;
    refused(&right, 429, 0);
}

#[tokio::test]
async fn profiles_are_completed_and_shown_to_others() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ann_t) = account(addr, "13800000011").await;
    let (bob, bob_t) = account(addr, "13800000012").await;
    let edit = |body: Value| post(addr, "/api/user", Some(&ann_t), body);
    refused(&edit(json!({"username": ""})).await, 400, 6001);
    refused(&edit(json!({"avatar": " "})).await, 400, 6002);
    refused(&edit(json!({"username": "ab"})).await, 400, 8004);
    refused(&edit(json!({"username": "a".repeat(33)})).await, 400, 8004);
    refused(&edit(json!({"username": "9lives"})).await, 400, 9000);
    refused(&edit(json!({"username": "Ann!"})).await, 400, 9000);
    refused(&edit(json!({"sex": 7})).await, 400, 0);
    refused(&edit(json!({})).await, 400, 0);
    refused(
        &edit(json!({"userId": bob.to_string(), "desc": "x"})).await,
        403,
        0,
    );
    let done =
        edit(json!({"userId": ann.to_string(), "username": "ann", "desc": "hello", "sex": 2}))
            .await;
    assert_eq!((done.http, done.status()), (200, 1), "{}", done.body);
    let user = &done.body["result"]["user"];
    assert_eq!(
        (&user["username"], &user["desc"], &user["sex"]),
        (&json!("ann"), &json!("hello"), &json!(2))
    );
    // Taken by another.
    let taken = post(addr, "/api/user/", Some(&bob_t), json!({"username": "ANN"})).await;
    refused(&taken, 409, 7000);

    // Bob sees Ann: no phone (not friends), not a friend, no alias.
    let seen = get(addr, &format!("/api/user/{ann}"), Some(&bob_t)).await;
    assert_eq!((seen.http, seen.status()), (200, 1));
    let u = &seen.body["result"]["user"];
    assert_eq!(u["id"], json!(ann.to_string()));
    assert_eq!(u["username"], json!("ann"));
    assert_eq!(u["phone"], json!(""));
    assert_eq!(u["isFriend"], json!(false));
    assert_eq!(u["alias"], json!(""));
    assert_eq!(seen.body["result"]["account"], json!(""));
    assert_eq!(seen.body["result"]["isBind"], json!(true));
    refused(&get(addr, "/api/user/99999", Some(&bob_t)).await, 404, 6004);
    refused(
        &get(addr, "/api/user/nobody", Some(&bob_t)).await,
        404,
        6004,
    );
    refused(&get(addr, &format!("/api/user/{ann}"), None).await, 401, 0);
}

// ---------------------------------------------------------------------------------------------
// The push channel.

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Open `GET /api/push` with the session cookie.
pub(crate) async fn push(addr: SocketAddr, token: &str) -> Ws {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("ws://{addr}/api/push")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Cookie",
        format!("sessionid={token}").parse().expect("header"),
    );
    let (ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    ws
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next text packet (pings skipped).
pub(crate) async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(RECV_TIMEOUT, ws.next())
            .await
            .expect("a packet in time")
            .expect("the channel is open")
            .expect("a frame");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).expect("a JSON packet"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Nothing but pings for `ms`.
pub(crate) async fn silence(ws: &mut Ws, ms: u64) {
    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }
}

/// Send `start` (or `restart`); the push id the reply carries.
pub(crate) async fn start(ws: &mut Ws, word: &str) -> String {
    send(ws, json!({"status": 1, "pushId": "", "message": word})).await;
    let r = recv(ws).await;
    assert_eq!(
        (&r["status"], &r["message"]),
        (&json!(1), &json!(word)),
        "{r}"
    );
    let id = r["pushId"].as_str().expect("a push id").to_owned();
    assert_eq!(id.len(), 16, "the push id names the login: {id}");
    id
}

/// The message items of the next packet, which must be a message packet.
pub(crate) async fn items(ws: &mut Ws, push_id: &str) -> Vec<Value> {
    let p = recv(ws).await;
    assert_eq!(
        (&p["status"], &p["pushId"]),
        (&json!(1), &json!(push_id)),
        "{p}"
    );
    p["message"]
        .as_array()
        .unwrap_or_else(|| panic!("a message packet: {p}"))
        .clone()
}

/// The text of a message item with a single text part.
pub(crate) fn text(item: &Value) -> &str {
    assert_eq!(item["info"][0]["category"], json!(0), "{item}");
    item["info"][0]["content"].as_str().expect("content")
}

#[tokio::test]
async fn push_needs_the_cookie_and_start() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (_, token) = account(addr, "13800000021").await;
    // No cookie, a bad cookie, or no upgrade: refused with the envelope.
    refused(&get(addr, "/api/push", None).await, 401, 0);
    refused(&get(addr, "/api/push", Some("nope")).await, 401, 0);
    refused(&get(addr, "/api/push", Some(&token)).await, 400, 0);

    let mut ws = push(addr, &token).await;
    // A heartbeat is answered before start too; a message is not.
    send(&mut ws, json!({"status": 1, "pushId": "", "message": ""})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"status": 1, "pushId": push_id_of(&token), "message": ""})
    );
    send(&mut ws, json!({"status": 1, "pushId": "", "message": [{"toId": "10001", "info": [{"category": 0, "content": "hi"}]}]})).await;
    let r = recv(&mut ws).await;
    assert_eq!(
        (&r["status"], &r["message"]),
        (&json!(0), &json!("send \"start\" first"))
    );
    // Packets it cannot read.
    send(&mut ws, json!({"status": 1, "pushId": "", "message": "ok"})).await;
    assert_eq!(recv(&mut ws).await["status"], json!(0));
    ws.send(Message::text("not json")).await.expect("send");
    assert_eq!(recv(&mut ws).await["status"], json!(0));
    let id = start(&mut ws, "start").await;
    assert_eq!(id, push_id_of(&token));
    send(&mut ws, json!({"status": 1, "pushId": id, "message": ""})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"status": 1, "pushId": id, "message": ""})
    );
    silence(&mut ws, 200).await;
}

/// The push id of a login: the first 12 bytes of its token's hash, base64url.
pub(crate) fn push_id_of(token: &str) -> String {
    natter_server::domain::profiles::login_id(&natter_server::domain::auth::token_hash(token))
}

#[tokio::test]
async fn push_and_ourchat_v1_chat_both_ways() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, token) = account(addr, "13800000031").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-of-bob").await;
    let mut ws = push(addr, &token).await;
    let id = start(&mut ws, "start").await;

    // v1 -> push.
    let ack = send_v1(&mut bob.client, json!({"private_id": ann}), "hello ann").await;
    let got = items(&mut ws, &id).await;
    assert_eq!(got.len(), 1);
    let item = &got[0];
    let chat = item["chatId"].as_str().expect("chat id").to_owned();
    assert_eq!(item["fromId"], json!(bob.ocid.to_string()));
    assert_eq!(item["toId"], json!(ann.to_string()));
    assert_eq!(item["type"], json!(1));
    assert_eq!(text(item), "hello ann");
    assert_eq!(item["index"], ack["index"]);
    assert_eq!(
        item["createTime"].as_str().map(str::len),
        Some(23),
        "{item}"
    );

    // push -> v1, the first time by toId with an empty chatId.
    send(
        &mut ws,
        json!({"status": 1, "pushId": id, "message": [
        {"chatId": "", "fromId": ann.to_string(), "toId": bob.ocid.to_string(), "type": 1,
         "info": [{"category": 0, "content": "hi bob"}], "createTime": ""}]}),
    )
    .await;
    let confirm = recv(&mut ws).await;
    assert_eq!(
        (&confirm["status"], &confirm["pushId"]),
        (&json!(1), &json!(id)),
        "{confirm}"
    );
    let c = &confirm["message"];
    assert_eq!(
        (&c["fromId"], &c["toId"], &c["chatId"], &c["content"]),
        (
            &json!(ann.to_string()),
            &json!(bob.ocid.to_string()),
            &json!(chat),
            &json!("ok")
        )
    );
    assert_eq!(c["index"], json!(2));
    let f = bob.client.expect_code(0).await;
    assert_eq!(
        (&f["msg"], int(&f["sender"]["ocid"])),
        (&json!("hi bob"), ann),
        "{f}"
    );

    // Then by chatId, two in one packet: two confirmations, in order.
    send(
        &mut ws,
        json!({"status": 1, "pushId": id, "message": [
        {"chatId": chat, "info": [{"category": 0, "content": "one"}]},
        {"chatId": chat, "info": [{"category": 0, "content": "two"}]}]}),
    )
    .await;
    for (n, words) in [(3, "one"), (4, "two")] {
        let confirm = recv(&mut ws).await;
        assert_eq!(confirm["message"]["index"], json!(n), "{confirm}");
        assert_eq!(bob.client.expect_code(0).await["msg"], json!(words));
    }
    // A refused message is confirmed with the reason and its status.
    send(
        &mut ws,
        json!({"status": 1, "pushId": id, "message": [
        {"chatId": "", "toId": ann.to_string(), "info": [{"category": 0, "content": "me"}]}]}),
    )
    .await;
    let no = recv(&mut ws).await;
    assert_eq!(no["status"], json!(0), "{no}");
    assert_eq!(no["message"]["content"], json!("that is your own account"));
    // Its own messages are not pushed back to it.
    silence(&mut ws, 300).await;
}

#[tokio::test]
async fn unacknowledged_messages_come_again_and_acknowledged_ones_never() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, token) = account(addr, "13800000041").await;
    let mut bob = user_v1(&server, "bob2@example.com", "Bob", "pw-of-bob").await;
    send_v1(&mut bob.client, json!({"private_id": ann}), "first").await;
    send_v1(&mut bob.client, json!({"private_id": ann}), "second").await;

    // Offline catch-up after start, in one packet, oldest first.
    let mut ws = push(addr, &token).await;
    let id = start(&mut ws, "start").await;
    let got = items(&mut ws, &id).await;
    let texts: Vec<&str> = got.iter().map(text).collect();
    assert_eq!(texts, ["first", "second"]);
    let chat = got[0]["chatId"].clone();
    // Not acknowledged: a reconnect gets both again.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = push(addr, &token).await;
    start(&mut ws, "start").await;
    assert_eq!(
        items(&mut ws, &id)
            .await
            .iter()
            .map(text)
            .collect::<Vec<_>>(),
        ["first", "second"]
    );
    // So does a restart on the same channel.
    start(&mut ws, "restart").await;
    assert_eq!(items(&mut ws, &id).await.len(), 2);
    // Acknowledge the first only (by its index), then a live one arrives.
    send(&mut ws, json!({"status": 1, "pushId": id, "message": {"fromId": bob.ocid.to_string(), "toId": ann.to_string(), "chatId": chat, "content": "ok", "index": 1}})).await;
    send_v1(&mut bob.client, json!({"private_id": ann}), "third").await;
    assert_eq!(
        items(&mut ws, &id)
            .await
            .iter()
            .map(text)
            .collect::<Vec<_>>(),
        ["third"]
    );
    start(&mut ws, "restart").await;
    assert_eq!(
        items(&mut ws, &id)
            .await
            .iter()
            .map(text)
            .collect::<Vec<_>>(),
        ["second", "third"]
    );
    // Acknowledge the chat: none of them ever again.
    send(&mut ws, json!({"status": 1, "pushId": id, "message": {"fromId": bob.ocid.to_string(), "toId": ann.to_string(), "chatId": chat, "content": "ok"}})).await;
    // The acknowledgement gets no answer.
    silence(&mut ws, 200).await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = push(addr, &token).await;
    start(&mut ws, "start").await;
    silence(&mut ws, 300).await;
    // And across a restart of the server (the marks are in the store).
    drop(ws);
    let mut server = server;
    server.restart().await;
    let mut ws = push(server.addr, &token).await;
    start(&mut ws, "start").await;
    silence(&mut ws, 300).await;
}

#[tokio::test]
async fn a_message_is_sent_without_the_push_channel() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, token) = account(addr, "13800000051").await;
    let mut bob = user_v1(&server, "bob3@example.com", "Bob", "pw-of-bob").await;
    let body = json!({"toId": bob.ocid.to_string(), "chatId": "", "type": 1,
                      "info": [{"category": 0, "content": "by post"}], "clientId": "c-1"});
    let a = post(addr, "/api/message", Some(&token), body.clone()).await;
    assert_eq!((a.http, a.status()), (200, 1), "{}", a.body);
    let r = &a.body["result"];
    assert_eq!(
        (&r["fromId"], &r["toId"], &r["content"], &r["index"]),
        (
            &json!(ann.to_string()),
            &json!(bob.ocid.to_string()),
            &json!("ok"),
            &json!(1)
        )
    );
    let f = bob.client.expect_code(0).await;
    assert_eq!(f["msg"], json!("by post"));
    // The same clientId again is the same message, not a second one.
    let again = post(addr, "/api/message/", Some(&token), body).await;
    assert_eq!(again.body["result"]["msgId"], r["msgId"]);
    bob.client.expect_silence(200).await;
    // Refusals.
    refused(&post(addr, "/api/message", None, json!({})).await, 401, 0);
    refused(
        &post(addr, "/api/message", Some(&token), json!({"info": []})).await,
        400,
        0,
    );
    let nobody = json!({"toId": "99999", "info": [{"category": 0, "content": "x"}]});
    refused(
        &post(addr, "/api/message", Some(&token), nobody).await,
        404,
        6004,
    );
    let two_files = json!({"toId": bob.ocid.to_string(), "info": [
        {"category": 1, "content": "/files/a"}, {"category": 3, "content": "/files/b"}]});
    refused(
        &post(addr, "/api/message", Some(&token), two_files).await,
        400,
        8005,
    );
    let system =
        json!({"toId": bob.ocid.to_string(), "type": 0, "info": [{"category": 0, "content": "x"}]});
    refused(
        &post(addr, "/api/message", Some(&token), system).await,
        400,
        0,
    );
}

// ---------------------------------------------------------------------------------------------
// Friends, search and groups.

#[tokio::test]
async fn friends_are_asked_pushed_accepted_by_asking_back_and_listed_by_field() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ann_t) = account(addr, "13800000061").await;
    let (bob, bob_t) = account(addr, "13800000062").await;
    let (carl, carl_t) = account(addr, "13800000063").await;
    post(addr, "/api/user", Some(&bob_t), json!({"username": "zed"})).await;
    post(addr, "/api/user", Some(&carl_t), json!({"username": "abe"})).await;
    let mut ws = push(addr, &ann_t).await;
    let id = start(&mut ws, "start").await;

    // Bob asks: Ann is pushed a request message (type 2) with the note.
    let asked = get(
        addr,
        &format!("/api/friends/{ann}?request=hi%20ann"),
        Some(&bob_t),
    )
    .await;
    assert_eq!(
        (asked.http, asked.status(), &asked.body["message"]),
        (200, 1, &json!("requested"))
    );
    assert_eq!(asked.body["result"]["user"]["id"], json!(ann.to_string()));
    assert_eq!(asked.body["result"]["user"]["isFriend"], json!(false));
    let pushed = items(&mut ws, &id).await;
    assert_eq!(pushed.len(), 1);
    let r = &pushed[0];
    assert_eq!(
        (&r["type"], &r["fromId"], &r["toId"], &r["chatId"]),
        (
            &json!(2),
            &json!(bob.to_string()),
            &json!(ann.to_string()),
            &json!("")
        )
    );
    assert_eq!(text(r), "hi ann");
    // Ann asks back: friends, and each sees the other's phone.
    let back = get(addr, &format!("/api/friends/{bob}/"), Some(&ann_t)).await;
    assert_eq!(
        (back.status(), &back.body["message"]),
        (1, &json!("accepted"))
    );
    let u = &back.body["result"]["user"];
    assert_eq!(
        (&u["isFriend"], &u["phone"], &u["friends"]),
        (&json!(true), &json!("13800000062"), &json!(1))
    );
    let again = get(addr, &format!("/api/friends/{ann}"), Some(&bob_t)).await;
    assert_eq!(again.body["message"], json!("already friends"));
    get(addr, &format!("/api/friends/{ann}"), Some(&carl_t)).await;
    get(addr, &format!("/api/friends/{carl}"), Some(&ann_t)).await;

    // A request made while the channel was closed waits for the next start, until answered.
    drop(ws);
    let (dora, dora_t) = account(addr, "13800000064").await;
    get(
        addr,
        &format!("/api/friends/{ann}?request=later"),
        Some(&dora_t),
    )
    .await;
    let mut ws = push(addr, &ann_t).await;
    start(&mut ws, "start").await;
    let waiting = items(&mut ws, &id).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        (&waiting[0]["type"], &waiting[0]["fromId"]),
        (&json!(2), &json!(dora.to_string()))
    );
    assert_eq!(text(&waiting[0]), "later");
    get(addr, &format!("/api/friends/{dora}"), Some(&ann_t)).await;
    // The new friendship is pushed to the account's own channel too (a system notice).
    let told = items(&mut ws, &id).await;
    assert_eq!(
        (told.len(), &told[0]["type"], &told[0]["fromId"]),
        (1, &json!(0), &json!(ann.to_string())),
        "{told:?}"
    );
    start(&mut ws, "restart").await;
    silence(&mut ws, 300).await;

    let list = |path: &'static str| get(addr, path, Some(&ann_t));
    let ids = |a: &Answer| -> Vec<String> {
        a.body["result"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|u| u["user"]["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let by_id = list("/api/friends/id/1").await;
    assert_eq!((by_id.http, by_id.status()), (200, 1));
    assert_eq!(
        ids(&by_id),
        [bob.to_string(), carl.to_string(), dora.to_string()]
    );
    assert_eq!(by_id.body["result"][0]["user"]["isFriend"], json!(true));
    assert_eq!(
        ids(&list("/api/friends/username/1/").await),
        [dora.to_string(), carl.to_string(), bob.to_string()]
    );
    assert!(
        ids(&list("/api/friends/id/2").await).is_empty(),
        "20 a page"
    );
    refused(&list("/api/friends/colour/1").await, 400, 0);
    refused(&list("/api/friends/id/0").await, 400, 0);
    // Refusals of a request.
    refused(
        &get(addr, &format!("/api/friends/{ann}"), Some(&ann_t)).await,
        400,
        0,
    );
    refused(
        &get(addr, "/api/friends/99999", Some(&ann_t)).await,
        404,
        6004,
    );
    refused(
        &get(addr, &format!("/api/friends/{bob}"), None).await,
        401,
        0,
    );
}

#[tokio::test]
async fn search_finds_by_username_or_phone_and_answers_nobody_as_the_seed_does() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ann_t) = account(addr, "13800000071").await;
    let (bob, bob_t) = account(addr, "13800000072").await;
    post(
        addr,
        "/api/user",
        Some(&bob_t),
        json!({"username": "bobby"}),
    )
    .await;
    let found = get(addr, "/api/search?username=Bobby", Some(&ann_t)).await;
    assert_eq!((found.http, found.status()), (200, 1), "{}", found.body);
    assert_eq!(
        found.body["result"][0]["user"]["id"],
        json!(bob.to_string())
    );
    assert_eq!(found.body["result"].as_array().map(Vec::len), Some(1));
    let by_phone = get(addr, "/api/search/?phone=13800000071", Some(&bob_t)).await;
    assert_eq!(
        by_phone.body["result"][0]["user"]["id"],
        json!(ann.to_string())
    );
    for query in ["username=nobody", "phone=13899999999", "phone=abc"] {
        let none = get(addr, &format!("/api/search?{query}"), Some(&ann_t)).await;
        assert_eq!(none.http, 200);
        let mut body = none.body.clone();
        body.as_object_mut().expect("object").remove("date");
        assert_eq!(
            body,
            json!({"status": 0, "result": [], "message": "ok"}),
            "{query}"
        );
    }
    refused(&get(addr, "/api/search", Some(&ann_t)).await, 400, 0);
    refused(
        &get(addr, "/api/search?phone=13800000071", None).await,
        401,
        0,
    );
}

#[tokio::test]
async fn groups_are_created_found_by_name_and_chat_with_ourchat_v1() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, token) = account(addr, "13800000081").await;
    let mut bob = user_v1(&server, "bob4@example.com", "Bob", "pw-of-bob").await;
    let made = post(
        addr,
        "/api/group",
        Some(&token),
        json!({"name": "Rustaceans", "members": [bob.ocid.to_string()]}),
    )
    .await;
    assert_eq!((made.http, made.status()), (200, 1), "{}", made.body);
    let g = &made.body["result"];
    let gid = g["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (&g["name"], &g["members"], &g["isMember"]),
        (&json!("Rustaceans"), &json!(2), &json!(true))
    );
    let mut member_ids: Vec<String> = serde_json::from_value(g["memberIds"].clone()).expect("ids");
    member_ids.sort();
    assert_eq!(member_ids, [ann.to_string(), bob.ocid.to_string()]);
    refused(
        &post(addr, "/api/group/", Some(&token), json!({"name": " "})).await,
        400,
        0,
    );
    refused(
        &post(
            addr,
            "/api/group",
            Some(&token),
            json!({"name": "x", "members": "bob"}),
        )
        .await,
        400,
        0,
    );
    refused(
        &post(addr, "/api/group", None, json!({"name": "x"})).await,
        401,
        0,
    );

    let found = get(addr, "/api/group?name=rust", Some(&token)).await;
    assert_eq!(found.status(), 1, "{}", found.body);
    assert_eq!(found.body["result"][0]["id"], json!(gid));
    let none = get(addr, "/api/group/?name=zzz", Some(&token)).await;
    assert_eq!(
        (none.status(), &none.body["result"], &none.body["message"]),
        (0, &json!([]), &json!("ok"))
    );
    refused(&get(addr, "/api/group", Some(&token)).await, 400, 0);

    // The group's messages both ways; the v1 member was told of the group first.
    let mut ws = push(addr, &token).await;
    let id = start(&mut ws, "start").await;
    let gnum: u64 = gid.parse().expect("numeric");
    send_v1(&mut bob.client, json!({"group_id": gnum}), "hello group").await;
    let got = items(&mut ws, &id).await;
    let hello = got
        .iter()
        .find(|i| i["info"][0]["content"] == json!("hello group"))
        .unwrap_or_else(|| panic!("the group message: {got:?}"));
    assert_eq!(
        (&hello["chatId"], &hello["toId"], &hello["fromId"]),
        (&json!(gid), &json!(gid), &json!(bob.ocid.to_string()))
    );
    send(
        &mut ws,
        json!({"status": 1, "pushId": id, "message": [
        {"chatId": gid, "type": 7, "info": [{"category": 0, "content": "hi all"}]}]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["message"]["content"], json!("ok"));
    loop {
        let f = bob.client.recv().await;
        if f["code"] == json!(0) && f["msg"] == json!("hi all") {
            assert_eq!(int(&f["sender"]["group_id"]), gnum, "{f}");
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn files_are_stored_sent_as_parts_and_downloaded_with_the_cookie() {
    use base64::Engine;
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ann_t) = account(addr, "13800000091").await;
    let (carl, carl_t) = account(addr, "13800000093").await;
    let (_, dan_t) = account(addr, "13800000094").await;
    let mut bob = user_v1(&server, "bob5@example.com", "Bob", "pw-of-bob").await;
    let png = crate::files::png(2, 3, 40);
    let content = base64::engine::general_purpose::STANDARD.encode(&png);

    let up = |body: Value| post(addr, "/api/file", Some(&ann_t), body);
    refused(&up(json!({"content": content})).await, 400, 8005);
    refused(
        &up(json!({"name": "p.png", "content": "%%%"})).await,
        400,
        8005,
    );
    refused(
        &up(json!({"name": "p.png", "content": ""})).await,
        400,
        8005,
    );
    refused(
        &up(json!({"name": "p.png", "content": content, "md5": "00"})).await,
        400,
        8005,
    );
    refused(
        &post(
            addr,
            "/api/file",
            None,
            json!({"name": "p.png", "content": content}),
        )
        .await,
        401,
        0,
    );
    let stored = up(json!({"name": "p.png", "content": content, "md5": md5_hex(&png)})).await;
    assert_eq!((stored.http, stored.status()), (200, 1), "{}", stored.body);
    let path = stored.body["result"]["path"]
        .as_str()
        .expect("a path")
        .to_owned();
    assert!(path.starts_with("/files/"), "{path}");
    assert_eq!(
        (
            &stored.body["result"]["mime"],
            &stored.body["result"]["size"]
        ),
        (&json!("image/png"), &json!(png.len()))
    );
    // Without md5, and at the path with a trailing slash.
    let plain = post(
        addr,
        "/api/file/",
        Some(&ann_t),
        json!({"name": "n.txt", "content": "aGk="}),
    )
    .await;
    assert_eq!(plain.status(), 1, "{}", plain.body);

    // Downloaded with the cookie by its owner; not by another account nor anonymously.
    let cookie = format!("sessionid={ann_t}");
    let own = http::request(addr, "GET", &path, &[("Cookie", &cookie)], b"").await;
    assert_eq!((own.status, &own.body), (200, &png));
    let stranger = format!("sessionid={dan_t}");
    assert_eq!(
        http::request(addr, "GET", &path, &[("Cookie", &stranger)], b"")
            .await
            .status,
        404
    );
    assert_eq!(
        http::request(addr, "GET", &path, &[], b"").await.status,
        404
    );

    // Sent as an image part to a push client (who may then download it) and to v1.
    let mut ws = push(addr, &carl_t).await;
    let carl_id = start(&mut ws, "start").await;
    let picture = json!({"toId": carl.to_string(), "info": [
        {"category": 0, "content": "look"}, {"category": 1, "content": path}]});
    let sent = post(addr, "/api/message", Some(&ann_t), picture).await;
    assert_eq!(sent.status(), 1, "{}", sent.body);
    let got = items(&mut ws, &carl_id).await;
    assert_eq!(
        got[0]["info"],
        json!([{"category": 0, "content": "look"}, {"category": 1, "content": path}])
    );
    assert_eq!(got[0]["fromId"], json!(ann.to_string()));
    let shared = format!("sessionid={carl_t}");
    assert_eq!(
        http::request(addr, "GET", &path, &[("Cookie", &shared)], b"")
            .await
            .status,
        200
    );
    let file_part =
        json!({"toId": bob.ocid.to_string(), "info": [{"category": 3, "content": path}]});
    assert_eq!(
        post(addr, "/api/message", Some(&ann_t), file_part)
            .await
            .status(),
        1
    );
    let f = bob.client.recv().await;
    let id = path.trim_start_matches("/files/");
    assert!(f.to_string().contains(id), "v1 is sent the file: {f}");
    assert_eq!(int(&f["sender"]["ocid"]), ann);
    // A file part naming no file the sender may send.
    let unknown =
        json!({"toId": carl.to_string(), "info": [{"category": 3, "content": "/files/nope"}]});
    refused(
        &post(addr, "/api/message", Some(&ann_t), unknown).await,
        404,
        8005,
    );
    // A picture becomes the avatar, and then anyone may download it; a text file may not.
    let text_path = plain.body["result"]["path"]
        .as_str()
        .expect("path")
        .to_owned();
    refused(
        &post(
            addr,
            "/api/user",
            Some(&ann_t),
            json!({"avatar": text_path}),
        )
        .await,
        400,
        8005,
    );
    let avatar = post(addr, "/api/user", Some(&ann_t), json!({"avatar": path})).await;
    assert_eq!(
        avatar.body["result"]["user"]["avatar"],
        json!(path),
        "{}",
        avatar.body
    );
    assert_eq!(
        http::request(addr, "GET", &path, &[], b"").await.status,
        200
    );
}

/// One request over TLS to `server`; the whole answer as text.
async fn over_tls(addr: SocketAddr, path: &str, body: &Value) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = crate::tls::connector()
        .connect(name, tcp)
        .await
        .expect("handshake");
    let body = body.to_string();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.write_all(body.as_bytes()).await.expect("body");
    let mut raw = Vec::new();
    // The server may end TLS without a close_notify once it has answered.
    let _ = tls.read_to_end(&mut raw).await;
    String::from_utf8(raw).expect("text")
}

#[tokio::test]
async fn the_cookie_is_secure_under_tls() {
    let server =
        TestServer::start_with(|c| c.tls = Some(crate::tls::test_certs("cert-a.pem"))).await;
    let body = json!({"phone": "13800000101", "password": "pw"});
    let reg = over_tls(server.addr, "/api/register", &body).await;
    assert!(reg.starts_with("HTTP/1.1 200"), "{reg}");
    let login = over_tls(server.addr, "/api/login", &body).await;
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("a cookie: {login}"));
    assert!(
        cookie.ends_with("; HttpOnly; SameSite=Lax; Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn other_methods_and_paths_are_refused_without_a_body() {
    let server = TestServer::start().await;
    let wrong_method = http::request(server.addr, "GET", "/api/login", &[], b"").await;
    assert_eq!((wrong_method.status, wrong_method.body.len()), (405, 0));
    let unknown = http::request(server.addr, "GET", "/api/nothing", &[], b"").await;
    assert_eq!((unknown.status, unknown.body.len()), (404, 0));
    let too_big = vec![b' '; server.config.svc_max_body_bytes + 1];
    let r = http::request(server.addr, "POST", "/api/register", &[], &too_big).await;
    assert_eq!((r.status, &r.json()["status"]), (413, &json!(0)));
}

#[tokio::test]
async fn logging_out_closes_the_push_channel() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (_, token) = account(addr, "13800000111").await;
    let mut ws = push(addr, &token).await;
    start(&mut ws, "start").await;
    let out = post(addr, "/api/logout", Some(&token), json!({})).await;
    assert_eq!(out.status(), 1);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the channel is closed in time");
    assert_eq!(closed, Some(4001));
}

#[tokio::test]
async fn an_ourchat_v1_picture_reaches_the_push_channel_as_an_image_part() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, token) = account(addr, "13800000121").await;
    let mut bob = user_v1(&server, "bob6@example.com", "Bob", "pw-of-bob").await;
    let image = crate::files::png(4, 4, 10);
    let id = crate::files::upload(addr, &bob.token, "cat.png", "image/png", &image).await;
    let ack = crate::files::send_file(
        &mut bob.client,
        json!({"private_id": ann}),
        2,
        json!({"id": id}),
        "a cat",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");
    let mut ws = push(addr, &token).await;
    let push_id = start(&mut ws, "start").await;
    let got = items(&mut ws, &push_id).await;
    let path = format!("/files/{id}");
    assert_eq!(
        got[0]["info"],
        json!([{"category": 0, "content": "a cat"}, {"category": 1, "content": path}])
    );
    // The receiver downloads it with its cookie.
    let cookie = format!("sessionid={token}");
    let r = http::request(addr, "GET", &path, &[("Cookie", &cookie)], b"").await;
    assert_eq!((r.status, &r.body), (200, &image));
}
