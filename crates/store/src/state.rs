//! What the writer knows between commits: each conversation's number, last seq and members'
//! state, and where the current index window's messages are. The tables hold all of it as of the
//! last index window; the log rows since (the tail) hold the rest, so memory only ever has to
//! keep what changed since the last window, and anything else can be dropped and re-read.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use crate::record::{self, Record, RunFacts};
use crate::{ConversationState, MemberState, MessageId, StoreError};

/// Conversations kept in memory once written to the tables; past this, written ones are dropped
/// (re-read on their next message). Those changed since the last window are always kept.
pub const MAX_CACHED: usize = if cfg!(test) { 16 } else { 100_000 };
/// Conversations changed since the last index window that force a window early, bounding both
/// the memory that cannot be dropped and the work of one window.
pub const MAX_DIRTY: usize = if cfg!(test) { 32 } else { 65_536 };

/// One member's state, as `MemberState` but sharing its key.
#[derive(Clone)]
struct Member {
    key: Arc<str>,
    last_sent_seq: u64,
    last_sent_id: MessageId,
    read_through: u64,
}

/// Where a conversation's messages are in the current window.
struct Span {
    first_seq: u64,
    last_seq: u64,
    first_log: i64,
    last_log: i64,
}

pub(crate) struct Conversation {
    pub number: u64,
    pub last_seq: u64,
    members: Vec<Member>,
    span: Option<Span>,
    /// Changed since the last index window (so it must stay in memory).
    dirty: bool,
}

#[derive(Default)]
pub(crate) struct State {
    conversations: HashMap<Arc<str>, Conversation>,
    dirty: Vec<Arc<str>>,
    pub window_rows: u64,
    pub window_bytes: usize,
    /// The highest log row id ever given out.
    pub last_log: i64,
    /// The newest `sent_ms` seen, for log rows that hold only cursors.
    pub last_ms: i64,
}

impl Conversation {
    fn member(&mut self, key: &Arc<str>) -> &mut Member {
        let at = match self.members.iter().position(|m| *m.key == **key) {
            Some(at) => at,
            None => {
                self.members.push(Member {
                    key: key.clone(),
                    last_sent_seq: 0,
                    last_sent_id: [0; 16],
                    read_through: 0,
                });
                self.members.len() - 1
            }
        };
        &mut self.members[at]
    }

    /// A run of `sender` with these facts was written to log row `log`.
    pub fn sent(&mut self, sender: &Arc<str>, facts: &RunFacts, log: i64) {
        self.last_seq = facts.last_seq;
        let member = self.member(sender);
        member.last_sent_seq = facts.last_seq;
        member.last_sent_id = facts.last_id;
        match &mut self.span {
            Some(span) => {
                span.last_seq = facts.last_seq;
                span.last_log = log;
            }
            None => {
                self.span = Some(Span {
                    first_seq: facts.first_seq,
                    last_seq: facts.last_seq,
                    first_log: log,
                    last_log: log,
                })
            }
        }
    }

    /// `member` has received everything through `seq` (a cursor never goes back).
    pub fn read(&mut self, member: &Arc<str>, seq: u64) {
        let member = self.member(member);
        member.read_through = member.read_through.max(seq);
    }

    fn snapshot(&self) -> ConversationState {
        let mut members: Vec<MemberState> = self.members.iter().map(Member::snapshot).collect();
        members.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        ConversationState {
            last_seq: self.last_seq,
            members,
        }
    }
}

impl Member {
    fn snapshot(&self) -> MemberState {
        MemberState {
            key: self.key.to_string(),
            last_sent_seq: self.last_sent_seq,
            last_sent_id: self.last_sent_id,
            read_through: self.read_through,
        }
    }
}

