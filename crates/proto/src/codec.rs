//! Frame encoding and decoding over plain byte slices.
//!
//! A frame is a big-endian `u32` length, then that many bytes: a type byte and the payload. The
//! decoder reads the length before anything else and refuses one over the caller's limit before
//! it allocates; it never panics, whatever the input (fuzzed in `fuzz/`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::frame::{
    ChatMessage, ConversationInfo, EarlierMessage, ErrorCode, FileChunk, Frame, FrameType,
    LeftReason, OnlineEntry,
};
use crate::{HELLO_MAGIC, MAX_SHORT_TEXT};

/// Bytes before a frame's payload: the `u32` length and the type byte.
pub const HEADER_LEN: usize = 5;

/// Bytes of a `Message` payload before its body: seq (8), sent_ms (8), id (16).
pub const MESSAGE_HEAD: usize = 32;

/// Bytes of a `Chunk` payload before its body: transfer (16), offset (8).
pub const CHUNK_HEAD: usize = 24;

/// Writes the relay's `seq` and `sent_ms` into an encoded `Message` frame (header included), in
/// place. The caller has checked that `frame` is a whole `Message` frame.
pub fn stamp_message(frame: &mut [u8], seq: u64, sent_ms: i64) {
    frame[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&seq.to_be_bytes());
    frame[HEADER_LEN + 8..HEADER_LEN + 16].copy_from_slice(&sent_ms.to_be_bytes());
}

/// The id of an encoded `Message` frame (header included); `None` if it is too short.
pub fn message_id(frame: &[u8]) -> Option<crate::MessageId> {
    frame
        .get(HEADER_LEN + 16..HEADER_LEN + MESSAGE_HEAD)?
        .try_into()
        .ok()
}

/// The sequence number stamped in an encoded `Message` frame (header included).
pub fn message_seq(frame: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = frame.get(HEADER_LEN..HEADER_LEN + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// What `peek_header` learns from the first bytes of a frame, without looking at its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The raw type byte (may be unknown to this version).
    pub type_byte: u8,
    /// Bytes of payload after the type byte.
    pub payload_len: usize,
}

impl Header {
    /// Bytes the whole frame takes on the wire, header included.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// The frame type, if this version knows the type byte.
    pub fn frame_type(&self) -> Option<FrameType> {
        FrameType::from_u8(self.type_byte)
    }
}

/// Why bytes could not be decoded into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length field is zero: there is not even a type byte. The stream cannot be trusted.
    #[error("frame length is 0 (a frame holds at least its type byte)")]
    EmptyFrame,
    /// The length field is over the limit. The stream cannot be trusted.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// Length announced by the frame.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The type byte is unknown; the whole frame can be skipped.
    #[error("unknown frame type 0x{type_byte:02x}")]
    UnknownType {
        /// The unknown type byte.
        type_byte: u8,
        /// Bytes to skip to reach the next frame.
        frame_len: usize,
    },
    /// A field is missing, too long, or out of range; the whole frame can be skipped.
    #[error("malformed {frame_type:?} frame: {reason}")]
    Malformed {
        /// The frame's type.
        frame_type: FrameType,
        /// What is wrong with it.
        reason: &'static str,
        /// Bytes to skip to reach the next frame.
        frame_len: usize,
    },
    /// A text field is not UTF-8; the whole frame can be skipped.
    #[error("{frame_type:?} frame text is not valid UTF-8")]
    InvalidUtf8 {
        /// The frame's type.
        frame_type: FrameType,
        /// Bytes to skip to reach the next frame.
        frame_len: usize,
    },
}

impl DecodeError {
    /// Bytes to skip to step over the bad frame and go on, or `None` when the frame boundary is
    /// lost and the connection must be closed.
    pub fn skip_len(&self) -> Option<usize> {
        match self {
            Self::EmptyFrame | Self::TooLarge { .. } => None,
            Self::UnknownType { frame_len, .. }
            | Self::Malformed { frame_len, .. }
            | Self::InvalidUtf8 { frame_len, .. } => Some(*frame_len),
        }
    }

