//! Rooms: named conversations of any number of members. The registry knows every room, its
//! owner and rules (invite-only, invited, banned) and its members, keeps them in memory and
//! records each change in a file of the data dir (`changelog`), so rooms and their member lists
//! survive restarts. A room's messages are numbered under its lock (one counter, so every member
//! sees the same order) and stored like a pair's, under the store key `#` + folded name.
//!
//! The rules are decided here, synchronously, and never touch a socket; `room_relay` is the
//! session's side (joining, forwarding, catching up). A relay spread over several nodes would
//! put its cross-node routing behind `Rooms::open` and `RoomState::online`, as for pairs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use p2pchat_proto::{fold_nick, validate_room, MessageId, NickError, RoomAction};
use tracing::warn;

use crate::changelog::{read_text, ChangeLog};
use crate::hub::SessionId;
use crate::lock;
use crate::mailbox::Link;

/// Default `RoomLimits::members`.
pub const DEFAULT_MAX_ROOM_MEMBERS: usize = 1000;
/// Default `RoomLimits::per_user`.
pub const DEFAULT_MAX_ROOMS_PER_USER: usize = 50;
/// Default `RoomLimits::rooms`.
pub const DEFAULT_MAX_ROOMS: usize = 100_000;

/// How big rooms may get; each bounds a table a client can grow.
#[derive(Debug, Clone, Copy)]
pub struct RoomLimits {
    /// Members one room may have.
    pub members: usize,
    /// Rooms one nickname may be a member of.
    pub per_user: usize,
    /// Rooms the relay keeps.
    pub rooms: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            members: DEFAULT_MAX_ROOM_MEMBERS,
            per_user: DEFAULT_MAX_ROOMS_PER_USER,
            rooms: DEFAULT_MAX_ROOMS,
        }
    }
}

/// Why a room refused something; the text is for the person refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The name breaks the naming rules.
    #[error("invalid room name: {}", .0.to_string().replace("nickname", "room name"))]
    Invalid(NickError),
    /// The nickname is banned from the room.
    #[error("you are banned from {0}")]
    Banned(String),
    /// The room is invite-only and the nickname was not invited.
    #[error("{0} is invite-only and you have not been invited; ask its owner for an invitation")]
    NotInvited(String),
    /// The room has as many members as the relay allows.
    #[error("{0} is full (at most {1} members)")]
    Full(String, usize),
    /// The nickname is in as many rooms as the relay allows.
    #[error("you are in as many rooms as this relay allows ({0}); /leave one first")]
    TooManyRooms(usize),
    /// The relay keeps as many rooms as it may.
    #[error("this relay cannot keep more rooms (its limit of {0} is reached)")]
    NoMoreRooms(usize),
    /// An owner's order from someone else.
    #[error("only {owner}, who owns {room}, can do that")]
    NotOwner {
        /// The room.
        room: String,
        /// Its owner.
        owner: String,
    },
    /// An order about someone who is not a member.
    #[error("{0} is not a member of {1}")]
    NotMember(String, String),
    /// The owner tried to kick or ban themselves.
    #[error("you own {0}; to go, /leave it (the longest-standing member becomes its owner)")]
    Yourself(String),
}

/// One member of a room.
pub(crate) struct Member {
    /// As they spelled it when they joined.
    pub nick: String,
    pub folded: Arc<str>,
    /// The session in the room for them now.
    pub session: Option<(SessionId, Link)>,
    /// They have every message through this sequence number.
    pub read_through: u64,
    /// Their last message: its sequence number (0: none) and id.
    pub last_sent: (u64, MessageId),
}

/// A room's rules, members and numbering, guarded by its lock.
pub(crate) struct RoomState {
    pub name: String,
    /// The owner's folded nickname.
    pub owner: String,
    pub invite_only: bool,
    /// In the order they joined.
    pub members: Vec<Member>,
    pub invited: HashSet<String>,
    pub banned: HashSet<String>,
    pub last_seq: u64,
    /// The numbering and cursors have been read from the store.
    pub loaded: bool,
}

impl RoomState {
    pub fn member(&self, folded: &str) -> Option<&Member> {
        self.members.iter().find(|m| &*m.folded == folded)
    }

