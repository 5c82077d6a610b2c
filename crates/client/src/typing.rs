//! The typed-lines half of `App`: the nickname answer, chat lines and commands. Lines that
//! arrive together (a paste, piped input) are all queued before any is sent, so they travel
//! packed in as few envelopes as the limits allow. Pure, like the rest of `App`.

use p2pchat_proto::{validate_nick, Frame, OnlineEntry};
use p2pchat_secure::e2e::sealed_len;

use super::{not_connected, printable, show, App, Effect, Link, Phase, Prompt, Style};
use crate::input::{help_lines, parse_line, Command, Input};

impl App {
    /// One or more lines of input, in order. Several are queued first and sent packed at the
    /// end, with only the last prompt kept.
    pub(super) fn on_lines(&mut self, lines: Vec<String>) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.deferring = lines.len() > 1;
        for line in lines {
            effects.extend(self.on_line(&line));
        }
        self.deferring = false;
        if matches!(self.phase, Phase::Waiting | Phase::Chatting) {
            effects.extend(self.send_unsent());
        }
        // One question at a time: only the last prompt stands.
        if let Some(last) = effects
            .iter()
            .rposition(|effect| matches!(effect, Effect::Prompt(_)))
        {
            let prompt = effects.remove(last);
            effects.retain(|effect| !matches!(effect, Effect::Prompt(_)));
            effects.push(prompt);
        }
        effects
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

    /// The longest line that fits in an envelope of `max_message` bytes.
    fn max_line(&self) -> usize {
        self.max_message
            .saturating_sub(sealed_len(std::iter::once(0)))
    }

    fn on_chat_line(&mut self, line: &str) -> Vec<Effect> {
        let input = parse_line(line);
        let mut effects = Vec::new();
        if !matches!(input, Input::Message(_) | Input::Empty) {
            // Lines typed before a command go before it (to the companion they were meant for).
            effects = self.send_unsent();
        }
        let leaving = input == Input::Command(Command::Exit);
        let outcome = match input {
            Input::Empty => Vec::new(),
            Input::Command(Command::Exit) => self.leave(),
            Input::Command(Command::Help) => help_lines()
                .into_iter()
                .map(|line| show(Style::Notice, line))
                .collect(),
            Input::Command(Command::Who) => self.send_now(Frame::Who),
            Input::Command(Command::Chat(target)) => self.chat_with(target.unwrap_or_default()),
            Input::Command(Command::History(n)) => self.more_history(n),
            Input::Command(Command::Verify) => self.verify(),
            Input::Command(Command::Whoami) => self.whoami(),
            Input::Command(Command::Release) => self.send_now(Frame::Release),
            Input::Command(Command::Send(typed)) => self.send_typed(&typed),
            Input::Command(Command::Accept(choice)) => self.accept_file(choice.as_deref()),
            Input::Command(Command::Decline(choice)) => self.decline_file(choice.as_deref()),
            Input::Command(Command::Cancel) => self.cancel_files(),
            Input::Command(Command::Join(room)) => self.join_room(&room),
            Input::Command(Command::Leave) => self.leave_room(),
            Input::Command(Command::Rooms) => self.send_now(Frame::Rooms),
            Input::Command(Command::Members) => self.show_members(),
            Input::Command(Command::Room(action, nick)) => self.room_order(action, nick),
            Input::Unknown(word) => vec![show(
                Style::Error,
                format!("❓ Unknown command {word}. Type /help for the list."),
            )],
            Input::Usage(usage) => vec![show(Style::Error, format!("❓ Usage: {usage}"))],
            Input::Message(text) if text.len() > self.max_line() => vec![show(
                Style::Error,
                format!(
                    "❌ Message too long: {} bytes (the limit is {}); not sent",
                    text.len(),
                    self.max_line()
                ),
            )],
            Input::Message(text) => self.send_message(text),
        };
        effects.extend(outcome);
        if !leaving {
            effects.push(Effect::Prompt(Prompt::Message));
        }
        effects
    }

    fn chat_with(&mut self, target: String) -> Vec<Effect> {
        match validate_nick(&target) {
            Err(err) if !target.is_empty() => vec![show(
                Style::Error,
                format!("❌ Cannot chat with {}: {err}", printable(&target)),
            )],
            _ => {
                self.wanted = Some(target.clone()).filter(|target| !target.is_empty());
                self.send_now(Frame::ChatWith(target))
            }
        }
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
        self.outbox.push(text);
        if self.deferring {
            return Vec::new();
        }
        self.send_unsent()
    }
}

/// `👥 Online (3): Nick1 (chatting), Nick2 (waiting) and 1 more`
pub(super) fn online_line(total: u32, entries: &[OnlineEntry]) -> String {
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
    let more = and_more(total, entries.len());
    format!("👥 Online ({total}): {}{more}", listed.join(", "))
}

/// ` and N more` when a listing of `total` shows only `listed` of them.
pub(super) fn and_more(total: u32, listed: usize) -> String {
    match (total as usize).saturating_sub(listed) {
        0 => String::new(),
        more => format!(" and {more} more"),
    }
}
