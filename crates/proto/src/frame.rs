//! The typed frames of the protocol, their type bytes and the small enums they carry.
//! Encoding and decoding live in `codec`; this module only names things.

/// A client-chosen message id: random, so a re-sent message is recognised by its receiver.
pub type MessageId = [u8; 16];

/// A secret the relay gives with `NickOk`; presenting it in `Resume` takes the nickname back
/// from a connection of the same client that the relay still thinks is alive.
pub type ResumeToken = [u8; 16];

/// A client's long-term identity: an Ed25519 public key. The first key to log in with a
/// nickname owns it; the same key, converted to X25519, is what companions encrypt to.
pub type PublicKey = [u8; 32];

/// An Ed25519 signature, here over `login_transcript` (proof of holding a nickname's key).
pub type Signature = [u8; 64];

/// Fresh random bytes the relay sends in `Welcome`; the client signs them to log in.
pub type Challenge = [u8; 32];

/// Domain-separation prefix of the bytes a client signs to log in.
pub const LOGIN_CONTEXT: &[u8] = b"p2pchat login v3\0";

/// The bytes a client signs with its identity key to log in as `nick` on a connection whose
/// `Welcome` carried `challenge`: `LOGIN_CONTEXT`, the challenge, then the nickname's UTF-8.
pub fn login_transcript(challenge: &Challenge, nick: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOGIN_CONTEXT.len() + challenge.len() + nick.len());
    out.extend_from_slice(LOGIN_CONTEXT);
    out.extend_from_slice(challenge);
    out.extend_from_slice(nick.as_bytes());
    out
}

/// One chat message as it travels: the sender writes `seq` and `sent_ms` as 0, the relay stamps
/// both in place and forwards the frame byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Position in its conversation, from 1, strictly increasing (0 from a client).
    pub seq: u64,
    /// When the relay received it, ms since the Unix epoch (0 from a client).
    pub sent_ms: i64,
    /// The sender's id for it.
    pub id: MessageId,
    /// Non-empty body: an end-to-end envelope (docs/PROTOCOL.md §7) the relay cannot read.
    pub body: Vec<u8>,
}

/// One message of a conversation's history (`Earlier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierMessage {
    /// Its sequence number.
    pub seq: u64,
    /// When the relay received it, ms since the Unix epoch.
    pub sent_ms: i64,
    /// Whether the client asking sent it (else its companion did).
    pub mine: bool,
    /// The sender's id for it.
    pub id: MessageId,
    /// The body, as the sender wrote it (an end-to-end envelope).
    pub body: Vec<u8>,
}

/// Where a client stands in the conversation it just joined (`Conversation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationInfo {
    /// The companion's nickname.
    pub companion: String,
    /// The companion's identity key, all zero while the nickname has no owner yet (nobody has
    /// logged in with it): messages can only be encrypted to them once it has one.
    pub companion_key: PublicKey,
    /// The conversation's latest sequence number (0: nothing was ever said).
    pub last_seq: u64,
    /// The client has received everything up to this sequence number.
    pub read_through: u64,
    /// The companion has received everything up to this sequence number.
    pub their_read_through: u64,
    /// Sequence number of the last message the relay holds from this client (0: none).
    pub last_from_you: u64,
    /// That message's id (all zero when there is none).
    pub last_id_from_you: MessageId,
}

