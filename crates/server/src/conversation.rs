//! Conversations: the same two nicknames talking are the same conversation, whenever they talk.
//!
//! A conversation numbers its messages (one counter shared by both members, so sequence numbers
//! are strictly increasing whoever speaks) and knows which session, if any, serves each member
//! now. Numbering a run, queueing it for the store and picking the companion's mailbox happen
//! under the conversation's lock, which is what keeps the store's order, the numbering and the
//! hand-over between an old and a new session of the same member consistent. Everything else (the
//! forwarding itself, the disk) happens outside it.
//!
//! This is the one place that decides where a member's messages go; a relay spread over several
//! nodes would put its cross-node routing behind `Conversations::open` and `State::companion`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use p2pchat_proto::{ConversationInfo, MessageId, PublicKey};
use p2pchat_store::{ConversationState, Store, StoreError};

use crate::hub::SessionId;
use crate::mailbox::Link;

/// The conversation's key: both members' folded nicknames, in order, joined by a line break
/// (which no nickname contains).
pub(crate) fn conversation_key(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{first}\n{second}")
}

/// The member on `side` of the conversation with `key` (see `conversation_key`).
fn member_of(key: &str, side: usize) -> &str {
    let (first, second) = key.split_once('\n').unwrap_or((key, ""));
    if side == 0 {
        first
    } else {
        second
    }
}

/// One member's side of a conversation (whose folded nickname is `Conversation::member`).
pub(crate) struct Side {
    /// The session serving the member now.
    pub session: Option<(SessionId, Link)>,
    /// The last message the member sent: its sequence number (0: none) and id.
    pub last_sent: (u64, MessageId),
    /// The member has every message up to this sequence number (received, or sent itself).
    pub read_through: u64,
}

/// A conversation's numbering and routing, guarded by its lock.
pub(crate) struct State {
    /// The latest sequence number given out.
    pub last_seq: u64,
    /// Both members, in key order.
    pub sides: [Side; 2],
}

impl State {
    /// The companion's mailbox, if a session serves the companion now.
    pub fn companion(&self, side: usize) -> Option<&Link> {
        self.sides[1 - side].session.as_ref().map(|(_, link)| link)
    }

    /// `side` has every message through `seq`; its own messages after that count as had too
    /// when the companion sent nothing since. Returns the new mark if it moved.
    pub fn mark_read(&mut self, side: usize, seq: u64) -> Option<u64> {
        let theirs = self.sides[1 - side].last_sent.0;
        let seq = if theirs <= seq { self.last_seq } else { seq };
        let seq = seq.min(self.last_seq);
        let mark = &mut self.sides[side].read_through;
        (seq > *mark).then(|| {
            *mark = seq;
            seq
        })
    }

    /// Whether session `id` serves `side` now.
    pub fn serves(&self, side: usize, id: SessionId) -> bool {
        self.sides[side]
            .session
            .as_ref()
            .is_some_and(|(serving, _)| *serving == id)
    }

    /// What a client joining on `side` is told (`companion_key`: who owns the companion's
    /// nickname, all zero if nobody does yet).
    pub fn info(&self, side: usize, companion: &str, companion_key: PublicKey) -> ConversationInfo {
        let me = &self.sides[side];
        ConversationInfo {
            companion: companion.to_owned(),
            companion_key,
            last_seq: self.last_seq,
            read_through: me.read_through,
            their_read_through: self.sides[1 - side].read_through,
            last_from_you: me.last_sent.0,
            last_id_from_you: me.last_sent.1,
        }
    }
}

/// One conversation in memory, shared by the sessions of its members.
pub(crate) struct Conversation {
    /// See `conversation_key`.
    pub key: Arc<str>,
    state: Mutex<State>,
}

impl Conversation {
    fn new(key: Arc<str>, loaded: ConversationState) -> Self {
        let side = |member: &str| {
            let stored = loaded.members.iter().find(|m| m.key == member);
            Side {
                session: None,
                last_sent: stored.map_or((0, [0; 16]), |m| (m.last_sent_seq, m.last_sent_id)),
                // Never past the numbering: a mark beyond the last stored message would hide the
                // messages numbered next (the store commits a mark only with its messages, so
                // this only guards an older database).
                read_through: stored.map_or(0, |m| m.read_through.min(loaded.last_seq)),
            }
        };
        let mut state = State {
            last_seq: loaded.last_seq,
            sides: [side(member_of(&key, 0)), side(member_of(&key, 1))],
        };
        // A member's own messages after its stored mark count as had (see `mark_read`); the
        // relay does not store the mark each time it moves that way.
        for side in 0..2 {
            let mark = state.sides[side].read_through;
            state.mark_read(side, mark);
        }
        Self {
            state: Mutex::new(state),
            key,
        }
    }

    /// Which side `member` (a folded nickname) is on.
    pub fn side_of(&self, member: &str) -> usize {
        usize::from(self.member(0) != member)
    }

