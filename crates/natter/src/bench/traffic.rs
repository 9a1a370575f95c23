//! Message traffic: `direct` (P private pairs) and `group` (one group of K members, S of them
//! sending). Both run the same peer loop on every connection: send with a window of unacked
//! messages (optionally paced), receive, and tally the chat's indexes.
//!
//! Every peer of a chat ends up holding indexes 1 ..= N of that chat: its own messages through
//! their acks, the others' through deliveries, which must arrive exactly once and in increasing
//! index order. A message's text is its send time (nanoseconds since the start of the
//! measurement), from which each receiver takes the latency.

use super::Common;
use super::report::{self, Latency, Report};
use super::setup::{self, Conn};
use super::stats::{Histogram, Tally};
use anyhow::{Context, bail, ensure};
use indicatif::ProgressBar;
use natter_client::Target;
use natter_client::ourchat::v1::{self, Frame};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Deliveries counted locally before the progress bar is told.
const PROGRESS_BATCH: u64 = 256;

/// How the senders send.
#[derive(Debug, Clone, Copy)]
pub struct Sending {
    /// Messages per sender.
    pub messages: usize,
    /// Messages a sender may have awaiting their ack.
    pub window: usize,
    /// Messages per second over all senders (`None`: as fast as the window allows).
    pub rate: Option<f64>,
}

/// What one connection does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// This connection's account.
    me: u64,
    /// The chat: the peer of a private chat, or the group.
    chat: Target,
    /// Messages this connection sends to `chat`.
    send: usize,
    window: usize,
    /// Time between two sends when paced.
    interval: Option<Duration>,
    /// The chat's number of messages at the end.
    expected: u64,
}

impl Plan {
    /// Whether a delivered message belongs to this plan's chat.
    fn in_chat(&self, f: &Frame<'_>) -> bool {
        let Some(s) = &f.sender else { return false };
        match self.chat {
            Target::Group(g) => s.group_id == Some(g),
            Target::Private(peer) => {
                (s.ocid == Some(peer) && s.private_id == Some(self.me))
                    || (s.ocid == Some(self.me) && s.private_id == Some(peer))
            }
        }
    }

    /// Whether an ack is for this plan's chat.
    fn acks_chat(&self, f: &Frame<'_>) -> bool {
        match self.chat {
            Target::Group(g) => f.group_id == Some(g),
            Target::Private(peer) => f.private_id == Some(peer),
        }
    }
}

/// What one connection saw.
#[derive(Debug)]
struct Outcome {
    latency: Histogram,
    tally: Tally,
    sent: u64,
    acked: u64,
    deliveries: u64,
    /// Frames of another chat, or acks that match no send.
    foreign: u64,
    last_ack: Duration,
    last_delivery: Duration,
}

/// What every peer shares: the clock, the progress bar, and the stop signal.
#[derive(Clone)]
struct Shared {
    start: Instant,
    progress: ProgressBar,
    stop: CancellationToken,
    /// Gets a permit when a sender has every ack.
    senders_done: Arc<Semaphore>,
}

