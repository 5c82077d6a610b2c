//! The client's behaviour as plain data: an event in, the effects to carry out. No terminal, no
//! socket and no clock, so every conversation path is unit-tested without either. It owns what
//! must outlive a connection: the unacknowledged messages (`outbox`), the ids already shown
//! (`inbox`), receipts and history paging, and the keys: this client's identity, the pinned
//! keys of companions and the end-to-end channel of the current conversation. The halves:
//! `conversation.rs` (message flow), `lifecycle.rs` (login, errors, reconnects, leaving),
//! `typing.rs` (typed lines and commands), `encryption.rs` (keys, sealing, opening),
//! `frames.rs` (dispatching the relay's frames), `files.rs`, `receiving.rs` and `pausing.rs`
//! (file transfers, resumed after interruptions: the app decides, the runner does the disk work
//! it asks for).

use std::path::PathBuf;

use p2pchat_proto::ResumeToken;
use p2pchat_proto::{validate_nick, Challenge, Frame};
use p2pchat_secure::{Channel, Counter, Identity};

use crate::history::History;
use crate::inbox::Inbox;
use crate::keys::{KeyPins, MemoryPins, Replays};
use crate::outbox::Outbox;
use crate::receipts::Receipts;
use crate::transfers::Transfers;

#[path = "conversation.rs"]
mod conversation;
#[path = "encryption.rs"]
mod encryption;
#[path = "files.rs"]
mod files;
#[path = "frames.rs"]
mod frames;
#[path = "lifecycle.rs"]
mod lifecycle;
#[path = "pausing.rs"]
mod pausing;
#[path = "queue.rs"]
mod queue;
#[path = "receiving.rs"]
mod receiving;
#[path = "room_files.rs"]
mod room_files;
#[path = "rooming.rs"]
mod rooming;
#[path = "typing.rs"]
mod typing;

pub use crate::events::{Effect, Event, Line, Prompt, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    ChoosingNick,
    NickSent,
    Waiting,
    Chatting,
    /// Leaving once the relay has acknowledged what was sent (or the wait is over).
    Draining,
    Leaving,
}

/// The state of the connection, as far as sending is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    /// Reconnected and `Resume` sent; nothing else may go before `NickOk`.
    Resuming,
    Down,
}

/// After a reconnect, when the queued messages may go again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    /// No companion: the relay kept nothing, so all of them, once the nickname is back.
    AfterNickOk,
    /// The `Conversation` frame says which ones the relay stored.
    AtConversation,
}

