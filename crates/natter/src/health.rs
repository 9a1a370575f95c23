//! `natter health`: ask a server's `/readyz` (or `/healthz`), for container health checks and
//! scripts: exit status 0 when it answers 200, 1 otherwise, with its answer on stderr.

use anyhow::{Context, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The server's HTTP address (`host:port`).
    #[arg(long, env = "NATTER_HEALTH_ADDR", default_value = "127.0.0.1:7878")]
    pub addr: String,
    /// `/readyz` (the store takes writes and the bus is connected) or `/healthz` (the process
    /// answers).
    #[arg(long, default_value = "/readyz")]
    pub path: String,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let addr = tokio::net::lookup_host(&args.addr)
        .await
        .with_context(|| format!("cannot resolve {}", args.addr))?
        .next()
        .with_context(|| format!("{} names no address", args.addr))?;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        natter_client::http::get(addr, &args.addr, &args.path),
    )
    .await
    .with_context(|| format!("GET {} from {}: no answer within 5 s", args.path, args.addr))?
    .with_context(|| format!("GET {} from {}", args.path, args.addr))?;
    if answer.status != 200 {
        bail!(
            "{} {}: {}",
            args.path,
            answer.status_line,
            answer.body.trim()
        );
    }
    println!("{}", answer.body.trim());
    Ok(())
}
