//! Accounts beyond email and password, through the v1 wire: registration and login by username
//! and phone (codes 4 and 6), profiles and remarks (124, 126, 144), search (128), password
//! changes, the security question and resets (130-137), logins (138, 140), deleting an account
//! (142) and blocking (146, 148), with the errors each of them has; also that the reset lock
//! holds against answers sent at once, and a block on every node of a cluster.

use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Send an extension request and return its reply, which must be the next frame and carry the
/// next odd code.
async fn ask(c: &mut Client, req: Value) -> Value {
    let code = req["code"].as_i64().expect("requests have a code");
    let r = c.request(&req, code + 1).await;
    assert_recent_time(&r["time"]);
    r
}

/// Send a request that must be refused with the error `name` (`number`); returns the message.
async fn refused(c: &mut Client, req: Value, name: &str, number: u32) -> String {
    let r = c.request(&req, 100).await;
    assert_error(&r, name, number, req["code"].clone())
}

/// Register by `field` (`email`, `username` or `phone`); returns the new ocid.
async fn register_by(c: &mut Client, field: &str, value: &str, pw: &str) -> u64 {
    let r = c
        .request(&json!({"code": 4, field: value, "password": pw}), 5)
        .await;
    assert_eq!(r["state"], json!(0), "registering {field} {value}: {r}");
    int(&r["ocid"])
}

/// A password login that must succeed (`login_type` 0 email, 1 ocid, 2 username, 3 phone).
async fn login_by(c: &mut Client, login_type: u8, account: &str, pw: &str) -> LoggedIn {
    login_v1_with(
        c,
        &json!({"code": 6, "login_type": login_type, "account": account, "password": pw}),
    )
    .await
}

/// The `state` of a password login on a fresh connection (0 ok, 1 refused).
async fn login_state(server: &TestServer, login_type: u8, account: &str, pw: &str) -> Value {
    let mut c = server.v1().await;
    let r = c
        .request(
            &json!({"code": 6, "login_type": login_type, "account": account, "password": pw}),
            7,
        )
        .await;
    r["state"].clone()
}

/// The `state` of a token resume on a fresh connection (0 ok, 1 refused).
async fn resume_state(server: &TestServer, token: &str) -> Value {
    let mut c = server.v1().await;
    let r = c.request(&json!({"code": 101, "token": token}), 102).await;
    r["state"].clone()
}

/// The connection must be closed by the server because its login ended (4001), with no frame
/// before the close.
async fn expect_logged_out(c: &mut Client) {
    assert_eq!(c.wait_closed().await, Ended::Close(Some(4001)));
}

/// The connection must still be open and served.
async fn expect_alive(c: &mut Client) {
    c.request(&json!({"code": 107}), 108).await;
}

/// Every frame that arrives until `ms` milliseconds pass without one.
async fn drain(c: &mut Client, ms: u64) -> Vec<Value> {
    let mut got = Vec::new();
    while let Some(f) = c.recv_within(Duration::from_millis(ms)).await {
        got.push(f);
    }
    got
}

/// The ocids of a code 129 reply's accounts, checking that none shows an email or phone.
fn found(r: &Value) -> Vec<u64> {
    let accounts = r["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("code 129 `accounts` must be a list: {r}"));
    for a in accounts {
        assert!(
            a.get("email").is_none() && a.get("phone").is_none(),
            "search never shows an email or phone: {a}"
        );
        assert_eq!(a["deleted"], json!(false), "{a}");
    }
    accounts.iter().map(|a| int(&a["ocid"])).collect()
}

async fn search(c: &mut Client, by: &str, query: &str) -> Vec<u64> {
    let r = ask(c, json!({"code": 128, "by": by, "query": query})).await;
    assert_eq!(r["more"], json!(false), "{r}");
    found(&r)
}

/// The logins of code 139.
async fn logins(c: &mut Client) -> Vec<Value> {
    let r = ask(c, json!({"code": 138})).await;
    r["logins"]
        .as_array()
        .unwrap_or_else(|| panic!("code 139 `logins` must be a list: {r}"))
        .clone()
}

#[tokio::test]
async fn accounts_register_and_log_in_by_username_and_phone() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;

    // A username is trimmed and lowercased; it is also the default nickname.
    let ann = register_by(&mut c, "username", "  Ann_1.x ", "pw-ann").await;
    let mut ann_c = server.v1().await;
    let l = login_by(&mut ann_c, 2, "ANN_1.X", "pw-ann").await;
    assert_eq!(l.ocid, ann);
    let p = ask(&mut ann_c, json!({"code": 126, "ocid": ann})).await;
    let p = &p["profile"];
    assert_eq!(
        (&p["ocid"], &p["username"], &p["nickname"]),
        (&json!(ann), &json!("ann_1.x"), &json!("ann_1.x")),
        "{p}"
    );
    assert_eq!((&p["email"], &p["phone"]), (&Value::Null, &Value::Null));

    // A phone drops spaces, dashes, dots and parentheses; the nickname ends with its digits.
    let phil = register_by(&mut c, "phone", " +1 (555) 010-9999 ", "pw-phil").await;
    assert_eq!(phil, ann + 1);
    let mut phil_c = server.v1().await;
    let l = login_by(&mut phil_c, 3, "+1.555.010.9999", "pw-phil").await;
    assert_eq!(l.ocid, phil);
    let p = ask(&mut phil_c, json!({"code": 126, "ocid": phil})).await;
    assert_eq!(p["profile"]["phone"], json!("+15550109999"), "{p}");
    assert_eq!(p["profile"]["nickname"], json!("user9999"), "{p}");
    assert_eq!(p["profile"]["username"], Value::Null, "{p}");
    // A name given at registration is the nickname.
    let r = c
        .request(
            &json!({"code": 4, "username": "zed", "password": "pw", "name": "Zed Z"}),
            5,
        )
        .await;
    let zed = int(&r["ocid"]);
    let p = ask(&mut ann_c, json!({"code": 126, "ocid": zed})).await;
    assert_eq!(p["profile"]["nickname"], json!("Zed Z"), "{p}");

    // Taken, in any spelling; the failures consume no ocid.
    let m = refused(
        &mut c,
        json!({"code": 4, "username": "ANN_1.X", "password": "x"}),
        "username_taken",
        3001,
    )
    .await;
    assert!(m.contains("username"), "{m}");
    refused(
        &mut c,
        json!({"code": 4, "phone": "+1 555 010 9999", "password": "x"}),
        "phone_taken",
        3002,
    )
    .await;

    // The rules.
    for bad in [
        "ab",
        "1abc",
        "_abc",
        "ab cd",
        "abc!",
        "ann-1",
        &"a".repeat(33),
    ] {
        let m = refused(
            &mut c,
            json!({"code": 4, "username": bad, "password": "x"}),
            "invalid_field",
            1003,
        )
        .await;
        assert!(m.contains("`username`"), "{bad}: {m}");
    }
    for bad in [
        "12345",
        "+1234567890123456",
        "555-CALL-NOW",
        "++1234567",
        "+",
    ] {
        let m = refused(
            &mut c,
            json!({"code": 4, "phone": bad, "password": "x"}),
            "invalid_field",
            1003,
        )
        .await;
        assert!(m.contains("`phone`"), "{bad}: {m}");
    }
    // The longest username and phone are fine.
    let long = format!("a{}", "b".repeat(31));
    let longest = register_by(&mut c, "username", &long, "pw").await;
    assert_eq!(longest, zed + 1, "refusals consumed no ocid");
    register_by(&mut c, "phone", "+123456789012345", "pw").await;

    // Refused logins: wrong password, unknown or malformed username or phone.
    for (login_type, account, pw) in [
        (2, "ann_1.x", "wrong"),
        (2, "nobody", "pw-ann"),
        (2, "x", "pw-ann"),
        (3, "+15550109999", "wrong"),
        (3, "+15550100000", "pw-phil"),
        (3, "not a phone", "pw-phil"),
        // An identity of one kind is not found as another.
        (0, "ann_1.x", "pw-ann"),
        (2, "+15550109999", "pw-phil"),
    ] {
        assert_eq!(
            login_state(&server, login_type, account, pw).await,
            json!(1),
            "login {login_type} {account} {pw}"
        );
    }
    // By ocid, these accounts log in as any other.
    assert_eq!(
        login_state(&server, 1, &phil.to_string(), "pw-phil").await,
        json!(0)
    );
}

