//! The real binary's log settings and start-up errors: levels that mean what they say,
//! `RUST_LOG`, flat JSON lines with the client address and no secrets; errors that name the
//! path, address and cause.

use crate::common::{connect, recv_code, send};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `natter serve` on a free port with `args` and `envs`; its stderr lines arrive on the
/// receiver.
fn spawn(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("NATTER_CONFIG")
        // The pipe port on a free port too (its default is fixed, and tests run side by side).
        .env("NATTER_PIPE_LISTEN", "127.0.0.1:0")
        .env_remove("NATTER_LOG_LEVEL")
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natter serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("[natter] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next line containing `needle`, within `wait`.
fn line_with(rx: &mpsc::Receiver<String>, needle: &str, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// The address from a JSON or text "natter listening" line.
fn listening(line: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return v["addr"].as_str().expect("addr field").to_owned();
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("addr=")
        .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != ':')
        .to_owned()
}

/// Run `natter serve` expecting it to fail at start; returns its stderr.
fn fails_to_start(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .arg("serve")
        .args(args)
        .env_remove("NATTER_CONFIG")
        // The pipe port on a free port too (its default is fixed, and tests run side by side).
        .env("NATTER_PIPE_LISTEN", "127.0.0.1:0")
        .env_remove("NATTER_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run natter serve");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "natter serve {args:?} started:\n{err}"
    );
    err
}

async fn failed_login(addr: &str) {
    let mut ws = connect(addr).await;
    send(
        &mut ws,
        json!({"code": 6, "login_type": 0, "account": "who@example.com", "password": "s3cret-pw"}),
    )
    .await;
    assert_eq!(recv_code(&mut ws, 7).await["state"], 1);
}

#[tokio::test]
async fn verbose_logs_debug_lines_and_json_lines_are_flat_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, rx) = spawn(
        dir.path(),
        &[
            "--log-level",
            "verbose",
            "--log-format",
            "json",
            "--rate-per-sec",
            "2",
            "--rate-burst",
            "2",
        ],
        &[],
    );
    let line = line_with(&rx, "natter listening", Duration::from_secs(30)).expect("started");
    let addr = listening(&line);
    failed_login(&addr).await;
    // A debug line of natter's own, with the client's address.
    let opened = line_with(&rx, "connection opened", Duration::from_secs(5))
        .expect("--log-level verbose shows natter's debug lines");
    let failed = line_with(&rx, "login failed", Duration::from_secs(5)).expect("a login line");
    for line in [&opened, &failed] {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(v.get("fields").is_none(), "flat, not nested: {line}");
        assert!(
            v["client"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1:")),
            "{line}"
        );
        assert!(v["message"].is_string() && v["level"].is_string(), "{line}");
    }
    let v: serde_json::Value = serde_json::from_str(&failed).expect("JSON");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["account"], "*@example.com", "{failed}");
    assert!(
        !failed.contains("s3cret") && !failed.contains("who@"),
        "{failed}"
    );

    // Over the rate limit: refused, and said once, with the client's address.
    let mut ws = connect(&addr).await;
    for _ in 0..6 {
        send(&mut ws, json!({"code": 12})).await;
    }
    let limited =
        line_with(&rx, "over the rate limit", Duration::from_secs(5)).expect("a rate-limit line");
    let v: serde_json::Value = serde_json::from_str(&limited).expect("JSON");
    assert!(
        v["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{limited}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn rust_log_is_honoured_and_the_flag_wins_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // RUST_LOG at warn: the info lines (listening, failed login) are not shown.
    let (mut child, rx) = spawn(dir.path(), &[], &[("RUST_LOG", "natter_server=debug,warn")]);
    let line = line_with(&rx, "natter listening", Duration::from_secs(30));
    assert!(
        line.is_some(),
        "natter_server=debug shows the listening line"
    );
    let addr = listening(&line.expect("line"));
    failed_login(&addr).await;
    assert!(line_with(&rx, "connection opened", Duration::from_secs(5)).is_some());
    let _ = child.kill();
    let _ = child.wait();

    let (mut child, rx) = spawn(
        dir.path(),
        &["--log-level", "warn"],
        &[("RUST_LOG", "debug")],
    );
    // Nothing at info: the process runs (it answers) but says nothing of listening.
    assert!(line_with(&rx, "natter listening", Duration::from_secs(3)).is_none());
    let _ = child.kill();
    let _ = child.wait();

    let err = fails_to_start(&["--log-level", "loud", "--data-dir", "/nonexistent"]);
    assert!(err.contains("unknown log level `loud`"), "{err}");
}

#[test]
fn start_up_errors_name_the_path_address_and_cause() {
    let dir = tempfile::tempdir().expect("tempdir");

    // The data directory is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").expect("write");
    let err = fails_to_start(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &file.display().to_string(),
    ]);
    assert!(
        err.contains(&format!("the data directory {} is a file", file.display())),
        "{err}"
    );

    // The data directory is on a read-only file system (a tmpfs mounted read-only; needs root).
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&ro)
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let err = fails_to_start(&[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &ro.display().to_string(),
        ]);
        let _ = Command::new("umount").arg(&ro).status();
        assert!(
            err.contains(&format!(
                "the data directory {} is not writable",
                ro.display()
            )) && err.contains("Read-only file system"),
            "{err}"
        );
    } else {
        eprintln!("skipped: the read-only data directory case needs `mount` (root)");
    }

    // PostgreSQL that does not answer: the address (without the password) and the cause.
    let started = Instant::now();
    let err = fails_to_start(&[
        "--listen",
        "127.0.0.1:0",
        "--store",
        "postgres://natter:hunter2@127.0.0.1:1/natter",
    ]);
    assert!(
        err.contains("cannot connect to PostgreSQL at postgres://natter:***@127.0.0.1:1/natter")
            && err.to_lowercase().contains("refused"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "no long wait for a refused connection"
    );

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data = dir.path().join("data");
    let err = fails_to_start(&["--listen", &addr, "--data-dir", &data.display().to_string()]);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
    // The pipe port is taken: the error names it and its flag.
    let err = fails_to_start(&[
        "--listen",
        "127.0.0.1:0",
        "--pipe-listen",
        &addr,
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert!(
        err.contains(&format!("cannot listen on {addr} (--pipe-listen)")) && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn natter_health_says_ready_or_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = crate::common::serve(dir.path(), &[], "natter");
    let health = |addr: &str, path: &str| {
        Command::new(env!("CARGO_BIN_EXE_natter"))
            .args(["health", "--addr", addr, "--path", path])
            .output()
            .expect("run natter health")
    };
    let out = health(&server.addr, "/readyz");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ready");
    assert!(health(&server.addr, "/healthz").status.success());
    drop(server);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let out = health(&closed, "/readyz");
    assert!(!out.status.success(), "nothing listens there: {out:?}");
}
