//! The composition root: configuration, and the store, bus, hub and domain built from it.
//! No globals: everything a connection needs hangs off one `Arc<App>`.

use crate::ServeError;
use crate::bus::nats::{DEFAULT_PUBLISH_QUEUE, NatsBus, Node};
use crate::bus::{Bus, LocalBus};
use crate::domain::{Domain, Limits};
use crate::hub::{Budgets, Hub};
use crate::metrics::{Metrics, Snapshot};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Ocid, Store, StoreError};
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
    /// Bytes of deliveries queued per connection before it is marked lagging; also the most
    /// one write of catch-up after lag or a gap carries before the socket has taken it.
    pub outbox_bytes: usize,
    /// Bytes of missed messages a login's sync carries (at least one message); the rest follow
    /// in rounds of `outbox_bytes`, each once the socket has taken the one before.
    pub catch_up_bytes: usize,
    /// Bytes of outgoing data this node buffers for all its connections together (queued
    /// deliveries and writes in progress); past it, deliveries are left to the store and
    /// catch-up waits.
    pub node_outbox_bytes: usize,
    /// How long a client has to take each part (64 KiB) of a write, or a ping, before the
    /// connection is closed (it reads what it missed by index when it comes back).
    pub stall_timeout: Duration,
    /// Logged-in connections one account may have on this node (0: no cap); a login beyond
    /// it is refused (`too_many_connections`).
    pub max_connections_per_account: usize,
    /// Sends one connection may have waiting for the store's commit before the server stops
    /// reading its frames (the acks still come in request order).
    pub max_pending_sends: usize,
    /// Requests per second per account on this node (per connection before login; 0 =
    /// unlimited) and the burst allowed.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// How often the server pings, and how long a silent connection lives (any frame, a
    /// heartbeat or a pong keeps it).
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    /// How long a client has to send a whole HTTP request head (a WebSocket upgrade included)
    /// after connecting, or after its previous request on the same connection.
    pub request_head_timeout: Duration,
    /// Longest pause within a request body (an upload): a body that stops coming for this long
    /// is cut, and what arrived is kept.
    pub body_idle_timeout: Duration,
    /// How long a connection may stay without a login (from its start or a logout).
    pub login_timeout: Duration,
    /// How long a line of a line dialect may take from its first byte to its newline.
    pub line_timeout: Duration,
    /// How long shutdown waits for connections to finish the request in hand before it drops
    /// them.
    pub shutdown_timeout: Duration,
    /// Interval at which delivered indexes are written to the store.
    pub mark_interval: Duration,
    /// Connections each listener holds at once; more are refused at once.
    pub max_connections: usize,
    /// Connections each listener holds at once from one client address (an IPv4 address or an
    /// IPv6 /64); more are refused at once. 0: no cap but `max_connections`.
    pub max_connections_per_address: usize,
    /// Who may read `GET /metrics`.
    pub metrics_access: crate::transport::http::MetricsAccess,
    /// TLS on the HTTP/WebSocket listener: the certificate chain and key (PEM), reloaded on
    /// SIGHUP.
    pub tls: Option<crate::transport::tls::TlsFiles>,
    /// How often the store is asked whether an operator banned, deleted or revoked anything
    /// (live connections of that account then check their login again).
    pub account_poll: Duration,
    /// Where file bytes are kept (`<data_dir>/files` when unset); the nodes of a cluster
    /// share it.
    pub files_dir: Option<PathBuf>,
    /// How often abandoned uploads and unreferenced files are looked for.
    pub files_sweep: Duration,
    /// The service-code dialect (`POST /svc`): the largest request body (larger ones are
    /// answered 413) and the most messages one code 3 or 9 reply holds. (Its failed token
    /// attempts are limited by `limits.guessing`.)
    pub svc_max_body_bytes: usize,
    pub svc_max_count: u32,
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
            outbox_bytes: 1024 * 1024,
            catch_up_bytes: 4 * 1024 * 1024,
            node_outbox_bytes: 256 * 1024 * 1024,
            stall_timeout: Duration::from_secs(30),
            max_connections_per_account: 32,
            max_pending_sends: 64,
            rate_per_sec: 1000,
            rate_burst: 2000,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            request_head_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            login_timeout: Duration::from_secs(30),
            line_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            mark_interval: Duration::from_secs(1),
            max_connections: 100_000,
            max_connections_per_address: 1000,
            metrics_access: crate::transport::http::MetricsAccess::default(),
            tls: None,
            account_poll: Duration::from_millis(500),
            files_dir: None,
            files_sweep: Duration::from_secs(600),
            svc_max_body_bytes: 64 * 1024,
            svc_max_count: 100,
            limits: Limits::default(),
        }
    }
}

