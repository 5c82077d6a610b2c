//! The end-to-end half of `App`: companions' keys (pinned per relay and nickname, with a loud
//! warning when one changes), the channel of the current conversation, sealing the queued lines
//! into envelopes, opening what arrives (refusing forgeries and replays), and `/verify`. The
//! relay only ever sees envelopes. Pure, like the rest of `App`: the pins are behind `KeyPins`.

use p2pchat_proto::{
    fold_nick, safe_file_name, ChatMessage, EarlierMessage, Frame, MessageId, PublicKey,
};
use p2pchat_secure::{key_fingerprint, safety_number, Channel, E2eError, FileControl};

use super::{printable, show, App, Effect, Link, Style};
use crate::history::stamp;
use crate::keys::{check_pin, pin_name, PinOutcome};
use crate::transfers::human_size;

impl App {
    /// The companion's key from a `Conversation` frame: pins it, and opens the channel that
    /// sealing and opening use (none while the companion has no key yet).
    pub(super) fn on_companion_key(&mut self, nick: &str, key: PublicKey) -> Vec<Effect> {
        let name = printable(nick);
        if key == [0; 32] {
            self.channel = None;
            let folded = fold_nick(nick);
            if self.keyless_noted.as_deref() == Some(folded.as_str()) {
                return Vec::new();
            }
            self.keyless_noted = Some(folded);
            return vec![show(
                Style::Notice,
                format!(
                    "⏳ {name} has not connected to this relay yet, so messages cannot be encrypted for them; what you type waits here and is sent when {name} first connects"
                ),
            )];
        }
        self.keyless_noted = None;
        if self
            .channel
            .as_ref()
            .is_some_and(|channel| channel.theirs() == &key)
        {
            return Vec::new();
        }
        let mut effects = Vec::new();
        let (outcome, failed) = check_pin(self.pins.as_mut(), &pin_name(&self.relay, nick), &key);
        match outcome {
            PinOutcome::First => effects.push(show(
                Style::Notice,
                format!(
                    "🔑 {name}'s identity key is {} — compare safety numbers with /verify",
                    key_fingerprint(&key)
                ),
            )),
            PinOutcome::Same => {}
            PinOutcome::Changed { old } => effects.extend(
                key_changed_lines(&name, &old, &key)
                    .into_iter()
                    .map(|line| show(Style::Error, line)),
            ),
        }
        if let Some(err) = failed {
            effects.push(show(
                Style::Error,
                format!(
                    "⚠️ Could not remember {name}'s key in {}: {err}",
                    self.pins.place()
                ),
            ));
        }
        match Channel::new(&self.identity, &key) {
            Ok(channel) => self.channel = Some(channel),
            Err(err) => {
                self.channel = None;
                effects.push(show(
                    Style::Error,
                    format!(
                        "❌ The key the server gave for {name} is not usable ({err}); messages to {name} cannot be encrypted and wait here"
                    ),
                ));
            }
        }
        effects
    }

    /// Sends what did not go out on this connection yet (new lines, or batches a failed store
    /// or a lost connection left unacknowledged), unless the relay must first say which it has
    /// or there is no companion key to seal them to. Loose lines are packed into batches now.
    pub(super) fn send_unsent(&mut self) -> Vec<Effect> {
        if self.link != Link::Up || self.resync.is_some() || self.nick.is_none() {
            return Vec::new();
        }
        if self.room.is_some() {
            return self.send_room_unsent();
        }
        if self.room_wanted.is_some() {
            // Typed for the room being joined: they wait for it.
            return Vec::new();
        }
        let Some(channel) = &self.channel else {
            return Vec::new();
        };
        let packed = self.outbox.loose();
        let (seed, made, counter) = (self.id_seed, &mut self.ids_made, &mut self.counter);
        self.outbox.pack(self.max_message, || {
            *made += 1;
            (seed.wrapping_add(*made).to_be_bytes(), counter.next())
        });
        let mut effects = Vec::new();
        for batch in self.outbox.take_unsent() {
            let texts: Vec<&str> = batch.lines.iter().map(String::as_str).collect();
            let sealed = match &batch.file {
                Some(control) => channel.seal_file(&batch.id, batch.counter, control),
                None => channel.seal(&batch.id, batch.counter, &texts),
            };
            effects.push(message_effect(batch.id, sealed));
        }
        if packed > 0 && self.held > 0 {
            self.held = 0;
            let nick = printable(self.companion.as_deref().unwrap_or("your companion"));
            effects.push(show(
                Style::Notice,
                format!("📨 The messages you sent while waiting went to {nick}"),
            ));
        }
        effects
    }