/// Every frame of protocol version 3. "C→S" frames are sent by clients, "S→C" by the relay;
/// `Message`, `Ping` and `Pong` go both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// C→S, first frame on a connection: magic `P2PC`, the highest version the client speaks, the
    /// optional features it wants (a bit set) and a free-form client name.
    Hello {
        /// Highest protocol version the client speaks.
        version: u16,
        /// Feature bits the client asks for; the relay answers with the subset it grants.
        features: u32,
        /// Free-form client name and version, for logs (at most `MAX_SHORT_TEXT` bytes).
        client: String,
    },
    /// S→C, answer to `Hello`: the version chosen, the features granted and the relay's limits.
    Welcome {
        /// Protocol version both sides now speak.
        version: u16,
        /// Feature bits granted (a subset of those asked for).
        features: u32,
        /// Longest message text the relay accepts, in bytes.
        max_message: u32,
        /// The relay drops a connection silent for this long; clients send `Ping` well within it.
        heartbeat_ms: u32,
        /// Fresh random bytes for this connection; `Nick` and `Resume` carry a signature over them.
        challenge: Challenge,
        /// Free-form relay name and version.
        server: String,
    },
    /// C→S: the nickname the client wants, the identity key it logs in with and the proof that
    /// it holds that key (an Ed25519 signature over `login_transcript(challenge, nick)`). A
    /// nickname nobody owns becomes owned by the key; an owned one needs the owner's key.
    Nick {
        /// The nickname.
        nick: String,
        /// The client's identity key.
        key: PublicKey,
        /// Signature by `key` over `login_transcript`.
        proof: Signature,
    },
    /// S→C: the nickname was accepted and is now the client's; `token` resumes it later.
    NickOk {
        /// The nickname.
        nick: String,
        /// Secret for `Resume`.
        token: ResumeToken,
    },
    /// S→C: no companion yet; messages sent now are held and delivered once one arrives.
    Waiting,
    /// S→C: the client now chats with this companion.
    Paired(String),
    /// Both ways: one chat message. The relay stamps `seq` and `sent_ms` and forwards the
    /// client's frame to the companion byte for byte.
    Message(ChatMessage),
    /// S→C: the companion has gone; a `Waiting` or `Paired` frame follows.
    Left {
        /// Why the companion went.
        reason: LeftReason,
        /// The companion's nickname.
        nick: String,
    },
    /// Both ways: liveness probe; the receiver answers `Pong` with the same token.
    Ping(u64),
    /// Both ways: answer to `Ping`.
    Pong(u64),
    /// C→S: the client leaves; the relay closes the connection after this.
    Bye,
    /// S→C: the relay is stopping; it closes the connection after this.
    Shutdown(String),
    /// C→S: asks who is online.
    Who,
    /// S→C: answer to `Who`: how many are online, and up to 100 of them.
    Online {
        /// Everyone with a nickname, including those not listed.
        total: u32,
        /// Who they are, longest-connected first.
        entries: Vec<OnlineEntry>,
    },
    /// C→S: chat with this nickname (empty: with whoever comes next, in arrival order). Sent
    /// before `Nick` it chooses the first companion; after, it leaves the current one.
    ChatWith(String),
    /// S→C: the client waits for this particular companion to be free; messages are held.
    WaitingFor(String),
    /// C→S, instead of `Nick`: claims a nickname back after a lost connection. A connection the
    /// relay still holds under that nickname is closed if `token` matches its `NickOk` token.
    Resume {
        /// The nickname.
        nick: String,
        /// The token from `NickOk`.
        token: ResumeToken,
        /// The client's identity key (as in `Nick`).
        key: PublicKey,
        /// Signature by `key` over `login_transcript` (as in `Nick`).
        proof: Signature,
    },
    /// S→C, after `Paired` or `WaitingFor`: the conversation's state for this client. The messages
    /// it missed (sequence numbers after `read_through`) follow as `Message` frames.
    Conversation(ConversationInfo),
    /// S→C: the client's next `count` unacknowledged messages are stored (durably, when the relay
    /// keeps history), with sequence numbers `first_seq`, `first_seq + 1`, …
    Ack {
        /// How many messages.
        count: u32,
        /// The first one's sequence number.
        first_seq: u64,
    },
    /// C→S: the client has received every message of its conversation up to this sequence number.
    Received(u64),
    /// S→C: the companion has received every message up to this sequence number.
    Delivered(u64),
    /// C→S: asks for up to `limit` messages of the current conversation before sequence number
    /// `before` (0: the latest).
    History {
        /// Exclusive upper bound (0: none).
        before: u64,
        /// Most messages wanted.
        limit: u32,
    },
    /// S→C: one message of history, oldest first; `HistoryEnd` ends the answer.
    Earlier(EarlierMessage),
    /// S→C: the end of a `History` answer.
    HistoryEnd {
        /// How many `Earlier` frames came.
        count: u32,
        /// Whether older messages remain.
        more: bool,
    },
    /// C→S: gives up ownership of the client's nickname at once: the next key to log in with
    /// it once it is free (this connection ended) owns it. Answered by `Released`.
    Release,
    /// S→C: the nickname is no longer owned by any key.
    Released(String),
    /// Both ways: a piece of a file, end-to-end sealed (docs/PROTOCOL.md §7.9). The relay
    /// forwards it to the companion if connected, byte for byte, and keeps nothing: files are
    /// not history.
    Chunk(FileChunk),
    /// C→S: join (or create) this room; the connection's messages go to it from now on.
    Join(String),
    /// S→C, answer to `Join`: where the client stands in the room. `Members` follows, then the
    /// messages it missed as `Said`.
    Room(crate::RoomInfo),
    /// S→C: the room's members; `more`: another `Members` frame continues the list.
    Members {
        /// Another `Members` frame follows.
        more: bool,
        /// Members, in the order they joined.
        entries: Vec<crate::MemberEntry>,
    },
    /// S→C: one message of the room, from any member but the client.
    Said(crate::RoomMessage),
    /// S→C: someone came or went, or the room's rules changed.
    RoomNews(crate::RoomNews),
    /// C→S: leave the current room for good (the relay answers as for `ChatWith("")`).
    Part,
    /// C→S: an owner's order: invite, kick, ban, unban, invite-only on or off.
    RoomAdmin {
        /// What to do.
        action: crate::RoomAction,
        /// To whom (empty for `InviteOnly` and `Open`).
        nick: String,
    },
    /// C→S: which rooms are there?
    Rooms,
    /// S→C: answer to `Rooms`: the open rooms and the client's own, up to 100.
    RoomList {
        /// How many such rooms there are, including those not listed.
        total: u32,
        /// The rooms, most members first.
        entries: Vec<crate::RoomEntry>,
    },
    /// S→C: something the client sent was refused.
    Error {
        /// What went wrong, machine-readable.
        code: ErrorCode,
        /// Whether the relay closes the connection after this frame.
        fatal: bool,
        /// What went wrong, for a person.
        text: String,
    },
}

