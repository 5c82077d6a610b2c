//! Earlier messages: what to ask the relay for when a conversation starts and on `/history`,
//! whether live frames must wait while the answer is on its way (so the screen stays in order;
//! the app holds them), and how an earlier message is printed. Pure, but for reading the local
//! time zone.

use chrono::{Local, TimeZone, Utc};
use p2pchat_proto::{EarlierMessage, Frame};

/// Messages `/history` asks for when no number is given.
pub const DEFAULT_PAGE: u32 = 20;
/// Most messages one request asks for (`--history`, `/history N`), and most `Earlier` frames
/// kept for one answer: the relay's own limit for one answer.
pub const MAX_PAGE: u32 = 200;
/// Most live frames held back while history loads; past it they go at once, ahead of the
/// history, rather than piling up behind a relay that never ends its answer.
pub const MAX_HELD_BACK: usize = 10_000;

/// History of the current conversation, and a request that may be on its way.
#[derive(Debug)]
pub struct History {
    limit: u32,
    /// The companion (folded) whose history was asked for when their conversation started.
    asked_for: Option<String>,
    /// Lowest sequence number shown so far, earlier or live.
    oldest: Option<u64>,
    loading: Option<Loading>,
}

#[derive(Debug)]
struct Loading {
    want: usize,
    paging: bool,
    earlier: Vec<EarlierMessage>,
    /// Live frames wait for this answer (until too many have).
    holding: bool,
}

/// An answer to print: the earlier messages (all before anything live).
#[derive(Debug, Default)]
pub struct Page {
    /// Earlier messages, oldest first.
    pub earlier: Vec<EarlierMessage>,
    /// Whether `/history` asked for it (the conversation's start did not).
    pub paging: bool,
    /// Whether older messages remain.
    pub more: bool,
}

/// Why `/history` sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl History {
    /// Shows `limit` earlier messages when a conversation starts (0: none).
    pub fn new(limit: u32) -> Self {
        Self {
            limit: limit.min(MAX_PAGE),
            asked_for: None,
            oldest: None,
            loading: None,
        }
    }

    /// A `Conversation` frame with `companion` (folded): the request for its start, unless it was
    /// asked for already (a reconnect to the same companion) or there is nothing before what we
    /// missed. It asks for `limit` messages up to `read_through`: what comes after arrives live
    /// (the relay counts the member's own messages as read, so they are among these).
    pub fn joined(&mut self, companion: &str, read_through: u64) -> Option<Frame> {
        if self.asked_for.as_deref() == Some(companion) {
            return None;
        }
        self.asked_for = Some(companion.to_owned());
        self.oldest = None;
        if self.limit == 0 || read_through == 0 {
            return None;
        }
        self.start(self.limit, false);
        Some(Frame::History {
            before: read_through.saturating_add(1),
            limit: self.limit,
        })
    }

    /// `/history N`: `n` more before the oldest message shown (the latest if none was).
    pub fn more(&mut self, n: u32) -> Result<Frame, Busy> {
        if self.loading.is_some() {
            return Err(Busy);
        }
        let limit = n.clamp(1, MAX_PAGE);
        self.start(limit, true);
        Ok(Frame::History {
            before: self.oldest.unwrap_or(0),
            limit,
        })
    }

    fn start(&mut self, limit: u32, paging: bool) {
        self.loading = Some(Loading {
            want: limit as usize,
            paging,
            earlier: Vec::new(),
            holding: true,
        });
    }

    /// Whether live frames should wait for an answer on its way.
    pub fn holding(&self) -> bool {
        self.loading.as_ref().is_some_and(|loading| loading.holding)
    }

    /// Too many live frames waited: from now on they go at once.
    pub fn stop_holding(&mut self) {
        if let Some(loading) = &mut self.loading {
            loading.holding = false;
        }
    }

    /// A message with this sequence number is on the screen.
    pub fn shown(&mut self, seq: u64) {
        if seq > 0 {
            self.oldest = Some(self.oldest.map_or(seq, |oldest| oldest.min(seq)));
        }
    }

    /// An `Earlier` frame (ignored when nothing was asked for, or past the number asked for).
    pub fn earlier(&mut self, message: EarlierMessage) {
        if let Some(loading) = &mut self.loading {
            if loading.earlier.len() < loading.want {
                loading.earlier.push(message);
            }
        }
    }

    /// `HistoryEnd`: the page to print, if a request was on its way.
    pub fn end(&mut self, more: bool) -> Option<Page> {
        let loading = self.loading.take()?;
        if let Some(oldest) = loading.earlier.iter().map(|message| message.seq).min() {
            self.shown(oldest);
        }
        Some(Page {
            earlier: loading.earlier,
            paging: loading.paging,
            more,
        })
    }

    /// The connection broke mid-answer. A conversation's opening history will be asked for
    /// again on the next `Conversation` frame; a `/history` page is dropped (the user can ask
    /// again).
    pub fn interrupt(&mut self) {
        if self.loading.take().is_some_and(|loading| !loading.paging) {
            self.asked_for = None;
        }
    }
}

/// `[2026-11-25 16:40]` for a relay timestamp (ms since the epoch), in local time or UTC.
pub fn stamp(sent_ms: i64, local: bool) -> String {
    let format = "[%Y-%m-%d %H:%M]";
    let formatted = if local {
        Local
            .timestamp_millis_opt(sent_ms)
            .single()
            .map(|time| time.format(format).to_string())
    } else {
        Utc.timestamp_millis_opt(sent_ms)
            .single()
            .map(|time| time.format(format).to_string())
    };
    formatted.unwrap_or_else(|| "[?]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_asked_for_once_per_companion() {
        let mut history = History::new(20);
        assert_eq!(
            history.joined("nick2", 7),
            Some(Frame::History {
                before: 8,
                limit: 20
            })
        );
        assert!(history.end(false).is_some());
        assert_eq!(history.joined("nick2", 9), None);
        assert_eq!(
            history.joined("nick3", 0),
            None,
            "nothing before what was missed"
        );
        assert!(History::new(0).joined("nick2", 7).is_none());
    }

    #[test]
    fn stamps_are_minutes() {
        assert_eq!(stamp(1_795_624_800_000, false), "[2026-11-25 16:40]");
    }
}
