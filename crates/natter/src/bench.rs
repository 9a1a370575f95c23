//! `natter bench`: drive a running server over OurChat v1 and report throughput and latency.
//!
//! Workload `direct`: P pairs, each sender sending M private messages to its partner with W
//! awaiting their ack. Every receiver checks that it got every message exactly once and in
//! index order; latency is send to receipt, measured in this process.

use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The server's v1 WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:7878/ws")]
    pub url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Subcommand, Debug)]
pub enum Workload {
    /// P pairs, each sender sending M messages to its partner with W in flight.
    Direct {
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
    },
}

/// Run a workload; fails if any message was lost, duplicated or out of order.
///
/// # Errors
/// Connection or protocol failures, a timeout, or a failed exactly-once/order check.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let deadline = Duration::from_secs(args.timeout_secs);
    match args.workload {
        Workload::Direct {
            pairs,
            messages,
            window,
        } => {
            ensure!(
                pairs > 0 && messages > 0 && window > 0,
                "pairs, messages and window must be positive"
            );
            tokio::time::timeout(deadline, direct(&args.url, pairs, messages, window))
                .await
                .context("the workload timed out")?
        }
    }
}

async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(ws)
}

async fn recv(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the server closed the connection"),
        }
    }
}

async fn request(ws: &mut Ws, frame: Value, reply: i64) -> anyhow::Result<Value> {
    ws.send(Message::text(frame.to_string())).await?;
    loop {
        let v = recv(ws).await?;
        if v["code"] == reply {
            return Ok(v);
        }
        if v["code"] == 12 {
            bail!("server error: {v}");
        }
    }
}

/// Register a fresh account and log in on its own connection; returns (ocid, connection).
async fn account(url: &str, tag: &str) -> anyhow::Result<(u64, Ws)> {
    let mut ws = connect(url).await?;
    let email = format!("{tag}@bench.natter");
    let r = request(
        &mut ws,
        json!({"code": 4, "email": email, "password": "bench", "name": tag}),
        5,
    )
    .await?;
    ensure!(r["state"] == 0, "register failed: {r}");
    let ocid = r["ocid"].as_u64().context("ocid")?;
    let r = request(
        &mut ws,
        json!({"code": 6, "login_type": 1, "account": ocid.to_string(), "password": "bench"}),
        7,
    )
    .await?;
    ensure!(r["state"] == 0, "login failed: {r}");
    // Wait for the end of the (empty) catch-up.
    while recv(&mut ws).await?["code"] != 18 {}
    Ok((ocid, ws))
}

async fn direct(url: &str, pairs: usize, messages: usize, window: usize) -> anyhow::Result<()> {
    let run = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
    eprintln!("direct: setting up {pairs} pairs");
    let mut setups = Vec::new();
    for i in 0..pairs {
        let url = url.to_owned();
        setups.push(tokio::spawn(async move {
            let a = account(&url, &format!("s{run}-{i}")).await?;
            let b = account(&url, &format!("r{run}-{i}")).await?;
            anyhow::Ok((a, b))
        }));
    }
    let mut accounts = Vec::new();
    for s in setups {
        accounts.push(s.await??);
    }
    eprintln!("direct: {pairs} pairs x {messages} messages, window {window}");
    let base = Instant::now();
    let mut tasks = Vec::new();
    for ((_, mut sender), (to, mut receiver)) in accounts {
        tasks.push(tokio::spawn(async move {
            let mut in_flight = 0usize;
            let mut sent = 0usize;
            while sent < messages || in_flight > 0 {
                while sent < messages && in_flight < window {
                    let stamp = base.elapsed().as_nanos();
                    let frame = json!({"code": 0, "sender": {"private_id": to}, "msg": format!("{sent} {stamp}")});
                    sender.feed(Message::text(frame.to_string())).await?;
                    sent += 1;
                    in_flight += 1;
                }
                sender.flush().await?;
                let v = recv(&mut sender).await?;
                match v["code"].as_i64() {
                    Some(15) => in_flight -= 1,
                    Some(12) => bail!("send failed: {v}"),
                    _ => {}
                }
            }
            anyhow::Ok(Vec::new())
        }));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages);
            let mut expected = 1u64;
            while latencies.len() < messages {
                let v = recv(&mut receiver).await?;
                if v["code"] != 0 {
                    continue;
                }
                let index = v["index"].as_u64().context("index")?;
                ensure!(
                    index == expected,
                    "got index {index}, expected {expected}: lost, duplicated or out of order"
                );
                expected += 1;
                let stamp: u128 = v["msg"]
                    .as_str()
                    .and_then(|m| m.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .context("bench message")?;
                latencies.push((base.elapsed().as_nanos() - stamp) as u64);
            }
            Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(pairs * messages);
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = base.elapsed();
    all.sort_unstable();
    let pct = |p: f64| Duration::from_nanos(all[((all.len() - 1) as f64 * p) as usize]);
    let total = pairs * messages;
    println!("workload  messages  seconds  msg/s  p50  p99  max  lost");
    println!(
        "direct    {total}  {:.3}  {:.0}  {:?}  {:?}  {:?}  0",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    println!("every message arrived exactly once and in index order");
    Ok(())
}
