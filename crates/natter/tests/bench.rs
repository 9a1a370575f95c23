//! Smoke test of `natter bench`: every workload, at a small size, against the real `natter serve`
//! binary; the JSON report must say that the exactly-once/order check passed, with the right
//! counts. No timing is asserted.

mod common;

use common::{Server, serve};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// Start `natter serve` on a free port, without a rate limit, and wait for its address.
fn start(data_dir: &Path) -> Server {
    serve(data_dir, &["--rate-per-sec", "0"], "natter")
}

/// Run `natter bench <args> --json <file>` and return the parsed report; the run must succeed.
fn bench(server: &Server, dir: &Path, args: &[&str]) -> Value {
    let json = dir.join(format!("{}.json", args[0]));
    let out = Command::new(env!("CARGO_BIN_EXE_natter"))
        .arg("bench")
        .arg("--url")
        .arg(format!("ws://{}/ws", server.addr))
        .args(["--timeout-secs", "60", "--json"])
        .arg(&json)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run natter bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "natter bench {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("PASSED"), "{stdout}");
    let text = std::fs::read_to_string(&json).expect("the JSON report");
    let report: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(report["workload"], args[0]);
    assert_eq!(report["checks"]["passed"], true, "{report}");
    report
}

#[test]
fn every_workload_runs_and_checks_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir.path().join("data"));
    let out = dir.path();

    let r = bench(
        &server,
        out,
        &[
            "idle",
            "--connections",
            "20",
            "--accounts",
            "5",
            "--hold-secs",
            "0.2",
        ],
    );
    assert_eq!(r["counts"]["connections_opened"], 20);
    assert_eq!(r["counts"]["server_connections_added"], 20);
    assert!(r["figures"]["server_rss_per_connection_bytes"].is_number());

    let r = bench(
        &server,
        out,
        &[
            "direct",
            "--pairs",
            "2",
            "--messages",
            "20",
            "--window",
            "4",
        ],
    );
    assert_eq!(r["counts"]["messages_acked"], 40);
    assert_eq!(r["counts"]["deliveries_received"], 40);
    assert_eq!(r["counts"]["lost"], 0);
    assert_eq!(r["counts"]["duplicated_or_out_of_order"], 0);

    let r = bench(
        &server,
        out,
        &[
            "group",
            "--members",
            "5",
            "--senders",
            "2",
            "--messages",
            "10",
            "--window",
            "4",
        ],
    );
    assert_eq!(r["counts"]["messages_acked"], 20);
    assert_eq!(r["counts"]["deliveries_expected"], 80);
    assert_eq!(r["counts"]["deliveries_received"], 80);
    assert_eq!(r["counts"]["lost"], 0);

    let r = bench(&server, out, &["catchup", "--messages", "50"]);
    assert_eq!(r["counts"]["received"], 50);
    assert_eq!(r["counts"]["pushed_before_sync_done"], 50);
    assert_eq!(r["counts"]["lost"], 0);

    let r = bench(
        &server,
        out,
        &["catchup", "--messages", "30", "--login", "token"],
    );
    assert_eq!(r["counts"]["received"], 30);

    let r = bench(
        &server,
        out,
        &[
            "resume",
            "--connections",
            "20",
            "--rounds",
            "2",
            "--accounts",
            "5",
            "--sources",
            "2",
        ],
    );
    assert_eq!(r["counts"]["reconnects"], 40);
    assert_eq!(r["counts"]["errors"], 0);
}
