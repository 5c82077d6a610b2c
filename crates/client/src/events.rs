//! What goes into the client's state machine and what comes out of it: events (frames, typed
//! lines, timers), effects for the runner to carry out, and the lines of the chat view. Plain
//! data; `app` decides. File transfers add the disk's side: the runner hashes, reads and writes
//! files in blocking tasks when the app asks (`Effect::HashFile`, …) and reports back
//! (`Event::FileHashed`, …), so the app stays free of I/O.

use std::path::PathBuf;

use p2pchat_proto::{Challenge, Frame};
use p2pchat_secure::TransferId;

/// Something that happened to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A frame from the relay.
    Frame(Frame),
    /// Every frame that had arrived was handled: receipts and `Received` go out now, once per
    /// batch rather than once per frame.
    Drained,
    /// A line the user typed (without its line ending).
    Line(String),
    /// Several lines that arrived together (a paste, piped input): messages among them are
    /// packed into as few envelopes as the limits allow.
    Lines(Vec<String>),
    /// A typed line was not UTF-8.
    BadLine,
    /// End of input (Ctrl+D, or the end of piped input).
    InputEnded,
    /// Ctrl+C.
    Interrupted,
    /// The connection to the relay broke; the text says how.
    ConnectionLost(String),
    /// A new connection is up and greeted, after `Effect::Reconnect`.
    Reconnected {
        /// The relay's message limit.
        max_message: u32,
        /// Whether it stores history (`FEATURE_HISTORY`).
        stored_history: bool,
        /// The new connection's login challenge.
        challenge: Challenge,
    },
    /// Reconnecting was given up; the text says why.
    ReconnectFailed(String),
    /// The moment given to acks before leaving (`Effect::WaitForAcks`) is over.
    AckWaitOver,
    /// A file to offer was looked at (`Effect::LookAtFile`): its facts, or why it cannot be
    /// sent.
    FileLooked {
        /// The transfer it is for.
        transfer: TransferId,
        /// Name, size and stamp, or the reason in words.
        result: Result<FileFacts, String>,
    },
    /// The next piece of a file being sent (`Effect::ReadFile`), in order.
    ChunkRead {
        /// The transfer.
        transfer: TransferId,
        /// Where `data` starts in the file.
        offset: u64,
        /// The plain bytes (at most the chunk size asked for).
        data: Vec<u8>,
    },
    /// A file being sent was read to its end (after its last `ChunkRead`): the SHA-256 of
    /// the whole file, worked out as it was read.
    FileRead {
        /// The transfer.
        transfer: TransferId,
        /// SHA-256 of every byte of the file.
        sha256: [u8; 32],
    },
    /// Reading a file being sent failed; the text says why.
    ReadFailed {
        /// The transfer.
        transfer: TransferId,
        /// Why, in words.
        why: String,
    },
    /// A received file was checked and moved to its final name (`Effect::FinishFile`), or not.
    FileSaved {
        /// The transfer.
        transfer: TransferId,
        /// The final file name in the downloads directory, or what went wrong.
        result: Result<String, SaveError>,
    },
    /// The files to send (`Effect::ListFiles`), and what cannot be sent, in words.
    FilesListed {
        /// Regular files, in order.
        files: Vec<PathBuf>,
        /// `PATH: why`, one per path that cannot be sent.
        problems: Vec<String>,
    },
    /// Interrupted downloads from the companion found on disk (`Effect::FindParts`).
    PartsFound(Vec<FoundPart>),
    /// Offers to the companion recorded before this client restarted (`Effect::FindOffers`).
    OffersFound(Vec<SavedOffer>),
    /// Writing a file being received failed (its temporary file is gone).
    WriteFailed {
        /// The transfer.
        transfer: TransferId,
        /// Why, in words.
        why: String,
    },
}

/// Files to send, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendSpec {
    /// What followed `/send`: one path (even with spaces) if it exists as written, else
    /// several, separated by spaces and quoted as in a shell.
    Typed(String),
    /// Paths given one by one (`--send`).
    Given(Vec<PathBuf>),
}

/// What `Effect::LookAtFile` found out about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Its base name, as offered.
    pub name: String,
    /// Its length.
    pub size: u64,
    /// Its length and modification time when offered: a file that changed is not resumed.
    pub stamp: FileStamp,
}

/// A file's length and modification time, to notice it changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, where the system has one.
    pub modified: Option<std::time::SystemTime>,
}

/// An offer as recorded so it survives a restart of the sender (`offers.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedOffer {
    /// Its transfer.
    pub transfer: TransferId,
    /// The companion's nickname, folded.
    pub companion: String,
    /// The companion's identity key.
    pub key: [u8; 32],
    /// The safe name it was offered under.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its length and modification time when offered.
    pub stamp: FileStamp,
}

/// What the state file of a download says besides its id and name (`resume.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRecord {
    /// The sender's nickname, folded.
    pub companion: String,
    /// The sender's identity key.
    pub key: [u8; 32],
    /// Bytes offered.
    pub size: u64,
}

/// An interrupted download found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPart {
    /// Its transfer.
    pub transfer: TransferId,
    /// The safe file name offered.
    pub name: String,
    /// Bytes offered.
    pub size: u64,
    /// Bytes already received and written (where to resume).
    pub have: u64,
}