pub struct App {
    pub config: Config,
    pub domain: Arc<Domain>,
    pub hub: Arc<Hub>,
    /// This server's metrics (its own recorder, not the process's global one).
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// This server's hold on its data directory (SQLite): one server per database.
    _lock: Option<DataDirLock>,
}

/// An exclusive hold on a data directory (`<data_dir>/natter.lock`), kept by a running server
/// and by `natter restore`: two servers on one SQLite database would both write messages (the
/// store's single writer is per process), and a restore under a running server would be lost.
/// Operator commands that only read or make small writes (`natter admin`, `natter backup`)
/// do not take it.
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Take the lock of `dir`, waiting up to two seconds (a server that just stopped in this
    /// process may still be letting go of it).
    ///
    /// # Errors
    /// Another process holds it, or the lock file cannot be made.
    pub async fn acquire(dir: &std::path::Path) -> Result<Self, StoreError> {
        let path = dir.join("natter.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Self { _file: file }),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(StoreError::Backend(format!(
                            "another natter process (a server, or a restore) is using the data directory {}",
                            dir.display()
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(StoreError::Backend(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
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
        let lock = match &config.store_url {
            None => {
                prepare_data_dir(&config.data_dir)?;
                Some(DataDirLock::acquire(&config.data_dir).await?)
            }
            Some(_) => None,
        };
        let store = open_store(&config).await?;
        let metrics = Arc::new(Metrics::new());
        store.observe(metrics.store.clone());
        let hub = Arc::new(
            Hub::with_grace(config.presence_grace).with_budgets(Budgets {
                conn_bytes: config.outbox_bytes,
                node_bytes: config.node_outbox_bytes,
                per_account: config.max_connections_per_account,
            }),
        );
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
        let domain = Arc::new(
            Domain::new(store, bus, hub.clone(), config.limits.clone())
                .with_files(file_storage(&config)?),
        );
        if let Some(link) = link {
            link.start(Node {
                handler: hub.clone(),
                chats: domain.clone(),
                peer_timeout: config.peer_timeout,
                shutdown: shutdown.clone(),
            });
        }
        let app = Arc::new(Self {
            config,
            domain,
            hub,
            metrics,
            shutdown,
            tracker: TaskTracker::new(),
            _lock: lock,
        });
        tokio::spawn(watch_accounts(app.clone()));
        tokio::spawn(metrics_upkeep(app.clone()));
        tokio::spawn(sweep_files(app.clone()));
        Ok(app)
    }

    /// The Prometheus page (`GET /metrics`).
    pub fn render_metrics(&self) -> String {
        let (deliveries, outbox_full) = self.hub.delivery_counts();
        let bus = self.domain.bus_stats();
        let (buffered, buffered_peak) = self.hub.buffered();
        self.metrics.render(&Snapshot {
            buffered,
            buffered_peak,
            logged_in: self.hub.connections() as u64,
            deliveries,
            outbox_full,
            bus_dropped: bus.dropped,
            bus_reconnects: bus.reconnects,
        })
    }

    /// Whether this node can serve: the store commits a write (within `READY_TIMEOUT`) and the
    /// bus is connected.
    ///
    /// # Errors
    /// What is not ready, in words for an operator.
    pub async fn ready(&self) -> Result<(), String> {
        let check = self
            .domain
            .store()
            .check_write(&self.config.node_id, crate::domain::now_ms());
        match tokio::time::timeout(READY_TIMEOUT, check).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("store: the write check failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "store: the write check took over {} ms",
                    READY_TIMEOUT.as_millis()
                ));
            }
        }
        if !self.domain.bus_connected() {
            return Err("bus: not connected".to_owned());
        }
        Ok(())
    }
}

