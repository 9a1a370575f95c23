//! The HTTP server and router: health and readiness checks, metrics, and every dialect served
//! over HTTP. A dialect over WebSocket is mounted with one line:
//! `.route(path, ws::route(&app, name, Dialect::new(app.hub.slot())))`; one served per request
//! with its own handler's line, `.route(path, dialect::route(&app))`.
//!
//! [`serve`] runs HTTP/1.1 on each accepted connection with a deadline for every request head
//! (a silent or dribbling client is closed, the WebSocket upgrade request included), and a
//! bounded shutdown: each connection may finish the request in hand within the shutdown
//! deadline, then it is dropped, whatever the client does.

use super::{ClientAddr, Network, ws};
use crate::app::App;
use crate::dialect::ourchat::{V0, V1};
use crate::dialect::{rest, svc};
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// Largest read buffer of an HTTP connection: a request head must fit in it (hyper's smallest
/// allowed is 8 KiB; its default, ~400 KB, would let each slow client pin that much).
const MAX_HTTP_BUFFER: usize = 64 * 1024;

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
        .nest("/api", rest::routes(&app))
        .route(
            "/",
            ws::route_at_root(&app, "ourchat_2024", V1::ourchat_2024(app.hub.slot())),
        )
        .with_state(app.clone())
        .merge(super::files::routes(app.clone()))
        .merge(super::web::routes().with_state(app))
}

/// Serve `router` on every connection `listener` accepts until the server shuts down. Returns
/// when every HTTP connection has ended (connections upgraded to WebSocket are the app's
/// tracker's) and says when shutdown began, so that the caller can hold the rest of shutdown to
/// the same deadline.
pub async fn serve<L>(app: &App, mut listener: L, router: Router) -> Instant
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(app.config.request_head_timeout)
        .max_buf_size(MAX_HTTP_BUFFER);
    let connections = TaskTracker::new();
    let shutdown = app.shutdown.clone();
    let grace = app.config.shutdown_timeout;
    loop {
        let (io, addr) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let service = PerConnection {
            router: router.clone(),
            client: ClientAddr(addr),
        };
        let conn = http
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(client = %addr, error = %e, "HTTP connection ended");
                    }
                }
                () = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    if tokio::time::timeout(grace, conn).await.is_err() {
                        tracing::debug!(
                            client = %addr,
                            "HTTP connection dropped at shutdown: its request was not finished in time"
                        );
                    }
                }
            }
        });
    }
    let began = Instant::now();
    drop(listener);
    connections.close();
    connections.wait().await;
    began
}

/// The router as one connection's service: each request carries the client's address.
#[derive(Clone)]
struct PerConnection {
    router: Router,
    client: ClientAddr,
}

impl hyper::service::Service<Request<Incoming>> for PerConnection {
    type Response = Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.client));
        let mut router = self.router.clone();
        tower_service::Service::call(&mut router, request.map(axum::body::Body::new))
    }
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

/// Who may read `GET /metrics`: clients whose address is in `allow`, and, when `token` is
/// set, only with `Authorization: Bearer <token>`. By default: loopback only, no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsAccess {
    pub allow: Vec<Network>,
    pub token: Option<String>,
}

impl Default for MetricsAccess {
    fn default() -> Self {
        Self {
            allow: Network::loopback(),
            token: None,
        }
    }
}

impl MetricsAccess {
    /// Whether a request from `client` with these headers may read the metrics: `Err` with
    /// the status that refuses it.
    fn check(&self, client: IpAddr, headers: &HeaderMap) -> Result<(), StatusCode> {
        if !Network::any_contains(&self.allow, client) {
            return Err(StatusCode::FORBIDDEN);
        }
        let Some(token) = &self.token else {
            return Ok(());
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if crate::domain::auth::same(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(StatusCode::UNAUTHORIZED)
        }
    }
}

/// `GET /metrics`: every metric in the Prometheus text exposition format (see
/// docs/operations/guide.md for the list), to the clients `--metrics-allow` and
/// `--metrics-token` admit: `403` to another address, `401` without the token.
async fn metrics(
    State(app): State<Arc<App>>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = app.config.metrics_access.check(client.ip(), &headers) {
        tracing::debug!(client = %client, status = status.as_u16(), "metrics refused");
        return status.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.render_metrics(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_access_wants_an_allowed_address_and_the_token_when_one_is_set() {
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let far: IpAddr = "198.51.100.1".parse().expect("ip");
        let none = HeaderMap::new();
        let d = MetricsAccess::default();
        assert_eq!(d.check(local, &none), Ok(()));
        assert_eq!(
            d.check("::ffff:127.0.0.1".parse().expect("ip"), &none),
            Ok(())
        );
        assert_eq!(d.check(far, &none), Err(StatusCode::FORBIDDEN));
        let t = MetricsAccess {
            allow: vec!["0.0.0.0/0".parse().expect("net")],
            token: Some("s3cret".into()),
        };
        assert_eq!(t.check(far, &none), Err(StatusCode::UNAUTHORIZED));
        let mut right = HeaderMap::new();
        right.insert(
            header::AUTHORIZATION,
            "Bearer s3cret".parse().expect("value"),
        );
        assert_eq!(t.check(far, &right), Ok(()));
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::AUTHORIZATION,
            "Bearer s3cre".parse().expect("value"),
        );
        assert_eq!(t.check(far, &wrong), Err(StatusCode::UNAUTHORIZED));
    }
}
