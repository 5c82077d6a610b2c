//! The rooms half of `App`: joining and leaving rooms, the member list and the room's news,
//! sealing what is typed with this client's sender key (distributed to the members over their
//! pairwise keys first, and again whenever the member list changes), and opening what members
//! say. Pure, like the rest of `App`.

use p2pchat_proto::{
    fold_nick, validate_room, ErrorCode, Frame, MemberEntry, NewsKind, RoomAction, RoomEntry,
    RoomInfo, RoomMessage, RoomNews,
};
use p2pchat_secure::room::Opened;
use p2pchat_secure::RoomKeys;

use super::{not_connected, printable, show, App, Effect, Link, Phase, Resync, Style};
use crate::keys::{check_pin, pin_name, PinOutcome};
use crate::outbox::Batch;

/// A member as this client knows it: the folded name (compared on every message) and what the
/// relay said.
pub(super) struct Known {
    pub(super) folded: String,
    pub(super) entry: MemberEntry,
}

impl Known {
    fn new(entry: MemberEntry) -> Self {
        Self {
            folded: fold_nick(&entry.nick),
            entry,
        }
    }
}

/// The room this client is in.
pub(super) struct RoomView {
    pub(super) name: String,
    folded: String,
    owner: String,
    invite_only: bool,
    pub(super) members: Vec<Known>,
    /// A `Members` list is arriving (the next frame continues it).
    pub(super) listing: bool,
    pub(super) keys: RoomKeys,
}

impl App {
    /// `--room` or `/join`: asks for the room (before `Nick`, or now).
    pub(super) fn join_room(&mut self, name: &str) -> Vec<Effect> {
        if let Err(err) = validate_room(name) {
            let err = err.to_string().replace("nickname", "room name");
            return vec![show(
                Style::Error,
                format!("❌ Cannot join {}: {err}", printable(name)),
            )];
        }
        self.room_wanted = Some(name.to_owned());
        self.wanted = None;
        match self.link {
            Link::Up => vec![Effect::Send(Frame::Join(name.to_owned()))],
            _ => vec![not_connected()],
        }
    }

    /// `Room`: the client is in the room; what it missed follows.
    pub(super) fn on_room(&mut self, info: RoomInfo) -> Vec<Effect> {
        let folded = fold_nick(&info.room);
        let me = fold_nick(self.nick.as_deref().unwrap_or_default());
        let mut effects = Vec::new();
        let same = self.room.as_ref().is_some_and(|r| r.folded == folded);
        if !same {
            effects = self.stop_transfers("you went into a room");
            self.inbox.reset();
            self.receipts.reset();
            effects.push(show(
                Style::Notice,
                format!(
                    "🏠 You are in room {} (owner: {}). /members shows who is here, /leave leaves it.",
                    printable(&info.room),
                    printable(&info.owner)
                ),
            ));
        }
        let keys = match self.room.take() {
            Some(mut view) if same => {
                // A new connection: a new sender key, so nothing depends on what was lost.
                view.keys.rotate();
                view.keys
            }
            _ => RoomKeys::new(&folded, &me),
        };
        self.room = Some(RoomView {
            name: info.room.clone(),
            folded: folded.clone(),
            owner: info.owner.clone(),
            invite_only: info.invite_only,
            members: Vec::new(),
            listing: false,
            keys,
        });
        self.room_wanted = None;
        self.phase = Phase::Chatting;
        self.companion = None;
        self.channel = None;
        self.partner = Some(format!("#{folded}"));
        self.inbox.joined(info.read_through);
        if self.link == Link::Up && self.resync == Some(Resync::AtConversation) {
            self.resync = None;
            if info.last_from_you > 0 {
                self.outbox.drop_through(&info.last_id_from_you);
            }
        }
        if same {
            effects.extend(self.resume_room_files());
        }
        effects
    }

