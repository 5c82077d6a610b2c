//! The client's behaviour as plain data: an event in, the effects to carry out. No terminal, no
//! socket and no clock, so every conversation path is unit-tested without either. It owns what
//! must outlive a connection: the unacknowledged messages (`outbox`), the ids already shown
//! (`inbox`), receipts and history paging; `conversation.rs` holds the message-flow half.

use p2pchat_proto::{validate_nick, Frame, OnlineEntry};
use p2pchat_proto::{MessageId, ResumeToken};

use crate::history::History;
use crate::inbox::Inbox;
use crate::input::{help_lines, parse_line, Command, Input};
use crate::outbox::Outbox;
use crate::receipts::Receipts;

#[path = "conversation.rs"]
mod conversation;
#[path = "lifecycle.rs"]
mod lifecycle;

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
#[derive(Debug)]
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
}

impl App {
    /// A client that may send messages of up to `max_message` bytes. `scripted` is true when input
    /// is not a terminal (a rejected `--nick` then ends the program instead of asking again).
    pub fn new(max_message: u32, preset_nick: Option<String>, scripted: bool) -> Self {
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
        }
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

    /// Prints history timestamps in UTC rather than local time (for tests).
    pub fn with_utc_times(mut self) -> Self {
        self.local_time = false;
        self
    }

    /// Whether the runner may read more input: not while `MAX_UNACKED` messages wait for acks.
    pub fn accepts_input(&self) -> bool {
        !self.outbox.is_full()
    }

