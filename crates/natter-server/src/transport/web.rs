//! The browser client: the files of `web/` at the repository root, embedded in the binary and
//! served with ETags, revalidation and a strict Content-Security-Policy. `GET /` (a plain
//! request, not a WebSocket upgrade) is its page; the other files are under `/web/`. The client
//! itself speaks OurChat v1 on `/ws` and uploads with tus at `/files/`, like any other client.
//!
//! Depends on nothing of the server but the router's state type: no dialect, no domain.

use crate::app::App;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// One embedded file: its name under `/web/`, its type and its bytes.
struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $name)),
        }
    };
}

/// Every file of the client. The page is `index.html`, served at `/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("conn.js", "text/javascript; charset=utf-8"),
    asset!("tus.js", "text/javascript; charset=utf-8"),
    asset!("ui.js", "text/javascript; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The ETag of each asset (a SHA-256 prefix of its bytes), computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// `GET /web/{name}`: the client's scripts, style sheet and icon.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route(
        "/web/{name}",
        get(|Path(name): Path<String>, headers: HeaderMap| async move { serve(&name, &headers) }),
    )
}

/// The page at `GET /` (a request that is not a WebSocket upgrade).
pub fn index(headers: &HeaderMap) -> Response {
    serve("index.html", headers)
}

/// Answer with the asset `name`: `304` when `If-None-Match` holds its ETag, `404` for a name
/// that is not one of the client's files.
fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, "no-store")],
            "no such file\n",
        )
            .into_response();
    };
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime))],
            asset.bytes,
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    // Revalidated on every use (a 304 costs a few bytes), so an upgraded server's client is
    // picked up at once; the files are small.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&policy(headers)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    response
}

/// The Content-Security-Policy of the client: scripts and styles only from the server's own
/// files (no inline code), pictures and sound from the server and from the blobs the page makes
/// of chosen files, network access only to this server over HTTP and WebSocket, no framing.
fn policy(headers: &HeaderMap) -> String {
    // WebSocket URLs of this very host, named explicitly: browsers differ on whether `'self'`
    // covers `ws:`. A `Host` that is not a plain host[:port] names nothing.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    let sockets = host.map_or_else(String::new, |h| format!(" ws://{h} wss://{h}"));
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
         media-src 'self' blob:; connect-src 'self'{sockets}; manifest-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_only_a_well_formed_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("chat.example:7878"));
        assert!(
            policy(&h)
                .contains("connect-src 'self' ws://chat.example:7878 wss://chat.example:7878;")
        );
        h.insert(header::HOST, HeaderValue::from_static("evil; script-src *"));
        assert!(policy(&h).contains("connect-src 'self';"));
        assert!(!policy(&h).contains('*'));
    }

    #[test]
    fn every_asset_has_a_distinct_etag() {
        let tags = etags();
        assert_eq!(tags.len(), ASSETS.len());
        for (i, t) in tags.iter().enumerate() {
            assert!(t.starts_with('"') && t.ends_with('"'));
            assert!(!tags[i + 1..].contains(t), "{t}");
        }
    }
}
