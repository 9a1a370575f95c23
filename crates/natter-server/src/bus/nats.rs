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

use super::wire::{self, Body, Packet, WireAudience, WireMessage, WireNotice};
use super::{Bus, BusHandler, Chats};
use crate::event::{Audience, Delivery, Notice, Signal};
use async_nats::connection::State;
use async_nats::{Client, Event, Subscriber};
use futures_util::StreamExt;
use natter_proto::{ChatId, Ocid};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

/// A bus URL fit for logs and errors: any user, password or token replaced by `***`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Accounts per snapshot part (a part stays well under NATS's default 1 MB payload limit).
const SNAPSHOT_PART: usize = 20_000;

pub struct NatsBus {
    queue: Queue,
    client: Client,
}

/// The publisher task's bounded queue; whatever does not fit is counted as dropped.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<Vec<u8>>,
    /// Dropped since the last resync request (taken by `Link::settle_drops`).
    dropped: Arc<AtomicU64>,
    /// Counts since start, for the metrics.
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    dropped: AtomicU64,
    reconnects: AtomicU64,
}

impl Queue {
    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl Queue {
    fn send(&self, body: Body) {
        let bytes = match serde_json::to_vec(&Packet::new(body)) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "bus message encoding failed");
                return;
            }
        };
        if self.tx.try_send(bytes).is_err() {
            // Stored messages are caught up by index, presence by a snapshot (see
            // `Link::settle_drops`); a dropped notice is lost.
            self.drop_one();
        }
    }
}

