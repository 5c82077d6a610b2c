//! The p2pchat wire protocol: frame types, a pure codec and the nickname rules.
//!
//! This crate does no I/O and keeps no clock: callers hand it bytes and get frames back, so the
//! same code serves the relay, the client, the tests and the fuzzer. docs/PROTOCOL.md is the prose
//! form of what is defined here.

/// An enum carried as one wire byte, with `from_u8` for decoding (unknown bytes: `None`).
macro_rules! byte_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vmeta])* $variant = $value,)* }

        impl $name {
            /// The enum for a wire byte, or `None` for an unknown one.
            pub fn from_u8(value: u8) -> Option<Self> {
                match value { $($value => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

mod codec;
mod file_name;
mod frame;
mod nick;
mod room;

pub use codec::room::{said_len, write_said, SAID_HEAD};
pub use codec::{
    decode, encode, encode_to_bytes, encode_to_vec, message_id, message_seq, peek_header,
    stamp_message, DecodeError, Header, CHUNK_HEAD, HEADER_LEN, MESSAGE_HEAD,
};
pub use file_name::{safe_file_name, MAX_FILE_NAME_BYTES};
pub use frame::{
    login_transcript, Challenge, ChatMessage, ConversationInfo, EarlierMessage, ErrorCode,
    FileChunk, Frame, FrameType, LeftReason, MessageId, OnlineEntry, PublicKey, ResumeToken,
    Signature, LOGIN_CONTEXT,
};
pub use nick::{fold_nick, validate_nick, NickError, MAX_NICK_BYTES, MAX_NICK_CHARS};
pub use room::{
    validate_room, MemberEntry, NewsKind, RoomAction, RoomEntry, RoomInfo, RoomMessage, RoomNews,
};

/// Protocol version spoken by this crate, sent in `Hello` and `Welcome`.
pub const PROTOCOL_VERSION: u16 = 3;

/// `Welcome` feature bit: the relay keeps history on disk, and acknowledges a message only once
/// it is durably stored.
pub const FEATURE_HISTORY: u32 = 1;

/// The four bytes every `Hello` payload starts with; lets the relay tell a p2pchat client from a
/// stray connection (an HTTP request, a port scanner) on the first frame.
pub const HELLO_MAGIC: [u8; 4] = *b"P2PC";

/// Default limit on a chat message's body, in bytes (the relay can be configured otherwise
/// and announces its limit in `Welcome`).
pub const DEFAULT_MAX_MESSAGE: u32 = 64 * 1024;

/// Bytes a frame may carry besides a message's text (type byte and fixed fields), so the relay's
/// frame limit is `max_message + FRAME_OVERHEAD`.
pub const FRAME_OVERHEAD: u32 = 128;

/// Longest free-text field other than message text (client name, error text, shutdown reason).
pub const MAX_SHORT_TEXT: usize = 1024;

/// The frame-length limit that goes with a message limit: room for a maximal message or a
/// maximal short text field, plus `FRAME_OVERHEAD`.
pub fn max_frame_len(max_message: u32) -> usize {
    (max_message as usize).max(MAX_SHORT_TEXT) + FRAME_OVERHEAD as usize
}
