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
        .request(&frame(&v1::register("a@example.com", "pw", "A")), 12)
        .await;
    assert_error(&r, "registration_closed", 3001, json!(4));
    let mut b = server.v0().await;
    let r = b
        .request(
            &json!({"code": 4, "data": {"mail": "b@example.com", "password": "pw"}}),
            12,
        )
        .await;
    assert_error(&r, "registration_closed", 3001, json!(4));
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
    let r = c.request(&register("a@example.com", None), 12).await;
    assert_error(&r, "invalid_invite", 3002, json!(4));
    let r = c.request(&register("a@example.com", Some(&code)), 5).await;
    assert_eq!(r["data"]["state"], json!(0), "{r}");
    let r = c.request(&register("b@example.com", Some(&code)), 12).await;
    assert_error(&r, "invalid_invite", 3002, json!(4));
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
