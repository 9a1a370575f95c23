//! The store conformance suite: the same checks against SQLite and PostgreSQL. Each backend
//! gets a fresh database per test (a temp dir, or `CREATE DATABASE natter_test_*` dropped
//! after). "Two nodes" are two store instances opened on the same database.

use crate::common::services::TestDb;
use natter_server::store::postgres::PgStore;
use natter_server::store::sqlite::SqliteStore;
use natter_server::store::{
    Appended, Befriend, Category, ChatId, ChatKind, Device, Friend, Index, NewAccount, NewMessage,
    Ocid, Part, Range, Store, StoreError, Unique, kind, status,
};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Where a test's database lives; `open` makes another store (another "node") on it.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl Backend {
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("natter.db"))
                    .await
                    .expect("open SQLite"),
            ),
            Self::Postgres(db) => Arc::new(PgStore::open(&db.url, 4).await.expect("open PgStore")),
        }
    }
}

fn account(n: u32) -> NewAccount {
    NewAccount {
        uuid: format!("uuid-{n}"),
        email: Some(format!("user{n}@example.com")),
        phone: None,
        username: None,
        nickname: format!("User {n}"),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        created_at: 1_700_000_000_000 + i64::from(n),
    }
}

/// Account number `n` of a fresh store (ocids start at 10001).
fn o(n: u64) -> Ocid {
    Ocid(10_000 + n)
}

fn text(chat: ChatId, sender: Ocid, body: &str, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        chat,
        sender,
        kind: kind::NORMAL,
        parts: vec![Part {
            category: Category::TEXT,
            content: body.to_owned(),
        }],
        client_id: client_id.map(str::to_owned),
        created_at: 1_700_000_000_000,
    }
}

async fn new_message(store: &dyn Store, m: NewMessage) -> natter_server::store::Message {
    match store.append(m).await.expect("append") {
        Appended::New(m) => m,
        Appended::Existing(m) => panic!("expected a new message, got existing {m:?}"),
    }
}

async fn accounts(b: &Backend) {
    let s = b.open().await;
    let a = s.create_account(account(1)).await.expect("create a");
    let c = s.create_account(account(2)).await.expect("create b");
    assert_eq!((a.ocid, c.ocid), (o(1), o(2)), "ocids start at 10001");
    assert_eq!(a.email.as_deref(), Some("user1@example.com"));
    assert_eq!((a.status, a.avatar.as_str()), (0, ""));
    assert_eq!(s.account(o(2)).await.expect("by ocid"), Some(c.clone()));
    assert_eq!(
        s.account_by_email("user1@example.com")
            .await
            .expect("by email"),
        Some(a)
    );
    assert_eq!(s.account(Ocid(99)).await.expect("missing"), None);
    assert_eq!(
        s.account_by_email("no@example.com").await.expect("missing"),
        None
    );
    let mut dup = account(3);
    dup.email = Some("user2@example.com".into());
    assert!(matches!(
        s.create_account(dup).await,
        Err(StoreError::Conflict(Unique::Email))
    ));
    let mut dup = account(4);
    dup.uuid = "uuid-1".into();
    assert!(matches!(
        s.create_account(dup).await,
        Err(StoreError::Conflict(Unique::Uuid))
    ));
    // A failed insert does not burn a visible ocid gap into the next success's lookup.
    let d = s
        .create_account(account(5))
        .await
        .expect("create after conflicts");
    assert!(d.ocid > o(2));
    s.close().await;
}

async fn sessions(b: &Backend) {
    let s = b.open().await;
    let a = s.create_account(account(1)).await.expect("account");
    s.create_session(a.ocid, b"hash-1", 10, 1000)
        .await
        .expect("session");
    let (row, owner) = s
        .session(b"hash-1")
        .await
        .expect("lookup")
        .expect("present");
    assert_eq!((row.ocid, row.expires_at), (a.ocid, 1000));
    assert_eq!(owner, a, "the session comes with its account");
    assert_eq!(s.session(b"hash-2").await.expect("lookup"), None);
    s.revoke_session(b"hash-1").await.expect("revoke");
    assert_eq!(s.session(b"hash-1").await.expect("lookup"), None);
    s.close().await;
}

