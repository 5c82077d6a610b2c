//! The companion's messages as they arrive: which ids were already shown (after a relay crash the
//! same message can come twice, even under another sequence number) and how far the client has
//! received, for `Received`. Pure.

use std::collections::{HashSet, VecDeque};

use p2pchat_proto::MessageId;

/// Message ids remembered per conversation. A duplicate comes soon after its original (on the
/// resume after a crash), so the latest few thousand are enough, and the set stays bounded.
pub const MAX_SEEN_IDS: usize = 8192;

/// Received messages of one conversation.
#[derive(Debug, Default)]
pub struct Inbox {
    seen: HashSet<MessageId>,
    order: VecDeque<MessageId>,
    /// Highest sequence number received.
    received: u64,
    /// Highest sequence number the relay knows we received.
    reported: u64,
}

impl Inbox {
    /// A new conversation.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// A `Conversation` frame: the relay knows we received everything through `read_through`.
    pub fn joined(&mut self, read_through: u64) {
        self.reported = read_through;
        self.received = self.received.max(read_through);
    }

    /// A message arrived; true when its id is new and it should be shown.
    pub fn accept(&mut self, seq: u64, id: MessageId) -> bool {
        self.received = self.received.max(seq);
        self.remember(id)
    }

    /// Records an id (of a message shown as history, too); true when it was not known.
    pub fn remember(&mut self, id: MessageId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > MAX_SEEN_IDS {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }

    /// The `Received` to send, if the relay does not know yet how far we are.
    pub fn take_report(&mut self) -> Option<u64> {
        (self.received > self.reported).then(|| {
            self.reported = self.received;
            self.received
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_not_shown_twice() {
        let mut inbox = Inbox::default();
        assert!(inbox.accept(5, [1; 16]));
        assert!(!inbox.accept(7, [1; 16]));
        assert!(inbox.accept(8, [2; 16]));
        assert_eq!(inbox.take_report(), Some(8));
        assert_eq!(inbox.take_report(), None);
    }

    #[test]
    fn the_set_of_ids_is_bounded() {
        let mut inbox = Inbox::default();
        for i in 0..=MAX_SEEN_IDS as u64 {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&i.to_be_bytes());
            inbox.remember(id);
        }
        assert_eq!(inbox.seen.len(), MAX_SEEN_IDS);
        assert!(inbox.remember([0; 16]), "the oldest id was forgotten");
    }

    #[test]
    fn received_is_reported_only_past_what_the_relay_knows() {
        let mut inbox = Inbox::default();
        inbox.joined(10);
        inbox.accept(9, [1; 16]);
        assert_eq!(inbox.take_report(), None);
        inbox.accept(11, [2; 16]);
        assert_eq!(inbox.take_report(), Some(11));
    }
}
