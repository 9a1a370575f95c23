//! Clusters with real processes: two `natter serve` nodes on one PostgreSQL database and one
//! NATS bus. Failover: one node is killed with SIGKILL mid-conversation, and its clients move to
//! the other node and lose nothing (each message exactly once, in index order). Bench: `natter
//! bench` with both nodes' URLs runs every workload across them and its check passes. Runs when
//! PostgreSQL and NATS are reachable; fails when `CI=true` and they are not.

use crate::common::{self, Server, Ws, connect, recv, recv_code, send, send_text, serve};
use crate::services::{TestDb, nats, rand_u64};
use natter_client::Target;
use natter_client::ourchat::v1;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// A node and its data directory.
struct Node {
    server: Server,
    _dir: tempfile::TempDir,
}

/// Start a node of `cluster` with the `extra` flags and wait for its "listening" line.
fn node(name: &str, db: &str, bus: &str, cluster: &str, extra: &[&str]) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut flags = vec![
        "--store",
        db,
        "--bus",
        bus,
        "--cluster",
        cluster,
        "--node-id",
        name,
    ];
    flags.extend_from_slice(extra);
    Node {
        server: serve(dir.path(), &flags, name),
        _dir: dir,
    }
}

/// A chat as a v1 client names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Chat {
    Group(u64),
    /// The private chat with this account.
    With(u64),
}

/// A client that records every message it receives per chat, and checks order as it goes.
struct Peer {
    ws: Ws,
    ocid: u64,
    token: String,
    /// chat -> indexes received, in arrival order.
    got: HashMap<Chat, Vec<u64>>,
}

impl Peer {
    async fn new(addr: &str, email: &str) -> Self {
        let mut ws = connect(addr).await;
        send(
            &mut ws,
            json!({"code": 4, "email": email, "password": "pw", "name": "peer"}),
        )
        .await;
        let r = recv_code(&mut ws, 5).await;
        assert_eq!(r["state"], 0, "{r}");
        send(
            &mut ws,
            json!({"code": 6, "login_type": 0, "account": email, "password": "pw", "ext": 1}),
        )
        .await;
        let r = recv_code(&mut ws, 7).await;
        assert_eq!(r["state"], 0, "{r}");
        recv_code(&mut ws, 106).await;
        Self {
            ws,
            ocid: r["ocid"].as_u64().expect("ocid"),
            token: r["token"].as_str().expect("token").to_owned(),
            got: HashMap::new(),
        }
    }

    fn record(&mut self, f: &Value) {
        let sender = &f["sender"];
        let chat = match (sender["group_id"].as_u64(), sender["private_id"].as_u64()) {
            (Some(g), _) => Chat::Group(g),
            (None, Some(to)) if to == self.ocid => {
                Chat::With(sender["ocid"].as_u64().expect("ocid"))
            }
            (None, Some(to)) => Chat::With(to),
            _ => panic!("a message names no chat: {f}"),
        };
        let index = f["index"].as_u64().expect("index");
        let list = self.got.entry(chat).or_default();
        assert!(
            list.last().is_none_or(|l| *l < index),
            "{chat:?}: index {index} after {list:?} (duplicate or out of order)"
        );
        list.push(index);
    }

    /// Receive code 0 frames until this chat has reached `index`.
    async fn until(&mut self, chat: Chat, index: u64) {
        while self
            .got
            .get(&chat)
            .and_then(|l| l.last())
            .is_none_or(|l| *l < index)
        {
            let f = recv(&mut self.ws).await;
            assert_eq!(f["code"], 0, "expected a message, got {f}");
            self.record(&f);
        }
    }

    /// Reconnect to `addr` by token, telling the server what this client already holds.
    async fn resume(&mut self, addr: &str) {
        self.ws = connect(addr).await;
        let since: Vec<(Target, u64)> = self
            .got
            .iter()
            .filter_map(|(c, l)| {
                l.last().map(|i| match *c {
                    Chat::Group(g) => (Target::Group(g), *i),
                    Chat::With(o) => (Target::Private(o), *i),
                })
            })
            .collect();
        send_text(&mut self.ws, v1::resume_since(&self.token, &since)).await;
        let r = recv_code(&mut self.ws, 102).await;
        assert_eq!(
            (r["state"].clone(), r["ocid"].clone()),
            (json!(0), json!(self.ocid))
        );
        loop {
            let f = recv(&mut self.ws).await;
            match f["code"].as_i64() {
                Some(0) => self.record(&f),
                Some(106) => break,
                _ => panic!("expected code 0 or 106 after resume, got {f}"),
            }
        }
    }

