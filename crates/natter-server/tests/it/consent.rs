//! Consent and abuse between accounts, through the wire: nobody is put into a group without
//! consent (the `group_adds` setting; the others are invited and join by accepting), and the
//! per-account quotas (groups created, invitations, friend requests, messages to strangers,
//! lookups) refuse with `limit_reached`.

use crate::common::*;
use natter_client::ourchat::v1;
use natter_server::domain::GroupAdds;
use serde_json::{Value, json};

/// Set `group_adds` (code 124); returns the own profile of the reply.
async fn set_group_adds(c: &mut Client, to: &str) -> Value {
    let r = ask(c, &json!({"code": 124, "group_adds": to}), 125).await;
    assert_eq!(r["profile"]["group_adds"], json!(to), "{r}");
    r["profile"].clone()
}

/// The members of group `g` as its member `c` sees them (code 150).
async fn members(c: &mut Client, g: u64) -> Vec<u64> {
    let r = ask(c, &json!({"code": 150, "group_id": g}), 151).await;
    r["group"]["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {r}"))
        .iter()
        .map(int)
        .collect()
}

/// The next frame that is not a message or a presence push (system messages of a group, and
/// a new friend coming online, pass by).
async fn next_not_message(c: &mut Client) -> Value {
    loop {
        let f = c.recv().await;
        if f["code"] != json!(0) && f["code"] != json!(123) {
            return f;
        }
    }
}

/// Send `req`; the next frame but messages and presence must have `code`.
async fn ask(c: &mut Client, req: &Value, code: i64) -> Value {
    c.send_json(req).await;
    let f = next_not_message(c).await;
    assert_eq!(f["code"], json!(code), "expected code {code}, got {f}");
    f
}

/// A group's creator adds directly only the accounts whose setting lets it: a friend (the
/// default), an account that allows everyone. A stranger, and a friend that allows nobody, are
/// invited instead (listed in `invited`, told by code 182), and join only by accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_is_put_into_a_group_without_consent() {
    // The product's default: friends only.
    let server = TestServer::start_with(|c| c.limits.group_adds = GroupAdds::Friends).await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let mut erin = user_v1(&server, "erin@example.com", "Erin", "pw-e").await;
    befriend_v1(&mut alice, &mut carol).await;
    befriend_v1(&mut alice, &mut erin).await;

    // The default is `friends`, shown in one's own profile only.
    let own = bob
        .client
        .request(&json!({"code": 126, "ocid": bob.ocid}), 127)
        .await;
    assert_eq!(own["profile"]["group_adds"], json!("friends"), "{own}");
    let other = bob
        .client
        .request(&json!({"code": 126, "ocid": alice.ocid}), 127)
        .await;
    assert!(other["profile"].get("group_adds").is_none(), "{other}");
    // A wrong value is refused.
    bob.client
        .send_json(&json!({"code": 124, "group_adds": "some", "request_id": 4}))
        .await;
    let refused = bob.client.recv().await;
    let message = assert_error(&refused, "invalid_field", 1003, json!(124));
    assert!(message.contains("group_adds"), "{message}");
    set_group_adds(&mut dave.client, "everyone").await;
    set_group_adds(&mut erin.client, "nobody").await;

    let r = alice
        .client
        .request(
            &frame(&v1::new_group(
                &[bob.ocid, carol.ocid, dave.ocid, erin.ocid],
                Some("club"),
            )),
            9,
        )
        .await;
    assert_eq!(r["success"], json!(true), "{r}");
    let g = int(&r["group_id"]);
    assert_eq!(r["invited"], json!([bob.ocid, erin.ocid]), "{r}");
    let mut want = vec![alice.ocid, carol.ocid, dave.ocid];
    want.sort_unstable();
    assert_eq!(members(&mut alice.client, g).await, want);

    // The invited are told, and join only by accepting.
    for invited in [&mut bob, &mut erin] {
        let push = invited.client.expect_code(182).await;
        assert_eq!(push["group_id"], json!(g), "{push}");
        assert_eq!(push["by"], json!(alice.ocid), "{push}");
    }
    let seen = ask(&mut bob.client, &json!({"code": 150, "group_id": g}), 151).await;
    assert_eq!(
        seen["group"]["role"],
        json!(null),
        "not a member yet: {seen}"
    );
    assert!(seen["group"].get("members").is_none(), "{seen}");
    let r = ask(
        &mut bob.client,
        &json!({"code": 162, "group_id": g, "accept": true}),
        163,
    )
    .await;
    assert_eq!(r["accept"], json!(true), "{r}");
    let r = ask(
        &mut erin.client,
        &json!({"code": 162, "group_id": g, "accept": false}),
        163,
    )
    .await;
    assert_eq!(r["accept"], json!(false), "{r}");
    let mut want = vec![alice.ocid, bob.ocid, carol.ocid, dave.ocid];
    want.sort_unstable();
    assert_eq!(members(&mut dave.client, g).await, want);

    // `nobody` holds for friends too; `everyone` lets a stranger add.
    set_group_adds(&mut carol.client, "nobody").await;
    let r = ask(
        &mut alice.client,
        &frame(&v1::new_group(&[carol.ocid, dave.ocid], None)),
        9,
    )
    .await;
    assert_eq!(r["invited"], json!([carol.ocid]), "{r}");
    assert_eq!(
        members(&mut dave.client, int(&r["group_id"])).await.len(),
        2
    );
}

