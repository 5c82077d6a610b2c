//! Pure accounting for the durable scenario: which written messages an acknowledgement covers
//! and how long each waited for it (`AckLedger`, `Latencies`), and when a rate-limited sender may
//! write its next message (`Pacer`). No clock and no I/O: times are nanoseconds since the run's
//! start, passed in by the caller.
//!
//! The relay acknowledges frames; in end-to-end mode one frame (an envelope) carries several
//! messages, so the ledger keeps both: acknowledgements count frames, everything it reports
//! counts messages, and a message is acknowledged when its frame is.

use std::collections::VecDeque;
use std::fmt;

/// Frames written at once with the same number of messages each.
#[derive(Debug, Clone, Copy)]
struct Run {
    frames: u64,
    per_frame: u64,
    written_ns: u64,
}

/// Frames written and not yet acknowledged, oldest first, as runs: a sender writes many frames
/// at once, so this holds an entry or two per write, not one per frame.
#[derive(Debug, Default)]
pub struct AckLedger {
    written: VecDeque<Run>,
    outstanding_frames: u64,
    outstanding: u64,
    acked: u64,
    acked_frames: u64,
    /// The sequence number the next acknowledgement must start at (`None`: not checked).
    next_seq: Option<u64>,
}

/// An acknowledgement that does not fit what was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckError {
    /// It covers no frame.
    Empty,
    /// It covers more frames than are waiting for one.
    TooMany { count: u64, outstanding: u64 },
    /// It does not start where the previous one ended (a frame acknowledged twice or never).
    Gap { got: u64, want: u64 },
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "an acknowledgement of no message"),
            Self::TooMany { count, outstanding } => write!(
                f,
                "an acknowledgement of {count} frames when {outstanding} were unacknowledged"
            ),
            Self::Gap { got, want } if got > want => write!(
                f,
                "acknowledgement starts at seq {got}, expected {want}: {want}..{got} never \
                 acknowledged"
            ),
            Self::Gap { got, want } => write!(
                f,
                "acknowledgement starts at seq {got}, expected {want}: acknowledged twice"
            ),
        }
    }
}

impl std::error::Error for AckError {}

impl AckLedger {
    /// From now on every acknowledgement must carry sequence numbers, the next one `seq`.
    pub fn number_from(&mut self, seq: u64) {
        self.next_seq = Some(seq);
    }

    /// `messages` messages were written at `at_ns`, `per_frame` to a frame (the last frame may
    /// hold fewer); returns the frames that took.
    pub fn written(&mut self, messages: u64, per_frame: u64, at_ns: u64) -> u64 {
        let per_frame = per_frame.max(1);
        let (full, rest) = (messages / per_frame, messages % per_frame);
        for (frames, per_frame) in [(full, per_frame), (u64::from(rest > 0), rest)] {
            if frames > 0 {
                self.written.push_back(Run {
                    frames,
                    per_frame,
                    written_ns: at_ns,
                });
                self.outstanding_frames += frames;
                self.outstanding += frames * per_frame;
            }
        }
        full + u64::from(rest > 0)
    }

    /// The next `count` frames (with sequence numbers from `first_seq`, if the server gives
    /// them) were acknowledged at `at_ns`; each of their messages' wait goes to `latencies`.
    /// Returns how many messages that acknowledged.
    pub fn ack(
        &mut self,
        count: u64,
        first_seq: Option<u64>,
        at_ns: u64,
        latencies: &mut Latencies,
    ) -> Result<u64, AckError> {
        if count == 0 {
            return Err(AckError::Empty);
        }
        if count > self.outstanding_frames {
            return Err(AckError::TooMany {
                count,
                outstanding: self.outstanding_frames,
            });
        }
        if let (Some(want), Some(got)) = (self.next_seq, first_seq) {
            if got != want {
                return Err(AckError::Gap { got, want });
            }
            self.next_seq = Some(want + count);
        }
        let mut left = count;
        let mut messages = 0;
        while left > 0 {
            let Some(run) = self.written.front_mut() else {
                break; // unreachable: count <= outstanding_frames
            };
            let take = left.min(run.frames);
            latencies.add(at_ns.saturating_sub(run.written_ns), take * run.per_frame);
            messages += take * run.per_frame;
            run.frames -= take;
            left -= take;
            if run.frames == 0 {
                self.written.pop_front();
            }
        }
        self.outstanding_frames -= count;
        self.outstanding -= messages;
        self.acked += messages;
        self.acked_frames += count;
        Ok(messages)
    }

    /// Messages written and not acknowledged yet.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// Messages acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Frames acknowledged so far.
    pub fn acked_frames(&self) -> u64 {
        self.acked_frames
    }
}

/// Waits in nanoseconds, each counted for a number of messages.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    samples: Vec<(u64, u64)>,
    count: u64,
}

impl Latencies {
    /// `count` messages waited `ns` each.
    pub fn add(&mut self, ns: u64, count: u64) {
        if count > 0 {
            self.samples.push((ns, count));
            self.count += count;
        }
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
        self.count += other.count;
    }

    /// Messages counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sorts the samples; needed before `percentile`.
    pub fn sort(&mut self) {
        self.samples.sort_unstable();
    }

    /// The wait of the message at rank `ceil(q × count)` (nearest-rank), in ns; 0 when empty.
    /// The samples must be sorted.
    pub fn percentile(&self, q: f64) -> u64 {
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count.max(1));
        let mut seen = 0;
        for &(ns, n) in &self.samples {
            seen += n;
            if seen >= rank {
                return ns;
            }
        }
        0
    }

    /// The mean wait in ns.
    pub fn mean(&self) -> f64 {
        let sum: f64 = self
            .samples
            .iter()
            .map(|&(ns, n)| ns as f64 * n as f64)
            .sum();
        sum / self.count.max(1) as f64
    }
}

/// The schedule of one of `senders` senders sharing `rate` messages/s: the senders take turns,
/// so the run as a whole writes one message every `1/rate` s (sender `k`'s message `i` is the
/// run's message `k + i × senders`), not `senders` messages at once every `senders/rate` s.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Messages/s over all senders; 0: no limit.
    rate: u64,
    senders: u64,
    sender: u64,
}

impl Pacer {
    /// Sender `sender` of `senders` sharing `rate` messages/s (0: unlimited).
    pub fn new(rate: u64, senders: u64, sender: u64) -> Self {
        Self {
            rate,
            senders: senders.max(1),
            sender,
        }
    }

    /// Whether there is a limit at all.
    pub fn is_limited(&self) -> bool {
        self.rate > 0
    }

    /// How many of this sender's messages are due by `at_ns` (`u64::MAX` without a limit).
    pub fn due(&self, at_ns: u64) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        // The run's messages due by `at_ns` are slots 0..=slot.
        let slot = (u128::from(at_ns) * u128::from(self.rate) / 1_000_000_000) as u64;
        if slot < self.sender {
            0
        } else {
            (slot - self.sender) / self.senders + 1
        }
    }

    /// When this sender's message `index` is due, in ns (0 without a limit).
    pub fn due_at(&self, index: u64) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        let slot = u128::from(self.sender) + u128::from(index) * u128::from(self.senders);
        let ns = (slot * 1_000_000_000).div_ceil(u128::from(self.rate));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
