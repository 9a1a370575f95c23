//! The server's metrics in the Prometheus text format (`GET /metrics`).
//!
//! Each server has its own recorder (the `metrics` facade's Prometheus exporter, never
//! installed as the process's global one, so servers in one process count apart). Every handle
//! is registered once, at start, and kept: on the message path a count is one atomic add, with
//! no lookup, lock or allocation, and it is made per batch or per fan-out where it can be
//! (messages are counted per commit, deliveries per message). Figures other parts already keep
//! (logged-in connections, bus drops, resident memory) are read when the page is rendered.

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Buckets of the store commit latency histogram, in seconds.
const COMMIT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Every metric the server exports, as handles.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Password logins and token resumes, by outcome.
    pub logins_ok: Counter,
    pub logins_rejected: Counter,
    pub logins_failed: Counter,
    pub resumes_ok: Counter,
    pub resumes_rejected: Counter,
    /// Frames refused because the request budget was spent.
    pub rate_limited: Counter,
    /// Connections that read every chat's tail from the store (after lag or a bus outage).
    pub resyncs: Counter,
    /// Connections closed because an operator banned, deleted or revoked.
    pub closed_logins: Counter,
    /// Connections closed because the client stopped reading (the stall timeout).
    pub stalled: Counter,
    /// What the store reports (see [`StoreMetrics`]).
    pub store: StoreMetrics,
    logged_in: Gauge,
    resident: Gauge,
    buffered: Gauge,
    buffered_peak: Gauge,
    deliveries: Counter,
    outbox_full: Counter,
    bus_dropped: Counter,
    bus_reconnects: Counter,
}

/// The store's share: commits and what they stored.
#[derive(Clone)]
pub struct StoreMetrics {
    /// Seconds per commit of a batch of messages (and delivery marks).
    pub commit_seconds: Histogram,
    /// Messages stored (fresh ones; a resend answered with the stored copy is not counted).
    pub messages: Counter,
    /// Batches that failed and were rolled back.
    pub failed_commits: Counter,
}

impl StoreMetrics {
    /// Handles that record nothing (a store opened by a tool, or in a test).
    pub fn none() -> Self {
        Self {
            commit_seconds: Histogram::noop(),
            messages: Counter::noop(),
            failed_commits: Counter::noop(),
        }
    }
}