#[tokio::test]
async fn a_profile_is_set_and_shown_to_its_owner_and_to_others() {
    // The product's default for who may add an account to groups, shown to its owner.
    let server = TestServer::start_with(|c| {
        c.limits.group_adds = natter_server::domain::GroupAdds::Friends;
    })
    .await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;

    let r = ask(
        &mut alice.client,
        json!({"code": 124, "nickname": "  Alice A ", "avatar": "file:1", "signature": "hi",
               "description": "about me", "sex": 2, "status_text": "busy",
               "username": "Alice", "phone": "555 0101 22", "request_id": "p1"}),
    )
    .await;
    assert_eq!(r["request_id"], json!("p1"));
    let own = &r["profile"];
    assert_eq!(
        own,
        &json!({
            "ocid": alice.ocid, "nickname": "Alice A", "username": "alice", "avatar": "file:1",
            "signature": "hi", "description": "about me", "sex": 2, "status_text": "busy",
            "time": own["time"], "modified_at": own["modified_at"], "deleted": false,
            "email": "alice@example.com", "phone": "555010122",
            "security_question": null, "group_adds": "friends",
        })
    );
    assert_recent_time(&own["time"]);
    assert_recent_time(&own["modified_at"]);
    // The owner reads the same back.
    let r = ask(&mut alice.client, json!({"code": 126, "ocid": alice.ocid})).await;
    assert_eq!(&r["profile"], own);

    // Others see neither the email, the phone nor the question.
    let r = ask(&mut bob.client, json!({"code": 126, "ocid": alice.ocid})).await;
    let theirs = &r["profile"];
    for hidden in [
        "email",
        "phone",
        "security_question",
        "remark",
        "group_adds",
    ] {
        assert!(theirs.get(hidden).is_none(), "{hidden} shown: {theirs}");
    }
    assert_eq!(
        (&theirs["nickname"], &theirs["username"], &theirs["sex"]),
        (&json!("Alice A"), &json!("alice"), &json!(2))
    );

    // Only the named fields change; the new username and phone log in.
    let r = ask(
        &mut alice.client,
        json!({"code": 124, "signature": "", "sex": 0}),
    )
    .await;
    assert_eq!(
        (
            &r["profile"]["signature"],
            &r["profile"]["sex"],
            &r["profile"]["nickname"],
            &r["profile"]["status_text"]
        ),
        (&json!(""), &json!(0), &json!("Alice A"), &json!("busy"))
    );
    assert_eq!(login_state(&server, 2, "ALICE", "pw-a").await, json!(0));
    assert_eq!(
        login_state(&server, 3, "555-010-122", "pw-a").await,
        json!(0)
    );

    // Another account cannot take them.
    refused(
        &mut bob.client,
        json!({"code": 124, "username": "alice"}),
        "username_taken",
        3001,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 124, "phone": "(555) 010 122"}),
        "phone_taken",
        3002,
    )
    .await;
    // Setting one's own again is no conflict.
    ask(
        &mut alice.client,
        json!({"code": 124, "username": "alice", "phone": "555010122"}),
    )
    .await;

    // Bad edits change nothing.
    for (req, field) in [
        (json!({"code": 124, "sex": 4}), "`sex`"),
        (json!({"code": 124, "nickname": "   "}), "`name`"),
        (json!({"code": 124, "nickname": "n".repeat(65)}), "`name`"),
        (
            json!({"code": 124, "signature": "s".repeat(257)}),
            "`signature`",
        ),
        (
            json!({"code": 124, "status_text": "s".repeat(129)}),
            "`status_text`",
        ),
        (
            json!({"code": 124, "description": "d".repeat(2049)}),
            "`description`",
        ),
        (json!({"code": 124, "avatar": "a".repeat(513)}), "`avatar`"),
        (json!({"code": 124, "username": "a!"}), "`username`"),
        (json!({"code": 124, "phone": "12"}), "`phone`"),
        (json!({"code": 124, "username": 7}), "`username`"),
        (json!({"code": 124}), "nothing to change"),
    ] {
        let m = refused(&mut alice.client, req.clone(), "invalid_field", 1003).await;
        assert!(m.contains(field), "{req}: {m}");
    }
    let r = ask(&mut alice.client, json!({"code": 126, "ocid": alice.ocid})).await;
    assert_eq!(r["profile"]["nickname"], json!("Alice A"));
    assert_eq!(r["profile"]["sex"], json!(0));

    // `null` clears the username and phone: they no longer log in, and are free again.
    let r = ask(
        &mut alice.client,
        json!({"code": 124, "username": null, "phone": null}),
    )
    .await;
    assert_eq!(
        (&r["profile"]["username"], &r["profile"]["phone"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(login_state(&server, 2, "alice", "pw-a").await, json!(1));
    assert_eq!(login_state(&server, 3, "555010122", "pw-a").await, json!(1));
    let r = ask(
        &mut bob.client,
        json!({"code": 124, "username": "alice", "phone": "555010122"}),
    )
    .await;
    assert_eq!(r["profile"]["username"], json!("alice"));
    assert_eq!(login_state(&server, 2, "alice", "pw-b").await, json!(0));

    // An unknown account; a request before login.
    refused(
        &mut alice.client,
        json!({"code": 126, "ocid": 999_999}),
        "no_such_account",
        4000,
    )
    .await;
    let mut anon = server.v1().await;
    for req in [
        json!({"code": 124, "nickname": "x"}),
        json!({"code": 126, "ocid": alice.ocid}),
    ] {
        refused(&mut anon, req, "not_logged_in", 2000).await;
    }
}

#[tokio::test]
async fn a_remark_is_shown_only_to_the_friend_who_set_it() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;

    // Not friends yet.
    refused(
        &mut alice.client,
        json!({"code": 144, "ocid": bob.ocid, "remark": "Bobby"}),
        "not_friends",
        4006,
    )
    .await;
    befriend_v1(&mut alice, &mut bob).await;

    let r = ask(
        &mut alice.client,
        json!({"code": 144, "ocid": bob.ocid, "remark": "  Bobby "}),
    )
    .await;
    assert_eq!(
        (&r["ocid"], &r["remark"]),
        (&json!(bob.ocid), &json!("Bobby"))
    );
    let r = ask(&mut alice.client, json!({"code": 126, "ocid": bob.ocid})).await;
    assert_eq!(r["profile"]["remark"], json!("Bobby"), "{r}");
    assert_eq!(r["profile"]["nickname"], json!("Bob"), "{r}");
    // Bob's view of Alice carries his own (empty) remark, not hers.
    let r = ask(&mut bob.client, json!({"code": 126, "ocid": alice.ocid})).await;
    assert_eq!(r["profile"]["remark"], json!(""), "{r}");
    // No one else sees it, nor does Bob on his own profile.
    let r = ask(&mut carol.client, json!({"code": 126, "ocid": bob.ocid})).await;
    assert!(r["profile"].get("remark").is_none(), "{r}");
    let r = ask(&mut bob.client, json!({"code": 126, "ocid": bob.ocid})).await;
    assert!(r["profile"].get("remark").is_none(), "{r}");
    // Nobody is told of a remark.
    bob.client.expect_silence(200).await;

    // Too long; a stranger; oneself.
    let m = refused(
        &mut alice.client,
        json!({"code": 144, "ocid": bob.ocid, "remark": "r".repeat(65)}),
        "invalid_field",
        1003,
    )
    .await;
    assert!(m.contains("`remark`"), "{m}");
    for ocid in [carol.ocid, alice.ocid, 999_999] {
        refused(
            &mut alice.client,
            json!({"code": 144, "ocid": ocid, "remark": "x"}),
            "not_friends",
            4006,
        )
        .await;
    }
    refused(
        &mut alice.client,
        json!({"code": 144, "ocid": bob.ocid}),
        "missing_field",
        1002,
    )
    .await;

    // An empty remark removes it; the friendship's end removes it too.
    ask(
        &mut alice.client,
        json!({"code": 144, "ocid": bob.ocid, "remark": ""}),
    )
    .await;
    let r = ask(&mut alice.client, json!({"code": 126, "ocid": bob.ocid})).await;
    assert_eq!(r["profile"]["remark"], json!(""), "{r}");
    ask(
        &mut alice.client,
        json!({"code": 144, "ocid": bob.ocid, "remark": "B"}),
    )
    .await;
    alice
        .client
        .request(&json!({"code": 115, "ocid": bob.ocid}), 116)
        .await;
    let r = ask(&mut alice.client, json!({"code": 126, "ocid": bob.ocid})).await;
    assert!(r["profile"].get("remark").is_none(), "{r}");
}

#[tokio::test]
async fn search_finds_by_each_key_pages_and_never_finds_deleted_accounts() {
    let server = TestServer::start().await;
    let mut me = user_v1(&server, "me@example.com", "Me", "pw").await;
    let mut c = server.v1().await;
    let sam = register_v1(&mut c, "sam@example.com", "Sam", "pw").await;
    let samantha = register_v1(&mut c, "samantha@example.com", "samantha", "pw").await;
    let sandra = register_v1(&mut c, "sandra@example.com", "Sandra", "pw").await;
    let samuel = register_by(&mut c, "username", "samuel", "pw").await;
    let sammy = register_by(&mut c, "phone", "+44 20 7946 0000", "pw").await;
    // Sammy names himself.
    let mut sammy_c = server.v1().await;
    login_by(&mut sammy_c, 3, "+442079460000", "pw").await;
    ask(&mut sammy_c, json!({"code": 124, "nickname": "SAMMY"})).await;

    // By each identity, in any of its spellings.
    let c = &mut me.client;
    assert_eq!(search(c, "email", " SAM@example.com").await, vec![sam]);
    assert_eq!(search(c, "username", "Samuel").await, vec![samuel]);
    assert_eq!(search(c, "phone", "+44 (20) 7946-0000").await, vec![sammy]);
    assert_eq!(
        search(c, "ocid", &format!(" {sandra} ")).await,
        vec![sandra]
    );
    // Nothing found is no error.
    assert_eq!(
        search(c, "email", "nobody@example.com").await,
        Vec::<u64>::new()
    );
    assert_eq!(search(c, "ocid", "999999").await, Vec::<u64>::new());
    assert_eq!(search(c, "ocid", "sam").await, Vec::<u64>::new());
    assert_eq!(search(c, "username", "nobody").await, Vec::<u64>::new());
    // An exact identity, not a prefix.
    assert_eq!(search(c, "username", "samu").await, Vec::<u64>::new());
    // What a found account shows.
    let r = ask(c, json!({"code": 128, "by": "username", "query": "samuel"})).await;
    let a = &r["accounts"][0];
    assert_eq!(
        (&a["ocid"], &a["username"], &a["nickname"]),
        (&json!(samuel), &json!("samuel"), &json!("samuel"))
    );

    // By the start of the nickname, case-insensitive, ascending by ocid.
    let all = vec![sam, samantha, samuel, sammy];
    assert_eq!(search(c, "nickname", "sAm").await, all);
    assert_eq!(search(c, "nickname", "sa").await.len(), 5);
    assert_eq!(search(c, "nickname", "Samm").await, vec![sammy]);

    // Pages: `after` the last ocid seen, `more` while something is left.
    let r = ask(
        c,
        json!({"code": 128, "by": "nickname", "query": "sam", "limit": 3}),
    )
    .await;
    assert_eq!(
        (found(&r), &r["more"]),
        (vec![sam, samantha, samuel], &json!(true))
    );
    let r = ask(
        c,
        json!({"code": 128, "by": "nickname", "query": "sam", "limit": 3, "after": samuel}),
    )
    .await;
    assert_eq!((found(&r), &r["more"]), (vec![sammy], &json!(false)));
    // A page that ends exactly at the last match has nothing more.
    let r = ask(
        c,
        json!({"code": 128, "by": "nickname", "query": "sam", "limit": 4}),
    )
    .await;
    assert_eq!((found(&r), &r["more"]), (all.clone(), &json!(false)), "{r}");
    let r = ask(
        c,
        json!({"code": 128, "by": "nickname", "query": "sam", "limit": 2, "after": samantha}),
    )
    .await;
    assert_eq!(
        (found(&r), &r["more"]),
        (vec![samuel, sammy], &json!(false)),
        "{r}"
    );
    let r = ask(
        c,
        json!({"code": 128, "by": "nickname", "query": "sam", "after": sammy}),
    )
    .await;
    assert_eq!((found(&r), &r["more"]), (Vec::<u64>::new(), &json!(false)));

    // A deleted account is never found, by any key.
    let mut samuel_c = server.v1().await;
    login_by(&mut samuel_c, 2, "samuel", "pw").await;
    ask(&mut samuel_c, json!({"code": 142, "password": "pw"})).await;
    assert_eq!(
        search(c, "nickname", "sam").await,
        vec![sam, samantha, sammy]
    );
    assert_eq!(
        search(c, "ocid", &samuel.to_string()).await,
        Vec::<u64>::new()
    );
    assert_eq!(search(c, "username", "samuel").await, Vec::<u64>::new());

    // Bad searches.
    for (req, field) in [
        (json!({"code": 128, "by": "shoe", "query": "x"}), "`by`"),
        (
            json!({"code": 128, "by": "nickname", "query": "  "}),
            "`query`",
        ),
        (
            json!({"code": 128, "by": "nickname", "query": "q".repeat(65)}),
            "`query`",
        ),
        (
            json!({"code": 128, "by": "nickname", "query": "s", "limit": 0}),
            "`limit`",
        ),
        (
            json!({"code": 128, "by": "nickname", "query": "s", "limit": 51}),
            "`limit`",
        ),
        (
            json!({"code": 128, "by": "email", "query": "not-an-email"}),
            "`email`",
        ),
        (
            json!({"code": 128, "by": "username", "query": "1x"}),
            "`username`",
        ),
        (
            json!({"code": 128, "by": "phone", "query": "call me"}),
            "`phone`",
        ),
    ] {
        let m = refused(c, req.clone(), "invalid_field", 1003).await;
        assert!(m.contains(field), "{req}: {m}");
    }
    refused(
        c,
        json!({"code": 128, "by": "email"}),
        "missing_field",
        1002,
    )
    .await;
    let mut anon = server.v1().await;
    refused(
        &mut anon,
        json!({"code": 128, "by": "ocid", "query": "10001"}),
        "not_logged_in",
        2000,
    )
    .await;
}

/// Finding groups (code 178) pages as searching accounts does: `more` only when something is
/// left beyond the page.
#[tokio::test]
async fn finding_groups_says_more_only_when_more_is_left() {
    let server = TestServer::start().await;
    let mut me = user_v1(&server, "me@example.com", "Me", "pw").await;
    let mut ids = Vec::new();
    for name in ["Chess club", "chess juniors", "Checkers"] {
        let r = me
            .client
            .request(&json!({"code": 8, "members": [], "name": name}), 9)
            .await;
        ids.push(int(&r["group_id"]));
    }
    let find = |limit: u64, after: u64| json!({"code": 178, "query": "CHESS", "limit": limit, "after": after});
    let groups = |r: &Value| -> Vec<u64> {
        r["groups"]
            .as_array()
            .unwrap_or_else(|| panic!("code 179 `groups` must be a list: {r}"))
            .iter()
            .map(|g| int(&g["group_id"]))
            .collect()
    };
    let r = ask(&mut me.client, find(1, 0)).await;
    assert_eq!(
        (groups(&r), &r["more"]),
        (vec![ids[0]], &json!(true)),
        "{r}"
    );
    let r = ask(&mut me.client, find(1, ids[0])).await;
    assert_eq!(
        (groups(&r), &r["more"]),
        (vec![ids[1]], &json!(false)),
        "{r}"
    );
    let r = ask(&mut me.client, find(2, 0)).await;
    assert_eq!(
        (groups(&r), &r["more"]),
        (ids[..2].to_vec(), &json!(false)),
        "{r}"
    );
}

#[tokio::test]
async fn changing_the_password_ends_the_other_logins() {
    let server = TestServer::start().await;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-1").await;
    let (mut one, token1) = (alice.client, alice.token);
    // The same login on a second connection, and a second login.
    let mut one_again = server.v1().await;
    resume_v1(&mut one_again, &token1).await;
    let mut two = server.v1().await;
    let token2 = login_v1(&mut two, "alice@example.com", "pw-1").await.token;

    // A wrong old password, or a bad new one, changes nothing.
    refused(
        &mut one,
        json!({"code": 130, "old_password": "pw-x", "new_password": "pw-2"}),
        "bad_credentials",
        2001,
    )
    .await;
    let m = refused(
        &mut one,
        json!({"code": 130, "old_password": "pw-1", "new_password": ""}),
        "invalid_field",
        1003,
    )
    .await;
    assert!(m.contains("`password`"), "{m}");
    refused(
        &mut one,
        json!({"code": 130, "old_password": "pw-1"}),
        "missing_field",
        1002,
    )
    .await;
    expect_alive(&mut two).await;
    assert_eq!(
        login_state(&server, 0, "alice@example.com", "pw-1").await,
        json!(0)
    );

    // The change ends the other login: its connection closes, its token is refused.
    let r = ask(
        &mut one,
        json!({"code": 130, "old_password": "pw-1", "new_password": "pw-2"}),
    )
    .await;
    // The login made by `login_state` above ended too.
    assert_eq!(r["ended"], json!(2), "{r}");
    expect_logged_out(&mut two).await;
    assert_eq!(resume_state(&server, &token2).await, json!(1));
    // The login that changed it stays, on both its connections.
    expect_alive(&mut one).await;
    expect_alive(&mut one_again).await;
    assert_eq!(resume_state(&server, &token1).await, json!(0));
    assert_eq!(
        login_state(&server, 0, "alice@example.com", "pw-1").await,
        json!(1)
    );

    // With `keep_others`, the other logins stay.
    let mut three = server.v1().await;
    let token3 = login_v1(&mut three, "alice@example.com", "pw-2")
        .await
        .token;
    let r = ask(
        &mut one,
        json!({"code": 130, "old_password": "pw-2", "new_password": "pw-3", "keep_others": true}),
    )
    .await;
    assert_eq!(r["ended"], json!(0), "{r}");
    expect_alive(&mut three).await;
    assert_eq!(resume_state(&server, &token3).await, json!(0));
    assert_eq!(
        login_state(&server, 0, "alice@example.com", "pw-2").await,
        json!(1)
    );
    assert_eq!(
        login_state(&server, 0, "alice@example.com", "pw-3").await,
        json!(0)
    );

    let mut anon = server.v1().await;
    refused(
        &mut anon,
        json!({"code": 130, "old_password": "pw-3", "new_password": "pw-4"}),
        "not_logged_in",
        2000,
    )
    .await;
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_the_security_answer() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    let ann = register_by(&mut c, "username", "ann", "pw-old").await;
    let mut one = server.v1().await;
    let token1 = login_by(&mut one, 2, "ann", "pw-old").await.token;
    let mut two = server.v1().await;
    let token2 = login_by(&mut two, 1, &ann.to_string(), "pw-old")
        .await
        .token;

    // No question yet: asking for it, or resetting, says so; so does an unknown account.
    let mut anon = server.v1().await;
    for (login_type, account) in [(2, "ann"), (2, "nobody"), (0, "x@y.z"), (1, "10001")] {
        refused(
            &mut anon,
            json!({"code": 136, "login_type": login_type, "account": account}),
            "no_security_question",
            4014,
        )
        .await;
    }
    refused(
        &mut anon,
        json!({"code": 134, "login_type": 2, "account": "ann", "answer": "rex", "new_password": "p"}),
        "no_security_question",
        4014,
    )
    .await;

    // Setting it needs the password and both texts.
    refused(
        &mut one,
        json!({"code": 132, "password": "wrong", "question": "Pet?", "answer": "rex"}),
        "bad_credentials",
        2001,
    )
    .await;
    for (req, field) in [
        (
            json!({"code": 132, "password": "pw-old", "question": " ", "answer": "rex"}),
            "`question`",
        ),
        (
            json!({"code": 132, "password": "pw-old", "question": "Pet?", "answer": "  "}),
            "`answer`",
        ),
        (
            json!({"code": 132, "password": "pw-old", "question": "q".repeat(257), "answer": "x"}),
            "`question`",
        ),
    ] {
        let m = refused(&mut one, req.clone(), "invalid_field", 1003).await;
        assert!(m.contains(field), "{req}: {m}");
    }
    let r = ask(
        &mut one,
        json!({"code": 132, "password": "pw-old", "question": " First pet? ", "answer": "  Rex  the Dog "}),
    )
    .await;
    assert_eq!(r["question"], json!("First pet?"), "{r}");
    let r = ask(&mut one, json!({"code": 126, "ocid": ann})).await;
    assert_eq!(
        r["profile"]["security_question"],
        json!("First pet?"),
        "{r}"
    );
    // Others do not see it on the profile.
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let r = ask(&mut bob.client, json!({"code": 126, "ocid": ann})).await;
    assert!(r["profile"].get("security_question").is_none(), "{r}");

    // Anyone may read the question, without logging in.
    let r = ask(
        &mut anon,
        json!({"code": 136, "login_type": 2, "account": " ANN ", "request_id": 3}),
    )
    .await;
    assert_eq!(
        (&r["question"], &r["request_id"]),
        (&json!("First pet?"), &json!(3))
    );

    // A wrong answer changes nothing.
    refused(
        &mut anon,
        json!({"code": 134, "login_type": 2, "account": "ann", "answer": "Rex", "new_password": "pw-new"}),
        "bad_credentials",
        2001,
    )
    .await;
    expect_alive(&mut one).await;
    // An unknown account is refused alike.
    refused(
        &mut anon,
        json!({"code": 134, "login_type": 2, "account": "nobody", "answer": "rex the dog", "new_password": "pw-new"}),
        "bad_credentials",
        2001,
    )
    .await;

    // The answer in other letter case and spacing resets the password and ends every login.
    ask(
        &mut anon,
        json!({"code": 134, "login_type": 2, "account": "Ann", "answer": "REX THE   dog", "new_password": "pw-new"}),
    )
    .await;
    expect_logged_out(&mut one).await;
    expect_logged_out(&mut two).await;
    assert_eq!(resume_state(&server, &token1).await, json!(1));
    assert_eq!(resume_state(&server, &token2).await, json!(1));
    assert_eq!(login_state(&server, 2, "ann", "pw-old").await, json!(1));
    let mut back = server.v1().await;
    let l = login_by(&mut back, 2, "ann", "pw-new").await;
    assert_eq!(l.ocid, ann);
    // The reset did not log the anonymous connection in.
    refused(
        &mut anon,
        json!({"code": 126, "ocid": ann}),
        "not_logged_in",
        2000,
    )
    .await;
    // A new question replaces the old one.
    ask(
        &mut back,
        json!({"code": 132, "password": "pw-new", "question": "City?", "answer": "Oslo"}),
    )
    .await;
    let r = ask(
        &mut anon,
        json!({"code": 136, "login_type": 2, "account": "ann"}),
    )
    .await;
    assert_eq!(r["question"], json!("City?"));
    refused(
        &mut anon,
        json!({"code": 134, "login_type": 2, "account": "ann", "answer": "rex the dog", "new_password": "x"}),
        "bad_credentials",
        2001,
    )
    .await;
}

#[tokio::test]
async fn five_wrong_answers_in_a_row_lock_the_reset() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    register_by(&mut c, "phone", "+47 555 12345", "pw-0").await;
    let mut phil = server.v1().await;
    login_by(&mut phil, 3, "+4755512345", "pw-0").await;
    ask(
        &mut phil,
        json!({"code": 132, "password": "pw-0", "question": "Q?", "answer": "right"}),
    )
    .await;
    // Another account with a question, to show the lock is per account.
    let mut c2 = server.v1().await;
    register_by(&mut c2, "username", "other", "pw-o").await;
    let mut other = server.v1().await;
    login_by(&mut other, 2, "other", "pw-o").await;
    ask(
        &mut other,
        json!({"code": 132, "password": "pw-o", "question": "Q?", "answer": "right"}),
    )
    .await;

    let mut anon = server.v1().await;
    let reset = |answer: &str, pw: &str| json!({"code": 134, "login_type": 3, "account": "+47 555 12345", "answer": answer, "new_password": pw});
    // Wrong answers that a right one interrupts do not add up.
    for _ in 0..4 {
        refused(&mut anon, reset("wrong", "x"), "bad_credentials", 2001).await;
    }
    ask(&mut anon, reset("right", "pw-1")).await;
    for _ in 0..3 {
        refused(&mut anon, reset("wrong", "x"), "bad_credentials", 2001).await;
    }
    // A bad new password is refused before the answer is counted.
    let m = refused(&mut anon, reset("wrong", ""), "invalid_field", 1003).await;
    assert!(m.contains("`password`"), "{m}");
    refused(&mut anon, reset("wrong", "x"), "bad_credentials", 2001).await;
    // The fifth in a row locks answers.
    let m = refused(&mut anon, reset("wrong", "x"), "too_many_attempts", 4291).await;
    assert!(m.contains("900 seconds"), "{m}");
    // Now even the right answer is refused, and the password stays.
    let m = refused(&mut anon, reset("right", "pw-2"), "too_many_attempts", 4291).await;
    assert!(m.contains("seconds"), "{m}");
    assert_eq!(
        login_state(&server, 3, "+4755512345", "pw-2").await,
        json!(1)
    );
    assert_eq!(
        login_state(&server, 3, "+4755512345", "pw-1").await,
        json!(0)
    );
    // The question can still be read, and the other account is not locked.
    ask(
        &mut anon,
        json!({"code": 136, "login_type": 3, "account": "+4755512345"}),
    )
    .await;
    ask(
        &mut anon,
        json!({"code": 134, "login_type": 2, "account": "other", "answer": "right", "new_password": "pw-o2"}),
    )
    .await;
    assert_eq!(login_state(&server, 2, "other", "pw-o2").await, json!(0));
}

