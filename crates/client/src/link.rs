//! The runner's side of the connection: the live one (its tasks and events) or the reconnect
//! attempts that replace it. The schedule of attempts is `backoff`; what to resend is the app's.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::net::{self, ConnectError, Connection, NetEvent, Tasks, Welcome};
use crate::transport::Target;

/// Net events buffered between the reader task and the app.
const NET_EVENTS: usize = 256;

/// The connection, or the attempts to get one back.
pub(crate) enum Link {
    Up(Live),
    Down(Retry),
}

pub(crate) struct Live {
    pub tasks: Tasks,
    pub events: mpsc::Receiver<NetEvent>,
}

pub(crate) fn live(connection: Connection) -> Live {
    let (events_tx, events) = mpsc::channel(NET_EVENTS);
    Live {
        tasks: connection.start(events_tx),
        events,
    }
}

type Attempt = JoinHandle<Result<(Connection, Welcome), ConnectError>>;

/// Reconnect attempts: when the next one is due, when to give up, and the one under way.
pub(crate) struct Retry {
    pub attempt: u32,
    pub next_at: Instant,
    pub give_up_at: Instant,
    connecting: Option<Attempt>,
}

impl Retry {
    /// Attempts starting at `next_at`, given up at `give_up_at`.
    pub fn new(next_at: Instant, give_up_at: Instant) -> Self {
        Self {
            attempt: 0,
            next_at,
            give_up_at,
            connecting: None,
        }
    }

    /// The result of the next attempt. Cancel-safe: an attempt under way is kept in `self` and
    /// awaited again by the next call.
    pub async fn next(&mut self, target: &Target) -> Result<(Connection, Welcome), ConnectError> {
        let connecting = match &mut self.connecting {
            Some(connecting) => connecting,
            None => {
                sleep_until(self.next_at).await;
                let target = target.clone();
                let attempt = tokio::spawn(async move { net::connect(&target).await });
                self.connecting.insert(attempt)
            }
        };
        let result = connecting.await;
        self.connecting = None;
        match result {
            Ok(result) => result,
            Err(err) => Err(ConnectError::Handshake(err.to_string())),
        }
    }
}

impl Drop for Retry {
    fn drop(&mut self) {
        if let Some(connecting) = &self.connecting {
            connecting.abort();
        }
    }
}