    /// `Members`: the room's member list, in one or more frames.
    pub(super) fn on_members(&mut self, more: bool, entries: Vec<MemberEntry>) -> Vec<Effect> {
        let Some(view) = self.room.as_mut() else {
            return Vec::new();
        };
        if !view.listing {
            view.members.clear();
            view.listing = true;
        }
        view.members.extend(entries.iter().cloned().map(Known::new));
        let mut effects = self.pin_members(&entries);
        let Some(view) = self.room.as_mut() else {
            return effects;
        };
        if more {
            return effects;
        }
        view.listing = false;
        effects.push(show(Style::Notice, members_line(view)));
        effects.extend(self.send_unsent());
        effects
    }

    /// `Said`: a member's message (or sender key), shown once.
    pub(super) fn on_said(&mut self, message: RoomMessage) -> Vec<Effect> {
        if let Some(effects) = self.seen_before(message.seq, &message.id, &message.author) {
            return effects;
        }
        let Some(view) = self.room.as_mut() else {
            return Vec::new();
        };
        let author = fold_nick(&message.author);
        let name = printable(&message.author);
        let Some(key) = view
            .members
            .iter()
            .find(|m| m.folded == author)
            .map(|m| m.entry.key)
        else {
            return vec![show(
                Style::Error,
                format!("⚠️ A message from {name}, who is not a member, was not shown"),
            )];
        };
        let opened = view
            .keys
            .open(&self.identity, &author, &key, &message.id, &message.body);
        match opened {
            Ok(Opened::Keys { .. } | Opened::NotForMe) => {
                self.inbox.remember(message.id, message.seq);
                Vec::new()
            }
            Ok(Opened::Message(plain)) => {
                self.inbox.remember(message.id, message.seq);
                if let Some(control) = plain.file {
                    return self.on_room_file_control(&author, &message.author, control);
                }
                plain
                    .texts
                    .iter()
                    .map(|text| show(Style::Companion, format!("💬 {name}: {}", printable(text))))
                    .collect()
            }
            Err(err) => vec![show(
                Style::Error,
                format!("⚠️ A message from {name} could not be read: {err}"),
            )],
        }
    }

    /// `RoomNews`: who came and went, and the room's rules.
    pub(super) fn on_room_news(&mut self, news: RoomNews) -> Vec<Effect> {
        let me = fold_nick(self.nick.as_deref().unwrap_or_default());
        let Some(view) = self.room.as_mut() else {
            return Vec::new();
        };
        let folded = fold_nick(&news.nick);
        let nick = printable(&news.nick);
        let position = view.members.iter().position(|m| m.folded == folded);
        let text = match news.kind {
            NewsKind::Joined | NewsKind::Online => {
                let entry = MemberEntry {
                    nick: news.nick.clone(),
                    key: news.key,
                    online: true,
                };
                match position {
                    Some(at) => view.members[at] = Known::new(entry.clone()),
                    None => view.members.push(Known::new(entry.clone())),
                }
                let text = if news.kind == NewsKind::Joined {
                    view.keys.rotate();
                    format!("👋 {nick} joined the room")
                } else {
                    format!("🟢 {nick} is back in the room")
                };
                let mut effects = vec![show(Style::Notice, text)];
                effects.extend(self.pin_members(&[entry]));
                return effects;
            }
            NewsKind::Offline => {
                if let Some(at) = position {
                    view.members[at].entry.online = false;
                }
                // They may come back as a new process, without the keys they had: what is said
                // meanwhile goes under a new key, sent to them too, which waits in the history.
                view.keys.rotate();
                format!("💤 {nick} went away (they get what they missed when they come back)")
            }
            NewsKind::Left | NewsKind::Kicked | NewsKind::Banned => {
                if folded == me {
                    return self.removed(news.kind);
                }
                if let Some(at) = position {
                    view.members.remove(at);
                }
                // They must not read what is said from now on.
                view.keys.rotate();
                match news.kind {
                    NewsKind::Left => format!("👋 {nick} left the room"),
                    NewsKind::Kicked => format!("🚫 {nick} was removed from the room by its owner"),
                    _ => format!("🚫 {nick} was banned from the room by its owner"),
                }
            }
            NewsKind::Invited => format!("✉️ {nick} was invited to the room"),
            NewsKind::InviteOnly => {
                view.invite_only = true;
                format!("🔒 {nick} made the room invite-only")
            }
            NewsKind::Open => {
                view.invite_only = false;
                format!("🔓 {nick} opened the room to anyone")
            }
            NewsKind::Owner => {
                view.owner = news.nick.clone();
                format!("👑 {nick} now owns the room")
            }
        };
        vec![show(Style::Notice, text)]
    }

