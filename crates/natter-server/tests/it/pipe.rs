//! The pipe dialect (seed 004) over TCP: raw lines written and read for every command and
//! error reason, the pushes, the unread flow after login, chunked files, escaping, limits,
//! TLS on its port, and a pipe client chatting with an OurChat v1 client.

use crate::common::http::request;
use crate::common::{TestServer, User, expect_presence, frame, int, login_v1, user_v1};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use natter_client::ourchat::v1;
use natter_client::pipe::{self, Conn};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpStream;

type Fields = Vec<String>;

/// How long a test waits for a line.
const WAIT: Duration = Duration::from_secs(5);

async fn connect(server: &TestServer) -> Conn<TcpStream> {
    Conn::connect(server.pipe)
        .await
        .expect("connect to the pipe port")
}

/// The next line's fields, within [`WAIT`].
async fn next<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(c: &mut Conn<S>) -> Fields {
    c.recv_within(WAIT)
        .await
        .expect("a readable line")
        .expect("a line within 5 s")
}

/// The next line must be exactly `want`.
async fn expect<S: tokio::io::AsyncRead + tokio::io::AsyncWrite>(c: &mut Conn<S>, want: &[&str]) {
    let got = next(c).await;
    assert_eq!(got, want, "expected {}", want.join("|"));
}

/// Send a command and expect exactly `want` back.
async fn exchange(c: &mut Conn<TcpStream>, command: &str, fields: &[&str], want: &[&str]) {
    c.send(command, fields).await.expect("send");
    expect(c, want).await;
}

/// The next `n` lines, in whatever order they came.
async fn lines(c: &mut Conn<TcpStream>, n: usize) -> Vec<Fields> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(c).await);
    }
    out
}

/// Nothing arrives for a little while.
async fn silence(c: &mut Conn<TcpStream>) {
    let got = c
        .recv_within(Duration::from_millis(300))
        .await
        .expect("readable");
    assert_eq!(got, None, "expected nothing");
}

/// A pipe account, registered and logged in on its own connection.
pub(crate) struct P {
    conn: Conn<TcpStream>,
    pub(crate) uid: u64,
    pub(crate) id: String,
    pub(crate) token: String,
}

impl P {
    pub(crate) async fn new(server: &TestServer, username: &str) -> Self {
        let mut conn = connect(server).await;
        let uid = pipe::register(&mut conn, username, &md5ish(username), username)
            .await
            .expect("registered");
        let (client, count) = pipe::Client::login(conn, username, &md5ish(username))
            .await
            .expect("logged in");
        assert_eq!(count, 0);
        assert_eq!(client.uid, uid);
        Self {
            conn: client.conn,
            uid,
            id: uid.to_string(),
            token: client.token,
        }
    }

    /// Send a line and read the reply.
    /// The next line.
    pub(crate) async fn next_line(&mut self) -> Fields {
        next(&mut self.conn).await
    }

    pub(crate) async fn ask(&mut self, command: &str, fields: &[&str]) -> Fields {
        self.conn.send(command, fields).await.expect("send");
        next(&mut self.conn).await
    }

    async fn expect(&mut self, want: &[&str]) {
        expect(&mut self.conn, want).await;
    }

    /// A text to an account or group; the message id.
    pub(crate) async fn say(&mut self, group: bool, to: u64, text: &str) -> u64 {
        let (id, token) = (self.id.clone(), self.token.clone());
        let kind = if group { "1" } else { "0" };
        let to = to.to_string();
        let r = self
            .ask("send_message", &[kind, &id, &to, "0", text, &token])
            .await;
        assert_eq!(r[..2], ["send_message_succ", "发送成功！"], "{r:?}");
        r[2].parse().expect("a message id")
    }

    /// The next line, which must be a message.
    pub(crate) async fn message(&mut self) -> pipe::Pushed {
        let f = next(&mut self.conn).await;
        pipe::message(&f).unwrap_or_else(|| panic!("not a message line: {f:?}"))
    }
}

