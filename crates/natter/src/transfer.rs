//! `natter export` and `natter import`: a deployment as JSON lines (see
//! `natter_server::transfer`), to move it between stores (SQLite to PostgreSQL) or machines.

use anyhow::{Context, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Where to write (a new file); `-` for standard output.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    /// The server's TOML config file (its `data_dir` and `store` are used).
    #[arg(long, env = "NATTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory of a SQLite deployment [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The `postgres://` URL of a PostgreSQL deployment.
    #[arg(long, env = "NATTER_STORE")]
    pub store: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A file written by `natter export`; `-` for standard input.
    pub input: PathBuf,
    /// The server's TOML config file (its `data_dir` and `store` are used).
    #[arg(long, env = "NATTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory of a new SQLite deployment [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The `postgres://` URL of a new (empty) PostgreSQL deployment.
    #[arg(long, env = "NATTER_STORE")]
    pub store: Option<String>,
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let config = crate::admin::store_config(args.config.as_ref(), args.data_dir, args.store)?;
    let domain = natter_server::app::operator_domain(&config)
        .await
        .context("cannot open the store")?;
    let to_stdout = args.output.as_os_str() == "-";
    let mut out: Box<dyn std::io::Write> = if to_stdout {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        if args.output.exists() {
            bail!("will not overwrite {}", args.output.display());
        }
        let file = std::fs::File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        Box::new(std::io::BufWriter::new(file))
    };
    let result = natter_server::transfer::export(domain.store().as_ref(), &mut out).await;
    drop(out);
    domain.close().await;
    let counts = result.context("export failed")?;
    eprintln!("exported {counts}");
    Ok(())
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = crate::admin::store_config(args.config.as_ref(), args.data_dir, args.store)?;
    // A SQLite target is held like a running server holds it: nobody serves it meanwhile.
    let _lock = match &config.store_url {
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.data_dir.display()
                )
            })?;
            Some(
                natter_server::app::DataDirLock::acquire(&config.data_dir)
                    .await
                    .context("stop the server before importing")?,
            )
        }
        Some(_) => None,
    };
    let domain = natter_server::app::operator_domain(&config)
        .await
        .context("cannot open the store")?;
    let mut input: Box<dyn std::io::BufRead> = if args.input.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin().lock()))
    } else {
        let file = std::fs::File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let result = natter_server::transfer::import(domain.store().as_ref(), &mut input).await;
    domain.close().await;
    let counts = result.with_context(|| format!("import of {} failed", args.input.display()))?;
    eprintln!("imported {counts}");
    Ok(())
}