    /// Checks members' keys against the pins (the same as for one-to-one companions): a key
    /// seen first is pinned quietly, a changed one is warned about loudly, as for a companion.
    fn pin_members(&mut self, entries: &[MemberEntry]) -> Vec<Effect> {
        let me = fold_nick(self.nick.as_deref().unwrap_or_default());
        let mut effects = Vec::new();
        for entry in entries.iter().filter(|e| e.key != [0; 32]) {
            if fold_nick(&entry.nick) == me {
                continue;
            }
            let name = pin_name(&self.relay, &entry.nick);
            let (outcome, failed) = check_pin(self.pins.as_mut(), &name, &entry.key);
            if let PinOutcome::Changed { old } = outcome {
                let shown = printable(&entry.nick);
                let lines = super::encryption::key_changed_lines(&shown, &old, &entry.key);
                effects.extend(lines.into_iter().map(|line| show(Style::Error, line)));
            }
            if let Some(err) = failed {
                let text = format!("⚠️ Could not remember a member's key: {err}");
                effects.push(show(Style::Error, text));
            }
        }
        effects
    }

    /// The owner removed this client from its room; the relay pairs it again.
    fn removed(&mut self, kind: NewsKind) -> Vec<Effect> {
        let name = self.room.take().map(|r| r.name).unwrap_or_default();
        self.partner = None;
        self.phase = Phase::Waiting;
        let how = match kind {
            NewsKind::Banned => "banned you from",
            _ => "removed you from",
        };
        vec![show(
            Style::Error,
            format!("🚫 The owner {how} room {}", printable(&name)),
        )]
    }

    /// A room refused this client, or an order of its.
    pub(super) fn on_room_error(&mut self, code: ErrorCode, text: &str) -> Vec<Effect> {
        let text = printable(text);
        let line = match code {
            ErrorCode::RoomRefused | ErrorCode::RoomInvalid => {
                let name = self.room_wanted.take().unwrap_or_default();
                format!("❌ Could not join room {}: {text}", printable(&name))
            }
            _ => format!("❌ {text}"),
        };
        vec![show(Style::Error, line)]
    }

    /// `/leave`.
    pub(super) fn leave_room(&mut self) -> Vec<Effect> {
        let Some(view) = &self.room else {
            return vec![show(
                Style::Error,
                "❌ You are not in a room (/join NAME enters one)",
            )];
        };
        if self.link != Link::Up {
            return vec![not_connected()];
        }
        let line = show(
            Style::Notice,
            format!("🚪 You left room {}", printable(&view.name)),
        );
        self.room = None;
        self.partner = None;
        vec![line, Effect::Send(Frame::Part)]
    }

    /// `/members`.
    pub(super) fn show_members(&self) -> Vec<Effect> {
        match &self.room {
            Some(view) => vec![show(Style::Notice, members_line(view))],
            None => vec![show(
                Style::Error,
                "❌ You are not in a room (/join NAME enters one)",
            )],
        }
    }

    /// `/invite`, `/kick`, `/ban`, `/unban`, `/invite-only`.
    pub(super) fn room_order(&mut self, action: RoomAction, nick: String) -> Vec<Effect> {
        if self.room.is_none() {
            return vec![show(
                Style::Error,
                "❌ You are not in a room (/join NAME enters one)",
            )];
        }
        if self.link != Link::Up {
            return vec![not_connected()];
        }
        vec![Effect::Send(Frame::RoomAdmin { action, nick })]
    }