    /// The protocol error code to report to the peer that sent the bad frame.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::EmptyFrame | Self::Malformed { .. } => ErrorCode::MalformedFrame,
            Self::TooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::UnknownType { .. } => ErrorCode::UnknownType,
            Self::InvalidUtf8 { .. } => ErrorCode::InvalidUtf8,
        }
    }
}

/// Reads a frame header from the start of `buf`. `Ok(None)` means fewer than `HEADER_LEN` bytes
/// are there yet. `max_frame_len` bounds the type byte plus payload, i.e. the length field.
pub fn peek_header(buf: &[u8], max_frame_len: usize) -> Result<Option<Header>, DecodeError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 {
        return Err(DecodeError::EmptyFrame);
    }
    if len > max_frame_len {
        return Err(DecodeError::TooLarge {
            len,
            max: max_frame_len,
        });
    }
    Ok(Some(Header {
        type_byte: head[4],
        payload_len: len - 1,
    }))
}

/// Decodes the frame at the start of `buf`. Returns the frame and the bytes it took, or
/// `Ok(None)` when `buf` does not yet hold a whole frame (read more and call again).
pub fn decode(buf: &[u8], max_frame_len: usize) -> Result<Option<(Frame, usize)>, DecodeError> {
    let Some(header) = peek_header(buf, max_frame_len)? else {
        return Ok(None);
    };
    let frame_len = header.frame_len();
    let Some(payload) = buf.get(HEADER_LEN..frame_len) else {
        return Ok(None);
    };
    let Some(frame_type) = header.frame_type() else {
        return Err(DecodeError::UnknownType {
            type_byte: header.type_byte,
            frame_len,
        });
    };
    let frame = Fields {
        rest: payload,
        frame_type,
        frame_len,
    }
    .parse()?;
    Ok(Some((frame, frame_len)))
}

/// Appends `frame`, encoded, to `out`.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0); // patched below once the length is known
    out.put_u8(frame.frame_type() as u8);
    if room::encode_room(frame, out) {
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        return;
    }
    match frame {
        Frame::Hello {
            version,
            features,
            client,
        } => {
            out.put_slice(&HELLO_MAGIC);
            out.put_u16(*version);
            out.put_u32(*features);
            out.put_slice(client.as_bytes());
        }
        Frame::Welcome {
            version,
            features,
            max_message,
            heartbeat_ms,
            challenge,
            server,
        } => {
            out.put_u16(*version);
            out.put_u32(*features);
            out.put_u32(*max_message);
            out.put_u32(*heartbeat_ms);
            out.put_slice(challenge);
            out.put_slice(server.as_bytes());
        }
        Frame::NickOk { nick, token } => {
            out.put_slice(token);
            out.put_slice(nick.as_bytes());
        }
        Frame::Nick { nick, key, proof } => {
            out.put_slice(key);
            out.put_slice(proof);
            out.put_slice(nick.as_bytes());
        }
        Frame::Resume {
            nick,
            token,
            key,
            proof,
        } => {
            out.put_slice(token);
            out.put_slice(key);
            out.put_slice(proof);
            out.put_slice(nick.as_bytes());
        }
        Frame::Message(message) => {
            out.put_u64(message.seq);
            out.put_i64(message.sent_ms);
            out.put_slice(&message.id);
            out.put_slice(&message.body);
        }
        Frame::Chunk(chunk) => {
            out.put_slice(&chunk.transfer);
            out.put_u64(chunk.offset);
            out.put_slice(&chunk.body);
        }
        Frame::Conversation(info) => {
            out.put_u64(info.last_seq);
            out.put_u64(info.read_through);
            out.put_u64(info.their_read_through);
            out.put_u64(info.last_from_you);
            out.put_slice(&info.last_id_from_you);
            out.put_slice(&info.companion_key);
            out.put_slice(info.companion.as_bytes());
        }
        Frame::Ack { count, first_seq } => {
            out.put_u32(*count);
            out.put_u64(*first_seq);
        }
        Frame::Received(seq) | Frame::Delivered(seq) => out.put_u64(*seq),
        Frame::History { before, limit } => {
            out.put_u64(*before);
            out.put_u32(*limit);
        }
        Frame::Earlier(message) => {
            out.put_u64(message.seq);
            out.put_i64(message.sent_ms);
            out.put_u8(u8::from(message.mine));
            out.put_slice(&message.id);
            out.put_slice(&message.body);
        }
        Frame::HistoryEnd { count, more } => {
            out.put_u32(*count);
            out.put_u8(u8::from(*more));
        }
        Frame::Released(text)
        | Frame::Paired(text)
        | Frame::Shutdown(text)
        | Frame::ChatWith(text)
        | Frame::WaitingFor(text) => out.put_slice(text.as_bytes()),
        Frame::Online { total, entries } => {
            out.put_u32(*total);
            for entry in entries {
                out.put_u8(u8::from(entry.chatting));
                room::put_short(out, &entry.nick);
            }
        }
        Frame::Left { reason, nick } => {
            out.put_u8(*reason as u8);
            out.put_slice(nick.as_bytes());
        }
        Frame::Ping(token) | Frame::Pong(token) => out.put_u64(*token),
        Frame::Waiting | Frame::Bye | Frame::Who | Frame::Release => {}
        Frame::Join(_)
        | Frame::Room(_)
        | Frame::Members { .. }
        | Frame::Said(_)
        | Frame::RoomNews(_)
        | Frame::Part
        | Frame::RoomAdmin { .. }
        | Frame::Rooms
        | Frame::RoomList { .. } => {}
        Frame::Error { code, fatal, text } => {
            out.put_u16(code.to_u16());
            out.put_u8(u8::from(*fatal));
            out.put_slice(text.as_bytes());
        }
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// `encode` into a buffer of its own, for a frame that is queued or sent alone.
pub fn encode_to_bytes(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    encode(frame, &mut out);
    out.freeze()
}

/// `encode` into a fresh vector, for tests.
pub fn encode_to_vec(frame: &Frame) -> Vec<u8> {
    encode_to_bytes(frame).to_vec()
}

/// A cursor over one frame's payload that turns short or surplus bytes into `Malformed`.
struct Fields<'a> {
    rest: &'a [u8],
    frame_type: FrameType,
    frame_len: usize,
}

