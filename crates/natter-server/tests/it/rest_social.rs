//! The REST + push dialect's friends, groups, history and notices over the wire: saying no to
//! a friend (rejecting a request, ending a friendship) and aliases; friendship changes,
//! presence, typing and read receipts pushed as typed message items; history pages; joining
//! groups at once or by a request that admins answer over HTTP; status 11001 when the store
//! does not answer; and conversations with the pipe and OurChat v0 dialects, both ways and
//! offline.

use crate::common::*;
use crate::driver::{Dialect, Pipe, Rest};
use crate::rest::{
    Ws, account, api, get, items, post, push, recv, refused, send, silence, start, text,
};
use natter_client::Target;
use serde_json::{Value, json};

/// The JSON object a notice item carries as its text.
fn notice(item: &Value) -> Value {
    assert_eq!(item["info"][0]["category"], json!(0), "{item}");
    let content = item["info"][0]["content"].as_str().expect("a text part");
    serde_json::from_str(content).unwrap_or_else(|_| panic!("a JSON notice: {item}"))
}

/// The one item of the next packet, which must be a notice (no index) of `kind`.
async fn one_notice(ws: &mut Ws, push_id: &str, kind: i64) -> Value {
    let got = items(ws, push_id).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let item = got[0].clone();
    assert_eq!(item["type"], json!(kind), "{item}");
    assert!(
        item.get("index").is_none(),
        "a notice is not stored: {item}"
    );
    assert!(
        item.get("msgId").is_none(),
        "a notice is not stored: {item}"
    );
    assert_eq!(
        item["createTime"].as_str().map(str::len),
        Some(23),
        "{item}"
    );
    item
}

/// Read items until one satisfies `wanted` and return it; what comes before it must be stored
/// messages (a group's system messages), which are acknowledged.
async fn until_item(ws: &mut Ws, push_id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        for item in items(ws, push_id).await {
            if wanted(&item) {
                return item;
            }
            assert!(item.get("index").is_some(), "unexpected notice: {item}");
            send(
                ws,
                json!({"status": 1, "pushId": push_id, "message":
                    {"chatId": item["chatId"], "content": "ok", "index": item["index"]}}),
            )
            .await;
        }
    }
}

fn id(n: u64) -> Value {
    json!(n.to_string())
}