/// What a seed client sends as its password: a hex digest (any text is the secret to natter).
fn md5ish(user: &str) -> String {
    format!("{:0>32}", user.len())
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A PNG header of 2 by 3 pixels with some bytes after it.
fn png() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(&2u32.to_be_bytes());
    b.extend_from_slice(&3u32.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0]);
    b.extend((0..300u32).map(|i| (i % 251) as u8));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_profiles() {
    let server = TestServer::start().await;
    let mut c = connect(&server).await;
    let pw = md5ish("alice");
    c.send(
        "register",
        &[
            "alice",
            &pw,
            "Alice",
            "7",
            "hello | world",
            "2",
            "Blue",
            "1",
        ],
    )
    .await
    .expect("send");
    let r = next(&mut c).await;
    assert_eq!(r[..2], ["register_succ", "注册成功！"], "{r:?}");
    let alice: u64 = r[2].parse().expect("the new uid");
    for (fields, reason) in [
        (
            ["alice", "x", "A", "1", "", "1", "a", "0"],
            "username_taken",
        ),
        (["9lives", "x", "A", "1", "", "1", "a", "0"], "bad_username"),
        (["carol", "", "A", "1", "", "1", "a", "0"], "bad_password"),
        (["carol", "x", "A", "1", "", "1", "a", "2"], "bad_field"),
        (["carol", "x", "A", "1", "", "1", "", "0"], "bad_field"),
    ] {
        exchange(&mut c, "register", &fields, &["register_error", reason]).await;
    }
    exchange(
        &mut c,
        "register",
        &["carol"],
        &["register_error", "field_count"],
    )
    .await;
    // The refused registrations made no account.
    exchange(
        &mut c,
        "login",
        &["carol", "x"],
        &["login_error", "bad_credentials"],
    )
    .await;
    exchange(
        &mut c,
        "login",
        &["alice", "wrong"],
        &["login_error", "bad_credentials"],
    )
    .await;
    c.send("login", &["alice", &pw]).await.expect("send");
    let r = next(&mut c).await;
    assert_eq!(r.len(), 5, "{r:?}");
    assert_eq!(r[..3], ["login_succ", "登录成功！", &alice.to_string()]);
    assert_eq!(r[4], "0", "nothing unread");
    let token = r[3].clone();
    let me = alice.to_string();
    exchange(
        &mut c,
        "get_user_info",
        &[&me, &me, &token],
        &["userinfo", "Alice", "7", "hello | world"],
    )
    .await;
    exchange(
        &mut c,
        "update_profile",
        &[&me, &token, "Alice B", "9", "new\nline", "", ""],
        &["update_profile_succ", "修改成功！"],
    )
    .await;
    exchange(
        &mut c,
        "get_user_info",
        &[&me, &me, &token],
        &["userinfo", "Alice B", "9", "new\nline"],
    )
    .await;
    exchange(
        &mut c,
        "update_profile",
        &[&me, &token, "", "", "", "3", ""],
        &["update_profile_error", "bad_field"],
    )
    .await;
    exchange(
        &mut c,
        "update_profile",
        &[&me, &token, &"n".repeat(65), "", "", "", ""],
        &["update_profile_error", "bad_nickname"],
    )
    .await;
    let mut bob = P::new(&server, "bob").await;
    let (b, bt) = (bob.id.clone(), bob.token.clone());
    assert_eq!(
        bob.ask("get_user_info", &[&b, &me, &bt]).await,
        ["friend_detail_info", "Alice B", "9", "new\nline"]
    );
    assert_eq!(
        bob.ask("get_user_info", &[&b, "99999", &bt]).await,
        ["get_user_info_error", "no_such_account"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_by_the_security_answer() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let mut c = connect(&server).await;
    // `P::new` registers with question 1 and answer "blue".
    for (q, a) in [("2", "blue"), ("1", "green")] {
        exchange(
            &mut c,
            "forget_passwd",
            &["alice", q, a, "new-pw"],
            &["up_pass_error", "wrong_answer"],
        )
        .await;
    }
    exchange(
        &mut c,
        "forget_passwd",
        &["nobody", "1", "blue", "new-pw"],
        &["up_pass_error", "no_security_question"],
    )
    .await;
    exchange(
        &mut c,
        "forget_passwd",
        &["alice", "1", " BLUE ", "new-pw"],
        &["up_pass_succ", "修改成功！"],
    )
    .await;
    // The reset ends every login: the open connection is told and closed.
    alice.expect(&["error", "login_ended"]).await;
    assert_eq!(alice.conn.recv_line().await.expect("read"), None);
    exchange(
        &mut c,
        "login",
        &["alice", &md5ish("alice")],
        &["login_error", "bad_credentials"],
    )
    .await;
    c.send("login", &["alice", "new-pw"]).await.expect("send");
    assert_eq!(next(&mut c).await[0], "login_succ");
    // A question changed by update_profile is the one a reset asks for.
    let me = alice.id.clone();
    let token = {
        c.send("login", &["alice", "new-pw"]).await.expect("send");
        next(&mut c).await[3].clone()
    };
    exchange(
        &mut c,
        "update_profile",
        &[&me, &token, "", "", "", "5", "Paris"],
        &["update_profile_succ", "修改成功！"],
    )
    .await;
    exchange(
        &mut c,
        "forget_passwd",
        &["alice", "5", "paris", "third-pw"],
        &["up_pass_succ", "修改成功！"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_on_every_command() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let bob = P::new(&server, "bob").await;
    let (a, at, b, bt) = (
        alice.id.clone(),
        alice.token.clone(),
        bob.id.clone(),
        bob.token.clone(),
    );
    // Another account's uid, another account's token, no token at all.
    for (uid, token) in [
        (b.as_str(), at.as_str()),
        (a.as_str(), bt.as_str()),
        (&a, "nope"),
    ] {
        for (command, fields) in [
            ("get_user_friend", vec![uid, token]),
            ("get_user_group", vec![uid, token]),
            ("get_user_info", vec![uid, uid, token]),
            ("get_group_info", vec![uid, "1", token]),
            ("add_friend", vec![uid, "10001", "hi", token]),
            ("del_friend", vec![uid, "10001", token]),
            ("hand_friend_request", vec![uid, "10001", "1", token]),
            ("create_group", vec![uid, "g", token]),
            ("join_group", vec![uid, "1", "hi", token]),
            ("send_message", vec!["0", uid, "10001", "0", "hi", token]),
            (
                "send_file",
                vec!["1", uid, "10001", "0", "t", "QQ==", token],
            ),
            ("update_profile", vec![uid, token, "n", "1", "s", "", ""]),
            ("file", vec![uid, "h", "1", "n", "1", "10001", token]),
            ("get_file", vec![uid, "x", token]),
        ] {
            let r = alice.ask(command, &fields).await;
            let name = format!("{command}_error");
            assert_eq!(
                r,
                [name.as_str(), "bad_token"],
                "{command} as {uid} with {token}"
            );
        }
    }
    let r = alice.ask("hand_group_request", &[&b, "1", "1", &bt]).await;
    assert_eq!(r, ["hand_group_request_error", "bad_token"]);
    // A connection that is not logged in: the unread commands need a login...
    let mut c = connect(&server).await;
    for command in [
        "get_unread_message",
        "get_unread_friend_request",
        "get_unread_group_request",
    ] {
        let name = format!("{command}_error");
        exchange(&mut c, command, &[""], &[&name, "not_logged_in"]).await;
    }
    // ... and a valid token logs it in.
    exchange(&mut c, "get_user_friend", &[&b, &bt], &["friendinfo", "0"]).await;
    c.send("get_unread_message", &[""]).await.expect("send");
    silence(&mut c).await;
    exchange(
        &mut c,
        "get_unread_friend_request",
        &[""],
        &["friend_request", "0"],
    )
    .await;
    // Logged in as bob, it cannot act as alice even with her token.
    exchange(
        &mut c,
        "get_user_friend",
        &[&a, &at],
        &["get_user_friend_error", "bad_token"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_requests_and_their_pushes() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let mut bob = P::new(&server, "bob").await;
    let (a, at, b, bt) = (
        alice.id.clone(),
        alice.token.clone(),
        bob.id.clone(),
        bob.token.clone(),
    );
    assert_eq!(
        alice.ask("add_friend", &[&a, &a, "me", &at]).await,
        ["add_friend_error", "self"]
    );
    assert_eq!(
        alice.ask("add_friend", &[&a, "99999", "hi", &at]).await,
        ["add_friend_error", "no_such_account"]
    );
    assert_eq!(
        alice.ask("add_friend", &[&a, &b, "hi | bob", &at]).await,
        ["add_friend_succ", "已发送请求！"]
    );
    // Bob, online, is told at once, and finds it among his unread requests.
    bob.expect(&["friend_request", "1", &a, "hi | bob"]).await;
    assert_eq!(
        bob.ask("get_unread_friend_request", &[""]).await,
        ["friend_request", "1", &a, "hi | bob"]
    );
    assert_eq!(
        bob.ask("hand_friend_request", &[&b, "99999", "1", &bt])
            .await,
        ["hand_friend_request_error", "no_such_request"]
    );
    assert_eq!(
        bob.ask("hand_friend_request", &[&b, &a, "1", &bt]).await,
        ["hand_friend_request_succ", "同意请求！"]
    );
    assert_eq!(
        bob.ask("get_unread_friend_request", &[""]).await,
        ["friend_request", "0"]
    );
    assert_eq!(
        alice.ask("get_user_friend", &[&a, &at]).await,
        ["friendinfo", "1", &b]
    );
    assert_eq!(
        bob.ask("get_user_friend", &[&b, &bt]).await,
        ["friendinfo", "1", &a]
    );
    assert_eq!(
        alice.ask("del_friend", &[&a, &b, &at]).await,
        ["del_friend_succ", "删除成功！"]
    );
    assert_eq!(
        alice.ask("del_friend", &[&a, &b, &at]).await,
        ["del_friend_error", "not_friends"]
    );
    assert_eq!(
        alice.ask("get_user_friend", &[&a, &at]).await,
        ["friendinfo", "0"]
    );
    // A rejected request.
    alice.ask("add_friend", &[&a, &b, "again", &at]).await;
    bob.expect(&["friend_request", "1", &a, "again"]).await;
    assert_eq!(
        bob.ask("hand_friend_request", &[&b, &a, "0", &bt]).await,
        ["hand_friend_request_succ", "拒绝请求！"]
    );
    assert_eq!(
        bob.ask("get_user_friend", &[&b, &bt]).await,
        ["friendinfo", "0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_join_requests_and_their_pushes() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let mut bob = P::new(&server, "bob").await;
    let (a, at, b, bt) = (
        alice.id.clone(),
        alice.token.clone(),
        bob.id.clone(),
        bob.token.clone(),
    );
    let r = alice.ask("create_group", &[&a, "the | club", &at]).await;
    assert_eq!(
        (r[0].as_str(), r[2].as_str()),
        ("create_group_succ", "群组创建成功！")
    );
    let g = r[1].clone();
    assert_eq!(
        alice
            .ask("create_group", &[&a, &"x".repeat(129), &at])
            .await,
        ["create_group_error", "too_long"]
    );
    assert_eq!(
        alice.ask("get_user_group", &[&a, &at]).await,
        ["groupinfo", "1", &g]
    );
    assert_eq!(
        bob.ask("get_group_info", &[&b, &g, &bt]).await,
        ["get_group_info_error", "not_a_member"]
    );
    assert_eq!(
        bob.ask("get_group_info", &[&b, "9999", &bt]).await,
        ["get_group_info_error", "no_such_group"]
    );
    assert_eq!(
        bob.ask("join_group", &[&b, "9999", "hi", &bt]).await,
        ["join_group_error", "no_such_group"]
    );
    assert_eq!(
        bob.ask("join_group", &[&b, &g, "let me in", &bt]).await,
        ["join_group_succ", "已发送请求！"]
    );
    alice
        .expect(&["group_request", "1", &b, &g, "let me in"])
        .await;
    assert_eq!(
        alice.ask("get_unread_group_request", &[""]).await,
        ["group_request", "1", &b, &g, "let me in"]
    );
    // Only an admin answers.
    assert_eq!(
        bob.ask("hand_group_request", &[&b, &g, "1", &bt]).await,
        ["hand_group_request_error", "not_a_member"]
    );
    assert_eq!(
        alice.ask("hand_group_request", &[&a, &g, "1", &at]).await,
        ["hand_group_request_error", "no_such_request"]
    );
    alice
        .conn
        .send("hand_group_request", &[&b, &g, "1", &at])
        .await
        .expect("send");
    // The answer, and the join's system message (in either order).
    let got = lines(&mut alice.conn, 2).await;
    assert!(
        got.iter()
            .any(|l| l[..] == ["hand_group_request_succ", "同意请求！"]),
        "{got:?}"
    );
    let joined = got
        .iter()
        .find_map(|l| pipe::message(l))
        .expect("the join's message");
    assert_eq!(
        joined.message.chat,
        natter_client::Chat::Group(g.parse().expect("id"))
    );
    assert_eq!(joined.message.sender, bob.uid);
    assert_eq!(bob.message().await.message.id, joined.message.id);
    assert_eq!(
        bob.ask("get_group_info", &[&b, &g, &bt]).await,
        ["groupinfo", &g, "the | club", "2", &a, &a, &b]
    );
    assert_eq!(
        bob.ask("join_group", &[&b, &g, "again", &bt]).await,
        ["join_group_error", "already_member"]
    );
    assert_eq!(
        alice.ask("get_unread_group_request", &[""]).await,
        ["group_request", "0"]
    );
    // A rejected request.
    let mut carol = P::new(&server, "carol").await;
    let (c, ct) = (carol.id.clone(), carol.token.clone());
    carol.ask("join_group", &[&c, &g, "me too", &ct]).await;
    alice
        .expect(&["group_request", "1", &c, &g, "me too"])
        .await;
    assert_eq!(
        bob.ask("hand_group_request", &[&c, &g, "1", &bt]).await,
        ["hand_group_request_error", "forbidden"]
    );
    assert_eq!(
        alice.ask("hand_group_request", &[&c, &g, "0", &at]).await,
        ["hand_group_request_succ", "拒绝请求！"]
    );
    assert_eq!(
        carol.ask("get_user_group", &[&c, &ct]).await,
        ["groupinfo", "0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_private_and_group_with_escaping() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let mut bob = P::new(&server, "bob").await;
    let (a, at) = (alice.id.clone(), alice.token.clone());
    let text = "pipes | and \\ back\nslashes\r!";
    let before = crate::common::now_s();
    let id = alice.say(false, bob.uid, text).await;
    let line = next(&mut bob.conn).await;
    let time: i64 = line[3].parse().expect("seconds");
    assert!(
        (before..=before + 5).contains(&time),
        "the server's clock: {line:?}"
    );
    assert_eq!(
        line,
        [
            "message",
            "0",
            &a,
            &line[3],
            text,
            &a,
            &bob.id,
            &id.to_string(),
            "1"
        ]
    );
    assert_eq!(
        alice
            .ask("send_message", &["0", &a, &a, "0", "me", &at])
            .await,
        ["send_message_error", "self"]
    );
    assert_eq!(
        alice
            .ask("send_message", &["0", &a, "99999", "0", "x", &at])
            .await,
        ["send_message_error", "no_such_account"]
    );
    assert_eq!(
        alice
            .ask("send_message", &["1", &a, "99999", "0", "x", &at])
            .await,
        ["send_message_error", "no_such_group"]
    );
    assert_eq!(
        alice
            .ask("send_message", &["2", &a, &bob.id, "0", "x", &at])
            .await,
        ["send_message_error", "bad_field"]
    );
    let big = "x".repeat(16 * 1024 + 1);
    assert_eq!(
        alice
            .ask("send_message", &["0", &a, &bob.id, "0", &big, &at])
            .await,
        ["send_message_error", "text_too_long"]
    );
    // A group: the line names the group, and the sender after the text.
    let r = alice.ask("create_group", &[&a, "g", &at]).await;
    let g: u64 = r[1].parse().expect("group id");
    let (b, bt) = (bob.id.clone(), bob.token.clone());
    assert_eq!(
        bob.ask("send_message", &["1", &b, &g.to_string(), "0", "x", &bt])
            .await,
        ["send_message_error", "not_a_member"]
    );
    bob.ask("join_group", &[&b, &g.to_string(), "", &bt]).await;
    alice.conn.recv().await.expect("the request push");
    alice
        .conn
        .send("hand_group_request", &[&b, &g.to_string(), "1", &at])
        .await
        .expect("send");
    lines(&mut alice.conn, 2).await;
    bob.message().await;
    let id = alice.say(true, g, "to all").await;
    let m = bob.message().await;
    assert_eq!(m.message.chat, natter_client::Chat::Group(g));
    assert_eq!(
        (m.message.id, m.message.sender, m.message.index),
        (id, alice.uid, 2)
    );
    assert_eq!(m.message.text, "to all");
    silence(&mut alice.conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_message_is_refused() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let bob = P::new(&server, "bob").await;
    let (a, at) = (alice.id.clone(), alice.token.clone());
    assert_eq!(
        alice
            .ask("send_message", &["0", &a, &bob.id, "0", "", &at])
            .await,
        ["send_message_error", "empty_text"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_after_login_is_the_announced_count_once() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let bob = P::new(&server, "bob").await;
    let (a, at) = (alice.id.clone(), alice.token.clone());
    let g = alice.ask("create_group", &[&a, "g", &at]).await[1].clone();
    let (b, bt) = (bob.id.clone(), bob.token.clone());
    let mut bob = bob;
    bob.ask("join_group", &[&b, &g, "", &bt]).await;
    alice.conn.recv().await.expect("the request push");
    alice
        .conn
        .send("hand_group_request", &[&b, &g, "1", &at])
        .await
        .expect("send");
    lines(&mut alice.conn, 2).await;
    bob.message().await;
    drop(bob);
    // Bob is offline: two private messages and a group message wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let g: u64 = g.parse().expect("id");
    let sent = [
        alice.say(false, 10002, "one").await,
        alice.say(true, g, "two").await,
        alice.say(false, 10002, "three").await,
    ];
    assert_eq!(b, "10002");
    // A login announces three; a connection that ends before asking loses none of them.
    let login = async || {
        pipe::Client::login(connect(&server).await, "bob", &md5ish("bob"))
            .await
            .expect("login")
    };
    let (first, count) = login().await;
    assert_eq!(count, 3);
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut bob, count) = login().await;
    assert_eq!(count, 3, "announced again: none was delivered");
    let got = bob.unread(count).await.expect("the unread messages");
    let ids: Vec<u64> = got.iter().map(|m| m.message.id).collect();
    assert_eq!(ids, sent, "in send order");
    assert_eq!(
        got.iter()
            .map(|m| m.message.text.as_str())
            .collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert_eq!(got[1].message.chat, natter_client::Chat::Group(g));
    // Asked again, nothing; a later login, nothing.
    bob.conn
        .send("get_unread_message", &[""])
        .await
        .expect("send");
    let quiet = bob
        .conn
        .recv_within(Duration::from_millis(300))
        .await
        .expect("readable");
    assert_eq!(quiet, None);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_bob, count) = login().await;
    assert_eq!(count, 0, "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_answered_and_the_connection_stays_usable() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 1024).await;
    let mut c = connect(&server).await;
    c.send_raw(b"nonsense|1\n").await.expect("send");
    expect(&mut c, &["error", "unknown_command"]).await;
    c.send_raw(b"login|a\\q|b\n").await.expect("send");
    expect(&mut c, &["error", "bad_escape"]).await;
    c.send_raw(b"login|\xff\xfe|b\n").await.expect("send");
    expect(&mut c, &["error", "not_utf8"]).await;
    c.send_raw(b"\n").await.expect("send");
    expect(&mut c, &["error", "unknown_command"]).await;
    c.send_raw(b"login|a|b|c\n").await.expect("send");
    expect(&mut c, &["login_error", "field_count"]).await;
    c.send_raw(b"get_user_friend|abc|tok\n")
        .await
        .expect("send");
    expect(&mut c, &["get_user_friend_error", "bad_field"]).await;
    // Several lines in one write, and a CRLF ending.
    c.send_raw(b"nonsense\r\nlogin|x|y\r\n")
        .await
        .expect("send");
    expect(&mut c, &["error", "unknown_command"]).await;
    expect(&mut c, &["login_error", "bad_credentials"]).await;
    // Still usable.
    let uid = pipe::register(&mut c, "alice", "pw", "Alice")
        .await
        .expect("registered");
    assert!(uid > 10000);
    // A line over the limit is refused and the connection closed.
    let long = vec![b'x'; 4096];
    c.send_raw(&long).await.expect("send");
    expect(&mut c, &["error", "line_too_long"]).await;
    assert_eq!(c.recv_line().await.expect("read"), None, "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_lines_are_refused() {
    let server = TestServer::start_with(|c| {
        c.rate_per_sec = 1;
        c.rate_burst = 3;
    })
    .await;
    let mut c = connect(&server).await;
    c.send_raw(b"x\nx\nx\nx\nx\n").await.expect("send");
    for _ in 0..3 {
        expect(&mut c, &["error", "unknown_command"]).await;
    }
    expect(&mut c, &["error", "rate_limited"]).await;
    expect(&mut c, &["error", "rate_limited"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_slow_and_anonymous_connections_are_told_and_closed() {
    let server = TestServer::start_with(|c| {
        // Each shorter than the one after it, so each case meets its own.
        c.line_timeout = Duration::from_secs(1);
        c.login_timeout = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(3);
        c.ping_interval = Duration::from_millis(200);
    })
    .await;
    let farewell = async |c: &mut Conn<TcpStream>, reason: &str| {
        let got = c
            .recv_within(Duration::from_secs(5))
            .await
            .expect("readable")
            .expect("a farewell");
        assert_eq!(got, ["error", reason]);
        assert_eq!(c.recv_line().await.expect("read"), None, "closed");
    };
    // Logged in and silent.
    let mut alice = P::new(&server, "alice").await;
    farewell(&mut alice.conn, "idle_timeout").await;
    // Never logged in.
    let mut c = connect(&server).await;
    farewell(&mut c, "login_timeout").await;
    // A line begun and not finished.
    let mut c = connect(&server).await;
    c.send_raw(b"login|ali").await.expect("send");
    farewell(&mut c, "too_slow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_chunks_and_their_errors() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 8 * 1024 * 1024).await;
    let mut alice = P::new(&server, "alice").await;
    let mut bob = P::new(&server, "bob").await;
    let (a, at) = (alice.id.clone(), alice.token.clone());
    let b = bob.id.clone();
    let img = png();
    let (one, two) = img.split_at(100);
    let r = alice
        .ask(
            "send_file",
            &["0", &a, &b, "0", "t1", &b64(one), &at, "pic.png", "1"],
        )
        .await;
    assert_eq!(r, ["send_file_succ", "发送成功！", "t1", "100"]);
    silence(&mut bob.conn).await;
    let r = alice
        .ask(
            "send_file",
            &["0", &a, &b, "0", "t1", &b64(two), &at, "", "0"],
        )
        .await;
    assert_eq!(r.len(), 7, "{r:?}");
    assert_eq!(
        r[..4],
        ["send_file_succ", "发送成功！", "t1", &img.len().to_string()]
    );
    assert_eq!(r[6], "1", "the first message of the chat");
    let file_id = r[4].clone();
    let m = bob.message().await;
    let f = m.file.expect("a file");
    assert_eq!(
        (
            f.kind.as_str(),
            f.name.as_str(),
            f.size,
            f.mime.as_str(),
            f.id.as_str()
        ),
        (
            "image",
            "pic.png",
            img.len() as u64,
            "image/png",
            file_id.as_str()
        )
    );
    assert_eq!(STANDARD.decode(&f.base64).expect("base64"), img);
    assert_eq!(m.message.text, "");
    // A file (type 1) in one line, to a group (the trailing target field).
    let g = alice.ask("create_group", &[&a, "g", &at]).await[1].clone();
    let r = alice
        .ask(
            "send_file",
            &[
                "1",
                &a,
                &g,
                "0",
                "t2",
                &b64(b"plain text"),
                &at,
                "a|b.txt",
                "0",
                "1",
            ],
        )
        .await;
    assert_eq!(r[0], "send_file_succ", "{r:?}");
    for (fields, reason) in [
        (
            vec!["1", &a, &b, "0", "t3", "not base64!", &at],
            "bad_chunk",
        ),
        (vec!["1", &a, &b, "0", "t3", "", &at], "bad_chunk"),
        (
            vec!["0", &a, &b, "0", "t3", "aGVsbG8=", &at],
            "not_an_image",
        ),
        (
            vec!["1", &a, &b, "0", "t3", "aGVsbG8=", &at, "n", "2"],
            "bad_field",
        ),
        (vec!["1", &a, &b, "0", "t3"], "field_count"),
    ] {
        assert_eq!(
            alice.ask("send_file", &fields).await,
            ["send_file_error", reason],
            "{fields:?}"
        );
    }
    let big = b64(&vec![7u8; 4 * 1024 * 1024 + 1]);
    assert_eq!(
        alice
            .ask("send_file", &["1", &a, &b, "0", "t4", &big, &at])
            .await,
        ["send_file_error", "file_too_large"]
    );
    // Over the push limit: the line comes without the bytes, and get_file fetches them.
    let mb = vec![9u8; 1024 * 1024 + 1];
    let r = alice
        .ask(
            "send_file",
            &["1", &a, &b, "0", "t5", &b64(&mb), &at, "mb.bin"],
        )
        .await;
    assert_eq!(r[0], "send_file_succ", "{r:?}");
    let id = r[4].clone();
    let f = bob.message().await.file.expect("a file");
    assert_eq!(
        (f.size, f.base64.as_str(), f.id.as_str()),
        (mb.len() as u64, "", id.as_str())
    );
    let (bt, carol) = (bob.token.clone(), P::new(&server, "carol").await);
    let r = bob.ask("get_file", &[&b, &id, &bt]).await;
    assert_eq!(
        r[..5],
        [
            "get_file_succ",
            &id,
            "mb.bin",
            &mb.len().to_string(),
            "application/octet-stream"
        ]
    );
    assert_eq!(STANDARD.decode(&r[5]).expect("base64"), mb);
    let mut carol = carol;
    let (c, ct) = (carol.id.clone(), carol.token.clone());
    assert_eq!(
        carol.ask("get_file", &[&c, &id, &ct]).await,
        ["get_file_error", "no_such_file"],
        "a file of a chat one is not in"
    );
    assert_eq!(
        carol.ask("get_file", &[&c, "nope", &ct]).await,
        ["get_file_error", "no_such_file"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_files_carry_their_bytes_within_a_budget() {
    let server = TestServer::start_with(|c| c.max_frame_bytes = 2 * 1024 * 1024).await;
    let mut alice = P::new(&server, "alice").await;
    let bob = P::new(&server, "bob").await;
    let (a, at, b) = (alice.id.clone(), alice.token.clone(), bob.id.clone());
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mb = vec![3u8; 1024 * 1024];
    for i in 0..9 {
        let r = alice
            .ask(
                "send_file",
                &["1", &a, &b, "0", &format!("f{i}"), &b64(&mb), &at],
            )
            .await;
        assert_eq!(r[0], "send_file_succ", "{r:?}");
    }
    let (mut bob, count) = pipe::Client::login(connect(&server).await, "bob", &md5ish("bob"))
        .await
        .expect("login");
    assert_eq!(count, 9);
    let got = bob.unread(count).await.expect("unread");
    let carried: Vec<bool> = got
        .iter()
        .map(|m| !m.file.as_ref().expect("a file").base64.is_empty())
        .collect();
    assert_eq!(
        carried,
        [true, true, true, true, true, true, true, true, false]
    );
    let last = got[8].file.clone().expect("a file");
    bob.conn
        .send("get_file", &[&b, &last.id, &bob.token.clone()])
        .await
        .expect("send");
    let r = next(&mut bob.conn).await;
    assert_eq!(STANDARD.decode(&r[5]).expect("base64"), mb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_to_peer_offer_is_relayed_to_its_target() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let mut bob = P::new(&server, "bob").await;
    let (a, at, b) = (alice.id.clone(), alice.token.clone(), bob.id.clone());
    assert_eq!(
        alice
            .ask(
                "file",
                &[&a, "192.0.2.7", "9000", "notes|v2.txt", "1234", &b, &at]
            )
            .await,
        ["file_succ", "已发送！"]
    );
    let raw = bob.conn.recv_line().await.expect("read").expect("a line");
    assert_eq!(raw, format!("file|{a}|192.0.2.7|9000|notes\\|v2.txt|1234|"));
    assert_eq!(
        alice.ask("file", &[&a, "h", "1", "n", "1", &a, &at]).await,
        ["file_error", "self"]
    );
    let carol = P::new(&server, "carol").await;
    let c = carol.id.clone();
    drop(carol);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        alice.ask("file", &[&a, "h", "1", "n", "1", &c, &at]).await,
        ["file_error", "offline"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_devices_of_one_account() {
    let server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let bob = P::new(&server, "bob").await;
    let b = bob.id.clone();
    drop(bob);
    let login = async || {
        pipe::Client::login(connect(&server).await, "bob", &md5ish("bob"))
            .await
            .expect("login")
            .0
    };
    let (mut b1, mut b2) = (login().await, login().await);
    let id = alice.say(false, b.parse().expect("id"), "to both").await;
    assert_eq!(b1.recv_message().await.expect("b1").message.id, id);
    assert_eq!(b2.recv_message().await.expect("b2").message.id, id);
    // One device's message reaches the other device and the peer, not itself.
    let (id, _) = b1
        .send_message(false, alice.uid, "from b1")
        .await
        .expect("sent");
    let m = b2.recv_message().await.expect("b2");
    assert_eq!((m.message.id, m.message.sender), (id, b1.uid));
    assert_eq!(alice.message().await.message.id, id);
    silence(&mut b1.conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_ends_connections_and_tokens_still_work() {
    let mut server = TestServer::start().await;
    let mut alice = P::new(&server, "alice").await;
    let bob = P::new(&server, "bob").await;
    alice.say(false, bob.uid, "before").await;
    server.restart().await;
    alice.expect(&["error", "shutting_down"]).await;
    // A token from before the restart logs a new connection in.
    let mut c = connect(&server).await;
    let (a, at) = (alice.id.clone(), alice.token.clone());
    exchange(
        &mut c,
        "get_user_info",
        &[&a, &a, &at],
        &["userinfo", "alice", "1", ""],
    )
    .await;
    c.send("send_message", &["0", &a, &bob.id, "0", "after", &at])
        .await
        .expect("send");
    assert_eq!(next(&mut c).await[0], "send_message_succ");
    let (mut bob, count) = pipe::Client::login(connect(&server).await, "bob", &md5ish("bob"))
        .await
        .expect("login");
    let got = bob.unread(count).await.expect("unread");
    let texts: Vec<&str> = got.iter().map(|m| m.message.text.as_str()).collect();
    assert_eq!(
        texts,
        ["after"],
        "the first was delivered before the restart"
    );
    assert_eq!(got[0].message.index, 2, "indexes go on");
}

/// The v1 user's next code 0 frame.
async fn v1_message(u: &mut User) -> serde_json::Value {
    u.client.expect_code(0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_and_v1_chat_privately_in_a_group_and_with_files() {
    let server = TestServer::start().await;
    let mut v = user_v1(&server, "vera@example.com", "Vera", "pw-v").await;
    let mut p = P::new(&server, "pete").await;
    let (pid, pt) = (p.id.clone(), p.token.clone());
    let vid = v.ocid.to_string();
    // A friend request from pipe reaches v1, and v1's answer makes them friends.
    assert_eq!(
        p.ask("add_friend", &[&pid, &vid, "hi vera", &pt]).await[0],
        "add_friend_succ"
    );
    let push = v.client.expect_code(119).await;
    assert_eq!(
        (int(&push["ocid"]), push["msg"].clone()),
        (p.uid, json!("hi vera"))
    );
    let r = v
        .client
        .request(&frame(&v1::friend_answer(p.uid, true)), 114)
        .await;
    assert_eq!(r["accept"], json!(true), "{r}");
    expect_presence(&mut v.client, p.uid, true).await;
    assert_eq!(
        p.ask("get_user_friend", &[&pid, &pt]).await,
        ["friendinfo", "1", &vid]
    );
    // And back: a request from v1 reaches pipe.
    let mut q = P::new(&server, "quinn").await;
    let r = v
        .client
        .request(&frame(&v1::friend_request(q.uid, Some("hey q"))), 112)
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    q.expect(&["friend_request", "1", &vid, "hey q"]).await;
    // Private messages both ways.
    let id = p.say(false, v.ocid, "hello | vera").await;
    let m = v1_message(&mut v).await;
    assert_eq!(
        (int(&m["cid"]), m["msg"].clone()),
        (id, json!("hello | vera")),
        "{m}"
    );
    let ack = crate::common::send_v1(&mut v.client, json!({"private_id": p.uid}), "hi\npete").await;
    let got = p.message().await;
    assert_eq!(
        (got.message.id, got.message.text.as_str()),
        (int(&ack["cid"]), "hi\npete")
    );
    assert_eq!(got.message.chat, natter_client::Chat::Private(v.ocid));
    // A group made on v1 with the pipe user in it.
    let g = crate::common::create_group_v1(&mut v.client, &[p.uid]).await;
    assert_eq!(
        p.ask("get_user_group", &[&pid, &pt]).await,
        ["groupinfo", "1", &g.to_string()]
    );
    let id = p.say(true, g, "to the group").await;
    let m = v1_message(&mut v).await;
    assert_eq!(int(&m["cid"]), id, "{m}");
    assert_eq!(int(&m["sender"]["group_id"]), g, "{m}");
    let ack = crate::common::send_v1(&mut v.client, json!({"group_id": g}), "group reply").await;
    let got = p.message().await;
    assert_eq!(got.message.chat, natter_client::Chat::Group(g));
    assert_eq!(
        (got.message.id, got.message.sender),
        (int(&ack["cid"]), v.ocid)
    );
    // An image from pipe is a v1 image message whose file v1 downloads.
    let img = png();
    let r = p
        .ask(
            "send_file",
            &["0", &pid, &vid, "0", "i1", &b64(&img), &pt, "p.png"],
        )
        .await;
    assert_eq!(r[0], "send_file_succ", "{r:?}");
    let file_id = r[4].clone();
    // An image is v1's code 2.
    let m = v.client.expect_code(2).await;
    assert_eq!(m["file"]["id"], json!(file_id), "{m}");
    assert_eq!(m["file"]["kind"], json!("image"), "{m}");
    let auth = format!("Bearer {}", v.token);
    let got = request(
        server.addr,
        "GET",
        &format!("/files/{file_id}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, img);
    // A file from v1 reaches pipe with its bytes.
    let doc = b"a file from v1\n".to_vec();
    let id = upload_v1(&server, &v.token, "doc.txt", &doc).await;
    let r = v
        .client
        .request(
            &json!({"code": 3, "sender": {"private_id": p.uid}, "file": {"id": id}, "msg": "read this"}),
            103,
        )
        .await;
    let got = p.message().await;
    assert_eq!(got.message.id, int(&r["cid"]));
    assert_eq!(got.message.text, "read this");
    let f = got.file.expect("a file");
    assert_eq!(
        (f.kind.as_str(), f.name.as_str(), f.id.as_str()),
        ("file", "doc.txt", id.as_str())
    );
    assert_eq!(STANDARD.decode(&f.base64).expect("base64"), doc);
    // One of them offline: v1 sends a file and a text to pipe, which reads them after login.
    let pete = p.uid;
    drop(p);
    expect_presence(&mut v.client, pete, false).await;
    let big = vec![b'z'; 4 * 1024 * 1024 + 1];
    let big_id = upload_v1(&server, &v.token, "big.bin", &big).await;
    v.client
        .request(
            &json!({"code": 3, "sender": {"private_id": 10002}, "file": {"id": big_id}, "msg": ""}),
            103,
        )
        .await;
    crate::common::send_v1(&mut v.client, json!({"private_id": 10002}), "while away").await;
    let (mut p, count) = pipe::Client::login(connect(&server).await, "pete", &md5ish("pete"))
        .await
        .expect("login");
    assert_eq!(count, 2);
    let got = p.unread(count).await.expect("unread");
    let f = got[0].file.clone().expect("the big file");
    assert_eq!(
        (f.size, f.base64.as_str()),
        (big.len() as u64, ""),
        "over the push limit: no bytes"
    );
    assert_eq!(f.id, big_id);
    let (pid, pt) = (p.uid.to_string(), p.token.clone());
    p.conn
        .send("get_file", &[&pid, &big_id, &pt])
        .await
        .expect("send");
    assert_eq!(
        next(&mut p.conn).await,
        ["get_file_error", "file_too_large"],
        "over the pipe's file limit: HTTP only"
    );
    assert_eq!(got[1].message.text, "while away");
    // And the other way: v1 offline, pipe sends; v1 gets it at login.
    v.client.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, _) = p
        .send_message(false, 10001, "for later")
        .await
        .expect("sent");
    let mut c = server.v1().await;
    let login = login_v1(&mut c, "vera@example.com", "pw-v").await;
    assert!(
        login.missed.iter().any(|m| int(&m["cid"]) == id),
        "{:?}",
        login.missed
    );
}

/// Upload `bytes` over HTTP (tus creation-with-upload) as `token`'s; the file's id.
async fn upload_v1(server: &TestServer, token: &str, name: &str, bytes: &[u8]) -> String {
    let auth = format!("Bearer {token}");
    let len = bytes.len().to_string();
    let meta = format!(
        "filename {},filetype {}",
        b64(name.as_bytes()),
        b64(b"text/plain")
    );
    let r = request(
        server.addr,
        "POST",
        "/files/",
        &[
            ("Tus-Resumable", "1.0.0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Authorization", &auth),
            ("Upload-Length", &len),
            ("Upload-Metadata", &meta),
        ],
        bytes,
    )
    .await;
    assert_eq!(r.status, 201, "upload: {r:?}");
    r.header("location")
        .expect("a Location")
        .trim_start_matches("/files/")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipe_port_speaks_tls_with_the_servers_certificate() {
    let server =
        TestServer::start_with(|c| c.tls = Some(crate::tls::test_certs("cert-a.pem"))).await;
    let tcp = TcpStream::connect(server.pipe).await.expect("connect");
    let tls = crate::tls::connector()
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("the TLS handshake with the test certificate");
    let mut c = Conn::new(tls);
    let uid = pipe::register(&mut c, "alice", "pw", "Alice")
        .await
        .expect("registered over TLS");
    let (mut alice, count) = pipe::Client::login(c, "alice", "pw").await.expect("login");
    assert_eq!((alice.uid, count), (uid, 0));
    let me = alice.uid.to_string();
    let token = alice.token.clone();
    alice
        .conn
        .send("get_user_friend", &[&me, &token])
        .await
        .expect("send");
    assert_eq!(next(&mut alice.conn).await, ["friendinfo", "0"]);
    // Plain lines on the TLS port get no pipe reply.
    let mut plain = connect(&server).await;
    plain.send("login", &["alice", "pw"]).await.expect("send");
    let got = plain.recv_within(Duration::from_secs(2)).await;
    assert!(
        !matches!(&got, Ok(Some(l)) if l.first().is_some_and(|c| c.starts_with("login"))),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_cap_and_the_connection_gauge_apply_to_the_pipe_port() {
    let server = TestServer::start_with(|c| c.max_connections = 2).await;
    let metric = async || {
        let r = natter_client::http::get(server.addr, "natter", "/metrics")
            .await
            .expect("GET /metrics");
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(r#"natter_connections{dialect="pipe"} "#))
            .map(str::to_owned)
    };
    let mut first = P::new(&server, "alice").await;
    let mut second = connect(&server).await;
    exchange(&mut second, "x", &[], &["error", "unknown_command"]).await;
    assert_eq!(metric().await.as_deref(), Some("2"));
    // A third is refused at once, and closed.
    let mut third = connect(&server).await;
    assert_eq!(
        third.recv_line().await.expect("read").as_deref(),
        Some("error|busy")
    );
    assert_eq!(third.recv_line().await.expect("read"), None);
    // The first two are untouched; one leaving makes room.
    let (a, at) = (first.id.clone(), first.token.clone());
    assert_eq!(
        first.ask("get_user_friend", &[&a, &at]).await,
        ["friendinfo", "0"]
    );
    second.close(WAIT).await.expect("closed");
    let mut tries = 0;
    while metric().await.as_deref() != Some("1") {
        tries += 1;
        assert!(tries < 50, "the gauge did not come down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut again = connect(&server).await;
    exchange(&mut again, "x", &[], &["error", "unknown_command"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_locked_resets_blocks_quotas_and_bans() {
    let closed = TestServer::start_with(|c| {
        c.limits.registration = natter_server::domain::Registration::Closed;
    })
    .await;
    let mut c = connect(&closed).await;
    exchange(
        &mut c,
        "register",
        &["alice", "pw", "A", "1", "", "", "", "0"],
        &["register_error", "registration_closed"],
    )
    .await;

    let server = TestServer::start_with(|c| c.limits.files.quota_bytes = 16).await;
    let mut alice = P::new(&server, "alice").await;
    let (a, at) = (alice.id.clone(), alice.token.clone());
    // Wrong answers lock the reset, even for the right answer.
    let mut c = connect(&server).await;
    for _ in 0..4 {
        exchange(
            &mut c,
            "forget_passwd",
            &["alice", "1", "red", "new-pw"],
            &["up_pass_error", "wrong_answer"],
        )
        .await;
    }
    for answer in ["red", "blue"] {
        c.send("forget_passwd", &["alice", "1", answer, "new-pw"])
            .await
            .expect("send");
        let r = next(&mut c).await;
        // The account's stored lock, or the guessing back-off that comes before it.
        assert!(
            r[0] == "up_pass_error"
                && matches!(r[1].as_str(), "reset_locked" | "too_many_attempts"),
            "{r:?}"
        );
    }
    // Over the file quota.
    let mut v = user_v1(&server, "vera@example.com", "Vera", "pw-v").await;
    let vid = v.ocid.to_string();
    assert_eq!(
        alice
            .ask(
                "send_file",
                &["1", &a, &vid, "0", "q", &b64(&[1u8; 17]), &at]
            )
            .await,
        ["send_file_error", "over_quota"]
    );
    // A v1 account that blocks the pipe account refuses its messages.
    let r = v
        .client
        .request(&json!({"code": 146, "ocid": alice.uid}), 147)
        .await;
    assert_eq!(r["block"], json!(true), "{r}");
    assert_eq!(
        alice
            .ask("send_message", &["0", &a, &vid, "0", "hi", &at])
            .await,
        ["send_message_error", "blocked"]
    );
    // A ban closes the pipe connection and refuses its logins.
    let domain = natter_server::app::operator_domain(&server.config)
        .await
        .expect("an operator's view of the store");
    domain
        .set_banned(natter_proto::Ocid(alice.uid), true)
        .await
        .expect("banned");
    domain.close().await;
    let farewell = alice
        .conn
        .recv_within(Duration::from_secs(10))
        .await
        .expect("readable");
    assert_eq!(
        farewell,
        Some(vec!["error".to_owned(), "account_disabled".to_owned()])
    );
    exchange(
        &mut c,
        "login",
        &["alice", &md5ish("alice")],
        &["login_error", "account_disabled"],
    )
    .await;
    exchange(
        &mut c,
        "get_user_friend",
        &[&a, &at],
        &["get_user_friend_error", "account_disabled"],
    )
    .await;
}
