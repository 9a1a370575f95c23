//! The composition root: configuration, and the store, bus, hub and domain built from it.
//! No globals: everything a connection needs hangs off one `Arc<App>`.

use crate::bus::LocalBus;
use crate::domain::{Domain, Limits};
use crate::hub::Hub;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything the server can be told; the binary fills it from flags, environment and file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database lives (created if missing).
    pub data_dir: PathBuf,
    /// Largest text frame answered normally; larger ones get `frame_too_large`, and frames
    /// over four times this close the connection (1009).
    pub max_frame_bytes: usize,
    /// Deliveries queued per connection before it is marked lagging.
    pub outbox_frames: usize,
    /// Requests per second per connection (0 = unlimited) and the burst allowed.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// How often the server pings, and how long a silent connection lives.
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// Interval at which delivered indexes are written to the store.
    pub mark_interval: Duration,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("natter-data"),
            max_frame_bytes: 64 * 1024,
            outbox_frames: 1024,
            rate_per_sec: 1000,
            rate_burst: 2000,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            mark_interval: Duration::from_secs(1),
            limits: Limits::default(),
        }
    }
}

pub struct App {
    pub config: Config,
    pub domain: Domain,
    pub hub: Arc<Hub>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl App {
    /// Open the store (running migrations) and wire the parts together.
    ///
    /// # Errors
    /// The data directory or the database cannot be opened.
    pub async fn build(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, StoreError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&config.data_dir.join("natter.db")).await?);
        let hub = Arc::new(Hub::new());
        let bus = Arc::new(LocalBus::new(hub.clone()));
        let domain = Domain::new(store, bus, config.limits.clone());
        Ok(Arc::new(Self {
            config,
            domain,
            hub,
            shutdown,
            tracker: TaskTracker::new(),
        }))
    }
}