#[tokio::test]
async fn friends_are_rejected_ended_and_given_an_alias_with_every_change_pushed() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ta) = account(addr, "13800000201").await;
    let (bob, tb) = account(addr, "13800000202").await;
    let mut wa = push(addr, &ta).await;
    let ia = start(&mut wa, "start").await;
    let mut wb = push(addr, &tb).await;
    let ib = start(&mut wb, "start").await;

    // Bob asks; Ann says no.
    let r = get(addr, &format!("/api/friends/{ann}?request=hi"), Some(&tb)).await;
    assert_eq!(r.body["message"], json!("requested"), "{}", r.body);
    let request = one_notice(&mut wa, &ia, 2).await;
    assert_eq!(
        (&request["chatId"], &request["fromId"], text(&request)),
        (&json!(""), &id(bob), "hi")
    );
    let no = api(
        addr,
        "DELETE",
        &format!("/api/friends/{bob}"),
        Some(&ta),
        None,
    )
    .await;
    assert_eq!(
        (no.http, no.status(), &no.body["message"]),
        (200, 1, &json!("rejected")),
        "{}",
        no.body
    );
    assert_eq!(no.body["result"]["user"]["id"], id(bob));
    assert_eq!(no.body["result"]["user"]["isFriend"], json!(false));
    // Both accounts' channels are told, as a system message of the change.
    for (ws, push_id, me, other) in [(&mut wa, &ia, ann, bob), (&mut wb, &ib, bob, ann)] {
        let item = one_notice(ws, push_id, 0).await;
        assert_eq!(
            (&item["chatId"], &item["fromId"], &item["toId"]),
            (&json!(""), &id(ann), &id(me)),
            "{item}"
        );
        assert_eq!(
            notice(&item),
            json!({"event": "friend", "state": "rejected", "userId": other.to_string(),
                   "by": ann.to_string()})
        );
    }
    // Nothing left to say no to; nobody to say it to.
    let again = api(
        addr,
        "DELETE",
        &format!("/api/friends/{bob}/"),
        Some(&ta),
        None,
    )
    .await;
    refused(&again, 404, 0);
    refused(
        &api(addr, "DELETE", "/api/friends/99999", Some(&ta), None).await,
        404,
        6004,
    );
    // An alias is for friends only.
    let alias = json!({"alias": "Bobby"});
    refused(
        &post(
            addr,
            &format!("/api/friends/{bob}"),
            Some(&ta),
            alias.clone(),
        )
        .await,
        404,
        0,
    );

    // Bob asks again and Ann asks back: friends, and both are told.
    get(addr, &format!("/api/friends/{ann}"), Some(&tb)).await;
    one_notice(&mut wa, &ia, 2).await;
    let yes = get(addr, &format!("/api/friends/{bob}"), Some(&ta)).await;
    assert_eq!(yes.body["message"], json!("accepted"));
    for (ws, push_id, other) in [(&mut wa, &ia, bob), (&mut wb, &ib, ann)] {
        let item = one_notice(ws, push_id, 0).await;
        assert_eq!(
            notice(&item),
            json!({"event": "friend", "state": "accepted", "userId": other.to_string(),
                   "by": ann.to_string()})
        );
        // A new friend who is online is announced so.
        let online = one_notice(ws, push_id, 4).await;
        assert_eq!(
            notice(&online),
            json!({"event": "presence", "userId": other.to_string(), "online": true})
        );
    }

    // Presence: Bob's only connection goes, then comes back.
    wb.close(None).await.expect("close");
    let gone = one_notice(&mut wa, &ia, 4).await;
    assert_eq!(
        (&gone["fromId"], &gone["toId"], &gone["chatId"]),
        (&id(bob), &id(ann), &json!(""))
    );
    assert_eq!(
        notice(&gone),
        json!({"event": "presence", "userId": bob.to_string(), "online": false})
    );
    let mut wb = push(addr, &tb).await;
    start(&mut wb, "start").await;
    let back = one_notice(&mut wa, &ia, 4).await;
    assert_eq!(
        notice(&back),
        json!({"event": "presence", "userId": bob.to_string(), "online": true})
    );

    // Ann names Bob.
    let set = post(addr, &format!("/api/friends/{bob}/"), Some(&ta), alias).await;
    assert_eq!(
        (set.http, set.status(), &set.body["message"]),
        (200, 1, &json!("saved")),
        "{}",
        set.body
    );
    assert_eq!(set.body["result"]["user"]["alias"], json!("Bobby"));
    assert_eq!(set.body["result"]["user"]["isFriend"], json!(true));
    let seen = get(addr, &format!("/api/user/{bob}"), Some(&ta)).await;
    assert_eq!(seen.body["result"]["user"]["alias"], json!("Bobby"));
    // Bob's own view of Ann has no alias.
    let other = get(addr, &format!("/api/user/{ann}"), Some(&tb)).await;
    assert_eq!(other.body["result"]["user"]["alias"], json!(""));
    for (body, why) in [
        (json!({"alias": 7}), "`alias`"),
        (json!({}), "`alias`"),
        (json!({"alias": "x".repeat(65)}), "`alias`"),
    ] {
        let a = post(addr, &format!("/api/friends/{bob}"), Some(&ta), body).await;
        refused(&a, 400, 0);
        assert!(
            a.body["message"].as_str().is_some_and(|m| m.contains(why)),
            "{}",
            a.body
        );
    }

    // Ann ends the friendship: both are told; the alias is gone with it.
    let end = api(
        addr,
        "DELETE",
        &format!("/api/friends/{bob}"),
        Some(&ta),
        None,
    )
    .await;
    assert_eq!(end.body["message"], json!("removed"), "{}", end.body);
    for (ws, push_id, other) in [(&mut wa, &ia, bob), (&mut wb, &ib, ann)] {
        let item = one_notice(ws, push_id, 0).await;
        assert_eq!(
            notice(&item),
            json!({"event": "friend", "state": "removed", "userId": other.to_string(),
                   "by": ann.to_string()})
        );
    }
    let seen = get(addr, &format!("/api/user/{bob}"), Some(&ta)).await;
    assert_eq!(
        (
            &seen.body["result"]["user"]["isFriend"],
            &seen.body["result"]["user"]["alias"]
        ),
        (&json!(false), &json!(""))
    );
    // Without the cookie: 401.
    refused(
        &api(addr, "DELETE", &format!("/api/friends/{bob}"), None, None).await,
        401,
        0,
    );
    silence(&mut wa, 200).await;
}