    /// Opens a live message from the companion (its id is new): its lines, or a warning line
    /// when it is forged, unreadable or a replay.
    pub(super) fn open_live(&mut self, message: &ChatMessage) -> Vec<Effect> {
        let name = printable(self.companion.as_deref().unwrap_or("your companion"));
        let Some(channel) = &self.channel else {
            return vec![show(
                Style::Error,
                format!("⚠️ A message from {name} could not be read: their key is not known yet"),
            )];
        };
        match channel.open(false, &message.id, &message.body) {
            Ok(plain) => {
                let partner = self.partner.clone().unwrap_or_default();
                if !self.replays.accept(&partner, plain.counter) {
                    return vec![show(
                        Style::Error,
                        format!("⚠️ A replayed message from {name} was rejected"),
                    )];
                }
                self.inbox.remember(message.id, message.seq);
                if let Some(control) = plain.file {
                    return self.on_file_control(control);
                }
                plain
                    .texts
                    .iter()
                    .map(|text| {
                        show(
                            Style::Companion,
                            format!("💬 Companion: {}", printable(text)),
                        )
                    })
                    .collect()
            }
            Err(err) => vec![show(Style::Error, unreadable(&name, &err))],
        }
    }

    /// `📜 [2026-11-25 16:40] Nick2: text`, one line per line of the envelope.
    pub(super) fn earlier_lines(&mut self, message: &EarlierMessage, nick: &str) -> Vec<Effect> {
        let who = if message.mine {
            "You"
        } else {
            // A copy of it arriving live later is a duplicate.
            self.inbox.remember(message.id, message.seq);
            nick
        };
        let texts = match &self.channel {
            None => vec![format!("[cannot be read: no key for {nick} yet]")],
            Some(channel) => match channel.open(message.mine, &message.id, &message.body) {
                Ok(plain) => {
                    if !message.mine {
                        let partner = self.partner.clone().unwrap_or_default();
                        self.replays.seen(&partner, plain.counter);
                    }
                    match &plain.file {
                        Some(control) => earlier_file_line(control).into_iter().collect(),
                        None => plain.texts.iter().map(|text| printable(text)).collect(),
                    }
                }
                Err(E2eError::Forged) => {
                    vec!["[a message encrypted with another key; cannot be read]".to_owned()]
                }
                Err(_) => vec![
                    "[not encrypted, or an envelope version this client cannot read]".to_owned(),
                ],
            },
        };
        let stamp = stamp(message.sent_ms, self.local_time);
        texts
            .into_iter()
            .map(|text| show(Style::Earlier, format!("📜 {stamp} {who}: {text}")))
            .collect()
    }

