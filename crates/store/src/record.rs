//! How messages are laid out in a log row: one row per group commit, holding that commit's
//! messages of every conversation, so a commit writes one row (one sequential append) however
//! many conversations it touches. Pure; no database here.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A client-chosen message id: lets a re-sent message be recognised and stored once.
pub type MessageId = [u8; 16];

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The conversation's number in the database.
    pub conversation: u64,
    /// Position in its conversation, from 1, strictly increasing.
    pub seq: u64,
    /// The client-chosen id.
    pub id: MessageId,
    /// Who sent it.
    pub sender: String,
    /// When the relay received it, in milliseconds since the Unix epoch.
    pub sent_ms: i64,
    /// The message as the relay saw it (text today, ciphertext once encryption lands).
    pub body: Bytes,
}

/// The row is damaged: the database was modified outside the relay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored log row is damaged ({0})")]
pub struct Damaged(pub &'static str);

/// Fixed bytes before a record's sender: conversation, seq, sent_ms, id, sender length.
const FIXED: usize = 8 + 8 + 8 + 16 + 2;

/// A record's fixed fields, borrowed.
pub struct Head<'a> {
    /// See `Stored::conversation`.
    pub conversation: u64,
    /// See `Stored::seq`.
    pub seq: u64,
    /// See `Stored::sent_ms`.
    pub sent_ms: i64,
    /// See `Stored::id`.
    pub id: &'a MessageId,
}

/// Appends one record: conversation u64, seq u64, sent_ms i64, id (16 bytes), sender (u16
/// length + UTF-8), body (u32 length + bytes), all big-endian. Takes borrowed parts, so the
/// writer never copies a sender or a body to build a record.
pub fn encode(out: &mut BytesMut, head: &Head<'_>, sender: &str, body: &[u8]) {
    out.put_u64(head.conversation);
    out.put_u64(head.seq);
    out.put_i64(head.sent_ms);
    out.put_slice(head.id);
    let sender = truncate_utf8(sender, u16::MAX as usize);
    out.put_u16(sender.len() as u16);
    out.put_slice(sender.as_bytes());
    let body = &body[..body.len().min(u32::MAX as usize)];
    out.put_u32(body.len() as u32);
    out.put_slice(body);
}

fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Every record of one log row, in the order they were committed.
pub fn decode(data: &[u8]) -> Result<Vec<Stored>, Damaged> {
    let mut rest = Bytes::copy_from_slice(data);
    let mut messages = Vec::new();
    while rest.has_remaining() {
        if rest.remaining() < FIXED {
            return Err(Damaged("truncated header"));
        }
        let conversation = rest.get_u64();
        let seq = rest.get_u64();
        let sent_ms = rest.get_i64();
        let mut id = [0u8; 16];
        rest.copy_to_slice(&mut id);
        let sender_len = rest.get_u16() as usize;
        if rest.remaining() < sender_len + 4 {
            return Err(Damaged("truncated sender"));
        }
        let sender = String::from_utf8(rest.split_to(sender_len).to_vec())
            .map_err(|_| Damaged("sender is not UTF-8"))?;
        let body_len = rest.get_u32() as usize;
        if rest.remaining() < body_len {
            return Err(Damaged("truncated body"));
        }
        let body = rest.split_to(body_len);
        messages.push(Stored {
            conversation,
            seq,
            id,
            sender,
            sent_ms,
            body,
        });
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_message(out: &mut BytesMut, message: &Stored) {
        let head = Head {
            conversation: message.conversation,
            seq: message.seq,
            sent_ms: message.sent_ms,
            id: &message.id,
        };
        encode(out, &head, &message.sender, &message.body);
    }

    fn message(conversation: u64, seq: u64, sender: &str, body: &[u8]) -> Stored {
        Stored {
            conversation,
            seq,
            id: [seq as u8; 16],
            sender: sender.into(),
            sent_ms: 1_700_000_000_000 + seq as i64,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn records_round_trip() {
        let messages = [
            message(1, 41, "Nick1", b"Sup"),
            message(7, 1, "Зоя", "😀".as_bytes()),
            message(1, 42, "Nick1", b""),
        ];
        let mut out = BytesMut::new();
        for m in &messages {
            encode_message(&mut out, m);
        }
        assert_eq!(decode(&out).unwrap(), messages);
    }

    #[test]
    fn damage_is_reported_not_panicked_on() {
        let mut out = BytesMut::new();
        encode_message(&mut out, &message(1, 1, "Nick1", b"hello"));
        for cut in 1..out.len() {
            assert!(decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = out.to_vec();
        bad[FIXED] = 0xFF; // first sender byte
        assert!(decode(&bad).is_err());
    }
}
