//! What an operator relies on, over the wire: registration modes, readiness (`/readyz` goes
//! unready when the store refuses writes or the bus is away), and the Prometheus `/metrics`.

use crate::cluster::{OwnNats, free_port};
use crate::common::services::{self, TestDb};
use crate::common::{TestServer, assert_error, frame, login_v1, register_v1};
use natter_client::ourchat::v1;
use natter_server::domain::Registration;
use serde_json::json;
use sqlx::Connection;
use std::net::SocketAddr;
use std::time::Duration;

async fn get(addr: SocketAddr, path: &str) -> natter_client::http::Response {
    natter_client::http::get(addr, "natter", path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `/readyz` must answer `status` within `wait` (it is polled).
async fn readyz_becomes(addr: SocketAddr, status: u16, wait: Duration) -> String {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let r = get(addr, "/readyz").await;
        if r.status == status {
            return r.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still answers {} ({}) after {wait:?}; expected {status}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn closed_registration_refuses_both_dialects() {
    let server = TestServer::start_with(|c| c.limits.registration = Registration::Closed).await;
    let mut a = server.v1().await;
    let r = a
        .request(&frame(&v1::register("a@example.com", "pw", "A")), 100)
        .await;
    assert_error(&r, "registration_closed", 3003, json!(4));
    let mut b = server.v0().await;
    let r = b
        .request(
            &json!({"code": 4, "data": {"mail": "b@example.com", "password": "pw"}}),
            100,
        )
        .await;
    assert_error(&r, "registration_closed", 3003, json!(4));
}

#[tokio::test]
async fn invitation_codes_register_over_v0_once() {
    let server = TestServer::start_with(|c| c.limits.registration = Registration::Invite).await;
    readyz_becomes(server.addr, 200, Duration::from_secs(5)).await;
    let domain = natter_server::app::operator_domain(&server.config)
        .await
        .expect("an operator's view of the store");
    let code = domain.create_invite(None).await.expect("invite");
    let mut c = server.v0().await;
    let register = |mail: &str, invite: Option<&str>| {
        let mut f = json!({"code": 4, "data": {"mail": mail, "password": "pw"}});
        if let Some(i) = invite {
            f["data"]["invite"] = json!(i);
        }
        f
    };
    let r = c.request(&register("a@example.com", None), 100).await;
    assert_error(&r, "invalid_invite", 3004, json!(4));
    let r = c.request(&register("a@example.com", Some(&code)), 5).await;
    assert_eq!(r["data"]["state"], json!(0), "{r}");
    let r = c
        .request(&register("b@example.com", Some(&code)), 100)
        .await;
    assert_error(&r, "invalid_invite", 3004, json!(4));
    domain.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_sqlite_store_refuses_writes() {
    let server = TestServer::start().await;
    let health = get(server.addr, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    assert_eq!(
        readyz_becomes(server.addr, 200, Duration::from_secs(5)).await,
        "ready"
    );

    // Another process holds the database's write lock: nothing can be stored meanwhile.
    let path = server.config.data_dir.join("natter.db");
    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .expect("take the write lock");
    let why = readyz_becomes(server.addr, 503, Duration::from_secs(10)).await;
    assert!(why.starts_with("store:"), "{why}");
    // Alive all the same.
    assert_eq!(get(server.addr, "/healthz").await.status, 200);

    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("release the lock");
    readyz_becomes(server.addr, 200, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_when_postgres_goes_away() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let url = db.url.clone();
    let server = TestServer::start_with(|c| {
        c.store_url = Some(url);
        c.store_pool = 2;
    })
    .await;
    readyz_becomes(server.addr, 200, Duration::from_secs(5)).await;
    // The database is dropped under the server (its connections are ended).
    drop(db);
    let why = readyz_becomes(server.addr, 503, Duration::from_secs(15)).await;
    assert!(why.starts_with("store:"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_bus_is_away() {
    let Some(_) = services::nats().await else {
        return;
    };
    let port = free_port();
    let mut nats = OwnNats::start(port);
    nats.wait_ready().await;
    let url = format!("nats://127.0.0.1:{port}");
    let server = TestServer::start_with(|c| c.bus_url = Some(url)).await;
    readyz_becomes(server.addr, 200, Duration::from_secs(5)).await;
    nats.stop();
    let why = readyz_becomes(server.addr, 503, Duration::from_secs(10)).await;
    assert_eq!(why, "bus: not connected");
    let nats = OwnNats::start(port);
    nats.wait_ready().await;
    readyz_becomes(server.addr, 200, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_login_of_the_registered_account_works_in_invite_mode_for_operator_accounts() {
    let server = TestServer::start_with(|c| c.limits.registration = Registration::Invite).await;
    readyz_becomes(server.addr, 200, Duration::from_secs(5)).await;
    let domain = natter_server::app::operator_domain(&server.config)
        .await
        .expect("an operator's view of the store");
    let a = domain
        .admin_create_account("op@example.com", "pw", Some("Op"))
        .await
        .expect("operator-made account");
    domain.close().await;
    let mut c = server.v1().await;
    let login = login_v1(&mut c, "op@example.com", "pw").await;
    assert_eq!(login.ocid, a.ocid.0);
    // Open registration still works as before elsewhere.
    let open = TestServer::start().await;
    let mut d = open.v1().await;
    register_v1(&mut d, "x@example.com", "X", "pw").await;
}

/// The samples of a Prometheus text page: `name{labels}` -> value. Every line must be a
/// comment or a sample.
fn samples(page: &str) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    for line in page.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let kind = comment.split_whitespace().next();
            assert!(
                matches!(kind, Some("HELP" | "TYPE")),
                "not a HELP or TYPE comment: {line}"
            );
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in: {line}"));
        out.insert(name.to_owned(), value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_and_count_what_happened() {
    let server = TestServer::start_with(|c| {
        c.rate_per_sec = 5;
        c.rate_burst = 5;
    })
    .await;
    let mut a = crate::common::user_v1(&server, "a@example.com", "A", "pw").await;
    let b = crate::common::user_v1(&server, "b@example.com", "B", "pw").await;
    let mut wrong = server.v1().await;
    let r = wrong
        .request(
            &frame(&v1::login(v1::Account::Email("a@example.com"), "nope")),
            7,
        )
        .await;
    assert_eq!(r["state"], json!(1));
    for i in 0..3 {
        crate::common::send_v1(
            &mut a.client,
            json!({"private_id": b.ocid}),
            &format!("m{i}"),
        )
        .await;
    }
    // Over the budget: a frame is refused.
    let mut refused = 0;
    for _ in 0..10 {
        a.client.send_json(&json!({"code": 107})).await;
        let f = a.client.recv().await;
        if f["code"] == json!(100) {
            refused += 1;
        }
    }
    assert!(refused > 0, "the budget of 5/s refused nothing");

    let r = get(server.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    let m = samples(&r.body);
    let at = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("no sample {k} in\n{}", r.body))
    };
    assert_eq!(
        at(r#"natter_logins_total{kind="password",result="ok"}"#),
        2.0
    );
    assert_eq!(
        at(r#"natter_logins_total{kind="password",result="rejected"}"#),
        1.0
    );
    assert_eq!(at("natter_messages_stored_total"), 3.0);
    assert_eq!(
        at("natter_deliveries_total"),
        3.0,
        "each of 3 messages to B's one connection"
    );
    assert_eq!(at("natter_rate_limited_total"), f64::from(refused));
    assert_eq!(at(r#"natter_connections{dialect="ourchat_v1"}"#), 3.0);
    assert_eq!(at(r#"natter_connections{dialect="ourchat_v0"}"#), 0.0);
    assert_eq!(at("natter_logged_in_connections"), 2.0);
    assert!(at("natter_store_commit_seconds_count") >= 1.0);
    assert!(at(r#"natter_store_commit_seconds_bucket{le="+Inf"}"#) >= 1.0);
    assert!(at("process_resident_memory_bytes") > 1e6);
    for name in [
        "natter_outbox_full_total",
        "natter_resyncs_total",
        "natter_bus_dropped_total",
        "natter_bus_reconnects_total",
    ] {
        assert_eq!(at(name), 0.0, "{name}");
    }
    assert!(
        r.body
            .contains("# TYPE natter_store_commit_seconds histogram"),
        "{}",
        r.body
    );

    // A connection that closes is no longer counted.
    wrong.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = samples(&get(server.addr, "/metrics").await.body);
    assert_eq!(m[r#"natter_connections{dialect="ourchat_v1"}"#], 2.0);
}