    async fn send_ok(&mut self, to: Value, msg: &str, client_id: &str) -> Value {
        send(
            &mut self.ws,
            json!({"code": 0, "sender": to, "msg": msg, "client_id": client_id}),
        )
        .await;
        loop {
            let f = recv(&mut self.ws).await;
            match f["code"].as_i64() {
                Some(103) => return f,
                Some(0) => self.record(&f),
                _ => panic!("expected an ack, got {f}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_fail_over_and_lose_nothing() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let Some(bus) = nats().await else { return };
    let cluster = format!("natter-test-{:x}", rand_u64());
    // Strangers may be put into groups here, so that Bob and Carol are members at once.
    let adds = ["--group-adds-default", "everyone"];
    let mut a = node("node-a", &db.url, &bus, &cluster, &adds);
    let b = node("node-b", &db.url, &bus, &cluster, &adds);

    let mut alice = Peer::new(&a.server.addr, "alice@example.com").await;
    let mut carol = Peer::new(&a.server.addr, "carol@example.com").await;
    let mut bob = Peer::new(&b.server.addr, "bob@example.com").await;
    send(
        &mut alice.ws,
        json!({"code": 8, "members": [bob.ocid, carol.ocid], "name": "g"}),
    )
    .await;
    let group_id = recv_code(&mut alice.ws, 9).await["group_id"]
        .as_u64()
        .expect("group id");
    let g = Chat::Group(group_id);

    // Bob (node B) talks to the group; Alice and Carol (node A) receive.
    for i in 1..=5 {
        bob.send_ok(
            json!({"group_id": group_id}),
            &format!("g{i}"),
            &format!("bg{i}"),
        )
        .await;
    }
    alice.until(g, 5).await;
    carol.until(g, 5).await;
    // Alice (node A) writes to Bob; three are acked and received.
    let private = Chat::With(alice.ocid);
    for i in 1..=3 {
        let ack = alice
            .send_ok(
                json!({"private_id": bob.ocid}),
                &format!("p{i}"),
                &format!("ap{i}"),
            )
            .await;
        assert_eq!(ack["index"], json!(i));
    }
    bob.until(private, 3).await;
    // Three more go out unacknowledged, and node A dies mid-conversation.
    for i in 4..=6 {
        send(&mut alice.ws, json!({"code": 0, "sender": {"private_id": bob.ocid}, "msg": format!("p{i}"), "client_id": format!("ap{i}")})).await;
    }
    a.server.child.kill().expect("SIGKILL node A");
    a.server.child.wait().expect("node A exits");
    // The conversation goes on on node B meanwhile.
    for i in 6..=10 {
        bob.send_ok(
            json!({"group_id": group_id}),
            &format!("g{i}"),
            &format!("bg{i}"),
        )
        .await;
    }

    // Alice and Carol fail over to node B by token, saying what they hold.
    alice.resume(&b.server.addr).await;
    carol.resume(&b.server.addr).await;
    // Alice retries what was never acknowledged, under the same client ids: stored once.
    for i in 4..=6 {
        let ack = alice
            .send_ok(
                json!({"private_id": bob.ocid}),
                &format!("p{i}"),
                &format!("ap{i}"),
            )
            .await;
        assert_eq!(ack["index"], json!(i), "{ack}");
    }
    bob.until(private, 6).await;
    alice.until(g, 10).await;
    carol.until(g, 10).await;
    let all = |n: u64| (1..=n).collect::<Vec<_>>();
    assert_eq!(alice.got[&g], all(10));
    assert_eq!(carol.got[&g], all(10));
    assert_eq!(bob.got[&private], all(6));
    // Nothing more is pending for anyone.
    for peer in [&mut alice, &mut bob, &mut carol] {
        let extra = tokio::time::timeout(Duration::from_millis(300), peer.ws.next_event()).await;
        assert!(extra.is_err(), "unexpected frame: {extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_accounts_go_offline_for_friends_until_they_fail_over() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let Some(bus) = nats().await else { return };
    let cluster = format!("natter-test-{:x}", rand_u64());
    let quick = ["--peer-timeout-secs", "1"];
    let mut a = node("node-a", &db.url, &bus, &cluster, &quick);
    let b = node("node-b", &db.url, &bus, &cluster, &quick);
    let mut alice = Peer::new(&a.server.addr, "alice@example.com").await;
    let mut bob = Peer::new(&b.server.addr, "bob@example.com").await;
    send(&mut alice.ws, json!({"code": 111, "ocid": bob.ocid})).await;
    recv_code(&mut alice.ws, 112).await;
    recv_code(&mut bob.ws, 119).await;
    send(
        &mut bob.ws,
        json!({"code": 113, "ocid": alice.ocid, "accept": true}),
    )
    .await;
    recv_code(&mut bob.ws, 114).await;
    let p = recv_code(&mut bob.ws, 123).await;
    assert_eq!(
        (p["ocid"].clone(), p["online"].clone()),
        (json!(alice.ocid), json!(true))
    );

    // Node A dies without a word: node B gives up on it after the peer timeout.
    a.server.child.kill().expect("SIGKILL node A");
    a.server.child.wait().expect("node A exits");
    let p = recv_code(&mut bob.ws, 123).await;
    assert_eq!(
        (p["ocid"].clone(), p["online"].clone()),
        (json!(alice.ocid), json!(false)),
        "{p}"
    );
    // Alice fails over to node B: online again.
    alice.resume(&b.server.addr).await;
    let p = recv_code(&mut bob.ws, 123).await;
    assert_eq!(
        (p["ocid"].clone(), p["online"].clone()),
        (json!(alice.ocid), json!(true)),
        "{p}"
    );
    send(&mut alice.ws, json!({"code": 117})).await;
    let list = recv_code(&mut alice.ws, 118).await;
    assert_eq!(
        list["friends"],
        json!([{"ocid": bob.ocid, "since": list["friends"][0]["since"], "online": true}])
    );
}

/// Run `natter bench` with every node's URL; it must say it drove every node.
fn bench(nodes: &[&Node], dir: &Path, args: &[&str]) -> Value {
    let addrs: Vec<&str> = nodes.iter().map(|n| n.server.addr.as_str()).collect();
    common::bench(&addrs, dir, 120, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_drives_every_workload_across_two_nodes() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let Some(bus) = nats().await else { return };
    let cluster = format!("natter-test-{:x}", rand_u64());
    let unlimited = ["--rate-per-sec", "0"];
    let a = node("node-a", &db.url, &bus, &cluster, &unlimited);
    let b = node("node-b", &db.url, &bus, &cluster, &unlimited);
    let nodes = [&a, &b];
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path();

    // Connection c on node c mod 2: each node counts its half.
    let r = bench(
        &nodes,
        out,
        &[
            "idle",
            "--connections",
            "20",
            "--accounts",
            "4",
            "--hold-secs",
            "0.2",
        ],
    );
    assert_eq!(r["counts"]["connections_opened"], 20);
    assert_eq!(r["counts"]["server_connections_added"], 20);
    assert_eq!(r["counts"]["server_connections_added_node0"], 10);
    assert_eq!(r["counts"]["server_connections_added_node1"], 10);
    assert!(r["figures"]["server_rss_per_connection_bytes"].is_number());

    // Every sender on one node, its receiver on the other.
    let r = bench(&nodes, out, &["direct", "--pairs", "4", "--messages", "50"]);
    assert_eq!(r["counts"]["messages_acked"], 200);
    assert_eq!(r["counts"]["deliveries_received"], 200);
    assert_eq!(r["counts"]["lost"], 0);
    assert_eq!(r["counts"]["duplicated_or_out_of_order"], 0);
    assert_eq!(r["counts"]["foreign_frames"], 0);

    // Members (and the two senders) alternate between the nodes.
    let r = bench(
        &nodes,
        out,
        &[
            "group",
            "--members",
            "8",
            "--senders",
            "2",
            "--messages",
            "20",
        ],
    );
    assert_eq!(r["counts"]["messages_acked"], 40);
    assert_eq!(r["counts"]["deliveries_expected"], 280);
    assert_eq!(r["counts"]["deliveries_received"], 280);
    assert_eq!(r["counts"]["lost"], 0);
    assert_eq!(r["counts"]["duplicated_or_out_of_order"], 0);

    // Sent on node A, caught up on node B.
    let r = bench(&nodes, out, &["catchup", "--messages", "200"]);
    assert_eq!(r["counts"]["received"], 200);
    assert_eq!(r["counts"]["pushed_before_sync_done"], 200);
    assert_eq!(r["counts"]["lost"], 0);
    assert_eq!(r["counts"]["duplicated_or_out_of_order"], 0);

    // Every reconnect on the other node than the connection's last.
    let r = bench(
        &nodes,
        out,
        &[
            "resume",
            "--connections",
            "20",
            "--rounds",
            "3",
            "--accounts",
            "5",
        ],
    );
    assert_eq!(r["counts"]["reconnects"], 60);
    assert_eq!(r["counts"]["errors"], 0);
}
