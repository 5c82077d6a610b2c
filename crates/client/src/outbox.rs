//! The lines the user typed that the relay has not acknowledged yet, in send order. This queue,
//! not the socket's send buffer, is the record of what must go again after a lost connection or a
//! failed store. Lines wait here loose until they can be encrypted (a companion with a key) and
//! sent; at that moment every loose line is packed into batches, one end-to-end envelope and one
//! `Message` frame each, and a batch keeps its id and counter for every re-send. A file
//! transfer's control message (offer, accept, …) is queued the same way and travels as a batch
//! of its own, so acks, resends and receipts count it like any message. Pure: no socket, no
//! clock, no keys (the app seals the batches).

use std::collections::VecDeque;

use p2pchat_proto::MessageId;
use p2pchat_secure::e2e::sealed_len;
use p2pchat_secure::FileControl;

/// Most unacknowledged lines kept. At this many the client stops reading input until acks
/// arrive, so a fast typist (or a piped file) goes at the relay's pace and memory stays bounded.
pub const MAX_UNACKED: usize = 1024;
/// Most lines in one envelope: enough that a paste goes as a handful of frames, few enough that
/// one lost frame does not hold back a whole file.
pub const MAX_BATCH_LINES: usize = 64;

/// Lines sent together as one `Message`: the relay acks and receipts them as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The id it is (re-)sent with, so the companion can drop a second copy.
    pub id: MessageId,
    /// The counter sealed into it, the same in every re-send (replay protection).
    pub counter: u64,
    /// Its lines, as typed (none for a file control message).
    pub lines: Vec<String>,
    /// A file transfer's control message, sent alone.
    pub file: Option<FileControl>,
    /// An envelope sealed already (a room's sender key for its members), sent as it is.
    pub sealed: Option<Vec<u8>>,
}

impl Batch {
    /// What it counts for against `MAX_UNACKED`: its lines, or 1 for a control message.
    fn weight(&self) -> usize {
        self.lines.len().max(1)
    }
}

/// Something queued and not packed yet.
#[derive(Debug)]
enum Loose {
    Line(String),
    File(FileControl),
}

/// The unacknowledged lines: batches (the first `sent` went out on the current connection, the
/// rest wait for a connection or a resume), then loose lines not packed yet.
#[derive(Debug, Default)]
pub struct Outbox {
    batches: VecDeque<Batch>,
    sent: usize,
    loose: VecDeque<Loose>,
    /// Lines (and control messages) in `batches` and `loose` together.
    lines: usize,
}

impl Outbox {
    /// Queues a new line (not yet packed or sent).
    pub fn push(&mut self, text: String) {
        self.loose.push_back(Loose::Line(text));
        self.lines += 1;
    }

    /// Queues a file transfer's control message; it goes in order with the lines around it.
    pub fn push_file(&mut self, control: FileControl) {
        self.loose.push_back(Loose::File(control));
        self.lines += 1;
    }

    /// Lines not acknowledged yet.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Whether every line was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Whether the queue is at `MAX_UNACKED`.
    pub fn is_full(&self) -> bool {
        self.lines >= MAX_UNACKED
    }

    /// How many more lines the queue takes.
    pub fn room(&self) -> usize {
        MAX_UNACKED.saturating_sub(self.lines)
    }

    /// Lines still waiting to be packed (for want of a key, or of a connection).
    pub fn loose(&self) -> usize {
        self.loose.len()
    }

    /// Packs every loose line into batches of at most `MAX_BATCH_LINES` lines whose envelope is
    /// at most `max_body` bytes (a single longer line still goes alone: the relay says no to
    /// it, nothing is silently lost). `next` gives each new batch its id and counter.
    pub fn pack(&mut self, max_body: usize, mut next: impl FnMut() -> (MessageId, u64)) {
        while let Some(first) = self.loose.pop_front() {
            let first = match first {
                Loose::Line(text) => text,
                Loose::File(control) => {
                    let (id, counter) = next();
                    self.batches.push_back(Batch {
                        id,
                        counter,
                        lines: Vec::new(),
                        file: Some(control),
                        sealed: None,
                    });
                    continue;
                }
            };
            let mut lengths = vec![first.len()];
            let mut lines = vec![first];
            while lines.len() < MAX_BATCH_LINES {
                let Some(Loose::Line(following)) = self.loose.front() else {
                    break;
                };
                lengths.push(following.len());
                if sealed_len(lengths.iter().copied()) > max_body {
                    break;
                }
                if let Some(Loose::Line(text)) = self.loose.pop_front() {
                    lines.push(text);
                }
            }
            let (id, counter) = next();
            self.batches.push_back(Batch {
                id,
                counter,
                lines,
                file: None,
                sealed: None,
            });
        }
    }

    /// Whether some batch has not been sent on this connection yet.
    pub fn has_unsent(&self) -> bool {
        self.sent < self.batches.len()
    }

    /// Puts `batches` ahead of every batch not sent yet on this connection (a room's new
    /// sender key goes before the messages it seals).
    pub fn insert_unsent(&mut self, batches: Vec<Batch>) {
        for (i, batch) in batches.into_iter().enumerate() {
            self.lines += batch.weight();
            self.batches.insert(self.sent + i, batch);
        }
    }

