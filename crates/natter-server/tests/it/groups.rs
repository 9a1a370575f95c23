//! Groups through the v1 wire (codes 150-183): a group's profile and who sees its members,
//! edits by admins, open and approval joins, invitations, leaving, removal, roles, ownership,
//! disbanding, the group list and group search. Each flow checks the pushes it causes (live,
//! and kept for the next login of an account without a connection), the system messages it
//! writes into the group's history, and the errors around it. The last test runs every group
//! operation as every kind of caller.

use crate::common::*;
use natter_client::ourchat::v1;
use serde_json::{Value, json};
use std::time::Duration;

/// A group named `name`, made by `c` with `members`.
async fn create_named(c: &mut Client, members: &[u64], name: &str) -> u64 {
    let r = c
        .request(&json!({"code": 8, "members": members, "name": name}), 9)
        .await;
    assert_eq!(r["success"], json!(true), "group creation failed: {r}");
    int(&r["group_id"])
}

/// Send `req`, which must be refused with error `name` (`number`); returns the message.
async fn refused(c: &mut Client, req: Value, name: &str, number: u32) -> String {
    let r = c.request(&req, 100).await;
    assert_error(&r, name, number, req["code"].clone())
}

/// Code 151's group, as `c` sees it.
async fn info(c: &mut Client, g: u64) -> Value {
    let r = c.request(&json!({"code": 150, "group_id": g}), 151).await;
    assert_recent_time(&r["time"]);
    r["group"].clone()
}

/// `f` must be the system message `text` in group `g`, written by `actor`.
fn assert_system(f: &Value, g: u64, actor: u64, text: &str) {
    assert_eq!(f["code"], json!(0), "{f}");
    assert_eq!(f["type"], json!(0), "a system message has type 0: {f}");
    assert_eq!(f["sender"], json!({"ocid": actor, "group_id": g}), "{f}");
    assert_eq!(f["msg"], json!(text), "{f}");
    int(&f["cid"]);
    assert_recent_time(&f["time"]);
}

/// The next frame must be the system message `text` in group `g` by `actor`; returns its index.
async fn expect_system(c: &mut Client, g: u64, actor: u64, text: &str) -> u64 {
    let f = c.expect_code(0).await;
    assert_system(&f, g, actor, text);
    int(&f["index"])
}

/// The next frames must have `codes`, in any order; they are returned in the order of `codes`.
async fn expect_codes(c: &mut Client, codes: &[i64]) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in codes {
        got.push(c.recv().await);
    }
    codes
        .iter()
        .map(|code| {
            let i = got
                .iter()
                .position(|f| f["code"] == json!(code))
                .unwrap_or_else(|| panic!("expected codes {codes:?}, got {got:?}"));
            got.remove(i)
        })
        .collect()
}

/// Send `req` and return its answer (any code), skipping the deliveries and group pushes
/// that come first.
async fn call(c: &mut Client, req: &Value) -> Value {
    c.send_json(req).await;
    loop {
        let f = c.recv().await;
        match f["code"].as_i64() {
            Some(0 | 180..=183) => {}
            _ => return f,
        }
    }
}

/// Like [`call`], for a request that must be answered with `code`.
async fn call_ok(c: &mut Client, req: Value, code: i64) -> Value {
    let r = call(c, &req).await;
    assert_eq!(r["code"], json!(code), "{req} was answered with {r}");
    r
}

/// A new connection logged in (opted in to the extension frames), with its sync.
async fn login_sync(server: &TestServer, email: &str, pw: &str) -> (Client, Sync) {
    let mut c = server.v1().await;
    let mut req = frame(&v1::login(v1::Account::Email(email), pw));
    req["ext"] = json!(1);
    let r = c.request(&req, 7).await;
    assert_eq!(r["state"], json!(0), "login of {email} failed: {r}");
    let sync = read_sync_all(&mut c).await;
    (c, sync)
}

/// `code` 176's groups (the caller's), as ids.
async fn my_group_ids(c: &mut Client) -> Vec<u64> {
    let r = c.request(&json!({"code": 176}), 177).await;
    r["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no `groups` list in {r}"))
        .iter()
        .map(|g| int(&g["group_id"]))
        .collect()
}

/// The messages of a code 105 reply as (sender, type, text); a normal message has no `type`.
fn history_entries(h: &Value) -> Vec<(u64, Option<u64>, String)> {
    h["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no `messages` list in {h}"))
        .iter()
        .map(|m| {
            (
                int(&m["sender"]["ocid"]),
                m["type"].as_u64(),
                string(&m["msg"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_group_shows_its_profile_to_anyone_and_its_members_to_members() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let g = create_named(&mut alice.client, &[bob.ocid], "Book club").await;

    let group = info(&mut alice.client, g).await;
    assert_recent_time(&group["time"]);
    let mut expected = json!({
        "group_id": g,
        "name": "Book club",
        "description": "",
        "avatar": "",
        "join_mode": 1,
        "owner": alice.ocid,
        "admins": [],
        "member_count": 2,
        "time": group["time"],
        "role": "owner",
        "members": [alice.ocid, bob.ocid],
    });
    assert_eq!(group, expected);
    expected["role"] = json!("member");
    assert_eq!(info(&mut bob.client, g).await, expected);
    // A stranger sees the profile, not who the members are.
    let seen = info(&mut carol.client, g).await;
    expected["role"] = Value::Null;
    expected.as_object_mut().expect("object").remove("members");
    assert_eq!(seen, expected);

    refused(
        &mut carol.client,
        json!({"code": 150, "group_id": 99999}),
        "no_such_chat",
        4001,
    )
    .await;
    let m = refused(
        &mut carol.client,
        json!({"code": 150}),
        "missing_field",
        1002,
    )
    .await;
    assert!(m.contains("`group_id`"), "{m}");
    // A private chat (made after the group, so with the next id) is no group.
    send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "hi").await;
    bob.client.expect_code(0).await;
    refused(
        &mut carol.client,
        json!({"code": 150, "group_id": g + 1}),
        "no_such_chat",
        4001,
    )
    .await;
}

#[tokio::test]
async fn admins_edit_the_group_and_a_rename_is_announced_to_every_member() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid, carol.ocid], "Book club").await;

    let r = alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": bob.ocid, "admin": true, "request_id": 1}),
            171,
        )
        .await;
    assert_eq!(
        (&r["group_id"], &r["ocid"], &r["admin"], &r["request_id"]),
        (&json!(g), &json!(bob.ocid), &json!(true), &json!(1))
    );
    let promoted = "Alice made Bob an admin";
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        assert_eq!(expect_system(c, g, alice.ocid, promoted).await, 1);
    }

    // The admin edits every field (the name is trimmed); the rename is announced to every
    // member, the admin's own connection included, after the reply.
    let r = bob
        .client
        .request(
            &json!({"code": 152, "group_id": g, "name": "  Readers ", "description": "Monthly",
                "avatar": "files/7", "join_mode": 0}),
            153,
        )
        .await;
    let group = &r["group"];
    assert_eq!(
        (
            &group["name"],
            &group["description"],
            &group["avatar"],
            &group["join_mode"]
        ),
        (
            &json!("Readers"),
            &json!("Monthly"),
            &json!("files/7"),
            &json!(0)
        ),
        "{r}"
    );
    assert_eq!(
        (&group["role"], &group["admins"], &group["owner"]),
        (&json!("admin"), &json!([bob.ocid]), &json!(alice.ocid))
    );
    assert_eq!(group["members"], json!([alice.ocid, bob.ocid, carol.ocid]));
    let renamed = "Bob renamed the group to \"Readers\"";
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        assert_eq!(expect_system(c, g, bob.ocid, renamed).await, 2);
    }
    dave.client.expect_silence(100).await;

    // No rename, no message: the same name, or other fields only.
    let r = bob
        .client
        .request(
            &json!({"code": 152, "group_id": g, "name": "Readers", "description": "Weekly"}),
            153,
        )
        .await;
    assert_eq!(r["group"]["description"], json!("Weekly"));
    let r = alice
        .client
        .request(&json!({"code": 152, "group_id": g, "join_mode": 1}), 153)
        .await;
    assert_eq!(r["group"]["role"], json!("owner"));
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        c.expect_silence(150).await;
    }
    let seen = info(&mut dave.client, g).await;
    assert_eq!(
        (&seen["name"], &seen["description"], &seen["join_mode"]),
        (&json!("Readers"), &json!("Weekly"), &json!(1))
    );

    // Members and strangers may not; bad edits are refused before anything changes.
    let m = refused(
        &mut carol.client,
        json!({"code": 152, "group_id": g, "name": "Mine"}),
        "forbidden",
        4007,
    )
    .await;
    assert_eq!(m, format!("only an admin of group {g} may do this"));
    refused(
        &mut dave.client,
        json!({"code": 152, "group_id": g, "name": "Mine"}),
        "not_a_member",
        4002,
    )
    .await;
    let m = refused(
        &mut bob.client,
        json!({"code": 152, "group_id": g}),
        "invalid_field",
        1003,
    )
    .await;
    assert_eq!(m, "nothing to change: give at least one field");
    for bad in [
        json!({"code": 152, "group_id": g, "name": "   "}),
        json!({"code": 152, "group_id": g, "name": "x".repeat(129)}),
        json!({"code": 152, "group_id": g, "description": "x".repeat(1025)}),
        json!({"code": 152, "group_id": g, "join_mode": 2}),
        json!({"code": 152, "group_id": g, "name": 5}),
    ] {
        refused(&mut bob.client, bad, "invalid_field", 1003).await;
    }
    refused(
        &mut bob.client,
        json!({"code": 152, "group_id": 99999, "name": "x"}),
        "no_such_chat",
        4001,
    )
    .await;
    assert_eq!(info(&mut carol.client, g).await["name"], json!("Readers"));
    for c in [&mut alice.client, &mut carol.client] {
        c.expect_silence(100).await;
    }
}

