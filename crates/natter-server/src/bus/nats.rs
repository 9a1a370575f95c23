//! The cluster bus on NATS core publish/subscribe.
//!
//! Every node publishes each stored message once, to `<cluster>.deliver`, and every node (the
//! origin too) subscribes to it and fans out what arrives to its own connections. Publishing
//! never blocks a sender: deliveries go through a bounded queue to a publisher task, and a
//! delivery that finds the queue full is dropped (it is already stored).
//!
//! NATS core keeps nothing for a disconnected subscriber, and while this node is disconnected
//! it publishes nothing (deliveries are counted as dropped rather than piled up in memory).
//! So whenever deliveries may have been lost, connections resync from the store by index:
//! - this node reconnects, or NATS reports this node's subscription as a slow consumer: every
//!   connection on this node resyncs;
//! - this node dropped deliveries (disconnected, or a full publish queue): once it is
//!   connected again it broadcasts a resync request, and every node's connections resync.
//!
//! See `docs/operations/cluster.md`.

use super::{Bus, Origin};
use crate::app::App;
use crate::domain::Delivery;
use crate::domain::friends::{Audience, Notice, Signal};
use crate::store::Message;
use async_nats::connection::State;
use async_nats::{Client, Event, Subscriber};
use futures_util::StreamExt;
use natter_proto::{ChatId, Ocid};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Deliveries waiting for the publisher task before new ones are dropped.
pub const DEFAULT_PUBLISH_QUEUE: usize = 65_536;
/// Connection events waiting for the receiver task.
const EVENT_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to NATS at {url}: {reason}")]
pub struct BusError {
    url: String,
    reason: String,
}

/// What crosses the bus. Besides stored messages and resync requests, nodes exchange
/// presence: each node says when an account gets its first connection there or loses its last
/// (`p`), says it is alive every quarter of the peer timeout (`a`), and answers a newcomer's
/// hello (`h`) with the full list of accounts it holds (`s`, in parts). Ephemeral notices
/// (`n`) name their audience by accounts or by chat.
#[derive(Serialize)]
#[serde(tag = "t")]
enum WireOut<'a> {
    #[serde(rename = "m")]
    Message {
        origin: Option<Origin>,
        message: &'a Message,
    },
    #[serde(rename = "r")]
    Resync,
    #[serde(rename = "n")]
    Notice {
        origin: Option<Origin>,
        to: WireAudience,
        notice: &'a Notice,
        at: i64,
    },
    #[serde(rename = "p")]
    Presence { node: u64, ocid: Ocid, online: bool },
    #[serde(rename = "a")]
    Alive { node: u64 },
    #[serde(rename = "h")]
    Hello { node: u64 },
    #[serde(rename = "s")]
    Snapshot {
        node: u64,
        part: u32,
        last: bool,
        accounts: &'a [Ocid],
    },
}

#[derive(Deserialize)]
#[serde(tag = "t")]
enum WireIn {
    #[serde(rename = "m")]
    Message {
        origin: Option<Origin>,
        message: Message,
    },
    #[serde(rename = "r")]
    Resync,
    #[serde(rename = "n")]
    Notice {
        origin: Option<Origin>,
        to: WireAudience,
        notice: Notice,
        at: i64,
    },
    #[serde(rename = "p")]
    Presence { node: u64, ocid: Ocid, online: bool },
    #[serde(rename = "a")]
    Alive { node: u64 },
    #[serde(rename = "h")]
    Hello { node: u64 },
    #[serde(rename = "s")]
    Snapshot {
        node: u64,
        part: u32,
        last: bool,
        accounts: Vec<Ocid>,
    },
}

/// A notice's audience on the wire: a chat goes by id (receivers look its members up).
#[derive(Serialize, Deserialize)]
enum WireAudience {
    #[serde(rename = "a")]
    Accounts(Vec<Ocid>),
    #[serde(rename = "c")]
    Chat(ChatId),
}

/// Accounts per snapshot part (a part stays well under NATS's default 1 MB payload limit).
const SNAPSHOT_PART: usize = 20_000;

pub struct NatsBus {
    queue: Queue,
}

