//! Where the user's stored messages stand: `Ack` makes them ✓ (stored), `Delivered` ✓✓ (the
//! companion has them). Counts add up over a batch of frames and come out as at most one line of
//! each kind, so a burst of acks does not print a line per message. Pure.

use std::collections::VecDeque;

/// Most runs of undelivered messages remembered. A run is a stretch of consecutive sequence
/// numbers, so this only fills when the companion stays connected but never reports what it
/// received; the oldest runs are then forgotten (their ✓✓ is just not printed).
const MAX_RUNS: usize = 4096;

/// `count` stored messages with sequence numbers between `first` and `last`.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: u64,
    last: u64,
    count: u64,
}

impl Run {
    /// Whether the run holds every sequence number from `first` to `last` (a run learnt on
    /// resume only knows its last number).
    fn is_dense(&self) -> bool {
        self.last - self.first + 1 == self.count
    }
}

/// The receipts of one conversation.
#[derive(Debug, Default)]
pub struct Receipts {
    undelivered: VecDeque<Run>,
    their_read_through: u64,
    newly_stored: u64,
    newly_delivered: u64,
}

impl Receipts {
    /// A new conversation: forget the old one's runs (lines still due are kept).
    pub fn reset(&mut self) {
        self.undelivered.clear();
        self.their_read_through = 0;
    }

    /// `Ack { count, first_seq }`: `count` messages stored as `first_seq`, `first_seq + 1`, ….
    pub fn stored(&mut self, first_seq: u64, count: u64) {
        if count > 0 {
            let last = first_seq.saturating_add(count - 1);
            self.add(Run {
                first: first_seq,
                last,
                count,
            });
        }
    }

    /// On resume: `count` messages the relay had stored, the newest as `last_seq`.
    pub fn stored_through(&mut self, last_seq: u64, count: u64) {
        if count > 0 {
            self.add(Run {
                first: last_seq,
                last: last_seq,
                count,
            });
        }
    }

    fn add(&mut self, run: Run) {
        self.newly_stored += run.count;
        if let Some(back) = self.undelivered.back_mut() {
            if back.is_dense() && run.is_dense() && back.last.checked_add(1) == Some(run.first) {
                back.last = run.last;
                back.count += run.count;
                self.settle();
                return;
            }
        }
        self.undelivered.push_back(run);
        if self.undelivered.len() > MAX_RUNS {
            self.undelivered.pop_front();
        }
        // The companion may already have it: `Delivered` can overtake the `Ack`.
        self.settle();
    }

    /// `Delivered(through)` (or a `Conversation`'s `their_read_through`).
    pub fn delivered_through(&mut self, through: u64) {
        if through > self.their_read_through {
            self.their_read_through = through;
            self.settle();
        }
    }

    fn settle(&mut self) {
        let through = self.their_read_through;
        while let Some(front) = self.undelivered.front_mut() {
            if front.last <= through {
                self.newly_delivered += front.count;
                self.undelivered.pop_front();
            } else {
                if front.first <= through && front.is_dense() {
                    let done = through - front.first + 1;
                    self.newly_delivered += done;
                    front.first = through + 1;
                    front.count -= done;
                }
                break;
            }
        }
    }

    /// The receipt lines due since the last call. `companion` is the printable nickname, `away`
    /// whether they are not connected (only then is ✓ worth a line: ✓✓ follows soon otherwise),
    /// `kept` whether the relay stores history.
    pub fn take_lines(&mut self, companion: Option<&str>, away: bool, kept: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let stored = std::mem::take(&mut self.newly_stored);
        let delivered = std::mem::take(&mut self.newly_delivered);
        if stored > delivered && away {
            let stored = stored - delivered;
            lines.push(match (companion, kept) {
                (Some(nick), true) => format!("✓ Stored for {nick} (away): {stored} message(s)"),
                (Some(nick), false) => format!(
                    "✓ Accepted by the server, but {nick} is away and this server keeps no history: {stored} message(s)"
                ),
                (None, _) => format!("✓ Stored: {stored} message(s)"),
            });
        }
        if delivered > 0 {
            let nick = companion.unwrap_or("your companion");
            lines.push(match delivered {
                1 => format!("✓✓ Delivered to {nick}"),
                n => format!("✓✓ {n} messages delivered to {nick}"),
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_acks_is_one_line() {
        let mut receipts = Receipts::default();
        for seq in 1..=3 {
            receipts.stored(seq, 1);
        }
        assert_eq!(
            receipts.take_lines(Some("Nick2"), true, true),
            ["✓ Stored for Nick2 (away): 3 message(s)"]
        );
        assert!(receipts.take_lines(Some("Nick2"), true, true).is_empty());
        receipts.delivered_through(2);
        assert_eq!(
            receipts.take_lines(Some("Nick2"), false, true),
            ["✓✓ 2 messages delivered to Nick2"]
        );
        receipts.delivered_through(9);
        assert_eq!(
            receipts.take_lines(Some("Nick2"), false, true),
            ["✓✓ Delivered to Nick2"]
        );
    }

    #[test]
    fn interleaved_sequence_numbers_and_early_delivery() {
        let mut receipts = Receipts::default();
        receipts.stored(2, 1);
        receipts.stored(4, 2);
        receipts.delivered_through(4);
        assert_eq!(
            receipts.take_lines(Some("B"), false, true),
            ["✓✓ 2 messages delivered to B"]
        );
        // Delivered overtook the Ack: straight to ✓✓, no ✓ line.
        receipts.delivered_through(10);
        receipts.stored(7, 1);
        assert_eq!(
            receipts.take_lines(Some("B"), true, true),
            ["✓✓ 2 messages delivered to B"]
        );
    }

    #[test]
    fn resumed_runs_are_delivered_once_their_last_is() {
        let mut receipts = Receipts::default();
        receipts.stored_through(8, 3);
        receipts.delivered_through(7);
        assert!(receipts.take_lines(Some("B"), false, true).is_empty());
        receipts.delivered_through(8);
        assert_eq!(
            receipts.take_lines(Some("B"), false, true),
            ["✓✓ 3 messages delivered to B"]
        );
    }
}