    /// The batches not sent on this connection yet, in order; they count as sent.
    pub fn take_unsent(&mut self) -> Vec<Batch> {
        let unsent = self.batches.iter().skip(self.sent).cloned().collect();
        self.sent = self.batches.len();
        unsent
    }

    /// `Ack { count }`: the oldest `count` sent batches are stored. Returns how many messages
    /// of the user's were popped (never more than were sent: the relay cannot acknowledge what
    /// it did not get; a room's sender keys are not the user's messages).
    pub fn ack(&mut self, count: u32) -> usize {
        let popped = (count as usize).min(self.sent);
        let mut messages = 0;
        for batch in self.batches.drain(..popped) {
            self.lines -= batch.weight();
            messages += usize::from(batch.sealed.is_none());
        }
        self.sent -= popped;
        messages
    }

    /// The relay did not keep what was sent (lost connection, failed store): all of it goes again.
    pub fn forget_sent(&mut self) {
        self.sent = 0;
    }

    /// On resume: the relay holds every batch up to and including `last_id`, so drop them.
    /// Returns how many were dropped (0 when `last_id` is not queued: all queued ones are newer).
    pub fn drop_through(&mut self, last_id: &MessageId) -> usize {
        match self.batches.iter().position(|batch| &batch.id == last_id) {
            Some(index) => {
                for batch in self.batches.drain(..=index) {
                    self.lines -= batch.weight();
                }
                self.sent = self.sent.saturating_sub(index + 1);
                index + 1
            }
            None => 0,
        }
    }

    /// The relay refused the newest batch it got (its held allowance is full): forget it.
    /// Refusals come in order and, once the allowance is full, every later one is refused too,
    /// so the refused ones are always the newest sent.
    pub fn drop_newest_sent(&mut self) -> Option<Batch> {
        let index = self.sent.checked_sub(1)?;
        self.sent = index;
        let batch = self.batches.remove(index)?;
        self.lines -= batch.weight();
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` lines packed one batch each, ids `[0; 16]`, `[1; 16]`, ….
    fn outbox(n: u8) -> Outbox {
        let mut outbox = Outbox::default();
        for i in 0..n {
            outbox.push(format!("m{i}"));
            outbox.pack(1 << 16, || ([i; 16], u64::from(i)));
        }
        outbox
    }

    fn ids(batches: &[Batch]) -> Vec<MessageId> {
        batches.iter().map(|batch| batch.id).collect()
    }

    #[test]
    fn acks_pop_only_what_was_sent() {
        let mut outbox = outbox(3);
        assert_eq!(outbox.take_unsent().len(), 3);
        outbox.push("late".into());
        outbox.pack(1 << 16, || ([9; 16], 9));
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
        assert_eq!(ids(&outbox.take_unsent()), [[2; 16], [3; 16]]);
        assert_eq!(outbox.len(), 2);
    }

    #[test]
    fn a_refused_batch_is_the_newest_sent() {
        let mut outbox = outbox(2);
        outbox.take_unsent();
        outbox.push("unsent".into());
        let refused = outbox.drop_newest_sent().map(|batch| batch.lines);
        assert_eq!(refused, Some(vec!["m1".to_owned()]));
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.loose(), 1);
    }

    #[test]
    fn loose_lines_pack_into_batches_by_count_and_size() {
        let mut outbox = Outbox::default();
        for i in 0..MAX_BATCH_LINES + 6 {
            outbox.push(format!("{i:03}"));
        }
        let mut made = 0u8;
        let mut next = || {
            made += 1;
            ([made; 16], u64::from(made))
        };
        outbox.pack(1 << 16, &mut next);
        let batches = outbox.take_unsent();
        let sizes: Vec<usize> = batches.iter().map(|batch| batch.lines.len()).collect();
        assert_eq!(sizes, [MAX_BATCH_LINES, 6]);
        assert_eq!(batches[1].lines[0], format!("{MAX_BATCH_LINES:03}"));
        // Room for two 3-byte lines but not three.
        for text in ["aaa", "bbb", "ccc"] {
            outbox.push(text.into());
        }
        outbox.pack(sealed_len([3, 3].into_iter()), &mut next);
        let sizes: Vec<usize> = outbox
            .take_unsent()
            .iter()
            .map(|batch| batch.lines.len())
            .collect();
        assert_eq!(sizes, [2, 1]);
        assert_eq!(outbox.len(), MAX_BATCH_LINES + 9);
        assert_eq!(outbox.ack(3), 3);
        assert_eq!(outbox.len(), 1, "an ack is per frame, the count per line");
    }

    #[test]
    fn a_file_control_message_is_a_batch_of_its_own_in_order() {
        let mut outbox = Outbox::default();
        outbox.push("before".into());
        outbox.push_file(FileControl::Decline { transfer: [1; 16] });
        outbox.push("after".into());
        let mut made = 0u8;
        outbox.pack(1 << 16, || {
            made += 1;
            ([made; 16], u64::from(made))
        });
        let batches = outbox.take_unsent();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].lines, ["before"]);
        assert!(batches[1].lines.is_empty() && batches[1].file.is_some());
        assert_eq!(batches[2].lines, ["after"]);
        assert_eq!(outbox.len(), 3);
        assert_eq!(outbox.ack(3), 3);
        assert!(outbox.is_empty());
    }
}
