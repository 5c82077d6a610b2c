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
    /// No companion yet: the member waits for this particular one to be free.
    WaitingFor(String),
    /// The companion went away; a `Waiting`, `WaitingFor` or `Paired` note follows.
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

/// What `Hub::join` or `Hub::chat_with` did with a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Nobody was free; the member waits.
    Waiting,
    /// The member waits for this particular companion.
    WaitingFor(String),
    /// Paired at once.
    Paired {
        /// The companion's nickname.
        companion: String,
    },
}

/// Whom a member wants to chat with: a folded nickname for comparing, and the name as typed.
#[derive(Debug, Clone)]
struct Wanted {
    key: String,
    display: String,
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
    key: String,
    peer: P,
    companion: Option<SessionId>,
    /// A particular companion this member waits for; `None` takes whoever comes next.
    wants: Option<Wanted>,
}

struct State<P> {
    members: HashMap<SessionId, Member<P>>,
    by_nick: HashMap<String, SessionId>,
    /// Members without a companion who take whoever comes, longest-waiting first.
    waiting: VecDeque<SessionId>,
    /// Members without a companion who wait for a particular one, by that one's folded nickname.
    reserved: HashMap<String, VecDeque<SessionId>>,
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
                reserved: HashMap::new(),
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

    /// Names session `id` and pairs it: with `wants` if given and free (else it waits for
    /// them), otherwise with whoever waited longest for it or for anyone.
    pub fn join(
        &self,
        id: SessionId,
        nick: &str,
        peer: P,
        wants: Option<&str>,
    ) -> Result<Joined, NickError> {
        validate_nick(nick)?;
        let key = fold_nick(nick);
        let wants = wanted(wants, &key)?;
        let mut state = self.lock();
        if state.by_nick.contains_key(&key) {
            return Err(NickError::Taken(nick.to_owned()));
        }
        peer.notify(Note::NickAccepted(nick.to_owned()));
        state.by_nick.insert(key.clone(), id);
        state.members.insert(
            id,
            Member {
                nick: nick.to_owned(),
                key,
                peer,
                companion: None,
                wants,
            },
        );
        Ok(state.pair_or_wait(id))
    }

    /// Member `id` wants to chat with `target` (or with whoever comes next if `None`): it leaves
    /// its current companion, who is told and goes back to the queue, and is paired or waits.
    pub fn chat_with(&self, id: SessionId, target: Option<&str>) -> Result<Joined, NickError> {
        let mut state = self.lock();
        let Some(me) = state.members.get(&id) else {
            return Err(NickError::Empty);
        };
        let wants = wanted(target, &me.key)?;
        let current = me.companion;
        if let (Some(companion), Some(wants)) = (current, &wants) {
            if state
                .members
                .get(&companion)
                .is_some_and(|c| c.key == wants.key)
            {
                let nick = state.members[&companion].nick.clone();
                return Ok(Joined::Paired { companion: nick });
            }
        }
        state.unqueue(id);
        if let Some(companion) = current {
            if let Some(old) = state.members.get_mut(&companion) {
                old.companion = None;
            }
        }
        let Some(me) = state.members.get_mut(&id) else {
            return Err(NickError::Empty);
        };
        me.companion = None;
        me.wants = wants;
        let my_nick = me.nick.clone();
        // The member who asked is served first, then the one it left goes back to the queue
        // (which could otherwise take the very companion that was asked for).
        let joined = state.pair_or_wait(id);
        if let Some(companion) = current {
            state.release(companion, my_nick, LeftReason::Quit);
        }
        Ok(joined)
    }

    /// How many members are online, and the first `limit` of them with whether they chat.
    pub fn online(&self, limit: usize) -> (usize, Vec<(String, bool)>) {
        let state = self.lock();
        let mut listed: Vec<(SessionId, String, bool)> = state
            .members
            .iter()
            .map(|(id, m)| (*id, m.nick.clone(), m.companion.is_some()))
            .collect();
        listed.sort_unstable_by_key(|(id, _, _)| *id);
        listed.truncate(limit);
        let entries = listed.into_iter().map(|(_, n, c)| (n, c)).collect();
        (state.members.len(), entries)
    }

