//! The `natter` binary: `natter serve` runs the server.
//!
//! Configuration precedence: command-line flags, then `NATTER_*` environment variables, then
//! the TOML file given with `--config`, then built-in defaults.

mod admin;
mod backup;
mod bench;
mod config;
mod health;
mod transfer;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: the message path allocates and frees small
/// buffers across threads (the store writer allocates, connection tasks free), where glibc's
/// arenas spent ~11 % of the server's CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(test)]
mod tests {
    #[test]
    fn log_levels_mean_what_they_say() {
        use super::{QUIET, log_filter};
        assert_eq!(log_filter("info").expect("info"), "info");
        assert_eq!(
            log_filter("verbose").expect("verbose"),
            format!("info,natter=debug,natter_server=debug,{QUIET}")
        );
        assert_eq!(
            log_filter("DEBUG").expect("debug"),
            log_filter("verbose").expect("v")
        );
        assert_eq!(
            log_filter("natter_server=trace").expect("directive"),
            format!("natter_server=trace,{QUIET}")
        );
        // The WebSocket library's frame tracing stays off, whatever is asked.
        assert_eq!(
            log_filter("trace,tungstenite=trace").expect("directive"),
            format!("trace,{QUIET}")
        );
        assert_eq!(log_filter("off").expect("off"), "off");
        let e = log_filter("loud").expect_err("not a level");
        assert!(e.to_string().contains("unknown log level `loud`"), "{e}");
    }
}

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
    /// Copy a SQLite deployment's database, consistently, while it serves.
    Backup(backup::BackupArgs),
    /// Put a backup in place of a SQLite deployment's database (its server stopped).
    Restore(backup::RestoreArgs),
    /// Write a whole deployment (accounts, chats, members, messages, friends) as JSON lines.
    Export(transfer::ExportArgs),
    /// Read an export into a new, empty store (SQLite or PostgreSQL).
    Import(transfer::ImportArgs),
    /// Ask a running server whether it is ready (exit status 0) or not (1).
    Health(health::HealthArgs),
    /// Print a commented sample config file with every setting and its default.
    Config {
        /// The sample (the only output so far).
        #[arg(long)]
        example: bool,
    },
}

/// Errors end the process with status 1 and one line naming what failed and why (no
/// backtrace: they are an operator's to read, not a developer's).
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // In the log's own format once there is a log; before that, plainly.
            if tracing::dispatcher::has_been_set() {
                tracing::error!(error = %format!("{e:#}"), "natter stopped with an error");
            } else {
                eprintln!("natter: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
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
            tool_runtime()?.block_on(admin::run(args))
        }
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => tool_runtime()?.block_on(backup::restore(args)),
        Command::Export(args) => {
            init_logging("warn", "text")?;
            tool_runtime()?.block_on(transfer::export(args))
        }
        Command::Import(args) => {
            init_logging("warn", "text")?;
            tool_runtime()?.block_on(transfer::import(args))
        }
        Command::Health(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(health::run(args)),
        Command::Config { example } => {
            if !example {
                anyhow::bail!("say what to print: `natter config --example`");
            }
            print!("{}", config::example());
            Ok(())
        }
    }
}

/// A small runtime for the operator's commands.
fn tool_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
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

/// Log to standard error at `level` (see [`log_filter`]), as `text` or flat `json` lines.
fn init_logging(level: &str, format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(level)?)
        .with_context(|| format!("invalid log filter `{level}`"))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        // One flat object per line: the message and every field at the top level.
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        "text" => builder.init(),
        other => anyhow::bail!("invalid log format `{other}` (expected text or json)"),
    }
    Ok(())
}

/// Libraries whose debug and trace lines carry what clients send (the WebSocket library
/// prints every frame, passwords and tokens included): held at `info` whatever the level.
const QUIET: &str = "tungstenite=info,tokio_tungstenite=info";

/// The filter a `--log-level` names. A level word means that level for natter's own lines,
/// with libraries at `info` at most (their debug lines are a query or a frame each): `error`,
/// `warn`, `info`, `debug` (also `verbose`), `trace`, `off`. Anything with `=` or `,` is a
/// `RUST_LOG`-style filter, taken as it is (`natter_server=debug,sqlx=warn`). Either way the
/// libraries that would log secrets ([`QUIET`]) never log below `info`.
///
/// # Errors
/// A bare word that is no level (it would silently be read as a module name).
fn log_filter(level: &str) -> anyhow::Result<String> {
    let level = level.trim();
    if level.contains('=') || level.contains(',') {
        let kept: Vec<&str> = level
            .split(',')
            .map(str::trim)
            .filter(|d| {
                !d.is_empty()
                    && !d.starts_with("tungstenite")
                    && !d.starts_with("tokio_tungstenite")
            })
            .collect();
        return Ok(format!("{},{QUIET}", kept.join(",")));
    }
    let ours = match level.to_ascii_lowercase().as_str() {
        "off" => return Ok("off".into()),
        "error" => return Ok("error".into()),
        "warn" | "warning" => return Ok("warn".into()),
        "info" => return Ok("info".into()),
        "debug" | "verbose" => "debug",
        "trace" => "trace",
        _ => anyhow::bail!(
            "unknown log level `{level}` (expected error, warn, info, debug, verbose, trace, off, \
             or a filter such as `natter_server=debug,info`)"
        ),
    };
    Ok(format!("info,natter={ours},natter_server={ours},{QUIET}"))
}

async fn serve(settings: config::Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let pipe = match &settings.pipe_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--pipe-listen)"))?,
        ),
        None => None,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let listeners = natter_server::Listeners {
        http: listener,
        pipe,
    };
    natter_server::run(settings.server, listeners, shutdown)
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