#[tokio::test]
async fn anyone_joins_an_open_group_at_once_and_is_announced() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid], "Open house").await;
    alice
        .client
        .request(&json!({"code": 152, "group_id": g, "join_mode": 0}), 153)
        .await;

    let r = dave
        .client
        .request(
            &json!({"code": 154, "group_id": g.to_string(), "msg": "hello", "request_id": "j"}),
            155,
        )
        .await;
    assert_eq!(
        (&r["group_id"], &r["state"], &r["request_id"]),
        (&json!(g), &json!(0), &json!("j"))
    );
    assert_recent_time(&r["time"]);
    for c in [&mut alice.client, &mut bob.client, &mut dave.client] {
        assert_eq!(expect_system(c, g, dave.ocid, "Dave joined").await, 1);
    }
    // No join request was left behind, and nobody was asked.
    let r = alice
        .client
        .request(&json!({"code": 158, "group_id": g}), 159)
        .await;
    assert_eq!(r["requests"], json!([]));

    let group = info(&mut dave.client, g).await;
    assert_eq!(
        (&group["role"], &group["member_count"], &group["members"]),
        (
            &json!("member"),
            &json!(3),
            &json!([alice.ocid, bob.ocid, dave.ocid])
        )
    );
    for c in [&mut dave.client, &mut alice.client] {
        refused(
            c,
            json!({"code": 154, "group_id": g}),
            "already_member",
            4008,
        )
        .await;
    }
    refused(
        &mut dave.client,
        json!({"code": 154, "group_id": 99999}),
        "no_such_chat",
        4001,
    )
    .await;
    refused(
        &mut dave.client,
        json!({"code": 154, "group_id": g, "msg": "x".repeat(257)}),
        "invalid_field",
        1003,
    )
    .await;

    // The new member talks and is heard; it has the group in its list.
    let ack = send_v1(&mut dave.client, json!({"group_id": g}), "hi all").await;
    assert_eq!(ack["index"], json!(2));
    for c in [&mut alice.client, &mut bob.client] {
        let f = c.expect_code(0).await;
        assert_eq!(f["msg"], json!("hi all"));
        assert!(f.get("type").is_none(), "a normal message: {f}");
    }
    let r = dave.client.request(&json!({"code": 176}), 177).await;
    assert_eq!(
        r["groups"],
        json!([{"group_id": g, "name": "Open house", "avatar": "", "join_mode": 0,
            "member_count": 3, "role": "member"}])
    );
}

