//! The connection's life as `App` sees it: nickname accepted or resumed, fatal errors, losing
//! the connection and getting it back (what to send again comes with the `Conversation` frame,
//! in `conversation.rs`), and leaving with messages still unacknowledged. Pure.

use p2pchat_proto::{fold_nick, Challenge, ErrorCode, Frame, ResumeToken};

use super::{pausing, printable, show, App, Effect, Link, Phase, Prompt, Resync, Style};

impl App {
    pub(super) fn on_nick_ok(&mut self, nick: String, token: ResumeToken) -> Vec<Effect> {
        self.nick = Some(nick);
        self.token = Some(token);
        self.asked_nick = None;
        self.preset_nick = None;
        if self.link == Link::Resuming {
            self.link = Link::Up;
            if self.resync == Some(Resync::AfterNickOk) {
                self.resync = None;
                return self.send_unsent();
            }
            return Vec::new();
        }
        self.phase = Phase::Waiting;
        vec![Effect::Prompt(Prompt::Message)]
    }

    pub(super) fn on_error(&mut self, code: ErrorCode, fatal: bool, text: &str) -> Vec<Effect> {
        let text = printable(text);
        let nick = printable(self.nick.as_deref().unwrap_or("this nickname"));
        match code {
            ErrorCode::Replaced => self.fail(format!(
                "❌ Another connection resumed {nick}, so the server closed this one ({text}); not reconnecting"
            )),
            ErrorCode::Timeout | ErrorCode::StoreFailed if fatal && self.reconnect => {
                self.on_connection_lost(&format!("the server closed the connection ({text})"))
            }
            _ if fatal => self.fail(format!("❌ The server closed the connection: {text}")),
            ErrorCode::NotDelivered | ErrorCode::FileTooLarge => self.on_chunk_refused(code, &text),
            ErrorCode::NickInvalid
            | ErrorCode::NickTaken
            | ErrorCode::NickOwned
            | ErrorCode::BadProof
                if self.link == Link::Resuming =>
            {
                self.fail(format!(
                    "❌ Could not take back the nickname {nick} after reconnecting: {text}"
                ))
            }
            ErrorCode::NickInvalid | ErrorCode::NickTaken if self.phase == Phase::NickSent => {
                self.nick_refused(&text)
            }
            ErrorCode::NickOwned if self.phase == Phase::NickSent => {
                let asked = printable(self.asked_nick.as_deref().unwrap_or("this nickname"));
                self.nick_refused_with(format!(
                    "❌ The nickname {asked} belongs to another identity key; choose another nickname, or start the client with the --identity file that registered it"
                ))
            }
            ErrorCode::BadProof if self.phase == Phase::NickSent => self.nick_refused_with(format!(
                "❌ The server could not verify your identity key's signature ({text}); try again"
            )),
            ErrorCode::RoomRefused
            | ErrorCode::RoomInvalid
            | ErrorCode::NotOwner
            | ErrorCode::NotInRoom => self.on_room_error(code, &text),
            ErrorCode::RateLimited => vec![show(
                Style::Notice,
                format!("🐢 The server is slowing you down: {text}"),
            )],
            ErrorCode::StoreFailed => {
                // Nothing unacknowledged was kept: all of it goes again, before the next message.
                self.outbox.forget_sent();
                vec![show(
                    Style::Error,
                    format!(
                        "⚠️ The server could not store your messages ({text}); {} will be sent again with your next one",
                        self.outbox.len()
                    ),
                )]
            }
            ErrorCode::HeldFull => {
                let line = match self.outbox.drop_newest_sent() {
                    Some(refused) => {
                        let first = refused.lines.first().map_or("(a file message)", String::as_str);
                        let others = match refused.lines.len() {
                            0 | 1 => String::new(),
                            n => format!(" (and {} more line(s))", n - 1),
                        };
                        format!("⚠️ {text}: “{}”{others} was not sent", printable(first))
                    }
                    None => format!("⚠️ {text}"),
                };
                vec![show(Style::Error, line)]
            }
            _ => vec![show(Style::Error, format!("⚠️ {text}"))],
        }
    }

    pub(super) fn on_connection_lost(&mut self, why: &str) -> Vec<Effect> {
        if self.link == Link::Down {
            return Vec::new();
        }
        let mut effects = self.receipt_lines();
        effects.extend(self.pause_transfers("the connection to the server was lost"));
        if self.phase == Phase::Leaving {
            return effects; // `--send` failed with it
        }
        self.history.interrupt();
        effects.extend(self.release_held_frames());
        self.link = Link::Down;
        self.resync = None;
        self.outbox.forget_sent();
        // Once back, waiting for this companion means waiting for them to return too.
        self.lost_companion = self.companion.as_deref().map(fold_nick);
        if self.phase == Phase::Draining || !self.reconnect {
            effects.push(show(
                Style::Error,
                format!("❌ Lost connection to the chat server: {why}"),
            ));
            effects.extend(self.finish_leaving(1));
            return effects;
        }
        effects.push(show(
            Style::Error,
            format!("⚠️ Lost connection to the chat server: {why}. Reconnecting…"),
        ));
        effects.push(Effect::Reconnect);
        effects
    }

