//! TLS for both ends (rustls, TLS 1.3 only, ring). The relay serves a certificate from
//! `--cert/--key` or a self-signed one it creates in its data dir on first start. The client
//! either checks the certificate against a CA file (`--ca`, the ordinary web PKI rules) or
//! trusts on first use: it remembers each relay's SHA-256 certificate fingerprint in a
//! known-hosts file and refuses a relay whose certificate has changed, as SSH does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::files::{create_private_dir, write_private};
use crate::pinfile::PinFile;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or known-hosts file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or wrong.
        what: String,
    },
    /// rustls refused the configuration (for example a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The self-signed certificate could not be generated.
    #[error("could not create a certificate: {0}")]
    Generate(String),
    /// The relay's host is not a valid TLS server name.
    #[error("{0:?} is not a host name or IP address TLS can check")]
    ServerName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate's SHA-256 fingerprint as `openssl x509 -noout -fingerprint -sha256` prints it
/// (`AB:CD:…`), so an operator can check it with tools they already have.
pub fn fingerprint(certificate_der: &[u8]) -> String {
    Sha256::digest(certificate_der)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The relay's TLS set-up.
pub struct ServerTls {
    /// What to accept connections with.
    pub config: Arc<ServerConfig>,
    /// The certificate's SHA-256 fingerprint, for the log.
    pub fingerprint: String,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// Whether the certificate was created just now.
    pub created: bool,
}

impl ServerTls {
    /// The certificate chain and key in these PEM files (`--cert`, `--key`).
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let chain = read_chain(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|err| TlsError::Pem {
            path: key_path.into(),
            what: format!("no private key ({err})"),
        })?;
        let fingerprint = fingerprint(&chain[0]);
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
            cert_path: cert_path.into(),
            created: false,
        })
    }

    /// The self-signed certificate in `dir` (`cert.pem`, `key.pem`), created there on first use
    /// for these host names (key file 0600, directory 0700).
    pub fn self_signed(dir: &Path, names: Vec<String>) -> Result<Self, TlsError> {
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TlsError::Io { path, source }
        };
        let created = !cert_path.exists() && !key_path.exists();
        if created {
            create_private_dir(dir).map_err(io(dir))?;
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|err| TlsError::Generate(err.to_string()))?;
            write_private(&key_path, generated.signing_key.serialize_pem().as_bytes())
                .map_err(io(&key_path))?;
            write_private(&cert_path, generated.cert.pem().as_bytes()).map_err(io(&cert_path))?;
        }
        let mut tls = Self::from_files(&cert_path, &key_path)?;
        tls.created = created;
        Ok(tls)
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |what: String| TlsError::Pem {
        path: path.into(),
        what,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|err| pem(format!("cannot read certificates ({err})")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem(format!("bad certificate ({err})")))?;
    if chain.is_empty() {
        return Err(pem("no certificate in the file".into()));
    }
    Ok(chain)
}

/// How the client decides to trust a relay's certificate.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Trust on first use, pinned in this known-hosts file.
    KnownHosts(PathBuf),
    /// Certificates issued by the CAs in this PEM file, for the relay's host name.
    Ca(PathBuf),
}

/// Where relays' fingerprints are remembered unless `--known-hosts` says otherwise.
pub fn default_known_hosts() -> Option<PathBuf> {
    Some(dirs::config_dir()?.join("p2pchat").join("known_hosts"))
}

/// What the client learned about the relay's certificate in its last handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A relay not seen before; its fingerprint is pinned once the handshake completes.
    FirstUse {
        /// Its fingerprint.
        fingerprint: String,
    },
    /// The certificate pinned for this relay.
    Known,
    /// A certificate other than the pinned one: the connection was refused.
    Changed {
        /// The fingerprint remembered.
        pinned: String,
        /// The fingerprint presented now.
        presented: String,
    },
    /// Checked against the CA file.
    Ca,
}

/// The client's TLS set-up for one relay address.
pub struct ClientTls {
    /// What to connect with.
    pub config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    pins: Option<Arc<PinVerifier>>,
}

