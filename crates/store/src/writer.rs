//! The writer thread: the only connection that writes. It takes everything waiting in the queue,
//! commits it as one log row in one transaction (one fsync), and only then calls the runs' `done`
//! callbacks, in the order the runs were accepted: whatever arrives during a commit goes into
//! the next one. Loads and purges in the same batch are answered after its commit.
//!
//! Finding a conversation's messages later needs an index, but indexing every commit would touch
//! one B-tree page per conversation per commit (measured: 22 k messages/s at 1,000 conversations,
//! a tenth of what indexing per window costs). So the index, and the members' state, are written
//! once per window of log rows (`WINDOW_ROWS` or `WINDOW_BYTES`), in the same transaction as a
//! log row; the rows after the last window (the tail) are replayed at start-up and scanned by reads.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::queue::{Accepted, Batch, Request, Shared};
use crate::record::{self, MAX_KEY_BYTES};
use crate::state::{self, State, MAX_DIRTY};
use crate::{ConversationState, StoreError};

/// Most messages in one commit (a commit takes whole runs, so it may go one run over); bounds
/// the work and memory of one commit.
pub const MAX_BATCH: usize = 65_536;
/// Most bytes of frames in one commit (again, one run may go over): bounds a log row, and so
/// what a read decodes at a time.
pub const MAX_COMMIT_BYTES: usize = 8 << 20;
/// Log rows between index writes.
pub(crate) const WINDOW_ROWS: u64 = if cfg!(test) { 8 } else { 1024 };
/// Log bytes between index writes (bounds what a read or a start-up scans in the tail).
const WINDOW_BYTES: usize = 8 << 20;

/// What became of each run of a commit, in order.
type Outcomes = Vec<Result<(), StoreError>>;
/// The highest read cursor per (conversation, member) since the last commit.
type Cursors = HashMap<(Arc<str>, Arc<str>), u64>;

pub(crate) struct Writer {
    conn: Connection,
    /// `Err` after a failed commit whose state could not be re-read; retried at each batch.
    state: Result<State, StoreError>,
    /// The log row being built, kept to reuse its allocation.
    row: Vec<u8>,
}

impl Writer {
    /// Reads what the last run left: the tables and the unindexed tail.
    pub fn recover(conn: Connection) -> Result<Self, StoreError> {
        let state = State::recover(&conn)?;
        Ok(Self {
            conn,
            state: Ok(state),
            row: Vec::new(),
        })
    }

    pub fn run(mut self, shared: Arc<Shared>) {
        while let Some(batch) = shared.take(MAX_BATCH, MAX_COMMIT_BYTES) {
            // A bug here must not stop the acknowledgements: the batch's runs are told `Closed`
            // as they are dropped, and the state is read again from the database.
            let handled = std::panic::catch_unwind(AssertUnwindSafe(|| self.handle(batch)));
            if handled.is_err() {
                self.state = State::recover(&self.conn);
            }
        }
    }

    fn handle(&mut self, batch: Batch<'_>) {
        let Batch {
            appends,
            requests,
            cursors,
            budget,
        } = batch;
        let outcomes = self.commit(&appends, cursors);
        drop(budget);
        let committed = outcomes.as_ref().map(|_| ()).map_err(Clone::clone);
        match outcomes {
            Ok(outcomes) => {
                for (accepted, outcome) in appends.into_iter().zip(outcomes) {
                    accepted.finish(outcome);
                }
            }
            Err(err) => {
                for accepted in appends {
                    accepted.finish(Err(err.clone()));
                }
            }
        }
        for request in requests {
            match request {
                Request::Load(key, reply) => {
                    let _ = reply.send(self.load(&key));
                }
                Request::Purge(cutoff_ms, reply) => {
                    let _ = reply.send(self.purge(cutoff_ms));
                }
                Request::Flush(reply) => {
                    let _ = reply.send(committed.clone());
                }
            }
        }
    }

    fn commit(&mut self, appends: &[Accepted], cursors: Cursors) -> Result<Outcomes, StoreError> {
        if appends.is_empty() && cursors.is_empty() {
            return Ok(Vec::new()); // only loads or purges: nothing to commit
        }
        let state = ready(&self.conn, &mut self.state)?;
        let written = write(&mut self.conn, state, &mut self.row, appends, cursors);
        self.row.clear();
        self.row.shrink_to(MAX_COMMIT_BYTES);
        if written.is_err() {
            // The memory may describe what was never committed: read it again.
            self.state = State::recover(&self.conn);
        }
        written
    }

