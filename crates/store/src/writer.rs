//! The writer thread: the only connection that writes. It takes every request waiting in its
//! queue, commits them as one log row in one transaction (one fsync), and only then answers them:
//! whatever arrives during a commit goes into the next one. Network tasks never wait for the disk;
//! only the acknowledgement of a message does.
//!
//! Finding a conversation's messages later needs an index, but indexing every commit would touch
//! one B-tree page per conversation per commit (measured: 22 k messages/s at 1,000 conversations).
//! So the index is written once per window of log rows (`WINDOW_ROWS` or `WINDOW_BYTES`), one
//! entry per conversation per window, in the same transaction as a log row; the rows after the
//! last window (the tail) are scanned at start-up and by history reads.

use std::collections::{HashMap, VecDeque};

use bytes::BytesMut;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::record::{self, MessageId};
use crate::{Appended, Run, StoreError};

/// Most messages in one commit (a commit takes whole requests, so it may go one run over);
/// bounds the work and memory of one commit.
pub const MAX_BATCH: usize = 65_536;
/// Recent (conversation, message id) pairs remembered to recognise a re-send, across all
/// conversations. A re-send is recognised if its original was among this many latest messages;
/// clients re-send only what was not acknowledged, a few commits' worth at most.
pub const DEDUP_WINDOW: usize = 262_144;
/// Log rows between index writes.
pub(crate) const WINDOW_ROWS: i64 = if cfg!(test) { 8 } else { 1024 };
/// Log bytes between index writes (bounds what a history read or a start-up scans).
const WINDOW_BYTES: usize = 8 << 20;
/// Conversations whose id and last sequence number are cached.
const MAX_CACHED: usize = 100_000;

pub(crate) enum Request {
    Append(Run, oneshot::Sender<Result<Vec<Appended>, StoreError>>),
    Purge(i64, oneshot::Sender<Result<usize, StoreError>>),
}

/// Where one conversation's messages are in the current window.
struct Pending {
    first_seq: u64,
    last_seq: u64,
    first_log: i64,
    last_log: i64,
}

pub(crate) struct Writer {
    conn: Connection,
    state: State,
}

/// What the writer keeps in memory between commits.
#[derive(Default)]
struct State {
    ids: HashMap<String, u64>,
    last_seq: HashMap<u64, u64>,
    pending: HashMap<u64, Pending>,
    window_rows: i64,
    window_bytes: usize,
    recent: VecDeque<(u64, MessageId)>,
    seq_of: HashMap<(u64, MessageId), u64>,
}

impl Request {
    fn messages(&self) -> usize {
        match self {
            Request::Append(run, _) => run.messages.len(),
            Request::Purge(..) => 1,
        }
    }
}

impl Writer {
    /// Loads what the last run left: the unindexed tail, and recent ids for de-duplication.
    pub(crate) fn recover(conn: Connection) -> Result<Self, StoreError> {
        let mut state = State::default();
        let indexed = indexed_through(&conn)?;
        // The window before the tail only seeds de-duplication; the tail is also pending.
        let rows = read_rows(&conn, indexed - WINDOW_ROWS, i64::MAX)?;
        for (log_id, data) in rows {
            let messages = record::decode(&data).map_err(|e| StoreError::Damaged(e.0))?;
            for message in &messages {
                state.remember(message.conversation, message.id, message.seq);
            }
            if log_id > indexed {
                state.window_rows += 1;
                state.window_bytes += data.len();
                for message in &messages {
                    let (conversation, seq) = (message.conversation, message.seq);
                    state.note_pending(conversation, seq, seq, log_id);
                    state.last_seq.insert(conversation, seq);
                }
            }
        }
        Ok(Self { conn, state })
    }

