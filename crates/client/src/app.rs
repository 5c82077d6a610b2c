//! The client's behaviour as plain data: an event in, the effects to carry out. No terminal, no
//! socket and no clock, so every conversation path is unit-tested without either.

use p2pchat_proto::{validate_nick, ErrorCode, Frame, LeftReason, OnlineEntry};

use crate::input::{help_lines, parse_line, Command, Input};

/// Something that happened to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A frame from the relay.
    Frame(Frame),
    /// A line the user typed (without its line ending).
    Line(String),
    /// A typed line was not UTF-8.
    BadLine,
    /// End of input (Ctrl+D, or the end of piped input).
    InputEnded,
    /// Ctrl+C.
    Interrupted,
    /// The connection to the relay broke; the text says how.
    ConnectionLost(String),
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
    /// Stop: finish sending what is queued, close the connection, exit with `code`.
    Close {
        /// Process exit status.
        code: i32,
    },
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
    /// News about the conversation.
    Notice,
    /// Something went wrong.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    ChoosingNick,
    NickSent,
    Waiting,
    Chatting,
    Leaving,
}

/// The client's state between events.
#[derive(Debug)]
pub struct App {
    phase: Phase,
    max_message: usize,
    /// `--nick`, until the relay answers it.
    preset_nick: Option<String>,
    /// `--to`: the companion asked for before the nickname.
    wanted: Option<String>,
    scripted: bool,
    /// Messages sent while waiting, held by the relay.
    held: usize,
    /// Input ended while messages were held: leave as soon as a companion has them.
    leave_when_paired: bool,
}

impl App {
    /// A client that may send messages of up to `max_message` bytes. `scripted` is true when input
    /// is not a terminal (a rejected `--nick` then ends the program instead of asking again).
    pub fn new(max_message: u32, preset_nick: Option<String>, scripted: bool) -> Self {
        Self {
            phase: Phase::ChoosingNick,
            max_message: max_message as usize,
            preset_nick,
            wanted: None,
            scripted,
            held: 0,
            leave_when_paired: false,
        }
    }

    /// Asks for a particular companion (`--to`) before the nickname is chosen.
    pub fn with_companion(mut self, wanted: Option<String>) -> Self {
        self.wanted = wanted;
        self
    }

    /// What to do once connected: say whom to chat with (`--to`), then send `--nick` or ask
    /// for a nickname.
    pub fn start(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(wanted) = &self.wanted {
            if let Err(err) = validate_nick(wanted) {
                self.phase = Phase::Leaving;
                return vec![
                    show(Style::Error, format!("❌ --to {wanted}: {err}")),
                    Effect::Close { code: 1 },
                ];
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
        match event {
            Event::Frame(frame) => self.on_frame(frame),
            Event::Line(line) => self.on_line(&line),
            Event::BadLine => vec![
                show(
                    Style::Error,
                    "❌ That line is not valid UTF-8 and was not sent",
                ),
                self.prompt(),
            ],
            Event::InputEnded => self.on_input_ended(),
            Event::Interrupted => self.leave(),
            Event::ConnectionLost(why) => {
                self.phase = Phase::Leaving;
                vec![
                    show(
                        Style::Error,
                        format!("❌ Lost connection to the chat server: {why}"),
                    ),
                    Effect::Close { code: 1 },
                ]
            }
        }
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
                vec![Effect::Send(Frame::Nick(nick.to_owned()))]
            }
            Err(err) => self.nick_refused(&err.to_string()),
        }
    }

