//! `natter serve` settings: flags and `NATTER_*` variables (through clap), then a TOML file.

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Every setting is optional here so that an unset flag/variable can fall back to the file.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flag names, with `_` for `-`).
    #[arg(long, env = "NATTER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address for HTTP and WebSocket [default: 127.0.0.1:7878].
    #[arg(long, env = "NATTER_LISTEN")]
    pub listen: Option<String>,
    /// Address for the pipe dialect's TCP lines (seed 004), or `off` [default: 127.0.0.1:7879].
    #[arg(long, env = "NATTER_PIPE_LISTEN")]
    pub pipe_listen: Option<String>,
    /// Directory for the database (created if missing) [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where state lives: a `postgres://` URL for PostgreSQL (a cluster's nodes share one)
    /// [default: SQLite in the data dir].
    #[arg(long, env = "NATTER_STORE")]
    pub store: Option<String>,
    /// Connections in the PostgreSQL pool [default: 16].
    #[arg(long, env = "NATTER_STORE_POOL")]
    pub store_pool: Option<u32>,
    /// How nodes deliver to each other: a `nats://` URL [default: in-process, one node].
    #[arg(long, env = "NATTER_BUS")]
    pub bus: Option<String>,
    /// Cluster name: nodes on the same bus with the same name form one cluster [default: natter].
    #[arg(long, env = "NATTER_CLUSTER")]
    pub cluster: Option<String>,
    /// This node's name in logs and on the bus [default: <hostname>-<pid>].
    #[arg(long, env = "NATTER_NODE_ID")]
    pub node_id: Option<String>,
    /// Deliveries queued for the bus before new ones are left to the store [default: 65536].
    #[arg(long, env = "NATTER_BUS_QUEUE")]
    pub bus_queue: Option<usize>,
    /// Seconds without a word from another node before its accounts count as offline; nodes
    /// say they are alive four times per period [default: 10].
    #[arg(long, env = "NATTER_PEER_TIMEOUT_SECS")]
    pub peer_timeout_secs: Option<u64>,
    /// Milliseconds an account whose last connection left still counts as online, so that a
    /// quick reconnect tells its friends nothing; 0 = offline at once [default: 5000].
    #[arg(long, env = "NATTER_PRESENCE_GRACE_MS")]
    pub presence_grace_ms: Option<u64>,
    /// Log level: error, warn, info, debug (or verbose), trace, off; or a filter such as
    /// `natter_server=debug,info`. Unset, `RUST_LOG` is read [default: info].
    #[arg(long, env = "NATTER_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// `text` or `json` [default: text].
    #[arg(long, env = "NATTER_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Largest WebSocket text frame answered normally [default: 65536].
    #[arg(long, env = "NATTER_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Longest message text in bytes [default: 16384].
    #[arg(long, env = "NATTER_MAX_TEXT_BYTES")]
    pub max_text_bytes: Option<usize>,
    /// Deliveries queued per connection before it is marked lagging [default: 1024].
    #[arg(long, env = "NATTER_OUTBOX_FRAMES")]
    pub outbox_frames: Option<usize>,
    /// KiB of deliveries queued per connection before it is marked lagging (it then catches
    /// up from the store), and the most one write of catch-up carries [default: 1024].
    #[arg(long, env = "NATTER_OUTBOX_KB")]
    pub outbox_kb: Option<usize>,
    /// KiB of missed messages a login's sync carries; the rest follow once the client has
    /// taken it [default: 4096].
    #[arg(long, env = "NATTER_CATCH_UP_KB")]
    pub catch_up_kb: Option<usize>,
    /// MiB of outgoing data the node buffers for all its connections together; past it,
    /// deliveries are left to the store and catch-up waits [default: 256].
    #[arg(long, env = "NATTER_NODE_OUTBOX_MB")]
    pub node_outbox_mb: Option<usize>,
    /// Seconds a client has to take each 64 KiB written to it (or a ping) before its
    /// connection is closed [default: 30].
    #[arg(long, env = "NATTER_STALL_TIMEOUT_SECS")]
    pub stall_timeout_secs: Option<u64>,
    /// Logged-in connections one account may have on each node; more logins are refused
    /// (too_many_connections); 0 for no cap [default: 32].
    #[arg(long, env = "NATTER_MAX_CONNECTIONS_PER_ACCOUNT")]
    pub max_connections_per_account: Option<usize>,
    /// KiB of messages one history reply holds (at least one message; a cut page says there
    /// is more) [default: 1024].
    #[arg(long, env = "NATTER_MAX_REPLY_KB")]
    pub max_reply_kb: Option<usize>,
    /// Who may put an account into a group without asking, for accounts that have not chosen:
    /// everyone, friends or nobody; the others' groups invite it [default: friends].
    #[arg(long, env = "NATTER_GROUP_ADDS_DEFAULT")]
    pub group_adds_default: Option<String>,
    /// Groups one account may create per hour (on each node); 0 for no limit [default: 30].
    #[arg(long, env = "NATTER_GROUPS_PER_HOUR")]
    pub groups_per_hour: Option<u32>,
    /// Invitations into groups one account may send per hour (on each node), at a group's
    /// creation or later; accounts whose setting lets it add them are not counted; 0 for no
    /// limit [default: 500].
    #[arg(long, env = "NATTER_MEMBERS_ADDED_PER_HOUR")]
    pub members_added_per_hour: Option<u32>,
    /// Friend requests one account may send per hour (on each node); 0 for no limit
    /// [default: 60].
    #[arg(long, env = "NATTER_FRIEND_REQUESTS_PER_HOUR")]
    pub friend_requests_per_hour: Option<u32>,
    /// Messages one account may send per minute in private chats with accounts that are not
    /// its friends (on each node); 0 for no limit [default: 0].
    #[arg(long, env = "NATTER_STRANGER_MESSAGES_PER_MIN")]
    pub stranger_messages_per_min: Option<u32>,
    /// Other accounts one account may look up per minute: account info, profiles and
    /// searches (on each node); 0 for no limit [default: 300].
    #[arg(long, env = "NATTER_LOOKUPS_PER_MIN")]
    pub lookups_per_min: Option<u32>,
    /// Sends per connection waiting for the store's commit before reading pauses [default: 64].
    #[arg(long, env = "NATTER_MAX_PENDING_SENDS")]
    pub max_pending_sends: Option<usize>,
    /// Requests per second per account on each node (per connection before login), 0 for no
    /// limit [default: 1000].
    #[arg(long, env = "NATTER_RATE_PER_SEC")]
    pub rate_per_sec: Option<u32>,
    /// Burst of requests allowed above the rate [default: 2000].
    #[arg(long, env = "NATTER_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Seconds between server pings [default: 30].
    #[arg(long, env = "NATTER_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Seconds of silence after which a connection is closed [default: 90].
    #[arg(long, env = "NATTER_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Days a login token stays valid [default: 30].
    #[arg(long, env = "NATTER_SESSION_TTL_DAYS")]
    pub session_ttl_days: Option<u64>,
    /// Most members in one group [default: 10000].
    #[arg(long, env = "NATTER_MAX_GROUP_MEMBERS")]
    pub max_group_members: Option<usize>,
    /// Connections each listener holds at once; more are refused at once [default: 100000].
    #[arg(long, env = "NATTER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections each listener holds at once from one client address (an IPv4 address or an
    /// IPv6 /64); more are refused at once; 0 for no cap but --max-connections [default: 1000].
    #[arg(long, env = "NATTER_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Addresses or networks that stand for many clients, comma-separated: a reverse proxy or a
    /// load generator. They are not capped per address (connections, failed logins), only per
    /// account and by --max-connections; empty for none [default: 127.0.0.0/8,::1].
    #[arg(long, env = "NATTER_SHARED_ADDRESSES")]
    pub shared_addresses: Option<String>,
    /// Seconds a client has to send a whole HTTP request head (a WebSocket upgrade included)
    /// after connecting or after its previous request; then it is closed [default: 10].
    #[arg(long, env = "NATTER_REQUEST_HEAD_TIMEOUT_SECS")]
    pub request_head_timeout_secs: Option<u64>,
    /// Seconds a request body (an upload) may pause; a body that stops for longer is cut,
    /// keeping what arrived [default: 30].
    #[arg(long, env = "NATTER_BODY_IDLE_TIMEOUT_SECS")]
    pub body_idle_timeout_secs: Option<u64>,
    /// Seconds a connection may stay without logging in (from its start or a logout)
    /// [default: 30].
    #[arg(long, env = "NATTER_LOGIN_TIMEOUT_SECS")]
    pub login_timeout_secs: Option<u64>,
    /// Seconds a line of a line dialect may take from its first byte to its newline
    /// [default: 30].
    #[arg(long, env = "NATTER_LINE_TIMEOUT_SECS")]
    pub line_timeout_secs: Option<u64>,
    /// Seconds shutdown waits for connections to finish what they are doing before it drops
    /// them [default: 10].
    #[arg(long, env = "NATTER_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// Failed password, token or security-answer attempts an account is allowed before it is
    /// locked (1 s, doubling with each further failure) [default: 5].
    #[arg(long, env = "NATTER_GUESS_FREE_PER_ACCOUNT")]
    pub guess_free_per_account: Option<u32>,
    /// The same per client address (an IPv4 address or an IPv6 /64) [default: 20].
    #[arg(long, env = "NATTER_GUESS_FREE_PER_ADDRESS")]
    pub guess_free_per_address: Option<u32>,
    /// Longest lock after failed attempts, in seconds [default: 900].
    #[arg(long, env = "NATTER_GUESS_MAX_LOCK_SECS")]
    pub guess_max_lock_secs: Option<u64>,
    /// Who may read /metrics: addresses or networks, comma-separated (`0.0.0.0/0,::/0` for
    /// anyone) [default: 127.0.0.0/8,::1].
    #[arg(long, env = "NATTER_METRICS_ALLOW")]
    pub metrics_allow: Option<String>,
    /// A token /metrics then also requires, as `Authorization: Bearer <token>` (set it in the
    /// environment or the file rather than on the command line).
    #[arg(long, env = "NATTER_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// TLS for HTTP and WebSocket: the certificate chain (PEM); with `--tls-key`. Reloaded on
    /// SIGHUP.
    #[arg(long, env = "NATTER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "NATTER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Who may register: `open` (anyone), `closed` (only `natter admin accounts create`) or
    /// `invite` (with a code from `natter admin invites create`) [default: open].
    #[arg(long, env = "NATTER_REGISTRATION")]
    pub registration: Option<String>,
    /// Where uploaded files are kept; a cluster's nodes share it [default: <data-dir>/files].
    #[arg(long, env = "NATTER_FILES_DIR")]
    pub files_dir: Option<PathBuf>,
    /// Largest file in MiB [default: 256].
    #[arg(long, env = "NATTER_MAX_FILE_MB")]
    pub max_file_mb: Option<u64>,
    /// MiB of files and uploads one account may hold [default: 4096].
    #[arg(long, env = "NATTER_FILE_QUOTA_MB")]
    pub file_quota_mb: Option<u64>,
    /// Hours an upload lives without receiving a byte [default: 24].
    #[arg(long, env = "NATTER_UPLOAD_TTL_HOURS")]
    pub upload_ttl_hours: Option<u64>,
    /// Hours a file no message or avatar refers to is kept [default: 24].
    #[arg(long, env = "NATTER_FILE_GRACE_HOURS")]
    pub file_grace_hours: Option<u64>,
    /// Seconds a signed file link works [default: 3600].
    #[arg(long, env = "NATTER_FILE_LINK_SECS")]
    pub file_link_secs: Option<u64>,
    /// Seconds between sweeps for abandoned uploads and unreferenced files [default: 600].
    #[arg(long, env = "NATTER_FILES_SWEEP_SECS")]
    pub files_sweep_secs: Option<u64>,
    /// Largest request body of the service-code dialect (`POST /svc`); larger ones are
    /// answered 413 [default: 65536].
    #[arg(long, env = "NATTER_SVC_MAX_BODY_BYTES")]
    pub svc_max_body_bytes: Option<usize>,
    /// Most messages in one service-code history reply (codes 3 and 9); a larger `count` is
    /// capped [default: 100].
    #[arg(long, env = "NATTER_SVC_MAX_COUNT")]
    pub svc_max_count: Option<u32>,
}