    /// `/verify`: the safety number of this conversation and both fingerprints.
    pub(super) fn verify(&self) -> Vec<Effect> {
        let Some(channel) = &self.channel else {
            return vec![show(
                Style::Error,
                "❌ No companion key yet: /verify works once you chat with someone whose key is known",
            )];
        };
        let nick = printable(self.companion.as_deref().unwrap_or("your companion"));
        let mine = self.identity.public_key();
        let theirs = *channel.theirs();
        let number = safety_number(&mine, &theirs);
        let groups: Vec<&str> = number.split(' ').collect();
        let mut lines = vec![format!("🔐 Safety number for you and {nick}:")];
        lines.extend(
            groups
                .chunks(4)
                .map(|row| format!("     {}", row.join(" "))),
        );
        // The two fingerprints one above the other, whatever the nickname's length.
        let theirs_label = format!("{nick}'s key:");
        let width = theirs_label.chars().count().max("Your key:".len());
        let pad = |label: &str| {
            let fill = width.saturating_sub(label.chars().count());
            format!("{label}{}", " ".repeat(fill))
        };
        lines.push(format!(
            "   {} {}",
            pad("Your key:"),
            key_fingerprint(&mine)
        ));
        lines.push(format!(
            "   {} {}",
            pad(&theirs_label),
            key_fingerprint(&theirs)
        ));
        lines.push(format!(
            "   Read the number to {nick} in person or over a call (not through this chat). If it matches on both screens, nobody is in the middle; if it does not, someone can read this conversation."
        ));
        lines
            .into_iter()
            .map(|line| show(Style::Notice, line))
            .collect()
    }

    /// `/whoami`: the nickname and this client's key fingerprint.
    pub(super) fn whoami(&self) -> Vec<Effect> {
        let print = key_fingerprint(&self.identity.public_key());
        let text = match &self.nick {
            Some(nick) => format!("🪪 You are {} (key {print})", printable(nick)),
            None => format!("🪪 No nickname yet (key {print})"),
        };
        vec![show(Style::Notice, text)]
    }
}

/// A file control message in history: what it said, and that it cannot be acted on now
/// (nothing for the plumbing between offer and outcome: accepts and SHA-256s).
fn earlier_file_line(control: &FileControl) -> Option<String> {
    let line = match control {
        FileControl::Offer { name, size, .. } => format!(
            "📎 offered {} ({}) — from history, it cannot be accepted now",
            safe_file_name(name),
            human_size(*size)
        ),
        FileControl::Accept { .. } | FileControl::Sent { .. } => return None,
        FileControl::Decline { .. } => "📎 declined a file".to_owned(),
        FileControl::Cancel { .. } => "📎 stopped a file transfer".to_owned(),
        FileControl::Received { .. } => "📎 received a file (SHA-256 verified)".to_owned(),
    };
    Some(line)
}

/// The `Message` carrying a sealed batch, or why it could not be sealed: not expected (batches
/// are bounded well below the format's limits), so say so rather than send something the
/// companion cannot open.
pub(super) fn message_effect<E: std::fmt::Display>(
    id: MessageId,
    sealed: Result<Vec<u8>, E>,
) -> Effect {
    match sealed {
        Ok(body) => Effect::Send(Frame::Message(ChatMessage {
            seq: 0,
            sent_ms: 0,
            id,
            body,
        })),
        Err(err) => show(
            Style::Error,
            format!("❌ Could not encrypt a message: {err}; it was not sent"),
        ),
    }
}

/// Why a live message was not shown.
fn unreadable(name: &str, err: &E2eError) -> String {
    match err {
        E2eError::Forged => format!(
            "⚠️ A message from {name} failed its integrity check and was not shown (altered in transit or by the relay)"
        ),
        other => format!(
            "⚠️ A message from {name} is not encrypted, or uses an envelope version this client cannot read, so it was not shown ({other})"
        ),
    }
}

/// The warning for a companion whose key is not the pinned one.
pub(super) fn key_changed_lines(name: &str, old: &PublicKey, new: &PublicKey) -> Vec<String> {
    vec![
        "⚠️⚠️⚠️ WARNING: THE IDENTITY KEY OF YOUR COMPANION HAS CHANGED ⚠️⚠️⚠️".to_owned(),
        format!("   {name}'s key was   {}", key_fingerprint(old)),
        format!("   and now it is    {}", key_fingerprint(new)),
        format!(
            "   Either {name} released the nickname and someone (maybe {name}, maybe not) registered it with a new key, or the relay is trying to read this conversation."
        ),
        format!(
            "   Check with /verify (compare the safety number with {name} in person or over a call) before trusting anything said here."
        ),
        format!("   The new key is now remembered for {name}."),
    ]
}