/// The `direct` workload: `pairs` senders each send to their own receiver.
///
/// # Errors
/// Set-up or connection failures.
pub async fn direct(common: &Common, pairs: usize, sending: Sending) -> anyhow::Result<Report> {
    let mut report = Report::new("direct", &common.url());
    report.param("pairs", pairs);
    sending.params(&mut report);
    let setup = Instant::now();
    let bar = report::progress(2 * pairs as u64, "set-up: accounts");
    let tag = format!("{}d", common.tag);
    // Accounts 0 .. pairs send, pairs .. 2 pairs receive: sender i on node i, its receiver on
    // node i + 1, so that with several nodes every message crosses from one to another.
    let at = |k: usize| {
        if k < pairs {
            common.endpoint(k)
        } else {
            common.endpoint(k - pairs + 1)
        }
    };
    let mut accounts = setup::accounts(at, &tag, 2 * pairs, common.setup_concurrency, &bar).await?;
    bar.finish_and_clear();
    let receivers = accounts.split_off(pairs);
    report.setup = format!(
        "registered and logged in {} accounts ({pairs} senders, {pairs} receivers), one connection each{}",
        2 * pairs,
        common.spread("sender i on node i mod n, its receiver on node i + 1 mod n")
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    let interval = sending.interval(pairs);
    let messages = sending.messages as u64;
    let mut peers = Vec::with_capacity(2 * pairs);
    for ((sender, sconn), (receiver, rconn)) in accounts.into_iter().zip(receivers) {
        let plan = Plan {
            me: sender.ocid,
            chat: Target::Private(receiver.ocid),
            send: sending.messages,
            window: sending.window,
            interval,
            expected: messages,
        };
        peers.push((sconn, plan));
        let plan = Plan {
            me: receiver.ocid,
            chat: Target::Private(sender.ocid),
            send: 0,
            expected: messages,
            ..plan
        };
        peers.push((rconn, plan));
    }
    report.measured = format!(
        "{pairs} senders each sending {} private messages to its own receiver, {}; \
         persisted = acked, latency = send to receipt",
        sending.messages,
        sending.describe()
    );
    let expected_deliveries = pairs as u64 * messages;
    let outcomes = drive(peers, pairs, expected_deliveries, common.grace).await?;
    summarise(
        &mut report,
        &outcomes,
        pairs as u64 * messages,
        expected_deliveries,
    );
    Ok(report)
}

/// The `group` workload: one group of `members`, all online, the first `senders` of them
/// sending.
///
/// # Errors
/// Set-up or connection failures.
pub async fn group(
    common: &Common,
    members: usize,
    senders: usize,
    sending: Sending,
) -> anyhow::Result<Report> {
    ensure!(members >= 2, "a group needs at least 2 members");
    ensure!(senders <= members, "senders cannot outnumber members");
    let mut report = Report::new("group", &common.url());
    report.param("members", members);
    report.param("senders", senders);
    sending.params(&mut report);
    let setup = Instant::now();
    let bar = report::progress(members as u64, "set-up: accounts");
    let tag = format!("{}g", common.tag);
    // Member j (the senders are the first) on node j: every node has senders' messages to
    // deliver to the members of the others.
    let at = |j: usize| common.endpoint(j);
    let mut accounts = setup::accounts(at, &tag, members, common.setup_concurrency, &bar).await?;
    bar.finish_and_clear();
    let others: Vec<u64> = accounts.iter().skip(1).map(|(a, _)| a.ocid).collect();
    // Members agree to be added: by default only friends add an account to a group (the
    // others invite it). A server without the setting refuses it and adds them anyway.
    for (_, conn) in accounts.iter_mut().skip(1) {
        if let Err(e) = conn.set_group_adds("everyone").await {
            ensure!(
                matches!(e, natter_client::Error::Server(_)),
                "setting group_adds failed: {e}"
            );
        }
    }
    let group = match accounts.first_mut() {
        Some((_, owner)) => owner.create_group(&others, Some("bench")).await?,
        None => bail!("no members"),
    };
    report.setup = format!(
        "registered and logged in {members} accounts, one connection each; created one group of all {members}{}",
        common.spread("member j (senders first) on node j mod n")
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    let interval = sending.interval(senders);
    let total = (senders * sending.messages) as u64;
    let peers = accounts
        .into_iter()
        .enumerate()
        .map(|(i, (account, conn))| {
            let plan = Plan {
                me: account.ocid,
                chat: Target::Group(group),
                send: if i < senders { sending.messages } else { 0 },
                window: sending.window,
                interval,
                expected: total,
            };
            (conn, plan)
        })
        .collect();
    report.measured = format!(
        "{senders} of {members} members each sending {} messages to the group, {}; \
         every other member receives each (deliveries = messages x {})",
        sending.messages,
        sending.describe(),
        members - 1
    );
    let expected_deliveries = total * (members as u64 - 1);
    let outcomes = drive(peers, senders, expected_deliveries, common.grace).await?;
    summarise(&mut report, &outcomes, total, expected_deliveries);
    Ok(report)
}

impl Sending {
    /// How the senders were driven, for the report's `measured` line.
    fn describe(&self) -> String {
        match self.rate {
            Some(rate) => format!(
                "{} awaiting their ack, paced to {rate} msg/s in total",
                self.window
            ),
            None => format!("{} awaiting their ack", self.window),
        }
    }

    fn params(&self, report: &mut Report) {
        report.param("messages", self.messages);
        report.param("window", self.window);
        if let Some(rate) = self.rate {
            report.param("rate", rate);
        }
    }

    /// Time between two sends of one of `senders` senders, when paced.
    fn interval(&self, senders: usize) -> Option<Duration> {
        self.rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(senders as f64 / r))
    }
}

/// Run every peer until each has its whole chat, or until `grace` after the last sender got its
/// last ack (then the missing messages count as lost).
async fn drive(
    peers: Vec<(Conn, Plan)>,
    senders: usize,
    expected_deliveries: u64,
    grace: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    report::note(&format!(
        "measuring: {} connections, {expected_deliveries} deliveries expected",
        peers.len()
    ));
    let shared = Shared {
        start: Instant::now(),
        progress: report::progress(expected_deliveries, "deliveries"),
        stop: CancellationToken::new(),
        senders_done: Arc::new(Semaphore::new(0)),
    };
    let mut tasks = Vec::with_capacity(peers.len());
    for (conn, plan) in peers {
        tasks.push(tokio::spawn(peer(conn, plan, shared.clone())));
    }
    let watcher = {
        let shared = shared.clone();
        let senders = u32::try_from(senders).context("too many senders")?;
        tokio::spawn(async move {
            if let Ok(permits) = shared.senders_done.acquire_many(senders).await {
                permits.forget();
                tokio::time::sleep(grace).await;
                shared.stop.cancel();
            }
        })
    };
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.context("a peer task failed")??);
    }
    watcher.abort();
    shared.progress.finish_and_clear();
    Ok(outcomes)
}