#[tokio::test]
async fn logins_are_listed_and_revoked() {
    let server = TestServer::start().await;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let (mut one, token1) = (alice.client, alice.token);
    let mut two = server.v1().await;
    let token2 = login_v1(&mut two, "alice@example.com", "pw-a").await.token;
    // The second login on a second connection too.
    let mut two_again = server.v1().await;
    resume_v1(&mut two_again, &token2).await;

    let list = logins(&mut one).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(
        (&list[0]["current"], &list[1]["current"]),
        (&json!(true), &json!(false)),
        "oldest first, the asking one current: {list:?}"
    );
    for l in &list {
        assert_recent_time(&l["time"]);
        let ttl = l["expires"].as_i64().expect("expires") - l["time"].as_i64().expect("time");
        assert!((30 * 24 * 3600 - 2..=30 * 24 * 3600).contains(&ttl), "{l}");
        let id = string(&l["id"]);
        assert_eq!(id.len(), 16, "{l}");
        assert!(!token1.contains(&id) && !token2.contains(&id), "{l}");
    }
    let (id1, id2) = (string(&list[0]["id"]), string(&list[1]["id"]));
    assert_ne!(id1, id2);
    let theirs = logins(&mut two_again).await;
    assert_eq!(
        (
            &theirs[0]["id"],
            &theirs[0]["current"],
            &theirs[1]["current"]
        ),
        (&json!(id1), &json!(false), &json!(true))
    );

    // Another account's login id is no login of this one.
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    refused(
        &mut bob.client,
        json!({"code": 140, "id": id2}),
        "no_such_login",
        4015,
    )
    .await;
    assert_eq!(logins(&mut bob.client).await.len(), 1);
    expect_alive(&mut two).await;

    // Revoking closes every connection of that login and refuses its token.
    let r = ask(&mut one, json!({"code": 140, "id": id2, "request_id": "r"})).await;
    assert_eq!((&r["id"], &r["request_id"]), (&json!(id2), &json!("r")));
    expect_logged_out(&mut two).await;
    expect_logged_out(&mut two_again).await;
    assert_eq!(resume_state(&server, &token2).await, json!(1));
    expect_alive(&mut one).await;
    let list = logins(&mut one).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], json!(id1));
    // Twice, or an id that never was.
    for id in [id2.as_str(), "AAAAAAAAAAAAAAAA", ""] {
        refused(
            &mut one,
            json!({"code": 140, "id": id}),
            "no_such_login",
            4015,
        )
        .await;
    }
    refused(&mut one, json!({"code": 140}), "missing_field", 1002).await;

    // A login revoking itself is closed after its reply.
    let r = ask(&mut one, json!({"code": 140, "id": id1})).await;
    assert_eq!(r["id"], json!(id1));
    expect_logged_out(&mut one).await;
    assert_eq!(resume_state(&server, &token1).await, json!(1));

    let mut anon = server.v1().await;
    refused(&mut anon, json!({"code": 138}), "not_logged_in", 2000).await;
    refused(
        &mut anon,
        json!({"code": 140, "id": id1}),
        "not_logged_in",
        2000,
    )
    .await;
}