/// A piece of a file (`Chunk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// The transfer it belongs to (chosen by the sender).
    pub transfer: [u8; 16],
    /// Where its bytes go in the file.
    pub offset: u64,
    /// The sealed bytes (non-empty).
    pub body: Vec<u8>,
}

/// One line of an `Online` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineEntry {
    /// The nickname.
    pub nick: String,
    /// Whether they are in a conversation (else they wait for a companion).
    pub chatting: bool,
}

byte_enum! {
    /// The type byte that follows a frame's length.
    FrameType {
        /// `Frame::Hello`.
        Hello = 0x01,
        /// `Frame::Welcome`.
        Welcome = 0x02,
        /// `Frame::Nick`.
        Nick = 0x03,
        /// `Frame::NickOk`.
        NickOk = 0x04,
        /// `Frame::Waiting`.
        Waiting = 0x05,
        /// `Frame::Paired`.
        Paired = 0x06,
        /// `Frame::Message`.
        Message = 0x07,
        /// `Frame::Left`.
        Left = 0x08,
        /// `Frame::Ping`.
        Ping = 0x09,
        /// `Frame::Pong`.
        Pong = 0x0A,
        /// `Frame::Bye`.
        Bye = 0x0B,
        /// `Frame::Shutdown`.
        Shutdown = 0x0C,
        /// `Frame::Error`.
        Error = 0x0D,
        /// `Frame::Who`.
        Who = 0x0E,
        /// `Frame::Online`.
        Online = 0x0F,
        /// `Frame::ChatWith`.
        ChatWith = 0x10,
        /// `Frame::WaitingFor`.
        WaitingFor = 0x11,
        /// `Frame::Resume`.
        Resume = 0x12,
        /// `Frame::Conversation`.
        Conversation = 0x13,
        /// `Frame::Ack`.
        Ack = 0x14,
        /// `Frame::Received`.
        Received = 0x15,
        /// `Frame::Delivered`.
        Delivered = 0x16,
        /// `Frame::History`.
        History = 0x17,
        /// `Frame::Earlier`.
        Earlier = 0x18,
        /// `Frame::HistoryEnd`.
        HistoryEnd = 0x19,
        /// `Frame::Release`.
        Release = 0x1A,
        /// `Frame::Released`.
        Released = 0x1B,
        /// `Frame::Chunk`.
        Chunk = 0x1C,
        /// `Frame::Join`.
        Join = 0x1D,
        /// `Frame::Room`.
        Room = 0x1E,
        /// `Frame::Members`.
        Members = 0x1F,
        /// `Frame::Said`.
        Said = 0x20,
        /// `Frame::RoomNews`.
        RoomNews = 0x21,
        /// `Frame::Part`.
        Part = 0x22,
        /// `Frame::RoomAdmin`.
        RoomAdmin = 0x23,
        /// `Frame::Rooms`.
        Rooms = 0x24,
        /// `Frame::RoomList`.
        RoomList = 0x25,
    }
}

