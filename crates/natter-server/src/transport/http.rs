//! The HTTP router: health and readiness checks, metrics, and every dialect served over HTTP.
//! A dialect over WebSocket is mounted with one line:
//! `.route(path, ws::route(&app, name, Dialect::new(app.hub.slot())))`; one served per
//! request with its own handler's line, `.route(path, dialect::route(&app))`.

use super::ws;
use crate::app::App;
use crate::dialect::ourchat::{V0, V1};
use crate::dialect::svc;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/ws",
            ws::route(&app, "ourchat_v1", V1::new(app.hub.slot())),
        )
        .route(
            "/ws/v0",
            ws::route(&app, "ourchat_v0", V0::new(app.hub.slot())),
        )
        .route("/svc", svc::route(&app))
        .route(
            "/",
            ws::route_at_root(&app, "ourchat_2024", V1::ourchat_2024(app.hub.slot())),
        )
        .with_state(app.clone())
        .merge(super::files::routes(app))
}

/// `GET /readyz`: `200 ready` when the store commits a write and the bus is connected, else
/// `503` with what is not ready.
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    match app.ready().await {
        Ok(()) => (StatusCode::OK, "ready".to_owned()),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, why)
        }
    }
}

/// `GET /metrics`: every metric in the Prometheus text exposition format (see
/// docs/operations/guide.md for the list).
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.render_metrics(),
    )
}
