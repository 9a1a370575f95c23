//! The `idle` workload: N logged-in connections held open; measured are the rate at which they
//! are opened (TCP, WebSocket upgrade, resume by token, catch-up) and the server's resident
//! memory per connection, read from its `GET /metrics`.
//!
//! With several nodes, connection `c` goes to node `c mod n`; the memory per connection is the
//! growth of every node's RSS, summed, over the connections held, and each node must count the
//! connections opened to it.
//!
//! Password logins cost an Argon2id hash each, so only `accounts` accounts are registered and
//! logged in with the password; the N connections resume with their tokens, several connections
//! per account (multi-device).

use super::Common;
use super::report::{self, Latency, Report};
use super::setup::{self, Conn, Metrics};
use super::stats::Histogram;
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Connections per account when the number of accounts is not given: with the account's own
/// login connection, within the server's default cap of 32 connections per account.
const PER_ACCOUNT: usize = 30;

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
    let mut report = Report::new("idle", &common.url());
    let accounts = match accounts {
        0 => connections.div_ceil(PER_ACCOUNT),
        n => n,
    }
    .clamp(1, connections.max(1));
    report.param("connections", connections);
    report.param("accounts", accounts);
    report.param("hold_secs", hold.as_secs_f64());
    let stop = CancellationToken::new();
    let closed = Arc::new(AtomicU64::new(0));

    let setup = Instant::now();
    let bar = report::progress(accounts as u64, "set-up: accounts");
    let tag = format!("{}i", common.tag);
    let at = |i: usize| common.endpoint(i);
    let set_up = setup::accounts(at, &tag, accounts, common.setup_concurrency, &bar).await?;
    bar.finish_and_clear();
    let mut tokens = Vec::with_capacity(accounts);
    for (account, conn) in set_up {
        tokens.push(account);
        tokio::spawn(hold_open(conn, stop.clone(), closed.clone()));
    }
    report.setup = format!(
        "registered {accounts} accounts and logged each in once with its password (those {accounts} connections stay open){}",
        common.spread("account i on node i mod n, connection c on node c mod n")
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    report.measured = format!(
        "{connections} connections opened (TCP + WebSocket upgrade + resume by token + sync-done), \
         at most {} at a time, then held {:.1} s; server RSS from GET /metrics before and after{} \
         (meaningful on a freshly started server only: memory freed by earlier runs is reused)",
        common.concurrency,
        hold.as_secs_f64(),
        if common.nodes() > 1 {
            ", summed over the nodes"
        } else {
            ""
        }
    );

    let before = metrics(common).await?;
    report::note(&format!("measuring: opening {connections} connections"));
    let bar = report::progress(connections as u64, "connections");
    let start = Instant::now();
    let opened = setup::open_resumed(at, &tokens, connections, common.concurrency, &bar).await;
    let took = start.elapsed();
    bar.finish_and_clear();
    let mut reply = Histogram::default();
    let mut errors = Vec::new();
    let mut synced = 0;
    let mut held_at = vec![0u64; common.nodes()];
    for o in opened {
        match o {
            Ok(o) => {
                reply.record(o.took);
                synced += o.synced;
                held_at[o.number % common.nodes()] += 1;
                tokio::spawn(hold_open(o.conn, stop.clone(), closed.clone()));
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    tokio::time::sleep(hold).await;
    let after = metrics(common).await?;
    stop.cancel();
    let nodes: Vec<Node> = (0..common.nodes())
        .map(|k| Node {
            url: common.endpoint(k).url.clone(),
            before: before[k],
            after: after[k],
            held: held_at[k],
        })
        .collect();

    let held = reply.count();
    report.figure(
        "connects_per_sec",
        held as f64 / took.as_secs_f64().max(1e-9),
        "conn/s",
    );
    report.latencies(Latency::Reply, &reply);
    memory(&mut report, &nodes, held)?;
    report.count("connections_opened", held);
    report.count("connection_errors", errors.len() as u64);
    report.count(
        "server_connections_added",
        nodes.iter().map(Node::added).sum::<u64>(),
    );
    if nodes.len() > 1 {
        for (k, node) in nodes.iter().enumerate() {
            report.count(format!("connections_opened_node{k}"), node.held);
            report.count(format!("server_connections_added_node{k}"), node.added());
        }
    }
    let outcome = Outcome {
        wanted: connections as u64,
        held,
        errors,
        synced,
        closed: closed.load(Ordering::Relaxed),
    };
    report.count("closed_while_held", outcome.closed);
    report.check = if nodes.len() > 1 {
        format!(
            "all {connections} connections logged in and stayed open, and each node counts those opened to it"
        )
    } else {
        format!(
            "all {connections} connections logged in and stayed open, and the server counts each"
        )
    };
    check(&mut report, &outcome, &nodes);
    Ok(report)
}

/// One node's `GET /metrics` before and after, and the connections held open to it.
struct Node {
    url: String,
    before: Metrics,
    after: Metrics,
    held: u64,
}

impl Node {
    /// The logged-in connections the node counts more after than before.
    fn added(&self) -> u64 {
        self.after
            .connections
            .saturating_sub(self.before.connections)
    }
}

/// Every node's `GET /metrics`, in the order of the endpoints.
async fn metrics(common: &Common) -> anyhow::Result<Vec<Metrics>> {
    let mut all = Vec::with_capacity(common.nodes());
    for k in 0..common.nodes() {
        let endpoint = common.endpoint(k);
        let m = endpoint
            .metrics()
            .await
            .with_context(|| format!("GET /metrics of {}", endpoint.url))?;
        all.push(m);
    }
    Ok(all)
}

/// RSS per connection (every node's growth, summed, over the connections held) and its
/// extrapolation to a million connections.
fn memory(report: &mut Report, nodes: &[Node], held: u64) -> anyhow::Result<()> {
    let (mut before_rss, mut after_rss) = (0u64, 0u64);
    for node in nodes {
        let rss = |m: &Metrics| {
            m.rss_bytes
                .with_context(|| format!("the server at {} reports no rss_bytes", node.url))
        };
        before_rss += rss(&node.before)?;
        after_rss += rss(&node.after)?;
    }
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

fn check(report: &mut Report, o: &Outcome, nodes: &[Node]) {
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
    if let [node] = nodes {
        let added = node.added();
        if added != held {
            report.failures.push(format!(
                "the server counts {added} more logged-in connections, {held} were opened"
            ));
        }
        return;
    }
    for (k, node) in nodes.iter().enumerate() {
        let added = node.added();
        if added != node.held {
            report.failures.push(format!(
                "node {k} ({}) counts {added} more logged-in connections, {} were opened to it",
                node.url, node.held
            ));
        }
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
