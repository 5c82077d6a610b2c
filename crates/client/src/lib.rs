//! The p2pchat terminal client.
//!
//! `app` decides what happens (pure; `events` are its inputs and outputs), `input` reads
//! commands (pure), `keys` remembers companions' keys, `net` and `transport` talk to the relay
//! (TLS by default), `startup` loads the identity and trust settings, `ui` draws and reads the
//! terminal; `run` sets them up and `chat` runs the loop that wires them together and owns the
//! timers: the heartbeat, the reconnect backoff and the wait for acks when leaving.

pub mod app;
mod backoff;
mod chat;
mod describe;
mod disk;
pub mod events;
mod history;
mod inbox;
pub mod input;
pub mod keys;
mod link;
pub mod net;
mod offers;
mod outbox;
mod progress;
mod receipts;
mod record;
mod resume;
mod saving;
mod startup;
mod transfers;
pub mod transport;
pub mod ui;

use std::path::PathBuf;
use std::time::Duration;

use tracing::{debug, info};

use crate::app::{App, Line, Style};
use crate::chat::Chat;
use crate::link::live;
use crate::net::ConnectError;
use crate::ui::Ui;

pub use crate::startup::show_identity;

/// What the user asked for on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Relay host name or address.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Nickname to use instead of asking.
    pub nick: Option<String>,
    /// A particular companion to chat with (`--to`).
    pub to: Option<String>,
    /// A room to go into instead (`--room`).
    pub room: Option<String>,
    /// Earlier messages shown when a conversation starts (`--history`; 0: none).
    pub history: u32,
    /// How long to keep trying to reconnect after losing the connection (0: exit instead).
    pub retry_for: Duration,
    /// Plain TCP instead of TLS (`--plaintext`).
    pub plaintext: bool,
    /// Trust only certificates issued by the CA in this PEM file (`--ca`) instead of trusting
    /// on first use.
    pub ca: Option<PathBuf>,
    /// Where relays' certificate fingerprints are pinned (`--known-hosts`; `None`: the
    /// default). Companions' keys are pinned in `companions` next to it.
    pub known_hosts: Option<PathBuf>,
    /// The identity key file (`--identity`; `None`: the default).
    pub identity: Option<PathBuf>,
    /// Where received files are saved (`--downloads`, or `--auto-accept`'s directory).
    pub downloads: PathBuf,
    /// Accept every file offer at once, into `downloads` (`--auto-accept`).
    pub auto_accept: bool,
    /// Offer these files (directories: their files) to the companion, then leave once they
    /// are done (`--send`).
    pub send: Vec<PathBuf>,
}

/// `host:port`, with brackets around an IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Runs the client until the user leaves or the connection ends; returns the exit status.
pub async fn run(options: Options) -> i32 {
    use std::io::IsTerminal;
    let scripted = !std::io::stdin().is_terminal();
    let mut ui = Ui::new(!scripted);
    let setup = match startup::prepare(&options) {
        Ok(setup) => setup,
        Err(err) => {
            ui.finish(false);
            ui.show(&line(Style::Error, format!("❌ {err}")));
            return 1;
        }
    };
    for notice in &setup.notices {
        ui.show(notice);
    }
    let target = host_port(&options.host, options.port);
    let (connection, welcome) = match net::connect(&setup.target).await {
        Ok(connected) => connected,
        Err(err) => {
            ui.finish(false);
            match err {
                ConnectError::CertificateChanged(warning) => show_warning(&mut ui, &warning),
                err => ui.show(&line(
                    Style::Error,
                    format!("❌ Could not connect to chat server at {target}: {err}"),
                )),
            }
            return 1;
        }
    };
    info!("connected to {target}: {} ({welcome:?})", welcome.server);
    if let Some(notice) = &welcome.notice {
        ui.show(&line(Style::Notice, notice.clone()));
    }
    ui.show(&line(
        Style::Plain,
        format!("🔌 Connected to chat server at {target}"),
    ));
    ui.show(&line(Style::Plain, "Type /exit to quit"));
    ui.show(&line(Style::Plain, ""));
    let app = App::new(
        setup.identity,
        welcome.max_message,
        options.nick.clone(),
        !ui.is_interactive(),
    )
    .with_challenge(welcome.challenge)
    .with_pins(target.clone(), Box::new(setup.pins))
    .with_companion(options.to.clone())
    .with_room(options.room.clone())
    .with_history(options.history)
    .with_reconnect(!options.retry_for.is_zero())
    .with_stored_history(welcome.stored_history)
    .with_id_seed(random_seed())
    .with_files(
        options.downloads.clone(),
        options.auto_accept,
        options.send.clone(),
    );
    let chat = Chat::new(
        app,
        ui,
        live(connection),
        options,
        setup.target,
        welcome.heartbeat,
        setup.outgoing,
    );
    let code = chat.run().await;
    debug!("client exiting with status {code}");
    code
}

/// A multi-line warning, one chat line per line.
fn show_warning(ui: &mut Ui, warning: &str) {
    for text in warning.lines() {
        ui.show(&line(Style::Error, text));
    }
}

fn line(style: Style, text: impl Into<String>) -> Line {
    Line {
        style,
        text: text.into(),
    }
}
/// A random number in `[0, 1)` for backoff jitter (none if the system has no randomness).
fn jitter() -> f64 {
    let mut bytes = [0; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_be_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Where this process's message ids start: random, so two clients never share ids. Without
/// system randomness the clock and process id stand in (ids only need to be unique).
fn random_seed() -> u128 {
    let mut bytes = [0; 16];
    if getrandom::fill(&mut bytes).is_ok() {
        return u128::from_be_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    nanos ^ (u128::from(std::process::id()) << 96)
}
