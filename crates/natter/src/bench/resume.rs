//! The `resume` workload: a reconnect storm. N connections resume by token, all are dropped,
//! and again, R rounds; measured is reconnects per second, each one a new TCP connection, a
//! WebSocket upgrade, a resume (code 101) and its reply (code 102).

use super::Common;
use super::report::{self, Latency, Report};
use super::setup;
use super::stats::Histogram;
use std::time::{Duration, Instant};

/// Run the workload.
///
/// # Errors
/// Set-up failures.
pub async fn resume(
    common: &Common,
    connections: usize,
    rounds: usize,
    accounts: usize,
) -> anyhow::Result<Report> {
    let mut report = Report::new("resume", &common.url());
    let accounts = accounts.clamp(1, connections.max(1));
    report.param("connections", connections);
    report.param("rounds", rounds);
    report.param("accounts", accounts);

    let setup = Instant::now();
    let bar = report::progress(accounts as u64, "set-up: accounts");
    let tag = format!("{}r", common.tag);
    let at = |i: usize| common.endpoint(i);
    let set_up = setup::accounts(at, &tag, accounts, common.setup_concurrency, &bar).await?;
    bar.finish_and_clear();
    let tokens: Vec<setup::Account> = set_up.into_iter().map(|(a, _)| a).collect();
    report.setup = format!(
        "registered {accounts} accounts and logged each in once with its password (then closed){}",
        common.spread("in round r, connection c resumes on node c + r mod n")
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    report.measured = format!(
        "{rounds} rounds of {connections} reconnects (new TCP + WebSocket upgrade + resume + reply), \
         at most {} at a time; the connections of a round are dropped before the next",
        common.concurrency
    );

    report::note(&format!(
        "measuring: {rounds} rounds of {connections} reconnects"
    ));
    let bar = report::progress((connections * rounds) as u64, "reconnects");
    let mut reply = Histogram::default();
    let mut busy = Duration::ZERO;
    let mut errors = Vec::new();
    let mut synced = 0;
    for round in 0..rounds {
        // With several nodes, each reconnect lands on another node than the connection's last.
        let at = |c: usize| common.endpoint(c + round);
        let start = Instant::now();
        let opened = setup::open_resumed(at, &tokens, connections, common.concurrency, &bar).await;
        busy += start.elapsed();
        for o in opened {
            match o {
                Ok(o) => {
                    reply.record(o.took);
                    synced += o.synced;
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }
    bar.finish_and_clear();

    let done = reply.count();
    report.figure("seconds", busy.as_secs_f64(), "s");
    report.figure(
        "reconnects_per_sec",
        done as f64 / busy.as_secs_f64().max(1e-9),
        "reconnects/s",
    );
    report.latencies(Latency::Reply, &reply);
    report.count("reconnects", done);
    report.count("errors", errors.len() as u64);
    let wanted = (connections * rounds) as u64;
    report.check = format!("all {wanted} resumes succeeded with nothing to catch up");
    if done != wanted {
        let first = errors.first().map(String::as_str).unwrap_or_default();
        report.failures.push(format!(
            "{done} of {wanted} resumes succeeded; first error: {first}"
        ));
    }
    if synced > 0 {
        report
            .failures
            .push(format!("{synced} messages pushed at resume, none expected"));
    }
    Ok(report)
}
