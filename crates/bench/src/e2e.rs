//! How one side of a conversation writes and checks messages, in plaintext or end-to-end mode.
//!
//! Plaintext: one message per frame (or per Redis/NATS command), the payload as the body.
//! End-to-end: messages are sealed with `p2pchat_secure::Channel` to the companion's key, up to
//! `lines` of them (consecutive, of one conversation) per envelope, one envelope per `Message`
//! frame, as the client batches what it has queued. Each frame's id is the conversation and the
//! first message's index, and the envelope's counter is that index plus one, so both grow with
//! every frame. The receiver opens every envelope (the id and direction are authenticated) and
//! checks every line with the same `Checker` as plaintext payloads: each message exactly once,
//! in order. An envelope that does not open, or whose counter does not grow, is an error and
//! counts no message.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use p2pchat_proto::{FrameType, MessageId};
use p2pchat_secure::e2e::{sealed_len, LINE_HEAD, OVERHEAD, PLAIN_HEAD};
use p2pchat_secure::{Channel, E2eError};

use crate::payload::{write_payload, Checker, PayloadError};
use crate::wire::{Encoder, Proto};

/// Sealing and opening to one companion, and how many messages go in one envelope.
#[derive(Clone)]
struct Sealed {
    channel: Arc<Channel>,
    lines: u64,
}

/// How one side of a conversation encodes what it sends and checks what it receives.
#[derive(Clone)]
pub struct Codec {
    encoder: Encoder,
    size: usize,
    sealed: Option<Sealed>,
}

/// Why a received message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// A payload (or a line of an envelope) is not the message expected.
    Payload(PayloadError),
    /// The envelope did not open.
    Envelope(E2eError),
    /// The envelope opened but its counter did not grow: a replay.
    Replayed { counter: u64, last: u64 },
    /// The envelope holds no line.
    Empty,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payload(err) => err.fmt(f),
            Self::Envelope(err) => write!(f, "end-to-end envelope refused: {err}"),
            Self::Replayed { counter, last } => write!(
                f,
                "envelope counter {counter} after {last}: replayed or reordered"
            ),
            Self::Empty => write!(f, "an envelope with no message in it"),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<PayloadError> for VerifyError {
    fn from(err: PayloadError) -> Self {
        Self::Payload(err)
    }
}

/// Most lines of `size` bytes an envelope may hold within a relay limit of `max_message`
/// body bytes, capped at `batch`; 0 when not even one fits.
pub fn lines_that_fit(batch: usize, size: usize, max_message: u32) -> u64 {
    let room = (max_message as usize).saturating_sub(OVERHEAD + PLAIN_HEAD);
    let fit = room / (LINE_HEAD + size);
    fit.min(batch).min(usize::from(u16::MAX)) as u64
}

/// The frame id of the envelope whose first message is `index` of conversation `conv`.
fn frame_id(conv: u32, index: u64) -> MessageId {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&conv.to_be_bytes());
    id[4..12].copy_from_slice(&index.to_be_bytes());
    id
}

impl Codec {
    /// Messages of `size` bytes sent as `encoder` writes them, one per frame or command.
    pub fn plain(encoder: Encoder, size: usize) -> Self {
        Self {
            encoder,
            size,
            sealed: None,
        }
    }

    /// p2pchat messages of `size` bytes sealed with `channel`, up to `lines` per envelope (at
    /// least 1).
    pub fn sealed(size: usize, channel: Arc<Channel>, lines: u64) -> Self {
        Self {
            encoder: Encoder::new(Proto::Framed, "", size),
            size,
            sealed: Some(Sealed {
                channel,
                lines: lines.max(1),
            }),
        }
    }

    /// Most messages in one frame (1 in plaintext).
    pub fn per_frame(&self) -> u64 {
        self.sealed.as_ref().map_or(1, |sealed| sealed.lines)
    }

    /// The frames `messages` consecutive messages take, from a frame boundary.
    pub fn frames_for(&self, messages: u64) -> u64 {
        messages.div_ceil(self.per_frame())
    }