byte_enum! {
    /// Why a companion left, carried by `Frame::Left`.
    LeftReason {
        /// They quit (`/exit`, Ctrl+C, end of input).
        Quit = 0,
        /// Their connection broke (reset, closed without `Bye`).
        ConnectionLost = 1,
        /// They went silent past the heartbeat interval.
        TimedOut = 2,
        /// The relay closed their connection for a protocol violation.
        Dropped = 3,
    }
}

impl LeftReason {
    /// A few words for people, e.g. in "Nick1 left the chat (connection lost)".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Quit => "left",
            Self::ConnectionLost => "connection lost",
            Self::TimedOut => "timed out",
            Self::Dropped => "dropped by the server",
        }
    }
}

/// Machine-readable reason carried by `Frame::Error` (a big-endian `u16` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A frame could not be decoded (bad length, truncated fields).
    MalformedFrame,
    /// A frame's length is over the relay's limit.
    FrameTooLarge,
    /// The type byte is not one this version knows; the frame was skipped.
    UnknownType,
    /// Text that must be UTF-8 was not.
    InvalidUtf8,
    /// `Hello` asked for a version the relay does not speak.
    UnsupportedVersion,
    /// The first frame was not a valid `Hello`.
    HelloRequired,
    /// A chat message came before a nickname was accepted.
    NotLoggedIn,
    /// The nickname breaks the nickname rules.
    NickInvalid,
    /// Someone connected already uses that nickname.
    NickTaken,
    /// A message was empty.
    EmptyMessage,
    /// A frame that makes no sense now (a second `Nick`, a relay-only frame from a client).
    UnexpectedFrame,
    /// Login or heartbeat deadline passed.
    Timeout,
    /// The held-message allowance of a waiting client is used up; the message was not kept.
    HeldFull,
    /// The relay is at its connection limit; try again later.
    ServerFull,
    /// The relay could not store messages; they were not acknowledged (send them again later).
    StoreFailed,
    /// Another connection resumed this nickname with its token; this one is closed.
    Replaced,
    /// The nickname is owned by another identity key.
    NickOwned,
    /// The login proof does not verify (wrong signature for the key, challenge or nickname).
    BadProof,
    /// The client sent messages faster than the relay's per-connection rate limit.
    RateLimited,
    /// Too many connections from the client's address.
    TooManyConnections,
    /// A `Chunk` could not be delivered: the companion is not connected (nothing is kept).
    NotDelivered,
    /// A `Chunk` reaches past the relay's file size limit.
    FileTooLarge,
    /// `Join` refused: banned, not invited to an invite-only room, the room is full, or the
    /// client is in as many rooms as the relay allows.
    RoomRefused,
    /// A `RoomAdmin` from someone who does not own the room.
    NotOwner,
    /// A room frame (`Part`, `RoomAdmin`) from a client that is not in a room, or about a
    /// nickname that is not a member.
    NotInRoom,
    /// The room name breaks the naming rules (those of nicknames).
    RoomInvalid,
    /// A code this version does not know (kept so newer relays can add codes).
    Other(u16),
}

