//! Catching a member up: the messages it missed, sent from the store ahead of anything live;
//! history pages; and receipts (`Received` from the client, `Delivered` to its companion).

use std::sync::Arc;

use p2pchat_proto::{encode_to_bytes, EarlierMessage, ErrorCode, Frame};
use p2pchat_store::{StoreError, StoredMessage};

use crate::conversation::Conversation;
use crate::relay::{Job, Route};
use crate::room_relay::said_frames;
use crate::rooms::Room;
use crate::session::Session;

/// Missed messages read from the store at a time (and at most this many bytes of them).
const REPLAY_PAGE: usize = 512;
const REPLAY_BYTES: usize = 1 << 20;

/// Most messages one `History` answer carries.
pub(crate) const MAX_HISTORY: usize = 200;

/// Whose missed messages a replay sends.
pub(crate) enum Source {
    /// A pair's: those of the companion `from`, as stored.
    Pair {
        conv: Arc<Conversation>,
        from: Arc<str>,
    },
    /// A room's: everyone's but `me`'s, as `Said` frames.
    Room { room: Arc<Room>, me: Arc<str> },
}

impl Source {
    fn key(&self) -> Arc<str> {
        match self {
            Self::Pair { conv, .. } => conv.key.clone(),
            Self::Room { room, .. } => room.key.clone(),
        }
    }

    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Pair { conv: a, .. }, Self::Pair { conv: b, .. }) => Arc::ptr_eq(a, b),
            (Self::Room { room: a, .. }, Self::Room { room: b, .. }) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Missed messages still to send: those of `source` with `after < seq <= through`.
pub(crate) struct Replay {
    pub(crate) serial: u64,
    source: Source,
    after: u64,
    pub(crate) through: u64,
    /// The first read waits for the store to commit everything numbered before it.
    first: bool,
    reading: bool,
}

impl Session {
    /// Queues a replay of `from`'s messages after `after` through `through`.
    pub(crate) fn replay(
        &mut self,
        conv: Arc<Conversation>,
        from: Arc<str>,
        after: u64,
        through: u64,
    ) {
        self.replay_from(Source::Pair { conv, from }, after, through);
    }

    /// Queues a replay of `source`'s messages after `after` through `through`.
    pub(crate) fn replay_from(&mut self, source: Source, after: u64, through: u64) {
        let backlog = self.backlog();
        if let Some(pending) = backlog.replays.iter_mut().find(|r| r.source.same(&source)) {
            pending.through = pending.through.max(through);
            return;
        }
        backlog.replay_serial += 1;
        let serial = backlog.replay_serial;
        backlog.replays.push_back(Replay {
            serial,
            source,
            after,
            through,
            first: true,
            reading: false,
        });
        self.next_replay_page();
    }

    /// Reads the next page of missed messages, unless one is being read or the client has
    /// not taken the last one yet.
    pub(crate) fn next_replay_page(&mut self) {
        let room = self.out_reply_bytes < self.shared.max_backlog / 2;
        let Some(replay) = self.backlog.as_mut().and_then(|b| b.replays.front_mut()) else {
            return;
        };
        let Some(store) = self.shared.conversations.store().cloned() else {
            return;
        };
        if replay.reading || !room {
            return;
        }
        replay.reading = true;
        let (first, after, through) = (replay.first, replay.after, replay.through);
        replay.first = false;
        let key = replay.source.key();
        let serial = replay.serial;
        self.spawn(async move {
            let read = async {
                if first {
                    store.flush().await?;
                }
                tokio::task::spawn_blocking(move || {
                    store.after(&key, after, through, REPLAY_PAGE, REPLAY_BYTES)
                })
                .await
                .map_err(|err| StoreError::Sqlite(err.to_string()))?
            };
            Job::Replayed {
                serial,
                result: read.await,
            }
        });
    }

    /// The front replay is over: the next one starts, or held-back frames go.
    pub(crate) fn replay_done(&mut self) {
        if let Some(backlog) = self.backlog.as_mut() {
            backlog.replays.pop_front();
        }
        if !self.replaying() {
            if !self.route.claimed() {
                self.release_deferred();
            }
        } else {
            self.next_replay_page();
        }
    }