#[tokio::test]
async fn typing_and_read_receipts_of_an_ourchat_v1_client_are_pushed_as_notices() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ta) = account(addr, "13800000211").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut wa = push(addr, &ta).await;
    let ia = start(&mut wa, "start").await;

    bob.client
        .send_json(&json!({"code": 121, "private_id": ann}))
        .await;
    let typing = one_notice(&mut wa, &ia, 4).await;
    assert_eq!(
        (&typing["chatId"], &typing["fromId"], &typing["toId"]),
        (&json!(""), &id(bob.ocid), &id(ann)),
        "{typing}"
    );
    assert_eq!(
        notice(&typing),
        json!({"event": "typing", "userId": bob.ocid.to_string()})
    );

    // Ann writes; Bob reads it: Ann is told how far.
    send(
        &mut wa,
        json!({"status": 1, "pushId": ia, "message": [
            {"chatId": "", "toId": bob.ocid.to_string(), "info": [{"category": 0, "content": "hi"}]}]}),
    )
    .await;
    let confirm = recv(&mut wa).await;
    let chat = confirm["message"]["chatId"].clone();
    bob.client.expect_code(0).await;
    bob.client
        .request(&json!({"code": 184, "private_id": ann, "index": 1}), 185)
        .await;
    let read = one_notice(&mut wa, &ia, 4).await;
    assert_eq!(
        (&read["chatId"], &read["fromId"], &read["toId"]),
        (&chat, &id(bob.ocid), &id(ann)),
        "{read}"
    );
    assert_eq!(
        notice(&read),
        json!({"event": "read", "userId": bob.ocid.to_string(), "index": 1})
    );
    silence(&mut wa, 200).await;
}

#[tokio::test]
async fn history_is_read_in_pages_by_index_as_message_items() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ta) = account(addr, "13800000221").await;
    let (_, tc) = account(addr, "13800000222").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let path = |q: &str| format!("/api/message?{q}");

    // No chat yet: empty.
    let none = get(addr, &path(&format!("toId={}", bob.ocid)), Some(&ta)).await;
    assert_eq!((none.http, none.status()), (200, 1), "{}", none.body);
    assert_eq!(
        none.body["result"],
        json!({"chatId": "", "messages": [], "more": false})
    );

    let mut acks = Vec::new();
    for i in 1..=5 {
        acks.push(
            send_v1(
                &mut bob.client,
                json!({"private_id": ann}),
                &format!("m{i}"),
            )
            .await,
        );
    }
    let page = async |q: String| {
        let a = get(addr, &path(&q), Some(&ta)).await;
        assert_eq!(
            (a.http, a.status(), &a.body["message"]),
            (200, 1, &json!("ok")),
            "{q}: {}",
            a.body
        );
        let r = &a.body["result"];
        let indexes: Vec<u64> = r["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["index"].as_u64().expect("an index"))
            .collect();
        (r.clone(), indexes, r["more"] == json!(true))
    };
    let (all, indexes, more) = page(format!("toId={}", bob.ocid)).await;
    assert_eq!((indexes, more), (vec![1, 2, 3, 4, 5], false));
    let chat = all["chatId"].as_str().expect("a chat id").to_owned();
    let first = &all["messages"][0];
    assert_eq!(
        first,
        &json!({"chatId": chat, "fromId": id(bob.ocid), "toId": id(ann), "type": 1,
                "info": [{"category": 0, "content": "m1"}],
                "createTime": first["createTime"], "index": 1,
                "msgId": acks[0]["cid"].as_u64().map(|n| n.to_string())})
    );
    assert_eq!(first["createTime"].as_str().map(str::len), Some(23));
    for (q, want, want_more) in [
        (format!("chatId={chat}&limit=2"), vec![4, 5], true),
        (format!("chatId={chat}&before=4&limit=2"), vec![2, 3], true),
        (format!("chatId={chat}&before=2"), vec![1], false),
        (format!("chatId={chat}&after=3"), vec![4, 5], false),
        (format!("chatId={chat}&after=1&limit=2"), vec![2, 3], true),
    ] {
        let (_, indexes, more) = page(q.clone()).await;
        assert_eq!((indexes, more), (want, want_more), "{q}");
    }

    // What is refused.
    for (q, http, status) in [
        (String::new(), 400, 0),
        (format!("chatId={chat}&before=3&after=1"), 400, 0),
        (format!("chatId={chat}&limit=0"), 400, 0),
        (format!("chatId={chat}&limit=501"), 400, 0),
        ("chatId=abc".to_owned(), 400, 0),
        ("toId=99999".to_owned(), 404, 6004),
        ("chatId=99999".to_owned(), 404, 0),
    ] {
        refused(&get(addr, &path(&q), Some(&ta)).await, http, status);
    }
    // Another account's chat, and no cookie.
    refused(
        &get(addr, &path(&format!("chatId={chat}")), Some(&tc)).await,
        404,
        0,
    );
    refused(
        &get(addr, &path(&format!("chatId={chat}")), None).await,
        401,
        0,
    );
}

