//! The hand-over between the relay and the writer thread: a queue under a std mutex that the
//! relay may touch while holding its own locks (every operation is a push or a map update, never
//! a wait), a budget of queued bytes that turns into backpressure, and the coalesced read cursors.
//! The writer takes everything waiting in one go; that is the group in group commit.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::{oneshot, Notify};

use crate::record::{self, RunFacts};
use crate::{ConversationState, Done, Run, StoreError};

/// Bytes charged for a queued run besides its frames (the request itself, its callback).
const RUN_OVERHEAD: usize = 128;

/// An accepted run on its way to the writer. Its `done` is called exactly once: by `finish`,
/// or with `Closed` if it is dropped unfinished (a panic in the writer must not leave the relay
/// waiting for an acknowledgement forever).
pub(crate) struct Accepted {
    pub run: Run,
    /// Checked by the caller's thread, so the writer only copies bytes.
    pub facts: Result<RunFacts, &'static str>,
    done: Option<Done>,
}

impl Accepted {
    pub fn finish(mut self, outcome: Result<(), StoreError>) {
        if let Some(done) = self.done.take() {
            // A panicking callback must not take the writer down with it.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || done(outcome)));
        }
    }
}

impl Drop for Accepted {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ =
                std::panic::catch_unwind(AssertUnwindSafe(move || done(Err(StoreError::Closed))));
        }
    }
}

/// The budget taken by a batch's runs, given back when dropped: after the batch's commit, or
/// if the writer panics before it.
pub(crate) struct Budget<'a> {
    shared: &'a Shared,
    bytes: usize,
}

impl Drop for Budget<'_> {
    fn drop(&mut self) {
        self.shared.release(self.bytes);
    }
}

/// A request answered after the commit of everything queued before it.
pub(crate) enum Request {
    Load(
        Arc<str>,
        oneshot::Sender<Result<ConversationState, StoreError>>,
    ),
    Purge(i64, oneshot::Sender<Result<usize, StoreError>>),
    /// Answered once everything queued before it is committed, with how that commit went.
    Flush(oneshot::Sender<Result<(), StoreError>>),
}

enum Item {
    Append(Accepted),
    Request(Request),
}

/// What the writer takes for one commit.
pub(crate) struct Batch<'a> {
    pub appends: Vec<Accepted>,
    pub requests: Vec<Request>,
    /// The highest cursor per (conversation, member) set since the last batch.
    pub cursors: HashMap<(Arc<str>, Arc<str>), u64>,
    /// Given back once the batch is committed.
    pub budget: Budget<'a>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Items ever queued, and ever taken by the writer.
    pushed: u64,
    taken: u64,
    /// The highest cursor per (conversation, member), and how many items had been queued when
    /// it was set: it may only be committed with, or after, those items. A receipt for a message
    /// must never reach the disk before the message does (after a crash the numbering resumes
    /// from what is on disk, and a mark past it would hide the messages sent again).
    cursors: HashMap<(Arc<str>, Arc<str>), (u64, u64)>,
    /// Bytes of runs accepted and not yet committed.
    queued_bytes: usize,
    /// The writer is waiting on the condition variable (so a push must wake it).
    writer_idle: bool,
    stopping: bool,
}

pub(crate) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Notified whenever committed runs give their budget back.
    pub freed: Notify,
    budget: usize,
}

impl Shared {
    pub fn new(budget: usize) -> Self {
        Self {
            queue: Mutex::default(),
            wake: Condvar::new(),
            freed: Notify::new(),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Every critical section here leaves the queue consistent; a panic elsewhere must not
        // stop acknowledgements.
        crate::lock(&self.queue)
    }

    /// Queues `run` unless the budget is spent (it is never spent when nothing is queued).
    pub fn try_append(&self, run: Run, done: Done) -> Result<(), (Run, Done)> {
        let facts = match record::check_run(&run.frames) {
            Ok(_) if run.sender.len() > record::MAX_KEY_BYTES => Err("the sender key is too long"),
            checked => checked,
        };
        let bytes = charge(&run);
        let mut queue = self.lock();
        if queue.queued_bytes > 0 && queue.queued_bytes + bytes > self.budget {
            return Err((run, done));
        }
        queue.queued_bytes += bytes;
        queue.pushed += 1;
        queue.items.push_back(Item::Append(Accepted {
            run,
            facts,
            done: Some(done),
        }));
        self.wake_writer(queue);
        Ok(())
    }

    /// Queues a load or a purge; those are never refused (their callers wait for the answer).
    pub fn request(&self, request: Request) {
        let mut queue = self.lock();
        queue.pushed += 1;
        queue.items.push_back(Item::Request(request));
        self.wake_writer(queue);
    }

    pub fn set_read(&self, conversation: Arc<str>, member: Arc<str>, seq: u64) {
        let mut queue = self.lock();
        let after = queue.pushed;
        let cursor = queue
            .cursors
            .entry((conversation, member))
            .or_insert((seq, after));
        *cursor = (cursor.0.max(seq), after);
        self.wake_writer(queue);
    }

    fn wake_writer(&self, queue: MutexGuard<'_, Queue>) {
        let idle = queue.writer_idle;
        drop(queue);
        if idle {
            self.wake.notify_one();
        }
    }

    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
    }

    /// Waits for work and takes at most one commit's worth: `max_messages` messages or
    /// `max_bytes` of frames (at least one item), and all pending cursors. `None` once the store
    /// is stopping and nothing is left.
    pub fn take(&self, max_messages: usize, max_bytes: usize) -> Option<Batch<'_>> {
        let mut queue = self.lock();
        while queue.items.is_empty() && queue.cursors.is_empty() {
            if queue.stopping {
                return None;
            }
            queue.writer_idle = true;
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.writer_idle = false;
        }
        let (mut messages, mut bytes) = (0, 0);
        let (mut appends, mut requests) = (Vec::new(), Vec::new());
        while messages < max_messages && bytes < max_bytes {
            let item = queue.items.pop_front();
            if item.is_some() {
                queue.taken += 1;
            }
            match item {
                Some(Item::Append(accepted)) => {
                    messages += accepted.facts.map_or(1, |facts| facts.count as usize);
                    bytes += charge(&accepted.run);
                    appends.push(accepted);
                }
                Some(Item::Request(request)) => requests.push(request),
                None => break,
            }
        }
        // Cursors whose items are all in this batch (or committed before) go with it.
        let taken = queue.taken;
        let mut cursors = HashMap::new();
        queue.cursors.retain(|key, &mut (seq, after)| {
            let ready = after <= taken;
            if ready {
                cursors.insert(key.clone(), seq);
            }
            !ready
        });
        Some(Batch {
            appends,
            requests,
            cursors,
            budget: Budget {
                shared: self,
                bytes,
            },
        })
    }

    /// Gives back a committed batch's budget and wakes whoever waits for room.
    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut queue = self.lock();
        queue.queued_bytes = queue.queued_bytes.saturating_sub(bytes);
        drop(queue);
        self.freed.notify_waiters();
    }

    /// Lets the writer finish what is queued and return.
    pub fn stop(&self) {
        let mut queue = self.lock();
        queue.stopping = true;
        drop(queue);
        self.wake.notify_one();
    }
}

/// What a run costs of the budget.
fn charge(run: &Run) -> usize {
    run.frames.len() + RUN_OVERHEAD
}
