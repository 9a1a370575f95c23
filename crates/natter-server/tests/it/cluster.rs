//! Two nodes in one process sharing a PostgreSQL database and a NATS bus: clients on
//! different nodes chat (v1 and v0), a token from one node resumes on the other, and a bus
//! outage loses nothing. Runs when PostgreSQL and NATS are reachable; fails when `CI=true`
//! and they are not.

use crate::common::services::{TestDb, nats, rand_u64};
use crate::common::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A database and `n` nodes on it, all on one bus under a cluster name of their own.
pub(crate) async fn cluster(n: usize, bus: Option<String>) -> Option<(TestDb, Vec<TestServer>)> {
    cluster_with(n, bus, |_| {}).await
}

/// The same, each node's configuration first adjusted by `tweak`.
async fn cluster_with(
    n: usize,
    bus: Option<String>,
    tweak: impl Fn(&mut natter_server::Config) + Clone + Send + 'static,
) -> Option<(TestDb, Vec<TestServer>)> {
    let db = TestDb::create().await?;
    let bus = match bus {
        Some(b) => b,
        None => nats().await?,
    };
    let name = format!("natter-test-{:x}", rand_u64());
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(cluster_node_with(&db, &bus, &name, i, tweak.clone()).await);
    }
    Some((db, nodes))
}

/// Node `i` of the cluster `name`, once it answers.
async fn cluster_node(db: &TestDb, bus: &str, name: &str, i: usize) -> TestServer {
    cluster_node_with(db, bus, name, i, |_| {}).await
}