#[tokio::test]
async fn groups_are_joined_at_once_or_by_a_request_the_admins_answer() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ta) = account(addr, "13800000231").await;
    let (bob, tb) = account(addr, "13800000232").await;
    let (carol, tc) = account(addr, "13800000233").await;
    // A new group asks for approval.
    let created = post(addr, "/api/group", Some(&ta), json!({"name": "Quiet"})).await;
    let g: u64 = created.body["result"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a group id");
    let mut wa = push(addr, &ta).await;
    let ia = start(&mut wa, "start").await;
    let mut wb = push(addr, &tb).await;
    let ib = start(&mut wb, "start").await;
    let mut wc = push(addr, &tc).await;
    let ic = start(&mut wc, "start").await;

    let join = format!("/api/group/{g}/join");
    let asked = post(addr, &join, Some(&tb), json!({"request": "let me in"})).await;
    assert_eq!(
        (asked.http, asked.status(), &asked.body["message"]),
        (200, 1, &json!("requested")),
        "{}",
        asked.body
    );
    assert_eq!(
        asked.body["result"],
        json!({"id": g.to_string(), "name": "Quiet", "avatar": "", "members": 1, "isMember": false})
    );
    // The owner is pushed the request: type 2 in the group.
    let request = one_notice(&mut wa, &ia, 2).await;
    assert_eq!(
        (&request["chatId"], &request["fromId"], &request["toId"]),
        (&id(g), &id(bob), &id(g)),
        "{request}"
    );
    assert_eq!(text(&request), "let me in");
    // Carol asks with no body at all.
    let asked = api(addr, "POST", &format!("{join}/"), Some(&tc), None).await;
    assert_eq!(asked.body["message"], json!("requested"), "{}", asked.body);
    let from_carol = one_notice(&mut wa, &ia, 2).await;
    assert_eq!((&from_carol["fromId"], text(&from_carol)), (&id(carol), ""));

    // The owner lists them, oldest first, as they were pushed; others may not.
    let requests = format!("/api/group/{g}/requests");
    let listed = get(addr, &requests, Some(&ta)).await;
    assert_eq!((listed.http, listed.status()), (200, 1), "{}", listed.body);
    // (The time listed is the request's stored time, a moment before its push.)
    let untimed = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| o.remove("createTime"));
        v
    };
    let list = listed.body["result"].as_array().expect("a list");
    assert_eq!(
        list.iter().map(untimed).collect::<Vec<_>>(),
        [untimed(&request), untimed(&from_carol)]
    );
    assert!(
        list.iter()
            .all(|r| r["createTime"].as_str().map(str::len) == Some(23))
    );
    // Not a member: no such group, as far as Bob can tell.
    refused(&get(addr, &requests, Some(&tb)).await, 404, 0);

    // Bob is let in, Carol is not; each is told, and so is the owner.
    let yes = post(
        addr,
        &format!("{requests}/{bob}"),
        Some(&ta),
        json!({"accept": true}),
    )
    .await;
    assert_eq!(
        (yes.http, yes.status(), &yes.body["message"]),
        (200, 1, &json!("accepted")),
        "{}",
        yes.body
    );
    assert_eq!(yes.body["result"]["members"], json!(2));
    let is_join = |item: &Value| item["type"] == json!(0) && item.get("index").is_none();
    for (ws, push_id) in [(&mut wb, &ib), (&mut wa, &ia)] {
        let told = until_item(ws, push_id, is_join).await;
        assert_eq!(
            (&told["chatId"], &told["fromId"], &told["toId"]),
            (&id(g), &id(ann), &id(g))
        );
        assert_eq!(
            notice(&told),
            json!({"event": "join", "state": "accepted", "userId": bob.to_string(),
                   "by": ann.to_string()})
        );
    }
    // A member who is not an admin may not read or answer requests.
    refused(&get(addr, &requests, Some(&tb)).await, 403, 0);
    let answer = format!("{requests}/{carol}");
    refused(
        &post(addr, &answer, Some(&tb), json!({"accept": true})).await,
        403,
        0,
    );
    let no = post(
        addr,
        &format!("{requests}/{carol}/"),
        Some(&ta),
        json!({"accept": false}),
    )
    .await;
    assert_eq!(no.body["message"], json!("rejected"), "{}", no.body);
    let told = until_item(&mut wc, &ic, is_join).await;
    assert_eq!(
        notice(&told),
        json!({"event": "join", "state": "rejected", "userId": carol.to_string(),
               "by": ann.to_string()})
    );
    until_item(&mut wa, &ia, is_join).await;

    // Bob is a member: he writes to the group and Ann reads it.
    send(
        &mut wb,
        json!({"status": 1, "pushId": ib, "message": [
            {"chatId": g.to_string(), "info": [{"category": 0, "content": "thanks"}]}]}),
    )
    .await;
    let confirm = until_item_confirmation(&mut wb).await;
    assert_eq!(confirm["message"]["content"], json!("ok"), "{confirm}");
    let said = until_item(&mut wa, &ia, |i| {
        i["fromId"] == id(bob) && i["type"] == json!(1)
    })
    .await;
    assert_eq!((&said["chatId"], text(&said)), (&id(g), "thanks"));

    // What is refused.
    refused(&post(addr, &join, Some(&tb), json!({})).await, 409, 0);
    refused(
        &post(
            addr,
            &format!("{requests}/{carol}"),
            Some(&ta),
            json!({"accept": true}),
        )
        .await,
        404,
        0,
    );
    refused(
        &post(
            addr,
            &format!("{requests}/{bob}"),
            Some(&ta),
            json!({"accept": "yes"}),
        )
        .await,
        400,
        0,
    );
    refused(
        &post(addr, "/api/group/99999/join", Some(&tc), json!({})).await,
        404,
        0,
    );
    refused(
        &post(addr, &join, Some(&tc), json!({"request": 5})).await,
        400,
        0,
    );
    let long = json!({"request": "x".repeat(257)});
    let a = post(addr, &join, Some(&tc), long).await;
    refused(&a, 400, 0);
    assert!(
        a.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("`request`")),
        "{}",
        a.body
    );

    // A request made while the owner has no channel open is pushed after `start`.
    wa.close(None).await.expect("close");
    post(addr, &join, Some(&tc), json!({"request": "again"})).await;
    let mut wa = push(addr, &ta).await;
    let ia = start(&mut wa, "start").await;
    let waiting = until_item(&mut wa, &ia, |i| i["type"] == json!(2)).await;
    assert_eq!((&waiting["fromId"], text(&waiting)), (&id(carol), "again"));

    // An open group lets anyone in at once.
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let open = create_group_v1(&mut dave.client, &[]).await;
    dave.client
        .request(&json!({"code": 152, "group_id": open, "join_mode": 0}), 153)
        .await;
    let joined = post(
        addr,
        &format!("/api/group/{open}/join"),
        Some(&tc),
        json!({}),
    )
    .await;
    assert_eq!(
        (
            joined.status(),
            &joined.body["message"],
            &joined.body["result"]["isMember"]
        ),
        (1, &json!("joined"), &json!(true)),
        "{}",
        joined.body
    );
}