#[tokio::test]
async fn a_deleted_account_is_gone_but_keeps_its_ocid() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    befriend_v1(&mut alice, &mut bob).await;
    send_v1(&mut bob.client, json!({"private_id": alice.ocid}), "hi").await;
    alice.client.expect_code(0).await;
    ask(
        &mut alice.client,
        json!({"code": 124, "username": "alice", "phone": "+1 555 0100"}),
    )
    .await;
    let mut alice2 = server.v1().await;
    login_by(&mut alice2, 2, "alice", "pw-a").await;

    // The password confirms it.
    refused(
        &mut alice.client,
        json!({"code": 142, "password": "pw-b"}),
        "bad_credentials",
        2001,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 142}),
        "missing_field",
        1002,
    )
    .await;
    bob.client.expect_silence(200).await;

    let r = ask(&mut alice.client, json!({"code": 142, "password": "pw-a"})).await;
    assert_eq!(r["ocid"], json!(alice.ocid));
    // Every login ends.
    expect_logged_out(&mut alice.client).await;
    expect_logged_out(&mut alice2).await;
    assert_eq!(resume_state(&server, &alice.token).await, json!(1));
    for (login_type, account) in [
        (0, "alice@example.com".to_owned()),
        (1, alice.ocid.to_string()),
        (2, "alice".to_owned()),
        (3, "+15550100".to_owned()),
    ] {
        assert_eq!(
            login_state(&server, login_type, &account, "pw-a").await,
            json!(1),
            "{account}"
        );
    }

    // Bob is told the friendship ended, and she goes offline.
    let got = drain(&mut bob.client, 500).await;
    let update = got
        .iter()
        .find(|f| f["code"] == json!(120))
        .unwrap_or_else(|| panic!("no friend update in {got:?}"));
    assert_eq!(
        (&update["ocid"], &update["state"], &update["by"]),
        (&json!(alice.ocid), &json!("removed"), &json!(alice.ocid))
    );
    assert!(
        got.iter().all(|f| [120, 123].contains(&int(&f["code"]))),
        "{got:?}"
    );
    let list = bob.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"], json!([]), "{list}");

    // Her ocid stays, as a deleted account with nothing of hers.
    let r = ask(&mut bob.client, json!({"code": 126, "ocid": alice.ocid})).await;
    let p = &r["profile"];
    assert_eq!(
        (&p["ocid"], &p["deleted"], &p["nickname"], &p["username"]),
        (&json!(alice.ocid), &json!(true), &json!(""), &Value::Null),
        "{p}"
    );
    assert!(p.get("remark").is_none(), "{p}");
    // She can no longer be befriended, blocked or written to.
    refused(
        &mut bob.client,
        json!({"code": 111, "ocid": alice.ocid}),
        "no_such_account",
        4000,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 146, "ocid": alice.ocid}),
        "no_such_account",
        4000,
    )
    .await;
    refused(
        &mut bob.client,
        json!({"code": 0, "sender": {"private_id": alice.ocid}, "msg": "hello?"}),
        "no_such_account",
        4000,
    )
    .await;

    // Her identities are free again, for a new account with a new ocid.
    let mut c = server.v1().await;
    let again = register_v1(&mut c, "alice@example.com", "Alice 2", "pw-2").await;
    assert!(again > bob.ocid, "{again}");
    register_by(&mut c, "username", "alice", "pw-3").await;
    register_by(&mut c, "phone", "+15550100", "pw-4").await;
    assert_eq!(
        login_state(&server, 0, "alice@example.com", "pw-2").await,
        json!(0)
    );
    let r = ask(
        &mut bob.client,
        json!({"code": 128, "by": "email", "query": "alice@example.com"}),
    )
    .await;
    assert_eq!(found(&r), vec![again]);
}