/// Figures kept elsewhere, read when the page is rendered.
pub struct Snapshot {
    pub logged_in: u64,
    /// Bytes of outgoing data buffered now, and the most since the start.
    pub buffered: u64,
    pub buffered_peak: u64,
    pub deliveries: u64,
    pub outbox_full: u64,
    pub bus_dropped: u64,
    pub bus_reconnects: u64,
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("natter_store_commit_seconds".into()),
                &COMMIT_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let r = &recorder;
        let describe = |name: &'static str, help: &'static str| {
            r.describe_counter(name.into(), None, SharedString::const_str(help));
        };
        describe(
            "natter_logins_total",
            "Password logins and token resumes, by kind and outcome.",
        );
        describe(
            "natter_rate_limited_total",
            "Frames refused because the request budget was spent.",
        );
        describe(
            "natter_resyncs_total",
            "Times a connection read every chat's tail from the store (after lag or a bus outage).",
        );
        describe(
            "natter_closed_logins_total",
            "Connections closed because their login ended: the account banned or deleted, the login revoked, the password changed or reset.",
        );
        describe(
            "natter_stalled_connections_total",
            "Connections closed because the client stopped reading (the stall timeout).",
        );
        describe("natter_messages_stored_total", "Messages stored.");
        describe(
            "natter_store_failed_commits_total",
            "Store batches that failed and were rolled back.",
        );
        describe(
            "natter_deliveries_total",
            "Live deliveries offered to connections' outboxes.",
        );
        describe(
            "natter_outbox_full_total",
            "Deliveries left to the store because a connection's outbox was full (the connection then catches up).",
        );
        describe(
            "natter_bus_dropped_total",
            "Bus messages dropped (bus away or its queue full); connections resync from the store.",
        );
        describe("natter_bus_reconnects_total", "Reconnections to the bus.");
        r.describe_histogram(
            "natter_store_commit_seconds".into(),
            Some(metrics::Unit::Seconds),
            SharedString::const_str(
                "Seconds per store commit of a batch of messages and delivery marks.",
            ),
        );
        r.describe_gauge(
            "natter_connections".into(),
            None,
            SharedString::const_str("Open connections, by dialect."),
        );
        r.describe_gauge(
            "natter_logged_in_connections".into(),
            None,
            SharedString::const_str("Logged-in connections on this node."),
        );
        r.describe_gauge(
            "natter_outgoing_buffered_bytes".into(),
            Some(metrics::Unit::Bytes),
            SharedString::const_str(
                "Outgoing data buffered on this node: deliveries queued for connections and writes in progress.",
            ),
        );
        r.describe_gauge(
            "natter_outgoing_buffered_peak_bytes".into(),
            Some(metrics::Unit::Bytes),
            SharedString::const_str("The most outgoing data buffered at once since the start."),
        );
        r.describe_gauge(
            "process_resident_memory_bytes".into(),
            Some(metrics::Unit::Bytes),
            SharedString::const_str("Resident memory of the server process."),
        );
        let counter = |name: &'static str, labels: &[(&'static str, &'static str)]| {
            let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, *v)).collect();
            r.register_counter(&Key::from_parts(name, labels), &metadata())
        };
        let login = |kind: &'static str, result: &'static str| {
            counter("natter_logins_total", &[("kind", kind), ("result", result)])
        };
        let store = StoreMetrics {
            commit_seconds: r
                .register_histogram(&Key::from_name("natter_store_commit_seconds"), &metadata()),
            messages: counter("natter_messages_stored_total", &[]),
            failed_commits: counter("natter_store_failed_commits_total", &[]),
        };
        Self {
            logins_ok: login("password", "ok"),
            logins_rejected: login("password", "rejected"),
            logins_failed: login("password", "error"),
            resumes_ok: login("token", "ok"),
            resumes_rejected: login("token", "rejected"),
            rate_limited: counter("natter_rate_limited_total", &[]),
            resyncs: counter("natter_resyncs_total", &[]),
            closed_logins: counter("natter_closed_logins_total", &[]),
            stalled: counter("natter_stalled_connections_total", &[]),
            store,
            logged_in: r
                .register_gauge(&Key::from_name("natter_logged_in_connections"), &metadata()),
            buffered: r.register_gauge(
                &Key::from_name("natter_outgoing_buffered_bytes"),
                &metadata(),
            ),
            buffered_peak: r.register_gauge(
                &Key::from_name("natter_outgoing_buffered_peak_bytes"),
                &metadata(),
            ),
            resident: r.register_gauge(
                &Key::from_name("process_resident_memory_bytes"),
                &metadata(),
            ),
            deliveries: counter("natter_deliveries_total", &[]),
            outbox_full: counter("natter_outbox_full_total", &[]),
            bus_dropped: counter("natter_bus_dropped_total", &[]),
            bus_reconnects: counter("natter_bus_reconnects_total", &[]),
            handle,
            recorder,
        }
    }

    /// The gauge of open connections of one dialect (registered once, when it is mounted).
    pub fn connections(&self, dialect: &'static str) -> Gauge {
        self.recorder.register_gauge(
            &Key::from_parts("natter_connections", vec![Label::new("dialect", dialect)]),
            &metadata(),
        )
    }

    /// The page, with the figures kept elsewhere read now.
    pub fn render(&self, now: &Snapshot) -> String {
        self.logged_in.set(now.logged_in as f64);
        self.buffered.set(now.buffered as f64);
        self.buffered_peak.set(now.buffered_peak as f64);
        if let Some(rss) = rss_bytes() {
            self.resident.set(rss as f64);
        }
        self.deliveries.absolute(now.deliveries);
        self.outbox_full.absolute(now.outbox_full);
        self.bus_dropped.absolute(now.bus_dropped);
        self.bus_reconnects.absolute(now.bus_reconnects);
        self.handle.render()
    }

    /// Fold the histogram samples recorded since the last call into their buckets (run every
    /// few seconds, so that samples do not pile up between scrapes).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// The resident set size from `VmRSS` in `/proc/self/status` (given in KiB there, so no page
/// size needs to be known).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
