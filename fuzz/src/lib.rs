//! The checks every fuzz target runs on one input, one function per target.
//!
//! Each decoder of natter's wire contract (`natter-proto`) gets arbitrary bytes and must answer
//! without panicking, in time bounded by the input's length, and with a reply the client can
//! read: every refusal a dialect builds from a decoding error must itself be well-formed (JSON
//! for the JSON dialects, one line for the pipe dialect). Round trips (pipe escaping) must give
//! back what went in.
//!
//! The fuzz targets in `fuzz_targets/` call these under libFuzzer; natter-proto's test
//! `fuzz_corpus` includes this file and runs every seed and every input that once failed
//! through the same checks on the stable toolchain, so CI keeps checking them.

use natter_proto::json::fields;
use natter_proto::ourchat::{v0, v1};
use natter_proto::{pipe, rest, svc, tus};
use serde_json::Value;

/// The checks of one target.
pub type Check = fn(&[u8]);

/// Every target by its name, as the fuzz targets and the corpus directories name them.
pub const TARGETS: &[(&str, Check)] = &[
    ("ourchat_v1", ourchat_v1),
    ("ourchat_v0", ourchat_v0),
    ("json_fields", json_fields),
    ("svc_body", svc_body),
    ("rest_body", rest_body),
    ("pipe_line", pipe_line),
    ("pipe_escape", pipe_escape),
    ("tus_headers", tus_headers),
];

fn assert_json(frame: &str, what: &str) {
    assert!(
        serde_json::from_str::<Value>(frame).is_ok_and(|v| v.is_object()),
        "{what} is not a JSON object: {frame:?}"
    );
}

/// An OurChat v1 text frame (both flavours), as `/ws` and `/` decode it; a refusal must be a
/// JSON frame carrying the request's code when the frame named one.
pub fn ourchat_v1(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = v1::decode(text) {
        for flavour in [v1::Flavour::Seed, v1::Flavour::OurChat2024] {
            let reply = v1::finish_as(
                v1::error_reply(0, e.code, &e.error),
                e.request_id.as_ref(),
                flavour,
            );
            assert_json(&reply, "a v1 error reply");
        }
    }
}

/// An OurChat draft v0 text frame, as `/ws/v0` decodes it.
pub fn ourchat_v0(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = v0::decode(text) {
        let reply = natter_proto::ourchat::finish(
            v0::error_reply(0, e.code, &e.error),
            e.request_id.as_ref(),
        );
        assert_json(&reply, "a v0 error reply");
    }
}

/// The envelope readers both OurChat versions share: the head of a frame refused before
/// decoding, and the object parser; they must agree on a valid `request_id`.
pub fn json_fields(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let head = fields::head_of(text);
    if let Some(id) = &head.request_id {
        assert!(fields::valid_request_id(id), "head_of kept {id}");
    }
    if let Ok((_, parsed)) = fields::parse_object(text) {
        assert!(parsed.code.is_some(), "an accepted frame has a code");
        if let Some(id) = &parsed.request_id {
            assert!(fields::valid_request_id(id));
        }
    }
}

/// A `POST /svc` body; a refusal is 400 or 404 with a JSON body.
pub fn svc_body(data: &[u8]) {
    if let Err(e) = svc::decode(data) {
        assert!(matches!(e.status(), 400 | 404), "status {}", e.status());
        let body = svc::error(e.status(), e.message());
        assert_json(&String::from_utf8_lossy(&body), "a svc error body");
    }
}

/// A REST dialect body: a route's JSON object, a `POST /api/message` item and a push packet.
pub fn rest_body(data: &[u8]) {
    let _ = rest::object(data);
    if let Ok(item) = serde_json::from_slice::<Value>(data)
        .map_err(|_| ())
        .and_then(|v| rest::outgoing(&v).map_err(|_| ()))
    {
        assert!(item.chat.is_some() || item.to.is_some());
        assert!(item.kind <= 7);
    }
    match rest::packet(data) {
        Ok(rest::Packet::Messages(list)) => assert!(!list.is_empty()),
        Ok(_) => {}
        Err(rest::BadPacket(why)) => {
            let reply = rest::push(0, "id", Value::String(why));
            assert_json(&String::from_utf8_lossy(&reply), "a push failure packet");
        }
    }
}

/// A pipe line (without its newline) as the pipe dialect decodes it; a refusal is one line.
pub fn pipe_line(data: &[u8]) {
    if let Ok(line) = pipe::split(data) {
        assert!(!line.command.is_empty());
    }
    if let Err(refused) = pipe::decode(data) {
        let reply = refused.line();
        assert!(
            !reply.contains(['\n', '\r']),
            "a refusal is one line: {reply:?}"
        );
    }
}

/// Pipe escaping: any texts, escaped into fields of a line, split back into the same texts,
/// and an escaped field never holds a bare separator or line break.
pub fn pipe_escape(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let texts: Vec<&str> = text.split('\u{0}').collect();
    let mut line = pipe::LineBuf::new("cmd");
    for t in &texts {
        let escaped = pipe::escape(t);
        assert!(
            !escaped.contains(['\n', '\r']),
            "escaped {t:?} as {escaped:?}"
        );
        line = line.field(t);
    }
    let line = line.finish();
    let split = pipe::split(line.as_bytes());
    let Ok(split) = split else {
        panic!("the line {line:?} built from {texts:?} does not split: {split:?}");
    };
    assert_eq!(split.command, "cmd");
    assert_eq!(split.fields, texts, "line {line:?}");
}

/// The tus and download headers: one header value per line of the input, in the order
/// `Upload-Metadata`, `Upload-Checksum`, `Range`, `Upload-Length`; the file size for the range
/// is the length of the input.
pub fn tus_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let metadata = lines.next().unwrap_or_default();
    let checksum = lines.next().unwrap_or_default();
    let range = lines.next();
    let number = lines.next().unwrap_or_default();
    if let Ok(pairs) = tus::metadata(metadata) {
        let _ = tus::meta(&pairs, &["filename", "name"]);
    }
    let _ = tus::checksum(checksum);
    let _ = tus::number(number);
    let size = data.len() as u64;
    for size in [size, 0, 1, u64::MAX] {
        match tus::wanted(range, size) {
            tus::Wanted::Part { start, end } => {
                assert!(
                    start <= end && end < size,
                    "{range:?} of {size}: {start}-{end}"
                );
            }
            tus::Wanted::Whole | tus::Wanted::Unsatisfiable => {}
        }
    }
}