#[tokio::test]
async fn a_deleted_account_hands_its_groups_on() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    // Alice owns a group with Bob and Carol (Carol an admin), one with Bob alone, and one of
    // her own; she is a member of Bob's.
    let g_admin = create_group_v1(&mut alice.client, &[bob.ocid, carol.ocid]).await;
    ask(
        &mut alice.client,
        json!({"code": 170, "group_id": g_admin, "ocid": carol.ocid, "admin": true}),
    )
    .await;
    // The change is announced in the group.
    assert_eq!(
        bob.client.expect_code(0).await["sender"]["group_id"],
        json!(g_admin)
    );
    // So is it to Alice, who made it.
    assert_eq!(alice.client.expect_code(0).await["type"], json!(0));
    let g_member = create_group_v1(&mut alice.client, &[bob.ocid]).await;
    let g_alone = create_group_v1(&mut alice.client, &[]).await;
    let g_bobs = create_group_v1(&mut bob.client, &[alice.ocid]).await;
    drain(&mut alice.client, 300).await;
    drain(&mut bob.client, 300).await;
    drain(&mut carol.client, 300).await;

    ask(&mut alice.client, json!({"code": 142, "password": "pw-a"})).await;
    closed_after_frames(&mut alice.client, 4001).await;
    drain(&mut bob.client, 500).await;
    drain(&mut carol.client, 500).await;

    let info = |group: u64| json!({"code": 150, "group_id": group});
    let r = ask(&mut carol.client, info(g_admin)).await;
    let g = &r["group"];
    assert_eq!(
        (&g["owner"], &g["members"], &g["role"]),
        (
            &json!(carol.ocid),
            &json!([bob.ocid, carol.ocid]),
            &json!("owner")
        ),
        "the first admin inherits: {g}"
    );
    assert_eq!(g["admins"], json!([]), "{g}");
    let r = ask(&mut bob.client, info(g_member)).await;
    assert_eq!(
        (&r["group"]["owner"], &r["group"]["members"]),
        (&json!(bob.ocid), &json!([bob.ocid])),
        "else the first other member: {r}"
    );
    let r = ask(&mut bob.client, info(g_bobs)).await;
    assert_eq!(
        (&r["group"]["owner"], &r["group"]["members"]),
        (&json!(bob.ocid), &json!([bob.ocid])),
        "{r}"
    );
    // Her own group is no more.
    let r = bob.client.request(&info(g_alone), 100).await;
    assert_error(&r, "no_such_chat", 4001, json!(150));
    let r = ask(&mut bob.client, json!({"code": 176})).await;
    let mine: Vec<u64> = r["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| int(&g["group_id"]))
        .collect();
    assert_eq!(mine, vec![g_admin, g_member, g_bobs], "{r}");
    // The groups go on.
    send_v1(&mut bob.client, json!({"group_id": g_admin}), "still here").await;
    let got = carol.client.expect_code(0).await;
    assert_eq!(got["msg"], json!("still here"));
}

