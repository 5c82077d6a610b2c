//! A connection's outgoing queue and the task that drains it onto the socket.
//!
//! Data (forwarded messages, answers to the client's own frames) is admitted against a byte
//! credit, so a receiver that stops reading slows its senders through TCP instead of growing the
//! relay's memory. Notes from the hub (paired, left, waiting) bypass the credit because the hub
//! sends them under its lock and must not wait; they are a few small frames per pairing event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

enum Item {
    /// Encoded frames; `credit` bytes go back to the credit once written.
    Frames { bytes: Bytes, credit: u32 },
    /// Write what came before, then close the write side.
    Close,
}

/// The receiving end was closed (its connection is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

/// Cloneable handle for queueing frames to one connection.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Item>,
    credit: Arc<Semaphore>,
    limit: u32,
}

/// The draining end, owned by the connection's writer task.
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    credit: Arc<Semaphore>,
}

impl Outbox {
    /// A queue admitting at most `limit` bytes of data at once.
    pub fn new(limit: u32) -> (Self, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let credit = Arc::new(Semaphore::new(limit as usize));
        let receiver = OutboxReceiver {
            rx,
            credit: credit.clone(),
        };
        (Self { tx, credit, limit }, receiver)
    }

    /// Queues data, waiting while more than the limit is queued. A chunk larger than the limit is
    /// admitted alone (it waits for the queue to empty), so it can never wait forever.
    pub async fn push(&self, bytes: Bytes) -> Result<(), Closed> {
        let credit = u32::try_from(bytes.len())
            .unwrap_or(u32::MAX)
            .min(self.limit);
        let permit = self.credit.acquire_many(credit).await.map_err(|_| Closed)?;
        permit.forget();
        self.tx
            .send(Item::Frames { bytes, credit })
            .map_err(|_| Closed)
    }

    /// Queues a hub note's frame without waiting (see the module comment for why this is bounded).
    pub fn push_note(&self, bytes: Bytes) {
        let _ = self.tx.send(Item::Frames { bytes, credit: 0 });
    }

    /// Asks the writer to finish what is queued and close the write side.
    pub fn close(&self) {
        let _ = self.tx.send(Item::Close);
    }
}

/// Writes queued frames until `Close`, a write error, or a write stalled longer than
/// `stall_limit` (a receiver that stopped reading is dropped rather than left to hold its
/// senders back forever). On the way out it cancels `dead` so the session's reader stops too.
pub async fn drain(
    mut outbox: OutboxReceiver,
    mut socket: OwnedWriteHalf,
    stall_limit: Duration,
    dead: CancellationToken,
) -> Result<(), std::io::Error> {
    let result = drain_items(&mut outbox, &mut socket, stall_limit).await;
    // Fail every pending and future push at once instead of letting senders wait on a dead peer.
    outbox.credit.close();
    outbox.rx.close();
    dead.cancel();
    if result.is_ok() {
        let _ = tokio::time::timeout(stall_limit, socket.shutdown()).await;
    }
    result
}

async fn drain_items(
    outbox: &mut OutboxReceiver,
    socket: &mut OwnedWriteHalf,
    stall_limit: Duration,
) -> Result<(), std::io::Error> {
    while let Some(item) = outbox.rx.recv().await {
        let Item::Frames { bytes, credit } = item else {
            return Ok(());
        };
        match tokio::time::timeout(stall_limit, socket.write_all(&bytes)).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client stopped reading",
                ))
            }
        }
        outbox.credit.add_permits(credit as usize);
    }
    Ok(())
}