#[tokio::test]
async fn a_join_request_reaches_admins_now_or_at_login_and_the_answer_reaches_the_requester() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let mut erin = user_v1(&server, "erin@example.com", "Erin", "pw-e").await;
    // Approval is how a new group is joined.
    let g = create_named(&mut alice.client, &[bob.ocid], "Quiet room").await;
    alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": bob.ocid, "admin": true}),
            171,
        )
        .await;
    for c in [&mut alice.client, &mut bob.client] {
        expect_system(c, g, alice.ocid, "Alice made Bob an admin").await;
    }
    // Bob (an admin) is offline.
    bob.client.close().await;

    let r = carol
        .client
        .request(
            &json!({"code": 154, "group_id": g, "msg": "let me in"}),
            155,
        )
        .await;
    assert_eq!((&r["group_id"], &r["state"]), (&json!(g), &json!(1)));
    let push = alice.client.expect_code(180).await;
    assert_recent_time(&push["time"]);
    assert_eq!(
        (&push["group_id"], &push["ocid"], &push["msg"]),
        (&json!(g), &json!(carol.ocid), &json!("let me in"))
    );
    carol.client.expect_silence(100).await;
    assert_eq!(info(&mut carol.client, g).await["role"], Value::Null);
    // Asking again replaces the note; the admins are asked again.
    carol
        .client
        .request(&json!({"code": 154, "group_id": g, "msg": "please"}), 155)
        .await;
    assert_eq!(alice.client.expect_code(180).await["msg"], json!("please"));

    // The request waits in the admins' lists, by group or all together.
    let r = alice
        .client
        .request(&json!({"code": 158, "group_id": g}), 159)
        .await;
    let requests = r["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 1, "{r}");
    assert_eq!(
        (
            &requests[0]["group_id"],
            &requests[0]["ocid"],
            &requests[0]["msg"]
        ),
        (&json!(g), &json!(carol.ocid), &json!("please"))
    );
    assert_recent_time(&requests[0]["time"]);
    let all = alice.client.request(&json!({"code": 158}), 159).await;
    assert_eq!(all["requests"], r["requests"]);
    // Only for admins: a requester sees nothing of others', and lists nothing of its own.
    let r = carol.client.request(&json!({"code": 158}), 159).await;
    assert_eq!(r["requests"], json!([]));

    // Bob logs in: the request waiting for his answer comes with the news, at every login.
    let (mut bob2, sync) = login_sync(&server, "bob@example.com", "pw-b").await;
    assert!(sync.missed.is_empty(), "{:?}", sync.missed);
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    assert_eq!(
        (
            &sync.news[0]["code"],
            &sync.news[0]["group_id"],
            &sync.news[0]["ocid"],
            &sync.news[0]["msg"]
        ),
        (&json!(180), &json!(g), &json!(carol.ocid), &json!("please"))
    );

    // Bob accepts: Carol is told and joins (so hears her own joining); Alice hears both.
    let r = bob2
        .request(
            &json!({"code": 156, "group_id": g, "ocid": carol.ocid, "accept": true}),
            157,
        )
        .await;
    assert_eq!(
        (&r["group_id"], &r["ocid"], &r["accept"]),
        (&json!(g), &json!(carol.ocid), &json!(true))
    );
    let answer = json!({"group_id": g, "ocid": carol.ocid, "accepted": true, "by": bob.ocid});
    for c in [&mut carol.client, &mut alice.client] {
        let [joined, told] =
            <[Value; 2]>::try_from(expect_codes(c, &[0, 181]).await).expect("two frames");
        assert_system(&joined, g, carol.ocid, "Carol joined");
        assert_recent_time(&told["time"]);
        for (k, v) in answer.as_object().expect("object") {
            assert_eq!(&told[k], v, "{told}");
        }
    }
    expect_system(&mut bob2, g, carol.ocid, "Carol joined").await;
    bob2.expect_silence(100).await;
    assert_eq!(info(&mut carol.client, g).await["role"], json!("member"));
    refused(
        &mut bob2,
        json!({"code": 156, "group_id": g, "ocid": carol.ocid, "accept": true}),
        "no_such_join_request",
        4009,
    )
    .await;

    // Dave asks, then goes offline, and is rejected: he learns it at his next login, once.
    dave.client
        .request(&json!({"code": 154, "group_id": g}), 155)
        .await;
    assert_eq!(
        alice.client.expect_code(180).await["ocid"],
        json!(dave.ocid)
    );
    assert_eq!(bob2.expect_code(180).await["ocid"], json!(dave.ocid));
    dave.client.close().await;
    alice
        .client
        .request(
            &json!({"code": 156, "group_id": g, "ocid": dave.ocid, "accept": false}),
            157,
        )
        .await;
    let told = bob2.expect_code(181).await;
    assert_eq!(
        (&told["ocid"], &told["accepted"], &told["by"]),
        (&json!(dave.ocid), &json!(false), &json!(alice.ocid))
    );
    let (mut dave2, sync) = login_sync(&server, "dave@example.com", "pw-d").await;
    assert!(sync.missed.is_empty(), "{:?}", sync.missed);
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    let told = &sync.news[0];
    assert_eq!(
        (
            &told["code"],
            &told["group_id"],
            &told["ocid"],
            &told["accepted"],
            &told["by"]
        ),
        (
            &json!(181),
            &json!(g),
            &json!(dave.ocid),
            &json!(false),
            &json!(alice.ocid)
        )
    );
    assert_recent_time(&told["time"]);
    assert_eq!(info(&mut dave2, g).await["role"], Value::Null);
    dave2.close().await;
    let (_dave3, sync) = login_sync(&server, "dave@example.com", "pw-d").await;
    assert!(sync.news.is_empty(), "told once: {:?}", sync.news);

    // Erin asks, goes offline and is accepted: at login she gets her joining (a missed
    // message of the group she is in now) and then the answer.
    erin.client
        .request(&json!({"code": 154, "group_id": g}), 155)
        .await;
    alice.client.expect_code(180).await;
    bob2.expect_code(180).await;
    erin.client.close().await;
    alice
        .client
        .request(
            &json!({"code": 156, "group_id": g, "ocid": erin.ocid, "accept": true}),
            157,
        )
        .await;
    expect_system(&mut alice.client, g, erin.ocid, "Erin joined").await;
    let [joined, told] =
        <[Value; 2]>::try_from(expect_codes(&mut bob2, &[0, 181]).await).expect("two frames");
    assert_system(&joined, g, erin.ocid, "Erin joined");
    assert_eq!(told["accepted"], json!(true));
    let (_erin2, sync) = login_sync(&server, "erin@example.com", "pw-e").await;
    assert_eq!(sync.missed.len(), 1, "{:?}", sync.missed);
    assert_system(&sync.missed[0], g, erin.ocid, "Erin joined");
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    assert_eq!(
        (&sync.news[0]["code"], &sync.news[0]["accepted"]),
        (&json!(181), &json!(true))
    );

    // Nothing waits any more.
    let r = bob2.request(&json!({"code": 158}), 159).await;
    assert_eq!(r["requests"], json!([]));
}

#[tokio::test]
async fn invitations_are_pushed_listed_accepted_into_an_approval_group_or_declined() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let mut erin = user_v1(&server, "erin@example.com", "Erin", "pw-e").await;
    let g = create_named(&mut alice.client, &[bob.ocid], "Quiet room").await;

    // In a group that approves joins, only admins invite.
    let m = refused(
        &mut bob.client,
        json!({"code": 160, "group_id": g, "ocid": carol.ocid}),
        "forbidden",
        4007,
    )
    .await;
    assert_eq!(m, format!("only an admin of group {g} may do this"));
    carol.client.expect_silence(100).await;

    let r = alice
        .client
        .request(
            &json!({"code": 160, "group_id": g, "ocid": carol.ocid, "request_id": 9}),
            161,
        )
        .await;
    assert_eq!(
        (&r["group_id"], &r["ocid"], &r["request_id"]),
        (&json!(g), &json!(carol.ocid), &json!(9))
    );
    let push = carol.client.expect_code(182).await;
    assert_eq!(
        (&push["group_id"], &push["by"]),
        (&json!(g), &json!(alice.ocid))
    );
    assert_recent_time(&push["time"]);
    let r = carol.client.request(&json!({"code": 164}), 165).await;
    let list = r["invitations"].as_array().expect("invitations");
    assert_eq!(list.len(), 1, "{r}");
    assert_eq!(
        (&list[0]["group_id"], &list[0]["by"]),
        (&json!(g), &json!(alice.ocid))
    );
    assert_recent_time(&list[0]["time"]);

    // Accepting joins the group even though it approves joins.
    let r = carol
        .client
        .request(&json!({"code": 162, "group_id": g, "accept": true}), 163)
        .await;
    assert_eq!((&r["group_id"], &r["accept"]), (&json!(g), &json!(true)));
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        expect_system(c, g, carol.ocid, "Carol joined").await;
    }
    assert_eq!(info(&mut carol.client, g).await["role"], json!("member"));
    let r = carol.client.request(&json!({"code": 164}), 165).await;
    assert_eq!(r["invitations"], json!([]));
    refused(
        &mut carol.client,
        json!({"code": 162, "group_id": g, "accept": true}),
        "no_such_invitation",
        4010,
    )
    .await;

    // Dave is invited while offline: the invitation comes with his login's news.
    dave.client.close().await;
    alice
        .client
        .request(&json!({"code": 160, "group_id": g, "ocid": dave.ocid}), 161)
        .await;
    let (mut dave2, sync) = login_sync(&server, "dave@example.com", "pw-d").await;
    assert!(sync.missed.is_empty());
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    assert_eq!(
        (
            &sync.news[0]["code"],
            &sync.news[0]["group_id"],
            &sync.news[0]["by"]
        ),
        (&json!(182), &json!(g), &json!(alice.ocid))
    );
    // He declines: nothing is announced, he is no member, and the invitation is gone.
    let r = dave2
        .request(&json!({"code": 162, "group_id": g, "accept": false}), 163)
        .await;
    assert_eq!(r["accept"], json!(false));
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        c.expect_silence(100).await;
    }
    assert_eq!(info(&mut dave2, g).await["role"], Value::Null);
    let r = dave2.request(&json!({"code": 164}), 165).await;
    assert_eq!(r["invitations"], json!([]));
    refused(
        &mut dave2,
        json!({"code": 162, "group_id": g, "accept": false}),
        "no_such_invitation",
        4010,
    )
    .await;

    // An invitee may also just join: the invitation lets it in at once.
    alice
        .client
        .request(&json!({"code": 160, "group_id": g, "ocid": erin.ocid}), 161)
        .await;
    erin.client.expect_code(182).await;
    let r = erin
        .client
        .request(&json!({"code": 154, "group_id": g}), 155)
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    for c in [
        &mut alice.client,
        &mut bob.client,
        &mut carol.client,
        &mut erin.client,
    ] {
        expect_system(c, g, erin.ocid, "Erin joined").await;
    }
    let r = erin.client.request(&json!({"code": 164}), 165).await;
    assert_eq!(r["invitations"], json!([]));

    // Who may not be invited.
    refused(
        &mut alice.client,
        json!({"code": 160, "group_id": g, "ocid": bob.ocid}),
        "already_member",
        4008,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 160, "group_id": g, "ocid": alice.ocid}),
        "invalid_field",
        1003,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 160, "group_id": g, "ocid": 99999}),
        "no_such_account",
        4000,
    )
    .await;
    refused(
        &mut dave2,
        json!({"code": 160, "group_id": g, "ocid": carol.ocid}),
        "not_a_member",
        4002,
    )
    .await;

    // In an open group, any member invites.
    alice
        .client
        .request(&json!({"code": 152, "group_id": g, "join_mode": 0}), 153)
        .await;
    bob.client
        .request(&json!({"code": 160, "group_id": g, "ocid": dave.ocid}), 161)
        .await;
    let push = dave2.expect_code(182).await;
    assert_eq!(push["by"], json!(bob.ocid));

    // An account that blocks the inviter is not bothered, and the inviter is not told.
    dave2
        .request(&json!({"code": 146, "ocid": alice.ocid}), 147)
        .await;
    alice
        .client
        .request(&json!({"code": 160, "group_id": g, "ocid": dave.ocid}), 161)
        .await;
    dave2.expect_silence(150).await;
    let r = dave2.request(&json!({"code": 164}), 165).await;
    let list = r["invitations"].as_array().expect("invitations");
    assert_eq!(list.len(), 1, "{r}");
    assert_eq!(list[0]["by"], json!(bob.ocid), "{r}");
}