/// The receiving half: started once the hub (the handler) and the domain (the chats) exist.
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
            url: without_credentials(url),
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
        let counts = Arc::new(Counts::default());
        let overflow = Queue {
            tx: mpsc::channel(1).0,
            dropped: dropped.clone(),
            counts: counts.clone(),
        };
        let client = async_nats::ConnectOptions::new()
            .name(format!("natter {node_name}"))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                if event_tx.try_send(event).is_err() {
                    overflow.drop_one();
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
        let bus = Queue {
            tx,
            dropped,
            counts,
        };
        Ok((
            Self {
                queue: bus.clone(),
                client: client.clone(),
            },
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
        self.queue.send(Body::Message {
            origin: delivery.origin.map(Into::into),
            message: WireMessage::from(&delivery.message),
        });
    }

    fn notify(&self, signal: Arc<Signal>) {
        let to = match &signal.audience {
            Audience::Accounts(list) => WireAudience::Accounts(list.iter().map(|o| o.0).collect()),
            Audience::Chat(chat) => WireAudience::Chat(chat.id.0),
        };
        self.queue.send(Body::Notice {
            origin: signal.origin.map(Into::into),
            to,
            notice: WireNotice::from(&signal.notice),
            at: signal.at,
        });
    }

    fn presence(&self, node: u64, ocid: Ocid, online: bool) {
        self.queue.send(Body::Presence {
            node,
            ocid: ocid.0,
            online,
        });
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn stats(&self) -> super::BusStats {
        super::BusStats {
            dropped: self.queue.counts.dropped.load(Ordering::Relaxed),
            reconnects: self.queue.counts.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// What the receiving task needs from the rest of the node.
pub struct Node {
    /// Where what arrives goes (the hub).
    pub handler: Arc<dyn BusHandler>,
    /// Where a message's chat is looked up (the domain).
    pub chats: Arc<dyn Chats>,
    /// Silence after which another node is given up on.
    pub peer_timeout: Duration,
    /// Cancelled when the node shuts down.
    pub shutdown: CancellationToken,
}

impl NatsLink {
    /// Run the publisher and the receiver until `node.shutdown`.
    pub fn start(self, node: Node) {
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
            bus.clone(),
            node.shutdown.clone(),
        ));
        let link = Link {
            client,
            subject,
            bus,
            snapshots: HashMap::new(),
            node,
        };
        tokio::spawn(receiver(subscriber, events, link));
    }
}

async fn publisher(
    client: Client,
    subject: async_nats::Subject,
    mut queue: mpsc::Receiver<Vec<u8>>,
    dropped: Queue,
    shutdown: CancellationToken,
) {
    loop {
        let bytes = tokio::select! {
            b = queue.recv() => b,
            () = shutdown.cancelled() => None,
        };
        let Some(bytes) = bytes else { break };
        // While NATS is away, publish nothing: the message is stored, and the resync that
        // follows the reconnect delivers it.
        if client.connection_state() != State::Connected {
            dropped.drop_one();
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
    node: Node,
}

impl Link {
    fn handler(&self) -> &dyn BusHandler {
        &*self.node.handler
    }

    /// Ask every other node for its accounts (at start, and whenever this node may have
    /// missed presence changes).
    fn hello(&self) {
        self.bus.send(Body::Hello {
            node: self.handler().node(),
        });
    }

    /// Publish this node's accounts, in parts, in order with its presence changes.
    fn snapshot(&self) {
        let node = self.handler().node();
        self.handler().local_accounts(&mut |accounts| {
            let parts: Vec<&[Ocid]> = if accounts.is_empty() {
                vec![&[]]
            } else {
                accounts.chunks(SNAPSHOT_PART).collect()
            };
            let n = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                self.bus.send(Body::Snapshot {
                    node,
                    part: i as u32,
                    last: i + 1 == n,
                    accounts: part.iter().map(|o| o.0).collect(),
                });
            }
        });
    }

    /// A snapshot part from another node; the last part replaces what was known of it.
    fn snapshot_part(&mut self, node: u64, part: u32, last: bool, accounts: Vec<u64>) {
        if node == self.handler().node() {
            return;
        }
        let gathered = self.snapshots.entry(node).or_default();
        if part == 0 {
            gathered.clear();
        }
        gathered.extend(accounts.into_iter().map(Ocid));
        if last {
            let all = self.snapshots.remove(&node).unwrap_or_default();
            self.handler().remote_snapshot(node, &all);
        }
    }

    /// Say this node is alive, and give up on the nodes that have gone silent.
    fn beat(&self) {
        self.bus.send(Body::Alive {
            node: self.handler().node(),
        });
        self.handler().expire_peers(self.node.peer_timeout);
    }

    /// If this node dropped deliveries and is connected again: its own connections resync,
    /// and every other node is asked to resync its connections too.
    fn settle_drops(&self) {
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
        self.handler().resync_all();
        self.snapshot();
        let Ok(bytes) = serde_json::to_vec(&Packet::new(Body::Resync)) else {
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

async fn receiver(mut subscriber: Subscriber, mut events: mpsc::Receiver<Event>, mut link: Link) {
    let mut disconnected = false;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let period = (link.node.peer_timeout / 4).max(Duration::from_millis(50));
    let mut beat = tokio::time::interval(period);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = link.node.shutdown.clone();
    link.hello();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            msg = subscriber.next() => {
                let Some(msg) = msg else {
                    tracing::error!("bus subscription ended");
                    break;
                };
                link.receive(&msg.payload).await;
            }
            Some(event) = events.recv() => match event {
                Event::Disconnected => {
                    disconnected = true;
                    tracing::warn!("bus disconnected; messages are stored and caught up later");
                }
                Event::Connected => {
                    if disconnected {
                        disconnected = false;
                        link.bus.counts.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("bus reconnected; every connection resyncs from the store");
                        link.handler().resync_all();
                        link.hello();
                    }
                    link.settle_drops();
                }
                Event::SlowConsumer(_) => {
                    tracing::warn!("bus subscription overflowed; every connection resyncs");
                    link.handler().resync_all();
                    link.hello();
                }
                other => tracing::info!(event = %other, "bus event"),
            },
            _ = beat.tick() => link.beat(),
            _ = check.tick() => link.settle_drops(),
        }
    }
}

impl Link {
    async fn receive(&mut self, payload: &[u8]) {
        let body = match wire::decode(payload) {
            Ok(Some(body)) => body,
            Ok(None) => {
                tracing::warn!("bus packet of another cluster format version ignored");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "undecodable bus packet ignored");
                return;
            }
        };
        match body {
            Body::Message { origin, message } => {
                let message = crate::store::Message::from(message);
                // A system message follows a change of the group's members: what is cached of
                // them is stale from here on.
                if message.kind == crate::store::kind::SYSTEM {
                    self.node.chats.forget(Some(message.chat), None);
                }
                match self.node.chats.chat_info(message.chat).await {
                    Some(chat) => self.handler().deliver(&Arc::new(Delivery {
                        message,
                        chat,
                        origin: origin.map(Into::into),
                    })),
                    None => {
                        tracing::warn!(chat = %message.chat, "chat lookup for a bus delivery failed; resyncing");
                        self.handler().resync_all();
                    }
                }
            }
            Body::Resync => self.handler().resync_all(),
            Body::Notice {
                origin,
                to,
                notice,
                at,
            } => {
                let notice = Notice::from(notice);
                if let Notice::Forget { chat, pair } = notice {
                    self.node.chats.forget(chat, pair);
                    return;
                }
                let audience = match to {
                    WireAudience::Accounts(list) => {
                        Audience::Accounts(list.into_iter().map(Ocid).collect())
                    }
                    WireAudience::Chat(id) => match self.node.chats.chat_info(ChatId(id)).await {
                        Some(chat) => Audience::Chat(chat),
                        None => {
                            tracing::warn!(chat = id, "chat lookup for a notice failed");
                            return;
                        }
                    },
                };
                self.handler().notice(&Arc::new(Signal {
                    audience,
                    origin: origin.map(Into::into),
                    notice,
                    at,
                }));
            }
            Body::Presence { node, ocid, online } => {
                self.heard(node);
                self.handler().remote_presence(node, Ocid(ocid), online);
            }
            Body::Alive { node } => self.heard(node),
            Body::Hello { node } => {
                if node != self.handler().node() {
                    self.handler().heard(node);
                    self.snapshot();
                }
            }
            Body::Snapshot {
                node,
                part,
                last,
                accounts,
            } => {
                self.handler().heard(node);
                self.snapshot_part(node, part, last, accounts);
            }
        }
    }

    /// A node this one did not know (new, or given up on) may hold accounts this node has
    /// not heard of: ask for every node's list.
    fn heard(&self, node: u64) {
        if self.handler().heard(node) {
            tracing::info!(node, "a peer node is alive; asking for its accounts");
            self.hello();
        }
    }
}