    fn nick_refused(&mut self, why: &str) -> Vec<Effect> {
        self.phase = Phase::ChoosingNick;
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
            Phase::NickSent | Phase::Leaving => Vec::new(),
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
            Input::Command(Command::Who) => vec![Effect::Send(Frame::Who)],
            Input::Command(Command::Chat(target)) => {
                let target = target.unwrap_or_default();
                match validate_nick(&target) {
                    Err(err) if !target.is_empty() => vec![show(
                        Style::Error,
                        format!("❌ Cannot chat with {target}: {err}"),
                    )],
                    _ => vec![Effect::Send(Frame::ChatWith(target))],
                }
            }
            Input::Unknown(word) => vec![show(
                Style::Error,
                format!("❓ Unknown command {word}. Type /help for the list."),
            )],
            Input::Message(text) if text.len() > self.max_message => vec![show(
                Style::Error,
                format!(
                    "❌ Message too long: {} bytes (the limit is {}); not sent",
                    text.len(),
                    self.max_message
                ),
            )],
            Input::Message(text) => {
                if self.phase == Phase::Waiting {
                    self.held += 1;
                }
                vec![Effect::Send(Frame::Message(text))]
            }
        };
        effects.push(Effect::Prompt(Prompt::Message));
        effects
    }

    fn on_frame(&mut self, frame: Frame) -> Vec<Effect> {
        match frame {
            Frame::NickOk(_) => {
                self.phase = Phase::Waiting;
                self.preset_nick = None;
                vec![Effect::Prompt(Prompt::Message)]
            }
            Frame::Waiting => {
                self.phase = Phase::Waiting;
                vec![show(
                    Style::Notice,
                    "⏳ Waiting for a companion to join... Messages you send now are held and delivered when they arrive.",
                )]
            }
            Frame::Paired(nick) => self.on_paired(&nick),
            Frame::WaitingFor(nick) => {
                self.phase = Phase::Waiting;
                vec![show(
                    Style::Notice,
                    format!(
                        "⏳ Waiting for {} to be free... Messages you send now are held and delivered when you are connected.",
                        printable(&nick)
                    ),
                )]
            }
            Frame::Online { total, entries } => {
                vec![show(Style::Notice, online_line(total, &entries))]
            }
            Frame::Message(text) => vec![show(
                Style::Companion,
                format!("💬 Companion: {}", printable(&text)),
            )],
            Frame::Left { reason, nick } => {
                self.phase = Phase::Waiting;
                let how = match reason {
                    LeftReason::Quit => String::new(),
                    other => format!(" ({})", other.describe()),
                };
                vec![show(
                    Style::Notice,
                    format!("👋 {} left the chat{how}", printable(&nick)),
                )]
            }
            Frame::Ping(token) => vec![Effect::Send(Frame::Pong(token))],
            Frame::Shutdown(why) => {
                self.phase = Phase::Leaving;
                vec![
                    show(
                        Style::Error,
                        format!("🛑 The chat server is shutting down ({})", printable(&why)),
                    ),
                    Effect::Close { code: 1 },
                ]
            }
            Frame::Error { code, fatal, text } => self.on_error(code, fatal, &text),
            Frame::Pong(_)
            | Frame::Hello { .. }
            | Frame::Welcome { .. }
            | Frame::Nick(_)
            | Frame::Bye
            | Frame::Who
            | Frame::ChatWith(_) => Vec::new(),
        }
    }

    fn on_paired(&mut self, nick: &str) -> Vec<Effect> {
        self.phase = Phase::Chatting;
        let nick = printable(nick);
        let mut effects = vec![show(
            Style::Companion,
            format!("💬 Companion: Connected to {nick}"),
        )];
        if self.held > 0 {
            effects.push(show(
                Style::Notice,
                format!("📨 The messages you sent while waiting were delivered to {nick}"),
            ));
            self.held = 0;
        }
        if self.leave_when_paired {
            effects.extend(self.leave());
        }
        effects
    }

    fn on_error(&mut self, code: ErrorCode, fatal: bool, text: &str) -> Vec<Effect> {
        let text = printable(text);
        if fatal {
            self.phase = Phase::Leaving;
            return vec![
                show(
                    Style::Error,
                    format!("❌ The server closed the connection: {text}"),
                ),
                Effect::Close { code: 1 },
            ];
        }
        match code {
            ErrorCode::NickInvalid | ErrorCode::NickTaken if self.phase == Phase::NickSent => {
                self.nick_refused(&text)
            }
            _ => vec![show(Style::Error, format!("⚠️ {text}"))],
        }
    }

    fn on_input_ended(&mut self) -> Vec<Effect> {
        if self.phase == Phase::Waiting && self.held > 0 {
            self.leave_when_paired = true;
            return vec![show(
                Style::Notice,
                format!(
                    "⏳ End of input: staying until a companion joins to receive {} held message(s) (Ctrl+C quits now)",
                    self.held
                ),
            )];
        }
        self.leave()
    }

    fn leave(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.phase == Phase::Waiting && self.held > 0 {
            effects.push(show(
                Style::Notice,
                format!(
                    "📭 {} message(s) held for a companion were not delivered",
                    self.held
                ),
            ));
        }
        self.phase = Phase::Leaving;
        effects.push(Effect::Send(Frame::Bye));
        effects.push(Effect::Close { code: 0 });
        effects
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
