//! `natter bench`: drive a running server over OurChat v1 from many connections on one tokio
//! runtime, check that every message arrived exactly once and in order, and report.
//!
//! Workloads: `idle` (held connections, memory per connection), `direct` (private pairs),
//! `group` (one big group), `catchup` (messages missed while offline), `resume` (reconnect
//! storm) and `soak` (a long run of churning connections over v1 and v0, with pictures, that
//! checks memory stays flat and nothing is lost). Each registers only the accounts it needs, says what it set up and what it measured,
//! prints a table on stdout, optionally writes JSON (`--json`), and exits non-zero when its
//! check fails. Connections come from natter-client, set up by [`setup`]; counting in
//! [`stats`]; output in [`report`].
//!
//! Given `--url` several times, the bench drives a cluster: each workload spreads its
//! connections over the nodes so that its traffic crosses them (see [`Common::endpoint`]).

mod catchup;
mod dialect;
mod idle;
mod report;
mod resume;
mod setup;
mod soak;
mod stats;
mod traffic;

use anyhow::{Context, bail, ensure};
use clap::{ArgAction, Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The server's v1 WebSocket URL (ws:// only); `GET /metrics` is read from the same host.
    /// Give it once per node to drive a cluster: the connections are spread over the nodes.
    #[arg(long, global = true, action = ArgAction::Append, num_args = 1, default_value = "ws://127.0.0.1:7878/ws")]
    pub url: Vec<String>,
    /// Give up after this many seconds (set-up included).
    #[arg(long, global = true, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Spread connections over the source addresses 127.0.0.1 ..= 127.0.0.N, for more than
    /// ~28,000 ports' worth of connections to a loopback server (1: let the kernel choose).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    pub sources: u8,
    /// Connections being opened at once (idle, resume).
    #[arg(long, global = true, default_value_t = 128)]
    pub concurrency: usize,
    /// Accounts registered and logged in at once during set-up (each costs two password hashes).
    #[arg(long, global = true, default_value_t = 8)]
    pub setup_concurrency: usize,
    /// After the last send was acked, wait this long for missing messages before counting them
    /// as lost.
    #[arg(long, global = true, default_value_t = 30)]
    pub grace_secs: u64,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Subcommand, Debug)]
pub enum Workload {
    /// N logged-in connections held open: connect rate and server memory per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Accounts to spread the connections over (each logs in once with its password;
        /// the connections resume with the tokens); 0: one per 30 connections, within the
        /// server's default cap of 32 connections per account.
        #[arg(long, default_value_t = 0)]
        accounts: usize,
        /// Seconds to hold every connection before reading the server's memory.
        #[arg(long, default_value_t = 1.0)]
        hold_secs: f64,
    },
    /// P pairs, each sender sending M private messages to its partner with W awaiting ack.
    Direct {
        #[arg(long, default_value_t = 50)]
        pairs: usize,
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// Pace the senders to this many messages per second in total (default: unpaced).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// One group of K members, all online; S of them send M messages each with W awaiting ack.
    Group {
        #[arg(long, default_value_t = 100)]
        members: usize,
        #[arg(long, default_value_t = 2)]
        senders: usize,
        #[arg(long, default_value_t = 100)]
        messages: usize,
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// Pace the senders to this many messages per second in total (default: unpaced).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// An account misses T messages while offline, then logs in: time to receive them all.
    Catchup {
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Messages awaiting ack while the other account sends them (set-up).
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// How the account logs in: with its password (one Argon2id check included) or by
        /// resuming with the token of an earlier login.
        #[arg(long, value_enum, default_value_t = catchup::Login::Password)]
        login: catchup::Login,
    },
    /// Reconnect storm: N connections resume by token, are dropped, and again, R rounds.
    Resume {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Accounts whose tokens the connections share.
        #[arg(long, default_value_t = 100)]
        accounts: usize,
    },
    /// A long run: writers churn connections in every dialect (OurChat v1 and v0 in turn with
    /// pictures by tus, pipe, REST with push, service codes), each writing to an account of
    /// another dialect; the server's memory must stay flat and every acked message be read back
    /// once, in order, in the reader's dialect.
    Soak {
        #[arg(long, default_value_t = 60.0)]
        secs: f64,
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Messages sent on each connection before it is closed.
        #[arg(long, default_value_t = 20)]
        per_connection: usize,
        /// Every this many connections of a writer (v1's for OurChat; pipe, REST), a picture too
        /// (0: none).
        #[arg(long, default_value_t = 5)]
        file_every: usize,
        /// The most the server's resident memory may grow after the warm-up (the first
        /// quarter of the run), in MiB.
        #[arg(long, default_value_t = 32.0)]
        max_growth_mib: f64,
        /// The pipe dialect's `host:port` (default: the first --url's host, its port plus one).
        #[arg(long)]
        pipe: Option<String>,
    },
}

/// What every workload is given.
pub struct Common {
    /// One per `--url`, in the order given (never empty).
    endpoints: Vec<setup::Endpoint>,
    /// Makes this run's account names unique.
    tag: String,
    concurrency: usize,
    setup_concurrency: usize,
    grace: Duration,
}

impl Common {
    /// The endpoint of node `i` modulo the number of nodes: workloads give their `i`-th
    /// connection `endpoint(i)` (or a shifted `i`) to spread over the nodes of a cluster.
    fn endpoint(&self, i: usize) -> &setup::Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// The number of nodes (`--url`s).
    fn nodes(&self) -> usize {
        self.endpoints.len()
    }

    /// How a workload spread its connections over the nodes, to end its set-up line: nothing
    /// with one node.
    fn spread(&self, how: &str) -> String {
        if self.nodes() > 1 {
            format!("; over {} nodes: {how}", self.nodes())
        } else {
            String::new()
        }
    }

    /// Every node's URL, separated by spaces (just the URL with one node), for the report.
    fn url(&self) -> String {
        let urls: Vec<&str> = self.endpoints.iter().map(|e| e.url.as_str()).collect();
        urls.join(" ")
    }
}

/// Run a workload, print its table, write its JSON; fails if its check failed.
///
/// # Errors
/// Connection or protocol failures, a timeout, or a failed check.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    ensure!(!args.url.is_empty(), "--url names no server");
    let mut endpoints = Vec::with_capacity(args.url.len());
    for url in &args.url {
        endpoints.push(setup::Endpoint::new(url, args.sources).await?);
    }
    let common = Common {
        endpoints,
        tag: setup::run_tag(),
        concurrency: args.concurrency.max(1),
        setup_concurrency: args.setup_concurrency.max(1),
        grace: Duration::from_secs(args.grace_secs),
    };
    report::note(&format!("set-up against {}", args.url.join(", ")));
    let deadline = Duration::from_secs(args.timeout_secs);
    let report = tokio::time::timeout(deadline, workload(&common, &args.workload))
        .await
        .with_context(|| format!("the workload did not finish within {} s", args.timeout_secs))??;
    let mut report = report;
    if args.sources > 1 {
        report.param("sources", args.sources);
    }
    if common.nodes() > 1 {
        report.param("nodes", common.nodes());
    }
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    if !report.passed() {
        bail!("check failed: {}", report.failures.join("; "));
    }
    Ok(())
}