#[tokio::test]
async fn a_member_leaves_and_the_owner_may_not() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let g = create_named(&mut alice.client, &[bob.ocid, carol.ocid], "Book club").await;

    let r = bob
        .client
        .request(&json!({"code": 166, "group_id": g}), 167)
        .await;
    assert_eq!(r["group_id"], json!(g));
    // Announced to the members as they were, the one leaving included.
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        expect_system(c, g, bob.ocid, "Bob left").await;
    }
    assert_eq!(my_group_ids(&mut bob.client).await, Vec::<u64>::new());
    assert_eq!(my_group_ids(&mut carol.client).await, vec![g]);
    let group = info(&mut bob.client, g).await;
    assert_eq!(
        (&group["role"], &group["member_count"]),
        (&Value::Null, &json!(2))
    );
    refused(
        &mut bob.client,
        json!({"code": 0, "sender": {"group_id": g}, "msg": "still here?"}),
        "not_a_member",
        4002,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 166, "group_id": g}),
        "not_a_member",
        4002,
    )
    .await;
    // What is said after is not for Bob.
    send_v1(&mut carol.client, json!({"group_id": g}), "bye bob").await;
    alice.client.expect_code(0).await;
    bob.client.expect_silence(150).await;

    let m = refused(
        &mut alice.client,
        json!({"code": 166, "group_id": g}),
        "owner_cannot_leave",
        4011,
    )
    .await;
    assert_eq!(
        m,
        format!("hand group {g} to another member (or disband it) before leaving")
    );
    refused(
        &mut alice.client,
        json!({"code": 166, "group_id": 99999}),
        "no_such_chat",
        4001,
    )
    .await;
    assert_eq!(info(&mut alice.client, g).await["owner"], json!(alice.ocid));
}

#[tokio::test]
async fn a_kicked_member_is_told_now_or_at_login_and_is_out_of_the_group() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let erin = user_v1(&server, "erin@example.com", "Erin", "pw-e").await;
    // Erin is offline throughout.
    erin.client.close().await;
    let g = create_named(
        &mut alice.client,
        &[bob.ocid, carol.ocid, dave.ocid, erin.ocid],
        "Book club",
    )
    .await;
    alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": bob.ocid, "admin": true}),
            171,
        )
        .await;
    for c in [
        &mut alice.client,
        &mut bob.client,
        &mut carol.client,
        &mut dave.client,
    ] {
        expect_system(c, g, alice.ocid, "Alice made Bob an admin").await;
    }

    // An admin removes a member, who is told after hearing it.
    let r = bob
        .client
        .request(
            &json!({"code": 168, "group_id": g, "ocid": carol.ocid}),
            169,
        )
        .await;
    assert_eq!(
        (&r["group_id"], &r["ocid"]),
        (&json!(g), &json!(carol.ocid))
    );
    for c in [&mut alice.client, &mut bob.client, &mut dave.client] {
        expect_system(c, g, bob.ocid, "Bob removed Carol").await;
    }
    let [heard, told] = <[Value; 2]>::try_from(expect_codes(&mut carol.client, &[0, 183]).await)
        .expect("two frames");
    assert_system(&heard, g, bob.ocid, "Bob removed Carol");
    assert_eq!(
        (&told["group_id"], &told["by"], &told["disbanded"]),
        (&json!(g), &json!(bob.ocid), &json!(false))
    );
    assert_recent_time(&told["time"]);
    for c in [&mut alice.client, &mut bob.client, &mut dave.client] {
        c.expect_silence(100).await;
    }

    // Carol can neither post nor read the history, and hears nothing more of the group.
    refused(
        &mut carol.client,
        json!({"code": 0, "sender": {"group_id": g}, "msg": "hey"}),
        "not_a_member",
        4002,
    )
    .await;
    refused(
        &mut carol.client,
        json!({"code": 104, "group_id": g}),
        "not_a_member",
        4002,
    )
    .await;
    let group = info(&mut carol.client, g).await;
    assert!(group.get("members").is_none(), "{group}");
    assert_eq!(group["role"], Value::Null);
    send_v1(&mut dave.client, json!({"group_id": g}), "after carol").await;
    alice.client.expect_code(0).await;
    bob.client.expect_code(0).await;
    carol.client.expect_silence(150).await;

    // Erin, offline, is removed by the owner: she learns it at login, not as a message of a
    // group she is no longer in.
    alice
        .client
        .request(&json!({"code": 168, "group_id": g, "ocid": erin.ocid}), 169)
        .await;
    for c in [&mut alice.client, &mut bob.client, &mut dave.client] {
        expect_system(c, g, alice.ocid, "Alice removed Erin").await;
    }
    let (mut erin2, sync) = login_sync(&server, "erin@example.com", "pw-e").await;
    assert!(sync.missed.is_empty(), "{:?}", sync.missed);
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    assert_eq!(
        (
            &sync.news[0]["code"],
            &sync.news[0]["group_id"],
            &sync.news[0]["by"],
            &sync.news[0]["disbanded"]
        ),
        (&json!(183), &json!(g), &json!(alice.ocid), &json!(false))
    );
    refused(
        &mut erin2,
        json!({"code": 104, "group_id": g}),
        "not_a_member",
        4002,
    )
    .await;
    assert_eq!(my_group_ids(&mut erin2).await, Vec::<u64>::new());

    // Who may remove whom: admins remove members, only the owner removes an admin.
    let m = refused(
        &mut bob.client,
        json!({"code": 168, "group_id": g, "ocid": alice.ocid}),
        "forbidden",
        4007,
    )
    .await;
    assert_eq!(m, format!("only the owner of group {g} may do this"));
    refused(
        &mut dave.client,
        json!({"code": 168, "group_id": g, "ocid": bob.ocid}),
        "forbidden",
        4007,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 168, "group_id": g, "ocid": bob.ocid}),
        "invalid_field",
        1003,
    )
    .await;
    let m = refused(
        &mut bob.client,
        json!({"code": 168, "group_id": g, "ocid": carol.ocid}),
        "not_a_member",
        4002,
    )
    .await;
    assert_eq!(m, format!("{} is not a member of group {g}", carol.ocid));
    let m = refused(
        &mut carol.client,
        json!({"code": 168, "group_id": g, "ocid": dave.ocid}),
        "not_a_member",
        4002,
    )
    .await;
    assert_eq!(m, format!("you are not a member of chat {g}"));
    alice
        .client
        .request(&json!({"code": 168, "group_id": g, "ocid": bob.ocid}), 169)
        .await;
    for c in [&mut alice.client, &mut dave.client] {
        expect_system(c, g, alice.ocid, "Alice removed Bob").await;
    }
    expect_codes(&mut bob.client, &[0, 183]).await;
    let group = info(&mut alice.client, g).await;
    assert_eq!(
        (&group["admins"], &group["members"]),
        (&json!([]), &json!([alice.ocid, dave.ocid]))
    );
}

