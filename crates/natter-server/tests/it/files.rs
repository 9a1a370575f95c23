//! Files over HTTP (tus uploads, downloads with ranges, signed links), files in v1 messages,
//! avatars, and the sweep of abandoned uploads and unreferenced files.

use crate::common::http::{Reply, request};
use crate::common::{TestServer, User, assert_error, int, login_v1, register_v1, string, user_v1};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OFFSET_TYPE: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

/// A PNG header of `w` by `h` pixels, with `extra` bytes after it.
fn png(w: u32, h: u32, extra: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0]);
    b.extend((0..extra).map(|i| (i % 251) as u8));
    b
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

/// Create an upload of `length` bytes named `name` of type `mime`; returns its path.
async fn create(addr: SocketAddr, token: &str, length: usize, name: &str, mime: &str) -> String {
    let auth = bearer(token);
    let len = length.to_string();
    let meta = format!("filename {},filetype {}", b64(name), b64(mime));
    let r = request(
        addr,
        "POST",
        "/files/",
        &[
            TUS,
            ("Authorization", &auth),
            ("Upload-Length", &len),
            ("Upload-Metadata", &meta),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 201, "create: {r:?}");
    assert_eq!(r.header("upload-offset"), Some("0"));
    assert_eq!(r.header("tus-resumable"), Some("1.0.0"));
    let location = r.header("location").expect("a Location").to_owned();
    assert!(location.starts_with("/files/"), "{location}");
    location
}

async fn patch(addr: SocketAddr, token: &str, path: &str, offset: usize, body: &[u8]) -> Reply {
    let auth = bearer(token);
    let off = offset.to_string();
    request(
        addr,
        "PATCH",
        path,
        &[
            TUS,
            OFFSET_TYPE,
            ("Authorization", &auth),
            ("Upload-Offset", &off),
        ],
        body,
    )
    .await
}

/// Upload `bytes` whole in one creation-with-upload request; returns the file's id.
async fn upload(addr: SocketAddr, token: &str, name: &str, mime: &str, bytes: &[u8]) -> String {
    let auth = bearer(token);
    let len = bytes.len().to_string();
    let meta = format!("filename {},filetype {}", b64(name), b64(mime));
    let r = request(
        addr,
        "POST",
        "/files/",
        &[
            TUS,
            OFFSET_TYPE,
            ("Authorization", &auth),
            ("Upload-Length", &len),
            ("Upload-Metadata", &meta),
        ],
        bytes,
    )
    .await;
    assert_eq!(r.status, 201, "upload: {r:?}");
    assert_eq!(r.header("upload-offset"), Some(len.as_str()));
    let location = r.header("location").expect("a Location");
    location.trim_start_matches("/files/").to_owned()
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, b"").await
}