    /// The folded nickname of the member on `side`.
    pub fn member(&self, side: usize) -> &str {
        member_of(&self.key, side)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    /// Session `id` no longer serves `side` (if it still did).
    pub fn detach(&self, side: usize, id: SessionId) {
        let mut state = self.lock();
        if state.sides[side]
            .session
            .as_ref()
            .is_some_and(|(s, _)| *s == id)
        {
            state.sides[side].session = None;
        }
    }
}

/// The conversations in memory: each is loaded once and shared while a session holds it.
pub(crate) struct Conversations {
    open: Mutex<HashMap<Arc<str>, Weak<Conversation>>>,
    store: Option<Arc<Store>>,
}

impl Conversations {
    pub fn new(store: Option<Arc<Store>>) -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
            store,
        }
    }

    pub fn store(&self) -> Option<&Arc<Store>> {
        self.store.as_ref()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Weak<Conversation>>> {
        crate::lock(&self.open)
    }

    /// The conversation of members `a` and `b` (folded nicknames), loading it from the store if
    /// no session has it in memory. The store answers a load only after everything queued
    /// before it is committed, so what it says is never older than what the last holder knew.
    pub async fn open(&self, a: &str, b: &str) -> Result<Arc<Conversation>, StoreError> {
        let key: Arc<str> = conversation_key(a, b).into();
        if let Some(found) = self.lock().get(&key).and_then(Weak::upgrade) {
            return Ok(found);
        }
        let loaded = match &self.store {
            Some(store) => store.load(key.clone()).await?,
            None => ConversationState::default(),
        };
        let mut open = self.lock();
        if let Some(found) = open.get(&key).and_then(Weak::upgrade) {
            // Someone else loaded it meanwhile; theirs may already have moved on.
            return Ok(found);
        }
        if open.len() >= 1024 && open.len().is_power_of_two() {
            // Forget conversations nobody holds any more; amortised over the growth.
            open.retain(|_, conversation| conversation.strong_count() > 0);
        }
        let conversation = Arc::new(Conversation::new(key.clone(), loaded));
        open.insert(key, Arc::downgrade(&conversation));
        Ok(conversation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_messages_count_as_read_unless_the_companion_spoke_since() {
        let mut state = State {
            last_seq: 0,
            sides: [0, 1].map(|_| Side {
                session: None,
                last_sent: (0, [0; 16]),
                read_through: 0,
            }),
        };
        // Side 0 sends 1..=3: it has them all.
        state.last_seq = 3;
        state.sides[0].last_sent = (3, [3; 16]);
        assert_eq!(state.mark_read(0, 0), Some(3));
        // Side 1 sends 4, side 0 sends 5: side 0 lacks 4, so it is not past 3 until it says so.
        state.last_seq = 5;
        state.sides[1].last_sent = (4, [4; 16]);
        state.sides[0].last_sent = (5, [5; 16]);
        assert_eq!(state.mark_read(0, 3), None);
        assert_eq!(state.mark_read(0, 4), Some(5));
        // Never backwards, never past the end.
        assert_eq!(state.mark_read(0, 2), None);
        assert_eq!(state.mark_read(1, 99), Some(5));
    }

    #[test]
    fn a_loaded_conversation_counts_own_later_messages_as_had() {
        use p2pchat_store::MemberState;
        let member = |key: &str, last_sent_seq, read_through| MemberState {
            key: key.into(),
            last_sent_seq,
            last_sent_id: [1; 16],
            read_through,
        };
        // alice's last is 5 and bob has read through 5: bob's own 6 and 7 are his too.
        let loaded = ConversationState {
            last_seq: 7,
            members: vec![member("alice", 5, 3), member("bob", 7, 5)],
        };
        let conversation = Conversation::new(conversation_key("alice", "bob").into(), loaded);
        let state = conversation.lock();
        assert_eq!(state.sides[1].read_through, 7);
        assert_eq!(state.sides[0].read_through, 3, "alice has not seen 4..7");
        drop(state);
        // A mark past the last stored message (a receipt that outran its messages to the disk)
        // is brought back to it, so the messages sent again after a crash are not hidden.
        let loaded = ConversationState {
            last_seq: 7,
            members: vec![member("alice", 5, 3), member("bob", 7, 9)],
        };
        let conversation = Conversation::new(conversation_key("alice", "bob").into(), loaded);
        assert_eq!(conversation.lock().sides[1].read_through, 7);
    }

    #[test]
    fn the_key_does_not_depend_on_who_asks() {
        assert_eq!(conversation_key("bob", "alice"), "alice\nbob");
        assert_eq!(conversation_key("alice", "bob"), "alice\nbob");
    }

    #[tokio::test]
    async fn both_members_share_one_conversation_and_side_of_tells_them_apart() {
        let conversations = Conversations::new(None);
        let first = conversations.open("bob", "alice").await.unwrap();
        let second = conversations.open("alice", "bob").await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(first.side_of("alice"), 0);
        assert_eq!(first.side_of("bob"), 1);
        drop((first, second));
        // Once nobody holds it, a fresh one starts (from the store, when there is one).
        let third = conversations.open("alice", "bob").await.unwrap();
        assert_eq!(third.lock().last_seq, 0);
    }
}