#[tokio::test]
async fn a_kicked_member_whose_connection_just_left_is_told_at_login() {
    // Within the presence grace an account still counts as online for its friends, but it
    // has no connection to be told on.
    let server = TestServer::start_with(|c| c.presence_grace = Duration::from_secs(5)).await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let g = create_named(&mut alice.client, &[bob.ocid], "Book club").await;
    bob.client.close().await;
    alice
        .client
        .request(&json!({"code": 168, "group_id": g, "ocid": bob.ocid}), 169)
        .await;
    let (_bob2, sync) = login_sync(&server, "bob@example.com", "pw-b").await;
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    assert_eq!(
        (&sync.news[0]["code"], &sync.news[0]["group_id"]),
        (&json!(183), &json!(g))
    );
}

#[tokio::test]
async fn the_owner_promotes_and_demotes_admins() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid, carol.ocid], "Book club").await;

    alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": carol.ocid, "admin": true}),
            171,
        )
        .await;
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        expect_system(c, g, alice.ocid, "Alice made Carol an admin").await;
    }
    let group = info(&mut carol.client, g).await;
    assert_eq!(
        (&group["role"], &group["admins"]),
        (&json!("admin"), &json!([carol.ocid]))
    );
    // As an admin Carol now answers join requests; as a member she could not.
    let r = carol
        .client
        .request(&json!({"code": 158, "group_id": g}), 159)
        .await;
    assert_eq!(r["requests"], json!([]));
    // Promoting an admin again changes (and announces) nothing.
    alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": carol.ocid, "admin": true}),
            171,
        )
        .await;
    carol.client.expect_silence(100).await;
    // An admin may not make admins.
    refused(
        &mut carol.client,
        json!({"code": 170, "group_id": g, "ocid": bob.ocid, "admin": true}),
        "forbidden",
        4007,
    )
    .await;

    let r = alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": carol.ocid, "admin": false}),
            171,
        )
        .await;
    assert_eq!(r["admin"], json!(false));
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        expect_system(c, g, alice.ocid, "Alice made Carol a member").await;
    }
    let group = info(&mut bob.client, g).await;
    assert_eq!(group["admins"], json!([]));
    refused(
        &mut carol.client,
        json!({"code": 158, "group_id": g}),
        "forbidden",
        4007,
    )
    .await;
    // Demoting a member changes nothing.
    alice
        .client
        .request(
            &json!({"code": 170, "group_id": g, "ocid": bob.ocid, "admin": false}),
            171,
        )
        .await;
    bob.client.expect_silence(100).await;

    refused(
        &mut alice.client,
        json!({"code": 170, "group_id": g, "ocid": alice.ocid, "admin": false}),
        "invalid_field",
        1003,
    )
    .await;
    let m = refused(
        &mut alice.client,
        json!({"code": 170, "group_id": g, "ocid": dave.ocid, "admin": true}),
        "not_a_member",
        4002,
    )
    .await;
    assert_eq!(m, format!("{} is not a member of group {g}", dave.ocid));
    refused(
        &mut dave.client,
        json!({"code": 170, "group_id": g, "ocid": bob.ocid, "admin": true}),
        "not_a_member",
        4002,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 170, "group_id": g, "ocid": bob.ocid}),
        "missing_field",
        1002,
    )
    .await;
}

#[tokio::test]
async fn the_owner_hands_the_group_over_and_stays_an_admin() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid, carol.ocid], "Book club").await;

    refused(
        &mut bob.client,
        json!({"code": 172, "group_id": g, "ocid": carol.ocid}),
        "forbidden",
        4007,
    )
    .await;
    let m = refused(
        &mut alice.client,
        json!({"code": 172, "group_id": g, "ocid": dave.ocid}),
        "not_a_member",
        4002,
    )
    .await;
    assert_eq!(m, format!("{} is not a member of group {g}", dave.ocid));
    refused(
        &mut alice.client,
        json!({"code": 172, "group_id": g, "ocid": alice.ocid}),
        "invalid_field",
        1003,
    )
    .await;

    let r = alice
        .client
        .request(&json!({"code": 172, "group_id": g, "ocid": bob.ocid}), 173)
        .await;
    assert_eq!((&r["group_id"], &r["ocid"]), (&json!(g), &json!(bob.ocid)));
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        expect_system(c, g, alice.ocid, "Alice handed the group to Bob").await;
    }
    let group = info(&mut carol.client, g).await;
    assert_eq!(
        (&group["owner"], &group["admins"]),
        (&json!(bob.ocid), &json!([alice.ocid]))
    );
    assert_eq!(info(&mut alice.client, g).await["role"], json!("admin"));
    assert_eq!(info(&mut bob.client, g).await["role"], json!("owner"));

    // The old owner is an admin now: no more owner's rights, but it may leave.
    refused(
        &mut alice.client,
        json!({"code": 174, "group_id": g}),
        "forbidden",
        4007,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 168, "group_id": g, "ocid": bob.ocid}),
        "forbidden",
        4007,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 166, "group_id": g}),
        "owner_cannot_leave",
        4011,
    )
    .await;
    alice
        .client
        .request(&json!({"code": 166, "group_id": g}), 167)
        .await;
    for c in [&mut alice.client, &mut bob.client, &mut carol.client] {
        expect_system(c, g, alice.ocid, "Alice left").await;
    }
    let r = bob.client.request(&json!({"code": 176}), 177).await;
    assert_eq!(r["groups"][0]["role"], json!("owner"));
    assert_eq!(r["groups"][0]["member_count"], json!(2));
}

