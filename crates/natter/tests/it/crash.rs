//! The real binary stopped under load, again and again: by SIGKILL (a crash) and by SIGTERM
//! (a graceful stop). Several senders write private messages to one receiver, each with a client
//! id, awaiting each ack; the receiver reads live and resumes after every restart from the last
//! index it holds. After the last restart each sender resends the message it had no ack for
//! (same client id), and then:
//! - every acknowledged message is stored exactly once, at the index its ack named;
//! - each chat's indexes run 1, 2, 3, ... without a gap, and no client id is stored twice;
//! - the receiver got every stored message exactly once, in index order, across the restarts.

use crate::common::{Server, Ws, connect, recv_code, send, serve};
use natter_client::Target;
use natter_client::ourchat::v1;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SENDERS: usize = 4;
const ROUNDS: usize = 3;
/// Acks the load reaches in a round before the server is stopped (or the time below).
const ACKS_PER_ROUND: u64 = 400;
const MAX_ROUND: Duration = Duration::from_secs(20);
const PW: &str = "pw";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

/// One sender's record across rounds.
#[derive(Debug, Default)]
struct Sender {
    ocid: u64,
    token: String,
    /// Messages made so far (the next client id's number).
    made: u64,
    /// Client id -> the index its ack named.
    acked: HashMap<String, u64>,
    /// The message sent whose ack never came (resent, with its client id, next round).
    pending: Option<String>,
    /// How many times a message was resent after a stop.
    resent: u64,
}

/// The receiver's record: per sender, every index delivered, in arrival order.
#[derive(Debug, Default)]
struct Receiver {
    ocid: u64,
    token: String,
    got: HashMap<u64, Vec<(u64, String)>>,
}

/// The next text frame as JSON, or `None` once the connection has ended (or is silent for
/// `wait`).
async fn next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    let text = tokio::time::timeout(wait, ws.next_text())
        .await
        .ok()?
        .ok()?;
    serde_json::from_str(&text).ok()
}

/// Connect and resume with `token`; the sync's frames are handed to `on_frame`. `None` when the
/// server is not there (any more).
async fn resume(addr: &str, frame: String, mut on_frame: impl FnMut(&Value)) -> Option<Ws> {
    let endpoint = natter_client::ws::Endpoint::resolve(&format!("ws://{addr}{}", v1::PATH))
        .await
        .ok()?;
    let mut ws = endpoint
        .connect(&natter_client::ws::Options::default())
        .await
        .ok()?;
    ws.send_text(frame).await.ok()?;
    loop {
        let f = next(&mut ws, Duration::from_secs(20)).await?;
        match f["code"].as_i64() {
            Some(102) => assert_eq!(f["state"], 0, "resume refused: {f}"),
            Some(106) => return Some(ws),
            _ => on_frame(&f),
        }
    }
}

/// Send until the connection ends (or `limit` acks this round), one message at a time.
async fn send_round(
    addr: String,
    mut s: Sender,
    to: u64,
    acks: Arc<AtomicU64>,
    limit: u64,
) -> Sender {
    let Some(mut ws) = resume(&addr, v1::resume(&s.token), |_| {}).await else {
        return s;
    };
    let mut sent = 0;
    while sent < limit {
        let cid = match &s.pending {
            Some(cid) => {
                if sent == 0 {
                    s.resent += 1;
                }
                cid.clone()
            }
            None => {
                s.made += 1;
                let cid = format!("m{}-{}", s.ocid, s.made);
                s.pending = Some(cid.clone());
                cid
            }
        };
        let frame = v1::text_with_id(Target::Private(to), &cid, Some(&cid));
        if ws.send_text(frame).await.is_err() {
            return s;
        }
        let index = loop {
            let Some(f) = next(&mut ws, Duration::from_secs(20)).await else {
                return s;
            };
            if f["code"] == 103 && f["client_id"] == json!(cid) {
                break f["index"].as_u64().expect("an index");
            }
            assert_ne!(f["code"], 100, "a send was refused: {f}");
        };
        if let Some(before) = s.acked.insert(cid.clone(), index) {
            assert_eq!(before, index, "{cid} acked at {before}, then at {index}");
        }
        s.pending = None;
        sent += 1;
        acks.fetch_add(1, Ordering::Relaxed);
    }
    ws.close().await;
    s
}

