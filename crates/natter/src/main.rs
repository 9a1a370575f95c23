//! The `natter` binary: `natter serve` runs the server.
//!
//! Configuration precedence: command-line flags, then `NATTER_*` environment variables, then
//! the TOML file given with `--config`, then built-in defaults.

mod admin;
mod bench;
mod config;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: the message path allocates and frees small
/// buffers across threads (the store writer allocates, connection tasks free), where glibc's
/// arenas spent ~11 % of the server's CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "natter",
    version,
    about = "A self-hosted instant-messaging server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<config::ServeArgs>),
    /// Load a running server and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Manage accounts, logins, invitations and groups of a deployment (safe while it runs).
    Admin(admin::AdminArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = config::Settings::resolve(*args)?;
            init_logging(&settings.log_level, &settings.log_format)?;
            match raise_nofile() {
                Ok((old, new)) => tracing::info!(
                    old,
                    new,
                    "open-file limit (RLIMIT_NOFILE) set to the hard limit"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(serve(settings))
        }
        Command::Bench(args) => {
            match raise_nofile() {
                Ok((old, new)) => {
                    eprintln!(
                        "natter bench: open-file limit (RLIMIT_NOFILE) set to the hard limit: {old} -> {new}"
                    );
                }
                Err(e) => eprintln!("natter bench: cannot raise the open-file limit: {e}"),
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(bench::run(args))
        }
        Command::Admin(args) => {
            init_logging("warn", "text")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(admin::run(args))
        }
    }
}

/// Raise this process's soft open-file limit to its hard limit, since every connection is a
/// file descriptor; returns the old and the new soft limit (`u64::MAX` meaning unlimited).
///
/// # Errors
/// The kernel refused the new limit.
fn raise_nofile() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let old = limit.current.unwrap_or(u64::MAX);
    let new = limit.maximum.unwrap_or(u64::MAX);
    if old < new {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok((old, new))
}

fn init_logging(level: &str, format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid log level `{level}`"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("invalid log format `{other}` (expected text or json)"),
    }
    Ok(())
}

async fn serve(settings: config::Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    natter_server::run(settings.server, listener, shutdown)
        .await
        .context("server failed")
}

/// Cancel `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
