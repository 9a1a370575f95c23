//! A bare in-memory relay of the OurChat v1 text subset: a yardstick for `natter bench direct`,
//! not part of the server.
//!
//! It answers just enough of v1 for the `direct` workload: register (4 -> 5), password login
//! (6 -> 7 and 18) and resume (13 -> 14 and 18) accept anything, and a private text message (0)
//! gets its ack (15) while the same frame goes to every other connection of both parties with
//! the chat's next index. No persistence, no checks, no password hashing, no groups: whatever
//! it costs per message is the floor under natter's own cost on the same machine.
//!
//! ```text
//! cargo run --release --example relay -- --listen 127.0.0.1:7990
//! natter bench direct --url ws://127.0.0.1:7990/ws
//! ```

use anyhow::Context;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// WebSocket read and write buffer per connection, as in the bench client.
const BUFFER: usize = 4 * 1024;
/// The first ocid handed out.
const FIRST_OCID: u64 = 10_001;

#[derive(Parser, Debug)]
#[command(about = "A bare in-memory OurChat v1 relay: a yardstick for `natter bench direct`")]
struct Args {
    /// Where to accept WebSocket connections (any path is accepted).
    #[arg(long, default_value = "127.0.0.1:7990")]
    listen: String,
}

/// Everything the relay knows, behind one mutex.
#[derive(Default)]
struct State {
    /// Logged-in connections of each account: connection id and outbox.
    online: HashMap<u64, Vec<(u64, mpsc::UnboundedSender<Utf8Bytes>)>>,
    /// The last index of each private chat, keyed by (smaller ocid, larger ocid).
    chats: HashMap<(u64, u64), u64>,
    /// The last message id handed out.
    cid: u64,
}

struct Relay {
    state: Mutex<State>,
    next_ocid: AtomicU64,
    next_conn: AtomicU64,
}

impl Relay {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fields of a client frame that the relay reads.
#[derive(Deserialize)]
struct Request<'a> {
    code: i64,
    sender: Option<To>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    account: Option<Cow<'a, str>>,
    #[serde(borrow)]
    token: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct To {
    private_id: Option<u64>,
}

#[derive(Serialize)]
struct Delivery<'a> {
    code: i64,
    time: u64,
    cid: u64,
    sender: From,
    msg: &'a str,
    index: u64,
}

#[derive(Serialize)]
struct From {
    ocid: u64,
    private_id: u64,
}

#[derive(Serialize)]
struct Ack {
    code: i64,
    time: u64,
    cid: u64,
    index: u64,
    private_id: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn error(request: i64, message: &str) -> String {
    serde_json::json!({
        "code": 12, "error": "unsupported", "error_code": 1000, "message": message,
        "request": request, "time": now()
    })
    .to_string()
}

fn token(ocid: u64) -> String {
    format!("relay-{ocid}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("relay listening on ws://{}/ws", listener.local_addr()?);
    let relay = Arc::new(Relay {
        state: Mutex::new(State::default()),
        next_ocid: AtomicU64::new(FIRST_OCID),
        next_conn: AtomicU64::new(0),
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let relay = relay.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(&relay, stream).await {
                eprintln!("connection: {e:#}");
            }
        });
    }
}

/// One connection: a single task reads frames, answers them, and writes its outbox; it
/// flushes only when there is nothing more to read or to write right now.
async fn connection(relay: &Relay, stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(BUFFER)
        .write_buffer_size(BUFFER);
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let id = relay.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<Utf8Bytes>();
    let mut me: Option<u64> = None;
    let mut dirty = false;
    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                biased;
                incoming = ws.next() => {
                    let text = match incoming {
                        Some(Ok(Message::Text(text))) => text,
                        // A reset without a close frame is how the bench leaves.
                        Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                        Some(Ok(_)) => continue,
                    };
                    for reply in handle(relay, id, &tx, &mut me, text.as_str()) {
                        ws.feed(Message::text(reply)).await?;
                    }
                    dirty = true;
                }
                Some(out) = rx.recv() => {
                    ws.feed(Message::Text(out)).await?;
                    while let Ok(out) = rx.try_recv() {
                        ws.feed(Message::Text(out)).await?;
                    }
                    dirty = true;
                }
                () = std::future::ready(()), if dirty => {
                    ws.flush().await?;
                    dirty = false;
                }
            }
        }
    }
    .await;
    if let Some(ocid) = me {
        let mut state = relay.lock();
        if let Some(conns) = state.online.get_mut(&ocid) {
            conns.retain(|(c, _)| *c != id);
            if conns.is_empty() {
                state.online.remove(&ocid);
            }
        }
    }
    result
}

/// Answer one frame; returns the replies for this connection, in order.
fn handle(
    relay: &Relay,
    id: u64,
    tx: &mpsc::UnboundedSender<Utf8Bytes>,
    me: &mut Option<u64>,
    text: &str,
) -> Vec<String> {
    let Ok(req) = serde_json::from_str::<Request<'_>>(text) else {
        return vec![error(-1, "not a v1 frame")];
    };
    match req.code {
        0 => {
            let (Some(ocid), Some(peer), Some(msg)) = (
                *me,
                req.sender.and_then(|s| s.private_id),
                req.msg.as_deref(),
            ) else {
                return vec![error(
                    0,
                    "only private text messages of a logged-in account",
                )];
            };
            let time = now();
            let mut state = relay.lock();
            state.cid += 1;
            let cid = state.cid;
            let index = state
                .chats
                .entry((ocid.min(peer), ocid.max(peer)))
                .or_default();
            *index += 1;
            let index = *index;
            let delivery = Delivery {
                code: 0,
                time,
                cid,
                sender: From {
                    ocid,
                    private_id: peer,
                },
                msg,
                index,
            };
            let bytes = Utf8Bytes::from(serde_json::to_string(&delivery).unwrap_or_default());
            for account in [peer, ocid] {
                for (conn, out) in state.online.get(&account).into_iter().flatten() {
                    if *conn != id {
                        let _ = out.send(bytes.clone());
                    }
                }
            }
            drop(state);
            let ack = Ack {
                code: 15,
                time,
                cid,
                index,
                private_id: peer,
            };
            vec![serde_json::to_string(&ack).unwrap_or_default()]
        }
        4 => {
            let ocid = relay.next_ocid.fetch_add(1, Ordering::Relaxed);
            vec![
                serde_json::json!({"code": 5, "ocid": ocid, "state": 0, "time": now()}).to_string(),
            ]
        }
        6 | 13 => {
            let ocid = if req.code == 6 {
                req.account.and_then(|a| a.trim().parse::<u64>().ok())
            } else {
                req.token
                    .and_then(|t| t.strip_prefix("relay-").and_then(|o| o.parse().ok()))
            };
            let Some(ocid) = ocid else {
                return vec![error(req.code, "login_type 1 and a relay token only")];
            };
            if me.is_none() {
                relay
                    .lock()
                    .online
                    .entry(ocid)
                    .or_default()
                    .push((id, tx.clone()));
                *me = Some(ocid);
            }
            let time = now();
            let reply = serde_json::json!({
                "code": if req.code == 6 { 7 } else { 14 },
                "ocid": ocid, "state": 0, "time": time, "token": token(ocid)
            });
            vec![
                reply.to_string(),
                serde_json::json!({"code": 18, "count": 0, "time": time}).to_string(),
            ]
        }
        code => vec![error(code, "not supported by the relay")],
    }
}
