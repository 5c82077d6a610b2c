//! Message history for the p2pchat relay: an embedded SQLite database (bundled, nothing to
//! install) in a private data directory.
//!
//! The relay numbers messages and hands the store runs of already-stamped wire frames. One
//! writer thread (`writer`) commits whatever is queued as one log row (WAL, `synchronous=FULL`:
//! one fsync per group) and calls each run's `done` only after that, so a message is
//! acknowledged only once it is durable. A row holds the frames verbatim (`record`): the write
//! path copies bytes, it never re-encodes messages. The index and the members' state are written
//! once per window of rows (`state`); reads (`read`) use a connection of their own and never wait
//! for the writer. Nothing here touches a socket or assigns a sequence number.

mod queue;
mod read;
mod record;
mod schema;
mod state;
mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;
use rusqlite::Connection;
use tokio::sync::oneshot;

pub use p2pchat_proto::MessageId;
pub use record::MAX_KEY_BYTES;
pub use schema::SCHEMA_VERSION;
pub use state::{MAX_CACHED, MAX_DIRTY};
pub use writer::{MAX_BATCH, MAX_COMMIT_BYTES};

use queue::{Request, Shared};

/// Default for `Options::budget`.
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// Called once per accepted run, from the writer thread: `Ok` once the run is durable, or why it
/// could not be stored. It runs on the thread that commits, so it should only hand the outcome
/// on (wake a task, push to a queue), not block.
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send + 'static>;

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The data directory or the database could not be opened or created.
    #[error("cannot open the message history at {path}: {reason}")]
    Open {
        /// The path involved.
        path: PathBuf,
        /// What went wrong, as a sentence.
        reason: String,
    },
    /// SQLite refused an operation (disk full, I/O error, ...).
    #[error("the message history database failed: {0}")]
    Sqlite(String),
    /// Stored data does not decode: the file was changed outside p2pchat.
    #[error("the message history database is damaged ({0}); it was changed outside p2pchat")]
    Damaged(&'static str),
    /// The relay handed over a run that is not whole, stamped `Message` frames with consecutive
    /// sequence numbers above the conversation's last: a bug in the caller. Nothing was stored.
    #[error("refused to store an invalid run of messages ({0})")]
    BadRun(&'static str),
    /// The writer thread has stopped.
    #[error("the message history store has stopped")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err.to_string())
    }
}

/// Messages of one sender in one conversation, as the relay forwards them: whole `Message`
/// frames back to back, already stamped with consecutive sequence numbers.
#[derive(Debug, Clone)]
pub struct Run {
    /// The relay's key for the conversation, e.g. `"alice\nbob"`.
    pub conversation: Arc<str>,
    /// The sender's member key (folded nickname), at most `MAX_KEY_BYTES`.
    pub sender: Arc<str>,
    /// The frames, exactly as forwarded.
    pub frames: Bytes,
}

/// Where a conversation stands (see `Store::load`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationState {
    /// The highest sequence number stored (0: none).
    pub last_seq: u64,
    /// Everyone who sent a message or whose read cursor was set, by key.
    pub members: Vec<MemberState>,
}

/// One member of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberState {
    /// The member key (folded nickname).
    pub key: String,
    /// Sequence number of the last message stored from this member (0: none).
    pub last_sent_seq: u64,
    /// Its id (all zero if none).
    pub last_sent_id: MessageId,
    /// The highest cursor given with `Store::set_read` (0: none).
    pub read_through: u64,
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its sequence number in the conversation.
    pub seq: u64,
    /// When the relay received it, ms since the Unix epoch.
    pub sent_ms: i64,
    /// The sender's member key.
    pub sender: Arc<str>,
    /// The sender's id for it.
    pub id: MessageId,
    /// The whole encoded `Message` frame, as it was received.
    pub frame: Bytes,
}

impl StoredMessage {
    /// The message body as the sender wrote it (an end-to-end envelope; opaque to the relay).
    pub fn body(&self) -> &[u8] {
        self.frame
            .get(p2pchat_proto::HEADER_LEN + p2pchat_proto::MESSAGE_HEAD..)
            .unwrap_or_default()
    }
}

/// Settings for `Store::open_with`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes of runs that may wait for a commit before `try_append` refuses more; a run is
    /// always accepted when nothing waits, however big.
    pub budget: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            budget: DEFAULT_BUDGET,
        }
    }
}