#[tokio::test]
async fn disbanding_tells_every_member_now_or_at_login_and_ends_the_group() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid, carol.ocid], "Book club").await;
    let other = create_named(&mut alice.client, &[bob.ocid], "Other").await;
    // Pending requests and invitations of the group go with it.
    dave.client
        .request(&json!({"code": 154, "group_id": g}), 155)
        .await;
    alice.client.expect_code(180).await;
    alice
        .client
        .request(&json!({"code": 160, "group_id": g, "ocid": dave.ocid}), 161)
        .await;
    dave.client.expect_code(182).await;
    carol.client.close().await;

    refused(
        &mut bob.client,
        json!({"code": 174, "group_id": g}),
        "forbidden",
        4007,
    )
    .await;
    let r = alice
        .client
        .request(&json!({"code": 174, "group_id": g}), 175)
        .await;
    assert_eq!(r["group_id"], json!(g));
    expect_system(
        &mut alice.client,
        g,
        alice.ocid,
        "Alice disbanded the group",
    )
    .await;
    alice.client.expect_silence(100).await;
    let [heard, told] =
        <[Value; 2]>::try_from(expect_codes(&mut bob.client, &[0, 183]).await).expect("two frames");
    assert_system(&heard, g, alice.ocid, "Alice disbanded the group");
    assert_eq!(
        (&told["group_id"], &told["by"], &told["disbanded"]),
        (&json!(g), &json!(alice.ocid), &json!(true))
    );
    dave.client.expect_silence(100).await;

    // Carol was offline: she is told at login.
    let (mut carol2, sync) = login_sync(&server, "carol@example.com", "pw-c").await;
    assert!(sync.missed.is_empty(), "{:?}", sync.missed);
    assert_eq!(sync.news.len(), 1, "{:?}", sync.news);
    assert_eq!(
        (
            &sync.news[0]["code"],
            &sync.news[0]["group_id"],
            &sync.news[0]["by"],
            &sync.news[0]["disbanded"]
        ),
        (&json!(183), &json!(g), &json!(alice.ocid), &json!(true))
    );

    // The group is gone: from every list, from lookups and searches, and for every request.
    assert_eq!(my_group_ids(&mut alice.client).await, vec![other]);
    assert_eq!(my_group_ids(&mut bob.client).await, vec![other]);
    assert_eq!(my_group_ids(&mut carol2).await, Vec::<u64>::new());
    let r = alice.client.request(&json!({"code": 158}), 159).await;
    assert_eq!(r["requests"], json!([]));
    let r = dave.client.request(&json!({"code": 164}), 165).await;
    assert_eq!(r["invitations"], json!([]));
    let r = dave
        .client
        .request(&json!({"code": 178, "query": "book"}), 179)
        .await;
    assert_eq!(r["groups"], json!([]));
    for c in [&mut alice.client, &mut carol2, &mut dave.client] {
        refused(c, json!({"code": 150, "group_id": g}), "no_such_chat", 4001).await;
    }
    refused(
        &mut alice.client,
        json!({"code": 174, "group_id": g}),
        "no_such_chat",
        4001,
    )
    .await;
    refused(
        &mut dave.client,
        json!({"code": 154, "group_id": g}),
        "no_such_chat",
        4001,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 0, "sender": {"group_id": g}, "msg": "anyone?"}),
        "not_a_member",
        4002,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 104, "group_id": g}),
        "not_a_member",
        4002,
    )
    .await;
}

#[tokio::test]
async fn my_groups_and_group_search_by_name_with_paging() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let a1 = create_named(&mut alice.client, &[bob.ocid], "Alpha one").await;
    let beta = create_named(&mut alice.client, &[], "Beta").await;
    let a2 = create_named(&mut bob.client, &[], "alpha two").await;
    let a3 = create_named(&mut bob.client, &[alice.ocid], "ALPHABET").await;
    create_named(&mut carol.client, &[], "The alpha").await;

    let r = alice.client.request(&json!({"code": 176}), 177).await;
    assert_eq!(
        r["groups"],
        json!([
            {"group_id": a1, "name": "Alpha one", "avatar": "", "join_mode": 1,
                "member_count": 2, "role": "owner"},
            {"group_id": beta, "name": "Beta", "avatar": "", "join_mode": 1,
                "member_count": 1, "role": "owner"},
            {"group_id": a3, "name": "ALPHABET", "avatar": "", "join_mode": 1,
                "member_count": 2, "role": "member"},
        ])
    );
    let r = carol.client.request(&json!({"code": 176}), 177).await;
    assert_eq!(r["groups"].as_array().map(Vec::len), Some(1));

    // By the start of the name, any case, ascending by id, each with the caller's role.
    let r = carol
        .client
        .request(&json!({"code": 178, "query": "alpha", "limit": 2}), 179)
        .await;
    assert_eq!(
        r["groups"],
        json!([
            {"group_id": a1, "name": "Alpha one", "avatar": "", "join_mode": 1,
                "member_count": 2, "role": null},
            {"group_id": a2, "name": "alpha two", "avatar": "", "join_mode": 1,
                "member_count": 1, "role": null},
        ])
    );
    assert_eq!(r["more"], json!(true));
    let r = carol
        .client
        .request(
            &json!({"code": 178, "query": "ALPHA", "after": a2, "limit": 2}),
            179,
        )
        .await;
    let ids: Vec<u64> = r["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| int(&g["group_id"]))
        .collect();
    assert_eq!(ids, vec![a3]);
    assert_eq!(r["more"], json!(false));
    let r = bob
        .client
        .request(&json!({"code": 178, "query": " alpha t "}), 179)
        .await;
    assert_eq!(r["groups"][0]["group_id"], json!(a2));
    assert_eq!(r["groups"][0]["role"], json!("owner"));
    assert_eq!(r["groups"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["more"], json!(false));
    let r = carol
        .client
        .request(&json!({"code": 178, "query": "lpha"}), 179)
        .await;
    assert_eq!((&r["groups"], &r["more"]), (&json!([]), &json!(false)));
    // A rename is found by its new name.
    alice
        .client
        .request(
            &json!({"code": 152, "group_id": beta, "name": "Gamma"}),
            153,
        )
        .await;
    expect_system(
        &mut alice.client,
        beta,
        alice.ocid,
        "Alice renamed the group to \"Gamma\"",
    )
    .await;
    let r = carol
        .client
        .request(&json!({"code": 178, "query": "gam"}), 179)
        .await;
    assert_eq!(r["groups"][0]["group_id"], json!(beta));

    for bad in [
        json!({"code": 178, "query": "  "}),
        json!({"code": 178, "query": "x".repeat(65)}),
        json!({"code": 178, "query": "a", "limit": 0}),
        json!({"code": 178, "query": "a", "limit": 51}),
    ] {
        refused(&mut carol.client, bad, "invalid_field", 1003).await;
    }
    refused(
        &mut carol.client,
        json!({"code": 178}),
        "missing_field",
        1002,
    )
    .await;
}

#[tokio::test]
async fn a_member_who_was_offline_gets_the_system_messages_in_order() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid, carol.ocid], "Book club").await;
    send_v1(&mut alice.client, json!({"group_id": g}), "welcome").await;
    carol.client.expect_code(0).await;
    // Bob is away while everything happens.
    bob.client.close().await;

    let (a, d) = (0, 1);
    let steps = [
        (a, json!({"code": 152, "group_id": g, "join_mode": 0}), 153),
        (d, json!({"code": 154, "group_id": g}), 155),
        (
            a,
            json!({"code": 170, "group_id": g, "ocid": dave.ocid, "admin": true}),
            171,
        ),
        (
            d,
            json!({"code": 0, "sender": {"group_id": g}, "msg": "thanks"}),
            103,
        ),
        (
            a,
            json!({"code": 152, "group_id": g, "name": "Readers"}),
            153,
        ),
        (
            d,
            json!({"code": 168, "group_id": g, "ocid": carol.ocid}),
            169,
        ),
        (
            a,
            json!({"code": 170, "group_id": g, "ocid": dave.ocid, "admin": false}),
            171,
        ),
        (
            a,
            json!({"code": 172, "group_id": g, "ocid": dave.ocid}),
            173,
        ),
        (a, json!({"code": 166, "group_id": g}), 167),
    ];
    let clients = [&mut alice.client, &mut dave.client];
    for (who, req, code) in steps {
        call_ok(&mut *clients[who], req, code).await;
    }

    let system = |sender: u64, text: &str| (sender, Some(0), text.to_owned());
    let expected = vec![
        system(dave.ocid, "Dave joined"),
        system(alice.ocid, "Alice made Dave an admin"),
        (dave.ocid, None, "thanks".to_owned()),
        system(alice.ocid, "Alice renamed the group to \"Readers\""),
        system(dave.ocid, "Dave removed Carol"),
        system(alice.ocid, "Alice made Dave a member"),
        system(alice.ocid, "Alice handed the group to Dave"),
        system(alice.ocid, "Alice left"),
    ];
    let (mut bob2, sync) = login_sync(&server, "bob@example.com", "pw-b").await;
    let missed: Vec<(u64, Option<u64>, String)> = sync
        .missed
        .iter()
        .map(|m| {
            (
                int(&m["sender"]["ocid"]),
                m["type"].as_u64(),
                string(&m["msg"]),
            )
        })
        .collect();
    assert_eq!(missed, expected);
    let missed_indexes: Vec<u64> = sync.missed.iter().map(|m| int(&m["index"])).collect();
    assert_eq!(missed_indexes, (2..=9).collect::<Vec<u64>>());
    assert!(sync.news.is_empty(), "{:?}", sync.news);
    // Unread: everything but his own (none), "welcome" included.
    assert_eq!(sync.done["unread"], json!(9), "{}", sync.done);

    let h = history_v1(&mut bob2, json!({"group_id": g})).await;
    let mut all = vec![(alice.ocid, None, "welcome".to_owned())];
    all.extend(expected);
    assert_eq!(history_entries(&h), all);
    assert_eq!(indexes(&h), (1..=9).collect::<Vec<u64>>());
    for m in h["messages"].as_array().expect("messages") {
        assert_eq!(m["sender"]["group_id"], json!(g), "{m}");
    }
    // Paging by index sees the same order.
    let h = history_v1(&mut bob2, json!({"group_id": g, "before": 5, "limit": 3})).await;
    assert_eq!(indexes(&h), vec![2, 3, 4]);
}