impl State {
    /// Rebuilds the state from the database: the tables, then the tail replayed in order.
    pub fn recover(conn: &Connection) -> Result<Self, StoreError> {
        let mut state = State {
            last_log: conn.query_row("SELECT coalesce(max(id), 0) FROM log", [], |r| r.get(0))?,
            last_ms: conn
                .query_row(
                    "SELECT last_ms FROM log ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0),
            ..State::default()
        };
        state.last_log = state.last_log.max(meta(conn, "log_high")?);
        let mut keys: HashMap<u64, Arc<str>> = HashMap::new();
        let mut rows = conn.prepare("SELECT id, data FROM log WHERE id > ?1 ORDER BY id")?;
        let mut rows = rows.query([meta(conn, "indexed_through")?])?;
        while let Some(row) = rows.next()? {
            let log: i64 = row.get(0)?;
            let data = row
                .get_ref(1)?
                .as_blob()
                .map_err(|_| StoreError::Damaged("a log row is not a blob"))?;
            state.window_rows += 1;
            state.window_bytes += data.len();
            for found in record::records(data) {
                let found = found.map_err(|e| StoreError::Damaged(e.0))?;
                let (Record::Run { conversation, .. } | Record::Cursor { conversation, .. }) =
                    found;
                let key = match keys.get(&conversation) {
                    Some(key) => key.clone(),
                    None => {
                        let key: Arc<str> = conversation_key(conn, conversation)?.into();
                        keys.insert(conversation, key.clone());
                        key
                    }
                };
                let entry = state.get_mut(conn, &key)?;
                match found {
                    Record::Run { sender, frames, .. } => {
                        let facts = record::check_run(frames).map_err(StoreError::Damaged)?;
                        entry.sent(&sender.into(), &facts, log);
                    }
                    Record::Cursor { member, seq, .. } => entry.read(&member.into(), seq),
                }
            }
        }
        Ok(state)
    }

    /// The conversation `key` for changing it, read from the tables (or created) if not in
    /// memory; it stays in memory until the next index window has written it.
    pub fn get_mut(
        &mut self,
        conn: &Connection,
        key: &Arc<str>,
    ) -> Result<&mut Conversation, StoreError> {
        let conversation = match self.conversations.entry(key.clone()) {
            Entry::Occupied(found) => found.into_mut(),
            Entry::Vacant(missing) => missing.insert(read_or_create(conn, key)?),
        };
        if !conversation.dirty {
            conversation.dirty = true;
            self.dirty.push(key.clone());
        }
        Ok(conversation)
    }

    /// The conversation as the writer knows it: from memory, else from the tables (which then
    /// hold all of it, since everything in the tail is in memory).
    pub fn load(&self, conn: &Connection, key: &str) -> Result<ConversationState, StoreError> {
        if let Some(conversation) = self.conversations.get(key) {
            return Ok(conversation.snapshot());
        }
        match find_conversation(conn, key)? {
            Some(number) => Ok(read_conversation(conn, number)?.snapshot()),
            None => Ok(ConversationState::default()),
        }
    }

    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Writes the window's index entries and the changed members' state, moves the watermark
    /// to log row `through`, and drops written conversations if memory holds too many.
    pub fn write_window(&mut self, conn: &Connection, through: i64) -> Result<(), StoreError> {
        let mut entry = conn.prepare_cached(
            "INSERT OR REPLACE INTO entries (conversation, first_seq, last_seq, first_log, last_log) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut member = conn.prepare_cached(
            "INSERT OR REPLACE INTO members \
             (conversation, member, last_sent_seq, last_sent_id, read_through) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for key in &self.dirty {
            let Some(conversation) = self.conversations.get_mut(key) else {
                continue;
            };
            let number = conversation.number as i64;
            if let Some(span) = conversation.span.take() {
                entry.execute(params![
                    number,
                    span.first_seq as i64,
                    span.last_seq as i64,
                    span.first_log,
                    span.last_log
                ])?;
            }
            for m in &conversation.members {
                member.execute(params![
                    number,
                    &*m.key,
                    m.last_sent_seq as i64,
                    &m.last_sent_id[..],
                    m.read_through as i64
                ])?;
            }
            conversation.dirty = false;
        }
        set_meta(conn, "indexed_through", through)?;
        self.dirty.clear();
        self.window_rows = 0;
        self.window_bytes = 0;
        if self.conversations.len() > MAX_CACHED {
            // Nothing is dirty now: keep an arbitrary three quarters, so the clearing is rare.
            let mut keep = MAX_CACHED * 3 / 4;
            self.conversations.retain(|_, _| {
                keep = keep.saturating_sub(1);
                keep > 0
            });
        }
        Ok(())
    }
}

fn read_or_create(conn: &Connection, key: &str) -> Result<Conversation, StoreError> {
    match find_conversation(conn, key)? {
        Some(number) => read_conversation(conn, number),
        None => {
            conn.prepare_cached("INSERT INTO conversations (key) VALUES (?1)")?
                .execute([key])?;
            Ok(Conversation {
                number: number(conn.last_insert_rowid())?,
                last_seq: 0,
                members: Vec::new(),
                span: None,
                dirty: false,
            })
        }
    }
}

fn read_conversation(conn: &Connection, number: u64) -> Result<Conversation, StoreError> {
    let last_seq: Option<i64> = conn
        .prepare_cached(
            "SELECT last_seq FROM entries WHERE conversation = ?1 ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row([number as i64], |row| row.get(0))
        .optional()?;
    let mut members = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT member, last_sent_seq, last_sent_id, read_through FROM members \
         WHERE conversation = ?1",
    )?;
    let mut rows = statement.query([number as i64])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let id: Vec<u8> = row.get(2)?;
        members.push(Member {
            key: key.into(),
            last_sent_seq: seq(row.get(1)?)?,
            last_sent_id: id
                .try_into()
                .map_err(|_| StoreError::Damaged("a stored message id is not 16 bytes"))?,
            read_through: seq(row.get(3)?)?,
        });
    }
    Ok(Conversation {
        number,
        last_seq: seq(last_seq.unwrap_or(0))?,
        members,
        span: None,
        dirty: false,
    })
}

/// The database's number for conversation `key`, if it has one.
pub(crate) fn find_conversation(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM conversations WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?;
    found.map(number).transpose()
}

fn conversation_key(conn: &Connection, number: u64) -> Result<String, StoreError> {
    conn.prepare_cached("SELECT key FROM conversations WHERE id = ?1")?
        .query_row([number as i64], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::Damaged(
            "a log record names an unknown conversation",
        ))
}

/// A value of the `meta` table (0 when absent).
pub(crate) fn meta(conn: &Connection, key: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: i64) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

fn number(id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Damaged("a conversation number is negative"))
}

/// A stored sequence number (SQLite integers are signed; ours never are).
pub(crate) fn seq(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Damaged("a sequence number is negative"))
}
