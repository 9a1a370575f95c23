//! Hostile clients, through the wire: silent and slowloris connections, connections that never
//! log in, the per-address connection cap, guessing passwords, tokens and answers, WebSocket
//! protocol violations, and who may read `/metrics`.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use natter_client::ourchat::v1;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, Utf8Bytes};

/// A TCP connection to `to` from the loopback address `from` (any 127.x.y.z is this host).
async fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().expect("ip"), 0))?;
    socket.connect(to).await
}

/// Everything the server sends until it closes the connection (a reset counts as closed),
/// or `None` if it is still open after `wait`.
async fn until_closed(tcp: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 512];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| got)
}

/// Raise this process's open-file limit to its hard limit: the test holds thousands of
/// sockets at both ends.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// Thousands of connections that send nothing, dribble a request head, or upgrade and never log
/// in, while an ordinary client connects, registers, logs in and chats as usual. Connections
/// from one address beyond its cap are refused at once; the rest are closed by their deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_and_slowloris_connections_do_not_keep_others_out() {
    const SILENT: usize = 1200;
    const SLOW: usize = 600;
    const NO_LOGIN: usize = 200;
    const PER_ADDRESS: usize = 1000;
    raise_nofile();
    let server = TestServer::start_with(|c| {
        c.request_head_timeout = Duration::from_secs(6);
        c.login_timeout = Duration::from_secs(6);
        c.max_connections_per_address = PER_ADDRESS;
        // Loopback is shared (not capped per address) unless told otherwise.
        c.limits.shared_addresses = Vec::new();
    })
    .await;
    let addr = server.addr;
    let started = Instant::now();

    // Silent: connect and say nothing (1200 from one address: over its cap of 1000).
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(connect_from("127.0.0.2", addr).await.expect("connect"));
    }
    // Slowloris: a request head, one header byte at a time, every half second.
    let mut slow = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut tcp = connect_from("127.0.0.3", addr).await.expect("connect");
        slow.push(tokio::spawn(async move {
            let _ = tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: natter\r\n").await;
            let begun = Instant::now();
            let mut buf = [0u8; 256];
            loop {
                tokio::select! {
                    read = tcp.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Some(begun.elapsed()),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if tcp.write_all(b"X").await.is_err() {
                            return Some(begun.elapsed());
                        }
                        if begun.elapsed() > Duration::from_secs(60) {
                            return None;
                        }
                    }
                }
            }
        }));
    }
    // Upgraded to WebSocket, never logging in.
    let mut idle_ws = Vec::with_capacity(NO_LOGIN);
    for _ in 0..NO_LOGIN {
        let tcp = connect_from("127.0.0.4", addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
            .await
            .expect("upgrade");
        idle_ws.push(ws);
    }

    // Meanwhile an ordinary client (from 127.0.0.1) does what it always does, in its usual time
    // (the bound is generous: it takes well under a second).
    let ordinary = async {
        let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
        let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
        let ack = send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "hello").await;
        let got = bob.client.expect_code(0).await;
        assert_eq!(got["msg"], "hello");
        assert_eq!(got["index"], ack["index"]);
    };
    tokio::time::timeout(Duration::from_secs(20), ordinary)
        .await
        .expect("an ordinary client logs in and chats while the others hang on");

    // The silent connections over the address's cap were refused at once (503); the others
    // are closed once the request-head deadline passes.
    let mut refused = 0;
    let mut closed = 0;
    for tcp in &mut silent {
        let got = until_closed(tcp, Duration::from_secs(30))
            .await
            .expect("every silent connection is closed by the server");
        if got.starts_with(b"HTTP/1.1 503") {
            refused += 1;
        } else {
            closed += 1;
        }
    }
    assert!(
        refused >= 1 && (1..=PER_ADDRESS).contains(&closed),
        "refused {refused}, closed later {closed}"
    );
    for task in slow {
        let took = task.await.expect("task");
        assert!(
            took.is_some(),
            "a head dribbled a byte every 500 ms was still open after 60 s"
        );
    }
    for mut ws in idle_ws {
        let end = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
        .expect("a connection that never logs in is closed");
        assert_eq!(end, Some(1008), "closed for its login deadline");
    }
    // All of it within a bound far above the deadlines (6 s).
    assert!(started.elapsed() < Duration::from_secs(90));
    // The server is still fine.
    let mut c = server.v1().await;
    c.request(&json!({"code": 107}), 108).await;
}

