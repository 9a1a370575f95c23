//! A data directory written by the release before profiles, groups that are joined and read
//! state (schema up to migration 0003; see tests/fixtures/make_data_0003.py) is upgraded in
//! place: its accounts log in with their passwords, its friendships, requests, history and group
//! are intact, and the new features work on them.

use crate::common::*;
use serde_json::{Value, json};

fn fixture() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-0003/natter.db")
}

fn texts(history: &Value) -> Vec<Value> {
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["msg"].clone())
        .collect()
}

#[tokio::test]
async fn a_data_dir_of_the_previous_release_is_upgraded_in_place() {
    let data = tempfile::tempdir().expect("temp dir");
    std::fs::copy(fixture(), data.path().join("natter.db")).expect("copy the fixture");
    let dir = data.path().to_path_buf();
    let mut server = TestServer::start_with(move |c| c.data_dir = dir).await;

    let mut alice = server.v1().await;
    let login = login_v1_with(
        &mut alice,
        &json!({"code": 6, "login_type": 0, "account": "alice@example.com", "password": "pw-a"}),
    )
    .await;
    let (a, b, c) = (login.ocid, login.ocid + 1, login.ocid + 2);

    // Friends and the request waiting for Alice.
    let list = alice.request(&json!({"code": 117}), 118).await;
    assert_eq!(list["friends"][0]["ocid"], json!(b), "{list}");
    assert_eq!(list["requests"][0]["ocid"], json!(c), "{list}");
    assert_eq!(list["requests"][0]["msg"], json!("it's carol"));

    // History, private and group.
    let private = history_v1(&mut alice, json!({"private_id": b})).await;
    assert_eq!(
        texts(&private),
        [json!("one"), json!("two"), json!("three")]
    );
    assert_eq!(indexes(&private), [1, 2, 3]);
    let groups = alice.request(&json!({"code": 176}), 177).await;
    let group = &groups["groups"][0];
    assert_eq!(
        (
            group["name"].clone(),
            group["role"].clone(),
            group["member_count"].clone()
        ),
        (json!("old friends"), json!("owner"), json!(3)),
        "{groups}"
    );
    let id = group["group_id"].clone();
    let history = history_v1(&mut alice, json!({"group_id": id})).await;
    assert_eq!(
        texts(&history),
        [json!("welcome"), json!("hello"), json!("hey")]
    );
    let info = alice
        .request(&json!({"code": 150, "group_id": id}), 151)
        .await;
    assert_eq!(info["group"]["owner"], json!(a), "{info}");
    assert_eq!(info["group"]["members"], json!([a, b, c]));
    assert_eq!(info["group"]["admins"], json!([]));
    assert_eq!(
        info["group"]["join_mode"],
        json!(1),
        "groups approve joins by default"
    );

    // What is new works on what was there: read state, a profile, roles, a username login.
    let list = alice.request(&json!({"code": 186}), 187).await;
    assert_eq!(
        list["unread"],
        json!(3),
        "two in the group, one in private: {list}"
    );
    let r = alice
        .request(
            &json!({"code": 124, "username": "alice", "signature": "back"}),
            125,
        )
        .await;
    assert_eq!(r["profile"]["username"], json!("alice"), "{r}");
    alice
        .request(
            &json!({"code": 170, "group_id": id, "ocid": b, "admin": true}),
            171,
        )
        .await;
    // The change is written into the group's history, and Alice is sent it too.
    let m = alice.expect_code(0).await;
    assert_eq!(
        (m["type"].clone(), m["index"].clone()),
        (json!(0), json!(4)),
        "{m}"
    );
    alice
        .request(&json!({"code": 168, "group_id": id, "ocid": c}), 169)
        .await;

    server.restart().await;
    let mut again = server.v1().await;
    let login = login_v1_with(
        &mut again,
        &json!({"code": 6, "login_type": 2, "account": "alice", "password": "pw-a"}),
    )
    .await;
    assert_eq!(login.ocid, a);
    let info = again
        .request(&json!({"code": 150, "group_id": id}), 151)
        .await;
    assert_eq!(
        (
            info["group"]["members"].clone(),
            info["group"]["admins"].clone()
        ),
        (json!([a, b]), json!([b])),
        "{info}"
    );
}