impl ServeArgs {
    /// The settings in a TOML file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has an unknown key.
    pub fn read_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// A commented sample config file: every setting `natter serve` has, from its own definition
/// (the flags above), with its help and default, commented out.
pub fn example() -> String {
    use clap::Args as _;
    let cmd = ServeArgs::augment_args(clap::Command::new("natter"));
    let mut out = String::from(
        "# natter configuration (TOML). Give it to `natter serve --config FILE`.\n\
         # Every setting is shown with its default, commented out. Command-line flags and\n\
         # NATTER_* environment variables override what is set here.\n",
    );
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "config" {
            continue;
        }
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let (text, default) = match help.rsplit_once("[default: ") {
            Some((text, rest)) => (text.trim(), rest.strip_suffix(']').map(str::trim)),
            None => (help.trim(), None),
        };
        // A default that is a description ("SQLite in the data dir") is said, not set.
        let (text, default) = match default {
            Some(d) if d.contains(' ') || d.starts_with('<') => {
                let stop = if text.ends_with(['.', ')']) { "" } else { "." };
                (format!("{text}{stop} Default: {d}."), None)
            }
            d => (text.to_owned(), d),
        };
        out.push('\n');
        for line in wrap(&text, 96) {
            out.push_str("# ");
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(env) = arg.get_env() {
            out.push_str(&format!("# (environment: {})\n", env.to_string_lossy()));
        }
        let key = long.replace('-', "_");
        match default {
            Some(d) => out.push_str(&format!("# {key} = {}\n", toml_value(d))),
            None => out.push_str(&format!("# {key} = \"\"\n")),
        }
    }
    out
}

/// A default as it is written in TOML: numbers bare, everything else quoted.
fn toml_value(d: &str) -> String {
    if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) {
        d.to_owned()
    } else {
        format!("{d:?}")
    }
}