/// A text frame that is not UTF-8 is answered with close 1007, a protocol violation (a reserved
/// opcode) with 1002.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_closes_with_1007_and_protocol_violations_with_1002() {
    let server = TestServer::start().await;
    let url = format!("ws://{}/ws", server.addr);
    let close_code = |mut ws: tokio_tungstenite::WebSocketStream<TcpStream>| async move {
        tokio::time::timeout(RECV_TIMEOUT, async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("no close frame: {e}"),
                    None => panic!("no close frame"),
                }
            }
        })
        .await
        .expect("closed in time")
    };

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(&url, tcp)
        .await
        .expect("upgrade");
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(bad)).await.expect("send");
    assert_eq!(close_code(ws).await, Some(1007));

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(&url, tcp)
        .await
        .expect("upgrade");
    // FIN, opcode 3 (reserved), masked, empty.
    ws.get_mut()
        .write_all(&[0x83, 0x80, 1, 2, 3, 4])
        .await
        .expect("write");
    assert_eq!(close_code(ws).await, Some(1002));

    // A well-formed text still works on a new connection.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(&url, tcp)
        .await
        .expect("upgrade");
    ws.send(Message::Text(Utf8Bytes::from_static(r#"{"code":107}"#)))
        .await
        .expect("send");
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
}

/// A login attempt's reply: the login reply's `state`, or the error frame's name.
async fn try_login(c: &mut Client, email: &str, pw: &str, rid: &str) -> Value {
    let mut req = frame(&v1::login(v1::Account::Email(email), pw));
    req["request_id"] = json!(rid);
    c.send_json(&req).await;
    let r = c.recv().await;
    assert_eq!(r["request_id"], json!(rid), "{r}");
    r
}

fn too_many(r: &Value) -> bool {
    r["code"] == 100 && error_body(r)["error"] == "too_many_attempts"
}

/// Wrong passwords lock the account with a growing back-off, refused with a clear error naming
/// the request; the lock holds on a new connection, holds even for the right password, and
/// holds alike for an account that does not exist (the limit tells nothing about which do).
/// Once it passes, the right password works and clears the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_account_across_connections() {
    let server = TestServer::start_with(|c| {
        c.limits.guessing.account.free = 3;
        c.limits.guessing.account.first_lock = Duration::from_secs(4);
        c.limits.guessing.address.free = 1000;
    })
    .await;
    let alice = user_v1(&server, "alice@example.com", "Alice", "right").await;
    drop(alice);
    for email in ["alice@example.com", "nobody@example.com"] {
        let mut c = server.v1().await;
        for i in 0..3 {
            let r = try_login(&mut c, email, "wrong", &format!("w{i}")).await;
            assert_eq!(r["code"], 7, "{r}");
            assert_eq!(r["state"], 1, "{r}");
        }
        let r = try_login(&mut c, email, "wrong", "locked").await;
        assert!(too_many(&r), "{r}");
        assert_error(&r, "too_many_attempts", 4291, json!(6));
        let message = string(&error_body(&r)["message"]);
        assert!(message.contains("try again in"), "{message}");
        // A new connection is no way around it, nor is the right password.
        let mut again = server.v1().await;
        let r = try_login(&mut again, email, "right", "again").await;
        assert!(too_many(&r), "{email}: {r}");
    }
    // Another account from the same address is not locked.
    user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    // The lock passes; the right password then works, and the count starts again.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let mut c = server.v1().await;
    login_v1(&mut c, "alice@example.com", "right").await;
    let mut c = server.v1().await;
    for i in 0..2 {
        let r = try_login(&mut c, "alice@example.com", "wrong", &format!("x{i}")).await;
        assert_eq!(r["state"], 1, "free again after a success: {r}");
    }
}

/// One address guessing at many accounts (and tokens) is locked as a whole, however many
/// accounts it tries and however it reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_guessing_many_accounts_or_tokens_is_locked() {
    let server = TestServer::start_with(|c| {
        c.limits.guessing.account.free = 1000;
        c.limits.guessing.address.free = 5;
        c.limits.guessing.address.first_lock = Duration::from_secs(60);
        c.limits.shared_addresses = Vec::new();
    })
    .await;
    let alice = user_v1(&server, "alice@example.com", "Alice", "right").await;
    for i in 0..5 {
        let mut c = server.v1().await;
        let r = try_login(&mut c, &format!("user{i}@example.com"), "guess", "g").await;
        assert_eq!(r["state"], 1, "{r}");
    }
    let mut c = server.v1().await;
    let r = try_login(&mut c, "alice@example.com", "right", "locked").await;
    assert!(too_many(&r), "{r}");

    // Tokens are counted apart, per address too.
    for i in 0..5 {
        let mut req = frame(&v1::resume(&format!("{i:0>43}")));
        req["request_id"] = json!(i);
        let r = c.request(&req, 102).await;
        assert_eq!(r["state"], 1, "{r}");
    }
    let r = c.request(&frame(&v1::resume(&alice.token)), 100).await;
    assert_error(&r, "too_many_attempts", 4291, json!(101));
}

