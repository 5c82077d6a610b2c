//! Where a session's messages go: numbering them in their conversation, queueing them for the
//! store, handing them to the companion; and joining a conversation (claiming a side, being told
//! where it stands).
//!
//! Forwarding to an online companion never waits for the disk: a run is numbered and queued for
//! the store and handed to the companion's mailbox in the same step, and only the sender's `Ack`
//! waits for the commit. What a joining member missed is `catchup`'s business.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use p2pchat_proto::{
    encode_to_bytes, fold_nick, message_id, peek_header, stamp_message, ErrorCode, Frame, MessageId,
};
use p2pchat_store::{Done, Run, StoreError, StoredMessage};
use tracing::debug;

use crate::conversation::Conversation;
use crate::mailbox::{Link, Refused};
use crate::report::End;
use crate::rooms::Room;
use crate::session::Session;

/// Where a session's messages go.
pub(crate) enum Route {
    /// No companion chosen: messages are held until one arrives. `last`: the conversation just
    /// left, to which a late `Received` still applies.
    Anyone {
        last: Option<(Arc<Conversation>, usize)>,
    },
    /// The conversation with `companion` is being opened; messages wait in `parked`. `last` as
    /// for `Anyone`.
    Opening {
        last: Option<(Arc<Conversation>, usize)>,
    },
    /// This session serves `side` of the conversation, but the client has not been told where it
    /// stands yet (the store is committing what an earlier session of the member sent): messages
    /// wait in `parked`, and frames for the client in `deferred`.
    /// `live_after`: messages numbered after it reach this session's mailbox live; the ones up to
    /// it that the client missed come from the store.
    Claimed {
        conv: Arc<Conversation>,
        side: usize,
        live_after: u64,
    },
    /// In the conversation, on `side`.
    In {
        conv: Arc<Conversation>,
        side: usize,
    },
    /// In a room (`room_relay`). `live_after`: as for `Claimed`, while the client has not been
    /// told where it stands yet (`None` once it has).
    Room {
        room: Arc<Room>,
        live_after: Option<u64>,
    },
}

impl Route {
    /// Messages are numbered and forwarded as they come.
    pub(crate) fn live(&self) -> bool {
        matches!(
            self,
            Self::In { .. }
                | Self::Room {
                    live_after: None,
                    ..
                }
        )
    }

    /// The route is claimed but the client not told yet: frames for it wait.
    pub(crate) fn claimed(&self) -> bool {
        matches!(
            self,
            Self::Claimed { .. }
                | Self::Room {
                    live_after: Some(_),
                    ..
                }
        )
    }
}

/// What a background job brings back to its session.
pub(crate) enum Job {
    Opened {
        generation: u64,
        companion: String,
        result: Result<Arc<Conversation>, StoreError>,
    },
    /// Everything numbered before the conversation was claimed is committed.
    Settled {
        generation: u64,
        companion: String,
        result: Result<(), StoreError>,
    },
    Replayed {
        serial: u64,
        result: Result<Vec<StoredMessage>, StoreError>,
    },
    History {
        limit: usize,
        result: Result<Vec<StoredMessage>, StoreError>,
    },
    /// A room was found or created, and its numbering read from the store.
    RoomOpened {
        generation: u64,
        result: Result<Arc<Room>, crate::room_relay::OpenError>,
    },
    /// Everything numbered in the room before the client entered it is committed.
    RoomSettled {
        generation: u64,
        result: Result<(), StoreError>,
    },
}

/// A run numbered and queued for the store.
pub(crate) struct Numbered {
    pub(crate) run: Bytes,
    pub(crate) first_seq: u64,
    pub(crate) count: u64,
    pub(crate) last_id: MessageId,
}

/// What became of a run that could not be numbered.
pub(crate) enum Unsent {
    /// Nobody can receive it yet and nothing stores it: keep it for the companion.
    Hold(Bytes),
    /// Wait (the conversation is opening, or the store is full), then try again.
    Park(Bytes),
}