    fn load(&mut self, key: &str) -> Result<ConversationState, StoreError> {
        ready(&self.conn, &mut self.state)?.load(&self.conn, key)
    }

    /// Deletes the oldest log rows, up to the first one holding a message sent at or after
    /// `cutoff_ms`, and the index entries that only pointed at them, except each conversation's
    /// newest (it carries the last sequence number).
    fn purge(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let state = ready(&self.conn, &mut self.state)?;
        let purged = purge(&mut self.conn, state, cutoff_ms);
        if purged.is_err() {
            self.state = State::recover(&self.conn);
        }
        purged
    }
}

/// The writer's state, re-read first if a failure left it unknown.
fn ready<'a>(
    conn: &Connection,
    state: &'a mut Result<State, StoreError>,
) -> Result<&'a mut State, StoreError> {
    if state.is_err() {
        *state = State::recover(conn);
    }
    state.as_mut().map_err(|err| err.clone())
}

/// One commit: a log row with a record per run and per cursor, and the index window when due.
fn write(
    conn: &mut Connection,
    state: &mut State,
    row: &mut Vec<u8>,
    appends: &[Accepted],
    cursors: Cursors,
) -> Result<Outcomes, StoreError> {
    let tx = conn.transaction()?;
    let log = state.last_log + 1;
    let mut last_ms: Option<i64> = None;
    let mut outcomes = Vec::with_capacity(appends.len());
    for Accepted { run, facts, .. } in appends {
        let facts = match facts {
            Ok(facts) => facts,
            Err(why) => {
                outcomes.push(Err(StoreError::BadRun(why)));
                continue;
            }
        };
        let conversation = state.get_mut(&tx, &run.conversation)?;
        if facts.first_seq <= conversation.last_seq {
            outcomes.push(Err(StoreError::BadRun("sequence numbers go backwards")));
            continue;
        }
        record::put_run(row, conversation.number, &run.sender, facts, &run.frames);
        conversation.sent(&run.sender, facts, log);
        last_ms = Some(last_ms.map_or(facts.last_ms, |ms| ms.max(facts.last_ms)));
        outcomes.push(Ok(()));
    }
    for ((key, member), seq) in cursors {
        if member.len() > MAX_KEY_BYTES {
            continue; // not a member key; see `Store::set_read`
        }
        let conversation = state.get_mut(&tx, &key)?;
        record::put_cursor(row, conversation.number, &member, seq);
        conversation.read(&member, seq);
    }
    if !row.is_empty() {
        let last_ms = last_ms.unwrap_or(state.last_ms);
        tx.prepare_cached("INSERT INTO log (id, last_ms, data) VALUES (?1, ?2, ?3)")?
            .execute(params![log, last_ms, &row[..]])?;
        state.last_log = log;
        state.last_ms = last_ms;
        state.window_rows += 1;
        state.window_bytes += row.len();
        if state.window_rows >= WINDOW_ROWS
            || state.window_bytes >= WINDOW_BYTES
            || state.dirty_count() >= MAX_DIRTY
        {
            state.write_window(&tx, log)?;
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

fn purge(conn: &mut Connection, state: &mut State, cutoff_ms: i64) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    // Index the tail first: its rows may go, and the tables must keep what they said.
    state.write_window(&tx, state.last_log)?;
    // Row ids are never reused, even once the newest rows are purged.
    state::set_meta(&tx, "log_high", state.last_log)?;
    // Rows are in time order but for a few milliseconds of skew between the relay's threads:
    // deleting the prefix touches only the rows that go, where a filter would read every row.
    let keep_from: Option<i64> = tx
        .query_row(
            "SELECT id FROM log WHERE last_ms >= ?1 ORDER BY id LIMIT 1",
            [cutoff_ms],
            |row| row.get(0),
        )
        .optional()?;
    let deleted = tx.execute(
        "DELETE FROM log WHERE id < ?1",
        [keep_from.unwrap_or(i64::MAX)],
    )?;
    tx.execute(
        "DELETE FROM entries WHERE last_log < (SELECT coalesce(min(id), 9223372036854775807) FROM log) \
         AND first_seq < (SELECT max(first_seq) FROM entries AS newest \
                          WHERE newest.conversation = entries.conversation)",
        [],
    )?;
    tx.commit()?;
    Ok(deleted)
}
