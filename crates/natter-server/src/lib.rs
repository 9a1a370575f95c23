//! natter's server as a library: `run` serves every dialect on one listener until shutdown.
//!
//! Layers (each depends only on those after it): transport -> dialect -> session/domain ->
//! store | bus. See `docs/architecture.md`.

pub mod app;
pub mod bus;
pub mod dialect;
pub mod domain;
pub mod hub;
pub mod ids;
pub mod session;
pub mod store;
pub mod transport;

pub use app::{App, Config};
pub use domain::Limits;

use axum::serve::ListenerExt;
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
}

/// Serve until `shutdown` is cancelled, then stop accepting, let every connection finish the
/// request it is handling and close, and flush the store.
///
/// # Errors
/// The store cannot be opened, or the listener fails.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let app = App::build(config, shutdown.clone()).await?;
    let addr = listener.local_addr()?;
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
        "natter listening"
    );
    let router = transport::http::router(app.clone());
    let served = axum::serve(without_nagle(listener), router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    // Upgraded WebSocket connections are tracked separately from HTTP requests.
    app.tracker.close();
    app.tracker.wait().await;
    app.domain.store().close().await;
    tracing::info!("natter stopped");
    served?;
    Ok(())
}

/// `listener`, with `TCP_NODELAY` set on every connection it accepts. Frames are small and
/// each write is flushed on purpose; with Nagle's algorithm on, the kernel held a frame back
/// while an earlier one was unacknowledged, and 1-2 % of the messages of a steady load arrived
/// ~16 ms late (docs/performance.md, session 6).
fn without_nagle(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut listener = without_nagle(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().expect("nodelay"), "TCP_NODELAY is off");
    }
}