#[tokio::test]
async fn a_block_refuses_messages_requests_and_typing_until_lifted() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    befriend_v1(&mut alice, &mut bob).await;
    send_v1(&mut bob.client, json!({"private_id": alice.ocid}), "hi").await;
    alice.client.expect_code(0).await;

    // Alice blocks Bob on her second device: their friendship ends, and both are told.
    let mut alice_too = server.v1().await;
    resume_v1(&mut alice_too, &alice.token).await;
    let r = ask(&mut alice_too, json!({"code": 146, "ocid": bob.ocid})).await;
    assert_eq!((&r["ocid"], &r["block"]), (&json!(bob.ocid), &json!(true)));
    for (c, other) in [(&mut alice.client, bob.ocid), (&mut bob.client, alice.ocid)] {
        let u = c.expect_code(120).await;
        assert_eq!(
            (&u["ocid"], &u["state"], &u["by"]),
            (&json!(other), &json!("removed"), &json!(alice.ocid))
        );
    }
    alice_too.close().await;
    for c in [&mut alice.client, &mut bob.client] {
        let list = c.request(&json!({"code": 117}), 118).await;
        assert_eq!(list["friends"], json!([]), "{list}");
    }
    let r = ask(&mut alice.client, json!({"code": 148})).await;
    assert_eq!(r["blocked"], json!([bob.ocid]));
    let r = ask(&mut bob.client, json!({"code": 148})).await;
    assert_eq!(r["blocked"], json!([]));
    // Blocking again changes nothing.
    ask(
        &mut alice.client,
        json!({"code": 146, "ocid": bob.ocid, "block": true}),
    )
    .await;
    let r = ask(&mut alice.client, json!({"code": 148})).await;
    assert_eq!(r["blocked"], json!([bob.ocid]));
    drain(&mut bob.client, 200).await;

    // Messages are refused both ways: Bob is not accepted, Alice blocks.
    let text = |to: u64, msg: &str| json!({"code": 0, "sender": {"private_id": to}, "msg": msg});
    let m = refused(
        &mut bob.client,
        text(alice.ocid, "hello?"),
        "not_accepted",
        4013,
    )
    .await;
    assert!(m.contains(&alice.ocid.to_string()), "{m}");
    refused(
        &mut alice.client,
        text(bob.ocid, "go away"),
        "blocking",
        4012,
    )
    .await;
    // Bob's friend request looks sent, but Alice never hears of it.
    let r = bob
        .client
        .request(
            &json!({"code": 111, "ocid": alice.ocid, "msg": "sorry"}),
            112,
        )
        .await;
    assert_eq!(
        (&r["state"], &r["ocid"]),
        (&json!(0), &json!(alice.ocid)),
        "{r}"
    );
    // Alice's is refused: she blocks him.
    refused(
        &mut alice.client,
        json!({"code": 111, "ocid": bob.ocid}),
        "blocking",
        4012,
    )
    .await;
    // Typing goes nowhere, and says so to no one.
    bob.client
        .send_json(&json!({"code": 121, "private_id": alice.ocid}))
        .await;
    alice
        .client
        .send_json(&json!({"code": 121, "private_id": bob.ocid}))
        .await;
    alice.client.expect_silence(300).await;
    bob.client.expect_silence(0).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["requests"], json!([]), "{list}");
    // Not at her next login either.
    let mut alice2 = server.v1().await;
    let sync = {
        let r = alice2
            .request(
                &json!({"code": 6, "login_type": 0, "account": "alice@example.com", "password": "pw-a", "ext": 1}),
                7,
            )
            .await;
        assert_eq!(r["state"], json!(0));
        read_sync_all(&mut alice2).await
    };
    assert!(
        sync.missed.is_empty() && sync.news.is_empty(),
        "{:?}",
        sync.news
    );
    // Only Bob's message from before the block waits to be read.
    assert_eq!(sync.done["unread"], json!(1), "{}", sync.done);
    // Nothing of Bob's reached the history.
    let h = history_v1(&mut alice.client, json!({"private_id": bob.ocid})).await;
    assert_eq!(indexes(&h), vec![1], "{h}");

    // Others are not affected.
    send_v1(
        &mut carol.client,
        json!({"private_id": alice.ocid}),
        "hi alice",
    )
    .await;
    alice.client.expect_code(0).await;
    alice2.expect_code(0).await;
    send_v1(&mut carol.client, json!({"private_id": bob.ocid}), "hi bob").await;
    bob.client.expect_code(0).await;

    // Bad blocks.
    refused(
        &mut alice.client,
        json!({"code": 146, "ocid": alice.ocid}),
        "invalid_field",
        1003,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 146, "ocid": 999_999}),
        "no_such_account",
        4000,
    )
    .await;
    refused(
        &mut alice.client,
        json!({"code": 146, "ocid": bob.ocid, "block": "no"}),
        "invalid_field",
        1003,
    )
    .await;
    let mut anon = server.v1().await;
    refused(&mut anon, json!({"code": 148}), "not_logged_in", 2000).await;
    refused(
        &mut anon,
        json!({"code": 146, "ocid": bob.ocid}),
        "not_logged_in",
        2000,
    )
    .await;

    // Unblocking restores messages and typing (not the friendship).
    let r = ask(
        &mut alice.client,
        json!({"code": 146, "ocid": bob.ocid, "block": false}),
    )
    .await;
    assert_eq!((&r["ocid"], &r["block"]), (&json!(bob.ocid), &json!(false)));
    let r = ask(&mut alice.client, json!({"code": 148})).await;
    assert_eq!(r["blocked"], json!([]));
    bob.client.expect_silence(200).await;
    let ack = send_v1(
        &mut bob.client,
        json!({"private_id": alice.ocid}),
        "friends?",
    )
    .await;
    assert_eq!(
        ack["index"],
        json!(2),
        "the refused messages took no index: {ack}"
    );
    for c in [&mut alice.client, &mut alice2] {
        let got = c.expect_code(0).await;
        assert_eq!(got["msg"], json!("friends?"));
    }
    send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "maybe").await;
    bob.client.expect_code(0).await;
    alice2.expect_code(0).await;
    bob.client
        .send_json(&json!({"code": 121, "private_id": alice.ocid}))
        .await;
    assert_eq!(
        alice.client.expect_code(122).await["sender"]["ocid"],
        json!(bob.ocid)
    );
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"], json!([]), "{list}");
    // A friend request now reaches her.
    let r = bob
        .client
        .request(
            &json!({"code": 111, "ocid": alice.ocid, "msg": "again"}),
            112,
        )
        .await;
    assert_eq!(r["state"], json!(0));
    let push = alice.client.expect_code(119).await;
    assert_eq!(push["msg"], json!("again"));
    // Unblocking someone not blocked is no error.
    ask(
        &mut alice.client,
        json!({"code": 146, "ocid": carol.ocid, "block": false}),
    )
    .await;
}