impl ClientTls {
    /// TLS for the relay at `host`:`port`, trusted as `trust` says.
    pub fn new(trust: &Trust, host: &str, port: u16) -> Result<Self, TlsError> {
        let server_name =
            ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.into()))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let (config, pins) = match trust {
            Trust::Ca(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_chain(path)? {
                    roots.add(cert)?;
                }
                (
                    builder.with_root_certificates(roots).with_no_client_auth(),
                    None,
                )
            }
            Trust::KnownHosts(path) => {
                let file = PinFile::load(path).map_err(|source| TlsError::Io {
                    path: path.clone(),
                    source,
                })?;
                let verifier = Arc::new(PinVerifier {
                    address: format!("{host}:{port}"),
                    file: Mutex::new(file),
                    verdict: Mutex::new(None),
                    provider: provider(),
                });
                let config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier.clone())
                    .with_no_client_auth();
                (config, Some(verifier))
            }
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
            pins,
        })
    }

    /// The name the relay's certificate is checked against (with `--ca`).
    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }

    /// What the last handshake learned about the certificate.
    pub fn verdict(&self) -> Verdict {
        match &self.pins {
            Some(pins) => crate::lock(&pins.verdict).clone().unwrap_or(Verdict::Known),
            None => Verdict::Ca,
        }
    }

    /// After a completed handshake with a relay seen for the first time: pins its fingerprint
    /// and returns it (and the known-hosts file), so the client can say so.
    pub fn remember(&self) -> Result<Option<(String, PathBuf)>, TlsError> {
        let Some(pins) = &self.pins else {
            return Ok(None);
        };
        let Verdict::FirstUse { fingerprint } = self.verdict() else {
            return Ok(None);
        };
        let mut file = crate::lock(&pins.file);
        file.set(&pins.address, &fingerprint)
            .map_err(|source| TlsError::Io {
                path: file.path().into(),
                source,
            })?;
        *crate::lock(&pins.verdict) = Some(Verdict::Known);
        Ok(Some((fingerprint, file.path().into())))
    }

    /// The known-hosts file, when trusting on first use.
    pub fn known_hosts(&self) -> Option<PathBuf> {
        self.pins
            .as_ref()
            .map(|pins| crate::lock(&pins.file).path().to_path_buf())
    }
}

/// Trust on first use: accepts the certificate pinned for the address, or any certificate for
/// an address with no pin yet; refuses every other. The handshake's signature is still checked,
/// so the relay must hold the certificate's key.
#[derive(Debug)]
struct PinVerifier {
    address: String,
    file: Mutex<PinFile>,
    verdict: Mutex<Option<Verdict>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        let pinned = crate::lock(&self.file)
            .get(&self.address)
            .map(str::to_owned);
        let verdict = match pinned {
            None => Verdict::FirstUse {
                fingerprint: presented,
            },
            Some(pinned) if pinned.eq_ignore_ascii_case(&presented) => Verdict::Known,
            Some(pinned) => Verdict::Changed { pinned, presented },
        };
        let refused = matches!(verdict, Verdict::Changed { .. });
        *crate::lock(&self.verdict) = Some(verdict);
        if refused {
            return Err(rustls::Error::General(
                "the relay's certificate is not the one pinned for it".into(),
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The explanation a client prints when a relay's certificate is not the pinned one.
pub fn changed_warning(address: &str, pinned: &str, presented: &str, file: &Path) -> String {
    format!(
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: THE RELAY'S CERTIFICATE HAS CHANGED!        @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         The relay at {address} presented a certificate with SHA-256 fingerprint\n  {presented}\n\
         but the one you trusted before has\n  {pinned}\n\
         Someone may be intercepting your connection (a man-in-the-middle attack), or the\n\
         relay's operator replaced its certificate. p2pchat did not connect.\n\
         Ask the operator for the fingerprint the server logs when it starts. If it is the new\n\
         one above, delete the line starting with \"{address}\" from\n  {}\n\
         and connect again.",
        file.display()
    )
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