    pub fn member_mut(&mut self, folded: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &*m.folded == folded)
    }

    /// Whether session `id` is in the room for `folded` now.
    pub fn serves(&self, folded: &str, id: SessionId) -> bool {
        self.serving(folded, id).is_some()
    }

    /// Where `folded` is in `members`, if session `id` is in the room for them now.
    pub fn serving(&self, folded: &str, id: SessionId) -> Option<usize> {
        self.members.iter().position(|m| {
            &*m.folded == folded
                && m.session
                    .as_ref()
                    .is_some_and(|(serving, _)| *serving == id)
        })
    }

    /// The mailboxes of the members in the room now, but `except`'s.
    pub fn online<'a>(&'a self, except: Option<&'a str>) -> impl Iterator<Item = &'a Link> + 'a {
        self.members
            .iter()
            .filter(move |m| except != Some(&*m.folded))
            .filter_map(|m| m.session.as_ref().map(|(_, link)| link))
    }

    /// The owner's nickname as they spell it.
    pub fn owner_nick(&self) -> String {
        self.member(&self.owner)
            .map_or_else(|| self.owner.clone(), |m| m.nick.clone())
    }

    /// The display name of the member `folded`, if they are one.
    pub fn nick_of(&self, folded: &str) -> Option<&str> {
        self.member(folded).map(|m| m.nick.as_str())
    }
}

/// One room in memory.
pub(crate) struct Room {
    /// The folded name.
    pub folded: Arc<str>,
    /// The store's key for the room's messages: `#` and the folded name (no pair's key starts
    /// with `#`: a pair's key holds a line break).
    pub key: Arc<str>,
    state: Mutex<RoomState>,
}

impl Room {
    pub fn lock(&self) -> MutexGuard<'_, RoomState> {
        lock(&self.state)
    }
}

/// What `Rooms::enter` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entered {
    /// A new member.
    Joined,
    /// A member coming back.
    Returned,
}

/// What an owner's order changed, for the news.
pub(crate) struct Order {
    /// The member removed (kick, ban), whose session must leave the room.
    pub removed: Option<Member>,
}

/// Every room of the relay.
pub struct Rooms {
    table: Mutex<Table>,
    log: Option<ChangeLog>,
    limits: RoomLimits,
}

#[derive(Default)]
struct Table {
    rooms: HashMap<Arc<str>, Arc<Room>>,
    /// How many rooms each folded nickname is a member of.
    joined: HashMap<String, usize>,
}