impl Session {
    /// Hands on `run`, complete checked `Message` frames taken from the read buffer.
    pub(crate) fn forward(&mut self, run: BytesMut) {
        let unsent = if self.backlog.as_ref().is_none_or(|b| b.parked.is_empty()) {
            self.send_run(run)
        } else {
            // Behind runs already waiting, to keep the order.
            Err(Unsent::Park(run.freeze()))
        };
        match unsent {
            Ok(()) => {}
            Err(Unsent::Hold(run)) => self.hold(run),
            Err(Unsent::Park(run)) => self.backlog().parked.push_back(run),
        }
    }

    /// Numbers `run`, queues it for the store and hands it to the companion. The numbering, the
    /// queueing and the choice of mailbox happen under the conversation's lock.
    fn send_run(&mut self, run: BytesMut) -> Result<(), Unsent> {
        let (conv, side) = match &self.route {
            Route::In { conv, side } => (conv.clone(), *side),
            Route::Room {
                room,
                live_after: None,
            } => {
                let room = room.clone();
                return self.send_room_run(&room, run);
            }
            Route::Anyone { .. } => return Err(Unsent::Hold(run.freeze())),
            Route::Opening { .. } | Route::Claimed { .. } | Route::Room { .. } => {
                return Err(Unsent::Park(run.freeze()))
            }
        };
        let store = self.shared.conversations.store().cloned();
        let mut state = conv.lock();
        if !state.serves(side, self.id) {
            // A newer connection of this member took over; what this one still had is not
            // acknowledged, so the client sends it again there.
            debug!("{}: dropped a run after being replaced", self.who);
            return Ok(());
        }
        let companion = state.companion(side).cloned();
        if store.is_none() && companion.is_none() {
            return Err(Unsent::Hold(run.freeze()));
        }
        let Numbered {
            run,
            first_seq,
            count,
            last_id,
        } = self.number_run(&conv.key, state.last_seq, run)?;
        state.last_seq += count;
        state.sides[side].last_sent = (state.last_seq, last_id);
        // The sender has its own messages. Not written to the store per run: a conversation
        // loaded from the store works the same mark out again from the members' last messages.
        let read_through = state.sides[side].read_through;
        state.mark_read(side, read_through);
        drop(state);
        self.ack_live(count, first_seq);
        if let Some(companion) = companion {
            self.push_to(companion, run);
        }
        Ok(())
    }

    /// Numbers `run` after `last_seq` and queues it for the store under `key` (the sender's
    /// `Ack` follows the commit). Called under the lock of the conversation or room it goes to,
    /// which then counts the run in.
    pub(crate) fn number_run(
        &self,
        key: &Arc<str>,
        last_seq: u64,
        mut run: BytesMut,
    ) -> Result<Numbered, Unsent> {
        let first_seq = last_seq + 1;
        let (count, last_id) = stamp_run(&mut run, first_seq, self.shared.max_frame);
        let run = run.freeze();
        if let Some(store) = self.shared.conversations.store() {
            let stored = Run {
                conversation: key.clone(),
                sender: self.me.clone().unwrap_or_default(),
                frames: run.clone(),
            };
            if store
                .try_append(stored, ack_when_stored(&self.mailbox, count, first_seq))
                .is_err()
            {
                return Err(Unsent::Park(run));
            }
        }
        Ok(Numbered {
            run,
            first_seq,
            count,
            last_id,
        })
    }

    /// Without history an acknowledgement means "accepted for live delivery", at once.
    pub(crate) fn ack_live(&mut self, count: u64, first_seq: u64) {
        if self.shared.conversations.store().is_none() {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            self.reply(&Frame::Ack { count, first_seq });
        }
    }

