//! The web client end to end: the real `natter serve` process, and `web/tests/e2e.mjs` driving
//! the client it serves in headless Chromium (with `playwright-core`), three people and a plain
//! OurChat v1 client talking through it. Needs Node.js with npm and Chromium
//! (`/usr/bin/chromium`, or the path in `CHROMIUM`): without them the test is SKIPPED, except
//! when `CI=true`, where it fails. `NATTER_SCREENSHOTS=<dir>` (relative to the repository)
//! keeps the screens it takes.

use crate::common::serve;
use crate::services::say;
use std::path::{Path, PathBuf};
use std::process::Command;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `Some(chromium)` when Node.js, npm and Chromium are all there; otherwise `None` after
/// saying what is missing (a panic when `CI=true`).
fn tools() -> Option<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let mut missing = Vec::new();
    if !runs("node") {
        missing.push("node".to_owned());
    }
    if !runs("npm") {
        missing.push("npm".to_owned());
    }
    if !chromium.exists() {
        missing.push(chromium.display().to_string());
    }
    if missing.is_empty() {
        return Some(chromium);
    }
    let missing = missing.join(", ");
    assert!(
        !in_ci(),
        "the web client's browser test needs {missing} when CI=true"
    );
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    say(&format!("SKIPPED {test}: {missing} not found"));
    None
}

/// `web/tests`, with its packages installed (`npm ci` on first use; `.ci/run` installs them up
/// front).
fn e2e_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/tests");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

#[test]
fn the_web_client_works_in_a_real_browser() {
    let Some(chromium) = tools() else { return };
    let dir = e2e_dir();
    let data = tempfile::tempdir().expect("temp dir");
    let server = serve(data.path(), &[], "web");
    let url = format!("http://{}", server.addr);
    // The script gives up by itself after 9 minutes (each step waits 30 s at most).
    let mut node = Command::new("node");
    node.arg(dir.join("e2e.mjs"))
        .arg(&url)
        .env("CHROMIUM", &chromium)
        .current_dir(&dir);
    // A relative screenshot folder is the repository's (`docs/screenshots`).
    if let Some(shots) = std::env::var_os("NATTER_SCREENSHOTS") {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        node.env("NATTER_SCREENSHOTS", root.join(shots));
    }
    let out = node.output().expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("e2e: all passed"),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    drop(server);
}
