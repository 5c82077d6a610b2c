//! The p2pchat relay: accepts connections, pairs clients by nickname in arrival order and
//! forwards their messages.
//!
//! `run` takes a bound listener and a shutdown token, so the binary, the tests and later a
//! multi-node front end all start the same server. Modules: `hub` (pure pairing logic),
//! `session` (one connection), `outbox` (bounded outgoing queue and its writer task).

mod held;
pub mod hub;
mod link;
mod outbox;
mod report;
mod session;

use std::sync::Arc;
use std::time::Duration;

use p2pchat_proto::DEFAULT_MAX_MESSAGE;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::hub::Hub;
use crate::link::Link;

/// How long shutdown waits for sessions to flush before the relay exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message: DEFAULT_MAX_MESSAGE,
            heartbeat: Duration::from_secs(30),
            login_timeout: Duration::from_secs(10),
            max_held: 256 * 1024,
        }
    }
}

impl Config {
    /// Longest frame accepted: a maximal message (or short text field, whichever is longer)
    /// plus the protocol's fixed overhead.
    pub fn max_frame(&self) -> usize {
        p2pchat_proto::max_frame_len(self.max_message)
    }

    /// Bytes of data that may wait in one connection's outbox: enough for a few full reads
    /// (each read forwards at most one read buffer, itself at most one frame plus a chunk).
    fn outbox_bytes(&self) -> u32 {
        let frame = u32::try_from(self.max_frame()).unwrap_or(u32::MAX);
        frame.saturating_mul(2).max(256 * 1024)
    }
}

/// State every session shares.
pub(crate) struct Shared {
    config: Config,
    max_frame: usize,
    hub: Hub<Link>,
}

/// Serves clients on `listener` until `shutdown` is cancelled, then tells every client, lets
/// sessions flush for at most `SHUTDOWN_GRACE`, and returns.
pub async fn run(listener: TcpListener, config: Config, shutdown: CancellationToken) {
    info!("🟢 Waiting for 2 clients to connect...");
    let shared = Arc::new(Shared {
        max_frame: config.max_frame(),
        config,
        hub: Hub::new(),
    });
    let tracker = TaskTracker::new();
    let mut accepted = 0u64;
    let mut backoff = Duration::from_millis(5);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = listener.accept() => next,
        };
        match next {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(5);
                accepted += 1;
                report::log_connected(accepted, addr);
                let session =
                    session::serve(stream, addr, accepted, shared.clone(), shutdown.clone());
                tracker.spawn(session);
            }
            Err(err) => {
                // Out of file descriptors or memory: wait and retry rather than spin or exit.
                warn!("⚠️ Accepting a connection failed: {err}; retrying in {backoff:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    shared.hub.close();
    info!(
        "🛑 Shutting down: telling {} connected client(s)",
        tracker.len()
    );
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("⚠️ Some connections did not close in time; closing them now");
    }
    info!("✅ Server stopped");
}