/// Open the store `config` names (running its migrations): SQLite in the data directory, or
/// PostgreSQL. Errors name the path or address and the cause.
///
/// # Errors
/// The data directory cannot be made or written, the database cannot be opened, or the URL
/// is not a PostgreSQL URL.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServeError> {
    match &config.store_url {
        None => {
            let dir = &config.data_dir;
            prepare_data_dir(dir)?;
            let path = dir.join("natter.db");
            let store = SqliteStore::open(&path).await.map_err(|e| {
                StoreError::Backend(format!("cannot open the database {}: {e}", path.display()))
            })?;
            Ok(Arc::new(store))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PgStore::open(url, config.store_pool).await?))
        }
        Some(_) => Err(StoreError::Backend(
            "the store URL must start with postgres:// (or be unset for SQLite)".into(),
        )
        .into()),
    }
}

/// Make the data directory if need be, and check that files can be made in it.
fn prepare_data_dir(dir: &std::path::Path) -> Result<(), StoreError> {
    if dir.is_file() {
        return Err(StoreError::Backend(format!(
            "the data directory {} is a file, not a directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        StoreError::Backend(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    writable(dir)
}

/// Whether files can be made in `dir` (SQLite's own error says only "unable to open database
/// file").
fn writable(dir: &std::path::Path) -> Result<(), StoreError> {
    let probe = dir.join(".natter-write-check");
    let made = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"ok"));
    let _ = std::fs::remove_file(&probe);
    made.map_err(|e| {
        StoreError::Backend(format!(
            "the data directory {} is not writable: {e}",
            dir.display()
        ))
    })
}

/// A domain over the store `config` names, for an operator's tools (`natter admin`, backup,
/// export): no listener, no hub, an in-process bus that tells nobody (running nodes learn of
/// bans and revocations from the store's account events).
///
/// # Errors
/// As [`open_store`].
pub async fn operator_domain(config: &Config) -> Result<Domain, ServeError> {
    let store = open_store(config).await?;
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
    Ok(Domain::new(
        store,
        bus,
        Arc::new(Nobody),
        config.limits.clone(),
    ))
}

/// An operator's command sees nobody online.
struct Nobody;

impl crate::bus::Presence for Nobody {
    fn has_connection(&self, _: Ocid) -> bool {
        false
    }
}

/// Fold histogram samples into their buckets every few seconds until shutdown.
/// The file storage `config` names: a directory of blobs and staged uploads.
fn file_storage(config: &Config) -> Result<crate::domain::files::FileStorage, ServeError> {
    let root = config
        .files_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("files"));
    let named = |e: std::io::Error| {
        ServeError::Io(std::io::Error::new(
            e.kind(),
            format!("file storage {}: {e}", root.display()),
        ))
    };
    Ok(crate::domain::files::FileStorage {
        blobs: Arc::new(crate::files::DirBlobs::open(&root).map_err(named)?),
        staging: crate::files::Staging::open(&root).map_err(named)?,
    })
}

/// Remove abandoned uploads and unreferenced files every `files_sweep`, until shutdown.
async fn sweep_files(app: Arc<App>) {
    let mut tick = tokio::time::interval(app.config.files_sweep);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Failures are logged by the domain; the next round tries again.
        let _ = app.domain.sweep_files().await;
    }
}

async fn metrics_upkeep(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = app.shutdown.cancelled() => return,
            _ = tick.tick() => app.metrics.upkeep(),
        }
    }
}

/// Longest a readiness check waits for the store's write.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Account events read per poll.
const EVENTS_PER_POLL: u32 = 1000;

/// Poll the store's account events (posted by `natter admin` on any machine) until shutdown,
/// and have the named accounts' connections on this node check their login again: a ban, a
/// deletion or a revoked login ends the connections it concerns on every node within a poll.
async fn watch_accounts(app: Arc<App>) {
    let store = app.domain.store().clone();
    let mut last = None;
    let mut tick = tokio::time::interval(app.config.account_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = app.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let polled = match last {
            // Events from before this node started concern no connection of it.
            None => store.last_account_event().await.map(|id| {
                last = Some(id);
                Vec::new()
            }),
            Some(after) => store.account_events(after, EVENTS_PER_POLL).await,
        };
        match polled {
            Ok(events) => {
                failing = false;
                for (id, ocid) in events {
                    last = Some(id);
                    let told = app.hub.recheck(ocid);
                    tracing::debug!(ocid = %ocid, connections = told, "account standing changed");
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot poll account events; retrying");
            }
            Err(_) => {}
        }
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
