//! Message history for the p2pchat relay: an embedded SQLite database (bundled, nothing to
//! install) in a private data directory.
//!
//! Writes go through one writer thread that commits in groups (`writer`); `append` resolves only
//! once its message is durable (WAL, `synchronous=FULL`: the commit's fsync). Each commit writes
//! one row per conversation holding all of that conversation's new messages (`record`), so the
//! cost of an index entry is paid per commit, not per message. Reads use a connection of their
//! own and never wait for the writer.

mod record;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

pub use record::{MessageId, Stored};
pub use writer::{DEDUP_WINDOW, MAX_BATCH};

use writer::{Request, Writer};

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;
/// Requests that may wait for the writer; past this, `append` waits for room (backpressure).
const QUEUE: usize = 65_536;

/// Why the store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The data directory or database could not be opened or created.
    #[error("cannot open the history database {path}: {reason}")]
    Open {
        /// The path involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// SQLite refused an operation.
    #[error("history database error: {0}")]
    Sqlite(String),
    /// Stored data does not decode: the file was changed outside p2pchat.
    #[error("the history database is damaged ({0})")]
    Damaged(&'static str),
    /// The writer thread has stopped.
    #[error("the history store is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        Self::Sqlite(err.to_string())
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct Append {
    /// Which conversation (the relay's key for it).
    pub conversation: String,
    /// The client-chosen id.
    pub id: MessageId,
    /// The sender's nickname.
    pub sender: String,
    /// When the relay received it (ms since the Unix epoch).
    pub sent_ms: i64,
    /// The message.
    pub body: Bytes,
}

/// Messages from one sender in one conversation that arrived together, stored in order with
/// consecutive sequence numbers (the relay hands on runs, so it stores them as runs too: one
/// request, one answer, however many messages).
#[derive(Debug, Clone)]
pub struct Run {
    /// Which conversation (the relay's key for it).
    pub conversation: String,
    /// The sender's nickname.
    pub sender: String,
    /// When the relay received the run (ms since the Unix epoch).
    pub sent_ms: i64,
    /// Each message's client-chosen id and body, in order.
    pub messages: Vec<(MessageId, Bytes)>,
}

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored durably with this sequence number.
    Stored(u64),
    /// Already stored (a re-send) under this sequence number; nothing was written.
    Duplicate(u64),
}

impl Appended {
    /// The message's sequence number either way.
    pub fn seq(self) -> u64 {
        match self {
            Self::Stored(seq) | Self::Duplicate(seq) => seq,
        }
    }
}

/// Handle to the history database. Cheap to share behind an `Arc`.
pub struct Store {
    requests: mpsc::Sender<Request>,
    reader: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the database in `dir`, creating `dir` with owner-only permissions.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let failed = |path: &Path, reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e.to_string()))?;
        private(dir, 0o700).map_err(|e| failed(dir, e.to_string()))?;
        let path = dir.join("history.db");
        let writer = Connection::open(&path).map_err(|e| failed(&path, e.to_string()))?;
        prepare(&writer).map_err(|e| failed(&path, e.to_string()))?;
        private(&path, 0o600).map_err(|e| failed(&path, e.to_string()))?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| failed(&path, e.to_string()))?;
        let writer = Writer::recover(writer).map_err(|e| failed(&path, e.to_string()))?;
        let (requests, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| failed(&path, e.to_string()))?;
        Ok(Self {
            requests,
            reader: Mutex::new(reader),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a message; resolves once it is durable (or recognised as a re-send).
    pub async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let run = Run {
            conversation: append.conversation,
            sender: append.sender,
            sent_ms: append.sent_ms,
            messages: vec![(append.id, append.body)],
        };
        let outcomes = self.append_run(run).await?;
        outcomes.into_iter().next().ok_or(StoreError::Closed)
    }

    /// Stores a run of messages; resolves once they are durable, with what happened to each.
    pub async fn append_run(&self, run: Run) -> Result<Vec<Appended>, StoreError> {
        self.ask(|reply| Request::Append(run, reply)).await
    }

    /// Deletes the log rows whose newest message is older than `cutoff_ms`; returns how many.
    pub async fn purge_older_than(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        self.ask(|reply| Request::Purge(cutoff_ms, reply)).await
    }

    /// Sends the writer a request and waits for its answer.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(request(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Up to `limit` messages of `conversation` with a sequence number below `before` (all if
    /// `None`), oldest first. Blocking: call it from a blocking task.
    pub fn history(
        &self,
        conversation: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let before = before.unwrap_or(u64::MAX);
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // One read transaction: the watermark and the rows are seen as of the same commit.
        let tx = reader.transaction()?;
        let Some(id) = writer::find_conversation(&tx, conversation)? else {
            return Ok(Vec::new());
        };
        let mut found = Found {
            conversation: id as u64,
            before,
            limit,
            newest_first: Vec::new(),
        };
        // The unindexed tail first (the newest messages), then indexed windows, newest first.
        let indexed = writer::indexed_through(&tx)?;
        found.scan(&tx, indexed, i64::MAX)?;
        let mut windows = tx.prepare_cached(
            "SELECT first_log, last_log FROM entries WHERE conversation = ?1 AND first_seq < ?2 \
             ORDER BY first_seq DESC",
        )?;
        let mut rows = windows.query(rusqlite::params![id, before.min(i64::MAX as u64) as i64])?;
        while !found.full() {
            let Some(row) = rows.next()? else { break };
            let (first_log, last_log): (i64, i64) = (row.get(0)?, row.get(1)?);
            found.scan(&tx, first_log - 1, last_log)?;
        }
        let mut messages = found.newest_first;
        messages.reverse();
        Ok(messages)
    }
}

