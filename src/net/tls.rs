//! TLS on both sides of the router: for clients, the server certificate and key from the
//! config (`[server.tls]`), reloadable without dropping connections ([`TlsConfig::reload`],
//! on SIGHUP); towards MariaDB, the CA, optional client certificate and name to verify
//! (`[backend.tls]`, [`BackendTls`]). Both streams start in clear text and may switch to
//! TLS after an SSLRequest, as the MySQL protocol does ([`MaybeTls`]: [`ClientIo`],
//! [`BackendIo`]).
//!
//! rustls with the `ring` provider; TLS 1.2 and 1.3 only (clients: 1.3 only with
//! `min_version = "1.3"`).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwapOption;
use bytes::BytesMut;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// What `[server.tls]` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Accept TLS 1.3 only (else 1.2 and 1.3).
    pub tls13_only: bool,
}

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("the certificate and key cannot serve TLS: {0}")]
    Rejected(String),
}

/// The acceptor clients' TLS handshakes use now; replaced whole by a reload, so a
/// handshake in progress finishes with the pair it started with.
pub struct TlsConfig {
    files: std::sync::Mutex<TlsFiles>,
    acceptor: ArcSwapOption<TlsAcceptor>,
}

/// A certificate and key read and accepted by rustls, ready to replace the ones served
/// ([`TlsConfig::install`]); built first so that a config reload can fail as a whole.
pub struct PreparedTls {
    files: TlsFiles,
    acceptor: TlsAcceptor,
}

impl PreparedTls {
    /// Reads the files named in `files` and builds the acceptor.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(PreparedTls { files, acceptor })
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field(
                "files",
                &*self.files.lock().unwrap_or_else(|e| e.into_inner()),
            )
            .finish()
    }
}

impl TlsConfig {
    /// Loads the pair; fails if either file is unusable (the router must not start
    /// without the TLS it was told to serve).
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(Arc::new(TlsConfig {
            files: std::sync::Mutex::new(files),
            acceptor: ArcSwapOption::from_pointee(acceptor),
        }))
    }

    /// Reads the files again (a renewed certificate). On error the current pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let fresh = acceptor(&files)?;
        self.acceptor.store(Some(Arc::new(fresh)));
        Ok(())
    }

    /// Serves a prepared pair (perhaps other files, another minimum version) from the
    /// next handshake on; handshakes under way finish with the pair they began with.
    pub fn install(&self, prepared: PreparedTls) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = prepared.files;
        self.acceptor.store(Some(Arc::new(prepared.acceptor)));
    }

    /// The acceptor for a new handshake.
    pub fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.acceptor.load_full()
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A PEM certificate chain and its private key (the router's own, or its client
/// certificate towards MariaDB).
fn certificate_and_key(
    cert_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| file_error(cert_file, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert_file, e))?;
    if certs.is_empty() {
        return Err(file_error(cert_file, "no PEM certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| file_error(key_file, format!("no usable PEM private key: {e}")))?;
    Ok((certs, key))
}

/// The crypto provider of both sides: ring, not aws-lc-rs (rustls' default, which needs
/// cmake and a long C build); its deprecation is about post-quantum key exchange, which
/// MySQL clients and servers do not offer.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let (certs, key) = certificate_and_key(&files.cert_file, &files.key_file)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if files.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Rejected(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rejected(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A byte stream that starts in clear text (`P`) and may switch to TLS (`T`) — the MySQL
/// way, after an SSLRequest. The match on each read and write is the whole cost on the
/// relay path.
#[derive(Debug)]
pub enum MaybeTls<P, T> {
    /// Clear text.
    Plain(P),
    /// After the TLS handshake.
    Tls(Box<T>),
    /// Only while switching (a failed switch leaves it so: the connection is dropped).
    Switching,
}

impl<P, T> MaybeTls<P, T> {
    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// The clear-text stream, to start TLS on; `Switching` is left in its place until the
    /// handshake puts the TLS stream there.
    fn take_plain(&mut self) -> io::Result<P> {
        match std::mem::replace(self, MaybeTls::Switching) {
            MaybeTls::Plain(stream) => Ok(stream),
            _ => Err(io::Error::other("TLS was started twice")),
        }
    }
}

/// A client's transport: clear text until an SSLRequest, then TLS (server side).
pub type ClientTransport<S> = MaybeTls<S, tokio_rustls::server::TlsStream<Rewind<S>>>;

/// A client's byte stream: its transport, and the compressed protocol on top once the
/// client asked for it (`CLIENT_COMPRESS`, after the login's OK).
pub type ClientIo<S> = super::Compressible<ClientTransport<S>>;

impl<S: AsyncRead + AsyncWrite + Unpin> ClientTransport<S> {
    /// Runs the server side of a TLS handshake on the clear-text stream; `read_ahead`
    /// holds bytes already read past the SSLRequest (the start of the client's hello).
    pub async fn start_tls(
        &mut self,
        acceptor: &TlsAcceptor,
        read_ahead: BytesMut,
    ) -> io::Result<()> {
        let inner = self.take_plain()?;
        let tls = acceptor
            .accept(Rewind {
                ahead: read_ahead,
                inner,
            })
            .await?;
        *self = MaybeTls::Tls(Box::new(tls));
        Ok(())
    }
}

fn switching() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the TLS handshake failed")
}

impl<P, T> AsyncRead for MaybeTls<P, T>
where
    P: AsyncRead + Unpin,
    T: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Switching => Poll::Ready(Err(switching())),
        }
    }
}

