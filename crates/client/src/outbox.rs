//! The messages the user sent that the relay has not acknowledged yet, in send order. This queue,
//! not the socket's send buffer, is the record of what must go again after a lost connection or a
//! failed store. Pure: no socket, no clock.

use std::collections::VecDeque;

use p2pchat_proto::{ChatMessage, Frame, MessageId};

/// Most unacknowledged messages kept. At this many the client stops reading input until acks
/// arrive, so a fast typist (or a piped file) goes at the relay's pace and memory stays bounded.
pub const MAX_UNACKED: usize = 1024;

/// One message waiting for its `Ack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The id it is (re-)sent with, so the companion can drop a second copy.
    pub id: MessageId,
    /// Its text.
    pub text: String,
}

impl Pending {
    /// The frame that sends it (the relay stamps `seq` and `sent_ms`).
    pub fn frame(&self) -> Frame {
        Frame::Message(ChatMessage {
            seq: 0,
            sent_ms: 0,
            id: self.id,
            text: self.text.clone(),
        })
    }
}

/// The unacknowledged messages: the first `sent` went out on the current connection, the rest
/// wait for a connection (or a resume) to go out.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Pending>,
    sent: usize,
}

impl Outbox {
    /// Queues a new message (not yet sent).
    pub fn push(&mut self, id: MessageId, text: String) {
        self.queue.push_back(Pending { id, text });
    }

    /// Messages not acknowledged yet.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether every message was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the queue is at `MAX_UNACKED`.
    pub fn is_full(&self) -> bool {
        self.queue.len() >= MAX_UNACKED
    }

    /// The frames for the messages not sent on this connection yet, in order; they count as sent.
    pub fn take_unsent(&mut self) -> Vec<Frame> {
        let frames = self
            .queue
            .iter()
            .skip(self.sent)
            .map(Pending::frame)
            .collect();
        self.sent = self.queue.len();
        frames
    }

    /// `Ack { count }`: the oldest `count` sent messages are stored. Returns how many were popped
    /// (never more than were sent: the relay cannot acknowledge what it did not get).
    pub fn ack(&mut self, count: u32) -> usize {
        let popped = (count as usize).min(self.sent);
        self.queue.drain(..popped);
        self.sent -= popped;
        popped
    }

    /// The relay did not keep what was sent (lost connection, failed store): all of it goes again.
    pub fn forget_sent(&mut self) {
        self.sent = 0;
    }

    /// On resume: the relay holds every message up to and including `last_id`, so drop them.
    /// Returns how many were dropped (0 when `last_id` is not queued: all queued ones are newer).
    pub fn drop_through(&mut self, last_id: &MessageId) -> usize {
        match self.queue.iter().position(|pending| &pending.id == last_id) {
            Some(index) => {
                self.queue.drain(..=index);
                self.sent = self.sent.saturating_sub(index + 1);
                index + 1
            }
            None => 0,
        }
    }

    /// The relay refused the newest message it got (its held allowance is full): forget it.
    /// Refusals come in order and, once the allowance is full, every later message is refused
    /// too, so the refused ones are always the newest sent.
    pub fn drop_newest_sent(&mut self) -> Option<Pending> {
        let index = self.sent.checked_sub(1)?;
        self.sent = index;
        self.queue.remove(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(n: u8) -> Outbox {
        let mut outbox = Outbox::default();
        for i in 0..n {
            outbox.push([i; 16], format!("m{i}"));
        }
        outbox
    }

    #[test]
    fn acks_pop_only_what_was_sent() {
        let mut outbox = outbox(3);
        assert_eq!(outbox.take_unsent().len(), 3);
        outbox.push([9; 16], "late".into());
        assert_eq!(outbox.ack(2), 2);
        assert_eq!(outbox.ack(5), 1);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.take_unsent().len(), 1);
    }

    #[test]
    fn resume_drops_through_the_last_stored_id() {
        let mut outbox = outbox(4);
        outbox.take_unsent();
        outbox.forget_sent();
        assert_eq!(outbox.drop_through(&[1; 16]), 2);
        assert_eq!(outbox.drop_through(&[7; 16]), 0);
        let frames = outbox.take_unsent();
        let ids: Vec<_> = frames
            .iter()
            .map(|frame| match frame {
                Frame::Message(message) => message.id,
                _ => [0; 16],
            })
            .collect();
        assert_eq!(ids, [[2; 16], [3; 16]]);
    }

    #[test]
    fn a_refused_message_is_the_newest_sent() {
        let mut outbox = outbox(2);
        outbox.take_unsent();
        outbox.push([5; 16], "unsent".into());
        assert_eq!(outbox.drop_newest_sent().map(|p| p.text), Some("m1".into()));
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.take_unsent().len(), 1);
    }
}