impl<'a> Fields<'a> {
    fn malformed(&self, reason: &'static str) -> DecodeError {
        DecodeError::Malformed {
            frame_type: self.frame_type,
            reason,
            frame_len: self.frame_len,
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((head, rest)) = self.rest.split_first_chunk::<N>() else {
            return Err(self.malformed("payload too short"));
        };
        self.rest = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take()?))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.malformed(what)),
        }
    }

    /// A message body: the rest of the payload, non-empty, opaque.
    fn message_body(&mut self) -> Result<Vec<u8>, DecodeError> {
        if self.rest.is_empty() {
            return Err(self.malformed("empty message body"));
        }
        Ok(std::mem::take(&mut self.rest).to_vec())
    }

    /// The rest of the payload as UTF-8 text.
    fn text(&mut self) -> Result<String, DecodeError> {
        let bytes = std::mem::take(&mut self.rest);
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 {
                frame_type: self.frame_type,
                frame_len: self.frame_len,
            }),
        }
    }

    /// The rest of the payload as UTF-8 text of at most `MAX_SHORT_TEXT` bytes.
    fn short_text(&mut self) -> Result<String, DecodeError> {
        if self.rest.len() > MAX_SHORT_TEXT {
            return Err(self.malformed("text field longer than 1024 bytes"));
        }
        self.text()
    }

    /// `Online`: a count, then entries of (chatting u8, nick length u8, nick).
    fn online(&mut self) -> Result<Frame, DecodeError> {
        let total = self.u32()?;
        let mut entries = Vec::new();
        while !self.rest.is_empty() {
            let chatting = self.flag("chatting flag is not 0 or 1")?;
            let nick = self.short_string()?;
            entries.push(OnlineEntry { nick, chatting });
        }
        Ok(Frame::Online { total, entries })
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("unexpected bytes after the last field"))
        }
    }

    fn parse(mut self) -> Result<Frame, DecodeError> {
        if let Some(frame) = self.parse_room()? {
            self.end()?;
            return Ok(frame);
        }
        let frame = match self.frame_type {
            FrameType::Hello => {
                if self.take::<4>()? != HELLO_MAGIC {
                    return Err(self.malformed("missing P2PC magic"));
                }
                let version = self.u16()?;
                let features = self.u32()?;
                let client = self.short_text()?;
                Frame::Hello {
                    version,
                    features,
                    client,
                }
            }
            FrameType::Welcome => Frame::Welcome {
                version: self.u16()?,
                features: self.u32()?,
                max_message: self.u32()?,
                heartbeat_ms: self.u32()?,
                challenge: self.take()?,
                server: self.short_text()?,
            },
            FrameType::Nick => Frame::Nick {
                key: self.take()?,
                proof: self.take()?,
                nick: self.short_text()?,
            },
            FrameType::NickOk => Frame::NickOk {
                token: self.take()?,
                nick: self.short_text()?,
            },
            FrameType::Resume => Frame::Resume {
                token: self.take()?,
                key: self.take()?,
                proof: self.take()?,
                nick: self.short_text()?,
            },
            FrameType::Conversation => Frame::Conversation(ConversationInfo {
                last_seq: self.u64()?,
                read_through: self.u64()?,
                their_read_through: self.u64()?,
                last_from_you: self.u64()?,
                last_id_from_you: self.take()?,
                companion_key: self.take()?,
                companion: self.short_text()?,
            }),
            FrameType::Ack => Frame::Ack {
                count: self.u32()?,
                first_seq: self.u64()?,
            },
            FrameType::Received => Frame::Received(self.u64()?),
            FrameType::Delivered => Frame::Delivered(self.u64()?),
            FrameType::History => Frame::History {
                before: self.u64()?,
                limit: self.u32()?,
            },
            FrameType::Earlier => Frame::Earlier(EarlierMessage {
                seq: self.u64()?,
                sent_ms: self.i64()?,
                mine: self.flag("mine flag is not 0 or 1")?,
                id: self.take()?,
                body: self.message_body()?,
            }),
            FrameType::HistoryEnd => Frame::HistoryEnd {
                count: self.u32()?,
                more: self.flag("more flag is not 0 or 1")?,
            },
            FrameType::Waiting => Frame::Waiting,
            FrameType::Paired => Frame::Paired(self.short_text()?),
            FrameType::Message => Frame::Message(ChatMessage {
                seq: self.u64()?,
                sent_ms: self.i64()?,
                id: self.take()?,
                body: self.message_body()?,
            }),
            FrameType::Left => {
                let reason = self.u8()?;
                let reason = LeftReason::from_u8(reason)
                    .ok_or_else(|| self.malformed("unknown leave reason"))?;
                Frame::Left {
                    reason,
                    nick: self.short_text()?,
                }
            }
            FrameType::Ping => Frame::Ping(self.u64()?),
            FrameType::Pong => Frame::Pong(self.u64()?),
            FrameType::Bye => Frame::Bye,
            FrameType::Shutdown => Frame::Shutdown(self.short_text()?),
            FrameType::Who => Frame::Who,
            FrameType::Online => self.online()?,
            FrameType::ChatWith => Frame::ChatWith(self.short_text()?),
            FrameType::WaitingFor => Frame::WaitingFor(self.short_text()?),
            FrameType::Release => Frame::Release,
            FrameType::Chunk => Frame::Chunk(FileChunk {
                transfer: self.take()?,
                offset: self.u64()?,
                body: self.message_body()?,
            }),
            FrameType::Released => Frame::Released(self.short_text()?),
            FrameType::Join
            | FrameType::Room
            | FrameType::Members
            | FrameType::Said
            | FrameType::RoomNews
            | FrameType::Part
            | FrameType::RoomAdmin
            | FrameType::Rooms
            | FrameType::RoomList => return Err(self.malformed("room frame")),
            FrameType::Error => {
                let code = ErrorCode::from_u16(self.u16()?);
                let fatal = self.flag("fatal flag is not 0 or 1")?;
                Frame::Error {
                    code,
                    fatal,
                    text: self.short_text()?,
                }
            }
        };
        self.end()?;
        Ok(frame)
    }
}

#[path = "room_codec.rs"]
pub(crate) mod room;

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