#[tokio::test]
async fn the_blocked_side_blocking_back_is_told_blocking() {
    let server = TestServer::start().await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    // A pending request from Bob ends with the block.
    bob.client
        .request(&json!({"code": 111, "ocid": alice.ocid}), 112)
        .await;
    alice.client.expect_code(119).await;
    ask(&mut alice.client, json!({"code": 146, "ocid": bob.ocid})).await;
    let list = alice.client.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["requests"], json!([]), "{list}");
    // No friendship ended: nobody is told anything.
    bob.client.expect_silence(200).await;
    alice.client.expect_silence(0).await;

    // Both block: each is told it blocks.
    ask(&mut bob.client, json!({"code": 146, "ocid": alice.ocid})).await;
    let text = |to: u64| json!({"code": 0, "sender": {"private_id": to}, "msg": "x"});
    refused(&mut bob.client, text(alice.ocid), "blocking", 4012).await;
    refused(&mut alice.client, text(bob.ocid), "blocking", 4012).await;
    // Alice lifts hers: Bob still blocks her.
    ask(
        &mut alice.client,
        json!({"code": 146, "ocid": bob.ocid, "block": false}),
    )
    .await;
    refused(&mut alice.client, text(bob.ocid), "not_accepted", 4013).await;
    refused(&mut bob.client, text(alice.ocid), "blocking", 4012).await;
    let r = alice
        .client
        .request(&json!({"code": 111, "ocid": bob.ocid}), 112)
        .await;
    assert_eq!(r["state"], json!(0));
    bob.client.expect_silence(200).await;
}

