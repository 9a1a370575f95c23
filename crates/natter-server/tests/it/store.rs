//! The store conformance suite: the same checks against SQLite and PostgreSQL. Each backend
//! gets a fresh database per test (a temp dir, or `CREATE DATABASE natter_test_*` dropped
//! after). "Two nodes" are two store instances opened on the same database.

use crate::common::services::TestDb;
use natter_server::store::files::{File, Unreferenced, Upload};
use natter_server::store::postgres::PgStore;
use natter_server::store::sqlite::SqliteStore;
use natter_server::store::{
    Account, Appended, Befriend, Category, ChatId, ChatKind, ChatState, Device, Friend, GroupEdit,
    GroupSummary, Identity, Index, Invitation, JoinMode, JoinRequest, MAX_UNREAD, NewAccount,
    NewMessage, NewsCounts, Ocid, Part, ProfileEdit, Range, ResetState, Revoke, Role, SearchBy,
    SessionInfo, Store, StoreError, Unique, group_adds, kind, status,
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
        [Friend {
            ocid: c,
            since: 30,
            remark: String::new()
        }]
    );
    assert_eq!(
        s.friends(c).await.expect("c's"),
        [Friend {
            ocid: a,
            since: 30,
            remark: String::new()
        }]
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

// The social part of the contract: profiles, identities, search, account security, remarks and
// blocks, groups, read state and kept notices.

/// Account `n` with a nickname of its own.
fn named(n: u32, nickname: &str) -> NewAccount {
    NewAccount {
        nickname: nickname.to_owned(),
        ..account(n)
    }
}

async fn befriend(s: &dyn Store, a: Ocid, b: Ocid, now: i64) {
    assert_eq!(
        s.request_friend(a, b, "", now).await.expect("ask"),
        Befriend::Requested
    );
    assert!(
        s.answer_friend_request(b, a, true, now)
            .await
            .expect("accept")
    );
}

fn ocids(accounts: &[Account]) -> Vec<Ocid> {
    accounts.iter().map(|a| a.ocid).collect()
}

fn group_ids(groups: &[GroupSummary]) -> Vec<ChatId> {
    groups.iter().map(|g| g.id).collect()
}

/// A session token hash: sessions are listed with 32-byte hashes.
fn token(n: u8) -> [u8; 32] {
    [n; 32]
}

/// Profile edits change only the fields given; usernames and phones are set, cleared, and never
/// shared by two accounts.
async fn profiles(b: &Backend) {
    let s = b.open().await;
    let a = s.create_account(account(1)).await.expect("a");
    let mut other = account(2);
    other.username = Some("bee".into());
    other.phone = Some("+100".into());
    s.create_account(other).await.expect("b");

    let edit = ProfileEdit {
        nickname: Some("Ann".into()),
        avatar: Some("ann.png".into()),
        signature: Some("sig".into()),
        description: Some("about".into()),
        sex: Some(2),
        status_text: Some("busy".into()),
        username: Some(Some("ann".into())),
        phone: Some(Some("+200".into())),
    };
    let edited = s.update_profile(a.ocid, &edit, 50).await.expect("edit");
    let expected = Account {
        nickname: "Ann".into(),
        avatar: "ann.png".into(),
        signature: "sig".into(),
        description: "about".into(),
        sex: 2,
        status_text: "busy".into(),
        username: Some("ann".into()),
        phone: Some("+200".into()),
        modified_at: 50,
        ..a.clone()
    };
    assert_eq!(edited, expected);
    assert_eq!(
        s.account(a.ocid).await.expect("read"),
        Some(expected.clone())
    );

    // `None` leaves a field as it is.
    let one = ProfileEdit {
        signature: Some("new sig".into()),
        ..ProfileEdit::default()
    };
    let edited = s.update_profile(a.ocid, &one, 60).await.expect("edit");
    assert_eq!(
        edited,
        Account {
            signature: "new sig".into(),
            modified_at: 60,
            ..expected
        }
    );
    assert_eq!(s.account(a.ocid).await.expect("read"), Some(edited.clone()));

    // Another account's username or phone is refused, and nothing changes.
    let taken = ProfileEdit {
        nickname: Some("changed".into()),
        username: Some(Some("bee".into())),
        ..ProfileEdit::default()
    };
    assert!(matches!(
        s.update_profile(a.ocid, &taken, 70).await,
        Err(StoreError::Conflict(Unique::Username))
    ));
    let taken = ProfileEdit {
        phone: Some(Some("+100".into())),
        ..ProfileEdit::default()
    };
    assert!(matches!(
        s.update_profile(a.ocid, &taken, 71).await,
        Err(StoreError::Conflict(Unique::Phone))
    ));
    assert_eq!(
        s.account(a.ocid).await.expect("read"),
        Some(edited.clone()),
        "a refused edit changes nothing"
    );
    // Setting one's own identity again is no conflict.
    let same = ProfileEdit {
        username: Some(Some("ann".into())),
        phone: Some(Some("+200".into())),
        ..ProfileEdit::default()
    };
    s.update_profile(a.ocid, &same, 72).await.expect("same");

    // Clearing frees them for another account.
    let clear = ProfileEdit {
        username: Some(None),
        phone: Some(None),
        ..ProfileEdit::default()
    };
    let cleared = s.update_profile(a.ocid, &clear, 80).await.expect("clear");
    assert_eq!(
        (cleared.username, cleared.phone, cleared.email),
        (None, None, a.email.clone())
    );
    assert_eq!(cleared.modified_at, 80);
    let take = ProfileEdit {
        username: Some(Some("ann".into())),
        phone: Some(Some("+200".into())),
        ..ProfileEdit::default()
    };
    let b2 = s.update_profile(o(2), &take, 90).await.expect("freed");
    assert_eq!(
        (b2.username.as_deref(), b2.phone.as_deref()),
        (Some("ann"), Some("+200"))
    );
    // Two accounts without a username or phone do not collide.
    let third = s.create_account(account(3)).await.expect("c");
    s.update_profile(third.ocid, &clear, 91)
        .await
        .expect("clear none");
    s.close().await;
}

/// Every login identity finds its live account; unknown ones find nothing.
async fn identities(b: &Backend) {
    let s = b.open().await;
    let mut new = account(1);
    new.username = Some("ann".into());
    new.phone = Some("+1".into());
    let a = s.create_account(new).await.expect("a");
    let c = s.create_account(account(2)).await.expect("c");
    for id in [
        Identity::Email("user1@example.com".into()),
        Identity::Phone("+1".into()),
        Identity::Username("ann".into()),
    ] {
        assert_eq!(
            s.account_by(&id).await.expect("by identity"),
            Some(a.clone()),
            "{id:?}"
        );
    }
    assert_eq!(
        s.account_by(&Identity::Email("user2@example.com".into()))
            .await
            .expect("by email"),
        Some(c)
    );
    for id in [
        Identity::Email("user3@example.com".into()),
        Identity::Phone("+2".into()),
        Identity::Username("bob".into()),
        // An identity of one kind is not looked up as another.
        Identity::Username("+1".into()),
        Identity::Phone("ann".into()),
    ] {
        assert_eq!(s.account_by(&id).await.expect("missing"), None, "{id:?}");
    }
    s.close().await;
}

/// Search by ocid, by identity, and by the start of the nickname (any case), ascending by ocid
/// and paged; deleted accounts are never found.
async fn search(b: &Backend) {
    let s = b.open().await;
    let mut alice = named(1, "Alice");
    alice.username = Some("al".into());
    s.create_account(alice).await.expect("alice");
    for (n, nick) in [
        (2, "alfred"),
        (3, "ALBERT"),
        (4, "Bob"),
        (5, "Al"),
        (6, "malice"),
    ] {
        s.create_account(named(n, nick)).await.expect("account");
    }
    let find = |by: SearchBy, after: Ocid, limit: u32| {
        let s = s.clone();
        async move { ocids(&s.search_accounts(&by, after, limit).await.expect("search")) }
    };
    let nick = |p: &str| SearchBy::NicknamePrefix(p.to_owned());
    assert_eq!(
        find(nick("al"), Ocid(0), 10).await,
        [o(1), o(2), o(3), o(5)]
    );
    assert_eq!(
        find(nick("AL"), Ocid(0), 10).await,
        [o(1), o(2), o(3), o(5)],
        "any case"
    );
    assert_eq!(find(nick("ali"), Ocid(0), 10).await, [o(1)], "a prefix");
    assert_eq!(find(nick("alice"), Ocid(0), 10).await, [o(1)]);
    assert!(find(nick("lice"), Ocid(0), 10).await.is_empty());
    assert_eq!(find(nick("al"), Ocid(0), 2).await, [o(1), o(2)], "limit");
    assert_eq!(find(nick("al"), o(2), 2).await, [o(3), o(5)], "after");
    assert!(find(nick("al"), o(5), 2).await.is_empty());
    assert_eq!(
        find(nick(""), Ocid(0), 10).await,
        (1..=6).map(o).collect::<Vec<_>>()
    );

    assert_eq!(find(SearchBy::Ocid(o(4)), Ocid(0), 10).await, [o(4)]);
    assert!(find(SearchBy::Ocid(o(4)), o(4), 10).await.is_empty());
    assert!(find(SearchBy::Ocid(Ocid(99)), Ocid(0), 10).await.is_empty());
    let by_name = SearchBy::Identity(Identity::Username("al".into()));
    assert_eq!(find(by_name, Ocid(0), 10).await, [o(1)]);
    let by_mail = SearchBy::Identity(Identity::Email("user4@example.com".into()));
    assert_eq!(find(by_mail, Ocid(0), 10).await, [o(4)]);
    let by_phone = SearchBy::Identity(Identity::Phone("+1".into()));
    assert!(find(by_phone, Ocid(0), 10).await.is_empty());

    // Whole accounts come back.
    let found = s
        .search_accounts(&SearchBy::Ocid(o(1)), Ocid(0), 1)
        .await
        .expect("search");
    assert_eq!(found, [s.account(o(1)).await.expect("read").expect("a")]);

    s.delete_account(o(5), 100).await.expect("delete");
    assert_eq!(find(nick("al"), Ocid(0), 10).await, [o(1), o(2), o(3)]);
    assert!(find(SearchBy::Ocid(o(5)), Ocid(0), 10).await.is_empty());
    let by_mail = SearchBy::Identity(Identity::Email("user5@example.com".into()));
    assert!(find(by_mail, Ocid(0), 10).await.is_empty());
    s.close().await;
}

/// A new password revokes every other session (and their devices' marks); the sessions left
/// are listed oldest first, without revoked or expired ones.
async fn passwords_and_sessions(b: &Backend) {
    let s = b.open().await;
    let a = s.create_account(account(1)).await.expect("a").ocid;
    let other = s.create_account(account(2)).await.expect("other").ocid;
    let p = s.private_chat(a, other, 1).await.expect("private");
    new_message(&*s, text(p.id, other, "hi", None)).await;
    for (n, created, expires) in [(2, 20, 1000), (1, 10, 1000), (3, 5, 100), (4, 30, 1000)] {
        s.create_session(a, &token(n), created, expires)
            .await
            .expect("session");
    }
    s.create_session(other, &token(9), 1, 1000)
        .await
        .expect("session");
    s.revoke_session(&token(4)).await.expect("revoke");
    s.mark_delivered(a, &Device(token(1)), &[(p.id, Index(1))])
        .await
        .expect("mark");

    let info = |n: u8, created_at: i64, expires_at: i64| SessionInfo {
        token_hash: token(n),
        created_at,
        expires_at,
    };
    assert_eq!(
        s.sessions_of(a, 50).await.expect("sessions"),
        [info(3, 5, 100), info(1, 10, 1000), info(2, 20, 1000)]
    );
    assert_eq!(
        s.sessions_of(a, 100).await.expect("sessions"),
        [info(1, 10, 1000), info(2, 20, 1000)],
        "a session expiring at `now` has expired"
    );
    assert!(s.sessions_of(Ocid(99), 0).await.expect("none").is_empty());

    // Every unrevoked session but the one kept, the expired one too.
    assert_eq!(
        s.set_password(a, "new-hash", Revoke::AllBut(&token(2)[..]))
            .await
            .expect("set password"),
        2
    );
    let account = s.account(a).await.expect("read").expect("a");
    assert_eq!(account.password_hash, "new-hash");
    assert_eq!(s.session(&token(1)).await.expect("lookup"), None);
    assert_eq!(s.session(&token(3)).await.expect("lookup"), None);
    assert!(s.session(&token(2)).await.expect("lookup").is_some());
    assert!(
        s.session(&token(9)).await.expect("lookup").is_some(),
        "other accounts keep theirs"
    );
    assert_eq!(
        s.sessions_of(a, 50).await.expect("sessions"),
        [info(2, 20, 1000)]
    );
    let marks = s.memberships(a, &Device(token(1))).await.expect("marks");
    assert_eq!(marks[0].device, None, "a revoked device's marks go");

    assert_eq!(
        s.set_password(a, "kept", Revoke::None).await.expect("keep"),
        0
    );
    assert_eq!(s.sessions_of(a, 50).await.expect("sessions").len(), 1);
    assert_eq!(
        s.set_password(a, "newer", Revoke::All)
            .await
            .expect("again"),
        1
    );
    assert!(s.sessions_of(a, 50).await.expect("sessions").is_empty());
    assert_eq!(
        s.set_password(a, "newest", Revoke::All)
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        s.account(a).await.expect("read").expect("a").password_hash,
        "newest"
    );
    s.close().await;
}

/// The security question and answer, and the count of wrong answers.
async fn security(b: &Backend) {
    let s = b.open().await;
    let a = s.create_account(account(1)).await.expect("a").ocid;
    let none = ResetState {
        question: None,
        answer_hash: None,
        failures: 0,
        blocked_until: 0,
    };
    assert_eq!(s.reset_state(a).await.expect("state"), Some(none));
    s.set_security(a, "First pet?", "answer-hash")
        .await
        .expect("set");
    let set = ResetState {
        question: Some("First pet?".into()),
        answer_hash: Some("answer-hash".into()),
        failures: 0,
        blocked_until: 0,
    };
    assert_eq!(s.reset_state(a).await.expect("state"), Some(set.clone()));
    assert_eq!(
        s.account(a)
            .await
            .expect("read")
            .expect("a")
            .security_question
            .as_deref(),
        Some("First pet?")
    );
    s.set_reset_failures(a, 3, 5_000).await.expect("failures");
    assert_eq!(
        s.reset_state(a).await.expect("state"),
        Some(ResetState {
            failures: 3,
            blocked_until: 5_000,
            ..set.clone()
        })
    );
    // Answers are counted before they are checked: none while refused; the `max`th wrong
    // one sets the lock and starts the count again.
    let count = |now, until| s.count_reset_attempt(a, 5, now, until);
    assert_eq!(count(4_999, 9_000).await.expect("locked"), None);
    assert_eq!(count(5_000, 9_000).await.expect("fourth"), Some(5_000));
    assert_eq!(count(5_001, 9_000).await.expect("fifth"), Some(9_000));
    assert_eq!(
        s.reset_state(a).await.expect("state"),
        Some(ResetState {
            failures: 0,
            blocked_until: 9_000,
            ..set.clone()
        })
    );
    assert_eq!(count(8_999, 20_000).await.expect("locked again"), None);
    assert_eq!(
        s.count_reset_attempt(Ocid(99), 5, 0, 1)
            .await
            .expect("missing"),
        None
    );
    s.set_reset_failures(a, 0, 0).await.expect("cleared");
    assert_eq!(s.reset_state(a).await.expect("state"), Some(set));
    s.set_security(a, "Town?", "other-hash")
        .await
        .expect("replace");
    let state = s.reset_state(a).await.expect("state").expect("a");
    assert_eq!(
        (state.question.as_deref(), state.answer_hash.as_deref()),
        (Some("Town?"), Some("other-hash"))
    );
    assert_eq!(s.reset_state(Ocid(99)).await.expect("missing"), None);
    s.close().await;
}

/// A deleted account keeps its row and ocid and loses everything else; its identities can be
/// taken by a new account.
async fn delete_account(b: &Backend) {
    let s = b.open().await;
    let mut new = account(1);
    new.username = Some("gone".into());
    new.phone = Some("+1".into());
    let a = s.create_account(new).await.expect("a").ocid;
    for n in 2..=5 {
        s.create_account(account(n)).await.expect("account");
    }
    s.set_security(a, "q?", "answer").await.expect("security");
    for n in [1, 2] {
        s.create_session(a, &token(n), 1, 1000)
            .await
            .expect("session");
    }
    s.create_session(o(3), &token(3), 1, 1000)
        .await
        .expect("session");
    befriend(&*s, a, o(2), 2).await;
    befriend(&*s, o(2), o(3), 2).await;
    s.request_friend(o(3), a, "to a", 3).await.expect("ask");
    s.request_friend(a, o(4), "from a", 3).await.expect("ask");
    s.block(a, o(5), 4).await.expect("block");
    s.block(o(5), a, 4).await.expect("block");
    s.block(o(3), o(4), 4).await.expect("block");
    let g = s
        .create_group(o(2), "g", &[o(2), o(3)], 5)
        .await
        .expect("group")
        .id;
    s.request_join(g, a, "let me in", 6).await.expect("request");
    s.request_join(g, o(5), "me too", 6).await.expect("request");
    s.invite(g, a, o(2), 7).await.expect("invite a");
    s.invite(g, o(4), a, 7).await.expect("invited by a");
    s.keep_notice(&[a], "{}", 8).await.expect("notice");
    s.keep_notice(&[o(2)], r#"{"kept":true}"#, 8)
        .await
        .expect("notice");
    let p = s.private_chat(a, o(2), 9).await.expect("private");
    let said = new_message(&*s, text(p.id, a, "bye", None)).await;

    s.delete_account(a, 100).await.expect("delete");

    let gone = s.account(a).await.expect("read").expect("row kept");
    assert_eq!(gone.ocid, a);
    assert!(gone.deleted);
    assert_eq!(
        (gone.email, gone.phone, gone.username),
        (None, None, None),
        "identities cleared"
    );
    assert_eq!(gone.password_hash, "", "password cleared");
    assert_eq!(gone.security_question, None);
    assert!(
        s.reset_state(a)
            .await
            .expect("state")
            .is_none_or(|r| r.answer_hash.is_none()),
        "security answer cleared"
    );
    for id in [
        Identity::Email("user1@example.com".into()),
        Identity::Phone("+1".into()),
        Identity::Username("gone".into()),
    ] {
        assert_eq!(s.account_by(&id).await.expect("by identity"), None);
    }
    assert_eq!(s.session(&token(1)).await.expect("lookup"), None);
    assert_eq!(s.session(&token(2)).await.expect("lookup"), None);
    assert!(s.sessions_of(a, 0).await.expect("sessions").is_empty());
    assert!(s.session(&token(3)).await.expect("lookup").is_some());

    assert!(s.friends(a).await.expect("friends").is_empty());
    assert_eq!(
        s.friends(o(2))
            .await
            .expect("friends")
            .iter()
            .map(|f| f.ocid)
            .collect::<Vec<_>>(),
        [o(3)]
    );
    assert!(s.friend_requests(a).await.expect("requests").is_empty());
    assert!(s.friend_requests(o(4)).await.expect("requests").is_empty());
    assert!(s.blocked(a).await.expect("blocked").is_empty());
    assert!(!s.blocks(o(5), a).await.expect("blocks"));
    assert!(s.blocks(o(3), o(4)).await.expect("blocks"), "others' kept");
    assert_eq!(
        s.join_requests(g)
            .await
            .expect("requests")
            .iter()
            .map(|r| r.ocid)
            .collect::<Vec<_>>(),
        [o(5)]
    );
    assert!(s.invitations(a).await.expect("invitations").is_empty());
    assert!(
        s.invitations(o(4)).await.expect("invitations").is_empty(),
        "invitations it sent go too"
    );
    assert!(s.take_notices(a).await.expect("notices").is_empty());
    assert_eq!(
        s.take_notices(o(2)).await.expect("notices"),
        [r#"{"kept":true}"#]
    );
    assert_eq!(
        s.messages(p.id, Range::Latest, 10).await.expect("history"),
        [said],
        "its messages stay"
    );

    // Its identities are free again; its ocid is not given again.
    let mut again = account(6);
    again.email = Some("user1@example.com".into());
    again.username = Some("gone".into());
    again.phone = Some("+1".into());
    let new = s.create_account(again).await.expect("identities reused");
    assert_ne!(new.ocid, a);
    assert_eq!(
        s.account_by(&Identity::Username("gone".into()))
            .await
            .expect("by username"),
        Some(new)
    );
    s.close().await;
}

/// Remarks are one friend's private name for another; blocking ends a friendship and the
/// requests between the two, and unblocking does not bring them back.
async fn remarks_and_blocks(b: &Backend) {
    let s = b.open().await;
    for n in 1..=5 {
        s.create_account(account(n)).await.expect("account");
    }
    let (a, c, d, e, f) = (o(1), o(2), o(3), o(4), o(5));
    befriend(&*s, a, c, 10).await;
    befriend(&*s, a, f, 10).await;
    assert!(s.set_remark(a, c, "Cee").await.expect("remark"));
    assert_eq!(
        s.friends(a).await.expect("friends")[0],
        Friend {
            ocid: c,
            since: 10,
            remark: "Cee".into()
        }
    );
    assert_eq!(
        s.friends(c).await.expect("friends")[0].remark,
        "",
        "a remark is seen only by the one who set it"
    );
    assert!(s.set_remark(a, c, "").await.expect("cleared"));
    assert_eq!(s.friends(a).await.expect("friends")[0].remark, "");
    assert!(!s.set_remark(a, d, "D").await.expect("not friends"));

    s.request_friend(d, a, "from d", 11).await.expect("ask");
    s.request_friend(a, e, "to e", 11).await.expect("ask");
    s.block(a, e, 20).await.expect("block e");
    s.block(a, c, 21).await.expect("block c");
    s.block(a, d, 22).await.expect("block d");
    assert_eq!(s.blocked(a).await.expect("blocked"), [c, d, e], "ascending");
    assert!(s.blocks(a, c).await.expect("blocks"));
    assert!(!s.blocks(c, a).await.expect("one way"));
    assert!(s.blocked(c).await.expect("blocked").is_empty());
    let friend_ids = |v: Vec<Friend>| v.iter().map(|f| f.ocid).collect::<Vec<_>>();
    assert_eq!(friend_ids(s.friends(a).await.expect("friends")), [f]);
    assert!(s.friends(c).await.expect("friends").is_empty());
    assert!(
        s.friend_requests(a).await.expect("requests").is_empty(),
        "the blocked one's request to the blocker ends"
    );
    assert!(
        s.friend_requests(e).await.expect("requests").is_empty(),
        "the blocker's request to the blocked one ends"
    );
    s.block(a, c, 30).await.expect("block again");
    assert_eq!(s.blocked(a).await.expect("blocked"), [c, d, e]);

    assert!(s.unblock(a, c).await.expect("unblock"));
    assert!(!s.unblock(a, c).await.expect("again"));
    assert!(!s.unblock(c, a).await.expect("never blocked"));
    assert!(!s.blocks(a, c).await.expect("blocks"));
    assert_eq!(s.blocked(a).await.expect("blocked"), [d, e]);
    assert_eq!(
        friend_ids(s.friends(a).await.expect("friends")),
        [f],
        "unblocking makes no friends"
    );
    s.close().await;
}

/// A group edit changes only the fields given, and only of a group that exists.
async fn group_edits(b: &Backend) {
    let s = b.open().await;
    for n in 1..=2 {
        s.create_account(account(n)).await.expect("account");
    }
    let g = s
        .create_group(o(1), "team", &[o(1), o(2)], 1)
        .await
        .expect("group");
    let p = s.private_chat(o(1), o(2), 1).await.expect("private");
    let all = GroupEdit {
        name: Some("crew".into()),
        description: Some("about".into()),
        avatar: Some("crew.png".into()),
        join_mode: Some(JoinMode::Open),
    };
    assert!(s.update_group(g.id, &all).await.expect("edit"));
    let chat = s.chat(g.id).await.expect("chat").expect("group");
    assert_eq!(
        (
            chat.name.as_str(),
            chat.description.as_str(),
            chat.avatar.as_str(),
            chat.join_mode
        ),
        ("crew", "about", "crew.png", JoinMode::Open)
    );
    assert_eq!((chat.owner, chat.members.clone()), (g.owner, g.members));

    let one = GroupEdit {
        description: Some("new".into()),
        ..GroupEdit::default()
    };
    assert!(s.update_group(g.id, &one).await.expect("edit"));
    let chat = s.chat(g.id).await.expect("chat").expect("group");
    assert_eq!(
        (
            chat.name.as_str(),
            chat.description.as_str(),
            chat.avatar.as_str(),
            chat.join_mode
        ),
        ("crew", "new", "crew.png", JoinMode::Open)
    );
    let mode = GroupEdit {
        join_mode: Some(JoinMode::Approval),
        ..GroupEdit::default()
    };
    assert!(s.update_group(g.id, &mode).await.expect("edit"));
    assert_eq!(
        s.chat(g.id).await.expect("chat").expect("group").join_mode,
        JoinMode::Approval
    );
    assert!(
        s.update_group(g.id, &GroupEdit::default())
            .await
            .expect("no change")
    );

    let missing = ChatId(g.id.0 + p.id.0 + 100);
    assert!(!s.update_group(missing, &all).await.expect("missing"));
    assert!(
        !s.update_group(missing, &GroupEdit::default())
            .await
            .expect("missing, nothing to change")
    );
    assert!(
        !s.update_group(p.id, &all).await.expect("private"),
        "a private chat is not a group"
    );
    assert_eq!(s.chat(p.id).await.expect("chat").expect("p").name, "");
    s.close().await;
}

/// Members join at the chat's last index (once), leave, and change roles; joining takes the
/// join request and invitation with it.
async fn group_members(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
        s.create_account(account(n)).await.expect("account");
    }
    let g = s
        .create_group(o(1), "g", &[o(1), o(2)], 1)
        .await
        .expect("group")
        .id;
    for i in 0..3 {
        new_message(&*s, text(g, o(1), &format!("m{i}"), None)).await;
    }
    s.request_join(g, o(3), "hi", 5).await.expect("request");
    s.invite(g, o(3), o(1), 6).await.expect("invite");
    s.invite(g, o(4), o(1), 6).await.expect("invite");

    assert_eq!(
        s.add_member(g, o(3), Role::Member, 10).await.expect("add"),
        Some(Index(3)),
        "joins at the last index"
    );
    assert!(s.join_requests(g).await.expect("requests").is_empty());
    assert!(s.invitations(o(3)).await.expect("invitations").is_empty());
    assert_eq!(s.invitations(o(4)).await.expect("invitations").len(), 1);
    let m = s
        .membership(o(3), g)
        .await
        .expect("membership")
        .expect("member");
    assert_eq!((m.joined, m.last_index), (Index(3), Index(3)));
    let chat = s.chat(g).await.expect("chat").expect("g");
    assert_eq!(chat.members, [o(1), o(2), o(3)]);
    assert!(chat.admins.is_empty());

    assert_eq!(
        s.add_member(g, o(3), Role::Admin, 11)
            .await
            .expect("add again"),
        None
    );
    assert!(
        s.chat(g).await.expect("chat").expect("g").admins.is_empty(),
        "a second add changes nothing"
    );
    assert_eq!(
        s.add_member(g, o(4), Role::Admin, 12).await.expect("add"),
        Some(Index(3))
    );
    assert!(s.invitations(o(4)).await.expect("invitations").is_empty());
    assert_eq!(s.chat(g).await.expect("chat").expect("g").admins, [o(4)]);

    assert!(s.set_role(g, o(2), Role::Admin).await.expect("role"));
    assert_eq!(
        s.chat(g).await.expect("chat").expect("g").admins,
        [o(2), o(4)]
    );
    assert!(s.set_role(g, o(4), Role::Member).await.expect("role"));
    assert_eq!(s.chat(g).await.expect("chat").expect("g").admins, [o(2)]);

    assert!(s.remove_member(g, o(3)).await.expect("remove"));
    assert!(!s.remove_member(g, o(3)).await.expect("again"));
    assert_eq!(
        s.chat(g).await.expect("chat").expect("g").members,
        [o(1), o(2), o(4)]
    );
    assert_eq!(s.membership(o(3), g).await.expect("membership"), None);
    assert!(
        !s.set_role(g, o(3), Role::Admin)
            .await
            .expect("not a member")
    );

    new_message(&*s, text(g, o(2), "later", None)).await;
    assert_eq!(
        s.add_member(g, o(3), Role::Member, 20)
            .await
            .expect("rejoin"),
        Some(Index(4))
    );
    assert!(matches!(
        s.add_member(ChatId(g.0 + 100), o(3), Role::Member, 21)
            .await,
        Err(StoreError::NoSuchChat)
    ));
    s.close().await;
}

/// Ownership moves to a member in one step; the old owner stays as an admin.
async fn transfer(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
        s.create_account(account(n)).await.expect("account");
    }
    let g = s
        .create_group(o(1), "g", &[o(1), o(2), o(3)], 1)
        .await
        .expect("group")
        .id;
    assert!(!s.transfer_group(g, o(2), o(3)).await.expect("not owner"));
    assert!(!s.transfer_group(g, o(1), o(4)).await.expect("not member"));
    assert!(
        !s.transfer_group(ChatId(g.0 + 100), o(1), o(2))
            .await
            .expect("no group")
    );
    let chat = s.chat(g).await.expect("chat").expect("g");
    assert_eq!((chat.owner, chat.admins.as_slice()), (Some(o(1)), &[][..]));

    assert!(s.transfer_group(g, o(1), o(2)).await.expect("transfer"));
    let chat = s.chat(g).await.expect("chat").expect("g");
    assert_eq!((chat.owner, chat.admins), (Some(o(2)), vec![o(1)]));
    let role = |ocid: Ocid| {
        let s = s.clone();
        async move {
            s.groups_of(ocid)
                .await
                .expect("groups")
                .iter()
                .find(|x| x.id == g)
                .and_then(|x| x.role)
        }
    };
    assert_eq!(role(o(1)).await, Some(Role::Admin));
    assert_eq!(role(o(2)).await, Some(Role::Owner));
    assert_eq!(role(o(3)).await, Some(Role::Member));
    assert!(
        !s.transfer_group(g, o(1), o(3))
            .await
            .expect("no longer owner")
    );
    assert!(s.transfer_group(g, o(2), o(1)).await.expect("back"));
    let chat = s.chat(g).await.expect("chat").expect("g");
    assert_eq!((chat.owner, chat.admins), (Some(o(1)), vec![o(2)]));
    s.close().await;
}

/// A disbanded group keeps its id and history and loses its members, requests and
/// invitations; it is disbanded once.
async fn disband(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
        s.create_account(account(n)).await.expect("account");
    }
    let g = s
        .create_group(o(1), "gone", &[o(1), o(2)], 1)
        .await
        .expect("group")
        .id;
    let kept = s
        .create_group(o(1), "kept", &[o(1)], 1)
        .await
        .expect("group")
        .id;
    let p = s.private_chat(o(1), o(2), 1).await.expect("private").id;
    new_message(&*s, text(g, o(1), "one", None)).await;
    new_message(&*s, text(g, o(2), "two", None)).await;
    for chat in [g, kept] {
        s.request_join(chat, o(3), "hi", 2).await.expect("request");
        s.invite(chat, o(4), o(1), 3).await.expect("invite");
    }

    assert!(s.disband(g, 50).await.expect("disband"));
    let chat = s.chat(g).await.expect("chat").expect("kept");
    assert!(chat.disbanded);
    assert!(chat.members.is_empty() && chat.admins.is_empty());
    assert_eq!(
        s.messages(g, Range::Latest, 10)
            .await
            .expect("history")
            .len(),
        2
    );
    assert_eq!(s.membership(o(2), g).await.expect("membership"), None);
    assert!(s.join_requests(g).await.expect("requests").is_empty());
    let invited: Vec<ChatId> = s
        .invitations(o(4))
        .await
        .expect("invitations")
        .iter()
        .map(|i| i.chat)
        .collect();
    assert_eq!(invited, [kept]);
    let asked: Vec<ChatId> = s
        .join_requests_for(o(1))
        .await
        .expect("requests")
        .iter()
        .map(|r| r.chat)
        .collect();
    assert_eq!(asked, [kept]);
    assert_eq!(group_ids(&s.groups_of(o(1)).await.expect("groups")), [kept]);
    assert!(!s.chat(kept).await.expect("chat").expect("kept").disbanded);

    assert!(!s.disband(g, 60).await.expect("twice"));
    assert!(matches!(
        s.add_member(g, o(3), Role::Member, 61).await,
        Err(StoreError::NoSuchChat)
    ));
    assert!(
        !s.disband(p, 62).await.expect("private"),
        "a private chat is not disbanded"
    );
    assert_eq!(
        s.chat(p).await.expect("chat").expect("p").members,
        [o(1), o(2)]
    );
    s.close().await;
}