/// The next frame of `code` on `c`, past the others (pushes of the group's changes).
async fn until_code(c: &mut Client, code: i64) -> Value {
    loop {
        let f = c.recv().await;
        if f["code"] == json!(code) {
            return f;
        }
    }
}

#[tokio::test]
async fn invitations_and_removals_by_an_ourchat_v1_owner_are_pushed_as_system_notices() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ta) = account(addr, "13800000251").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    // A group that approves its members.
    let g = create_group_v1(&mut dave.client, &[]).await;
    let mut wa = push(addr, &ta).await;
    let ia = start(&mut wa, "start").await;

    dave.client
        .request(&json!({"code": 160, "group_id": g, "ocid": ann}), 161)
        .await;
    let invited = one_notice(&mut wa, &ia, 0).await;
    assert_eq!(
        (&invited["chatId"], &invited["fromId"], &invited["toId"]),
        (&id(g), &id(dave.ocid), &id(ann)),
        "{invited}"
    );
    assert_eq!(
        notice(&invited),
        json!({"event": "invited", "by": dave.ocid.to_string()})
    );
    // The invitation lets Ann in at once.
    let joined = post(addr, &format!("/api/group/{g}/join"), Some(&ta), json!({})).await;
    assert_eq!(
        (
            joined.status(),
            &joined.body["message"],
            &joined.body["result"]["isMember"]
        ),
        (1, &json!("joined"), &json!(true)),
        "{}",
        joined.body
    );

    // Dave removes her: she is told.
    dave.client
        .send_json(&json!({"code": 168, "group_id": g, "ocid": ann}))
        .await;
    until_code(&mut dave.client, 169).await;
    let is_notice = |i: &Value| i.get("index").is_none();
    let removed = until_item(&mut wa, &ia, is_notice).await;
    assert_eq!(
        (&removed["type"], &removed["chatId"], &removed["fromId"]),
        (&json!(0), &id(g), &id(dave.ocid)),
        "{removed}"
    );
    assert_eq!(
        notice(&removed),
        json!({"event": "removed", "by": dave.ocid.to_string()})
    );
    // No longer a member: its history is closed to her.
    refused(
        &get(addr, &format!("/api/message?chatId={g}"), Some(&ta)).await,
        404,
        0,
    );
}