/// Receive until the connection ends; resume from the last index held per sender.
async fn receive_round(
    addr: String,
    mut r: Receiver,
    senders: Vec<u64>,
    until: Option<usize>,
) -> Receiver {
    let since: Vec<(Target, u64)> = senders
        .iter()
        .filter_map(|s| {
            let last = r.got.get(s)?.last()?.0;
            Some((Target::Private(*s), last))
        })
        .collect();
    let me = r.ocid;
    let record = |got: &mut HashMap<u64, Vec<(u64, String)>>, f: &Value| {
        if f["code"] == 0 {
            let from = f["sender"]["ocid"].as_u64().expect("a sender");
            assert_ne!(from, me);
            let index = f["index"].as_u64().expect("an index");
            let msg = f["msg"].as_str().expect("a text").to_owned();
            got.entry(from).or_default().push((index, msg));
        }
    };
    let mut got = std::mem::take(&mut r.got);
    let ws = resume(&addr, v1::resume_since(&r.token, &since), |f| {
        record(&mut got, f)
    })
    .await;
    if let Some(mut ws) = ws {
        loop {
            if until.is_some_and(|n| got.values().map(Vec::len).sum::<usize>() >= n) {
                break;
            }
            let wait = if until.is_some() { 20 } else { 60 };
            let Some(f) = next(&mut ws, Duration::from_secs(wait)).await else {
                break;
            };
            record(&mut got, &f);
        }
    }
    r.got = got;
    r
}

async fn register_and_login(ws: &mut Ws, email: &str) -> (u64, String) {
    send(
        ws,
        json!({"code": 4, "email": email, "password": PW, "name": email}),
    )
    .await;
    let r = recv_code(ws, 5).await;
    assert_eq!(r["state"], 0, "{r}");
    send(
        ws,
        json!({"code": 6, "login_type": 0, "account": email, "password": PW, "ext": 1}),
    )
    .await;
    let login = recv_code(ws, 7).await;
    assert_eq!(login["state"], 0, "{login}");
    recv_code(ws, 106).await;
    (
        login["ocid"].as_u64().expect("an ocid"),
        login["token"].as_str().expect("a token").to_owned(),
    )
}