/// Join requests: one per account and group (asking again replaces it), listed per group and
/// for everyone who administers a group.
async fn join_requests(b: &Backend) {
    let s = b.open().await;
    for n in 1..=5 {
        s.create_account(account(n)).await.expect("account");
    }
    // g1: 1 owns, 2 administers, 3 is a member. g2: 3 owns, 1 administers, 2 is a member.
    let g1 = s
        .create_group(o(1), "g1", &[o(1), o(2), o(3)], 1)
        .await
        .expect("group")
        .id;
    let g2 = s
        .create_group(o(3), "g2", &[o(3), o(1), o(2)], 1)
        .await
        .expect("group")
        .id;
    assert!(s.set_role(g1, o(2), Role::Admin).await.expect("role"));
    assert!(s.set_role(g2, o(1), Role::Admin).await.expect("role"));

    s.request_join(g1, o(4), "first", 10)
        .await
        .expect("request");
    s.request_join(g1, o(5), "five", 20).await.expect("request");
    s.request_join(g2, o(4), "g2", 25).await.expect("request");
    s.request_join(g1, o(4), "again", 30)
        .await
        .expect("replace");
    let req = |chat: ChatId, n: u64, message: &str, created_at: i64| JoinRequest {
        chat,
        ocid: o(n),
        message: message.to_owned(),
        created_at,
    };
    assert_eq!(
        s.join_requests(g1).await.expect("requests"),
        [req(g1, 5, "five", 20), req(g1, 4, "again", 30)]
    );
    assert_eq!(
        s.join_requests(g2).await.expect("requests"),
        [req(g2, 4, "g2", 25)]
    );
    assert_eq!(
        s.join_requests_for(o(1))
            .await
            .expect("for owner and admin"),
        [
            req(g1, 5, "five", 20),
            req(g2, 4, "g2", 25),
            req(g1, 4, "again", 30)
        ]
    );
    assert_eq!(
        s.join_requests_for(o(2)).await.expect("for admin"),
        [req(g1, 5, "five", 20), req(g1, 4, "again", 30)],
        "not the requests of a group it is only a member of"
    );
    assert_eq!(
        s.join_requests_for(o(3)).await.expect("for owner"),
        [req(g2, 4, "g2", 25)]
    );
    assert!(s.join_requests_for(o(4)).await.expect("none").is_empty());

    assert!(s.take_join_request(g1, o(4)).await.expect("take"));
    assert!(!s.take_join_request(g1, o(4)).await.expect("again"));
    assert!(!s.take_join_request(g2, o(5)).await.expect("never asked"));
    assert_eq!(
        s.join_requests(g1).await.expect("requests"),
        [req(g1, 5, "five", 20)]
    );
    assert_eq!(
        s.join_requests(g2).await.expect("requests"),
        [req(g2, 4, "g2", 25)]
    );
    s.close().await;
}

