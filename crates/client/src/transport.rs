//! How bytes reach the relay: TLS by default (certificates checked against a CA file, or
//! trusted on first use and pinned like SSH host keys), plain TCP with `--plaintext`. Both give
//! the same boxed stream, so everything above this module is the same code for both.

use std::path::PathBuf;
use std::sync::Arc;

use p2pchat_secure::tls::{changed_warning, ClientTls, Verdict};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::host_port;
use crate::net::ConnectError;

/// A byte stream to the relay, encrypted or not.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The stream the reader and writer tasks share.
pub type BoxStream = Box<dyn Stream>;

/// How to reach the relay.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP (`--plaintext`).
    Plain,
    /// TLS, checked as the set-up says (shared by every reconnect, so a pin made on the first
    /// connection is checked on the next ones).
    Tls(Arc<ClientTls>),
}

/// Where the relay is and how to reach it.
#[derive(Clone)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS or not.
    pub transport: Transport,
}

/// A connected stream and, for a relay trusted for the first time, the line that says so.
pub struct Opened {
    /// The stream, past the TLS handshake if any.
    pub stream: BoxStream,
    /// What to tell the user about the relay's certificate.
    pub notice: Option<String>,
}

/// Connects to the target and completes the TLS handshake, if any.
pub async fn open(target: &Target) -> Result<Opened, ConnectError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
    // Chat lines are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    let tls = match &target.transport {
        Transport::Plain => {
            return Ok(Opened {
                stream: Box::new(tcp),
                notice: None,
            })
        }
        Transport::Tls(tls) => tls,
    };
    let address = host_port(&target.host, target.port);
    let connector = TlsConnector::from(tls.config.clone());
    let stream = match connector.connect(tls.server_name(), tcp).await {
        Ok(stream) => stream,
        Err(err) => return Err(handshake_error(tls, &address, &err)),
    };
    let notice = match tls.remember() {
        Ok(Some((fingerprint, file))) => Some(format!(
            "🔐 First connection to {address}: trusting its certificate (SHA-256 {fingerprint}) and remembering it in {}",
            file.display()
        )),
        Ok(None) => None,
        Err(err) => Some(format!(
            "⚠️ First connection to {address}: trusting its certificate for now, but it could not be remembered ({err})"
        )),
    };
    Ok(Opened {
        stream: Box::new(stream),
        notice,
    })
}

/// A failed TLS handshake in words: a changed certificate (fatal), a relay that does not
/// speak TLS, or whatever rustls said.
fn handshake_error(tls: &ClientTls, address: &str, err: &std::io::Error) -> ConnectError {
    use tokio_rustls::rustls::Error as TlsError;
    if let Verdict::Changed { pinned, presented } = tls.verdict() {
        let file = tls
            .known_hosts()
            .unwrap_or_else(|| PathBuf::from("known_hosts"));
        return ConnectError::CertificateChanged(changed_warning(
            address, &pinned, &presented, &file,
        ));
    }
    let inner = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>());
    let not_tls = match inner {
        // Bytes that are no TLS record at all: a relay answering in its own framing.
        Some(TlsError::InvalidMessage(_)) => true,
        Some(_) => false,
        // Closed on us mid-handshake: what a relay without TLS does with a ClientHello.
        None => err.kind() == std::io::ErrorKind::UnexpectedEof,
    };
    if not_tls {
        return ConnectError::Handshake(
            "the relay does not speak TLS; if it runs with --plaintext, use --plaintext too".into(),
        );
    }
    match inner {
        Some(TlsError::InvalidCertificate(why)) => ConnectError::Handshake(format!(
            "the relay's certificate was refused ({why:?}); check --ca, or the host name you connect to"
        )),
        _ => ConnectError::Handshake(format!("TLS handshake failed: {err}")),
    }
}

/// Whether bytes a relay sent look like a TLS record (alert, handshake, …) rather than a frame
/// (a p2pchat frame starts with a big-endian length whose first byte is 0 for any sane size).
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(0x14..=0x17))
}
