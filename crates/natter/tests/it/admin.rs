//! `natter admin` against a running `natter serve` on the same data directory: accounts,
//! logins, invitations, statistics; a ban, a deletion or a revoked login closes the live
//! connections it concerns.

use crate::common::{Server, Ws, connect, recv, recv_code, send, serve};
use natter_client::ws::{Ended, Event};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run `natter admin --data-dir DIR <args>` with `stdin`; returns its standard output, which
/// must come with success.
fn admin(dir: &Path, args: &[&str], stdin: &str) -> String {
    let (ok, out, err) = admin_status(dir, args, stdin);
    assert!(
        ok,
        "natter admin {args:?} failed\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// Run `natter admin`; (success, stdout, stderr).
fn admin_status(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_natter"))
        .arg("admin")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("NATTER_CONFIG")
        .env_remove("NATTER_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natter admin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("natter admin runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn register(ws: &mut Ws, email: &str, invite: Option<&str>) -> serde_json::Value {
    let mut frame = json!({"code": 4, "email": email, "password": "pw", "name": email});
    if let Some(code) = invite {
        frame["invite"] = json!(code);
    }
    send(ws, frame).await;
    recv(ws).await
}

/// Log in by email; returns (state, token).
async fn login(ws: &mut Ws, email: &str, pw: &str) -> (i64, String) {
    send(
        ws,
        json!({"code": 6, "login_type": 0, "account": email, "password": pw, "ext": 1}),
    )
    .await;
    let r = recv_code(ws, 7).await;
    let state = r["state"].as_i64().expect("state");
    if state == 0 {
        recv_code(ws, 106).await;
    }
    (state, r["token"].as_str().unwrap_or_default().to_owned())
}

/// The connection must be closed by the server with `code` and `reason` within 5 s.
async fn closed_with(ws: &mut Ws, code: u16) {
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next_event().await {
                Event::Ended(e) => return e,
                Event::Text(t) => panic!("expected the connection to close, got {t}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the server closes the connection within 5 s");
    assert!(
        matches!(ended, Ended::Close(Some(c)) if c == code),
        "expected close code {code}, got {ended:?}"
    );
}

/// The connection must stay open (a heartbeat is answered).
async fn still_open(ws: &mut Ws) {
    send(ws, json!({"code": 107})).await;
    recv_code(ws, 108).await;
}

/// The ocid printed by `accounts create`.
fn created_ocid(out: &str) -> u64 {
    out.split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no ocid in {out:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_manages_accounts_of_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server: Server = serve(dir.path(), &["--registration", "invite"], "natter");

    // An operator's account, whatever the registration mode.
    let out = admin(
        dir.path(),
        &[
            "accounts",
            "create",
            "--email",
            "Ann@Example.com",
            "--name",
            "Ann",
        ],
        "ann-pw\n",
    );
    let ann = created_ocid(&out);
    assert_eq!(ann, 10001, "{out}");

    // Registration needs an invitation, each code once.
    let mut c = connect(&server.addr).await;
    let r = register(&mut c, "bob@example.com", None).await;
    assert_eq!(r["code"], 100, "{r}");
    assert_eq!(r["error"], "invalid_invite", "{r}");
    let code = admin(dir.path(), &["invites", "create"], "");
    let code = code.trim();
    assert_eq!(code.len(), 43, "{code}");
    let r = register(&mut c, "bob@example.com", Some(code)).await;
    assert_eq!(
        (r["code"].clone(), r["state"].clone()),
        (json!(5), json!(0)),
        "{r}"
    );
    let bob = r["ocid"].as_u64().expect("ocid");
    let r = register(&mut c, "carl@example.com", Some(code)).await;
    assert_eq!(r["error"], "invalid_invite", "a code is used once: {r}");
    let invites = admin(dir.path(), &["invites", "list"], "");
    assert!(invites.contains(&bob.to_string()), "{invites}");

    let listed = admin(dir.path(), &["accounts", "list"], "");
    assert!(
        listed.contains("ann@example.com") && listed.contains("bob@example.com"),
        "{listed}"
    );

    // Logins: Ann on two devices; revoking one closes only its connection.
    let mut ann1 = connect(&server.addr).await;
    let (state, ann1_token) = login(&mut ann1, "ann@example.com", "ann-pw").await;
    assert_eq!(state, 0);
    // A moment apart, so that the logins are listed in this order (oldest first).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ann2 = connect(&server.addr).await;
    assert_eq!(login(&mut ann2, "ann@example.com", "ann-pw").await.0, 0);
    let logins = admin(dir.path(), &["logins", "list", &ann.to_string()], "");
    let live: Vec<&str> = logins.lines().skip(1).collect();
    assert_eq!(live.len(), 2, "{logins}");
    let newest = live[1].split_whitespace().next().expect("login id");
    admin(
        dir.path(),
        &["logins", "revoke", &ann.to_string(), newest],
        "",
    );
    closed_with(&mut ann2, 4001).await;
    still_open(&mut ann1).await;
    let logins = admin(dir.path(), &["logins", "list", &ann.to_string()], "");
    assert_eq!(
        logins.lines().skip(1).count(),
        1,
        "one live login left: {logins}"
    );

    // A ban closes every connection of the account and refuses logins and resumes.
    let mut bob1 = connect(&server.addr).await;
    assert_eq!(login(&mut bob1, "bob@example.com", "pw").await.0, 0);
    let mut bob2 = connect(&server.addr).await;
    let (_, bob_token) = login(&mut bob2, "bob@example.com", "pw").await;
    admin(dir.path(), &["accounts", "ban", &bob.to_string()], "");
    closed_with(&mut bob1, 4002).await;
    closed_with(&mut bob2, 4002).await;
    still_open(&mut ann1).await;
    let mut again = connect(&server.addr).await;
    assert_eq!(login(&mut again, "bob@example.com", "pw").await.0, 1);
    send(&mut again, json!({"code": 101, "token": bob_token})).await;
    assert_eq!(recv_code(&mut again, 102).await["state"], 1);
    let shown = admin(dir.path(), &["accounts", "show", &bob.to_string()], "");
    assert!(shown.contains("banned"), "{shown}");

    // Unban, then a new password: the old one no longer works.
    admin(dir.path(), &["accounts", "unban", &bob.to_string()], "");
    assert_eq!(login(&mut again, "bob@example.com", "pw").await.0, 0);
    admin(
        dir.path(),
        &["accounts", "reset-password", &bob.to_string()],
        "new-pw\n",
    );
    let mut fresh = connect(&server.addr).await;
    assert_eq!(login(&mut fresh, "bob@example.com", "pw").await.0, 1);
    assert_eq!(login(&mut fresh, "bob@example.com", "new-pw").await.0, 0);

    // Deleting closes the account's connections; it cannot log in again, and its email is free.
    admin(dir.path(), &["accounts", "delete", &bob.to_string()], "");
    closed_with(&mut again, 4001).await;
    closed_with(&mut fresh, 4001).await;
    let mut after = connect(&server.addr).await;
    assert_eq!(login(&mut after, "bob@example.com", "new-pw").await.0, 1);

    // Revoking every login of Ann ends her last connection; her token no longer resumes.
    admin(
        dir.path(),
        &["logins", "revoke", &ann.to_string(), "--all"],
        "",
    );
    closed_with(&mut ann1, 4001).await;
    send(&mut after, json!({"code": 101, "token": ann1_token})).await;
    assert_eq!(recv_code(&mut after, 102).await["state"], 1);

    let stats = admin(dir.path(), &["stats"], "");
    for line in [
        "accounts_active 1",
        "accounts_deleted 1",
        "logins_live 0",
        "invites_unused 0",
    ] {
        assert!(stats.lines().any(|l| l == line), "{line:?} in\n{stats}");
    }

    // Errors are named, and fail the command.
    let (ok, _, err) = admin_status(dir.path(), &["accounts", "ban", "99999"], "");
    assert!(!ok && err.contains("no account 99999"), "{err}");
    let (ok, _, err) = admin_status(
        dir.path(),
        &["accounts", "create", "--email", "x@example.com"],
        "",
    );
    assert!(!ok && err.contains("no password"), "{err}");
    drop(server);
}

/// `natter admin groups list` and `disband` on a running server's group: the group is gone at
/// once, and a member hears of it at its next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_disbands_a_group_of_a_running_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Strangers may be put into groups here, so that Bob is a member without accepting.
    let args = ["--group-adds-default", "everyone"];
    let server: Server = serve(dir.path(), &args, "natter");
    let mut ann = connect(&server.addr).await;
    let mut bob = connect(&server.addr).await;
    for (ws, email) in [(&mut ann, "ann@example.com"), (&mut bob, "bob@example.com")] {
        assert_eq!(register(ws, email, None).await["state"], 0);
    }
    login(&mut ann, "ann@example.com", "pw").await;
    send(
        &mut ann,
        json!({"code": 8, "members": [10002], "name": "Old news"}),
    )
    .await;
    let group = recv_code(&mut ann, 9).await["group_id"]
        .as_u64()
        .expect("group id");

    let list = admin(dir.path(), &["groups", "list"], "");
    assert!(
        list.lines()
            .any(|l| l.starts_with(&group.to_string()) && l.ends_with("Old news")),
        "{list}"
    );
    let out = admin(dir.path(), &["groups", "disband", &group.to_string()], "");
    assert!(out.contains(&format!("disbanded group {group}")), "{out}");
    let (ok, _, err) = admin_status(dir.path(), &["groups", "disband", &group.to_string()], "");
    assert!(!ok && err.contains("no live group"), "{err}");
    assert!(!admin(dir.path(), &["groups", "list"], "").contains("Old news"));

    send(&mut ann, json!({"code": 150, "group_id": group})).await;
    let r = recv_code(&mut ann, 100).await;
    assert_eq!(r["error"], "no_such_chat", "{r}");

    // Bob logs in and is told (no longer a member, he is sent nothing of the group).
    send(
        &mut bob,
        json!({"code": 6, "login_type": 0, "account": "bob@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(recv_code(&mut bob, 7).await["state"], 0);
    let removed = recv_code(&mut bob, 183).await;
    assert_eq!(
        (removed["group_id"].as_u64(), removed["disbanded"].as_bool()),
        (Some(group), Some(true)),
        "{removed}"
    );
    recv_code(&mut bob, 106).await;
}