/// `text` (one paragraph) in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The resolved settings.
#[derive(Debug)]
pub struct Settings {
    pub listen: String,
    /// The pipe dialect's address; `None` when it is off.
    pub pipe_listen: Option<String>,
    pub log_level: String,
    pub log_format: String,
    pub server: natter_server::Config,
}

macro_rules! fill {
    ($args:ident, $file:ident, $($field:ident),+) => {
        $( if $args.$field.is_none() { $args.$field = $file.$field.take(); } )+
    };
}

impl Settings {
    /// Merge flags/env with the TOML file and defaults, and check the values.
    ///
    /// # Errors
    /// An unreadable or invalid file, or an out-of-range value.
    pub fn resolve(mut args: ServeArgs) -> anyhow::Result<Self> {
        // RUST_LOG comes after the flag and NATTER_LOG_LEVEL, before the file.
        if args.log_level.is_none() {
            args.log_level = std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty());
        }
        if let Some(path) = &args.config {
            let mut file = ServeArgs::read_file(path)?;
            fill!(
                args,
                file,
                listen,
                pipe_listen,
                data_dir,
                store,
                store_pool,
                bus,
                cluster,
                node_id,
                bus_queue,
                peer_timeout_secs,
                presence_grace_ms,
                log_level,
                log_format,
                max_frame_bytes,
                max_text_bytes,
                outbox_frames,
                outbox_kb,
                catch_up_kb,
                node_outbox_mb,
                stall_timeout_secs,
                max_connections_per_account,
                max_reply_kb,
                group_adds_default,
                groups_per_hour,
                members_added_per_hour,
                friend_requests_per_hour,
                stranger_messages_per_min,
                lookups_per_min,
                max_pending_sends,
                rate_per_sec,
                rate_burst,
                ping_interval_secs,
                idle_timeout_secs,
                session_ttl_days,
                max_group_members,
                max_connections,
                max_connections_per_address,
                shared_addresses,
                request_head_timeout_secs,
                body_idle_timeout_secs,
                login_timeout_secs,
                line_timeout_secs,
                shutdown_timeout_secs,
                guess_free_per_account,
                guess_free_per_address,
                guess_max_lock_secs,
                metrics_allow,
                metrics_token,
                registration,
                tls_cert,
                tls_key,
                files_dir,
                max_file_mb,
                file_quota_mb,
                upload_ttl_hours,
                file_grace_hours,
                file_link_secs,
                files_sweep_secs,
                svc_max_body_bytes,
                svc_max_count
            );
        }
        let mut server = natter_server::Config::default();
        if let Some(v) = args.data_dir {
            server.data_dir = v;
        }
        server.store_url = args.store;
        if let Some(v) = args.store_pool {
            anyhow::ensure!(v >= 2, "store-pool must be at least 2");
            server.store_pool = v;
        }
        server.bus_url = args.bus;
        if let Some(v) = args.cluster {
            server.cluster = v;
        }
        if let Some(v) = args.node_id {
            server.node_id = v;
        }
        if let Some(v) = args.bus_queue {
            anyhow::ensure!(v >= 1, "bus-queue must be at least 1");
            server.bus_queue = v;
        }
        if let Some(v) = args.peer_timeout_secs {
            anyhow::ensure!(v >= 1, "peer-timeout-secs must be at least 1");
            server.peer_timeout = Duration::from_secs(v);
        }
        if let Some(v) = args.presence_grace_ms {
            anyhow::ensure!(
                v <= 600_000,
                "presence-grace-ms must be at most 600000 (ten minutes)"
            );
            server.presence_grace = Duration::from_millis(v);
        }
        if let Some(v) = args.max_frame_bytes {
            anyhow::ensure!(v >= 1024, "max-frame-bytes must be at least 1024");
            server.max_frame_bytes = v;
        }
        if let Some(v) = args.max_text_bytes {
            anyhow::ensure!(v >= 1, "max-text-bytes must be at least 1");
            server.limits.max_text_bytes = v;
        }
        if let Some(v) = args.outbox_frames {
            anyhow::ensure!(v >= 1, "outbox-frames must be at least 1");
            server.outbox_frames = v;
        }
        if let Some(v) = args.max_pending_sends {
            anyhow::ensure!(v >= 1, "max-pending-sends must be at least 1");
            server.max_pending_sends = v;
        }
        if let Some(v) = args.max_connections {
            anyhow::ensure!(v >= 1, "max-connections must be at least 1");
            server.max_connections = v;
        }
        if let Some(v) = args.max_connections_per_address {
            server.max_connections_per_address = v;
        }
        if let Some(v) = args.outbox_kb {
            anyhow::ensure!(v >= 1, "outbox-kb must be at least 1");
            server.outbox_bytes = v.saturating_mul(1024);
        }
        if let Some(v) = args.catch_up_kb {
            anyhow::ensure!(v >= 1, "catch-up-kb must be at least 1");
            server.catch_up_bytes = v.saturating_mul(1024);
        }
        if let Some(v) = args.node_outbox_mb {
            anyhow::ensure!(v >= 1, "node-outbox-mb must be at least 1");
            server.node_outbox_bytes = v.saturating_mul(1024 * 1024);
        }
        if let Some(v) = args.max_connections_per_account {
            server.max_connections_per_account = v;
        }
        if let Some(v) = args.group_adds_default.as_deref() {
            server.limits.group_adds = v.parse().map_err(anyhow::Error::msg)?;
        }
        let abuse = &mut server.limits.abuse;
        if let Some(v) = args.groups_per_hour {
            abuse.groups.max = v;
        }
        if let Some(v) = args.members_added_per_hour {
            abuse.members.max = v;
        }
        if let Some(v) = args.friend_requests_per_hour {
            abuse.friend_requests.max = v;
        }
        if let Some(v) = args.stranger_messages_per_min {
            abuse.stranger_messages.max = v;
        }
        if let Some(v) = args.lookups_per_min {
            abuse.lookups.max = v;
        }
        if let Some(v) = args.max_reply_kb {
            anyhow::ensure!(v >= 1, "max-reply-kb must be at least 1");
            server.limits.max_reply_bytes = v.saturating_mul(1024);
        }
        let secs = |v: Option<u64>, name: &str| -> anyhow::Result<Option<Duration>> {
            match v {
                Some(0) => anyhow::bail!("{name} must be at least 1"),
                v => Ok(v.map(Duration::from_secs)),
            }
        };
        if let Some(d) = secs(args.request_head_timeout_secs, "request-head-timeout-secs")? {
            server.request_head_timeout = d;
        }
        if let Some(d) = secs(args.body_idle_timeout_secs, "body-idle-timeout-secs")? {
            server.body_idle_timeout = d;
        }
        if let Some(d) = secs(args.login_timeout_secs, "login-timeout-secs")? {
            server.login_timeout = d;
        }
        if let Some(d) = secs(args.line_timeout_secs, "line-timeout-secs")? {
            server.line_timeout = d;
        }
        if let Some(d) = secs(args.shutdown_timeout_secs, "shutdown-timeout-secs")? {
            server.shutdown_timeout = d;
        }
        if let Some(d) = secs(args.stall_timeout_secs, "stall-timeout-secs")? {
            server.stall_timeout = d;
        }
        let guessing = &mut server.limits.guessing;
        if let Some(v) = args.guess_free_per_account {
            anyhow::ensure!(v >= 1, "guess-free-per-account must be at least 1");
            guessing.account.free = v;
        }
        if let Some(v) = args.guess_free_per_address {
            anyhow::ensure!(v >= 1, "guess-free-per-address must be at least 1");
            guessing.address.free = v;
        }
        if let Some(d) = secs(args.guess_max_lock_secs, "guess-max-lock-secs")? {
            guessing.account.max_lock = d;
            guessing.address.max_lock = d;
        }
        if let Some(v) = args.metrics_allow {
            server.metrics_access.allow =
                networks(&v).map_err(|e| anyhow::anyhow!("metrics-allow: {e}"))?;
        }
        if let Some(v) = args.shared_addresses {
            server.limits.shared_addresses =
                networks(&v).map_err(|e| anyhow::anyhow!("shared-addresses: {e}"))?;
        }
        if let Some(v) = args.metrics_token {
            anyhow::ensure!(
                v.len() >= 16,
                "metrics-token must be at least 16 characters"
            );
            server.metrics_access.token = Some(v);
        }
        if let Some(v) = args.rate_per_sec {
            server.rate_per_sec = v;
        }
        if let Some(v) = args.rate_burst {
            server.rate_burst = v;
        }
        if let Some(v) = args.ping_interval_secs {
            anyhow::ensure!(v >= 1, "ping-interval-secs must be at least 1");
            server.ping_interval = Duration::from_secs(v);
        }
        if let Some(v) = args.idle_timeout_secs {
            anyhow::ensure!(v >= 1, "idle-timeout-secs must be at least 1");
            server.idle_timeout = Duration::from_secs(v);
        }
        if let Some(v) = args.session_ttl_days {
            anyhow::ensure!(v >= 1, "session-ttl-days must be at least 1");
            server.limits.session_ttl = Duration::from_secs(v * 24 * 3600);
        }
        if let Some(v) = args.max_group_members {
            anyhow::ensure!(v >= 2, "max-group-members must be at least 2");
            server.limits.max_group_members = v;
        }
        server.tls = match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(natter_server::transport::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => anyhow::bail!("tls-cert and tls-key go together"),
        };
        if let Some(v) = args.registration {
            server.limits.registration = v.parse().map_err(anyhow::Error::msg)?;
        }
        server.files_dir = args.files_dir;
        const MIB: u64 = 1024 * 1024;
        let files = &mut server.limits.files;
        if let Some(v) = args.max_file_mb {
            anyhow::ensure!(v >= 1, "max-file-mb must be at least 1");
            files.max_file_bytes = v.saturating_mul(MIB);
        }
        if let Some(v) = args.file_quota_mb {
            files.quota_bytes = v.saturating_mul(MIB);
        }
        if let Some(v) = args.upload_ttl_hours {
            anyhow::ensure!(v >= 1, "upload-ttl-hours must be at least 1");
            files.upload_ttl = Duration::from_secs(v * 3600);
        }
        if let Some(v) = args.file_grace_hours {
            files.orphan_grace = Duration::from_secs(v * 3600);
        }
        if let Some(v) = args.file_link_secs {
            anyhow::ensure!(v >= 10, "file-link-secs must be at least 10");
            files.link_ttl = Duration::from_secs(v);
        }
        if let Some(v) = args.files_sweep_secs {
            anyhow::ensure!(v >= 1, "files-sweep-secs must be at least 1");
            server.files_sweep = Duration::from_secs(v);
        }
        if let Some(v) = args.svc_max_body_bytes {
            anyhow::ensure!(v >= 1024, "svc-max-body-bytes must be at least 1024");
            server.svc_max_body_bytes = v;
        }
        if let Some(v) = args.svc_max_count {
            anyhow::ensure!(v >= 1, "svc-max-count must be at least 1");
            server.svc_max_count = v;
        }
        Ok(Self {
            listen: args.listen.unwrap_or_else(|| "127.0.0.1:7878".into()),
            pipe_listen: match args.pipe_listen.as_deref().map(str::trim) {
                Some("off") => None,
                Some(addr) => Some(addr.to_owned()),
                None => Some("127.0.0.1:7879".into()),
            },
            log_level: args.log_level.unwrap_or_else(|| "info".into()),
            log_format: args.log_format.unwrap_or_else(|| "text".into()),
            server,
        })
    }
}