/// A shared address (loopback by default: a reverse proxy or a load generator on this host)
/// is not limited per address; its accounts still are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_address_is_limited_per_account_only() {
    let server = TestServer::start_with(|c| {
        c.limits.guessing.account.free = 3;
        c.limits.guessing.address.free = 2;
        c.limits.guessing.address.first_lock = Duration::from_secs(60);
    })
    .await;
    let mut c = server.v1().await;
    for i in 0..6 {
        let r = try_login(&mut c, &format!("user{i}@example.com"), "guess", "g").await;
        assert_eq!(r["state"], 1, "{r}");
    }
    user_v1(&server, "alice@example.com", "Alice", "pw").await;
    for _ in 0..3 {
        let r = try_login(&mut c, "alice@example.com", "guess", "g").await;
        assert_eq!(r["state"], 1, "{r}");
    }
    assert!(too_many(
        &try_login(&mut c, "alice@example.com", "pw", "g").await
    ));
}

/// Wrong security answers are limited per address as well as per account: one address trying
/// answers for many accounts is refused once it is over its allowance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_security_answers_are_limited_per_address() {
    let server = TestServer::start_with(|c| {
        c.limits.guessing.address.free = 3;
        c.limits.guessing.address.first_lock = Duration::from_secs(60);
        c.limits.shared_addresses = Vec::new();
    })
    .await;
    let mut users = Vec::new();
    for i in 0..4 {
        let email = format!("u{i}@example.com");
        let mut u = user_v1(&server, &email, "U", "pw").await;
        let set = json!({"code": 132, "password": "pw", "question": "pet?", "answer": "cat"});
        let r = u.client.request(&set, 133).await;
        assert!(r.get("error").is_none(), "{r}");
        users.push(email);
    }
    let mut c = server.v1().await;
    let reset = |email: &str, answer: &str| json!({"code": 134, "login_type": 0, "account": email, "answer": answer, "new_password": "new-pw"});
    for email in &users[..3] {
        let r = c.request(&reset(email, "dog"), 100).await;
        assert_error(&r, "bad_credentials", 2001, json!(134));
    }
    // Even the right answer for another account is refused now, from this address.
    let r = c.request(&reset(&users[3], "cat"), 100).await;
    assert_error(&r, "too_many_attempts", 4291, json!(134));
}

