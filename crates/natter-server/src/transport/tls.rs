//! TLS on the HTTP/WebSocket listener (rustls): certificates from PEM files, reloaded on
//! demand (SIGHUP) without touching the connections already open, and handshakes done off the
//! accept loop, so a slow or silent client never holds up the others.

use super::{Capped, CappedStream};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections whose handshake is done and that wait for the HTTP server to take them.
const READY_QUEUE: usize = 1024;

/// Where the certificate chain and its private key are (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificate in use, replaced whole by a reload.
pub struct Certs {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Certs {
    /// Read the files.
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or they do not match; the message
    /// names the file.
    pub fn load(files: &TlsFiles) -> Result<Self, String> {
        Ok(Self {
            current: RwLock::new(Arc::new(server_config(files)?)),
            files: files.clone(),
        })
    }

    /// Read the files again; on failure the certificate in use stays.
    ///
    /// # Errors
    /// As [`Certs::load`].
    pub fn reload(&self) -> Result<(), String> {
        let config = Arc::new(server_config(&self.files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn server_config(files: &TlsFiles) -> Result<ServerConfig, String> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "the certificate {} and the key {} do not make a usable pair: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(chain)
}

/// TLS connections whose handshake is done, as the HTTP server takes them.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<CappedStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `capped` until `shutdown`, each handshake in a task of its own with the
    /// certificate in use when the connection arrived.
    pub fn new(mut capped: Capped, certs: Arc<Certs>, shutdown: CancellationToken) -> Self {
        let local = capped
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(async move {
            loop {
                let (tcp, addr, slot) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = capped.next() => accepted,
                };
                if tx.is_closed() {
                    return;
                }
                let acceptor = certs.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let stream = CappedStream { tcp, _slot: slot };
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(client = %addr, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Self { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<CappedStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Reload `certs` on every SIGHUP until `shutdown`.
pub async fn reload_on_hangup(certs: Arc<Certs>, shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; certificates are not reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            match certs.reload() {
                Ok(()) => tracing::info!(
                    cert = %certs.files.cert.display(),
                    "TLS certificate reloaded; new connections use it"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    "TLS certificate not reloaded; the previous one stays in use"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (certs, shutdown);
}