async fn chats(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    assert_eq!(s.find_private_chat(o(1), o(2)).await.expect("find"), None);
    let p = s.private_chat(o(2), o(1), 5).await.expect("private");
    assert_eq!(
        (p.kind, p.members.as_slice()),
        (ChatKind::Private, &[o(1), o(2)][..])
    );
    let again = s.private_chat(o(1), o(2), 6).await.expect("private again");
    assert_eq!(again.id, p.id, "one private chat per pair");
    assert_eq!(
        s.find_private_chat(o(2), o(1)).await.expect("find"),
        Some(p.id)
    );
    let g = s
        .create_group(o(3), "team", &[o(3), o(1), o(3)], 7)
        .await
        .expect("group");
    assert_ne!(g.id, p.id);
    let read = s.chat(g.id).await.expect("chat").expect("present");
    assert_eq!(read.kind, ChatKind::Group);
    assert_eq!((read.name.as_str(), read.owner), ("team", Some(o(3))));
    assert_eq!(read.members, vec![o(1), o(3)]);
    assert_eq!(s.chat(ChatId(g.id.0 + 100)).await.expect("chat"), None);
    s.close().await;
}

async fn appends_and_history(b: &Backend) {
    let s = b.open().await;
    for n in 1..=2 {
        s.create_account(account(n)).await.expect("account");
    }
    let p = s.private_chat(o(1), o(2), 1).await.expect("private");
    let g = s
        .create_group(o(1), "g", &[o(1), o(2)], 1)
        .await
        .expect("group");
    let mut ids = Vec::new();
    for i in 1..=25u64 {
        let m = new_message(&*s, text(p.id, o(1 + i % 2), &format!("m{i}"), None)).await;
        assert_eq!(m.index, Index(i), "gapless indexes from 1");
        ids.push(m.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids rise with index");
    let first = new_message(&*s, text(g.id, o(1), "hello", Some("c-1"))).await;
    assert_eq!(first.index, Index(1), "each chat has its own indexes");
    // A retried send: the stored message, not a second one.
    match s.append(text(g.id, o(1), "hello", Some("c-1"))).await {
        Ok(Appended::Existing(m)) => assert_eq!(m, first),
        other => panic!("expected Existing, got {other:?}"),
    }
    // The same client id from another sender is a different message.
    let other = new_message(&*s, text(g.id, o(2), "hi", Some("c-1"))).await;
    assert_eq!(other.index, Index(2));
    assert!(matches!(
        s.append(text(p.id, o(1), "x", Some("c-1"))).await,
        Err(StoreError::ClientIdReused)
    ));
    assert!(matches!(
        s.append(text(ChatId(p.id.0 + g.id.0 + 100), o(1), "x", None))
            .await,
        Err(StoreError::NoSuchChat)
    ));
    let idx =
        |v: Vec<natter_server::store::Message>| v.iter().map(|m| m.index.0).collect::<Vec<_>>();
    assert_eq!(
        idx(s.messages(p.id, Range::Latest, 3).await.expect("latest")),
        [23, 24, 25]
    );
    assert_eq!(
        idx(s
            .messages(p.id, Range::Before(Index(5)), 10)
            .await
            .expect("before")),
        [1, 2, 3, 4]
    );
    assert_eq!(
        idx(s
            .messages(p.id, Range::After(Index(20)), 3)
            .await
            .expect("after")),
        [21, 22, 23]
    );
    assert!(
        s.messages(p.id, Range::After(Index(25)), 3)
            .await
            .expect("after end")
            .is_empty()
    );
    let m = &s
        .messages(p.id, Range::After(Index(0)), 1)
        .await
        .expect("first")[0];
    assert_eq!(
        (m.text().into_owned(), m.sender, m.kind),
        ("m1".to_owned(), o(2), kind::NORMAL)
    );
    s.close().await;
}

/// Marks per device, and the account's furthest with them; none ever goes down.
async fn delivery_marks(b: &Backend) {
    let s = b.open().await;
    for n in 1..=2 {
        s.create_account(account(n)).await.expect("account");
    }
    let (phone, laptop) = (Device([1; 32]), Device([2; 32]));
    for d in [phone, laptop] {
        s.create_session(o(2), &d.0, 1, i64::MAX)
            .await
            .expect("session");
    }
    let p = s.private_chat(o(1), o(2), 1).await.expect("private");
    for i in 0..4 {
        new_message(&*s, text(p.id, o(1), &format!("{i}"), None)).await;
    }
    let m = s
        .membership(o(2), p.id)
        .await
        .expect("membership")
        .expect("member");
    assert_eq!(
        (m.joined, m.delivered, m.device, m.last_index),
        (Index(0), Index(0), None, Index(4))
    );
    s.mark_delivered(o(2), &phone, &[(p.id, Index(3))])
        .await
        .expect("mark");
    s.mark_delivered(o(2), &phone, &[(p.id, Index(2))])
        .await
        .expect("lower mark");
    s.mark_delivered(o(2), &laptop, &[(p.id, Index(1))])
        .await
        .expect("mark");
    let seen = |d: Device| {
        let s = s.clone();
        async move {
            let all = s.memberships(o(2), &d).await.expect("memberships");
            assert_eq!(all.len(), 1);
            (all[0].chat, all[0].delivered, all[0].device)
        }
    };
    assert_eq!(
        seen(phone).await,
        (p.id, Index(3), Some(Index(3))),
        "marks never go down"
    );
    assert_eq!(
        seen(laptop).await,
        (p.id, Index(3), Some(Index(1))),
        "each device has its own mark; the account's is the furthest"
    );
    assert_eq!(
        seen(Device([3; 32])).await,
        (p.id, Index(3), None),
        "a device without marks has none"
    );
    // A new session (a new device) starts where the account's furthest device got.
    let tablet = Device([4; 32]);
    s.create_session(o(2), &tablet.0, 2, i64::MAX)
        .await
        .expect("session");
    assert_eq!(seen(tablet).await, (p.id, Index(3), Some(Index(3))));
    s.revoke_session(&laptop.0).await.expect("revoke");
    assert_eq!(
        seen(laptop).await,
        (p.id, Index(3), None),
        "a revoked login's marks go with it"
    );
    assert_eq!(
        seen(phone).await.2,
        Some(Index(3)),
        "other devices keep theirs"
    );
    assert_eq!(
        s.membership(o(1), ChatId(p.id.0 + 99))
            .await
            .expect("membership"),
        None
    );
    s.close().await;
}

/// Two stores (two nodes) appending to one chat at once: indexes 1..=N, each once.
async fn concurrent_nodes(b: &Backend) {
    let first = b.open().await;
    let second = b.open().await;
    for n in 1..=2 {
        first.create_account(account(n)).await.expect("account");
    }
    let g = first
        .create_group(o(1), "g", &[o(1), o(2)], 1)
        .await
        .expect("group");
    let other = first.private_chat(o(1), o(2), 1).await.expect("private");
    let mut tasks = Vec::new();
    for (w, store) in [first.clone(), second.clone(), first.clone(), second.clone()]
        .into_iter()
        .enumerate()
    {
        let (g, other) = (g.id, other.id);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..40 {
                // Interleave two chats so batches lock more than one row.
                let chat = if i % 3 == 0 { other } else { g };
                let cid = format!("w{w}-{i}");
                let m = new_message(&*store, text(chat, o(1), &cid, Some(&cid))).await;
                got.push((m.chat, m.index));
            }
            got
        }));
    }
    let mut per_chat: std::collections::HashMap<ChatId, BTreeSet<u64>> = Default::default();
    let mut total = 0;
    for t in tasks {
        for (chat, index) in t.await.expect("writer task") {
            assert!(
                per_chat.entry(chat).or_default().insert(index.0),
                "index {index} twice"
            );
            total += 1;
        }
    }
    assert_eq!(total, 160);
    for (chat, set) in per_chat {
        let n = set.len() as u64;
        assert_eq!(
            set,
            (1..=n).collect::<BTreeSet<_>>(),
            "chat {chat} has a gap"
        );
        let stored = first
            .messages(chat, Range::After(Index(0)), 1000)
            .await
            .expect("read");
        assert_eq!(stored.len() as u64, n);
    }
    first.close().await;
    second.close().await;
}

