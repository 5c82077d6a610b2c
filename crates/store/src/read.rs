//! Reading a conversation's messages back, on the reader connection, never waiting for the
//! writer. Each read is one read transaction, so the watermark, the index and the rows are seen
//! as of the same commit. Messages are found through the index windows (`entries`) and, for the
//! newest, by scanning the unindexed tail; a run's frames are split with the protocol codec.

use std::sync::Arc;

use bytes::Bytes;
use p2pchat_proto::{HEADER_LEN, MESSAGE_HEAD};
use rusqlite::{Connection, OptionalExtension};

use crate::record::{self, Record};
use crate::state::{find_conversation, meta, seq};
use crate::{StoreError, StoredMessage};

/// A run record of the conversation being read, borrowed from its row.
struct RunRef<'a> {
    first_seq: u64,
    count: u32,
    sender: &'a str,
    frames: &'a [u8],
}

/// Where to look, as of one read transaction.
struct Places<'a> {
    tx: &'a Connection,
    conversation: u64,
    /// Log rows after this one are the tail.
    indexed_through: i64,
    /// The conversation's highest indexed seq: the tail only holds higher ones.
    indexed_seq: u64,
}

impl<'a> Places<'a> {
    fn new(tx: &'a Connection, key: &str) -> Result<Option<Self>, StoreError> {
        let Some(conversation) = find_conversation(tx, key)? else {
            return Ok(None);
        };
        let indexed_seq: Option<i64> = tx
            .prepare_cached(
                "SELECT last_seq FROM entries WHERE conversation = ?1 \
                 ORDER BY first_seq DESC LIMIT 1",
            )?
            .query_row([conversation as i64], |row| row.get(0))
            .optional()?;
        Ok(Some(Self {
            tx,
            conversation,
            indexed_through: meta(tx, "indexed_through")?,
            indexed_seq: seq(indexed_seq.unwrap_or(0))?,
        }))
    }

