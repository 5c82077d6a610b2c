//! The p2pchat relay: accepts connections, pairs clients (in arrival order or by name), forwards
//! their messages and keeps their conversations.
//!
//! `run` takes a bound listener, an optional history store and a shutdown token, so the binary,
//! the tests and later a multi-node front end all start the same server. Modules: `listener`
//! (accept, limits, shutdown), `session` (one connection's task), `inbound` (what a client's
//! frames do), `relay` (numbering, storing and forwarding runs; joining a conversation),
//! `catchup` (missed messages, history, receipts), `conversation` (identity and routing),
//! `mailbox` (what others queue for a session), `hub` (pure pairing logic), `retention`.

mod backlog;
mod catchup;
mod changelog;
mod conversation;
mod held;
pub mod hub;
mod inbound;
mod limits;
mod listener;
mod mailbox;
mod owners;
mod relay;
mod report;
mod retention;
mod room_relay;
mod rooms;
mod session;
mod transport;
mod wire;

use std::time::Duration;

use p2pchat_proto::DEFAULT_MAX_MESSAGE;

pub use listener::{bind, raise_open_files_limit, run};
pub use owners::{OwnerError, Owners, DEFAULT_MAX_OWNERS};
pub use rooms::{
    RoomError, RoomLimits, Rooms, DEFAULT_MAX_ROOMS, DEFAULT_MAX_ROOMS_PER_USER,
    DEFAULT_MAX_ROOM_MEMBERS,
};

use crate::conversation::Conversations;
use crate::hub::Hub;
use crate::mailbox::Link;

/// Locks `mutex`, recovering it if a thread panicked while holding it. Every critical section
/// in the relay (hub, mailboxes, conversations) is a few map or queue operations that leave its
/// state consistent, so a poisoned lock is still safe to use, and one panicking session must not
/// take every other one down with it.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Default `Config::max_per_ip`: far more than one person or household needs, far fewer than
/// it takes to fill the relay.
pub const DEFAULT_MAX_PER_IP: usize = 256;
/// Default `Config::max_rate`: no person types this fast, and a client's bulk sending goes in
/// batches (up to 64 lines per end-to-end envelope, one frame), so only a flood meets it.
pub const DEFAULT_MAX_RATE: u32 = 100_000;

/// Default `Config::max_file`: 4 GiB.
pub const DEFAULT_MAX_FILE: u64 = 4 << 30;

/// Relay settings; every limit a client can push against is here.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest message text accepted, in bytes.
    pub max_message: u32,
    /// A connection silent for this long is dropped; also how long a write may stall.
    pub heartbeat: Duration,
    /// Time from connecting to an accepted nickname.
    pub login_timeout: Duration,
    /// Bytes of messages kept for a client still waiting for a companion.
    pub max_held: u32,
    /// Connections served at once; newcomers beyond it are told the server is full.
    pub max_connections: usize,
    /// Stored messages older than this are deleted (`None`: kept forever).
    pub retention: Option<Duration>,
    /// TLS for every connection (`None`: plain TCP, `--plaintext`).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Connections served at once from one IP address (0: no limit).
    pub max_per_ip: usize,
    /// Chat messages (frames) a connection may send per second, with a burst of as many; a
    /// faster sender is slowed down by reading it less often (0: no limit).
    pub max_rate: u32,
    /// Largest file a transfer may carry through the relay, in bytes.
    pub max_file: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message: DEFAULT_MAX_MESSAGE,
            heartbeat: Duration::from_secs(30),
            login_timeout: Duration::from_secs(10),
            max_held: 256 * 1024,
            max_connections: 10_000,
            retention: None,
            tls: None,
            max_per_ip: DEFAULT_MAX_PER_IP,
            max_rate: DEFAULT_MAX_RATE,
            max_file: DEFAULT_MAX_FILE,
        }
    }
}

impl Config {
    /// Longest frame accepted: a maximal message (or short text field, whichever is longer)
    /// plus the protocol's fixed overhead.
    pub fn max_frame(&self) -> usize {
        p2pchat_proto::max_frame_len(self.max_message)
    }

    /// Bytes of chat data that may wait for one client before its companion is slowed down:
    /// enough for a few full reads, and never less than two maximal frames.
    fn outbox_bytes(&self) -> usize {
        (self.max_frame() * 2).max(256 * 1024)
    }
}

/// State every session shares.
pub(crate) struct Shared {
    config: Config,
    max_frame: usize,
    /// Bytes of a session's own replies waiting for its client before it stops reading more
    /// requests from that client (a ping flood from a client that never reads stops here).
    max_backlog: usize,
    hub: Hub<Link>,
    conversations: Conversations,
    owners: Owners,
    rooms: Rooms,
}