/// The client's state between events.
pub struct App {
    phase: Phase,
    link: Link,
    resync: Option<Resync>,
    reconnect: bool,
    max_message: usize,
    stored_history: bool,
    /// `--nick`, until the relay answers it.
    preset_nick: Option<String>,
    /// The nickname asked for and not answered yet (asked again after a reconnect).
    asked_nick: Option<String>,
    /// `--to` or `/chat`: the companion asked for.
    wanted: Option<String>,
    scripted: bool,
    nick: Option<String>,
    token: Option<ResumeToken>,
    /// Whom the relay has us talking with (`Paired`, `WaitingFor`), as they spell it.
    companion: Option<String>,
    /// Whether that companion is connected.
    present: bool,
    /// A companion whose connection broke (folded): `WaitingFor` them means "until they return".
    lost_companion: Option<String>,
    /// The companion (folded) whose conversation `inbox` and `receipts` describe.
    partner: Option<String>,
    outbox: Outbox,
    inbox: Inbox,
    receipts: Receipts,
    history: History,
    /// Messages and news of the conversation (`Left`, `Paired`, …) held back while history is
    /// loading, so that the screen keeps the relay's order.
    held_frames: std::collections::VecDeque<Frame>,
    id_seed: u128,
    ids_made: u128,
    /// Messages sent while waiting for anyone (for the note when a companion arrives).
    held: usize,
    /// Input ended while messages could not be delivered yet: leave once they can be.
    leave_when_done: bool,
    local_time: bool,
    /// This client's long-term key: logs in and opens envelopes.
    identity: Identity,
    /// The current connection's `Welcome` challenge, signed to log in.
    challenge: Challenge,
    /// `HOST:PORT` of the relay: companions' keys are pinned per relay.
    relay: String,
    pins: Box<dyn KeyPins>,
    /// The end-to-end channel with the current companion, once their key is known.
    channel: Option<Channel>,
    counter: Counter,
    replays: Replays,
    /// The companion (folded) already told about as having no key yet.
    keyless_noted: Option<String>,
    /// Several lines arrived together: pack them into batches once all are queued.
    deferring: bool,
    /// File transfers with the current companion.
    transfers: Transfers,
    /// Where received files go (`--downloads`, or `--auto-accept`'s directory).
    downloads: PathBuf,
    /// Accept every offer at once (`--auto-accept`).
    auto_accept: bool,
    /// Offers to the companion recorded before a restart, until they accept one again.
    restored: Vec<crate::events::SavedOffer>,
    /// Recorded offers made transfers again, until `--send` takes them up (at most a few).
    revived: Vec<p2pchat_secure::TransferId>,
    /// Files to send waiting for a free transfer slot.
    send_queue: std::collections::VecDeque<PathBuf>,
    /// Where `--send` is.
    auto_send: queue::AutoSend,
    /// The exit status once leaving is done (`--send` failing makes it 1).
    exit_code: i32,
    /// The room this client is in, if any.
    room: Option<rooming::RoomView>,
    /// `--room` or `/join`: the room asked for and not answered yet.
    room_wanted: Option<String>,
}

impl App {
    /// A client with this identity that may send message bodies of up to `max_message` bytes.
    /// `scripted` is true when input is not a terminal (a rejected `--nick` then ends the
    /// program instead of asking again).
    pub fn new(
        identity: Identity,
        max_message: u32,
        preset_nick: Option<String>,
        scripted: bool,
    ) -> Self {
        Self {
            phase: Phase::ChoosingNick,
            link: Link::Up,
            resync: None,
            reconnect: false,
            max_message: max_message as usize,
            stored_history: false,
            preset_nick,
            asked_nick: None,
            wanted: None,
            scripted,
            nick: None,
            token: None,
            companion: None,
            present: false,
            lost_companion: None,
            partner: None,
            outbox: Outbox::default(),
            inbox: Inbox::default(),
            receipts: Receipts::default(),
            history: History::new(0),
            held_frames: std::collections::VecDeque::new(),
            id_seed: 0,
            ids_made: 0,
            held: 0,
            leave_when_done: false,
            local_time: true,
            identity,
            challenge: [0; 32],
            relay: String::new(),
            pins: Box::new(MemoryPins::default()),
            channel: None,
            counter: Counter::default(),
            replays: Replays::default(),
            keyless_noted: None,
            deferring: false,
            transfers: Transfers::default(),
            downloads: PathBuf::from("."),
            auto_accept: false,
            restored: Vec::new(),
            revived: Vec::new(),
            send_queue: std::collections::VecDeque::new(),
            auto_send: queue::AutoSend::Off,
            exit_code: 0,
            room: None,
            room_wanted: None,
        }
    }

    /// Goes into room `room` (`--room`) instead of chatting with one companion.
    pub fn with_room(mut self, room: Option<String>) -> Self {
        self.room_wanted = room;
        self
    }

    /// The first connection's `Welcome` challenge.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// Pins companions' keys in `pins`, under the relay's `HOST:PORT`.
    pub fn with_pins(mut self, relay: String, pins: Box<dyn KeyPins>) -> Self {
        self.relay = relay;
        self.pins = pins;
        self
    }

    /// Asks for a particular companion (`--to`) before the nickname is chosen.
    pub fn with_companion(mut self, wanted: Option<String>) -> Self {
        self.wanted = wanted;
        self
    }