async fn cluster_node_with(
    db: &TestDb,
    bus: &str,
    name: &str,
    i: usize,
    tweak: impl FnOnce(&mut natter_server::Config),
) -> TestServer {
    let (url, bus, name) = (db.url.clone(), bus.to_owned(), name.to_owned());
    let node = TestServer::start_with(move |c| {
        c.store_url = Some(url);
        c.store_pool = 4;
        c.bus_url = Some(bus);
        c.cluster = name;
        c.node_id = format!("node-{i}");
        c.peer_timeout = Duration::from_secs(2);
        tweak(c);
    })
    .await;
    node.v1().await.close().await;
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_nodes_chat_privately_and_in_groups() {
    let Some((_db, nodes)) = cluster(2, None).await else {
        return;
    };
    let (a_node, b_node) = (&nodes[0], &nodes[1]);
    let mut alice = user_v1(a_node, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(b_node, "bob@example.com", "Bob", "pw-b").await;
    // Carol speaks v0 on node B.
    let mut carol = b_node.v0().await;
    let carol_ocid = register_v0(&mut carol, "carol@example.com", "pw-c").await;
    login_v0(&mut carol, &json!(carol_ocid), "pw-c").await;
    let carol_id: u64 = carol_ocid.parse().expect("numeric ocid");

    // Private: A -> B and back, indexes shared through the one database.
    let ack = send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "hi bob").await;
    assert_eq!(ack["index"], json!(1));
    let got = bob.client.expect_code(0).await;
    assert_eq!(got["msg"], json!("hi bob"));
    assert_eq!(
        got["sender"],
        json!({"ocid": alice.ocid, "private_id": bob.ocid})
    );
    assert_eq!(
        (got["cid"].clone(), got["index"].clone()),
        (ack["cid"].clone(), json!(1))
    );
    let ack = send_v1(
        &mut bob.client,
        json!({"private_id": alice.ocid}),
        "hi alice",
    )
    .await;
    assert_eq!(ack["index"], json!(2));
    let got = alice.client.expect_code(0).await;
    assert_eq!(
        (got["msg"].clone(), got["index"].clone()),
        (json!("hi alice"), json!(2))
    );

    // A group made on A, with members on both nodes.
    let r = alice
        .client
        .request(
            &json!({"code": 8, "members": [bob.ocid, carol_id], "name": "both"}),
            9,
        )
        .await;
    assert_eq!(r["success"], json!(true), "{r}");
    let g = int(&r["group_id"]);
    for i in 1..=5u64 {
        let text = format!("group {i}");
        let ack = send_v1(&mut alice.client, json!({"group_id": g}), &text).await;
        assert_eq!(ack["index"], json!(i));
        let b = bob.client.expect_code(0).await;
        assert_eq!(
            (b["msg"].clone(), b["index"].clone()),
            (json!(text), json!(i))
        );
        let c = carol.expect_code(0).await;
        assert_eq!(c["data"]["msg"], json!(text));
        assert_eq!(
            (c["data"]["cid"].clone(), c["data"]["index"].clone()),
            (json!(g), json!(i))
        );
        assert_eq!(c["data"]["sender_id"], json!(alice.ocid.to_string()));
    }
    // v0 on B into the group: alice on A and bob on B get it.
    let ack = send_v0(
        &mut carol,
        json!({"cid": g, "sender_id": carol_ocid, "msg": "from v0"}),
    )
    .await;
    assert_eq!(ack["data"]["index"], json!(6));
    let a = alice.client.expect_code(0).await;
    assert_eq!(
        (a["msg"].clone(), a["index"].clone()),
        (json!("from v0"), json!(6))
    );
    assert_eq!(bob.client.expect_code(0).await["index"], json!(6));

    // Alice's second device, on the other node, gets what her first device sends; the
    // sending device gets only its ack.
    let mut alice2 = b_node.v1().await;
    let resumed = resume_v1(&mut alice2, &alice.token).await;
    assert_eq!(resumed.ocid, alice.ocid);
    send_v1(&mut alice.client, json!({"group_id": g}), "two devices").await;
    let own = alice2.expect_code(0).await;
    assert_eq!(
        (own["msg"].clone(), own["index"].clone()),
        (json!("two devices"), json!(7))
    );
    assert_eq!(bob.client.expect_code(0).await["index"], json!(7));
    assert_eq!(carol.expect_code(0).await["data"]["index"], json!(7));
    alice.client.expect_silence(300).await;
    bob.client.expect_silence(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_node_resumes_on_the_other_with_what_was_missed() {
    let Some((_db, nodes)) = cluster(2, None).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[0], "bob@example.com", "Bob", "pw-b").await;
    let bob_token = bob.token.clone();
    send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "seen").await;
    assert_eq!(bob.client.expect_code(0).await["index"], json!(1));
    bob.client.close().await;
    for i in 2..=4 {
        send_v1(
            &mut alice.client,
            json!({"private_id": bob.ocid}),
            &format!("missed {i}"),
        )
        .await;
    }
    // Bob comes back on the other node with his token.
    let mut bob2 = nodes[1].v1().await;
    let resumed = resume_v1(&mut bob2, &bob_token).await;
    assert_eq!(resumed.ocid, bob.ocid);
    let indexes: Vec<Value> = resumed.missed.iter().map(|m| m["index"].clone()).collect();
    assert_eq!(indexes, [json!(2), json!(3), json!(4)]);
    assert_eq!(resumed.missed[0]["msg"], json!("missed 2"));
    // And the conversation carries on across nodes.
    send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "live").await;
    assert_eq!(bob2.expect_code(0).await["index"], json!(5));
    // A token revoked on one node is refused on the other.
    bob2.request(&json!({"code": 109}), 110).await;
    let mut again = nodes[0].v1().await;
    let r = again
        .request(&json!({"code": 101, "token": bob_token}), 102)
        .await;
    assert_eq!(r["state"], json!(1), "{r}");
}

/// The next frame with `code`, passing over others.
async fn next_code(c: &mut Client, code: i64) -> Value {
    loop {
        let f = c.recv().await;
        if f["code"] == json!(code) {
            return f;
        }
    }
}