/// Who runs an operation in the permission table, in the order of its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// A connection that has not logged in.
    Anonymous,
    Stranger,
    /// A stranger the owner blocks.
    Blocked,
    Member,
    Admin,
    Owner,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::Stranger,
    Caller::Blocked,
    Caller::Member,
    Caller::Admin,
    Caller::Owner,
];

/// What a cell of the permission table expects: the reply, or this error.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Allowed,
    Refused(&'static str, u32),
}

const OK: Expect = Expect::Allowed;
const ANON: Expect = Expect::Refused("not_logged_in", 2000);
const OUT: Expect = Expect::Refused("not_a_member", 4002);
const FORBIDDEN: Expect = Expect::Refused("forbidden", 4007);
const IN: Expect = Expect::Refused("already_member", 4008);
const UNINVITED: Expect = Expect::Refused("no_such_invitation", 4010);
const OWNER_STAYS: Expect = Expect::Refused("owner_cannot_leave", 4011);
const OWN_ACCOUNT: Expect = Expect::Refused("invalid_field", 1003);

/// What each cell's fresh group has besides its owner, admin, members and a pending join
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Nothing,
    /// Anyone may join.
    Open,
    /// The victim is an admin too.
    VictimAdmin,
    /// The owner has invited the caller (when it is not a member).
    InviteCaller,
}

/// The accounts of the permission table.
struct Ids {
    owner: u64,
    admin: u64,
    victim: u64,
    requester: u64,
    invitee: u64,
}

/// One operation: what it is, how it is asked for group `g`, and each caller's outcome.
struct Op {
    name: &'static str,
    setup: Setup,
    request: fn(&Ids, u64) -> Value,
    expect: [Expect; 6],
}

