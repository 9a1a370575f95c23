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

/// A short soak over every dialect: connections churning over v1 and v0 with pictures, pipe,
/// REST with push and service codes, each writing to an account of another dialect; the report
/// says nothing was lost, every dialect sent and read back, and the server's memory stayed
/// within the allowed growth after the warm-up.
#[test]
fn a_short_soak_loses_nothing_and_memory_stays_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&dir.path().join("data"));
    let r = bench(
        &server,
        dir.path(),
        &[
            "soak",
            "--secs",
            "10",
            "--pairs",
            "4",
            "--per-connection",
            "5",
            "--file-every",
            "2",
            "--max-growth-mib",
            "64",
            "--pipe",
            &server.pipe,
        ],
    );
    let acked = r["counts"]["acked"].as_u64().expect("acked");
    assert!(acked > 0, "{r}");
    assert_eq!(r["counts"]["stored"], acked, "{r}");
    assert!(
        r["counts"]["connections"].as_u64().expect("connections") >= 8,
        "{r}"
    );
    assert!(
        r["counts"]["pictures"].as_u64().expect("pictures") >= 3,
        "{r}"
    );
    for way in ["v1", "v0", "pipe", "rest", "svc"] {
        let n = r["counts"][format!("acked_{way}")].as_u64();
        assert!(n.is_some_and(|n| n > 0), "nothing acked over {way}: {r}");
    }
    let mut read = 0;
    for dialect in ["ourchat", "pipe", "rest", "svc"] {
        let n = r["counts"][format!("read_{dialect}")].as_u64();
        assert!(n.is_some_and(|n| n > 0), "nothing read over {dialect}: {r}");
        read += n.unwrap_or_default();
    }
    assert_eq!(read, acked, "{r}");
    assert!(r["figures"]["rss_growth_mib"].is_number(), "{r}");
}
