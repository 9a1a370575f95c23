//! The web client as the server serves it: the page at a plain `GET /` (while a WebSocket
//! upgrade there still speaks OurChat), its files under `/web/`, ETags and revalidation, the
//! Content-Security-Policy and the other safety headers. The client's behaviour in a browser is
//! tested by `crates/natter/tests/it/web.rs`.

use crate::common::http::request;
use crate::common::{Client, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_at_the_root_with_a_strict_policy() {
    let server = TestServer::start().await;
    let r = request(server.addr, "GET", "/", &[], b"").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = String::from_utf8(r.body.clone()).expect("UTF-8");
    assert!(
        page.contains(r#"<script type="module" src="/web/app.js"></script>"#),
        "{page}"
    );
    // No inline code: every script and style sheet is a file of its own.
    assert!(!page.contains("<script>") && !page.contains("<style") && !page.contains("style=\""));
    let csp = r.header("content-security-policy").expect("a CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self' ws://natter wss://natter;",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let etag = r.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // Revalidation: the same ETag gets 304 without a body; another gets the page.
    let again = request(server.addr, "GET", "/", &[("If-None-Match", &etag)], b"").await;
    assert_eq!(again.status, 304, "{again:?}");
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = request(
        server.addr,
        "GET",
        "/",
        &[("If-None-Match", "\"something-else\"")],
        b"",
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_files_are_served_with_their_types_and_etags() {
    let server = TestServer::start().await;
    let mut tags = Vec::new();
    for (path, mime, needle) in [
        (
            "/web/app.js",
            "text/javascript; charset=utf-8",
            "from './conn.js'",
        ),
        (
            "/web/conn.js",
            "text/javascript; charset=utf-8",
            "code: 101",
        ),
        (
            "/web/tus.js",
            "text/javascript; charset=utf-8",
            "Upload-Offset",
        ),
        (
            "/web/ui.js",
            "text/javascript; charset=utf-8",
            "export function h(",
        ),
        (
            "/web/style.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme: dark",
        ),
        ("/web/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = request(server.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
        assert!(
            String::from_utf8_lossy(&r.body).contains(needle),
            "{path} lacks {needle}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let etag = r.header("etag").expect("an ETag").to_owned();
        let again = request(server.addr, "GET", path, &[("If-None-Match", &etag)], b"").await;
        assert_eq!(again.status, 304, "{path}");
        tags.push(etag);
    }
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 6, "every file has its own ETag: {tags:?}");
    // Only the client's own files: no other name, and no way out of the folder.
    for path in [
        "/web/nothing.js",
        "/web/tests/e2e.mjs",
        "/web/..%2FCargo.toml",
        "/web/",
    ] {
        let r = request(server.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
}

/// The page took `GET /`, and the 2024 clients' WebSocket upgrade there still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_still_upgrades_to_ourchat() {
    let server = TestServer::start().await;
    let page = request(server.addr, "GET", "/", &[], b"").await;
    assert_eq!(page.status, 200);
    let mut c = Client::connect(server.addr, "/").await;
    let r = c.request(&json!({"code": 12, "request_id": 1}), 12).await;
    assert_eq!(r["status"], json!(0), "{r}");
    assert_eq!(r["request_id"], json!(1), "{r}");
    // In the 2024 flavour: a registration answers with `status` and the ocid as a string.
    let r = c
        .request(
            &json!({"code": 4, "email": "root@example.com", "password": "pw", "name": "R"}),
            5,
        )
        .await;
    assert_eq!(r["status"], json!(0), "{r}");
    assert!(r["ocid"].is_string(), "{r}");
}