/// The next confirmation on `ws`, past any message items.
async fn until_item_confirmation(ws: &mut Ws) -> Value {
    loop {
        let p = recv(ws).await;
        if p["message"].is_object() {
            return p;
        }
    }
}

#[tokio::test]
async fn a_store_that_does_not_answer_is_a_network_error() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (ann, ta) = account(addr, "13800000241").await;
    let (bob, tb) = account(addr, "13800000242").await;
    get(addr, &format!("/api/friends/{bob}"), Some(&ta)).await;
    let yes = get(addr, &format!("/api/friends/{ann}"), Some(&tb)).await;
    assert_eq!(yes.body["message"], json!("accepted"));

    // Another process holds the database's write lock longer than the server waits for it.
    let db = server.config.data_dir.join("natter.db");
    let lock = rusqlite::Connection::open(&db).expect("open the database");
    lock.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    let path = format!("/api/friends/{bob}");
    let failed = post(addr, &path, Some(&ta), json!({"alias": "B"})).await;
    refused(&failed, 500, 11001);
    lock.execute_batch("ROLLBACK").expect("release the lock");
    drop(lock);
    // Once the store answers again, so does the server.
    let saved = post(addr, &path, Some(&ta), json!({"alias": "B"})).await;
    assert_eq!((saved.http, saved.status()), (200, 1), "{}", saved.body);
}

/// An account on `A` and one on `B` chat privately, both ways, and a message sent while `B`'s
/// account is away reaches it at its next login.
async fn chat_both_ways<A: Dialect, B: Dialect>() {
    let server = TestServer::start().await;
    let mut a = A::connect(&server).await;
    let alice = a.register("alice@example.com", "Alice", "pw-a").await;
    assert!(a.login(alice, "alice@example.com", "pw-a").await.is_empty());
    let mut b = B::connect(&server).await;
    let bob = b.register("bob@example.com", "Bob", "pw-b").await;
    assert!(b.login(bob, "bob@example.com", "pw-b").await.is_empty());

    let first = a.send(Target::Private(bob), "hi bob").await;
    assert_eq!(first.index, 1);
    let m = b.recv_message().await;
    b.assert_message(&m, Target::Private(alice), alice, 1, "hi bob");
    assert_eq!(m.id, first.id);
    a.expect_silence(200).await;

    let reply = b.send(Target::Private(alice), "hi alice").await;
    assert_eq!(reply.index, 2);
    let m = a.recv_message().await;
    a.assert_message(&m, Target::Private(bob), bob, 2, "hi alice");
    assert_eq!(m.id, reply.id);
    b.expect_silence(200).await;

    b.close().await;
    let later = a.send(Target::Private(bob), "while away").await;
    let mut b = B::connect(&server).await;
    let missed = b.login(bob, "bob@example.com", "pw-b").await;
    assert_eq!(missed.len(), 1, "{}: {missed:?}", B::NAME);
    b.assert_message(&missed[0], Target::Private(alice), alice, 3, "while away");
    assert_eq!(missed[0].id, later.id);
}

mod a_push_client_and_a_pipe_client {
    use super::{Pipe, Rest, chat_both_ways};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rest_first() {
        chat_both_ways::<Rest, Pipe>().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipe_first() {
        chat_both_ways::<Pipe, Rest>().await;
    }
}

mod a_push_client_and_an_ourchat_v0_client {
    use super::{Rest, chat_both_ways};
    use crate::driver::V0;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rest_first() {
        chat_both_ways::<Rest, V0>().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn v0_first() {
        chat_both_ways::<V0, Rest>().await;
    }
}
