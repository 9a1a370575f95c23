//! `natter backup` of a serving SQLite deployment under write load, and `natter restore` of it
//! into a new data directory: every message acknowledged before the backup began is there, in
//! order, without a gap.

use crate::common::{Ws, connect, recv, recv_code, send, serve};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn natter(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("NATTER_CONFIG")
        .output()
        .expect("run natter")
}

async fn register_and_login(ws: &mut Ws, email: &str) -> u64 {
    send(
        ws,
        json!({"code": 4, "email": email, "password": "pw", "name": email}),
    )
    .await;
    let ocid = recv_code(ws, 5).await["ocid"].as_u64().expect("ocid");
    send(
        ws,
        json!({"code": 6, "login_type": 0, "account": email, "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(recv_code(ws, 7).await["state"], 0);
    ocid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live");
    let server = serve(&live, &["--rate-per-sec", "0"], "live");
    let mut a = connect(&server.addr).await;
    let _ = register_and_login(&mut a, "a@example.com").await;
    recv_code(&mut a, 106).await;
    let mut b = connect(&server.addr).await;
    let bob = register_and_login(&mut b, "b@example.com").await;
    recv_code(&mut b, 106).await;
    drop(b);

    // Sends pipelined 32 deep; the backup runs on a thread once 400 are acknowledged, and the
    // sends go on until it has finished and 400 more are acknowledged.
    let copy = dir.path().join("natter-backup.db");
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut acked_before_backup = None;
    let mut backup: Option<std::thread::JoinHandle<Output>> = None;
    let mut done_at = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the load did not finish");
        while sent < acked + 32 {
            sent += 1;
            send(
                &mut a,
                json!({"code": 0, "sender": {"private_id": bob}, "msg": format!("m{sent}")}),
            )
            .await;
        }
        let ack = recv(&mut a).await;
        assert_eq!(ack["code"], 103, "{ack}");
        acked += 1;
        assert_eq!(ack["index"], acked, "acks come in order");
        if acked == 400 && backup.is_none() {
            acked_before_backup = Some(acked);
            let (copy, live) = (copy.clone(), live.clone());
            backup = Some(std::thread::spawn(move || {
                natter(&["backup", copy.to_str().expect("utf-8")], &live)
            }));
        }
        if done_at.is_none() && backup.as_ref().is_some_and(|t| t.is_finished()) {
            done_at = Some(acked);
        }
        if done_at.is_some_and(|d| acked >= d + 400) {
            break;
        }
    }
    let out = backup.expect("started").join().expect("backup thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "natter backup failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("backed up 2 accounts"), "{stdout}");
    let before = acked_before_backup.expect("counted");

    // A restore into the running server's data dir is refused.
    let out = natter(&["restore", copy.to_str().expect("utf-8")], &live);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("stop the server"),
        "{err}"
    );
    drop(server);

    // Restored elsewhere: everything acknowledged before the backup began, in order.
    let restored = dir.path().join("restored");
    let out = natter(&["restore", copy.to_str().expect("utf-8")], &restored);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = serve(&restored, &[], "restored");
    let mut b = connect(&server.addr).await;
    send(
        &mut b,
        json!({"code": 6, "login_type": 0, "account": "b@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(recv_code(&mut b, 7).await["state"], 0);
    let mut got = 0u64;
    loop {
        let f = recv(&mut b).await;
        match f["code"].as_i64() {
            Some(0) => {
                got += 1;
                assert_eq!(f["index"], got, "in order, no gap: {f}");
                assert_eq!(f["msg"], format!("m{got}"));
            }
            Some(106) => break,
            _ => panic!("unexpected frame {f}"),
        }
    }
    assert!(
        got >= before,
        "the backup holds {got} messages; {before} were acknowledged before it began"
    );
    assert!(got <= acked, "no message the server never stored");
    eprintln!(
        "backup under load: {before} acked before it began, {got} in it, {acked} acked in all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_move_a_sqlite_deployment_to_postgres() {
    let Some(db) = crate::services::TestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = dir.path().join("sqlite");
    let server = serve(&sqlite, &[], "sqlite");
    let mut a = connect(&server.addr).await;
    register_and_login(&mut a, "a@example.com").await;
    recv_code(&mut a, 106).await;
    let mut b = connect(&server.addr).await;
    let bob = register_and_login(&mut b, "b@example.com").await;
    recv_code(&mut b, 106).await;
    drop(b);
    for i in 1..=3 {
        send(
            &mut a,
            json!({"code": 0, "sender": {"private_id": bob}, "msg": format!("m{i}")}),
        )
        .await;
        assert_eq!(recv_code(&mut a, 103).await["index"], i);
    }
    drop(a);
    drop(server);

    let file = dir.path().join("natter.jsonl");
    let out = natter(
        &["export", "--output", file.to_str().expect("utf-8")],
        &sqlite,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("exported 2 accounts"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(["import", file.to_str().expect("utf-8"), "--store", &db.url])
        .env_remove("NATTER_CONFIG")
        .output()
        .expect("run natter import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("imported 2 accounts") && err.contains("3 messages"),
        "{err}"
    );

    // The same deployment on PostgreSQL: Bob is sent what he missed, and it goes on.
    let pg = dir.path().join("pg");
    let server = serve(&pg, &["--store", &db.url], "postgres");
    let mut b = connect(&server.addr).await;
    send(
        &mut b,
        json!({"code": 6, "login_type": 0, "account": "b@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(recv_code(&mut b, 7).await["state"], 0);
    for i in 1..=3 {
        let m = recv_code(&mut b, 0).await;
        assert_eq!(
            (m["index"].clone(), m["msg"].clone()),
            (json!(i), json!(format!("m{i}")))
        );
    }
    assert_eq!(recv_code(&mut b, 106).await["count"], 3);
    let mut a = connect(&server.addr).await;
    send(
        &mut a,
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(recv_code(&mut a, 7).await["state"], 0);
    recv_code(&mut a, 106).await;
    send(
        &mut a,
        json!({"code": 0, "sender": {"private_id": bob}, "msg": "on postgres"}),
    )
    .await;
    assert_eq!(recv_code(&mut a, 103).await["index"], 4);
    assert_eq!(recv_code(&mut b, 0).await["msg"], "on postgres");
    // A new account gets the next ocid.
    send(
        &mut a,
        json!({"code": 4, "email": "c@example.com", "password": "pw", "name": "C"}),
    )
    .await;
    assert_eq!(recv_code(&mut a, 5).await["ocid"], bob + 1);
}