/// Invitations: one per account and group (inviting again renews it), listed oldest first.
async fn invitations(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
        s.create_account(account(n)).await.expect("account");
    }
    let g1 = s
        .create_group(o(1), "g1", &[o(1), o(2)], 1)
        .await
        .expect("group")
        .id;
    let g2 = s
        .create_group(o(2), "g2", &[o(2), o(3)], 1)
        .await
        .expect("group")
        .id;
    s.invite(g1, o(4), o(1), 10).await.expect("invite");
    s.invite(g2, o(4), o(2), 5).await.expect("invite");
    s.invite(g1, o(3), o(2), 7).await.expect("invite");
    let inv = |chat: ChatId, n: u64, by: u64, created_at: i64| Invitation {
        chat,
        ocid: o(n),
        by: o(by),
        created_at,
    };
    assert_eq!(
        s.invitations(o(4)).await.expect("invitations"),
        [inv(g2, 4, 2, 5), inv(g1, 4, 1, 10)]
    );
    s.invite(g2, o(4), o(3), 20).await.expect("renew");
    assert_eq!(
        s.invitations(o(4)).await.expect("invitations"),
        [inv(g1, 4, 1, 10), inv(g2, 4, 3, 20)]
    );
    assert_eq!(
        s.invitations(o(3)).await.expect("invitations"),
        [inv(g1, 3, 2, 7)]
    );
    assert!(s.invitations(o(1)).await.expect("none").is_empty());
    assert!(s.take_invitation(g1, o(4)).await.expect("take"));
    assert!(!s.take_invitation(g1, o(4)).await.expect("again"));
    assert!(!s.take_invitation(g2, o(3)).await.expect("never invited"));
    assert_eq!(
        s.invitations(o(4)).await.expect("invitations"),
        [inv(g2, 4, 3, 20)]
    );
    assert_eq!(s.invitations(o(3)).await.expect("invitations").len(), 1);
    s.close().await;
}