    /// Seals and sends what waits, with a new sender key first when the member list changed.
    pub(super) fn send_room_unsent(&mut self) -> Vec<Effect> {
        let Some(view) = self.room.as_mut() else {
            return Vec::new();
        };
        if view.listing {
            return Vec::new();
        }
        let (seed, made, counter) = (self.id_seed, &mut self.ids_made, &mut self.counter);
        let mut next = || {
            *made += 1;
            seed.wrapping_add(*made).to_be_bytes()
        };
        // Room envelopes carry a signature and an epoch on top of what `pack` counts.
        let room_extra = p2pchat_secure::room::MESSAGE_OVERHEAD - p2pchat_secure::e2e::OVERHEAD;
        let max_body = self.max_message.saturating_sub(room_extra);
        self.outbox.pack(max_body, || (next(), counter.next()));
        let mut effects = Vec::new();
        if !self.outbox.has_unsent() {
            return effects;
        }
        if view.keys.needs_distribution() {
            let members: Vec<_> = view
                .members
                .iter()
                .filter(|m| m.entry.key != [0; 32])
                .map(|m| (m.folded.clone(), m.entry.key))
                .collect();
            match view.keys.distribute(&self.identity, &members, &mut next) {
                Ok(distribution) => {
                    let keys = distribution.envelopes.into_iter().map(|(id, body)| Batch {
                        id,
                        counter: 0,
                        lines: Vec::new(),
                        file: None,
                        sealed: Some(body),
                    });
                    self.outbox.insert_unsent(keys.collect());
                    for nick in distribution.skipped {
                        effects.push(show(
                            Style::Error,
                            format!(
                                "⚠️ {} has no usable key and cannot read the room",
                                printable(&nick)
                            ),
                        ));
                    }
                }
                Err(err) => {
                    effects.push(show(
                        Style::Error,
                        format!("❌ Could not make a key for the room: {err}; messages wait"),
                    ));
                    return effects;
                }
            }
        }
        for batch in self.outbox.take_unsent() {
            let texts: Vec<&str> = batch.lines.iter().map(String::as_str).collect();
            let sealed = match (&batch.sealed, &batch.file) {
                (Some(body), _) => Ok(body.clone()),
                (None, Some(control)) => {
                    view.keys
                        .seal_file(&self.identity, &batch.id, batch.counter, control)
                }
                (None, None) => view
                    .keys
                    .seal(&self.identity, &batch.id, batch.counter, &texts),
            };
            effects.push(super::encryption::message_effect(batch.id, sealed));
        }
        effects
    }
}

/// `👥 lobby (3): ann (owner), bob, cy (away)`
fn members_line(view: &RoomView) -> String {
    let owner = fold_nick(&view.owner);
    let names: Vec<String> = view
        .members
        .iter()
        .map(|m| {
            let mut name = printable(&m.entry.nick);
            if m.folded == owner {
                name.push_str(" (owner)");
            }
            if !m.entry.online {
                name.push_str(" (away)");
            }
            name
        })
        .collect();
    let lock = if view.invite_only {
        " 🔒 invite-only"
    } else {
        ""
    };
    format!(
        "👥 {} ({}){lock}: {}",
        printable(&view.name),
        view.members.len(),
        names.join(", ")
    )
}

/// `🏠 Rooms (2): lobby (3 members, 1 here), secret (1 member, invite-only, yours)`
pub(super) fn rooms_line(total: u32, entries: &[RoomEntry]) -> String {
    if entries.is_empty() {
        return "🏠 No rooms yet: /join NAME creates one".to_owned();
    }
    let listed: Vec<String> = entries
        .iter()
        .map(|room| {
            let plural = if room.members == 1 { "" } else { "s" };
            let mut text = format!(
                "{} ({} member{plural}, {} here",
                printable(&room.room),
                room.members,
                room.online
            );
            if room.invite_only {
                text.push_str(", invite-only");
            }
            if room.member {
                text.push_str(", yours");
            }
            text.push(')');
            text
        })
        .collect();
    let more = super::typing::and_more(total, entries.len());
    format!("🏠 Rooms ({total}): {}{more}", listed.join(", "))
}
