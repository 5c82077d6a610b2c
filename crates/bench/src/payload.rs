//! Message payloads that carry their own identity, and the checker that verifies every message
//! of a conversation arrived exactly once and in order.
//!
//! A payload of `size` bytes is ASCII: the conversation number (6 digits), `-`, the message index
//! (10 digits), `-`, then `x` up to `size` bytes, e.g. `000003-0000000042-xxxx…`. The same bytes
//! are sent to every target, so "message size" means the same thing for all of them.

use std::fmt;

/// Bytes of the identifying header; the smallest payload size.
pub const HEADER_LEN: usize = 18;
/// Largest conversation number that fits the header.
pub const MAX_CONVERSATIONS: u32 = 999_999;
/// The padding byte after the header.
const PAD: u8 = b'x';

/// Appends `value` as exactly `width` decimal digits (the value must fit).
fn put_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Appends the payload of message `index` of conversation `conv`, `size` bytes long
/// (`size >= HEADER_LEN`).
pub fn write_payload(out: &mut Vec<u8>, conv: u32, index: u64, size: usize) {
    put_digits(out, u64::from(conv), 6);
    out.push(b'-');
    put_digits(out, index, 10);
    out.push(b'-');
    out.resize(out.len() + size.saturating_sub(HEADER_LEN), PAD);
}

/// Why a received payload is not the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// The payload has the wrong length.
    WrongSize { got: usize, want: usize },
    /// The header or padding is not in the expected format.
    Garbled,
    /// The message belongs to another conversation (the relay paired the wrong connections).
    WrongConversation { got: u32, want: u32 },
    /// A message was skipped (`got > want`) or repeated/reordered (`got < want`).
    OutOfOrder { got: u64, want: u64 },
    /// More messages arrived than were sent.
    TooMany { total: u64 },
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSize { got, want } => {
                write!(f, "message of {got} bytes where {want} were sent")
            }
            Self::Garbled => write!(f, "message text is not what was sent (garbled)"),
            Self::WrongConversation { got, want } => write!(
                f,
                "message of conversation {got} arrived on conversation {want}: connections were \
                 paired differently than expected"
            ),
            Self::OutOfOrder { got, want } if got > want => write!(
                f,
                "message {got} arrived when {want} was expected: messages {want}..{got} are missing"
            ),
            Self::OutOfOrder { got, want } => write!(
                f,
                "message {got} arrived again or out of order (expected {want})"
            ),
            Self::TooMany { total } => write!(f, "more than the {total} messages sent arrived"),
        }
    }
}

impl std::error::Error for PayloadError {}

fn parse_digits(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Reads `(conversation, index)` from a payload of the expected `size`.
pub fn parse_payload(payload: &[u8], size: usize) -> Result<(u32, u64), PayloadError> {
    if payload.len() != size {
        return Err(PayloadError::WrongSize {
            got: payload.len(),
            want: size,
        });
    }
    let (head, pad) = payload.split_at(HEADER_LEN.min(payload.len()));
    if head.len() != HEADER_LEN || head[6] != b'-' || head[17] != b'-' {
        return Err(PayloadError::Garbled);
    }
    let conv = parse_digits(&head[..6]).ok_or(PayloadError::Garbled)?;
    let index = parse_digits(&head[7..17]).ok_or(PayloadError::Garbled)?;
    if pad.iter().any(|&b| b != PAD) {
        return Err(PayloadError::Garbled);
    }
    Ok((conv as u32, index))
}

/// Verifies the messages of one direction of one conversation: `total` messages, indexes
/// `0..total`, each exactly once, in order.
#[derive(Debug, Clone)]
pub struct Checker {
    conv: u32,
    size: usize,
    next: u64,
    total: u64,
}

impl Checker {
    /// A checker expecting `total` messages of `size` bytes for conversation `conv`.
    pub fn new(conv: u32, size: usize, total: u64) -> Self {
        Self {
            conv,
            size,
            next: 0,
            total,
        }
    }

    /// Checks the next message; returns the index it carried.
    pub fn check(&mut self, payload: &[u8]) -> Result<u64, PayloadError> {
        let (conv, index) = parse_payload(payload, self.size)?;
        if conv != self.conv {
            return Err(PayloadError::WrongConversation {
                got: conv,
                want: self.conv,
            });
        }
        if self.next >= self.total {
            return Err(PayloadError::TooMany { total: self.total });
        }
        if index != self.next {
            return Err(PayloadError::OutOfOrder {
                got: index,
                want: self.next,
            });
        }
        self.next += 1;
        Ok(index)
    }

    /// Messages verified so far.
    pub fn received(&self) -> u64 {
        self.next
    }

    /// Whether every expected message arrived.
    pub fn is_done(&self) -> bool {
        self.next == self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(conv: u32, index: u64, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_payload(&mut out, conv, index, size);
        out
    }

    #[test]
    fn payload_is_ascii_with_header_and_padding() {
        assert_eq!(payload(3, 42, 24), b"000003-0000000042-xxxxxx");
        assert_eq!(payload(999_999, 9_999_999_999, 18), b"999999-9999999999-");
        assert_eq!(parse_payload(&payload(7, 123, 64), 64), Ok((7, 123)));
    }

    #[test]
    fn checker_accepts_the_sequence_once() {
        let mut checker = Checker::new(5, 32, 3);
        for index in 0..3 {
            assert_eq!(checker.check(&payload(5, index, 32)), Ok(index));
        }
        assert!(checker.is_done());
        assert_eq!(
            checker.check(&payload(5, 3, 32)),
            Err(PayloadError::TooMany { total: 3 })
        );
    }

    #[test]
    fn checker_reports_loss_duplicates_and_mixups() {
        let mut checker = Checker::new(1, 32, 10);
        assert_eq!(checker.check(&payload(1, 0, 32)), Ok(0));
        assert_eq!(
            checker.check(&payload(1, 0, 32)),
            Err(PayloadError::OutOfOrder { got: 0, want: 1 })
        );
        assert_eq!(
            checker.check(&payload(1, 5, 32)),
            Err(PayloadError::OutOfOrder { got: 5, want: 1 })
        );
        assert_eq!(
            checker.check(&payload(2, 1, 32)),
            Err(PayloadError::WrongConversation { got: 2, want: 1 })
        );
        assert_eq!(
            checker.check(&payload(1, 1, 33)),
            Err(PayloadError::WrongSize { got: 33, want: 32 })
        );
        let mut garbled = payload(1, 1, 32);
        garbled[20] = b'y';
        assert_eq!(checker.check(&garbled), Err(PayloadError::Garbled));
        garbled = payload(1, 1, 32);
        garbled[3] = b'a';
        assert_eq!(checker.check(&garbled), Err(PayloadError::Garbled));
        assert_eq!(checker.received(), 1);
    }
}