/// An account's groups with its role and their sizes; live groups found by the start of their
/// name (any case), ascending by id and paged.
async fn group_lists(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    let group = |owner: u64, name: &'static str, members: Vec<u64>| {
        let s = s.clone();
        async move {
            let members: Vec<Ocid> = members.into_iter().map(o).collect();
            s.create_group(o(owner), name, &members, 1)
                .await
                .expect("group")
                .id
        }
    };
    let g1 = group(1, "Rust fans", vec![1, 2]).await;
    let g2 = group(2, "rustaceans", vec![2, 3, 1]).await;
    let g3 = group(1, "Go team", vec![1]).await;
    let g4 = group(3, "RUSTY", vec![3]).await;
    let g5 = group(3, "rust, the old one", vec![3]).await;
    s.private_chat(o(1), o(2), 1).await.expect("private");
    assert!(s.set_role(g2, o(1), Role::Admin).await.expect("role"));
    let open = GroupEdit {
        join_mode: Some(JoinMode::Open),
        avatar: Some("r.png".into()),
        ..GroupEdit::default()
    };
    assert!(s.update_group(g1, &open).await.expect("edit"));
    assert!(s.disband(g5, 2).await.expect("disband"));

    let summary = |id, name: &str, avatar: &str, join_mode, member_count, role| GroupSummary {
        id,
        name: name.to_owned(),
        avatar: avatar.to_owned(),
        join_mode,
        member_count,
        role,
    };
    use JoinMode::{Approval, Open};
    assert_eq!(
        s.groups_of(o(1)).await.expect("groups"),
        [
            summary(g1, "Rust fans", "r.png", Open, 2, Some(Role::Owner)),
            summary(g2, "rustaceans", "", Approval, 3, Some(Role::Admin)),
            summary(g3, "Go team", "", Approval, 1, Some(Role::Owner)),
        ]
    );
    assert_eq!(
        s.groups_of(o(3)).await.expect("groups"),
        [
            summary(g2, "rustaceans", "", Approval, 3, Some(Role::Member)),
            summary(g4, "RUSTY", "", Approval, 1, Some(Role::Owner)),
        ]
    );

    assert_eq!(
        s.find_groups("rust", ChatId(0), 10).await.expect("find"),
        [
            summary(g1, "Rust fans", "r.png", Open, 2, None),
            summary(g2, "rustaceans", "", Approval, 3, None),
            summary(g4, "RUSTY", "", Approval, 1, None),
        ],
        "any case; not disbanded groups"
    );
    let find = |prefix: &'static str, after: ChatId, limit: u32| {
        let s = s.clone();
        async move { group_ids(&s.find_groups(prefix, after, limit).await.expect("find")) }
    };
    assert_eq!(find("RUST", ChatId(0), 10).await, [g1, g2, g4]);
    assert_eq!(find("rust", ChatId(0), 2).await, [g1, g2], "limit");
    assert_eq!(find("rust", g2, 2).await, [g4], "after");
    assert!(find("rust", g4, 2).await.is_empty());
    assert_eq!(find("rustA", ChatId(0), 10).await, [g2]);
    assert_eq!(find("go", ChatId(0), 10).await, [g3]);
    assert!(find("team", ChatId(0), 10).await.is_empty(), "a prefix");
    assert_eq!(
        find("", ChatId(0), 10).await,
        [g1, g2, g3, g4],
        "groups only"
    );
    s.close().await;
}

