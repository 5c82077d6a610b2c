//! Messages a waiting client sent before it had a companion, kept in order up to a byte limit.

use bytes::Bytes;
use p2pchat_proto::peek_header;

/// Held runs of complete `Message` frames, at most a given number of bytes in all.
#[derive(Default)]
pub struct Held {
    runs: Vec<Bytes>,
    bytes: usize,
    count: usize,
    /// Something was refused: everything after it is refused too until the store is emptied,
    /// so what is kept is always the oldest messages, without gaps (the sender's acknowledgements
    /// count messages in the order they were sent).
    refusing: bool,
}

impl Held {
    /// Messages held now.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Keeps the frames of `run` that fit in `limit` bytes in all, in order, and returns how many
    /// did not.
    /// Once one frame is refused the rest are too, until `take`, so what is kept has no gaps.
    pub fn push_run(&mut self, run: Bytes, limit: usize, max_frame: usize) -> usize {
        let mut offset = 0;
        let mut kept_to = 0;
        let mut refused = 0;
        while let Ok(Some(header)) = peek_header(&run[offset..], max_frame) {
            let end = offset + header.frame_len();
            if end > run.len() {
                break;
            }
            if !self.refusing && self.bytes + end <= limit {
                kept_to = end;
                self.count += 1;
            } else {
                self.refusing = true;
                refused += 1;
            }
            offset = end;
        }
        if kept_to > 0 {
            self.bytes += kept_to;
            self.runs.push(run.slice(..kept_to));
        }
        refused
    }

    /// Everything held, oldest first, leaving the store empty.
    pub fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        self.count = 0;
        self.refusing = false;
        std::mem::take(&mut self.runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2pchat_proto::{encode_to_vec, ChatMessage, Frame};

    fn run_of(texts: &[&str]) -> Bytes {
        let mut bytes = Vec::new();
        for text in texts {
            bytes.extend(encode_to_vec(&Frame::Message(ChatMessage {
                seq: 0,
                sent_ms: 0,
                id: [1; 16],
                body: text.as_bytes().to_vec(),
            })));
        }
        Bytes::from(bytes)
    }

    #[test]
    fn keeps_what_fits_and_counts_the_rest() {
        // Each "abc" frame is 40 bytes: 4 length + 1 type + 32 seq, time and id + 3 text.
        let mut held = Held::default();
        assert_eq!(held.push_run(run_of(&["abc", "abc"]), 100, 1024), 0);
        assert_eq!(held.push_run(run_of(&["abc", "abc"]), 100, 1024), 2);
        assert_eq!(held.count(), 2);
        let taken = held.take();
        assert_eq!(taken.concat(), run_of(&["abc", "abc"]).to_vec());
        assert_eq!(held.count(), 0);
        assert_eq!(held.push_run(run_of(&["abc", "abc"]), 100, 1024), 0);
    }

    #[test]
    fn a_refusal_stops_the_rest_of_the_run_too() {
        let mut held = Held::default();
        assert_eq!(
            held.push_run(run_of(&["abc", "abcdefgh", "a"]), 50, 1024),
            2
        );
        // Even a small one that would fit now: the kept messages stay a gapless prefix.
        assert_eq!(held.push_run(run_of(&["a"]), 50, 1024), 1);
        assert_eq!(held.take().concat(), run_of(&["abc"]).to_vec());
        assert_eq!(held.push_run(run_of(&["a"]), 50, 1024), 0);
    }
}