/// Comma-separated addresses and networks (`10.0.0.0/8,192.0.2.7,::1`).
fn networks(list: &str) -> Result<Vec<natter_server::transport::Network>, String> {
    list.split(',')
        .filter(|n| !n.trim().is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn flags_beat_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("natter.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9999\"\noutbox_frames = 7\nrate_per_sec = 3\n",
        )
        .expect("write");
        let cli = Wrap::parse_from([
            "x",
            "--config",
            file.to_str().expect("utf-8"),
            "--rate-per-sec",
            "11",
        ]);
        let s = Settings::resolve(cli.args).expect("resolves");
        assert_eq!(s.listen, "127.0.0.1:9999");
        assert_eq!(s.server.outbox_frames, 7);
        assert_eq!(s.server.rate_per_sec, 11);
        assert_eq!(s.server.rate_burst, 2000);
    }

    #[test]
    fn the_example_config_is_every_setting_with_its_default() {
        let example = example();
        // As printed (all commented out), it is valid and changes nothing.
        let none: ServeArgs = toml::from_str(&example).expect("the example is TOML");
        assert!(none.listen.is_none());
        // Every setting with a default, uncommented, is accepted and gives the defaults.
        let uncommented: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| {
                l.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                    && !l.ends_with("= \"\"")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let keys = uncommented.lines().count();
        assert!(keys >= 20, "{uncommented}");
        let file: ServeArgs = toml::from_str(&uncommented).expect("every key is a setting");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("natter.toml");
        std::fs::write(&path, &uncommented).expect("write");
        let cli = Wrap::parse_from(["x", "--config", path.to_str().expect("utf-8")]);
        let s = Settings::resolve(cli.args)
            .unwrap_or_else(|e| panic!("the defaults resolve: {e:#}\n{uncommented}"));
        let d = natter_server::Config::default();
        assert_eq!(s.listen, "127.0.0.1:7878");
        assert_eq!(s.pipe_listen.as_deref(), Some("127.0.0.1:7879"));
        assert_eq!(s.server.outbox_frames, d.outbox_frames);
        assert_eq!(s.server.max_connections, d.max_connections);
        assert_eq!(s.server.rate_burst, d.rate_burst);
        assert_eq!(s.server.limits.registration, d.limits.registration);
        let (got, want) = (&s.server.limits.files, &d.limits.files);
        assert_eq!(got.max_file_bytes, want.max_file_bytes);
        assert_eq!(got.quota_bytes, want.quota_bytes);
        assert_eq!(got.upload_ttl, want.upload_ttl);
        assert_eq!(got.orphan_grace, want.orphan_grace);
        assert_eq!(got.link_ttl, want.link_ttl);
        assert_eq!(s.server.files_sweep, d.files_sweep);
        assert_eq!(
            s.server.max_connections_per_address,
            d.max_connections_per_address
        );
        assert_eq!(s.server.request_head_timeout, d.request_head_timeout);
        assert_eq!(s.server.login_timeout, d.login_timeout);
        assert_eq!(s.server.body_idle_timeout, d.body_idle_timeout);
        assert_eq!(s.server.line_timeout, d.line_timeout);
        assert_eq!(s.server.shutdown_timeout, d.shutdown_timeout);
        assert_eq!(s.server.limits.guessing, d.limits.guessing);
        assert_eq!(s.server.metrics_access, d.metrics_access);
        assert_eq!(s.server.limits.shared_addresses, d.limits.shared_addresses);
        assert_eq!(
            file.store, None,
            "a setting without a default stays commented"
        );
    }

    #[test]
    fn the_pipe_listener_is_on_by_default_and_can_be_turned_off() {
        let resolve = |args: &[&str]| {
            let cli = Wrap::parse_from(args);
            Settings::resolve(cli.args).expect("resolves").pipe_listen
        };
        assert_eq!(resolve(&["x"]).as_deref(), Some("127.0.0.1:7879"));
        assert_eq!(
            resolve(&["x", "--pipe-listen", "0.0.0.0:9000"]).as_deref(),
            Some("0.0.0.0:9000")
        );
        assert_eq!(resolve(&["x", "--pipe-listen", "off"]), None);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("natter.toml");
        std::fs::write(&file, "lisen = \"x\"\n").expect("write");
        let cli = Wrap::parse_from(["x", "--config", file.to_str().expect("utf-8")]);
        let err = Settings::resolve(cli.args).expect_err("typo rejected");
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }
}