/// Racing group changes on two nodes: one transfer of a group wins, an account is added once,
/// and a transfer racing a disband neither fails nor leaves a member behind.
async fn concurrent_group_changes(b: &Backend) {
    let one = b.open().await;
    let two = b.open().await;
    for n in 1..=4 {
        one.create_account(account(n)).await.expect("account");
    }
    for round in 0..8 {
        let g = one
            .create_group(o(1), "g", &[o(1), o(2), o(3)], round)
            .await
            .expect("group")
            .id;
        let transfers = [(one.clone(), o(2)), (two.clone(), o(3))].map(|(s, to)| {
            tokio::spawn(async move { s.transfer_group(g, o(1), to).await.expect("transfer") })
        });
        let adds = [one.clone(), two.clone()].map(|s| {
            tokio::spawn(async move { s.add_member(g, o(4), Role::Member, 1).await.expect("add") })
        });
        let mut won = Vec::new();
        for t in transfers {
            won.push(t.await.expect("task"));
        }
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "round {round}: {won:?}"
        );
        let mut added = Vec::new();
        for t in adds {
            added.push(t.await.expect("task"));
        }
        assert_eq!(added.iter().filter(|a| a.is_some()).count(), 1, "{added:?}");
        let chat = one.chat(g).await.expect("chat").expect("g");
        let new_owner = if won[0] { o(2) } else { o(3) };
        assert_eq!((chat.owner, chat.admins), (Some(new_owner), vec![o(1)]));
        let mut owners = 0;
        for n in 1..=4 {
            let role = one
                .groups_of(o(n))
                .await
                .expect("groups")
                .into_iter()
                .find(|x| x.id == g)
                .and_then(|x| x.role);
            owners += usize::from(role == Some(Role::Owner));
        }
        assert_eq!(owners, 1, "round {round}: one owner");

        let h = one
            .create_group(o(1), "h", &[o(1), o(2), o(3)], round)
            .await
            .expect("group")
            .id;
        let transfer = {
            let s = one.clone();
            tokio::spawn(async move { s.transfer_group(h, o(1), o(2)).await })
        };
        let disband = {
            let s = two.clone();
            tokio::spawn(async move { s.disband(h, 2).await })
        };
        transfer.await.expect("task").expect("transfer");
        assert!(disband.await.expect("task").expect("disband"));
        let chat = one.chat(h).await.expect("chat").expect("h");
        assert!(chat.disbanded && chat.members.is_empty(), "{chat:?}");
    }
    one.close().await;
    two.close().await;
}

