//! Starting the real `natter` binary for the process-level tests, and talking to it over v1
//! with natter-client's WebSocket connection (read as JSON, strictly: a test names the code
//! of the very next frame).

use natter_client::ourchat::v1;
use natter_client::ws;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `natter serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Every line it has logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// `host:port` of its pipe dialect.
    pub pipe: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `natter serve` on a free port with `data_dir` and the `extra` flags, and wait for its
/// "listening" line. Its log is echoed to the test's output, each line prefixed with `label`
/// (shown when a test fails).
pub fn serve(data_dir: &Path, extra: &[&str], label: &str) -> Server {
    serve_with(
        Command::new(env!("CARGO_BIN_EXE_natter")),
        data_dir,
        extra,
        label,
    )
}

/// As [`serve`], with `natter` started by `command` (such as `prlimit ... natter`).
pub fn serve_with(mut command: Command, data_dir: &Path, extra: &[&str], label: &str) -> Server {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(if extra.contains(&"--log-level") {
            &[][..]
        } else {
            &["--log-level", "info"][..]
        })
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("NATTER_CONFIG")
        // The pipe port on a free port too (its default is fixed, and tests run side by side).
        .env("NATTER_PIPE_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natter serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let label = label.to_owned();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        let mut pipe = None;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("pipe dialect listening") {
                pipe = listening_addr(&line);
            }
            if !sent && line.contains("natter listening") {
                let _ = tx.send(listening_addr(&line).zip(pipe.take()));
                sent = true;
            }
            eprintln!("[{label}] {line}");
            kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    let (addr, pipe) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("natter printed no 'listening' line")
        .expect("the listening lines name the addresses");
    Server {
        child,
        addr,
        log,
        pipe,
    }
}

/// The `addr=` field of the "natter listening" log line.
fn listening_addr(line: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .map(|a| {
            a.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != ':')
                .to_owned()
        })
}

/// A v1 WebSocket client connection.
pub type Ws = ws::Conn;

/// Connect to the v1 endpoint of the server at `addr`.
pub async fn connect(addr: &str) -> Ws {
    let endpoint = ws::Endpoint::resolve(&format!("ws://{addr}{}", v1::PATH))
        .await
        .expect("the server's address");
    endpoint
        .connect(&ws::Options::default())
        .await
        .expect("connect")
}

/// Send a frame.
pub async fn send(ws: &mut Ws, v: serde_json::Value) {
    send_text(ws, v.to_string()).await;
}

/// Send a frame built by natter-client.
pub async fn send_text(ws: &mut Ws, text: String) {
    ws.send_text(text).await.expect("send");
}

/// The next text frame, parsed (pings and pongs skipped); fails after 10 s.
pub async fn recv(ws: &mut Ws) -> serde_json::Value {
    let text = tokio::time::timeout(Duration::from_secs(10), ws.next_text())
        .await
        .expect("a frame within 10 s")
        .expect("frame");
    serde_json::from_str(&text).expect("JSON frame")
}

/// The next frame, which must have this `code`.
pub async fn recv_code(ws: &mut Ws, code: i64) -> serde_json::Value {
    let v = recv(ws).await;
    assert_eq!(v["code"], code, "expected code {code}, got {v}");
    v
}

/// Run `natter bench --url <each of addrs> <args> --json <file in dir>` and return the parsed
/// report. The run must succeed and its exactly-once/order check must pass.
pub fn bench(addrs: &[&str], dir: &Path, timeout_secs: u32, args: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("{}.json", args[0]));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_natter"));
    cmd.arg("bench");
    for addr in addrs {
        cmd.arg("--url").arg(format!("ws://{addr}/ws"));
    }
    let out = cmd
        .args(["--timeout-secs", &timeout_secs.to_string(), "--json"])
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
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(report["workload"], args[0]);
    assert_eq!(report["checks"]["passed"], true, "{report}");
    // A run over several nodes says so.
    if addrs.len() > 1 {
        assert!(
            stdout.contains(&format!("nodes={}", addrs.len())),
            "{stdout}"
        );
        assert_eq!(report["parameters"]["nodes"], addrs.len(), "{report}");
    }
    report
}
