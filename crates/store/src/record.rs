//! How a log row is laid out: one row per group commit, holding a record per run (its frames
//! verbatim, behind a small header) and a record per read-cursor update. Writing a run is a
//! header and one copy of bytes the relay already encoded; nothing is re-encoded per message.
//! Pure; no database here.
//!
//! Records, all integers big-endian:
//! - run:    `1`, conversation u64, first_seq u64, count u32, sender_len u16, frames_len u32,
//!   sender (UTF-8), frames (whole `Message` frames with consecutive seqs)
//! - cursor: `2`, conversation u64, seq u64, member_len u16, member (UTF-8)

use bytes::BufMut;
use p2pchat_proto::{
    message_id, message_seq, peek_header, FrameType, MessageId, HEADER_LEN, MESSAGE_HEAD,
};

/// Longest sender or member key the store records, in bytes (keys are folded nicknames, far
/// shorter; the bound keeps a record header small and fixed-width).
pub const MAX_KEY_BYTES: usize = 1024;

const RUN: u8 = 1;
const CURSOR: u8 = 2;
/// Bytes of a run record before its sender.
const RUN_HEAD: usize = 1 + 8 + 8 + 4 + 2 + 4;
/// Bytes of a cursor record before its member.
const CURSOR_HEAD: usize = 1 + 8 + 8 + 2;
/// No stored frame is longer than its length field allows.
const MAX_FRAME: usize = u32::MAX as usize;

/// Stored bytes do not decode: the database was changed outside p2pchat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damaged(pub &'static str);

/// What the store needs to know about a run, learnt by walking its frame headers once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunFacts {
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u32,
    /// The last message's `sent_ms` (the relay stamps a run in order).
    pub last_ms: i64,
    pub last_id: MessageId,
}

/// One message frame found in a run: where it is and its fixed fields.
#[derive(Debug, Clone, Copy)]
pub struct FrameAt {
    pub start: usize,
    pub end: usize,
    pub seq: u64,
    pub sent_ms: i64,
    pub id: MessageId,
}

/// Walks the `Message` frames of a run, checking each header; it stops at the first problem.
pub fn frames(run: &[u8]) -> impl Iterator<Item = Result<FrameAt, &'static str>> + '_ {
    let mut at = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at == run.len() {
            return None;
        }
        let found = frame_at(run, at);
        match &found {
            Ok(frame) => at = frame.end,
            Err(_) => failed = true,
        }
        Some(found)
    })
}

fn frame_at(run: &[u8], start: usize) -> Result<FrameAt, &'static str> {
    let rest = &run[start..];
    let header = match peek_header(rest, MAX_FRAME) {
        Ok(Some(header)) => header,
        Ok(None) => return Err("a frame is cut short"),
        Err(_) => return Err("a frame header is invalid"),
    };
    if header.frame_type() != Some(FrameType::Message) {
        return Err("a frame is not a Message");
    }
    if header.payload_len <= MESSAGE_HEAD {
        return Err("a Message frame has no text");
    }
    let frame = rest
        .get(..header.frame_len())
        .ok_or("a frame is cut short")?;
    let sent_ms = frame
        .get(HEADER_LEN + 8..HEADER_LEN + 16)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes);
    match (message_seq(frame), sent_ms, message_id(frame)) {
        (Some(seq), Some(sent_ms), Some(id)) => Ok(FrameAt {
            start,
            end: start + frame.len(),
            seq,
            sent_ms,
            id,
        }),
        _ => Err("a frame is cut short"),
    }
}

