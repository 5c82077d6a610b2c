//! Who is connected, who waits for a companion and who chats with whom.
//!
//! Plain synchronous domain logic: it never touches a socket. Each member is reached through a
//! `Peer` handle whose `notify` must not block; the hub calls it while holding its lock, which is
//! what makes every member see its notes in the order the hub decided them (a `Left` can never
//! overtake the `Paired` it undoes).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use p2pchat_proto::{fold_nick, validate_nick, LeftReason, NickError, ResumeToken};

/// Identifies one connection for the life of the process.
pub type SessionId = u64;

/// What the hub tells a member, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note<P> {
    /// The nickname was accepted; always the first note a member gets. `token` resumes it.
    NickAccepted {
        /// The nickname.
        nick: String,
        /// The secret that lets a later connection take this membership over.
        token: ResumeToken,
    },
    /// Another connection resumed this membership with its token: this one is finished.
    Replaced,
    /// Sent by a session, not the hub: the companion's session has joined the conversation
    /// (messages held for it can go now).
    CompanionHere,
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
    /// Sent by a room, not the hub: the member reads too slowly for the room it is in; its
    /// connection is closed (it catches up from the store when it comes back).
    TooSlow,
    /// Sent by a room, not the hub: the owner removed the member (kick, ban).
    RemovedFromRoom,
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
    /// In a room: not paired with anyone, and nobody is paired with them.
    Aside,
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
    /// Presented by `Resume` to take this membership over; all zero: never.
    token: ResumeToken,
    companion: Option<SessionId>,
    /// A particular companion this member waits for; `None` takes whoever comes next.
    wants: Option<Wanted>,
    /// `wants` was set by the hub because the companion's connection was lost, not by the
    /// member: it lasts until they are together again.
    waits_for_lost: bool,
    /// In a room: out of pairing until they ask for a companion again (`chat_with`).
    aside: bool,
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
    /// A member whose companion's connection was lost waits for that companion to come back
    /// (the relay keeps their conversation), instead of taking whoever comes next.
    keep_lost: bool,
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
                keep_lost: false,
            }),
        }
    }

    /// A hub where a member whose companion lost its connection waits for that companion.
    pub fn keeping_lost_companions() -> Self {
        let hub = Self::new();
        hub.lock().keep_lost = true;
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<P>> {
        crate::lock(&self.state)
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
        let claim = Claim {
            nick,
            wants,
            token: [0; 16],
            resume: None,
            aside: false,
        };
        self.claim(id, peer, claim).map(|(joined, _)| joined)
    }

    /// Like `join`, with a token for later resumes; if `claim.resume` matches the token of the
    /// member holding the nickname now, session `id` takes that membership over (companion,
    /// place in the queue) and the old session is told `Replaced`; the companion notices
    /// nothing. Returns whether a membership was taken over.
    pub fn claim(
        &self,
        id: SessionId,
        peer: P,
        claim: Claim<'_>,
    ) -> Result<(Joined, bool), NickError> {
        let nick = claim.nick;
        validate_nick(nick)?;
        let key = fold_nick(nick);
        let wants = wanted(claim.wants, &key)?;
        let mut state = self.lock();
        if let Some(&old) = state.by_nick.get(&key) {
            let matches = state.members.get(&old).is_some_and(|member| {
                claim.resume.is_some_and(|resume| {
                    member.token != [0; 16] && same_secret(&member.token, &resume)
                })
            });
            if !matches {
                return Err(NickError::Taken(nick.to_owned()));
            }
            return Ok((state.take_over(old, id, peer, claim.token), true));
        }
        peer.notify(Note::NickAccepted {
            nick: nick.to_owned(),
            token: claim.token,
        });
        state.by_nick.insert(key.clone(), id);
        state.members.insert(
            id,
            Member {
                nick: nick.to_owned(),
                key,
                peer,
                token: claim.token,
                companion: None,
                wants,
                waits_for_lost: false,
                aside: claim.aside,
            },
        );
        if claim.aside {
            return Ok((Joined::Aside, false));
        }
        Ok((state.pair_or_wait(id), false))
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
        me.waits_for_lost = false;
        me.aside = false;
        let my_nick = me.nick.clone();
        // The member who asked is served first, then the one it left goes back to the queue
        // (which could otherwise take the very companion that was asked for).
        let joined = state.pair_or_wait(id);
        if let Some(companion) = current {
            state.release(companion, my_nick, LeftReason::Quit);
        }
        Ok(joined)
    }

    /// Member `id` goes into a room: it leaves its companion (who is told and goes back to the
    /// queue) and stays out of pairing until `chat_with`.
    pub fn step_aside(&self, id: SessionId) {
        let mut state = self.lock();
        state.unqueue(id);
        let Some(me) = state.members.get_mut(&id) else {
            return;
        };
        let current = me.companion.take();
        me.wants = None;
        me.waits_for_lost = false;
        me.aside = true;
        let my_nick = me.nick.clone();
        if let Some(companion) = current {
            state.release(companion, my_nick, LeftReason::Quit);
        }
    }

    /// Whether member `id` is in a room (out of pairing).
    pub fn is_aside(&self, id: SessionId) -> bool {
        self.lock().members.get(&id).is_some_and(|m| m.aside)
    }

    /// How many members are online, and the first `limit` of them with whether they chat.
    pub fn online(&self, limit: usize) -> (usize, Vec<(String, bool)>) {
        let state = self.lock();
        let mut listed: Vec<(SessionId, String, bool)> = state
            .members
            .iter()
            .map(|(id, m)| (*id, m.nick.clone(), m.companion.is_some() || m.aside))
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
    /// Moves member `old` to session `id`: same nickname, companion and queue place.
    fn take_over(&mut self, old: SessionId, id: SessionId, peer: P, token: ResumeToken) -> Joined {
        let Some(mut member) = self.members.remove(&old) else {
            return Joined::Waiting;
        };
        member.peer.notify(Note::Replaced);
        peer.notify(Note::NickAccepted {
            nick: member.nick.clone(),
            token,
        });
        member.peer = peer;
        member.token = token;
        self.by_nick.insert(member.key.clone(), id);
        for waiting in self
            .waiting
            .iter_mut()
            .chain(self.reserved.values_mut().flatten())
        {
            if *waiting == old {
                *waiting = id;
            }
        }
        let companion = member.companion;
        let wants = member.wants.clone();
        let my_peer = member.peer.clone();
        let aside = member.aside;
        self.members.insert(id, member);
        if aside {
            // The new connection says which room it is in.
            return Joined::Aside;
        }
        if let Some(companion) = companion.and_then(|c| self.members.get_mut(&c)) {
            companion.companion = Some(id);
            let nick = companion.nick.clone();
            my_peer.notify(Note::Paired {
                companion: companion.peer.clone(),
                nick: nick.clone(),
            });
            return Joined::Paired { companion: nick };
        }
        match wants {
            Some(wants) => {
                my_peer.notify(Note::WaitingFor(wants.display.clone()));
                Joined::WaitingFor(wants.display)
            }
            None => {
                my_peer.notify(Note::Waiting);
                Joined::Waiting
            }
        }
    }

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
        if target == id || other.companion.is_some() || other.aside || !willing {
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
        for (member, companion) in [(a, b), (b, a)] {
            if let Some(member) = self.members.get_mut(&member) {
                member.companion = Some(companion);
                if member.waits_for_lost {
                    member.wants = None;
                    member.waits_for_lost = false;
                }
            }
        }
        Joined::Paired { companion: b_nick }
    }

    /// `companion` has lost `nick`: tell it why and pair it again or queue it.
    fn release(&mut self, companion: SessionId, nick: String, reason: LeftReason) -> Joined {
        let (closing, keep_lost) = (self.closing, self.keep_lost);
        let Some(member) = self.members.get_mut(&companion) else {
            return Joined::Waiting;
        };
        member.companion = None;
        if closing {
            return Joined::Waiting;
        }
        if keep_lost && reason != LeftReason::Quit && member.wants.is_none() {
            // Their conversation goes on: wait for them to come back.
            member.wants = Some(Wanted {
                key: fold_nick(&nick),
                display: nick.clone(),
            });
            member.waits_for_lost = true;
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

/// What a session asks for when it claims a nickname.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The nickname.
    pub nick: &'a str,
    /// A particular companion wanted, if any.
    pub wants: Option<&'a str>,
    /// The token a later `Resume` must present (all zero: never resumable).
    pub token: ResumeToken,
    /// The token presented to take over the nickname's current session, if any.
    pub resume: Option<ResumeToken>,
    /// The session goes into a room: it is not paired.
    pub aside: bool,
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &ResumeToken, b: &ResumeToken) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
