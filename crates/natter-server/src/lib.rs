//! natter's server as a library: `run` serves every dialect on its listeners until shutdown.
//!
//! Layers, each depending only on those after it:
//! transport -> conn -> dialect -> domain -> store | bus, with `event` (what the domain
//! announces) below all of them and the hub beside the connections (it implements the bus's
//! handler). `app` wires them together. See `docs/architecture.md`.

pub mod app;
pub mod bus;
pub mod conn;
pub mod dialect;
pub mod domain;
pub mod event;
pub mod files;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod store;
pub mod transfer;
pub mod transport;

pub use app::{App, Config};
pub use domain::Limits;

use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Bus(#[from] bus::nats::BusError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

/// Every listener the server serves on, bound by the caller (so that a test or a supervisor
/// can bind port 0 and know the address).
pub struct Listeners {
    /// HTTP: health, metrics, and every dialect over HTTP or WebSocket.
    pub http: TcpListener,
    /// The pipe dialect's lines (seed 004), if served.
    pub pipe: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(http: TcpListener) -> Self {
        Self { http, pipe: None }
    }
}

/// Serve until `shutdown` is cancelled, then stop accepting, let every connection finish the
/// request it is handling and close (within `Config::shutdown_timeout`, whatever the clients
/// do), and flush the store.
///
/// # Errors
/// The store cannot be opened, or a listener fails.
pub async fn run(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let listeners = listeners.into();
    // The certificate is read before anything else starts: a bad one stops the start.
    let certs = match &config.tls {
        Some(files) => Some(Arc::new(
            transport::tls::Certs::load(files).map_err(ServeError::Tls)?,
        )),
        None => None,
    };
    let app = App::build(config, shutdown.clone()).await?;
    if let Some(pipe) = listeners.pipe {
        tracing::info!(addr = %pipe.local_addr()?, tls = certs.is_some(), "pipe dialect listening");
        let capped =
            transport::Capped::new(pipe, app.config.max_connections, "pipe", b"error|busy\n")
                .per_address(app.config.max_connections_per_address)
                .shared(app.config.limits.shared_addresses.clone());
        let dialect = dialect::pipe::Pipe::new(app.hub.slot());
        let max_line = app.config.max_frame_bytes;
        match &certs {
            None => tokio::spawn(transport::tcp::serve(
                app.clone(),
                capped,
                "pipe",
                dialect,
                max_line,
            )),
            Some(certs) => {
                let tls = transport::tls::TlsListener::new(capped, certs.clone(), shutdown.clone());
                tokio::spawn(transport::tcp::serve_tls(
                    app.clone(),
                    tls,
                    "pipe",
                    dialect,
                    max_line,
                ))
            }
        };
    }
    let addr = listeners.http.local_addr()?;
    let store = if app.config.store_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let bus = if app.config.bus_url.is_some() {
        "nats"
    } else {
        "local"
    };
    tracing::info!(
        %addr,
        node = %app.config.node_id,
        store,
        bus,
        data_dir = %app.config.data_dir.display(),
        tls = certs.is_some(),
        "natter listening"
    );
    let http = transport::Capped::new(
        listeners.http,
        app.config.max_connections,
        "http",
        transport::HTTP_REFUSAL,
    )
    .per_address(app.config.max_connections_per_address)
    .shared(app.config.limits.shared_addresses.clone());
    let router = transport::http::router(app.clone());
    let began = match certs {
        None => transport::http::serve(&app, http, router).await,
        Some(certs) => {
            tokio::spawn(transport::tls::reload_on_hangup(
                certs.clone(),
                shutdown.clone(),
            ));
            let tls = transport::tls::TlsListener::new(http, certs, shutdown.clone());
            transport::http::serve(&app, tls, router).await
        }
    };
    // Upgraded WebSocket connections (and line connections) are tracked apart from HTTP
    // requests; they end on their own at shutdown, each within a bounded farewell. Whatever is
    // left at the deadline is dropped with the process.
    app.tracker.close();
    let deadline = began + app.config.shutdown_timeout;
    if tokio::time::timeout_at(deadline, app.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = app.tracker.len(),
            "connections still open at the shutdown deadline (--shutdown-timeout-secs); left behind"
        );
    }
    app.domain.close().await;
    tracing::info!("natter stopped");
    Ok(())
}