/// Messages of one conversation gathered newest first by a history read.
struct Found {
    conversation: u64,
    before: u64,
    limit: usize,
    newest_first: Vec<Stored>,
}

impl Found {
    fn full(&self) -> bool {
        self.newest_first.len() >= self.limit
    }

    /// Takes the conversation's messages from log rows `after < id <= through`, newest first.
    fn scan(&mut self, conn: &Connection, after: i64, through: i64) -> Result<(), StoreError> {
        let rows = writer::read_rows(conn, after, through)?;
        for (_, data) in rows.into_iter().rev() {
            let messages = record::decode(&data).map_err(|e| StoreError::Damaged(e.0))?;
            for message in messages.into_iter().rev() {
                if self.full() {
                    return Ok(());
                }
                if message.conversation == self.conversation && message.seq < self.before {
                    self.newest_first.push(message);
                }
            }
        }
        Ok(())
    }
}

/// Durability and schema: WAL with a full sync at each commit, tables created if missing, and a
/// database from a newer version refused rather than misread.
fn prepare(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "it was written by a newer p2pchat (schema {version}; this one knows {SCHEMA_VERSION})"
        )));
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS conversations (
             id INTEGER PRIMARY KEY,
             key TEXT NOT NULL UNIQUE
         );
         -- AUTOINCREMENT: a purged row's id is never reused, so index entries and the
         -- watermark can never point at a newer row by mistake.
         CREATE TABLE IF NOT EXISTS log (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             last_ms INTEGER NOT NULL,
             data BLOB NOT NULL
         );
         CREATE TABLE IF NOT EXISTS entries (
             conversation INTEGER NOT NULL,
             first_seq INTEGER NOT NULL,
             last_seq INTEGER NOT NULL,
             first_log INTEGER NOT NULL,
             last_log INTEGER NOT NULL,
             PRIMARY KEY (conversation, first_seq)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS meta (
             key TEXT PRIMARY KEY,
             value INTEGER NOT NULL
         ) WITHOUT ROWID;",
    )?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

#[cfg(unix)]
fn private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn private(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