    /// Hands a file chunk to the companion if it is connected: live only, never numbered or
    /// stored (files are not history), in order with what this session already sent it, and
    /// slowed down like messages when the companion reads slowly.
    pub(crate) fn forward_chunk(&mut self, frame: Bytes) {
        if let Route::Room {
            room,
            live_after: None,
        } = &self.route
        {
            let room = room.clone();
            return self.room_chunk(&room, frame);
        }
        let companion = match &self.route {
            Route::In { conv, side } => {
                let state = conv.lock();
                if state.serves(*side, self.id) {
                    state.companion(*side).cloned()
                } else {
                    None
                }
            }
            _ => None,
        };
        match companion {
            Some(companion) => self.push_to(companion, frame),
            None => self.reply_error(
                ErrorCode::NotDelivered,
                "your companion is not connected, so the file chunk was not delivered (the \
                 relay keeps no files)"
                    .into(),
            ),
        }
    }

    /// Queues numbered messages for the companion, or keeps them until it has room.
    fn push_to(&mut self, companion: Link, run: Bytes) {
        if let Some(backlog) = self.backlog.as_mut().filter(|b| !b.outbound.is_empty()) {
            backlog.outbound.push_back(run);
            return;
        }
        match companion.push_data(run) {
            Ok(()) => {}
            Err(Refused::Full(run)) => {
                let backlog = self.backlog();
                backlog.outbound.push_back(run);
                backlog.outbound_to = Some(companion);
            }
            // That session has just ended; a returning companion gets these from the store.
            Err(Refused::Closed(_)) => {}
        }
    }

    /// Pushes waiting numbered runs to the companion while it has room.
    pub(crate) fn flush_outbound(&mut self) {
        let Some(companion) = self.backlog.as_ref().and_then(|b| b.outbound_to.clone()) else {
            self.drop_outbound();
            return;
        };
        while let Some(run) = self.backlog.as_mut().and_then(|b| b.outbound.pop_front()) {
            match companion.push_data(run) {
                Ok(()) => {}
                Err(Refused::Full(run)) => {
                    self.backlog().outbound.push_front(run);
                    return;
                }
                Err(Refused::Closed(_)) => break,
            }
        }
        self.drop_outbound();
    }

    /// Forgets runs for a companion session that is gone (stored, when history is kept).
    fn drop_outbound(&mut self) {
        let Some(backlog) = self.backlog.as_mut() else {
            return;
        };
        if !backlog.outbound.is_empty() && self.shared.conversations.store().is_none() {
            debug!(
                "{}: {} run(s) for a companion that left were not delivered",
                self.who,
                backlog.outbound.len()
            );
        }
        backlog.outbound.clear();
        backlog.outbound_to = None;
        self.resumed();
    }

    /// Numbers and sends parked runs while the store takes them.
    pub(crate) fn flush_parked(&mut self) {
        while let Some(run) = self.backlog.as_mut().and_then(|b| b.parked.pop_front()) {
            match self.send_run(BytesMut::from(&run[..])) {
                Ok(()) => {}
                Err(Unsent::Hold(run)) => self.hold(run),
                Err(Unsent::Park(run)) => {
                    self.backlog().parked.push_front(run);
                    return;
                }
            }
        }
        self.resumed();
    }

    /// The hub says: no companion; wait for anyone.
    pub(crate) fn wait_for_anyone(&mut self) {
        self.leave_route();
        let parked = self.backlog.as_mut().map(|b| std::mem::take(&mut b.parked));
        for run in parked.unwrap_or_default() {
            self.hold(run);
        }
        self.resumed();
    }

    /// The hub says: the conversation is with `companion` (chatting, or waiting for them).
    pub(crate) fn enter(&mut self, companion: String) {
        let key = fold_nick(&companion);
        if let Route::In { conv, side } = &self.route {
            if conv.member(1 - *side) == key {
                // The same conversation (the companion came back): say where it stands again.
                let conv = conv.clone();
                self.claim(conv, companion);
                return;
            }
        }
        self.leave_route();
        let last = match &mut self.route {
            Route::Anyone { last } => last.take(),
            _ => None,
        };
        self.route = Route::Opening { last };
        let Some(me) = self.me.clone() else {
            return;
        };
        let (shared, generation) = (self.shared.clone(), self.generation);
        self.spawn(async move {
            let result = shared.conversations.open(&me, &key).await;
            Job::Opened {
                generation,
                companion,
                result,
            }
        });
    }