    /// Calls `visit` with the conversation's runs in log rows `after < id <= through`, oldest
    /// or newest first; returns false as soon as `visit` does (it has what it needs).
    fn runs(
        &self,
        after: i64,
        through: i64,
        newest_first: bool,
        visit: &mut impl FnMut(RunRef<'_>) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let mut statement = self.tx.prepare_cached(if newest_first {
            "SELECT data FROM log WHERE id > ?1 AND id <= ?2 ORDER BY id DESC"
        } else {
            "SELECT data FROM log WHERE id > ?1 AND id <= ?2 ORDER BY id"
        })?;
        let mut rows = statement.query([after, through])?;
        while let Some(row) = rows.next()? {
            let data = row
                .get_ref(0)?
                .as_blob()
                .map_err(|_| StoreError::Damaged("a log row is not a blob"))?;
            let mut found = Vec::new();
            for record in record::records(data) {
                match record.map_err(|e| StoreError::Damaged(e.0))? {
                    Record::Run {
                        conversation,
                        first_seq,
                        count,
                        sender,
                        frames,
                    } if conversation == self.conversation => found.push(RunRef {
                        first_seq,
                        count,
                        sender,
                        frames,
                    }),
                    _ => {}
                }
            }
            if newest_first {
                found.reverse();
            }
            for run in found {
                if !visit(run)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// The newest up to `limit` messages with seq < `before` (0: no bound), oldest first.
pub fn before(
    conn: &mut Connection,
    key: &str,
    before: u64,
    limit: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    let bound = if before == 0 { u64::MAX } else { before };
    let tx = conn.transaction()?;
    let Some(places) = Places::new(&tx, key)? else {
        return Ok(Vec::new());
    };
    let mut newest_first = Vec::new();
    let mut visit = |run: RunRef<'_>| {
        if newest_first.len() >= limit {
            return Ok(false);
        }
        if run.first_seq >= bound {
            return Ok(true);
        }
        for message in messages(&run)?.into_iter().rev() {
            if message.seq < bound {
                newest_first.push(message);
                if newest_first.len() >= limit {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    let mut go_on = true;
    if bound > places.indexed_seq.saturating_add(1) {
        go_on = places.runs(places.indexed_through, i64::MAX, true, &mut visit)?;
    }
    if go_on {
        let mut windows = tx.prepare_cached(
            "SELECT first_log, last_log FROM entries WHERE conversation = ?1 AND first_seq < ?2 \
             ORDER BY first_seq DESC",
        )?;
        let mut rows = windows.query([
            places.conversation as i64,
            bound.min(i64::MAX as u64) as i64,
        ])?;
        while let Some(row) = rows.next()? {
            let (first_log, last_log): (i64, i64) = (row.get(0)?, row.get(1)?);
            if !places.runs(first_log - 1, last_log, true, &mut visit)? {
                break;
            }
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}

/// The first up to `limit` messages with `after < seq <= through`, oldest first, stopping
/// before `max_bytes` of frames would be passed (but always with a first message if any).
pub fn after(
    conn: &mut Connection,
    key: &str,
    after: u64,
    through: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<StoredMessage>, StoreError> {
    if limit == 0 || through <= after {
        return Ok(Vec::new());
    }
    let tx = conn.transaction()?;
    let Some(places) = Places::new(&tx, key)? else {
        return Ok(Vec::new());
    };
    let mut found: Vec<StoredMessage> = Vec::new();
    let mut bytes = 0;
    let mut visit = |run: RunRef<'_>| {
        if run.first_seq > through {
            return Ok(false);
        }
        if run.first_seq.saturating_add(u64::from(run.count)) <= after.saturating_add(1) {
            return Ok(true); // all of it is at or before `after`
        }
        for message in messages(&run)? {
            if message.seq <= after {
                continue;
            }
            if message.seq > through
                || (!found.is_empty() && bytes + message.frame.len() > max_bytes)
            {
                return Ok(false);
            }
            bytes += message.frame.len();
            let last = message.seq == through;
            found.push(message);
            if last || found.len() >= limit {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let mut windows = tx.prepare_cached(
        "SELECT first_log, last_log FROM entries WHERE conversation = ?1 \
         AND first_seq >= coalesce((SELECT max(first_seq) FROM entries \
                                    WHERE conversation = ?1 AND first_seq <= ?2), 0) \
         AND first_seq <= ?3 ORDER BY first_seq",
    )?;
    let lowest = after.saturating_add(1).min(i64::MAX as u64) as i64;
    let highest = through.min(i64::MAX as u64) as i64;
    let mut rows = windows.query([places.conversation as i64, lowest, highest])?;
    let mut go_on = true;
    while let Some(row) = rows.next()? {
        let (first_log, last_log): (i64, i64) = (row.get(0)?, row.get(1)?);
        go_on = places.runs(first_log - 1, last_log, false, &mut visit)?;
        if !go_on {
            break;
        }
    }
    if go_on && through > places.indexed_seq {
        places.runs(places.indexed_through, i64::MAX, false, &mut visit)?;
    }
    Ok(found)
}

/// A run's messages, oldest first, each holding its frame as stored (one copy per run).
fn messages(run: &RunRef<'_>) -> Result<Vec<StoredMessage>, StoreError> {
    let frames = Bytes::copy_from_slice(run.frames);
    let sender: Arc<str> = run.sender.into();
    let mut messages = Vec::new();
    for frame in record::frames(&frames) {
        let frame = frame.map_err(StoreError::Damaged)?;
        let body = frames.get(frame.start + HEADER_LEN + MESSAGE_HEAD..frame.end);
        if body.is_none_or(<[u8]>::is_empty) {
            return Err(StoreError::Damaged("a stored message has no body"));
        }
        messages.push(StoredMessage {
            seq: frame.seq,
            sent_ms: frame.sent_ms,
            sender: sender.clone(),
            id: frame.id,
            frame: frames.slice(frame.start..frame.end),
        });
    }
    Ok(messages)
}