    /// Removes session `id`; its companion is told why and goes back to the queue.
    /// Returns `None` if `id` never had a nickname.
    pub fn leave(&self, id: SessionId, reason: LeftReason) -> Option<Departure> {
        let mut state = self.lock();
        state.unqueue(id);
        let member = state.members.remove(&id)?;
        state.by_nick.remove(&member.key);
        let mut departure = Departure {
            nick: member.nick.clone(),
            ..Departure::default()
        };
        if let Some(companion) = member.companion {
            departure.companion = state.members.get(&companion).map(|c| c.nick.clone());
            if let Joined::Paired { companion: partner } =
                state.release(companion, member.nick, reason)
            {
                departure.repaired = departure.companion.clone().map(|c| (c, partner));
            }
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
    /// Pairs `id` if someone suitable is free, or queues it and says so.
    fn pair_or_wait(&mut self, id: SessionId) -> Joined {
        if self.closing {
            return Joined::Waiting;
        }
        let Some(me) = self.members.get(&id) else {
            return Joined::Waiting;
        };
        let (wants, key) = (me.wants.clone(), me.key.clone());
        let partner = match wants {
            Some(wants) => self.free_for(id, &wants.key),
            None => self.next_waiting_for(id, &key),
        };
        if let Some(partner) = partner {
            return self.pair(id, partner);
        }
        let Some(me) = self.members.get(&id) else {
            return Joined::Waiting;
        };
        match me.wants.clone() {
            Some(wants) => {
                me.peer.notify(Note::WaitingFor(wants.display.clone()));
                self.reserved.entry(wants.key).or_default().push_back(id);
                Joined::WaitingFor(wants.display)
            }
            None => {
                me.peer.notify(Note::Waiting);
                self.waiting.push_back(id);
                Joined::Waiting
            }
        }
    }

    /// The member named `key` if it is free and willing to chat with `id`, taken off its queue.
    fn free_for(&mut self, id: SessionId, key: &str) -> Option<SessionId> {
        let target = *self.by_nick.get(key)?;
        let me_key = self.members.get(&id)?.key.clone();
        let other = self.members.get(&target)?;
        let willing = other.wants.as_ref().is_none_or(|w| w.key == me_key);
        if target == id || other.companion.is_some() || !willing {
            return None;
        }
        self.unqueue(target);
        Some(target)
    }

    /// Whoever waited longest for `id` in particular, else for anyone.
    fn next_waiting_for(&mut self, id: SessionId, key: &str) -> Option<SessionId> {
        if let Some(queue) = self.reserved.get_mut(key) {
            let next = queue.pop_front();
            if queue.is_empty() {
                self.reserved.remove(key);
            }
            if next.is_some() {
                return next;
            }
        }
        // The queue only ever holds live members (unqueue() removes them), but skip a stale
        // entry rather than strand anyone.
        while let Some(other) = self.waiting.pop_front() {
            if other != id && self.members.contains_key(&other) {
                return Some(other);
            }
        }
        None
    }

    fn pair(&mut self, a: SessionId, b: SessionId) -> Joined {
        let (Some(first), Some(second)) = (self.members.get(&a), self.members.get(&b)) else {
            return Joined::Waiting;
        };
        let (a_peer, a_nick) = (first.peer.clone(), first.nick.clone());
        let (b_peer, b_nick) = (second.peer.clone(), second.nick.clone());
        second.peer.notify(Note::Paired {
            companion: a_peer,
            nick: a_nick,
        });
        first.peer.notify(Note::Paired {
            companion: b_peer,
            nick: b_nick.clone(),
        });
        if let Some(first) = self.members.get_mut(&a) {
            first.companion = Some(b);
        }
        if let Some(second) = self.members.get_mut(&b) {
            second.companion = Some(a);
        }
        Joined::Paired { companion: b_nick }
    }

    /// `companion` has lost `nick`: tell it why and pair it again or queue it.
    fn release(&mut self, companion: SessionId, nick: String, reason: LeftReason) -> Joined {
        let closing = self.closing;
        let Some(member) = self.members.get_mut(&companion) else {
            return Joined::Waiting;
        };
        member.companion = None;
        if closing {
            return Joined::Waiting;
        }
        member.peer.notify(Note::CompanionLeft { nick, reason });
        self.pair_or_wait(companion)
    }

    /// Takes `id` off whichever waiting queue holds it.
    fn unqueue(&mut self, id: SessionId) {
        self.waiting.retain(|&waiting| waiting != id);
        let wants = self.members.get(&id).and_then(|m| m.wants.as_ref());
        if let Some(key) = wants.map(|w| w.key.clone()) {
            if let Some(queue) = self.reserved.get_mut(&key) {
                queue.retain(|&waiting| waiting != id);
                if queue.is_empty() {
                    self.reserved.remove(&key);
                }
            }
        }
    }
}

/// Checks a wanted companion's name: a valid nickname, not the member's own.
fn wanted(target: Option<&str>, my_key: &str) -> Result<Option<Wanted>, NickError> {
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    validate_nick(target)?;
    let key = fold_nick(target);
    if key == my_key {
        return Err(NickError::Yourself);
    }
    Ok(Some(Wanted {
        key,
        display: target.to_owned(),
    }))
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
