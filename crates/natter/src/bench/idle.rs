//! The `idle` workload: N logged-in connections held open; measured are the rate at which they
//! are opened (TCP, WebSocket upgrade, resume by token, catch-up) and the server's resident
//! memory per connection, read from its `GET /metrics`.
//!
//! Password logins cost an Argon2id hash each, so only `accounts` accounts are registered and
//! logged in with the password; the N connections resume with their tokens, several connections
//! per account (multi-device).

use super::Common;
use super::client::{self, Conn, Metrics};
use super::report::{self, Latency, Report};
use super::stats::Histogram;
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Run the workload.
///
/// # Errors
/// Set-up failures, or `/metrics` cannot be read.
pub async fn idle(
    common: &Common,
    connections: usize,
    accounts: usize,
    hold: Duration,
) -> anyhow::Result<Report> {
    let endpoint = &common.endpoint;
    let mut report = Report::new("idle", &endpoint.url);
    let accounts = accounts.clamp(1, connections.max(1));
    report.param("connections", connections);
    report.param("accounts", accounts);
    report.param("hold_secs", hold.as_secs_f64());
    let stop = CancellationToken::new();
    let closed = Arc::new(AtomicU64::new(0));

    let setup = Instant::now();
    let bar = report::progress(accounts as u64, "set-up: accounts");
    let tag = format!("{}i", common.tag);
    let set_up = client::accounts(endpoint, &tag, accounts, common.setup_concurrency, &bar).await?;
    bar.finish_and_clear();
    let mut tokens = Vec::with_capacity(accounts);
    for (account, conn) in set_up {
        tokens.push(account);
        tokio::spawn(hold_open(conn, stop.clone(), closed.clone()));
    }
    report.setup = format!(
        "registered {accounts} accounts and logged each in once with its password (those {accounts} connections stay open)"
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    report.measured = format!(
        "{connections} connections opened (TCP + WebSocket upgrade + resume by token + sync-done), \
         at most {} at a time, then held {:.1} s; server RSS from GET /metrics before and after \
         (meaningful on a freshly started server only: memory freed by earlier runs is reused)",
        common.concurrency,
        hold.as_secs_f64()
    );

    let before = endpoint.metrics().await?;
    report::note(&format!("measuring: opening {connections} connections"));
    let bar = report::progress(connections as u64, "connections");
    let start = Instant::now();
    let opened =
        client::open_resumed(endpoint, &tokens, connections, common.concurrency, &bar).await;
    let took = start.elapsed();
    bar.finish_and_clear();
    let mut reply = Histogram::default();
    let mut errors = Vec::new();
    let mut synced = 0;
    for o in opened {
        match o {
            Ok(o) => {
                reply.record(o.took);
                synced += o.synced;
                tokio::spawn(hold_open(o.conn, stop.clone(), closed.clone()));
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    tokio::time::sleep(hold).await;
    let after = endpoint.metrics().await?;
    stop.cancel();

    let held = reply.count();
    report.figure(
        "connects_per_sec",
        held as f64 / took.as_secs_f64().max(1e-9),
        "conn/s",
    );
    report.latencies(Latency::Reply, &reply);
    memory(&mut report, &before, &after, held)?;
    report.count("connections_opened", held);
    report.count("connection_errors", errors.len() as u64);
    report.count(
        "server_connections_added",
        after.connections.saturating_sub(before.connections),
    );
    let outcome = Outcome {
        wanted: connections as u64,
        held,
        errors,
        synced,
        closed: closed.load(Ordering::Relaxed),
    };
    report.count("closed_while_held", outcome.closed);
    report.check = format!(
        "all {connections} connections logged in and stayed open, and the server counts each"
    );
    check(&mut report, &outcome, &before, &after);
    Ok(report)
}

/// RSS per connection and its extrapolation to a million connections.
fn memory(report: &mut Report, before: &Metrics, after: &Metrics, held: u64) -> anyhow::Result<()> {
    let before_rss = before
        .rss_bytes
        .context("the server reports no rss_bytes")?;
    let after_rss = after.rss_bytes.context("the server reports no rss_bytes")?;
    let per = (after_rss as f64 - before_rss as f64) / held.max(1) as f64;
    report.figure("server_rss_before_mib", before_rss as f64 / MIB, "MiB");
    report.figure("server_rss_after_mib", after_rss as f64 / MIB, "MiB");
    report.figure("server_rss_per_connection_bytes", per, "bytes");
    report.figure(
        "server_rss_for_1m_connections_gib",
        per * 1e6 / (MIB * 1024.0),
        "GiB",
    );
    Ok(())
}

const MIB: f64 = 1024.0 * 1024.0;

/// What opening and holding the connections gave.
struct Outcome {
    wanted: u64,
    held: u64,
    errors: Vec<String>,
    /// Messages pushed at resume (none expected: the accounts are fresh).
    synced: u64,
    closed: u64,
}

fn check(report: &mut Report, o: &Outcome, before: &Metrics, after: &Metrics) {
    let Outcome {
        wanted,
        held,
        ref errors,
        synced,
        closed,
    } = *o;
    if held != wanted {
        let first = errors.first().map(String::as_str).unwrap_or_default();
        report.failures.push(format!(
            "{held} of {wanted} connections opened; first error: {first}"
        ));
    }
    if synced > 0 {
        report
            .failures
            .push(format!("{synced} messages pushed at resume, none expected"));
    }
    if closed > 0 {
        report.failures.push(format!(
            "{closed} connections closed by the server while held"
        ));
    }
    let added = after.connections.saturating_sub(before.connections);
    if added != held {
        report.failures.push(format!(
            "the server counts {added} more logged-in connections, {held} were opened"
        ));
    }
}

/// Keep a connection open (answering pings) until `stop`; count it in `closed` if the server
/// closes it first.
async fn hold_open(mut conn: Conn, stop: CancellationToken, closed: Arc<AtomicU64>) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            text = conn.next_text() => if text.is_err() {
                closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}