/// How far each member has read: raised, never lowered, never past the last message; the chat
/// list counts the unread messages others sent.
async fn read_state(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    let p = s.private_chat(o(1), o(2), 1).await.expect("private").id;
    let g = s
        .create_group(o(1), "g", &[o(1), o(2)], 1)
        .await
        .expect("group")
        .id;
    new_message(&*s, text(p, o(1), "m1", None)).await;
    new_message(&*s, text(p, o(2), "m2", None)).await;
    new_message(&*s, text(p, o(2), "m3", None)).await;
    let m4 = new_message(&*s, text(p, o(1), "m4", None)).await;
    let states = |ocid: Ocid| {
        let s = s.clone();
        async move {
            let mut all = s.chat_states(ocid).await.expect("states");
            all.sort_by_key(|c| c.chat);
            all
        }
    };
    let state = |chat, last: Option<&natter_server::store::Message>, read, unread| ChatState {
        chat,
        last_index: last.map_or(Index::ZERO, |m| m.index),
        last: last.cloned(),
        read: Index(read),
        unread,
    };
    assert_eq!(
        states(o(1)).await,
        [state(p, Some(&m4), 0, 2), state(g, None, 0, 0)]
    );
    assert_eq!(
        states(o(2)).await,
        [state(p, Some(&m4), 0, 2), state(g, None, 0, 0)]
    );
    assert!(states(o(3)).await.is_empty());

    assert_eq!(
        s.mark_read(o(1), p, Index(2)).await.expect("read"),
        Some(Index(2))
    );
    assert_eq!(states(o(1)).await[0], state(p, Some(&m4), 2, 1));
    assert_eq!(
        s.mark_read(o(1), p, Index(1)).await.expect("lower"),
        Some(Index(2)),
        "never lowered"
    );
    assert_eq!(
        s.mark_read(o(1), p, Index(100))
            .await
            .expect("past the end"),
        Some(Index(4)),
        "never past the last message"
    );
    assert_eq!(states(o(1)).await[0], state(p, Some(&m4), 4, 0));
    assert_eq!(
        s.mark_read(o(2), p, Index(u64::MAX)).await.expect("all"),
        Some(Index(4))
    );
    assert_eq!(states(o(2)).await[0], state(p, Some(&m4), 4, 0));
    assert_eq!(
        s.mark_read(o(2), g, Index(3)).await.expect("empty chat"),
        Some(Index(0))
    );
    assert_eq!(
        s.mark_read(o(3), p, Index(1)).await.expect("stranger"),
        None
    );
    assert_eq!(
        s.mark_read(o(1), ChatId(p.0 + g.0 + 100), Index(1))
            .await
            .expect("no chat"),
        None
    );

    // One's own messages are never unread.
    let m5 = new_message(&*s, text(p, o(1), "m5", None)).await;
    assert_eq!(states(o(1)).await[0], state(p, Some(&m5), 4, 0));
    assert_eq!(states(o(2)).await[0], state(p, Some(&m5), 4, 1));

    // A member who joins late has read up to where it joined.
    new_message(&*s, text(g, o(1), "g1", None)).await;
    new_message(&*s, text(g, o(2), "g2", None)).await;
    assert_eq!(
        s.add_member(g, o(3), Role::Member, 5).await.expect("add"),
        Some(Index(2))
    );
    let g3 = new_message(&*s, text(g, o(2), "g3", None)).await;
    assert_eq!(states(o(3)).await, [state(g, Some(&g3), 2, 1)]);
    assert_eq!(states(o(1)).await[1], state(g, Some(&g3), 0, 2));
    s.close().await;
}

