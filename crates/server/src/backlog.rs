//! What a session keeps while something waits: runs for the store or the companion, frames held
//! back during a replay, jobs in progress, messages for a companion still to come. Allocated only
//! while anything waits, so an idle connection carries none of it.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::catchup::Replay;
use crate::held::Held;
use crate::mailbox::{Link, Queued};
use crate::relay::Job;

/// A session's queues and work in progress; see `Session::backlog`.
#[derive(Default)]
pub(crate) struct Backlog {
    /// Runs not yet numbered, oldest first: the conversation is being opened or the store is
    /// full. Reading pauses while there are any.
    pub(crate) parked: VecDeque<Bytes>,
    /// Numbered runs for the companion's mailbox that had no room yet, and that mailbox.
    /// Reading pauses while there are any.
    pub(crate) outbound: VecDeque<Bytes>,
    pub(crate) outbound_to: Option<Link>,
    /// File chunks for room members whose mailbox had no room yet, and since when the oldest
    /// waits. Reading pauses while there are any.
    pub(crate) chunk_waits: VecDeque<(Link, Bytes)>,
    pub(crate) chunks_waiting_since: Option<tokio::time::Instant>,
    /// Frames from the mailbox held back while missed messages are sent ahead of them.
    pub(crate) deferred: Option<VecDeque<Queued>>,
    /// Missed messages to send, one conversation after another, ahead of deferred frames.
    pub(crate) replays: VecDeque<Replay>,
    pub(crate) replay_serial: u64,
    /// A `History` answer is being read.
    pub(crate) history_busy: bool,
    /// Store reads and conversation loads in progress (created on first use).
    pub(crate) jobs: Option<JoinSet<Job>>,
    /// Messages sent while no companion was chosen, kept for the next one.
    pub(crate) held: Held,
}

impl Backlog {
    /// Nothing waits and nothing is in progress.
    pub(crate) fn is_idle(&self) -> bool {
        self.parked.is_empty()
            && self.outbound.is_empty()
            && self.chunk_waits.is_empty()
            && self.deferred.is_none()
            && self.replays.is_empty()
            && !self.history_busy
            && self.jobs.as_ref().is_none_or(JoinSet::is_empty)
            && self.held.count() == 0
    }
}
