//! The external services some tests need (PostgreSQL, NATS). A test that needs one runs when
//! it is reachable, is skipped when it is not, and FAILS when it is not and `CI=true`: CI
//! machines always run them.
//!
//! Either way the run says so without `--nocapture`: the first check of each service writes
//! one line (reachable or not, where), and every skipped test writes a line with its name.
//! They are written to the process's standard error directly, which the test harness does not
//! capture (it captures only `print!` and `eprint!`).

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::time::Duration;

/// The server to create test databases on (`NATTER_TEST_PG`, default: the local one).
fn pg_admin_url() -> String {
    std::env::var("NATTER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The NATS server tests use (`NATTER_TEST_NATS`, default: the local one).
pub fn nats_url() -> String {
    std::env::var("NATTER_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A line on the real standard error, past the harness's capture (also for a test that skips
/// part of itself).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The first time a service is checked in this process, say whether it answers.
fn announce(service: &'static str, at: &str, reachable: bool) {
    static SAID: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if said.contains(&service) {
        return;
    }
    said.push(service);
    if reachable {
        say(&format!(
            "services: {service} at {at} answers: the tests that need it run"
        ));
    } else {
        say(&format!(
            "services: {service} at {at} does not answer: the tests that need it are SKIPPED"
        ));
    }
}

/// `None` (skip) when the service is unreachable outside CI; a panic inside CI.
fn unavailable<T>(service: &'static str, at: &str, why: &dyn std::fmt::Display) -> Option<T> {
    assert!(
        !in_ci(),
        "{service} is required when CI=true but is unreachable at {at}: {why}"
    );
    announce(service, at, false);
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    say(&format!(
        "SKIPPED {test}: {service} at {at} is unreachable ({why})"
    ));
    None
}

/// A database created for one test and dropped (with its connections) when this is dropped.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    /// A fresh, empty database, or `None` when PostgreSQL is unreachable (outside CI).
    pub async fn create() -> Option<Self> {
        let admin = pg_admin_url();
        let connect = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin));
        let mut conn = match connect.await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return unavailable("PostgreSQL", &admin, &e),
            Err(e) => return unavailable("PostgreSQL", &admin, &e),
        };
        announce("PostgreSQL", &admin, true);
        let name = format!("natter_test_{:016x}", rand_u64());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(Self {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop may run inside a runtime (or while unwinding); do the async work on a thread of
        // its own.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            rt.block_on(async move {
                let mut conn = PgConnection::connect(&pg_admin_url()).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// Whether NATS answers at `nats_url()`: `Some(url)`, `None` (skip) outside CI, else a panic.
pub async fn nats() -> Option<String> {
    let url = nats_url();
    let hostport = url.trim_start_matches("nats://").to_owned();
    match tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(hostport),
    )
    .await
    {
        Ok(Ok(_)) => {
            announce("NATS", &url, true);
            Some(url)
        }
        Ok(Err(e)) => unavailable("NATS", &url, &e),
        Err(e) => unavailable("NATS", &url, &e),
    }
}

/// A random u64 for unique names.
pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