/// The publisher task's bounded queue; whatever does not fit is counted as dropped.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    fn send(&self, wire: &WireOut<'_>) {
        let bytes = match serde_json::to_vec(wire) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "bus message encoding failed");
                return;
            }
        };
        if self.tx.try_send(bytes).is_err() {
            // Stored messages are caught up by index, presence by a snapshot (see
            // `Link::settle_drops`); a dropped notice is lost.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The receiving half: started once the app exists (it needs the domain to look chats up).
pub struct NatsLink {
    client: Client,
    subject: String,
    subscriber: Subscriber,
    queue: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Receiver<Event>,
    bus: Queue,
}

impl NatsBus {
    /// Connect to NATS at `url` and subscribe to `<cluster>.deliver`.
    ///
    /// # Errors
    /// NATS cannot be reached (a node does not start without its bus), or `cluster` is not a
    /// valid subject token.
    pub async fn connect(
        url: &str,
        cluster: &str,
        node_name: &str,
        queue: usize,
    ) -> Result<(Self, NatsLink), BusError> {
        let fail = |reason: String| BusError {
            url: url.to_owned(),
            reason,
        };
        if cluster.is_empty()
            || !cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(format!(
                "cluster name {cluster:?} must be letters, digits, '-' or '_'"
            )));
        }
        // Events are rare (connects, slow-consumer notices); if they ever pile up past this
        // bound, the overflow is counted like a dropped delivery, which makes every node resync.
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let overflow = dropped.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("natter {node_name}"))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                if event_tx.try_send(event).is_err() {
                    overflow.fetch_add(1, Ordering::Relaxed);
                }
                async {}
            })
            .connect(url)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let subject = format!("{cluster}.deliver");
        let subscriber = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| fail(e.to_string()))?;
        // A round trip: the server has the subscription before this node takes connections.
        client.flush().await.map_err(|e| fail(e.to_string()))?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let bus = Queue { tx, dropped };
        Ok((
            Self { queue: bus.clone() },
            NatsLink {
                client,
                subject,
                subscriber,
                queue: rx,
                events,
                bus,
            },
        ))
    }
}

impl Bus for NatsBus {
    fn publish(&self, delivery: Arc<Delivery>) {
        self.queue.send(&WireOut::Message {
            origin: delivery.origin,
            message: &delivery.message,
        });
    }

    fn notify(&self, signal: Arc<Signal>) {
        let to = match &signal.audience {
            Audience::Accounts(list) => WireAudience::Accounts(list.clone()),
            Audience::Chat(chat) => WireAudience::Chat(chat.id),
        };
        self.queue.send(&WireOut::Notice {
            origin: signal.origin,
            to,
            notice: &signal.notice,
            at: signal.at,
        });
    }

    fn presence(&self, node: u64, ocid: Ocid, online: bool) {
        self.queue.send(&WireOut::Presence { node, ocid, online });
    }
}

impl NatsLink {
    /// Run the publisher and the receiver until the app shuts down.
    pub fn start(self, app: Arc<App>) {
        let Self {
            client,
            subject,
            subscriber,
            queue,
            events,
            bus,
        } = self;
        let subject = async_nats::Subject::from(subject);
        tokio::spawn(publisher(
            client.clone(),
            subject.clone(),
            queue,
            bus.dropped.clone(),
            app.clone(),
        ));
        let link = Link {
            client,
            subject,
            bus,
            snapshots: HashMap::new(),
        };
        tokio::spawn(receiver(subscriber, events, link, app));
    }
}

async fn publisher(
    client: Client,
    subject: async_nats::Subject,
    mut queue: mpsc::Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    app: Arc<App>,
) {
    loop {
        let bytes = tokio::select! {
            b = queue.recv() => b,
            () = app.shutdown.cancelled() => None,
        };
        let Some(bytes) = bytes else { break };
        // While NATS is away, publish nothing: the message is stored, and the resync that
        // follows the reconnect delivers it.
        if client.connection_state() != State::Connected {
            dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Err(e) = client.publish(subject.clone(), bytes.into()).await {
            tracing::warn!(error = %e, "bus publish failed; receivers catch up from the store");
        }
    }
    let _ = client.flush().await;
}

/// What the receiver needs to talk back to the other nodes.
struct Link {
    client: Client,
    subject: async_nats::Subject,
    bus: Queue,
    /// Snapshot parts received so far, per node.
    snapshots: HashMap<u64, Vec<Ocid>>,
}

impl Link {
    /// Ask every other node for its accounts (at start, and whenever this node may have
    /// missed presence changes).
    fn hello(&self, app: &App) {
        self.bus.send(&WireOut::Hello {
            node: app.hub.node(),
        });
    }

    /// Publish this node's accounts, in parts, in order with its presence changes.
    fn snapshot(&self, app: &App) {
        let node = app.hub.node();
        app.hub.local_accounts(|accounts| {
            let parts: Vec<&[Ocid]> = if accounts.is_empty() {
                vec![&[]]
            } else {
                accounts.chunks(SNAPSHOT_PART).collect()
            };
            let n = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                self.bus.send(&WireOut::Snapshot {
                    node,
                    part: i as u32,
                    last: i + 1 == n,
                    accounts: part,
                });
            }
        });
    }

    /// A snapshot part from another node; the last part replaces what was known of it.
    fn snapshot_part(&mut self, app: &App, node: u64, part: u32, last: bool, accounts: Vec<Ocid>) {
        if node == app.hub.node() {
            return;
        }
        let gathered = self.snapshots.entry(node).or_default();
        if part == 0 {
            gathered.clear();
        }
        gathered.extend(accounts);
        if last {
            let all = self.snapshots.remove(&node).unwrap_or_default();
            app.hub.remote_snapshot(node, &all);
        }
    }

    /// Say this node is alive, and give up on the nodes that have gone silent.
    fn beat(&self, app: &App) {
        self.bus.send(&WireOut::Alive {
            node: app.hub.node(),
        });
        app.hub.expire_peers(app.config.peer_timeout);
    }

    /// If this node dropped deliveries and is connected again: its own connections resync,
    /// and every other node is asked to resync its connections too.
    fn settle_drops(&self, app: &App) {
        if self.client.connection_state() != State::Connected {
            return;
        }
        let n = self.bus.dropped.swap(0, Ordering::Relaxed);
        if n == 0 {
            return;
        }
        tracing::warn!(
            dropped = n,
            "bus messages were dropped; every node resyncs and hears this node's accounts again"
        );
        app.hub.resync_all();
        self.snapshot(app);
        let Ok(bytes) = serde_json::to_vec(&WireOut::Resync) else {
            return;
        };
        let (client, subject) = (self.client.clone(), self.subject.clone());
        // Off the receive loop: a publish may wait for the connection.
        tokio::spawn(async move {
            if let Err(e) = client.publish(subject, bytes.into()).await {
                tracing::warn!(error = %e, "resync request not published");
            }
        });
    }
}

