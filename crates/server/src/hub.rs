//! Who is connected, who waits for a companion and who chats with whom.
//!
//! Plain synchronous domain logic: it never touches a socket. Each member is reached through a
//! `Peer` handle whose `notify` must not block; the hub calls it while holding its lock, which is
//! what makes every member see its notes in the order the hub decided them (a `Left` can never
//! overtake the `Paired` it undoes).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use p2pchat_proto::{fold_nick, validate_nick, LeftReason, NickError};

/// Identifies one connection for the life of the process.
pub type SessionId = u64;

/// What the hub tells a member, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note<P> {
    /// The nickname was accepted; always the first note a member gets.
    NickAccepted(String),
    /// No companion is free; the member waits.
    Waiting,
    /// The member now chats with `nick`, reachable through `companion`.
    Paired {
        /// The companion's handle.
        companion: P,
        /// The companion's nickname.
        nick: String,
    },
    /// The companion went away; a `Waiting` or `Paired` note follows.
    CompanionLeft {
        /// The companion's nickname.
        nick: String,
        /// Why they went.
        reason: LeftReason,
    },
}

/// A member's mailbox as the hub sees it.
pub trait Peer: Clone {
    /// Delivers a note. Called with the hub's lock held: must not block or call back into the hub.
    fn notify(&self, note: Note<Self>);
}

/// What `Hub::join` did with a newly named member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Nobody was free; the member waits.
    Waiting,
    /// Paired at once with the member who had waited longest.
    Paired {
        /// That member's nickname.
        companion: String,
    },
}

/// What `Hub::leave` did, for the relay's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Departure {
    /// The nickname of the member who left.
    pub nick: String,
    /// The companion they left behind, if any.
    pub companion: Option<String>,
    /// A pair formed because the companion was free again: (companion, new partner).
    pub repaired: Option<(String, String)>,
}

struct Member<P> {
    nick: String,
    peer: P,
    companion: Option<SessionId>,
}

struct State<P> {
    members: HashMap<SessionId, Member<P>>,
    by_nick: HashMap<String, SessionId>,
    /// Members without a companion, longest-waiting first.
    waiting: VecDeque<SessionId>,
    /// Set at shutdown: nobody is paired or notified any more.
    closing: bool,
}

/// The relay's registry of named members and pairs. Cheap operations under one std mutex that is
/// never held across an `.await`.
pub struct Hub<P> {
    state: Mutex<State<P>>,
}

impl<P: Peer> Default for Hub<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Peer> Hub<P> {
    /// An empty hub.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                members: HashMap::new(),
                by_nick: HashMap::new(),
                waiting: VecDeque::new(),
                closing: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<P>> {
        // A panic while holding the lock leaves the maps consistent (every mutation is a single
        // insert/remove), so a poisoned lock is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Names session `id` and pairs it with the longest-waiting member, or queues it.
    pub fn join(&self, id: SessionId, nick: &str, peer: P) -> Result<Joined, NickError> {
        validate_nick(nick)?;
        let key = fold_nick(nick);
        let mut state = self.lock();
        if state.by_nick.contains_key(&key) {
            return Err(NickError::Taken(nick.to_owned()));
        }
        peer.notify(Note::NickAccepted(nick.to_owned()));
        state.by_nick.insert(key, id);
        state.members.insert(
            id,
            Member {
                nick: nick.to_owned(),
                peer,
                companion: None,
            },
        );
        Ok(match state.pair_or_wait(id) {
            Some(companion) => Joined::Paired { companion },
            None => Joined::Waiting,
        })
    }

    /// Removes session `id`; its companion is told why and goes back to the queue.
    /// Returns `None` if `id` never had a nickname.
    pub fn leave(&self, id: SessionId, reason: LeftReason) -> Option<Departure> {
        let mut state = self.lock();
        let member = state.members.remove(&id)?;
        state.by_nick.remove(&fold_nick(&member.nick));
        state.waiting.retain(|&waiting| waiting != id);
        let mut departure = Departure {
            nick: member.nick.clone(),
            ..Departure::default()
        };
        let Some(companion_id) = member.companion else {
            return Some(departure);
        };
        let closing = state.closing;
        let Some(companion) = state.members.get_mut(&companion_id) else {
            return Some(departure);
        };
        companion.companion = None;
        departure.companion = Some(companion.nick.clone());
        if closing {
            return Some(departure);
        }
        companion.peer.notify(Note::CompanionLeft {
            nick: member.nick,
            reason,
        });
        if let Some(partner) = state.pair_or_wait(companion_id) {
            departure.repaired = departure.companion.clone().map(|c| (c, partner));
        }
        Some(departure)
    }

    /// Stops pairing and notifying: at shutdown every member is told once, by its session.
    pub fn close(&self) {
        self.lock().closing = true;
    }

    /// Members with a nickname, and how many of them wait for a companion.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.members.len(), state.waiting.len())
    }
}

impl<P: Peer> State<P> {
    /// Pairs `id` with the longest-waiting other member, or queues it and says so.
    /// Returns the new companion's nickname when a pair formed.
    fn pair_or_wait(&mut self, id: SessionId) -> Option<String> {
        if self.closing {
            return None;
        }
        let me = self.members.get(&id)?;
        let (my_peer, my_nick) = (me.peer.clone(), me.nick.clone());
        // The queue only ever holds live members (leave() removes them), but a stale entry must
        // not strand anyone, so skip it rather than trust it.
        while let Some(other_id) = self.waiting.pop_front() {
            let Some(other) = self.members.get_mut(&other_id) else {
                continue;
            };
            other.companion = Some(id);
            other.peer.notify(Note::Paired {
                companion: my_peer,
                nick: my_nick,
            });
            let (other_peer, other_nick) = (other.peer.clone(), other.nick.clone());
            let me = self.members.get_mut(&id)?;
            me.companion = Some(other_id);
            me.peer.notify(Note::Paired {
                companion: other_peer,
                nick: other_nick.clone(),
            });
            return Some(other_nick);
        }
        self.waiting.push_back(id);
        my_peer.notify(Note::Waiting);
        None
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