/// One connection's loop: send its messages (window, pacing), take acks and deliveries, until
/// its chat is complete or the run is stopped.
async fn peer(mut conn: Conn, plan: Plan, shared: Shared) -> anyhow::Result<Outcome> {
    let mut out = Outcome {
        latency: Histogram::default(),
        tally: Tally::new(plan.expected),
        sent: 0,
        acked: 0,
        deliveries: 0,
        foreign: 0,
        last_ack: Duration::ZERO,
        last_delivery: Duration::ZERO,
    };
    let mut in_flight = 0usize;
    let mut unreported = 0u64;
    let mut announced = plan.send == 0;
    loop {
        let sent = out.sent as usize;
        if sent == plan.send && in_flight == 0 {
            if !announced {
                shared.senders_done.add_permits(1);
                announced = true;
            }
            if out.tally.complete() {
                break;
            }
        }
        let next_due = send_some(&mut conn, &plan, &shared, &mut out, &mut in_flight).await?;
        let text = tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            text = conn.next_text() => text?,
            () = tokio::time::sleep_until(next_due.unwrap_or_else(far_future).into()), if next_due.is_some() => continue,
        };
        let frame = Frame::parse(&text)?;
        let now = shared.start.elapsed();
        match frame.code {
            v1::code::ACK => {
                if in_flight == 0 || !plan.acks_chat(&frame) {
                    out.foreign += 1;
                    continue;
                }
                in_flight -= 1;
                out.acked += 1;
                out.last_ack = now;
                out.tally.acked(frame.index.context("ack without index")?);
            }
            0 => {
                if !plan.in_chat(&frame) {
                    out.foreign += 1;
                    continue;
                }
                out.deliveries += 1;
                out.last_delivery = now;
                out.tally
                    .delivered(frame.index.context("message without index")?);
                let stamp: u64 = frame
                    .msg
                    .as_deref()
                    .and_then(|m| m.parse().ok())
                    .context("a message that the bench did not send")?;
                out.latency
                    .record(now.saturating_sub(Duration::from_nanos(stamp)));
                unreported += 1;
                if unreported == PROGRESS_BATCH {
                    shared.progress.inc(unreported);
                    unreported = 0;
                }
            }
            12 => bail!("{}{}", text.as_str(), hint(&text)),
            _ => {}
        }
    }
    shared.progress.inc(unreported);
    Ok(out)
}

