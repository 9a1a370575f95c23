//! A large upload against the real binary: 200 MB in tus chunks, the connection cut mid-way and
//! the upload resumed from `HEAD`, then downloaded whole, while the server's resident memory is
//! watched: bytes stream to and from disk, so memory does not grow with the file.

use crate::common::{connect, recv_code, send, serve};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
const TOTAL: usize = 200 * MIB;
/// How much the server's resident memory may grow while it moves the 200 MB (a server that
/// held the file would grow by more than the file).
const RSS_GROWTH: u64 = 64 * MIB as u64;

/// The file's bytes: one pseudo-random MiB, repeated.
fn block() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// `len` bytes of the file from `start`, written to `out` in pieces of at most 1 MiB.
async fn write_range(out: &mut TcpStream, block: &[u8], start: usize, len: usize) {
    let mut at = start;
    while at < start + len {
        let from = at % MIB;
        let n = (MIB - from).min(start + len - at);
        out.write_all(&block[from..from + n]).await.expect("write");
        at += n;
    }
}

/// The server process's resident memory now, from /proc.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The head of an HTTP answer read from `s` (up to its blank line), lower-cased names.
async fn read_head(s: &mut TcpStream) -> (u16, Vec<(String, String)>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.expect("read");
        assert!(n == 1, "the connection closed inside a head");
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A request with no body on a fresh connection; the status and headers of its answer.
async fn bodiless(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    extra: &str,
) -> (u16, Vec<(String, String)>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: natter\r\nTus-Resumable: 1.0.0\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    read_head(&mut s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_upload_cut_midway_resumes_and_memory_stays_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path(), &["--max-file-mb", "256"], "files");
    let addr = server.addr.clone();
    let pid = server.child.id();

    let mut ws = connect(&addr).await;
    send(
        &mut ws,
        json!({"code": 4, "time": 0, "email": "a@example.com", "password": "pw", "name": "A"}),
    )
    .await;
    assert_eq!(recv_code(&mut ws, 5).await["state"], 0);
    send(
        &mut ws,
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    let login = recv_code(&mut ws, 7).await;
    let token = login["token"].as_str().expect("token").to_owned();

    // Watch the server's memory for the whole transfer.
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let before = rss(pid);

    let block = block();
    let mut sha = Sha256::new();
    for _ in 0..TOTAL / MIB {
        sha.update(&block);
    }
    let sha = sha
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();

    let (status, headers) = bodiless(
        &addr,
        "POST",
        "/files/",
        &token,
        &format!("Upload-Length: {TOTAL}\r\nUpload-Metadata: filename YmlnLmJpbg==\r\n"),
    )
    .await;
    assert_eq!(status, 201, "{headers:?}");
    let path = header(&headers, "location").expect("location").to_owned();

    // 120 MiB of a body announced whole, then the connection drops.
    {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: natter\r\nTus-Resumable: 1.0.0\r\n\
             Content-Type: application/offset+octet-stream\r\nAuthorization: Bearer {token}\r\n\
             Upload-Offset: 0\r\nContent-Length: {TOTAL}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("head");
        write_range(&mut s, &block, 0, 120 * MIB).await;
        s.flush().await.expect("flush");
    }
    // HEAD says how far it got once the server has seen the drop.
    let mut offset = 0usize;
    for _ in 0..100 {
        let (status, headers) = bodiless(&addr, "HEAD", &path, &token, "").await;
        assert_eq!(status, 200);
        let now: usize = header(&headers, "upload-offset")
            .and_then(|o| o.parse().ok())
            .expect("offset");
        if now == offset && now > 0 {
            break;
        }
        offset = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        offset > 0 && offset <= 120 * MIB,
        "kept {offset} bytes of the cut body"
    );

    // The rest, resumed from there.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let rest = TOTAL - offset;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: natter\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nAuthorization: Bearer {token}\r\n\
         Upload-Offset: {offset}\r\nContent-Length: {rest}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    write_range(&mut s, &block, offset, rest).await;
    let (status, headers) = read_head(&mut s).await;
    assert_eq!(status, 204, "{headers:?}");
    assert_eq!(
        header(&headers, "upload-offset"),
        Some(TOTAL.to_string().as_str())
    );

    // The server's digest of what it stored is the client's.
    let (status, headers) = bodiless(&addr, "HEAD", &path, &token, "").await;
    assert_eq!(status, 200);
    let etag = format!("\"{sha}\"");
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()));

    // Downloaded whole, streamed: the same bytes.
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: natter\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let (status, headers) = read_head(&mut s).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        Some(TOTAL.to_string().as_str())
    );
    let mut got = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0usize;
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
        read += n;
    }
    assert_eq!(read, TOTAL);
    let got = got
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(got, sha);

    done.store(true, Ordering::Relaxed);
    watcher.join().expect("watcher");
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "server RSS: {} MiB before, {} MiB at most while moving 200 MiB",
        before / MIB as u64,
        peak / MIB as u64
    );
    assert!(peak > 0, "the server's memory was read");
    assert!(
        peak < before + RSS_GROWTH,
        "the server's RSS grew from {} to {} MiB (at most {} MiB of growth allowed)",
        before / MIB as u64,
        peak / MIB as u64,
        RSS_GROWTH / MIB as u64
    );
}
