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
use crate::store::Message;
use async_nats::connection::State;
use async_nats::{Client, Event, Subscriber};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
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

/// What crosses the bus: a stored message and who sent it (receivers look the chat's members
/// up themselves, cached, so group messages stay small), or a request that every node's
/// connections resync from the store.
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
}

pub struct NatsBus {
    queue: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// The receiving half: started once the app exists (it needs the domain to look chats up).
pub struct NatsLink {
    client: Client,
    subject: String,
    subscriber: Subscriber,
    queue: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
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
        Ok((
            Self {
                queue: tx,
                dropped: dropped.clone(),
            },
            NatsLink {
                client,
                subject,
                subscriber,
                queue: rx,
                events,
                dropped,
            },
        ))
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn publish(&self, delivery: Arc<Delivery>) {
        let wire = WireOut::Message {
            origin: delivery.origin,
            message: &delivery.message,
        };
        let bytes = match serde_json::to_vec(&wire) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "delivery encoding failed");
                return;
            }
        };
        if self.queue.try_send(bytes).is_err() {
            // Stored but not published: receivers find it by index (see the module doc).
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
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
            dropped,
        } = self;
        let subject = async_nats::Subject::from(subject);
        tokio::spawn(publisher(
            client.clone(),
            subject.clone(),
            queue,
            dropped.clone(),
            app.clone(),
        ));
        let link = Link {
            client,
            subject,
            dropped,
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

/// What the receiver needs to ask the other nodes for a resync.
struct Link {
    client: Client,
    subject: async_nats::Subject,
    dropped: Arc<AtomicU64>,
}

impl Link {
    /// If this node dropped deliveries and is connected again: its own connections resync,
    /// and every other node is asked to resync its connections too.
    fn settle_drops(&self, app: &App) {
        if self.client.connection_state() != State::Connected {
            return;
        }
        let n = self.dropped.swap(0, Ordering::Relaxed);
        if n == 0 {
            return;
        }
        tracing::warn!(
            dropped = n,
            "deliveries were left to the store; every node resyncs"
        );
        app.hub.resync_all();
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
    link: Link,
    app: Arc<App>,
) {
    let mut disconnected = false;
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = app.shutdown.cancelled() => break,
            msg = subscriber.next() => {
                let Some(msg) = msg else {
                    tracing::error!("bus subscription ended");
                    break;
                };
                deliver(&app, &msg.payload).await;
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
                    }
                    link.settle_drops(&app);
                }
                Event::SlowConsumer(_) => {
                    tracing::warn!("bus subscription overflowed; every connection resyncs");
                    app.hub.resync_all();
                }
                other => tracing::info!(event = %other, "bus event"),
            },
            _ = check.tick() => link.settle_drops(&app),
        }
    }
}

async fn deliver(app: &Arc<App>, payload: &[u8]) {
    let (origin, message) = match serde_json::from_slice(payload) {
        Ok(WireIn::Message { origin, message }) => (origin, message),
        Ok(WireIn::Resync) => {
            app.hub.resync_all();
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "undecodable bus message ignored");
            return;
        }
    };
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