/// Send what the window and the pacing allow now; returns when the next paced send is due.
async fn send_some(
    conn: &mut Conn,
    plan: &Plan,
    shared: &Shared,
    out: &mut Outcome,
    in_flight: &mut usize,
) -> anyhow::Result<Option<Instant>> {
    let mut fed = false;
    while (out.sent as usize) < plan.send && *in_flight < plan.window {
        if let Some(interval) = plan.interval {
            let due = shared.start + interval.mul_f64(out.sent as f64);
            if due > Instant::now() {
                break;
            }
        }
        let stamp = shared.start.elapsed().as_nanos();
        conn.feed(v1::text(plan.chat, &stamp.to_string())).await?;
        out.sent += 1;
        *in_flight += 1;
        fed = true;
    }
    if fed {
        conn.flush().await?;
    }
    let more = (out.sent as usize) < plan.send && *in_flight < plan.window;
    Ok(plan
        .interval
        .filter(|_| more)
        .map(|interval| shared.start + interval.mul_f64(out.sent as f64)))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Advice for an error the bench can cause itself.
fn hint(text: &str) -> &'static str {
    if text.contains("rate_limited") {
        " (the server's per-connection rate limit: run it with --rate-per-sec 0 for benchmarks)"
    } else {
        ""
    }
}

/// Fill in figures, counts and the check from every peer's outcome.
fn summarise(report: &mut Report, outcomes: &[Outcome], messages: u64, expected_deliveries: u64) {
    let mut latency = Histogram::default();
    let (mut sent, mut acked, mut deliveries, mut missing, mut violations, mut foreign) =
        (0, 0, 0, 0, 0, 0);
    let (mut last_ack, mut last_delivery) = (Duration::ZERO, Duration::ZERO);
    for o in outcomes {
        latency.merge(&o.latency);
        sent += o.sent;
        acked += o.acked;
        deliveries += o.deliveries;
        missing += o.tally.missing();
        violations += o.tally.violations;
        foreign += o.foreign;
        last_ack = last_ack.max(o.last_ack);
        last_delivery = last_delivery.max(o.last_delivery);
    }
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    report.figure("seconds", last_delivery.max(last_ack).as_secs_f64(), "s");
    report.figure("msgs_per_sec_persisted", rate(acked, last_ack), "msg/s");
    if report.workload == "direct" {
        report.figure(
            "msgs_per_sec_delivered",
            rate(deliveries, last_delivery),
            "msg/s",
        );
    } else {
        report.figure(
            "deliveries_per_sec",
            rate(deliveries, last_delivery),
            "deliveries/s",
        );
    }
    report.latencies(Latency::Delivery, &latency);
    report.count("messages_sent", sent);
    report.count("messages_acked", acked);
    report.count("deliveries_expected", expected_deliveries);
    report.count("deliveries_received", deliveries);
    report.count("lost", missing);
    report.count("duplicated_or_out_of_order", violations);
    report.count("foreign_frames", foreign);
    report.check = "every message was acked once and arrived exactly once and in index order at every receiver".into();
    if sent != messages || acked != messages {
        report.failures.push(format!(
            "{messages} messages to send, {sent} sent, {acked} acked"
        ));
    }
    if missing > 0 {
        report.failures.push(format!(
            "{missing} lost (not arrived within the grace period after the last ack)"
        ));
    }
    if violations > 0 {
        report
            .failures
            .push(format!("{violations} duplicated or out of order"));
    }
    if foreign > 0 {
        report.failures.push(format!(
            "{foreign} frames of another chat or unexpected acks"
        ));
    }
}
