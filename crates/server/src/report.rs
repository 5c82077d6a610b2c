//! How sessions end and the relay's log lines about clients, in the design's emoji style.

use std::fmt;

use p2pchat_proto::LeftReason;
use tracing::{debug, info, warn};

use crate::Config;

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    /// The client said `Bye`.
    Quit,
    /// The client closed the connection between frames without `Bye`.
    Closed,
    /// The connection closed in the middle of a frame.
    MidFrame,
    /// The connection failed (reset, broken pipe).
    Reset(std::io::Error),
    /// Nothing arrived within the heartbeat interval.
    TimedOut,
    /// No nickname within the login timeout.
    LoginTimeout,
    /// The relay refused the stream (bad handshake, frame over the limit).
    Refused(String),
    /// Writing to the client failed or stalled (it stopped reading).
    WriterGone,
    /// The relay is shutting down.
    Shutdown,
    /// Another connection resumed this client's nickname.
    Replaced,
}

impl End {
    /// What the companion is told about this end.
    pub fn left_reason(&self) -> LeftReason {
        match self {
            End::Quit | End::Shutdown | End::Replaced => LeftReason::Quit,
            End::TimedOut | End::LoginTimeout => LeftReason::TimedOut,
            End::Refused(_) => LeftReason::Dropped,
            End::Closed | End::MidFrame | End::Reset(_) | End::WriterGone => {
                LeftReason::ConnectionLost
            }
        }
    }
}

/// A client as the log names it: "Client 3", then "Client 3 (Nick1)" once it has a nickname.
pub struct Who {
    number: u64,
    nick: Option<String>,
}

impl Who {
    /// Client number `number`, not yet named.
    pub fn new(number: u64) -> Self {
        Self { number, nick: None }
    }

    /// Records the nickname.
    pub fn name(&mut self, nick: &str) {
        self.nick = Some(nick.to_owned());
    }

    /// The nickname, once there is one.
    pub fn nick(&self) -> Option<String> {
        self.nick.clone()
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.nick {
            Some(nick) => write!(f, "Client {} ({nick})", self.number),
            None => write!(f, "Client {}", self.number),
        }
    }
}

/// Logs a newly accepted connection: 🔵 for the first of each pair of arrivals, 🟣 for the second,
/// as in the design's transcript.
pub fn log_connected(number: u64, addr: std::net::SocketAddr) {
    let dot = if number % 2 == 1 { "🔵" } else { "🟣" };
    info!("{dot} Client {number} connected from {addr}");
}

/// Logs a new pair.
pub fn log_pairing(first: &str, second: &str) {
    info!("💬 Chat session started: {first} ↔ {second}");
}

/// Logs how a session ended.
pub fn log_end(who: &Who, end: &End, config: &Config) {
    match end {
        End::Quit => info!("👋 {who} left the chat"),
        End::Closed => info!("🔴 {who} connection lost: closed without saying goodbye"),
        End::MidFrame => info!("🔴 {who} connection lost in the middle of a frame"),
        End::Reset(err) => info!("🔴 {who} connection lost: {err}"),
        End::TimedOut => info!(
            "⏱️ {who} timed out: nothing received for {}",
            humanize(config.heartbeat)
        ),
        End::LoginTimeout => info!(
            "⏱️ {who} timed out: no nickname within {}",
            humanize(config.login_timeout)
        ),
        End::Refused(why) => warn!("⛔ {who} disconnected: {why}"),
        End::WriterGone => {
            info!("🐢 {who} disconnected: it stopped reading or the connection broke")
        }
        End::Shutdown => debug!("{who} disconnected: server shutting down"),
        End::Replaced => info!("🔁 {who} replaced by a new connection of the same client"),
    }
}

fn humanize(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}