/// Notices kept for an account are taken once, oldest first.
async fn notices(b: &Backend) {
    let s = b.open().await;
    for n in 1..=2 {
        s.create_account(account(n)).await.expect("account");
    }
    assert!(s.take_notices(o(1)).await.expect("none").is_empty());
    s.keep_notice(&[o(1)], r#"{"n":1}"#, 10)
        .await
        .expect("keep");
    s.keep_notice(&[o(2)], r#"{"other":true}"#, 11)
        .await
        .expect("keep");
    s.keep_notice(&[o(1)], r#"{"n":2}"#, 12)
        .await
        .expect("keep");
    s.keep_notice(&[o(1)], r#"{"n":3}"#, 12)
        .await
        .expect("keep");
    assert_eq!(
        s.take_notices(o(1)).await.expect("take"),
        [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]
    );
    assert!(
        s.take_notices(o(1)).await.expect("taken").is_empty(),
        "taken once"
    );
    assert_eq!(
        s.take_notices(o(2)).await.expect("take"),
        [r#"{"other":true}"#]
    );
    s.keep_notice(&[o(1)], r#"{"n":4}"#, 13)
        .await
        .expect("keep");
    assert_eq!(s.take_notices(o(1)).await.expect("take"), [r#"{"n":4}"#]);
    // One notice kept for several accounts at once.
    s.keep_notice(&[o(1), o(2)], r#"{"n":5}"#, 14)
        .await
        .expect("keep for two");
    assert_eq!(s.take_notices(o(2)).await.expect("take"), [r#"{"n":5}"#]);
    assert_eq!(s.take_notices(o(1)).await.expect("take"), [r#"{"n":5}"#]);
    s.close().await;
}

/// What waits for an account, counted in one read; unread counts stop at `MAX_UNREAD` a chat.
async fn news_counts(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
        s.create_account(account(n)).await.expect("account");
    }
    let none = NewsCounts::default();
    assert_eq!(s.news_counts(o(1)).await.expect("counts"), none);

    // Friend requests to o(1), a request to join o(1)'s group (and one to a group o(1) is only
    // a member of), an invitation, a kept notice.
    s.request_friend(o(2), o(1), "hi", 1)
        .await
        .expect("request");
    s.request_friend(o(3), o(1), "hey", 1)
        .await
        .expect("request");
    s.request_friend(o(1), o(4), "mine", 1)
        .await
        .expect("request");
    let owned = s
        .create_group(o(1), "mine", &[o(1)], 1)
        .await
        .expect("group")
        .id;
    let other = s
        .create_group(o(2), "theirs", &[o(1), o(2)], 1)
        .await
        .expect("group")
        .id;
    s.request_join(owned, o(3), "let me in", 2)
        .await
        .expect("join request");
    s.request_join(other, o(4), "me too", 2)
        .await
        .expect("join request");
    let third = s
        .create_group(o(3), "third", &[o(3)], 1)
        .await
        .expect("group")
        .id;
    s.invite(third, o(1), o(3), 3).await.expect("invite");
    s.keep_notice(&[o(1)], "{}", 4).await.expect("keep");

    // Unread: three of o(2)'s in their private chat (one of o(1)'s own does not count), and
    // more than the cap in the group.
    let p = s.private_chat(o(1), o(2), 1).await.expect("private").id;
    for t in ["a", "b", "c"] {
        new_message(&*s, text(p, o(2), t, None)).await;
    }
    new_message(&*s, text(p, o(1), "mine", None)).await;
    for i in 0..=MAX_UNREAD {
        new_message(&*s, text(other, o(2), &format!("g{i}"), None)).await;
    }
    let counts = s.news_counts(o(1)).await.expect("counts");
    assert_eq!(
        counts,
        NewsCounts {
            friend_requests: 2,
            join_requests: 1,
            invitations: 1,
            notices: 1,
            unread: 3 + MAX_UNREAD,
        }
    );
    // Read marks lower it; o(2) administers `other`, whose request it sees.
    s.mark_read(o(1), p, Index(2)).await.expect("read");
    assert_eq!(
        s.news_counts(o(1)).await.expect("counts").unread,
        1 + MAX_UNREAD
    );
    assert_eq!(s.news_counts(o(2)).await.expect("counts").join_requests, 1);
    s.take_notices(o(1)).await.expect("take");
    assert_eq!(s.news_counts(o(1)).await.expect("counts").notices, 0);
    s.close().await;
}

/// What operators do: list, ban, statistics, invitation codes, account events, the readiness
/// write.
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
    s.create_session(o(3), &[3; 32], 10, 5_000)
        .await
        .expect("session");
    s.create_session(o(3), &[4; 32], 20, 1_000)
        .await
        .expect("session");

    let chat = s.private_chat(o(1), o(3), 1).await.expect("chat");
    new_message(&*s, text(chat.id, o(1), "kept", None)).await;
    s.request_friend(o(1), o(3), "", 1).await.expect("ask");
    s.answer_friend_request(o(3), o(1), true, 2)
        .await
        .expect("accept");
    s.create_group(o(1), "team", &[o(1), o(2), o(3)], 3)
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
    s.delete_account(o(3), 3_000).await.expect("delete");
    let stats = s.statistics(2_000).await.expect("stats");
    assert_eq!((stats.accounts_active, stats.accounts_deleted), (1, 1));

    // Invitation codes: used once, within their time.
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
        s.account_by(&Identity::Email("user8@example.com".into()))
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
    assert_eq!(s.statistics(150).await.expect("stats").invites_unused, 1);

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

/// A deployment exported and imported into a new store is the same, row for row (every
/// column of every table the export holds), and goes on from where it was (ids, indexes).
async fn export_import(b: &Backend) {
    let s = b.open().await;
    for n in 1..=4 {
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
    s.set_remark(o(1), o(2), "best").await.expect("remark");
    s.request_friend(o(3), o(1), "me too", 9)
        .await
        .expect("ask");
    s.block(o(2), o(3), 10).await.expect("block");
    s.request_join(g.id, o(4), "let me in", 11)
        .await
        .expect("join request");
    s.keep_notice(&[o(2)], r#"{"n":1}"#, 12)
        .await
        .expect("notice");
    s.delete_account(o(4), 13).await.expect("delete");
    s.create_session(o(1), &[1; 32], 1, i64::MAX)
        .await
        .expect("session");

    let mut first = Vec::new();
    let counts = natter_server::transfer::export(&*s, &mut first)
        .await
        .expect("export");
    assert_eq!(
        [
            counts.of("accounts"),
            counts.of("chats"),
            counts.of("members"),
            counts.of("messages"),
            counts.of("friends"),
            counts.of("friend_requests"),
            counts.of("blocks"),
            counts.of("pending_notices"),
        ],
        [4, 2, 5, 3, 2, 1, 1, 1]
    );
    let text_of = String::from_utf8(first.clone()).expect("utf-8");
    assert!(
        text_of.starts_with("{\"t\":\"natter-export\",\"version\":1}\n"),
        "{text_of}"
    );
    assert!(text_of.contains(r#""remark":"best""#), "{text_of}");

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
    let new = t.create_account(account(5)).await.expect("a new account");
    assert_eq!(new.ocid, o(5));
    let group = t
        .create_group(o(1), "new", &[o(1)], 10)
        .await
        .expect("a new group");
    assert!(group.id > g.id, "chat ids continue");
    t.keep_notice(&[o(2)], r#"{"n":2}"#, 14)
        .await
        .expect("another notice");
    assert_eq!(t.take_notices(o(2)).await.expect("notices").len(), 2);
    assert_eq!(
        t.account(o(3)).await.expect("read").expect("there").status,
        status::BANNED
    );
    assert!(t.account(o(4)).await.expect("read").expect("there").deleted);
    s.close().await;
    t.close().await;
}

/// Service tokens: an account made with one in a transaction that also checks its UUID, its
/// token and an invitation; found by its token's hash; its UUID and nickname read in bulk; its
/// token gone with a deletion; and one key for the hashes, the first one offered, on every
/// node.
async fn service_tokens(b: &Backend) {
    let (s, t) = (b.open().await, b.open().await);
    assert_eq!(s.server_key(1, "k1").await.expect("key"), "k1");
    assert_eq!(
        t.server_key(1, "k2").await.expect("key"),
        "k1",
        "the first key stays"
    );
    assert_eq!(t.server_key(2, "k3").await.expect("another key"), "k3");
    let svc = |n: u32| NewAccount {
        email: None,
        password_hash: String::new(),
        ..account(n)
    };
    let a = s
        .create_service_account(svc(1), "h1", None)
        .await
        .expect("create");
    assert_eq!(
        (a.ocid, a.uuid.as_str(), a.email.as_deref()),
        (o(1), "uuid-1", None)
    );
    assert!(matches!(
        s.create_service_account(svc(1), "h2", None).await,
        Err(StoreError::Conflict(Unique::Uuid))
    ));
    assert!(matches!(
        t.create_service_account(svc(2), "h1", None).await,
        Err(StoreError::Conflict(Unique::ServiceToken))
    ));
    // Nothing of a refused registration is left: the token is free for the next one.
    assert_eq!(t.account_by_uuid("uuid-2").await.expect("read"), None);
    s.create_invite(b"code", 1, None).await.expect("invite");
    assert!(matches!(
        s.create_service_account(svc(2), "h2", Some(b"other")).await,
        Err(StoreError::NoSuchInvite)
    ));
    let c = s
        .create_service_account(svc(2), "h2", Some(b"code"))
        .await
        .expect("with an invitation");
    assert!(matches!(
        s.create_service_account(svc(3), "h3", Some(b"code")).await,
        Err(StoreError::NoSuchInvite)
    ));
    let plain = s.create_account(account(4)).await.expect("plain");
    assert_eq!(
        t.account_by_service_token("h2").await.expect("read"),
        Some(c.clone())
    );
    assert_eq!(t.account_by_service_token("h9").await.expect("read"), None);
    assert_eq!(
        t.account_by_uuid("uuid-4").await.expect("read"),
        Some(plain.clone())
    );
    assert_eq!(
        t.service_token_hash(c.ocid).await.expect("read").as_deref(),
        Some("h2")
    );
    assert_eq!(t.service_token_hash(plain.ocid).await.expect("read"), None);
    let mut refs = t
        .account_refs(&[a.ocid, plain.ocid, Ocid(99)])
        .await
        .expect("refs");
    refs.sort_by_key(|r| r.ocid);
    let seen: Vec<(Ocid, &str, &str)> = refs
        .iter()
        .map(|r| (r.ocid, r.uuid.as_str(), r.nickname.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (a.ocid, "uuid-1", "User 1"),
            (plain.ocid, "uuid-4", "User 4")
        ]
    );
    assert!(t.account_refs(&[]).await.expect("none").is_empty());
    // Any account may be given one; another's is refused; a new one replaces the old.
    assert!(matches!(
        s.set_service_token(plain.ocid, "h1", 6).await,
        Err(StoreError::Conflict(Unique::ServiceToken))
    ));
    s.set_service_token(plain.ocid, "h4", 6).await.expect("set");
    assert_eq!(
        t.account_by_service_token("h4").await.expect("read"),
        Some(plain.clone())
    );
    t.set_service_token(plain.ocid, "h5", 7)
        .await
        .expect("replace");
    assert_eq!(t.account_by_service_token("h4").await.expect("read"), None);
    assert_eq!(
        s.service_token_hash(plain.ocid)
            .await
            .expect("read")
            .as_deref(),
        Some("h5")
    );
    s.set_service_token(plain.ocid, "h5", 8)
        .await
        .expect("the same again");
    s.delete_account(a.ocid, 5).await.expect("delete");
    assert_eq!(t.account_by_service_token("h1").await.expect("read"), None);
    assert_eq!(t.service_token_hash(a.ocid).await.expect("read"), None);
    s.close().await;
    t.close().await;
}

/// The export holds every column of its tables: a column added to the schema and not to
/// `store::TABLES` fails here (SQLite's schema, which PostgreSQL's mirrors).
#[tokio::test]
async fn the_export_knows_every_column() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("natter.db");
    SqliteStore::open(&path).await.expect("open").close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    for table in natter_server::store::TABLES {
        let sql = format!(
            "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
            table.name
        );
        let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .expect("columns");
        let known: Vec<String> = table.columns.iter().map(|(c, _)| (*c).to_owned()).collect();
        assert_eq!(columns, known, "the columns of {}", table.name);
    }
}

fn upload(id: &str, owner: Ocid, length: u64, expires_at: i64) -> Upload {
    Upload {
        id: id.to_owned(),
        owner,
        name: format!("{id}.bin"),
        mime: "application/octet-stream".to_owned(),
        length,
        metadata: "filename YS5iaW4=".to_owned(),
        created_at: 100,
        expires_at,
    }
}

fn finished(u: &Upload, sha256: &str, created_at: i64) -> File {
    File {
        id: u.id.clone(),
        owner: u.owner,
        name: u.name.clone(),
        size: u.length,
        mime: "image/png".to_owned(),
        sha256: sha256.to_owned(),
        width: Some(3),
        height: Some(2),
        public: false,
        created_at,
    }
}

/// Uploads within a quota, finishing into files, who may read them, and what the sweep finds.
async fn files(b: &Backend) {
    let s = b.open().await;
    for n in 1..=3 {
        s.create_account(account(n)).await.expect("account");
    }
    let (a, c, d) = (o(1), o(2), o(3));
    let sha_x = "a".repeat(64);
    // The quota counts announced lengths of uploads and sizes of files.
    assert!(
        s.create_upload(&upload("u1", a, 600, 1_000), 1_000)
            .await
            .expect("u1")
    );
    assert!(
        !s.create_upload(&upload("u2", a, 500, 1_000), 1_000)
            .await
            .expect("u2")
    );
    assert!(
        s.create_upload(&upload("u3", c, 500, 1_000), 1_000)
            .await
            .expect("u3")
    );
    assert_eq!(s.bytes_used(a).await.expect("used"), 600);
    assert_eq!(
        s.upload("u1").await.expect("read"),
        Some(upload("u1", a, 600, 1_000))
    );
    assert_eq!(s.upload("nope").await.expect("read"), None);
    s.touch_upload("u1", 5_000).await.expect("touch");
    assert_eq!(s.expired_uploads(2_000, 10).await.expect("expired"), ["u3"]);
    assert!(s.delete_upload("u3").await.expect("delete"));
    assert!(!s.delete_upload("u3").await.expect("again"));

    // Finishing turns the upload into a file with the same id.
    let u1 = upload("u1", a, 600, 5_000);
    s.finish_upload(&finished(&u1, &sha_x, 200))
        .await
        .expect("finish");
    assert_eq!(s.upload("u1").await.expect("gone"), None);
    let file = s.file("u1").await.expect("file").expect("there");
    assert_eq!(file, finished(&u1, &sha_x, 200));
    assert_eq!(s.bytes_used(a).await.expect("used"), 600);

    // Sent in a chat: its members may read it, others not.
    let chat = s.private_chat(a, c, 300).await.expect("chat");
    assert!(!s.file_shared_with("u1", c).await.expect("before"));
    s.share_file("u1", chat.id).await.expect("share");
    s.share_file("u1", chat.id).await.expect("share twice");
    assert!(s.file_shared_with("u1", c).await.expect("member"));
    assert!(!s.file_shared_with("u1", d).await.expect("stranger"));

    // Two more files with the same bytes, one as an avatar, one referenced by nothing.
    let u4 = upload("u4", d, 10, 9_000);
    let u5 = upload("u5", d, 10, 9_000);
    for u in [&u4, &u5] {
        assert!(s.create_upload(u, 1_000).await.expect("upload"));
        s.finish_upload(&finished(u, &sha_x, 400))
            .await
            .expect("finish");
    }
    s.update_profile(
        d,
        &ProfileEdit {
            avatar: Some("/files/u4".to_owned()),
            ..ProfileEdit::default()
        },
        500,
    )
    .await
    .expect("avatar");
    s.publish_file("u4").await.expect("publish");
    assert!(s.file("u4").await.expect("file").expect("there").public);
    // Only u5 is unreferenced, and only once the grace has passed.
    assert!(
        s.unreferenced_files(400, 10)
            .await
            .expect("none yet")
            .is_empty()
    );
    let orphans = s.unreferenced_files(1_000, 10).await.expect("orphans");
    assert_eq!(
        orphans,
        [Unreferenced {
            id: "u5".into(),
            sha256: sha_x.clone()
        }]
    );
    assert_eq!(
        s.delete_file("u1", 1_000).await.expect("referenced"),
        (false, false)
    );
    // Other files keep the bytes.
    assert_eq!(
        s.delete_file("u5", 1_000).await.expect("orphan"),
        (true, false)
    );
    assert_eq!(s.file("u5").await.expect("read"), None);
    // When the avatar changes, its file is unreferenced too; the last file of its content
    // that goes leaves its bytes unused.
    s.update_profile(
        d,
        &ProfileEdit {
            avatar: Some(String::new()),
            ..ProfileEdit::default()
        },
        600,
    )
    .await
    .expect("no avatar");
    assert_eq!(
        s.delete_file("u4", 1_000).await.expect("old avatar"),
        (true, false)
    );
}

/// Who may put an account into a group without asking: no row until it is set, set again
/// replaces it, other accounts keep theirs, and it goes with a deleted account.
async fn account_settings(b: &Backend) {
    let s = b.open().await;
    let a = s.create_account(account(1)).await.expect("a").ocid;
    let c = s.create_account(account(2)).await.expect("c").ocid;
    assert_eq!(s.group_adds(a).await.expect("read"), None, "never set");
    s.set_group_adds(a, group_adds::NOBODY).await.expect("set");
    assert_eq!(
        s.group_adds(a).await.expect("read"),
        Some(group_adds::NOBODY)
    );
    s.set_group_adds(a, group_adds::EVERYONE)
        .await
        .expect("set again");
    assert_eq!(
        s.group_adds(a).await.expect("read"),
        Some(group_adds::EVERYONE)
    );
    s.set_group_adds(c, group_adds::FRIENDS).await.expect("set");
    assert_eq!(
        s.group_adds(c).await.expect("read"),
        Some(group_adds::FRIENDS)
    );
    assert_eq!(s.group_adds(o(99)).await.expect("read"), None, "no account");
    s.delete_account(a, 5).await.expect("delete");
    assert_eq!(
        s.group_adds(a).await.expect("read"),
        None,
        "gone with the account"
    );
    assert_eq!(
        s.group_adds(c).await.expect("read"),
        Some(group_adds::FRIENDS)
    );
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
    profiles,
    identities,
    search,
    passwords_and_sessions,
    security,
    delete_account,
    remarks_and_blocks,
    group_edits,
    group_members,
    transfer,
    disband,
    join_requests,
    invitations,
    group_lists,
    concurrent_group_changes,
    read_state,
    notices,
    news_counts,
    operations,
    export_import,
    files,
    service_tokens,
    account_settings,
);
