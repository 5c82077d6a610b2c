//! What goes into the client's state machine and what comes out of it: events (frames, typed
//! lines, timers), effects for the runner to carry out, and the lines of the chat view. Plain
//! data; `app` decides.

use p2pchat_proto::{Challenge, Frame};

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