/// The same send retried many times at once (so retries share a batch): stored once, and
/// every caller gets that one message.
async fn concurrent_retries(b: &Backend) {
    let s = b.open().await;
    for n in 1..=2 {
        s.create_account(account(n)).await.expect("account");
    }
    let p = s.private_chat(o(1), o(2), 1).await.expect("private");
    new_message(&*s, text(p.id, o(1), "first", None)).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.append(text(p.id, o(1), "again", Some("same"))).await })
        })
        .collect();
    let mut new = 0;
    let mut seen = BTreeSet::new();
    for t in tasks {
        match t.await.expect("task").expect("append") {
            Appended::New(m) => {
                new += 1;
                seen.insert((m.id, m.index));
            }
            Appended::Existing(m) => {
                seen.insert((m.id, m.index));
            }
        }
    }
    assert_eq!(new, 1, "exactly one caller stores it");
    assert_eq!(
        seen.len(),
        1,
        "every caller gets the same message: {seen:?}"
    );
    assert_eq!(seen.first().map(|s| s.1), Some(Index(2)));
    let all = s
        .messages(p.id, Range::After(Index(0)), 10)
        .await
        .expect("read");
    assert_eq!(all.len(), 2);
    s.close().await;
}

/// Many appends at once, so that they share transactions: fresh ones to three chats, retries
/// of messages stored earlier (which make a batch start over row by row) and retries within
/// the burst. Every caller's message is the one stored (same id, chat, index, body), each
/// chat's indexes run 1..=N without a gap, and a retry gets its first copy.
async fn batched_appends(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    let g = s
        .create_group(o(1), "g", &[o(1), o(2), o(3)], 1)
        .await
        .expect("group")
        .id;
    let p = s.private_chat(o(1), o(2), 1).await.expect("private").id;
    let q = s.private_chat(o(2), o(3), 1).await.expect("private").id;
    let chats = [g, p, q];
    let earlier: Vec<_> = futures_util::future::join_all((0..5u64).map(|i| {
        let s = s.clone();
        async move {
            let cid = format!("early-{i}");
            new_message(&*s, text(g, o(1), &cid, Some(&cid))).await
        }
    }))
    .await;
    let burst: Vec<(ChatId, String, Option<String>)> = (0..600u64)
        .map(|i| {
            let chat = chats[(i % 3) as usize];
            let cid = match i % 50 {
                // A retry of a message stored before the burst.
                7 => Some(format!("early-{}", i % 5)),
                // Sent twice within the burst.
                11 | 12 => Some(format!("twice-{}", i / 50)),
                n if n % 2 == 0 => Some(format!("c-{i}")),
                _ => None,
            };
            let chat = match i % 50 {
                7 => g,
                11 | 12 => p,
                _ => chat,
            };
            (chat, format!("m{i}"), cid)
        })
        .collect();
    let tasks: Vec<_> = burst
        .iter()
        .cloned()
        .map(|(chat, body, cid)| {
            let s = s.clone();
            tokio::spawn(async move { s.append(text(chat, o(1), &body, cid.as_deref())).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task").expect("append"));
    }
    let mut stored = std::collections::HashMap::new();
    for chat in [g, p, q] {
        let all = s
            .messages(chat, Range::After(Index(0)), 10_000)
            .await
            .expect("read");
        let indexes: Vec<u64> = all.iter().map(|m| m.index.0).collect();
        assert_eq!(
            indexes,
            (1..=all.len() as u64).collect::<Vec<_>>(),
            "chat {chat}: indexes run without a gap"
        );
        for m in all {
            stored.insert(m.id, m);
        }
    }
    assert_eq!(stored.len(), 5 + 600 - 12 - 12, "each retry stored once");
    let mut first_twice = std::collections::HashMap::new();
    for ((chat, body, cid), answer) in burst.iter().zip(&answers) {
        let m = match answer {
            Appended::New(m) => {
                assert_eq!(&m.parts[0].content, body);
                m
            }
            Appended::Existing(m) => m,
        };
        assert_eq!(
            stored.get(&m.id),
            Some(m),
            "the acked message is the stored one"
        );
        assert_eq!(m.chat, *chat);
        match cid.as_deref() {
            Some(c) if c.starts_with("early-") => {
                assert!(matches!(answer, Appended::Existing(_)), "{c}");
                assert!(
                    earlier.iter().any(|e| e.id == m.id),
                    "{c} is the earlier copy"
                );
            }
            Some(c) if c.starts_with("twice-") => {
                let first = first_twice.entry(c.to_owned()).or_insert(m.id);
                assert_eq!(*first, m.id, "{c}: both sends get one message");
            }
            _ => assert!(matches!(answer, Appended::New(_)), "{body} is new"),
        }
    }
    s.close().await;
}

/// What one store instance wrote, a new one (a restarted node) reads.
async fn reopen(b: &Backend) {
    let s = b.open().await;
    s.create_account(account(1)).await.expect("account");
    s.create_account(account(2)).await.expect("account");
    let p = s.private_chat(o(1), o(2), 1).await.expect("private");
    new_message(&*s, text(p.id, o(1), "kept", Some("k"))).await;
    s.close().await;
    let s = b.open().await;
    let kept = s.messages(p.id, Range::Latest, 10).await.expect("read");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].client_id.as_deref(), Some("k"));
    assert_eq!(
        s.create_account(account(3)).await.expect("account").ocid,
        o(3)
    );
    s.close().await;
}

/// Requests, answers (crossed, accepted, rejected), the lists, and removal.
async fn friends(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
        s.create_account(account(n)).await.expect("account");
    }
    let (a, c, d, e) = (o(1), o(2), o(3), o(4));
    assert_eq!(
        s.request_friend(a, c, "first", 10).await.expect("ask"),
        Befriend::Requested
    );
    // Asking again replaces the text and time.
    assert_eq!(
        s.request_friend(a, c, "again", 20).await.expect("ask"),
        Befriend::Requested
    );
    s.request_friend(d, c, "from d", 15).await.expect("ask");
    let waiting = s.friend_requests(c).await.expect("requests");
    let seen: Vec<(Ocid, &str, i64)> = waiting
        .iter()
        .map(|r| (r.from, r.message.as_str(), r.created_at))
        .collect();
    assert_eq!(seen, [(d, "from d", 15), (a, "again", 20)]);
    assert!(waiting.iter().all(|r| r.to == c));
    assert!(s.friend_requests(a).await.expect("none").is_empty());

    // c accepts a, rejects d; answering again finds nothing.
    assert!(
        s.answer_friend_request(c, a, true, 30)
            .await
            .expect("accept")
    );
    assert!(!s.answer_friend_request(c, a, true, 31).await.expect("gone"));
    assert!(
        s.answer_friend_request(c, d, false, 32)
            .await
            .expect("reject")
    );
    assert!(s.friend_requests(c).await.expect("none left").is_empty());
    assert_eq!(
        s.friends(a).await.expect("a's"),
        [Friend { ocid: c, since: 30 }]
    );
    assert_eq!(
        s.friends(c).await.expect("c's"),
        [Friend { ocid: a, since: 30 }]
    );
    assert!(s.friends(d).await.expect("d's").is_empty());
    assert_eq!(
        s.request_friend(c, a, "", 40).await.expect("ask"),
        Befriend::AlreadyFriends
    );

    // Crossed requests: the second is the answer.
    s.request_friend(e, a, "e", 50).await.expect("ask");
    assert_eq!(
        s.request_friend(a, e, "a", 51).await.expect("ask"),
        Befriend::Accepted
    );
    assert!(s.friend_requests(a).await.expect("answered").is_empty());
    assert!(s.friend_requests(e).await.expect("none").is_empty());
    let ids: Vec<Ocid> = s
        .friends(a)
        .await
        .expect("a's")
        .iter()
        .map(|f| f.ocid)
        .collect();
    assert_eq!(ids, [c, e]);

    // Removal ends both directions, once.
    assert!(s.remove_friend(c, a).await.expect("remove"));
    assert!(!s.remove_friend(a, c).await.expect("already gone"));
    let ids: Vec<Ocid> = s
        .friends(a)
        .await
        .expect("a's")
        .iter()
        .map(|f| f.ocid)
        .collect();
    assert_eq!(ids, [e]);
    assert!(s.friends(c).await.expect("c's").is_empty());
    s.close().await;
}