    /// What to do once connected: say whom to chat with (`--to`), then send `--nick` or ask
    /// for a nickname.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
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
            Event::Line(line) => self.on_line(&line),
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
            } => self.on_reconnected(max_message, stored_history),
            Event::ReconnectFailed(why) => {
                let line = show(
                    Style::Error,
                    format!("❌ Could not reconnect to the chat server: {why}"),
                );
                [vec![line], self.finish_leaving(1)].concat()
            }
            Event::AckWaitOver if self.phase == Phase::Draining => self.finish_leaving(0),
            Event::AckWaitOver => Vec::new(),
        };
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
                    Link::Up => vec![Effect::Send(Frame::Nick(nick.to_owned()))],
                    // Sent once reconnected.
                    Link::Resuming | Link::Down => Vec::new(),
                }
            }
            Err(err) => self.nick_refused(&err.to_string()),
        }
    }

    fn nick_refused(&mut self, why: &str) -> Vec<Effect> {
        self.phase = Phase::ChoosingNick;
        self.asked_nick = None;
        let line = show(
            Style::Error,
            format!("❌ Nickname rejected: {}", printable(why)),
        );
        if self.scripted && self.preset_nick.take().is_some() {
            self.phase = Phase::Leaving;
            return vec![line, Effect::Close { code: 1 }];
        }
        self.preset_nick = None;
        vec![line, Effect::Prompt(Prompt::Nick)]
    }

    fn on_line(&mut self, line: &str) -> Vec<Effect> {
        match self.phase {
            Phase::ChoosingNick => {
                let nick = line.trim();
                if nick.eq_ignore_ascii_case("/exit") {
                    self.leave()
                } else if nick.is_empty() {
                    vec![Effect::Prompt(Prompt::Nick)]
                } else {
                    self.offer_nick(nick)
                }
            }
            Phase::Waiting | Phase::Chatting => self.on_chat_line(line),
            Phase::NickSent | Phase::Draining | Phase::Leaving => Vec::new(),
        }
    }

    fn on_chat_line(&mut self, line: &str) -> Vec<Effect> {
        let mut effects = match parse_line(line) {
            Input::Empty => Vec::new(),
            Input::Command(Command::Exit) => return self.leave(),
            Input::Command(Command::Help) => help_lines()
                .into_iter()
                .map(|line| show(Style::Notice, line))
                .collect(),
            Input::Command(Command::Who) => self.send_now(Frame::Who),
            Input::Command(Command::Chat(target)) => {
                let target = target.unwrap_or_default();
                match validate_nick(&target) {
                    Err(err) if !target.is_empty() => vec![show(
                        Style::Error,
                        format!("❌ Cannot chat with {target}: {err}"),
                    )],
                    _ => {
                        self.wanted = Some(target.clone()).filter(|target| !target.is_empty());
                        self.send_now(Frame::ChatWith(target))
                    }
                }
            }
            Input::Command(Command::History(n)) => self.more_history(n),
            Input::Unknown(word) => vec![show(
                Style::Error,
                format!("❓ Unknown command {word}. Type /help for the list."),
            )],
            Input::Usage(usage) => vec![show(Style::Error, format!("❓ Usage: {usage}"))],
            Input::Message(text) if text.len() > self.max_message => vec![show(
                Style::Error,
                format!(
                    "❌ Message too long: {} bytes (the limit is {}); not sent",
                    text.len(),
                    self.max_message
                ),
            )],
            Input::Message(text) => self.send_message(text),
        };
        effects.push(Effect::Prompt(Prompt::Message));
        effects
    }

    /// Sends a request that only makes sense on a live connection.
    fn send_now(&mut self, frame: Frame) -> Vec<Effect> {
        if self.link == Link::Up {
            return vec![Effect::Send(frame)];
        }
        vec![not_connected()]
    }

    fn send_message(&mut self, text: String) -> Vec<Effect> {
        if self.phase == Phase::Waiting && self.companion.is_none() {
            self.held += 1;
        }
        self.ids_made += 1;
        let id: MessageId = self.id_seed.wrapping_add(self.ids_made).to_be_bytes();
        self.outbox.push(id, text);
        self.send_unsent()
    }

    /// Sends the queued messages that did not go out on this connection yet (new ones, or
    /// those a failed store or a lost connection left unacknowledged), unless the relay must
    /// first say which it has.
    fn send_unsent(&mut self) -> Vec<Effect> {
        if self.link != Link::Up || self.resync.is_some() || self.nick.is_none() {
            return Vec::new();
        }
        self.outbox
            .take_unsent()
            .into_iter()
            .map(Effect::Send)
            .collect()
    }

    fn on_frame(&mut self, frame: Frame) -> Vec<Effect> {
        // What the screen shows about the conversation waits, in order, behind a history answer
        // on its way: messages and news of the companion.
        let waits = matches!(
            frame,
            Frame::Message(_)
                | Frame::Waiting
                | Frame::Paired(_)
                | Frame::WaitingFor(_)
                | Frame::Conversation(_)
                | Frame::Left { .. }
        );
        let mut effects = Vec::new();
        if waits && self.history.holding() {
            if self.held_frames.len() < crate::history::MAX_HELD_BACK {
                self.held_frames.push_back(frame);
                return effects;
            }
            // The answer is taking too long: show what waited, and what comes, at once.
            self.history.stop_holding();
            effects = self.release_held_frames();
        }
        let ends_history = matches!(frame, Frame::HistoryEnd { .. });
        effects.extend(self.handle_frame(frame));
        if ends_history || !self.history.holding() {
            effects.extend(self.release_held_frames());
        }
        effects
    }

    /// Handles the frames held back while history loaded, in order (one may start loading the
    /// next conversation's history, holding back those after it again).
    pub(super) fn release_held_frames(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for frame in std::mem::take(&mut self.held_frames) {
            effects.extend(self.on_frame(frame));
        }
        effects
    }

    fn handle_frame(&mut self, frame: Frame) -> Vec<Effect> {
        match frame {
            Frame::NickOk { nick, token } => self.on_nick_ok(nick, token),
            Frame::Waiting => self.on_waiting(),
            Frame::Paired(nick) => self.on_paired(&nick),
            Frame::WaitingFor(nick) => self.on_waiting_for(&nick),
            Frame::Conversation(info) => self.on_conversation(info),
            Frame::Message(message) => self.show_message(message),
            Frame::Ack { count, first_seq } => self.on_ack(count, first_seq),
            Frame::Delivered(through) => {
                self.receipts.delivered_through(through);
                Vec::new()
            }
            Frame::Earlier(message) => {
                self.history.earlier(message);
                Vec::new()
            }
            Frame::HistoryEnd { more, .. } => match self.history.end(more) {
                Some(page) => self.print_page(page),
                None => Vec::new(),
            },
            Frame::Online { total, entries } => {
                vec![show(Style::Notice, online_line(total, &entries))]
            }
            Frame::Left { reason, nick } => self.on_left(reason, &nick),
            Frame::Ping(token) => vec![Effect::Send(Frame::Pong(token))],
            Frame::Shutdown(why) => {
                let why = printable(&why);
                if self.reconnect {
                    return self
                        .on_connection_lost(&format!("the server is shutting down ({why})"));
                }
                self.fail(format!("🛑 The chat server is shutting down ({why})"))
            }
            Frame::Error { code, fatal, text } => self.on_error(code, fatal, &text),
            Frame::Pong(_)
            | Frame::Hello { .. }
            | Frame::Welcome { .. }
            | Frame::Nick(_)
            | Frame::Resume { .. }
            | Frame::Bye
            | Frame::Who
            | Frame::ChatWith(_)
            | Frame::Received(_)
            | Frame::History { .. } => Vec::new(),
        }
    }
}

/// `👥 Online (3): Nick1 (chatting), Nick2 (waiting) and 1 more`
fn online_line(total: u32, entries: &[OnlineEntry]) -> String {
    let listed: Vec<String> = entries
        .iter()
        .map(|entry| {
            let state = if entry.chatting {
                "chatting"
            } else {
                "waiting"
            };
            format!("{} ({state})", printable(&entry.nick))
        })
        .collect();
    let more = (total as usize).saturating_sub(entries.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!("👥 Online ({total}): {}{more}", listed.join(", "))
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
