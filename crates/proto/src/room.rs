//! The room frames' payload types (docs/PROTOCOL.md §6.15): what a client is told when it
//! joins a room, who the members are, a message with its author, and the room's news.
//! Encoding lives in `codec`, like every other frame's.

use crate::frame::{MessageId, PublicKey};
use crate::nick::{validate_nick, NickError};

/// Room names follow the nickname rules (1–32 characters, no white space, control or invisible
/// characters, not starting with `/`) and are compared folded, like nicknames.
pub fn validate_room(name: &str) -> Result<(), NickError> {
    validate_nick(name)
}

/// Where a client stands in the room it just joined (`Room`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name, as its creator spelled it.
    pub room: String,
    /// The owner's nickname (the creator).
    pub owner: String,
    /// Only invited nicknames may join.
    pub invite_only: bool,
    /// The room's latest sequence number (0: nothing was said yet).
    pub last_seq: u64,
    /// The client has received everything up to this sequence number; what follows it up to
    /// `last_seq` comes next as `Said` frames.
    pub read_through: u64,
    /// Sequence number of the last message the relay numbered from this client in this room.
    pub last_from_you: u64,
    /// That message's id (all zero when `last_from_you` is 0).
    pub last_id_from_you: MessageId,
}

/// One member of a room (`Members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// The member's nickname.
    pub nick: String,
    /// The identity key that owns the nickname (room envelopes are sealed to it).
    pub key: PublicKey,
    /// Whether a connection of the member is in the room now.
    pub online: bool,
}

/// One message of a room, as the relay forwards it to every member (`Said`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// Position in the room, from 1, the same for every member.
    pub seq: u64,
    /// When the relay numbered it, ms since the Unix epoch.
    pub sent_ms: i64,
    /// The author's id for it.
    pub id: MessageId,
    /// The author's nickname (at most 255 bytes on the wire; nicknames are at most 128).
    pub author: String,
    /// The room envelope (docs/PROTOCOL.md §7.10), opaque to the relay.
    pub body: Vec<u8>,
}

/// A room's news (`RoomNews`): someone came, went, or the rules changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomNews {
    /// What happened.
    pub kind: NewsKind,
    /// The member it is about (for `InviteOnly` and `Open`: the owner who changed it).
    pub nick: String,
    /// That member's identity key for `Joined` and `Online`, else all zero.
    pub key: PublicKey,
}

/// One line of a `RoomList` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// The room's name.
    pub room: String,
    /// How many members it has.
    pub members: u32,
    /// How many of them are in it now.
    pub online: u32,
    /// Only invited nicknames may join.
    pub invite_only: bool,
    /// The client asking is a member.
    pub member: bool,
}

byte_enum! {
    /// What a `RoomNews` frame reports.
    NewsKind {
        /// A new member joined the room (and is in it now).
        Joined = 0,
        /// A member left the room for good (`Part`).
        Left = 1,
        /// A member's connection came into the room.
        Online = 2,
        /// A member's connection left the room (disconnected, or went to another room or chat);
        /// they stay a member and get what they missed when they come back.
        Offline = 3,
        /// The owner removed a member.
        Kicked = 4,
        /// The owner removed a member and barred them from joining again.
        Banned = 5,
        /// The owner invited a nickname.
        Invited = 6,
        /// The owner made the room invite-only.
        InviteOnly = 7,
        /// The owner opened the room to anyone.
        Open = 8,
        /// The owner left the room; this member (the longest-standing one) owns it now.
        Owner = 9,
    }
}

byte_enum! {
    /// What a room's owner asks for (`RoomAdmin`).
    RoomAction {
        /// Let a nickname join an invite-only room.
        Invite = 0,
        /// Remove a member (they may join again unless the room is invite-only).
        Kick = 1,
        /// Remove a member, if they are one, and bar the nickname from joining again.
        Ban = 2,
        /// Lift a ban.
        Unban = 3,
        /// Only invited nicknames may join from now on (the nickname field is empty).
        InviteOnly = 4,
        /// Anyone may join from now on (the nickname field is empty).
        Open = 5,
    }
}

impl RoomAction {
    /// Whether the action names a nickname (else its nickname field is empty).
    pub fn takes_nick(self) -> bool {
        !matches!(self, Self::InviteOnly | Self::Open)
    }
}
