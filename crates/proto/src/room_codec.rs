//! The room frames' bytes (docs/PROTOCOL.md §3): encoding, parsing, and writing a `Said` frame
//! straight from a `Message` frame's fields, which is how the relay builds the one frame it
//! forwards to every member.

use bytes::BufMut;

use super::{DecodeError, Fields, HEADER_LEN};
use crate::frame::{Frame, FrameType, MessageId};
use crate::room::{MemberEntry, NewsKind, RoomAction, RoomEntry, RoomInfo, RoomMessage, RoomNews};

/// `Said` payload bytes before the author: seq, sent_ms, id, author length.
pub const SAID_HEAD: usize = 8 + 8 + 16 + 1;

/// Bytes a `Said` frame takes on the wire, header included.
pub fn said_len(author: &str, body_len: usize) -> usize {
    HEADER_LEN + SAID_HEAD + author.len().min(u8::MAX as usize) + body_len
}

/// Appends a whole `Said` frame to `out`.
pub fn write_said(
    out: &mut impl BufMut,
    seq: u64,
    sent_ms: i64,
    id: &MessageId,
    author: &str,
    body: &[u8],
) {
    let author = short(author);
    let len = 1 + SAID_HEAD + author.len() + body.len();
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    out.put_u8(FrameType::Said as u8);
    out.put_u64(seq);
    out.put_i64(sent_ms);
    out.put_slice(id);
    out.put_u8(author.len() as u8);
    out.put_slice(author);
    out.put_slice(body);
}

/// A string's first 255 bytes (every name the relay sends is far shorter).
fn short(text: &str) -> &[u8] {
    &text.as_bytes()[..text.len().min(u8::MAX as usize)]
}

/// A string of at most 255 bytes after its length (u8): `Online` entries and room frames.
pub(super) fn put_short(out: &mut impl BufMut, text: &str) {
    let bytes = short(text);
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

/// Appends the payload of a room frame (`encode` wrote the header); false for any other frame.
pub(super) fn encode_room(frame: &Frame, out: &mut impl BufMut) -> bool {
    match frame {
        Frame::Join(room) => out.put_slice(room.as_bytes()),
        Frame::Part | Frame::Rooms => {}
        Frame::Room(info) => {
            out.put_u64(info.last_seq);
            out.put_u64(info.read_through);
            out.put_u64(info.last_from_you);
            out.put_slice(&info.last_id_from_you);
            out.put_u8(u8::from(info.invite_only));
            put_short(out, &info.owner);
            out.put_slice(info.room.as_bytes());
        }
        Frame::Members { more, entries } => {
            out.put_u8(u8::from(*more));
            for entry in entries {
                out.put_u8(u8::from(entry.online));
                out.put_slice(&entry.key);
                put_short(out, &entry.nick);
            }
        }
        Frame::Said(message) => {
            out.put_u64(message.seq);
            out.put_i64(message.sent_ms);
            out.put_slice(&message.id);
            put_short(out, &message.author);
            out.put_slice(&message.body);
        }
        Frame::RoomNews(news) => {
            out.put_u8(news.kind as u8);
            out.put_slice(&news.key);
            out.put_slice(news.nick.as_bytes());
        }
        Frame::RoomAdmin { action, nick } => {
            out.put_u8(*action as u8);
            out.put_slice(nick.as_bytes());
        }
        Frame::RoomList { total, entries } => {
            out.put_u32(*total);
            for entry in entries {
                out.put_u32(entry.members);
                out.put_u32(entry.online);
                out.put_u8(u8::from(entry.invite_only) | (u8::from(entry.member) << 1));
                put_short(out, &entry.room);
            }
        }
        _ => return false,
    }
    true
}

impl Fields<'_> {
    /// A string of at most 255 bytes preceded by its length.
    pub(super) fn short_string(&mut self) -> Result<String, DecodeError> {
        let len = self.u8()? as usize;
        let Some((bytes, rest)) = self.rest.split_at_checked(len) else {
            return Err(self.malformed("string shorter than its length"));
        };
        self.rest = rest;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(DecodeError::InvalidUtf8 {
                frame_type: self.frame_type,
                frame_len: self.frame_len,
            }),
        }
    }

    /// The payload of a room frame, or `None` for another type.
    pub(super) fn parse_room(&mut self) -> Result<Option<Frame>, DecodeError> {
        let frame = match self.frame_type {
            FrameType::Join => Frame::Join(self.short_text()?),
            FrameType::Part => Frame::Part,
            FrameType::Rooms => Frame::Rooms,
            FrameType::Room => Frame::Room(RoomInfo {
                last_seq: self.u64()?,
                read_through: self.u64()?,
                last_from_you: self.u64()?,
                last_id_from_you: self.take()?,
                invite_only: self.flag("invite-only flag is not 0 or 1")?,
                owner: self.short_string()?,
                room: self.short_text()?,
            }),
            FrameType::Members => self.members()?,
            FrameType::Said => Frame::Said(RoomMessage {
                seq: self.u64()?,
                sent_ms: self.i64()?,
                id: self.take()?,
                author: self.short_string()?,
                body: self.message_body()?,
            }),
            FrameType::RoomNews => {
                let kind = self.u8()?;
                let kind =
                    NewsKind::from_u8(kind).ok_or_else(|| self.malformed("unknown news kind"))?;
                Frame::RoomNews(RoomNews {
                    kind,
                    key: self.take()?,
                    nick: self.short_text()?,
                })
            }
            FrameType::RoomAdmin => {
                let action = self.u8()?;
                let action = RoomAction::from_u8(action)
                    .ok_or_else(|| self.malformed("unknown room action"))?;
                Frame::RoomAdmin {
                    action,
                    nick: self.short_text()?,
                }
            }
            FrameType::RoomList => self.room_list()?,
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    fn members(&mut self) -> Result<Frame, DecodeError> {
        let more = self.flag("more flag is not 0 or 1")?;
        let mut entries = Vec::new();
        while !self.rest.is_empty() {
            entries.push(MemberEntry {
                online: self.flag("online flag is not 0 or 1")?,
                key: self.take()?,
                nick: self.short_string()?,
            });
        }
        Ok(Frame::Members { more, entries })
    }

    fn room_list(&mut self) -> Result<Frame, DecodeError> {
        let total = self.u32()?;
        let mut entries = Vec::new();
        while !self.rest.is_empty() {
            let (members, online) = (self.u32()?, self.u32()?);
            let flags = self.u8()?;
            if flags > 3 {
                return Err(self.malformed("unknown room flags"));
            }
            entries.push(RoomEntry {
                members,
                online,
                invite_only: flags & 1 != 0,
                member: flags & 2 != 0,
                room: self.short_string()?,
            });
        }
        Ok(Frame::RoomList { total, entries })
    }
}
