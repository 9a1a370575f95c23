//! TLS: the WebSocket endpoints over `wss://` with a test certificate, and PostgreSQL with
//! `sslmode=require`.

use crate::common::TestServer;
use crate::common::services::{self, TestDb};
use futures_util::{SinkExt, StreamExt};
use natter_server::store::Store;
use natter_server::transport::tls::TlsFiles;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

/// The test certificates (see tests/tls/README.md).
pub fn test_certs(cert: &str) -> TlsFiles {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls");
    TlsFiles {
        cert: dir.join(cert),
        key: dir.join("key.pem"),
    }
}

/// A TLS client trusting only the test CA.
pub fn connector() -> tokio_rustls::TlsConnector {
    let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls/ca.pem");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("the test CA"))
        .expect("a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn wss(
    addr: SocketAddr,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = connector()
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("the TLS handshake with the test certificate");
    let (ws, _) = tokio_tungstenite::client_async(format!("wss://localhost{path}"), tls)
        .await
        .expect("the WebSocket upgrade over TLS");
    ws
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("a frame")
            .expect("not an error");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_over_tls_with_a_test_certificate() {
    let server = TestServer::start_with(|c| c.tls = Some(test_certs("cert-a.pem"))).await;
    let mut ws = wss(server.addr, "/ws").await;
    ws.send(Message::text(
        json!({"code": 4, "email": "a@example.com", "password": "pw", "name": "A"}).to_string(),
    ))
    .await
    .expect("send");
    let r = next_json(&mut ws).await;
    assert_eq!(
        (r["code"].clone(), r["state"].clone()),
        (json!(5), json!(0)),
        "{r}"
    );
    ws.send(Message::text(
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw", "ext": 1})
            .to_string(),
    ))
    .await
    .expect("send");
    assert_eq!(next_json(&mut ws).await["state"], json!(0));
    assert_eq!(next_json(&mut ws).await["code"], json!(106));
    let mut v0 = wss(server.addr, "/ws/v0").await;
    v0.send(Message::text(json!({"code": 12}).to_string()))
        .await
        .expect("send");
    assert!(next_json(&mut v0).await["code"].is_i64());

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = natter_client::http::get(server.addr, "natter", "/healthz").await;
    assert!(
        plain.is_err(),
        "plain HTTP was answered on the TLS port: {plain:?}"
    );
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let missing = dir.path().join("missing.pem");
    let config = natter_server::Config {
        data_dir: dir.path().join("data"),
        tls: Some(TlsFiles {
            cert: missing.clone(),
            key: test_certs("cert-a.pem").key,
        }),
        ..natter_server::Config::default()
    };
    let err = natter_server::run(config, listener, tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("no certificate, no start");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_with_sslmode_require() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let url = format!("{}?sslmode=require", db.url);
    match natter_server::store::postgres::PgStore::open(&url, 2).await {
        Ok(store) => {
            store
                .check_write("tls-test", 1)
                .await
                .expect("a write over TLS");
            store.close().await;
        }
        Err(e) if e.to_string().contains("does not support SSL") => {
            services::say(&format!(
                "SKIPPED postgres_with_sslmode_require: the PostgreSQL server has SSL off ({e})"
            ));
        }
        Err(e) => panic!("sslmode=require failed: {e}"),
    }
}
