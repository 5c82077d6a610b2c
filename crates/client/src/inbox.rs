//! The companion's messages as they arrive: which ids were already shown, under which sequence
//! number, and how far the client has received, for `Received`. Pure.
//!
//! The same id again under the same number is the relay delivering again what it could not know
//! arrived (after a reconnect): dropped quietly. The same id under another number is a copy the
//! relay numbered anew: a replay, or a message re-sent after a relay crash lost its first
//! number. Either way it is not shown twice, and the user is told. An id is remembered only once
//! its envelope opened, so a forged copy cannot shadow the genuine message behind it.

use std::collections::{HashMap, VecDeque};

use p2pchat_proto::MessageId;

/// Message ids remembered per conversation. A duplicate comes soon after its original (on the
/// resume after a crash), so the latest few thousand are enough, and the map stays bounded.
/// (An older message replayed later is caught by its counter: `keys::Replays`.)
pub const MAX_SEEN_IDS: usize = 8192;

/// What a message's id says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before.
    New,
    /// Seen under this very sequence number: a re-delivery.
    Again,
    /// Seen under another sequence number.
    Renumbered,
}

/// Received messages of one conversation.
#[derive(Debug, Default)]
pub struct Inbox {
    seen: HashMap<MessageId, u64>,
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

    /// A message arrived (it counts as received whatever it turns out to be).
    pub fn arrival(&mut self, seq: u64, id: &MessageId) -> Arrival {
        self.received = self.received.max(seq);
        match self.seen.get(id) {
            None => Arrival::New,
            Some(&known) if known == seq => Arrival::Again,
            Some(_) => Arrival::Renumbered,
        }
    }

    /// Records a message that was shown (live or as history).
    pub fn remember(&mut self, id: MessageId, seq: u64) {
        if self.seen.insert(id, seq).is_some() {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > MAX_SEEN_IDS {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
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
    fn a_shown_id_is_a_redelivery_or_a_renumbered_copy() {
        let mut inbox = Inbox::default();
        assert_eq!(inbox.arrival(5, &[1; 16]), Arrival::New);
        inbox.remember([1; 16], 5);
        assert_eq!(inbox.arrival(5, &[1; 16]), Arrival::Again);
        assert_eq!(inbox.arrival(7, &[1; 16]), Arrival::Renumbered);
        assert_eq!(inbox.arrival(8, &[2; 16]), Arrival::New);
        assert_eq!(inbox.take_report(), Some(8));
        assert_eq!(inbox.take_report(), None);
    }

    #[test]
    fn an_id_that_did_not_open_is_not_remembered() {
        let mut inbox = Inbox::default();
        assert_eq!(inbox.arrival(5, &[1; 16]), Arrival::New);
        // (forged: not remembered) the genuine one behind it is still new
        assert_eq!(inbox.arrival(6, &[1; 16]), Arrival::New);
    }

    #[test]
    fn the_set_of_ids_is_bounded() {
        let mut inbox = Inbox::default();
        for i in 0..=MAX_SEEN_IDS as u64 {
            let mut id = [0; 16];
            id[..8].copy_from_slice(&i.to_be_bytes());
            inbox.remember(id, i);
        }
        assert_eq!(inbox.seen.len(), MAX_SEEN_IDS);
        assert_eq!(
            inbox.arrival(0, &[0; 16]),
            Arrival::New,
            "the oldest id was forgotten"
        );
    }

    #[test]
    fn received_is_reported_only_past_what_the_relay_knows() {
        let mut inbox = Inbox::default();
        inbox.joined(10);
        inbox.arrival(9, &[1; 16]);
        assert_eq!(inbox.take_report(), None);
        inbox.arrival(11, &[2; 16]);
        assert_eq!(inbox.take_report(), Some(11));
    }
}