    /// Shows `limit` earlier messages when a conversation starts (`--history`; 0: none).
    pub fn with_history(mut self, limit: u32) -> Self {
        self.history = History::new(limit);
        self
    }

    /// Reconnects after a lost connection instead of exiting (`--retry-for` above 0).
    pub fn with_reconnect(mut self, reconnect: bool) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Whether the relay's `Welcome` said it stores history.
    pub fn with_stored_history(mut self, stored_history: bool) -> Self {
        self.stored_history = stored_history;
        self
    }

    /// Message ids count up from this random seed: unique within this process, unguessable
    /// across processes, and predictable in tests.
    pub fn with_id_seed(mut self, seed: u128) -> Self {
        self.id_seed = seed;
        self
    }

    /// Received files go to `downloads` (accepted at once if `auto_accept`); the files at
    /// `send` (directories: their files) are offered to the first companion who can take them,
    /// and the client leaves once they are done.
    pub fn with_files(mut self, downloads: PathBuf, auto_accept: bool, send: Vec<PathBuf>) -> Self {
        self.downloads = downloads;
        self.auto_accept = auto_accept;
        if !send.is_empty() {
            self.auto_send = queue::AutoSend::Waiting(send);
        }
        self
    }

    /// Prints history timestamps in UTC rather than local time (for tests).
    pub fn with_utc_times(mut self) -> Self {
        self.local_time = false;
        self
    }

    /// Whether the runner may read more input: not while `MAX_UNACKED` lines wait for acks.
    pub fn accepts_input(&self) -> bool {
        !self.outbox.is_full()
    }

    /// Whether typed lines are chat lines now, so several may come at once (`Event::Lines`);
    /// not while the nickname is asked for (the next lines wait for its answer).
    pub fn takes_lines_together(&self) -> bool {
        matches!(self.phase, Phase::Waiting | Phase::Chatting)
    }

    /// How many lines the runner may hand over at once (`Event::Lines`).
    pub fn input_room(&self) -> usize {
        self.outbox.room()
    }