async fn receiver(
    mut subscriber: Subscriber,
    mut events: mpsc::Receiver<Event>,
    mut link: Link,
    app: Arc<App>,
) {
    let mut disconnected = false;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let period = (app.config.peer_timeout / 4).max(Duration::from_millis(50));
    let mut beat = tokio::time::interval(period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    link.hello(&app);
    loop {
        tokio::select! {
            () = app.shutdown.cancelled() => break,
            msg = subscriber.next() => {
                let Some(msg) = msg else {
                    tracing::error!("bus subscription ended");
                    break;
                };
                link.receive(&app, &msg.payload).await;
            }
            Some(event) = events.recv() => match event {
                Event::Disconnected => {
                    disconnected = true;
                    tracing::warn!("bus disconnected; messages are stored and caught up later");
                }
                Event::Connected => {
                    if disconnected {
                        disconnected = false;
                        tracing::info!("bus reconnected; every connection resyncs from the store");
                        app.hub.resync_all();
                        link.hello(&app);
                    }
                    link.settle_drops(&app);
                }
                Event::SlowConsumer(_) => {
                    tracing::warn!("bus subscription overflowed; every connection resyncs");
                    app.hub.resync_all();
                    link.hello(&app);
                }
                other => tracing::info!(event = %other, "bus event"),
            },
            _ = beat.tick() => link.beat(&app),
            _ = check.tick() => link.settle_drops(&app),
        }
    }
}

impl Link {
    async fn receive(&mut self, app: &Arc<App>, payload: &[u8]) {
        let wire: WireIn = match serde_json::from_slice(payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "undecodable bus message ignored");
                return;
            }
        };
        match wire {
            WireIn::Message { origin, message } => deliver(app, origin, message).await,
            WireIn::Resync => app.hub.resync_all(),
            WireIn::Notice {
                origin,
                to,
                notice,
                at,
            } => {
                let audience = match to {
                    WireAudience::Accounts(list) => Audience::Accounts(list),
                    WireAudience::Chat(id) => match app.domain.chat(id).await {
                        Ok(chat) => Audience::Chat(chat),
                        Err(e) => {
                            tracing::warn!(error = %e.message, "chat lookup for a notice failed");
                            return;
                        }
                    },
                };
                app.hub.signal(&Arc::new(Signal {
                    audience,
                    origin,
                    notice,
                    at,
                }));
            }
            WireIn::Presence { node, ocid, online } => {
                self.heard(app, node);
                app.hub.remote_presence(node, ocid, online);
            }
            WireIn::Alive { node } => self.heard(app, node),
            WireIn::Hello { node } => {
                if node != app.hub.node() {
                    app.hub.heard(node);
                    self.snapshot(app);
                }
            }
            WireIn::Snapshot {
                node,
                part,
                last,
                accounts,
            } => {
                app.hub.heard(node);
                self.snapshot_part(app, node, part, last, accounts);
            }
        }
    }

    /// A node this one did not know (new, or given up on) may hold accounts this node has
    /// not heard of: ask for every node's list.
    fn heard(&self, app: &App, node: u64) {
        if app.hub.heard(node) {
            tracing::info!(node, "a peer node is alive; asking for its accounts");
            self.hello(app);
        }
    }
}

async fn deliver(app: &Arc<App>, origin: Option<Origin>, message: Message) {
    match app.domain.chat(message.chat).await {
        Ok(chat) => {
            let delivery = Arc::new(Delivery::new(message, chat, origin));
            app.hub.dispatch(&delivery);
        }
        Err(e) => {
            tracing::warn!(error = %e.message, "chat lookup for a bus delivery failed; resyncing");
            app.hub.resync_all();
        }
    }
}