/// Checks that `run` is one or more whole `Message` frames stamped with consecutive sequence
/// numbers from 1 up to `i64::MAX` (SQLite integers are signed).
pub fn check_run(run: &[u8]) -> Result<RunFacts, &'static str> {
    let mut facts: Option<RunFacts> = None;
    for frame in frames(run) {
        let frame = frame?;
        if frame.seq == 0 || frame.seq > i64::MAX as u64 {
            return Err("a sequence number is 0 or too large");
        }
        facts = Some(match facts {
            None => RunFacts {
                first_seq: frame.seq,
                last_seq: frame.seq,
                count: 1,
                last_ms: frame.sent_ms,
                last_id: frame.id,
            },
            Some(so_far) => {
                if frame.seq != so_far.last_seq + 1 {
                    return Err("sequence numbers are not consecutive");
                }
                RunFacts {
                    last_seq: frame.seq,
                    count: so_far.count.checked_add(1).ok_or("too many frames")?,
                    last_ms: frame.sent_ms,
                    last_id: frame.id,
                    ..so_far
                }
            }
        });
    }
    facts.ok_or("the run is empty")
}

/// Appends a run record. `sender` is at most `MAX_KEY_BYTES` and `frames` passed `check_run`.
pub fn put_run(
    out: &mut impl BufMut,
    conversation: u64,
    sender: &str,
    facts: &RunFacts,
    frames: &[u8],
) {
    out.put_u8(RUN);
    out.put_u64(conversation);
    out.put_u64(facts.first_seq);
    out.put_u32(facts.count);
    out.put_u16(sender.len() as u16);
    out.put_u32(frames.len() as u32);
    out.put_slice(sender.as_bytes());
    out.put_slice(frames);
}

/// Appends a cursor record. `member` is at most `MAX_KEY_BYTES`.
pub fn put_cursor(out: &mut impl BufMut, conversation: u64, member: &str, seq: u64) {
    out.put_u8(CURSOR);
    out.put_u64(conversation);
    out.put_u64(seq);
    out.put_u16(member.len() as u16);
    out.put_slice(member.as_bytes());
}

/// One record of a log row, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Run {
        conversation: u64,
        first_seq: u64,
        count: u32,
        sender: &'a str,
        frames: &'a [u8],
    },
    Cursor {
        conversation: u64,
        member: &'a str,
        seq: u64,
    },
}

/// The records of a log row, in the order they were written; stops at the first damage.
pub fn records(row: &[u8]) -> impl Iterator<Item = Result<Record<'_>, Damaged>> + '_ {
    let mut rest = row;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let found = next_record(&mut rest);
        if found.is_err() {
            rest = &[];
        }
        Some(found)
    })
}

fn next_record<'a>(rest: &mut &'a [u8]) -> Result<Record<'a>, Damaged> {
    let cut = Damaged("a log record is cut short");
    match rest.first() {
        Some(&RUN) => {
            let head = take(rest, RUN_HEAD).ok_or(cut)?;
            let sender_len = u16::from_be_bytes([head[21], head[22]]) as usize;
            let frames_len = be_u32(&head[23..27]) as usize;
            let sender = key(take(rest, sender_len).ok_or(cut)?)?;
            let frames = take(rest, frames_len).ok_or(cut)?;
            Ok(Record::Run {
                conversation: be_u64(&head[1..9]),
                first_seq: be_u64(&head[9..17]),
                count: be_u32(&head[17..21]),
                sender,
                frames,
            })
        }
        Some(&CURSOR) => {
            let head = take(rest, CURSOR_HEAD).ok_or(cut)?;
            let member_len = u16::from_be_bytes([head[17], head[18]]) as usize;
            let member = key(take(rest, member_len).ok_or(cut)?)?;
            Ok(Record::Cursor {
                conversation: be_u64(&head[1..9]),
                seq: be_u64(&head[9..17]),
                member,
            })
        }
        _ => Err(Damaged("a log record has an unknown kind")),
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = rest.split_at_checked(n)?;
    *rest = tail;
    Some(head)
}

fn key(bytes: &[u8]) -> Result<&str, Damaged> {
    std::str::from_utf8(bytes).map_err(|_| Damaged("a stored nickname is not UTF-8"))
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(bytes);
    u64::from_be_bytes(buf)
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0; 4];
    buf.copy_from_slice(bytes);
    u32::from_be_bytes(buf)
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