/// Answers sent all at once are counted as they come: no more than the allowed number of them
/// is ever checked, however many arrive together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_sent_at_once_cannot_get_past_the_lock() {
    let server = TestServer::start().await;
    let mut c = server.v1().await;
    register_by(&mut c, "username", "target", "pw-0").await;
    login_by(&mut c, 2, "target", "pw-0").await;
    ask(
        &mut c,
        json!({"code": 132, "password": "pw-0", "question": "Q?", "answer": "right"}),
    )
    .await;

    let reset = |answer: &str| json!({"code": 134, "login_type": 2, "account": "target", "answer": answer, "new_password": "pw-1"});
    let mut guessers = Vec::new();
    for _ in 0..10 {
        guessers.push(server.v1().await);
    }
    for (i, g) in guessers.iter_mut().enumerate() {
        g.send_json(&reset(&format!("guess {i}"))).await;
    }
    let mut errors = Vec::new();
    for g in &mut guessers {
        let r = g.expect_code(100).await;
        errors.push(string(&r["error"]));
    }
    errors.sort();
    let checked = errors.iter().filter(|e| *e == "bad_credentials").count();
    assert_eq!(checked, 4, "four wrong answers, then the lock: {errors:?}");
    assert_eq!(errors.len() - checked, 6, "{errors:?}");
    refused(&mut guessers[0], reset("right"), "too_many_attempts", 4291).await;
    assert_eq!(login_state(&server, 2, "target", "pw-0").await, json!(0));
}

/// A block reaches what every node holds of the two accounts' chat: typing from the blocked
/// side goes nowhere whichever node it comes through, and flows again once the block is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_holds_on_every_node() {
    let Some((_db, nodes)) = crate::cluster::cluster(2, None).await else {
        return;
    };
    let mut alice = user_v1(&nodes[0], "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&nodes[1], "bob@example.com", "Bob", "pw-b").await;
    // Bob's node learns of their chat from a delivery.
    send_v1(&mut alice.client, json!({"private_id": bob.ocid}), "hi").await;
    bob.client.expect_code(0).await;

    ask(&mut alice.client, json!({"code": 146, "ocid": bob.ocid})).await;
    // The block is stored before the reply; give the other node's cache notice time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.client
        .send_json(&json!({"code": 121, "private_id": alice.ocid}))
        .await;
    refused(
        &mut bob.client,
        json!({"code": 0, "sender": {"private_id": alice.ocid}, "msg": "hello?"}),
        "not_accepted",
        4013,
    )
    .await;
    alice.client.expect_silence(500).await;

    ask(
        &mut alice.client,
        json!({"code": 146, "ocid": bob.ocid, "block": false}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.client
        .send_json(&json!({"code": 121, "private_id": alice.ocid}))
        .await;
    let t = alice.client.expect_code(122).await;
    assert_eq!(t["sender"]["ocid"], json!(bob.ocid));
    send_v1(&mut bob.client, json!({"private_id": alice.ocid}), "back").await;
    assert_eq!(alice.client.expect_code(0).await["msg"], json!("back"));
}