    /// Leaves the current conversation (if any): its mailbox no longer gets this member's
    /// messages through this session, and jobs started for it are ignored.
    pub(crate) fn leave_route(&mut self) {
        if let Route::In { conv, side } | Route::Claimed { conv, side, .. } = &self.route {
            conv.detach(*side, self.id);
        }
        let store = self.shared.conversations.store().is_some();
        if let (
            Route::Claimed {
                conv,
                side,
                live_after,
            },
            true,
        ) = (&self.route, store)
        {
            // Left before the client was told where it stands (the companion went at once):
            // what it missed up to the claim still goes to it now, not at some later meeting.
            let read_through = conv.lock().sides[*side].read_through;
            let from: Arc<str> = conv.member(1 - *side).into();
            let (conv, live_after) = (conv.clone(), *live_after);
            if read_through < live_after {
                self.replay(conv, from, read_through, live_after);
            }
        }
        self.leave_room();
        let last = match &mut self.route {
            Route::In { conv, side } | Route::Claimed { conv, side, .. } => {
                Some((conv.clone(), *side))
            }
            Route::Anyone { last } | Route::Opening { last } => last.take(),
            Route::Room { .. } => None,
        };
        self.route = Route::Anyone { last };
        self.generation += 1;
        self.drop_outbound();
        // Missed messages already being sent still go out: they are this member's whatever
        // happens to the conversation now.
        if !self.replaying() {
            self.release_deferred();
        }
    }

    /// Serves this member's side of `conv` from now on. The client is told where it stands once
    /// the store has committed everything numbered so far (a resumed member's earlier
    /// connection may still have had messages on their way to the disk, and the client drops
    /// what the relay says it has); until then its messages wait and frames for it are held.
    fn claim(&mut self, conv: Arc<Conversation>, companion: String) {
        let side = self.me.as_deref().map_or(0, |me| conv.side_of(me));
        let live_after = {
            let mut state = conv.lock();
            state.sides[side].session = Some((self.id, self.mailbox.clone()));
            state.last_seq
        };
        self.backlog().deferred.get_or_insert_with(Default::default);
        self.generation += 1;
        self.route = Route::Claimed {
            conv: conv.clone(),
            side,
            live_after,
        };
        let generation = self.generation;
        let Some(store) = self.shared.conversations.store().cloned() else {
            return self.settle(companion);
        };
        self.spawn(async move {
            let result = store.flush().await;
            Job::Settled {
                generation,
                companion,
                result,
            }
        });
    }

    /// Tells the client where it stands in the conversation it claimed, starts sending what it
    /// missed, and sends what waited.
    fn settle(&mut self, companion: String) {
        let Route::Claimed {
            conv,
            side,
            live_after,
        } = &self.route
        else {
            return;
        };
        let (conv, side, live_after) = (conv.clone(), *side, *live_after);
        let companion_key = self.shared.owners.key_of(&companion).unwrap_or_default();
        let (info, here) = {
            let state = conv.lock();
            (
                state.info(side, &companion, companion_key),
                state.companion(side).cloned(),
            )
        };
        let from: Arc<str> = conv.member(1 - side).into();
        self.route = Route::In {
            conv: conv.clone(),
            side,
        };
        let read_through = info.read_through;
        self.reply(&Frame::Conversation(info));
        let store = self.shared.conversations.store().is_some();
        if store && read_through < live_after {
            self.replay(conv, from, read_through, live_after);
        }
        if !self.replaying() {
            self.release_deferred();
        }
        if let Some(companion) = here {
            // A companion that arrived first may be holding messages for us (without history).
            companion.nudge();
        }
        self.release_held();
    }

    /// Sends held messages into the conversation, if anyone can receive or store them.
    pub(crate) fn release_held(&mut self) {
        let receivable = match &self.route {
            Route::In { conv, side } => {
                self.shared.conversations.store().is_some()
                    || conv.lock().companion(*side).is_some()
            }
            Route::Room {
                live_after: None, ..
            } => true,
            _ => return,
        };
        let held = self.backlog.as_ref().map_or(0, |b| b.held.count());
        if held > 0 && receivable {
            let backlog = self.backlog();
            for (i, run) in backlog.held.take().into_iter().enumerate() {
                backlog.parked.insert(i, run);
            }
        }
        self.flush_parked();
    }

