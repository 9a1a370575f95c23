//! The axum router: health check and the WebSocket endpoints of each dialect.

use crate::app::App;
use crate::domain::Dialect;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws", get(ws_v1))
        .route("/ws/v0", get(ws_v0))
        .with_state(app)
}

async fn ws_v1(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    super::ws::upgrade(app, ws, Dialect::V1)
}

async fn ws_v0(State(app): State<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    super::ws::upgrade(app, ws, Dialect::V0)
}
