//! The conversation half of `App`: the relay's news about companions, joining a conversation
//! (and what to re-send on resume), showing the companion's messages once each, acks and
//! receipts, and history pages. Pure, like the rest of `App`.

use p2pchat_proto::{fold_nick, ChatMessage, ConversationInfo, Frame, LeftReason};

use super::{not_connected, printable, show, App, Effect, Link, Phase, Resync, Style};
use crate::history::{Busy, Page};
use crate::inbox::Arrival;
use crate::transfers::Stage;

impl App {
    /// `Paired`, `WaitingFor` or `Conversation` named `nick`: a different companion starts a
    /// different conversation, with ids and receipts of its own.
    pub(super) fn set_companion(&mut self, nick: &str, present: bool) -> Vec<Effect> {
        let key = fold_nick(nick);
        let mut effects = Vec::new();
        if self.partner.as_deref() != Some(key.as_str()) {
            effects = self.receipt_lines();
            effects.extend(self.stop_transfers("the conversation changed"));
            self.inbox.reset();
            self.receipts.reset();
            self.partner = Some(key);
            // Another companion, another key: nothing is sealed to them until theirs is known.
            self.channel = None;
            self.keyless_noted = None;
        }
        self.companion = Some(nick.to_owned());
        self.present = present;
        effects
    }

    /// Moves to `phase` unless the client is on its way out (news about the conversation must
    /// not undo leaving: the acknowledgements it waits for may come after such news).
    fn enter_phase(&mut self, phase: Phase) {
        if !matches!(self.phase, Phase::Draining | Phase::Leaving) {
            self.phase = phase;
        }
    }

    pub(super) fn on_waiting(&mut self) -> Vec<Effect> {
        self.enter_phase(Phase::Waiting);
        self.room = None;
        self.lost_companion = None;
        let mut effects = self.stop_transfers("the conversation ended");
        self.companion = None;
        self.present = false;
        // No companion, no key: what is typed now waits here until someone arrives.
        self.channel = None;
        effects.push(show(
            Style::Notice,
            "⏳ Waiting for a companion to join... Messages you send now are held and delivered when they arrive.",
        ));
        // Resumed without the companion asked for: the relay kept nothing of ours.
        if self.link == Link::Up && self.resync.take().is_some() {
            effects.extend(self.send_unsent());
        }
        effects
    }

    pub(super) fn on_paired(&mut self, nick: &str) -> Vec<Effect> {
        self.enter_phase(Phase::Chatting);
        self.room = None;
        self.lost_companion = None;
        let mut effects = self.set_companion(nick, true);
        let nick = printable(nick);
        effects.push(show(
            Style::Companion,
            format!("💬 Companion: Connected to {nick}"),
        ));
        effects.extend(self.maybe_auto_send());
        effects
    }

    pub(super) fn on_waiting_for(&mut self, nick: &str) -> Vec<Effect> {
        self.enter_phase(Phase::Waiting);
        self.room = None;
        let returning = self.lost_companion.take() == Some(fold_nick(nick));
        let effects = self.set_companion(nick, false);
        let nick = printable(nick);
        let text = match (returning, self.stored_history) {
            (false, false) => format!(
                "⏳ Waiting for {nick} to be free... Messages you send now are held and delivered when you are connected."
            ),
            (false, true) => format!(
                "⏳ Waiting for {nick} to be free... Messages you send now are stored and delivered when you are connected."
            ),
            (true, true) => format!(
                "⏳ Waiting for {nick} to come back... Messages you send now are stored and delivered when they return."
            ),
            (true, false) => format!(
                "⏳ Waiting for {nick} to come back... This server keeps no history: messages you send now are not kept for them."
            ),
        };
        [effects, vec![show(Style::Notice, text)]].concat()
    }

    pub(super) fn on_left(&mut self, reason: LeftReason, nick: &str) -> Vec<Effect> {
        self.enter_phase(Phase::Waiting);
        self.present = false;
        let how = match reason {
            LeftReason::Quit => String::new(),
            other => {
                self.lost_companion = Some(fold_nick(nick));
                format!(" ({})", other.describe())
            }
        };
        let mut effects = vec![show(
            Style::Notice,
            format!("👋 {} left the chat{how}", printable(nick)),
        )];
        effects.extend(self.pause_transfers(&format!("{} is away", printable(nick))));
        effects
    }