/// Two nodes asking each other at once end as one friendship, never as two requests.
async fn concurrent_friend_requests(b: &Backend) {
    let one = b.open().await;
    let two = b.open().await;
    for n in 1..=20 {
        one.create_account(account(n)).await.expect("account");
    }
    let mut tasks = Vec::new();
    for pair in 0..10u64 {
        let (x, y) = (o(1 + 2 * pair), o(2 + 2 * pair));
        for (s, from, to) in [(one.clone(), x, y), (two.clone(), y, x)] {
            tasks.push(tokio::spawn(async move {
                s.request_friend(from, to, "", 1).await.expect("ask")
            }));
        }
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    for pair in outcomes.chunks(2) {
        let mut got = pair.to_vec();
        got.sort_by_key(|o| *o == Befriend::Accepted);
        assert_eq!(
            got,
            [Befriend::Requested, Befriend::Accepted],
            "{outcomes:?}"
        );
    }
    for n in (1..=20).map(o) {
        assert_eq!(one.friends(n).await.expect("friends").len(), 1);
        assert!(two.friend_requests(n).await.expect("requests").is_empty());
    }
    one.close().await;
    two.close().await;
}

/// What operators do: list, ban, erase, reset, sessions, statistics, groups, invitations,
/// account events, the readiness write.
async fn operations(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    let page = s.accounts(o(1), 10).await.expect("list");
    assert_eq!(
        page.iter().map(|a| a.ocid).collect::<Vec<_>>(),
        [o(2), o(3)],
        "after o(1), ascending"
    );
    assert_eq!(s.accounts(Ocid(0), 1).await.expect("list").len(), 1);

    assert!(
        s.set_account_status(o(2), status::BANNED)
            .await
            .expect("ban")
    );
    assert!(
        !s.set_account_status(o(9), status::BANNED)
            .await
            .expect("no such")
    );
    let banned = s.account(o(2)).await.expect("read").expect("there");
    assert_eq!(banned.status, status::BANNED);
    assert!(s.set_password_hash(o(1), "$new").await.expect("reset"));
    assert_eq!(
        s.account(o(1))
            .await
            .expect("read")
            .expect("there")
            .password_hash,
        "$new"
    );

    s.create_session(o(3), b"s3-old", 10, 1_000)
        .await
        .expect("session");
    s.create_session(o(3), b"s3-new", 20, 5_000)
        .await
        .expect("session");
    let sessions = s.account_sessions(o(3)).await.expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0].token_hash, b"s3-new", "newest first");
    assert!(!sessions[0].revoked);
    s.revoke_session(b"s3-old").await.expect("revoke");
    assert!(s.account_sessions(o(3)).await.expect("sessions")[1].revoked);

    let chat = s.private_chat(o(1), o(3), 1).await.expect("chat");
    new_message(&*s, text(chat.id, o(1), "kept", None)).await;
    s.request_friend(o(1), o(3), "", 1).await.expect("ask");
    s.answer_friend_request(o(3), o(1), true, 2)
        .await
        .expect("accept");
    let g = s
        .create_group(o(1), "team", &[o(1), o(2), o(3)], 3)
        .await
        .expect("group");

    let stats = s.statistics(2_000).await.expect("stats");
    assert_eq!(
        (
            stats.accounts_active,
            stats.accounts_banned,
            stats.accounts_deleted
        ),
        (2, 1, 0)
    );
    assert_eq!(stats.sessions_live, 1, "one unrevoked, unexpired at 2000");
    assert_eq!(
        (stats.private_chats, stats.groups, stats.messages),
        (1, 1, 1)
    );
    assert_eq!(stats.friendships, 1);

    let groups = s.groups(ChatId(0), 10).await.expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (
            groups[0].id,
            groups[0].members,
            groups[0].owner,
            groups[0].name.as_str()
        ),
        (g.id, 3, Some(o(1)), "team")
    );

    // Erasing: no email, no password, sessions revoked, friendships gone; messages stay.
    assert!(s.erase_account(o(3)).await.expect("erase"));
    assert!(!s.erase_account(o(9)).await.expect("no such"));
    let gone = s.account(o(3)).await.expect("read").expect("the row stays");
    assert_eq!(gone.status, status::DELETED);
    assert_eq!((gone.email, gone.password_hash.as_str()), (None, ""));
    assert!(
        s.account_sessions(o(3))
            .await
            .expect("sessions")
            .iter()
            .all(|x| x.revoked)
    );
    assert!(s.friends(o(1)).await.expect("friends").is_empty());
    assert_eq!(
        s.messages(chat.id, Range::Latest, 10)
            .await
            .expect("history")
            .len(),
        1
    );
    // Its email is free again.
    let mut again = account(3);
    again.uuid = "uuid-3b".into();
    s.create_account(again)
        .await
        .expect("the email is free again");

    // Invitations: used once, within their time.
    s.create_invite(b"code-1", 100, None).await.expect("invite");
    s.create_invite(b"code-2", 100, Some(200))
        .await
        .expect("invite");
    let invited = s
        .create_account_invited(account(7), b"code-1", 150)
        .await
        .expect("invited");
    let mut twice = account(8);
    twice.uuid = "uuid-8".into();
    assert!(matches!(
        s.create_account_invited(twice.clone(), b"code-1", 160)
            .await,
        Err(StoreError::NoSuchInvite)
    ));
    assert!(
        matches!(
            s.create_account_invited(twice.clone(), b"code-2", 200)
                .await,
            Err(StoreError::NoSuchInvite)
        ),
        "expired at 200"
    );
    assert!(matches!(
        s.create_account_invited(twice, b"nope", 1).await,
        Err(StoreError::NoSuchInvite)
    ));
    assert!(
        s.account_by_email("user8@example.com")
            .await
            .expect("lookup")
            .is_none(),
        "a refused invitation creates nothing"
    );
    let invites = s.invites().await.expect("invites");
    assert_eq!(invites.len(), 2);
    let used = invites
        .iter()
        .find(|i| i.code_hash == b"code-1")
        .expect("code-1");
    assert_eq!(
        (used.used_by, used.used_at),
        (Some(invited.ocid), Some(150))
    );

    // Account events, in order, from where a poll starts.
    let start = s.last_account_event().await.expect("last");
    s.post_account_event(o(2), 1_000).await.expect("event");
    s.post_account_event(o(1), 1_001).await.expect("event");
    let events = s.account_events(start, 10).await.expect("events");
    assert_eq!(events.iter().map(|e| e.1).collect::<Vec<_>>(), [o(2), o(1)]);
    assert!(events[0].0 < events[1].0);
    assert_eq!(s.last_account_event().await.expect("last"), events[1].0);
    assert!(
        s.account_events(events[1].0, 10)
            .await
            .expect("none")
            .is_empty()
    );

    s.check_write("node-a", 1).await.expect("check");
    s.check_write("node-a", 2).await.expect("check again");
    s.close().await;
}