async fn workload(common: &Common, workload: &Workload) -> anyhow::Result<report::Report> {
    match *workload {
        Workload::Idle {
            connections,
            accounts,
            hold_secs,
        } => {
            ensure!(connections > 0, "connections must be positive");
            ensure!(hold_secs >= 0.0, "hold-secs must not be negative");
            let hold = Duration::from_secs_f64(hold_secs);
            idle::idle(common, connections, accounts, hold).await
        }
        Workload::Direct {
            pairs,
            messages,
            window,
            rate,
        } => {
            ensure!(pairs > 0, "pairs must be positive");
            let sending = sending(messages, window, rate)?;
            traffic::direct(common, pairs, sending).await
        }
        Workload::Group {
            members,
            senders,
            messages,
            window,
            rate,
        } => {
            ensure!(senders > 0, "senders must be positive");
            let sending = sending(messages, window, rate)?;
            traffic::group(common, members, senders, sending).await
        }
        Workload::Catchup {
            messages,
            window,
            login,
        } => {
            ensure!(
                messages > 0 && window > 0,
                "messages and window must be positive"
            );
            catchup::catchup(common, messages, window, login).await
        }
        Workload::Resume {
            connections,
            rounds,
            accounts,
        } => {
            ensure!(
                connections > 0 && rounds > 0,
                "connections and rounds must be positive"
            );
            resume::resume(common, connections, rounds, accounts).await
        }
        Workload::Soak {
            secs,
            pairs,
            per_connection,
            file_every,
            max_growth_mib,
            ref pipe,
        } => {
            ensure!(
                secs > 0.0 && secs.is_finite() && pairs > 0 && per_connection > 0,
                "secs, pairs and per-connection must be positive"
            );
            ensure!(max_growth_mib >= 0.0, "max-growth-mib must not be negative");
            let pipe = match pipe {
                Some(p) => tokio::net::lookup_host(p.as_str())
                    .await?
                    .next()
                    .with_context(|| format!("--pipe {p} names no address"))?,
                None => {
                    let a = common.endpoint(0).addr();
                    std::net::SocketAddr::new(a.ip(), a.port().wrapping_add(1))
                }
            };
            let soak = soak::Soak {
                pipe,
                duration: Duration::from_secs_f64(secs),
                pairs,
                per_connection,
                file_every,
                max_growth_mib,
            };
            soak::soak(common, soak).await
        }
    }
}

fn sending(messages: usize, window: usize, rate: Option<f64>) -> anyhow::Result<traffic::Sending> {
    ensure!(
        messages > 0 && window > 0,
        "messages and window must be positive"
    );
    ensure!(
        rate.is_none_or(|r| r > 0.0 && r.is_finite()),
        "rate must be a positive number"
    );
    Ok(traffic::Sending {
        messages,
        window,
        rate,
    })
}
