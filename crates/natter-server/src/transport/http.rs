//! The HTTP router: health check, metrics, and every dialect served over HTTP. A dialect over
//! WebSocket is mounted with one line: `.route(path, ws::route(Dialect::new(app.hub.slot())))`.

use super::ws;
use crate::app::App;
use crate::dialect::ourchat::{V0, V1};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ws", ws::route(V1::new(app.hub.slot())))
        .route("/ws/v0", ws::route(V0::new(app.hub.slot())))
        .with_state(app)
}

/// `GET /readyz`: `200 ready` when the store commits a write and the bus is connected, else
/// `503` with what is not ready.
async fn readyz(State(app): State<Arc<App>>) -> (axum::http::StatusCode, String) {
    match app.ready().await {
        Ok(()) => (axum::http::StatusCode::OK, "ready".to_owned()),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, why)
        }
    }
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
