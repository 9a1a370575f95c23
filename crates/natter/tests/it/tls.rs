//! TLS on the real binary: `--tls-cert`/`--tls-key` on the HTTP and pipe ports, and a SIGHUP
//! that swaps the certificate for new connections while those already open carry on.

use crate::common::serve;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn certs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../natter-server/tests/tls")
}

fn der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .expect("a test certificate")
        .to_vec()
}

/// A WebSocket over TLS to `addr` (trusting the test CA), and the certificate the server
/// showed.
async fn wss(addr: &str) -> (Wss, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs_dir().join("ca.pem")).expect("CA"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let shown = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a server certificate")
        .to_vec();
    let (ws, _) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .expect("upgrade");
    (ws, shown)
}

/// A TLS connection to the pipe port at `addr`: the certificate it showed, and its answer to
/// one line.
async fn pipe_over_tls(addr: &str) -> (Vec<u8>, String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs_dir().join("ca.pem")).expect("CA"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake on the pipe port");
    let shown = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a server certificate")
        .to_vec();
    tls.write_all(b"login|nobody|pw\n").await.expect("write");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(tls).read_line(&mut line),
    )
    .await
    .expect("an answer within 5 s")
    .expect("read");
    (shown, line)
}

async fn request(ws: &mut Wss, frame: Value) -> Value {
    ws.send(Message::text(frame.to_string()))
        .await
        .expect("send");
    next(ws).await
}

async fn next(ws: &mut Wss) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("an answer within 5 s")
            .expect("a frame")
            .expect("not an error");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).expect("JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(certs_dir().join("cert-a.pem"), &cert).expect("copy");
    std::fs::copy(certs_dir().join("key.pem"), &key).expect("copy");
    let server = serve(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
        "tls",
    );
    let (mut old, shown) = wss(&server.addr).await;
    assert_eq!(shown, der(&certs_dir().join("cert-a.pem")));
    // The pipe port speaks TLS with the same certificate.
    let (shown, line) = pipe_over_tls(&server.pipe).await;
    assert_eq!(shown, der(&certs_dir().join("cert-a.pem")));
    assert_eq!(line, "login_error|bad_credentials\n");
    let r = request(
        &mut old,
        json!({"code": 4, "email": "a@example.com", "password": "pw", "name": "A"}),
    )
    .await;
    assert_eq!(r["state"], 0, "{r}");
    let r = request(
        &mut old,
        json!({"code": 6, "login_type": 0, "account": "a@example.com", "password": "pw", "ext": 1}),
    )
    .await;
    assert_eq!(r["state"], 0, "{r}");
    let sync = request(&mut old, json!({"code": 107})).await;
    assert_eq!(sync["code"], 106, "sync-done follows the login: {sync}");
    let r = next(&mut old).await;
    assert_eq!(r["code"], 108, "{r}");

    // A new certificate in the same file, and a SIGHUP.
    std::fs::copy(certs_dir().join("cert-b.pem"), &cert).expect("copy");
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .expect("kill")
                .success()
        );
    };
    hup(server.child.id());
    let b = der(&certs_dir().join("cert-b.pem"));
    let mut switched = false;
    for _ in 0..50 {
        let (_, shown) = wss(&server.addr).await;
        if shown == b {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "new connections still see the old certificate");
    let (shown, _) = pipe_over_tls(&server.pipe).await;
    assert_eq!(shown, b, "the pipe port reloads with the HTTP listener");
    // The connection made before the reload carries on.
    let r = request(&mut old, json!({"code": 107})).await;
    assert_eq!(r["code"], 108, "{r}");

    // A broken file on reload: the certificate in use stays.
    std::fs::write(&cert, b"not a certificate").expect("write");
    hup(server.child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, shown) = wss(&server.addr).await;
    assert_eq!(
        shown, b,
        "a bad file does not replace the certificate in use"
    );
}
