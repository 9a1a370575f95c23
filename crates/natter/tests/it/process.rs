//! The real `natter` binary: health check, graceful SIGTERM, restart on the same data dir.

use crate::common::{Server, Ws, connect, recv_code, send, serve, serve_with};
use natter_client::ws::{Ended, Event};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn start(data_dir: &std::path::Path) -> Server {
    serve(data_dir, &[], "natter")
}

fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    for _ in 0..200 {
        if let Some(status) = server.child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.child.kill();
    panic!("natter did not exit within 10 s of SIGTERM");
}

async fn register(ws: &mut Ws, email: &str) -> u64 {
    send(
        ws,
        json!({"code": 4, "time": 0, "email": email, "password": "pw", "name": email}),
    )
    .await;
    let r = recv_code(ws, 5).await;
    assert_eq!(r["state"], 0);
    r["ocid"].as_u64().expect("ocid is an integer")
}

async fn healthz(addr: &str) -> String {
    let addr = addr.parse().expect("a socket address");
    natter_client::http::get_raw(addr, "natter", "/healthz")
        .await
        .expect("GET /healthz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_stops_on_sigterm_and_keeps_everything_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());

    let health = healthz(&server.addr).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");

    let mut a = connect(&server.addr).await;
    let ocid_a = register(&mut a, "a@example.com").await;
    let ocid_b = register(&mut a, "b@example.com").await;
    send(
        &mut a,
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    let login = recv_code(&mut a, 7).await;
    assert_eq!(login["state"], 0);
    let token = login["token"].as_str().expect("token").to_owned();
    recv_code(&mut a, 106).await;
    send(&mut a, json!({"code": 0, "sender": {"ocid": ocid_a, "private_id": ocid_b}, "msg": "before restart"})).await;
    let ack = recv_code(&mut a, 103).await;
    assert_eq!(ack["index"], 1);

    let status = terminate(&mut server);
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    // The client was told the server is going away.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match a.next_event().await {
                Event::Ended(Ended::Close(code)) => return code,
                Event::Ended(_) => return None,
                _ => continue,
            }
        }
    })
    .await
    .expect("connection ends");
    assert_eq!(closed, Some(1001));

    let mut server = start(dir.path());
    let mut a = connect(&server.addr).await;
    send(&mut a, json!({"code": 101, "token": token})).await;
    let resumed = recv_code(&mut a, 102).await;
    assert_eq!(resumed["state"], 0);
    assert_eq!(resumed["ocid"], ocid_a);
    recv_code(&mut a, 106).await;

    let mut b = connect(&server.addr).await;
    send(
        &mut b,
        json!({"code": 6, "login_type": 1, "account": ocid_b.to_string(), "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(recv_code(&mut b, 7).await["state"], 0);
    let missed = recv_code(&mut b, 0).await;
    assert_eq!(missed["msg"], "before restart");
    assert_eq!(missed["cid"], ack["cid"]);
    assert_eq!(recv_code(&mut b, 106).await["count"], 1);

    send(
        &mut a,
        json!({"code": 0, "sender": {"private_id": ocid_b}, "msg": "after restart"}),
    )
    .await;
    assert_eq!(recv_code(&mut a, 103).await["index"], 2);
    assert_eq!(recv_code(&mut b, 0).await["index"], 2);

    assert!(terminate(&mut server).success());
}

/// SIGTERM ends the process within the shutdown deadline although a client holds a partial
/// HTTP request open, another is silent and another has sent half a body (their own deadlines
/// set far away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_the_deadline_whatever_clients_hold_open() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = serve(
        dir.path(),
        &[
            "--request-head-timeout-secs",
            "600",
            "--login-timeout-secs",
            "600",
            "--shutdown-timeout-secs",
            "2",
        ],
        "natter",
    );
    let mut partial = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: nat")
        .await
        .expect("write");
    let _silent = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("connect");
    let mut body = tokio::net::TcpStream::connect(&server.addr)
        .await
        .expect("connect");
    body.write_all(b"POST /healthz HTTP/1.1\r\nHost: n\r\nContent-Length: 100\r\n\r\nab")
        .await
        .expect("write");
    let _ws = connect(&server.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // `terminate` fails the test unless the process exits within 10 s.
    let status = terminate(&mut server);
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

/// Passwords and tokens never reach the log, even with every library's tracing asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_reaches_the_log_at_trace() {
    const PASSWORD: &str = "Sup3r-S3cret-Passw0rd";
    const GUESS: &str = "Wr0ng-S3cret-Guess";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = serve(dir.path(), &["--log-level", "trace,natter=trace"], "natter");
    let mut a = connect(&server.addr).await;
    send(
        &mut a,
        json!({"code": 4, "time": 0, "email": "a@example.com", "password": PASSWORD, "name": "a"}),
    )
    .await;
    assert_eq!(recv_code(&mut a, 5).await["state"], 0);
    send(
        &mut a,
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": GUESS}),
    )
    .await;
    assert_eq!(recv_code(&mut a, 7).await["state"], 1);
    send(
        &mut a,
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": PASSWORD}),
    )
    .await;
    let login = recv_code(&mut a, 7).await;
    let token = login["token"].as_str().expect("token").to_owned();
    let mut b = connect(&server.addr).await;
    send(&mut b, json!({"code": 101, "token": token})).await;
    assert_eq!(recv_code(&mut b, 102).await["state"], 0);
    assert!(terminate(&mut server).success());
    // The reader thread has the last lines once the pipe is closed.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log.lock().expect("log").join("\n");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is verbose: {log}"
    );
    for secret in [PASSWORD, GUESS, token.as_str()] {
        assert!(!log.contains(secret), "`{secret}` is in the log");
    }
}

/// Out of file descriptors (silent connections fill them), the server pauses accepting with a
/// growing back-off, logged, instead of spinning or failing, and serves again as the head
/// deadline frees descriptors, though the silent clients stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_pauses_accepting_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut prlimit = Command::new("prlimit");
    prlimit.args(["--nofile=96:96", env!("CARGO_BIN_EXE_natter")]);
    let mut server = serve_with(
        prlimit,
        dir.path(),
        &["--request-head-timeout-secs", "2"],
        "natter",
    );
    let logged = |server: &Server, text: &str| {
        server
            .log
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains(text))
    };
    // More silent connections than the server has descriptors.
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(tcp) = tokio::net::TcpStream::connect(&server.addr).await {
            held.push(tcp);
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !logged(&server, "cannot accept connections; pausing") {
        assert!(
            std::time::Instant::now() < deadline,
            "no accept error was logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without any client leaving, the silent connections it holds reach their head deadline
    // and are closed; it accepts again and answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let addr = server.addr.parse().expect("a socket address");
        let get = natter_client::http::get_raw(addr, "natter", "/healthz");
        if let Ok(Ok(health)) = tokio::time::timeout(Duration::from_secs(2), get).await
            && health.starts_with("HTTP/1.1 200")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not serve again"
        );
        assert!(
            server.child.try_wait().expect("wait").is_none(),
            "it exited"
        );
    }
    drop(held);
    assert!(terminate(&mut server).success());
}
