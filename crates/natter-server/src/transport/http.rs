//! The axum router: health check, metrics and the WebSocket endpoints of each dialect.

use crate::app::App;
use crate::domain::Dialect;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/ws", get(ws_v1))
        .route("/ws/v0", get(ws_v0))
        .with_state(app)
}

/// `GET /metrics`: `{"rss_bytes": .., "connections": ..}`, read by `natter bench` to measure
/// memory per connection. `rss_bytes` is the process's resident set (`null` where
/// `/proc/self/status` cannot be read); `connections` counts logged-in connections on this node.
async fn metrics(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "rss_bytes": rss_bytes(),
        "connections": app.hub.connections(),
    }))
}

/// The resident set size from `VmRSS` in `/proc/self/status` (given in KiB there, so no page
/// size needs to be known).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn ws_v1(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    super::ws::upgrade(app, ws, Dialect::V1)
}

async fn ws_v0(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    super::ws::upgrade(app, ws, Dialect::V0)
}
