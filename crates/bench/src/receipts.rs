//! The fanout scenario's bookkeeping, with no I/O: the bodies the sender stamps (`Body`), and
//! which member received each message last and when the sender may go on (`Receipts`). Times
//! are nanoseconds since the run's start, passed in by the caller.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::sync::Notify;

/// Bytes of the stamp at the start of every body: the message index and the send time (ns
/// since the run's start), both big-endian u64.
pub const STAMP_LEN: usize = 16;

/// The bodies of one run: a stamp, then the same filler bytes in every message.
#[derive(Debug, Clone)]
pub struct Body {
    template: Vec<u8>,
}

/// Why a received body is not the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body has the wrong length.
    WrongSize { got: usize, want: usize },
    /// The filler after the stamp is not what was sent.
    Garbled,
    /// A message was skipped (`got > want`) or repeated/reordered (`got < want`).
    OutOfOrder { got: u64, want: u64 },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSize { got, want } => {
                write!(f, "a body of {got} bytes where {want} were sent")
            }
            Self::Garbled => write!(f, "a body that is not what was sent (garbled)"),
            Self::OutOfOrder { got, want } if got > want => write!(
                f,
                "message {got} arrived when {want} was expected: messages {want}..{got} are missing"
            ),
            Self::OutOfOrder { got, want } => write!(
                f,
                "message {got} arrived again or out of order (expected {want})"
            ),
        }
    }
}

impl std::error::Error for BodyError {}

impl Body {
    /// Bodies of `filler.len()` bytes (at least `STAMP_LEN`): the stamp over the first bytes
    /// of `filler`, the rest as it is.
    pub fn new(mut filler: Vec<u8>) -> Self {
        if filler.len() < STAMP_LEN {
            filler.resize(STAMP_LEN, 0);
        }
        Self { template: filler }
    }

    /// Bytes of every body.
    pub fn size(&self) -> usize {
        self.template.len()
    }

    /// Appends the body of message `index` sent at `sent_ns`.
    pub fn write(&self, out: &mut Vec<u8>, index: u64, sent_ns: u64) {
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&sent_ns.to_be_bytes());
        out.extend_from_slice(&self.template[STAMP_LEN..]);
    }

    /// Checks that `body` is message `want`, intact; returns when it was sent.
    pub fn check(&self, body: &[u8], want: u64) -> Result<u64, BodyError> {
        if body.len() != self.template.len() {
            return Err(BodyError::WrongSize {
                got: body.len(),
                want: self.template.len(),
            });
        }
        let word = |at: usize| {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(&body[at..at + 8]);
            u64::from_be_bytes(bytes)
        };
        let got = word(0);
        if got != want {
            return Err(BodyError::OutOfOrder { got, want });
        }
        if body[STAMP_LEN..] != self.template[STAMP_LEN..] {
            return Err(BodyError::Garbled);
        }
        Ok(word(8))
    }
}

/// Who has received each message still in flight, and how many messages every member has.
///
/// Each of `members` receivers reports every message it gets, in order. Message `i` counts in
/// slot `i % window`; the member whose report completes the count is the last to receive it,
/// resets the slot and counts the message done. Messages complete in order (a member reports
/// `i + 1` only after `i`, so when all have `i + 1` all have `i`), and the sender sends message
/// `i + window` only once `i` is done, so a slot is free before it is used again: memory is
/// one counter per message in flight, whatever the run's length.
pub struct Receipts {
    members: u32,
    window: u64,
    slots: Box<[AtomicU32]>,
    done: AtomicU64,
    /// The `done` count the sender waits for (woken when it is reached).
    wake_at: AtomicU64,
    wake: Notify,
}

impl Receipts {
    /// Bookkeeping for `members` receivers (at least 1) and at most `window` messages in
    /// flight (at least 1).
    pub fn new(members: u32, window: u64) -> Self {
        let window = window.max(1);
        Self {
            members: members.max(1),
            window,
            slots: (0..window).map(|_| AtomicU32::new(0)).collect(),
            done: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
        }
    }

    /// A member received message `index`; returns whether it was the last member to.
    pub fn received(&self, index: u64) -> bool {
        let slot = &self.slots[(index % self.window) as usize];
        if slot.fetch_add(1, Ordering::AcqRel) + 1 < self.members {
            return false;
        }
        slot.store(0, Ordering::Release);
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= self.wake_at.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
        true
    }

    /// Most messages in flight.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Messages every member has received.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// Messages the sender may send now, having sent `sent`.
    pub fn room(&self, sent: u64) -> u64 {
        self.window.saturating_sub(sent.saturating_sub(self.done()))
    }

    /// Waits until the sender, having sent `sent`, may send `want` more (at most the window).
    pub async fn wait_for_room(&self, sent: u64, want: u64) {
        let want = want.clamp(1, self.window);
        let target = (sent + want).saturating_sub(self.window);
        loop {
            // Stored before looking, so that a member completing `target` in between sees it
            // and wakes us (both sides use SeqCst); an older wake-up left as a permit only
            // makes us look again.
            self.wake_at.store(target, Ordering::SeqCst);
            if self.done.load(Ordering::SeqCst) >= target {
                return;
            }
            self.wake.notified().await;
        }
    }
}

#[cfg(test)]
#[path = "receipts_tests.rs"]
mod tests;