/// `GET /metrics` answers loopback clients by default; an allow-list that leaves the client out
/// refuses it (403); with a token, a request without it is refused (401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_restricted_by_address_and_token() {
    async fn get(addr: SocketAddr, auth: Option<&str>) -> String {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let req = format!("GET /metrics HTTP/1.1\r\nHost: n\r\n{auth}Connection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.expect("read");
        out
    }
    let open = TestServer::start().await;
    let r = get(open.addr, None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("natter_"), "{r}");

    let elsewhere = TestServer::start_with(|c| {
        c.metrics_access.allow = vec!["10.0.0.0/8".parse().expect("network")];
    })
    .await;
    let r = get(elsewhere.addr, None).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(!r.contains("natter_"), "{r}");

    let token = TestServer::start_with(|c| {
        c.metrics_access.token = Some("a-long-metrics-token".into());
    })
    .await;
    let r = get(token.addr, None).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = get(token.addr, Some("a-long-metrics-tokeN")).await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    let r = get(token.addr, Some("a-long-metrics-token")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

/// Shutdown ends within its deadline although a client holds a partial request, another is
/// silent, and a WebSocket client does not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_whatever_clients_do() {
    let mut server = TestServer::start_with(|c| {
        c.request_head_timeout = Duration::from_secs(300);
        c.login_timeout = Duration::from_secs(300);
        c.shutdown_timeout = Duration::from_secs(2);
    })
    .await;
    let mut partial = TcpStream::connect(server.addr).await.expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: na")
        .await
        .expect("write");
    let _silent = TcpStream::connect(server.addr).await.expect("connect");
    // A body that never comes in full.
    let mut body = TcpStream::connect(server.addr).await.expect("connect");
    body.write_all(b"POST /healthz HTTP/1.1\r\nHost: n\r\nContent-Length: 1000\r\n\r\nabc")
        .await
        .expect("write");
    let _ws = server.v1().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    // `stop` fails the test if the server is not done within 15 s.
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert!(
        until_closed(&mut partial, Duration::from_secs(5))
            .await
            .is_some(),
        "the partial request's connection is closed"
    );
}

/// After login, heartbeats keep a connection alive past the idle timeout; silence then closes
/// it (1001 "idle timeout").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_logged_in_connection_and_silence_ends_it() {
    let server = TestServer::start_with(|c| {
        c.idle_timeout = Duration::from_secs(3);
        // No server pings (their pongs would count as heard).
        c.ping_interval = Duration::from_secs(600);
    })
    .await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(7) {
        alice.client.request(&json!({"code": 107}), 108).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    closed_after_frames(&mut alice.client, 1001).await;
}

/// An upload whose body stops coming is cut after the body's idle deadline, though the client
/// keeps its connection open; what arrived is kept, and the upload resumes from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_body_is_cut_and_its_bytes_kept() {
    let server = TestServer::start_with(|c| c.body_idle_timeout = Duration::from_secs(2)).await;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw").await;
    let path = crate::files::create(
        server.addr,
        &alice.token,
        1000,
        "a.bin",
        "application/octet-stream",
    )
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: natter\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nAuthorization: Bearer {}\r\n\
         Upload-Offset: 0\r\nContent-Length: 1000\r\n\r\n",
        alice.token
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&[7u8; 300]).await.expect("part");
    let answer = until_closed(&mut tcp, Duration::from_secs(20))
        .await
        .expect("the stalled request is ended while the client holds on");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("incomplete_body"), "{answer}");
    let auth = format!("Bearer {}", alice.token);
    let r = crate::common::http::request(
        server.addr,
        "HEAD",
        &path,
        &[("Tus-Resumable", "1.0.0"), ("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.header("upload-offset"), Some("300"), "{r:?}");
}