/// Past each quota an account is refused with `limit_reached` (4293), which says what and how
/// long to wait, and other accounts are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_between_accounts_refuse_with_limit_reached() {
    let server = TestServer::start_with(|c| {
        c.limits.group_adds = GroupAdds::Friends;
        let abuse = &mut c.limits.abuse;
        abuse.groups.max = 2;
        abuse.members.max = 3;
        abuse.friend_requests.max = 1;
        abuse.stranger_messages.max = 2;
        abuse.lookups.max = 3;
    })
    .await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;

    // Lookups of other accounts: three a minute; one's own account is not counted.
    for _ in 0..3 {
        let r = alice
            .client
            .request(&frame(&v1::account_info(bob.ocid, &["nickname"])), 11)
            .await;
        assert_eq!(r["data"]["nickname"], json!("Bob"), "{r}");
    }
    alice
        .client
        .send_json(&json!({"code": 126, "ocid": carol.ocid, "request_id": "l4"}))
        .await;
    let refused = alice.client.recv().await;
    let message = assert_error(&refused, "limit_reached", 4293, json!(126));
    assert!(message.contains("account lookups"), "{message}");
    assert_eq!(refused["request_id"], json!("l4"));
    alice
        .client
        .send_json(&json!({"code": 128, "by": "nickname", "query": "bo"}))
        .await;
    assert_error(
        &alice.client.recv().await,
        "limit_reached",
        4293,
        json!(128),
    );
    let own = alice
        .client
        .request(&frame(&v1::account_info(alice.ocid, &["nickname"])), 11)
        .await;
    assert_eq!(own["data"]["nickname"], json!("Alice"));
    // Another account has its own count.
    bob.client
        .request(&frame(&v1::account_info(alice.ocid, &["nickname"])), 11)
        .await;

    // Messages to strangers: two a minute here.
    for i in 0..2 {
        send_v1(
            &mut alice.client,
            json!({"private_id": bob.ocid}),
            &format!("hi {i}"),
        )
        .await;
    }
    alice
        .client
        .send_json(&json!({"code": 0, "sender": {"private_id": carol.ocid}, "msg": "hey"}))
        .await;
    let refused = alice.client.recv().await;
    let message = assert_error(&refused, "limit_reached", 4293, json!(0));
    assert!(message.contains("not your friends"), "{message}");

    // Friend requests: one an hour here. Once friends, messages are not counted.
    let r = alice
        .client
        .request(&frame(&v1::friend_request(bob.ocid, None)), 112)
        .await;
    assert_eq!(r["state"], json!(0), "{r}");
    alice
        .client
        .send_json(&frame(&v1::friend_request(carol.ocid, None)))
        .await;
    assert_error(
        &alice.client.recv().await,
        "limit_reached",
        4293,
        json!(111),
    );
    // Bob's screen: the two messages, then the request.
    let mut request = bob.client.recv().await;
    while request["code"] != json!(119) {
        request = bob.client.recv().await;
    }
    ask(
        &mut bob.client,
        &frame(&v1::friend_answer(alice.ocid, true)),
        114,
    )
    .await;
    let update = next_not_message(&mut alice.client).await;
    assert_eq!(update["code"], json!(120), "{update}");
    for i in 0..3 {
        let to_friend =
            json!({"code": 0, "sender": {"private_id": bob.ocid}, "msg": format!("friend {i}")});
        alice.client.send_json(&to_friend).await;
        let f = next_not_message(&mut alice.client).await;
        assert_eq!(
            f["code"],
            json!(103),
            "messages to a friend are not counted: {f}"
        );
    }

    // Groups: two an hour, and three accounts added or invited.
    let r = ask(
        &mut alice.client,
        &frame(&v1::new_group(&[bob.ocid], None)),
        9,
    )
    .await;
    assert_eq!(r["success"], json!(true), "{r}");
    let r = ask(
        &mut alice.client,
        &frame(&v1::new_group(&[carol.ocid, dave.ocid], None)),
        9,
    )
    .await;
    assert_eq!(r["success"], json!(true), "{r}");
    let r = ask(&mut alice.client, &frame(&v1::new_group(&[], None)), 9).await;
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(
        string(&r["msg"]).starts_with("too many groups created in a while; try again in "),
        "{r}"
    );
    let r = ask(&mut bob.client, &frame(&v1::new_group(&[], None)), 9).await;
    assert_eq!(r["success"], json!(true), "another account creates: {r}");
}