impl<P, T> AsyncWrite for MaybeTls<P, T>
where
    P: AsyncWrite + Unpin,
    T: AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Switching => Poll::Ready(Err(switching())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Switching => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Switching => Poll::Ready(Ok(())),
        }
    }
}

/// A stream that first yields bytes read ahead of it.
#[derive(Debug)]
pub struct Rewind<S> {
    ahead: BytesMut,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if super::read_buffered(&mut this.ahead, buf) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// TLS to the MariaDB servers (`[backend.tls]`): the CA their certificates must chain
/// to, an optional client certificate, and the name to verify (default: each server's
/// host). Host names are always verified; there is no switch to turn that off.
pub struct BackendTls {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<rustls_pki_types::ServerName<'static>>,
}

impl std::fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl BackendTls {
    /// Loads the CA (and the client certificate and key, if given).
    pub fn load(
        ca_file: &Path,
        client: Option<(&Path, &Path)>,
        server_name: Option<&str>,
    ) -> Result<Arc<Self>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| file_error(ca_file, e))? {
            let cert = cert.map_err(|e| file_error(ca_file, e))?;
            roots
                .add(cert)
                .map_err(|e| file_error(ca_file, format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(file_error(ca_file, "no PEM certificate in it"));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .map_err(|e| TlsError::Rejected(e.to_string()))?
            .with_root_certificates(roots);
        let config = match client {
            Some((cert_file, key_file)) => {
                let (chain, key) = certificate_and_key(cert_file, key_file)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Rejected(e.to_string()))?
            }
            None => builder.with_no_client_auth(),
        };
        let server_name = server_name
            .map(|n| {
                rustls_pki_types::ServerName::try_from(n.to_string())
                    .map_err(|e| TlsError::Rejected(format!("server_name {n:?}: {e}")))
            })
            .transpose()?;
        Ok(Arc::new(BackendTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        }))
    }

    /// The name a server at `host` must prove.
    fn name_for(&self, host: &str) -> io::Result<rustls_pki_types::ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?}: {e}")))
    }
}

/// A TCP socket that can be moved to another thread's runtime in place, also from under
/// a TLS session (pooled backend connections follow the session that borrows them).
#[derive(Debug)]
pub struct Rehomable(Option<tokio::net::TcpStream>);

impl Rehomable {
    /// Registers the socket with the calling thread's runtime.
    pub fn rehome(&mut self) -> io::Result<()> {
        let stream = self
            .0
            .take()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "socket lost"))?;
        let std = stream.into_std()?;
        self.0 = Some(tokio::net::TcpStream::from_std(std)?);
        Ok(())
    }

    /// Whether the server closed the connection or sent something unasked (an idle
    /// connection killed, timed out by `wait_timeout`, or its server restarted): a peek
    /// that never waits — no round trip, nothing consumed. Data or EOF both mean the
    /// connection cannot be lent out.
    pub fn looks_closed(&self) -> bool {
        let Some(stream) = &self.0 else {
            return true;
        };
        // The socket is non-blocking (tokio's): the peek answers at once.
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(stream).peek(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            // EOF (0), unasked bytes, or a socket error.
            _ => true,
        }
    }

    /// Whether the runtime's reactor saw the socket readable since a read last drained it
    /// (tokio clears read readiness on a short read or `WouldBlock`); no syscall.
    pub fn may_have_input(&self) -> bool {
        let Some(stream) = &self.0 else {
            return true;
        };
        // Nobody waits to read an idle connection: the no-op waker replaces none.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        stream.poll_read_ready(&mut cx).is_ready()
    }

    fn get(&mut self) -> io::Result<&mut tokio::net::TcpStream> {
        self.0
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "socket lost"))
    }
}

impl AsyncRead for Rehomable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().get() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Rehomable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().get() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().get() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().get() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// A backend's byte stream: clear text, or TLS after the SSLRequest when `[backend.tls]`
/// is configured (client side).
pub type BackendIo = MaybeTls<Rehomable, tokio_rustls::client::TlsStream<Rehomable>>;

impl BackendIo {
    /// A connected socket, clear text for now.
    pub fn plain(stream: tokio::net::TcpStream) -> Self {
        MaybeTls::Plain(Rehomable(Some(stream)))
    }

    /// See [`Rehomable::looks_closed`] (under TLS: the socket below it).
    pub fn looks_closed(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.looks_closed(),
            MaybeTls::Tls(t) => t.get_ref().0.looks_closed(),
            MaybeTls::Switching => true,
        }
    }

    /// See [`Rehomable::may_have_input`] (under TLS: the socket below it).
    pub fn may_have_input(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.may_have_input(),
            MaybeTls::Tls(t) => t.get_ref().0.may_have_input(),
            MaybeTls::Switching => true,
        }
    }

    /// Registers the socket with the calling thread's runtime (TLS state kept).
    pub fn rehome(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.rehome(),
            MaybeTls::Tls(t) => t.get_mut().0.rehome(),
            MaybeTls::Switching => Err(switching()),
        }
    }

    /// The client side of a TLS handshake with the server at `host` (after the
    /// SSLRequest was sent).
    pub async fn start_tls(&mut self, tls: &BackendTls, host: &str) -> io::Result<()> {
        let name = tls.name_for(host)?;
        let stream = self.take_plain()?;
        let tls = tls.connector.connect(name, stream).await?;
        *self = MaybeTls::Tls(Box::new(tls));
        Ok(())
    }
}