    pub(super) fn on_conversation(&mut self, info: ConversationInfo) -> Vec<Effect> {
        let mut effects = self.set_companion(&info.companion, self.present);
        effects.extend(self.on_companion_key(&info.companion, info.companion_key));
        // Offers to them before a restart come back, their interrupted downloads resume
        // (both found at once, before the next frame).
        effects.extend(self.find_parts());
        self.inbox.joined(info.read_through);
        self.receipts.delivered_through(info.their_read_through);
        if self.link == Link::Up && self.resync == Some(Resync::AtConversation) {
            self.resync = None;
            // Everything through the last message the relay holds from us is stored; the rest
            // goes again, in order, with the same ids.
            if info.last_from_you > 0 {
                let dropped = self.outbox.drop_through(&info.last_id_from_you);
                self.receipts
                    .stored_through(info.last_from_you, dropped as u64);
            }
        }
        // Also what waited for this companion's key.
        effects.extend(self.send_unsent());
        // Offers they have not answered go again: they may have restarted and lost them.
        effects.extend(self.offer_again(|known| known.stage == Stage::Offered));
        let key = fold_nick(&info.companion);
        if let Some(request) = self.history.joined(&key, info.read_through) {
            effects.push(Effect::Send(request));
        }
        effects.extend(self.maybe_auto_send());
        effects
    }

    /// Shows a companion's message unless its id was shown already. One that cannot be shown
    /// still counts as received, or the relay would deliver it again forever.
    pub(super) fn show_message(&mut self, message: ChatMessage) -> Vec<Effect> {
        let name = self.companion.clone().unwrap_or("your companion".into());
        if let Some(effects) = self.seen_before(message.seq, &message.id, &name) {
            return effects;
        }
        self.history.shown(message.seq);
        self.open_live(&message)
    }

    /// What to show instead of a message from `author` that arrived before: nothing for the
    /// same copy again, a warning for a copy the relay numbered anew; `None` for a new one.
    pub(super) fn seen_before(
        &mut self,
        seq: u64,
        id: &p2pchat_proto::MessageId,
        author: &str,
    ) -> Option<Vec<Effect>> {
        match self.inbox.arrival(seq, id) {
            Arrival::New => None,
            Arrival::Again => Some(Vec::new()),
            Arrival::Renumbered => Some(vec![show(
                Style::Error,
                format!(
                    "⚠️ A message from {} arrived again under a new number (replayed, or sent \
                     again after the relay crashed); it was not shown twice",
                    printable(author)
                ),
            )]),
        }
    }

    pub(super) fn on_ack(&mut self, count: u32, first_seq: u64) -> Vec<Effect> {
        let stored = self.outbox.ack(count);
        self.receipts.stored(first_seq, stored as u64);
        if self.phase == Phase::Draining && self.outbox.is_empty() {
            return self.finish_leaving(self.exit_code);
        }
        Vec::new()
    }

    /// The end of a batch of frames: the receipts it brought, and how far we have received.
    pub(super) fn on_drained(&mut self) -> Vec<Effect> {
        let mut effects = self.receipt_lines();
        if self.link == Link::Up && self.nick.is_some() {
            if let Some(seq) = self.inbox.take_report() {
                effects.push(Effect::Send(Frame::Received(seq)));
            }
        }
        effects
    }

    pub(super) fn receipt_lines(&mut self) -> Vec<Effect> {
        let companion = self.companion.as_deref().map(printable);
        self.receipts
            .take_lines(companion.as_deref(), !self.present, self.stored_history)
            .into_iter()
            .map(|line| show(Style::Notice, line))
            .collect()
    }

    pub(super) fn more_history(&mut self, n: u32) -> Vec<Effect> {
        if self.partner.is_none() {
            return vec![show(
                Style::Error,
                "❌ No conversation yet: /history works once you chat with someone",
            )];
        }
        if self.link != Link::Up {
            return vec![not_connected()];
        }
        match self.history.more(n) {
            Ok(request) => vec![Effect::Send(request)],
            Err(Busy) => vec![show(
                Style::Notice,
                "⏳ Earlier messages are still on their way",
            )],
        }
    }

    /// Prints a history answer: a header and the earlier messages (or, for `/history`, that
    /// there are none). Live frames that waited for it are handled after it.
    pub(super) fn print_page(&mut self, page: Page) -> Vec<Effect> {
        let nick = printable(self.companion.as_deref().unwrap_or("your companion"));
        let mut effects = Vec::new();
        if page.earlier.is_empty() {
            if page.paging {
                effects.push(show(
                    Style::Notice,
                    format!("📜 No earlier messages with {nick}"),
                ));
            }
            return effects;
        }
        let more = if page.more {
            " (/history shows more)"
        } else {
            ""
        };
        effects.push(show(
            Style::Notice,
            format!("📜 Earlier messages with {nick}{more}:"),
        ));
        for message in &page.earlier {
            effects.extend(self.earlier_lines(message, &nick));
        }
        effects
    }
}