impl ErrorCode {
    /// The code's wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::MalformedFrame => 1,
            Self::FrameTooLarge => 2,
            Self::UnknownType => 3,
            Self::InvalidUtf8 => 4,
            Self::UnsupportedVersion => 5,
            Self::HelloRequired => 6,
            Self::NotLoggedIn => 7,
            Self::NickInvalid => 8,
            Self::NickTaken => 9,
            Self::EmptyMessage => 10,
            Self::UnexpectedFrame => 11,
            Self::Timeout => 12,
            Self::HeldFull => 13,
            Self::ServerFull => 14,
            Self::StoreFailed => 15,
            Self::Replaced => 16,
            Self::NickOwned => 17,
            Self::BadProof => 18,
            Self::RateLimited => 19,
            Self::TooManyConnections => 20,
            Self::NotDelivered => 21,
            Self::FileTooLarge => 22,
            Self::RoomRefused => 23,
            Self::NotOwner => 24,
            Self::NotInRoom => 25,
            Self::RoomInvalid => 26,
            Self::Other(code) => code,
        }
    }

    /// The code for a wire value; unknown values become `Other`.
    pub fn from_u16(value: u16) -> Self {
        match value {
            1 => Self::MalformedFrame,
            2 => Self::FrameTooLarge,
            3 => Self::UnknownType,
            4 => Self::InvalidUtf8,
            5 => Self::UnsupportedVersion,
            6 => Self::HelloRequired,
            7 => Self::NotLoggedIn,
            8 => Self::NickInvalid,
            9 => Self::NickTaken,
            10 => Self::EmptyMessage,
            11 => Self::UnexpectedFrame,
            12 => Self::Timeout,
            13 => Self::HeldFull,
            14 => Self::ServerFull,
            15 => Self::StoreFailed,
            16 => Self::Replaced,
            17 => Self::NickOwned,
            18 => Self::BadProof,
            19 => Self::RateLimited,
            20 => Self::TooManyConnections,
            21 => Self::NotDelivered,
            22 => Self::FileTooLarge,
            23 => Self::RoomRefused,
            24 => Self::NotOwner,
            25 => Self::NotInRoom,
            26 => Self::RoomInvalid,
            other => Self::Other(other),
        }
    }
}

impl Frame {
    /// The type byte this frame is sent with.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello { .. } => FrameType::Hello,
            Self::Welcome { .. } => FrameType::Welcome,
            Self::Nick { .. } => FrameType::Nick,
            Self::NickOk { .. } => FrameType::NickOk,
            Self::Waiting => FrameType::Waiting,
            Self::Paired(_) => FrameType::Paired,
            Self::Message(_) => FrameType::Message,
            Self::Left { .. } => FrameType::Left,
            Self::Ping(_) => FrameType::Ping,
            Self::Pong(_) => FrameType::Pong,
            Self::Bye => FrameType::Bye,
            Self::Shutdown(_) => FrameType::Shutdown,
            Self::Error { .. } => FrameType::Error,
            Self::Who => FrameType::Who,
            Self::Online { .. } => FrameType::Online,
            Self::ChatWith(_) => FrameType::ChatWith,
            Self::WaitingFor(_) => FrameType::WaitingFor,
            Self::Resume { .. } => FrameType::Resume,
            Self::Conversation(_) => FrameType::Conversation,
            Self::Ack { .. } => FrameType::Ack,
            Self::Received(_) => FrameType::Received,
            Self::Delivered(_) => FrameType::Delivered,
            Self::History { .. } => FrameType::History,
            Self::Earlier(_) => FrameType::Earlier,
            Self::HistoryEnd { .. } => FrameType::HistoryEnd,
            Self::Release => FrameType::Release,
            Self::Released(_) => FrameType::Released,
            Self::Chunk(_) => FrameType::Chunk,
            Self::Join(_) => FrameType::Join,
            Self::Room(_) => FrameType::Room,
            Self::Members { .. } => FrameType::Members,
            Self::Said(_) => FrameType::Said,
            Self::RoomNews(_) => FrameType::RoomNews,
            Self::Part => FrameType::Part,
            Self::RoomAdmin { .. } => FrameType::RoomAdmin,
            Self::Rooms => FrameType::Rooms,
            Self::RoomList { .. } => FrameType::RoomList,
        }
    }
}
