//! What the client sets up before it connects: the identity key (created on first run), how to
//! reach the relay (TLS trust or `--plaintext`), and the file of companions' pinned keys.
//! Every failure here is one sentence for the user and exit status 1.

use std::path::PathBuf;
use std::sync::Arc;

use p2pchat_secure::tls::{default_known_hosts, ClientTls, Trust};
use p2pchat_secure::{identity, key_fingerprint, to_hex, Identity};

use crate::app::{Line, Style};
use crate::keys::{companions_file, FilePins};
use crate::transport::{Target, Transport};
use crate::Options;

/// The warning `--plaintext` prints on every start.
pub const PLAINTEXT_WARNING: &str = "⚠️ --plaintext: this connection is not encrypted; anyone on the network path can see who talks to whom (message texts stay end-to-end encrypted)";

/// Everything the client needs before connecting.
pub struct Setup {
    /// This client's identity.
    pub identity: Identity,
    /// Where the relay is and how to reach it.
    pub target: Target,
    /// Companions' pinned keys.
    pub pins: FilePins,
    /// Lines to show before connecting (a created identity, `--plaintext`).
    pub notices: Vec<Line>,
    /// Where offers are recorded to survive a restart (next to the known hosts).
    pub outgoing: std::path::PathBuf,
}

/// Reads or creates what `options` point at.
pub fn prepare(options: &Options) -> Result<Setup, String> {
    let mut notices = Vec::new();
    let path = identity_path(options.identity.clone())?;
    let (identity, created) = Identity::load_or_create(&path)
        .map_err(|err| format!("Could not load your identity key: {err}"))?;
    if created {
        notices.push(Line {
            style: Style::Notice,
            text: format!(
                "🔑 Created your identity key in {} (fingerprint {})",
                path.display(),
                key_fingerprint(&identity.public_key())
            ),
        });
    }
    let known_hosts = match &options.known_hosts {
        Some(path) => path.clone(),
        None => default_known_hosts()
            .ok_or("No configuration directory to remember relays in; pass --known-hosts FILE")?,
    };
    let transport = if options.plaintext {
        notices.push(Line {
            style: Style::Error,
            text: PLAINTEXT_WARNING.into(),
        });
        Transport::Plain
    } else {
        let trust = match &options.ca {
            Some(ca) => Trust::Ca(ca.clone()),
            None => Trust::KnownHosts(known_hosts.clone()),
        };
        let tls = ClientTls::new(&trust, &options.host, options.port)
            .map_err(|err| format!("Could not set up TLS: {err}"))?;
        Transport::Tls(Arc::new(tls))
    };
    let companions = companions_file(&known_hosts);
    let pins = FilePins::load(&companions).map_err(|err| {
        format!(
            "Could not read your companions' keys in {}: {err}",
            companions.display()
        )
    })?;
    Ok(Setup {
        identity,
        target: Target {
            host: options.host.clone(),
            port: options.port,
            transport,
        },
        pins,
        notices,
        outgoing: known_hosts.with_file_name("outgoing"),
    })
}

/// `--identity`, or the default place.
fn identity_path(given: Option<PathBuf>) -> Result<PathBuf, String> {
    given.or_else(identity::default_path).ok_or_else(|| {
        "No configuration directory to keep your identity key in; pass --identity FILE".into()
    })
}

/// `p2pchat client --show-identity`: prints the public key, its fingerprint and the file
/// (creating the identity if there is none yet); returns the exit status.
pub fn show_identity(given: Option<PathBuf>) -> i32 {
    let loaded = identity_path(given).and_then(|path| {
        Identity::load_or_create(&path)
            .map(|(identity, created)| (identity, created, path))
            .map_err(|err| format!("Could not load your identity key: {err}"))
    });
    match loaded {
        Ok((identity, created, path)) => {
            let key = identity.public_key();
            if created {
                println!("🔑 Created your identity key in {}", path.display());
            }
            println!("🔑 Your identity key: {}", to_hex(&key));
            println!("   Fingerprint: {}", key_fingerprint(&key));
            println!("   File: {}", path.display());
            0
        }
        Err(err) => {
            eprintln!("❌ {err}");
            1
        }
    }
}