    pub(crate) fn on_replayed(&mut self, result: Result<Vec<StoredMessage>, StoreError>) {
        let Some(replay) = self.backlog.as_mut().and_then(|b| b.replays.front_mut()) else {
            return;
        };
        replay.reading = false;
        let messages = match result {
            Ok(messages) => messages,
            Err(err) => {
                self.store_failed("could not read the messages you missed", &err);
                self.replay_done();
                return;
            }
        };
        let Some(last) = messages.last().map(|m| m.seq) else {
            self.replay_done();
            return;
        };
        replay.after = last;
        let done = last >= replay.through;
        match &replay.source {
            Source::Pair { from, .. } => {
                let from = from.clone();
                for message in messages {
                    if *message.sender == *from {
                        self.reply_bytes(message.frame);
                    }
                }
            }
            Source::Room { room, me } => {
                let frames = said_frames(room, me, &messages);
                self.reply_bytes(frames);
            }
        }
        if done {
            self.replay_done();
        } else {
            self.next_replay_page();
        }
    }

    /// `History`: up to `limit` messages before `before`, from the store.
    pub(crate) fn history(&mut self, before: u64, limit: u32) {
        let limit = (limit as usize).min(MAX_HISTORY);
        let store = self.shared.conversations.store().cloned();
        let (Route::In { conv, .. } | Route::Claimed { conv, .. }, Some(store)) =
            (&self.route, store)
        else {
            return self.answer_history(Vec::new(), limit);
        };
        if limit == 0 {
            return self.answer_history(Vec::new(), limit);
        }
        if self.backlog.as_ref().is_some_and(|b| b.history_busy) {
            let text = "one history request at a time; wait for HistoryEnd".into();
            self.reply_error(ErrorCode::UnexpectedFrame, text);
            return self.answer_history(Vec::new(), 0);
        }
        let key = conv.key.clone();
        self.backlog().history_busy = true;
        self.spawn(async move {
            let result = tokio::task::spawn_blocking(move || store.before(&key, before, limit + 1))
                .await
                .map_err(|err| StoreError::Sqlite(err.to_string()))
                .and_then(|read| read);
            Job::History { limit, result }
        });
    }

    pub(crate) fn answer_history(&mut self, mut messages: Vec<StoredMessage>, limit: usize) {
        let more = messages.len() > limit;
        if more {
            messages.drain(..messages.len() - limit);
        }
        let me = self.me.clone().unwrap_or_default();
        let count = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        for message in messages {
            self.reply(&Frame::Earlier(EarlierMessage {
                seq: message.seq,
                sent_ms: message.sent_ms,
                mine: *message.sender == *me,
                id: message.id,
                body: message.body().to_vec(),
            }));
        }
        self.reply(&Frame::HistoryEnd { count, more });
    }

    /// `Received`: the client has everything through `seq`; its companion hears of it.
    pub(crate) fn received(&mut self, seq: u64) {
        if let Route::Room { room, .. } = &self.route {
            let room = room.clone();
            return self.room_received(&room, seq);
        }
        // Also while the conversation is being rejoined, or just after it was left (the
        // companion went while the receipt was on its way): it is about messages the client
        // already has.
        let (Route::In { conv, side }
        | Route::Claimed { conv, side, .. }
        | Route::Anyone {
            last: Some((conv, side)),
        }
        | Route::Opening {
            last: Some((conv, side)),
        }) = &self.route
        else {
            return;
        };
        let mut state = conv.lock();
        let Some(seq) = state.mark_read(*side, seq) else {
            return;
        };
        let companion = state.companion(*side).cloned();
        let member = self.me.clone().unwrap_or_default();
        drop(state);
        let delivered = encode_to_bytes(&Frame::Delivered(seq));
        let Some(store) = self.shared.conversations.store().cloned() else {
            if let Some(companion) = companion {
                companion.push_reply(delivered);
            }
            return;
        };
        store.set_read(conv.key.clone(), member, seq);
        // The companion hears of it once it is on disk, so that a receipt it shows survives a
        // crash. Each `Received` moves the cursor forward, so these are bounded by the messages.
        tokio::spawn(async move {
            if store.flush().await.is_ok() {
                if let Some(companion) = companion {
                    companion.push_reply(delivered);
                }
            }
        });
    }
}