    /// Appends messages `range` of conversation `conv`: one frame each in plaintext, else
    /// envelopes of `per_frame` messages from `range.start` (the last may hold fewer). Returns
    /// how many frames it appended.
    pub fn encode(&self, out: &mut Vec<u8>, conv: u32, range: Range<u64>) -> Result<u64, E2eError> {
        let Some(sealed) = &self.sealed else {
            for index in range.clone() {
                self.encoder.message(out, conv, index, self.size);
            }
            return Ok(range.end.saturating_sub(range.start));
        };
        let mut frames = 0;
        let mut first = range.start;
        let mut text = Vec::with_capacity(self.size * sealed.lines as usize);
        while first < range.end {
            let last = range.end.min(first + sealed.lines);
            text.clear();
            for index in first..last {
                write_payload(&mut text, conv, index, self.size);
            }
            // Payloads are ASCII, so each slice of `size` bytes is a whole line of UTF-8.
            let lines = text
                .chunks(self.size)
                .map(std::str::from_utf8)
                .collect::<Result<Vec<&str>, _>>()
                .map_err(|_| E2eError::Malformed("payload not UTF-8"))?;
            seal_frame(
                out,
                &sealed.channel,
                frame_id(conv, first),
                first + 1,
                &lines,
            )?;
            frames += 1;
            first = last;
        }
        Ok(frames)
    }

    /// A verifier of the `total` messages of conversation `conv` arriving at this side.
    pub fn verifier(&self, conv: u32, total: u64) -> Verifier {
        Verifier {
            checker: Checker::new(conv, self.size, total),
            channel: self.sealed.as_ref().map(|sealed| sealed.channel.clone()),
            last_counter: 0,
        }
    }
}

/// Appends a `Message` frame (seq and time 0, for the relay to stamp) carrying `lines` sealed
/// with `channel` as message `id` with `counter`.
pub fn seal_frame(
    out: &mut Vec<u8>,
    channel: &Channel,
    id: MessageId,
    counter: u64,
    lines: &[&str],
) -> Result<(), E2eError> {
    let start = out.len();
    out.reserve(4 + 1 + 32 + sealed_len(lines.iter().map(|line| line.len())));
    out.extend_from_slice(&[0; 4]);
    out.push(FrameType::Message as u8);
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&id);
    channel.seal_into(&id, counter, lines, out)?;
    let len = u32::try_from(out.len() - start - 4).map_err(|_| E2eError::TooManyLines)?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Checks what arrives at one side: every message of its conversation exactly once, in order,
/// after opening its envelope in end-to-end mode.
pub struct Verifier {
    checker: Checker,
    channel: Option<Arc<Channel>>,
    last_counter: u64,
}

impl Verifier {
    /// Checks one received frame's body (or a plaintext target's message) with this id;
    /// returns the indexes of the messages it carried. On an error nothing is counted from an
    /// envelope that did not open; lines of an opened envelope are counted up to the bad one.
    pub fn check(&mut self, id: &MessageId, body: &[u8]) -> Result<Range<u64>, VerifyError> {
        let Some(channel) = &self.channel else {
            let index = self.checker.check(body)?;
            return Ok(index..index + 1);
        };
        let plain = channel
            .open(false, id, body)
            .map_err(VerifyError::Envelope)?;
        if plain.counter <= self.last_counter {
            return Err(VerifyError::Replayed {
                counter: plain.counter,
                last: self.last_counter,
            });
        }
        if plain.texts.is_empty() {
            return Err(VerifyError::Empty);
        }
        self.last_counter = plain.counter;
        let first = self.checker.received();
        for text in &plain.texts {
            self.checker.check(text.as_bytes())?;
        }
        Ok(first..self.checker.received())
    }

    /// Messages verified so far.
    pub fn received(&self) -> u64 {
        self.checker.received()
    }

    /// Whether every expected message arrived.
    pub fn is_done(&self) -> bool {
        self.checker.is_done()
    }
}

#[cfg(test)]
#[path = "e2e_tests.rs"]
mod tests;
