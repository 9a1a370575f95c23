//! Smoke test of `natter bench`: every workload, at a small size, against the real `natter serve`
//! binary; the JSON report must say that the exactly-once/order check passed, with the right
//! counts. No timing is asserted.

use crate::common::{self, Server, serve};
use serde_json::Value;
use std::path::Path;

/// Start `natter serve` on a free port, without a rate limit, and wait for its address.
fn start(data_dir: &Path) -> Server {
    serve(data_dir, &["--rate-per-sec", "0"], "natter")
}

/// Run `natter bench` against the one server.
fn bench(server: &Server, dir: &Path, args: &[&str]) -> Value {
    common::bench(&[server.addr.as_str()], dir, 60, args)
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