fn assert_refused(r: &Reply, status: u16, error: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let body = r.json();
    assert_eq!(body["error"], json!(error), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_upload_in_chunks_resumes_from_head_and_downloads_whole() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;

    // Discovery.
    let r = request(addr, "OPTIONS", "/files/", &[], b"").await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    let extensions = r.header("tus-extension").expect("extensions");
    for ext in [
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
    ] {
        assert!(extensions.split(',').any(|e| e == ext), "{extensions}");
    }
    assert_eq!(r.header("tus-max-size"), Some("268435456"));
    assert_eq!(r.header("tus-checksum-algorithm"), Some("sha256"));

    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let path = create(addr, &alice.token, data.len(), "report ü.txt", "text/plain").await;
    // A fresh upload is at 0 and says what it was created with.
    let auth = bearer(&alice.token);
    let head = request(addr, "HEAD", &path, &[TUS, ("Authorization", &auth)], b"").await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("upload-offset"), Some("0"));
    assert_eq!(head.header("upload-length"), Some("300000"));
    assert_eq!(head.header("cache-control"), Some("no-store"));
    assert!(
        head.header("upload-metadata")
            .is_some_and(|m| m.contains("filename"))
    );

    let r = patch(addr, &alice.token, &path, 0, &data[..100_000]).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("upload-offset"), Some("100000"));
    // The wrong offset is refused with the right one.
    let r = patch(addr, &alice.token, &path, 50_000, &data[50_000..60_000]).await;
    assert_refused(&r, 409, "offset_mismatch");
    assert_eq!(r.header("upload-offset"), Some("100000"));
    // Someone else's upload does not exist for them; without a login nothing does.
    let bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let r = patch(addr, &bob.token, &path, 100_000, &data[100_000..110_000]).await;
    assert_refused(&r, 404, "no_such_file");
    let r = request(
        addr,
        "PATCH",
        &path,
        &[TUS, OFFSET_TYPE, ("Upload-Offset", "100000")],
        b"x",
    )
    .await;
    assert_refused(&r, 401, "not_logged_in");
    let r = patch(addr, "not-a-token", &path, 100_000, b"x").await;
    assert_refused(&r, 401, "invalid_token");

    // A connection cut mid-body keeps what arrived; HEAD says where to go on.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: natter\r\nTus-Resumable: 1.0.0\r\n\
             Content-Type: application/offset+octet-stream\r\nAuthorization: {auth}\r\n\
             Upload-Offset: 100000\r\nContent-Length: 200000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("head");
        s.write_all(&data[100_000..170_000]).await.expect("part");
        s.flush().await.expect("flush");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut offset = 0;
    for _ in 0..50 {
        let head = request(addr, "HEAD", &path, &[TUS, ("Authorization", &auth)], b"").await;
        offset = head
            .header("upload-offset")
            .expect("offset")
            .parse()
            .expect("a number");
        if offset == 170_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(offset, 170_000, "the bytes before the cut are kept");
    let r = patch(addr, &alice.token, &path, offset, &data[offset..]).await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("upload-offset"), Some("300000"));

    // The finished file: whole, typed, named, validated.
    let r = get(addr, &path, &[("Authorization", &auth)]).await;
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("300000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = format!("\"{}\"", sha256_hex(&data));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report _.txt\"; filename*=UTF-8''report%20%C3%BC.txt")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("sandbox"))
    );
    // HEAD on a finished upload says it is complete (a tus client resuming a done upload).
    let head = request(addr, "HEAD", &path, &[TUS, ("Authorization", &auth)], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("upload-offset"), Some("300000"));
    assert_eq!(head.header("content-length"), Some("300000"));
    // A conditional GET of the same version has nothing to send.
    let r = get(
        addr,
        &path,
        &[("Authorization", &auth), ("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksums_versions_and_content_types_are_checked() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let auth = bearer(&alice.token);
    let path = create(addr, &alice.token, 8, "x.bin", "").await;
    let off = |o: &'static str| ("Upload-Offset", o);

    let wrong = format!("sha256 {}", STANDARD.encode(Sha256::digest(b"abcd")));
    let r = request(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OFFSET_TYPE,
            ("Authorization", &auth),
            off("0"),
            ("Upload-Checksum", &wrong),
        ],
        b"wxyz",
    )
    .await;
    assert_refused(&r, 460, "checksum_mismatch");
    let head = request(addr, "HEAD", &path, &[TUS, ("Authorization", &auth)], b"").await;
    assert_eq!(
        head.header("upload-offset"),
        Some("0"),
        "nothing of a bad chunk is kept"
    );

    let right = format!("sha256 {}", STANDARD.encode(Sha256::digest(b"wxyz")));
    let r = request(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OFFSET_TYPE,
            ("Authorization", &auth),
            off("0"),
            ("Upload-Checksum", &right),
        ],
        b"wxyz",
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("upload-offset"), Some("4"));

    let md5 = "md5 1B2M2Y8AsgTpgAmY7PhCfg==";
    let r = request(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            OFFSET_TYPE,
            ("Authorization", &auth),
            off("4"),
            ("Upload-Checksum", md5),
        ],
        b"1234",
    )
    .await;
    assert_refused(&r, 400, "bad_header");
    let r = request(
        addr,
        "PATCH",
        &path,
        &[OFFSET_TYPE, ("Authorization", &auth), off("4")],
        b"1234",
    )
    .await;
    assert_refused(&r, 412, "unsupported_version");
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    let r = request(
        addr,
        "PATCH",
        &path,
        &[
            TUS,
            ("Content-Type", "text/plain"),
            ("Authorization", &auth),
            off("4"),
        ],
        b"1234",
    )
    .await;
    assert_refused(&r, 415, "wrong_content_type");
    // Past the announced length: refused, nothing kept.
    let r = patch(addr, &alice.token, &path, 4, b"123456").await;
    assert_refused(&r, 413, "beyond_length");
    let r = patch(addr, &alice.token, &path, 4, b"1234").await;
    assert_eq!(r.status, 204);
    let r = get(addr, &path, &[("Authorization", &auth)]).await;
    assert_eq!(r.body, b"wxyz1234");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // Creation needs a length; deferring it is not offered.
    let r = request(
        addr,
        "POST",
        "/files/",
        &[TUS, ("Authorization", &auth)],
        b"",
    )
    .await;
    assert_refused(&r, 400, "bad_header");
    let r = request(
        addr,
        "POST",
        "/files/",
        &[TUS, ("Authorization", &auth), ("Upload-Defer-Length", "1")],
        b"",
    )
    .await;
    assert_refused(&r, 400, "bad_header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_seek_anywhere_and_out_of_range_is_416() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let auth = bearer(&alice.token);
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let id = upload(
        addr,
        &alice.token,
        "clip.bin",
        "application/octet-stream",
        &data,
    )
    .await;
    let path = format!("/files/{id}");
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-599", 500, 599),
        ("bytes=900-5000", 900, 999),
    ] {
        let r = get(addr, &path, &[("Authorization", &auth), ("Range", range)]).await;
        assert_eq!(r.status, 206, "{range}: {r:?}");
        assert_eq!(r.body, data[start..=end], "{range}");
        let want = format!("bytes {start}-{end}/1000");
        assert_eq!(r.header("content-range"), Some(want.as_str()), "{range}");
        let len = (end - start + 1).to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()), "{range}");
    }
    let r = get(
        addr,
        &path,
        &[("Authorization", &auth), ("Range", "bytes=1000-")],
    )
    .await;
    assert_refused(&r, 416, "range_not_satisfiable");
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
    // A range for another version is ignored: the whole file.
    let r = get(
        addr,
        &path,
        &[
            ("Authorization", &auth),
            ("Range", "bytes=0-9"),
            ("If-Range", "\"other\""),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
}

/// Send a v1 file message; returns the ack (code 103) or the error frame (code 100).
async fn send_file(
    c: &mut crate::common::Client,
    to: Value,
    code: i64,
    file: Value,
    msg: &str,
) -> Value {
    c.send_json(&json!({"code": code, "sender": to, "file": file, "msg": msg}))
        .await;
    c.recv().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_read_a_file() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let carol = user_v1(&server, "carol@example.com", "Carol", "pw-c").await;
    let image = png(3, 2, 100);
    let id = upload(addr, &alice.token, "cat.png", "image/png", &image).await;
    let path = format!("/files/{id}");
    let reads = |u: &User| bearer(&u.token);
    let status = |r: &Reply| r.status;

    // Before it is sent anywhere: the uploader only.
    assert_eq!(
        status(&get(addr, &path, &[("Authorization", &reads(&alice))]).await),
        200
    );
    for who in [&bob, &carol] {
        let r = get(addr, &path, &[("Authorization", &reads(who))]).await;
        assert_refused(&r, 404, "no_such_file");
    }
    let r = get(addr, &path, &[]).await;
    assert_refused(&r, 404, "no_such_file");
    assert!(
        !r.body.windows(4).any(|w| w == b"IHDR"),
        "no bytes of the file"
    );

    // Sent to bob: bob reads it, carol and strangers still do not.
    let ack = send_file(
        &mut alice.client,
        json!({"private_id": bob.ocid}),
        2,
        json!({"id": id}),
        "",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");
    assert_eq!(
        status(&get(addr, &path, &[("Authorization", &reads(&bob))]).await),
        200
    );
    let r = get(addr, &path, &[("Authorization", &reads(&carol))]).await;
    assert_refused(&r, 404, "no_such_file");
    // Tokens in URLs are refused, not read.
    let r = get(addr, &format!("{path}?token={}", bob.token), &[]).await;
    assert_refused(&r, 400, "token_in_url");

    // A signed link works without a login until it expires; a forged one does not.
    let r = get(
        addr,
        &format!("{path}/link"),
        &[("Authorization", &reads(&bob))],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let link = r.json();
    let url = string(&link["url"]);
    assert!(url.starts_with(&format!("{path}?exp=")), "{url}");
    assert!(int(&link["expires"]) > crate::common::now_s() as u64);
    let r = get(addr, &url, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, image);
    let forged = format!("{}AAAA", &url[..url.len() - 4]);
    assert_refused(&get(addr, &forged, &[]).await, 404, "no_such_file");
    let later = url.replace("exp=", "exp=1");
    assert_refused(&get(addr, &later, &[]).await, 404, "no_such_file");
    // Carol cannot get a link to what she may not read.
    let r = get(
        addr,
        &format!("{path}/link"),
        &[("Authorization", &reads(&carol))],
    )
    .await;
    assert_refused(&r, 404, "no_such_file");

    // An avatar is public, once set from a picture; a non-picture is refused.
    let text_id = upload(addr, &carol.token, "notes.txt", "text/plain", b"hello").await;
    let mut carol_c = carol.client;
    let r = carol_c
        .request(
            &json!({"code": 124, "avatar": format!("/files/{text_id}")}),
            100,
        )
        .await;
    assert_error(&r, "wrong_file_kind", 4017, json!(124));
    let face = upload(addr, &carol.token, "me.png", "image/png", &png(64, 64, 10)).await;
    let r = carol_c
        .request(
            &json!({"code": 124, "avatar": format!("/files/{face}")}),
            125,
        )
        .await;
    assert_eq!(r["profile"]["avatar"], json!(format!("/files/{face}")));
    let r = get(addr, &format!("/files/{face}"), &[]).await;
    assert_eq!(r.status, 200, "an avatar is public: {r:?}");
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.starts_with("inline"))
    );
    // Nobody can make someone else's file their avatar.
    let r = carol_c
        .request(&json!({"code": 124, "avatar": format!("/files/{id}")}), 100)
        .await;
    assert_error(&r, "no_such_file", 4016, json!(124));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_reaches_an_offline_member_who_fetches_it_after_login() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let mut bob_c = server.v1().await;
    let bob = register_v1(&mut bob_c, "bob@example.com", "Bob", "pw-b").await;
    drop(bob_c);
    let image = png(640, 480, 2000);
    let id = upload(addr, &alice.token, "beach.png", "image/png", &image).await;

    // Refusals: an image must be a picture, a voice note needs a duration, the file must exist.
    let notes = upload(addr, &alice.token, "a.txt", "text/plain", b"text").await;
    let r = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        2,
        json!({"id": notes}),
        "",
    )
    .await;
    assert_error(&r, "wrong_file_kind", 4017, json!(2));
    let r = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        3,
        json!({"id": "zzzzzzzzzzzzzzzzzzzzzzzzzz"}),
        "",
    )
    .await;
    assert_error(&r, "no_such_file", 4016, json!(3));
    let r = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        3,
        json!({"id": notes, "duration_ms": 1200}),
        "",
    )
    .await;
    assert_error(&r, "wrong_file_kind", 4017, json!(3));
    let r = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        2,
        json!({}),
        "",
    )
    .await;
    assert_error(&r, "missing_field", 1002, json!(2));

    let ack = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        2,
        json!({"id": id}),
        "at the beach",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");
    let ogg = b"OggS\0\x02rest-of-a-voice-note".to_vec();
    let voice = upload(addr, &alice.token, "note.ogg", "audio/ogg", &ogg).await;
    let ack = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        3,
        json!({"id": voice, "duration_ms": 2500}),
        "",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");
    let ack = send_file(
        &mut alice.client,
        json!({"private_id": bob}),
        3,
        json!({"id": notes}),
        "read this",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");

    // Bob logs in: the three arrive with their files, in order.
    let mut bob_c = server.v1().await;
    let login = login_v1(&mut bob_c, "bob@example.com", "pw-b").await;
    let codes: Vec<i64> = login
        .missed
        .iter()
        .map(|m| m["code"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(codes, [2, 3, 3], "{:?}", login.missed);
    let first = &login.missed[0];
    assert_eq!(first["msg"], json!("at the beach"));
    assert_eq!(
        first["file"],
        json!({"id": id, "kind": "image", "name": "beach.png", "size": image.len(),
               "mime": "image/png", "width": 640, "height": 480})
    );
    assert_eq!(first["sender"]["ocid"], json!(alice.ocid));
    let second = &login.missed[1]["file"];
    assert_eq!(second["kind"], json!("voice"));
    assert_eq!(second["duration_ms"], json!(2500));
    assert_eq!(second["mime"], json!("audio/ogg"));
    assert_eq!(login.missed[2]["file"]["kind"], json!("file"));
    assert_eq!(login.missed[2]["msg"], json!("read this"));

    // And fetches the picture with its login.
    let r = get(
        addr,
        &format!("/files/{id}"),
        &[("Authorization", &bearer(&login.token))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, image);

    // History pages them like text.
    let h =
        crate::common::history_v1(&mut bob_c, json!({"private_id": alice.ocid, "limit": 10})).await;
    let messages = h["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["file"]["id"], json!(id));
    assert_eq!(messages[0]["code"], json!(2));

    // Live to a v0 client: the kind in brackets before the caption, the file beside it.
    let mut v0 = server.v0().await;
    let carol = crate::common::register_v0(&mut v0, "carol@example.com", "pw-c").await;
    crate::common::login_v0(&mut v0, &json!(carol), "pw-c").await;
    let to_carol = json!({"private_id": carol.parse::<u64>().expect("ocid")});
    let ack = send_file(&mut alice.client, to_carol, 2, json!({"id": id}), "look").await;
    assert_eq!(ack["code"], json!(103), "{ack}");
    let live = v0.expect_code(0).await;
    assert_eq!(live["data"]["msg"], json!("[image] look"), "{live}");
    assert_eq!(live["data"]["file"]["id"], json!(id), "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limit_and_quota_refuse_with_413_and_termination_frees_the_quota() {
    let server = TestServer::start_with(|c| {
        c.limits.files.max_file_bytes = 1000;
        c.limits.files.quota_bytes = 1500;
    })
    .await;
    let addr = server.addr;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let auth = bearer(&alice.token);
    let post = |len: &'static str| {
        let auth = auth.clone();
        async move {
            request(
                addr,
                "POST",
                "/files/",
                &[TUS, ("Authorization", &auth), ("Upload-Length", len)],
                b"",
            )
            .await
        }
    };
    let r = post("1001").await;
    assert_refused(&r, 413, "file_too_large");
    assert_eq!(r.json()["code"], json!(4130));
    let r = post("1000").await;
    assert_eq!(r.status, 201);
    let first = r.header("location").expect("location").to_owned();
    let r = post("600").await;
    assert_refused(&r, 413, "over_quota");
    assert_eq!(r.json()["code"], json!(4131));
    // Ending the first upload gives its room back.
    let r = request(
        addr,
        "DELETE",
        &first,
        &[TUS, ("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = request(addr, "HEAD", &first, &[TUS, ("Authorization", &auth)], b"").await;
    assert_eq!(r.status, 404);
    assert_eq!(post("600").await.status, 201);
    // Without a login nothing is created.
    let r = request(
        addr,
        "POST",
        "/files/",
        &[TUS, ("Upload-Length", "10")],
        b"",
    )
    .await;
    assert_refused(&r, 401, "not_logged_in");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                found.extend(files_under(&p));
            } else {
                found.push(p);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_expire_and_unreferenced_files_are_swept() {
    let server = TestServer::start_with(|c| {
        c.limits.files.upload_ttl = Duration::from_millis(300);
        c.limits.files.orphan_grace = Duration::from_millis(300);
        c.files_sweep = Duration::from_millis(100);
    })
    .await;
    let addr = server.addr;
    let mut alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let bob = user_v1(&server, "bob@example.com", "Bob", "pw-b").await;
    let auth = bearer(&alice.token);
    let root = server.config.data_dir.join("files");

    // The same bytes twice are stored once.
    let same = png(2, 2, 50);
    let kept = upload(addr, &alice.token, "a.png", "image/png", &same).await;
    let orphan = upload(addr, &alice.token, "b.png", "image/png", &same).await;
    let lonely = upload(addr, &alice.token, "c.bin", "", b"only here").await;
    assert_eq!(files_under(&root.join("blobs")).len(), 2);
    let ack = send_file(
        &mut alice.client,
        json!({"private_id": bob.ocid}),
        2,
        json!({"id": kept}),
        "",
    )
    .await;
    assert_eq!(ack["code"], json!(103), "{ack}");

    // An upload that stops receiving bytes.
    let path = create(addr, &alice.token, 100, "partial.bin", "").await;
    assert_eq!(
        patch(addr, &alice.token, &path, 0, b"0123456789")
            .await
            .status,
        204
    );
    assert_eq!(files_under(&root.join("staging")).len(), 1);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let head = request(addr, "HEAD", &path, &[TUS, ("Authorization", &auth)], b"").await;
        let orphan_gone = get(
            addr,
            &format!("/files/{orphan}"),
            &[("Authorization", &auth)],
        )
        .await;
        let lonely_gone = get(
            addr,
            &format!("/files/{lonely}"),
            &[("Authorization", &auth)],
        )
        .await;
        if head.status == 404 && orphan_gone.status == 404 && lonely_gone.status == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not swept: upload {}, orphan {}, lonely {}",
            head.status,
            orphan_gone.status,
            lonely_gone.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        files_under(&root.join("staging")).is_empty(),
        "the upload's bytes are gone"
    );
    // The sent file stays, with its bytes (shared with the swept orphan); the lonely file's
    // bytes are gone.
    let r = get(
        addr,
        &format!("/files/{kept}"),
        &[("Authorization", &bearer(&bob.token))],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, same);
    let blobs = files_under(&root.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert!(blobs[0].ends_with(sha256_hex(&same)));
}

/// The directory of the tus-js-client script, with its packages installed (`npm ci` on first
/// use; `.ci/run` installs them up front).
fn tus_client_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tus-client");
    if !dir.join("node_modules/tus-js-client").exists() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js and npm are needed for the tus-js-client test)");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_tus_js_client_uploads_pauses_and_resumes() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let alice = user_v1(&server, "alice@example.com", "Alice", "pw-a").await;
    let dir = tus_client_dir();
    let data: Vec<u8> = (0..300_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &data).expect("write");
    let endpoint = format!("http://{addr}/files/");
    let token = alice.token.clone();
    let path = file.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(dir.join("upload.mjs"))
            .arg(&endpoint)
            .arg(&token)
            .arg(&path)
            .output()
            .expect("node runs")
    })
    .await
    .expect("joined");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tus-js-client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = stdout.trim();
    let path = url
        .strip_prefix(&format!("http://{addr}"))
        .unwrap_or_else(|| panic!("the upload's URL is on this server: {url}"));
    let r = get(addr, path, &[("Authorization", &bearer(&alice.token))]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, data);
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.contains("from-tus-js.bin")),
        "{:?}",
        r.headers
    );
}
