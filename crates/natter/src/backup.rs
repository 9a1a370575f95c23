//! `natter backup` and `natter restore`: a consistent copy of a running SQLite deployment's
//! database, and putting one back (its server stopped). A PostgreSQL deployment is backed up
//! with PostgreSQL's own tools (`pg_dump`); `natter export` moves data between stores.

use anyhow::{Context, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (a new file; an existing one is never overwritten).
    pub dest: PathBuf,
    /// The server's TOML config file (its `data_dir` is used).
    #[arg(long, env = "NATTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A file written by `natter backup`.
    pub source: PathBuf,
    /// The server's TOML config file (its `data_dir` is used).
    #[arg(long, env = "NATTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory to restore into [default: ./natter-data]; its server must be
    /// stopped. The database there now is kept as `natter.db.before-restore`.
    #[arg(long, env = "NATTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

fn data_dir(config: Option<&PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let config = crate::admin::store_config(config, data_dir, None)?;
    if config.store_url.is_some() {
        bail!("backup and restore are for SQLite deployments; use pg_dump for PostgreSQL");
    }
    Ok(config.data_dir)
}

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let dir = data_dir(args.config.as_ref(), args.data_dir)?;
    let started = std::time::Instant::now();
    let copied = natter_server::store::sqlite::backup::backup(&dir.join("natter.db"), &args.dest)
        .context("backup failed")?;
    println!(
        "backed up {} accounts and {} messages ({} pages) to {} in {:.1} s",
        copied.accounts,
        copied.messages,
        copied.pages,
        args.dest.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let dir = data_dir(args.config.as_ref(), args.data_dir)?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let _lock = natter_server::app::DataDirLock::acquire(&dir)
        .await
        .context("stop the server before restoring")?;
    let (copied, aside) =
        natter_server::store::sqlite::backup::restore(&args.source, &dir.join("natter.db"))
            .context("restore failed")?;
    if let Some(aside) = aside {
        println!("the previous database is kept as {}", aside.display());
    }
    println!(
        "restored {} accounts and {} messages into {}",
        copied.accounts,
        copied.messages,
        dir.display()
    );
    Ok(())
}