    /// What to do once connected: say whom to chat with (`--to`), then send `--nick` or ask
    /// for a nickname.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(room) = self.room_wanted.clone() {
            if let Err(err) = p2pchat_proto::validate_room(&room) {
                let err = err.to_string().replace("nickname", "room name");
                return self.fail(format!("❌ --room {}: {err}", printable(&room)));
            }
            effects.push(Effect::Send(Frame::Join(room)));
        }
        if let Some(wanted) = &self.wanted {
            if let Err(err) = validate_nick(wanted) {
                return self.fail(format!("❌ --to {wanted}: {err}"));
            }
            effects.push(Effect::Send(Frame::ChatWith(wanted.clone())));
        }
        match self.preset_nick.clone() {
            Some(nick) => effects.extend(self.offer_nick(&nick)),
            None => effects.push(Effect::Prompt(Prompt::Nick)),
        }
        effects
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        if self.phase == Phase::Leaving {
            return Vec::new();
        }
        let mut effects = match event {
            Event::Frame(frame) => self.on_frame(frame),
            Event::Drained => self.on_drained(),
            Event::Line(line) => self.on_lines(vec![line]),
            Event::Lines(lines) => self.on_lines(lines),
            Event::BadLine => vec![
                show(
                    Style::Error,
                    "❌ That line is not valid UTF-8 and was not sent",
                ),
                self.prompt(),
            ],
            Event::InputEnded => self.on_input_ended(),
            Event::Interrupted => self.finish_leaving(0),
            Event::ConnectionLost(why) => self.on_connection_lost(&why),
            Event::Reconnected {
                max_message,
                stored_history,
                challenge,
            } => self.on_reconnected(max_message, stored_history, challenge),
            Event::ReconnectFailed(why) => {
                let line = show(
                    Style::Error,
                    format!("❌ Could not reconnect to the chat server: {why}"),
                );
                [vec![line], self.finish_leaving(1)].concat()
            }
            Event::AckWaitOver if self.phase == Phase::Draining => {
                self.finish_leaving(self.exit_code)
            }
            Event::AckWaitOver => Vec::new(),
            Event::FileLooked { transfer, result } => self.on_file_looked(transfer, result),
            Event::FileRead { transfer, sha256 } => self.on_file_read(transfer, sha256),
            Event::ChunkRead {
                transfer,
                offset,
                data,
            } => self.on_chunk_read(transfer, offset, &data),
            Event::ReadFailed { transfer, why } => self.on_read_failed(transfer, &why),
            Event::FileSaved { transfer, result } => self.on_file_saved(transfer, result),
            Event::WriteFailed { transfer, why } => self.on_write_failed(transfer, &why),
            Event::PartsFound(found) => self.on_parts_found(found),
            Event::OffersFound(found) => self.on_offers_found(found),
            Event::FilesListed { files, problems } => self.on_files_listed(files, problems),
        };
        effects.extend(self.pump_sends());
        if self.leave_when_done && self.can_leave_now() {
            effects.extend(self.leave());
        }
        effects
    }

    fn prompt(&self) -> Effect {
        match self.phase {
            Phase::ChoosingNick | Phase::NickSent => Effect::Prompt(Prompt::Nick),
            _ => Effect::Prompt(Prompt::Message),
        }
    }

    fn offer_nick(&mut self, nick: &str) -> Vec<Effect> {
        match validate_nick(nick) {
            Ok(()) => {
                self.phase = Phase::NickSent;
                self.asked_nick = Some(nick.to_owned());
                match self.link {
                    Link::Up => vec![Effect::Send(self.nick_frame(nick))],
                    // Sent once reconnected.
                    Link::Resuming | Link::Down => Vec::new(),
                }
            }
            Err(err) => self.nick_refused(&err.to_string()),
        }
    }

    /// `Nick` for `nick`, signed over this connection's challenge.
    fn nick_frame(&self, nick: &str) -> Frame {
        Frame::Nick {
            nick: nick.to_owned(),
            key: self.identity.public_key(),
            proof: self.identity.sign_login(&self.challenge, nick),
        }
    }

    fn nick_refused(&mut self, why: &str) -> Vec<Effect> {
        self.nick_refused_with(format!("❌ Nickname rejected: {}", printable(why)))
    }

    /// The nickname was refused, as `text` explains: ask for another (or end a script).
    fn nick_refused_with(&mut self, text: String) -> Vec<Effect> {
        self.phase = Phase::ChoosingNick;
        self.asked_nick = None;
        let line = show(Style::Error, text);
        if self.scripted && self.preset_nick.take().is_some() {
            self.phase = Phase::Leaving;
            return vec![line, Effect::Close { code: 1 }];
        }
        self.preset_nick = None;
        vec![line, Effect::Prompt(Prompt::Nick)]
    }
}

fn not_connected() -> Effect {
    show(
        Style::Error,
        "⚠️ Not connected to the chat server right now; try again once reconnected",
    )
}

fn show(style: Style, text: impl Into<String>) -> Effect {
    Effect::Show(Line {
        style,
        text: text.into(),
    })
}

/// Text from the network, made safe for a terminal: control characters (escape sequences could
/// rewrite the screen) become visible stand-ins, a line break becomes `↵`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|ch| match ch {
            '\n' => '↵',
            '\t' => ' ',
            ch if ch.is_control() => '\u{FFFD}',
            ch => ch,
        })
        .collect()
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod conversation_tests;

#[cfg(test)]
#[path = "reconnect_tests.rs"]
mod reconnect_tests;

#[cfg(test)]
#[path = "encryption_tests.rs"]
mod encryption_tests;

#[cfg(test)]
#[path = "files_tests.rs"]
mod files_tests;

#[cfg(test)]
#[path = "receiving_tests.rs"]
mod receiving_tests;

#[cfg(test)]
#[path = "pausing_tests.rs"]
mod pausing_tests;
