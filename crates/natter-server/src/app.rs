//! The composition root: configuration, and the store, bus, hub and domain built from it.
//! No globals: everything a connection needs hangs off one `Arc<App>`.

use crate::ServeError;
use crate::bus::nats::{DEFAULT_PUBLISH_QUEUE, NatsBus, Node};
use crate::bus::{Bus, LocalBus};
use crate::domain::{Domain, Limits};
use crate::hub::Hub;
use crate::store::postgres::PgStore;
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
    /// A `postgres://` URL to keep state in PostgreSQL instead of SQLite in `data_dir`.
    pub store_url: Option<String>,
    /// Connections in the PostgreSQL pool.
    pub store_pool: u32,
    /// A `nats://` URL to deliver through NATS (a cluster) instead of in-process.
    pub bus_url: Option<String>,
    /// The cluster's name: nodes with the same bus and name deliver to each other.
    pub cluster: String,
    /// This node's name, for logs and the bus connection.
    pub node_id: String,
    /// Deliveries waiting to be published to NATS before new ones are left to the store.
    pub bus_queue: usize,
    /// Silence after which another node is given up on (its accounts count as offline);
    /// every node says it is alive four times per period.
    pub peer_timeout: Duration,
    /// How long an account whose last connection left still counts as online: a reconnect
    /// within it tells its friends nothing (no offline-online flap). Zero: offline at once.
    pub presence_grace: Duration,
    /// Largest text frame answered normally; larger ones get `frame_too_large`, and frames
    /// over four times this close the connection (1009).
    pub max_frame_bytes: usize,
    /// Deliveries queued per connection before it is marked lagging.
    pub outbox_frames: usize,
    /// Sends one connection may have waiting for the store's commit before the server stops
    /// reading its frames (the acks still come in request order).
    pub max_pending_sends: usize,
    /// Requests per second per account on this node (per connection before login; 0 =
    /// unlimited) and the burst allowed.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// How often the server pings, and how long a silent connection lives.
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// Interval at which delivered indexes are written to the store.
    pub mark_interval: Duration,
    /// Connections each listener holds at once; more are refused at once.
    pub max_connections: usize,
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("natter-data"),
            store_url: None,
            store_pool: 16,
            bus_url: None,
            cluster: "natter".to_owned(),
            node_id: default_node_id(),
            bus_queue: DEFAULT_PUBLISH_QUEUE,
            peer_timeout: Duration::from_secs(10),
            presence_grace: Duration::from_secs(5),
            max_frame_bytes: 64 * 1024,
            outbox_frames: 1024,
            max_pending_sends: 64,
            rate_per_sec: 1000,
            rate_burst: 2000,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            mark_interval: Duration::from_secs(1),
            max_connections: 100_000,
            limits: Limits::default(),
        }
    }
}

pub struct App {
    pub config: Config,
    pub domain: Arc<Domain>,
    pub hub: Arc<Hub>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl App {
    /// Open the store (running migrations), connect the bus, and wire the parts together.
    ///
    /// # Errors
    /// The data directory, the database or the bus cannot be opened.
    pub async fn build(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ServeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let store: Arc<dyn Store> = match &config.store_url {
            None => Arc::new(SqliteStore::open(&config.data_dir.join("natter.db")).await?),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Arc::new(PgStore::open(url, config.store_pool).await?)
            }
            Some(_) => {
                return Err(StoreError::Backend(
                    "the store URL must start with postgres:// (or be unset for SQLite)".into(),
                )
                .into());
            }
        };
        let hub = Arc::new(Hub::with_grace(config.presence_grace));
        tokio::spawn(hub.clone().settle_until(shutdown.clone()));
        let (bus, link): (Arc<dyn Bus>, _) = match &config.bus_url {
            None => {
                let local = LocalBus::new();
                local.attach(hub.clone());
                (Arc::new(local), None)
            }
            Some(url) => {
                let (bus, link) =
                    NatsBus::connect(url, &config.cluster, &config.node_id, config.bus_queue)
                        .await?;
                (Arc::new(bus), Some(link))
            }
        };
        hub.attach(&bus);
        let domain = Arc::new(Domain::new(store, bus, hub.clone(), config.limits.clone()));
        if let Some(link) = link {
            link.start(Node {
                handler: hub.clone(),
                chats: domain.clone(),
                peer_timeout: config.peer_timeout,
                shutdown: shutdown.clone(),
            });
        }
        Ok(Arc::new(Self {
            config,
            domain,
            hub,
            shutdown,
            tracker: TaskTracker::new(),
        }))
    }
}

/// The host name and process id: unique enough to tell nodes apart in logs.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}
