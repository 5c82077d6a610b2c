//! What a bench run needs to speak to the relay as the client does: a TLS connector that trusts
//! whatever relay it is pointed at (trust on first use, pinned in a known-hosts file of a
//! temporary directory, so the user's own file is never touched), and one identity per client,
//! derived from a per-run random secret and the client's place in the run, so no two clients of
//! any run (whose nicknames also carry the run's prefix) ever claim the same nickname's key.

use std::sync::Arc;

use anyhow::{Context, Result};
use p2pchat_secure::tls::{ClientTls, Trust};
use p2pchat_secure::Identity;
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::args::Security;
use crate::conn::Link;

/// TLS set-up for one relay address.
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
    /// Holds the known-hosts file; deleted with the run.
    _dir: tempfile::TempDir,
}

/// The run's security set-up, shared by every scenario.
pub struct RunSecurity {
    /// What protects the traffic.
    pub mode: Security,
    tls: Option<Tls>,
    /// Random per run: the source of every client's identity.
    secret: [u8; 32],
}

impl RunSecurity {
    /// The set-up for `mode` against the relay at `host`:`port` (`port` only names the pin).
    pub fn new(mode: Security, host: &str, port: u16) -> Result<Self> {
        let mut secret = [0; 32];
        getrandom::fill(&mut secret).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
        let tls = if mode.tls() {
            let dir = tempfile::Builder::new()
                .prefix("p2pchat-bench-")
                .tempdir()
                .context("creating a temporary directory for the known-hosts file")?;
            let trust = Trust::KnownHosts(dir.path().join("known_hosts"));
            let client = ClientTls::new(&trust, host, port).context("setting up TLS")?;
            let mut config = (*client.config).clone();
            // Every bench client stands for a client process of its own, which has no session
            // to resume: each connection makes a full handshake.
            config.resumption = Resumption::disabled();
            Some(Tls {
                connector: TlsConnector::from(Arc::new(config)),
                name: client.server_name(),
                _dir: dir,
            })
        } else {
            None
        };
        Ok(Self { mode, tls, secret })
    }

    /// A prefix unique to this run for nicknames, channels and subjects: `b` and 8 hex digits.
    pub fn run_id(&self) -> String {
        let word = u32::from_be_bytes([
            self.secret[0],
            self.secret[1],
            self.secret[2],
            self.secret[3],
        ]);
        format!("b{word:08x}")
    }

    /// Whether message bodies are end-to-end envelopes.
    pub fn e2e(&self) -> bool {
        self.mode.e2e()
    }

    /// The connection to use over `tcp`: TLS (handshake done) in TLS mode, else `tcp` itself.
    pub async fn wrap(&self, tcp: TcpStream) -> Result<Link> {
        match &self.tls {
            Some(tls) => {
                let stream = tls
                    .connector
                    .connect(tls.name.clone(), tcp)
                    .await
                    .context("TLS handshake with the relay failed (is it started with --plaintext? then pass --plaintext)")?;
                Ok(Link::Tls(Box::new(stream)))
            }
            None => Ok(Link::Tcp(tcp)),
        }
    }

    /// The identity of client `index` of the scenario tagged `tag`.
    pub fn identity(&self, tag: char, index: usize) -> Identity {
        Identity::from_seed(&seed(&self.secret, tag, index))
    }
}

/// The seed of client `index` of scenario `tag`: the run's secret with the tag and index mixed
/// into its last 12 bytes (distinct clients, distinct seeds; Ed25519 hashes the seed anyway).
fn seed(secret: &[u8; 32], tag: char, index: usize) -> [u8; 32] {
    let mut seed = *secret;
    let tag = u32::from(tag).to_be_bytes();
    let index = (index as u64).to_be_bytes();
    for (slot, byte) in seed[20..].iter_mut().zip(tag.iter().chain(&index)) {
        *slot ^= byte;
    }
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_of_a_run_has_its_own_key() {
        let secret = [9; 32];
        let keys: std::collections::HashSet<_> = ['t', 'p']
            .into_iter()
            .flat_map(|tag| (0..500).map(move |k| seed(&secret, tag, k)))
            .map(|seed| Identity::from_seed(&seed).public_key())
            .collect();
        assert_eq!(keys.len(), 1000);
        assert_ne!(seed(&secret, 't', 3), seed(&[8; 32], 't', 3));
    }

    #[test]
    fn plaintext_needs_no_tls_and_names_the_run() {
        let run = RunSecurity::new(Security::Plaintext, "127.0.0.1", 1).unwrap();
        assert!(run.tls.is_none() && !run.e2e());
        let id = run.run_id();
        assert!(id.len() == 9 && id.starts_with('b'), "{id}");
        let tls = RunSecurity::new(Security::TlsE2e, "127.0.0.1", 1).unwrap();
        assert!(tls.tls.is_some() && tls.e2e());
    }
}