impl Rooms {
    /// Rooms kept in memory only.
    pub fn in_memory(limits: RoomLimits) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            log: None,
            limits,
        }
    }

    /// The rooms recorded in `path` (a missing file: none), compacting the file and recording
    /// changes there from now on.
    pub fn open(path: &Path, limits: RoomLimits) -> std::io::Result<Self> {
        let mut rooms = Self::in_memory(limits);
        let text = read_text(path)?;
        for line in text.lines() {
            if !rooms.replay_line(line) {
                // A line cut short by a crash, or damage: what it said is lost, the rest stands.
                warn!("⚠️ skipping an unreadable line in {}", path.display());
            }
        }
        rooms.log = Some(ChangeLog::open(path, &rooms.compacted(), "rooms")?);
        Ok(rooms)
    }

    pub fn limits(&self) -> RoomLimits {
        self.limits
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    fn record(&self, line: String) {
        if let Some(log) = &self.log {
            log.record(line);
        }
    }

    /// Every room (a snapshot).
    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        self.lock().rooms.values().cloned().collect()
    }

    /// The room called `name`, created with `owner` (folded) as its owner if it does not exist.
    pub(crate) fn get_or_create(&self, name: &str, owner: &str) -> Result<Arc<Room>, RoomError> {
        validate_room(name).map_err(RoomError::Invalid)?;
        let folded: Arc<str> = fold_nick(name).into();
        let mut table = self.lock();
        if let Some(room) = table.rooms.get(&folded) {
            return Ok(room.clone());
        }
        if table.rooms.len() >= self.limits.rooms {
            return Err(RoomError::NoMoreRooms(self.limits.rooms));
        }
        if table.joined.get(owner).copied().unwrap_or(0) >= self.limits.per_user {
            return Err(RoomError::TooManyRooms(self.limits.per_user));
        }
        let room = new_room(name, owner);
        table.rooms.insert(folded, room.clone());
        drop(table);
        self.record(format!("room {name} {owner}\n"));
        Ok(room)
    }

    /// Session `id` of `nick` comes into `room`: a member already, or joining if the rules
    /// let them. The caller tells the others.
    pub(crate) fn enter(
        &self,
        room: &Room,
        state: &mut RoomState,
        nick: &str,
        session: (SessionId, Link),
    ) -> Result<Entered, RoomError> {
        let folded = fold_nick(nick);
        if let Some(member) = state.member_mut(&folded) {
            member.session = Some(session);
            return Ok(Entered::Returned);
        }
        self.admits(state, nick)?;
        let mut table = self.lock();
        let count = table.joined.entry(folded.clone()).or_default();
        if *count >= self.limits.per_user {
            return Err(RoomError::TooManyRooms(self.limits.per_user));
        }
        *count += 1;
        drop(table);
        state.members.push(Member {
            nick: nick.to_owned(),
            folded: folded.into(),
            session: Some(session),
            // A new member reads from now on: what was said before was sealed for others.
            read_through: state.last_seq,
            last_sent: (0, [0; 16]),
        });
        self.record(format!("member {} {nick}\n", room.folded));
        Ok(Entered::Joined)
    }

    /// Whether `nick` may come into the room: a member, or allowed to join by its rules.
    pub(crate) fn admits(&self, state: &RoomState, nick: &str) -> Result<(), RoomError> {
        let folded = fold_nick(nick);
        if state.member(&folded).is_some() {
            return Ok(());
        }
        if state.banned.contains(&folded) {
            return Err(RoomError::Banned(state.name.clone()));
        }
        let invited = state.owner == folded || state.invited.contains(&folded);
        if state.invite_only && !invited {
            return Err(RoomError::NotInvited(state.name.clone()));
        }
        if state.members.len() >= self.limits.members {
            return Err(RoomError::Full(state.name.clone(), self.limits.members));
        }
        let joined = self.lock().joined.get(&folded).copied().unwrap_or(0);
        if joined >= self.limits.per_user {
            return Err(RoomError::TooManyRooms(self.limits.per_user));
        }
        Ok(())
    }

    /// `folded` stops being a member (left, kicked or banned). Ownership passes to the
    /// longest-standing member; an empty room is forgotten. Returns the member and the new
    /// owner, if ownership moved.
    pub(crate) fn remove(
        &self,
        room: &Room,
        state: &mut RoomState,
        folded: &str,
    ) -> (Option<Member>, Option<String>) {
        let Some(at) = state.members.iter().position(|m| &*m.folded == folded) else {
            return (None, None);
        };
        let member = state.members.remove(at);
        let mut table = self.lock();
        if let Some(count) = table.joined.get_mut(folded) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.joined.remove(folded);
            }
        }
        self.record(format!("part {} {}\n", room.folded, member.nick));
        if state.members.is_empty() {
            table.rooms.remove(&room.folded);
            drop(table);
            self.record(format!("drop {}\n", room.folded));
            return (Some(member), None);
        }
        drop(table);
        let mut new_owner = None;
        if state.owner == folded {
            let next = &state.members[0];
            state.owner = next.folded.to_string();
            new_owner = Some(next.nick.clone());
            self.record(format!("owner {} {}\n", room.folded, next.nick));
        }
        (Some(member), new_owner)
    }

    /// An owner's order. `by` is the folded nickname giving it.
    pub(crate) fn order(
        &self,
        room: &Room,
        state: &mut RoomState,
        by: &str,
        action: RoomAction,
        nick: &str,
    ) -> Result<Order, RoomError> {
        if state.owner != by {
            return Err(RoomError::NotOwner {
                room: state.name.clone(),
                owner: state.owner_nick(),
            });
        }
        let folded = fold_nick(nick);
        if action.takes_nick() {
            validate_room(nick).map_err(RoomError::Invalid)?;
            if folded == by && matches!(action, RoomAction::Kick | RoomAction::Ban) {
                return Err(RoomError::Yourself(state.name.clone()));
            }
        }
        let (key, mut order) = (&room.folded, Order { removed: None });
        match action {
            RoomAction::Invite => {
                state.invited.insert(folded);
                self.record(format!("invite {key} {nick}\n"));
            }
            RoomAction::Kick => {
                if state.member(&folded).is_none() {
                    return Err(RoomError::NotMember(nick.to_owned(), state.name.clone()));
                }
                order.removed = self.remove(room, state, &folded).0;
            }
            RoomAction::Ban => {
                state.banned.insert(folded.clone());
                state.invited.remove(&folded);
                self.record(format!("ban {key} {nick}\n"));
                order.removed = self.remove(room, state, &folded).0;
            }
            RoomAction::Unban => {
                state.banned.remove(&folded);
                self.record(format!("unban {key} {nick}\n"));
            }
            RoomAction::InviteOnly | RoomAction::Open => {
                state.invite_only = action == RoomAction::InviteOnly;
                let word = if state.invite_only { "closed" } else { "open" };
                self.record(format!("{word} {key}\n"));
            }
        }
        Ok(order)
    }

    /// Rooms `folded` may see (open ones and their own): how many, and up to `limit`, most
    /// members first, as (name, members, online, invite-only, member).
    pub(crate) fn list(&self, folded: &str, limit: usize) -> (usize, Vec<Listed>) {
        let rooms = self.all();
        let mut listed: Vec<Listed> = rooms
            .iter()
            .filter_map(|room| {
                let state = room.lock();
                let member = state.member(folded).is_some();
                (member || !state.invite_only).then(|| Listed {
                    name: state.name.clone(),
                    members: state.members.len(),
                    online: state.online(None).count(),
                    invite_only: state.invite_only,
                    member,
                })
            })
            .collect();
        listed.sort_by(|a, b| b.members.cmp(&a.members).then(a.name.cmp(&b.name)));
        let total = listed.len();
        listed.truncate(limit);
        (total, listed)
    }

    /// Applies one line of the file; false if it does not read.
    fn replay_line(&mut self, line: &str) -> bool {
        let words: Vec<&str> = line.split(' ').collect();
        let table = self.table.get_mut().unwrap_or_else(|p| p.into_inner());
        if let ["room", name, owner] = words[..] {
            let room = new_room(name, owner);
            table.rooms.insert(room.folded.clone(), room);
            return true;
        }
        let (verb, key, nick) = match words[..] {
            [verb, key] => (verb, key, ""),
            [verb, key, nick] => (verb, key, nick),
            _ => return false,
        };
        let Some(room) = table.rooms.get(key).cloned() else {
            return false;
        };
        let mut state = room.lock();
        let folded = fold_nick(nick);
        match verb {
            "member" if state.member(&folded).is_none() => {
                *table.joined.entry(folded.clone()).or_default() += 1;
                state.members.push(Member {
                    nick: nick.to_owned(),
                    folded: folded.into(),
                    session: None,
                    read_through: 0,
                    last_sent: (0, [0; 16]),
                });
            }
            "member" => {}
            "part" => {
                if let Some(at) = state.members.iter().position(|m| *m.folded == *folded) {
                    state.members.remove(at);
                    if let Some(count) = table.joined.get_mut(&folded) {
                        *count = count.saturating_sub(1);
                    }
                }
            }
            "owner" => state.owner = folded,
            "invite" => drop(state.invited.insert(folded)),
            "ban" => {
                state.invited.remove(&folded);
                state.banned.insert(folded);
            }
            "unban" => drop(state.banned.remove(&folded)),
            "closed" | "open" => state.invite_only = verb == "closed",
            "drop" => {
                drop(state);
                table.rooms.remove(key);
            }
            _ => return false,
        }
        true
    }

    /// The file's lines that recreate the table as it is.
    fn compacted(&self) -> String {
        let table = self.lock();
        let mut out = String::new();
        for room in table.rooms.values() {
            let state = room.lock();
            let key = &room.folded;
            out.push_str(&format!("room {} {}\n", state.name, state.owner));
            for member in &state.members {
                out.push_str(&format!("member {key} {}\n", member.nick));
            }
            for nick in &state.invited {
                out.push_str(&format!("invite {key} {nick}\n"));
            }
            for nick in &state.banned {
                out.push_str(&format!("ban {key} {nick}\n"));
            }
            if state.invite_only {
                out.push_str(&format!("closed {key}\n"));
            }
        }
        out
    }
}

/// One line of a room listing.
pub(crate) struct Listed {
    pub name: String,
    pub members: usize,
    pub online: usize,
    pub invite_only: bool,
    pub member: bool,
}

fn new_room(name: &str, owner: &str) -> Arc<Room> {
    let folded: Arc<str> = fold_nick(name).into();
    Arc::new(Room {
        key: format!("#{folded}").into(),
        folded,
        state: Mutex::new(RoomState {
            name: name.to_owned(),
            owner: fold_nick(owner),
            invite_only: false,
            members: Vec::new(),
            invited: HashSet::new(),
            banned: HashSet::new(),
            last_seq: 0,
            loaded: false,
        }),
    })
}

#[cfg(test)]
#[path = "rooms_tests.rs"]
mod tests;