    /// A job finished.
    pub(crate) fn on_job(&mut self, job: Job) -> Result<(), End> {
        match job {
            Job::Opened {
                generation,
                companion,
                result,
            } if generation == self.generation => match result {
                Ok(conv) => self.claim(conv, companion),
                Err(err) => return Err(self.store_unusable(&err)),
            },
            Job::Settled {
                generation,
                companion,
                result,
            } if generation == self.generation => match result {
                Ok(()) => self.settle(companion),
                Err(err) => return Err(self.store_unusable(&err)),
            },
            Job::Replayed { serial, result }
                if self
                    .backlog
                    .as_ref()
                    .and_then(|b| b.replays.front())
                    .is_some_and(|r| r.serial == serial) =>
            {
                self.on_replayed(result);
            }
            Job::History { limit, result } => {
                if let Some(backlog) = self.backlog.as_mut() {
                    backlog.history_busy = false;
                }
                // Answered even if the route has changed since: the client asked for it.
                let messages = match result {
                    Ok(messages) => messages,
                    Err(err) => {
                        self.store_failed("could not read the history", &err);
                        Vec::new()
                    }
                };
                self.answer_history(messages, limit);
            }
            Job::RoomOpened { generation, result } if generation == self.generation => {
                self.room_opened(result)
            }
            Job::RoomSettled { generation, result } if generation == self.generation => {
                match result {
                    Ok(()) => self.room_settled(),
                    Err(err) => return Err(self.store_unusable(&err)),
                }
            }
            // Started for a route that has changed since.
            Job::Opened { .. }
            | Job::Settled { .. }
            | Job::Replayed { .. }
            | Job::RoomOpened { .. }
            | Job::RoomSettled { .. } => {}
        }
        Ok(())
    }

    /// The conversation cannot be opened: the store is failing. The client is told (fatally:
    /// it reconnects later) and the session ends.
    pub(crate) fn store_unusable(&mut self, err: &StoreError) -> End {
        tracing::warn!("⚠️ {} could not open the conversation: {err}", self.who);
        self.reply(&Frame::Error {
            code: ErrorCode::StoreFailed,
            fatal: true,
            text: format!("the server could not open your conversation ({err}); try again later"),
        });
        End::Refused(format!("history store failed: {err}"))
    }
}

/// Writes consecutive sequence numbers from `first_seq`, and the relay's clock, into each frame
/// of `run`; returns how many frames there are and the last one's id.
fn stamp_run(run: &mut BytesMut, first_seq: u64, max_frame: usize) -> (u64, MessageId) {
    let sent_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let (mut offset, mut count, mut last_id) = (0, 0, [0; 16]);
    while let Ok(Some(header)) = peek_header(&run[offset..], max_frame) {
        let end = offset + header.frame_len();
        let Some(frame) = run.get_mut(offset..end) else {
            break;
        };
        stamp_message(frame, first_seq + count, sent_ms);
        last_id = message_id(frame).unwrap_or_default();
        count += 1;
        offset = end;
    }
    (count, last_id)
}

/// The store's answer for a run, as the sender's `Ack` (or an error) in its mailbox.
fn ack_when_stored(mailbox: &Link, count: u64, first_seq: u64) -> Done {
    let mailbox = mailbox.clone();
    Box::new(move |result| {
        let frame = match result {
            Ok(()) => Frame::Ack {
                count: u32::try_from(count).unwrap_or(u32::MAX),
                first_seq,
            },
            Err(err) => Frame::Error {
                code: ErrorCode::StoreFailed,
                fatal: false,
                text: format!(
                    "{count} message(s) could not be stored ({err}); they were not acknowledged"
                ),
            },
        };
        mailbox.push_reply(encode_to_bytes(&frame));
    })
}