fn ops() -> Vec<Op> {
    let op = |name, setup, request, expect| Op {
        name,
        setup,
        request,
        expect,
    };
    use Setup::{InviteCaller, Nothing, Open, VictimAdmin};
    vec![
        op(
            "group info",
            Nothing,
            |_, g| json!({"code": 150, "group_id": g}),
            [ANON, OK, OK, OK, OK, OK],
        ),
        op(
            "edit the group",
            Nothing,
            |_, g| json!({"code": 152, "group_id": g, "description": "new"}),
            [ANON, OUT, OUT, FORBIDDEN, OK, OK],
        ),
        op(
            "join by request",
            Nothing,
            |_, g| json!({"code": 154, "group_id": g}),
            [ANON, OK, OK, IN, IN, IN],
        ),
        op(
            "join an open group",
            Open,
            |_, g| json!({"code": 154, "group_id": g}),
            [ANON, OK, OK, IN, IN, IN],
        ),
        op(
            "answer a join request",
            Nothing,
            |ids, g| json!({"code": 156, "group_id": g, "ocid": ids.requester, "accept": true}),
            [ANON, OUT, OUT, FORBIDDEN, OK, OK],
        ),
        op(
            "the group's join requests",
            Nothing,
            |_, g| json!({"code": 158, "group_id": g}),
            [ANON, OUT, OUT, FORBIDDEN, OK, OK],
        ),
        op(
            "join requests to answer",
            Nothing,
            |_, _| json!({"code": 158}),
            [ANON, OK, OK, OK, OK, OK],
        ),
        op(
            "invite to a group that approves joins",
            Nothing,
            |ids, g| json!({"code": 160, "group_id": g, "ocid": ids.invitee}),
            [ANON, OUT, OUT, FORBIDDEN, OK, OK],
        ),
        op(
            "invite to an open group",
            Open,
            |ids, g| json!({"code": 160, "group_id": g, "ocid": ids.invitee}),
            [ANON, OUT, OUT, OK, OK, OK],
        ),
        op(
            "accept an invitation",
            InviteCaller,
            |_, g| json!({"code": 162, "group_id": g, "accept": true}),
            [ANON, OK, OK, UNINVITED, UNINVITED, UNINVITED],
        ),
        op(
            "decline an invitation",
            InviteCaller,
            |_, g| json!({"code": 162, "group_id": g, "accept": false}),
            [ANON, OK, OK, UNINVITED, UNINVITED, UNINVITED],
        ),
        op(
            "my invitations",
            Nothing,
            |_, _| json!({"code": 164}),
            [ANON, OK, OK, OK, OK, OK],
        ),
        op(
            "leave",
            Nothing,
            |_, g| json!({"code": 166, "group_id": g}),
            [ANON, OUT, OUT, OK, OK, OWNER_STAYS],
        ),
        op(
            "remove a member",
            Nothing,
            |ids, g| json!({"code": 168, "group_id": g, "ocid": ids.victim}),
            [ANON, OUT, OUT, FORBIDDEN, OK, OK],
        ),
        op(
            "remove an admin",
            VictimAdmin,
            |ids, g| json!({"code": 168, "group_id": g, "ocid": ids.victim}),
            [ANON, OUT, OUT, FORBIDDEN, FORBIDDEN, OK],
        ),
        op(
            "remove the owner",
            Nothing,
            |ids, g| json!({"code": 168, "group_id": g, "ocid": ids.owner}),
            [ANON, OUT, OUT, FORBIDDEN, FORBIDDEN, OWN_ACCOUNT],
        ),
        op(
            "make an admin",
            Nothing,
            |ids, g| json!({"code": 170, "group_id": g, "ocid": ids.victim, "admin": true}),
            [ANON, OUT, OUT, FORBIDDEN, FORBIDDEN, OK],
        ),
        op(
            "make an admin a member",
            VictimAdmin,
            |ids, g| json!({"code": 170, "group_id": g, "ocid": ids.victim, "admin": false}),
            [ANON, OUT, OUT, FORBIDDEN, FORBIDDEN, OK],
        ),
        op(
            "demote the admin",
            Nothing,
            |ids, g| json!({"code": 170, "group_id": g, "ocid": ids.admin, "admin": false}),
            [ANON, OUT, OUT, FORBIDDEN, OWN_ACCOUNT, OK],
        ),
        op(
            "hand the group over",
            Nothing,
            |ids, g| json!({"code": 172, "group_id": g, "ocid": ids.victim}),
            [ANON, OUT, OUT, FORBIDDEN, FORBIDDEN, OK],
        ),
        op(
            "disband",
            Nothing,
            |_, g| json!({"code": 174, "group_id": g}),
            [ANON, OUT, OUT, FORBIDDEN, FORBIDDEN, OK],
        ),
        op(
            "my groups",
            Nothing,
            |_, _| json!({"code": 176}),
            [ANON, OK, OK, OK, OK, OK],
        ),
        op(
            "find groups",
            Nothing,
            |_, _| json!({"code": 178, "query": "perm"}),
            [ANON, OK, OK, OK, OK, OK],
        ),
        op(
            "post to the group",
            Nothing,
            |_, g| json!({"code": 0, "sender": {"group_id": g}, "msg": "hello"}),
            [ANON, OUT, OUT, OK, OK, OK],
        ),
        op(
            "read the group's history",
            Nothing,
            |_, g| json!({"code": 104, "group_id": g}),
            [ANON, OUT, OUT, OK, OK, OK],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_operation_as_every_kind_of_caller() {
    // One owner makes a fresh group for every cell of the table: far more than an account may
    // create (and fill) in an hour, so those quotas are off here.
    let server = TestServer::start_with(|c| {
        c.limits.abuse.groups.max = 0;
        c.limits.abuse.members.max = 0;
    })
    .await;
    let mut owner = user_v1(&server, "owner@example.com", "Olga", "pw").await;
    let mut admin = user_v1(&server, "admin@example.com", "Adam", "pw").await;
    let mut member = user_v1(&server, "member@example.com", "Mona", "pw").await;
    let victim = user_v1(&server, "victim@example.com", "Vic", "pw").await;
    let mut stranger = user_v1(&server, "stranger@example.com", "Stan", "pw").await;
    let mut blocked = user_v1(&server, "blocked@example.com", "Bea", "pw").await;
    let mut requester = user_v1(&server, "requester@example.com", "Rita", "pw").await;
    let invitee = user_v1(&server, "invitee@example.com", "Ivo", "pw").await;
    let mut anonymous = server.v1().await;
    let ids = Ids {
        owner: owner.ocid,
        admin: admin.ocid,
        victim: victim.ocid,
        requester: requester.ocid,
        invitee: invitee.ocid,
    };
    let r = owner
        .client
        .request(&json!({"code": 146, "ocid": blocked.ocid}), 147)
        .await;
    assert_eq!(r["block"], json!(true), "{r}");

    let mut made = 0;
    let mut failures = Vec::new();
    for op in ops() {
        for (caller, expect) in CALLERS.into_iter().zip(op.expect) {
            let g = if caller == Caller::Anonymous {
                // Refused before anything is looked up.
                99_999
            } else {
                // A fresh group for every cell: the owner, an admin, a member and the victim,
                // and a join request waiting.
                made += 1;
                let r = call_ok(
                    &mut owner.client,
                    json!({"code": 8, "members": [admin.ocid, member.ocid, victim.ocid],
                        "name": format!("Perm {made}")}),
                    9,
                )
                .await;
                let g = int(&r["group_id"]);
                call_ok(
                    &mut owner.client,
                    json!({"code": 170, "group_id": g, "ocid": admin.ocid, "admin": true}),
                    171,
                )
                .await;
                let r = call_ok(
                    &mut requester.client,
                    json!({"code": 154, "group_id": g, "msg": "me too"}),
                    155,
                )
                .await;
                assert_eq!(r["state"], json!(1), "{r}");
                match op.setup {
                    Setup::Nothing => {}
                    Setup::Open => {
                        call_ok(
                            &mut owner.client,
                            json!({"code": 152, "group_id": g, "join_mode": 0}),
                            153,
                        )
                        .await;
                    }
                    Setup::VictimAdmin => {
                        call_ok(
                            &mut owner.client,
                            json!({"code": 170, "group_id": g, "ocid": victim.ocid, "admin": true}),
                            171,
                        )
                        .await;
                    }
                    Setup::InviteCaller => {
                        let invited = match caller {
                            Caller::Stranger => Some(stranger.ocid),
                            Caller::Blocked => Some(blocked.ocid),
                            _ => None,
                        };
                        if let Some(ocid) = invited {
                            call_ok(
                                &mut owner.client,
                                json!({"code": 160, "group_id": g, "ocid": ocid}),
                                161,
                            )
                            .await;
                        }
                    }
                }
                g
            };
            let client = match caller {
                Caller::Anonymous => &mut anonymous,
                Caller::Stranger => &mut stranger.client,
                Caller::Blocked => &mut blocked.client,
                Caller::Member => &mut member.client,
                Caller::Admin => &mut admin.client,
                Caller::Owner => &mut owner.client,
            };
            let req = (op.request)(&ids, g);
            let reply = call(client, &req).await;
            let code = req["code"].as_i64().expect("a code");
            let ok = match expect {
                Expect::Allowed => {
                    let answer = match code {
                        0 => 103,
                        c => c + 1,
                    };
                    reply["code"] == json!(answer)
                }
                Expect::Refused(name, number) => {
                    reply["code"] == json!(100)
                        && reply["error"] == json!(name)
                        && reply["error_code"] == json!(number)
                        && reply["request"] == json!(code)
                }
            };
            if !ok {
                failures.push(format!(
                    "{} as {caller:?}: expected {expect:?}, got {reply}",
                    op.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_full_group_keeps_the_request_or_invitation_it_cannot_accept() {
    let server = TestServer::start_with(|c| c.limits.max_group_members = 2).await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let g = create_named(&mut alice.client, &[bob.ocid], "Pair").await;

    carol
        .client
        .request(&json!({"code": 154, "group_id": g}), 155)
        .await;
    alice.client.expect_code(180).await;
    let full = "a group may have at most 2 members";
    let m = refused(
        &mut alice.client,
        json!({"code": 156, "group_id": g, "ocid": carol.ocid, "accept": true}),
        "invalid_field",
        1003,
    )
    .await;
    assert_eq!(m, full);
    carol.client.expect_silence(100).await;
    let r = alice
        .client
        .request(&json!({"code": 158, "group_id": g}), 159)
        .await;
    assert_eq!(r["requests"][0]["ocid"], json!(carol.ocid), "{r}");

    alice
        .client
        .request(&json!({"code": 160, "group_id": g, "ocid": dave.ocid}), 161)
        .await;
    dave.client.expect_code(182).await;
    let m = refused(
        &mut dave.client,
        json!({"code": 162, "group_id": g, "accept": true}),
        "invalid_field",
        1003,
    )
    .await;
    assert_eq!(m, full);
    let r = dave.client.request(&json!({"code": 164}), 165).await;
    assert_eq!(r["invitations"][0]["group_id"], json!(g), "{r}");

    // Once there is room, both still work.
    bob.client
        .request(&json!({"code": 166, "group_id": g}), 167)
        .await;
    for c in [&mut alice.client, &mut bob.client] {
        expect_system(c, g, bob.ocid, "Bob left").await;
    }
    alice
        .client
        .request(
            &json!({"code": 156, "group_id": g, "ocid": carol.ocid, "accept": true}),
            157,
        )
        .await;
    let [joined, _] = <[Value; 2]>::try_from(expect_codes(&mut carol.client, &[0, 181]).await)
        .expect("two frames");
    assert_system(&joined, g, carol.ocid, "Carol joined");
    expect_system(&mut alice.client, g, carol.ocid, "Carol joined").await;
    assert_eq!(info(&mut alice.client, g).await["member_count"], json!(2));
}

/// A group made with code 8 leaves out an account that blocks its creator.
#[tokio::test]
async fn a_new_group_leaves_out_whoever_blocks_its_creator() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    carol
        .client
        .request(&json!({"code": 146, "ocid": alice.ocid}), 147)
        .await;
    let group = create_group_v1(&mut alice.client, &[bob.ocid, carol.ocid]).await;
    let info = alice
        .client
        .request(&json!({"code": 150, "group_id": group}), 151)
        .await;
    assert_eq!(
        info["group"]["members"],
        json!([alice.ocid, bob.ocid]),
        "{info}"
    );
    carol.client.expect_silence(200).await;
}