/// The quota on invitations counts only the accounts that did not agree to be added: a group
/// of friends and of accounts open to everyone is made whatever its size, while invitations
/// (at creation or later) stop at the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_invitations_count_against_the_members_quota() {
    let server = TestServer::start_with(|c| {
        c.limits.group_adds = GroupAdds::Friends;
        c.limits.abuse.members.max = 1;
    })
    .await;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let mut carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let mut dave = user_v1(&server, "dave@example.com", "Dave", "pw-d").await;
    let erin = user_v1(&server, "erin@example.com", "Erin", "pw-e").await;
    let frank = user_v1(&server, "frank@example.com", "Frank", "pw-f").await;
    befriend_v1(&mut alice, &mut bob).await;
    set_group_adds(&mut carol.client, "everyone").await;
    set_group_adds(&mut dave.client, "everyone").await;

    // A friend and two open accounts are added, one stranger invited: one counted.
    let r = ask(
        &mut alice.client,
        &frame(&v1::new_group(
            &[bob.ocid, carol.ocid, dave.ocid, erin.ocid],
            Some("club"),
        )),
        9,
    )
    .await;
    assert_eq!(r["success"], json!(true), "{r}");
    assert_eq!(r["invited"], json!([erin.ocid]), "{r}");
    let g = int(&r["group_id"]);
    // A second invitation is past the quota.
    alice
        .client
        .send_json(&json!({"code": 160, "group_id": g, "ocid": frank.ocid, "request_id": 7}))
        .await;
    let refused = next_not_message(&mut alice.client).await;
    let message = assert_error(&refused, "limit_reached", 4293, json!(160));
    assert!(message.contains("invitations into groups"), "{message}");
    // So is a new group that would invite a stranger, but not one of consenting accounts.
    let r = ask(
        &mut alice.client,
        &frame(&v1::new_group(&[frank.ocid], None)),
        9,
    )
    .await;
    assert_eq!(r["success"], json!(false), "{r}");
    let r = ask(
        &mut alice.client,
        &frame(&v1::new_group(&[bob.ocid, carol.ocid, dave.ocid], None)),
        9,
    )
    .await;
    assert_eq!(r["success"], json!(true), "{r}");
}