/// Why a received file was not saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveError {
    /// The bytes did not hash to the offer's SHA-256 (the temporary file was deleted).
    Mismatch,
    /// The disk said no; the text says how.
    Io(String),
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Print a line in the chat view.
    Show(Line),
    /// Send a frame to the relay.
    Send(Frame),
    /// Read the next line of input with this prompt.
    Prompt(Prompt),
    /// Drop the connection and connect again with backoff, then report `Event::Reconnected` or
    /// `Event::ReconnectFailed`.
    Reconnect,
    /// Leaving: give the relay a moment to acknowledge what was sent, then report
    /// `Event::AckWaitOver`.
    WaitForAcks,
    /// Stop: finish sending what is queued, close the connection, exit with `code`.
    Close {
        /// Process exit status.
        code: i32,
    },
    /// Turn what was given into the files to send (`Event::FilesListed`): a directory stands
    /// for the files in it, found recursively.
    ListFiles {
        /// What was given.
        spec: SendSpec,
    },
    /// Look at `path` (a blocking task, but no reading): report its name, size and stamp
    /// (`Event::FileLooked`).
    LookAtFile {
        /// The transfer it is for.
        transfer: TransferId,
        /// The file.
        path: PathBuf,
    },
    /// Read `path` from `from` in pieces of `chunk` bytes, each reported as `Event::ChunkRead`
    /// (at the pace the connection takes them), until `size` bytes have been read; then report
    /// the whole file's SHA-256 (`Event::FileRead`). The running SHA-256 is kept across
    /// readers of the same transfer, so a resumed stream does not read the file twice.
    ReadFile {
        /// The transfer.
        transfer: TransferId,
        /// The file.
        path: PathBuf,
        /// First byte.
        from: u64,
        /// Bytes in all.
        size: u64,
        /// Bytes per piece.
        chunk: usize,
        /// What the file looked like when offered: if it changed, reading fails instead.
        stamp: Option<FileStamp>,
    },
    /// The transfer is over: stop reading it, forget its running SHA-256 and its record
    /// (pieces already read are dropped by the app).
    StopReading {
        /// The transfer.
        transfer: TransferId,
    },
    /// Stop reading for now, keeping the running SHA-256 and the record: the transfer resumes
    /// later (in this process, or after a restart).
    PauseReading {
        /// The transfer.
        transfer: TransferId,
    },
    /// Create the temporary file of a file being received in `dir` (exclusively, owner-only).
    CreatePart {
        /// The transfer.
        transfer: TransferId,
        /// The downloads directory.
        dir: PathBuf,
        /// The safe base name it will have.
        name: String,
        /// What its state file records, so it can resume after an interruption.
        record: PartRecord,
    },
    /// Reopen the temporary file of an interrupted download: keep its first `from` bytes
    /// (their SHA-256 is worked out again) and append from there.
    ResumePart {
        /// The transfer.
        transfer: TransferId,
        /// The downloads directory.
        dir: PathBuf,
        /// The safe base name it will have.
        name: String,
        /// Bytes kept.
        from: u64,
    },
    /// Close the transfer's temporary file but keep it (and its state file) to resume later.
    ClosePart {
        /// The transfer.
        transfer: TransferId,
    },
    /// Record an offer so a restarted client can still send it (`offers.rs`); the record
    /// goes with `StopReading`.
    RememberOffer(SavedOffer),
    /// Look for offers to this companion recorded before a restart and report them at once
    /// (`Event::OffersFound`), before the next frame is handled.
    FindOffers {
        /// The companion's nickname, folded.
        companion: String,
        /// The companion's identity key.
        key: [u8; 32],
    },
    /// Look in `dir` for interrupted downloads from this companion (folded nickname and key)
    /// and report them at once (`Event::PartsFound`), before the next frame is handled.
    FindParts {
        /// The downloads directory.
        dir: PathBuf,
        /// The companion's nickname, folded.
        companion: String,
        /// The companion's identity key.
        key: [u8; 32],
    },
    /// Append these bytes to the transfer's temporary file (and to its running SHA-256).
    WriteChunk {
        /// The transfer.
        transfer: TransferId,
        /// The plain bytes.
        data: Vec<u8>,
    },
    /// All bytes are there: compare the SHA-256 and move the file to its final name (never
    /// over an existing file), or delete it; report `Event::FileSaved`.
    FinishFile {
        /// The transfer.
        transfer: TransferId,
        /// The SHA-256 the sender sent (`FileControl::Sent`).
        sha256: [u8; 32],
    },
    /// Delete the transfer's temporary file and its state file (cancelled, failed, refused).
    DiscardPart {
        /// The transfer.
        transfer: TransferId,
    },
    /// A transfer moved on: the runner draws its progress (it has the clock for the rate).
    Progress(Progress),
}

/// How far a transfer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The transfer.
    pub transfer: TransferId,
    /// The file's name, printable.
    pub name: String,
    /// Bytes done so far (this session).
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// Which question the next line answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// `👉 Enter your nickname: `
    Nick,
    /// `👉 Your message: `
    Message,
}

impl Prompt {
    /// The prompt text, as in the design.
    pub fn text(self) -> &'static str {
        match self {
            Self::Nick => "👉 Enter your nickname: ",
            Self::Message => "👉 Your message: ",
        }
    }
}

/// A line of the chat view and how it should look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// How to colour it when colours are on.
    pub style: Style,
    /// The text, already safe to print.
    pub text: String,
}

/// Kinds of lines in the chat view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Ordinary text.
    Plain,
    /// Something the companion said (or their arrival).
    Companion,
    /// A message from the conversation's history.
    Earlier,
    /// News about the conversation.
    Notice,
    /// Something went wrong.
    Error,
}