/// A deployment exported and imported into a new store is the same, row for row, and goes on
/// from where it was (ids, indexes).
async fn transfer(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    s.set_account_status(o(3), status::BANNED)
        .await
        .expect("ban");
    let p = s.private_chat(o(1), o(2), 5).await.expect("private");
    let g = s
        .create_group(o(1), "team", &[o(1), o(2), o(3)], 6)
        .await
        .expect("group");
    new_message(&*s, text(p.id, o(1), "hello \"there\"\n", Some("c1"))).await;
    new_message(&*s, text(g.id, o(2), "ünïcode", None)).await;
    new_message(&*s, text(p.id, o(2), "back", None)).await;
    s.request_friend(o(1), o(2), "hi", 7).await.expect("ask");
    s.answer_friend_request(o(2), o(1), true, 8)
        .await
        .expect("accept");
    s.request_friend(o(3), o(1), "me too", 9)
        .await
        .expect("ask");
    s.create_session(o(1), b"dev", 1, i64::MAX)
        .await
        .expect("session");
    s.create_session(o(2), &[2; 32], 1, i64::MAX)
        .await
        .expect("session");
    s.mark_delivered(o(2), &Device([2; 32]), &[(p.id, Index(1))])
        .await
        .expect("marks");

    let mut first = Vec::new();
    let counts = natter_server::transfer::export(&*s, &mut first)
        .await
        .expect("export");
    assert_eq!(
        (
            counts.accounts,
            counts.chats,
            counts.members,
            counts.messages,
            counts.friends,
            counts.friend_requests
        ),
        (3, 2, 5, 3, 2, 1)
    );
    let text_of = String::from_utf8(first.clone()).expect("utf-8");
    assert!(
        text_of.starts_with("{\"t\":\"natter-export\",\"version\":1}\n"),
        "{text_of}"
    );
    assert!(!text_of.contains("\"dev\""), "logins are not exported");

    let target = match b {
        Backend::Sqlite(_) => Backend::Sqlite(tempfile::tempdir().expect("temp dir")),
        Backend::Postgres(_) => Backend::Postgres(TestDb::create().await.expect("a database")),
    };
    let t = target.open().await;
    natter_server::transfer::import(&*t, &mut first.as_slice())
        .await
        .expect("import");
    let mut second = Vec::new();
    natter_server::transfer::export(&*t, &mut second)
        .await
        .expect("export again");
    assert_eq!(
        String::from_utf8(second).expect("utf-8"),
        text_of,
        "the same rows"
    );
    // Into a store that has accounts: refused.
    assert!(
        natter_server::transfer::import(&*t, &mut first.as_slice())
            .await
            .is_err()
    );

    // It goes on where it was.
    let next = new_message(&*t, text(p.id, o(1), "after", None)).await;
    assert_eq!(next.index, Index(3));
    let before = s.messages(p.id, Range::Latest, 10).await.expect("history");
    assert!(
        before.iter().all(|m| m.id < next.id),
        "message ids continue"
    );
    let new = t.create_account(account(4)).await.expect("a new account");
    assert_eq!(new.ocid, o(4));
    let group = t
        .create_group(o(1), "new", &[o(1)], 10)
        .await
        .expect("a new group");
    assert!(group.id > g.id, "chat ids continue");
    assert_eq!(
        t.account(o(3)).await.expect("read").expect("there").status,
        status::BANNED
    );
    assert_eq!(t.friends(o(1)).await.expect("friends").len(), 1);
    assert_eq!(t.friend_requests(o(1)).await.expect("requests").len(), 1);
    s.close().await;
    t.close().await;
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    super::$test(&super::Backend::Sqlite(dir)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = super::TestDb::create().await else { return };
                    super::$test(&super::Backend::Postgres(db)).await;
                }
            )*
        }
    };
}

conformance!(
    accounts,
    sessions,
    chats,
    appends_and_history,
    delivery_marks,
    concurrent_nodes,
    concurrent_retries,
    batched_appends,
    reopen,
    friends,
    concurrent_friend_requests,
    operations,
    transfer,
);