    pub(super) fn on_reconnected(
        &mut self,
        max_message: u32,
        stored_history: bool,
        challenge: Challenge,
    ) -> Vec<Effect> {
        self.max_message = max_message as usize;
        // Each connection has its own challenge: a proof made for the last one is no good.
        self.challenge = challenge;
        self.stored_history = stored_history;
        self.link = Link::Up;
        let mut effects = Vec::new();
        let room = self.room.as_ref().map(|r| r.name.clone());
        let room = room.or_else(|| self.room_wanted.clone());
        let target = match &room {
            Some(room) => {
                effects.push(Effect::Send(Frame::Join(room.clone())));
                Some(room.clone())
            }
            None => self.companion.clone().or_else(|| self.wanted.clone()),
        };
        if let (Some(target), None) = (&target, &room) {
            effects.push(Effect::Send(Frame::ChatWith(target.clone())));
        }
        match (&self.nick, self.token) {
            (Some(nick), Some(token)) => {
                self.link = Link::Resuming;
                self.resync = Some(match target {
                    Some(_) => Resync::AtConversation,
                    None => Resync::AfterNickOk,
                });
                effects.push(Effect::Send(Frame::Resume {
                    nick: nick.clone(),
                    token,
                    key: self.identity.public_key(),
                    proof: self.identity.sign_login(&self.challenge, nick),
                }));
            }
            _ => {
                if let (Phase::NickSent, Some(nick)) = (self.phase, &self.asked_nick) {
                    effects.push(Effect::Send(self.nick_frame(nick)));
                }
            }
        }
        effects
    }

    pub(super) fn on_input_ended(&mut self) -> Vec<Effect> {
        let chatting = matches!(self.phase, Phase::Waiting | Phase::Chatting);
        if chatting && (self.transfers.busy() || self.auto_sending() || !self.send_queue.is_empty())
        {
            self.leave_when_done = true;
            return vec![show(
                Style::Notice,
                "⏳ End of input: staying until the file transfer is done (Ctrl+C quits now)",
            )];
        }
        if chatting && !self.outbox.is_empty() {
            let queued = self.outbox.len();
            if self.link == Link::Down && self.scripted {
                self.leave_when_done = true;
                return vec![show(
                    Style::Notice,
                    format!("⏳ End of input: staying to send {queued} queued message(s) once reconnected (Ctrl+C quits now)"),
                )];
            }
            if self.link != Link::Down && self.companion.is_none() {
                self.leave_when_done = true;
                return vec![show(
                    Style::Notice,
                    format!(
                        "⏳ End of input: staying until a companion joins to receive {queued} held message(s) (Ctrl+C quits now)"
                    ),
                )];
            }
            if self.link != Link::Down && self.channel.is_none() {
                self.leave_when_done = true;
                let nick = printable(self.companion.as_deref().unwrap_or("your companion"));
                return vec![show(
                    Style::Notice,
                    format!(
                        "⏳ End of input: staying until {nick} connects, so {queued} waiting message(s) can be encrypted for them (Ctrl+C quits now)"
                    ),
                )];
            }
        }
        self.leave()
    }

    /// Whether input ended earlier can now end the chat: connected, resynchronised, and any
    /// queued messages have someone to go to.
    pub(super) fn can_leave_now(&self) -> bool {
        matches!(self.phase, Phase::Waiting | Phase::Chatting)
            && self.link == Link::Up
            && self.resync.is_none()
            && (self.channel.is_some() || self.outbox.is_empty())
            && !self.transfers.busy()
            && !self.auto_sending()
            && self.send_queue.is_empty()
    }

    /// `/exit` or end of input: leaves once what was sent is acknowledged (`WaitForAcks` bounds
    /// the wait), at once when nothing is pending or there is no connection to wait on.
    pub(super) fn leave(&mut self) -> Vec<Effect> {
        self.leave_when_done = false;
        // Whatever is on its way stops with us (a file being received is kept to resume).
        let mut stopped: Vec<Effect> = self
            .transfers
            .take_all()
            .iter()
            .map(pausing::leave_effect)
            .collect();
        let chatting = matches!(self.phase, Phase::Waiting | Phase::Chatting);
        if chatting && self.link != Link::Down && !self.outbox.is_empty() {
            stopped.extend(self.send_unsent());
            self.phase = Phase::Draining;
            stopped.push(Effect::WaitForAcks);
            return stopped;
        }
        stopped.extend(self.finish_leaving(self.exit_code));
        stopped
    }

    /// Says what was not confirmed, says goodbye if connected, and ends with `code`.
    pub(super) fn finish_leaving(&mut self, code: i32) -> Vec<Effect> {
        let mut effects = self.receipt_lines();
        let unconfirmed = self.outbox.len();
        if unconfirmed > 0 {
            let text = if self.companion.is_none() && self.held > 0 {
                format!("📭 {unconfirmed} message(s) held for a companion were not delivered")
            } else if self.channel.is_none() && self.outbox.loose() > 0 {
                let nick = printable(self.companion.as_deref().unwrap_or("your companion"));
                format!("📭 {unconfirmed} message(s) were not sent: {nick} had no key yet to encrypt them to")
            } else {
                format!("⚠️ {unconfirmed} message(s) were not confirmed by the server")
            };
            effects.push(show(Style::Notice, text));
        }
        if self.link != Link::Down {
            // What we received must be on record before we go, or it comes again next time.
            if self.nick.is_some() {
                if let Some(seq) = self.inbox.take_report() {
                    effects.push(Effect::Send(Frame::Received(seq)));
                }
            }
            effects.push(Effect::Send(Frame::Bye));
        }
        self.phase = Phase::Leaving;
        effects.push(Effect::Close { code });
        effects
    }

    /// Ends the client with status 1 after this line.
    pub(super) fn fail(&mut self, text: String) -> Vec<Effect> {
        self.phase = Phase::Leaving;
        vec![show(Style::Error, text), Effect::Close { code: 1 }]
    }
}