/// A change of a group's members made through one node is seen by the other at once: a member
/// who joined there is delivered to here, one removed here can no longer post there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_changed_on_one_node_are_seen_on_the_other() {
    let Some((_db, nodes)) = cluster(2, None).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;
    let mut dave_a = user_v1(&nodes[0], "dave@example.com", "Dave", "pw-d").await;
    let mut dave_b = nodes[1].v1().await;
    login_v1(&mut dave_b, "dave@example.com", "pw-d").await;

    let group = create_group_v1(&mut alice.client, &[bob.ocid]).await;
    alice
        .client
        .request(
            &json!({"code": 152, "group_id": group, "join_mode": 0}),
            153,
        )
        .await;
    // Both nodes cache the group's members: one message through each.
    let post = |msg: &str| json!({"code": 0, "sender": {"group_id": group}, "msg": msg});
    bob.client.send_json(&post("from b")).await;
    next_code(&mut bob.client, 103).await;
    alice.client.send_json(&post("from a")).await;
    next_code(&mut alice.client, 103).await;

    // Dave joins through node B; node A delivers to him from then on.
    let r = dave_b
        .request(&json!({"code": 154, "group_id": group}), 155)
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    let joined = next_code(&mut dave_a.client, 0).await;
    assert_eq!(
        joined["type"],
        json!(0),
        "the join's system message: {joined}"
    );
    bob.client.send_json(&post("welcome")).await;
    next_code(&mut bob.client, 103).await;
    let m = next_code(&mut dave_a.client, 0).await;
    assert_eq!(m["msg"], json!("welcome"), "{m}");

    // Alice removes him through node A; node B refuses his posts from then on.
    alice
        .client
        .send_json(&json!({"code": 168, "group_id": group, "ocid": dave_a.ocid}))
        .await;
    next_code(&mut alice.client, 169).await;
    let removed = next_code(&mut dave_b, 183).await;
    assert_eq!(removed["group_id"], json!(group), "{removed}");
    dave_b.send_json(&post("still here?")).await;
    let r = next_code(&mut dave_b, 100).await;
    assert_error(&r, "not_a_member", 4002, json!(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_presence_and_typing_cross_nodes() {
    let Some((db, nodes)) = cluster(2, None).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;

    // A request from node 0 is pushed on node 1, and the answer comes back.
    let r = alice
        .client
        .request(&json!({"code": 111, "ocid": bob.ocid, "msg": "hello"}), 112)
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    let push = bob.client.expect_code(119).await;
    assert_eq!(
        (push["ocid"].clone(), push["msg"].clone()),
        (json!(alice.ocid), json!("hello"))
    );
    bob.client
        .request(
            &json!({"code": 113, "ocid": alice.ocid, "accept": true}),
            114,
        )
        .await;
    let update = alice.client.expect_code(120).await;
    assert_eq!(
        (update["ocid"].clone(), update["state"].clone()),
        (json!(bob.ocid), json!("accepted"))
    );
    // Each node knows the other's account is online.
    expect_presence(&mut alice.client, bob.ocid, true).await;
    expect_presence(&mut bob.client, alice.ocid, true).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"][0]["online"], json!(true), "{list}");

    // Typing crosses nodes.
    alice
        .client
        .send_json(&json!({"code": 121, "private_id": bob.ocid}))
        .await;
    let t = bob.client.expect_code(122).await;
    assert_eq!(
        t["sender"],
        json!({"ocid": alice.ocid, "private_id": bob.ocid})
    );

    // Bob leaves node 1: Alice on node 0 is told; he comes back on node 0: told again.
    bob.client.close().await;
    expect_presence(&mut alice.client, bob.ocid, false).await;
    let mut bob2 = nodes[0].v1().await;
    resume_v1(&mut bob2, &bob.token).await;
    expect_presence(&mut alice.client, bob.ocid, true).await;
    // A second connection on the other node changes nothing.
    let mut bob3 = nodes[1].v1().await;
    resume_v1(&mut bob3, &bob.token).await;
    alice.client.expect_silence(300).await;

    // A node that joins later learns who is online from the others.
    let name = nodes[0].config.cluster.clone();
    let bus = nodes[0].config.bus_url.clone().expect("bus");
    let late = cluster_node(&db, &bus, &name, 2).await;
    let mut alice2 = late.v1().await;
    resume_v1(&mut alice2, &alice.token).await;
    let mut online = json!(null);
    for _ in 0..50 {
        let list = alice2.request(&json!({"code": 117}), 118).await;
        online = list["friends"][0]["online"].clone();
        if online == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        online,
        json!(true),
        "the late node never heard that Bob is online"
    );

    // Removal crosses nodes too, and ends the presence pushes.
    bob2.request(&json!({"code": 115, "ocid": alice.ocid}), 116)
        .await;
    for c in [&mut alice.client, &mut alice2, &mut bob3] {
        let update = c.expect_code(120).await;
        assert_eq!(update["state"], json!("removed"), "{update}");
    }
    bob2.close().await;
    bob3.close().await;
    alice.client.expect_silence(300).await;
    alice2.expect_silence(0).await;
}

/// A client that fails over to another node within the presence grace never went offline:
/// its friend on a third node is told nothing. Then it leaves for good: offline, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_within_the_grace_tells_friends_nothing() {
    let grace = Duration::from_millis(1500);
    let Some((_db, nodes)) = cluster_with(3, None, move |c| c.presence_grace = grace).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;
    befriend_v1(&mut alice, &mut bob).await;

    // Bob's node-1 connection drops; he is back on node 2 at once.
    bob.client.close().await;
    let mut bob2 = nodes[2].v1().await;
    resume_v1(&mut bob2, &bob.token).await;
    alice.client.expect_silence(2500).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"][0]["online"], json!(true), "{list}");

    bob2.close().await;
    expect_presence(&mut alice.client, bob.ocid, false).await;
    alice.client.expect_silence(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_accounts_go_offline_for_friends_elsewhere() {
    let Some((_db, mut nodes)) = cluster(2, None).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;
    befriend_v1(&mut alice, &mut bob).await;
    // Node 1 goes away (its last words may or may not reach the bus; the peer timeout of
    // 2 s settles it either way).
    nodes[1].stop().await;
    let p = alice
        .client
        .recv_within(Duration::from_secs(8))
        .await
        .expect("Bob's node went away: Alice is told he is offline");
    assert_eq!(
        (p["code"].clone(), p["ocid"].clone(), p["online"].clone()),
        (json!(123), json!(bob.ocid), json!(false)),
        "{p}"
    );
}

/// A NATS server of this test's own, so it can be stopped and started again.
pub(crate) struct OwnNats {
    child: Child,
    port: u16,
}

impl OwnNats {
    pub(crate) fn start(port: u16) -> Self {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed to run the bus outage test");
        Self { child, port }
    }

    pub(crate) async fn wait_ready(&self) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_the_bus_is_down_arrive_in_order_when_it_returns() {
    // The shared NATS must be reachable for this test to count as runnable at all.
    if nats().await.is_none() {
        return;
    }
    let port = free_port();
    let mut bus = OwnNats::start(port);
    bus.wait_ready().await;
    let Some((_db, nodes)) = cluster(2, Some(format!("nats://127.0.0.1:{port}"))).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;
    send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "before").await;
    assert_eq!(bob.client.expect_code(0).await["index"], json!(1));

    bus.stop();
    // Still stored and acked while the bus is away.
    for i in 2..=6u64 {
        let ack = send_v1(
            &mut alice.client,
            json!({"private_id": bob.ocid}),
            &format!("during {i}"),
        )
        .await;
        assert_eq!(ack["index"], json!(i));
    }
    let mut bus = OwnNats::start(port);
    bus.wait_ready().await;
    // The nodes reconnect and every connection resyncs by index: each message once, in order.
    let mut got = Vec::new();
    while got.len() < 5 {
        let f = bob
            .client
            .recv_within(Duration::from_secs(20))
            .await
            .expect("missed messages arrive after the bus returns");
        assert_eq!(f["code"], json!(0), "{f}");
        got.push(int(&f["index"]));
    }
    assert_eq!(got, [2, 3, 4, 5, 6]);
    // Live delivery works again.
    let mut live = None;
    for _ in 0..50 {
        send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "after").await;
        if let Some(f) = bob.client.recv_within(Duration::from_millis(200)).await {
            live = Some(f);
            break;
        }
    }
    let f = live.expect("live delivery resumes");
    assert!(int(&f["index"]) >= 7, "{f}");
    bus.stop();
}

/// The next frame, which must be a presence push (code 123) about `ocid` within `wait`; returns
/// its `online`.
async fn next_presence(c: &mut Client, ocid: u64, wait: Duration) -> bool {
    let f = c
        .recv_within(wait)
        .await
        .unwrap_or_else(|| panic!("no presence push about {ocid} within {wait:?}"));
    assert_eq!(
        (f["code"].clone(), f["ocid"].clone()),
        (json!(123), json!(ocid)),
        "expected a presence push, got {f}"
    );
    f["online"].as_bool().expect("online is a bool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_offline_in_a_bus_outage_and_comes_back_with_it() {
    if nats().await.is_none() {
        return;
    }
    let port = free_port();
    let mut bus = OwnNats::start(port);
    bus.wait_ready().await;
    let Some((_db, nodes)) = cluster(2, Some(format!("nats://127.0.0.1:{port}"))).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;
    befriend_v1(&mut alice, &mut bob).await;

    // Without the bus, each node gives up on the other after the peer timeout (2 s here).
    bus.stop();
    let wait = Duration::from_secs(10);
    assert!(!next_presence(&mut alice.client, bob.ocid, wait).await);
    assert!(!next_presence(&mut bob.client, alice.ocid, wait).await);
    // When it returns, the nodes exchange their lists and both are online again.
    let mut bus = OwnNats::start(port);
    bus.wait_ready().await;
    let wait = Duration::from_secs(20);
    assert!(next_presence(&mut alice.client, bob.ocid, wait).await);
    assert!(next_presence(&mut bob.client, alice.ocid, wait).await);
    alice.client.expect_silence(500).await;
    bus.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_uploaded_through_one_node_are_resumed_and_served_by_the_other() {
    use crate::files::{bearer, create, get, patch, png, send_file};
    let shared = tempfile::tempdir().expect("a shared files directory");
    let files_dir = shared.path().to_path_buf();
    let Some((_db, nodes)) = cluster_with(2, None, move |c| {
        c.files_dir = Some(files_dir.clone());
    })
    .await
    else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut alice = user_v1(a, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(b, "bob@example.com", "Bob", "pw-b").await;

    // Begun on one node, resumed on the other.
    let image = png(320, 200, 5_000);
    let path = create(a.addr, &alice.token, image.len(), "photo.png", "image/png").await;
    assert_eq!(
        patch(a.addr, &alice.token, &path, 0, &image[..2_000])
            .await
            .status,
        204
    );
    let auth = bearer(&alice.token);
    let head = crate::common::http::request(
        b.addr,
        "HEAD",
        &path,
        &[("Tus-Resumable", "1.0.0"), ("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(head.header("upload-offset"), Some("2000"), "{head:?}");
    let r = patch(b.addr, &alice.token, &path, 2_000, &image[2_000..]).await;
    assert_eq!(r.status, 204, "{r:?}");
    let id = path.trim_start_matches("/files/").to_owned();

    // Sent through node A, delivered and served on node B.
    let ack = send_file(
        &mut alice.client,
        json!({"private_id": bob.ocid}),
        2,
        json!({"id": id}),
        "",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");
    let got = bob.client.expect_code(2).await;
    assert_eq!(got["file"]["width"], json!(320), "{got}");
    let r = get(b.addr, &path, &[("Authorization", &bearer(&bob.token))]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, image);
    // A link signed by one node is honoured by the other.
    let r = get(a.addr, &format!("{path}/link"), &[("Authorization", &auth)]).await;
    let url = r.json()["url"].as_str().expect("url").to_owned();
    let r = get(b.addr, &url, &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
}