/// Handle to the history database. Share it behind an `Arc`; dropping it lets the writer commit
/// what is queued (calling every `done`) and waits for it.
pub struct Store {
    shared: Arc<Shared>,
    reader: Mutex<Connection>,
    path: PathBuf,
    writer: Option<JoinHandle<()>>,
    /// Held while the store is open: one process per data directory.
    _lock: std::fs::File,
}

impl Store {
    /// Opens (or creates) `history.db` in `dir`, creating `dir` owner-only (0700, the file 0600).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Options::default())
    }

    /// `open` with non-default settings.
    pub fn open_with(dir: &Path, options: Options) -> Result<Self, StoreError> {
        let path = dir.join("history.db");
        let failed = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        let (conn, lock) = schema::open_writer(dir, &path).map_err(failed)?;
        let reader = schema::open_reader(&path).map_err(failed)?;
        let writer = writer::Writer::recover(conn).map_err(|e| failed(e.to_string()))?;
        let shared = Arc::new(Shared::new(options.budget));
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || writer.run(for_writer))
            .map_err(|e| failed(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            shared,
            reader: Mutex::new(reader),
            path,
            writer: Some(writer),
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `run` for the next commit; `done` is called after the commit that made it durable
    /// (or with why it failed), runs in the order they were accepted. Never blocks, so it may be
    /// called from async tasks and under a std mutex. Refused, handing both back, while more than
    /// `Options::budget` bytes wait for a commit: wait for `room` and try again.
    pub fn try_append(&self, run: Run, done: Done) -> Result<(), (Run, Done)> {
        self.shared.try_append(run, done)
    }

    /// Resolves once a commit has freed budget after this call, or at once if nothing waits. The
    /// wake-up is registered when `room` is called, not when the future is first polled.
    pub fn room(&self) -> impl Future<Output = ()> + Send + '_ {
        let freed = self.shared.freed.notified();
        async move {
            if self.shared.queued_bytes() > 0 {
                freed.await;
            }
        }
    }

    /// Records that `member` has received `conversation`'s messages through `seq`. Never blocks
    /// and is never refused: only the highest cursor per (conversation, member) waits for the
    /// next commit, which makes it durable. A cursor never goes back. A member key longer than
    /// `MAX_KEY_BYTES` is not a member key and is ignored.
    pub fn set_read(&self, conversation: Arc<str>, member: Arc<str>, seq: u64) {
        self.shared.set_read(conversation, member, seq);
    }

    /// The conversation's state once everything queued before this call is committed (so it
    /// doubles as a barrier). An unknown conversation has `last_seq` 0 and no members.
    pub async fn load(&self, conversation: Arc<str>) -> Result<ConversationState, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared.request(Request::Load(conversation, reply));
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Resolves once everything queued before this call (runs and read cursors) is committed,
    /// with the outcome of that commit. For a clean shutdown, and for answers that must not
    /// get ahead of the disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared.request(Request::Flush(reply));
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Deletes the oldest log rows, up to the first holding a message sent at or after
    /// `cutoff_ms`; returns how many. Conversations' numbering and members' state are kept.
    pub async fn purge_older_than(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.shared.request(Request::Purge(cutoff_ms, reply));
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The newest up to `limit` messages of `conversation` with seq < `before` (0: no bound),
    /// oldest first. Sees everything committed. Blocking: call it from a blocking task.
    pub fn before(
        &self,
        conversation: &str,
        before: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        read::before(&mut self.reader(), conversation, before, limit)
    }

    /// The first up to `limit` messages of `conversation` with `after < seq <= through`, oldest
    /// first, stopping before their frames would pass `max_bytes` (the first message is returned
    /// whatever its size). Sees everything committed. Blocking: call it from a blocking task.
    pub fn after(
        &self,
        conversation: &str,
        after: u64,
        through: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        read::after(
            &mut self.reader(),
            conversation,
            after,
            through,
            limit,
            max_bytes,
        )
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        // A read leaves nothing half-done in the connection (its transaction rolls back on drop).
        lock(&self.reader)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(writer) = self.writer.take() {
            // A `done` holding the last handle drops it on the writer thread: it cannot wait
            // for itself, and it ends once that callback returns.
            if writer.thread().id() != std::thread::current().id() {
                let _ = writer.join();
            }
        }
    }
}

/// Locks `mutex`, recovering it if a thread panicked while holding it (each caller says why its
/// state is still consistent then).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
