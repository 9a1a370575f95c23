//! The `catchup` workload: an account misses T private messages while offline, then logs in;
//! measured is the time from the login request to the receipt of all T (the server pushes up to
//! 10,000 before its sync-done frame, and the rest after it).

use super::Common;
use super::report::{self, Report};
use super::setup::{self, Conn, Endpoint};
use super::stats::Tally;
use anyhow::{Context, bail, ensure};
use natter_client::Target;
use natter_client::ourchat::v1::{self, Frame};
use std::time::{Duration, Instant};

/// How the catching-up account logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Login {
    /// Code 6 with the password: includes one Argon2id verification.
    Password,
    /// Code 13 with the token of an earlier login: the catch-up alone.
    Token,
}

/// What the measured login saw.
#[derive(Debug, Default)]
struct Seen {
    reply: Duration,
    sync_done: Option<Duration>,
    sync_count: u64,
    all: Duration,
    received: u64,
    after_sync_done: u64,
    foreign: u64,
}

/// Run the workload.
///
/// # Errors
/// Set-up or connection failures.
pub async fn catchup(
    common: &Common,
    messages: usize,
    window: usize,
    login: Login,
) -> anyhow::Result<Report> {
    let mut report = Report::new("catchup", &common.url());
    report.param("messages", messages);
    report.param("window", window);
    report.param(
        "login",
        if login == Login::Password {
            "password"
        } else {
            "token"
        },
    );
    let setup = Instant::now();
    let bar = report::progress(2, "set-up: accounts");
    let tag = format!("{}c", common.tag);
    // Account 0 writes on node 0, account 1 reads on node 1 (with several nodes): the reader
    // catches up on another node than the one that took the messages.
    let at = |i: usize| common.endpoint(i);
    let mut accounts = setup::accounts(at, &tag, 2, 1, &bar).await?;
    bar.finish_and_clear();
    let (reader, reader_conn) = accounts.pop().context("no reader account")?;
    let (writer, mut writer_conn) = accounts.pop().context("no writer account")?;
    let reader_endpoint = at(1);
    go_offline(reader_endpoint, reader_conn).await?;
    let bar = report::progress(1, "set-up: sending");
    setup::send_acked(
        &mut writer_conn,
        Target::Private(reader.ocid),
        messages,
        window,
    )
    .await?;
    bar.finish_and_clear();
    report.setup = format!(
        "registered 2 accounts; the reader logged in once and went offline; the writer sent it {messages} private messages, all acked{}",
        common.spread("the writer on node 0, the reader on node 1")
    );
    report.setup_secs = setup.elapsed().as_secs_f64();
    report.measured = format!(
        "from the reader's {} request on an open connection to the receipt of all {messages} messages",
        if login == Login::Password {
            "password login (code 6)"
        } else {
            "resume (code 101)"
        }
    );
    report::note("measuring: the reader logs in");
    let mut conn = reader_endpoint.connect(0).await?;
    let mut tally = Tally::new(messages as u64);
    let seen = receive(
        &mut conn,
        login,
        &reader,
        writer.ocid,
        &mut tally,
        common.grace,
    )
    .await?;
    summarise(&mut report, &seen, &tally, messages as u64);
    Ok(report)
}

/// Close the reader's connection and wait until the server no longer counts it, so that the
/// messages sent next are missed rather than delivered live.
async fn go_offline(endpoint: &Endpoint, conn: Conn) -> anyhow::Result<()> {
    let before = endpoint.metrics().await?.connections;
    conn.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while endpoint.metrics().await?.connections >= before {
        ensure!(
            Instant::now() < deadline,
            "the server still counts the reader's connection 10 s after it closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Log in, then take frames until every message is here, or until `grace` after sync-done.
async fn receive(
    conn: &mut Conn,
    login: Login,
    reader: &setup::Account,
    writer: u64,
    tally: &mut Tally,
    grace: Duration,
) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    let start = Instant::now();
    match login {
        Login::Password => setup::send_login(conn, reader.ocid).await?,
        Login::Token => conn.send_resume(&reader.token).await?,
    }
    while !tally.complete() || seen.sync_done.is_none() {
        let text = match seen.sync_done {
            Some(at) => {
                let left = (at + grace).saturating_sub(start.elapsed());
                match tokio::time::timeout(left, conn.next_text()).await {
                    Ok(text) => text?,
                    Err(_) => break,
                }
            }
            None => conn.next_text().await?,
        };
        let frame = Frame::parse(&text)?;
        let now = start.elapsed();
        match frame.code {
            v1::code::LOGIN_REPLY | v1::code::RESUME_REPLY => {
                ensure!(frame.state == Some(0), "login failed: {}", text.as_str());
                seen.reply = now;
            }
            v1::code::SYNC_DONE => {
                seen.sync_done = Some(now);
                seen.sync_count = frame.count.unwrap_or(0);
            }
            0 => {
                let ours = frame
                    .sender
                    .as_ref()
                    .is_some_and(|s| s.ocid == Some(writer) && s.private_id == Some(reader.ocid));
                if !ours {
                    seen.foreign += 1;
                    continue;
                }
                tally.delivered(frame.index.context("message without index")?);
                seen.received += 1;
                seen.after_sync_done += u64::from(seen.sync_done.is_some());
                seen.all = now;
            }
            12 => bail!("server error: {}", text.as_str()),
            _ => {}
        }
    }
    Ok(seen)
}

fn summarise(report: &mut Report, seen: &Seen, tally: &Tally, messages: u64) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    report.figure("login_reply_ms", ms(seen.reply), "ms");
    if let Some(at) = seen.sync_done {
        report.figure("sync_done_ms", ms(at), "ms");
    }
    report.figure("all_received_ms", ms(seen.all), "ms");
    report.figure(
        "msgs_per_sec",
        seen.received as f64 / seen.all.as_secs_f64().max(1e-9),
        "msg/s",
    );
    report.count("messages_missed", messages);
    report.count("received", seen.received);
    report.count("pushed_before_sync_done", seen.sync_count);
    report.count("received_after_sync_done", seen.after_sync_done);
    report.count("lost", tally.missing());
    report.count("duplicated_or_out_of_order", tally.violations);
    report.count("foreign_frames", seen.foreign);
    report.check = "every missed message arrived exactly once and in index order".into();
    if tally.missing() > 0 {
        report.failures.push(format!("{} lost", tally.missing()));
    }
    if tally.violations > 0 {
        report
            .failures
            .push(format!("{} duplicated or out of order", tally.violations));
    }
    if seen.foreign > 0 {
        report
            .failures
            .push(format!("{} messages of another chat", seen.foreign));
    }
    if seen.sync_done.is_none() {
        report.failures.push("no sync-done frame".into());
    } else if seen.received - seen.after_sync_done != seen.sync_count {
        report.failures.push(format!(
            "sync-done counts {} messages, {} arrived before it",
            seen.sync_count,
            seen.received - seen.after_sync_done
        ));
    }
}