    pub(crate) fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        while let Some(first) = requests.blocking_recv() {
            let mut batch = vec![first];
            let mut messages = batch[0].messages();
            while messages < MAX_BATCH {
                match requests.try_recv() {
                    Ok(request) => {
                        messages += request.messages();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            let mut appends = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for request in batch {
                match request {
                    Request::Append(append, reply) => {
                        appends.push(append);
                        replies.push(reply);
                    }
                    Request::Purge(cutoff, reply) => {
                        let _ = reply.send(self.purge(cutoff));
                    }
                }
            }
            if appends.is_empty() {
                continue;
            }
            match self.commit(&appends) {
                Ok(outcomes) => {
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(err) => {
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                    // The in-memory state may describe what was never committed: rebuild it.
                    match Self::recover(self.conn) {
                        Ok(fresh) => self = fresh,
                        Err(_) => return,
                    }
                }
            }
        }
    }

    fn commit(&mut self, runs: &[Run]) -> Result<Vec<Vec<Appended>>, StoreError> {
        let state = &mut self.state;
        if state.ids.len() > MAX_CACHED {
            state.ids.clear();
            state.last_seq.clear();
        }
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(runs.len());
        // Per conversation touched: (first, last) sequence number written by this commit.
        let mut written: Vec<(u64, u64, u64)> = Vec::new();
        let mut data = BytesMut::new();
        let mut last_ms = i64::MIN;
        for run in runs {
            let conversation = conversation_id(&tx, &mut state.ids, &run.conversation)?;
            let before = match state.last_seq.get(&conversation) {
                Some(&seq) => seq,
                None => last_indexed_seq(&tx, conversation)?,
            };
            let mut seq = before;
            let mut run_outcomes = Vec::with_capacity(run.messages.len());
            for (id, body) in &run.messages {
                if let Some(&earlier) = state.seq_of.get(&(conversation, *id)) {
                    run_outcomes.push(Appended::Duplicate(earlier));
                    continue;
                }
                seq += 1;
                state.remember(conversation, *id, seq);
                let head = record::Head {
                    conversation,
                    seq,
                    sent_ms: run.sent_ms,
                    id,
                };
                record::encode(&mut data, &head, &run.sender, body);
                run_outcomes.push(Appended::Stored(seq));
            }
            if seq > before {
                state.last_seq.insert(conversation, seq);
                written.push((conversation, before + 1, seq));
                last_ms = last_ms.max(run.sent_ms);
            }
            outcomes.push(run_outcomes);
        }
        if !written.is_empty() {
            tx.execute(
                "INSERT INTO log (last_ms, data) VALUES (?1, ?2)",
                params![last_ms, &data[..]],
            )?;
            let log_id = tx.last_insert_rowid();
            for &(conversation, first, last) in &written {
                state.note_pending(conversation, first, last, log_id);
            }
            state.window_rows += 1;
            state.window_bytes += data.len();
            if state.window_rows >= WINDOW_ROWS || state.window_bytes >= WINDOW_BYTES {
                state.write_index(&tx, log_id)?;
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Deletes log rows whose newest message is older than `cutoff_ms`, and the index entries
    /// that only pointed at them, except each conversation's newest entry: it carries the last
    /// sequence number, so numbering goes on where it was.
    fn purge(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        if !self.state.pending.is_empty() {
            // Index the tail first: its rows may go, and the index must keep their numbers.
            let through: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) FROM log", [], |row| row.get(0))?;
            self.state.write_index(&tx, through)?;
        }
        let deleted = tx.execute("DELETE FROM log WHERE last_ms < ?1", [cutoff_ms])?;
        tx.execute(
            "DELETE FROM entries WHERE last_log < (SELECT coalesce(min(id), 9223372036854775807) FROM log) \
             AND first_seq < (SELECT max(first_seq) FROM entries AS newest \
                              WHERE newest.conversation = entries.conversation)",
            [],
        )?;
        tx.commit()?;
        Ok(deleted)
    }
}

impl State {
    /// Writes one index entry per conversation of the window and moves the watermark.
    fn write_index(&mut self, tx: &Transaction<'_>, through: i64) -> Result<(), StoreError> {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO entries (conversation, first_seq, last_seq, first_log, last_log) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (conversation, pending) in &self.pending {
            insert.execute(params![
                *conversation as i64,
                pending.first_seq as i64,
                pending.last_seq as i64,
                pending.first_log,
                pending.last_log
            ])?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('indexed_through', ?1)",
            [through],
        )?;
        self.pending.clear();
        self.window_rows = 0;
        self.window_bytes = 0;
        Ok(())
    }

    /// Records that `conversation`'s messages `first..=last` are in log row `log_id`.
    fn note_pending(&mut self, conversation: u64, first: u64, last: u64, log_id: i64) {
        self.pending
            .entry(conversation)
            .and_modify(|p| {
                p.last_seq = last;
                p.last_log = log_id;
            })
            .or_insert(Pending {
                first_seq: first,
                last_seq: last,
                first_log: log_id,
                last_log: log_id,
            });
    }

    fn remember(&mut self, conversation: u64, id: MessageId, seq: u64) {
        if self.recent.len() == DEDUP_WINDOW {
            if let Some(old) = self.recent.pop_front() {
                self.seq_of.remove(&old);
            }
        }
        self.recent.push_back((conversation, id));
        self.seq_of.insert((conversation, id), seq);
    }
}

/// The last log row whose messages are in the index (0 before the first window).
pub(crate) fn indexed_through(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'indexed_through'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Log rows with `after < id <= through`, oldest first.
pub(crate) fn read_rows(
    conn: &Connection,
    after: i64,
    through: i64,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT id, data FROM log WHERE id > ?1 AND id <= ?2 ORDER BY id")?;
    let rows = statement.query_map([after, through], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn conversation_id(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, u64>,
    key: &str,
) -> Result<u64, StoreError> {
    if let Some(&id) = ids.get(key) {
        return Ok(id);
    }
    let id = match find_conversation(tx, key)? {
        Some(id) => id,
        None => {
            tx.execute("INSERT INTO conversations (key) VALUES (?1)", [key])?;
            tx.last_insert_rowid()
        }
    };
    let id = u64::try_from(id).map_err(|_| StoreError::Damaged("negative conversation id"))?;
    ids.insert(key.to_owned(), id);
    Ok(id)
}

/// The database's number for conversation `key`, if it has one.
pub(crate) fn find_conversation(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id FROM conversations WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()?)
}

fn last_indexed_seq(tx: &Transaction<'_>, conversation: u64) -> Result<u64, StoreError> {
    let seq: Option<i64> = tx
        .query_row(
            "SELECT last_seq FROM entries WHERE conversation = ?1 ORDER BY first_seq DESC LIMIT 1",
            [conversation as i64],
            |row| row.get(0),
        )
        .optional()?;
    u64::try_from(seq.unwrap_or(0)).map_err(|_| StoreError::Damaged("negative seq"))
}