fn stop(server: &mut Server, how: Stop) {
    match how {
        Stop::Kill => server.child.kill().expect("SIGKILL"),
        Stop::Term => {
            let status = Command::new("kill")
                .args(["-TERM", &server.child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            if how == Stop::Term {
                assert!(status.success(), "exit status after SIGTERM: {status:?}");
            }
            return;
        }
        assert!(Instant::now() < deadline, "natter did not exit within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn stop_and_restart_under_load(how: Stop) {
    let dir = tempfile::tempdir().expect("tempdir");
    let label = if how == Stop::Kill { "kill" } else { "term" };
    let mut server = serve(dir.path(), &[], label);

    let mut ws = connect(&server.addr).await;
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        let (ocid, token) = register_and_login(&mut ws, &format!("s{n}@crash.test")).await;
        senders.push(Sender {
            ocid,
            token,
            ..Sender::default()
        });
    }
    let (ocid, token) = register_and_login(&mut ws, "r@crash.test").await;
    let mut receiver = Receiver {
        ocid,
        token,
        got: HashMap::new(),
    };
    ws.close().await;
    let sender_ids: Vec<u64> = senders.iter().map(|s| s.ocid).collect();

    for _ in 0..ROUNDS {
        let acks = Arc::new(AtomicU64::new(0));
        let recv_task = tokio::spawn(receive_round(
            server.addr.clone(),
            receiver,
            sender_ids.clone(),
            None,
        ));
        let tasks: Vec<_> = senders
            .into_iter()
            .map(|s| {
                tokio::spawn(send_round(
                    server.addr.clone(),
                    s,
                    ocid,
                    acks.clone(),
                    u64::MAX,
                ))
            })
            .collect();
        let started = Instant::now();
        while acks.load(Ordering::Relaxed) < ACKS_PER_ROUND && started.elapsed() < MAX_ROUND {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            acks.load(Ordering::Relaxed) > 0,
            "no message was acknowledged in {MAX_ROUND:?}"
        );
        stop(&mut server, how);
        senders = Vec::new();
        for t in tasks {
            senders.push(
                tokio::time::timeout(Duration::from_secs(60), t)
                    .await
                    .expect("a sender ends with the server")
                    .expect("a sender task"),
            );
        }
        receiver = tokio::time::timeout(Duration::from_secs(90), recv_task)
            .await
            .expect("the receiver ends with the server")
            .expect("the receiver task");
        server = serve(dir.path(), &[], label);
    }

    // Each sender resends what it had no ack for (at most one message), and one more.
    let acks = Arc::new(AtomicU64::new(0));
    let mut finished = Vec::new();
    for s in senders {
        let s = send_round(server.addr.clone(), s, ocid, acks.clone(), 2).await;
        assert!(s.pending.is_none(), "every message is acked now");
        finished.push(s);
    }
    let senders = finished;

    // The stored history of each chat, as its sender reads it (a connection of the receiver's
    // own login would mark what it is pushed as delivered to that login).
    let mut stored_total = 0;
    let mut stored: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
    for s in &senders {
        let mut ws = connect(&server.addr).await;
        send(&mut ws, json!({"code": 101, "token": s.token})).await;
        assert_eq!(recv_code(&mut ws, 102).await["state"], 0);
        loop {
            let f = next(&mut ws, Duration::from_secs(30))
                .await
                .expect("the sync");
            if f["code"] == 106 {
                break;
            }
        }
        let list = history(&mut ws, ocid).await;
        stored_total += list.len();
        stored.insert(s.ocid, list);
        ws.close().await;
    }

    // The receiver, resumed, catches up with whatever it has not seen.
    let receiver = receive_round(
        server.addr.clone(),
        receiver,
        sender_ids,
        Some(stored_total),
    )
    .await;

    let mut acked_total = 0;
    for s in &senders {
        let list = &stored[&s.ocid];
        let indexes: Vec<u64> = list.iter().map(|(i, _)| *i).collect();
        let want: Vec<u64> = (1..=list.len() as u64).collect();
        assert_eq!(indexes, want, "the chat of {} has gaps or repeats", s.ocid);
        let mut seen = HashSet::new();
        for (_, text) in list {
            assert!(seen.insert(text.clone()), "{text} is stored twice");
        }
        let at: HashMap<&str, u64> = list.iter().map(|(i, t)| (t.as_str(), *i)).collect();
        for (cid, index) in &s.acked {
            assert_eq!(
                at.get(cid.as_str()),
                Some(index),
                "{cid} was acked at {index}"
            );
        }
        acked_total += s.acked.len();
        assert_eq!(
            receiver
                .got
                .get(&s.ocid)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            list.as_slice(),
            "what the receiver got from {} is the chat, once and in order",
            s.ocid
        );
    }
    assert!(
        acked_total as u64 >= ACKS_PER_ROUND,
        "too little load: {acked_total} acks"
    );
    let resent: u64 = senders.iter().map(|s| s.resent).sum();
    if how == Stop::Kill {
        // Killed mid-send, senders had messages without an ack to send again.
        assert!(resent > 0, "no message was in flight at any of the kills");
    }
    eprintln!(
        "{label}: {ROUNDS} stops, {acked_total} acked messages ({resent} resent after a stop), \
         {stored_total} stored, all delivered once"
    );
}

/// The whole history of the private chat with `peer`, oldest first, paged by index.
async fn history(ws: &mut Ws, peer: u64) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    loop {
        let after = out.last().map_or(0, |(i, _)| *i);
        send(
            ws,
            json!({"code": 104, "private_id": peer, "after": after, "limit": 100}),
        )
        .await;
        let page = recv_code(ws, 105).await;
        let messages = page["messages"].as_array().expect("messages");
        for m in messages {
            out.push((
                m["index"].as_u64().expect("an index"),
                m["msg"].as_str().expect("a text").to_owned(),
            ));
        }
        if messages.is_empty() || page["more"] != true {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_under_load() {
    stop_and_restart_under_load(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigterm_under_load() {
    stop_and_restart_under_load(Stop::Term).await;
}
